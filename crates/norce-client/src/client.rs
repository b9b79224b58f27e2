//! The client, its builder and the tower stack.

use std::fmt;
use std::sync::Arc;

use auth_core::{AuthLayer, SecretString, StaticHeadersLayer, TokenCache};
use client_core::{CommonOptions, Engine, Failure, Settings, SettingsError};
use tower::ServiceBuilder;

use crate::config::{Endpoints, Environment, Stage, resolve_scope};
use crate::error::{Error, Norce};
use crate::navigation::QueryNavigation;

/// Builds a [`NorceClient`] from code ([`NorceClient::builder`]) or from `NORCE_*` settings
/// ([`NorceClientBuilder::from_env`], [`NorceClientBuilder::from_settings`]). `Debug` never
/// shows the secret.
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

    /// A builder filled from the `NORCE_*` settings (the table is in the crate README,
    /// "Settings"). Every missing or malformed setting is an [`Error::Settings`] naming it.
    ///
    /// ```
    /// use client_core::Settings;
    /// let settings = Settings::from_pairs([("NORCE_CLIENT_ID", "id"), ("NORCE_CLIENT_SECRET", "s")]);
    /// let err = norce_client::NorceClientBuilder::from_settings(&settings).unwrap_err();
    /// assert!(err.to_string().contains("NORCE_APPLICATION_ID"));
    /// ```
    pub fn from_settings(settings: &Settings) -> Result<Self, Error> {
        let client_id = settings.required(
            "NORCE_CLIENT_ID",
            "set it to the OAuth2 Client ID of the integration user (Norce Admin > Settings > Users > OAUTH)",
        )?;
        let client_secret = settings.secret(
            "NORCE_CLIENT_SECRET",
            "set it to the OAuth2 Client Secret shown when the integration user was created",
        )?;
        let application_id = settings
            .parse::<i32>(
                "NORCE_APPLICATION_ID",
                "a number (the numeric ApplicationId)",
            )?
            .ok_or_else(|| {
                SettingsError::missing(
                    "NORCE_APPLICATION_ID",
                    "set it to the numeric id of the Norce Application (the ApplicationId header)",
                )
            })?;
        let stage = settings.parse::<Stage>("NORCE_STAGE", "playground, stage or production")?;
        let environment = match settings.get("NORCE_BASE_URL") {
            Some(url) => Environment::base_url(&url, stage)?,
            None => {
                let hint = "set it (the tenant host is {slug}.api-{region}[.{stage}].norce.tech), or set NORCE_BASE_URL";
                let slug = settings.required("NORCE_CLIENT_SLUG", hint)?;
                let region = settings.required("NORCE_REGION", hint)?;
                let stage = stage.ok_or_else(|| {
                    SettingsError::missing(
                        "NORCE_STAGE",
                        "set it to playground, stage or production",
                    )
                })?;
                Environment::norce(slug, region, stage)
            }
        };
        let builder = Self {
            client_id: Some(client_id),
            client_secret: Some(client_secret),
            application_id: Some(application_id),
            environment: Some(environment),
            scope: settings.get("NORCE_SCOPE"),
            legacy_lab_scope: settings.flag("NORCE_LEGACY_LAB_SCOPE")?,
            legacy_storm_identity: settings.flag("NORCE_LEGACY_STORM_IDENTITY")?,
            common: CommonOptions::from_settings(settings, "NORCE_TIMEOUT_SECS")?,
            query_navigation: Some(QueryNavigation::from_settings(settings)?),
        };
        // Check the scope now, so a missing stage is reported with the other settings.
        resolve_scope(
            builder.scope.as_deref(),
            builder.environment.as_ref().and_then(Environment::stage),
            builder.legacy_lab_scope,
        )?;
        Ok(builder)
    }

    /// The names Norce uses for the Query order navigations (`NORCE_QUERY_NAVIGATION`); the
    /// spec's names by default.
    pub fn query_navigation(mut self, navigation: QueryNavigation) -> Self {
        self.query_navigation = Some(navigation);
        self
    }

    /// The OAuth2 client id (`NORCE_CLIENT_ID`).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The OAuth2 client secret (`NORCE_CLIENT_SECRET`).
    pub fn client_secret(mut self, secret: SecretString) -> Self {
        self.client_secret = Some(secret);
        self
    }

    /// The numeric application id sent as `ApplicationId` on every call (`NORCE_APPLICATION_ID`).
    pub fn application_id(mut self, id: i32) -> Self {
        self.application_id = Some(id);
        self
    }

    /// A Norce tenant host (`NORCE_CLIENT_SLUG`, `NORCE_REGION`, `NORCE_STAGE`).
    pub fn tenant(
        mut self,
        client_slug: impl Into<String>,
        region: impl Into<String>,
        stage: Stage,
    ) -> Self {
        self.environment = Some(Environment::norce(client_slug, region, stage));
        self
    }

    /// Any environment.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// One root for every API (`NORCE_BASE_URL`): HTTPS, or HTTP on loopback.
    pub fn base_url(mut self, url: &str) -> Result<Self, Error> {
        let stage = self.environment.as_ref().and_then(Environment::stage);
        self.environment = Some(Environment::base_url(url, stage)?);
        Ok(self)
    }

    /// An explicit token scope (`NORCE_SCOPE`); otherwise it follows the stage.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Use scope `lab` for playground and stage (`NORCE_LEGACY_LAB_SCOPE`).
    pub fn legacy_lab_scope(mut self, on: bool) -> Self {
        self.legacy_lab_scope = on;
        self
    }

    /// Fetch tokens from the legacy Norce \[Storm\] identity host (`NORCE_LEGACY_STORM_IDENTITY`).
    pub fn legacy_storm_identity(mut self, on: bool) -> Self {
        self.legacy_storm_identity = on;
        self
    }

    client_core::common_setters!();

    /// Builds the client. The token cache and the token-endpoint limiter are shared with every
    /// client of the process that uses the same identity host and client id.
    pub fn build(self) -> Result<NorceClient, Error> {
        let client_id = self
            .client_id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                SettingsError::missing(
                    "NORCE_CLIENT_ID",
                    "set the OAuth2 Client ID of the integration user",
                )
            })?;
        let secret = self.client_secret.ok_or_else(|| {
            SettingsError::missing(
                "NORCE_CLIENT_SECRET",
                "set the OAuth2 Client Secret of the integration user",
            )
        })?;
        let application_id = self.application_id.ok_or_else(|| {
            SettingsError::missing("NORCE_APPLICATION_ID", "set the numeric ApplicationId")
        })?;
        let environment = self.environment.ok_or_else(|| {
            SettingsError::missing(
                "NORCE_BASE_URL",
                "set NORCE_CLIENT_SLUG, NORCE_REGION and NORCE_STAGE, or NORCE_BASE_URL",
            )
        })?;
        let scope = resolve_scope(
            self.scope.as_deref(),
            environment.stage(),
            self.legacy_lab_scope,
        )?;
        let endpoints = Endpoints::resolve(&environment, self.legacy_storm_identity)?;
        let transport = self.common.transport::<Norce>()?;
        let (cache, cache_id) = crate::registry::token_cache(
            &endpoints.token_url,
            &client_id,
            &secret,
            &scope,
            &transport,
        )
        .map_err(|e| SettingsError::invalid("NORCE_BASE_URL", e.to_string()))?;
        let headers = StaticHeadersLayer::new()
            .header("ApplicationId", &application_id.to_string())
            .map_err(|e| SettingsError::invalid("NORCE_APPLICATION_ID", e.to_string()))?;
        let auth = ServiceBuilder::new()
            .layer(AuthLayer::new(cache.clone()))
            .layer(headers)
            .service(transport);
        Ok(NorceClient {
            inner: Arc::new(Inner {
                engine: self.common.engine::<Norce>(auth),
                endpoints,
                application_id,
                client_id,
                scope,
                cache,
                cache_id,
                query_navigation: self.query_navigation.unwrap_or_default(),
            }),
        })
    }
}

/// A Norce Commerce client (Services 1.1, Connect 4.0, Query 3.0). Cheap to clone.
///
/// Every call carries `Authorization: Bearer …` (from a process-wide token cache) and
/// `ApplicationId`, runs in an `http.request` span, and is retried on 429/502/503/504
/// (honouring `Retry-After`) when it is safe to repeat.
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

    /// Whether two clients share one token cache (same identity host, client id, secret
    /// and scope).
    pub fn shares_token_cache_with(&self, other: &NorceClient) -> bool {
        self.inner.cache_id == other.inner.cache_id
    }

    /// How many tokens the (shared) token cache has fetched so far.
    pub fn token_fetch_count(&self) -> u64 {
        self.inner.cache.fetch_count()
    }

    /// Fetches (or reuses) a token without calling an API.
    pub async fn fetch_token(&self) -> Result<(), Error> {
        self.inner.cache.get().await.map(drop).map_err(|source| {
            Error::Failure(Failure::Token {
                operation: "RequestToken",
                source,
            })
        })
    }
}
