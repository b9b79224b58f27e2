//! Exactly once under faults, reduced for CI: 100 orders through Norce → nShift against the
//! sandbox with 10 % server errors, 5 % commit-then-fail on bookings, 2 % 429s, a revoked token
//! mid-run and the relay process killed (SIGKILL) once and restarted. The full run (1,000
//! orders, five kills) is `cargo bench -p relay --bench exactly_once`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_gets_exactly_one_shipment_and_one_delivery_note() {
    let options = relay::scenario::ExactlyOnce {
        relay_bin: env!("CARGO_BIN_EXE_relay").into(),
        orders: 100,
        kills: 1,
        seed: 7,
        faults: true,
        max_runs: 30,
    };
    let report = relay::scenario::run(&options)
        .await
        .expect("scenario completes");
    assert!(report.qualifying >= 60, "{report:?}");
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.kills, 1, "the kill landed mid-run: {report:?}");
    for kind in ["error", "commit_then_fail"] {
        assert!(
            report
                .faults_injected
                .iter()
                .any(|(k, n)| k == kind && *n > 0),
            "no {kind} fault was injected: {report:?}"
        );
    }
}
