//! Scale-out, reduced for CI (issue 13): three `relay serve` worker processes on one throwaway
//! PostgreSQL cluster share 200 orders of the shipping flow against the sandbox (5 ms per
//! platform call), one worker is SIGKILLed mid-run and restarted, and PostgreSQL is stopped and
//! started again mid-run. Every qualifying order must end with exactly one nShift shipment and
//! one Norce delivery note. The full run is `cargo bench -p relay --bench scale_out`.
//!
//! Separate processes run in real time: the scenario waits on conditions (relay's state, the
//! workers' exits), the only timed pause being PostgreSQL's second down.

use relay::scenario::scale_out::{self, Database, ScaleOut};

/// A throwaway cluster with one fresh database for the run.
struct Cluster {
    cluster: pg_cluster::Cluster,
    url: String,
}

impl Database for Cluster {
    fn url(&self) -> String {
        self.url.clone()
    }
    fn stop(&mut self) -> Result<(), String> {
        self.cluster.stop().map_err(|e| e.to_string())
    }
    fn start(&mut self) -> Result<(), String> {
        self.cluster.start().map_err(|e| e.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_kill_and_a_postgres_restart_ship_every_order_exactly_once() {
    let Some(cluster) = pg_cluster::start_or_skip(
        "three_workers_one_kill_and_a_postgres_restart_ship_every_order_exactly_once",
    ) else {
        return;
    };
    let url = cluster.create_database("relay_scale_out").unwrap();
    let mut database = Cluster { cluster, url };
    let mut options = ScaleOut::new(env!("CARGO_BIN_EXE_relay"), 200, 3, 1);
    options.latency_ms = 5;
    options.seed = 7;
    options.timeout = std::time::Duration::from_secs(90);
    // Several Query pages while other workers ship the first ones (their statuses change):
    // the poll must page by key, not by `$skip`, or orders between pages are never seen.
    options.norce_query_page_size = Some(25);
    let report = scale_out::run(&options, &mut database)
        .await
        .expect("the scenario runs");
    let shown = serde_json::to_string_pretty(&report).unwrap();
    // The figures, in the test's output for whoever reads a CI log.
    eprintln!("{shown}");
    assert!(report.qualifying >= 100, "{shown}");
    assert!(!report.timed_out, "not finished in time: {shown}");
    // A worker restarted while PostgreSQL is down waits for it: no worker exits by itself.
    assert!(
        report.unexpected_exits.is_empty(),
        "a worker exited by itself: {shown}"
    );
    assert_eq!(report.kills, 1, "the kill landed mid-run: {shown}");
    assert_eq!(
        report.postgres_restarts, 1,
        "PostgreSQL restarted mid-run: {shown}"
    );
    assert_eq!(report.doubled, 0, "{shown}");
    assert_eq!(report.lost, 0, "{shown}");
    assert_eq!(report.unexpected, 0, "{shown}");
    assert_eq!(report.exactly_once, report.qualifying, "{shown}");
    assert_eq!(report.brightpearl_503, 0, "{shown}");
    assert_eq!(report.request_log_gap, 0, "every request counted: {shown}");
    // One Norce token for the whole run, whatever the number of workers and restarts: the
    // token is shared through the database.
    assert!(
        report.norce_token_requests <= report.norce_token_lifetimes,
        "{} Norce token requests for {} token lifetime(s): {shown}",
        report.norce_token_requests,
        report.norce_token_lifetimes
    );
    assert_eq!(report.dead_letters, 0, "{shown}");
    assert_eq!(
        report.leases_left, 0,
        "every entity lease released at the end: {shown}"
    );
}
