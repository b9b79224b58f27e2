//! What the `orders` and `fulfilment` flows share: their names and search columns, the stored
//! Norce order, and small helpers.

use std::collections::HashSet;

use norce_client::models::events::OrderRequest;
use norce_client::models::query;
use serde::{Deserialize, Serialize};

use super::amount::{Amount, model_decimal};
use super::model::NorceOrder;
use crate::config::orders::OrdersConfig;
use crate::flows::action::{self, ItemError};
use crate::flows::context::{FlowContext, FlowError};

/// The order-search columns the orders flow reads for its `externalRef` check (fulfilment reads
/// the first two); `relay verify --deep` asks for the same.
pub const ORDER_SEARCH_COLUMNS: [&str; 3] =
    ["orderId", "externalRef", "installedIntegrationInstanceId"];

/// The goods-out-note search columns fulfilment reads; `relay verify --deep` asks for the same.
pub const GOODS_OUT_SEARCH_COLUMNS: [&str; 4] =
    ["goodsOutNoteId", "orderId", "shipped", "shippedOn"];

/// Flow name (and cursor name) of Norce orders into Brightpearl.
pub const FLOW: &str = "orders";
/// Flow name (and cursor name) of shipped goods-out notes back to Norce.
pub const FULFILMENT_FLOW: &str = "fulfilment";
/// What an `orders` entity keeps as its payload: the order as Norce sent it (normalised at each
/// attempt, so a replay after a configuration fix uses the new mapping) and the contact once found.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderPayload {
    pub(crate) source: OrderSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) contact_id: Option<i64>,
    /// Set (and then kept) just before the first sales-order POST: the bulk duplicate check of
    /// a later attempt must cover what Brightpearl created since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) posted: Option<PostMarker>,
}

/// What was known before the first sales-order POST of an order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostMarker {
    /// The newest `createdOn` (Brightpearl's clock) among the orders the bulk check read; the
    /// order, if the POST took effect, was created at or after it. `None`: not known (no order
    /// read, or the bulk check failed), so only a check covering every order settles it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) newest: Option<String>,
}

/// The Norce order as received.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OrderSource {
    /// A Query 3.0 order (expanded with its lines and its buyer and ship-to customer infos).
    Query(Box<query::Order>),
    /// An order receiver push.
    Push(Box<OrderRequest>),
}

impl OrderPayload {
    pub(crate) fn normalise(&self, config: &OrdersConfig) -> Result<NorceOrder, String> {
        match &self.source {
            OrderSource::Query(order) => NorceOrder::from_query(order, config),
            OrderSource::Push(request) => NorceOrder::from_push(request, config),
        }
    }

    pub(crate) fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| format!("cannot store the order payload: {e}"))
    }
}

/// Dead-letters an item that could not even be read (unless it is already finished: a bad
/// repeat of a done order changes nothing).
pub(crate) fn dead_letter_unreadable(
    ctx: &FlowContext,
    flow: &str,
    source_id: &str,
    payload: Option<&str>,
    error: &str,
) -> Result<(), FlowError> {
    let record = ctx.store.upsert_pending(flow, source_id, payload)?;
    if record.status.is_finished() {
        tracing::warn!(
            flow,
            source_id,
            error,
            "unreadable repeat of a finished item ignored"
        );
        return Ok(());
    }
    action::dead_letter_now(ctx, flow, source_id, error)
}

/// A cursor value: the time in RFC 3339 with milliseconds.
pub(crate) fn cursor_text(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A Brightpearl poll's time cursor: where the last poll got to, the newest change time this
/// poll has seen, and the entities it queued. [`PollCursor::save`] stores the cursor after every
/// entity is queued, so a crash never skips one.
pub(super) struct PollCursor {
    flow: &'static str,
    since: Option<chrono::DateTime<chrono::Utc>>,
    newest: Option<chrono::DateTime<chrono::Utc>>,
    /// Entities queued that were finished before (a poll sees them again).
    pub finished_before: u64,
}

impl PollCursor {
    /// The cursor of `flow` as stored.
    pub fn read(ctx: &FlowContext, flow: &'static str) -> Result<Self, FlowError> {
        let since = crate::flows::context::cursor_time(ctx, flow)?;
        Ok(Self {
            flow,
            since,
            newest: since,
            finished_before: 0,
        })
    }

    /// Where the last poll got to, as the search's inclusive lower bound (things changed at that
    /// instant are seen again; queueing them again is a no-op).
    pub fn since_text(&self) -> Option<String> {
        self.since.map(cursor_text)
    }

    /// A row's change time (RFC 3339, as Brightpearl's search answers it).
    pub fn saw(&mut self, time: Option<&str>) {
        if let Some(time) = time.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
            let time = time.with_timezone(&chrono::Utc);
            self.newest = Some(self.newest.map_or(time, |n| n.max(time)));
        }
    }

    /// Queues `source_id` as a pending entity of the cursor's flow (a known one is left as it is).
    pub fn queue(&mut self, ctx: &FlowContext, source_id: &str) -> Result<(), FlowError> {
        let record = ctx.store.upsert_pending(self.flow, source_id, None)?;
        if record.status.is_finished() {
            self.finished_before += 1;
        }
        Ok(())
    }

    /// Stores the newest time seen, if it moved; returns the entities finished before.
    pub fn save(self, ctx: &FlowContext) -> Result<u64, FlowError> {
        if let Some(newest) = self.newest.filter(|n| Some(*n) != self.since) {
            ctx.store.set_cursor(self.flow, &cursor_text(newest))?;
        }
        Ok(self.finished_before)
    }
}

/// An amount as the model's decimal type, or a permanent failure naming `what`.
pub(crate) fn decimal<T: serde::de::DeserializeOwned>(
    amount: Amount,
    what: &str,
) -> Result<T, ItemError> {
    model_decimal(amount).map_err(|e| ItemError::permanent(format!("{what}: {e}")))
}

/// Ids of a Brightpearl ID set (`1-5,7`); `None` when it is not one.
pub(crate) fn parse_id_set(text: &str) -> Option<Vec<u64>> {
    let mut ids = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to): (u64, u64) = (from.trim().parse().ok()?, to.trim().parse().ok()?);
                // A webhook never names thousands of notes; a huge range is a broken body.
                if to < from || to - from > 10_000 {
                    return None;
                }
                ids.extend(from..=to);
            }
            None => ids.push(part.parse().ok()?),
        }
    }
    let unique: HashSet<u64> = ids.iter().copied().collect();
    let mut ids: Vec<u64> = unique.into_iter().collect();
    ids.sort_unstable();
    (!ids.is_empty()).then_some(ids)
}
