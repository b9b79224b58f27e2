//! What an operator does to the state, from `relay replay` / `relay cursor set` or from the
//! console: one implementation, so both change the state the same way and both are recorded in
//! the audit log with who did it.

use chrono::{DateTime, Utc};

use crate::config::RelayConfig;
use crate::state::{EntityRecord, StateError, Store, parse_time_cursor};

/// The flows that keep a cursor.
pub const CURSOR_FLOWS: &[&str] = &[
    "shipping",
    "shipping-alerts",
    "stock",
    "prices",
    "orders",
    "fulfilment",
];

/// The actor recorded for the command line (`relay replay`, `relay cursor set`).
pub const CLI_ACTOR: &str = "cli";

/// An operator's action that could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// The input names something that does not exist or is not valid; the text says what to do.
    #[error("{0}")]
    Invalid(String),
    /// The state refused.
    #[error(transparent)]
    State(#[from] StateError),
}

/// The go-live cutoff under a flow's cursor: `orders.since` for `orders`, `shipping.since` for
/// `shipping`. Orders placed before it are never taken whatever the cursor says, so a cursor
/// before it is refused unless forced (it would promise a backfill that does not happen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorFloor {
    /// The configuration key that sets it (`orders.since`).
    pub setting: &'static str,
    /// The cutoff.
    pub since: DateTime<Utc>,
    /// What the flow never does to an order placed before it (`imported`, `booked`).
    pub never: &'static str,
}

impl CursorFloor {
    /// The floor of `flow`'s cursor under `config`; `None` when the flow has no cutoff or none
    /// is configured.
    pub fn of(config: &RelayConfig, flow: &str) -> Option<Self> {
        let (setting, since, never) = match flow {
            crate::flows::orders::FLOW => ("orders.since", config.orders.since?, "imported"),
            crate::flows::shipping::FLOW => ("shipping.since", config.shipping.since?, "booked"),
            _ => return None,
        };
        Some(Self {
            setting,
            since: since.instant(),
            never,
        })
    }

    /// The cutoff as cursors are written (`2026-12-01T00:00:00Z`).
    pub fn since_text(&self) -> String {
        self.since
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// The refusal of a cursor `value` before the floor: names the key, the cutoff and
    /// `--force`.
    fn refusal(&self, flow: &str, value: &str) -> ActionError {
        ActionError::Invalid(format!(
            "the `{flow}` cursor cannot be set to {value}: that is before the go-live cutoff `{}` ({}), and orders placed before it are never {} whatever the cursor says; give a time at or after {}, or set it anyway with `relay cursor set {flow} {value} --force` (the poll still starts at the cutoff)",
            self.setting,
            self.since_text(),
            self.never,
            self.since_text()
        ))
    }
}

/// The cursor value `text` means for `flow`, normalised as it is stored: an RFC 3339 time
/// (seconds), or for `shipping-alerts` a position in nShift's alerts feed (a `fetchId`). A time
/// before `floor` (the flow's go-live cutoff, [`CursorFloor::of`]) is refused unless `force`.
pub fn cursor_value(
    flow: &str,
    text: &str,
    floor: Option<&CursorFloor>,
    force: bool,
) -> Result<String, ActionError> {
    if !CURSOR_FLOWS.contains(&flow) {
        return Err(ActionError::Invalid(format!(
            "no flow `{flow}`; choose from {}",
            CURSOR_FLOWS.join(", ")
        )));
    }
    if flow == crate::flows::shipping::ALERTS_CURSOR {
        return match text.trim().parse::<i64>() {
            Ok(fetch_id) if fetch_id >= -1 => Ok(fetch_id.to_string()),
            _ => Err(ActionError::Invalid(format!(
                "`{flow}` is a position in nShift's alerts feed, not a time: give a fetchId from `relay cursor show`, or {} to read the feed from its start",
                nshift_client::FEED_START
            ))),
        };
    }
    let time = parse_time_cursor(flow, text.trim()).map_err(ActionError::Invalid)?;
    let value = time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Compared as stored (to the second), so what is kept is never before the floor.
    let stored = parse_time_cursor(flow, &value).map_err(ActionError::Invalid)?;
    match floor {
        Some(floor) if !force && stored < floor.since => Err(floor.refusal(flow, &value)),
        _ => Ok(value),
    }
}

/// What [`set_cursor`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorChange {
    /// The value before (`None`: unset).
    pub before: Option<String>,
    /// The value now.
    pub after: String,
}

/// Sets `flow`'s cursor to `text` (checked by [`cursor_value`], against `floor` unless
/// `force`) as `actor`.
pub fn set_cursor(
    store: &dyn Store,
    flow: &str,
    text: &str,
    actor: &str,
    floor: Option<&CursorFloor>,
    force: bool,
) -> Result<CursorChange, ActionError> {
    let after = cursor_value(flow, text, floor, force)?;
    let before = store.set_cursor_by(flow, &after, actor)?;
    Ok(CursorChange { before, after })
}

/// What [`requeue`] did with each dead letter asked for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Requeued {
    /// Each dead letter sent back, with its entity (pending again, no attempts).
    pub requeued: Vec<(i64, EntityRecord)>,
    /// Ids with no dead letter.
    pub missing: Vec<i64>,
}

/// Sends the dead letters `ids` back to their flows as `actor` (what `relay replay` does).
pub fn requeue(store: &dyn Store, ids: &[i64], actor: &str) -> Result<Requeued, ActionError> {
    let mut outcome = Requeued::default();
    for &id in ids {
        match store.requeue_by(id, actor)? {
            Some(record) => outcome.requeued.push((id, record)),
            None => outcome.missing.push(id),
        }
    }
    Ok(outcome)
}

/// Sends every dead letter of one entity back to its flow as `actor` (the console's Retry);
/// an empty list when it has none.
pub fn retry_entity(
    store: &dyn Store,
    flow: &str,
    source_id: &str,
    actor: &str,
) -> Result<Vec<EntityRecord>, ActionError> {
    let ids: Vec<i64> = store
        .dead_letters_of(flow, source_id)?
        .iter()
        .map(|d| d.id)
        .collect();
    Ok(requeue(store, &ids, actor)?
        .requeued
        .into_iter()
        .map(|(_, record)| record)
        .collect())
}

/// What [`request_return`] queued.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnRequested {
    /// The return entity (flow `return`, keyed by the basket id).
    pub record: EntityRecord,
    /// The Norce order number.
    pub order_no: String,
    /// The return product that will be booked.
    pub service_id: String,
    /// It was queued already (nothing new was queued).
    pub already_queued: bool,
}

/// Queues a return label for `order` (the Norce order number, or the basket id) as `actor`
/// (`relay return`, the console's **Book return label**): an entity of the flow `return`
/// booked by the next shipping pass, its creation in the audit log. `service` overrides the
/// delivery method's `return_service`. Refused with the reason when relay does not know the
/// order, it is not booked yet, it has a return already, or no return service is mapped.
pub fn request_return(
    store: &dyn Store,
    config: &RelayConfig,
    order: &str,
    service: Option<&str>,
    actor: &str,
) -> Result<ReturnRequested, ActionError> {
    use crate::flows::shipping::{RETURN_FLOW, ReturnRefused, prepare_return};
    let request = prepare_return(store, config, order, service).map_err(|e| match e {
        ReturnRefused::State(e) => ActionError::State(e),
        other => ActionError::Invalid(other.to_string()),
    })?;
    let existing = store.get(RETURN_FLOW, &request.source_id)?;
    let record = match existing {
        Some(record) if request.already_queued => record,
        Some(record) if record.status == crate::state::Status::Failed => {
            return Err(ActionError::Invalid(format!(
                "the return of order {} failed before ({}): retry it (`relay replay` with its dead-letter id, or Retry in the console)",
                request.order_no,
                record.last_error.as_deref().unwrap_or("see its history")
            )));
        }
        Some(record) => {
            return Err(ActionError::Invalid(format!(
                "a return of order {} was asked for before and is {} (step {}); see its history",
                request.order_no,
                record.status.as_str(),
                record.step.as_deref().unwrap_or("none")
            )));
        }
        None => {
            let detail = format!("return label requested (service {})", request.service_id);
            let created = store.create_by(
                RETURN_FLOW,
                &request.source_id,
                &request.payload,
                actor,
                &detail,
            )?;
            match created {
                Some(record) => record,
                // Queued by someone else in between: theirs stands.
                None => store
                    .get(RETURN_FLOW, &request.source_id)?
                    .ok_or_else(|| ActionError::Invalid("the return entity vanished".to_owned()))?,
            }
        }
    };
    Ok(ReturnRequested {
        already_queued: request.already_queued,
        record,
        order_no: request.order_no,
        service_id: request.service_id,
    })
}

/// Closes an entity as resolved by `actor`, with `reason` (required: it is what the next
/// operator reads in the history).
pub fn resolve(
    store: &dyn Store,
    flow: &str,
    source_id: &str,
    actor: &str,
    reason: &str,
) -> Result<EntityRecord, ActionError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ActionError::Invalid(
            "a reason is required to mark an item resolved: say what was done instead (it is kept in the item's history)".to_owned(),
        ));
    }
    store
        .resolve(flow, source_id, actor, reason)?
        .ok_or_else(|| ActionError::Invalid(format!("no item `{source_id}` in flow `{flow}`")))
}

/// What [`refund`] queued.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundQueued {
    /// The refund entity (flow `refund`, keyed `{orderNo}-R{n}`: the sales credit's
    /// `externalRef`).
    pub record: EntityRecord,
    /// What is refunded, in words (also in the audit log).
    pub summary: String,
}

/// Queues a refund of the Norce order `order_no` as `actor` (`relay refund`, the console's
/// **Refund**): checked against what relay holds (the order imported and its Brightpearl sales
/// order created, the SKUs on the order, at most what earlier refunds left), then an entity of
/// the flow `refund` that the next `orders` pass turns into one Brightpearl sales credit (and
/// puts the stock back when asked). Its creation, with what is refunded and why, is in the
/// audit log. Refused with the reason otherwise; nothing is queued then.
pub fn refund(
    store: &dyn Store,
    config: &RelayConfig,
    order_no: &str,
    request: &crate::flows::orders::RefundRequest,
    actor: &str,
) -> Result<RefundQueued, ActionError> {
    use crate::flows::orders::{REFUND_FLOW, RefundRefused, plan_refund};
    // Two operators refunding the same order at once plan the same number: the second
    // insert finds the key taken and plans again (against the first refund).
    for _ in 0..3 {
        let planned =
            plan_refund(store, &config.orders, order_no, request).map_err(|e| match e {
                RefundRefused::State(e) => ActionError::State(e),
                other => ActionError::Invalid(other.to_string()),
            })?;
        if let Some(record) = store.create_by(
            REFUND_FLOW,
            &planned.key,
            &planned.payload,
            actor,
            &planned.summary,
        )? {
            tracing::info!(
                key = planned.key,
                actor,
                summary = planned.summary,
                "refund queued"
            );
            return Ok(RefundQueued {
                record,
                summary: planned.summary,
            });
        }
    }
    Err(ActionError::Invalid(format!(
        "order {order_no} is being refunded by someone else right now; look at its refunds and try again"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SqliteStore;

    fn config(text: &str) -> RelayConfig {
        RelayConfig::parse(text, "relay.toml").unwrap()
    }

    #[test]
    fn the_floor_is_the_flows_go_live_cutoff() {
        let both = config(
            "[orders]\nsince = \"2026-12-01\"\n[shipping]\nsince = \"2026-11-15T00:00:00Z\"\n",
        );
        let orders = CursorFloor::of(&both, "orders").unwrap();
        assert_eq!(
            (orders.setting, orders.since_text().as_str()),
            ("orders.since", "2026-12-01T00:00:00Z")
        );
        let shipping = CursorFloor::of(&both, "shipping").unwrap();
        assert_eq!(shipping.setting, "shipping.since");
        for flow in ["stock", "prices", "fulfilment", "shipping-alerts", "nope"] {
            assert_eq!(CursorFloor::of(&both, flow), None, "{flow}");
        }
        assert_eq!(CursorFloor::of(&RelayConfig::default(), "orders"), None);
    }

    #[test]
    fn a_time_before_the_cutoff_is_refused_unless_forced() {
        let config = config("[orders]\nsince = \"2026-12-01\"\n");
        let floor = CursorFloor::of(&config, "orders");
        let floor = floor.as_ref();
        let err = cursor_value("orders", "2026-11-30T23:59:59Z", floor, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`orders.since`")
                && err.contains("2026-12-01T00:00:00Z")
                && err.contains("--force")
                && err.contains("never imported"),
            "{err}"
        );
        // Offsets are compared as instants: 00:30+01:00 is 23:30 UTC the day before.
        assert!(cursor_value("orders", "2026-12-01T00:30:00+01:00", floor, false).is_err());
        assert_eq!(
            cursor_value("orders", "2026-11-30T00:00:00Z", floor, true).unwrap(),
            "2026-11-30T00:00:00Z",
            "forced"
        );
        assert_eq!(
            cursor_value("orders", "2026-12-01T00:00:00Z", floor, false).unwrap(),
            "2026-12-01T00:00:00Z",
            "the cutoff itself is allowed"
        );
        assert!(cursor_value("orders", "2026-12-05T00:00:00Z", floor, false).is_ok());
        // Other checks come first: a bad time is a bad time, forced or not.
        let err = cursor_value("orders", "monday", floor, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn set_cursor_keeps_the_cursor_when_refused_and_moves_it_when_forced() {
        let store = SqliteStore::in_memory().unwrap();
        let config = config("[shipping]\nsince = \"2026-12-01\"\n");
        let floor = CursorFloor::of(&config, "shipping");
        set_cursor(
            &store,
            "shipping",
            "2026-12-03T00:00:00Z",
            CLI_ACTOR,
            floor.as_ref(),
            false,
        )
        .unwrap();
        let err = set_cursor(
            &store,
            "shipping",
            "2026-11-01T00:00:00Z",
            CLI_ACTOR,
            floor.as_ref(),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`shipping.since`")
                && err.contains("never booked")
                && err.contains("--force"),
            "{err}"
        );
        assert_eq!(
            store.cursor("shipping").unwrap().as_deref(),
            Some("2026-12-03T00:00:00Z"),
            "refused: unchanged"
        );
        let change = set_cursor(
            &store,
            "shipping",
            "2026-11-01T00:00:00Z",
            CLI_ACTOR,
            floor.as_ref(),
            true,
        )
        .unwrap();
        assert_eq!(
            (change.before.as_deref(), change.after.as_str()),
            (Some("2026-12-03T00:00:00Z"), "2026-11-01T00:00:00Z")
        );
        // Without a configured cutoff nothing is refused.
        set_cursor(
            &store,
            "shipping",
            "2020-01-01T00:00:00Z",
            CLI_ACTOR,
            None,
            false,
        )
        .unwrap();
    }
}
