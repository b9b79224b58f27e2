//! The client, its builder and the tower stack (README, "Stack and tokens").

use std::fmt;
use std::sync::Arc;

use auth_core::{AuthLayer, SecretString, StaticHeadersLayer, TokenCache};
use client_core::{CommonOptions, Engine, Failure, HealthSnapshot, Settings, SettingsError};
use tower::ServiceBuilder;

use crate::config::{Endpoints, Environment, Stage, resolve_scope};
use crate::error::{Error, Norce};
use crate::navigation::QueryNavigation;

/// `value`, or `setting` is missing.
fn need<T>(value: Option<T>, setting: &str, hint: &str) -> Result<T, SettingsError> {
    value.ok_or_else(|| SettingsError::missing(setting, hint))
}

/// Builds a [`NorceClient`] from code ([`NorceClient::builder`]) or from the `NORCE_*`
/// settings. `Debug` never shows the secret.
#[derive(Clone, Debug, Default)]
pub struct NorceClientBuilder {
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    application_id: Option<i32>,
    environment: Option<Environment>,
    scope: Option<String>,
    legacy_lab_scope: bool,
    legacy_storm_identity: bool,
    common: CommonOptions,
    query_navigation: Option<QueryNavigation>,
}

impl NorceClientBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder filled from the process environment (see [`Self::from_settings`]).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_settings(&Settings::from_env())
    }

    /// A builder filled from the `NORCE_*` settings (README, "Settings"). A missing or
    /// malformed setting is an [`Error::Settings`] naming it.
    pub fn from_settings(settings: &Settings) -> Result<Self, Error> {
        let stage = settings.parse::<Stage>("NORCE_STAGE", "playground, stage or production")?;
        let environment = match settings.get("NORCE_BASE_URL") {
            Some(url) => Environment::base_url(&url, stage)?,
            None => {
                let hint = "set it (the tenant host is {slug}.api-{region}[.{stage}].norce.tech), or set NORCE_BASE_URL";
                let slug = settings.required("NORCE_CLIENT_SLUG", hint)?;
                let region = settings.required("NORCE_REGION", hint)?;
                let hint = "set it to playground, stage or production";
                Environment::norce(slug, region, need(stage, "NORCE_STAGE", hint)?)
            }
        };
        let builder = Self {
            client_id: settings.get("NORCE_CLIENT_ID"),
            client_secret: settings.optional_secret("NORCE_CLIENT_SECRET")?,
            application_id: settings
                .parse("NORCE_APPLICATION_ID", "a number (the ApplicationId)")?,
            environment: Some(environment),
            scope: settings.get("NORCE_SCOPE"),
            legacy_lab_scope: settings.flag("NORCE_LEGACY_LAB_SCOPE")?,
            legacy_storm_identity: settings.flag("NORCE_LEGACY_STORM_IDENTITY")?,
            common: CommonOptions::from_settings(settings, "NORCE_TIMEOUT_SECS")?,
            query_navigation: Some(QueryNavigation::from_settings(settings)?),
        };
        builder.required()?; // so that every missing setting is reported here
        Ok(builder)
    }

    /// What a client cannot do without: client id, secret, application id, environment and
    /// scope.
    fn required(&self) -> Result<(String, SecretString, i32, &Environment, String), Error> {
        let hint = "set it to the OAuth2 Client ID of the integration user (Norce Admin > Settings > Users > OAUTH)";
        let client_id = self.client_id.clone().filter(|s| !s.trim().is_empty());
        let client_id = need(client_id, "NORCE_CLIENT_ID", hint)?;
        let hint = "set it (or NORCE_CLIENT_SECRET_FILE) to the OAuth2 Client Secret shown when the integration user was created";
        let secret = need(self.client_secret.clone(), "NORCE_CLIENT_SECRET", hint)?;
        let hint = "set it to the numeric id of the Norce Application (the ApplicationId header)";
        let application_id = need(self.application_id, "NORCE_APPLICATION_ID", hint)?;
        let hint = "set NORCE_CLIENT_SLUG, NORCE_REGION and NORCE_STAGE, or NORCE_BASE_URL";
        let environment = need(self.environment.as_ref(), "NORCE_BASE_URL", hint)?;
        let stage = environment.stage();
        let scope = resolve_scope(self.scope.as_deref(), stage, self.legacy_lab_scope)?;
        Ok((client_id, secret, application_id, environment, scope))
    }

    setters! {
        /// The names Norce uses for the Query order navigations (`NORCE_QUERY_NAVIGATION`);
        /// the spec's names by default.
        query_navigation(QueryNavigation) => query_navigation = Some(query_navigation);
        /// The OAuth2 client id (`NORCE_CLIENT_ID`).
        client_id(impl Into<String>) => client_id = Some(client_id.into());
        /// The OAuth2 client secret (`NORCE_CLIENT_SECRET`).
        client_secret(SecretString) => client_secret = Some(client_secret);
        /// The application id sent as `ApplicationId` on every call (`NORCE_APPLICATION_ID`).
        application_id(i32) => application_id = Some(application_id);
        /// Any environment.
        environment(Environment) => environment = Some(environment);
        /// An explicit token scope (`NORCE_SCOPE`); otherwise it follows the stage.
        scope(impl Into<String>) => scope = Some(scope.into());
        /// The legacy scopes: `lab`, and `production` for production (`NORCE_LEGACY_LAB_SCOPE`).
        legacy_lab_scope(bool) => legacy_lab_scope = legacy_lab_scope;
        /// Tokens from the Norce \[Storm\] identity host (`NORCE_LEGACY_STORM_IDENTITY`).
        legacy_storm_identity(bool) => legacy_storm_identity = legacy_storm_identity;
    }

    /// A Norce tenant host (`NORCE_CLIENT_SLUG`, `NORCE_REGION`, `NORCE_STAGE`).
    pub fn tenant(self, slug: impl Into<String>, region: impl Into<String>, stage: Stage) -> Self {
        self.environment(Environment::norce(slug, region, stage))
    }

    /// One root for every API (`NORCE_BASE_URL`): HTTPS, or HTTP on loopback.
    pub fn base_url(self, url: &str) -> Result<Self, Error> {
        let stage = self.environment.as_ref().and_then(Environment::stage);
        Ok(self.environment(Environment::base_url(url, stage)?))
    }

    client_core::common_setters!();

    /// Builds the client. The token cache and the token-endpoint limiter are shared with every
    /// client of the process that uses the same identity host and client id (and the same
    /// shared auth state, which shares the token and the limiter's budget across processes).
    pub fn build(self) -> Result<NorceClient, Error> {
        let (client_id, secret, application_id, environment, scope) = self.required()?;
        let endpoints = Endpoints::resolve(environment, self.legacy_storm_identity)?;
        let transport = self.common.transport::<Norce>()?;
        let token_url = &endpoints.token_url;
        let shared = self.common.shared.as_ref();
        let (cache, cache_id) = crate::registry::token_cache(
            token_url, &client_id, &secret, &scope, &transport, shared,
        )
        .map_err(|e| SettingsError::invalid("NORCE_BASE_URL", e.to_string()))?;
        let headers = StaticHeadersLayer::new()
            .header("ApplicationId", &application_id.to_string())
            .map_err(|e| SettingsError::invalid("NORCE_APPLICATION_ID", e.to_string()))?;
        let stack = ServiceBuilder::new()
            .layer(AuthLayer::new(cache.clone()))
            .layer(headers)
            .service(transport);
        let inner = Inner {
            engine: self.common.engine::<Norce>(stack),
            endpoints,
            application_id,
            client_id,
            scope,
            cache,
            cache_id,
            query_navigation: self.query_navigation.unwrap_or_default(),
        };
        Ok(NorceClient {
            inner: Arc::new(inner),
        })
    }
}

/// A Norce Commerce client (Services 1.1, Connect 4.0, Query 3.0). Cheap to clone. Every
/// generated operation is a method of it (README, "Operations").
#[derive(Clone)]
pub struct NorceClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine<Norce>,
    pub(crate) endpoints: Endpoints,
    pub(crate) application_id: i32,
    client_id: String,
    scope: String,
    cache: TokenCache,
    cache_id: u64,
    pub(crate) query_navigation: QueryNavigation,
}

impl fmt::Debug for NorceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NorceClient")
            .field("endpoints", &self.inner.endpoints)
            .field("application_id", &self.inner.application_id)
            .field("client_id", &self.inner.client_id)
            .field("scope", &self.inner.scope)
            .finish_non_exhaustive()
    }
}

impl NorceClient {
    /// A builder.
    pub fn builder() -> NorceClientBuilder {
        NorceClientBuilder::new()
    }

    /// A client from the `NORCE_*` environment variables.
    pub fn from_env() -> Result<Self, Error> {
        NorceClientBuilder::from_env()?.build()
    }

    /// The URLs this client talks to.
    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    /// The application id sent as `ApplicationId`.
    pub fn application_id(&self) -> i32 {
        self.inner.application_id
    }

    /// The names this client uses for the Query order navigations.
    pub fn query_navigation(&self) -> &QueryNavigation {
        &self.inner.query_navigation
    }

    /// The token scope.
    pub fn scope(&self) -> &str {
        &self.inner.scope
    }

    /// Whether two clients share one token cache (same identity host, client id, secret and
    /// scope).
    pub fn shares_token_cache_with(&self, other: &NorceClient) -> bool {
        self.inner.cache_id == other.inner.cache_id
    }

    /// How many tokens the (shared) token cache has fetched so far.
    pub fn token_fetch_count(&self) -> u64 {
        self.inner.cache.fetch_count()
    }

    /// How this client's calls went so far (requests, the last success, 429, 503 and error)
    /// and until when its cached token is valid, for an operator's overview. Norce reports no
    /// rate budget, so `budget_left` is `None`. Nothing is fetched.
    pub fn health(&self) -> HealthSnapshot {
        let mut health = self.inner.engine.health();
        let valid_until = self.inner.cache.valid_until();
        health.token_valid_until = valid_until.map(|at| health.wall_time(at));
        health
    }

    /// Fetches (or reuses) a token without calling an API.
    pub async fn fetch_token(&self) -> Result<(), Error> {
        let source = match self.inner.cache.get().await {
            Ok(_) => return Ok(()),
            Err(source) => source,
        };
        let operation = "RequestToken";
        Err(Error::Failure(Failure::Token { operation, source }))
    }
}
