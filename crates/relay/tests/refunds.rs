//! Refunds against the in-process sandbox: `relay refund` / the console's Refund queue a refund
//! of an imported order, and the orders pass turns it into one Brightpearl sales credit (rows
//! and amounts as the sales order has them), exactly once, with the stock put back when asked.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use brightpearl_client::models::order::GetSalesCreditsPath;
use brightpearl_client::models::order::operations::OrderApi as _;
use brightpearl_client::models::order::{SalesCredit, SalesOrder};
use brightpearl_client::{OrderRow, SearchQuery, SearchResource};
use relay::config::RelayConfig;
use relay::config::orders::OrdersConfig;
use relay::flows::orders::{self, REFUND_FLOW, RefundRequest};
use relay::flows::{FlowContext, registry};
use relay::operator;
use relay::serve::{self, SecretString, ServeSecrets};
use relay::state::{EntityUpdate, EventKind, SqliteStore, Status, Store};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sandbox::{FaultRule, Sandbox};

/// The sandbox's first warehouse (`orders.warehouse_id`'s default) and a location in it.
const WAREHOUSE: i64 = 2;
const REFUND_LOCATION: i64 = 2;
const CREDIT_PATH: &str = "order-service/sales-credit";

/// A sandbox of `orders` new Norce orders with a Brightpearl account of its own.
async fn sandbox(orders: usize) -> Sandbox {
    common::new_orders_sandbox(orders, "refundacct").await
}

fn config() -> RelayConfig {
    RelayConfig {
        orders: OrdersConfig {
            refund_location_id: Some(REFUND_LOCATION),
            ..OrdersConfig::default()
        },
        ..RelayConfig::default()
    }
}

/// Imports every order; the numbers of the imported ones.
async fn imported(ctx: &FlowContext) -> Vec<String> {
    let report = orders::run(ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let done: Vec<String> = ctx
        .store
        .list(Some(orders::FLOW), Some(Status::Done))
        .unwrap()
        .into_iter()
        .map(|r| r.source_id)
        .collect();
    assert!(!done.is_empty());
    done
}

fn bp(ctx: &FlowContext) -> &brightpearl_client::Client {
    ctx.brightpearl().unwrap()
}

/// The Brightpearl sales order of an imported order.
async fn sales_order(ctx: &FlowContext, order_no: &str) -> SalesOrder {
    let record = ctx.store.get(orders::FLOW, order_no).unwrap().unwrap();
    let id: u64 = record.target_id.unwrap().parse().unwrap();
    bp(ctx).sales_orders(&[id]).await.unwrap().remove(0)
}

/// Every sales credit with this `externalRef` (the order search, type 3).
async fn credits_with(ctx: &FlowContext, key: &str) -> Vec<SalesCredit> {
    let query = SearchQuery::new()
        .filter("orderTypeId", "3")
        .filter("externalRef", key)
        .columns(["orderId", "externalRef"]);
    let rows: Vec<OrderRow> = bp(ctx)
        .search_all(SearchResource::Orders, query)
        .await
        .unwrap();
    let mut credits = Vec::new();
    for row in rows
        .iter()
        .filter(|r| r.external_ref.as_deref() == Some(key))
    {
        let path = GetSalesCreditsPath {
            account: bp(ctx).account().to_owned(),
            id_set: row.order_id.to_string(),
        };
        credits.extend(bp(ctx).get_sales_credits(&path).await.unwrap().response);
    }
    credits
}

/// (product id, quantity, net, tax) of each row, as text.
type RowFigures = Vec<(Option<i64>, String, String, String)>;

fn figures(rows: &[brightpearl_client::models::order::SalesOrderRow]) -> RowFigures {
    let text =
        |d: &Option<models_runtime::Decimal>| d.as_ref().map(|d| d.to_string()).unwrap_or_default();
    let mut rows: RowFigures = rows
        .iter()
        .map(|r| (r.product_id, text(&r.quantity), text(&r.net), text(&r.tax)))
        .collect();
    rows.sort();
    rows
}

/// The product of the first row of an order's sales order.
async fn first_product(ctx: &FlowContext, order_no: &str) -> i64 {
    let sale = sales_order(ctx, order_no).await;
    let rows = sale.rows.unwrap_or_default();
    rows.iter().find_map(|r| r.product_id).unwrap()
}

/// A refund of every row that puts the stock back.
fn restock() -> RefundRequest {
    RefundRequest {
        restock: Some(true),
        ..RefundRequest::default()
    }
}

/// The test configuration without `orders.refund_location_id`: restocked goods go to each
/// product's default location.
fn at_product_defaults() -> RelayConfig {
    let mut settings = config();
    settings.orders.refund_location_id = None;
    settings
}

/// Sets a refund back as a crash would leave it: pending at `step` with `payload` (what was
/// recorded before the calls whose answers were lost).
fn crashed_at(ctx: &FlowContext, key: &str, step: &str, payload: &serde_json::Value) {
    let update = EntityUpdate {
        status: Some(Status::Pending),
        step: Some(step.into()),
        payload: Some(payload.to_string()),
        ..EntityUpdate::default()
    };
    ctx.store.update(REFUND_FLOW, key, &update).unwrap();
}

/// In-stock figure of a product in the warehouse.
async fn in_stock(ctx: &FlowContext, product: i64) -> i64 {
    let availability = bp(ctx).availability(&[product as u64]).await.unwrap();
    availability[&product.to_string()]
        .warehouses
        .as_ref()
        .and_then(|w| w.get(&WAREHOUSE.to_string()))
        .and_then(|l| l.in_stock)
        .unwrap_or(0)
}

fn queue(ctx: &FlowContext, order_no: &str, request: &RefundRequest) -> String {
    operator::refund(
        ctx.store.as_ref(),
        &ctx.config,
        order_no,
        request,
        operator::CLI_ACTOR,
    )
    .unwrap()
    .record
    .source_id
}

fn refused(ctx: &FlowContext, order_no: &str, request: &RefundRequest) -> String {
    operator::refund(
        ctx.store.as_ref(),
        &ctx.config,
        order_no,
        request,
        operator::CLI_ACTOR,
    )
    .unwrap_err()
    .to_string()
}

fn rows(pairs: &[(&str, &str)]) -> RefundRequest {
    RefundRequest {
        rows: pairs
            .iter()
            .map(|(s, q)| ((*s).to_owned(), (*q).to_owned()))
            .collect(),
        ..RefundRequest::default()
    }
}

#[tokio::test]
async fn a_whole_refund_credits_every_row_as_the_sales_order_has_them_once() {
    let sb = sandbox(2).await;
    let ctx = common::context(&sb, config());
    let order_no = imported(&ctx).await.remove(0);
    let sale = sales_order(&ctx, &order_no).await;

    let request = RefundRequest {
        reason: Some("customer cancelled after delivery".into()),
        ..RefundRequest::default()
    };
    let key = queue(&ctx, &order_no, &request);
    assert_eq!(key, format!("{order_no}-R1"));
    // Queued only: no credit until a pass runs.
    assert!(credits_with(&ctx, &key).await.is_empty());
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");

    let credits = credits_with(&ctx, &key).await;
    assert_eq!(credits.len(), 1, "{credits:?}");
    let credit = &credits[0];
    assert_eq!(
        credit.parent_id.as_deref(),
        Some(sale.id.to_string().as_str())
    );
    assert_eq!(credit.ref_.as_deref(), Some(order_no.as_str()));
    assert_eq!(
        credit.customer.as_ref().map(|c| c.id),
        sale.customer.as_ref().map(|c| c.id)
    );
    assert_eq!(credit.price_list_id, sale.price_list_id);
    assert_eq!(
        figures(credit.rows.as_deref().unwrap_or_default()),
        figures(sale.rows.as_deref().unwrap_or_default()),
        "every row of the sales order, same products, quantities and amounts"
    );
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(refund.status, Status::Done);
    assert_eq!(refund.step.as_deref(), Some("credited"));
    assert_eq!(refund.target_id, Some(credit.id.to_string()));
    let order = ctx.store.get(orders::FLOW, &order_no).unwrap().unwrap();
    assert_eq!(order.status, Status::Done);
    assert_eq!(order.step, Some(format!("refunded {key}")));
    // The operator's action is in the audit log with what and why.
    let audit = ctx.store.audit_log(10).unwrap();
    let queued = audit
        .iter()
        .find(|e| e.flow == REFUND_FLOW && e.source_id == key)
        .expect("the refund in the audit log");
    assert_eq!(queued.kind, EventKind::Created);
    assert_eq!(queued.actor.as_deref(), Some("cli"));
    let detail = queued.detail.clone().unwrap_or_default();
    assert!(
        detail.contains("customer cancelled after delivery"),
        "{detail}"
    );

    // Another pass credits nothing more; the order is refunded in full.
    orders::run(&ctx).await.unwrap();
    assert_eq!(credits_with(&ctx, &key).await.len(), 1);
    assert_eq!(
        sb.state().faults.count(
            "POST",
            &format!("/public-api/{}/{CREDIT_PATH}", bp(&ctx).account())
        ),
        1
    );
    let err = refused(&ctx, &order_no, &RefundRequest::default());
    assert!(err.contains("refunded in full already"), "{err}");
}

#[tokio::test]
async fn two_partial_refunds_the_second_limited_by_what_the_first_left() {
    let sb = sandbox(6).await;
    let ctx = common::context(&sb, config());
    let numbers = imported(&ctx).await;
    // An order line of at least 2 pieces (the dataset orders 1 to 3 of each).
    let mut found = None;
    for order_no in &numbers {
        let sale = sales_order(&ctx, order_no).await;
        for row in sale.rows.unwrap_or_default() {
            let qty: i64 = row
                .quantity
                .map(|q| q.to_string().parse::<f64>().unwrap() as i64)
                .unwrap_or(0);
            if let (Some(sku), true) = (row.sku.clone(), qty >= 2) {
                found = Some((order_no.clone(), sku, qty, row));
                break;
            }
        }
        if found.is_some() {
            break;
        }
    }
    let (order_no, sku, ordered, row) = found.expect("a line of 2 or more");

    let first = queue(&ctx, &order_no, &rows(&[(&sku, "1")]));
    assert_eq!(first, format!("{order_no}-R1"));
    // Before the first is even credited, the second is limited by it.
    let err = refused(&ctx, &order_no, &rows(&[(&sku, &ordered.to_string())]));
    assert!(
        err.contains(&format!(
            "only {} of the {ordered} ordered are left",
            ordered - 1
        )),
        "{err}"
    );
    let second = queue(
        &ctx,
        &order_no,
        &rows(&[(&sku, &(ordered - 1).to_string())]),
    );
    assert_eq!(second, format!("{order_no}-R2"));
    let err = refused(&ctx, &order_no, &rows(&[(&sku, "1")]));
    assert!(err.contains("only 0 of the"), "{err}");

    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let one = credits_with(&ctx, &first).await;
    let rest = credits_with(&ctx, &second).await;
    assert_eq!((one.len(), rest.len()), (1, 1));
    let only = |c: &SalesCredit| {
        let rows = c.rows.clone().unwrap_or_default();
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0].clone()
    };
    let (a, b) = (only(&one[0]), only(&rest[0]));
    assert_eq!(
        (a.product_id, b.product_id),
        (row.product_id, row.product_id)
    );
    let pieces =
        |d: Option<models_runtime::Decimal>| d.unwrap().to_string().parse::<f64>().unwrap();
    assert_eq!(pieces(a.quantity), 1.0);
    assert_eq!(pieces(b.quantity), (ordered - 1) as f64);
    // Amounts: the unit price times the refunded quantity; together the sales order row's.
    let cents = |d: Option<models_runtime::Decimal>| {
        (d.unwrap().to_string().parse::<f64>().unwrap() * 100.0).round() as i64
    };
    assert_eq!(
        cents(a.net) + cents(b.net),
        cents(row.net),
        "{a:?} {b:?} {row:?}"
    );
    for key in [&first, &second] {
        assert_eq!(
            ctx.store.get(REFUND_FLOW, key).unwrap().unwrap().status,
            Status::Done
        );
    }
}

#[tokio::test]
async fn restock_puts_the_stock_back_once_even_when_the_answer_is_lost() {
    let sb = sandbox(2).await;
    let ctx = common::context(&sb, config());
    let order_no = imported(&ctx).await.remove(0);
    let sale = sales_order(&ctx, &order_no).await;
    let products: Vec<(i64, i64)> = sale
        .rows
        .unwrap_or_default()
        .iter()
        .filter_map(|r| {
            Some((
                r.product_id?,
                r.quantity.as_ref()?.to_string().parse::<f64>().ok()? as i64,
            ))
        })
        .collect();
    assert!(!products.is_empty());
    let mut before = Vec::new();
    for (product, _) in &products {
        before.push(in_stock(&ctx, *product).await);
    }
    // The credit and the goods-in note are stored but their answers lost: the client finds
    // each (the credit by its externalRef, the note on the credit) instead of posting again.
    sb.state()
        .faults
        .add(FaultRule {
            path_prefix: format!("/public-api/{}/{CREDIT_PATH}", bp(&ctx).account()),
            method: Some("POST".into()),
            commit_then_fail_rate: 1.0,
            remaining: Some(1),
            ..FaultRule::default()
        })
        .unwrap();
    sb.state()
        .faults
        .add(FaultRule {
            path_prefix: format!(
                "/public-api/{}/warehouse-service/order/",
                bp(&ctx).account()
            ),
            method: Some("POST".into()),
            commit_then_fail_rate: 1.0,
            remaining: Some(1),
            ..FaultRule::default()
        })
        .unwrap();
    let request = restock();
    let key = queue(&ctx, &order_no, &request);
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(
        (refund.status, refund.step.as_deref()),
        (Status::Done, Some("restocked"))
    );
    assert_eq!(
        credits_with(&ctx, &key).await.len(),
        1,
        "one credit despite the lost answer"
    );
    let credit: u64 = refund.target_id.unwrap().parse().unwrap();
    let notes = bp(&ctx).goods_in_notes_of(credit).await.unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = notes.values().next().unwrap();
    assert_eq!(note.user_batch_reference.as_deref(), Some(key.as_str()));
    for ((product, qty), before) in products.iter().zip(&before) {
        assert_eq!(
            in_stock(&ctx, *product).await,
            before + qty,
            "product {product}"
        );
    }

    // A crash after the calls, before they were recorded: the pass checks both targets first
    // (the credit by its externalRef, the credit's goods-in notes) and adds nothing.
    let mut payload: serde_json::Value =
        serde_json::from_str(refund.payload.as_deref().unwrap()).unwrap();
    payload.as_object_mut().unwrap().remove("credit_id");
    payload.as_object_mut().unwrap().remove("goods_in_id");
    crashed_at(&ctx, &key, "crediting", &payload);
    let posts = sb.state().faults.count("POST", "/public-api/");
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(
        sb.state().faults.count("POST", "/public-api/"),
        posts,
        "nothing posted again"
    );
    assert_eq!(credits_with(&ctx, &key).await.len(), 1);
    assert_eq!(bp(&ctx).goods_in_notes_of(credit).await.unwrap().len(), 1);
    for ((product, qty), before) in products.iter().zip(&before) {
        assert_eq!(
            in_stock(&ctx, *product).await,
            before + qty,
            "product {product}"
        );
    }
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(refund.status, Status::Done);
    assert_eq!(refund.target_id, Some(credit.to_string()));
}

#[tokio::test]
async fn without_restock_the_stock_stays_and_a_failed_credit_is_retried_without_doubling() {
    let sb = sandbox(2).await;
    let ctx = common::context(&sb, config());
    let order_no = imported(&ctx).await.remove(0);
    let product = first_product(&ctx, &order_no).await;
    let before = in_stock(&ctx, product).await;
    // The credit POST is answered 503 without being handled, twice: the refund waits for a
    // later pass (an attempt counted), then goes through.
    sb.state()
        .faults
        .add(FaultRule {
            path_prefix: format!("/public-api/{}/{CREDIT_PATH}", bp(&ctx).account()),
            method: Some("POST".into()),
            error_rate: 1.0,
            error_statuses: vec![500],
            remaining: Some(1),
            ..FaultRule::default()
        })
        .unwrap();
    let key = queue(&ctx, &order_no, &RefundRequest::default());
    orders::run(&ctx).await.unwrap();
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(
        (refund.status, refund.step.as_deref(), refund.attempts),
        (Status::Pending, Some("crediting"), 1),
        "{refund:?}"
    );
    assert!(credits_with(&ctx, &key).await.is_empty());
    orders::run(&ctx).await.unwrap();
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(refund.status, Status::Done, "{refund:?}");
    assert_eq!(credits_with(&ctx, &key).await.len(), 1);
    assert_eq!(in_stock(&ctx, product).await, before, "no restock asked");
}

#[tokio::test]
async fn refusals_name_the_problem_and_queue_nothing() {
    let sb = sandbox(2).await;
    let ctx = common::context(&sb, config());
    let order_no = imported(&ctx).await.remove(0);

    let err = refused(&ctx, "NC-NOPE", &RefundRequest::default());
    assert!(err.contains("NC-NOPE is unknown to relay"), "{err}");
    let err = refused(&ctx, &order_no, &rows(&[("NO-SUCH-SKU", "1")]));
    assert!(err.contains("`NO-SUCH-SKU` is not on order"), "{err}");
    let sale = sales_order(&ctx, &order_no).await;
    let sku = sale
        .rows
        .unwrap_or_default()
        .iter()
        .find_map(|r| r.sku.clone())
        .unwrap();
    let err = refused(&ctx, &order_no, &rows(&[(&sku, "99")]));
    assert!(err.contains("99 asked, but only"), "{err}");
    let err = refused(&ctx, &order_no, &rows(&[(&sku, "0")]));
    assert!(err.contains("not a positive quantity"), "{err}");
    // An order relay holds whose sales order is not created yet.
    ctx.store
        .upsert_pending(orders::FLOW, "NC-PENDING", None)
        .unwrap();
    let err = refused(&ctx, "NC-PENDING", &RefundRequest::default());
    assert!(err.contains("has no Brightpearl sales order yet"), "{err}");
    assert!(ctx.store.list(Some(REFUND_FLOW), None).unwrap().is_empty());
}

/// Sets (or removes) a product's default location in the warehouse, by the sandbox's admin route.
async fn set_default_location(sb: &Sandbox, product: i64, location: Option<i64>) {
    let url = format!(
        "{}/_sandbox/brightpearl/products/{product}/default-location",
        sb.base_url()
    );
    let body = serde_json::json!({ "warehouseId": WAREHOUSE, "locationId": location });
    let answer = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "{:?}", answer.text().await);
}

/// A restock resumed after a crash between the goods-in POST and its record finds the note
/// before building another: nothing is read or posted for the note, so a product that lost its
/// default location meanwhile does not turn the done refund into a dead letter.
#[tokio::test]
async fn a_resumed_restock_finds_its_note_without_building_it_again() {
    let sb = sandbox(1).await;
    let ctx = common::context(&sb, at_product_defaults());
    let order_no = imported(&ctx).await.remove(0);
    let key = queue(&ctx, &order_no, &restock());
    orders::run(&ctx).await.unwrap();
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(refund.step.as_deref(), Some("restocked"), "{refund:?}");
    let credit: u64 = refund.target_id.clone().unwrap().parse().unwrap();
    let mut payload: serde_json::Value =
        serde_json::from_str(refund.payload.as_deref().unwrap()).unwrap();
    let note = payload["goods_in_id"].clone();
    assert!(note.is_u64(), "{payload}");

    // The crash: the note was posted, its id not recorded; then the product loses its location.
    payload.as_object_mut().unwrap().remove("goods_in_id");
    crashed_at(&ctx, &key, "restocking", &payload);
    set_default_location(&sb, first_product(&ctx, &order_no).await, None).await;
    let account = bp(&ctx).account().to_owned();
    let count = |method: &str, path: &str| {
        let prefix = format!("/public-api/{account}/{path}");
        sb.state().faults.count(method, &prefix)
    };
    let before = [
        count("GET", "warehouse-service/order/"),
        count("GET", "product-service/"),
        count("GET", "order-service/"),
        count("POST", ""),
    ];
    let report = orders::run(&ctx).await.unwrap();
    let after = [
        count("GET", "warehouse-service/order/"),
        count("GET", "product-service/"),
        count("GET", "order-service/"),
        count("POST", ""),
    ];
    let made: Vec<usize> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(
        made,
        [1, 0, 0, 0],
        "one list of the credit's notes; no product or credit read, no POST"
    );
    assert_eq!(report.failed, 0, "{report:?}");
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(
        (refund.status, refund.step.as_deref()),
        (Status::Done, Some("restocked")),
        "{refund:?}"
    );
    let payload: serde_json::Value =
        serde_json::from_str(refund.payload.as_deref().unwrap()).unwrap();
    assert_eq!(payload["goods_in_id"], note);
    assert_eq!(bp(&ctx).goods_in_notes_of(credit).await.unwrap().len(), 1);
}

/// Restocking needs no location setting (each product's default location serves); a location
/// that is set must be a Brightpearl id.
#[test]
fn restock_needs_no_location_setting_and_a_bad_one_is_refused_when_the_configuration_loads() {
    let config = RelayConfig::parse("[orders]\nrefund_restock = true\n", "relay.toml").unwrap();
    assert!(config.orders.refund_restock);
    assert_eq!(config.orders.refund_location_id, None);
    let config = RelayConfig::parse(
        "[orders]\nrefund_restock = true\nrefund_location_id = 4\n",
        "relay.toml",
    )
    .unwrap();
    assert_eq!(config.orders.refund_location_id, Some(4));
    let err = RelayConfig::parse("[orders]\nrefund_location_id = 0\n", "relay.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("orders.refund_location_id"), "{err}");
}

/// Without `orders.refund_location_id` each product goes back to its own default location in
/// the warehouse (its Brightpearl record); a product without one is a dead letter naming both
/// settings, its credit kept and no goods-in note posted, and once the product has a location
/// the console's Retry puts the stock back.
#[tokio::test]
async fn without_a_location_setting_each_product_goes_to_its_default_location() {
    let sb = sandbox(2).await;
    let ctx = common::context(&sb, at_product_defaults());
    let numbers = imported(&ctx).await;
    assert!(numbers.len() >= 2, "{numbers:?}");
    // The sandbox gives each product the default location `warehouse * 100 + 1`.
    let default_location = WAREHOUSE * 100 + 1;

    let key = queue(&ctx, &numbers[0], &restock());
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(refund.step.as_deref(), Some("restocked"), "{refund:?}");
    let credit: u64 = refund.target_id.unwrap().parse().unwrap();
    let notes = bp(&ctx).goods_in_notes_of(credit).await.unwrap();
    let moved: Vec<_> = notes
        .values()
        .flat_map(|n| n.goods_moved.iter().flatten())
        .collect();
    assert!(!moved.is_empty(), "{notes:?}");
    for movement in moved {
        assert_eq!(
            movement.destination_location_id,
            Some(default_location),
            "{movement:?}"
        );
    }

    // The second order's first product has no default location in the warehouse.
    let product = first_product(&ctx, &numbers[1]).await;
    set_default_location(&sb, product, None).await;
    let key = queue(&ctx, &numbers[1], &restock());
    orders::run(&ctx).await.unwrap();
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(refund.status, Status::Failed, "{refund:?}");
    let error = refund.last_error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!("product {product}"))
            && error.contains("orders.warehouse_id")
            && error.contains("orders.refund_location_id"),
        "{error}"
    );
    let credit: u64 = refund.target_id.unwrap().parse().unwrap();
    assert_eq!(credits_with(&ctx, &key).await.len(), 1, "the credit stands");
    assert!(bp(&ctx).goods_in_notes_of(credit).await.unwrap().is_empty());

    set_default_location(&sb, product, Some(default_location)).await;
    let retried = operator::retry_entity(ctx.store.as_ref(), REFUND_FLOW, &key, "test").unwrap();
    assert_eq!(retried.len(), 1);
    let report = orders::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(refund.step.as_deref(), Some("restocked"), "{refund:?}");
    assert_eq!(
        credits_with(&ctx, &key).await.len(),
        1,
        "not credited twice"
    );
    assert_eq!(bp(&ctx).goods_in_notes_of(credit).await.unwrap().len(), 1);
}

/// A folder with a `relay.toml` naming its state folder; removed on drop.
struct Workspace(PathBuf);

impl Workspace {
    fn new(name: &str, extra: &str) -> Self {
        let root = std::env::temp_dir().join(format!(
            "relay-refund-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("relay.toml"),
            format!(
                "[state]\ndir = {:?}\n{extra}",
                root.join("data").to_str().unwrap()
            ),
        )
        .unwrap();
        Self(root)
    }

    fn store(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open_in(&self.0.join("data")).unwrap())
    }

    /// `relay refund …` with a cleared environment: (exit code, stdout, stderr).
    fn refund(&self, args: &[&str]) -> (i32, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_relay"))
            .env_clear()
            .current_dir(&self.0)
            .arg("refund")
            .arg("--config")
            .arg(self.0.join("relay.toml"))
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn relay_refund_queues_for_the_next_pass_and_refuses_with_the_reason() {
    let sb = sandbox(2).await;
    let dir = Workspace::new("cli", "[orders]\nrefund_location_id = 2\n");
    let ctx = common::context_with_store(&sb, config(), dir.store());
    let order_no = imported(&ctx).await.remove(0);
    let sale = sales_order(&ctx, &order_no).await;
    let sku = sale
        .rows
        .unwrap_or_default()
        .iter()
        .find_map(|r| r.sku.clone())
        .unwrap();

    for (args, expected) in [
        (vec!["NC-NOPE"], "NC-NOPE is unknown to relay"),
        (
            vec![order_no.as_str(), "--row", "NOPE=1"],
            "`NOPE` is not on order",
        ),
        (
            vec![order_no.as_str(), "--row", &format!("{sku}=50")],
            "50 asked, but only",
        ),
    ] {
        let (code, _, stderr) = dir.refund(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("relay refund: ") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
    }
    let (code, _, stderr) = dir.refund(&[&order_no, "--row", "no-quantity"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not SKU=QTY"), "{stderr}");
    assert!(ctx.store.list(Some(REFUND_FLOW), None).unwrap().is_empty());

    let (code, stdout, stderr) = dir.refund(&[
        &order_no,
        "--row",
        &format!("{sku}=1"),
        "--reason",
        "damaged",
        "--restock",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let key = format!("{order_no}-R1");
    assert!(
        stdout.contains(&format!("refund {key} queued")) && stdout.contains("relay run"),
        "{stdout}"
    );
    // Queued, not credited: the pass does that.
    assert_eq!(
        ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap().status,
        Status::Pending
    );
    assert!(credits_with(&ctx, &key).await.is_empty());
    orders::run(&ctx).await.unwrap();
    let refund = ctx.store.get(REFUND_FLOW, &key).unwrap().unwrap();
    assert_eq!(
        (refund.status, refund.step.as_deref()),
        (Status::Done, Some("restocked"))
    );
    assert_eq!(credits_with(&ctx, &key).await.len(), 1);
}

/// A signed-in browser against `relay serve`'s console (in-process) over the sandbox.
struct Console {
    handle: serve::ServerHandle,
    base: String,
    http: reqwest::Client,
}

const TOKEN: &str = "console-token-for-refund-tests-0123";

impl Console {
    async fn start(sb: &Sandbox, store: Arc<dyn Store>, dir: &std::path::Path) -> Self {
        let mut config = config();
        config.serve.listen = "127.0.0.1:0".parse().unwrap();
        config.serve.inbox_sweep_secs = 0;
        config.serve.register_brightpearl_webhooks = false;
        config.state.dir = dir.to_path_buf();
        let ctx = common::context_with_store(sb, config.clone(), store);
        let secrets = ServeSecrets {
            console_token: Some(SecretString::from(TOKEN)),
            ..ServeSecrets::default()
        };
        let listener = serve::bind(&config.serve).await.unwrap();
        let flows = registry()
            .into_iter()
            .filter(|f| f.name() == orders::FLOW)
            .collect();
        let handle = serve::start_with_flows(ctx, secrets, listener, flows)
            .await
            .unwrap();
        let base = handle.base_url();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { handle, base, http }
    }

    async fn sign_in(&self, name: &str) -> String {
        let response = self
            .http
            .post(format!("{}/console/login", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={TOKEN}&name={name}&next=%2Fconsole"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }

    async fn get(&self, path: &str, cookie: &str) -> String {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.text().await.unwrap()
    }

    async fn post(
        &self,
        path: &str,
        cookie: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Option<String>, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(COOKIE, cookie)
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location, response.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_refund_button_needs_the_csrf_token_and_queues_what_relay_refund_does() {
    let sb = sandbox(2).await;
    let dir = Workspace::new("console", "");
    let store = dir.store();
    let ctx = common::context_with_store(&sb, config(), store.clone());
    let order_no = imported(&ctx).await.remove(0);
    let sale = sales_order(&ctx, &order_no).await;
    let sku = sale
        .rows
        .unwrap_or_default()
        .iter()
        .find_map(|r| r.sku.clone())
        .unwrap();
    let console = Console::start(&sb, store.clone(), &dir.0).await;
    let cookie = console.sign_in("Ann").await;
    let page_path = format!("/console/entities/orders/{order_no}");
    let page = console.get(&page_path, &cookie).await;
    assert!(
        page.contains("id=\"refund-form\"") && page.contains("id=\"refund\""),
        "{page}"
    );
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let csrf = page[at..at + 64].to_owned();

    let action = format!("{page_path}/refund");
    let row = format!("{sku}=1");
    let (status, _, _) = console
        .post(&action, &cookie, &[("rows", &row), ("reason", "broken")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    let (status, _, _) = console
        .post(&action, &cookie, &[("csrf", "00"), ("rows", &row)])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a wrong CSRF token");
    assert!(
        store.list(Some(REFUND_FLOW), None).unwrap().is_empty(),
        "refused: nothing queued"
    );
    let (status, _, body) = console
        .post(&action, &cookie, &[("csrf", &csrf), ("rows", "NOPE=1")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("is not on order"), "{body}");

    let (status, location, _) = console
        .post(
            &action,
            &cookie,
            &[
                ("csrf", &csrf),
                ("rows", &row),
                ("reason", "broken"),
                ("restock", "1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, Some(format!("{page_path}?flash=refund_queued")));
    let key = format!("{order_no}-R1");
    let created = store
        .events(REFUND_FLOW, &key, 10)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == EventKind::Created)
        .unwrap();
    assert!(created.actor.unwrap().starts_with("console:Ann/"));
    assert!(created.detail.unwrap().contains("reason: broken"));
    // The button started the orders pass: the credit is made without another run.
    let mut runs = console.handle.runs();
    for _ in 0..5 {
        if store.get(REFUND_FLOW, &key).unwrap().unwrap().status == Status::Done {
            break;
        }
        let seen = *runs.borrow_and_update();
        tokio::time::timeout(Duration::from_secs(10), runs.wait_for(|n| *n > seen))
            .await
            .expect("a pass within 10 s")
            .unwrap();
    }
    assert_eq!(
        store.get(REFUND_FLOW, &key).unwrap().unwrap().status,
        Status::Done,
        "the refund credited by the started pass"
    );
    assert_eq!(credits_with(&ctx, &key).await.len(), 1);
    let page = console.get(&page_path, &cookie).await;
    assert!(
        page.contains(&format!("/console/entities/refund/{key}")),
        "the refund is listed on the order"
    );
    let page = console
        .get(&format!("/console/entities/refund/{key}"), &cookie)
        .await;
    assert!(
        page.contains("Brightpearl sales credit") && page.contains("restocked"),
        "{page}"
    );
    let page = console.get("/console/entities?flow=refund", &cookie).await;
    assert!(page.contains(&key), "refunds in the entity list");
    console.handle.shutdown().await;
}
