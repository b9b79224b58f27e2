use std::time::Duration;

use auth_core::{
    ClientCredentials, QuotaSpec, RateLimitError, RateLimitKey, RateLimitLayer, RateLimiter,
    TokenCache, presets,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt as _};

use crate::common::{TokenServer, get, token_url};

/// 25 clients (own caches, own credentials) cold-start against one shared Norce-preset
/// limiter; the server enforces burst 20 + 3/min and counts. Never more than 20 at once,
/// never more than 3 in any 60 s window after the burst, and no 429.
#[tokio::test(start_paused = true)]
async fn twenty_five_clients_share_token_endpoint_budget() {
    let server = TokenServer::new(3600).with_bucket(20, Duration::from_secs(20));
    let limiter = RateLimiter::new(presets::norce_token_endpoint()).unwrap();
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..25 {
        let transport = ServiceBuilder::new()
            .layer(RateLimitLayer::new(limiter.clone()))
            .service(server.service());
        let cache = TokenCache::new(ClientCredentials::new(
            transport,
            token_url(None),
            format!("client-{i}"),
            "secret".into(),
        ));
        set.spawn(async move { cache.get().await.map(|_| ()) });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().expect("every client gets a token");
    }
    let log = server.log();
    assert_eq!(log.len(), 25);
    assert!(log.iter().all(|s| s.status == 200), "no 429");
    let at_start = log.iter().filter(|s| s.at == start).count();
    assert_eq!(at_start, 20, "the burst");
    let after: Vec<Instant> = log.iter().filter(|s| s.at > start).map(|s| s.at).collect();
    for &t in &after {
        let in_window = after
            .iter()
            .filter(|&&u| u >= t && u < t + Duration::from_secs(60))
            .count();
        assert!(
            in_window <= 3,
            "{in_window} requests in the 60 s window from {:?}",
            t - start
        );
    }
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(100),
        "5 more at 20 s spacing"
    );
}

fn feedback_api(
    responses: std::sync::Arc<std::sync::Mutex<Vec<Response<Bytes>>>>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
) -> impl tower::Service<
    Request<Bytes>,
    Response = Response<Bytes>,
    Error = auth_core::Error,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: Request<Bytes>| {
        let responses = responses.clone();
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(Instant::now());
            let mut r = responses.lock().unwrap();
            let resp = if r.is_empty() {
                Response::new(Bytes::new())
            } else {
                r.remove(0)
            };
            Ok(resp)
        }
    })
}

/// A throttling 503 with a reset header pauses every caller of that key until the period
/// ends; a remaining count of 0 does the same; other keys are unaffected.
#[tokio::test(start_paused = true)]
async fn server_feedback_pauses_all_callers() {
    let limiter = RateLimiter::new(presets::brightpearl()).unwrap();
    let throttled = Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header("brightpearl-next-throttle-period", "5000")
        .header("brightpearl-requests-remaining", "0")
        .body(Bytes::new())
        .unwrap();
    let exhausted = Response::builder()
        .header("brightpearl-next-throttle-period", "2500")
        .header("brightpearl-requests-remaining", "0")
        .body(Bytes::new())
        .unwrap();
    let responses = std::sync::Arc::new(std::sync::Mutex::new(vec![
        throttled,
        Response::new(Bytes::new()),
        Response::new(Bytes::new()),
        Response::new(Bytes::new()),
        exhausted,
    ]));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let svc = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()).default_key(RateLimitKey::new("acct-1")))
        .service(feedback_api(responses, seen.clone()));
    let start = Instant::now();
    let r = svc.clone().oneshot(get("http://api.test/a")).await.unwrap();
    assert_eq!(r.status(), 503);
    // Three concurrent callers all wait for the period to end.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let s = svc.clone();
        set.spawn(async move { s.oneshot(get("http://api.test/b")).await.unwrap() });
    }
    while set.join_next().await.is_some() {}
    let times = seen.lock().unwrap().clone();
    assert!(
        times[1..]
            .iter()
            .all(|t| *t - start >= Duration::from_secs(5)),
        "{times:?}"
    );
    // A response saying remaining=0 with 2.5 s left: the next call waits that long.
    svc.clone().oneshot(get("http://api.test/c")).await.unwrap();
    let before = Instant::now();
    svc.clone().oneshot(get("http://api.test/d")).await.unwrap();
    let waited = seen.lock().unwrap().last().copied().unwrap() - before;
    assert_eq!(waited, Duration::from_millis(2500));
    // Another account is not paused.
    let t0 = Instant::now();
    limiter.acquire(&RateLimitKey::new("acct-2")).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

/// Callers wait instead of failing; with a maximum wait they get a typed error.
#[tokio::test(start_paused = true)]
async fn waits_or_fails_after_max_wait() {
    let quota = QuotaSpec::per_period(1, Duration::from_secs(60), 1);
    let limiter = RateLimiter::from_quota(quota).unwrap();
    let key = RateLimitKey::default();
    assert_eq!(limiter.acquire(&key).await.unwrap(), Duration::ZERO);
    let waited = limiter.acquire(&key).await.unwrap();
    assert_eq!(waited, Duration::from_secs(60));
    let strict = RateLimiter::from_quota(quota)
        .unwrap()
        .with_max_wait(Duration::from_secs(1))
        .unwrap();
    strict.acquire(&key).await.unwrap();
    let err = strict.acquire(&key).await.unwrap_err();
    assert!(matches!(err, RateLimitError::MaxWaitExceeded { .. }));
    // A clone shares the budget.
    let shared = limiter.clone();
    let t0 = Instant::now();
    shared.acquire(&key).await.unwrap();
    assert_eq!(t0.elapsed(), Duration::from_secs(60));
}

/// The rolling-window preset admits at most 200 requests in any 60 s window.
#[tokio::test(start_paused = true)]
async fn rolling_window_preset_never_exceeds_cap() {
    let limiter = RateLimiter::new(presets::brightpearl()).unwrap();
    let key = RateLimitKey::default();
    let start = Instant::now();
    let mut times = Vec::new();
    while start.elapsed() < Duration::from_secs(180) {
        limiter.acquire(&key).await.unwrap();
        times.push(Instant::now());
    }
    for (i, &t) in times.iter().enumerate() {
        let n = times[i..]
            .iter()
            .take_while(|&&u| u < t + Duration::from_secs(60))
            .count();
        assert!(n <= 200, "{n} in a window");
    }
}
