//! `cargo bench -p relay --bench exactly_once [-- ORDERS KILLS]`: the full exactly-once scenario
//! (default 1,000 orders, five SIGKILLs, all faults), printed as JSON.

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let orders = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let kills = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let options = relay::scenario::ExactlyOnce {
        relay_bin: env!("CARGO_BIN_EXE_relay").into(),
        orders,
        kills,
        seed: 11,
        faults: true,
        max_runs: 200,
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
                serde_json::to_string_pretty(&report).unwrap_or_default()
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
