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

/// A flow context for every platform of `sandbox`, over an in-memory store.
pub fn context(sandbox: &Sandbox, config: RelayConfig) -> FlowContext {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    context_with_store(sandbox, config, store)
}

/// A flow context for every platform of `sandbox` over `store` (to simulate restarts).
pub fn context_with_store(sandbox: &Sandbox, config: RelayConfig, store: Arc<dyn Store>) -> FlowContext {
    let settings = relay::embedded::settings_for(&sandbox.credentials());
    FlowContext::from_settings(&settings, store, Arc::new(config)).expect("clients build")
}
