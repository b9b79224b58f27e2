//! The nShift Delivery (`rs-extapi/v1`) simulator.
//!
//! Serves the API under `/rs-extapi/v1` and, for the `href`s it returns, under a
//! deployment-versioned prefix ([`HREF_PREFIX`]) as the real API does, so clients that follow
//! `href`s as opaque URLs work and clients that rebuild URLs are still served.
//!
//! Every rule, its source in the reference notes and the test that covers it are listed in
//! `crates/sandbox/README.md` (nShift section).
//!
//! Layering (no module uses one that uses it back): `catalog`, `numbers`, `store`, `config` and
//! `state` at the bottom, then `crate::state`, then the handlers; this file only declares,
//! re-exports and routes.

mod address;
mod admin;
mod auth;
pub mod catalog;
pub(crate) mod config;
mod handlers;
mod label;
mod numbers;
pub mod price;
mod session;
pub(crate) mod state;
mod store;
mod validate;
mod wire;

use axum::Router;

pub use catalog::ServiceConfig;
pub use config::{
    ApiKeyConfig, BASE_PATH, HREF_PREFIX, JwtMethods, Licence, NshiftConfig, NshiftCredentials,
    PriceListEntry, ProgressConfig, credentials,
};
pub use state::NshiftState;

use crate::state::SharedState;

/// The platform routes: `/rs-extapi/v1/...` and the same under [`HREF_PREFIX`].
pub fn router() -> Router<SharedState> {
    Router::new()
        .nest(BASE_PATH, handlers::api())
        .nest(HREF_PREFIX, handlers::api())
}

/// Inspection routes under `/_sandbox/nshift`.
pub fn admin_router() -> Router<SharedState> {
    admin::router()
}
