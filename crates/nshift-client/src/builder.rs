//! The builder: settings from code or the environment, validated, and the tower stack.

use std::time::Duration;

use auth_core::{
    AuthLayer, ExposeSecret, SecretString, SharedTokenConfig, SharedTokenSource, StaticToken,
    TokenCache, TokenCacheConfig,
};
use client_core::{CommonOptions, Settings, SettingsError};
use nshift_models::delivery::PrintConfig;
use tower::Layer as _;

use crate::client::NshiftClient;
use crate::config::{
    AuthMode, BookOnceOptions, DEFAULT_BASE_URL, DEFAULT_JWT_LIFETIME, ENV_API_KEY_ID, ENV_AUTH,
    ENV_BASE_URL, ENV_DEVELOPER_ID, ENV_JWT_LIFETIME_SECS, ENV_JWT_METHOD, ENV_SECRET_ID,
    ENV_TIMEOUT_SECS, JwtMethod, default_print_config, setters,
};
use crate::error::{Error, Nshift};
use crate::jwt::JwtSource;

/// Builds an [`NshiftClient`] from code or settings. `Debug` never shows the secret.
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
    auth_mode: Option<AuthMode>,
    jwt_method: Option<JwtMethod>,
    jwt_lifetime: Option<Duration>,
    print_config: Option<PrintConfig>,
    book_once_options: Option<BookOnceOptions>,
    common: CommonOptions,
}

/// The ID goes into the Basic `id:secret`, so it has no `:` and no white space.
fn check_id(value: &str) -> Result<(), SettingsError> {
    if value.is_empty() {
        let hint = "set the API key's ID (Maintenance → API keys)";
        return Err(SettingsError::missing(ENV_API_KEY_ID, hint));
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ':')
    {
        let reason = "must not contain spaces, control characters or `:`";
        return Err(SettingsError::invalid(ENV_API_KEY_ID, reason));
    }
    Ok(())
}

/// How long before it runs out a JWT is replaced.
const JWT_REFRESH_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The shared JWT's name: one per API base and API key (never the secret).
fn shared_jwt_name(base_url: &reqwest::Url, api_key_id: &str) -> String {
    let base = base_url.as_str().trim_end_matches('/');
    format!("nshift:jwt:{base}:{api_key_id}")
}

impl NshiftClient {
    /// A builder; see [`NshiftClientBuilder`].
    pub fn builder() -> NshiftClientBuilder {
        NshiftClientBuilder::default()
    }

    /// A client configured from the environment (`NSHIFT_*`).
    pub fn from_env() -> Result<Self, Error> {
        NshiftClientBuilder::from_env()?.build()
    }
}

impl NshiftClientBuilder {
    /// Reads every setting from the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_settings(&Settings::from_env())
    }

    /// Reads the settings from `settings`; a missing or malformed one is an error naming it.
    pub fn from_settings(settings: &Settings) -> Result<Self, Error> {
        let hint = "set the API key's ID (Maintenance → API keys in nShift Delivery)";
        let api_key_id = settings.required(ENV_API_KEY_ID, hint)?;
        check_id(&api_key_id)?;
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
            auth_mode: settings.parse(ENV_AUTH, "`basic`, `bearer` or `jwt`")?,
            jwt_method: settings.parse(ENV_JWT_METHOD, "`post` or `get`")?,
            jwt_lifetime: settings.seconds(ENV_JWT_LIFETIME_SECS, 60)?,
            common: CommonOptions::from_settings(settings, ENV_TIMEOUT_SECS)?,
            ..Self::default()
        })
    }

    setters! {
        /// The API key's ID.
        api_key_id(id: impl Into<String>) => Some(id.into());
        /// The API key's Secret ID.
        secret_id(secret: SecretString) => Some(secret);
        /// The integrator's nShift user id, put into every shipment that has no `developerId`.
        developer_id(id: impl Into<String>) => Some(id.into());
        /// The API base URL including `/rs-extapi/v1` (HTTPS; plain HTTP only for loopback).
        base_url(url: impl Into<String>) => Some(url.into());
        /// Basic (default), `Bearer id-secret`, or a JWT from `/sessions/jwt`.
        auth_mode(mode: AuthMode) => Some(mode);
        /// The method of `/sessions/jwt` with [`AuthMode::Jwt`] (default POST).
        jwt_method(method: JwtMethod) => Some(method);
        /// How long a JWT is used (default [`DEFAULT_JWT_LIFETIME`], at least 60 s); refreshed
        /// ten minutes (at most half its lifetime) before that.
        jwt_lifetime(lifetime: Duration) => Some(lifetime);
        /// The print configuration of [`NshiftClient::book_once`] (default
        /// [`default_print_config`]).
        print_config(config: PrintConfig) => Some(config);
        /// Options of [`NshiftClient::book_once`].
        book_once_options(options: BookOnceOptions) => Some(options);
    }

    client_core::common_setters!();

    /// Validates the settings and builds the stack Trace → Retry → Auth → transport. With a
    /// [shared auth state](Self::shared_auth_state) and [`AuthMode::Jwt`], every process
    /// sharing it uses one JWT per lifetime (Basic and Bearer need nothing shared).
    pub fn build(self) -> Result<NshiftClient, Error> {
        let api_key_id = self.api_key_id.unwrap_or_default().trim().to_owned();
        check_id(&api_key_id)?;
        let secret = self.secret_id.map(|s| s.expose_secret().trim().to_owned());
        let secret = secret
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
        let auth_mode = self.auth_mode.unwrap_or_default();
        let cache = match auth_mode {
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
                let jwt = (self.jwt_method.unwrap_or_default(), lifetime);
                let source = JwtSource::new(transport.clone(), &base_url, &api_key_id, secret, jwt)
                    .map_err(|e| SettingsError::invalid(ENV_SECRET_ID, e.to_string()))?;
                let mut config = TokenCacheConfig::default();
                // A new JWT is fetched in the background from ten minutes before it runs out.
                config.refresh_window = JWT_REFRESH_WINDOW;
                match &self.common.shared {
                    // One JWT per lifetime for every worker sharing the state.
                    Some(state) => {
                        let name = shared_jwt_name(&base_url, &api_key_id);
                        let mut shared = SharedTokenConfig::default();
                        // A JWT already inside its refresh window is fetched anew, not reused.
                        shared.min_remaining = JWT_REFRESH_WINDOW;
                        let source =
                            SharedTokenSource::with_config(source, state.clone(), name, shared);
                        TokenCache::with_config(source, config)
                    }
                    None => TokenCache::with_config(source, config),
                }
            }
        };
        let auth = AuthLayer::new(cache.clone()).layer(transport);
        Ok(NshiftClient {
            engine: self.common.engine::<Nshift>(auth),
            token: cache,
            base_url,
            developer_id,
            auth_mode,
            print_config: self.print_config.unwrap_or_else(default_print_config),
            book_options: self.book_once_options.unwrap_or_default(),
        })
    }
}
