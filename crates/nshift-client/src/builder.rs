//! The client builder: settings from code or from the environment, and the tower stack.

use std::time::Duration;

use auth_core::{AuthLayer, ExposeSecret, SecretString, StaticToken, TokenCache, TokenCacheConfig};
use client_core::{CommonOptions, Settings, SettingsError};
use nshift_models::delivery::PrintConfig;
use tower::Layer as _;

use crate::client::NshiftClient;
use crate::config::{
    AuthMode, BookOnceOptions, DEFAULT_BASE_URL, DEFAULT_JWT_LIFETIME, ENV_API_KEY_ID, ENV_AUTH,
    ENV_BASE_URL, ENV_DEVELOPER_ID, ENV_JWT_LIFETIME_SECS, ENV_JWT_METHOD, ENV_SECRET_ID,
    ENV_TIMEOUT_SECS, JWT_REFRESH_WINDOW, JwtMethod, default_print_config,
};
use crate::error::{Error, Nshift};
use crate::jwt::JwtSource;

/// Builds an [`NshiftClient`] from code ([`NshiftClient::builder`]) or from the environment
/// ([`NshiftClientBuilder::from_env`]). `Debug` never shows the secret.
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
#[derive(Clone, Debug, Default)]
pub struct NshiftClientBuilder {
    api_key_id: Option<String>,
    secret_id: Option<SecretString>,
    developer_id: Option<String>,
    base_url: Option<String>,
    auth_mode: AuthMode,
    jwt_method: JwtMethod,
    jwt_lifetime: Option<Duration>,
    common: CommonOptions,
    print_config: Option<PrintConfig>,
    book_once: BookOnceOptions,
}

/// The API key's ID goes into the Basic `id:secret`, so it has no `:` and no white space.
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

impl NshiftClient {
    /// A builder; see [`NshiftClientBuilder`].
    pub fn builder() -> NshiftClientBuilder {
        NshiftClientBuilder::default()
    }

    /// A client configured from the environment (`NSHIFT_*`, see the README).
    pub fn from_env() -> Result<Self, Error> {
        NshiftClientBuilder::from_env()?.build()
    }
}

impl NshiftClientBuilder {
    /// Reads every setting from the process environment (see the crate README for the table).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_settings(&Settings::from_env())
    }

    /// Reads the settings from `settings` (the environment or explicit pairs; the table is in
    /// the crate README, "Configuration"). A missing or malformed setting is an error naming it.
    pub fn from_settings(settings: &Settings) -> Result<Self, Error> {
        let api_key_id = settings.required(
            ENV_API_KEY_ID,
            "set the API key's ID (Maintenance → API keys in nShift Delivery)",
        )?;
        check_id(ENV_API_KEY_ID, &api_key_id)?;
        let secret_id = settings.secret(ENV_SECRET_ID, "set the API key's Secret ID")?;
        let base_url = settings.get(ENV_BASE_URL);
        if let Some(url) = &base_url {
            client_core::base_url(ENV_BASE_URL, url)?;
        }
        Ok(Self {
            api_key_id: Some(api_key_id),
            secret_id: Some(secret_id),
            developer_id: settings.get(ENV_DEVELOPER_ID),
            base_url,
            auth_mode: (settings.parse(ENV_AUTH, "`basic`, `bearer` or `jwt`")?)
                .unwrap_or_default(),
            jwt_method: (settings.parse(ENV_JWT_METHOD, "`post` or `get`")?).unwrap_or_default(),
            jwt_lifetime: settings.seconds(ENV_JWT_LIFETIME_SECS, 60)?,
            common: CommonOptions::from_settings(settings, ENV_TIMEOUT_SECS)?,
            ..Self::default()
        })
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

    client_core::common_setters!();

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

    /// Validates the settings and builds the stack Trace → Retry → Auth → transport.
    pub fn build(self) -> Result<NshiftClient, Error> {
        let api_key_id = self.api_key_id.unwrap_or_default().trim().to_owned();
        check_id(ENV_API_KEY_ID, &api_key_id)?;
        let secret = self
            .secret_id
            .map(|s| s.expose_secret().trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SettingsError::missing(ENV_SECRET_ID, "set the API key's Secret ID"))?;
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let reason = "must not contain spaces or control characters";
            return Err(SettingsError::invalid(ENV_SECRET_ID, reason).into());
        }
        let secret = SecretString::from(secret);
        let developer_id = self.developer_id.map(|d| d.trim().to_owned());
        let developer_id = developer_id.filter(|d| !d.is_empty());
        if developer_id.iter().any(|d| d.chars().any(char::is_control)) {
            let reason = "must not contain control characters";
            return Err(SettingsError::invalid(ENV_DEVELOPER_ID, reason).into());
        }
        let base_url = self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let base_url = client_core::base_url(ENV_BASE_URL, base_url)?;
        let transport = self.common.transport::<Nshift>()?;
        let cache = match self.auth_mode {
            AuthMode::Basic => TokenCache::new(StaticToken::basic(&api_key_id, secret)),
            AuthMode::Bearer => {
                let combined = format!("{api_key_id}-{}", secret.expose_secret());
                TokenCache::new(StaticToken::bearer(SecretString::from(combined)))
            }
            AuthMode::Jwt => {
                let lifetime = self.jwt_lifetime.unwrap_or(DEFAULT_JWT_LIFETIME);
                if lifetime < Duration::from_secs(60) {
                    let reason = "must be at least 60 seconds";
                    return Err(SettingsError::invalid(ENV_JWT_LIFETIME_SECS, reason).into());
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
        let auth = AuthLayer::new(cache).layer(transport);
        Ok(NshiftClient {
            engine: self.common.engine::<Nshift>(auth),
            base_url,
            developer_id,
            auth_mode: self.auth_mode,
            print_config: self.print_config.unwrap_or_else(default_print_config),
            book_options: self.book_once,
        })
    }
}
