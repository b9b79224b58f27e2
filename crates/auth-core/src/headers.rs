//! Static headers (application ids, app/developer references, vendor keys).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request};
use secrecy::{ExposeSecret, SecretString};
use tower::{Layer, Service};

use crate::error::ConfigError;

/// Adds fixed headers to every request unless the request already has them.
/// `Debug` lists only header names.
///
/// ```
/// use auth_core::StaticHeadersLayer;
/// let layer = StaticHeadersLayer::new()
///     .header("applicationid", "1234")?
///     .secret_header("x-account-token", "s3cr3t".into())?;
/// assert!(!format!("{layer:?}").contains("s3cr3t"));
/// # Ok::<(), auth_core::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct StaticHeadersLayer {
    headers: Arc<HeaderMap>,
}

impl StaticHeadersLayer {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(
        mut self,
        name: &str,
        mut value: HeaderValue,
        sensitive: bool,
    ) -> Result<Self, ConfigError> {
        let name = HeaderName::try_from(name).map_err(|_| ConfigError::Header(name.to_owned()))?;
        value.set_sensitive(sensitive);
        Arc::make_mut(&mut self.headers).insert(name, value);
        Ok(self)
    }

    /// Adds a plain header.
    pub fn header(self, name: &str, value: &str) -> Result<Self, ConfigError> {
        let v = HeaderValue::try_from(value).map_err(|_| ConfigError::Header(name.to_owned()))?;
        self.insert(name, v, false)
    }

    /// Adds a header whose value is a secret; it is marked sensitive.
    pub fn secret_header(self, name: &str, value: SecretString) -> Result<Self, ConfigError> {
        let v = HeaderValue::try_from(value.expose_secret())
            .map_err(|_| ConfigError::Header(name.to_owned()))?;
        self.insert(name, v, true)
    }
}

impl fmt::Debug for StaticHeadersLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticHeadersLayer")
            .field("names", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<S> Layer<S> for StaticHeadersLayer {
    type Service = StaticHeaders<S>;
    fn layer(&self, inner: S) -> Self::Service {
        StaticHeaders {
            inner,
            headers: Arc::clone(&self.headers),
        }
    }
}

/// Service produced by [`StaticHeadersLayer`]; errors and futures pass through unchanged.
#[derive(Clone)]
pub struct StaticHeaders<S> {
    inner: S,
    headers: Arc<HeaderMap>,
}

impl<S: fmt::Debug> fmt::Debug for StaticHeaders<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticHeaders")
            .field("inner", &self.inner)
            .field("names", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<S, B> Service<Request<B>> for StaticHeaders<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        let headers = request.headers_mut();
        for (name, value) in self.headers.iter() {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        self.inner.call(request)
    }
}
