//! The one error type of the client: the settings, the shared request path's [`Failure`], and
//! what only nShift means (its 400 `{code, message}`, its 422 validation statuses, the licence
//! an operation needs, and what `book_once` found).

use std::time::Duration;

use auth_core::TokenError;
use client_core::{ErrorKind, Failure, HttpFailure, Platform, SettingsError};
use http::StatusCode;
use nshift_models::delivery::{Error as ApiError, ErrorCode, ValidationStatus};

use crate::config::{
    ENV_API_KEY_ID, ENV_AUTH, ENV_BASE_URL, ENV_JWT_METHOD, ENV_SECRET_ID, ENV_TIMEOUT_SECS,
};

/// nShift on the shared request engine.
pub(crate) enum Nshift {}

impl Platform for Nshift {
    const NAME: &'static str = "nshift";
    const REQUEST_ID_HEADERS: &'static [&'static str] = &["x-request-id", "request-id"];
    type Error = Error;

    /// A 400 carries nShift's `{code, message}`, a 422 its validation statuses (a list, or one
    /// status); everything else stays the shared failure.
    fn error(failure: Failure) -> Error {
        match failure {
            Failure::Http(failure) if failure.status == StatusCode::BAD_REQUEST => {
                let parsed: ApiError = serde_json::from_str(&failure.body).unwrap_or_default();
                Error::BadRequest {
                    code: parsed.code,
                    message: parsed.message,
                    failure,
                }
            }
            Failure::Http(failure) if failure.status == StatusCode::UNPROCESSABLE_ENTITY => {
                let body = failure.body.as_str();
                let statuses = serde_json::from_str(body)
                    .or_else(|_| serde_json::from_str(body).map(|s| vec![s]))
                    .unwrap_or_default();
                Error::Validation { statuses, failure }
            }
            other => Error::Failure(other),
        }
    }
}

/// The licence nShift requires for an operation (named in the 403 hint).
fn licence_of(operation: &str) -> &'static str {
    match operation {
        "CreateShipment" | "PrintStoredShipment" | "ListShipmentPdfs" | "GetShipmentPdf" => {
            "REST API Print"
        }
        "SearchStoredShipments"
        | "CreateStoredShipment"
        | "GetStoredShipment"
        | "DeleteStoredShipment" => "REST API Store",
        "CancelShipment" => "REST API Discard",
        "FetchShipments" | "FetchAlerts" => "REST API TrackBack",
        "FindAgents" => "REST API PickUpLocator",
        "GetZipcodeInfo" => "REST API ZipCheck",
        "CheckAddress" => "REST API AddressCheck",
        "GetPrice" | "FetchPriceHistory" => "price (the licence name is undocumented)",
        _ => "the licence of this operation",
    }
}

/// Everything that can go wrong talking to nShift Delivery.
///
/// No variant ever holds a credential: the `Authorization` header is never copied, the JWT
/// endpoint's failures keep only the status, and bodies are nShift's answers, which do not echo
/// it. [`Error::hint`] says what to do, [`Error::kind`] what it means for a retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or malformed; the message names it.
    #[error("nShift client configuration: {0}")]
    Settings(#[from] SettingsError),
    /// The call failed on the shared request path: not sent, no answer in time, a broken
    /// connection, no JWT from `/sessions/jwt`, a non-success answer (other than 400/422), a
    /// success answer that does not decode, or a request refused before sending.
    #[error("nShift {0}")]
    Failure(#[from] Failure),
    /// 400: nShift's own error body `{code, message}` (MISSING, ILLEGAL, ...).
    #[error("{}: nShift refused the request (400 {}): {}", failure.operation,
        code.as_ref().map(ErrorCode::as_str).unwrap_or("no code"), message.as_deref().unwrap_or("no message"))]
    BadRequest {
        /// `MISSING`, `ILLEGAL`, or another code.
        code: Option<ErrorCode>,
        /// nShift's explanation.
        message: Option<String>,
        /// The answer.
        failure: Box<HttpFailure>,
    },
    /// 422: the shipment (or print configuration) failed validation; nothing was created.
    #[error("{}: nShift validation failed (422): {}", failure.operation, format_statuses(statuses))]
    Validation {
        /// The validation statuses: field, message, type, code and location of each.
        statuses: Vec<ValidationStatus>,
        /// The answer.
        failure: Box<HttpFailure>,
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
    let one = |s: &ValidationStatus| {
        format!(
            "{}: {} ({})",
            s.field.as_deref().filter(|f| !f.is_empty()).unwrap_or("?"),
            s.message.as_deref().unwrap_or("no message"),
            s.type_.as_ref().map(|t| t.as_str()).unwrap_or("?")
        )
    };
    statuses.iter().map(one).collect::<Vec<_>>().join("; ")
}

impl Error {
    /// A call refused before sending (a bad argument).
    pub(crate) fn invalid(operation: &'static str, reason: impl Into<String>) -> Self {
        Self::Failure(Failure::InvalidRequest {
            operation,
            reason: reason.into(),
        })
    }

    /// The HTTP status nShift (or `/sessions/jwt`) answered with, if any.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Failure(failure) => failure.status(),
            _ => self.response().map(|failure| failure.status),
        }
    }

    /// The raw answer (status, headers, body cut at [`client_core::BODY_LIMIT`]), for the
    /// errors that come from one.
    pub fn response(&self) -> Option<&HttpFailure> {
        match self {
            Self::Failure(failure) => failure.http(),
            Self::BadRequest { failure, .. } | Self::Validation { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// The request id nShift sent with the answer, if any.
    pub fn request_id(&self) -> Option<&str> {
        self.response()?.request_id.as_deref()
    }

    /// How long to wait before trying again, when nShift said (`Retry-After` of a 429).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Failure(failure) => failure.retry_after(),
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

    /// The shared classification of this error ([`client_core::ErrorKind`]): the request
    /// path's (a timeout, broken connection or 5xx of a call that is not safe to repeat is an
    /// ambiguous write), an unresolved booking is an ambiguous write, the rest permanent.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Failure(failure) => failure.kind(),
            Self::BookingUnresolved { .. } => ErrorKind::AmbiguousWrite,
            _ => ErrorKind::Permanent,
        }
    }

    /// `true` when the request may or may not have been carried out by nShift (a write that
    /// timed out, broke off or got a 5xx): reconcile (search) before sending it again.
    pub fn is_ambiguous(&self) -> bool {
        self.kind() == ErrorKind::AmbiguousWrite
    }

    /// Actionable advice naming the settings to check; shown by `relay verify`.
    pub fn hint(&self) -> String {
        match self {
            Self::Settings(e) => format!("fix the setting `{}`: {e}", e.setting()),
            Self::Failure(failure) => failure_hint(failure),
            Self::BadRequest { code, message, .. } => format!(
                "nShift refused an argument ({}): {}; fix the request",
                code.as_ref().map(ErrorCode::as_str).unwrap_or("no code"),
                message.as_deref().unwrap_or("no message")
            ),
            Self::Validation { statuses, .. } => format!(
                "fix the shipment data and send it again (nothing was created): {}",
                format_statuses(statuses)
            ),
            Self::BookingUnresolved { .. } => "every attempt ended without a definite answer: call book_once again with the same order number (it will not book twice)".to_owned(),
            Self::NotPrintable { .. } => "fix or delete the stored shipment in nShift (Stored shipments), then call book_once again".to_owned(),
        }
    }
}

fn credentials_hint() -> String {
    format!(
        "check {ENV_API_KEY_ID} and {ENV_SECRET_ID} (or {ENV_SECRET_ID}_FILE): the key must exist under Maintenance → API keys, be Enabled and of type Web Services (REST), and any IP restriction must allow this host; {ENV_AUTH} must be `basic` (id:secret), `bearer` (Bearer id-secret) or `jwt` (a JWT from /sessions/jwt, fetched with id:secret)"
    )
}

fn failure_hint(failure: &Failure) -> String {
    let wait = failure.retry_after().map_or_else(
        || "a while".to_owned(),
        |d| format!("{}s", d.as_secs().max(1)),
    );
    let write_may_have_happened = failure.kind() == ErrorKind::AmbiguousWrite;
    match failure {
        Failure::InvalidRequest { reason, .. } => format!("fix the call: {reason}"),
        Failure::NotSent { .. } => format!(
            "nShift could not be reached: check {ENV_BASE_URL} (default https://api.unifaun.com/rs-extapi/v1), DNS, proxies and firewalls; nothing was sent, so retrying is safe"
        ),
        Failure::Timeout { .. } if write_may_have_happened => "nShift did not answer in time: retry later; a booking may have gone through, so use book_once (which searches before re-posting) rather than re-posting by hand".to_owned(),
        Failure::Timeout { .. } => format!(
            "nShift did not answer in time: retry later, or raise {ENV_TIMEOUT_SECS}"
        ),
        Failure::Transport { .. } => format!(
            "the connection to nShift broke off: check {ENV_BASE_URL} and the network; a write may have gone through, so reconcile (book_once does) before re-posting"
        ),
        Failure::Token { source: TokenError::Endpoint { status, .. }, .. } => match status.as_u16() {
            401 => credentials_hint(),
            404 | 405 => format!(
                "the JWT session endpoint answered {status}: the method of /sessions/jwt is an open question, so switch {ENV_JWT_METHOD} (`post` or `get`), or set {ENV_AUTH}=basic"
            ),
            _ => session_hint(),
        },
        Failure::Token { source: TokenError::RateLimited { .. }, .. } => {
            format!("the JWT session endpoint is throttling: wait {wait} and try again")
        }
        Failure::Token { .. } => session_hint(),
        Failure::Http(http) => match http.status.as_u16() {
            401 => credentials_hint(),
            403 => format!(
                "the credentials are valid but not allowed to call {}: the account needs the `{}` licence (Help → Session → License keys), or the key in {ENV_API_KEY_ID} is bound to a profile (profile keys only see their profile group and cannot call GET /shipments or GET /alerts); use an account-level key with that licence",
                http.operation,
                licence_of(http.operation)
            ),
            404 | 410 => "the id does not exist (or belongs to another profile group); documents can only be fetched for one hour after printing".to_owned(),
            429 => format!(
                "nShift is throttling: wait {wait} before retrying, and poll the feeds no more often than their minDelay (at most once per five minutes when done)"
            ),
            500..=599 if write_may_have_happened => "nShift had an internal error: retry for a couple of minutes (a booking may have gone through: use book_once), then contact nShift support".to_owned(),
            500..=599 => "nShift had an internal error: retry for a couple of minutes, then contact nShift support".to_owned(),
            _ => format!(
                "nShift answered {}: check {ENV_BASE_URL} points at the rs-extapi/v1 API",
                http.status
            ),
        },
        Failure::Decode { .. } => format!(
            "nShift's answer did not match the expected shape: check {ENV_BASE_URL} points at the rs-extapi/v1 API; report the body if it does"
        ),
        _ => format!("nShift could not be called: retry later (check {ENV_BASE_URL} and the network)"),
    }
}

fn session_hint() -> String {
    format!(
        "no JWT could be fetched from /sessions/jwt: check {ENV_BASE_URL} and the network, or set {ENV_AUTH}=basic; nothing else was sent, so retrying is safe"
    )
}
