//! The SQLite store: the embedded default (a file in the data folder, WAL mode).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::store::{
    DeadLetter, EntityEvent, EntityQuery, EntityRecord, EntityUpdate, EventKind, HourlyOutcome,
    InboxItem, InboxLane, InboxPut, InboxVersion, Lease, Lookup, Outcome, PruneReport,
    RetentionPolicy, SharedValue, SqlValue, StateError, StateSize, Status, Store, cursor_change,
    event_kind_of, from_micros, gcra_reserve, history_cutoffs, hour_of, micros, parse_stamp,
    requeue_detail, search_sql, stamp_of, update_effects,
};

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
/// versions, 1 before the `lookups` table, 3 before the operator's view (`entity_events`,
/// `outcome_hours` and the search indexes); all brought up to date by [`prepare`].
const SCHEMA_VERSION: i64 = 4;

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
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shared_values (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_limits (
    key TEXT PRIMARY KEY,
    tat_us INTEGER NOT NULL,
    paused_until_us INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flow TEXT NOT NULL,
    source_id TEXT NOT NULL,
    error TEXT NOT NULL,
    payload TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entity_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flow TEXT NOT NULL,
    source_id TEXT NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    step TEXT,
    status TEXT,
    detail TEXT,
    actor TEXT
);
CREATE TABLE IF NOT EXISTS outcome_hours (
    hour TEXT NOT NULL,
    flow TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour, flow, outcome)
);
";

/// Columns added since the first layout: (table, column, definition).
const ADDED_COLUMNS: [(&str, &str, &str); 2] = [
    ("inbox", "version", "INTEGER NOT NULL DEFAULT 1"),
    ("inbox", "superseded_by", "INTEGER"),
];

/// Indexes over added columns (created once the columns exist), for pruning (the partial ones
/// hold only what a prune looks at, so their size follows the retention bounds), and for the
/// operator's view: an entity found by any of its ids ([`Store::search`]), its history and dead
/// letters, and the audit log, none by scanning a table.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS inbox_key ON inbox (source, key, version);
CREATE INDEX IF NOT EXISTS inbox_processed ON inbox (processed_at) WHERE processed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS entities_finished ON entities (flow, updated_at)
    WHERE payload IS NOT NULL AND status IN ('done', 'skipped', 'resolved');
CREATE INDEX IF NOT EXISTS entities_flow ON entities (flow, seq);
CREATE INDEX IF NOT EXISTS entities_by_status ON entities (status, seq);
CREATE INDEX IF NOT EXISTS entities_updated ON entities (updated_at);
CREATE INDEX IF NOT EXISTS entities_source ON entities (source_id);
CREATE INDEX IF NOT EXISTS entities_target ON entities (target_id);
CREATE INDEX IF NOT EXISTS aliases_alias ON aliases (alias);
CREATE INDEX IF NOT EXISTS lookups_key ON lookups (key);
CREATE INDEX IF NOT EXISTS dead_letters_entity ON dead_letters (flow, source_id);
CREATE INDEX IF NOT EXISTS dead_letters_flow ON dead_letters (flow, id);
CREATE INDEX IF NOT EXISTS entity_events_entity ON entity_events (flow, source_id, id);
CREATE INDEX IF NOT EXISTS entity_events_audit ON entity_events (id) WHERE actor IS NOT NULL;
CREATE INDEX IF NOT EXISTS entity_events_age ON entity_events (at) WHERE actor IS NULL;
";

/// Creates the tables, or brings a file of an earlier layout up to date, in one transaction
/// (two processes opening the same old file must not both add a column).
fn prepare(connection: &mut Connection) -> Result<(), StateError> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StateError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    tx.execute_batch(SCHEMA)?;
    if (1..4).contains(&found) {
        // Version 4 added `resolved` to the finished statuses whose payloads are pruned: the
        // partial index is recreated with it below.
        tx.execute_batch("DROP INDEX IF EXISTS entities_finished")?;
    }
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

/// Clears the payload of the entities `filter` picks (`[INDEXED BY …] WHERE … LIMIT ?n` over
/// `entities`), in one transaction; returns how many.
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

fn event_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EntityEvent> {
    let kind: String = row.get("kind")?;
    let status: Option<String> = row.get("status")?;
    Ok(EntityEvent {
        id: row.get("id")?,
        flow: row.get("flow")?,
        source_id: row.get("source_id")?,
        at: row.get("at")?,
        kind: event_kind_of(&kind),
        step: row.get("step")?,
        status: status.as_deref().map(Status::parse),
        detail: row.get("detail")?,
        actor: row.get("actor")?,
    })
}

/// An entry of the history, written in the transaction of the change it describes.
struct Event<'a> {
    flow: &'a str,
    source_id: &'a str,
    kind: EventKind,
    step: Option<&'a str>,
    status: Option<Status>,
    detail: Option<&'a str>,
    actor: Option<&'a str>,
}

impl<'a> Event<'a> {
    /// An entry of the flows (no actor) about an entity, in `status` after it.
    fn of(flow: &'a str, source_id: &'a str, kind: EventKind, status: Status) -> Self {
        Event {
            flow,
            source_id,
            kind,
            step: None,
            status: Some(status),
            detail: None,
            actor: None,
        }
    }

    /// Writes it, stamped `at`.
    fn add(&self, conn: &Connection, at: &str) -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO entity_events (flow, source_id, at, kind, step, status, detail, actor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            self.flow,
            self.source_id,
            at,
            self.kind.as_str(),
            self.step,
            self.status.map(Status::as_str),
            self.detail,
            self.actor
        ])?;
        Ok(())
    }
}

/// Counts one `outcome` of `flow` in the hour `now` falls in (in the caller's transaction).
fn count_outcome(
    conn: &Connection,
    now: DateTime<Utc>,
    flow: &str,
    outcome: Outcome,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO outcome_hours (hour, flow, outcome, count) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (hour, flow, outcome) DO UPDATE SET count = count + 1",
    )?
    .execute(params![hour_of(now), flow, outcome.as_str()])?;
    Ok(())
}

/// A search parameter as SQLite binds it.
fn sql_value(value: &SqlValue) -> &dyn rusqlite::ToSql {
    match value {
        SqlValue::Text(text) => text,
        SqlValue::Int(number) => number,
    }
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

    /// The current time (one reading for a change and the history it records).
    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// [`Store::requeue_by`], or the flows' own requeue when `actor` is `None`.
    fn requeue_as(
        &self,
        dead_letter_id: i64,
        actor: Option<&str>,
    ) -> Result<Option<EntityRecord>, StateError> {
        let stamp = self.stamp();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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
            params![letter.flow, letter.source_id, stamp],
        )?;
        let record = Self::get_with(&tx, &letter.flow, &letter.source_id)?;
        // Also for a letter without a record: the letter is gone, and who removed it is kept.
        let detail = requeue_detail(dead_letter_id);
        Event {
            status: record.as_ref().map(|r| r.status),
            detail: Some(&detail),
            actor,
            ..Event::of(
                &letter.flow,
                &letter.source_id,
                EventKind::Requeued,
                Status::Pending,
            )
        }
        .add(&tx, &stamp)?;
        tx.commit()?;
        Ok(record)
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

/// How far [`range_index`] counts the records of a time range: enough to tell a sparse range
/// from a dense one, bounded so that counting itself stays a millisecond or two.
const RANGE_COUNT_CAP: i64 = 20_000;

/// A time range with at most this many records is always read through `entities_updated`:
/// reading and sorting them is cheap (a few milliseconds), while a walk in page order could
/// pass every record when the range holds fewer than a page.
const SMALL_RANGE: i64 = 5_000;

/// The index a search with a time range walks, where SQLite's planner, which does not weigh a
/// range's width, would choose badly; `None` leaves the choice to the planner.
///
/// A reference is looked up through its own indexes. A range is weighed by two counts over
/// `entities_updated`, each capped: the records inside it (read and sorted if that index is
/// chosen) and those changed after it (passed by a walk in page order before the range
/// begins). A small range, or one with fewer records than come after it, is read; a dense
/// recent one is walked newest first and the walk stops after a page. Measured at 100,000
/// records (`benches/console.rs`): the last 30 days read 50,000 records and sorted them in
/// 218 ms, the last 7 days 12,000 in 50 ms; walked, each takes about 2 ms.
fn range_index(conn: &Connection, query: &EntityQuery) -> Result<Option<&'static str>, StateError> {
    if query.reference.is_some() || (query.updated_from.is_none() && query.updated_to.is_none()) {
        return Ok(None);
    }
    let count = |condition: &str, values: &[String]| -> Result<i64, StateError> {
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM entities INDEXED BY entities_updated
             WHERE {condition} LIMIT {RANGE_COUNT_CAP})"
        );
        let values: Vec<&dyn rusqlite::ToSql> =
            values.iter().map(|v| v as &dyn rusqlite::ToSql).collect();
        Ok(conn
            .prepare_cached(&sql)?
            .query_row(values.as_slice(), |r| r.get(0))?)
    };
    let mut bounds = Vec::new();
    let mut values = Vec::new();
    for (bound, time) in [(">=", query.updated_from), ("<", query.updated_to)] {
        if let Some(time) = time {
            values.push(stamp_of(time));
            bounds.push(format!("updated_at {bound} ?{}", values.len()));
        }
    }
    let inside = count(&bounds.join(" AND "), &values)?;
    if inside <= SMALL_RANGE {
        return Ok(Some("entities_updated"));
    }
    let newer = match query.updated_to {
        Some(to) => count("updated_at >= ?1", &[stamp_of(to)])?,
        None => 0,
    };
    if inside < RANGE_COUNT_CAP && inside < newer {
        return Ok(Some("entities_updated"));
    }
    Ok(Some(match (&query.flow, query.status) {
        (Some(_), Some(_)) => "entities_status",
        (Some(_), None) => "entities_flow",
        (None, Some(_)) => "entities_by_status",
        (None, None) => "entities_seq",
    }))
}

/// [`search_sql`] for SQLite, walking `index` when one is given (see [`range_index`]).
fn sqlite_search_sql(query: &EntityQuery, index: Option<&str>) -> (String, Vec<SqlValue>) {
    let (sql, values) = search_sql(query, "entities.*", |n| format!("?{n}"));
    match index {
        Some(index) => (
            sql.replacen(
                " FROM entities ",
                &format!(" FROM entities INDEXED BY {index} "),
                1,
            ),
            values,
        ),
        None => (sql, values),
    }
}

impl Store for SqliteStore {
    fn size(&self) -> Result<StateSize, StateError> {
        SqliteStore::size(self)
    }

    fn upsert_pending(
        &self,
        flow: &str,
        source_id: &str,
        payload: Option<&str>,
    ) -> Result<EntityRecord, StateError> {
        let stamp = self.stamp();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let created = tx
            .prepare_cached(
                "INSERT INTO entities (flow, source_id, status, payload, updated_at, seq)
                 VALUES (?1, ?2, 'pending', ?3, ?4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM entities))
                 ON CONFLICT (flow, source_id) DO NOTHING",
            )?
            .execute(params![flow, source_id, payload, stamp])?;
        if created == 1 {
            Event::of(flow, source_id, EventKind::Created, Status::Pending).add(&tx, &stamp)?;
        }
        let record = Self::get_existing(&tx, flow, source_id)?;
        tx.commit()?;
        Ok(record)
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
        let now = self.now();
        let stamp = stamp_of(now);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before = Self::get_existing(&tx, flow, source_id)?;
        tx.prepare_cached(
            "UPDATE entities SET
                status = COALESCE(?3, status),
                step = COALESCE(?4, step),
                target_id = COALESCE(?5, target_id),
                payload = COALESCE(?6, payload),
                last_error = CASE WHEN ?7 THEN NULL ELSE last_error END,
                updated_at = ?8
             WHERE flow = ?1 AND source_id = ?2",
        )?
        .execute(params![
            flow,
            source_id,
            update.status.map(Status::as_str),
            update.step,
            update.target_id,
            update.payload,
            update.clear_error,
            stamp
        ])?;
        let after = Self::get_existing(&tx, flow, source_id)?;
        let (step_changed, outcome) = update_effects(before.step.as_deref(), before.status, &after);
        if step_changed {
            Event {
                step: after.step.as_deref(),
                ..Event::of(flow, source_id, EventKind::Step, after.status)
            }
            .add(&tx, &stamp)?;
        }
        if let Some(outcome) = outcome {
            count_outcome(&tx, now, flow, outcome)?;
        }
        tx.commit()?;
        Ok(after)
    }

    fn record_failure(
        &self,
        flow: &str,
        source_id: &str,
        error: &str,
    ) -> Result<EntityRecord, StateError> {
        let now = self.now();
        let stamp = stamp_of(now);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE entities SET attempts = attempts + 1, last_error = ?3, updated_at = ?4 WHERE flow = ?1 AND source_id = ?2",
            params![flow, source_id, error, stamp],
        )?;
        let record = Self::get_existing(&tx, flow, source_id)?;
        Event {
            detail: Some(error),
            ..Event::of(flow, source_id, EventKind::AttemptFailed, record.status)
        }
        .add(&tx, &stamp)?;
        count_outcome(&tx, now, flow, Outcome::AttemptFailed)?;
        tx.commit()?;
        Ok(record)
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
        let now = self.now();
        let stamp = stamp_of(now);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE entities SET status = 'failed', last_error = ?3, updated_at = ?4 WHERE flow = ?1 AND source_id = ?2",
            params![flow, source_id, error, stamp],
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
            params![flow, source_id, error, payload, stamp],
        )?;
        let id = tx.last_insert_rowid();
        // Also for an entity without a record: its letter is filed, and so is its history.
        Event {
            detail: Some(error),
            ..Event::of(flow, source_id, EventKind::DeadLettered, Status::Failed)
        }
        .add(&tx, &stamp)?;
        count_outcome(&tx, now, flow, Outcome::Failed)?;
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
        self.requeue_as(dead_letter_id, None)
    }

    fn events(
        &self,
        flow: &str,
        source_id: &str,
        limit: usize,
    ) -> Result<Vec<EntityEvent>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT * FROM (SELECT * FROM entity_events WHERE flow = ?1 AND source_id = ?2
                            ORDER BY id DESC LIMIT ?3)
             ORDER BY id",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement.query_map(params![flow, source_id, limit], event_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<EntityEvent>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT * FROM entity_events WHERE actor IS NOT NULL ORDER BY id DESC LIMIT ?1",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement.query_map(params![limit], event_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn search(&self, query: &EntityQuery) -> Result<Vec<EntityRecord>, StateError> {
        let conn = self.conn();
        let (sql, values) = sqlite_search_sql(query, range_index(&conn, query)?);
        let mut statement = conn.prepare_cached(&sql)?;
        let values: Vec<&dyn rusqlite::ToSql> = values.iter().map(sql_value).collect();
        let rows = statement.query_map(values.as_slice(), entity)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn hourly_outcomes(&self, since: DateTime<Utc>) -> Result<Vec<HourlyOutcome>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT hour, flow, outcome, count FROM outcome_hours WHERE hour >= ?1
             ORDER BY hour, flow, outcome",
        )?;
        let rows = statement.query_map(params![hour_of(since)], |row| {
            let outcome: String = row.get(2)?;
            Ok((row.get(0)?, row.get(1)?, outcome, row.get(3)?))
        })?;
        let mut hours = Vec::new();
        for row in rows {
            let (hour, flow, outcome, count) = row?;
            // Only the three outcomes are written.
            if let Some(outcome) = Outcome::from_name(&outcome) {
                hours.push(HourlyOutcome {
                    hour,
                    flow,
                    outcome,
                    count,
                });
            }
        }
        Ok(hours)
    }

    fn dead_letters_page(
        &self,
        flow: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StateError> {
        let conn = self.conn();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Two statements rather than `(?1 IS NULL OR flow = ?1)`, which no index serves.
        let rows = match flow {
            Some(flow) => conn
                .prepare_cached(
                    "SELECT * FROM dead_letters WHERE flow = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                )?
                .query_map(params![flow, after, limit], dead_letter_row)?
                .collect::<Result<_, _>>()?,
            None => conn
                .prepare_cached("SELECT * FROM dead_letters WHERE id > ?1 ORDER BY id LIMIT ?2")?
                .query_map(params![after, limit], dead_letter_row)?
                .collect::<Result<_, _>>()?,
        };
        Ok(rows)
    }

    fn dead_letters_of(&self, flow: &str, source_id: &str) -> Result<Vec<DeadLetter>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT * FROM dead_letters WHERE flow = ?1 AND source_id = ?2 ORDER BY id",
        )?;
        let rows = statement.query_map(params![flow, source_id], dead_letter_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT flow, COUNT(*) FROM dead_letters GROUP BY flow ORDER BY flow",
        )?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn requeue_by(
        &self,
        dead_letter_id: i64,
        actor: &str,
    ) -> Result<Option<EntityRecord>, StateError> {
        self.requeue_as(dead_letter_id, Some(actor))
    }

    fn resolve(
        &self,
        flow: &str,
        source_id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<Option<EntityRecord>, StateError> {
        let stamp = self.stamp();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let resolved = tx.execute(
            "UPDATE entities SET status = ?3, updated_at = ?4 WHERE flow = ?1 AND source_id = ?2",
            params![flow, source_id, Status::Resolved.as_str(), stamp],
        )?;
        if resolved == 0 {
            return Ok(None);
        }
        tx.execute(
            "DELETE FROM dead_letters WHERE flow = ?1 AND source_id = ?2",
            params![flow, source_id],
        )?;
        Event {
            detail: Some(reason),
            actor: Some(actor),
            ..Event::of(flow, source_id, EventKind::Resolved, Status::Resolved)
        }
        .add(&tx, &stamp)?;
        let record = Self::get_existing(&tx, flow, source_id)?;
        tx.commit()?;
        Ok(Some(record))
    }

    fn create_by(
        &self,
        flow: &str,
        source_id: &str,
        payload: &str,
        actor: &str,
        detail: &str,
    ) -> Result<Option<EntityRecord>, StateError> {
        let stamp = self.stamp();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let created = tx
            .prepare_cached(
                "INSERT INTO entities (flow, source_id, status, payload, updated_at, seq)
                 VALUES (?1, ?2, 'pending', ?3, ?4, (SELECT COALESCE(MAX(seq), 0) + 1 FROM entities))
                 ON CONFLICT (flow, source_id) DO NOTHING",
            )?
            .execute(params![flow, source_id, payload, stamp])?;
        if created == 0 {
            return Ok(None);
        }
        Event {
            detail: Some(detail),
            actor: Some(actor),
            ..Event::of(flow, source_id, EventKind::Created, Status::Pending)
        }
        .add(&tx, &stamp)?;
        let record = Self::get_existing(&tx, flow, source_id)?;
        tx.commit()?;
        Ok(Some(record))
    }

    fn set_cursor_by(
        &self,
        flow: &str,
        value: &str,
        actor: &str,
    ) -> Result<Option<String>, StateError> {
        let stamp = self.stamp();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before: Option<String> = tx
            .query_row(
                "SELECT value FROM cursors WHERE flow = ?1",
                params![flow],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "INSERT INTO cursors (flow, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (flow) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![flow, value, stamp],
        )?;
        let detail = cursor_change(before.as_deref(), value);
        Event {
            flow,
            source_id: "",
            kind: EventKind::CursorSet,
            step: None,
            status: None,
            detail: Some(&detail),
            actor: Some(actor),
        }
        .add(&tx, &stamp)?;
        tx.commit()?;
        Ok(before)
    }

    fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StateError> {
        let now = micros((self.clock)());
        let until = now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
        let changed = self.conn().prepare_cached(
            "INSERT INTO leases (name, holder, expires_us) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_us = excluded.expires_us
             WHERE leases.holder = excluded.holder OR leases.expires_us <= ?4",
        )?
        .execute(params![name, holder, until, now])?;
        Ok(changed == 1)
    }

    fn release(&self, name: &str, holder: &str) -> Result<(), StateError> {
        self.conn()
            .prepare_cached("DELETE FROM leases WHERE name = ?1 AND holder = ?2")?
            .execute(params![name, holder])?;
        Ok(())
    }

    fn leases(&self, prefix: &str) -> Result<Vec<Lease>, StateError> {
        let now = micros((self.clock)());
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT name, holder, expires_us FROM leases
             WHERE substr(name, 1, length(?1)) = ?1 AND expires_us > ?2 ORDER BY name",
        )?;
        let rows = statement.query_map(params![prefix, now], |row| {
            Ok(Lease {
                name: row.get(0)?,
                holder: row.get(1)?,
                expires_at: stamp_of(from_micros(row.get(2)?)),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn shared_get(&self, name: &str) -> Result<Option<SharedValue>, StateError> {
        let row: Option<(String, Option<String>)> = self
            .conn()
            .query_row(
                "SELECT value, expires_at FROM shared_values WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(value, expires_at)| SharedValue {
            value,
            expires_at: expires_at.and_then(|t| parse_stamp(&t)),
        }))
    }

    fn shared_swap(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &SharedValue,
    ) -> Result<bool, StateError> {
        let expires = value.expires_at.map(stamp_of);
        let conn = self.conn();
        let changed = match expected {
            None => conn.execute(
                "INSERT INTO shared_values (name, value, expires_at, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
                params![name, value.value, expires, self.stamp()],
            )?,
            Some(expected) => conn.execute(
                "UPDATE shared_values SET value = ?2, expires_at = ?3, updated_at = ?4
                 WHERE name = ?1 AND value = ?5",
                params![name, value.value, expires, self.stamp(), expected],
            )?,
        };
        Ok(changed == 1)
    }

    fn shared_put(&self, name: &str, value: &SharedValue) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT INTO shared_values (name, value, expires_at, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at,
                 updated_at = excluded.updated_at",
            params![name, value.value, value.expires_at.map(stamp_of), self.stamp()],
        )?;
        Ok(())
    }

    fn rate_reserve(
        &self,
        key: &str,
        period: std::time::Duration,
        burst: u32,
    ) -> Result<std::time::Duration, StateError> {
        let now = micros((self.clock)());
        let period = i64::try_from(period.as_micros()).unwrap_or(i64::MAX);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (tat, paused): (i64, i64) = tx
            .query_row(
                "SELECT tat_us, paused_until_us FROM rate_limits WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((now, 0));
        let (tat, wait) = gcra_reserve(tat, paused, now, period, burst);
        tx.execute(
            "INSERT INTO rate_limits (key, tat_us) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET tat_us = excluded.tat_us",
            params![key, tat],
        )?;
        tx.commit()?;
        Ok(wait)
    }

    fn rate_pause(&self, key: &str, until: DateTime<Utc>) -> Result<(), StateError> {
        let now = micros((self.clock)());
        self.conn().execute(
            "INSERT INTO rate_limits (key, tat_us, paused_until_us) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET paused_until_us = MAX(paused_until_us, excluded.paused_until_us)",
            params![key, now, micros(until)],
        )?;
        Ok(())
    }

    fn rate_paused_until(&self, key: &str) -> Result<Option<DateTime<Utc>>, StateError> {
        let now = micros((self.clock)());
        let until: Option<i64> = self
            .conn()
            .query_row(
                "SELECT paused_until_us FROM rate_limits WHERE key = ?1 AND paused_until_us > ?2",
                params![key, now],
                |r| r.get(0),
            )
            .optional()?;
        Ok(until.map(from_micros))
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
        // finished item is still recognised and never processed twice. Through the partial
        // index of the payloads still held, named: without statistics SQLite would rather walk
        // `entities_by_status`, all the done records, most of them long cleared.
        report.payloads_cleared +=
            self.in_batches(batch, u64::MAX, &mut report.batches, |conn, limit| {
                clear_payloads(
                    conn,
                    "INDEXED BY entities_finished
                     WHERE payload IS NOT NULL AND status IN ('done', 'skipped', 'resolved') AND updated_at < ?1
                     LIMIT ?2",
                    params![cutoff, limit],
                )
            })?;
        let per_flow: Vec<(String, u64)> = {
            let conn = self.conn();
            let mut statement = conn.prepare_cached(
                "SELECT flow, COUNT(*) FROM entities INDEXED BY entities_finished
                 WHERE payload IS NOT NULL AND status IN ('done', 'skipped', 'resolved') GROUP BY flow",
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
                        "INDEXED BY entities_finished
                         WHERE flow = ?1 AND payload IS NOT NULL AND status IN ('done', 'skipped', 'resolved')
                         ORDER BY updated_at LIMIT ?2",
                        params![flow, limit],
                    )
                })?;
        }

        // The flows' history and the hourly outcomes; the operators' entries (the audit log) stay.
        let (events_cutoff, hours_cutoff) = history_cutoffs(policy, now);
        self.in_batches(batch, u64::MAX, &mut report.batches, |conn, limit| {
            conn.prepare_cached(
                "DELETE FROM entity_events WHERE id IN (SELECT id FROM entity_events
                 WHERE actor IS NULL AND at < ?1 ORDER BY at LIMIT ?2)",
            )?
            .execute(params![events_cutoff, limit])
        })?;
        self.in_batches(batch, u64::MAX, &mut report.batches, |conn, limit| {
            conn.prepare_cached(
                "DELETE FROM outcome_hours WHERE rowid IN (SELECT rowid FROM outcome_hours
                 WHERE hour < ?1 LIMIT ?2)",
            )?
            .execute(params![hours_cutoff, limit])
        })?;

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

#[cfg(test)]
mod tests {
    //! What only the SQLite store has: its file, its space and its older layouts. The
    //! behaviour every store shares is tested once for both backends in `state::tests`.

    use super::*;
    use crate::state::tests::{days, fake_clock, finished, processed, t0};

    /// The store on a fake clock at `t0`.
    fn clocked(store: SqliteStore) -> SqliteStore {
        let (_clock, read) = fake_clock();
        store.with_clock(read)
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

    fn unique_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("relay-state-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
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
        let store = clocked(SqliteStore::open(&path).unwrap());
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
        let store = clocked(SqliteStore::open_in(&dir).unwrap());
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
        let store = clocked(SqliteStore::open(&path).unwrap());
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
    fn the_columns_put_back_after_clearing_a_payload_are_all_but_the_payload() {
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
    }

    /// The layout of version 3 (before the operator's view), as that version created it.
    const SCHEMA_V3: &str = "
        CREATE TABLE entities (flow TEXT NOT NULL, source_id TEXT NOT NULL, target_id TEXT, status TEXT NOT NULL,
            step TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, payload TEXT, updated_at TEXT NOT NULL,
            seq INTEGER NOT NULL, PRIMARY KEY (flow, source_id));
        CREATE INDEX entities_status ON entities (flow, status, seq);
        CREATE INDEX entities_seq ON entities (seq);
        CREATE TABLE aliases (flow TEXT NOT NULL, alias TEXT NOT NULL, source_id TEXT NOT NULL, PRIMARY KEY (flow, alias));
        CREATE TABLE cursors (flow TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE lookups (map TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, updated_at TEXT NOT NULL,
            PRIMARY KEY (map, key));
        CREATE TABLE inbox (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, key TEXT NOT NULL,
            body TEXT NOT NULL, received_at TEXT NOT NULL, processed_at TEXT, version INTEGER NOT NULL DEFAULT 1,
            superseded_by INTEGER);
        CREATE UNIQUE INDEX inbox_unprocessed ON inbox (source, key) WHERE processed_at IS NULL;
        CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_us INTEGER NOT NULL);
        CREATE TABLE shared_values (name TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at TEXT, updated_at TEXT NOT NULL);
        CREATE TABLE rate_limits (key TEXT PRIMARY KEY, tat_us INTEGER NOT NULL, paused_until_us INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, flow TEXT NOT NULL, source_id TEXT NOT NULL,
            error TEXT NOT NULL, payload TEXT, created_at TEXT NOT NULL);
        CREATE INDEX inbox_key ON inbox (source, key, version);
        CREATE INDEX inbox_processed ON inbox (processed_at) WHERE processed_at IS NOT NULL;
        CREATE INDEX entities_finished ON entities (flow, updated_at)
            WHERE payload IS NOT NULL AND status IN ('done', 'skipped');
        PRAGMA user_version = 3;
    ";

    #[test]
    fn a_state_file_of_version_3_gets_the_operators_view_and_keeps_its_data() {
        let dir = unique_dir("v3");
        let path = dir.join("state.sqlite");
        {
            let old = Connection::open(&path).unwrap();
            old.pragma_update(None, "journal_mode", "WAL").unwrap();
            old.execute_batch(SCHEMA_V3).unwrap();
            old.execute_batch(
                "INSERT INTO entities (flow, source_id, target_id, status, step, attempts, last_error, payload, updated_at, seq)
                     VALUES ('shipping', '1001', 'S-77', 'failed', 'booked', 3, 'label refused', '{}', '2025-12-01T00:00:00.000Z', 1);
                 INSERT INTO entities (flow, source_id, status, updated_at, seq) VALUES ('stock', 'P-9', 'done', '2025-12-01T00:00:00.000Z', 2);
                 INSERT INTO aliases VALUES ('shipping', 'NC-5', '1001');
                 INSERT INTO lookups VALUES ('sku:main', 'SKU-RED', 'P-9', '2025-12-01T00:00:00.000Z');
                 INSERT INTO cursors VALUES ('shipping', '2025-12-01T00:00:00Z', '2025-12-01T00:00:00.000Z');
                 INSERT INTO dead_letters (flow, source_id, error, payload, created_at)
                     VALUES ('shipping', '1001', 'label refused', '{}', '2025-12-01T00:00:00.000Z');
                 INSERT INTO inbox (source, key, body, received_at) VALUES ('norce-order', 'NC-1', '{}', '2025-12-01T00:00:00.000Z');",
            )
            .unwrap();
        }
        for _ in 0..2 {
            // Twice: the upgrade runs once, a second open finds nothing to do.
            let store = SqliteStore::open(&path).unwrap();
            let version: i64 = store
                .conn()
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(version, 4);
        }
        let store = clocked(SqliteStore::open(&path).unwrap());
        let indexes: Vec<String> = store
            .conn()
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for index in [
            "entities_flow",
            "entities_by_status",
            "entities_updated",
            "entities_source",
            "entities_target",
            "aliases_alias",
            "lookups_key",
            "dead_letters_entity",
            "dead_letters_flow",
            "entity_events_entity",
            "entity_events_audit",
            "entity_events_age",
        ] {
            assert!(indexes.iter().any(|i| i == index), "{index}: {indexes:?}");
        }
        // The payload prune now takes resolved items too (the partial index was recreated).
        let finished: String = store
            .conn()
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'entities_finished'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(finished.contains("'resolved'"), "{finished}");
        // The data is kept.
        let record = store.get("shipping", "1001").unwrap().unwrap();
        assert_eq!(
            (
                record.target_id.as_deref(),
                record.status,
                record.step.as_deref(),
                record.attempts,
                record.position
            ),
            (Some("S-77"), Status::Failed, Some("booked"), 3, 1)
        );
        assert_eq!(store.inbox_pending(10).unwrap().len(), 1);
        assert_eq!(
            store.find_alias("shipping", "NC-5").unwrap().as_deref(),
            Some("1001")
        );
        // Its history starts with the upgrade; the old records are found by any of their ids.
        assert!(store.events("shipping", "1001", 10).unwrap().is_empty());
        for (reference, found) in [("S-77", "1001"), ("NC-5", "1001"), ("SKU-RED", "P-9")] {
            let records = store
                .search(&crate::state::EntityQuery {
                    reference: Some(reference.into()),
                    limit: 10,
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(ids_of(&records), [found], "{reference}");
        }
        assert_eq!(
            store.dead_letter_counts().unwrap(),
            [("shipping".to_owned(), 1)]
        );
        // The operator's actions work on it and are recorded.
        assert_eq!(
            store
                .set_cursor_by("shipping", "2025-11-01T00:00:00Z", "cli")
                .unwrap()
                .as_deref(),
            Some("2025-12-01T00:00:00Z")
        );
        let resolved = store
            .resolve("shipping", "1001", "cli", "booked by hand")
            .unwrap()
            .unwrap();
        assert_eq!(resolved.status, Status::Resolved);
        assert!(store.dead_letters().unwrap().is_empty());
        assert_eq!(store.audit_log(10).unwrap().len(), 2);
        // New records continue the order of creation.
        assert_eq!(
            store
                .upsert_pending("stock", "P-10", None)
                .unwrap()
                .position,
            3
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn ids_of(records: &[EntityRecord]) -> Vec<&str> {
        records.iter().map(|r| r.source_id.as_str()).collect()
    }

    /// The plan SQLite makes for `query`'s search statement, one line per step.
    fn search_plan(store: &SqliteStore, query: &crate::state::EntityQuery) -> Vec<String> {
        let conn = store.conn();
        let (sql, values) = sqlite_search_sql(query, range_index(&conn, query).unwrap());
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let values: Vec<&dyn rusqlite::ToSql> = values.iter().map(sql_value).collect();
        statement
            .query_map(values.as_slice(), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn every_search_goes_through_an_index_of_its_filters() {
        use crate::state::EntityQuery;
        let store = SqliteStore::in_memory().unwrap();
        let base = EntityQuery {
            limit: 50,
            ..Default::default()
        };
        let with = |edit: &dyn Fn(&mut EntityQuery)| {
            let mut query = base.clone();
            edit(&mut query);
            search_plan(&store, &query)
        };
        let time = t0();
        // A reference: each kind of id through its index, then each pair by the primary key.
        let plan = with(&|q| q.reference = Some("NC-5".into()));
        let reference_steps = [
            "SEARCH entities USING INDEX entities_source (source_id=?)",
            "SEARCH entities USING INDEX entities_target (target_id=?)",
            "SEARCH aliases USING INDEX aliases_alias (alias=?)",
            "SEARCH l USING INDEX lookups_key (key=?)",
            "SEARCH e USING INDEX entities_source (source_id=?)",
            "SEARCH entities USING INDEX sqlite_autoindex_entities_1 (flow=? AND source_id=?)",
        ];
        for step in reference_steps {
            assert!(plan.iter().any(|line| line == step), "{step}: {plan:#?}");
        }
        // The other filters do not take the lookup of the pairs away from the primary key.
        let plan = with(&|q| {
            q.reference = Some("NC-5".into());
            q.flow = Some("shipping".into());
            q.status = Some(Status::Failed);
            q.updated_from = Some(time);
            q.before = Some(100);
        });
        assert!(
            plan.iter().any(|line| line == reference_steps[5]),
            "{plan:#?}"
        );
        // Pages of a flow, a status, both, or all: along an index in the page's order.
        type Edit<'a> = &'a dyn Fn(&mut EntityQuery);
        let cases: [(Edit<'_>, &str); 8] = [
            (&|_| {}, "SCAN entities USING INDEX entities_seq"),
            (
                &|q| q.before = Some(100),
                "SEARCH entities USING INDEX entities_seq (seq<?)",
            ),
            (
                &|q| {
                    q.flow = Some("shipping".into());
                    q.before = Some(100);
                },
                "SEARCH entities USING INDEX entities_flow (flow=? AND seq<?)",
            ),
            (
                &|q| {
                    q.status = Some(Status::Failed);
                    q.before = Some(100);
                },
                "SEARCH entities USING INDEX entities_by_status (status=? AND seq<?)",
            ),
            (
                &|q| {
                    q.flow = Some("shipping".into());
                    q.status = Some(Status::Failed);
                    q.before = Some(100);
                },
                "SEARCH entities USING INDEX entities_status (flow=? AND status=? AND seq<?)",
            ),
            // A range (here, before a time) on an empty state is small: read, then sorted.
            (
                &|q| {
                    q.flow = Some("shipping".into());
                    q.status = Some(Status::Failed);
                    q.updated_to = Some(time);
                    q.before = Some(100);
                },
                "SEARCH entities USING INDEX entities_updated (updated_at<?)",
            ),
            (
                &|q| {
                    q.updated_from = Some(time);
                    q.updated_to = Some(time);
                },
                "SEARCH entities USING INDEX entities_updated (updated_at>? AND updated_at<?)",
            ),
            // A day far back with a status: the day's few records, not the status's newest.
            (
                &|q| {
                    q.status = Some(Status::Done);
                    q.updated_from = Some(time);
                    q.updated_to = Some(time + days(1));
                },
                "SEARCH entities USING INDEX entities_updated (updated_at>? AND updated_at<?)",
            ),
        ];
        for (edit, expected) in cases {
            let plan = with(edit);
            assert_eq!(plan[0], expected, "{plan:#?}");
            assert!(
                plan.len() == 1 || expected.contains("entities_updated"),
                "no sort but a time range's: {plan:#?}"
            );
        }
    }

    #[test]
    fn a_wide_time_range_is_weighed_by_what_each_index_would_read() {
        use crate::state::EntityQuery;
        use crate::state::tests::set;
        let (clock, read) = fake_clock();
        let store = SqliteStore::in_memory().unwrap().with_clock(read);
        // 60 days, 200 records a day, each written once on its day.
        for day in 0..60 {
            set(&clock, t0() + days(day));
            for n in 0..200 {
                store
                    .upsert_pending("orders", &format!("{day}-{n:03}"), None)
                    .unwrap();
            }
        }
        let now = t0() + days(60);
        let first = |from: i64, to: i64, flow: Option<&str>| {
            let query = EntityQuery {
                flow: flow.map(str::to_owned),
                updated_from: Some(t0() + days(from)),
                updated_to: Some(t0() + days(to)),
                limit: 50,
                ..Default::default()
            };
            search_plan(&store, &query).remove(0)
        };
        let read = "SEARCH entities USING INDEX entities_updated (updated_at>? AND updated_at<?)";
        // The last 30 days (6,000): dense and newest, so a walk in page order stops after a page.
        assert_eq!(
            first(30, 60, None),
            "SCAN entities USING INDEX entities_seq"
        );
        assert_eq!(
            first(30, 60, Some("orders")),
            "SEARCH entities USING INDEX entities_flow (flow=?)"
        );
        // 20 days far back (4,000): few enough to read and sort.
        assert_eq!(first(0, 20, None), read);
        // 28 days far back (5,600): fewer inside than the walk would pass to get there.
        assert_eq!(first(0, 28, None), read);
        // 40 days (8,000), 20 after: more inside than after it, so the walk.
        assert_eq!(first(0, 40, None), "SCAN entities USING INDEX entities_seq");
        // A day, or nothing at all: read, never a walk through everything.
        assert_eq!(first(59, 60, None), read);
        assert_eq!(first(70, 80, None), read);
        // From a time on, without an end: everything after it is inside, nothing newer.
        let since = EntityQuery {
            updated_from: Some(now - days(45)),
            limit: 50,
            ..Default::default()
        };
        assert_eq!(
            search_plan(&store, &since)[0],
            "SCAN entities USING INDEX entities_seq"
        );
        // And the answers are the same whichever index is walked: newest first, in the range.
        let found = store
            .search(&EntityQuery {
                updated_from: Some(t0() + days(30)),
                updated_to: Some(now),
                limit: 3,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ids_of(&found), ["59-199", "59-198", "59-197"]);
        let found = store
            .search(&EntityQuery {
                updated_from: Some(t0()),
                updated_to: Some(t0() + days(20)),
                limit: 2,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(ids_of(&found), ["19-199", "19-198"]);
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
}
