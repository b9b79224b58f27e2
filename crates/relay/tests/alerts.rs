//! Failure alerts (`[alerts]`): a dead letter, a burst of them, a flow failing passes in a row,
//! refused credentials, several workers on one store, retries, e-mail, and no secret anywhere.
//! The webhook is an axum server on 127.0.0.1, the SMTP server a small fake on 127.0.0.1; the
//! rate limits read a fake clock, retries wait on tokio's paused clock.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use chrono::{DateTime, Utc};
use client_core::Settings;
use relay::alerts::{AlertSecrets, AlertStats, Alerter, Clock};
use relay::config::RelayConfig;
use relay::flows::{
    FlowContext, FlowEntry, FlowError, FlowFuture, FlowReport, IngestFuture, Ingested,
};
use relay::serve::{self, SecretString, ServeSecrets};
use relay::state::{InboxItem, PgStore, SqliteStore, Store};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The secret part of the webhook URL (Slack's URLs are their own credential).
const HOOK_TOKEN: &str = "T0/B0/hook-s3cr3t-token";
/// The SMTP password.
const SMTP_PASSWORD: &str = "smtp-s3cr3t-pw";

/// A webhook receiver: every JSON body it got, and the statuses to answer (200 when none left).
#[derive(Clone, Default)]
struct Hook {
    bodies: Arc<Mutex<Vec<Value>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    arrived: Arc<tokio::sync::Notify>,
    url: String,
}

impl Hook {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook = Hook {
            url: format!(
                "http://{}/services/{HOOK_TOKEN}",
                listener.local_addr().unwrap()
            ),
            ..Hook::default()
        };
        let state = hook.clone();
        let app = axum::Router::new()
            .route("/services/{*rest}", post(receive))
            .with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        hook
    }

    /// Waits (without sleeping) until `n` bodies arrived.
    async fn wait_for(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(60), async {
            while self.bodies.lock().unwrap().len() < n {
                self.arrived.notified().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} webhook bodies: {:?}", self.bodies()));
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    fn answer_with(&self, statuses: &[u16]) {
        self.statuses.lock().unwrap().extend(statuses);
    }
}

async fn receive(State(hook): State<Hook>, body: String) -> axum::http::StatusCode {
    let value: Value = serde_json::from_str(&body).expect("the webhook body is JSON");
    hook.bodies.lock().unwrap().push(value);
    hook.arrived.notify_one();
    let status = hook.statuses.lock().unwrap().pop_front().unwrap_or(200);
    axum::http::StatusCode::from_u16(status).unwrap()
}

/// A wall clock the test moves.
#[derive(Clone, Default)]
struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    fn clock(&self) -> Clock {
        let secs = self.0.clone();
        Arc::new(move || {
            DateTime::<Utc>::from_timestamp(1_800_000_000 + secs.load(Ordering::SeqCst), 0).unwrap()
        })
    }

    fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

fn config() -> RelayConfig {
    let mut config = RelayConfig::default();
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    config.serve.public_url = Some("https://relay.example.com/".to_owned());
    config
}

fn webhook_secrets(hook: &Hook) -> AlertSecrets {
    AlertSecrets {
        webhook_url: Some(SecretString::from(hook.url.clone())),
        smtp_url: None,
    }
}

/// An alerter sending to `hook`, its delivery task running until the test ends.
fn alerter(store: Arc<dyn Store>, hook: &Hook, clock: &FakeClock) -> Alerter {
    alerter_with(store, &config(), &webhook_secrets(hook), clock)
}

fn alerter_with(
    store: Arc<dyn Store>,
    config: &RelayConfig,
    secrets: &AlertSecrets,
    clock: &FakeClock,
) -> Alerter {
    let alerter = Alerter::new(config, secrets, store, clock.clock())
        .unwrap()
        .expect("a channel is set");
    // The sender is leaked on purpose: delivery runs for the rest of the test.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    std::mem::forget(stop);
    alerter.spawn_delivery(shutdown).unwrap();
    alerter
}

/// Waits (without sleeping) until `n` messages were delivered or given up.
async fn delivered(alerter: &Alerter, n: u64) {
    let mut delivered = alerter.delivered();
    tokio::time::timeout(Duration::from_secs(60), delivered.wait_for(|d| *d >= n))
        .await
        .unwrap_or_else(|_| panic!("{n} deliveries: {:?}", alerter.stats()))
        .unwrap();
}

fn memory_store() -> Arc<dyn Store> {
    Arc::new(SqliteStore::in_memory().unwrap())
}

/// A context without platforms over `store`.
fn offline(store: Arc<dyn Store>) -> FlowContext {
    FlowContext::from_settings(
        &Settings::from_pairs(Vec::<(String, String)>::new()),
        store,
        Arc::new(config()),
    )
    .unwrap()
}

fn dead_letter(store: &dyn Store, flow: &str, id: &str, error: &str) {
    store.upsert_pending(flow, id, None).unwrap();
    store.dead_letter(flow, id, error).unwrap();
}

fn no_ingest<'a>(_: &'a FlowContext, _: &'a InboxItem) -> IngestFuture<'a> {
    Box::pin(async { Ok(Ingested::Nothing) })
}

fn nothing(_: &str) -> bool {
    false
}

fn idle_run(_: &FlowContext) -> FlowFuture<'_> {
    Box::pin(async {
        Ok(FlowReport {
            flow: "orders".into(),
            seen: 1,
            done: 1,
            ..FlowReport::default()
        })
    })
}

/// A flow `orders` as a trait object (what `after_pass` is told about).
fn orders_flow() -> FlowEntry {
    FlowEntry {
        name: "orders",
        entity_flows: &["orders"],
        run: idle_run,
        accepts: nothing,
        ingest: no_ingest,
        every: None,
    }
}

/// A shipping pass whose item 1001 is refused by nShift and dead-lettered (once).
fn dead_lettering_run(ctx: &FlowContext) -> FlowFuture<'_> {
    Box::pin(async move {
        if ctx.store.dead_letters_of("shipping", "1001")?.is_empty() {
            ctx.store.upsert_pending("shipping", "1001", None)?;
            ctx.store.dead_letter(
                "shipping",
                "1001",
                "nShift refused the booking: service 'PNX' unknown (map the delivery method in [shipping.services])",
            )?;
        }
        Ok::<_, FlowError>(FlowReport {
            flow: "shipping".into(),
            seen: 1,
            failed: 1,
            ..FlowReport::default()
        })
    })
}

#[tokio::test]
async fn a_dead_letter_in_serve_is_one_webhook_with_the_reference_hint_and_console_link() {
    let hook = Hook::start().await;
    let store = memory_store();
    let clock = FakeClock::default();
    let ctx = offline(store.clone());
    let alerter = Alerter::new(
        &config(),
        &webhook_secrets(&hook),
        store.clone(),
        clock.clock(),
    )
    .unwrap()
    .unwrap();
    let flow = FlowEntry {
        name: "shipping",
        entity_flows: &["shipping"],
        run: dead_lettering_run,
        accepts: nothing,
        ingest: no_ingest,
        // The first tick is at once: one pass at start.
        every: Some(Duration::from_secs(3600)),
    };
    let listener = serve::bind(&ctx.config.serve).await.unwrap();
    let handle = serve::start_with_alerts(
        ctx,
        ServeSecrets::default(),
        listener,
        vec![Arc::new(flow)],
        Some(alerter.clone()),
    )
    .await
    .unwrap();
    delivered(&alerter, 1).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let body = &bodies[0];
    assert_eq!(body["event"], "dead_letter");
    assert_eq!(body["incident"], "dead-letters/shipping");
    assert_eq!(body["flow"], "shipping");
    assert_eq!(body["reference"], "1001");
    assert_eq!(
        body["console_url"],
        "https://relay.example.com/console/entities/shipping/1001"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("service 'PNX' unknown")
    );
    let text = body["text"].as_str().unwrap();
    for part in [
        "shipping 1001 was dead-lettered",
        "Error: nShift refused the booking",
        "What to do: fix what the error names, then Retry",
        "relay replay 1",
        "Console: https://relay.example.com/console/entities/shipping/1001",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    // More passes and looks: nothing new, nothing sent again.
    alerter.check_dead_letters();
    // The operator resolves it: the queue is empty again, one recovery.
    store
        .resolve("shipping", "1001", "console:ops", "mapped PNX")
        .unwrap();
    alerter.check_dead_letters();
    delivered(&alerter, 2).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[1]["event"], "dead_letters_cleared");
    assert_eq!(bodies[1]["incident"], "dead-letters/shipping");
    assert_eq!(
        alerter.stats(),
        AlertStats {
            queued: 2,
            dropped: 0,
            sent: 2,
            failed: 0
        }
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_fifty_dead_letters_is_one_message_and_one_summary() {
    let hook = Hook::start().await;
    let store = memory_store();
    let clock = FakeClock::default();
    let alerter = alerter(store.clone(), &hook, &clock);
    for i in 0..50 {
        dead_letter(
            store.as_ref(),
            "shipping",
            &format!("{}", 2000 + i),
            "nShift: 400",
        );
        if i % 10 == 0 {
            // Passes end in between: the store is read as the storm goes on.
            alerter.check_dead_letters();
        }
    }
    alerter.check_dead_letters();
    delivered(&alerter, 1).await;
    clock.advance(600);
    alerter.check_dead_letters();
    assert_eq!(alerter.stats().queued, 1, "nothing more within the window");
    clock.advance(300);
    alerter.check_dead_letters();
    delivered(&alerter, 2).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["event"], "dead_letter");
    assert_eq!(bodies[0]["reference"], "2000");
    assert_eq!(bodies[1]["event"], "summary");
    assert_eq!(bodies[1]["count"], 49);
    let text = bodies[1]["text"].as_str().unwrap();
    assert!(text.contains("49 more items dead-lettered since"), "{text}");
    assert!(text.contains("shipping 49"), "{text}");
    assert!(text.contains("shipping 2001, shipping 2002"), "{text}");
    assert!(text.contains("and 39 more"), "{text}");
    assert_eq!(
        bodies[1]["console_url"],
        "https://relay.example.com/console/dead-letters"
    );
    // The next window is quiet: no second summary.
    clock.advance(900);
    alerter.check_dead_letters();
    assert_eq!(alerter.stats().queued, 2);
}

#[tokio::test]
async fn a_flow_failing_three_passes_in_a_row_alerts_once_then_recovers_once() {
    let hook = Hook::start().await;
    let store = memory_store();
    let clock = FakeClock::default();
    let alerter = alerter(store.clone(), &hook, &clock);
    let ctx = offline(store.clone());
    let flow = orders_flow();
    let failure = || FlowError::Config {
        setting: "orders.price_list_id".to_owned(),
        reason: "Brightpearl has no price list 99".to_owned(),
    };
    for _ in 0..2 {
        alerter.after_pass(&ctx, &flow, Err(&failure()));
        clock.advance(60);
    }
    assert_eq!(
        alerter.stats().queued,
        0,
        "two failures are not yet an incident"
    );
    alerter.after_pass(&ctx, &flow, Err(&failure()));
    clock.advance(60);
    alerter.after_pass(&ctx, &flow, Err(&failure()));
    clock.advance(60);
    let report = FlowReport {
        flow: "orders".into(),
        seen: 3,
        done: 3,
        ..FlowReport::default()
    };
    alerter.after_pass(&ctx, &flow, Ok(&report));
    alerter.after_pass(&ctx, &flow, Ok(&report));
    delivered(&alerter, 2).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["event"], "flow_failing");
    assert_eq!(bodies[0]["flow"], "orders");
    assert_eq!(bodies[0]["count"], 3);
    assert!(
        bodies[0]["error"]
            .as_str()
            .unwrap()
            .contains("orders.price_list_id")
    );
    assert!(
        bodies[0]["hint"]
            .as_str()
            .unwrap()
            .contains("relay config check")
    );
    assert_eq!(
        bodies[0]["console_url"],
        "https://relay.example.com/console"
    );
    assert_eq!(bodies[1]["event"], "flow_recovered");
    assert_eq!(bodies[1]["incident"], "flow/orders");
    assert_eq!(bodies[1]["count"], 4);
    assert_eq!(alerter.stats().queued, 2);
}

/// The sandbox refuses a wrong Norce client secret: the pass's error (no token) opens the
/// platform's incident once; calls that succeed with the right secret close it.
#[tokio::test]
async fn refused_credentials_alert_once_and_recover_when_a_token_is_had_again() {
    use norce_client::models::services::operations::ServicesApi as _;
    let hook = Hook::start().await;
    let sandbox = common::sandbox_with(sandbox::SandboxConfig::default()).await;
    let store = memory_store();
    let clock = FakeClock::default();
    let alerter = alerter(store.clone(), &hook, &clock);
    let norce_only = |secret: Option<&str>| {
        let mut pairs: Vec<(String, String)> = relay::embedded::env_pairs(&sandbox.credentials())
            .into_iter()
            .filter(|(name, _)| name.starts_with("NORCE_"))
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        if let Some(secret) = secret {
            for (name, value) in &mut pairs {
                if name == "NORCE_CLIENT_SECRET" {
                    *value = secret.to_owned();
                }
            }
        }
        FlowContext::from_settings(
            &Settings::from_pairs(pairs),
            store.clone(),
            Arc::new(config()),
        )
        .unwrap()
    };
    let wrong = norce_only(Some("wrong-secret"));
    let flow = orders_flow();
    let query = Default::default();
    for _ in 0..3 {
        let error = wrong
            .norce()
            .unwrap()
            .get_application(&query)
            .await
            .unwrap_err();
        assert_eq!(
            error.kind(),
            client_core::ErrorKind::Unauthorized,
            "{error}"
        );
        alerter.after_pass(&wrong, &flow, Err(&FlowError::Norce(error)));
    }
    delivered(&alerter, 1).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["event"], "platform_unauthorized");
    assert_eq!(bodies[0]["platform"], "Norce");
    assert_eq!(bodies[0]["incident"], "platform/norce");
    let text = bodies[0]["text"].as_str().unwrap();
    assert!(text.contains("no Norce token"), "{text}");
    assert!(
        text.contains("NORCE_CLIENT_SECRET"),
        "the hint names the setting: {text}"
    );
    assert!(!text.contains("wrong-secret"), "{text}");
    // The refusal is not a failing flow: three of them opened no flow incident.
    assert!(bodies.iter().all(|b| b["event"] != "flow_failing"));

    let right = norce_only(None);
    right
        .norce()
        .unwrap()
        .get_application(&query)
        .await
        .unwrap();
    alerter.check(&right);
    alerter.check(&right);
    delivered(&alerter, 2).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[1]["event"], "platform_recovered");
    assert_eq!(bodies[1]["incident"], "platform/norce");
}

/// The same, seen only in a client's health (a pass that stopped elsewhere, another flow's
/// call): the last call refused as unauthorized with no success after it.
#[tokio::test]
async fn a_health_record_of_refused_credentials_alerts_too() {
    use norce_client::models::services::operations::ServicesApi as _;
    let hook = Hook::start().await;
    let sandbox = common::sandbox_with(sandbox::SandboxConfig::default()).await;
    let store = memory_store();
    let clock = FakeClock::default();
    let alerter = alerter(store.clone(), &hook, &clock);
    let pairs: Vec<(String, String)> = relay::embedded::env_pairs(&sandbox.credentials())
        .into_iter()
        .filter(|(name, _)| name.starts_with("NORCE_"))
        .map(|(name, value)| {
            let value = if name == "NORCE_CLIENT_SECRET" {
                "wrong-secret".to_owned()
            } else {
                value
            };
            (name.to_owned(), value)
        })
        .collect();
    let ctx = FlowContext::from_settings(
        &Settings::from_pairs(pairs),
        store.clone(),
        Arc::new(config()),
    )
    .unwrap();
    alerter.check(&ctx);
    assert_eq!(alerter.stats().queued, 0, "no call yet: nothing to say");
    let _ = ctx
        .norce()
        .unwrap()
        .get_application(&Default::default())
        .await
        .unwrap_err();
    alerter.check(&ctx);
    alerter.check(&ctx);
    delivered(&alerter, 1).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["event"], "platform_unauthorized");
    assert!(
        bodies[0]["error"]
            .as_str()
            .unwrap()
            .contains("GetApplication was refused as unauthorized"),
        "{}",
        bodies[0]
    );
}

/// Two workers (two alerters, each its own connection to one SQLite file) see the same dead
/// letters and the same failing flow: one message each, not two.
#[tokio::test]
async fn two_workers_on_one_sqlite_file_send_one_message_per_incident() {
    let hook = Hook::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite");
    let first: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let second: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let clock = FakeClock::default();
    let a = alerter(first.clone(), &hook, &clock);
    let b = alerter(second.clone(), &hook, &clock);
    dead_letter(
        first.as_ref(),
        "orders",
        "N-77",
        "Brightpearl: unknown SKU X-1",
    );
    b.check_dead_letters();
    a.check_dead_letters();
    b.check_dead_letters();
    // A flow failing on both workers: three failures in a row in all.
    let flow = orders_flow();
    let failure = FlowError::Config {
        setting: "orders.tax_code".into(),
        reason: "unknown".into(),
    };
    a.after_pass(&offline(first.clone()), &flow, Err(&failure));
    b.after_pass(&offline(second.clone()), &flow, Err(&failure));
    a.after_pass(&offline(first.clone()), &flow, Err(&failure));
    b.after_pass(&offline(second.clone()), &flow, Err(&failure));
    let total = a.stats().queued + b.stats().queued;
    assert_eq!(total, 2, "a: {:?} b: {:?}", a.stats(), b.stats());
    hook.wait_for(2).await;
    let bodies = hook.bodies();
    let events: Vec<&str> = bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events.contains(&"dead_letter") && events.contains(&"flow_failing"),
        "{events:?}"
    );
}

/// Several workers on PostgreSQL, deciding at the same time while dead letters arrive: every
/// dead letter is counted exactly once (one message, the rest in one summary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_postgres_decide_each_dead_letter_once() {
    let Some(cluster) =
        pg_cluster::start_or_skip("workers_on_postgres_decide_each_dead_letter_once")
    else {
        return;
    };
    let url = cluster.create_database("alerts").expect("database");
    let hook = Hook::start().await;
    let clock = FakeClock::default();
    let stores: Vec<Arc<dyn Store>> = (0..3)
        .map(|_| Arc::new(PgStore::connect(&url).expect("database")) as Arc<dyn Store>)
        .collect();
    let alerters: Vec<Alerter> = stores
        .iter()
        .map(|store| alerter(store.clone(), &hook, &clock))
        .collect();
    let filer = stores[0].clone();
    let filing = tokio::task::spawn_blocking(move || {
        for i in 0..30 {
            dead_letter(filer.as_ref(), "shipping", &format!("P-{i}"), "nShift: 400");
        }
    });
    let looks: Vec<_> = alerters
        .iter()
        .map(|alerter| {
            let alerter = alerter.clone();
            tokio::task::spawn_blocking(move || {
                for _ in 0..20 {
                    alerter.check_dead_letters();
                }
            })
        })
        .collect();
    filing.await.unwrap();
    for look in looks {
        look.await.unwrap();
    }
    alerters[1].check_dead_letters();
    clock.advance(900);
    alerters[2].check_dead_letters();
    let queued: u64 = alerters.iter().map(|a| a.stats().queued).sum();
    assert_eq!(queued, 2, "one message and one summary");
    hook.wait_for(2).await;
    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[0]["event"], "dead_letter");
    assert_eq!(bodies[1]["event"], "summary");
    assert_eq!(
        bodies[1]["count"], 29,
        "every dead letter once: {}",
        bodies[1]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_webhook_is_retried_with_backoff_and_a_refusing_one_is_not() {
    let hook = Hook::start().await;
    let store = memory_store();
    let clock = FakeClock::default();
    let alerter = alerter(store.clone(), &hook, &clock);
    hook.answer_with(&[503, 500]);
    let started = tokio::time::Instant::now();
    dead_letter(store.as_ref(), "shipping", "1", "x");
    alerter.check_dead_letters();
    delivered(&alerter, 1).await;
    assert_eq!(hook.bodies().len(), 3, "two failures, then delivered");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "backoff 1 s then 2 s: {waited:?}"
    );
    assert_eq!((alerter.stats().sent, alerter.stats().failed), (1, 0));

    // A revoked webhook (404): one attempt, counted as failed.
    hook.answer_with(&[404]);
    dead_letter(store.as_ref(), "orders", "2", "y");
    alerter.check_dead_letters();
    delivered(&alerter, 2).await;
    assert_eq!(hook.bodies().len(), 4);
    assert_eq!((alerter.stats().sent, alerter.stats().failed), (1, 1));

    // Down for good: four attempts, then given up.
    hook.answer_with(&[503, 503, 503, 503]);
    dead_letter(store.as_ref(), "stock", "3", "z");
    alerter.check_dead_letters();
    delivered(&alerter, 3).await;
    assert_eq!(hook.bodies().len(), 8);
    assert_eq!((alerter.stats().sent, alerter.stats().failed), (1, 2));
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_blocking() {
    let hook = Hook::start().await;
    let store = memory_store();
    let clock = FakeClock::default();
    // No delivery task: the queue only fills.
    let alerter = Alerter::new(
        &config(),
        &webhook_secrets(&hook),
        store.clone(),
        clock.clock(),
    )
    .unwrap()
    .unwrap();
    let total = relay::alerts::QUEUE as u64 + 6;
    for i in 0..total {
        dead_letter(store.as_ref(), &format!("flow{i}"), "1", "x");
        alerter.check_dead_letters();
        // A new window each time, so that no limit holds a message back.
        clock.advance(900);
    }
    let stats = alerter.stats();
    assert_eq!(
        (stats.queued, stats.dropped),
        (relay::alerts::QUEUE as u64, 6)
    );
}

/// Everything logged on this thread (a test on tokio's current-thread runtime, and the tasks it
/// spawns) while the guard lives.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_webhook_logs_why_without_its_url() {
    let (logs, _guard) = capture_logs();
    // A port nobody listens on any more.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/services/{HOOK_TOKEN}");
    let secrets = AlertSecrets {
        webhook_url: Some(SecretString::from(url)),
        smtp_url: None,
    };
    let store = memory_store();
    let clock = FakeClock::default();
    let alerter = alerter_with(store.clone(), &config(), &secrets, &clock);
    dead_letter(store.as_ref(), "shipping", "1", "x");
    alerter.check_dead_letters();
    delivered(&alerter, 1).await;
    assert_eq!((alerter.stats().sent, alerter.stats().failed), (0, 1));
    let logs = logs.text();
    assert!(logs.contains("alert not delivered: giving up"), "{logs}");
    assert!(
        logs.to_lowercase().contains("connect"),
        "the cause is told: {logs}"
    );
    assert!(
        !logs.contains(HOOK_TOKEN) && !logs.contains(&format!(":{port}/")),
        "{logs}"
    );
}

/// A fake SMTP server on 127.0.0.1: enough of the protocol for one message per connection
/// (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT); what it received, per connection.
async fn fake_smtp() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sessions = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sessions = sessions.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut log = String::new();
                let _ = write.write_all(b"220 fake ESMTP\r\n").await;
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    log.push_str(&line);
                    log.push('\n');
                    let reply: &[u8] = if in_data {
                        if line == "." {
                            in_data = false;
                            b"250 queued\r\n"
                        } else {
                            continue;
                        }
                    } else {
                        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
                        match verb.as_str() {
                            "EHLO" => b"250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
                            "AUTH" => b"235 2.7.0 accepted\r\n",
                            "DATA" => {
                                in_data = true;
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => {
                                let _ = write.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        }
                    };
                    let _ = write.write_all(reply).await;
                }
                sessions.lock().unwrap().push(log);
            });
        }
    });
    (port, received)
}

#[tokio::test]
async fn email_alerts_go_through_smtp_and_no_secret_is_in_any_message_log_or_debug() {
    let (logs, _guard) = capture_logs();

    let hook = Hook::start().await;
    let (port, sessions) = fake_smtp().await;
    let smtp_url = format!("smtp://alerts:{SMTP_PASSWORD}@127.0.0.1:{port}");
    let mut config = config();
    config.alerts.email_from = Some("Relay <relay@example.com>".to_owned());
    config.alerts.email_to = vec!["ops@example.com".to_owned()];
    let secrets = AlertSecrets {
        webhook_url: Some(SecretString::from(hook.url.clone())),
        smtp_url: Some(SecretString::from(smtp_url.clone())),
    };
    let store = memory_store();
    let clock = FakeClock::default();
    let alerter = alerter_with(store.clone(), &config, &secrets, &clock);
    // An error text that carries the secrets (a leak elsewhere) is scrubbed before it leaves.
    let leaky = format!("posted to {} with {SMTP_PASSWORD}", hook.url);
    dead_letter(
        store.as_ref(),
        "shipping",
        "1001\r\nBcc: x@evil.test",
        &leaky,
    );
    alerter.check_dead_letters();
    // A refusing webhook logs its failure (without the URL).
    hook.answer_with(&[404]);
    dead_letter(store.as_ref(), "orders", "N-1", "refused");
    alerter.check_dead_letters();
    delivered(&alerter, 2).await;

    let sessions = sessions.lock().unwrap().clone();
    assert_eq!(
        sessions.len(),
        2,
        "one SMTP session per message: {sessions:?}"
    );
    let first = &sessions[0];
    assert!(first.contains("MAIL FROM:<relay@example.com>"), "{first}");
    assert!(first.contains("RCPT TO:<ops@example.com>"), "{first}");
    assert!(
        first.contains(
            "Subject: relay: shipping 1001\\u{d}\\u{a}Bcc: x@evil.test was dead-lettered"
        ),
        "the reference is escaped, not a header: {first}"
    );
    assert!(!first.contains("\nBcc:"), "{first}");
    assert!(
        first.contains("What to do: fix what the error names"),
        "{first}"
    );
    // The body is quoted-printable (long lines): its soft line breaks joined again.
    let body = first.replace("=\n", "").replace("=3D", "=");
    assert!(
        body.contains("(or `relay replay 1`); Mark resolved"),
        "{body}"
    );
    assert!(
        body.contains("Console: https://relay.example.com/console/entities/shipping/1001%0D%0ABcc%3A%20x%40evil.test"),
        "{body}"
    );
    assert!(
        first.contains("posted to [redacted] with [redacted]"),
        "{first}"
    );
    // The password reaches the SMTP server only inside AUTH.
    let auth = first
        .lines()
        .find(|l| l.starts_with("AUTH"))
        .expect("AUTH sent");
    let data: Vec<&str> = first.lines().filter(|l| !l.starts_with("AUTH")).collect();
    assert!(!data.join("\n").contains(SMTP_PASSWORD), "{first}");
    assert!(auth.starts_with("AUTH PLAIN "), "{auth}");

    let bodies = hook.bodies();
    assert_eq!(bodies.len(), 2);
    let logs = logs.text();
    assert!(logs.contains("alert not delivered: refused"), "{logs}");
    let debug = format!("{alerter:?} {secrets:?}");
    for shown in [
        serde_json::to_string(&bodies).unwrap(),
        logs,
        debug,
        format!("{:?}", alerter.stats()),
    ] {
        for secret in [HOOK_TOKEN, SMTP_PASSWORD, "hook-s3cr3t"] {
            assert!(!shown.contains(secret), "{secret} shown in: {shown}");
        }
    }
}

#[test]
fn the_secrets_come_from_the_variables_or_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook");
    std::fs::write(&file, "https://hooks.example.com/services/T/B/from-file\n").unwrap();
    let settings = Settings::from_pairs([
        ("RELAY_ALERT_WEBHOOK_URL_FILE", file.to_str().unwrap()),
        (
            "RELAY_ALERT_SMTP_URL",
            "smtps://u:p4ssw0rd@smtp.example.com",
        ),
    ]);
    let config = RelayConfig::default();
    let secrets = AlertSecrets::from_settings(&config.alerts, &settings).unwrap();
    use relay::serve::ExposeSecret as _;
    assert_eq!(
        secrets.webhook_url.as_ref().unwrap().expose_secret(),
        "https://hooks.example.com/services/T/B/from-file"
    );
    assert!(!format!("{secrets:?}").contains("p4ssw0rd"));
    // The SMTP URL without email_to: e-mail off (a warning), the webhook on.
    let store = memory_store();
    let alerter = Alerter::from_settings(&config, &settings, store.clone()).unwrap();
    assert!(alerter.is_some());
    // Nothing set: alerts off.
    let none = Settings::from_pairs(Vec::<(String, String)>::new());
    assert!(
        Alerter::from_settings(&config, &none, store.clone())
            .unwrap()
            .is_none()
    );
    // An empty file is an error naming the variable.
    std::fs::write(&file, "  \n").unwrap();
    let err = AlertSecrets::from_settings(&config.alerts, &settings)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("RELAY_ALERT_WEBHOOK_URL_FILE") && err.contains("empty"),
        "{err}"
    );
    // A plain-http webhook elsewhere is refused, naming the variable, never the value.
    let settings = Settings::from_pairs([(
        "RELAY_ALERT_WEBHOOK_URL",
        "http://hooks.example.com/services/T/B/s3cr3t",
    )]);
    let err = Alerter::from_settings(&config, &settings, store)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("RELAY_ALERT_WEBHOOK_URL") && !err.contains("s3cr3t"),
        "{err}"
    );
}
