//! Durable state: entity records, cursors, the receivers' inbox and dead letters.
//!
//! One trait, [`Store`], so another backend can come later; [`SqliteStore`] is the default (a
//! file in the data folder, WAL mode). Every method is one short transaction, so a crash between
//! two calls leaves a consistent state: the flows record each step *after* the platform call
//! that made it, and every step is idempotent on replay (see each flow's docs).

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};
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
    /// New row.
    Inserted(i64),
    /// The same (source, key) is already there and unprocessed: nothing added.
    Duplicate(i64),
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

    /// A flow's cursor.
    fn cursor(&self, flow: &str) -> Result<Option<String>, StateError>;
    /// Sets a flow's cursor (moving it back backfills).
    fn set_cursor(&self, flow: &str, value: &str) -> Result<(), StateError>;

    /// Stores a received item; the receiver answers 2xx only after this returns `Ok`.
    fn inbox_put(&self, source: &str, key: &str, body: &str) -> Result<InboxPut, StateError>;
    /// Unprocessed items, oldest first.
    fn inbox_pending(&self, limit: usize) -> Result<Vec<InboxItem>, StateError>;
    /// How many items are unprocessed (what [`Store::inbox_pending`] would list without a limit).
    fn inbox_len(&self) -> Result<u64, StateError> {
        Ok(self.inbox_pending(usize::MAX)?.len() as u64)
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
}

/// The SQLite store.
pub struct SqliteStore {
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

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
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    received_at TEXT NOT NULL,
    processed_at TEXT
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

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

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
    /// Opens (or creates) `state.sqlite` in `data_dir`.
    pub fn open_in(data_dir: &Path) -> Result<Self, StateError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StateError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        Self::open(&data_dir.join("state.sqlite"))
    }

    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let connection = Connection::open(path)?;
        // WAL: readers (`relay status`) never block the runtime; synchronous=NORMAL in WAL
        // mode still survives a process kill (only a power loss can drop the last commits).
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    /// An in-memory store (tests, dry runs).
    pub fn in_memory() -> Result<Self, StateError> {
        let connection = Connection::open_in_memory()?;
        connection.execute_batch(SCHEMA)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
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
            params![flow, source_id, payload, now()],
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
                now()
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
            params![flow, source_id, error, now()],
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
            params![flow, value, now()],
        )?;
        Ok(())
    }

    fn inbox_put(&self, source: &str, key: &str, body: &str) -> Result<InboxPut, StateError> {
        let conn = self.conn();
        let existing: Option<i64> = conn
            .query_row(
                "SELECT id FROM inbox WHERE source = ?1 AND key = ?2 AND processed_at IS NULL",
                params![source, key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return Ok(InboxPut::Duplicate(id));
        }
        conn.execute(
            "INSERT INTO inbox (source, key, body, received_at) VALUES (?1, ?2, ?3, ?4)",
            params![source, key, body, now()],
        )?;
        Ok(InboxPut::Inserted(conn.last_insert_rowid()))
    }

    fn inbox_pending(&self, limit: usize) -> Result<Vec<InboxItem>, StateError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT id, source, key, body, received_at FROM inbox WHERE processed_at IS NULL ORDER BY id LIMIT ?1",
        )?;
        let rows =
            statement.query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
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

    fn inbox_len(&self) -> Result<u64, StateError> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL",
            [],
            |row| row.get(0),
        )?)
    }

    fn inbox_done(&self, id: i64) -> Result<(), StateError> {
        self.conn().execute(
            "UPDATE inbox SET processed_at = ?2 WHERE id = ?1",
            params![id, now()],
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
            params![flow, source_id, error, now()],
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
            params![flow, source_id, error, payload, now()],
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
            params![letter.flow, letter.source_id, now()],
        )?;
        let record = Self::get_with(&tx, &letter.flow, &letter.source_id)?;
        tx.commit()?;
        Ok(record)
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

    #[test]
    fn time_cursor_errors_name_the_flow_and_the_fix() {
        let err = parse_time_cursor("shipping", "yesterday").unwrap_err();
        assert!(err.contains("`shipping`") && err.contains("relay cursor set shipping"));
    }
}
