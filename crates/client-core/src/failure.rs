//! What can go wrong on the one request path: [`Failure`], with [`HttpFailure`] for a
//! non-success answer kept raw. One mapping from the stack's error, one body limit, one default
//! classification, shared by every client.

use std::fmt;
use std::time::Duration;

use auth_core::{BoxError, RateLimitError, TokenError};
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};

use crate::kind::ErrorKind;

/// The most of a response body any error keeps, in bytes; [`body_text`] cuts the rest.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A body as text for an error: invalid UTF-8 replaced, cut once at [`BODY_LIMIT`] (then
/// ending in `…[truncated]`).
///
/// ```
/// let long = vec![b'a'; client_core::BODY_LIMIT + 1];
/// assert!(client_core::body_text(&long).ends_with("a…[truncated]"));
/// assert_eq!(client_core::body_text(b"{}"), "{}");
/// ```
pub fn body_text(body: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(&body[..body.len().min(BODY_LIMIT)]).into_owned();
    if body.len() > BODY_LIMIT {
        text.push_str("…[truncated]");
    }
    text
}

/// A non-success answer, kept raw: what the platform said, for the platform's error to read
/// meaning from and for the operator to quote (the request id).
///
/// `Debug` shows header names only (an answer may set a cookie); the body is the platform's
/// answer, which never carries our credentials.
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpFailure {
    /// The operation id (`GetOrder`, ...).
    pub operation: &'static str,
    /// Whether the request was safe to repeat (a 5xx of a write that was not is ambiguous).
    pub idempotent: bool,
    /// The status.
    pub status: StatusCode,
    /// The answer's headers.
    pub headers: HeaderMap,
    /// The request id the platform sent back (the first of its request-id headers present).
    pub request_id: Option<String>,
    /// `Retry-After`, when the answer had one.
    pub retry_after: Option<Duration>,
    /// The body as text, cut at [`BODY_LIMIT`].
    pub body: String,
}

impl HttpFailure {
    /// Captures `response` to `operation`; `request_id_headers` are tried in order.
    pub fn new(
        operation: &'static str,
        idempotent: bool,
        request_id_headers: &[&str],
        response: &Response<Bytes>,
    ) -> Self {
        let headers = response.headers();
        let request_id = request_id_headers.iter().find_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some(value.to_owned())
        });
        Self {
            operation,
            idempotent,
            status: response.status(),
            headers: headers.clone(),
            request_id,
            retry_after: auth_core::retry::parse_retry_after(headers),
            body: body_text(response.body()),
        }
    }

    /// The body as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The shared classification of the status: 429 throttled, 401/403 unauthorized, 5xx
    /// transient (ambiguous for a request that was not safe to repeat), anything else
    /// permanent.
    pub fn kind(&self) -> ErrorKind {
        match self.status.as_u16() {
            429 => ErrorKind::Throttled,
            401 | 403 => ErrorKind::Unauthorized,
            500..=599 if self.idempotent => ErrorKind::Transient,
            500..=599 => ErrorKind::AmbiguousWrite,
            _ => ErrorKind::Permanent,
        }
    }
}

impl fmt::Debug for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFailure")
            .field("operation", &self.operation)
            .field("status", &self.status)
            .field("request_id", &self.request_id)
            .field("retry_after", &self.retry_after)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body)
            .finish()
    }
}

impl fmt::Display for HttpFailure {
    /// `GetOrder: answered 404 Not Found: {"Message":…} (request id r-1)`: the body's start
    /// on one line, at most 300 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: answered {}", self.operation, self.status)?;
        let excerpt: String = self.body.split_whitespace().collect::<Vec<_>>().join(" ");
        if !excerpt.is_empty() {
            let cut: String = excerpt.chars().take(300).collect();
            let more = if cut.len() < excerpt.len() { "…" } else { "" };
            write!(f, ": {cut}{more}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong between building a request and decoding its answer, the same
/// for every platform. Each client turns it into its own error (`Platform::error`); its
/// [`kind`](Self::kind) is the default classification the clients share.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The connection failed before anything was sent: safe to repeat for any method.
    #[error("{operation}: cannot connect, nothing was sent: {source}")]
    NotSent {
        /// The operation id.
        operation: &'static str,
        /// What failed.
        source: BoxError,
    },
    /// No answer in time; the request may still have been carried out.
    #[error("{operation}: no answer in time (the request may have been carried out): {source}")]
    Timeout {
        /// The operation id.
        operation: &'static str,
        /// Whether the request was safe to repeat.
        idempotent: bool,
        /// What timed out.
        source: BoxError,
    },
    /// The connection broke after the request may have reached the platform.
    #[error("{operation}: the connection broke (the request may have been carried out): {source}")]
    Transport {
        /// The operation id.
        operation: &'static str,
        /// Whether the request was safe to repeat.
        idempotent: bool,
        /// What failed.
        source: BoxError,
    },
    /// No token could be had (the token endpoint refused, throttled or could not be reached,
    /// or the token store failed); the request was not sent.
    #[error("{operation}: no token: {source}")]
    Token {
        /// The operation id (`RequestToken` when only a token was asked for).
        operation: &'static str,
        /// What the token source said (OAuth `error` code and description only).
        source: TokenError,
    },
    /// Our own rate limiter would have had to wait longer than allowed; nothing was sent.
    #[error("{operation}: {source}")]
    RateLimit {
        /// The operation id.
        operation: &'static str,
        /// The limiter's refusal.
        source: RateLimitError,
    },
    /// A non-success answer (after the retries the stack allows), kept raw.
    #[error("{0}")]
    Http(Box<HttpFailure>),
    /// A success answer whose body does not decode into the expected type.
    #[error("{operation}: cannot decode the {status} answer: {source}")]
    Decode {
        /// The operation id.
        operation: &'static str,
        /// The answer's status.
        status: StatusCode,
        /// The body as text, cut at [`BODY_LIMIT`].
        body: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The request was refused before sending (a bad argument, a query or body that does not
    /// serialize, a header HTTP does not allow).
    #[error("{operation}: invalid request: {reason}")]
    InvalidRequest {
        /// The operation id.
        operation: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl Failure {
    /// THE mapping of an auth-core stack error: a 401 after the refresh keeps its answer, a
    /// timeout (in the error chain) or a broken connection remembers whether the request was
    /// safe to repeat, a connect failure is [`Failure::NotSent`].
    pub fn from_stack(
        operation: &'static str,
        idempotent: bool,
        request_id_headers: &[&str],
        e: auth_core::Error,
    ) -> Self {
        use auth_core::Error as E;
        let timeout = crate::transport::is_timeout(&e);
        let connect = e.is_connect();
        match e {
            E::Token(source) => Self::Token { operation, source },
            E::RateLimit(source) => Self::RateLimit { operation, source },
            E::Unauthorized { response } => Self::Http(Box::new(HttpFailure::new(
                operation,
                idempotent,
                request_id_headers,
                &response,
            ))),
            E::Connect(source) | E::Transport(source) if connect => {
                Self::NotSent { operation, source }
            }
            E::Connect(source) | E::Transport(source) if timeout => Self::Timeout {
                operation,
                idempotent,
                source,
            },
            E::Transport(source) | E::Connect(source) => Self::Transport {
                operation,
                idempotent,
                source,
            },
            other => Self::Transport {
                operation,
                idempotent,
                source: Box::new(other),
            },
        }
    }

    /// A success answer of `operation` that `source` could not decode; keeps the body.
    pub fn decode(
        operation: &'static str,
        response: &Response<Bytes>,
        source: serde_json::Error,
    ) -> Self {
        Self::Decode {
            operation,
            status: response.status(),
            body: body_text(response.body()),
            source,
        }
    }

    /// The default classification: not sent → transient; a timeout or broken connection →
    /// transient when the request was safe to repeat, else an ambiguous write; throttling (ours
    /// or the token endpoint's) → throttled; a refused credential → unauthorized; answers as
    /// [`HttpFailure::kind`]; a decode failure or an invalid request → permanent. A client may
    /// refine it (a platform whose 5xx with a certain code means "bad input").
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotSent { .. } => ErrorKind::Transient,
            Self::Timeout { idempotent, .. } | Self::Transport { idempotent, .. } => {
                if *idempotent {
                    ErrorKind::Transient
                } else {
                    ErrorKind::AmbiguousWrite
                }
            }
            Self::Token {
                source: TokenError::RateLimited { .. },
                ..
            }
            | Self::RateLimit { .. } => ErrorKind::Throttled,
            Self::Token { source, .. } if source.is_permanent() => ErrorKind::Unauthorized,
            Self::Token { .. } => ErrorKind::Transient,
            Self::Http(failure) => failure.kind(),
            Self::Decode { .. } | Self::InvalidRequest { .. } => ErrorKind::Permanent,
        }
    }

    /// The operation id.
    pub fn operation(&self) -> &'static str {
        match self {
            Self::Http(failure) => failure.operation,
            Self::NotSent { operation, .. }
            | Self::Timeout { operation, .. }
            | Self::Transport { operation, .. }
            | Self::Token { operation, .. }
            | Self::RateLimit { operation, .. }
            | Self::Decode { operation, .. }
            | Self::InvalidRequest { operation, .. } => operation,
        }
    }

    /// The answer, when the failure is a non-success answer.
    pub fn http(&self) -> Option<&HttpFailure> {
        match self {
            Self::Http(failure) => Some(failure),
            _ => None,
        }
    }

    /// The HTTP status of the answer (the API's, or the token endpoint's).
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Http(failure) => Some(failure.status),
            Self::Decode { status, .. } => Some(*status),
            Self::Token {
                source: TokenError::Endpoint { status, .. },
                ..
            } => Some(*status),
            Self::Token {
                source: TokenError::RateLimited { .. },
                ..
            } => Some(StatusCode::TOO_MANY_REQUESTS),
            _ => None,
        }
    }

    /// The request id of the answer, if the platform sent one.
    pub fn request_id(&self) -> Option<&str> {
        self.http()?.request_id.as_deref()
    }

    /// How long to wait before trying again, when someone said: the answer's `Retry-After`,
    /// the token endpoint's, or what our own limiter would have needed.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Http(failure) => failure.retry_after,
            Self::Token {
                source: TokenError::RateLimited { retry_after },
                ..
            } => *retry_after,
            Self::RateLimit {
                source: RateLimitError::MaxWaitExceeded { needed, .. },
                ..
            } => Some(*needed),
            _ => None,
        }
    }
}
