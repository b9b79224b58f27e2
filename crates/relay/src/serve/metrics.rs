//! Counters of the running server and the Prometheus text exposition (format 0.0.4), written by
//! hand. Store-derived gauges (inbox, entities, dead letters) are read at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

use super::subscriptions::{SubscriptionOutcome, WebhookRegistration};
use crate::flows::FlowReport;
use crate::state::Store;

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

#[derive(Debug, Default)]
struct Inner {
    /// (receiver, status) → requests.
    requests: BTreeMap<(String, u16), u64>,
    /// (source, result) → inbox items handed to the flows.
    ingests: BTreeMap<(String, &'static str), u64>,
    /// (flow, result) → runs.
    runs: BTreeMap<(String, &'static str), u64>,
    /// flow → items booked.
    booked: BTreeMap<String, u64>,
    /// flow → items written back.
    written_back: BTreeMap<String, u64>,
    /// flow → items failed.
    failed: BTreeMap<String, u64>,
    /// flow → the last run.
    last_run: BTreeMap<String, LastRun>,
    /// Where the Brightpearl webhook registration stands (set at start).
    webhooks: Option<WebhookRegistration>,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a receiver's answer.
    pub fn record_request(&self, receiver: &str, status: u16) {
        *self
            .lock()
            .requests
            .entry((receiver.to_owned(), status))
            .or_default() += 1;
    }

    /// Requests a receiver answered with `status` so far.
    pub fn requests(&self, receiver: &str, status: u16) -> u64 {
        self.lock()
            .requests
            .get(&(receiver.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }

    /// Counts an inbox item handed to the flows (`done`, `failed`, `ignored`).
    pub fn record_ingest(&self, source: &str, result: &'static str) {
        *self
            .lock()
            .ingests
            .entry((source.to_owned(), result))
            .or_default() += 1;
    }

    /// Records a finished run of `flow`.
    pub fn record_run(&self, flow: &str, result: Result<&FlowReport, String>) {
        let now = chrono::Utc::now();
        let mut inner = self.lock();
        let outcome = if result.is_ok() { "ok" } else { "error" };
        *inner.runs.entry((flow.to_owned(), outcome)).or_default() += 1;
        let (report, error) = match result {
            Ok(report) => {
                *inner.booked.entry(flow.to_owned()).or_default() += report.booked;
                *inner.written_back.entry(flow.to_owned()).or_default() += report.written_back;
                *inner.failed.entry(flow.to_owned()).or_default() += report.failed;
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
        inner.last_run.insert(flow.to_owned(), last);
    }

    /// Records where the Brightpearl webhook registration stands.
    pub fn record_webhook_registration(&self, state: &WebhookRegistration) {
        self.lock().webhooks = Some(state.clone());
    }

    /// Where the Brightpearl webhook registration stands (`None` before serve started it).
    pub fn webhook_registration(&self) -> Option<WebhookRegistration> {
        self.lock().webhooks.clone()
    }

    /// The last run of every flow that ran.
    pub fn last_runs(&self) -> BTreeMap<String, LastRun> {
        self.lock().last_run.clone()
    }

    /// The exposition text: these counters plus gauges read from `store` (a store error leaves
    /// those out and sets `relay_store_up` to 0).
    pub fn render(&self, store: &dyn Store, flows: &[&str]) -> String {
        let mut out = String::new();
        let inner = self.lock();
        family(
            &mut out,
            "relay_receiver_requests_total",
            "counter",
            "Requests answered by each receiver, by HTTP status.",
        );
        for ((receiver, status), n) in &inner.requests {
            sample(
                &mut out,
                "relay_receiver_requests_total",
                &[("receiver", receiver), ("status", &status.to_string())],
                *n as f64,
            );
        }
        family(
            &mut out,
            "relay_inbox_ingested_total",
            "counter",
            "Inbox items handed to the flows, by source and result.",
        );
        for ((source, result), n) in &inner.ingests {
            sample(
                &mut out,
                "relay_inbox_ingested_total",
                &[("source", source), ("result", result)],
                *n as f64,
            );
        }
        family(
            &mut out,
            "relay_flow_runs_total",
            "counter",
            "Flow passes, by result (ok, or error when the pass stopped).",
        );
        for ((flow, result), n) in &inner.runs {
            sample(
                &mut out,
                "relay_flow_runs_total",
                &[("flow", flow), ("result", result)],
                *n as f64,
            );
        }
        for (name, help, map) in [
            (
                "relay_flow_items_booked_total",
                "Items created in the target platform.",
                &inner.booked,
            ),
            (
                "relay_flow_items_written_back_total",
                "Items whose result was written back to the source.",
                &inner.written_back,
            ),
            (
                "relay_flow_items_failed_total",
                "Item attempts that failed.",
                &inner.failed,
            ),
        ] {
            family(&mut out, name, "counter", help);
            for (flow, n) in map {
                sample(&mut out, name, &[("flow", flow)], *n as f64);
            }
        }
        family(
            &mut out,
            "relay_flow_last_run_timestamp_seconds",
            "gauge",
            "Unix time the flow's last pass finished.",
        );
        for (flow, last) in &inner.last_run {
            sample(
                &mut out,
                "relay_flow_last_run_timestamp_seconds",
                &[("flow", flow)],
                last.finished_unix,
            );
        }
        family(
            &mut out,
            "relay_flow_last_run_ok",
            "gauge",
            "1 when the flow's last pass completed, 0 when it stopped.",
        );
        for (flow, last) in &inner.last_run {
            sample(
                &mut out,
                "relay_flow_last_run_ok",
                &[("flow", flow)],
                if last.ok { 1.0 } else { 0.0 },
            );
        }
        if let Some(webhooks) = &inner.webhooks {
            family(
                &mut out,
                "relay_brightpearl_webhook_registration",
                "gauge",
                "1 for the state of the Brightpearl webhook registration at start (pending, skipped, finished).",
            );
            for state in ["pending", "skipped", "finished"] {
                sample(
                    &mut out,
                    "relay_brightpearl_webhook_registration",
                    &[("state", state)],
                    if webhooks.state() == state { 1.0 } else { 0.0 },
                );
            }
            family(
                &mut out,
                "relay_brightpearl_webhook_subscriptions",
                "gauge",
                "1 for the outcome of each configured Brightpearl webhook event's subscription at start (registered, already_present, replaced, failed).",
            );
            if let WebhookRegistration::Finished { subscriptions } = webhooks {
                for report in subscriptions {
                    for outcome in SubscriptionOutcome::ALL {
                        let value = if report.outcome == outcome { 1.0 } else { 0.0 };
                        sample(
                            &mut out,
                            "relay_brightpearl_webhook_subscriptions",
                            &[("event", &report.event), ("outcome", outcome.as_str())],
                            value,
                        );
                    }
                }
            }
        }
        drop(inner);

        let pending = store.inbox_len();
        let counts = store.counts();
        let dead = store.dead_letters().map(|d| d.len());
        let up = pending.is_ok() && counts.is_ok() && dead.is_ok();
        family(
            &mut out,
            "relay_store_up",
            "gauge",
            "1 when the state store answered this scrape.",
        );
        sample(&mut out, "relay_store_up", &[], if up { 1.0 } else { 0.0 });
        if let Ok(pending) = pending {
            family(
                &mut out,
                "relay_inbox_pending",
                "gauge",
                "Inbox items not processed yet.",
            );
            sample(&mut out, "relay_inbox_pending", &[], pending as f64);
        }
        if let Ok(counts) = counts {
            family(
                &mut out,
                "relay_entities",
                "gauge",
                "Entity records per flow and status.",
            );
            let mut seen: Vec<(String, &str)> = Vec::new();
            for (flow, status, n) in &counts {
                sample(
                    &mut out,
                    "relay_entities",
                    &[("flow", flow), ("status", status.as_str())],
                    *n as f64,
                );
                seen.push((flow.clone(), status.as_str()));
            }
            // Known flows show zeros, so dashboards have a series from the start.
            for flow in flows {
                for status in ["pending", "done", "failed", "skipped"] {
                    if !seen.iter().any(|(f, s)| f == flow && *s == status) {
                        sample(
                            &mut out,
                            "relay_entities",
                            &[("flow", flow), ("status", status)],
                            0.0,
                        );
                    }
                }
            }
        }
        if let Ok(dead) = dead {
            family(
                &mut out,
                "relay_dead_letters",
                "gauge",
                "Dead letters waiting for `relay replay`.",
            );
            sample(&mut out, "relay_dead_letters", &[], dead as f64);
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"{}\"", escape_label(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_value(value));
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// The listener's connection counters and gauges, appended to the exposition text.
pub(crate) fn render_connections(out: &mut String, stats: &super::ConnectionStats) {
    family(
        out,
        "relay_connections_open",
        "gauge",
        "Connections open now.",
    );
    sample(out, "relay_connections_open", &[], stats.open as f64);
    family(
        out,
        "relay_connections_max",
        "gauge",
        "The connection cap in force (serve.max_connections, or less under a low open-files limit).",
    );
    sample(
        out,
        "relay_connections_max",
        &[],
        stats.max_connections as f64,
    );
    family(
        out,
        "relay_connections_total",
        "counter",
        "Connections by what became of them at accept: served, or refused with 503 over a cap.",
    );
    for (result, n) in [
        ("accepted", stats.accepted),
        ("refused_busy", stats.refused_busy),
        ("refused_per_ip", stats.refused_per_ip),
    ] {
        sample(
            out,
            "relay_connections_total",
            &[("result", result)],
            n as f64,
        );
    }
    family(
        out,
        "relay_connection_timeouts_total",
        "counter",
        "Connections closed (or requests answered 408) because a client was too slow or idle.",
    );
    for (kind, n) in [
        ("header", stats.header_timeouts),
        ("body", stats.body_timeouts),
        ("idle", stats.idle_closed),
    ] {
        sample(
            out,
            "relay_connection_timeouts_total",
            &[("kind", kind)],
            n as f64,
        );
    }
    family(
        out,
        "relay_accept_errors_total",
        "counter",
        "Accept errors (such as too many open files), each followed by a back-off.",
    );
    sample(
        out,
        "relay_accept_errors_total",
        &[],
        stats.accept_errors as f64,
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
        let text = metrics.render(&store, &["shipping"]);
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
    }
}
