//! One tracing span per logical request (all attempts), without secrets.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::error::Error;
use crate::token::BoxFuture;

/// Opens an `http.request` span with `method`, `host`, `path` (never the query, which may
/// carry keys), then `status`, `attempt` and `permit_wait_ms` recorded by the inner layers.
/// Put it outermost.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

/// Service produced by [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for TraceService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Into<Error>,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<RB>, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let span = tracing::info_span!(
            "http.request",
            method = %request.method(),
            host = request.uri().host().unwrap_or(""),
            path = request.uri().path(),
            status = tracing::field::Empty,
            attempt = tracing::field::Empty,
            permit_wait_ms = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let future = span.in_scope(|| self.inner.call(request));
        let record = span.clone();
        Box::pin(
            async move {
                let result = future.await.map_err(Into::into);
                match &result {
                    Ok(r) => {
                        record.record("status", r.status().as_u16());
                    }
                    Err(e) => {
                        record.record("error", tracing::field::display(e));
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}
