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
use crate::store::{StoredTokens, TokenStore};
use crate::token::{BoxFuture, Token, TokenSource, run_detached};
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
pub struct RefreshTokenGrant<T> {
    inner: Arc<RefreshInner<T>>,
}

struct RefreshInner<T> {
    endpoint: Endpoint<T>,
    store: Arc<dyn TokenStore>,
    state: tokio::sync::Mutex<RefreshState>,
    min_reuse_lifetime: Duration,
}

#[derive(Default)]
struct RefreshState {
    loaded: bool,
    current: Option<StoredTokens>,
}

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
}

impl<T: TokenTransport> TokenSource for RefreshTokenGrant<T> {
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(run_detached(async move { inner.refresh().await }))
    }
}
