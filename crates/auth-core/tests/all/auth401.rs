use std::time::Duration;

use auth_core::{AuthLayer, ClientCredentials, Error, TokenCache, TryCloneBody};
use http::Request;
use tower::{ServiceBuilder, ServiceExt as _};

use crate::common::{Api, TokenServer, get, token_url};

fn setup() -> (TokenServer, TokenCache, Api) {
    let server = TokenServer::new(600);
    let cache = TokenCache::new(ClientCredentials::new(
        server.service(),
        token_url(None),
        "c",
        "s".into(),
    ));
    (server, cache, Api::default())
}

/// 401 → invalidate the used token, one refresh, one replay, success.
#[tokio::test(start_paused = true)]
async fn unauthorized_refreshes_once_and_retries_once() {
    let (server, cache, api) = setup();
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new(cache.clone()))
        .service(api.service());
    svc.clone().oneshot(get("http://api.test/x")).await.unwrap();
    api.revoke("tok-1");
    let resp = svc.clone().oneshot(get("http://api.test/x")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.count(), 2, "one refresh");
    let headers = api.state.lock().unwrap().auth_headers.clone();
    assert_eq!(
        headers,
        vec!["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    );
}

/// A second 401 is an error, and there is no loop.
#[tokio::test(start_paused = true)]
async fn second_unauthorized_is_an_error_without_loop() {
    let (server, cache, api) = setup();
    api.state.lock().unwrap().always_401 = true;
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new(cache))
        .service(api.service());
    let err = svc.oneshot(get("http://api.test/x")).await.unwrap_err();
    // The second answer is kept whole for the client.
    let Error::Unauthorized { response } = &err else {
        panic!("{err}")
    };
    assert_eq!(response.status(), 401);
    assert_eq!(api.calls(), 2);
    assert_eq!(server.count(), 2);
}

/// 50 concurrent requests hit 401 with the same token: one refresh, all succeed.
#[tokio::test(start_paused = true)]
async fn concurrent_unauthorized_on_same_token_cause_one_refresh() {
    let (server, cache, api) = setup();
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new(cache.clone()))
        .service(api.service());
    svc.clone().oneshot(get("http://api.test/x")).await.unwrap();
    api.revoke("tok-1");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let s = svc.clone();
        set.spawn(async move { s.oneshot(get("http://api.test/x")).await.unwrap().status() });
    }
    while let Some(s) = set.join_next().await {
        assert_eq!(s.unwrap(), 200);
    }
    assert_eq!(server.count(), 2, "initial token + exactly one refresh");
}

/// A late 401 for an old token does not invalidate the newer one.
#[tokio::test(start_paused = true)]
async fn invalidate_only_the_token_used() {
    let (server, cache, _api) = setup();
    let old = cache.get().await.unwrap();
    assert!(cache.invalidate(&old));
    let new = cache.get().await.unwrap();
    assert!(!cache.invalidate(&old), "stale invalidation is ignored");
    assert_eq!(cache.get().await.unwrap().generation(), new.generation());
    assert_eq!(server.count(), 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(server.count(), 2);
}

/// A body that cannot be replayed: the 401 is returned as is (no replay), the token is
/// invalidated so the next request gets a fresh one.
#[tokio::test(start_paused = true)]
async fn non_replayable_body_gets_its_401_back() {
    struct Stream;
    impl TryCloneBody for Stream {
        fn try_clone_body(&self) -> Option<Self> {
            None
        }
    }
    let (server, cache, api) = setup();
    api.revoke("tok-1");
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new(cache))
        .service(api.service::<Stream>());
    let resp = svc
        .clone()
        .oneshot(Request::post("http://api.test/x").body(Stream).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(api.calls(), 1);
    let resp = svc
        .oneshot(Request::post("http://api.test/x").body(Stream).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.count(), 2);
}
