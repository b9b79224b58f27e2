use std::sync::atomic::Ordering;
use std::time::Duration;

use auth_core::{
    AuthLayer, ClientCredentials, RateLimitLayer, RateLimiter, RetryConfig, RetryLayer,
    StaticHeadersLayer, TokenCache, TokenError, TraceLayer, presets,
};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt as _};

use crate::common::{Api, TokenServer, get, hyper_transport, token_url};

fn cc_cache<T: auth_core::TokenTransport>(transport: T, url: http::Uri) -> TokenCache {
    TokenCache::new(
        ClientCredentials::new(transport, url, "client", "client-secret".into())
            .scope("playground"),
    )
}

/// 1,000 concurrent requests through the full stack on a cold cache: exactly one token
/// request reaches the token server, which runs on 127.0.0.1 (real sockets, real time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_cache_1000_concurrent_requests_one_token_request_over_loopback() {
    let server = TokenServer::new(600).with_latency(Duration::from_millis(50));
    let addr = server.serve_loopback().await;
    let token_transport = ServiceBuilder::new()
        .layer(RateLimitLayer::new(
            RateLimiter::new(presets::norce_token_endpoint()).unwrap(),
        ))
        .service(hyper_transport());
    let cache = cc_cache(token_transport, token_url(Some(addr)));
    let api = Api::default();
    let stack = ServiceBuilder::new()
        .layer(TraceLayer)
        .layer(RetryLayer::new(RetryConfig::default()))
        .layer(AuthLayer::new(cache.clone()))
        .layer(
            StaticHeadersLayer::new()
                .header("applicationid", "42")
                .unwrap(),
        )
        .service(api.service());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let svc = stack.clone();
        tasks.spawn(async move {
            svc.oneshot(get(&format!("http://api.test/items/{i}")))
                .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap().status(), 200);
    }
    assert_eq!(server.count(), 1, "exactly one token request");
    assert_eq!(api.calls(), 1000);
    let log = server.log();
    assert_eq!(
        log[0].form.get("grant_type").map(String::as_str),
        Some("client_credentials")
    );
    assert_eq!(
        log[0].form.get("client_secret").map(String::as_str),
        Some("client-secret")
    );
    assert_eq!(
        log[0].form.get("scope").map(String::as_str),
        Some("playground")
    );
}

/// Two simulated hours, one request per second, 600 s tokens, 60 s refresh window.
/// Each token serves at least L − W = 540 s, so fetches ≤ 1 + ⌊T / (L − W)⌋ = 1 + ⌊7200/540⌋ = 14;
/// and at least ⌈T / L⌉ = 12 are needed.
#[tokio::test(start_paused = true)]
async fn two_hours_steady_traffic_needs_only_lifetime_bound_fetches() {
    let server = TokenServer::new(600);
    let cache = cc_cache(server.service(), token_url(None));
    let (t, l, w) = (7200u64, 600u64, 60u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(t) {
        let token = cache.get().await.unwrap();
        let exp = token.token().expires_at().unwrap();
        assert!(
            exp > Instant::now() + Duration::from_secs(1),
            "never hand out an (almost) expired token"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let fetches = server.count() as u64;
    assert!(
        fetches <= 1 + t / (l - w),
        "fetches {fetches} > bound {}",
        1 + t / (l - w)
    );
    assert!(fetches >= t.div_ceil(l), "fetches {fetches}");
}

/// A refresh failing while the token is valid: every request is served with the old token,
/// refresh attempts back off (no hot loop); after recovery the new token is used.
#[tokio::test(start_paused = true)]
async fn failing_refresh_keeps_serving_valid_token_then_recovers() {
    let server = TokenServer::new(600);
    let cache = cc_cache(server.service(), token_url(None));
    let first = cache.get().await.unwrap();
    assert_eq!(server.count(), 1);
    server.fail.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(560)).await; // inside the refresh window
    let mut served = 0;
    // 30 s of traffic at 10 requests per second while every refresh fails.
    for _ in 0..300 {
        let t = cache.get().await.expect("still-valid token must be served");
        assert_eq!(t.generation(), first.generation());
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, 300);
    let attempts = server.count() - 1;
    // Backoff 1, 2, 4, 8, 16 s (equal jitter) allows at most ~6 attempts in 30 s, not 300.
    assert!(
        (1..=7).contains(&attempts),
        "refresh attempts while failing: {attempts}"
    );
    server.fail.store(false, Ordering::SeqCst);
    let mut renewed = None;
    for _ in 0..400 {
        let t = cache.get().await.unwrap();
        if t.generation() != first.generation() {
            renewed = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let renewed = renewed.expect("recovered source must provide a new token before expiry");
    assert!(Instant::now() < first.token().expires_at().unwrap());
    assert!(renewed.token().expires_at() > first.token().expires_at());
}

/// No valid token and a failing source: the typed error is returned and remembered briefly,
/// so a tight loop of callers causes one fetch per error TTL, not one per call.
#[tokio::test(start_paused = true)]
async fn failure_without_token_is_remembered_briefly() {
    let server = TokenServer::new(600);
    server.fail.store(true, Ordering::SeqCst);
    let cache = cc_cache(server.service(), token_url(None));
    for _ in 0..100 {
        let err = cache.get().await.unwrap_err();
        assert!(
            matches!(err, TokenError::Endpoint { status, .. } if status == 500),
            "{err}"
        );
    }
    assert_eq!(server.count(), 1);
    tokio::time::sleep(Duration::from_secs(5)).await; // past the (jittered 2–4 s) error TTL
    assert!(cache.get().await.is_err());
    assert_eq!(server.count(), 2);
    server.fail.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(cache.get().await.is_ok());
}

/// Concurrent callers while the token is expiring: exactly one refresh, nobody waits.
#[tokio::test(start_paused = true)]
async fn refresh_ahead_single_flight_in_window() {
    let server = TokenServer::new(600).with_latency(Duration::from_secs(2));
    let cache = cc_cache(server.service(), token_url(None));
    let first = cache.get().await.unwrap();
    tokio::time::sleep(Duration::from_secs(570)).await;
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let c = cache.clone();
        set.spawn(async move { c.get().await.unwrap().generation() });
    }
    while let Some(g) = set.join_next().await {
        assert_eq!(
            g.unwrap(),
            first.generation(),
            "others keep the still-valid token"
        );
    }
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "no caller waited for the refresh"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(server.count(), 2, "one background refresh");
    assert_eq!(
        cache.get().await.unwrap().generation(),
        first.generation() + 1
    );
}

/// A short-lived token: the refresh window is capped at half its lifetime.
#[tokio::test(start_paused = true)]
async fn short_lifetime_caps_refresh_window() {
    let server = TokenServer::new(20);
    let cache = cc_cache(server.service(), token_url(None));
    cache.get().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    cache.get().await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(
        server.count(),
        1,
        "20 s token is not refreshed after 5 s (window capped at 10 s)"
    );
    tokio::time::sleep(Duration::from_secs(7)).await;
    cache.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(server.count(), 2);
}
