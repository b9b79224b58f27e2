//! `cargo bench -p relay --bench throughput [-- ORDERS [LATENCY_MS [CONCURRENCY]]]`
//!
//! Orders per second through the shipping flow (Norce → nShift → Norce) with the sandbox
//! answering every platform call after `LATENCY_MS` (default 20), against the ideal
//! `concurrency / (calls per order × latency)`. Relay runs as its own process (`relay run --flow
//! shipping`) so its peak RSS is measured apart from the sandbox, which runs in this process.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sandbox::{DatasetConfig, FaultRule, Sandbox, SandboxConfig};

/// Peak resident set of a process, from `/proc/<pid>/status` (Linux).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn measure(
    orders: usize,
    latency_ms: u64,
    concurrency: usize,
) -> Result<serde_json::Value, String> {
    let sandbox = Sandbox::start(SandboxConfig {
        dataset: DatasetConfig {
            orders,
            seed: 3,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    sandbox.state().faults.add(FaultRule {
        latency_ms,
        ..FaultRule::default()
    })?;
    let data_dir =
        std::env::temp_dir().join(format!("relay-throughput-{}-{orders}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
    let config = data_dir.join("relay.toml");
    let toml = format!(
        "[state]\ndir = {:?}\n\n[run]\nconcurrency = {concurrency}\n",
        data_dir.display().to_string()
    );
    std::fs::write(&config, toml).map_err(|e| e.to_string())?;

    let calls_before = sandbox.state().faults.total_requests();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .env_clear()
        .envs(relay::embedded::env_pairs(&sandbox.credentials()))
        .args(["run", "--json", "--flow", "shipping", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id().unwrap_or_default();
    let mut peak_kib = 0;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut text)
            .await
            .map(|_| text)
    });
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    let summary: serde_json::Value = serde_json::from_str(
        &reader
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let shipping = &summary["flows"][0];
    let shipped = shipping["booked"].as_u64().unwrap_or(0);
    let calls = (sandbox.state().faults.total_requests() - calls_before) as f64;
    let calls_per_order = calls / shipped.max(1) as f64;
    let seconds = elapsed.as_secs_f64();
    let throughput = shipped as f64 / seconds;
    let ideal =
        concurrency as f64 / (calls_per_order * Duration::from_millis(latency_ms).as_secs_f64());
    // Calls per platform operation (the last LOG_CAPACITY requests: all of them below ~2,000 orders).
    let mut by_operation = std::collections::BTreeMap::<String, u64>::new();
    for request in sandbox.state().faults.requests() {
        let path: String = request
            .path
            .split('/')
            .filter(|p| !p.is_empty() && !p.bytes().all(|b| b.is_ascii_digit()))
            .collect::<Vec<_>>()
            .join("/");
        *by_operation
            .entry(format!("{} /{path}", request.method))
            .or_default() += 1;
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(serde_json::json!({
        "calls_by_operation": by_operation,
        "orders_in_dataset": orders,
        "shipped": shipped,
        "failed": shipping["failed"],
        "relay_exit": status.code(),
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "platform_calls": calls,
        "calls_per_order": (calls_per_order * 100.0).round() / 100.0,
        "seconds": (seconds * 100.0).round() / 100.0,
        "orders_per_second": (throughput * 10.0).round() / 10.0,
        "ideal_orders_per_second": (ideal * 10.0).round() / 10.0,
        "share_of_ideal": (throughput / ideal * 1000.0).round() / 1000.0,
        "relay_peak_rss_mib": peak_kib / 1024,
    }))
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let orders = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let latency_ms = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let concurrency = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("throughput: cannot start a runtime: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(measure(orders, latency_ms, concurrency)) {
        Ok(result) => println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        ),
        Err(e) => {
            eprintln!("throughput: {e}");
            std::process::exit(1);
        }
    }
}
