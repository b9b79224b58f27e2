//! A thin Norce Commerce client: the generated `norce-models` types over auth-core's tower
//! layers and client-core's reqwest transport.
//!
//! * Services 1.1: [`NorceClient::get_application`], [`NorceClient::get_order`],
//!   [`NorceClient::list_orders`] (a stream of `ListOrders3` pages).
//! * Query 3.0: [`NorceClient::query_orders`] (a stream following `@odata.nextLink`).
//! * Connect 4.0: [`NorceClient::send_order_status`], [`NorceClient::create_delivery_note`],
//!   [`NorceClient::cancel_order`], [`NorceClient::import_onhands`],
//!   [`NorceClient::import_sku_price_lists`] (the `X-StormConnect-Header` is computed from the
//!   rows), [`NorceClient::get_job`], [`NorceClient::get_job_log`],
//!   [`NorceClient::wait_for_job`].
//! * [`NorceClient::verify`]: token + GetApplication, for `relay verify`.
//!
//! Stack, outermost first: `TraceLayer → RetryLayer → AuthLayer → StaticHeadersLayer
//! (ApplicationId) → transport`. Norce publishes no Services/Connect quota (and no number for
//! Query), so there is no API rate limiter; 429s are retried honouring `Retry-After`. The
//! token cache and the token-endpoint limiter (3/min, burst 20) are shared by every client of
//! the process with the same identity host and client id.
//!
//! ```no_run
//! # async fn demo() -> Result<(), norce_client::Error> {
//! use futures::TryStreamExt as _;
//! let client = norce_client::NorceClient::from_env()?;
//! let app = client.verify().await?;
//! println!("connected to application {} ({:?})", app.id, app.name);
//! let query = norce_models::query::QueryOrdersQuery { top: Some(100), ..Default::default() };
//! let pages: Vec<_> = client.query_orders(query).try_collect().await?;
//! # let _ = pages; Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

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
pub use error::{Error, ErrorResponse, JobFailure, Throttler};
pub use imports::{
    ImportOptions, onhand_fields_that_are_set, onhand_header, price_list_fields_that_are_set,
    price_list_header,
};
pub use jobs::{JOB_FAILED, JOB_SUCCEEDED, JOB_VALIDATION_FAILED, WaitOptions};
pub use navigation::{NAVIGATION_SETTING, Navigation, QueryNavigation};
pub use ops::DEFAULT_PAGE_SIZE;

/// Re-exported so callers need not depend on auth-core for secrets and retry settings.
pub use auth_core::{RetryConfig, SecretString};
/// Re-exported: settings from the environment or explicit pairs.
pub use client_core::{Settings, SettingsError};
/// Re-exported: the generated models.
pub use norce_models as models;
