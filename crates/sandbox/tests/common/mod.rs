//! Shared helpers for the sandbox's black-box tests.
#![allow(dead_code)]

use sandbox::{Sandbox, SandboxConfig};

/// Starts a sandbox on a random loopback port with a fixed start time.
pub async fn start() -> Sandbox {
    start_with(SandboxConfig::default()).await
}

/// Starts a sandbox with `config` (the start time is fixed unless the config sets one).
pub async fn start_with(mut config: SandboxConfig) -> Sandbox {
    if config.start_time.is_none() {
        config.start_time = Some("2026-03-02T08:00:00Z".parse().unwrap());
    }
    Sandbox::start(config).await.expect("sandbox starts")
}

/// A plain HTTP client (no retries, no pooling surprises).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}
