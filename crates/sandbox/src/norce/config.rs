//! The Norce simulator's settings and demo credentials: what the shared state is built from.
//! A bottom module (it uses no other module of the simulator), so every handler and
//! [`crate::state`] can use it.

use std::collections::BTreeMap;
use std::fmt;

use models_runtime::redact::REDACTED;
use serde::{Deserialize, Serialize};

/// One more OAuth2 client (integration user) the identity endpoint accepts.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct NorceAccount {
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
}

impl fmt::Debug for NorceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NorceAccount")
            .field("client_id", &self.client_id)
            .field("client_secret", &REDACTED)
            .finish()
    }
}

/// A price list the Connect price import accepts (set up in Norce Admin on a real tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NorcePriceList {
    /// Internal id (the `pricelistSeed` / `PriceListId` of Services).
    pub id: i32,
    /// The code Connect uses (`PriceListCode`).
    pub code: String,
    /// ISO 4217 currency; imported prices must use it.
    pub currency: String,
}

/// The order receiver (Admin > Client settings > ERP integration, endpoint type REST).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderReceiverConfig {
    /// Where every new order is POSTed as an `OrderRequest`.
    pub url: String,
    /// Basic auth user name.
    pub username: String,
    /// Basic auth password (never logged or shown).
    pub password: String,
}

impl fmt::Debug for OrderReceiverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderReceiverConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &REDACTED)
            .finish()
    }
}

/// One event webhook (Admin > Integration > Events): an event type, its URL and static headers.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookConfig {
    /// The event type, e.g. `OrderReceivedEvent`, `JobCompletedEvent`.
    pub event_type: String,
    /// Where the event is POSTed.
    pub url: String,
    /// Static custom headers sent with every POST (e.g. a shared secret; values never logged).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("event_type", &self.event_type)
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Settings of the norce simulator.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NorceConfig {
    /// OAuth client id of the demo account.
    pub client_id: String,
    /// OAuth client secret of the demo account.
    pub client_secret: String,
    /// The application id the demo account may use.
    pub application_id: i64,
    /// Token scope of the demo account.
    pub scope: String,
    /// More OAuth clients the token endpoint accepts.
    pub extra_accounts: Vec<NorceAccount>,
    /// Scopes the token endpoint accepts (`invalid_scope` otherwise). By default every value
    /// Norce documents: `playground`, `stage`, `prod` (current page), `production`, `lab`
    /// (older pages) and `qa` (Norce \[Storm\]); a tenant that takes only some of them is
    /// simulated by narrowing the list.
    pub accepted_scopes: Vec<String>,
    /// `expires_in` of issued tokens, seconds (Norce: 3600 in the text, 600 in the example).
    pub token_lifetime_secs: u64,
    /// Token requests per minute per client IP (Norce: 3).
    pub token_rate_per_minute: u32,
    /// Token requests allowed at once before the rate applies (Norce: burst 20).
    pub token_burst: u32,
    /// The Norce client (tenant) id: `ClientId` of events, `clientId` of Query orders.
    pub tenant_id: i32,
    /// The system account id the Connect `X-StormConnect-Header` must carry as `AccountId`.
    pub account_id: i32,
    /// Whether Connect calls also need the `ApplicationId` header. Off by default: no Connect
    /// sample sends it (Services and Query always need it).
    pub connect_requires_application_id: bool,
    /// Seconds (virtual clock) from an import's submission until its job finishes.
    pub job_delay_secs: f64,
    /// Rows per Query page before `@odata.nextLink` (Norce's example suggests 500).
    pub query_page_size: usize,
    /// Price lists known to the price import; the first is the default price list.
    pub price_lists: Vec<NorcePriceList>,
    /// Every n-th seeded order starts Delivered with a delivery note and a parcel (0: none).
    pub seed_delivered_every: usize,
    /// The order receiver; nothing is pushed when unset.
    pub order_receiver: Option<OrderReceiverConfig>,
    /// Event webhooks; events without a configured URL are not pushed.
    pub webhooks: Vec<WebhookConfig>,
    /// Norce's retry delays after a failed push, seconds (5 s ... 6 h).
    pub retry_schedule_secs: Vec<u64>,
    /// Multiplies every retry delay (e.g. 0.001 in tests so that 5 s becomes 5 ms).
    pub push_time_factor: f64,
    /// Timeout of one push attempt, milliseconds (Norce: 5 s).
    pub push_timeout_ms: u64,
}

/// Norce's webhook retry schedule (§5 of the notes), in seconds.
pub const RETRY_SCHEDULE_SECS: &[u64] = &[
    5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 14400, 18000, 21600,
];

impl Default for NorceConfig {
    fn default() -> Self {
        Self {
            client_id: "sandbox-norce-client".into(),
            client_secret: "sandbox-norce-secret".into(),
            application_id: 1234,
            scope: "playground".into(),
            extra_accounts: Vec::new(),
            accepted_scopes: ["playground", "stage", "prod", "production", "lab", "qa"]
                .map(String::from)
                .to_vec(),
            token_lifetime_secs: 3600,
            token_rate_per_minute: 3,
            token_burst: 20,
            tenant_id: 1000,
            account_id: 1,
            connect_requires_application_id: false,
            job_delay_secs: 5.0,
            query_page_size: 500,
            price_lists: vec![NorcePriceList {
                id: 1,
                code: "SE-B2C".into(),
                currency: "SEK".into(),
            }],
            seed_delivered_every: 5,
            order_receiver: None,
            webhooks: Vec::new(),
            retry_schedule_secs: RETRY_SCHEDULE_SECS.to_vec(),
            push_time_factor: 1.0,
            push_timeout_ms: 5000,
        }
    }
}

/// Demo credentials and base URL, as printed by the binary.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct NorceCredentials {
    /// Base URL of every Norce API (identity, Services, Connect, Query).
    pub base_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// The numeric `ApplicationId` header value.
    pub application_id: i64,
    /// Token scope.
    pub scope: String,
}

/// The credentials of `config` for a sandbox at `base_url`.
pub fn credentials(config: &NorceConfig, base_url: &str) -> NorceCredentials {
    NorceCredentials {
        base_url: base_url.to_owned(),
        client_id: config.client_id.clone(),
        client_secret: config.client_secret.clone(),
        application_id: config.application_id,
        scope: config.scope.clone(),
    }
}

impl std::fmt::Debug for NorceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::util::fmt_redacted("NorceConfig", self, f)
    }
}

impl std::fmt::Debug for NorceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::util::fmt_redacted("NorceCredentials", self, f)
    }
}
