//! `cargo bench -p relay --bench scale_out -- ORDERS WORKERS KILLS [LATENCY_MS]` (defaults 2000
//! 4 5 20): the scale-out scenario (issue 13) — WORKERS `relay serve` processes on one
//! throwaway PostgreSQL cluster share the shipping flow against the sandbox with LATENCY_MS per
//! platform call, KILLS SIGKILLs of random workers (each restarted at once) and one restart of
//! PostgreSQL mid-run — printed as one JSON object; exit 1 when an order was doubled or lost.
//!
//! `cargo bench -p relay --bench scale_out -- scaling [ORDERS [LATENCY_MS]]` runs 1, 2 and 4
//! workers without kills or restart on the same dataset and prints each run and the speed-ups
//! against one worker (issue 13's target: 4 workers ≥ 3.2 × one).
//!
//! Environment: `SCALE_OUT_SEED` (default 13) repeats or varies the dataset and the schedule;
//! `SCALE_OUT_TOKEN_LIFETIME_SECS` sets the sandbox's Norce token lifetime (default an hour);
//! `SCALE_OUT_QUERY_PAGE_SIZE` sets the orders per page of the sandbox's Norce Query answers
//! (default 500); `SCALE_OUT_TIMEOUT_SECS` bounds a run (default 600: what is left is then
//! reported as lost); `SCALE_OUT_KEEP_LOGS=1` keeps the workers' logs of a run that passed (`logs_kept` says
//! where; a failed run always keeps them).
//! Needs PostgreSQL's server binaries (Debian: `apt-get install postgresql`).

use relay::scenario::scale_out::{self, Database, ScaleOut, ScaleOutReport};

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

fn cluster() -> Result<Cluster, String> {
    let cluster = pg_cluster::Cluster::create().map_err(|e| format!("PostgreSQL: {e}"))?;
    let url = cluster
        .create_database("relay_scale_out")
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    Ok(Cluster { cluster, url })
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn options(orders: usize, workers: usize, kills: usize, latency_ms: u64) -> ScaleOut {
    let mut options = ScaleOut::new(env!("CARGO_BIN_EXE_relay"), orders, workers, kills);
    options.latency_ms = latency_ms;
    options.seed = env_number("SCALE_OUT_SEED").unwrap_or(options.seed);
    options.norce_token_lifetime_secs = env_number("SCALE_OUT_TOKEN_LIFETIME_SECS");
    options.norce_query_page_size = env_number("SCALE_OUT_QUERY_PAGE_SIZE");
    if let Some(secs) = env_number("SCALE_OUT_TIMEOUT_SECS") {
        options.timeout = std::time::Duration::from_secs(secs);
    }
    options.keep_logs = std::env::var_os("SCALE_OUT_KEEP_LOGS").is_some();
    options
}

/// One run on its own cluster.
async fn one(options: &ScaleOut) -> Result<ScaleOutReport, String> {
    let mut database = cluster()?;
    scale_out::run(options, &mut database).await
}

/// 1, 2 and 4 workers, no kills, no restart: the speed-up.
async fn scaling(orders: usize, latency_ms: u64) -> Result<(serde_json::Value, bool), String> {
    let mut runs = Vec::new();
    let mut passed = true;
    for workers in [1, 2, 4] {
        let mut options = options(orders, workers, 0, latency_ms);
        options.restart_postgres = false;
        let report = one(&options).await?;
        eprintln!(
            "scale_out: {workers} worker(s): {} orders/s, {} s, {} calls per order, machine CPU busy {}",
            report.orders_per_second,
            report.duration_secs,
            report.calls_per_order,
            report.cpu.machine_busy
        );
        passed &= report.passed();
        runs.push(report);
    }
    let base = runs
        .first()
        .map_or(0.0, |r| r.orders_per_second)
        .max(f64::EPSILON);
    let speedups: serde_json::Map<String, serde_json::Value> = runs
        .iter()
        .map(|r| {
            let speedup = (r.orders_per_second / base * 100.0).round() / 100.0;
            (format!("{}_workers", r.workers), speedup.into())
        })
        .collect();
    let runs = serde_json::to_value(&runs).map_err(|e| e.to_string())?;
    Ok((
        serde_json::json!({ "speedup_over_one_worker": speedups, "runs": runs }),
        passed,
    ))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let number = |i: usize, default: u64| {
        args.get(i)
            .and_then(|a| a.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("scale_out: cannot start a runtime: {e}");
            std::process::exit(2);
        }
    };
    let outcome = if args.first().map(String::as_str) == Some("scaling") {
        runtime.block_on(scaling(number(1, 2000) as usize, number(2, 20)))
    } else {
        let options = options(
            number(0, 2000) as usize,
            number(1, 4) as usize,
            number(2, 5) as usize,
            number(3, 20),
        );
        runtime.block_on(one(&options)).and_then(|report| {
            let passed = report.passed();
            serde_json::to_value(&report)
                .map(|json| (json, passed))
                .map_err(|e| e.to_string())
        })
    };
    match outcome {
        Ok((json, passed)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
            if !passed {
                eprintln!(
                    "scale_out: not every qualifying order was done exactly once (see the JSON)"
                );
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("scale_out: {e}");
            std::process::exit(1);
        }
    }
}
