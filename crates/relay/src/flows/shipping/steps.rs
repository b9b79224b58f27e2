//! The state machine of a shipping entity: from its recorded step to the next, each step's
//! platform call followed by its record, and what a failed attempt comes to.

use client_core::ErrorKind;
use futures::TryStreamExt as _;
use norce_client::models::query::QueryOrdersQuery;
use norce_client::models::services::{GetOrderQuery, operations::ServicesApi as _};
use tracing::Instrument as _;

use super::names::{FLOW, steps};
use super::note::{EarlierNote, send_status, update_parcel_statuses, write_delivery_note};
use super::order::{Origin, ShippingItem};
use super::settings::{FINAL_STATUSES, ParcelStatusWriteback, Settings};
use super::{labels, shipment};
use crate::flows::action::{Action, ItemError, apply, outcome_of};
use crate::flows::context::{FlowContext, FlowError, Outcome};
use crate::state::{EntityRecord, EntityUpdate, Status};

/// Processes one entity from its recorded step; a failed attempt is [`apply`]'d (the one
/// per-item decision).
pub(crate) async fn process(
    ctx: &FlowContext,
    settings: &Settings,
    record: EntityRecord,
) -> Result<Outcome, FlowError> {
    let source_id = record.source_id.clone();
    let mut outcome = Outcome::default();
    let mut at = Step::Other;
    let error = match advance(ctx, settings, record, &mut outcome, &mut at).await {
        Ok(()) => return Ok(outcome),
        Err(error) => error,
    };
    let refused_booking = at == Step::Book && error.kind() == Some(ErrorKind::Permanent);
    let applied = apply(ctx, FLOW, &source_id, error)?;
    if refused_booking && applied.action == Action::DeadLetter {
        // The dead letter keeps the data that failed; the entity itself goes back to
        // re-reading the order, so a replay after fixing the order in Norce uses the fix.
        let current = ctx.store.get(FLOW, &source_id)?;
        if let Some(Ok(mut item)) = current
            .as_ref()
            .and_then(|r| r.payload.as_deref())
            .map(ShippingItem::from_json)
        {
            item.order = None;
            item.origin = Origin::Poll;
            ctx.store.update(
                FLOW,
                &source_id,
                &EntityUpdate {
                    step: Some(steps::REREAD.to_owned()),
                    payload: Some(item.to_json()?),
                    ..Default::default()
                },
            )?;
        }
    }
    // What the attempt did before it failed (a booking, labels) still counts in the report.
    let decided = outcome_of(&applied.action);
    outcome.failed |= decided.failed;
    outcome.skipped |= decided.skipped;
    Ok(outcome)
}

/// The step an attempt was at when it ended (a booking nShift refuses sends the entity back
/// to re-reading the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Book,
    Other,
}

/// Records a finished step with the item's payload.
fn record_step(
    ctx: &FlowContext,
    item: &ShippingItem,
    step: &str,
    target_id: Option<String>,
    status: Option<Status>,
) -> Result<(), FlowError> {
    ctx.store.update(
        FLOW,
        &item.client_order_ref,
        &EntityUpdate {
            status,
            step: Some(step.to_owned()),
            target_id,
            payload: Some(item.to_json()?),
            clear_error: status.is_some(),
        },
    )?;
    Ok(())
}

async fn advance(
    ctx: &FlowContext,
    settings: &Settings,
    record: EntityRecord,
    outcome: &mut Outcome,
    at: &mut Step,
) -> Result<(), ItemError> {
    let norce = ctx.norce()?;
    let nshift = ctx.nshift()?;
    let source_id = record.source_id.clone();
    let mut item = match record.payload.as_deref().map(ShippingItem::from_json) {
        Some(Ok(item)) => item,
        Some(Err(e)) => {
            return Err(ItemError::permanent(format!(
                "the recorded payload cannot be read ({e}); fix or remove the entity"
            )));
        }
        None => ShippingItem::polled(&source_id, None, None),
    };
    item.client_order_ref.clone_from(&source_id);
    let mut step = record.step.clone().filter(|s| s != steps::REREAD);
    // The step this attempt starts at: a step reached later was recorded by this attempt, so no
    // earlier attempt can have made its platform call.
    let resumed_at = step.clone();
    let mut fresh_labels = None;
    let mut fresh_return_labels = None;

    if step.is_none() {
        let span = tracing::info_span!("shipping.step", flow = FLOW, step = "resolve", source_id = %source_id);
        match resolve(norce, settings, &mut item).instrument(span).await? {
            Resolution::Ready => {
                // nShift alerts name the order by its number: index it for the tracking step.
                if let Some(order_no) = &item.order_no {
                    ctx.store
                        .set_alias(FLOW, order_no, &source_id)
                        .map_err(FlowError::from)?;
                }
                record_step(ctx, &item, steps::RESOLVED, None, None)?;
                step = Some(steps::RESOLVED.to_owned());
            }
            Resolution::Skip(reason) => {
                tracing::info!(source_id = %source_id, reason = %reason, "order skipped");
                item.skipped = Some(reason);
                record_step(ctx, &item, steps::RESOLVED, None, Some(Status::Skipped))?;
                outcome.skipped = true;
                return Ok(());
            }
            // Not in a qualifying status yet: left as it is, no attempt counted.
            Resolution::Wait(reason) => return Err(ItemError::Wait(reason)),
        }
    }

    if step.as_deref() == Some(steps::RESOLVED) {
        let span = tracing::info_span!("shipping.step", flow = FLOW, step = "book", source_id = %source_id);
        *at = Step::Book;
        let booking = shipment::book(nshift, settings, &mut item)
            .instrument(span)
            .await?;
        *at = Step::Other;
        outcome.booked = booking.printed_now;
        fresh_labels = Some(booking.labels);
        fresh_return_labels = Some(booking.return_labels);
        let target = item
            .shipment
            .as_ref()
            .and_then(|s| s.shipment_ids.first().cloned());
        record_step(ctx, &item, steps::BOOKED, target, None)?;
        step = Some(steps::BOOKED.to_owned());
    }

    if step.as_deref() == Some(steps::BOOKED) {
        let span = tracing::info_span!("shipping.step", flow = FLOW, step = "labels", source_id = %source_id);
        labels::save(
            nshift,
            settings,
            &mut item,
            fresh_labels.take(),
            fresh_return_labels.take(),
        )
        .instrument(span)
        .await?;
        outcome.labels = u32::try_from(item.labels.len()).unwrap_or(u32::MAX);
        record_step(ctx, &item, steps::LABELS_SAVED, None, None)?;
        step = Some(steps::LABELS_SAVED.to_owned());
    }

    if step.as_deref() == Some(steps::LABELS_SAVED) {
        let span = tracing::info_span!("shipping.step", flow = FLOW, step = "delivery_note", source_id = %source_id);
        // Resumed at this step, a previous attempt may have reached Norce before its record;
        // so may one of an order found already booked (an earlier run got further than the
        // state says).
        let earlier = if resumed_at.as_deref() == Some(steps::LABELS_SAVED)
            || item.shipment.as_ref().is_some_and(|s| s.already_booked)
        {
            EarlierNote::Possible
        } else {
            EarlierNote::Impossible
        };
        let created = write_delivery_note(norce, &mut item, earlier)
            .instrument(span)
            .await?;
        outcome.written_back = created;
        outcome.note = created;
        record_step(ctx, &item, steps::NOTE_CREATED, None, None)?;
        step = Some(steps::NOTE_CREATED.to_owned());
    }

    if step.as_deref() == Some(steps::NOTE_CREATED) {
        let span = tracing::info_span!("shipping.step", flow = FLOW, step = "order_status", source_id = %source_id);
        send_status(norce, &mut item).instrument(span).await?;
        // Recorded below, after a parcel status that arrived meanwhile is on the note.
        step = Some(steps::STATUS_SENT.to_owned());
    }

    match step.as_deref() {
        // A parcel status arrived after the note was written (the alerts step set the entity
        // back to pending), or a pending entity at the last step only needs its status fixed.
        Some(steps::STATUS_SENT | steps::PARCELS_CHANGED) => {
            if item.parcel_status_unsent
                && settings.parcel_status == ParcelStatusWriteback::UpdateDeliveryNote
            {
                let span = tracing::info_span!("shipping.step", flow = FLOW, step = "parcel_status", source_id = %source_id);
                update_parcel_statuses(norce, &mut item)
                    .instrument(span)
                    .await?;
                outcome.written_back = true;
            }
            record_step(ctx, &item, steps::STATUS_SENT, None, Some(Status::Done))?;
            outcome.done = true;
            Ok(())
        }
        Some(other) => Err(ItemError::permanent(format!(
            "unknown recorded step `{other}`; set the entity back with `relay replay`"
        ))),
        None => Ok(()),
    }
}

/// What resolving an order came to.
enum Resolution {
    /// Mapped and ready to book.
    Ready,
    /// Never shipped (final status, delivery method in `skip_delivery_methods`).
    Skip(String),
    /// Not in a qualifying status yet: left pending without counting a failure.
    Wait(String),
}

/// Reads the order from Norce: its order number, status, and (for polled orders) its data.
async fn resolve(
    norce: &norce_client::NorceClient,
    settings: &Settings,
    item: &mut ShippingItem,
) -> Result<Resolution, ItemError> {
    let order_id = match &item.order_id {
        Some(id) => id.clone(),
        None => find_order_id(norce, &item.client_order_ref).await?,
    };
    let order = norce
        .get_order(&GetOrderQuery {
            id: order_id.clone(),
            ..Default::default()
        })
        .await
        .map_err(|e| ItemError::call(&format!("GetOrder {order_id}"), e))?;
    item.order_id = Some(order_id.clone());
    item.apply_norce_order(&order)
        .map_err(ItemError::permanent)?;
    // Whatever brought the order here (an event, a replay, an entity queued before the cutoff
    // was configured), one placed before `shipping.since` is never booked. `OrderDate` is a
    // WCF date (`/Date(ms+0000)/`), which `Timestamp` reads; an unreadable one is not judged.
    let placed = order
        .order_date
        .as_deref()
        .and_then(|d| models_runtime::Timestamp::parse(d).ok())
        .map(|t| t.to_utc());
    if let Some(reason) = settings.before_cutoff(placed) {
        return Ok(Resolution::Skip(reason));
    }
    let status = order.status.clone().unwrap_or_default();
    if !settings.qualifies(&status) {
        if FINAL_STATUSES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(status.trim()))
        {
            return Ok(Resolution::Skip(format!(
                "the Norce order is {status}, not one of shipping.order_statuses"
            )));
        }
        return Ok(Resolution::Wait(format!(
            "the Norce order is {status}, not one of shipping.order_statuses"
        )));
    }
    let Some(data) = &item.order else {
        return Err(ItemError::permanent("the order has no shipping data"));
    };
    let method = data.delivery_method.clone().unwrap_or_default();
    if method.trim().is_empty() {
        return Err(ItemError::permanent(
            "the Norce order has no delivery method code; set one on the order, then `relay replay`",
        ));
    }
    if settings.skips(&method) {
        return Ok(Resolution::Skip(format!(
            "delivery method `{method}` is in shipping.skip_delivery_methods"
        )));
    }
    let country = data.receiver.country.clone().unwrap_or_default();
    if settings.service_for(&method, &country).is_none() {
        return Err(ItemError::permanent(format!(
            "no nShift service is mapped for the Norce delivery method `{method}`: add `[shipping.services.{method}]` with `service_id` (or list it in `shipping.skip_delivery_methods`), then `relay replay`"
        )));
    }
    Ok(Resolution::Ready)
}

/// The Norce order id of a basket id, from Query.
async fn find_order_id(
    norce: &norce_client::NorceClient,
    client_order_ref: &str,
) -> Result<String, ItemError> {
    let filter = match client_order_ref.trim().parse::<i64>() {
        Ok(basket) => format!("quotationId eq {basket}"),
        Err(_) => format!("orderNo eq '{}'", client_order_ref.replace('\'', "''")),
    };
    // `id` and `orderNo` are the fields every decoded Query order has (the model requires them).
    let query = QueryOrdersQuery {
        filter: Some(filter),
        select: Some("id,orderNo".to_owned()),
        top: Some(1),
        ..QueryOrdersQuery::default()
    };
    let mut pages = norce.query_orders(query);
    match pages.try_next().await {
        Ok(Some(page)) => match page.value.first() {
            Some(order) => Ok(order.id.to_string()),
            None => Err(ItemError::transient(format!(
                "no Norce order has ClientOrderRef {client_order_ref} (yet); retried on the next pass"
            ))),
        },
        Ok(None) => Err(ItemError::transient(format!(
            "no Norce order has ClientOrderRef {client_order_ref} (yet)"
        ))),
        Err(e) => Err(ItemError::call("Query orders", e)),
    }
}
