//! `relay serve` in-process: the receivers on 127.0.0.1:0 over an in-memory store, a plain
//! HTTP/1.1 client over a TCP socket, and waits on the server's counters (no sleeps).

mod common;

use common::basic;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use relay::config::RelayConfig;
use relay::flows::{FlowContext, FlowError, FlowReport};
use relay::serve::{
    self, FlowEntry, FlowFuture, IngestFuture, SecretString, ServeSecrets, ServerHandle,
};
use relay::state::{
    DeadLetter, EntityRecord, EntityUpdate, InboxItem, InboxPut, Lease, SharedValue, SqliteStore,
    StateError, Status, Store,
};
use sandbox::SandboxConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const USER: &str = "norce";
const PASSWORD: &str = "order-pw-1";
const NORCE_SECRET: &str = "norce-secret-1";
const BP_SECRET: &str = "bp-secret-1";

/// A store whose inbox writes fail while `fail` is set (the "disk full" case).
struct FlakyStore {
    inner: SqliteStore,
    fail: AtomicBool,
}

impl Store for FlakyStore {
    fn upsert_pending(
        &self,
        flow: &str,
        source_id: &str,
        payload: Option<&str>,
    ) -> Result<EntityRecord, StateError> {
        self.inner.upsert_pending(flow, source_id, payload)
    }
    fn get(&self, flow: &str, source_id: &str) -> Result<Option<EntityRecord>, StateError> {
        self.inner.get(flow, source_id)
    }
    fn update(
        &self,
        flow: &str,
        source_id: &str,
        update: &EntityUpdate,
    ) -> Result<EntityRecord, StateError> {
        self.inner.update(flow, source_id, update)
    }
    fn record_failure(
        &self,
        flow: &str,
        source_id: &str,
        error: &str,
    ) -> Result<EntityRecord, StateError> {
        self.inner.record_failure(flow, source_id, error)
    }
    fn list(
        &self,
        flow: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<EntityRecord>, StateError> {
        self.inner.list(flow, status)
    }
    fn list_after(
        &self,
        flow: &str,
        status: Option<Status>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EntityRecord>, StateError> {
        self.inner.list_after(flow, status, after, limit)
    }
    fn counts(&self) -> Result<Vec<(String, Status, u64)>, StateError> {
        self.inner.counts()
    }
    fn set_alias(&self, flow: &str, alias: &str, source_id: &str) -> Result<(), StateError> {
        self.inner.set_alias(flow, alias, source_id)
    }
    fn find_alias(&self, flow: &str, alias: &str) -> Result<Option<String>, StateError> {
        self.inner.find_alias(flow, alias)
    }
    fn cursor(&self, flow: &str) -> Result<Option<String>, StateError> {
        self.inner.cursor(flow)
    }
    fn set_cursor(&self, flow: &str, value: &str) -> Result<(), StateError> {
        self.inner.set_cursor(flow, value)
    }
    fn inbox_put(&self, source: &str, key: &str, body: &str) -> Result<InboxPut, StateError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StateError::DataDir {
                path: "test".into(),
                source: std::io::Error::other("disk full"),
            });
        }
        self.inner.inbox_put(source, key, body)
    }
    fn inbox_pending(&self, limit: usize) -> Result<Vec<InboxItem>, StateError> {
        self.inner.inbox_pending(limit)
    }
    fn inbox_done(&self, id: i64) -> Result<(), StateError> {
        self.inner.inbox_done(id)
    }
    fn dead_letter(
        &self,
        flow: &str,
        source_id: &str,
        error: &str,
    ) -> Result<DeadLetter, StateError> {
        self.inner.dead_letter(flow, source_id, error)
    }
    fn dead_letters(&self) -> Result<Vec<DeadLetter>, StateError> {
        self.inner.dead_letters()
    }
    fn requeue(&self, dead_letter_id: i64) -> Result<Option<EntityRecord>, StateError> {
        self.inner.requeue(dead_letter_id)
    }
    fn size(&self) -> Result<relay::state::StateSize, StateError> {
        self.inner.size()
    }
    fn lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StateError> {
        self.inner.lease(name, holder, ttl)
    }
    fn release(&self, name: &str, holder: &str) -> Result<(), StateError> {
        self.inner.release(name, holder)
    }
    fn leases(&self, prefix: &str) -> Result<Vec<Lease>, StateError> {
        self.inner.leases(prefix)
    }
    fn shared_get(&self, name: &str) -> Result<Option<SharedValue>, StateError> {
        self.inner.shared_get(name)
    }
    fn shared_swap(
        &self,
        name: &str,
        expected: Option<&str>,
        value: &SharedValue,
    ) -> Result<bool, StateError> {
        self.inner.shared_swap(name, expected, value)
    }
    fn shared_put(&self, name: &str, value: &SharedValue) -> Result<(), StateError> {
        self.inner.shared_put(name, value)
    }
    fn rate_reserve(
        &self,
        key: &str,
        period: Duration,
        burst: u32,
    ) -> Result<Duration, StateError> {
        self.inner.rate_reserve(key, period, burst)
    }
    fn rate_pause(
        &self,
        key: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StateError> {
        self.inner.rate_pause(key, until)
    }
    fn rate_paused_until(
        &self,
        key: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StateError> {
        self.inner.rate_paused_until(key)
    }
}

fn flaky() -> Arc<FlakyStore> {
    Arc::new(FlakyStore {
        inner: SqliteStore::in_memory().unwrap(),
        fail: AtomicBool::new(false),
    })
}

fn secrets() -> ServeSecrets {
    ServeSecrets {
        order_receiver_password: Some(SecretString::from(PASSWORD)),
        norce_webhook_secret: Some(SecretString::from(NORCE_SECRET)),
        brightpearl_webhook_secret: Some(SecretString::from(BP_SECRET)),
        ..ServeSecrets::default()
    }
}

fn config() -> RelayConfig {
    let mut config = RelayConfig::default();
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    config.serve.body_limit_bytes = 2048;
    config.serve.run_after_ingest_ms = 0;
    config.serve.inbox_sweep_secs = 0;
    config
}

fn context(store: Arc<dyn Store>, config: RelayConfig) -> FlowContext {
    FlowContext {
        store,
        norce: None,
        nshift: None,
        brightpearl: None,
        config: Arc::new(config),
        stopping: Default::default(),
        coordination: Default::default(),
        pass_origin: Default::default(),
    }
}

// A test flow: takes Norce order pushes, records an `orders` entity per push, and a pass marks
// every pending one done.
fn test_accepts(source: &str) -> bool {
    source == serve::SOURCE_NORCE_ORDER
}

fn test_ingest<'a>(ctx: &'a FlowContext, item: &'a InboxItem) -> IngestFuture<'a> {
    Box::pin(async move {
        ctx.store
            .upsert_pending("orders", &item.key, Some(&item.body))?;
        Ok(relay::flows::Ingested::Work)
    })
}

fn test_run(ctx: &FlowContext) -> FlowFuture<'_> {
    Box::pin(async move {
        let mut report = FlowReport {
            flow: "orders".into(),
            ..FlowReport::default()
        };
        for record in ctx.store.list(Some("orders"), Some(Status::Pending))? {
            ctx.store.update(
                "orders",
                &record.source_id,
                &EntityUpdate {
                    status: Some(Status::Done),
                    ..Default::default()
                },
            )?;
            report.seen += 1;
            report.booked += 1;
            report.done += 1;
        }
        Ok::<_, FlowError>(report)
    })
}

fn test_flows() -> Vec<FlowEntry> {
    vec![FlowEntry {
        name: "orders",
        entity_flows: &["orders"],
        run: test_run,
        accepts: test_accepts,
        ingest: test_ingest,
        every: None,
    }]
}

/// A flow that takes Norce order pushes but finds no work in them; its pass records that it ran.
fn idle_flow() -> FlowEntry {
    fn nothing<'a>(_: &'a FlowContext, _: &'a InboxItem) -> IngestFuture<'a> {
        Box::pin(async { Ok(relay::flows::Ingested::Nothing) })
    }
    fn ran(ctx: &FlowContext) -> FlowFuture<'_> {
        Box::pin(async move {
            ctx.store.set_cursor("idle", "ran")?;
            Ok::<_, FlowError>(FlowReport {
                flow: "idle".into(),
                ..FlowReport::default()
            })
        })
    }
    FlowEntry {
        name: "idle",
        entity_flows: &[],
        run: ran,
        accepts: test_accepts,
        ingest: nothing,
        every: None,
    }
}

async fn start(
    store: Arc<dyn Store>,
    config: RelayConfig,
    secrets: ServeSecrets,
    flows: Vec<FlowEntry>,
) -> ServerHandle {
    let listener = serve::bind(&config.serve).await.unwrap();
    // The functions-as-fields flows become trait objects, like the registry's.
    let flows = flows
        .into_iter()
        .map(|f| Arc::new(f) as Arc<dyn relay::flows::Flow>)
        .collect();
    serve::start_with_flows(context(store, config), secrets, listener, flows)
        .await
        .unwrap()
}

/// A server without flows: the inbox keeps what arrives.
async fn receivers_only(store: Arc<dyn Store>) -> ServerHandle {
    start(store, config(), secrets(), Vec::new()).await
}

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && *v == "chunked");
    if !chunked {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    // The senders' content type unless a test sets its own.
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    if chunked {
        for chunk in body.chunks(100) {
            let _ = stream
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await;
            let _ = stream.write_all(chunk).await;
            let _ = stream.write_all(b"\r\n").await;
        }
        let _ = stream.write_all(b"0\r\n\r\n").await;
    } else {
        let _ = stream.write_all(body).await;
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        text = &rest[n + 2..];
    }
    out
}

fn order_body(client_order_ref: &str) -> Vec<u8> {
    json!({
        "ClientOrderRef": client_order_ref,
        "CurrencyCode": "SEK",
        "Items": [{"LineNo": 1, "PartNo": "SKU-00007", "Quantity": 2}]
    })
    .to_string()
    .into_bytes()
}

async fn push_order(handle: &ServerHandle, auth: Option<&str>, body: &[u8]) -> Reply {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    request(
        handle.local_addr(),
        "POST",
        "/norce/order-receiver",
        &headers,
        body,
    )
    .await
}

async fn wait(rx: &mut tokio::sync::watch::Receiver<u64>, at_least: u64) {
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|n| *n >= at_least))
        .await
        .expect("the server reached the count in time")
        .expect("the server is running");
}

#[tokio::test]
async fn order_receiver_requires_basic_auth_and_stores_nothing_without_it() {
    let store = flaky();
    let handle = receivers_only(store.clone()).await;
    let body = order_body("900001");
    for auth in [
        None,
        Some(basic(USER, "wrong")),
        Some(basic("someone", PASSWORD)),
        Some("Bearer x".to_owned()),
    ] {
        let reply = push_order(&handle, auth.as_deref(), &body).await;
        assert_eq!(reply.status, 401, "{auth:?}: {}", reply.body);
        assert_eq!(
            reply.headers.get("www-authenticate").map(String::as_str),
            Some("Basic realm=\"relay\"")
        );
        let answer = reply.json();
        assert_eq!(answer["StatusCode"], "Failed");
        assert!(
            !reply.body.contains(PASSWORD),
            "the password is never echoed"
        );
    }
    assert!(
        store.inbox_pending(10).unwrap().is_empty(),
        "no inbox row without valid credentials"
    );
    assert_eq!(handle.metrics().requests("norce-order", 401), 4);
    handle.shutdown().await;
}

#[tokio::test]
async fn order_is_in_the_inbox_before_the_2xx_and_a_duplicate_is_one_row() {
    let store = flaky();
    let handle = receivers_only(store.clone()).await;
    let auth = basic(USER, PASSWORD);
    let reply = push_order(&handle, Some(&auth), &order_body("900002")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["StatusCode"], "OK");
    assert_eq!(answer["HasErpOrderNo"], false);
    // Acknowledged, so committed: the row is there right after the answer.
    let items = store.inbox_pending(10).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].source.as_str(), items[0].key.as_str()),
        (serve::SOURCE_NORCE_ORDER, "900002")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&items[0].body).unwrap()["ClientOrderRef"],
        "900002"
    );

    // Norce retries (e.g. our answer was lost): 2xx again, still one row.
    let again = push_order(&handle, Some(&auth), &order_body("900002")).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(
        again.json()["Description"]
            .as_str()
            .unwrap()
            .contains("already queued")
    );
    assert_eq!(store.inbox_pending(10).unwrap().len(), 1);
    assert_eq!(*handle.accepted().borrow(), 2);
    handle.shutdown().await;
}

#[tokio::test]
async fn a_store_failure_is_a_5xx_and_nothing_is_acknowledged() {
    let store = flaky();
    let handle = receivers_only(store.clone()).await;
    store.fail.store(true, Ordering::SeqCst);
    let reply = push_order(&handle, Some(&basic(USER, PASSWORD)), &order_body("900003")).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.json()["StatusCode"], "Failed");
    assert!(
        !reply.body.contains("disk full"),
        "internal errors stay in the log"
    );
    let event = request(
        handle.local_addr(),
        "POST",
        "/norce/events/OrderConfirmedEvent",
        &[("X-Relay-Secret", NORCE_SECRET)],
        json!({"ClientId": 1000, "ApplicationId": 1234, "OrderId": 5, "OrderNo": "5", "ClientOrderRef": "900009", "Source": "WEB"})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(event.status, 503, "{}", event.body);
    assert_eq!(*handle.accepted().borrow(), 0);
    store.fail.store(false, Ordering::SeqCst);
    assert!(store.inbox_pending(10).unwrap().is_empty());
    // The sender's retry after the store recovers is stored.
    let retry = push_order(&handle, Some(&basic(USER, PASSWORD)), &order_body("900003")).await;
    assert_eq!(retry.status, 200);
    assert_eq!(store.inbox_pending(10).unwrap().len(), 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_are_413_and_bad_bodies_are_400_naming_the_problem() {
    let store = flaky();
    let handle = receivers_only(store.clone()).await;
    let auth = basic(USER, PASSWORD);
    let big = format!(
        "{{\"ClientOrderRef\":\"1\",\"CustomerOrderComment\":\"{}\"}}",
        "x".repeat(3000)
    );
    let reply = push_order(&handle, Some(&auth), big.as_bytes()).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(
        reply.json()["Description"]
            .as_str()
            .unwrap()
            .contains("2048 bytes"),
        "{}",
        reply.body
    );
    // Without a Content-Length (chunked), the limit holds while reading.
    let reply = request(
        handle.local_addr(),
        "POST",
        "/norce/order-receiver",
        &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
        big.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.body);

    let cases: [(&[u8], &str); 4] = [
        (b"{not json", "is not JSON"),
        (br#"{"Items": []}"#, "missing field `ClientOrderRef`"),
        (br#"{"ClientOrderRef": "1", "Items": [{"LineNo": 1, "PartNo": "A", "Quantity": "two"}]}"#, "`Items[0].Quantity`"),
        (br#"{"ClientOrderRef": "  "}"#, "`ClientOrderRef`"),
    ];
    for (body, expected) in cases {
        let reply = push_order(&handle, Some(&auth), body).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        let description = reply.json()["Description"].as_str().unwrap().to_owned();
        assert!(description.contains(expected), "{description}");
        assert!(description.contains("OrderRequest"), "{description}");
    }
    let reply = request(
        handle.local_addr(),
        "POST",
        "/brightpearl/webhooks?secret=bp-secret-1",
        &[],
        br#"{"accountCode": "acme", "resourceType": "product"}"#,
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("missing field `id`"),
        "{}",
        reply.body
    );
    assert!(store.inbox_pending(10).unwrap().is_empty());
    assert_eq!(handle.metrics().requests("norce-order", 413), 2);
    assert_eq!(handle.metrics().requests("norce-order", 400), 4);
    handle.shutdown().await;
}

#[tokio::test]
async fn webhook_secrets_in_headers_and_the_brightpearl_query() {
    let store = flaky();
    let handle = receivers_only(store.clone()).await;
    let addr = handle.local_addr();
    let event = json!({"ClientId": 1000, "ApplicationId": 1234, "OrderId": 100021, "OrderNo": "100021", "ClientOrderRef": "456789", "Source": "WEB"}).to_string();

    // Norce: the static header.
    for headers in [
        vec![],
        vec![("X-Relay-Secret", "wrong")],
        vec![("X-Other", NORCE_SECRET)],
    ] {
        let reply = request(
            addr,
            "POST",
            "/norce/events/OrderConfirmedEvent",
            &headers,
            event.as_bytes(),
        )
        .await;
        assert_eq!(reply.status, 401, "{headers:?}");
        assert!(
            reply.json()["message"]
                .as_str()
                .unwrap()
                .contains("X-Relay-Secret")
        );
    }
    let reply = request(
        addr,
        "POST",
        "/norce/events/OrderConfirmedEvent",
        &[("x-relay-secret", NORCE_SECRET)],
        event.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = request(
        addr,
        "POST",
        "/norce/events/OrderConfirmedEvent",
        &[("X-Relay-Secret", NORCE_SECRET)],
        event.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "a redelivery is acknowledged");

    // Brightpearl: `?secret=` in the registered URI, or the header.
    let webhook = json!({"accountCode": "acme", "resourceType": "product", "id": "1001-1003,1009", "lifecycleEvent": "modified", "fullEvent": "product.modified.on-hand-modified", "raisedOn": "2026-03-02T08:00:00Z"}).to_string();
    for path in [
        "/brightpearl/webhooks",
        "/brightpearl/webhooks?secret=wrong",
        "/brightpearl/webhooks?secret=",
    ] {
        let reply = request(addr, "POST", path, &[], webhook.as_bytes()).await;
        assert_eq!(reply.status, 401, "{path}");
    }
    let reply = request(
        addr,
        "POST",
        "/brightpearl/webhooks?secret=bp-secret-1",
        &[("Content-Type", "application/json")],
        webhook.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let shipped = json!({"resourceType": "goods-out-note", "id": "7", "fullEvent": "goods-out-note.modified.shipped"}).to_string();
    let reply = request(
        addr,
        "POST",
        "/brightpearl/webhooks",
        &[("X-Relay-Secret", BP_SECRET)],
        shipped.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The Norce secret does not open the Brightpearl receiver.
    let reply = request(
        addr,
        "POST",
        "/brightpearl/webhooks",
        &[("X-Relay-Secret", NORCE_SECRET)],
        shipped.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 401);

    let keys: Vec<(String, String)> = store
        .inbox_pending(10)
        .unwrap()
        .into_iter()
        .map(|i| (i.source, i.key))
        .collect();
    assert_eq!(
        keys,
        vec![
            (
                "norce-event".to_owned(),
                "OrderConfirmedEvent:order-100021".to_owned()
            ),
            (
                "brightpearl-webhook".to_owned(),
                "product.modified.on-hand-modified:1001-1003,1009".to_owned()
            ),
            (
                "brightpearl-webhook".to_owned(),
                "goods-out-note.modified.shipped:7".to_owned()
            ),
        ]
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn a_receiver_without_its_secret_is_disabled_and_names_the_variable() {
    let store = flaky();
    let handle = start(store.clone(), config(), ServeSecrets::default(), Vec::new()).await;
    let reply = push_order(&handle, Some(&basic(USER, "")), &order_body("1")).await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.body.contains("RELAY_ORDER_RECEIVER_PASSWORD"),
        "{}",
        reply.body
    );
    let reply = request(
        handle.local_addr(),
        "POST",
        "/brightpearl/webhooks?secret=",
        &[],
        b"{\"id\":\"1\"}",
    )
    .await;
    assert_eq!(reply.status, 503);
    assert!(
        reply.body.contains("RELAY_BRIGHTPEARL_WEBHOOK_SECRET"),
        "{}",
        reply.body
    );
    assert!(store.inbox_pending(10).unwrap().is_empty());
    handle.shutdown().await;
}

#[tokio::test]
async fn only_the_flows_an_item_gave_work_run() {
    let store = flaky();
    let mut flows = test_flows();
    flows.push(idle_flow());
    let handle = start(store.clone(), config(), secrets(), flows).await;
    let (mut processed, mut runs) = (handle.processed(), handle.runs());
    let auth = basic(USER, PASSWORD);
    // Two pushes, one after the other: a pass of the idle flow, had the first triggered one,
    // would have run by the time the second one's pass is over.
    for (n, order) in ["900020", "900021"].into_iter().enumerate() {
        assert_eq!(
            push_order(&handle, Some(&auth), &order_body(order))
                .await
                .status,
            200
        );
        wait(&mut processed, n as u64 + 1).await;
        wait(&mut runs, n as u64 + 1).await;
    }
    assert_eq!(
        store
            .list(Some("orders"), Some(Status::Done))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store.cursor("idle").unwrap(),
        None,
        "the idle flow found no work and did not run"
    );
    let health = request(handle.local_addr(), "GET", "/healthz", &[], b"")
        .await
        .json();
    assert!(health["flows"]["idle"]["last_run"].is_null(), "{health}");
    handle.shutdown().await;
}

#[tokio::test]
async fn ingest_then_a_run_and_healthz_and_metrics() {
    let store = flaky();
    let handle = start(store.clone(), config(), secrets(), test_flows()).await;
    let mut processed = handle.processed();
    let mut runs = handle.runs();
    let auth = basic(USER, PASSWORD);
    assert_eq!(
        push_order(&handle, Some(&auth), &order_body("900010"))
            .await
            .status,
        200
    );
    assert_eq!(
        push_order(&handle, Some(&auth), &order_body("900011"))
            .await
            .status,
        200
    );
    wait(&mut processed, 2).await;
    assert!(
        store.inbox_pending(10).unwrap().is_empty(),
        "the processor marked both done"
    );
    // The ingest triggered a run of the flow that took the items.
    let mut done = 0;
    while done < 2 {
        let now = *runs.borrow_and_update();
        done = store
            .list(Some("orders"), Some(Status::Done))
            .unwrap()
            .len();
        if done < 2 {
            wait(&mut runs, now + 1).await;
        }
    }

    let health = request(handle.local_addr(), "GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200);
    let health = health.json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"], "ok");
    assert_eq!(health["inbox_pending"], 0);
    assert_eq!(health["receivers"]["norce-order"], true);
    assert!(health["flows"]["orders"].is_object(), "{health}");
    assert_eq!(health["flows"]["orders"]["last_run"]["ok"], true);
    assert!(
        health["flows"]["orders"]["last_run"]["finished_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let metrics = request(handle.local_addr(), "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    let families = parse_exposition(&metrics.body);
    let expect = [
        ("relay_receiver_requests_total", "counter"),
        ("relay_inbox_ingested_total", "counter"),
        ("relay_flow_runs_total", "counter"),
        ("relay_flow_items_booked_total", "counter"),
        ("relay_flow_items_failed_total", "counter"),
        ("relay_flow_last_run_timestamp_seconds", "gauge"),
        ("relay_inbox_pending", "gauge"),
        ("relay_entities", "gauge"),
        ("relay_dead_letters", "gauge"),
        ("relay_store_up", "gauge"),
    ];
    for (name, kind) in expect {
        assert_eq!(
            families.get(name).map(|f| f.0.as_str()),
            Some(kind),
            "{name} in\n{}",
            metrics.body
        );
    }
    let value = |name: &str, labels: &str| -> f64 {
        families[name]
            .1
            .iter()
            .find(|(l, _)| l == labels)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{name}{{{labels}}} in\n{}", metrics.body))
    };
    assert_eq!(
        value(
            "relay_receiver_requests_total",
            "receiver=\"norce-order\",status=\"200\""
        ),
        2.0
    );
    assert_eq!(
        value(
            "relay_inbox_ingested_total",
            "source=\"norce-order\",result=\"done\""
        ),
        2.0
    );
    assert_eq!(
        value("relay_entities", "flow=\"orders\",status=\"done\""),
        2.0
    );
    assert_eq!(
        value("relay_entities", "flow=\"orders\",status=\"failed\""),
        0.0
    );
    assert_eq!(
        value("relay_flow_items_booked_total", "flow=\"orders\""),
        2.0
    );
    assert_eq!(value("relay_inbox_pending", ""), 0.0);
    assert_eq!(value("relay_store_up", ""), 1.0);
    assert!(value("relay_flow_last_run_timestamp_seconds", "flow=\"orders\"") > 1.7e9);
    assert!(value("relay_flow_runs_total", "flow=\"orders\",result=\"ok\"") >= 1.0);
    handle.shutdown().await;
}

/// name → (type, [(labels, value)]), checking the exposition's syntax line by line.
fn parse_exposition(text: &str) -> HashMap<String, (String, Vec<(String, f64)>)> {
    let mut families: HashMap<String, (String, Vec<(String, f64)>)> = HashMap::new();
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(valid_name(name), "{line}");
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            assert!(
                families
                    .insert(name.to_owned(), (kind.to_owned(), Vec::new()))
                    .is_none(),
                "one TYPE per family: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.is_empty() && !line.starts_with('#'),
            "unexpected line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (
                name,
                labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("labels of {line}"))
                    .to_owned(),
            ),
            None => (series, String::new()),
        };
        let family = families
            .get_mut(name)
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        if family.0 == "counter" {
            assert!(name.ends_with("_total") && value >= 0.0, "{line}");
        }
        family.1.push((labels, value));
    }
    families
}

#[tokio::test]
async fn the_sandbox_order_receiver_push_lands_in_the_inbox() {
    let store = flaky();
    let handle = receivers_only(store.clone()).await;
    let mut accepted = handle.accepted();
    let mut sandbox_config = SandboxConfig::default();
    sandbox_config.norce.order_receiver = Some(sandbox::norce::OrderReceiverConfig {
        url: format!("{}/norce/order-receiver", handle.base_url()),
        username: USER.into(),
        password: PASSWORD.into(),
    });
    sandbox_config.norce.webhooks = vec![sandbox::norce::WebhookConfig {
        event_type: "OrderReceivedEvent".into(),
        url: format!("{}/norce/events/OrderReceivedEvent", handle.base_url()),
        headers: [("X-Relay-Secret".to_owned(), NORCE_SECRET.to_owned())].into(),
    }];
    sandbox_config.norce.push_time_factor = 0.001;
    let sandbox = common::sandbox_with(sandbox_config).await;

    let created = request(
        sandbox.addr(),
        "POST",
        "/_sandbox/norce/orders",
        &[("Content-Type", "application/json")],
        b"{}",
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let order = created.json();
    let client_order_ref = order["clientOrderRef"]
        .to_string()
        .trim_matches('"')
        .to_owned();
    wait(&mut accepted, 2).await;

    let items = store.inbox_pending(10).unwrap();
    let push = items
        .iter()
        .find(|i| i.source == serve::SOURCE_NORCE_ORDER)
        .expect("the order push is in the inbox");
    assert_eq!(push.key, client_order_ref);
    let body: Value = serde_json::from_str(&push.body).unwrap();
    assert_eq!(
        body["ClientOrderRef"].to_string().trim_matches('"'),
        client_order_ref
    );
    assert!(
        body["Items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
    );
    let event = items
        .iter()
        .find(|i| i.source == serve::SOURCE_NORCE_EVENT)
        .expect("the event is in the inbox");
    // The documented OrderReceivedEvent names the basket only; repeats share its key.
    assert_eq!(
        event.key,
        format!("OrderReceivedEvent:basket-{client_order_ref}")
    );

    // The sandbox took our OrderResponse as a success (it records the attempt after our answer).
    let delivered = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let pushes = request(
                sandbox.addr(),
                "GET",
                "/_sandbox/norce/pushes?kind=order-receiver",
                &[],
                b"",
            )
            .await
            .json();
            if let Some(push) = pushes
                .as_array()
                .and_then(|p| p.first())
                .filter(|p| p["state"] != "pending")
            {
                return push.clone();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the sandbox records the push");
    assert_eq!(delivered["state"], "delivered", "{delivered}");
    assert_eq!(delivered["attempts"][0]["status"], 200, "{delivered}");
    handle.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn what_cannot_be_processed_is_refused_before_it_is_acknowledged() {
    let store = flaky();
    let handle = receivers_only(store.clone()).await;
    let addr = handle.local_addr();
    let norce = [("X-Relay-Secret", NORCE_SECRET)];

    // A subscribed event type whose body is not its documented shape: 400 naming the field.
    let reply = request(
        addr,
        "POST",
        "/norce/events/OrderConfirmedEvent",
        &norce,
        b"{}",
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("OrderConfirmedEvent") && message.contains("missing field `"),
        "{message}"
    );
    // An event type no flow subscribes to: 200, dropped.
    let reply = request(
        addr,
        "POST",
        "/norce/events/ProductChangedEvent",
        &norce,
        b"{}",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("does not subscribe"),
        "{}",
        reply.body
    );

    // Brightpearl ids that are not an ID set: 400 naming them.
    let webhook = |resource: &str, id: &str, event: &str| {
        json!({"accountCode": "acme", "resourceType": resource, "id": id, "lifecycleEvent": "modified", "fullEvent": event, "raisedOn": "2026-03-02T08:00:00Z"}).to_string()
    };
    let bp = "/brightpearl/webhooks?secret=bp-secret-1";
    let reply = request(
        addr,
        "POST",
        bp,
        &[],
        webhook("product", "abc; DROP TABLE entities", "product.modified").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body.contains("`abc; DROP TABLE entities`"),
        "{}",
        reply.body
    );
    // A resource no flow takes: 200, dropped.
    let reply = request(
        addr,
        "POST",
        bp,
        &[],
        webhook("contact", "12", "contact.modified").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // JSON receivers want a JSON content type.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let mut headers = vec![("Authorization", basic(USER, PASSWORD))];
        headers.push(("Content-Type", content_type.to_owned()));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = request(
            addr,
            "POST",
            "/norce/order-receiver",
            &headers,
            &order_body("900010"),
        )
        .await;
        assert_eq!(reply.status, 415, "{content_type}: {}", reply.body);
        assert!(
            reply.json()["Description"]
                .as_str()
                .unwrap()
                .contains("application/json"),
            "{}",
            reply.body
        );
    }
    let reply = request(
        addr,
        "POST",
        bp,
        &[("Content-Type", "text/plain")],
        webhook("product", "1001", "product.modified").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 415, "{}", reply.body);
    // `+json` types and parameters are JSON.
    let reply = request(
        addr,
        "POST",
        bp,
        &[(
            "Content-Type",
            "application/vnd.brightpearl+json; charset=utf-8",
        )],
        webhook("product", "1001", "product.modified").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Only the last webhook was stored.
    let stored = store.inbox_pending(10).unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].source, "brightpearl-webhook");
    handle.shutdown().await;
}

/// Released by the lanes test: a Brightpearl webhook's ingest waits for it.
static WEBHOOK_INGEST: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_webhooks_never_holds_back_norce_orders() {
    fn accepts_all(_: &str) -> bool {
        true
    }
    fn ingest<'a>(ctx: &'a FlowContext, item: &'a InboxItem) -> IngestFuture<'a> {
        Box::pin(async move {
            if item.source == "brightpearl-webhook" {
                // A slow ingest (a webhook marking thousands of products).
                WEBHOOK_INGEST.notified().await;
            }
            ctx.store.upsert_pending("lanes", &item.key, None)?;
            Ok(relay::flows::Ingested::Nothing)
        })
    }
    fn idle(_: &FlowContext) -> FlowFuture<'_> {
        Box::pin(async { Ok(FlowReport::default()) })
    }
    let store = flaky();
    let flows = vec![FlowEntry {
        name: "lanes",
        entity_flows: &[],
        run: idle,
        accepts: accepts_all,
        ingest,
        every: None,
    }];
    let handle = start(store.clone(), config(), secrets(), flows).await;
    let mut processed = handle.processed();
    for id in 1..=3 {
        let webhook = json!({"accountCode": "acme", "resourceType": "product", "id": id.to_string(), "lifecycleEvent": "modified", "fullEvent": "product.modified", "raisedOn": "2026-03-02T08:00:00Z"}).to_string();
        let reply = request(
            handle.local_addr(),
            "POST",
            "/brightpearl/webhooks?secret=bp-secret-1",
            &[],
            webhook.as_bytes(),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // The webhook lane is stuck on the first webhook; the order is ingested all the same.
    let reply = push_order(&handle, Some(&basic(USER, PASSWORD)), &order_body("900020")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    wait(&mut processed, 1).await;
    assert!(store.get("lanes", "900020").unwrap().is_some());
    assert_eq!(store.list(Some("lanes"), None).unwrap().len(), 1);
    // Released one at a time, the webhooks follow.
    for done in 2..=4 {
        WEBHOOK_INGEST.notify_one();
        wait(&mut processed, done).await;
    }
    assert_eq!(store.list(Some("lanes"), None).unwrap().len(), 4);
    handle.shutdown().await;
}
