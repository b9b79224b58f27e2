//! The one error type: settings, the shared request path's [`Failure`], and what only Norce
//! means (validation messages, import jobs, unusable Query answers).

use std::time::Duration;

use auth_core::TokenError;
use client_core::{ErrorKind, Failure, HttpFailure, Platform, SettingsError};
use http::StatusCode;
use models_runtime::OperationInfo;
use norce_models::connect::{Job, JobLogEntry, ValidationSummary};
use serde_json::Value;

/// Norce on the shared request engine.
pub(crate) enum Norce {}

impl Platform for Norce {
    const NAME: &'static str = "norce";
    const REQUEST_ID_HEADERS: &'static [&'static str] = &[
        "x-request-id",
        "request-id",
        "x-correlation-id",
        "x-ms-request-id",
        "x-amzn-requestid",
    ];
    type Error = Error;

    fn error(failure: Failure) -> Error {
        match failure {
            Failure::Http(failure) if matches!(failure.status.as_u16(), 400 | 422) => {
                let messages = messages(&failure);
                Error::Validation { messages, failure }
            }
            other => Error::Failure(other),
        }
    }

    /// Every Norce call asks for JSON, also those answering no body.
    fn accept(_: &OperationInfo) -> Option<&'static str> {
        Some("application/json")
    }
    fn error_kind(error: &Error) -> Option<ErrorKind> {
        Some(error.kind())
    }
}

/// The messages of an answer (Norce documents no error schema; ASP.NET-style and OData bodies
/// are common), or its raw text when it is not JSON.
fn messages(failure: &HttpFailure) -> Vec<String> {
    let mut out = Vec::new();
    match failure.json() {
        Some(json) => collect_messages(&json, &mut out, 0),
        None if !failure.body.trim().is_empty() => {
            out.push(failure.body.trim().chars().take(500).collect());
        }
        None => {}
    }
    out
}

/// Strings under message-like keys (any case), and in arrays below the top level.
fn collect_messages(value: &Value, out: &mut Vec<String>, depth: usize) {
    const KEYS: &[&str] = &[
        "message",
        "exceptionmessage",
        "messages",
        "error",
        "errors",
        "modelstate",
        "error_description",
        "detail",
        "title",
    ];
    match value {
        _ if depth > 4 => {}
        Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_messages(v, out, depth + 1)),
        Value::Object(map) => {
            for (key, v) in map {
                if KEYS.contains(&key.to_ascii_lowercase().as_str()) || depth > 0 && v.is_array() {
                    collect_messages(v, out, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// A finished import job that did not succeed, with everything Norce said about it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFailure {
    /// The job as `Job/Get` last returned it.
    pub job: Job,
    /// The validation summary of the import's `JobResponse`, when known.
    pub validation_summary: Option<ValidationSummary>,
    /// The job log (`Job/GetLog`); empty if it could not be read.
    pub log: Vec<JobLogEntry>,
}

impl JobFailure {
    /// The validation messages, then the log entries with severity Warning (2) or Error (3).
    pub fn problems(&self) -> Vec<String> {
        let summary = self.validation_summary.iter();
        let validation = summary.flat_map(|v| v.messages.iter().flatten().cloned());
        let log = self.log.iter().filter(|e| e.severity_id >= 2);
        validation.chain(log.map(|e| e.message.clone())).collect()
    }
}

/// Everything that can go wrong. Never contains a secret: token endpoint failures keep only
/// the OAuth `error`/`error_description`, bearer tokens never appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or malformed (the message names it).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The shared request path failed: not sent, no answer in time, a broken connection, no
    /// token, throttled, a non-success answer (other than 400/422), a success answer that does
    /// not decode, or a request refused before sending.
    #[error("Norce {0}")]
    Failure(#[from] Failure),
    /// 400/422: Norce rejected the request; its messages are data.
    #[error("{}: Norce rejected the request ({}): {}{}", failure.operation, failure.status,
        messages.join("; "), failure.request_id.as_deref().map(|id| format!(" (request id {id})")).unwrap_or_default())]
    Validation {
        /// The messages Norce gave.
        messages: Vec<String>,
        /// The answer.
        failure: Box<HttpFailure>,
    },
    /// A well-formed but unusable answer (a foreign `@odata.nextLink`, a non-numeric `JobId`).
    #[error("{operation}: unusable answer: {reason}")]
    InvalidResponse {
        /// The operation.
        operation: &'static str,
        /// Why.
        reason: String,
    },
    /// An import job finished as Failed (3) or Validation failed (4).
    #[error("job {} failed with status {}: {}", .0.job.job_id, .0.job.status_id, .0.problems().join("; "))]
    JobFailed(Box<JobFailure>),
    /// An import job did not finish within the wait's timeout.
    #[error("job {job_id} did not finish within {waited:?} (last status {})", last_status.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into()))]
    JobTimeout {
        /// The job id.
        job_id: i32,
        /// How long we waited.
        waited: Duration,
        /// The last `StatusId` seen.
        last_status: Option<i32>,
    },
}

impl Error {
    /// A request refused before sending.
    pub(crate) fn invalid(operation: &'static str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::Failure(Failure::InvalidRequest { operation, reason })
    }

    /// The HTTP status Norce (or its token endpoint) answered with, if any.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Failure(failure) => failure.status(),
            _ => Some(self.response()?.status),
        }
    }

    /// The raw answer, for the errors that come from one.
    pub fn response(&self) -> Option<&HttpFailure> {
        match self {
            Self::Failure(failure) => failure.http(),
            Self::Validation { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// The request id Norce sent with the answer, if any.
    pub fn request_id(&self) -> Option<&str> {
        self.response()?.request_id.as_deref()
    }

    /// The OAuth `error` code of a token endpoint refusal (e.g. `invalid_client`).
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Self::Failure(Failure::Token {
                source: TokenError::Endpoint { error, .. },
                ..
            }) => error.as_deref(),
            _ => None,
        }
    }

    /// The shared classification of this error ([`client_core::ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Failure(failure) => failure.kind(),
            Self::JobTimeout { .. } => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        }
    }

    /// Whether trying again later may succeed unchanged: transient, throttled, or an ambiguous
    /// write ([`Self::kind`] tells them apart).
    pub fn is_transient(&self) -> bool {
        use ErrorKind::*;
        matches!(self.kind(), Transient | Throttled | AmbiguousWrite)
    }

    /// Advice for an operator, naming the setting to check (used by `relay verify`).
    pub fn hint(&self) -> String {
        match self {
            Self::Settings(e) => format!(
                "set `{}` correctly (see the norce-client README for every NORCE_* variable)",
                e.setting()
            ),
            Self::Failure(failure) => failure_hint(failure),
            Self::Validation { messages, .. } => {
                let text = messages.join(" ").to_ascii_lowercase();
                if text.contains("application") {
                    "Norce rejected the ApplicationId: check NORCE_APPLICATION_ID (the numeric id of the Application in Norce Admin)".into()
                } else if text.contains("accountid") || text.contains("account id") {
                    "Norce rejected the AccountId of the X-StormConnect-Header: use the integration's system account id from Norce Admin".into()
                } else {
                    "Norce rejected the request data; see the messages (codes such as WarehouseCode or PriceListCode must exist in Norce Admin)".into()
                }
            }
            Self::InvalidResponse { .. } => UNREADABLE.into(),
            Self::JobFailed(failure) if failure.job.status_id == 4 => {
                "the import failed validation: fix the rows listed in the job log (codes must exist in Norce Admin)".into()
            }
            Self::JobFailed(_) => "the import job failed: see the job log".into(),
            Self::JobTimeout { .. } => {
                "the job is still running: wait longer (raise the wait timeout) or check it later with Job/Get".into()
            }
        }
    }
}

const UNREADABLE: &str =
    "Norce answered something this client does not understand; report it with the body";
const HOST: &str = "check NORCE_BASE_URL, or NORCE_CLIENT_SLUG / NORCE_REGION / NORCE_STAGE";

fn failure_hint(failure: &Failure) -> String {
    let wait = (failure.retry_after())
        .map(|d| format!("wait {}s and ", d.as_secs().max(1)))
        .unwrap_or_default();
    match failure {
        Failure::Token {
            source: TokenError::RateLimited { .. },
            ..
        } => format!(
            "the Norce token endpoint allows 3 requests per minute per IP address (burst 20): {wait}make sure tokens are cached (build clients in one process, not one process per call)"
        ),
        Failure::Token { source, .. } => token_hint(source),
        Failure::RateLimit { .. } => {
            format!("the local rate limiter would have had to wait too long: {wait}retry later")
        }
        Failure::Http(http) => match http.status {
            StatusCode::TOO_MANY_REQUESTS => format!(
                "Norce is throttling this API: {wait}lower the request rate (Query's limit is not published)"
            ),
            StatusCode::UNAUTHORIZED => {
                "the API refused a freshly issued token: check that NORCE_STAGE (or NORCE_SCOPE / NORCE_LEGACY_LAB_SCOPE) matches the environment of the host, and that NORCE_CLIENT_ID belongs to this tenant".into()
            }
            StatusCode::FORBIDDEN => {
                "the integration user is not allowed to do this: check NORCE_APPLICATION_ID and the user's roles in Norce Admin (Settings > Users > OAUTH)".into()
            }
            StatusCode::NOT_FOUND if http.operation == "GetApplication" => {
                "Norce does not know this application: check NORCE_APPLICATION_ID (the numeric id of the Application in Norce Admin)".into()
            }
            StatusCode::NOT_FOUND => {
                format!("the path does not exist on this host: {HOST} (or the id you asked for)")
            }
            s if s.is_server_error() => {
                let quote = (http.request_id.as_deref())
                    .map(|id| format!(" and quote request id {id} to Norce support"));
                format!("Norce had a server error; retry later{}", quote.unwrap_or_default())
            }
            _ => "Norce refused the request; see the status and body".into(),
        },
        Failure::Timeout { .. } => {
            "Norce did not answer in time: check connectivity, or raise NORCE_TIMEOUT_SECS".into()
        }
        Failure::NotSent { .. } => {
            format!("cannot connect: {HOST}, and the network (DNS, proxy, firewall)")
        }
        Failure::Decode { .. } => UNREADABLE.into(),
        Failure::InvalidRequest { reason, .. } => format!("fix the request: {reason}"),
        _ => "the connection to Norce broke; retry (the request may have been processed)".into(),
    }
}

fn token_hint(source: &TokenError) -> String {
    let code = match source {
        TokenError::Endpoint { error, .. } => error.as_deref(),
        _ => None,
    };
    match (source, code) {
        (_, Some("invalid_client" | "unauthorized_client")) => {
            "the token endpoint rejected the client: check NORCE_CLIENT_ID and NORCE_CLIENT_SECRET (or NORCE_CLIENT_SECRET_FILE); the secret is shown only once when the integration user is created".into()
        }
        (_, Some("invalid_scope")) => {
            "the token endpoint rejected the scope: check NORCE_STAGE, or set NORCE_SCOPE (`prod` and `production` are both documented) / NORCE_LEGACY_LAB_SCOPE=true (older tenants expect `lab` and `production`)".into()
        }
        (_, Some(_)) => {
            "the token endpoint refused the request: check NORCE_CLIENT_ID, NORCE_CLIENT_SECRET and NORCE_STAGE".into()
        }
        (TokenError::Endpoint { status, .. }, _) if *status == StatusCode::NOT_FOUND => {
            format!("no token endpoint at this address: {HOST} (or NORCE_LEGACY_STORM_IDENTITY)")
        }
        (TokenError::Endpoint { .. }, _) => {
            "the token endpoint refused the request: check NORCE_CLIENT_ID and NORCE_CLIENT_SECRET".into()
        }
        (TokenError::Transport(_), _) => {
            format!("cannot reach the token endpoint: {HOST}, and the network")
        }
        (TokenError::InvalidResponse(_), _) => {
            "the token endpoint answered without a usable token: check that NORCE_BASE_URL points at Norce".into()
        }
        (TokenError::Timeout(_), _) => {
            "the token endpoint did not answer in time: check connectivity".into()
        }
        _ => "no token could be obtained: check NORCE_CLIENT_ID and NORCE_CLIENT_SECRET".into(),
    }
}
