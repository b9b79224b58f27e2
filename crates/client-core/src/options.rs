//! What every client's builder sets the same way (timeout, retry, transport), and the top of
//! every client's stack built from it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Re-exported: the retry settings (what [`common_setters!`](crate::common_setters) names).
pub use auth_core::RetryConfig;
/// Re-exported: the state several processes share (what [`common_setters!`](crate::common_setters) names).
pub use auth_core::SharedAuthState;
use auth_core::{RetryLayer, TraceLayer};
use bytes::Bytes;
use http::{Request, Response};
use tower::{Service, ServiceBuilder, ServiceExt as _};

use crate::engine::{Engine, Platform};
use crate::failure::Failure;
use crate::health::HealthRecorder;
use crate::settings::{Settings, SettingsError};
use crate::transport::{BoxTransport, DEFAULT_TIMEOUT, ReqwestTransport};

/// A service a client can send requests through (below its auth layer):
/// `http::Request<Bytes>` in, a buffered `http::Response<Bytes>` out, failures as
/// [`auth_core::Error::connect`] when nothing was sent and [`auth_core::Error::transport`]
/// otherwise.
pub trait TransportService:
    Service<
        Request<Bytes>,
        Response = Response<Bytes>,
        Error = auth_core::Error,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> TransportService for S where
    S: Service<
            Request<Bytes>,
            Response = Response<Bytes>,
            Error = auth_core::Error,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// The options every client builder has: the per-request timeout of the default transport, the
/// retry settings, a transport replacing [`ReqwestTransport`] and the auth state shared with
/// other processes. A builder keeps them in a field `common` and gets its setters from
/// [`common_setters!`](crate::common_setters). `Debug` says whether a transport and a shared
/// state were set, not which.
#[derive(Clone, Default)]
pub struct CommonOptions {
    /// Per-request timeout of the default transport ([`DEFAULT_TIMEOUT`] when unset).
    pub timeout: Option<Duration>,
    /// Retry settings (auth-core's defaults when unset).
    pub retry: Option<RetryConfig>,
    /// The transport instead of a [`ReqwestTransport`].
    pub transport: Option<BoxTransport>,
    /// Tokens and rate budgets shared with other processes (several workers over one
    /// database); `None`: this process keeps its own (the default).
    pub shared: Option<Arc<dyn SharedAuthState>>,
}

impl fmt::Debug for CommonOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommonOptions")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("custom_transport", &self.transport.is_some())
            .field("shared_auth_state", &self.shared.is_some())
            .finish()
    }
}

impl CommonOptions {
    /// The timeout from `timeout_setting` (whole seconds, at least 1), the rest unset.
    pub fn from_settings(
        settings: &Settings,
        timeout_setting: &str,
    ) -> Result<Self, SettingsError> {
        Ok(Self {
            timeout: settings.seconds(timeout_setting, 1)?,
            ..Self::default()
        })
    }

    /// Sets the transport (boxed).
    pub fn set_transport(&mut self, transport: impl TransportService) {
        self.transport = Some(BoxTransport::new(transport));
    }

    /// The transport set, else a [`ReqwestTransport`] with the timeout; one that cannot be
    /// created is the platform's error (a [`Failure`] of the operation `build`).
    pub fn transport<P: Platform>(&self) -> Result<BoxTransport, P::Error> {
        if let Some(transport) = &self.transport {
            return Ok(transport.clone());
        }
        let failure = |e| Failure::from_stack("build", false, P::REQUEST_ID_HEADERS, e);
        let transport = ReqwestTransport::new(self.timeout.unwrap_or(DEFAULT_TIMEOUT));
        transport
            .map(BoxTransport::new)
            .map_err(|e| P::error(failure(e)))
    }

    /// The engine over `TraceLayer → RetryLayer → inner` (`inner`: the client's auth layers over
    /// [`Self::transport`]), its health recorded afresh ([`Self::engine_recording`]).
    pub fn engine<P: Platform>(&self, inner: impl TransportService) -> Engine<P> {
        self.engine_recording(inner, HealthRecorder::new())
    }

    /// [`Self::engine`], its health recorded into `health`: several engines of one client (one
    /// per rate budget, say) show one record. Every attempt's answer under the retry layer is
    /// noted too, so a 429 or 503 that a retry hid still shows.
    pub fn engine_recording<P: Platform>(
        &self,
        inner: impl TransportService,
        health: HealthRecorder,
    ) -> Engine<P> {
        let attempts = health.clone();
        let noted = BoxTransport::new(inner).map_response(move |response: Response<Bytes>| {
            attempts.answered(response.status());
            response
        });
        let stack = ServiceBuilder::new()
            .layer(TraceLayer)
            .layer(RetryLayer::new(self.retry.clone().unwrap_or_default()))
            .service(noted);
        Engine::with_health(BoxTransport::new(stack), health)
    }
}

/// The `timeout`, `retry`, `transport` and `shared_auth_state` setters of a client builder that keeps its
/// [`CommonOptions`] in the field `common`: call it inside the builder's `impl` block.
#[macro_export]
macro_rules! common_setters {
    () => {
        /// Per-request timeout of the default transport (default 30 s). Ignored with a custom
        /// [`transport`](Self::transport).
        pub fn timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.common.timeout = Some(timeout);
            self
        }

        /// Retry settings (default: auth-core's, 3 attempts with full-jitter backoff,
        /// `Retry-After` honoured; only requests that are safe to repeat are retried on
        /// 429/502/503/504, any request on a failure to connect).
        pub fn retry(mut self, retry: $crate::options::RetryConfig) -> Self {
            self.common.retry = Some(retry);
            self
        }

        /// Sends requests through `transport` instead of a `ReqwestTransport`. It sits below the
        /// auth layer, so it sees the final request (tests wrap a `ReqwestTransport` to record
        /// `conformance::RequestSnapshot`s); see [`client_core::TransportService`] for how to
        /// report failures.
        pub fn transport(mut self, transport: impl $crate::options::TransportService) -> Self {
            self.common.set_transport(transport);
            self
        }

        /// Shares tokens and rate budgets with every process using the same `state` (several
        /// workers over one database): each token is fetched once per lifetime for all of
        /// them, rotating refresh tokens are spent once, and the platform's limits hold for
        /// all of them together (auth-core README, "Shared state"). Default: none, this
        /// process keeps its own.
        pub fn shared_auth_state(
            mut self,
            state: ::std::sync::Arc<dyn $crate::options::SharedAuthState>,
        ) -> Self {
            self.common.shared = Some(state);
            self
        }
    };
}
