//! The Norce error answers every handler shares.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A Services/Connect error: Norce documents no body, so the ASP.NET `{"Message": ...}` shape.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "Message": message.into() }))).into_response()
}

/// A 400 with Norce's error shape.
pub(super) fn bad_request(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}
