//! What every flow shares: [`FlowContext`] (store, clients, configuration, the stop flag),
//! [`FlowReport`], [`FlowError`], [`Ingested`], and the pass helper `for_each_pending`.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::config::{ConfigError, RelayConfig};
use crate::state::{EntityRecord, StateError, Status, Store, parse_time_cursor};

/// Inbox source of Norce's order receiver push (body: an `OrderRequest`; taken by `shipping`
/// and `orders`).
pub const SOURCE_NORCE_ORDER: &str = "norce-order";
/// Inbox source of Norce event webhooks (key `{eventType}:{id}`; taken by `shipping` and
/// `orders`).
pub const SOURCE_NORCE_EVENT: &str = "norce-event";
/// Inbox source of Brightpearl webhooks (body: the webhook's JSON body template; taken by
/// `stock` and `orders`).
pub const SOURCE_BRIGHTPEARL_WEBHOOK: &str = "brightpearl-webhook";

/// What every flow needs: the store, the clients of the configured platforms, the settings.
#[derive(Clone)]
pub struct FlowContext {
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Norce, when configured.
    pub norce: Option<norce_client::NorceClient>,
    /// nShift, when configured.
    pub nshift: Option<nshift_client::NshiftClient>,
    /// Brightpearl, when configured.
    pub brightpearl: Option<brightpearl_client::Client>,
    /// The configuration file's contents (defaults when there is none).
    pub config: Arc<RelayConfig>,
    /// Set when the process is stopping: passes take no new item (those in flight finish).
    pub stopping: StopFlag,
    /// This worker among those sharing the store: its name on leases, and their length.
    pub coordination: Coordination,
    /// What started this pass: a flow may skip its polls in a pass that an ingest started.
    pub pass_origin: PassOrigin,
}

/// What started a pass ([`FlowContext::pass_origin`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PassOrigin {
    /// `relay run`, `relay serve`'s start or its schedule: the whole pass, polls included.
    #[default]
    Schedule,
    /// `relay serve`, after the receivers' items gave the flow work: the pushed work is already
    /// in the state, so a flow whose ingest records it whole may leave its polls to the schedule.
    Ingest,
}

/// How this process shares work with the other workers on one store: every pending item is
/// processed under a lease (`entity/{flow}/{source id}`) taken by [`for_each_pending`], and a
/// flow's cursor reads run under [`FlowContext::exclusive`]. A lease is renewed every third of
/// `lease_ttl` while its work runs, so a killed worker's items are taken over after at most
/// `lease_ttl`. With one process the leases are always granted.
#[derive(Debug, Clone)]
pub struct Coordination {
    /// The worker's name on its leases (`relay serve`: `RELAY_WORKER_ID`, else host, process id
    /// and a random suffix, so a restarted worker never mistakes an old lease for its own).
    pub worker: Arc<str>,
    /// How long a lease lasts without renewal.
    pub lease_ttl: std::time::Duration,
}

impl Default for Coordination {
    fn default() -> Self {
        Self {
            worker: default_worker_name().into(),
            lease_ttl: std::time::Duration::from_secs(30),
        }
    }
}

/// The worker name of a store that only this machine's processes use (the SQLite file): a
/// killed `relay run` or `relay serve` leaves its leases behind, and the next start on the
/// file takes them over at once as their holder instead of waiting for them to run out.
pub const LOCAL_WORKER: &str = "local";

impl Coordination {
    /// The default for `store`: a unique name per process start when processes on other
    /// machines share it (PostgreSQL), [`LOCAL_WORKER`] otherwise.
    pub fn for_store(store: &dyn Store) -> Self {
        let mut coordination = Self::default();
        if !store.shared_across_processes() {
            coordination.worker = LOCAL_WORKER.into();
        }
        coordination
    }
}

/// `host-pid-random`: unique per process start.
pub fn default_worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".to_owned());
    // A random suffix from std's per-process random hash keys.
    let random = {
        use std::hash::{BuildHasher as _, Hasher as _};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish() as u16
    };
    format!("{host}-{}-{random:04x}", std::process::id())
}

/// The lease name of one entity.
pub(crate) fn entity_lease(flow: &str, source_id: &str) -> String {
    format!("entity/{flow}/{source_id}")
}

/// A process-wide "stopping" flag shared by every clone of a [`FlowContext`]: `relay serve`
/// sets it when a shutdown begins, so a pass stops taking new items and only lets those in
/// flight finish within the grace.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<std::sync::atomic::AtomicBool>);

impl StopFlag {
    /// Says the process is stopping.
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the process is stopping.
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl FlowContext {
    /// The Norce client, or an error naming the settings to set.
    pub fn norce(&self) -> Result<&norce_client::NorceClient, FlowError> {
        self.norce.as_ref().ok_or(FlowError::NotConfigured {
            platform: "Norce",
            settings: "NORCE_CLIENT_ID, NORCE_CLIENT_SECRET, NORCE_APPLICATION_ID",
        })
    }

    /// The nShift client, or an error naming the settings to set.
    pub fn nshift(&self) -> Result<&nshift_client::NshiftClient, FlowError> {
        self.nshift.as_ref().ok_or(FlowError::NotConfigured {
            platform: "nShift",
            settings: "NSHIFT_API_KEY_ID, NSHIFT_SECRET_ID",
        })
    }

    /// This context for a pass of `flow`: its Brightpearl client draws from the account's one
    /// limiter with the flow's priority and is counted under its name
    /// ([`budget_of`](crate::budget::budget_of)); the rest is shared.
    pub fn for_flow(&self, flow: &str) -> FlowContext {
        let mut ctx = self.clone();
        ctx.brightpearl = self
            .brightpearl
            .as_ref()
            .map(|client| client.with_budget(crate::budget::budget_of(flow)));
        ctx
    }

    /// Runs `work` only if this worker gets the lease `name` (another worker running it
    /// already: `Ok(None)`), renewing the lease while it runs and giving it up after. For the
    /// parts of a pass that read a cursor and must not run on two workers at once (a poll, a
    /// feed), so that two workers never move one cursor.
    pub async fn exclusive<T>(
        &self,
        name: &str,
        work: impl std::future::Future<Output = Result<T, FlowError>>,
    ) -> Result<Option<T>, FlowError> {
        if !self
            .store
            .lease(name, &self.coordination.worker, self.coordination.lease_ttl)?
        {
            tracing::debug!(lease = name, "another worker holds it; skipped on this one");
            return Ok(None);
        }
        under_lease(self, name, work).await
    }

    /// The Brightpearl client, or an error naming the settings to set.
    pub fn brightpearl(&self) -> Result<&brightpearl_client::Client, FlowError> {
        self.brightpearl.as_ref().ok_or(FlowError::NotConfigured {
            platform: "Brightpearl",
            settings: "BRIGHTPEARL_ACCOUNT, BRIGHTPEARL_APP_REF and a token",
        })
    }
}

/// What one run of a flow did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlowReport {
    /// Flow name.
    pub flow: String,
    /// Items looked at.
    pub seen: u64,
    /// Items created in the target platform this run (shipments booked, orders created, SKUs imported).
    pub booked: u64,
    /// Items whose result was written back to the source (delivery notes, order statuses).
    pub written_back: u64,
    /// Items finished (now or before) and not touched again.
    pub done: u64,
    /// Items skipped by the mapping.
    pub skipped: u64,
    /// Items that failed this run (kept for retry, or dead-lettered after the attempt limit).
    pub failed: u64,
    /// Wall time of the run in milliseconds.
    pub duration_ms: u64,
    /// Label files saved this run (`shipping`).
    pub labels: u64,
    /// Norce delivery notes created this run (`shipping`, `fulfilment`).
    pub notes: u64,
    /// Norce orders set to the delivered status this run (`fulfilment`).
    pub delivered: u64,
    /// Norce orders set to the partly delivered status this run (`fulfilment`).
    pub partly_delivered: u64,
    /// On-hand rows (one per SKU and Norce location) of the products imported this run (`stock`).
    pub onhand_rows: u64,
    /// Price rows (one per SKU and Norce price list) of the products imported this run (`stock`).
    pub price_rows: u64,
    /// Norce import jobs that Norce accepted this run (`stock`).
    pub import_jobs: u64,
}

impl FlowReport {
    /// One report named `flow` that adds up `reports` (a runner that drives several passes, or
    /// a total row).
    pub fn merged<'a>(flow: &str, reports: impl IntoIterator<Item = &'a FlowReport>) -> FlowReport {
        reports.into_iter().fold(
            FlowReport {
                flow: flow.to_owned(),
                ..FlowReport::default()
            },
            |mut sum, r| {
                sum.seen += r.seen;
                sum.booked += r.booked;
                sum.written_back += r.written_back;
                sum.done += r.done;
                sum.skipped += r.skipped;
                sum.failed += r.failed;
                sum.duration_ms += r.duration_ms;
                sum.labels += r.labels;
                sum.notes += r.notes;
                sum.delivered += r.delivered;
                sum.partly_delivered += r.partly_delivered;
                sum.onhand_rows += r.onhand_rows;
                sum.price_rows += r.price_rows;
                sum.import_jobs += r.import_jobs;
                sum
            },
        )
    }

    /// Counts one entity looked at and what became of it.
    pub(crate) fn add(&mut self, outcome: Outcome) {
        self.seen += 1;
        self.booked += u64::from(outcome.booked);
        self.written_back += u64::from(outcome.written_back);
        self.done += u64::from(outcome.done);
        self.skipped += u64::from(outcome.skipped);
        self.failed += u64::from(outcome.failed);
        self.labels += u64::from(outcome.labels);
        self.notes += u64::from(outcome.note);
        self.delivered += u64::from(outcome.delivered);
        self.partly_delivered += u64::from(outcome.partly_delivered);
    }
}

/// What processing one entity came to, as the flows that process entities one by one count it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Outcome {
    /// Created in the target platform by this attempt.
    pub booked: bool,
    /// Its result was written back to the source by this attempt.
    pub written_back: bool,
    /// Finished.
    pub done: bool,
    /// Skipped by the mapping.
    pub skipped: bool,
    /// The attempt failed (kept for retry, or dead-lettered).
    pub failed: bool,
    /// Label files saved by this attempt.
    pub labels: u32,
    /// A Norce delivery note was created by this attempt.
    pub note: bool,
    /// The Norce order was set to the delivered status by this attempt.
    pub delivered: bool,
    /// The Norce order was set to the partly delivered status by this attempt.
    pub partly_delivered: bool,
}

/// Milliseconds since `started`, for [`FlowReport::duration_ms`].
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The time in the cursor `flow` (RFC 3339), if set; a value that is no time is a `Config`
/// error naming the cursor and how to set it.
pub(crate) fn cursor_time(
    ctx: &FlowContext,
    flow: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, FlowError> {
    match ctx.store.cursor(flow)? {
        Some(value) => {
            parse_time_cursor(flow, &value)
                .map(Some)
                .map_err(|reason| FlowError::Config {
                    setting: format!("cursor {flow}"),
                    reason,
                })
        }
        None => Ok(None),
    }
}

/// A flow that could not run at all (item failures are counted in the report instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// A platform the flow needs is not configured.
    #[error("{platform} is not configured: set {settings}")]
    NotConfigured {
        /// The platform.
        platform: &'static str,
        /// What to set.
        settings: &'static str,
    },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A Norce call failed where the flow cannot go on.
    #[error("Norce: {0}")]
    Norce(#[from] norce_client::Error),
    /// An nShift call failed where the flow cannot go on.
    #[error("nShift: {0}")]
    Nshift(#[from] nshift_client::Error),
    /// A Brightpearl call failed where the flow cannot go on.
    #[error("Brightpearl: {0}")]
    Brightpearl(#[from] brightpearl_client::Error),
    /// A configuration value is unusable.
    #[error("configuration `{setting}`: {reason}")]
    Config {
        /// The setting (TOML key path).
        setting: String,
        /// Why.
        reason: String,
    },
    /// Writing a label or another file failed.
    #[error("cannot write `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An item's failure that stops the pass (see [`crate::flows::action`]).
    #[error("{reason} ({kind})")]
    Item {
        /// The failure's kind (`unauthorized`).
        kind: &'static str,
        /// What failed, and what to do.
        reason: String,
    },
}

impl FlowError {
    /// The shared classification of a platform failure (the client error's own `kind()`).
    /// `None` for the rest (a platform not configured, a setting, the state store, a file):
    /// no retry of an item changes those, so they stop the pass.
    pub fn kind(&self) -> Option<client_core::ErrorKind> {
        match self {
            FlowError::Norce(e) => Some(e.kind()),
            FlowError::Nshift(e) => Some(e.kind()),
            FlowError::Brightpearl(e) => Some(e.kind()),
            _ => None,
        }
    }
}

impl From<ConfigError> for FlowError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { setting, reason } => FlowError::Config { setting, reason },
            other => FlowError::Config {
                setting: "(configuration file)".into(),
                reason: other.to_string(),
            },
        }
    }
}

/// What an `ingest` did for its flow: whether `relay serve` should run the flow soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Ingested {
    /// Pending work for the flow (an entity queued or changed, or an event its pass acts on).
    Work,
    /// Nothing for this flow (another flow's event, a known item, a dead letter filed).
    Nothing,
}

/// Pending records read from the store per pass at most this many at a time.
pub(crate) const PENDING_PAGE: usize = 256;

/// Drives every `Pending` entity of `flow` through `process`, at most `concurrency` at once,
/// handing each outcome to `tally`; returns how many entities were processed.
///
/// The records are read a page at a time in creation order, so a pass over any number of items
/// holds one page and the items in flight, never the whole backlog. An item that stays pending
/// (a failed attempt) is not visited twice in a pass. After the first error that stops the flow,
/// no new item starts; those in flight finish (each step records its own progress) and the
/// error is returned.
///
/// `process` returns a boxed `Send` future: boxed where the caller's lifetimes are concrete, the
/// pass stays provably `Send` for the runners (an opaque future in `BufferUnordered` is not).
pub(crate) async fn for_each_pending<'a, O>(
    ctx: &'a FlowContext,
    flow: &'a str,
    concurrency: usize,
    process: impl Fn(EntityRecord) -> futures::future::BoxFuture<'a, Result<O, FlowError>>,
    mut tally: impl FnMut(O),
) -> Result<u64, FlowError> {
    use futures::StreamExt as _;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut page = Vec::new().into_iter();
    let (mut after, mut exhausted, mut processed) = (0, false, 0);
    let mut first_error: Option<FlowError> = None;
    loop {
        // Once the process is stopping, no new item: those in flight finish, the rest stay
        // pending for the next start.
        while first_error.is_none()
            && !ctx.stopping.is_set()
            && in_flight.len() < concurrency.max(1)
        {
            if page.len() == 0 && !exhausted {
                match ctx
                    .store
                    .list_after(flow, Some(Status::Pending), after, PENDING_PAGE)
                {
                    Ok(next) => {
                        exhausted = next.is_empty();
                        after = next.last().map_or(after, |r| r.position);
                        page = next.into_iter();
                    }
                    Err(e) => {
                        first_error = Some(e.into());
                        break;
                    }
                }
            }
            let Some(listed) = page.next() else { break };
            // The item is another worker's while its lease runs; once ours, it is read again,
            // since the page may be older than the other worker's last step.
            let lease = entity_lease(flow, &listed.source_id);
            let leased = ctx
                .store
                .lease(&lease, &ctx.coordination.worker, ctx.coordination.lease_ttl)
                .and_then(|granted| match granted {
                    true => ctx.store.get(flow, &listed.source_id),
                    false => Ok(None),
                });
            match leased {
                Ok(Some(record)) if record.status == Status::Pending => {
                    in_flight.push(Box::pin(under_lease(ctx, lease, process(record))));
                }
                Ok(Some(_)) => {
                    // Finished meanwhile by another worker.
                    release(ctx, &lease);
                }
                Ok(None) => {}
                Err(e) => {
                    release(ctx, &lease);
                    first_error = Some(e.into());
                }
            }
        }
        match in_flight.next().await {
            Some(Ok(None)) => {}
            Some(result) => {
                processed += 1;
                match result {
                    Ok(Some(outcome)) => tally(outcome),
                    Ok(None) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            None => break,
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(processed),
    }
}

/// Gives up this worker's lease `name` (a failure only delays the others until it runs out).
fn release(ctx: &FlowContext, name: &str) {
    if let Err(e) = ctx.store.release(name, &ctx.coordination.worker) {
        tracing::warn!(lease = name, error = %e, "lease not released; it runs out by itself");
    }
}

/// Runs `work` under the lease `name` that this worker holds: renews it every third of the
/// lease's length, releases it at the end. When the lease is lost (another worker took it
/// after a renewal failed for longer than the lease lasts) the work is dropped at its next
/// await point, which is as safe as a crash: every step records its result right after its
/// platform call and a replayed step checks the target first. Returns `Ok(None)` then.
pub(crate) async fn under_lease<T>(
    ctx: &FlowContext,
    name: impl AsRef<str>,
    work: impl std::future::Future<Output = Result<T, FlowError>>,
) -> Result<Option<T>, FlowError> {
    let name = name.as_ref();
    let ttl = ctx.coordination.lease_ttl;
    // Released however the work ends, also when its future is dropped (a cancelled pass):
    // only a killed process leaves its leases to run out.
    let _release = ReleaseOnDrop { ctx, name };
    let heartbeat = async {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(ttl / 3).await;
            match ctx.store.lease(name, &ctx.coordination.worker, ttl) {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::warn!(
                        lease = name,
                        "lease lost to another worker; dropping the work"
                    );
                    return;
                }
                // The store may be back before the lease runs out (a database restart).
                Err(e) if renewed.elapsed() < ttl * 2 / 3 => {
                    tracing::warn!(lease = name, error = %e, "lease not renewed; retrying");
                }
                Err(e) => {
                    tracing::warn!(lease = name, error = %e, "lease not renewed in time; dropping the work");
                    return;
                }
            }
        }
    };
    tokio::select! {
        result = work => result.map(Some),
        () = heartbeat => Ok(None),
    }
}

/// Gives the lease `name` up when dropped.
struct ReleaseOnDrop<'a> {
    ctx: &'a FlowContext,
    name: &'a str,
}

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        release(self.ctx, self.name);
    }
}

impl FlowContext {
    /// Builds the clients of every configured platform from `settings` (a platform counts as
    /// configured when any of its settings is present) over `store`.
    pub fn from_settings(
        settings: &client_core::Settings,
        store: Arc<dyn Store>,
        config: Arc<RelayConfig>,
    ) -> Result<Self, String> {
        use crate::platform::{Platform, configured_platforms};
        let configured = configured_platforms(settings);
        // Workers on one shared database share tokens and rate budgets through it; a store of
        // one process keeps them in the process.
        let shared: Option<Arc<dyn auth_core::SharedAuthState>> = store
            .shared_across_processes()
            .then(|| Arc::new(crate::shared_auth::StoreAuthState::new(store.clone())) as _);
        let norce = if configured.contains(&Platform::Norce) {
            Some(
                norce_client::NorceClientBuilder::from_settings(settings)
                    .map(|b| match &shared {
                        Some(state) => b.shared_auth_state(state.clone()),
                        None => b,
                    })
                    .and_then(|b| b.build())
                    .map_err(|e| e.hint())?,
            )
        } else {
            None
        };
        let nshift = if configured.contains(&Platform::Nshift) {
            Some(
                nshift_client::NshiftClientBuilder::from_settings(settings)
                    .map(|b| match &shared {
                        Some(state) => b.shared_auth_state(state.clone()),
                        None => b,
                    })
                    .and_then(|b| b.build())
                    .map_err(|e| e.hint())?,
            )
        } else {
            None
        };
        let brightpearl = if configured.contains(&Platform::Brightpearl) {
            Some(
                brightpearl_client::ClientBuilder::from_settings(settings)
                    .map(|b| match &shared {
                        Some(state) => b.shared_auth_state(state.clone()),
                        None => b,
                    })
                    .and_then(|b| b.build())
                    .map_err(|e| e.hint())?,
            )
        } else {
            None
        };
        Ok(Self {
            pass_origin: PassOrigin::Schedule,
            coordination: Coordination::for_store(store.as_ref()),
            store,
            norce,
            nshift,
            brightpearl,
            config,
            stopping: StopFlag::default(),
        })
    }
}

#[cfg(test)]
impl FlowContext {
    /// A context without platform clients over an in-memory store (unit tests).
    pub(crate) fn offline(config: RelayConfig) -> Self {
        let store: Arc<dyn Store> = Arc::new(crate::state::SqliteStore::in_memory().unwrap());
        Self {
            store,
            norce: None,
            nshift: None,
            brightpearl: None,
            config: Arc::new(config),
            stopping: StopFlag::default(),
            coordination: Coordination::default(),
            pass_origin: PassOrigin::Schedule,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::state::EntityUpdate;

    fn context(pending: usize) -> FlowContext {
        let ctx = FlowContext::offline(RelayConfig::default());
        for n in 0..pending {
            ctx.store
                .upsert_pending("f", &format!("{n:05}"), None)
                .unwrap();
        }
        ctx.store.upsert_pending("other", "x", None).unwrap();
        ctx
    }

    #[tokio::test]
    async fn a_stopping_process_takes_no_new_item_and_lets_those_in_flight_finish() {
        let ctx = context(50);
        let finished = AtomicUsize::new(0);
        let processed = for_each_pending(
            &ctx,
            "f",
            4,
            |_record| {
                let (ctx, finished) = (&ctx, &finished);
                Box::pin(async move {
                    // The stop arrives while the first items are in flight.
                    ctx.stopping.set();
                    tokio::task::yield_now().await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
            },
            |()| {},
        )
        .await
        .unwrap();
        assert_eq!(processed, 4, "the 4 in flight finished, no fifth was taken");
        assert_eq!(finished.load(Ordering::SeqCst), 4);
        let pending = ctx.store.list(Some("f"), Some(Status::Pending)).unwrap();
        assert_eq!(
            pending.len(),
            50,
            "the rest stay pending for the next start"
        );
    }

    #[tokio::test]
    async fn every_pending_entity_once_across_pages_with_bounded_concurrency() {
        let ctx = context(PENDING_PAGE * 2 + 7);
        let (in_flight, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut seen = Vec::new();
        let processed = for_each_pending(
            &ctx,
            "f",
            4,
            |record| {
                let (ctx, in_flight, peak) = (&ctx, &in_flight, &peak);
                Box::pin(async move {
                    peak.fetch_max(
                        in_flight.fetch_add(1, Ordering::SeqCst) + 1,
                        Ordering::SeqCst,
                    );
                    tokio::task::yield_now().await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    // Every third fails and stays pending: not visited again in this pass.
                    if record.source_id.ends_with(['0', '3', '6']) {
                        ctx.store.record_failure("f", &record.source_id, "503")?;
                    } else {
                        ctx.store.update(
                            "f",
                            &record.source_id,
                            &EntityUpdate {
                                status: Some(Status::Done),
                                ..Default::default()
                            },
                        )?;
                    }
                    Ok(record.source_id)
                })
            },
            |id| seen.push(id),
        )
        .await
        .unwrap();
        assert_eq!(processed as usize, PENDING_PAGE * 2 + 7);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), PENDING_PAGE * 2 + 7, "each once");
        assert_eq!(
            peak.load(Ordering::SeqCst),
            4,
            "at most `concurrency` in flight, and that many"
        );
    }

    #[tokio::test]
    async fn a_flow_error_starts_nothing_new_and_is_returned() {
        let ctx = context(50);
        let started = AtomicUsize::new(0);
        let result = for_each_pending(
            &ctx,
            "f",
            2,
            |record| {
                let started = &started;
                Box::pin(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    if record.source_id == "00003" {
                        return Err(FlowError::NotConfigured {
                            platform: "Norce",
                            settings: "NORCE_CLIENT_ID",
                        });
                    }
                    tokio::task::yield_now().await;
                    Ok(())
                })
            },
            |()| {},
        )
        .await;
        assert!(
            matches!(result, Err(FlowError::NotConfigured { .. })),
            "{result:?}"
        );
        assert!(
            started.load(Ordering::SeqCst) <= 5,
            "stopped soon after the error: {}",
            started.load(Ordering::SeqCst)
        );
    }

    /// A second worker over the same store.
    fn worker(ctx: &FlowContext, name: &str) -> FlowContext {
        let mut other = ctx.clone();
        other.coordination = Coordination {
            worker: name.into(),
            lease_ttl: std::time::Duration::from_secs(30),
        };
        other
    }

    #[tokio::test(start_paused = true)]
    async fn two_workers_never_process_one_item_at_once_nor_twice() {
        let base = context(40);
        let (a, b) = (worker(&base, "a"), worker(&base, "b"));
        let processed = std::sync::Mutex::new(Vec::new());
        let pass = |ctx: &'static FlowContext| {
            let processed = &processed;
            for_each_pending(
                ctx,
                "f",
                4,
                move |record| {
                    Box::pin(async move {
                        // Slow items: the other worker's pass runs meanwhile.
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        processed.lock().unwrap().push(record.source_id.clone());
                        ctx.store.update(
                            "f",
                            &record.source_id,
                            &EntityUpdate {
                                status: Some(Status::Done),
                                ..Default::default()
                            },
                        )?;
                        Ok(())
                    })
                },
                |()| {},
            )
        };
        let (a, b): (&'static FlowContext, &'static FlowContext) =
            (Box::leak(Box::new(a)), Box::leak(Box::new(b)));
        let (done_a, done_b) = tokio::join!(pass(a), pass(b));
        let (done_a, done_b) = (done_a.unwrap(), done_b.unwrap());
        let mut seen = processed.into_inner().unwrap();
        assert_eq!(done_a + done_b, 40, "every item once in all");
        assert!(
            done_a > 0 && done_b > 0,
            "both workers took items: {done_a} + {done_b}"
        );
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 40, "no item processed twice");
        assert!(
            base.store.leases("entity/").unwrap().is_empty(),
            "leases released"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_killed_workers_items_are_taken_over_after_its_lease_and_a_long_item_keeps_its_own() {
        // The store's clock follows tokio's paused clock, so leases run out as time advances.
        let start = (chrono::Utc::now(), tokio::time::Instant::now());
        let store = crate::state::SqliteStore::in_memory()
            .unwrap()
            .with_clock(move || start.0 + chrono::TimeDelta::from_std(start.1.elapsed()).unwrap());
        let mut base = context(0);
        base.store = Arc::new(store);
        for id in ["00000", "00001"] {
            base.store.upsert_pending("f", id, None).unwrap();
        }
        let (a, b) = (worker(&base, "a"), worker(&base, "b"));
        // Worker "dead" took item 00000 and died without releasing it.
        let ttl = std::time::Duration::from_secs(30);
        assert!(
            base.store
                .lease(&entity_lease("f", "00000"), "dead", ttl)
                .unwrap()
        );
        // Worker a works 100 s on 00001: its lease is renewed meanwhile, so b never gets it.
        let long = for_each_pending(
            &a,
            "f",
            1,
            |record| {
                Box::pin(async move {
                    assert_eq!(record.source_id, "00001");
                    tokio::time::sleep(std::time::Duration::from_secs(100)).await;
                    Ok(record.source_id)
                })
            },
            |_| {},
        );
        let b_pass = async {
            tokio::time::sleep(std::time::Duration::from_secs(50)).await;
            let mut taken = Vec::new();
            for_each_pending(
                &b,
                "f",
                4,
                |record| Box::pin(async move { Ok(record.source_id) }),
                |id| taken.push(id),
            )
            .await
            .unwrap();
            taken
        };
        let (long, taken) = tokio::join!(long, b_pass);
        assert_eq!(long.unwrap(), 1);
        assert_eq!(
            taken,
            vec!["00000".to_owned()],
            "b took the dead worker's item after its lease ran out, not a's renewed one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_exclusive_part_runs_on_one_worker_at_a_time() {
        let base = context(0);
        let (a, b) = (worker(&base, "a"), worker(&base, "b"));
        let slow = async {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            Ok(1)
        };
        let (first, second) = tokio::join!(a.exclusive("poll/f", slow), async {
            tokio::task::yield_now().await;
            b.exclusive("poll/f", async { Ok(2) }).await
        });
        assert_eq!((first.unwrap(), second.unwrap()), (Some(1), None));
        // Released at the end: the next one runs.
        assert_eq!(
            b.exclusive("poll/f", async { Ok(3) }).await.unwrap(),
            Some(3)
        );
    }
}
