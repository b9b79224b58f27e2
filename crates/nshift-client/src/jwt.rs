//! `NSHIFT_AUTH=jwt`: a [`TokenSource`] that swaps the Basic `id:secret` for a JWT at
//! `/sessions/jwt`, for auth-core's [`TokenCache`](auth_core::TokenCache) (which caches it,
//! refreshes it ahead of expiry and, through the auth layer, replays a request once on 401).

use std::fmt;
use std::time::Duration;

use auth_core::{
    BoxFuture, InvalidTokenResponse, SecretString, StaticToken, Token, TokenError, TokenSource,
};
use client_core::{ApiRequest, Engine, Failure, Platform};
use http::{HeaderValue, Method, header};
use models_runtime::redact::REDACTED;
use nshift_models::delivery::JwtSession;
use nshift_models::delivery::operations::CREATE_JWT_SESSION;
use tokio::time::Instant;

use crate::config::{JwtMethod, Transport};

/// `/sessions/jwt` on the shared request engine, over the bare transport (never the auth layer
/// this source feeds): its failures are the [`TokenError`]s the token cache expects, which the
/// client's errors then carry as `Failure::Token` (whose hints name the settings).
enum JwtEndpoint {}

impl Platform for JwtEndpoint {
    const NAME: &'static str = "nshift";
    const REQUEST_ID_HEADERS: &'static [&'static str] = &["x-request-id", "request-id"];
    type Error = TokenError;

    /// A 429 is throttling (with its `Retry-After`), any other answer keeps only its status
    /// (nShift defines no body for these); a broken exchange is a transport error.
    fn error(failure: Failure) -> TokenError {
        match failure {
            Failure::Http(http) if http.status == http::StatusCode::TOO_MANY_REQUESTS => {
                TokenError::RateLimited {
                    retry_after: http.retry_after,
                }
            }
            Failure::Http(http) => TokenError::Endpoint {
                status: http.status,
                error: None,
                description: None,
            },
            Failure::NotSent { source, .. }
            | Failure::Timeout { source, .. }
            | Failure::Transport { source, .. } => TokenError::transport(source),
            Failure::Token { source, .. } => source,
            other => TokenError::other(other),
        }
    }
}

/// Fetches a JWT with HTTP Basic. The Basic header value is kept marked sensitive and never
/// shown by `Debug`; the JWT lives only in the [`Token`] (whose `Debug` redacts it).
#[derive(Clone)]
pub(crate) struct JwtSource {
    engine: Engine<JwtEndpoint>,
    url: reqwest::Url,
    basic: HeaderValue,
    method: JwtMethod,
    lifetime: Duration,
}

impl fmt::Debug for JwtSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSource")
            .field("url", &self.url.as_str())
            .field("basic", &REDACTED)
            .field("method", &self.method)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl JwtSource {
    /// A source for the session endpoint under `base_url`.
    pub(crate) fn new(
        transport: Transport,
        base_url: &reqwest::Url,
        api_key_id: &str,
        secret: SecretString,
        method: JwtMethod,
        lifetime: Duration,
    ) -> Result<Self, InvalidTokenResponse> {
        let basic = StaticToken::basic(api_key_id, secret)
            .token()
            .header_value()?;
        Ok(Self {
            engine: Engine::new(transport),
            url: client_core::join_path(base_url, CREATE_JWT_SESSION.path),
            basic,
            method,
            lifetime,
        })
    }

    async fn fetch_once(&self) -> Result<Token, TokenError> {
        let method = match self.method {
            JwtMethod::Post => Method::POST,
            JwtMethod::Get => Method::GET,
        };
        let basic = self.basic.to_str().map_err(TokenError::other)?;
        let request = ApiRequest::at(&CREATE_JWT_SESSION, self.url.clone())
            .method(method)
            .sensitive_header(header::AUTHORIZATION.as_str(), basic);
        let info = request.info();
        let sent_at = Instant::now();
        let response = self.engine.send_any(request).await?;
        let status = response.status();
        tracing::debug!(target: "nshift_client", status = status.as_u16(), method = self.method.as_str(), "JWT session endpoint answered");
        if !status.is_success() {
            return Err(self.engine.reject(info, &response));
        }
        let session: JwtSession =
            serde_json::from_slice(response.body()).map_err(|_| InvalidTokenResponse::NotJson)?;
        let token = session.token.trim();
        if token.is_empty() {
            return Err(InvalidTokenResponse::MissingAccessToken.into());
        }
        Ok(Token::bearer(
            SecretString::from(token.to_owned()),
            Some(sent_at + self.lifetime),
        ))
    }
}

impl TokenSource for JwtSource {
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
        Box::pin(self.fetch_once())
    }
}
