//! The client: its state, the one request path (the shared engine, Brightpearl's throttle
//! answers sent again, "nothing found" to a read not logged) and the OAuth helpers.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{
    Budget, ExposeSecret, RateLimitKey, RateLimitLayer, RateLimiter, SecretString, StoredTokens,
    TokenCache, TokenError, TokenStore,
};
use brightpearl_models::oauth::operations::{AUTHORIZE, REQUEST_TOKEN, RequestToken};
use brightpearl_models::oauth::{AuthorizePath, GrantType, RequestTokenPath, TokenRequest};
use bytes::Bytes;
use client_core::{
    ApiRequest, BoxTransport, CommonOptions, Engine, Failure, HealthRecorder, HealthSnapshot,
    HttpFailure, Platform as _, SettingsError,
};
use http::{Method, Response};
use models_runtime::{Caller, Operation, OperationInfo};
use serde::de::DeserializeOwned;
use tower::Layer as _;

use crate::env;
use crate::error::{Brightpearl, Error, Result, is_nothing_found, is_throttle};
use crate::session::{Session, SessionCell};

/// What the OAuth helpers need.
pub(crate) struct OAuthParts {
    pub(crate) oauth_url: reqwest::Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<SecretString>,
    pub(crate) store: Arc<dyn TokenStore>,
    /// The rotating refresh-token grant's cache.
    pub(crate) cache: TokenCache,
    /// The token endpoint's engine: the bare transport, its answers fed to the session.
    pub(crate) engine: Engine<Brightpearl>,
}

pub(crate) struct Inner {
    pub(crate) account: String,
    pub(crate) app_ref: String,
    pub(crate) dev_ref: Option<String>,
    pub(crate) base_url: Option<reqwest::Url>,
    pub(crate) session: SessionCell,
    /// `None` for a private app (staff token).
    pub(crate) oauth: Option<OAuthParts>,
    /// The stack below the limiter (auth, headers, transport), for [`Client::with_budget`].
    pub(crate) below_limiter: BoxTransport,
    pub(crate) common: CommonOptions,
    /// The record of every engine's calls (one engine per [`Budget`]), for [`Client::health`].
    pub(crate) health: HealthRecorder,
    pub(crate) limiter: (RateLimiter, RateLimitKey),
    pub(crate) concurrency: usize,
    pub(crate) max_id_set_chars: usize,
    pub(crate) bundle_mode: BundleAvailabilityMode,
}

/// A Brightpearl API client: cheap to clone, safe to share between tasks. Its stack and what
/// it adds to the generated operations are in the crate documentation.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    /// The engine, its limiter layer drawing for this client's [`Budget`].
    pub(crate) engine: Engine<Brightpearl>,
    pub(crate) budget: Budget,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let auth = if inner.oauth.is_some() {
            "oauth"
        } else {
            "staff-token"
        };
        f.debug_struct("Client")
            .field("account", &inner.account)
            .field("app_ref", &inner.app_ref)
            .field("dev_ref", &inner.dev_ref)
            .field("auth", &auth)
            .field("base_url", &inner.base_url.as_ref().map(|u| u.as_str()))
            .finish_non_exhaustive()
    }
}

/// How [`Client::bundle_availability`] asks for several bundles: Brightpearl documents its
/// path with one id, so whether it takes an ID set is unconfirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BundleAvailabilityMode {
    /// One request per bundle id, as documented (default).
    #[default]
    PerId,
    /// ID sets of up to [`MAX_OTHER_IDS`](crate::MAX_OTHER_IDS) ids; a set refused with 400 is asked again one id
    /// at a time.
    IdSets,
}

/// The result of an authorization-code exchange (the tokens themselves went to the store).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Authorization {
    /// The API host to use for this account.
    pub api_domain: Option<String>,
    /// The installation instance id (use as `installedIntegrationInstanceId` on orders).
    pub installation_instance_id: Option<String>,
    /// Lifetime of the access token.
    pub expires_in: Duration,
}

/// The operation of a [`Client::send_raw`] call (any method and path).
static RAW: OperationInfo = OperationInfo {
    id: "SendRaw",
    method: "GET",
    path: "/public-api/{account}/{path}",
    success_status: 200,
    request_media_type: None,
    response_media_type: Some("application/json"),
};

/// A throttled call is sent again after the limiter's pause up to this many times in all: a
/// throttle answer means it was not processed, so this is safe for every method (the retry
/// layer only repeats idempotent calls).
const THROTTLE_ATTEMPTS: u32 = 4;

impl Client {
    /// The account code.
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    /// The limiter and key this client draws from (shared per account and developer).
    pub fn rate_limiter(&self) -> (&RateLimiter, &RateLimitKey) {
        (&self.inner.limiter.0, &self.inner.limiter.1)
    }

    /// The class this client's requests draw and are counted for (see [`Self::with_budget`]).
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The same client (account, tokens, limiter), its requests drawn for `budget`: when the
    /// account's limiter is saturated, [`Priority::Live`](auth_core::Priority::Live) callers
    /// go before [`Priority::Background`](auth_core::Priority::Background) ones, and each
    /// label's permits and waiting are counted ([`RateLimiter::usage`]).
    pub fn with_budget(&self, budget: Budget) -> Client {
        Client::over(Arc::clone(&self.inner), budget)
    }

    /// A client over `inner` whose limiter layer draws for `budget`.
    pub(crate) fn over(inner: Arc<Inner>, budget: Budget) -> Client {
        let (limiter, key) = &inner.limiter;
        let layer = RateLimitLayer::new(limiter.clone())
            .default_key(key.clone())
            .budget(budget.clone());
        let stack = layer.layer(inner.below_limiter.clone());
        let engine = (inner.common).engine_recording::<Brightpearl>(stack, inner.health.clone());
        Client {
            inner,
            engine,
            budget,
        }
    }

    /// How this client's calls went so far, for an operator's overview: requests, the last
    /// success, 429, 503 (Brightpearl's throttle) and error of every client over the same
    /// build (all its [budgets](Self::with_budget)); until when the OAuth access token is
    /// valid (`None` before the first call, and always with a staff token, which does not
    /// expire); and what is left of the account's rate budget (the last
    /// `brightpearl-requests-remaining`, this process's permits). Nothing is fetched.
    pub fn health(&self) -> HealthSnapshot {
        let inner = &self.inner;
        let mut health = self.engine.health();
        let valid_until = inner.oauth.as_ref().and_then(|o| o.cache.valid_until());
        health.token_valid_until = valid_until.map(|at| health.wall_time(at));
        let (limiter, key) = &inner.limiter;
        health.budget_left = Some(limiter.budget_left(key));
        health
    }

    /// What token responses said about the installation (`api_domain`, instance id).
    pub fn session(&self) -> Session {
        self.inner.session.get()
    }

    /// The base URL calls go to now: the token's `api_domain` if known, else
    /// `BRIGHTPEARL_BASE_URL`.
    pub fn base_url(&self) -> Result<reqwest::Url> {
        match (self.inner.session.get().api_domain, &self.inner.base_url) {
            (Some(domain), _) => api_domain_url(&domain),
            (None, Some(url)) => Ok(url.clone()),
            (None, None) => {
                let hint = "no api_domain is known yet: set it to the account's API host or run `relay auth brightpearl`";
                Err(SettingsError::missing(env::BASE_URL, hint).into())
            }
        }
    }

    /// The base URL for a call of `operation`. With OAuth the token comes first: its answer
    /// tells `api_domain`.
    async fn base(&self, operation: &'static str) -> Result<reqwest::Url> {
        if let Some(oauth) = &self.inner.oauth {
            let token = oauth.cache.get().await;
            token.map_err(|source| Failure::Token { operation, source })?;
            // A token another worker fetched came without its answer's `api_domain`.
            self.inner.session.read_shared().await;
        }
        self.base_url()
    }

    /// A request of `op` to `path` with `query` in this order, under the current base URL.
    pub(crate) async fn request(
        &self,
        op: &'static OperationInfo,
        path: &str,
        query: &[(String, String)],
    ) -> Result<ApiRequest> {
        let mut url = client_core::join_path(&self.base(op.id).await?, path);
        client_core::append_query(&mut url, query);
        Ok(ApiRequest::at(op, url))
    }

    /// Sends one call of any method to `path` under `/public-api/{account}` (e.g.
    /// `/product-service/product/1-5`, as [`Self::product_uris`] gives) and returns the answer,
    /// whatever its status.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Bytes>,
    ) -> Result<Response<Bytes>> {
        let path = format!("/public-api/{}{path}", self.inner.account);
        let mut request = self.request(&RAW, &path, query).await?.method(method);
        if let Some(body) = body {
            request = request.body(body, "application/json");
        }
        self.send_throttled(request).await
    }

    /// Sends `request`, a throttle answer again after the limiter's pause (see
    /// [`THROTTLE_ATTEMPTS`]); returns the last answer, whatever its status.
    async fn send_throttled(&self, request: ApiRequest) -> Result<Response<Bytes>> {
        let mut attempt = 1;
        loop {
            let response = self.engine.send_any(request.clone()).await?;
            let (status, headers, body) = (response.status(), response.headers(), response.body());
            if attempt == THROTTLE_ATTEMPTS || !is_throttle(status, headers, body) {
                return Ok(response);
            }
            tracing::debug!(target: "brightpearl_client", attempt, operation = request.info().operation.id, "throttled; waiting for the limiter and trying again");
            attempt += 1;
        }
    }

    /// [`Self::send_throttled`], a non-success answer turned into its [`Error`]; "nothing
    /// found" to a GET or an `OPTIONS` is not logged (it is an empty result to the caller).
    pub(crate) async fn send(&self, request: ApiRequest) -> Result<Response<Bytes>> {
        let info = request.info();
        let response = self.send_throttled(request).await?;
        let read = matches!(info.operation.method, "GET" | "OPTIONS");
        if response.status().is_success() {
            Ok(response)
        } else if read && is_nothing_found(response.status(), response.body()) {
            let ids = Brightpearl::REQUEST_ID_HEADERS;
            let failure = HttpFailure::new(info.operation.id, info.idempotent, ids, &response);
            Err(Brightpearl::error(Failure::Http(Box::new(failure))))
        } else {
            Err(self.engine.reject(info, &response))
        }
    }

    fn oauth(&self, operation: &'static str) -> Result<&OAuthParts> {
        let reason = "this client uses a staff token (private app): OAuth is not configured";
        self.inner
            .oauth
            .as_ref()
            .ok_or_else(|| Error::invalid(operation, reason))
    }

    /// A random `state` for [`Self::authorize_url`] (CSRF protection: compare it with the
    /// callback's).
    pub fn generate_state() -> String {
        format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
    }

    /// The URL to open in the merchant's browser:
    /// `{oauth}/authorize/{account}?response_type=code&client_id=…&redirect_uri=…&state=…`.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> Result<reqwest::Url> {
        let oauth = self.oauth(AUTHORIZE.id)?;
        let path = AuthorizePath {
            account: self.inner.account.clone(),
        }
        .to_path();
        let mut url = client_core::join_path(&oauth.oauth_url, &path);
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &oauth.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state);
        Ok(url)
    }

    /// Exchanges the callback's `code` (with the same `redirect_uri`) for tokens and saves
    /// them to the token store. Call it before this client's first API call (the refresh
    /// source reads the store once), e.g. from `relay auth brightpearl`.
    pub async fn exchange_code(&self, code: &str, redirect_uri: &str) -> Result<Authorization> {
        let oauth = self.oauth(REQUEST_TOKEN.id)?;
        let form = TokenRequest {
            grant_type: GrantType::AuthorizationCode,
            code: Some(code.to_owned()),
            redirect_uri: Some(redirect_uri.to_owned()),
            refresh_token: None,
            client_id: oauth.client_id.clone(),
            client_secret: oauth
                .client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            account_code: None,
        };
        let path = RequestTokenPath {
            account: self.inner.account.clone(),
        };
        let request =
            ApiRequest::operation::<RequestToken>(&oauth.oauth_url, &path, &(), Some(&form));
        let token = |source| {
            Error::from(Failure::Token {
                operation: REQUEST_TOKEN.id,
                source,
            })
        };
        let sent_at = tokio::time::Instant::now();
        let response = oauth.engine.send_any(request).await?;
        let parsed = auth_core::oauth::parse_token_response(&response, sent_at).map_err(token)?;
        let refresh_token = parsed
            .refresh_token
            .clone()
            .ok_or(TokenError::NoRefreshToken);
        let stored = StoredTokens {
            refresh_token: refresh_token.map_err(token)?,
            access_token: Some(parsed.access_token.secret().clone()),
            access_expires_at: Some(SystemTime::now() + parsed.expires_in),
        };
        oauth
            .store
            .save(&stored)
            .await
            .map_err(|e| token(e.into()))?;
        let session = self.inner.session.get();
        Ok(Authorization {
            api_domain: session.api_domain,
            installation_instance_id: session.installation_instance_id,
            expires_in: parsed.expires_in,
        })
    }
}

/// Every generated operation of the Brightpearl API (`ProductApi`, `OrderApi`, …) through the
/// one request path, under the current base URL. The OAuth operations are refused: the token
/// cache and [`Client::exchange_code`] call the token endpoint.
impl Caller for Client {
    type Error = Error;

    async fn call<O: Operation>(
        &self,
        path: &O::Path,
        query: &O::Query,
        body: Option<&O::Body>,
    ) -> Result<O::Response> {
        let op = &O::INFO;
        if !op.path.starts_with("/public-api/") {
            let reason = "not an API operation: tokens come from the client's token cache and `exchange_code`";
            return Err(Error::invalid(op.id, reason));
        }
        let base = self.base(op.id).await?;
        let request = ApiRequest::operation::<O>(&base, path, query, body);
        decode(op.id, &self.send(request).await?)
    }
}

/// A success answer decoded; an empty body reads as `null` (Brightpearl's `{}` answers are
/// JSON values).
pub(crate) fn decode<T: DeserializeOwned>(
    op: &'static str,
    response: &Response<Bytes>,
) -> Result<T> {
    let body = response.body();
    let decoded = match body.trim_ascii().is_empty() {
        true => serde_json::from_value(serde_json::Value::Null),
        false => serde_json::from_slice(body),
    };
    decoded.map_err(|e| Failure::decode(op, response, e).into())
}

/// `https://{api_domain}` (plain http only for a loopback host, as the sandbox uses).
fn api_domain_url(domain: &str) -> Result<reqwest::Url> {
    let domain = domain.trim().trim_end_matches('/');
    let host = domain.rsplit_once(':').map_or(domain, |(h, _)| h);
    let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.");
    let candidate = match (domain.contains("://"), loopback) {
        (true, _) => domain.to_owned(),
        (false, true) => format!("http://{domain}"),
        (false, false) => format!("https://{domain}"),
    };
    client_core::base_url("api_domain", &candidate).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_domain_becomes_a_url() {
        let url = |domain| api_domain_url(domain).map(|u| u.to_string());
        assert_eq!(
            url("ws-use.brightpearl.com").unwrap(),
            "https://ws-use.brightpearl.com/"
        );
        assert_eq!(url("127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080/");
        assert!(url("http://evil.example").is_err());
    }
}
