//! The exactly-once scenario: the shipping flow against a faulty sandbox while the relay process
//! is killed with SIGKILL and restarted; with [`ExactlyOnce::lifecycle`], the orders flow beside
//! it and then cancellations, returns and refunds, killed as often, every kind of write counted
//! on the platforms. Used by `tests/exactly_once.rs` (100 orders, one kill a phase, in CI) and
//! `benches/exactly_once.rs` (1,000 orders, five kills a phase, with timings).
//!
//! The sandbox runs in this process, so it outlives every relay process; relay runs as the real
//! binary (`relay run --flow shipping`) with its state in a data folder, so a kill can land
//! anywhere, including between a platform's commit and relay's record of it.
//!
//! [`run_graceful_stops`] is the same check for `relay serve` stopped by signals: SIGTERM (a
//! stop bounded by `serve.shutdown_grace_secs`, cancelling the pass still running at its end) or
//! SIGTERM then SIGINT (a stop at once), each timed, then restarted until every order shipped.

pub mod budget;
pub mod scale_out;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sandbox::{DatasetConfig, FaultRule, Sandbox, SandboxConfig};
use serde::Serialize;

use crate::state::{SqliteStore, Status, Store};

/// What to run.
#[derive(Debug, Clone)]
pub struct ExactlyOnce {
    /// The `relay` binary.
    pub relay_bin: PathBuf,
    /// Orders in the sandbox dataset.
    pub orders: usize,
    /// SIGKILLs, spread evenly over the run.
    pub kills: usize,
    /// Dataset seed (also seeds the fault RNG).
    pub seed: u64,
    /// 10 % server errors, 5 % commit-then-fail on bookings, 2 % 429s, a revoked Norce token
    /// mid-run.
    pub faults: bool,
    /// Give up after this many relay processes.
    pub max_runs: usize,
    /// The order lifecycle too: relay runs the orders flow beside shipping (sales orders in
    /// Brightpearl), then the shop cancels every tenth shipped order, the operator asks for a
    /// return label for another tenth (`relay return`) and refunds every fifth imported order
    /// with restock (`relay refund`), and relay processes run again, killed as often, until
    /// every cancellation, return and refund is done. [`LIFECYCLE_FAULTS`] add
    /// commit-then-fail on the Brightpearl writes.
    pub lifecycle: bool,
}

/// The Brightpearl writes that lose their answer after committing (5 %) in the lifecycle
/// scenario, besides the nShift bookings: sales orders (single and batched), sales credits and
/// goods-in notes. The lifecycle scenario's server errors are 500 and 502: a 503 from
/// Brightpearl means its request cap is reached, and relay waits a minute for the window.
pub const LIFECYCLE_FAULTS: [&str; 4] = [
    "order-service/sales-order",
    "multi-message",
    "order-service/sales-credit",
    "warehouse-service/order/",
];

/// One kind of write the platforms hold, counted per thing that should have it once.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WriteTally {
    /// What was written, e.g. `sales credit (Brightpearl)`.
    pub kind: String,
    /// How many should exist, one each.
    pub expected: usize,
    /// How many exist exactly once.
    pub exactly_once: usize,
    /// Written more than once (or where nothing should be): `(reference, count)`.
    pub doubled: Vec<(String, usize)>,
    /// Not written.
    pub lost: Vec<String>,
}

impl WriteTally {
    fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            ..Self::default()
        }
    }

    /// Counts one thing that should have been written once: `found` times.
    fn count(&mut self, reference: &str, found: usize) {
        self.expected += 1;
        match found {
            1 => self.exactly_once += 1,
            0 => self.lost.push(reference.to_owned()),
            n => self.doubled.push((reference.to_owned(), n)),
        }
    }

    /// Everything expected is there once and nothing more.
    pub fn passed(&self) -> bool {
        self.doubled.is_empty() && self.lost.is_empty() && self.exactly_once == self.expected
    }
}

/// What happened, and whether every order ended with exactly one shipment and one note.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExactlyOnceReport {
    /// Orders that qualify for shipping at the start.
    pub qualifying: usize,
    /// Qualifying orders with exactly one nShift shipment and one Norce delivery note.
    pub exactly_once: usize,
    /// Orders with more than one shipment or note: `(order number, shipments, notes)`.
    pub doubled: Vec<(String, usize, usize)>,
    /// Qualifying orders with no shipment or no note.
    pub lost: Vec<(String, usize, usize)>,
    /// Shipments booked for orders that did not qualify.
    pub unexpected: usize,
    /// Relay processes started.
    pub runs: usize,
    /// Relay processes killed.
    pub kills: usize,
    /// Faults the sandbox injected, by kind.
    pub faults_injected: Vec<(String, usize)>,
    /// Platform calls the relay processes made (every request the sandbox answered while they
    /// ran, the failed and retried ones included; not the scenario's own counting).
    pub platform_calls: u64,
    /// Wall time.
    pub elapsed_ms: u64,
    /// With [`ExactlyOnce::lifecycle`]: the other writes, each kind counted on the platforms
    /// (sales orders, shipment cancellations, cancelled statuses, return shipments, sales
    /// credits, goods-in notes).
    pub writes: Vec<WriteTally>,
    /// With [`ExactlyOnce::lifecycle`]: orders cancelled, returns and refunds asked for.
    pub lifecycle_items: usize,
    /// Relay processes started and killed after the lifecycle acts (also in `runs`, `kills`).
    pub lifecycle_runs: usize,
    /// See `lifecycle_runs`.
    pub lifecycle_kills: usize,
    /// Wall time of each phase in milliseconds: `shipping` (with the orders flow when the
    /// lifecycle runs), `lifecycle acts` (the shop's cancellations, `relay return`,
    /// `relay refund`), `lifecycle` (the relay processes until every one is done).
    pub phase_ms: Vec<(String, u64)>,
}

impl ExactlyOnceReport {
    /// Every qualifying order exactly once, nothing else booked, every other write once.
    pub fn passed(&self) -> bool {
        self.doubled.is_empty()
            && self.lost.is_empty()
            && self.unexpected == 0
            && self.exactly_once == self.qualifying
            && self.writes.iter().all(WriteTally::passed)
    }
}

fn shipping_done(store: &SqliteStore) -> usize {
    done_in(store, &["shipping"])
}

/// Entities done in `flows`.
fn done_in(store: &SqliteStore, flows: &[&str]) -> usize {
    store
        .counts()
        .map(|counts| {
            counts
                .iter()
                .filter(|(flow, status, _)| {
                    flows.contains(&flow.as_str()) && matches!(status, Status::Done)
                })
                .map(|(_, _, n)| *n as usize)
                .sum()
        })
        .unwrap_or(0)
}

async fn admin_json(http: &reqwest::Client, url: String) -> Result<serde_json::Value, String> {
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    response.json().await.map_err(|e| format!("{url}: {e}"))
}

fn spawn_relay(
    options: &ExactlyOnce,
    config: &Path,
    env: &[(&'static str, String)],
) -> Result<tokio::process::Child, String> {
    let flows = if options.lifecycle {
        "orders,shipping"
    } else {
        "shipping"
    };
    let mut command = tokio::process::Command::new(&options.relay_bin);
    command
        .env_clear()
        .args(["run", "--json", "--flow", flows, "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", options.relay_bin.display()))
}

/// The scenario's sandbox: the seeded dataset, and which of its orders qualify for shipping.
struct Platforms {
    sandbox: Sandbox,
    http: reqwest::Client,
    qualifying: Vec<String>,
    others: Vec<String>,
    /// Orders in status Created at the start: those the orders flow imports.
    created: Vec<String>,
}

/// Starts the sandbox with `orders` orders from `seed`, sorts its orders, and adds the faults
/// (with `lifecycle`, also commit-then-fail on the Brightpearl writes of [`LIFECYCLE_FAULTS`]).
async fn platforms(
    orders: usize,
    seed: u64,
    faults: bool,
    lifecycle: bool,
) -> Result<Platforms, String> {
    let sandbox = Sandbox::start(SandboxConfig {
        dataset: DatasetConfig {
            seed,
            orders,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| format!("sandbox: {e}"))?;
    let http = reqwest::Client::new();
    let base = sandbox.base_url();

    // Which orders qualify, as the flow's default mapping decides.
    let statuses = crate::flows::shipping::ShippingConfig::default().order_statuses;
    let orders = admin_json(&http, format!("{base}/_sandbox/norce/orders")).await?;
    let mut qualifying = Vec::new();
    let mut others = Vec::new();
    let mut created = Vec::new();
    for order in orders.as_array().into_iter().flatten() {
        let number = order["orderNo"].as_str().unwrap_or_default().to_owned();
        let status = order["status"].as_str().unwrap_or_default();
        if status == "Created" {
            created.push(number.clone());
        }
        if statuses.iter().any(|s| s.eq_ignore_ascii_case(status)) {
            qualifying.push(number)
        } else {
            others.push(number)
        }
    }

    if faults {
        let state = sandbox.state();
        let rules = [
            FaultRule {
                path_prefix: "/rs-extapi/v1/stored-shipments".into(),
                method: Some("POST".into()),
                commit_then_fail_rate: 0.05,
                ..FaultRule::default()
            },
            FaultRule {
                path_prefix: "/rs-extapi/v1/shipments".into(),
                method: Some("POST".into()),
                commit_then_fail_rate: 0.05,
                ..FaultRule::default()
            },
            FaultRule {
                error_rate: 0.10,
                // Brightpearl answers 503 when its request cap is reached, and relay rightly
                // waits out the window then (a minute); a tenth of its calls throttled is not a
                // fault but another scenario (`benches/brightpearl_budget.rs`).
                error_statuses: if lifecycle {
                    vec![500, 502]
                } else {
                    vec![500, 502, 503]
                },
                ..FaultRule::default()
            },
            FaultRule {
                rate_429: 0.02,
                retry_after_secs: Some(1),
                ..FaultRule::default()
            },
        ];
        let account = sandbox.credentials().brightpearl.account.clone();
        let brightpearl = LIFECYCLE_FAULTS
            .iter()
            .filter(|_| lifecycle)
            .map(|path| FaultRule {
                path_prefix: format!("/public-api/{account}/{path}"),
                method: Some("POST".into()),
                commit_then_fail_rate: 0.05,
                ..FaultRule::default()
            });
        // Every rule a request matches draws in turn; the first fault drawn stands.
        for rule in brightpearl.chain(rules) {
            state.faults.add(rule)?;
        }
    }
    Ok(Platforms {
        sandbox,
        http,
        qualifying,
        others,
        created,
    })
}

/// Counts what the platforms hold for each order (not what relay believes) into `report`:
/// exactly once, doubled, lost, booked without qualifying, and the faults injected.
async fn tally(platforms: &Platforms, report: &mut ExactlyOnceReport) -> Result<(), String> {
    let Platforms {
        sandbox,
        http,
        qualifying,
        others,
        ..
    } = platforms;
    let base = sandbox.base_url();
    for number in qualifying {
        let shipments = sandbox.state().nshift.shipment_count(number);
        let notes = admin_json(
            http,
            format!("{base}/_sandbox/norce/delivery-notes?orderNo={number}"),
        )
        .await?;
        let notes = notes.as_array().map_or(0, Vec::len);
        match (shipments, notes) {
            (1, 1) => report.exactly_once += 1,
            (s, n) if s > 1 || n > 1 => report.doubled.push((number.clone(), s, n)),
            (s, n) => report.lost.push((number.clone(), s, n)),
        }
    }
    report.unexpected = others
        .iter()
        .map(|n| sandbox.state().nshift.shipment_count(n))
        .sum();
    let mut injected: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for request in sandbox.state().faults.requests() {
        if let Some(fault) = request.fault {
            *injected.entry(fault).or_default() += 1;
        }
    }
    report.faults_injected = injected.into_iter().collect();
    Ok(())
}

/// Runs the scenario.
pub async fn run(options: &ExactlyOnce) -> Result<ExactlyOnceReport, String> {
    let started = Instant::now();
    let platforms = platforms(
        options.orders,
        options.seed,
        options.faults,
        options.lifecycle,
    )
    .await?;
    let sandbox = &platforms.sandbox;
    let qualifying = platforms.qualifying.len();

    let data_dir = std::env::temp_dir().join(format!(
        "relay-exactly-once-{}-{}",
        std::process::id(),
        options.seed
    ));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let config = data_dir.join("relay.toml");
    let mut toml = format!(
        "[state]\ndir = {dir:?}\n\n[run]\n# Faults are transient here: keep retrying instead of dead-lettering.\nmax_attempts = 1000\n",
        dir = data_dir.display().to_string()
    );
    if options.lifecycle {
        let mut lifecycle = crate::config::RelayConfig::default();
        crate::embedded::configure_lifecycle(&mut lifecycle);
        let orders = &lifecycle.orders;
        toml.push_str(&format!(
            "\n[orders]\ncancelled_status_id = {}\nrefund_restock = {}\n",
            orders.cancelled_status_id.unwrap_or_default(),
            orders.refund_restock,
        ));
    }
    std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))?;
    let env = crate::embedded::env_pairs(&sandbox.credentials());
    let store = SqliteStore::open_in(&data_dir).map_err(|e| e.to_string())?;

    let mut report = ExactlyOnceReport {
        qualifying,
        ..ExactlyOnceReport::default()
    };
    let calls_before = sandbox.state().faults.total_requests();
    let mut revoked = !options.faults;
    let shipping = Phase {
        flows: &["shipping"],
        target: qualifying,
        kills: options.kills,
    };
    drive(
        options,
        &config,
        &env,
        &store,
        &mut report,
        &shipping,
        |done| {
            if !revoked && done >= qualifying / 2 {
                sandbox.state().norce.revoke_tokens();
                revoked = true;
            }
        },
    )
    .await?;

    let millis = |since: Instant| u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
        .phase_ms
        .push(("shipping".to_owned(), millis(started)));
    let mut acts = None;
    if options.lifecycle {
        let acting = Instant::now();
        let lifecycle = act_on_lifecycle(options, &platforms, &config, &store).await?;
        report
            .phase_ms
            .push(("lifecycle acts".to_owned(), millis(acting)));
        let running = Instant::now();
        report.lifecycle_items = lifecycle.items();
        let (runs, kills) = (report.runs, report.kills);
        let phase = Phase {
            flows: &[
                crate::flows::shipping::CANCEL_FLOW,
                crate::flows::shipping::RETURN_FLOW,
                crate::flows::orders::REFUND_FLOW,
            ],
            target: lifecycle.items(),
            kills: options.kills,
        };
        drive(options, &config, &env, &store, &mut report, &phase, |_| {}).await?;
        report.lifecycle_runs = report.runs - runs;
        report.lifecycle_kills = report.kills - kills;
        report
            .phase_ms
            .push(("lifecycle".to_owned(), millis(running)));
        acts = Some(lifecycle);
    }

    report.platform_calls = sandbox.state().faults.total_requests() - calls_before;
    // Count what the platforms hold, not what relay believes.
    tally(&platforms, &mut report).await?;
    if let Some(acts) = &acts {
        report.writes = tally_lifecycle(&platforms, acts).await?;
    }
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    drop(store);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(report)
}

/// One stretch of relay processes: until `target` entities of `flows` are done, with `kills`
/// SIGKILLs spread over it.
struct Phase<'a> {
    flows: &'a [&'a str],
    target: usize,
    kills: usize,
}

/// Starts relay processes (SIGKILLed at the phase's kill points, at most
/// [`ExactlyOnce::max_runs`]) until one ends by itself with the phase's target done.
/// `progress` sees the done count as it grows (the token revocation hangs on it).
async fn drive(
    options: &ExactlyOnce,
    config: &Path,
    env: &[(&'static str, String)],
    store: &SqliteStore,
    report: &mut ExactlyOnceReport,
    phase: &Phase<'_>,
    mut progress: impl FnMut(usize),
) -> Result<(), String> {
    let kill_points: Vec<usize> = (1..=phase.kills)
        .map(|k| phase.target * k / (phase.kills + 1))
        .collect();
    let mut runs = 0;
    let mut kills = 0;
    loop {
        if runs >= options.max_runs {
            return Err(format!(
                "not finished after {runs} relay runs ({} of {} done in {})",
                done_in(store, phase.flows),
                phase.target,
                phase.flows.join(", ")
            ));
        }
        let mut child = spawn_relay(options, config, env)?;
        runs += 1;
        report.runs += 1;
        let exit = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break Some(status);
            }
            let done = done_in(store, phase.flows);
            progress(done);
            if kill_points.get(kills).is_some_and(|point| done >= *point) {
                // SIGKILL: no chance to finish a step or flush anything.
                child.start_kill().map_err(|e| e.to_string())?;
                let _ = child.wait().await;
                kills += 1;
                report.kills += 1;
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        // A run that ended by itself with everything done is the end, even if it was too
        // quick for every planned kill (the report says how many landed).
        if exit.is_some() && done_in(store, phase.flows) >= phase.target {
            return Ok(());
        }
    }
}

/// What the lifecycle phase asked for.
struct Lifecycle {
    /// Orders the shop cancelled after relay booked them.
    cancelled: Vec<String>,
    /// Orders a return label was asked for.
    returned: Vec<String>,
    /// Refunds asked for, by key (the sales credit's `externalRef`).
    refunded: Vec<String>,
}

impl Lifecycle {
    fn items(&self) -> usize {
        self.cancelled.len() + self.returned.len() + self.refunded.len()
    }
}

/// Runs `relay <args> --config <config>` to its end; an error with its output unless it
/// exits 0.
async fn relay_command(options: &ExactlyOnce, config: &Path, args: &[&str]) -> Result<(), String> {
    let output = tokio::process::Command::new(&options.relay_bin)
        .env_clear()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .await
        .map_err(|e| format!("cannot start {}: {e}", options.relay_bin.display()))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "relay {} exited with {}: {}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// The shop cancels every tenth shipped order (from the fourth), the operator asks for a
/// return label for every tenth from the seventh (`relay return --service P24`) and refunds
/// every fifth imported order not cancelled (`relay refund`, restock by the configuration).
async fn act_on_lifecycle(
    options: &ExactlyOnce,
    platforms: &Platforms,
    config: &Path,
    store: &SqliteStore,
) -> Result<Lifecycle, String> {
    let base = platforms.sandbox.base_url();
    let mut lifecycle = Lifecycle {
        cancelled: Vec::new(),
        returned: Vec::new(),
        refunded: Vec::new(),
    };
    for (i, number) in platforms.qualifying.iter().enumerate() {
        match i % 10 {
            3 => {
                let url = format!("{base}/_sandbox/norce/orders/{number}/cancel");
                let answer = platforms
                    .http
                    .post(&url)
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                if !answer.status().is_success() {
                    return Err(format!("{url}: {}", answer.status()));
                }
                lifecycle.cancelled.push(number.clone());
            }
            6 => {
                let service = crate::embedded::RETURN_SERVICE;
                relay_command(options, config, &["return", number, "--service", service]).await?;
                lifecycle.returned.push(number.clone());
            }
            _ => {}
        }
    }
    let imported = store
        .list(Some(crate::flows::orders::FLOW), Some(Status::Done))
        .map_err(|e| e.to_string())?;
    let mut candidates: Vec<&str> = imported
        .iter()
        .map(|r| r.source_id.as_str())
        .filter(|n| !lifecycle.cancelled.iter().any(|c| c == n))
        .collect();
    candidates.sort_unstable();
    for number in candidates.into_iter().skip(2).step_by(5) {
        relay_command(options, config, &["refund", number]).await?;
        // An order's first refund.
        lifecycle
            .refunded
            .push(crate::flows::orders::refund_key(number, 1));
    }
    Ok(lifecycle)
}

/// Counts each lifecycle write on the platforms: sales orders, shipment cancellations (and no
/// shipment of another order cancelled), cancelled statuses, return shipments, sales credits
/// and their goods-in notes.
async fn tally_lifecycle(
    platforms: &Platforms,
    lifecycle: &Lifecycle,
) -> Result<Vec<WriteTally>, String> {
    let Platforms {
        sandbox,
        http,
        qualifying,
        created,
        ..
    } = platforms;
    let base = sandbox.base_url();
    let admin = |path: String| admin_json(http, format!("{base}/_sandbox{path}"));
    let count = |value: &serde_json::Value| value.as_array().map_or(0, Vec::len);

    let mut sales_orders = WriteTally::new("sales order (Brightpearl)");
    let mut statuses = WriteTally::new("cancelled status (Brightpearl)");
    for number in created {
        let orders = admin(format!("/brightpearl/orders?externalRef={number}")).await?;
        sales_orders.count(number, count(&orders));
        if lifecycle.cancelled.contains(number) {
            let cancelled = orders
                .as_array()
                .into_iter()
                .flatten()
                .filter(|o| o["statusId"].as_i64() == Some(crate::embedded::CANCELLED_STATUS_ID))
                .count();
            statuses.count(number, cancelled);
        }
    }

    let mut cancellations = WriteTally::new("shipment cancellation (nShift)");
    for number in qualifying {
        let shipments = admin(format!("/nshift/shipments?orderNo={number}")).await?;
        let cancelled = shipments
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["cancelled"].as_bool() == Some(true))
            .count();
        if lifecycle.cancelled.contains(number) {
            cancellations.count(number, cancelled);
        } else if cancelled > 0 {
            cancellations.doubled.push((number.clone(), cancelled));
        }
    }

    let mut returns = WriteTally::new("return shipment (nShift)");
    for number in &lifecycle.returned {
        returns.count(
            number,
            sandbox
                .state()
                .nshift
                .shipment_count(&format!("{number}-R")),
        );
    }

    let mut credits = WriteTally::new("sales credit (Brightpearl)");
    let mut notes = WriteTally::new("goods-in note (Brightpearl)");
    for key in &lifecycle.refunded {
        let found = admin(format!("/brightpearl/sales-credits?externalRef={key}")).await?;
        credits.count(key, count(&found));
        let mut received = 0;
        for credit in found.as_array().into_iter().flatten() {
            let id = credit["id"].as_i64().unwrap_or_default();
            received += count(&admin(format!("/brightpearl/goods-in-notes?orderId={id}")).await?);
        }
        notes.count(key, received);
    }
    Ok(vec![
        sales_orders,
        cancellations,
        statuses,
        returns,
        credits,
        notes,
    ])
}

/// What to run in the graceful-stop variant: `relay serve` (the shipping flow every second)
/// against the faulty sandbox, stopped by signals mid-pass and restarted.
#[derive(Debug, Clone)]
pub struct GracefulStops {
    /// The `relay` binary.
    pub relay_bin: PathBuf,
    /// Orders in the sandbox dataset.
    pub orders: usize,
    /// Signalled stops, spread evenly over the run.
    pub stops: usize,
    /// Each stop is SIGTERM then, [`SECOND_SIGNAL_AFTER`] later, SIGINT (a stop at once);
    /// otherwise SIGTERM alone (a stop bounded by the grace).
    pub twice: bool,
    /// `serve.shutdown_grace_secs` of the relay processes.
    pub grace_secs: u64,
    /// Latency added to every platform call, so each stop finds a pass with items in flight.
    pub latency_ms: u64,
    /// Dataset seed (also seeds the fault RNG).
    pub seed: u64,
    /// The faults of [`ExactlyOnce::faults`], without the revoked token.
    pub faults: bool,
    /// Give up after this many relay processes.
    pub max_runs: usize,
}

/// How long after the SIGTERM the second signal of [`GracefulStops::twice`] is sent.
pub const SECOND_SIGNAL_AFTER: Duration = Duration::from_millis(300);

/// How long a stopped relay process may take beyond its grace before the scenario gives up.
const STOP_DEADLINE_MARGIN: Duration = Duration::from_secs(15);

/// One signalled stop.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StopTiming {
    /// Milliseconds from the SIGTERM to the process's exit.
    pub after_first_ms: u64,
    /// Milliseconds from the second signal (SIGINT) to the exit, if one was sent before it.
    pub after_second_ms: Option<u64>,
    /// The exit code (`None`: ended by a signal's default action, i.e. not handled).
    pub exit_code: Option<i32>,
    /// Shipping entities done when the stop was signalled.
    pub done_at_stop: usize,
}

/// What happened in the graceful-stop variant.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GracefulStopsReport {
    /// What the platforms hold, as in the SIGKILL scenario (`kills` counts the signalled stops).
    pub platforms: ExactlyOnceReport,
    /// The signalled stops mid-run, in order.
    pub stops: Vec<StopTiming>,
    /// The SIGTERM that ended the last process once everything had shipped.
    pub final_stop: StopTiming,
    /// The shutdown stages the stopped processes logged (their lines about the stop, the grace,
    /// cancelling and stopping), in order.
    pub stages: Vec<String>,
}

impl GracefulStopsReport {
    /// Every qualifying order exactly once, nothing else booked, every stop handled (an exit
    /// code, not a signal's default action).
    pub fn passed(&self) -> bool {
        self.platforms.passed()
            && self
                .stops
                .iter()
                .chain([&self.final_stop])
                .all(|stop| stop.exit_code.is_some())
    }
}

/// Sends `signal` to `child`.
#[cfg(unix)]
#[allow(unsafe_code)] // one libc call; the workspace denies unsafe code elsewhere
fn send_signal(child: &tokio::process::Child, signal: libc::c_int) -> Result<(), String> {
    let pid = child
        .id()
        .ok_or_else(|| "the relay process has already been reaped".to_owned())?;
    let pid = libc::pid_t::try_from(pid).map_err(|e| format!("process id {pid}: {e}"))?;
    // SAFETY: kill(2) only sends a signal to the given process id; it touches no memory of
    // ours. The child is not reaped yet (we hold it), so the id is still its own.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        return Err(format!(
            "cannot signal process {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Waits for `child` to exit, at most `limit`; `None` if it is still running then.
#[cfg(unix)]
async fn exit_within(
    child: &mut tokio::process::Child,
    limit: Duration,
) -> Result<Option<std::process::ExitStatus>, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whole milliseconds of `duration`.
#[cfg(unix)]
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Stops `child` with SIGTERM (and SIGINT after [`SECOND_SIGNAL_AFTER`] when `twice`) and times
/// its exit; an error (after a SIGKILL) if it is still running `grace` plus a margin later.
#[cfg(unix)]
async fn stop_with_signals(
    child: &mut tokio::process::Child,
    twice: bool,
    grace: Duration,
    done_at_stop: usize,
) -> Result<StopTiming, String> {
    let first = Instant::now();
    send_signal(child, libc::SIGTERM)?;
    let mut second = None;
    if twice && exit_within(child, SECOND_SIGNAL_AFTER).await?.is_none() {
        second = Some(Instant::now());
        send_signal(child, libc::SIGINT)?;
    }
    let Some(status) = exit_within(child, grace + STOP_DEADLINE_MARGIN).await? else {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(format!(
            "relay serve did not stop within {} s of SIGTERM (grace {} s)",
            (grace + STOP_DEADLINE_MARGIN).as_secs(),
            grace.as_secs()
        ));
    };
    Ok(StopTiming {
        after_first_ms: millis(first.elapsed()),
        after_second_ms: second.map(|at| millis(at.elapsed())),
        exit_code: status.code(),
        done_at_stop,
    })
}

/// The lines of a relay process's log about its stop.
#[cfg(unix)]
fn shutdown_stages(log: &Path) -> Vec<String> {
    const MARKS: [&str; 12] = [
        "SIGTERM received",
        "SIGINT received",
        "stop signal",
        "shutting down",
        "the shutdown grace (serve.shutdown_grace_secs) ended",
        "cancelled at the end of the shutdown grace",
        "stopped accepting",
        "scheduler stopped",
        "processor stopped",
        "listener stopped",
        "relay serve stopped",
        "relay serve: stopped",
    ];
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| MARKS.iter().any(|mark| line.contains(mark)))
        .map(str::to_owned)
        .collect()
}

/// The last lines of a relay process's log, for an error message.
#[cfg(unix)]
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Runs the graceful-stop variant: `relay serve` processes (shipping every second, the other
/// flows off) against the sandbox with latency and faults; at each stop point, SIGTERM (and
/// SIGINT with `twice`), timed to the exit; then a restart, until every qualifying order is
/// done; a last SIGTERM; then the platforms are counted.
#[cfg(unix)]
pub async fn run_graceful_stops(options: &GracefulStops) -> Result<GracefulStopsReport, String> {
    let started = Instant::now();
    let platforms = platforms(options.orders, options.seed, options.faults, false).await?;
    if options.latency_ms > 0 {
        platforms.sandbox.state().faults.add(FaultRule {
            latency_ms: options.latency_ms,
            ..FaultRule::default()
        })?;
    }
    let qualifying = platforms.qualifying.len();

    let data_dir = std::env::temp_dir().join(format!(
        "relay-signal-stops-{}-{}",
        std::process::id(),
        options.seed
    ));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let config = data_dir.join("relay.toml");
    let toml = format!(
        "[state]\ndir = {dir:?}\n\n[run]\n# Faults are transient here: keep retrying instead of dead-lettering.\nmax_attempts = 1000\n\n[serve]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = {grace}\nshipping_every_secs = 1\norders_every_secs = 0\nstock_reconcile_every_secs = 0\nregister_brightpearl_webhooks = false\n",
        dir = data_dir.display().to_string(),
        grace = options.grace_secs,
    );
    std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))?;
    let mut env = crate::embedded::env_pairs(&platforms.sandbox.credentials());
    env.push(("RUST_LOG", "relay=info".to_owned()));
    let store = SqliteStore::open_in(&data_dir).map_err(|e| e.to_string())?;
    let grace = Duration::from_secs(options.grace_secs);

    let mut report = GracefulStopsReport {
        platforms: ExactlyOnceReport {
            qualifying,
            ..ExactlyOnceReport::default()
        },
        ..GracefulStopsReport::default()
    };
    let stop_points: Vec<usize> = (1..=options.stops)
        .map(|k| qualifying * k / (options.stops + 1))
        .collect();
    loop {
        if report.platforms.runs >= options.max_runs {
            return Err(format!(
                "not finished after {} relay processes ({} of {qualifying} shipped)",
                report.platforms.runs,
                shipping_done(&store),
            ));
        }
        let log = data_dir.join(format!("relay-serve-{}.log", report.platforms.runs + 1));
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut command = tokio::process::Command::new(&options.relay_bin);
        command
            .env_clear()
            .args(["serve", "--config"])
            .arg(&config)
            .envs(env.iter().map(|(name, value)| (*name, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", options.relay_bin.display()))?;
        report.platforms.runs += 1;
        // A stop lands only once this process has shipped something: mid-pass, and long
        // after it took over the signals.
        let done_at_start = shipping_done(&store);
        let last = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "relay serve exited by itself ({status}); its log ends:\n{}",
                    log_tail(&log)
                ));
            }
            let done = shipping_done(&store);
            if done > done_at_start
                && stop_points
                    .get(report.stops.len())
                    .is_some_and(|point| done >= *point)
            {
                let timing = stop_with_signals(&mut child, options.twice, grace, done)
                    .await
                    .map_err(|e| format!("{e}; its log ends:\n{}", log_tail(&log)))?;
                report.stops.push(timing);
                report.platforms.kills += 1;
                break false;
            }
            if report.stops.len() == stop_points.len() && done >= qualifying {
                report.final_stop = stop_with_signals(&mut child, false, grace, done)
                    .await
                    .map_err(|e| format!("{e}; its log ends:\n{}", log_tail(&log)))?;
                break true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        report.stages.extend(shutdown_stages(&log));
        if last {
            break;
        }
    }

    tally(&platforms, &mut report.platforms).await?;
    report.platforms.elapsed_ms = millis(started.elapsed());
    drop(store);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(report)
}
