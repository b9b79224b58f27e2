//! The auth layer: sets the credential header from a [`TokenCache`] and handles 401s.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode, header};
use tower::{Layer, Service};

use crate::cache::TokenCache;
use crate::error::Error;
use crate::replay::{TryCloneBody, clone_request};
use crate::token::BoxFuture;

/// Adds the token header (sensitive) to every request. On a 401 it invalidates exactly the
/// token that request used, fetches a new one (single flight, so concurrent 401s cause one
/// refresh) and replays the request once if its body can be copied. A second 401 becomes
/// [`Error::Unauthorized`] carrying that answer (the response body must be buffered:
/// `Into<Bytes>`); a non-replayable request gets its 401 back.
///
/// ```
/// use auth_core::{AuthLayer, StaticToken, TokenCache};
/// let layer = AuthLayer::new(TokenCache::new(StaticToken::bearer("key".into())));
/// // A vendor header instead of `Authorization`:
/// let staff = AuthLayer::new(TokenCache::new(StaticToken::raw("t".into())))
///     .header_name(http::HeaderName::from_static("x-staff-token"));
/// # let _ = (layer, staff);
/// ```
#[derive(Debug, Clone)]
pub struct AuthLayer {
    cache: TokenCache,
    header: HeaderName,
}

impl AuthLayer {
    /// Uses `Authorization`.
    pub fn new(cache: TokenCache) -> Self {
        Self {
            cache,
            header: header::AUTHORIZATION,
        }
    }

    /// Puts the credential in another header.
    pub fn header_name(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            cache: self.cache.clone(),
            header: self.header.clone(),
        }
    }
}

/// Service produced by [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    cache: TokenCache,
    header: HeaderName,
}

impl<S, B, RB> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<Error>,
    B: TryCloneBody + Send + 'static,
    RB: Into<Bytes> + Send + 'static,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<RB>, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let cache = self.cache.clone();
        let header = self.header.clone();
        Box::pin(async move {
            let token = cache.get().await?;
            let replay = clone_request(&request);
            let mut request = request;
            request
                .headers_mut()
                .insert(header.clone(), token.header_value().clone());
            let response = inner.call(request).await.map_err(Into::into)?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let invalidated = cache.invalidate(&token);
            tracing::info!(target: "auth_core::auth", generation = token.generation(), invalidated,
                replayable = replay.is_some(), "401 from API; token invalidated");
            let Some(mut replay) = replay else {
                return Ok(response);
            };
            drop(response);
            let fresh = cache.get().await?;
            replay
                .headers_mut()
                .insert(header, fresh.header_value().clone());
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = inner.call(replay).await.map_err(Into::into)?;
            if response.status() == StatusCode::UNAUTHORIZED {
                cache.invalidate(&fresh);
                return Err(Error::Unauthorized {
                    response: Box::new(response.map(Into::into)),
                });
            }
            Ok(response)
        })
    }
}
