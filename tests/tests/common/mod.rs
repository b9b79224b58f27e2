//! Helpers shared by the client test files (`mod common;`).

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use client_core::ReqwestTransport;
use conformance::RequestSnapshot;
use tower::Service;

/// A [`ReqwestTransport`] that records a redacted snapshot of every request before sending it.
/// Clones share the log.
#[derive(Clone)]
pub struct Recorder {
    inner: ReqwestTransport,
    log: Arc<Mutex<Vec<RequestSnapshot>>>,
}

#[allow(dead_code, reason = "each test file uses a part")]
impl Recorder {
    /// A recorder over a reqwest transport with this request timeout.
    pub fn new(timeout: Duration) -> Self {
        Self {
            inner: ReqwestTransport::new(timeout).expect("transport"),
            log: Arc::default(),
        }
    }

    /// The requests recorded so far (and not yet taken).
    pub fn log(&self) -> MutexGuard<'_, Vec<RequestSnapshot>> {
        self.log.lock().expect("log")
    }

    /// The requests since the last call.
    pub fn take(&self) -> Vec<RequestSnapshot> {
        std::mem::take(&mut *self.log())
    }

    /// The last recorded request whose path contains `needle`.
    pub fn last(&self, needle: &str) -> RequestSnapshot {
        let log = self.log();
        log.iter()
            .rev()
            .find(|r| r.path.contains(needle))
            .cloned()
            .unwrap_or_else(|| panic!("no request to {needle}: {log:#?}"))
    }
}

impl Service<http::Request<Bytes>> for Recorder {
    type Response = http::Response<Bytes>;
    type Error = auth_core::Error;
    type Future = <ReqwestTransport as Service<http::Request<Bytes>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        self.log().push(RequestSnapshot::of(&request));
        self.inner.call(request)
    }
}
