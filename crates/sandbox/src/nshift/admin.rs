//! `/_sandbox/nshift/…`: what the simulator holds, for tests (e.g. exactly-once checks count the
//! shipments of an `orderNo` here, cancelled ones included).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::{ShipmentRecord, StoredRecord, ts};
use crate::state::{AppState, SharedState};
use crate::util::lock;

/// The admin routes (mounted at `/_sandbox/nshift`).
pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/shipments", get(shipments))
        .route("/shipments/{id}", get(shipment))
        .route("/stored-shipments", get(stored))
        .route("/services", get(services))
        .route("/address-book", get(address_book))
}

#[derive(Debug, Deserialize)]
struct Filter {
    #[serde(rename = "orderNo")]
    order_no: Option<String>,
}

fn shipment_json(state: &AppState, record: &ShipmentRecord) -> Value {
    let config = &state.config.nshift;
    let (status, since) = record.status_at(
        state.clock.now(),
        &config.progress,
        config.test_shipments_progress,
    );
    json!({
        "id": record.id.to_string(),
        "orderNo": record.order_no,
        "reference": record.reference,
        "serviceId": record.service_id,
        "partnerId": record.partner_id,
        "status": status.as_str(),
        "statusSince": ts(since),
        "cancelled": record.cancelled_at.is_some(),
        "parcelNos": record.parcels.iter().map(|p| p.parcel_no.clone()).collect::<Vec<_>>(),
        "returnParcelNos": record.parcels.iter().filter_map(|p| p.return_parcel_no.clone()).collect::<Vec<_>>(),
        "parcelWeights": record.parcels.iter().map(|p| p.weight).collect::<Vec<_>>(),
        "normalShipment": record.normal_shipment,
        "returnShipment": record.return_shipment,
        "developerId": record.developer_id,
        "profileGroup": record.profile_group,
        "apiKeyId": record.key_id,
        "test": record.test,
        "agentId": record.agent_id,
        "addons": record.addons,
        "rcvName": record.receiver.name,
        "rcvZipcode": record.receiver.zipcode,
        "rcvCountry": record.receiver.country,
        "created": ts(record.created),
        "cancelledAt": record.cancelled_at.map(ts),
        "storedId": record.stored_id.map(|id| id.to_string()),
        "documents": record.documents.iter().map(u64::to_string).collect::<Vec<_>>(),
    })
}

fn stored_json(record: &StoredRecord) -> Value {
    json!({
        "id": record.id.to_string(),
        "orderNo": record.shipment.order_no,
        "reference": record.shipment.sender_reference,
        "serviceId": record.shipment.service.id,
        "status": record.status.as_str(),
        "statuses": record.statuses,
        "parcels": record.shipment.parcels,
        "deleted": record.deleted,
        "developerId": record.shipment.developer_id,
        "profileGroup": record.profile_group,
        "apiKeyId": record.key_id,
        "created": ts(record.created),
        "changed": ts(record.changed),
        "printedShipmentIds": record.printed.iter().map(u64::to_string).collect::<Vec<_>>(),
    })
}

async fn shipments(State(state): State<SharedState>, Query(filter): Query<Filter>) -> Response {
    let store = lock(&state.nshift.inner);
    let list: Vec<Value> = store
        .shipments()
        .filter(|s| filter.order_no.is_none() || s.order_no == filter.order_no)
        .map(|s| shipment_json(&state, s))
        .collect();
    Json(list).into_response()
}

async fn shipment(State(state): State<SharedState>, Path(id): Path<String>) -> Response {
    let store = lock(&state.nshift.inner);
    match id.parse::<u64>().ok().and_then(|id| store.shipment(id)) {
        Some(record) => Json(shipment_json(&state, record)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no shipment {id}")})),
        )
            .into_response(),
    }
}

async fn stored(State(state): State<SharedState>, Query(filter): Query<Filter>) -> Response {
    let store = lock(&state.nshift.inner);
    let list: Vec<Value> = store
        .stored_all()
        .filter(|s| filter.order_no.is_none() || s.shipment.order_no == filter.order_no)
        .map(stored_json)
        .collect();
    Json(list).into_response()
}

async fn services(State(state): State<SharedState>) -> Response {
    Json(&state.config.nshift.services).into_response()
}

async fn address_book(State(state): State<SharedState>) -> Response {
    Json(state.nshift.book.entries().collect::<Vec<_>>()).into_response()
}
