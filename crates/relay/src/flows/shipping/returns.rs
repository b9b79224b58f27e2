//! Return labels booked on demand: `relay return ORDER` or the console's **Book return label**
//! queue an entity of the flow [`RETURN_FLOW`], keyed like the shipping entity by the basket
//! id (`ClientOrderRef`); the shipping pass processes these entities after its own (as it does
//! cancellations). A return booked with the outbound shipment
//! (`shipping.services.<method>.return_with_outbound`) needs none of this: the booking step
//! records it.
//!
//! | step | platform call | replay safety |
//! | --- | --- | --- |
//! | `resolved` | none: the shipping entity says the order is booked and has no return yet | read only; an order with a return already is Done without a call |
//! | `return_booking` | recorded *before* nShift `book_once_exclusive("<order number>-R", return-only shipment)` | `book_once` searches the stored shipments by that `orderNo` first: a retry after a lost answer or a crash finds the printed return instead of booking a second |
//! | `return_booked` | none; the return shipment id and parcel numbers go into this entity's and the shipping entity's payloads | |
//! | `return_labels_saved` (Done) | labels from the booking, else `GET /shipments/{id}/pdfs`, written as `<order number>-return-<n>.<ext>` | files are written to a temporary name and renamed |

use nshift_client::BookingOutcome;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::labels;
use super::names::FLOW;
use super::order::{ReturnShipment, ShippingItem};
use super::settings::{Settings, services_in_force};
use super::shipment::{ON_DEMAND, book_exclusive, build_return, return_order_no, return_record};
use crate::config::RelayConfig;
use crate::flows::action::{ItemError, apply, outcome_of};
use crate::flows::context::{FlowContext, FlowError, Outcome};
use crate::state::{EntityRecord, EntityUpdate, StateError, Status, Store};

/// The entities of return labels asked for on demand (keyed by the Norce basket id).
pub const RETURN_FLOW: &str = "return";

/// Step names of a return entity.
pub(crate) mod steps {
    /// The shipping entity was read: the order is booked and has no return yet.
    pub const RESOLVED: &str = "resolved";
    /// Recorded before the booking call: a retry reconciles through `book_once`'s search.
    pub const BOOKING: &str = "return_booking";
    /// Printed in nShift; recorded in the payloads.
    pub const BOOKED: &str = "return_booked";
    /// The return labels are saved; the entity is Done.
    pub const LABELS_SAVED: &str = "return_labels_saved";
}

/// The payload of a return entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ReturnItem {
    /// The basket id (the shipping entity's key).
    pub client_order_ref: String,
    /// The Norce order number.
    pub order_no: Option<String>,
    /// The return product to book (`--service`, else the mapping's `return_service`).
    pub service_id: Option<String>,
    /// The return shipment, once booked.
    pub booked: Option<ReturnShipment>,
    /// What was left as it is, and why.
    pub notes: Vec<String>,
}

impl ReturnItem {
    fn to_json(&self) -> Result<String, FlowError> {
        serde_json::to_string(self).map_err(super::order::storage_error)
    }
}

/// Why a return label cannot be asked for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReturnRefused {
    /// The order is unknown, not booked, has a return already, or no return service; the text
    /// says what to do.
    #[error("{0}")]
    Invalid(String),
    /// The state refused.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A return label to queue, checked against the state and the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnRequest {
    /// The key of the shipping (and return) entity: the basket id.
    pub source_id: String,
    /// The Norce order number.
    pub order_no: String,
    /// The return product that will be booked.
    pub service_id: String,
    /// The return entity's payload (JSON).
    pub payload: String,
    /// A return entity for the order is waiting already (nothing new to queue).
    pub already_queued: bool,
}

/// Checks that a return label can be booked for `order` (the Norce order number, or the
/// basket id) with `service` (else the delivery method's `return_service`), without changing
/// anything. Refused: an order relay does not know, one not booked yet, one with a return
/// already, or no return service.
pub fn prepare_return(
    store: &dyn Store,
    config: &RelayConfig,
    order: &str,
    service: Option<&str>,
) -> Result<ReturnRequest, ReturnRefused> {
    let order = order.trim();
    let refuse = |reason: String| Err(ReturnRefused::Invalid(reason));
    let source_id = match store.find_alias(FLOW, order)? {
        Some(basket) => basket,
        None => order.to_owned(),
    };
    let Some(record) = store.get(FLOW, &source_id)? else {
        return refuse(format!(
            "relay knows no order `{order}`: no shipping item has this Norce order number (see `relay status`)"
        ));
    };
    let item = match record.payload.as_deref().map(ShippingItem::from_json) {
        Some(Ok(item)) => item,
        _ => {
            return refuse(format!(
                "order `{order}` has no readable shipping record; it is not booked yet"
            ));
        }
    };
    let order_no = item.order_no.clone().unwrap_or_else(|| order.to_owned());
    let booked = item
        .shipment
        .as_ref()
        .filter(|s| !s.shipment_ids.is_empty());
    if booked.is_none() {
        let step = record.step.as_deref().unwrap_or("not started");
        return refuse(format!(
            "order {order_no} is not booked in nShift yet (shipping step: {step}); a return label can be booked once it is"
        ));
    }
    if let Some(returned) = &item.return_shipment {
        return refuse(format!(
            "order {order_no} has a return label already: nShift shipment {} ({}), labels {}",
            returned.shipment_ids.join(", "),
            returned.booked_with,
            if returned.labels.is_empty() {
                "not saved".to_owned()
            } else {
                returned.labels.join(", ")
            }
        ));
    }
    let method = item
        .order
        .as_ref()
        .and_then(|o| o.delivery_method.clone())
        .unwrap_or_default();
    let mapped = services_in_force(&config.shipping)
        .iter()
        .find(|(code, _)| code.eq_ignore_ascii_case(method.trim()))
        .and_then(|(_, m)| m.return_service.clone());
    let asked = service.map(str::trim).filter(|s| !s.is_empty());
    let Some(service_id) = asked.map(str::to_owned).or(mapped
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty()))
    else {
        return refuse(format!(
            "no return service is mapped for the delivery method `{method}` of order {order_no}: set `shipping.services.{method}.return_service` (e.g. \"P24\") or pass --service"
        ));
    };
    let already_queued = store
        .get(RETURN_FLOW, &source_id)?
        .is_some_and(|r| r.status == Status::Pending);
    let queued = ReturnItem {
        client_order_ref: source_id.clone(),
        order_no: Some(order_no.clone()),
        service_id: Some(service_id.clone()),
        ..ReturnItem::default()
    };
    let payload = queued
        .to_json()
        .map_err(|e| ReturnRefused::Invalid(e.to_string()))?;
    Ok(ReturnRequest {
        source_id,
        order_no,
        service_id,
        payload,
        already_queued,
    })
}

/// Processes one return entity from its recorded step.
pub(crate) async fn process(
    ctx: &FlowContext,
    settings: &Settings,
    record: EntityRecord,
) -> Result<Outcome, FlowError> {
    let source_id = record.source_id.clone();
    let mut outcome = Outcome::default();
    let span = tracing::info_span!("shipping.return", flow = RETURN_FLOW, source_id = %source_id);
    let error = match advance(ctx, settings, record, &mut outcome)
        .instrument(span)
        .await
    {
        Ok(()) => return Ok(outcome),
        Err(error) => error,
    };
    let applied = apply(ctx, RETURN_FLOW, &source_id, error)?;
    let decided = outcome_of(&applied.action);
    outcome.failed |= decided.failed;
    outcome.skipped |= decided.skipped;
    Ok(outcome)
}

fn record_step(
    ctx: &FlowContext,
    item: &ReturnItem,
    step: &str,
    target_id: Option<String>,
    status: Option<Status>,
) -> Result<(), FlowError> {
    ctx.store.update(
        RETURN_FLOW,
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

/// The shipping entity's record, read fresh.
fn shipping_item(ctx: &FlowContext, basket: &str) -> Result<Option<ShippingItem>, ItemError> {
    let record = ctx.store.get(FLOW, basket)?;
    match record
        .and_then(|r| r.payload)
        .map(|p| ShippingItem::from_json(&p))
    {
        Some(Ok(item)) => Ok(Some(item)),
        Some(Err(e)) => Err(ItemError::permanent(format!(
            "the shipping record of {basket} cannot be read ({e})"
        ))),
        None => Ok(None),
    }
}

/// Records the return on the shipping entity (read fresh just before, so what the shipping
/// steps recorded meanwhile stays).
fn record_on_shipping(
    ctx: &FlowContext,
    basket: &str,
    returned: &ReturnShipment,
) -> Result<(), ItemError> {
    let Some(mut item) = shipping_item(ctx, basket)? else {
        return Ok(());
    };
    item.return_shipment = Some(returned.clone());
    ctx.store.update(
        FLOW,
        basket,
        &EntityUpdate {
            payload: Some(item.to_json()?),
            ..Default::default()
        },
    )?;
    Ok(())
}

async fn advance(
    ctx: &FlowContext,
    settings: &Settings,
    record: EntityRecord,
    outcome: &mut Outcome,
) -> Result<(), ItemError> {
    let mut item = match record
        .payload
        .as_deref()
        .map(serde_json::from_str::<ReturnItem>)
    {
        Some(Ok(item)) => item,
        Some(Err(e)) => {
            return Err(ItemError::permanent(format!(
                "the recorded return cannot be read ({e}); fix or remove the entity"
            )));
        }
        None => ReturnItem::default(),
    };
    item.client_order_ref.clone_from(&record.source_id);
    let mut step = record.step.clone();
    let mut fresh_labels = None;

    if step.is_none() {
        let shipping = shipping_item(ctx, &item.client_order_ref)?;
        let Some(shipping) = shipping.filter(|s| s.shipment.is_some()) else {
            return Err(ItemError::permanent(format!(
                "order {} is not booked in nShift; a return label can be booked once it is",
                item.order_no.as_deref().unwrap_or(&item.client_order_ref)
            )));
        };
        if item.order_no.is_none() {
            item.order_no.clone_from(&shipping.order_no);
        }
        if let Some(returned) = shipping.return_shipment {
            // Booked with the outbound shipment (or by an earlier request): nothing to book.
            item.notes.push(format!(
                "the order has a return shipment already ({})",
                returned.booked_with
            ));
            item.booked = Some(returned);
            record_step(ctx, &item, steps::LABELS_SAVED, None, Some(Status::Done))?;
            outcome.done = true;
            return Ok(());
        }
        record_step(ctx, &item, steps::RESOLVED, None, None)?;
        step = Some(steps::RESOLVED.to_owned());
    }

    if matches!(step.as_deref(), Some(steps::RESOLVED | steps::BOOKING)) {
        let shipping = shipping_item(ctx, &item.client_order_ref)?
            .ok_or_else(|| ItemError::permanent("the shipping record is gone"))?;
        let service_id = item.service_id.clone().ok_or_else(|| {
            ItemError::permanent("no return service recorded; ask again with --service")
        })?;
        let shipment = build_return(settings, &shipping, &service_id)?;
        let order_no = shipping.order_no.clone().unwrap_or_default();
        let key = return_order_no(&order_no);
        // The intent is recorded before the call: whatever happens to its answer, the next
        // attempt resumes here and book_once finds what nShift stored under `key`.
        record_step(ctx, &item, steps::BOOKING, None, None)?;
        let nshift = ctx.nshift()?;
        let booking = book_exclusive(nshift, &key, shipment).await?;
        let printed_now = booking.outcome == BookingOutcome::Printed;
        let shipments = booking.shipments;
        let returned = return_record(
            ON_DEMAND,
            &key,
            &service_id,
            booking.stored_id.clone(),
            !printed_now,
            &shipments,
        );
        if returned.shipment_ids.is_empty() || returned.parcel_numbers.is_empty() {
            // Printed, but not readable yet: the next attempt's book_once finds it again.
            return Err(ItemError::transient(format!(
                "the return of {order_no} is booked in nShift but its details could not be read back yet (printed-shipments feed)"
            )));
        }
        tracing::info!(order_no = %order_no, printed_now, "return shipment booked");
        outcome.booked = printed_now;
        fresh_labels = Some(shipments.into_iter().flat_map(|s| s.labels).collect());
        let target = returned.shipment_ids.first().cloned();
        record_on_shipping(ctx, &item.client_order_ref, &returned)?;
        item.booked = Some(returned);
        record_step(ctx, &item, steps::BOOKED, target, None)?;
        step = Some(steps::BOOKED.to_owned());
    }

    if step.as_deref() == Some(steps::BOOKED) {
        let mut returned = item
            .booked
            .clone()
            .ok_or_else(|| ItemError::permanent("the return booking is not recorded"))?;
        let order_no = item.order_no.clone().unwrap_or_default();
        labels::save_return(
            ctx.nshift()?,
            settings,
            &order_no,
            &mut returned,
            fresh_labels,
        )
        .await?;
        outcome.labels = u32::try_from(returned.labels.len()).unwrap_or(u32::MAX);
        record_on_shipping(ctx, &item.client_order_ref, &returned)?;
        item.booked = Some(returned);
        record_step(ctx, &item, steps::LABELS_SAVED, None, Some(Status::Done))?;
        outcome.done = true;
        return Ok(());
    }
    match step.as_deref() {
        Some(steps::LABELS_SAVED) | None => Ok(()),
        Some(other) => Err(ItemError::permanent(format!(
            "unknown recorded step `{other}`; set the entity back with `relay replay`"
        ))),
    }
}
