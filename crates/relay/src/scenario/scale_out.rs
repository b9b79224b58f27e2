//! The scale-out scenario (issue 13): several `relay serve` worker processes on one PostgreSQL
//! database share the shipping flow (Norce → nShift → Norce) against the sandbox, while workers
//! are SIGKILLed (each restarted at once as a new process) and PostgreSQL is restarted mid-run.
//! Used by `benches/scale_out.rs` (2,000 orders, 1, 2 or 4 workers, five kills) and
//! `tests/scale_out.rs` (200 orders, three workers, one kill, in CI).
//!
//! The sandbox runs in this process with a latency on every platform call, so it outlives every
//! worker and counts what the platforms hold: one shipment and one delivery note per qualifying
//! order is the only right outcome, whatever was killed when. The workers run as the real
//! binary, each with its own listen port, its own data folder (labels) and its own worker name
//! (`RELAY_WORKER_ID`, new for every process, so a restarted worker takes its predecessor's
//! items only once their leases run out, as another machine would).
//!
//! The database is the caller's ([`Database`]): this library does not depend on the throwaway
//! cluster crate, which only tests and benches use.
//!
//! Progress is read from relay's state in the same database ([`PgStore`]): the scenario waits
//! on it (polling every [`POLL`]), never on fixed sleeps; the only timed pause is PostgreSQL's
//! time down ([`ScaleOut::postgres_down`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandbox::{DatasetConfig, FaultRule, Sandbox, SandboxConfig};
use serde::Serialize;

use crate::state::{PgStore, Status, Store};

/// How often the scenario looks at the workers, the state and the sandbox.
pub const POLL: Duration = Duration::from_millis(100);

/// How long a worker may take to stop after SIGTERM at the end before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// At most this many doubled or lost orders are listed by number in the report.
const LISTED_ORDERS: usize = 20;

/// Workers that exit by themselves (a crash) are restarted; past this many the run gives up.
const MAX_UNEXPECTED_EXITS: usize = 20;

/// Lines of a worker's log quoted when it exits by itself.
const LOG_TAIL_LINES: usize = 30;

/// The PostgreSQL server the workers share, which the scenario restarts once mid-run.
pub trait Database: Send {
    /// The URL the workers get in `RELAY_DATABASE_URL`.
    fn url(&self) -> String;
    /// Stops the server (its data stays); blocks until it has stopped.
    fn stop(&mut self) -> Result<(), String>;
    /// Starts the server again on the same data and port; blocks until it accepts connections.
    fn start(&mut self) -> Result<(), String>;
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleOut {
    /// The `relay` binary.
    pub relay_bin: PathBuf,
    /// Orders in the sandbox dataset (about two thirds qualify for shipping).
    pub orders: usize,
    /// Worker processes running at once.
    pub workers: usize,
    /// SIGKILLs of random workers, at random points of the run (from [`ScaleOut::seed`]).
    pub kills: usize,
    /// Whether PostgreSQL is stopped and started again once, at a random point mid-run.
    pub restart_postgres: bool,
    /// How long PostgreSQL stays down in that restart.
    pub postgres_down: Duration,
    /// Latency the sandbox adds to every platform call, in milliseconds.
    pub latency_ms: u64,
    /// `[run] concurrency` of each worker.
    pub concurrency: usize,
    /// `[serve] lease_secs` of each worker (a killed worker's items wait this long at most).
    pub lease_secs: u64,
    /// `[serve] shipping_every_secs` of each worker.
    pub shipping_every_secs: u64,
    /// The sandbox's Norce token lifetime (`None`: the sandbox's default, an hour).
    pub norce_token_lifetime_secs: Option<u64>,
    /// Orders per page of the sandbox's Norce Query answers (`None`: its default, 500). Small
    /// pages make the poll span the time other workers finish orders, which moves the orders
    /// still to be paged (a finished order leaves the poll's filter).
    pub norce_query_page_size: Option<usize>,
    /// Seeds the dataset and the schedule of kills and the restart: a run can be repeated.
    pub seed: u64,
    /// The run gives up (and reports what was left) after this long.
    pub timeout: Duration,
    /// Keep the workers' logs (and configurations) even when the run passed; a failed run
    /// always keeps them.
    pub keep_logs: bool,
}

impl ScaleOut {
    /// `orders`, `workers` and `kills` with the bench's defaults for the rest: PostgreSQL
    /// restarted once (down for a second), 20 ms per platform call, concurrency 8, leases of
    /// 3 s, the shipping flow every second, seed 13, ten minutes at most.
    pub fn new(relay_bin: impl Into<PathBuf>, orders: usize, workers: usize, kills: usize) -> Self {
        Self {
            relay_bin: relay_bin.into(),
            orders,
            workers,
            kills,
            restart_postgres: true,
            postgres_down: Duration::from_secs(1),
            latency_ms: 20,
            concurrency: 8,
            lease_secs: 3,
            shipping_every_secs: 1,
            norce_token_lifetime_secs: None,
            norce_query_page_size: None,
            seed: 13,
            timeout: Duration::from_secs(600),
            keep_logs: false,
        }
    }
}

/// One order's count on the platforms: nShift shipments and Norce delivery notes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrderCount {
    /// The Norce order number (nShift's `orderNo`).
    pub order_no: String,
    /// Printed nShift shipments with this `orderNo`.
    pub shipments: usize,
    /// Norce delivery notes of the order.
    pub notes: usize,
}

/// One SIGKILL.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Kill {
    /// The killed process's worker name.
    pub worker: String,
    /// Seconds into the run.
    pub at_secs: f64,
    /// Shipping entities done (relay's state) when it was killed.
    pub done_at_kill: usize,
}

/// A worker that exited without being told to: what it said last.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UnexpectedExit {
    /// Its worker name.
    pub worker: String,
    /// Seconds into the run.
    pub at_secs: f64,
    /// How it exited.
    pub status: String,
    /// Whether it exited before it listened, for want of its state database: a worker started
    /// while PostgreSQL is down (or shutting down) stops at once with status 2, for its
    /// supervisor (here the scenario) to start it again.
    pub database_unreachable_at_start: bool,
    /// The end of its log.
    pub log_tail: String,
}

impl UnexpectedExit {
    fn of(worker: &Worker, status: std::process::ExitStatus, at_secs: f64) -> Self {
        let log = std::fs::read_to_string(&worker.log).unwrap_or_default();
        Self {
            worker: worker.name.clone(),
            at_secs,
            status: status.to_string(),
            database_unreachable_at_start: !log.contains(LISTENING_LINE)
                && log.contains(STATE_DATABASE_ERROR),
            log_tail: log_tail(&worker.log),
        }
    }
}

/// What `relay serve` prints once it listens.
const LISTENING_LINE: &str = "relay serve: listening on";

/// How `relay serve` names its state database in the error that stops it at start.
const STATE_DATABASE_ERROR: &str = "state database (";

/// Where the machine's CPU went during the run (shares of all cores together, 0 to 1).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuShares {
    /// Cores of the machine.
    pub cores: usize,
    /// The machine busy (not idle, not waiting for I/O).
    pub machine_busy: f64,
    /// This process: the sandbox (and the scenario's polling).
    pub sandbox: f64,
    /// The relay worker processes together.
    pub relay_workers: f64,
    /// The PostgreSQL server (its postmaster and backends).
    pub postgres: f64,
    /// Everything else busy on the machine (other programs running meanwhile).
    pub other: f64,
}

/// What happened: the figures the bench prints as one JSON object.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScaleOutReport {
    /// Worker processes running at once.
    pub workers: usize,
    /// Orders in the dataset.
    pub orders: usize,
    /// Orders that qualify for shipping.
    pub qualifying: usize,
    /// Qualifying orders with exactly one shipment and exactly one delivery note.
    pub exactly_once: usize,
    /// Orders with more than one shipment or more than one note.
    pub doubled: usize,
    /// Qualifying orders with no shipment or no note at the end.
    pub lost: usize,
    /// Shipments booked for orders that do not qualify.
    pub unexpected: usize,
    /// The first doubled orders.
    pub doubled_orders: Vec<OrderCount>,
    /// The first lost orders.
    pub lost_orders: Vec<OrderCount>,
    /// Qualifying orders per second, from the first worker's start until relay's state had
    /// every one done.
    pub orders_per_second: f64,
    /// That time, in seconds.
    pub duration_secs: f64,
    /// Platform requests (Norce, nShift, Brightpearl, tokens and polls included) per
    /// qualifying order.
    pub calls_per_order: f64,
    /// Platform requests in all.
    pub platform_calls: u64,
    /// Platform requests by method and path (numeric segments left out).
    pub calls_by_operation: BTreeMap<String, u64>,
    /// Requests to Norce's token endpoint (answered or refused).
    pub norce_token_requests: u64,
    /// The sandbox's Norce token lifetime, in seconds.
    pub norce_token_lifetime_secs: u64,
    /// Token lifetimes the run spanned: `ceil(duration / lifetime)`.
    pub norce_token_lifetimes: u64,
    /// JWT sessions nShift issued.
    pub nshift_jwt_requests: u64,
    /// Requests to Brightpearl (the shipping flow makes none).
    pub brightpearl_requests: u64,
    /// Brightpearl's 503 answers (its throttle).
    pub brightpearl_503: u64,
    /// Platform answers 429 (any platform).
    pub platform_429: u64,
    /// SIGKILLs sent.
    pub kills: usize,
    /// Each kill.
    pub kill_log: Vec<Kill>,
    /// PostgreSQL restarts.
    pub postgres_restarts: usize,
    /// Seconds into the run PostgreSQL was stopped.
    pub postgres_restart_at_secs: Option<f64>,
    /// Milliseconds from the stop to the server accepting connections again.
    pub postgres_down_ms: Option<u64>,
    /// Worker processes started in all (restarts included).
    pub worker_processes: usize,
    /// Workers that exited without being told to (restarted at once).
    pub unexpected_exits: Vec<UnexpectedExit>,
    /// Platform requests per second served by the sandbox over the run.
    pub sandbox_requests_per_second: f64,
    /// Round trip of the sandbox's `/_sandbox/health` during the run (no injected latency):
    /// how long the sandbox keeps a request waiting, median and 99th percentile, ms.
    pub sandbox_probe_p50_ms: f64,
    /// See [`ScaleOutReport::sandbox_probe_p50_ms`].
    pub sandbox_probe_p99_ms: f64,
    /// Where the CPU went.
    pub cpu: CpuShares,
    /// Shipping entities done in relay's state at the end.
    pub relay_done: u64,
    /// Shipping entities in relay's state not done at the end, by status.
    pub relay_not_done: BTreeMap<String, u64>,
    /// Dead letters in relay's state at the end.
    pub dead_letters: usize,
    /// Entity leases still held after every worker stopped (SIGTERM releases them).
    pub leases_left: usize,
    /// Requests the sandbox's request log dropped before they were counted (0: every one).
    pub request_log_gap: u64,
    /// The workers' warnings and errors, by message (numbers shown as `#`), most frequent
    /// first: what the kills and the restart cost them.
    pub worker_log_warnings: Vec<(String, usize)>,
    /// Whether the run hit its timeout before every qualifying order was done.
    pub timed_out: bool,
    /// Latency per platform call, ms.
    pub latency_ms: u64,
    /// `[run] concurrency` per worker.
    pub concurrency: usize,
    /// `[serve] lease_secs`.
    pub lease_secs: u64,
    /// The seed of the dataset and the schedule.
    pub seed: u64,
    /// The workers' logs, kept when the run did not pass.
    pub logs_kept: Option<String>,
}

impl ScaleOutReport {
    /// Every qualifying order exactly once, nothing doubled, lost or unexpected, no worker
    /// exiting by itself (but for one started while PostgreSQL was down, which stops at
    /// once for its supervisor to start it again), no Brightpearl 503, and the run finished in
    /// time.
    pub fn passed(&self) -> bool {
        self.doubled == 0
            && self.lost == 0
            && self.unexpected == 0
            && self.exactly_once == self.qualifying
            && self
                .unexpected_exits
                .iter()
                .all(|exit| exit.database_unreachable_at_start)
            && self.brightpearl_503 == 0
            && !self.timed_out
    }
}

/// The platform request counts, read from the sandbox's log as it grows.
#[derive(Debug, Default)]
struct RequestTally {
    last_seq: u64,
    gap: u64,
    total: u64,
    by_operation: BTreeMap<String, u64>,
    norce_token: u64,
    brightpearl: u64,
    brightpearl_503: u64,
    too_many: u64,
}

impl RequestTally {
    fn follow(&mut self, sandbox: &Sandbox) {
        for request in sandbox.state().faults.requests_after(self.last_seq) {
            self.gap += request.seq.saturating_sub(self.last_seq + 1);
            self.last_seq = request.seq;
            self.total += 1;
            let path: Vec<&str> = request
                .path
                .split('/')
                .filter(|p| !p.is_empty() && !p.bytes().all(|b| b.is_ascii_digit()))
                .collect();
            *self
                .by_operation
                .entry(format!("{} /{}", request.method, path.join("/")))
                .or_default() += 1;
            if request.method == "POST" && request.path.ends_with("/connect/token") {
                self.norce_token += 1;
            }
            if request.path.starts_with("/public-api/") {
                self.brightpearl += 1;
                if request.status == 503 {
                    self.brightpearl_503 += 1;
                }
            }
            if request.status == 429 {
                self.too_many += 1;
            }
        }
    }
}

/// CPU time counters from `/proc` (Linux), in clock ticks.
#[derive(Debug, Default, Clone, Copy)]
struct CpuSample {
    machine_total: u64,
    machine_idle: u64,
    own: u64,
}

fn cpu_sample() -> CpuSample {
    let mut sample = CpuSample::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/stat")
        && let Some(line) = stat.lines().next()
    {
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        sample.machine_total = fields.iter().take(8).sum();
        // idle and iowait
        sample.machine_idle = fields.iter().skip(3).take(2).sum();
    }
    sample.own = process_ticks("self").unwrap_or(0);
    sample
}

/// User plus system ticks of a process (`self` or a pid), from `/proc/<pid>/stat`.
fn process_ticks(pid: &str) -> Option<u64> {
    let (_, fields) = proc_stat(pid)?;
    Some(fields.get(11..13)?.iter().sum())
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces), and the
/// command name: `fields[1]` is the parent's pid, `fields[11..15]` user, system, children's user
/// and children's system ticks.
fn proc_stat(pid: &str) -> Option<(String, Vec<u64>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    // The state letter becomes 0; every other field is a number.
    let fields = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    Some((name, fields))
}

/// The CPU of the PostgreSQL server on `port`: its postmaster's pid and ticks, those of the
/// backends it has reaped, and those of its live backends. Found by the `-p PORT` on the
/// postmaster's command line, so other clusters on the machine are not counted.
fn postgres_ticks(port: u16) -> Option<(u32, u64)> {
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((command, fields)) = proc_stat(&pid.to_string())
            && command == "postgres"
        {
            processes.push((pid, fields));
        }
    }
    let port_argument = format!("\0-p\0{port}\0");
    let (postmaster, fields) = processes.iter().find(|(pid, _)| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|line| String::from_utf8_lossy(&line).contains(&port_argument))
    })?;
    let own: u64 = fields.get(11..15)?.iter().sum();
    let backends: u64 = processes
        .iter()
        .filter(|(_, f)| f.get(1).is_some_and(|ppid| *ppid == u64::from(*postmaster)))
        .filter_map(|(_, f)| f.get(11..13).map(|t| t.iter().sum::<u64>()))
        .sum();
    Some((*postmaster, own + backends))
}

/// The port of a `postgres://…@host:PORT/db` URL.
fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let host = host.split(['/', '?']).next()?;
    host.rsplit_once(':')?.1.parse().ok()
}

/// PostgreSQL's CPU over the run, across restarts (each postmaster counted at its highest).
#[derive(Debug, Default)]
struct PostgresCpu {
    port: Option<u16>,
    baseline: u64,
    by_postmaster: HashMap<u32, u64>,
}

impl PostgresCpu {
    fn new(url: &str) -> Self {
        let port = port_of(url);
        let baseline = port.and_then(postgres_ticks).map_or(0, |(_, ticks)| ticks);
        Self {
            port,
            baseline,
            by_postmaster: HashMap::new(),
        }
    }

    fn sample(&mut self) {
        if let Some((pid, ticks)) = self.port.and_then(postgres_ticks) {
            let seen = self.by_postmaster.entry(pid).or_default();
            *seen = (*seen).max(ticks);
        }
    }

    fn ticks(&self) -> u64 {
        self.by_postmaster
            .values()
            .sum::<u64>()
            .saturating_sub(self.baseline)
    }
}

/// One running worker process.
struct Worker {
    name: String,
    child: tokio::process::Child,
    pid: Option<u32>,
    log: PathBuf,
    /// CPU ticks last read while it ran.
    ticks: u64,
}

/// Everything the workers are started with.
struct Launch<'a> {
    options: &'a ScaleOut,
    env: Vec<(&'static str, String)>,
    folder: &'a Path,
    started: usize,
}

impl Launch<'_> {
    /// Starts worker `slot`'s next process: a new worker name, its own log.
    fn spawn(&mut self, slot: usize) -> Result<Worker, String> {
        self.started += 1;
        let name = format!("w{slot}-p{}", self.started);
        let config = self.folder.join(format!("worker-{slot}.toml"));
        let log = self.folder.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut command = tokio::process::Command::new(&self.options.relay_bin);
        command
            .env_clear()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .envs(self.env.iter().map(|(key, value)| (*key, value)))
            .env(crate::cli::serve::ENV_WORKER_ID, &name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.options.relay_bin.display()))?;
        Ok(Worker {
            name,
            pid: child.id(),
            child,
            log,
            ticks: 0,
        })
    }

    /// Writes worker `slot`'s configuration: its own data folder (labels), the shipping flow
    /// every few seconds, the other flows off.
    fn write_config(&self, slot: usize) -> Result<(), String> {
        let options = self.options;
        let dir = self.folder.join(format!("worker-{slot}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let toml = format!(
            "[state]\ndir = {dir:?}\n\n\
             [run]\nconcurrency = {concurrency}\n\
             # Nothing fails for good here: a step cut by a kill or the restart is retried.\n\
             max_attempts = 1000\n\n\
             [serve]\nshipping_every_secs = {every}\norders_every_secs = 0\n\
             stock_reconcile_every_secs = 0\nregister_brightpearl_webhooks = false\n\
             lease_secs = {lease}\nshutdown_grace_secs = 5\n",
            dir = dir.display().to_string(),
            concurrency = options.concurrency,
            every = options.shipping_every_secs,
            lease = options.lease_secs,
        );
        let config = self.folder.join(format!("worker-{slot}.toml"));
        std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))
    }
}

/// The end of a log file.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// How many distinct warning messages the report lists.
const LISTED_WARNINGS: usize = 25;

/// The WARN and ERROR lines of every worker log in `folder`, by message: the timestamp and
/// colours left out, digits shown as `#` (so one message about many orders is one entry).
fn log_warnings(folder: &Path) -> Vec<(String, usize)> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "log") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            let plain = strip_ansi(line);
            let Some(at) = plain.find(" WARN ").or_else(|| plain.find(" ERROR ")) else {
                continue;
            };
            let mut message = String::new();
            let mut in_number = false;
            for c in plain[at + 1..].chars().take(200) {
                if c.is_ascii_digit() {
                    if !in_number {
                        message.push('#');
                    }
                    in_number = true;
                } else {
                    message.push(c);
                    in_number = false;
                }
            }
            *counts.entry(message).or_default() += 1;
        }
    }
    let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(LISTED_WARNINGS);
    counts
}

/// `line` without ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Sends SIGTERM to `child`.
#[cfg(unix)]
#[allow(unsafe_code)] // one libc call; the workspace denies unsafe code elsewhere
fn terminate(child: &tokio::process::Child) {
    let Some(pid) = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()) else {
        return;
    };
    // SAFETY: kill(2) only sends a signal to the given process id; it touches no memory of
    // ours. The child is not reaped yet (we hold it), so the id is still its own.
    let _ = unsafe { libc::kill(pid, libc::SIGTERM) };
}

/// Stops every worker at the end: SIGTERM (running items finish, leases are released), then
/// SIGKILL for one that has not stopped within [`STOP_DEADLINE`].
async fn stop_all(workers: &mut [Worker]) {
    for worker in workers.iter() {
        #[cfg(unix)]
        terminate(&worker.child);
    }
    let deadline = tokio::time::Instant::now() + STOP_DEADLINE;
    for worker in workers.iter_mut() {
        if tokio::time::timeout_at(deadline, worker.child.wait())
            .await
            .is_err()
        {
            let _ = worker.child.start_kill();
            let _ = worker.child.wait().await;
        }
    }
}

/// Shipping entities by status in relay's state (`None` while the database does not answer).
async fn shipping_counts(store: &Arc<PgStore>) -> Option<BTreeMap<String, u64>> {
    let store = Arc::clone(store);
    let counts = tokio::task::spawn_blocking(move || store.counts())
        .await
        .ok()?
        .ok()?;
    Some(
        counts
            .into_iter()
            .filter(|(flow, _, _)| flow == "shipping")
            .map(|(_, status, n)| (status_name(status), n))
            .collect(),
    )
}

fn status_name(status: Status) -> String {
    format!("{status:?}").to_lowercase()
}

/// Which of the sandbox's orders qualify for shipping, as the flow's default mapping decides.
async fn qualifying_orders(
    http: &reqwest::Client,
    base: &str,
) -> Result<(Vec<String>, Vec<String>), String> {
    let statuses = crate::flows::shipping::ShippingConfig::default().order_statuses;
    let orders = admin_json(http, format!("{base}/_sandbox/norce/orders")).await?;
    let mut qualifying = Vec::new();
    let mut others = Vec::new();
    for order in orders.as_array().into_iter().flatten() {
        let number = order["orderNo"].as_str().unwrap_or_default().to_owned();
        let status = order["status"].as_str().unwrap_or_default();
        if statuses.iter().any(|s| s.eq_ignore_ascii_case(status)) {
            qualifying.push(number);
        } else {
            others.push(number);
        }
    }
    Ok((qualifying, others))
}

async fn admin_json(http: &reqwest::Client, url: String) -> Result<serde_json::Value, String> {
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    response.json().await.map_err(|e| format!("{url}: {e}"))
}

/// Counts what the platforms hold for each order into `report`.
async fn tally_platforms(
    sandbox: &Sandbox,
    http: &reqwest::Client,
    qualifying: &[String],
    others: &[String],
    report: &mut ScaleOutReport,
) -> Result<(), String> {
    let base = sandbox.base_url();
    let notes = admin_json(http, format!("{base}/_sandbox/norce/delivery-notes")).await?;
    let mut notes_by_order: HashMap<String, usize> = HashMap::new();
    for note in notes.as_array().into_iter().flatten() {
        if let Some(order_no) = note["orderNo"].as_str() {
            *notes_by_order.entry(order_no.to_owned()).or_default() += 1;
        }
    }
    let nshift = &sandbox.state().nshift;
    for order_no in qualifying {
        let count = OrderCount {
            order_no: order_no.clone(),
            shipments: nshift.shipment_count(order_no),
            notes: notes_by_order.get(order_no).copied().unwrap_or(0),
        };
        match (count.shipments, count.notes) {
            (1, 1) => report.exactly_once += 1,
            (s, n) if s > 1 || n > 1 => {
                report.doubled += 1;
                if report.doubled_orders.len() < LISTED_ORDERS {
                    report.doubled_orders.push(count);
                }
            }
            _ => {
                report.lost += 1;
                if report.lost_orders.len() < LISTED_ORDERS {
                    report.lost_orders.push(count);
                }
            }
        }
    }
    report.unexpected = others.iter().map(|n| nshift.shipment_count(n)).sum();
    Ok(())
}

/// The `share` quantile of sorted `values` (0 when empty).
fn quantile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * share).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// The points of the run (shipping entities done) at which the kills land, and which worker
/// slot each kills, and the point of the PostgreSQL restart: all from `seed`, between 10 % and
/// 85 % of the qualifying orders, so every one lands mid-run.
fn schedule(options: &ScaleOut, qualifying: usize) -> (Vec<(usize, usize)>, Option<usize>) {
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let point = |rng: &mut fastrand::Rng| {
        let share = 0.10 + 0.75 * rng.f64();
        ((qualifying as f64 * share) as usize).max(1)
    };
    let mut kills: Vec<(usize, usize)> = (0..options.kills)
        .map(|_| (point(&mut rng), rng.usize(..options.workers.max(1))))
        .collect();
    kills.sort_unstable();
    let restart = options.restart_postgres.then(|| point(&mut rng));
    (kills, restart)
}

/// Runs the scenario against `database` (a fresh, empty database).
pub async fn run(
    options: &ScaleOut,
    database: &mut dyn Database,
) -> Result<ScaleOutReport, String> {
    if options.workers == 0 {
        return Err("the scale-out scenario needs at least one worker".to_owned());
    }
    let mut sandbox_config = SandboxConfig {
        dataset: DatasetConfig {
            seed: options.seed,
            orders: options.orders,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    };
    if let Some(lifetime) = options.norce_token_lifetime_secs {
        sandbox_config.norce.token_lifetime_secs = lifetime;
    }
    if let Some(page_size) = options.norce_query_page_size {
        sandbox_config.norce.query_page_size = page_size;
    }
    let sandbox = Sandbox::start(sandbox_config)
        .await
        .map_err(|e| format!("sandbox: {e}"))?;
    let http = reqwest::Client::new();
    let base = sandbox.base_url();
    let (qualifying, others) = qualifying_orders(&http, &base).await?;
    if options.latency_ms > 0 {
        sandbox.state().faults.add(FaultRule {
            latency_ms: options.latency_ms,
            ..FaultRule::default()
        })?;
    }
    let token_lifetime_secs = sandbox.state().config.norce.token_lifetime_secs.max(1);

    let folder = std::env::temp_dir().join(format!(
        "relay-scale-out-{}-{}-w{}",
        std::process::id(),
        options.seed,
        options.workers
    ));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    let mut env = crate::embedded::env_pairs(&sandbox.credentials());
    env.push((crate::cli::ENV_DATABASE_URL, database.url()));
    env.push(("RUST_LOG", "relay=info".to_owned()));
    let mut launch = Launch {
        options,
        env,
        folder: &folder,
        started: 0,
    };

    let mut report = ScaleOutReport {
        workers: options.workers,
        orders: options.orders,
        qualifying: qualifying.len(),
        norce_token_lifetime_secs: token_lifetime_secs,
        latency_ms: options.latency_ms,
        concurrency: options.concurrency,
        lease_secs: options.lease_secs,
        seed: options.seed,
        ..ScaleOutReport::default()
    };
    let (kill_points, restart_point) = schedule(options, qualifying.len());
    let mut requests = RequestTally::default();
    requests.follow(&sandbox); // the admin reads above are not platform calls; nothing yet
    let jwt_before = sandbox.state().nshift.jwt_sessions_issued();

    // The run starts with the first worker.
    let mut postgres_cpu = PostgresCpu::new(&database.url());
    let cpu_before = cpu_sample();
    let started = Instant::now();
    let mut workers = Vec::with_capacity(options.workers);
    for slot in 0..options.workers {
        launch.write_config(slot)?;
        workers.push(launch.spawn(slot)?);
    }
    // Relay's state, as the workers see it (connecting also runs any migration they have not).
    let url = database.url();
    let store = tokio::task::spawn_blocking(move || PgStore::connect(&url))
        .await
        .map_err(|e| format!("the progress reader: {e}"))?
        .map_err(|e| format!("the progress reader cannot connect: {e}"))?;
    let store = Arc::new(store);

    let mut exited_ticks = 0u64;
    let mut probes: Vec<f64> = Vec::new();
    let mut done = 0usize;
    let mut next_kill = 0usize;
    let mut restarted = restart_point.is_none();
    let mut rounds = 0u64;
    loop {
        rounds += 1;
        if rounds.is_multiple_of(5) {
            postgres_cpu.sample();
        }
        // Workers that exited by themselves: what they said, and a new process in their slot.
        for (slot, worker) in workers.iter_mut().enumerate() {
            if let Some(pid) = worker.pid
                && let Some(ticks) = process_ticks(&pid.to_string())
            {
                worker.ticks = ticks;
            }
            if let Some(status) = worker.child.try_wait().map_err(|e| e.to_string())? {
                let at_secs = round(started.elapsed().as_secs_f64(), 2);
                report
                    .unexpected_exits
                    .push(UnexpectedExit::of(worker, status, at_secs));
                exited_ticks += worker.ticks;
                *worker = launch.spawn(slot)?;
            }
        }
        if report.unexpected_exits.len() > MAX_UNEXPECTED_EXITS {
            break;
        }
        requests.follow(&sandbox);
        let probe = Instant::now();
        if http
            .get(format!("{base}/_sandbox/health"))
            .send()
            .await
            .is_ok()
        {
            probes.push(probe.elapsed().as_secs_f64() * 1000.0);
        }
        if let Some(counts) = shipping_counts(&store).await {
            done = counts.get(&status_name(Status::Done)).copied().unwrap_or(0) as usize;
        }
        if done >= qualifying.len() {
            break;
        }
        if started.elapsed() >= options.timeout {
            report.timed_out = true;
            break;
        }
        while let Some(&(point, slot)) = kill_points.get(next_kill)
            && done >= point
        {
            next_kill += 1;
            let Some(worker) = workers.get_mut(slot) else {
                continue;
            };
            // SIGKILL: no chance to finish a step, release a lease or flush anything.
            worker.child.start_kill().map_err(|e| e.to_string())?;
            let _ = worker.child.wait().await;
            exited_ticks += worker.ticks;
            report.kills += 1;
            report.kill_log.push(Kill {
                worker: worker.name.clone(),
                at_secs: round(started.elapsed().as_secs_f64(), 2),
                done_at_kill: done,
            });
            *worker = launch.spawn(slot)?;
        }
        if !restarted && restart_point.is_some_and(|point| done >= point) {
            restarted = true;
            report.postgres_restart_at_secs = Some(round(started.elapsed().as_secs_f64(), 2));
            postgres_cpu.sample();
            let down = Instant::now();
            tokio::task::block_in_place(|| database.stop())
                .map_err(|e| format!("stopping PostgreSQL: {e}"))?;
            tokio::time::sleep(options.postgres_down).await;
            tokio::task::block_in_place(|| database.start())
                .map_err(|e| format!("starting PostgreSQL again: {e}"))?;
            report.postgres_down_ms = Some(down.elapsed().as_millis() as u64);
            report.postgres_restarts += 1;
        }
        tokio::time::sleep(POLL).await;
    }
    let elapsed = started.elapsed();
    let relay_ticks: u64 = exited_ticks + workers.iter().map(|w| w.ticks).sum::<u64>();
    postgres_cpu.sample();
    let cpu_after = cpu_sample();

    stop_all(&mut workers).await;
    requests.follow(&sandbox);

    // What relay's state says once every worker has stopped.
    if let Some(counts) = shipping_counts(&store).await {
        let done_name = status_name(Status::Done);
        report.relay_done = counts.get(&done_name).copied().unwrap_or(0);
        report.relay_not_done = counts
            .into_iter()
            .filter(|(s, _)| *s != done_name)
            .collect();
    }
    let reader = Arc::clone(&store);
    let (dead_letters, leases) =
        tokio::task::spawn_blocking(move || (reader.dead_letters(), reader.leases("entity/")))
            .await
            .map_err(|e| format!("the state reader: {e}"))?;
    report.dead_letters = dead_letters.map_err(|e| e.to_string())?.len();
    report.leases_left = leases.map_err(|e| e.to_string())?.len();

    tally_platforms(&sandbox, &http, &qualifying, &others, &mut report).await?;

    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    report.duration_secs = round(seconds, 2);
    report.orders_per_second = round(report.relay_done as f64 / seconds, 2);
    report.platform_calls = requests.total;
    report.calls_per_order = round(requests.total as f64 / qualifying.len().max(1) as f64, 2);
    report.calls_by_operation = requests.by_operation;
    report.norce_token_requests = requests.norce_token;
    report.norce_token_lifetimes = elapsed.as_secs().div_ceil(token_lifetime_secs).max(1);
    report.nshift_jwt_requests = sandbox.state().nshift.jwt_sessions_issued() - jwt_before;
    report.brightpearl_requests = requests.brightpearl;
    report.brightpearl_503 = requests.brightpearl_503;
    report.platform_429 = requests.too_many;
    report.request_log_gap = requests.gap;
    report.worker_processes = launch.started;
    report.sandbox_requests_per_second = round(requests.total as f64 / seconds, 1);
    probes.sort_by(f64::total_cmp);
    report.sandbox_probe_p50_ms = round(quantile(&probes, 0.5), 2);
    report.sandbox_probe_p99_ms = round(quantile(&probes, 0.99), 2);
    let total = cpu_after
        .machine_total
        .saturating_sub(cpu_before.machine_total)
        .max(1) as f64;
    let idle = cpu_after
        .machine_idle
        .saturating_sub(cpu_before.machine_idle) as f64;
    let busy = (total - idle) / total;
    let own = cpu_after.own.saturating_sub(cpu_before.own) as f64 / total;
    let relay = relay_ticks as f64 / total;
    let postgres = postgres_cpu.ticks() as f64 / total;
    report.cpu = CpuShares {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        machine_busy: round(busy, 3),
        sandbox: round(own, 3),
        relay_workers: round(relay, 3),
        postgres: round(postgres, 3),
        other: round((busy - own - relay - postgres).max(0.0), 3),
    };

    report.worker_log_warnings = log_warnings(&folder);
    drop(store);
    if report.passed() && !options.keep_logs {
        let _ = std::fs::remove_dir_all(&folder);
    } else {
        report.logs_kept = Some(folder.display().to_string());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_comes_from_the_url() {
        assert_eq!(port_of("postgres://postgres@127.0.0.1:5433/db"), Some(5433));
        assert_eq!(port_of("postgres://u:p@host:6000/db?x=1"), Some(6000));
        assert_eq!(port_of("postgres://host/db"), None);
    }

    #[test]
    fn the_schedule_is_repeatable_and_mid_run() {
        let options = ScaleOut::new("relay", 2000, 4, 5);
        let (kills, restart) = schedule(&options, 1600);
        assert_eq!(schedule(&options, 1600), (kills.clone(), restart));
        assert_eq!(kills.len(), 5);
        for (point, slot) in &kills {
            assert!((160..=1360).contains(point), "{point}");
            assert!(*slot < 4);
        }
        assert!(kills.windows(2).all(|pair| pair[0].0 <= pair[1].0));
        assert!(restart.is_some_and(|point| (160..=1360).contains(&point)));
    }

    #[test]
    fn warnings_are_counted_by_message() {
        let folder =
            std::env::temp_dir().join(format!("relay-scale-out-log-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("w0-p1.log"),
            "2026-01-01T00:00:00Z  INFO relay: started\n\
             2026-01-01T00:00:01Z  \u{1b}[33mWARN\u{1b}[0m relay: lease lost lease=entity/shipping/12\n\
             2026-01-01T00:00:02Z  WARN relay: lease lost lease=entity/shipping/345\n",
        )
        .unwrap();
        let warnings = log_warnings(&folder);
        std::fs::remove_dir_all(&folder).unwrap();
        assert_eq!(
            warnings,
            [(
                "WARN relay: lease lost lease=entity/shipping/#".to_owned(),
                2
            )]
        );
    }

    #[test]
    fn quantiles_of_sorted_values() {
        let values = [1.0, 2.0, 3.0, 4.0, 100.0];
        assert_eq!(quantile(&values, 0.5), 3.0);
        assert_eq!(quantile(&values, 0.99), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}
