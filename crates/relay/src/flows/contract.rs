//! The flow contract: the [`Flow`] trait every flow implements, once, for `relay run` and
//! `relay serve` alike.

use std::time::Duration;

use futures::future::BoxFuture;

use super::context::{FlowContext, FlowError, FlowReport, Ingested};
use crate::config::ServeConfig;
use crate::state::InboxItem;

/// A pass in progress. `Send`: `relay serve` spawns each flow's passes as tasks on its one
/// multi-threaded runtime, and `relay run` may do the same.
pub type FlowFuture<'a> = BoxFuture<'a, Result<FlowReport, FlowError>>;
/// An ingest in progress.
pub type IngestFuture<'a> = BoxFuture<'a, Result<Ingested, FlowError>>;
/// A pass as a function pointer ([`FlowEntry::run`]).
pub type RunFn = for<'a> fn(&'a FlowContext) -> FlowFuture<'a>;
/// An ingest as a function pointer ([`FlowEntry::ingest`]).
pub type IngestFn = for<'a> fn(&'a FlowContext, &'a InboxItem) -> IngestFuture<'a>;

/// One flow: what `relay run` runs once and `relay serve` schedules, feeds from the inbox and
/// reports in `/healthz` and `/metrics`. The flows are listed once, in
/// [`registry`](crate::flows::registry).
pub trait Flow: Send + Sync + 'static {
    /// The flow's name (`relay run --flow`, the summary row, the scheduler, the metrics).
    fn name(&self) -> &'static str;

    /// The entity flows it records in the state (progress, `/metrics`); `stock` records
    /// `stock` and `prices`.
    fn entity_flows(&self) -> &'static [&'static str];

    /// Whether it takes inbox items of `source` (a Norce order push or event, a Brightpearl
    /// webhook).
    fn accepts(&self, source: &str) -> bool;

    /// Turns an inbox item into `Pending` entities without calling any platform, so the
    /// receivers' inbox drains quickly and safely; [`Ingested::Work`] asks `relay serve` for a
    /// pass soon. A body that cannot be read is filed as a dead letter, not an error.
    fn ingest<'a>(&'a self, ctx: &'a FlowContext, item: &'a InboxItem) -> IngestFuture<'a>;

    /// One pass: picks up new items (polling with the flow's cursor where it polls), brings
    /// every `Pending` entity through its steps (new ones, and ones a crash left half-done,
    /// resuming at their recorded `step`), and reports what it did. What becomes of an item
    /// that fails is [`decide`](crate::flows::action::decide)d from its kind; only what stops
    /// the whole flow is an `Err`. Every step runs in a `tracing` span (`flow`, `step`,
    /// `source_id`) and is idempotent: its result is recorded right after the platform call,
    /// and a replayed step checks the target first, so a crash or a dropped pass duplicates
    /// nothing.
    fn run<'a>(&'a self, ctx: &'a FlowContext) -> FlowFuture<'a>;

    /// Time between the passes `relay serve` schedules, from `[serve]` (`None`: only after an
    /// ingest gave it work).
    fn every(&self, serve: &ServeConfig) -> Option<Duration>;

    /// How long after an ingest gave it work `relay serve` starts its pass (a burst arriving
    /// meanwhile makes one pass), from `[serve]`.
    fn run_after_ingest(&self, serve: &ServeConfig) -> Duration {
        Duration::from_millis(serve.run_after_ingest_ms)
    }

    /// Whether several workers sharing one store may run its passes at once: its pending
    /// items are each processed under their own lease and its cursor reads run under
    /// [`FlowContext::exclusive`]. Otherwise (the default) [`run_pass`] runs a pass on one
    /// worker at a time: right for a flow bound by a per-account budget (Brightpearl's), where
    /// more workers add no throughput.
    fn parallel(&self) -> bool {
        false
    }
}

/// One pass of `flow` as `relay run` and `relay serve` start it: a flow that is not
/// [`Flow::parallel`] runs under the lease `pass/{name}`, and when another worker holds that,
/// this worker's pass does nothing (an empty report).
pub fn run_pass<'a>(flow: &'a dyn Flow, ctx: &'a FlowContext) -> FlowFuture<'a> {
    if flow.parallel() {
        return flow.run(ctx);
    }
    Box::pin(async move {
        let lease = format!("pass/{}", flow.name());
        Ok(ctx
            .exclusive(&lease, flow.run(ctx))
            .await?
            .unwrap_or_else(|| {
                tracing::info!(
                    flow = flow.name(),
                    "another worker is running this flow; pass skipped"
                );
                FlowReport {
                    flow: flow.name().to_owned(),
                    ..FlowReport::default()
                }
            }))
    })
}

/// `[serve]` seconds as an interval, `None` for 0.
pub(crate) fn every(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// A flow given as plain functions (tests, tools): every field is one part of the contract.
#[derive(Clone, Copy)]
pub struct FlowEntry {
    /// [`Flow::name`].
    pub name: &'static str,
    /// [`Flow::entity_flows`].
    pub entity_flows: &'static [&'static str],
    /// [`Flow::run`].
    pub run: RunFn,
    /// [`Flow::accepts`].
    pub accepts: fn(&str) -> bool,
    /// [`Flow::ingest`].
    pub ingest: IngestFn,
    /// [`Flow::every`], whatever `[serve]` says.
    pub every: Option<Duration>,
}

impl std::fmt::Debug for FlowEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowEntry")
            .field("name", &self.name)
            .field("entity_flows", &self.entity_flows)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl Flow for FlowEntry {
    fn name(&self) -> &'static str {
        self.name
    }

    fn entity_flows(&self) -> &'static [&'static str] {
        self.entity_flows
    }

    fn accepts(&self, source: &str) -> bool {
        (self.accepts)(source)
    }

    fn ingest<'a>(&'a self, ctx: &'a FlowContext, item: &'a InboxItem) -> IngestFuture<'a> {
        (self.ingest)(ctx, item)
    }

    fn run<'a>(&'a self, ctx: &'a FlowContext) -> FlowFuture<'a> {
        (self.run)(ctx)
    }

    fn every(&self, _serve: &ServeConfig) -> Option<Duration> {
        self.every
    }
}
