//! The token cache: single flight, refresh ahead, static stability, compare-and-invalidate.
//!
//! State machine for one cached token with lifetime `L` (from fetch to expiry):
//!
//! * **fresh** until `refresh_at = expiry − W + jitter`, where
//!   `W = min(refresh_window, L × max_refresh_fraction)`; callers get it without waiting.
//! * **advisory** from `refresh_at` until `usable_until = expiry − margin`: the first caller
//!   starts one background refresh (`try_lock` on the refresh gate), everybody, including
//!   that caller, keeps using the valid token. A failed refresh sets a jittered exponential
//!   backoff during which nobody retries it.
//! * **mandatory** after `usable_until`, when empty, or after [`TokenCache::invalidate`]:
//!   callers queue on the gate; the first fetches, the others re-check and reuse its result.
//!   A failure is remembered for a short jittered TTL, so callers cannot hot-loop on the
//!   token endpoint.
//!
//! Fetches run in a spawned task, so a caller that is cancelled cannot abort a fetch that
//! other callers (or a rotating refresh token) depend on.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use tokio::time::Instant;

use crate::backoff::exponential_backoff;
use crate::error::{InvalidTokenResponse, TokenError};
use crate::token::{Token, TokenSource, run_detached};

/// Tuning of a [`TokenCache`]. The defaults suit tokens living minutes to days.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenCacheConfig {
    /// How long before expiry a refresh starts (default 60 s).
    pub refresh_window: Duration,
    /// Caps the refresh window at this fraction of a token's lifetime, so short-lived tokens
    /// are not refreshed continuously (default 0.5).
    pub max_refresh_fraction: f64,
    /// A token is not handed out during its last `expiry_margin` (default 5 s, capped at a
    /// tenth of its lifetime), so it does not expire in flight.
    pub expiry_margin: Duration,
    /// The refresh point is moved later by up to this fraction of the window, so many
    /// processes started together do not refresh together (default 0.1).
    pub refresh_jitter: f64,
    /// First backoff after a failed background refresh (default 1 s), doubled per failure.
    pub failure_backoff: Duration,
    /// Maximum backoff after failed background refreshes (default 60 s).
    pub max_failure_backoff: Duration,
    /// How long a fetch error is served to callers when no valid token exists
    /// (jittered between 1× and 2×; default 2 s).
    pub error_ttl: Duration,
    /// A fetch taking longer than this fails with [`TokenError::Timeout`] (default 300 s).
    /// It includes waiting for a token-endpoint rate-limit permit (a cold start of 25
    /// clients against a 3/min endpoint needs 100 s), so give the transport its own
    /// shorter per-request timeout.
    pub fetch_timeout: Duration,
}

impl Default for TokenCacheConfig {
    fn default() -> Self {
        Self {
            refresh_window: Duration::from_secs(60),
            max_refresh_fraction: 0.5,
            expiry_margin: Duration::from_secs(5),
            refresh_jitter: 0.1,
            failure_backoff: Duration::from_secs(1),
            max_failure_backoff: Duration::from_secs(60),
            error_ttl: Duration::from_secs(2),
            fetch_timeout: Duration::from_secs(300),
        }
    }
}

/// A token handed out by the cache, with its prepared header value and its generation
/// (used by [`TokenCache::invalidate`] to invalidate exactly this token).
#[derive(Clone)]
pub struct CachedToken(Arc<Entry>);

struct Entry {
    token: Token,
    header: HeaderValue,
    generation: u64,
    refresh_at: Option<Instant>,
    usable_until: Option<Instant>,
}

impl CachedToken {
    /// The header value (marked sensitive).
    pub fn header_value(&self) -> &HeaderValue {
        &self.0.header
    }

    /// The token.
    pub fn token(&self) -> &Token {
        &self.0.token
    }

    /// Increases by one for each token the cache stores.
    pub fn generation(&self) -> u64 {
        self.0.generation
    }

    fn usable(&self, now: Instant) -> bool {
        self.0.usable_until.is_none_or(|u| now < u)
    }

    fn due(&self, now: Instant) -> bool {
        self.0.refresh_at.is_some_and(|r| now >= r)
    }
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &self.0.token)
            .field("generation", &self.0.generation)
            .finish()
    }
}

#[derive(Default)]
struct State {
    current: Option<CachedToken>,
    generation: u64,
    /// No background refresh before this instant (after a failure).
    retry_refresh_at: Option<Instant>,
    failures: u32,
    /// A fetch error served until the instant, when no usable token exists.
    last_error: Option<(TokenError, Instant)>,
    fetches: u64,
}

enum Lookup {
    Fresh(CachedToken),
    Due(CachedToken),
    Failed(TokenError),
    Missing,
}

struct Inner {
    source: Arc<dyn TokenSource>,
    config: TokenCacheConfig,
    state: Mutex<State>,
    gate: Arc<AsyncMutex<()>>,
}

/// Caches the token of one [`TokenSource`]. Clones share the cache.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), auth_core::TokenError> {
/// use auth_core::{StaticToken, TokenCache};
/// let cache = TokenCache::new(StaticToken::bearer("key".into()));
/// let token = cache.get().await?;
/// assert!(token.header_value().is_sensitive());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("TokenCache")
            .field("current", &state.current)
            .field("failures", &state.failures)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache with the default [`TokenCacheConfig`].
    pub fn new(source: impl TokenSource) -> Self {
        Self::with_config(source, TokenCacheConfig::default())
    }

    /// A cache with an explicit configuration.
    pub fn with_config(source: impl TokenSource, config: TokenCacheConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                source: Arc::new(source),
                config,
                state: Mutex::new(State::default()),
                gate: Arc::new(AsyncMutex::new(())),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// Returns a usable token, fetching at most once for any number of concurrent callers.
    pub async fn get(&self) -> Result<CachedToken, TokenError> {
        match self.inner.lookup(Instant::now()) {
            Lookup::Fresh(t) => return Ok(t),
            Lookup::Due(t) => {
                self.inner.refresh_in_background();
                return Ok(t);
            }
            Lookup::Failed(e) => return Err(e),
            Lookup::Missing => {}
        }
        let guard = Arc::clone(&self.inner.gate).lock_owned().await;
        // Someone may have fetched (or failed) while we queued: that is the single flight.
        match self.inner.lookup(Instant::now()) {
            Lookup::Fresh(t) | Lookup::Due(t) => return Ok(t),
            Lookup::Failed(e) => return Err(e),
            Lookup::Missing => {}
        }
        Inner::fetch_spawned(Arc::clone(&self.inner), guard).await
    }

    /// Invalidates `used` if it is still the cached token; a newer token is left alone.
    /// Returns whether it was invalidated.
    pub fn invalidate(&self, used: &CachedToken) -> bool {
        let mut state = self.lock();
        let same = state
            .current
            .as_ref()
            .is_some_and(|c| c.generation() == used.generation());
        if same {
            state.current = None;
            state.retry_refresh_at = None;
            tracing::debug!(target: "auth_core::token", generation = used.generation(), "token invalidated");
        }
        same
    }

    /// Number of fetches started so far (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.lock().fetches
    }

    /// When the cached token stops being valid (its expiry), read without fetching. `None`
    /// when no token is cached (none fetched yet, or the last one was invalidated or its
    /// refresh failed after it ran out) or when the cached credential never expires (a
    /// static key). It may lie in the past: an expired token stays cached until the next
    /// request replaces it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), auth_core::TokenError> {
    /// use auth_core::{StaticToken, TokenCache};
    /// let cache = TokenCache::new(StaticToken::bearer("key".into()));
    /// cache.get().await?;
    /// assert_eq!(cache.valid_until(), None); // a static key never expires
    /// # Ok(()) }
    /// ```
    pub fn valid_until(&self) -> Option<Instant> {
        self.lock().current.as_ref()?.token().expires_at()
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (every
        // update is a few plain assignments), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lookup(&self, now: Instant) -> Lookup {
        let state = self.lock();
        if let Some(current) = &state.current
            && current.usable(now)
        {
            let backing_off = state.retry_refresh_at.is_some_and(|t| now < t);
            return if current.due(now) && !backing_off {
                Lookup::Due(current.clone())
            } else {
                Lookup::Fresh(current.clone())
            };
        }
        match &state.last_error {
            Some((e, until)) if now < *until => Lookup::Failed(e.clone()),
            _ => Lookup::Missing,
        }
    }

    fn refresh_in_background(self: &Arc<Self>) {
        let Ok(guard) = Arc::clone(&self.gate).try_lock_owned() else {
            return; // a refresh is already running
        };
        // Re-check under the gate: a refresh may have completed since the lookup.
        if !matches!(self.lookup(Instant::now()), Lookup::Due(_)) {
            return;
        }
        let inner = Arc::clone(self);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    // The error is already logged and recorded as backoff.
                    let _ = inner.fetch(guard).await;
                });
            }
            Err(_) => drop(guard),
        }
    }

    async fn fetch_spawned(
        self: Arc<Self>,
        guard: OwnedMutexGuard<()>,
    ) -> Result<CachedToken, TokenError> {
        run_detached(async move { self.fetch(guard).await }).await
    }

    async fn fetch(&self, guard: OwnedMutexGuard<()>) -> Result<CachedToken, TokenError> {
        let started = Instant::now();
        self.lock().fetches += 1;
        let timeout = self.config.fetch_timeout;
        let result = match tokio::time::timeout(timeout, self.source.fetch()).await {
            Ok(r) => r,
            Err(_) => Err(TokenError::Timeout(timeout)),
        };
        let now = Instant::now();
        let result = result.and_then(|token| self.prepare(token, now));
        let mut state = self.lock();
        let outcome = match result {
            Ok((token, header, refresh_at, usable_until)) => {
                state.generation += 1;
                let entry = CachedToken(Arc::new(Entry {
                    token,
                    header,
                    generation: state.generation,
                    refresh_at,
                    usable_until,
                }));
                state.current = Some(entry.clone());
                state.failures = 0;
                state.retry_refresh_at = None;
                state.last_error = None;
                tracing::info!(
                    target: "auth_core::token",
                    generation = state.generation,
                    lifetime_s = entry.token().expires_at().map(|e| e.saturating_duration_since(now).as_secs()),
                    fetch_ms = now.saturating_duration_since(started).as_millis() as u64,
                    "token fetched"
                );
                Ok(entry)
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                let server_hint = match &error {
                    TokenError::RateLimited { retry_after } => *retry_after,
                    _ => None,
                };
                let still_valid = state.current.as_ref().is_some_and(|c| c.usable(now));
                if still_valid {
                    let delay = self
                        .backoff(state.failures)
                        .max(server_hint.unwrap_or_default());
                    state.retry_refresh_at = Some(now + delay);
                    tracing::warn!(target: "auth_core::token", %error, failures = state.failures,
                        retry_in_ms = delay.as_millis() as u64, "token refresh failed; serving the still-valid token");
                } else {
                    let ttl = jitter_between(self.config.error_ttl, self.config.error_ttl * 2)
                        .max(server_hint.unwrap_or_default());
                    state.current = None;
                    state.last_error = Some((error.clone(), now + ttl));
                    tracing::warn!(target: "auth_core::token", %error, failures = state.failures,
                        permanent = error.is_permanent(), "token fetch failed and no valid token is cached");
                }
                Err(error)
            }
        };
        drop(state);
        drop(guard);
        outcome
    }

    /// Validates a token and computes its refresh and usability deadlines.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        token: Token,
        now: Instant,
    ) -> Result<(Token, HeaderValue, Option<Instant>, Option<Instant>), TokenError> {
        let header = token.header_value()?;
        let Some(expires_at) = token.expires_at() else {
            return Ok((token, header, None, None));
        };
        if expires_at <= now {
            return Err(InvalidTokenResponse::AlreadyExpired.into());
        }
        let lifetime = expires_at - now;
        let window = self
            .config
            .refresh_window
            .min(lifetime.mul_f64(self.config.max_refresh_fraction.clamp(0.0, 1.0)));
        let margin = self.config.expiry_margin.min(lifetime / 10);
        let usable_until = expires_at - margin;
        let jitter = window.mul_f64(self.config.refresh_jitter.clamp(0.0, 1.0) * fastrand::f64());
        let refresh_at = (expires_at - window + jitter).min(usable_until);
        Ok((token, header, Some(refresh_at), Some(usable_until)))
    }

    /// "Equal jitter" exponential backoff: never zero, so failures cannot hot-loop.
    fn backoff(&self, failures: u32) -> Duration {
        let capped = exponential_backoff(
            self.config.failure_backoff,
            failures,
            self.config.max_failure_backoff,
        );
        jitter_between(capped / 2, capped)
    }
}

fn jitter_between(low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    low + (high - low).mul_f64(fastrand::f64())
}

/// One [`TokenCache`] per key (tenant, client id, scope …), created on first use.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), auth_core::TokenError> {
/// use auth_core::{KeyedTokenCache, StaticToken, TokenCache};
/// let caches = KeyedTokenCache::new(|account: &String| {
///     TokenCache::new(StaticToken::bearer(format!("key-for-{account}").into()))
/// });
/// let a = caches.get(&"a".to_string()).await?;
/// # let _ = a; Ok(()) }
/// ```
pub struct KeyedTokenCache<K> {
    caches: Mutex<std::collections::HashMap<K, TokenCache>>,
    factory: Box<dyn Fn(&K) -> TokenCache + Send + Sync>,
}

impl<K: std::hash::Hash + Eq + Clone> KeyedTokenCache<K> {
    /// A keyed cache building each key's cache with `factory`.
    pub fn new(factory: impl Fn(&K) -> TokenCache + Send + Sync + 'static) -> Self {
        Self {
            caches: Mutex::new(std::collections::HashMap::new()),
            factory: Box::new(factory),
        }
    }

    /// The cache for `key`.
    pub fn cache(&self, key: &K) -> TokenCache {
        let mut caches = self.caches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = caches.get(key) {
            return c.clone();
        }
        let c = (self.factory)(key);
        caches.insert(key.clone(), c.clone());
        c
    }

    /// A token for `key`.
    pub async fn get(&self, key: &K) -> Result<CachedToken, TokenError> {
        self.cache(key).get().await
    }
}

impl<K> fmt::Debug for KeyedTokenCache<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedTokenCache").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::BoxFuture;

    /// Hands out tokens living an hour.
    struct Hourly;

    impl TokenSource for Hourly {
        fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
            let expires = Instant::now() + Duration::from_secs(3600);
            Box::pin(async move { Ok(Token::bearer("s3cr3t", Some(expires))) })
        }
    }

    /// `valid_until` is the cached token's expiry, read without fetching.
    #[tokio::test(start_paused = true)]
    async fn valid_until_is_the_cached_tokens_expiry() {
        let cache = TokenCache::new(Hourly);
        assert_eq!(cache.valid_until(), None);
        assert_eq!(cache.fetch_count(), 0, "reading fetches nothing");
        let fetched_at = Instant::now();
        let token = cache.get().await.unwrap();
        let expected = fetched_at + Duration::from_secs(3600);
        assert_eq!(cache.valid_until(), Some(expected));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(cache.valid_until(), Some(expected));
        cache.invalidate(&token);
        assert_eq!(cache.valid_until(), None);
    }
}
