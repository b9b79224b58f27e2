//! Reading a request and the platform's error answers (`{code, message}` with `MISSING` or
//! `ILLEGAL`, 404, 422), shared by every route module.
//!
//! A bottom module: `handlers` routes to `address`, `price` and `session`, and they all parse and
//! answer through this one, so none of them imports `handlers` (which imports them).

#![allow(clippy::result_large_err)] // Err is the ready-made axum Response.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nshift_models::delivery::{Error as ApiError, ErrorCode, ValidationStatus};
use serde::de::DeserializeOwned;

use super::numbers;

/// A handler's result: the answer, or the error answer (both ready-made responses).
pub(super) type Outcome = Result<Response, Response>;

/// The answer either way.
pub(super) fn respond(outcome: Outcome) -> Response {
    outcome.unwrap_or_else(|e| e)
}

/// 400 (or 500) `{code, message}`.
fn api_error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ApiError {
            code: Some(code),
            message: Some(message.into()),
        }),
    )
        .into_response()
}

/// 400 `MISSING`: a required argument is absent.
pub(super) fn missing(message: impl Into<String>) -> Response {
    api_error(StatusCode::BAD_REQUEST, ErrorCode::Missing, message)
}

/// 400 `ILLEGAL`: an argument is malformed or out of range.
pub(super) fn illegal(message: impl Into<String>) -> Response {
    api_error(StatusCode::BAD_REQUEST, ErrorCode::Illegal, message)
}

/// 422 with the validation statuses (a shipment the carrier rules refuse).
pub(super) fn unprocessable(statuses: Vec<ValidationStatus>) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, Json(statuses)).into_response()
}

/// 404 with an empty body.
pub(super) fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// The JSON body as `T`; empty → MISSING, a missing required field → MISSING, anything else
/// (syntax, wrong types) → ILLEGAL.
pub(super) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(missing("Missing body"));
    }
    serde_json::from_slice(body).map_err(body_error)
}

/// Like [`parse_body`] for a body with numbers: as nShift does, a number may come as a JSON
/// string (`"weight": "37.5"`) wherever `shape` (the spec) has a number; a string there that is
/// not a number → ILLEGAL naming the field.
pub(super) fn parse_body_numbers<T: DeserializeOwned>(
    body: &Bytes,
    shape: &numbers::Shape,
) -> Result<T, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(missing("Missing body"));
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).map_err(body_error)?;
    numbers::normalize(&mut value, shape).map_err(|e| illegal(e.to_string()))?;
    serde_json::from_value(value).map_err(body_error)
}

fn body_error(e: serde_json::Error) -> Response {
    let text = e.to_string();
    if e.is_data() && text.starts_with("missing field") {
        missing(format!("Missing argument in body: {text}"))
    } else if e.is_syntax() || e.is_eof() {
        illegal(format!("Malformed JSON body: {text}"))
    } else {
        illegal(format!("Illegal body: {text}"))
    }
}

/// The query string as `T`; a missing required parameter → MISSING, else ILLEGAL.
pub(super) fn parse_query<T: DeserializeOwned>(uri: &Uri) -> Result<T, Response> {
    Query::<T>::try_from_uri(uri).map(|q| q.0).map_err(|e| {
        let text = e.body_text();
        if text.contains("missing field") {
            missing(format!("Missing argument: {text}"))
        } else {
            illegal(format!("Illegal argument: {text}"))
        }
    })
}

/// A path parameter set; a malformed one → ILLEGAL.
pub(super) fn parse_path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, Response> {
    path.map(|p| p.0)
        .map_err(|e| illegal(format!("Illegal path argument: {}", e.body_text())))
}

/// A numeric id (`what` names it in the error) → ILLEGAL when it is not one.
pub(super) fn parse_id(text: &str, what: &str) -> Result<u64, Response> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| illegal(format!("Illegal {what} argument")))
}

/// The position after which a feed (`fetchId`) continues: `-1` is the start, a number up to
/// `head` is where the caller stopped; missing → MISSING, anything else → ILLEGAL.
pub(super) fn feed_cursor(fetch_id: Option<&str>, head: u64) -> Result<u64, Response> {
    match fetch_id.map(str::trim) {
        None | Some("") => Err(missing("Missing fetchId argument")),
        Some("-1") => Ok(0),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= head)
            .ok_or_else(|| illegal("Illegal fetchId argument")),
    }
}
