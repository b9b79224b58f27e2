//! The `fulfilment` flow: shipped Brightpearl goods-out notes → Norce delivery notes and status.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use brightpearl_client::models::integration::WebhookEvent;
use brightpearl_client::models::order::{SalesOrder, ShippingStatusCode};
use brightpearl_client::models::warehouse::GoodsOutNote;
use brightpearl_client::{GoodsOutNoteRow, OrderRow, SearchQuery, SearchResource, SortDirection};
use futures::StreamExt as _;
use norce_client::Navigation;
use norce_client::models::connect::operations::ConnectApi as _;
use norce_client::models::connect::{
    ConnectOrderStatus, DeliveryAddress, DeliveryNote, DeliveryNoteItem, DeliveryNotePackage,
    SendOrderStatusRequest,
};
use norce_client::models::query::QueryOrdersQuery;
use tracing::Instrument as _;

use super::amount::Amount;
use super::common::{
    FLOW, FULFILMENT_FLOW, GOODS_OUT_SEARCH_COLUMNS, OrderPayload, PollCursor,
    dead_letter_unreadable, decimal, parse_id_set,
};
use super::model::NorceOrder;
use crate::flows::action::{ItemError, settle};
use crate::flows::context::{
    FlowContext, FlowError, FlowReport, Ingested, Outcome, elapsed_ms, for_each_pending,
};
use crate::state::{EntityRecord, EntityUpdate, InboxItem, Status};

/// The webhook event this flow acts on.
const SHIPPED_EVENT: &str = "goods-out-note.modified.shipped";

/// Turns a `goods-out-note.modified.shipped` webhook into one `fulfilment` entity per note.
pub(super) fn ingest_webhook(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    let span = tracing::info_span!("flow_step", flow = FULFILMENT_FLOW, step = "ingest", source_id = %item.key);
    let _entered = span.enter();
    let event: WebhookEvent = match serde_json::from_str(&item.body) {
        Ok(event) => event,
        Err(e) => {
            // Other flows may understand it (they get the same item); for fulfilment it is lost
            // unless someone looks, so it goes to the dead letters with the fix.
            let error = format!(
                "the Brightpearl webhook (inbox item {}, key `{}`) is not the expected JSON: {e}; the webhook's bodyTemplate must post at least `id` (\"${{resource-id}}\") and `fullEvent` (\"${{full-event}}\")",
                item.id, item.key
            );
            dead_letter_unreadable(
                ctx,
                FULFILMENT_FLOW,
                &format!("webhook-{}", item.key),
                Some(&item.body),
                &error,
            )?;
            return Ok(Ingested::Nothing);
        }
    };
    let event_name = event
        .full_event
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .unwrap_or_default();
    if event_name == super::cancel::ORDER_STATUS_EVENT {
        // An order status changed: a cancellation when it is now the cancelled status, which
        // the pass checks (the webhook names the order only).
        if ctx.config.orders.cancelled_status_id.is_none() {
            return Ok(Ingested::Nothing);
        }
        let Some(ids) = parse_id_set(&event.id) else {
            tracing::warn!(id = %event.id, "order-status webhook without an order id set; ignored");
            return Ok(Ingested::Nothing);
        };
        for id in ids {
            let key = id.to_string();
            // A cancellation already sent stays done; one skipped (not cancelled then) is
            // looked at again.
            let record = ctx
                .store
                .upsert_pending(super::cancel::ERP_CANCEL_FLOW, &key, None)?;
            if record.status == Status::Skipped {
                ctx.store.update(
                    super::cancel::ERP_CANCEL_FLOW,
                    &key,
                    &EntityUpdate {
                        status: Some(Status::Pending),
                        clear_error: true,
                        ..Default::default()
                    },
                )?;
            }
        }
        return Ok(Ingested::Work);
    }
    if event_name != SHIPPED_EVENT {
        tracing::debug!(event = event_name, "Brightpearl event not for fulfilment");
        return Ok(Ingested::Nothing);
    }
    let Some(ids) = parse_id_set(&event.id) else {
        let error = format!(
            "the `{SHIPPED_EVENT}` webhook (inbox item {}) has id `{}`, not a Brightpearl ID set such as `12` or `12-14,20`",
            item.id, event.id
        );
        dead_letter_unreadable(
            ctx,
            FULFILMENT_FLOW,
            &format!("webhook-{}", item.key),
            Some(&item.body),
            &error,
        )?;
        return Ok(Ingested::Nothing);
    };
    for id in ids {
        ctx.store
            .upsert_pending(FULFILMENT_FLOW, &id.to_string(), None)?;
    }
    Ok(Ingested::Work)
}

/// One pass of the `fulfilment` flow: picks up shipped goods-out notes of relay's orders
/// (goods-out-note search with the `fulfilment` cursor, when `orders.poll`), then writes every
/// pending one back to Norce as a delivery note and an order status.
pub async fn run_fulfilment(ctx: &FlowContext) -> Result<FlowReport, FlowError> {
    let started = Instant::now();
    ctx.config.orders.validate()?;
    let norce = ctx.norce()?;
    let brightpearl = ctx.brightpearl()?;
    let mut report = FlowReport {
        flow: FULFILMENT_FLOW.to_owned(),
        ..FlowReport::default()
    };
    if ctx.config.orders.poll {
        let already_done = pick_up_shipped(ctx, brightpearl)
            .instrument(tracing::info_span!(
                "flow_step",
                flow = FULFILMENT_FLOW,
                step = "poll",
                source_id = "goods-out-search"
            ))
            .await?;
        report.seen += already_done;
        report.done += already_done;
        let already_done = super::cancel::pick_up_cancelled(ctx, brightpearl)
            .instrument(tracing::info_span!(
                "flow_step",
                flow = super::cancel::ERP_CANCEL_FLOW,
                step = "poll",
                source_id = "order-search"
            ))
            .await?;
        report.seen += already_done;
        report.done += already_done;
    }
    let concurrency = ctx.config.run.concurrency;
    let tally = |outcome| report.add(outcome);
    for_each_pending(
        ctx,
        FULFILMENT_FLOW,
        concurrency,
        |record| Box::pin(process_and_settle(ctx, norce, brightpearl, record)),
        tally,
    )
    .await?;
    // Orders cancelled in Brightpearl (`order.modified.order-status` webhooks, the poll) → Norce.
    let tally = |outcome| report.add(outcome);
    for_each_pending(
        ctx,
        super::cancel::ERP_CANCEL_FLOW,
        concurrency,
        |record| {
            Box::pin(super::cancel::process_and_settle(
                ctx,
                norce,
                brightpearl,
                record,
            ))
        },
        tally,
    )
    .await?;
    report.duration_ms = elapsed_ms(started);
    tracing::info!(flow = FULFILMENT_FLOW, ?report, "pass finished");
    Ok(report)
}

async fn process_and_settle(
    ctx: &FlowContext,
    norce: &norce_client::NorceClient,
    brightpearl: &brightpearl_client::Client,
    record: EntityRecord,
) -> Result<Outcome, FlowError> {
    let result = process_note(ctx, norce, brightpearl, &record).await;
    settle(ctx, FULFILMENT_FLOW, &record.source_id, result)
}

/// Reads shipped goods-out notes since the cursor; those of orders relay created become
/// `Pending` entities (the rest belong to other channels and are not recorded). Returns how many
/// were finished before.
async fn pick_up_shipped(
    ctx: &FlowContext,
    brightpearl: &brightpearl_client::Client,
) -> Result<u64, FlowError> {
    let mut cursor = PollCursor::read(ctx, FULFILMENT_FLOW)?;
    let mut query = SearchQuery::new()
        .filter("shipped", "true")
        .columns(GOODS_OUT_SEARCH_COLUMNS)
        .sort("goodsOutNoteId", SortDirection::Asc);
    if let Some(since) = cursor.since_text() {
        query = query.period("shippedOn", Some(&since), None);
    }
    let rows: Vec<GoodsOutNoteRow> = brightpearl
        .search_all(SearchResource::GoodsOutNotes, query)
        .await?;
    let order_ids: BTreeSet<u64> = rows.iter().filter_map(|r| r.order_id).collect();
    let ids: Vec<u64> = order_ids.into_iter().collect();
    let mut external_refs: BTreeMap<i64, String> = BTreeMap::new();
    // order-search by ID set, 100 ids a call (short URIs), rather than the client's chunked
    // sales-order GET (which reads whole orders).
    for chunk in ids.chunks(100) {
        let query = SearchQuery::new()
            .filter(
                "orderId",
                brightpearl_client::IdSet::from_ids(chunk.iter().copied()).to_string(),
            )
            .columns(["orderId", "externalRef"]);
        let rows: Vec<OrderRow> = brightpearl
            .search_all(SearchResource::Orders, query)
            .await?;
        external_refs.extend(
            rows.into_iter()
                .filter_map(|r| Some((i64::try_from(r.order_id).ok()?, r.external_ref?))),
        );
    }
    for row in &rows {
        cursor.saw(row.shipped_on.as_deref());
        let ours = row
            .order_id
            .and_then(|id| i64::try_from(id).ok())
            .and_then(|id| external_refs.get(&id))
            .map(|external| ctx.store.get(FLOW, external))
            .transpose()?
            .flatten()
            .is_some();
        if ours {
            cursor.queue(ctx, &row.goods_out_note_id.to_string())?;
        }
    }
    cursor.save(ctx)
}

/// What a goods-out note needs from Brightpearl and from the `orders` entity.
struct Shipment {
    gon_id: u64,
    note: GoodsOutNote,
    order: SalesOrder,
    order_no: String,
    erp_order_no: String,
    norce: Option<NorceOrder>,
}

async fn load(
    ctx: &FlowContext,
    brightpearl: &brightpearl_client::Client,
    gon_id: u64,
) -> Result<Shipment, ItemError> {
    let mut notes = brightpearl
        .goods_out_notes(&[gon_id])
        .await
        .map_err(|e| ItemError::call(&format!("goods-out note {gon_id}"), e))?;
    let note = notes.remove(&gon_id.to_string()).ok_or_else(|| {
        ItemError::permanent(format!("goods-out note {gon_id} does not exist in Brightpearl (deleted?); nothing to send to Norce"))
    })?;
    if note.status.as_ref().and_then(|s| s.shipped) != Some(true) {
        return Err(ItemError::transient(format!(
            "goods-out note {gon_id} is not shipped (any more) in Brightpearl; tried again next pass"
        )));
    }
    let order_id = note
        .order_id
        .ok_or_else(|| ItemError::permanent(format!("goods-out note {gon_id} has no orderId")))?;
    let order_ids = [u64::try_from(order_id).map_err(|_| {
        ItemError::permanent(format!("goods-out note {gon_id} has order id {order_id}"))
    })?];
    let orders = brightpearl
        .sales_orders(&order_ids)
        .await
        .map_err(|e| ItemError::call(&format!("sales order {order_id}"), e))?;
    let order = orders.into_iter().next().ok_or_else(|| {
        ItemError::permanent(format!(
            "goods-out note {gon_id}: its order {order_id} does not exist in Brightpearl"
        ))
    })?;
    let Some(order_no) = order.external_ref.clone().filter(|r| !r.trim().is_empty()) else {
        return Err(ItemError::Skip(format!(
            "order {order_id} has no externalRef: not a Norce order"
        )));
    };
    let Some(entity) = ctx.store.get(FLOW, &order_no)? else {
        return Err(ItemError::Skip(format!(
            "order {order_id} ({order_no}) was not created by relay"
        )));
    };
    match entity.status {
        Status::Done => {}
        Status::Pending => {
            return Err(ItemError::Wait(format!(
                "Norce order {order_no} is not confirmed yet (the `orders` flow does that first)"
            )));
        }
        Status::Failed => {
            return Err(ItemError::transient(format!(
                "Norce order {order_no} is in the dead letters of the `orders` flow; replay it first (`relay replay`)"
            )));
        }
        Status::Skipped => {
            return Err(ItemError::Skip(format!(
                "Norce order {order_no} was skipped by the `orders` flow"
            )));
        }
        Status::Resolved => {
            return Err(ItemError::Skip(format!(
                "Norce order {order_no} was resolved by an operator in the `orders` flow (see its history)"
            )));
        }
    }
    let norce = entity
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<OrderPayload>(p).ok())
        .and_then(|p| p.normalise(&ctx.config.orders).ok());
    let erp_order_no = entity
        .target_id
        .clone()
        .unwrap_or_else(|| order_id.to_string());
    Ok(Shipment {
        gon_id,
        note,
        order,
        order_no,
        erp_order_no,
        norce,
    })
}

async fn process_note(
    ctx: &FlowContext,
    norce: &norce_client::NorceClient,
    brightpearl: &brightpearl_client::Client,
    record: &EntityRecord,
) -> Result<Outcome, ItemError> {
    let id = record.source_id.as_str();
    let gon_id: u64 = id.parse().map_err(|_| {
        ItemError::permanent(format!("`{id}` is not a goods-out note id; this entry came from an unreadable webhook and can be dropped"))
    })?;
    let shipment = load(ctx, brightpearl, gon_id)
        .instrument(tracing::info_span!(
            "flow_step",
            flow = FULFILMENT_FLOW,
            step = "load",
            source_id = id
        ))
        .await?;
    let config = &ctx.config.orders;
    let note_no = format!("{}{gon_id}", config.delivery_note_prefix);
    let mut outcome = Outcome::default();
    if !matches!(record.step.as_deref(), Some("note_created")) {
        let span = tracing::info_span!(
            "flow_step",
            flow = FULFILMENT_FLOW,
            step = "delivery_note",
            source_id = id
        );
        // CreateDeliveryNote is not idempotent: look at the order's notes before every create.
        let exists = norce_has_note(norce, &shipment.order_no, &note_no)
            .instrument(span.clone())
            .await?;
        if exists {
            tracing::info!(parent: &span, note_no, "Norce already has this delivery note");
        } else {
            let note = delivery_note(&shipment, &note_no)?;
            norce
                .create_delivery_note(&note)
                .instrument(span.clone())
                .await?;
            tracing::info!(parent: &span, note_no, order_no = shipment.order_no, "Norce delivery note created");
            outcome.booked = true;
            outcome.note = true;
        }
        ctx.store.update(
            FULFILMENT_FLOW,
            id,
            &EntityUpdate {
                step: Some("note_created".into()),
                target_id: Some(note_no.clone()),
                ..EntityUpdate::default()
            },
        )?;
    }
    // From the order's shipping status now, so a note processed late never downgrades Delivered.
    let all_shipped = matches!(
        shipment.order.shipping_status_code,
        Some(ShippingStatusCode::Ass)
    );
    let status = if all_shipped {
        &config.delivered_status
    } else {
        &config.partly_delivered_status
    };
    let request = SendOrderStatusRequest {
        client_order_ref: shipment.norce.as_ref().and_then(|o| o.basket_id),
        erp_order_no: Some(shipment.erp_order_no.clone()),
        order_status: ConnectOrderStatus::from(status.as_str()),
        account_id: None,
        infos: None,
    };
    norce
        .send_order_status(&request)
        .instrument(tracing::info_span!(
            "flow_step",
            flow = FULFILMENT_FLOW,
            step = "status",
            source_id = id
        ))
        .await?;
    ctx.store.update(
        FULFILMENT_FLOW,
        id,
        &EntityUpdate {
            status: Some(Status::Done),
            step: Some("written_back".into()),
            clear_error: true,
            ..EntityUpdate::default()
        },
    )?;
    outcome.written_back = true;
    outcome.delivered = all_shipped;
    outcome.partly_delivered = !all_shipped;
    outcome.done = true;
    Ok(outcome)
}

/// Whether the Norce order already has a delivery note with this number.
async fn norce_has_note(
    norce: &norce_client::NorceClient,
    order_no: &str,
    note_no: &str,
) -> Result<bool, ItemError> {
    let query = QueryOrdersQuery {
        filter: Some(format!("orderNo eq '{}'", order_no.replace('\'', "''"))),
        expand: Some(
            norce
                .query_navigation()
                .expand(&[Navigation::DeliveryNotes]),
        ),
        ..QueryOrdersQuery::default()
    };
    let mut pages = norce.query_orders(query);
    let mut found_order = false;
    while let Some(page) = pages.next().await {
        for order in page?.value {
            found_order = true;
            if order
                .delivery_note
                .iter()
                .flatten()
                .any(|n| n.note_no == note_no)
            {
                return Ok(true);
            }
        }
    }
    if !found_order {
        return Err(ItemError::transient(format!(
            "Norce has no order `{order_no}` (Query orderNo); cannot add delivery note {note_no}"
        )));
    }
    Ok(false)
}

/// The Norce delivery note of a shipped goods-out note: its lines (SKU, quantity, Norce line
/// number) and one package with the tracking reference.
fn delivery_note(shipment: &Shipment, note_no: &str) -> Result<DeliveryNote, ItemError> {
    let rows_by_id: BTreeMap<String, _> = shipment
        .order
        .rows
        .iter()
        .flatten()
        .map(|r| (r.id.to_string(), r))
        .collect();
    let mut items = Vec::new();
    for (row_id, entries) in shipment.note.order_rows.iter().flatten() {
        // One order row can appear several times (several locations): sum the quantities.
        let quantity: i64 = entries.iter().filter_map(|e| e.quantity).sum();
        let row = rows_by_id.get(row_id);
        let line_no = row
            .and_then(|r| r.external_ref.as_deref())
            .and_then(|r| r.parse::<i64>().ok());
        let norce_line = line_no.and_then(|n| {
            shipment
                .norce
                .as_ref()?
                .lines
                .iter()
                .find(|l| i64::from(l.line_no) == n)
        });
        let item_no = norce_line
            .map(|l| l.part_no.clone())
            .or_else(|| row.and_then(|r| r.sku.clone()))
            .or_else(|| {
                entries
                    .iter()
                    .find_map(|e| e.product_id)
                    .map(|p| p.to_string())
            })
            .unwrap_or_else(|| row_id.clone());
        let what = format!("goods-out note {} row {row_id}", shipment.gon_id);
        items.push(DeliveryNoteItem {
            row_number: line_no
                .map(|n| decimal(Amount::from_int(n), &what))
                .transpose()?,
            item_no,
            description: norce_line
                .and_then(|l| l.name.clone())
                .or_else(|| row.and_then(|r| r.name.clone())),
            qty: decimal(Amount::from_int(quantity), &what)?,
            comment: None,
            id: None,
        });
    }
    let status = shipment.note.status.as_ref();
    let delivery_date = status.and_then(|s| s.shipped_on.clone()).ok_or_else(|| {
        ItemError::transient(format!(
            "goods-out note {} has no shippedOn",
            shipment.gon_id
        ))
    })?;
    let tracking = shipment
        .note
        .shipping
        .as_ref()
        .and_then(|s| s.reference.clone())
        .filter(|r| !r.trim().is_empty());
    let customer = shipment.norce.as_ref().map(|o| &o.customer);
    let name = customer
        .map(|c| {
            [c.first_name.as_deref(), c.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|n| !n.is_empty());
    let address = shipment.norce.as_ref().map(|o| DeliveryAddress {
        line1: o.address.line1.clone(),
        line2: o.address.line2.clone(),
        zip_code: o.address.zip.clone(),
        city: o.address.city.clone(),
        region: o.address.region.clone(),
        country: o.address.country.clone(),
        ..DeliveryAddress::default()
    });
    Ok(DeliveryNote {
        order_no: shipment.erp_order_no.clone(),
        note_no: note_no.to_owned(),
        delivery_date,
        buyer_company_code: None,
        buyer_customer_code: None,
        delivery_address: address,
        delivery_name: name,
        delivery_attention: None,
        delivery_mode: None,
        note_text: None,
        division_code: None,
        status_id: None,
        delivery_note_items: Some(items),
        delivery_note_packages: tracking.map(|parcel_number| {
            vec![DeliveryNotePackage {
                parcel_number,
                status_id: None,
                id: None,
            }]
        }),
    })
}
