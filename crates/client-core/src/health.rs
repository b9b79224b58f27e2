//! What a client's calls have been like so far, for an operator's overview: how many, the last
//! success, the last throttling answers and the last error. [`HealthRecorder`] is updated by
//! the engine on every call (and by its stack on every attempt), [`HealthSnapshot`] is what it
//! shows.
//!
//! Times are read from tokio's clock (so tests with paused time drive them) and shown as
//! wall-clock times in a snapshot: a moment `d` before the snapshot on tokio's clock is `d`
//! before its [`taken_at`](HealthSnapshot::taken_at).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use auth_core::BudgetLeft;
use http::StatusCode;
use serde::Serialize;
use tokio::time::Instant;

use crate::kind::ErrorKind;

/// The most characters of a request id kept: it comes from the platform's answer, which an
/// operator page should not have to show at any length.
const REQUEST_ID_LIMIT: usize = 128;

/// The last failed call: what kind of failure, of which operation, and how to quote it to the
/// platform. Never a body, a header value or a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LastError {
    /// When it failed.
    pub at: SystemTime,
    /// The client's classification of the error.
    pub kind: ErrorKind,
    /// The operation id (`GetOrder`, ...).
    pub operation: &'static str,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// The request id the platform sent back, when it sent one (cut at 128 characters).
    pub request_id: Option<String>,
}

/// What a client's calls have been like since it was built, as of [`taken_at`](Self::taken_at).
/// The engine fills the calls' part ([`crate::Engine::health`]); a client adds what its token
/// cache and rate limiter know (`token_valid_until`, `budget_left`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HealthSnapshot {
    /// When the snapshot was taken (wall clock).
    pub taken_at: SystemTime,
    /// Calls sent through the engine (a call that the stack retried counts once).
    pub requests: u64,
    /// The last call answered with a success.
    pub last_ok: Option<SystemTime>,
    /// The last answer `429 Too Many Requests` (any attempt, also one retried after).
    pub last_429: Option<SystemTime>,
    /// The last answer `503 Service Unavailable` (any attempt, also one retried after).
    pub last_503: Option<SystemTime>,
    /// The last failed call.
    pub last_error: Option<LastError>,
    /// When the cached token stops being valid; `None` when no token is cached yet or the
    /// credential never expires (set by the client).
    pub token_valid_until: Option<SystemTime>,
    /// What is left of the platform's rate budget, when the client has a limiter for it (set
    /// by the client).
    pub budget_left: Option<BudgetLeft>,
    /// `taken_at` on tokio's clock, to place other tokio instants ([`Self::wall_time`]).
    #[serde(skip)]
    monotonic: Instant,
}

impl HealthSnapshot {
    /// `at`, a moment of tokio's clock (a token's expiry, ...), as wall-clock time relative to
    /// this snapshot.
    pub fn wall_time(&self, at: Instant) -> SystemTime {
        let shifted = match at.checked_duration_since(self.monotonic) {
            Some(ahead) => self.taken_at.checked_add(ahead),
            None => self.taken_at.checked_sub(self.monotonic - at),
        };
        shifted.unwrap_or(self.taken_at)
    }
}

/// Records the health of one client's calls; clones share it. Lock-free for calls that succeed
/// (counters and times are atomics), a short lock for a failure.
#[derive(Clone, Default)]
pub struct HealthRecorder(Arc<Recorder>);

struct Recorder {
    /// Times are stored as nanoseconds after `base` plus one (zero: never).
    base: Instant,
    requests: AtomicU64,
    last_ok: AtomicU64,
    last_429: AtomicU64,
    last_503: AtomicU64,
    last_error: Mutex<Option<Recorded>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            requests: AtomicU64::new(0),
            last_ok: AtomicU64::new(0),
            last_429: AtomicU64::new(0),
            last_503: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }
}

/// A failure as recorded (its moment on tokio's clock).
#[derive(Clone)]
struct Recorded {
    at: Instant,
    kind: ErrorKind,
    operation: &'static str,
    status: Option<u16>,
    request_id: Option<String>,
}

impl fmt::Debug for HealthRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthRecorder")
            .field("requests", &self.0.requests.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl HealthRecorder {
    /// A recorder that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// What was recorded so far, as of now.
    pub fn snapshot(&self) -> HealthSnapshot {
        let recorder = &self.0;
        let snapshot = HealthSnapshot {
            taken_at: SystemTime::now(),
            requests: recorder.requests.load(Ordering::Relaxed),
            last_ok: None,
            last_429: None,
            last_503: None,
            last_error: None,
            token_valid_until: None,
            budget_left: None,
            monotonic: Instant::now(),
        };
        let time = |slot: &AtomicU64| {
            let stored = slot.load(Ordering::Relaxed);
            let at = recorder.base + Duration::from_nanos(stored.checked_sub(1)?);
            Some(snapshot.wall_time(at))
        };
        let last_error = recorder.last_error();
        HealthSnapshot {
            last_ok: time(&recorder.last_ok),
            last_429: time(&recorder.last_429),
            last_503: time(&recorder.last_503),
            last_error: last_error.as_ref().map(|e| LastError {
                at: snapshot.wall_time(e.at),
                kind: e.kind,
                operation: e.operation,
                status: e.status,
                request_id: e.request_id.clone(),
            }),
            ..snapshot
        }
    }

    /// Counts a call sent.
    pub(crate) fn sent(&self) {
        self.0.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes an answer of `status`: a success, or a throttling status (the rest are recorded
    /// as the failure they become, [`Self::failed`]).
    pub(crate) fn answered(&self, status: StatusCode) {
        let slot = match status.as_u16() {
            _ if status.is_success() => &self.0.last_ok,
            429 => &self.0.last_429,
            503 => &self.0.last_503,
            _ => return,
        };
        slot.fetch_max(self.0.now(), Ordering::Relaxed);
    }

    /// Notes a failed call.
    pub(crate) fn failed(
        &self,
        kind: ErrorKind,
        operation: &'static str,
        status: Option<StatusCode>,
        request_id: Option<&str>,
    ) {
        let recorded = Recorded {
            at: Instant::now(),
            kind,
            operation,
            status: status.map(|s| s.as_u16()),
            request_id: request_id.map(|id| id.chars().take(REQUEST_ID_LIMIT).collect()),
        };
        let mut last = self.0.last_error.lock().unwrap_or_else(|p| p.into_inner());
        // Calls finish out of order: keep the latest.
        if last.as_ref().is_none_or(|l| l.at <= recorded.at) {
            *last = Some(recorded);
        }
    }
}

impl Recorder {
    /// Now, as stored.
    fn now(&self) -> u64 {
        let since = Instant::now().saturating_duration_since(self.base);
        u64::try_from(since.as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn last_error(&self) -> Option<Recorded> {
        let last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        last.clone()
    }
}
