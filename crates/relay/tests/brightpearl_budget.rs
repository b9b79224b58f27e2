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
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.skus_reconciled, 600);
    assert!(report.orders_during_reconciliation > 0 || report.reconciliation_seconds < 1.0);
}
