//! The brightpearl simulator (work in progress).

use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Dataset, SharedState};

/// Settings of the brightpearl simulator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

impl Default for BrightpearlConfig {
    fn default() -> Self {
        Self { account: "sandboxacct".into(), app_ref: "relay-sandbox".into(), dev_ref: "relaydev".into(), client_id: "relay-sandbox".into(), client_secret: "sandbox-bp-secret".into(), staff_token: "sandbox-staff-token".into() }
    }
}

/// Demo credentials and base URL, as printed by the binary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    BrightpearlCredentials { base_url: base_url.to_owned(), oauth_url: base_url.to_owned(), account: config.account.clone(), app_ref: config.app_ref.clone(), dev_ref: config.dev_ref.clone(), client_id: config.client_id.clone(), client_secret: config.client_secret.clone(), staff_token: config.staff_token.clone() }
}

/// In-memory state of the brightpearl simulator.
#[derive(Debug, Default)]
pub struct BrightpearlState {}

impl BrightpearlState {
    /// Seeds the state from the dataset.
    pub fn new(_config: &BrightpearlConfig, _dataset: &Dataset, _start: DateTime<Utc>) -> Self {
        Self {}
    }
}

/// The platform routes.
pub fn router() -> Router<SharedState> {
    Router::new()
}

/// Inspection routes under `/_sandbox/brightpearl`.
pub fn admin_router() -> Router<SharedState> {
    Router::new()
}
