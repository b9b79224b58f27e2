//! Norce → Brightpearl orders, and fulfilment back.
//!
//! Two flows share this module:
//!
//! - **`orders`** ([`run`]): every new Norce order becomes one Brightpearl sales order, and Norce
//!   gets `SendOrderStatus` with the ERP order number. Entity: the Norce order number; target id:
//!   the Brightpearl order id. New orders come from Query 3.0 polling (cursor `orders`, the
//!   `created` time of the newest order seen) and from the order receiver (inbox source
//!   `norce-order`, an `OrderRequest`). With `orders.since` (the go-live cutoff) the poll starts
//!   at the later of the cursor and the cutoff, and an order placed before it (a push, a replay,
//!   one queued before the cutoff was set) is recorded `Skipped`, never imported nor confirmed.
//! - **`fulfilment`** ([`run_fulfilment`]): a shipped Brightpearl goods-out note becomes one Norce
//!   delivery note with the tracking reference, and the Norce order goes Delivered (or
//!   PartlyDelivered). Entity: the goods-out note id; target id: the delivery note number. Shipped
//!   notes come from the `goods-out-note.modified.shipped` webhook (inbox source
//!   `brightpearl-webhook`) and from goods-out-note search polling (cursor `fulfilment`, the
//!   `shippedOn` time of the newest note seen).
//!   The same pass sends orders cancelled in Brightpearl (`order.modified.order-status`
//!   webhook, status `orders.cancelled_status_id`) to Norce as `CancelOrder` while Norce holds
//!   them open (entities `erp-cancel`, keyed by the Brightpearl order id; see `cancel`).
//!
//! The `orders` pass also credits refunds (entities `refund`, keyed `{orderNo}-R{n}`, queued by
//! `relay refund` or the console; see `refund`): a Brightpearl sales credit per refund, and the
//! stock put back when asked.
//!
//! Steps of an `orders` entity, each recorded after its platform call and each checking the
//! target first when replayed:
//!
//! | step recorded | platform call | check on replay |
//! | --- | --- | --- |
//! | `contact` | contact-search by exact e-mail, else postal-address + contact POST | the recorded contact id; a crash before recording finds the contact by e-mail |
//! | `created` | sales-order POST (`externalRef` = order number) | order-search by `externalRef` *before* every POST: a lost response (commit-then-fail) is found, never posted twice |
//! | `written_back` (done) | Norce `SendOrderStatus` with `ErpOrderNo` | idempotent by nature |
//!
//! Steps of a `fulfilment` entity:
//!
//! | step recorded | platform call | check on replay |
//! | --- | --- | --- |
//! | `note_created` | Norce `CreateDeliveryNote` (`NoteNo` = prefix + goods-out note id) | the Norce order's delivery notes are read first (`CreateDeliveryNote` is not idempotent) |
//! | `written_back` (done) | Norce `SendOrderStatus` Delivered / PartlyDelivered (from the Brightpearl order's shipping status) | idempotent by nature |
//!
//! Orders of one customer (same e-mail) are processed one after the other, so two orders of a new
//! customer never create two contacts; different customers run concurrently (`run.concurrency`).
//! With `orders.multi_message` (the default) a page's writes go in batches instead ([`batch`]):
//! one contact-search and at most one contact per e-mail of the page, the same steps recorded.

mod amount;
mod batch;
mod cancel;
mod common;
mod dedupe;
mod fulfilment;
mod model;
mod refund;
mod steps;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use norce_client::Navigation;
use norce_client::models::events::OrderRequest;
use norce_client::models::query::QueryOrdersQuery;
use tracing::Instrument as _;

#[cfg(test)]
use self::common::parse_id_set;
pub use self::common::{FLOW, FULFILMENT_FLOW, GOODS_OUT_SEARCH_COLUMNS, ORDER_SEARCH_COLUMNS};
use self::common::{OrderPayload, OrderSource, cursor_text, dead_letter_unreadable};
use self::dedupe::Recent;
use super::action::{self, ItemError};
use super::context::{
    FlowContext, FlowError, FlowReport, Ingested, Outcome, PENDING_PAGE, cursor_time, elapsed_ms,
};
use super::contract::{Flow, FlowFuture, IngestFuture, every};
use crate::config::ServeConfig;
pub use crate::config::orders::{CountryCodeForm, OrdersConfig, PushOrderNumber, UnmatchedSku};
use crate::flows::keyset::Keyset;
use crate::state::{EntityRecord, EntityUpdate, InboxItem, Status};

pub use self::cancel::ERP_CANCEL_FLOW;
pub use self::fulfilment::run_fulfilment;
pub use self::refund::{
    PlannedRefund, REFUND_FLOW, RefundRefused, RefundRequest, parse_refund_row, plan_refund,
    refund_key, refunds_of,
};
use self::steps::*;

/// Inbox source of the Norce order receiver (body: an `OrderRequest`).
pub const NORCE_ORDER_SOURCE: &str = super::context::SOURCE_NORCE_ORDER;
/// Inbox source of Brightpearl webhooks (body: the webhook's JSON body template).
pub const BRIGHTPEARL_WEBHOOK_SOURCE: &str = super::context::SOURCE_BRIGHTPEARL_WEBHOOK;
/// Inbox source of Norce event webhooks (key `{eventType}:{id}`).
pub const NORCE_EVENT_SOURCE: &str = super::context::SOURCE_NORCE_EVENT;

/// The `orders` flow in the [registry](crate::flows::registry): Norce orders (pushed or
/// polled, and the order events that start a poll) into Brightpearl.
#[derive(Debug, Clone, Copy, Default)]
pub struct Orders;

impl Flow for Orders {
    fn name(&self) -> &'static str {
        FLOW
    }

    /// Its orders and their refunds (`refund`, queued by `relay refund` or the console).
    fn entity_flows(&self) -> &'static [&'static str] {
        &[FLOW, REFUND_FLOW]
    }

    fn accepts(&self, source: &str) -> bool {
        source == NORCE_ORDER_SOURCE || source == NORCE_EVENT_SOURCE
    }

    fn ingest<'a>(&'a self, ctx: &'a FlowContext, item: &'a InboxItem) -> IngestFuture<'a> {
        Box::pin(async move {
            if self.accepts(&item.source) {
                ingest(ctx, item).await
            } else {
                Ok(Ingested::Nothing)
            }
        })
    }

    fn run<'a>(&'a self, ctx: &'a FlowContext) -> FlowFuture<'a> {
        Box::pin(run(ctx))
    }

    fn every(&self, serve: &ServeConfig) -> Option<Duration> {
        every(serve.orders_every_secs)
    }
}

/// The `fulfilment` flow in the [registry](crate::flows::registry): shipped Brightpearl
/// goods-out notes (webhooks, or the goods-out-note search) back to Norce. Scheduled like
/// `orders` (`serve.orders_every_secs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fulfilment;

impl Flow for Fulfilment {
    fn name(&self) -> &'static str {
        FULFILMENT_FLOW
    }

    /// Its goods-out notes and the orders cancelled in Brightpearl (`erp-cancel`).
    fn entity_flows(&self) -> &'static [&'static str] {
        &[FULFILMENT_FLOW, ERP_CANCEL_FLOW]
    }

    fn accepts(&self, source: &str) -> bool {
        source == BRIGHTPEARL_WEBHOOK_SOURCE
    }

    fn ingest<'a>(&'a self, ctx: &'a FlowContext, item: &'a InboxItem) -> IngestFuture<'a> {
        Box::pin(async move {
            if self.accepts(&item.source) {
                fulfilment::ingest_webhook(ctx, item)
            } else {
                Ok(Ingested::Nothing)
            }
        })
    }

    fn run<'a>(&'a self, ctx: &'a FlowContext) -> FlowFuture<'a> {
        Box::pin(run_fulfilment(ctx))
    }

    fn every(&self, serve: &ServeConfig) -> Option<Duration> {
        every(serve.orders_every_secs)
    }
}

/// Whether an inbox source feeds these flows (`norce-order`, `norce-event`, `brightpearl-webhook`).
pub fn accepts(source: &str) -> bool {
    source == NORCE_ORDER_SOURCE
        || source == NORCE_EVENT_SOURCE
        || source == BRIGHTPEARL_WEBHOOK_SOURCE
}

/// Turns an inbox item into `Pending` entities without calling any platform: a Norce order push
/// into an `orders` entity, a `goods-out-note.modified.shipped` webhook into one `fulfilment`
/// entity per note. Other Brightpearl events are left to the flows that want them. A body that
/// cannot be read is dead-lettered with what to fix.
pub async fn ingest(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    match item.source.as_str() {
        NORCE_ORDER_SOURCE => ingest_order(ctx, item),
        NORCE_EVENT_SOURCE => {
            // Nothing to record: the order is not lost if the triggered pass fails, because the
            // poll's cursor only moves past orders it has stored.
            let event_type = item.key.split(':').next().unwrap_or_default();
            if !ctx
                .config
                .orders
                .norce_events
                .iter()
                .any(|e| e == event_type)
            {
                tracing::debug!(
                    flow = FLOW,
                    event_type,
                    "Norce event not in orders.norce_events; ignored"
                );
                Ok(Ingested::Nothing)
            } else if ctx.config.orders.poll {
                tracing::debug!(
                    flow = FLOW,
                    event_type,
                    "Norce order event: the pass it triggers polls the order"
                );
                Ok(Ingested::Work)
            } else {
                tracing::warn!(
                    flow = FLOW,
                    event_type,
                    "Norce order event ignored: orders.poll is false, so no pass reads the order (use the order receiver push, or turn polling on)"
                );
                Ok(Ingested::Nothing)
            }
        }
        BRIGHTPEARL_WEBHOOK_SOURCE => fulfilment::ingest_webhook(ctx, item),
        _ => Ok(Ingested::Nothing),
    }
}

fn ingest_order(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    let span =
        tracing::info_span!("flow_step", flow = FLOW, step = "ingest", source_id = %item.key);
    let _entered = span.enter();
    let request: OrderRequest = match serde_json::from_str(&item.body) {
        Ok(request) => request,
        Err(e) => {
            let error = format!(
                "the Norce order push (inbox item {}, key `{}`) is not an OrderRequest: {e}; check the order receiver settings in Norce Admin, then have Norce send the order again",
                item.id, item.key
            );
            dead_letter_unreadable(ctx, FLOW, &item.key, Some(&item.body), &error)?;
            return Ok(Ingested::Nothing);
        }
    };
    let Some(order_no) = model::push_order_number(&request, ctx.config.orders.push_order_number)
    else {
        let error = format!(
            "the Norce order push (inbox item {}) has neither CustomerOrderRef nor ClientOrderRef, so it cannot be matched",
            item.id
        );
        dead_letter_unreadable(ctx, FLOW, &item.key, Some(&item.body), &error)?;
        return Ok(Ingested::Nothing);
    };
    let payload = OrderPayload {
        source: OrderSource::Push(Box::new(request)),
        contact_id: None,
        posted: None,
    };
    let text = match payload.to_json() {
        Ok(text) => text,
        Err(error) => {
            dead_letter_unreadable(ctx, FLOW, &order_no, None, &error)?;
            return Ok(Ingested::Work);
        }
    };
    if let Some(reason) = before_cutoff(ctx, &payload.source) {
        return skip_push(ctx, &order_no, &text, reason);
    }
    match ctx.store.get(FLOW, &order_no)? {
        None => {
            ctx.store.upsert_pending(FLOW, &order_no, Some(&text))?;
            tracing::debug!(order_no, "Norce order push queued");
        }
        // Not started (nothing written to Brightpearl yet): a newer push (a changed order)
        // replaces what was queued, so the changed lines are what the ERP gets.
        Some(record) if record.status == Status::Pending && record.step.is_none() => {
            ctx.store.update(
                FLOW,
                &order_no,
                &EntityUpdate {
                    payload: Some(text),
                    ..EntityUpdate::default()
                },
            )?;
            tracing::info!(
                order_no,
                "Norce order push replaces the queued one (not started yet)"
            );
        }
        Some(record) => {
            tracing::debug!(order_no, status = record.status.as_str(), step = ?record.step, "order already being imported or imported; push ignored");
            return Ok(Ingested::Nothing);
        }
    }
    Ok(Ingested::Work)
}

/// When a stored Norce order was placed: a Query order's `created` (what the poll filters on),
/// else its `orderDate`; a push's `SubmitDate`. `None` when the order does not say.
fn placed_at(source: &OrderSource) -> Option<DateTime<Utc>> {
    match source {
        OrderSource::Query(order) => order.created.as_ref().or(order.order_date.as_ref()),
        OrderSource::Push(request) => request.submit_date.as_ref(),
    }
    .map(models_runtime::Timestamp::to_utc)
}

/// Why an order is not imported under `orders.since`, or `None` when it is taken (placed at or
/// after the cutoff, no cutoff, or no placing time to judge by: live traffic, not history).
fn before_cutoff(ctx: &FlowContext, source: &OrderSource) -> Option<String> {
    let reason = ctx
        .config
        .orders
        .since?
        .reason("orders.since", placed_at(source)?)?;
    Some(format!(
        "{reason}: never imported into Brightpearl nor confirmed back"
    ))
}

/// Records a pushed order placed before `orders.since` as skipped (an order already being
/// imported, or finished, is left as it is).
fn skip_push(
    ctx: &FlowContext,
    order_no: &str,
    text: &str,
    reason: String,
) -> Result<Ingested, FlowError> {
    match ctx.store.get(FLOW, order_no)? {
        None => {
            ctx.store.upsert_pending(FLOW, order_no, Some(text))?;
        }
        Some(record) if record.status == Status::Pending && record.step.is_none() => {
            ctx.store.update(
                FLOW,
                order_no,
                &EntityUpdate {
                    payload: Some(text.to_owned()),
                    ..EntityUpdate::default()
                },
            )?;
        }
        Some(record) => {
            tracing::debug!(order_no, status = record.status.as_str(), step = ?record.step, "order already being imported or finished; push before orders.since ignored");
            return Ok(Ingested::Nothing);
        }
    }
    action::apply(ctx, FLOW, order_no, ItemError::Skip(reason))?;
    Ok(Ingested::Nothing)
}

/// Takes the orders of a page that were placed before `orders.since` out of it, recording each
/// as skipped: orders queued before the cutoff was configured, replayed ones, and any the poll
/// read although its filter should have left them out. Only orders whose sales order cannot
/// have been posted yet: one whose POST may have happened (`posting`) is finished as begun.
fn skip_before_cutoff(
    ctx: &FlowContext,
    page: Vec<EntityRecord>,
    report: &mut FlowReport,
) -> Result<Vec<EntityRecord>, FlowError> {
    if ctx.config.orders.since.is_none() {
        return Ok(page);
    }
    let mut kept = Vec::with_capacity(page.len());
    for record in page {
        let unposted = matches!(record.step.as_deref(), None | Some("contact"));
        let reason = unposted
            .then(|| serde_json::from_str::<OrderPayload>(record.payload.as_deref()?).ok())
            .flatten()
            .and_then(|payload| before_cutoff(ctx, &payload.source));
        match reason {
            Some(reason) => report.add(action::settle(
                ctx,
                FLOW,
                &record.source_id,
                Err(ItemError::Skip(reason)),
            )?),
            None => kept.push(record),
        }
    }
    Ok(kept)
}

/// One pass of the `orders` flow: picks up new Norce orders (Query polling with the `orders`
/// cursor, when `orders.poll`), then brings every pending order through its steps.
pub async fn run(ctx: &FlowContext) -> Result<FlowReport, FlowError> {
    let started = Instant::now();
    ctx.config.orders.validate()?;
    let norce = ctx.norce()?;
    let brightpearl = ctx.brightpearl()?;
    let mut report = FlowReport {
        flow: FLOW.to_owned(),
        ..FlowReport::default()
    };
    if ctx.config.orders.poll {
        let already_done = pick_up_orders(ctx, norce)
            .instrument(tracing::info_span!(
                "flow_step",
                flow = FLOW,
                step = "poll",
                source_id = "norce-query"
            ))
            .await?;
        report.seen += already_done;
        report.done += already_done;
    }
    let shared = Shared::new(ctx, brightpearl);
    // A page of pending orders at a time, so memory stays flat however long the backlog; within
    // a page, one customer's orders in sequence (find-or-create of the contact), customers in
    // parallel. Pages follow each other, so a customer is never processed twice at once.
    let mut after = 0;
    // Once the process is stopping, no new page and no new order: those in flight finish, the
    // rest stay pending for the next start.
    while !ctx.stopping.is_set() {
        let page = ctx
            .store
            .list_after(FLOW, Some(Status::Pending), after, PENDING_PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.position;
        let page = skip_before_cutoff(ctx, page, &mut report)?;
        if page.is_empty() {
            continue;
        }
        let recent = check_page(ctx, &shared, &page).await;
        let recent = recent.as_ref();
        if ctx.config.orders.multi_message {
            for outcome in batch::run_page(ctx, &shared, recent, page).await? {
                report.add(outcome);
            }
            continue;
        }
        let mut groups: Vec<Vec<EntityRecord>> = Vec::new();
        let mut group_of: HashMap<String, usize> = HashMap::new();
        for record in page {
            let key = email_key(&record).unwrap_or_else(|| format!("\u{0}{}", record.source_id));
            let index = *group_of.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[index].push(record);
        }
        // Boxed as `Send` here, where the lifetimes are concrete: left as opaque futures inside
        // `BufferUnordered`, the pass's future is not provably `Send` for every lifetime, and the
        // runners box it as `Send`.
        let passes: Vec<BoxFuture<'_, Result<Vec<Outcome>, FlowError>>> = groups
            .into_iter()
            .map(|group| Box::pin(process_group(ctx, &shared, recent, group)) as BoxFuture<'_, _>)
            .collect();
        let results: Vec<Result<Vec<Outcome>, FlowError>> = futures::stream::iter(passes)
            .buffer_unordered(ctx.config.run.concurrency.max(1))
            .collect()
            .await;
        for result in results {
            for outcome in result? {
                report.add(outcome);
            }
        }
    }
    // Refunds after the orders: a refund queued for an order of this pass finds its sales
    // order recorded.
    for outcome in refund::run_refunds(ctx, &shared).await? {
        report.add(outcome);
    }
    report.duration_ms = elapsed_ms(started);
    tracing::info!(flow = FLOW, ?report, "pass finished");
    Ok(report)
}

/// One customer's pending orders, one after the other.
async fn process_group(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    recent: Option<&Recent>,
    group: Vec<EntityRecord>,
) -> Result<Vec<Outcome>, FlowError> {
    let mut outcomes = Vec::new();
    for record in group {
        if ctx.stopping.is_set() {
            break;
        }
        let result = process_order(ctx, shared, recent, &record).await;
        outcomes.push(action::settle(ctx, FLOW, &record.source_id, result)?);
    }
    Ok(outcomes)
}

/// The bulk `externalRef` check of a page ([`dedupe`]): one order-search (more only for orders
/// posted long before). `None` when no order needs it or the search failed; each order then
/// looks itself up.
async fn check_page(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    page: &[EntityRecord],
) -> Option<Recent> {
    let payloads: Vec<OrderPayload> = page
        .iter()
        .filter(|r| needs_sales_order(r))
        .filter_map(|r| serde_json::from_str(r.payload.as_deref()?).ok())
        .collect();
    if payloads.is_empty() {
        return None;
    }
    let markers: Vec<&common::PostMarker> =
        payloads.iter().filter_map(|p| p.posted.as_ref()).collect();
    let config = &ctx.config.orders;
    match dedupe::recent_orders(
        shared.brightpearl,
        instance_id(ctx, shared.brightpearl),
        &markers,
        config.duplicate_check_overlap_secs,
        config.duplicate_check_max_pages,
    )
    .await
    {
        Ok(recent) => Some(recent),
        Err(error) => {
            tracing::warn!(flow = FLOW, error = ?error, "bulk duplicate check failed; each order is looked up on its own");
            None
        }
    }
}

/// The group key of a pending order: its customer's e-mail, if the payload can tell.
fn email_key(record: &EntityRecord) -> Option<String> {
    let payload: OrderPayload = serde_json::from_str(record.payload.as_deref()?).ok()?;
    let email = match &payload.source {
        OrderSource::Query(order) => model::query_email(order),
        OrderSource::Push(request) => [&request.sell_to, &request.bill_to, &request.ship_to]
            .into_iter()
            .flatten()
            .find_map(|c| c.person.as_ref()?.email.clone()),
    }?;
    let key = email.trim().to_ascii_lowercase();
    (!key.is_empty()).then_some(key)
}

/// Reads new Norce orders into `Pending` entities and moves the cursor. Returns how many of
/// them were finished before (seen again at the cursor's edge).
async fn pick_up_orders(
    ctx: &FlowContext,
    norce: &norce_client::NorceClient,
) -> Result<u64, FlowError> {
    let config = &ctx.config.orders;
    let statuses: Vec<String> = config
        .import_status_ids
        .iter()
        .map(|s| format!("statusId eq {s}"))
        .collect();
    let mut filter = format!("({})", statuses.join(" or "));
    let cursor = cursor_time(ctx, FLOW)?;
    // The later of the cursor and the go-live cutoff: a cursor before `orders.since` (unset,
    // or forced back) never reads orders placed before it.
    let start = match (cursor, config.since.map(|s| s.instant())) {
        (Some(cursor), Some(since)) => Some(cursor.max(since)),
        (cursor, since) => cursor.or(since),
    };
    if let Some(start) = start {
        // `ge`: orders sharing the cursor's instant are seen again, and upserting them is a no-op.
        filter.push_str(&format!(" and created ge {}", cursor_text(start)));
    }
    let query = QueryOrdersQuery {
        filter: Some(filter),
        expand: Some(norce.query_navigation().expand(&[
            Navigation::OrderItems,
            Navigation::Buyer,
            Navigation::ShipTo,
        ])),
        ..QueryOrdersQuery::default()
    };
    // One page at a time, each after the last order seen (`flows::keyset`: `$skip` paging
    // would miss orders that the shipping flow moves out of the statuses between two pages).
    let mut keyset = Keyset::new("created");
    let mut newest = cursor;
    let mut finished_before = 0;
    loop {
        let Some(page) = norce.query_orders(keyset.page_query(&query)).next().await else {
            break;
        };
        let page = page?;
        let next_link = page.odata_next_link.clone();
        for order in page.value {
            keyset.saw(order.created.as_ref().map(|t| t.to_utc()), order.id);
            let Some(order_no) = Some(order.order_no.clone()).filter(|n| !n.trim().is_empty())
            else {
                tracing::warn!(
                    flow = FLOW,
                    norce_id = order.id,
                    "Norce order without an orderNo ignored"
                );
                continue;
            };
            if let Some(created) = order
                .created
                .as_ref()
                .or(order.order_date.as_ref())
                .map(|t| t.to_utc())
            {
                newest = Some(newest.map_or(created, |n| n.max(created)));
            }
            let payload = OrderPayload {
                source: OrderSource::Query(Box::new(order)),
                contact_id: None,
                posted: None,
            };
            let text = payload.to_json().map_err(|reason| FlowError::Config {
                setting: "orders".into(),
                reason,
            })?;
            let record = ctx.store.upsert_pending(FLOW, &order_no, Some(&text))?;
            if record.status.is_finished() {
                finished_before += 1;
            }
        }
        if !keyset.more(next_link.as_deref()) {
            break;
        }
    }
    // Only after every order is stored: a crash before this line re-reads them, never loses one.
    if let Some(newest) = newest.filter(|n| Some(*n) != cursor) {
        ctx.store.set_cursor(FLOW, &cursor_text(newest))?;
    }
    Ok(finished_before)
}

#[cfg(test)]
mod tests {
    use super::model::NorceOrder;
    use super::*;

    #[test]
    fn id_sets() {
        assert_eq!(parse_id_set("1-3,7, 9").unwrap(), vec![1, 2, 3, 7, 9]);
        assert_eq!(parse_id_set("5").unwrap(), vec![5]);
        for bad in ["", "a", "3-1", "1-", "1-100000"] {
            assert!(parse_id_set(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn config_defaults_parse_and_bad_values_are_named() {
        let config = crate::config::RelayConfig::parse(
            "[orders]\nunmatched_sku = \"free_text\"\nchannel_id = 3\n",
            "relay.toml",
        )
        .unwrap();
        assert_eq!(config.orders.unmatched_sku, UnmatchedSku::FreeText);
        assert_eq!(
            (config.orders.channel_id, config.orders.tax_code.as_str()),
            (Some(3), "T25")
        );
        let err = crate::config::RelayConfig::parse("[orders]\nunmatched = 1\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unmatched"), "{err}");
        let err = crate::config::RelayConfig::parse(
            "[orders]\nunmatched_sku = \"ignore\"\n",
            "relay.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ignore"), "{err}");
        let config = OrdersConfig {
            confirmed_status: "Confirmd".into(),
            ..OrdersConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("orders.confirmed_status") && err.contains("Acknowledged"),
            "{err}"
        );
        assert!(OrdersConfig::default().validate().is_ok());
    }

    #[test]
    fn country_codes_take_the_form_brightpearl_is_given() {
        assert_eq!(alpha3("SE").unwrap(), "SWE");
        assert_eq!(alpha3("no").unwrap(), "NOR");
        assert!(alpha3("XX").unwrap_err().contains("orders.country_codes"));
        let order = |country: &str| NorceOrder {
            order_no: "NC-1".into(),
            basket_id: None,
            currency: None,
            placed_on: None,
            customer: model::Customer::default(),
            address: model::Address {
                country: Some(country.into()),
                ..model::Address::default()
            },
            lines: Vec::new(),
            source: "query".into(),
        };
        let config = OrdersConfig::default();
        let request = sales_order_request(&config, &order("SE"), 7, None, Vec::new()).unwrap();
        assert_eq!(
            request
                .customer
                .address
                .unwrap()
                .country_iso_code
                .as_deref(),
            Some("SE")
        );
        let config = OrdersConfig {
            sales_order_country_code: CountryCodeForm::Alpha3,
            ..OrdersConfig::default()
        };
        let request = sales_order_request(&config, &order("SE"), 7, None, Vec::new()).unwrap();
        assert_eq!(
            request
                .delivery
                .unwrap()
                .address
                .unwrap()
                .country_iso_code
                .as_deref(),
            Some("SWE")
        );
        assert!(sales_order_request(&config, &order("Sverige"), 7, None, Vec::new()).is_err());
    }

    #[tokio::test]
    async fn a_push_placed_before_orders_since_is_recorded_skipped_naming_the_key() {
        let config =
            crate::config::RelayConfig::parse("[orders]\nsince = \"2026-12-01\"\n", "relay.toml")
                .unwrap();
        let ctx = FlowContext::offline(config);
        let push = |id: i64, order_no: &str, submitted: Option<&str>| {
            let mut body = serde_json::json!({
                "ClientOrderRef": format!("40000{id}"), "CustomerOrderRef": order_no,
                "Items": [{"LineNo": 1, "PartNo": "SKU-1", "Quantity": 1}]
            });
            if let Some(at) = submitted {
                body["SubmitDate"] = at.into();
            }
            InboxItem {
                id,
                source: NORCE_ORDER_SOURCE.into(),
                key: order_no.into(),
                body: body.to_string(),
                received_at: String::new(),
            }
        };
        let old = push(1, "NC-1", Some("2026-11-30T23:00:00Z"));
        assert_eq!(ingest(&ctx, &old).await.unwrap(), Ingested::Nothing);
        let record = ctx.store.get(FLOW, "NC-1").unwrap().unwrap();
        assert_eq!(record.status, Status::Skipped);
        let step = record.step.unwrap_or_default();
        assert!(
            step.contains("`orders.since`") && step.contains("2026-11-30T23:00:00Z"),
            "{step}"
        );
        // A repeat changes nothing; a newer order, or one that does not say when it was
        // placed, is queued as before.
        assert_eq!(ingest(&ctx, &old).await.unwrap(), Ingested::Nothing);
        for (id, order_no, at) in [(2, "NC-2", Some("2026-12-01T00:00:00Z")), (3, "NC-3", None)] {
            assert_eq!(
                ingest(&ctx, &push(id, order_no, at)).await.unwrap(),
                Ingested::Work
            );
            let record = ctx.store.get(FLOW, order_no).unwrap().unwrap();
            assert_eq!(record.status, Status::Pending, "{order_no}");
        }
        assert!(ctx.store.dead_letters().unwrap().is_empty());
    }

    #[test]
    fn accepts_the_two_sources() {
        assert!(
            accepts("norce-order")
                && accepts("brightpearl-webhook")
                && accepts("norce-event")
                && !accepts("nshift")
        );
    }
}
