//! `relay serve` end to end: Norce pushes an order, then pushes it again changed (another SKU,
//! another quantity) before relay processed it. The second answer says the order was updated;
//! once processed, Brightpearl has the changed order and the inbox history shows both versions.
//!
//! The pushes go to a server without flows (what is queued stays queued, as when the flows are
//! busy or relay restarts with a backlog); a server with the flows then starts over the same
//! store and drains it. Network on 127.0.0.1 only; waits on the server's counters, no sleeps.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use relay::config::RelayConfig;
use relay::flows::FlowContext;
use relay::serve::{self, SecretString, ServeSecrets, ServerHandle};
use relay::state::{SqliteStore, Status, Store};
use sandbox::{DatasetConfig, Sandbox, SandboxConfig};
use serde_json::{Value, json};

const USER: &str = "norce";
const PASSWORD: &str = "order-pw-repush";

/// A sandbox with a Brightpearl account of its own (the client's throttle pool is per account
/// and process-wide, so tests in parallel on one account would wait for each other).
async fn sandbox() -> Sandbox {
    static ACCOUNTS: AtomicUsize = AtomicUsize::new(1);
    let mut config = SandboxConfig {
        dataset: DatasetConfig {
            orders: 2,
            skus: 12,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    };
    config.norce.seed_delivered_every = 0;
    config.brightpearl.account = format!("repushacct{}", ACCOUNTS.fetch_add(1, Ordering::Relaxed));
    common::sandbox_with(config).await
}

/// Pushes only (no polling, no tracking, no periodic passes): the run after an ingest does the
/// work.
fn config() -> RelayConfig {
    let mut config = RelayConfig::default();
    // Labels and state files of the flows go to the temp directory, not the crate's folder.
    config.state.dir =
        std::env::temp_dir().join(format!("relay-serve-repush-{}", std::process::id()));
    config.orders.poll = false;
    config.shipping.poll = false;
    config.shipping.track = false;
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    config.serve.shipping_every_secs = 0;
    config.serve.orders_every_secs = 0;
    config.serve.stock_reconcile_every_secs = 0;
    config.serve.run_after_ingest_ms = 0;
    config.serve.inbox_sweep_secs = 0;
    config.serve.register_brightpearl_webhooks = false;
    config
}

fn secrets() -> ServeSecrets {
    ServeSecrets {
        order_receiver_password: Some(SecretString::from(PASSWORD)),
        ..ServeSecrets::default()
    }
}

/// The `OrderRequest` Norce pushes for `order` (the sandbox's admin JSON), with `lines` as
/// (SKU, quantity) instead of the order's own.
fn push_of(order: &Value, lines: &[(&str, i64)]) -> String {
    let customer = &order["customer"];
    let person = json!({
        "FirstName": customer["firstName"], "LastName": customer["lastName"], "Email": customer["email"], "CellPhone": customer["phone"],
        "Address": {"Line1": customer["street"], "ZipCode": customer["zip"], "City": customer["city"], "Country": customer["country"]}
    });
    let items: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, (sku, quantity))| json!({"LineNo": i + 1, "PartNo": sku, "Description": "Item", "Quantity": quantity, "UnitPrice": 100, "VatRate": 25}))
        .collect();
    json!({
        "ClientOrderRef": order["clientOrderRef"].to_string(),
        "CustomerOrderRef": order["orderNo"],
        "CurrencyCode": "SEK",
        "SellTo": {"Person": person.clone()}, "ShipTo": {"Person": person},
        "ShippingAdvice": {"DeliveryMethodCode": order["deliveryMethod"]},
        "Items": items
    })
    .to_string()
}

/// Pushes `body` to the order receiver; returns the status and Norce's `Description`.
async fn push(handle: &ServerHandle, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/norce/order-receiver", handle.base_url()))
        .basic_auth(USER, Some(PASSWORD))
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["StatusCode"], "OK", "{answer}");
    (status, answer["Description"].as_str().unwrap().to_owned())
}

async fn start(
    sandbox: &Sandbox,
    store: Arc<dyn Store>,
    with_flows: bool,
) -> (ServerHandle, FlowContext) {
    let config = config();
    let listener = serve::bind(&config.serve).await.unwrap();
    let ctx = common::context_with_store(sandbox, config, store);
    let handle = if with_flows {
        serve::start(ctx.clone(), secrets(), listener).await
    } else {
        serve::start_with_flows(ctx.clone(), secrets(), listener, Vec::new()).await
    }
    .unwrap();
    (handle, ctx)
}

/// The Brightpearl sales order rows of a Norce order number, as (SKU, quantity).
async fn brightpearl_rows(sandbox: &Sandbox, order_no: &str) -> Vec<(String, f64)> {
    let orders = common::http(
        "GET",
        &format!(
            "{}/_sandbox/brightpearl/orders?externalRef={order_no}",
            sandbox.base_url()
        ),
        None,
    )
    .await
    .json();
    let orders = orders.as_array().unwrap();
    assert_eq!(orders.len(), 1, "one Brightpearl order: {orders:#?}");
    orders[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let quantity = match &row["quantity"] {
                Value::String(text) => text.parse().unwrap(),
                other => other.as_f64().unwrap(),
            };
            (row["sku"].as_str().unwrap().to_owned(), quantity)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_order_pushed_again_before_processing_is_the_one_imported() {
    let sandbox = sandbox().await;
    let placed = common::http(
        "POST",
        &format!("{}/_sandbox/norce/orders", sandbox.base_url()),
        Some(json!({"customerId": 5001, "lines": [{"sku": "SKU-00002", "quantity": 2}]})),
    )
    .await;
    assert_eq!(placed.status, 201, "{}", placed.body);
    let placed = placed.json();
    let order_no = placed["orderNo"].as_str().unwrap().to_owned();
    let key = placed["clientOrderRef"]
        .to_string()
        .trim_matches('"')
        .to_owned();
    let first = push_of(&placed, &[("SKU-00002", 2)]);
    let changed = push_of(&placed, &[("SKU-00005", 3)]);

    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let (receivers, _) = start(&sandbox, store.clone(), false).await;
    assert_eq!(
        push(&receivers, &first).await,
        (200, format!("order {key} queued"))
    );
    assert_eq!(
        push(&receivers, &changed).await,
        (200, format!("order {key} updated (version 2)"))
    );
    // Norce retrying the changed push is a no-op, as before.
    assert_eq!(
        push(&receivers, &changed).await,
        (200, format!("order {key} already queued"))
    );
    let queued = store.inbox_pending(10).unwrap();
    assert_eq!(queued.len(), 1, "only the newest version is queued");
    assert_eq!(queued[0].body, changed);
    receivers.shutdown().await;

    // The flows start over the same store and drain the queue.
    let (handle, ctx) = start(&sandbox, store.clone(), true).await;
    let mut runs = handle.runs();
    tokio::time::timeout(Duration::from_secs(60), async {
        while !ctx
            .store
            .get("orders", &order_no)
            .unwrap()
            .is_some_and(|r| r.status == Status::Done)
        {
            runs.changed().await.unwrap();
        }
    })
    .await
    .expect("the orders pass imports the pushed order");
    handle.shutdown().await;

    assert_eq!(
        brightpearl_rows(&sandbox, &order_no).await,
        [("SKU-00005".to_owned(), 3.0)],
        "Brightpearl has the changed order (other SKU, other quantity)"
    );
    // The history shows both versions and which superseded which.
    let history = store
        .inbox_history(serve::SOURCE_NORCE_ORDER, &key)
        .unwrap();
    assert_eq!(history.len(), 2, "{history:#?}");
    let (older, newer) = (&history[0], &history[1]);
    assert_eq!((older.version, newer.version), (1, 2));
    assert_eq!(older.superseded_by, Some(newer.id));
    assert_eq!(newer.superseded_by, None);
    assert_eq!(
        (older.body.as_str(), newer.body.as_str()),
        (first.as_str(), changed.as_str())
    );
    assert!(older.processed_at.is_some() && newer.processed_at.is_some());
    assert!(store.inbox_pending(10).unwrap().is_empty());
    sandbox.shutdown().await;
}
