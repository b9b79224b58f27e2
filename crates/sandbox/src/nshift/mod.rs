//! The nShift Delivery (`rs-extapi/v1`) simulator.
//!
//! Serves the API under `/rs-extapi/v1` and, for the `href`s it returns, under a
//! deployment-versioned prefix ([`HREF_PREFIX`]) as the real API does, so clients that follow
//! `href`s as opaque URLs work and clients that rebuild URLs are still served.
//!
//! Every rule, its source in the reference notes and the test that covers it are listed in
//! `crates/sandbox/README.md` (nShift section).

mod address;
mod admin;
mod auth;
pub mod catalog;
mod handlers;
mod label;
mod numbers;
pub mod price;
mod session;
mod store;
mod validate;
mod wire;

use std::sync::Mutex;

use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use catalog::ServiceConfig;
pub use price::PriceListEntry;

use crate::{Dataset, SharedState};

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
            price_list: price::default_price_list(),
            carrier_price_partners: price::default_carrier_price_partners(),
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

/// In-memory state of the nshift simulator.
#[derive(Debug)]
pub struct NshiftState {
    book: catalog::AddressBook,
    inner: Mutex<store::Store>,
}

impl NshiftState {
    /// Seeds the state from the dataset (the address book's senders come from its warehouses).
    pub fn new(_config: &NshiftConfig, dataset: &Dataset, _start: DateTime<Utc>) -> Self {
        Self {
            book: catalog::AddressBook::from_dataset(dataset),
            inner: Mutex::new(store::Store::new()),
        }
    }

    /// Number of JWTs issued by `/sessions/jwt` so far.
    pub fn jwt_sessions_issued(&self) -> u64 {
        crate::util::lock(&self.inner).sessions_issued()
    }

    /// Number of shipments booked with this `orderNo` (cancelled ones included).
    pub fn shipment_count(&self, order_no: &str) -> usize {
        crate::util::lock(&self.inner)
            .shipments()
            .filter(|s| s.order_no.as_deref() == Some(order_no))
            .count()
    }
}

/// The platform routes: `/rs-extapi/v1/...` and the same under [`HREF_PREFIX`].
pub fn router() -> Router<SharedState> {
    Router::new()
        .nest(BASE_PATH, handlers::api())
        .nest(HREF_PREFIX, handlers::api())
}

/// Inspection routes under `/_sandbox/nshift`.
pub fn admin_router() -> Router<SharedState> {
    admin::router()
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
