//! The one error type of the client: the settings, the shared request path's [`Failure`], and
//! what only Norce means (its validation messages, import jobs, unusable Query answers).

use std::time::Duration;

use client_core::{ErrorKind, Failure, HttpFailure, Platform, SettingsError};
use http::StatusCode;
use models_runtime::OperationInfo;
use norce_models::connect::{Job, JobLogEntry, ValidationSummary};

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
                Error::Validation {
                    messages: messages(&failure),
                    failure,
                }
            }
            other => Error::Failure(other),
        }
    }

    /// Every Norce call asks for JSON, also those answering no body.
    fn accept(_: &OperationInfo) -> Option<&'static str> {
        Some("application/json")
    }
}

/// The human-readable messages of an answer: `Message`, `ExceptionMessage`, `error.message`,
/// `errors`/`ModelState` values, `Messages[]` (Norce documents no error schema; ASP.NET-style
/// and OData bodies are common); the raw text when it is not JSON.
pub(crate) fn messages(failure: &HttpFailure) -> Vec<String> {
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

fn collect_messages(value: &serde_json::Value, out: &mut Vec<String>, depth: usize) {
    use serde_json::Value;
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
    if depth > 4 {
        return;
    }
    match value {
        Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_messages(v, out, depth + 1)),
        Value::Object(map) => {
            for (key, v) in map {
                if KEYS.contains(&key.to_ascii_lowercase().as_str())
                    || depth > 0 && matches!(v, Value::Array(_))
                {
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
    /// The log entries with severity Error (3) or Warning (2), plus validation messages.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .validation_summary
            .iter()
            .flat_map(|v| v.messages.iter().flatten().cloned())
            .collect();
        out.extend(
            self.log
                .iter()
                .filter(|e| e.severity_id >= 2)
                .map(|e| e.message.clone()),
        );
        out
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
    /// The call failed on the shared request path: not sent, no answer in time, a broken
    /// connection, no token, throttled, a non-success answer (other than 400/422), a success
    /// answer that does not decode, or a request refused before sending.
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
    /// The answer was well-formed but unusable (a foreign `@odata.nextLink`, a `JobId` that is
    /// not a number).
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
        Self::Failure(Failure::InvalidRequest {
            operation,
            reason: reason.into(),
        })
    }

    /// The HTTP status Norce (or its token endpoint) answered with, if any.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Failure(failure) => failure.status(),
            Self::Validation { failure, .. } => Some(failure.status),
            _ => None,
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
                source: auth_core::TokenError::Endpoint { error, .. },
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

    /// Whether trying again later may succeed without changing anything: transient,
    /// throttled, and also an ambiguous write (which [`Self::kind`] tells apart: find out
    /// whether it was carried out before sending it again).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Transient | ErrorKind::Throttled | ErrorKind::AmbiguousWrite
        )
    }

    /// Actionable advice for an operator, naming the setting to check. Used by `relay verify`.
    ///
    /// ```
    /// use norce_client::{Error, Failure};
    /// let err = Error::Failure(Failure::Token { operation: "RequestToken", source: auth_core::TokenError::Endpoint {
    ///     status: http::StatusCode::UNAUTHORIZED, error: Some("invalid_client".into()), description: None } });
    /// assert!(err.hint().contains("NORCE_CLIENT_SECRET"));
    /// ```
    pub fn hint(&self) -> String {
        let wait = |after: Option<Duration>| {
            after
                .map(|d| format!("wait {}s and ", d.as_secs().max(1)))
                .unwrap_or_default()
        };
        match self {
            Self::Settings(e) => format!(
                "set `{}` correctly (see the norce-client README for every NORCE_* variable)",
                e.setting()
            ),
            Self::Failure(failure) => failure_hint(failure, wait(failure.retry_after())),
            Self::Validation { messages, .. } => {
                let text = messages.join(" ").to_ascii_lowercase();
                if text.contains("application") {
                    "Norce rejected the ApplicationId: check NORCE_APPLICATION_ID (the numeric id of the Application in Norce Admin)".to_owned()
                } else if text.contains("accountid") || text.contains("account id") {
                    "Norce rejected the AccountId of the X-StormConnect-Header: use the integration's system account id from Norce Admin".to_owned()
                } else {
                    "Norce rejected the request data; see the messages (codes such as WarehouseCode or PriceListCode must exist in Norce Admin)".to_owned()
                }
            }
            Self::InvalidResponse { .. } => "Norce answered something this client does not understand; report it with the body".to_owned(),
            Self::JobFailed(failure) if failure.job.status_id == 4 => "the import failed validation: fix the rows listed in the job log (codes must exist in Norce Admin)".to_owned(),
            Self::JobFailed(_) => "the import job failed: see the job log".to_owned(),
            Self::JobTimeout { .. } => "the job is still running: wait longer (raise the wait timeout) or check it later with Job/Get".to_owned(),
        }
    }
}

fn failure_hint(failure: &Failure, wait: String) -> String {
    use auth_core::TokenError as T;
    match failure {
        Failure::Token { source: T::RateLimited { .. }, .. } => format!(
            "the Norce token endpoint allows 3 requests per minute per IP address (burst 20): {wait}make sure tokens are cached (build clients in one process, not one process per call)"
        ),
        Failure::Token { source, .. } => token_hint(source).to_owned(),
        Failure::RateLimit { .. } => format!("the local rate limiter would have had to wait too long: {wait}retry later"),
        Failure::Http(http) => match http.status {
            StatusCode::TOO_MANY_REQUESTS => format!("Norce is throttling this API: {wait}lower the request rate (Query's limit is not published)"),
            StatusCode::UNAUTHORIZED => "the API refused a freshly issued token: check that NORCE_STAGE (or NORCE_SCOPE / NORCE_LEGACY_LAB_SCOPE) matches the environment of the host, and that NORCE_CLIENT_ID belongs to this tenant".to_owned(),
            StatusCode::FORBIDDEN => "the integration user is not allowed to do this: check NORCE_APPLICATION_ID and the user's roles in Norce Admin (Settings > Users > OAUTH)".to_owned(),
            StatusCode::NOT_FOUND if http.operation == "GetApplication" => "Norce does not know this application: check NORCE_APPLICATION_ID (the numeric id of the Application in Norce Admin)".to_owned(),
            StatusCode::NOT_FOUND => "the path does not exist on this host: check NORCE_BASE_URL, or NORCE_CLIENT_SLUG / NORCE_REGION / NORCE_STAGE (or the id you asked for)".to_owned(),
            s if s.is_server_error() => format!(
                "Norce had a server error; retry later{}",
                http.request_id.as_deref().map(|id| format!(" and quote request id {id} to Norce support")).unwrap_or_default()
            ),
            _ => "Norce refused the request; see the status and body".to_owned(),
        },
        Failure::Timeout { .. } => "Norce did not answer in time: check connectivity, or raise NORCE_TIMEOUT_SECS".to_owned(),
        Failure::NotSent { .. } => "cannot connect: check NORCE_BASE_URL, or NORCE_CLIENT_SLUG / NORCE_REGION / NORCE_STAGE, and the network (DNS, proxy, firewall)".to_owned(),
        Failure::Decode { .. } => "Norce answered something this client does not understand; report it with the body".to_owned(),
        Failure::InvalidRequest { reason, .. } => format!("fix the request: {reason}"),
        _ => "the connection to Norce broke; retry (the request may have been processed)".to_owned(),
    }
}

fn token_hint(source: &auth_core::TokenError) -> &'static str {
    use auth_core::TokenError as T;
    match source {
        T::Endpoint {
            error: Some(code), ..
        } if code == "invalid_client" || code == "unauthorized_client" => {
            "the token endpoint rejected the client: check NORCE_CLIENT_ID and NORCE_CLIENT_SECRET (or NORCE_CLIENT_SECRET_FILE); the secret is shown only once when the integration user is created"
        }
        T::Endpoint {
            error: Some(code), ..
        } if code == "invalid_scope" => {
            "the token endpoint rejected the scope: check NORCE_STAGE, or set NORCE_SCOPE (`prod` and `production` are both documented) / NORCE_LEGACY_LAB_SCOPE=true (older tenants expect `lab` and `production`)"
        }
        T::Endpoint { error: Some(_), .. } => {
            "the token endpoint refused the request: check NORCE_CLIENT_ID, NORCE_CLIENT_SECRET and NORCE_STAGE"
        }
        T::Endpoint {
            status: StatusCode::NOT_FOUND,
            ..
        } => {
            "no token endpoint at this address: check NORCE_BASE_URL, or NORCE_CLIENT_SLUG / NORCE_REGION / NORCE_STAGE (or NORCE_LEGACY_STORM_IDENTITY)"
        }
        T::Endpoint { .. } => {
            "the token endpoint refused the request: check NORCE_CLIENT_ID and NORCE_CLIENT_SECRET"
        }
        T::Transport(_) => {
            "cannot reach the token endpoint: check NORCE_BASE_URL, or NORCE_CLIENT_SLUG / NORCE_REGION / NORCE_STAGE, and the network"
        }
        T::InvalidResponse(_) => {
            "the token endpoint answered without a usable token: check that NORCE_BASE_URL points at Norce"
        }
        T::Timeout(_) => "the token endpoint did not answer in time: check connectivity",
        _ => "no token could be obtained: check NORCE_CLIENT_ID and NORCE_CLIENT_SECRET",
    }
}
