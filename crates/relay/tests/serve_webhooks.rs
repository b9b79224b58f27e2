//! `relay serve` registers its Brightpearl webhook subscriptions at start, against the sandbox:
//! once, idempotently over restarts, a rotated secret replaced, a refused event reported alone,
//! and end to end (a stock change in Brightpearl → the sandbox's webhook → the inbox → the stock
//! flow → Norce). Network only on 127.0.0.1; waits on the server's watch channels, no sleeps.

mod common;

use std::sync::Arc;
use std::time::Duration;

use brightpearl_client::NothingFound as _;
use brightpearl_client::models::integration::operations::IntegrationApi as _;
use brightpearl_client::models::integration::{
    CreateWebhookPath, ListWebhooksPath, Webhook, WebhookEventName, WebhookHttpMethod,
    WebhookRequest,
};
use relay::config::RelayConfig;
use relay::flows::FlowContext;
use relay::flows::stock::JobWaitConfig;
use relay::serve::{
    self, SecretString, ServeSecrets, ServerHandle, SubscriptionOutcome, WebhookRegistration,
};
use relay::state::{SqliteStore, Status, Store};
use sandbox::{DatasetConfig, FaultRule, Sandbox, SandboxConfig};
use serde_json::{Value, json};

const ON_HAND: &str = "product.modified.on-hand-modified";
const SHIPPED: &str = "goods-out-note.modified.shipped";
const PUBLIC_URL: &str = "https://relay.example.test";
const SECRET: &str = "bp-secret-1";

fn secrets(brightpearl: Option<&str>) -> ServeSecrets {
    ServeSecrets {
        brightpearl_webhook_secret: brightpearl.map(SecretString::from),
        ..ServeSecrets::default()
    }
}

/// Serve settings for tests: nothing scheduled, runs right after an ingest.
fn config(public_url: Option<&str>) -> RelayConfig {
    let mut config = RelayConfig::default();
    // Labels and state files of the flows go to the temp directory, not the crate's folder.
    config.state.dir =
        std::env::temp_dir().join(format!("relay-serve-webhooks-{}", std::process::id()));
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    config.serve.public_url = public_url.map(str::to_owned);
    config.serve.shipping_every_secs = 0;
    config.serve.orders_every_secs = 0;
    config.serve.stock_reconcile_every_secs = 0;
    config.serve.run_after_ingest_ms = 0;
    config.serve.inbox_sweep_secs = 0;
    config.stock.job_wait = JobWaitConfig {
        timeout_secs: 60,
        initial_interval_ms: 1,
        max_interval_ms: 10,
    };
    config.orders.poll = false;
    config.shipping.poll = false;
    config
}

/// Serve over `store` against `sandbox`, with no flows (the receivers and the registration).
async fn start(
    sandbox: &Sandbox,
    store: Arc<dyn Store>,
    config: RelayConfig,
    secrets: ServeSecrets,
) -> ServerHandle {
    let listener = serve::bind(&config.serve).await.unwrap();
    let ctx = common::context_with_store(sandbox, config, store);
    serve::start_with_flows(ctx, secrets, listener, Vec::new())
        .await
        .unwrap()
}

/// Waits until the registration is over and returns its state.
async fn settled(handle: &ServerHandle) -> WebhookRegistration {
    let mut rx = handle.brightpearl_webhooks();
    tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(WebhookRegistration::is_settled),
    )
    .await
    .expect("the registration settles in time")
    .expect("the server is running")
    .clone()
}

fn outcomes(state: &WebhookRegistration) -> Vec<(String, SubscriptionOutcome)> {
    match state {
        WebhookRegistration::Finished { subscriptions } => subscriptions
            .iter()
            .map(|s| (s.event.clone(), s.outcome))
            .collect(),
        other => panic!("not finished: {other:?}"),
    }
}

fn brightpearl(sandbox: &Sandbox) -> brightpearl_client::Client {
    let settings = relay::embedded::settings_for(&sandbox.credentials());
    FlowContext::from_settings(
        &settings,
        Arc::new(SqliteStore::in_memory().unwrap()),
        Arc::new(RelayConfig::default()),
    )
    .unwrap()
    .brightpearl
    .expect("the sandbox's Brightpearl")
}

/// The generated webhook calls with the client's account filled in.
trait Hooks {
    /// Subscribes `request`: the new webhook's id.
    async fn create_hook(&self, request: &WebhookRequest) -> brightpearl_client::Result<i64>;
    /// Every webhook ("nothing found" is none).
    async fn hooks(&self) -> brightpearl_client::Result<Vec<Webhook>>;
}

impl Hooks for brightpearl_client::Client {
    async fn create_hook(&self, request: &WebhookRequest) -> brightpearl_client::Result<i64> {
        let path = CreateWebhookPath {
            account: self.account().to_owned(),
        };
        Ok(self.create_webhook(&path, request).await?.response)
    }

    async fn hooks(&self) -> brightpearl_client::Result<Vec<Webhook>> {
        let path = ListWebhooksPath {
            account: self.account().to_owned(),
        };
        Ok(self.list_webhooks(&path).await.or_empty()?.response)
    }
}

/// The sandbox's webhooks, by id.
async fn webhooks(sandbox: &Sandbox) -> Vec<Webhook> {
    let mut all = brightpearl(sandbox).hooks().await.unwrap();
    all.sort_by_key(|w| w.id);
    all
}

fn uri(secret: &str) -> String {
    format!("{PUBLIC_URL}/brightpearl/webhooks?secret={secret}")
}

/// Webhooks of `event` at `uri`.
fn at<'a>(all: &'a [Webhook], event: &str, uri: &str) -> Vec<&'a Webhook> {
    all.iter()
        .filter(|w| {
            w.subscribe_to.as_ref().map(WebhookEventName::as_str) == Some(event)
                && w.uri_template.as_deref() == Some(uri)
        })
        .collect()
}

fn our_request(event: &str, uri: &str) -> WebhookRequest {
    WebhookRequest {
        subscribe_to: WebhookEventName::from(event),
        http_method: WebhookHttpMethod::Post,
        uri_template: uri.to_owned(),
        body_template: Some(serve::BRIGHTPEARL_WEBHOOK_BODY_TEMPLATE.to_owned()),
        content_type: Some("application/json".into()),
        id_set_accepted: Some(true),
        quality_of_service: Some(1),
    }
}

/// Webhook creations the sandbox received.
fn creations(sandbox: &Sandbox) -> usize {
    let state = sandbox.state();
    state.faults.count(
        "POST",
        &format!(
            "/public-api/{}/integration-service/webhook",
            state.config.brightpearl.account
        ),
    )
}

async fn get(handle: &ServerHandle, path: &str) -> common::Answer {
    common::http("GET", &format!("{}{path}", handle.base_url()), None).await
}

/// The value of one sample of the metrics text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn each_event_is_subscribed_once_and_restarts_create_nothing_new() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    // Another integration's subscription to the same event (another destination) stays.
    let foreign = brightpearl(&sandbox)
        .create_hook(&our_request(
            ON_HAND,
            "https://shipstation.example/hooks?secret=theirs",
        ))
        .await
        .unwrap();

    // First start: both default events registered.
    let handle = start(
        &sandbox,
        store.clone(),
        config(Some(PUBLIC_URL)),
        secrets(Some(SECRET)),
    )
    .await;
    let state = settled(&handle).await;
    assert_eq!(
        outcomes(&state),
        vec![
            (ON_HAND.to_owned(), SubscriptionOutcome::Registered),
            (SHIPPED.to_owned(), SubscriptionOutcome::Registered)
        ]
    );
    let all = webhooks(&sandbox).await;
    assert_eq!(all.len(), 3, "{all:?}");
    let mut ids = Vec::new();
    for event in [ON_HAND, SHIPPED] {
        let ours = at(&all, event, &uri(SECRET));
        assert_eq!(ours.len(), 1, "{event}: {all:?}");
        let hook = ours[0];
        assert_eq!(hook.http_method, Some(WebhookHttpMethod::Post));
        assert_eq!(hook.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            (hook.id_set_accepted, hook.quality_of_service),
            (Some(true), Some(1))
        );
        let template = hook.body_template.as_deref().unwrap();
        for variable in [
            "${account-code}",
            "${resource-type}",
            "${resource-id}",
            "${lifecycle-event}",
            "${full-event}",
            "${raised-on}",
            "${brightpearl-version}",
        ] {
            assert!(template.contains(variable), "{variable} in {template}");
        }
        assert_eq!(state.subscription(event).unwrap().webhook_id, Some(hook.id));
        ids.push(hook.id);
    }
    assert!(
        all.iter().any(|w| w.id == foreign),
        "the other integration's webhook is untouched"
    );

    // /healthz and /metrics show the outcome, never the secret.
    let health = get(&handle, "/healthz").await;
    assert_eq!(health.status, 200);
    assert!(!health.body.contains(SECRET), "{}", health.body);
    let webhooks_health = &health.json()["brightpearl_webhooks"];
    assert_eq!(webhooks_health["state"], "finished", "{webhooks_health}");
    assert_eq!(webhooks_health["subscriptions"][0]["event"], ON_HAND);
    assert_eq!(webhooks_health["subscriptions"][0]["outcome"], "registered");
    assert_eq!(
        webhooks_health["subscriptions"][0]["uri"],
        format!("{PUBLIC_URL}/brightpearl/webhooks?secret=[redacted]")
    );
    let metrics = get(&handle, "/metrics").await.body;
    assert!(!metrics.contains(SECRET));
    assert_eq!(
        metric(
            &metrics,
            &format!(
                "relay_brightpearl_webhook_subscriptions{{event=\"{ON_HAND}\",outcome=\"registered\"}}"
            )
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            &format!(
                "relay_brightpearl_webhook_subscriptions{{event=\"{ON_HAND}\",outcome=\"failed\"}}"
            )
        ),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "relay_brightpearl_webhook_registration{state=\"finished\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(!format!("{:?}", handle.brightpearl_webhooks().borrow()).contains(SECRET));
    handle.shutdown().await;

    // A restart over the same store and sandbox: already present, nothing created.
    let before = creations(&sandbox);
    let handle = start(
        &sandbox,
        store.clone(),
        config(Some(PUBLIC_URL)),
        secrets(Some(SECRET)),
    )
    .await;
    let state = settled(&handle).await;
    assert_eq!(
        outcomes(&state),
        vec![
            (ON_HAND.to_owned(), SubscriptionOutcome::AlreadyPresent),
            (SHIPPED.to_owned(), SubscriptionOutcome::AlreadyPresent)
        ]
    );
    assert_eq!(creations(&sandbox), before, "no webhook created on restart");
    assert_eq!(
        webhooks(&sandbox).await,
        all,
        "the webhooks are as they were"
    );
    let metrics = get(&handle, "/metrics").await.body;
    assert_eq!(
        metric(
            &metrics,
            &format!(
                "relay_brightpearl_webhook_subscriptions{{event=\"{SHIPPED}\",outcome=\"already_present\"}}"
            )
        ),
        Some(1.0),
        "{metrics}"
    );
    handle.shutdown().await;

    // A duplicate of ours (e.g. made by hand) is removed; the oldest is kept.
    let duplicate = brightpearl(&sandbox)
        .create_hook(&our_request(SHIPPED, &uri(SECRET)))
        .await
        .unwrap();
    let handle = start(
        &sandbox,
        store.clone(),
        config(Some(PUBLIC_URL)),
        secrets(Some(SECRET)),
    )
    .await;
    let state = settled(&handle).await;
    let shipped = state.subscription(SHIPPED).unwrap();
    assert_eq!(
        (shipped.outcome, shipped.webhook_id, shipped.removed.clone()),
        (
            SubscriptionOutcome::AlreadyPresent,
            Some(ids[1]),
            vec![duplicate]
        )
    );
    assert_eq!(webhooks(&sandbox).await, all);
    handle.shutdown().await;

    // A rotated secret: each subscription is replaced by one with the new secret.
    let rotated = "bp-secret-2";
    let before = creations(&sandbox);
    let handle = start(
        &sandbox,
        store.clone(),
        config(Some(PUBLIC_URL)),
        secrets(Some(rotated)),
    )
    .await;
    let state = settled(&handle).await;
    assert_eq!(
        outcomes(&state),
        vec![
            (ON_HAND.to_owned(), SubscriptionOutcome::Replaced),
            (SHIPPED.to_owned(), SubscriptionOutcome::Replaced)
        ]
    );
    assert_eq!(creations(&sandbox), before + 2);
    let now = webhooks(&sandbox).await;
    assert_eq!(now.len(), 3, "{now:?}");
    for (event, old) in [ON_HAND, SHIPPED].into_iter().zip(&ids) {
        assert!(
            at(&now, event, &uri(SECRET)).is_empty(),
            "the stale {event} subscription is gone"
        );
        let fresh = at(&now, event, &uri(rotated));
        assert_eq!(fresh.len(), 1, "{event}: {now:?}");
        let report = state.subscription(event).unwrap();
        assert_eq!(
            (report.webhook_id, report.removed.clone()),
            (Some(fresh[0].id), vec![*old])
        );
    }
    let health = get(&handle, "/healthz").await;
    assert!(
        !health.body.contains(rotated) && !health.body.contains(SECRET),
        "{}",
        health.body
    );
    assert_eq!(
        health.json()["brightpearl_webhooks"]["subscriptions"][1]["outcome"],
        "replaced"
    );
    handle.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_event_taken_out_of_the_configuration_is_unsubscribed() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let client = brightpearl(&sandbox);
    // Ours for an event no longer configured (even with an older secret), and another
    // integration's subscription to that event.
    client
        .create_hook(&our_request("product.modified", &uri(SECRET)))
        .await
        .unwrap();
    client
        .create_hook(&our_request("product.modified", &uri("older")))
        .await
        .unwrap();
    let foreign = client
        .create_hook(&our_request(
            "product.modified",
            "https://shipstation.example/hooks",
        ))
        .await
        .unwrap();

    let mut only_shipped = config(Some(PUBLIC_URL));
    only_shipped.serve.brightpearl_webhook_events = vec![SHIPPED.to_owned()];
    let handle = start(&sandbox, store.clone(), only_shipped, secrets(Some(SECRET))).await;
    let state = settled(&handle).await;
    assert_eq!(
        outcomes(&state),
        vec![
            (SHIPPED.to_owned(), SubscriptionOutcome::Registered),
            (
                "product.modified".to_owned(),
                SubscriptionOutcome::Unsubscribed
            )
        ]
    );
    assert_eq!(
        state
            .subscription("product.modified")
            .unwrap()
            .removed
            .len(),
        2
    );
    let all = webhooks(&sandbox).await;
    assert!(
        all.iter().any(|w| w.id == foreign),
        "another integration's subscription stays: {all:?}"
    );
    assert_eq!(all.len(), 2, "{all:?}");
    handle.shutdown().await;

    // An emptied list unsubscribes the rest.
    let mut none = config(Some(PUBLIC_URL));
    none.serve.brightpearl_webhook_events = Vec::new();
    let handle = start(&sandbox, store, none, secrets(Some(SECRET))).await;
    assert_eq!(
        outcomes(&settled(&handle).await),
        vec![(SHIPPED.to_owned(), SubscriptionOutcome::Unsubscribed)]
    );
    assert_eq!(
        webhooks(&sandbox)
            .await
            .iter()
            .map(|w| w.id)
            .collect::<Vec<_>>(),
        vec![foreign]
    );
    handle.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_starting_together_leave_one_subscription_per_event() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let (a, b) = tokio::join!(
        start(
            &sandbox,
            Arc::new(SqliteStore::in_memory().unwrap()),
            config(Some(PUBLIC_URL)),
            secrets(Some(SECRET))
        ),
        start(
            &sandbox,
            Arc::new(SqliteStore::in_memory().unwrap()),
            config(Some(PUBLIC_URL)),
            secrets(Some(SECRET))
        ),
    );
    let (state_a, state_b) = tokio::join!(settled(&a), settled(&b));
    let all = webhooks(&sandbox).await;
    assert_eq!(all.len(), 2, "{all:?}");
    for event in [ON_HAND, SHIPPED] {
        let ours = at(&all, event, &uri(SECRET));
        assert_eq!(ours.len(), 1, "{event}: {all:?}");
        // Both servers report the one that stayed.
        for state in [&state_a, &state_b] {
            let report = state.subscription(event).unwrap();
            assert_ne!(report.outcome, SubscriptionOutcome::Failed, "{report:?}");
            assert_eq!(report.webhook_id, Some(ours[0].id), "{report:?}");
        }
    }
    a.shutdown().await;
    b.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn an_event_the_account_cannot_subscribe_to_fails_alone_and_the_receivers_work() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let unknown = "product.modified.teleported";
    let mut relay_config = config(Some(PUBLIC_URL));
    relay_config.serve.brightpearl_webhook_events =
        vec![ON_HAND.into(), unknown.into(), SHIPPED.into()];
    let handle = start(&sandbox, store.clone(), relay_config, secrets(Some(SECRET))).await;
    let state = settled(&handle).await;
    assert_eq!(
        outcomes(&state),
        vec![
            (ON_HAND.to_owned(), SubscriptionOutcome::Registered),
            (unknown.to_owned(), SubscriptionOutcome::Failed),
            (SHIPPED.to_owned(), SubscriptionOutcome::Registered),
        ]
    );
    let failed = state.subscription(unknown).unwrap();
    let error = failed.error.as_deref().unwrap();
    assert!(
        error.contains("INTC-064") && error.contains(unknown),
        "{error}"
    );
    assert!(!error.contains(SECRET), "{error}");
    assert_eq!(failed.webhook_id, None);
    assert!(!failed.transient, "a refusal is not tried again");
    let all = webhooks(&sandbox).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(at(&all, unknown, &uri(SECRET)).is_empty());

    let health = get(&handle, "/healthz").await;
    assert_eq!(
        health.status, 200,
        "a refused event does not make serve unhealthy"
    );
    let health = health.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(
        health["brightpearl_webhooks"]["subscriptions"][1]["outcome"],
        "failed"
    );
    assert!(
        health["brightpearl_webhooks"]["subscriptions"][1]["error"]
            .as_str()
            .unwrap()
            .contains("INTC-064")
    );
    let metrics = get(&handle, "/metrics").await.body;
    assert_eq!(
        metric(
            &metrics,
            &format!(
                "relay_brightpearl_webhook_subscriptions{{event=\"{unknown}\",outcome=\"failed\"}}"
            )
        ),
        Some(1.0),
        "{metrics}"
    );

    // The receivers still work.
    let body = json!({"accountCode": "sandbox", "resourceType": "product", "id": "1001", "lifecycleEvent": "modified", "fullEvent": ON_HAND, "raisedOn": "2026-03-02T08:00:00Z"});
    let reply = common::http(
        "POST",
        &format!("{}/brightpearl/webhooks?secret={SECRET}", handle.base_url()),
        Some(body),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let keys: Vec<String> = store
        .inbox_pending(10)
        .unwrap()
        .into_iter()
        .map(|i| i.key)
        .collect();
    assert_eq!(keys, vec![format!("{ON_HAND}:1001")]);
    handle.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn registration_is_skipped_naming_what_is_missing() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let mut off = config(Some(PUBLIC_URL));
    off.serve.register_brightpearl_webhooks = false;
    for (relay_config, secret, expected) in [
        (config(None), Some(SECRET), "serve.public_url"),
        (
            config(Some(PUBLIC_URL)),
            None,
            "RELAY_BRIGHTPEARL_WEBHOOK_SECRET",
        ),
        (off, Some(SECRET), "serve.register_brightpearl_webhooks"),
    ] {
        let handle = start(&sandbox, store.clone(), relay_config, secrets(secret)).await;
        let state = settled(&handle).await;
        let WebhookRegistration::Skipped { reason } = &state else {
            panic!("not skipped: {state:?}")
        };
        assert!(reason.contains(expected), "{reason}");
        let health = get(&handle, "/healthz").await.json();
        assert_eq!(health["brightpearl_webhooks"]["state"], "skipped");
        assert!(
            health["brightpearl_webhooks"]["reason"]
                .as_str()
                .unwrap()
                .contains(expected)
        );
        let metrics = get(&handle, "/metrics").await.body;
        assert_eq!(
            metric(
                &metrics,
                "relay_brightpearl_webhook_registration{state=\"skipped\"}"
            ),
            Some(1.0),
            "{metrics}"
        );
        handle.shutdown().await;
    }
    assert!(webhooks(&sandbox).await.is_empty());
    assert_eq!(creations(&sandbox), 0);
    sandbox.shutdown().await;
}

/// A sandbox whose Brightpearl webhook listing (`GET …/integration-service/webhook`) has `rule`.
async fn sandbox_with_listing_fault(rule: FaultRule) -> Sandbox {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let account = sandbox.state().config.brightpearl.account.clone();
    let path_prefix = format!("/public-api/{account}/integration-service/webhook");
    sandbox
        .state()
        .faults
        .add(FaultRule {
            path_prefix,
            method: Some("GET".into()),
            ..rule
        })
        .unwrap();
    sandbox
}

#[tokio::test]
async fn the_receivers_answer_while_brightpearl_is_slow_to_list_webhooks() {
    // The listing hangs far longer than the test runs; shutdown cancels the registration.
    let sandbox = sandbox_with_listing_fault(FaultRule {
        latency_ms: 600_000,
        ..FaultRule::default()
    })
    .await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let handle = start(
        &sandbox,
        store.clone(),
        config(Some(PUBLIC_URL)),
        secrets(Some(SECRET)),
    )
    .await;
    assert!(!handle.brightpearl_webhooks().borrow().is_settled());
    let body = json!({"resourceType": "goods-out-note", "id": "7", "fullEvent": SHIPPED});
    let reply = common::http(
        "POST",
        &format!("{}/brightpearl/webhooks?secret={SECRET}", handle.base_url()),
        Some(body),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let health = get(&handle, "/healthz").await.json();
    assert_eq!(
        health["brightpearl_webhooks"]["state"], "pending",
        "{health}"
    );
    assert_eq!(
        health["brightpearl_webhooks"]["events"],
        json!([ON_HAND, SHIPPED])
    );
    assert_eq!(store.inbox_pending(10).unwrap().len(), 1);
    tokio::time::timeout(Duration::from_secs(20), handle.shutdown())
        .await
        .expect("shutdown does not wait for Brightpearl");
    // The sandbox still serves the hanging request; it ends with the test's runtime.
    drop(sandbox);
}

#[tokio::test]
async fn a_brightpearl_server_error_is_reported_as_transient() {
    let rule = FaultRule {
        error_rate: 1.0,
        error_statuses: vec![500],
        remaining: Some(1),
        ..FaultRule::default()
    };
    let sandbox = sandbox_with_listing_fault(rule).await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    // No retry here (it waits a minute); the retry loop itself is tested on paused time.
    let mut config = config(Some(PUBLIC_URL));
    config.serve.brightpearl_webhook_retry_secs = 0;
    let handle = start(&sandbox, store, config, secrets(Some(SECRET))).await;
    let state = settled(&handle).await;
    for event in [ON_HAND, SHIPPED] {
        let report = state.subscription(event).unwrap();
        assert_eq!(report.outcome, SubscriptionOutcome::Failed, "{report:?}");
        assert!(report.transient, "{report:?}");
        assert!(
            report
                .error
                .as_deref()
                .unwrap()
                .contains("cannot list the existing webhooks"),
            "{report:?}"
        );
    }
    let health = get(&handle, "/healthz").await.json();
    assert_eq!(
        health["brightpearl_webhooks"]["subscriptions"][0]["transient"], true,
        "{health}"
    );
    assert!(webhooks(&sandbox).await.is_empty());
    handle.shutdown().await;
    sandbox.shutdown().await;
}

/// Norce's on-hand rows (sandbox admin route).
async fn onhand(sandbox: &Sandbox, sku: &str, warehouse: &str) -> Option<String> {
    let rows = common::http(
        "GET",
        &format!("{}/_sandbox/norce/onhands", sandbox.base_url()),
        None,
    )
    .await
    .json();
    rows["onhands"]
        .as_array()?
        .iter()
        .find(|r| r["partNo"] == sku && r["warehouseCode"] == warehouse)
        .and_then(|r| r["onhandValue"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_change_in_brightpearl_reaches_norce_through_the_registered_webhook() {
    let mut sandbox_config = SandboxConfig {
        dataset: DatasetConfig {
            skus: 20,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    };
    // Import jobs finish at once, so no pump of the virtual clock is needed.
    sandbox_config.norce.job_delay_secs = 0.0;
    let sandbox = common::sandbox_with(sandbox_config).await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());

    // Serve on its own loopback address, which is also what it registers.
    let mut relay_config = config(None);
    let listener = serve::bind(&relay_config.serve).await.unwrap();
    let public_url = format!("http://{}", listener.local_addr().unwrap());
    relay_config.serve.public_url = Some(public_url.clone());
    let ctx = common::context_with_store(&sandbox, relay_config, store.clone());
    // A first full stock pass, so the webhook's pass is a pending one for the changed product.
    relay::flows::stock::run(&ctx)
        .await
        .expect("full stock pass");
    assert_ne!(
        onhand(&sandbox, "SKU-00007", "WH2").await.as_deref(),
        Some("99")
    );
    let onhand_imports = |sandbox: &Sandbox| {
        sandbox
            .state()
            .faults
            .count("POST", "/commerce/connect/4.0/Product/ImportOnhands")
    };
    let imports_before = onhand_imports(&sandbox);

    let handle = serve::start(ctx.clone(), secrets(Some(SECRET)), listener)
        .await
        .unwrap();
    let state = settled(&handle).await;
    assert_eq!(
        outcomes(&state),
        vec![
            (ON_HAND.to_owned(), SubscriptionOutcome::Registered),
            (SHIPPED.to_owned(), SubscriptionOutcome::Registered)
        ]
    );
    let all = webhooks(&sandbox).await;
    assert_eq!(
        at(
            &all,
            ON_HAND,
            &format!("{public_url}/brightpearl/webhooks?secret={SECRET}")
        )
        .len(),
        1,
        "{all:?}"
    );
    let mut accepted = handle.accepted();
    let mut processed = handle.processed();
    let mut runs = handle.runs();

    // On-hand changes in Brightpearl: the sandbox fires product.modified.on-hand-modified.
    let changed = common::http(
        "POST",
        &format!(
            "{}/_sandbox/brightpearl/products/1007/stock",
            sandbox.base_url()
        ),
        Some(json!({"warehouseId": 3, "onHand": 99})),
    )
    .await;
    assert!(changed.status < 300, "{} {}", changed.status, changed.body);
    tokio::time::timeout(Duration::from_secs(20), accepted.wait_for(|n| *n >= 1))
        .await
        .expect("the webhook arrives")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), processed.wait_for(|n| *n >= 1))
        .await
        .expect("the item is ingested")
        .unwrap();
    assert_eq!(handle.metrics().requests("brightpearl-webhook", 200), 1);

    // The stock flow's pass (triggered by the ingest) imports the product into Norce.
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let seen = *runs.borrow_and_update();
            let record = store.get("stock", "1007").unwrap();
            if record.as_ref().is_some_and(|r| r.status == Status::Done)
                && onhand(&sandbox, "SKU-00007", "WH2").await.as_deref() == Some("99")
            {
                return record;
            }
            runs.wait_for(|n| *n > seen)
                .await
                .expect("the server is running");
        }
    })
    .await
    .expect("the change reaches Norce");
    assert_eq!(done.unwrap().status, Status::Done);
    assert_eq!(
        onhand_imports(&sandbox),
        imports_before + 1,
        "one import, for the changed product only"
    );

    // The sandbox recorded the delivery as successful, with the secret redacted in its log.
    let deliveries = common::http(
        "GET",
        &format!(
            "{}/_sandbox/brightpearl/webhook-deliveries",
            sandbox.base_url()
        ),
        None,
    )
    .await;
    let deliveries: Value = deliveries.json();
    let delivery = deliveries
        .as_array()
        .and_then(|d| d.iter().find(|d| d["event"] == ON_HAND))
        .unwrap_or_else(|| panic!("{deliveries}"));
    assert_eq!(delivery["delivered"], true, "{delivery}");
    assert_eq!(
        delivery["resourceIds"]
            .as_str()
            .or(delivery["resource_ids"].as_str()),
        Some("1007"),
        "{delivery}"
    );
    handle.shutdown().await;
    sandbox.shutdown().await;
}

/// Reads the child's stderr line by line (kept in `seen`) until a line satisfies `wanted`.
async fn read_until<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
    seen: &mut Vec<String>,
    wanted: impl Fn(&str) -> bool,
) -> String {
    loop {
        let raw = lines
            .next_line()
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("relay serve ended; its stderr:\n{}", seen.join("\n")));
        let line = strip_ansi(&raw);
        seen.push(line.clone());
        if wanted(&line) {
            return line;
        }
    }
}

/// `text` without terminal colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `http://127.0.0.1:port` that follows `marker` in `line`.
fn url_after(line: &str, marker: &str) -> String {
    let rest = &line[line
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {line}"))
        + marker.len()..];
    rest.split(|c: char| c.is_whitespace() || c == ';' || c == ')')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_serve_with_the_embedded_sandbox_registers_there_and_receives_its_stock_webhooks() {
    use tokio::io::AsyncBufReadExt as _;
    let dir = std::env::temp_dir().join(format!("relay-serve-webhooks-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config_file = dir.join("relay.toml");
    std::fs::write(&config_file, "[serve]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .env_clear()
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .current_dir(&dir)
        .args(["serve", "--sandbox", "--config"])
        .arg(&config_file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        let line = read_until(&mut lines, &mut seen, |l| {
            l.contains("serving against the embedded sandbox at")
        })
        .await;
        let sandbox_url = url_after(&line, "embedded sandbox at ");
        let checked = read_until(&mut lines, &mut seen, |l| {
            l.contains("Brightpearl webhook subscriptions checked")
        })
        .await;
        assert!(
            checked.contains("registered=2") && checked.contains("failed=0"),
            "{checked}"
        );
        let relay_url = match seen
            .iter()
            .find(|l| l.contains("relay serve: listening on "))
        {
            Some(line) => url_after(line, "listening on "),
            None => url_after(
                &read_until(&mut lines, &mut seen, |l| {
                    l.contains("relay serve: listening on ")
                })
                .await,
                "listening on ",
            ),
        };

        // The sandbox holds one subscription per default event, pointing at this server.
        let credentials = sandbox::Credentials {
            norce: sandbox::norce::credentials(&Default::default(), &sandbox_url),
            nshift: sandbox::nshift::credentials(&Default::default(), &sandbox_url),
            brightpearl: sandbox::brightpearl::credentials(&Default::default(), &sandbox_url),
        };
        let settings = relay::embedded::settings_for(&credentials);
        let ctx = FlowContext::from_settings(
            &settings,
            Arc::new(SqliteStore::in_memory().unwrap()),
            Arc::new(RelayConfig::default()),
        )
        .unwrap();
        let hooks = ctx.brightpearl.as_ref().unwrap().hooks().await.unwrap();
        let prefix = format!("{relay_url}/brightpearl/webhooks?secret=");
        let mut events: Vec<&str> = hooks
            .iter()
            .filter_map(|w| w.subscribe_to.as_ref().map(WebhookEventName::as_str))
            .collect();
        events.sort_unstable();
        assert_eq!(events, [SHIPPED, ON_HAND], "{hooks:?}");
        let secret = hooks[0]
            .uri_template
            .as_deref()
            .and_then(|u| u.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{hooks:?}"))
            .to_owned();
        assert!(secret.len() >= 16, "a generated secret");
        let health = common::http("GET", &format!("{relay_url}/healthz"), None)
            .await
            .json();
        assert_eq!(
            health["brightpearl_webhooks"]["subscriptions"][0]["outcome"], "registered",
            "{health}"
        );

        // A stock change in the sandbox arrives at the receiver.
        let changed = common::http(
            "POST",
            &format!("{sandbox_url}/_sandbox/brightpearl/products/1001/stock"),
            Some(json!({"warehouseId": 2, "onHand": 7})),
        )
        .await;
        assert!(changed.status < 300, "{}", changed.body);
        read_until(&mut lines, &mut seen, |l| {
            l.contains("brightpearl-webhook") && l.contains("stored in the inbox")
        })
        .await;
        secret
    })
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    // The sandbox mode's fresh data folder, named on the listening line.
    if let Some(data) = seen.iter().find_map(|l| {
        l.split_once("; state in ")
            .map(|(_, rest)| rest.trim_end_matches(". Ctrl-C stops.").to_owned())
    }) && data.contains("relay-sandbox-serve-")
    {
        let _ = std::fs::remove_dir_all(data);
    }
    let secret =
        outcome.unwrap_or_else(|_| panic!("timed out; stderr so far:\n{}", seen.join("\n")));
    // Printed once, in the labelled block of generated credentials; in no log line.
    let printed: Vec<&String> = seen.iter().filter(|l| l.contains(&secret)).collect();
    assert_eq!(printed.len(), 1, "{printed:?}");
    assert!(
        printed[0]
            .trim_start()
            .starts_with(&format!("RELAY_BRIGHTPEARL_WEBHOOK_SECRET={secret}")),
        "{printed:?}"
    );
}
