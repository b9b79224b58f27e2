//! Several workers over one PostgreSQL database, in one process: each with its own store
//! connection pool, clients and worker name, as separate `relay serve` processes would be.
//! Needs PostgreSQL (a throwaway cluster from `pg-cluster`): skipped loudly outside CI when the
//! server binaries are missing, failed in CI.

mod common;

use std::sync::Arc;

use relay::config::RelayConfig;
use relay::flows::FlowContext;
use relay::flows::context::Coordination;
use relay::state::{PgStore, Status, Store};
use sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

async fn admin(sandbox: &Sandbox, path_and_query: &str) -> Value {
    let url = format!("{}{path_and_query}", sandbox.base_url());
    let answer = common::http("GET", &url, None).await;
    assert_eq!(answer.status, 200, "{path_and_query}: {}", answer.body);
    answer.json()
}

async fn count(sandbox: &Sandbox, path_and_query: &str) -> usize {
    admin(sandbox, path_and_query)
        .await
        .as_array()
        .unwrap()
        .len()
}

/// A worker: its own pool on the database, its own clients, its own name.
fn worker(sandbox: &Sandbox, url: &str, name: &str, dir: &std::path::Path) -> FlowContext {
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(url).expect("database"));
    let mut config = RelayConfig::default();
    config.state.dir = dir.to_path_buf();
    let mut ctx = common::context_with_store(sandbox, config, store);
    ctx.coordination = Coordination {
        worker: name.into(),
        lease_ttl: std::time::Duration::from_secs(30),
    };
    ctx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_ship_every_order_once_with_one_norce_token() {
    let Some(cluster) = pg_cluster::start_or_skip("three_workers_ship_every_order_once") else {
        return;
    };
    let url = cluster.create_database("workers").expect("database");
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let dir = std::env::temp_dir().join(format!("relay-workers-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let workers: Vec<FlowContext> = ["w1", "w2", "w3"]
        .iter()
        .map(|name| worker(&sandbox, &url, name, &dir))
        .collect();
    let token_path = "/identity/1.0/connect/token";
    let tokens_before = sandbox
        .state()
        .faults
        .requests()
        .iter()
        .filter(|r| r.path == token_path)
        .count();

    // The seeded orders that qualify by default (status Created).
    let orders = admin(&sandbox, "/_sandbox/norce/orders").await;
    let qualifying: Vec<String> = orders
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] == "Created")
        .map(|o| o["orderNo"].as_str().unwrap().to_owned())
        .collect();
    let passes = workers.iter().map(relay::flows::shipping::run);
    let reports = futures::future::join_all(passes).await;
    let mut booked = Vec::new();
    for report in reports {
        booked.push(report.expect("a pass").booked);
    }
    // A second round: what one worker's poll found after the others' passes had ended.
    let passes = workers.iter().map(relay::flows::shipping::run);
    for (n, report) in futures::future::join_all(passes)
        .await
        .into_iter()
        .enumerate()
    {
        booked[n] += report.expect("a pass").booked;
    }

    assert!(
        qualifying.len() >= 5,
        "the sandbox's orders shipped: {qualifying:?}"
    );
    for order_no in &qualifying {
        let shipments = count(
            &sandbox,
            &format!("/_sandbox/nshift/shipments?orderNo={order_no}"),
        )
        .await;
        let notes = count(
            &sandbox,
            &format!("/_sandbox/norce/delivery-notes?orderNo={order_no}"),
        )
        .await;
        assert_eq!(
            (shipments, notes),
            (1, 1),
            "{order_no}: one shipment, one note"
        );
    }
    assert_eq!(
        booked.iter().sum::<u64>() as usize,
        qualifying.len(),
        "every booking counted once across workers: {booked:?}"
    );
    let pending = workers[0]
        .store
        .list(Some("shipping"), Some(Status::Pending))
        .unwrap();
    assert!(pending.is_empty(), "nothing left pending: {pending:?}");
    let tokens = sandbox
        .state()
        .faults
        .requests()
        .iter()
        .filter(|r| r.path == token_path)
        .count()
        - tokens_before;
    assert_eq!(
        tokens, 1,
        "three workers, one Norce token from the shared state"
    );
    assert!(
        workers[0].store.leases("").unwrap().is_empty(),
        "every lease given back"
    );
}
