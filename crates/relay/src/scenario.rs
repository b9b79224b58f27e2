//! The exactly-once scenario: the shipping flow against a faulty sandbox while the relay process
//! is killed with SIGKILL and restarted. Used by `tests/exactly_once.rs` (100 orders, one kill,
//! in CI) and `benches/exactly_once.rs` (1,000 orders, five kills, with timings).
//!
//! The sandbox runs in this process, so it outlives every relay process; relay runs as the real
//! binary (`relay run --flow shipping`) with its state in a data folder, so a kill can land
//! anywhere, including between a platform's commit and relay's record of it.

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
    /// Wall time.
    pub elapsed_ms: u64,
}

impl ExactlyOnceReport {
    /// Every qualifying order exactly once, nothing else booked.
    pub fn passed(&self) -> bool {
        self.doubled.is_empty()
            && self.lost.is_empty()
            && self.unexpected == 0
            && self.exactly_once == self.qualifying
    }
}

fn shipping_done(store: &SqliteStore) -> usize {
    store
        .counts()
        .map(|counts| {
            counts
                .iter()
                .filter(|(flow, status, _)| flow == "shipping" && matches!(status, Status::Done))
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
    let mut command = tokio::process::Command::new(&options.relay_bin);
    command
        .env_clear()
        .args(["run", "--json", "--flow", "shipping", "--config"])
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

/// Runs the scenario.
pub async fn run(options: &ExactlyOnce) -> Result<ExactlyOnceReport, String> {
    let started = Instant::now();
    let sandbox = Sandbox::start(SandboxConfig {
        dataset: DatasetConfig {
            seed: options.seed,
            orders: options.orders,
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
    for order in orders.as_array().into_iter().flatten() {
        let number = order["orderNo"].as_str().unwrap_or_default().to_owned();
        let status = order["status"].as_str().unwrap_or_default();
        if statuses.iter().any(|s| s.eq_ignore_ascii_case(status)) {
            qualifying.push(number)
        } else {
            others.push(number)
        }
    }

    if options.faults {
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
                error_statuses: vec![500, 502, 503],
                ..FaultRule::default()
            },
            FaultRule {
                rate_429: 0.02,
                retry_after_secs: Some(1),
                ..FaultRule::default()
            },
        ];
        for rule in rules {
            state.faults.add(rule)?;
        }
    }

    let data_dir = std::env::temp_dir().join(format!(
        "relay-exactly-once-{}-{}",
        std::process::id(),
        options.seed
    ));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let config = data_dir.join("relay.toml");
    let toml = format!(
        "[state]\ndir = {dir:?}\n\n[run]\n# Faults are transient here: keep retrying instead of dead-lettering.\nmax_attempts = 1000\n",
        dir = data_dir.display().to_string()
    );
    std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))?;
    let env = crate::embedded::env_pairs(&sandbox.credentials());
    let store = SqliteStore::open_in(&data_dir).map_err(|e| e.to_string())?;

    let mut report = ExactlyOnceReport {
        qualifying: qualifying.len(),
        ..ExactlyOnceReport::default()
    };
    let kill_points: Vec<usize> = (1..=options.kills)
        .map(|k| qualifying.len() * k / (options.kills + 1))
        .collect();
    let mut revoked = !options.faults;
    loop {
        if report.runs >= options.max_runs {
            return Err(format!(
                "not finished after {} relay runs ({} of {} shipped)",
                report.runs,
                shipping_done(&store),
                qualifying.len()
            ));
        }
        let mut child = spawn_relay(options, &config, &env)?;
        report.runs += 1;
        let exit = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break Some(status);
            }
            let done = shipping_done(&store);
            if !revoked && done >= qualifying.len() / 2 {
                sandbox.state().norce.revoke_tokens();
                revoked = true;
            }
            if kill_points
                .get(report.kills)
                .is_some_and(|point| done >= *point)
            {
                // SIGKILL: no chance to finish a step or flush anything.
                child.start_kill().map_err(|e| e.to_string())?;
                let _ = child.wait().await;
                report.kills += 1;
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        // A run that ended by itself with everything shipped is the end, even if it was too
        // quick for every planned kill (the report says how many landed).
        if exit.is_some() && shipping_done(&store) >= qualifying.len() {
            break;
        }
    }

    // Count what the platforms hold, not what relay believes.
    for number in &qualifying {
        let shipments = sandbox.state().nshift.shipment_count(number);
        let notes = admin_json(
            &http,
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
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    drop(store);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(report)
}
