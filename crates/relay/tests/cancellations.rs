//! Orders cancelled in Norce against the in-process sandbox: the booked nShift shipment is
//! cancelled exactly once (also when the DELETE first fails), the Brightpearl order gets the
//! cancelled status, and a shipment already handed over is reported, not cancelled.

mod common;

use relay::config::RelayConfig;
use relay::config::orders::OrdersConfig;
use relay::flows::shipping::{self, CANCEL_FLOW};
use relay::flows::{FlowContext, Ingested, orders};
use relay::state::{EntityUpdate, InboxItem, Status};
use sandbox::{FaultRule, Sandbox};
use serde_json::{Value, json};

/// The sandbox's Brightpearl status "Cancelled".
const CANCELLED_STATUS: i64 = 6;
/// nShift's cancel: `DELETE /shipments/{id}`.
const NSHIFT_SHIPMENTS: &str = "/rs-extapi/v1/shipments/";

/// A sandbox of `orders` new Norce orders with a Brightpearl account of its own.
async fn sandbox(orders: usize) -> Sandbox {
    common::new_orders_sandbox(orders, "cancelacct").await
}

fn config(test: &str) -> RelayConfig {
    let mut config = RelayConfig {
        orders: OrdersConfig {
            cancelled_status_id: Some(CANCELLED_STATUS),
            ..OrdersConfig::default()
        },
        ..RelayConfig::default()
    };
    let dir = std::env::temp_dir().join(format!("relay-cancel-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    config.state.dir = dir;
    config
}

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

/// Imports and ships every order, then returns one shipped order: (basket, order id, order no).
async fn shipped_order(sb: &Sandbox, ctx: &FlowContext) -> (String, i64, String) {
    let imported = orders::run(ctx).await.unwrap();
    assert_eq!(imported.failed, 0, "{imported:?}");
    let shipped = shipping::run(ctx).await.unwrap();
    assert_eq!(shipped.failed, 0, "{shipped:?}");
    let record = ctx
        .store
        .list(Some(shipping::FLOW), Some(Status::Done))
        .unwrap()
        .into_iter()
        .next()
        .expect("a shipped order");
    let payload: Value = serde_json::from_str(record.payload.as_deref().unwrap()).unwrap();
    let order_no = payload["order_no"].as_str().unwrap().to_owned();
    let order = admin(sb, &format!("/_sandbox/norce/orders/{order_no}")).await;
    let order_id = order["id"]
        .as_i64()
        .or_else(|| order["orderId"].as_i64())
        .unwrap_or_else(|| panic!("order id in {order}"));
    (record.source_id, order_id, order_no)
}

fn cancelled_event(basket: &str, order_id: i64, order_no: &str) -> InboxItem {
    InboxItem {
        id: 1,
        source: "norce-event".into(),
        key: format!("OrderCancelledEvent:order-{order_id}"),
        body: json!({
            "ClientId": 1000, "ApplicationId": 1042, "OrderId": order_id,
            "OrderNo": order_no, "ClientOrderRef": basket, "Source": "WEB"
        })
        .to_string(),
        received_at: String::new(),
    }
}

async fn shipment(sb: &Sandbox, order_no: &str) -> Value {
    let shipments = admin(
        sb,
        &format!("/_sandbox/nshift/shipments?orderNo={order_no}"),
    )
    .await;
    let shipments = shipments.as_array().unwrap();
    assert_eq!(shipments.len(), 1, "{shipments:?}");
    shipments[0].clone()
}

async fn brightpearl_status(sb: &Sandbox, order_no: &str) -> Option<i64> {
    let orders = admin(
        sb,
        &format!("/_sandbox/brightpearl/orders?externalRef={order_no}"),
    )
    .await;
    let order = &orders.as_array().unwrap()[0];
    order["status_id"]
        .as_i64()
        .or_else(|| order["statusId"].as_i64())
        .or_else(|| order["orderStatusId"].as_i64())
}

/// Norce Connect `CancelOrder` calls the sandbox received.
fn cancel_posts(sb: &Sandbox) -> usize {
    sb.state()
        .faults
        .count("POST", "/commerce/connect/4.0/Order/CancelOrder")
}

/// (DELETEs of `path`, those the sandbox handled: no injected fault).
fn deletes(sb: &Sandbox, path: &str) -> (usize, usize) {
    let requests: Vec<_> = sb
        .state()
        .faults
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path == path)
        .collect();
    let handled = requests.iter().filter(|r| r.fault.is_none()).count();
    (requests.len(), handled)
}

fn step(ctx: &FlowContext, flow: &str, id: &str) -> (Status, Option<String>) {
    let record = ctx.store.get(flow, id).unwrap().unwrap();
    (record.status, record.step)
}

#[tokio::test]
async fn a_booked_order_cancelled_in_norce_cancels_its_shipment_once_despite_a_503_and_the_erp_order()
 {
    let sb = sandbox(2).await;
    let ctx = common::context(&sb, config("once"));
    let (basket, order_id, order_no) = shipped_order(&sb, &ctx).await;
    assert_ne!(
        brightpearl_status(&sb, &order_no).await,
        Some(CANCELLED_STATUS)
    );
    let shipment_id = shipment(&sb, &order_no).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let delete_path = format!("{NSHIFT_SHIPMENTS}{shipment_id}");

    let event = cancelled_event(&basket, order_id, &order_no);
    assert_eq!(
        shipping::ingest(&ctx, &event).await.unwrap(),
        Ingested::Work
    );
    assert_eq!(
        shipping::ingest(&ctx, &event).await.unwrap(),
        Ingested::Nothing,
        "a repeated event queues nothing more"
    );

    // The first DELETE is answered 503; the client retries the DELETE (it is idempotent).
    sb.state()
        .faults
        .add(FaultRule {
            path_prefix: NSHIFT_SHIPMENTS.into(),
            method: Some("DELETE".into()),
            error_rate: 1.0,
            error_statuses: vec![503],
            remaining: Some(1),
            ..FaultRule::default()
        })
        .unwrap();
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(
        step(&ctx, CANCEL_FLOW, &basket),
        (Status::Done, Some("cancelled".into()))
    );
    let cancelled = shipment(&sb, &order_no).await;
    assert_eq!(cancelled["cancelled"], true, "{cancelled}");
    assert_eq!(
        brightpearl_status(&sb, &order_no).await,
        Some(CANCELLED_STATUS)
    );
    assert_eq!(
        step(&ctx, shipping::FLOW, &basket).1.as_deref(),
        Some("cancelled")
    );
    assert_eq!(
        step(&ctx, orders::FLOW, &order_no),
        (Status::Done, Some("cancelled".into()))
    );

    // Another pass, another event: no second DELETE.
    let _ = shipping::ingest(&ctx, &event).await.unwrap();
    shipping::run(&ctx).await.unwrap();
    assert_eq!(
        deletes(&sb, &delete_path),
        (2, 1),
        "one DELETE refused with 503, one that cancelled; never another"
    );
    let history = ctx.store.events(shipping::FLOW, &basket, 50).unwrap();
    assert!(
        history
            .iter()
            .any(|h| format!("{h:?}").contains("cancelled")),
        "{history:?}"
    );
}

#[tokio::test]
async fn a_shipment_handed_over_to_the_carrier_is_reported_not_cancelled() {
    let sb = sandbox(1).await;
    let ctx = common::context(&sb, config("handed"));
    let (basket, order_id, order_no) = shipped_order(&sb, &ctx).await;

    // The alerts feed recorded that the carrier has it.
    let record = ctx.store.get(shipping::FLOW, &basket).unwrap().unwrap();
    let mut payload: Value = serde_json::from_str(record.payload.as_deref().unwrap()).unwrap();
    payload["tracking"] =
        json!({"P1": {"nshift_status": "DISPATCHING", "at": "2026-03-02T09:00:00Z"}});
    ctx.store
        .update(
            shipping::FLOW,
            &basket,
            &EntityUpdate {
                payload: Some(payload.to_string()),
                ..Default::default()
            },
        )
        .unwrap();

    let event = cancelled_event(&basket, order_id, &order_no);
    assert_eq!(
        shipping::ingest(&ctx, &event).await.unwrap(),
        Ingested::Work
    );
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 1, "{report:?}");

    let record = ctx.store.get(CANCEL_FLOW, &basket).unwrap().unwrap();
    assert_eq!(record.status, Status::Failed, "{record:?}");
    let error = record.last_error.unwrap_or_default();
    assert!(
        error.contains("handed over to the carrier on 2026-03-02T09:00:00Z")
            && error.contains("cancel it with the carrier"),
        "{error}"
    );
    assert_eq!(shipment(&sb, &order_no).await["cancelled"], false);
    assert_eq!(sb.state().faults.count("DELETE", NSHIFT_SHIPMENTS), 0);
    assert_eq!(
        step(&ctx, shipping::FLOW, &basket).1.as_deref(),
        Some("cancel_refused")
    );
    // The Brightpearl order is cancelled all the same.
    assert_eq!(
        brightpearl_status(&sb, &order_no).await,
        Some(CANCELLED_STATUS)
    );
}

fn order_status_webhook(order_id: i64) -> InboxItem {
    InboxItem {
        id: 2,
        source: "brightpearl-webhook".into(),
        key: format!("order.modified.order-status:{order_id}"),
        body: json!({"id": order_id.to_string(), "fullEvent": "order.modified.order-status", "accountCode": "x"})
            .to_string(),
        received_at: String::new(),
    }
}

/// Sets a Brightpearl order's status as an ERP user would.
async fn set_brightpearl_status(ctx: &FlowContext, order_id: i64, status: i64) {
    use brightpearl_client::models::order::operations::OrderApi as _;
    use brightpearl_client::models::order::{OrderStatusUpdate, UpdateOrderStatusPath};
    let brightpearl = ctx.brightpearl.clone().unwrap();
    let path = UpdateOrderStatusPath {
        account: brightpearl.account().to_owned(),
        order_id,
    };
    brightpearl
        .update_order_status(
            &path,
            &OrderStatusUpdate {
                order_note: None,
                order_status_id: status,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_order_cancelled_in_brightpearl_is_cancelled_in_norce_once_while_open() {
    let sb = sandbox(2).await;
    let ctx = common::context(&sb, config("erp"));
    let imported = orders::run(&ctx).await.unwrap();
    assert_eq!((imported.done, imported.failed), (2, 0), "{imported:?}");
    let records = ctx.store.list(Some(orders::FLOW), None).unwrap();
    let (open_no, open_id) = (
        records[0].source_id.clone(),
        records[0]
            .target_id
            .clone()
            .unwrap()
            .parse::<i64>()
            .unwrap(),
    );
    let (closed_no, closed_id) = (
        records[1].source_id.clone(),
        records[1]
            .target_id
            .clone()
            .unwrap()
            .parse::<i64>()
            .unwrap(),
    );
    // The second order is delivered in Norce: Norce keeps it as it is.
    {
        use norce_client::models::connect::operations::ConnectApi as _;
        use norce_client::models::connect::{ConnectOrderStatus, SendOrderStatusRequest};
        let request = SendOrderStatusRequest {
            client_order_ref: None,
            erp_order_no: Some(closed_no.clone()),
            order_status: ConnectOrderStatus::from("Delivered"),
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
    let norce_status = |no: String| {
        let sb = &sb;
        async move { admin(sb, &format!("/_sandbox/norce/orders/{no}")).await["status"].clone() }
    };
    assert_eq!(norce_status(closed_no.clone()).await, "Delivered");
    assert_ne!(norce_status(open_no.clone()).await, "Delivered");

    // Another status change is no cancellation.
    set_brightpearl_status(&ctx, open_id, 3).await;
    assert_eq!(
        orders::ingest(&ctx, &order_status_webhook(open_id))
            .await
            .unwrap(),
        Ingested::Work
    );
    let report = orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(
        step(&ctx, orders::ERP_CANCEL_FLOW, &open_id.to_string()).0,
        Status::Skipped
    );

    for id in [open_id, closed_id] {
        set_brightpearl_status(&ctx, id, CANCELLED_STATUS).await;
        assert_eq!(
            orders::ingest(&ctx, &order_status_webhook(id))
                .await
                .unwrap(),
            Ingested::Work
        );
    }
    let report = orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(
        step(&ctx, orders::ERP_CANCEL_FLOW, &open_id.to_string()),
        (Status::Done, Some("norce_cancelled".into()))
    );
    assert_eq!(
        admin(&sb, &format!("/_sandbox/norce/orders/{open_no}")).await["status"],
        "Cancelled"
    );
    assert_eq!(
        step(&ctx, orders::FLOW, &open_no).1.as_deref(),
        Some("cancelled")
    );
    let closed = ctx
        .store
        .get(orders::ERP_CANCEL_FLOW, &closed_id.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(closed.status, Status::Skipped, "{closed:?}");
    assert_eq!(
        admin(&sb, &format!("/_sandbox/norce/orders/{closed_no}")).await["status"],
        "Delivered"
    );
    assert_eq!(cancel_posts(&sb), 1);

    // The webhook again, another pass: no second CancelOrder.
    let _ = orders::ingest(&ctx, &order_status_webhook(open_id))
        .await
        .unwrap();
    orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!(cancel_posts(&sb), 1);
}

#[tokio::test]
async fn an_order_cancelled_in_norce_before_it_shipped_is_found_by_the_poll_and_never_booked() {
    let sb = sandbox(1).await;
    let ctx = common::context(&sb, config("poll"));
    let imported = orders::run(&ctx).await.unwrap();
    assert_eq!((imported.done, imported.failed), (1, 0), "{imported:?}");
    let order_no = ctx.store.list(Some(orders::FLOW), None).unwrap()[0]
        .source_id
        .clone();
    let order = admin(&sb, &format!("/_sandbox/norce/orders/{order_no}")).await;
    let basket = order["clientOrderRef"].as_i64().unwrap();
    let order_id = order["id"].as_i64().unwrap();
    // The shipping flow knows the order (an event queued it) but has not booked it.
    let confirmed = InboxItem {
        id: 3,
        source: "norce-event".into(),
        key: format!("OrderConfirmedEvent:order-{order_id}"),
        body: json!({
            "ClientId": 1000, "ApplicationId": 1042, "OrderId": order_id,
            "OrderNo": order_no, "ClientOrderRef": basket.to_string(), "Source": "WEB"
        })
        .to_string(),
        received_at: String::new(),
    };
    assert_eq!(
        shipping::ingest(&ctx, &confirmed).await.unwrap(),
        Ingested::Work
    );
    // Cancelled in Norce; relay gets no event.
    {
        use norce_client::models::connect::CancelOrderRequest;
        use norce_client::models::connect::operations::ConnectApi as _;
        let request = CancelOrderRequest {
            client_order_ref: Some(i32::try_from(basket).unwrap()),
            ..CancelOrderRequest::default()
        };
        ctx.norce
            .as_ref()
            .unwrap()
            .cancel_order(&request)
            .await
            .unwrap();
    }

    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let basket = basket.to_string();
    assert_eq!(
        step(&ctx, CANCEL_FLOW, &basket),
        (Status::Done, Some("cancelled".into()))
    );
    assert_eq!(
        step(&ctx, shipping::FLOW, &basket),
        (Status::Skipped, Some("cancelled".into()))
    );
    let shipments = admin(
        &sb,
        &format!("/_sandbox/nshift/shipments?orderNo={order_no}"),
    )
    .await;
    assert_eq!(shipments.as_array().unwrap().len(), 0, "never booked");
    assert_eq!(sb.state().faults.count("DELETE", NSHIFT_SHIPMENTS), 0);
    assert_eq!(
        brightpearl_status(&sb, &order_no).await,
        Some(CANCELLED_STATUS)
    );
}

#[tokio::test]
async fn an_order_cancelled_in_brightpearl_without_a_webhook_is_found_by_the_poll() {
    let sb = sandbox(2).await;
    let ctx = common::context(&sb, config("erp-poll"));
    let imported = orders::run(&ctx).await.unwrap();
    assert_eq!((imported.done, imported.failed), (2, 0), "{imported:?}");
    let records = ctx.store.list(Some(orders::FLOW), None).unwrap();
    let order_no = records[0].source_id.clone();
    let order_id: i64 = records[0].target_id.clone().unwrap().parse().unwrap();
    // A pass with nothing cancelled moves no cursor and queues nothing.
    orders::run_fulfilment(&ctx).await.unwrap();
    assert!(
        ctx.store
            .list(Some(orders::ERP_CANCEL_FLOW), None)
            .unwrap()
            .is_empty()
    );

    // Cancelled in the ERP; the webhook never came.
    set_brightpearl_status(&ctx, order_id, CANCELLED_STATUS).await;
    let report = orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(
        step(&ctx, orders::ERP_CANCEL_FLOW, &order_id.to_string()),
        (Status::Done, Some("norce_cancelled".into()))
    );
    assert_eq!(
        admin(&sb, &format!("/_sandbox/norce/orders/{order_no}")).await["status"],
        "Cancelled"
    );
    // Only relay's order was queued, and the cursor moved to its update time.
    assert_eq!(
        ctx.store
            .list(Some(orders::ERP_CANCEL_FLOW), None)
            .unwrap()
            .len(),
        1
    );
    assert!(ctx.store.cursor(orders::ERP_CANCEL_FLOW).unwrap().is_some());
    assert_eq!(cancel_posts(&sb), 1);
    // The next pass sees it again (the period is inclusive) and sends nothing.
    orders::run_fulfilment(&ctx).await.unwrap();
    assert_eq!(cancel_posts(&sb), 1);
}
