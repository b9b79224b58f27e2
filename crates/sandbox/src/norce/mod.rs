//! The Norce Commerce simulator: identity (OAuth2 client credentials with the token rate limit),
//! Services 1.1 (metadata, order, product), Query 3.0 (OData orders), Connect 4.0 (order status,
//! delivery notes, cancel, asynchronous on-hand and price imports with jobs), and the pushes Norce
//! makes (order receiver and event webhooks, with Norce's retry schedule).
//!
//! Every rule and its source is listed in `crates/sandbox/README.md (Norce section)`. Requests are parsed with
//! the generated `norce-models` types, so the spec and the simulator cannot drift apart.
//!
//! Layering (no module uses one that uses it back): `config`, `model`, `state`, `reply` and
//! `odata` at the bottom, then `crate::state`, then `push`, `identity`, `call` and the
//! handlers; this file only declares, re-exports and routes.

// Helpers return a ready `Response` as their error; that is what the handlers send.
#![allow(clippy::result_large_err)]

mod admin;
mod call;
pub(crate) mod config;
mod connect;
mod identity;
mod model;
/// The OData `$filter` / `$orderby` parser of the Query simulator (public for the fuzz targets).
pub mod odata;
mod push;
mod query;
mod reply;
mod services;
pub(crate) mod state;

use axum::Router;
use axum::routing::{get, post};

pub use config::{
    NorceAccount, NorceConfig, NorceCredentials, NorcePriceList, OrderReceiverConfig,
    RETRY_SCHEDULE_SECS, WebhookConfig, credentials,
};
pub use model::STATUSES;
pub use state::NorceState;

use crate::state::SharedState;

/// The platform routes.
pub fn router() -> Router<SharedState> {
    use norce_models::{
        connect::operations as c, identity::operations as i, query::operations as q,
        services::operations as s,
    };
    Router::new()
        .route(i::REQUEST_TOKEN.path, post(identity::token))
        .route(s::GET_APPLICATION.path, get(services::get_application))
        .route(s::LIST_ORDERS3.path, get(services::list_orders3))
        .route(s::GET_ORDER.path, get(services::get_order))
        .route(s::LIST_PRODUCTS2.path, get(services::list_products2))
        .route(q::QUERY_ORDERS.path, get(query::query_orders))
        .route(c::SEND_ORDER_STATUS.path, post(connect::send_order_status))
        .route(
            c::CREATE_DELIVERY_NOTE.path,
            post(connect::create_delivery_note),
        )
        .route(c::CANCEL_ORDER.path, post(connect::cancel_order))
        .route(c::IMPORT_ONHANDS.path, post(connect::import_onhands))
        .route(
            c::IMPORT_SKU_PRICE_LISTS.path,
            post(connect::import_sku_price_lists),
        )
        .route(c::GET_JOB.path, get(connect::get_job))
        .route(c::GET_JOB_LOG.path, get(connect::get_job_log))
}

/// Inspection routes under `/_sandbox/norce`.
pub fn admin_router() -> Router<SharedState> {
    admin::router()
}
