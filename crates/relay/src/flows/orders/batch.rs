//! A page of orders with its writes in multi-message batches (`orders.multi_message`).
//!
//! A multi-message carries up to 10 POST/PUT/DELETE messages and counts as ONE request against
//! Brightpearl's 200 a minute (`specs/brightpearl/integration.yaml`, `SendMultiMessage`). The
//! page goes in stages: each order is checked (bulk `externalRef` read, rows, cached contact);
//! the new customers' postal addresses are created in batches, then their contacts (an orphan
//! address after a lost answer is harmless; a lost contact answer leaves the e-mail uncached, so
//! the next attempt searches it again before creating anything); then every order records its
//! `posting` marker and the sales orders go in batches (PARALLEL, onFail CONTINUE). A batch whose
//! answer is lost (timeout, dropped connection, 5xx) leaves each of its orders at `posting`, so
//! each goes through the duplicate check before any re-POST, exactly as a lost single POST.
//! Per message: 2xx with the new id → done; 4xx → that order's failure with Brightpearl's message;
//! 5xx → ambiguous, retried through the check; not processed → retried. A lone write, and every
//! write once the endpoint has failed as unavailable (404, 501, a 5xx that is not the throttle),
//! goes as a single call.

use std::collections::HashMap;

use brightpearl_client::models::contact::operations::ContactApi as _;
use brightpearl_client::models::contact::{
    ContactRequest, CreateContactPath, CreatePostalAddressPath, PostAddressIds,
    PostalAddressRequest,
};
use brightpearl_client::models::integration::{
    MultiMessage, MultiMessageOnFail, MultiMessageProcessingMode, MultiMessageRequest,
    ProcessedMessage, WebhookHttpMethod,
};
use brightpearl_client::models::order::operations::OrderApi as _;
use brightpearl_client::models::order::{
    CreateSalesOrderPath, SalesOrderRequest, SalesOrderRowRequest,
};
use brightpearl_client::{MAX_MULTI_MESSAGES, models::common::ErrorEnvelope};
use client_core::ErrorKind;
use futures::StreamExt as _;
use tracing::Instrument as _;

use super::common::FLOW;
use super::common::OrderPayload;
use super::dedupe::Recent;
use super::model::NorceOrder;
use super::steps::{
    Shared, confirm, customer_email, existing_order, find_contact, instance_id, load,
    needs_sales_order, new_contact, order_span, record_contact, record_created, record_posting,
    refused, sales_order_request, sales_order_rows,
};
use crate::flows::action::{self, ItemError};
use crate::flows::catalog::ContactCache;
use crate::flows::context::{FlowContext, FlowError, Outcome};
use crate::state::EntityRecord;

/// An order of the page on its way to its sales-order POST.
struct Ready {
    record: EntityRecord,
    payload: OrderPayload,
    order: NorceOrder,
    rows: Vec<SalesOrderRowRequest>,
    /// SKUs whose ids came from the shared map.
    mapped: Vec<String>,
    /// The contact id came from the cache.
    cached_contact: bool,
}

/// What the first stage found for an order.
enum Prepared {
    /// Nothing to post (created before, or found by the duplicate check): Norce is told.
    Confirm(String, Box<NorceOrder>, Option<i64>),
    /// The sales order is to be posted.
    Post(Box<Ready>),
}

/// One write of a batch.
enum Write {
    Address(PostalAddressRequest),
    Contact(Box<ContactRequest>),
    SalesOrder(Box<SalesOrderRequest>),
}

impl Write {
    fn what(&self) -> &'static str {
        match self {
            Self::Address(_) => "postal-address POST",
            Self::Contact(_) => "contact POST",
            Self::SalesOrder(_) => "sales-order POST",
        }
    }

    /// The message URI: relative to the account, starting with the service.
    fn uri(&self) -> &'static str {
        match self {
            Self::Address(_) => "/contact-service/postal-address",
            Self::Contact(_) => "/contact-service/contact",
            Self::SalesOrder(_) => "/order-service/sales-order",
        }
    }

    fn body(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Self::Address(r) => serde_json::to_value(r),
            Self::Contact(r) => serde_json::to_value(r),
            Self::SalesOrder(r) => serde_json::to_value(r),
        }
    }

    /// The write as a request of its own.
    async fn single(&self, client: &brightpearl_client::Client) -> Result<i64, ItemError> {
        let account = client.account().to_owned();
        let id = match self {
            Self::Address(r) => {
                let path = CreatePostalAddressPath { account };
                client.create_postal_address(&path, r).await?.response
            }
            Self::Contact(r) => {
                let path = CreateContactPath { account };
                client.create_contact(&path, r).await?.response
            }
            Self::SalesOrder(r) => {
                let path = CreateSalesOrderPath { account };
                client.create_sales_order(&path, r).await?.response
            }
        };
        Ok(id)
    }
}

/// The same failure for another item (the platform error itself stays with the first).
fn copy(error: &ItemError) -> ItemError {
    match error {
        ItemError::Failed { kind, reason, .. } => ItemError::Failed {
            kind: *kind,
            reason: reason.clone(),
            error: None,
        },
        ItemError::Wait(reason) => ItemError::Wait(reason.clone()),
        ItemError::Skip(reason) => ItemError::Skip(reason.clone()),
        ItemError::Stop(error) => ItemError::transient(format!("the pass stopped: {error}")),
    }
}

fn ambiguous(reason: String) -> ItemError {
    ItemError::Failed {
        kind: ErrorKind::AmbiguousWrite,
        reason,
        error: None,
    }
}

/// Whether the multi-message endpoint itself failed as unavailable, and whether nothing of
/// the batch can have been carried out (404, 501: the endpoint is not there).
fn unavailable(error: &brightpearl_client::Error) -> Option<bool> {
    let status = error.status()?;
    match status.as_u16() {
        404 | 501 => Some(true),
        _ if status.is_server_error() && !error.is_throttle() => Some(false),
        _ => None,
    }
}

/// The outcome of one message: the new id, or the failure.
fn message_result(what: &str, message: Option<&ProcessedMessage>) -> Result<i64, ItemError> {
    let Some(message) = message else {
        return Err(ItemError::transient(format!(
            "{what} (multi-message): not processed; sent again on a later attempt"
        )));
    };
    let status = message.status_code;
    let content = message.body.as_ref().map(|b| b.decoded_content());
    let raw = || {
        message
            .body
            .as_ref()
            .and_then(|b| b.content.clone())
            .unwrap_or_default()
    };
    match status {
        200..=299 => {
            let id = match &content {
                Some(Ok(Some(value))) => value.get("response").and_then(serde_json::Value::as_i64),
                _ => None,
            };
            id.ok_or_else(|| {
                ambiguous(format!(
                    "{what} (multi-message): Brightpearl answered {status} without the new id ({}); checked before it is sent again",
                    raw()
                ))
            })
        }
        400..=499 => {
            let listed = match &content {
                Some(Ok(Some(value))) => serde_json::from_value::<ErrorEnvelope>(value.clone())
                    .ok()
                    .map(|e| e.summary()),
                _ => None,
            };
            Err(ItemError::permanent(format!(
                "{what} (multi-message): Brightpearl answered {status}: {}",
                listed.unwrap_or_else(raw)
            )))
        }
        _ => Err(ambiguous(format!(
            "{what} (multi-message): Brightpearl answered {status} ({}); checked before it is sent again",
            raw()
        ))),
    }
}

/// Sends `writes` in batches of up to [`MAX_MULTI_MESSAGES`]; the results in the same order.
async fn write_all(shared: &Shared<'_>, writes: &[Write]) -> Vec<Result<i64, ItemError>> {
    let mut results = Vec::with_capacity(writes.len());
    for chunk in writes.chunks(MAX_MULTI_MESSAGES) {
        if chunk.len() == 1 || shared.single_calls() {
            results.extend(singles(shared, chunk).await);
            continue;
        }
        let mut messages = Vec::with_capacity(chunk.len());
        let mut bodies_failed = None;
        for (i, write) in chunk.iter().enumerate() {
            match write.body() {
                Ok(body) => messages.push(MultiMessage {
                    body: Some(body),
                    http_method: WebhookHttpMethod::Post,
                    label: i.to_string(),
                    uri: write.uri().to_owned(),
                }),
                Err(e) => bodies_failed = Some(format!("{}: cannot encode: {e}", write.what())),
            }
        }
        if let Some(reason) = bodies_failed {
            results.extend(
                chunk
                    .iter()
                    .map(|_| Err(ItemError::permanent(reason.clone()))),
            );
            continue;
        }
        let request = MultiMessageRequest {
            messages,
            on_fail: MultiMessageOnFail::Continue,
            processing_mode: MultiMessageProcessingMode::Parallel,
        };
        match shared.brightpearl.multi_message(&request).await {
            Ok(answer) => {
                let by_label: HashMap<&str, &ProcessedMessage> = answer
                    .processed_messages
                    .iter()
                    .flatten()
                    .map(|m| (m.label.as_str(), m))
                    .collect();
                for (i, write) in chunk.iter().enumerate() {
                    let label = i.to_string();
                    results.push(message_result(
                        write.what(),
                        by_label.get(label.as_str()).copied(),
                    ));
                }
            }
            Err(error) => match unavailable(&error) {
                Some(nothing_done) => {
                    shared.fall_back(&error);
                    if nothing_done {
                        results.extend(singles(shared, chunk).await);
                    } else {
                        let reason = format!(
                            "{} (multi-message): {error}; checked before it is sent again",
                            chunk[0].what()
                        );
                        results.extend(chunk.iter().map(|_| Err(ambiguous(reason.clone()))));
                    }
                }
                None => {
                    let reason = format!("{} (multi-message): {error}", chunk[0].what());
                    let kind = error.kind();
                    let first =
                        ItemError::call(&format!("{} (multi-message)", chunk[0].what()), error);
                    results.push(Err(first));
                    results.extend(chunk[1..].iter().map(|_| {
                        Err(ItemError::Failed {
                            kind,
                            reason: reason.clone(),
                            error: None,
                        })
                    }));
                }
            },
        }
    }
    results
}

/// The writes as single calls, in order.
async fn singles(shared: &Shared<'_>, writes: &[Write]) -> Vec<Result<i64, ItemError>> {
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        results.push(write.single(shared.brightpearl).await);
    }
    results
}

/// Brings one page of pending orders through their steps with batched writes. Returns the
/// settled outcome of each order it finished or failed (orders left for a stopping process
/// stay pending, unreported).
pub(super) async fn run_page(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    recent: Option<&Recent>,
    page: Vec<EntityRecord>,
) -> Result<Vec<Outcome>, FlowError> {
    let concurrency = ctx.config.run.concurrency.max(1);
    let mut failed: Vec<(String, ItemError)> = Vec::new();
    let mut to_confirm: Vec<(String, NorceOrder, Option<i64>, Outcome)> = Vec::new();
    let prepared: Vec<(String, Result<Prepared, ItemError>)> = futures::stream::iter(page)
        .map(|record| async move {
            let id = record.source_id.clone();
            (id, prepare(ctx, shared, recent, record).await)
        })
        .buffered(concurrency)
        .collect()
        .await;
    let mut ready = Vec::new();
    for (id, result) in prepared {
        match result {
            Ok(Prepared::Confirm(id, order, erp_id)) => {
                to_confirm.push((id, *order, erp_id, Outcome::default()));
            }
            Ok(Prepared::Post(order)) => ready.push(*order),
            Err(error) => failed.push((id, error)),
        }
    }
    if !ctx.stopping.is_set() {
        let ready = contacts(ctx, shared, ready, &mut failed).await;
        if !ctx.stopping.is_set() {
            post_sales_orders(ctx, shared, recent, ready, &mut failed, &mut to_confirm).await;
        }
    }
    let confirmed: Vec<(String, Result<Outcome, ItemError>)> = futures::stream::iter(to_confirm)
        .map(|(id, order, erp_id, outcome)| async move {
            let result = confirm(ctx, &id, &order, erp_id, outcome).await;
            (id, result)
        })
        .buffered(concurrency)
        .collect()
        .await;
    let mut outcomes = Vec::new();
    for (id, result) in failed
        .into_iter()
        .map(|(id, e)| (id, Err(e)))
        .chain(confirmed)
    {
        outcomes.push(action::settle(ctx, FLOW, &id, result)?);
    }
    Ok(outcomes)
}

/// The first stage of one order: the duplicate check, the rows, the cached contact.
async fn prepare(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    recent: Option<&Recent>,
    record: EntityRecord,
) -> Result<Prepared, ItemError> {
    let (mut payload, order) = load(ctx, &record)?;
    let id = record.source_id.clone();
    if !needs_sales_order(&record) {
        let erp_id = record.target_id.as_deref().and_then(|t| t.parse().ok());
        return Ok(Prepared::Confirm(id, Box::new(order), erp_id));
    }
    if let Some(found) = existing_order(ctx, shared, recent, &record, &payload, &order).await? {
        record_created(ctx, &id, found)?;
        return Ok(Prepared::Confirm(id, Box::new(order), Some(found)));
    }
    let (rows, mapped) = sales_order_rows(ctx, shared, &order)
        .instrument(order_span(&record))
        .await?;
    let mut cached_contact = false;
    if payload.contact_id.is_none() {
        let email = customer_email(&order)?;
        if let Some(known) = shared.contacts.get(email)? {
            cached_contact = true;
            record_contact(ctx, &id, &mut payload, known)?;
        }
    }
    Ok(Prepared::Post(Box::new(Ready {
        record,
        payload,
        order,
        rows,
        mapped,
        cached_contact,
    })))
}

/// Finds or creates the contact of every order that has none: one contact-search per e-mail,
/// then the new customers' addresses and contacts in batches. Returns the orders with a contact.
async fn contacts(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    ready: Vec<Ready>,
    failed: &mut Vec<(String, ItemError)>,
) -> Vec<Ready> {
    // The customer's cache key (trimmed, lower case) → their orders.
    let mut by_email: Vec<(String, Vec<usize>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, r) in ready.iter().enumerate() {
        if r.payload.contact_id.is_some() {
            continue;
        }
        if let Ok(email) = customer_email(&r.order) {
            let key = ContactCache::key(email);
            let at = *index.entry(key.clone()).or_insert_with(|| {
                by_email.push((key, Vec::new()));
                by_email.len() - 1
            });
            by_email[at].1.push(i);
        }
    }
    let mut errors: HashMap<usize, ItemError> = HashMap::new();
    let mut found: HashMap<usize, i64> = HashMap::new();
    let concurrency = ctx.config.run.concurrency.max(1);
    let ready_ref = &ready;
    let searched: Vec<(usize, Result<Option<i64>, ItemError>)> = futures::stream::iter(
        by_email
            .iter()
            .map(|(_, orders)| orders[0])
            .enumerate()
            .collect::<Vec<_>>(),
    )
    .map(|(group, first)| async move {
        let order = &ready_ref[first].order;
        let result = find_contact(shared.brightpearl, order)
            .instrument(tracing::info_span!(
                "flow_step",
                flow = FLOW,
                step = "contact",
                source_id = order.order_no.as_str()
            ))
            .await;
        (group, result)
    })
    .buffered(concurrency)
    .collect()
    .await;
    let mut new_groups = Vec::new();
    let mut addresses = Vec::new();
    let mut new_contacts = Vec::new();
    for (group, result) in searched {
        match result {
            Ok(Some(contact)) => {
                found.insert(group, contact);
            }
            Ok(None) => {
                let order = &ready[by_email[group].1[0]].order;
                match customer_email(order).and_then(|email| new_contact(order, email)) {
                    Ok((address, contact)) => {
                        new_groups.push(group);
                        addresses.push(Write::Address(address));
                        new_contacts.push(contact);
                    }
                    Err(error) => {
                        errors.insert(group, error);
                    }
                }
            }
            Err(error) => {
                errors.insert(group, error);
            }
        }
    }
    if !new_groups.is_empty() {
        // Addresses first: a contact links its address by the id the address POST returns.
        let address_ids = write_all(shared, &addresses).await;
        let mut contact_groups = Vec::new();
        let mut contact_writes = Vec::new();
        for ((group, mut contact), address) in
            new_groups.into_iter().zip(new_contacts).zip(address_ids)
        {
            match address {
                Ok(address_id) => {
                    let id = Some(address_id);
                    contact.post_address_ids.get_or_insert(PostAddressIds {
                        def: id,
                        bil: id,
                        del: id,
                    });
                    contact_groups.push(group);
                    contact_writes.push(Write::Contact(Box::new(contact)));
                }
                Err(error) => {
                    errors.insert(group, error);
                }
            }
        }
        let created = write_all(shared, &contact_writes).await;
        for (group, result) in contact_groups.into_iter().zip(created) {
            match result {
                Ok(contact) => {
                    tracing::info!(
                        flow = FLOW,
                        order_no = ready[by_email[group].1[0]].order.order_no,
                        contact_id = contact,
                        "Brightpearl contact created"
                    );
                    found.insert(group, contact);
                }
                // A lost answer leaves the e-mail uncached: the next attempt searches it
                // again (the natural key) before creating anything.
                Err(error) => {
                    errors.insert(group, error);
                }
            }
        }
    }
    let mut contact_of: HashMap<usize, Result<i64, ItemError>> = HashMap::new();
    for (group, (email, orders)) in by_email.iter().enumerate() {
        let result = match (found.get(&group), errors.remove(&group)) {
            (Some(contact), _) => match shared.contacts.put(email, *contact) {
                Ok(()) => Ok(*contact),
                Err(e) => Err(ItemError::from(e)),
            },
            (None, Some(error)) => Err(error),
            (None, None) => Err(ItemError::transient("the contact was not settled")),
        };
        // The first order of the customer gets the failure itself (a store error stops the
        // pass), the others a copy.
        for order in &orders[1..] {
            let copied = match &result {
                Ok(contact) => Ok(*contact),
                Err(error) => Err(copy(error)),
            };
            contact_of.insert(*order, copied);
        }
        contact_of.insert(orders[0], result);
    }
    let mut with_contact = Vec::new();
    for (i, mut r) in ready.into_iter().enumerate() {
        let result = match contact_of.remove(&i) {
            None if r.payload.contact_id.is_some() => Ok(()),
            None => customer_email(&r.order).map(drop),
            Some(Ok(contact)) => {
                let id = r.record.source_id.clone();
                record_contact(ctx, &id, &mut r.payload, contact)
            }
            Some(Err(error)) => Err(error),
        };
        match result {
            Ok(()) => with_contact.push(r),
            Err(error) => failed.push((r.record.source_id.clone(), error)),
        }
    }
    with_contact
}

/// Records every order's `posting` marker, then posts the sales orders in batches.
async fn post_sales_orders(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    recent: Option<&Recent>,
    ready: Vec<Ready>,
    failed: &mut Vec<(String, ItemError)>,
    to_confirm: &mut Vec<(String, NorceOrder, Option<i64>, Outcome)>,
) {
    let instance = instance_id(ctx, shared.brightpearl);
    let mut posting = Vec::new();
    let mut writes = Vec::new();
    for mut r in ready {
        let id = r.record.source_id.clone();
        let Some(contact) = r.payload.contact_id else {
            failed.push((id, ItemError::transient("no contact recorded")));
            continue;
        };
        let rows = std::mem::take(&mut r.rows);
        let request = sales_order_request(&ctx.config.orders, &r.order, contact, instance, rows);
        // Before the batch is sent: a lost answer must make each order look before posting.
        let result = request.and_then(|request| {
            record_posting(ctx, &id, &mut r.payload, recent)?;
            Ok(request)
        });
        match result {
            Ok(request) => {
                posting.push(r);
                writes.push(Write::SalesOrder(Box::new(request)));
            }
            Err(error) => failed.push((id, error)),
        }
    }
    let results = write_all(shared, &writes).await;
    for (mut r, result) in posting.into_iter().zip(results) {
        let id = r.record.source_id.clone();
        let result = match result {
            Ok(order_id) => {
                tracing::info!(
                    flow = FLOW,
                    order_no = r.order.order_no,
                    order_id,
                    "Brightpearl order created"
                );
                record_created(ctx, &id, order_id).map(|()| order_id)
            }
            Err(error) => match refused(
                ctx,
                shared,
                &id,
                &mut r.payload,
                &r.order,
                r.cached_contact,
                &r.mapped,
                error,
            ) {
                Ok(error) | Err(error) => Err(error),
            },
        };
        match result {
            Ok(order_id) => to_confirm.push((
                id,
                r.order,
                Some(order_id),
                Outcome {
                    booked: true,
                    ..Outcome::default()
                },
            )),
            Err(error) => failed.push((id, error)),
        }
    }
}
