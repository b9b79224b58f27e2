//! `relay serve`: the receivers, the inbox processor, the scheduler, `/healthz` and `/metrics`.
//!
//! | route | who calls it | auth |
//! | --- | --- | --- |
//! | `POST /norce/order-receiver` | Norce's order receiver (an `OrderRequest`, answered with an `OrderResponse`) | HTTP Basic: `[serve] order_receiver_user` and the password from `RELAY_ORDER_RECEIVER_PASSWORD` |
//! | `POST /norce/events/{eventType}` | Norce Commerce Event webhooks (one URL per event type) | static header `[serve] norce_webhook_header` = `RELAY_NORCE_WEBHOOK_SECRET` |
//! | `POST /brightpearl/webhooks` | Brightpearl webhooks (`WebhookEvent`, ids only) | `?secret=` in the registered URI, or the header `[serve] brightpearl_webhook_header`, = `RELAY_BRIGHTPEARL_WEBHOOK_SECRET` |
//! | `GET /healthz` | probes | none |
//! | `GET /metrics` | Prometheus | none |
//!
//! A receiver answers 2xx only after its inbox row is committed ([`Store::inbox_put`]; a
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

mod listener;
mod metrics;
mod receivers;
pub mod retention;
mod subscriptions;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::flows::FlowContext;
use crate::state::{InboxLane, Store};

pub use listener::ConnectionStats;
pub use metrics::Metrics;
pub use receivers::json_path_at;
pub use subscriptions::{
    BODY_TEMPLATE as BRIGHTPEARL_WEBHOOK_BODY_TEMPLATE, SubscriptionOutcome, SubscriptionReport,
    WebhookRegistration, redact_uri,
};
pub use worker::{FlowEntry, FlowFuture, IngestFn, IngestFuture, RunFn, flow_table};

/// The inbox sources the receivers write (keys: the `ClientOrderRef`; `{eventType}:{id}`, the id
/// being the event's `OrderId`, `JobId`, `ClientOrderRef`, `CustomerId` or `CompanyId`, else a
/// hash of the body; `{fullEvent}:{id set}`), defined with the flows that read them.
pub use crate::flows::{SOURCE_BRIGHTPEARL_WEBHOOK, SOURCE_NORCE_EVENT, SOURCE_NORCE_ORDER};

/// The Brightpearl events the flows consume, subscribed by default: on-hand changes (`stock`)
/// and shipped goods-out notes (`fulfilment`).
pub const DEFAULT_BRIGHTPEARL_WEBHOOK_EVENTS: [&str; 2] = [
    "product.modified.on-hand-modified",
    "goods-out-note.modified.shipped",
];

/// The `[serve]` section of the configuration file. Secrets are never here: each is read from
/// the environment variable (or `NAME_FILE`) that the `*_env` keys name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Listen address of the receivers, `/healthz` and `/metrics`.
    pub listen: SocketAddr,
    /// Largest accepted request body in bytes (larger: 413).
    pub body_limit_bytes: usize,
    /// Basic-auth user name Norce's order receiver is configured with.
    pub order_receiver_user: String,
    /// Environment variable holding the order receiver's Basic-auth password.
    pub order_receiver_password_env: String,
    /// Header carrying the shared secret of Norce event webhooks (a static custom header).
    pub norce_webhook_header: String,
    /// Environment variable holding the Norce webhook secret.
    pub norce_webhook_secret_env: String,
    /// Header that may carry the Brightpearl webhook secret (Brightpearl itself can only use the
    /// `?secret=` query parameter of the registered URI).
    pub brightpearl_webhook_header: String,
    /// Environment variable holding the Brightpearl webhook secret.
    pub brightpearl_webhook_secret_env: String,
    /// The base URL Brightpearl reaches this server at (`https://relay.example.com`); the
    /// subscriptions point at `{public_url}/brightpearl/webhooks?secret=…`. Unset: no
    /// registration (a warning names this key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Whether serve registers its Brightpearl webhook subscriptions at start.
    pub register_brightpearl_webhooks: bool,
    /// The events subscribed (`{resource}.{created|modified|destroyed}[.{specifier}]`).
    pub brightpearl_webhook_events: Vec<String>,
    /// Seconds before the registration is tried again after a transient failure (Brightpearl
    /// unreachable, throttled, 5xx), doubling each time up to an hour (0: only at start).
    pub brightpearl_webhook_retry_secs: u64,
    /// Seconds between scheduled runs of the `shipping` flow (0: only after ingest).
    pub shipping_every_secs: u64,
    /// Seconds between scheduled runs of the `orders` flow (orders and fulfilment; 0: only after ingest).
    pub orders_every_secs: u64,
    /// Seconds between scheduled reconciliation runs of the `stock` flow (stock and prices; 0: only after ingest).
    pub stock_reconcile_every_secs: u64,
    /// Delay between an ingest and the run it triggers, so a burst of webhooks makes one run.
    pub run_after_ingest_ms: u64,
    /// Seconds between sweeps of the inbox for items whose ingest failed (0: only on new items).
    pub inbox_sweep_secs: u64,
    /// Seconds a client has to send a request head, from the connection (or, on a kept-alive
    /// connection, from the request's first byte); then the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request body, from the end of its head; then `408`.
    pub body_read_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request; then it is closed.
    pub idle_timeout_secs: u64,
    /// Open connections at most (lowered to fit the process's open-files limit); beyond, `503`
    /// and the connection is closed.
    pub max_connections: usize,
    /// Open connections from one client address at most; beyond, `503` and closed.
    pub max_connections_per_ip: usize,
    /// Seconds a shutdown (SIGTERM, SIGINT) lets running flow passes and requests finish; then
    /// they are cancelled and resume at the next start (0: cancel at once).
    pub shutdown_grace_secs: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8788)),
            body_limit_bytes: 1024 * 1024,
            order_receiver_user: "norce".to_owned(),
            order_receiver_password_env: "RELAY_ORDER_RECEIVER_PASSWORD".to_owned(),
            norce_webhook_header: "X-Relay-Secret".to_owned(),
            norce_webhook_secret_env: "RELAY_NORCE_WEBHOOK_SECRET".to_owned(),
            brightpearl_webhook_header: "X-Relay-Secret".to_owned(),
            brightpearl_webhook_secret_env: "RELAY_BRIGHTPEARL_WEBHOOK_SECRET".to_owned(),
            public_url: None,
            register_brightpearl_webhooks: true,
            brightpearl_webhook_events: DEFAULT_BRIGHTPEARL_WEBHOOK_EVENTS
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
            brightpearl_webhook_retry_secs: 60,
            shipping_every_secs: 300,
            orders_every_secs: 300,
            stock_reconcile_every_secs: 3600,
            run_after_ingest_ms: 2000,
            inbox_sweep_secs: 30,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 512,
            max_connections_per_ip: 64,
            shutdown_grace_secs: 25,
        }
    }
}

impl ServeConfig {
    /// Checks the values the file cannot express as types; the error names the key.
    pub fn validate(&self) -> Result<(), ServeError> {
        let invalid = |setting: &str, reason: &str| ServeError::Config {
            setting: format!("serve.{setting}"),
            reason: reason.to_owned(),
        };
        if self.body_limit_bytes == 0 {
            return Err(invalid("body_limit_bytes", "must be at least 1"));
        }
        self.validate_limits()?;
        if self.order_receiver_user.is_empty() || self.order_receiver_user.contains(':') {
            return Err(invalid(
                "order_receiver_user",
                "must be non-empty and contain no `:` (HTTP Basic)",
            ));
        }
        for (key, header) in [
            ("norce_webhook_header", &self.norce_webhook_header),
            (
                "brightpearl_webhook_header",
                &self.brightpearl_webhook_header,
            ),
        ] {
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(invalid(key, "is not a valid HTTP header name"));
            }
        }
        for (key, name) in [
            (
                "order_receiver_password_env",
                &self.order_receiver_password_env,
            ),
            ("norce_webhook_secret_env", &self.norce_webhook_secret_env),
            (
                "brightpearl_webhook_secret_env",
                &self.brightpearl_webhook_secret_env,
            ),
        ] {
            if name.is_empty() {
                return Err(invalid(key, "must name an environment variable"));
            }
        }
        if let Some(url) = &self.public_url {
            check_public_url(url).map_err(|reason| invalid("public_url", &reason))?;
        }
        let mut seen = std::collections::HashSet::new();
        for (i, event) in self.brightpearl_webhook_events.iter().enumerate() {
            if let Err(reason) = check_event_name(event) {
                return Err(invalid(
                    "brightpearl_webhook_events",
                    &format!("entry {} `{event}` {reason}", i + 1),
                ));
            }
            if !seen.insert(event.as_str()) {
                return Err(invalid(
                    "brightpearl_webhook_events",
                    &format!("`{event}` is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

/// The longest a listener timeout or the shutdown grace may be, in seconds (an hour; longer
/// only lets idle or slow clients hold connections).
const MAX_TIMEOUT_SECS: u64 = 3600;
/// The most connections `serve.max_connections` may allow.
const MAX_CONNECTIONS: usize = 1_000_000;

impl ServeConfig {
    /// The listener's timeouts and caps, and the shutdown grace.
    fn validate_limits(&self) -> Result<(), ServeError> {
        let invalid = |setting: &str, reason: String| ServeError::Config {
            setting: format!("serve.{setting}"),
            reason,
        };
        for (key, value, what) in [
            (
                "header_read_timeout_secs",
                self.header_read_timeout_secs,
                "the seconds a client has to send a request head",
            ),
            (
                "body_read_timeout_secs",
                self.body_read_timeout_secs,
                "the seconds a client has to send a request body",
            ),
            (
                "idle_timeout_secs",
                self.idle_timeout_secs,
                "the seconds a kept-alive connection may wait for its next request",
            ),
        ] {
            if value == 0 || value > MAX_TIMEOUT_SECS {
                return Err(invalid(
                    key,
                    format!("is {value}: set {what}, from 1 to {MAX_TIMEOUT_SECS}"),
                ));
            }
        }
        if self.shutdown_grace_secs > MAX_TIMEOUT_SECS {
            return Err(invalid(
                "shutdown_grace_secs",
                format!(
                    "is {}: set at most {MAX_TIMEOUT_SECS} seconds (0 cancels running passes at once), and below the stop timeout of the service manager (systemd TimeoutStopSec, Kubernetes terminationGracePeriodSeconds, docker stop --time)",
                    self.shutdown_grace_secs
                ),
            ));
        }
        if self.max_connections == 0 || self.max_connections > MAX_CONNECTIONS {
            return Err(invalid(
                "max_connections",
                format!(
                    "is {}: set the open connections allowed, from 1 to {MAX_CONNECTIONS}",
                    self.max_connections
                ),
            ));
        }
        if self.max_connections_per_ip == 0 || self.max_connections_per_ip > self.max_connections {
            return Err(invalid(
                "max_connections_per_ip",
                format!(
                    "is {}: set the connections allowed from one client address, from 1 to serve.max_connections ({}); behind a proxy every request comes from its address, so allow it enough",
                    self.max_connections_per_ip, self.max_connections
                ),
            ));
        }
        Ok(())
    }
}

/// `serve.public_url`: an absolute http(s) URL with a host, without credentials, query or
/// fragment (the receiver's path and the secret are appended).
fn check_public_url(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("is empty: set the base URL Brightpearl reaches this server at (e.g. `https://relay.example.com`), or leave the key out".to_owned());
    }
    let url = reqwest::Url::parse(trimmed).map_err(|e| {
        format!("`{trimmed}` is not an absolute URL ({e}); e.g. `https://relay.example.com`")
    })?;
    // Credentials and a query (which may be a pasted `?secret=`) are refused first and never
    // shown: the messages below show only the scheme, or a URL without either.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain credentials (the webhook secret is added as `?secret=`)".to_owned(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment: give the base URL; `/brightpearl/webhooks?secret=…` is appended".to_owned());
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must start with https:// (or http://), not `{}:`",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{trimmed}` has no host"));
    }
    if trimmed.contains("${") {
        return Err("must not contain Brightpearl template variables (`${…}`)".to_owned());
    }
    Ok(())
}

/// A Brightpearl event name: `{resource}.{created|modified|destroyed}[.{specifier}]`, lower case.
fn check_event_name(event: &str) -> Result<(), &'static str> {
    const FORM: &str = "is not a Brightpearl event name such as `product.modified.on-hand-modified` ({resource}.{created|modified|destroyed}[.{specifier}])";
    let parts: Vec<&str> = event.split('.').collect();
    let word_ok = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !(2..=3).contains(&parts.len())
        || !parts.iter().all(|p| word_ok(p))
        || !matches!(parts[1], "created" | "modified" | "destroyed")
    {
        return Err(FORM);
    }
    Ok(())
}

/// A secret value: compared in constant time, never shown.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// Whether `candidate` equals the secret, in time independent of where they differ.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate)
    }

    /// The value, for the one place that must send it (the registered webhook URI).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Compares two byte strings in time that depends only on their lengths, not their contents.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Fold over the longer length so a prefix match takes as long as a total mismatch.
    let len = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// The receivers' secrets. A receiver without its secret is disabled (503 naming the variable).
#[derive(Debug, Clone, Default)]
pub struct ServeSecrets {
    /// The order receiver's Basic-auth password.
    pub order_receiver_password: Option<Secret>,
    /// The Norce event webhooks' shared secret.
    pub norce_webhook_secret: Option<Secret>,
    /// The Brightpearl webhooks' shared secret.
    pub brightpearl_webhook_secret: Option<Secret>,
}

impl ServeSecrets {
    /// Reads each secret from the variable `config` names, or from the file named by its
    /// `NAME_FILE` variable. An unset secret leaves its receiver disabled; an unreadable or empty
    /// file is an error naming the variable (never the value).
    pub fn from_settings(
        config: &ServeConfig,
        settings: &client_core::Settings,
    ) -> Result<Self, ServeError> {
        Ok(Self {
            order_receiver_password: read_secret(settings, &config.order_receiver_password_env)?,
            norce_webhook_secret: read_secret(settings, &config.norce_webhook_secret_env)?,
            brightpearl_webhook_secret: read_secret(
                settings,
                &config.brightpearl_webhook_secret_env,
            )?,
        })
    }
}

fn read_secret(settings: &client_core::Settings, name: &str) -> Result<Option<Secret>, ServeError> {
    if let Some(value) = settings.get(name).filter(|v| !v.is_empty()) {
        return Ok(Some(Secret::new(value)));
    }
    let file_setting = format!("{name}_FILE");
    let Some(path) = settings.get(&file_setting) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ServeError::Secret {
        setting: file_setting.clone(),
        reason: format!("cannot read `{path}`: {e}"),
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(ServeError::Secret {
            setting: file_setting,
            reason: format!("`{path}` is empty"),
        });
    }
    Ok(Some(Secret::new(value)))
}

/// Why `relay serve` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A `[serve]` value is unusable.
    #[error("configuration `{setting}`: {reason}")]
    Config {
        /// The key path, e.g. `serve.body_limit_bytes`.
        setting: String,
        /// Why.
        reason: String,
    },
    /// A secret's variable or file is unusable (the value is never shown).
    #[error("`{setting}`: {reason}")]
    Secret {
        /// The environment variable.
        setting: String,
        /// Why.
        reason: String,
    },
    /// The listen address cannot be bound or read.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Norce's order traffic: its own inbox lane.
const NORCE_SOURCES: &[&str] = &[SOURCE_NORCE_ORDER, SOURCE_NORCE_EVENT];

/// The inbox lanes, each drained by its own processor, so that a burst of Brightpearl webhooks
/// (each marking up to `stock.webhook_max_ids` products) never holds back Norce's orders.
pub(crate) const INBOX_LANES: [InboxLane; 2] = [
    InboxLane::Of(NORCE_SOURCES),
    InboxLane::Except(NORCE_SOURCES),
];

/// The lane (index into [`INBOX_LANES`]) of an item of `source`.
pub(crate) fn inbox_lane(source: &str) -> usize {
    usize::from(!INBOX_LANES[0].contains(source))
}

/// What the HTTP handlers and the background tasks share.
pub(crate) struct Shared {
    pub(crate) ctx: FlowContext,
    pub(crate) config: ServeConfig,
    pub(crate) secrets: ServeSecrets,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) flows: Vec<FlowEntry>,
    /// The listener's connection counters (for `/metrics`).
    pub(crate) connections: Arc<listener::Counters>,
    /// Wakes the inbox processor of each of [`INBOX_LANES`].
    pub(crate) inbox_wake: [tokio::sync::Notify; 2],
    /// Items committed to the inbox by the receivers (new or duplicate), for waiters.
    pub(crate) accepted: watch::Sender<u64>,
    /// Inbox items processed (done) by the processor, for waiters.
    pub(crate) processed: watch::Sender<u64>,
    /// Flow passes finished (ok or stopped), for waiters.
    pub(crate) runs: watch::Sender<u64>,
    /// Where the Brightpearl webhook registration stands.
    pub(crate) webhooks: watch::Sender<WebhookRegistration>,
}

impl Shared {
    pub(crate) fn store(&self) -> &dyn Store {
        self.ctx.store.as_ref()
    }

    /// Each receiver (named by its inbox source), whether it is enabled (its secret is set), and
    /// the variable that sets the secret.
    pub(crate) fn receivers(&self) -> [(&'static str, bool, &str); 3] {
        [
            (
                SOURCE_NORCE_ORDER,
                self.secrets.order_receiver_password.is_some(),
                &self.config.order_receiver_password_env,
            ),
            (
                SOURCE_NORCE_EVENT,
                self.secrets.norce_webhook_secret.is_some(),
                &self.config.norce_webhook_secret_env,
            ),
            (
                SOURCE_BRIGHTPEARL_WEBHOOK,
                self.secrets.brightpearl_webhook_secret.is_some(),
                &self.config.brightpearl_webhook_secret_env,
            ),
        ]
    }
}

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

/// Starts the receivers, the inbox processor and the scheduler on `listener`, with the flows of
/// [`flow_table`].
pub async fn start(
    ctx: FlowContext,
    secrets: ServeSecrets,
    listener: TcpListener,
) -> Result<ServerHandle, ServeError> {
    let flows = flow_table(&ctx.config.serve);
    start_with_flows(ctx, secrets, listener, flows).await
}

/// [`start`] with an explicit flow table (tests drive the processor and scheduler with their own
/// flows).
pub async fn start_with_flows(
    ctx: FlowContext,
    secrets: ServeSecrets,
    listener: TcpListener,
    flows: Vec<FlowEntry>,
) -> Result<ServerHandle, ServeError> {
    let config = ctx.config.serve.clone();
    config.validate()?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen.to_string(),
        source,
    })?;
    let metrics = Arc::new(Metrics::default());
    let connections = Arc::new(listener::Counters::default());
    let shared = Arc::new(Shared {
        ctx,
        config,
        secrets,
        metrics,
        connections: connections.clone(),
        flows,
        inbox_wake: [tokio::sync::Notify::new(), tokio::sync::Notify::new()],
        accepted: watch::channel(0).0,
        processed: watch::channel(0).0,
        runs: watch::channel(0).0,
        webhooks: watch::channel(WebhookRegistration::Pending { events: Vec::new() }).0,
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

    let app = receivers::router(shared.clone());
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
        shared.ctx.brightpearl.as_ref(),
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

/// Durations from `[serve]` seconds, `None` for 0.
pub(crate) fn every(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_contents_and_lengths() {
        assert!(constant_time_eq(b"hunter2", b"hunter2"));
        assert!(!constant_time_eq(b"hunter2", b"hunter3"));
        assert!(!constant_time_eq(b"hunter2", b"hunter22"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn secrets_are_redacted_and_read_from_files() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let dir = std::env::temp_dir().join(format!("relay-serve-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let settings = client_core::Settings::from_pairs([
            ("RELAY_ORDER_RECEIVER_PASSWORD_FILE", file.to_str().unwrap()),
            ("RELAY_NORCE_WEBHOOK_SECRET", "n"),
        ]);
        let secrets = ServeSecrets::from_settings(&ServeConfig::default(), &settings).unwrap();
        assert!(
            secrets
                .order_receiver_password
                .unwrap()
                .matches(b"from-file")
        );
        assert!(secrets.norce_webhook_secret.unwrap().matches(b"n"));
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
