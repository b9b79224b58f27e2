//! `cargo bench -p relay --bench brightpearl_budget [-- ORDERS [SKUS]]`: Norce orders (default
//! 1,000; 30 % repeat customers, best-selling SKUs) imported into Brightpearl while a full stock
//! reconciliation (default 5,000 SKUs) runs on the same account, at Brightpearl's real cap on
//! tokio's paused clock (virtual minutes pass in seconds), with commit-then-fail on 5 % of the
//! sales-order POSTs; printed as JSON. Exits 1 when an order is doubled or lost or Brightpearl
//! answered 503.

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let defaults = relay::scenario::budget::BudgetScenario::default();
    let options = relay::scenario::budget::BudgetScenario {
        orders: args
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or(defaults.orders),
        skus: args
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or(defaults.skus),
        ..defaults
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("brightpearl_budget: cannot start a runtime: {e}");
            std::process::exit(2);
        }
    };
    let real = std::time::Instant::now();
    match runtime.block_on(relay::scenario::budget::run(&options)) {
        Ok(report) => {
            let mut json = serde_json::to_value(&report).unwrap_or_default();
            json["elapsed_real_ms"] = (real.elapsed().as_millis() as u64).into();
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
            if !report.passed() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("brightpearl_budget: {e}");
            std::process::exit(1);
        }
    }
}
