//! Keeps the state bounded while `relay serve` runs: a background task that prunes finished
//! state ([`Store::prune`]) under `[state]`'s retention settings, at start and then every
//! `prune_every_secs`.
//!
//! Each prune works in batches of [`BATCH`] rows, one short write transaction each, on a
//! blocking thread: the receivers and the flows get the store between two batches, so pruning a
//! large backlog never holds up an inbox write for more than one batch.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::state::{PruneReport, RetentionPolicy, Store};

/// Rows deleted or cleared per write transaction.
pub const BATCH: usize = 500;

/// Prunes `store` under `policy` now and then every `interval`, until `shutdown` turns true
/// (or its sender is dropped). Failures are logged and tried again at the next interval.
///
/// `relay serve` runs it as one of its tasks:
/// `tokio::spawn(retention::run(store, config.state.retention_policy(), config.state.prune_interval(), shutdown_rx))`.
pub async fn run(
    store: Arc<dyn Store>,
    policy: RetentionPolicy,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    run_with_clock(store, policy, interval, shutdown, Utc::now).await;
}

/// [`run`], with ages measured from `clock` instead of the wall clock (tests move it without
/// waiting).
pub async fn run_with_clock(
    store: Arc<dyn Store>,
    policy: RetentionPolicy,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
    clock: impl Fn() -> DateTime<Utc> + Send + 'static,
) {
    // A zero period would make `interval` panic; configuration refuses 0 already.
    let mut ticker = tokio::time::interval(interval.max(Duration::from_secs(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            // Stop waiting at shutdown: the prune in progress ends after its current batch's
            // transaction at the latest, and every batch is complete on its own.
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = prune_once(&store, policy, clock()) => {}
        }
    }
}

/// One prune as of `now`, on a blocking thread (SQLite work blocks). Returns its report, or
/// `None` when it failed (logged with the error; the next run tries again).
pub async fn prune_once(
    store: &Arc<dyn Store>,
    policy: RetentionPolicy,
    now: DateTime<Utc>,
) -> Option<PruneReport> {
    let store = store.clone();
    let span = tracing::info_span!("retention");
    let task =
        tokio::task::spawn_blocking(move || span.in_scope(|| store.prune(&policy, now, BATCH)));
    match task.await {
        Ok(Ok(report)) => Some(report),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "state prune failed; trying again at the next interval");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "state prune stopped abnormally; trying again at the next interval");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use chrono::TimeDelta;

    use super::*;
    use crate::state::SqliteStore;

    /// A store on a fake clock (milliseconds since the epoch), and a way to move it.
    fn store_at(clock: &Arc<AtomicI64>) -> Arc<dyn Store> {
        let clock = clock.clone();
        Arc::new(SqliteStore::in_memory().unwrap().with_clock(move || {
            DateTime::from_timestamp_millis(clock.load(Ordering::SeqCst)).unwrap()
        }))
    }

    fn processed(store: &dyn Store, key: &str) {
        let id = store.inbox_put("norce-order", key, "{}").unwrap().id();
        store.inbox_done(id).unwrap();
    }

    fn inbox_rows(store: &dyn Store, keys: &[&str]) -> usize {
        keys.iter()
            .map(|k| store.inbox_history("norce-order", k).unwrap().len())
            .sum()
    }

    #[tokio::test(start_paused = true)]
    async fn prunes_at_start_and_every_interval_until_shutdown() {
        let t0 = DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
            .unwrap()
            .to_utc();
        let clock = Arc::new(AtomicI64::new(t0.timestamp_millis()));
        let store = store_at(&clock);
        processed(store.as_ref(), "A");
        processed(store.as_ref(), "B");
        let policy = RetentionPolicy {
            max_age: TimeDelta::days(1),
            ..RetentionPolicy::default()
        };
        let (stop, shutdown) = watch::channel(false);
        // The prune's "now" is two days after the items were processed.
        let task = tokio::spawn(run_with_clock(
            store.clone(),
            policy,
            Duration::from_secs(3600),
            shutdown,
            move || t0 + TimeDelta::days(2),
        ));
        while inbox_rows(store.as_ref(), &["A", "B"]) > 0 {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        // An item processed later (on the store's clock, still at t0) goes at the next tick.
        processed(store.as_ref(), "C");
        let before = tokio::time::Instant::now();
        while inbox_rows(store.as_ref(), &["C"]) > 0 {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        assert!(before.elapsed() <= Duration::from_secs(3600 + 60));
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("the loop stops at shutdown")
            .unwrap();
    }
}
