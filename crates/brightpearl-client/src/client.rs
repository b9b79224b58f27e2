//! The client: request building, the tower stack, answer classification, OAuth helpers.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::{
    ExposeSecret, RateLimitKey, RateLimiter, SecretString, StoredTokens, TokenCache, TokenStore,
};
use brightpearl_models::common::{ApiError, ErrorEnvelope};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{Method, Request, Response, StatusCode, header};
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

use crate::config::{ClientBuilder, env};
use crate::error::{ApiFailure, Error, MAX_KEPT_BODY, Result};
use crate::idset::IdSet;
use crate::transport::{BoxTransport, Session, SessionCell, SniffingTransport, UnauthorizedSlot};

/// How calls authenticate.
pub(crate) enum Auth {
    /// OAuth bearer token from a rotating refresh-token grant.
    OAuth(TokenCache),
    /// A private app's staff token (`brightpearl-staff-token`).
    Staff(TokenCache),
}

/// What the OAuth helpers need.
pub(crate) struct OAuthParts {
    pub(crate) oauth_url: reqwest::Url,
    pub(crate) token_url: http::Uri,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<SecretString>,
    pub(crate) store: Arc<dyn TokenStore>,
    pub(crate) transport: SniffingTransport,
}

pub(crate) struct Inner {
    pub(crate) account: String,
    pub(crate) app_ref: String,
    pub(crate) dev_ref: Option<String>,
    pub(crate) base_url: Option<reqwest::Url>,
    pub(crate) session: SessionCell,
    pub(crate) auth: Auth,
    pub(crate) oauth: Option<OAuthParts>,
    pub(crate) stack: BoxTransport,
    pub(crate) limiter: RateLimiter,
    pub(crate) key: RateLimitKey,
    pub(crate) concurrency: usize,
    pub(crate) max_id_set_chars: usize,
    pub(crate) bundle_availability_mode: crate::BundleAvailabilityMode,
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
        f.debug_struct("Client")
            .field("account", &self.inner.account)
            .field("app_ref", &self.inner.app_ref)
            .field("dev_ref", &self.inner.dev_ref)
            .field(
                "auth",
                &match self.inner.auth {
                    Auth::OAuth(_) => "oauth",
                    Auth::Staff(_) => "staff-token",
                },
            )
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

/// Builds an [`ApiFailure`] from an answer.
pub(crate) fn failure_of(response: &Response<Bytes>) -> ApiFailure {
    let body = response.body();
    let errors: Vec<ApiError> = serde_json::from_slice::<ErrorEnvelope>(body)
        .map(|e| e.errors)
        .unwrap_or_default();
    let request_id = response
        .headers()
        .get("ruid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    ApiFailure {
        status: response.status(),
        errors,
        request_id,
        body: truncate(body),
    }
}

pub(crate) fn truncate(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= MAX_KEPT_BODY {
        return text.into_owned();
    }
    let mut end = MAX_KEPT_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn throttle_delay(response: &Response<Bytes>) -> Option<Duration> {
    let headers = response.headers();
    headers
        .get("brightpearl-next-throttle-period")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .or_else(|| auth_core::retry::parse_retry_after(headers))
}

/// Whether a 503/429 is Brightpearl's throttle (not an outage).
fn is_throttle(response: &Response<Bytes>) -> bool {
    match response.status() {
        StatusCode::TOO_MANY_REQUESTS => true,
        StatusCode::SERVICE_UNAVAILABLE => {
            if response
                .headers()
                .contains_key("brightpearl-next-throttle-period")
            {
                return true;
            }
            let body = String::from_utf8_lossy(response.body()).to_ascii_lowercase();
            body.contains("too many requests") || body.contains("please wait")
        }
        _ => false,
    }
}

/// Classifies a non-success answer.
pub(crate) fn error_of(response: &Response<Bytes>) -> Error {
    let failure = failure_of(response);
    match response.status() {
        StatusCode::UNAUTHORIZED => Error::Unauthorized(failure),
        StatusCode::FORBIDDEN => Error::Forbidden(failure),
        _ if is_throttle(response) => Error::Throttled {
            retry_after: throttle_delay(response),
            failure,
        },
        _ => Error::Api(failure),
    }
}

/// Decodes a success answer's body.
pub(crate) fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Decode {
        status,
        message: e.to_string(),
        body: truncate(body),
    })
}

#[derive(serde::Deserialize)]
struct Envelope<T> {
    response: T,
}

/// A call still throttled after the retry layer is sent again, after the limiter's pause, up
/// to this many times in total (a throttle 503 means the call was not processed, so this is
/// safe for every method; the retry layer itself only repeats idempotent calls).
const THROTTLE_ATTEMPTS: u32 = 4;

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A client from the environment variables (see [`crate::env`]).
    pub fn from_env() -> Result<Self> {
        ClientBuilder::from_env()?.build()
    }

    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

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
            client_core::SettingsError::missing(env::BASE_URL, "no api_domain is known yet: set it to the account's API host or run `relay auth brightpearl`").into()
        })
    }

    /// Makes sure a token is at hand (so `api_domain` is known before the URL is built).
    async fn warm_token(&self) -> Result<()> {
        if let Auth::OAuth(cache) = &self.inner.auth {
            cache.get().await.map_err(Error::Token)?;
        }
        Ok(())
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
        self.warm_token().await?;
        let base = self.base_url()?;
        let mut url = reqwest::Url::parse(&format!(
            "{}/public-api/{}{}",
            base.as_str().trim_end_matches('/'),
            self.inner.account,
            path
        ))
        .map_err(|e| Error::InvalidRequest(format!("bad path `{path}`: {e}")))?;
        client_core::append_query(&mut url, query);
        let mut attempt = 1;
        loop {
            let slot = UnauthorizedSlot::default();
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(url.as_str())
                .header(header::ACCEPT, "application/json");
            if body.is_some() {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
            }
            let request = builder
                .extension(slot.clone())
                .body(body.clone().unwrap_or_default())
                .map_err(|e| Error::InvalidRequest(e.to_string()))?;
            let result = self.inner.stack.clone().oneshot(request).await;
            let response = result.map_err(|e| Error::from_stack(e, slot.take()))?;
            if attempt < THROTTLE_ATTEMPTS && is_throttle(&response) {
                tracing::debug!(target: "brightpearl_client", attempt, path, "throttled; waiting for the limiter and trying again");
                attempt += 1;
                continue;
            }
            return Ok(response);
        }
    }

    /// [`Self::send_raw`], with a non-success answer turned into its [`Error`], except
    /// `404 CMNC-404` on a GET or an `OPTIONS` (Brightpearl's "nothing found"; on a write it
    /// stays an error), which is `Ok(None)`.
    pub(crate) async fn send_checked(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Bytes>,
    ) -> Result<Option<Response<Bytes>>> {
        let is_read = method == Method::GET || method == Method::OPTIONS;
        let response = self.send_raw(method, path, query, body).await?;
        if response.status().is_success() {
            return Ok(Some(response));
        }
        let error = error_of(&response);
        if is_read
            && response.status() == StatusCode::NOT_FOUND
            && error.failure().is_some_and(|f| f.has_code("CMNC-404"))
        {
            return Ok(None);
        }
        Err(error)
    }

    /// Sends a call and decodes `{"response": T}`; `Ok(None)` for `404 CMNC-404` on a GET or an
    /// `OPTIONS` (see [`Self::send_checked`]).
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Bytes>,
    ) -> Result<Option<T>> {
        let Some(response) = self.send_checked(method, path, query, body).await? else {
            return Ok(None);
        };
        let body = response.body();
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
            b"{\"response\":null}"
        } else {
            body
        };
        decode::<Envelope<T>>(response.status(), body).map(|e| Some(e.response))
    }

    /// Sends a call whose answer carries nothing of interest (`{}` of status PUTs and DELETEs).
    pub(crate) async fn call_unit(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<()> {
        self.send_checked(method, path, &[], body).await.map(drop)
    }

    /// JSON-encodes a request body.
    pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<Bytes> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| Error::InvalidRequest(e.to_string()))
    }

    /// Fetches `ids` in chunks of at most `max_ids` (and the URI length limit), `concurrency`
    /// chunks at a time within the limiter; `path` builds the path of one chunk. Chunks that
    /// find nothing (`CMNC-404`) contribute nothing.
    pub(crate) async fn get_chunked<T, F>(
        &self,
        ids: &IdSet,
        max_ids: usize,
        path: F,
    ) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(&IdSet) -> String,
    {
        let chunks = ids.chunks(max_ids, self.inner.max_id_set_chars);
        tracing::debug!(target: "brightpearl_client", ids = ids.len(), chunks = chunks.len(), "fetching ID set");
        // Collected first: a lazy `map` over borrowed chunks makes the whole future `Send` only
        // for some lifetimes, which callers that box it as `Send` cannot accept.
        let calls: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                let client = self.clone();
                let path = path(chunk);
                async move { client.call::<T>(Method::GET, &path, &[], None).await }
            })
            .collect();
        let results: Vec<Option<T>> = futures::stream::iter(calls)
            .buffer_unordered(self.inner.concurrency)
            .try_collect()
            .await?;
        Ok(results.into_iter().flatten().collect())
    }

    fn oauth(&self) -> Result<&OAuthParts> {
        self.inner.oauth.as_ref().ok_or_else(|| {
            Error::InvalidRequest(
                "this client uses a staff token (private app): OAuth is not configured".into(),
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
        let oauth = self.oauth()?;
        let mut url = reqwest::Url::parse(&format!(
            "{}/authorize/{}",
            oauth.oauth_url.as_str().trim_end_matches('/'),
            self.inner.account
        ))
        .map_err(|e| Error::InvalidRequest(e.to_string()))?;
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
        let oauth = self.oauth()?;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("client_id", &oauth.client_id)
            .append_pair("redirect_uri", redirect_uri);
        if let Some(secret) = &oauth.client_secret {
            form.append_pair("client_secret", secret.expose_secret());
        }
        let request = Request::builder()
            .method(Method::POST)
            .uri(oauth.token_url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Bytes::from(form.finish()))
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let sent_at = tokio::time::Instant::now();
        let response = auth_core::TokenTransport::send(&oauth.transport, request)
            .await
            .map_err(|e| Error::from_stack(auth_core::Error::from(e), None))?;
        let parsed =
            auth_core::oauth::parse_token_response(&response, sent_at).map_err(Error::Token)?;
        let refresh = parsed
            .refresh_token
            .clone()
            .ok_or(Error::Token(auth_core::TokenError::NoRefreshToken))?;
        let stored = StoredTokens {
            refresh_token: refresh,
            access_token: Some(parsed.access_token.secret().clone()),
            access_expires_at: Some(SystemTime::now() + parsed.expires_in),
        };
        oauth
            .store
            .save(&stored)
            .await
            .map_err(|e| Error::Token(e.into()))?;
        let session = self.inner.session.get();
        Ok(Authorization {
            api_domain: session.api_domain,
            installation_instance_id: session.installation_instance_id,
            expires_in: parsed.expires_in,
        })
    }
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
