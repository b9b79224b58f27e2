//! `relay status`, `relay replay`, `relay cursor`: the operator's view of the state in the data
//! folder (`[state] dir`, default `relay-data`). None of them calls a platform.

use std::process::ExitCode;

use serde::Serialize;

use crate::state::{DeadLetter, Lease, StateSize, Status, Store};

pub use crate::operator::CURSOR_FLOWS;

/// Arguments of `relay status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// Arguments of `relay replay`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["ids", "all_failed"])))]
pub struct ReplayArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
    /// Dead-letter ids (from `relay status`) to put back.
    ids: Vec<i64>,
    /// Put back every dead letter.
    #[arg(long)]
    all_failed: bool,
}

/// Arguments of `relay cursor`.
#[derive(Debug, clap::Args)]
pub struct CursorArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
    #[command(subcommand)]
    command: CursorCommand,
}

/// `relay cursor show` / `relay cursor set`.
#[derive(Debug, clap::Subcommand)]
enum CursorCommand {
    /// Print every flow's cursor.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move a flow's cursor (an RFC 3339 time; moving it back backfills on the next run).
    /// A time before the flow's go-live cutoff (`orders.since`, `shipping.since`) is refused
    /// unless `--force`.
    Set {
        /// The flow (shipping, stock, prices, orders, fulfilment), or shipping-alerts.
        flow: String,
        /// RFC 3339 time, e.g. 2026-01-01T00:00:00Z; for shipping-alerts an nShift fetchId
        /// (-1: the feed's start).
        #[arg(allow_negative_numbers = true)]
        time: String,
        /// Set a time before the go-live cutoff anyway (orders placed before it are still
        /// never imported or booked).
        #[arg(long)]
        force: bool,
    },
}

/// The state the configuration names (PostgreSQL or the SQLite file) and where it is.
fn open(config: &super::ConfigArgs) -> Result<(std::sync::Arc<dyn Store>, String), String> {
    open_loaded(&config.load()?)
}

/// [`open`] for a configuration already loaded.
fn open_loaded(
    config: &crate::config::RelayConfig,
) -> Result<(std::sync::Arc<dyn Store>, String), String> {
    super::open_store(&config.state)
        .map_err(|e| format!("state in `{}`: {e}", config.state.dir.display()))
}

fn finish(command: &str, result: Result<ExitCode, String>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("relay {command}: {message}");
            ExitCode::from(2)
        }
    }
}

#[derive(Serialize)]
struct StatusReport {
    data_dir: String,
    entities: Vec<EntityCount>,
    inbox_pending: u64,
    dead_letters: Vec<DeadLetter>,
    /// The file on disk and the rows it holds (what retention keeps bounded).
    size: StateSize,
    /// What each flow drew from the Brightpearl budget in the last minutes.
    brightpearl_budget: BudgetReport,
    /// Who works on what now: items, polls and passes leased by the workers sharing the state.
    leases: Vec<Lease>,
}

#[derive(Serialize)]
struct BudgetReport {
    minutes: i64,
    flows: Vec<crate::budget::FlowBudget>,
}

#[derive(Serialize)]
struct EntityCount {
    flow: String,
    pending: u64,
    done: u64,
    failed: u64,
    skipped: u64,
    resolved: u64,
}

/// Entity counts per flow and status, from the store.
fn entity_counts(store: &dyn Store) -> Result<Vec<EntityCount>, String> {
    let mut rows: Vec<EntityCount> = Vec::new();
    for (flow, status, n) in store.counts().map_err(|e| e.to_string())? {
        let index = match rows.iter().position(|r| r.flow == flow) {
            Some(i) => i,
            None => {
                rows.push(EntityCount {
                    flow,
                    pending: 0,
                    done: 0,
                    failed: 0,
                    skipped: 0,
                    resolved: 0,
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[index];
        match status {
            Status::Pending => row.pending += n,
            Status::Done => row.done += n,
            Status::Failed => row.failed += n,
            Status::Skipped => row.skipped += n,
            Status::Resolved => row.resolved += n,
        }
    }
    Ok(rows)
}

/// A byte count for people: `512 B`, `3.4 KiB`, `577.0 MiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Shortens an error for the table (the JSON output keeps it whole).
fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > max || text.contains('\n') {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

/// Runs `relay status`.
pub async fn execute_status(args: StatusArgs) -> ExitCode {
    finish("status", status(&args))
}

fn status(args: &StatusArgs) -> Result<ExitCode, String> {
    let (store, location) = open(&args.config)?;
    let store = store.as_ref();
    let report = StatusReport {
        data_dir: location,
        entities: entity_counts(store)?,
        inbox_pending: store.inbox_len().map_err(|e| e.to_string())?,
        dead_letters: store.dead_letters().map_err(|e| e.to_string())?,
        size: store.size().map_err(|e| e.to_string())?,
        leases: store.leases("").map_err(|e| e.to_string())?,
        brightpearl_budget: BudgetReport {
            minutes: crate::budget::STATUS_MINUTES,
            flows: crate::budget::recent(store, chrono::Utc::now(), crate::budget::STATUS_MINUTES)
                .map_err(|e| e.to_string())?,
        },
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("state: {}", report.data_dir);
    let size = &report.size;
    println!(
        "state size: {} on disk (state.sqlite {} + WAL {}; {} free inside, reused or reclaimed by pruning)",
        human_bytes(size.file_bytes + size.wal_bytes),
        human_bytes(size.file_bytes),
        human_bytes(size.wal_bytes),
        human_bytes(size.free_bytes)
    );
    println!(
        "state rows: inbox {} ({} pending), entities {} ({} with a payload), dead letters {}",
        size.inbox_rows, size.inbox_pending, size.entities, size.entity_payloads, size.dead_letters
    );
    if !report.leases.is_empty() {
        // Per worker: how many leases it holds now, and one of them as an example.
        let mut workers: std::collections::BTreeMap<&str, (usize, &str)> = Default::default();
        for lease in &report.leases {
            workers.entry(&lease.holder).or_insert((0, &lease.name)).0 += 1;
        }
        for (worker, (count, example)) in workers {
            println!("worker {worker}: {count} lease(s), e.g. {example}");
        }
    }
    println!();
    if report.entities.is_empty() {
        println!("no entities yet (run `relay run` or `relay serve`)");
    } else {
        let rows: Vec<Vec<String>> = report
            .entities
            .iter()
            .map(|r| {
                vec![
                    r.flow.clone(),
                    r.pending.to_string(),
                    r.done.to_string(),
                    r.failed.to_string(),
                    r.skipped.to_string(),
                    r.resolved.to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            crate::table::render(
                &["flow", "pending", "done", "failed", "skipped", "resolved"],
                &rows
            )
        );
    }
    println!();
    print_budget(&report.brightpearl_budget);
    println!();
    println!("inbox: {} pending", report.inbox_pending);
    println!();
    if report.dead_letters.is_empty() {
        println!("dead letters: none");
    } else {
        println!("dead letters: {}", report.dead_letters.len());
        let rows: Vec<Vec<String>> = report
            .dead_letters
            .iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.flow.clone(),
                    d.source_id.clone(),
                    d.created_at.clone(),
                    one_line(&d.error, 100),
                ]
            })
            .collect();
        print!(
            "{}",
            crate::table::render(&["id", "flow", "source id", "since", "error"], &rows)
        );
        println!();
        println!(
            "replay with `relay replay <id>` or `relay replay --all-failed`, then `relay run`"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The Brightpearl budget's split: requests and limiter wait per flow in the last minutes.
fn print_budget(budget: &BudgetReport) {
    let minutes = budget.minutes;
    if budget.flows.is_empty() {
        println!("Brightpearl budget (last {minutes} minutes): no requests");
        return;
    }
    let total: u64 = budget.flows.iter().map(|f| f.requests).sum();
    println!(
        "Brightpearl budget (last {minutes} minutes, 200 requests a minute per account): {total} requests"
    );
    let rows: Vec<Vec<String>> = budget
        .flows
        .iter()
        .map(|f| {
            vec![
                crate::text::escape(&f.flow).to_string(),
                f.priority.clone(),
                f.requests.to_string(),
                format!("{:.1}", f.requests_per_minute),
                format!("{:.1}", f.waited_secs),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::table::render(
            &[
                "flow",
                "priority",
                "requests",
                "per minute",
                "limiter wait (s)"
            ],
            &rows
        )
    );
}

/// Runs `relay replay`.
pub async fn execute_replay(args: ReplayArgs) -> ExitCode {
    finish("replay", replay(&args))
}

fn replay(args: &ReplayArgs) -> Result<ExitCode, String> {
    let (store, _) = open(&args.config)?;
    let letters = store.dead_letters().map_err(|e| e.to_string())?;
    let ids: Vec<i64> = if args.all_failed {
        letters.iter().map(|d| d.id).collect()
    } else {
        args.ids.clone()
    };
    let outcome = crate::operator::requeue(store.as_ref(), &ids, crate::operator::CLI_ACTOR)
        .map_err(|e| e.to_string())?;
    for (id, record) in &outcome.requeued {
        println!(
            "requeued dead letter {id}: {} {} is pending again",
            crate::text::escape(&record.flow),
            crate::text::escape(&record.source_id)
        );
    }
    let (requeued, missing) = (outcome.requeued.len(), outcome.missing);
    if requeued == 0 && missing.is_empty() {
        println!("no dead letters to replay");
        return Ok(ExitCode::SUCCESS);
    }
    if requeued > 0 {
        println!(
            "{requeued} item(s) requeued; run `relay run` (or let `relay serve` pick them up) to process them"
        );
    }
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(i64::to_string).collect();
        eprintln!(
            "relay replay: no dead letter with id {} (see `relay status`)",
            list.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `relay cursor`.
pub async fn execute_cursor(args: CursorArgs) -> ExitCode {
    finish("cursor", cursor(&args))
}

fn cursor(args: &CursorArgs) -> Result<ExitCode, String> {
    match &args.command {
        CursorCommand::Set { flow, time, force } => {
            let config = args.config.load()?;
            let floor = crate::operator::CursorFloor::of(&config, flow);
            // Checked before the store is opened: a typo (or a time before the go-live
            // cutoff) never touches the state.
            crate::operator::cursor_value(flow, time, floor.as_ref(), *force)
                .map_err(|e| e.to_string())?;
            let (store, _) = open_loaded(&config)?;
            let change = crate::operator::set_cursor(
                store.as_ref(),
                flow,
                time,
                crate::operator::CLI_ACTOR,
                floor.as_ref(),
                *force,
            )
            .map_err(|e| e.to_string())?;
            let before_floor = |f: &crate::operator::CursorFloor| {
                chrono::DateTime::parse_from_rfc3339(&change.after).is_ok_and(|a| a < f.since)
            };
            if let Some(floor) = floor.filter(before_floor) {
                // Forced: say what the cursor does not change.
                println!(
                    "note: `{}` is {}: orders placed before it are still never {}",
                    floor.setting,
                    floor.since_text(),
                    floor.never
                );
            }
            println!(
                "cursor of `{flow}`: {} -> {}",
                change.before.as_deref().unwrap_or("(unset)"),
                change.after
            );
            Ok(ExitCode::SUCCESS)
        }
        CursorCommand::Show { json } => {
            let (store, _) = open(&args.config)?;
            let mut rows = Vec::new();
            for flow in CURSOR_FLOWS {
                rows.push((
                    flow.to_string(),
                    store.cursor(flow).map_err(|e| e.to_string())?,
                ));
            }
            if *json {
                let map: serde_json::Map<String, serde_json::Value> = rows
                    .into_iter()
                    .map(|(flow, value)| {
                        (
                            flow,
                            value.map_or(serde_json::Value::Null, serde_json::Value::String),
                        )
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&map).map_err(|e| e.to_string())?
                );
            } else {
                let rows: Vec<Vec<String>> = rows
                    .into_iter()
                    .map(|(flow, value)| vec![flow, value.unwrap_or_else(|| "(unset)".to_owned())])
                    .collect();
                print!("{}", crate::table::render(&["flow", "cursor"], &rows));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
