//! `/_sandbox/norce/...`: inspect orders, delivery notes, on-hand, prices, jobs and pushes, and
//! place a new order (which Norce then pushes to the order receiver and the event webhooks).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use models_runtime::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::settle;
use super::model::{self, LineRec, OrderRec, StatusChange};
use super::push;
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/orders", get(list_orders).post(create_order))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/cancel", post(cancel_order))
        .route("/delivery-notes", get(delivery_notes))
        .route("/onhands", get(onhands))
        .route("/prices", get(prices))
        .route("/jobs", get(jobs))
        .route("/jobs/{id}", get(job))
        .route("/pushes", get(pushes))
        .route("/tokens/revoke", post(revoke_tokens))
}

fn admin_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct OrderFilter {
    status: Option<String>,
}

async fn list_orders(
    State(state): State<SharedState>,
    Query(filter): Query<OrderFilter>,
) -> Response {
    settle(&state);
    let inner = state.norce.lock();
    let orders: Vec<Value> = inner
        .orders
        .values()
        .filter(|o| {
            filter
                .status
                .as_deref()
                .is_none_or(|s| s.eq_ignore_ascii_case(&o.status))
        })
        .map(OrderRec::admin_json)
        .collect();
    Json(orders).into_response()
}

/// The key of the order `id` names: its id, web order number or ERP number.
fn order_key(orders: &BTreeMap<i64, OrderRec>, id: &str) -> Option<i64> {
    match id.parse::<i64>() {
        Ok(n) => orders.contains_key(&n).then_some(n),
        Err(_) => orders
            .iter()
            .find(|(_, o)| o.matches_order_no(id))
            .map(|(key, _)| *key),
    }
}

async fn get_order(State(state): State<SharedState>, Path(id): Path<String>) -> Response {
    settle(&state);
    let inner = state.norce.lock();
    let found = order_key(&inner.orders, &id).and_then(|key| inner.orders.get(&key));
    match found {
        Some(order) => Json(order.admin_json()).into_response(),
        None => admin_error(StatusCode::NOT_FOUND, format!("no Norce order {id}")),
    }
}

/// `POST /_sandbox/norce/orders/{id}/cancel`: the shop cancels the order (a shopper, or the
/// merchant in Norce's admin; not an integration's Connect `CancelOrder`): status Cancelled,
/// its `updated` now, and `OrderCancelledEvent` pushed to the event webhooks. An order
/// cancelled already answers 200 again; one invoiced or picked up answers 409.
///
/// Unlike Connect's `CancelOrder` here, an order `Delivered` can be cancelled: relay sets that
/// status when it books the label, before the carrier has the parcel, and that is the
/// cancellation relay exists to follow (the shipment is cancelled while it is not handed over).
/// Norce documents no refusal either way; which statuses its admin refuses is assumed.
async fn cancel_order(State(state): State<SharedState>, Path(id): Path<String>) -> Response {
    settle(&state);
    let now = state.clock.now();
    let order = {
        let mut inner = state.norce.lock();
        let key = order_key(&inner.orders, &id);
        let found = key.and_then(|key| inner.orders.get_mut(&key));
        let Some(order) = found else {
            return admin_error(StatusCode::NOT_FOUND, format!("no Norce order {id}"));
        };
        if order.status == "Cancelled" {
            return Json(order.admin_json()).into_response();
        }
        if matches!(order.status.as_str(), "Invoiced" | "PickedUp") {
            return admin_error(
                StatusCode::CONFLICT,
                format!(
                    "Norce order {} is {} and cannot be cancelled",
                    order.order_no, order.status
                ),
            );
        }
        order.set_status("Cancelled", now, "shop");
        order.clone()
    };
    push::order_event(&state, "OrderCancelledEvent", &order);
    Json(order.admin_json()).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct NoteFilter {
    order_no: Option<String>,
    note_no: Option<String>,
}

async fn delivery_notes(
    State(state): State<SharedState>,
    Query(filter): Query<NoteFilter>,
) -> Response {
    settle(&state);
    let inner = state.norce.lock();
    let notes: Vec<Value> = inner
        .orders
        .values()
        .filter(|o| {
            filter
                .order_no
                .as_deref()
                .is_none_or(|n| o.matches_order_no(n))
        })
        .flat_map(|o| {
            o.delivery_notes
                .iter()
                .filter(|n| {
                    filter
                        .note_no
                        .as_deref()
                        .is_none_or(|no| n.note.note_no == no)
                })
                .map(move |n| n.admin_json(o))
        })
        .collect();
    Json(notes).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct StockFilter {
    part_no: Option<String>,
    warehouse_code: Option<String>,
    location_code: Option<String>,
    price_list_code: Option<String>,
}

async fn onhands(State(state): State<SharedState>, Query(filter): Query<StockFilter>) -> Response {
    settle(&state);
    let inner = state.norce.lock();
    let rows: Vec<Value> = inner
        .onhands
        .iter()
        .filter(|((p, w, l), _)| {
            filter.part_no.as_deref().is_none_or(|x| x == p)
                && filter.warehouse_code.as_deref().is_none_or(|x| x == w)
                && filter.location_code.as_deref().is_none_or(|x| x == l)
        })
        .map(|((p, w, l), r)| {
            json!({
                "partNo": p, "warehouseCode": w, "locationCode": l,
                "onhandValue": r.onhand_value.to_string(),
                "incomingValue": r.incoming_value.map(|v| v.to_string()),
                "nextDeliveryDate": r.next_delivery_date,
                "leadTimeDayCount": r.lead_time_day_count,
                "minimumValue": r.minimum_value.map(|v| v.to_string()),
                "maximumValue": r.maximum_value.map(|v| v.to_string()),
                "isActive": r.is_active,
                "infos": r.infos,
                "updated": r.updated.to_rfc3339(),
            })
        })
        .collect();
    Json(json!({"locations": inner.locations.iter().map(|(w, l)| json!({"warehouseCode": w, "locationCode": l})).collect::<Vec<_>>(), "onhands": rows})).into_response()
}

async fn prices(State(state): State<SharedState>, Query(filter): Query<StockFilter>) -> Response {
    settle(&state);
    let inner = state.norce.lock();
    let dec = |v: Option<Decimal>| v.map(|v| v.to_string());
    let rows: Vec<Value> = inner
        .prices
        .iter()
        .filter(|((p, l, _), _)| filter.part_no.as_deref().is_none_or(|x| x == p) && filter.price_list_code.as_deref().is_none_or(|x| x == l))
        .map(|((p, l, q), r)| {
            json!({
                "partNo": p, "priceListCode": l, "quantityBreak": q,
                "priceSale": dec(r.price_sale), "costPurchase": dec(r.cost_purchase), "costUnit": dec(r.cost_unit),
                "priceRecommended": dec(r.price_recommended), "pricePrevious": dec(r.price_previous), "priceCatalog": dec(r.price_catalog),
                "isPriceDiscountable": r.is_price_discountable, "isActive": r.is_active, "currencyCode": r.currency,
                "priceRule": r.price_rule, "priceRuleValue": dec(r.price_rule_value),
                "updated": r.updated.map(|u| u.to_rfc3339()),
            })
        })
        .collect();
    Json(json!({"priceLists": inner.price_lists, "prices": rows})).into_response()
}

fn job_json(job: &model::JobRec, now: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "kind": job.kind,
        "due": job.due.to_rfc3339(),
        "job": job.to_job(now),
        "log": job.log_entries(),
    })
}

async fn jobs(State(state): State<SharedState>) -> Response {
    settle(&state);
    let now = state.clock.now();
    let inner = state.norce.lock();
    Json(
        inner
            .jobs
            .values()
            .map(|j| job_json(j, now))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

async fn job(State(state): State<SharedState>, Path(id): Path<i32>) -> Response {
    settle(&state);
    let now = state.clock.now();
    let inner = state.norce.lock();
    match inner.jobs.get(&id) {
        Some(j) => Json(job_json(j, now)).into_response(),
        None => admin_error(StatusCode::NOT_FOUND, format!("no Norce job {id}")),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PushFilter {
    kind: Option<String>,
    event_type: Option<String>,
}

async fn pushes(State(state): State<SharedState>, Query(filter): Query<PushFilter>) -> Response {
    settle(&state);
    let inner = state.norce.lock();
    let rows: Vec<Value> = inner
        .pushes
        .iter()
        .filter(|p| {
            filter.kind.as_deref().is_none_or(|k| k == p.kind)
                && filter
                    .event_type
                    .as_deref()
                    .is_none_or(|e| p.event_type.as_deref() == Some(e))
        })
        .map(model::PushRec::admin_json)
        .collect();
    Json(rows).into_response()
}

/// Body of `POST /_sandbox/norce/orders`; everything is optional and picked from the dataset.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct NewOrder {
    /// Customer id (from 5001).
    customer_id: Option<i64>,
    /// Lines by SKU.
    lines: Vec<NewLine>,
    /// Delivery method code.
    delivery_method: Option<String>,
    /// Pickup point id.
    pickup_point: Option<String>,
    /// Currency (default SEK).
    currency: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewLine {
    sku: String,
    #[serde(default = "one")]
    quantity: i64,
}

fn one() -> i64 {
    1
}

async fn create_order(State(state): State<SharedState>, body: Bytes) -> Response {
    settle(&state);
    let request: NewOrder = if body.iter().all(u8::is_ascii_whitespace) {
        NewOrder::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return admin_error(StatusCode::BAD_REQUEST, format!("invalid order: {e}")),
        }
    };
    let now = state.clock.now();
    let order = {
        let mut inner = state.norce.lock();
        let customer = match request.customer_id {
            Some(id) => match inner.customers.iter().find(|c| c.id == id) {
                Some(c) => c.clone(),
                None => return admin_error(StatusCode::BAD_REQUEST, format!("no customer {id}")),
            },
            None => {
                if inner.customers.is_empty() {
                    return admin_error(StatusCode::BAD_REQUEST, "the dataset has no customers");
                }
                let len = inner.customers.len();
                let index = inner.rng.usize(..len);
                inner.customers[index].clone()
            }
        };
        let mut wanted: Vec<(String, i64)> = request
            .lines
            .iter()
            .map(|l| (l.sku.clone(), l.quantity))
            .collect();
        if wanted.is_empty() && !inner.products.is_empty() {
            let count = inner.rng.usize(1..=2);
            for _ in 0..count {
                let len = inner.products.len();
                let index = inner.rng.usize(..len);
                let quantity = inner.rng.i64(1..=2);
                let sku = inner.products[index].sku.clone();
                if !wanted.iter().any(|(s, _)| *s == sku) {
                    wanted.push((sku, quantity));
                }
            }
        }
        let default_list = inner
            .price_lists
            .first()
            .map(|l| l.code.clone())
            .unwrap_or_default();
        let mut lines = Vec::new();
        for (i, (sku, quantity)) in wanted.iter().enumerate() {
            if !(1..=1_000_000).contains(quantity) {
                return admin_error(
                    StatusCode::BAD_REQUEST,
                    format!("line {}: quantity must be from 1 to 1000000", i + 1),
                );
            }
            let Some(product) = inner.products.iter().find(|p| p.sku == *sku).cloned() else {
                return admin_error(
                    StatusCode::BAD_REQUEST,
                    format!("line {}: no product with SKU {sku}", i + 1),
                );
            };
            let unit = inner
                .price_of(sku, &default_list)
                .and_then(|p| p.price_sale)
                .and_then(|p| p.checked_mul(model::vat_multiplier()))
                .map_or(Decimal::ZERO, |p| p.round_dp(2).normalize());
            lines.push(LineRec {
                line_no: i as i32 + 1,
                product_id: product.id,
                part_no: product.sku,
                name: product.name,
                quantity: *quantity,
                unit_price_inc_vat: unit,
            });
        }
        if lines.is_empty() {
            return admin_error(StatusCode::BAD_REQUEST, "an order needs at least one line");
        }
        let delivery_method = match request.delivery_method {
            Some(m) if !m.trim().is_empty() => m,
            Some(_) => {
                return admin_error(StatusCode::BAD_REQUEST, "deliveryMethod must not be empty");
            }
            None => crate::dataset::DELIVERY_METHODS
                [inner.rng.usize(..crate::dataset::DELIVERY_METHODS.len())]
            .to_owned(),
        };
        let pickup_point = request.pickup_point.or_else(|| {
            (delivery_method == "POSTNORD_PICKUP")
                .then(|| (1000 + inner.rng.u16(0..900)).to_string())
        });
        let id = inner.next_order_id;
        inner.next_order_id += 1;
        let quotation_id = inner.next_quotation_id;
        inner.next_quotation_id += 1;
        let order = OrderRec {
            id,
            order_no: format!("NC-{id}"),
            quotation_id,
            application_id: inner.application_id,
            customer,
            created: now,
            updated: now,
            lines,
            delivery_method,
            pickup_point,
            currency: request.currency.unwrap_or_else(|| "SEK".into()),
            status: "Created".into(),
            erp_order_no: None,
            infos: BTreeMap::new(),
            delivery_notes: Vec::new(),
            history: vec![StatusChange {
                at: now,
                status: "Created".into(),
                by: "checkout".into(),
            }],
            confirmed_event_sent: false,
            payment_method: "KLARNA".into(),
            payment_ref: format!("psp-{quotation_id}"),
            payment_cancelled: false,
        };
        inner.order_index.add(&order);
        inner.orders.insert(id, order.clone());
        order
    };
    push::new_order(&state, &order);
    (StatusCode::CREATED, Json(order.admin_json())).into_response()
}

/// `POST /_sandbox/norce/tokens/revoke`: every issued access token stops working.
async fn revoke_tokens(State(state): State<SharedState>) -> Response {
    let revoked = state.norce.revoke_tokens();
    Json(json!({ "revoked": revoked })).into_response()
}
