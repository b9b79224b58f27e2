//! Counters of the running server and their Prometheus text exposition (format 0.0.4), through
//! `prometheus-client`. Receiver, inbox and flow counters live in a registry; what is only known
//! at scrape time (the last runs, the webhook registration, store-derived gauges, the listener's
//! connection counts) goes in a second registry built for each scrape.
//!
//! Counters are registered without their `_total` suffix: the encoder adds it, so the exposed
//! names (`relay_receiver_requests_total`, ...) are the ones operators have always scraped.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use brightpearl_client::{Priority, RateLimiter};

use super::listener::ConnectionStats;
use super::subscriptions::{SubscriptionOutcome, WebhookRegistration};
use crate::alerts::AlertStats;
use crate::budget::Recorder;
use crate::flows::FlowReport;
use crate::state::{Status, Store};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The last run of one flow, as `/healthz` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastRun {
    /// When it finished (RFC 3339).
    pub finished_at: String,
    /// Unix time of `finished_at`, seconds.
    #[serde(skip)]
    pub finished_unix: f64,
    /// Whether the pass completed (item failures are in the report).
    pub ok: bool,
    /// Why the pass stopped, when it did.
    pub error: Option<String>,
    /// What it did.
    pub report: Option<FlowReport>,
}

/// A whole-number gauge.
type Count = Gauge<u64, AtomicU64>;
/// A gauge in seconds (Unix time).
type Seconds = Gauge<f64, AtomicU64>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    receiver: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabels {
    source: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    flow: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowLabels {
    flow: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabels {
    event: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EntityLabels {
    flow: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    flow: String,
    priority: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityLabels {
    priority: &'static str,
}

/// What `/healthz` shows besides the counters.
#[derive(Debug, Default)]
struct Inner {
    /// flow → the last run.
    last_run: BTreeMap<String, LastRun>,
    /// Where the Brightpearl webhook registration stands (set at start).
    webhooks: Option<WebhookRegistration>,
    /// The account's Brightpearl limiter, whose classes are the flows (set at start).
    brightpearl: Option<RateLimiter>,
}

/// The server's counters.
#[derive(Debug)]
pub struct Metrics {
    /// The counters below, registered once.
    registry: Registry,
    /// Receiver answers by receiver and status.
    requests: Family<RequestLabels, Counter>,
    /// Inbox items handed to the flows by source and result.
    ingests: Family<IngestLabels, Counter>,
    /// Flow passes by flow and result.
    runs: Family<RunLabels, Counter>,
    /// Items booked per flow.
    booked: Family<FlowLabels, Counter>,
    /// Items written back per flow.
    written_back: Family<FlowLabels, Counter>,
    /// Item attempts failed per flow.
    failed: Family<FlowLabels, Counter>,
    /// Writes the Brightpearl budget's split to the state for `relay status`.
    budget: Recorder,
    inner: Mutex<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::default();
        registry.register(
            "relay_receiver_requests",
            "Requests answered by each receiver, by HTTP status",
            requests.clone(),
        );
        let ingests = Family::default();
        registry.register(
            "relay_inbox_ingested",
            "Inbox items handed to the flows, by source and result",
            ingests.clone(),
        );
        let runs = Family::default();
        registry.register(
            "relay_flow_runs",
            "Flow passes, by result (ok, or error when the pass stopped)",
            runs.clone(),
        );
        let per_flow = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<FlowLabels, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let booked = per_flow(
            &mut registry,
            "relay_flow_items_booked",
            "Items created in the target platform",
        );
        let written_back = per_flow(
            &mut registry,
            "relay_flow_items_written_back",
            "Items whose result was written back to the source",
        );
        let failed = per_flow(
            &mut registry,
            "relay_flow_items_failed",
            "Item attempts that failed",
        );
        Self {
            registry,
            requests,
            ingests,
            runs,
            booked,
            written_back,
            failed,
            budget: Recorder::default(),
            inner: Mutex::default(),
        }
    }
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a receiver's answer.
    pub fn record_request(&self, receiver: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                receiver: receiver.to_owned(),
                status,
            })
            .inc();
    }

    /// Requests a receiver answered with `status` so far.
    pub fn requests(&self, receiver: &str, status: u16) -> u64 {
        self.requests
            .get(&RequestLabels {
                receiver: receiver.to_owned(),
                status,
            })
            .map_or(0, |counter| counter.get())
    }

    /// Counts an inbox item handed to the flows (`done`, `failed`, `ignored`).
    pub fn record_ingest(&self, source: &str, result: &'static str) {
        self.ingests
            .get_or_create(&IngestLabels {
                source: source.to_owned(),
                result,
            })
            .inc();
    }

    /// Records a finished run of `flow`.
    pub fn record_run(&self, flow: &str, result: Result<&FlowReport, String>) {
        let now = chrono::Utc::now();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.runs
            .get_or_create(&RunLabels {
                flow: flow.to_owned(),
                result: outcome,
            })
            .inc();
        let (report, error) = match result {
            Ok(report) => {
                let labels = FlowLabels {
                    flow: flow.to_owned(),
                };
                self.booked.get_or_create(&labels).inc_by(report.booked);
                self.written_back
                    .get_or_create(&labels)
                    .inc_by(report.written_back);
                self.failed.get_or_create(&labels).inc_by(report.failed);
                (Some(report.clone()), None)
            }
            Err(error) => (None, Some(error)),
        };
        let last = LastRun {
            finished_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            finished_unix: now.timestamp_millis() as f64 / 1000.0,
            ok: error.is_none(),
            error,
            report,
        };
        self.lock().last_run.insert(flow.to_owned(), last);
    }

    /// Records where the Brightpearl webhook registration stands.
    pub fn record_webhook_registration(&self, state: &WebhookRegistration) {
        self.lock().webhooks = Some(state.clone());
    }

    /// Shows what each flow draws from `limiter` (the account's Brightpearl limiter).
    pub fn watch_brightpearl(&self, limiter: RateLimiter) {
        self.lock().brightpearl = Some(limiter);
    }

    /// Writes what each flow drew from the Brightpearl limiter since the last call to `store`'s
    /// per-minute record ([`crate::budget`]); a store error is logged (statistics only).
    pub fn flush_budget(&self, store: &dyn Store) {
        let Some(limiter) = self.lock().brightpearl.clone() else {
            return;
        };
        if let Err(e) = self.budget.flush(&limiter, store, chrono::Utc::now()) {
            tracing::warn!(error = %e, "cannot record the Brightpearl budget in the state");
        }
    }

    /// Where the Brightpearl webhook registration stands (`None` before serve started it).
    pub fn webhook_registration(&self) -> Option<WebhookRegistration> {
        self.lock().webhooks.clone()
    }

    /// The last run of every flow that ran.
    pub fn last_runs(&self) -> BTreeMap<String, LastRun> {
        self.lock().last_run.clone()
    }

    /// The exposition text: these counters, the last runs and the webhook registration, gauges
    /// read from `store` (a store error leaves those out and sets `relay_store_up` to 0) with a
    /// zero for every status of each of `flows`, the listener's `connections`, and what the
    /// failure alerts' delivery has done (`alerts`, when `[alerts]` is configured).
    pub fn render(
        &self,
        store: &dyn Store,
        flows: &[&str],
        connections: &ConnectionStats,
        alerts: Option<AlertStats>,
    ) -> String {
        let mut scrape = Registry::default();
        self.register_runs(&mut scrape);
        self.register_budget(&mut scrape);
        register_store(&mut scrape, store, flows);
        register_connections(&mut scrape, connections);
        if let Some(alerts) = alerts {
            register_alerts(&mut scrape, alerts);
        }
        let mut out = String::new();
        // Writing to a String cannot fail, and every metric here encodes.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        let _ = prometheus_text::encode(&mut out, &scrape);
        out
    }

    /// What each flow drew from the Brightpearl limiter: requests and seconds waited, by flow
    /// and priority, and the callers waiting now.
    fn register_budget(&self, scrape: &mut Registry) {
        let Some(limiter) = self.lock().brightpearl.clone() else {
            return;
        };
        let requests = Family::<BudgetLabels, Counter>::default();
        let waited = Family::<BudgetLabels, Counter<f64, AtomicU64>>::default();
        for usage in limiter.usage() {
            let flow = match &*usage.label {
                "" => crate::budget::OTHER.to_owned(),
                label => label.to_owned(),
            };
            let labels = BudgetLabels {
                flow,
                priority: usage.priority.as_str(),
            };
            requests.get_or_create(&labels).inc_by(usage.permits);
            waited
                .get_or_create(&labels)
                .inc_by(usage.waited.as_secs_f64());
        }
        scrape.register(
            "relay_brightpearl_requests",
            "Brightpearl requests sent (each retry counted), by flow and priority, from the account's one limiter",
            requests,
        );
        scrape.register(
            "relay_brightpearl_limiter_wait_seconds",
            "Time Brightpearl requests waited for the account's limiter, by flow and priority",
            waited,
        );
        let queued = Family::<PriorityLabels, Count>::default();
        let (live, background) = limiter.queued();
        for (priority, n) in [(Priority::Live, live), (Priority::Background, background)] {
            let labels = PriorityLabels {
                priority: priority.as_str(),
            };
            queued
                .get_or_create(&labels)
                .set(u64::try_from(n).unwrap_or(u64::MAX));
        }
        scrape.register(
            "relay_brightpearl_limiter_queued",
            "Brightpearl requests waiting for the account's limiter now, by priority",
            queued,
        );
    }

    /// The last runs and the webhook registration, as gauges.
    fn register_runs(&self, scrape: &mut Registry) {
        let inner = self.lock();
        let finished = Family::<FlowLabels, Seconds>::default();
        let ok = Family::<FlowLabels, Count>::default();
        for (flow, last) in &inner.last_run {
            let labels = FlowLabels { flow: flow.clone() };
            finished.get_or_create(&labels).set(last.finished_unix);
            ok.get_or_create(&labels).set(u64::from(last.ok));
        }
        scrape.register(
            "relay_flow_last_run_timestamp_seconds",
            "Unix time the flow's last pass finished",
            finished,
        );
        scrape.register(
            "relay_flow_last_run_ok",
            "1 when the flow's last pass completed, 0 when it stopped",
            ok,
        );
        let Some(webhooks) = &inner.webhooks else {
            return;
        };
        let registration = Family::<StateLabels, Count>::default();
        for state in ["pending", "skipped", "finished"] {
            registration
                .get_or_create(&StateLabels { state })
                .set(u64::from(webhooks.state() == state));
        }
        scrape.register(
            "relay_brightpearl_webhook_registration",
            "1 for the state of the Brightpearl webhook registration at start (pending, skipped, finished)",
            registration,
        );
        let subscriptions = Family::<SubscriptionLabels, Count>::default();
        if let WebhookRegistration::Finished {
            subscriptions: reports,
        } = webhooks
        {
            for report in reports {
                for outcome in SubscriptionOutcome::ALL {
                    let labels = SubscriptionLabels {
                        event: report.event.clone(),
                        outcome: outcome.as_str(),
                    };
                    subscriptions
                        .get_or_create(&labels)
                        .set(u64::from(report.outcome == outcome));
                }
            }
        }
        scrape.register(
            "relay_brightpearl_webhook_subscriptions",
            "1 for the outcome of each configured Brightpearl webhook event's subscription at start (registered, already_present, replaced, failed)",
            subscriptions,
        );
    }
}

/// Gauges read from the store at scrape time.
fn register_store(scrape: &mut Registry, store: &dyn Store, flows: &[&str]) {
    let pending = store.inbox_len();
    let counts = store.counts();
    let dead = store.dead_letters().map(|d| d.len());
    let up = Count::default();
    up.set(u64::from(pending.is_ok() && counts.is_ok() && dead.is_ok()));
    scrape.register(
        "relay_store_up",
        "1 when the state store answered this scrape",
        up,
    );
    if let Ok(pending) = pending {
        let gauge = Count::default();
        gauge.set(pending);
        scrape.register(
            "relay_inbox_pending",
            "Inbox items not processed yet",
            gauge,
        );
    }
    if let Ok(counts) = counts {
        let entities = Family::<EntityLabels, Count>::default();
        for (flow, status, n) in &counts {
            let labels = EntityLabels {
                flow: flow.clone(),
                status: status.as_str().to_owned(),
            };
            entities.get_or_create(&labels).set(*n);
        }
        // Known flows show zeros, so dashboards have a series from the start.
        for flow in flows {
            for status in Status::ALL {
                let labels = EntityLabels {
                    flow: (*flow).to_owned(),
                    status: status.as_str().to_owned(),
                };
                // A series at 0 unless the store counted some.
                let _ = entities.get_or_create(&labels);
            }
        }
        scrape.register(
            "relay_entities",
            "Entity records per flow and status",
            entities,
        );
    }
    if let Ok(dead) = dead {
        let gauge = Count::default();
        gauge.set(u64::try_from(dead).unwrap_or(u64::MAX));
        scrape.register(
            "relay_dead_letters",
            "Dead letters waiting for `relay replay`",
            gauge,
        );
    }
}

/// A counter family labelled `result`, one series per (result, count).
fn by_result<const N: usize>(counts: [(&'static str, u64); N]) -> Family<ResultLabels, Counter> {
    let family = Family::<ResultLabels, Counter>::default();
    for (result, n) in counts {
        family.get_or_create(&ResultLabels { result }).inc_by(n);
    }
    family
}

/// The failure alerts' messages by what became of them, so an alert channel that stopped
/// working is itself visible (`failed` or `dropped` rising).
fn register_alerts(scrape: &mut Registry, stats: AlertStats) {
    let messages = by_result([
        ("queued", stats.queued),
        ("dropped", stats.dropped),
        ("sent", stats.sent),
        ("failed", stats.failed),
    ]);
    scrape.register(
        "relay_alert_messages",
        "Failure alert messages: queued for delivery, dropped (queue full), and deliveries sent or failed after their attempts (one per message and channel)",
        messages,
    );
}

/// The listener's connection counters and gauges.
fn register_connections(scrape: &mut Registry, stats: &ConnectionStats) {
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let open = Count::default();
    open.set(count(stats.open));
    scrape.register("relay_connections_open", "Connections open now", open);
    let max = Count::default();
    max.set(count(stats.max_connections));
    scrape.register(
        "relay_connections_max",
        "The connection cap in force (serve.max_connections, or less under a low open-files limit)",
        max,
    );
    let connections = by_result([
        ("accepted", stats.accepted),
        ("refused_busy", stats.refused_busy),
        ("refused_per_ip", stats.refused_per_ip),
    ]);
    scrape.register(
        "relay_connections",
        "Connections by what became of them at accept: served, or refused with 503 over a cap",
        connections,
    );
    let timeouts = Family::<KindLabels, Counter>::default();
    for (kind, n) in [
        ("header", stats.header_timeouts),
        ("body", stats.body_timeouts),
        ("idle", stats.idle_closed),
    ] {
        timeouts.get_or_create(&KindLabels { kind }).inc_by(n);
    }
    scrape.register(
        "relay_connection_timeouts",
        "Connections closed (or requests answered 408) because a client was too slow or idle",
        timeouts,
    );
    let errors = Counter::<u64>::default();
    errors.inc_by(stats.accept_errors);
    scrape.register(
        "relay_accept_errors",
        "Accept errors (such as too many open files), each followed by a back-off",
        errors,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SqliteStore;

    #[test]
    fn renders_families_with_escaped_labels() {
        let metrics = Metrics::default();
        metrics.record_request("norce-order", 200);
        metrics.record_request("norce-order", 200);
        metrics.record_run(
            "shi\"p",
            Ok(&FlowReport {
                booked: 3,
                failed: 1,
                ..FlowReport::default()
            }),
        );
        let store = SqliteStore::in_memory().unwrap();
        let alerts = AlertStats {
            queued: 2,
            dropped: 0,
            sent: 1,
            failed: 1,
        };
        let text = metrics.render(
            &store,
            &["shipping"],
            &ConnectionStats::default(),
            Some(alerts),
        );
        assert!(
            text.contains("relay_alert_messages_total{result=\"failed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("relay_entities{flow=\"shipping\",status=\"resolved\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "relay_receiver_requests_total{receiver=\"norce-order\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("relay_flow_items_booked_total{flow=\"shi\\\"p\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("relay_entities{flow=\"shipping\",status=\"pending\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE relay_inbox_pending gauge\nrelay_inbox_pending 0\n"),
            "{text}"
        );
        // Counters keep their `_total` names; help texts end in one period.
        assert!(
            text.contains(
                "# HELP relay_receiver_requests_total Requests answered by each receiver, by HTTP status.\n# TYPE relay_receiver_requests_total counter\n"
            ),
            "{text}"
        );
        assert!(!text.contains(".."), "{text}");
        assert!(
            text.contains("relay_connections_total{result=\"accepted\"} 0\n"),
            "{text}"
        );
    }
}
