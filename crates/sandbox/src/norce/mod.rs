//! The Norce Commerce simulator: identity (OAuth2 client credentials with the token rate limit),
//! Services 1.1 (metadata, order, product), Query 3.0 (OData orders), Connect 4.0 (order status,
//! delivery notes, cancel, asynchronous on-hand and price imports with jobs), and the pushes Norce
//! makes (order receiver and event webhooks, with Norce's retry schedule).
//!
//! Every rule and its source is listed in `crates/sandbox/README.md (Norce section)`. Requests are parsed with
//! the generated `norce-models` types, so the spec and the simulator cannot drift apart.

// Helpers return a ready `Response` as their error; that is what the handlers send.
#![allow(clippy::result_large_err)]

mod admin;
mod connect;
mod identity;
mod model;
/// The OData `$filter` / `$orderby` parser of the Query simulator (public for the fuzz targets).
pub mod odata;
mod push;
mod query;
mod services;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use models_runtime::ParamError;
use models_runtime::redact::REDACTED;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{AppState, Dataset, SharedState};

pub use model::STATUSES;

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

/// In-memory state of the norce simulator.
#[derive(Debug)]
pub struct NorceState {
    config: NorceConfig,
    inner: Mutex<model::Inner>,
}

impl NorceState {
    /// Seeds the state from the dataset.
    pub fn new(config: &NorceConfig, dataset: &Dataset, start: DateTime<Utc>) -> Self {
        Self {
            config: config.clone(),
            inner: Mutex::new(model::Inner::seed(config, dataset, start)),
        }
    }

    /// The configuration the simulator started with.
    pub fn config(&self) -> &NorceConfig {
        &self.config
    }

    /// Revokes every issued access token (as an admin revoking the integration's access would):
    /// the next API call with one gets 401 and the client must fetch a new token.
    pub fn revoke_tokens(&self) -> usize {
        let mut inner = self.lock();
        let revoked = inner.tokens.len();
        inner.tokens.clear();
        revoked
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, model::Inner> {
        crate::util::lock(&self.inner)
    }
}

/// The platform routes.
pub fn router() -> Router<SharedState> {
    use norce_models::{
        connect::operations as c, identity::operations as i, query::operations as q,
        services::operations as s,
    };
    Router::new()
        .route(i::REQUEST_TOKEN.path, post(identity::token))
        .route(s::GET_APPLICATION.path, get(services::get_application))
        .route(s::LIST_ORDERS3.path, get(services::list_orders3))
        .route(s::GET_ORDER.path, get(services::get_order))
        .route(s::LIST_PRODUCTS2.path, get(services::list_products2))
        .route(q::QUERY_ORDERS.path, get(query::query_orders))
        .route(c::SEND_ORDER_STATUS.path, post(connect::send_order_status))
        .route(
            c::CREATE_DELIVERY_NOTE.path,
            post(connect::create_delivery_note),
        )
        .route(c::CANCEL_ORDER.path, post(connect::cancel_order))
        .route(c::IMPORT_ONHANDS.path, post(connect::import_onhands))
        .route(
            c::IMPORT_SKU_PRICE_LISTS.path,
            post(connect::import_sku_price_lists),
        )
        .route(c::GET_JOB.path, get(connect::get_job))
        .route(c::GET_JOB_LOG.path, get(connect::get_job_log))
}

/// Inspection routes under `/_sandbox/norce`.
pub fn admin_router() -> Router<SharedState> {
    admin::router()
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// A Services/Connect error: Norce documents no body, so the ASP.NET `{"Message": ...}` shape.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "Message": message.into() }))).into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

/// The `ApplicationId` header lookup: case-insensitive, also accepting `application-id`
/// (the Query guide's spelling).
fn app_lookup<'a>(headers: &'a HeaderMap) -> impl Fn(&str) -> Option<&'a str> + 'a {
    let base = crate::util::header_lookup(headers);
    move |name: &str| {
        base(name).or_else(|| {
            if name.eq_ignore_ascii_case("ApplicationId") {
                base("application-id")
            } else {
                None
            }
        })
    }
}

/// Completes due jobs (lazily, on the virtual clock) and pushes their `JobCompletedEvent`s.
fn settle(state: &SharedState) {
    let now = state.clock.now();
    let done = state.norce.lock().complete_due_jobs(now);
    for (job_id, status_id) in done {
        push::job_completed(state, job_id, status_id);
    }
}

/// Bearer check for every `/commerce/...` call (401 when missing, unknown or expired).
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    identity::check_bearer(state, headers)
}

/// The start every `/commerce/...` handler shares: settle due jobs, check the bearer, then read
/// the operation's headers with `parse` (a header error becomes `on_error`'s response).
fn start_call<H>(
    state: &SharedState,
    headers: &HeaderMap,
    parse: impl FnOnce(&HeaderMap) -> Result<H, ParamError>,
    on_error: impl FnOnce(ParamError) -> Response,
) -> Result<H, Response> {
    settle(state);
    authorize(state, headers)?;
    parse(headers).map_err(on_error)
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
