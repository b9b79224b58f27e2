//! The one error type of the client, with actionable hints.

use std::time::Duration;

use brightpearl_models::common::ApiError;
use http::StatusCode;

/// Longest response body kept in an error (bytes); the rest is cut.
pub(crate) const MAX_KEPT_BODY: usize = 4096;

/// What the platform answered when a call failed: raw status, Brightpearl's error list, the
/// request id and the (truncated) raw body.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ApiFailure {
    /// HTTP status.
    pub status: StatusCode,
    /// The `{"errors":[{code,message}]}` entries (empty when the body had none).
    pub errors: Vec<ApiError>,
    /// Brightpearl's request id (`Ruid` response header), to quote to support.
    pub request_id: Option<String>,
    /// The raw body, cut at 4 KiB.
    pub body: String,
}

impl ApiFailure {
    /// Whether any error carries `code` (e.g. `CMNC-404`).
    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }

    /// The `response` string of bodies such as `{"response":"Authorization token expired"}`.
    pub fn response_message(&self) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()?
            .get("response")?
            .as_str()
            .map(str::to_owned)
    }

    fn summary(&self) -> String {
        let mut out = self.status.to_string();
        if !self.errors.is_empty() {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|e| match &e.message {
                    Some(m) => format!("{} {m}", e.code),
                    None => e.code.clone(),
                })
                .collect();
            out.push_str(": ");
            out.push_str(&list.join("; "));
        } else if let Some(message) = self.response_message() {
            out.push_str(": ");
            out.push_str(&message);
        }
        if let Some(id) = &self.request_id {
            out.push_str(&format!(" (Ruid {id})"));
        }
        out
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

/// Every failure of the Brightpearl client. Never contains a token or secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or malformed (the message names it).
    #[error(transparent)]
    Settings(#[from] client_core::SettingsError),
    /// No access token could be obtained (token endpoint, token store).
    #[error("brightpearl token: {0}")]
    Token(#[source] auth_core::TokenError),
    /// The API answered 401: the token (or staff token) or the app/developer reference was
    /// refused, also after a refresh.
    #[error("brightpearl unauthorized: {0}")]
    Unauthorized(ApiFailure),
    /// The API answered 403: the credentials are valid but lack access to this resource.
    #[error("brightpearl forbidden: {0}")]
    Forbidden(ApiFailure),
    /// Throttled (503 "too many requests" or 429) after the limiter paused and the retries
    /// ran out.
    #[error("brightpearl throttled: {failure}")]
    Throttled {
        /// The last answer.
        failure: ApiFailure,
        /// `brightpearl-next-throttle-period` (or `Retry-After`), when sent.
        retry_after: Option<Duration>,
    },
    /// Any other non-success answer, with Brightpearl's error list as data (validation errors
    /// such as `ORDC-005`, `INTC-064`, or `500 CMNC-018` for a bad search filter).
    #[error("brightpearl API error: {0}")]
    Api(ApiFailure),
    /// The limiter would have had to wait longer than allowed.
    #[error("brightpearl rate limit: {0}")]
    RateLimit(#[source] auth_core::RateLimitError),
    /// The request timed out.
    #[error("brightpearl request timed out")]
    Timeout(#[source] auth_core::BoxError),
    /// The connection failed or broke off.
    #[error("brightpearl transport error: {0}")]
    Transport(#[source] auth_core::BoxError),
    /// A success answer whose body does not match the expected shape.
    #[error("brightpearl response of {status} does not decode: {message}")]
    Decode {
        /// HTTP status.
        status: StatusCode,
        /// What serde said.
        message: String,
        /// The raw body, cut at 4 KiB.
        body: String,
    },
    /// More messages than one multi-message call may carry.
    #[error("a multi-message call carries at most {max} messages, got {count}")]
    TooManyMessages {
        /// Messages given.
        count: usize,
        /// The limit (10).
        max: usize,
    },
    /// The request cannot be built (bad argument).
    #[error("invalid brightpearl request: {0}")]
    InvalidRequest(String),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The failure the platform sent, if the error comes from an answer.
    pub fn failure(&self) -> Option<&ApiFailure> {
        match self {
            Self::Unauthorized(f) | Self::Forbidden(f) | Self::Api(f) => Some(f),
            Self::Throttled { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// The HTTP status, if the error comes from an answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Decode { status, .. } => Some(*status),
            other => other.failure().map(|f| f.status),
        }
    }

    /// Brightpearl's error list (empty unless the body had `errors`).
    pub fn api_errors(&self) -> &[ApiError] {
        self.failure()
            .map(|f| f.errors.as_slice())
            .unwrap_or_default()
    }

    /// The shared classification of this error ([`client_core::ErrorKind`]).
    pub fn kind(&self) -> client_core::ErrorKind {
        use client_core::ErrorKind as Kind;
        match self {
            Self::Throttled { .. } | Self::RateLimit(_) => Kind::Throttled,
            Self::Unauthorized(_) | Self::Forbidden(_) => Kind::Unauthorized,
            Self::Token(e) if e.is_permanent() => Kind::Unauthorized,
            _ if self.is_transient() => Kind::Transient,
            _ => Kind::Permanent,
        }
    }

    /// Whether trying again later may succeed (throttling, timeouts, transport, 5xx without a
    /// validation code).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Throttled { .. } | Self::Timeout(_) | Self::Transport(_) | Self::RateLimit(_) => {
                true
            }
            Self::Api(f) => {
                f.status.is_server_error()
                    && !f
                        .errors
                        .iter()
                        .any(|e| matches!(e.code.as_str(), "CMNC-018" | "CMNC-044" | "CMNU-003"))
            }
            Self::Token(e) => !e.is_permanent(),
            _ => false,
        }
    }

    /// Actionable advice naming the settings involved, for `relay verify` and logs.
    pub fn hint(&self) -> String {
        match self {
            Self::Settings(e) => match e.setting() {
                "BRIGHTPEARL_APP_REF" => "set BRIGHTPEARL_APP_REF to the app reference shown in Brightpearl (App Store → your app)".into(),
                "BRIGHTPEARL_DEV_REF" => "set BRIGHTPEARL_DEV_REF to your developer reference (needed with OAuth)".into(),
                "BRIGHTPEARL_ACCOUNT" => "set BRIGHTPEARL_ACCOUNT to the account code (the first path segment after /public-api/)".into(),
                "BRIGHTPEARL_TOKEN_STORE" => "set BRIGHTPEARL_TOKEN_STORE to a writable file path; run `relay auth brightpearl` to fill it".into(),
                name if name.ends_with("_URL") => format!("fix {name}: an https:// URL (http only for 127.0.0.1/localhost)"),
                name => format!("fix {name}: {e}"),
            },
            Self::Token(e) => token_hint(e),
            Self::Unauthorized(f) => {
                let message = f.response_message().unwrap_or_default().to_ascii_lowercase();
                if message.contains("app-ref") || message.contains("app reference") {
                    "the app reference was refused: check BRIGHTPEARL_APP_REF".into()
                } else if message.contains("dev-ref") {
                    "the developer reference was refused: check BRIGHTPEARL_DEV_REF".into()
                } else if message.contains("staff token") {
                    "the staff token was refused: check BRIGHTPEARL_STAFF_TOKEN (or _FILE) and BRIGHTPEARL_APP_REF".into()
                } else {
                    "the token was refused even after a refresh: run `relay auth brightpearl` again / check BRIGHTPEARL_TOKEN_STORE, BRIGHTPEARL_APP_REF and BRIGHTPEARL_DEV_REF".into()
                }
            }
            Self::Forbidden(_) => "the credentials are valid but not allowed here: check the app's permissions in Brightpearl and BRIGHTPEARL_ACCOUNT".into(),
            Self::Throttled { .. } => "Brightpearl's 200 requests/minute cap was hit: reduce concurrency or run fewer workers per account and developer".into(),
            Self::RateLimit(_) => "the client-side rate limiter refused to wait that long: lower the request volume".into(),
            Self::Api(f) if f.status == StatusCode::URI_TOO_LONG => "the URI is too long: use smaller ID-set chunks".into(),
            Self::Api(f) if f.status == StatusCode::NOT_FOUND => "not found: check BRIGHTPEARL_ACCOUNT, BRIGHTPEARL_BASE_URL and the ids".into(),
            Self::Api(f) if f.has_code("CMNC-018") => "a search filter value was rejected (CMNC-018): check the filter's data type".into(),
            Self::Api(f) if f.status.is_client_error() => "Brightpearl rejected the request as invalid: see the error codes".into(),
            Self::Api(_) => "Brightpearl failed: retry later; quote the Ruid to Brightpearl support if it persists".into(),
            Self::Timeout(_) => "the request timed out: check the network and BRIGHTPEARL_BASE_URL".into(),
            Self::Transport(_) => "could not reach Brightpearl: check BRIGHTPEARL_BASE_URL / BRIGHTPEARL_OAUTH_URL and the network".into(),
            Self::Decode { .. } => "Brightpearl answered in an unexpected shape: report it with the body".into(),
            Self::TooManyMessages { max, .. } => format!("split the messages into calls of at most {max}"),
            Self::InvalidRequest(_) => "fix the arguments of the call".into(),
        }
    }
}

fn token_hint(e: &auth_core::TokenError) -> String {
    use auth_core::TokenError as T;
    match e {
        T::Endpoint { error, .. } => match error.as_deref() {
            Some("invalid_grant") => "the refresh token is expired or was already used: run `relay auth brightpearl` again / check BRIGHTPEARL_TOKEN_STORE".into(),
            Some("invalid_client") => "the token endpoint refused the client: check BRIGHTPEARL_CLIENT_ID and BRIGHTPEARL_CLIENT_SECRET".into(),
            _ => "the token endpoint refused the request: check BRIGHTPEARL_OAUTH_URL, BRIGHTPEARL_CLIENT_ID and BRIGHTPEARL_CLIENT_SECRET".into(),
        },
        T::NoRefreshToken => "no refresh token stored: run `relay auth brightpearl` (or set BRIGHTPEARL_REFRESH_TOKEN) / check BRIGHTPEARL_TOKEN_STORE".into(),
        T::Store(_) => "the token store cannot be read or written: check BRIGHTPEARL_TOKEN_STORE (path and permissions)".into(),
        T::Transport(_) | T::Timeout(_) => "the token endpoint cannot be reached: check BRIGHTPEARL_OAUTH_URL and the network".into(),
        _ => "token fetch failed: check BRIGHTPEARL_OAUTH_URL, BRIGHTPEARL_CLIENT_ID and BRIGHTPEARL_TOKEN_STORE".into(),
    }
}

impl Error {
    /// Converts a stack error; `unauthorized` is the captured 401 answer, if any.
    pub(crate) fn from_stack(e: auth_core::Error, unauthorized: Option<ApiFailure>) -> Self {
        use auth_core::Error as A;
        let timeout = client_core::is_timeout(&e);
        match e {
            A::Token(t) => Self::Token(t),
            A::RateLimit(r) => Self::RateLimit(r),
            A::Unauthorized { response } => Self::Unauthorized(
                unauthorized.unwrap_or_else(|| crate::client::failure_of(&response)),
            ),
            A::Connect(b) | A::Transport(b) if timeout => Self::Timeout(b),
            A::Connect(b) | A::Transport(b) => Self::Transport(b),
            other => Self::Transport(Box::new(other)),
        }
    }
}
