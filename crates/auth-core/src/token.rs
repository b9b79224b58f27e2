//! Tokens, the [`TokenSource`] trait and static credentials.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use http::HeaderValue;
use models_runtime::redact::REDACTED;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::error::{InvalidTokenResponse, TokenError};

/// A boxed, `Send` future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs `fetch` in its own task when a tokio runtime is available, so a caller that is
/// cancelled cannot abort a fetch others depend on; inline otherwise. A task that panics or
/// is aborted gives [`TokenError::Cancelled`].
pub(crate) async fn run_detached<T: Send + 'static>(
    fetch: impl Future<Output = Result<T, TokenError>> + Send + 'static,
) -> Result<T, TokenError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn(fetch)
            .await
            .unwrap_or(Err(TokenError::Cancelled)),
        Err(_) => fetch.await,
    }
}

/// How a credential is rendered into its header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthScheme {
    /// `Bearer <token>`.
    Bearer,
    /// `Basic base64(<id>:<secret>)`; the token value holds `id:secret`.
    Basic,
    /// The value as is (for vendor headers such as a staff-token header).
    Raw,
}

/// A credential with its expiry.
///
/// `Debug` never shows the value:
/// ```
/// use auth_core::Token;
/// let t = Token::bearer("s3cr3t", None);
/// assert!(!format!("{t:?}").contains("s3cr3t"));
/// ```
#[derive(Clone)]
pub struct Token {
    value: SecretString,
    scheme: AuthScheme,
    expires_at: Option<Instant>,
}

impl Token {
    /// A token with the given scheme; `expires_at: None` means it never expires.
    pub fn new(
        value: impl Into<SecretString>,
        scheme: AuthScheme,
        expires_at: Option<Instant>,
    ) -> Self {
        Self {
            value: value.into(),
            scheme,
            expires_at,
        }
    }

    /// A bearer token.
    pub fn bearer(value: impl Into<SecretString>, expires_at: Option<Instant>) -> Self {
        Self::new(value, AuthScheme::Bearer, expires_at)
    }

    /// The secret value (without the scheme prefix).
    pub fn secret(&self) -> &SecretString {
        &self.value
    }

    /// The header rendering.
    pub fn scheme(&self) -> AuthScheme {
        self.scheme
    }

    /// When the token stops being accepted; `None` for credentials that never expire.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// The header value, marked sensitive so that `http`/`hyper` never log or index it.
    pub fn header_value(&self) -> Result<HeaderValue, InvalidTokenResponse> {
        let secret = self.value.expose_secret();
        let rendered = match self.scheme {
            AuthScheme::Bearer => format!("Bearer {secret}"),
            AuthScheme::Basic => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(secret.as_bytes())
            ),
            AuthScheme::Raw => secret.to_owned(),
        };
        let mut value = HeaderValue::try_from(rendered)
            .map_err(|_| InvalidTokenResponse::InvalidHeaderValue)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &REDACTED)
            .field("scheme", &self.scheme)
            .field(
                "expires_in",
                &self
                    .expires_at
                    .map(|e| e.saturating_duration_since(Instant::now())),
            )
            .finish()
    }
}

/// Anything that can produce a token: OAuth2 grants, static keys, custom sources.
///
/// Implementations fetch unconditionally; caching, single flight and backoff are the job of
/// [`TokenCache`](crate::TokenCache).
///
/// ```
/// use auth_core::{BoxFuture, Token, TokenError, TokenSource};
/// struct Fixed;
/// impl TokenSource for Fixed {
///     fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
///         Box::pin(async { Ok(Token::bearer("abc", None)) })
///     }
/// }
/// ```
pub trait TokenSource: Send + Sync + 'static {
    /// Fetches a new token.
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>>;
}

impl<T: TokenSource + ?Sized> TokenSource for std::sync::Arc<T> {
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
        (**self).fetch()
    }
}

/// Credentials that never expire: an API key, HTTP Basic `id:secret`, or a raw header value.
///
/// ```
/// use auth_core::StaticToken;
/// use secrecy::SecretString;
/// let basic = StaticToken::basic("app-id", SecretString::from("secret"));
/// let bearer = StaticToken::bearer(SecretString::from("api-key"));
/// assert!(!format!("{basic:?}{bearer:?}").contains("secret"));
/// ```
#[derive(Clone, Debug)]
pub struct StaticToken(Token);

impl StaticToken {
    /// HTTP Basic with `id:secret`.
    pub fn basic(id: impl AsRef<str>, secret: SecretString) -> Self {
        let joined = format!("{}:{}", id.as_ref(), secret.expose_secret());
        Self(Token::new(joined, AuthScheme::Basic, None))
    }

    /// `Bearer <key>`.
    pub fn bearer(key: SecretString) -> Self {
        Self(Token::new(key, AuthScheme::Bearer, None))
    }

    /// The key sent as the header value unchanged.
    pub fn raw(value: SecretString) -> Self {
        Self(Token::new(value, AuthScheme::Raw, None))
    }

    /// The token.
    pub fn token(&self) -> &Token {
        &self.0
    }
}

impl TokenSource for StaticToken {
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}
