//! `cargo bench -p relay --bench throughput [-- ORDERS [LATENCY_MS [CONCURRENCY]]]`
//!
//! Orders per second through the shipping flow (Norce → nShift → Norce) with the sandbox
//! answering every platform call after `LATENCY_MS` (default 20), against the ideal
//! `concurrency / (calls per order × latency)`, and the peak RSS of this process (relay and the
//! in-process sandbox together) so memory can be compared across order counts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay::config::RelayConfig;
use relay::flows::FlowContext;
use relay::state::{SqliteStore, Store};
use sandbox::{DatasetConfig, FaultRule, Sandbox, SandboxConfig};

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn measure(orders: usize, latency_ms: u64, concurrency: usize) -> Result<serde_json::Value, String> {
    let sandbox = Sandbox::start(SandboxConfig {
        dataset: DatasetConfig { orders, seed: 3, ..DatasetConfig::default() },
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    sandbox.state().faults.add(FaultRule { latency_ms, ..FaultRule::default() })?;
    let data_dir = std::env::temp_dir().join(format!("relay-throughput-{}-{orders}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut config = RelayConfig::default();
    config.state.dir = data_dir.clone();
    config.run.concurrency = concurrency;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(&data_dir).map_err(|e| e.to_string())?);
    let settings = relay::embedded::settings_for(&sandbox.credentials());
    let context = FlowContext::from_settings(&settings, store, Arc::new(config))?;
    sandbox.state().faults.clear_requests();

    let started = Instant::now();
    let report = relay::flows::shipping::run(&context).await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();

    let calls = sandbox.state().faults.requests().len() as f64;
    let shipped = report.booked.max(1) as f64;
    let calls_per_order = calls / shipped;
    let seconds = elapsed.as_secs_f64();
    let throughput = shipped / seconds;
    let ideal = concurrency as f64 / (calls_per_order * Duration::from_millis(latency_ms).as_secs_f64());
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(serde_json::json!({
        "orders_in_dataset": orders,
        "shipped": report.booked,
        "failed": report.failed,
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "platform_calls": calls,
        "calls_per_order": (calls_per_order * 100.0).round() / 100.0,
        "seconds": (seconds * 100.0).round() / 100.0,
        "orders_per_second": (throughput * 10.0).round() / 10.0,
        "ideal_orders_per_second": (ideal * 10.0).round() / 10.0,
        "share_of_ideal": (throughput / ideal * 1000.0).round() / 1000.0,
        "peak_rss_mib": peak_rss_kib().map(|k| k / 1024),
    }))
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let orders = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let latency_ms = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let concurrency = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("throughput: cannot start a runtime: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(measure(orders, latency_ms, concurrency)) {
        Ok(result) => println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default()),
        Err(e) => {
            eprintln!("throughput: {e}");
            std::process::exit(1);
        }
    }
}
