#![doc = include_str!("../README.md")]

mod engine;
mod failure;
mod health;
mod kind;
pub mod options;
mod query;
pub mod settings;
mod transport;

/// Re-exported: what a [`HealthSnapshot`] says is left of a rate budget.
pub use auth_core::BudgetLeft;
pub use engine::{ApiRequest, Engine, Platform, RequestInfo, join_path};
pub use failure::{BODY_LIMIT, Failure, HttpFailure, body_text};
pub use health::{HealthRecorder, HealthSnapshot, LastError};
pub use kind::ErrorKind;
pub use options::{CommonOptions, TransportService};
pub use query::{append_query, query_pairs};
pub use settings::{Settings, SettingsError, base_url};
pub use transport::{BoxTransport, DEFAULT_TIMEOUT, ReqwestTransport, is_timeout};
