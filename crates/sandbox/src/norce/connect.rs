//! Connect 4.0: `Order/SendOrderStatus`, `Order/CreateDeliveryNote`, `Order/CancelOrder`,
//! the asynchronous `Product/ImportOnhands` and `Product/ImportSkuPriceLists`, `Job/Get`, `Job/GetLog`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Duration;
use models_runtime::ParamError;
use norce_models::connect::{
    CancelOrderHeaders, CancelOrderRequest, ConnectOrderStatus, CreateDeliveryNoteHeaders,
    DeliveryNote, GetJobHeaders, GetJobLogHeaders, GetJobLogQuery, GetJobQuery,
    ImportOnhandsHeaders, ImportSkuPriceListsHeaders, JobResponse, SendOrderStatusHeaders,
    SendOrderStatusRequest, SkuOnhand, SkuPriceList, SkuPriceListField, SkuPriceListMandatoryField,
    ValidationSummary,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::call::{app_lookup, settle, start_call};
use super::model::{JobRec, LogRec, OrderIndex, OrderRec, Work};
use super::push;
use super::reply::{bad_request, error};
use super::services::parse_query;
use crate::state::SharedState;

const CONNECT_HEADER: &str = "X-StormConnect-Header";

/// `SkuOnhandFieldsThatAreSet` integer codes (S-HDR-ONHAND).
const ONHAND_CODES: &[(i64, &str)] = &[
    (3, "OnhandValue"),
    (4, "IncomingValue"),
    (5, "NextDeliveryDate"),
    (6, "LeadTimeDayCount"),
    (8, "MinimumValue"),
    (9, "MaximumValue"),
    (10, "IsActive"),
    (11, "Infos"),
];

/// `SkuPriceListFieldsThatAreSet` integer codes (S-HDR-SKUPRICE).
const PRICE_CODES: &[(i64, &str)] = &[
    (3, "PriceSale"),
    (4, "CostPurchase"),
    (5, "CostUnit"),
    (6, "PriceRecommended"),
    (7, "PricePrevious"),
    (8, "PriceCatalog"),
    (9, "IsPriceDiscountable"),
    (10, "IsActive"),
    (11, "IsPriceDiscountableCreateOnly"),
    (12, "PriceRule"),
    (13, "FullfileResetInheritance"),
];

/// The `ApplicationId` header of a Connect call: optional (no Connect sample sends it), required
/// only when `connect_requires_application_id` is set. A malformed value is still refused.
fn check_application_id(state: &SharedState, application_id: Option<i32>) -> Result<(), Response> {
    if application_id.is_none() && state.norce.config().connect_requires_application_id {
        return Err(bad_request(
            ParamError {
                name: "ApplicationId",
                message: "is required but missing".into(),
            }
            .to_string(),
        ));
    }
    Ok(())
}

/// The preamble every Connect handler shares: [`start_call`], then the `ApplicationId` check.
fn connect_headers<H>(
    state: &SharedState,
    headers: &HeaderMap,
    parse: impl FnOnce(&HeaderMap) -> Result<H, ParamError>,
    application_id: impl FnOnce(&H) -> Option<i32>,
) -> Result<H, Response> {
    let parsed = start_call(state, headers, parse, |e| bad_request(e.to_string()))?;
    check_application_id(state, application_id(&parsed))?;
    Ok(parsed)
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("The request body is invalid: {e}")))
}

fn parse_value<T: DeserializeOwned>(value: Value) -> Result<T, Response> {
    serde_json::from_value(value)
        .map_err(|e| bad_request(format!("The request body is invalid: {e}")))
}

/// SendOrderStatus and CancelOrder both name their order by `ClientOrderRef` or `ErpOrderNo`.
fn require_order_ref(
    client_order_ref: Option<i32>,
    erp_order_no: Option<&str>,
) -> Result<(), Response> {
    if client_order_ref.is_none() && erp_order_no.is_none_or(str::is_empty) {
        return Err(bad_request(
            "Either `ClientOrderRef` or `ErpOrderNo` must be provided.",
        ));
    }
    Ok(())
}

/// Finds an order by `ClientOrderRef` (basket id) or, failing that, `ErpOrderNo`; 400 when none
/// matches (shared by SendOrderStatus and CancelOrder).
fn find_order_mut<'a>(
    orders: &'a mut std::collections::BTreeMap<i64, OrderRec>,
    index: &OrderIndex,
    client_order_ref: Option<i32>,
    erp_order_no: Option<&str>,
) -> Result<&'a mut OrderRec, Response> {
    let found = match (client_order_ref, erp_order_no) {
        (Some(r), _) => index.by_quotation(orders, r),
        (None, Some(no)) => index.by_number(orders, no),
        (None, None) => None,
    };
    let Some(id) = found else {
        return Err(bad_request(format!(
            "Order {} was not found.",
            describe(client_order_ref, erp_order_no)
        )));
    };
    orders
        .get_mut(&id)
        .ok_or_else(|| bad_request("Order was not found."))
}

fn describe(client_order_ref: Option<i32>, erp_order_no: Option<&str>) -> String {
    match (client_order_ref, erp_order_no) {
        (Some(r), _) => format!("ClientOrderRef {r}"),
        (None, Some(n)) => format!("ErpOrderNo '{n}'"),
        (None, None) => "(none)".into(),
    }
}

/// The event an order status raises, if any.
fn status_event(status: &str) -> Option<&'static str> {
    Some(match status {
        "Confirmed" => "OrderConfirmedEvent",
        "Cancelled" => "OrderCancelledEvent",
        "Delivered" => "OrderDeliveredEvent",
        "PartlyDelivered" => "OrderPartlyDeliveredEvent",
        "ReadyForPickup" => "OrderReadyForPickupEvent",
        _ => return None,
    })
}

pub(super) async fn send_order_status(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: SendOrderStatusRequest = match connect_headers(
        &state,
        &headers,
        |h| SendOrderStatusHeaders::from_lookup(app_lookup(h)),
        |h| h.application_id,
    )
    .and_then(|_| parse_body(&body))
    {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(r) = require_order_ref(request.client_order_ref, request.erp_order_no.as_deref()) {
        return r;
    }
    if let Some(no) = &request.erp_order_no
        && no.chars().count() > 50
    {
        return bad_request("`ErpOrderNo` must be at most 50 characters.");
    }
    if request.order_status.is_unknown() {
        return bad_request(format!(
            "`OrderStatus`: `{}` is not one of {}.",
            request.order_status,
            ConnectOrderStatus::KNOWN.join(", ")
        ));
    }
    let now = state.clock.now();
    let (events, order) = {
        let mut guard = state.norce.lock();
        let inner = &mut *guard;
        let order = match find_order_mut(
            &mut inner.orders,
            &inner.order_index,
            request.client_order_ref,
            request.erp_order_no.as_deref(),
        ) {
            Ok(o) => o,
            Err(r) => return r,
        };
        let new_status = match request.order_status {
            ConnectOrderStatus::Acknowledged => "Confirmed",
            ref other => other.as_str(),
        }
        .to_owned();
        if order.status == "Cancelled" && new_status != "Cancelled" {
            return bad_request(format!(
                "Order {} is cancelled; its status cannot change to {new_status}.",
                order.order_no
            ));
        }
        if let Some(no) = request.erp_order_no.as_ref().filter(|n| !n.is_empty())
            && (request.order_status == ConnectOrderStatus::Acknowledged
                || order.erp_order_no.is_none())
        {
            order.erp_order_no = Some(no.clone());
        }
        for info in request.infos.iter().flatten() {
            order
                .infos
                .insert(info.code.clone(), info.value.clone().unwrap_or_default());
        }
        let changed = order.status != new_status;
        order.set_status(&new_status, now, "SendOrderStatus");
        let mut events = Vec::new();
        if let Some(event) = status_event(&new_status) {
            if event == "OrderConfirmedEvent" {
                if !order.confirmed_event_sent {
                    order.confirmed_event_sent = true;
                    events.push(event);
                }
            } else if changed {
                events.push(event);
            }
        }
        let order = order.clone();
        inner.order_index.add(&order);
        (events, order)
    };
    for event in events {
        push::order_event(&state, event, &order);
    }
    StatusCode::OK.into_response()
}

pub(super) async fn create_delivery_note(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut value: Value = match connect_headers(
        &state,
        &headers,
        |h| CreateDeliveryNoteHeaders::from_lookup(app_lookup(h)),
        |h| h.application_id,
    )
    .and_then(|_| parse_body(&body))
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    // Norce's sample JSON spells the lines `DeliverynoteItems`; accept both spellings.
    if let Value::Object(map) = &mut value
        && !map.contains_key("DeliveryNoteItems")
        && let Some(items) = map.remove("DeliverynoteItems")
    {
        map.insert("DeliveryNoteItems".into(), items);
    }
    let note: DeliveryNote = match parse_value(value) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if note.order_no.trim().is_empty() {
        return bad_request("`OrderNo` must not be empty.");
    }
    if note.note_no.trim().is_empty() {
        return bad_request("`NoteNo` must not be empty.");
    }
    if let Some(i) = note
        .delivery_note_items
        .iter()
        .flatten()
        .position(|i| i.item_no.trim().is_empty())
    {
        return bad_request(format!(
            "`DeliveryNoteItems[{i}].ItemNo` must not be empty."
        ));
    }
    if let Some(i) = note
        .delivery_note_packages
        .iter()
        .flatten()
        .position(|p| p.parcel_number.trim().is_empty())
    {
        return bad_request(format!(
            "`DeliveryNotePackages[{i}].ParcelNumber` must not be empty."
        ));
    }
    let now = state.clock.now();
    let mut inner = state.norce.lock();
    let Some(id) = inner.order_index.by_number(&inner.orders, &note.order_no) else {
        return bad_request(format!("Order '{}' was not found.", note.order_no));
    };
    let Some(mut order) = inner.orders.remove(&id) else {
        return bad_request("Order was not found.");
    };
    if order.status == "Cancelled" {
        let message = format!(
            "Order '{}' is cancelled; no delivery note can be registered.",
            note.order_no
        );
        inner.orders.insert(id, order);
        return bad_request(message);
    }
    inner.add_note(&mut order, note, now);
    inner.orders.insert(id, order);
    StatusCode::OK.into_response()
}

pub(super) async fn cancel_order(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request: CancelOrderRequest = match connect_headers(
        &state,
        &headers,
        |h| CancelOrderHeaders::from_lookup(app_lookup(h)),
        |h| h.application_id,
    )
    .and_then(|_| parse_body(&body))
    {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(r) = require_order_ref(request.client_order_ref, request.erp_order_no.as_deref()) {
        return r;
    }
    let now = state.clock.now();
    let order = {
        let mut guard = state.norce.lock();
        let inner = &mut *guard;
        let order = match find_order_mut(
            &mut inner.orders,
            &inner.order_index,
            request.client_order_ref,
            request.erp_order_no.as_deref(),
        ) {
            Ok(o) => o,
            Err(r) => return r,
        };
        if order.status == "Cancelled" {
            return StatusCode::OK.into_response();
        }
        if matches!(
            order.status.as_str(),
            "Delivered" | "PartlyDelivered" | "Invoiced" | "PickedUp"
        ) {
            return bad_request(format!(
                "Order {} is {} and cannot be cancelled.",
                order.order_no, order.status
            ));
        }
        if request.payments.as_ref().is_some_and(|p| !p.is_empty())
            || request.cancel_payment == Some(true)
        {
            order.payment_cancelled = true;
        }
        order.set_status("Cancelled", now, "CancelOrder");
        order.clone()
    };
    push::order_event(&state, "OrderCancelledEvent", &order);
    StatusCode::OK.into_response()
}

/// Rewrites integer field codes in the `...FieldsThatAreSet` lists to their names (Norce accepts
/// both in JSON); codes it does not know become strings the validation reports.
fn normalize_header(raw: &str, lists: &[&str], codes: &[(i64, &str)]) -> Option<String> {
    if raw.contains(['\n', '\r']) {
        return None;
    }
    let mut value: Value = serde_json::from_str(raw).ok()?;
    let Value::Object(map) = &mut value else {
        return None;
    };
    for list in lists {
        if let Some(Value::Array(items)) = map.get_mut(*list) {
            for item in items.iter_mut() {
                if let Some(code) = item.as_i64() {
                    *item = Value::String(
                        codes
                            .iter()
                            .find(|(c, _)| *c == code)
                            .map_or_else(|| code.to_string(), |(_, n)| (*n).to_owned()),
                    );
                }
            }
        }
    }
    serde_json::to_string(&value).ok()
}

/// Both imports parse their headers through this lookup: `X-StormConnect-Header` with its field
/// codes rewritten by [`normalize_header`] (as sent when that fails), the rest via [`app_lookup`].
fn parse_import_headers<H>(
    headers: &HeaderMap,
    lists: &[&str],
    codes: &[(i64, &str)],
    from_lookup: impl for<'a> FnOnce(&dyn Fn(&str) -> Option<&'a str>) -> Result<H, ParamError>,
) -> Result<H, ParamError> {
    let raw = headers.get(CONNECT_HEADER).and_then(|v| v.to_str().ok());
    let normalized = raw.and_then(|r| normalize_header(r, lists, codes));
    let app = app_lookup(headers);
    let lookup = |name: &str| {
        if name.eq_ignore_ascii_case(CONNECT_HEADER) {
            normalized.as_deref().or(raw)
        } else {
            app(name)
        }
    };
    from_lookup(&lookup)
}

struct CommonHeader<'a> {
    account_id: i32,
    serialization_type: Option<i32>,
    storage_name: Option<&'a str>,
    fields_name: &'static str,
    fields: Vec<&'a str>,
    unknown: Vec<&'a str>,
}

fn validate_header(state: &SharedState, h: CommonHeader<'_>) -> Result<(), Response> {
    if h.account_id != state.norce.config().account_id {
        return Err(bad_request(format!(
            "{CONNECT_HEADER}: `AccountId` {} is not a system account of this client.",
            h.account_id
        )));
    }
    match h.serialization_type {
        None | Some(0) => {}
        Some(1) => {
            return Err(bad_request(format!(
                "{CONNECT_HEADER}: `SerializationType` 1 (XML) does not match the JSON body; the sandbox simulates JSON only."
            )));
        }
        Some(other) => {
            return Err(bad_request(format!(
                "{CONNECT_HEADER}: `SerializationType` {other} is not 0 (JSON) or 1 (XML)."
            )));
        }
    }
    if let Some(name) = h.storage_name {
        return Err(bad_request(format!(
            "{CONNECT_HEADER}: `StorageName` '{name}' is not simulated; send the entities in the body."
        )));
    }
    if let Some(bad) = h.unknown.first() {
        return Err(bad_request(format!(
            "{CONNECT_HEADER}: `{}` contains `{bad}`, which is not a known field.",
            h.fields_name
        )));
    }
    if h.fields.is_empty() {
        return Err(bad_request(format!(
            "{CONNECT_HEADER}: `{}` must list at least one field.",
            h.fields_name
        )));
    }
    Ok(())
}

/// `IgnoreSkuPriceListFieldsWhenEmpty` (S-HDR-SKUPRICE): only the seven mandatory-capable
/// fields, each also in `SkuPriceListFieldsThatAreSet`; answered like the other header errors.
fn validate_ignore_fields(
    set: &[SkuPriceListField],
    ignore: &[SkuPriceListMandatoryField],
) -> Result<(), Response> {
    const LIST: &str = "IgnoreSkuPriceListFieldsWhenEmpty";
    for field in ignore {
        if field.is_unknown() {
            return Err(bad_request(format!(
                "{CONNECT_HEADER}: `{LIST}` contains `{field}`, which is not allowed there; only {} may be listed.",
                SkuPriceListMandatoryField::KNOWN.join(", ")
            )));
        }
        if !set.iter().any(|s| s.as_str() == field.as_str()) {
            return Err(bad_request(format!(
                "{CONNECT_HEADER}: `{LIST}` contains `{field}`, which is not in `SkuPriceListFieldsThatAreSet`; every field listed there must also be set."
            )));
        }
    }
    Ok(())
}

fn job_response(job_id: i32, total: usize, messages: Vec<String>) -> Response {
    let failures = messages.len();
    Json(JobResponse {
        status_code: Some("OK".into()),
        description: Some(format!(
            "Job {job_id} created; {total} item(s) received, {failures} failed validation."
        )),
        job_id: job_id.to_string(),
        validation_summary: Some(ValidationSummary {
            nr_of_items_in_total: Some(i32::try_from(total).unwrap_or(i32::MAX)),
            nr_of_validation_failures: Some(i32::try_from(failures).unwrap_or(i32::MAX)),
            messages: Some(messages),
        }),
    })
    .into_response()
}

/// Both imports end alike: register the job, complete what is already due, answer with the summary.
fn submit_job(
    state: &SharedState,
    kind: &'static str,
    total: usize,
    messages: Vec<String>,
    work: Work,
) -> Response {
    let id = new_job(state, kind, total, work);
    settle(state);
    job_response(id, total, messages)
}

fn new_job(state: &SharedState, kind: &'static str, total: usize, work: Work) -> i32 {
    let now = state.clock.now();
    let delay = Duration::milliseconds(
        (state
            .norce
            .config()
            .job_delay_secs
            .clamp(0.0, 315_360_000.0)
            * 1000.0) as i64,
    );
    let mut inner = state.norce.lock();
    let id = inner.next_job_id;
    inner.next_job_id += 1;
    inner.add_job(JobRec {
        id,
        kind,
        created: now,
        due: now + delay,
        finished: None,
        status_id: 1,
        totals: i32::try_from(total).unwrap_or(i32::MAX),
        inserts: 0,
        updates: 0,
        fail: 0,
        log: vec![LogRec {
            severity: 1,
            message: "Starting import.".into(),
            at: now,
            row: None,
        }],
        work: Some(work),
    });
    id
}

pub(super) async fn import_onhands(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = match connect_headers(
        &state,
        &headers,
        |h| {
            parse_import_headers(h, &["SkuOnhandFieldsThatAreSet"], ONHAND_CODES, |lookup| {
                ImportOnhandsHeaders::from_lookup(lookup)
            })
        },
        |h| h.application_id,
    ) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let header = parsed.x_storm_connect_header;
    let fields = &header.sku_onhand_fields_that_are_set;
    let check = CommonHeader {
        account_id: header.account_id,
        serialization_type: header.serialization_type,
        storage_name: header.storage_name.as_deref(),
        fields_name: "SkuOnhandFieldsThatAreSet",
        fields: fields.iter().map(|f| f.as_str()).collect(),
        unknown: fields
            .iter()
            .filter(|f| f.is_unknown())
            .map(|f| f.as_str())
            .collect(),
    };
    if let Err(r) = validate_header(&state, check) {
        return r;
    }
    let rows: Vec<SkuOnhand> = match parse_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let messages: Vec<String> = {
        let inner = state.norce.lock();
        rows.iter()
            .filter_map(|r| inner.onhand_problem(r))
            .collect()
    };
    let total = rows.len();
    submit_job(
        &state,
        "ImportOnhands",
        total,
        messages,
        Work::Onhands { header, rows },
    )
}

pub(super) async fn import_sku_price_lists(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = match connect_headers(
        &state,
        &headers,
        |h| {
            parse_import_headers(
                h,
                &[
                    "SkuPriceListFieldsThatAreSet",
                    "IgnoreSkuPriceListFieldsWhenEmpty",
                ],
                PRICE_CODES,
                |lookup| ImportSkuPriceListsHeaders::from_lookup(lookup),
            )
        },
        |h| h.application_id,
    ) {
        Ok(h) => h,
        Err(r) => return r,
    };
    let header = parsed.x_storm_connect_header;
    let fields = &header.sku_price_list_fields_that_are_set;
    let check = CommonHeader {
        account_id: header.account_id,
        serialization_type: header.serialization_type,
        storage_name: header.storage_name.as_deref(),
        fields_name: "SkuPriceListFieldsThatAreSet",
        fields: fields.iter().map(|f| f.as_str()).collect(),
        unknown: fields
            .iter()
            .filter(|f| f.is_unknown())
            .map(|f| f.as_str())
            .collect(),
    };
    if let Err(r) = validate_header(&state, check).and_then(|()| {
        validate_ignore_fields(
            fields,
            header
                .ignore_sku_price_list_fields_when_empty
                .as_deref()
                .unwrap_or_default(),
        )
    }) {
        return r;
    }
    let rows: Vec<SkuPriceList> = match parse_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let messages: Vec<String> = {
        let inner = state.norce.lock();
        rows.iter()
            .filter_map(|r| inner.price_problem(r, &header))
            .collect()
    };
    let total = rows.len();
    submit_job(
        &state,
        "ImportSkuPriceLists",
        total,
        messages,
        Work::Prices { header, rows },
    )
}

pub(super) async fn get_job(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query: GetJobQuery = match connect_headers(
        &state,
        &headers,
        |h| GetJobHeaders::from_lookup(app_lookup(h)),
        |h| h.application_id,
    )
    .and_then(|_| parse_query(&uri))
    {
        Ok(q) => q,
        Err(r) => return r,
    };
    let now = state.clock.now();
    let job = state
        .norce
        .lock()
        .jobs
        .get(&query.id)
        .map(|j| j.to_job(now));
    match job {
        Some(job) => Json(job).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("Job {} was not found.", query.id),
        ),
    }
}

pub(super) async fn get_job_log(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query: GetJobLogQuery = match connect_headers(
        &state,
        &headers,
        |h| GetJobLogHeaders::from_lookup(app_lookup(h)),
        |h| h.application_id,
    )
    .and_then(|_| parse_query(&uri))
    {
        Ok(q) => q,
        Err(r) => return r,
    };
    let log = state
        .norce
        .lock()
        .jobs
        .get(&query.id)
        .map(JobRec::log_entries);
    match log {
        Some(log) => Json(log).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("Job {} was not found.", query.id),
        ),
    }
}
