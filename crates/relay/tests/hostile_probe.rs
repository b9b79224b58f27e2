//! The hostile probe (`tests/hostile/probe.rs`, also `cargo run -p relay --example
//! hostile_probe`) against a whole `relay serve` in this process: receivers, flows and the
//! embedded sandbox. Every case must pass.

mod common;
#[path = "hostile/probe.rs"]
mod probe;

use relay::config::RelayConfig;
use relay::serve::{self, SecretString, ServeSecrets};
use sandbox::SandboxConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_hostile_case_gets_the_hardened_answer() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let mut config = RelayConfig::default();
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    config.state.dir = std::env::temp_dir().join(format!("relay-probe-{}", std::process::id()));
    let listener = serve::bind(&config.serve).await.unwrap();
    let ctx = common::context(&sandbox, config);
    let secrets = ServeSecrets {
        order_receiver_password: Some(SecretString::from("probe-order-pw")),
        norce_webhook_secret: Some(SecretString::from("probe-norce-secret")),
        brightpearl_webhook_secret: Some(SecretString::from("probe-bp-secret")),
        ..ServeSecrets::default()
    };
    let handle = serve::start(ctx, secrets, listener).await.unwrap();
    let target = probe::Target {
        addr: handle.local_addr(),
        order_user: "norce".into(),
        order_password: "probe-order-pw".into(),
        norce_header: "X-Relay-Secret".into(),
        norce_secret: "probe-norce-secret".into(),
        brightpearl_secret: "probe-bp-secret".into(),
    };
    let outcomes = probe::run(&target, &probe::Options::default()).await;
    let report = probe::render(&outcomes);
    eprintln!("{report}");
    assert!(outcomes.len() >= 12, "{report}");
    assert!(outcomes.iter().all(|o| o.passed), "{report}");
    // What the listener turned away is counted in /metrics.
    let metrics = common::http("GET", &format!("{}/metrics", handle.base_url()), None).await;
    let refused: f64 = metrics
        .body
        .lines()
        .find(|l| l.starts_with("relay_connections_total{result=\"refused_per_ip\"}"))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or_else(|| panic!("{}", metrics.body));
    assert!(refused >= 1.0, "{}", metrics.body);
    assert!(
        metrics.body.contains("relay_connections_open "),
        "{}",
        metrics.body
    );
    handle.shutdown().await;
}
