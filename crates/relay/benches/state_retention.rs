//! `cargo bench -p relay --bench state_retention [-- ITEMS BODY_BYTES] [--no-prune]`
//!
//! The state under a steady stream of pushes, with processing and pruning interleaved as
//! `relay serve` does them, on a fake clock (no waiting): ITEMS (default 20,000) order pushes of
//! BODY_BYTES (default 10,000) one every 30 simulated seconds (2,880 a day); a Norce retry of a
//! processed order for every 5th, a changed re-push while queued for every 10th, and a dead
//! letter for every 500th. Each push is processed into a finished `orders` entity whose payload
//! is the body. Pruning runs every 200 items (100 simulated minutes) under 1 day / 2,000
//! processed inbox rows / 5,000 payloads per flow. Prints the file size and row counts every
//! 1,000 items: they level off once the bounds are reached. `--no-prune` shows the same stream
//! without pruning, for comparison.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use relay::serve::retention::BATCH;
use relay::state::{EntityUpdate, InboxPut, RetentionPolicy, SqliteStore, Status, Store};

const ARRIVAL_SECS: i64 = 30;
const PRUNE_EVERY_ITEMS: usize = 200;
const PROCESS_EVERY_ITEMS: usize = 10;
const REPORT_EVERY_ITEMS: usize = 1000;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A body of about `bytes` bytes that differs per key and version.
fn body(key: usize, version: u32, bytes: usize) -> String {
    let head = format!("{{\"ClientOrderRef\":\"{key}\",\"Version\":{version},\"Comment\":\"");
    let fill = bytes.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(fill))
}

/// Ingests every queued item into a finished `orders` entity (a dead letter for every 500th
/// key), as the inbox processor and a flow pass would.
fn process(store: &dyn Store) -> Result<(), String> {
    let err = |e: relay::state::StateError| e.to_string();
    for item in store.inbox_pending(1000).map_err(err)? {
        store
            .upsert_pending("orders", &item.key, Some(&item.body))
            .map_err(err)?;
        let fails = item.key.parse::<usize>().is_ok_and(|n| n % 500 == 499);
        let current = store.get("orders", &item.key).map_err(err)?;
        if fails {
            if current.is_some_and(|r| r.status == Status::Pending) {
                store
                    .dead_letter("orders", &item.key, "unknown SKU (bench)")
                    .map_err(err)?;
            }
        } else {
            store
                .update(
                    "orders",
                    &item.key,
                    &EntityUpdate {
                        status: Some(Status::Done),
                        payload: Some(item.body.clone()),
                        clear_error: true,
                        ..EntityUpdate::default()
                    },
                )
                .map_err(err)?;
        }
        store.inbox_done(item.id).map_err(err)?;
    }
    Ok(())
}

fn run(items: usize, body_bytes: usize, prune: bool) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("relay-state-retention-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .map_err(|e| e.to_string())?
        .to_utc();
    let clock = Arc::new(AtomicI64::new(t0.timestamp_millis()));
    let read = clock.clone();
    let store = SqliteStore::open_in(&dir)
        .map_err(|e| e.to_string())?
        .with_clock(move || {
            DateTime::from_timestamp_millis(read.load(Ordering::SeqCst)).unwrap_or_default()
        });
    let policy = RetentionPolicy {
        max_age: TimeDelta::days(1),
        max_processed_inbox_rows: 2_000,
        max_finished_payloads_per_flow: 5_000,
    };
    println!(
        "{items} pushes of {body_bytes} B every {ARRIVAL_SECS} s (simulated), {}",
        if prune {
            format!(
                "pruned every {PRUNE_EVERY_ITEMS} items in batches of {BATCH}: 1 day, {} processed inbox rows, {} payloads per flow",
                policy.max_processed_inbox_rows, policy.max_finished_payloads_per_flow
            )
        } else {
            "never pruned".to_owned()
        }
    );
    println!(
        "{:>6} {:>5} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>5} {:>8}",
        "items",
        "day",
        "file MiB",
        "WAL MiB",
        "inbox",
        "pending",
        "entities",
        "payloads",
        "dead",
        "prune ms"
    );
    let started = Instant::now();
    let (mut versions, mut peak_file, mut last_prune, mut max_prune) =
        (0u64, 0u64, Duration::ZERO, Duration::ZERO);
    for n in 0..items {
        let now: DateTime<Utc> = t0 + TimeDelta::seconds(ARRIVAL_SECS * n as i64);
        clock.store(now.timestamp_millis(), Ordering::SeqCst);
        let put = |key: usize, version: u32| {
            store
                .inbox_put(
                    "norce-order",
                    &key.to_string(),
                    &body(key, version, body_bytes),
                )
                .map_err(|e| e.to_string())
        };
        put(n, 1)?;
        if n % 10 == 9 {
            // Changed before it was processed: a new version supersedes the queued one.
            if matches!(put(n, 2)?, InboxPut::Updated { .. }) {
                versions += 1;
            }
        }
        if n % 5 == 4 && n >= 100 {
            // Norce retrying an order processed a while ago: a new row, processed again.
            put(n - 100, 1)?;
        }
        if n % PROCESS_EVERY_ITEMS == PROCESS_EVERY_ITEMS - 1 {
            process(&store)?;
        }
        if prune && n % PRUNE_EVERY_ITEMS == PRUNE_EVERY_ITEMS - 1 {
            let begun = Instant::now();
            store
                .prune(&policy, now, BATCH)
                .map_err(|e| e.to_string())?;
            last_prune = begun.elapsed();
            max_prune = max_prune.max(last_prune);
        }
        if (n + 1) % REPORT_EVERY_ITEMS == 0 || n + 1 == items {
            let size = store.size().map_err(|e| e.to_string())?;
            peak_file = peak_file.max(size.file_bytes + size.wal_bytes);
            println!(
                "{:>6} {:>5.1} {:>9.1} {:>8.1} {:>8} {:>7} {:>8} {:>8} {:>5} {:>8.1}",
                n + 1,
                (now - t0).num_seconds() as f64 / 86_400.0,
                mib(size.file_bytes),
                mib(size.wal_bytes),
                size.inbox_rows,
                size.inbox_pending,
                size.entities,
                size.entity_payloads,
                size.dead_letters,
                last_prune.as_secs_f64() * 1000.0
            );
        }
    }
    println!(
        "{versions} superseded versions; peak file + WAL {:.1} MiB; slowest prune {:.1} ms; {:.1} s in all",
        mib(peak_file),
        max_prune.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() {
    let prune = !std::env::args().any(|a| a == "--no-prune");
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let items = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let body_bytes = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    if let Err(e) = run(items, body_bytes, prune) {
        eprintln!("state_retention: {e}");
        std::process::exit(1);
    }
}
