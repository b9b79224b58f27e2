//! Shared helpers for relay's tests: a sandbox and a flow context wired to it.
#![allow(dead_code)]

use std::sync::Arc;

use relay::config::RelayConfig;
use relay::flows::FlowContext;
use relay::state::{SqliteStore, Store};
use sandbox::{Sandbox, SandboxConfig};

/// A sandbox with a fixed start time on a random loopback port.
pub async fn sandbox_with(mut config: SandboxConfig) -> Sandbox {
    if config.start_time.is_none() {
        config.start_time = Some("2026-03-02T08:00:00Z".parse().unwrap());
    }
    Sandbox::start(config).await.expect("sandbox starts")
}

/// A sandbox of `orders` new Norce orders (none seeded delivered) and 12 SKUs, with a
/// Brightpearl account of its own named `{account}{n}`: the client's throttle pool is shared
/// per account by the whole test process, so tests running in parallel on one account would
/// wait for each other's budget.
pub async fn new_orders_sandbox(orders: usize, account: &str) -> Sandbox {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static ACCOUNTS: AtomicUsize = AtomicUsize::new(1);
    let mut config = SandboxConfig {
        dataset: sandbox::DatasetConfig {
            orders,
            skus: 12,
            ..sandbox::DatasetConfig::default()
        },
        ..SandboxConfig::default()
    };
    config.norce.seed_delivered_every = 0;
    config.brightpearl.account = format!("{account}{}", ACCOUNTS.fetch_add(1, Ordering::Relaxed));
    sandbox_with(config).await
}

/// A flow context for every platform of `sandbox`, over an in-memory store.
pub fn context(sandbox: &Sandbox, config: RelayConfig) -> FlowContext {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    context_with_store(sandbox, config, store)
}

/// A flow context for every platform of `sandbox` over `store` (to simulate restarts).
pub fn context_with_store(
    sandbox: &Sandbox,
    config: RelayConfig,
    store: Arc<dyn Store>,
) -> FlowContext {
    let settings = relay::embedded::settings_for(&sandbox.credentials());
    FlowContext::from_settings(&settings, store, Arc::new(config)).expect("clients build")
}

/// What [`http`] got back.
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// The `Location` header (redirects are not followed, as a test browser wants).
    pub location: Option<String>,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON, or the text as a JSON string when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| serde_json::Value::String(self.body.clone()))
    }
}

/// One HTTP call on 127.0.0.1 (the sandbox's admin API, an OAuth redirect), JSON body if any.
pub async fn http(method: &str, url: &str, body: Option<serde_json::Value>) -> Answer {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Answer {
        status,
        location,
        body: response.text().await.unwrap(),
    }
}

/// An HTTP Basic `Authorization` value (standard, padded base64).
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}
