//! The overview: per flow its runs, outcomes and backlog; the platforms' health; Brightpearl
//! webhook registrations; the 48-hour chart.

use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use maud::{Markup, html};

use super::chart;
use super::layout::{self, Operator, human_duration, state_failed, time};
use crate::operator::CURSOR_FLOWS;
use crate::serve::subscriptions::WebhookRegistration;
use crate::state::{Outcome, hour_of};

/// `GET /console`.
pub(super) async fn page(operator: Operator) -> Response {
    let shared = operator.shared();
    let store = shared.store();
    let now = Utc::now();
    let outcomes = match store.hourly_outcomes(now - TimeDelta::hours(chart::HOURS as i64)) {
        Ok(outcomes) => outcomes,
        Err(e) => return state_failed(&operator, &e),
    };
    let dead = match store.dead_letter_counts() {
        Ok(dead) => dead,
        Err(e) => return state_failed(&operator, &e),
    };
    let inbox = match store.inbox_len() {
        Ok(n) => n,
        Err(e) => return state_failed(&operator, &e),
    };
    let mut cursors = Vec::new();
    for flow in CURSOR_FLOWS {
        match store.cursor(flow) {
            Ok(value) => cursors.push((*flow, value)),
            Err(e) => return state_failed(&operator, &e),
        }
    }
    // The last 24 hourly buckets, this one included.
    let day_start = hour_of(now - TimeDelta::hours(23));
    let in_day = |flows: &[&str], outcome: Outcome| -> u64 {
        outcomes
            .iter()
            .filter(|o| {
                o.hour >= day_start && o.outcome == outcome && flows.contains(&o.flow.as_str())
            })
            .map(|o| o.count)
            .sum()
    };
    let mut last_runs = shared.metrics.last_runs();
    let body = html! {
        h2 { "Flows" }
        table #flows {
            thead { tr {
                th { "Flow" } th { "Last run" } th { "Next run" } th.num { "Done (24 h)" } th.num { "Failed (24 h)" }
                th.num { "Dead letters" } th { "Cursor age" }
            } }
            tbody {
                @for flow in &shared.flows {
                    @let entity_flows = flow.entity_flows();
                    @let last = last_runs.remove(flow.name());
                    @let every = flow.every(&shared.config);
                    tr data-flow=(flow.name()) {
                        td { strong { (flow.name()) } @if entity_flows != [flow.name()] { " " span.muted { "(" (entity_flows.join(", ")) ")" } } }
                        td {
                            @match &last {
                                Some(run) => {
                                    (time(&run.finished_at))
                                    @if run.ok { " " span.status-done { "ok" } } @else { " " span.status-failed title=[run.error.as_deref()] { "stopped" } }
                                    @if let Some(report) = &run.report { br; span.muted { (report.seen) " seen, " (report.failed) " failed, " (report.duration_ms) " ms" } }
                                }
                                None => span.muted { "not since this process started" },
                            }
                        }
                        td { (next_run(last.as_ref().map(|r| r.finished_at.as_str()), every, now)) }
                        td.num { (in_day(entity_flows, Outcome::Done)) }
                        td.num { (in_day(entity_flows, Outcome::Failed)) }
                        td.num {
                            @let open: u64 = dead.iter().filter(|(f, _)| entity_flows.contains(&f.as_str())).map(|(_, n)| n).sum();
                            @if open > 0 { a href={ "/console/dead-letters?flow=" (entity_flows[0]) } { (open) } } @else { "0" }
                        }
                        td {
                            @for (name, value) in cursors.iter().filter(|(name, _)| name.starts_with(flow.name()) || entity_flows.contains(name)) {
                                div { span.muted { (name) ": " } (cursor_age(value.as_deref(), now)) }
                            }
                        }
                    }
                }
            }
        }
        p.muted { "Inbox: " (inbox) " item(s) received and not yet processed." }
        h2 { "Last 48 hours" }
        (layout::trusted(chart::svg(&chart::buckets(&outcomes, now))))
        h2 { "Platforms" }
        (platforms(&operator))
        h2 { "Brightpearl webhooks" }
        (webhooks(&shared.webhooks.borrow()))
    };
    layout::page(&operator, "Overview", "/console", None, body)
}

/// When the next scheduled pass is due (a push starts one earlier).
fn next_run(
    last_finished: Option<&str>,
    every: Option<std::time::Duration>,
    now: DateTime<Utc>,
) -> Markup {
    let Some(every) = every else {
        return html! { span.muted { "on pushes only (no schedule)" } };
    };
    let every = TimeDelta::from_std(every).unwrap_or(TimeDelta::zero());
    match last_finished.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) {
        Some(last) => {
            let due = last.with_timezone(&Utc) + every;
            let wait = (due - now).num_seconds();
            if wait <= 0 {
                html! { "due now" }
            } else {
                html! { (human_duration(-wait)) span.muted { " (every " (human_duration(every.num_seconds())) ")" } }
            }
        }
        None => html! { "every " (human_duration(every.num_seconds())) },
    }
}

/// How far behind a cursor is (a time) or where it is (a feed position).
fn cursor_age(value: Option<&str>, now: DateTime<Utc>) -> String {
    match value {
        None => "unset".to_owned(),
        Some(value) => match DateTime::parse_from_rfc3339(value) {
            Ok(t) => human_duration((now - t.with_timezone(&Utc)).num_seconds()),
            Err(_) => format!("at {value}"),
        },
    }
}

/// A time of this process's clock as the pages show it.
fn at(time: Option<DateTime<Utc>>) -> Markup {
    match time {
        Some(t) => time_of(t),
        None => html! { span.muted { "—" } },
    }
}

fn time_of(t: DateTime<Utc>) -> Markup {
    time(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Each platform connection of this process: token, budget, the last throttling and error.
fn platforms(operator: &Operator) -> Markup {
    let platforms = crate::health::platform_health(&operator.shared().ctx);
    html! {
        table #platforms {
            thead { tr {
                th { "Platform" } th { "Token valid until" } th { "Budget left" } th.num { "Requests" }
                th { "Last success" } th { "Last 429" } th { "Last 503" } th { "Last error" }
            } }
            tbody {
                @for p in &platforms {
                    tr data-platform=(p.platform) {
                        td { strong { (p.platform) } @if let Some(url) = &p.base_url { br; code.muted { (url) } } }
                        @if p.configured {
                            td { (at(p.token_valid_until)) }
                            td { (p.budget_left.as_deref().unwrap_or("—")) }
                            td.num { (p.requests) }
                            td { (at(p.last_ok)) }
                            td { (at(p.last_429)) }
                            td { (at(p.last_503)) }
                            td {
                                @match &p.last_error {
                                    Some(e) => {
                                        (time_of(e.at)) br;
                                        span.status-failed { (e.kind) } " " code { (e.operation) }
                                        @if let Some(status) = e.status { " HTTP " (status) }
                                        @if let Some(id) = &e.request_id { br; span.muted { "request id " code { (id) } } }
                                    }
                                    None => span.muted { "none" },
                                }
                            }
                        } @else {
                            td colspan="7" { span.muted { "not configured in this process" } }
                        }
                    }
                }
            }
        }
        p.muted { "As this process has seen them since it started (each worker keeps its own)." }
    }
}

fn webhooks(registration: &WebhookRegistration) -> Markup {
    html! {
        div #webhooks {
            @match registration {
                WebhookRegistration::Pending { events } => p { "Registering: " (events.join(", ")) },
                WebhookRegistration::Skipped { reason } => p.muted { "Not registered: " (reason) },
                WebhookRegistration::Finished { subscriptions } => {
                    table {
                        thead { tr { th { "Event" } th { "Outcome" } th { "Webhook id" } th { "URI" } th { "Error" } } }
                        tbody {
                            @for s in subscriptions {
                                tr {
                                    td { code { (s.event) } }
                                    td { (s.outcome.as_str()) @if s.transient { " (retried)" } }
                                    td { (s.webhook_id.map(|id| id.to_string()).unwrap_or_else(|| "—".to_owned())) }
                                    td { code { (s.uri) } }
                                    td { (s.error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_runs_and_cursor_ages_read_well() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T14:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let every = Some(std::time::Duration::from_secs(300));
        assert!(
            next_run(Some("2026-12-03T13:58:00Z"), every, now)
                .into_string()
                .contains("in 3 min")
        );
        assert!(
            next_run(Some("2026-12-03T13:00:00Z"), every, now)
                .into_string()
                .contains("due now")
        );
        assert!(
            next_run(None, None, now)
                .into_string()
                .contains("pushes only")
        );
        assert_eq!(cursor_age(Some("2026-12-03T13:00:00Z"), now), "60 min");
        assert_eq!(cursor_age(Some("1234"), now), "at 1234");
        assert_eq!(cursor_age(None, now), "unset");
    }
}
