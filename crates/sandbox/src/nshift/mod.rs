//! The nshift simulator (work in progress).

use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Dataset, SharedState};

/// Settings of the nshift simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NshiftConfig {
    /// API key id of the demo key.
    pub api_key_id: String,
    /// Secret id of the demo key.
    pub secret_id: String,
    /// Developer id of the demo integration.
    pub developer_id: String,
}

impl Default for NshiftConfig {
    fn default() -> Self {
        Self { api_key_id: "SANDBOXKEY01".into(), secret_id: "sandbox-nshift-secret".into(), developer_id: "relay-dev-0001".into() }
    }
}

/// Demo credentials and base URL, as printed by the binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    NshiftCredentials { base_url: format!("{base_url}/rs-extapi/v1"), api_key_id: config.api_key_id.clone(), secret_id: config.secret_id.clone(), developer_id: config.developer_id.clone() }
}

/// In-memory state of the nshift simulator.
#[derive(Debug, Default)]
pub struct NshiftState {}

impl NshiftState {
    /// Seeds the state from the dataset.
    pub fn new(_config: &NshiftConfig, _dataset: &Dataset, _start: DateTime<Utc>) -> Self {
        Self {}
    }
}

/// The platform routes.
pub fn router() -> Router<SharedState> {
    Router::new()
}

/// Inspection routes under `/_sandbox/nshift`.
pub fn admin_router() -> Router<SharedState> {
    Router::new()
}
