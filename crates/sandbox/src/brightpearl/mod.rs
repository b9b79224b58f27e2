//! The Brightpearl simulator: OAuth (authorization code, rotating refresh tokens), private staff
//! apps, the 200-per-rolling-minute throttle, `{response}` / `{errors}` envelopes, ID sets and
//! their limits, `OPTIONS` URI generation, resource searches, products, availability, prices,
//! contacts, sales orders, sales credits, goods-out notes, goods-in notes on sales credits,
//! webhooks (with delivery) and multi-message.
//!
//! Every rule and its source in the reference notes is listed in `crates/sandbox/README.md (Brightpearl section)`.
//! Requests are parsed with the generated `brightpearl-models` types (bodies, `*Query`,
//! `*Headers::from_lookup`), so the spec and the simulator cannot drift apart.
//!
//! Layering (no module uses one that uses it back): `config` at the bottom, then `store` and
//! `state`, then `crate::state`, then `reply`, `idset` and `search`, then the handlers and `api`;
//! this file only declares, re-exports and routes.

mod admin;
mod api;
pub(crate) mod config;
mod contacts;
mod credits;
mod goods_in;
mod idset;
mod multi;
mod oauth;
mod orders;
mod products;
mod reply;
mod search;
pub(crate) mod state;
mod store;
mod warehouse;
mod webhooks;

use axum::Router;
use axum::routing::{any, get, post};

pub use config::{
    BrightpearlConfig, BrightpearlCredentials, DuplicateExternalRef, WarehouseShips, credentials,
};
pub use state::BrightpearlState;
pub use store::WebhookDelivery;

use crate::state::SharedState;

/// The platform routes.
pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/authorize/{account}", get(oauth::authorize))
        .route("/token/{account}", post(oauth::token))
        .route("/public-api/{account}/{*rest}", any(api::entry))
}

/// Inspection routes under `/_sandbox/brightpearl`.
pub fn admin_router() -> Router<SharedState> {
    admin::router()
}
