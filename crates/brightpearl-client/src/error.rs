//! The one error type: the settings, the shared request path's [`Failure`], and what only
//! Brightpearl means (its error list, its throttle answers, "nothing found", search rows).

use std::time::Duration;

use brightpearl_models::common::{ApiError, ErrorEnvelope};
use brightpearl_models::{RowDecodeError, error_summary};
use client_core::{ErrorKind, Failure, HttpFailure, Platform, SettingsError};
use http::{HeaderMap, StatusCode};
use models_runtime::OperationInfo;

/// Brightpearl on the shared request engine.
pub(crate) enum Brightpearl {}

impl Platform for Brightpearl {
    const NAME: &'static str = "brightpearl";
    const REQUEST_ID_HEADERS: &'static [&'static str] = &["ruid"];
    type Error = Error;

    /// An answer with Brightpearl's error list is [`Error::Api`]; anything else stays as it is.
    fn error(failure: Failure) -> Error {
        match failure {
            Failure::Http(failure) => match api_errors(failure.body.as_bytes()) {
                errors if errors.is_empty() => Error::Failure(Failure::Http(failure)),
                errors => Error::Api { errors, failure },
            },
            other => Error::Failure(other),
        }
    }

    /// JSON for every call, also those answering `{}` (status PUTs, DELETEs).
    fn accept(_: &OperationInfo) -> Option<&'static str> {
        Some("application/json")
    }
    /// Brightpearl's throttle and bad-input codes refine the failure's kind.
    fn error_kind(error: &Error) -> Option<ErrorKind> {
        Some(error.kind())
    }
}

/// The header with the milliseconds until the throttle window moves.
const THROTTLE_PERIOD: &str = "brightpearl-next-throttle-period";

/// 5xx codes that mean bad input (a search filter or body Brightpearl cannot parse), not an
/// outage: trying again unchanged fails the same way.
const BAD_INPUT_CODES: [&str; 3] = ["CMNC-018", "CMNC-044", "CMNU-003"];

/// The `{"errors": [{code, message}]}` of an answer; none when the body has none.
pub(crate) fn api_errors(body: &[u8]) -> Vec<ApiError> {
    serde_json::from_slice::<ErrorEnvelope>(body).map_or_else(|_| Vec::new(), |e| e.errors)
}

/// Whether an answer is Brightpearl's throttle (the call was not processed): a 429, or a 503
/// with `brightpearl-next-throttle-period` or its "too many requests, please wait" text.
pub(crate) fn is_throttle(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> bool {
    let text = || String::from_utf8_lossy(body).to_ascii_lowercase();
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::SERVICE_UNAVAILABLE
            && (headers.contains_key(THROTTLE_PERIOD)
                || text().contains("too many requests")
                || text().contains("please wait"))
}

/// Whether an answer is Brightpearl's "nothing found": `404` with `CMNC-404`.
pub(crate) fn is_nothing_found(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::NOT_FOUND && api_errors(body).iter().any(|e| e.code == "CMNC-404")
}

/// Every failure of the Brightpearl client. Never contains a token or secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or malformed (the message names it).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The shared request path failed: not sent, timeout, transport, token, our limiter, an
    /// answer without Brightpearl's error list (a 401, a throttle 503), a body that does not
    /// decode, or a request refused before sending (a bad argument).
    #[error("Brightpearl {0}")]
    Failure(#[from] Failure),
    /// Brightpearl refused the call with its error list (`ORDC-005`, `INTC-064`, `404
    /// CMNC-404` on a write, `500 CMNC-018` for a bad search filter).
    #[error("{}: Brightpearl answered {}: {}{}", failure.operation, failure.status, error_summary(errors),
        failure.request_id.as_deref().map(|id| format!(" (Ruid {id})")).unwrap_or_default())]
    Api {
        /// The `errors` entries (at least one).
        errors: Vec<ApiError>,
        /// The answer (status, headers, `Ruid` request id, body).
        failure: Box<HttpFailure>,
    },
    /// Search rows that do not decode into the asked row type (matched by column name).
    #[error("Brightpearl search rows: {0}")]
    SearchRows(#[from] RowDecodeError),
    /// More messages than one multi-message call may carry; nothing was sent.
    #[error("a multi-message call carries at most {max} messages, got {count}")]
    TooManyMessages {
        /// Messages given.
        count: usize,
        /// The limit (10).
        max: usize,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Brightpearl's "nothing found" (`404 CMNC-404` to a GET or an `OPTIONS`) on the result of
/// a read, e.g. `client.list_webhooks(&path).await.or_empty()?`. Not for writes: there the
/// same answer is an error.
pub trait NothingFound<T> {
    /// "Nothing found" as `None`; any other error stays one.
    fn found(self) -> Result<Option<T>>;
    /// "Nothing found" as the empty answer.
    fn or_empty(self) -> Result<T>
    where
        T: Default;
}

impl<T> NothingFound<T> for Result<T> {
    fn found(self) -> Result<Option<T>> {
        match self {
            Err(e)
                if e.response()
                    .is_some_and(|f| is_nothing_found(f.status, f.body.as_bytes())) =>
            {
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    fn or_empty(self) -> Result<T>
    where
        T: Default,
    {
        Ok(self.found()?.unwrap_or_default())
    }
}

impl Error {
    /// A request refused before sending (a bad argument).
    pub(crate) fn invalid(operation: &'static str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::Failure(Failure::InvalidRequest { operation, reason })
    }

    /// The answer, for the errors that come from one.
    pub fn response(&self) -> Option<&HttpFailure> {
        match self {
            Self::Failure(failure) => failure.http(),
            Self::Api { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// The HTTP status Brightpearl (or its token endpoint) answered with, if any.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Failure(failure) => failure.status(),
            _ => Some(self.response()?.status),
        }
    }

    /// Brightpearl's request id (`Ruid`), to quote to support.
    pub fn request_id(&self) -> Option<&str> {
        self.response()?.request_id.as_deref()
    }

    /// Brightpearl's error list (empty unless the answer had `errors`).
    pub fn api_errors(&self) -> &[ApiError] {
        match self {
            Self::Api { errors, .. } => errors,
            _ => &[],
        }
    }

    /// Whether any of Brightpearl's errors carries `code` (e.g. `CMNC-404`).
    pub fn has_code(&self, code: &str) -> bool {
        self.api_errors().iter().any(|e| e.code == code)
    }

    /// Whether the answer was Brightpearl's throttle (still, after the limiter's pauses).
    pub fn is_throttle(&self) -> bool {
        self.response()
            .is_some_and(|f| is_throttle(f.status, &f.headers, f.body.as_bytes()))
    }

    /// How long to wait before trying again, when known: `brightpearl-next-throttle-period`,
    /// `Retry-After`, or what the token endpoint or our limiter said.
    pub fn retry_after(&self) -> Option<Duration> {
        let header = self.response().and_then(|f| f.headers.get(THROTTLE_PERIOD));
        let period = header.and_then(|v| v.to_str().ok()?.trim().parse().ok());
        match self {
            Self::Failure(failure) => period.map(Duration::from_millis).or(failure.retry_after()),
            Self::Api { failure, .. } => period.map(Duration::from_millis).or(failure.retry_after),
            _ => None,
        }
    }

    /// The shared [`ErrorKind`]: the failure's own, except that Brightpearl's throttle is
    /// `Throttled` and a 5xx with a bad-input code (`CMNC-018`, `CMNC-044`, `CMNU-003`) is
    /// `Permanent`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Failure(_) | Self::Api { .. } if self.is_throttle() => ErrorKind::Throttled,
            Self::Api { errors, failure } if failure.status.is_server_error() => {
                let bad_input = errors.iter().any(|e| BAD_INPUT_CODES.contains(&&*e.code));
                if bad_input {
                    ErrorKind::Permanent
                } else {
                    failure.kind()
                }
            }
            Self::Api { failure, .. } => failure.kind(),
            Self::Failure(failure) => failure.kind(),
            Self::Settings(_) | Self::SearchRows(_) | Self::TooManyMessages { .. } => {
                ErrorKind::Permanent
            }
        }
    }

    /// Whether trying again later, unchanged, may succeed ([`ErrorKind::is_retryable`]).
    pub fn is_transient(&self) -> bool {
        self.kind().is_retryable()
    }

    /// Actionable advice naming the settings involved, for `relay verify` and logs.
    pub fn hint(&self) -> String {
        match self {
            Self::Settings(e) => format!("fix {}: {e}", e.setting()),
            Self::SearchRows(_) => "the search rows do not fit the row type: ask for the columns it needs (SearchQuery::columns)".into(),
            Self::TooManyMessages { max, .. } => {
                format!("split the messages into calls of at most {max}")
            }
            Self::Api { failure, .. } => self.answer_hint(failure).into(),
            Self::Failure(Failure::Http(failure)) => self.answer_hint(failure).into(),
            Self::Failure(failure) => failure_hint(failure),
        }
    }

    fn answer_hint(&self, failure: &HttpFailure) -> &'static str {
        // Brightpearl's 401 body is `{"response": "<why>"}`.
        let message = failure
            .json()
            .and_then(|json| Some(json.get("response")?.as_str()?.to_ascii_lowercase()))
            .unwrap_or_default();
        match failure.status.as_u16() {
            401 if message.contains("app-ref") || message.contains("app reference") => {
                "the app reference was refused: check BRIGHTPEARL_APP_REF"
            }
            401 if message.contains("dev-ref") => {
                "the developer reference was refused: check BRIGHTPEARL_DEV_REF"
            }
            401 if message.contains("staff token") => {
                "the staff token was refused: check BRIGHTPEARL_STAFF_TOKEN (or _FILE) and BRIGHTPEARL_APP_REF"
            }
            401 => {
                "the token was refused even after a refresh: run `relay auth brightpearl` again / check BRIGHTPEARL_TOKEN_STORE, BRIGHTPEARL_APP_REF and BRIGHTPEARL_DEV_REF"
            }
            403 => {
                "the credentials are valid but not allowed here: check the app's permissions in Brightpearl and BRIGHTPEARL_ACCOUNT"
            }
            _ if self.is_throttle() => {
                "Brightpearl's 200 requests/minute cap was hit: reduce concurrency or run fewer workers per account and developer"
            }
            414 => "the URI is too long: use smaller ID-set chunks",
            404 => "not found: check BRIGHTPEARL_ACCOUNT, BRIGHTPEARL_BASE_URL and the ids",
            _ if self.has_code("CMNC-018") => {
                "a search filter value was rejected (CMNC-018): check the filter's data type"
            }
            400..=499 => "Brightpearl rejected the request as invalid: see the error codes",
            _ if self.kind() == ErrorKind::AmbiguousWrite => {
                "Brightpearl failed during a write that may have been carried out: look it up (e.g. search the externalRef) before sending it again; quote the Ruid to Brightpearl support if it persists"
            }
            _ => {
                "Brightpearl failed: retry later; quote the Ruid to Brightpearl support if it persists"
            }
        }
    }
}

fn failure_hint(failure: &Failure) -> String {
    match failure {
        Failure::Token { source, .. } => token_hint(source).into(),
        Failure::RateLimit { .. } => "the client-side rate limiter refused to wait that long: lower the request volume".into(),
        Failure::Timeout { idempotent: false, .. } | Failure::Transport { idempotent: false, .. } => "the connection to Brightpearl failed after a write was sent, so it may have been carried out: look it up (e.g. search the externalRef) before sending it again; check BRIGHTPEARL_BASE_URL and the network".into(),
        Failure::Timeout { .. } => "the request timed out: check the network and BRIGHTPEARL_BASE_URL, or raise BRIGHTPEARL_TIMEOUT_SECS".into(),
        Failure::Decode { .. } => "Brightpearl answered in an unexpected shape: report it with the body".into(),
        Failure::InvalidRequest { reason, .. } => format!("fix the arguments of the call: {reason}"),
        _ => "could not reach Brightpearl: check BRIGHTPEARL_BASE_URL / BRIGHTPEARL_OAUTH_URL and the network".into(),
    }
}

fn token_hint(e: &auth_core::TokenError) -> &'static str {
    use auth_core::TokenError as T;
    match e {
        T::Endpoint { error, .. } => match error.as_deref() {
            Some("invalid_grant") => {
                "the refresh token is expired or was already used: run `relay auth brightpearl` again / check BRIGHTPEARL_TOKEN_STORE"
            }
            Some("invalid_client") => {
                "the token endpoint refused the client: check BRIGHTPEARL_CLIENT_ID and BRIGHTPEARL_CLIENT_SECRET"
            }
            _ => {
                "the token endpoint refused the request: check BRIGHTPEARL_OAUTH_URL, BRIGHTPEARL_CLIENT_ID and BRIGHTPEARL_CLIENT_SECRET"
            }
        },
        T::NoRefreshToken => {
            "no refresh token stored: run `relay auth brightpearl` (or set BRIGHTPEARL_REFRESH_TOKEN) / check BRIGHTPEARL_TOKEN_STORE"
        }
        T::Store(_) => {
            "the token store cannot be read or written: check BRIGHTPEARL_TOKEN_STORE (path and permissions)"
        }
        T::Transport(_) | T::Timeout(_) => {
            "the token endpoint cannot be reached: check BRIGHTPEARL_OAUTH_URL and the network"
        }
        _ => {
            "token fetch failed: check BRIGHTPEARL_OAUTH_URL, BRIGHTPEARL_CLIENT_ID and BRIGHTPEARL_TOKEN_STORE"
        }
    }
}
