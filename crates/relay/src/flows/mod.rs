//! The connector flows. Each flow is one module with its steps (each traced) and its tests;
//! they share [`FlowContext`] and report a [`FlowReport`]. Their configuration sections live in
//! [`crate::config`].
//!
//! | flow | module | direction |
//! | --- | --- | --- |
//! | `orders` | [`orders`] | Norce orders → Brightpearl sales orders → Norce status |
//! | `shipping` | [`shipping`] | Norce orders → nShift bookings → Norce delivery notes; nShift alerts → parcel status |
//! | `stock` (entities `stock`, `prices`) | [`stock`] | Brightpearl availability and price lists → Norce Connect imports |
//! | `fulfilment` | [`orders`] | shipped Brightpearl goods-out notes → Norce delivery notes and status |
//!
//! Every flow keeps one contract, the [`Flow`] trait (name, accepts, ingest, run, schedule),
//! and is listed once, in [`registry`], which `relay run` and `relay serve` both use. What
//! becomes of an item whose attempt fails is decided in one place, [`action`], from the
//! failure's [`client_core::ErrorKind`].

pub mod action;
pub mod catalog;
pub mod context;
pub mod contract;
mod keyset;
pub mod orders;
pub mod shipping;
pub mod stock;

use std::sync::Arc;

pub use self::context::{
    FlowContext, FlowError, FlowReport, Ingested, SOURCE_BRIGHTPEARL_WEBHOOK, SOURCE_NORCE_EVENT,
    SOURCE_NORCE_ORDER, StopFlag,
};
pub use self::contract::{Flow, FlowEntry, FlowFuture, IngestFn, IngestFuture, RunFn};

/// Every flow, once, in the order `relay run` takes them: orders into the ERP first (the same
/// order push also feeds shipping), then shipping, stock and prices, then the fulfilment the
/// ERP shipped. `relay serve` schedules each of them.
pub fn registry() -> Vec<Arc<dyn Flow>> {
    vec![
        Arc::new(orders::Orders),
        Arc::new(shipping::Shipping),
        Arc::new(stock::Stock),
        Arc::new(orders::Fulfilment),
    ]
}
