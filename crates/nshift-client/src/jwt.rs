//! `NSHIFT_AUTH=jwt`: the token source that swaps the Basic `id:secret` for a JWT at
//! `/sessions/jwt`, for auth-core's `TokenCache` (caching, refresh ahead, replay on 401).

use std::time::Duration;

use auth_core::{
    BoxFuture, InvalidTokenResponse, SecretString, StaticToken, Token, TokenError, TokenSource,
};
use client_core::{ApiRequest, Engine, Failure, Platform};
use http::{HeaderValue, Method, StatusCode, header};
use nshift_models::delivery::JwtSession;
use nshift_models::delivery::operations::CREATE_JWT_SESSION;
use tokio::time::Instant;

use crate::config::{JwtMethod, Transport};

/// `/sessions/jwt` over the bare transport (never the auth layer it feeds). Its failures are the
/// [`TokenError`]s the cache expects; the client's errors carry them as `Failure::Token`.
enum JwtEndpoint {}

impl Platform for JwtEndpoint {
    const NAME: &'static str = "nshift";
    const REQUEST_ID_HEADERS: &'static [&'static str] = &["x-request-id", "request-id"];
    type Error = TokenError;

    /// nShift defines no error body here: a 429 keeps its `Retry-After`, others the status.
    fn error(failure: Failure) -> TokenError {
        match failure {
            Failure::Http(http) if http.status == StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = http.retry_after;
                TokenError::RateLimited { retry_after }
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
            Failure::Decode { .. } => InvalidTokenResponse::NotJson.into(),
            other => TokenError::other(other),
        }
    }
}

/// Fetches a JWT with HTTP Basic. No `Debug`: the Basic header (marked sensitive) and the JWT
/// (in a redacting [`Token`]) are never shown.
pub(crate) struct JwtSource {
    engine: Engine<JwtEndpoint>,
    url: reqwest::Url,
    basic: HeaderValue,
    method: JwtMethod,
    lifetime: Duration,
}

impl JwtSource {
    /// The source for `/sessions/jwt` under `base_url`, with the method and lifetime of a JWT.
    pub(crate) fn new(
        transport: Transport,
        base_url: &reqwest::Url,
        api_key_id: &str,
        secret: SecretString,
        (method, lifetime): (JwtMethod, Duration),
    ) -> Result<Self, InvalidTokenResponse> {
        let basic = StaticToken::basic(api_key_id, secret)
            .token()
            .header_value()?;
        let url = client_core::join_path(base_url, CREATE_JWT_SESSION.path);
        let engine = Engine::new(transport);
        Ok(Self {
            engine,
            url,
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
        let sent_at = Instant::now();
        let session: JwtSession = self.engine.call_json(request).await?;
        let token = session.token.trim();
        if token.is_empty() {
            return Err(InvalidTokenResponse::MissingAccessToken.into());
        }
        let token = SecretString::from(token.to_owned());
        Ok(Token::bearer(token, Some(sent_at + self.lifetime)))
    }
}

impl TokenSource for JwtSource {
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
        Box::pin(self.fetch_once())
    }
}
