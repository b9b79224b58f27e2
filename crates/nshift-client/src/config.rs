//! Settings and the client builder (from code or from the environment).

use std::fmt;
use std::time::Duration;

use auth_core::{
    AuthLayer, ExposeSecret, RetryConfig, RetryLayer, SecretString, StaticToken, TokenCache,
    TokenCacheConfig, TraceLayer,
};
use bytes::Bytes;
use client_core::{ReqwestTransport, Settings, SettingsError};
use nshift_models::delivery::{PrintConfig, PrintFileType, PrintMedia};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::client::NshiftClient;
use crate::error::Error;
use crate::jwt::JwtSource;

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
const JWT_REFRESH_WINDOW: Duration = Duration::from_secs(10 * 60);

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

impl std::str::FromStr for AuthMode {
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
/// switches. A wrong method most likely answers 404 or 405 ([`Error::Session`](crate::Error)).
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

impl std::str::FromStr for JwtMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "post" => Ok(Self::Post),
            "get" => Ok(Self::Get),
            other => Err(format!("`{other}` is not `post` or `get`")),
        }
    }
}

/// The print configuration used by [`NshiftClient::book_once`] unless another is given:
/// one PDF label target on `thermo-190` (107×190 mm).
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

/// Builds an [`NshiftClient`] from code ([`NshiftClient::builder`]) or from the environment
/// ([`NshiftClientBuilder::from_env`]).
///
/// `Debug` never shows the secret.
///
/// ```
/// use nshift_client::{AuthMode, NshiftClient};
/// let client = NshiftClient::builder()
///     .api_key_id("ABCDEFGHIJKLMNOP")
///     .secret_id("s3cr3t-s3cr3t-s3cr3t-s3c".into())
///     .developer_id("0020012345")
///     .auth_mode(AuthMode::Basic)
///     .build()?;
/// assert!(!format!("{client:?}").contains("s3cr3t"));
/// # Ok::<(), nshift_client::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct NshiftClientBuilder {
    api_key_id: Option<String>,
    secret_id: Option<SecretString>,
    developer_id: Option<String>,
    base_url: Option<String>,
    auth_mode: AuthMode,
    jwt_method: JwtMethod,
    jwt_lifetime: Option<Duration>,
    timeout: Option<Duration>,
    retry: Option<RetryConfig>,
    transport: Option<Transport>,
    print_config: Option<PrintConfig>,
    book_once: BookOnceOptions,
}

impl fmt::Debug for NshiftClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NshiftClientBuilder")
            .field("api_key_id", &self.api_key_id)
            .field("secret_id", &self.secret_id.as_ref().map(|_| "[REDACTED]"))
            .field("developer_id", &self.developer_id)
            .field("base_url", &self.base_url)
            .field("auth_mode", &self.auth_mode)
            .field("jwt_method", &self.jwt_method)
            .field("jwt_lifetime", &self.jwt_lifetime)
            .field("timeout", &self.timeout)
            .field("custom_transport", &self.transport.is_some())
            .finish()
    }
}

/// Options of [`NshiftClient::book_once`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BookOnceOptions {
    /// Rounds of search → store/print before giving up with
    /// [`Error::BookingUnresolved`] (default 4).
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

fn check_id(setting: &str, value: &str) -> Result<(), SettingsError> {
    if value.is_empty() {
        return Err(SettingsError::missing(
            setting,
            "set the API key's ID (Maintenance → API keys)",
        ));
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        return Err(SettingsError::invalid(
            setting,
            "must not contain spaces, control characters or `:`",
        ));
    }
    Ok(())
}

impl NshiftClientBuilder {
    /// Reads every setting from the process environment (see the crate README for the table).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_settings(&Settings::from_env())
    }

    /// Reads the settings from `settings` (the environment or explicit pairs).
    ///
    /// Required: `NSHIFT_API_KEY_ID`, `NSHIFT_SECRET_ID` (or `NSHIFT_SECRET_ID_FILE`).
    /// Optional: `NSHIFT_DEVELOPER_ID`, `NSHIFT_BASE_URL`, `NSHIFT_AUTH`, `NSHIFT_JWT_METHOD`,
    /// `NSHIFT_JWT_LIFETIME_SECS`, `NSHIFT_TIMEOUT_SECS`.
    /// A missing or malformed setting is an error naming it.
    pub fn from_settings(settings: &Settings) -> Result<Self, Error> {
        let api_key_id = settings.required(
            ENV_API_KEY_ID,
            "set the API key's ID (Maintenance → API keys in nShift Delivery)",
        )?;
        check_id(ENV_API_KEY_ID, &api_key_id)?;
        let secret_id = settings.secret(ENV_SECRET_ID, "set the API key's Secret ID")?;
        let auth_mode = settings
            .parse::<AuthMode>(ENV_AUTH, "`basic`, `bearer` or `jwt`")?
            .unwrap_or_default();
        let jwt_method = settings
            .parse::<JwtMethod>(ENV_JWT_METHOD, "`post` or `get`")?
            .unwrap_or_default();
        let jwt_lifetime = settings.seconds(ENV_JWT_LIFETIME_SECS, 60)?;
        let timeout = settings.seconds(ENV_TIMEOUT_SECS, 1)?;
        let builder = Self {
            api_key_id: Some(api_key_id),
            secret_id: Some(secret_id),
            developer_id: settings.get(ENV_DEVELOPER_ID),
            base_url: settings.get(ENV_BASE_URL),
            auth_mode,
            jwt_method,
            jwt_lifetime,
            timeout,
            ..Self::default()
        };
        if let Some(url) = &builder.base_url {
            client_core::base_url(ENV_BASE_URL, url)?;
        }
        Ok(builder)
    }

    /// The API key's ID.
    pub fn api_key_id(mut self, id: impl Into<String>) -> Self {
        self.api_key_id = Some(id.into());
        self
    }

    /// The API key's Secret ID.
    pub fn secret_id(mut self, secret: SecretString) -> Self {
        self.secret_id = Some(secret);
        self
    }

    /// The integrator's nShift user id, put into every shipment that has no `developerId`.
    pub fn developer_id(mut self, id: impl Into<String>) -> Self {
        self.developer_id = Some(id.into());
        self
    }

    /// The API base URL including `/rs-extapi/v1` (HTTPS; plain HTTP only for loopback).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Basic (default), `Bearer id-secret`, or a JWT from `/sessions/jwt`.
    pub fn auth_mode(mut self, mode: AuthMode) -> Self {
        self.auth_mode = mode;
        self
    }

    /// The method of `/sessions/jwt` with [`AuthMode::Jwt`] (default POST; an open question).
    pub fn jwt_method(mut self, method: JwtMethod) -> Self {
        self.jwt_method = method;
        self
    }

    /// How long a JWT is used with [`AuthMode::Jwt`] (default [`DEFAULT_JWT_LIFETIME`]); it is
    /// refreshed in the background ten minutes (at most half its lifetime) before that.
    pub fn jwt_lifetime(mut self, lifetime: Duration) -> Self {
        self.jwt_lifetime = Some(lifetime);
        self
    }

    /// Per-request timeout of the default transport (default 30 s). Ignored with a custom
    /// [`transport`](Self::transport).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retry settings (default: auth-core's, 3 attempts; only idempotent requests are retried
    /// on 429/502/503/504, any request on a failure to connect).
    pub fn retry(mut self, config: RetryConfig) -> Self {
        self.retry = Some(config);
        self
    }

    /// The print configuration [`NshiftClient::book_once`] uses (default
    /// [`default_print_config`]).
    pub fn print_config(mut self, config: PrintConfig) -> Self {
        self.print_config = Some(config);
        self
    }

    /// Options of [`NshiftClient::book_once`].
    pub fn book_once_options(mut self, options: BookOnceOptions) -> Self {
        self.book_once = options;
        self
    }

    /// Sends requests through `transport` instead of a [`ReqwestTransport`]; it sits below the
    /// auth layer, so it sees the final request (tests wrap a `ReqwestTransport` to record
    /// [`client_core::RequestSnapshot`]s). Map failures to [`auth_core::Error::connect`] when
    /// nothing was sent and [`auth_core::Error::transport`] otherwise.
    pub fn transport<S>(mut self, transport: S) -> Self
    where
        S: tower::Service<
                http::Request<Bytes>,
                Response = http::Response<Bytes>,
                Error = auth_core::Error,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.transport = Some(BoxCloneSyncService::new(transport));
        self
    }

    /// Validates the settings and builds the stack Trace → Retry → Auth (static) → transport.
    pub fn build(self) -> Result<NshiftClient, Error> {
        let api_key_id = self.api_key_id.unwrap_or_default().trim().to_owned();
        check_id(ENV_API_KEY_ID, &api_key_id)?;
        let secret = self
            .secret_id
            .ok_or_else(|| SettingsError::missing(ENV_SECRET_ID, "set the API key's Secret ID"))?;
        let secret_text = secret.expose_secret().trim();
        if secret_text.is_empty() {
            return Err(
                SettingsError::missing(ENV_SECRET_ID, "set the API key's Secret ID").into(),
            );
        }
        if secret_text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(SettingsError::invalid(
                ENV_SECRET_ID,
                "must not contain spaces or control characters",
            )
            .into());
        }
        let secret = SecretString::from(secret_text.to_owned());
        let developer_id = self
            .developer_id
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        if let Some(dev) = &developer_id
            && dev.chars().any(char::is_control)
        {
            return Err(SettingsError::invalid(
                ENV_DEVELOPER_ID,
                "must not contain control characters",
            )
            .into());
        }
        let base_url = client_core::base_url(
            ENV_BASE_URL,
            self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let transport = match self.transport {
            Some(t) => t,
            None => BoxCloneSyncService::new(
                ReqwestTransport::new(self.timeout.unwrap_or(DEFAULT_TIMEOUT))
                    .map_err(Error::Transport)?,
            ),
        };
        let cache = match self.auth_mode {
            AuthMode::Basic => TokenCache::new(StaticToken::basic(&api_key_id, secret)),
            AuthMode::Bearer => TokenCache::new(StaticToken::bearer(SecretString::from(format!(
                "{api_key_id}-{}",
                secret.expose_secret()
            )))),
            AuthMode::Jwt => {
                let lifetime = self.jwt_lifetime.unwrap_or(DEFAULT_JWT_LIFETIME);
                if lifetime < Duration::from_secs(60) {
                    return Err(SettingsError::invalid(
                        ENV_JWT_LIFETIME_SECS,
                        "must be at least 60 seconds",
                    )
                    .into());
                }
                let source = JwtSource::new(
                    transport.clone(),
                    &base_url,
                    &api_key_id,
                    secret,
                    self.jwt_method,
                    lifetime,
                )
                .map_err(|e| SettingsError::invalid(ENV_SECRET_ID, e.to_string()))?;
                let mut config = TokenCacheConfig::default();
                config.refresh_window = JWT_REFRESH_WINDOW;
                TokenCache::with_config(source, config)
            }
        };
        let stack = ServiceBuilder::new()
            .layer(TraceLayer)
            .layer(RetryLayer::new(self.retry.unwrap_or_default()))
            .layer(AuthLayer::new(cache))
            .service(transport);
        Ok(NshiftClient::new(
            BoxCloneSyncService::new(stack),
            base_url,
            developer_id,
            self.auth_mode,
            self.print_config.unwrap_or_else(default_print_config),
            self.book_once,
        ))
    }
}
