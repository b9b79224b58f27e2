//! The Norce → nShift shipping flow against the in-process sandbox: exactly-once booking and
//! write-back across passes, pushes, crashes, dropped futures and backfills; permanent
//! failures; parcel status from the alerts feed.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use relay::config::RelayConfig;
use relay::flows::shipping::{self, ShippingConfig};
use relay::flows::{FlowContext, FlowReport};
use relay::state::{SqliteStore, Status, Store};
use sandbox::{FaultRule, Sandbox, SandboxConfig};
use serde_json::Value;

/// A fresh data folder per test (labels go to `<dir>/labels`).
fn data_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relay-shipping-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(dir: &std::path::Path, shipping: ShippingConfig) -> RelayConfig {
    let mut config = RelayConfig {
        shipping,
        ..RelayConfig::default()
    };
    config.state.dir = dir.to_path_buf();
    config
}

/// GET on the sandbox's admin API.
async fn admin(sandbox: &Sandbox, path_and_query: &str) -> Value {
    let answer = common::http(
        "GET",
        &format!("{}{path_and_query}", sandbox.base_url()),
        None,
    )
    .await;
    assert_eq!(answer.status, 200, "{path_and_query}: {}", answer.body);
    answer.json()
}

async fn orders(sandbox: &Sandbox) -> Vec<Value> {
    admin(sandbox, "/_sandbox/norce/orders")
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// (nShift shipments, Norce delivery notes) of an order number.
async fn counts(sandbox: &Sandbox, order_no: &str) -> (usize, usize) {
    let shipments = admin(
        sandbox,
        &format!("/_sandbox/nshift/shipments?orderNo={order_no}"),
    )
    .await
    .as_array()
    .unwrap()
    .len();
    let notes = admin(
        sandbox,
        &format!("/_sandbox/norce/delivery-notes?orderNo={order_no}"),
    )
    .await
    .as_array()
    .unwrap()
    .len();
    (shipments, notes)
}

/// The seeded orders that qualify by default (status Created), by order number.
async fn qualifying(sandbox: &Sandbox) -> Vec<String> {
    orders(sandbox)
        .await
        .iter()
        .filter(|o| o["status"] == "Created")
        .map(|o| o["orderNo"].as_str().unwrap().to_owned())
        .collect()
}

/// Every qualifying order has exactly one shipment, one delivery note, a PDF label and the
/// status Delivered.
async fn assert_shipped_once(sandbox: &Sandbox, dir: &std::path::Path, order_nos: &[String]) {
    for order_no in order_nos {
        assert_eq!(
            counts(sandbox, order_no).await,
            (1, 1),
            "{order_no}: one shipment, one delivery note"
        );
        let order = admin(sandbox, &format!("/_sandbox/norce/orders/{order_no}")).await;
        assert_eq!(order["status"], "Delivered", "{order_no}");
        let shipment = &admin(
            sandbox,
            &format!("/_sandbox/nshift/shipments?orderNo={order_no}"),
        )
        .await[0];
        let note = &order["deliveryNotes"][0];
        let parcels: Vec<&Value> = note["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["parcelNumber"])
            .collect();
        let booked: Vec<&Value> = shipment["parcelNos"].as_array().unwrap().iter().collect();
        assert_eq!(
            parcels, booked,
            "{order_no}: the note carries the booked parcel numbers"
        );
        let label = std::fs::read(dir.join("labels").join(format!("{order_no}-1.pdf"))).unwrap();
        assert!(label.starts_with(b"%PDF"), "{order_no}: the label is a PDF");
    }
}

fn entities(ctx: &FlowContext, status: Status) -> usize {
    entities_in(ctx.store.as_ref(), status)
}

fn entities_in(store: &dyn Store, status: Status) -> usize {
    store
        .list(Some(shipping::FLOW), Some(status))
        .unwrap()
        .len()
}

fn payload(ctx: &FlowContext, source_id: &str) -> Value {
    let record = ctx.store.get(shipping::FLOW, source_id).unwrap().unwrap();
    serde_json::from_str(record.payload.as_deref().unwrap()).unwrap()
}

/// Passes until nothing is pending (at most `max`), as a scheduler would run them.
async fn run_until_settled(ctx: &FlowContext, max: usize) -> Vec<FlowReport> {
    let mut reports = Vec::new();
    for _ in 0..max {
        reports.push(shipping::run(ctx).await.unwrap());
        if entities(ctx, Status::Pending) == 0 {
            break;
        }
    }
    reports
}

/// The `OrderRequest` Norce would push for a sandbox order (admin JSON), as inbox body.
fn order_request(order: &Value, zip: Option<&str>) -> String {
    let customer = &order["customer"];
    let address = serde_json::json!({
        "Line1": customer["street"], "ZipCode": zip.map_or(customer["zip"].clone(), Value::from),
        "City": customer["city"], "Country": customer["country"], "ShippingPhoneNumber": customer["phone"],
    });
    let person = serde_json::json!({
        "FirstName": customer["firstName"], "LastName": customer["lastName"], "Email": customer["email"],
        "CellPhone": customer["phone"], "Address": address,
    });
    let items: Vec<Value> = order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| serde_json::json!({"LineNo": l["lineNo"], "PartNo": l["partNo"], "Description": l["name"], "Quantity": l["quantity"], "TypeGroup": "Physical"}))
        .collect();
    serde_json::json!({
        "ClientOrderRef": order["clientOrderRef"].to_string(),
        "CustomerOrderRef": order["orderNo"],
        "CurrencyCode": "SEK",
        "SellTo": {"Person": person}, "BillTo": {"Person": person}, "ShipTo": {"Person": person},
        "ShippingAdvice": {
            "DeliveryMethodCode": order["deliveryMethod"],
            "PickupStore": order["pickupPoint"].as_str().map(|p| serde_json::json!({"Code": p, "IsDropPoint": true})),
        },
        "Items": items,
    })
    .to_string()
}

async fn ingest_push(ctx: &FlowContext, body: &str, key: &str) {
    ctx.store.inbox_put("norce-order", key, body).unwrap();
    for item in ctx.store.inbox_pending(100).unwrap() {
        assert!(shipping::accepts(&item.source));
        let _ = shipping::ingest(ctx, &item).await.unwrap();
        ctx.store.inbox_done(item.id).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_pass_ships_every_qualifying_order_once_and_a_second_pass_does_nothing() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("full");
    let ctx = common::context(&sandbox, config(&dir, ShippingConfig::default()));
    let qualifying = qualifying(&sandbox).await;
    assert!(
        qualifying.len() >= 10,
        "the seeded dataset has orders to ship"
    );

    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        report.failed,
        0,
        "{report:?}; dead letters: {:?}",
        ctx.store.dead_letters().unwrap()
    );
    assert_eq!(
        (report.booked, report.written_back, report.done),
        (
            qualifying.len() as u64,
            qualifying.len() as u64,
            qualifying.len() as u64
        )
    );
    assert_shipped_once(&sandbox, &dir, &qualifying).await;
    // The seeded Delivered orders are not shipped.
    for order in orders(&sandbox)
        .await
        .iter()
        .filter(|o| !qualifying.contains(&o["orderNo"].as_str().unwrap().to_owned()))
    {
        assert_eq!(
            counts(&sandbox, order["orderNo"].as_str().unwrap()).await.0,
            0
        );
    }
    // Every shipment went to the mapped service, pickup orders to a pickup point, as test shipments.
    for order in orders(&sandbox)
        .await
        .iter()
        .filter(|o| qualifying.contains(&o["orderNo"].as_str().unwrap().to_owned()))
    {
        let shipment = &admin(
            &sandbox,
            &format!(
                "/_sandbox/nshift/shipments?orderNo={}",
                order["orderNo"].as_str().unwrap()
            ),
        )
        .await[0];
        let stored = &admin(
            &sandbox,
            &format!(
                "/_sandbox/nshift/stored-shipments?orderNo={}",
                order["orderNo"].as_str().unwrap()
            ),
        )
        .await[0];
        let pickup = order["deliveryMethod"] == "POSTNORD_PICKUP";
        assert_eq!(shipment["agentId"].is_string(), pickup, "{shipment}");
        assert_eq!(stored["status"], "PRINTED", "{stored}");
    }
    let record = ctx.store.get(shipping::FLOW, "400001").unwrap().unwrap();
    assert_eq!(
        (record.status, record.step.as_deref()),
        (Status::Done, Some("status_sent"))
    );
    assert!(
        record.target_id.is_some(),
        "the nShift shipment id is the target id"
    );
    assert!(
        ctx.store.cursor(shipping::FLOW).unwrap().is_some(),
        "the poll cursor is kept"
    );

    // Second pass: nothing is booked or written again.
    let faults = &sandbox.state().faults;
    let (stores, notes) = (
        faults.count("POST", "/rs-extapi/v1/stored-shipments"),
        faults.count("POST", "/commerce/connect/4.0/Order/CreateDeliveryNote"),
    );
    let again = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        (again.booked, again.written_back, again.failed),
        (0, 0, 0),
        "{again:?}"
    );
    assert_eq!(
        faults.count("POST", "/rs-extapi/v1/stored-shipments"),
        stores
    );
    assert_eq!(
        faults.count("POST", "/commerce/connect/4.0/Order/CreateDeliveryNote"),
        notes
    );
    assert_shipped_once(&sandbox, &dir, &qualifying).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ingested_order_push_is_shipped() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("push");
    let ctx = common::context(
        &sandbox,
        config(
            &dir,
            ShippingConfig {
                poll: false,
                ..ShippingConfig::default()
            },
        ),
    );
    let order = admin(&sandbox, "/_sandbox/norce/orders/NC-100002").await;
    assert_eq!(order["status"], "Created");

    ingest_push(&ctx, &order_request(&order, None), "400002").await;
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        (report.booked, report.done, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    assert_shipped_once(&sandbox, &dir, &["NC-100002".to_owned()]).await;
    assert_eq!(
        counts(&sandbox, "NC-100001").await,
        (0, 0),
        "only the pushed order (no polling)"
    );
    assert_eq!(payload(&ctx, "400002")["origin"], "push");

    // The same push again (Norce retries) changes nothing.
    ingest_push(&ctx, &order_request(&order, None), "400002").await;
    let again = shipping::run(&ctx).await.unwrap();
    assert_eq!((again.booked, again.written_back), (0, 0));
    assert_eq!(counts(&sandbox, "NC-100002").await, (1, 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn crashes_after_commit_resume_without_duplicates() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("crash");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(&dir).unwrap());
    let faults = &sandbox.state().faults;
    // nShift stores and prints, Norce creates the note, and the answers are lost.
    faults
        .add(FaultRule {
            path_prefix: "/rs-extapi/v1/stored-shipments".into(),
            method: Some("POST".into()),
            commit_then_fail_rate: 1.0,
            remaining: Some(6),
            ..FaultRule::default()
        })
        .unwrap();
    faults
        .add(FaultRule {
            path_prefix: "/commerce/connect/4.0/Order/CreateDeliveryNote".into(),
            method: Some("POST".into()),
            commit_then_fail_rate: 1.0,
            remaining: Some(4),
            ..FaultRule::default()
        })
        .unwrap();
    let qualifying = qualifying(&sandbox).await;

    let first = common::context_with_store(
        &sandbox,
        config(&dir, ShippingConfig::default()),
        store.clone(),
    );
    let report = shipping::run(&first).await.unwrap();
    assert!(
        report.failed > 0,
        "the lost answers fail some items: {report:?}"
    );
    drop(first);

    // A restart: new clients over the same state.
    let second = common::context_with_store(
        &sandbox,
        config(&dir, ShippingConfig::default()),
        store.clone(),
    );
    run_until_settled(&second, 4).await;
    assert_eq!(
        entities(&second, Status::Done),
        qualifying.len(),
        "dead letters: {:?}",
        second.store.dead_letters().unwrap()
    );
    assert!(second.store.dead_letters().unwrap().is_empty());
    assert_shipped_once(&sandbox, &dir, &qualifying).await;
    // Every injected fault took effect: the writes happened and their answers were lost.
    let lost = |path: &str| {
        faults
            .requests()
            .iter()
            .filter(|r| r.path.starts_with(path) && r.fault.is_some())
            .count()
    };
    assert_eq!(lost("/rs-extapi/v1/stored-shipments"), 6);
    assert_eq!(lost("/commerce/connect/4.0/Order/CreateDeliveryNote"), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_run_resumes_in_a_fresh_context_without_duplicates() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("dropped");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(&dir).unwrap());
    // Slow platform answers, so the budgets below end the passes mid-way.
    sandbox
        .state()
        .faults
        .add(FaultRule {
            path_prefix: "/rs-extapi/v1".into(),
            latency_ms: 40,
            ..FaultRule::default()
        })
        .unwrap();
    sandbox
        .state()
        .faults
        .add(FaultRule {
            path_prefix: "/commerce/connect".into(),
            latency_ms: 40,
            ..FaultRule::default()
        })
        .unwrap();
    let qualifying = qualifying(&sandbox).await;
    // One worker restarted over the same state (as with `RELAY_WORKER_ID`): the leases a
    // dropped pass left are its own, so the next context takes the items at once instead of
    // after the lease time.
    let worker = relay::flows::context::Coordination {
        worker: "restarted-worker".into(),
        ..Default::default()
    };
    for budget_ms in [60, 150, 300] {
        let mut ctx = common::context_with_store(
            &sandbox,
            config(
                &dir,
                ShippingConfig {
                    track: false,
                    ..ShippingConfig::default()
                },
            ),
            store.clone(),
        );
        ctx.coordination = worker.clone();
        // Dropping the pass's future is what a crash or a shutdown does to it.
        let _ = tokio::time::timeout(Duration::from_millis(budget_ms), shipping::run(&ctx)).await;
    }
    assert!(
        entities_in(store.as_ref(), Status::Pending) > 0,
        "the budgets cut the passes short"
    );
    let mut ctx = common::context_with_store(
        &sandbox,
        config(&dir, ShippingConfig::default()),
        store.clone(),
    );
    ctx.coordination = worker;
    run_until_settled(&ctx, 3).await;
    assert_eq!(
        entities(&ctx, Status::Done),
        qualifying.len(),
        "dead letters: {:?}",
        ctx.store.dead_letters().unwrap()
    );
    assert_shipped_once(&sandbox, &dir, &qualifying).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn moving_the_cursor_back_never_ships_a_done_order_again() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("backfill");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let ctx = common::context_with_store(
        &sandbox,
        config(&dir, ShippingConfig::default()),
        store.clone(),
    );
    let qualifying = qualifying(&sandbox).await;
    shipping::run(&ctx).await.unwrap();
    assert_shipped_once(&sandbox, &dir, &qualifying).await;

    // Backfill from long ago, with a filter that also takes Delivered orders, as an operator
    // would to catch up: the orders shipped before are seen again but left alone.
    store
        .set_cursor(shipping::FLOW, "2020-01-01T00:00:00Z")
        .unwrap();
    let wide = ShippingConfig {
        order_statuses: vec!["Created".into(), "Confirmed".into(), "Delivered".into()],
        ..ShippingConfig::default()
    };
    let backfill = common::context_with_store(&sandbox, config(&dir, wide), store.clone());
    let report = shipping::run(&backfill).await.unwrap();
    assert!(
        report.done >= qualifying.len() as u64,
        "the shipped orders are seen again as done: {report:?}"
    );
    assert_shipped_once(&sandbox, &dir, &qualifying).await;
    let cursor = store.cursor(shipping::FLOW).unwrap().unwrap();
    assert!(
        cursor.as_str() > "2020-01-01T00:00:00Z",
        "the cursor moves forward again: {cursor}"
    );

    let err = {
        store.set_cursor(shipping::FLOW, "last tuesday").unwrap();
        shipping::run(&backfill).await.unwrap_err().to_string()
    };
    assert!(err.contains("relay cursor set shipping"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_address_fails_permanently_with_nshifts_message() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("invalid");
    let ctx = common::context(
        &sandbox,
        config(
            &dir,
            ShippingConfig {
                poll: false,
                ..ShippingConfig::default()
            },
        ),
    );
    let order = admin(&sandbox, "/_sandbox/norce/orders/NC-100003").await;
    let bad_zip = if order["customer"]["country"] == "NO" || order["customer"]["country"] == "DK" {
        "12"
    } else {
        "1234"
    };
    ingest_push(&ctx, &order_request(&order, Some(bad_zip)), "400003").await;

    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!((report.failed, report.booked), (1, 0), "{report:?}");
    let letters = ctx.store.dead_letters().unwrap();
    assert_eq!(
        letters.len(),
        1,
        "permanent at once, no retries: {letters:?}"
    );
    assert_eq!(letters[0].source_id, "400003");
    assert!(
        letters[0].error.contains("Not valid postal code"),
        "nShift's validation message: {}",
        letters[0].error
    );
    assert!(
        letters[0].payload.as_deref().unwrap().contains(bad_zip),
        "the failing data is kept for inspection"
    );
    assert_eq!(
        ctx.store
            .get(shipping::FLOW, "400003")
            .unwrap()
            .unwrap()
            .status,
        Status::Failed
    );
    assert_eq!(counts(&sandbox, "NC-100003").await, (0, 0));
    // The invalid stored shipment is removed, so a replay can store a corrected one.
    let stored = admin(
        &sandbox,
        "/_sandbox/nshift/stored-shipments?orderNo=NC-100003",
    )
    .await;
    assert!(
        stored
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["deleted"] == true),
        "{stored}"
    );

    // Replay: the entity re-reads the order from Norce (whose address is valid) and ships it.
    ctx.store.requeue(letters[0].id).unwrap();
    let replay = shipping::run(&ctx).await.unwrap();
    assert_eq!((replay.booked, replay.failed), (1, 0), "{replay:?}");
    assert_shipped_once(&sandbox, &dir, &["NC-100003".to_owned()]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn unmapped_delivery_methods_are_dead_lettered_with_the_key_to_add_or_skipped() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("unmapped");
    let shipping_config = ShippingConfig {
        poll: false,
        skip_delivery_methods: vec!["STORE_PICKUP".into()],
        ..ShippingConfig::default()
    };
    let ctx = common::context(&sandbox, config(&dir, shipping_config));
    let mut first = admin(&sandbox, "/_sandbox/norce/orders/NC-100001").await;
    first["deliveryMethod"] = "DHL_EXPRESS".into();
    ingest_push(&ctx, &order_request(&first, None), "400001").await;
    let mut second = admin(&sandbox, "/_sandbox/norce/orders/NC-100002").await;
    second["deliveryMethod"] = "STORE_PICKUP".into();
    ingest_push(&ctx, &order_request(&second, None), "400002").await;

    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        (report.failed, report.skipped, report.booked),
        (1, 1, 0),
        "{report:?}"
    );
    let letters = ctx.store.dead_letters().unwrap();
    assert!(
        letters[0].error.contains("[shipping.services.DHL_EXPRESS]"),
        "{}",
        letters[0].error
    );
    let skipped = ctx.store.get(shipping::FLOW, "400002").unwrap().unwrap();
    assert_eq!(skipped.status, Status::Skipped);
    assert!(
        payload(&ctx, "400002")["skipped"]
            .as_str()
            .unwrap()
            .contains("skip_delivery_methods")
    );
    assert_eq!(counts(&sandbox, "NC-100002").await, (0, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_record_the_parcel_status_as_the_sandbox_clock_moves() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("alerts");
    let ctx = common::context(&sandbox, config(&dir, ShippingConfig::default()));
    shipping::run(&ctx).await.unwrap();
    let parcels = |ctx: &FlowContext| {
        payload(ctx, "400001")["tracking"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    };
    let before = parcels(&ctx);
    assert!(
        before.values().all(|p| p["nshift_status"] != "DELIVERED"),
        "{before:?}"
    );

    // nShift moves printed shipments on with its clock: in transit after hours, delivered
    // after about a day.
    sandbox
        .state()
        .clock
        .advance(Duration::from_secs(27 * 3600));
    let shipped_orders = entities(&ctx, Status::Done) as u64;
    let report = shipping::run(&ctx).await.unwrap();
    // Every delivery note is sent again with its parcels' Norce status (4 Delivered).
    assert_eq!((report.booked, report.written_back), (0, shipped_orders));
    assert_eq!(entities(&ctx, Status::Done) as u64, shipped_orders);
    let order_no = payload(&ctx, "400001")["order_no"]
        .as_str()
        .unwrap()
        .to_owned();
    let notes = admin(
        &sandbox,
        &format!("/_sandbox/norce/delivery-notes?orderNo={order_no}"),
    )
    .await;
    assert_eq!(
        notes.as_array().unwrap().len(),
        1,
        "the note is updated, not doubled: {notes}"
    );
    assert!(
        notes[0]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["statusId"] == 4),
        "{notes}"
    );
    let again = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        (again.booked, again.written_back),
        (0, 0),
        "nothing new: nothing sent"
    );
    let shipped = payload(&ctx, "400001");
    let parcel_nos = shipped["shipment"]["parcel_numbers"].as_array().unwrap();
    let tracking = shipped["tracking"].as_object().unwrap();
    for parcel in parcel_nos {
        let status = &tracking[parcel.as_str().unwrap()];
        assert_eq!(
            (
                status["nshift_status"].as_str(),
                status["norce_status_id"].as_i64()
            ),
            (Some("DELIVERED"), Some(4)),
            "{status}"
        );
    }
    assert!(
        ctx.store.cursor(shipping::ALERTS_CURSOR).unwrap().is_some(),
        "the feed position is kept"
    );
    for record in ctx
        .store
        .list(Some(shipping::FLOW), Some(Status::Done))
        .unwrap()
    {
        let item: Value = serde_json::from_str(record.payload.as_deref().unwrap()).unwrap();
        assert!(
            item["tracking"].as_object().is_some_and(|t| !t.is_empty()),
            "{}: {item}",
            record.source_id
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_norce_order_event_received_by_serve_ships_the_order_without_polling() {
    let dir = data_dir("event");
    let mut config = config(
        &dir,
        ShippingConfig {
            poll: false,
            track: false,
            ..ShippingConfig::default()
        },
    );
    config.orders.poll = false;
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    (
        config.serve.shipping_every_secs,
        config.serve.orders_every_secs,
        config.serve.stock_reconcile_every_secs,
    ) = (0, 0, 0);
    (
        config.serve.run_after_ingest_ms,
        config.serve.inbox_sweep_secs,
    ) = (0, 0);
    let listener = relay::serve::bind(&config.serve).await.unwrap();
    let addr = listener.local_addr().unwrap();

    // The sandbox sends only the event (no order receiver push): the order must come from it.
    let mut sandbox_config = SandboxConfig::default();
    sandbox_config.norce.webhooks = vec![sandbox::norce::WebhookConfig {
        event_type: "OrderReceivedEvent".into(),
        url: format!("http://{addr}/norce/events/OrderReceivedEvent"),
        headers: [("X-Relay-Secret".to_owned(), "event-secret".to_owned())].into(),
    }];
    sandbox_config.norce.push_time_factor = 0.001;
    let sandbox = common::sandbox_with(sandbox_config).await;
    let ctx = common::context(&sandbox, config);
    let secrets = relay::serve::ServeSecrets {
        norce_webhook_secret: Some(relay::serve::SecretString::from("event-secret")),
        ..Default::default()
    };
    let handle = relay::serve::start(ctx.clone(), secrets, listener)
        .await
        .unwrap();
    let mut runs = handle.runs();

    let created = common::http(
        "POST",
        &format!("{}/_sandbox/norce/orders", sandbox.base_url()),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let order = created.json();
    let order_no = order["orderNo"].as_str().unwrap().to_owned();
    let basket = order["clientOrderRef"]
        .to_string()
        .trim_matches('"')
        .to_owned();
    tokio::time::timeout(Duration::from_secs(60), async {
        while !ctx
            .store
            .get("shipping", &basket)
            .unwrap()
            .is_some_and(|r| r.status == Status::Done)
        {
            runs.changed().await.unwrap();
        }
    })
    .await
    .expect("the event's order is shipped by the pass it triggers");
    assert_shipped_once(&sandbox, &dir, std::slice::from_ref(&order_no)).await;
    // Polling is off: nothing else was shipped.
    assert_eq!(
        admin(&sandbox, "/_sandbox/nshift/shipments")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    handle.shutdown().await;
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn record_only_keeps_parcel_status_in_the_state_and_leaves_the_notes_alone() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("record-only");
    let shipping_config = ShippingConfig {
        parcel_status: shipping::ParcelStatusWriteback::RecordOnly,
        ..ShippingConfig::default()
    };
    let ctx = common::context(&sandbox, config(&dir, shipping_config));
    shipping::run(&ctx).await.unwrap();
    sandbox
        .state()
        .clock
        .advance(Duration::from_secs(27 * 3600));
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(report.written_back, 0);
    let item = payload(&ctx, "400001");
    assert!(
        item["tracking"]
            .as_object()
            .unwrap()
            .values()
            .all(|t| t["norce_status_id"] == 4),
        "{item}"
    );
    let order_no = item["order_no"].as_str().unwrap();
    let notes = admin(
        &sandbox,
        &format!("/_sandbox/norce/delivery-notes?orderNo={order_no}"),
    )
    .await;
    assert!(
        notes[0]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["statusId"].is_null()),
        "{notes}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_refused_parcel_status_update_is_a_dead_letter_naming_the_switch() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("refused-update");
    let ctx = common::context(&sandbox, config(&dir, ShippingConfig::default()));
    shipping::run(&ctx).await.unwrap();
    let shipped = entities(&ctx, Status::Done);
    // From now on Norce refuses every delivery note (as a tenant that does not take one again).
    sandbox
        .state()
        .faults
        .add(FaultRule {
            path_prefix: "/commerce/connect/4.0/Order/CreateDeliveryNote".into(),
            error_rate: 1.0,
            error_statuses: vec![400],
            ..FaultRule::default()
        })
        .unwrap();
    sandbox
        .state()
        .clock
        .advance(Duration::from_secs(27 * 3600));
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        (report.booked, report.written_back, report.failed as usize),
        (0, 0, shipped),
        "{report:?}"
    );
    let letters = ctx.store.dead_letters().unwrap();
    assert_eq!(letters.len(), shipped);
    assert!(
        letters[0]
            .error
            .contains("shipping.parcel_status = \"record_only\""),
        "{}",
        letters[0].error
    );
    // Nothing was booked twice, and the notes written before are still the only ones.
    for order_no in admin(&sandbox, "/_sandbox/nshift/shipments")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["orderNo"].as_str().unwrap().to_owned())
    {
        assert_eq!(counts(&sandbox, &order_no).await, (1, 1), "{order_no}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Requests the sandbox logged for `method` and `path_prefix`.
fn calls(sandbox: &Sandbox, method: &str, path_prefix: &str) -> usize {
    sandbox.state().faults.count(method, path_prefix)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_polled_order_costs_one_order_read_one_stored_shipment_search_and_its_four_writes() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("calls");
    let ctx = common::context(
        &sandbox,
        config(
            &dir,
            ShippingConfig {
                track: false,
                ..ShippingConfig::default()
            },
        ),
    );
    let qualifying = qualifying(&sandbox).await;
    let pickup_orders = orders(&sandbox)
        .await
        .iter()
        .filter(|o| o["status"] == "Created" && o["deliveryMethod"] == "POSTNORD_PICKUP")
        .count();
    assert!(pickup_orders > 0, "the dataset has pickup-point orders");

    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        (report.done, report.failed),
        (qualifying.len() as u64, 0),
        "{report:?}"
    );
    assert_shipped_once(&sandbox, &dir, &qualifying).await;
    let n = qualifying.len();
    let per_order = [
        ("GET", "/commerce/order/1.1/GetOrder", n),
        ("GET", "/rs-extapi/v1/stored-shipments", n),
        ("POST", "/rs-extapi/v1/stored-shipments", 2 * n), // store, print
        ("POST", "/commerce/connect/4.0/Order/CreateDeliveryNote", n),
        ("POST", "/commerce/connect/4.0/Order/SendOrderStatus", n),
        // The orders carry the pickup point the checkout chose: no lookup.
        ("GET", "/rs-extapi/v1/addresses/agents", 0),
    ];
    for (method, path, expected) in per_order {
        assert_eq!(calls(&sandbox, method, path), expected, "{method} {path}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A qualifying pickup-point order of the sandbox (admin JSON), its pickup point replaced by one
/// nShift does not know.
async fn pickup_order_with_an_unknown_pickup_point(sandbox: &Sandbox) -> Value {
    let mut order = orders(sandbox)
        .await
        .into_iter()
        .find(|o| o["status"] == "Created" && o["deliveryMethod"] == "POSTNORD_PICKUP")
        .expect("the dataset has a pickup-point order");
    order["pickupPoint"] = "999999".into();
    order
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_pickup_point_refused_by_nshift_is_booked_at_the_nearest_agent() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("unknown-agent");
    let ctx = common::context(
        &sandbox,
        config(
            &dir,
            ShippingConfig {
                poll: false,
                track: false,
                ..ShippingConfig::default()
            },
        ),
    );
    let order = pickup_order_with_an_unknown_pickup_point(&sandbox).await;
    let order_no = order["orderNo"].as_str().unwrap().to_owned();
    let key = order["clientOrderRef"].to_string();
    ingest_push(&ctx, &order_request(&order, None), &key).await;

    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(
        (report.booked, report.done, report.failed),
        (1, 1, 0),
        "{report:?}; dead letters: {:?}",
        ctx.store.dead_letters().unwrap()
    );
    assert_shipped_once(&sandbox, &dir, std::slice::from_ref(&order_no)).await;
    let shipment = &admin(
        &sandbox,
        &format!("/_sandbox/nshift/shipments?orderNo={order_no}"),
    )
    .await[0];
    let agent = shipment["agentId"].as_str().expect("booked at an agent");
    assert_ne!(agent, "999999", "{shipment}");
    assert_eq!(payload(&ctx, &key)["shipment"]["agent_id"], agent);
    // The refused stored shipment was deleted; only the printed one is left.
    let stored = admin(
        &sandbox,
        &format!("/_sandbox/nshift/stored-shipments?orderNo={order_no}"),
    )
    .await;
    let live: Vec<&Value> = stored
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["deleted"] != true)
        .collect();
    assert_eq!(live.len(), 1, "{stored}");
    assert_eq!(live[0]["status"], "PRINTED", "{stored}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_pickup_point_without_the_fallback_is_dead_lettered_naming_the_setting() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("unknown-agent-no-fallback");
    let ctx = common::context(
        &sandbox,
        config(
            &dir,
            ShippingConfig {
                poll: false,
                track: false,
                pickup_fallback_nearest: false,
                ..ShippingConfig::default()
            },
        ),
    );
    let order = pickup_order_with_an_unknown_pickup_point(&sandbox).await;
    let order_no = order["orderNo"].as_str().unwrap().to_owned();
    let key = order["clientOrderRef"].to_string();
    ingest_push(&ctx, &order_request(&order, None), &key).await;

    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!((report.booked, report.failed), (0, 1), "{report:?}");
    let letters = ctx.store.dead_letters().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0].error.contains("999999")
            && letters[0]
                .error
                .contains("shipping.pickup_fallback_nearest"),
        "{}",
        letters[0].error
    );
    assert_eq!(counts(&sandbox, &order_no).await, (0, 0));
    let stored = admin(
        &sandbox,
        &format!("/_sandbox/nshift/stored-shipments?orderNo={order_no}"),
    )
    .await;
    assert!(
        stored
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["deleted"] == true),
        "the refused stored shipment is removed: {stored}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pass that a push started (`relay serve`) processes what was pushed and leaves the Norce
/// poll and the alerts feed to the scheduled passes: nothing pending, no platform call.
#[tokio::test]
async fn a_pass_started_by_an_ingest_neither_polls_nor_reads_the_alerts() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = data_dir("ingest-pass");
    let mut ctx = common::context(&sandbox, config(&dir, ShippingConfig::default()));
    ctx.pass_origin = relay::flows::context::PassOrigin::Ingest;
    let before = sandbox.state().faults.total_requests();
    let report = relay::flows::shipping::run(&ctx).await.unwrap();
    assert_eq!((report.seen, report.booked), (0, 0), "{report:?}");
    assert_eq!(
        sandbox.state().faults.total_requests(),
        before,
        "no platform call in a pass with nothing pushed"
    );
    // The scheduled pass polls and ships the seeded orders.
    ctx.pass_origin = relay::flows::context::PassOrigin::Schedule;
    let report = relay::flows::shipping::run(&ctx).await.unwrap();
    assert!(report.booked > 0, "{report:?}");
}
