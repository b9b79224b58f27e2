#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

/// Builder setters that store their argument: `name(type) => field = value;`.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($ty:ty) => $field:ident = $value:expr;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $name: $ty) -> Self {
            self.$field = $value;
            self
        }
    )*};
}

mod client;
mod config;
mod error;
mod imports;
mod jobs;
mod navigation;
mod ops;
mod registry;

pub use client::{NorceClient, NorceClientBuilder};
/// Re-exported: the type-erased transport under the stack, and its default timeout.
pub use client_core::{BoxTransport, DEFAULT_TIMEOUT};
pub use config::{Endpoints, Environment, LEGACY_STORM_TOKEN_URL, ParseStageError, Stage};
pub use error::{Error, JobFailure};
pub use imports::{
    ImportOptions, onhand_fields_that_are_set, onhand_header, price_list_fields_that_are_set,
    price_list_header,
};
pub use jobs::{JOB_FAILED, JOB_SUCCEEDED, JOB_VALIDATION_FAILED, WaitOptions};
pub use navigation::{NAVIGATION_SETTING, Navigation, QueryNavigation};
pub use ops::DEFAULT_PAGE_SIZE;

/// Re-exported so callers need not depend on auth-core for secrets and retry settings.
pub use auth_core::{RetryConfig, SecretString};
/// Re-exported: settings, and the shared request path's failures (what [`Error::Failure`]
/// carries).
pub use client_core::{ErrorKind, Failure, HttpFailure, Settings, SettingsError};
/// Re-exported: what [`NorceClient::health`] tells.
pub use client_core::{HealthSnapshot, LastError};
/// Re-exported: the generated models, and their operation traits (`use
/// norce_client::models::services::operations::ServicesApi as _` to call them on a client).
pub use norce_models as models;
