//! The one error type of the client, with actionable hints.

use std::fmt;
use std::time::Duration;

use auth_core::{BoxError, RateLimitError, TokenError};
use client_core::SettingsError;
use http::{HeaderMap, StatusCode};
use norce_models::connect::{Job, JobLogEntry, ValidationSummary};

/// At most this much of an error body is kept.
const MAX_BODY: usize = 64 * 1024;

/// Headers that may carry a request id for Norce support.
const REQUEST_ID_HEADERS: &[&str] = &[
    "x-request-id",
    "request-id",
    "x-correlation-id",
    "x-ms-request-id",
    "x-amzn-requestid",
];

/// A non-success answer of a Norce API, kept raw.
#[derive(Clone, PartialEq)]
pub struct ErrorResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The request id Norce sent back, if any (quote it to Norce support).
    pub request_id: Option<String>,
    /// `Retry-After`, when the answer had one.
    pub retry_after: Option<Duration>,
    /// The body as text (truncated to 64 KiB).
    pub body: String,
    /// The body as JSON, when it is JSON. Norce documents no error schema for Services,
    /// Connect or Query; ASP.NET-style `{"Message": ...}` and OData `{"error": {...}}` are
    /// common.
    pub json: Option<serde_json::Value>,
}

impl ErrorResponse {
    /// Captures a response.
    pub fn from_parts(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Self {
        let request_id = REQUEST_ID_HEADERS.iter().find_map(|name| {
            headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
        let json = serde_json::from_slice(body).ok();
        let mut text = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)]).into_owned();
        if body.len() > MAX_BODY {
            text.push_str("…[truncated]");
        }
        Self {
            status,
            request_id,
            retry_after: auth_core::retry::parse_retry_after(headers),
            body: text,
            json,
        }
    }

    /// The human-readable messages in the body: `Message`, `ExceptionMessage`, `error.message`,
    /// `errors`/`ModelState` values, `Messages[]`; the raw text when there is no JSON.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.json {
            Some(json) => collect_messages(json, &mut out, 0),
            None => {
                let text = self.body.trim();
                if !text.is_empty() {
                    out.push(text.chars().take(500).collect());
                }
            }
        }
        out
    }
}

fn collect_messages(value: &serde_json::Value, out: &mut Vec<String>, depth: usize) {
    use serde_json::Value;
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
                let k = key.to_ascii_lowercase();
                if matches!(
                    k.as_str(),
                    "message"
                        | "exceptionmessage"
                        | "messages"
                        | "error"
                        | "errors"
                        | "modelstate"
                        | "error_description"
                        | "detail"
                        | "title"
                ) || depth > 0 && matches!(v, Value::Array(_))
                {
                    collect_messages(v, out, depth + 1);
                }
            }
        }
        _ => {}
    }
}

impl fmt::Debug for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorResponse")
            .field("status", &self.status)
            .field("request_id", &self.request_id)
            .field("retry_after", &self.retry_after)
            .field("body", &self.body)
            .finish()
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        let messages = self.messages();
        if !messages.is_empty() {
            write!(f, ": {}", messages.join("; "))?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

/// Who throttled a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Throttler {
    /// The token endpoint (3 requests per minute per IP address, burst 20).
    TokenEndpoint,
    /// A Services, Connect or Query API (Query's limit is not published).
    Api,
    /// This process's own rate limiter refused to wait longer.
    LocalLimiter,
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
    /// No token: the token endpoint refused the credentials or could not be used.
    #[error("Norce token endpoint: {source}")]
    Token {
        /// What the token source reported (`error` code and description only).
        #[source]
        source: TokenError,
    },
    /// Throttled (HTTP 429, or the local limiter gave up) after the retries allowed.
    #[error("{operation}: throttled by {throttler:?}{}", retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    Throttled {
        /// The operation (`ListOrders3`, ...) or `RequestToken`.
        operation: &'static str,
        /// Who throttled.
        throttler: Throttler,
        /// How long the server asked to wait.
        retry_after: Option<Duration>,
        /// The API's answer, when there was one.
        response: Option<Box<ErrorResponse>>,
    },
    /// 401 from the API even with a freshly fetched token.
    #[error("{operation}: unauthorized (401) even after refreshing the token")]
    Unauthorized {
        /// The operation.
        operation: &'static str,
        /// The answer, when it was kept.
        response: Option<Box<ErrorResponse>>,
    },
    /// 403: the token is valid but not allowed to do this.
    #[error("{operation}: forbidden: {response}")]
    Forbidden {
        /// The operation.
        operation: &'static str,
        /// The answer.
        response: Box<ErrorResponse>,
    },
    /// 400: Norce rejected the request; the messages are data.
    #[error("{operation}: rejected: {response}")]
    Validation {
        /// The operation.
        operation: &'static str,
        /// The messages Norce gave.
        messages: Vec<String>,
        /// The answer.
        response: Box<ErrorResponse>,
    },
    /// Any other non-success answer (404, 409, 5xx, ...).
    #[error("{operation}: Norce answered {response}")]
    Api {
        /// The operation.
        operation: &'static str,
        /// The answer.
        response: Box<ErrorResponse>,
    },
    /// The request timed out.
    #[error("{operation}: timed out: {source}")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The request could not be sent, or the connection broke.
    #[error("{operation}: transport error: {source}")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// The underlying error (`Error::Connect` when nothing was sent).
        #[source]
        source: auth_core::Error,
    },
    /// A success answer that does not match the model.
    #[error("{operation}: cannot decode the {status} answer: {source}")]
    Decode {
        /// The operation.
        operation: &'static str,
        /// The status.
        status: StatusCode,
        /// The body (truncated).
        body: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The answer was well-formed JSON but unusable (e.g. a foreign `@odata.nextLink`).
    #[error("{operation}: unusable answer: {reason}")]
    InvalidResponse {
        /// The operation.
        operation: &'static str,
        /// Why.
        reason: String,
    },
    /// The request was not sent because it is invalid (checked locally).
    #[error("{operation}: invalid request: {reason}")]
    InvalidRequest {
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
    /// Maps an error of the tower stack.
    pub(crate) fn from_stack(operation: &'static str, e: auth_core::Error) -> Self {
        match e {
            auth_core::Error::Token(TokenError::RateLimited { retry_after }) => Self::Throttled {
                operation,
                throttler: Throttler::TokenEndpoint,
                retry_after,
                response: None,
            },
            auth_core::Error::Token(source) => Self::Token { source },
            auth_core::Error::RateLimit(RateLimitError::MaxWaitExceeded { needed, .. }) => {
                Self::Throttled {
                    operation,
                    throttler: Throttler::LocalLimiter,
                    retry_after: Some(needed),
                    response: None,
                }
            }
            auth_core::Error::Unauthorized { .. } => Self::Unauthorized {
                operation,
                response: None,
            },
            other if client_core::is_timeout(&other) => Self::Timeout {
                operation,
                source: Box::new(other),
            },
            other => Self::Transport {
                operation,
                source: other,
            },
        }
    }

    /// Maps a non-success answer.
    pub(crate) fn from_response(operation: &'static str, response: ErrorResponse) -> Self {
        let response = Box::new(response);
        match response.status {
            StatusCode::UNAUTHORIZED => Self::Unauthorized {
                operation,
                response: Some(response),
            },
            StatusCode::FORBIDDEN => Self::Forbidden {
                operation,
                response,
            },
            StatusCode::TOO_MANY_REQUESTS => Self::Throttled {
                operation,
                throttler: Throttler::Api,
                retry_after: response.retry_after,
                response: Some(response),
            },
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Self::Validation {
                operation,
                messages: response.messages(),
                response,
            },
            _ => Self::Api {
                operation,
                response,
            },
        }
    }

    /// The HTTP status Norce answered with, if the error came from an answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Token {
                source: TokenError::Endpoint { status, .. },
            } => Some(*status),
            Self::Throttled {
                throttler: Throttler::TokenEndpoint | Throttler::Api,
                ..
            } => Some(StatusCode::TOO_MANY_REQUESTS),
            Self::Unauthorized { .. } => Some(StatusCode::UNAUTHORIZED),
            Self::Decode { status, .. } => Some(*status),
            other => other.response().map(|r| r.status),
        }
    }

    /// The raw answer, for the variants that keep one.
    pub fn response(&self) -> Option<&ErrorResponse> {
        match self {
            Self::Forbidden { response, .. }
            | Self::Validation { response, .. }
            | Self::Api { response, .. } => Some(response),
            Self::Throttled { response, .. } | Self::Unauthorized { response, .. } => {
                response.as_deref()
            }
            _ => None,
        }
    }

    /// The request id Norce sent with the answer, if any.
    pub fn request_id(&self) -> Option<&str> {
        self.response().and_then(|r| r.request_id.as_deref())
    }

    /// The OAuth `error` code of a token endpoint refusal (e.g. `invalid_client`).
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Self::Token {
                source: TokenError::Endpoint { error, .. },
            } => error.as_deref(),
            _ => None,
        }
    }

    /// The shared classification of this error ([`client_core::ErrorKind`]).
    pub fn kind(&self) -> client_core::ErrorKind {
        use client_core::ErrorKind as Kind;
        match self {
            Self::Throttled { .. } => Kind::Throttled,
            Self::Unauthorized { .. } | Self::Forbidden { .. } => Kind::Unauthorized,
            Self::Token { source } if source.is_permanent() => Kind::Unauthorized,
            _ if self.is_transient() => Kind::Transient,
            _ => Kind::Permanent,
        }
    }

    /// Whether trying again later may succeed without changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::Timeout { .. } | Self::JobTimeout { .. } => true,
            Self::Transport { .. } => true,
            Self::Token { source } => !source.is_permanent(),
            Self::Api { response, .. } => response.status.is_server_error(),
            _ => false,
        }
    }

    /// Actionable advice for an operator, naming the setting to check. Used by `relay verify`.
    ///
    /// ```
    /// use norce_client::Error;
    /// let err = Error::Token { source: auth_core::TokenError::Endpoint {
    ///     status: http::StatusCode::UNAUTHORIZED, error: Some("invalid_client".into()), description: None } };
    /// assert!(err.hint().contains("NORCE_CLIENT_SECRET"));
    /// ```
    pub fn hint(&self) -> String {
        match self {
            Self::Settings(e) => format!(
                "set `{}` correctly (see the norce-client README for every NORCE_* variable)",
                e.setting()
            ),
            Self::Token { source } => token_hint(source),
            Self::Throttled {
                throttler,
                retry_after,
                ..
            } => {
                let wait = retry_after
                    .map(|d| format!("wait {}s and ", d.as_secs().max(1)))
                    .unwrap_or_default();
                match throttler {
                    Throttler::TokenEndpoint => format!(
                        "the Norce token endpoint allows 3 requests per minute per IP address (burst 20): {wait}make sure tokens are cached (build clients in one process, not one process per call)"
                    ),
                    Throttler::Api => format!(
                        "Norce is throttling this API: {wait}lower the request rate (Query's limit is not published)"
                    ),
                    Throttler::LocalLimiter => format!(
                        "the local rate limiter would have had to wait too long: {wait}retry later"
                    ),
                }
            }
            Self::Unauthorized { .. } => "the API refused a freshly issued token: check that NORCE_STAGE (or NORCE_SCOPE / NORCE_LEGACY_LAB_SCOPE) matches the environment of the host, and that NORCE_CLIENT_ID belongs to this tenant".to_owned(),
            Self::Forbidden { .. } => "the integration user is not allowed to do this: check NORCE_APPLICATION_ID and the user's roles in Norce Admin (Settings > Users > OAUTH)".to_owned(),
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
            Self::Api { response, operation } => match response.status {
                StatusCode::NOT_FOUND if *operation == "GetApplication" => "Norce does not know this application: check NORCE_APPLICATION_ID (the numeric id of the Application in Norce Admin)".to_owned(),
                StatusCode::NOT_FOUND => "the path does not exist on this host: check NORCE_BASE_URL, or NORCE_CLIENT_SLUG / NORCE_REGION / NORCE_STAGE (or the id you asked for)".to_owned(),
                s if s.is_server_error() => format!(
                    "Norce had a server error; retry later{}",
                    response
                        .request_id
                        .as_deref()
                        .map(|id| format!(" and quote request id {id} to Norce support"))
                        .unwrap_or_default()
                ),
                _ => "Norce refused the request; see the status and body".to_owned(),
            },
            Self::Timeout { .. } => "Norce did not answer in time: check connectivity, or raise NORCE_TIMEOUT_SECS".to_owned(),
            Self::Transport { source, .. } if source.is_connect() => "cannot connect: check NORCE_BASE_URL, or NORCE_CLIENT_SLUG / NORCE_REGION / NORCE_STAGE, and the network (DNS, proxy, firewall)".to_owned(),
            Self::Transport { .. } => "the connection to Norce broke; retry (the request may have been processed)".to_owned(),
            Self::Decode { .. } | Self::InvalidResponse { .. } => "Norce answered something this client does not understand; report it with the body".to_owned(),
            Self::InvalidRequest { reason, .. } => format!("fix the request: {reason}"),
            Self::JobFailed(failure) => {
                if failure.job.status_id == 4 {
                    "the import failed validation: fix the rows listed in the job log (codes must exist in Norce Admin)".to_owned()
                } else {
                    "the import job failed: see the job log".to_owned()
                }
            }
            Self::JobTimeout { .. } => "the job is still running: wait longer (raise the wait timeout) or check it later with Job/Get".to_owned(),
        }
    }
}

fn token_hint(source: &TokenError) -> String {
    match source {
        TokenError::Endpoint { status, error, .. } => match error.as_deref() {
            Some("invalid_client" | "unauthorized_client") => {
                "the token endpoint rejected the client: check NORCE_CLIENT_ID and NORCE_CLIENT_SECRET (or NORCE_CLIENT_SECRET_FILE); the secret is shown only once when the integration user is created".to_owned()
            }
            Some("invalid_scope") => {
                "the token endpoint rejected the scope: check NORCE_STAGE, or set NORCE_SCOPE (`prod` and `production` are both documented) / NORCE_LEGACY_LAB_SCOPE=true (older tenants expect `lab` and `production`)".to_owned()
            }
            Some(_) => "the token endpoint refused the request: check NORCE_CLIENT_ID, NORCE_CLIENT_SECRET and NORCE_STAGE".to_owned(),
            None if *status == StatusCode::NOT_FOUND => {
                "no token endpoint at this address: check NORCE_BASE_URL, or NORCE_CLIENT_SLUG / NORCE_REGION / NORCE_STAGE (or NORCE_LEGACY_STORM_IDENTITY)".to_owned()
            }
            None => "the token endpoint refused the request: check NORCE_CLIENT_ID and NORCE_CLIENT_SECRET".to_owned(),
        },
        TokenError::RateLimited { .. } => "the token endpoint allows 3 requests per minute per IP address: wait and make sure tokens are cached".to_owned(),
        TokenError::Transport(_) => "cannot reach the token endpoint: check NORCE_BASE_URL, or NORCE_CLIENT_SLUG / NORCE_REGION / NORCE_STAGE, and the network".to_owned(),
        TokenError::InvalidResponse(_) => "the token endpoint answered without a usable token: check that NORCE_BASE_URL points at Norce".to_owned(),
        TokenError::Timeout(_) => "the token endpoint did not answer in time: check connectivity".to_owned(),
        _ => "no token could be obtained: check NORCE_CLIENT_ID and NORCE_CLIENT_SECRET".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_from_common_bodies() {
        let r = ErrorResponse::from_parts(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"Message":"The request is invalid.","ModelState":{"x":["ApplicationId is missing"]}}"#,
        );
        assert_eq!(
            r.messages(),
            vec!["The request is invalid.", "ApplicationId is missing"]
        );
        let e = Error::from_response("GetApplication", r);
        assert!(e.hint().contains("NORCE_APPLICATION_ID"), "{}", e.hint());
        let odata = ErrorResponse::from_parts(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":{"code":"","message":"bad $filter"}}"#,
        );
        assert_eq!(odata.messages(), vec!["bad $filter"]);
        let text =
            ErrorResponse::from_parts(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"upstream down");
        assert_eq!(text.messages(), vec!["upstream down"]);
    }
}
