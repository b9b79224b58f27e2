//! The Brightpearl budget: every flow draws from the account's one limiter (200 requests a
//! minute, shared by every app), with a priority, and what each flow drew is kept per minute
//! in the state store, so `relay status` (another process) shows the split.
//!
//! | flow | priority | why |
//! | --- | --- | --- |
//! | `orders`, `fulfilment`, `webhooks`, anything else | live | someone waits for them |
//! | `stock` (stock and prices) | background | a full reconciliation yields to live work and resumes |

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brightpearl_client::{Budget, Priority, RateLimiter};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::state::{StateError, Store};

/// The state-store cursor that holds the per-minute record (JSON; not a flow's cursor).
pub const BUDGET_CURSOR: &str = "brightpearl-budget";
/// Minutes of the record kept.
pub const KEPT_MINUTES: i64 = 60;
/// Minutes `relay status` sums.
pub const STATUS_MINUTES: i64 = 15;
/// The label of requests drawn without a flow (e.g. `relay verify`).
pub const OTHER: &str = "other";

/// The priority of `flow`'s Brightpearl requests: `stock` is background, the rest live.
pub fn priority_of(flow: &str) -> Priority {
    match flow {
        "stock" | "prices" => Priority::Background,
        _ => Priority::Live,
    }
}

/// The class `flow`'s Brightpearl client draws for: its priority, counted under its name.
pub fn budget_of(flow: &str) -> Budget {
    Budget::new(priority_of(flow), flow)
}

/// The record as stored: flow → its priority and minute (Unix minute) → what it drew.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Ledger {
    flows: BTreeMap<String, FlowLedger>,
}

impl Ledger {
    /// The record in `store`; none, or one that is not JSON (it is only statistics), is empty.
    fn read(store: &dyn Store) -> Result<Self, StateError> {
        Ok(store
            .cursor(BUDGET_CURSOR)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FlowLedger {
    priority: String,
    minutes: BTreeMap<i64, Minute>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
struct Minute {
    requests: u64,
    wait_ms: u64,
}

fn label_of(label: &str) -> &str {
    if label.is_empty() { OTHER } else { label }
}

/// Permits and time waited per class (label, priority), as the limiter counts them.
type Drawn = HashMap<(Arc<str>, Priority), (u64, Duration)>;

/// Writes what a limiter's classes drew since the last flush into the store's per-minute
/// record. One per process (the limiter's counts are the process's own).
#[derive(Debug, Default)]
pub struct Recorder {
    /// What each class had drawn at the last flush that reached the store.
    flushed: Mutex<Drawn>,
}

impl Recorder {
    /// Adds the permits and waiting of `limiter`'s classes since the last flush to the minute
    /// of `now`, dropping minutes older than [`KEPT_MINUTES`]. A record that is not JSON (it is
    /// only statistics) starts over.
    pub fn flush(
        &self,
        limiter: &RateLimiter,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let mut flushed = self.flushed.lock().unwrap_or_else(|p| p.into_inner());
        let usage = limiter.usage();
        let mut deltas = Vec::new();
        for u in &usage {
            let before = flushed
                .get(&(Arc::clone(&u.label), u.priority))
                .copied()
                .unwrap_or_default();
            let requests = u.permits.saturating_sub(before.0);
            if requests > 0 {
                let wait = u.waited.saturating_sub(before.1);
                deltas.push((label_of(&u.label), u.priority, requests, wait));
            }
        }
        if deltas.is_empty() {
            return Ok(());
        }
        let mut ledger = Ledger::read(store)?;
        let minute = now.timestamp().div_euclid(60);
        for (flow, priority, requests, wait) in deltas {
            let entry = ledger.flows.entry(flow.to_owned()).or_default();
            entry.priority = priority.as_str().to_owned();
            let slot = entry.minutes.entry(minute).or_default();
            slot.requests += requests;
            slot.wait_ms += u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        }
        for entry in ledger.flows.values_mut() {
            entry.minutes.retain(|m, _| *m > minute - KEPT_MINUTES);
        }
        ledger.flows.retain(|_, entry| !entry.minutes.is_empty());
        // Maps of numbers and strings always serialize.
        let Ok(text) = serde_json::to_string(&ledger) else {
            return Ok(());
        };
        store.set_cursor(BUDGET_CURSOR, &text)?;
        for u in usage {
            flushed.insert((u.label, u.priority), (u.permits, u.waited));
        }
        Ok(())
    }
}

/// What one flow drew from the Brightpearl budget in the last minutes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowBudget {
    /// The flow (`other` for requests without one).
    pub flow: String,
    /// `live` or `background`.
    pub priority: String,
    /// Requests sent.
    pub requests: u64,
    /// Requests a minute over the period.
    pub requests_per_minute: f64,
    /// Time its requests waited for the limiter, in seconds.
    pub waited_secs: f64,
}

/// Each flow's requests and limiter wait in the `minutes` up to `now`, from the store's record.
pub fn recent(
    store: &dyn Store,
    now: DateTime<Utc>,
    minutes: i64,
) -> Result<Vec<FlowBudget>, StateError> {
    let ledger = Ledger::read(store)?;
    let last = now.timestamp().div_euclid(60);
    let rows = ledger
        .flows
        .into_iter()
        .filter_map(|(flow, entry)| {
            let (requests, wait_ms) = entry
                .minutes
                .range(last - minutes + 1..=last)
                .fold((0, 0), |(r, w), (_, m)| (r + m.requests, w + m.wait_ms));
            (requests > 0).then(|| FlowBudget {
                flow,
                priority: entry.priority,
                requests,
                requests_per_minute: requests as f64 / minutes.max(1) as f64,
                waited_secs: wait_ms as f64 / 1000.0,
            })
        })
        .collect();
    Ok(rows)
}
