//! Replays the hostile cases of issue 11 against a running `relay serve`:
//!
//! ```sh
//! RELAY_ORDER_RECEIVER_PASSWORD=… RELAY_NORCE_WEBHOOK_SECRET=… RELAY_BRIGHTPEARL_WEBHOOK_SECRET=… \
//!   cargo run -p relay --example hostile_probe -- 127.0.0.1:8080
//! ```
//!
//! Prints PASS/FAIL per case; exit code 1 when any fails. `PROBE_SLOW_CONNECTIONS` (default
//! 300), `RELAY_ORDER_RECEIVER_USER` (default `norce`), `RELAY_NORCE_WEBHOOK_HEADER` (default
//! `X-Relay-Secret`) adjust it. Run it only against a server of your own: it writes a few
//! probe orders (`probe-<millis>`) into that server's inbox.

#[path = "../tests/hostile/probe.rs"]
mod probe;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let Some(addr) = std::env::args().nth(1).and_then(|a| a.parse().ok()) else {
        eprintln!(
            "usage: hostile_probe <host:port of relay serve> (with the RELAY_* receiver secrets in the environment)"
        );
        return ExitCode::from(2);
    };
    let target = probe::Target {
        addr,
        order_user: env("RELAY_ORDER_RECEIVER_USER", "norce"),
        order_password: env("RELAY_ORDER_RECEIVER_PASSWORD", ""),
        norce_header: env("RELAY_NORCE_WEBHOOK_HEADER", "X-Relay-Secret"),
        norce_secret: env("RELAY_NORCE_WEBHOOK_SECRET", ""),
        brightpearl_secret: env("RELAY_BRIGHTPEARL_WEBHOOK_SECRET", ""),
    };
    let options = probe::Options {
        slow_connections: env("PROBE_SLOW_CONNECTIONS", "300").parse().unwrap_or(300),
        ..probe::Options::default()
    };
    let outcomes = probe::run(&target, &options).await;
    print!("{}", probe::render(&outcomes));
    if outcomes.iter().all(|o| o.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
