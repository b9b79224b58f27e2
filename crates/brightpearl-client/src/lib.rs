//! A Brightpearl API client: the generated `brightpearl-models` types over the auth-core tower
//! stack and reqwest.
//!
//! - Authentication: OAuth instance apps (authorize URL, code exchange, rotating refresh
//!   tokens persisted through a [`auth_core::TokenStore`], the token's `api_domain` honoured) or
//!   private apps with a staff token. `brightpearl-app-ref` (and `brightpearl-dev-ref` with
//!   OAuth) on every call.
//! - Throttling: one limiter per (account, developer) pool, shared process-wide
//!   ([`shared_limiter`]): 200 requests per rolling minute, corrected from the
//!   `brightpearl-requests-remaining` / `brightpearl-next-throttle-period` headers, paused by a
//!   503; throttled calls wait and are tried again.
//! - ID sets ([`IdSet`]): ids compressed into ranges, chunked by the resource's limit and the
//!   URI length, chunks fetched concurrently within the limiter.
//! - Search ([`SearchQuery`], [`Client::search_pages`]): typed builder, a paging stream, rows
//!   decoded by column name, reference maps.
//! - One [`Error`] type with [`Error::hint`]; `404 CMNC-404` on a GET (or an `OPTIONS`) is an
//!   empty result.
//!
//! ```no_run
//! # async fn demo() -> Result<(), brightpearl_client::Error> {
//! let client = brightpearl_client::Client::from_env()?;
//! let stock = client.availability(&[1001, 1002, 1003]).await?;
//! # let _ = stock; Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod config;
mod error;
mod idset;
mod limiter;
mod ops;
mod search;
mod transport;

pub use client::{Authorization, Client};
pub use config::{ClientBuilder, DEFAULT_OAUTH_URL, env};
pub use error::{ApiFailure, Error, Result};
pub use idset::{IdSet, IdSetError};
pub use limiter::shared_limiter;
pub use ops::{
    BundleAvailabilityMode, MAX_GOODS_OUT_NOTE_IDS, MAX_MULTI_MESSAGES, MAX_ORDER_IDS,
    MAX_OTHER_IDS, MAX_PRODUCT_IDS, MAX_SIMULATE_IDS, NewContact,
};
pub use search::{
    ContactRow, GoodsOutNoteRow, OrderRow, ProductRow, SearchPage, SearchQuery, SearchResource,
    SortDirection,
};
pub use transport::{BoxTransport, Session};

/// The generated models, re-exported.
pub use brightpearl_models as models;
