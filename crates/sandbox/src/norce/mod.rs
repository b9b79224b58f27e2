//! The norce simulator (work in progress).

use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Dataset, SharedState};

/// Settings of the norce simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

impl Default for NorceConfig {
    fn default() -> Self {
        Self { client_id: "sandbox-norce-client".into(), client_secret: "sandbox-norce-secret".into(), application_id: 1234, scope: "playground".into() }
    }
}

/// Demo credentials and base URL, as printed by the binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    NorceCredentials { base_url: base_url.to_owned(), client_id: config.client_id.clone(), client_secret: config.client_secret.clone(), application_id: config.application_id, scope: config.scope.clone() }
}

/// In-memory state of the norce simulator.
#[derive(Debug, Default)]
pub struct NorceState {}

impl NorceState {
    /// Seeds the state from the dataset.
    pub fn new(_config: &NorceConfig, _dataset: &Dataset, _start: DateTime<Utc>) -> Self {
        Self {}
    }
}

/// The platform routes.
pub fn router() -> Router<SharedState> {
    Router::new()
}

/// Inspection routes under `/_sandbox/norce`.
pub fn admin_router() -> Router<SharedState> {
    Router::new()
}
