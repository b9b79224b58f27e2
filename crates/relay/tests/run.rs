//! `relay` (= `relay run`), the main job: every flow against the embedded sandbox, and the API
//! budget of a whole run.

mod common;

use std::process::Command;

#[test]
fn relay_without_a_subcommand_runs_every_flow_against_the_embedded_sandbox() {
    let output = Command::new(env!("CARGO_BIN_EXE_relay")).env_clear().output().expect("relay runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("embedded sandbox"), "{stderr}");
    for flow in ["orders", "shipping", "stock", "fulfilment", "total"] {
        let row = stdout.lines().find(|l| l.starts_with(flow)).unwrap_or_else(|| panic!("no {flow} row:\n{stdout}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[5], "0", "nothing failed in {flow}: {row}");
    }
    let shipping: Vec<&str> = stdout.lines().find(|l| l.starts_with("shipping")).unwrap().split_whitespace().collect();
    assert!(shipping[2].parse::<u32>().unwrap() > 0, "shipments were booked: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_run_fetches_one_norce_token_and_never_trips_brightpearl_throttling() {
    let sandbox = common::sandbox_with(sandbox::SandboxConfig::default()).await;
    let mut config = relay::config::RelayConfig::default();
    config.stock.job_wait.initial_interval_ms = 1;
    config.state.dir = std::env::temp_dir().join(format!("relay-run-budget-{}", std::process::id()));
    let context = common::context(&sandbox, config);
    // Import jobs complete on the sandbox's clock: move it while the stock pass waits.
    let state = sandbox.state().clone();
    let pump = tokio::spawn(async move {
        loop {
            state.clock.advance(std::time::Duration::from_secs(10));
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    relay::flows::orders::run(&context).await.unwrap();
    relay::flows::shipping::run(&context).await.unwrap();
    relay::flows::stock::run(&context).await.unwrap();
    relay::flows::orders::run_fulfilment(&context).await.unwrap();
    pump.abort();

    let log = sandbox.state().faults.requests();
    let token_requests = log.iter().filter(|r| r.method == "POST" && r.path == "/identity/1.0/connect/token").count();
    // One process, one client id, one token lifetime (3600 s by default, and the run is far
    // shorter): exactly one token request.
    assert_eq!(token_requests, 1, "Norce token endpoint called {token_requests} times");
    let throttled = log.iter().filter(|r| r.path.starts_with("/public-api/") && r.status == 503).count();
    assert_eq!(throttled, 0, "Brightpearl answered 503 {throttled} times");
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("relay-run-budget-{}", std::process::id())));
}
