//! The settings' names and defaults, and the plain option types (the bottom module: it imports
//! nothing of the crate, so the builder, the client and the errors can all name them). The
//! settings' table is in the crate README, "Configuration".

use std::str::FromStr;
use std::time::Duration;

use nshift_models::delivery::{PrintConfig, PrintFileType, PrintMedia};

/// `NSHIFT_API_KEY_ID`: the API key's ID (the Basic user).
pub const ENV_API_KEY_ID: &str = "NSHIFT_API_KEY_ID";
/// `NSHIFT_SECRET_ID` (or `NSHIFT_SECRET_ID_FILE`): the API key's Secret ID.
pub const ENV_SECRET_ID: &str = "NSHIFT_SECRET_ID";
/// `NSHIFT_DEVELOPER_ID`: the integrator's nShift user id, put into shipments that have none.
pub const ENV_DEVELOPER_ID: &str = "NSHIFT_DEVELOPER_ID";
/// `NSHIFT_BASE_URL`: the API base including `/rs-extapi/v1` (default [`DEFAULT_BASE_URL`]).
pub const ENV_BASE_URL: &str = "NSHIFT_BASE_URL";
/// `NSHIFT_AUTH`: [`AuthMode`] (`basic`, `bearer` or `jwt`).
pub const ENV_AUTH: &str = "NSHIFT_AUTH";
/// `NSHIFT_JWT_METHOD`: [`JwtMethod`] (`post` or `get`).
pub const ENV_JWT_METHOD: &str = "NSHIFT_JWT_METHOD";
/// `NSHIFT_JWT_LIFETIME_SECS`: how long a JWT is used (default [`DEFAULT_JWT_LIFETIME`]).
pub const ENV_JWT_LIFETIME_SECS: &str = "NSHIFT_JWT_LIFETIME_SECS";
/// `NSHIFT_TIMEOUT_SECS`: per-request timeout in seconds (default [`DEFAULT_TIMEOUT`]).
pub const ENV_TIMEOUT_SECS: &str = "NSHIFT_TIMEOUT_SECS";
/// The production base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.unifaun.com/rs-extapi/v1";
/// The per-request timeout used unless configured (30 s).
pub use client_core::DEFAULT_TIMEOUT;
/// How long a JWT is used unless configured: 11 hours, an hour inside nShift's 12.
pub const DEFAULT_JWT_LIFETIME: Duration = Duration::from_secs(11 * 3600);
/// The service below the trace, retry and auth layers (tests pass their own).
pub type Transport = client_core::BoxTransport;

/// An enum read from a setting: its values, `as_str` (the setting value) and case-insensitive
/// parsing whose error lists the values.
macro_rules! setting_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The setting value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $value,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let values = [$(Self::$variant,)+];
                let found = values.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s.trim()));
                found.ok_or_else(|| format!("`{s}` is not one of {}", [$($value,)+].join(", ")))
            }
        }
    };
}

setting_enum! {
    /// How the `Authorization` header is formed.
    AuthMode {
        /// `Basic base64(id:secret)`, the documented default.
        #[default]
        Basic = "basic",
        /// `Bearer <id>-<secret>` (the "combined" API key).
        Bearer = "bearer",
        /// `Bearer <JWT>` from `/sessions/jwt` (crate README, "JWT mode").
        Jwt = "jwt",
    }
}

setting_enum! {
    /// The method of `/sessions/jwt`. **Open question:** nShift's page shows GET in the heading
    /// and POST in its curl example; a wrong one most likely answers 404 or 405, whose
    /// [`hint`](crate::Error::hint) says to switch.
    JwtMethod {
        /// `POST` (the curl example; default).
        #[default]
        Post = "post",
        /// `GET` (the heading).
        Get = "get",
    }
}

/// The print configuration of [`NshiftClient::book_once`](crate::NshiftClient::book_once) unless another is set: one PDF
/// label target on `thermo-190` (107×190 mm).
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

/// Builder-style setters: `name(value: Type) => what the field is set to;`.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($value:ident: $ty:ty) => $set:expr;)+) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $value: $ty) -> Self {
            self.$name = $set;
            self
        }
    )+};
}
pub(crate) use setters;

/// Options of [`NshiftClient::book_once`](crate::NshiftClient::book_once); the crate README, "`book_once`", says when to
/// change them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BookOnceOptions {
    /// Rounds ending in a failure before giving up with
    /// [`Error::BookingUnresolved`](crate::Error::BookingUnresolved) (default 4, at least 1).
    pub max_rounds: u32,
    /// Before storing, also look for the order in the printed-shipments feed: for accounts
    /// where printed stored shipments leave the search; costs a feed walk and needs TrackBack
    /// (default `false`).
    pub check_feed_before_store: bool,
    /// Pages of the printed-shipments feed read at most (default 200, 20,000 events).
    pub max_feed_pages: u32,
    /// Pause before the next round after an ambiguous failure (default 500 ms; a 429's
    /// `Retry-After` wins, at most 60 s), on tokio's clock.
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
    setters! {
        /// Sets [`BookOnceOptions::check_feed_before_store`].
        check_feed_before_store(on: bool) => on;
        /// Sets [`BookOnceOptions::retry_delay`].
        retry_delay(delay: Duration) => delay;
        /// Sets [`BookOnceOptions::max_rounds`] (at least 1).
        max_rounds(rounds: u32) => rounds.max(1);
    }
}
