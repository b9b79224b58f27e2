//! The Brightpearl budget scenario (issue 17): Norce orders imported into Brightpearl while a
//! full stock reconciliation runs on the same account, at Brightpearl's real cap (200 requests a
//! rolling minute), with commit-then-fail on a share of the sales-order POSTs.
//!
//! Everything runs in this process, the sandbox included, so the caller decides the clock: the
//! bench (`benches/brightpearl_budget.rs`) and the CI test run it on tokio's paused time, where
//! the sandbox's clock, its throttle window, relay's limiter and Norce's import jobs all follow
//! virtual time, and minutes of Brightpearl budget pass in seconds. Figures per minute are per
//! virtual minute.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sandbox::{DatasetConfig, FaultRule, Sandbox, SandboxConfig};
use serde::Serialize;
use tokio::time::Instant;

use crate::config::RelayConfig;
use crate::flows::{FlowContext, orders, stock};
use crate::state::{SqliteStore, Status, Store};

/// What to run.
#[derive(Debug, Clone)]
pub struct BudgetScenario {
    /// Norce orders to import.
    pub orders: usize,
    /// Products (SKUs) in both platforms; the reconciliation reads all of them.
    pub skus: usize,
    /// Percentage of orders from a customer who ordered before.
    pub repeat_percent: u8,
    /// Best sellers: four order lines in five pick among the first this many SKUs.
    pub hot_skus: usize,
    /// Share of sales-order and multi-message POSTs that Brightpearl carries out but whose
    /// answer is lost.
    pub commit_then_fail: f64,
    /// Dataset and fault seed.
    pub seed: u64,
    /// Orders passes at most (each picks up what is pending).
    pub max_passes: usize,
}

impl Default for BudgetScenario {
    fn default() -> Self {
        Self {
            orders: 1000,
            skus: 5000,
            repeat_percent: 30,
            hot_skus: 500,
            commit_then_fail: 0.05,
            seed: 17,
            max_passes: 50,
        }
    }
}

/// What happened. `brightpearl_requests` counts every request the sandbox's Brightpearl saw;
/// `orders_requests` and `reconciliation_requests` are what each flow drew from relay's limiter.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BudgetReport {
    /// Norce orders in the dataset.
    pub orders: usize,
    /// Orders with exactly one Brightpearl sales order.
    pub exactly_once: usize,
    /// Orders with more than one sales order: `(order number, sales orders)`.
    pub doubled: Vec<(String, usize)>,
    /// Orders with none.
    pub lost: Vec<String>,
    /// Every Brightpearl API request of the run.
    pub brightpearl_requests: usize,
    /// The orders import's share of them.
    pub orders_requests: usize,
    /// The reconciliation's share of them.
    pub reconciliation_requests: usize,
    /// Time the orders import's requests waited for the limiter, summed.
    pub orders_limiter_wait_seconds: f64,
    /// Time the reconciliation's requests waited for the limiter, summed.
    pub reconciliation_limiter_wait_seconds: f64,
    /// `orders_requests / orders`.
    pub requests_per_order: f64,
    /// Orders imported per (virtual) minute, from the start to the last order (at least a
    /// second).
    pub orders_per_minute: f64,
    /// Orders imported while the reconciliation was still running.
    pub orders_during_reconciliation: usize,
    /// Every Brightpearl request of the run by method and resource (ids left out).
    pub requests_by_resource: BTreeMap<String, usize>,
    /// Brightpearl answers 503 (throttled) during the run.
    pub brightpearl_503: usize,
    /// Sales-order and multi-message POSTs whose answer the sandbox dropped after committing.
    pub commit_then_fail_injected: usize,
    /// SKUs the reconciliation brought to Norce (on hand).
    pub skus_reconciled: u64,
    /// Orders passes run.
    pub passes: usize,
    /// Virtual seconds until the last order and the reconciliation were done.
    pub virtual_seconds: f64,
    /// Virtual seconds until the reconciliation was done.
    pub reconciliation_seconds: f64,
}

impl BudgetReport {
    /// Every order exactly once, nothing throttled.
    pub fn passed(&self) -> bool {
        self.doubled.is_empty()
            && self.lost.is_empty()
            && self.exactly_once == self.orders
            && self.brightpearl_503 == 0
    }
}

/// The Brightpearl API paths of the request log, with their statuses.
fn brightpearl_log(sandbox: &Sandbox) -> Vec<(String, String, u16, Option<String>)> {
    sandbox
        .state()
        .faults
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/public-api/"))
        .map(|r| (r.method, r.path, r.status, r.fault))
        .collect()
}

/// Runs the scenario on the current runtime (paused time gives virtual minutes).
pub async fn run(options: &BudgetScenario) -> Result<BudgetReport, String> {
    let mut config = SandboxConfig {
        dataset: DatasetConfig {
            seed: options.seed,
            orders: options.orders,
            skus: options.skus,
            repeat_percent: Some(options.repeat_percent),
            hot_skus: Some(options.hot_skus),
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    };
    config.norce.seed_delivered_every = 0;
    config.brightpearl.account = format!("budget{}", options.seed);
    let sandbox = Sandbox::start(config)
        .await
        .map_err(|e| format!("sandbox: {e}"))?;
    let account = sandbox.credentials().brightpearl.account.clone();
    // The same rate on multi-message POSTs (the orders flow's batched writes): a lost batch
    // answer leaves up to ten orders to the duplicate check.
    for path in ["order-service/sales-order", "multi-message"] {
        sandbox
            .state()
            .faults
            .add(FaultRule {
                path_prefix: format!("/public-api/{account}/{path}"),
                method: Some("POST".into()),
                commit_then_fail_rate: options.commit_then_fail,
                ..FaultRule::default()
            })
            .map_err(|e| format!("fault rule: {e}"))?;
    }
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::in_memory().map_err(|e| format!("state: {e}"))?);
    let mut relay = RelayConfig::default();
    relay.stock.job_wait.initial_interval_ms = 100;
    relay.stock.job_wait.max_interval_ms = 1_000;
    let relay = Arc::new(relay);
    let settings = crate::embedded::settings_for(&sandbox.credentials());
    let context = || {
        FlowContext::from_settings(&settings, store.clone(), relay.clone())
            .map_err(|e| format!("clients: {e}"))
    };
    // Each flow draws from the account's one limiter with its own priority and is counted under
    // its name, as `relay serve` runs them.
    let (orders_ctx, stock_ctx) = (
        context()?.for_flow(orders::FLOW),
        context()?.for_flow(stock::STOCK),
    );
    sandbox.state().faults.clear_requests();

    let start = Instant::now();
    let reconciliation = async {
        let report = stock::run_detailed(&stock_ctx).await;
        // The orders import must not wait for the reconciliation: count what it finished meanwhile.
        (report, start.elapsed(), done(store.as_ref()))
    };
    let import = async {
        let mut passes = 0;
        while passes < options.max_passes {
            passes += 1;
            orders::run(&orders_ctx)
                .await
                .map_err(|e| format!("orders pass {passes}: {e}"))?;
            let pending = store
                .list(Some(orders::FLOW), Some(Status::Pending))
                .map_err(|e| e.to_string())?;
            if pending.is_empty() {
                break;
            }
        }
        Ok::<_, String>((passes, start.elapsed()))
    };
    let ((stock_report, reconciliation_took, during), import) =
        tokio::join!(reconciliation, import);
    let (passes, import_took) = import?;
    let stock_report = stock_report.map_err(|e| format!("reconciliation: {e}"))?;

    let log = brightpearl_log(&sandbox);
    // What each flow drew from the limiter: one permit per request sent, retries included.
    let drawn = |flow: &str| {
        let usage = orders_ctx.brightpearl().map(|c| c.rate_limiter().0.usage());
        usage
            .unwrap_or_default()
            .into_iter()
            .filter(|u| &*u.label == flow)
            .fold((0, Duration::ZERO), |(n, waited), u| {
                (n + u.permits as usize, waited + u.waited)
            })
    };
    let (orders_requests, orders_waited) = drawn(orders::FLOW);
    let (reconciliation_requests, reconciliation_waited) = drawn(stock::STOCK);
    let orders_done = done(store.as_ref());
    let mut report = BudgetReport {
        orders: options.orders,
        brightpearl_requests: log.len(),
        reconciliation_requests,
        orders_requests,
        orders_limiter_wait_seconds: orders_waited.as_secs_f64(),
        reconciliation_limiter_wait_seconds: reconciliation_waited.as_secs_f64(),
        brightpearl_503: log.iter().filter(|(.., status, _)| *status == 503).count(),
        commit_then_fail_injected: log
            .iter()
            .filter(|(.., fault)| fault.as_deref() == Some("commit_then_fail"))
            .count(),
        skus_reconciled: stock_report.stock.report.booked,
        passes,
        orders_during_reconciliation: during,
        virtual_seconds: import_took.max(reconciliation_took).as_secs_f64(),
        reconciliation_seconds: reconciliation_took.as_secs_f64(),
        ..BudgetReport::default()
    };
    for (method, path, ..) in &log {
        *report
            .requests_by_resource
            .entry(resource(method, path))
            .or_default() += 1;
    }
    report.requests_per_order = report.orders_requests as f64 / options.orders.max(1) as f64;
    // At least a second: a small run can finish within the limiter's burst, in no virtual time.
    let minutes = import_took.max(Duration::from_secs(1)).as_secs_f64() / 60.0;
    report.orders_per_minute = orders_done as f64 / minutes;
    check_exactly_once(&sandbox, &mut report).await?;
    Ok(report)
}

/// `GET contact-service/contact-search`: the method and the path after the account, with id
/// segments (digits, ID sets) left out.
fn resource(method: &str, path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .skip(3)
        .filter(|s| !s.is_empty() && !s.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    format!("{method} {}", parts.join("/"))
}

/// Orders the store has as done.
fn done(store: &dyn Store) -> usize {
    store
        .counts()
        .map(|counts| {
            counts
                .iter()
                .filter(|(flow, status, _)| flow == orders::FLOW && *status == Status::Done)
                .map(|(.., n)| *n as usize)
                .sum()
        })
        .unwrap_or(0)
}

/// Every Norce order against the sales orders Brightpearl holds, by `externalRef`.
async fn check_exactly_once(sandbox: &Sandbox, report: &mut BudgetReport) -> Result<(), String> {
    let http = &sandbox.state().http;
    let get = |path: &str| {
        let url = format!("{}{path}", sandbox.base_url());
        async move {
            let response = http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            response
                .json::<serde_json::Value>()
                .await
                .map_err(|e| format!("{url}: {e}"))
        }
    };
    let mut by_ref: BTreeMap<String, usize> = BTreeMap::new();
    let sales_orders = get("/_sandbox/brightpearl/orders").await?;
    for order in sales_orders.as_array().into_iter().flatten() {
        if let Some(reference) = order["externalRef"].as_str() {
            *by_ref.entry(reference.to_owned()).or_default() += 1;
        }
    }
    let norce = get("/_sandbox/norce/orders").await?;
    for order in norce.as_array().into_iter().flatten() {
        let Some(order_no) = order["orderNo"].as_str() else {
            continue;
        };
        match by_ref.get(order_no).copied().unwrap_or(0) {
            0 => report.lost.push(order_no.to_owned()),
            1 => report.exactly_once += 1,
            n => report.doubled.push((order_no.to_owned(), n)),
        }
    }
    Ok(())
}
