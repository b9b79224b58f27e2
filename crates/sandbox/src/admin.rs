//! `/_sandbox/…`: inspect state, move the clock, set faults and drift, read the request log.
//!
//! Platform-specific inspection lives in each simulator's own `admin_router`, nested here under
//! `/_sandbox/norce`, `/_sandbox/nshift` and `/_sandbox/brightpearl`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::drift::DriftRule;
use crate::faults::FaultRule;
use crate::state::SharedState;
use crate::{brightpearl, norce, nshift};

/// The admin routes (mounted at `/_sandbox`).
pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/credentials", get(credentials))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route(
            "/drift",
            get(list_drift).post(add_drift).delete(clear_drift),
        )
        .route("/requests", get(requests).delete(clear_requests))
        .route("/dataset", get(dataset))
        .nest("/norce", norce::admin_router())
        .nest("/nshift", nshift::admin_router())
        .nest("/brightpearl", brightpearl::admin_router())
}

async fn credentials(State(state): State<SharedState>) -> Response {
    Json(state.credentials()).into_response()
}

async fn clock(State(state): State<SharedState>) -> Response {
    Json(json!({"now": state.clock.now().to_rfc3339(), "advanced_secs": state.clock.advanced_by().as_secs_f64()}))
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: f64,
}

async fn advance(
    State(state): State<SharedState>,
    body: Result<Json<Advance>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(Advance { seconds })) = body else {
        return bad_request("body must be {\"seconds\": <non-negative number>}");
    };
    if !(seconds.is_finite() && seconds >= 0.0) {
        return bad_request("`seconds` must be a non-negative number");
    }
    state.clock.advance(Duration::from_secs_f64(seconds));
    Json(json!({"now": state.clock.now().to_rfc3339()})).into_response()
}

async fn list_faults(State(state): State<SharedState>) -> Response {
    Json(state.faults.rules()).into_response()
}

async fn add_fault(
    State(state): State<SharedState>,
    body: Result<Json<FaultRule>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let rule = match body {
        Ok(Json(rule)) => rule,
        Err(e) => return bad_request(&format!("invalid fault rule: {e}")),
    };
    match state.faults.add(rule) {
        Ok(()) => (StatusCode::CREATED, Json(state.faults.rules())).into_response(),
        Err(message) => bad_request(&message),
    }
}

async fn clear_faults(State(state): State<SharedState>) -> Response {
    state.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn list_drift(State(state): State<SharedState>) -> Response {
    Json(state.drift.rules()).into_response()
}

async fn add_drift(
    State(state): State<SharedState>,
    body: Result<Json<DriftRule>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let rule = match body {
        Ok(Json(rule)) => rule,
        Err(e) => return bad_request(&format!("invalid drift rule: {e}")),
    };
    match state.drift.add(rule) {
        Ok(()) => (StatusCode::CREATED, Json(state.drift.rules())).into_response(),
        Err(message) => bad_request(&message),
    }
}

async fn clear_drift(State(state): State<SharedState>) -> Response {
    state.drift.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn requests(State(state): State<SharedState>) -> Response {
    Json(state.faults.requests()).into_response()
}

async fn clear_requests(State(state): State<SharedState>) -> Response {
    state.faults.clear_requests();
    StatusCode::NO_CONTENT.into_response()
}

async fn dataset(State(state): State<SharedState>) -> Response {
    Json(&state.dataset).into_response()
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}
