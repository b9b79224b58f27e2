//! One Brightpearl budget shared fairly: the flows' clients draw from the account's one limiter
//! with their priority (live order imports before a stock reconciliation), and the split shows
//! in `/metrics` and `relay status`. Paused tokio time and an in-memory transport: exact and
//! instant.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use brightpearl_client::Priority;
use relay::config::RelayConfig;
use relay::flows::{FlowContext, StopFlag};
use relay::serve::{ConnectionStats, Metrics};
use relay::state::{SqliteStore, Store};

const STAFF_TOKEN: &str = "s3cr3t-staff-token";

/// A context whose Brightpearl client answers every call with `{}` in memory and records the
/// paths it was asked for, in order.
fn context(account: &str, store: Arc<dyn Store>) -> (FlowContext, Arc<Mutex<Vec<String>>>) {
    let served: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&served);
    let transport = tower::service_fn(move |request: http::Request<Bytes>| {
        log.lock().unwrap().push(request.uri().path().to_owned());
        async {
            let response = http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Bytes::from_static(b"{}"))
                .unwrap();
            Ok(response)
        }
    });
    let client = brightpearl_client::Client::builder()
        .account(account)
        .app_ref("relay")
        .staff_token(STAFF_TOKEN.to_owned().into())
        .base_url("http://127.0.0.1:9")
        .transport(transport)
        .build()
        .unwrap();
    let ctx = FlowContext {
        store,
        norce: None,
        nshift: None,
        brightpearl: Some(client),
        config: Arc::new(RelayConfig::default()),
        stopping: StopFlag::default(),
        coordination: Default::default(),
        pass_origin: Default::default(),
    };
    (ctx, served)
}

/// One GET through `ctx`'s Brightpearl client.
async fn get(ctx: &FlowContext, path: String) {
    let client = ctx.brightpearl.as_ref().unwrap();
    let response = client
        .send_raw(http::Method::GET, &path, &[], None)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Lets every spawned task run up to its next wait.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn data_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relay-budget-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(start_paused = true)]
async fn orders_go_before_a_reconciliation_and_the_split_shows_in_metrics_and_status() {
    let dir = data_dir("split");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(&dir.join("data")).unwrap());
    let (ctx, served) = context("budgetsplit", Arc::clone(&store));
    let (stock, orders) = (ctx.for_flow("stock"), ctx.for_flow("orders"));
    assert_eq!(
        stock.brightpearl.as_ref().unwrap().budget().priority(),
        Priority::Background
    );
    assert_eq!(
        orders.brightpearl.as_ref().unwrap().budget().priority(),
        Priority::Live
    );

    // The reconciliation takes the account's whole burst (100 of the 200 a minute) ...
    for n in 0..100 {
        get(&stock, format!("/product-service/product/{n}")).await;
    }
    // ... and queues 20 more; an order import arrives behind them.
    let mut tasks = Vec::new();
    for n in 100..120 {
        let stock = stock.clone();
        tasks.push(tokio::spawn(async move {
            get(&stock, format!("/product-service/product/{n}")).await;
        }));
        settle().await;
    }
    let limiter = ctx.brightpearl.as_ref().unwrap().rate_limiter().0.clone();
    assert_eq!(limiter.queued(), (0, 20));
    let started = tokio::time::Instant::now();
    let order = {
        let orders = orders.clone();
        tokio::spawn(async move {
            get(&orders, "/order-service/order/live".to_owned()).await;
            tokio::time::Instant::now()
        })
    };
    settle().await;
    assert_eq!(limiter.queued(), (1, 20));
    let order_sent = order.await.unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let served = served.lock().unwrap().clone();
    assert_eq!(served.len(), 121, "nothing lost");
    assert_eq!(
        served[100], "/public-api/budgetsplit/order-service/order/live",
        "the order goes first"
    );
    assert!(
        served[101..]
            .iter()
            .all(|p| p.contains("/product-service/product/")),
        "the reconciliation resumes after it"
    );
    // The order waited for one permit (0.6 s at 200 a minute with a burst of 100), not 20.
    assert_eq!(order_sent - started, Duration::from_millis(600));

    // `/metrics`: requests and limiter wait per flow, by priority.
    let metrics = Metrics::default();
    metrics.watch_brightpearl(limiter.clone());
    let text = metrics.render(
        store.as_ref(),
        &["orders", "stock"],
        &ConnectionStats::default(),
        None,
    );
    assert!(
        text.contains(
            "relay_brightpearl_requests_total{flow=\"stock\",priority=\"background\"} 120\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("relay_brightpearl_requests_total{flow=\"orders\",priority=\"live\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "relay_brightpearl_limiter_wait_seconds_total{flow=\"orders\",priority=\"live\"} 0.6\n"
        ),
        "{text}"
    );
    // The 20 queued stock requests waited 2×0.6 s, 3×0.6 s, … 21×0.6 s (the order took the first slot).
    let stock_wait: f64 = (2..=21).map(|n| f64::from(n) * 0.6).sum();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(
                "relay_brightpearl_limiter_wait_seconds_total{flow=\"stock\",priority=\"background\"}",
            )
        })
        .unwrap();
    let waited: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((waited - stock_wait).abs() < 1e-6, "{line}");
    assert!(
        text.contains("relay_brightpearl_limiter_queued{priority=\"live\"} 0\n"),
        "{text}"
    );
    assert!(!text.contains(STAFF_TOKEN));

    // `relay status` (another process) reads the split from the state.
    metrics.flush_budget(store.as_ref());
    // A second flush with nothing new adds nothing.
    metrics.flush_budget(store.as_ref());
    drop(store);
    std::fs::write(
        dir.join("relay.toml"),
        format!("[state]\ndir = {:?}\n", dir.join("data").to_str().unwrap()),
    )
    .unwrap();
    let status = |json: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
        command.env_clear().current_dir(&dir).arg("status");
        command.arg("--config").arg(dir.join("relay.toml"));
        if json {
            command.arg("--json");
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let table = status(false);
    assert!(
        table.contains(
            "Brightpearl budget (last 15 minutes, 200 requests a minute per account): 121 requests"
        ),
        "{table}"
    );
    let row = |flow: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(flow))
            .unwrap_or_else(|| panic!("no row for {flow}:\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        row("orders").starts_with("orders live 1 0.1 0.6"),
        "{table}"
    );
    assert!(
        row("stock").starts_with(&format!("stock background 120 8.0 {stock_wait:.1}")),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    let flows = &json["brightpearl_budget"]["flows"];
    assert_eq!(json["brightpearl_budget"]["minutes"], 15);
    assert_eq!(flows[0]["flow"], "orders");
    assert_eq!(flows[0]["requests"], 1);
    assert_eq!(flows[0]["waited_secs"], 0.6);
    assert_eq!(flows[1]["flow"], "stock");
    assert_eq!(flows[1]["priority"], "background");
    assert_eq!(flows[1]["requests"], 120);
    assert!(!table.contains(STAFF_TOKEN) && !json.to_string().contains(STAFF_TOKEN));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn status_without_brightpearl_requests_says_so() {
    let dir = data_dir("empty");
    let store = SqliteStore::open_in(&dir.join("data")).unwrap();
    let rows = relay::budget::recent(&store, chrono::Utc::now(), 15).unwrap();
    assert!(rows.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
