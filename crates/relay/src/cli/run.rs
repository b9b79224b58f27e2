//! `relay run`: the main job. Runs every flow once, to completion, and prints a summary.
//!
//! With no configured platform (or `--sandbox`) it starts the embedded sandbox with a seeded
//! dataset and a fresh data folder, so `cargo run -p relay -- run` works on a fresh machine.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client_core::Settings;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sandbox::{DatasetConfig, Sandbox, SandboxConfig};

use crate::config::RelayConfig;
use crate::flows::{FlowContext, FlowError, FlowFuture, FlowReport, RunFn};
use crate::state::{SqliteStore, Status, Store};
use crate::verify::configured_platforms;

/// Arguments of `relay run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
    /// Run against the embedded sandbox even when platforms are configured.
    #[arg(long)]
    sandbox: bool,
    /// Orders in the embedded sandbox's dataset.
    #[arg(long, default_value_t = 20)]
    sandbox_orders: usize,
    /// SKUs in the embedded sandbox's dataset.
    #[arg(long, default_value_t = 50)]
    sandbox_skus: usize,
    /// Seed of the embedded sandbox's dataset.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print the summary as JSON on stdout (no progress bars).
    #[arg(long)]
    json: bool,
    /// Run only these flows (comma-separated names from the summary table).
    #[arg(long = "flow", value_delimiter = ',')]
    flows: Vec<String>,
}


/// One flow as `relay run` drives it: its name, the entity flows it records (for progress), and
/// the pass itself.
struct FlowRunner {
    name: &'static str,
    entity_flows: &'static [&'static str],
    run: RunFn,
}

/// The flows in the order a run takes them: orders into the ERP first, then shipping, stock and
/// prices, then fulfilment that the ERP shipped.
fn runners() -> Vec<FlowRunner> {
    use crate::flows::{orders, shipping, stock};
    vec![
        FlowRunner { name: "orders", entity_flows: &["orders"], run: |ctx| Box::pin(orders::run(ctx)) },
        FlowRunner { name: "shipping", entity_flows: &["shipping"], run: |ctx| Box::pin(shipping::run(ctx)) },
        // One runner for stock and prices: they share the catalog search.
        FlowRunner { name: "stock", entity_flows: &["stock", "prices"], run: |ctx| Box::pin(stock::run(ctx)) },
        FlowRunner { name: "fulfilment", entity_flows: &["fulfilment"], run: |ctx| Box::pin(orders::run_fulfilment(ctx)) },
    ]
}

/// Where this run's platforms and state come from.
struct Target {
    settings: Settings,
    config: RelayConfig,
    sandbox: Option<Sandbox>,
}

async fn target(args: &RunArgs) -> Result<Target, String> {
    let mut config = args.config.load()?;
    let env = Settings::from_env();
    if !args.sandbox && !configured_platforms(&env).is_empty() {
        return Ok(Target { settings: env, config, sandbox: None });
    }
    let mut sandbox_config = SandboxConfig {
        dataset: DatasetConfig { seed: args.seed, orders: args.sandbox_orders, skus: args.sandbox_skus, ..DatasetConfig::default() },
        ..SandboxConfig::default()
    };
    // A demo should not wait like production: Connect jobs finish after a second and relay polls
    // them often (a configuration file's own `[stock.job_wait]` still wins over this).
    sandbox_config.norce.job_delay_secs = 1.0;
    if args.config.config.is_none() {
        config.stock.job_wait.initial_interval_ms = 200;
        config.stock.job_wait.max_interval_ms = 1000;
    }
    let sandbox = Sandbox::start(sandbox_config).await.map_err(|e| format!("cannot start the embedded sandbox on 127.0.0.1: {e}"))?;
    config.state.dir = super::fresh_sandbox_data_dir("run");
    let settings = crate::embedded::settings_for(&sandbox.credentials());
    Ok(Target { settings, config, sandbox: Some(sandbox) })
}

/// Runs the command.
pub async fn execute(args: RunArgs) -> ExitCode {
    match run(&args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("relay run: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: &RunArgs) -> Result<ExitCode, String> {
    let all = runners();
    if let Some(unknown) = args.flows.iter().find(|f| !all.iter().any(|r| r.name == f.as_str())) {
        let known: Vec<_> = all.iter().map(|r| r.name).collect();
        return Err(format!("`--flow {unknown}`: no such flow; choose from {}", known.join(", ")));
    }
    let runners: Vec<FlowRunner> = all.into_iter().filter(|r| args.flows.is_empty() || args.flows.iter().any(|f| f == r.name)).collect();
    if runners.is_empty() {
        return Err("no flows are available in this build".to_owned());
    }
    let Target { settings, config, sandbox } = target(args).await?;
    if let Some(sandbox) = &sandbox {
        eprintln!(
            "{}: running every flow against the embedded sandbox at {} ({} orders, {} SKUs, seed {}).",
            crate::embedded::sandbox_reason(args.sandbox),
            sandbox.base_url(),
            args.sandbox_orders,
            args.sandbox_skus,
            args.seed
        );
    }
    let data_dir = config.state.dir.clone();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in(&data_dir).map_err(|e| e.to_string())?);
    let context = FlowContext::from_settings(&settings, store.clone(), Arc::new(config)).map_err(|e| format!("platform settings: {e}"))?;

    let bars = MultiProgress::new();
    if args.json {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let style = ProgressStyle::with_template("{spinner} {prefix:<10} {msg} [{elapsed}]").unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for runner in &runners {
        let bar = bars.add(ProgressBar::new_spinner().with_style(style.clone()).with_prefix(runner.name));
        bar.enable_steady_tick(Duration::from_millis(120));
        let started = Instant::now();
        let pass = (runner.run)(&context);
        let result = with_progress(pass, &bar, store.as_ref(), runner.entity_flows).await;
        match result {
            Ok(mut report) => {
                report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                bar.finish_with_message(format!("{} done, {} failed", report.done, report.failed));
                reports.push(report);
            }
            Err(e) => {
                bar.abandon_with_message(format!("stopped: {e}"));
                errors.push(format!("{}: {e}", runner.name));
                reports.push(FlowReport { flow: runner.name.to_owned(), ..FlowReport::default() });
            }
        }
    }
    drop(bars);
    let dead_letters = store.dead_letters().map_err(|e| e.to_string())?.len();
    if args.json {
        let summary = serde_json::json!({"flows": reports, "errors": errors, "dead_letters": dead_letters, "data_dir": data_dir});
        println!("{}", serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?);
    } else {
        print!("{}", summary_table(&reports));
        println!("state: {} (dead letters: {dead_letters}; see `relay status`)", data_dir.display());
        for error in &errors {
            println!("flow stopped: {error}");
        }
    }
    let failed = !errors.is_empty() || reports.iter().any(|r| r.failed > 0);
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Drives the pass while a spinner shows the flow's entities by status, read from the store.
async fn with_progress(pass: FlowFuture<'_>, bar: &ProgressBar, store: &dyn Store, entity_flows: &[&str]) -> Result<FlowReport, FlowError> {
    let mut pass = pass;
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            result = &mut pass => return result,
            _ = ticker.tick() => {
                if let Ok(counts) = store.counts() {
                    let mut done = 0;
                    let mut pending = 0;
                    let mut failed = 0;
                    for (_, status, count) in counts.iter().filter(|(flow, _, _)| entity_flows.contains(&flow.as_str())) {
                        match status {
                            Status::Done | Status::Skipped => done += count,
                            Status::Pending => pending += count,
                            Status::Failed => failed += count,
                        }
                    }
                    bar.set_message(format!("{done} done, {pending} pending, {failed} failed"));
                }
            }
        }
    }
}

/// The summary: one row per flow, and the totals.
pub fn summary_table(reports: &[FlowReport]) -> String {
    let row = |r: &FlowReport| {
        vec![
            r.flow.clone(),
            r.seen.to_string(),
            r.booked.to_string(),
            r.written_back.to_string(),
            r.skipped.to_string(),
            r.failed.to_string(),
            format!("{:.1} s", r.duration_ms as f64 / 1000.0),
        ]
    };
    let mut rows: Vec<Vec<String>> = reports.iter().map(row).collect();
    let total = FlowReport::merged("total", reports);
    rows.push(row(&total));
    crate::table::render(&["flow", "items", "booked", "written back", "skipped", "failed", "time"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_a_row_per_flow_and_totals() {
        let reports = [
            FlowReport { flow: "shipping".into(), seen: 20, booked: 18, written_back: 18, skipped: 1, failed: 1, done: 18, duration_ms: 1500 },
            FlowReport { flow: "stock".into(), seen: 50, booked: 50, duration_ms: 500, ..FlowReport::default() },
        ];
        let table = summary_table(&reports);
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[2].starts_with("shipping") && lines[2].ends_with("1.5 s"), "{table}");
        assert!(lines[4].starts_with("total") && lines[4].contains("70") && lines[4].ends_with("2.0 s"), "{table}");
    }
}
