//! The behaviour every [`Store`] shares, written once and run against each backend:
//! `state::tests::sqlite::…` on an in-memory SQLite store and `state::tests::postgres::…` on a
//! fresh database of a throwaway PostgreSQL cluster (one cluster per test binary; without
//! PostgreSQL those say `SKIPPED` on standard error, and fail in CI). Every store runs on a
//! fake clock that the test moves.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::Duration;

use super::*;
use chrono::{DateTime, TimeDelta, Utc};

/// A store under test, its fake clock, and a way to open another worker on the same state.
pub(super) struct Fixture {
    /// The store.
    pub(super) store: Arc<dyn Store>,
    /// Its clock: milliseconds since the epoch.
    pub(super) clock: Arc<AtomicI64>,
    /// Another worker on the same state (PostgreSQL: another connection pool, as another
    /// process would have; SQLite in memory: the same store).
    worker: Box<dyn Fn() -> Arc<dyn Store>>,
}

impl Fixture {
    /// Another worker on the same state, on the same clock.
    pub(super) fn worker(&self) -> Arc<dyn Store> {
        (self.worker)()
    }

    /// Moves the clock to `at`.
    pub(super) fn set(&self, at: DateTime<Utc>) {
        set(&self.clock, at);
    }
}

/// The time every fake clock starts at.
pub(super) fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .to_utc()
}

pub(super) fn days(n: i64) -> TimeDelta {
    TimeDelta::days(n)
}

/// A fake clock at [`t0`] and the function a store reads it with.
pub(super) fn fake_clock() -> (
    Arc<AtomicI64>,
    impl Fn() -> DateTime<Utc> + Send + Sync + Clone + 'static,
) {
    let clock = Arc::new(AtomicI64::new(t0().timestamp_millis()));
    let read = clock.clone();
    (clock, move || {
        DateTime::from_timestamp_millis(read.load(Ordering::SeqCst)).unwrap()
    })
}

pub(super) fn set(clock: &AtomicI64, at: DateTime<Utc>) {
    clock.store(at.timestamp_millis(), Ordering::SeqCst);
}

/// Puts `key` into the inbox and marks it processed.
pub(super) fn processed(store: &dyn Store, key: &str, body: &str) -> i64 {
    let id = store.inbox_put("norce-order", key, body).unwrap().id();
    store.inbox_done(id).unwrap();
    id
}

/// A finished entity with a payload and a target id.
pub(super) fn finished(store: &dyn Store, flow: &str, source_id: &str, status: Status) {
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

pub(super) fn payload(store: &dyn Store, flow: &str, source_id: &str) -> Option<String> {
    store.get(flow, source_id).unwrap().unwrap().payload
}

fn mark_done() -> EntityUpdate {
    EntityUpdate {
        status: Some(Status::Done),
        ..Default::default()
    }
}

fn ids(records: &[EntityRecord]) -> Vec<&str> {
    records.iter().map(|r| r.source_id.as_str()).collect()
}

/// An in-memory SQLite store on a fake clock.
fn sqlite_fixture() -> Fixture {
    let (clock, read) = fake_clock();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap().with_clock(read));
    let same = store.clone();
    Fixture {
        store,
        clock,
        worker: Box::new(move || same.clone()),
    }
}

/// The test binary's PostgreSQL cluster, started by the first test that asks.
fn cluster() -> Option<&'static pg_cluster::Cluster> {
    static CLUSTER: OnceLock<Option<pg_cluster::Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| pg_cluster::start_or_skip("state::tests (PostgreSQL)"))
        .as_ref()
}

/// The URL of a new database for `test` on the binary's cluster; `None` (with a `SKIPPED`
/// line) without PostgreSQL.
pub(super) fn postgres_database(test: &str) -> Option<String> {
    static DATABASES: AtomicUsize = AtomicUsize::new(0);
    let Some(cluster) = cluster() else {
        // Past the test harness's capture, like pg_cluster's own line.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED: {test}: PostgreSQL not available (see above)\n").as_bytes(),
        );
        return None;
    };
    let n = DATABASES.fetch_add(1, Ordering::SeqCst);
    let mut name = format!("t_{n}_{test}");
    // PostgreSQL's identifiers are 63 bytes at most.
    name.truncate(63);
    Some(cluster.create_database(&name).unwrap())
}

/// A PostgreSQL store on a new database, on a fake clock.
fn postgres_fixture(test: &str) -> Option<Fixture> {
    let url = postgres_database(test)?;
    let (clock, read) = fake_clock();
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(&url).unwrap().with_clock(read.clone()));
    Some(Fixture {
        store,
        clock,
        worker: Box::new(move || {
            Arc::new(PgStore::connect(&url).unwrap().with_clock(read.clone()))
        }),
    })
}

/// Each behaviour test once per backend: `sqlite::<test>` and `postgres::<test>`.
macro_rules! behaviour {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::sqlite_fixture());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    if let Some(fixture) = super::postgres_fixture(stringify!($test)) {
                        super::$test(&fixture);
                    }
                }
            )*
        }
    };
}

behaviour!(
    entity_lifecycle_and_counts,
    pages_visit_each_record_once_while_the_pass_changes_them,
    lookups_are_put_read_replaced_and_removed_per_map,
    aliases_find_the_source_id_and_move,
    cursors_are_kept_per_flow_and_moved,
    times_are_stored_as_rfc3339_with_milliseconds,
    each_inbox_lane_lists_its_own_sources_oldest_first,
    inbox_deduplicates_unprocessed_items,
    a_changed_body_while_queued_is_a_new_version_that_the_flows_read,
    dead_letters_and_requeue,
    prune_by_age_keeps_unfinished_work_and_the_entity_records,
    prune_by_count_keeps_the_newest_processed_rows_and_payloads_per_flow,
    dead_letters_and_their_payloads_are_kept_until_requeued,
    prune_works_in_batches,
    clearing_a_payload_keeps_the_rest_of_the_record,
    a_lease_is_granted_denied_renewed_expires_and_is_released,
    a_shared_value_is_swapped_only_from_the_expected_value,
    rate_reservations_wait_as_gcra_computes,
    a_rate_pause_delays_every_reservation_and_is_never_shortened,
    eight_workers_upserting_the_same_entities_make_one_record_each,
    eight_receivers_putting_one_key_queue_it_once,
    eight_receivers_putting_new_bodies_of_one_key_keep_one_queued,
    eight_workers_asking_for_one_lease_get_one_holder,
    eight_workers_swapping_one_shared_value_have_one_winner,
    eight_workers_reserving_one_rate_limit_get_distinct_cells,
    history_records_each_change_in_order_with_who_did_it,
    the_audit_log_lists_the_operators_actions_newest_first,
    search_finds_an_entity_by_any_of_its_ids,
    search_filters_by_flow_status_and_time,
    search_pages_visit_each_record_once_newest_first,
    hourly_outcomes_count_each_outcome_in_its_hour,
    resolve_closes_the_entity_and_removes_its_dead_letters,
    set_cursor_by_returns_the_value_before_and_is_logged,
    dead_letter_pages_by_flow_and_entity,
    prune_drops_old_flow_history_and_outcomes_but_keeps_the_audit_log,
    create_by_queues_a_new_entity_once_in_the_audit_log,
);

fn create_by_queues_a_new_entity_once_in_the_audit_log(f: &Fixture) {
    let store = &*f.store;
    let record = store
        .create_by(
            "refund",
            "NC-1-R1",
            "{\"n\":1}",
            "cli",
            "refund of order NC-1",
        )
        .unwrap()
        .expect("created");
    assert_eq!(
        (record.status, record.payload.as_deref()),
        (Status::Pending, Some("{\"n\":1}"))
    );
    // The key taken: nothing changes, nothing is logged.
    store.update("refund", "NC-1-R1", &mark_done()).unwrap();
    assert_eq!(
        store
            .create_by("refund", "NC-1-R1", "{}", "console:s1", "again")
            .unwrap(),
        None
    );
    let kept = store.get("refund", "NC-1-R1").unwrap().unwrap();
    assert_eq!(
        (kept.status, kept.payload.as_deref()),
        (Status::Done, Some("{\"n\":1}"))
    );
    let log = store.audit_log(10).unwrap();
    assert_eq!(
        log.iter()
            .map(|e| (
                e.kind,
                e.source_id.as_str(),
                e.actor.as_deref(),
                e.detail.as_deref()
            ))
            .collect::<Vec<_>>(),
        [(
            EventKind::Created,
            "NC-1-R1",
            Some("cli"),
            Some("refund of order NC-1")
        )]
    );
    // The entity is listed like any other (a pass finds it by its flow).
    assert_eq!(ids(&store.list(Some("refund"), None).unwrap()), ["NC-1-R1"]);
}

fn entity_lifecycle_and_counts(f: &Fixture) {
    let store = &*f.store;
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
    assert_eq!(again.position, first.position);
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
    assert_eq!(done.target_id.as_deref(), Some("S1"));
    store.upsert_pending("shipping", "NC-2", None).unwrap();
    store.upsert_pending("orders", "NC-2", None).unwrap();
    assert_eq!(
        store.counts().unwrap(),
        vec![
            ("orders".into(), Status::Pending, 1),
            ("shipping".into(), Status::Done, 1),
            ("shipping".into(), Status::Pending, 1)
        ]
    );
    let pending = store.list(Some("shipping"), Some(Status::Pending)).unwrap();
    assert_eq!(ids(&pending), ["NC-2"]);
    assert_eq!(
        ids(&store.list(None, None).unwrap()),
        ["NC-1", "NC-2", "NC-2"]
    );
    assert_eq!(
        ids(&store.list(None, Some(Status::Done)).unwrap()),
        ["NC-1"]
    );
    assert!(store.get("shipping", "NC-3").unwrap().is_none());
    // Changing a record that does not exist is an error, not a silent nothing.
    assert!(store.update("shipping", "NC-3", &mark_done()).is_err());
    assert!(store.record_failure("shipping", "NC-3", "x").is_err());
}

fn pages_visit_each_record_once_while_the_pass_changes_them(f: &Fixture) {
    let store = &*f.store;
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
                    .update("shipping", &record.source_id, &mark_done())
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
    assert_eq!(ids(&still_pending), ["B1", "B3"]);
    assert!(
        store
            .list_after("orders", None, 0, 100)
            .unwrap()
            .iter()
            .all(|r| r.flow == "orders")
    );
}

fn lookups_are_put_read_replaced_and_removed_per_map(f: &Fixture) {
    let store = &*f.store;
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    store
        .lookup_put("sku:a", &[pair("S1", "1"), pair("S2", "2")])
        .unwrap();
    store.lookup_put("sku:b", &[pair("S1", "9")]).unwrap();
    // A key given twice in one call: the last value wins.
    store
        .lookup_put("sku:c", &[pair("S1", "old"), pair("S1", "new")])
        .unwrap();
    store.lookup_put("sku:c", &[]).unwrap();
    assert_eq!(store.lookup_get("sku:c", &["S1"]).unwrap()[0].value, "new");
    // In the order asked, absent keys left out.
    let got = store.lookup_get("sku:a", &["S2", "S3", "S1"]).unwrap();
    assert_eq!(
        got.iter()
            .map(|l| (l.key.as_str(), l.value.as_str()))
            .collect::<Vec<_>>(),
        [("S2", "2"), ("S1", "1")]
    );
    assert_eq!(got[0].updated_at, "2026-01-01T00:00:00.000Z");
    assert!(parse_time_cursor("x", &got[0].updated_at).is_ok());
    store.lookup_put("sku:a", &[pair("S1", "11")]).unwrap();
    assert_eq!(store.lookup_get("sku:a", &["S1"]).unwrap()[0].value, "11");
    store.lookup_remove("sku:a", &["S1"]).unwrap();
    assert!(store.lookup_get("sku:a", &["S1"]).unwrap().is_empty());
    store.lookup_replace("sku:a", &[pair("S3", "3")]).unwrap();
    assert!(store.lookup_get("sku:a", &["S2"]).unwrap().is_empty());
    assert_eq!(store.lookup_get("sku:a", &["S3"]).unwrap()[0].value, "3");
    assert_eq!(store.lookup_get("sku:b", &["S1"]).unwrap()[0].value, "9");
    assert!(store.lookup_get("sku:b", &[]).unwrap().is_empty());
}

fn aliases_find_the_source_id_and_move(f: &Fixture) {
    let store = &*f.store;
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

fn cursors_are_kept_per_flow_and_moved(f: &Fixture) {
    let store = &*f.store;
    assert_eq!(store.cursor("shipping").unwrap(), None);
    store
        .set_cursor("shipping", "2026-01-01T00:00:00Z")
        .unwrap();
    store.set_cursor("stock", "42").unwrap();
    store
        .set_cursor("shipping", "2025-12-01T00:00:00Z")
        .unwrap();
    assert_eq!(
        store.cursor("shipping").unwrap().as_deref(),
        Some("2025-12-01T00:00:00Z")
    );
    assert_eq!(store.cursor("stock").unwrap().as_deref(), Some("42"));
    // A second worker on the same state sees them.
    assert_eq!(f.worker().cursor("stock").unwrap().as_deref(), Some("42"));
}

fn times_are_stored_as_rfc3339_with_milliseconds(f: &Fixture) {
    let store = &*f.store;
    f.set(t0() + TimeDelta::milliseconds(1_234));
    let record = store.upsert_pending("orders", "A", None).unwrap();
    assert_eq!(record.updated_at, "2026-01-01T00:00:01.234Z");
    let id = store.inbox_put("norce-order", "A", "{}").unwrap().id();
    f.set(t0() + TimeDelta::seconds(2));
    store.inbox_done(id).unwrap();
    let history = store.inbox_history("norce-order", "A").unwrap();
    assert_eq!(history[0].received_at, "2026-01-01T00:00:01.234Z");
    assert_eq!(
        history[0].processed_at.as_deref(),
        Some("2026-01-01T00:00:02.000Z")
    );
    let letter = store.dead_letter("orders", "A", "why").unwrap();
    assert_eq!(letter.created_at, "2026-01-01T00:00:02.000Z");
    assert!(
        store
            .lease("poll/orders", "w1", Duration::from_millis(1_500))
            .unwrap()
    );
    assert_eq!(
        store.leases("").unwrap()[0].expires_at,
        "2026-01-01T00:00:03.500Z"
    );
}

fn each_inbox_lane_lists_its_own_sources_oldest_first(f: &Fixture) {
    let store = &*f.store;
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
    let all = store.inbox_pending(3).unwrap();
    assert_eq!(
        all.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
        ["w1", "o1", "w2"]
    );
    assert_eq!(all[1].source, "norce-order");
    assert_eq!(all[1].body, "{}");
}

fn inbox_deduplicates_unprocessed_items(f: &Fixture) {
    let store = &*f.store;
    let InboxPut::Inserted(id) = store.inbox_put("norce-order", "NC-1", "{}").unwrap() else {
        panic!()
    };
    assert_eq!(
        store.inbox_put("norce-order", "NC-1", "{}").unwrap(),
        InboxPut::Duplicate(id)
    );
    assert_eq!(store.inbox_pending(10).unwrap().len(), 1);
    assert_eq!(store.inbox_len().unwrap(), 1);
    assert!(store.inbox_queued(id).unwrap());
    store.inbox_done(id).unwrap();
    assert!(!store.inbox_queued(id).unwrap());
    assert!(!store.inbox_queued(id + 1000).unwrap());
    assert!(store.inbox_pending(10).unwrap().is_empty());
    assert_eq!(store.inbox_len().unwrap(), 0);
    // Processed: the same key may arrive again (a later change of the same order).
    assert!(matches!(
        store.inbox_put("norce-order", "NC-1", "{}").unwrap(),
        InboxPut::Inserted(_)
    ));
}

fn a_changed_body_while_queued_is_a_new_version_that_the_flows_read(f: &Fixture) {
    let store = &*f.store;
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
    f.set(t0() + TimeDelta::minutes(1));
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

fn dead_letters_and_requeue(f: &Fixture) {
    let store = &*f.store;
    store
        .upsert_pending("orders", "NC-9", Some("{\"x\":1}"))
        .unwrap();
    store
        .record_failure("orders", "NC-9", "unknown SKU")
        .unwrap();
    let letter = store
        .dead_letter("orders", "NC-9", "unknown SKU SKU-404")
        .unwrap();
    assert_eq!(
        (
            letter.flow.as_str(),
            letter.source_id.as_str(),
            letter.error.as_str(),
            letter.payload.as_deref()
        ),
        ("orders", "NC-9", "unknown SKU SKU-404", Some("{\"x\":1}"))
    );
    let failed = store.get("orders", "NC-9").unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.last_error.as_deref()),
        (Status::Failed, Some("unknown SKU SKU-404"))
    );
    // A dead letter of an entity without a record still files the letter.
    let orphan = store.dead_letter("orders", "NC-0", "gone").unwrap();
    assert_eq!(orphan.payload, None);
    assert_eq!(
        store.dead_letters().unwrap(),
        [letter.clone(), orphan.clone()]
    );
    let record = store.requeue(letter.id).unwrap().unwrap();
    assert_eq!(
        (record.status, record.attempts, record.source_id.as_str()),
        (Status::Pending, 0, "NC-9")
    );
    assert_eq!(store.dead_letters().unwrap(), std::slice::from_ref(&orphan));
    assert!(store.requeue(letter.id).unwrap().is_none());
    assert!(store.requeue(orphan.id).unwrap().is_none());
    assert!(store.dead_letters().unwrap().is_empty());
}

fn prune_by_age_keeps_unfinished_work_and_the_entity_records(f: &Fixture) {
    let store = &*f.store;
    let old = processed(store, "OLD", "{\"big\":true}");
    store.inbox_put("norce-order", "QUEUED", "{}").unwrap();
    finished(store, "orders", "DONE", Status::Done);
    finished(store, "shipping", "SKIPPED", Status::Skipped);
    store
        .upsert_pending("shipping", "RESOLVED", Some("{\"by\":\"hand\"}"))
        .unwrap();
    store
        .resolve("shipping", "RESOLVED", "console:test", "shipped by hand")
        .unwrap();
    store
        .upsert_pending("orders", "PENDING", Some("{}"))
        .unwrap();
    store
        .upsert_pending("orders", "FAILED", Some("{}"))
        .unwrap();
    store
        .dead_letter("orders", "FAILED", "unknown SKU")
        .unwrap();
    f.set(t0() + days(10));
    let recent = processed(store, "RECENT", "{}");
    finished(store, "orders", "RECENT", Status::Done);

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
        (1, 3),
        "{report:?}"
    );
    assert_eq!(
        payload(store, "shipping", "RESOLVED"),
        None,
        "resolved is finished"
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
    assert_eq!(payload(store, "shipping", "SKIPPED"), None);
    assert!(payload(store, "orders", "RECENT").is_some());
    assert!(payload(store, "orders", "PENDING").is_some());
    assert!(payload(store, "orders", "FAILED").is_some());
    assert_eq!(store.dead_letters().unwrap().len(), 1);
}

fn prune_by_count_keeps_the_newest_processed_rows_and_payloads_per_flow(f: &Fixture) {
    let store = &*f.store;
    for n in 0..25 {
        f.set(t0() + TimeDelta::minutes(n));
        processed(store, &format!("K{n:02}"), "{}");
        finished(store, "orders", &format!("O{n:02}"), Status::Done);
        if n < 3 {
            finished(store, "shipping", &format!("S{n:02}"), Status::Done);
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
            payload(store, "orders", &format!("O{n:02}")).is_some(),
            n >= 20,
            "O{n:02}"
        );
    }
    for n in 0..3 {
        assert!(payload(store, "shipping", &format!("S{n:02}")).is_some());
    }
    // Within the bounds now: a second prune changes nothing.
    assert_eq!(
        store.prune(&policy, t0() + days(1), 500).unwrap(),
        PruneReport::default()
    );
}

fn dead_letters_and_their_payloads_are_kept_until_requeued(f: &Fixture) {
    let store = &*f.store;
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
        payload(store, "orders", "NC-9").as_deref(),
        Some("{\"x\":1}")
    );
    // Replayed and finished: from then on it ages like any finished entity.
    f.set(t0() + days(400));
    store.requeue(letter.id).unwrap();
    store.update("orders", "NC-9", &mark_done()).unwrap();
    store.prune(&tight, t0() + days(400), 500).unwrap();
    assert!(
        payload(store, "orders", "NC-9").is_some(),
        "not a day old yet"
    );
    store.prune(&tight, t0() + days(402), 500).unwrap();
    assert_eq!(payload(store, "orders", "NC-9"), None);
}

fn prune_works_in_batches(f: &Fixture) {
    let store = &*f.store;
    for n in 0..1234 {
        processed(store, &format!("K{n}"), "{}");
    }
    for n in 0..250 {
        finished(store, "stock", &format!("P{n}"), Status::Done);
    }
    let policy = RetentionPolicy {
        max_age: days(1),
        ..RetentionPolicy::default()
    };
    let report = store.prune(&policy, t0() + days(2), 100).unwrap();
    assert_eq!(report.inbox_rows_deleted, 1234);
    assert_eq!(report.payloads_cleared, 250);
    // ⌈1234 / 100⌉ + ⌈250 / 100⌉ transactions, none over 100 rows, and ⌈500 / 100⌉ for the
    // entities' history (created, then done); their outcomes (hour t0) are not 48 hours old.
    assert_eq!(report.batches, 13 + 3 + 5, "{report:?}");
    assert!(store.events("stock", "P0", 10).unwrap().is_empty());
    assert_eq!(store.hourly_outcomes(t0()).unwrap()[0].count, 250);
    for key in ["K0", "K617", "K1233"] {
        assert!(store.inbox_history("norce-order", key).unwrap().is_empty());
    }
    assert_eq!(store.list(Some("stock"), None).unwrap().len(), 250);
}

fn clearing_a_payload_keeps_the_rest_of_the_record(f: &Fixture) {
    let store = &*f.store;
    finished(store, "orders", "A", Status::Done);
    store.record_failure("orders", "A", "503 once").unwrap();
    store.set_alias("orders", "NC-A", "A").unwrap();
    let before = store.get("orders", "A").unwrap().unwrap();
    let policy = RetentionPolicy {
        max_finished_payloads_per_flow: 1,
        ..RetentionPolicy::default()
    };
    f.set(t0() + TimeDelta::seconds(1));
    finished(store, "orders", "B", Status::Done);
    let report = store
        .prune(&policy, t0() + TimeDelta::seconds(2), 500)
        .unwrap();
    assert_eq!(report.payloads_cleared, 1);
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
    assert_eq!(ids(&page), ["A", "B"]);
}

fn a_lease_is_granted_denied_renewed_expires_and_is_released(f: &Fixture) {
    let store = &*f.store;
    let ttl = Duration::from_secs(30);
    let at = |seconds: i64| stamp_at(t0() + TimeDelta::seconds(seconds));
    assert!(store.lease("poll/shipping", "w1", ttl).unwrap());
    assert!(!store.lease("poll/shipping", "w2", ttl).unwrap());
    assert!(store.lease("entity/shipping/1", "w2", ttl).unwrap());
    let lease = |name: &str, holder: &str, expires_at: String| Lease {
        name: name.into(),
        holder: holder.into(),
        expires_at,
    };
    assert_eq!(
        store.leases("poll/").unwrap(),
        [lease("poll/shipping", "w1", at(30))]
    );
    assert_eq!(store.leases("").unwrap().len(), 2);
    // A renewal moves the expiry: another worker still waits after the first term.
    f.set(t0() + TimeDelta::seconds(20));
    assert!(store.lease("poll/shipping", "w1", ttl).unwrap());
    f.set(t0() + TimeDelta::seconds(45));
    assert!(!store.lease("poll/shipping", "w2", ttl).unwrap());
    assert_eq!(
        store.leases("poll/").unwrap(),
        [lease("poll/shipping", "w1", at(50))]
    );
    // Ran out (a killed worker): the next asker gets it; run-out leases are not listed.
    assert_eq!(
        store.leases("entity/").unwrap(),
        [],
        "entity/shipping/1 ran out at 30 s"
    );
    f.set(t0() + TimeDelta::seconds(50));
    assert!(store.leases("poll/").unwrap().is_empty());
    assert!(store.lease("poll/shipping", "w2", ttl).unwrap());
    assert!(!store.lease("poll/shipping", "w1", ttl).unwrap());
    // Only the holder releases it.
    store.release("poll/shipping", "w1").unwrap();
    assert_eq!(
        store.leases("poll/").unwrap(),
        [lease("poll/shipping", "w2", at(80))]
    );
    store.release("poll/shipping", "w2").unwrap();
    assert!(store.leases("poll/").unwrap().is_empty());
    assert!(store.lease("poll/shipping", "w1", ttl).unwrap());
    // Another worker on the same state sees the lease.
    assert!(!f.worker().lease("poll/shipping", "w3", ttl).unwrap());
}

/// A time as the stores write it.
fn stamp_at(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn a_shared_value_is_swapped_only_from_the_expected_value(f: &Fixture) {
    let store = &*f.store;
    let value = |text: &str, expires_in: Option<i64>| SharedValue {
        value: text.into(),
        expires_at: expires_in.map(|s| t0() + TimeDelta::seconds(s)),
    };
    assert_eq!(store.shared_get("token/norce").unwrap(), None);
    assert!(
        store
            .shared_swap("token/norce", None, &value("pair-1", Some(3600)))
            .unwrap()
    );
    // Someone else was first: not replaced.
    assert!(
        !store
            .shared_swap("token/norce", None, &value("pair-x", None))
            .unwrap()
    );
    assert_eq!(
        store.shared_get("token/norce").unwrap(),
        Some(value("pair-1", Some(3600)))
    );
    assert!(
        !store
            .shared_swap("token/norce", Some("pair-0"), &value("pair-x", None))
            .unwrap()
    );
    assert!(
        store
            .shared_swap("token/norce", Some("pair-1"), &value("pair-2", None))
            .unwrap()
    );
    assert_eq!(
        store.shared_get("token/norce").unwrap(),
        Some(value("pair-2", None))
    );
    // The old value is spent.
    assert!(
        !store
            .shared_swap("token/norce", Some("pair-1"), &value("pair-y", None))
            .unwrap()
    );
    store
        .shared_put("token/norce", &value("pair-3", Some(60)))
        .unwrap();
    store
        .shared_put("token/nshift", &value("jwt", None))
        .unwrap();
    let got = store.shared_get("token/norce").unwrap().unwrap();
    assert_eq!(got, value("pair-3", Some(60)));
    assert!(
        !format!("{got:?}").contains("pair-3"),
        "Debug hides the value"
    );
    assert_eq!(
        f.worker().shared_get("token/nshift").unwrap(),
        Some(value("jwt", None))
    );
}

fn rate_reservations_wait_as_gcra_computes(f: &Fixture) {
    let store = &*f.store;
    let period = Duration::from_millis(300);
    let burst = 3;
    let micros = |t: DateTime<Utc>| t.timestamp_micros();
    let mut tat = micros(t0());
    // (milliseconds after t0 at which a reservation is made)
    let times = [0, 0, 0, 0, 0, 100, 2000, 2000, 2000, 2000, 2050, 5000];
    let mut waits = Vec::new();
    for at in times {
        let now = t0() + TimeDelta::milliseconds(at);
        f.set(now);
        let wait = store.rate_reserve("brightpearl", period, burst).unwrap();
        let (next, expected) = gcra_reserve(tat, 0, micros(now), 300_000, burst);
        tat = next;
        assert_eq!(wait, expected, "at {at} ms");
        waits.push(wait.as_millis());
    }
    // A burst of 3 at once, then one per period; an idle limit refills.
    assert_eq!(waits, [0, 0, 0, 300, 600, 800, 0, 0, 0, 300, 550, 0]);
    // Another key is its own limit.
    f.set(t0() + TimeDelta::milliseconds(5000));
    assert_eq!(
        store.rate_reserve("norce-token", period, 1).unwrap(),
        Duration::ZERO
    );
    assert_eq!(
        store.rate_reserve("norce-token", period, 1).unwrap(),
        period
    );
}

fn a_rate_pause_delays_every_reservation_and_is_never_shortened(f: &Fixture) {
    let store = &*f.store;
    let period = Duration::from_secs(1);
    store
        .rate_pause("brightpearl", t0() + TimeDelta::seconds(10))
        .unwrap();
    assert_eq!(
        store.rate_reserve("brightpearl", period, 5).unwrap(),
        Duration::from_secs(10)
    );
    // An earlier end does not shorten it.
    store
        .rate_pause("brightpearl", t0() + TimeDelta::seconds(5))
        .unwrap();
    assert_eq!(
        store.rate_reserve("brightpearl", period, 5).unwrap(),
        Duration::from_secs(10)
    );
    // A pause on a limit already in use keeps its reservations.
    assert_eq!(
        store.rate_reserve("other", period, 1).unwrap(),
        Duration::ZERO
    );
    store
        .rate_pause("other", t0() + TimeDelta::seconds(3))
        .unwrap();
    assert_eq!(
        store.rate_reserve("other", period, 1).unwrap(),
        Duration::from_secs(3)
    );
    // After the pause, the limit as before.
    f.set(t0() + TimeDelta::seconds(20));
    assert_eq!(
        store.rate_reserve("brightpearl", period, 5).unwrap(),
        Duration::ZERO
    );
}

/// Runs `work(worker, thread)` on 8 threads that start together, alternating between two
/// workers on the same state; returns what each returned, by thread.
fn on_eight_threads<T: Send>(f: &Fixture, work: impl Fn(&dyn Store, usize) -> T + Sync) -> Vec<T> {
    const THREADS: usize = 8;
    let workers = [f.store.clone(), f.worker()];
    let start = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let (worker, start, work) = (&workers[thread % 2], &start, &work);
                scope.spawn(move || {
                    start.wait();
                    work(&**worker, thread)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    })
}

fn eight_workers_upserting_the_same_entities_make_one_record_each(f: &Fixture) {
    let keys: Vec<String> = (0..20).map(|n| format!("NC-{n}")).collect();
    let seen = on_eight_threads(f, |store, thread| {
        keys.iter()
            .map(|key| {
                let record = store
                    .upsert_pending("shipping", key, Some(&format!("{{\"by\":{thread}}}")))
                    .unwrap();
                (record.position, record.payload)
            })
            .collect::<Vec<_>>()
    });
    let records = f.store.list(Some("shipping"), None).unwrap();
    assert_eq!(records.len(), 20);
    for (n, record) in records.iter().enumerate() {
        // Every worker got the one record: same position, the first payload.
        for by_thread in &seen {
            assert_eq!(
                by_thread[n],
                (record.position, record.payload.clone()),
                "{n}"
            );
        }
    }
    let mut positions: Vec<u64> = records.iter().map(|r| r.position).collect();
    positions.dedup();
    assert_eq!(positions.len(), 20);
}

fn eight_receivers_putting_one_key_queue_it_once(f: &Fixture) {
    for round in 0..10 {
        let key = format!("NC-{round}");
        let puts = on_eight_threads(f, |store, _| {
            store.inbox_put("norce-order", &key, "{\"qty\":1}").unwrap()
        });
        let inserted: Vec<_> = puts
            .iter()
            .filter(|put| matches!(put, InboxPut::Inserted(_)))
            .collect();
        assert_eq!(inserted.len(), 1, "{puts:?}");
        let id = inserted[0].id();
        assert!(puts.iter().all(|put| put.id() == id), "{puts:?}");
        assert_eq!(f.store.inbox_history("norce-order", &key).unwrap().len(), 1);
    }
    assert_eq!(f.store.inbox_len().unwrap(), 10);
}

fn eight_receivers_putting_new_bodies_of_one_key_keep_one_queued(f: &Fixture) {
    let puts = on_eight_threads(f, |store, thread| {
        store
            .inbox_put("norce-order", "NC-1", &format!("{{\"qty\":{thread}}}"))
            .unwrap()
    });
    assert_eq!(
        puts.iter()
            .filter(|put| matches!(put, InboxPut::Inserted(_)))
            .count(),
        1,
        "{puts:?}"
    );
    let history = f.store.inbox_history("norce-order", "NC-1").unwrap();
    // One version per put, 1 to 8, each superseding the one before; the last one queued.
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<u32>>()
    );
    for pair in history.windows(2) {
        assert_eq!(pair[0].superseded_by, Some(pair[1].id));
    }
    let pending = f.store.inbox_pending(10).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, history[7].id);
    assert_eq!(history[7].processed_at, None);
}

fn eight_workers_asking_for_one_lease_get_one_holder(f: &Fixture) {
    for round in 0..10 {
        let name = format!("entity/shipping/{round}");
        let granted = on_eight_threads(f, |store, thread| {
            store
                .lease(&name, &format!("w{thread}"), Duration::from_secs(30))
                .unwrap()
        });
        assert_eq!(granted.iter().filter(|g| **g).count(), 1, "{granted:?}");
        let holder = granted.iter().position(|g| *g).unwrap();
        assert_eq!(
            f.store.leases(&name).unwrap()[0].holder,
            format!("w{holder}")
        );
    }
}

fn eight_workers_swapping_one_shared_value_have_one_winner(f: &Fixture) {
    let value = |text: String| SharedValue {
        value: text,
        expires_at: None,
    };
    // The first token: one worker stores it.
    let first = on_eight_threads(f, |store, thread| {
        store
            .shared_swap("token/brightpearl", None, &value(format!("pair-{thread}")))
            .unwrap()
    });
    assert_eq!(first.iter().filter(|w| **w).count(), 1, "{first:?}");
    // Every rotation: all read the same pair, one spends it.
    for round in 0..10 {
        let current = f.store.shared_get("token/brightpearl").unwrap().unwrap();
        let won = on_eight_threads(f, |store, thread| {
            store
                .shared_swap(
                    "token/brightpearl",
                    Some(&current.value),
                    &value(format!("pair-{round}-{thread}")),
                )
                .unwrap()
        });
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
        let winner = won.iter().position(|w| *w).unwrap();
        assert_eq!(
            f.store
                .shared_get("token/brightpearl")
                .unwrap()
                .unwrap()
                .value,
            format!("pair-{round}-{winner}")
        );
    }
}

fn eight_workers_reserving_one_rate_limit_get_distinct_cells(f: &Fixture) {
    let period = Duration::from_millis(100);
    let waits = on_eight_threads(f, |store, _| {
        (0..5)
            .map(|_| store.rate_reserve("brightpearl", period, 1).unwrap())
            .collect::<Vec<_>>()
    });
    // The clock stands still: 40 reservations are the cells 0, 100 ms, …, 3.9 s, each once.
    let mut all: Vec<u128> = waits.into_iter().flatten().map(|w| w.as_millis()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..40).map(|n| n * 100).collect::<Vec<u128>>());
}

#[test]
fn time_cursor_errors_name_the_flow_and_the_fix() {
    let err = parse_time_cursor("shipping", "yesterday").unwrap_err();
    assert!(err.contains("`shipping`") && err.contains("relay cursor set shipping"));
}

/// What the tests compare of a history entry: kind, step, status, detail, actor.
type Entry<'a> = (
    EventKind,
    Option<&'a str>,
    Option<Status>,
    Option<&'a str>,
    Option<&'a str>,
);

fn entries(history: &[EntityEvent]) -> Vec<Entry<'_>> {
    history
        .iter()
        .map(|e| {
            (
                e.kind,
                e.step.as_deref(),
                e.status,
                e.detail.as_deref(),
                e.actor.as_deref(),
            )
        })
        .collect()
}

fn step(name: &str) -> EntityUpdate {
    EntityUpdate {
        step: Some(name.into()),
        ..Default::default()
    }
}

fn history_records_each_change_in_order_with_who_did_it(f: &Fixture) {
    use EventKind::*;
    let store = &*f.store;
    let at = |minutes: i64| t0() + TimeDelta::minutes(minutes);
    store
        .upsert_pending("shipping", "NC-1", Some("{\"a\":1}"))
        .unwrap();
    // Not new: no entry.
    store
        .upsert_pending("shipping", "NC-1", Some("{\"a\":1}"))
        .unwrap();
    store.upsert_pending("shipping", "NC-2", None).unwrap();
    f.set(at(1));
    let booked = EntityUpdate {
        target_id: Some("S1".into()),
        ..step("booked")
    };
    store.update("shipping", "NC-1", &booked).unwrap();
    // The same step again, or a change of the payload only: no entry.
    store.update("shipping", "NC-1", &booked).unwrap();
    store
        .update(
            "shipping",
            "NC-1",
            &EntityUpdate {
                payload: Some("{\"a\":2}".into()),
                ..Default::default()
            },
        )
        .unwrap();
    f.set(at(2));
    store
        .record_failure("shipping", "NC-1", "nShift 503")
        .unwrap();
    f.set(at(3));
    let letter = store
        .dead_letter("shipping", "NC-1", "label refused")
        .unwrap();
    f.set(at(4));
    let requeued = store.requeue_by(letter.id, "console:s1").unwrap().unwrap();
    assert_eq!((requeued.status, requeued.attempts), (Status::Pending, 0));
    f.set(at(5));
    store
        .update("shipping", "NC-1", &step("labels_saved"))
        .unwrap();
    f.set(at(6));
    store.update("shipping", "NC-1", &mark_done()).unwrap();
    f.set(at(7));
    let resolved = store
        .resolve("shipping", "NC-1", "cli", "shipped by hand")
        .unwrap()
        .unwrap();

    let history = store.events("shipping", "NC-1", 100).unwrap();
    let requeue_detail = format!("dead letter {}", letter.id);
    assert_eq!(
        entries(&history),
        [
            (Created, None, Some(Status::Pending), None, None),
            (Step, Some("booked"), Some(Status::Pending), None, None),
            (
                AttemptFailed,
                None,
                Some(Status::Pending),
                Some("nShift 503"),
                None
            ),
            (
                DeadLettered,
                None,
                Some(Status::Failed),
                Some("label refused"),
                None
            ),
            (
                Requeued,
                None,
                Some(Status::Pending),
                Some(requeue_detail.as_str()),
                Some("console:s1")
            ),
            (
                Step,
                Some("labels_saved"),
                Some(Status::Pending),
                None,
                None
            ),
            // A status change is a step entry too, with the step the record has.
            (Step, Some("labels_saved"), Some(Status::Done), None, None),
            (
                Resolved,
                None,
                Some(Status::Resolved),
                Some("shipped by hand"),
                Some("cli")
            ),
        ]
    );
    // Stamped by the store's clock, as the record's own time.
    assert_eq!(
        history.iter().map(|e| e.at.clone()).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6, 7].map(|m| stamp_at(at(m)))
    );
    assert_eq!(resolved.updated_at, history[7].at);
    assert!(history.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        history
            .iter()
            .all(|e| e.flow == "shipping" && e.source_id == "NC-1")
    );
    // The last ones, oldest first.
    assert_eq!(store.events("shipping", "NC-1", 3).unwrap(), history[5..]);
    assert_eq!(
        entries(&store.events("shipping", "NC-2", 10).unwrap()),
        [(Created, None, Some(Status::Pending), None, None)]
    );
    assert!(store.events("orders", "NC-1", 10).unwrap().is_empty());
    // The flows' own requeue is in the history without an actor.
    let letter = store.dead_letter("shipping", "NC-2", "gone").unwrap();
    store.requeue(letter.id).unwrap().unwrap();
    let last = store.events("shipping", "NC-2", 1).unwrap();
    assert_eq!((last[0].kind, last[0].actor.as_deref()), (Requeued, None));
}

fn the_audit_log_lists_the_operators_actions_newest_first(f: &Fixture) {
    let store = &*f.store;
    let at = |minutes: i64| t0() + TimeDelta::minutes(minutes);
    for id in ["A", "B", "C"] {
        store.upsert_pending("orders", id, None).unwrap();
    }
    let a = store.dead_letter("orders", "A", "unknown SKU").unwrap();
    let b = store.dead_letter("orders", "B", "unknown SKU").unwrap();
    f.set(at(1));
    store.requeue(a.id).unwrap();
    f.set(at(2));
    store.requeue_by(b.id, "cli").unwrap();
    f.set(at(3));
    store
        .set_cursor_by("orders", "2026-01-01T00:00:00Z", "console:s1")
        .unwrap();
    f.set(at(4));
    store
        .resolve("orders", "C", "console:s2", "cancelled in Norce")
        .unwrap();
    store.update("orders", "A", &mark_done()).unwrap();
    let log = store.audit_log(10).unwrap();
    assert_eq!(
        log.iter()
            .map(|e| (
                e.kind,
                e.source_id.as_str(),
                e.actor.as_deref(),
                e.at.clone()
            ))
            .collect::<Vec<_>>(),
        [
            (
                EventKind::Resolved,
                "C",
                Some("console:s2"),
                stamp_at(at(4))
            ),
            (
                EventKind::CursorSet,
                "",
                Some("console:s1"),
                stamp_at(at(3))
            ),
            (EventKind::Requeued, "B", Some("cli"), stamp_at(at(2))),
        ]
    );
    assert!(log.windows(2).all(|w| w[0].id > w[1].id));
    assert!(log.iter().all(|e| e.flow == "orders"));
    assert_eq!(store.audit_log(2).unwrap(), log[..2]);
    // Another worker on the same state reads the same log.
    assert_eq!(f.worker().audit_log(10).unwrap(), log);
}

/// (flow, source id) of the records `query` finds.
fn found(store: &dyn Store, query: EntityQuery) -> Vec<(String, String)> {
    store
        .search(&query)
        .unwrap()
        .into_iter()
        .map(|r| (r.flow, r.source_id))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(flow, id)| ((*flow).to_owned(), (*id).to_owned()))
        .collect()
}

fn search_finds_an_entity_by_any_of_its_ids(f: &Fixture) {
    let store = &*f.store;
    // A shipment of order 1001, booked as S-77, that tracking events name by NC-5.
    store.upsert_pending("shipping", "1001", None).unwrap();
    store
        .update(
            "shipping",
            "1001",
            &EntityUpdate {
                target_id: Some("S-77".into()),
                ..Default::default()
            },
        )
        .unwrap();
    store.set_alias("shipping", "NC-5", "1001").unwrap();
    // Another flow whose source id is that alias.
    store.upsert_pending("orders", "NC-5", None).unwrap();
    // A product found by its SKU through a lookup map.
    store.upsert_pending("stock", "42", None).unwrap();
    store
        .lookup_put("sku:main", &[("SKU-RED".into(), "42".into())])
        .unwrap();
    // An alias of a flow without that source id finds nothing.
    store.set_alias("orders", "X-1", "1001").unwrap();
    // One record matched in two ways is listed once.
    store
        .lookup_put("sku:main", &[("S-77".into(), "1001".into())])
        .unwrap();
    for n in 0..20 {
        store
            .upsert_pending("shipping", &format!("N{n}"), None)
            .unwrap();
    }
    let by = |reference: &str, flow: Option<&str>| EntityQuery {
        reference: Some(reference.into()),
        flow: flow.map(str::to_owned),
        limit: 50,
        ..Default::default()
    };
    assert_eq!(
        found(store, by("1001", None)),
        pairs(&[("shipping", "1001")]),
        "source id"
    );
    assert_eq!(
        found(store, by("S-77", None)),
        pairs(&[("shipping", "1001")]),
        "target id"
    );
    assert_eq!(
        found(store, by("NC-5", None)),
        pairs(&[("orders", "NC-5"), ("shipping", "1001")]),
        "alias and source id, newest first"
    );
    assert_eq!(
        found(store, by("NC-5", Some("shipping"))),
        pairs(&[("shipping", "1001")])
    );
    assert_eq!(
        found(store, by("NC-5", Some("orders"))),
        pairs(&[("orders", "NC-5")])
    );
    assert_eq!(
        found(store, by("SKU-RED", None)),
        pairs(&[("stock", "42")]),
        "lookup key"
    );
    assert!(found(store, by("SKU-RED", Some("shipping"))).is_empty());
    assert!(found(store, by("X-1", None)).is_empty());
    assert!(found(store, by("nothing", None)).is_empty());
    assert!(found(store, by("1001", Some("orders"))).is_empty());
    let pending = EntityQuery {
        status: Some(Status::Done),
        ..by("1001", None)
    };
    assert!(found(store, pending).is_empty());
}

fn search_filters_by_flow_status_and_time(f: &Fixture) {
    let store = &*f.store;
    let hour = |h: i64| t0() + TimeDelta::hours(h);
    store.upsert_pending("shipping", "A", None).unwrap();
    f.set(hour(1));
    store.upsert_pending("shipping", "B", None).unwrap();
    store.update("shipping", "B", &mark_done()).unwrap();
    f.set(hour(2));
    store.upsert_pending("orders", "C", None).unwrap();
    store.dead_letter("orders", "C", "unknown SKU").unwrap();
    f.set(hour(3));
    store.upsert_pending("shipping", "D", None).unwrap();
    let all = EntityQuery {
        limit: 50,
        ..Default::default()
    };
    let find = |query: EntityQuery| -> Vec<String> {
        found(store, query).into_iter().map(|(_, id)| id).collect()
    };
    assert_eq!(find(all.clone()), ["D", "C", "B", "A"]);
    assert_eq!(
        find(EntityQuery {
            limit: 2,
            ..all.clone()
        }),
        ["D", "C"]
    );
    assert_eq!(
        find(EntityQuery {
            status: Some(Status::Pending),
            ..all.clone()
        }),
        ["D", "A"]
    );
    assert_eq!(
        find(EntityQuery {
            flow: Some("orders".into()),
            ..all.clone()
        }),
        ["C"]
    );
    assert_eq!(
        find(EntityQuery {
            flow: Some("shipping".into()),
            status: Some(Status::Done),
            ..all.clone()
        }),
        ["B"]
    );
    assert!(
        find(EntityQuery {
            flow: Some("orders".into()),
            status: Some(Status::Pending),
            ..all.clone()
        })
        .is_empty()
    );
    // From inclusive, to exclusive.
    assert_eq!(
        find(EntityQuery {
            updated_from: Some(hour(1)),
            updated_to: Some(hour(3)),
            ..all.clone()
        }),
        ["C", "B"]
    );
    assert_eq!(
        find(EntityQuery {
            updated_from: Some(hour(2)),
            ..all.clone()
        }),
        ["D", "C"]
    );
    assert_eq!(
        find(EntityQuery {
            updated_to: Some(hour(1)),
            ..all.clone()
        }),
        ["A"]
    );
    assert_eq!(
        find(EntityQuery {
            updated_from: Some(hour(1)),
            flow: Some("shipping".into()),
            status: Some(Status::Pending),
            ..all.clone()
        }),
        ["D"]
    );
    assert!(
        find(EntityQuery {
            limit: 0,
            ..all.clone()
        })
        .is_empty()
    );
}

fn search_pages_visit_each_record_once_newest_first(f: &Fixture) {
    let store = &*f.store;
    let flow = |n: usize| {
        if n.is_multiple_of(3) {
            "orders"
        } else {
            "shipping"
        }
    };
    for n in 0..250 {
        let id = format!("R{n:03}");
        store.upsert_pending(flow(n), &id, None).unwrap();
        if n.is_multiple_of(2) {
            store.update(flow(n), &id, &mark_done()).unwrap();
        }
    }
    let visit = |base: EntityQuery| -> (Vec<String>, usize) {
        let (mut before, mut seen, mut pages) = (None, Vec::new(), 0);
        loop {
            let page = store
                .search(&EntityQuery {
                    before,
                    ..base.clone()
                })
                .unwrap();
            let Some(last) = page.last() else { break };
            assert!(page.len() <= base.limit);
            assert!(page.windows(2).all(|w| w[0].position > w[1].position));
            before = Some(last.position);
            seen.extend(page.into_iter().map(|r| r.source_id));
            pages += 1;
        }
        (seen, pages)
    };
    let (seen, pages) = visit(EntityQuery {
        limit: 40,
        ..Default::default()
    });
    let expected: Vec<String> = (0..250).rev().map(|n| format!("R{n:03}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 7);
    let (seen, _) = visit(EntityQuery {
        flow: Some("shipping".into()),
        status: Some(Status::Done),
        limit: 15,
        ..Default::default()
    });
    let expected: Vec<String> = (0..250)
        .rev()
        .filter(|&n: &usize| n.is_multiple_of(2) && flow(n) == "shipping")
        .map(|n| format!("R{n:03}"))
        .collect();
    assert_eq!(seen, expected);
    let (seen, _) = visit(EntityQuery {
        flow: Some("orders".into()),
        limit: 9,
        ..Default::default()
    });
    assert_eq!(seen.len(), 84);
    let (seen, _) = visit(EntityQuery {
        status: Some(Status::Pending),
        limit: 50,
        ..Default::default()
    });
    assert_eq!(seen.len(), 125);
}

fn hourly_outcomes_count_each_outcome_in_its_hour(f: &Fixture) {
    let store = &*f.store;
    let hour = |h: i64| t0() + TimeDelta::hours(h);
    f.set(hour(10) + TimeDelta::minutes(15));
    store.upsert_pending("shipping", "A", None).unwrap();
    store.record_failure("shipping", "A", "503").unwrap();
    store.record_failure("shipping", "A", "503").unwrap();
    store.update("shipping", "A", &mark_done()).unwrap();
    // Done again, or a later step of a done entity: not another outcome.
    store.update("shipping", "A", &mark_done()).unwrap();
    store
        .update("shipping", "A", &step("written_back"))
        .unwrap();
    store.upsert_pending("shipping", "B", None).unwrap();
    let letter = store.dead_letter("shipping", "B", "refused").unwrap();
    f.set(hour(10) + TimeDelta::seconds(3599));
    store.upsert_pending("orders", "C", None).unwrap();
    store.update("orders", "C", &mark_done()).unwrap();
    f.set(hour(11) + TimeDelta::minutes(5));
    // Sent back and done: a done outcome in the hour it became done.
    store.requeue_by(letter.id, "cli").unwrap();
    store.update("shipping", "B", &mark_done()).unwrap();
    store.record_failure("orders", "C", "late").unwrap();
    let row = |h: i64, flow: &str, outcome: Outcome, count: u64| HourlyOutcome {
        hour: hour_of(hour(h)),
        flow: flow.into(),
        outcome,
        count,
    };
    let expected = [
        row(10, "orders", Outcome::Done, 1),
        row(10, "shipping", Outcome::AttemptFailed, 2),
        row(10, "shipping", Outcome::Done, 1),
        row(10, "shipping", Outcome::Failed, 1),
        row(11, "orders", Outcome::AttemptFailed, 1),
        row(11, "shipping", Outcome::Done, 1),
    ];
    assert_eq!(expected[0].hour, "2026-01-01T10:00:00Z");
    // From the hour `since` falls in.
    assert_eq!(
        store
            .hourly_outcomes(hour(10) + TimeDelta::minutes(30))
            .unwrap(),
        expected
    );
    assert_eq!(store.hourly_outcomes(t0()).unwrap(), expected);
    assert_eq!(store.hourly_outcomes(hour(11)).unwrap(), expected[4..]);
    assert!(store.hourly_outcomes(hour(12)).unwrap().is_empty());
}

fn resolve_closes_the_entity_and_removes_its_dead_letters(f: &Fixture) {
    let store = &*f.store;
    store
        .upsert_pending("orders", "A", Some("{\"x\":1}"))
        .unwrap();
    store.record_failure("orders", "A", "503").unwrap();
    store.dead_letter("orders", "A", "unknown SKU").unwrap();
    store
        .dead_letter("orders", "A", "unknown SKU again")
        .unwrap();
    store.upsert_pending("orders", "B", None).unwrap();
    let other = store.dead_letter("orders", "B", "unknown SKU").unwrap();
    let before = store.get("orders", "A").unwrap().unwrap();
    f.set(t0() + TimeDelta::minutes(1));
    let resolved = store
        .resolve("orders", "A", "console:s1", "cancelled in Norce")
        .unwrap()
        .unwrap();
    // Only the status (and the time) change: attempts, error and payload stay to be read.
    let expected = EntityRecord {
        status: Status::Resolved,
        updated_at: stamp_at(t0() + TimeDelta::minutes(1)),
        ..before
    };
    assert_eq!(resolved, expected);
    assert_eq!(store.get("orders", "A").unwrap().unwrap(), expected);
    assert!(resolved.status.is_finished());
    assert!(store.dead_letters_of("orders", "A").unwrap().is_empty());
    assert_eq!(store.dead_letters().unwrap(), [other]);
    assert_eq!(
        store.dead_letter_counts().unwrap(),
        [("orders".to_owned(), 1)]
    );
    // No such entity: nothing happens, nothing is recorded.
    assert_eq!(
        store.resolve("orders", "NOPE", "cli", "typo").unwrap(),
        None
    );
    assert_eq!(store.resolve("shipping", "A", "cli", "typo").unwrap(), None);
    assert!(store.events("orders", "NOPE", 10).unwrap().is_empty());
    assert_eq!(store.audit_log(10).unwrap().len(), 1);
    assert_eq!(
        store.counts().unwrap(),
        [
            ("orders".to_owned(), Status::Failed, 1),
            ("orders".to_owned(), Status::Resolved, 1)
        ]
    );
    assert_eq!(
        ids(&store.list(None, Some(Status::Resolved)).unwrap()),
        ["A"]
    );
}

fn set_cursor_by_returns_the_value_before_and_is_logged(f: &Fixture) {
    let store = &*f.store;
    assert_eq!(
        store
            .set_cursor_by("shipping", "2026-01-01T00:00:00Z", "cli")
            .unwrap(),
        None
    );
    f.set(t0() + TimeDelta::minutes(1));
    assert_eq!(
        store
            .set_cursor_by("shipping", "2025-12-01T00:00:00Z", "console:s1")
            .unwrap()
            .as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
    assert_eq!(
        store.cursor("shipping").unwrap().as_deref(),
        Some("2025-12-01T00:00:00Z")
    );
    assert_eq!(store.cursor("stock").unwrap(), None);
    // The flows moving their own cursor are not operators.
    store
        .set_cursor("shipping", "2026-02-01T00:00:00Z")
        .unwrap();
    let log = store.audit_log(10).unwrap();
    assert_eq!(
        log.iter()
            .map(|e| (
                e.kind,
                e.flow.as_str(),
                e.source_id.as_str(),
                e.step.as_deref(),
                e.status,
                e.detail.as_deref(),
                e.actor.as_deref(),
                e.at.clone()
            ))
            .collect::<Vec<_>>(),
        [
            (
                EventKind::CursorSet,
                "shipping",
                "",
                None,
                None,
                Some("2026-01-01T00:00:00Z -> 2025-12-01T00:00:00Z"),
                Some("console:s1"),
                stamp_at(t0() + TimeDelta::minutes(1))
            ),
            (
                EventKind::CursorSet,
                "shipping",
                "",
                None,
                None,
                Some("(unset) -> 2026-01-01T00:00:00Z"),
                Some("cli"),
                stamp_at(t0())
            ),
        ]
    );
}

fn dead_letter_pages_by_flow_and_entity(f: &Fixture) {
    let store = &*f.store;
    let letters: Vec<DeadLetter> = [
        ("orders", "A"),
        ("shipping", "S1"),
        ("orders", "B"),
        ("orders", "A"),
        ("shipping", "S2"),
    ]
    .into_iter()
    .map(|(flow, id)| store.dead_letter(flow, id, "why").unwrap())
    .collect();
    let page = |flow: Option<&str>, after: i64, limit: usize| {
        store.dead_letters_page(flow, after, limit).unwrap()
    };
    assert_eq!(page(None, 0, 2), letters[..2]);
    assert_eq!(page(None, letters[1].id, 10), letters[2..]);
    assert_eq!(
        page(Some("orders"), 0, 2),
        [letters[0].clone(), letters[2].clone()]
    );
    assert_eq!(page(Some("orders"), letters[2].id, 2), letters[3..4]);
    assert!(page(Some("stock"), 0, 10).is_empty());
    assert!(page(None, letters[4].id, 10).is_empty());
    assert_eq!(
        store.dead_letters_of("orders", "A").unwrap(),
        [letters[0].clone(), letters[3].clone()]
    );
    assert!(store.dead_letters_of("shipping", "A").unwrap().is_empty());
    assert_eq!(
        store.dead_letter_counts().unwrap(),
        [("orders".to_owned(), 3), ("shipping".to_owned(), 2)]
    );
}

fn prune_drops_old_flow_history_and_outcomes_but_keeps_the_audit_log(f: &Fixture) {
    let store = &*f.store;
    store.upsert_pending("orders", "A", None).unwrap();
    let letter = store.dead_letter("orders", "A", "unknown SKU").unwrap();
    store.requeue_by(letter.id, "cli").unwrap();
    store.update("orders", "A", &mark_done()).unwrap();
    f.set(t0() + days(20));
    store.upsert_pending("orders", "B", None).unwrap();
    store.update("orders", "B", &mark_done()).unwrap();
    let policy = RetentionPolicy {
        max_age: days(30),
        ..RetentionPolicy::default()
    };
    store.prune(&policy, t0() + days(31), 2).unwrap();
    // A's flow entries are over 30 days old; the operator's requeue stays.
    let kinds = |id: &str| -> Vec<(EventKind, Option<String>)> {
        store
            .events("orders", id, 10)
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.actor))
            .collect()
    };
    assert_eq!(kinds("A"), [(EventKind::Requeued, Some("cli".to_owned()))]);
    assert_eq!(
        kinds("B"),
        [(EventKind::Created, None), (EventKind::Step, None)]
    );
    assert_eq!(store.audit_log(10).unwrap().len(), 1);
    let hours = |since| -> Vec<String> {
        store
            .hourly_outcomes(since)
            .unwrap()
            .into_iter()
            .map(|h| h.hour)
            .collect()
    };
    assert_eq!(hours(t0()), [hour_of(t0() + days(20))]);
    // With a shorter age, the hourly outcomes stay 48 hours: the charts show two days.
    f.set(t0() + days(40));
    store.upsert_pending("orders", "C", None).unwrap();
    store.update("orders", "C", &mark_done()).unwrap();
    let short = RetentionPolicy {
        max_age: days(1),
        ..RetentionPolicy::default()
    };
    store
        .prune(&short, t0() + days(40) + TimeDelta::hours(30), 500)
        .unwrap();
    assert!(kinds("C").is_empty() && kinds("B").is_empty());
    assert_eq!(hours(t0()), [hour_of(t0() + days(40))]);
    assert_eq!(kinds("A").len(), 1, "the audit log is kept");
    // The records themselves stay.
    assert_eq!(store.list(Some("orders"), None).unwrap().len(), 3);
}
