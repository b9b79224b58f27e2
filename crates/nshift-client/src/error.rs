//! The client's one error type, with actionable hints.

use std::time::Duration;

use http::StatusCode;
use nshift_models::delivery::{ErrorCode, ValidationStatus};

use crate::config::{ENV_API_KEY_ID, ENV_AUTH, ENV_BASE_URL, ENV_JWT_METHOD, ENV_SECRET_ID};

/// At most this many bytes of a response body are kept in an error.
const BODY_LIMIT: usize = 4096;

/// Keeps the first [`BODY_LIMIT`] bytes of a body, as text.
pub(crate) fn body_text(body: &[u8]) -> String {
    let cut = body.len().min(BODY_LIMIT);
    let mut text = String::from_utf8_lossy(&body[..cut]).into_owned();
    if body.len() > BODY_LIMIT {
        text.push('…');
    }
    text
}

/// Everything that can go wrong talking to nShift Delivery.
///
/// No variant ever holds a credential: the `Authorization` header is never copied, and bodies
/// are nShift's answers, which do not echo it. Every HTTP variant keeps the raw status and
/// (truncated) body; see [`Error::status`] and [`Error::body`]. [`Error::hint`] says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or malformed; the message names it.
    #[error("nShift client configuration: {0}")]
    Config(#[from] client_core::SettingsError),
    /// An argument passed to a client method cannot be used (e.g. an empty order number).
    #[error("invalid argument: {0}")]
    InvalidInput(String),
    /// The connection failed before the request was sent: nothing reached nShift.
    #[error("could not connect to nShift: {0}")]
    Connect(#[source] auth_core::Error),
    /// The request timed out: it may or may not have been processed by nShift.
    #[error("request to nShift timed out (it may still have been processed): {0}")]
    Timeout(#[source] auth_core::Error),
    /// Any other transport failure after the request may have reached nShift.
    #[error("transport error talking to nShift (the request may have been processed): {0}")]
    Transport(#[source] auth_core::Error),
    /// `NSHIFT_AUTH=jwt`: no JWT could be had from `/sessions/jwt` (other than a 401, which is
    /// [`Error::Unauthorized`]); the request itself was not sent. A 404 or 405 most likely
    /// means the method is wrong (`NSHIFT_JWT_METHOD`).
    #[error("could not get an nShift JWT session: {0}")]
    Session(#[source] auth_core::TokenError),
    /// 401: the API key id / secret id were not accepted.
    #[error("nShift rejected the credentials ({status})")]
    Unauthorized {
        /// The status (401).
        status: StatusCode,
        /// The response body (usually empty).
        body: String,
    },
    /// 403: valid credentials, but the key may not do this (missing licence, or a
    /// profile-bound key on an account-level endpoint).
    #[error(
        "nShift refused {operation} (403): the API key lacks the `{licence}` licence or is bound to a profile"
    )]
    Forbidden {
        /// The operation, e.g. `POST /shipments`.
        operation: String,
        /// The licence the operation needs, e.g. `REST API Print`.
        licence: &'static str,
        /// The response body (usually empty).
        body: String,
    },
    /// 404: the shipment, stored shipment or document does not exist (documents expire after
    /// one hour).
    #[error("nShift found nothing at {operation} (404)")]
    NotFound {
        /// The operation, with its path.
        operation: String,
        /// The response body (usually empty).
        body: String,
    },
    /// 400: nShift's own error body `{code, message}` (MISSING, ILLEGAL, ...).
    #[error("nShift refused the request (400 {}): {}", code.as_ref().map(ErrorCode::as_str).unwrap_or("no code"), message.as_deref().unwrap_or("no message"))]
    BadRequest {
        /// `MISSING`, `ILLEGAL`, or another code.
        code: Option<ErrorCode>,
        /// nShift's explanation.
        message: Option<String>,
        /// The raw body.
        body: String,
    },
    /// 422: the shipment (or print configuration) failed validation; nothing was created.
    #[error("nShift validation failed (422): {}", format_statuses(statuses))]
    Validation {
        /// The validation statuses: field, message, type, code and location of each.
        statuses: Vec<ValidationStatus>,
        /// The raw body.
        body: String,
    },
    /// 429: nShift (or a proxy in front of it) is throttling.
    #[error("nShift is throttling requests (429){}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    Throttled {
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
        /// The raw body.
        body: String,
    },
    /// 5xx: an error inside nShift (`{code: "INTERNAL"}`) or a gateway in front of it.
    #[error("nShift server error ({status}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Server {
        /// The status.
        status: StatusCode,
        /// nShift's `message`, if the body had one.
        message: Option<String>,
        /// The raw body.
        body: String,
    },
    /// Any other unexpected status.
    #[error("unexpected answer from nShift ({status})")]
    UnexpectedStatus {
        /// The status.
        status: StatusCode,
        /// The raw body.
        body: String,
    },
    /// A success answer that could not be read.
    #[error("could not read nShift's answer to {operation}: {message}")]
    Decode {
        /// The operation.
        operation: String,
        /// What was wrong.
        message: String,
        /// The raw body.
        body: String,
    },
    /// `book_once` could not reach a definite outcome within its attempts (every attempt ended
    /// ambiguously). Calling `book_once` again with the same order number is safe.
    #[error(
        "booking of order {order_no} is unresolved after {attempts} attempts; call book_once again: {last}"
    )]
    BookingUnresolved {
        /// The order number.
        order_no: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: Box<Error>,
    },
    /// `book_once` found the stored shipment of this order in a state that cannot be printed
    /// (WARNED, INVALID or FAILED). Fix it in nShift (or delete it) and call again.
    #[error(
        "stored shipment {stored_id} of order {order_no} is {status} and cannot be printed: {}",
        format_statuses(statuses)
    )]
    NotPrintable {
        /// The order number.
        order_no: String,
        /// The stored shipment.
        stored_id: String,
        /// Its status.
        status: String,
        /// Its validation statuses.
        statuses: Vec<ValidationStatus>,
    },
}

fn format_statuses(statuses: &[ValidationStatus]) -> String {
    if statuses.is_empty() {
        return "no details".to_owned();
    }
    statuses
        .iter()
        .map(|s| {
            format!(
                "{}: {} ({})",
                s.field.as_deref().filter(|f| !f.is_empty()).unwrap_or("?"),
                s.message.as_deref().unwrap_or("no message"),
                s.type_.as_ref().map(|t| t.as_str()).unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The HTTP status of an answer, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Unauthorized { status, .. }
            | Self::Server { status, .. }
            | Self::UnexpectedStatus { status, .. } => Some(*status),
            Self::Forbidden { .. } => Some(StatusCode::FORBIDDEN),
            Self::NotFound { .. } => Some(StatusCode::NOT_FOUND),
            Self::BadRequest { .. } => Some(StatusCode::BAD_REQUEST),
            Self::Validation { .. } => Some(StatusCode::UNPROCESSABLE_ENTITY),
            Self::Throttled { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
            Self::Decode { .. } => Some(StatusCode::OK),
            Self::Session(auth_core::TokenError::Endpoint { status, .. }) => Some(*status),
            _ => None,
        }
    }

    /// The raw (truncated) response body, when there was one.
    pub fn body(&self) -> Option<&str> {
        match self {
            Self::Unauthorized { body, .. }
            | Self::Forbidden { body, .. }
            | Self::NotFound { body, .. }
            | Self::BadRequest { body, .. }
            | Self::Validation { body, .. }
            | Self::Throttled { body, .. }
            | Self::Server { body, .. }
            | Self::UnexpectedStatus { body, .. }
            | Self::Decode { body, .. } => Some(body),
            _ => None,
        }
    }

    /// The validation statuses of a 422 (or of a stored shipment that cannot be printed).
    pub fn validation_statuses(&self) -> &[ValidationStatus] {
        match self {
            Self::Validation { statuses, .. } | Self::NotPrintable { statuses, .. } => statuses,
            _ => &[],
        }
    }

    /// The shared classification of this error ([`client_core::ErrorKind`]).
    pub fn kind(&self) -> client_core::ErrorKind {
        use client_core::ErrorKind as Kind;
        match self {
            Self::Throttled { .. } => Kind::Throttled,
            Self::Unauthorized { .. } | Self::Forbidden { .. } => Kind::Unauthorized,
            Self::Session(e) if e.is_permanent() => Kind::Unauthorized,
            Self::Session(_) | Self::Connect(_) => Kind::Transient,
            Self::BookingUnresolved { .. } => Kind::AmbiguousWrite,
            _ if self.is_ambiguous() => Kind::AmbiguousWrite,
            _ => Kind::Permanent,
        }
    }

    /// `true` when the request may or may not have been carried out by nShift: a transport
    /// failure after sending, a timeout, or a 5xx. A write that fails this way must be
    /// reconciled (searched for) before it is sent again.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            Self::Timeout(_) | Self::Transport(_) | Self::Server { .. }
        )
    }

    /// Actionable advice naming the settings to check; shown by `relay verify`.
    pub fn hint(&self) -> String {
        match self {
            Self::Config(e) => format!("fix the setting `{}`: {e}", e.setting()),
            Self::InvalidInput(msg) => format!("fix the call: {msg}"),
            Self::Connect(_) => format!(
                "nShift could not be reached: check {ENV_BASE_URL} (default https://api.unifaun.com/rs-extapi/v1), DNS, proxies and firewalls; nothing was sent, so retrying is safe"
            ),
            Self::Timeout(_) => "nShift did not answer in time: retry later; a booking may have gone through, so use book_once (which searches before re-posting) rather than re-posting by hand".to_owned(),
            Self::Transport(_) => format!(
                "the connection to nShift broke off: check {ENV_BASE_URL} and the network; a write may have gone through, so reconcile (book_once does) before re-posting"
            ),
            Self::Unauthorized { .. } => format!(
                "check {ENV_API_KEY_ID} and {ENV_SECRET_ID} (or {ENV_SECRET_ID}_FILE): the key must exist under Maintenance → API keys, be Enabled and of type Web Services (REST), and any IP restriction must allow this host; {ENV_AUTH} must be `basic` (id:secret), `bearer` (Bearer id-secret) or `jwt` (a JWT from /sessions/jwt, fetched with id:secret)"
            ),
            Self::Session(auth_core::TokenError::Endpoint { status, .. })
                if matches!(status.as_u16(), 404 | 405) => format!(
                "the JWT session endpoint answered {status}: the method of /sessions/jwt is an open question, so switch {ENV_JWT_METHOD} (`post` or `get`), or set {ENV_AUTH}=basic"
            ),
            Self::Session(_) => format!(
                "no JWT could be fetched from /sessions/jwt: check {ENV_BASE_URL} and the network, or set {ENV_AUTH}=basic; nothing else was sent, so retrying is safe"
            ),
            Self::Forbidden { operation, licence, .. } => format!(
                "the credentials are valid but not allowed to call {operation}: the account needs the `{licence}` licence (Help → Session → License keys), or the key in {ENV_API_KEY_ID} is bound to a profile (profile keys only see their profile group and cannot call GET /shipments or GET /alerts); use an account-level key with that licence"
            ),
            Self::NotFound { .. } => "the id does not exist (or belongs to another profile group); documents can only be fetched for one hour after printing".to_owned(),
            Self::BadRequest { code, message, .. } => format!(
                "nShift refused an argument ({}): {}; fix the request",
                code.as_ref().map(ErrorCode::as_str).unwrap_or("no code"),
                message.as_deref().unwrap_or("no message")
            ),
            Self::Validation { statuses, .. } => format!(
                "fix the shipment data and send it again (nothing was created): {}",
                format_statuses(statuses)
            ),
            Self::Throttled { retry_after, .. } => format!(
                "nShift is throttling: wait {} before retrying, and poll the feeds no more often than their minDelay (at most once per five minutes when done)",
                retry_after.map(|d| format!("{}s", d.as_secs())).unwrap_or_else(|| "a while".to_owned())
            ),
            Self::Server { .. } => "nShift had an internal error: retry for a couple of minutes (a booking may have gone through: use book_once), then contact nShift support".to_owned(),
            Self::UnexpectedStatus { status, .. } => format!(
                "nShift answered {status}: check {ENV_BASE_URL} points at the rs-extapi/v1 API"
            ),
            Self::Decode { .. } => format!(
                "nShift's answer did not match the expected shape: check {ENV_BASE_URL} points at the rs-extapi/v1 API; report the body if it does"
            ),
            Self::BookingUnresolved { .. } => "every attempt ended without a definite answer: call book_once again with the same order number (it will not book twice)".to_owned(),
            Self::NotPrintable { .. } => "fix or delete the stored shipment in nShift (Stored shipments), then call book_once again".to_owned(),
        }
    }

    /// Maps a failure of the tower stack.
    pub(crate) fn from_stack(e: auth_core::Error) -> Self {
        match e {
            auth_core::Error::Unauthorized { response } => Self::Unauthorized {
                status: response.status(),
                body: body_text(response.body()),
            },
            // The JWT endpoint refused the Basic credentials.
            auth_core::Error::Token(auth_core::TokenError::Endpoint { status, .. })
                if status == StatusCode::UNAUTHORIZED =>
            {
                Self::Unauthorized {
                    status,
                    body: String::new(),
                }
            }
            auth_core::Error::Token(e) => Self::Session(e),
            e if e.is_connect() => Self::Connect(e),
            e if client_core::is_timeout(&e) => Self::Timeout(e),
            e => Self::Transport(e),
        }
    }
}
