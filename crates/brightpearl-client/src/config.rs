//! The client builder: from code, a settings map or the environment.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use auth_core::{
    AuthLayer, FileTokenStore, RateLimitKey, RateLimitLayer, RateLimiter, RefreshTokenGrant,
    SecretString, StaticHeadersLayer, StaticToken, TokenCache, TokenStore,
};
use brightpearl_models::oauth::RequestTokenPath;
use bytes::Bytes;
use client_core::{BoxTransport, CommonOptions, Engine, Settings, SettingsError};
use http::Response;
use models_runtime::redact::REDACTED;
use tower::{ServiceBuilder, ServiceExt as _};

use crate::client::{BundleAvailabilityMode, Client, Inner, OAuthParts};
use crate::env::{self, DEFAULT_OAUTH_URL};
use crate::error::{Brightpearl, Error, Result};
use crate::session::{SeededStore, SessionCell};

/// Builds a [`Client`]. Every setting can come from code or from the environment
/// ([`ClientBuilder::from_env`]); a missing or malformed one is an [`Error::Settings`] naming it.
///
/// ```
/// use brightpearl_client::Client;
/// let client = Client::builder()
///     .account("myaccount")
///     .app_ref("myaccount_relay")
///     .staff_token("s3cr3t".into())
///     .base_url("https://euw1.brightpearlconnect.com")
///     .build()?;
/// assert!(!format!("{client:?}").contains("s3cr3t"));
/// # Ok::<(), brightpearl_client::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct ClientBuilder {
    account: Option<String>,
    app_ref: Option<String>,
    dev_ref: Option<String>,
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    staff_token: Option<SecretString>,
    token_store: Option<Arc<dyn TokenStore>>,
    token_store_path: Option<PathBuf>,
    refresh_token: Option<SecretString>,
    base_url: Option<String>,
    oauth_url: Option<String>,
    common: CommonOptions,
    concurrency: Option<usize>,
    max_id_set_chars: Option<usize>,
    bundle_availability_mode: Option<BundleAvailabilityMode>,
    limiter: Option<(RateLimiter, RateLimitKey)>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<SecretString>| s.as_ref().map(|_| REDACTED);
        f.debug_struct("ClientBuilder")
            .field("account", &self.account)
            .field("app_ref", &self.app_ref)
            .field("dev_ref", &self.dev_ref)
            .field("client_id", &self.client_id)
            .field("client_secret", &secret(&self.client_secret))
            .field("staff_token", &secret(&self.staff_token))
            .field("token_store_path", &self.token_store_path)
            .field("refresh_token", &secret(&self.refresh_token))
            .field("base_url", &self.base_url)
            .field("oauth_url", &self.oauth_url)
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A client from the environment variables (see [`crate::env`]).
    pub fn from_env() -> Result<Self> {
        ClientBuilder::from_env()?.build()
    }
}

/// Builder setters that store their argument in the field of the same name.
macro_rules! setters {
    ($($(#[$doc:meta])* fn $name:ident($arg:ty);)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: $arg) -> Self {
            self.$name = Some(value.into());
            self
        }
    )*};
}

impl ClientBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every setting from the process environment (see [`env`](mod@env)).
    pub fn from_env() -> Result<Self> {
        Self::from_settings(&Settings::from_env())
    }

    /// Reads every setting from `settings` (see [`env`](mod@env) for the names). Secrets may come from
    /// `NAME_FILE`.
    pub fn from_settings(settings: &Settings) -> Result<Self> {
        Ok(Self {
            account: settings.get(env::ACCOUNT),
            app_ref: settings.get(env::APP_REF),
            dev_ref: settings.get(env::DEV_REF),
            client_id: settings.get(env::CLIENT_ID),
            client_secret: settings.optional_secret(env::CLIENT_SECRET)?,
            staff_token: settings.optional_secret(env::STAFF_TOKEN)?,
            refresh_token: settings.optional_secret(env::REFRESH_TOKEN)?,
            token_store_path: settings.get(env::TOKEN_STORE).map(PathBuf::from),
            base_url: settings.get(env::BASE_URL),
            oauth_url: settings.get(env::OAUTH_URL),
            common: CommonOptions::from_settings(settings, env::TIMEOUT_SECS)?,
            ..Self::default()
        })
    }

    setters! {
        /// The account code.
        fn account(impl Into<String>);
        /// The app reference (`brightpearl-app-ref`).
        fn app_ref(impl Into<String>);
        /// The developer reference (`brightpearl-dev-ref`), required with OAuth.
        fn dev_ref(impl Into<String>);
        /// The OAuth client id (default: the app reference).
        fn client_id(impl Into<String>);
        /// The OAuth client secret (apps with confidential OAuth).
        fn client_secret(SecretString);
        /// A private app's staff token: selects the private-app scheme instead of OAuth.
        fn staff_token(SecretString);
        /// Where rotating OAuth tokens are kept (a [`FileTokenStore`] at `path`; the session —
        /// `api_domain` — is kept next to it in `<path>.session`).
        fn token_store_path(impl Into<PathBuf>);
        /// A custom token store (e.g. [`auth_core::MemoryTokenStore`] in tests); wins over
        /// [`token_store_path`](Self::token_store_path).
        fn token_store(Arc<dyn TokenStore>);
        /// An initial refresh token, used only while the token store is empty.
        fn refresh_token(SecretString);
        /// The API base URL (`https://{host}`); with OAuth the token's `api_domain` wins.
        fn base_url(impl Into<String>);
        /// The OAuth base URL (default `https://oauth.brightpearl.com`).
        fn oauth_url(impl Into<String>);
        /// Longest ID-set text in one URI (default 1500 characters).
        fn max_id_set_chars(usize);
        /// How [`Client::bundle_availability`] asks Brightpearl: one bundle id per request (the
        /// default, as documented) or ID sets (unconfirmed; see [`crate::BundleAvailabilityMode`]).
        fn bundle_availability_mode(BundleAvailabilityMode);
    }

    client_core::common_setters!();

    /// How many ID-set chunks are fetched at once (default 4; all within the limiter).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n.max(1));
        self
    }

    /// Uses this limiter and key instead of the process-wide one of the (account, developer)
    /// pool ([`crate::shared_limiter`]).
    pub fn rate_limiter(mut self, limiter: RateLimiter, key: RateLimitKey) -> Self {
        self.limiter = Some((limiter, key));
        self
    }

    /// Validates the settings and builds the client.
    pub fn build(self) -> Result<Client> {
        let account = self.account.clone().ok_or_else(|| {
            SettingsError::missing(env::ACCOUNT, "set it to the Brightpearl account code")
        })?;
        if !account
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(SettingsError::invalid(
                env::ACCOUNT,
                format!("`{account}` is not an account code (letters, digits, `-`, `_`)"),
            )
            .into());
        }
        let app_ref = self.app_ref.clone().ok_or_else(|| {
            SettingsError::missing(
                env::APP_REF,
                "set it to the app reference (sent as brightpearl-app-ref on every call)",
            )
        })?;
        let base_url = self
            .base_url
            .as_deref()
            .map(|u| client_core::base_url(env::BASE_URL, u))
            .transpose()?;
        let transport = self.common.transport::<Brightpearl>()?;
        let session;
        let (oauth, dev_ref, auth_layer) = match self.staff_token.clone() {
            Some(staff) => {
                if base_url.is_none() {
                    return Err(SettingsError::missing(
                        env::BASE_URL,
                        "set it to the account's API host, e.g. https://euw1.brightpearlconnect.com",
                    )
                    .into());
                }
                session = SessionCell::default();
                let layer = AuthLayer::new(TokenCache::new(StaticToken::raw(staff)))
                    .header_name(http::HeaderName::from_static("brightpearl-staff-token"));
                (None, self.dev_ref.clone(), layer)
            }
            None => {
                let dev_ref = self.dev_ref.clone().ok_or_else(|| SettingsError::missing(env::DEV_REF, "set it to your developer reference (required with OAuth; or set BRIGHTPEARL_STAFF_TOKEN for a private app)"))?;
                let (parts, cell) = self.oauth_parts(&account, &app_ref, &transport)?;
                session = cell;
                let layer = AuthLayer::new(parts.cache.clone());
                (Some(parts), Some(dev_ref), layer)
            }
        };
        let (limiter, key) = match self.limiter.clone() {
            Some(pair) => pair,
            None => crate::limiter::shared_limiter(&account, dev_ref.as_deref().unwrap_or(""))
                .map_err(|e| Error::invalid("build", e.to_string()))?,
        };
        let mut headers = StaticHeadersLayer::new()
            .header("brightpearl-app-ref", &app_ref)
            .map_err(|_| SettingsError::invalid(env::APP_REF, "not a valid header value"))?;
        if let Some(dev) = &dev_ref {
            headers = headers
                .header("brightpearl-dev-ref", dev)
                .map_err(|_| SettingsError::invalid(env::DEV_REF, "not a valid header value"))?;
        }
        let stack = ServiceBuilder::new()
            .layer(RateLimitLayer::new(limiter.clone()).default_key(key.clone()))
            .layer(auth_layer)
            .layer(headers)
            .service(transport);
        Ok(Client {
            inner: Arc::new(Inner {
                account,
                app_ref,
                dev_ref,
                base_url,
                session,
                oauth,
                engine: self.common.engine::<Brightpearl>(stack),
                limiter,
                key,
                concurrency: self.concurrency.unwrap_or(4),
                max_id_set_chars: self.max_id_set_chars.unwrap_or(1500),
                bundle_availability_mode: self.bundle_availability_mode.unwrap_or_default(),
            }),
        })
    }

    /// The OAuth side: the token store (seeded with the initial refresh token), the session
    /// kept next to it, and the rotating refresh-token grant over a transport whose token
    /// answers feed the session (`api_domain`).
    fn oauth_parts(
        &self,
        account: &str,
        app_ref: &str,
        transport: &BoxTransport,
    ) -> Result<(OAuthParts, SessionCell)> {
        let oauth_url = client_core::base_url(
            env::OAUTH_URL,
            self.oauth_url.as_deref().unwrap_or(DEFAULT_OAUTH_URL),
        )?;
        let (store, session_file): (Arc<dyn TokenStore>, Option<PathBuf>) = match (
            &self.token_store,
            &self.token_store_path,
        ) {
            (Some(store), _) => (Arc::clone(store), None),
            (None, Some(path)) => {
                let mut session = path.clone().into_os_string();
                session.push(".session");
                let store = Arc::new(FileTokenStore::new(path.clone()));
                (store, Some(PathBuf::from(session)))
            }
            (None, None) => {
                return Err(SettingsError::missing(env::TOKEN_STORE, "set it to a file path where the rotating OAuth tokens are kept (run `relay auth brightpearl` to fill it)").into());
            }
        };
        let store: Arc<dyn TokenStore> = Arc::new(SeededStore {
            inner: store,
            initial: self.refresh_token.clone(),
        });
        let session = SessionCell::load(session_file);
        let observed = session.clone();
        let sniffing = transport
            .clone()
            .map_response(move |response: Response<Bytes>| {
                if response.status().is_success() {
                    observed.observe_token_body(response.body());
                }
                response
            });
        let path = RequestTokenPath {
            account: account.to_owned(),
        }
        .to_path();
        let token_url: http::Uri = client_core::join_path(&oauth_url, &path)
            .as_str()
            .parse()
            .map_err(|_| SettingsError::invalid(env::OAUTH_URL, "cannot form the token URL"))?;
        let client_id = self.client_id.clone().unwrap_or_else(|| app_ref.to_owned());
        // Token sources want an `http_body::Body`.
        let full = |r: Response<Bytes>| r.map(http_body_util::Full::new);
        let grant = RefreshTokenGrant::new(
            sniffing.clone().map_response(full),
            token_url,
            client_id.clone(),
            self.client_secret.clone(),
            Arc::clone(&store),
        );
        let parts = OAuthParts {
            oauth_url,
            client_id,
            client_secret: self.client_secret.clone(),
            store,
            cache: TokenCache::new(grant),
            engine: Engine::new(BoxTransport::new(sniffing)),
        };
        Ok((parts, session))
    }
}
