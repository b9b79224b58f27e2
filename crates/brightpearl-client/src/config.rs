//! The client builder (from code, a settings map or the environment) and the process-wide
//! limiter of each throttle pool.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use auth_core::{
    AuthLayer, Budget, ConfigError, FileTokenStore, MemoryTokenStore, RateLimitKey, RateLimiter,
    RefreshTokenGrant, SecretString, SharedAuthState, SharedTokenStore, StaticHeadersLayer,
    StaticToken, TokenCache, TokenStore, presets,
};
use brightpearl_models::oauth::RequestTokenPath;
use bytes::Bytes;
use client_core::{
    BoxTransport, CommonOptions, Engine, HealthRecorder, Settings, SettingsError, base_url,
};
use http::Response;
use http_body_util::Full;
use models_runtime::redact::REDACTED;
use tower::{ServiceBuilder, ServiceExt as _};

use crate::client::{BundleAvailabilityMode, Client, Inner, OAuthParts};
use crate::env::{self, DEFAULT_OAUTH_URL};
use crate::error::{Brightpearl, Error, Result};
use crate::session::{SeededStore, SessionCell};

/// The throttle-aware limiter ([`presets::brightpearl`]) of the pool of `account` and
/// `dev_ref`, shared by every client of this process. Brightpearl pools OAuth apps per account
/// and developer, private apps per account: pass an empty `dev_ref` for the latter.
pub fn shared_limiter(
    account: &str,
    dev_ref: &str,
) -> Result<(RateLimiter, RateLimitKey), ConfigError> {
    pool_limiter(account, dev_ref, None)
}

/// [`shared_limiter`], over `shared` when given: then the pool's budget is also shared with
/// every process using that state, under the same key.
pub fn pool_limiter(
    account: &str,
    dev_ref: &str,
    shared: Option<&Arc<dyn SharedAuthState>>,
) -> Result<(RateLimiter, RateLimitKey), ConfigError> {
    /// (account, developer, address of the shared state or 0) → the limiter, and the state
    /// kept alive so that its address is not reused.
    type Pools = Mutex<HashMap<(String, String, usize), PoolEntry>>;
    type PoolEntry = (RateLimiter, Option<Arc<dyn SharedAuthState>>);
    static POOLS: LazyLock<Pools> = LazyLock::new(Pools::default);
    let key = RateLimitKey::new(format!("brightpearl:{account}:{dev_ref}"));
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    let address = shared.map_or(0, |s| Arc::as_ptr(s).cast::<()>() as usize);
    let pool = (account.to_owned(), dev_ref.to_owned(), address);
    if let Some((limiter, _)) = pools.get(&pool) {
        return Ok((limiter.clone(), key));
    }
    let limiter = RateLimiter::new(presets::brightpearl())?;
    let limiter = match shared {
        Some(state) => limiter.with_shared(Arc::clone(state))?,
        None => limiter,
    };
    pools.insert(pool, (limiter.clone(), shared.cloned()));
    Ok((limiter, key))
}

/// The shared pair's name: one per account and OAuth client.
fn shared_pair_name(account: &str, client_id: &str) -> String {
    format!("brightpearl:oauth:{account}:{client_id}")
}

/// Builds a [`Client`] from code or settings ([`ClientBuilder::from_env`]); a missing or
/// malformed setting is an [`Error::Settings`] naming it.
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
    rate_limiter: Option<(RateLimiter, RateLimitKey)>,
    budget: Option<Budget>,
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
        ClientBuilder::default()
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

/// A required setting, or the error naming it with `hint`.
fn required(value: &Option<String>, name: &str, hint: &str) -> Result<String> {
    value
        .clone()
        .ok_or_else(|| SettingsError::missing(name, hint).into())
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

    /// Reads every setting from `settings` (names in [`env`](mod@env); secrets may come from
    /// `NAME_FILE`).
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
        /// Where rotating OAuth tokens are kept (a [`FileTokenStore`]; the session is kept
        /// next to it in `<path>.session`).
        fn token_store_path(impl Into<PathBuf>);
        /// A custom token store (e.g. [`auth_core::MemoryTokenStore`]); wins over the path.
        fn token_store(Arc<dyn TokenStore>);
        /// An initial refresh token, used only while the token store is empty.
        fn refresh_token(SecretString);
        /// The API base URL (`https://{host}`); with OAuth the token's `api_domain` wins.
        fn base_url(impl Into<String>);
        /// The OAuth base URL (default `https://oauth.brightpearl.com`).
        fn oauth_url(impl Into<String>);
        /// Longest ID-set text in one URI (default 1500 characters).
        fn max_id_set_chars(usize);
        /// How [`Client::bundle_availability`] asks (default one id per request).
        fn bundle_availability_mode(BundleAvailabilityMode);
    }

    client_core::common_setters!();

    /// How many ID-set chunks are fetched at once (default 4; all within the limiter).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n.max(1));
        self
    }

    /// Uses this limiter and key instead of the pool's shared one ([`shared_limiter`], or
    /// [`pool_limiter`] over the [shared auth state](Self::shared_auth_state)).
    pub fn rate_limiter(mut self, limiter: RateLimiter, key: RateLimitKey) -> Self {
        self.rate_limiter = Some((limiter, key));
        self
    }

    /// The class the client's requests draw from the account's limiter for (default:
    /// unlabelled, [`Priority::Live`](auth_core::Priority::Live)); see [`Client::with_budget`].
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Validates the settings and builds the client.
    pub fn build(self) -> Result<Client> {
        let hint =
            "set it to the Brightpearl account code (the first path segment after /public-api/)";
        let account = required(&self.account, env::ACCOUNT, hint)?;
        if !account
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            let reason = format!("`{account}` is not an account code (letters, digits, `-`, `_`)");
            return Err(SettingsError::invalid(env::ACCOUNT, reason).into());
        }
        let hint = "set it to the app reference shown in Brightpearl (App Store → your app), sent as brightpearl-app-ref on every call";
        let app_ref = required(&self.app_ref, env::APP_REF, hint)?;
        let base = self.base_url.as_deref();
        let base_url = base.map(|u| base_url(env::BASE_URL, u)).transpose()?;
        let transport = self.common.transport::<Brightpearl>()?;
        let (oauth, session, dev_ref, auth) = match self.staff_token.clone() {
            Some(staff) if base_url.is_some() => {
                let name = http::HeaderName::from_static("brightpearl-staff-token");
                let token = TokenCache::new(StaticToken::raw(staff));
                let layer = AuthLayer::new(token).header_name(name);
                (None, SessionCell::default(), self.dev_ref.clone(), layer)
            }
            Some(_) => {
                let hint =
                    "set it to the account's API host, e.g. https://euw1.brightpearlconnect.com";
                return Err(SettingsError::missing(env::BASE_URL, hint).into());
            }
            None => {
                let hint = "set it to your developer reference (required with OAuth; or set BRIGHTPEARL_STAFF_TOKEN for a private app)";
                let dev_ref = required(&self.dev_ref, env::DEV_REF, hint)?;
                let (parts, session) = self.oauth_parts(&account, &app_ref, &transport)?;
                let layer = AuthLayer::new(parts.cache.clone());
                (Some(parts), session, Some(dev_ref), layer)
            }
        };
        let shared = self.common.shared.as_ref();
        let pool = || pool_limiter(&account, dev_ref.as_deref().unwrap_or(""), shared);
        let limiter = self.rate_limiter.clone().map_or_else(pool, Ok);
        let (limiter, key) = limiter.map_err(|e| Error::invalid("build", e.to_string()))?;
        let invalid = |name| move |_| SettingsError::invalid(name, "not a valid header value");
        let headers = StaticHeadersLayer::new().header("brightpearl-app-ref", &app_ref);
        let mut headers = headers.map_err(invalid(env::APP_REF))?;
        if let Some(dev) = &dev_ref {
            let with_dev = headers.header("brightpearl-dev-ref", dev);
            headers = with_dev.map_err(invalid(env::DEV_REF))?;
        }
        let below_limiter = BoxTransport::new(
            ServiceBuilder::new()
                .layer(auth)
                .layer(headers)
                .service(transport),
        );
        let inner = Arc::new(Inner {
            account,
            app_ref,
            dev_ref,
            base_url,
            session,
            oauth,
            below_limiter,
            common: self.common.clone(),
            health: HealthRecorder::new(),
            limiter: (limiter, key),
            concurrency: self.concurrency.unwrap_or(4),
            max_id_set_chars: self.max_id_set_chars.unwrap_or(1500),
            bundle_mode: self.bundle_availability_mode.unwrap_or_default(),
        });
        // The limiter layer is the client's own: `with_budget` swaps it over the shared rest.
        let budget = self.budget.clone().unwrap_or_default();
        Ok(Client::over(inner, budget))
    }

    /// The OAuth side: the token store (seeded with the initial refresh token), the session
    /// next to it, and the rotating refresh-token grant over a transport whose token answers
    /// feed the session (`api_domain`).
    fn oauth_parts(
        &self,
        account: &str,
        app_ref: &str,
        transport: &BoxTransport,
    ) -> Result<(OAuthParts, SessionCell)> {
        let oauth = self.oauth_url.as_deref().unwrap_or(DEFAULT_OAUTH_URL);
        let oauth_url = base_url(env::OAUTH_URL, oauth)?;
        let stores = (&self.token_store, &self.token_store_path);
        let shared = self.common.shared.as_ref();
        let (store, session): (Arc<dyn TokenStore>, _) = match stores {
            (Some(store), _) => (Arc::clone(store), None),
            (None, Some(path)) => {
                let mut session = path.clone().into_os_string();
                session.push(".session");
                let store = Arc::new(FileTokenStore::new(path.clone()));
                (store, Some(PathBuf::from(session)))
            }
            // The shared state keeps the pair: nothing to seed it from but the initial token.
            (None, None) if shared.is_some() => (Arc::new(MemoryTokenStore::default()), None),
            (None, None) => {
                let hint = "set it to a writable file path where the rotating OAuth tokens are kept (run `relay auth brightpearl` to fill it), or share an auth state";
                return Err(SettingsError::missing(env::TOKEN_STORE, hint).into());
            }
        };
        let initial = self.refresh_token.clone();
        let store: Arc<dyn TokenStore> = Arc::new(SeededStore {
            inner: store,
            initial,
        });
        let client_id = self.client_id.clone().unwrap_or_else(|| app_ref.to_owned());
        let pair_name = shared_pair_name(account, &client_id);
        let shared_session = shared.map(|s| (Arc::clone(s), format!("{pair_name}:session")));
        let session = SessionCell::load(session, shared_session);
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
        };
        let token_url = client_core::join_path(&oauth_url, &path.to_path())
            .as_str()
            .parse();
        let invalid = |_| SettingsError::invalid(env::OAUTH_URL, "cannot form the token URL");
        let token_url: http::Uri = token_url.map_err(invalid)?;
        let (secret, store2) = (self.client_secret.clone(), Arc::clone(&store));
        // Token sources want an `http_body::Body`.
        let full = sniffing
            .clone()
            .map_response(|r: Response<Bytes>| r.map(Full::new));
        let grant = RefreshTokenGrant::new(full, token_url, client_id.clone(), secret, store2);
        // Shared: the pair lives in the shared state (the store above only seeds it), the
        // refresh happens under its claim, and a code exchange saves there.
        let (grant, store) = match shared {
            Some(state) => {
                let grant = grant.shared(Arc::clone(state), pair_name.clone());
                let view: Arc<dyn TokenStore> =
                    Arc::new(SharedTokenStore::new(Arc::clone(state), pair_name));
                (grant, view)
            }
            None => (grant, store),
        };
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
