//! The `orders` and `fulfilment` flows against the in-process sandbox: one Brightpearl order per
//! Norce order whatever fails or restarts, contacts by exact e-mail, unmatched SKUs, and shipped
//! goods-out notes back to Norce as exactly one delivery note each.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use relay::config::RelayConfig;
use relay::flows::FlowContext;
use relay::flows::orders::{self, OrdersConfig, UnmatchedSku};
use relay::state::{InboxItem, InboxPut, SqliteStore, Status, Store};
use sandbox::{FaultRule, Sandbox};
use serde_json::{Value, json};

/// A sandbox of `orders` new Norce orders with a Brightpearl account of its own.
async fn sandbox(orders: usize) -> Sandbox {
    common::new_orders_sandbox(orders, "ordersacct").await
}

fn config(orders: OrdersConfig) -> RelayConfig {
    RelayConfig {
        orders,
        ..RelayConfig::default()
    }
}

/// Stamps the sandbox's installation id, so the test can see it set.
fn with_instance() -> OrdersConfig {
    OrdersConfig {
        installed_integration_instance_id: Some(13),
        ..OrdersConfig::default()
    }
}

async fn get(sb: &Sandbox, path: &str) -> Value {
    let response = sb
        .state()
        .http
        .get(format!("{}{path}", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

async fn post(sb: &Sandbox, path: &str, body: Value) -> Value {
    let response = sb
        .state()
        .http
        .post(format!("{}{path}", sb.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {body}");
    body
}

async fn norce_orders(sb: &Sandbox) -> Vec<Value> {
    get(sb, "/_sandbox/norce/orders")
        .await
        .as_array()
        .unwrap()
        .clone()
}

async fn brightpearl_orders(sb: &Sandbox, order_no: &str) -> Vec<Value> {
    get(
        sb,
        &format!("/_sandbox/brightpearl/orders?externalRef={order_no}"),
    )
    .await
    .as_array()
    .unwrap()
    .clone()
}

fn sales_order_path(sb: &Sandbox) -> String {
    format!(
        "/public-api/{}/order-service/sales-order",
        sb.credentials().brightpearl.account
    )
}

fn sales_order_posts(sb: &Sandbox) -> usize {
    sb.state().faults.count("POST", &sales_order_path(sb))
}

/// Every Norce order has exactly one Brightpearl order, whose customer is the one contact with
/// exactly the order's e-mail, and Norce is confirmed with that order's id.
async fn assert_one_order_each_confirmed(sb: &Sandbox, ctx: &FlowContext) {
    let brightpearl = ctx.brightpearl.as_ref().unwrap();
    for norce in norce_orders(sb).await {
        let order_no = norce["orderNo"].as_str().unwrap();
        let found = brightpearl_orders(sb, order_no).await;
        assert_eq!(found.len(), 1, "{order_no}: {found:#?}");
        let order = &found[0];
        let email = norce["customer"]["email"].as_str().unwrap();
        let contacts = brightpearl.find_contacts_by_email(email).await.unwrap();
        assert_eq!(
            contacts.len(),
            1,
            "{order_no}: one contact with {email}: {contacts:?}"
        );
        assert_eq!(
            order["customer"]["id"].as_u64(),
            Some(contacts[0].contact_id),
            "{order_no}"
        );
        assert_eq!(norce["status"], "Confirmed", "{order_no}");
        assert_eq!(
            norce["erpOrderNo"].as_str(),
            Some(order["id"].to_string().as_str()),
            "{order_no}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_pass_creates_one_order_per_norce_order_and_a_second_pass_does_nothing() {
    let sb = sandbox(8).await;
    let ctx = common::context(&sb, config(with_instance()));
    let brightpearl = ctx.brightpearl.clone().unwrap();
    let norce = norce_orders(&sb).await;
    assert_eq!(norce.len(), 8);

    // A contact whose e-mail merely contains a new customer's e-mail: the search matches it
    // partially, and it must not be reused.
    let mut new_customer = None;
    for order in &norce {
        let email = order["customer"]["email"].as_str().unwrap();
        if brightpearl
            .find_contacts_by_email(email)
            .await
            .unwrap()
            .is_empty()
        {
            new_customer = Some(email.to_owned());
            break;
        }
    }
    let new_customer = new_customer.expect("some customer is not a Brightpearl contact yet");
    let decoy_email = format!("old.{new_customer}");
    let decoy: brightpearl_client::models::contact::ContactRequest =
        serde_json::from_value(json!({
            "firstName": "Decoy", "lastName": "Contact",
            "communication": {"emails": {"PRI": {"email": decoy_email}}}
        }))
        .unwrap();
    let address: brightpearl_client::models::contact::PostalAddressRequest =
        serde_json::from_value(json!({"addressLine1": "Elsewhere 1", "countryIsoCode": "SWE"}))
            .unwrap();
    let decoy_id = brightpearl
        .create_contact_with_address(decoy, &address)
        .await
        .unwrap()
        .contact_id;

    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(
        (
            report.booked,
            report.written_back,
            report.done,
            report.failed
        ),
        (8, 8, 8, 0),
        "{report:?}"
    );
    assert_one_order_each_confirmed(&sb, &ctx).await;
    for norce in norce_orders(&sb).await {
        let order = &brightpearl_orders(&sb, norce["orderNo"].as_str().unwrap()).await[0];
        assert_ne!(
            order["customer"]["id"].as_i64(),
            Some(decoy_id),
            "a partial e-mail match is never reused"
        );
        assert_eq!(order["installedIntegrationInstanceId"], 13);
        assert_eq!(order["statusId"], 2);
        // Rows matched by SKU, with the Norce line number kept.
        let rows = order["rows"].as_array().unwrap();
        assert_eq!(rows.len(), norce["lines"].as_array().unwrap().len());
        for (row, line) in rows.iter().zip(norce["lines"].as_array().unwrap()) {
            assert!(row["productId"].is_i64(), "{row}");
            assert_eq!(row["sku"], line["partNo"]);
            assert_eq!(
                row["externalRef"].as_str(),
                Some(line["lineNo"].to_string().as_str())
            );
        }
    }
    // Each entity maps the Norce order number to the Brightpearl order id.
    let records = ctx.store.list(Some("orders"), None).unwrap();
    assert_eq!(records.len(), 8);
    assert!(records.iter().all(|r| r.status == Status::Done
        && r.target_id.is_some()
        && r.step.as_deref() == Some("written_back")));

    let posts = sales_order_posts(&sb);
    let again = orders::run(&ctx).await.unwrap();
    assert_eq!(
        (again.booked, again.written_back, again.failed),
        (0, 0, 0),
        "{again:?}"
    );
    assert_eq!(sales_order_posts(&sb), posts, "a second pass posts nothing");
    assert_one_order_each_confirmed(&sb, &ctx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_sales_order_response_is_found_by_external_ref_and_never_posted_twice() {
    let sb = sandbox(4).await;
    sb.state()
        .faults
        .add(FaultRule {
            path_prefix: sales_order_path(&sb),
            method: Some("POST".into()),
            commit_then_fail_rate: 1.0,
            remaining: Some(1),
            ..FaultRule::default()
        })
        .unwrap();
    // Single calls: the batched path is `lost_multi_message_answers_...`.
    let ctx = common::context(
        &sb,
        config(OrdersConfig {
            installed_integration_instance_id: Some(13),
            multi_message: false,
            ..OrdersConfig::default()
        }),
    );
    let first = orders::run(&ctx).await.unwrap();
    assert_eq!((first.failed, first.booked), (1, 3), "{first:?}");
    let failed: Vec<_> = ctx
        .store
        .list(Some("orders"), Some(Status::Pending))
        .unwrap();
    assert_eq!(failed.len(), 1);
    let lost = &failed[0];
    assert_eq!(
        (lost.attempts, lost.step.as_deref()),
        (1, Some("posting")),
        "{lost:?}"
    );
    assert!(
        lost.payload.as_deref().unwrap().contains("\"posted\""),
        "the marker is recorded before the POST: {lost:?}"
    );
    // The POST did happen: Brightpearl has the order although relay never saw its id.
    assert_eq!(brightpearl_orders(&sb, &lost.source_id).await.len(), 1);

    let second = orders::run(&ctx).await.unwrap();
    assert_eq!(
        (second.failed, second.booked, second.written_back),
        (0, 0, 1),
        "found, not created: {second:?}"
    );
    assert_one_order_each_confirmed(&sb, &ctx).await;
    assert_eq!(
        sales_order_posts(&sb),
        4,
        "one POST per order, the lost one included"
    );
}

/// An `OrderRequest` push for `order` (the sandbox's admin JSON of a Norce order), with extra lines.
fn push_of(order: &Value, extra_lines: &[(&str, i64)]) -> String {
    let customer = &order["customer"];
    let person = json!({
        "FirstName": customer["firstName"], "LastName": customer["lastName"], "Email": customer["email"], "CellPhone": customer["phone"],
        "Address": {"Line1": customer["street"], "ZipCode": customer["zip"], "City": customer["city"], "Country": customer["country"]}
    });
    let mut items: Vec<Value> = order["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| json!({"LineNo": l["lineNo"], "PartNo": l["partNo"], "Description": l["name"], "Quantity": l["quantity"], "UnitPrice": 100, "VatRate": 25}))
        .collect();
    for (sku, quantity) in extra_lines {
        let line_no = items.len() + 1;
        items.push(json!({"LineNo": line_no, "PartNo": sku, "Description": "Gift wrap", "Quantity": quantity, "UnitPrice": 19.96, "VatRate": 25}));
    }
    json!({
        "ClientOrderRef": order["clientOrderRef"].to_string(),
        "CustomerOrderRef": order["orderNo"],
        "CurrencyCode": "SEK",
        "SellTo": {"Person": person.clone()}, "ShipTo": {"Person": person},
        "Items": items
    })
    .to_string()
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

#[tokio::test(flavor = "multi_thread")]
async fn an_unmatched_sku_is_dead_lettered_naming_it_and_nothing_is_created() {
    let sb = sandbox(2).await;
    let ctx = common::context(
        &sb,
        config(OrdersConfig {
            poll: false,
            ..OrdersConfig::default()
        }),
    );
    let body = json!({
        "ClientOrderRef": "900001", "CustomerOrderRef": "NC-900001",
        "SellTo": {"Person": {"FirstName": "Nils", "LastName": "Nobody", "Email": "nils.nobody@example.com",
                              "Address": {"Line1": "Gatan 1", "ZipCode": "11122", "City": "Stockholm", "Country": "SE"}}},
        "Items": [
            {"LineNo": 1, "PartNo": "SKU-00001", "Quantity": 1, "UnitPrice": 100, "VatRate": 25},
            {"LineNo": 2, "PartNo": "SKU-404", "Quantity": 1, "UnitPrice": 100, "VatRate": 25}
        ]
    })
    .to_string();
    let item = inbox_item(ctx.store.as_ref(), "norce-order", "NC-900001", &body);
    assert!(orders::accepts(&item.source));
    assert_eq!(
        orders::ingest(&ctx, &item).await.unwrap(),
        relay::flows::Ingested::Work
    );
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!((report.failed, report.booked), (1, 0), "{report:?}");
    let letters = ctx.store.dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (letter.flow.as_str(), letter.source_id.as_str()),
        ("orders", "NC-900001")
    );
    assert!(
        letter.error.contains("`SKU-404`") && letter.error.contains("orders.unmatched_sku"),
        "{}",
        letter.error
    );
    assert!(
        !letter.error.contains("SKU-00001"),
        "only the unmatched SKU is named: {}",
        letter.error
    );
    assert!(brightpearl_orders(&sb, "NC-900001").await.is_empty());
    let brightpearl = ctx.brightpearl.as_ref().unwrap();
    assert!(
        brightpearl
            .find_contacts_by_email("nils.nobody@example.com")
            .await
            .unwrap()
            .is_empty(),
        "SKUs are checked before any contact is made"
    );
    // Dead letters stay put on later passes.
    let again = orders::run(&ctx).await.unwrap();
    assert_eq!(again.seen, 0, "{again:?}");
    assert_eq!(
        ctx.store
            .get("orders", "NC-900001")
            .unwrap()
            .unwrap()
            .status,
        Status::Failed
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_order_with_free_text_rows_is_created_once_even_when_polling_sees_it_too() {
    let sb = sandbox(2).await;
    let ctx = common::context(
        &sb,
        config(OrdersConfig {
            unmatched_sku: UnmatchedSku::FreeText,
            ..OrdersConfig::default()
        }),
    );
    let placed = post(
        &sb,
        "/_sandbox/norce/orders",
        json!({"customerId": 5001, "lines": [{"sku": "SKU-00002", "quantity": 2}]}),
    )
    .await;
    let order_no = placed["orderNo"].as_str().unwrap().to_owned();
    let item = inbox_item(
        ctx.store.as_ref(),
        "norce-order",
        &order_no,
        &push_of(&placed, &[("SKU-404", 1)]),
    );
    assert_eq!(
        orders::ingest(&ctx, &item).await.unwrap(),
        relay::flows::Ingested::Work
    );
    ctx.store.inbox_done(item.id).unwrap();
    // Polling finds the same order (status Created) and the two seeded ones.
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!((report.booked, report.failed), (3, 0), "{report:?}");
    assert_eq!(
        ctx.store.list(Some("orders"), None).unwrap().len(),
        3,
        "push and poll share the entity of an order number"
    );
    let found = brightpearl_orders(&sb, &order_no).await;
    assert_eq!(found.len(), 1);
    let rows = found[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(
        (
            rows[0]["sku"].as_str(),
            rows[0]["net"].as_str(),
            rows[0]["tax"].as_str()
        ),
        (Some("SKU-00002"), Some("200.0000"), Some("50.0000"))
    );
    assert!(rows[1]["productId"].is_null(), "{}", rows[1]);
    assert_eq!(rows[1]["name"], "Gift wrap (SKU SKU-404)");
    assert_eq!(
        (rows[1]["net"].as_str(), rows[1]["tax"].as_str()),
        (Some("19.9600"), Some("4.9900"))
    );
    assert_one_order_each_confirmed(&sb, &ctx).await;
    // The same push again (Norce retried it) changes nothing.
    let repeat = inbox_item(
        ctx.store.as_ref(),
        "norce-order",
        &order_no,
        &push_of(&placed, &[("SKU-404", 1)]),
    );
    let _ = orders::ingest(&ctx, &repeat).await.unwrap();
    let again = orders::run(&ctx).await.unwrap();
    assert_eq!((again.booked, again.written_back), (0, 0), "{again:?}");
    assert_eq!(brightpearl_orders(&sb, &order_no).await.len(), 1);
}

/// Creates a goods-out note for `rows` (all stock rows when empty) of a Brightpearl order and
/// ships it with a tracking reference; returns its id.
async fn ship(sb: &Sandbox, order_id: i64, rows: &[(i64, i64)], reference: &str) -> i64 {
    let mut body = json!({"orderId": order_id});
    if !rows.is_empty() {
        body["rows"] = rows
            .iter()
            .map(|(row, quantity)| json!({"orderRowId": row, "quantity": quantity}))
            .collect();
    }
    let created = post(sb, "/_sandbox/brightpearl/goods-out-notes", body).await;
    let id = created["id"].as_i64().unwrap();
    post(
        sb,
        &format!("/_sandbox/brightpearl/goods-out-notes/{id}/ship"),
        json!({"reference": reference}),
    )
    .await;
    id
}

async fn norce_order(sb: &Sandbox, order_no: &str) -> Value {
    get(sb, &format!("/_sandbox/norce/orders/{order_no}")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shipped_goods_out_note_becomes_one_delivery_note_with_the_tracking_reference() {
    let sb = sandbox(3).await;
    let ctx = common::context(&sb, config(OrdersConfig::default()));
    orders::run(&ctx).await.unwrap();
    let placed = post(&sb, "/_sandbox/norce/orders", json!({"customerId": 5002, "lines": [{"sku": "SKU-00003", "quantity": 2}, {"sku": "SKU-00004", "quantity": 1}]})).await;
    let order_no = placed["orderNo"].as_str().unwrap().to_owned();
    orders::run(&ctx).await.unwrap();
    let order = brightpearl_orders(&sb, &order_no).await.remove(0);
    let order_id = order["id"].as_i64().unwrap();
    let first_row = order["rows"][0]["id"].as_i64().unwrap();

    // Part of the order ships: PartlyDelivered.
    let gon = ship(&sb, order_id, &[(first_row, 2)], "TRACK-0001").await;
    let report = orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!(
        (report.booked, report.written_back, report.failed),
        (1, 1, 0),
        "{report:?}"
    );
    let norce = norce_order(&sb, &order_no).await;
    let notes = norce["deliveryNotes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(notes[0]["noteNo"], format!("GON-{gon}"));
    assert_eq!(notes[0]["packages"][0]["parcelNumber"], "TRACK-0001");
    let items = notes[0]["note"]["DeliveryNoteItems"].as_array().unwrap();
    assert_eq!(
        (
            items.len(),
            items[0]["ItemNo"].as_str(),
            items[0]["Qty"].as_i64(),
            items[0]["RowNumber"].as_i64()
        ),
        (1, Some("SKU-00003"), Some(2), Some(1))
    );
    assert_eq!(norce["status"], "PartlyDelivered");
    let entity = ctx
        .store
        .get("fulfilment", &gon.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(
        (entity.status, entity.target_id.as_deref()),
        (Status::Done, Some(format!("GON-{gon}").as_str()))
    );

    // Repeating, and the webhook for the same note arriving late, change nothing.
    let again = orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!((again.booked, again.written_back), (0, 0), "{again:?}");
    let hook = json!({"accountCode": "sandbox", "resourceType": "goods-out-note", "id": gon.to_string(), "lifecycleEvent": "modified", "fullEvent": "goods-out-note.modified.shipped"});
    let item = inbox_item(
        ctx.store.as_ref(),
        "brightpearl-webhook",
        &format!("gon-{gon}"),
        &hook.to_string(),
    );
    let _ = orders::ingest(&ctx, &item).await.unwrap();
    orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!(
        norce_order(&sb, &order_no).await["deliveryNotes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The rest ships: a second note, and Delivered.
    let second = ship(&sb, order_id, &[], "TRACK-0002").await;
    orders::run_fulfilment(&ctx).await.unwrap();
    let norce = norce_order(&sb, &order_no).await;
    let numbers: Vec<&str> = norce["deliveryNotes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["noteNo"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, vec![format!("GON-{gon}"), format!("GON-{second}")]);
    assert_eq!(norce["status"], "Delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_webhook_alone_drives_fulfilment_and_other_events_are_ignored() {
    let sb = sandbox(2).await;
    let ctx = common::context(
        &sb,
        config(OrdersConfig {
            poll: false,
            ..OrdersConfig::default()
        }),
    );
    // Orders come from polling in this context; fulfilment only from the webhook.
    let polling =
        common::context_with_store(&sb, config(OrdersConfig::default()), ctx.store.clone());
    orders::run(&polling).await.unwrap();
    let norce = norce_orders(&sb).await;
    let order_no = norce[0]["orderNo"].as_str().unwrap();
    let order_id = brightpearl_orders(&sb, order_no).await[0]["id"]
        .as_i64()
        .unwrap();
    let gon = ship(&sb, order_id, &[], "00373500000000000017").await;

    assert_eq!(
        orders::run_fulfilment(&ctx).await.unwrap().seen,
        0,
        "no polling, nothing queued yet"
    );
    let other = json!({"id": "1001", "fullEvent": "product.modified.on-hand-modified"}).to_string();
    assert_eq!(
        orders::ingest(
            &ctx,
            &inbox_item(ctx.store.as_ref(), "brightpearl-webhook", "p-1001", &other)
        )
        .await
        .unwrap(),
        relay::flows::Ingested::Nothing,
        "a stock event is no work for orders"
    );
    let hook = json!({"id": format!("{gon}"), "fullEvent": "goods-out-note.modified.shipped", "resourceType": "goods-out-note"}).to_string();
    assert_eq!(
        orders::ingest(
            &ctx,
            &inbox_item(ctx.store.as_ref(), "brightpearl-webhook", "gon", &hook)
        )
        .await
        .unwrap(),
        relay::flows::Ingested::Work
    );
    assert!(
        ctx.store
            .list(Some("fulfilment"), None)
            .unwrap()
            .iter()
            .map(|r| r.source_id.clone())
            .eq([gon.to_string()])
    );

    let report = orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!((report.booked, report.written_back), (1, 1), "{report:?}");
    let norce = norce_order(&sb, order_no).await;
    assert_eq!(
        norce["deliveryNotes"][0]["packages"][0]["parcelNumber"],
        "00373500000000000017"
    );
    assert_eq!(norce["status"], "Delivered");

    // An unreadable webhook body is dead-lettered with what to fix.
    assert_eq!(
        orders::ingest(
            &ctx,
            &inbox_item(
                ctx.store.as_ref(),
                "brightpearl-webhook",
                "junk",
                "not json"
            )
        )
        .await
        .unwrap(),
        relay::flows::Ingested::Nothing
    );
    let letter = ctx.store.dead_letters().unwrap().pop().unwrap();
    assert_eq!(letter.flow, "fulfilment");
    assert!(letter.error.contains("bodyTemplate"), "{}", letter.error);
}

fn lose_next_response(sb: &Sandbox, method: &str, path_prefix: String) {
    sb.state()
        .faults
        .add(FaultRule {
            path_prefix,
            method: Some(method.into()),
            commit_then_fail_rate: 1.0,
            remaining: Some(1),
            ..FaultRule::default()
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_responses_of_the_contact_post_and_the_delivery_note_post_duplicate_nothing() {
    let sb = sandbox(0).await;
    let account = sb.credentials().brightpearl.account;
    let ctx = common::context(&sb, config(OrdersConfig::default()));
    // Customer 5002 is not seeded as a Brightpearl contact (every second one is).
    let placed = post(
        &sb,
        "/_sandbox/norce/orders",
        json!({"customerId": 5002, "lines": [{"sku": "SKU-00005", "quantity": 1}]}),
    )
    .await;
    let order_no = placed["orderNo"].as_str().unwrap().to_owned();
    let email = placed["customer"]["email"].as_str().unwrap().to_owned();
    let contact_path = format!("/public-api/{account}/contact-service/contact");
    lose_next_response(&sb, "POST", contact_path.clone());

    let first = orders::run(&ctx).await.unwrap();
    assert_eq!((first.failed, first.booked), (1, 0), "{first:?}");
    let second = orders::run(&ctx).await.unwrap();
    assert_eq!(
        (second.failed, second.booked, second.written_back),
        (0, 1, 1),
        "{second:?}"
    );
    let brightpearl = ctx.brightpearl.as_ref().unwrap();
    assert_eq!(
        brightpearl
            .find_contacts_by_email(&email)
            .await
            .unwrap()
            .len(),
        1,
        "the lost contact was found, not made again"
    );
    assert_eq!(sb.state().faults.count("POST", &contact_path), 1);
    assert_one_order_each_confirmed(&sb, &ctx).await;

    let order_id = brightpearl_orders(&sb, &order_no).await[0]["id"]
        .as_i64()
        .unwrap();
    let gon = ship(&sb, order_id, &[], "TRACK-LOST").await;
    let note_path = "/commerce/connect/4.0/Order/CreateDeliveryNote";
    lose_next_response(&sb, "POST", note_path.into());
    let first = orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!(first.failed, 1, "{first:?}");
    let entity = ctx
        .store
        .get("fulfilment", &gon.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(
        (entity.status, entity.step),
        (Status::Pending, None),
        "nothing recorded for the lost note"
    );
    let second = orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!(
        (second.failed, second.booked, second.written_back),
        (0, 0, 1),
        "the note was found in Norce: {second:?}"
    );
    assert_eq!(
        sb.state().faults.count("POST", note_path),
        1,
        "CreateDeliveryNote is never sent twice"
    );
    let norce = norce_order(&sb, &order_no).await;
    assert_eq!(norce["deliveryNotes"].as_array().unwrap().len(), 1);
    assert_eq!(norce["status"], "Delivered");
}

/// Polls `pass` until `stop` holds, then drops it mid-flight (the sandbox serves on other
/// runtime threads while this one yields). Returns whether the pass finished first.
async fn drop_when<F: std::future::Future>(pass: F, mut stop: impl FnMut() -> bool) -> bool {
    let mut pass = std::pin::pin!(pass);
    loop {
        tokio::select! {
            biased;
            _ = &mut pass => return true,
            _ = tokio::task::yield_now() => {}
        }
        if stop() {
            return false;
        }
    }
}

/// Holds the next `SendOrderStatus` open far longer than any test runs, so a pass provably
/// cannot finish and is dropped with that call in flight. Nothing waits for the delay: the pass
/// is dropped, and the sandbox's timer is abandoned with the test.
fn hold_next_status_call(sb: &Sandbox) {
    sb.state()
        .faults
        .add(FaultRule {
            path_prefix: "/commerce/connect/4.0/Order/SendOrderStatus".into(),
            method: Some("POST".into()),
            latency_ms: 600_000,
            remaining: Some(1),
            ..FaultRule::default()
        })
        .unwrap();
}

/// Moves the sandbox clock a minute on: each phase of a long test gets its own Brightpearl
/// throttle window instead of waiting (in real time) for the previous phase's to pass.
fn next_minute(sb: &Sandbox) {
    sb.state().clock.advance(std::time::Duration::from_secs(61));
}

/// Whether the held call has reached the sandbox (its one-shot rule is used up).
fn held(sb: &Sandbox) -> bool {
    sb.state().faults.rules().is_empty()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pass_dropped_mid_run_resumes_in_a_fresh_context_without_duplicates() {
    // Six orders keep the test under the Brightpearl client's burst of 100 calls (beyond it the
    // client paces calls in real time).
    let sb = sandbox(6).await;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let relay_config = config(OrdersConfig::default());
    let has_step = |flow: &str, step: &str| {
        store
            .list(Some(flow), None)
            .unwrap()
            .iter()
            .any(|r| r.step.as_deref() == Some(step))
    };

    // Orders: cut off while one order's Brightpearl order exists but Norce is not told yet.
    hold_next_status_call(&sb);
    let ctx = common::context_with_store(&sb, relay_config.clone(), store.clone());
    let finished = drop_when(orders::run(&ctx), || {
        held(&sb) && has_step("orders", "created")
    })
    .await;
    assert!(!finished, "the pass was cut off");
    sb.state().faults.clear();
    assert!(
        !store
            .list(Some("orders"), Some(Status::Pending))
            .unwrap()
            .is_empty(),
        "work was left half-done"
    );
    drop(ctx);

    next_minute(&sb);
    let fresh = common::context_with_store(&sb, relay_config.clone(), store.clone());
    let report = orders::run(&fresh).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_one_order_each_confirmed(&sb, &fresh).await;
    assert!(
        store
            .list(Some("orders"), None)
            .unwrap()
            .iter()
            .all(|r| r.status == Status::Done)
    );
    assert_eq!(
        get(&sb, "/_sandbox/brightpearl/orders")
            .await
            .as_array()
            .unwrap()
            .len(),
        6,
        "one sales order per order across both contexts"
    );

    // A new Brightpearl throttle window (200 calls per rolling minute of sandbox time).
    next_minute(&sb);
    // Fulfilment: ship every order, cut a pass off after a delivery note, before its status.
    let mut gons = BTreeMap::new();
    for norce in norce_orders(&sb).await {
        let order_no = norce["orderNo"].as_str().unwrap().to_owned();
        let order_id = brightpearl_orders(&sb, &order_no).await[0]["id"]
            .as_i64()
            .unwrap();
        gons.insert(
            order_no.clone(),
            ship(&sb, order_id, &[], &format!("TRACK-{order_no}")).await,
        );
    }
    hold_next_status_call(&sb);
    let finished = drop_when(orders::run_fulfilment(&fresh), || {
        held(&sb) && has_step("fulfilment", "note_created")
    })
    .await;
    assert!(!finished, "the fulfilment pass was cut off");
    sb.state().faults.clear();
    drop(fresh);

    next_minute(&sb);
    let fresh = common::context_with_store(&sb, relay_config, store.clone());
    let report = orders::run_fulfilment(&fresh).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    for (order_no, gon) in gons {
        let norce = norce_order(&sb, &order_no).await;
        let notes = norce["deliveryNotes"].as_array().unwrap();
        assert_eq!(notes.len(), 1, "{order_no}: {notes:#?}");
        assert_eq!(notes[0]["noteNo"], format!("GON-{gon}"));
        assert_eq!(
            notes[0]["packages"][0]["parcelNumber"],
            format!("TRACK-{order_no}")
        );
        assert_eq!(norce["status"], "Delivered", "{order_no}");
    }
    assert_eq!(
        sb.state()
            .faults
            .count("POST", "/commerce/connect/4.0/Order/CreateDeliveryNote"),
        6,
        "one note each, never twice"
    );
    assert!(
        store
            .list(Some("fulfilment"), None)
            .unwrap()
            .iter()
            .all(|r| r.status == Status::Done)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_status_setting_stops_the_flow_naming_it() {
    let sb = sandbox(1).await;
    let ctx = common::context(
        &sb,
        config(OrdersConfig {
            delivered_status: "Shipped".into(),
            ..OrdersConfig::default()
        }),
    );
    let err = orders::run_fulfilment(&ctx).await.unwrap_err().to_string();
    assert!(
        err.contains("orders.delivered_status") && err.contains("PartlyDelivered"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_push_ingested_before_the_pass_is_the_order_the_erp_gets() {
    let sb = sandbox(0).await;
    let ctx = common::context(
        &sb,
        config(OrdersConfig {
            poll: false,
            ..OrdersConfig::default()
        }),
    );
    let placed = post(
        &sb,
        "/_sandbox/norce/orders",
        json!({"customerId": 5001, "lines": [{"sku": "SKU-00002", "quantity": 2}]}),
    )
    .await;
    let order_no = placed["orderNo"].as_str().unwrap().to_owned();
    // The first push is ingested (both pushes were processed as separate inbox items: the
    // second arrived after the first left the inbox), then the shop changes the order.
    let first = inbox_item(
        ctx.store.as_ref(),
        "norce-order",
        &order_no,
        &push_of(&placed, &[]),
    );
    let _ = orders::ingest(&ctx, &first).await.unwrap();
    ctx.store.inbox_done(first.id).unwrap();
    let changed = push_of(&placed, &[("SKU-00005", 3)]);
    let second = inbox_item(ctx.store.as_ref(), "norce-order", &order_no, &changed);
    assert_eq!(
        orders::ingest(&ctx, &second).await.unwrap(),
        relay::flows::Ingested::Work
    );
    ctx.store.inbox_done(second.id).unwrap();
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(report.booked, 1, "{report:?}");
    let found = brightpearl_orders(&sb, &order_no).await;
    assert_eq!(found.len(), 1);
    let skus: Vec<&str> = found[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["sku"].as_str())
        .collect();
    assert_eq!(skus, ["SKU-00002", "SKU-00005"], "the changed order");
    // Once imported, a later push changes nothing.
    let third = inbox_item(
        ctx.store.as_ref(),
        "norce-order",
        &order_no,
        &push_of(&placed, &[]),
    );
    assert_eq!(
        orders::ingest(&ctx, &third).await.unwrap(),
        relay::flows::Ingested::Nothing
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_process_starts_no_new_order_and_the_next_start_takes_them() {
    let sb = sandbox(3).await;
    let ctx = common::context(&sb, config(OrdersConfig::default()));
    ctx.stopping.set();
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(report.booked, 0, "{report:?}");
    let pending = ctx
        .store
        .list(Some("orders"), Some(Status::Pending))
        .unwrap();
    assert_eq!(pending.len(), 3, "picked up, left pending");
    // The next start (a context that is not stopping) imports them.
    let next = FlowContext {
        stopping: Default::default(),
        coordination: Default::default(),
        pass_origin: Default::default(),
        ..ctx.clone()
    };
    let report = orders::run(&next).await.unwrap();
    assert_eq!(report.booked, 3, "{report:?}");
}

/// Brightpearl requests the sandbox logged (every path under the account's `public-api`).
fn brightpearl_requests(sb: &Sandbox) -> Vec<String> {
    let prefix = format!("/public-api/{}/", sb.credentials().brightpearl.account);
    sb.state()
        .faults
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(&prefix))
        .map(|r| format!("{} {}", r.method, &r.path[prefix.len()..]))
        .collect()
}

fn stock_config(orders: OrdersConfig) -> RelayConfig {
    let mut config = config(orders);
    config.stock.job_wait = relay::config::stock::JobWaitConfig {
        timeout_secs: 60,
        initial_interval_ms: 1,
        max_interval_ms: 10,
    };
    config
}

/// With the SKU map warm (the stock flow's catalog read) the orders flow costs, per order, the
/// sales-order POST, one contact-search per customer new to this relay (plus address and
/// contact POSTs for those new to Brightpearl), and one order-search per page of orders.
#[tokio::test(flavor = "multi_thread")]
async fn requests_per_order_with_a_warm_sku_map_and_repeat_customers() {
    let sb = sandbox(40).await;
    let single = || OrdersConfig {
        multi_message: false,
        ..with_instance()
    };
    let ctx = common::context(&sb, stock_config(single()));
    relay::flows::stock::run(&ctx).await.unwrap();
    sb.state().faults.clear_requests();

    let report = orders::run(&ctx).await.unwrap();
    assert_eq!((report.done, report.failed), (40, 0), "{report:?}");
    let requests = brightpearl_requests(&sb);
    assert_one_order_each_confirmed(&sb, &ctx).await;
    let count = |what: &str| requests.iter().filter(|r| r.starts_with(what)).count();
    let norce = norce_orders(&sb).await;
    let mut emails: Vec<&str> = norce
        .iter()
        .map(|o| o["customer"]["email"].as_str().unwrap())
        .collect();
    emails.sort_unstable();
    emails.dedup();
    let per_order = requests.len() as f64 / 40.0;
    println!(
        "orders 40, customers {}, brightpearl requests {} ({per_order:.2} per order): {:?}",
        emails.len(),
        requests.len(),
        requests
            .iter()
            .fold(BTreeMap::<String, usize>::new(), |mut m, r| {
                *m.entry(r.split('/').take(2).collect::<Vec<_>>().join("/"))
                    .or_default() += 1;
                m
            })
    );
    assert_eq!(
        count("GET product-service/product-search"),
        0,
        "the map is warm"
    );
    assert_eq!(count("GET order-service/order-search"), 1, "one bulk check");
    assert_eq!(count("POST order-service/sales-order"), 40);
    assert_eq!(
        count("GET contact-service/contact-search"),
        emails.len(),
        "one search per customer, repeat customers from the cache"
    );
    // The floor: the POSTs, the new contacts (address + contact), one search per customer.
    let floor = 40 + 2 * count("POST contact-service/contact") + emails.len() + 1;
    assert_eq!(requests.len(), floor, "{requests:?}");
    // Before: 4.6 requests per order (measured by the issue on `relay run --sandbox-orders 40`).
    assert!(per_order <= 2.0, "{per_order}");

    // A second batch of orders from the same customers costs the POST and the bulk check only.
    let ctx2 = common::context_with_store(&sb, stock_config(single()), ctx.store.clone());
    for order in norce.iter().take(10) {
        let mut order = order.clone();
        let order_no = format!("{}-R", order["orderNo"].as_str().unwrap());
        order["orderNo"] = json!(order_no);
        let key = order_no.clone();
        let item = inbox_item(
            ctx2.store.as_ref(),
            "norce-order",
            &key,
            &push_of(&order, &[]),
        );
        assert_eq!(
            orders::ingest(&ctx2, &item).await.unwrap(),
            relay::flows::Ingested::Work
        );
    }
    sb.state().faults.clear_requests();
    let again = orders::run(&ctx2).await.unwrap();
    assert_eq!((again.booked, again.failed), (10, 0), "{again:?}");
    let requests = brightpearl_requests(&sb);
    assert_eq!(
        requests.len(),
        11,
        "ten POSTs and one bulk check: {requests:?}"
    );
}

/// A cached contact that Brightpearl no longer has (deleted or merged) and a mapped product that
/// is gone: the refused POST drops both entries and the retry searches them again; the order is
/// created once.
#[tokio::test(flavor = "multi_thread")]
async fn stale_cache_entries_are_dropped_when_the_post_refuses_them() {
    let sb = sandbox(1).await;
    let ctx = common::context(&sb, config(with_instance()));
    let order = &norce_orders(&sb).await[0];
    let email = order["customer"]["email"].as_str().unwrap().to_owned();
    let sku = order["lines"][0]["partNo"].as_str().unwrap().to_owned();
    let account = sb.credentials().brightpearl.account.clone();
    relay::flows::catalog::ContactCache::new(ctx.store.as_ref(), &account, 3600)
        .put(&email, 999_999)
        .unwrap();
    relay::flows::catalog::SkuMap::new(ctx.store.as_ref(), &account, 3600)
        .put([(sku.clone(), 888_888)])
        .unwrap();

    let first = orders::run(&ctx).await.unwrap();
    assert_eq!((first.booked, first.failed), (0, 1), "{first:?}");
    let record = ctx
        .store
        .get("orders", order["orderNo"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        record.status,
        Status::Pending,
        "retried, not dead-lettered: {record:?}"
    );
    assert!(record.last_error.unwrap().contains("dropped"));

    let second = orders::run(&ctx).await.unwrap();
    assert_eq!((second.booked, second.failed), (1, 0), "{second:?}");
    assert_one_order_each_confirmed(&sb, &ctx).await;
    let contact = relay::flows::catalog::ContactCache::new(ctx.store.as_ref(), &account, 3600)
        .get(&email)
        .unwrap();
    assert!(contact.is_some_and(|c| c != 999_999), "{contact:?}");
    let product = relay::flows::catalog::SkuMap::new(ctx.store.as_ref(), &account, 3600)
        .get(&[&sku])
        .unwrap();
    assert!(
        product.get(&sku).is_some_and(|p| *p != 888_888),
        "{product:?}"
    );
    assert_eq!(sales_order_posts(&sb), 2, "one refused, one created");
}

#[test]
fn cache_and_duplicate_check_settings_are_validated_naming_them() {
    for (setting, config) in [
        (
            "orders.sku_map_max_age_secs",
            OrdersConfig {
                sku_map_max_age_secs: 0,
                ..OrdersConfig::default()
            },
        ),
        (
            "orders.duplicate_check_overlap_secs",
            OrdersConfig {
                duplicate_check_overlap_secs: 5,
                ..OrdersConfig::default()
            },
        ),
        (
            "orders.duplicate_check_max_pages",
            OrdersConfig {
                duplicate_check_max_pages: 0,
                ..OrdersConfig::default()
            },
        ),
        (
            "orders.contact_cache_max_age_secs",
            OrdersConfig {
                contact_cache_max_age_secs: u64::MAX,
                ..OrdersConfig::default()
            },
        ),
    ] {
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains(setting) && err.contains("use"), "{err}");
    }
    let err = RelayConfig::parse("[orders]\nsku_map_max_age_secs = 10\n", "relay.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("orders.sku_map_max_age_secs"), "{err}");
}

fn multi_message_path(sb: &Sandbox) -> String {
    format!(
        "/public-api/{}/multi-message",
        sb.credentials().brightpearl.account
    )
}

fn multi_message_posts(sb: &Sandbox) -> usize {
    sb.state().faults.count("POST", &multi_message_path(sb))
}

/// With multi-message (the default) the writes of a page go in batches of up to 10, each one
/// request against the cap: per page one order-search, one contact-search per customer new to
/// this relay, and one request per 10 new addresses, 10 new contacts and 10 sales orders.
#[tokio::test(flavor = "multi_thread")]
async fn requests_per_order_with_multi_message_batches() {
    let sb = sandbox(40).await;
    let ctx = common::context(&sb, stock_config(with_instance()));
    relay::flows::stock::run(&ctx).await.unwrap();
    let brightpearl = ctx.brightpearl.clone().unwrap();
    let norce = norce_orders(&sb).await;
    let mut emails: Vec<&str> = norce
        .iter()
        .map(|o| o["customer"]["email"].as_str().unwrap())
        .collect();
    emails.sort_unstable();
    emails.dedup();
    let mut new_customers = 0;
    for email in &emails {
        if brightpearl
            .find_contacts_by_email(email)
            .await
            .unwrap()
            .is_empty()
        {
            new_customers += 1;
        }
    }
    assert!(new_customers >= 2, "some contacts are created in a batch");
    sb.state().faults.clear_requests();

    let report = orders::run(&ctx).await.unwrap();
    assert_eq!((report.done, report.failed), (40, 0), "{report:?}");
    let requests = brightpearl_requests(&sb);
    assert_one_order_each_confirmed(&sb, &ctx).await;
    let count = |what: &str| requests.iter().filter(|r| r.starts_with(what)).count();
    let batches = |n: usize| n.div_ceil(10);
    assert_eq!(count("POST order-service/sales-order"), 0, "{requests:?}");
    assert_eq!(count("POST contact-service/"), 0, "{requests:?}");
    assert_eq!(
        count("POST multi-message"),
        batches(40) + 2 * batches(new_customers),
        "{requests:?}"
    );
    assert_eq!(
        count("GET contact-service/contact-search"),
        emails.len(),
        "one search per customer"
    );
    assert_eq!(
        requests.len(),
        1 + emails.len() + batches(40) + 2 * batches(new_customers),
        "{requests:?}"
    );
    let per_order = requests.len() as f64 / 40.0;
    println!(
        "orders 40, customers {}, new {new_customers}: {} brightpearl requests ({per_order:.2} per order)",
        emails.len(),
        requests.len()
    );
    assert!(per_order <= 1.0, "{per_order}");
}

/// Holds the next multi-message 300 ms before it is handled; `held` tells when it was decided.
fn hold_next_multi_message(sb: &Sandbox) {
    sb.state()
        .faults
        .add(FaultRule {
            path_prefix: multi_message_path(sb),
            method: Some("POST".into()),
            latency_ms: 300,
            remaining: Some(1),
            ..FaultRule::default()
        })
        .unwrap();
}

/// Lost answers of whole batches (commit-then-fail on `POST multi-message`): the contact batch
/// (its contacts exist, relay never saw their ids) and then the sales-order batch. Each customer
/// ends with one contact and each order with one Brightpearl order, never posted twice.
#[tokio::test(flavor = "multi_thread")]
async fn lost_multi_message_answers_duplicate_no_contact_and_no_order() {
    let sb = sandbox(12).await;
    let ctx = common::context(&sb, config(with_instance()));
    let brightpearl = ctx.brightpearl.clone().unwrap();
    // The orders of customers new to Brightpearl (every second one is seeded as a contact).
    let mut new_orders = Vec::new();
    let mut new_emails = std::collections::BTreeSet::new();
    let norce = norce_orders(&sb).await;
    for order in &norce {
        let email = order["customer"]["email"].as_str().unwrap();
        if brightpearl
            .find_contacts_by_email(email)
            .await
            .unwrap()
            .is_empty()
        {
            new_emails.insert(email.to_owned());
            new_orders.push(order["orderNo"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        new_emails.len() >= 2 && new_orders.len() <= 10,
        "{new_orders:?}"
    );
    let orders_count = norce.len();
    // The first multi-message (the addresses) passes; the next (the contacts) commits and
    // its answer is lost.
    hold_next_multi_message(&sb);
    let mut pass = std::pin::pin!(orders::run(&ctx));
    let mut armed = false;
    let first = loop {
        tokio::select! {
            biased;
            report = &mut pass => break report.unwrap(),
            _ = tokio::task::yield_now() => {}
        }
        if !armed && held(&sb) {
            armed = true;
            lose_next_response(&sb, "POST", multi_message_path(&sb));
        }
    };
    assert!(armed);
    let n = new_orders.len() as u64;
    assert_eq!(first.failed, n, "{first:?}: {new_orders:?}");
    assert_eq!(
        first.done as usize,
        orders_count - new_orders.len(),
        "{first:?}"
    );
    for email in &new_emails {
        assert_eq!(
            brightpearl
                .find_contacts_by_email(email)
                .await
                .unwrap()
                .len(),
            1,
            "the lost batch's contact exists: {email}"
        );
    }
    sb.state().faults.clear();
    let posts = multi_message_posts(&sb);

    // The contacts are found by e-mail (not made again); the sales-order batch's answer is lost.
    lose_next_response(&sb, "POST", multi_message_path(&sb));
    let second = orders::run(&ctx).await.unwrap();
    assert_eq!((second.failed, second.booked), (n, 0), "{second:?}");
    assert_eq!(multi_message_posts(&sb), posts + 1, "one sales-order batch");
    for id in &new_orders {
        let record = ctx.store.get("orders", id).unwrap().unwrap();
        assert_eq!(record.step.as_deref(), Some("posting"), "{record:?}");
        assert_eq!(
            brightpearl_orders(&sb, id).await.len(),
            1,
            "committed: {id}"
        );
    }

    // Found by the duplicate check, never posted again.
    let third = orders::run(&ctx).await.unwrap();
    assert_eq!(
        (third.failed, third.booked, third.written_back),
        (0, 0, n),
        "{third:?}"
    );
    assert_eq!(multi_message_posts(&sb), posts + 1, "nothing re-posted");
    assert_eq!(sales_order_posts(&sb), 0);
    assert_eq!(
        sb.state().faults.count(
            "POST",
            &format!(
                "/public-api/{}/contact-service/contact",
                sb.credentials().brightpearl.account
            )
        ),
        0
    );
    assert_one_order_each_confirmed(&sb, &ctx).await;
}

/// A batch answered 207 with one message refused: only that order is dead-lettered, with
/// Brightpearl's message; the others are created once.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_message_of_a_batch_dead_letters_only_its_order() {
    let sb = sandbox(3).await;
    let ctx = common::context(
        &sb,
        config(OrdersConfig {
            poll: false,
            ..with_instance()
        }),
    );
    let norce = norce_orders(&sb).await;
    for order in &norce {
        let order_no = order["orderNo"].as_str().unwrap();
        let item = inbox_item(
            ctx.store.as_ref(),
            "norce-order",
            order_no,
            &push_of(order, &[]),
        );
        let _ = orders::ingest(&ctx, &item).await.unwrap();
    }
    // A recorded contact Brightpearl does not have (not from the cache: the refusal stands).
    let bad = norce[1]["orderNo"].as_str().unwrap().to_owned();
    let record = ctx.store.get("orders", &bad).unwrap().unwrap();
    let mut payload: Value = serde_json::from_str(record.payload.as_deref().unwrap()).unwrap();
    payload["contact_id"] = json!(999_999);
    ctx.store
        .update(
            "orders",
            &bad,
            &relay::state::EntityUpdate {
                payload: Some(payload.to_string()),
                ..Default::default()
            },
        )
        .unwrap();

    let report = orders::run(&ctx).await.unwrap();
    assert_eq!((report.booked, report.failed), (2, 1), "{report:?}");
    assert_eq!(multi_message_posts(&sb), 1, "one batch of three");
    let multi = sb
        .state()
        .faults
        .requests()
        .into_iter()
        .find(|r| r.path == multi_message_path(&sb))
        .unwrap();
    assert_eq!(multi.status, 207);
    let letters = ctx.store.dead_letters().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].source_id, bad);
    assert!(
        letters[0].error.contains("999999") && letters[0].error.contains("400"),
        "{}",
        letters[0].error
    );
    assert!(brightpearl_orders(&sb, &bad).await.is_empty());
    for order in norce.iter().filter(|o| o["orderNo"] != bad.as_str()) {
        let order_no = order["orderNo"].as_str().unwrap();
        assert_eq!(brightpearl_orders(&sb, order_no).await.len(), 1);
    }
}

/// `orders.multi_message = false` sends one request per write; with it on, a multi-message
/// endpoint that answers 501 makes the rest of the pass use single calls.
#[tokio::test(flavor = "multi_thread")]
async fn single_calls_by_setting_and_by_fallback_when_multi_message_is_unavailable() {
    let sb = sandbox(6).await;
    let ctx = common::context(
        &sb,
        config(OrdersConfig {
            multi_message: false,
            ..with_instance()
        }),
    );
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!((report.booked, report.failed), (6, 0), "{report:?}");
    assert_eq!((multi_message_posts(&sb), sales_order_posts(&sb)), (0, 6));
    assert_one_order_each_confirmed(&sb, &ctx).await;

    let sb = sandbox(6).await;
    sb.state()
        .faults
        .add(FaultRule {
            path_prefix: multi_message_path(&sb),
            method: Some("POST".into()),
            error_rate: 1.0,
            error_statuses: vec![501],
            ..FaultRule::default()
        })
        .unwrap();
    let ctx = common::context(&sb, config(with_instance()));
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!((report.booked, report.failed), (6, 0), "{report:?}");
    assert_eq!(
        (multi_message_posts(&sb), sales_order_posts(&sb)),
        (1, 6),
        "one try, then single calls for the pass"
    );
    assert_one_order_each_confirmed(&sb, &ctx).await;

    let err = RelayConfig::parse("[orders]\nmulti_message = \"yes\"\n", "relay.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("multi_message"), "{err}");
    let parsed = RelayConfig::parse("[orders]\nmulti_message = false\n", "relay.toml").unwrap();
    assert!(!parsed.orders.multi_message && OrdersConfig::default().multi_message);
}
