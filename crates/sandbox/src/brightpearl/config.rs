//! The Brightpearl simulator's settings and demo credentials: what the shared state is built
//! from. A bottom module (it uses no other module of the simulator), so every handler and
//! [`crate::state`] can use it.

use serde::{Deserialize, Serialize};

/// A simulated warehouse team that ships sales orders as soon as they are created, so a demo
/// (`relay run` against the embedded sandbox) has shipped goods-out notes to fulfil in the same
/// run. For each sales order it ships, the sandbox creates a goods-out note and marks it shipped
/// at once on the virtual clock, with a shipping method and a tracking reference, firing the
/// same webhooks as the admin routes (`goods-out-note.created`,
/// `product.modified.on-hand-modified`, `goods-out-note.modified.shipped`,
/// `order.modified.fully-shipped`). Off unless [`BrightpearlConfig::warehouse_ships`] is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarehouseShips {
    /// Ship every n-th sales order created: the 1st, the (n+1)-th, … (1: every order; 0: none).
    pub every: usize,
    /// How many orders are shipped in part: while fewer orders than this are part-shipped
    /// (shipping status SPS), an order to ship with more than one stock-tracked row gets a note
    /// of its first row only (an order with one row of several units: all units but one).
    pub partial: usize,
    /// Shipping method (carrier service) on the note when the order names none.
    pub shipping_method_id: i64,
    /// Tracking references are this prefix and the note id, zero-padded to ten digits.
    pub tracking_prefix: String,
}

impl Default for WarehouseShips {
    fn default() -> Self {
        Self {
            every: 2,
            partial: 1,
            shipping_method_id: 1,
            tracking_prefix: "SBXTRK".into(),
        }
    }
}

/// What a repeated sales-order POST with the same `externalRef` and
/// `installedIntegrationInstanceId` does (the documentation excerpt is cut off there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateExternalRef {
    /// 400 with an `ORDC` error naming the existing order (default: makes duplicates visible).
    #[default]
    Reject,
    /// 200 with the id of the existing order.
    ReturnExisting,
    /// Create another order.
    Allow,
}

/// Settings of the brightpearl simulator.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrightpearlConfig {
    /// Account code of the demo account.
    pub account: String,
    /// App reference.
    pub app_ref: String,
    /// Developer reference.
    pub dev_ref: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Staff token of the private app.
    pub staff_token: String,
    /// `installation_instance_id` of the demo installation (a numeric string on the wire).
    pub installation_instance_id: i64,
    /// `api_domain` in token responses; default: the sandbox's own `host:port`.
    pub api_domain: Option<String>,
    /// The redirect URI registered in the app settings; `None` accepts any absolute URI.
    pub redirect_uri: Option<String>,
    /// "Confidential OAuth": `client_secret` is required on the token endpoint. When off, a
    /// secret that is sent must still be right.
    pub confidential_oauth: bool,
    /// `expires_in` of tokens from the code exchange (604800 observed).
    pub token_expires_in_secs: i64,
    /// `expires_in` of tokens from a refresh (537227 observed).
    pub refreshed_token_expires_in_secs: i64,
    /// Whether refresh responses carry `installation_instance_id` (absent in the observed one).
    pub instance_id_on_refresh: bool,
    /// How long an authorization code can be exchanged.
    pub auth_code_ttl_secs: i64,
    /// Requests per rolling window per pool (account + developer, or account for private apps).
    pub requests_per_window: usize,
    /// Length of the rolling throttle window.
    pub throttle_window_secs: u64,
    /// Longest accepted path + query; longer gets `414 URI Too Long`.
    pub max_uri_length: usize,
    /// Most ids in one product GET (and product OPTIONS chunk).
    pub max_ids_product: usize,
    /// Most ids in one order or sales-order GET (and order OPTIONS chunk).
    pub max_ids_order: usize,
    /// Most ids in one goods-out-note GET.
    pub max_ids_goods_out_note: usize,
    /// Most messages in one multi-message request.
    pub max_multi_messages: usize,
    /// Largest search `pageSize`.
    pub max_page_size: i64,
    /// What a repeated sales-order POST with the same externalRef does.
    pub duplicate_external_ref: DuplicateExternalRef,
    /// Every n-th dataset customer is seeded as a contact (1 = all, 0 = none).
    pub seed_contact_every: usize,
    /// Account currency.
    pub currency_code: String,
    /// `${brightpearl-version}` in webhook calls.
    pub brightpearl_version: String,
    /// Extra attempts of a failed webhook call (per its quality of service).
    pub webhook_retries: u32,
    /// Delay between webhook attempts (real time).
    pub webhook_retry_delay_ms: u64,
    /// Timeout of one webhook call (real time).
    pub webhook_timeout_ms: u64,
    /// Ship sales orders as they are created (a goods-out note, shipped at once); `None`
    /// (default): orders wait for the admin routes.
    pub warehouse_ships: Option<WarehouseShips>,
}

impl Default for BrightpearlConfig {
    fn default() -> Self {
        Self {
            account: "sandboxacct".into(),
            app_ref: "relay-sandbox".into(),
            dev_ref: "relaydev".into(),
            client_id: "relay-sandbox".into(),
            client_secret: "sandbox-bp-secret".into(),
            staff_token: "sandbox-staff-token".into(),
            installation_instance_id: 13,
            api_domain: None,
            redirect_uri: None,
            confidential_oauth: false,
            token_expires_in_secs: 604_800,
            refreshed_token_expires_in_secs: 537_227,
            instance_id_on_refresh: false,
            auth_code_ttl_secs: 600,
            requests_per_window: 200,
            throttle_window_secs: 60,
            max_uri_length: 2048,
            max_ids_product: 200,
            max_ids_order: 200,
            max_ids_goods_out_note: 500,
            max_multi_messages: 10,
            max_page_size: 500,
            duplicate_external_ref: DuplicateExternalRef::Reject,
            seed_contact_every: 2,
            currency_code: "SEK".into(),
            brightpearl_version: "7.41.0".into(),
            webhook_retries: 2,
            webhook_retry_delay_ms: 200,
            webhook_timeout_ms: 5_000,
            warehouse_ships: None,
        }
    }
}

/// Demo credentials and base URL, as printed by the binary.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct BrightpearlCredentials {
    /// API base URL (the `api_domain`), paths start with `/public-api/{account}`.
    pub base_url: String,
    /// OAuth base URL (`/authorize/{account}`, `/token/{account}`).
    pub oauth_url: String,
    /// Account code.
    pub account: String,
    /// `brightpearl-app-ref`.
    pub app_ref: String,
    /// `brightpearl-dev-ref`.
    pub dev_ref: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Staff token for the private-app scheme.
    pub staff_token: String,
}

/// The credentials of `config` for a sandbox at `base_url`.
pub fn credentials(config: &BrightpearlConfig, base_url: &str) -> BrightpearlCredentials {
    BrightpearlCredentials {
        base_url: base_url.to_owned(),
        oauth_url: base_url.to_owned(),
        account: config.account.clone(),
        app_ref: config.app_ref.clone(),
        dev_ref: config.dev_ref.clone(),
        client_id: config.client_id.clone(),
        client_secret: config.client_secret.clone(),
        staff_token: config.staff_token.clone(),
    }
}

impl std::fmt::Debug for BrightpearlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::util::fmt_redacted("BrightpearlConfig", self, f)
    }
}

impl std::fmt::Debug for BrightpearlCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::util::fmt_redacted("BrightpearlCredentials", self, f)
    }
}
