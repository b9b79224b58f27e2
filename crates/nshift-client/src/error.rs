//! The one error type: the settings, the shared request path's [`Failure`], and what only
//! nShift means (its 400 and 422 bodies, licences, what `book_once` found). The table of cases
//! is in the crate README, "Errors".

use std::time::Duration;

use auth_core::TokenError;
use client_core::{ErrorKind, Failure, HttpFailure, Platform, SettingsError};
use http::StatusCode;
use nshift_models::delivery::{Error as ApiError, ErrorCode, ValidationStatus};

/// nShift on the shared request engine.
pub(crate) enum Nshift {}

impl Platform for Nshift {
    const NAME: &'static str = "nshift";
    const REQUEST_ID_HEADERS: &'static [&'static str] = &["x-request-id", "request-id"];
    type Error = Error;

    /// A 400 carries nShift's `{code, message}`, a 422 its validation statuses (a list, or one).
    fn error(failure: Failure) -> Error {
        match failure {
            Failure::Http(failure) if failure.status == StatusCode::BAD_REQUEST => {
                let parsed: ApiError = serde_json::from_str(&failure.body).unwrap_or_default();
                let (code, message) = (parsed.code, parsed.message);
                Error::BadRequest {
                    code,
                    message,
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

    fn error_kind(error: &Error) -> Option<ErrorKind> {
        Some(error.kind())
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

/// Everything that can go wrong talking to nShift Delivery. No variant holds a credential:
/// the `Authorization` header is never copied, the JWT endpoint's failures keep only the
/// status, and bodies are nShift's answers, which do not echo it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is missing or malformed; the message names it.
    #[error("nShift client configuration: {0}")]
    Settings(#[from] SettingsError),
    /// The shared request path failed: not sent, no answer in time, a broken connection, no
    /// JWT, a non-success answer (but 400/422), an answer that does not decode, a bad argument.
    #[error("nShift {0}")]
    Failure(#[from] Failure),
    /// 400: nShift's own error body `{code, message}` (MISSING, ILLEGAL, ...).
    #[error("{}: nShift refused the request (400 {}", failure.operation, code_message(code, message))]
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
        /// Field, message, type, code and location of each problem.
        statuses: Vec<ValidationStatus>,
        /// The answer.
        failure: Box<HttpFailure>,
    },
    /// `book_once` ended every attempt ambiguously; calling it again is safe.
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
    /// `book_once` found the order's stored shipment WARNED, INVALID or FAILED.
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

/// `CODE): message`, as both the message and the hint of a 400 show it.
fn code_message(code: &Option<ErrorCode>, message: &Option<String>) -> String {
    let code = code.as_ref().map(ErrorCode::as_str).unwrap_or("no code");
    format!("{code}): {}", message.as_deref().unwrap_or("no message"))
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
        let reason = reason.into();
        Self::Failure(Failure::InvalidRequest { operation, reason })
    }

    /// The HTTP status nShift (or `/sessions/jwt`) answered with, if any.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Failure(failure) => failure.status(),
            _ => self.response().map(|failure| failure.status),
        }
    }

    /// The raw answer (body cut at [`client_core::BODY_LIMIT`]) of the errors that have one.
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

    /// The shared classification: the request path's, an unresolved booking is an ambiguous
    /// write, the rest permanent.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Failure(failure) => failure.kind(),
            Self::BookingUnresolved { .. } => ErrorKind::AmbiguousWrite,
            _ => ErrorKind::Permanent,
        }
    }

    /// `true` when nShift may or may not have carried the request out: reconcile (search)
    /// before sending it again.
    pub fn is_ambiguous(&self) -> bool {
        self.kind() == ErrorKind::AmbiguousWrite
    }

    /// Advice for an operator naming the settings to check (shown by `relay verify`).
    pub fn hint(&self) -> String {
        match self {
            Self::Settings(e) => format!("fix the setting `{}`: {e}", e.setting()),
            Self::Failure(failure) => failure_hint(failure),
            Self::BadRequest { code, message, .. } => format!(
                "nShift refused an argument ({}; fix the request",
                code_message(code, message)
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

const CREDENTIALS_HINT: &str = "check NSHIFT_API_KEY_ID and NSHIFT_SECRET_ID (or NSHIFT_SECRET_ID_FILE): the key must exist under Maintenance → API keys, be Enabled and of type Web Services (REST), and any IP restriction must allow this host; NSHIFT_AUTH must be `basic` (id:secret), `bearer` (Bearer id-secret) or `jwt` (a JWT from /sessions/jwt, fetched with id:secret)";

const SESSION_HINT: &str = "no JWT could be fetched from /sessions/jwt: check NSHIFT_BASE_URL and the network, or set NSHIFT_AUTH=basic; nothing else was sent, so retrying is safe";

fn failure_hint(failure: &Failure) -> String {
    let wait = failure.retry_after().map_or_else(
        || "a while".to_owned(),
        |d| format!("{}s", d.as_secs().max(1)),
    );
    let ambiguous = failure.kind() == ErrorKind::AmbiguousWrite;
    let hint = match failure {
        Failure::InvalidRequest { reason, .. } => return format!("fix the call: {reason}"),
        Failure::NotSent { .. } => {
            "nShift could not be reached: check NSHIFT_BASE_URL (default https://api.unifaun.com/rs-extapi/v1), DNS, proxies and firewalls; nothing was sent, so retrying is safe"
        }
        Failure::Timeout { .. } if ambiguous => {
            "nShift did not answer in time: retry later; a booking may have gone through, so use book_once (which searches before re-posting) rather than re-posting by hand"
        }
        Failure::Timeout { .. } => {
            "nShift did not answer in time: retry later, or raise NSHIFT_TIMEOUT_SECS"
        }
        Failure::Transport { .. } => {
            "the connection to nShift broke off: check NSHIFT_BASE_URL and the network; a write may have gone through, so reconcile (book_once does) before re-posting"
        }
        Failure::Token {
            source: TokenError::Endpoint { status, .. },
            ..
        } => match status.as_u16() {
            401 => CREDENTIALS_HINT,
            404 | 405 => {
                return format!(
                    "the JWT session endpoint answered {status}: the method of /sessions/jwt is an open question, so switch NSHIFT_JWT_METHOD (`post` or `get`), or set NSHIFT_AUTH=basic"
                );
            }
            _ => SESSION_HINT,
        },
        Failure::Token {
            source: TokenError::RateLimited { .. },
            ..
        } => {
            return format!("the JWT session endpoint is throttling: wait {wait} and try again");
        }
        Failure::Token { .. } => SESSION_HINT,
        Failure::Http(http) => match http.status.as_u16() {
            401 => CREDENTIALS_HINT,
            403 => {
                return format!(
                    "the credentials are valid but not allowed to call {}: the account needs the `{}` licence (Help → Session → License keys), or the key in NSHIFT_API_KEY_ID is bound to a profile (profile keys only see their profile group and cannot call GET /shipments or GET /alerts); use an account-level key with that licence",
                    http.operation,
                    licence_of(http.operation)
                );
            }
            404 | 410 => {
                "the id does not exist (or belongs to another profile group); documents can only be fetched for one hour after printing"
            }
            429 => {
                return format!(
                    "nShift is throttling: wait {wait} before retrying, and poll the feeds no more often than their minDelay (at most once per five minutes when done)"
                );
            }
            500..=599 if ambiguous => {
                "nShift had an internal error: retry for a couple of minutes (a booking may have gone through: use book_once), then contact nShift support"
            }
            500..=599 => {
                "nShift had an internal error: retry for a couple of minutes, then contact nShift support"
            }
            _ => {
                return format!(
                    "nShift answered {}: check NSHIFT_BASE_URL points at the rs-extapi/v1 API",
                    http.status
                );
            }
        },
        Failure::Decode { .. } => {
            "nShift's answer did not match the expected shape: check NSHIFT_BASE_URL points at the rs-extapi/v1 API; report the body if it does"
        }
        _ => "nShift could not be called: retry later (check NSHIFT_BASE_URL and the network)",
    };
    hint.to_owned()
}
