//! The connector flows. Each flow is one module with its configuration section, its steps
//! (each traced) and its tests; they share [`FlowContext`] and report a [`FlowReport`].
//!
//! | flow | module | direction |
//! | --- | --- | --- |
//! | `shipping` | [`shipping`] | Norce orders → nShift bookings → Norce delivery notes; nShift alerts → parcel status |
//! | `stock`, `prices` | [`stock`] | Brightpearl availability and price lists → Norce Connect imports |
//! | `orders`, `fulfilment` | [`orders`] | Norce orders → Brightpearl sales orders → Norce status; shipped goods-out notes → Norce delivery notes |

pub mod orders;
pub mod shipping;
pub mod stock;

use std::sync::Arc;

use serde::Serialize;

use crate::config::RelayConfig;
use crate::state::{StateError, Store};

/// What every flow needs: the store, the clients of the configured platforms, the settings.
#[derive(Clone)]
pub struct FlowContext {
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Norce, when configured.
    pub norce: Option<norce_client::NorceClient>,
    /// nShift, when configured.
    pub nshift: Option<nshift_client::NshiftClient>,
    /// Brightpearl, when configured.
    pub brightpearl: Option<brightpearl_client::Client>,
    /// The configuration file's contents (defaults when there is none).
    pub config: Arc<RelayConfig>,
}

impl FlowContext {
    /// The Norce client, or an error naming the settings to set.
    pub fn norce(&self) -> Result<&norce_client::NorceClient, FlowError> {
        self.norce.as_ref().ok_or(FlowError::NotConfigured { platform: "Norce", settings: "NORCE_CLIENT_ID, NORCE_CLIENT_SECRET, NORCE_APPLICATION_ID" })
    }

    /// The nShift client, or an error naming the settings to set.
    pub fn nshift(&self) -> Result<&nshift_client::NshiftClient, FlowError> {
        self.nshift.as_ref().ok_or(FlowError::NotConfigured { platform: "nShift", settings: "NSHIFT_API_KEY_ID, NSHIFT_SECRET_ID" })
    }

    /// The Brightpearl client, or an error naming the settings to set.
    pub fn brightpearl(&self) -> Result<&brightpearl_client::Client, FlowError> {
        self.brightpearl.as_ref().ok_or(FlowError::NotConfigured { platform: "Brightpearl", settings: "BRIGHTPEARL_ACCOUNT, BRIGHTPEARL_APP_REF and a token" })
    }
}

/// What one run of a flow did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlowReport {
    /// Flow name.
    pub flow: String,
    /// Items looked at.
    pub seen: u64,
    /// Items created in the target platform this run (shipments booked, orders created, SKUs imported).
    pub booked: u64,
    /// Items whose result was written back to the source (delivery notes, order statuses).
    pub written_back: u64,
    /// Items finished (now or before) and not touched again.
    pub done: u64,
    /// Items skipped by the mapping.
    pub skipped: u64,
    /// Items that failed this run (kept for retry, or dead-lettered after the attempt limit).
    pub failed: u64,
    /// Wall time of the run in milliseconds.
    pub duration_ms: u64,
}

/// A flow that could not run at all (item failures are counted in the report instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// A platform the flow needs is not configured.
    #[error("{platform} is not configured: set {settings}")]
    NotConfigured {
        /// The platform.
        platform: &'static str,
        /// What to set.
        settings: &'static str,
    },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A Norce call failed where the flow cannot go on.
    #[error("Norce: {0}")]
    Norce(#[from] norce_client::Error),
    /// An nShift call failed where the flow cannot go on.
    #[error("nShift: {0}")]
    Nshift(#[from] nshift_client::Error),
    /// A Brightpearl call failed where the flow cannot go on.
    #[error("Brightpearl: {0}")]
    Brightpearl(#[from] brightpearl_client::Error),
    /// A configuration value is unusable.
    #[error("configuration `{setting}`: {reason}")]
    Config {
        /// The setting (TOML key path).
        setting: String,
        /// Why.
        reason: String,
    },
    /// Writing a label or another file failed.
    #[error("cannot write `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}
