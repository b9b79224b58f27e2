//! `relay run`: the main job. Runs every flow once, to completion, and prints a summary.
//!
//! With no configured platform (or `--sandbox`) it starts the embedded sandbox with a seeded
//! dataset and a fresh data folder, so `cargo run -p relay -- run` works on a fresh machine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use client_core::Settings;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use sandbox::brightpearl::WarehouseShips;
use sandbox::{DatasetConfig, Sandbox, SandboxConfig};

use crate::config::RelayConfig;
use crate::flows::{Flow, FlowContext, FlowError, FlowFuture, FlowReport};
use crate::platform::configured_platforms;
use crate::state::{Status, Store};

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
    /// The embedded sandbox's Brightpearl warehouse ships every n-th sales order as it is
    /// created (one of them in part), so fulfilment has work in the same run; 0: none.
    #[arg(long, default_value_t = 2)]
    sandbox_ship_every: usize,
    /// Against the embedded sandbox, skip the second act (the shop cancels an order, the
    /// operator asks for a return and a refund, and the orders and shipping passes run again).
    #[arg(long)]
    sandbox_no_lifecycle: bool,
    /// Print the summary as JSON on stdout (no progress bars).
    #[arg(long)]
    json: bool,
    /// Run only these flows (comma-separated names from the summary table).
    #[arg(long = "flow", value_delimiter = ',')]
    flows: Vec<String>,
}

/// The embedded sandbox of `relay run`: the seeded dataset, Connect jobs that finish after a
/// second, and a Brightpearl warehouse that ships every `ship_every`-th sales order as it is
/// created (one of them in part; 0: none), so the fulfilment pass of the same run has shipped
/// goods-out notes to write back.
pub fn embedded_sandbox_config(
    seed: u64,
    orders: usize,
    skus: usize,
    ship_every: usize,
) -> SandboxConfig {
    let mut config = SandboxConfig {
        dataset: DatasetConfig {
            seed,
            orders,
            skus,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    };
    config.norce.job_delay_secs = 1.0;
    if ship_every > 0 {
        config.brightpearl.warehouse_ships = Some(WarehouseShips {
            every: ship_every,
            ..WarehouseShips::default()
        });
    }
    config
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
        return Ok(Target {
            settings: env,
            config,
            sandbox: None,
        });
    }
    let sandbox_config = embedded_sandbox_config(
        args.seed,
        args.sandbox_orders,
        args.sandbox_skus,
        args.sandbox_ship_every,
    );
    // A demo should not wait like production: relay polls the Connect jobs often (a
    // configuration file's own `[stock.job_wait]` still wins over this).
    if args.config.config.is_none() {
        config.stock.job_wait.initial_interval_ms = 200;
        config.stock.job_wait.max_interval_ms = 1000;
        crate::embedded::configure_lifecycle(&mut config);
    }
    let sandbox = Sandbox::start(sandbox_config)
        .await
        .map_err(|e| format!("cannot start the embedded sandbox on 127.0.0.1: {e}"))?;
    config.state.dir = super::fresh_sandbox_data_dir("run");
    config.shipping.labels_dir = None;
    let settings = crate::embedded::settings_for(&sandbox.credentials());
    Ok(Target {
        settings,
        config,
        sandbox: Some(sandbox),
    })
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
    // The flows as registered once (also what `relay serve` schedules), in their order.
    let all = crate::flows::registry();
    if let Some(unknown) = args
        .flows
        .iter()
        .find(|f| !all.iter().any(|r| r.name() == f.as_str()))
    {
        let known: Vec<_> = all.iter().map(|r| r.name()).collect();
        return Err(format!(
            "`--flow {unknown}`: no such flow; choose from {}",
            known.join(", ")
        ));
    }
    let runners: Vec<Arc<dyn Flow>> = all
        .into_iter()
        .filter(|r| args.flows.is_empty() || args.flows.iter().any(|f| f == r.name()))
        .collect();
    if runners.is_empty() {
        return Err("no flows are available in this build".to_owned());
    }
    let Target {
        settings,
        config,
        sandbox,
    } = target(args).await?;
    if let Some(sandbox) = &sandbox {
        let warehouse = match args.sandbox_ship_every {
            0 => String::new(),
            1 => "; its Brightpearl warehouse ships every sales order, one in part".to_owned(),
            n => format!(
                "; its Brightpearl warehouse ships every {} sales order, one in part",
                ordinal(n)
            ),
        };
        eprintln!(
            "{}: running every flow against the embedded sandbox at {} ({} orders, {} SKUs, seed {}{warehouse}).",
            crate::embedded::sandbox_reason(args.sandbox),
            sandbox.base_url(),
            args.sandbox_orders,
            args.sandbox_skus,
            args.seed
        );
    }
    let data_dir = config.state.dir.clone();
    let labels_dir = config
        .shipping
        .labels_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("labels"));
    let legend = legend(&config);
    let (store, _) = super::open_store(&config.state)?;
    let context = FlowContext::from_settings(&settings, store.clone(), Arc::new(config))
        .map_err(|e| format!("platform settings: {e}"))?;

    let bars = MultiProgress::new();
    if args.json {
        bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let passes = run_passes(&runners, &context, &bars).await;
    // The second act on the embedded sandbox: a cancelled, a returned and a refunded order.
    let mut lifecycle = Vec::new();
    let mut second = None;
    if let Some(sandbox) = sandbox
        .as_ref()
        .filter(|_| !args.sandbox_no_lifecycle && args.flows.is_empty())
    {
        lifecycle =
            super::lifecycle::act(&sandbox.base_url(), store.as_ref(), &context.config).await?;
        let again: Vec<Arc<dyn Flow>> = runners
            .iter()
            .filter(|r| matches!(r.name(), "orders" | "shipping"))
            .cloned()
            .collect();
        second = Some(run_passes(&again, &context, &bars).await);
        for act in &mut lifecycle {
            act.settle(store.as_ref())?;
        }
    }
    let Passes {
        reports,
        errors,
        stopped,
    } = passes;
    let second = second.unwrap_or_default();
    drop(bars);
    // What each flow drew from the Brightpearl budget, for `relay status`.
    if let Some(client) = &context.brightpearl {
        let recorded = crate::budget::Recorder::default().flush(
            client.rate_limiter().0,
            store.as_ref(),
            chrono::Utc::now(),
        );
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "cannot record the Brightpearl budget in the state");
        }
    }
    let dead_letters = store.dead_letters().map_err(|e| e.to_string())?.len();
    if args.json {
        let summary = serde_json::json!({
            "flows": reports,
            "errors": errors,
            "lifecycle": {"acts": lifecycle, "flows": second.reports, "errors": second.errors},
            "dead_letters": dead_letters,
            "data_dir": data_dir,
            "labels_dir": labels_dir,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", summary_table(&reports, &stopped));
        println!();
        for (flow, words) in legend
            .iter()
            .filter(|(flow, _)| *flow == "items" || reports.iter().any(|r| r.flow == *flow))
        {
            println!("{flow:<11} {words}");
        }
        for error in &errors {
            println!("flow stopped: {}", crate::text::escape(&error.to_string()));
        }
        if !lifecycle.is_empty() {
            println!();
            println!(
                "Then the embedded shop cancelled an order, and the operator asked for a return label and a refund\n(as `relay return` and `relay refund` do); the orders and shipping passes ran again:"
            );
            print!("{}", super::lifecycle::table(&lifecycle));
            for error in &second.errors {
                println!("flow stopped: {}", crate::text::escape(&error.to_string()));
            }
        }
        println!();
        let next = NextSteps {
            data_dir: &data_dir,
            labels_dir: &labels_dir,
            labels_saved: reports
                .iter()
                .chain(&second.reports)
                .map(|r| r.labels)
                .sum(),
            dead_letters,
            config_file: status_config(args, sandbox.is_some(), &data_dir),
            sandbox: sandbox.is_some(),
            command: command_prefix(),
        };
        print!("{}", next.render());
    }
    let failed = !errors.is_empty()
        || reports.iter().any(|r| r.failed > 0)
        || second.failed()
        || lifecycle.iter().any(super::lifecycle::Act::failed);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What a round of passes did: a report per flow, and the flows that stopped with why.
#[derive(Default)]
struct Passes {
    reports: Vec<FlowReport>,
    errors: Vec<String>,
    stopped: Vec<String>,
}

impl Passes {
    fn failed(&self) -> bool {
        !self.errors.is_empty() || self.reports.iter().any(|r| r.failed > 0)
    }
}

/// Runs each of `runners` once, in order, each with a spinner under `bars`.
async fn run_passes(
    runners: &[Arc<dyn Flow>],
    context: &FlowContext,
    bars: &MultiProgress,
) -> Passes {
    let style = ProgressStyle::with_template("{spinner} {prefix:<10} {msg} [{elapsed}]")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let store = context.store.as_ref();
    let mut passes = Passes::default();
    for runner in runners {
        let bar = bars.add(
            ProgressBar::new_spinner()
                .with_style(style.clone())
                .with_prefix(runner.name()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        let started = Instant::now();
        let ctx = context.for_flow(runner.name());
        let pass = crate::flows::contract::run_pass(runner.as_ref(), &ctx);
        let result = with_progress(pass, &bar, store, runner.entity_flows()).await;
        match result {
            Ok(mut report) => {
                report.duration_ms =
                    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                bar.finish_with_message(format!("{} done, {} failed", report.done, report.failed));
                passes.reports.push(report);
            }
            Err(e) => {
                bar.abandon_with_message(format!("stopped: {e}"));
                passes.errors.push(format!("{}: {e}", runner.name()));
                passes.stopped.push(runner.name().to_owned());
                passes.reports.push(FlowReport {
                    flow: runner.name().to_owned(),
                    ..FlowReport::default()
                });
            }
        }
    }
    passes
}

/// Drives the pass while a spinner shows the flow's entities by status, read from the store.
async fn with_progress(
    pass: FlowFuture<'_>,
    bar: &ProgressBar,
    store: &dyn Store,
    entity_flows: &[&str],
) -> Result<FlowReport, FlowError> {
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
                            Status::Done | Status::Skipped | Status::Resolved => done += count,
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

/// "2nd", "3rd", "11th", … for the sandbox line.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// `count` and the noun, singular or plural.
fn counted(count: u64, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// What a flow did, in its own words (the `work done` column).
pub fn flow_words(report: &FlowReport) -> String {
    let r = report;
    match r.flow.as_str() {
        "orders" => format!("{} imported, {} confirmed back", r.booked, r.written_back),
        "shipping" => format!(
            "{} booked, {}, {}",
            r.booked,
            counted(r.labels, "label", "labels"),
            counted(r.notes, "note", "notes")
        ),
        "stock" => format!(
            "{}, {}, {}",
            counted(r.onhand_rows, "on-hand row", "on-hand rows"),
            counted(r.price_rows, "price row", "price rows"),
            counted(r.import_jobs, "import job", "import jobs")
        ),
        "fulfilment" => format!(
            "{} written, {} delivered, {} partly delivered",
            counted(r.notes, "note", "notes"),
            r.delivered,
            r.partly_delivered
        ),
        _ => format!("{} booked, {} written back", r.booked, r.written_back),
    }
}

/// One line per flow saying what its words mean, for under the table.
fn legend(config: &crate::config::RelayConfig) -> Vec<(&'static str, String)> {
    let orders = &config.orders;
    vec![
        ("orders", "Norce orders imported into Brightpearl as sales orders, confirmed back to Norce with the ERP order number".to_owned()),
        ("shipping", "nShift shipments booked, label files saved, Norce delivery notes with the parcel numbers".to_owned()),
        ("stock", "Brightpearl stock (a row per SKU and location) and prices (a row per SKU and price list) into Norce".to_owned()),
        (
            "fulfilment",
            format!("shipped Brightpearl goods-out notes as Norce delivery notes with tracking; orders {} / {}", orders.delivered_status, orders.partly_delivered_status),
        ),
        ("items", "looked at: Norce orders (orders, shipping), products once for stock and once for prices, goods-out notes".to_owned()),
    ]
}

/// The summary: one row per flow, and the totals. Each flow says what it did in its own words
/// (see [`flow_words`]); `stopped` names the flows that could not run.
pub fn summary_table(reports: &[FlowReport], stopped: &[String]) -> String {
    let row = |r: &FlowReport, words: String| {
        vec![
            r.flow.clone(),
            r.seen.to_string(),
            words,
            r.skipped.to_string(),
            r.failed.to_string(),
            format!("{:.1} s", r.duration_ms as f64 / 1000.0),
        ]
    };
    let mut rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let words = if stopped.contains(&r.flow) {
                "stopped (see below)".to_owned()
            } else if r.seen == 0 && r.failed == 0 {
                "nothing to do".to_owned()
            } else {
                flow_words(r)
            };
            row(r, words)
        })
        .collect();
    let total = FlowReport::merged("total", reports);
    rows.push(row(&total, String::new()));
    crate::table::render(
        &["flow", "items", "work done", "skipped", "failed", "time"],
        &rows,
    )
}

/// Where to look after a run, printed under the summary.
struct NextSteps<'a> {
    data_dir: &'a Path,
    labels_dir: &'a Path,
    labels_saved: u64,
    dead_letters: usize,
    /// The configuration file `relay status` needs to find this state, if any.
    config_file: Option<PathBuf>,
    sandbox: bool,
    /// How to start a subcommand and the main job ([`command_prefix`]).
    command: (&'static str, &'static str),
}

impl NextSteps<'_> {
    fn render(&self) -> String {
        let (relay, run) = self.command;
        let config = self
            .config_file
            .as_ref()
            .map(|c| format!(" --config {}", c.display()))
            .unwrap_or_default();
        let mut lines = vec![
            (
                "state",
                format!(
                    "{} (SQLite; dead letters: {})",
                    self.data_dir.display(),
                    self.dead_letters
                ),
            ),
            (
                "labels",
                format!(
                    "{} ({} saved this run)",
                    self.labels_dir.display(),
                    self.labels_saved
                ),
            ),
            ("status", format!("{relay} status{config}")),
        ];
        if self.sandbox {
            lines.push(("real accounts", "set NORCE_*, NSHIFT_* and BRIGHTPEARL_* (crates/*-client/README.md, relay.example.toml),".to_owned()));
            lines.push((
                "",
                format!("check them with `{relay} verify`, then `{run}` again"),
            ));
        }
        let mut out = String::from("Where to look next:\n");
        for (what, text) in lines {
            out.push_str(&format!("  {what:<14} {text}\n"));
        }
        out
    }
}

/// How the operator started relay: through `cargo run` (cargo sets `CARGO` and the package's
/// variables for the program it runs) or as the binary.
/// Returns the prefix of a subcommand and the command of the main job.
fn command_prefix() -> (&'static str, &'static str) {
    if std::env::var_os("CARGO").is_some()
        && std::env::var("CARGO_PKG_NAME").is_ok_and(|name| name == "relay")
    {
        ("cargo run -p relay --", "cargo run -p relay")
    } else {
        ("relay", "relay run")
    }
}

/// The configuration file `relay status` should read to find this run's state: the one given,
/// or for a sandbox run (whose data folder is fresh, in the temp directory) a `relay.toml`
/// written into that folder naming it. `None`: the defaults find it.
fn status_config(args: &RunArgs, sandbox: bool, data_dir: &Path) -> Option<PathBuf> {
    if !sandbox {
        return args.config.config.clone();
    }
    let path = data_dir.join("relay.toml");
    // A JSON string is a valid TOML basic string (same escapes).
    let dir = serde_json::to_string(&data_dir.display().to_string())
        .map_err(|e| tracing::warn!(error = %e, "data folder name"))
        .ok()?;
    let text = format!(
        "# Written by `relay run` against the embedded sandbox, for `relay status --config` this file.\n[state]\ndir = {dir}\n"
    );
    match std::fs::write(&path, text) {
        Ok(()) => Some(path),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the status configuration");
            args.config.config.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_a_row_per_flow_in_its_words_and_totals() {
        let reports = [
            FlowReport {
                flow: "shipping".into(),
                seen: 20,
                booked: 18,
                written_back: 18,
                skipped: 1,
                failed: 1,
                done: 18,
                duration_ms: 1500,
                labels: 18,
                notes: 18,
                ..FlowReport::default()
            },
            FlowReport {
                flow: "stock".into(),
                seen: 50,
                booked: 50,
                duration_ms: 500,
                onhand_rows: 25,
                price_rows: 25,
                import_jobs: 1,
                ..FlowReport::default()
            },
            FlowReport {
                flow: "fulfilment".into(),
                seen: 3,
                booked: 3,
                notes: 3,
                delivered: 2,
                partly_delivered: 1,
                ..FlowReport::default()
            },
            FlowReport {
                flow: "orders".into(),
                ..FlowReport::default()
            },
        ];
        let table = summary_table(&reports, &[]);
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines.len(), 7, "{table}");
        assert!(
            lines[2].starts_with("shipping")
                && lines[2].contains("18 booked, 18 labels, 18 notes")
                && lines[2].ends_with("1.5 s"),
            "{table}"
        );
        assert!(
            lines[3].contains("25 on-hand rows, 25 price rows, 1 import job "),
            "{table}"
        );
        assert!(
            lines[4].contains("3 notes written, 2 delivered, 1 partly delivered"),
            "{table}"
        );
        assert!(
            lines[5].starts_with("orders") && lines[5].contains("nothing to do"),
            "{table}"
        );
        assert!(
            lines[6].starts_with("total") && lines[6].contains("73") && lines[6].ends_with("2.0 s"),
            "{table}"
        );
        let stopped = summary_table(&reports[3..], &["orders".to_owned()]);
        assert!(stopped.contains("stopped (see below)"), "{stopped}");
    }

    #[test]
    fn ordinals() {
        assert_eq!(
            [1, 2, 3, 4, 11, 12, 13, 21, 22, 102].map(ordinal),
            [
                "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "102nd"
            ]
        );
    }
}
