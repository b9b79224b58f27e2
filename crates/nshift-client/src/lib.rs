#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod book;
mod client;
mod config;
mod error;
mod feed;
mod jwt;

pub use book::{Booking, BookingOutcome};
pub use client::{Label, LabelFormat, NshiftClient, PrintedShipment};
pub use config::{
    AuthMode, BookOnceOptions, DEFAULT_BASE_URL, DEFAULT_JWT_LIFETIME, DEFAULT_TIMEOUT,
    ENV_API_KEY_ID, ENV_AUTH, ENV_BASE_URL, ENV_DEVELOPER_ID, ENV_JWT_LIFETIME_SECS,
    ENV_JWT_METHOD, ENV_SECRET_ID, ENV_TIMEOUT_SECS, JwtMethod, NshiftClientBuilder, Transport,
    default_print_config,
};
pub use error::Error;
pub use feed::{FEED_START, FeedPage};

/// The generated models this client speaks (re-exported for convenience).
pub use nshift_models::delivery as models;
