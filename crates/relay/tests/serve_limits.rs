//! `relay serve`'s listener limits, its bounded shutdown, and `--sandbox` keeping the operator's
//! settings. In-process servers on 127.0.0.1:0 where the behaviour is ours; the `relay` binary
//! where the process matters (its open-files limit, its signals, its printed credentials).
//!
//! Timing: the deadlines themselves are tested on tokio's paused clock in
//! `src/serve/listener.rs`. Here they act on real sockets and processes, which the paused clock
//! cannot drive, so the configured timeouts are short (1–5 s) and every wait is bounded.

mod common;

use common::basic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay::config::RelayConfig;
use relay::flows::{FlowContext, FlowError, FlowReport};
use relay::serve::{
    self, FlowEntry, FlowFuture, IngestFuture, ServeSecrets, ServerHandle, ShutdownOutcome,
};
use relay::state::{InboxItem, SqliteStore, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

// ---------------------------------------------------------------------------------------------
// Helpers

/// One HTTP/1.1 request on a fresh connection (`Connection: close`): status and body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse_answer(&raw)
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)))
}

/// Status and body of a raw answer (the body as sent; these tests only look for words in it).
fn parse_answer(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Reads until the server closes the connection (or it errors); what was read.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return raw,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

fn config() -> RelayConfig {
    let mut config = RelayConfig::default();
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    config.serve.run_after_ingest_ms = 0;
    config.serve.inbox_sweep_secs = 0;
    config.serve.register_brightpearl_webhooks = false;
    config
}

fn secrets() -> ServeSecrets {
    ServeSecrets {
        order_receiver_password: Some(serve::SecretString::from("pw")),
        norce_webhook_secret: Some(serve::SecretString::from("ns")),
        brightpearl_webhook_secret: Some(serve::SecretString::from("bs")),
        ..ServeSecrets::default()
    }
}

async fn start(config: RelayConfig, flows: Vec<FlowEntry>) -> (ServerHandle, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let ctx = FlowContext {
        store: store.clone(),
        norce: None,
        nshift: None,
        brightpearl: None,
        config: Arc::new(config.clone()),
        stopping: Default::default(),
        coordination: Default::default(),
        pass_origin: Default::default(),
    };
    let listener = serve::bind(&config.serve).await.unwrap();
    let flows = flows
        .into_iter()
        .map(|f| Arc::new(f) as Arc<dyn relay::flows::Flow>)
        .collect();
    let handle = serve::start_with_flows(ctx, secrets(), listener, flows)
        .await
        .unwrap();
    (handle, store)
}

/// A temp folder of this test, empty.
fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("relay-serve-limits-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `relay serve` child process and the lines of its stderr so far.
struct Relay {
    child: tokio::process::Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Relay {
    /// Starts `program args…` with only `env` (no platform: the embedded sandbox).
    fn spawn(program: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "relay=info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("relay starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().unwrap();
        let lines = stderr.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(line);
            }
        });
        Self { child, stderr }
    }

    fn binary(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(env!("CARGO_BIN_EXE_relay"), args, env)
    }

    fn text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// The first stderr line containing `needle`, waiting up to 60 s.
    async fn line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} on stderr:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The listening address it printed.
    async fn addr(&self) -> SocketAddr {
        let line = self.line("relay serve: listening on http://").await;
        let rest = line.split("listening on http://").nth(1).unwrap();
        rest.split(' ').next().unwrap().parse().unwrap()
    }

    /// Sends SIGTERM and waits for the exit; its code and how long it took.
    async fn terminate(mut self) -> (Option<i32>, Duration, String) {
        let pid = self.child.id().unwrap();
        let started = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("relay serve stops after SIGTERM")
            .unwrap();
        // Let the stderr reader take the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (exit.code(), started.elapsed(), self.text())
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("relay.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `[serve]` for a quiet `relay serve` on a free port: no schedule, no registration.
const QUIET_SERVE: &str = "listen = \"127.0.0.1:0\"\nshipping_every_secs = 0\norders_every_secs = 0\nstock_reconcile_every_secs = 0\nregister_brightpearl_webhooks = false\n";

// ---------------------------------------------------------------------------------------------
// (a) Slow-header connections under a low open-files limit

/// What became of one attacking connection.
#[derive(Debug)]
struct Attack {
    /// It got a 503.
    refused: bool,
    /// Seconds from its connect to its close, if the server closed it.
    closed_after: Option<f64>,
}

/// Connects from 127.0.0.2 and sends a request head a header line at a time, slowly, until the
/// server closes the connection or `give_up` passes.
async fn slow_headers(addr: SocketAddr, give_up: Duration) -> Attack {
    let started = Instant::now();
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let Ok(mut stream) = socket.connect(addr).await else {
        return Attack {
            refused: false,
            closed_after: Some(0.0),
        };
    };
    let _ = stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await;
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(n) if n > 0 => raw.extend_from_slice(&buf[..n]),
                _ => break,
            },
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                if started.elapsed() >= give_up {
                    return Attack { refused: false, closed_after: None };
                }
                if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    break;
                }
            }
        }
    }
    Attack {
        refused: parse_answer(&raw).is_some_and(|(status, _)| status == 503),
        closed_after: Some(started.elapsed().as_secs_f64()),
    }
}

/// Defect 1: 300 connections sending their headers slowly, without credentials, made `/healthz`
/// unreachable on a process with 256 open files, and nothing ever closed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_header_connections_do_not_take_healthz_down_under_256_open_files() {
    const ATTACKERS: usize = 300;
    const HEADER_TIMEOUT: u64 = 5;
    let dir = temp_dir("flood");
    let config = write_config(
        &dir,
        &format!(
            "[state]\ndir = {:?}\n\n[serve]\n{QUIET_SERVE}header_read_timeout_secs = {HEADER_TIMEOUT}\n",
            dir.join("state").display().to_string()
        ),
    );
    let relay = Relay::spawn(
        "sh",
        &[
            "-c",
            "ulimit -n 256 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_relay"),
            "serve",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    let addr = relay.addr().await;
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").await.0, 200);

    let give_up = Duration::from_secs(HEADER_TIMEOUT + 10);
    let attack: Vec<_> = (0..ATTACKERS)
        .map(|_| tokio::spawn(slow_headers(addr, give_up)))
        .collect();
    // While the attack holds what it can: /healthz from 127.0.0.1 answers, promptly, each time.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..10 {
        let probe = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            request(addr, "GET", "/healthz", &[], b""),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "/healthz did not answer within 5 s during the attack:\n{}",
                relay.text()
            )
        });
        assert_eq!(answer.0, 200, "{}", answer.1);
        assert!(
            probe.elapsed() < Duration::from_secs(4),
            "{:?}",
            probe.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut outcomes = Vec::new();
    for task in attack {
        outcomes.push(task.await.unwrap());
    }
    let refused = outcomes.iter().filter(|a| a.refused).count();
    let closed_early = outcomes
        .iter()
        .filter(|a| !a.refused && a.closed_after.is_some_and(|s| s < 2.0))
        .count();
    let held: Vec<f64> = outcomes
        .iter()
        .filter(|a| !a.refused)
        .filter_map(|a| a.closed_after)
        .filter(|s| *s >= 2.0)
        .collect();
    let never_closed = outcomes.iter().filter(|a| a.closed_after.is_none()).count();
    // 64 from one address at most (serve.max_connections_per_ip); the rest are refused with
    // 503 (or closed at once when the refusals that linger are busy).
    assert!(
        refused + closed_early >= ATTACKERS - 64,
        "refused {refused}, closed early {closed_early}: {outcomes:?}"
    );
    assert!(refused > 0, "the refusals answer 503");
    assert!(held.len() <= 64, "{} held", held.len());
    // And the held ones are closed at the header timeout, not kept for ever.
    assert_eq!(never_closed, 0, "every connection is closed");
    assert!(
        held.iter().all(|s| *s <= (HEADER_TIMEOUT + 3) as f64),
        "closed at the header timeout: {held:?}"
    );
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").await.0, 200);
    let (code, _, _) = relay.terminate().await;
    assert_eq!(code, Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// (b), (c) Header and body timeouts

#[tokio::test]
async fn half_a_request_head_is_closed_after_the_header_timeout() {
    let mut config = config();
    // Real time on a real socket: 1 s keeps the test short.
    config.serve.header_read_timeout_secs = 1;
    let (handle, _) = start(config, Vec::new()).await;
    let mut stream = TcpStream::connect(handle.local_addr()).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /norce/order-receiver HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_until_closed(&mut stream))
        .await
        .expect("the server closes the connection");
    let waited = started.elapsed();
    assert!(answer.is_empty(), "{answer:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert_eq!(handle.connections().header_timeouts, 1);
    assert_eq!(handle.connections().open, 0);
    // A whole request in time is served.
    assert_eq!(
        request(handle.local_addr(), "GET", "/healthz", &[], b"")
            .await
            .0,
        200
    );
    assert_eq!(handle.shutdown().await, ShutdownOutcome::Clean);
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408_after_the_body_timeout() {
    let mut config = config();
    // Real time on a real socket: 1 s keeps the test short.
    config.serve.body_read_timeout_secs = 1;
    let (handle, store) = start(config, Vec::new()).await;
    let mut stream = TcpStream::connect(handle.local_addr()).await.unwrap();
    let head = format!(
        "POST /norce/order-receiver HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"ClientOrderRef\":",
        basic("norce", "pw")
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let raw = tokio::time::timeout(Duration::from_secs(5), read_until_closed(&mut stream))
        .await
        .expect("answered and closed");
    let waited = started.elapsed();
    let (status, body) = parse_answer(&raw).expect("an answer");
    assert_eq!(status, 408, "{body}");
    assert!(
        String::from_utf8_lossy(&raw)
            .to_ascii_lowercase()
            .contains("connection: close")
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    assert_eq!(handle.connections().body_timeouts, 1);
    assert_eq!(
        store.inbox_len().unwrap(),
        0,
        "nothing half-received is stored"
    );
    // The same request sent whole is taken.
    let (status, body) = request(
        handle.local_addr(),
        "POST",
        "/norce/order-receiver",
        &[
            ("Authorization", &basic("norce", "pw")),
            ("Content-Type", "application/json"),
        ],
        br#"{"ClientOrderRef":"B-1"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(handle.shutdown().await, ShutdownOutcome::Clean);
}

#[tokio::test]
async fn connections_over_the_per_address_cap_get_503_and_are_closed() {
    let mut config = config();
    config.serve.max_connections_per_ip = 2;
    let (handle, _) = start(config, Vec::new()).await;
    let addr = handle.local_addr();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut third = TcpStream::connect(addr).await.unwrap();
    let raw = tokio::time::timeout(Duration::from_secs(5), read_until_closed(&mut third))
        .await
        .expect("answered and closed");
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(
        text.starts_with("http/1.1 503 service unavailable\r\n"),
        "{text}"
    );
    assert!(text.contains("connection: close"), "{text}");
    // Another address is not affected (127.0.0.2 is loopback too).
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(addr).await.unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let raw = read_until_closed(&mut other).await;
    assert_eq!(parse_answer(&raw).map(|a| a.0), Some(200));
    assert_eq!(handle.connections().refused_per_ip, 1);
    // Closing frees the slots.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.connections().open > 0 {
        assert!(Instant::now() < deadline, "{:?}", handle.connections());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(request(addr, "GET", "/healthz", &[], b"").await.0, 200);
    assert_eq!(handle.shutdown().await, ShutdownOutcome::Clean);
}

#[test]
fn listener_settings_are_checked_naming_the_key() {
    let error = |text: &str| {
        RelayConfig::parse(text, "relay.toml")
            .unwrap_err()
            .to_string()
    };
    for (text, key, hint) in [
        (
            "header_read_timeout_secs = 0",
            "serve.header_read_timeout_secs",
            "from 1 to 3600",
        ),
        (
            "body_read_timeout_secs = 0",
            "serve.body_read_timeout_secs",
            "from 1 to 3600",
        ),
        (
            "idle_timeout_secs = 99999",
            "serve.idle_timeout_secs",
            "from 1 to 3600",
        ),
        ("max_connections = 0", "serve.max_connections", "from 1"),
        (
            "max_connections_per_ip = 0",
            "serve.max_connections_per_ip",
            "from 1",
        ),
        (
            "max_connections = 10\nmax_connections_per_ip = 11",
            "serve.max_connections_per_ip",
            "serve.max_connections (10)",
        ),
        (
            "shutdown_grace_secs = 7200",
            "serve.shutdown_grace_secs",
            "at most 3600",
        ),
        ("max_conections = 5", "max_conections", ""),
        ("idle_timeout_secs = \"60\"", "idle_timeout_secs", ""),
    ] {
        let err = error(&format!("[serve]\n{text}\n"));
        assert!(err.contains(key) && err.contains(hint), "{text}: {err}");
    }
    let defaults = RelayConfig::parse("", "t").unwrap().serve;
    assert_eq!(
        (
            defaults.header_read_timeout_secs,
            defaults.body_read_timeout_secs,
            defaults.idle_timeout_secs,
            defaults.max_connections,
            defaults.max_connections_per_ip,
            defaults.shutdown_grace_secs
        ),
        (10, 30, 60, 512, 64, 25)
    );
    let zero_grace = RelayConfig::parse("[serve]\nshutdown_grace_secs = 0\n", "t").unwrap();
    assert_eq!(zero_grace.serve.shutdown_grace_secs, 0, "0 cancels at once");
}

// ---------------------------------------------------------------------------------------------
// (d) Bounded shutdown, in process

fn never_ingests<'a>(_: &'a FlowContext, _: &'a InboxItem) -> IngestFuture<'a> {
    Box::pin(async { Ok(relay::flows::Ingested::Nothing) })
}

fn takes_nothing(_: &str) -> bool {
    false
}

fn flow(name: &'static str, run: relay::serve::RunFn) -> FlowEntry {
    FlowEntry {
        name,
        entity_flows: &[],
        run,
        accepts: takes_nothing,
        ingest: never_ingests,
        // Ticks at start: the pass begins at once.
        every: Some(Duration::from_secs(3600)),
    }
}

fn report(flow: &str) -> FlowReport {
    FlowReport {
        flow: flow.into(),
        ..FlowReport::default()
    }
}

/// A pass that never ends (a platform that never answers).
fn endless(ctx: &FlowContext) -> FlowFuture<'_> {
    Box::pin(async move {
        ctx.store.set_cursor("endless", "started")?;
        std::future::pending::<()>().await;
        Ok::<_, FlowError>(report("endless"))
    })
}

/// A pass that ends 300 ms after it started.
fn short(ctx: &FlowContext) -> FlowFuture<'_> {
    Box::pin(async move {
        ctx.store.set_cursor("short", "started")?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        ctx.store.set_cursor("short", "finished")?;
        Ok::<_, FlowError>(report("short"))
    })
}

/// A pass that blocks its thread (outside any await point) for 6 s.
fn blocking(ctx: &FlowContext) -> FlowFuture<'_> {
    Box::pin(async move {
        ctx.store.set_cursor("blocking", "started")?;
        std::thread::sleep(Duration::from_secs(6));
        Ok::<_, FlowError>(report("blocking"))
    })
}

async fn wait_for_cursor(store: &SqliteStore, flow: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.cursor(flow).unwrap().as_deref() != Some(value) {
        assert!(
            Instant::now() < deadline,
            "cursor {flow} never became {value}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_pass_still_running_at_the_end_of_the_grace_is_cancelled() {
    let (handle, store) = start(config(), vec![flow("endless", endless)]).await;
    wait_for_cursor(&store, "endless", "started").await;
    let started = Instant::now();
    let outcome = handle.shutdown_within(Duration::from_secs(1)).await;
    let took = started.elapsed();
    assert_eq!(outcome, ShutdownOutcome::Cancelled);
    assert!(
        // Upper bounds are loose: a loaded CI machine is slow, and what matters is that the
        // stop is bounded at all.
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_pass_that_finishes_within_the_grace_is_waited_for_and_idle_connections_do_not_hold_the_stop()
 {
    let (handle, store) = start(config(), vec![flow("short", short)]).await;
    wait_for_cursor(&store, "short", "started").await;
    // A kept-alive connection after a request, and one that sent nothing yet.
    let mut kept = TcpStream::connect(handle.local_addr()).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut silent = TcpStream::connect(handle.local_addr()).await.unwrap();
    let started = Instant::now();
    let outcome = handle.shutdown_within(Duration::from_secs(20)).await;
    assert_eq!(outcome, ShutdownOutcome::Clean);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "not the 20 s grace: {:?}",
        started.elapsed()
    );
    assert_eq!(store.cursor("short").unwrap().as_deref(), Some("finished"));
    for stream in [&mut kept, &mut silent] {
        let closed = tokio::time::timeout(Duration::from_secs(1), read_until_closed(stream)).await;
        assert!(closed.is_ok(), "closed at the stop");
    }
}

// Multi-threaded, like `relay serve`'s runtime: the passes are tasks on the server's runtime
// (no thread of their own), so a pass that blocks its worker thread needs another worker for
// the shutdown to go on beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_blocked_outside_an_await_point_is_left_behind_within_a_bound() {
    let (handle, store) = start(config(), vec![flow("blocking", blocking)]).await;
    wait_for_cursor(&store, "blocking", "started").await;
    let started = Instant::now();
    let outcome = handle.shutdown_within(Duration::ZERO).await;
    let took = started.elapsed();
    assert_eq!(outcome, ShutdownOutcome::Abandoned);
    // The grace (0) and the wait after the cancel (2 s): bounded even so.
    assert!(took < Duration::from_secs(8), "{took:?}");
}

// ---------------------------------------------------------------------------------------------
// (d) SIGTERM and a second signal on the relay binary, exactly once after restarts

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_within_the_grace_and_every_order_ships_exactly_once_after_restarts() {
    const GRACE_SECS: u64 = 2;
    let options = relay::scenario::GracefulStops {
        relay_bin: env!("CARGO_BIN_EXE_relay").into(),
        orders: 50,
        stops: 2,
        twice: false,
        grace_secs: GRACE_SECS,
        // Longer than the grace for the steps an item still has after the stop (six calls),
        // so the grace ends a running pass.
        latency_ms: 400,
        seed: 21,
        faults: true,
        max_runs: 20,
    };
    let report = relay::scenario::run_graceful_stops(&options)
        .await
        .expect("scenario completes");
    eprintln!("{report:#?}");
    assert!(report.platforms.qualifying >= 25, "{report:?}");
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.stops.len(), 2, "{report:#?}");
    for stop in report.stops.iter().chain([&report.final_stop]) {
        // Handled (exit code 0, not killed by the signal), and within the grace plus a margin
        // for the process to end (loaded 2-core CI machine).
        assert_eq!(stop.exit_code, Some(0), "{report:#?}");
        assert!(
            stop.after_first_ms <= GRACE_SECS * 1000 + 5000,
            "{stop:?}: {report:#?}"
        );
    }
    // The stops landed mid-pass: the grace ended a running pass at least once.
    assert!(
        report
            .stages
            .iter()
            .any(|line| line.contains("flow pass cancelled at the end of the shutdown grace")),
        "{:#?}",
        report.stages
    );
    assert!(
        report
            .stages
            .iter()
            .any(|line| line.contains("SIGTERM received")),
        "{:#?}",
        report.stages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once_and_nothing_is_lost_or_doubled() {
    // A grace far longer than the test: only the second signal explains a quick stop.
    const GRACE_SECS: u64 = 120;
    let options = relay::scenario::GracefulStops {
        relay_bin: env!("CARGO_BIN_EXE_relay").into(),
        orders: 50,
        stops: 2,
        twice: true,
        grace_secs: GRACE_SECS,
        latency_ms: 150,
        seed: 22,
        faults: true,
        max_runs: 20,
    };
    let report = relay::scenario::run_graceful_stops(&options)
        .await
        .expect("scenario completes");
    eprintln!("{report:#?}");
    assert!(report.passed(), "{report:#?}");
    assert_eq!(report.stops.len(), 2, "{report:#?}");
    for stop in &report.stops {
        let second = stop
            .after_second_ms
            .unwrap_or_else(|| panic!("the first signal alone stopped it: {report:#?}"));
        assert!(second <= 1500, "{stop:?}");
        // 128 + SIGINT: ended by the handler of the second signal.
        assert_eq!(stop.exit_code, Some(130), "{report:#?}");
    }
    assert!(
        report
            .stages
            .iter()
            .any(|line| line.contains("second stop signal")),
        "{:#?}",
        report.stages
    );
}

// ---------------------------------------------------------------------------------------------
// (e) --sandbox keeps the configured state folder and secrets, or prints what it generates

/// `relay serve --sandbox` with `[state] dir` and the three `RELAY_*` secrets set uses them: the
/// receivers take the configured credentials, nothing is generated or printed, and a restart
/// uses the same state file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_mode_keeps_the_configured_state_dir_and_secrets() {
    let dir = temp_dir("sandbox-configured");
    let state_dir = dir.join("state");
    let config = write_config(
        &dir,
        &format!(
            "[state]\ndir = {:?}\n\n[serve]\n{QUIET_SERVE}",
            state_dir.display().to_string()
        ),
    );
    let env = [
        ("RELAY_ORDER_RECEIVER_PASSWORD", "configured-pw"),
        ("RELAY_NORCE_WEBHOOK_SECRET", "configured-norce"),
        ("RELAY_BRIGHTPEARL_WEBHOOK_SECRET", "configured-bp"),
    ];
    let args = ["serve", "--sandbox", "--config", config.to_str().unwrap()];
    let relay = Relay::binary(&args, &env);
    let addr = relay.addr().await;
    let listening = relay.line("listening on").await;
    assert!(
        listening.contains(&format!("state in {}.", state_dir.display())),
        "{listening}"
    );
    relay.line("the state folder is `[state] dir`").await;
    let order = |password: &'static str, reference: &'static str| {
        let auth = basic("norce", password);
        async move {
            request(
                addr,
                "POST",
                "/norce/order-receiver",
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                format!("{{\"ClientOrderRef\":\"{reference}\"}}").as_bytes(),
            )
            .await
        }
    };
    assert_eq!(order("configured-pw", "SANDBOX-E-1").await.0, 200);
    assert_eq!(order("wrong", "SANDBOX-E-2").await.0, 401);
    let event = |secret: &'static str| async move {
        request(
            addr,
            "POST",
            "/norce/events/OrderConfirmedEvent",
            &[("X-Relay-Secret", secret), ("Content-Type", "application/json")],
            br#"{"ClientId": 1000, "ApplicationId": 1234, "OrderId": 5, "OrderNo": "5", "ClientOrderRef": "900009", "Source": "WEB"}"#,
        )
        .await
        .0
    };
    assert!(
        matches!(event("configured-norce").await, 200..=299),
        "the configured Norce secret"
    );
    assert_eq!(event("wrong").await, 401);
    let (code, _, stderr) = relay.terminate().await;
    assert_eq!(code, Some(0), "{stderr}");
    for secret in ["configured-pw", "configured-norce", "configured-bp"] {
        assert!(
            !stderr.contains(secret),
            "a configured secret is never printed:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("generated receiver credentials"),
        "{stderr}"
    );
    assert!(
        state_dir.join("state.sqlite").exists(),
        "the state is in the configured folder"
    );

    // A restart resumes from the same state: the order received before is there.
    let relay = Relay::binary(&args, &env);
    let listening = relay.line("listening on").await;
    assert!(
        listening.contains(&format!("state in {}", state_dir.display())),
        "{listening}"
    );
    let (code, _, stderr) = relay.terminate().await;
    assert_eq!(code, Some(0), "{stderr}");
    let store = SqliteStore::open_in(&state_dir).unwrap();
    let known = store
        .list(None, None)
        .unwrap()
        .iter()
        .any(|record| record.source_id.contains("SANDBOX-E-1"))
        || store
            .inbox_pending(100)
            .unwrap()
            .iter()
            .any(|item| item.key == "SANDBOX-E-1");
    assert!(
        known,
        "the first run's order is in the state the restart used"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without configured secrets, `relay serve --sandbox` generates them and prints them once,
/// labelled with their variables; a secret that is configured is used and not printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_mode_prints_the_credentials_it_generates() {
    let dir = temp_dir("sandbox-generated");
    let config = write_config(&dir, &format!("[serve]\n{QUIET_SERVE}"));
    let relay = Relay::binary(
        &["serve", "--sandbox", "--config", config.to_str().unwrap()],
        &[("RELAY_NORCE_WEBHOOK_SECRET", "given-norce-secret")],
    );
    let addr = relay.addr().await;
    let text = relay.text();
    assert_eq!(
        text.matches("generated receiver credentials").count(),
        1,
        "printed once:\n{text}"
    );
    let value = |variable: &str| -> Option<String> {
        text.lines()
            .find_map(|line| line.trim_start().strip_prefix(&format!("{variable}=")))
            .map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
    };
    let password = value("RELAY_ORDER_RECEIVER_PASSWORD").expect("the password is printed");
    assert!(password.len() >= 16, "{password}");
    // Generated too, so printed: the operator needs it to call the receiver by hand.
    let brightpearl = value("RELAY_BRIGHTPEARL_WEBHOOK_SECRET").expect("printed");
    assert!(brightpearl.len() >= 16, "{text}");
    assert!(
        value("RELAY_NORCE_WEBHOOK_SECRET").is_none(),
        "configured, not generated:\n{text}"
    );
    assert!(!text.contains("given-norce-secret"), "{text}");
    // The printed password is the one the receiver takes.
    let push = |password: String| async move {
        request(
            addr,
            "POST",
            "/norce/order-receiver",
            &[
                ("Authorization", &basic("norce", &password)),
                ("Content-Type", "application/json"),
            ],
            br#"{"ClientOrderRef":"SANDBOX-G-1"}"#,
        )
        .await
        .0
    };
    assert_eq!(push(password).await, 200);
    assert_eq!(push("not-it".into()).await, 401);
    let listening = relay.line("listening on").await;
    let (code, _, stderr) = relay.terminate().await;
    assert_eq!(code, Some(0), "{stderr}");
    // Without `[state] dir`, a fresh folder, as before; remove it.
    let fresh = listening
        .split("state in ")
        .nth(1)
        .map(|rest| rest.trim_end_matches(". Ctrl-C stops."))
        .map(PathBuf::from)
        .expect("the state folder is printed");
    assert!(fresh.starts_with(std::env::temp_dir()), "{listening}");
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_dir_all(&dir);
}
