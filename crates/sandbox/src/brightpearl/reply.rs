//! What every route module shares: the handler context ([`Ctx`]), the answer ([`Reply`], with
//! Brightpearl's `{errors}` envelope) and the resource events a handler raises ([`Event`]).
//!
//! A bottom module: `api` routes to the handler modules and they all answer through this one, so
//! no handler module imports `api` (which imports them).

use axum::http::{StatusCode, Uri};
use brightpearl_models::common::{ApiError, ErrorEnvelope};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::state::SharedState;

/// A handler's answer: status and JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// A whole body as given (`{}` of status PUTs, typed `*Response` structs).
    pub fn raw<T: Serialize>(status: StatusCode, body: T) -> Self {
        Self {
            status,
            body: to_value(body),
        }
    }

    /// `{"errors": [{"code", "message"}]}`.
    pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let envelope = ErrorEnvelope {
            errors: vec![ApiError {
                code: code.to_owned(),
                message: Some(message.into()),
            }],
        };
        Self::raw(status, envelope)
    }

    /// `404 CMNC-404`: Brightpearl's "not found / empty" answer.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::error(StatusCode::NOT_FOUND, "CMNC-404", message)
    }

    /// `400` with a sandbox-chosen code (the real code is not documented).
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::error(StatusCode::BAD_REQUEST, code, message)
    }

    /// `500 CMNC-018`: a search parameter the platform cannot parse (500, not 400, as observed).
    pub fn bad_filter(message: impl Into<String>) -> Self {
        Self::error(StatusCode::INTERNAL_SERVER_ERROR, "CMNC-018", message)
    }

    /// Whether the status is a success.
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }
}

pub fn to_value<T: Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Everything a handler may look at, plus the events it raises.
pub struct Ctx<'a> {
    pub state: &'a SharedState,
    pub account: &'a str,
    pub uri: &'a Uri,
    pub body: &'a [u8],
    pub events: Vec<Event>,
    /// Inside a multi-message.
    pub nested: bool,
}

impl Ctx<'_> {
    pub fn config(&self) -> &super::config::BrightpearlConfig {
        &self.state.config.brightpearl
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.state.clock.now()
    }

    /// The query string through a generated `*Query` type.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, String> {
        axum::extract::Query::<T>::try_from_uri(self.uri)
            .map(|q| q.0)
            .map_err(|e| e.body_text())
    }

    /// The JSON body through a generated request type: no body is `CMNC-010`, a body the spec
    /// rejects is `500 CMNU-003` (bad request body).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Reply> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(Reply::bad_request("CMNC-010", "A JSON body is required"));
        }
        serde_json::from_slice(self.body).map_err(|e| {
            Reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "CMNU-003",
                format!("Bad request body: {e}"),
            )
        })
    }

    pub fn emit(&mut self, full_event: &str, ids: Vec<i64>) {
        if !ids.is_empty() {
            self.events.push(Event::new(full_event, ids));
        }
    }
}

/// A resource event: `{resource}.{lifecycle}[.{specifier}]` and the ids it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub full_event: String,
    pub ids: Vec<i64>,
}

impl Event {
    pub fn new(full_event: &str, ids: Vec<i64>) -> Self {
        Self {
            full_event: full_event.to_owned(),
            ids,
        }
    }

    pub(super) fn parts(&self) -> (String, String, String) {
        let mut parts = self.full_event.splitn(3, '.');
        let resource = parts.next().unwrap_or_default().to_owned();
        let lifecycle = parts.next().unwrap_or_default().to_owned();
        let specifier = parts.next().unwrap_or_default().to_owned();
        (resource, lifecycle, specifier)
    }
}
