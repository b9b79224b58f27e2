//! Exactly once under faults, reduced for CI: 100 orders through Norce → nShift (and into
//! Brightpearl) against the sandbox with 10 % server errors, 5 % commit-then-fail on bookings
//! and Brightpearl writes, 2 % 429s, a revoked token mid-run and the relay process killed
//! (SIGKILL) once and restarted; then a tenth of the shipped orders cancelled in the shop, a
//! tenth returned, a fifth of the imported ones refunded with restock, and one more SIGKILL.
//! The full run (1,000 orders, five kills) is `cargo bench -p relay --bench exactly_once`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_and_every_lifecycle_write_happens_exactly_once() {
    let options = relay::scenario::ExactlyOnce {
        relay_bin: env!("CARGO_BIN_EXE_relay").into(),
        orders: 100,
        kills: 1,
        seed: 7,
        faults: true,
        max_runs: 30,
        lifecycle: true,
    };
    let report = relay::scenario::run(&options)
        .await
        .expect("scenario completes");
    eprintln!("{report:#?}");
    assert!(report.qualifying >= 60, "{report:?}");
    assert!(report.passed(), "{report:#?}");
    assert_eq!(
        report.kills - report.lifecycle_kills,
        1,
        "the kill landed mid-run: {report:?}"
    );
    // Every kind of write was made, and counted on the platforms.
    let kinds: Vec<&str> = report.writes.iter().map(|w| w.kind.as_str()).collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    for write in &report.writes {
        assert!(
            write.expected > 0,
            "nothing to count for {}: {report:#?}",
            write.kind
        );
    }
    assert!(report.lifecycle_items >= 15, "{report:#?}");
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
