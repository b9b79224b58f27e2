//! State shared by several processes (workers on several machines over one database): one
//! token per lifetime for all of them, rotating refresh tokens spent exactly once, and one
//! GCRA budget per rate-limit key.
//!
//! [`SharedAuthState`] is the backend contract (the relay implements it over its SQL store;
//! [`MemorySharedAuthState`] is the in-process reference). On top of it:
//!
//! * [`SharedTokenSource`] wraps any [`TokenSource`]: a worker reads the shared token; when
//!   it is missing, nearly expired or the one it already had (the cache asks again only when
//!   its token is due or was rejected), it claims a short lease, re-reads, fetches, saves
//!   and releases; other workers poll the shared row until the token appears. A holder that
//!   dies stops renewing its claim, which lapses after its ttl, and another worker fetches.
//! * [`RateLimiter::with_shared`](crate::RateLimiter::with_shared) reserves one cell of the
//!   same quota in the backend after each local permit, so all processes together keep it.
//! * [`RefreshTokenGrant::shared`](crate::RefreshTokenGrant::shared) refreshes only under
//!   the claim, from the newest stored pair, saving with a compare-and-swap on the refresh
//!   token it spent; [`SharedTokenStore`] is the [`TokenStore`] view of a shared pair.
//!
//! Every instant that coordinates workers is the backend's clock: the trait carries only
//! durations (a token's remaining lifetime, a claim's ttl, a wait), so machines whose clocks
//! disagree still agree on expiries, leases and budgets.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use models_runtime::redact::REDACTED;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::error::{SharedStateError, StoreError, TokenError};
use crate::store::{StoredTokens, TokenStore};
use crate::token::{AuthScheme, BoxFuture, Token, TokenSource, run_detached};

/// A token as kept in the shared state: the secret value (without a scheme prefix) and how
/// long it stays valid, counted from the moment it is saved or read, on the backend's clock.
///
/// `Debug` never shows the value:
/// ```
/// use std::time::Duration;
/// use auth_core::SharedToken;
/// let t = SharedToken::new("s3cr3t".into(), Some(Duration::from_secs(60)));
/// assert!(!format!("{t:?}").contains("s3cr3t"));
/// ```
#[derive(Clone)]
pub struct SharedToken {
    value: SecretString,
    expires_in: Option<Duration>,
}

impl SharedToken {
    /// A token valid for `expires_in` from now (`None`: it never expires).
    pub fn new(value: SecretString, expires_in: Option<Duration>) -> Self {
        Self { value, expires_in }
    }

    /// The shared form of `token` (its remaining lifetime on the local clock).
    pub fn from_token(token: &Token) -> Self {
        let now = Instant::now();
        let expires_in = token.expires_at().map(|e| e.saturating_duration_since(now));
        Self::new(token.secret().clone(), expires_in)
    }

    /// The secret value.
    pub fn secret(&self) -> &SecretString {
        &self.value
    }

    /// The remaining lifetime; `None` for a token that never expires.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// As a [`Token`] of `scheme`, expiring on the local clock after [`Self::expires_in`].
    pub fn to_token(&self, scheme: AuthScheme) -> Token {
        let expires_at = self.expires_in.map(|d| Instant::now() + d);
        Token::new(self.value.clone(), scheme, expires_at)
    }

    fn is_same(&self, other: &SecretString) -> bool {
        self.value.expose_secret() == other.expose_secret()
    }
}

impl fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedToken")
            .field("value", &REDACTED)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// A rotating refresh token and the access token issued with it, as kept in the shared
/// state (the shared form of [`StoredTokens`]).
#[derive(Clone)]
pub struct SharedPair {
    /// The newest refresh token.
    pub refresh_token: SecretString,
    /// The access token issued with it, with its remaining lifetime.
    pub access: Option<SharedToken>,
}

impl SharedPair {
    /// The shared form of a stored pair (its wall-clock expiry turned into a lifetime).
    pub fn from_stored(stored: &StoredTokens) -> Self {
        let left = |at: SystemTime| at.duration_since(SystemTime::now()).unwrap_or_default();
        let access = stored
            .access_token
            .as_ref()
            .map(|access| SharedToken::new(access.clone(), stored.access_expires_at.map(left)));
        Self {
            refresh_token: stored.refresh_token.clone(),
            access,
        }
    }

    /// The stored form (remaining lifetime turned into a wall-clock expiry).
    pub fn to_stored(&self) -> StoredTokens {
        let access = self.access.as_ref();
        StoredTokens {
            refresh_token: self.refresh_token.clone(),
            access_token: access.map(|a| a.secret().clone()),
            access_expires_at: access
                .and_then(SharedToken::expires_in)
                .map(|d| SystemTime::now() + d),
        }
    }
}

impl fmt::Debug for SharedPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPair")
            .field("refresh_token", &REDACTED)
            .field("access", &self.access)
            .finish()
    }
}

/// What several processes share so that they draw from one token and one rate budget.
///
/// Every method is one operation on one row, so a SQL store implements each as a single
/// statement (an upsert with a condition, a conditional update or delete, a select). Four
/// independent families of rows, each keyed by a name chosen by the caller (e.g.
/// `norce:token:https://host:client-id:scope`): **tokens**, **claims**, **limits** and
/// **pairs**; the same name may appear in several families.
///
/// **Clock.** Every instant is the backend's own clock (`now()` of the database), never the
/// caller's: arguments and results are durations. A SQL store keeps absolute timestamps
/// (`now() + ttl`) and turns them back into durations on read.
///
/// **Secrets.** Token values are secrets: never log them, and never put them (or a query's
/// parameters) into a [`SharedStateError`].
///
/// **Errors.** A failing backend returns [`SharedStateError::Backend`]; callers retry later
/// (the token cache backs off and serves a still-valid token; the limiter retries the
/// reservation), so no method needs to retry internally.
pub trait SharedAuthState: Send + Sync + 'static {
    /// The token saved under `name`, with its remaining lifetime; `None` when there is none
    /// or it has expired (an expired row may be kept or deleted).
    fn token<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedToken>, SharedStateError>>;

    /// Saves `token` under `name`, replacing any previous one (upsert). It expires
    /// `token.expires_in()` after the backend's `now()` (never when `None`).
    fn save_token<'a>(
        &'a self,
        name: &'a str,
        token: &'a SharedToken,
    ) -> BoxFuture<'a, Result<(), SharedStateError>>;

    /// Tries to take the lease `name` for `holder` until `now() + ttl`. Succeeds (`true`)
    /// when no lease exists, when the existing one has expired (`expires_at <= now()`), or
    /// when `holder` already holds it (then its expiry is moved to `now() + ttl`: this is
    /// also how a holder renews). Otherwise changes nothing and returns `false`.
    ///
    /// SQL: `INSERT … VALUES (name, holder, now() + ttl) ON CONFLICT (name) DO UPDATE SET
    /// holder = excluded.holder, expires_at = excluded.expires_at WHERE claims.holder =
    /// excluded.holder OR claims.expires_at <= now() RETURNING 1`.
    fn claim<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedStateError>>;

    /// Ends the lease `name` if `holder` holds it; otherwise does nothing (the lease lapsed
    /// and was taken by another holder, whose lease must survive).
    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), SharedStateError>>;

    /// Reserves one cell of the GCRA quota of `key` (one cell per `interval`, bursts of at
    /// most `burst`) and returns how long the caller must wait before using it. The
    /// reservation counts at once, whether or not the caller then waits.
    ///
    /// With `T = interval`, `tau = (burst - 1) · T`, the row's theoretical arrival time
    /// `tat` (absent: `now`) and pause `paused_until` (absent: `now`, see [`Self::pause`]):
    /// `start = max(now, paused_until)`, `tat' = max(tat, start) + T` is stored, and the
    /// result is `max(start, tat' - T - tau) - now`. Without a pause that is the plain GCRA
    /// with reservation: `wait = max(0, max(tat, now) - tau - now)`.
    ///
    /// SQL: an upsert of `tat` with `RETURNING greatest(start, tat - T - tau) - now()`.
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        interval: Duration,
        burst: u32,
    ) -> BoxFuture<'a, Result<Duration, SharedStateError>>;

    /// Pauses `key` for everybody until `now() + pause`; never shortens a longer pause
    /// (`paused_until = max(paused_until, now() + pause)`). Same row as [`Self::reserve`].
    fn pause<'a>(
        &'a self,
        key: &'a str,
        pause: Duration,
    ) -> BoxFuture<'a, Result<(), SharedStateError>>;

    /// How long `key` stays paused: `max(0, paused_until - now())` (zero when never paused).
    fn paused_for<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Duration, SharedStateError>>;

    /// The refresh-token pair saved under `name` (the access token with its remaining
    /// lifetime, `None` once expired); `None` when there is no pair yet.
    fn load_pair<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedPair>, SharedStateError>>;

    /// Compare-and-swap of the pair `name`: with `expected_refresh: Some(r)` it replaces the
    /// pair only if its refresh token is still `r`; with `None` it inserts only if no pair
    /// exists. Returns whether it wrote (`false`: another worker saved a newer pair first).
    ///
    /// SQL: `UPDATE pairs SET … WHERE name = $1 AND refresh_token = $2` (rows affected = 1),
    /// or `INSERT … ON CONFLICT DO NOTHING` for `None`.
    fn swap_pair<'a>(
        &'a self,
        name: &'a str,
        expected_refresh: Option<&'a SecretString>,
        new: &'a SharedPair,
    ) -> BoxFuture<'a, Result<bool, SharedStateError>>;
}

/// A state behind another `Arc` is the same state (a distinct handle: what tests use to
/// stand for another process over the same database).
impl<T: SharedAuthState + ?Sized> SharedAuthState for Arc<T> {
    fn token<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedToken>, SharedStateError>> {
        (**self).token(name)
    }
    fn save_token<'a>(
        &'a self,
        name: &'a str,
        token: &'a SharedToken,
    ) -> BoxFuture<'a, Result<(), SharedStateError>> {
        (**self).save_token(name, token)
    }
    fn claim<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedStateError>> {
        (**self).claim(name, holder, ttl)
    }
    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), SharedStateError>> {
        (**self).release(name, holder)
    }
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        interval: Duration,
        burst: u32,
    ) -> BoxFuture<'a, Result<Duration, SharedStateError>> {
        (**self).reserve(key, interval, burst)
    }
    fn pause<'a>(
        &'a self,
        key: &'a str,
        pause: Duration,
    ) -> BoxFuture<'a, Result<(), SharedStateError>> {
        (**self).pause(key, pause)
    }
    fn paused_for<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Duration, SharedStateError>> {
        (**self).paused_for(key)
    }
    fn load_pair<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedPair>, SharedStateError>> {
        (**self).load_pair(name)
    }
    fn swap_pair<'a>(
        &'a self,
        name: &'a str,
        expected_refresh: Option<&'a SecretString>,
        new: &'a SharedPair,
    ) -> BoxFuture<'a, Result<bool, SharedStateError>> {
        (**self).swap_pair(name, expected_refresh, new)
    }
}

/// A unique holder id for claims: the process id and a random part, so two processes (or
/// two sources of one process) never take each other's lease for their own.
pub fn new_holder_id() -> String {
    format!("pid{}-{:016x}", std::process::id(), fastrand::u64(..))
}

/// How a worker waits for another worker's fetch. Used by [`SharedTokenSource`] and
/// [`RefreshTokenGrant::shared`](crate::RefreshTokenGrant::shared).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SharedTokenConfig {
    /// How long a claim lasts without renewal (default 30 s): a killed holder blocks the
    /// others at most this long. A live holder renews it every third of it while fetching.
    pub lease_ttl: Duration,
    /// How often a waiting worker reads the shared row again (default 250 ms, plus up to
    /// half of it as jitter).
    pub poll_interval: Duration,
    /// How long a worker waits for a live holder before failing with
    /// [`TokenError::SharedWaitTimedOut`] (default 120 s).
    pub wait_timeout: Duration,
    /// A shared token with less lifetime left than this is fetched anew instead of used
    /// (default 30 s).
    pub min_remaining: Duration,
}

impl Default for SharedTokenConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_millis(250),
            wait_timeout: Duration::from_secs(120),
            min_remaining: Duration::from_secs(30),
        }
    }
}

/// One worker's side of the claim protocol on one name.
#[derive(Clone)]
pub(crate) struct Coordinator {
    pub(crate) state: Arc<dyn SharedAuthState>,
    pub(crate) name: Arc<str>,
    pub(crate) holder: Arc<str>,
    pub(crate) config: SharedTokenConfig,
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("name", &self.name)
            .field("holder", &self.holder)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Releases a claim when the work under it is dropped (a cancelled or timed-out fetch), so
/// the others need not wait for the lease to lapse.
struct ReleaseOnDrop {
    coordinator: Option<Coordinator>,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some(c) = self.coordinator.take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(error) = c.state.release(&c.name, &c.holder).await {
                    tracing::warn!(target: "auth_core::shared", name = %c.name, %error, "cannot release the claim; it lapses after its ttl");
                }
            });
        }
    }
}

impl Coordinator {
    pub(crate) fn new(
        state: Arc<dyn SharedAuthState>,
        name: impl Into<Arc<str>>,
        config: SharedTokenConfig,
    ) -> Self {
        Self {
            state,
            name: name.into(),
            holder: new_holder_id().into(),
            config,
        }
    }

    /// The protocol: `read` the shared row until it gives a value; when it does not, claim
    /// the lease and run `work` (which re-reads first) under it; when the lease is taken,
    /// poll until the holder saves or its claim lapses, at most `wait_timeout`.
    pub(crate) async fn once_per_lifetime<T, R, RF, W, WF>(
        &self,
        mut read: R,
        work: W,
    ) -> Result<T, TokenError>
    where
        R: FnMut() -> RF,
        RF: Future<Output = Result<Option<T>, TokenError>>,
        W: FnOnce() -> WF,
        WF: Future<Output = Result<T, TokenError>>,
    {
        let started = Instant::now();
        let mut work = Some(work);
        loop {
            if let Some(value) = read().await? {
                return Ok(value);
            }
            let ttl = self.config.lease_ttl;
            if self.state.claim(&self.name, &self.holder, ttl).await? {
                let Some(work) = work.take() else {
                    return Err(TokenError::Cancelled);
                };
                tracing::debug!(target: "auth_core::shared", name = %self.name, "claimed: fetching for every worker");
                return self.hold(work()).await;
            }
            let waited = Instant::now() - started;
            if waited >= self.config.wait_timeout {
                let name = self.name.to_string();
                return Err(TokenError::SharedWaitTimedOut { name, waited });
            }
            let poll = self.config.poll_interval;
            let poll = poll + poll.mul_f64(fastrand::f64() / 2.0);
            tokio::time::sleep(poll.min(self.config.wait_timeout - waited)).await;
        }
    }

    /// Runs `work` while holding the claim: renewed every third of its ttl, released after
    /// (also when `work` is dropped).
    pub(crate) async fn hold<T>(&self, work: impl Future<Output = T>) -> T {
        let mut guard = ReleaseOnDrop {
            coordinator: Some(self.clone()),
        };
        let renew = async {
            let every = (self.config.lease_ttl / 3).max(Duration::from_millis(1));
            loop {
                tokio::time::sleep(every).await;
                let ttl = self.config.lease_ttl;
                match self.state.claim(&self.name, &self.holder, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(target: "auth_core::shared", name = %self.name, "claim lost while fetching (it lapsed and another worker took it)");
                    }
                    Err(error) => {
                        tracing::warn!(target: "auth_core::shared", name = %self.name, %error, "cannot renew the claim");
                    }
                }
            }
        };
        let out = tokio::select! {
            out = work => out,
            () = renew => unreachable_renewal(),
        };
        guard.coordinator = None;
        if let Err(error) = self.state.release(&self.name, &self.holder).await {
            tracing::warn!(target: "auth_core::shared", name = %self.name, %error, "cannot release the claim; it lapses after its ttl");
        }
        out
    }
}

/// The renewal loop never ends; `select!` needs a value for its branch.
fn unreachable_renewal<T>() -> T {
    unreachable!("the claim renewal loop never completes")
}

/// Wraps a [`TokenSource`] so that all workers sharing `state` fetch one token per lifetime
/// (the protocol is in the [module documentation](self)). Use one per
/// [`TokenCache`](crate::TokenCache), as each worker has its own cache.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), auth_core::TokenError> {
/// use std::sync::Arc;
/// use auth_core::{MemorySharedAuthState, SharedTokenSource, StaticToken, TokenCache};
/// let state = Arc::new(MemorySharedAuthState::new());
/// let source = StaticToken::bearer("key".into());
/// let cache = TokenCache::new(SharedTokenSource::new(source, state, "demo:token"));
/// assert!(cache.get().await?.header_value().is_sensitive());
/// # Ok(()) }
/// ```
pub struct SharedTokenSource<S> {
    inner: Arc<SharedSourceInner<S>>,
}

struct SharedSourceInner<S> {
    source: S,
    coordinator: Coordinator,
    scheme: AuthScheme,
    /// The token this worker handed out last: asked again, the cache wants a different one.
    last: Mutex<Option<SecretString>>,
}

impl<S: TokenSource> SharedTokenSource<S> {
    /// Shares `source`'s tokens under `name` in `state` (bearer tokens, default config).
    pub fn new(source: S, state: Arc<dyn SharedAuthState>, name: impl Into<Arc<str>>) -> Self {
        Self::with_config(source, state, name, SharedTokenConfig::default())
    }

    /// With an explicit configuration.
    pub fn with_config(
        source: S,
        state: Arc<dyn SharedAuthState>,
        name: impl Into<Arc<str>>,
        config: SharedTokenConfig,
    ) -> Self {
        Self {
            inner: Arc::new(SharedSourceInner {
                source,
                coordinator: Coordinator::new(state, name, config),
                scheme: AuthScheme::Bearer,
                last: Mutex::new(None),
            }),
        }
    }

    /// The scheme of tokens read from the shared state (default bearer). Call before
    /// sharing the source.
    pub fn scheme(mut self, scheme: AuthScheme) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.scheme = scheme;
        }
        self
    }

    /// The name of the shared row.
    pub fn name(&self) -> &str {
        &self.inner.coordinator.name
    }
}

impl<S> fmt::Debug for SharedTokenSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTokenSource")
            .field("coordinator", &self.inner.coordinator)
            .field("scheme", &self.inner.scheme)
            .finish_non_exhaustive()
    }
}

impl<S: TokenSource> SharedSourceInner<S> {
    fn last(&self) -> std::sync::MutexGuard<'_, Option<SecretString>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The shared token, if it can be handed out: present, with enough lifetime left, and
    /// not the one this worker already had.
    async fn read(&self) -> Result<Option<Token>, TokenError> {
        let c = &self.coordinator;
        let Some(shared) = c.state.token(&c.name).await? else {
            return Ok(None);
        };
        let enough = shared
            .expires_in()
            .is_none_or(|left| left > c.config.min_remaining);
        let mut last = self.last();
        if !enough || last.as_ref().is_some_and(|l| shared.is_same(l)) {
            return Ok(None);
        }
        *last = Some(shared.secret().clone());
        Ok(Some(shared.to_token(self.scheme)))
    }

    async fn fetch_and_save(&self) -> Result<Token, TokenError> {
        if let Some(token) = self.read().await? {
            return Ok(token); // saved by another worker between our read and our claim
        }
        let token = self.source.fetch().await?;
        *self.last() = Some(token.secret().clone());
        let c = &self.coordinator;
        if let Err(error) = c
            .state
            .save_token(&c.name, &SharedToken::from_token(&token))
            .await
        {
            // The token is good: use it; the others fetch their own once the claim is gone.
            tracing::warn!(target: "auth_core::shared", name = %c.name, %error, "cannot save the shared token");
        }
        Ok(token)
    }

    async fn fetch(self: Arc<Self>) -> Result<Token, TokenError> {
        let c = &self.coordinator;
        c.once_per_lifetime(|| self.read(), || self.fetch_and_save())
            .await
    }
}

impl<S: TokenSource> TokenSource for SharedTokenSource<S> {
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
        let inner = Arc::clone(&self.inner);
        // In its own task: a caller giving up must not abandon a claimed fetch half-way.
        Box::pin(run_detached(inner.fetch()))
    }
}

/// The [`TokenStore`] view of the shared pair `name`, with compare-and-swap saves: `save`
/// replaces the pair only if it still holds the refresh token of this store's last `load`
/// (else [`StoreError::Conflict`]); a store that has not loaded yet replaces whatever is
/// there (an authorization-code exchange starts a new pair).
pub struct SharedTokenStore {
    state: Arc<dyn SharedAuthState>,
    name: Arc<str>,
    /// `Some(x)`: the last load saw refresh token `x` (`None` inside: no pair).
    loaded: Mutex<Option<Option<SecretString>>>,
}

impl SharedTokenStore {
    /// The store of the pair `name` in `state`.
    pub fn new(state: Arc<dyn SharedAuthState>, name: impl Into<Arc<str>>) -> Self {
        Self {
            state,
            name: name.into(),
            loaded: Mutex::new(None),
        }
    }

    /// The name of the shared pair.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn loaded(&self) -> std::sync::MutexGuard<'_, Option<Option<SecretString>>> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for SharedTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTokenStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TokenStore for SharedTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, StoreError>> {
        Box::pin(async move {
            let pair = self.state.load_pair(&self.name).await?;
            *self.loaded() = Some(pair.as_ref().map(|p| p.refresh_token.clone()));
            Ok(pair.as_ref().map(SharedPair::to_stored))
        })
    }

    fn save<'a>(&'a self, tokens: &'a StoredTokens) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let new = SharedPair::from_stored(tokens);
            let expected = self.loaded().clone();
            let swapped = match expected {
                Some(expected) => {
                    let swapped = self.state.swap_pair(&self.name, expected.as_ref(), &new);
                    swapped.await?
                }
                // Never loaded: overwrite, whatever the current pair (a few tries if others
                // are writing at the same moment).
                None => {
                    let mut swapped = false;
                    for _ in 0..5 {
                        let current = self.state.load_pair(&self.name).await?;
                        let expected = current.as_ref().map(|p| &p.refresh_token);
                        if self.state.swap_pair(&self.name, expected, &new).await? {
                            swapped = true;
                            break;
                        }
                    }
                    swapped
                }
            };
            if !swapped {
                return Err(StoreError::Conflict);
            }
            *self.loaded() = Some(Some(tokens.refresh_token.clone()));
            Ok(())
        })
    }
}

/// A claim row.
struct Claim {
    holder: String,
    expires_at: Instant,
}

/// A limiter row.
#[derive(Default)]
struct Limit {
    tat: Option<Instant>,
    paused_until: Option<Instant>,
}

/// A token row: the value and when it expires (never: `None`).
type TokenRow = (SecretString, Option<Instant>);

#[derive(Default)]
struct MemoryRows {
    tokens: HashMap<String, TokenRow>,
    claims: HashMap<String, Claim>,
    limits: HashMap<String, Limit>,
    /// Refresh token and access-token row.
    pairs: HashMap<String, (SecretString, Option<TokenRow>)>,
}

/// [`SharedAuthState`] in one process (maps under a mutex, tokio's clock): the reference
/// semantics of the trait, and the backend of tests that simulate several workers with
/// several caches and limiters in one process. `Debug` shows only how many rows it holds.
#[derive(Default)]
pub struct MemorySharedAuthState {
    rows: Mutex<MemoryRows>,
}

impl MemorySharedAuthState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, MemoryRows> {
        // Every update is a few plain assignments: a poisoned lock is still consistent.
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The holder of the live claim `name`, if any (for tests and diagnostics).
    pub fn claim_holder(&self, name: &str) -> Option<String> {
        let now = Instant::now();
        let rows = self.rows();
        let claim = rows.claims.get(name).filter(|c| c.expires_at > now);
        claim.map(|c| c.holder.clone())
    }
}

impl fmt::Debug for MemorySharedAuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = self.rows();
        f.debug_struct("MemorySharedAuthState")
            .field("tokens", &rows.tokens.len())
            .field("claims", &rows.claims.len())
            .field("limits", &rows.limits.len())
            .field("pairs", &rows.pairs.len())
            .finish()
    }
}

/// What is left of a lifetime ending at `at` (`None`: never ends); `None` overall once over.
fn left(at: Option<Instant>, now: Instant) -> Option<Option<Duration>> {
    match at {
        None => Some(None),
        Some(at) if at > now => Some(Some(at - now)),
        Some(_) => None,
    }
}

/// An immediately ready boxed future.
fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl SharedAuthState for MemorySharedAuthState {
    fn token<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedToken>, SharedStateError>> {
        let now = Instant::now();
        let rows = self.rows();
        let token = rows.tokens.get(name).and_then(|(value, at)| {
            left(*at, now).map(|expires_in| SharedToken::new(value.clone(), expires_in))
        });
        ready(Ok(token))
    }

    fn save_token<'a>(
        &'a self,
        name: &'a str,
        token: &'a SharedToken,
    ) -> BoxFuture<'a, Result<(), SharedStateError>> {
        let expires_at = token.expires_in().map(|d| Instant::now() + d);
        let row = (token.secret().clone(), expires_at);
        self.rows().tokens.insert(name.to_owned(), row);
        ready(Ok(()))
    }

    fn claim<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedStateError>> {
        let now = Instant::now();
        let mut rows = self.rows();
        let free = rows
            .claims
            .get(name)
            .is_none_or(|c| c.holder == holder || c.expires_at <= now);
        if free {
            let claim = Claim {
                holder: holder.to_owned(),
                expires_at: now + ttl,
            };
            rows.claims.insert(name.to_owned(), claim);
        }
        ready(Ok(free))
    }

    fn release<'a>(
        &'a self,
        name: &'a str,
        holder: &'a str,
    ) -> BoxFuture<'a, Result<(), SharedStateError>> {
        let mut rows = self.rows();
        if rows.claims.get(name).is_some_and(|c| c.holder == holder) {
            rows.claims.remove(name);
        }
        ready(Ok(()))
    }

    fn reserve<'a>(
        &'a self,
        key: &'a str,
        interval: Duration,
        burst: u32,
    ) -> BoxFuture<'a, Result<Duration, SharedStateError>> {
        let now = Instant::now();
        let mut rows = self.rows();
        let limit = rows.limits.entry(key.to_owned()).or_default();
        let start = limit.paused_until.map_or(now, |p| p.max(now));
        let tat = limit.tat.map_or(start, |t| t.max(start));
        let tau = interval * burst.saturating_sub(1);
        let allowed_at = start.max(tat.checked_sub(tau).unwrap_or(start));
        limit.tat = Some(tat + interval);
        ready(Ok(allowed_at - now))
    }

    fn pause<'a>(
        &'a self,
        key: &'a str,
        pause: Duration,
    ) -> BoxFuture<'a, Result<(), SharedStateError>> {
        let until = Instant::now() + pause;
        let mut rows = self.rows();
        let limit = rows.limits.entry(key.to_owned()).or_default();
        limit.paused_until = Some(limit.paused_until.map_or(until, |p| p.max(until)));
        ready(Ok(()))
    }

    fn paused_for<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Duration, SharedStateError>> {
        let now = Instant::now();
        let rows = self.rows();
        let until = rows.limits.get(key).and_then(|l| l.paused_until);
        ready(Ok(
            until.map_or(Duration::ZERO, |u| u.saturating_duration_since(now))
        ))
    }

    fn load_pair<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SharedPair>, SharedStateError>> {
        let now = Instant::now();
        let rows = self.rows();
        let pair = rows.pairs.get(name).map(|(refresh, access)| SharedPair {
            refresh_token: refresh.clone(),
            access: access.as_ref().and_then(|(value, at)| {
                left(*at, now).map(|expires_in| SharedToken::new(value.clone(), expires_in))
            }),
        });
        ready(Ok(pair))
    }

    fn swap_pair<'a>(
        &'a self,
        name: &'a str,
        expected_refresh: Option<&'a SecretString>,
        new: &'a SharedPair,
    ) -> BoxFuture<'a, Result<bool, SharedStateError>> {
        let now = Instant::now();
        let mut rows = self.rows();
        let current = rows.pairs.get(name).map(|(refresh, _)| refresh);
        let matches = match (current, expected_refresh) {
            (None, None) => true,
            (Some(current), Some(expected)) => current.expose_secret() == expected.expose_secret(),
            _ => false,
        };
        if matches {
            let access = new.access.as_ref().map(|a| {
                let expires_at = a.expires_in().map(|d| now + d);
                (a.secret().clone(), expires_at)
            });
            let row = (new.refresh_token.clone(), access);
            rows.pairs.insert(name.to_owned(), row);
        }
        ready(Ok(matches))
    }
}
