//! The one per-item decision: what becomes of an item whose attempt did not finish.
//!
//! Every flow reports an unfinished attempt as an `ItemError`: a failure with its
//! [`ErrorKind`] (a platform call's own `kind()`, or the kind the flow gives its own check), an
//! item that must wait, one that is not the flow's to process, or an error that stops the pass.
//! [`decide`] turns a failure's kind into an [`Action`] (as kube-runtime's controller returns an
//! `Action` per object), and `settle` records it. No flow classifies errors on its own, so a
//! Norce 4xx means the same thing in `shipping`, `orders` and `fulfilment`.
//!
//! | kind | action |
//! | --- | --- |
//! | `transient` | retry later (counts an attempt; dead letter after `run.max_attempts`) |
//! | `ambiguous_write` | retry later, like `transient`: every write step searches the target before it writes again (nShift `book_once`, Brightpearl `externalRef`, the Norce order's delivery notes), so the retry reconciles first |
//! | `throttled` | wait: kept pending without counting an attempt (the platform asked us to slow down; the item is not at fault) |
//! | `permanent` | dead letter now (it would fail the same way; fix, then `relay replay`) |
//! | `unauthorized` | stop the pass: no item can succeed until the credentials are fixed; the item is left as it is |

use client_core::ErrorKind;

use super::context::{FlowContext, FlowError, Outcome};
use crate::state::{EntityUpdate, StateError, Status};

/// What becomes of an item whose attempt did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Kept pending and tried again on a later pass; the attempt counts toward
    /// `run.max_attempts`.
    RetryLater,
    /// Kept pending as it is, without counting an attempt: something else must happen first
    /// (a throttle to pass, another flow to finish, the order to reach a qualifying status).
    Wait,
    /// Filed in the dead letters now: it fails the same way until someone fixes something
    /// (the order, the mapping, the configuration), then `relay replay` takes it again.
    DeadLetter,
    /// Not this flow's to process: recorded as skipped and never touched again.
    Skip,
    /// The pass stops: no item can succeed (credentials refused, a licence missing). The item
    /// is left as it is.
    StopPass,
}

impl Action {
    /// A short lower-case name for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::RetryLater => "retry_later",
            Action::Wait => "wait",
            Action::DeadLetter => "dead_letter",
            Action::Skip => "skip",
            Action::StopPass => "stop_pass",
        }
    }
}

/// The action for a failed attempt of the given `kind`; `attempt` is this attempt's number
/// (1 for the first) and `max_attempts` is `run.max_attempts`.
///
/// ```
/// use client_core::ErrorKind;
/// use relay::flows::action::{Action, decide};
/// assert_eq!(decide(ErrorKind::Transient, 1, 5), Action::RetryLater);
/// assert_eq!(decide(ErrorKind::Transient, 5, 5), Action::DeadLetter);
/// assert_eq!(decide(ErrorKind::AmbiguousWrite, 2, 5), Action::RetryLater);
/// assert_eq!(decide(ErrorKind::Throttled, 9, 5), Action::Wait);
/// assert_eq!(decide(ErrorKind::Permanent, 1, 5), Action::DeadLetter);
/// assert_eq!(decide(ErrorKind::Unauthorized, 1, 5), Action::StopPass);
/// ```
pub fn decide(kind: ErrorKind, attempt: u32, max_attempts: u32) -> Action {
    match kind {
        ErrorKind::Throttled => Action::Wait,
        ErrorKind::Permanent => Action::DeadLetter,
        ErrorKind::Unauthorized => Action::StopPass,
        // Transient, AmbiguousWrite (the write steps reconcile before writing again), and any
        // kind added later: retried, within the attempt limit.
        _ if attempt >= max_attempts => Action::DeadLetter,
        _ => Action::RetryLater,
    }
}

/// Why one item's attempt ended before the item was finished.
#[derive(Debug)]
pub(crate) enum ItemError {
    /// The attempt failed. `kind` decides what follows ([`decide`]); `reason` is recorded on
    /// the entity (and the dead letter); `error` is the platform error, returned when the pass
    /// must stop.
    Failed {
        /// The shared classification.
        kind: ErrorKind,
        /// What failed, and what to do about it.
        reason: String,
        /// The error that stops the pass when `kind` says so (boxed: client errors are large
        /// and an item's error travels through every step's `Result`).
        error: Option<Box<FlowError>>,
    },
    /// The item cannot go on yet; it is left as it is, without counting an attempt.
    Wait(String),
    /// The item is not the flow's to process; it is recorded as skipped.
    Skip(String),
    /// The pass cannot go on (the state store, the label folder, a flow setting).
    Stop(Box<FlowError>),
}

impl ItemError {
    /// A failure of the flow's own check that will not change by itself (missing data, an
    /// unmapped value): dead-lettered with `reason`.
    pub(crate) fn permanent(reason: impl Into<String>) -> Self {
        Self::Failed {
            kind: ErrorKind::Permanent,
            reason: reason.into(),
            error: None,
        }
    }

    /// A failure of the flow's own check that a later pass may not see (a platform not caught
    /// up yet): retried within the attempt limit.
    pub(crate) fn transient(reason: impl Into<String>) -> Self {
        Self::Failed {
            kind: ErrorKind::Transient,
            reason: reason.into(),
            error: None,
        }
    }

    /// A failed platform call: `what` names the call; the decision follows from the error's
    /// kind. Errors without a kind (the store, a file) stop the pass.
    pub(crate) fn call(what: &str, error: impl Into<FlowError>) -> Self {
        let error = error.into();
        match error.kind() {
            Some(kind) => Self::Failed {
                kind,
                reason: if what.is_empty() {
                    error.to_string()
                } else {
                    format!("{what}: {error}")
                },
                error: Some(Box::new(error)),
            },
            None => Self::Stop(Box::new(error)),
        }
    }

    /// The kind of a failure (`None` for a wait, a skip or a stop).
    pub(crate) fn kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Failed { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl From<FlowError> for ItemError {
    fn from(error: FlowError) -> Self {
        Self::call("", error)
    }
}

impl From<StateError> for ItemError {
    fn from(error: StateError) -> Self {
        Self::Stop(Box::new(error.into()))
    }
}

impl From<norce_client::Error> for ItemError {
    fn from(error: norce_client::Error) -> Self {
        // The error says its platform already ("Norce: …").
        Self::call("", error)
    }
}

impl From<nshift_client::Error> for ItemError {
    fn from(error: nshift_client::Error) -> Self {
        // The error says its platform already ("Norce: …").
        Self::call("", error)
    }
}

impl From<brightpearl_client::Error> for ItemError {
    fn from(error: brightpearl_client::Error) -> Self {
        // The error says its platform already ("Norce: …").
        Self::call("", error)
    }
}

/// What [`apply`] did with an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The action taken.
    pub action: Action,
    /// The attempt it was (failures only; 0 otherwise).
    pub attempt: u32,
}

/// Decides what becomes of the item `source_id` of `flow` after `error`, and records it: a
/// failed attempt (kept pending or dead-lettered), a skip, or nothing (a wait). Returns the
/// action, or the error that stops the pass.
pub(crate) fn apply(
    ctx: &FlowContext,
    flow: &str,
    source_id: &str,
    error: ItemError,
) -> Result<Applied, FlowError> {
    match error {
        ItemError::Stop(error) => Err(*error),
        ItemError::Wait(reason) => {
            tracing::info!(
                flow,
                source_id,
                reason,
                "waiting; tried again on a later pass"
            );
            Ok(Applied {
                action: Action::Wait,
                attempt: 0,
            })
        }
        ItemError::Skip(reason) => {
            tracing::info!(flow, source_id, reason, "skipped");
            ctx.store.update(
                flow,
                source_id,
                &EntityUpdate {
                    status: Some(Status::Skipped),
                    step: Some(format!("skipped: {reason}")),
                    clear_error: true,
                    ..EntityUpdate::default()
                },
            )?;
            Ok(Applied {
                action: Action::Skip,
                attempt: 0,
            })
        }
        ItemError::Failed {
            kind,
            reason,
            error,
        } => {
            let attempt = ctx
                .store
                .get(flow, source_id)?
                .map_or(1, |r| r.attempts.saturating_add(1));
            let action = decide(kind, attempt, ctx.config.run.max_attempts);
            record(ctx, flow, source_id, kind, &reason, &action, attempt)?;
            if action == Action::StopPass {
                return Err(error.map_or_else(
                    || FlowError::Item {
                        kind: kind.as_str(),
                        reason,
                    },
                    |e| *e,
                ));
            }
            Ok(Applied { action, attempt })
        }
    }
}

/// Records a failed attempt in the store as `action` says.
fn record(
    ctx: &FlowContext,
    flow: &str,
    source_id: &str,
    kind: ErrorKind,
    reason: &str,
    action: &Action,
    attempt: u32,
) -> Result<(), StateError> {
    match action {
        Action::RetryLater | Action::DeadLetter => {
            ctx.store.record_failure(flow, source_id, reason)?;
            tracing::warn!(
                flow,
                source_id,
                attempt,
                kind = kind.as_str(),
                action = action.as_str(),
                error = reason,
                "item failed"
            );
            if *action == Action::DeadLetter {
                ctx.store.dead_letter(flow, source_id, reason)?;
            }
        }
        Action::Wait => {
            tracing::info!(
                flow,
                source_id,
                kind = kind.as_str(),
                reason,
                "throttled; the item waits for a later pass"
            );
        }
        Action::StopPass => {
            tracing::warn!(
                flow,
                source_id,
                kind = kind.as_str(),
                error = reason,
                "the pass stops: no item can succeed until this is fixed; the item is left as it is"
            );
        }
        Action::Skip => {}
    }
    Ok(())
}

/// The outcome of one item: its own when it finished, else what [`apply`] made of the error
/// (a failed attempt counts as `failed`, a skip as `skipped`).
pub(crate) fn settle(
    ctx: &FlowContext,
    flow: &str,
    source_id: &str,
    result: Result<Outcome, ItemError>,
) -> Result<Outcome, FlowError> {
    let error = match result {
        Ok(outcome) => return Ok(outcome),
        Err(error) => error,
    };
    let applied = apply(ctx, flow, source_id, error)?;
    Ok(outcome_of(&applied.action))
}

/// How an action counts in the pass's report.
pub(crate) fn outcome_of(action: &Action) -> Outcome {
    Outcome {
        failed: matches!(action, Action::RetryLater | Action::DeadLetter),
        skipped: *action == Action::Skip,
        ..Outcome::default()
    }
}

/// Files a failed item in the dead letters at once (an item no pass can process: an unreadable
/// push, a source id that names nothing). Unlike [`apply`], needs no attempt.
pub(crate) fn dead_letter_now(
    ctx: &FlowContext,
    flow: &str,
    source_id: &str,
    reason: &str,
) -> Result<(), FlowError> {
    apply(ctx, flow, source_id, ItemError::permanent(reason)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayConfig;

    #[test]
    fn one_decision_per_kind() {
        for attempt in 1..5 {
            assert_eq!(decide(ErrorKind::Transient, attempt, 5), Action::RetryLater);
            assert_eq!(
                decide(ErrorKind::AmbiguousWrite, attempt, 5),
                Action::RetryLater
            );
        }
        assert_eq!(decide(ErrorKind::AmbiguousWrite, 5, 5), Action::DeadLetter);
        assert_eq!(decide(ErrorKind::Throttled, 50, 5), Action::Wait);
        assert_eq!(decide(ErrorKind::Permanent, 1, 5), Action::DeadLetter);
        assert_eq!(decide(ErrorKind::Unauthorized, 1, 5), Action::StopPass);
    }

    #[test]
    fn failures_are_recorded_as_decided() {
        let ctx = FlowContext::offline(RelayConfig::default());
        ctx.store.upsert_pending("f", "a", None).unwrap();
        for n in 1..=4 {
            let applied = apply(&ctx, "f", "a", ItemError::transient("503")).unwrap();
            assert_eq!((applied.action, applied.attempt), (Action::RetryLater, n));
        }
        let applied = apply(&ctx, "f", "a", ItemError::transient("503")).unwrap();
        assert_eq!(applied.action, Action::DeadLetter, "the fifth of five");
        assert_eq!(ctx.store.dead_letters().unwrap().len(), 1);

        ctx.store.upsert_pending("f", "b", None).unwrap();
        let throttled = ItemError::Failed {
            kind: ErrorKind::Throttled,
            reason: "429".into(),
            error: None,
        };
        assert_eq!(
            apply(&ctx, "f", "b", throttled).unwrap().action,
            Action::Wait
        );
        let b = ctx.store.get("f", "b").unwrap().unwrap();
        assert_eq!(
            (b.status, b.attempts),
            (Status::Pending, 0),
            "no attempt counted"
        );

        let refused = ItemError::Failed {
            kind: ErrorKind::Unauthorized,
            reason: "401".into(),
            error: None,
        };
        let err = apply(&ctx, "f", "b", refused).unwrap_err().to_string();
        assert!(err.contains("401"), "{err}");
        assert_eq!(ctx.store.get("f", "b").unwrap().unwrap().attempts, 0);

        assert_eq!(
            apply(&ctx, "f", "b", ItemError::Skip("not ours".into()))
                .unwrap()
                .action,
            Action::Skip
        );
        assert_eq!(
            ctx.store.get("f", "b").unwrap().unwrap().status,
            Status::Skipped
        );
    }
}
