//! Client-side rate limiting with GCRA (`governor`), driven by tokio's clock.
//!
//! Unlike `tower::limit::RateLimit` (a fixed window, not `Clone`), a [`RateLimiter`] is a
//! cheap handle: clones share one budget, callers wait asynchronously in the response
//! future, and server feedback (remaining-request headers, throttling statuses,
//! `Retry-After`) pauses a key for everyone.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use governor::Quota;
use governor::clock::Clock;
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::HashMapStateStore;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use serde::Serialize;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::backoff::parse_retry_after;
pub use crate::budget::RateLimitKey;
use crate::budget::{Budget, BudgetUsage, Queues};
use crate::error::{ConfigError, Error, RateLimitError};
use crate::shared::SharedAuthState;
use crate::token::BoxFuture;

/// A governor clock reading tokio's clock, so `tokio::time::pause()`/`advance()` drive the
/// limiter deterministically in tests (governor's default quanta clock ignores them).
#[derive(Debug, Clone)]
pub struct TokioClock {
    base: Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            base: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.base)
    }
}

/// A GCRA quota: one permit every `replenish_interval`, at most `burst` at once.
///
/// ```
/// use std::time::Duration;
/// use auth_core::QuotaSpec;
/// // 3 per minute with a burst of 20: one permit per 20 s.
/// let q = QuotaSpec::per_period(3, Duration::from_secs(60), 20);
/// assert_eq!(q.replenish_interval, Duration::from_secs(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    /// Time to earn one permit back.
    pub replenish_interval: Duration,
    /// Permits available at once after idling.
    pub burst: u32,
}

impl QuotaSpec {
    /// `count` permits per `period` (token-bucket refill) with a separate `burst`.
    pub fn per_period(count: u32, period: Duration, burst: u32) -> Self {
        Self {
            replenish_interval: period / count.max(1),
            burst,
        }
    }

    /// At most `max` requests in *any* window of length `window` (a rolling-window cap):
    /// half the budget as burst, the other half replenished across the window, since a
    /// GCRA admits `burst + window / interval` requests in a window.
    pub fn rolling_window(max: u32, window: Duration) -> Self {
        let burst = (max / 2).max(1);
        let refill = max.saturating_sub(burst).max(1);
        Self {
            replenish_interval: window / refill,
            burst,
        }
    }

    fn to_quota(self) -> Result<Quota, ConfigError> {
        let burst =
            NonZeroU32::new(self.burst).ok_or(ConfigError::Quota("burst must be positive"))?;
        Quota::with_period(self.replenish_interval)
            .map(|q| q.allow_burst(burst))
            .ok_or(ConfigError::Quota("replenish interval must be positive"))
    }
}

/// Unit of a "time until the throttle period resets" header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetUnit {
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
}

/// How a server reports its own budget; all of it is data, so the crate stays neutral.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerFeedback {
    /// Header with the requests left in the current period.
    pub remaining_header: HeaderName,
    /// Header with the time until the period resets.
    pub reset_header: HeaderName,
    /// Unit of `reset_header`.
    pub reset_unit: ResetUnit,
    /// Pause the key until the period resets once `remaining` drops to this value.
    pub pause_when_remaining_at_most: u64,
    /// Statuses meaning "over the cap": every caller of the key waits for the reset.
    pub throttle_statuses: Vec<StatusCode>,
    /// Pause used when a throttle status arrives without a reset header.
    pub default_pause: Duration,
    /// The server's own limit, as requests per period, when known (only shown:
    /// [`BudgetLeft::server_limit`]).
    pub limit: Option<(u64, Duration)>,
}

impl ServerFeedback {
    /// Feedback from two headers.
    pub fn new(
        remaining_header: HeaderName,
        reset_header: HeaderName,
        reset_unit: ResetUnit,
    ) -> Self {
        Self {
            remaining_header,
            reset_header,
            reset_unit,
            pause_when_remaining_at_most: 0,
            throttle_statuses: Vec::new(),
            default_pause: Duration::from_secs(60),
            limit: None,
        }
    }

    /// Names the server's limit: `count` requests per `period` (what its remaining header
    /// counts down from).
    pub fn limit(mut self, count: u64, period: Duration) -> Self {
        self.limit = Some((count, period));
        self
    }

    /// Adds a throttling status.
    pub fn throttle_status(mut self, status: StatusCode) -> Self {
        self.throttle_statuses.push(status);
        self
    }

    /// Sets the remaining-requests threshold at which callers pause.
    pub fn pause_when_remaining_at_most(mut self, n: u64) -> Self {
        self.pause_when_remaining_at_most = n;
        self
    }
}

/// A named quota plus optional server feedback: the only place vendor facts live.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RateLimitPreset {
    /// Name used in logs.
    pub name: &'static str,
    /// The client-side quota.
    pub quota: QuotaSpec,
    /// How the server reports its budget, if it does.
    pub feedback: Option<ServerFeedback>,
    /// Pause the key for a 429's `Retry-After` (default on).
    pub honour_retry_after: bool,
}

impl RateLimitPreset {
    /// A preset with only a quota.
    pub fn new(name: &'static str, quota: QuotaSpec) -> Self {
        Self {
            name,
            quota,
            feedback: None,
            honour_retry_after: true,
        }
    }

    /// Adds server feedback.
    pub fn with_feedback(mut self, feedback: ServerFeedback) -> Self {
        self.feedback = Some(feedback);
        self
    }
}

/// Vendor quotas, as data.
pub mod presets {
    use super::*;

    /// Norce Commerce token endpoint: 3 requests per minute per IP, burst 20.
    pub fn norce_token_endpoint() -> RateLimitPreset {
        RateLimitPreset::new(
            "norce-token",
            QuotaSpec::per_period(3, Duration::from_secs(60), 20),
        )
    }

    /// Brightpearl: 200 requests per rolling minute per account (one key per account),
    /// corrected from `brightpearl-requests-remaining` / `brightpearl-next-throttle-period`
    /// (milliseconds); a 503 pauses every caller until the period ends.
    pub fn brightpearl() -> RateLimitPreset {
        RateLimitPreset::new(
            "brightpearl",
            QuotaSpec::rolling_window(200, Duration::from_secs(60)),
        )
        .with_feedback(
            ServerFeedback::new(
                HeaderName::from_static("brightpearl-requests-remaining"),
                HeaderName::from_static("brightpearl-next-throttle-period"),
                ResetUnit::Milliseconds,
            )
            .throttle_status(StatusCode::SERVICE_UNAVAILABLE)
            .limit(200, Duration::from_secs(60)),
        )
    }
}

type Gcra = governor::RateLimiter<
    RateLimitKey,
    HashMapStateStore<RateLimitKey>,
    TokioClock,
    // Its snapshot of each permit granted tells what is left ([`RateLimiter::budget_left`]).
    StateInformationMiddleware,
>;

/// What the limiter last learnt about a key's budget, for [`RateLimiter::budget_left`].
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    /// Permits left after the last one granted, and when.
    permits: Option<(u32, Instant)>,
    /// What the server's remaining header said last, and when.
    server: Option<(u64, Instant)>,
}

/// What is left of a key's budget, read without taking a permit
/// ([`RateLimiter::budget_left`]). Durations are relative to the moment it was read, so that
/// a reader can place them on any clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BudgetLeft {
    /// Requests the server said were left in its current period, in the last answer that
    /// carried its remaining header (Brightpearl's `brightpearl-requests-remaining`); `None`
    /// until one did.
    pub server_remaining: Option<u64>,
    /// How long ago that answer came.
    pub server_reported_ago: Option<Duration>,
    /// The server's limit (requests, period) when the preset names it (Brightpearl: 200 per
    /// 60 s); once `server_reported_ago` exceeds the period the server's count is stale.
    pub server_limit: Option<(u64, Duration)>,
    /// Permits this process's limiter would grant now without waiting, at most `burst`: an
    /// estimate from the last permit granted (one comes back every replenish interval).
    pub permits_now: u32,
    /// The most permits the limiter grants at once.
    pub burst: u32,
    /// How much longer every caller of the key waits before its next request (after a
    /// throttling answer, a `Retry-After` or an exhausted server budget); `None` when it
    /// does not.
    pub paused_for: Option<Duration>,
    /// Whether the budget is shared with other processes: then `permits_now` is only this
    /// process's view of it.
    pub shared: bool,
}

struct LimiterInner {
    gcra: Gcra,
    clock: TokioClock,
    paused: Mutex<HashMap<RateLimitKey, Instant>>,
    preset: RateLimitPreset,
    max_wait: Option<Duration>,
    jitter: Duration,
    queues: Queues,
    /// The budget shared with other processes, when set ([`RateLimiter::with_shared`]).
    shared: Option<Arc<dyn SharedAuthState>>,
    /// What each key's permits and the server last said (a short lock per permit and per
    /// answer with a remaining header).
    seen: Mutex<HashMap<RateLimitKey, Seen>>,
}

/// How long the limiter keeps retrying a failing shared state before giving up on a permit.
const SHARED_RETRY_LIMIT: Duration = Duration::from_secs(60);

/// A shareable, keyed GCRA limiter. Clones share the same budget; callers that find a key
/// saturated queue by [`Priority`](crate::Priority) (see [`RateLimiter::acquire_as`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use auth_core::{RateLimiter, RateLimitKey, presets};
/// let limiter = RateLimiter::new(presets::norce_token_endpoint())?;
/// let waited = limiter.acquire(&RateLimitKey::default()).await?;
/// assert!(waited.is_zero());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<LimiterInner>,
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("preset", &self.inner.preset)
            .field("max_wait", &self.inner.max_wait)
            .field("shared", &self.inner.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter for a preset; callers wait as long as needed.
    pub fn new(preset: RateLimitPreset) -> Result<Self, ConfigError> {
        Self::build(preset, None, Duration::ZERO, None)
    }

    /// A limiter from a bare quota.
    pub fn from_quota(quota: QuotaSpec) -> Result<Self, ConfigError> {
        Self::new(RateLimitPreset::new("custom", quota))
    }

    fn build(
        preset: RateLimitPreset,
        max_wait: Option<Duration>,
        jitter: Duration,
        shared: Option<Arc<dyn SharedAuthState>>,
    ) -> Result<Self, ConfigError> {
        let clock = TokioClock::default();
        let gcra =
            governor::RateLimiter::hashmap_with_clock(preset.quota.to_quota()?, clock.clone())
                .with_middleware::<StateInformationMiddleware>();
        Ok(Self {
            inner: Arc::new(LimiterInner {
                gcra,
                clock,
                paused: Mutex::new(HashMap::new()),
                preset,
                max_wait,
                jitter,
                queues: Queues::default(),
                shared,
                seen: Mutex::default(),
            }),
        })
    }

    /// Fails with [`RateLimitError::MaxWaitExceeded`] instead of waiting longer than `max`.
    /// Call before cloning the handle.
    pub fn with_max_wait(self, max: Duration) -> Result<Self, ConfigError> {
        let inner = &self.inner;
        let shared = inner.shared.clone();
        Self::build(inner.preset.clone(), Some(max), inner.jitter, shared)
    }

    /// Adds up to `jitter` to each wait, so waiters woken together spread out.
    pub fn with_jitter(self, jitter: Duration) -> Result<Self, ConfigError> {
        let inner = &self.inner;
        let shared = inner.shared.clone();
        Self::build(inner.preset.clone(), inner.max_wait, jitter, shared)
    }

    /// Draws from a budget shared with every process using `shared` (several workers over
    /// one database): after the local permit (local queues and priorities unchanged), the
    /// caller reserves one cell of the same quota under the same key in `shared` and waits
    /// what it says; pauses from server feedback are recorded there too, so every process
    /// pauses. The key's text names the shared row, so give keys a meaning beyond the process
    /// (e.g. `brightpearl:{account}:{dev_ref}`). Call before cloning the handle.
    ///
    /// While the head of a key's queue waits for its shared cell, the callers behind it
    /// keep waiting: each process holds at most one reservation per key at a time, so a
    /// live caller never queues behind a backlog of background reservations.
    pub fn with_shared(self, shared: Arc<dyn SharedAuthState>) -> Result<Self, ConfigError> {
        let inner = &self.inner;
        Self::build(
            inner.preset.clone(),
            inner.max_wait,
            inner.jitter,
            Some(shared),
        )
    }

    /// Whether this limiter draws from a shared budget ([`Self::with_shared`]).
    pub fn is_shared(&self) -> bool {
        self.inner.shared.is_some()
    }

    /// The preset.
    pub fn preset(&self) -> &RateLimitPreset {
        &self.inner.preset
    }

    /// Waits for a permit for `key` as an unlabelled [`Priority::Live`](crate::Priority::Live) caller; returns how
    /// long it waited.
    pub async fn acquire(&self, key: &RateLimitKey) -> Result<Duration, RateLimitError> {
        self.acquire_as(key, &Budget::default()).await
    }

    /// Waits for a permit for `key` as a caller of `budget`; returns how long it waited.
    ///
    /// Callers that find the key saturated queue: the head of the queue (the first live caller,
    /// else the first background one) takes the next permit, so a live caller that arrives
    /// behind many background ones is served first and the background ones resume after it.
    pub async fn acquire_as(
        &self,
        key: &RateLimitKey,
        budget: &Budget,
    ) -> Result<Duration, RateLimitError> {
        let inner = &self.inner;
        let start = Instant::now();
        let free = |now| inner.paused_until(key).is_none_or(|u| u <= now);
        // With a shared budget every caller queues, so the head alone reserves shared cells.
        if inner.shared.is_none()
            && inner
                .queues
                .try_uncontended(key, || free(start) && inner.take(key).is_ok())
        {
            inner.queues.record(budget, Duration::ZERO);
            return Ok(Duration::ZERO);
        }
        let ticket = inner.queues.enqueue(key, budget.priority());
        let notify = ticket.changed();
        loop {
            // Registered before the head check, so a change in between still wakes us.
            let changed = notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            if !ticket.is_head() {
                match inner.max_wait {
                    Some(max) => {
                        let left = max.saturating_sub(now - start);
                        if tokio::time::timeout(left, changed).await.is_err() {
                            let needed = Instant::now() - start;
                            return Err(RateLimitError::MaxWaitExceeded { needed, max });
                        }
                    }
                    None => changed.await,
                }
                continue;
            }
            let wait = match inner.paused_until(key).filter(|u| *u > now) {
                Some(until) => until - now,
                None => match inner.take(key) {
                    Ok(()) => {
                        if let Some(shared) = &inner.shared {
                            // Still the head: the others wait behind our shared cell.
                            inner.wait_shared(shared.as_ref(), key, start).await?;
                        }
                        let now = Instant::now();
                        drop(ticket);
                        let waited = now - start;
                        inner.queues.record(budget, waited);
                        return Ok(waited);
                    }
                    Err(not_until) => not_until.wait_time_from(inner.clock.now()),
                },
            };
            let wait = if inner.jitter.is_zero() {
                wait
            } else {
                wait + inner.jitter.mul_f64(fastrand::f64())
            };
            if let Some(max) = inner.max_wait {
                let needed = (now - start) + wait;
                if needed > max {
                    return Err(RateLimitError::MaxWaitExceeded { needed, max });
                }
            }
            // A live caller queuing behind a background head wakes it to step aside.
            tokio::select! {
                () = tokio::time::sleep(wait.max(Duration::from_nanos(1))) => {}
                () = changed => {}
            }
        }
    }

    /// What each [`Budget`] class drew from this limiter so far (permits and time waited),
    /// shared by every clone.
    pub fn usage(&self) -> Vec<BudgetUsage> {
        self.inner.queues.usage()
    }

    /// Callers waiting for a permit now, as (live, background).
    pub fn queued(&self) -> (usize, usize) {
        self.inner.queues.queued()
    }

    /// Stops every caller of `key` until `until` (never shortens an existing pause); with a
    /// shared budget, every process's callers (recorded in the background).
    pub fn pause_until(&self, key: &RateLimitKey, until: Instant) {
        {
            let mut paused = self.inner.paused.lock().unwrap_or_else(|p| p.into_inner());
            let entry = paused.entry(key.clone()).or_insert(until);
            if *entry < until {
                *entry = until;
            }
        }
        let pause = until.saturating_duration_since(Instant::now());
        if let Some(shared) = &self.inner.shared
            && !pause.is_zero()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let (shared, key) = (Arc::clone(shared), key.clone());
            handle.spawn(async move {
                if let Err(error) = shared.pause(&key.0, pause).await {
                    tracing::warn!(target: "auth_core::ratelimit", key = &*key.0, %error, "cannot record the pause in the shared state");
                }
            });
        }
    }

    /// Applies the server's feedback from a response.
    pub fn observe(&self, key: &RateLimitKey, status: StatusCode, headers: &HeaderMap) {
        let preset = &self.inner.preset;
        let now = Instant::now();
        if let Some(fb) = &preset.feedback {
            let reset = headers
                .get(&fb.reset_header)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(|n| match fb.reset_unit {
                    ResetUnit::Milliseconds => Duration::from_millis(n),
                    ResetUnit::Seconds => Duration::from_secs(n),
                });
            let remaining = headers
                .get(&fb.remaining_header)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<u64>().ok());
            if let Some(remaining) = remaining {
                self.inner
                    .seen(key, |seen| seen.server = Some((remaining, now)));
            }
            if fb.throttle_statuses.contains(&status) {
                let pause = reset.unwrap_or(fb.default_pause);
                tracing::warn!(target: "auth_core::ratelimit", preset = preset.name, status = status.as_u16(),
                    pause_ms = pause.as_millis() as u64, "throttled by server; pausing all callers");
                self.pause_until(key, now + pause);
            } else if let (Some(remaining), Some(reset)) = (remaining, reset)
                && remaining <= fb.pause_when_remaining_at_most
            {
                tracing::debug!(target: "auth_core::ratelimit", preset = preset.name, remaining,
                        pause_ms = reset.as_millis() as u64, "server budget exhausted; pausing");
                self.pause_until(key, now + reset);
            }
        }
        if preset.honour_retry_after
            && status == StatusCode::TOO_MANY_REQUESTS
            && let Some(after) = parse_retry_after(headers)
        {
            self.pause_until(key, now + after);
        }
    }

    /// What is left of `key`'s budget now, read without taking a permit: what the server said
    /// last, the permits this limiter would grant at once, and any pause.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use auth_core::{RateLimiter, RateLimitKey, presets};
    /// let limiter = RateLimiter::new(presets::brightpearl())?;
    /// let key = RateLimitKey::new("brightpearl:acme:");
    /// limiter.acquire(&key).await?;
    /// let left = limiter.budget_left(&key);
    /// assert_eq!((left.permits_now, left.burst), (99, 100));
    /// assert_eq!(left.server_remaining, None); // no answer yet
    /// # Ok(()) }
    /// ```
    pub fn budget_left(&self, key: &RateLimitKey) -> BudgetLeft {
        let inner = &self.inner;
        let now = Instant::now();
        let seen = inner
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            .unwrap_or_default();
        let quota = inner.preset.quota;
        let permits_now = match seen.permits {
            None => quota.burst,
            Some((left, at)) => {
                let interval = quota.replenish_interval.as_nanos().max(1);
                let back = now.saturating_duration_since(at).as_nanos() / interval;
                let back = u32::try_from(back).unwrap_or(u32::MAX);
                left.saturating_add(back).min(quota.burst)
            }
        };
        let paused_for = inner
            .paused_until(key)
            .map(|until| until.saturating_duration_since(now))
            .filter(|left| !left.is_zero());
        BudgetLeft {
            server_remaining: seen.server.map(|(remaining, _)| remaining),
            server_reported_ago: seen.server.map(|(_, at)| now.saturating_duration_since(at)),
            server_limit: inner.preset.feedback.as_ref().and_then(|fb| fb.limit),
            permits_now,
            burst: quota.burst,
            paused_for,
            shared: inner.shared.is_some(),
        }
    }

    /// Drops state of keys that are back at full budget (call periodically with many keys).
    pub fn retain_recent(&self) {
        self.inner.gcra.retain_recent();
        let now = Instant::now();
        // What was seen of a key matters until its permits are back and the server's count
        // has run out of date.
        let quota = self.inner.preset.quota;
        let stale = (quota.replenish_interval.checked_mul(quota.burst)).unwrap_or(Duration::MAX);
        let period = (self.inner.preset.feedback.as_ref())
            .and_then(|fb| fb.limit)
            .map_or(Duration::ZERO, |(_, period)| period);
        let recent = |at: Instant, within: Duration| now.saturating_duration_since(at) < within;
        self.inner
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, seen| {
                seen.permits.is_some_and(|(_, at)| recent(at, stale))
                    || seen.server.is_some_and(|(_, at)| recent(at, period))
            });
        self.inner
            .paused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, until| *until > now);
    }
}

impl LimiterInner {
    /// Reserves a cell of the quota in the shared state and sleeps until it is due, then
    /// waits out any pause another process recorded meanwhile. A failing shared state is
    /// retried with backoff (the budget is only kept if every process draws from it), up to
    /// the maximum wait or [`SHARED_RETRY_LIMIT`].
    async fn wait_shared(
        &self,
        shared: &dyn SharedAuthState,
        key: &RateLimitKey,
        start: Instant,
    ) -> Result<(), RateLimitError> {
        let quota = self.preset.quota;
        let mut failures = 0u32;
        let wait = loop {
            let reserved = shared.reserve(&key.0, quota.replenish_interval, quota.burst);
            let error = match reserved.await {
                Ok(wait) => break wait,
                Err(error) => error,
            };
            failures += 1;
            let backoff = crate::backoff::exponential_backoff(
                Duration::from_millis(100),
                failures,
                Duration::from_secs(5),
            );
            let waited = Instant::now() - start;
            tracing::warn!(target: "auth_core::ratelimit", preset = self.preset.name, key = &*key.0, %error,
                retry_in_ms = backoff.as_millis() as u64, "cannot reserve in the shared rate limit state");
            if let Some(max) = self.max_wait
                && waited + backoff > max
            {
                return Err(RateLimitError::MaxWaitExceeded {
                    needed: waited + backoff,
                    max,
                });
            }
            if waited >= SHARED_RETRY_LIMIT {
                return Err(RateLimitError::SharedStateUnavailable {
                    key: key.0.to_string(),
                    waited,
                    reason: error.to_string(),
                });
            }
            tokio::time::sleep(backoff).await;
        };
        if let Some(max) = self.max_wait {
            // The cell stays reserved: the shared budget only ever errs on the safe side.
            let needed = (Instant::now() - start) + wait;
            if needed > max {
                return Err(RateLimitError::MaxWaitExceeded { needed, max });
            }
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        // A pause recorded after our reservation (another worker saw a throttle) still holds.
        for _ in 0..3 {
            match shared.paused_for(&key.0).await {
                Ok(pause) if !pause.is_zero() => tokio::time::sleep(pause).await,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(target: "auth_core::ratelimit", key = &*key.0, %error, "cannot read the shared pause");
                    break;
                }
            }
        }
        Ok(())
    }

    /// Takes a permit of `key` if one is free now, noting what is left.
    fn take(&self, key: &RateLimitKey) -> Result<(), governor::NotUntil<Duration>> {
        let snapshot: StateSnapshot = self.gcra.check_key(key)?;
        let left = snapshot.remaining_burst_capacity();
        let now = Instant::now();
        self.seen(key, |seen| seen.permits = Some((left, now)));
        Ok(())
    }

    /// Updates what was seen of `key`.
    fn seen(&self, key: &RateLimitKey, update: impl FnOnce(&mut Seen)) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get_mut(key) {
            Some(entry) => update(entry),
            None => update(seen.entry(key.clone()).or_default()),
        }
    }

    fn paused_until(&self, key: &RateLimitKey) -> Option<Instant> {
        let paused = self.paused.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_empty() {
            return None;
        }
        paused.get(key).copied()
    }
}

/// Waits for a permit before each request and feeds responses back to the limiter.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: RateLimiter,
    default_key: RateLimitKey,
    budget: Budget,
}

impl RateLimitLayer {
    /// A layer drawing from `limiter`.
    pub fn new(limiter: RateLimiter) -> Self {
        Self {
            limiter,
            default_key: RateLimitKey::default(),
            budget: Budget::default(),
        }
    }

    /// The key used when a request carries no [`RateLimitKey`] extension.
    pub fn default_key(mut self, key: RateLimitKey) -> Self {
        self.default_key = key;
        self
    }

    /// The class (priority and label) used when a request carries no [`Budget`] extension
    /// (default: unlabelled, [`Priority::Live`](crate::Priority::Live)).
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
            default_key: self.default_key.clone(),
            budget: self.budget.clone(),
        }
    }
}

/// Service produced by [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: RateLimiter,
    default_key: RateLimitKey,
    budget: Budget,
}

impl<S, B, RB> Service<Request<B>> for RateLimitService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<Error>,
    B: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<RB>, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The readied service moves into the future; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        let key = request
            .extensions()
            .get::<RateLimitKey>()
            .cloned()
            .unwrap_or_else(|| self.default_key.clone());
        let budget = request
            .extensions()
            .get::<Budget>()
            .cloned()
            .unwrap_or_else(|| self.budget.clone());
        Box::pin(async move {
            let waited = limiter.acquire_as(&key, &budget).await?;
            if !waited.is_zero() {
                tracing::Span::current().record("permit_wait_ms", waited.as_millis() as u64);
            }
            let response = inner.call(request).await.map_err(Into::into)?;
            limiter.observe(&key, response.status(), response.headers());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, remaining: &str, period_ms: &str) -> (StatusCode, HeaderMap) {
        let mut headers = HeaderMap::new();
        headers.insert("brightpearl-requests-remaining", remaining.parse().unwrap());
        headers.insert(
            "brightpearl-next-throttle-period",
            period_ms.parse().unwrap(),
        );
        (StatusCode::from_u16(status).unwrap(), headers)
    }

    /// The budget left follows the permits taken (and their return), what the server said and
    /// its pauses, all read without taking a permit.
    #[tokio::test(start_paused = true)]
    async fn budget_left_follows_permits_answers_and_pauses() {
        let limiter = RateLimiter::new(presets::brightpearl()).unwrap();
        let key = RateLimitKey::new("brightpearl:acme:dev");
        let fresh = limiter.budget_left(&key);
        assert_eq!((fresh.permits_now, fresh.burst), (100, 100));
        assert_eq!(fresh.server_remaining, None);
        assert_eq!(fresh.server_limit, Some((200, Duration::from_secs(60))));
        for _ in 0..3 {
            limiter.acquire(&key).await.unwrap();
        }
        assert_eq!(limiter.budget_left(&key).permits_now, 97);
        // Reading takes nothing.
        assert_eq!(limiter.budget_left(&key).permits_now, 97);

        let (status, headers) = answer(200, "183", "40000");
        limiter.observe(&key, status, &headers);
        tokio::time::advance(Duration::from_millis(1300)).await;
        let left = limiter.budget_left(&key);
        assert_eq!(left.server_remaining, Some(183));
        assert_eq!(left.server_reported_ago, Some(Duration::from_millis(1300)));
        // One permit back every 600 ms (100 refilled over the minute).
        assert_eq!(left.permits_now, 99);
        assert_eq!(left.paused_for, None);
        assert!(!left.shared);

        let (status, headers) = answer(503, "0", "2000");
        limiter.observe(&key, status, &headers);
        tokio::time::advance(Duration::from_millis(500)).await;
        let left = limiter.budget_left(&key);
        assert_eq!(left.server_remaining, Some(0));
        assert_eq!(left.paused_for, Some(Duration::from_millis(1500)));
        assert_eq!(left.permits_now, 100);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(limiter.budget_left(&key).paused_for, None);

        // Another key has its own.
        let other = limiter.budget_left(&RateLimitKey::new("brightpearl:other:dev"));
        assert_eq!((other.permits_now, other.server_remaining), (100, None));

        // Once everything is back and the server's count is out of date, nothing is kept.
        tokio::time::advance(Duration::from_secs(120)).await;
        limiter.retain_recent();
        assert!(limiter.inner.seen.lock().unwrap().is_empty());
    }
}
