//! Brightpearl → Norce cancellations: a sales order relay created, set to
//! `orders.cancelled_status_id` in Brightpearl, becomes a Norce `CancelOrder` while Norce still
//! holds the order open.
//!
//! The `order.modified.order-status` webhook (inbox source `brightpearl-webhook`, body with `id`
//! and `fullEvent`, as for goods-out notes) queues one entity of [`ERP_CANCEL_FLOW`] per order
//! id; so does the `fulfilment` pass's poll (with `orders.poll`): an order-search for
//! `orderStatusId` = `orders.cancelled_status_id` updated since the `erp-cancel` cursor, of
//! which only the orders relay created (their `externalRef` is an `orders` entity) are queued.
//! The `fulfilment` pass processes them after its notes:
//!
//! | step | platform call | replay safety |
//! | --- | --- | --- |
//! | (checks) | Brightpearl `GET sales-order/{id}` (status, `externalRef`), Norce Query by `orderNo` (status) | read only: an order not (or no longer) in the cancelled status, not relay's, or Delivered/Invoiced/PartlyDelivered in Norce is `Skipped` with the reason; one already Cancelled in Norce is Done without a call |
//! | `norce_cancelled` (Done) | Norce `CancelOrder` (`ClientOrderRef` = basket id, `ErpOrderNo` = the Brightpearl order id) | Norce answers OK for an order already cancelled; the status is read before every attempt |
//!
//! The order's `orders` entity gets the step `cancelled`. Norce then raises its own
//! `OrderCancelledEvent`, which cancels the nShift shipment (the shipping flow's
//! cancellations); the Brightpearl status set again there is harmless.

use brightpearl_client::{OrderRow, SearchQuery, SearchResource, SortDirection};
use futures::TryStreamExt as _;
use norce_client::models::connect::CancelOrderRequest;
use norce_client::models::connect::operations::ConnectApi as _;
use norce_client::models::query::QueryOrdersQuery;

use super::common::{FLOW, OrderPayload, PollCursor};
use crate::flows::action::{ItemError, settle};
use crate::flows::context::{FlowContext, FlowError, Outcome};
use crate::state::{EntityRecord, EntityUpdate, Status};

/// The entities of Brightpearl cancellations (keyed by the Brightpearl order id).
pub const ERP_CANCEL_FLOW: &str = "erp-cancel";
/// The Brightpearl webhook event that queues them.
pub(crate) const ORDER_STATUS_EVENT: &str = "order.modified.order-status";
/// The step of a done entity (and of a Norce order found cancelled already).
const NORCE_CANCELLED: &str = "norce_cancelled";
/// Norce Query `statusId`s of orders that can no longer be cancelled: Delivered, Invoiced,
/// PartlyDelivered (`config::shipping::ORDER_STATUSES`).
const CLOSED: &[i32] = &[4, 5, 8];
/// Norce Query `statusId` Cancelled.
const CANCELLED: i32 = 6;

/// Polls Brightpearl for orders set to `orders.cancelled_status_id` since the `erp-cancel`
/// cursor (without the webhook, or for what a lost webhook missed) and queues one entity per
/// order relay created. Returns how many of those were finished before. Nothing to do without
/// `orders.cancelled_status_id`.
pub(super) async fn pick_up_cancelled(
    ctx: &FlowContext,
    brightpearl: &brightpearl_client::Client,
) -> Result<u64, FlowError> {
    let Some(cancelled_status) = ctx.config.orders.cancelled_status_id else {
        return Ok(0);
    };
    let mut cursor = PollCursor::read(ctx, ERP_CANCEL_FLOW)?;
    let mut query = SearchQuery::new()
        .filter("orderStatusId", cancelled_status.to_string())
        .columns(["orderId", "externalRef", "updatedOn"])
        .sort("orderId", SortDirection::Asc);
    if let Some(since) = cursor.since_text() {
        query = query.period("updatedOn", Some(&since), None);
    }
    let rows: Vec<OrderRow> = brightpearl
        .search_all(SearchResource::Orders, query)
        .await?;
    for row in &rows {
        cursor.saw(row.updated_on.as_deref());
        let Some(order_no) = row.external_ref.as_deref().filter(|r| !r.trim().is_empty()) else {
            continue;
        };
        if ctx.store.get(FLOW, order_no)?.is_some() {
            cursor.queue(ctx, &row.order_id.to_string())?;
        }
    }
    cursor.save(ctx)
}

/// Processes one entity and settles its outcome (the one per-item decision).
pub(super) async fn process_and_settle(
    ctx: &FlowContext,
    norce: &norce_client::NorceClient,
    brightpearl: &brightpearl_client::Client,
    record: EntityRecord,
) -> Result<Outcome, FlowError> {
    let result = process(ctx, norce, brightpearl, &record).await;
    settle(ctx, ERP_CANCEL_FLOW, &record.source_id, result)
}

async fn process(
    ctx: &FlowContext,
    norce: &norce_client::NorceClient,
    brightpearl: &brightpearl_client::Client,
    record: &EntityRecord,
) -> Result<Outcome, ItemError> {
    let Some(cancelled_status) = ctx.config.orders.cancelled_status_id else {
        return Err(ItemError::Skip(
            "orders.cancelled_status_id is not set: Brightpearl cancellations are not sent to Norce"
                .to_owned(),
        ));
    };
    let id: u64 = record.source_id.parse().map_err(|_| {
        ItemError::permanent(format!(
            "`{}` is not a Brightpearl order id; this entry can be dropped",
            record.source_id
        ))
    })?;
    let orders = brightpearl
        .sales_orders(&[id])
        .await
        .map_err(|e| ItemError::call(&format!("sales order {id}"), e))?;
    let Some(order) = orders.into_iter().next() else {
        return Err(ItemError::Skip(format!(
            "Brightpearl order {id} was not found"
        )));
    };
    if order.status_id != Some(cancelled_status) {
        return Err(ItemError::Skip(format!(
            "Brightpearl order {id} is in status {:?}, not orders.cancelled_status_id ({cancelled_status})",
            order.status_id
        )));
    }
    let Some(order_no) = order.external_ref.filter(|r| !r.trim().is_empty()) else {
        return Err(ItemError::Skip(format!(
            "Brightpearl order {id} has no externalRef: not a Norce order"
        )));
    };
    let Some(entity) = ctx.store.get(FLOW, &order_no)? else {
        return Err(ItemError::Skip(format!(
            "Brightpearl order {id} ({order_no}) was not created by relay"
        )));
    };
    // Norce's status now: only an open order is cancelled.
    let query = QueryOrdersQuery {
        filter: Some(format!("orderNo eq '{}'", order_no.replace('\'', "''"))),
        select: Some("id,orderNo,quotationId,statusId".to_owned()),
        top: Some(1),
        ..QueryOrdersQuery::default()
    };
    let found = norce
        .query_orders(query)
        .try_next()
        .await
        .map_err(|e| ItemError::call("Query orders", e))?
        .and_then(|page| page.value.into_iter().next());
    let Some(norce_order) = found else {
        return Err(ItemError::Skip(format!(
            "Norce has no order {order_no}: nothing to cancel"
        )));
    };
    let mut outcome = Outcome::default();
    match norce_order.status_id {
        Some(CANCELLED) => {
            tracing::info!(order_no, "Norce order already cancelled");
        }
        Some(status) if CLOSED.contains(&status) => {
            return Err(ItemError::Skip(format!(
                "Norce order {order_no} is closed (statusId {status}): not cancelled; settle it in Norce"
            )));
        }
        _ => {
            let basket = entity
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_str::<OrderPayload>(p).ok())
                .and_then(|p| p.normalise(&ctx.config.orders).ok())
                .and_then(|o| o.basket_id)
                .or(norce_order.quotation_id);
            let request = CancelOrderRequest {
                client_order_ref: basket,
                erp_order_no: Some(entity.target_id.clone().unwrap_or_else(|| id.to_string())),
                ..CancelOrderRequest::default()
            };
            norce
                .cancel_order(&request)
                .await
                .map_err(|e| ItemError::call(&format!("CancelOrder {order_no}"), e))?;
            tracing::info!(order_no, "Norce order cancelled (cancelled in Brightpearl)");
            outcome.written_back = true;
        }
    }
    ctx.store.update(
        FLOW,
        &order_no,
        &EntityUpdate {
            step: Some("cancelled".to_owned()),
            ..Default::default()
        },
    )?;
    ctx.store.update(
        ERP_CANCEL_FLOW,
        &record.source_id,
        &EntityUpdate {
            status: Some(Status::Done),
            step: Some(NORCE_CANCELLED.to_owned()),
            target_id: Some(order_no),
            clear_error: true,
            ..Default::default()
        },
    )?;
    outcome.done = true;
    Ok(outcome)
}
