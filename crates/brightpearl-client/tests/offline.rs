//! The client's own rules through its public API and an in-memory transport (no network): the
//! health record across budgets and the OAuth session shared by workers. The operations against
//! the sandbox are in `tests/tests/brightpearl_client.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::{MemorySharedAuthState, SharedAuthState};
use brightpearl_client::{Budget, Client};
use bytes::Bytes;
use http::Method;

/// Every budget's calls show in one record, with the account's rate budget as the last
/// answer told it and the client's own classification of the last error.
#[tokio::test]
async fn health_covers_every_budget_and_the_rate_budget() {
    use std::collections::VecDeque;

    use auth_core::Priority;
    use client_core::ErrorKind;

    let answers: &[(u16, &str, &str)] = &[
        (200, "183", "{}"),
        (200, "182", r#"{"response":[]}"#),
        (
            500,
            "181",
            r#"{"errors":[{"code":"CMNC-018","message":"s3cr3t-body"}]}"#,
        ),
    ];
    let answers = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<_>>()));
    let transport = tower::service_fn(move |_request: http::Request<Bytes>| {
        let (status, remaining, body) = answers.lock().unwrap().pop_front().unwrap();
        let response = http::Response::builder()
            .status(status)
            .header("brightpearl-requests-remaining", remaining)
            .header("ruid", format!("ruid-{remaining}"))
            .body(Bytes::from_static(body.as_bytes()));
        std::future::ready(Ok::<_, auth_core::Error>(response.unwrap()))
    });
    let client = Client::builder()
        .account("healthacct")
        .app_ref("healthacct_relay")
        .staff_token("staff-s3cr3t".into())
        .base_url("http://127.0.0.1:59102")
        .transport(transport)
        .build()
        .unwrap();
    assert_eq!(client.health().requests, 0);
    client
        .send_raw(Method::GET, "/order-service/order/1", &[], None)
        .await
        .unwrap();
    let stock = client.with_budget(Budget::new(Priority::Background, "stock"));
    assert!(stock.products(&[1]).await.unwrap().is_empty());
    let err = stock.products(&[2]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err:?}");

    let health = client.health();
    assert_eq!(health.requests, 3);
    assert!(health.last_ok.is_some());
    assert_eq!((health.last_429, health.last_503), (None, None));
    let last = health.last_error.clone().unwrap();
    assert_eq!(
        (
            last.kind,
            last.operation,
            last.status,
            last.request_id.as_deref()
        ),
        (
            ErrorKind::Permanent,
            "GetProducts",
            Some(500),
            Some("ruid-181")
        )
    );
    assert_eq!(
        health.token_valid_until, None,
        "a staff token does not expire"
    );
    let budget = health.budget_left.clone().unwrap();
    assert_eq!(budget.server_remaining, Some(181));
    assert_eq!(budget.server_limit, Some((200, Duration::from_secs(60))));
    assert_eq!(budget.burst, 100);
    // Three permits taken; one comes back every 600 ms.
    assert!((97..=100).contains(&budget.permits_now), "{budget:?}");
    assert_eq!(stock.health().requests, 3, "one record for every budget");
    let shown = format!("{health:?} {}", serde_json::to_string(&health).unwrap());
    assert!(!shown.contains("s3cr3t"), "{shown}");
}

/// Two workers (each its own handle on one shared state, as separate processes would
/// have), both seeded with the same initial refresh token: one refresh for both, the
/// second learns `api_domain` from the shared session, and the pair's refresh token is
/// the rotated one.
#[tokio::test]
async fn two_workers_share_one_refresh_and_the_session() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&seen);
    let transport = tower::service_fn(move |request: http::Request<Bytes>| {
        let path = request.uri().path().to_owned();
        log.lock().unwrap().push(format!(
            "{} {}",
            request.uri().authority().map_or("", |a| a.as_str()),
            path
        ));
        let body = match path.as_str() {
            "/token/acme" => {
                let form = String::from_utf8_lossy(request.body()).into_owned();
                assert!(form.contains("refresh_token=rt-0"), "{form}");
                r#"{"access_token":"s3cr3t-at-1","refresh_token":"rt-1","expires_in":3600,"api_domain":"127.0.0.1:7"}"#
            }
            _ => r#"{"response":[]}"#,
        };
        std::future::ready(Ok::<_, auth_core::Error>(http::Response::new(
            Bytes::from_static(body.as_bytes()),
        )))
    });
    let database = Arc::new(MemorySharedAuthState::new());
    let worker = || {
        let state: Arc<dyn SharedAuthState> = Arc::new(Arc::clone(&database));
        Client::builder()
            .account("acme")
            .app_ref("acme_relay")
            .dev_ref("dev")
            .oauth_url("http://127.0.0.1:8")
            .refresh_token("rt-0".into())
            .transport(transport.clone())
            .shared_auth_state(state)
            .build()
            .unwrap()
    };
    let (a, b) = (worker(), worker());
    let path = "/product-service/product/1";
    a.send_raw(Method::GET, path, &[], None).await.unwrap();
    for _ in 0..10 {
        tokio::task::yield_now().await; // the session is shared in the background
    }
    b.send_raw(Method::GET, path, &[], None).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let refreshes = seen.iter().filter(|s| s.ends_with("/token/acme")).count();
    assert_eq!(refreshes, 1, "{seen:?}");
    let api = format!("127.0.0.1:7 /public-api/acme{path}");
    assert_eq!(seen.iter().filter(|s| **s == api).count(), 2, "{seen:?}");
    let pair = database
        .load_pair("brightpearl:oauth:acme:acme_relay")
        .await;
    use auth_core::ExposeSecret as _;
    assert_eq!(pair.unwrap().unwrap().refresh_token.expose_secret(), "rt-1");
    assert!(a.rate_limiter().0.is_shared());
    assert!(!format!("{a:?} {b:?} {database:?}").contains("s3cr3t"));
}
