//! The listener of `relay serve`: its own accept loop over hyper's HTTP/1 connections, so no
//! client can hold the process's connections or open files for long.
//!
//! | limit | key | default | beyond it |
//! | --- | --- | --- | --- |
//! | request head | `serve.header_read_timeout_secs` | 10 | the connection is closed |
//! | request body | `serve.body_read_timeout_secs` | 30 | `408`, `Connection: close` |
//! | idle keep-alive | `serve.idle_timeout_secs` | 60 | the connection is closed |
//! | open connections | `serve.max_connections` | 512, at most the open-files limit less a reserve | `503`, `Connection: close` |
//! | connections per client address | `serve.max_connections_per_ip` | 64 | `503`, `Connection: close` |
//!
//! The head deadline runs from the accept (first request) or from the first byte of the next
//! request on a kept-alive connection; the idle deadline from the end of the last response. The
//! body deadline covers the whole body from the end of the head, so a body trickled a byte at a
//! time ends too. Accept errors of the process (too many open files, no buffers) back off
//! briefly while the open connections keep being served; errors of one connection are skipped.
//!
//! At the stop the loop stops accepting (the listening socket is closed), idle connections close
//! at once and requests in progress finish; at the cancel (the end of the shutdown grace) the
//! connections still open are dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::ServeConfig;

/// File descriptors kept free for everything but incoming connections (the state database, the
/// platforms' connection pools, the embedded sandbox, refusals in progress), at most half the
/// limit.
const FD_RESERVE: usize = 128;
/// Refused connections that may linger at once (answer sent, the client's bytes drained so the
/// close is not a reset that could discard the answer); beyond, they are closed at once.
const LINGER_MAX: usize = 32;
/// How long a refused connection may linger.
const LINGER: Duration = Duration::from_secs(1);
/// Bytes of a refused connection's request read before closing.
const LINGER_READ_MAX: usize = 16 * 1024;
/// The first wait after an accept error of the process, doubled on each repeat up to
/// [`BACKOFF_MAX`]: short, so `/healthz` waits little once a descriptor is free again.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest wait between two accept attempts after errors.
const BACKOFF_MAX: Duration = Duration::from_millis(200);
/// At most one warning about refused connections per this period (an attack must not flood
/// the log).
const REFUSAL_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The limits of the listener, from `[serve]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The longest a request head may take.
    pub(crate) header_read_timeout: Duration,
    /// The longest a request body may take, from the end of its head.
    pub(crate) body_read_timeout: Duration,
    /// The longest a kept-alive connection may wait for its next request.
    pub(crate) idle_timeout: Duration,
    /// Open connections at most (after the open-files clamp).
    pub(crate) max_connections: usize,
    /// Open connections from one client address at most.
    pub(crate) max_connections_per_ip: usize,
}

impl Limits {
    /// The limits `config` sets (already validated), with `max_connections` lowered to what the
    /// process's open-files limit allows (a warning names the key).
    pub(crate) fn from_config(config: &ServeConfig) -> Self {
        let nofile = open_files_limit();
        let max_connections = effective_max_connections(config.max_connections, nofile);
        if max_connections < config.max_connections {
            tracing::warn!(
                configured = config.max_connections,
                effective = max_connections,
                open_files_limit = nofile.unwrap_or_default(),
                "serve.max_connections is more than the open-files limit allows (keeping {FD_RESERVE} descriptors or half for the rest of the process): using the lower value; raise the limit (ulimit -n, systemd LimitNOFILE) to allow more"
            );
        }
        Self {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            body_read_timeout: Duration::from_secs(config.body_read_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
        }
    }
}

/// `configured`, lowered so the connections leave [`FD_RESERVE`] descriptors (or half of them,
/// under a small limit) to the rest of the process; at least 1.
fn effective_max_connections(configured: usize, open_files_limit: Option<u64>) -> usize {
    let Some(limit) = open_files_limit else {
        return configured;
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let reserve = FD_RESERVE.min(limit / 2);
    configured.min(limit.saturating_sub(reserve).max(1))
}

/// The soft limit of open files of this process, if it has one.
#[cfg(unix)]
#[allow(unsafe_code)] // one libc call; the workspace denies unsafe code elsewhere
fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed, which outlives the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    #[allow(clippy::useless_conversion)] // `rlim_t` is not `u64` on every unix
    u64::try_from(limit.rlim_cur).ok()
}

/// The soft limit of open files of this process, if it has one.
#[cfg(not(unix))]
fn open_files_limit() -> Option<u64> {
    None
}

/// Where the listener takes connections from: the TCP listener, or a script in tests.
pub(crate) trait Acceptor: Send + 'static {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection and its peer's address.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;

    /// Writes `answer` without waiting, if the connection takes it at once (a refusal that
    /// cannot linger); nothing by default.
    fn answer_now(_io: &Self::Io, _answer: &[u8]) {}
}

impl Acceptor for TcpListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // No Nagle: an answer written in two parts must not wait for the sender's delayed ACK.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        Ok((stream, peer))
    }

    fn answer_now(io: &TcpStream, answer: &[u8]) {
        // A fresh socket's send buffer takes a few hundred bytes; a partial write is no worse
        // than the close that follows.
        let _ = io.try_write(answer);
    }
}

/// The listener's counters (shared with [`super::ServerHandle`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    open: AtomicUsize,
    max_connections: AtomicUsize,
    accepted: AtomicU64,
    refused_busy: AtomicU64,
    refused_per_ip: AtomicU64,
    header_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    idle_closed: AtomicU64,
    accept_errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// A snapshot.
    pub(crate) fn stats(&self) -> ConnectionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConnectionStats {
            open: self.open.load(Ordering::Relaxed),
            max_connections: self.max_connections.load(Ordering::Relaxed),
            accepted: get(&self.accepted),
            refused_busy: get(&self.refused_busy),
            refused_per_ip: get(&self.refused_per_ip),
            header_timeouts: get(&self.header_timeouts),
            body_timeouts: get(&self.body_timeouts),
            idle_closed: get(&self.idle_closed),
            accept_errors: get(&self.accept_errors),
        }
    }
}

/// What the listener of a running server has done so far ([`super::ServerHandle::connections`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: usize,
    /// The cap in force: `serve.max_connections`, or less under a low open-files limit.
    pub max_connections: usize,
    /// Connections accepted and served.
    pub accepted: u64,
    /// Connections refused with `503` because `max_connections` were open.
    pub refused_busy: u64,
    /// Connections refused with `503` because `serve.max_connections_per_ip` were open from the
    /// same address.
    pub refused_per_ip: u64,
    /// Connections closed because a request head did not arrive in time.
    pub header_timeouts: u64,
    /// Requests answered `408` because their body did not arrive in time.
    pub body_timeouts: u64,
    /// Kept-alive connections closed after `serve.idle_timeout_secs` without a request.
    pub idle_closed: u64,
    /// Accept errors of the process (such as too many open files), each followed by a back-off.
    pub accept_errors: u64,
}

/// Open connections per client address.
struct PerIp {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // A panic while holding this lock leaves a consistent map (single insert or remove).
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpGuard> {
        let mut open = self.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(IpGuard {
            table: self.clone(),
            ip,
        })
    }
}

/// One connection counted for its address until dropped.
struct IpGuard {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut open = self.table.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// An admitted connection's share of the caps, released however its task ends.
struct Admitted {
    _permit: OwnedSemaphorePermit,
    _ip: IpGuard,
    counters: Arc<Counters>,
}

impl Admitted {
    fn new(permit: OwnedSemaphorePermit, ip: IpGuard, counters: Arc<Counters>) -> Self {
        counters.open.fetch_add(1, Ordering::Relaxed);
        bump(&counters.accepted);
        Self {
            _permit: permit,
            _ip: ip,
            counters,
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Busy,
    PerIp,
}

impl Refusal {
    fn answer(self) -> &'static [u8] {
        static BUSY: LazyLock<Vec<u8>> = LazyLock::new(|| {
            plain_503("relay serve has too many open connections; try again shortly.\n")
        });
        static PER_IP: LazyLock<Vec<u8>> = LazyLock::new(|| {
            plain_503("too many open connections from your address; close some and try again.\n")
        });
        match self {
            Self::Busy => &BUSY,
            Self::PerIp => &PER_IP,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Busy => "serve.max_connections",
            Self::PerIp => "serve.max_connections_per_ip",
        }
    }
}

/// A minimal complete `503` answer that closes the connection.
fn plain_503(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers a refused connection `503` and closes it, lingering briefly when a slot is free.
fn refuse<A: Acceptor>(io: A::Io, refusal: Refusal, lingering: &Arc<Semaphore>) {
    let Ok(permit) = lingering.clone().try_acquire_owned() else {
        A::answer_now(&io, refusal.answer());
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut io = io;
        let _ = tokio::time::timeout(LINGER, async {
            io.write_all(refusal.answer()).await?;
            io.shutdown().await?;
            // Drain what the client sent, so the close is a FIN and not a reset that could
            // discard the answer before the client reads it.
            let mut sink = [0u8; 1024];
            let mut read = 0;
            while read < LINGER_READ_MAX {
                let n = io.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                read += n;
            }
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// Whether an accept error concerns only the connection being accepted (skipped at once), not
/// the process (backed off).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// What to do about an accept error of the process, for the log.
fn accept_error_hint(e: &io::Error) -> &'static str {
    #[cfg(unix)]
    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        return "too many open files: raise the process's limit (ulimit -n, systemd LimitNOFILE) or lower serve.max_connections";
    }
    let _ = e;
    "the system refuses new connections for now"
}

/// Waits between accept attempts after errors of the process.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn failed(&mut self, e: &io::Error, counters: &Counters) -> Duration {
        bump(&counters.accept_errors);
        if self.failures == 0 {
            tracing::warn!(error = %e, hint = accept_error_hint(e), "cannot accept connections; retrying shortly (open connections are still served)");
        } else {
            tracing::debug!(error = %e, failures = self.failures + 1, "accept failed again");
        }
        let wait = BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(8))
            .min(BACKOFF_MAX);
        self.failures = self.failures.saturating_add(1);
        wait
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failed_attempts = self.failures,
                "accepting connections again"
            );
            self.failures = 0;
        }
    }
}

/// Serves `app` on the connections of `acceptor` within `limits` until `stop`; then waits for
/// the open connections to finish, or drops them at `cancel`.
pub(crate) async fn serve<A: Acceptor>(
    mut acceptor: A,
    app: Router,
    limits: Limits,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
    mut cancel: watch::Receiver<bool>,
) {
    counters
        .max_connections
        .store(limits.max_connections, Ordering::Relaxed);
    let global = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerIp {
        limit: limits.max_connections_per_ip,
        open: Mutex::new(HashMap::new()),
    });
    let lingering = Arc::new(Semaphore::new(LINGER_MAX));
    let mut connections = JoinSet::new();
    let mut backoff = Backoff::default();
    let mut last_refusal_warning: Option<Instant> = None;
    /// What the accept loop woke up for.
    enum Event<Io> {
        Stop,
        Reaped(Result<(), tokio::task::JoinError>),
        Accepted(io::Result<(Io, SocketAddr)>),
    }
    loop {
        let event = tokio::select! {
            // Stop first, then reap finished connections (their permits are already free), then
            // accept.
            biased;
            _ = stop.wait_for(|stop| *stop) => Event::Stop,
            Some(joined) = connections.join_next(), if !connections.is_empty() => Event::Reaped(joined),
            accepted = acceptor.accept() => Event::Accepted(accepted),
        };
        let (io, peer) = match event {
            Event::Stop => break,
            Event::Reaped(joined) => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    tracing::error!(error = %e, "a connection's task panicked");
                }
                continue;
            }
            Event::Accepted(Ok(accepted)) => accepted,
            Event::Accepted(Err(e)) if is_connection_error(&e) => {
                tracing::debug!(error = %e, "a connection failed while being accepted");
                continue;
            }
            Event::Accepted(Err(e)) => {
                let wait = backoff.failed(&e, &counters);
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => break,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
        };
        backoff.succeeded();
        let admitted = per_ip
            .try_acquire(peer.ip().to_canonical())
            .ok_or(Refusal::PerIp)
            .and_then(|ip| match global.clone().try_acquire_owned() {
                Ok(permit) => Ok(Admitted::new(permit, ip, counters.clone())),
                Err(_) => Err(Refusal::Busy),
            });
        match admitted {
            Ok(admitted) => {
                connections.spawn(connection(
                    io,
                    peer,
                    app.clone(),
                    limits,
                    admitted,
                    (stop.clone(), cancel.clone()),
                    counters.clone(),
                ));
            }
            Err(refusal) => {
                bump(match refusal {
                    Refusal::Busy => &counters.refused_busy,
                    Refusal::PerIp => &counters.refused_per_ip,
                });
                tracing::debug!(%peer, key = refusal.key(), "connection refused with 503");
                if last_refusal_warning.is_none_or(|at| at.elapsed() >= REFUSAL_WARNING_EVERY) {
                    last_refusal_warning = Some(Instant::now());
                    let stats = counters.stats();
                    tracing::warn!(
                        key = refusal.key(),
                        open = stats.open,
                        refused_busy = stats.refused_busy,
                        refused_per_ip = stats.refused_per_ip,
                        "refusing connections with 503 at a connection cap; if this is legitimate load, raise the key"
                    );
                }
                refuse::<A>(io, refusal, &lingering);
            }
        }
    }
    // Closing the listening socket: new connections are refused by the system from now on.
    drop(acceptor);
    tracing::info!(
        open = connections.len(),
        "listener stopped accepting; idle connections close now, requests in progress finish"
    );
    loop {
        let cancelled = tokio::select! {
            biased;
            joined = connections.join_next() => {
                if joined.is_none() {
                    tracing::info!("listener stopped: every connection is closed");
                    return;
                }
                false
            }
            _ = cancel.wait_for(|cancel| *cancel) => true,
        };
        if cancelled {
            tracing::warn!(
                open = connections.len(),
                "closing the connections still open at the end of the shutdown grace"
            );
            connections.shutdown().await;
            return;
        }
    }
}

/// Which deadline a connection waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// The request head is being read.
    Header,
    /// Waiting for the next request.
    Idle,
}

/// Where a connection stands, for its deadlines.
struct Phase {
    /// Requests whose answer is not fully written.
    in_flight: usize,
    /// Whether a request head is awaited with bytes of it received (or the first one at all).
    head: bool,
    /// When the current wait (head or idle) began.
    since: Instant,
}

/// A connection's phase, updated by its reads and requests, watched by its task.
struct ConnState {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl ConnState {
    fn new() -> Self {
        Self {
            // The first request's head is timed from the accept: a client that connects and
            // sends nothing holds the connection no longer than one that sends slowly.
            phase: Mutex::new(Phase {
                in_flight: 0,
                head: true,
                since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The deadline in force, if any (none while a request is being handled: its body has its
    /// own deadline, and the handlers answer promptly).
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Expiry)> {
        let phase = self.lock();
        if phase.in_flight > 0 {
            None
        } else if phase.head {
            Some((phase.since + limits.header_read_timeout, Expiry::Header))
        } else {
            Some((phase.since + limits.idle_timeout, Expiry::Idle))
        }
    }

    /// Whether a request is being handled or answered.
    fn busy(&self) -> bool {
        self.lock().in_flight > 0
    }

    /// Bytes arrived: on an idle connection they start the next request's head.
    fn bytes_read(&self) {
        let mut phase = self.lock();
        if phase.in_flight == 0 && !phase.head {
            phase.head = true;
            phase.since = Instant::now();
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// A request head was read and the request is handed to the app.
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut phase = self.lock();
        phase.in_flight += 1;
        phase.head = false;
        drop(phase);
        self.changed.notify_one();
        InFlight(self.clone())
    }
}

/// A request until its answer is written (hyper drops the answer's body then) or abandoned.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut phase = self.0.lock();
        phase.in_flight = phase.in_flight.saturating_sub(1);
        if phase.in_flight == 0 {
            phase.head = false;
            phase.since = Instant::now();
        }
        drop(phase);
        self.0.changed.notify_one();
    }
}

/// The connection's I/O, telling its state when bytes arrive.
struct Tracked<I> {
    io: I,
    state: Arc<ConnState>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.bytes_read();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Sleeps until `at`; forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Serves one admitted connection: HTTP/1 with keep-alive, its head and idle deadlines, closed
/// gracefully at the stop and dropped at the cancel.
async fn connection<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    admitted: Admitted,
    (mut stop, mut cancel): (watch::Receiver<bool>, watch::Receiver<bool>),
    counters: Arc<Counters>,
) {
    let _admitted = admitted;
    let state = Arc::new(ConnState::new());
    let service = {
        let (state, counters) = (state.clone(), counters.clone());
        hyper::service::service_fn(move |request| {
            handle(
                app.clone(),
                request,
                state.clone(),
                limits.body_read_timeout,
                counters.clone(),
            )
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper's own head timeout also runs while a kept-alive connection waits, which would cut
    // the idle time to the head time: the deadlines below replace it.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let conn = builder.serve_connection(
        TokioIo::new(Tracked {
            io,
            state: state.clone(),
        }),
        service,
    );
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    loop {
        let deadline = state.deadline(&limits);
        tokio::select! {
            biased;
            _ = cancel.wait_for(|cancel| *cancel) => {
                tracing::debug!(%peer, "connection dropped: the shutdown grace ended");
                return;
            }
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = state.changed.notified() => {}
            _ = stop.wait_for(|stop| *stop), if !closing => {
                // Idle or a head still arriving: nothing to finish, closed at once (a sender
                // without an answer sends again). A request in progress: answered, then closed.
                if !state.busy() {
                    tracing::debug!(%peer, "connection closed at the stop");
                    return;
                }
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = sleep_until(deadline.map(|(at, _)| at)) => match deadline {
                Some((_, Expiry::Header)) => {
                    bump(&counters.header_timeouts);
                    tracing::debug!(%peer, "connection closed: the request head did not arrive within serve.header_read_timeout_secs");
                    return;
                }
                Some((_, Expiry::Idle)) if !closing => {
                    bump(&counters.idle_closed);
                    tracing::debug!(%peer, "connection closed: idle for serve.idle_timeout_secs");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                Some((_, Expiry::Idle)) | None => return,
            },
        }
    }
}

/// Hands one request to the app with its body under the body deadline; a body that missed it
/// is answered `408` and the connection closed.
async fn handle(
    mut app: Router,
    request: Request<Incoming>,
    state: Arc<ConnState>,
    body_timeout: Duration,
    counters: Arc<Counters>,
) -> Result<Response<TrackedBody>, Infallible> {
    use tower::Service as _;
    let in_flight = state.request_started();
    let timed_out = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Instant::now() + body_timeout,
            sleep: None,
            timed_out: timed_out.clone(),
        })
    });
    let ready =
        std::future::poll_fn(|cx| tower::Service::<Request<Body>>::poll_ready(&mut app, cx));
    let response = match ready.await {
        Ok(()) => match app.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(never) => match never {},
    };
    let response = if timed_out.load(Ordering::Acquire) {
        bump(&counters.body_timeouts);
        tracing::debug!(
            "request answered 408: its body did not arrive within serve.body_read_timeout_secs"
        );
        body_timeout_answer(body_timeout)
    } else {
        response
    };
    Ok(response.map(|body| TrackedBody {
        inner: body,
        _in_flight: in_flight,
    }))
}

/// `408` with `Connection: close` (the rest of the body may still be on its way).
fn body_timeout_answer(timeout: Duration) -> Response<Body> {
    let mut response = Response::new(Body::from(format!(
        "the request body did not arrive within {} s; send it faster or in one piece\n",
        timeout.as_secs()
    )));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// The request body did not arrive within the body deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within serve.body_read_timeout_secs")]
struct BodyTimeout;

/// A request body that fails once its deadline passes.
struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    /// Made on the first wait only: most requests never wait for their body.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.timed_out.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        // The deadline first: a body that keeps trickling must end too.
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// An answer's body, holding its request in flight until hyper has written and dropped it.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    //! On tokio's paused clock over in-memory connections: every deadline is exact and no test
    //! waits in real time.

    use super::*;
    use axum::routing::{get, post};
    use tokio::io::DuplexStream;
    use tokio::sync::mpsc;

    type Scripted = io::Result<(DuplexStream, SocketAddr)>;

    /// Connections (or accept errors) handed over by the test; counts the accept calls.
    struct Script {
        next: mpsc::UnboundedReceiver<Scripted>,
        calls: Arc<AtomicUsize>,
    }

    impl Acceptor for Script {
        type Io = DuplexStream;

        async fn accept(&mut self) -> Scripted {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.next.recv().await {
                Some(next) => next,
                None => std::future::pending().await,
            }
        }
    }

    struct Server {
        script: mpsc::UnboundedSender<Scripted>,
        calls: Arc<AtomicUsize>,
        counters: Arc<Counters>,
        stop: watch::Sender<bool>,
        cancel: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        fn connect(&self, ip: [u8; 4]) -> DuplexStream {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let peer = SocketAddr::from((ip, 40000));
            self.script.send(Ok((server, peer))).unwrap();
            client
        }
    }

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4,
            max_connections_per_ip: 2,
        }
    }

    fn app() -> Router {
        Router::new()
            .route("/", get(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "slow"
                }),
            )
            .route(
                "/echo",
                post(|body: Bytes| async move { format!("{} bytes", body.len()) }),
            )
    }

    fn server(limits: Limits) -> Server {
        let (script, next) = mpsc::unbounded_channel();
        let calls = Arc::new(AtomicUsize::new(0));
        let counters = Arc::new(Counters::default());
        let (stop, stop_rx) = watch::channel(false);
        let (cancel, cancel_rx) = watch::channel(false);
        let task = tokio::spawn(serve(
            Script {
                next,
                calls: calls.clone(),
            },
            app(),
            limits,
            counters.clone(),
            stop_rx,
            cancel_rx,
        ));
        Server {
            script,
            calls,
            counters,
            stop,
            cancel,
            task,
        }
    }

    /// Reads one answer: status and body (`Content-Length` bodies); `None` at end of stream
    /// before a full answer.
    async fn answer(io: &mut DuplexStream) -> Option<(u16, String)> {
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_string();
                let status = head.split(' ').nth(1)?.parse().ok()?;
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if raw.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + length]);
                    return Some((status, body.into_owned()));
                }
            }
            let n = io.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            raw.extend_from_slice(&buf[..n]);
        }
    }

    /// Whether the server closed the connection (end of stream or an error), reading past
    /// anything it sent.
    async fn closed(io: &mut DuplexStream) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    }

    async fn still_open_after(io: &mut DuplexStream, wait: Duration) -> bool {
        tokio::time::timeout(wait, closed(io)).await.is_err()
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_does_not_arrive_in_time_closes_the_connection() {
        let server = server(limits());
        let started = Instant::now();
        let mut io = server.connect([10, 0, 0, 1]);
        io.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // A byte every second does not extend the deadline: it runs from the accept.
        for _ in 0..9 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            io.write_all(b"X").await.unwrap();
        }
        assert!(still_open_after(&mut io, Duration::from_millis(900)).await);
        assert!(closed(&mut io).await);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert_eq!(server.counters.stats().header_timeouts, 1);
        assert_eq!(server.counters.stats().open, 0, "released");
    }

    #[tokio::test(start_paused = true)]
    async fn kept_alive_connections_close_after_the_idle_timeout_and_time_the_next_head() {
        let server = server(limits());
        let mut io = server.connect([10, 0, 0, 1]);
        io.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(answer(&mut io).await, Some((200, "ok".into())));
        // Idle: longer than the head timeout is fine.
        tokio::time::sleep(Duration::from_secs(30)).await;
        io.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(answer(&mut io).await, Some((200, "ok".into())));
        let idle_from = Instant::now();
        assert!(still_open_after(&mut io, Duration::from_secs(59)).await);
        assert!(closed(&mut io).await);
        assert_eq!(idle_from.elapsed(), Duration::from_secs(60));
        assert_eq!(server.counters.stats().idle_closed, 1);

        // The next request's first byte starts its head deadline.
        let mut io = server.connect([10, 0, 0, 1]);
        io.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(answer(&mut io).await, Some((200, "ok".into())));
        tokio::time::sleep(Duration::from_secs(20)).await;
        let head_from = Instant::now();
        io.write_all(b"GET / HTT").await.unwrap();
        assert!(closed(&mut io).await);
        assert_eq!(head_from.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_does_not_arrive_in_time_is_answered_408_and_closed() {
        let server = server(limits());
        let mut io = server.connect([10, 0, 0, 1]);
        let started = Instant::now();
        io.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        // Trickling does not extend it.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            io.write_all(b"x").await.unwrap();
        }
        let (status, body) = answer(&mut io).await.unwrap();
        assert_eq!(status, 408, "{body}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(closed(&mut io).await, "Connection: close");
        assert_eq!(server.counters.stats().body_timeouts, 1);

        // A body in time is served.
        let mut io = server.connect([10, 0, 0, 1]);
        io.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            .await
            .unwrap();
        assert_eq!(answer(&mut io).await, Some((200, "3 bytes".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn connections_beyond_the_caps_get_503_and_are_released_on_close() {
        let server = server(limits());
        let mut same_ip: Vec<DuplexStream> =
            (0..2).map(|_| server.connect([10, 0, 0, 1])).collect();
        let mut third = server.connect([10, 0, 0, 1]);
        let (status, body) = answer(&mut third).await.unwrap();
        assert_eq!(status, 503);
        assert!(body.contains("your address"), "{body}");
        assert!(closed(&mut third).await);
        // Others still get in, up to the global cap of 4.
        let mut others: Vec<DuplexStream> = [[10, 0, 0, 2], [10, 0, 0, 3]]
            .into_iter()
            .map(|ip| server.connect(ip))
            .collect();
        let mut fifth = server.connect([10, 0, 0, 4]);
        let (status, body) = answer(&mut fifth).await.unwrap();
        assert_eq!(status, 503);
        assert!(body.contains("too many open connections"), "{body}");
        for io in same_ip.iter_mut().chain(others.iter_mut()) {
            io.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            assert_eq!(answer(io).await, Some((200, "ok".into())));
        }
        let stats = server.counters.stats();
        assert_eq!((stats.refused_per_ip, stats.refused_busy), (1, 1));
        assert_eq!(stats.open, 4);
        // Closing (or timing out) frees the slots: every exit path releases its guards.
        drop(same_ip);
        drop(others);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(server.counters.stats().open, 0);
        let mut again = server.connect([10, 0, 0, 1]);
        again
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(answer(&mut again).await, Some((200, "ok".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn accept_errors_of_the_process_back_off_and_serving_goes_on() {
        let server = server(limits());
        let mut open = server.connect([10, 0, 0, 1]);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let started = Instant::now();
        const ERRORS: usize = 50;
        for _ in 0..ERRORS {
            server
                .script
                .send(Err(io::Error::from_raw_os_error(24)))
                .unwrap();
        }
        let mut after = server.connect([10, 0, 0, 2]);
        // An open connection is served meanwhile.
        open.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(answer(&mut open).await, Some((200, "ok".into())));
        after
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(answer(&mut after).await, Some((200, "ok".into())));
        let waited = started.elapsed();
        // No spinning: every error waited (5, 10, … ms, then 200 ms each), and not for long.
        assert!(
            waited >= Duration::from_millis(5 * ERRORS as u64),
            "{waited:?}"
        );
        assert!(waited <= BACKOFF_MAX * ERRORS as u32, "{waited:?}");
        assert_eq!(server.counters.stats().accept_errors, ERRORS as u64);
        assert!(server.calls.load(Ordering::SeqCst) <= ERRORS + 4);
        // Errors of one connection are skipped at once.
        server
            .script
            .send(Err(io::Error::from(io::ErrorKind::ConnectionAborted)))
            .unwrap();
        let mut next = server.connect([10, 0, 0, 3]);
        next.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(answer(&mut next).await, Some((200, "ok".into())));
        assert_eq!(server.counters.stats().accept_errors, ERRORS as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn the_stop_closes_idle_connections_and_lets_requests_finish_until_the_cancel() {
        let server = server(limits());
        let mut idle = server.connect([10, 0, 0, 1]);
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(answer(&mut idle).await, Some((200, "ok".into())));
        let mut busy = server.connect([10, 0, 0, 2]);
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut partial = server.connect([10, 0, 0, 3]);
        partial.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stopped_at = Instant::now();
        server.stop.send(true).unwrap();
        assert!(closed(&mut idle).await);
        // A head still arriving has nothing to finish: closed at once, not at its deadline.
        assert!(closed(&mut partial).await);
        assert_eq!(stopped_at.elapsed(), Duration::ZERO);
        let (status, body) = answer(&mut busy).await.unwrap();
        assert_eq!((status, body.as_str()), (200, "slow"));
        assert!(closed(&mut busy).await);
        tokio::time::timeout(Duration::from_secs(1), server.task)
            .await
            .expect("the listener ends once its connections are closed")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_cancel_drops_connections_still_busy() {
        let server = server(limits());
        let mut busy = server.connect([10, 0, 0, 2]);
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.stop.send(true).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.cancel.send(true).unwrap();
        let started = Instant::now();
        assert!(closed(&mut busy).await);
        assert!(started.elapsed() < Duration::from_secs(1));
        server.task.await.unwrap();
        assert_eq!(server.counters.stats().open, 0);
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_to_the_rest_of_the_process() {
        assert_eq!(effective_max_connections(512, None), 512);
        assert_eq!(effective_max_connections(512, Some(256)), 128);
        assert_eq!(effective_max_connections(512, Some(1024)), 512);
        assert_eq!(effective_max_connections(512, Some(600)), 472);
        assert_eq!(effective_max_connections(512, Some(1)), 1);
        assert_eq!(effective_max_connections(10, Some(u64::MAX)), 10);
    }

    #[test]
    fn refusals_are_complete_http_answers_that_close() {
        for refusal in [Refusal::Busy, Refusal::PerIp] {
            let text = String::from_utf8(refusal.answer().to_vec()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
            assert!(head.contains("connection: close"));
            assert!(head.contains(&format!("content-length: {}", body.len())));
            assert_eq!(body.lines().count(), 1);
        }
    }
}
