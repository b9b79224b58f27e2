//! Durable state: entity records, cursors, the receivers' inbox and dead letters.
//!
//! One trait, [`Store`], so another backend can come later; [`SqliteStore`] is the default (a
//! file in the data folder, WAL mode). Every method is one short transaction, so a crash between
//! two calls leaves a consistent state: the flows record each step *after* the platform call
//! that made it, and every step is idempotent on replay (see each flow's docs).
//!
//! Finished state is bounded: [`Store::prune`] deletes processed inbox rows and clears the
//! payloads of finished entities by age and count ([`RetentionPolicy`]), in small batches, and
//! gives the freed pages back to the file system (see [`SqliteStore`]). A push whose key is
//! still queued but whose body changed supersedes the queued row ([`InboxPut::Updated`]);
//! [`Store::inbox_history`] lists the versions of a key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;

/// A state operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// SQLite refused or failed.
    #[error("state database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
}

impl Status {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }

    fn parse(text: &str) -> Status {
        match text {
            "done" => Status::Done,
            "failed" => Status::Failed,
            "skipped" => Status::Skipped,
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
    /// Processed inbox rows processed longer ago, and payloads of finished (done or skipped)
    /// entities unchanged for longer, are pruned.
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

    /// Deletes processed inbox rows and clears payloads of finished entities beyond `policy`
    /// as of `now`, at most `batch` rows per write transaction (other writers get the store
    /// between two), then reclaims the freed space. A store without old state to drop keeps
    /// this default, which does nothing.
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

/// Where a store's timestamps come from (the wall clock, or a fake one in tests and benches).
type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The SQLite store.
///
/// Space: a file created by this version uses `auto_vacuum = INCREMENTAL`, so [`Store::prune`]
/// gives freed pages back with `PRAGMA incremental_vacuum` in small steps once a tenth of the
/// file (and at least 1 MiB) is free; below that, freed pages are simply reused by new rows,
/// which is cheaper than shrinking and growing the file again. A file created before cannot
/// switch without a rewrite, so the first prune that leaves a quarter of it (and at least
/// 8 MiB) free runs one `VACUUM` that also turns incremental vacuum on; it copies only the live
/// rows, which after pruning are few.
pub struct SqliteStore {
    connection: Mutex<Connection>,
    /// The database file (`None` in memory), for [`SqliteStore::size`].
    path: Option<PathBuf>,
    clock: Clock,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

/// The layout this version writes (`PRAGMA user_version`): 0 is the layout before inbox
/// versions, 1 before the `lookups` table; both brought up to date by [`prepare`].
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entities (
    flow TEXT NOT NULL,
    source_id TEXT NOT NULL,
    target_id TEXT,
    status TEXT NOT NULL,
    step TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    payload TEXT,
    updated_at TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (flow, source_id)
);
CREATE INDEX IF NOT EXISTS entities_status ON entities (flow, status, seq);
CREATE INDEX IF NOT EXISTS entities_seq ON entities (seq);
CREATE TABLE IF NOT EXISTS aliases (
    flow TEXT NOT NULL,
    alias TEXT NOT NULL,
    source_id TEXT NOT NULL,
    PRIMARY KEY (flow, alias)
);
CREATE TABLE IF NOT EXISTS cursors (flow TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lookups (
    map TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (map, key)
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL,
    processed_at TEXT,
    version INTEGER NOT NULL DEFAULT 1,
    superseded_by INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS inbox_unprocessed ON inbox (source, key) WHERE processed_at IS NULL;
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flow TEXT NOT NULL,
    source_id TEXT NOT NULL,
    error TEXT NOT NULL,
    payload TEXT,
    created_at TEXT NOT NULL
);
";

/// Columns added since the first layout: (table, column, definition).
const ADDED_COLUMNS: [(&str, &str, &str); 2] = [
    ("inbox", "version", "INTEGER NOT NULL DEFAULT 1"),
    ("inbox", "superseded_by", "INTEGER"),
];

/// Indexes over added columns (created once the columns exist) and for pruning: the partial
/// ones hold only what a prune looks at, so their size follows the retention bounds.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS inbox_key ON inbox (source, key, version);
CREATE INDEX IF NOT EXISTS inbox_processed ON inbox (processed_at) WHERE processed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS entities_finished ON entities (flow, updated_at)
    WHERE payload IS NOT NULL AND status IN ('done', 'skipped');
";

/// Creates the tables, or brings a file of an earlier layout up to date, in one transaction
/// (two processes opening the same old file must not both add a column).
fn prepare(connection: &mut Connection) -> Result<(), StateError> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
            |r| r.get(0),
        )?;
        if !present {
            tx.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    tx.execute_batch(INDEXES)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

/// Upserts lookup entries inside a caller's transaction.
fn put_lookups(
    tx: &rusqlite::Transaction<'_>,
    map: &str,
    entries: &[(String, String)],
    stamp: &str,
) -> Result<(), StateError> {
    let mut statement = tx.prepare_cached(
        "INSERT INTO lookups (map, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (map, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )?;
    for (key, value) in entries {
        statement.execute(params![map, key, value, stamp])?;
    }
    Ok(())
}

/// Turns incremental vacuum on for a database without tables yet (it cannot change later
/// without a rewrite).
fn incremental_vacuum_if_new(connection: &Connection) -> Result<(), StateError> {
    let tables: i64 =
        connection.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    if tables == 0 {
        connection.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    Ok(())
}

/// The columns of `entities` but the payload: what [`clear_payloads`] puts back.
const ENTITY_COLUMNS_BUT_PAYLOAD: &str =
    "flow, source_id, target_id, status, step, attempts, last_error, updated_at, seq";

/// Clears the payload of the entities `filter` picks (`WHERE … LIMIT ?n` over `entities`), in
/// one transaction; returns how many.
///
/// Deleted and inserted again with the same rowid rather than updated: SQLite rebalances a
/// table page when rows are deleted from it, not when an update shrinks them, so updated rows
/// would stay two to a page (where their payload's first part was) and the file would keep
/// growing with the number of entities although their payloads are gone.
fn clear_payloads(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS cleared (rid INTEGER PRIMARY KEY, {ENTITY_COLUMNS_BUT_PAYLOAD});
         DELETE FROM temp.cleared;"
    ))?;
    let picked = tx
        .prepare_cached(&format!(
            "INSERT INTO temp.cleared SELECT rowid, {ENTITY_COLUMNS_BUT_PAYLOAD} FROM entities
         WHERE rowid IN (SELECT rowid FROM entities {filter})"
        ))?
        .execute(params)?;
    if picked > 0 {
        tx.execute_batch(&format!(
            "DELETE FROM entities WHERE rowid IN (SELECT rid FROM temp.cleared);
             INSERT INTO entities (rowid, {ENTITY_COLUMNS_BUT_PAYLOAD})
                 SELECT rid, {ENTITY_COLUMNS_BUT_PAYLOAD} FROM temp.cleared ORDER BY rid;"
        ))?;
    }
    tx.commit()?;
    Ok(picked)
}

/// Timestamps as stored: RFC 3339 in UTC with milliseconds, so text order is time order.
fn stamp_of(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `auto_vacuum` modes as `PRAGMA auto_vacuum` reads them.
const AUTO_VACUUM_NONE: i64 = 0;
const AUTO_VACUUM_INCREMENTAL: i64 = 2;
/// Incremental vacuum runs once this share (1/n) of the file is free and at least this much.
const RECLAIM_MIN_SHARE: i64 = 10;
const RECLAIM_MIN_BYTES: i64 = 1 << 20;
/// Pages given back per step (4 MiB at the default page size), so a writer waits at most one.
const RECLAIM_STEP_PAGES: i64 = 1024;
/// The one-off `VACUUM` of an older file runs once this share (1/n) is free and this much.
const VACUUM_MIN_SHARE: i64 = 4;
const VACUUM_MIN_BYTES: i64 = 8 << 20;
/// The write-ahead log is cut back to this after a checkpoint (a burst of large pushes can
/// grow it; SQLite otherwise keeps its largest size).
const WAL_SIZE_LIMIT: i64 = 32 << 20;

fn entity(row: &rusqlite::Row<'_>) -> rusqlite::Result<EntityRecord> {
    let status: String = row.get("status")?;
    Ok(EntityRecord {
        flow: row.get("flow")?,
        source_id: row.get("source_id")?,
        target_id: row.get("target_id")?,
        status: Status::parse(&status),
        step: row.get("step")?,
        attempts: row.get("attempts")?,
        last_error: row.get("last_error")?,
        payload: row.get("payload")?,
        updated_at: row.get("updated_at")?,
        position: row.get("seq")?,
    })
}

fn dead_letter_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.get("id")?,
        flow: row.get("flow")?,
        source_id: row.get("source_id")?,
        error: row.get("error")?,
        payload: row.get("payload")?,
        created_at: row.get("created_at")?,
    })
}

impl SqliteStore {
    /// Unprocessed inbox items, oldest first, with an extra `AND …` condition whose `?`
    /// placeholders take `params` (after which comes the limit).
    fn inbox_select(
        &self,
        condition: &str,
        params: &[&str],
        limit: usize,
    ) -> Result<Vec<InboxItem>, StateError> {
        let conn = self.conn();
        // Cached: the processors run the same few statements on every drain.
        let mut statement = conn.prepare_cached(&format!(
            "SELECT id, source, key, body, received_at FROM inbox WHERE processed_at IS NULL {condition} ORDER BY id LIMIT ?"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut values: Vec<&dyn rusqlite::ToSql> =
            params.iter().map(|p| p as &dyn rusqlite::ToSql).collect();
        values.push(&limit);
        let rows = statement.query_map(values.as_slice(), |row| {
            Ok(InboxItem {
                id: row.get(0)?,
                source: row.get(1)?,
                key: row.get(2)?,
                body: row.get(3)?,
                received_at: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Opens (or creates) `state.sqlite` in `data_dir`.
    pub fn open_in(data_dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StateError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        Self::open(&data_dir.join("state.sqlite"))
    }

    /// Opens (or creates) the database file; a file written by an earlier version is brought
    /// up to date (columns added, indexes created) and keeps its data.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let mut connection = Connection::open(path)?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        incremental_vacuum_if_new(&connection)?;
        // WAL: readers (`relay status`) never block the runtime; synchronous=NORMAL in WAL
        // mode still survives a process kill (only a power loss can drop the last commits).
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        prepare(&mut connection)?;
        Ok(Self {
            connection: Mutex::new(connection),
            path: Some(path.to_path_buf()),
            clock: Arc::new(Utc::now),
        })
    }

    /// An in-memory store (tests, dry runs).
    pub fn in_memory() -> Result<Self, StateError> {
        let mut connection = Connection::open_in_memory()?;
        incremental_vacuum_if_new(&connection)?;
        prepare(&mut connection)?;
        Ok(Self {
            connection: Mutex::new(connection),
            path: None,
            clock: Arc::new(Utc::now),
        })
    }

    /// The same store with its timestamps (received, processed, updated) taken from `clock`
    /// instead of the wall clock: tests and benches age the state without waiting.
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The current time, as stored.
    fn stamp(&self) -> String {
        stamp_of((self.clock)())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get_with(
        conn: &Connection,
        flow: &str,
        source_id: &str,
    ) -> Result<Option<EntityRecord>, StateError> {
        Ok(conn
            .query_row(
                "SELECT * FROM entities WHERE flow = ?1 AND source_id = ?2",
                params![flow, source_id],
                entity,
            )
            .optional()?)
    }

    /// The record, or `QueryReturnedNoRows` when there is none (after a write that should have made it).
    fn get_existing(
        conn: &Connection,
        flow: &str,
        source_id: &str,
    ) -> Result<EntityRecord, StateError> {
        Self::get_with(conn, flow, source_id)?
            .ok_or(StateError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
    }

    /// Runs `step` (one statement, so one transaction, changing at most the `limit` rows it is
    /// given) until it changes fewer than asked or `total` rows are done; the store is free for
    /// other writers between two steps. Returns the rows changed and counts the steps.
    fn in_batches(
        &self,
        batch: usize,
        total: u64,
        batches: &mut u64,
        mut step: impl FnMut(&Connection, i64) -> rusqlite::Result<usize>,
    ) -> Result<u64, StateError> {
        let mut done = 0u64;
        while done < total {
            let want = (total - done).min(batch as u64);
            let limit = i64::try_from(want).unwrap_or(i64::MAX);
            let changed = step(&self.conn(), limit)? as u64;
            if changed > 0 {
                *batches += 1;
            }
            done += changed;
            if changed < want {
                break;
            }
            std::thread::yield_now();
        }
        Ok(done)
    }

    /// Gives free pages back to the file system when worthwhile (see [`SqliteStore`]).
    fn reclaim(&self, report: &mut PruneReport) -> Result<(), StateError> {
        fn pragma(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
            conn.pragma_query_value(None, name, |r| r.get(0))
        }
        let (mode, pages, free, page_size) = {
            let conn = self.conn();
            (
                pragma(&conn, "auto_vacuum")?,
                pragma(&conn, "page_count")?,
                pragma(&conn, "freelist_count")?,
                pragma(&conn, "page_size")?,
            )
        };
        let free_bytes = free.saturating_mul(page_size);
        if mode == AUTO_VACUUM_INCREMENTAL
            && free.saturating_mul(RECLAIM_MIN_SHARE) >= pages
            && free_bytes >= RECLAIM_MIN_BYTES
        {
            let mut left = free;
            while left > 0 {
                let conn = self.conn();
                conn.execute_batch(&format!("PRAGMA incremental_vacuum({RECLAIM_STEP_PAGES})"))?;
                let now_free = pragma(&conn, "freelist_count")?;
                drop(conn);
                if now_free >= left {
                    break;
                }
                report.pages_reclaimed += (left - now_free) as u64;
                left = now_free;
                std::thread::yield_now();
            }
        } else if mode == AUTO_VACUUM_NONE
            && free.saturating_mul(VACUUM_MIN_SHARE) >= pages
            && free_bytes >= VACUUM_MIN_BYTES
        {
            let conn = self.conn();
            tracing::info!(
                free_bytes,
                "rewriting the state file once to turn incremental vacuum on (a file from before retention)"
            );
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
            conn.execute_batch("VACUUM")?;
            let after = pragma(&conn, "page_count")?;
            report.vacuumed = true;
            report.pages_reclaimed += pages.saturating_sub(after) as u64;
        }
        if report.pages_reclaimed > 0 {
            // The file shrinks when the log is copied back; readers may keep part of it for later.
            self.conn()
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    /// The state's size: the file and its log on disk, free pages, and the rows per table.
    pub fn size(&self) -> Result<StateSize, StateError> {
        let on_disk = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let conn = self.conn();
        let pages: u64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
        let free: u64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        let page_size: u64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let (file_bytes, wal_bytes) = match &self.path {
            Some(path) => {
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                (on_disk(path), on_disk(Path::new(&wal)))
            }
            None => (pages * page_size, 0),
        };
        let counts = conn.query_row(
            "SELECT (SELECT COUNT(*) FROM inbox), (SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL),
                    (SELECT COUNT(*) FROM entities), (SELECT COUNT(*) FROM entities WHERE payload IS NOT NULL),
                    (SELECT COUNT(*) FROM dead_letters)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        let (inbox_rows, inbox_pending, entities, entity_payloads, dead_letters) = counts;
        Ok(StateSize {
            file_bytes,
            wal_bytes,
            free_bytes: free * page_size,
            inbox_rows,
            inbox_pending,
            entities,
            entity_payloads,
            dead_letters,
        })
    }
}

impl Store for SqliteStore {
    fn upsert_pending(
        &self,
        flow: &str,
        source_id: &str,
        payload: Option<&str>,
    ) -> Result<EntityRecord, StateError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO entities (flow, source_id, status, payload, updated_at, seq)
             VALUES (?1, ?2, 'pending', ?3, ?4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM entities))
             ON CONFLICT (flow, source_id) DO NOTHING",
            params![flow, source_id, payload, self.stamp()],
        )?;
        Self::get_existing(&conn, flow, source_id)
    }

    fn get(&self, flow: &str, source_id: &str) -> Result<Option<EntityRecord>, StateError> {
        Self::get_with(&self.conn(), flow, source_id)
    }

    fn update(
        &self,
        flow: &str,
        source_id: &str,
        update: &EntityUpdate,
    ) -> Result<EntityRecord, StateError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE entities SET
                status = COALESCE(?3, status),
                step = COALESCE(?4, step),
                target_id = COALESCE(?5, target_id),
                payload = COALESCE(?6, payload),
                last_error = CASE WHEN ?7 THEN NULL ELSE last_error END,
                updated_at = ?8
             WHERE flow = ?1 AND source_id = ?2",
            params![
                flow,
                source_id,
                update.status.map(Status::as_str),
                update.step,
                update.target_id,
                update.payload,
                update.clear_error,
                self.stamp()
            ],
        )?;
        Self::get_existing(&conn, flow, source_id)
    }

    fn record_failure(
        &self,
        flow: &str,
        source_id: &str,
        error: &str,
    ) -> Result<EntityRecord, StateError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE entities SET attempts = attempts + 1, last_error = ?3, updated_at = ?4 WHERE flow = ?1 AND source_id = ?2",
            params![flow, source_id, error, self.stamp()],
        )?;
        Self::get_existing(&conn, flow, source_id)
    }

    fn list(
        &self,
        flow: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<EntityRecord>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT * FROM entities WHERE (?1 IS NULL OR flow = ?1) AND (?2 IS NULL OR status = ?2) ORDER BY seq",
        )?;
        let rows = statement.query_map(params![flow, status.map(Status::as_str)], entity)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn list_after(
        &self,
        flow: &str,
        status: Option<Status>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EntityRecord>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT * FROM entities WHERE flow = ?1 AND (?2 IS NULL OR status = ?2) AND seq > ?3 ORDER BY seq LIMIT ?4",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement.query_map(
            params![flow, status.map(Status::as_str), after, limit],
            entity,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn set_alias(&self, flow: &str, alias: &str, source_id: &str) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT INTO aliases (flow, alias, source_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (flow, alias) DO UPDATE SET source_id = excluded.source_id",
            params![flow, alias, source_id],
        )?;
        Ok(())
    }

    fn find_alias(&self, flow: &str, alias: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT source_id FROM aliases WHERE flow = ?1 AND alias = ?2",
                params![flow, alias],
                |row| row.get(0),
            )
            .optional()?)
    }

    fn lookup_put(&self, map: &str, entries: &[(String, String)]) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        put_lookups(&tx, map, entries, &self.stamp())?;
        tx.commit()?;
        Ok(())
    }

    fn lookup_replace(&self, map: &str, entries: &[(String, String)]) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM lookups WHERE map = ?1", params![map])?;
        put_lookups(&tx, map, entries, &self.stamp())?;
        tx.commit()?;
        Ok(())
    }

    fn lookup_get(&self, map: &str, keys: &[&str]) -> Result<Vec<Lookup>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT key, value, updated_at FROM lookups WHERE map = ?1 AND key = ?2",
        )?;
        let mut found = Vec::new();
        for key in keys {
            let row = statement
                .query_row(params![map, key], |row| {
                    Ok(Lookup {
                        key: row.get(0)?,
                        value: row.get(1)?,
                        updated_at: row.get(2)?,
                    })
                })
                .optional()?;
            found.extend(row);
        }
        Ok(found)
    }

    fn lookup_remove(&self, map: &str, keys: &[&str]) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for key in keys {
            tx.execute(
                "DELETE FROM lookups WHERE map = ?1 AND key = ?2",
                params![map, key],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn counts(&self) -> Result<Vec<(String, Status, u64)>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT flow, status, COUNT(*) FROM entities GROUP BY flow, status ORDER BY flow, status")?;
        let rows = statement.query_map([], |row| {
            let status: String = row.get(1)?;
            Ok((
                row.get::<_, String>(0)?,
                Status::parse(&status),
                row.get::<_, u64>(2)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn cursor(&self, flow: &str) -> Result<Option<String>, StateError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM cursors WHERE flow = ?1",
                params![flow],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_cursor(&self, flow: &str, value: &str) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT INTO cursors (flow, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (flow) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![flow, value, self.stamp()],
        )?;
        Ok(())
    }

    fn inbox_put(&self, source: &str, key: &str, body: &str) -> Result<InboxPut, StateError> {
        let stamp = self.stamp();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let queued: Option<(i64, bool)> = tx
            .query_row(
                "SELECT id, body = ?3 FROM inbox WHERE source = ?1 AND key = ?2 AND processed_at IS NULL",
                params![source, key, body],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((id, true)) = queued {
            return Ok(InboxPut::Duplicate(id));
        }
        let version: u32 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM inbox WHERE source = ?1 AND key = ?2",
            params![source, key],
            |r| r.get(0),
        )?;
        if let Some((older, _)) = queued {
            // Out of the queue before the insert: one unprocessed row per key.
            tx.execute(
                "UPDATE inbox SET processed_at = ?2 WHERE id = ?1",
                params![older, stamp],
            )?;
        }
        tx.execute(
            "INSERT INTO inbox (source, key, body, received_at, version) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![source, key, body, stamp, version],
        )?;
        let id = tx.last_insert_rowid();
        if let Some((older, _)) = queued {
            tx.execute(
                "UPDATE inbox SET superseded_by = ?2 WHERE id = ?1",
                params![older, id],
            )?;
        }
        tx.commit()?;
        Ok(match queued {
            Some((superseded, _)) => InboxPut::Updated {
                id,
                version,
                superseded,
            },
            None => InboxPut::Inserted(id),
        })
    }

    fn inbox_history(&self, source: &str, key: &str) -> Result<Vec<InboxVersion>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT id, version, body, received_at, processed_at, superseded_by FROM inbox
             WHERE source = ?1 AND key = ?2 ORDER BY version, id",
        )?;
        let rows = statement.query_map(params![source, key], |row| {
            Ok(InboxVersion {
                id: row.get(0)?,
                version: row.get(1)?,
                body: row.get(2)?,
                received_at: row.get(3)?,
                processed_at: row.get(4)?,
                superseded_by: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn inbox_pending(&self, limit: usize) -> Result<Vec<InboxItem>, StateError> {
        self.inbox_select("", &[], limit)
    }

    fn inbox_pending_in(
        &self,
        lane: InboxLane,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StateError> {
        let (not, sources) = match lane {
            InboxLane::Of(sources) => ("", sources),
            InboxLane::Except(sources) => ("NOT ", sources),
        };
        if sources.is_empty() {
            return if not.is_empty() {
                Ok(Vec::new())
            } else {
                self.inbox_pending(limit)
            };
        }
        let marks = vec!["?"; sources.len()].join(", ");
        self.inbox_select(&format!("AND source {not}IN ({marks})"), sources, limit)
    }

    fn inbox_len(&self) -> Result<u64, StateError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL",
            [],
            |row| row.get(0),
        )?)
    }

    fn inbox_queued(&self, id: i64) -> Result<bool, StateError> {
        let queued: Option<bool> = self
            .conn()
            .query_row(
                "SELECT processed_at IS NULL FROM inbox WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(queued.unwrap_or(false))
    }

    fn inbox_done(&self, id: i64) -> Result<(), StateError> {
        self.conn().execute(
            // A superseded row keeps the time it was superseded.
            "UPDATE inbox SET processed_at = ?2 WHERE id = ?1 AND processed_at IS NULL",
            params![id, self.stamp()],
        )?;
        Ok(())
    }

    fn dead_letter(
        &self,
        flow: &str,
        source_id: &str,
        error: &str,
    ) -> Result<DeadLetter, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE entities SET status = 'failed', last_error = ?3, updated_at = ?4 WHERE flow = ?1 AND source_id = ?2",
            params![flow, source_id, error, self.stamp()],
        )?;
        let payload: Option<String> = tx
            .query_row(
                "SELECT payload FROM entities WHERE flow = ?1 AND source_id = ?2",
                params![flow, source_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        tx.execute(
            "INSERT INTO dead_letters (flow, source_id, error, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![flow, source_id, error, payload, self.stamp()],
        )?;
        let id = tx.last_insert_rowid();
        let letter = tx.query_row(
            "SELECT * FROM dead_letters WHERE id = ?1",
            params![id],
            dead_letter_row,
        )?;
        tx.commit()?;
        Ok(letter)
    }

    fn dead_letters(&self) -> Result<Vec<DeadLetter>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT * FROM dead_letters ORDER BY id")?;
        let rows = statement.query_map([], dead_letter_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn requeue(&self, dead_letter_id: i64) -> Result<Option<EntityRecord>, StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let letter = tx
            .query_row(
                "SELECT * FROM dead_letters WHERE id = ?1",
                params![dead_letter_id],
                dead_letter_row,
            )
            .optional()?;
        let Some(letter) = letter else {
            return Ok(None);
        };
        tx.execute(
            "DELETE FROM dead_letters WHERE id = ?1",
            params![dead_letter_id],
        )?;
        tx.execute(
            "UPDATE entities SET status = 'pending', attempts = 0, updated_at = ?3 WHERE flow = ?1 AND source_id = ?2",
            params![letter.flow, letter.source_id, self.stamp()],
        )?;
        let record = Self::get_with(&tx, &letter.flow, &letter.source_id)?;
        tx.commit()?;
        Ok(record)
    }

    fn prune(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        batch: usize,
    ) -> Result<PruneReport, StateError> {
        let span = tracing::info_span!(
            "state_prune",
            batch,
            max_age_days = policy.max_age.num_days(),
            max_processed_inbox_rows = policy.max_processed_inbox_rows,
            max_finished_payloads_per_flow = policy.max_finished_payloads_per_flow,
        );
        let _entered = span.enter();
        let started = std::time::Instant::now();
        let batch = batch.max(1);
        let cutoff = stamp_of(
            now.checked_sub_signed(policy.max_age)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        );
        let mut report = PruneReport::default();

        // Processed inbox rows: nothing reads them after processing but the history.
        report.inbox_rows_deleted += self.in_batches(batch, u64::MAX, &mut report.batches, |conn, limit| {
            conn.prepare_cached(
                "DELETE FROM inbox WHERE id IN (SELECT id FROM inbox
                 WHERE processed_at IS NOT NULL AND processed_at < ?1 ORDER BY processed_at LIMIT ?2)",
            )?
            .execute(params![cutoff, limit])
        })?;
        let processed: u64 = self.conn().query_row(
            "SELECT COUNT(*) FROM inbox WHERE processed_at IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        let excess = processed.saturating_sub(policy.max_processed_inbox_rows);
        report.inbox_rows_deleted +=
            self.in_batches(batch, excess, &mut report.batches, |conn, limit| {
                conn.prepare_cached(
                    "DELETE FROM inbox WHERE id IN (SELECT id FROM inbox
                 WHERE processed_at IS NOT NULL ORDER BY processed_at, id LIMIT ?1)",
                )?
                .execute(params![limit])
            })?;

        // Payloads of finished entities: the record (ids, status, step) stays, so a repeat of a
        // finished item is still recognised and never processed twice.
        report.payloads_cleared +=
            self.in_batches(batch, u64::MAX, &mut report.batches, |conn, limit| {
                clear_payloads(
                    conn,
                    "WHERE payload IS NOT NULL AND status IN ('done', 'skipped') AND updated_at < ?1
                     LIMIT ?2",
                    params![cutoff, limit],
                )
            })?;
        let per_flow: Vec<(String, u64)> = {
            let conn = self.conn();
            let mut statement = conn.prepare_cached(
                "SELECT flow, COUNT(*) FROM entities
                 WHERE payload IS NOT NULL AND status IN ('done', 'skipped') GROUP BY flow",
            )?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (flow, kept) in per_flow {
            let excess = kept.saturating_sub(policy.max_finished_payloads_per_flow);
            report.payloads_cleared +=
                self.in_batches(batch, excess, &mut report.batches, |conn, limit| {
                    clear_payloads(
                        conn,
                        "WHERE flow = ?1 AND payload IS NOT NULL AND status IN ('done', 'skipped')
                         ORDER BY updated_at LIMIT ?2",
                        params![flow, limit],
                    )
                })?;
        }

        self.reclaim(&mut report)?;
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if report == PruneReport::default() {
            tracing::debug!(
                elapsed_ms,
                "state prune: nothing beyond the retention bounds"
            );
        } else {
            tracing::info!(
                inbox_rows_deleted = report.inbox_rows_deleted,
                payloads_cleared = report.payloads_cleared,
                batches = report.batches,
                pages_reclaimed = report.pages_reclaimed,
                vacuumed = report.vacuumed,
                elapsed_ms,
                "state pruned"
            );
        }
        Ok(report)
    }
}

/// Parses an RFC 3339 cursor value, naming the flow on error.
pub fn parse_time_cursor(flow: &str, value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("cursor of flow `{flow}` is `{value}`, not an RFC 3339 time ({e}); set it with `relay cursor set {flow} 2026-01-01T00:00:00Z`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_lifecycle_and_counts() {
        let store = SqliteStore::in_memory().unwrap();
        let first = store
            .upsert_pending("shipping", "NC-1", Some("{\"a\":1}"))
            .unwrap();
        assert_eq!((first.status, first.attempts), (Status::Pending, 0));
        // A second upsert keeps the record as it is.
        store
            .update(
                "shipping",
                "NC-1",
                &EntityUpdate {
                    step: Some("booked".into()),
                    target_id: Some("S1".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        let again = store
            .upsert_pending("shipping", "NC-1", Some("{\"b\":2}"))
            .unwrap();
        assert_eq!(again.step.as_deref(), Some("booked"));
        assert_eq!(again.payload.as_deref(), Some("{\"a\":1}"));
        let failed = store
            .record_failure("shipping", "NC-1", "nShift 503")
            .unwrap();
        assert_eq!(
            (failed.attempts, failed.last_error.as_deref()),
            (1, Some("nShift 503"))
        );
        let done = store
            .update(
                "shipping",
                "NC-1",
                &EntityUpdate {
                    status: Some(Status::Done),
                    clear_error: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!((done.status, done.last_error), (Status::Done, None));
        store.upsert_pending("shipping", "NC-2", None).unwrap();
        assert_eq!(
            store.counts().unwrap(),
            vec![
                ("shipping".into(), Status::Done, 1),
                ("shipping".into(), Status::Pending, 1)
            ]
        );
        let pending = store.list(Some("shipping"), Some(Status::Pending)).unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|r| r.source_id.as_str())
                .collect::<Vec<_>>(),
            vec!["NC-2"]
        );
    }

    #[test]
    fn pages_visit_each_record_once_while_the_pass_changes_them() {
        let store = SqliteStore::in_memory().unwrap();
        for n in 1..=7 {
            store
                .upsert_pending("shipping", &format!("B{n}"), None)
                .unwrap();
        }
        store.upsert_pending("orders", "O1", None).unwrap();
        let (mut after, mut seen) = (0, Vec::new());
        loop {
            let page = store
                .list_after("shipping", Some(Status::Pending), after, 3)
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.position;
            for record in page {
                // What a pass does meanwhile: finish some, fail others (they stay pending), and
                // new items arrive.
                if record.source_id.ends_with(['1', '3']) {
                    store
                        .record_failure("shipping", &record.source_id, "503")
                        .unwrap();
                } else {
                    store
                        .update(
                            "shipping",
                            &record.source_id,
                            &EntityUpdate {
                                status: Some(Status::Done),
                                ..Default::default()
                            },
                        )
                        .unwrap();
                }
                seen.push(record.source_id);
            }
            if seen.len() == 3 {
                store.upsert_pending("shipping", "B8", None).unwrap();
            }
        }
        assert_eq!(seen, ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8"]);
        let still_pending = store
            .list_after("shipping", Some(Status::Pending), 0, 100)
            .unwrap();
        assert_eq!(
            still_pending
                .iter()
                .map(|r| r.source_id.as_str())
                .collect::<Vec<_>>(),
            ["B1", "B3"]
        );
        assert!(
            store
                .list_after("orders", None, 0, 100)
                .unwrap()
                .iter()
                .all(|r| r.flow == "orders")
        );
    }

    #[test]
    fn lookups_are_put_read_replaced_and_removed_per_map() {
        let store = SqliteStore::in_memory().unwrap();
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        store
            .lookup_put("sku:a", &[pair("S1", "1"), pair("S2", "2")])
            .unwrap();
        store.lookup_put("sku:b", &[pair("S1", "9")]).unwrap();
        let got = store.lookup_get("sku:a", &["S1", "S3", "S2"]).unwrap();
        assert_eq!(
            got.iter()
                .map(|l| (l.key.as_str(), l.value.as_str()))
                .collect::<Vec<_>>(),
            [("S1", "1"), ("S2", "2")]
        );
        assert!(parse_time_cursor("x", &got[0].updated_at).is_ok());
        store.lookup_remove("sku:a", &["S1"]).unwrap();
        assert!(store.lookup_get("sku:a", &["S1"]).unwrap().is_empty());
        store.lookup_replace("sku:a", &[pair("S3", "3")]).unwrap();
        assert!(store.lookup_get("sku:a", &["S2"]).unwrap().is_empty());
        assert_eq!(store.lookup_get("sku:a", &["S3"]).unwrap()[0].value, "3");
        assert_eq!(store.lookup_get("sku:b", &["S1"]).unwrap()[0].value, "9");
    }

    #[test]
    fn aliases_find_the_source_id_and_move() {
        let store = SqliteStore::in_memory().unwrap();
        assert_eq!(store.find_alias("shipping", "NC-1").unwrap(), None);
        store.set_alias("shipping", "NC-1", "1001").unwrap();
        store.set_alias("orders", "NC-1", "x").unwrap();
        assert_eq!(
            store.find_alias("shipping", "NC-1").unwrap().as_deref(),
            Some("1001")
        );
        store.set_alias("shipping", "NC-1", "1002").unwrap();
        assert_eq!(
            store.find_alias("shipping", "NC-1").unwrap().as_deref(),
            Some("1002")
        );
        assert_eq!(
            store.find_alias("orders", "NC-1").unwrap().as_deref(),
            Some("x")
        );
    }

    #[test]
    fn each_inbox_lane_lists_its_own_sources_oldest_first() {
        let store = SqliteStore::in_memory().unwrap();
        for (source, key) in [
            ("brightpearl-webhook", "w1"),
            ("norce-order", "o1"),
            ("brightpearl-webhook", "w2"),
            ("norce-event", "e1"),
            ("brightpearl-webhook", "w3"),
        ] {
            store.inbox_put(source, key, "{}").unwrap();
        }
        const NORCE: &[&str] = &["norce-order", "norce-event"];
        let keys = |lane, limit| -> Vec<String> {
            store
                .inbox_pending_in(lane, limit)
                .unwrap()
                .into_iter()
                .map(|i| i.key)
                .collect()
        };
        assert_eq!(keys(InboxLane::Of(NORCE), 10), ["o1", "e1"]);
        assert_eq!(keys(InboxLane::Except(NORCE), 2), ["w1", "w2"]);
        assert_eq!(keys(InboxLane::Except(&[]), 10).len(), 5);
        assert!(keys(InboxLane::Of(&[]), 10).is_empty());
    }

    #[test]
    fn inbox_deduplicates_unprocessed_items() {
        let store = SqliteStore::in_memory().unwrap();
        let InboxPut::Inserted(id) = store.inbox_put("norce-order", "NC-1", "{}").unwrap() else {
            panic!()
        };
        assert_eq!(
            store.inbox_put("norce-order", "NC-1", "{}").unwrap(),
            InboxPut::Duplicate(id)
        );
        assert_eq!(store.inbox_pending(10).unwrap().len(), 1);
        assert_eq!(store.inbox_len().unwrap(), 1);
        store.inbox_done(id).unwrap();
        assert!(store.inbox_pending(10).unwrap().is_empty());
        assert_eq!(store.inbox_len().unwrap(), 0);
        // Processed: the same key may arrive again (a later change of the same order).
        assert!(matches!(
            store.inbox_put("norce-order", "NC-1", "{}").unwrap(),
            InboxPut::Inserted(_)
        ));
    }

    #[test]
    fn dead_letters_and_requeue() {
        let store = SqliteStore::in_memory().unwrap();
        store
            .upsert_pending("orders", "NC-9", Some("{\"x\":1}"))
            .unwrap();
        store
            .record_failure("orders", "NC-9", "unknown SKU")
            .unwrap();
        let letter = store
            .dead_letter("orders", "NC-9", "unknown SKU SKU-404")
            .unwrap();
        assert_eq!(letter.payload.as_deref(), Some("{\"x\":1}"));
        assert_eq!(
            store.get("orders", "NC-9").unwrap().unwrap().status,
            Status::Failed
        );
        let record = store.requeue(letter.id).unwrap().unwrap();
        assert_eq!((record.status, record.attempts), (Status::Pending, 0));
        assert!(store.dead_letters().unwrap().is_empty());
        assert!(store.requeue(letter.id).unwrap().is_none());
    }

    #[test]
    fn survives_reopening_the_file() {
        let dir = std::env::temp_dir().join(format!("relay-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = SqliteStore::open_in(&dir).unwrap();
            store.upsert_pending("stock", "1001", None).unwrap();
            store
                .set_cursor("shipping", "2026-01-01T00:00:00Z")
                .unwrap();
        }
        let store = SqliteStore::open_in(&dir).unwrap();
        assert!(store.get("stock", "1001").unwrap().is_some());
        assert_eq!(
            store.cursor("shipping").unwrap().as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store on a fake clock, and the clock (milliseconds since the epoch).
    fn clocked(store: SqliteStore) -> (SqliteStore, Arc<std::sync::atomic::AtomicI64>) {
        let clock = Arc::new(std::sync::atomic::AtomicI64::new(t0().timestamp_millis()));
        let read = clock.clone();
        let store = store.with_clock(move || {
            DateTime::from_timestamp_millis(read.load(std::sync::atomic::Ordering::SeqCst)).unwrap()
        });
        (store, clock)
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn set(clock: &std::sync::atomic::AtomicI64, at: DateTime<Utc>) {
        clock.store(at.timestamp_millis(), std::sync::atomic::Ordering::SeqCst);
    }

    fn days(n: i64) -> TimeDelta {
        TimeDelta::days(n)
    }

    fn processed(store: &SqliteStore, key: &str, body: &str) -> i64 {
        let id = store.inbox_put("norce-order", key, body).unwrap().id();
        store.inbox_done(id).unwrap();
        id
    }

    fn finished(store: &SqliteStore, flow: &str, source_id: &str, status: Status) {
        store
            .upsert_pending(flow, source_id, Some("{\"order\":1}"))
            .unwrap();
        store
            .update(
                flow,
                source_id,
                &EntityUpdate {
                    status: Some(status),
                    target_id: Some(format!("T-{source_id}")),
                    ..Default::default()
                },
            )
            .unwrap();
    }

    fn payload(store: &SqliteStore, flow: &str, source_id: &str) -> Option<String> {
        store.get(flow, source_id).unwrap().unwrap().payload
    }

    fn unique_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("relay-state-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_changed_body_while_queued_is_a_new_version_that_the_flows_read() {
        let store = SqliteStore::in_memory().unwrap();
        let first = store
            .inbox_put("norce-order", "NC-1", "{\"qty\":1}")
            .unwrap();
        let InboxPut::Inserted(v1) = first else {
            panic!("{first:?}")
        };
        let second = store
            .inbox_put("norce-order", "NC-1", "{\"qty\":2}")
            .unwrap();
        let InboxPut::Updated {
            id: v2,
            version: 2,
            superseded,
        } = second
        else {
            panic!("{second:?}")
        };
        assert_eq!(superseded, v1);
        // The queue holds the newest body only.
        let pending = store.inbox_pending(10).unwrap();
        assert_eq!(
            pending
                .iter()
                .map(|i| (i.id, i.body.as_str()))
                .collect::<Vec<_>>(),
            [(v2, "{\"qty\":2}")]
        );
        assert_eq!(store.inbox_len().unwrap(), 1);
        // The same body again is a no-op; going back to the first body is a change too.
        assert_eq!(
            store
                .inbox_put("norce-order", "NC-1", "{\"qty\":2}")
                .unwrap(),
            InboxPut::Duplicate(v2)
        );
        let third = store
            .inbox_put("norce-order", "NC-1", "{\"qty\":1}")
            .unwrap();
        assert!(
            matches!(third, InboxPut::Updated { version: 3, superseded, .. } if superseded == v2),
            "{third:?}"
        );
        assert!(!store.inbox_queued(v1).unwrap() && store.inbox_queued(third.id()).unwrap());
        // A worker that read the first version before it was superseded marks it done: the
        // time it was superseded stays.
        let before = store.inbox_history("norce-order", "NC-1").unwrap()[0].clone();
        store.inbox_done(v1).unwrap();
        let history = store.inbox_history("norce-order", "NC-1").unwrap();
        assert_eq!(history[0], before);
        assert_eq!(
            history
                .iter()
                .map(|v| (v.version, v.superseded_by, v.processed_at.is_some()))
                .collect::<Vec<_>>(),
            [
                (1, Some(v2), true),
                (2, Some(third.id()), true),
                (3, None, false)
            ]
        );
        assert_eq!(history[0].body, "{\"qty\":1}");
        // Other keys and sources are separate.
        assert!(matches!(
            store.inbox_put("norce-event", "NC-1", "{}").unwrap(),
            InboxPut::Inserted(_)
        ));
        // Once processed, the key is queued anew (as before): a later change of the order.
        store.inbox_done(third.id()).unwrap();
        let again = store
            .inbox_put("norce-order", "NC-1", "{\"qty\":1}")
            .unwrap();
        assert!(matches!(again, InboxPut::Inserted(_)), "{again:?}");
        assert_eq!(
            store.inbox_history("norce-order", "NC-1").unwrap()[3].version,
            4
        );
    }

    #[test]
    fn prune_by_age_keeps_unfinished_work_and_the_entity_records() {
        let (store, clock) = clocked(SqliteStore::in_memory().unwrap());
        let old = processed(&store, "OLD", "{\"big\":true}");
        store.inbox_put("norce-order", "QUEUED", "{}").unwrap();
        finished(&store, "orders", "DONE", Status::Done);
        finished(&store, "shipping", "SKIPPED", Status::Skipped);
        store
            .upsert_pending("orders", "PENDING", Some("{}"))
            .unwrap();
        store
            .upsert_pending("orders", "FAILED", Some("{}"))
            .unwrap();
        store
            .dead_letter("orders", "FAILED", "unknown SKU")
            .unwrap();
        set(&clock, t0() + days(10));
        let recent = processed(&store, "RECENT", "{}");
        finished(&store, "orders", "RECENT", Status::Done);

        let policy = RetentionPolicy {
            max_age: days(30),
            ..RetentionPolicy::default()
        };
        // Nothing is 30 days old yet.
        let report = store.prune(&policy, t0() + days(29), 500).unwrap();
        assert_eq!(report, PruneReport::default());

        let report = store.prune(&policy, t0() + days(31), 500).unwrap();
        assert_eq!(
            (report.inbox_rows_deleted, report.payloads_cleared),
            (1, 2),
            "{report:?}"
        );
        assert!(
            store
                .inbox_history("norce-order", "OLD")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.inbox_history("norce-order", "RECENT").unwrap()[0].id,
            recent
        );
        assert_ne!(old, recent);
        assert_eq!(
            store.inbox_pending(10).unwrap().len(),
            1,
            "queued items stay"
        );
        // Finished: payload gone, record kept (a repeat push is still recognised).
        let done = store.get("orders", "DONE").unwrap().unwrap();
        assert_eq!(
            (done.status, done.target_id.as_deref(), done.payload),
            (Status::Done, Some("T-DONE"), None)
        );
        assert_eq!(payload(&store, "shipping", "SKIPPED"), None);
        assert!(payload(&store, "orders", "RECENT").is_some());
        assert!(payload(&store, "orders", "PENDING").is_some());
        assert!(payload(&store, "orders", "FAILED").is_some());
        assert_eq!(store.dead_letters().unwrap().len(), 1);
    }

    #[test]
    fn prune_by_count_keeps_the_newest_processed_rows_and_payloads_per_flow() {
        let (store, clock) = clocked(SqliteStore::in_memory().unwrap());
        for n in 0..25 {
            set(&clock, t0() + TimeDelta::minutes(n));
            processed(&store, &format!("K{n:02}"), "{}");
            finished(&store, "orders", &format!("O{n:02}"), Status::Done);
            if n < 3 {
                finished(&store, "shipping", &format!("S{n:02}"), Status::Done);
            }
        }
        let policy = RetentionPolicy {
            max_age: days(30),
            max_processed_inbox_rows: 10,
            max_finished_payloads_per_flow: 5,
        };
        let report = store.prune(&policy, t0() + days(1), 500).unwrap();
        assert_eq!(
            (report.inbox_rows_deleted, report.payloads_cleared),
            (15, 20),
            "{report:?}"
        );
        for n in 0..25 {
            let key = format!("K{n:02}");
            assert_eq!(
                store.inbox_history("norce-order", &key).unwrap().len(),
                usize::from(n >= 15),
                "{key}"
            );
            assert_eq!(
                payload(&store, "orders", &format!("O{n:02}")).is_some(),
                n >= 20,
                "O{n:02}"
            );
        }
        for n in 0..3 {
            assert!(payload(&store, "shipping", &format!("S{n:02}")).is_some());
        }
        // Within the bounds now: a second prune changes nothing.
        assert_eq!(
            store.prune(&policy, t0() + days(1), 500).unwrap(),
            PruneReport::default()
        );
    }

    #[test]
    fn dead_letters_and_their_payloads_are_kept_until_requeued() {
        let (store, clock) = clocked(SqliteStore::in_memory().unwrap());
        store
            .upsert_pending("orders", "NC-9", Some("{\"x\":1}"))
            .unwrap();
        let letter = store.dead_letter("orders", "NC-9", "unknown SKU").unwrap();
        let tight = RetentionPolicy {
            max_age: days(1),
            max_processed_inbox_rows: 1,
            max_finished_payloads_per_flow: 1,
        };
        store.prune(&tight, t0() + days(400), 500).unwrap();
        assert_eq!(store.dead_letters().unwrap(), std::slice::from_ref(&letter));
        assert_eq!(
            payload(&store, "orders", "NC-9").as_deref(),
            Some("{\"x\":1}")
        );
        // Replayed and finished: from then on it ages like any finished entity.
        set(&clock, t0() + days(400));
        store.requeue(letter.id).unwrap();
        store
            .update(
                "orders",
                "NC-9",
                &EntityUpdate {
                    status: Some(Status::Done),
                    ..Default::default()
                },
            )
            .unwrap();
        store.prune(&tight, t0() + days(400), 500).unwrap();
        assert!(
            payload(&store, "orders", "NC-9").is_some(),
            "not a day old yet"
        );
        store.prune(&tight, t0() + days(402), 500).unwrap();
        assert_eq!(payload(&store, "orders", "NC-9"), None);
    }

    #[test]
    fn prune_works_in_batches() {
        let (store, _clock) = clocked(SqliteStore::in_memory().unwrap());
        for n in 0..1234 {
            processed(&store, &format!("K{n}"), "{}");
        }
        for n in 0..250 {
            finished(&store, "stock", &format!("P{n}"), Status::Done);
        }
        let policy = RetentionPolicy {
            max_age: days(1),
            ..RetentionPolicy::default()
        };
        let report = store.prune(&policy, t0() + days(2), 100).unwrap();
        assert_eq!(report.inbox_rows_deleted, 1234);
        assert_eq!(report.payloads_cleared, 250);
        // ⌈1234 / 100⌉ + ⌈250 / 100⌉ transactions, none over 100 rows.
        assert_eq!(report.batches, 13 + 3, "{report:?}");
        assert_eq!(store.size().unwrap().inbox_rows, 0);
    }

    /// The layout before inbox versions (what a `state.sqlite` written by the previous version
    /// holds), as that version created it.
    const SCHEMA_BEFORE_VERSIONS: &str = "
        CREATE TABLE entities (flow TEXT NOT NULL, source_id TEXT NOT NULL, target_id TEXT, status TEXT NOT NULL,
            step TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, payload TEXT, updated_at TEXT NOT NULL,
            seq INTEGER NOT NULL, PRIMARY KEY (flow, source_id));
        CREATE INDEX entities_status ON entities (flow, status, seq);
        CREATE INDEX entities_seq ON entities (seq);
        CREATE TABLE aliases (flow TEXT NOT NULL, alias TEXT NOT NULL, source_id TEXT NOT NULL, PRIMARY KEY (flow, alias));
        CREATE TABLE cursors (flow TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, key TEXT NOT NULL,
            body TEXT NOT NULL, received_at TEXT NOT NULL, processed_at TEXT);
        CREATE UNIQUE INDEX inbox_unprocessed ON inbox (source, key) WHERE processed_at IS NULL;
        CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, flow TEXT NOT NULL, source_id TEXT NOT NULL,
            error TEXT NOT NULL, payload TEXT, created_at TEXT NOT NULL);
    ";

    /// A `state.sqlite` as the previous version left it: WAL, no auto-vacuum, old columns.
    fn file_before_versions(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("state.sqlite");
        let old = Connection::open(&path).unwrap();
        old.pragma_update(None, "journal_mode", "WAL").unwrap();
        old.execute_batch(SCHEMA_BEFORE_VERSIONS).unwrap();
        old.execute_batch(
            "INSERT INTO inbox (source, key, body, received_at) VALUES ('norce-order', 'NC-1', '{\"qty\":1}', '2026-01-01T00:00:00.000Z');
             INSERT INTO inbox (source, key, body, received_at, processed_at) VALUES ('norce-order', 'NC-0', '{}', '2025-11-01T00:00:00.000Z', '2025-11-01T00:00:01.000Z');
             INSERT INTO entities (flow, source_id, status, payload, updated_at, seq) VALUES ('orders', 'NC-0', 'done', '{}', '2025-11-01T00:00:02.000Z', 1);
             INSERT INTO dead_letters (flow, source_id, error, payload, created_at) VALUES ('orders', 'NC-7', 'unknown SKU', '{}', '2025-10-01T00:00:00.000Z');",
        )
        .unwrap();
        path
    }

    #[test]
    fn a_state_file_from_before_versions_opens_and_works() {
        let dir = unique_dir("migrate");
        let path = file_before_versions(&dir);
        for _ in 0..2 {
            // Twice: the migration runs once, a second open finds nothing to do.
            let store = SqliteStore::open(&path).unwrap();
            let version: i64 = store
                .conn()
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(version, SCHEMA_VERSION);
        }
        let (store, _clock) = clocked(SqliteStore::open(&path).unwrap());
        let pending = store.inbox_pending(10).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].body, "{\"qty\":1}");
        assert_eq!(
            store
                .inbox_put("norce-order", "NC-1", "{\"qty\":1}")
                .unwrap(),
            InboxPut::Duplicate(pending[0].id)
        );
        let put = store
            .inbox_put("norce-order", "NC-1", "{\"qty\":2}")
            .unwrap();
        assert!(
            matches!(put, InboxPut::Updated { version: 2, superseded, .. } if superseded == pending[0].id),
            "{put:?}"
        );
        let history = store.inbox_history("norce-order", "NC-1").unwrap();
        assert_eq!(
            history.iter().map(|v| v.version).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            store.get("orders", "NC-0").unwrap().unwrap().status,
            Status::Done
        );
        // Pruning works on it: the old processed row and finished payload go, the dead letter stays.
        let report = store
            .prune(&RetentionPolicy::default(), t0() + days(31), 500)
            .unwrap();
        assert_eq!(
            (report.inbox_rows_deleted, report.payloads_cleared),
            (2, 1),
            "the row from November and the superseded version: {report:?}"
        );
        assert_eq!(store.dead_letters().unwrap().len(), 1);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Fills the inbox with `rows` processed rows of `bytes` each.
    fn fill(store: &SqliteStore, rows: usize, bytes: usize) {
        let body = "x".repeat(bytes);
        for n in 0..rows {
            processed(store, &format!("K{n}"), &body);
        }
    }

    #[test]
    fn pruning_gives_the_space_back_to_the_file_system() {
        let dir = unique_dir("reclaim");
        let (store, _clock) = clocked(SqliteStore::open_in(&dir).unwrap());
        let mode: i64 = store
            .conn()
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!(
            mode, AUTO_VACUUM_INCREMENTAL,
            "a new file vacuums incrementally"
        );
        fill(&store, 2000, 10_000);
        let payload = "y".repeat(10_000);
        for n in 0..2000 {
            let source_id = format!("E{n}");
            store
                .upsert_pending("orders", &source_id, Some(&payload))
                .unwrap();
            store
                .update(
                    "orders",
                    &source_id,
                    &EntityUpdate {
                        status: Some(Status::Done),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        store
            .conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let full = store.size().unwrap();
        assert!(full.file_bytes > 40_000_000, "{full:?}");
        let policy = RetentionPolicy {
            max_processed_inbox_rows: 100,
            max_finished_payloads_per_flow: 100,
            ..RetentionPolicy::default()
        };
        let report = store.prune(&policy, t0(), 500).unwrap();
        assert_eq!(
            (report.inbox_rows_deleted, report.payloads_cleared),
            (1900, 1900)
        );
        assert!(
            report.pages_reclaimed > 8000 && !report.vacuumed,
            "{report:?}"
        );
        store
            .conn()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let pruned = store.size().unwrap();
        // What is left: 100 inbox rows and 100 payloads of 10 kB, and 2,000 small records,
        // packed again (an update to NULL would leave them two to a page, about 4 MB here).
        assert!(pruned.file_bytes < 3_500_000, "{full:?} → {pruned:?}");
        assert_eq!((pruned.inbox_rows, pruned.inbox_pending), (100, 0));
        assert_eq!((pruned.entities, pruned.entity_payloads), (2000, 100));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_older_file_is_rewritten_once_to_vacuum_incrementally() {
        let dir = unique_dir("vacuum");
        let path = file_before_versions(&dir);
        let (store, _clock) = clocked(SqliteStore::open(&path).unwrap());
        let mode = |store: &SqliteStore| -> i64 {
            store
                .conn()
                .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
                .unwrap()
        };
        assert_eq!(mode(&store), AUTO_VACUUM_NONE);
        fill(&store, 2000, 10_000);
        let policy = RetentionPolicy {
            max_processed_inbox_rows: 100,
            ..RetentionPolicy::default()
        };
        let report = store.prune(&policy, t0(), 500).unwrap();
        assert!(
            report.vacuumed && report.pages_reclaimed > 4000,
            "{report:?}"
        );
        assert_eq!(mode(&store), AUTO_VACUUM_INCREMENTAL);
        assert!(store.size().unwrap().file_bytes < 5_000_000);
        assert_eq!(
            store.inbox_pending(10).unwrap().len(),
            1,
            "the data survives"
        );
        // From then on, incremental vacuum.
        fill(&store, 2000, 10_000);
        let report = store.prune(&policy, t0(), 500).unwrap();
        assert!(
            !report.vacuumed && report.pages_reclaimed > 4000,
            "{report:?}"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn clearing_a_payload_keeps_every_other_column() {
        let store = SqliteStore::in_memory().unwrap();
        let columns: Vec<String> = store
            .conn()
            .prepare("SELECT name FROM pragma_table_info('entities') WHERE name != 'payload'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(columns.join(", "), ENTITY_COLUMNS_BUT_PAYLOAD);
        finished(&store, "orders", "A", Status::Done);
        store.record_failure("orders", "A", "503 once").unwrap();
        store.set_alias("orders", "NC-A", "A").unwrap();
        let before = store.get("orders", "A").unwrap().unwrap();
        let policy = RetentionPolicy {
            max_finished_payloads_per_flow: 1,
            ..RetentionPolicy::default()
        };
        finished(&store, "orders", "B", Status::Done);
        store.prune(&policy, t0(), 500).unwrap();
        let after = store.get("orders", "A").unwrap().unwrap();
        assert_eq!(
            after,
            EntityRecord {
                payload: None,
                ..before
            }
        );
        assert_eq!(
            store.find_alias("orders", "NC-A").unwrap().as_deref(),
            Some("A")
        );
        // Later records still come after it.
        let page = store.list_after("orders", None, 0, 10).unwrap();
        assert_eq!(
            page.iter()
                .map(|r| r.source_id.as_str())
                .collect::<Vec<_>>(),
            ["A", "B"]
        );
    }

    #[test]
    fn size_counts_rows_and_bytes() {
        let store = SqliteStore::in_memory().unwrap();
        processed(&store, "A", "{}");
        store.inbox_put("norce-order", "B", "{}").unwrap();
        finished(&store, "orders", "A", Status::Done);
        store.upsert_pending("orders", "B", None).unwrap();
        store.dead_letter("orders", "B", "why").unwrap();
        let size = store.size().unwrap();
        assert_eq!(
            (
                size.inbox_rows,
                size.inbox_pending,
                size.entities,
                size.entity_payloads,
                size.dead_letters
            ),
            (2, 1, 2, 1, 1)
        );
        assert!(size.file_bytes > 0 && size.wal_bytes == 0);
    }

    #[test]
    fn time_cursor_errors_name_the_flow_and_the_fix() {
        let err = parse_time_cursor("shipping", "yesterday").unwrap_err();
        assert!(err.contains("`shipping`") && err.contains("relay cursor set shipping"));
    }
}
