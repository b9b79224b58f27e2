//! The client: its state, the one request path (the shared engine, with Brightpearl's throttle
//! answers sent again and `404 CMNC-404` read as "nothing found"), ID-set chunking and the OAuth
//! helpers.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{
    ExposeSecret, RateLimitKey, RateLimiter, SecretString, StoredTokens, TokenCache, TokenError,
    TokenStore,
};
use brightpearl_models::oauth::{self, AuthorizePath, GrantType, RequestTokenPath, TokenRequest};
use bytes::Bytes;
use client_core::{ApiRequest, Engine, Failure, HttpFailure, Platform as _, SettingsError};
use futures::{StreamExt as _, TryStreamExt as _};
use http::{Method, Response, StatusCode};
use models_runtime::{Caller, Operation, OperationInfo};
use serde::de::DeserializeOwned;

use crate::env;
use crate::error::{Brightpearl, Error, Result, api_errors, is_throttle};
use crate::idset::IdSet;
use crate::session::{Session, SessionCell};

/// How [`Client::bundle_availability`] asks for several bundles.
///
/// Brightpearl documents `GET /warehouse-service/bundle-availability/{PRODUCT-ID}` with one id
/// (product-availability names its segment an ID set; this page does not, and states no
/// limit), so whether an ID set is accepted is unconfirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BundleAvailabilityMode {
    /// One request per bundle id, as documented (default). The requests run
    /// `concurrency` at a time through the shared limiter.
    #[default]
    PerId,
    /// ID sets of up to [`MAX_OTHER_IDS`](crate::MAX_OTHER_IDS) ids per request. A chunk
    /// Brightpearl refuses with 400 is asked again one id at a time (an id refused alone is left
    /// out and logged).
    IdSets,
}

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
    pub(crate) engine: Engine<Brightpearl>,
    pub(crate) limiter: RateLimiter,
    pub(crate) key: RateLimitKey,
    pub(crate) concurrency: usize,
    pub(crate) max_id_set_chars: usize,
    pub(crate) bundle_availability_mode: BundleAvailabilityMode,
}

/// A Brightpearl API client: cheap to clone, safe to share between tasks.
///
/// Every call goes through `TraceLayer → RetryLayer → RateLimitLayer → AuthLayer →
/// StaticHeadersLayer → transport` (auth-core): one `http.request` span per call, retries of
/// idempotent calls, the shared throttle-aware limiter, the token (refreshed once on a 401)
/// and the `brightpearl-app-ref` / `brightpearl-dev-ref` headers.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.inner.oauth.is_some() {
            "oauth"
        } else {
            "staff-token"
        };
        f.debug_struct("Client")
            .field("account", &self.inner.account)
            .field("app_ref", &self.inner.app_ref)
            .field("dev_ref", &self.inner.dev_ref)
            .field("auth", &auth)
            .field(
                "base_url",
                &self.inner.base_url.as_ref().map(|u| u.as_str()),
            )
            .finish_non_exhaustive()
    }
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

/// A call still throttled after the retry layer is sent again, after the limiter's pause, up
/// to this many times in total (a throttle 503 means the call was not processed, so this is
/// safe for every method; the retry layer itself only repeats idempotent calls).
const THROTTLE_ATTEMPTS: u32 = 4;

impl Client {
    /// The account code.
    pub fn account(&self) -> &str {
        &self.inner.account
    }

    /// The limiter and key this client draws from (shared per account and developer).
    pub fn rate_limiter(&self) -> (&RateLimiter, &RateLimitKey) {
        (&self.inner.limiter, &self.inner.key)
    }

    /// What token responses said about the installation (`api_domain`, instance id).
    pub fn session(&self) -> Session {
        self.inner.session.get()
    }

    /// The base URL calls go to now: the token's `api_domain` if known, else
    /// `BRIGHTPEARL_BASE_URL`.
    pub fn base_url(&self) -> Result<reqwest::Url> {
        if let Some(domain) = self.inner.session.get().api_domain {
            return api_domain_url(&domain);
        }
        self.inner.base_url.clone().ok_or_else(|| {
            SettingsError::missing(env::BASE_URL, "no api_domain is known yet: set it to the account's API host or run `relay auth brightpearl`").into()
        })
    }

    /// The base URL for a call of `operation`. With OAuth a token is fetched first, so that
    /// its `api_domain` is known.
    async fn base(&self, operation: &'static str) -> Result<reqwest::Url> {
        if let Some(oauth) = &self.inner.oauth {
            let token = oauth.cache.get().await;
            token.map_err(|source| Failure::Token { operation, source })?;
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

    /// Sends one call; `path` is relative to `/public-api/{account}` (e.g.
    /// `/product-service/product/1-5`). Returns the raw answer, whatever its status.
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

    /// Sends `request`; Brightpearl's throttle answer (the call was not processed) is sent
    /// again after the limiter's pause, whatever the method, up to [`THROTTLE_ATTEMPTS`] times
    /// in all. Returns the last answer, whatever its status.
    async fn send_throttled(&self, request: ApiRequest) -> Result<Response<Bytes>> {
        let mut attempt = 1;
        loop {
            let response = self.inner.engine.send_any(request.clone()).await?;
            if attempt == THROTTLE_ATTEMPTS
                || !is_throttle(response.status(), response.headers(), response.body())
            {
                return Ok(response);
            }
            tracing::debug!(target: "brightpearl_client", attempt, operation = request.info().operation.id, "throttled; waiting for the limiter and trying again");
            attempt += 1;
        }
    }

    /// [`Self::send_throttled`], a non-success answer turned into its [`Error`]. Brightpearl's
    /// "nothing found" (`404 CMNC-404` to a GET or an `OPTIONS`, see [`found`]) is not logged.
    pub(crate) async fn send(&self, request: ApiRequest) -> Result<Response<Bytes>> {
        let info = request.info();
        let response = self.send_throttled(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let read = matches!(info.operation.method, "GET" | "OPTIONS");
        if read && is_nothing_found(response.status(), response.body()) {
            let failure = HttpFailure::new(
                info.operation.id,
                info.idempotent,
                Brightpearl::REQUEST_ID_HEADERS,
                &response,
            );
            return Err(Brightpearl::error(Failure::Http(Box::new(failure))));
        }
        Err(self.inner.engine.reject(info, &response))
    }

    /// `ids` in ID-set chunks of at most `max_ids` (and the URI length limit), `concurrency`
    /// chunks at a time within the limiter; `fetch(client, account, id_set)` asks for one
    /// chunk. The answers come in chunk (ascending id) order; a chunk that finds nothing
    /// (`CMNC-404`) answers nothing. No ids sends nothing.
    pub(crate) async fn get_chunked<T, F>(
        &self,
        ids: &[u64],
        max_ids: usize,
        fetch: impl Fn(Client, String, String) -> F,
    ) -> Result<Vec<T>>
    where
        F: Future<Output = Result<T>> + Send,
    {
        let set = IdSet::from_ids(ids.iter().copied());
        let chunks = set.chunks(max_ids, self.inner.max_id_set_chars);
        tracing::debug!(target: "brightpearl_client", ids = ids.len(), chunks = chunks.len(), "fetching ID set");
        // Collected first: a lazy `map` over borrowed chunks makes the whole future `Send` only
        // for some lifetimes, which callers that box it as `Send` cannot accept.
        let calls: Vec<F> = chunks
            .iter()
            .map(|chunk| fetch(self.clone(), self.inner.account.clone(), chunk.to_string()))
            .collect();
        let answers: Vec<Option<T>> = futures::stream::iter(calls)
            .buffered(self.inner.concurrency)
            .map(found)
            .try_collect()
            .await?;
        Ok(answers.into_iter().flatten().collect())
    }

    fn oauth(&self, operation: &'static str) -> Result<&OAuthParts> {
        self.inner.oauth.as_ref().ok_or_else(|| {
            Error::invalid(
                operation,
                "this client uses a staff token (private app): OAuth is not configured",
            )
        })
    }

    /// A random `state` value for [`authorize_url`](Self::authorize_url) (CSRF protection:
    /// compare it with the `state` of the callback).
    pub fn generate_state() -> String {
        format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
    }

    /// The URL to open in the merchant's browser:
    /// `{oauth}/authorize/{account}?response_type=code&client_id=…&redirect_uri=…&state=…`.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str) -> Result<reqwest::Url> {
        let oauth = self.oauth(oauth::operations::AUTHORIZE.id)?;
        let account = self.inner.account.clone();
        let mut url =
            client_core::join_path(&oauth.oauth_url, &AuthorizePath { account }.to_path());
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
        let op = &oauth::operations::REQUEST_TOKEN;
        let oauth = self.oauth(op.id)?;
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
        let request = ApiRequest::operation::<oauth::operations::RequestToken>(
            &oauth.oauth_url,
            &path,
            &(),
            Some(&form),
        );
        let token = |source: TokenError| {
            Error::from(Failure::Token {
                operation: op.id,
                source,
            })
        };
        let sent_at = tokio::time::Instant::now();
        let response = oauth.engine.send_any(request).await?;
        let parsed = auth_core::oauth::parse_token_response(&response, sent_at).map_err(token)?;
        let refresh_token = parsed
            .refresh_token
            .clone()
            .ok_or_else(|| token(TokenError::NoRefreshToken))?;
        let stored = StoredTokens {
            refresh_token,
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
/// one request path, under the current base URL: Brightpearl's throttle answers sent again,
/// the answer decoded. The OAuth operations are refused: the token cache and
/// [`Client::exchange_code`] call the token endpoint.
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

/// Whether an answer is Brightpearl's "nothing found": `404` with `CMNC-404`.
fn is_nothing_found(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::NOT_FOUND && api_errors(body).iter().any(|e| e.code == "CMNC-404")
}

/// A read's answer, with Brightpearl's "nothing found" (`404 CMNC-404` to a GET or an
/// `OPTIONS`) as `None`. On a write the same answer stays an error.
pub(crate) fn found<T>(result: Result<T>) -> Result<Option<T>> {
    match result {
        Ok(answer) => Ok(Some(answer)),
        Err(e)
            if e.response()
                .is_some_and(|f| is_nothing_found(f.status, f.body.as_bytes())) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A success answer decoded; an empty body reads as `null` (Brightpearl's `{}` answers are
/// JSON values).
pub(crate) fn decode<T: DeserializeOwned>(
    operation: &'static str,
    response: &Response<Bytes>,
) -> Result<T> {
    let body = response.body();
    let decoded = if body.trim_ascii().is_empty() {
        serde_json::from_value(serde_json::Value::Null)
    } else {
        serde_json::from_slice(body)
    };
    decoded.map_err(|e| Failure::decode(operation, response, e).into())
}

/// `https://{api_domain}` (plain http only for a loopback host, as the sandbox uses).
fn api_domain_url(domain: &str) -> Result<reqwest::Url> {
    let domain = domain.trim().trim_end_matches('/');
    let candidate = if domain.contains("://") {
        domain.to_owned()
    } else {
        let host = domain.rsplit_once(':').map_or(domain, |(h, _)| h);
        let loopback = host == "localhost" || host == "[::1]" || host.starts_with("127.");
        format!("{}://{domain}", if loopback { "http" } else { "https" })
    };
    client_core::base_url("api_domain", &candidate).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_domain_becomes_a_url() {
        assert_eq!(
            api_domain_url("ws-use.brightpearl.com").unwrap().as_str(),
            "https://ws-use.brightpearl.com/"
        );
        assert_eq!(
            api_domain_url("127.0.0.1:8080").unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
        assert!(api_domain_url("http://evil.example").is_err());
    }
}
