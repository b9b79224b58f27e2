#![doc = include_str!("../README.md")]
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
