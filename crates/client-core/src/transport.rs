//! reqwest as a tower service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use auth_core::Error;
use bytes::Bytes;
use http::{Request, Response};
use tower::Service;
use tower::util::BoxCloneSyncService;

/// The per-request timeout of a client's default transport unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The type-erased bottom of a client's stack: `http::Request<Bytes>` in, a buffered
/// `http::Response<Bytes>` out, errors as [`auth_core::Error`]. [`ReqwestTransport`] by
/// default; tests wrap it to record requests.
pub type BoxTransport = BoxCloneSyncService<Request<Bytes>, Response<Bytes>, Error>;

/// Whether a stack error is a timeout: a connect or transport failure caused by reqwest's
/// timeout, an I/O `TimedOut`, or a tokio `Elapsed` (a transport of one's own that uses
/// `tokio::time::timeout`). Such a request may or may not have been processed.
pub fn is_timeout(e: &Error) -> bool {
    let (Error::Transport(inner) | Error::Connect(inner)) = e else {
        return false;
    };
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
    while let Some(err) = current {
        if err
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)
            || err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || err.is::<tokio::time::error::Elapsed>()
        {
            return true;
        }
        current = err.source();
    }
    false
}

/// Sends `http::Request<Bytes>` with reqwest and buffers the answer.
///
/// Errors are classified for the retry layer: a failure to connect means the request was not
/// sent ([`Error::connect`], retried for any method); anything after that may have reached the
/// server ([`Error::transport`], retried only for idempotent requests).
///
/// ```
/// let transport = client_core::ReqwestTransport::new(std::time::Duration::from_secs(30)).unwrap();
/// # let _ = transport;
/// ```
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport whose requests time out after `timeout` (connect, send and read).
    pub fn new(timeout: Duration) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("relay-toolkit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::transport)?;
        Ok(Self { client })
    }

    /// Wraps a configured reqwest client (proxies, extra roots, ...).
    pub fn from_client(client: reqwest::Client) -> Self {
        Self { client }
    }
}

fn classify(mut e: reqwest::Error) -> Error {
    // reqwest's message names the URL; the query stays out of errors and traces (it may carry
    // a secret, e.g. a webhook URI's `secret=`).
    if let Some(url) = e.url_mut() {
        url.set_query(None);
    }
    if e.is_connect() {
        Error::connect(e)
    } else {
        Error::transport(e)
    }
}

impl Service<Request<Bytes>> for ReqwestTransport {
    type Response = Response<Bytes>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request.map(reqwest::Body::from))
                .map_err(Error::connect)?;
            let response = client.execute(request).await.map_err(classify)?;
            let mut builder = http::Response::builder()
                .status(response.status())
                .version(response.version());
            if let Some(headers) = builder.headers_mut() {
                *headers = response.headers().clone();
            }
            let body = response.bytes().await.map_err(classify)?;
            builder.body(body).map_err(Error::transport)
        })
    }
}
