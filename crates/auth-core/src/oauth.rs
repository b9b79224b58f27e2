//! OAuth2 token sources: client credentials and (rotating) refresh tokens.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use models_runtime::redact::REDACTED;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::backoff::parse_retry_after;
use crate::error::{InvalidTokenResponse, TokenError};
use crate::shared::{Coordinator, SharedAuthState, SharedPair, SharedToken, SharedTokenConfig};
use crate::store::{StoredTokens, TokenStore};
use crate::token::{AuthScheme, BoxFuture, Token, TokenSource, run_detached};
use crate::transport::TokenTransport;

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body (the default).
    #[default]
    Body,
    /// HTTP Basic `client_id:client_secret`.
    Basic,
}

/// A parsed, validated token response.
#[derive(Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: Token,
    /// A (possibly rotated) refresh token.
    pub refresh_token: Option<SecretString>,
    /// The lifetime the server granted.
    pub expires_in: Duration,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| REDACTED),
            )
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Validates a token endpoint answer.
///
/// `sent_at` is when the request was sent: the lifetime is counted from there on the local
/// clock, which is conservative and immune to server clock skew.
///
/// ```
/// use auth_core::oauth::parse_token_response;
/// use auth_core::{InvalidTokenResponse, TokenError};
/// let resp = http::Response::new(bytes::Bytes::from_static(br#"{"access_token":"a"}"#));
/// let err = parse_token_response(&resp, tokio::time::Instant::now()).unwrap_err();
/// assert!(matches!(err, TokenError::InvalidResponse(InvalidTokenResponse::MissingExpiresIn)));
/// ```
pub fn parse_token_response(
    response: &Response<Bytes>,
    sent_at: Instant,
) -> Result<TokenResponse, TokenError> {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(TokenError::RateLimited {
            retry_after: parse_retry_after(response.headers()),
        });
    }
    let json: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(response.body()).ok();
    if !status.is_success() {
        let field = |name: &str| {
            json.as_ref()
                .and_then(|m| m.get(name))
                .and_then(|v| v.as_str())
                .map(|s| s.chars().take(200).collect::<String>())
        };
        return Err(TokenError::Endpoint {
            status,
            error: field("error"),
            description: field("error_description"),
        });
    }
    let map = json.ok_or(InvalidTokenResponse::NotJson)?;
    let access = match map.get("access_token") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => SecretString::from(s.as_str()),
        _ => return Err(InvalidTokenResponse::MissingAccessToken.into()),
    };
    // Some servers send `expires_in` as a string; accept both, reject anything else.
    let expires_in: i64 = match map.get("expires_in") {
        None | Some(serde_json::Value::Null) => {
            return Err(InvalidTokenResponse::MissingExpiresIn.into());
        }
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .ok_or(InvalidTokenResponse::InvalidExpiresIn)?,
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| InvalidTokenResponse::InvalidExpiresIn)?,
        Some(_) => return Err(InvalidTokenResponse::InvalidExpiresIn.into()),
    };
    if expires_in <= 0 {
        return Err(InvalidTokenResponse::NonPositiveExpiresIn(expires_in).into());
    }
    let expires_in = Duration::from_secs(expires_in as u64);
    let expires_at = sent_at + expires_in;
    if expires_at <= Instant::now() {
        return Err(InvalidTokenResponse::AlreadyExpired.into());
    }
    let refresh_token = match map.get("refresh_token") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(SecretString::from(s.as_str())),
        _ => None,
    };
    Ok(TokenResponse {
        access_token: Token::bearer(access, Some(expires_at)),
        refresh_token,
        expires_in,
    })
}

/// Common endpoint settings.
struct Endpoint<T> {
    transport: T,
    token_url: Uri,
    client_id: String,
    client_secret: Option<SecretString>,
    client_auth: ClientAuth,
    extra: Vec<(String, String)>,
}

impl<T: TokenTransport> Endpoint<T> {
    /// Builds the form request synchronously (the form serializer is not `Send`).
    fn build_request(
        &self,
        grant: &str,
        params: &[(&str, &str)],
    ) -> Result<Request<Bytes>, TokenError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", grant);
        for (k, v) in params {
            form.append_pair(k, v);
        }
        for (k, v) in &self.extra {
            form.append_pair(k, v);
        }
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.token_url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        match self.client_auth {
            ClientAuth::Body => {
                form.append_pair("client_id", &self.client_id);
                if let Some(secret) = &self.client_secret {
                    form.append_pair("client_secret", secret.expose_secret());
                }
            }
            ClientAuth::Basic => {
                let basic = crate::token::StaticToken::basic(
                    &self.client_id,
                    self.client_secret
                        .clone()
                        .unwrap_or_else(|| SecretString::from("")),
                );
                let value: HeaderValue = basic.token().header_value()?;
                builder = builder.header(header::AUTHORIZATION, value);
            }
        }
        builder
            .body(Bytes::from(form.finish()))
            .map_err(TokenError::other)
    }

    /// Posts the form and validates the answer. `params` must not contain credentials
    /// other than the grant's own.
    async fn exchange(
        &self,
        grant: &str,
        params: &[(&str, &str)],
    ) -> Result<TokenResponse, TokenError> {
        let request = self.build_request(grant, params)?;
        let sent_at = Instant::now();
        let response = self
            .transport
            .send(request)
            .await
            .map_err(TokenError::transport)?;
        let status = response.status();
        let parsed = parse_token_response(&response, sent_at);
        tracing::debug!(target: "auth_core::token", grant, status = status.as_u16(), ok = parsed.is_ok(), "token endpoint answered");
        parsed
    }
}

/// OAuth2 client-credentials grant (`grant_type=client_credentials`).
///
/// ```no_run
/// # use auth_core::{ClientCredentials, TokenCache};
/// # use secrecy::SecretString;
/// # fn demo<T: auth_core::TokenTransport>(transport: T) -> Result<(), Box<dyn std::error::Error>> {
/// let source = ClientCredentials::new(
///     transport,
///     "https://example.invalid/identity/1.0/connect/token".parse()?,
///     "client-id",
///     SecretString::from("client-secret"),
/// )
/// .scope("playground");
/// let cache = TokenCache::new(source);
/// # Ok(()) }
/// ```
pub struct ClientCredentials<T> {
    endpoint: Endpoint<T>,
    scope: Option<String>,
}

impl<T: TokenTransport> ClientCredentials<T> {
    /// A source posting `client_id`/`client_secret` in the form body.
    pub fn new(
        transport: T,
        token_url: Uri,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        Self {
            endpoint: Endpoint {
                transport,
                token_url,
                client_id: client_id.into(),
                client_secret: Some(client_secret),
                client_auth: ClientAuth::Body,
                extra: Vec::new(),
            },
            scope: None,
        }
    }

    /// Sets the `scope` parameter.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Adds an extra form parameter (e.g. `audience`).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.endpoint.extra.push((name.into(), value.into()));
        self
    }

    /// Chooses how the client authenticates.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.endpoint.client_auth = auth;
        self
    }
}

impl<T> fmt::Debug for ClientCredentials<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.endpoint.token_url)
            .field("client_id", &self.endpoint.client_id)
            .field("client_secret", &REDACTED)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl<T: TokenTransport> TokenSource for ClientCredentials<T> {
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
        Box::pin(async move {
            let mut params: Vec<(&str, &str)> = Vec::new();
            if let Some(scope) = &self.scope {
                params.push(("scope", scope));
            }
            Ok(self
                .endpoint
                .exchange("client_credentials", &params)
                .await?
                .access_token)
        })
    }
}

/// OAuth2 refresh-token grant for servers that rotate refresh tokens.
///
/// Guarantees:
/// * exchanges are serialised, and the refresh token used is always the newest one, so two
///   refreshes never send the same refresh token;
/// * the new pair is saved to the [`TokenStore`] before the access token is returned;
/// * the exchange runs in its own task, so a caller giving up mid-exchange cannot lose a
///   rotated refresh token;
/// * on first use a still-valid access token from the store is reused, so a restart does
///   not spend a refresh.
///
/// With [`Self::shared`] these hold across processes too: the pair lives in a
/// [`SharedAuthState`], a refresh happens only under its claim after reading the newest
/// pair, and the save is a compare-and-swap on the refresh token spent.
pub struct RefreshTokenGrant<T> {
    inner: Arc<RefreshInner<T>>,
}

struct RefreshInner<T> {
    endpoint: Endpoint<T>,
    store: Arc<dyn TokenStore>,
    state: tokio::sync::Mutex<RefreshState>,
    min_reuse_lifetime: Duration,
    /// The pair's row and claim when several processes share it ([`RefreshTokenGrant::shared`]).
    shared: Option<Coordinator>,
    /// Shared mode: the access token handed out last (asked again, the cache wants another).
    last_access: std::sync::Mutex<Option<SecretString>>,
    /// Shared mode: a pair exchanged but not saved yet (the backend failed), with the refresh
    /// token it replaces. Its refresh token is the only live one: it is saved first.
    unsaved: std::sync::Mutex<Option<(Option<SecretString>, SharedPair)>>,
}

#[derive(Default)]
struct RefreshState {
    loaded: bool,
    current: Option<StoredTokens>,
}

/// How often a failing save of a freshly exchanged pair is tried while the claim is held.
const SHARED_SAVE_TRIES: u32 = 5;

impl<T: TokenTransport> RefreshTokenGrant<T> {
    /// A source that reads its initial refresh token from `store`.
    /// `client_secret` is optional: public clients send only `client_id`.
    pub fn new(
        transport: T,
        token_url: Uri,
        client_id: impl Into<String>,
        client_secret: Option<SecretString>,
        store: Arc<dyn TokenStore>,
    ) -> Self {
        Self {
            inner: Arc::new(RefreshInner {
                endpoint: Endpoint {
                    transport,
                    token_url,
                    client_id: client_id.into(),
                    client_secret,
                    client_auth: ClientAuth::Body,
                    extra: Vec::new(),
                },
                store,
                state: tokio::sync::Mutex::new(RefreshState::default()),
                min_reuse_lifetime: Duration::from_secs(120),
                shared: None,
                last_access: std::sync::Mutex::new(None),
                unsaved: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Adds an extra form parameter. Call before sharing the source.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.endpoint.extra.push((name.into(), value.into()));
        }
        self
    }

    /// A stored access token is reused at start-up only if it has at least this much
    /// lifetime left (default 120 s).
    pub fn min_reuse_lifetime(mut self, d: Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.min_reuse_lifetime = d;
        }
        self
    }

    /// Keeps the pair in `state` under `name`, shared with every process using it. Each
    /// fetch reads the newest pair and uses its access token when it has more than the
    /// minimum reuse lifetime left and is not the one this grant handed out last; otherwise
    /// it claims the lease `name`, reads again, exchanges the newest refresh token and saves
    /// with a compare-and-swap on it (a failed swap means another worker refreshed: its
    /// pair is used). The store given to [`Self::new`] becomes the seed: it is read only
    /// while `state` has no pair yet. Call before sharing the source.
    pub fn shared(self, state: Arc<dyn SharedAuthState>, name: impl Into<Arc<str>>) -> Self {
        self.shared_with_config(state, name, SharedTokenConfig::default())
    }

    /// [`Self::shared`] with an explicit lease and wait configuration.
    pub fn shared_with_config(
        mut self,
        state: Arc<dyn SharedAuthState>,
        name: impl Into<Arc<str>>,
        config: SharedTokenConfig,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.shared = Some(Coordinator::new(state, name, config));
        }
        self
    }
}

impl<T> fmt::Debug for RefreshTokenGrant<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenGrant")
            .field("token_url", &self.inner.endpoint.token_url)
            .field("client_id", &self.inner.endpoint.client_id)
            .field(
                "client_secret",
                &self.inner.endpoint.client_secret.as_ref().map(|_| REDACTED),
            )
            .finish_non_exhaustive()
    }
}

impl<T: TokenTransport> RefreshInner<T> {
    async fn refresh(&self) -> Result<Token, TokenError> {
        let mut state = self.state.lock().await;
        if let Some(shared) = &self.shared {
            return self.refresh_shared(shared).await;
        }
        if !state.loaded {
            state.current = self.store.load().await?;
            state.loaded = true;
            if let Some(stored) = &state.current
                && let Some(token) = stored.reusable_access_token(self.min_reuse_lifetime)
            {
                tracing::debug!(target: "auth_core::token", "reusing stored access token");
                return Ok(token);
            }
        }
        let refresh_token = state
            .current
            .as_ref()
            .ok_or(TokenError::NoRefreshToken)?
            .refresh_token
            .clone();
        let response = self
            .endpoint
            .exchange(
                "refresh_token",
                &[("refresh_token", refresh_token.expose_secret())],
            )
            .await?;
        let expires_at = SystemTime::now() + response.expires_in;
        let new = StoredTokens {
            // Servers that do not rotate omit the refresh token: keep using ours.
            refresh_token: response.refresh_token.clone().unwrap_or(refresh_token),
            access_token: Some(response.access_token.secret().clone()),
            access_expires_at: Some(expires_at),
        };
        // The old refresh token is dead at the server now: remember the new one in memory
        // first, so even a failing save cannot make us send the old one again.
        state.current = Some(new.clone());
        self.store.save(&new).await?;
        Ok(response.access_token)
    }

    /// The shared protocol (see [`RefreshTokenGrant::shared`]); the caller holds the
    /// in-process lock, so one exchange at a time per process as well.
    async fn refresh_shared(&self, shared: &Coordinator) -> Result<Token, TokenError> {
        let unsaved = self
            .unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((expected, pair)) = unsaved {
            // `false`: another worker saved a newer pair since; it is read below.
            let saved = shared
                .state
                .swap_pair(&shared.name, expected.as_ref(), &pair);
            if let Err(error) = saved.await {
                *self.unsaved.lock().unwrap_or_else(|p| p.into_inner()) = Some((expected, pair));
                return Err(error.into());
            }
        }
        let read = || async {
            let pair = shared.state.load_pair(&shared.name).await?;
            Ok(pair.and_then(|p| self.reusable_shared(&p)))
        };
        shared
            .once_per_lifetime(read, || self.refresh_under_claim(shared))
            .await
    }

    /// The pair's access token if it can be handed out: enough lifetime left, and not the
    /// one this grant handed out last.
    fn reusable_shared(&self, pair: &SharedPair) -> Option<Token> {
        let access = pair.access.as_ref()?;
        let left = access.expires_in()?;
        let mut last = self.last_access.lock().unwrap_or_else(|p| p.into_inner());
        let same = last
            .as_ref()
            .is_some_and(|l| l.expose_secret() == access.secret().expose_secret());
        if left <= self.min_reuse_lifetime || same {
            return None;
        }
        *last = Some(access.secret().clone());
        Some(access.to_token(AuthScheme::Bearer))
    }

    fn remember_access(&self, token: &Token) {
        *self.last_access.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.secret().clone());
    }

    /// Under the claim: read the newest pair (or the seed store while nothing is shared),
    /// exchange its refresh token, compare-and-swap the new pair in.
    async fn refresh_under_claim(&self, shared: &Coordinator) -> Result<Token, TokenError> {
        let current = shared.state.load_pair(&shared.name).await?;
        if let Some(token) = current.as_ref().and_then(|p| self.reusable_shared(p)) {
            return Ok(token); // another worker refreshed between our read and our claim
        }
        let (expected, refresh_token) = match current {
            Some(pair) => (Some(pair.refresh_token.clone()), pair.refresh_token),
            None => {
                let seed = self.store.load().await?.ok_or(TokenError::NoRefreshToken)?;
                if let Some(token) = seed.reusable_access_token(self.min_reuse_lifetime) {
                    let pair = SharedPair::from_stored(&seed);
                    if shared.state.swap_pair(&shared.name, None, &pair).await? {
                        tracing::debug!(target: "auth_core::token", name = %shared.name, "shared pair seeded with a still-valid access token");
                        self.remember_access(&token);
                        return Ok(token);
                    }
                    return Err(TokenError::Store(crate::error::StoreError::Conflict));
                }
                (None, seed.refresh_token)
            }
        };
        let response = self
            .endpoint
            .exchange(
                "refresh_token",
                &[("refresh_token", refresh_token.expose_secret())],
            )
            .await?;
        let access = SharedToken::new(
            response.access_token.secret().clone(),
            Some(response.expires_in),
        );
        let new = SharedPair {
            // Servers that do not rotate omit the refresh token: keep using ours.
            refresh_token: response.refresh_token.clone().unwrap_or(refresh_token),
            access: Some(access),
        };
        self.remember_access(&response.access_token);
        let mut tries = 0;
        loop {
            let swapped = shared
                .state
                .swap_pair(&shared.name, expected.as_ref(), &new);
            match swapped.await {
                Ok(true) => return Ok(response.access_token),
                Ok(false) => {
                    // Someone else refreshed (our claim had lapsed): theirs is the newest.
                    tracing::warn!(target: "auth_core::token", name = %shared.name, "another worker saved a newer token pair; using it");
                    let theirs = shared.state.load_pair(&shared.name).await?;
                    let access = theirs.and_then(|p| p.access);
                    let token = access.filter(|a| a.expires_in().is_some_and(|d| !d.is_zero()));
                    let token = token.map(|a| a.to_token(AuthScheme::Bearer));
                    let token = token.unwrap_or(response.access_token);
                    self.remember_access(&token);
                    return Ok(token);
                }
                Err(error) if tries + 1 < SHARED_SAVE_TRIES => {
                    tries += 1;
                    tracing::warn!(target: "auth_core::token", name = %shared.name, %error, tries, "cannot save the new token pair; trying again");
                    let backoff = shared.config.lease_ttl / (2 * SHARED_SAVE_TRIES);
                    tokio::time::sleep(backoff).await;
                }
                Err(error) => {
                    // The old refresh token is spent: keep the new pair and save it first
                    // next time; the access token is good meanwhile.
                    tracing::error!(target: "auth_core::token", name = %shared.name, %error, "cannot save the new token pair; kept in memory until the shared state is back");
                    let unsaved = (expected, new);
                    *self.unsaved.lock().unwrap_or_else(|p| p.into_inner()) = Some(unsaved);
                    return Ok(response.access_token);
                }
            }
        }
    }
}

impl<T: TokenTransport> TokenSource for RefreshTokenGrant<T> {
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(run_detached(async move { inner.refresh().await }))
    }
}
