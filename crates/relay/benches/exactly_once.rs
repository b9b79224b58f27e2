//! `cargo bench -p relay --bench exactly_once [-- ORDERS KILLS [shipping]]`: the full
//! exactly-once scenario (default 1,000 orders, five SIGKILLs, all faults, and the order
//! lifecycle: the orders flow beside shipping, then cancellations, returns and refunds, killed
//! as often; `shipping` leaves the lifecycle out), printed as JSON, with `calls_per_order`: the
//! platform calls of every relay process (retries after the injected faults included) per
//! qualifying order.

/// The report as JSON with `calls_per_order` (from the report's `platform_calls`; `null` when
/// the report does not count them).
fn with_calls_per_order(report: &relay::scenario::ExactlyOnceReport) -> serde_json::Value {
    let mut json = serde_json::to_value(report).unwrap_or_default();
    let calls = json
        .get("platform_calls")
        .and_then(serde_json::Value::as_f64);
    let per_order =
        calls.map(|calls| (calls / report.qualifying.max(1) as f64 * 100.0).round() / 100.0);
    if let Some(object) = json.as_object_mut() {
        object.insert("calls_per_order".to_owned(), serde_json::json!(per_order));
    }
    json
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let orders = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let kills = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let lifecycle = args.next().as_deref() != Some("shipping");
    let options = relay::scenario::ExactlyOnce {
        relay_bin: env!("CARGO_BIN_EXE_relay").into(),
        orders,
        kills,
        seed: 11,
        faults: true,
        max_runs: 200,
        lifecycle,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("exactly_once: cannot start a runtime: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(relay::scenario::run(&options)) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&with_calls_per_order(&report)).unwrap_or_default()
            );
            if !report.passed() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("exactly_once: {e}");
            std::process::exit(1);
        }
    }
}
