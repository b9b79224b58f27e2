//! A transport that keeps a copy of every answer: what `relay verify --deep` decodes strictly
//! after a typed client call has decoded it normally.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use auth_core::Error;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use tower::{Service, ServiceExt};

use client_core::BoxTransport;

/// One request line and its buffered answer, as a [`Tap`] saw them.
///
/// `Debug` shows the method, the path (never the query, which may carry a secret), the status
/// and the body's length, never the body: a token answer passes through a tap too.
#[derive(Clone)]
#[non_exhaustive]
pub struct Exchange {
    /// The request method.
    pub method: Method,
    /// The full request URI, query included.
    pub uri: Uri,
    /// The answer's status.
    pub status: StatusCode,
    /// The answer's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The answer's body.
    pub body: Bytes,
}

impl Exchange {
    /// Whether the answer is a 2xx with a JSON content type.
    pub fn is_json_success(&self) -> bool {
        self.status.is_success()
            && self
                .content_type
                .as_deref()
                .is_some_and(|t| t.to_ascii_lowercase().contains("json"))
    }
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("method", &self.method)
            .field("path", &self.uri.path())
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Wraps a transport and records every exchange that gets an answer, in order. Clones share
/// the record. Requests that fail without an answer (refused, timed out) are not recorded: the
/// client's error says what happened.
///
/// ```
/// # use std::time::Duration;
/// let tap = conformance::Tap::new(client_core::ReqwestTransport::new(Duration::from_secs(5)).unwrap());
/// // Build a client on `tap.clone()`, call it, then read what came back:
/// assert!(tap.take().is_empty());
/// ```
#[derive(Clone)]
pub struct Tap {
    inner: BoxTransport,
    record: Arc<Mutex<Vec<Exchange>>>,
}

impl fmt::Debug for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tap")
            .field("recorded", &self.lock().len())
            .finish()
    }
}

impl Tap {
    /// A tap over `inner`.
    pub fn new<S>(inner: S) -> Self
    where
        S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self {
            inner: BoxTransport::new(inner),
            record: Arc::default(),
        }
    }

    /// The exchanges recorded since the last call, oldest first; the record is emptied.
    pub fn take(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Exchange>> {
        // A panic while pushing cannot leave the vector half-written.
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Service<Request<Bytes>> for Tap {
    type Response = Response<Bytes>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // The inner transport is readied in `call` (on a clone), as tower's `oneshot` does.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let inner = self.inner.clone();
        let record = Arc::clone(&self.record);
        let (method, uri) = (request.method().clone(), request.uri().clone());
        Box::pin(async move {
            let response = inner.oneshot(request).await?;
            let exchange = Exchange {
                method,
                uri,
                status: response.status(),
                content_type: response
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: response.body().clone(),
            };
            record
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(exchange);
            Ok(response)
        })
    }
}
