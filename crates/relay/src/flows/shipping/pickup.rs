//! How orders reach the shipping flow: the order receiver's pushes and Norce order events
//! (ingested from the inbox without calling any platform), and the Query poll.

use futures::TryStreamExt as _;
use norce_client::models::event::Event;
use norce_client::models::events::OrderRequest;
use norce_client::models::query::QueryOrdersQuery;

use super::names::{CURSOR_OVERLAP_MINUTES, FLOW};
use super::order::ShippingItem;
use super::settings::{Settings, before_cutoff};
use crate::flows::action::{self, ItemError};
use crate::flows::context::{
    FlowContext, FlowError, Ingested, SOURCE_NORCE_EVENT, SOURCE_NORCE_ORDER, cursor_time,
};
use crate::flows::keyset::Keyset;
use crate::state::{EntityUpdate, InboxItem, Status};

/// Whether this flow takes inbox items from `source` (Norce's order receiver and order events).
pub fn accepts(source: &str) -> bool {
    source == SOURCE_NORCE_ORDER || source == SOURCE_NORCE_EVENT
}

/// Turns an inbox item into a `Pending` entity, without calling any platform: a Norce order push
/// (`OrderRequest` JSON) with the order as the shop sent it, or a Norce order event (one of
/// `shipping.norce_events`) with the order's ids only (the order is read when processed). A
/// body that cannot be read is filed as a dead letter (entity `inbox-<id>`) so it can be
/// inspected; an order already being processed or finished is left as it is (a later push of a
/// shipped order never ships it again).
pub async fn ingest(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    let span =
        tracing::info_span!("shipping.step", flow = FLOW, step = "ingest", source_id = %item.key);
    let _guard = span.enter();
    match item.source.as_str() {
        SOURCE_NORCE_ORDER => ingest_push(ctx, item),
        SOURCE_NORCE_EVENT => ingest_event(ctx, item),
        _ => Ok(Ingested::Nothing),
    }
}

fn ingest_push(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    let request: OrderRequest = match serde_json::from_str(&item.body) {
        Ok(request) => request,
        Err(e) => {
            return file_bad_push(
                ctx,
                item,
                &format!("the order push is not a Norce OrderRequest: {e}"),
            );
        }
    };
    let source_id = request.client_order_ref.trim().to_owned();
    if source_id.is_empty() {
        return file_bad_push(ctx, item, "the order push has no ClientOrderRef");
    }
    let mut pushed = ShippingItem::from_push(&request);
    let placed = request.submit_date.as_ref().map(|t| t.to_utc());
    if let Some(reason) = before_cutoff(ctx.config.shipping.since.as_ref(), placed) {
        pushed.skipped = Some(reason.clone());
        skip_order(ctx, &source_id, &pushed, reason)?;
        return Ok(Ingested::Nothing);
    }
    let payload = pushed.to_json()?;
    let existing = ctx.store.get(FLOW, &source_id)?;
    match existing {
        None => {
            ctx.store.upsert_pending(FLOW, &source_id, Some(&payload))?;
            tracing::info!("order push queued for shipping");
            Ok(Ingested::Work)
        }
        // Polled but not started yet: the pushed data is what the shop sent, use it.
        Some(record) if record.status == Status::Pending && record.step.is_none() => {
            let mut merged = pushed;
            if let Some(Ok(polled)) = record.payload.as_deref().map(ShippingItem::from_json) {
                merged.order_id = merged.order_id.or(polled.order_id);
            }
            ctx.store.update(
                FLOW,
                &source_id,
                &EntityUpdate {
                    payload: Some(merged.to_json()?),
                    ..Default::default()
                },
            )?;
            Ok(Ingested::Work)
        }
        Some(record) => {
            tracing::debug!(status = record.status.as_str(), step = ?record.step, "order already known; push ignored");
            Ok(Ingested::Nothing)
        }
    }
}

/// Records an order placed before `shipping.since` as skipped, with `item` (its `skipped` set)
/// as the payload. An order already being processed, or finished, is left as it is; one queued
/// but not started is skipped.
fn skip_order(
    ctx: &FlowContext,
    source_id: &str,
    item: &ShippingItem,
    reason: String,
) -> Result<(), FlowError> {
    let payload = item.to_json()?;
    match ctx.store.get(FLOW, source_id)? {
        None => {
            ctx.store.upsert_pending(FLOW, source_id, Some(&payload))?;
        }
        Some(record) if record.status == Status::Pending && record.step.is_none() => {
            ctx.store.update(
                FLOW,
                source_id,
                &EntityUpdate {
                    payload: Some(payload),
                    ..Default::default()
                },
            )?;
        }
        Some(record) => {
            tracing::debug!(status = record.status.as_str(), step = ?record.step, "order already known; left as it is");
            return Ok(());
        }
    }
    action::apply(ctx, FLOW, source_id, ItemError::Skip(reason))?;
    Ok(())
}

fn ingest_event(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    let event_type = item.key.split(':').next().unwrap_or_default();
    if event_type == super::cancel::CANCELLED_EVENT
        && (ctx.config.shipping.cancel_shipments || ctx.config.orders.cancelled_status_id.is_some())
    {
        return match Event::decode(event_type, item.body.as_bytes()) {
            Ok(event) => super::cancel::ingest_cancelled(ctx, item, &event),
            Err(e) => file_bad_push(
                ctx,
                item,
                &format!("the Norce {event_type} does not have its documented shape ({e})"),
            ),
        };
    }
    if !ctx
        .config
        .shipping
        .norce_events
        .iter()
        .any(|e| e == event_type)
    {
        tracing::debug!(
            event_type,
            "Norce event not in shipping.norce_events; ignored"
        );
        return Ok(Ingested::Nothing);
    }
    let event = match Event::decode(event_type, item.body.as_bytes()) {
        Ok(event) => event,
        Err(e) => {
            let reason = format!(
                "the Norce {event_type} does not have its documented shape ({e}); remove `{event_type}` from shipping.norce_events if it is not an order event"
            );
            return file_bad_push(ctx, item, &reason);
        }
    };
    // Every order event names the basket; OrderReceivedEvent names nothing else, so the order
    // id is looked up by it when the item is processed.
    let Some(order) = event.order_ref() else {
        let reason = format!(
            "the Norce {event_type} has no ClientOrderRef; remove `{event_type}` from shipping.norce_events if it is not an order event"
        );
        return file_bad_push(ctx, item, &reason);
    };
    let source_id = order.client_order_ref.as_str();
    let queued = ShippingItem::polled(source_id, order.order_id, None);
    if ctx.store.get(FLOW, source_id)?.is_some() {
        tracing::debug!(event_type, "order already known; event ignored");
        return Ok(Ingested::Nothing);
    }
    ctx.store
        .upsert_pending(FLOW, source_id, Some(&queued.to_json()?))?;
    tracing::info!(event_type, order_id = ?order.order_id, "order event queued the order for shipping");
    Ok(Ingested::Work)
}

fn file_bad_push(ctx: &FlowContext, item: &InboxItem, reason: &str) -> Result<Ingested, FlowError> {
    let source_id = format!("inbox-{}", item.id);
    ctx.store
        .upsert_pending(FLOW, &source_id, Some(&item.body))?;
    ctx.store.dead_letter(FLOW, &source_id, reason)?;
    tracing::warn!(reason, "order push dead-lettered");
    Ok(Ingested::Nothing)
}

/// Polls Query for qualifying orders after the cursor and queues them. Returns how many of
/// them were already finished (not touched again).
pub(crate) async fn poll(
    ctx: &FlowContext,
    norce: &norce_client::NorceClient,
    settings: &Settings,
) -> Result<u64, FlowError> {
    let cursor = cursor_time(ctx, FLOW)?;
    let statuses = settings
        .statuses
        .iter()
        .map(|(_, id)| format!("statusId eq {id}"))
        .collect::<Vec<_>>()
        .join(" or ");
    // Cancelled orders too, so a booked order cancelled in Norce (no event received) has its
    // shipment cancelled; only orders this flow already holds are acted on.
    let cancel_poll = ctx.config.shipping.cancel_shipments
        && !settings
            .statuses
            .iter()
            .any(|(_, id)| *id == super::cancel::NORCE_CANCELLED_STATUS);
    let statuses = if cancel_poll {
        format!(
            "{statuses} or statusId eq {}",
            super::cancel::NORCE_CANCELLED_STATUS
        )
    } else {
        statuses
    };
    let mut filter = format!("({statuses})");
    let text =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // `ge` and a few minutes of overlap: an order committed in Norce with an `updated` a
    // little older than the newest one already seen is not lost. Seeing an order again is
    // harmless: its entity exists, and a finished one is never touched again.
    let from = cursor.map(|c| c - chrono::Duration::minutes(CURSOR_OVERLAP_MINUTES));
    let since = settings.since.map(|s| s.instant());
    // The later of the cursor and the go-live cutoff: a cursor before `shipping.since` (unset,
    // or forced back) reads nothing older, and orders placed before the cutoff but changed
    // since (confirmed, paid) are not read at all.
    let from = match (from, since) {
        (Some(from), Some(since)) => Some(from.max(since)),
        (from, since) => from.or(since),
    };
    if let Some(from) = from {
        filter.push_str(&format!(" and updated ge {}", text(from)));
    }
    if let Some(since) = since {
        filter.push_str(&format!(" and created ge {}", text(since)));
    }
    // One page at a time, each after the last order seen (`flows::keyset`: `$skip` paging
    // would miss orders that other passes ship between two pages).
    let base = QueryOrdersQuery {
        filter: Some(filter),
        select: Some("id,orderNo,quotationId,statusId,created,updated".to_owned()),
        ..QueryOrdersQuery::default()
    };
    let mut keyset = Keyset::new("updated");
    let mut latest = cursor;
    let mut already_done = 0;
    loop {
        let query = keyset.page_query(&base);
        let Some(page) = norce.query_orders(query).try_next().await? else {
            break;
        };
        for order in page.value {
            let updated = order.updated.as_ref().map(|t| t.to_utc());
            keyset.saw(updated, order.id);
            if let Some(updated) = updated {
                latest = Some(latest.map_or(updated, |l| l.max(updated)));
            }
            let Some(basket) = order.quotation_id else {
                tracing::warn!(
                    order_id = order.id,
                    "Norce order without quotationId (basket id) skipped by the poll"
                );
                continue;
            };
            let source_id = basket.to_string();
            if cancel_poll && order.status_id == Some(super::cancel::NORCE_CANCELLED_STATUS) {
                super::cancel::queue_polled(ctx, &source_id, order.id, &order.order_no)?;
                continue;
            }
            let mut queued =
                ShippingItem::polled(&source_id, Some(order.id), Some(order.order_no.clone()));
            // Checked one by one too, should Norce ever return an order its filter left out.
            let placed = order.created.as_ref().map(|t| t.to_utc());
            if let Some(reason) = settings.before_cutoff(placed) {
                queued.skipped = Some(reason.clone());
                skip_order(ctx, &source_id, &queued, reason)?;
                continue;
            }
            let record = ctx
                .store
                .upsert_pending(FLOW, &source_id, Some(&queued.to_json()?))?;
            if record.status.is_finished() {
                already_done += 1;
            }
        }
        if !keyset.more(page.odata_next_link.as_deref()) {
            break;
        }
    }
    if let Some(latest) = latest
        && Some(latest) != cursor
    {
        ctx.store.set_cursor(
            FLOW,
            &latest.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )?;
    }
    Ok(already_done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayConfig;
    use crate::config::ShippingConfig;
    use crate::flows::shipping::names::steps;

    fn context(shipping: ShippingConfig) -> FlowContext {
        FlowContext::offline(RelayConfig {
            shipping,
            ..RelayConfig::default()
        })
    }

    #[tokio::test]
    async fn ingest_queues_a_push_once_and_dead_letters_garbage() {
        let ctx = context(ShippingConfig::default());
        assert!(
            accepts("norce-order") && accepts("norce-event") && !accepts("brightpearl-webhook")
        );
        let body = serde_json::json!({
            "ClientOrderRef": "400007",
            "ShippingAdvice": {"DeliveryMethodCode": "POSTNORD_HOME"},
            "ShipTo": {"Person": {"FirstName": "Anna", "LastName": "Lind", "Address": {"Line1": "Avenyn 1", "ZipCode": "41136", "City": "Göteborg", "Country": "SE"}}},
            "Items": [{"LineNo": 1, "PartNo": "SKU-00001", "Quantity": 2}]
        })
        .to_string();
        let item = InboxItem {
            id: 1,
            source: "norce-order".into(),
            key: "400007".into(),
            body,
            received_at: String::new(),
        };
        assert_eq!(ingest(&ctx, &item).await.unwrap(), Ingested::Work);
        assert_eq!(
            ingest(&ctx, &item).await.unwrap(),
            Ingested::Work,
            "a repeat before the pass starts refreshes the payload"
        );
        let records = ctx.store.list(Some(FLOW), None).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].source_id.as_str(), records[0].status),
            ("400007", Status::Pending)
        );
        let payload = ShippingItem::from_json(records[0].payload.as_deref().unwrap()).unwrap();
        assert_eq!(
            payload.order.unwrap().receiver.zip.as_deref(),
            Some("41136")
        );

        let garbage = InboxItem {
            id: 2,
            source: "norce-order".into(),
            key: "x".into(),
            body: "{".into(),
            received_at: String::new(),
        };
        assert_eq!(ingest(&ctx, &garbage).await.unwrap(), Ingested::Nothing);
        let letters = ctx.store.dead_letters().unwrap();
        assert_eq!(letters.len(), 1);
        assert!(
            letters[0].error.contains("OrderRequest"),
            "{}",
            letters[0].error
        );
    }

    #[tokio::test]
    async fn a_push_placed_before_shipping_since_is_recorded_skipped_naming_the_key() {
        let ctx = context(ShippingConfig {
            since: Some("2026-12-01T00:00:00+01:00".parse().unwrap()),
            ..ShippingConfig::default()
        });
        let push = |id: i64, submitted: &str| InboxItem {
            id,
            source: "norce-order".into(),
            key: format!("40000{id}"),
            body: serde_json::json!({
                "ClientOrderRef": format!("40000{id}"),
                "SubmitDate": submitted,
                "ShippingAdvice": {"DeliveryMethodCode": "POSTNORD_HOME"},
                "Items": [{"LineNo": 1, "PartNo": "SKU-00001", "Quantity": 1}]
            })
            .to_string(),
            received_at: String::new(),
        };
        assert_eq!(
            ingest(&ctx, &push(1, "2026-11-30T22:59:59Z"))
                .await
                .unwrap(),
            Ingested::Nothing
        );
        let record = ctx.store.get(FLOW, "400001").unwrap().unwrap();
        assert_eq!(record.status, Status::Skipped);
        let reason = ShippingItem::from_json(record.payload.as_deref().unwrap())
            .unwrap()
            .skipped
            .unwrap();
        assert!(
            reason.contains("`shipping.since`") && reason.contains("2026-11-30T23:00:00Z"),
            "{reason}"
        );
        assert!(record.step.unwrap_or_default().contains("shipping.since"));
        // At the cutoff (23:00 UTC) the order ships.
        assert_eq!(
            ingest(&ctx, &push(2, "2026-12-01T00:00:00+01:00"))
                .await
                .unwrap(),
            Ingested::Work
        );
        assert_eq!(
            ctx.store.get(FLOW, "400002").unwrap().unwrap().status,
            Status::Pending
        );
    }

    #[tokio::test]
    async fn order_events_queue_their_order_by_client_order_ref() {
        let ctx = context(ShippingConfig::default());
        let event = |id: i64, event_type: &str, body: serde_json::Value| InboxItem {
            id,
            source: "norce-event".into(),
            key: format!("{event_type}:order-{id}"),
            body: body.to_string(),
            received_at: String::new(),
        };
        // The documented OrderReceivedEvent: the basket reference and the buyer, no OrderId.
        let received = serde_json::json!({"ClientId": 1000, "ApplicationId": 1042, "ClientOrderRef": "400077", "Email": "a@example.com", "Source": "WEB"});
        assert_eq!(
            ingest(&ctx, &event(1, "OrderReceivedEvent", received))
                .await
                .unwrap(),
            Ingested::Work
        );
        let record = ctx.store.get(FLOW, "400077").unwrap().unwrap();
        assert_eq!(
            (record.status, record.step.as_deref()),
            (Status::Pending, None)
        );
        let queued = ShippingItem::from_json(record.payload.as_deref().unwrap()).unwrap();
        // Only the basket: the order id is looked up and the order read when processed.
        assert_eq!(
            (queued.order_id.as_deref(), queued.order.is_none()),
            (None, true)
        );
        let confirmed = serde_json::json!({"ClientId": 1000, "ApplicationId": 1042, "OrderId": 77, "OrderNo": "NC-77", "ClientOrderRef": "400077", "Source": "WEB"});
        let ctx_confirmed = context(ShippingConfig::default());
        assert_eq!(
            ingest(
                &ctx_confirmed,
                &event(1, "OrderConfirmedEvent", confirmed.clone())
            )
            .await
            .unwrap(),
            Ingested::Work
        );
        let queued = ShippingItem::from_json(
            ctx_confirmed
                .store
                .get(FLOW, "400077")
                .unwrap()
                .unwrap()
                .payload
                .as_deref()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            queued.order_id.as_deref(),
            Some("77"),
            "events that carry the order id keep it"
        );
        let received = confirmed;

        // A later event for a known order changes nothing, even when it has started.
        ctx.store
            .update(
                FLOW,
                "400077",
                &EntityUpdate {
                    step: Some(steps::BOOKED.into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            ingest(&ctx, &event(2, "OrderConfirmedEvent", received))
                .await
                .unwrap(),
            Ingested::Nothing
        );
        assert_eq!(
            ctx.store
                .get(FLOW, "400077")
                .unwrap()
                .unwrap()
                .step
                .as_deref(),
            Some(steps::BOOKED)
        );

        // Events not in `shipping.norce_events` are ignored; so are ones without a body we need.
        let delivered =
            serde_json::json!({"ClientId": 1000, "OrderId": 78, "ClientOrderRef": "400078"});
        assert_eq!(
            ingest(&ctx, &event(3, "OrderDeliveredEvent", delivered))
                .await
                .unwrap(),
            Ingested::Nothing
        );
        assert_eq!(
            ingest(
                &ctx,
                &event(
                    4,
                    "JobCompletedEvent",
                    serde_json::json!({"ClientId": 1000, "JobId": 5, "StatusId": 2})
                )
            )
            .await
            .unwrap(),
            Ingested::Nothing
        );
        assert_eq!(ctx.store.list(Some(FLOW), None).unwrap().len(), 1);
        assert!(ctx.store.dead_letters().unwrap().is_empty());

        // A configured event that is not an order event, or has no basket id, is a dead letter
        // naming what to fix.
        assert_eq!(ingest(&ctx, &event(5, "OrderReceivedEvent", serde_json::json!({"ClientId": 1000, "ApplicationId": 1042, "OrderId": 79, "Source": "WEB"}))).await.unwrap(), Ingested::Nothing);
        assert_eq!(
            ingest(
                &ctx,
                &event(
                    6,
                    "OrderReceivedEvent",
                    serde_json::json!({"ClientId": "x"})
                )
            )
            .await
            .unwrap(),
            Ingested::Nothing
        );
        let letters = ctx.store.dead_letters().unwrap();
        assert_eq!(letters.len(), 2, "{letters:?}");
        assert!(
            letters[0].error.contains("ClientOrderRef"),
            "{}",
            letters[0].error
        );
        assert!(
            letters[1].error.contains("shipping.norce_events"),
            "{}",
            letters[1].error
        );
    }
}
