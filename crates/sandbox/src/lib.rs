#![doc = include_str!("../README.md")]

pub mod admin;
pub mod brightpearl;
pub mod clock;
pub mod dataset;
pub mod drift;
pub mod faults;
pub mod norce;
pub mod nshift;
mod util;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use dataset::{Dataset, DatasetConfig};
pub use drift::{Drift, DriftChange, DriftRule, JsonKind};
pub use faults::{FaultRule, Faults, LoggedRequest};

/// Everything the sandbox can be told at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    /// The seeded dataset.
    pub dataset: DatasetConfig,
    /// Virtual time at start (default: the real time at start).
    pub start_time: Option<DateTime<Utc>>,
    /// Norce simulator settings.
    pub norce: norce::NorceConfig,
    /// nShift simulator settings.
    pub nshift: nshift::NshiftConfig,
    /// Brightpearl simulator settings.
    pub brightpearl: brightpearl::BrightpearlConfig,
    /// Spec drift rules in force from the start (none by default; see [`drift`]).
    pub drift: Vec<DriftRule>,
}

/// State shared by every route.
#[derive(Debug)]
pub struct AppState {
    /// The configuration the sandbox started with.
    pub config: SandboxConfig,
    /// Where the sandbox listens (`http://127.0.0.1:port`).
    pub base_url: String,
    /// Virtual time.
    pub clock: Clock,
    /// Fault rules and the request log.
    pub faults: Faults,
    /// Spec drift rules: changes to successful JSON answers.
    pub drift: Drift,
    /// The seeded dataset every simulator started from.
    pub dataset: Dataset,
    /// Norce state.
    pub norce: norce::NorceState,
    /// nShift state.
    pub nshift: nshift::NshiftState,
    /// Brightpearl state.
    pub brightpearl: brightpearl::BrightpearlState,
    /// For pushes (Norce order receiver and events, Brightpearl webhooks).
    pub http: reqwest::Client,
}

/// Shared handle to the state.
pub type SharedState = Arc<AppState>;

/// The demo credentials of every platform, printed by the binary as its first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// Norce.
    pub norce: norce::NorceCredentials,
    /// nShift.
    pub nshift: nshift::NshiftCredentials,
    /// Brightpearl.
    pub brightpearl: brightpearl::BrightpearlCredentials,
}

impl AppState {
    /// Builds the state for a sandbox that will listen at `base_url`.
    pub fn new(config: SandboxConfig, base_url: String) -> Self {
        let start = config.start_time.unwrap_or_else(Utc::now);
        let dataset = Dataset::generate(&config.dataset, start);
        let norce = norce::NorceState::new(&config.norce, &dataset, start);
        let nshift = nshift::NshiftState::new(&config.nshift, &dataset, start);
        let brightpearl = brightpearl::BrightpearlState::new(&config.brightpearl, &dataset, start);
        Self {
            faults: Faults::new(config.dataset.seed),
            drift: Drift::with_rules(&config.drift),
            clock: Clock::new(start),
            base_url,
            dataset,
            norce,
            nshift,
            brightpearl,
            http: reqwest::Client::new(),
            config,
        }
    }

    /// The demo credentials, with base URLs pointing at this sandbox.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            norce: norce::credentials(&self.config.norce, &self.base_url),
            nshift: nshift::credentials(&self.config.nshift, &self.base_url),
            brightpearl: brightpearl::credentials(&self.config.brightpearl, &self.base_url),
        }
    }
}

/// Every route: the three platforms behind the fault and drift middleware, and `/_sandbox/`
/// without them.
pub fn router(state: SharedState) -> Router {
    let platforms = Router::new()
        .merge(norce::router())
        .merge(nshift::router())
        .merge(brightpearl::router())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            drift::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            faults::middleware,
        ));
    Router::new()
        .nest("/_sandbox", admin::router())
        .merge(platforms)
        .fallback(util::not_found)
        .with_state(state)
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
