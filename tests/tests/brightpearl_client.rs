//! brightpearl-client against the in-process sandbox (127.0.0.1 only).
//!
//! Every test uses its own account code, so the process-wide limiter registry (one budget per
//! account and developer) never couples two tests.

mod common;

use std::sync::Arc;
use std::time::Duration;

use auth_core::{ExposeSecret, MemoryTokenStore, SecretString, StoredTokens, TokenStore};
use brightpearl_client::models::contact::operations::ContactApi as _;
use brightpearl_client::models::contact::{
    ContactCommunication, ContactEmail, ContactEmails, ContactRequest, PostalAddressRequest,
};
use brightpearl_client::models::integration::operations::IntegrationApi as _;
use brightpearl_client::models::integration::{
    MultiMessage, MultiMessageOnFail, MultiMessageProcessingMode, MultiMessageRequest,
    WebhookEventName, WebhookHttpMethod, WebhookRequest, WebhookSimulateRequest,
};
use brightpearl_client::models::order::operations::OrderApi as _;
use brightpearl_client::models::order::{
    OrderNote, OrderStatusUpdate, SalesOrderCustomer, SalesOrderRequest, SalesOrderRowRequest,
};
use brightpearl_client::models::product::operations::ProductApi as _;
use brightpearl_client::models::warehouse::operations::WarehouseApi as _;
use brightpearl_client::models::{contact, integration, order, product, warehouse};
use brightpearl_client::{
    BundleAvailabilityMode, Client, ClientBuilder, Error, MAX_SIMULATE_IDS, NothingFound as _,
    OrderRow, ProductRow, SearchQuery, SearchResource, SortDirection,
};
use bytes::Bytes;
use client_core::{ErrorKind, Failure, Settings};
use common::Recorder;
use futures::StreamExt as _;
use sandbox::{FaultRule, Sandbox, SandboxConfig};
use tower::Service;

const REDIRECT: &str = "https://relay.example/brightpearl/callback";

// ---------------------------------------------------------------- helpers

/// The account of the generated paths.
fn acct(client: &Client) -> String {
    client.account().to_owned()
}

/// `POST /contact-service/postal-address` with the generated method: the new address id.
async fn create_address(client: &Client, address: &PostalAddressRequest) -> Result<i64, Error> {
    let path = contact::CreatePostalAddressPath {
        account: acct(client),
    };
    Ok(client.create_postal_address(&path, address).await?.response)
}

/// `POST /order-service/sales-order` with the generated method: the new order id.
async fn create_order(client: &Client, order: &SalesOrderRequest) -> Result<i64, Error> {
    let path = order::CreateSalesOrderPath {
        account: acct(client),
    };
    Ok(client.create_sales_order(&path, order).await?.response)
}

/// `PUT /order-service/order/{id}/status` with the generated method.
async fn update_status(client: &Client, id: i64, update: &OrderStatusUpdate) -> Result<(), Error> {
    let path = order::UpdateOrderStatusPath {
        account: acct(client),
        order_id: id,
    };
    client.update_order_status(&path, update).await.map(drop)
}

/// `POST /integration-service/webhook` with the generated method: the new webhook id.
async fn create_hook(client: &Client, request: &WebhookRequest) -> Result<i64, Error> {
    let path = integration::CreateWebhookPath {
        account: acct(client),
    };
    Ok(client.create_webhook(&path, request).await?.response)
}

/// `PUT /integration-service/webhook/{id}` with the generated method.
async fn update_hook(client: &Client, id: i64, request: &WebhookRequest) -> Result<(), Error> {
    let path = integration::UpdateWebhookPath {
        account: acct(client),
        webhook_id: id,
    };
    client.update_webhook(&path, request).await.map(drop)
}

/// `GET /integration-service/webhook` with the generated method ("nothing found" is none).
async fn list_hooks(client: &Client) -> Result<Vec<integration::Webhook>, Error> {
    let path = integration::ListWebhooksPath {
        account: acct(client),
    };
    Ok(client.list_webhooks(&path).await.or_empty()?.response)
}

/// `GET /product-service/price-list` with the generated method ("nothing found" is none).
async fn price_lists(client: &Client) -> Result<Vec<product::PriceList>, Error> {
    let path = product::ListPriceListsPath {
        account: acct(client),
    };
    Ok(client.list_price_lists(&path).await.or_empty()?.response)
}

/// A recorder with the request timeout of these tests.
fn recorder() -> Recorder {
    Recorder::new(Duration::from_secs(20))
}

async fn start(account: &str, tweak: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    let mut config = SandboxConfig {
        start_time: Some("2026-03-02T08:00:00Z".parse().unwrap()),
        ..SandboxConfig::default()
    };
    config.brightpearl.account = account.to_owned();
    tweak(&mut config);
    Sandbox::start(config).await.expect("sandbox starts")
}

/// A private-app (staff token) client.
fn staff_client(sandbox: &Sandbox, recorder: &Recorder) -> Client {
    let c = sandbox.credentials().brightpearl;
    Client::builder()
        .account(c.account)
        .app_ref(c.app_ref)
        .staff_token(SecretString::from(c.staff_token))
        .base_url(c.base_url)
        .transport(recorder.clone())
        .build()
        .unwrap()
}

/// An OAuth builder without a token store.
fn oauth_builder(sandbox: &Sandbox, recorder: &Recorder) -> ClientBuilder {
    let c = sandbox.credentials().brightpearl;
    Client::builder()
        .account(c.account)
        .app_ref(c.app_ref)
        .dev_ref(c.dev_ref)
        .client_id(c.client_id)
        .client_secret(SecretString::from(c.client_secret))
        .oauth_url(c.oauth_url)
        .transport(recorder.clone())
}

/// Runs the browser step: the sandbox approves at once and redirects with `code` and `state`.
async fn authorize(client: &Client, state: &str) -> String {
    let url = client.authorize_url(REDIRECT, state).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let location = reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(
        pairs.get("state").map(String::as_str),
        Some(state),
        "state is echoed"
    );
    pairs["code"].clone()
}

/// An OAuth client that went through authorize + code exchange, with a memory store.
async fn oauth_client(sandbox: &Sandbox, recorder: &Recorder) -> Client {
    let client = oauth_builder(sandbox, recorder)
        .token_store(Arc::new(MemoryTokenStore::default()))
        .build()
        .unwrap();
    let code = authorize(&client, "st").await;
    client.exchange_code(&code, REDIRECT).await.unwrap();
    client
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bp-client-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn api(sandbox: &Sandbox, path: &str) -> String {
    format!(
        "/public-api/{}{path}",
        sandbox.credentials().brightpearl.account
    )
}

async fn admin_post(sandbox: &Sandbox, path: &str, body: serde_json::Value) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(format!("{}/_sandbox/brightpearl{path}", sandbox.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

fn sales_order(customer: i64, external_ref: &str) -> SalesOrderRequest {
    SalesOrderRequest {
        customer: SalesOrderCustomer {
            id: customer,
            ..Default::default()
        },
        external_ref: Some(external_ref.into()),
        placed_on: Some("2026-03-02T08:00:00.000Z".parse().unwrap()),
        installed_integration_instance_id: Some(13),
        rows: vec![SalesOrderRowRequest {
            product_id: Some(1001),
            quantity: "2".parse().unwrap(),
            tax_code: "T25".into(),
            net: Some("200".parse().unwrap()),
            tax: Some("50".parse().unwrap()),
            external_ref: Some("line-1".into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

// ---------------------------------------------------------------- settings

#[test]
fn settings_errors_name_the_setting_and_hide_secrets() {
    let err = ClientBuilder::from_settings(&Settings::from_pairs([
        ("BRIGHTPEARL_ACCOUNT", "acme"),
        ("BRIGHTPEARL_STAFF_TOKEN", "s3cr3t"),
    ]))
    .unwrap()
    .build()
    .unwrap_err();
    assert!(err.to_string().contains("BRIGHTPEARL_APP_REF"), "{err}");
    assert!(err.hint().contains("BRIGHTPEARL_APP_REF"), "{}", err.hint());

    let base = [
        ("BRIGHTPEARL_ACCOUNT", "acme"),
        ("BRIGHTPEARL_APP_REF", "acme_relay"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let pairs: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
        ClientBuilder::from_settings(&Settings::from_pairs(pairs))
            .unwrap()
            .build()
    };
    let err = with(&[
        ("BRIGHTPEARL_STAFF_TOKEN", "s3cr3t"),
        ("BRIGHTPEARL_BASE_URL", "http://euw1.example.com"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("BRIGHTPEARL_BASE_URL"), "{err}");
    let err = with(&[("BRIGHTPEARL_STAFF_TOKEN", "s3cr3t")]).unwrap_err();
    assert!(err.to_string().contains("BRIGHTPEARL_BASE_URL"), "{err}");
    let err = with(&[("BRIGHTPEARL_CLIENT_SECRET", "s3cr3t")]).unwrap_err();
    assert!(err.to_string().contains("BRIGHTPEARL_DEV_REF"), "{err}");
    let err = with(&[("BRIGHTPEARL_DEV_REF", "dev")]).unwrap_err();
    assert!(err.to_string().contains("BRIGHTPEARL_TOKEN_STORE"), "{err}");
    assert!(
        err.hint().contains("relay auth brightpearl"),
        "{}",
        err.hint()
    );
    let err = with(&[
        ("BRIGHTPEARL_DEV_REF", "dev"),
        ("BRIGHTPEARL_TOKEN_STORE", "/tmp/x"),
        ("BRIGHTPEARL_OAUTH_URL", "ftp://x"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("BRIGHTPEARL_OAUTH_URL"), "{err}");
    let err = ClientBuilder::from_settings(&Settings::from_pairs([("BRIGHTPEARL_ACCOUNT", "a/b")]))
        .unwrap()
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("BRIGHTPEARL_ACCOUNT"), "{err}");

    // Secrets from `_FILE`, never in Debug.
    let dir = temp_dir("settings");
    std::fs::write(dir.join("staff"), "file-s3cr3t\n").unwrap();
    let staff_file = dir.join("staff").to_string_lossy().into_owned();
    let builder = ClientBuilder::from_settings(&Settings::from_pairs([
        ("BRIGHTPEARL_ACCOUNT", "acme".to_owned()),
        ("BRIGHTPEARL_APP_REF", "acme_relay".to_owned()),
        ("BRIGHTPEARL_STAFF_TOKEN_FILE", staff_file),
        (
            "BRIGHTPEARL_BASE_URL",
            "https://euw1.brightpearlconnect.com".to_owned(),
        ),
    ]))
    .unwrap();
    assert!(!format!("{builder:?}").contains("file-s3cr3t"));
    let client = builder.build().unwrap();
    assert!(!format!("{client:?}").contains("file-s3cr3t"));
    let err = ClientBuilder::from_settings(&Settings::from_pairs([(
        "BRIGHTPEARL_STAFF_TOKEN_FILE",
        "/nonexistent/x",
    )]))
    .unwrap_err();
    assert!(
        err.to_string().contains("BRIGHTPEARL_STAFF_TOKEN_FILE"),
        "{err}"
    );
}

#[test]
fn an_invalid_timeout_setting_names_it() {
    for value in ["soon", "0", "-5"] {
        let err = ClientBuilder::from_settings(&Settings::from_pairs([
            ("BRIGHTPEARL_ACCOUNT", "acme"),
            ("BRIGHTPEARL_TIMEOUT_SECS", value),
        ]))
        .unwrap_err();
        assert!(matches!(err, Error::Settings(_)), "{err:?}");
        assert!(
            err.to_string().contains("BRIGHTPEARL_TIMEOUT_SECS"),
            "{err}"
        );
        assert!(
            err.hint().contains("BRIGHTPEARL_TIMEOUT_SECS"),
            "{}",
            err.hint()
        );
    }
}

#[tokio::test]
async fn slow_answer_past_the_timeout_setting_is_a_timeout() {
    // A 127.0.0.1 server that takes connections (the kernel's backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}", silent.local_addr().unwrap());
    // The default reqwest transport with the timeout from the setting; one attempt.
    let client = ClientBuilder::from_settings(&Settings::from_pairs([
        ("BRIGHTPEARL_ACCOUNT", "timeoutacct"),
        ("BRIGHTPEARL_APP_REF", "timeoutacct_relay"),
        ("BRIGHTPEARL_STAFF_TOKEN", "s3cr3t"),
        ("BRIGHTPEARL_BASE_URL", base_url.as_str()),
        ("BRIGHTPEARL_TIMEOUT_SECS", "1"),
    ]))
    .unwrap()
    .retry(auth_core::RetryConfig::default().max_attempts(1))
    .build()
    .unwrap();
    let started = std::time::Instant::now();
    let err = price_lists(&client).await.expect_err("timeout");
    let waited = started.elapsed();
    assert!(
        matches!(err, Error::Failure(Failure::Timeout { .. })),
        "{err:?}"
    );
    // A read changes nothing: its timeout is transient.
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(
        err.hint().contains("BRIGHTPEARL_TIMEOUT_SECS"),
        "{}",
        err.hint()
    );
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(20),
        "waited {waited:?}"
    );
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn oauth_exchange_refresh_rotation_and_restart_from_file_store() {
    let sandbox = start("oauthacct", |_| {}).await;
    let recorder = recorder();
    let dir = temp_dir("oauth");
    let store_path = dir.join("brightpearl-tokens.json");
    let builder = || oauth_builder(&sandbox, &recorder).token_store_path(&store_path);
    let client = builder().build().unwrap();

    // Authorize URL and code exchange.
    let state = Client::generate_state();
    let url = client.authorize_url(REDIRECT, &state).unwrap();
    assert_eq!(url.path(), "/authorize/oauthacct");
    let query: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "state")
        .collect();
    insta::assert_yaml_snapshot!("bp_authorize_url_query", query);
    let code = authorize(&client, &state).await;
    let auth = client.exchange_code(&code, REDIRECT).await.unwrap();
    let port = sandbox.addr().port();
    assert_eq!(
        auth.api_domain,
        Some(format!("127.0.0.1:{port}")),
        "api_domain from the token response"
    );
    assert_eq!(auth.installation_instance_id.as_deref(), Some("13"));
    insta::assert_yaml_snapshot!("bp_token_code_exchange", recorder.last("/token/"));
    let first = FileStoreView::read(&store_path);

    // The base URL comes from api_domain (no BRIGHTPEARL_BASE_URL was given).
    let products = client.products(&[1001, 1002]).await.unwrap();
    assert_eq!(products.len(), 2);
    assert_eq!(client.base_url().unwrap().port(), Some(port));

    // The access token expires at the server: 401 → refresh (rotating) → replay.
    sandbox
        .state()
        .clock
        .advance(Duration::from_secs(8 * 24 * 3600));
    let products = client.products(&[1003]).await.unwrap();
    assert_eq!(products[0].id, 1003);
    assert_eq!(
        sandbox.state().faults.count("POST", "/token/"),
        2,
        "one exchange, one refresh"
    );
    insta::assert_yaml_snapshot!("bp_token_refresh", recorder.last("/token/"));
    let second = FileStoreView::read(&store_path);
    assert_ne!(
        first.refresh_token, second.refresh_token,
        "rotated refresh token persisted"
    );
    assert_ne!(first.access_token, second.access_token);

    // A second client (a restart) continues from the file store and the session file.
    drop(client);
    sandbox
        .state()
        .clock
        .advance(Duration::from_secs(8 * 24 * 3600));
    let restarted = builder().build().unwrap();
    assert_eq!(
        restarted.base_url().unwrap().port(),
        Some(port),
        "api_domain persisted next to the store"
    );
    let products = restarted.products(&[1004]).await.unwrap();
    assert_eq!(products[0].id, 1004);
    assert_eq!(sandbox.state().faults.count("POST", "/token/"), 3);
    let third = FileStoreView::read(&store_path);
    assert_ne!(second.refresh_token, third.refresh_token);
    // The server never saw a refresh token twice: every refresh succeeded (a reused one would
    // be `invalid_grant`), and no token request failed.
    assert!(
        sandbox
            .state()
            .faults
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/token/"))
            .all(|r| r.status == 200)
    );

    // Nothing secret in the snapshots or the Debug output.
    let all = serde_json::to_string(&recorder.take()).unwrap();
    for secret in [
        &third.refresh_token,
        &third.access_token,
        &second.refresh_token,
        &code,
    ] {
        assert!(
            !all.contains(secret.as_str()),
            "secret leaked into a snapshot"
        );
    }
    assert!(!format!("{restarted:?}").contains(&third.access_token));
}

/// The token file as JSON (to compare rotations without printing them).
struct FileStoreView {
    refresh_token: String,
    access_token: String,
}

impl FileStoreView {
    fn read(path: &std::path::Path) -> Self {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        Self {
            refresh_token: json["refresh_token"].as_str().unwrap().to_owned(),
            access_token: json["access_token"].as_str().unwrap().to_owned(),
        }
    }
}

#[tokio::test]
async fn refresh_with_a_dead_refresh_token_is_invalid_grant_with_a_hint() {
    let sandbox = start("deadgrant", |_| {}).await;
    let recorder = recorder();
    let store = Arc::new(MemoryTokenStore::new(Some(StoredTokens::refresh_only(
        SecretString::from("not-a-live-token"),
    ))));
    let client = oauth_builder(&sandbox, &recorder)
        .base_url(sandbox.base_url())
        .token_store(store.clone() as Arc<dyn TokenStore>)
        .build()
        .unwrap();
    let err = client.products(&[1001]).await.unwrap_err();
    assert!(
        matches!(&err, Error::Failure(Failure::Token { source: auth_core::TokenError::Endpoint { error: Some(code), .. }, .. }) if code == "invalid_grant"),
        "{err:?}"
    );
    let hint = err.hint();
    assert!(
        hint.contains("relay auth brightpearl") && hint.contains("BRIGHTPEARL_TOKEN_STORE"),
        "{hint}"
    );
    assert!(!err.to_string().contains("not-a-live-token"));
    assert_eq!(
        store.snapshot().unwrap().refresh_token.expose_secret(),
        "not-a-live-token",
        "nothing saved on failure"
    );

    // The initial refresh token setting is used while the store is empty.
    let empty = Arc::new(MemoryTokenStore::default());
    let client = oauth_builder(&sandbox, &recorder)
        .base_url(sandbox.base_url())
        .token_store(empty.clone() as Arc<dyn TokenStore>)
        .build()
        .unwrap();
    let err = client.products(&[1001]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Failure(Failure::Token {
                source: auth_core::TokenError::NoRefreshToken,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        err.hint().contains("BRIGHTPEARL_REFRESH_TOKEN"),
        "{}",
        err.hint()
    );
}

#[tokio::test]
async fn private_app_staff_token_and_wrong_app_ref() {
    let sandbox = start("staffacct", |_| {}).await;
    let recorder = recorder();
    let client = staff_client(&sandbox, &recorder);
    let products = client.products(&[1001, 1002, 1003, 1005]).await.unwrap();
    assert_eq!(
        products.iter().map(|p| p.id).collect::<Vec<_>>(),
        [1001, 1002, 1003, 1005]
    );
    insta::assert_yaml_snapshot!(
        "bp_get_products_staff",
        recorder.last("/product-service/product/")
    );

    // A wrong app reference: 401 with Brightpearl's message kept, and a hint naming the setting.
    let c = sandbox.credentials().brightpearl;
    let wrong = Client::builder()
        .account(c.account)
        .app_ref("wrong-ref")
        .staff_token(SecretString::from(c.staff_token.clone()))
        .base_url(c.base_url)
        .transport(recorder.clone())
        .build()
        .unwrap();
    let err = wrong.products(&[1001]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err:?}");
    let Some(failure) = err.response() else {
        panic!("{err:?}")
    };
    assert_eq!(failure.status, 401);
    assert!(failure.body.contains("app reference"), "{}", failure.body);
    assert!(err.hint().contains("BRIGHTPEARL_APP_REF"), "{}", err.hint());
    assert!(!err.to_string().contains(&c.staff_token));
}

#[tokio::test]
async fn oauth_wrong_app_ref_is_401_after_one_refresh() {
    let sandbox = start("wrongref", |_| {}).await;
    let recorder = recorder();
    let good = oauth_client(&sandbox, &recorder).await;
    good.products(&[1001]).await.unwrap();
    let c = sandbox.credentials().brightpearl;
    let store = Arc::new(MemoryTokenStore::default());
    let bad = oauth_builder(&sandbox, &recorder)
        .app_ref("other-app")
        .client_id(c.client_id)
        .token_store(store)
        .build()
        .unwrap();
    let code = authorize(&bad, "x").await;
    bad.exchange_code(&code, REDIRECT).await.unwrap();
    let err = bad.products(&[1001]).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::UNAUTHORIZED),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.hint().contains("BRIGHTPEARL_APP_REF"), "{}", err.hint());
    insta::assert_yaml_snapshot!(
        "bp_oauth_get_products_headers",
        recorder.last("/product-service/product/").headers
    );
}

#[tokio::test]
async fn forbidden_403_is_told_apart_from_401() {
    let sandbox = start("forbidacct", |_| {}).await;
    let recorder = recorder();
    let client = staff_client(&sandbox, &recorder);
    sandbox
        .state()
        .faults
        .add(FaultRule {
            path_prefix: api(&sandbox, "/contact-service/"),
            error_rate: 1.0,
            error_statuses: vec![403],
            remaining: Some(1),
            ..Default::default()
        })
        .unwrap();
    let err = client.contacts(&[201]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err:?}");
    assert_eq!(err.status(), Some(http::StatusCode::FORBIDDEN));
    assert!(err.hint().contains("permissions"), "{}", err.hint());
    assert_eq!(
        sandbox
            .state()
            .faults
            .count("GET", &api(&sandbox, "/contact-service/")),
        1,
        "a 403 is not retried"
    );
}

// ---------------------------------------------------------------- throttling

#[tokio::test]
async fn throttle_503_pauses_the_shared_limiter_and_calls_succeed() {
    // 3 requests per 1-second rolling window: the concurrent burst below overruns it.
    let sandbox = start("throttleacct", |c| {
        c.brightpearl.requests_per_window = 3;
        c.brightpearl.throttle_window_secs = 1;
    })
    .await;
    let recorder = recorder();
    let client = staff_client(&sandbox, &recorder);
    let other = staff_client(&sandbox, &recorder);
    assert_eq!(
        client.rate_limiter().1,
        other.rate_limiter().1,
        "one pool per account (and developer)"
    );

    // Five concurrent GETs from two clients of the same pool: at least two are throttled (503),
    // the limiter pauses the pool for `brightpearl-next-throttle-period`, the retries succeed.
    let gets = (0..5).map(|i| {
        let client = if i % 2 == 0 {
            client.clone()
        } else {
            other.clone()
        };
        async move { client.products(&[1001 + i]).await }
    });
    for result in futures::future::join_all(gets).await {
        assert_eq!(result.unwrap().len(), 1);
    }
    let throttled = |method: &str| {
        sandbox
            .state()
            .faults
            .requests()
            .iter()
            .filter(|r| r.method == method && r.status == 503)
            .count()
    };
    assert!(throttled("GET") >= 2, "the GET burst was throttled");

    // Five concurrent POSTs: a throttled POST was not processed, so it is tried again too.
    let posts = (0..5).map(|i| {
        let client = client.clone();
        async move {
            let address = PostalAddressRequest {
                address_line1: format!("Gatan {i}"),
                country_iso_code: Some("SWE".into()),
                ..Default::default()
            };
            create_address(&client, &address).await
        }
    });
    let mut ids: Vec<i64> = futures::future::join_all(posts)
        .await
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e:?} ({})", e.hint())))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "five addresses, none duplicated");
    assert!(throttled("POST") >= 2, "the POST burst was throttled");
}

// ---------------------------------------------------------------- ID sets, search, empty results

#[tokio::test]
async fn id_sets_are_chunked_by_the_resource_limit() {
    let sandbox = start("idsetacct", |c| c.dataset.skus = 460).await;
    let recorder = recorder();
    let client = staff_client(&sandbox, &recorder);
    let ids: Vec<u64> = (1001..=1450).rev().collect();
    let products = client.products(&ids).await.unwrap();
    assert_eq!(products.len(), 450);
    assert!(products.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(
        sandbox
            .state()
            .faults
            .count("GET", &api(&sandbox, "/product-service/product/")),
        3,
        "450 ids in chunks of 200"
    );
    let mut paths: Vec<String> = recorder.take().into_iter().map(|r| r.path).collect();
    paths.sort();
    insta::assert_yaml_snapshot!("bp_get_products_chunks", paths);

    let stock = client.availability(&ids).await.unwrap();
    assert_eq!(stock.len(), 450);
    assert_eq!(
        sandbox.state().faults.count(
            "GET",
            &api(&sandbox, "/warehouse-service/product-availability/")
        ),
        5,
        "chunks of 100"
    );
    insta::assert_yaml_snapshot!(
        "bp_get_availability",
        recorder.last("/product-availability/")
    );

    // One unknown id fails a whole availability call (400): the chunk is bisected.
    let stock = client
        .availability(&[1001, 1002, 1003, 99_999])
        .await
        .unwrap();
    assert_eq!(
        stock.keys().map(String::as_str).collect::<Vec<_>>(),
        ["1001", "1002", "1003"]
    );
}

#[tokio::test]
async fn bundle_availability_asks_one_bundle_per_request_unless_told_to_send_id_sets() {
    let sandbox = start("bundleacct", |_| {}).await;
    let recorder = recorder();
    let client = staff_client(&sandbox, &recorder);
    // Bundles are the products that are not stock-tracked (the search's `stockTracked` column).
    let query = SearchQuery::new()
        .columns(["productId", "SKU", "stockTracked"])
        .sort("productId", SortDirection::Asc);
    let rows: Vec<ProductRow> = client
        .search_all(SearchResource::Products, query)
        .await
        .unwrap();
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|r| r.stock_tracked.is_some()));
    let bundles: Vec<u64> = rows
        .iter()
        .filter(|r| r.stock_tracked == Some(false))
        .map(|r| r.product_id)
        .collect();
    assert_eq!(bundles.len(), 5, "the sandbox seeds a handful");
    // product-availability leaves them out.
    assert!(client.availability(&bundles).await.unwrap().is_empty());
    recorder.take();

    // One request per id (as documented), concurrently; 1001 is no bundle (404): absent.
    let mut ids = bundles.clone();
    ids.push(1001);
    let stock = client.bundle_availability(&ids).await.unwrap();
    let mut keys: Vec<u64> = stock.keys().map(|k| k.parse().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, bundles);
    for (id, entry) in &stock {
        let total = entry.total.as_ref().unwrap().on_hand;
        let sum: i64 = entry
            .warehouses
            .as_ref()
            .unwrap()
            .values()
            .map(|l| l.on_hand)
            .sum();
        assert_eq!(total, sum, "bundle {id}");
    }
    assert_eq!(
        sandbox.state().faults.count(
            "GET",
            &api(&sandbox, "/warehouse-service/bundle-availability/")
        ),
        6
    );
    let mut paths: Vec<String> = recorder
        .log()
        .iter()
        .map(|r| r.path.rsplit('/').next().unwrap().to_owned())
        .collect();
    paths.sort();
    let mut want: Vec<String> = ids.iter().map(u64::to_string).collect();
    want.sort();
    assert_eq!(paths, want, "one id per request");
    insta::assert_yaml_snapshot!(
        "bp_get_bundle_availability",
        recorder.last(&format!("/bundle-availability/{}", bundles[0]))
    );
    recorder.take();

    // ID sets when asked (per call, or as the client's mode): one request, the same answer.
    let by_set = client
        .bundle_availability_with(&ids, BundleAvailabilityMode::IdSets)
        .await
        .unwrap();
    assert_eq!(by_set, stock);
    let sent = recorder.take();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0]
            .path
            .ends_with(&brightpearl_client::IdSet::from_ids(ids.iter().copied()).to_string()),
        "{}",
        sent[0].path
    );
    let sets = staff_client_with_mode(&sandbox, &recorder, BundleAvailabilityMode::IdSets);
    assert_eq!(sets.bundle_availability(&ids).await.unwrap(), stock);
    assert_eq!(recorder.take().len(), 1);
    // An ID set Brightpearl refuses (400) is asked again one id at a time.
    let rule = FaultRule {
        path_prefix: api(&sandbox, "/warehouse-service/bundle-availability/"),
        error_rate: 1.0,
        error_statuses: vec![400],
        remaining: Some(1),
        ..FaultRule::default()
    };
    sandbox.state().faults.add(rule).unwrap();
    assert_eq!(sets.bundle_availability(&ids).await.unwrap(), stock);
    assert_eq!(recorder.take().len(), 1 + ids.len());
    // Nothing asked, nothing sent.
    assert!(client.bundle_availability(&[]).await.unwrap().is_empty());
    assert!(recorder.take().is_empty());
}

/// A staff-token client whose bundle availability goes by `mode`.
fn staff_client_with_mode(
    sandbox: &Sandbox,
    recorder: &Recorder,
    mode: BundleAvailabilityMode,
) -> Client {
    let c = sandbox.credentials().brightpearl;
    Client::builder()
        .account(c.account)
        .app_ref(c.app_ref)
        .staff_token(SecretString::from(c.staff_token))
        .base_url(c.base_url)
        .transport(recorder.clone())
        .bundle_availability_mode(mode)
        .build()
        .unwrap()
}

#[tokio::test]
async fn search_pages_stream_and_decodes_rows() {
    let sandbox = start("searchacct", |_| {}).await;
    let recorder = recorder();
    let client = staff_client(&sandbox, &recorder);
    let query = SearchQuery::new()
        .columns(["productId", "SKU", "productName"])
        .sort("productId", SortDirection::Asc)
        .page_size(20);
    let pages: Vec<_> = client
        .search_pages(SearchResource::Products, query.clone())
        .collect()
        .await;
    assert_eq!(pages.len(), 3, "50 products in pages of 20");
    let mut rows: Vec<ProductRow> = Vec::new();
    for page in pages {
        rows.extend(page.unwrap().decode_rows::<ProductRow>().unwrap());
    }
    assert_eq!(rows.len(), 50);
    assert_eq!(rows[0].product_id, 1001);
    assert_eq!(rows[0].sku.as_deref(), Some("SKU-00001"));
    assert_eq!(rows[49].product_id, 1050);
    let firsts: Vec<String> = recorder
        .take()
        .into_iter()
        .map(|r| {
            r.query
                .into_iter()
                .find(|(k, _)| k == "firstResult")
                .map_or("-".into(), |(_, v)| v)
        })
        .collect();
    assert_eq!(firsts, ["-", "21", "41"], "firstResult = lastResult + 1");
    let all: Vec<ProductRow> = client
        .search_all(SearchResource::Products, query)
        .await
        .unwrap();
    assert_eq!(all, rows);
    insta::assert_yaml_snapshot!("bp_search_products_page2", {
        let _ = client
            .search(
                SearchResource::Products,
                &SearchQuery::new()
                    .columns(["productId", "SKU"])
                    .page_size(20)
                    .first_result(21),
            )
            .await
            .unwrap();
        recorder.last("/product-search")
    });

    // By SKU: the search, an exact match, then the product GET.
    let product = client.product_by_sku("SKU-00007").await.unwrap().unwrap();
    assert_eq!(product.id, 1007);
    assert!(
        client
            .product_by_sku("NO-SUCH-SKU")
            .await
            .unwrap()
            .is_none()
    );

    // A bad filter value is Brightpearl's 500 CMNC-018, a validation error as data.
    let err = client
        .search(
            SearchResource::Products,
            &SearchQuery::new().filter("productId", ">5"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.api_errors()[0].code, "CMNC-018");
    assert!(!err.is_transient());
    assert!(err.hint().contains("CMNC-018"), "{}", err.hint());
}

#[tokio::test]
async fn cmnc_404_on_a_get_is_an_empty_result() {
    let sandbox = start("emptyacct", |_| {}).await;
    let recorder = recorder();
    let client = staff_client(&sandbox, &recorder);
    assert!(client.products(&[999_999]).await.unwrap().is_empty());
    assert!(client.contacts(&[1]).await.unwrap().is_empty());
    assert!(
        client
            .product_prices(&[999_999], None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(client.goods_out_notes(&[999]).await.unwrap().is_empty());
    assert!(list_hooks(&client).await.unwrap().is_empty());
    let page = client
        .search(
            SearchResource::Contacts,
            &SearchQuery::new().filter("primaryEmail", "nobody@nowhere.invalid"),
        )
        .await
        .unwrap();
    assert!(page.is_empty() && !page.more_pages());
    let statuses: Vec<u16> = sandbox
        .state()
        .faults
        .requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&404), "{statuses:?}");
}

// ---------------------------------------------------------------- operations

#[tokio::test]
async fn prices_and_price_lists() {
    let sandbox = start("priceacct", |_| {}).await;
    let recorder = recorder();
    let client = oauth_client(&sandbox, &recorder).await;
    let lists = price_lists(&client).await.unwrap();
    assert!(lists.len() >= 2);
    insta::assert_yaml_snapshot!("bp_get_price_lists", recorder.last("/price-list"));
    let retail = lists
        .iter()
        .find(|l| l.code.as_deref() == Some("RETAIL"))
        .unwrap()
        .id as u64;
    let prices = client
        .product_prices(&[1001, 1002], Some(retail))
        .await
        .unwrap();
    assert_eq!(prices.len(), 2);
    let entry = &prices[0].price_lists.as_ref().unwrap()[0];
    assert_eq!(entry.price_list_id, Some(retail as i64));
    assert!(entry.quantity_price.as_ref().unwrap().contains_key("1"));
    insta::assert_yaml_snapshot!("bp_get_product_prices", recorder.last("/product-price/"));
}

#[tokio::test]
async fn contacts_exact_email_and_create_with_address() {
    let sandbox = start("contactacct", |_| {}).await;
    let recorder = recorder();
    let client = oauth_client(&sandbox, &recorder).await;
    let contact = |email: &str| ContactRequest {
        first_name: Some("Anna".into()),
        last_name: Some("Svensson".into()),
        communication: Some(ContactCommunication {
            emails: Some(ContactEmails {
                pri: Some(ContactEmail {
                    email: Some(email.into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let address = PostalAddressRequest {
        address_line1: "Drottninggatan 12".into(),
        address_line3: Some("Stockholm".into()),
        postal_code: Some("111 51".into()),
        country_iso_code: Some("SWE".into()),
        ..Default::default()
    };
    let created = client
        .create_contact_with_address(contact("anna@example.com"), &address)
        .await
        .unwrap();
    insta::assert_yaml_snapshot!("bp_create_postal_address", recorder.last("/postal-address"));
    let mut contact_request = recorder.last("/contact-service/contact");
    if let Some(ids) = contact_request.body.get_mut("postAddressIds") {
        *ids = serde_json::json!("[address ids]");
    }
    insta::assert_yaml_snapshot!("bp_create_contact", contact_request);
    // A second contact whose e-mail contains the first one: the search matches both.
    client
        .create_contact_with_address(contact("joanna@example.com"), &address)
        .await
        .unwrap();

    let found = client
        .find_contacts_by_email("Anna@Example.com ")
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].contact_id, created.contact_id as u64);
    insta::assert_yaml_snapshot!(
        "bp_search_contacts_by_email",
        recorder.last("/contact-search")
    );
    let page = client
        .search(
            SearchResource::Contacts,
            &SearchQuery::new().filter("primaryEmail", "anna@example.com"),
        )
        .await
        .unwrap();
    assert!(page.len() >= 2, "Brightpearl's match is partial");

    let contacts = client.contacts(&[created.contact_id as u64]).await.unwrap();
    let def = contacts[0].post_address_ids.as_ref().and_then(|p| p.def);
    assert_eq!(def, Some(created.address_id));
    assert!(client.find_contacts_by_email("  ").await.is_err());
}

#[tokio::test]
async fn sales_orders_status_goods_out_notes() {
    let sandbox = start("orderacct", |_| {}).await;
    let recorder = recorder();
    let client = oauth_client(&sandbox, &recorder).await;
    let order_id = create_order(&client, &sales_order(201, "NC-1"))
        .await
        .unwrap();
    insta::assert_yaml_snapshot!("bp_create_sales_order", recorder.last("/sales-order"));

    // A validation error as data.
    let err = create_order(&client, &sales_order(201, "NC-1"))
        .await
        .unwrap_err();
    let Error::Api { errors, failure } = &err else {
        panic!("{err:?}")
    };
    assert!(
        failure.status.is_client_error() && !errors.is_empty(),
        "{failure:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Permanent);

    let orders = client.orders(&[order_id as u64]).await.unwrap();
    assert_eq!(orders.len(), 1);
    insta::assert_yaml_snapshot!("bp_get_orders", recorder.last("/order-service/order/"));
    let sales = client.sales_orders(&[order_id as u64]).await.unwrap();
    assert_eq!(sales.len(), 1);

    let update = OrderStatusUpdate {
        order_status_id: 4,
        order_note: Some(OrderNote {
            text: "Shipped".into(),
            is_public: Some(false),
        }),
    };
    update_status(&client, order_id, &update).await.unwrap();
    insta::assert_yaml_snapshot!("bp_update_order_status", {
        let mut r = recorder.last("/status");
        r.path = r.path.replace(&order_id.to_string(), "{orderId}");
        r
    });

    let page = client
        .search(
            SearchResource::Orders,
            &SearchQuery::new().filter("externalRef", "NC-1").columns([
                "orderId",
                "orderStatusId",
                "externalRef",
            ]),
        )
        .await
        .unwrap();
    let rows: Vec<OrderRow> = page.decode_rows().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].order_id, order_id as u64);
    assert_eq!(rows[0].order_status_id, Some(4));
    assert!(
        page.reference_label("orderStatusNames", "4").is_some(),
        "{:?}",
        page.reference
    );
    insta::assert_yaml_snapshot!("bp_search_orders", recorder.last("/order-search"));

    // Goods-out notes (created and shipped through the sandbox admin API).
    let gon = admin_post(
        &sandbox,
        "/goods-out-notes",
        serde_json::json!({ "orderId": order_id }),
    )
    .await;
    let gon_id = gon["id"].as_u64().unwrap();
    admin_post(
        &sandbox,
        &format!("/goods-out-notes/{gon_id}/ship"),
        serde_json::json!({ "reference": "TRACK-1" }),
    )
    .await;
    let notes = client.goods_out_notes(&[gon_id]).await.unwrap();
    let note = &notes[&gon_id.to_string()];
    assert_eq!(note.order_id, Some(order_id));
    assert_eq!(
        note.shipping.as_ref().and_then(|s| s.reference.as_deref()),
        Some("TRACK-1")
    );
    insta::assert_yaml_snapshot!(
        "bp_get_goods_out_notes",
        recorder.last("/goods-note/goods-out/")
    );
    let by_order = client
        .goods_out_notes_for_orders(&[order_id as u64])
        .await
        .unwrap();
    assert!(by_order.contains_key(&gon_id.to_string()));
    let shipped: Vec<brightpearl_client::GoodsOutNoteRow> = client
        .search_all(
            SearchResource::GoodsOutNotes,
            SearchQuery::new().filter("shipped", "true").columns([
                "goodsOutNoteId",
                "orderId",
                "shipped",
                "shippedOn",
            ]),
        )
        .await
        .unwrap();
    assert!(
        shipped
            .iter()
            .any(|r| r.goods_out_note_id == gon_id && r.shipped == Some(true))
    );
    insta::assert_yaml_snapshot!(
        "bp_search_goods_out_notes",
        recorder.last("/goods-out-search")
    );
}

#[tokio::test]
async fn webhooks_list_create_delete() {
    let sandbox = start("hookacct", |_| {}).await;
    let recorder = recorder();
    let client = oauth_client(&sandbox, &recorder).await;
    let request = WebhookRequest {
        subscribe_to: WebhookEventName::from("product.modified.on-hand-modified"),
        http_method: WebhookHttpMethod::Post,
        uri_template: "https://relay.example/brightpearl/webhook".into(),
        body_template: Some(r#"{"id":"${resource-id}","fullEvent":"${full-event}"}"#.into()),
        content_type: Some("application/json".into()),
        id_set_accepted: Some(true),
        quality_of_service: Some(1),
    };
    let id = create_hook(&client, &request).await.unwrap();
    insta::assert_yaml_snapshot!(
        "bp_create_webhook",
        recorder.last("/integration-service/webhook")
    );
    let hooks = list_hooks(&client).await.unwrap();
    assert_eq!(hooks.iter().map(|h| h.id).collect::<Vec<_>>(), [id]);
    insta::assert_yaml_snapshot!(
        "bp_list_webhooks",
        recorder.last("/integration-service/webhook")
    );
    let path = integration::DeleteWebhookPath {
        account: acct(&client),
        webhook_id: id,
    };
    client.delete_webhook(&path).await.unwrap();
    insta::assert_yaml_snapshot!("bp_delete_webhook", {
        let mut r = recorder.last("/integration-service/webhook");
        r.path = r.path.replace(&id.to_string(), "{id}");
        r
    });
    assert!(list_hooks(&client).await.unwrap().is_empty());

    // An event that cannot be subscribed to: a validation error as data.
    let bad = WebhookRequest {
        subscribe_to: WebhookEventName::from("no.such-event"),
        ..request
    };
    let err = create_hook(&client, &bad).await.unwrap_err();
    assert!(err.status().is_some_and(|s| s.is_client_error()), "{err:?}");
    assert!(!err.api_errors().is_empty());
}

#[tokio::test]
async fn multi_message_at_most_ten() {
    let sandbox = start("multiacct", |_| {}).await;
    let recorder = recorder();
    let client = oauth_client(&sandbox, &recorder).await;
    let address = |i: usize| MultiMessage {
        label: format!("address-{i}"),
        uri: "/contact-service/postal-address".into(),
        http_method: WebhookHttpMethod::Post,
        body: Some(
            serde_json::json!({ "addressLine1": format!("Gatan {i}"), "countryIsoCode": "SWE" }),
        ),
    };
    let request = |n: usize| MultiMessageRequest {
        processing_mode: MultiMessageProcessingMode::Sequential,
        on_fail: MultiMessageOnFail::Continue,
        messages: (0..n).map(address).collect(),
    };
    let err = client.multi_message(&request(11)).await.unwrap_err();
    assert!(
        matches!(err, Error::TooManyMessages { count: 11, max: 10 }),
        "{err:?}"
    );
    assert!(err.hint().contains("10"));
    assert_eq!(
        sandbox
            .state()
            .faults
            .count("POST", &api(&sandbox, "/multi-message")),
        0,
        "refused before sending"
    );

    let result = client.multi_message(&request(2)).await.unwrap();
    let processed = result.processed_messages.unwrap();
    assert_eq!(processed.len(), 2);
    assert!(
        processed.iter().all(|m| m.status_code == 200),
        "{processed:?}"
    );
    insta::assert_yaml_snapshot!("bp_multi_message", recorder.last("/multi-message"));
}

// ---------------------------------------------------------------- webhooks by id, update, simulate

/// A webhook whose calls go to the sandbox's own listener (127.0.0.1; the path answers 404, so
/// a QoS-0 hook is called once and never retried).
fn local_hook(sandbox: &Sandbox, event: &str) -> WebhookRequest {
    WebhookRequest {
        subscribe_to: WebhookEventName::from(event),
        http_method: WebhookHttpMethod::Post,
        uri_template: format!("{}/_sandbox/hook-sink?secret=s3cret", sandbox.base_url()),
        body_template: Some(r#"{"id":"${resource-id}","fullEvent":"${full-event}"}"#.into()),
        content_type: Some("application/json".into()),
        id_set_accepted: Some(true),
        quality_of_service: Some(0),
    }
}

fn test_data(pairs: &[(&str, &str)]) -> WebhookSimulateRequest {
    WebhookSimulateRequest {
        test_data: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

#[tokio::test]
async fn webhooks_by_id_and_update() {
    let sandbox = start("hookidacct", |_| {}).await;
    let recorder = recorder();
    let client = oauth_client(&sandbox, &recorder).await;
    let gets = || {
        sandbox
            .state()
            .faults
            .count("GET", &api(&sandbox, "/integration-service/webhook/"))
    };
    let mut ids = Vec::new();
    for event in [
        "product.modified.on-hand-modified",
        "goods-out-note.modified.shipped",
        "order.modified.order-status",
    ] {
        ids.push(
            create_hook(&client, &local_hook(&sandbox, event))
                .await
                .unwrap() as u64,
        );
    }
    assert_eq!(
        ids,
        [1, 2, 3],
        "webhook ids count from 1 in a fresh sandbox"
    );

    // Unordered, repeated and unknown ids: one GET of the compressed set, unknown ids left out.
    let found = client.webhooks_by_id(&[3, 1, 1, 99]).await.unwrap();
    assert_eq!(found.iter().map(|w| w.id).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(
        found[1].subscribe_to,
        Some(WebhookEventName::OrderModifiedOrderStatus)
    );
    insta::assert_yaml_snapshot!(
        "bp_get_webhooks",
        recorder.last("/integration-service/webhook/")
    );
    assert_eq!(gets(), 1);

    // Nothing in the ID set: Brightpearl's 404 CMNC-404 is an empty list, as for `webhooks()`.
    assert!(client.webhooks_by_id(&[99]).await.unwrap().is_empty());
    let last = sandbox
        .state()
        .faults
        .requests()
        .into_iter()
        .last()
        .unwrap();
    assert_eq!((last.method.as_str(), last.status), ("GET", 404));
    // No ids (or only zero, which is no id): nothing is sent, never a GET of every webhook.
    assert!(client.webhooks_by_id(&[]).await.unwrap().is_empty());
    assert!(client.webhooks_by_id(&[0]).await.unwrap().is_empty());
    assert_eq!(gets(), 2);
    // 150 ids: chunks of 100.
    let many: Vec<u64> = (1..=150).collect();
    assert_eq!(client.webhooks_by_id(&many).await.unwrap().len(), 3);
    assert_eq!(gets(), 4, "150 ids in chunks of 100");

    // Update: the subscription is replaced as a whole.
    let changed = WebhookRequest {
        id_set_accepted: Some(false),
        quality_of_service: Some(1),
        ..local_hook(&sandbox, "product.modified")
    };
    update_hook(&client, 2, &changed).await.unwrap();
    insta::assert_yaml_snapshot!("bp_update_webhook", {
        let mut r = recorder.last("/integration-service/webhook/2");
        let port = sandbox.addr().port().to_string();
        if let Some(uri) = r.body.get_mut("uriTemplate") {
            *uri = serde_json::json!(uri.as_str().unwrap().replace(&port, "{port}"));
        }
        r
    });
    let hook = client.webhooks_by_id(&[2]).await.unwrap().remove(0);
    assert_eq!(hook.subscribe_to, Some(WebhookEventName::ProductModified));
    assert_eq!(
        (hook.id_set_accepted, hook.quality_of_service),
        (Some(false), Some(1))
    );

    // An unknown id is an error on a write (CMNC-404 is "empty" only for reads).
    let err = update_hook(&client, 99, &changed).await.unwrap_err();
    let Error::Api { failure, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failure.status, 404);
    assert!(err.has_code("CMNC-404"), "{failure:?}");
    // An event that cannot be subscribed to: 400 INTC-064 as data; the hook is unchanged.
    let unknown_event = WebhookRequest {
        subscribe_to: WebhookEventName::from("no.such-event"),
        ..changed.clone()
    };
    let err = update_hook(&client, 2, &unknown_event).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::BAD_REQUEST));
    assert_eq!(err.api_errors()[0].code, "INTC-064");
    assert_eq!(
        client.webhooks_by_id(&[2]).await.unwrap()[0].subscribe_to,
        Some(WebhookEventName::ProductModified)
    );
    // A POST hook without a body template is refused by Brightpearl, not by the client.
    let no_body = WebhookRequest {
        body_template: None,
        ..changed
    };
    let err = update_hook(&client, 2, &no_body).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::BAD_REQUEST), "{err:?}");
}

#[tokio::test]
async fn webhook_simulate_sends_at_most_ten_ids() {
    let sandbox = start("simacct", |_| {}).await;
    let recorder = recorder();
    let client = oauth_client(&sandbox, &recorder).await;
    let id = create_hook(
        &client,
        &local_hook(&sandbox, "product.modified.on-hand-modified"),
    )
    .await
    .unwrap() as u64;
    let simulations = || {
        sandbox.state().faults.count(
            "POST",
            &api(
                &sandbox,
                &format!("/integration-service/webhook/{id}/simulate"),
            ),
        )
    };

    // Ten ids, written out of order: sent in canonical form, delivered through the subscription.
    let request = test_data(&[
        ("${resource-type}", "product"),
        ("${resource-id}", "1010, 1001-1005,1006-1009,1003"),
        ("${lifecycle-event}", "modified"),
    ]);
    client.simulate_webhook(id, &request).await.unwrap();
    insta::assert_yaml_snapshot!("bp_simulate_webhook", {
        let mut r = recorder.last("/simulate");
        r.path = r
            .path
            .replace(&format!("/webhook/{id}/"), "/webhook/{webhookId}/");
        r
    });
    assert_eq!(
        request.test_data["${resource-id}"], "1010, 1001-1005,1006-1009,1003",
        "the caller's request is not changed"
    );
    let deliveries = sandbox.state().brightpearl.webhook_deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        (
            deliveries[0].webhook_id,
            deliveries[0].resource_ids.as_str()
        ),
        (id as i64, "1001-1010")
    );
    assert_eq!(
        deliveries[0].body.as_deref(),
        Some(r#"{"id":"1001-1010","fullEvent":"product.modified.on-hand-modified"}"#)
    );
    assert!(
        deliveries[0].url.starts_with("http://127.0.0.1:"),
        "{}",
        deliveries[0].url
    );
    assert_eq!(simulations(), 1);

    // Eleven ids: refused before anything is sent, with an error naming the field.
    let err = client
        .simulate_webhook(id, &test_data(&[("${resource-id}", "1001-1011")]))
        .await
        .unwrap_err();
    let Error::Failure(Failure::InvalidRequest {
        reason: message, ..
    }) = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("${resource-id}") && message.contains("11") && message.contains("10"),
        "{message}"
    );
    assert!(err.hint().contains("arguments"), "{}", err.hint());
    // Repeats are one id each: 1-10 plus 5 is still ten ids.
    client
        .simulate_webhook(id, &test_data(&[("${resource-id}", "1-10,5")]))
        .await
        .unwrap();
    // Text that is not an ID set: refused, naming the field and the part.
    for bad in ["10-1", "1,a", "0"] {
        let err = client
            .simulate_webhook(id, &test_data(&[("${resource-id}", bad)]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Failure(Failure::InvalidRequest { reason, .. }) if reason.contains("${resource-id}")),
            "{bad}: {err:?}"
        );
    }
    assert_eq!(simulations(), 2, "refused calls were never sent");
    assert_eq!(MAX_SIMULATE_IDS, 10);

    // An unknown webhook: Brightpearl's 404 CMNC-404 is an error for a POST.
    let err = client
        .simulate_webhook(99, &test_data(&[("${resource-id}", "1001")]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND));
    assert!(
        err.api_errors().iter().any(|e| e.code == "CMNC-404"),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- OPTIONS: GET URIs

#[tokio::test]
async fn product_and_order_uris_from_options() {
    let sandbox = start("uriacct", |c| c.dataset.skus = 460).await;
    let recorder = recorder();
    let client = staff_client(&sandbox, &recorder);
    let options = |path: &str| {
        sandbox
            .state()
            .faults
            .count("OPTIONS", &api(&sandbox, path))
    };

    // 450 existing products, given in reverse: one OPTIONS call, URIs sized to the 200 GET limit.
    let ids: Vec<u64> = (1001..=1450).rev().collect();
    let uris = client.product_uris(&ids).await.unwrap();
    assert_eq!(
        uris,
        [
            "/product/1001-1200",
            "/product/1201-1400",
            "/product/1401-1450"
        ]
    );
    assert_eq!(options("/product-service/product/"), 1);
    insta::assert_yaml_snapshot!(
        "bp_get_product_uris",
        recorder.last("/product-service/product/")
    );
    // Unknown ids are dropped; none known is no URIs (Brightpearl answers `getUris: []`).
    assert_eq!(
        client.product_uris(&[1003, 1001, 999_999]).await.unwrap(),
        ["/product/1001,1003"]
    );
    assert!(client.product_uris(&[999_999]).await.unwrap().is_empty());
    // No ids: nothing sent (an OPTIONS without an ID set would list every product).
    assert!(client.product_uris(&[]).await.unwrap().is_empty());
    assert_eq!(options("/product-service/product"), 3);

    // A long ID set is split by URI length only; the URIs come back in ascending id order.
    let narrow = Client::builder()
        .account(sandbox.credentials().brightpearl.account)
        .app_ref(sandbox.credentials().brightpearl.app_ref)
        .staff_token(SecretString::from(
            sandbox.credentials().brightpearl.staff_token,
        ))
        .base_url(sandbox.base_url())
        .max_id_set_chars(50)
        .transport(recorder.clone())
        .build()
        .unwrap();
    let scattered: Vec<u64> = (1001..=1100).rev().filter(|id| id % 2 == 1).collect();
    let uris = narrow.product_uris(&scattered).await.unwrap();
    assert_eq!(
        options("/product-service/product/"),
        3 + 5,
        "50 ids of 5 characters in chunks of at most 50"
    );
    let listed: Vec<u64> = uris
        .iter()
        .flat_map(|u| {
            u.trim_start_matches("/product/")
                .split(',')
                .map(|id| id.parse::<u64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(listed, (1001..=1100).step_by(2).collect::<Vec<_>>());

    // An ID set longer than the server's URI limit: Brightpearl's 414 as an error, with a hint.
    let wide = Client::builder()
        .account(sandbox.credentials().brightpearl.account)
        .app_ref(sandbox.credentials().brightpearl.app_ref)
        .staff_token(SecretString::from(
            sandbox.credentials().brightpearl.staff_token,
        ))
        .base_url(sandbox.base_url())
        .max_id_set_chars(10_000)
        .transport(recorder.clone())
        .build()
        .unwrap();
    let err = wide
        .product_uris(&(1001..=1900).step_by(2).collect::<Vec<_>>())
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::URI_TOO_LONG),
        "{err:?}"
    );
    assert!(
        err.hint().contains("smaller ID-set chunks"),
        "{}",
        err.hint()
    );

    // Orders: the same over the order service.
    let mut orders = Vec::new();
    for n in 1..=3 {
        orders.push(
            create_order(&client, &sales_order(201, &format!("NC-U{n}")))
                .await
                .unwrap() as u64,
        );
    }
    assert_eq!(orders, [10001, 10002, 10003]);
    let uris = client
        .order_uris(&[10003, 10001, 10002, 99_999])
        .await
        .unwrap();
    assert_eq!(uris, ["/order/10001-10003"]);
    insta::assert_yaml_snapshot!("bp_get_order_uris", recorder.last("/order-service/order/"));
    assert!(client.order_uris(&[99_999]).await.unwrap().is_empty());
    assert!(client.order_uris(&[]).await.unwrap().is_empty());
    assert_eq!(options("/order-service/order"), 2);

    // A failure that is not Brightpearl's "nothing found" stays an error.
    sandbox
        .state()
        .faults
        .add(FaultRule {
            path_prefix: api(&sandbox, "/order-service/order/"),
            error_rate: 1.0,
            error_statuses: vec![404],
            remaining: Some(1),
            ..Default::default()
        })
        .unwrap();
    let err = client.order_uris(&[10001]).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND), "{err:?}");
}

/// A transport that answers every request with one canned response (no network at all).
fn canned(
    status: u16,
    body: &'static str,
) -> impl Service<
    http::Request<Bytes>,
    Response = http::Response<Bytes>,
    Error = auth_core::Error,
    Future: Send,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(move |_request: http::Request<Bytes>| async move {
        Ok::<_, auth_core::Error>(
            http::Response::builder()
                .status(status)
                .body(Bytes::from_static(body.as_bytes()))
                .unwrap(),
        )
    })
}

#[tokio::test]
async fn options_cmnc_404_is_no_uris() {
    let client = |status, body| {
        Client::builder()
            .account("cannedacct")
            .app_ref("app")
            .staff_token(SecretString::from("staff"))
            .base_url("http://127.0.0.1:9")
            .transport(canned(status, body))
            .build()
            .unwrap()
    };
    let not_found = r#"{"errors":[{"code":"CMNC-404","message":"No orders found"}]}"#;
    assert!(
        client(404, not_found)
            .order_uris(&[1, 2])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client(404, not_found)
            .product_uris(&[1])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        client(200, r#"{"response":{}}"#)
            .order_uris(&[1])
            .await
            .unwrap()
            .is_empty(),
        "getUris absent"
    );
    let err = client(404, r#"{"errors":[{"code":"ORDC-404","message":"gone"}]}"#)
        .order_uris(&[1])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { .. }), "{err:?}");
    // A write that finds nothing is an error even with CMNC-404.
    let err = client(404, not_found)
        .simulate_webhook(1, &test_data(&[]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Api { .. }), "{err:?}");
}

// ---------------------------------------------------------------- reference lists

#[tokio::test]
async fn order_statuses_shipping_statuses_warehouses_and_shipping_methods() {
    let sandbox = start("listacct", |c| c.dataset.warehouses = 3).await;
    let recorder = recorder();
    let client = oauth_client(&sandbox, &recorder).await;

    let path = order::ListOrderStatusesPath {
        account: acct(&client),
    };
    let statuses = client.list_order_statuses(&path).await.unwrap().response;
    assert!(statuses.len() >= 4, "{statuses:?}");
    assert!(
        statuses
            .windows(2)
            .all(|w| w[0].sort_order <= w[1].sort_order),
        "as Brightpearl orders them"
    );
    let ready = statuses.iter().find(|s| s.status_id == 4).unwrap();
    assert_eq!(ready.name.as_deref(), Some("Ready to ship"));
    insta::assert_yaml_snapshot!("bp_list_order_statuses", recorder.last("/order-status"));

    let path = order::ListOrderShippingStatusesPath {
        account: acct(&client),
    };
    let shipping = client.list_order_shipping_statuses(&path).await.unwrap();
    let shipping = shipping.response;
    let codes: Vec<(Option<i64>, &str)> = shipping
        .iter()
        .map(|s| (s.id, s.code.as_ref().map_or("", |c| c.as_str())))
        .collect();
    assert_eq!(
        codes,
        [
            (Some(1), "NST"),
            (Some(2), "SNS"),
            (Some(3), "SPS"),
            (Some(4), "ASS")
        ]
    );
    insta::assert_yaml_snapshot!(
        "bp_list_order_shipping_statuses",
        recorder.last("/order-shipping-status")
    );

    let path = warehouse::ListWarehousesPath {
        account: acct(&client),
    };
    let warehouses = client.list_warehouses(&path).await.unwrap().response;
    assert_eq!(
        warehouses.iter().map(|w| w.id).collect::<Vec<_>>(),
        [2, 3, 4],
        "dataset warehouses have ids from 2"
    );
    assert!(
        warehouses
            .iter()
            .all(|w| w.name.as_deref().is_some_and(|n| !n.is_empty())),
        "{warehouses:?}"
    );
    insta::assert_yaml_snapshot!(
        "bp_list_warehouses",
        recorder.last("/warehouse-service/warehouse")
    );

    let methods_path = warehouse::ListShippingMethodsPath {
        account: acct(&client),
    };
    let methods = client.list_shipping_methods(&methods_path).await.unwrap();
    let methods = methods.response;
    assert!(!methods.is_empty());
    assert!(
        methods.iter().any(|m| m.id == 1 && m.name.is_some()),
        "{methods:?}"
    );
    insta::assert_yaml_snapshot!(
        "bp_list_shipping_methods",
        recorder.last("/shipping-method")
    );

    // A server failure is an error (transient), not an empty list.
    sandbox
        .state()
        .faults
        .add(FaultRule {
            path_prefix: api(&sandbox, "/warehouse-service/"),
            error_rate: 1.0,
            error_statuses: vec![500],
            remaining: Some(1),
            ..Default::default()
        })
        .unwrap();
    let err = client.list_warehouses(&path).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::INTERNAL_SERVER_ERROR),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Transient, "a GET may be repeated");
    assert!(err.is_transient());
    assert_eq!(
        client
            .list_shipping_methods(&methods_path)
            .await
            .unwrap()
            .response,
        methods,
        "the fault was a single burst"
    );
}

// ---------------------------------------------------------------- kinds of failures

#[tokio::test]
async fn failed_writes_are_ambiguous_and_failed_reads_transient() {
    let sandbox = start("ambigacct", |_| {}).await;
    let recorder = recorder();
    let client = staff_client(&sandbox, &recorder);
    let fault = |path: &str, rule: FaultRule| {
        let rule = FaultRule {
            path_prefix: api(&sandbox, path),
            remaining: Some(1),
            ..rule
        };
        sandbox.state().faults.add(rule).unwrap();
    };

    // The order is written, then the connection drops before the answer: it may exist.
    fault(
        "/order-service/sales-order",
        FaultRule {
            commit_then_fail_rate: 1.0,
            ..FaultRule::default()
        },
    );
    let err = create_order(&client, &sales_order(201, "NC-A1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AmbiguousWrite, "{err:?}");
    assert!(err.hint().contains("externalRef"), "{}", err.hint());
    let rows: Vec<OrderRow> = client
        .search_all(
            SearchResource::Orders,
            SearchQuery::new()
                .filter("externalRef", "NC-A1")
                .columns(["orderId", "externalRef"]),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the write was carried out");

    // A 500 to a POST: ambiguous, and not repeated.
    fault(
        "/contact-service/postal-address",
        FaultRule {
            error_rate: 1.0,
            error_statuses: vec![500],
            ..FaultRule::default()
        },
    );
    let address = PostalAddressRequest {
        address_line1: "Gatan 1".into(),
        country_iso_code: Some("SWE".into()),
        ..Default::default()
    };
    let err = create_address(&client, &address).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(err.kind(), ErrorKind::AmbiguousWrite, "{err:?}");
    let posts = |sandbox: &Sandbox| {
        sandbox
            .state()
            .faults
            .count("POST", &api(sandbox, "/contact-service/postal-address"))
    };
    assert_eq!(posts(&sandbox), 1, "a POST is not repeated");

    // A 500 to a PUT (safe to repeat) is transient.
    fault(
        "/order-service/order/",
        FaultRule {
            error_rate: 1.0,
            error_statuses: vec![500],
            method: Some("PUT".into()),
            ..FaultRule::default()
        },
    );
    let update = OrderStatusUpdate {
        order_status_id: 4,
        order_note: None,
    };
    let order_id = rows[0].order_id as i64;
    let err = update_status(&client, order_id, &update).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn a_call_still_throttled_is_throttled_after_four_attempts() {
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let throttle = tower::service_fn(move |_request: http::Request<Bytes>| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            Ok::<_, auth_core::Error>(
                http::Response::builder()
                    .status(503)
                    .body(Bytes::from_static(
                        br#"{"response":"You have sent too many requests. Please wait before sending another request"}"#,
                    ))
                    .unwrap(),
            )
        }
    });
    let client = Client::builder()
        .account("throttledacct")
        .app_ref("app")
        .staff_token(SecretString::from("staff"))
        .base_url("http://127.0.0.1:9")
        .transport(throttle)
        .build()
        .unwrap();
    let address = PostalAddressRequest {
        address_line1: "Gatan 1".into(),
        ..Default::default()
    };
    let err = create_address(&client, &address).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err:?}");
    assert!(err.is_throttle() && err.is_transient());
    assert!(err.hint().contains("200 requests/minute"), "{}", err.hint());
    assert_eq!(
        sent.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "a throttled POST was not processed: sent again, 4 times in all"
    );
}
