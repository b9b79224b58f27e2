//! Norce → nShift shipping: qualifying Norce orders become nShift shipments, booked exactly
//! once; the labels are saved; the parcel numbers go back to Norce as a delivery note and the
//! order becomes Delivered; nShift's status events then update the recorded parcel status.
//!
//! # Pick-up
//!
//! * **Push**: the order receiver stores Norce's `OrderRequest` in the inbox (source
//!   `norce-order`); [`ingest`] turns it into a `Pending` entity without calling any platform.
//!   The shipment is built from the pushed data (what the shop sent).
//! * **Poll** (`[shipping] poll = true`, the default): Query 3.0 orders in the configured
//!   statuses, `updated ge <cursor − 5 min>` (the overlap catches late commits), oldest
//!   first. The cursor `shipping` is the latest `updated` seen (RFC 3339);
//!   `relay cursor set shipping <time>` moves it back to backfill.
//!   With no cursor every qualifying order is picked up. The shipment is built from `GetOrder`.
//! * **Go-live cutoff** (`shipping.since`): the poll reads only orders created since it (and
//!   `updated` from the later of the cursor and the cutoff); a push placed before it
//!   (`SubmitDate`), or any order whose `GetOrder` `OrderDate` is before it (an event, a replay),
//!   is recorded `Skipped`, never booked.
//!
//! Both key the entity by the Norce basket id (`ClientOrderRef` = Query `quotationId`), so an
//! order that is both pushed and polled is one entity. nShift's `orderNo` (the `book_once` key),
//! the label file names and the delivery note use the Norce order number (`NC-100001`).
//!
//! # Steps (the entity's `step` after each one)
//!
//! | step | platform call | replay safety |
//! | --- | --- | --- |
//! | `resolved` | Query (pushed orders: by `quotationId`), `GetOrder`: status check, order number, data | read only |
//! | `booked` | nShift `book_once_exclusive(order number, shipment)`; the pickup point is looked up only for an order without one, or after nShift refused the order's | `book_once` searches stored shipments by `orderNo` first: at most one printed shipment per order (one search per booking: an entity has one worker at a time) |
//! | `labels_saved` | labels from the booking, else `GET /shipments/{id}/pdfs` | files are written to a temporary name and renamed, so a crash leaves either no file or the whole file |
//! | `note_created` | `CreateDeliveryNote`; when resumed at this step (or for an order found already booked), `GetOrder` first and the note only if no note of the order has this note number or these parcel numbers | Norce's CreateDeliveryNote is not idempotent: the check runs before every attempt that may follow one that reached Norce |
//! | `status_sent` (Done) | `SendOrderStatus` Delivered (PartlyDelivered when order lines were left off the note) | setting a status twice is harmless |
//!
//! Every step is recorded after its platform call, so a crash or a dropped future at any point
//! resumes at the first step not recorded, and that step checks the target first. Finished
//! entities (Done, Skipped) are never processed again, whatever the cursor says.
//!
//! # Failures
//!
//! What becomes of a failed attempt is the one decision of [`crate::flows::action`], from the
//! failure's kind; for this flow that means:
//!
//! * Unmapped delivery method: **failed permanently** (dead letter) with the configuration key
//!   to add, so that after adding the mapping `relay replay` ships it. Delivery methods that are
//!   never shipped through nShift (store pickup, digital goods) belong in
//!   `skip_delivery_methods`: those orders are `Skipped`.
//! * A booking nShift refuses (422, 400, or a stored shipment that is INVALID/WARNED):
//!   permanent, with nShift's messages. The order's unprinted stored shipments are deleted and
//!   the entity goes back to re-reading the order from Norce, so fixing the order in Norce and
//!   replaying books it.
//! * Everything transient (5xx, timeouts, lost answers) is retried on the next pass and
//!   dead-lettered after `run.max_attempts`; a write whose answer was lost is reconciled first
//!   (`book_once` searches, the delivery note is looked for on the order). A throttled call
//!   leaves the order pending without counting an attempt.
//! * Wrong credentials or a missing licence stop the pass (`Err`): no item could succeed.
//!
//! # Cancellations
//!
//! An order cancelled in Norce (`OrderCancelledEvent`, or found `Cancelled` by the poll while
//! this flow holds it) becomes an entity of the flow `cancel` (same key), processed after the
//! orders of a pass: the booked nShift shipment is cancelled once, unless the alerts feed
//! recorded it handed over to the carrier (reported as a dead letter); an order not booked yet
//! is never booked; the Brightpearl order gets `orders.cancelled_status_id`. See `cancel`.
//!
//! # Returns
//!
//! A delivery method's mapping may name a return product (`return_service`) and ask for the
//! return label with the outbound shipment (`return_with_outbound`): then the booking asks
//! for the service's return option (`normalShipment` and `returnShipment` both true), nShift
//! prints two shipments, and the return one (id, parcel numbers) is recorded in the payload's
//! `return_shipment`, never on the delivery note; its labels are saved beside the outbound
//! ones as `<order>-return-<n>.pdf`. On demand, `relay return ORDER` or the console queue an
//! entity of the flow `return` (same key), processed after the orders of a pass: a
//! return-only shipment booked exactly once under its own `orderNo` (`<order>-R`). See
//! `returns`.
//!
//! # Modules
//!
//! | module | concern |
//! | --- | --- |
//! | `names` | the flow, cursor and step names |
//! | `settings` | `[shipping]` as a pass uses it: built-in service mappings, the service of an order |
//! | `pickup` | the inbox (pushes, Norce order events) and the Query poll |
//! | `cancel` | orders cancelled in Norce: the nShift shipment and the Brightpearl order |
//! | `returns` | return labels booked on demand (`relay return`, the console) |
//! | `steps` | the state machine of an entity: resolve, book, labels, note, status |
//! | `order`, `shipment`, `labels`, `note`, `track` | the payload, the nShift booking, label files, the Norce delivery note and status, the alerts feed |

//! # Tracking
//!
//! The nShift alerts feed (cursor `shipping-alerts`, nShift's `fetchId`) is read after the
//! items. Each `STATUS_TRANSITION_<STATUS>` event updates the recorded parcels of the order:
//! the nShift status and the Norce parcel status it maps to (DELIVERED → 4 Delivered,
//! DELIVERING, i.e. waiting at the pickup point → 11 Ready for pickup, CANCELLED → 6 Canceled;
//! the in-transit statuses have no Norce parcel status). Norce's documented API has no call that
//! updates the parcel status of an existing delivery note, so the status is recorded in the
//! entity's payload (see `relay status`) and, with `shipping.parcel_status =
//! "update_delivery_note"` (the default), a changed Norce parcel status sends the delivery note
//! again with the same `NoteNo` (see [`ParcelStatusWriteback`]).

mod cancel;
mod labels;
mod names;
mod note;
mod order;
mod pickup;
mod returns;
mod settings;
mod shipment;
mod steps;
mod track;

use std::time::{Duration, Instant};

use tracing::Instrument as _;

pub use self::cancel::CANCEL_FLOW;
pub use self::names::{ALERTS_CURSOR, FLOW};
pub(crate) use self::order::country_alpha2;
pub use self::pickup::{accepts, ingest};
pub use self::returns::{RETURN_FLOW, ReturnRefused, ReturnRequest, prepare_return};
use self::settings::Settings;
pub use self::settings::{
    ParcelStatusWriteback, ServiceMapping, ServiceOverride, ShippingConfig, agent_types,
    services_in_force,
};
use crate::config::ServeConfig;
use crate::flows::context::{
    FlowContext, FlowError, FlowReport, PassOrigin, elapsed_ms, for_each_pending,
};
/// The inbox sources this flow takes (see [`accepts`]).
pub use crate::flows::context::{SOURCE_NORCE_EVENT, SOURCE_NORCE_ORDER};
use crate::flows::contract::{Flow, FlowFuture, IngestFuture, every};
use crate::state::InboxItem;

/// The shipping flow in the [registry](crate::flows::registry).
#[derive(Debug, Clone, Copy, Default)]
pub struct Shipping;

impl Flow for Shipping {
    fn name(&self) -> &'static str {
        FLOW
    }

    /// Its own entities, the cancellations of orders cancelled in Norce (`cancel`) and the
    /// return labels asked for on demand (`return`).
    fn entity_flows(&self) -> &'static [&'static str] {
        &[FLOW, CANCEL_FLOW, RETURN_FLOW]
    }

    fn accepts(&self, source: &str) -> bool {
        accepts(source)
    }

    fn ingest<'a>(&'a self, ctx: &'a FlowContext, item: &'a InboxItem) -> IngestFuture<'a> {
        Box::pin(ingest(ctx, item))
    }

    fn run<'a>(&'a self, ctx: &'a FlowContext) -> FlowFuture<'a> {
        Box::pin(run(ctx))
    }

    fn every(&self, serve: &ServeConfig) -> Option<Duration> {
        every(serve.shipping_every_secs)
    }

    /// Its ingest records a pushed order whole, so a pass after a push needs no poll.
    fn run_after_ingest(&self, serve: &ServeConfig) -> Duration {
        Duration::from_millis(serve.shipping_run_after_ingest_ms)
    }

    /// Items are leased one by one; the poll and the alerts feed run on one worker at a time.
    fn parallel(&self) -> bool {
        true
    }
}

/// The lease of the Query poll (its cursor is the flow's).
const POLL_LEASE: &str = "poll/shipping";
/// The lease of the nShift alerts feed (its cursor is `shipping-alerts`).
const ALERTS_LEASE: &str = "poll/shipping-alerts";

/// One pass: poll, process every pending entity, read the alerts feed.
pub async fn run(ctx: &FlowContext) -> Result<FlowReport, FlowError> {
    let started = Instant::now();
    let norce = ctx.norce()?;
    let nshift = ctx.nshift()?;
    let settings = Settings::new(ctx, Some(nshift.base_url()))?;
    let mut report = FlowReport {
        flow: FLOW.to_owned(),
        ..FlowReport::default()
    };

    // A pass after a push processes what was pushed; the schedule's passes poll and track.
    let scheduled = ctx.pass_origin == PassOrigin::Schedule;
    if settings.poll && scheduled {
        let poll = pickup::poll(ctx, norce, &settings).instrument(tracing::info_span!(
            "shipping.step",
            flow = FLOW,
            step = "poll",
            source_id = tracing::field::Empty
        ));
        // One worker polls at a time: two would move the one cursor.
        let already_done = ctx.exclusive(POLL_LEASE, poll).await?.unwrap_or(0);
        report.seen += already_done;
        report.done += already_done;
    }

    // Alerts first: an order whose parcel status changed is set back to pending and its
    // delivery note is sent again in this same pass.
    if settings.track && scheduled {
        let span = tracing::info_span!(
            "shipping.step",
            flow = FLOW,
            step = "track",
            source_id = tracing::field::Empty
        );
        let alerts = track::read_alerts(ctx, nshift).instrument(span);
        match ctx.exclusive(ALERTS_LEASE, alerts).await {
            Ok(updated) => tracing::debug!(?updated, "parcel statuses recorded"),
            Err(e) => {
                tracing::warn!(error = %e, "nShift alerts not read this pass; parcel status unchanged")
            }
        }
    }
    let tally = |outcome| report.add(outcome);
    for_each_pending(
        ctx,
        FLOW,
        settings.concurrency,
        |record| Box::pin(steps::process(ctx, &settings, record)),
        tally,
    )
    .await?;
    // Cancellations after the orders: a shipment booked in this pass is cancelled in it too.
    let tally = |outcome| report.add(outcome);
    for_each_pending(
        ctx,
        CANCEL_FLOW,
        settings.concurrency,
        |record| Box::pin(cancel::process(ctx, record)),
        tally,
    )
    .await?;
    // Returns asked for on demand, after the orders: an order booked in this pass can get its
    // return label in it too.
    let tally = |outcome| report.add(outcome);
    for_each_pending(
        ctx,
        RETURN_FLOW,
        settings.concurrency,
        |record| Box::pin(returns::process(ctx, &settings, record)),
        tally,
    )
    .await?;

    report.duration_ms = elapsed_ms(started);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::context::Ingested;

    /// `relay run` and `relay serve` drive passes as `Send` futures (boxed, spawned).
    #[allow(dead_code)]
    fn the_pass_is_send(
        ctx: &FlowContext,
    ) -> impl std::future::Future<Output = Result<FlowReport, FlowError>> + Send + '_ {
        run(ctx)
    }

    #[allow(dead_code)]
    fn ingest_is_send<'a>(
        ctx: &'a FlowContext,
        item: &'a InboxItem,
    ) -> impl std::future::Future<Output = Result<Ingested, FlowError>> + Send + 'a {
        ingest(ctx, item)
    }
}
