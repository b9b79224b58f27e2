//! The state every route shares, and the configuration it is built from.
//!
//! A bottom module: it names each platform's configuration and state (`norce::config`,
//! `norce::state`, ...) but no handler, so the handlers can all take [`SharedState`] without a
//! module cycle. The crate root re-exports everything here.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::brightpearl::config::{
    self as brightpearl_config, BrightpearlConfig, BrightpearlCredentials,
};
use crate::brightpearl::state::BrightpearlState;
use crate::clock::Clock;
use crate::dataset::{Dataset, DatasetConfig};
use crate::drift::{Drift, DriftRule};
use crate::faults::Faults;
use crate::norce::config::{self as norce_config, NorceConfig, NorceCredentials};
use crate::norce::state::NorceState;
use crate::nshift::config::{self as nshift_config, NshiftConfig, NshiftCredentials};
use crate::nshift::state::NshiftState;

/// Everything the sandbox can be told at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// The seeded dataset.
    pub dataset: DatasetConfig,
    /// Virtual time at start (default: the real time at start).
    pub start_time: Option<DateTime<Utc>>,
    /// Norce simulator settings.
    pub norce: NorceConfig,
    /// nShift simulator settings.
    pub nshift: NshiftConfig,
    /// Brightpearl simulator settings.
    pub brightpearl: BrightpearlConfig,
    /// Spec drift rules in force from the start (none by default; see [`crate::drift`]).
    pub drift: Vec<DriftRule>,
}

/// State shared by every route.
#[derive(Debug)]
pub struct AppState {
    /// The configuration the sandbox started with.
    pub config: SandboxConfig,
    /// Where the sandbox listens (`http://127.0.0.1:port`).
    pub base_url: String,
    /// Virtual time.
    pub clock: Clock,
    /// Fault rules and the request log.
    pub faults: Faults,
    /// Spec drift rules: changes to successful JSON answers.
    pub drift: Drift,
    /// The seeded dataset every simulator started from.
    pub dataset: Dataset,
    /// Norce state.
    pub norce: NorceState,
    /// nShift state.
    pub nshift: NshiftState,
    /// Brightpearl state.
    pub brightpearl: BrightpearlState,
    /// For pushes (Norce order receiver and events, Brightpearl webhooks).
    pub http: reqwest::Client,
}

/// Shared handle to the state.
pub type SharedState = Arc<AppState>;

/// The demo credentials of every platform, printed by the binary as its first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// Norce.
    pub norce: NorceCredentials,
    /// nShift.
    pub nshift: NshiftCredentials,
    /// Brightpearl.
    pub brightpearl: BrightpearlCredentials,
}

impl AppState {
    /// Builds the state for a sandbox that will listen at `base_url`.
    pub fn new(config: SandboxConfig, base_url: String) -> Self {
        let start = config.start_time.unwrap_or_else(Utc::now);
        let dataset = Dataset::generate(&config.dataset, start);
        let norce = NorceState::new(&config.norce, &dataset, start);
        let nshift = NshiftState::new(&config.nshift, &dataset, start);
        let brightpearl = BrightpearlState::new(&config.brightpearl, &dataset, start);
        Self {
            faults: Faults::new(config.dataset.seed),
            drift: Drift::with_rules(&config.drift),
            clock: Clock::new(start),
            base_url,
            dataset,
            norce,
            nshift,
            brightpearl,
            http: reqwest::Client::new(),
            config,
        }
    }

    /// The demo credentials, with base URLs pointing at this sandbox.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            norce: norce_config::credentials(&self.config.norce, &self.base_url),
            nshift: nshift_config::credentials(&self.config.nshift, &self.base_url),
            brightpearl: brightpearl_config::credentials(&self.config.brightpearl, &self.base_url),
        }
    }
}
