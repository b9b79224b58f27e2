//! The Brightpearl budget scenario, reduced for CI (the full run is
//! `cargo bench -p relay --bench brightpearl_budget`): orders imported while a full stock
//! reconciliation runs on the same account, on tokio's paused clock at Brightpearl's real cap.

use relay::scenario::budget::{BudgetScenario, run};

#[tokio::test(start_paused = true)]
async fn orders_import_within_the_budget_beside_a_reconciliation() {
    let report = run(&BudgetScenario {
        orders: 60,
        skus: 600,
        hot_skus: 60,
        ..BudgetScenario::default()
    })
    .await
    .expect("scenario runs");
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    // Every order exactly once under commit-then-fail, no 503.
    assert!(report.passed(), "{report:#?}");
    assert!(report.commit_then_fail_injected > 0, "{report:#?}");
    assert_eq!(report.skus_reconciled, 600);
    // The target of issue 17, and orders never waiting for the reconciliation to end.
    assert!(report.requests_per_order <= 1.6, "{report:#?}");
    assert_eq!(
        report.orders_during_reconciliation, report.orders,
        "{report:#?}"
    );
    // The limiter's split accounts for every request Brightpearl saw.
    assert_eq!(
        report.orders_requests + report.reconciliation_requests,
        report.brightpearl_requests,
        "{report:#?}"
    );
}
