//! Orders cancelled in Norce: the nShift shipment the shipping flow booked is cancelled once,
//! and the Brightpearl sales order the orders flow created gets `orders.cancelled_status_id`.
//!
//! A Norce `OrderCancelledEvent` (inbox source `norce-event`, with `shipping.cancel_shipments`),
//! or the shipping poll finding an order it holds in status Cancelled, queues an entity of the flow [`CANCEL_FLOW`], keyed like the shipping entity by the basket id
//! (`ClientOrderRef`). The shipping pass processes these entities after its own:
//!
//! | step | platform call | replay safety |
//! | --- | --- | --- |
//! | `resolved` | none: the shipping entity says which shipments were booked and their last nShift status, and which return labels (booked with the outbound, or asked for on their own: flow `return`) go with them | read only; a shipping entity not booked yet is marked `Skipped` (step `cancelled`), so it is never booked; so is a return asked for and not booked yet |
//! | `shipment_cancelling` | recorded *before* the first `DELETE /shipments/{id}` | each shipment id is added to the payload's `cancelled` after its DELETE answered (204, or 404: already gone), so a retry only sends the ones not answered yet |
//! | `shipment_cancelled` | all DELETEs answered; the shipping entity's step becomes `cancelled` | never sent again |
//! | `erp_cancelled` | Brightpearl `UpdateOrderStatus` to `orders.cancelled_status_id` on the order's `orders` entity's target id | setting a status twice is harmless |
//! | `cancelled` (Done) | none | |
//!
//! nShift documents no "handed over to the carrier" flag. The last status the alerts feed
//! recorded on the shipping entity decides: a shipment whose status is not one of
//! `shipping.cancellable_statuses` (default `PRINTED`; no recorded status counts as `PRINTED`)
//! is not cancelled; the cancellation entity is dead-lettered with "handed over to the carrier
//! on …; cancel it with the carrier" (after the Brightpearl status is set), and the shipping
//! entity's step becomes `cancel_refused`.

use nshift_client::models::CancelShipmentPath;
use nshift_client::{DeliveryApi as _, NshiftClient};
use serde::{Deserialize, Serialize};

use super::names::{FLOW, steps as shipping_steps};
use super::order::ShippingItem;
use crate::flows::action::{ItemError, apply, outcome_of};
use crate::flows::context::{FlowContext, FlowError, Ingested, Outcome};
use crate::state::{EntityRecord, EntityUpdate, InboxItem, Status};

/// The entities of cancellations (keyed by the Norce basket id, `ClientOrderRef`).
pub const CANCEL_FLOW: &str = "cancel";
/// Norce Query `statusId` Cancelled (`config::shipping::ORDER_STATUSES`).
pub(crate) const NORCE_CANCELLED_STATUS: i32 = 6;
/// The Norce event that queues a cancellation.
pub(crate) const CANCELLED_EVENT: &str = "OrderCancelledEvent";

/// Step names of a cancellation entity (and the step given to the entities it cancelled).
pub(crate) mod steps {
    /// The shipping entity was read; the shipments to cancel are in the payload.
    pub const RESOLVED: &str = "resolved";
    /// Recorded before the first DELETE: a retry sends only the ones not answered yet.
    pub const SHIPMENT_CANCELLING: &str = "shipment_cancelling";
    /// Every shipment that could be cancelled was.
    pub const SHIPMENT_CANCELLED: &str = "shipment_cancelled";
    /// The Brightpearl order has the cancelled status.
    pub const ERP_CANCELLED: &str = "erp_cancelled";
    /// Done; also the step given to the shipping and orders entities it cancelled.
    pub const CANCELLED: &str = "cancelled";
    /// The step given to a shipping entity whose shipment was handed over already.
    pub const CANCEL_REFUSED: &str = "cancel_refused";
}

/// The payload of a cancellation entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CancelItem {
    /// The basket id (the shipping entity's key).
    pub client_order_ref: String,
    /// The Norce order id, when the event named it.
    pub order_id: Option<i64>,
    /// The Norce order number (the orders entity's key).
    pub order_no: Option<String>,
    /// nShift shipment ids to cancel.
    pub shipments: Vec<String>,
    /// Shipment ids whose DELETE was answered (cancelled, or already gone).
    pub cancelled: Vec<String>,
    /// Why shipments were not cancelled (handed over to the carrier).
    pub handed_over: Option<String>,
    /// The Brightpearl order id whose status was set.
    pub erp_order_id: Option<String>,
    /// What was left as it is, and why (no Brightpearl order, no status configured).
    pub notes: Vec<String>,
}

/// Queues a cancellation for a Norce `OrderCancelledEvent` (without calling any platform).
/// A cancellation already known is left as it is.
pub(crate) fn ingest_cancelled(
    ctx: &FlowContext,
    item: &InboxItem,
    event: &norce_client::models::event::Event,
) -> Result<Ingested, FlowError> {
    use norce_client::models::event::Event;
    let (basket, order_id, order_no) = match event {
        Event::Order(e) => (
            e.client_order_ref.trim().to_owned(),
            Some(e.order_id),
            Some(e.order_no.trim().to_owned()).filter(|n| !n.is_empty()),
        ),
        _ => return Ok(Ingested::Nothing),
    };
    if basket.is_empty() {
        tracing::warn!(key = %item.key, "OrderCancelledEvent without ClientOrderRef ignored");
        return Ok(Ingested::Nothing);
    }
    if ctx.store.get(CANCEL_FLOW, &basket)?.is_some() {
        tracing::debug!("cancellation already known; event ignored");
        return Ok(Ingested::Nothing);
    }
    let queued = CancelItem {
        client_order_ref: basket.clone(),
        order_id,
        order_no,
        ..CancelItem::default()
    };
    ctx.store
        .upsert_pending(CANCEL_FLOW, &basket, Some(&to_json(&queued)?))?;
    tracing::info!(order_id = ?order_id, "order cancelled in Norce: cancellation queued");
    Ok(Ingested::Work)
}

/// Queues a cancellation for an order the poll found `Cancelled` in Norce, when this flow
/// holds the order (a shipping entity exists) and no cancellation is known yet; orders relay
/// never handled are left alone.
pub(crate) fn queue_polled(
    ctx: &FlowContext,
    basket: &str,
    order_id: i64,
    order_no: &str,
) -> Result<(), FlowError> {
    if ctx.store.get(FLOW, basket)?.is_none() || ctx.store.get(CANCEL_FLOW, basket)?.is_some() {
        return Ok(());
    }
    let queued = CancelItem {
        client_order_ref: basket.to_owned(),
        order_id: Some(order_id),
        order_no: Some(order_no.trim().to_owned()).filter(|n| !n.is_empty()),
        ..CancelItem::default()
    };
    ctx.store
        .upsert_pending(CANCEL_FLOW, basket, Some(&to_json(&queued)?))?;
    tracing::info!(
        order_id,
        "order found cancelled in Norce by the poll: cancellation queued"
    );
    Ok(())
}

fn to_json(item: &CancelItem) -> Result<String, FlowError> {
    serde_json::to_string(item).map_err(super::order::storage_error)
}

/// Processes one cancellation entity from its recorded step.
pub(crate) async fn process(ctx: &FlowContext, record: EntityRecord) -> Result<Outcome, FlowError> {
    let source_id = record.source_id.clone();
    let mut outcome = Outcome::default();
    let error = match advance(ctx, record, &mut outcome).await {
        Ok(()) => return Ok(outcome),
        Err(error) => error,
    };
    let applied = apply(ctx, CANCEL_FLOW, &source_id, error)?;
    let decided = outcome_of(&applied.action);
    outcome.failed |= decided.failed;
    outcome.skipped |= decided.skipped;
    Ok(outcome)
}

fn record_step(
    ctx: &FlowContext,
    item: &CancelItem,
    step: &str,
    status: Option<Status>,
) -> Result<(), FlowError> {
    ctx.store.update(
        CANCEL_FLOW,
        &item.client_order_ref,
        &EntityUpdate {
            status,
            step: Some(step.to_owned()),
            target_id: None,
            payload: Some(to_json(item)?),
            clear_error: status.is_some(),
        },
    )?;
    Ok(())
}

/// Marks another flow's entity: its step, and `Skipped` when it had not finished (so it is
/// never processed further).
fn mark(ctx: &FlowContext, flow: &str, source_id: &str, step: &str) -> Result<(), FlowError> {
    let status = match ctx.store.get(flow, source_id)? {
        Some(r) if r.status.is_finished() => None,
        Some(_) => Some(Status::Skipped),
        None => {
            ctx.store.upsert_pending(flow, source_id, None)?;
            Some(Status::Skipped)
        }
    };
    ctx.store.update(
        flow,
        source_id,
        &EntityUpdate {
            status,
            step: Some(step.to_owned()),
            ..Default::default()
        },
    )?;
    Ok(())
}

async fn advance(
    ctx: &FlowContext,
    record: EntityRecord,
    outcome: &mut Outcome,
) -> Result<(), ItemError> {
    let mut item = match record
        .payload
        .as_deref()
        .map(serde_json::from_str::<CancelItem>)
    {
        Some(Ok(item)) => item,
        Some(Err(e)) => {
            return Err(ItemError::permanent(format!(
                "the recorded cancellation cannot be read ({e}); fix or remove the entity"
            )));
        }
        None => CancelItem::default(),
    };
    item.client_order_ref.clone_from(&record.source_id);
    let mut step = record.step.clone();

    if step.is_none() {
        resolve(ctx, &mut item)?;
        record_step(ctx, &item, steps::RESOLVED, None)?;
        step = Some(steps::RESOLVED.to_owned());
    }

    if matches!(
        step.as_deref(),
        Some(steps::RESOLVED | steps::SHIPMENT_CANCELLING)
    ) {
        let pending: Vec<String> = item
            .shipments
            .iter()
            .filter(|id| !item.cancelled.contains(id))
            .cloned()
            .collect();
        if !pending.is_empty() {
            let nshift = ctx.nshift()?;
            // Recorded before the first DELETE: what is answered is added one by one.
            record_step(ctx, &item, steps::SHIPMENT_CANCELLING, None)?;
            for id in pending {
                cancel_shipment(nshift, &id).await?;
                item.cancelled.push(id);
                record_step(ctx, &item, steps::SHIPMENT_CANCELLING, None)?;
                outcome.booked = true;
            }
        }
        let shipping_step = if item.handed_over.is_some() {
            steps::CANCEL_REFUSED
        } else {
            steps::CANCELLED
        };
        mark(ctx, FLOW, &item.client_order_ref, shipping_step)?;
        record_step(ctx, &item, steps::SHIPMENT_CANCELLED, None)?;
        step = Some(steps::SHIPMENT_CANCELLED.to_owned());
    }

    if step.as_deref() == Some(steps::SHIPMENT_CANCELLED) {
        cancel_erp_order(ctx, &mut item, outcome).await?;
        record_step(ctx, &item, steps::ERP_CANCELLED, None)?;
        step = Some(steps::ERP_CANCELLED.to_owned());
    }

    if step.as_deref() == Some(steps::ERP_CANCELLED) {
        if let Some(reason) = &item.handed_over {
            return Err(ItemError::permanent(reason.clone()));
        }
        record_step(ctx, &item, steps::CANCELLED, Some(Status::Done))?;
        outcome.done = true;
    }
    Ok(())
}

/// Reads the shipping entity: the shipments to cancel, or why they cannot be; a shipping
/// entity not booked yet is stopped (`Skipped`, step `cancelled`).
fn resolve(ctx: &FlowContext, item: &mut CancelItem) -> Result<(), ItemError> {
    let shipping = ctx.store.get(FLOW, &item.client_order_ref)?;
    let booked = shipping
        .as_ref()
        .and_then(|r| r.payload.as_deref())
        .and_then(|p| ShippingItem::from_json(p).ok());
    if let Some(booked) = &booked
        && item.order_no.is_none()
    {
        item.order_no.clone_from(&booked.order_no);
    }
    let shipment = booked.as_ref().and_then(|b| b.shipment.clone());
    let Some(shipment) = shipment.filter(|s| !s.shipment_ids.is_empty()) else {
        // Never booked: the shipping entity (if any) must never book it now.
        let unbooked = shipping.as_ref().is_none_or(|r| {
            r.step.is_none()
                || matches!(
                    r.step.as_deref(),
                    Some(shipping_steps::RESOLVED | shipping_steps::REREAD)
                )
        });
        if unbooked {
            mark(ctx, FLOW, &item.client_order_ref, steps::CANCELLED)?;
            item.notes
                .push("no nShift shipment was booked; the order will not be shipped".to_owned());
        }
        return Ok(());
    };
    let cancellable = &ctx.config.shipping.cancellable_statuses;
    let tracking = booked.as_ref().map(|b| &b.tracking);
    let statuses: Vec<(&str, Option<&str>)> = tracking
        .into_iter()
        .flat_map(|t| t.values())
        .map(|p| (p.nshift_status.as_str(), p.at.as_deref()))
        .collect();
    if !statuses.is_empty() && statuses.iter().all(|(s, _)| *s == "CANCELLED") {
        item.notes
            .push("the nShift shipment was cancelled already".to_owned());
        return Ok(());
    }
    let handed = statuses
        .iter()
        .filter(|(s, _)| *s != "CANCELLED" && !cancellable.iter().any(|c| c == s))
        .max_by_key(|(_, at)| *at);
    if !ctx.config.shipping.cancel_shipments {
        item.notes
            .push("shipping.cancel_shipments is off: the nShift shipment was left".to_owned());
        return Ok(());
    }
    if let Some((status, at)) = handed {
        item.handed_over = Some(format!(
            "nShift shipment {} ({status}) handed over to the carrier on {}; cancel it with the carrier",
            shipment.shipment_ids.join(", "),
            at.unwrap_or("an unrecorded date")
        ));
        return Ok(());
    }
    item.shipments = shipment.shipment_ids;
    // A return label goes with the order: its goods never reached the customer.
    if let Some(returned) = booked.as_ref().and_then(|b| b.return_shipment.as_ref()) {
        item.shipments.extend(returned.shipment_ids.iter().cloned());
        item.notes.push(format!(
            "the return label booked with the outbound shipment ({}) is cancelled with it",
            returned.shipment_ids.join(", ")
        ));
    }
    cancel_return_asked_for(ctx, item)?;
    Ok(())
}

/// A return label asked for on its own (flow `return`, same key): a booked one is cancelled
/// with the order, one not booked yet is stopped (`Skipped`, step `cancelled`) so it never is.
/// One whose booking has begun but not answered is left to finish, and said in the notes.
fn cancel_return_asked_for(ctx: &FlowContext, item: &mut CancelItem) -> Result<(), ItemError> {
    use super::returns::{RETURN_FLOW, ReturnItem, steps as return_steps};
    let Some(record) = ctx.store.get(RETURN_FLOW, &item.client_order_ref)? else {
        return Ok(());
    };
    let asked: ReturnItem = record
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    if let Some(booked) = asked.booked.filter(|b| !b.shipment_ids.is_empty()) {
        item.shipments.extend(booked.shipment_ids.iter().cloned());
        item.notes.push(format!(
            "the return label asked for ({}) is cancelled with the order",
            booked.shipment_ids.join(", ")
        ));
    } else if record.step.as_deref() == Some(return_steps::BOOKING) && !record.status.is_finished()
    {
        item.notes.push(
            "a return label was being booked when the order was cancelled: if it was, cancel it in nShift"
                .to_owned(),
        );
    } else if !record.status.is_finished() {
        mark(ctx, RETURN_FLOW, &item.client_order_ref, steps::CANCELLED)?;
        item.notes
            .push("the return label asked for was not booked; it never will be".to_owned());
    }
    Ok(())
}

/// One `DELETE /shipments/{id}`; a 404 (already gone) counts as cancelled.
async fn cancel_shipment(nshift: &NshiftClient, id: &str) -> Result<(), ItemError> {
    let path = CancelShipmentPath {
        shipment_id: id.to_owned(),
    };
    match nshift.cancel_shipment(&path).await {
        Ok(()) => {
            tracing::info!(shipment_id = id, "nShift shipment cancelled");
            Ok(())
        }
        Err(e) if e.status().map(|s| s.as_u16()) == Some(404) => {
            tracing::info!(shipment_id = id, "nShift shipment already gone");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets the Brightpearl order of the orders entity to `orders.cancelled_status_id`; an order
/// not imported yet is never imported (its entity `Skipped`, step `cancelled`).
async fn cancel_erp_order(
    ctx: &FlowContext,
    item: &mut CancelItem,
    outcome: &mut Outcome,
) -> Result<(), ItemError> {
    let Some(status_id) = ctx.config.orders.cancelled_status_id else {
        item.notes.push(
            "orders.cancelled_status_id is not set: the Brightpearl order was left as it is"
                .to_owned(),
        );
        return Ok(());
    };
    let Some(order_no) = item.order_no.clone() else {
        item.notes
            .push("the Norce order number is unknown: no Brightpearl order looked for".to_owned());
        return Ok(());
    };
    let orders_flow = crate::flows::orders::FLOW;
    let entity = ctx.store.get(orders_flow, &order_no)?;
    let target = entity.as_ref().and_then(|r| r.target_id.clone());
    let Some(target) = target else {
        match entity {
            // Started (a contact, a POST maybe on its way): cancelled once it is created.
            Some(r) if r.step.is_some() && !r.status.is_finished() => {
                return Err(ItemError::Wait(
                    "the Brightpearl order is being created; it is cancelled after".to_owned(),
                ));
            }
            _ => {
                mark(ctx, orders_flow, &order_no, steps::CANCELLED)?;
                item.notes.push(
                    "no Brightpearl order was created; the order will not be imported".to_owned(),
                );
                return Ok(());
            }
        }
    };
    let order_id: i64 = target.parse().map_err(|_| {
        ItemError::permanent(format!(
            "the orders entity {order_no} has target id `{target}`, not a Brightpearl order id"
        ))
    })?;
    let brightpearl = ctx.brightpearl()?;
    use brightpearl_client::models::order::operations::OrderApi as _;
    use brightpearl_client::models::order::{OrderStatusUpdate, UpdateOrderStatusPath};
    let path = UpdateOrderStatusPath {
        account: brightpearl.account().to_owned(),
        order_id,
    };
    let body = OrderStatusUpdate {
        order_note: None,
        order_status_id: status_id,
    };
    brightpearl.update_order_status(&path, &body).await?;
    tracing::info!(
        order_id,
        status_id,
        "Brightpearl order set to the cancelled status"
    );
    item.erp_order_id = Some(target);
    outcome.written_back = true;
    mark(ctx, orders_flow, &order_no, steps::CANCELLED)?;
    Ok(())
}
