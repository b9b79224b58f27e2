//! The go-live cutoff (`orders.since`, `shipping.since`) against the in-process sandbox: orders
//! placed before it are never imported into Brightpearl, confirmed back or booked in nShift,
//! whether polled, pushed, announced by an event or queued before the cutoff was configured,
//! and whatever the cursor says; orders placed after it go through. And the cursor floor:
//! `relay cursor set` (with and without `--force`) and the console.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use norce_client::models::connect::operations::ConnectApi as _;
use norce_client::models::connect::{ConnectOrderStatus, SendOrderStatusRequest};
use relay::config::RelayConfig;
use relay::config::orders::Cutoff;
use relay::flows::orders::{self, OrdersConfig};
use relay::flows::shipping::{self, ShippingConfig};
use relay::flows::{FlowContext, Ingested};
use relay::state::{InboxItem, InboxPut, SqliteStore, Status, Store};
use sandbox::Sandbox;
use serde_json::{Value, json};

/// A sandbox of `orders` new Norce orders with a Brightpearl account of its own.
async fn sandbox(orders: usize) -> Sandbox {
    common::new_orders_sandbox(orders, "cutoffacct").await
}

async fn admin(sb: &Sandbox, method: &str, path: &str, body: Option<Value>) -> Value {
    let answer = common::http(method, &format!("{}{path}", sb.base_url()), body).await;
    assert!(
        (200..300).contains(&answer.status),
        "{method} {path}: {} {}",
        answer.status,
        answer.body
    );
    answer.json()
}

/// The sandbox's Norce orders, oldest first.
async fn norce_orders(sb: &Sandbox) -> Vec<Value> {
    let mut orders = admin(sb, "GET", "/_sandbox/norce/orders", None)
        .await
        .as_array()
        .unwrap()
        .clone();
    orders.sort_by_key(created);
    orders
}

async fn norce_order(sb: &Sandbox, order_no: &str) -> Value {
    admin(
        sb,
        "GET",
        &format!("/_sandbox/norce/orders/{order_no}"),
        None,
    )
    .await
}

fn created(order: &Value) -> chrono::DateTime<chrono::Utc> {
    order["created"].as_str().unwrap().parse().unwrap()
}

fn order_no(order: &Value) -> String {
    order["orderNo"].as_str().unwrap().to_owned()
}

/// A cutoff between the seeded orders: the creation time of the first order placed strictly
/// after the one before it, at about the middle. Returns it with the orders before and from it.
fn split(orders: &[Value]) -> (Cutoff, Vec<Value>, Vec<Value>) {
    let middle = (orders.len() / 2..orders.len())
        .find(|&i| created(&orders[i]) > created(&orders[i - 1]))
        .expect("the seeded orders were not all placed at once");
    let cutoff = Cutoff::new(created(&orders[middle]));
    (cutoff, orders[..middle].to_vec(), orders[middle..].to_vec())
}

async fn brightpearl_orders(sb: &Sandbox, order_no: &str) -> usize {
    admin(
        sb,
        "GET",
        &format!("/_sandbox/brightpearl/orders?externalRef={order_no}"),
        None,
    )
    .await
    .as_array()
    .unwrap()
    .len()
}

/// nShift shipments of an order number.
async fn shipments(sb: &Sandbox, order_no: &str) -> usize {
    admin(
        sb,
        "GET",
        &format!("/_sandbox/nshift/shipments?orderNo={order_no}"),
        None,
    )
    .await
    .as_array()
    .unwrap()
    .len()
}

/// Every Brightpearl sales order of the sandbox.
async fn all_brightpearl_orders(sb: &Sandbox) -> usize {
    admin(sb, "GET", "/_sandbox/brightpearl/orders", None)
        .await
        .as_array()
        .unwrap()
        .len()
}

/// Neither imported into Brightpearl nor confirmed back to Norce.
async fn assert_not_imported(sb: &Sandbox, order: &Value) {
    let no = order_no(order);
    assert_eq!(brightpearl_orders(sb, &no).await, 0, "{no} was imported");
    let now = norce_order(sb, &no).await;
    assert_eq!(now["status"], "Created", "{no} was confirmed: {now}");
    assert!(now["erpOrderNo"].is_null(), "{no}: {now}");
}

/// Imported once and confirmed back with the ERP number.
async fn assert_imported(sb: &Sandbox, order: &Value) {
    let no = order_no(order);
    assert_eq!(brightpearl_orders(sb, &no).await, 1, "{no}");
    let now = norce_order(sb, &no).await;
    assert_eq!(now["status"], "Confirmed", "{no}: {now}");
}

fn inbox_item(store: &dyn Store, source: &str, key: &str, body: &str) -> InboxItem {
    let InboxPut::Inserted(id) = store.inbox_put(source, key, body).unwrap() else {
        panic!("duplicate inbox item {key}")
    };
    store
        .inbox_pending(100)
        .unwrap()
        .into_iter()
        .find(|i| i.id == id)
        .unwrap()
}

/// The `OrderRequest` Norce pushes for a sandbox order (admin JSON), submitted when it was
/// placed.
fn push_of(order: &Value) -> String {
    let customer = &order["customer"];
    let address = json!({
        "Line1": customer["street"], "ZipCode": customer["zip"], "City": customer["city"],
        "Country": customer["country"], "ShippingPhoneNumber": customer["phone"],
    });
    let person = json!({
        "FirstName": customer["firstName"], "LastName": customer["lastName"],
        "Email": customer["email"], "CellPhone": customer["phone"], "Address": address,
    });
    let items: Vec<Value> = order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| json!({"LineNo": l["lineNo"], "PartNo": l["partNo"], "Description": l["name"], "Quantity": l["quantity"], "UnitPrice": 100, "VatRate": 25, "TypeGroup": "Physical"}))
        .collect();
    json!({
        "ClientOrderRef": order["clientOrderRef"].to_string(),
        "CustomerOrderRef": order["orderNo"],
        "CurrencyCode": "SEK",
        "SubmitDate": order["created"],
        "SellTo": {"Person": person}, "BillTo": {"Person": person}, "ShipTo": {"Person": person},
        "ShippingAdvice": {
            "DeliveryMethodCode": order["deliveryMethod"],
            "PickupStore": order["pickupPoint"].as_str().map(|p| json!({"Code": p, "IsDropPoint": true})),
        },
        "Items": items,
    })
    .to_string()
}

/// An order placed now (after any cutoff between the seeded orders).
async fn place_order(sb: &Sandbox) -> Value {
    admin(
        sb,
        "POST",
        "/_sandbox/norce/orders",
        Some(json!({"customerId": 5001, "deliveryMethod": "POSTNORD_HOME", "lines": [{"sku": "SKU-00002", "quantity": 1}]})),
    )
    .await
}

fn orders_config(orders: OrdersConfig) -> RelayConfig {
    RelayConfig {
        orders,
        ..RelayConfig::default()
    }
}

/// The skip reason recorded on an entity (its step, and for shipping its payload).
fn skipped_step(store: &dyn Store, flow: &str, source_id: &str) -> String {
    let record = store
        .get(flow, source_id)
        .unwrap()
        .unwrap_or_else(|| panic!("{flow} {source_id} is recorded"));
    assert_eq!(record.status, Status::Skipped, "{record:?}");
    record.step.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_orders_poll_never_imports_an_order_placed_before_orders_since_whatever_the_cursor() {
    let sb = sandbox(8).await;
    let (cutoff, before, after) = split(&norce_orders(&sb).await);
    let ctx = common::context(
        &sb,
        orders_config(OrdersConfig {
            since: Some(cutoff),
            ..OrdersConfig::default()
        }),
    );
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(
        (report.booked, report.written_back, report.failed),
        (after.len() as u64, after.len() as u64, 0),
        "{report:?}"
    );
    for order in &before {
        assert_not_imported(&sb, order).await;
        assert!(
            ctx.store.get("orders", &order_no(order)).unwrap().is_none(),
            "the poll does not even read {}",
            order_no(order)
        );
    }
    for order in &after {
        assert_imported(&sb, order).await;
    }

    // A cursor moved before the cutoff (forced) reads nothing older.
    ctx.store
        .set_cursor("orders", "2000-01-01T00:00:00Z")
        .unwrap();
    let made = all_brightpearl_orders(&sb).await;
    let again = orders::run(&ctx).await.unwrap();
    assert_eq!((again.booked, again.failed), (0, 0), "{again:?}");
    assert_eq!(all_brightpearl_orders(&sb).await, made);
    for order in &before {
        assert_not_imported(&sb, order).await;
    }

    // Without the cutoff the same orders would have been imported: the test sees the feature.
    let open = common::context_with_store(
        &sb,
        orders_config(OrdersConfig::default()),
        ctx.store.clone(),
    );
    let report = orders::run(&open).await.unwrap();
    assert_eq!(report.booked, before.len() as u64, "{report:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_order_placed_before_orders_since_is_skipped_and_one_placed_after_is_imported() {
    let sb = sandbox(4).await;
    let (cutoff, before, _) = split(&norce_orders(&sb).await);
    let config = orders_config(OrdersConfig {
        since: Some(cutoff),
        poll: false,
        ..OrdersConfig::default()
    });
    let ctx = common::context(&sb, config);
    let old = &before[0];
    let old_no = order_no(old);
    let item = inbox_item(ctx.store.as_ref(), "norce-order", &old_no, &push_of(old));
    assert_eq!(
        orders::ingest(&ctx, &item).await.unwrap(),
        Ingested::Nothing
    );
    let step = skipped_step(ctx.store.as_ref(), "orders", &old_no);
    assert!(
        step.contains("`orders.since`") && step.contains(&cutoff.to_string()),
        "{step}"
    );

    let new = place_order(&sb).await;
    let new_no = order_no(&new);
    let item = inbox_item(ctx.store.as_ref(), "norce-order", &new_no, &push_of(&new));
    assert_eq!(orders::ingest(&ctx, &item).await.unwrap(), Ingested::Work);

    // An older order pushed while no cutoff was configured, still pending when it is.
    let queued = &before[1];
    let queued_no = order_no(queued);
    let open = common::context_with_store(
        &sb,
        orders_config(OrdersConfig {
            poll: false,
            ..OrdersConfig::default()
        }),
        ctx.store.clone(),
    );
    let item = inbox_item(
        ctx.store.as_ref(),
        "norce-order",
        &queued_no,
        &push_of(queued),
    );
    assert_eq!(orders::ingest(&open, &item).await.unwrap(), Ingested::Work);

    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(
        (
            report.booked,
            report.written_back,
            report.skipped,
            report.failed
        ),
        (1, 1, 1, 0),
        "{report:?}"
    );
    assert_imported(&sb, &new).await;
    assert_not_imported(&sb, old).await;
    assert_not_imported(&sb, queued).await;
    let step = skipped_step(ctx.store.as_ref(), "orders", &queued_no);
    assert!(step.contains("`orders.since`"), "{step}");
    assert!(ctx.store.dead_letters().unwrap().is_empty());
}

/// A shipping data folder of its own (labels go to `<dir>/labels`).
fn shipping_config(test: &str, shipping: ShippingConfig) -> (RelayConfig, PathBuf) {
    let dir = std::env::temp_dir().join(format!("relay-cutoff-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = RelayConfig {
        shipping,
        ..RelayConfig::default()
    };
    config.state.dir = dir.clone();
    (config, dir)
}

/// Confirms an order in Norce (as the ERP would): it stays a qualifying status, and its
/// `updated` moves to now, after the cutoff.
async fn confirm_in_norce(ctx: &FlowContext, order: &Value) {
    let request = SendOrderStatusRequest {
        client_order_ref: order["clientOrderRef"].as_i64().map(|r| r as i32),
        erp_order_no: Some(format!("ERP-{}", order["id"])),
        order_status: ConnectOrderStatus::from("Acknowledged"),
        account_id: None,
        infos: None,
    };
    ctx.norce
        .as_ref()
        .unwrap()
        .send_order_status(&request)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_placed_before_shipping_since_are_never_booked_polled_changed_or_announced() {
    let sb = sandbox(8).await;
    let (cutoff, before, after) = split(&norce_orders(&sb).await);
    let (config, dir) = shipping_config(
        "poll",
        ShippingConfig {
            since: Some(cutoff),
            ..ShippingConfig::default()
        },
    );
    let ctx = common::context(&sb, config);
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        (report.booked, report.failed),
        (after.len() as u64, 0),
        "{report:?}; dead letters: {:?}",
        ctx.store.dead_letters().unwrap()
    );
    for order in &after {
        assert_eq!(
            shipments(&sb, &order_no(order)).await,
            1,
            "{}",
            order_no(order)
        );
    }
    for order in &before {
        assert_eq!(
            shipments(&sb, &order_no(order)).await,
            0,
            "{}",
            order_no(order)
        );
    }

    // Placed before the cutoff but changed after it (confirmed by the ERP: still a qualifying
    // status, `updated` now), with the cursor forced back: still not booked.
    for order in &before {
        confirm_in_norce(&ctx, order).await;
        assert_eq!(
            norce_order(&sb, &order_no(order)).await["status"],
            "Confirmed"
        );
    }
    ctx.store
        .set_cursor("shipping", "2000-01-01T00:00:00Z")
        .unwrap();
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!((report.booked, report.failed), (0, 0), "{report:?}");

    // An order event for an old order queues it (events carry no date); reading it, the pass
    // finds it placed before the cutoff and records it skipped.
    let old = &before[0];
    let basket = old["clientOrderRef"].to_string();
    let event = json!({"ClientId": 1000, "ApplicationId": 1042, "OrderId": old["id"], "OrderNo": old["orderNo"], "ClientOrderRef": basket, "Source": "WEB"});
    let item = inbox_item(
        ctx.store.as_ref(),
        "norce-event",
        &format!("OrderConfirmedEvent:{basket}"),
        &event.to_string(),
    );
    assert_eq!(shipping::ingest(&ctx, &item).await.unwrap(), Ingested::Work);
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        (report.booked, report.skipped, report.failed),
        (0, 1, 0),
        "{report:?}"
    );
    let record = ctx.store.get("shipping", &basket).unwrap().unwrap();
    assert_eq!(record.status, Status::Skipped);
    let payload: Value = serde_json::from_str(record.payload.as_deref().unwrap()).unwrap();
    let reason = payload["skipped"].as_str().unwrap();
    assert!(
        reason.contains("`shipping.since`") && reason.contains(&cutoff.to_string()),
        "{reason}"
    );
    for order in &before {
        assert_eq!(
            shipments(&sb, &order_no(order)).await,
            0,
            "{}",
            order_no(order)
        );
    }

    // Without the cutoff the same pass would have booked them (the skipped one stays skipped:
    // a finished entity is never processed again).
    let mut open_config = (*ctx.config).clone();
    open_config.shipping.since = None;
    let open = common::context_with_store(&sb, open_config, ctx.store.clone());
    let report = shipping::run(&open).await.unwrap();
    assert_eq!(report.booked, before.len() as u64 - 1, "{report:?}");
    assert_eq!(shipments(&sb, &order_no(old)).await, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_order_placed_before_shipping_since_is_skipped_and_one_placed_after_is_booked() {
    let sb = sandbox(4).await;
    let (cutoff, before, _) = split(&norce_orders(&sb).await);
    let (config, dir) = shipping_config(
        "push",
        ShippingConfig {
            since: Some(cutoff),
            poll: false,
            ..ShippingConfig::default()
        },
    );
    let ctx = common::context(&sb, config.clone());
    let old = &before[0];
    let old_basket = old["clientOrderRef"].to_string();
    let item = inbox_item(
        ctx.store.as_ref(),
        "norce-order",
        &old_basket,
        &push_of(old),
    );
    assert_eq!(
        shipping::ingest(&ctx, &item).await.unwrap(),
        Ingested::Nothing
    );
    let step = skipped_step(ctx.store.as_ref(), "shipping", &old_basket);
    assert!(step.contains("`shipping.since`"), "{step}");

    let new = place_order(&sb).await;
    let new_basket = new["clientOrderRef"].to_string();
    let item = inbox_item(
        ctx.store.as_ref(),
        "norce-order",
        &new_basket,
        &push_of(&new),
    );
    assert_eq!(shipping::ingest(&ctx, &item).await.unwrap(), Ingested::Work);

    // Pushed while no cutoff was configured, still pending when it is: skipped when read.
    let queued = &before[1];
    let queued_basket = queued["clientOrderRef"].to_string();
    let mut open_config = config.clone();
    open_config.shipping.since = None;
    let open = common::context_with_store(&sb, open_config, ctx.store.clone());
    let item = inbox_item(
        ctx.store.as_ref(),
        "norce-order",
        &queued_basket,
        &push_of(queued),
    );
    assert_eq!(
        shipping::ingest(&open, &item).await.unwrap(),
        Ingested::Work
    );

    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        (report.booked, report.skipped, report.failed),
        (1, 1, 0),
        "{report:?}; dead letters: {:?}",
        ctx.store.dead_letters().unwrap()
    );
    assert_eq!(shipments(&sb, &order_no(&new)).await, 1);
    assert_eq!(shipments(&sb, &order_no(old)).await, 0);
    assert_eq!(shipments(&sb, &order_no(queued)).await, 0);
    let record = ctx.store.get("shipping", &queued_basket).unwrap().unwrap();
    assert_eq!(record.status, Status::Skipped);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A data folder with a `relay.toml` that sets the go-live cutoffs; removed on drop.
struct Workspace {
    root: PathBuf,
}

impl Workspace {
    fn new(name: &str) -> Self {
        let root =
            std::env::temp_dir().join(format!("relay-cutoff-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let data = root.join("data");
        std::fs::write(
            root.join("relay.toml"),
            format!(
                "[state]\ndir = {:?}\n[orders]\nsince = \"2026-12-01\"\n[shipping]\nsince = \"2026-11-15T00:00:00+01:00\"\n",
                data.to_str().unwrap()
            ),
        )
        .unwrap();
        Self { root }
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open_in(&self.root.join("data")).unwrap()
    }

    fn relay(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_relay"))
            .env_clear()
            .current_dir(&self.root)
            .arg("cursor")
            .arg("--config")
            .arg(self.root.join("relay.toml"))
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn relay_cursor_set_refuses_a_time_before_the_cutoff_unless_forced() {
    let ws = Workspace::new("floor");
    let ok = ws.relay(&["set", "orders", "2026-12-02T00:00:00Z"]);
    assert!(ok.status.success(), "{}", said(&ok));

    let refused = ws.relay(&["set", "orders", "2026-11-01T00:00:00Z"]);
    assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
    let text = said(&refused);
    assert!(
        text.contains("`orders.since`")
            && text.contains("2026-12-01T00:00:00Z")
            && text.contains("--force"),
        "{text}"
    );
    assert_eq!(
        ws.store().cursor("orders").unwrap().as_deref(),
        Some("2026-12-02T00:00:00Z"),
        "refused: the cursor did not move"
    );
    // The shipping cutoff is its own (15 Nov, 23:00 UTC on the 14th).
    let refused = ws.relay(&["set", "shipping", "2026-11-14T22:00:00Z"]);
    assert_eq!(refused.status.code(), Some(2), "{}", said(&refused));
    assert!(
        said(&refused).contains("`shipping.since`"),
        "{}",
        said(&refused)
    );
    let ok = ws.relay(&["set", "shipping", "2026-11-14T23:00:00Z"]);
    assert!(ok.status.success(), "at the cutoff: {}", said(&ok));
    // Flows without a cutoff are not limited.
    let ok = ws.relay(&["set", "stock", "2020-01-01T00:00:00Z"]);
    assert!(ok.status.success(), "{}", said(&ok));

    let forced = ws.relay(&["set", "orders", "2026-11-01T00:00:00Z", "--force"]);
    assert!(forced.status.success(), "{}", said(&forced));
    let text = said(&forced);
    assert!(text.contains("2026-11-01T00:00:00Z"), "{text}");
    assert!(
        text.contains("orders.since") && text.contains("never imported"),
        "a forced cursor says what it does not change: {text}"
    );
    assert_eq!(
        ws.store().cursor("orders").unwrap().as_deref(),
        Some("2026-11-01T00:00:00Z")
    );
    let audit = ws.store().audit_log(10).unwrap();
    assert!(
        audit.iter().any(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("2026-11-01T00:00:00Z"))),
        "{audit:?}"
    );
}

#[test]
fn operator_set_cursor_takes_the_floor_from_the_configuration() {
    let store = SqliteStore::in_memory().unwrap();
    let config = RelayConfig::parse("[shipping]\nsince = \"2026-12-01\"\n", "relay.toml").unwrap();
    let floor = relay::operator::CursorFloor::of(&config, "shipping");
    let err = relay::operator::set_cursor(
        &store,
        "shipping",
        "2026-11-30T00:00:00Z",
        "cli",
        floor.as_ref(),
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`shipping.since`") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(store.cursor("shipping").unwrap(), None);
    relay::operator::set_cursor(
        &store,
        "shipping",
        "2026-11-30T00:00:00Z",
        "cli",
        floor.as_ref(),
        true,
    )
    .unwrap();
    assert_eq!(
        store.cursor("shipping").unwrap().as_deref(),
        Some("2026-11-30T00:00:00Z")
    );
}

/// The console's confirmation says the cutoff and refuses a time before it; the POST too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_a_cursor_before_the_cutoff_and_names_it() {
    use relay::serve::{self, SecretString, ServeSecrets};
    use reqwest::StatusCode;
    use reqwest::header::{COOKIE, SET_COOKIE};

    const TOKEN: &str = "console-token-for-cutoff-0123456789";
    let dir = std::env::temp_dir().join(format!("relay-cutoff-console-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config =
        RelayConfig::parse("[orders]\nsince = \"2026-12-01\"\n", "relay.toml").unwrap();
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    config.serve.inbox_sweep_secs = 0;
    config.serve.register_brightpearl_webhooks = false;
    config.state.dir = dir.clone();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    store.set_cursor("orders", "2026-12-05T00:00:00Z").unwrap();
    let ctx = FlowContext {
        store: store.clone(),
        norce: None,
        nshift: None,
        brightpearl: None,
        config: Arc::new(config.clone()),
        stopping: Default::default(),
        coordination: Default::default(),
        pass_origin: Default::default(),
    };
    let secrets = ServeSecrets {
        console_token: Some(SecretString::from(TOKEN)),
        ..ServeSecrets::default()
    };
    let listener = serve::bind(&config.serve).await.unwrap();
    let handle = serve::start_with_flows(ctx, secrets, listener, Vec::new())
        .await
        .unwrap();
    let base = handle.base_url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http
        .post(format!("{base}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}&name=Ed&next=%2Fconsole"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let get = |path: String| {
        let request = http.get(format!("{base}{path}")).header(COOKIE, &cookie);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };

    let (status, body) =
        get("/console/cursors/orders/confirm?value=2026-11-01T00:00:00Z".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("orders.since") && body.contains("2026-12-01T00:00:00Z"),
        "{body}"
    );
    assert!(
        !body.contains("id=\"cursor-set-form\""),
        "no way to confirm: {body}"
    );

    let (status, body) =
        get("/console/cursors/orders/confirm?value=2026-12-02T00:00:00Z".into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("id=\"cursor-confirmation\"")
            && body.contains("id=\"cursor-set-form\"")
            && body.contains("orders.since")
            && body.contains("never imported"),
        "the confirmation names the cutoff: {body}"
    );

    // Posting a time before the cutoff directly is refused too, and changes nothing.
    let (_, audit) = get("/console/audit".into()).await;
    let at = audit.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let csrf = audit[at..at + 64].to_owned();
    let response = http
        .post(format!("{base}/console/cursors/orders"))
        .header(COOKIE, &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&value=2026-11-01T00%3A00%3A00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        store.cursor("orders").unwrap().as_deref(),
        Some("2026-12-05T00:00:00Z")
    );
    handle.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_example_file_documents_both_cutoffs() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("relay.example.toml"))
            .unwrap();
    for section in ["[orders]", "[shipping]"] {
        let start = text
            .find(&format!("\n{section}\n"))
            .unwrap_or_else(|| panic!("{section}"));
        let rest = &text[start + section.len() + 2..];
        let end = rest.find("\n[").unwrap_or(rest.len());
        assert!(
            rest[..end].lines().any(|l| l
                .trim_start()
                .trim_start_matches('#')
                .trim_start()
                .starts_with("since =")),
            "{section} shows `since`"
        );
    }
}
