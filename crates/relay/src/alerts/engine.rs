//! The decisions, apart from any I/O: which incidents are open, which messages go out now and
//! which are held back for a summary. [`step`] takes the shared [`State`] (kept in the store as
//! one JSON value and replaced by compare-and-swap, so that several workers decide once) and
//! what was observed, and returns the messages to send.
//!
//! Rate limits, both over [`Rules::interval`] (`alerts.min_interval_secs`):
//! * per incident key (`dead-letters/shipping`, `flow/orders`, `platform/norce`): one message,
//!   then the key is quiet for the interval (a recovery is not limited: it answers the message
//!   that opened the incident);
//! * per window: at most [`WINDOW_CAP`] messages in all. What either limit holds back is told
//!   in ONE summary when the window ends ("49 more items dead-lettered …").

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::message::{Alert, AlertEvent};
use crate::state::DeadLetter;

/// The version of [`State`]'s JSON; a state of another version is started afresh.
pub(super) const STATE_VERSION: u32 = 1;
/// Messages at most per window, for all incidents together (the summary aside).
pub const WINDOW_CAP: u32 = 10;
/// References of held-back dead letters named in a summary (the count covers the rest).
const HELD_REFS: usize = 10;
/// Other held-back messages named in a summary (the count covers the rest).
const HELD_LINES: usize = 5;

/// What every worker shares about alerts (the store's `alerts/state` value).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct State {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// The dead letters up to this id were looked at (each alerted or held once).
    pub dead_letter_cursor: i64,
    /// Open incidents by key.
    pub incidents: BTreeMap<String, Incident>,
    /// Passes of each flow that stopped, in a row.
    pub failures_in_a_row: BTreeMap<String, u32>,
    /// When each incident key last had a message (pruned after the interval).
    pub last_sent: BTreeMap<String, DateTime<Utc>>,
    /// When the current window started (`None`: no window open).
    pub window_start: Option<DateTime<Utc>>,
    /// Messages sent in the current window.
    pub sent_in_window: u32,
    /// What the limits held back in the current window.
    pub held: Held,
}

/// An open incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Incident {
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// Whether a message told of it (else its recovery is only a summary line).
    pub notified: bool,
}

/// Messages held back by the limits, for the window's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(super) struct Held {
    /// When the first was held.
    pub since: Option<DateTime<Utc>>,
    /// Dead letters held back, per flow.
    pub dead_lettered: BTreeMap<String, u64>,
    /// The first [`HELD_REFS`] of them (`shipping 1002`).
    pub refs: Vec<String>,
    /// Other messages held back: their first [`HELD_LINES`] subjects.
    pub lines: Vec<String>,
    /// How many other messages were held back.
    pub other: u64,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.dead_lettered.is_empty() && self.other == 0
    }

    fn dead_letters(&self) -> u64 {
        self.dead_lettered.values().sum()
    }
}

/// The settings [`step`] follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rules {
    /// `alerts.flow_failures_in_a_row`.
    pub in_a_row: u32,
    /// `alerts.min_interval_secs`.
    pub interval: TimeDelta,
    /// `{serve.public_url}` without a trailing slash, when messages link to the console.
    pub console: Option<String>,
}

/// How a pass ended, as the alerts count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Run {
    /// It completed (item failures are the dead letters' business).
    Completed,
    /// It stopped.
    Failed {
        /// Why (escaped).
        error: String,
        /// What to do, when known.
        hint: Option<String>,
    },
}

/// What a worker saw of a platform's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PlatformSeen {
    /// The platform's display name (`Norce`).
    pub platform: &'static str,
    /// `Some`: no token could be had / the credentials were refused; `None`: calls succeed.
    pub refused: Option<Refusal>,
}

/// Why a platform's credentials count as refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    /// What failed (escaped).
    pub error: String,
    /// What to do.
    pub hint: String,
}

/// Everything one evaluation observed besides the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Seen {
    /// A finished pass: its flow and how it ended.
    pub run: Option<(String, Run)>,
    /// Platforms with fresh evidence about their credentials.
    pub platforms: Vec<PlatformSeen>,
}

/// What the window's limits decided about one message.
enum Gate {
    /// An incident's first message or a new dead letter: the key's interval applies.
    Open,
    /// A recovery: only the window's cap applies.
    Recovery,
}

/// Applies what was seen at `now` (and the dead letters filed since the cursor, oldest first;
/// and, when any dead-letter incident is open, each flow's open dead letters) to `state`;
/// returns the messages to send now.
pub(super) fn step(
    state: &mut State,
    rules: &Rules,
    now: DateTime<Utc>,
    seen: &Seen,
    letters: &[DeadLetter],
    open_letters: Option<&BTreeMap<String, u64>>,
) -> Vec<Alert> {
    let mut out = Vec::new();
    state.version = STATE_VERSION;
    roll_window(state, rules, now, &mut out);
    state
        .last_sent
        .retain(|_, at| now.signed_duration_since(*at) < rules.interval);
    if let Some((flow, run)) = &seen.run {
        on_run(state, rules, now, flow, run, &mut out);
    }
    for platform in &seen.platforms {
        on_platform(state, rules, now, platform, &mut out);
    }
    for letter in letters {
        on_dead_letter(state, rules, now, letter, &mut out);
    }
    if let Some(open) = open_letters {
        on_open_letters(state, rules, now, open, &mut out);
    }
    out
}

/// Ends the window once its interval is over, with the summary of what it held back.
fn roll_window(state: &mut State, rules: &Rules, now: DateTime<Utc>, out: &mut Vec<Alert>) {
    let Some(start) = state.window_start else {
        return;
    };
    if now.signed_duration_since(start) < rules.interval {
        return;
    }
    let held = std::mem::take(&mut state.held);
    if held.is_empty() {
        state.window_start = None;
        state.sent_in_window = 0;
    } else {
        out.push(summary(&held, rules, now));
        // The summary opens the next window, so a storm that goes on gets one a window.
        state.window_start = Some(now);
        state.sent_in_window = 1;
    }
}

/// Sends `alert` if the limits allow, else holds it back with `hold`. Returns whether it was
/// sent.
fn emit(
    state: &mut State,
    rules: &Rules,
    now: DateTime<Utc>,
    gate: Gate,
    alert: Alert,
    hold: impl FnOnce(&mut Held),
    out: &mut Vec<Alert>,
) -> bool {
    state.window_start.get_or_insert(now);
    let key_quiet = match gate {
        Gate::Recovery => true,
        Gate::Open => state
            .last_sent
            .get(&alert.incident)
            .is_none_or(|at| now.signed_duration_since(*at) >= rules.interval),
    };
    if key_quiet && state.sent_in_window < WINDOW_CAP {
        if matches!(gate, Gate::Open) {
            state.last_sent.insert(alert.incident.clone(), now);
        }
        state.sent_in_window += 1;
        out.push(alert);
        return true;
    }
    hold_back(state, now, hold);
    false
}

/// Holds a message back for the window's summary (opening a window, so that it ends).
fn hold_back(state: &mut State, now: DateTime<Utc>, hold: impl FnOnce(&mut Held)) {
    state.window_start.get_or_insert(now);
    state.held.since.get_or_insert(now);
    hold(&mut state.held);
}

/// Holds back a message that is not a dead letter: a line in the summary.
fn hold_line(subject: String) -> impl FnOnce(&mut Held) {
    move |held: &mut Held| {
        held.other += 1;
        if held.lines.len() < HELD_LINES {
            held.lines.push(subject);
        }
    }
}

fn on_run(
    state: &mut State,
    rules: &Rules,
    now: DateTime<Utc>,
    flow: &str,
    run: &Run,
    out: &mut Vec<Alert>,
) {
    let key = format!("flow/{flow}");
    match run {
        Run::Completed => {
            let failed = state.failures_in_a_row.remove(flow).unwrap_or(0);
            if let Some(incident) = state.incidents.remove(&key) {
                let mut alert = Alert::new(
                    AlertEvent::FlowRecovered,
                    &key,
                    now,
                    format!("relay: flow {flow} runs again (after {failed} failed passes)"),
                );
                alert.flow = Some(flow.to_owned());
                alert.count = Some(u64::from(failed));
                alert.finish();
                if incident.notified {
                    emit(state, rules, now, Gate::Recovery, alert, |_| {}, out);
                } else {
                    hold_back(state, now, hold_line(alert.subject));
                }
            }
        }
        Run::Failed { error, hint } => {
            let failed = state.failures_in_a_row.entry(flow.to_owned()).or_insert(0);
            *failed = failed.saturating_add(1);
            let failed = *failed;
            if failed < rules.in_a_row || state.incidents.contains_key(&key) {
                return;
            }
            let mut alert = Alert::new(
                AlertEvent::FlowFailing,
                &key,
                now,
                format!("relay: flow {flow} failed {failed} passes in a row"),
            );
            alert.flow = Some(flow.to_owned());
            alert.error = Some(error.clone());
            alert.hint = Some(hint.clone().unwrap_or_else(|| {
                format!("see the log of the {flow} passes and `relay status`; the flow is tried again on its schedule")
            }));
            alert.count = Some(u64::from(failed));
            alert.console_url = rules.console.as_ref().map(|base| format!("{base}/console"));
            alert.finish();
            let subject = alert.subject.clone();
            let notified = emit(
                state,
                rules,
                now,
                Gate::Open,
                alert,
                hold_line(subject),
                out,
            );
            state.incidents.insert(
                key,
                Incident {
                    opened_at: now,
                    notified,
                },
            );
        }
    }
}

fn on_platform(
    state: &mut State,
    rules: &Rules,
    now: DateTime<Utc>,
    seen: &PlatformSeen,
    out: &mut Vec<Alert>,
) {
    let platform = seen.platform;
    let key = format!("platform/{}", platform.to_ascii_lowercase());
    match &seen.refused {
        Some(refusal) => {
            if state.incidents.contains_key(&key) {
                return;
            }
            let mut alert = Alert::new(
                AlertEvent::PlatformUnauthorized,
                &key,
                now,
                format!("relay: no {platform} token: the credentials are refused"),
            );
            alert.platform = Some(platform.to_owned());
            alert.error = Some(refusal.error.clone());
            alert.hint = Some(refusal.hint.clone());
            alert.console_url = rules.console.as_ref().map(|base| format!("{base}/console"));
            alert.finish();
            let subject = alert.subject.clone();
            let notified = emit(
                state,
                rules,
                now,
                Gate::Open,
                alert,
                hold_line(subject),
                out,
            );
            state.incidents.insert(
                key,
                Incident {
                    opened_at: now,
                    notified,
                },
            );
        }
        None => {
            let Some(incident) = state.incidents.remove(&key) else {
                return;
            };
            let mut alert = Alert::new(
                AlertEvent::PlatformRecovered,
                &key,
                now,
                format!("relay: {platform} accepts relay's credentials again (a token was had)"),
            );
            alert.platform = Some(platform.to_owned());
            alert.finish();
            if incident.notified {
                emit(state, rules, now, Gate::Recovery, alert, |_| {}, out);
            } else {
                hold_back(state, now, hold_line(alert.subject));
            }
        }
    }
}

fn on_dead_letter(
    state: &mut State,
    rules: &Rules,
    now: DateTime<Utc>,
    letter: &DeadLetter,
    out: &mut Vec<Alert>,
) {
    state.dead_letter_cursor = state.dead_letter_cursor.max(letter.id);
    let flow = crate::text::escape(&letter.flow).into_owned();
    let reference = crate::text::escape(&letter.source_id).into_owned();
    let key = format!("dead-letters/{flow}");
    let mut alert = Alert::new(
        AlertEvent::DeadLetter,
        &key,
        now,
        format!("relay: {flow} {reference} was dead-lettered"),
    );
    alert.flow = Some(flow.clone());
    alert.reference = Some(reference.clone());
    alert.dead_letter_id = Some(letter.id);
    alert.error = Some(crate::text::escape(&letter.error).into_owned());
    alert.hint = Some(format!(
        "fix what the error names, then Retry it on its console page (or `relay replay {}`); Mark resolved when nothing is to be done",
        letter.id
    ));
    alert.console_url = rules
        .console
        .as_ref()
        .map(|base| format!("{base}{}", entity_path(&letter.flow, &letter.source_id)));
    alert.finish();
    let held_ref = format!("{flow} {reference}");
    let notified = emit(
        state,
        rules,
        now,
        Gate::Open,
        alert,
        |held| {
            *held.dead_lettered.entry(flow.clone()).or_default() += 1;
            if held.refs.len() < HELD_REFS {
                held.refs.push(held_ref);
            }
        },
        out,
    );
    let incident = state.incidents.entry(key).or_insert(Incident {
        opened_at: now,
        notified: false,
    });
    incident.notified |= notified;
}

/// Closes the dead-letter incidents of flows whose queue is empty again.
fn on_open_letters(
    state: &mut State,
    rules: &Rules,
    now: DateTime<Utc>,
    open: &BTreeMap<String, u64>,
    out: &mut Vec<Alert>,
) {
    let emptied: Vec<String> = state
        .incidents
        .keys()
        .filter_map(|key| key.strip_prefix("dead-letters/"))
        .filter(|flow| open.get(*flow).is_none_or(|n| *n == 0))
        .map(str::to_owned)
        .collect();
    for flow in emptied {
        let key = format!("dead-letters/{flow}");
        let Some(incident) = state.incidents.remove(&key) else {
            continue;
        };
        let mut alert = Alert::new(
            AlertEvent::DeadLettersCleared,
            &key,
            now,
            format!("relay: the dead letters of {flow} are all handled (its queue is empty again)"),
        );
        alert.flow = Some(flow.clone());
        alert.console_url = rules
            .console
            .as_ref()
            .map(|base| format!("{base}/console/dead-letters"));
        alert.finish();
        if incident.notified {
            emit(state, rules, now, Gate::Recovery, alert, |_| {}, out);
        } else {
            hold_back(state, now, hold_line(alert.subject));
        }
    }
}

/// The summary of what a window held back.
fn summary(held: &Held, rules: &Rules, now: DateTime<Utc>) -> Alert {
    let since = held
        .since
        .map(|at| format!(" since {}", at.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    let dead = held.dead_letters();
    let mut parts = Vec::new();
    if dead > 0 {
        parts.push(format!(
            "{dead} more item{} dead-lettered",
            if dead == 1 { "" } else { "s" }
        ));
    }
    if held.other > 0 {
        parts.push(format!(
            "{} more alert{}",
            held.other,
            if held.other == 1 { "" } else { "s" }
        ));
    }
    let mut alert = Alert::new(
        AlertEvent::Summary,
        "summary",
        now,
        format!("relay: {}{since}", parts.join(" and ")),
    );
    let mut details = Vec::new();
    if dead > 0 {
        let per_flow: Vec<String> = held
            .dead_lettered
            .iter()
            .map(|(flow, n)| format!("{flow} {n}"))
            .collect();
        let more = dead.saturating_sub(held.refs.len() as u64);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        details.push(format!(
            "Dead-lettered ({}): {}{more}",
            per_flow.join(", "),
            held.refs.join(", ")
        ));
    }
    if held.other > 0 {
        let more = held.other.saturating_sub(held.lines.len() as u64);
        let more = if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        };
        details.push(format!("Also held back: {}{more}", held.lines.join("; ")));
    }
    alert.details = details;
    alert.count = Some(dead + held.other);
    alert.console_url = rules
        .console
        .as_ref()
        .map(|base| format!("{base}/console/dead-letters"));
    alert.finish();
    alert
}

/// What [`entity_path`] leaves as it is: RFC 3986's unreserved characters (as the console's
/// own links).
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The console page of an entity: `/console/entities/{flow}/{id}`, both percent-encoded.
pub(super) fn entity_path(flow: &str, source_id: &str) -> String {
    let encode = |text: &str| percent_encoding::utf8_percent_encode(text, UNRESERVED).to_string();
    format!("/console/entities/{}/{}", encode(flow), encode(source_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            in_a_row: 3,
            interval: TimeDelta::seconds(900),
            console: Some("https://relay.example.com".to_owned()),
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn letter(id: i64, flow: &str, source_id: &str) -> DeadLetter {
        DeadLetter {
            id,
            flow: flow.to_owned(),
            source_id: source_id.to_owned(),
            error: "nShift refused the booking: unknown service".to_owned(),
            payload: None,
            created_at: String::new(),
        }
    }

    fn failed() -> Seen {
        Seen {
            run: Some((
                "orders".to_owned(),
                Run::Failed {
                    error: "Norce: 503".to_owned(),
                    hint: Some("retry later".to_owned()),
                },
            )),
            platforms: Vec::new(),
        }
    }

    fn completed() -> Seen {
        Seen {
            run: Some(("orders".to_owned(), Run::Completed)),
            platforms: Vec::new(),
        }
    }

    #[test]
    fn a_dead_letter_is_one_message_with_its_reference_hint_and_link() {
        let mut state = State::default();
        let out = step(
            &mut state,
            &rules(),
            t(0),
            &Seen::default(),
            &[letter(7, "shipping", "10 01/ä")],
            None,
        );
        assert_eq!(out.len(), 1);
        let alert = &out[0];
        assert_eq!(alert.event, AlertEvent::DeadLetter);
        assert_eq!(alert.reference.as_deref(), Some("10 01/ä"));
        assert_eq!(
            alert.console_url.as_deref(),
            Some("https://relay.example.com/console/entities/shipping/10%2001%2F%C3%A4")
        );
        assert!(alert.text.contains("relay replay 7"), "{}", alert.text);
        assert!(alert.text.contains("unknown service"), "{}", alert.text);
        assert_eq!(state.dead_letter_cursor, 7);
        assert!(state.incidents["dead-letters/shipping"].notified);
    }

    #[test]
    fn a_burst_is_one_message_then_one_summary_at_the_end_of_the_window() {
        let mut state = State::default();
        let letters: Vec<DeadLetter> = (1..=50)
            .map(|i| letter(i, "shipping", &format!("{}", 1000 + i)))
            .collect();
        let out = step(&mut state, &rules(), t(0), &Seen::default(), &letters, None);
        assert_eq!(out.len(), 1, "one message for the burst");
        assert_eq!(out[0].reference.as_deref(), Some("1001"));
        // Nothing more within the window.
        let open = BTreeMap::from([("shipping".to_owned(), 50)]);
        let out = step(
            &mut state,
            &rules(),
            t(600),
            &Seen::default(),
            &[],
            Some(&open),
        );
        assert!(out.is_empty());
        let out = step(
            &mut state,
            &rules(),
            t(900),
            &Seen::default(),
            &[],
            Some(&open),
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].event, AlertEvent::Summary);
        assert!(
            out[0].subject.contains("49 more items dead-lettered"),
            "{}",
            out[0].subject
        );
        assert!(out[0].text.contains("shipping 49"), "{}", out[0].text);
        assert!(out[0].text.contains("and 39 more"), "{}", out[0].text);
        // The queue empties: one recovery.
        let empty = BTreeMap::new();
        let out = step(
            &mut state,
            &rules(),
            t(1000),
            &Seen::default(),
            &[],
            Some(&empty),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, AlertEvent::DeadLettersCleared);
        assert!(state.incidents.is_empty());
    }

    #[test]
    fn a_flow_failing_in_a_row_alerts_once_and_recovers_once() {
        let mut state = State::default();
        let rules = rules();
        assert!(step(&mut state, &rules, t(0), &failed(), &[], None).is_empty());
        assert!(step(&mut state, &rules, t(60), &failed(), &[], None).is_empty());
        let out = step(&mut state, &rules, t(120), &failed(), &[], None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, AlertEvent::FlowFailing);
        assert_eq!(out[0].count, Some(3));
        assert_eq!(out[0].hint.as_deref(), Some("retry later"));
        assert!(step(&mut state, &rules, t(180), &failed(), &[], None).is_empty());
        let out = step(&mut state, &rules, t(240), &completed(), &[], None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, AlertEvent::FlowRecovered);
        assert!(
            out[0].subject.contains("after 4 failed passes"),
            "{}",
            out[0].subject
        );
        assert!(step(&mut state, &rules, t(300), &completed(), &[], None).is_empty());
        // A relapse within the interval is held back, and so is its recovery: one summary.
        for i in 0..3 {
            assert!(step(&mut state, &rules, t(310 + i), &failed(), &[], None).is_empty());
        }
        assert!(step(&mut state, &rules, t(400), &completed(), &[], None).is_empty());
        let out = step(&mut state, &rules, t(1200), &Seen::default(), &[], None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, AlertEvent::Summary);
        assert!(out[0].text.contains("2 more alerts"), "{}", out[0].text);
    }

    #[test]
    fn platforms_open_and_close_once() {
        let mut state = State::default();
        let refused = Seen {
            run: None,
            platforms: vec![PlatformSeen {
                platform: "Norce",
                refused: Some(Refusal {
                    error: "no token: 401 invalid_client".to_owned(),
                    hint: "check NORCE_CLIENT_SECRET".to_owned(),
                }),
            }],
        };
        let accepted = Seen {
            run: None,
            platforms: vec![PlatformSeen {
                platform: "Norce",
                refused: None,
            }],
        };
        assert!(step(&mut state, &rules(), t(0), &accepted, &[], None).is_empty());
        let out = step(&mut state, &rules(), t(1), &refused, &[], None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].incident, "platform/norce");
        assert!(step(&mut state, &rules(), t(2), &refused, &[], None).is_empty());
        let out = step(&mut state, &rules(), t(3), &accepted, &[], None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, AlertEvent::PlatformRecovered);
    }

    #[test]
    fn the_window_caps_messages_of_many_incidents() {
        let mut state = State::default();
        let letters: Vec<DeadLetter> = (1..=20)
            .map(|i| letter(i, &format!("flow{i}"), "x"))
            .collect();
        let out = step(&mut state, &rules(), t(0), &Seen::default(), &letters, None);
        assert_eq!(out.len(), WINDOW_CAP as usize);
        let out = step(&mut state, &rules(), t(900), &Seen::default(), &[], None);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].subject.contains("10 more items"),
            "{}",
            out[0].subject
        );
    }
}
