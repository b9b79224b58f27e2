//! `NSHIFT_AUTH=jwt`: a [`TokenSource`] that swaps the Basic `id:secret` for a JWT at
//! `/sessions/jwt`, for auth-core's [`TokenCache`](auth_core::TokenCache) (which caches it,
//! refreshes it ahead of expiry and, through the auth layer, replays a request once on 401).

use std::fmt;
use std::time::Duration;

use auth_core::{
    BoxFuture, InvalidTokenResponse, SecretString, StaticToken, Token, TokenError, TokenSource,
};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use models_runtime::redact::REDACTED;
use nshift_models::delivery::JwtSession;
use tokio::time::Instant;
use tower::ServiceExt as _;

use crate::config::{JwtMethod, Transport};

/// Fetches a JWT with HTTP Basic. The Basic header value is kept marked sensitive and never
/// shown by `Debug`; the JWT lives only in the [`Token`] (whose `Debug` redacts it).
#[derive(Clone)]
pub(crate) struct JwtSource {
    transport: Transport,
    url: String,
    basic: HeaderValue,
    method: JwtMethod,
    lifetime: Duration,
}

impl fmt::Debug for JwtSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSource")
            .field("url", &self.url)
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
        let path = nshift_models::delivery::operations::CREATE_JWT_SESSION.path;
        let url = client_core::join_path(base_url, path).to_string();
        Ok(Self {
            transport,
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
        let request = http::Request::builder()
            .method(method)
            .uri(self.url.as_str())
            .header(header::AUTHORIZATION, self.basic.clone())
            .header(header::ACCEPT, "application/json")
            .body(Bytes::new())
            .map_err(TokenError::other)?;
        let sent_at = Instant::now();
        let response = self
            .transport
            .clone()
            .oneshot(request)
            .await
            .map_err(TokenError::transport)?;
        let status = response.status();
        tracing::debug!(target: "nshift_client", status = status.as_u16(), method = self.method.as_str(), "JWT session endpoint answered");
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(TokenError::RateLimited {
                retry_after: auth_core::retry::parse_retry_after(response.headers()),
            });
        }
        if !status.is_success() {
            // nShift defines no body for these; nothing of it is kept.
            return Err(TokenError::Endpoint {
                status,
                error: None,
                description: None,
            });
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
