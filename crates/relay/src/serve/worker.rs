//! The background work of `relay serve`: the inbox processor (hands received items to the flows)
//! and the scheduler (one task per flow: periodic runs and runs soon after an ingest; one run per
//! flow at a time).
//!
//! At the stop, the processor takes no further inbox item and the schedulers start no new pass;
//! a pass in progress goes on until the cancel (the end of the shutdown grace), which drops it at
//! its next await point. That is safe: every step records its result in the state right after
//! the platform call that made it, and a replayed step checks the target first, so the pass's
//! items resume at the next start exactly as after a crash.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::{ServeConfig, Shared, every};
use crate::flows::{FlowContext, FlowError, FlowReport, Ingested};
pub use crate::flows::{FlowFuture, RunFn};
use crate::state::InboxItem;

/// An ingest in progress.
pub type IngestFuture<'a> = Pin<Box<dyn Future<Output = Result<Ingested, FlowError>> + Send + 'a>>;
/// A flow's `ingest`.
pub type IngestFn = for<'a> fn(&'a FlowContext, &'a InboxItem) -> IngestFuture<'a>;

/// One flow as `relay serve` drives it: the functions of the flow contract (see
/// [`crate::flows`]) and its schedule.
#[derive(Clone, Copy)]
pub struct FlowEntry {
    /// The flow's name (`shipping`, `stock`, `orders`).
    pub name: &'static str,
    /// The entity flows it records (for `/metrics`; e.g. `stock` records `stock` and `prices`).
    pub entity_flows: &'static [&'static str],
    /// One pass.
    pub run: RunFn,
    /// Whether it takes inbox items of a source.
    pub accepts: fn(&str) -> bool,
    /// Turns an inbox item into pending entities.
    pub ingest: IngestFn,
    /// Time between scheduled passes (`None`: only after ingest).
    pub every: Option<Duration>,
}

impl std::fmt::Debug for FlowEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowEntry")
            .field("name", &self.name)
            .field("entity_flows", &self.entity_flows)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// The flows `relay serve` runs, with their intervals from `[serve]`.
///
/// `orders` runs the orders flow and then the fulfilment flow (the orders module's ingest makes
/// `fulfilment` entities from Brightpearl's shipped webhooks, so one trigger serves both);
/// `stock` runs stock and prices. Norce order events feed `shipping` (the event's order is
/// queued) and `orders` (the event starts a pass whose poll reads the order).
pub fn flow_table(config: &ServeConfig) -> Vec<FlowEntry> {
    use crate::flows::{orders, shipping, stock};
    vec![
        // Orders into the ERP first (the same order push also feeds shipping).
        FlowEntry {
            name: "orders",
            entity_flows: &["orders", "fulfilment"],
            run: |ctx| Box::pin(orders_and_fulfilment(ctx)),
            accepts: orders::accepts,
            ingest: |ctx, item| Box::pin(orders::ingest(ctx, item)),
            every: every(config.orders_every_secs),
        },
        FlowEntry {
            name: "shipping",
            entity_flows: &["shipping"],
            run: |ctx| Box::pin(shipping::run(ctx)),
            accepts: shipping::accepts,
            ingest: |ctx, item| Box::pin(shipping::ingest(ctx, item)),
            every: every(config.shipping_every_secs),
        },
        FlowEntry {
            name: "stock",
            entity_flows: &["stock", "prices"],
            run: |ctx| Box::pin(stock::run(ctx)),
            accepts: stock::accepts,
            ingest: |ctx, item| Box::pin(stock::ingest(ctx, item)),
            every: every(config.stock_reconcile_every_secs),
        },
    ]
}

/// The orders pass, then the fulfilment pass (even when the first stopped); one report, or the
/// first error.
async fn orders_and_fulfilment(ctx: &FlowContext) -> Result<FlowReport, FlowError> {
    let orders = crate::flows::orders::run(ctx).await;
    let fulfilment = crate::flows::orders::run_fulfilment(ctx).await;
    match (orders, fulfilment) {
        (Ok(a), Ok(b)) => Ok(FlowReport::merged("orders", [&a, &b])),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// How long a flow thread's runtime waits, after its scheduler ended, for blocking work of a
/// cancelled pass (a label being written) before it is left to finish on its own.
const RUNTIME_SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// Spawns the inbox processor and one scheduler task per runnable flow; they stop taking work at
/// `shutdown`, and a running pass is dropped at `cancel`.
pub(super) fn spawn(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    cancel: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let triggers: Arc<Vec<(&'static str, Arc<Notify>)>> = Arc::new(
        shared
            .flows
            .iter()
            .map(|f| (f.name, Arc::new(Notify::new())))
            .collect(),
    );
    // One processor per inbox lane: a webhook storm and Norce's orders are drained side by side.
    let mut tasks: Vec<JoinHandle<()>> = (0..super::INBOX_LANES.len())
        .map(|lane| {
            tokio::spawn(inbox_processor(
                shared.clone(),
                lane,
                triggers.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for (entry, (_, trigger)) in shared.flows.iter().zip(triggers.iter()) {
        // A thread with its own single-threaded runtime per flow: a pass need not be `Send`
        // (the flows borrow their clients across `buffer_unordered`), and one flow's pass
        // never delays the receivers.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let (shared, entry, trigger, shutdown, cancel) = (
            shared.clone(),
            *entry,
            trigger.clone(),
            shutdown.clone(),
            cancel.clone(),
        );
        let spawned = std::thread::Builder::new().name(format!("relay-flow-{}", entry.name)).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => {
                    runtime.block_on(scheduler(shared, entry, trigger, shutdown, cancel));
                    // Not the default drop, which waits for blocking work without a bound.
                    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_WAIT);
                }
                Err(e) => tracing::error!(flow = entry.name, error = %e, "cannot start the flow's runtime: not scheduled"),
            }
            let _ = done_tx.send(());
        });
        match spawned {
            Ok(_) => tasks.push(tokio::spawn(async move {
                let _ = done_rx.await;
            })),
            Err(e) => {
                tracing::error!(flow = entry.name, error = %e, "cannot start the flow's thread: not scheduled")
            }
        }
    }
    tasks
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The next tick of an optional interval; never, without one.
async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Drains the inbox whenever a receiver commits an item, on every sweep, and once at start (a
/// backlog left by a previous process).
async fn inbox_processor(
    shared: Arc<Shared>,
    lane: usize,
    triggers: Arc<Vec<(&'static str, Arc<Notify>)>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sweep = every(shared.config.inbox_sweep_secs).map(|period| {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    loop {
        drain(&shared, lane, &triggers, &shutdown).await;
        tokio::select! {
            _ = stopped(&mut shutdown) => {
                tracing::info!("inbox processor stopped: the items left stay in the inbox for the next start");
                return;
            }
            _ = shared.inbox_wake[lane].notified() => {}
            _ = tick(sweep.as_mut()) => {}
        }
    }
}

/// Whether the stop was given (or the server dropped).
fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Inbox items read at a time: bodies may be up to `serve.body_limit_bytes` each, so a small
/// batch keeps memory bounded (25 MiB at the 1 MiB default).
const BATCH: usize = 25;

/// Processes every pending item once, until the stop; items whose ingest fails stay for the
/// next sweep.
async fn drain(
    shared: &Shared,
    lane: usize,
    triggers: &[(&'static str, Arc<Notify>)],
    shutdown: &watch::Receiver<bool>,
) {
    let mut skip: HashSet<i64> = HashSet::new();
    loop {
        let items = match shared
            .store()
            .inbox_pending_in(super::INBOX_LANES[lane], BATCH + skip.len())
        {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the inbox; retrying on the next wake-up");
                return;
            }
        };
        let full = items.len() >= BATCH + skip.len();
        let fresh: Vec<InboxItem> = items
            .into_iter()
            .filter(|i| !skip.contains(&i.id))
            .collect();
        if fresh.is_empty() {
            return;
        }
        for item in fresh {
            // An item not taken stays in the inbox, committed: the next start processes it.
            if stopping(shutdown) {
                return;
            }
            if !process(shared, triggers, &item).await {
                skip.insert(item.id);
            }
        }
        if !full {
            return;
        }
    }
}

/// Hands one item to every flow that takes its source; marks it done when all of them ingested
/// it, and triggers a pass of those it gave work. Returns whether the item is finished.
async fn process(
    shared: &Shared,
    triggers: &[(&'static str, Arc<Notify>)],
    item: &InboxItem,
) -> bool {
    let span =
        tracing::info_span!("inbox_item", id = item.id, source = %item.source, key = %item.key);
    async {
        let takers: Vec<&crate::serve::FlowEntry> = shared.flows.iter().filter(|f| (f.accepts)(&item.source)).collect();
        if takers.is_empty() {
            if shared.flows.is_empty() {
                // No flows (a receivers-only server): keep it for a server that has them.
                tracing::debug!("no flows in this server; kept in the inbox");
                return false;
            }
            tracing::info!("no flow takes this item; marked done");
            return mark_done(shared, item, "ignored");
        }
        // Superseded by a newer push since this batch was read: the newer one is ingested instead
        // (a flow keeps the first body of an entity it has queued).
        if matches!(shared.store().inbox_queued(item.id), Ok(false)) {
            tracing::debug!("superseded by a newer version; skipped");
            return true;
        }
        let mut ok = true;
        let mut with_work = Vec::new();
        for flow in &takers {
            match (flow.ingest)(&shared.ctx, item).instrument(tracing::info_span!("ingest", flow = flow.name)).await {
                Ok(Ingested::Work) => with_work.push(flow.name),
                Ok(Ingested::Nothing) => {}
                Err(e) => {
                    tracing::warn!(flow = flow.name, error = %e, "ingest failed; the item stays in the inbox");
                    ok = false;
                }
            }
        }
        if !ok {
            shared.metrics.record_ingest(&item.source, "failed");
            return false;
        }
        if !mark_done(shared, item, "done") {
            return false;
        }
        // Only flows the item gave work run soon: a stock webhook does not cost an orders pass.
        for name in with_work {
            if let Some((_, trigger)) = triggers.iter().find(|(flow, _)| *flow == name) {
                trigger.notify_one();
            }
        }
        true
    }
    .instrument(span)
    .await
}

/// Marks the item processed and counts it with `result`; returns whether that worked.
fn mark_done(shared: &Shared, item: &InboxItem, result: &'static str) -> bool {
    match shared.store().inbox_done(item.id) {
        Ok(()) => {
            shared.metrics.record_ingest(&item.source, result);
            shared.processed.send_modify(|n| *n += 1);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot mark the inbox item done");
            false
        }
    }
}

/// Runs one flow: at start and every `entry.every`, and `run_after_ingest_ms` after an ingest
/// triggered it (triggers during the wait or a run coalesce into one more run). Starts no pass
/// after the stop; a pass still running at the cancel is dropped.
async fn scheduler(
    shared: Arc<Shared>,
    entry: FlowEntry,
    trigger: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    mut cancel: watch::Receiver<bool>,
) {
    let mut interval = entry.every.map(|period| {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let debounce = Duration::from_millis(shared.config.run_after_ingest_ms);
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            _ = trigger.notified() => {
                if !debounce.is_zero() {
                    tokio::select! {
                        _ = stopped(&mut shutdown) => break,
                        _ = tokio::time::sleep(debounce) => {}
                    }
                }
            }
            _ = tick(interval.as_mut()) => {}
        }
        // A tick and the stop may be ready together: the stop wins.
        if stopping(&shutdown) {
            break;
        }
        run_once(&shared, &entry, &mut shutdown, &mut cancel).await;
    }
    tracing::info!(flow = entry.name, "scheduler stopped: no new passes");
}

/// One pass, dropped at `cancel` (the end of the shutdown grace).
async fn run_once(
    shared: &Shared,
    entry: &FlowEntry,
    shutdown: &mut watch::Receiver<bool>,
    cancel: &mut watch::Receiver<bool>,
) {
    let span = tracing::info_span!("flow_run", flow = entry.name);
    async {
        let started = Instant::now();
        let pass = (entry.run)(&shared.ctx);
        tokio::pin!(pass);
        let mut stop_seen = false;
        let result = loop {
            tokio::select! {
                biased;
                _ = cancel.wait_for(|cancel| *cancel) => {
                    tracing::warn!(
                        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "flow pass cancelled at the end of the shutdown grace (serve.shutdown_grace_secs); its items resume at the next start"
                    );
                    shared.metrics.record_run(
                        entry.name,
                        Err("cancelled at shutdown; resumed at the next start".to_owned()),
                    );
                    shared.runs.send_modify(|n| *n += 1);
                    return;
                }
                result = &mut pass => break result,
                _ = shutdown.wait_for(|stop| *stop), if !stop_seen => {
                    stop_seen = true;
                    tracing::info!("shutting down: letting the running flow pass finish within the grace");
                }
            }
        };
        match result {
            Ok(mut report) => {
                report.duration_ms =
                    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                tracing::info!(
                    seen = report.seen,
                    booked = report.booked,
                    failed = report.failed,
                    "flow pass finished"
                );
                shared.metrics.record_run(entry.name, Ok(&report));
            }
            Err(e) => {
                tracing::warn!(error = %e, "flow pass stopped");
                shared.metrics.record_run(entry.name, Err(e.to_string()));
            }
        }
        shared.runs.send_modify(|n| *n += 1);
    }
    .instrument(span)
    .await
}
