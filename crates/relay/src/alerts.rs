//! Failure alerts to the operator (`relay serve`, `[alerts]`): an item dead-lettered, a flow
//! whose passes stopped `alerts.flow_failures_in_a_row` times in a row, a platform whose
//! credentials are refused (no token can be had). Each incident is told once, with the item's
//! reference, what to do and a console link (`{serve.public_url}/console/entities/{flow}/{id}`),
//! and its end once: a flow's pass completes again, a platform's token is had again, a flow's
//! dead-letter queue is empty again.
//!
//! **Channels.** A webhook (`POST`, JSON: Slack's `{"text": …}` plus structured fields, see
//! [`Alert`]) and/or e-mail over SMTP (`lettre`). Their URLs are secrets, read from the
//! variables `[alerts] webhook_url_env` and `smtp_url_env` (or `NAME_FILE`), never logged or
//! shown; alerts are off while neither is set.
//!
//! **Rate limits** (see `alerts/engine.rs`): one message per incident key per
//! `alerts.min_interval_secs`, at most [`WINDOW_CAP`] messages per such window, and what they
//! hold back as ONE summary at the window's end ("49 more items dead-lettered").
//!
//! **Several workers.** The decisions are made on one JSON value in the store
//! (`alerts/state`: the last dead letter looked at, the open incidents, failures in a row, the
//! window), replaced by compare-and-swap ([`Store::shared_swap`]): of two workers that see the
//! same dead letter, one records it and sends its message, the other finds it recorded. New dead
//! letters are read from the store after each pass, after the inbox is drained and on a
//! 30-second tick ([`Store::dead_letters_page`] above the recorded id), so the flows file them
//! as they always did.
//!
//! **Delivery** never blocks a flow: messages go to a bounded queue (a full queue drops the
//! message and counts it) drained by one background task; each channel gets a 5-second timeout
//! and up to 4 attempts, 1, 2 and 4 s apart (tokio time). A message is sent at most once: one
//! recorded but lost to a crash before delivery is not sent again.

mod deliver;
mod engine;
mod message;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use client_core::{ErrorKind, Failure, Settings};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use self::engine::WINDOW_CAP;
use self::engine::{PlatformSeen, Refusal, Rules, Run, STATE_VERSION, Seen, State};
pub use self::message::{Alert, AlertError, AlertEvent, AlertSecrets, AlertStats};
use crate::config::RelayConfig;
use crate::flows::{Flow, FlowContext, FlowError, FlowReport};
use crate::platform::Platform;
use crate::state::{SharedValue, StateError, Store};

/// The store's shared value holding the alerts' state (JSON).
pub const STATE_KEY: &str = "alerts/state";
/// Messages waiting for delivery at most; beyond, a message is dropped and counted.
pub const QUEUE: usize = 64;
/// How often `relay serve` looks for new dead letters, emptied queues and the end of a window
/// besides after passes and ingests.
pub const TICK: Duration = Duration::from_secs(30);
/// Dead letters read per look (the rest on the next, at once).
const PAGE: usize = 500;
/// Compare-and-swap attempts per evaluation before giving up until the next one.
const CAS_ATTEMPTS: usize = 8;
/// The shortest time between two looks for dead letters after ingests (the tick and passes
/// look regardless).
const INGEST_CHECK_EVERY: Duration = Duration::from_secs(1);

/// The wall clock the rate limits read (tests pass a fake one).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The system's wall clock.
pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// Decides and sends the alerts of one worker; clones share it. Build it with
/// [`Alerter::from_settings`] (or [`Alerter::new`]), start its tasks with [`Alerter::spawn`],
/// and report each pass with [`Alerter::after_pass`].
#[derive(Clone)]
pub struct Alerter {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    rules: Rules,
    clock: Clock,
    queue: mpsc::Sender<Alert>,
    /// The queue's receiving end, until the delivery task takes it.
    outbox: Mutex<Option<mpsc::Receiver<Alert>>>,
    delivery: Arc<deliver::Delivery>,
    /// Calls each platform's client had made at the last look (fresh evidence only).
    calls_seen: Mutex<HashMap<&'static str, u64>>,
    /// The last look after an ingest.
    last_ingest_check: Mutex<Option<tokio::time::Instant>>,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("rules", &self.inner.rules)
            .field("channels", &self.inner.delivery.channels())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Alerter {
    /// The alerter `config` and the environment (`settings`) describe, over `store`; `None`
    /// when no channel is set (logged once, with the variables to set).
    pub fn from_settings(
        config: &RelayConfig,
        settings: &Settings,
        store: Arc<dyn Store>,
    ) -> Result<Option<Self>, AlertError> {
        let secrets = AlertSecrets::from_settings(&config.alerts, settings)?;
        Self::new(config, &secrets, store, system_clock())
    }

    /// The alerter of `config` with the channels of `secrets`, reading the time from `clock`;
    /// `None` when no channel is set. Records the alerts' state in `store` if it has none yet,
    /// starting after the dead letters already there (they are not news).
    pub fn new(
        config: &RelayConfig,
        secrets: &AlertSecrets,
        store: Arc<dyn Store>,
        clock: Clock,
    ) -> Result<Option<Self>, AlertError> {
        let alerts = &config.alerts;
        let Some(delivery) = deliver::Delivery::new(alerts, secrets)? else {
            tracing::info!(
                webhook = %alerts.webhook_url_env,
                smtp = %alerts.smtp_url_env,
                "failure alerts off: set the webhook URL variable, or the SMTP URL variable and [alerts] email_to"
            );
            return Ok(None);
        };
        let console = config
            .serve
            .public_url
            .as_deref()
            .filter(|_| alerts.console_link)
            .map(|url| url.trim().trim_end_matches('/').to_owned());
        let rules = Rules {
            in_a_row: alerts.flow_failures_in_a_row,
            interval: TimeDelta::seconds(i64::try_from(alerts.min_interval_secs).unwrap_or(900)),
            console,
        };
        tracing::info!(channels = ?delivery.channels(), min_interval_secs = alerts.min_interval_secs, "failure alerts on");
        let (queue, outbox) = mpsc::channel(QUEUE);
        let alerter = Self {
            inner: Arc::new(Inner {
                store,
                rules,
                clock,
                queue,
                outbox: Mutex::new(Some(outbox)),
                delivery: Arc::new(delivery),
                calls_seen: Mutex::new(HashMap::new()),
                last_ingest_check: Mutex::new(None),
            }),
        };
        if let Err(e) = alerter.ensure_state() {
            tracing::warn!(error = %e, "alerts: cannot record their state yet; trying again at the next look");
        }
        Ok(Some(alerter))
    }

    /// Starts the delivery task and the tick (new dead letters, emptied queues, the end of a
    /// window, platforms' health every [`TICK`]); both end at `shutdown`.
    pub fn spawn(&self, ctx: FlowContext, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut tasks: Vec<JoinHandle<()>> =
            self.spawn_delivery(shutdown.clone()).into_iter().collect();
        let alerter = self.clone();
        let mut stop = shutdown;
        tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => break,
                    _ = interval.tick() => alerter.check(&ctx),
                }
            }
        }));
        tasks
    }

    /// Starts the delivery task alone (the first call only; `None` after). It ends at
    /// `shutdown`, after one last attempt at what is queued (5 s at most).
    pub fn spawn_delivery(&self, shutdown: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
        let outbox = lock(&self.inner.outbox).take()?;
        Some(tokio::spawn(deliver::run(
            self.inner.delivery.clone(),
            outbox,
            shutdown,
        )))
    }

    /// After a pass of `flow` ended with `result`: counts a stopped pass (or, when it stopped on
    /// refused credentials, the platform's incident), ends a failing streak, and looks for new
    /// dead letters and at the platforms' health.
    pub fn after_pass(
        &self,
        ctx: &FlowContext,
        flow: &dyn Flow,
        result: Result<&FlowReport, &FlowError>,
    ) {
        let mut seen = Seen::default();
        match result {
            Ok(report) => {
                // With several workers, a pass of a one-at-a-time flow that found the flow's
                // lease taken returns an empty report, which says nothing about the flow.
                let maybe_skipped = !flow.parallel()
                    && ctx.store.shared_across_processes()
                    && *report
                        == FlowReport {
                            flow: report.flow.clone(),
                            duration_ms: report.duration_ms,
                            ..FlowReport::default()
                        };
                if !maybe_skipped {
                    seen.run = Some((flow.name().to_owned(), Run::Completed));
                }
            }
            Err(error) => match refused_platform(error) {
                Some(platform) => seen.platforms.push(platform),
                None => {
                    seen.run = Some((
                        flow.name().to_owned(),
                        Run::Failed {
                            error: crate::text::escape(&error.to_string()).into_owned(),
                            hint: hint_of(error),
                        },
                    ))
                }
            },
        }
        seen.platforms.extend(self.platforms_seen(ctx));
        self.evaluate(&seen);
    }

    /// Looks for new dead letters, emptied dead-letter queues, the end of a window, and at the
    /// platforms' health.
    pub fn check(&self, ctx: &FlowContext) {
        let seen = Seen {
            run: None,
            platforms: self.platforms_seen(ctx),
        };
        self.evaluate(&seen);
    }

    /// Looks for new dead letters, emptied dead-letter queues and the end of a window.
    pub fn check_dead_letters(&self) {
        self.evaluate(&Seen::default());
    }

    /// After the inbox was drained (an ingest may file a dead letter): as
    /// [`Alerter::check_dead_letters`], at most once a second (a stream of pushes is not a
    /// stream of store reads; the tick and the passes look regardless).
    pub fn after_ingest(&self) {
        let now = tokio::time::Instant::now();
        {
            let mut last = lock(&self.inner.last_ingest_check);
            if last.is_some_and(|at| now.duration_since(at) < INGEST_CHECK_EVERY) {
                return;
            }
            *last = Some(now);
        }
        self.check_dead_letters();
    }

    /// What delivery has done so far.
    pub fn stats(&self) -> AlertStats {
        self.inner.delivery.stats()
    }

    /// A counter of messages whose delivery ended (sent or failed on every channel);
    /// `wait_for(|n| *n >= k)` waits without sleeping.
    pub fn delivered(&self) -> watch::Receiver<u64> {
        self.inner.delivery.delivered()
    }

    /// The messages `seen` and the store call for, recorded by compare-and-swap and queued.
    fn evaluate(&self, seen: &Seen) {
        let mut seen = seen.clone();
        for _ in 0..CAS_ATTEMPTS {
            match self.try_evaluate(&seen) {
                Ok(Some((alerts, more))) => {
                    for alert in alerts {
                        self.enqueue(alert);
                    }
                    if !more {
                        return;
                    }
                    // A page of dead letters was full: the rest at once, with nothing else.
                    seen = Seen::default();
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "alerts: cannot read or record their state; trying again at the next look");
                    return;
                }
            }
        }
        tracing::warn!(
            attempts = CAS_ATTEMPTS,
            "alerts: other workers kept changing the alerts' state; trying again at the next look"
        );
    }

    /// One read-decide-swap: `None` when another worker changed the state meanwhile; else the
    /// messages and whether more dead letters wait.
    fn try_evaluate(&self, seen: &Seen) -> Result<Option<(Vec<Alert>, bool)>, EvaluateError> {
        let store = self.inner.store.as_ref();
        let current = store.shared_get(STATE_KEY)?.map(|v| v.value);
        let mut state = match current.as_deref().map(serde_json::from_str::<State>) {
            Some(Ok(state)) if state.version == STATE_VERSION => state,
            Some(_) => {
                tracing::warn!(
                    "alerts: their recorded state is unreadable (another version?); starting afresh after the dead letters there are"
                );
                fresh_state(store)?
            }
            None => fresh_state(store)?,
        };
        let before = state.clone();
        let letters = store.dead_letters_page(None, state.dead_letter_cursor, PAGE)?;
        let open = if state
            .incidents
            .keys()
            .any(|k| k.starts_with("dead-letters/"))
        {
            Some(
                store
                    .dead_letter_counts()?
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
            )
        } else {
            None
        };
        let now = (self.inner.clock)();
        let alerts = engine::step(
            &mut state,
            &self.inner.rules,
            now,
            seen,
            &letters,
            open.as_ref(),
        );
        let more = letters.len() >= PAGE;
        if current.is_some() && state == before && alerts.is_empty() {
            return Ok(Some((alerts, more)));
        }
        let value = SharedValue {
            value: serde_json::to_string(&state)?,
            expires_at: None,
        };
        if store.shared_swap(STATE_KEY, current.as_deref(), &value)? {
            Ok(Some((alerts, more)))
        } else {
            Ok(None)
        }
    }

    /// Records a fresh state when the store has none (at start, before any pass).
    fn ensure_state(&self) -> Result<(), EvaluateError> {
        let store = self.inner.store.as_ref();
        if store.shared_get(STATE_KEY)?.is_some() {
            return Ok(());
        }
        let value = SharedValue {
            value: serde_json::to_string(&fresh_state(store)?)?,
            expires_at: None,
        };
        // Another worker starting at the same moment may win: its state is as good.
        store.shared_swap(STATE_KEY, None, &value)?;
        Ok(())
    }

    fn enqueue(&self, alert: Alert) {
        self.inner.delivery.enqueue(&self.inner.queue, alert);
    }

    /// The platforms whose clients made calls since the last look, and what those say about
    /// their credentials.
    fn platforms_seen(&self, ctx: &FlowContext) -> Vec<PlatformSeen> {
        let mut calls = lock(&self.inner.calls_seen);
        let mut seen = Vec::new();
        for health in crate::health::platform_health(ctx) {
            if !health.configured || health.requests == 0 {
                continue;
            }
            if calls.insert(health.platform, health.requests) == Some(health.requests) {
                continue;
            }
            match (&health.last_error, health.last_ok) {
                (Some(error), ok)
                    if error.kind == ErrorKind::Unauthorized.as_str()
                        && ok.is_none_or(|ok| ok < error.at) =>
                {
                    let status = error
                        .status
                        .map(|s| format!(" (HTTP {s})"))
                        .unwrap_or_default();
                    let request = error
                        .request_id
                        .as_deref()
                        .map(|id| format!(", request id {}", crate::text::escape(id)))
                        .unwrap_or_default();
                    seen.push(PlatformSeen {
                        platform: health.platform,
                        refused: Some(Refusal {
                            error: format!(
                                "{} {} was refused as unauthorized{status}{request}",
                                health.platform, error.operation
                            ),
                            hint: credentials_hint(health.platform),
                        }),
                    });
                }
                (error, Some(ok)) if error.as_ref().is_none_or(|e| ok > e.at) => {
                    seen.push(PlatformSeen {
                        platform: health.platform,
                        refused: None,
                    });
                }
                _ => {}
            }
        }
        seen
    }
}

/// Why an evaluation could not be made.
#[derive(Debug, thiserror::Error)]
enum EvaluateError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot write the alerts' state: {0}")]
    Json(#[from] serde_json::Error),
}

/// A state that starts after the dead letters `store` has now.
fn fresh_state(store: &dyn Store) -> Result<State, StateError> {
    let mut cursor = 0;
    loop {
        let page = store.dead_letters_page(None, cursor, 1000)?;
        let Some(last) = page.last() else {
            break;
        };
        cursor = cursor.max(last.id);
        if page.len() < 1000 {
            break;
        }
    }
    Ok(State {
        version: STATE_VERSION,
        dead_letter_cursor: cursor,
        ..State::default()
    })
}

/// The platform whose refused credentials (or token) stopped a pass, as seen.
fn refused_platform(error: &FlowError) -> Option<PlatformSeen> {
    let (platform, kind, token, hint) = match error {
        FlowError::Norce(e) => (
            Platform::Norce,
            e.kind(),
            matches!(e, norce_client::Error::Failure(Failure::Token { .. })),
            e.hint(),
        ),
        FlowError::Nshift(e) => (
            Platform::Nshift,
            e.kind(),
            matches!(e, nshift_client::Error::Failure(Failure::Token { .. })),
            e.hint(),
        ),
        FlowError::Brightpearl(e) => (
            Platform::Brightpearl,
            e.kind(),
            matches!(e, brightpearl_client::Error::Failure(Failure::Token { .. })),
            e.hint(),
        ),
        _ => return None,
    };
    // A throttled token endpoint is not a credentials problem: it passes by itself.
    let refused = kind == ErrorKind::Unauthorized || (token && kind != ErrorKind::Throttled);
    refused.then(|| PlatformSeen {
        platform: platform.name(),
        refused: Some(Refusal {
            error: crate::text::escape(&error.to_string()).into_owned(),
            hint,
        }),
    })
}

/// What to do about a stopped pass, when the error says.
fn hint_of(error: &FlowError) -> Option<String> {
    match error {
        FlowError::Norce(e) => Some(e.hint()),
        FlowError::Nshift(e) => Some(e.hint()),
        FlowError::Brightpearl(e) => Some(e.hint()),
        FlowError::Config { setting, .. } => Some(format!(
            "fix `{setting}` in the configuration file (`relay config check -c FILE` checks it), then restart relay serve"
        )),
        FlowError::State(_) => Some(
            "check the state store: free disk space for the SQLite file, or that PostgreSQL is reachable (`relay status`)".to_owned(),
        ),
        FlowError::Io { .. } => {
            Some("check the folder's permissions and free disk space".to_owned())
        }
        _ => None,
    }
}

/// What to check when a platform refuses relay's credentials.
fn credentials_hint(platform: &str) -> String {
    match platform {
        "Norce" => "check NORCE_CLIENT_ID and NORCE_CLIENT_SECRET (and that NORCE_STAGE / NORCE_SCOPE match the environment), then `relay verify`".to_owned(),
        "nShift" => "check NSHIFT_API_KEY_ID and NSHIFT_SECRET_ID (a key revoked or expired in nShift), then `relay verify`".to_owned(),
        "Brightpearl" => "authorise again with `relay auth brightpearl` (or check BRIGHTPEARL_STAFF_TOKEN and the app's installation), then `relay verify`".to_owned(),
        other => format!("check the {other} credentials, then `relay verify`"),
    }
}
