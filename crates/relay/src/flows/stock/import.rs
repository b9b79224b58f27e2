//! Norce Connect imports: one job per batch, awaited, with what Norce said about the rows.
//!
//! Imports write absolute values (an on-hand figure, a price), so sending a batch twice leaves
//! Norce exactly as sending it once: a batch whose answer was lost, or whose job is not known
//! to have finished, is simply sent again on the next pass.

use std::collections::{BTreeMap, BTreeSet};

use client_core::ErrorKind;
use norce_client::models::connect::operations::ConnectApi as _;
use norce_client::models::connect::{
    GetJobQuery, Job, JobLogEntry, SkuOnhand, SkuPriceList, ValidationSummary,
};
use norce_client::{ImportOptions, NorceClient, WaitOptions};
use serde::Serialize;
use tracing::Instrument as _;

use super::names::span;

/// The rows of one import job.
#[derive(Debug, Clone)]
pub(super) enum Rows {
    /// `ImportOnhands`.
    Onhands(Vec<SkuOnhand>),
    /// `ImportSkuPriceLists`.
    Prices(Vec<SkuPriceList>),
}

impl Rows {
    fn len(&self) -> usize {
        match self {
            Rows::Onhands(r) => r.len(),
            Rows::Prices(r) => r.len(),
        }
    }
}

/// One import job's worth: the products it carries (id, SKU) and their rows.
#[derive(Debug, Clone)]
pub(super) struct Batch {
    /// For spans and the report (`1001-1200`).
    pub label: String,
    /// (product id, SKU) of every product with rows in this batch.
    pub products: Vec<(u64, String)>,
    /// The rows.
    pub rows: Rows,
}

/// What Norce said about one import job (kept in the report).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ImportJob {
    /// `stock` or `prices`.
    pub flow: String,
    /// The batch (product ids).
    pub batch: String,
    /// Rows sent.
    pub rows: usize,
    /// The Norce job id, once Norce answered.
    pub job_id: Option<i32>,
    /// The job's final `StatusId` (2 succeeded, 3 failed, 4 validation failed), when known.
    pub status_id: Option<i32>,
    /// The job's `Totals`, `Insert`, `Updates`, `Fail`, when known.
    pub totals: Option<i32>,
    /// Rows inserted.
    pub inserted: Option<i32>,
    /// Rows updated.
    pub updated: Option<i32>,
    /// Rows refused.
    pub failed_rows: Option<i32>,
    /// The import answer's `ValidationSummary`.
    pub validation_summary: Option<ValidationSummary>,
    /// Why the batch failed as a whole (it is sent again on the next pass).
    pub error: Option<String>,
}

/// The outcome of one batch.
#[derive(Debug, Clone)]
pub(super) struct BatchOutcome {
    /// The batch.
    pub batch: Batch,
    /// What goes into the report.
    pub job: ImportJob,
    /// Norce's messages about rows, by the SKU they name.
    pub problems: BTreeMap<String, Vec<String>>,
    /// Messages that name no SKU of the batch.
    pub general_problems: Vec<String>,
    /// The kind of the batch's failure (`job.error`), for the per-item decision.
    pub kind: ErrorKind,
}

/// Sends a batch, waits for its job and collects Norce's row messages.
pub(super) async fn run_batch(
    norce: &NorceClient,
    flow: &'static str,
    batch: Batch,
    options: &ImportOptions,
    wait: &WaitOptions,
) -> BatchOutcome {
    let mut job = ImportJob {
        flow: flow.to_owned(),
        batch: batch.label.clone(),
        rows: batch.rows.len(),
        job_id: None,
        status_id: None,
        totals: None,
        inserted: None,
        updated: None,
        failed_rows: None,
        validation_summary: None,
        error: None,
    };
    let submitted = match &batch.rows {
        Rows::Onhands(rows) => {
            norce
                .import_onhands(rows, options)
                .instrument(span(flow, "import", &batch.label))
                .await
        }
        Rows::Prices(rows) => {
            norce
                .import_sku_price_lists(rows, options)
                .instrument(span(flow, "import", &batch.label))
                .await
        }
    };
    let response = match submitted {
        Ok(response) => response,
        Err(e) => {
            job.error = Some(format!("Norce import not accepted: {e} ({})", e.hint()));
            return BatchOutcome {
                batch,
                job,
                problems: BTreeMap::new(),
                general_problems: Vec::new(),
                kind: e.kind(),
            };
        }
    };
    job.job_id = response.job_id.trim().parse().ok();
    job.validation_summary = response.validation_summary.clone();
    let mut messages: Vec<(String, Option<String>)> = response
        .validation_summary
        .iter()
        .flat_map(|v| v.messages.iter().flatten())
        .map(|m| (m.clone(), None))
        .collect();
    let mut kind = ErrorKind::Transient;
    let waited = norce
        .wait_for_import(&response, wait)
        .instrument(span(flow, "wait_job", &response.job_id))
        .await;
    match waited {
        Ok(done) => {
            set_figures(&mut job, &done);
            // A succeeded job may still have refused some rows: their reasons are in the log.
            let refused = done.fail.unwrap_or(0) > 0
                || job
                    .validation_summary
                    .as_ref()
                    .and_then(|v| v.nr_of_validation_failures)
                    .unwrap_or(0)
                    > 0;
            if refused && let Some(id) = job.job_id {
                match norce
                    .get_job_log(id)
                    .instrument(span(flow, "job_log", &response.job_id))
                    .await
                {
                    Ok(log) => messages.extend(log_problems(&log)),
                    Err(e) => {
                        tracing::warn!(flow, job_id = id, error = %e, "cannot read the job log; row messages come from the validation summary only")
                    }
                }
            }
        }
        Err(e) => {
            kind = e.kind();
            // A job that ended but did not succeed: what Norce said about it, read again (the
            // client's error is not picked apart here, only its kind and its words).
            match finished_job(norce, flow, job.job_id).await {
                Some((finished, log)) => {
                    set_figures(&mut job, &finished);
                    messages.extend(log_problems(&log));
                    if finished.status_id != norce_client::JOB_VALIDATION_FAILED {
                        // Failed (3): Norce could not run the import; nothing says the rows
                        // are bad, so the batch is sent again.
                        let problems: Vec<String> = response
                            .validation_summary
                            .iter()
                            .flat_map(|v| v.messages.iter().flatten().cloned())
                            .chain(
                                log.iter()
                                    .filter(|e| e.severity_id >= 2)
                                    .map(|e| e.message.clone()),
                            )
                            .collect();
                        job.error = Some(format!(
                            "Norce job {} failed: {}",
                            finished.job_id,
                            problems.join("; ")
                        ));
                        kind = ErrorKind::Transient;
                    }
                }
                None => {
                    job.error = Some(format!(
                        "waiting for Norce job {}: {e} ({})",
                        response.job_id,
                        e.hint()
                    ))
                }
            }
        }
    }
    let (problems, general_problems) = attribute(&batch, &messages);
    if job.error.is_none()
        && job.status_id == Some(norce_client::JOB_VALIDATION_FAILED)
        && problems.is_empty()
    {
        // Every row refused, and no message says which: treat the whole batch as failed.
        job.error = Some(format!(
            "Norce refused every row of job {}: {}",
            response.job_id,
            general_problems.join("; ")
        ));
    }
    BatchOutcome {
        batch,
        job,
        problems,
        general_problems,
        kind,
    }
}

/// The job and its log, when the job has finished without succeeding (`Job/Get`,
/// `Job/GetLog`); `None` when it has not finished or Norce cannot tell.
async fn finished_job(
    norce: &NorceClient,
    flow: &'static str,
    job_id: Option<i32>,
) -> Option<(Job, Vec<JobLogEntry>)> {
    let id = job_id?;
    let job = norce
        .get_job(&GetJobQuery { id })
        .instrument(span(flow, "job", &id.to_string()))
        .await
        .ok()?;
    if !matches!(
        job.status_id,
        norce_client::JOB_FAILED | norce_client::JOB_VALIDATION_FAILED
    ) {
        return None;
    }
    let log = match norce
        .get_job_log(id)
        .instrument(span(flow, "job_log", &id.to_string()))
        .await
    {
        Ok(log) => log,
        Err(e) => {
            tracing::warn!(flow, job_id = id, error = %e, "cannot read the job log; row messages come from the validation summary only");
            Vec::new()
        }
    };
    Some((job, log))
}

fn set_figures(job: &mut ImportJob, done: &Job) {
    job.status_id = Some(done.status_id);
    job.totals = done.totals;
    job.inserted = done.insert;
    job.updated = done.updates;
    job.failed_rows = done.fail;
}

fn log_problems(log: &[JobLogEntry]) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    log.iter()
        .filter(|e| e.severity_id >= 2)
        .map(|e| (e.message.clone(), e.imported_row.clone()))
}

/// The part number of a log entry's `ImportedRow` (it may be truncated: then `None`).
fn part_no_of_row(row: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(row).ok()?;
    value.get("PartNo")?.as_str().map(str::to_owned)
}

/// Assigns each message to the SKUs of the batch it concerns: by the row it quotes, else by
/// the SKU appearing quoted (`'SKU-1'`) in its text.
fn attribute(
    batch: &Batch,
    messages: &[(String, Option<String>)],
) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
    let skus: BTreeSet<&str> = batch.products.iter().map(|(_, sku)| sku.as_str()).collect();
    let mut by_sku: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut general = Vec::new();
    for (message, row) in messages {
        let from_row = row
            .as_deref()
            .and_then(part_no_of_row)
            .filter(|p| skus.contains(p.as_str()));
        let named: Vec<&str> = match from_row {
            Some(ref part) => vec![part.as_str()],
            None => skus
                .iter()
                .copied()
                .filter(|sku| {
                    message.contains(&format!("'{sku}'")) || message.contains(&format!("\"{sku}\""))
                })
                .collect(),
        };
        if named.is_empty() {
            if !general.contains(message) {
                general.push(message.clone());
            }
            continue;
        }
        for sku in named {
            let list = by_sku.entry(sku.to_owned()).or_default();
            if !list.contains(message) {
                list.push(message.clone());
            }
        }
    }
    (by_sku, general)
}

/// Splits products (each with its rows) into batches of at most `max_rows` rows, never
/// splitting one product's rows; `label` names each batch by its product ids.
pub(super) fn batches<R>(
    products: Vec<(u64, String, Vec<R>)>,
    max_rows: usize,
    wrap: fn(Vec<R>) -> Rows,
) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut current: Vec<(u64, String)> = Vec::new();
    let mut rows: Vec<R> = Vec::new();
    let flush = |current: &mut Vec<(u64, String)>, rows: &mut Vec<R>, out: &mut Vec<Batch>| {
        if current.is_empty() {
            return;
        }
        let ids: Vec<u64> = current.iter().map(|(id, _)| *id).collect();
        out.push(Batch {
            label: super::source::id_label(&ids),
            products: std::mem::take(current),
            rows: wrap(std::mem::take(rows)),
        });
    };
    for (id, sku, product_rows) in products {
        if !rows.is_empty() && rows.len() + product_rows.len() > max_rows.max(1) {
            flush(&mut current, &mut rows, &mut out);
        }
        current.push((id, sku));
        rows.extend(product_rows);
    }
    flush(&mut current, &mut rows, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn onhand(sku: &str) -> SkuOnhand {
        SkuOnhand {
            part_no: sku.into(),
            warehouse_code: "WH1".into(),
            location_code: "WH1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn batches_keep_a_products_rows_together() {
        let products = (1..=5u64)
            .map(|i| (i, format!("S{i}"), vec![onhand("a"), onhand("b")]))
            .collect();
        let out = batches(products, 5, Rows::Onhands);
        let sizes: Vec<(String, usize)> = out
            .iter()
            .map(|b| (b.label.clone(), b.rows.len()))
            .collect();
        assert_eq!(
            sizes,
            vec![
                ("1-2".to_owned(), 4),
                ("3-4".to_owned(), 4),
                ("5".to_owned(), 2)
            ]
        );
    }

    #[test]
    fn messages_are_attributed_by_row_then_by_quoted_sku() {
        let batch = Batch {
            label: "1-2".into(),
            products: vec![(1, "SKU-1".into()), (2, "SKU-10".into())],
            rows: Rows::Onhands(Vec::new()),
        };
        let messages = vec![
            (
                "PartNo 'SKU-10' does not exist; the row is ignored.".to_owned(),
                None,
            ),
            (
                "row refused".to_owned(),
                Some(r#"{"PartNo":"SKU-1","WarehouseCode":"X"}"#.to_owned()),
            ),
            ("Import finished with warnings".to_owned(), None),
        ];
        let (by_sku, general) = attribute(&batch, &messages);
        assert_eq!(
            by_sku["SKU-10"],
            vec!["PartNo 'SKU-10' does not exist; the row is ignored.".to_owned()]
        );
        assert_eq!(by_sku["SKU-1"], vec!["row refused".to_owned()]);
        assert_eq!(general, vec!["Import finished with warnings".to_owned()]);
    }
}
