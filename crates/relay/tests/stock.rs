//! Brightpearl → Norce stock and prices against the in-process sandbox.
//!
//! Import jobs finish on the sandbox's virtual clock: while a pass runs, a pump jumps the clock
//! past the job delay after every import the sandbox received, so nothing waits for wall time
//! (the flow polls `Job/Get` every few milliseconds, configured in `[stock.job_wait]`).

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use brightpearl_client::{ProductRow, SearchQuery, SearchResource, SortDirection};
use relay::config::RelayConfig;
use relay::flows::FlowContext;
use relay::flows::stock::{self, JobWaitConfig, PassKind, StockRunReport};
use relay::state::{InboxPut, SqliteStore, Status, Store};
use sandbox::{AppState, DatasetConfig, FaultRule, SandboxConfig, SharedState};
use serde_json::{Value, json};

const IMPORTS: &str = "/commerce/connect/4.0/Product/Import";
const ONHANDS: &str = "/commerce/connect/4.0/Product/ImportOnhands";
const PRICES: &str = "/commerce/connect/4.0/Product/ImportSkuPriceLists";

/// Relay configuration for tests: jobs polled every few milliseconds.
fn config() -> RelayConfig {
    let mut config = RelayConfig::default();
    config.stock.job_wait = JobWaitConfig {
        timeout_secs: 60,
        initial_interval_ms: 1,
        max_interval_ms: 10,
    };
    config
}

fn sandbox_config(skus: usize) -> SandboxConfig {
    SandboxConfig {
        dataset: DatasetConfig {
            skus,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    }
}

/// Runs `pass` while jumping the sandbox clock 10 s (the job delay is 5 s) after each new
/// import. `before_jobs` runs first (with the number of imports so far): the pass cannot see
/// that job finish before it is done.
async fn with_jobs_done<T, H, F>(
    state: &SharedState,
    pass: impl Future<Output = T>,
    mut before_jobs: H,
) -> T
where
    H: FnMut(usize) -> F,
    F: Future<Output = ()>,
{
    let mut seen = state.faults.count("POST", IMPORTS);
    let pump = async {
        loop {
            let now = state.faults.count("POST", IMPORTS);
            if now > seen {
                seen = now;
                before_jobs(now).await;
                state.clock.advance(Duration::from_secs(10));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::pin!(pass);
    tokio::select! {
        result = &mut pass => result,
        () = pump => unreachable!("the pump never ends"),
    }
}

async fn run(ctx: &FlowContext, state: &SharedState) -> StockRunReport {
    with_jobs_done(state, stock::run_detailed(ctx), |_| async {})
        .await
        .expect("stock pass")
}

/// A call to the sandbox's admin routes: status and JSON body.
async fn http(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let answer = common::http(method, url, body).await;
    (answer.status, answer.json())
}

async fn onhands(state: &SharedState) -> Vec<Value> {
    let (status, body) = http(
        "GET",
        &format!("{}/_sandbox/norce/onhands", state.base_url),
        None,
    )
    .await;
    assert_eq!(status, 200);
    body["onhands"].as_array().cloned().unwrap_or_default()
}

fn onhand_of(rows: &[Value], sku: &str, warehouse: &str) -> String {
    rows.iter()
        .find(|r| r["partNo"] == sku && r["warehouseCode"] == warehouse)
        .and_then(|r| r["onhandValue"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no on-hand for {sku} in {warehouse}"))
}

async fn set_stock(state: &SharedState, product: i64, warehouse: i64, on_hand: i64) {
    let url = format!(
        "{}/_sandbox/brightpearl/products/{product}/stock",
        state.base_url
    );
    let (status, body) = http(
        "POST",
        &url,
        Some(json!({ "warehouseId": warehouse, "onHand": on_hand })),
    )
    .await;
    assert!(status < 300, "{status} {body}");
}

/// Brightpearl requests of the run, by path prefix below the account.
fn bp_count(state: &SharedState, path: &str) -> usize {
    let account = &state.config.brightpearl.account;
    state
        .faults
        .count("GET", &format!("/public-api/{account}{path}"))
}

fn bp_requests(state: &SharedState) -> Vec<sandbox::LoggedRequest> {
    state
        .faults
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/public-api/"))
        .collect()
}

/// A Brightpearl on-hand webhook for `ids`, put into the inbox and ingested.
async fn webhook(ctx: &FlowContext, ids: &str, event: &str) {
    let body = json!({
        "accountCode": "sandbox", "resourceType": "product", "id": ids,
        "lifecycleEvent": "modified", "fullEvent": event, "raisedOn": "2026-03-02T08:05:00Z",
    })
    .to_string();
    let InboxPut::Inserted(id) = ctx
        .store
        .inbox_put(stock::SOURCE, &format!("{event}:{ids}"), &body)
        .unwrap()
    else {
        panic!("duplicate")
    };
    let item = ctx
        .store
        .inbox_pending(100)
        .unwrap()
        .into_iter()
        .find(|i| i.id == id)
        .unwrap();
    assert!(stock::accepts(&item.source));
    let _ = stock::ingest(ctx, &item).await.unwrap();
    ctx.store.inbox_done(id).unwrap();
}

fn ceil(n: usize, d: usize) -> usize {
    n.div_ceil(d)
}

/// The sandbox's bundles (products Brightpearl does not track stock of), highest id first, with
/// their SKUs: bundle `k` is made of the dataset products at index `2k` (one each) and `2k + 1`
/// (two each).
async fn bundles(ctx: &FlowContext) -> Vec<(u64, String)> {
    let query = SearchQuery::new()
        .filter("stockTracked", "false")
        .columns(["productId", "SKU", "stockTracked"])
        .sort("productId", SortDirection::Desc);
    let rows: Vec<ProductRow> = ctx
        .brightpearl()
        .unwrap()
        .search_all(SearchResource::Products, query)
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| (r.product_id, r.sku.unwrap()))
        .collect()
}

/// What bundle `k` makes per warehouse (in dataset order) from its components' on-hand:
/// min(first / 1, second / 2) where both are in stock, else nothing (sent as 0).
fn bundle_on_hand(first: &[i64], second: &[i64]) -> Vec<i64> {
    first
        .iter()
        .zip(second)
        .map(|(a, b)| {
            if *a > 0 && *b > 0 {
                (*a).min(*b / 2)
            } else {
                0
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_reconciliation_imports_every_sku_with_the_fewest_brightpearl_requests() {
    let n = 1000;
    let sandbox = common::sandbox_with(sandbox_config(n)).await;
    let state = sandbox.state().clone();
    let ctx = common::context(&sandbox, config());
    // Brightpearl differs from Norce's seed for two products.
    set_stock(&state, 1001, 2, 7).await;
    set_stock(&state, 1500, 3, 0).await;
    state.faults.clear_requests();

    let bundles = bundles(&ctx).await;
    assert_eq!(
        bundles.len(),
        5,
        "the sandbox makes a handful of products bundles"
    );
    state.faults.clear_requests();

    let report = run(&ctx, &state).await;

    assert_eq!(
        (report.stock.kind, report.prices.kind),
        (PassKind::Full, PassKind::Full)
    );
    // Bundles included: every SKU is booked.
    assert_eq!(
        (
            report.stock.report.seen,
            report.stock.report.booked,
            report.stock.report.failed,
            report.stock.report.skipped
        ),
        (n as u64, n as u64, 0, 0)
    );
    assert_eq!(
        (report.prices.report.booked, report.prices.report.failed),
        (n as u64, 0)
    );
    assert!(report.stock.unmatched.is_empty() && report.prices.unmatched.is_empty());
    // One job per 2000 rows (two warehouses → 1000 products per on-hand job), all succeeded.
    assert_eq!(report.stock.jobs.len(), 1);
    assert_eq!(report.prices.jobs.len(), 1);
    for job in report.stock.jobs.iter().chain(&report.prices.jobs) {
        assert_eq!(
            (job.status_id, job.error.as_deref(), job.failed_rows),
            (Some(2), None, Some(0)),
            "{job:?}"
        );
        assert_eq!(
            job.validation_summary
                .as_ref()
                .and_then(|v| v.nr_of_validation_failures),
            Some(0)
        );
    }

    // Norce: every SKU × warehouse, with Brightpearl's figures, written by the jobs just run.
    let rows = onhands(&state).await;
    assert_eq!(rows.len(), 2 * n);
    assert_eq!(onhand_of(&rows, "SKU-00001", "WH1"), "7");
    assert_eq!(onhand_of(&rows, "SKU-00500", "WH2"), "0");
    let is_bundle = |sku: &str| bundles.iter().any(|(_, b)| b == sku);
    for (i, product) in state
        .dataset
        .products
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, p)| *i != 499 && !is_bundle(&p.sku))
    {
        assert_eq!(
            onhand_of(&rows, &product.sku, "WH1"),
            product.on_hand[0].to_string(),
            "product {i}"
        );
        assert_eq!(
            onhand_of(&rows, &product.sku, "WH2"),
            product.on_hand[1].to_string(),
            "product {i}"
        );
    }
    // Bundles: what their components make (1001's WH1 figure is the 7 set above).
    let products = &state.dataset.products;
    for (k, (_, sku)) in bundles.iter().enumerate() {
        let mut first = products[2 * k].on_hand.clone();
        if k == 0 {
            first[0] = 7;
        }
        let want = bundle_on_hand(&first, &products[2 * k + 1].on_hand);
        assert_eq!(
            [onhand_of(&rows, sku, "WH1"), onhand_of(&rows, sku, "WH2")],
            [want[0].to_string(), want[1].to_string()],
            "bundle {sku}"
        );
    }
    let start = "2026-03-02T08:00:00+00:00";
    assert!(
        rows.iter().all(|r| r["updated"].as_str().unwrap() > start),
        "every row was rewritten"
    );
    let (_, prices) = http(
        "GET",
        &format!("{}/_sandbox/norce/prices", state.base_url),
        None,
    )
    .await;
    let prices = prices["prices"].as_array().unwrap().clone();
    assert_eq!(prices.len(), n);
    for product in &state.dataset.products {
        let row = prices
            .iter()
            .find(|p| p["partNo"] == product.sku.as_str())
            .unwrap();
        let gross: f64 = product.price.to_string().parse().unwrap();
        let sale: f64 = row["priceSale"].as_str().unwrap().parse().unwrap();
        assert!(
            (sale - gross / 1.25).abs() < 0.000_05,
            "{} {sale} vs {gross}",
            product.sku
        );
        assert_eq!(
            row["costPurchase"].as_str().unwrap(),
            product.cost.normalize().to_string()
        );
        assert!(row["updated"].as_str().unwrap() > start);
    }
    let (_, jobs) = http(
        "GET",
        &format!("{}/_sandbox/norce/jobs", state.base_url),
        None,
    )
    .await;
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["job"]["StatusId"] == 2),
        "{jobs}"
    );

    // Brightpearl: the minimum for 1000 consecutive ids, and never a 503. The bundles (the
    // search's not-stock-tracked products) cost one product GET and one request each.
    let b = bundles.len();
    assert_eq!(
        bp_count(&state, "/product-service/product-search"),
        ceil(n, 500)
    );
    assert_eq!(
        bp_count(&state, "/warehouse-service/product-availability/"),
        ceil(n - b, 100)
    );
    assert_eq!(
        bp_count(&state, "/product-service/product-price/"),
        ceil(n, 100)
    );
    assert_eq!(bp_count(&state, "/product-service/price-list"), 1);
    assert_eq!(
        bp_count(&state, "/product-service/product/"),
        1,
        "only the not-stock-tracked products are read"
    );
    assert_eq!(
        bp_count(&state, "/warehouse-service/bundle-availability/"),
        b
    );
    let requests = bp_requests(&state);
    assert_eq!(
        requests.len(),
        ceil(n, 500) + ceil(n - b, 100) + 1 + b + ceil(n, 100) + 1
    );
    assert!(
        requests.iter().all(|r| r.status == 200),
        "{:?}",
        requests
            .iter()
            .filter(|r| r.status != 200)
            .collect::<Vec<_>>()
    );

    // Entities: one per product and flow, done, with the job and the values sent.
    let record = ctx.store.get("stock", "1001").unwrap().unwrap();
    assert_eq!(
        (record.status, record.step.as_deref()),
        (Status::Done, Some("imported"))
    );
    assert_eq!(
        record.target_id,
        report.stock.jobs[0].job_id.map(|j| j.to_string())
    );
    let payload: Value = serde_json::from_str(record.payload.as_deref().unwrap()).unwrap();
    assert_eq!(payload["onhand"]["WH1/WH1"], 7);
    assert_eq!(payload["sku"], "SKU-00001");
    let record = ctx.store.get("prices", "1001").unwrap().unwrap();
    assert_eq!(record.status, Status::Done);
    assert_eq!(
        ctx.store
            .list(Some("stock"), Some(Status::Done))
            .unwrap()
            .len(),
        n
    );

    // The cursor is fresh: the next run has nothing to do and asks Brightpearl nothing.
    state.faults.clear_requests();
    let again = run(&ctx, &state).await;
    assert_eq!(
        (again.stock.kind, again.prices.kind),
        (PassKind::Idle, PassKind::Idle)
    );
    assert!(bp_requests(&state).is_empty());
    assert_eq!(state.faults.count("POST", IMPORTS), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_skus_stay_at_the_request_minimum_without_a_503() {
    let n = 5000;
    let sandbox = common::sandbox_with(sandbox_config(n)).await;
    let state = sandbox.state().clone();
    let ctx = common::context(&sandbox, config());
    let b = bundles(&ctx).await.len();
    assert_eq!(b, 5);
    state.faults.clear_requests();
    let report = run(&ctx, &state).await;
    assert_eq!(
        (report.stock.report.booked, report.prices.report.booked),
        (n as u64, n as u64)
    );
    let requests = bp_requests(&state);
    // Searches, availability of the stock-tracked ids, one product GET for the 5 products that
    // are not stock-tracked, one bundle-availability per bundle, prices, the price lists: 117.
    let minimum = ceil(n, 500) + ceil(n - b, 100) + 1 + b + ceil(n, 100) + 1;
    assert_eq!(minimum, 117);
    assert_eq!(requests.len(), minimum, "within 0 % of the minimum");
    assert!(requests.iter().all(|r| r.status != 503));
    // 10,000 on-hand rows in jobs of at most 2000 rows.
    assert_eq!(report.stock.jobs.len(), 5);
    assert_eq!(onhands(&state).await.len(), 2 * n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundles_stock_reaches_norce_on_hand() {
    let sandbox = common::sandbox_with(sandbox_config(50)).await;
    let state = sandbox.state().clone();
    let ctx = common::context(&sandbox, config());
    let bundles = bundles(&ctx).await;
    assert_eq!(bundles.len(), 5);
    let (bundle, sku) = bundles[0].clone();
    // Bundle 0 = 1 × 1001 + 2 × 1002. Warehouse 2 makes min(7, 9 / 2) = 4; warehouse 3 holds
    // no 1001, so Brightpearl lists it not at all and Norce gets 0.
    set_stock(&state, 1001, 2, 7).await;
    set_stock(&state, 1002, 2, 9).await;
    set_stock(&state, 1001, 3, 0).await;
    set_stock(&state, 1002, 3, 40).await;
    let before = onhands(&state).await;
    assert_ne!(
        [
            onhand_of(&before, &sku, "WH1"),
            onhand_of(&before, &sku, "WH2")
        ],
        ["4", "0"],
        "Norce starts with other figures"
    );
    state.faults.clear_requests();

    let report = run(&ctx, &state).await;
    assert_eq!(
        (
            report.stock.report.booked,
            report.stock.report.skipped,
            report.stock.report.failed
        ),
        (50, 0, 0),
        "{:?}",
        report.stock.report
    );
    let rows = onhands(&state).await;
    assert_eq!(
        [onhand_of(&rows, &sku, "WH1"), onhand_of(&rows, &sku, "WH2")],
        ["4", "0"]
    );
    let record = ctx
        .store
        .get("stock", &bundle.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.status, record.step.as_deref()),
        (Status::Done, Some("imported"))
    );
    let payload: Value = serde_json::from_str(record.payload.as_deref().unwrap()).unwrap();
    assert_eq!(
        (
            payload["bundle"].clone(),
            payload["onhand"]["WH1/WH1"].clone()
        ),
        (json!(true), json!(4))
    );
    // One search, availability of the 45 stock-tracked products, one product GET for the 5
    // that are not, one bundle availability per bundle; prices as before.
    assert_eq!(
        bp_count(&state, "/warehouse-service/product-availability/"),
        1
    );
    assert_eq!(bp_count(&state, "/product-service/product/"), 1);
    assert_eq!(
        bp_count(&state, "/warehouse-service/bundle-availability/"),
        5
    );
    assert_eq!(bp_requests(&state).len(), 1 + 1 + 1 + 5 + 1 + 1);

    // A webhook naming the bundle: a pending pass reads only it (search, product GET, bundle
    // availability; no product availability).
    set_stock(&state, 1002, 2, 4).await;
    webhook(
        &ctx,
        &bundle.to_string(),
        "product.modified.on-hand-modified",
    )
    .await;
    state.faults.clear_requests();
    let report = run(&ctx, &state).await;
    assert_eq!(
        (report.stock.kind, report.stock.report.booked),
        (PassKind::Pending, 1)
    );
    assert_eq!(onhand_of(&onhands(&state).await, &sku, "WH1"), "2");
    assert_eq!(bp_count(&state, "/product-service/product-search"), 1);
    assert_eq!(
        bp_count(&state, "/warehouse-service/product-availability/"),
        0
    );
    assert_eq!(bp_count(&state, "/product-service/product/"), 1);
    assert_eq!(
        bp_count(&state, "/warehouse-service/bundle-availability/"),
        1
    );
    assert_eq!(bp_requests(&state).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_can_be_asked_by_id_set_or_left_out() {
    let sandbox = common::sandbox_with(sandbox_config(50)).await;
    let state = sandbox.state().clone();
    // ID sets (unconfirmed in Brightpearl, accepted by the sandbox): one request for the five.
    let mut sets = config();
    sets.stock.bundle_id_sets = true;
    let ctx = common::context(&sandbox, sets);
    let bundles = bundles(&ctx).await;
    state.faults.clear_requests();
    let report = run(&ctx, &state).await;
    assert_eq!(report.stock.report.booked, 50);
    assert_eq!(
        bp_count(&state, "/warehouse-service/bundle-availability/"),
        1
    );

    // `stock.bundles = false`: bundles are skipped as not stock-tracked, with no product GET
    // and no bundle availability.
    let mut off = config();
    off.stock.bundles = false;
    let ctx = common::context(&sandbox, off);
    state.faults.clear_requests();
    let report = run(&ctx, &state).await;
    assert_eq!(
        (report.stock.report.booked, report.stock.report.skipped),
        (45, 5)
    );
    assert_eq!(bp_count(&state, "/product-service/product/"), 0);
    assert_eq!(
        bp_count(&state, "/warehouse-service/bundle-availability/"),
        0
    );
    let record = ctx
        .store
        .get("stock", &bundles[0].0.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.status, record.step.as_deref()),
        (Status::Skipped, Some("not_stock_tracked"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_makes_the_next_run_import_only_that_product() {
    let sandbox = common::sandbox_with(sandbox_config(50)).await;
    let state = sandbox.state().clone();
    let ctx = common::context(&sandbox, config());
    run(&ctx, &state).await;

    set_stock(&state, 1007, 3, 99).await;
    webhook(&ctx, "1007", "product.modified.on-hand-modified").await;
    let record = ctx.store.get("stock", "1007").unwrap().unwrap();
    assert_eq!(record.status, Status::Pending);
    assert!(
        ctx.store.get("prices", "1007").unwrap().unwrap().status == Status::Done,
        "on-hand events leave prices alone"
    );
    state.faults.clear_requests();

    let report = run(&ctx, &state).await;
    assert_eq!(
        (report.stock.kind, report.prices.kind),
        (PassKind::Pending, PassKind::Idle)
    );
    assert_eq!(
        (report.stock.report.seen, report.stock.report.booked),
        (1, 1)
    );
    assert_eq!(report.stock.jobs[0].rows, 2, "one product, two warehouses");
    // Brightpearl: the product's SKU (a search on its id) and its availability; nothing else.
    assert_eq!(bp_count(&state, "/product-service/product-search"), 1);
    assert_eq!(
        bp_count(&state, "/warehouse-service/product-availability/"),
        1
    );
    assert_eq!(bp_requests(&state).len(), 2);
    assert_eq!(state.faults.count("POST", ONHANDS), 1);
    assert_eq!(state.faults.count("POST", PRICES), 0);
    assert_eq!(onhand_of(&onhands(&state).await, "SKU-00007", "WH2"), "99");
    assert_eq!(
        ctx.store.get("stock", "1007").unwrap().unwrap().status,
        Status::Done
    );

    // A product event other than on-hand concerns prices too; an ID set names several.
    webhook(&ctx, "1001-1003", "product.modified").await;
    let report = run(&ctx, &state).await;
    assert_eq!(
        (report.stock.report.booked, report.prices.report.booked),
        (3, 3)
    );
    assert_eq!(
        (report.stock.kind, report.prices.kind),
        (PassKind::Pending, PassKind::Pending)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_during_a_pass_is_not_lost() {
    let sandbox = common::sandbox_with(sandbox_config(20)).await;
    let state = sandbox.state().clone();
    let ctx = common::context(&sandbox, config());
    // The webhook arrives after the pass read Brightpearl: at its first import, before the
    // job can finish.
    let report = with_jobs_done(&state, stock::run_detailed(&ctx), |imports| {
        let (ctx, state) = (ctx.clone(), state.clone());
        async move {
            if imports == 1 {
                set_stock(&state, 1005, 2, 42).await;
                webhook(&ctx, "1005", "product.modified.on-hand-modified").await;
            }
        }
    })
    .await
    .unwrap();
    // The pass may have read 1005 before the change: it leaves it pending, not done.
    assert_eq!(
        report.stock.report.booked + 1,
        20,
        "{:?}",
        report.stock.report
    );
    let record = ctx.store.get("stock", "1005").unwrap().unwrap();
    assert_eq!(record.status, Status::Pending);
    assert!(record.step.as_deref().unwrap().starts_with("webhook:"));
    let report = run(&ctx, &state).await;
    assert_eq!(report.stock.report.booked, 1);
    assert_eq!(onhand_of(&onhands(&state).await, "SKU-00005", "WH1"), "42");
}

/// A sandbox whose Norce does not know the last product's SKU (Brightpearl does).
async fn sandbox_with_unknown_sku(skus: usize) -> SharedState {
    let mut config = sandbox_config(skus);
    config.start_time = Some("2026-03-02T08:00:00Z".parse().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut state = AppState::new(config.clone(), base);
    let mut known = state.dataset.clone();
    known.products.pop();
    state.norce =
        sandbox::norce::NorceState::new(&config.norce, &known, config.start_time.unwrap());
    let state = Arc::new(state);
    let app = sandbox::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    state
}

fn context_for(state: &SharedState, store: Arc<dyn Store>) -> FlowContext {
    let settings = relay::embedded::settings_for(&state.credentials());
    FlowContext::from_settings(&settings, store, Arc::new(config())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmatched_sku_is_reported_not_fatal() {
    let state = sandbox_with_unknown_sku(10).await;
    let ctx = context_for(&state, Arc::new(SqliteStore::in_memory().unwrap()));
    let report = run(&ctx, &state).await;

    for pass in [&report.stock, &report.prices] {
        assert_eq!(
            (pass.report.booked, pass.report.skipped, pass.report.failed),
            (9, 1, 0),
            "{:?}",
            pass.report
        );
        assert_eq!(pass.unmatched.len(), 1);
        assert_eq!(
            (pass.unmatched[0].product_id, pass.unmatched[0].sku.as_str()),
            (1010, "SKU-00010")
        );
        assert!(
            pass.unmatched[0]
                .messages
                .iter()
                .any(|m| m.contains("SKU-00010") && m.contains("does not exist")),
            "{:?}",
            pass.unmatched
        );
        // The job succeeded for the others; its validation summary names the refused SKU.
        let summary = pass.jobs[0].validation_summary.as_ref().unwrap();
        assert!(summary.nr_of_validation_failures.unwrap() >= 1);
        assert_eq!(pass.jobs[0].status_id, Some(2));
    }
    let record = ctx.store.get("stock", "1010").unwrap().unwrap();
    assert_eq!(
        (record.status, record.step.as_deref()),
        (Status::Skipped, Some("rejected"))
    );
    let payload: Value = serde_json::from_str(record.payload.as_deref().unwrap()).unwrap();
    assert!(
        payload["problems"][0]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{payload}"
    );
    assert!(ctx.store.dead_letters().unwrap().is_empty());

    // Alone in a job every row fails (job status 4): still reported, not failed.
    webhook(&ctx, "1010", "product.modified").await;
    let report = run(&ctx, &state).await;
    assert_eq!(report.stock.jobs[0].status_id, Some(4));
    assert_eq!(
        (report.stock.report.skipped, report.stock.report.failed),
        (1, 0)
    );
    assert_eq!(
        (report.prices.report.skipped, report.prices.report.failed),
        (1, 0)
    );
    assert_eq!(
        ctx.store.get("stock", "1010").unwrap().unwrap().status,
        Status::Skipped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_fail_on_import_then_a_restarted_pass_leaves_norce_correct() {
    let sandbox = common::sandbox_with(sandbox_config(30)).await;
    let state = sandbox.state().clone();
    let dir = std::env::temp_dir().join(format!("relay-stock-ctf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(&dir).unwrap());
    let ctx = common::context_with_store(&sandbox, config(), store);
    set_stock(&state, 1003, 2, 61).await;
    // Norce takes the ImportOnhands (its job runs and applies) but the answer is lost, and so
    // for up to two retries: the pass ends without a job it knows of.
    state
        .faults
        .add(FaultRule {
            path_prefix: ONHANDS.into(),
            method: Some("POST".into()),
            commit_then_fail_rate: 1.0,
            remaining: Some(3),
            ..FaultRule::default()
        })
        .unwrap();

    let first = run(&ctx, &state).await;
    let lost = state.faults.count("POST", ONHANDS);
    assert!(lost >= 1);
    assert_eq!(first.stock.report.failed, 30, "{:?}", first.stock);
    assert!(
        first.stock.jobs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("Norce import not accepted")
    );
    assert_eq!(first.prices.report.booked, 30, "prices are not affected");
    let record = ctx.store.get("stock", "1003").unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (Status::Pending, 1));
    assert!(record.last_error.is_some());
    drop(ctx);

    // Restart: a new context over the same state file; the pending products go again.
    state.faults.clear();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(&dir).unwrap());
    let ctx = common::context_with_store(&sandbox, config(), store);
    let second = run(&ctx, &state).await;
    assert_eq!(second.stock.kind, PassKind::Pending);
    assert_eq!(
        (second.stock.report.booked, second.stock.report.failed),
        (30, 0)
    );
    assert_eq!(state.faults.count("POST", ONHANDS), lost + 1);
    // Sending the same absolute values again changed nothing but the figures that were due.
    let rows = onhands(&state).await;
    assert_eq!(rows.len(), 60, "no duplicate rows");
    assert_eq!(onhand_of(&rows, "SKU-00003", "WH1"), "61");
    let record = ctx.store.get("stock", "1003").unwrap().unwrap();
    assert_eq!((record.status, record.last_error), (Status::Done, None));
    assert!(ctx.store.dead_letters().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cursor_forces_a_full_pass_and_bad_config_is_named() {
    let sandbox = common::sandbox_with(sandbox_config(10)).await;
    let state = sandbox.state().clone();
    let ctx = common::context(&sandbox, config());
    run(&ctx, &state).await;
    ctx.store
        .set_cursor("stock", "2000-01-01T00:00:00Z")
        .unwrap();
    let report = run(&ctx, &state).await;
    assert_eq!(
        (report.stock.kind, report.prices.kind),
        (PassKind::Full, PassKind::Idle)
    );
    assert_eq!(report.stock.report.booked, 10);

    ctx.store.set_cursor("stock", "yesterday").unwrap();
    let err = with_jobs_done(&state, stock::run(&ctx), |_| async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("relay cursor set stock"), "{err}");

    let mut bad = config();
    bad.stock.price_lists[0].brightpearl_price_list = 77;
    let ctx = common::context(&sandbox, bad);
    let err = with_jobs_done(&state, stock::run(&ctx), |_| async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stock.price_lists[0].brightpearl_price_list") && err.contains("77"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhook_bodies_are_dropped_and_other_events_ignored() {
    let sandbox = common::sandbox_with(sandbox_config(5)).await;
    let ctx = common::context(&sandbox, config());
    for (key, body) in [
        ("a", "not json"),
        ("b", r#"{"id":"9-1","fullEvent":"product.modified"}"#),
        (
            "c",
            r#"{"id":"5","fullEvent":"goods-out-note.created","resourceType":"goods-out-note"}"#,
        ),
    ] {
        ctx.store.inbox_put(stock::SOURCE, key, body).unwrap();
    }
    for item in ctx.store.inbox_pending(10).unwrap() {
        assert_eq!(
            stock::ingest(&ctx, &item).await.unwrap(),
            relay::flows::Ingested::Nothing,
            "{}",
            item.key
        );
    }
    assert!(ctx.store.list(None, None).unwrap().is_empty());
    assert!(!stock::accepts("norce-order"));
}

/// `relay run` and `relay serve` drive the pass and the ingest on a multi-threaded runtime.
#[allow(dead_code)]
fn the_futures_are_send(ctx: &FlowContext, item: &relay::state::InboxItem) {
    fn send<T: Send>(_: T) {}
    send(stock::run(ctx));
    send(stock::run_detailed(ctx));
    send(stock::ingest(ctx, item));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_naming_too_many_products_marks_the_cap_and_requests_a_full_pass() {
    let sandbox = common::sandbox_with(sandbox_config(5)).await;
    let mut config = config();
    config.stock.webhook_max_ids = 50;
    let ctx = common::context(&sandbox, config);
    // A first pass: full (no cursor yet), then the cursors say "recent".
    stock::run(&ctx).await.unwrap();
    let after_first = ctx.store.cursor("stock").unwrap().unwrap();
    assert_ne!(after_first, "1970-01-01T00:00:00Z");

    // 174 bytes naming 100,000 products: 50 rows, not 100,000.
    webhook(&ctx, "1-100000", "product.modified.on-hand-modified").await;
    let pending = ctx
        .store
        .list(Some("stock"), Some(Status::Pending))
        .unwrap();
    assert_eq!(pending.len(), 50);
    assert!(ctx.store.list(Some("prices"), None).unwrap().len() <= 5);
    // ... and the next pass reconciles every product.
    assert_eq!(
        ctx.store.cursor("stock").unwrap().as_deref(),
        Some("1970-01-01T00:00:00Z")
    );
    stock::run(&ctx).await.unwrap();
    assert_ne!(
        ctx.store.cursor("stock").unwrap().as_deref(),
        Some("1970-01-01T00:00:00Z"),
        "only a full pass moves the cursor"
    );
}
