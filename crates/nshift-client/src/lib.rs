#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

// The modules and what each imports (no cycles; `config` and `label` import none): book →
// client, error, feed, label; builder → client, config, error, jwt; feed → client, error;
// client → config, error, label; jwt → config.
mod book;
mod builder;
mod client;
mod config;
mod error;
mod feed;
mod jwt;
mod label;

pub use book::{Booking, BookingOutcome};
pub use builder::NshiftClientBuilder;
pub use client::NshiftClient;
pub use config::{
    AuthMode, BookOnceOptions, DEFAULT_BASE_URL, DEFAULT_JWT_LIFETIME, DEFAULT_TIMEOUT,
    ENV_API_KEY_ID, ENV_AUTH, ENV_BASE_URL, ENV_DEVELOPER_ID, ENV_JWT_LIFETIME_SECS,
    ENV_JWT_METHOD, ENV_SECRET_ID, ENV_TIMEOUT_SECS, JwtMethod, Transport, default_print_config,
};
pub use error::Error;
pub use feed::{FEED_START, FeedPage};
pub use label::{Label, LabelFormat, PrintedShipment};

/// Re-exported: settings, and the shared request path's failures and their classification
/// (what [`Error::Failure`] carries).
pub use client_core::{ErrorKind, Failure, HttpFailure, Settings, SettingsError};
/// Re-exported: what [`NshiftClient::health`] tells.
pub use client_core::{HealthSnapshot, LastError};
/// The generated models this client speaks.
pub use nshift_models::delivery as models;
/// Every generated operation as a method of [`NshiftClient`] (bring it into scope).
pub use nshift_models::delivery::operations::DeliveryApi;
