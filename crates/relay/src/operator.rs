//! What an operator does to the state, from `relay replay` / `relay cursor set` or from the
//! console: one implementation, so both change the state the same way and both are recorded in
//! the audit log with who did it.

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

/// The cursor value `text` means for `flow`, normalised as it is stored: an RFC 3339 time
/// (seconds), or for `shipping-alerts` a position in nShift's alerts feed (a `fetchId`).
pub fn cursor_value(flow: &str, text: &str) -> Result<String, ActionError> {
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
    parse_time_cursor(flow, text.trim())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .map_err(ActionError::Invalid)
}

/// What [`set_cursor`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorChange {
    /// The value before (`None`: unset).
    pub before: Option<String>,
    /// The value now.
    pub after: String,
}

/// Sets `flow`'s cursor to `text` (checked by [`cursor_value`]) as `actor`.
pub fn set_cursor(
    store: &dyn Store,
    flow: &str,
    text: &str,
    actor: &str,
) -> Result<CursorChange, ActionError> {
    let after = cursor_value(flow, text)?;
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
