//! Error types. None of them ever carries a secret: token endpoint errors keep only the
//! status and the OAuth `error` / `error_description` fields, never a request or token.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

/// A boxed error, as used by tower.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error shared between every caller that waited on the same token fetch.
pub type SharedError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a token response was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidTokenResponse {
    /// The body was not a JSON object.
    #[error("token response is not a JSON object")]
    NotJson,
    /// `access_token` was absent, not a string or empty.
    #[error("token response has no `access_token`")]
    MissingAccessToken,
    /// `expires_in` was absent.
    #[error("token response has no `expires_in`")]
    MissingExpiresIn,
    /// `expires_in` was zero or negative.
    #[error("token response has a non-positive `expires_in` ({0})")]
    NonPositiveExpiresIn(i64),
    /// `expires_in` was present but not a number.
    #[error("token response has an `expires_in` that is not a number")]
    InvalidExpiresIn,
    /// The token had expired by the time it arrived (or the source returned an expired token).
    #[error("token was already expired when it was received")]
    AlreadyExpired,
    /// The token cannot be put into an HTTP header (for example it contains a newline).
    #[error("token is not a valid HTTP header value")]
    InvalidHeaderValue,
}

/// Failure of a token source or a token store.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token endpoint could not be reached or the exchange broke off.
    #[error("token endpoint transport error: {0}")]
    Transport(SharedError),
    /// The token endpoint answered with a non-success status.
    #[error("token endpoint answered {status}{}{}",
        error.as_deref().map(|e| format!(": {e}")).unwrap_or_default(),
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Endpoint {
        /// HTTP status of the token endpoint's answer.
        status: StatusCode,
        /// The OAuth2 `error` code, if the body had one (e.g. `invalid_grant`).
        error: Option<String>,
        /// The OAuth2 `error_description`, truncated.
        description: Option<String>,
    },
    /// The token endpoint throttled us (HTTP 429).
    #[error("token endpoint is rate limiting (429){}",
        retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The token endpoint answered 2xx but the token is unusable.
    #[error("invalid token response: {0}")]
    InvalidResponse(#[from] InvalidTokenResponse),
    /// A refresh-token source has no refresh token to exchange.
    #[error("no refresh token is available in the token store")]
    NoRefreshToken,
    /// Loading or saving tokens failed.
    #[error("token store error: {0}")]
    Store(#[from] StoreError),
    /// The fetch took longer than the cache's load timeout.
    #[error("token fetch timed out after {0:?}")]
    Timeout(Duration),
    /// The task fetching the token panicked or was aborted.
    #[error("token fetch was cancelled")]
    Cancelled,
    /// Any other failure of a custom token source.
    #[error("token source error: {0}")]
    Other(SharedError),
    /// The shared auth state (the token row, the claim) could not be read or written.
    #[error("shared auth state: {0}")]
    SharedState(#[from] SharedStateError),
    /// Another worker claimed the fetch of the shared token but saved nothing within the
    /// wait limit, and its claim did not lapse either (it keeps renewing it).
    #[error(
        "waited {waited:?} for another worker to fetch the shared token `{name}`; it holds the claim but saved no token (raise the wait limit or check that worker)"
    )]
    SharedWaitTimedOut {
        /// The shared token's name (never its value).
        name: String,
        /// How long this caller waited.
        waited: Duration,
    },
}

impl TokenError {
    /// Wraps a transport failure.
    pub fn transport(e: impl Into<BoxError>) -> Self {
        Self::Transport(Arc::from(e.into()))
    }

    /// Wraps any other failure of a custom source.
    pub fn other(e: impl Into<BoxError>) -> Self {
        Self::Other(Arc::from(e.into()))
    }

    /// `true` when retrying with the same credentials cannot help (`invalid_client`,
    /// `invalid_grant`, `unauthorized_client`, or a 400/401 without a code).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Endpoint { status, error, .. } => match error.as_deref() {
                Some("invalid_client" | "invalid_grant" | "unauthorized_client") => true,
                Some(_) => false,
                None => matches!(*status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED),
            },
            Self::NoRefreshToken => true,
            _ => false,
        }
    }
}

/// Failure to read or write persisted tokens.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// File-system error (never the content).
    #[error("token store I/O error: {0}")]
    Io(Arc<std::io::Error>),
    /// The stored data could not be parsed.
    #[error("token store data is malformed: {0}")]
    Malformed(String),
    /// A compare-and-swap save found a newer pair: another worker refreshed in between.
    #[error("token store conflict: another worker saved a newer token pair")]
    Conflict,
    /// The shared auth state failed.
    #[error("token store: {0}")]
    Shared(#[from] SharedStateError),
}

/// Failure of a [`SharedAuthState`](crate::SharedAuthState) backend. It never carries a
/// secret: implementations put the operation and the row's name in it, never a value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SharedStateError {
    /// The backend could not be reached or refused the operation (a database error).
    #[error("shared auth state `{operation}` on `{name}` failed: {source}")]
    Backend {
        /// The trait method, e.g. `claim`.
        operation: &'static str,
        /// The row's name or key.
        name: String,
        /// The backend's error (must not quote a stored value).
        source: SharedError,
    },
    /// A stored row cannot be read (wrong type, undecodable value).
    #[error("shared auth state row `{name}` is malformed: {reason}")]
    Malformed {
        /// The row's name or key.
        name: String,
        /// What is wrong (never the value).
        reason: String,
    },
}

impl SharedStateError {
    /// Wraps a backend failure of `operation` on the row `name`.
    pub fn backend(
        operation: &'static str,
        name: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Backend {
            operation,
            name: name.into(),
            source: Arc::from(source.into()),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

/// The rate limiter refused to wait.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// A permit would only be available after the configured maximum wait.
    #[error("rate limit permit needs a wait of {needed:?}, more than the maximum {max:?}")]
    MaxWaitExceeded {
        /// How long the caller would have had to wait in total.
        needed: Duration,
        /// The configured maximum.
        max: Duration,
    },
    /// The shared rate-limit state kept failing, so no permit could be reserved in it.
    #[error("shared rate limit state for `{key}` unavailable for {waited:?}: {reason}")]
    SharedStateUnavailable {
        /// The limiter key.
        key: String,
        /// How long the caller tried.
        waited: Duration,
        /// The last backend error.
        reason: String,
    },
}

/// Invalid configuration (quota, header name or value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A quota with a zero burst or a zero interval.
    #[error("invalid quota: {0}")]
    Quota(&'static str),
    /// A header name or value that HTTP does not allow.
    #[error("invalid header `{0}`")]
    Header(String),
}

/// The error type of every service in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No token could be obtained.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The rate limiter refused to wait any longer.
    #[error(transparent)]
    RateLimit(#[from] RateLimitError),
    /// The API answered 401 again after the token was refreshed and the request replayed.
    /// The second answer is kept whole (status, headers, buffered body), so a client can say
    /// what the API said without a side channel.
    #[error("request unauthorized ({}) even after refreshing the token", response.status())]
    Unauthorized {
        /// The second 401 answer.
        response: Box<http::Response<bytes::Bytes>>,
    },
    /// The connection failed before the request was sent: always safe to retry.
    #[error("connection failed before the request was sent: {0}")]
    Connect(BoxError),
    /// Any other transport failure: the request may have reached the server.
    #[error("transport error: {0}")]
    Transport(BoxError),
}

impl Error {
    /// A failure that happened before any byte of the request was sent.
    pub fn connect(e: impl Into<BoxError>) -> Self {
        Self::Connect(e.into())
    }

    /// A failure after the request may have reached the server.
    pub fn transport(e: impl Into<BoxError>) -> Self {
        Self::Transport(e.into())
    }

    /// `true` for [`Error::Connect`], or a transport error caused by a refused connection.
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Connect(_) => true,
            Self::Transport(e) => {
                let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
                while let Some(err) = cur {
                    if let Some(io) = err.downcast_ref::<std::io::Error>()
                        && io.kind() == std::io::ErrorKind::ConnectionRefused
                    {
                        return true;
                    }
                    cur = err.source();
                }
                false
            }
            _ => false,
        }
    }
}

impl From<BoxError> for Error {
    /// Unwraps a boxed [`Error`] (so layers nest without re-wrapping); anything else is a
    /// [`Error::Transport`].
    fn from(e: BoxError) -> Self {
        match e.downcast::<Error>() {
            Ok(inner) => *inner,
            Err(other) => Self::Transport(other),
        }
    }
}

impl From<std::convert::Infallible> for Error {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}
