//! The nShift simulator's settings, licences and demo credentials: what the shared state is
//! built from. A bottom module (it uses only the catalog of services), so every handler and
//! [`crate::state`] can use it.

use models_runtime::Decimal;
use serde::{Deserialize, Serialize};

use super::catalog::{self, ServiceConfig};

/// The path the API is served under.
pub const BASE_PATH: &str = "/rs-extapi/v1";
/// The deployment-versioned path the returned `href`s use (the real API returns
/// `/ufoweb-prod-YYYYMMDDhhmm/rs-extapi/v1/...`); it serves the same routes.
pub const HREF_PREFIX: &str = "/ufoweb-sandbox-202603020800/rs-extapi/v1";

/// A licence key on the account; every operation needs one (nShift §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Licence {
    /// REST API Print: POST /shipments, POST /stored-shipments/{id}/shipments, documents.
    Print,
    /// REST API Store: stored shipments.
    Store,
    /// REST API Discard: DELETE /shipments/{id}.
    Discard,
    /// REST API TrackBack: GET /shipments and (by inference) GET /alerts.
    TrackBack,
    /// REST API PickUpLocator: /addresses/agents.
    PickUpLocator,
    /// REST API ZipCheck: /addresses/zipcodes.
    ZipCheck,
    /// REST API AddressCheck: POST /addresses/status.
    AddressCheck,
    /// The price licence (its exact name is undocumented): POST /prices and, a sandbox choice,
    /// POST /prices/history.
    Price,
}

impl Licence {
    /// Every licence.
    pub const ALL: &'static [Licence] = &[
        Licence::Print,
        Licence::Store,
        Licence::Discard,
        Licence::TrackBack,
        Licence::PickUpLocator,
        Licence::ZipCheck,
        Licence::AddressCheck,
        Licence::Price,
    ];
}

/// Another API key on the simulated account.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyConfig {
    /// API key id (the Basic user).
    pub api_key_id: String,
    /// Secret id (the Basic password).
    pub secret_id: String,
    /// The licences this key may use (every licence when absent).
    #[serde(default = "all_licences")]
    pub licences: Vec<Licence>,
    /// The profile group a profile-bound key is tied to: it only sees and posts within it and
    /// cannot call GET /shipments or GET /alerts.
    #[serde(default)]
    pub profile_group: Option<String>,
}

fn all_licences() -> Vec<Licence> {
    Licence::ALL.to_vec()
}

/// When a printed shipment moves on, in seconds of virtual time after it was printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgressConfig {
    /// PRINTED → DISPATCHING (en route).
    pub dispatching_after_secs: u64,
    /// → OUTFORDELIVERY (home delivery) or DELIVERING (arrived at the pickup point).
    pub out_for_delivery_after_secs: u64,
    /// → DELIVERED.
    pub delivered_after_secs: u64,
}

impl Default for ProgressConfig {
    fn default() -> Self {
        Self {
            dispatching_after_secs: 4 * 3600,
            out_for_delivery_after_secs: 20 * 3600,
            delivered_after_secs: 26 * 3600,
        }
    }
}

/// Which methods `/sessions/jwt` answers (the notes are unsure whether it is GET or POST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JwtMethods {
    /// GET and POST (default).
    #[default]
    Both,
    /// GET only; POST gets 405.
    GetOnly,
    /// POST only; GET gets 405.
    PostOnly,
}

/// Settings of the nshift simulator.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NshiftConfig {
    /// API key id of the demo key (all licences, no profile).
    pub api_key_id: String,
    /// Secret id of the demo key.
    pub secret_id: String,
    /// Developer id of the demo integration.
    pub developer_id: String,
    /// More API keys on the account, with their own licences and optional profile group.
    pub extra_keys: Vec<ApiKeyConfig>,
    /// The account's default profile group: what shipments booked with an account-level key
    /// (and no `profileGroup` of their own) are filed under, and what their alerts name
    /// (`"Grundprofilgrupp"`, as in nShift's FetchAlerts example). Empty: none.
    pub default_profile_group: String,
    /// The services the account can book, with their routes and addons.
    pub services: Vec<ServiceConfig>,
    /// How long printed documents can be fetched, in seconds of virtual time (1 hour).
    pub document_ttl_secs: u64,
    /// Status of a request for an expired document: 404 (default) or 410.
    pub expired_document_status: u16,
    /// When printed shipments move on.
    pub progress: ProgressConfig,
    /// Whether test shipments (`shipment.test`, no EDI) move on after PRINTED.
    pub test_shipments_progress: bool,
    /// `minDelay` (ms) of a feed page with `done: true` (0 while not done).
    pub feed_min_delay_ms: i64,
    /// Items per feed page (100).
    pub feed_page_size: usize,
    /// Results of a stored-shipment search (50).
    pub stored_search_limit: usize,
    /// Whether printed stored shipments still appear in GET /stored-shipments (an open question).
    pub printed_stored_searchable: bool,
    /// Lifetime of a JWT from `/sessions/jwt`, in seconds of virtual time (12 hours).
    pub jwt_lifetime_secs: u64,
    /// The methods `/sessions/jwt` answers.
    pub jwt_methods: JwtMethods,
    /// The account's price list: base price and price per chargeable kg of each service.
    pub price_list: Vec<PriceListEntry>,
    /// Carriers (partner ids) that answer a carrier price enquiry
    /// (`senderPartners[].priceEnquiry: CARRIER`); others get an `errorList` entry.
    pub carrier_price_partners: Vec<String>,
}

impl Default for NshiftConfig {
    fn default() -> Self {
        Self {
            api_key_id: "SANDBOXKEY01".into(),
            secret_id: "sandbox-nshift-secret".into(),
            developer_id: "relay-dev-0001".into(),
            extra_keys: Vec::new(),
            default_profile_group: "Grundprofilgrupp".into(),
            services: catalog::default_services(),
            document_ttl_secs: 3600,
            expired_document_status: 404,
            progress: ProgressConfig::default(),
            test_shipments_progress: true,
            feed_min_delay_ms: 300_000,
            feed_page_size: 100,
            stored_search_limit: 50,
            printed_stored_searchable: true,
            jwt_lifetime_secs: 12 * 3600,
            jwt_methods: JwtMethods::Both,
            price_list: default_price_list(),
            carrier_price_partners: default_carrier_price_partners(),
        }
    }
}

/// Demo credentials and base URL, as printed by the binary.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct NshiftCredentials {
    /// Base URL including `/rs-extapi/v1`.
    pub base_url: String,
    /// API key id (the Basic auth user).
    pub api_key_id: String,
    /// Secret id (the Basic auth password).
    pub secret_id: String,
    /// Developer id to put into shipments.
    pub developer_id: String,
}

/// The credentials of `config` for a sandbox at `base_url`.
pub fn credentials(config: &NshiftConfig, base_url: &str) -> NshiftCredentials {
    NshiftCredentials {
        base_url: format!("{base_url}{BASE_PATH}"),
        api_key_id: config.api_key_id.clone(),
        secret_id: config.secret_id.clone(),
        developer_id: config.developer_id.clone(),
    }
}

/// One row of the account's price list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceListEntry {
    /// Service code (`service.id`).
    pub service_id: String,
    /// Price per shipment, before weight.
    pub base: Decimal,
    /// Price per chargeable kg (whole kg, rounded up).
    pub per_kg: Decimal,
}

fn entry(service_id: &str, base: i64, per_kg_cents: i64) -> PriceListEntry {
    PriceListEntry {
        service_id: service_id.to_owned(),
        base: Decimal::from(base),
        per_kg: Decimal::new(per_kg_cents, 2),
    }
}

/// The default price list (sandbox numbers), one row per default service.
pub fn default_price_list() -> Vec<PriceListEntry> {
    vec![
        entry("P15", 89, 450),
        entry("P17", 79, 400),
        entry("P19", 59, 350),
        entry("PDK17", 99, 500),
        entry("ASPO", 65, 300),
        entry("ASP2", 85, 450),
        entry("BUDBEEHD", 69, 250),
    ]
}

/// Carriers that answer a carrier price enquiry: the notes list Bring, DB Schenker, DHL
/// Express, DHL Freight, TNT and UPS (API §2.6); `DHL` is the sandbox's DHL Freight.
pub fn default_carrier_price_partners() -> Vec<String> {
    ["DHL", "BRING", "DBSCHENKER", "DHLEXPRESS", "TNT", "UPS"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

impl std::fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::util::fmt_redacted("ApiKeyConfig", self, f)
    }
}

impl std::fmt::Debug for NshiftConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::util::fmt_redacted("NshiftConfig", self, f)
    }
}

impl std::fmt::Debug for NshiftCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::util::fmt_redacted("NshiftCredentials", self, f)
    }
}
