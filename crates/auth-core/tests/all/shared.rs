//! Several simulated workers (one cache, limiter or grant each, as separate processes would
//! have) over one `MemorySharedAuthState`: one token per lifetime, one rate budget, refresh
//! tokens spent once. Paused tokio time throughout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::{
    BoxFuture, MemorySharedAuthState, MemoryTokenStore, RateLimitKey, RateLimiter,
    RefreshTokenGrant, SharedAuthState, SharedPair, SharedToken, SharedTokenConfig,
    SharedTokenSource, SharedTokenStore, StoreError, StoredTokens, Token, TokenCache, TokenError,
    TokenSource, TokenStore, presets,
};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::time::Instant;

use crate::common::{TokenServer, token_url};

/// A token endpoint stand-in: counts fetches, takes `latency`, tokens live `lifetime`.
struct CountingSource {
    fetches: AtomicU64,
    at: Mutex<Vec<Instant>>,
    latency: Duration,
    lifetime: Duration,
}

impl CountingSource {
    fn new(latency: Duration, lifetime: Duration) -> Arc<Self> {
        Arc::new(Self {
            fetches: AtomicU64::new(0),
            at: Mutex::new(Vec::new()),
            latency,
            lifetime,
        })
    }

    fn count(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl TokenSource for CountingSource {
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
        Box::pin(async move {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            self.at.lock().unwrap().push(Instant::now());
            tokio::time::sleep(self.latency).await;
            let expires_at = Instant::now() + self.lifetime;
            Ok(Token::bearer(format!("token-{n}"), Some(expires_at)))
        })
    }
}

fn state() -> Arc<MemorySharedAuthState> {
    Arc::new(MemorySharedAuthState::new())
}

fn worker_cache(source: &Arc<CountingSource>, state: &Arc<MemorySharedAuthState>) -> TokenCache {
    let shared: Arc<dyn SharedAuthState> = state.clone();
    TokenCache::new(SharedTokenSource::new(Arc::clone(source), shared, "t"))
}

/// Four workers asking every second for an hour: one fetch per token lifetime in all.
#[tokio::test(start_paused = true)]
async fn four_workers_fetch_one_token_per_lifetime() {
    let source = CountingSource::new(Duration::from_secs(2), Duration::from_secs(600));
    let state = state();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..4u64 {
        let cache = worker_cache(&source, &state);
        workers.spawn(async move {
            tokio::time::sleep(Duration::from_millis(250 * worker)).await;
            let mut seen = Vec::new();
            while started.elapsed() < Duration::from_secs(3600) {
                let token = cache.get().await.unwrap();
                seen.push(token.token().secret().expose_secret().to_owned());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            seen
        });
    }
    let mut tokens_seen = std::collections::BTreeSet::new();
    while let Some(seen) = workers.join_next().await {
        tokens_seen.extend(seen.unwrap());
    }
    let at = source.at.lock().unwrap().clone();
    // Refresh starts at most 60 s (+ 10 % jitter) before the 600 s expiry.
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_secs(530),
            "fetched again after {gap:?}: {at:?}"
        );
    }
    assert!(
        (6..=7).contains(&source.count()),
        "{} fetches",
        source.count()
    );
    assert_eq!(
        tokens_seen.len() as u64,
        source.count(),
        "every fetched token was shared"
    );
}

/// A worker that claimed the fetch and died never saves: its claim lapses after its ttl and
/// exactly one of the others fetches.
#[tokio::test(start_paused = true)]
async fn a_dead_claim_holder_blocks_others_only_for_its_ttl() {
    let source = CountingSource::new(Duration::from_millis(100), Duration::from_secs(600));
    let state = state();
    assert!(
        state
            .claim("t", "dead-worker", Duration::from_secs(30))
            .await
            .unwrap()
    );
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let cache = worker_cache(&source, &state);
        workers.spawn(async move { cache.get().await.map(|t| t.token().secret().clone()) });
    }
    let mut values = Vec::new();
    while let Some(r) = workers.join_next().await {
        values.push(r.unwrap().unwrap().expose_secret().to_owned());
    }
    let waited = started.elapsed();
    assert_eq!(source.count(), 1, "one fetch for the four workers");
    assert!(values.iter().all(|v| v == "token-1"), "{values:?}");
    assert!(waited >= Duration::from_secs(30), "waited {waited:?}");
    assert!(waited < Duration::from_secs(32), "waited {waited:?}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        state.claim_holder("t"),
        None,
        "the fetching worker released its claim"
    );
}

/// A source that never answers: its worker holds (and renews) the claim forever.
struct Hanging;

impl TokenSource for Hanging {
    fn fetch(&self) -> BoxFuture<'_, Result<Token, TokenError>> {
        Box::pin(std::future::pending())
    }
}

/// A live holder that never saves: the others give up after the wait limit with an error
/// naming the token, and the holder's claim is still renewed meanwhile.
#[tokio::test(start_paused = true)]
async fn waiting_for_a_live_holder_is_bounded() {
    let state = state();
    let shared: Arc<dyn SharedAuthState> = state.clone();
    let holder = SharedTokenSource::new(Hanging, Arc::clone(&shared), "norce:token");
    let holding = tokio::spawn(async move { holder.fetch().await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut config = SharedTokenConfig::default();
    config.wait_timeout = Duration::from_secs(90);
    let source = CountingSource::new(Duration::ZERO, Duration::from_secs(600));
    let waiter = SharedTokenSource::with_config(source.clone(), shared, "norce:token", config);
    let started = Instant::now();
    let error = waiter.fetch().await.unwrap_err();
    assert!(
        matches!(&error, TokenError::SharedWaitTimedOut { name, .. } if name == "norce:token"),
        "{error}"
    );
    assert!(error.to_string().contains("norce:token"), "{error}");
    assert!(started.elapsed() >= Duration::from_secs(90));
    assert_eq!(source.count(), 0);
    assert!(
        state.claim_holder("norce:token").is_some(),
        "renewed past its 30 s ttl"
    );
    holding.abort();
}

/// A 401 invalidates the token in one worker: it fetches a new one (not the rejected
/// shared one), and the other workers pick the new one up when they ask again.
#[tokio::test(start_paused = true)]
async fn an_invalidated_token_is_fetched_anew_once() {
    let source = CountingSource::new(Duration::from_millis(100), Duration::from_secs(3600));
    let state = state();
    let (a, b) = (worker_cache(&source, &state), worker_cache(&source, &state));
    let first = a.get().await.unwrap();
    assert_eq!(
        b.get().await.unwrap().token().secret().expose_secret(),
        "token-1"
    );
    assert!(a.invalidate(&first));
    let second = a.get().await.unwrap();
    assert_eq!(second.token().secret().expose_secret(), "token-2");
    let b_first = b.get().await.unwrap();
    assert!(b.invalidate(&b_first));
    assert_eq!(
        b.get().await.unwrap().token().secret().expose_secret(),
        "token-2"
    );
    assert_eq!(source.count(), 2);
}

/// Four processes' limiters on the Norce token-endpoint preset (3/min, burst 20), many
/// callers each, ten simulated minutes: at most 20 + 3 · 10 permits in all.
#[tokio::test(start_paused = true)]
async fn four_limiters_share_one_norce_token_budget() {
    let state = state();
    let key = RateLimitKey::new("norce-token:https://tenant.example");
    let granted = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let shared: Arc<dyn SharedAuthState> = state.clone();
        let limiter = RateLimiter::new(presets::norce_token_endpoint())
            .unwrap()
            .with_shared(shared)
            .unwrap();
        for _ in 0..3 {
            let (limiter, key, granted) = (limiter.clone(), key.clone(), Arc::clone(&granted));
            callers.spawn(async move {
                loop {
                    limiter.acquire(&key).await.unwrap();
                    let at = started.elapsed();
                    if at >= Duration::from_secs(600) {
                        return;
                    }
                    granted.lock().unwrap().push(at);
                }
            });
        }
    }
    while let Some(r) = callers.join_next().await {
        r.unwrap();
    }
    let granted = granted.lock().unwrap().clone();
    assert!(granted.len() <= 20 + 3 * 10, "{} permits", granted.len());
    assert!(
        granted.len() >= 45,
        "the budget is used: {} permits",
        granted.len()
    );
    let first_minute = granted
        .iter()
        .filter(|t| **t < Duration::from_secs(60))
        .count();
    assert!(
        first_minute <= 20 + 3,
        "{first_minute} permits in the first minute"
    );
}

/// Without a shared state each process has the whole budget (the default, unchanged).
#[tokio::test(start_paused = true)]
async fn limiters_without_shared_state_stay_independent() {
    let key = RateLimitKey::default();
    let (a, b) = (
        RateLimiter::new(presets::norce_token_endpoint()).unwrap(),
        RateLimiter::new(presets::norce_token_endpoint()).unwrap(),
    );
    assert!(!a.is_shared());
    for _ in 0..20 {
        assert!(a.acquire(&key).await.unwrap().is_zero());
        assert!(b.acquire(&key).await.unwrap().is_zero());
    }
}

/// A throttle answer seen by one process pauses the key for the others.
#[tokio::test(start_paused = true)]
async fn a_server_pause_reaches_every_process() {
    let state = state();
    let key = RateLimitKey::new("brightpearl:acme:");
    let limiter = || {
        let shared: Arc<dyn SharedAuthState> = state.clone();
        RateLimiter::new(presets::brightpearl())
            .unwrap()
            .with_shared(shared)
            .unwrap()
    };
    let (a, b) = (limiter(), limiter());
    let mut headers = http::HeaderMap::new();
    headers.insert("brightpearl-next-throttle-period", "5000".parse().unwrap());
    a.observe(&key, http::StatusCode::SERVICE_UNAVAILABLE, &headers);
    tokio::time::sleep(Duration::from_millis(1)).await; // the shared pause is recorded
    let started = Instant::now();
    b.acquire(&key).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(4990), "waited {waited:?}");
    assert!(waited < Duration::from_millis(5100), "waited {waited:?}");
}

/// The reference GCRA with reservation: burst 3 at 10 s a cell, then one per 10 s; a pause
/// moves the next cells behind it.
#[tokio::test(start_paused = true)]
async fn memory_state_reserves_like_gcra() {
    let state = MemorySharedAuthState::new();
    let t = Duration::from_secs(10);
    let mut waits = Vec::new();
    for _ in 0..5 {
        waits.push(state.reserve("k", t, 3).await.unwrap().as_secs());
    }
    assert_eq!(waits, [0, 0, 0, 10, 20]);
    tokio::time::sleep(Duration::from_secs(100)).await; // back to a full burst
    state.pause("k", Duration::from_secs(30)).await.unwrap();
    state.pause("k", Duration::from_secs(5)).await.unwrap(); // never shortens
    assert_eq!(
        state.paused_for("k").await.unwrap(),
        Duration::from_secs(30)
    );
    assert_eq!(
        state.reserve("k", t, 3).await.unwrap(),
        Duration::from_secs(30)
    );
    assert_eq!(state.paused_for("other").await.unwrap(), Duration::ZERO);
}

fn sent_refresh_tokens(server: &TokenServer) -> Vec<String> {
    let log = server.log();
    log.iter()
        .filter_map(|s| s.form.get("refresh_token").cloned())
        .collect()
}

/// Two workers' grants over one shared pair, both seeded with the same initial refresh
/// token, asking concurrently for an hour with 401s now and then: the (rotating, reuse-
/// rejecting) refresh endpoint never sees a refresh token twice, and every exchange works.
#[tokio::test(start_paused = true)]
async fn two_workers_never_spend_the_same_refresh_token() {
    let server = TokenServer::new(600)
        .with_refresh_token("rt-0")
        .with_latency(Duration::from_millis(300));
    let state = state();
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..2u64 {
        let seed = Arc::new(MemoryTokenStore::new(Some(StoredTokens::refresh_only(
            "rt-0".into(),
        ))));
        let shared: Arc<dyn SharedAuthState> = state.clone();
        let grant = RefreshTokenGrant::new(server.service(), token_url(None), "app", None, seed)
            .shared(shared, "brightpearl:acme");
        let cache = TokenCache::new(grant);
        workers.spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(3600) {
                let token = cache.get().await.unwrap();
                n += 1;
                if n.is_multiple_of(97 + worker) {
                    cache.invalidate(&token); // a 401
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    let sent = sent_refresh_tokens(&server);
    let mut distinct = sent.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        sent.len(),
        "a refresh token was spent twice: {sent:?}"
    );
    assert!(server.log().iter().all(|s| s.status == 200));
    // Lifetimes (600 s, refreshed ≥ 60 s early) plus the 401s, not one per worker.
    assert!(
        sent.len() >= 7 && sent.len() <= 7 + 12 + 1,
        "{} refreshes",
        sent.len()
    );
    let pair = state.load_pair("brightpearl:acme").await.unwrap().unwrap();
    assert_eq!(
        pair.refresh_token.expose_secret(),
        format!("rt-{}", sent.len())
    );
}

/// The `TokenStore` view: a save after a load is a compare-and-swap; a save without a load
/// (a new authorization) replaces whatever is there.
#[tokio::test(start_paused = true)]
async fn shared_token_store_saves_with_compare_and_swap() {
    let state: Arc<dyn SharedAuthState> = state();
    let (a, b) = (
        SharedTokenStore::new(Arc::clone(&state), "pair"),
        SharedTokenStore::new(Arc::clone(&state), "pair"),
    );
    let pair = |rt: &str| StoredTokens::refresh_only(rt.into());
    a.save(&pair("rt-0")).await.unwrap();
    assert_eq!(
        b.load()
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "rt-0"
    );
    a.load().await.unwrap();
    a.save(&pair("rt-1")).await.unwrap();
    let err = b.save(&pair("rt-x")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err}");
    assert_eq!(
        a.load()
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "rt-1"
    );
    let fresh = SharedTokenStore::new(Arc::clone(&state), "pair");
    fresh.save(&pair("rt-new")).await.unwrap();
    let loaded = state.load_pair("pair").await.unwrap().unwrap();
    assert_eq!(loaded.refresh_token.expose_secret(), "rt-new");
}

/// No new type shows a secret in `Debug`.
#[tokio::test(start_paused = true)]
async fn shared_types_never_debug_a_secret() {
    let state = state();
    let secret = "s3cr3t-value";
    let token = SharedToken::new(SecretString::from(secret), Some(Duration::from_secs(60)));
    state.save_token("t", &token).await.unwrap();
    let pair = SharedPair {
        refresh_token: secret.into(),
        access: Some(token.clone()),
    };
    assert!(state.swap_pair("p", None, &pair).await.unwrap());
    let shared: Arc<dyn SharedAuthState> = state.clone();
    let source = SharedTokenSource::new(
        auth_core::StaticToken::bearer(secret.into()),
        Arc::clone(&shared),
        "t",
    );
    let store = SharedTokenStore::new(Arc::clone(&shared), "p");
    let limiter = RateLimiter::new(presets::brightpearl())
        .unwrap()
        .with_shared(Arc::clone(&shared))
        .unwrap();
    let loaded = state.load_pair("p").await.unwrap();
    let rendered = format!(
        "{token:?} {pair:?} {state:?} {source:?} {store:?} {limiter:?} {loaded:?} {:?}",
        pair.to_stored()
    );
    assert!(!rendered.contains(secret), "{rendered}");
    assert!(rendered.contains("shared: true"), "{rendered}");
}
