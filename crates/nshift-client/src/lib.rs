//! A client for the nShift Delivery REST API (`rs-extapi/v1`, formerly Unifaun Online).
//!
//! Built on the generated [`nshift_models`] types and the shared tower layers of
//! [`auth_core`]: every request goes through Trace → Retry → Auth (static Basic or
//! `Bearer id-secret`, or a cached JWT from `/sessions/jwt`) →
//! [`client_core::ReqwestTransport`] (or a transport of your own).
//!
//! * [`NshiftClient::builder`] / [`NshiftClient::from_env`]: configuration from code or the
//!   `NSHIFT_*` environment variables (see the README), with errors that name the setting.
//! * Operations: create and print shipments with decoded labels, stored shipments (store,
//!   search, print, delete), cancel, documents, pickup points, zip codes, address checks,
//!   price quotes, and the `fetchId` feeds (status events, printed shipments, price history)
//!   as [`futures::Stream`]s that honour `minDelay`.
//! * [`NshiftClient::book_once`]: book a shipment exactly once across retries and crashes.
//! * [`Error`]: one error type with [`Error::hint`] for operators.
//!
//! ```no_run
//! # async fn demo() -> Result<(), nshift_client::Error> {
//! use nshift_client::NshiftClient;
//! let client = NshiftClient::from_env()?;
//! let agents = client
//!     .find_agents(&nshift_models::delivery::FindAgentsQuery {
//!         type_: "POSTNORD".into(),
//!         zip: Some("11359".into()),
//!         country_code: "SE".into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! println!("{} pickup points", agents.len());
//! # Ok(()) }
//! ```
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
