//! What every flow shares: [`FlowContext`] (store, clients, configuration, the stop flag),
//! [`FlowReport`], [`FlowError`], [`Ingested`], and the pass helper `for_each_pending`.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::config::{ConfigError, RelayConfig};
use crate::state::{EntityRecord, StateError, Status, Store, parse_time_cursor};

/// Inbox source of Norce's order receiver push (body: an `OrderRequest`; taken by `shipping`
/// and `orders`).
pub const SOURCE_NORCE_ORDER: &str = "norce-order";
/// Inbox source of Norce event webhooks (key `{eventType}:{id}`; taken by `shipping` and
/// `orders`).
pub const SOURCE_NORCE_EVENT: &str = "norce-event";
/// Inbox source of Brightpearl webhooks (body: the webhook's JSON body template; taken by
/// `stock` and `orders`).
pub const SOURCE_BRIGHTPEARL_WEBHOOK: &str = "brightpearl-webhook";

/// What every flow needs: the store, the clients of the configured platforms, the settings.
#[derive(Clone)]
pub struct FlowContext {
    /// Durable state.
    pub store: Arc<dyn Store>,
    /// Norce, when configured.
    pub norce: Option<norce_client::NorceClient>,
    /// nShift, when configured.
    pub nshift: Option<nshift_client::NshiftClient>,
    /// Brightpearl, when configured.
    pub brightpearl: Option<brightpearl_client::Client>,
    /// The configuration file's contents (defaults when there is none).
    pub config: Arc<RelayConfig>,
    /// Set when the process is stopping: passes take no new item (those in flight finish).
    pub stopping: StopFlag,
}

/// A process-wide "stopping" flag shared by every clone of a [`FlowContext`]: `relay serve`
/// sets it when a shutdown begins, so a pass stops taking new items and only lets those in
/// flight finish within the grace.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<std::sync::atomic::AtomicBool>);

impl StopFlag {
    /// Says the process is stopping.
    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the process is stopping.
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl FlowContext {
    /// The Norce client, or an error naming the settings to set.
    pub fn norce(&self) -> Result<&norce_client::NorceClient, FlowError> {
        self.norce.as_ref().ok_or(FlowError::NotConfigured {
            platform: "Norce",
            settings: "NORCE_CLIENT_ID, NORCE_CLIENT_SECRET, NORCE_APPLICATION_ID",
        })
    }

    /// The nShift client, or an error naming the settings to set.
    pub fn nshift(&self) -> Result<&nshift_client::NshiftClient, FlowError> {
        self.nshift.as_ref().ok_or(FlowError::NotConfigured {
            platform: "nShift",
            settings: "NSHIFT_API_KEY_ID, NSHIFT_SECRET_ID",
        })
    }

    /// This context for a pass of `flow`: its Brightpearl client draws from the account's one
    /// limiter with the flow's priority and is counted under its name
    /// ([`budget_of`](crate::budget::budget_of)); the rest is shared.
    pub fn for_flow(&self, flow: &str) -> FlowContext {
        let mut ctx = self.clone();
        ctx.brightpearl = self
            .brightpearl
            .as_ref()
            .map(|client| client.with_budget(crate::budget::budget_of(flow)));
        ctx
    }

    /// The Brightpearl client, or an error naming the settings to set.
    pub fn brightpearl(&self) -> Result<&brightpearl_client::Client, FlowError> {
        self.brightpearl.as_ref().ok_or(FlowError::NotConfigured {
            platform: "Brightpearl",
            settings: "BRIGHTPEARL_ACCOUNT, BRIGHTPEARL_APP_REF and a token",
        })
    }
}

/// What one run of a flow did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FlowReport {
    /// Flow name.
    pub flow: String,
    /// Items looked at.
    pub seen: u64,
    /// Items created in the target platform this run (shipments booked, orders created, SKUs imported).
    pub booked: u64,
    /// Items whose result was written back to the source (delivery notes, order statuses).
    pub written_back: u64,
    /// Items finished (now or before) and not touched again.
    pub done: u64,
    /// Items skipped by the mapping.
    pub skipped: u64,
    /// Items that failed this run (kept for retry, or dead-lettered after the attempt limit).
    pub failed: u64,
    /// Wall time of the run in milliseconds.
    pub duration_ms: u64,
    /// Label files saved this run (`shipping`).
    pub labels: u64,
    /// Norce delivery notes created this run (`shipping`, `fulfilment`).
    pub notes: u64,
    /// Norce orders set to the delivered status this run (`fulfilment`).
    pub delivered: u64,
    /// Norce orders set to the partly delivered status this run (`fulfilment`).
    pub partly_delivered: u64,
    /// On-hand rows (one per SKU and Norce location) of the products imported this run (`stock`).
    pub onhand_rows: u64,
    /// Price rows (one per SKU and Norce price list) of the products imported this run (`stock`).
    pub price_rows: u64,
    /// Norce import jobs that Norce accepted this run (`stock`).
    pub import_jobs: u64,
}

impl FlowReport {
    /// One report named `flow` that adds up `reports` (a runner that drives several passes, or
    /// a total row).
    pub fn merged<'a>(flow: &str, reports: impl IntoIterator<Item = &'a FlowReport>) -> FlowReport {
        reports.into_iter().fold(
            FlowReport {
                flow: flow.to_owned(),
                ..FlowReport::default()
            },
            |mut sum, r| {
                sum.seen += r.seen;
                sum.booked += r.booked;
                sum.written_back += r.written_back;
                sum.done += r.done;
                sum.skipped += r.skipped;
                sum.failed += r.failed;
                sum.duration_ms += r.duration_ms;
                sum.labels += r.labels;
                sum.notes += r.notes;
                sum.delivered += r.delivered;
                sum.partly_delivered += r.partly_delivered;
                sum.onhand_rows += r.onhand_rows;
                sum.price_rows += r.price_rows;
                sum.import_jobs += r.import_jobs;
                sum
            },
        )
    }

    /// Counts one entity looked at and what became of it.
    pub(crate) fn add(&mut self, outcome: Outcome) {
        self.seen += 1;
        self.booked += u64::from(outcome.booked);
        self.written_back += u64::from(outcome.written_back);
        self.done += u64::from(outcome.done);
        self.skipped += u64::from(outcome.skipped);
        self.failed += u64::from(outcome.failed);
        self.labels += u64::from(outcome.labels);
        self.notes += u64::from(outcome.note);
        self.delivered += u64::from(outcome.delivered);
        self.partly_delivered += u64::from(outcome.partly_delivered);
    }
}

/// What processing one entity came to, as the flows that process entities one by one count it.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Outcome {
    /// Created in the target platform by this attempt.
    pub booked: bool,
    /// Its result was written back to the source by this attempt.
    pub written_back: bool,
    /// Finished.
    pub done: bool,
    /// Skipped by the mapping.
    pub skipped: bool,
    /// The attempt failed (kept for retry, or dead-lettered).
    pub failed: bool,
    /// Label files saved by this attempt.
    pub labels: u32,
    /// A Norce delivery note was created by this attempt.
    pub note: bool,
    /// The Norce order was set to the delivered status by this attempt.
    pub delivered: bool,
    /// The Norce order was set to the partly delivered status by this attempt.
    pub partly_delivered: bool,
}

/// Milliseconds since `started`, for [`FlowReport::duration_ms`].
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The time in the cursor `flow` (RFC 3339), if set; a value that is no time is a `Config`
/// error naming the cursor and how to set it.
pub(crate) fn cursor_time(
    ctx: &FlowContext,
    flow: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, FlowError> {
    match ctx.store.cursor(flow)? {
        Some(value) => {
            parse_time_cursor(flow, &value)
                .map(Some)
                .map_err(|reason| FlowError::Config {
                    setting: format!("cursor {flow}"),
                    reason,
                })
        }
        None => Ok(None),
    }
}

/// A flow that could not run at all (item failures are counted in the report instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// A platform the flow needs is not configured.
    #[error("{platform} is not configured: set {settings}")]
    NotConfigured {
        /// The platform.
        platform: &'static str,
        /// What to set.
        settings: &'static str,
    },
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A Norce call failed where the flow cannot go on.
    #[error("Norce: {0}")]
    Norce(#[from] norce_client::Error),
    /// An nShift call failed where the flow cannot go on.
    #[error("nShift: {0}")]
    Nshift(#[from] nshift_client::Error),
    /// A Brightpearl call failed where the flow cannot go on.
    #[error("Brightpearl: {0}")]
    Brightpearl(#[from] brightpearl_client::Error),
    /// A configuration value is unusable.
    #[error("configuration `{setting}`: {reason}")]
    Config {
        /// The setting (TOML key path).
        setting: String,
        /// Why.
        reason: String,
    },
    /// Writing a label or another file failed.
    #[error("cannot write `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// An item's failure that stops the pass (see [`crate::flows::action`]).
    #[error("{reason} ({kind})")]
    Item {
        /// The failure's kind (`unauthorized`).
        kind: &'static str,
        /// What failed, and what to do.
        reason: String,
    },
}

impl FlowError {
    /// The shared classification of a platform failure (the client error's own `kind()`).
    /// `None` for the rest (a platform not configured, a setting, the state store, a file):
    /// no retry of an item changes those, so they stop the pass.
    pub fn kind(&self) -> Option<client_core::ErrorKind> {
        match self {
            FlowError::Norce(e) => Some(e.kind()),
            FlowError::Nshift(e) => Some(e.kind()),
            FlowError::Brightpearl(e) => Some(e.kind()),
            _ => None,
        }
    }
}

impl From<ConfigError> for FlowError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { setting, reason } => FlowError::Config { setting, reason },
            other => FlowError::Config {
                setting: "(configuration file)".into(),
                reason: other.to_string(),
            },
        }
    }
}

/// What an `ingest` did for its flow: whether `relay serve` should run the flow soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Ingested {
    /// Pending work for the flow (an entity queued or changed, or an event its pass acts on).
    Work,
    /// Nothing for this flow (another flow's event, a known item, a dead letter filed).
    Nothing,
}

/// Pending records read from the store per pass at most this many at a time.
pub(crate) const PENDING_PAGE: usize = 256;

/// Drives every `Pending` entity of `flow` through `process`, at most `concurrency` at once,
/// handing each outcome to `tally`; returns how many entities were processed.
///
/// The records are read a page at a time in creation order, so a pass over any number of items
/// holds one page and the items in flight, never the whole backlog. An item that stays pending
/// (a failed attempt) is not visited twice in a pass. After the first error that stops the flow,
/// no new item starts; those in flight finish (each step records its own progress) and the
/// error is returned.
///
/// `process` returns a boxed `Send` future: boxed where the caller's lifetimes are concrete, the
/// pass stays provably `Send` for the runners (an opaque future in `BufferUnordered` is not).
pub(crate) async fn for_each_pending<'a, O>(
    ctx: &'a FlowContext,
    flow: &'a str,
    concurrency: usize,
    process: impl Fn(EntityRecord) -> futures::future::BoxFuture<'a, Result<O, FlowError>>,
    mut tally: impl FnMut(O),
) -> Result<u64, FlowError> {
    use futures::StreamExt as _;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut page = Vec::new().into_iter();
    let (mut after, mut exhausted, mut processed) = (0, false, 0);
    let mut first_error: Option<FlowError> = None;
    loop {
        // Once the process is stopping, no new item: those in flight finish, the rest stay
        // pending for the next start.
        while first_error.is_none()
            && !ctx.stopping.is_set()
            && in_flight.len() < concurrency.max(1)
        {
            if page.len() == 0 && !exhausted {
                match ctx
                    .store
                    .list_after(flow, Some(Status::Pending), after, PENDING_PAGE)
                {
                    Ok(next) => {
                        exhausted = next.is_empty();
                        after = next.last().map_or(after, |r| r.position);
                        page = next.into_iter();
                    }
                    Err(e) => {
                        first_error = Some(e.into());
                        break;
                    }
                }
            }
            match page.next() {
                Some(record) => in_flight.push(process(record)),
                None => break,
            }
        }
        match in_flight.next().await {
            Some(result) => {
                processed += 1;
                match result {
                    Ok(outcome) => tally(outcome),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            None => break,
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(processed),
    }
}

impl FlowContext {
    /// Builds the clients of every configured platform from `settings` (a platform counts as
    /// configured when any of its settings is present) over `store`.
    pub fn from_settings(
        settings: &client_core::Settings,
        store: Arc<dyn Store>,
        config: Arc<RelayConfig>,
    ) -> Result<Self, String> {
        use crate::platform::{Platform, configured_platforms};
        let configured = configured_platforms(settings);
        let norce = if configured.contains(&Platform::Norce) {
            Some(
                norce_client::NorceClientBuilder::from_settings(settings)
                    .and_then(|b| b.build())
                    .map_err(|e| e.hint())?,
            )
        } else {
            None
        };
        let nshift = if configured.contains(&Platform::Nshift) {
            Some(
                nshift_client::NshiftClientBuilder::from_settings(settings)
                    .and_then(|b| b.build())
                    .map_err(|e| e.hint())?,
            )
        } else {
            None
        };
        let brightpearl = if configured.contains(&Platform::Brightpearl) {
            Some(
                brightpearl_client::ClientBuilder::from_settings(settings)
                    .and_then(|b| b.build())
                    .map_err(|e| e.hint())?,
            )
        } else {
            None
        };
        Ok(Self {
            store,
            norce,
            nshift,
            brightpearl,
            config,
            stopping: StopFlag::default(),
        })
    }
}

#[cfg(test)]
impl FlowContext {
    /// A context without platform clients over an in-memory store (unit tests).
    pub(crate) fn offline(config: RelayConfig) -> Self {
        let store: Arc<dyn Store> = Arc::new(crate::state::SqliteStore::in_memory().unwrap());
        Self {
            store,
            norce: None,
            nshift: None,
            brightpearl: None,
            config: Arc::new(config),
            stopping: StopFlag::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::state::EntityUpdate;

    fn context(pending: usize) -> FlowContext {
        let ctx = FlowContext::offline(RelayConfig::default());
        for n in 0..pending {
            ctx.store
                .upsert_pending("f", &format!("{n:05}"), None)
                .unwrap();
        }
        ctx.store.upsert_pending("other", "x", None).unwrap();
        ctx
    }

    #[tokio::test]
    async fn a_stopping_process_takes_no_new_item_and_lets_those_in_flight_finish() {
        let ctx = context(50);
        let finished = AtomicUsize::new(0);
        let processed = for_each_pending(
            &ctx,
            "f",
            4,
            |_record| {
                let (ctx, finished) = (&ctx, &finished);
                Box::pin(async move {
                    // The stop arrives while the first items are in flight.
                    ctx.stopping.set();
                    tokio::task::yield_now().await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                })
            },
            |()| {},
        )
        .await
        .unwrap();
        assert_eq!(processed, 4, "the 4 in flight finished, no fifth was taken");
        assert_eq!(finished.load(Ordering::SeqCst), 4);
        let pending = ctx.store.list(Some("f"), Some(Status::Pending)).unwrap();
        assert_eq!(
            pending.len(),
            50,
            "the rest stay pending for the next start"
        );
    }

    #[tokio::test]
    async fn every_pending_entity_once_across_pages_with_bounded_concurrency() {
        let ctx = context(PENDING_PAGE * 2 + 7);
        let (in_flight, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut seen = Vec::new();
        let processed = for_each_pending(
            &ctx,
            "f",
            4,
            |record| {
                let (ctx, in_flight, peak) = (&ctx, &in_flight, &peak);
                Box::pin(async move {
                    peak.fetch_max(
                        in_flight.fetch_add(1, Ordering::SeqCst) + 1,
                        Ordering::SeqCst,
                    );
                    tokio::task::yield_now().await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    // Every third fails and stays pending: not visited again in this pass.
                    if record.source_id.ends_with(['0', '3', '6']) {
                        ctx.store.record_failure("f", &record.source_id, "503")?;
                    } else {
                        ctx.store.update(
                            "f",
                            &record.source_id,
                            &EntityUpdate {
                                status: Some(Status::Done),
                                ..Default::default()
                            },
                        )?;
                    }
                    Ok(record.source_id)
                })
            },
            |id| seen.push(id),
        )
        .await
        .unwrap();
        assert_eq!(processed as usize, PENDING_PAGE * 2 + 7);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), PENDING_PAGE * 2 + 7, "each once");
        assert_eq!(
            peak.load(Ordering::SeqCst),
            4,
            "at most `concurrency` in flight, and that many"
        );
    }

    #[tokio::test]
    async fn a_flow_error_starts_nothing_new_and_is_returned() {
        let ctx = context(50);
        let started = AtomicUsize::new(0);
        let result = for_each_pending(
            &ctx,
            "f",
            2,
            |record| {
                let started = &started;
                Box::pin(async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    if record.source_id == "00003" {
                        return Err(FlowError::NotConfigured {
                            platform: "Norce",
                            settings: "NORCE_CLIENT_ID",
                        });
                    }
                    tokio::task::yield_now().await;
                    Ok(())
                })
            },
            |()| {},
        )
        .await;
        assert!(
            matches!(result, Err(FlowError::NotConfigured { .. })),
            "{result:?}"
        );
        assert!(
            started.load(Ordering::SeqCst) <= 5,
            "stopped soon after the error: {}",
            started.load(Ordering::SeqCst)
        );
    }
}
