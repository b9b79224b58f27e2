#![doc = include_str!("../README.md")]

pub mod admin;
pub mod brightpearl;
pub mod clock;
pub mod dataset;
pub mod drift;
pub mod faults;
pub mod norce;
pub mod nshift;
mod state;
mod util;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use dataset::{Dataset, DatasetConfig};
pub use drift::{Drift, DriftChange, DriftRule, JsonKind};
pub use faults::{FaultRule, Faults, LoggedRequest};
pub use state::{AppState, Credentials, SandboxConfig, SharedState};

/// Every route: the three platforms behind the fault and drift middleware, and `/_sandbox/`
/// without them.
pub fn router(state: SharedState) -> Router {
    let platforms = Router::new()
        .merge(norce::router())
        .merge(nshift::router())
        .merge(brightpearl::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            drift_layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            fault_layer,
        ));
    Router::new()
        .nest("/_sandbox", admin::router())
        .merge(platforms)
        .fallback(util::not_found)
        .with_state(state)
}

/// [`faults::middleware`] with the shared state's rules and clock.
async fn fault_layer(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    faults::middleware(&state.faults, &state.clock, request, next).await
}

/// [`drift::middleware`] with the shared state's rules.
async fn drift_layer(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    drift::middleware(&state.drift, request, next).await
}

/// A running sandbox.
pub struct Sandbox {
    addr: SocketAddr,
    state: SharedState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Sandbox {
    /// Starts on a random port of 127.0.0.1.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Self> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on the given address (port 0 picks a free one).
    pub async fn start_on(config: SandboxConfig, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(AppState::new(config, format!("http://{addr}")));
        let app = router(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        // No Nagle: a response written in two parts (headers, then a large body) must not wait
        // for the client's delayed ACK (up to 40 ms on loopback) before its second part.
        let listener =
            axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            });
        let task = tokio::spawn(async move {
            // Connect info gives the Norce token endpoint its per-client-IP rate limit.
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
        });
        tracing::info!(%addr, "sandbox listening");
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
            task,
        })
    }

    /// `http://127.0.0.1:port`.
    pub fn base_url(&self) -> String {
        self.state.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The demo credentials.
    pub fn credentials(&self) -> Credentials {
        self.state.credentials()
    }

    /// The shared state, for in-process inspection and control.
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
