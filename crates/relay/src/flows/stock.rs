//! Brightpearl → Norce stock and prices: flows `stock` and `prices`.
//!
//! **What moves.** Every product's availability goes to Norce as on-hand per warehouse
//! (`ImportOnhands`: one row per SKU × mapped warehouse, `[[stock.warehouses]]`), bundles
//! included (`stock.bundles`: a bundle is never stock-tracked, so product availability leaves it
//! out; its on-hand is what Brightpearl's bundle availability says its components make), and the
//! mapped Brightpearl price lists go to Norce price lists (`ImportSkuPriceLists`: one row per
//! SKU × Norce list × quantity break, each mapped list filling one price field,
//! `[[stock.price_lists]]`; gross lists lose `stock.vat_percent` since Norce prices are ex
//! VAT). SKUs are matched by part number (= the Brightpearl SKU). Both imports are Connect
//! jobs: each is awaited (`[stock.job_wait]`) and what Norce said is kept.
//!
//! **Entities.** One per Brightpearl product id and flow (`stock/1001`, `prices/1001`), so the
//! status shows per SKU what reached Norce: `done` (step `imported`, target id = the Norce job,
//! payload = SKU, the values sent, the job), `skipped` (step `rejected`: Norce refused the SKU's
//! rows, usually an unknown part number, with Norce's messages in the payload and the report;
//! `not_in_brightpearl`, `no_sku`, `not_stock_tracked`, `bundle_without_availability`,
//! `no_prices`), `pending` (a webhook named it, or its batch failed and is retried) and
//! `failed` (dead-lettered after `run.max_attempts` failed batches; a later full pass that
//! imports it marks it done again).
//!
//! **Passes.** A run is a *full reconciliation* of a flow when its cursor (the start time of
//! the last full pass, RFC 3339) is absent or older than `stock.full_reconcile_interval_secs`;
//! otherwise it processes only the flow's pending products. Webhooks
//! (`brightpearl-webhook` inbox items, [`ingest`]) mark products pending: stock for every
//! product event, prices too unless the event is only `product.modified.on-hand-modified`.
//! Moving a cursor back (`relay cursor set stock 2000-01-01T00:00:00Z`) forces a full pass.
//!
//! **Brightpearl budget** (200 requests a minute per account). A full pass reads the catalog
//! with one `product-search` (columns `productId,SKU,stockTracked`, 500 rows a page), then
//! availability of the stock-tracked products and product prices in the client's ID sets of
//! 100, and the price lists once: for N products with consecutive ids that is ⌈N/500⌉ +
//! ⌈N/100⌉ (stock) + ⌈N/100⌉ + 1 (prices) requests, the search shared when both flows are
//! full. Products the search marks as not stock-tracked (T of them, B bundles among them) cost
//! ⌈T/200⌉ product GETs (`composition.bundle` tells bundles from services) and B
//! bundle-availability requests (Brightpearl documents one id per request; ⌈B/100⌉ with
//! `stock.bundle_id_sets`); none when there are none. A pending pass finds the pending
//! products' SKUs by a search on their ID set (⌈n/500⌉ requests, fewer than product GETs of
//! 200). The client's shared limiter keeps every call under the throttle, so no 503 is
//! provoked. A bundle's figure follows its components' stock on the next full pass, or sooner
//! when a webhook names the bundle itself (whether Brightpearl names a bundle when a
//! component's on-hand changes is not documented; the sandbox names only the component).
//!
//! **Idempotency.** Imports write absolute values, so sending a batch again leaves Norce as
//! sending it once: a lost answer, a job not seen to finish, or a crash anywhere before the
//! entity is recorded simply means the product is imported again on the next pass (it stays
//! pending, or the cursor was not moved). Nothing is lost: an entity is marked done only after
//! its job finished, and a webhook that arrives while a pass runs sets the entity's step to
//! `webhook:{inbox id}`, which the pass sees and then leaves the entity pending (it may have
//! read Brightpearl before the change). A batch that fails marks its products pending with the
//! error; the cursor still moves, so they are retried by the next (pending) pass.

mod import;
mod names;
mod source;
mod webhook;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use brightpearl_client::NothingFound as _;
use brightpearl_client::models::product::operations::ProductApi as _;
use brightpearl_client::models::product::{ListPriceListsPath, Product, ProductPrice};
use brightpearl_client::models::warehouse::{BundleAvailability, BundleStockLevels, StockLevels};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use norce_client::ImportOptions;
use norce_client::models::connect::{SkuOnhand, SkuPriceList};
use serde::Serialize;
use serde_json::json;
use tracing::Instrument as _;

pub use import::ImportJob;
pub use names::{PRICES, STOCK};
pub use webhook::SOURCE;

pub use crate::config::stock::{
    JobWaitConfig, PriceField, PriceListMapping, StockConfig, StockQuantity, WarehouseMapping,
};

/// The product-search columns the stock and prices flows read (`relay verify --deep` asks for
/// the same).
pub const CATALOG_COLUMNS: [&str; 3] = source::COLUMNS;

use super::action::{self, ItemError};
use super::context::{FlowContext, FlowError, FlowReport, Ingested, cursor_time, elapsed_ms};
use super::contract::{Flow, FlowFuture, IngestFuture, every};
use crate::config::ServeConfig;
use crate::state::{EntityUpdate, InboxItem, StateError, Status};
use import::{Batch, BatchOutcome, Rows};
use names::span;
use source::{Catalog, CatalogEntry};

/// The stock flow (entities `stock` and `prices`) in the [registry](crate::flows::registry).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stock;

impl Flow for Stock {
    fn name(&self) -> &'static str {
        STOCK
    }

    fn entity_flows(&self) -> &'static [&'static str] {
        &[STOCK, PRICES]
    }

    fn accepts(&self, source: &str) -> bool {
        accepts(source)
    }

    fn ingest<'a>(&'a self, ctx: &'a FlowContext, item: &'a InboxItem) -> IngestFuture<'a> {
        Box::pin(ingest(ctx, item))
    }

    fn run<'a>(&'a self, ctx: &'a FlowContext) -> FlowFuture<'a> {
        Box::pin(run(ctx))
    }

    fn every(&self, serve: &ServeConfig) -> Option<std::time::Duration> {
        every(serve.stock_reconcile_every_secs)
    }
}

/// Whether this flow takes inbox items of `source` (Brightpearl webhooks).
pub fn accepts(source: &str) -> bool {
    source == webhook::SOURCE
}

/// Turns a Brightpearl webhook into pending `stock` (and `prices`) entities, without calling
/// any platform. Events other than `product.*` are ignored (another flow takes them).
pub async fn ingest(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    webhook::ingest(ctx, item).await
}

/// What kind of pass a flow made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PassKind {
    /// Nothing to do (no pending product, no full pass due, or nothing mapped).
    Idle,
    /// Only the pending products.
    Pending,
    /// Every product (full reconciliation).
    Full,
}

/// A SKU Norce refused (an unknown part number, usually), with Norce's messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UnmatchedSku {
    /// Brightpearl product id.
    pub product_id: u64,
    /// The SKU (= the Norce part number looked for).
    pub sku: String,
    /// What Norce said about its rows.
    pub messages: Vec<String>,
}

/// One flow's pass in detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PassReport {
    /// The counts (`booked` = products imported, `skipped` includes the unmatched SKUs).
    pub report: FlowReport,
    /// Full, pending-only or idle.
    pub kind: PassKind,
    /// SKUs Norce refused.
    pub unmatched: Vec<UnmatchedSku>,
    /// Every import job with its validation summary.
    pub jobs: Vec<ImportJob>,
}

impl PassReport {
    fn new(flow: &str, kind: PassKind) -> Self {
        Self {
            report: FlowReport {
                flow: flow.to_owned(),
                ..FlowReport::default()
            },
            kind,
            unmatched: Vec::new(),
            jobs: Vec::new(),
        }
    }
}

/// Both flows' passes of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StockRunReport {
    /// On-hand.
    pub stock: PassReport,
    /// Prices.
    pub prices: PassReport,
}

impl StockRunReport {
    /// One report for both flows (flow `stock`; counts are entities of `stock` and `prices`).
    pub fn combined(&self) -> FlowReport {
        FlowReport::merged(STOCK, [&self.stock.report, &self.prices.report])
    }
}

/// One pass of both flows (see the module docs); the report counts entities of both.
pub async fn run(ctx: &FlowContext) -> Result<FlowReport, FlowError> {
    Ok(run_detailed(ctx).await?.combined())
}

/// One pass of both flows with the per-flow reports, the unmatched SKUs and the import jobs.
pub async fn run_detailed(ctx: &FlowContext) -> Result<StockRunReport, FlowError> {
    let config = &ctx.config.stock;
    // Checked at load; again for a context built in code.
    config.validate()?;
    let bp = ctx.brightpearl()?;
    ctx.norce()?;
    let now = Utc::now();
    let stock_on = !config.warehouses.is_empty();
    let prices_on = !config.price_lists.is_empty();
    let stock = Plan::new(ctx, STOCK, stock_on, now)?;
    let prices = Plan::new(ctx, PRICES, prices_on, now)?;

    // One catalog for both flows: every product when either is full, else a search on the
    // pending ids.
    let catalog = if stock.full || prices.full {
        source::catalog(bp, if stock.full { STOCK } else { PRICES }).await?
    } else {
        let need: BTreeSet<u64> = stock
            .pending
            .iter()
            .chain(&prices.pending)
            .copied()
            .collect();
        source::products(bp, STOCK, &need).await?
    };

    // The orders flow's SKU → product id map is filled from this read (`flows::catalog`).
    let skus = super::catalog::SkuMap::new(
        ctx.store.as_ref(),
        bp.account(),
        ctx.config.orders.sku_map_max_age_secs,
    );
    let read = catalog
        .iter()
        .filter_map(|(id, entry)| Some((entry.sku.clone()?, *id)));
    if stock.full || prices.full {
        skus.replace(read)?;
    } else {
        skus.put(read)?;
    }

    let stock_report = stock.run(ctx, &catalog, now).await?;
    let prices_report = prices.run(ctx, &catalog, now).await?;
    Ok(StockRunReport {
        stock: stock_report,
        prices: prices_report,
    })
}

/// What one flow will do this run.
struct Plan {
    flow: &'static str,
    enabled: bool,
    full: bool,
    /// Pending product ids.
    pending: BTreeSet<u64>,
    /// The step of every entity looked at, as read before Brightpearl was: a different
    /// `webhook:` step afterwards means a change arrived during the pass.
    steps: HashMap<String, Option<String>>,
}

impl Plan {
    fn new(
        ctx: &FlowContext,
        flow: &'static str,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> Result<Self, FlowError> {
        if !enabled {
            return Ok(Self {
                flow,
                enabled,
                full: false,
                pending: BTreeSet::new(),
                steps: HashMap::new(),
            });
        }
        let interval = ctx.config.stock.full_interval();
        let full = match cursor_time(ctx, flow)? {
            None => true,
            Some(last) => {
                let age = now.signed_duration_since(last);
                interval.is_zero() || age.to_std().is_ok_and(|age| age >= interval)
            }
        };
        let records = ctx
            .store
            .list(Some(flow), if full { None } else { Some(Status::Pending) })?;
        let mut pending = BTreeSet::new();
        let mut steps = HashMap::new();
        for record in records {
            match record.source_id.parse::<u64>() {
                Ok(id) if record.status == Status::Pending => {
                    pending.insert(id);
                }
                Ok(_) => {}
                Err(_) => {
                    // Only a hand-edited state can hold this; it can never be processed.
                    let error = format!(
                        "source id `{}` is not a Brightpearl product id; remove it or replay a real one",
                        record.source_id
                    );
                    if record.status == Status::Pending {
                        action::dead_letter_now(ctx, flow, &record.source_id, &error)?;
                    }
                    continue;
                }
            }
            steps.insert(record.source_id, record.step);
        }
        Ok(Self {
            flow,
            enabled,
            full,
            pending,
            steps,
        })
    }

    async fn run(
        mut self,
        ctx: &FlowContext,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Result<PassReport, FlowError> {
        let started = Instant::now();
        let kind = if !self.enabled {
            PassKind::Idle
        } else if self.full {
            PassKind::Full
        } else if self.pending.is_empty() {
            PassKind::Idle
        } else {
            PassKind::Pending
        };
        let mut pass = PassReport::new(self.flow, kind);
        if kind == PassKind::Idle {
            if !self.enabled {
                tracing::debug!(flow = self.flow, "nothing mapped in [stock]; flow off");
            }
            return Ok(pass);
        }
        let mut ids = self.pending.clone();
        if self.full {
            ids.extend(catalog.keys().copied());
        }
        // Entities first, so a crash from here on leaves every product of the pass on record.
        for id in &ids {
            let key = id.to_string();
            if !self.steps.contains_key(&key) {
                let sku = catalog.get(id).and_then(|e| e.sku.clone());
                ctx.store.upsert_pending(
                    self.flow,
                    &key,
                    Some(&json!({ "sku": sku }).to_string()),
                )?;
                self.steps.insert(key, None);
            }
        }
        pass.report.seen = ids.len() as u64;

        let mut candidates: Vec<(u64, String)> = Vec::new();
        for id in &ids {
            match catalog.get(id) {
                None => self.settle_skip(ctx, &mut pass, *id, "not_in_brightpearl", json!({}))?,
                Some(CatalogEntry { sku: None, .. }) => {
                    self.settle_skip(ctx, &mut pass, *id, "no_sku", json!({}))?
                }
                Some(CatalogEntry { sku: Some(sku), .. }) => candidates.push((*id, sku.clone())),
            }
        }
        let products = match self.flow {
            STOCK => onhand_rows(ctx, self.flow, &candidates, catalog).await?,
            _ => price_rows(ctx, self.flow, &candidates).await?,
        };
        let mut payloads: BTreeMap<u64, serde_json::Value> = BTreeMap::new();
        let mut with_rows = Vec::new();
        for product in products {
            match product.rows {
                None => self.settle_skip(
                    ctx,
                    &mut pass,
                    product.id,
                    product.skip_step,
                    json!({ "sku": product.sku }),
                )?,
                Some(rows) => {
                    payloads.insert(product.id, product.payload);
                    with_rows.push((product.id, product.sku, rows));
                }
            }
        }

        // Rows per product, for the report (counted when the product is imported).
        let row_counts: BTreeMap<u64, u64> = with_rows
            .iter()
            .map(|(id, _, rows)| {
                (
                    *id,
                    u64::try_from(if self.flow == STOCK {
                        rows.onhands.len()
                    } else {
                        rows.prices.len()
                    })
                    .unwrap_or(u64::MAX),
                )
            })
            .collect();
        let config = &ctx.config.stock;
        let full_file = self.full && config.full_file;
        let max_rows = if full_file {
            usize::MAX
        } else {
            config.import_batch_rows
        };
        let batches: Vec<Batch> = match self.flow {
            STOCK => import::batches(
                with_rows
                    .into_iter()
                    .map(|(id, sku, rows)| (id, sku, rows.onhands))
                    .collect(),
                max_rows,
                Rows::Onhands,
            ),
            _ => import::batches(
                with_rows
                    .into_iter()
                    .map(|(id, sku, rows)| (id, sku, rows.prices))
                    .collect(),
                max_rows,
                Rows::Prices,
            ),
        };
        let norce = ctx.norce()?;
        let options = ImportOptions::new(config.norce_account_id).full_file(full_file);
        let wait = config.job_wait.wait_options();
        let flow = self.flow;
        // The futures are built first: a lazy `map` closure inside the stream would make the
        // pass's future not `Send` for every lifetime (the runners need it `Send`).
        let jobs: Vec<_> = batches
            .into_iter()
            .map(|b| import::run_batch(norce, flow, b, &options, &wait))
            .collect();
        let outcomes: Vec<BatchOutcome> = futures::stream::iter(jobs)
            .buffer_unordered(ctx.config.run.concurrency.max(1))
            .collect()
            .await;

        let record_span = span(self.flow, "record", "*");
        for outcome in outcomes {
            let _entered = record_span.enter();
            self.record(ctx, &mut pass, &outcome, &payloads, &row_counts)?;
            pass.jobs.push(outcome.job);
        }
        pass.report.import_jobs = pass.jobs.iter().filter(|j| j.job_id.is_some()).count() as u64;
        pass.jobs.sort_by(|a, b| a.batch.cmp(&b.batch));
        if !pass.unmatched.is_empty() {
            let skus: Vec<&str> = pass
                .unmatched
                .iter()
                .take(20)
                .map(|u| u.sku.as_str())
                .collect();
            tracing::warn!(flow = self.flow, count = pass.unmatched.len(), first = ?skus, "Norce refused these SKUs (usually: the part number does not exist in Norce); see `relay status` for Norce's messages");
        }
        if self.full {
            // Failed products are pending now and retried by the next pass, so the full pass
            // counts as done even then.
            ctx.store
                .set_cursor(self.flow, &now.to_rfc3339_opts(SecondsFormat::Secs, true))?;
        }
        pass.report.duration_ms = elapsed_ms(started);
        Ok(pass)
    }

    /// Records what happened to each product of a finished (or failed) batch.
    fn record(
        &self,
        ctx: &FlowContext,
        pass: &mut PassReport,
        outcome: &BatchOutcome,
        payloads: &BTreeMap<u64, serde_json::Value>,
        row_counts: &BTreeMap<u64, u64>,
    ) -> Result<(), FlowError> {
        let job = &outcome.job;
        for (id, sku) in &outcome.batch.products {
            let key = id.to_string();
            let mut payload = payloads
                .get(id)
                .cloned()
                .unwrap_or_else(|| json!({ "sku": sku }));
            payload["job_id"] = json!(job.job_id);
            payload["job_status"] = json!(job.status_id);
            if let Some(error) = &job.error {
                // Pending again (it may have been done before this pass), then the attempt.
                ctx.store.update(
                    self.flow,
                    &key,
                    &EntityUpdate {
                        status: Some(Status::Pending),
                        payload: Some(payload.to_string()),
                        ..EntityUpdate::default()
                    },
                )?;
                let failure = ItemError::Failed {
                    kind: outcome.kind,
                    reason: error.clone(),
                    error: None,
                };
                let applied = action::apply(ctx, self.flow, &key, failure)?;
                if applied.action == action::Action::DeadLetter {
                    tracing::error!(flow = self.flow, source_id = %key, error, "dead-lettered; `relay replay` retries it");
                }
                pass.report.failed += u64::from(action::outcome_of(&applied.action).failed);
                continue;
            }
            if let Some(messages) = outcome.problems.get(sku) {
                payload["problems"] = json!(messages);
                if self.settle(ctx, &key, Status::Skipped, "rejected", payload, job.job_id)? {
                    pass.report.skipped += 1;
                    pass.unmatched.push(UnmatchedSku {
                        product_id: *id,
                        sku: sku.clone(),
                        messages: messages.clone(),
                    });
                }
                continue;
            }
            if job.status_id == Some(norce_client::JOB_VALIDATION_FAILED) {
                let error = format!(
                    "Norce refused every row of job {}: {}",
                    job.job_id.unwrap_or_default(),
                    outcome.general_problems.join("; ")
                );
                ctx.store.update(
                    self.flow,
                    &key,
                    &EntityUpdate {
                        status: Some(Status::Pending),
                        ..EntityUpdate::default()
                    },
                )?;
                let applied = action::apply(ctx, self.flow, &key, ItemError::transient(error))?;
                pass.report.failed += u64::from(action::outcome_of(&applied.action).failed);
                continue;
            }
            if self.settle(ctx, &key, Status::Done, "imported", payload, job.job_id)? {
                pass.report.booked += 1;
                pass.report.done += 1;
                let rows = row_counts.get(id).copied().unwrap_or(0);
                if self.flow == STOCK {
                    pass.report.onhand_rows += rows;
                } else {
                    pass.report.price_rows += rows;
                }
            }
        }
        Ok(())
    }

    fn settle_skip(
        &self,
        ctx: &FlowContext,
        pass: &mut PassReport,
        id: u64,
        step: &str,
        payload: serde_json::Value,
    ) -> Result<(), FlowError> {
        if self.settle(ctx, &id.to_string(), Status::Skipped, step, payload, None)? {
            pass.report.skipped += 1;
        }
        Ok(())
    }

    /// Finishes an entity unless a webhook marked it again while the pass ran (then it stays
    /// pending for the next pass). Returns whether it was finished.
    fn settle(
        &self,
        ctx: &FlowContext,
        key: &str,
        status: Status,
        step: &str,
        payload: serde_json::Value,
        job_id: Option<i32>,
    ) -> Result<bool, StateError> {
        let seen = self.steps.get(key).cloned().flatten();
        if let Some(current) = ctx.store.get(self.flow, key)?
            && current.step != seen
            && current
                .step
                .as_deref()
                .is_some_and(|s| s.starts_with("webhook:"))
        {
            tracing::debug!(
                flow = self.flow,
                source_id = key,
                "changed in Brightpearl during the pass; left pending"
            );
            return Ok(false);
        }
        let update = EntityUpdate {
            status: Some(status),
            step: Some(step.to_owned()),
            target_id: job_id.map(|j| j.to_string()),
            payload: Some(payload.to_string()),
            clear_error: true,
        };
        ctx.store.update(self.flow, key, &update)?;
        Ok(true)
    }
}

/// The rows of one product, or why it has none.
struct ProductRows {
    id: u64,
    sku: String,
    rows: Option<RowsOf>,
    skip_step: &'static str,
    payload: serde_json::Value,
}

#[derive(Default)]
struct RowsOf {
    onhands: Vec<SkuOnhand>,
    prices: Vec<SkuPriceList>,
}

/// One product's figures per Brightpearl warehouse (keyed by warehouse id as text): from
/// product availability, or, for a bundle, from bundle availability (`onHand` only).
enum Figures<'a> {
    Product(&'a BTreeMap<String, StockLevels>),
    Bundle(Option<&'a BTreeMap<String, BundleStockLevels>>),
}

impl Figures<'_> {
    fn warehouses(&self) -> Vec<&String> {
        match self {
            Figures::Product(w) => w.keys().collect(),
            Figures::Bundle(w) => w.iter().flat_map(|w| w.keys()).collect(),
        }
    }

    /// The figure sent for a warehouse: 0 where Brightpearl has none. Bundles have only
    /// `onHand`, which they send whatever `stock.quantity` says unless `inStock` came too.
    fn figure(&self, warehouse: &str, quantity: StockQuantity) -> i64 {
        match self {
            Figures::Product(w) => w
                .get(warehouse)
                .and_then(|l| match quantity {
                    StockQuantity::InStock => l.in_stock,
                    StockQuantity::OnHand => l.on_hand,
                })
                .unwrap_or(0),
            Figures::Bundle(w) => w
                .and_then(|w| w.get(warehouse))
                .map(|l| match quantity {
                    StockQuantity::InStock => l.in_stock.unwrap_or(l.on_hand),
                    StockQuantity::OnHand => l.on_hand,
                })
                .unwrap_or(0),
        }
    }
}

/// Bundle stock of the candidates that may be bundles: those the search marked as not
/// stock-tracked, and those it did not say about that product availability left out. Product
/// GETs (200 a request) tell bundles from other non-stock-tracked products; bundle
/// availability is asked for the bundles only. Returns the bundle ids and their availability.
async fn bundle_figures(
    ctx: &FlowContext,
    flow: &'static str,
    maybe: Vec<u64>,
) -> Result<(BTreeSet<u64>, BTreeMap<String, BundleAvailability>), FlowError> {
    if maybe.is_empty() {
        return Ok((BTreeSet::new(), BTreeMap::new()));
    }
    let bp = ctx.brightpearl()?;
    let products_span = span(flow, "bundle_check", &source::id_label(&maybe));
    // Boxed as `Send` here, where the lifetimes are concrete (see `for_each_pending`).
    let products: BoxFuture<'_, Result<Vec<Product>, brightpearl_client::Error>> =
        Box::pin(bp.products(&maybe).instrument(products_span));
    let products = products.await?;
    let bundles: BTreeSet<u64> = products
        .iter()
        .filter(|p| p.composition.as_ref().and_then(|c| c.bundle) == Some(true))
        .filter_map(|p| u64::try_from(p.id).ok())
        .collect();
    if bundles.is_empty() {
        return Ok((bundles, BTreeMap::new()));
    }
    let ids: Vec<u64> = bundles.iter().copied().collect();
    let availability = bp
        .bundle_availability_with(&ids, ctx.config.stock.bundle_mode())
        .instrument(span(flow, "bundle_availability", &source::id_label(&ids)))
        .await?;
    Ok((bundles, availability))
}

/// On-hand rows: one per mapped warehouse (0 where Brightpearl has no figure for it, so a
/// stale Norce value never survives); stock-tracked products from product availability,
/// bundles from bundle availability (`stock.bundles`); other products have no figures.
async fn onhand_rows(
    ctx: &FlowContext,
    flow: &'static str,
    candidates: &[(u64, String)],
    catalog: &Catalog,
) -> Result<Vec<ProductRows>, FlowError> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let bp = ctx.brightpearl()?;
    let config = &ctx.config.stock;
    let tracked = |id: &u64| catalog.get(id).and_then(|e| e.stock_tracked);
    // Products the search says are not stock-tracked are left out: Brightpearl ignores them.
    let ids: Vec<u64> = candidates
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| tracked(id) != Some(false))
        .collect();
    let availability = if ids.is_empty() {
        BTreeMap::new()
    } else {
        bp.availability(&ids)
            .instrument(span(flow, "availability", &source::id_label(&ids)))
            .await?
    };
    let (bundles, bundle_availability) = if config.bundles {
        let maybe: Vec<u64> = candidates
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| match tracked(id) {
                Some(false) => true,
                None => !availability.contains_key(&id.to_string()),
                Some(true) => false,
            })
            .collect();
        bundle_figures(ctx, flow, maybe).await?
    } else {
        (BTreeSet::new(), BTreeMap::new())
    };
    let mut unmapped: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(candidates.len());
    for (id, sku) in candidates {
        let key = id.to_string();
        let figures = if let Some(warehouses) =
            availability.get(&key).and_then(|a| a.warehouses.as_ref())
        {
            Figures::Product(warehouses)
        } else if let Some(bundle) = bundle_availability.get(&key) {
            Figures::Bundle(bundle.warehouses.as_ref())
        } else if bundles.contains(id) {
            tracing::warn!(flow, product_id = id, sku = %sku, "bundle availability has no figures for this bundle; its Norce on-hand is left as it is");
            out.push(ProductRows {
                id: *id,
                sku: sku.clone(),
                rows: None,
                skip_step: "bundle_without_availability",
                payload: json!({ "bundle": true }),
            });
            continue;
        } else {
            out.push(ProductRows {
                id: *id,
                sku: sku.clone(),
                rows: None,
                skip_step: "not_stock_tracked",
                payload: json!({}),
            });
            continue;
        };
        unmapped.extend(
            figures
                .warehouses()
                .into_iter()
                .filter(|w| {
                    w.parse::<u64>()
                        .ok()
                        .and_then(|w| config.norce_location_of(w))
                        .is_none()
                })
                .cloned(),
        );
        let mut rows = Vec::with_capacity(config.warehouses.len());
        let mut sent = serde_json::Map::new();
        for mapping in &config.warehouses {
            let figure =
                figures.figure(&mapping.brightpearl_warehouse.to_string(), config.quantity);
            sent.insert(
                format!("{}/{}", mapping.norce_warehouse, mapping.location()),
                json!(figure),
            );
            rows.push(SkuOnhand {
                part_no: sku.clone(),
                warehouse_code: mapping.norce_warehouse.clone(),
                location_code: mapping.location().to_owned(),
                onhand_value: figure.to_string().parse().ok(),
                is_active: Some(true),
                ..SkuOnhand::default()
            });
        }
        let mut payload = json!({ "sku": sku, "onhand": sent });
        if matches!(figures, Figures::Bundle(_)) {
            payload["bundle"] = json!(true);
        }
        out.push(ProductRows {
            id: *id,
            sku: sku.clone(),
            rows: Some(RowsOf {
                onhands: rows,
                prices: Vec::new(),
            }),
            skip_step: "",
            payload,
        });
    }
    if !unmapped.is_empty() {
        tracing::warn!(flow, warehouses = ?unmapped, "Brightpearl warehouses without a [[stock.warehouses]] mapping; their stock is not sent to Norce. Map them (brightpearl_warehouse = id, norce_warehouse = \"CODE\") if Norce should sell it");
    }
    Ok(out)
}

/// A value of the same type as `like` (lets the code use Brightpearl's decimal type, which
/// this crate cannot name, for arithmetic).
fn same_type<T: From<u8>>(_like: &T, n: u8) -> T {
    T::from(n)
}

/// `text` parsed as the type of `like`.
fn parse_like<T: std::str::FromStr>(_like: &T, text: &str) -> Option<T> {
    text.parse().ok()
}

/// Price rows: per product, one row per (Norce list, quantity break), each mapped Brightpearl
/// list filling its field; gross lists converted to ex VAT (4 decimals, as Norce keeps them).
async fn price_rows(
    ctx: &FlowContext,
    flow: &'static str,
    candidates: &[(u64, String)],
) -> Result<Vec<ProductRows>, FlowError> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let bp = ctx.brightpearl()?;
    let config = &ctx.config.stock;
    let account = bp.account().to_owned();
    let lists = bp
        .list_price_lists(&ListPriceListsPath { account })
        .instrument(span(flow, "price_lists", "*"))
        .await
        .or_empty()?
        .response;
    // Per mapping: (Brightpearl list id, includes VAT, currency).
    let mut mapped = Vec::with_capacity(config.price_lists.len());
    for (i, mapping) in config.price_lists.iter().enumerate() {
        let Some(list) = lists
            .iter()
            .find(|l| u64::try_from(l.id).ok() == Some(mapping.brightpearl_price_list))
        else {
            let known: Vec<String> = lists
                .iter()
                .map(|l| format!("{} ({})", l.id, l.code.as_deref().unwrap_or("?")))
                .collect();
            return Err(FlowError::Config {
                setting: format!("stock.price_lists[{i}].brightpearl_price_list"),
                reason: format!(
                    "Brightpearl has no price list {}; it has {}",
                    mapping.brightpearl_price_list,
                    known.join(", ")
                ),
            });
        };
        mapped.push((
            mapping,
            mapping.includes_vat.or(list.gross).unwrap_or(false),
            list.currency_code.clone(),
        ));
    }
    let distinct: BTreeSet<u64> = config
        .price_lists
        .iter()
        .map(|m| m.brightpearl_price_list)
        .collect();
    let only = if distinct.len() == 1 {
        distinct.first().copied()
    } else {
        None
    };
    let ids: Vec<u64> = candidates.iter().map(|(id, _)| *id).collect();
    let prices_span = span(flow, "prices", &source::id_label(&ids));
    let prices: BoxFuture<'_, Result<Vec<ProductPrice>, brightpearl_client::Error>> =
        Box::pin(bp.product_prices(&ids, only).instrument(prices_span));
    let prices = prices.await?;
    let by_product: HashMap<u64, _> = prices
        .into_iter()
        .filter_map(|p| {
            Some((
                u64::try_from(p.product_id).ok()?,
                p.price_lists.unwrap_or_default(),
            ))
        })
        .collect();
    let vat_text = config.vat_percent.to_string();

    let mut out = Vec::with_capacity(candidates.len());
    for (id, sku) in candidates {
        let entries = by_product.get(id).map(Vec::as_slice).unwrap_or_default();
        let mut rows: BTreeMap<(String, i32), SkuPriceList> = BTreeMap::new();
        let mut sent = Vec::new();
        for (mapping, gross, currency) in &mapped {
            let entry = entries.iter().find(|e| {
                e.price_list_id.and_then(|l| u64::try_from(l).ok())
                    == Some(mapping.brightpearl_price_list)
            });
            for (quantity, value) in entry
                .and_then(|e| e.quantity_price.as_ref())
                .into_iter()
                .flatten()
            {
                let Ok(quantity_break) = quantity.trim().parse::<i32>() else {
                    tracing::warn!(flow, product_id = id, quantity = %quantity, "price with a quantity break that is not a whole number; left out");
                    continue;
                };
                let net = if *gross {
                    let hundred = same_type(value, 100);
                    let Some(percent) = parse_like(value, &vat_text) else {
                        return Err(FlowError::Config {
                            setting: "stock.vat_percent".into(),
                            reason: format!("`{vat_text}` is not a decimal percentage"),
                        });
                    };
                    (*value * hundred / (hundred + percent))
                        .round_dp(4)
                        .normalize()
                } else {
                    value.normalize()
                };
                let row = rows
                    .entry((mapping.norce_price_list.clone(), quantity_break))
                    .or_insert_with(|| SkuPriceList {
                        part_no: sku.clone(),
                        price_list_code: mapping.norce_price_list.clone(),
                        quantity_break: Some(quantity_break),
                        currency_code: currency.clone(),
                        ..SkuPriceList::default()
                    });
                let slot = match mapping.field {
                    PriceField::PriceSale => &mut row.price_sale,
                    PriceField::CostPurchase => &mut row.cost_purchase,
                    PriceField::CostUnit => &mut row.cost_unit,
                    PriceField::PriceRecommended => &mut row.price_recommended,
                    PriceField::PricePrevious => &mut row.price_previous,
                    PriceField::PriceCatalog => &mut row.price_catalog,
                };
                *slot = Some(net.into());
                sent.push(json!({ "list": mapping.norce_price_list, "quantity_break": quantity_break, "field": mapping.field.norce_name(), "value": net.to_string() }));
            }
        }
        if rows.is_empty() {
            out.push(ProductRows {
                id: *id,
                sku: sku.clone(),
                rows: None,
                skip_step: "no_prices",
                payload: json!({}),
            });
            continue;
        }
        out.push(ProductRows {
            id: *id,
            sku: sku.clone(),
            rows: Some(RowsOf {
                onhands: Vec::new(),
                prices: rows.into_values().collect(),
            }),
            skip_step: "",
            payload: json!({ "sku": sku, "prices": sent }),
        });
    }
    Ok(out)
}
