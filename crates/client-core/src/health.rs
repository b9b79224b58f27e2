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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;
    use http::{Request, Response};
    use models_runtime::OperationInfo;
    use reqwest::Url;

    use super::*;
    use crate::options::RetryConfig;
    use crate::{ApiRequest, CommonOptions, Engine, Failure, Platform};

    /// A platform whose error is the failure itself.
    enum Test {}

    impl Platform for Test {
        const NAME: &'static str = "test";
        const REQUEST_ID_HEADERS: &'static [&'static str] = &["x-request-id"];
        type Error = Failure;
        fn error(failure: Failure) -> Failure {
            failure
        }
    }

    /// A platform that calls every 500 permanent.
    enum Strict {}

    impl Platform for Strict {
        const NAME: &'static str = "strict";
        const REQUEST_ID_HEADERS: &'static [&'static str] = &["x-request-id"];
        type Error = Failure;
        fn error(failure: Failure) -> Failure {
            failure
        }
        fn error_kind(error: &Failure) -> Option<ErrorKind> {
            (error.status() == Some(StatusCode::INTERNAL_SERVER_ERROR))
                .then_some(ErrorKind::Permanent)
        }
    }

    static GET: OperationInfo = OperationInfo {
        id: "GetThing",
        method: "GET",
        path: "/things/{id}",
        success_status: 200,
        request_media_type: None,
        response_media_type: Some("application/json"),
    };

    /// A transport answering `(status, request id)` in turn, each with a body that names a
    /// secret.
    fn scripted(answers: &[(u16, &'static str)]) -> impl crate::TransportService {
        let answers = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<_>>()));
        tower::service_fn(move |_request: Request<Bytes>| {
            let (status, id) = answers.lock().unwrap().pop_front().unwrap_or((200, ""));
            let mut response = Response::builder().status(status);
            if !id.is_empty() {
                response = response.header("x-request-id", id);
            }
            let body = Bytes::from_static(br#"{"token":"s3cr3t-body"}"#);
            std::future::ready(Ok::<_, auth_core::Error>(response.body(body).unwrap()))
        })
    }

    fn options() -> CommonOptions {
        CommonOptions {
            // No retries: the test needs no sleeps (the client tests cover retried attempts).
            retry: Some(RetryConfig::default().max_attempts(1)),
            ..CommonOptions::default()
        }
    }

    fn get() -> ApiRequest {
        let base = Url::parse("https://api.example/").unwrap();
        ApiRequest::new(&GET, &base, "/things/7").sensitive_header("authorization", "s3cr3t-key")
    }

    /// After a 200, a 429, a 503 and a 500 the snapshot shows each, the last error with its
    /// request id, and no secret.
    #[tokio::test]
    async fn the_snapshot_follows_the_answers() {
        let answers = [
            (200, "r-ok"),
            (429, "r-429"),
            (503, "r-503"),
            (500, "r-500"),
        ];
        let engine: Engine<Test> = options().engine(scripted(&answers));
        let fresh = engine.health();
        assert_eq!(
            (fresh.requests, fresh.last_ok, fresh.last_error),
            (0, None, None)
        );

        engine.send(get()).await.unwrap();
        let after_ok = engine.health();
        assert_eq!(after_ok.requests, 1);
        assert!(after_ok.last_ok.is_some_and(|t| t <= after_ok.taken_at));
        assert_eq!((after_ok.last_429, after_ok.last_error), (None, None));

        for expected in [429, 503, 500] {
            let err = engine.send(get()).await.unwrap_err();
            assert_eq!(err.status().map(|s| s.as_u16()), Some(expected));
        }
        let health = engine.health();
        assert_eq!(health.requests, 4);
        let (ok, throttled, unavailable) = (health.last_ok, health.last_429, health.last_503);
        assert!(ok.is_some() && throttled.is_some() && unavailable.is_some());
        assert!(ok <= throttled && throttled <= unavailable);
        let last = health.last_error.clone().unwrap();
        assert_eq!(
            (
                last.kind,
                last.operation,
                last.status,
                last.request_id.as_deref()
            ),
            (ErrorKind::Transient, "GetThing", Some(500), Some("r-500"))
        );
        assert!(unavailable.is_some_and(|t| t <= last.at) && last.at <= health.taken_at);
        assert_eq!(health.token_valid_until, None);
        assert_eq!(health.budget_left, None);

        let shown = format!("{health:?} {}", serde_json::to_string(&health).unwrap());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let json = serde_json::to_value(&health).unwrap();
        assert_eq!(json["last_error"]["kind"], "transient");
        assert_eq!(json["last_error"]["request_id"], "r-500");
        assert_eq!(json["requests"], 4);
    }

    /// A failure of the stack (nothing answered) is the last error too, without status or
    /// request id; clones of an engine share its record.
    #[tokio::test]
    async fn a_failure_without_an_answer_and_clones_share_the_record() {
        let failing = tower::service_fn(|_request: Request<Bytes>| {
            let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
            std::future::ready(Err::<Response<Bytes>, _>(auth_core::Error::connect(
                refused,
            )))
        });
        let engine: Engine<Test> = options().engine(failing);
        let clone = engine.clone();
        let err = clone.send(get()).await.unwrap_err();
        assert!(matches!(err, Failure::NotSent { .. }), "{err:?}");
        let health = engine.health();
        let last = health.last_error.unwrap();
        assert_eq!(
            (health.requests, last.kind, last.status, last.request_id),
            (1, ErrorKind::Transient, None, None)
        );
    }

    /// Engines recording into one recorder (one client, several rate budgets) show one record;
    /// a client's own classification of an error wins over the failure's.
    #[tokio::test]
    async fn engines_share_a_recorder_and_the_clients_kind_is_recorded() {
        let health = HealthRecorder::new();
        let options = options();
        let first: Engine<Strict> =
            options.engine_recording(scripted(&[(200, "")]), health.clone());
        let second: Engine<Strict> =
            options.engine_recording(scripted(&[(500, "r-9")]), health.clone());
        first.send(get()).await.unwrap();
        second.send(get()).await.unwrap_err();
        let snapshot = health.snapshot();
        assert_eq!(second.health_recorder().snapshot().requests, 2);
        assert_eq!(first.health().last_error.map(|e| e.status), Some(Some(500)));
        assert_eq!(snapshot.requests, 2);
        assert!(snapshot.last_ok.is_some());
        let last = snapshot.last_error.unwrap();
        assert_eq!(
            (last.kind, last.request_id.as_deref()),
            (ErrorKind::Permanent, Some("r-9"))
        );
    }

    /// Tokio instants are placed relative to the snapshot.
    #[test]
    fn wall_time_is_relative_to_the_snapshot() {
        let snapshot = HealthRecorder::new().snapshot();
        let ahead = snapshot.monotonic + Duration::from_secs(90);
        assert_eq!(
            snapshot.wall_time(ahead),
            snapshot.taken_at + Duration::from_secs(90)
        );
        let before = snapshot
            .monotonic
            .checked_sub(Duration::from_millis(1))
            .unwrap();
        assert_eq!(
            snapshot.wall_time(before),
            snapshot.taken_at - Duration::from_millis(1)
        );
    }
}
