//! `/_sandbox/brightpearl/...`: inspect orders, create and ship goods-out notes, change stock,
//! read webhook deliveries. Changes fire the same webhooks the platform would.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::warehouse::{self, CreateGoodsOutNote, DefaultLocationChange, StockChange};
use super::webhooks;
use crate::state::SharedState;

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/orders", get(orders))
        .route("/sales-credits", get(sales_credits))
        .route("/goods-in-notes", get(goods_in_notes))
        .route("/goods-out-notes", post(create_goods_out_note))
        .route("/goods-out-notes/{id}/ship", post(ship_goods_out_note))
        .route("/products/{id}/stock", post(change_stock))
        .route(
            "/products/{id}/default-location",
            post(set_default_location),
        )
        .route("/webhook-deliveries", get(deliveries))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

#[derive(Debug, Deserialize)]
struct OrderFilter {
    #[serde(rename = "externalRef")]
    external_ref: Option<String>,
}

type FilterQuery<F> = Result<Query<F>, axum::extract::rejection::QueryRejection>;

/// What `records` picks for the query's filter, as JSON; 400 with `usage` for a bad query.
fn listed<F, T: serde::Serialize>(
    query: FilterQuery<F>,
    usage: &str,
    records: impl FnOnce(&F) -> Vec<T>,
) -> Response {
    match query {
        Ok(Query(filter)) => Json(records(&filter)).into_response(),
        Err(_) => error(StatusCode::BAD_REQUEST, format!("query: {usage}")),
    }
}

/// Whether a record's `externalRef` is the one asked for (any, when none is).
fn ref_matches(filter: &OrderFilter, external_ref: Option<&String>) -> bool {
    filter
        .external_ref
        .as_ref()
        .is_none_or(|r| external_ref == Some(r))
}

/// Sales orders (flat shape), optionally only those with an `externalRef`.
async fn orders(State(state): State<SharedState>, query: FilterQuery<OrderFilter>) -> Response {
    listed(query, "externalRef=<text>", |filter| {
        let store = state.brightpearl.lock();
        let orders = store.orders.values();
        orders
            .filter(|o| ref_matches(filter, o.external_ref.as_ref()))
            .cloned()
            .collect()
    })
}

/// Sales credits (the API's shape), optionally only those with an `externalRef`.
async fn sales_credits(
    State(state): State<SharedState>,
    query: FilterQuery<OrderFilter>,
) -> Response {
    listed(query, "externalRef=<text>", |filter| {
        let store = state.brightpearl.lock();
        let credits = store.credits.values();
        credits
            .filter(|c| ref_matches(filter, c.external_ref.as_ref()))
            .cloned()
            .collect()
    })
}

#[derive(Debug, Deserialize)]
struct NoteFilter {
    #[serde(rename = "orderId")]
    order_id: Option<i64>,
}

/// Goods-in notes (the API's shape), optionally only those received against `orderId`.
async fn goods_in_notes(
    State(state): State<SharedState>,
    query: FilterQuery<NoteFilter>,
) -> Response {
    listed(query, "orderId=<number>", |filter| {
        let store = state.brightpearl.lock();
        let notes = store.goods_in_notes.values();
        notes
            .filter(|n| filter.order_id.is_none_or(|id| n.order_id == Some(id)))
            .cloned()
            .collect()
    })
}

async fn create_goods_out_note(
    State(state): State<SharedState>,
    body: Result<Json<CreateGoodsOutNote>, JsonRejection>,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "body {{orderId, warehouseId?, rows?: [{{orderRowId, quantity}}], shippingMethodId?, priority?}}: {e}"
                ),
            );
        }
    };
    let now = state.clock.now();
    let outcome = warehouse::create_goods_out_note(&mut state.brightpearl.lock(), &request, now);
    match outcome {
        Ok((id, events)) => {
            webhooks::fire(&state, events);
            let gon = state.brightpearl.lock().gons.get(&id).cloned();
            (
                StatusCode::CREATED,
                Json(json!({ "id": id, "goodsOutNote": gon })),
            )
                .into_response()
        }
        Err((status, message)) => error(status, message),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Ship {
    /// Tracking reference to set on `shipping.reference`.
    reference: Option<String>,
}

async fn ship_goods_out_note(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("goods-out note {id} does not exist"),
        );
    };
    let ship: Ship = if body.iter().all(u8::is_ascii_whitespace) {
        Ship::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(ship) => ship,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("body {{reference?}}: {e}")),
        }
    };
    let now = state.clock.now();
    let outcome =
        warehouse::ship_goods_out_note(&mut state.brightpearl.lock(), id, ship.reference, now);
    match outcome {
        Ok(events) => {
            webhooks::fire(&state, events);
            let gon = state.brightpearl.lock().gons.get(&id).cloned();
            Json(json!({ "id": id, "goodsOutNote": gon })).into_response()
        }
        Err((status, message)) => error(status, message),
    }
}

/// The product id of an admin path and the request body, or the status and message refusing
/// them.
fn product_request<T>(
    id: &str,
    body: Result<Json<T>, JsonRejection>,
    shape: &str,
) -> Result<(i64, T), (StatusCode, String)> {
    let Ok(id) = id.parse::<i64>() else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("product {id} does not exist"),
        ));
    };
    match body {
        Ok(Json(request)) => Ok((id, request)),
        Err(e) => Err((StatusCode::BAD_REQUEST, format!("body {shape}: {e}"))),
    }
}

async fn change_stock(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    body: Result<Json<StockChange>, JsonRejection>,
) -> Response {
    let (id, change) = match product_request(&id, body, "{warehouseId?, onHand | delta}") {
        Ok(parsed) => parsed,
        Err((status, message)) => return error(status, message),
    };
    let outcome = warehouse::change_stock(&mut state.brightpearl.lock(), id, &change);
    match outcome {
        Ok((availability, events)) => {
            webhooks::fire(&state, events);
            Json(json!({ "productId": id, "availability": availability })).into_response()
        }
        Err((status, message)) => error(status, message),
    }
}

async fn set_default_location(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    body: Result<Json<DefaultLocationChange>, JsonRejection>,
) -> Response {
    let (id, change) = match product_request(&id, body, "{warehouseId?, locationId}") {
        Ok(parsed) => parsed,
        Err((status, message)) => return error(status, message),
    };
    match warehouse::set_default_location(&mut state.brightpearl.lock(), id, &change) {
        Ok(settings) => Json(json!({ "productId": id, "warehouse": settings })).into_response(),
        Err((status, message)) => error(status, message),
    }
}

async fn deliveries(State(state): State<SharedState>) -> Response {
    Json(state.brightpearl.webhook_deliveries()).into_response()
}
