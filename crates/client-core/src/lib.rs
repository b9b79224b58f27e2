#![doc = include_str!("../README.md")]

mod engine;
mod failure;
mod kind;
pub mod options;
mod query;
pub mod settings;
mod transport;

pub use engine::{ApiRequest, Engine, Platform, RequestInfo, join_path};
pub use failure::{BODY_LIMIT, Failure, HttpFailure, body_text};
pub use kind::ErrorKind;
pub use options::{CommonOptions, TransportService};
pub use query::{append_query, query_pairs};
pub use settings::{Settings, SettingsError, base_url};
pub use transport::{BoxTransport, DEFAULT_TIMEOUT, ReqwestTransport, is_timeout};
