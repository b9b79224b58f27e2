//! Entities: the search, the detail page with its history, and the Retry, Mark resolved and
//! (on an order) Refund actions; the saved labels to download.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{
    self, Flash, Form, Operator, action_failed, csrf_field, entity_flows, entity_path, shorten,
    state_failed, time,
};
use crate::operator;
use crate::state::{EntityQuery, EntityRecord, EventKind, Status};

/// Records per page.
const PAGE_SIZE: usize = 50;
/// Entries of an entity's history shown.
const HISTORY: usize = 200;

/// What the source and target ids of each flow are (the platforms' names for them).
pub(super) fn id_labels(flow: &str) -> (&'static str, &'static str) {
    match flow {
        "shipping" => ("Norce order", "nShift shipment"),
        "return" => ("Norce order (basket)", "nShift return shipment"),
        "orders" => ("Norce order", "Brightpearl order"),
        "refund" => ("Refund (Norce order-R<n>)", "Brightpearl sales credit"),
        "fulfilment" => ("Brightpearl goods-out note", "Norce delivery note"),
        "stock" | "prices" => ("Brightpearl product", "Norce import job"),
        _ => ("Source id", "Target id"),
    }
}

/// The query of `/console/entities`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Filters {
    flow: Option<String>,
    status: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<u64>,
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A date (`2026-12-01`, the start of that day UTC; with `end`, the start of the next) or an
/// RFC 3339 time.
fn parse_date(field: &str, text: &str, end: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let day = if end {
            day.map(|t| t + TimeDelta::days(1))
        } else {
            day
        };
        return day.ok_or_else(|| format!("`{field}`: `{text}` is not a day"));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!(
                "`{field}` must be a date like 2026-12-01 (or an RFC 3339 time); `{text}` is not"
            )
        })
}

impl Filters {
    /// The store query, or what is wrong with a field.
    fn query(&self, flows: &[&str]) -> Result<EntityQuery, String> {
        let flow = non_empty(&self.flow)
            .map(|flow| {
                if flows.contains(&flow) {
                    Ok(flow.to_owned())
                } else {
                    Err(format!(
                        "`flow`: no flow `{flow}`; choose from {}",
                        flows.join(", ")
                    ))
                }
            })
            .transpose()?;
        let status = non_empty(&self.status)
            .map(|s| {
                Status::from_name(s).ok_or_else(|| {
                    format!(
                        "`status`: no status `{s}`; choose from {}",
                        Status::ALL.map(Status::as_str).join(", ")
                    )
                })
            })
            .transpose()?;
        let reference = non_empty(&self.reference).map(|r| shorten(r, 200));
        let updated_from = non_empty(&self.from)
            .map(|t| parse_date("from", t, false))
            .transpose()?;
        let updated_to = non_empty(&self.to)
            .map(|t| parse_date("to", t, true))
            .transpose()?;
        Ok(EntityQuery {
            flow,
            status,
            reference,
            updated_from,
            updated_to,
            before: self.before,
            limit: PAGE_SIZE,
        })
    }

    /// This search's link from another record on (the next page).
    fn link_before(&self, before: u64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("flow", &self.flow),
            ("status", &self.status),
            ("ref", &self.reference),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(value) = non_empty(value) {
                query.append_pair(name, value);
            }
        }
        query.append_pair("before", &before.to_string());
        format!("/console/entities?{}", query.finish())
    }
}

/// The status as a styled word (`span.status-failed`).
pub(super) fn status_badge(status: Status) -> Markup {
    html! { span class={ "status-" (status.as_str()) } { (status.as_str()) } }
}

/// `GET /console/entities`.
pub(super) async fn list(operator: Operator, Query(filters): Query<Filters>) -> Response {
    let flows = entity_flows(&operator);
    let query = filters.query(&flows);
    let records = match &query {
        Ok(query) => match operator.shared().store().search(query) {
            Ok(records) => Some(records),
            Err(e) => return state_failed(&operator, &e),
        },
        Err(_) => None,
    };
    let selected = |value: &Option<String>, option: &str| non_empty(value) == Some(option);
    let body = html! {
        form #entity-filter.filters method="get" action="/console/entities" {
            div {
                label for="ref" { "Reference" }
                input #ref type="search" name="ref" value=[non_empty(&filters.reference)] placeholder="order number, SKU, any platform's id" size="28";
            }
            div {
                label for="flow" { "Flow" }
                select #flow name="flow" {
                    option value="" { "any" }
                    @for flow in &flows {
                        option value=(flow) selected[selected(&filters.flow, flow)] { (flow) }
                    }
                }
            }
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "any" }
                    @for status in Status::ALL {
                        option value=(status.as_str()) selected[selected(&filters.status, status.as_str())] { (status.as_str()) }
                    }
                }
            }
            div {
                label for="from" { "Changed from" }
                input #from type="date" name="from" value=[non_empty(&filters.from)];
            }
            div {
                label for="to" { "to" }
                input #to type="date" name="to" value=[non_empty(&filters.to)];
            }
            button #filter-button type="submit" { "Search" }
        }
        @if let Err(problem) = &query {
            p #flash role="alert" { (problem) }
        }
        @if let Some(records) = &records {
            @if records.is_empty() {
                p.empty { "Nothing matches." }
            } @else {
                table #entities {
                    thead { tr {
                        th { "Source id" } th { "Flow" } th { "Target id" } th { "Status" } th { "Step" }
                        th.num { "Attempts" } th { "Last error" } th { "Changed" }
                    } }
                    tbody {
                        @for record in records {
                            @let (source_label, target_label) = id_labels(&record.flow);
                            tr data-flow=(record.flow) data-source-id=(record.source_id) {
                                td { a.entity-link href=(entity_path(&record.flow, &record.source_id)) title=(source_label) { (record.source_id) } }
                                td { (record.flow) }
                                td title=(target_label) { (record.target_id.as_deref().unwrap_or("—")) }
                                td { (status_badge(record.status)) }
                                td { (record.step.as_deref().unwrap_or("")) }
                                td.num { (record.attempts) }
                                td { (shorten(record.last_error.as_deref().unwrap_or(""), 90)) }
                                td { (time(&record.updated_at)) }
                            }
                        }
                    }
                }
                @if records.len() == PAGE_SIZE {
                    @if let Some(last) = records.last() {
                        p.pager { a #next-page href=(filters.link_before(last.position)) { "Older →" } }
                    }
                }
            }
        }
    };
    layout::page(&operator, "Entities", "/console/entities", None, body)
}

/// The record of `flow`/`id`, or the page to answer with: 404 naming them, or the state's
/// failure.
fn find(operator: &Operator, flow: &str, id: &str) -> Result<EntityRecord, Box<Response>> {
    match operator.shared().store().get(flow, id) {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(Box::new(layout::error_page(
            operator,
            StatusCode::NOT_FOUND,
            "No such item",
            &format!("There is no item `{id}` in flow `{flow}`. Search for it under Entities."),
        ))),
        Err(e) => Err(Box::new(state_failed(operator, &e))),
    }
}

/// `GET /console/entities/{flow}/{id}`.
pub(super) async fn detail(
    operator: Operator,
    UrlPath((flow, id)): UrlPath<(String, String)>,
    Query(flash): Query<Flash>,
) -> Response {
    let store = operator.shared().store();
    let record = match find(&operator, &flow, &id) {
        Ok(record) => record,
        Err(answer) => return *answer,
    };
    let (events, letters) = match (
        store.events(&flow, &id, HISTORY),
        store.dead_letters_of(&flow, &id),
    ) {
        (Ok(events), Ok(letters)) => (events, letters),
        (Err(e), _) | (_, Err(e)) => return state_failed(&operator, &e),
    };
    let labels = saved_labels(&operator, &record);
    let (source_label, target_label) = id_labels(&flow);
    let audit: Vec<_> = events
        .iter()
        .filter(|e| e.actor.is_some())
        .rev()
        .cloned()
        .collect();
    let can_retry = !letters.is_empty() || record.status == Status::Failed;
    let can_resolve = !matches!(record.status, Status::Done | Status::Resolved);
    let can_book_return = can_book_return(&record);
    // An imported order can be refunded (a Brightpearl sales credit); its refunds are listed.
    let refundable = flow == crate::flows::orders::FLOW && record.target_id.is_some();
    let refunds = if flow == crate::flows::orders::FLOW {
        match crate::flows::orders::refunds_of(store, &id) {
            Ok(refunds) => refunds,
            Err(e) => return state_failed(&operator, &e),
        }
    } else {
        Vec::new()
    };
    let path = entity_path(&flow, &id);
    let body = html! {
        div.cards {
            div.card {
                table #ids {
                    tr { th { (source_label) } td { code { (record.source_id) } } }
                    tr { th { (target_label) } td { code { (record.target_id.as_deref().unwrap_or("— not yet")) } } }
                    tr { th { "Flow" } td { (record.flow) } }
                }
            }
            div.card {
                table {
                    tr { th { "Status" } td #entity-status class={ "status-" (record.status.as_str()) } { (record.status.as_str()) } }
                    tr { th { "Last step" } td #entity-step { (record.step.as_deref().unwrap_or("—")) } }
                    tr { th { "Failed attempts" } td { (record.attempts) } }
                    tr { th { "Changed" } td { (time(&record.updated_at)) } }
                    @if !letters.is_empty() {
                        tr { th { "Dead letters" } td { (letters.len()) " open" } }
                    }
                }
            }
        }
        @if let Some(error) = &record.last_error {
            h2 { "Last error" }
            pre #last-error { (error) }
        }
        div.actions {
            @if can_retry {
                form #retry-form method="post" action={ (path) "/retry" } {
                    (csrf_field(&operator))
                    p { "Send it back to its flow and start a pass now (as " code { "relay replay" } ")." }
                    button #retry type="submit" { "Retry" }
                }
            }
            @if can_book_return {
                form #return-form method="post" action={ (path) "/return" } {
                    (csrf_field(&operator))
                    p { "Book a return label in nShift (as " code { "relay return" } "): the shipping pass books it once and saves it beside the labels." }
                    label for="return-service" { "Return service (empty: the delivery method's " code { "return_service" } ")" }
                    input #return-service name="service" type="text" maxlength="40";
                    button #book-return type="submit" { "Book return label" }
                }
            }
            @if can_resolve {
                form #resolve-form method="post" action={ (path) "/resolve" } {
                    (csrf_field(&operator))
                    label for="reason" { "Mark resolved: what was done instead (kept in the history)" }
                    textarea #reason name="reason" rows="2" required maxlength="500" {}
                    button #resolve.secondary type="submit" { "Mark resolved" }
                }
            }
        }
        @if refundable {
            form #refund-form method="post" action={ (path) "/refund" } {
                (csrf_field(&operator))
                p { "Refund: a Brightpearl sales credit for the rows below, created by the next orders pass (as " code { "relay refund" } "). Leave the rows empty to refund all that earlier refunds left, freight included." }
                label for="refund-rows" { "Rows, one SKU=QTY a line (optional)" }
                textarea #refund-rows name="rows" rows="2" maxlength="2000" placeholder="SKU-1=1" {}
                label for="refund-reason" { "Reason (optional, kept in the audit log)" }
                input #refund-reason type="text" name="reason" maxlength="500";
                label { input #refund-restock type="checkbox" name="restock" value="1" checked[operator.shared().ctx.config.orders.refund_restock]; " Put the stock back (goods-in note on the credit)" }
                button #refund type="submit" { "Refund" }
            }
        }
        @if !refunds.is_empty() {
            h2 { "Refunds" }
            ul #refunds {
                @for refund in &refunds {
                    li { a href=(entity_path(&refund.flow, &refund.source_id)) { (refund.source_id) } " " (status_badge(refund.status)) " " (refund.step.as_deref().unwrap_or("")) }
                }
            }
        }
        h2 { "History" }
        @if events.is_empty() {
            p.empty { "No history recorded (the item predates the history, or it was pruned)." }
        } @else {
            table #timeline {
                thead { tr { th { "When" } th { "What" } th { "Step" } th { "Status" } th { "Details" } th { "Who" } } }
                tbody {
                    @for event in &events {
                        tr.event class=[(event.kind == EventKind::AttemptFailed || event.kind == EventKind::DeadLettered).then_some("bad")] {
                            td { (time(&event.at)) }
                            td { (event.kind.as_str()) }
                            td { (event.step.as_deref().unwrap_or("")) }
                            td { @if let Some(status) = event.status { (status_badge(status)) } }
                            td { (event.detail.as_deref().unwrap_or("")) }
                            td { (event.actor.as_deref().unwrap_or("flow")) }
                        }
                    }
                }
            }
        }
        @if !labels.is_empty() {
            h2 { "Labels" }
            ul #labels {
                @for (n, file) in labels.iter().enumerate() {
                    li { a.label-download href={ (path) "/labels/" (n + 1) } download { (file) } }
                }
            }
        }
        h2 { "Last payload" }
        pre #payload { (redacted_payload(record.payload.as_deref())) }
        h2 { "Actions on this item" }
        (layout::audit_table(&audit))
    };
    let title = format!("{} {}", record.flow, record.source_id);
    layout::page(
        &operator,
        &title,
        "/console/entities",
        flash.text().as_deref(),
        body,
    )
}

/// The payload as indented JSON with every secret-looking field replaced; text that is not JSON
/// is not shown (it could hold anything).
pub(super) fn redacted_payload(payload: Option<&str>) -> String {
    let Some(payload) = payload else {
        return "(none kept: cleared after the retention period, or never recorded)".to_owned();
    };
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(value) => serde_json::to_string_pretty(&models_runtime::redact::redact_json(value))
            .unwrap_or_default(),
        Err(_) => format!("(not JSON: {} bytes, not shown)", payload.len()),
    }
}

/// A shipping item booked in nShift without a return shipment yet: the console offers
/// **Book return label**.
fn can_book_return(record: &EntityRecord) -> bool {
    if record.flow != crate::flows::shipping::FLOW {
        return false;
    }
    let Some(value) = record
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
    else {
        return false;
    };
    let booked = value
        .pointer("/shipment/shipment_ids")
        .and_then(|ids| ids.as_array())
        .is_some_and(|ids| !ids.is_empty());
    booked && value.get("return_shipment").is_none_or(|r| r.is_null())
}

/// The label files the payload names that are inside the labels folder and exist, by file
/// name (a payload naming a file elsewhere is never served).
fn saved_labels(operator: &Operator, record: &EntityRecord) -> Vec<String> {
    label_paths(operator, record)
        .into_iter()
        .filter_map(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

fn label_paths(operator: &Operator, record: &EntityRecord) -> Vec<PathBuf> {
    let config = &operator.shared().ctx.config;
    let dir = config.shipping.labels_dir_in(&config.state.dir);
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let Some(value) = record
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
    else {
        return Vec::new();
    };
    // The outbound labels, then the return labels (on the shipping item, or on a return item).
    let files = ["/labels", "/return_shipment/labels", "/booked/labels"]
        .into_iter()
        .filter_map(|at| value.pointer(at).and_then(|l| l.as_array()))
        .flatten();
    files
        .filter_map(|f| f.as_str())
        .filter_map(|f| Path::new(f).canonicalize().ok())
        .filter(|path| path.starts_with(&dir) && path.is_file())
        .collect()
}

/// `GET /console/entities/{flow}/{id}/labels/{n}`: the n-th saved label, as an attachment.
pub(super) async fn label(
    operator: Operator,
    UrlPath((flow, id, n)): UrlPath<(String, String, usize)>,
) -> Response {
    let record = match find(&operator, &flow, &id) {
        Ok(record) => record,
        Err(answer) => return *answer,
    };
    let Some(path) = n
        .checked_sub(1)
        .and_then(|i| label_paths(&operator, &record).into_iter().nth(i))
    else {
        return layout::error_page(
            &operator,
            StatusCode::NOT_FOUND,
            "No such label",
            "The label file is no longer in the labels folder; reprint it in nShift.",
        );
    };
    let read = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) => {
            return layout::error_page(
                &operator,
                StatusCode::NOT_FOUND,
                "The label cannot be read",
                &format!("{}: {e}", path.display()),
            );
        }
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\\'], "_"))
        .unwrap_or_else(|| "label".to_owned());
    let content_type = match path.extension().and_then(|e| e.to_str()) {
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// `POST /console/entities/{flow}/{id}/retry`: requeues its dead letters (as `relay replay`)
/// and starts the flow's pass.
pub(super) async fn retry(
    operator: Operator,
    UrlPath((flow, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    if let Err(refused) = operator.check_csrf(&Form::parse(&body)) {
        return *refused;
    }
    let store = operator.shared().store();
    let outcome = match operator::retry_entity(store, &flow, &id, &operator.actor()) {
        Ok(requeued) if !requeued.is_empty() => "requeued",
        Ok(_) => match find(&operator, &flow, &id) {
            Ok(record) if record.status == Status::Pending => "already_pending",
            Ok(_) => "nothing_to_retry",
            Err(answer) => return *answer,
        },
        Err(e) => return action_failed(&operator, &e),
    };
    tracing::info!(actor = %operator.actor(), flow, source_id = id, outcome, "console: retry");
    if outcome != "nothing_to_retry" {
        operator.shared().trigger_entity_flow(&flow);
    }
    Redirect::to(&format!("{}?flash={outcome}", entity_path(&flow, &id))).into_response()
}

/// `POST /console/entities/{flow}/{id}/refund` (an `orders` entity): queues a refund as
/// `relay refund` does (rows `SKU=QTY` a line, none for all that is left; `restock`; `reason`)
/// and starts the orders pass.
pub(super) async fn refund(
    operator: Operator,
    UrlPath((flow, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(refused) = operator.check_csrf(&form) {
        return *refused;
    }
    if flow != crate::flows::orders::FLOW {
        return action_failed(
            &operator,
            &operator::ActionError::Invalid(format!(
                "only an order (flow `orders`) can be refunded, not an item of `{flow}`"
            )),
        );
    }
    let mut rows = Vec::new();
    for line in form.get("rows").unwrap_or_default().lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match crate::flows::orders::parse_refund_row(line) {
            Ok(row) => rows.push(row),
            Err(e) => return action_failed(&operator, &operator::ActionError::Invalid(e)),
        }
    }
    let request = crate::flows::orders::RefundRequest {
        rows,
        reason: form.get("reason").map(str::to_owned),
        // A checkbox is sent only when ticked: unticked means no restock.
        restock: Some(form.get("restock").is_some()),
    };
    let shared = operator.shared();
    match operator::refund(
        shared.store(),
        &shared.ctx.config,
        &id,
        &request,
        &operator.actor(),
    ) {
        Ok(queued) => {
            tracing::info!(actor = %operator.actor(), source_id = id, refund = queued.record.source_id, "console: refund queued");
            shared.trigger_entity_flow(crate::flows::orders::REFUND_FLOW);
            Redirect::to(&format!("{}?flash=refund_queued", entity_path(&flow, &id)))
                .into_response()
        }
        Err(e) => action_failed(&operator, &e),
    }
}

/// `POST /console/entities/{flow}/{id}/return`: queues a return label for a booked shipping
/// item (as `relay return`, with the form's `service` if given) and starts the shipping pass.
pub(super) async fn book_return(
    operator: Operator,
    UrlPath((flow, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(refused) = operator.check_csrf(&form) {
        return *refused;
    }
    if flow != crate::flows::shipping::FLOW {
        let what = format!("return labels are booked for shipping items, not `{flow}` ones");
        return action_failed(&operator, &operator::ActionError::Invalid(what));
    }
    let service = form.get("service").map(str::trim).filter(|s| !s.is_empty());
    let config = &operator.shared().ctx.config;
    let store = operator.shared().store();
    let outcome = match operator::request_return(store, config, &id, service, &operator.actor()) {
        Ok(requested) if requested.already_queued => "return_already_queued",
        Ok(_) => "return_queued",
        Err(e) => return action_failed(&operator, &e),
    };
    tracing::info!(actor = %operator.actor(), source_id = id, outcome, "console: book return label");
    operator
        .shared()
        .trigger_entity_flow(crate::flows::shipping::RETURN_FLOW);
    Redirect::to(&format!("{}?flash={outcome}", entity_path(&flow, &id))).into_response()
}

/// `POST /console/entities/{flow}/{id}/resolve`: closes it with the reason given.
pub(super) async fn resolve(
    operator: Operator,
    UrlPath((flow, id)): UrlPath<(String, String)>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(refused) = operator.check_csrf(&form) {
        return *refused;
    }
    let reason = form.get("reason").unwrap_or_default();
    match operator::resolve(
        operator.shared().store(),
        &flow,
        &id,
        &operator.actor(),
        reason,
    ) {
        Ok(_) => {
            tracing::info!(actor = %operator.actor(), flow, source_id = id, "console: marked resolved");
            Redirect::to(&format!("{}?flash=resolved", entity_path(&flow, &id))).into_response()
        }
        Err(e) => action_failed(&operator, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_name_the_field_that_is_wrong() {
        let flows = ["shipping", "orders"];
        let bad = |f: Filters| f.query(&flows).unwrap_err();
        assert!(
            bad(Filters {
                flow: Some("nope".into()),
                ..Filters::default()
            })
            .contains("`flow`")
        );
        assert!(
            bad(Filters {
                status: Some("weird".into()),
                ..Filters::default()
            })
            .contains("`status`")
        );
        assert!(
            bad(Filters {
                from: Some("yesterday".into()),
                ..Filters::default()
            })
            .contains("`from`")
        );
        let ok = Filters {
            flow: Some("shipping".into()),
            status: Some("failed".into()),
            reference: Some(" NC-1 ".into()),
            from: Some("2026-12-01".into()),
            to: Some("2026-12-01".into()),
            before: Some(7),
        }
        .query(&flows)
        .unwrap();
        assert_eq!(ok.reference.as_deref(), Some("NC-1"));
        assert_eq!(ok.status, Some(Status::Failed));
        assert_eq!(
            ok.updated_to.unwrap() - ok.updated_from.unwrap(),
            TimeDelta::days(1)
        );
        assert_eq!(ok.before, Some(7));
    }

    #[test]
    fn payloads_are_shown_with_secrets_redacted() {
        let shown = redacted_payload(Some(
            r#"{"order":"NC-1","apiKey":"s3cr3t","nested":{"password":"pw"}}"#,
        ));
        assert!(shown.contains("NC-1"));
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("\"pw\""),
            "{shown}"
        );
        assert!(redacted_payload(Some("token=abc")).starts_with("(not JSON"));
    }

    #[test]
    fn flash_messages_come_from_codes_only() {
        let flash = Flash {
            flash: Some("<script>".into()),
            n: None,
        };
        assert_eq!(flash.text(), None);
        let flash = Flash {
            flash: Some("bulk_requeued".into()),
            n: Some(3),
        };
        assert!(flash.text().unwrap().starts_with("3 dead letter"));
    }
}
