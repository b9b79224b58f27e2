//! The settings' names and defaults, and the plain option types (the bottom module: it imports
//! nothing of the crate, so the builder, the client and the errors can all name the settings).

use std::str::FromStr;
use std::time::Duration;

use nshift_models::delivery::{PrintConfig, PrintFileType, PrintMedia};

/// `NSHIFT_API_KEY_ID`: the API key's ID (the Basic user).
pub const ENV_API_KEY_ID: &str = "NSHIFT_API_KEY_ID";
/// `NSHIFT_SECRET_ID`: the API key's Secret ID (the Basic password); or `NSHIFT_SECRET_ID_FILE`.
pub const ENV_SECRET_ID: &str = "NSHIFT_SECRET_ID";
/// `NSHIFT_DEVELOPER_ID`: the integrator's nShift user id, put into every shipment that has none.
pub const ENV_DEVELOPER_ID: &str = "NSHIFT_DEVELOPER_ID";
/// `NSHIFT_BASE_URL`: the API base including `/rs-extapi/v1` (default [`DEFAULT_BASE_URL`]).
pub const ENV_BASE_URL: &str = "NSHIFT_BASE_URL";
/// `NSHIFT_AUTH`: `basic` (default), `bearer` or `jwt`.
pub const ENV_AUTH: &str = "NSHIFT_AUTH";
/// `NSHIFT_JWT_METHOD`: `post` (default) or `get`, the method of `/sessions/jwt` (an open
/// question in the notes).
pub const ENV_JWT_METHOD: &str = "NSHIFT_JWT_METHOD";
/// `NSHIFT_JWT_LIFETIME_SECS`: how long a JWT is used (default 39600 = 11 h; nShift says 12 h).
pub const ENV_JWT_LIFETIME_SECS: &str = "NSHIFT_JWT_LIFETIME_SECS";
/// `NSHIFT_TIMEOUT_SECS`: per-request timeout in seconds (default 30).
pub const ENV_TIMEOUT_SECS: &str = "NSHIFT_TIMEOUT_SECS";

/// The production base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.unifaun.com/rs-extapi/v1";

/// The per-request timeout used unless configured (30 s).
pub use client_core::DEFAULT_TIMEOUT;

/// How long a JWT is used unless configured: 11 hours, an hour inside nShift's 12.
pub const DEFAULT_JWT_LIFETIME: Duration = Duration::from_secs(11 * 3600);

/// How long before [`DEFAULT_JWT_LIFETIME`] (or the configured lifetime) runs out a new JWT is
/// fetched in the background.
pub(crate) const JWT_REFRESH_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The service the client sends requests through (below the trace, retry and auth layers):
/// `http::Request<Bytes>` in, buffered `http::Response<Bytes>` out.
pub type Transport = client_core::BoxTransport;

/// How the `Authorization` header is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthMode {
    /// `Authorization: Basic base64(id:secret)`, the documented default.
    #[default]
    Basic,
    /// `Authorization: Bearer <id>-<secret>` (the "combined" API key).
    Bearer,
    /// `Authorization: Bearer <JWT>`: the JWT is fetched from `/sessions/jwt` with Basic
    /// `id:secret` (method [`JwtMethod`]), used for [`DEFAULT_JWT_LIFETIME`] (nShift says 12 h),
    /// refreshed ten minutes ahead in the background, and fetched anew (the request replayed
    /// once) when the API answers 401.
    Jwt,
}

impl AuthMode {
    /// The setting value (`basic` / `bearer` / `jwt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Bearer => "bearer",
            Self::Jwt => "jwt",
        }
    }
}

impl FromStr for AuthMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "basic" => Ok(Self::Basic),
            "bearer" => Ok(Self::Bearer),
            "jwt" => Ok(Self::Jwt),
            other => Err(format!("`{other}` is not `basic`, `bearer` or `jwt`")),
        }
    }
}

/// The method of `/sessions/jwt`. **Open question:** nShift's developer portal shows GET in
/// the heading and POST in its curl example; POST is the default, `NSHIFT_JWT_METHOD=get`
/// switches. A wrong method most likely answers 404 or 405 (a token failure whose
/// [`hint`](crate::Error::hint) says to switch it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum JwtMethod {
    /// `POST /sessions/jwt` (the curl example; default).
    #[default]
    Post,
    /// `GET /sessions/jwt` (the heading).
    Get,
}

impl JwtMethod {
    /// The setting value (`post` / `get`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Get => "get",
        }
    }
}

impl FromStr for JwtMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "post" => Ok(Self::Post),
            "get" => Ok(Self::Get),
            other => Err(format!("`{other}` is not `post` or `get`")),
        }
    }
}

/// The print configuration used by [`NshiftClient::book_once`](crate::NshiftClient::book_once)
/// unless another is given: one PDF label target on `thermo-190` (107×190 mm).
pub fn default_print_config() -> PrintConfig {
    PrintConfig {
        target1_media: PrintMedia::Thermo190,
        target1_type: Some(PrintFileType::Pdf),
        target1_x_offset: None,
        target1_y_offset: None,
        target1_options: None,
        target2_media: None,
        target2_type: None,
        target2_x_offset: None,
        target2_y_offset: None,
        target2_options: None,
        target3_media: None,
        target3_type: None,
        target3_x_offset: None,
        target3_y_offset: None,
        target3_options: None,
        target4_media: None,
        target4_type: None,
        target4_x_offset: None,
        target4_y_offset: None,
        target4_options: None,
    }
}

/// Options of [`NshiftClient::book_once`](crate::NshiftClient::book_once).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BookOnceOptions {
    /// Rounds of search → store/print before giving up with
    /// [`Error::BookingUnresolved`](crate::Error::BookingUnresolved) (default 4).
    pub max_rounds: u32,
    /// Before storing a new shipment, also look for an already printed shipment with the
    /// order number in the printed-shipments feed (`GET /shipments`). Needed only on accounts
    /// where printed stored shipments disappear from the stored-shipment search; costs a full
    /// feed walk and needs the TrackBack licence and an account-level key (default `false`).
    pub check_feed_before_store: bool,
    /// Pages of the printed-shipments feed read at most when looking for the shipments of an
    /// already printed order (default 200, i.e. 20,000 events).
    pub max_feed_pages: u32,
    /// Pause before the next round after an ambiguous failure (default 500 ms; a 429's
    /// `Retry-After` wins, capped at 60 s). Slept on tokio's clock.
    pub retry_delay: Duration,
}

impl Default for BookOnceOptions {
    fn default() -> Self {
        Self {
            max_rounds: 4,
            check_feed_before_store: false,
            max_feed_pages: 200,
            retry_delay: Duration::from_millis(500),
        }
    }
}

impl BookOnceOptions {
    /// Sets [`BookOnceOptions::check_feed_before_store`].
    pub fn check_feed_before_store(mut self, on: bool) -> Self {
        self.check_feed_before_store = on;
        self
    }

    /// Sets [`BookOnceOptions::retry_delay`].
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Sets [`BookOnceOptions::max_rounds`] (at least 1).
    pub fn max_rounds(mut self, rounds: u32) -> Self {
        self.max_rounds = rounds.max(1);
        self
    }
}
