//! `relay serve`: the receivers, the inbox processor, the scheduler, `/healthz` and `/metrics`.
//!
//! | route | who calls it | auth |
//! | --- | --- | --- |
//! | `POST /norce/order-receiver` | Norce's order receiver (an `OrderRequest`, answered with an `OrderResponse`) | HTTP Basic: `[serve] order_receiver_user` and the password from `RELAY_ORDER_RECEIVER_PASSWORD` |
//! | `POST /norce/events/{eventType}` | Norce Commerce Event webhooks (one URL per event type) | static header `[serve] norce_webhook_header` = `RELAY_NORCE_WEBHOOK_SECRET` |
//! | `POST /brightpearl/webhooks` | Brightpearl webhooks (`WebhookEvent`, ids only) | `?secret=` in the registered URI, or the header `[serve] brightpearl_webhook_header`, = `RELAY_BRIGHTPEARL_WEBHOOK_SECRET` |
//! | `GET /healthz` | probes | none |
//! | `GET /metrics` | Prometheus | none |
//! | `/console/...` | operators, in a browser (see `console/mod.rs`) | the console token (`RELAY_CONSOLE_TOKEN`), then a session cookie and CSRF tokens; off without the token |
//!
//! A receiver answers 2xx only after its inbox row is committed ([`Store::inbox_put`](crate::state::Store::inbox_put); a
//! duplicate of an unprocessed item is also 2xx), so an acknowledged push is never lost. Work then
//! happens asynchronously: the inbox processor hands each item to every flow that
//! [accepts](crate::flows) its source, marks it done, and triggers a run of each flow the item
//! gave work ([`Ingested::Work`](crate::flows::Ingested)). The
//! scheduler also runs each flow periodically, one run per flow at a time.
//!
//! A receiver whose secret is not set is disabled: it answers 503 naming the variable to set.
//! Secrets are compared in constant time and never logged, shown in `Debug`, or written anywhere.
//!
//! At start, once the listener is bound, the server registers its own Brightpearl webhook
//! subscriptions in the background (`[serve] public_url`, `brightpearl_webhook_events`,
//! `register_brightpearl_webhooks`): idempotently, never doubled, a rotated secret replaced. A
//! refused event is a warning, not a stop; the outcome per event is in `/healthz`
//! (`brightpearl_webhooks`, a [`WebhookRegistration`]) and `/metrics`.
//!
//! The listener bounds what a client can hold (see `listener.rs`): the time to send a request
//! head (`header_read_timeout_secs`), a body (`body_read_timeout_secs`, then 408), the time a
//! kept-alive connection may stay idle (`idle_timeout_secs`), the open connections
//! (`max_connections`, lowered to fit the open-files limit) and those from one address
//! (`max_connections_per_ip`); beyond a cap, `503` and the connection is closed.
//!
//! [`ServerHandle::shutdown`] is bounded: it stops accepting, starts no new pass or inbox item,
//! lets what is running finish for up to `shutdown_grace_secs`, then cancels it. Every step
//! records its progress in the state as it goes, so a cancelled pass resumes at the next start,
//! like one stopped by a crash.

mod console;
mod error;
mod listener;
mod metrics;
mod receivers;
pub mod retention;
mod secrets;
mod shared;
mod subscriptions;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::flows::{Flow, FlowContext};

pub use error::ServeError;
pub use listener::ConnectionStats;
pub use metrics::Metrics;
pub use receivers::json_path_at;
pub use secrets::{ExposeSecret, SecretString, ServeSecrets, secret_matches};
use shared::Shared;
pub use subscriptions::{
    BODY_TEMPLATE as BRIGHTPEARL_WEBHOOK_BODY_TEMPLATE, SubscriptionOutcome, SubscriptionReport,
    WebhookRegistration,
};

pub use crate::config::serve::{DEFAULT_BRIGHTPEARL_WEBHOOK_EVENTS, ServeConfig};
/// The flow contract, for callers that hand `relay serve` flows of their own
/// ([`start_with_flows`]).
pub use crate::flows::{FlowEntry, FlowFuture, IngestFn, IngestFuture, RunFn};

/// The inbox sources the receivers write (keys: the `ClientOrderRef`; `{eventType}:{id}`, the id
/// being the event's `OrderId`, `JobId`, `ClientOrderRef`, `CustomerId` or `CompanyId`, else a
/// hash of the body; `{fullEvent}:{id set}`), defined with the flows that read them.
pub use crate::flows::{SOURCE_BRIGHTPEARL_WEBHOOK, SOURCE_NORCE_EVENT, SOURCE_NORCE_ORDER};

/// A running server: its address, counters to wait on, and a way to stop it.
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The stop: no new connections, passes or inbox items.
    shutdown: watch::Sender<bool>,
    /// The end of the grace: what still runs is dropped at its next await point.
    cancel: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    connections: Arc<listener::Counters>,
}

/// How long [`ServerHandle::shutdown_within`] waits for its tasks after cancelling them before
/// it gives up on them (a pass blocked outside an await point cannot be cancelled).
const CANCEL_WAIT: Duration = Duration::from_secs(2);

/// How a [`ServerHandle::shutdown`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// Everything that was running finished within the grace.
    Clean,
    /// The grace ended first: the flow passes and requests still running were cancelled at an
    /// await point. Each step records its progress as it goes, so their items resume at the
    /// next start.
    Cancelled,
    /// Some task did not end even after its cancel (blocked outside an await point); it was
    /// left behind, and ends with the process.
    Abandoned,
}

/// How many of `tasks` are still running.
fn unfinished(tasks: &[JoinHandle<()>]) -> usize {
    tasks.iter().filter(|task| !task.is_finished()).count()
}

/// Waits for `tasks`, removing each as it ends (a cancelled wait leaves the unfinished ones).
async fn join_tasks(tasks: &mut Vec<JoinHandle<()>>) {
    while let Some(task) = tasks.last_mut() {
        if let Err(e) = task.await
            && e.is_panic()
        {
            tracing::error!(error = %e, "a task of relay serve panicked");
        }
        tasks.pop();
    }
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The metrics, for in-process inspection.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// A counter of requests the receivers acknowledged after committing them to the inbox
    /// (duplicates included); `wait_for(|n| *n >= k)` on it waits without sleeping.
    pub fn accepted(&self) -> watch::Receiver<u64> {
        self.shared.accepted.subscribe()
    }

    /// A counter of inbox items the processor finished (handed to the flows and marked done).
    pub fn processed(&self) -> watch::Receiver<u64> {
        self.shared.processed.subscribe()
    }

    /// A counter of flow passes finished (completed or stopped).
    pub fn runs(&self) -> watch::Receiver<u64> {
        self.shared.runs.subscribe()
    }

    /// Where the Brightpearl webhook registration stands; `wait_for(WebhookRegistration::is_settled)`
    /// waits until it is over.
    pub fn brightpearl_webhooks(&self) -> watch::Receiver<WebhookRegistration> {
        self.shared.webhooks.subscribe()
    }

    /// What the listener has done so far: open connections, refusals at the caps, timeouts.
    pub fn connections(&self) -> ConnectionStats {
        self.connections.stats()
    }

    /// Stops within `serve.shutdown_grace_secs`: see [`ServerHandle::shutdown_within`].
    pub async fn shutdown(self) -> ShutdownOutcome {
        let grace = Duration::from_secs(self.shared.config.shutdown_grace_secs);
        self.shutdown_within(grace).await
    }

    /// Stops accepting connections (idle ones close at once), starts no new flow pass or inbox
    /// item, and waits up to `grace` for the running passes and requests; then cancels them and
    /// waits a little more. Each stage is logged.
    pub async fn shutdown_within(mut self, grace: Duration) -> ShutdownOutcome {
        let started = std::time::Instant::now();
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down: no new connections, flow passes or inbox items; waiting for running passes and requests"
        );
        let _ = self.shutdown.send(true);
        // Running passes take no new item from now on; those in flight finish in the grace.
        self.shared.ctx.stopping.set();
        let mut tasks = std::mem::take(&mut self.tasks);
        if tokio::time::timeout(grace, join_tasks(&mut tasks))
            .await
            .is_ok()
        {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "relay serve stopped: everything running finished"
            );
            return ShutdownOutcome::Clean;
        }
        tracing::warn!(
            grace_secs = grace.as_secs_f64(),
            still_running = unfinished(&tasks),
            "the shutdown grace (serve.shutdown_grace_secs) ended: cancelling the flow passes and requests still running; their items resume at the next start"
        );
        let _ = self.cancel.send(true);
        if tokio::time::timeout(CANCEL_WAIT, join_tasks(&mut tasks))
            .await
            .is_ok()
        {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "relay serve stopped after cancelling"
            );
            return ShutdownOutcome::Cancelled;
        }
        tracing::error!(
            still_running = unfinished(&tasks),
            "tasks did not end after their cancel (blocked outside an await point): leaving them behind"
        );
        for task in &tasks {
            task.abort();
        }
        ShutdownOutcome::Abandoned
    }

    /// Waits until the server stops (it only stops through [`ServerHandle::shutdown`] or an
    /// error of the listener).
    pub async fn wait(&mut self) {
        for task in &mut self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds `config.listen` (port 0 picks a free port).
pub async fn bind(config: &ServeConfig) -> Result<TcpListener, ServeError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen.to_string(),
            source,
        })
}

/// Starts the receivers, the inbox processor and the scheduler on `listener`, with every flow
/// of the [registry](crate::flows::registry).
pub async fn start(
    ctx: FlowContext,
    secrets: ServeSecrets,
    listener: TcpListener,
) -> Result<ServerHandle, ServeError> {
    start_with_flows(ctx, secrets, listener, crate::flows::registry()).await
}

/// [`start`] with an explicit flow table (tests drive the processor and scheduler with their own
/// flows). The failure alerts' channels come from the environment (`[alerts]`).
pub async fn start_with_flows(
    ctx: FlowContext,
    secrets: ServeSecrets,
    listener: TcpListener,
    flows: Vec<Arc<dyn Flow>>,
) -> Result<ServerHandle, ServeError> {
    let alerts =
        crate::alerts::Alerter::from_settings(
            &ctx.config,
            &client_core::Settings::from_env(),
            ctx.store.clone(),
        )
        .map_err(|crate::alerts::AlertError::Secret { setting, reason }| {
            ServeError::Secret { setting, reason }
        })?;
    start_with_alerts(ctx, secrets, listener, flows, alerts).await
}

/// [`start_with_flows`] with the failure alerts given (`None`: off).
pub async fn start_with_alerts(
    ctx: FlowContext,
    secrets: ServeSecrets,
    listener: TcpListener,
    flows: Vec<Arc<dyn Flow>>,
    alerts: Option<crate::alerts::Alerter>,
) -> Result<ServerHandle, ServeError> {
    let config = ctx.config.serve.clone();
    config.validate()?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen.to_string(),
        source,
    })?;
    let metrics = Arc::new(Metrics::default());
    if let Some(client) = &ctx.brightpearl {
        metrics.watch_brightpearl(client.rate_limiter().0.clone());
    }
    let connections = Arc::new(listener::Counters::default());
    let shared = Arc::new(Shared {
        ctx,
        config,
        secrets,
        metrics,
        connections: connections.clone(),
        flows: flows.clone(),
        inbox_wake: [tokio::sync::Notify::new(), tokio::sync::Notify::new()],
        accepted: watch::channel(0).0,
        processed: watch::channel(0).0,
        runs: watch::channel(0).0,
        webhooks: watch::channel(WebhookRegistration::Pending { events: Vec::new() }).0,
        triggers: flows
            .iter()
            .map(|f| (f.name(), Arc::new(tokio::sync::Notify::new())))
            .collect(),
        alerts,
    });
    for (receiver, enabled, variable) in shared.receivers() {
        if !enabled {
            tracing::warn!(
                receiver,
                variable,
                "receiver disabled: its secret is not set"
            );
        }
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (cancel, cancel_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let app = receivers::router(shared.clone()).merge(console::router(shared.clone()));
    let limits = listener::Limits::from_config(&shared.config);
    tracing::info!(
        header_read_timeout_secs = limits.header_read_timeout.as_secs(),
        body_read_timeout_secs = limits.body_read_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        max_connections = limits.max_connections,
        max_connections_per_ip = limits.max_connections_per_ip,
        "listener limits"
    );
    tasks.push(tokio::spawn(listener::serve(
        listener,
        app,
        limits,
        connections.clone(),
        shutdown_rx.clone(),
        cancel_rx.clone(),
    )));
    tasks.extend(worker::spawn(
        shared.clone(),
        shutdown_rx.clone(),
        cancel_rx,
    ));
    // Finished state is pruned in small batches off the receivers' path (`[state] retention_*`).
    let state = &shared.ctx.config.state;
    tasks.push(tokio::spawn(retention::run(
        shared.ctx.store.clone(),
        state.retention_policy(),
        state.prune_interval(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(flush_budget(
        shared.clone(),
        shutdown_rx.clone(),
    )));
    if let Some(alerts) = &shared.alerts {
        tasks.extend(alerts.spawn(shared.ctx.clone(), shutdown_rx.clone()));
    }
    tracing::info!(%addr, "relay serve listening");
    if let Some(task) = register_brightpearl_webhooks(&shared, shutdown_rx) {
        tasks.push(task);
    }
    Ok(ServerHandle {
        addr,
        shared,
        shutdown,
        cancel,
        tasks,
        connections,
    })
}

/// How often `relay serve` writes the Brightpearl budget's split to the state (besides after
/// each pass), so `relay status` sees a long pass while it runs.
const BUDGET_FLUSH: Duration = Duration::from_secs(15);

/// Writes the Brightpearl budget's split to the state every [`BUDGET_FLUSH`] until shutdown.
async fn flush_budget(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(BUDGET_FLUSH);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = interval.tick() => shared.metrics.flush_budget(shared.store()),
        }
    }
    shared.metrics.flush_budget(shared.store());
}

/// The longest wait between two registration attempts.
const WEBHOOK_RETRY_MAX: Duration = Duration::from_secs(3600);

/// Publishes where the Brightpearl webhook registration stands (watchers, metrics, `/healthz`).
fn publish_webhooks(shared: &Shared, state: WebhookRegistration) {
    shared.metrics.record_webhook_registration(&state);
    shared.webhooks.send_replace(state);
}

/// Starts the Brightpearl webhook registration in the background (the receivers already
/// answer), or records why it is skipped. The task stops at shutdown.
fn register_brightpearl_webhooks(
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    use subscriptions::Prepared;
    match subscriptions::prepare(
        &shared.config,
        &shared.secrets,
        shared.ctx.for_flow("webhooks").brightpearl.as_ref(),
    ) {
        Prepared::Skip { reason, warn } => {
            if warn {
                tracing::warn!(reason = %reason, "Brightpearl webhook subscriptions not registered");
            } else {
                tracing::info!(reason = %reason, "Brightpearl webhook subscriptions not registered");
            }
            publish_webhooks(shared, WebhookRegistration::Skipped { reason });
            None
        }
        Prepared::Run {
            client,
            target,
            events,
        } => {
            publish_webhooks(
                shared,
                WebhookRegistration::Pending {
                    events: events.clone(),
                },
            );
            let shared = shared.clone();
            Some(tokio::spawn(async move {
                let first = Duration::from_secs(shared.config.brightpearl_webhook_retry_secs);
                let registration = subscriptions::register_until_settled(
                    || subscriptions::register(&client, &target, &events),
                    |subscriptions| {
                        publish_webhooks(&shared, WebhookRegistration::Finished { subscriptions })
                    },
                    first,
                    WEBHOOK_RETRY_MAX,
                );
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => {
                        tracing::info!("stopping before the Brightpearl webhook registration settled; the next start completes it");
                    }
                    () = registration => {}
                }
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_matches_compares_contents_and_lengths() {
        let matches =
            |secret: &str, candidate: &[u8]| secret_matches(&SecretString::from(secret), candidate);
        assert!(matches("hunter2", b"hunter2"));
        assert!(!matches("hunter2", b"hunter3"));
        assert!(!matches("hunter2", b"hunter22"));
        assert!(!matches("", b"x"));
        assert!(matches("", b""));
    }

    #[test]
    fn secrets_are_redacted_and_read_from_files() {
        let secret = SecretString::from("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        let dir = std::env::temp_dir().join(format!("relay-serve-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let settings = client_core::Settings::from_pairs([
            ("RELAY_ORDER_RECEIVER_PASSWORD_FILE", file.to_str().unwrap()),
            ("RELAY_NORCE_WEBHOOK_SECRET", "n"),
        ]);
        let secrets = ServeSecrets::from_settings(&ServeConfig::default(), &settings).unwrap();
        assert!(secret_matches(
            &secrets.order_receiver_password.unwrap(),
            b"from-file"
        ));
        assert!(secret_matches(&secrets.norce_webhook_secret.unwrap(), b"n"));
        assert!(secrets.brightpearl_webhook_secret.is_none());
        std::fs::write(&file, "  \n").unwrap();
        let err = ServeSecrets::from_settings(&ServeConfig::default(), &settings)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("RELAY_ORDER_RECEIVER_PASSWORD_FILE") && err.contains("empty"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_defaults_and_named_errors() {
        let config = crate::config::RelayConfig::parse(
            "[serve]\nlisten = \"127.0.0.1:0\"\nshipping_every_secs = 0\n",
            "t",
        )
        .unwrap();
        assert_eq!(config.serve.listen.port(), 0);
        assert_eq!(config.serve.body_limit_bytes, 1024 * 1024);
        let err =
            crate::config::RelayConfig::parse("[serve]\nshiping_every_secs = 1\n", "relay.toml")
                .unwrap_err()
                .to_string();
        assert!(err.contains("shiping_every_secs"), "{err}");
        let bad = ServeConfig {
            norce_webhook_header: "bad header".into(),
            ..ServeConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("serve.norce_webhook_header")
        );
    }

    #[test]
    fn webhook_registration_defaults_are_the_events_the_flows_consume() {
        let config = crate::config::RelayConfig::parse("", "t").unwrap().serve;
        assert!(config.register_brightpearl_webhooks);
        assert_eq!(config.public_url, None);
        assert_eq!(
            config.brightpearl_webhook_events,
            [
                "product.modified.on-hand-modified",
                "goods-out-note.modified.shipped"
            ]
        );
        let text = "[serve]\npublic_url = \"https://relay.example.com/\"\nregister_brightpearl_webhooks = false\nbrightpearl_webhook_events = [\"product.modified\"]\n";
        let config = crate::config::RelayConfig::parse(text, "t").unwrap().serve;
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://relay.example.com/")
        );
        assert!(!config.register_brightpearl_webhooks);
        assert_eq!(config.brightpearl_webhook_events, ["product.modified"]);
    }

    #[test]
    fn webhook_registration_settings_are_checked_naming_the_key() {
        let error = |text: &str| {
            crate::config::RelayConfig::parse(text, "relay.toml")
                .unwrap_err()
                .to_string()
        };
        for (url, expected) in [
            ("", "is empty"),
            ("relay.example.com", "not an absolute URL"),
            ("ftp://relay.example.com", "https://"),
            ("https://user:pw@relay.example.com", "credentials"),
            ("https://relay.example.com/?secret=x", "query"),
            ("https://relay.example.com/#x", "fragment"),
        ] {
            let err = error(&format!("[serve]\npublic_url = \"{url}\"\n"));
            assert!(
                err.contains("serve.public_url") && err.contains(expected),
                "{url}: {err}"
            );
            assert!(
                !err.contains("pw@") && !err.contains("secret=x"),
                "credentials and the query are not echoed: {err}"
            );
        }
        for (events, expected) in [
            ("[\"product\"]", "entry 1 `product`"),
            ("[\"product.modified\", \"Product.Modified\"]", "entry 2"),
            ("[\"product.changed\"]", "created|modified|destroyed"),
            (
                "[\"product.modified.on-hand-modified.x\"]",
                "not a Brightpearl event name",
            ),
            ("[\"a.created\", \"a.created\"]", "listed twice"),
        ] {
            let err = error(&format!("[serve]\nbrightpearl_webhook_events = {events}\n"));
            assert!(
                err.contains("serve.brightpearl_webhook_events") && err.contains(expected),
                "{events}: {err}"
            );
        }
        let err = error("[serve]\nregister_brightpearl_webhook = true\n");
        assert!(err.contains("register_brightpearl_webhook"), "{err}");
        let err = error("[serve]\nregister_brightpearl_webhooks = \"yes\"\n");
        assert!(err.contains("register_brightpearl_webhooks"), "{err}");
    }
}
