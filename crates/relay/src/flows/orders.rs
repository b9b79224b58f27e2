//! Norce → Brightpearl orders, and fulfilment back.
//!
//! Two flows share this module:
//!
//! - **`orders`** ([`run`]): every new Norce order becomes one Brightpearl sales order, and Norce
//!   gets `SendOrderStatus` with the ERP order number. Entity: the Norce order number; target id:
//!   the Brightpearl order id. New orders come from Query 3.0 polling (cursor `orders`, the
//!   `created` time of the newest order seen) and from the order receiver (inbox source
//!   `norce-order`, an `OrderRequest`).
//! - **`fulfilment`** ([`run_fulfilment`]): a shipped Brightpearl goods-out note becomes one Norce
//!   delivery note with the tracking reference, and the Norce order goes Delivered (or
//!   PartlyDelivered). Entity: the goods-out note id; target id: the delivery note number. Shipped
//!   notes come from the `goods-out-note.modified.shipped` webhook (inbox source
//!   `brightpearl-webhook`) and from goods-out-note search polling (cursor `fulfilment`, the
//!   `shippedOn` time of the newest note seen).
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

mod amount;
mod common;
mod dedupe;
mod fulfilment;
mod model;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use brightpearl_client::models::contact::{
    ContactCommunication, ContactEmail, ContactEmails, ContactRequest, ContactTelephones,
    PostalAddressRequest,
};
use brightpearl_client::models::order::operations::OrderApi as _;
use brightpearl_client::models::order::{
    CreateSalesOrderPath, OrderAddress, SalesOrderCustomer, SalesOrderDelivery, SalesOrderRequest,
    SalesOrderRowRequest,
};
use brightpearl_client::{ProductRow, SearchQuery, SearchResource};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use norce_client::Navigation;
use norce_client::models::connect::operations::ConnectApi as _;
use norce_client::models::connect::{ConnectOrderStatus, SendOrderStatusRequest};
use norce_client::models::events::OrderRequest;
use norce_client::models::query::QueryOrdersQuery;
use serde::Deserialize;
use tracing::Instrument as _;

#[cfg(test)]
use self::common::parse_id_set;
pub use self::common::{FLOW, FULFILMENT_FLOW, GOODS_OUT_SEARCH_COLUMNS, ORDER_SEARCH_COLUMNS};
use self::common::{OrderPayload, OrderSource, cursor_text, dead_letter_unreadable, decimal};
use self::dedupe::{Recent, Verdict};
use self::model::{LineKind, NorceOrder};
use super::action::{self, ItemError};
use super::catalog::{ContactCache, SkuMap};
use super::context::{
    FlowContext, FlowError, FlowReport, Ingested, Outcome, PENDING_PAGE, cursor_time, elapsed_ms,
};
use super::contract::{Flow, FlowFuture, IngestFuture, every};
use crate::config::ServeConfig;
pub use crate::config::orders::{CountryCodeForm, OrdersConfig, PushOrderNumber, UnmatchedSku};
use crate::state::{EntityRecord, EntityUpdate, InboxItem, Status};

pub use self::fulfilment::run_fulfilment;

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

    fn entity_flows(&self) -> &'static [&'static str] {
        &[FLOW]
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

    fn entity_flows(&self) -> &'static [&'static str] {
        &[FULFILMENT_FLOW]
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

/// `SE` → `SWE`. The order's country is an alpha-2 code (Norce's, or the `orders.country_codes`
/// mapping); an unknown one is an error naming it.
fn alpha3(alpha2: &str) -> Result<String, String> {
    isocountry::CountryCode::for_alpha2_caseless(alpha2.trim())
        .map(|c| c.alpha3().to_owned())
        .map_err(|_| format!("`{alpha2}` is not an ISO 3166-1 alpha-2 country code (check `orders.country_codes` or the Norce address)"))
}

/// The order's country in the form Brightpearl is given.
fn country_in(form: CountryCodeForm, order: &NorceOrder) -> Result<Option<String>, ItemError> {
    match (form, order.address.country.as_deref()) {
        (_, None) => Ok(None),
        (CountryCodeForm::Alpha2, Some(code)) => Ok(Some(code.to_owned())),
        (CountryCodeForm::Alpha3, Some(code)) => alpha3(code)
            .map(Some)
            .map_err(|e| ItemError::permanent(format!("order {}: {e}", order.order_no))),
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
        let recent = check_page(ctx, &shared, &page).await;
        let recent = recent.as_ref();
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

/// Whether a pending order still needs its sales order (no Brightpearl id recorded yet).
fn needs_sales_order(record: &EntityRecord) -> bool {
    matches!(
        record.step.as_deref(),
        None | Some("contact") | Some("posting")
    ) || record.target_id.is_none()
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
    let since = cursor_time(ctx, FLOW)?;
    if let Some(since) = since {
        // `ge`: orders sharing the cursor's instant are seen again, and upserting them is a no-op.
        filter.push_str(&format!(" and created ge {}", cursor_text(since)));
    }
    let query = QueryOrdersQuery {
        filter: Some(filter),
        expand: Some(norce.query_navigation().expand(&[
            Navigation::OrderItems,
            Navigation::Buyer,
            Navigation::ShipTo,
        ])),
        orderby: Some("created asc".into()),
        ..QueryOrdersQuery::default()
    };
    let mut pages = norce.query_orders(query);
    let mut newest = since;
    let mut finished_before = 0;
    while let Some(page) = pages.next().await {
        for order in page?.value {
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
            if matches!(record.status, Status::Done | Status::Skipped) {
                finished_before += 1;
            }
        }
    }
    // Only after every order is stored: a crash before this line re-reads them, never loses one.
    if let Some(newest) = newest.filter(|n| Some(*n) != since) {
        ctx.store.set_cursor(FLOW, &cursor_text(newest))?;
    }
    Ok(finished_before)
}

/// What the concurrent items of one pass share.
struct Shared<'a> {
    brightpearl: &'a brightpearl_client::Client,
    /// SKU → Brightpearl product id (`None`: no such product) and whether the id came from the
    /// shared map, looked up once per pass.
    skus: Mutex<HashMap<String, (Option<i64>, bool)>>,
    /// The account's durable SKU map, shared with the stock flow.
    sku_map: SkuMap<'a>,
    /// The account's e-mail → contact id cache.
    contacts: ContactCache<'a>,
}

impl<'a> Shared<'a> {
    fn new(ctx: &'a FlowContext, brightpearl: &'a brightpearl_client::Client) -> Self {
        let config = &ctx.config.orders;
        Self {
            brightpearl,
            skus: Mutex::new(HashMap::new()),
            sku_map: SkuMap::new(
                ctx.store.as_ref(),
                brightpearl.account(),
                config.sku_map_max_age_secs,
            ),
            contacts: ContactCache::new(
                ctx.store.as_ref(),
                brightpearl.account(),
                config.contact_cache_max_age_secs,
            ),
        }
    }

    fn forget_sku(&self, sku: &str) {
        self.skus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sku);
    }

    fn cached(&self, sku: &str) -> Option<(Option<i64>, bool)> {
        self.skus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sku)
            .copied()
    }

    fn remember(&self, sku: &str, product: Option<i64>, from_map: bool) {
        self.skus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sku.to_owned(), (product, from_map));
    }
}

/// The `installedIntegrationInstanceId` to stamp and search: configured, else the OAuth one.
fn instance_id(ctx: &FlowContext, brightpearl: &brightpearl_client::Client) -> Option<i64> {
    ctx.config
        .orders
        .installed_integration_instance_id
        .or_else(|| {
            brightpearl
                .session()
                .installation_instance_id?
                .trim()
                .parse()
                .ok()
        })
}

/// A sales-order POST Brightpearl refused (a 4xx: nothing was created). When the contact or
/// some product ids came from the caches, those entries may be stale (a contact merged or
/// deleted, a product gone): they are dropped, with the recorded contact, and the order is
/// retried with fresh searches; otherwise the error stands.
#[allow(clippy::too_many_arguments)]
fn refused(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    id: &str,
    payload: &mut OrderPayload,
    order: &NorceOrder,
    cached_contact: bool,
    mapped: &[String],
    error: ItemError,
) -> Result<ItemError, ItemError> {
    if error.kind() != Some(client_core::ErrorKind::Permanent) {
        return Ok(error);
    }
    if !cached_contact && mapped.is_empty() {
        return Ok(error);
    }
    if cached_contact {
        if let Some(email) = order.customer.email.as_deref() {
            shared.contacts.forget(email)?;
        }
        payload.contact_id = None;
        let text = payload.to_json().map_err(ItemError::permanent)?;
        ctx.store.update(
            FLOW,
            id,
            &EntityUpdate {
                payload: Some(text),
                ..EntityUpdate::default()
            },
        )?;
    }
    let skus: Vec<&str> = mapped.iter().map(String::as_str).collect();
    shared.sku_map.forget(&skus)?;
    for sku in &skus {
        shared.forget_sku(sku);
    }
    tracing::warn!(
        flow = FLOW,
        order_no = order.order_no,
        cached_contact,
        skus = ?skus,
        "Brightpearl refused the sales order built from cached ids; they are dropped and the order is retried with fresh searches"
    );
    let reason = match &error {
        ItemError::Failed { reason, .. } => reason.clone(),
        _ => String::new(),
    };
    Ok(ItemError::transient(format!(
        "{reason} (the cached contact or product ids were dropped; the next attempt searches them again)"
    )))
}

async fn process_order(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    recent: Option<&Recent>,
    record: &EntityRecord,
) -> Result<Outcome, ItemError> {
    let id = record.source_id.as_str();
    let config = &ctx.config.orders;
    let Some(text) = record.payload.as_deref() else {
        return Err(ItemError::permanent(format!(
            "order {id} has no stored Norce order: have Norce send it again (order receiver) or move the `orders` cursor back"
        )));
    };
    let mut payload: OrderPayload = serde_json::from_str(text).map_err(|e| {
        ItemError::permanent(format!("order {id}: the stored Norce order cannot be read ({e}); have Norce send it again or move the `orders` cursor back"))
    })?;
    let order = payload.normalise(config).map_err(|problem| {
        ItemError::permanent(format!("order {id}: {problem}; then `relay replay`"))
    })?;
    let mut outcome = Outcome::default();
    let step = record.step.as_deref();
    let mut erp_id: Option<i64> = record.target_id.as_deref().and_then(|t| t.parse().ok());

    if matches!(step, None | Some("contact") | Some("posting")) || erp_id.is_none() {
        let span = tracing::info_span!(
            "flow_step",
            flow = FLOW,
            step = "sales_order",
            source_id = id
        );
        let instance = instance_id(ctx, shared.brightpearl);
        // Always look before posting: this is what makes a lost POST response safe. The page's
        // bulk read settles most orders; the rest are searched by `externalRef` on their own.
        let verdict = recent.map_or(Verdict::Unknown, |r| {
            r.verdict(
                &order.order_no,
                payload.posted.as_ref(),
                step == Some("contact"),
            )
        });
        let existing = match verdict {
            Verdict::Exists(found) => Some(found),
            Verdict::Absent => None,
            Verdict::Unknown => {
                find_order_by_external_ref(shared.brightpearl, &order.order_no, instance)
                    .instrument(span.clone())
                    .await?
            }
        };
        let order_id = match existing {
            Some(found) => {
                tracing::info!(parent: &span, order_id = found, "Brightpearl order already exists; reused");
                found
            }
            None => {
                let (rows, mapped) = sales_order_rows(ctx, shared, &order)
                    .instrument(span.clone())
                    .await?;
                let mut cached_contact = false;
                let contact_id = match payload.contact_id {
                    Some(contact) => contact,
                    None => {
                        let email = order.customer.email.as_deref().unwrap_or_default();
                        let contact = match shared.contacts.get(email)? {
                            Some(known) => {
                                cached_contact = true;
                                known
                            }
                            None => {
                                let contact = find_or_create_contact(shared.brightpearl, &order)
                                    .instrument(tracing::info_span!(
                                        "flow_step",
                                        flow = FLOW,
                                        step = "contact",
                                        source_id = id
                                    ))
                                    .await?;
                                shared.contacts.put(email, contact)?;
                                contact
                            }
                        };
                        payload.contact_id = Some(contact);
                        let text = payload.to_json().map_err(ItemError::permanent)?;
                        ctx.store.update(
                            FLOW,
                            id,
                            &EntityUpdate {
                                step: Some("contact".into()),
                                payload: Some(text),
                                ..EntityUpdate::default()
                            },
                        )?;
                        contact
                    }
                };
                // Recorded before the POST, and kept from the first one: a later attempt's
                // bulk check must cover what Brightpearl created since.
                if payload.posted.is_none() {
                    payload.posted = Some(recent.map(Recent::marker).unwrap_or_default());
                }
                let text = payload.to_json().map_err(ItemError::permanent)?;
                ctx.store.update(
                    FLOW,
                    id,
                    &EntityUpdate {
                        step: Some("posting".into()),
                        payload: Some(text),
                        ..EntityUpdate::default()
                    },
                )?;
                let request = sales_order_request(config, &order, contact_id, instance, rows)?;
                let path = CreateSalesOrderPath {
                    account: shared.brightpearl.account().to_owned(),
                };
                let created = match shared
                    .brightpearl
                    .create_sales_order(&path, &request)
                    .instrument(span.clone())
                    .await
                {
                    Ok(created) => created.response,
                    Err(error) => {
                        let error = ItemError::from(error);
                        return Err(refused(
                            ctx,
                            shared,
                            id,
                            &mut payload,
                            &order,
                            cached_contact,
                            &mapped,
                            error,
                        )?);
                    }
                };
                tracing::info!(parent: &span, order_id = created, "Brightpearl order created");
                outcome.booked = true;
                created
            }
        };
        ctx.store.update(
            FLOW,
            id,
            &EntityUpdate {
                step: Some("created".into()),
                target_id: Some(order_id.to_string()),
                ..EntityUpdate::default()
            },
        )?;
        erp_id = Some(order_id);
    }

    let erp_id = erp_id.ok_or_else(|| {
        ItemError::transient(format!("order {id}: no Brightpearl order id recorded"))
    })?;
    let request = SendOrderStatusRequest {
        client_order_ref: order.basket_id,
        erp_order_no: Some(erp_id.to_string()),
        order_status: ConnectOrderStatus::from(config.confirmed_status.as_str()),
        account_id: None,
        infos: None,
    };
    ctx.norce()?
        .send_order_status(&request)
        .instrument(tracing::info_span!(
            "flow_step",
            flow = FLOW,
            step = "confirm",
            source_id = id
        ))
        .await?;
    ctx.store.update(
        FLOW,
        id,
        &EntityUpdate {
            status: Some(Status::Done),
            step: Some("written_back".into()),
            clear_error: true,
            ..EntityUpdate::default()
        },
    )?;
    outcome.written_back = true;
    outcome.done = true;
    Ok(outcome)
}

/// An `order-search` row with the columns the duplicate check needs.
#[derive(Debug, Deserialize)]
struct ExternalRefRow {
    #[serde(rename = "orderId")]
    order_id: i64,
    #[serde(rename = "externalRef", default)]
    external_ref: Option<String>,
    #[serde(rename = "installedIntegrationInstanceId", default)]
    instance: Option<i64>,
}

/// The Brightpearl order whose `externalRef` is exactly `order_no` (and, when we stamp one,
/// whose `installedIntegrationInstanceId` is ours: the pair is Brightpearl's unique key).
async fn find_order_by_external_ref(
    brightpearl: &brightpearl_client::Client,
    order_no: &str,
    instance: Option<i64>,
) -> Result<Option<i64>, ItemError> {
    let query = SearchQuery::new()
        .filter("externalRef", order_no)
        .columns(ORDER_SEARCH_COLUMNS);
    let rows: Vec<ExternalRefRow> = brightpearl
        .search_all(SearchResource::Orders, query)
        .await?;
    let mut matching: Vec<i64> = rows
        .into_iter()
        .filter(|r| {
            r.external_ref.as_deref() == Some(order_no)
                && (instance.is_none() || r.instance == instance)
        })
        .map(|r| r.order_id)
        .collect();
    matching.sort_unstable();
    if matching.len() > 1 {
        tracing::warn!(order_no, orders = ?matching, "several Brightpearl orders carry this externalRef; the oldest is used");
    }
    Ok(matching.first().copied())
}

/// Brightpearl product id of a SKU (exact match): the pass's cache, then the account's shared
/// map ([`SkuMap`]), else one product-search (Brightpearl's `SKU` filter takes one value), whose
/// answer goes into both. The flag says the id came from the shared map.
async fn product_id(shared: &Shared<'_>, sku: &str) -> Result<(Option<i64>, bool), ItemError> {
    if let Some(known) = shared.cached(sku) {
        return Ok(known);
    }
    if let Some(id) = shared.sku_map.get(&[sku])?.remove(sku) {
        shared.remember(sku, Some(id), true);
        return Ok((Some(id), true));
    }
    let query = SearchQuery::new()
        .filter("SKU", sku)
        .columns(["productId", "SKU"]);
    let rows: Vec<ProductRow> = shared
        .brightpearl
        .search_all(SearchResource::Products, query)
        .await?;
    let mut rows: Vec<ProductRow> = rows
        .into_iter()
        .filter(|r| r.sku.as_deref() == Some(sku))
        .collect();
    rows.sort_by_key(|r| r.product_id);
    let found = rows.first().and_then(|r| i64::try_from(r.product_id).ok());
    if let Some(row) = rows.first() {
        shared.sku_map.put([(sku.to_owned(), row.product_id)])?;
    }
    shared.remember(sku, found, false);
    Ok((found, false))
}

/// The rows of the sales order: products by SKU, fees (and, by configuration, unknown SKUs) as
/// free-text rows. Row net and tax are totals rounded to 2 decimals.
/// The SKUs whose ids came from the shared map come back with the rows.
async fn sales_order_rows(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    order: &NorceOrder,
) -> Result<(Vec<SalesOrderRowRequest>, Vec<String>), ItemError> {
    let config = &ctx.config.orders;
    if order.lines.is_empty() {
        return Err(ItemError::permanent(format!(
            "order {} has no lines; nothing to create in Brightpearl",
            order.order_no
        )));
    }
    let mut rows = Vec::new();
    let mut unmatched = Vec::new();
    let mut mapped = Vec::new();
    for line in &order.lines {
        let what = format!(
            "order {} line {} ({})",
            order.order_no, line.line_no, line.part_no
        );
        if !line.quantity.is_positive() {
            return Err(ItemError::permanent(format!(
                "{what}: quantity {} is not positive",
                line.quantity
            )));
        }
        let product = match line.kind {
            LineKind::Fee => None,
            LineKind::Product => {
                let (product, from_map) = product_id(shared, &line.part_no).await?;
                if from_map {
                    mapped.push(line.part_no.clone());
                }
                product
            }
        };
        if line.kind == LineKind::Product && product.is_none() {
            match config.unmatched_sku {
                UnmatchedSku::FreeText => tracing::warn!(
                    order_no = order.order_no,
                    sku = line.part_no,
                    "no Brightpearl product with this SKU; added as a free-text row"
                ),
                _ => {
                    unmatched.push(line.part_no.clone());
                    continue;
                }
            }
        }
        if product.is_some() && !line.quantity.is_whole() {
            return Err(ItemError::permanent(format!(
                "{what}: quantity {} must be whole for a stock-tracked product",
                line.quantity
            )));
        }
        let net = line
            .unit_price
            .mul_round2(line.quantity)
            .ok_or_else(|| ItemError::permanent(format!("{what}: amount out of range")))?;
        let tax = net
            .mul_round2(line.vat_rate)
            .ok_or_else(|| ItemError::permanent(format!("{what}: amount out of range")))?;
        let name = match (product, line.kind) {
            (Some(_), _) => None,
            (None, LineKind::Fee) => {
                Some(line.name.clone().unwrap_or_else(|| line.part_no.clone()))
            }
            (None, LineKind::Product) => Some(format!(
                "{} (SKU {})",
                line.name.as_deref().unwrap_or("Unknown product"),
                line.part_no
            )),
        };
        rows.push(SalesOrderRowRequest {
            product_id: product,
            name,
            sku: product.map(|_| line.part_no.clone()),
            quantity: decimal(line.quantity, &what)?,
            tax_code: config.tax_code.clone(),
            net: Some(decimal(net, &what)?),
            tax: Some(decimal(tax.round2(), &what)?),
            nominal_code: config.nominal_code.clone(),
            external_ref: Some(line.line_no.to_string()),
            discount_percentage: None,
        });
    }
    if !unmatched.is_empty() {
        let list = unmatched
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ItemError::permanent(format!(
            "order {}: no Brightpearl product has SKU {list} (Norce part number = Brightpearl SKU); create the product in Brightpearl or correct the SKU and `relay replay`, or set `orders.unmatched_sku = \"free_text\"`",
            order.order_no
        )));
    }
    Ok((rows, mapped))
}

/// At most `max` characters (Brightpearl refuses longer names).
fn clip(text: Option<&str>, max: usize) -> Option<String> {
    text.map(|t| t.chars().take(max).collect())
}

/// The contact whose primary e-mail is exactly the order's (a partial match is never reused),
/// or a new one with the order's address.
async fn find_or_create_contact(
    brightpearl: &brightpearl_client::Client,
    order: &NorceOrder,
) -> Result<i64, ItemError> {
    let email = order.customer.email.as_deref().map(str::trim).filter(|e| !e.is_empty()).ok_or_else(|| {
        ItemError::permanent(format!(
            "order {} has no customer e-mail; Brightpearl customers are found by e-mail: add it to the order in Norce, then `relay replay`",
            order.order_no
        ))
    })?;
    let mut found = brightpearl.find_contacts_by_email(email).await?;
    found.sort_by_key(|c| c.contact_id);
    if let Some(contact) = found.first() {
        if found.len() > 1 {
            tracing::warn!(
                order_no = order.order_no,
                contacts = found.len(),
                "several contacts have this e-mail; the oldest is used"
            );
        }
        return i64::try_from(contact.contact_id).map_err(|_| {
            ItemError::permanent(format!("contact id {} is out of range", contact.contact_id))
        });
    }
    let Some(line1) = order.address.line1.clone() else {
        return Err(ItemError::permanent(format!(
            "order {}: the customer {email} is new to Brightpearl and the order has no street address (Line1) for the contact; add it in Norce, then `relay replay`",
            order.order_no
        )));
    };
    let address = PostalAddressRequest {
        address_line1: line1,
        address_line2: order.address.line2.clone(),
        address_line3: order.address.city.clone(),
        address_line4: order.address.region.clone(),
        postal_code: order.address.zip.clone(),
        // The postal-address POST documents the 3-letter ISO code.
        country_iso_code: country_in(CountryCodeForm::Alpha3, order)?,
        country_id: None,
    };
    let contact = ContactRequest {
        first_name: clip(order.customer.first_name.as_deref(), 32),
        last_name: clip(order.customer.last_name.as_deref(), 32),
        communication: Some(ContactCommunication {
            emails: Some(ContactEmails {
                pri: Some(ContactEmail {
                    email: Some(email.to_owned()),
                }),
                ..ContactEmails::default()
            }),
            telephones: order.customer.phone.clone().map(|phone| ContactTelephones {
                mob: Some(phone),
                ..ContactTelephones::default()
            }),
            ..ContactCommunication::default()
        }),
        ..ContactRequest::default()
    };
    let created = brightpearl
        .create_contact_with_address(contact, &address)
        .await?;
    tracing::info!(
        order_no = order.order_no,
        contact_id = created.contact_id,
        "Brightpearl contact created"
    );
    Ok(created.contact_id)
}

fn order_address(order: &NorceOrder, country_iso_code: Option<String>) -> OrderAddress {
    let name = [
        order.customer.first_name.as_deref(),
        order.customer.last_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    OrderAddress {
        address_full_name: (!name.is_empty()).then_some(name),
        company_name: order.customer.company.clone(),
        address_line1: order.address.line1.clone(),
        address_line2: order.address.line2.clone(),
        address_line3: order.address.city.clone(),
        address_line4: order.address.region.clone(),
        postal_code: order.address.zip.clone(),
        country_iso_code,
        telephone: None,
        mobile_telephone: order.customer.phone.clone(),
        fax: None,
        email: order.customer.email.clone(),
    }
}

fn sales_order_request(
    config: &OrdersConfig,
    order: &NorceOrder,
    contact_id: i64,
    instance: Option<i64>,
    rows: Vec<SalesOrderRowRequest>,
) -> Result<SalesOrderRequest, ItemError> {
    let placed_on = match &order.placed_on {
        Some(text) => serde_json::from_value(serde_json::Value::String(text.clone())).ok(),
        None => None,
    };
    let currency = order.currency.as_ref().map(|code| {
        serde_json::from_value(serde_json::json!({ "code": code })).map_err(|e| {
            ItemError::permanent(format!("order {}: currency `{code}`: {e}", order.order_no))
        })
    });
    let country = country_in(config.sales_order_country_code, order)?;
    Ok(SalesOrderRequest {
        customer: SalesOrderCustomer {
            id: contact_id,
            address: Some(order_address(order, country.clone())),
        },
        billing: None,
        ref_: Some(order.order_no.clone()),
        external_ref: Some(order.order_no.clone()),
        placed_on,
        tax_date: None,
        installed_integration_instance_id: instance,
        warehouse_id: Some(config.warehouse_id),
        status_id: Some(config.status_id),
        channel_id: config.channel_id,
        lead_source_id: None,
        project_id: None,
        staff_owner_id: None,
        team_id: None,
        parent_id: None,
        price_list_id: Some(config.price_list_id),
        price_mode_code: None,
        currency: currency.transpose()?,
        delivery: Some(SalesOrderDelivery {
            date: None,
            shipping_method_id: None,
            address: Some(order_address(order, country)),
        }),
        rows,
    })
}

#[cfg(test)]
mod tests {
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
