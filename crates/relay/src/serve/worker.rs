//! The background work of `relay serve`: the inbox processor (hands received items to the flows)
//! and the scheduler (one task per flow on the server's runtime: periodic runs and runs soon
//! after an ingest; one run per flow at a time).
//!
//! At the stop, the processor takes no further inbox item and the schedulers start no new pass;
//! a pass in progress goes on until the cancel (the end of the shutdown grace), which drops it at
//! its next await point. That is safe: every step records its result in the state right after
//! the platform call that made it, and a replayed step checks the target first, so the pass's
//! items resume at the next start exactly as after a crash.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::shared::{INBOX_LANES, Shared, every};
use crate::flows::context::PassOrigin;
use crate::flows::{Flow, Ingested};
use crate::state::InboxItem;

/// Spawns the inbox processors and one scheduler task per flow, all on the server's runtime
/// (the passes are `Send` tasks: no thread or runtime of their own); they stop taking work at
/// `shutdown`, and a running pass is dropped at `cancel`.
pub(super) fn spawn(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    cancel: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let triggers: Arc<Vec<(&'static str, Arc<Notify>)>> = Arc::new(shared.triggers.clone());
    // One processor per inbox lane: a webhook storm and Norce's orders are drained side by side.
    let mut tasks: Vec<JoinHandle<()>> = (0..INBOX_LANES.len())
        .map(|lane| {
            tokio::spawn(inbox_processor(
                shared.clone(),
                lane,
                triggers.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for (flow, (_, trigger)) in shared.flows.iter().zip(triggers.iter()) {
        // A task per flow: a pass awaits the platforms, so it never holds a thread the
        // receivers need; one pass per flow at a time.
        tasks.push(tokio::spawn(scheduler(
            shared.clone(),
            flow.clone(),
            trigger.clone(),
            shutdown.clone(),
            cancel.clone(),
        )));
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
        // An ingest may have filed a dead letter.
        if let Some(alerts) = &shared.alerts {
            alerts.after_ingest();
        }
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
            .inbox_pending_in(INBOX_LANES[lane], BATCH + skip.len())
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
        let takers: Vec<&Arc<dyn Flow>> = shared.flows.iter().filter(|f| f.accepts(&item.source)).collect();
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
            match flow.ingest(&shared.ctx, item).instrument(tracing::info_span!("ingest", flow = flow.name())).await {
                Ok(Ingested::Work) => with_work.push(flow.name()),
                Ok(Ingested::Nothing) => {}
                Err(e) => {
                    tracing::warn!(flow = flow.name(), error = %e, "ingest failed; the item stays in the inbox");
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

/// Runs one flow: at start and every [`Flow::every`], and `run_after_ingest_ms` after an
/// ingest triggered it (triggers during the wait or a run coalesce into one more run). Starts
/// no pass after the stop; a pass still running at the cancel is dropped.
async fn scheduler(
    shared: Arc<Shared>,
    flow: Arc<dyn Flow>,
    trigger: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    mut cancel: watch::Receiver<bool>,
) {
    let mut interval = flow.every(&shared.config).map(|period| {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let debounce = flow.run_after_ingest(&shared.config);
    loop {
        let origin = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            _ = trigger.notified() => {
                if !debounce.is_zero() {
                    tokio::select! {
                        _ = stopped(&mut shutdown) => break,
                        _ = tokio::time::sleep(debounce) => {}
                    }
                }
                PassOrigin::Ingest
            }
            _ = tick(interval.as_mut()) => PassOrigin::Schedule,
        };
        // A tick and the stop may be ready together: the stop wins.
        if stopping(&shutdown) {
            break;
        }
        run_once(&shared, flow.as_ref(), origin, &mut shutdown, &mut cancel).await;
    }
    tracing::info!(flow = flow.name(), "scheduler stopped: no new passes");
}

/// One pass, dropped at `cancel` (the end of the shutdown grace).
async fn run_once(
    shared: &Shared,
    flow: &dyn Flow,
    origin: PassOrigin,
    shutdown: &mut watch::Receiver<bool>,
    cancel: &mut watch::Receiver<bool>,
) {
    let span = tracing::info_span!("flow_run", flow = flow.name());
    async {
        let started = Instant::now();
        // The flow's own Brightpearl client: its priority, its requests counted under its name.
        let mut ctx = shared.ctx.for_flow(flow.name());
        ctx.pass_origin = origin;
        let pass = crate::flows::contract::run_pass(flow, &ctx);
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
                        flow.name(),
                        Err("cancelled at shutdown; resumed at the next start".to_owned()),
                    );
                    shared.metrics.flush_budget(shared.store());
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
        // Alerts: a stopped pass counts towards a failing streak, new dead letters are told.
        if let Some(alerts) = &shared.alerts {
            alerts.after_pass(&shared.ctx, flow, result.as_ref());
        }
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
                shared.metrics.record_run(flow.name(), Ok(&report));
            }
            Err(e) => {
                tracing::warn!(error = %e, "flow pass stopped");
                shared.metrics.record_run(flow.name(), Err(e.to_string()));
            }
        }
        shared.metrics.flush_budget(shared.store());
        shared.runs.send_modify(|n| *n += 1);
    }
    .instrument(span)
    .await
}
