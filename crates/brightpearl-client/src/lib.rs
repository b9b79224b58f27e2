#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod client;
mod config;
mod credit;
pub mod env;
mod error;
mod idset;
mod ops;
mod search;
mod session;

pub use auth_core::{Budget, BudgetUsage, Priority, RateLimitKey, RateLimiter};
pub use client::{Authorization, BundleAvailabilityMode, Client};
pub use client_core::BoxTransport;
/// Re-exported: what [`Client::health`] tells.
pub use client_core::{BudgetLeft, HealthSnapshot, LastError};
pub use config::{ClientBuilder, pool_limiter, shared_limiter};
pub use credit::{GoodsInOutcome, SALES_CREDIT_ORDER_TYPE_ID, SalesCreditOutcome};
pub use env::DEFAULT_OAUTH_URL;
pub use error::{Error, NothingFound, Result};
pub use idset::{IdSet, IdSetError};
pub use ops::{
    MAX_GOODS_OUT_NOTE_IDS, MAX_MULTI_MESSAGES, MAX_ORDER_IDS, MAX_OTHER_IDS, MAX_PRODUCT_IDS,
    MAX_SIMULATE_IDS, NewContact,
};
pub use search::{
    ContactRow, GoodsOutNoteRow, OrderRow, ProductRow, SearchPage, SearchQuery, SearchResource,
    SortDirection,
};
pub use session::Session;

/// The generated models, re-exported.
pub use brightpearl_models as models;
