//! The store's contract and types, shared by both backends (the bottom module of `state`).
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

/// A state operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// SQLite refused or failed.
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed, or could not be reached: the operation and the
    /// database's own message (never the connection's password).
    #[error("state database error (PostgreSQL): {0}")]
    Postgres(String),
    /// The database was written by a newer version of relay: this one would misread it.
    #[error(
        "the state database has layout version {found}, newer than the {supported} this relay knows: \
         run the newer relay, or point `[state] url` / the data folder at another database"
    )]
    NewerSchema {
        /// The layout the database has.
        found: i64,
        /// The newest this version writes.
        supported: i64,
    },
    /// The store does not offer this operation (a test double).
    #[error("this state store does not support `{0}`")]
    Unsupported(String),
    /// The data folder could not be created.
    #[error("cannot create the data folder `{path}`: {source}")]
    DataDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Where an entity is in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Seen, not finished; the `step` says how far it got.
    Pending,
    /// Every step done.
    Done,
    /// Gave up after the attempt limit or a permanent error; in the dead letters.
    Failed,
    /// Deliberately not processed (filtered by the mapping, e.g. a pickup-in-store order).
    Skipped,
    /// Closed by an operator ([`Store::resolve`], with a reason in its history): the flows leave
    /// it as they leave a done one.
    Resolved,
}

impl Status {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Resolved => "resolved",
        }
    }

    /// Every status, in the order pages list them.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Done,
        Status::Failed,
        Status::Skipped,
        Status::Resolved,
    ];

    /// The status named `text` (as [`Status::as_str`] writes it), if any.
    pub fn from_name(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the flows are finished with it (done, skipped, or resolved by an operator).
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Done | Status::Skipped | Status::Resolved)
    }

    pub(super) fn parse(text: &str) -> Status {
        match text {
            "done" => Status::Done,
            "failed" => Status::Failed,
            "skipped" => Status::Skipped,
            "resolved" => Status::Resolved,
            _ => Status::Pending,
        }
    }
}

/// The record of one source entity in one flow (source id ↔ target id).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityRecord {
    /// Flow name (`shipping`, `stock`, `prices`, `orders`, `fulfilment`).
    pub flow: String,
    /// Id in the source platform (a Norce order number, a Brightpearl product id, ...).
    pub source_id: String,
    /// Id in the target platform once known (an nShift shipment id, a Brightpearl order id, ...).
    pub target_id: Option<String>,
    /// Where it is.
    pub status: Status,
    /// The last step completed (flow-specific, e.g. `booked`, `labels_saved`, `written_back`).
    pub step: Option<String>,
    /// Attempts that failed so far.
    pub attempts: u32,
    /// The last error, if any (never contains a secret: errors come from the clients).
    pub last_error: Option<String>,
    /// The last payload, as JSON text, for replay and inspection.
    pub payload: Option<String>,
    /// When the record last changed (RFC 3339).
    pub updated_at: String,
    /// Where the record stands in the order of creation (increasing, never reused); pages of
    /// [`Store::list_after`] continue from the last one seen.
    pub position: u64,
}

/// A change to an entity record; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityUpdate {
    /// New status.
    pub status: Option<Status>,
    /// New step.
    pub step: Option<String>,
    /// Target id.
    pub target_id: Option<String>,
    /// Payload (JSON text).
    pub payload: Option<String>,
    /// Clear `last_error` (after a success).
    pub clear_error: bool,
}

/// A part of the inbox that one reader drains, so that a burst in one part (a storm of
/// Brightpearl webhooks) cannot hold back the other (Norce's orders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxLane {
    /// Items of these sources.
    Of(&'static [&'static str]),
    /// Items of every other source.
    Except(&'static [&'static str]),
}

impl InboxLane {
    /// Whether an item of `source` belongs to the lane.
    pub fn contains(self, source: &str) -> bool {
        match self {
            Self::Of(sources) => sources.contains(&source),
            Self::Except(sources) => !sources.contains(&source),
        }
    }
}

/// What the receivers accepted and the flows have not processed yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxItem {
    /// Row id.
    pub id: i64,
    /// Which receiver (`norce-order`, `norce-event`, `brightpearl-webhook`).
    pub source: String,
    /// Deduplication key (an order number, a webhook id set with its event).
    pub key: String,
    /// The body as received.
    pub body: String,
    /// When it arrived (RFC 3339).
    pub received_at: String,
}

/// Result of putting an item into the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxPut {
    /// New row (no unprocessed row had the same source and key).
    Inserted(i64),
    /// The same (source, key) is already there, unprocessed, with the same body: nothing added.
    Duplicate(i64),
    /// The same (source, key) was queued with another body: the new body is a new row, the one
    /// the flows read, and the older row is marked superseded by it (kept for
    /// [`Store::inbox_history`] until pruned).
    Updated {
        /// The new row.
        id: i64,
        /// Its version: 1 + the highest version the key has in the inbox.
        version: u32,
        /// The row it superseded.
        superseded: i64,
    },
}

impl InboxPut {
    /// The row now queued for the key.
    pub fn id(self) -> i64 {
        match self {
            InboxPut::Inserted(id) | InboxPut::Duplicate(id) | InboxPut::Updated { id, .. } => id,
        }
    }
}

/// One version of an inbox key ([`Store::inbox_history`]): what an operator needs to see that a
/// newer push superseded an older one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxVersion {
    /// Row id.
    pub id: i64,
    /// 1 for the first body of the key still in the inbox, +1 for each later one.
    pub version: u32,
    /// The body as received (personal data: show it, never log it).
    pub body: String,
    /// When it arrived (RFC 3339).
    pub received_at: String,
    /// When it left the queue (processed, or superseded), if it did.
    pub processed_at: Option<String>,
    /// The row of the newer version that replaced this one before it was processed.
    pub superseded_by: Option<i64>,
}

/// How much finished state [`Store::prune`] keeps. Unfinished work is never pruned: unprocessed
/// inbox rows, pending and failed entities, and dead letters (kept until requeued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Processed inbox rows processed longer ago, payloads of finished (done or skipped)
    /// entities unchanged for longer, and the flows' entries in the entities' history recorded
    /// longer ago are pruned; hourly outcomes are kept this long, and 48 hours at least. The
    /// operators' entries (the audit log) are kept.
    pub max_age: TimeDelta,
    /// Processed inbox rows kept at most (the most recently processed), repeat deliveries
    /// included.
    pub max_processed_inbox_rows: u64,
    /// Finished entities per flow that keep their payload at most (the most recently changed).
    pub max_finished_payloads_per_flow: u64,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            max_age: TimeDelta::days(30),
            max_processed_inbox_rows: 10_000,
            max_finished_payloads_per_flow: 100_000,
        }
    }
}

/// What one [`Store::prune`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Processed inbox rows deleted.
    pub inbox_rows_deleted: u64,
    /// Payloads of finished entities cleared (the records themselves stay).
    pub payloads_cleared: u64,
    /// Write transactions that changed rows (each at most `batch` of them).
    pub batches: u64,
    /// Free pages given back to the file system.
    pub pages_reclaimed: u64,
    /// Whether the file was rewritten (`VACUUM`: once, to turn incremental vacuum on in a file
    /// created before it).
    pub vacuumed: bool,
}

/// The size of the state ([`SqliteStore::size`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateSize {
    /// `state.sqlite` on disk (in memory: the pages in use).
    pub file_bytes: u64,
    /// Its write-ahead log on disk (`state.sqlite-wal`; 0 when absent).
    pub wal_bytes: u64,
    /// Free pages inside the file, reused by later writes or reclaimed by the next prune.
    pub free_bytes: u64,
    /// Inbox rows, processed ones included.
    pub inbox_rows: u64,
    /// Of which unprocessed.
    pub inbox_pending: u64,
    /// Entity records.
    pub entities: u64,
    /// Of which still holding a payload.
    pub entity_payloads: u64,
    /// Dead letters.
    pub dead_letters: u64,
}

/// An entity the flows gave up on, with what is needed to replay it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    /// Row id.
    pub id: i64,
    /// Flow.
    pub flow: String,
    /// Source id.
    pub source_id: String,
    /// Why it failed.
    pub error: String,
    /// Payload at the time (JSON text).
    pub payload: Option<String>,
    /// When (RFC 3339).
    pub created_at: String,
}

/// One entry of a lookup map ([`Store::lookup_get`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The key (e.g. a SKU).
    pub key: String,
    /// The value (e.g. a product id).
    pub value: String,
    /// When it was last set (RFC 3339), for an age limit.
    pub updated_at: String,
}

/// A value several workers share through the store ([`Store::shared_get`]): an access token,
/// a rotating token pair. Its text is a secret: `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedValue {
    /// The value (a token, or a token pair as JSON).
    pub value: String,
    /// When it stops being usable, if it does.
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SharedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedValue")
            .field("value", &models_runtime::redact::REDACTED)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A lease held on the store ([`Store::leases`]): who works on what, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// What is leased (`entity/shipping/1234`, `poll/shipping`, `token/...`).
    pub name: String,
    /// The worker holding it.
    pub holder: String,
    /// When it runs out unless renewed (RFC 3339).
    pub expires_at: String,
}

/// What an entry of an entity's history records ([`Store::events`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The record was created (`upsert_pending` of a new id).
    Created,
    /// A step was recorded, or the status changed (`update`).
    Step,
    /// An attempt failed (`record_failure`); `detail` is the error.
    AttemptFailed,
    /// The flows gave up (`dead_letter`); `detail` is the error.
    DeadLettered,
    /// It was sent back to the flows (`requeue_by` by an operator; `requeue` without an
    /// actor); `detail` names the dead letter (`dead letter 12`).
    Requeued,
    /// An operator closed it (`resolve`); `detail` is the reason.
    Resolved,
    /// An operator set the flow's cursor (`set_cursor_by`); `detail` is `before -> after`
    /// (`(unset)` before the first), `source_id` is empty.
    CursorSet,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 7] = [
        EventKind::Created,
        EventKind::Step,
        EventKind::AttemptFailed,
        EventKind::DeadLettered,
        EventKind::Requeued,
        EventKind::Resolved,
        EventKind::CursorSet,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Step => "step",
            EventKind::AttemptFailed => "attempt_failed",
            EventKind::DeadLettered => "dead_lettered",
            EventKind::Requeued => "requeued",
            EventKind::Resolved => "resolved",
            EventKind::CursorSet => "cursor_set",
        }
    }

    /// The kind named `text`, if any.
    pub fn from_name(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One entry of an entity's history, or an operator's action on a flow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntityEvent {
    /// Row id (increasing).
    pub id: i64,
    /// Flow.
    pub flow: String,
    /// The entity's source id; empty for an action on the flow itself (a cursor set).
    pub source_id: String,
    /// When (RFC 3339, the store's clock).
    pub at: String,
    /// What.
    pub kind: EventKind,
    /// The step recorded, if any.
    pub step: Option<String>,
    /// The status after the event, if it is about the entity.
    pub status: Option<Status>,
    /// The error, the reason, or the cursor change.
    pub detail: Option<String>,
    /// Who did it: `None` for the flows; for an operator's action the actor given to the
    /// store (`console:<session>`, `cli`). Rows with an actor are the audit log.
    pub actor: Option<String>,
}

/// Which entity records [`Store::search`] lists: every filter given must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityQuery {
    /// Only this flow.
    pub flow: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// An id on any platform: the source id, the target id, an alias of the source id (an
    /// order number a tracking event carries), or a lookup key whose value is the source id (a
    /// SKU of a Brightpearl product). Exact match.
    pub reference: Option<String>,
    /// Only records changed at or after this time.
    pub updated_from: Option<DateTime<Utc>>,
    /// Only records changed before this time.
    pub updated_to: Option<DateTime<Utc>>,
    /// Only records created before the one at this position (the last of the previous page);
    /// `None`: from the newest.
    pub before: Option<u64>,
    /// At most this many records (newest first).
    pub limit: usize,
}

/// What a status change counts as in [`Store::hourly_outcomes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// An entity became done (an order shipped, a stock level written).
    Done,
    /// An entity was dead-lettered.
    Failed,
    /// An attempt failed (the entity may still succeed).
    AttemptFailed,
}

impl Outcome {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
            Outcome::AttemptFailed => "attempt_failed",
        }
    }

    /// The outcome named `text`, if any.
    pub fn from_name(text: &str) -> Option<Outcome> {
        [Outcome::Done, Outcome::Failed, Outcome::AttemptFailed]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

/// How many entities of a flow had an outcome in one hour ([`Store::hourly_outcomes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourlyOutcome {
    /// The start of the hour, UTC (`2026-12-03T14:00:00Z`).
    pub hour: String,
    /// Flow.
    pub flow: String,
    /// What happened.
    pub outcome: Outcome,
    /// How many times.
    pub count: u64,
}

/// The start of the hour `time` falls in, as [`HourlyOutcome::hour`] writes it.
pub fn hour_of(time: DateTime<Utc>) -> String {
    use chrono::Timelike as _;
    let start = time
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(time);
    start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The error of an operation a store does not support (a test double's default).
pub fn unsupported(operation: &str) -> StateError {
    StateError::Unsupported(operation.to_owned())
}

/// The GCRA state of one shared rate limit, as [`Store::rate_reserve`] computes it: a
/// reservation waits until `max(tat, now) − (burst − 1)·period`, then moves `tat` one
/// `period` on. The same arithmetic as governor's, kept in one row.
pub(crate) fn gcra_reserve(
    tat_us: i64,
    paused_until_us: i64,
    now_us: i64,
    period_us: i64,
    burst: u32,
) -> (i64, std::time::Duration) {
    let start = tat_us.max(now_us);
    let tolerance = period_us.saturating_mul(i64::from(burst.max(1)) - 1);
    let ready = (start - tolerance).max(paused_until_us);
    let wait_us = u64::try_from(ready - now_us).unwrap_or(0);
    (start + period_us, std::time::Duration::from_micros(wait_us))
}

/// Durable state behind the flows.
pub trait Store: Send + Sync {
    /// The record, creating it as `Pending` with `payload` if it does not exist.
    fn upsert_pending(
        &self,
        flow: &str,
        source_id: &str,
        payload: Option<&str>,
    ) -> Result<EntityRecord, StateError>;
    /// The record, if any.
    fn get(&self, flow: &str, source_id: &str) -> Result<Option<EntityRecord>, StateError>;
    /// Applies `update` and returns the new record.
    fn update(
        &self,
        flow: &str,
        source_id: &str,
        update: &EntityUpdate,
    ) -> Result<EntityRecord, StateError>;
    /// Counts a failed attempt and keeps its error.
    fn record_failure(
        &self,
        flow: &str,
        source_id: &str,
        error: &str,
    ) -> Result<EntityRecord, StateError>;
    /// Records of a flow (all flows when `None`) in a status (all when `None`), oldest first.
    fn list(
        &self,
        flow: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<EntityRecord>, StateError>;
    /// At most `limit` records of `flow` in `status` (any when `None`) created after the record at
    /// `after` (0: from the start), oldest first. Paging with the last record's `position` visits
    /// every record once, however many there are and whatever the pass does to them meanwhile.
    fn list_after(
        &self,
        flow: &str,
        status: Option<Status>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EntityRecord>, StateError>;
    /// (flow, status, count) for every combination present.
    fn counts(&self) -> Result<Vec<(String, Status, u64)>, StateError>;

    /// Records `alias` (another id the source entity is known by, e.g. the order number a
    /// tracking event carries) for `source_id`; a later call for the same alias moves it.
    fn set_alias(&self, flow: &str, alias: &str, source_id: &str) -> Result<(), StateError>;
    /// The source id recorded for `alias`, if any.
    fn find_alias(&self, flow: &str, alias: &str) -> Result<Option<String>, StateError>;

    /// Sets `key` → `value` in the lookup map `map` (e.g. SKU → Brightpearl product id), each
    /// stamped with the store's time, in one transaction. A store without lookups keeps this
    /// default, which records nothing (the flows then ask the platform every time).
    fn lookup_put(&self, map: &str, entries: &[(String, String)]) -> Result<(), StateError> {
        let _ = (map, entries);
        Ok(())
    }
    /// Replaces the whole map with `entries` in one transaction (a full read of the source).
    fn lookup_replace(&self, map: &str, entries: &[(String, String)]) -> Result<(), StateError> {
        let _ = (map, entries);
        Ok(())
    }
    /// The entries of `map` for these keys (absent keys are left out).
    fn lookup_get(&self, map: &str, keys: &[&str]) -> Result<Vec<Lookup>, StateError> {
        let _ = (map, keys);
        Ok(Vec::new())
    }
    /// Removes these keys from `map` (an entry found wrong).
    fn lookup_remove(&self, map: &str, keys: &[&str]) -> Result<(), StateError> {
        let _ = (map, keys);
        Ok(())
    }

    /// A flow's cursor.
    fn cursor(&self, flow: &str) -> Result<Option<String>, StateError>;
    /// Sets a flow's cursor (moving it back backfills).
    fn set_cursor(&self, flow: &str, value: &str) -> Result<(), StateError>;

    /// Stores a received item; the receiver answers 2xx only after this returns `Ok`. A key
    /// that is queued (unprocessed) with the same body is a [`InboxPut::Duplicate`]; with another
    /// body, the new body supersedes the queued one ([`InboxPut::Updated`]), so the flows read the
    /// newest. A key whose rows are all processed is queued anew.
    fn inbox_put(&self, source: &str, key: &str, body: &str) -> Result<InboxPut, StateError>;
    /// Every version of a key still in the inbox, oldest first (none for a store that keeps no
    /// history).
    fn inbox_history(&self, source: &str, key: &str) -> Result<Vec<InboxVersion>, StateError> {
        let _ = (source, key);
        Ok(Vec::new())
    }
    /// Unprocessed items, oldest first (a superseded version is not listed).
    fn inbox_pending(&self, limit: usize) -> Result<Vec<InboxItem>, StateError>;
    /// [`Store::inbox_pending`] of one lane: at most `limit` unprocessed items of its sources,
    /// oldest first.
    fn inbox_pending_in(
        &self,
        lane: InboxLane,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StateError> {
        Ok(self
            .inbox_pending(usize::MAX)?
            .into_iter()
            .filter(|item| lane.contains(&item.source))
            .take(limit)
            .collect())
    }
    /// How many items are unprocessed (what [`Store::inbox_pending`] would list without a limit).
    fn inbox_len(&self) -> Result<u64, StateError> {
        Ok(self.inbox_pending(usize::MAX)?.len() as u64)
    }
    /// Whether the item is still queued: not processed, nor superseded by a newer version since
    /// it was read (a store that never supersedes keeps this default).
    fn inbox_queued(&self, id: i64) -> Result<bool, StateError> {
        let _ = id;
        Ok(true)
    }
    /// Marks an item processed.
    fn inbox_done(&self, id: i64) -> Result<(), StateError>;

    /// Marks the entity failed and files a dead letter.
    fn dead_letter(
        &self,
        flow: &str,
        source_id: &str,
        error: &str,
    ) -> Result<DeadLetter, StateError>;
    /// Every dead letter, oldest first.
    fn dead_letters(&self) -> Result<Vec<DeadLetter>, StateError>;
    /// Removes a dead letter and sets its entity back to `Pending` with no attempts, for replay.
    fn requeue(&self, dead_letter_id: i64) -> Result<Option<EntityRecord>, StateError>;

    // The operator's view and actions (the console, `relay replay`, `relay cursor set`). The
    // backends record the history in the same transaction as the change it describes.

    /// The last `limit` entries of the history of `flow`/`source_id`, oldest first.
    fn events(
        &self,
        flow: &str,
        source_id: &str,
        limit: usize,
    ) -> Result<Vec<EntityEvent>, StateError> {
        let _ = (flow, source_id, limit);
        Err(unsupported("events"))
    }
    /// The last `limit` operator actions (entries with an actor), newest first.
    fn audit_log(&self, limit: usize) -> Result<Vec<EntityEvent>, StateError> {
        let _ = limit;
        Err(unsupported("audit_log"))
    }
    /// Entity records matching `query`, newest first (by creation), at most `query.limit`.
    fn search(&self, query: &EntityQuery) -> Result<Vec<EntityRecord>, StateError> {
        let _ = query;
        Err(unsupported("search"))
    }
    /// How many entities had each outcome per flow and hour, from the hour `since` falls in
    /// on, oldest hour first (hours without any are left out).
    fn hourly_outcomes(&self, since: DateTime<Utc>) -> Result<Vec<HourlyOutcome>, StateError> {
        let _ = since;
        Err(unsupported("hourly_outcomes"))
    }
    /// At most `limit` dead letters of `flow` (all flows when `None`) with an id above `after`,
    /// oldest first.
    fn dead_letters_page(
        &self,
        flow: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StateError> {
        Ok(self
            .dead_letters()?
            .into_iter()
            .filter(|d| d.id > after && flow.is_none_or(|f| d.flow == f))
            .take(limit)
            .collect())
    }
    /// The dead letters of one entity, oldest first.
    fn dead_letters_of(&self, flow: &str, source_id: &str) -> Result<Vec<DeadLetter>, StateError> {
        Ok(self
            .dead_letters()?
            .into_iter()
            .filter(|d| d.flow == flow && d.source_id == source_id)
            .collect())
    }
    /// Open dead letters per flow, by flow.
    fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StateError> {
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for letter in self.dead_letters()? {
            *counts.entry(letter.flow).or_default() += 1;
        }
        Ok(counts.into_iter().collect())
    }
    /// [`Store::requeue`] done by `actor` (recorded in the entity's history as `Requeued`).
    fn requeue_by(
        &self,
        dead_letter_id: i64,
        actor: &str,
    ) -> Result<Option<EntityRecord>, StateError> {
        let _ = actor;
        self.requeue(dead_letter_id)
    }
    /// Closes the entity as [`Status::Resolved`] by `actor` with `reason` (kept in its
    /// history) and removes its dead letters; `None` when there is no such entity.
    fn resolve(
        &self,
        flow: &str,
        source_id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<Option<EntityRecord>, StateError> {
        let _ = (flow, source_id, actor, reason);
        Err(unsupported("resolve"))
    }
    /// Creates `flow`/`source_id` as a new `Pending` entity with `payload`, asked for by `actor`
    /// (an operator's action, e.g. a refund): its `Created` history entry carries the actor and
    /// `detail`, so it is in the audit log. `None` when the entity exists already (nothing is
    /// changed).
    fn create_by(
        &self,
        flow: &str,
        source_id: &str,
        payload: &str,
        actor: &str,
        detail: &str,
    ) -> Result<Option<EntityRecord>, StateError> {
        let _ = (flow, source_id, payload, actor, detail);
        Err(unsupported("create_by"))
    }
    /// [`Store::set_cursor`] done by `actor` (recorded as `CursorSet`, `before -> after`);
    /// returns the value before.
    fn set_cursor_by(
        &self,
        flow: &str,
        value: &str,
        actor: &str,
    ) -> Result<Option<String>, StateError> {
        let _ = actor;
        let before = self.cursor(flow)?;
        self.set_cursor(flow, value)?;
        Ok(before)
    }

    /// The state's size: on disk and the rows per table.
    fn size(&self) -> Result<StateSize, StateError>;

    /// Whether processes on other machines may share this store (PostgreSQL): the clients
    /// then keep their tokens and rate budgets in it ([`crate::shared_auth`]). A store of one
    /// process (the SQLite file; the default) keeps them in the process.
    fn shared_across_processes(&self) -> bool {
        false
    }

    // Coordination of several workers on one store (several `relay serve` processes on one
    // PostgreSQL database, or on one SQLite file). Times come from the store's clock.

    /// Takes the lease `name` for `holder` for `ttl` from now. Granted (`true`) when nobody
    /// holds it, when its holder's lease ran out (a killed worker), or when `holder` already
    /// holds it (a renewal, which moves the expiry); `false` while another holder's lease runs.
    fn lease(&self, name: &str, holder: &str, ttl: std::time::Duration)
    -> Result<bool, StateError>;
    /// Ends `holder`'s lease on `name`; nothing when another holder has it.
    fn release(&self, name: &str, holder: &str) -> Result<(), StateError>;
    /// The leases that have not run out whose name starts with `prefix`, by name.
    fn leases(&self, prefix: &str) -> Result<Vec<Lease>, StateError>;

    /// The shared value `name`, if any (expired ones too: the caller decides).
    fn shared_get(&self, name: &str) -> Result<Option<SharedValue>, StateError>;
    /// Replaces the shared value `name` only if its current text is `expected` (`None`: only if
    /// there is none); `true` when it was replaced. A compare-and-swap, so two workers never
    /// both replace the same value (a rotating refresh token spent once).
    fn shared_swap(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &SharedValue,
    ) -> Result<bool, StateError>;
    /// Sets the shared value `name` whatever it was.
    fn shared_put(&self, name: &str, value: &SharedValue) -> Result<(), StateError>;

    /// Reserves one cell of the shared rate limit `key` (one cell per `period`, `burst` at
    /// once; see [`gcra_reserve`]) and returns how long the caller waits before using it
    /// (zero: at once). A pause set by [`Store::rate_pause`] delays every reservation until it
    /// ends.
    fn rate_reserve(
        &self,
        key: &str,
        period: std::time::Duration,
        burst: u32,
    ) -> Result<std::time::Duration, StateError>;
    /// Pauses the shared rate limit `key` until `until` (the platform said it is out of
    /// requests); an earlier pause is never shortened.
    fn rate_pause(&self, key: &str, until: DateTime<Utc>) -> Result<(), StateError>;
    /// Until when the shared rate limit `key` is paused, if it is paused now.
    fn rate_paused_until(&self, key: &str) -> Result<Option<DateTime<Utc>>, StateError>;

    /// Deletes processed inbox rows and clears payloads of finished entities beyond `policy`
    /// as of `now`, and deletes the flows' history entries and the hourly outcomes older than it
    /// keeps them ([`RetentionPolicy::max_age`]; never the audit log), at most `batch` rows per
    /// write transaction (other writers get the store between two), then reclaims the freed
    /// space. A store without old state to drop keeps this default, which does nothing.
    fn prune(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        batch: usize,
    ) -> Result<PruneReport, StateError> {
        let _ = (policy, now, batch);
        Ok(PruneReport::default())
    }
}

/// Timestamps as stored by both backends: RFC 3339 in UTC with milliseconds, so text order is
/// time order.
pub(super) fn stamp_of(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A stored timestamp read back.
pub(super) fn parse_stamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Microseconds since the Unix epoch: lease and rate-limit times, compared as numbers.
pub(super) fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

/// A lease or rate-limit time read back.
pub(super) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Parses an RFC 3339 cursor value, naming the flow on error.
pub fn parse_time_cursor(flow: &str, value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("cursor of flow `{flow}` is `{value}`, not an RFC 3339 time ({e}); set it with `relay cursor set {flow} 2026-01-01T00:00:00Z`"))
}

// What both backends record and query for the operator's view, written once so that they
// record the same history and answer the same search.

/// The detail of a [`EventKind::CursorSet`] entry: `before -> after`, `(unset)` for a flow that
/// had no cursor.
pub(super) fn cursor_change(before: Option<&str>, after: &str) -> String {
    format!("{} -> {after}", before.unwrap_or("(unset)"))
}

/// The detail of a [`EventKind::Requeued`] entry: the dead letter sent back (what `relay
/// replay` was given).
pub(super) fn requeue_detail(dead_letter_id: i64) -> String {
    format!("dead letter {dead_letter_id}")
}

/// What a [`Store::update`] from (`step`, `status`) to `after` records: a [`EventKind::Step`]
/// entry when the step or the status changed (a repeat of the same step is no history), and a
/// [`Outcome::Done`] when the status became done (once per change, not per repeat). The
/// PostgreSQL store applies the same rule inside its update statement.
pub(super) fn update_effects(
    step: Option<&str>,
    status: Status,
    after: &EntityRecord,
) -> (bool, Option<Outcome>) {
    let changed = after.step.as_deref() != step || after.status != status;
    let done = (after.status == Status::Done && status != Status::Done).then_some(Outcome::Done);
    (changed, done)
}

/// A stored event kind read back; none other is written, so an unknown text (a newer relay's)
/// reads as a step rather than failing the page.
pub(super) fn event_kind_of(text: &str) -> EventKind {
    EventKind::from_name(text).unwrap_or(EventKind::Step)
}

/// The oldest times [`Store::prune`] keeps of the history: flow entries (no actor) stamped
/// before the first are deleted, and hourly outcomes of hours before the second (those are kept
/// 48 hours at least, what the console's charts show). Operator entries (the audit log) stay.
pub(super) fn history_cutoffs(policy: &RetentionPolicy, now: DateTime<Utc>) -> (String, String) {
    let before = |age: TimeDelta| {
        now.checked_sub_signed(age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let events = stamp_of(before(policy.max_age));
    let hours = hour_of(before(policy.max_age.max(TimeDelta::hours(48))));
    (events, hours)
}

/// A parameter of a statement built at run time ([`search_sql`]).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SqlValue {
    /// Text.
    Text(String),
    /// A 64-bit integer.
    Int(i64),
}

/// The statement of [`Store::search`] for `query`, selecting `columns` of `entities`, and its
/// parameters, numbered by `placeholder` (`?1` for SQLite, `$1` for PostgreSQL).
///
/// Only the filters given are in it (a generic `(? IS NULL OR …)` would keep SQLite from using
/// an index), so that each query goes through one:
/// - a reference first finds the (flow, source id) pairs it names through `entities_source`,
///   `entities_target`, `aliases_alias` and `lookups_key`, then each record by its primary key
///   (`CROSS JOIN` keeps SQLite from walking a flow's or a status's index for each pair
///   instead); the other filters apply to those few records;
/// - a flow and a status page along `entities_status (flow, status, seq)`, a flow alone along
///   `entities_flow (flow, seq)`, a status alone along `entities_by_status (status, seq)`, and
///   no filter along `entities_seq`, newest first, stopping after `limit` matches; a time range
///   with none of those goes through `entities_updated`, else it is checked on the records
///   their index gives.
pub(super) fn search_sql(
    query: &EntityQuery,
    columns: &str,
    placeholder: fn(usize) -> String,
) -> (String, Vec<SqlValue>) {
    let mut values = Vec::new();
    let mut bind = |value: SqlValue| {
        values.push(value);
        placeholder(values.len())
    };
    let mut from = "entities".to_owned();
    let mut conditions = Vec::new();
    if let Some(reference) = &query.reference {
        let r = bind(SqlValue::Text(reference.clone()));
        from = format!(
            "(SELECT flow AS found_flow, source_id AS found_id FROM entities WHERE source_id = {r}
                UNION SELECT flow, source_id FROM entities WHERE target_id = {r}
                UNION SELECT flow, source_id FROM aliases WHERE alias = {r}
                UNION SELECT e.flow, e.source_id FROM lookups l JOIN entities e ON e.source_id = l.value
                    WHERE l.key = {r}) AS found
             CROSS JOIN entities"
        );
        conditions.push(
            "entities.flow = found.found_flow AND entities.source_id = found.found_id".to_owned(),
        );
    }
    if let Some(flow) = &query.flow {
        conditions.push(format!("flow = {}", bind(SqlValue::Text(flow.clone()))));
    }
    if let Some(status) = query.status {
        let status = bind(SqlValue::Text(status.as_str().to_owned()));
        conditions.push(format!("status = {status}"));
    }
    if let Some(from) = query.updated_from {
        conditions.push(format!(
            "updated_at >= {}",
            bind(SqlValue::Text(stamp_of(from)))
        ));
    }
    if let Some(to) = query.updated_to {
        conditions.push(format!(
            "updated_at < {}",
            bind(SqlValue::Text(stamp_of(to)))
        ));
    }
    if let Some(before) = query.before {
        let before = i64::try_from(before).unwrap_or(i64::MAX);
        conditions.push(format!("seq < {}", bind(SqlValue::Int(before))));
    }
    let limit = bind(SqlValue::Int(
        i64::try_from(query.limit).unwrap_or(i64::MAX),
    ));
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    (
        format!("SELECT {columns} FROM {from} {filter} ORDER BY seq DESC LIMIT {limit}"),
        values,
    )
}
