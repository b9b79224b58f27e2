//! The HTTP transport used by OAuth token sources to reach the token endpoint.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use tower::Service;

use crate::error::BoxError;
use crate::token::BoxFuture;

/// Sends one request to a token endpoint and returns the buffered answer.
///
/// Implemented for every cloneable tower `Service<http::Request<Bytes>>` whose response body
/// is an [`http_body::Body`], so a hyper client (after `map_request(|r| r.map(Full::new))`),
/// a reqwest adapter, or an in-process `service_fn` can be plugged in. Wrap it in a
/// [`RateLimitLayer`](crate::RateLimitLayer) to respect a token-endpoint quota.
pub trait TokenTransport: Send + Sync + 'static {
    /// Sends the request.
    fn send(
        &self,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Bytes>, BoxError>>;
}

impl<S, B> TokenTransport for S
where
    S: Service<Request<Bytes>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn send(
        &self,
        request: Request<Bytes>,
    ) -> BoxFuture<'static, Result<Response<Bytes>, BoxError>> {
        let mut svc = self.clone();
        Box::pin(async move {
            std::future::poll_fn(|cx| svc.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            let response = svc.call(request).await.map_err(Into::into)?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(Into::into)?.to_bytes();
            Ok(Response::from_parts(parts, bytes))
        })
    }
}
