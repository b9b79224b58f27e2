//! `[serve]`: the receivers, their limits and secrets' variables, and the schedule of `relay serve`.

use std::net::SocketAddr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// The Brightpearl events the flows consume, subscribed by default: on-hand changes (`stock`)
/// and shipped goods-out notes (`fulfilment`).
pub const DEFAULT_BRIGHTPEARL_WEBHOOK_EVENTS: [&str; 2] = [
    "product.modified.on-hand-modified",
    "goods-out-note.modified.shipped",
];

/// The `[serve]` section of the configuration file. Secrets are never here: each is read from
/// the environment variable (or `NAME_FILE`) that the `*_env` keys name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Listen address of the receivers, `/healthz` and `/metrics`.
    pub listen: SocketAddr,
    /// Largest accepted request body in bytes (larger: 413).
    #[schemars(range(min = 1))]
    pub body_limit_bytes: usize,
    /// Basic-auth user name Norce's order receiver is configured with.
    pub order_receiver_user: String,
    /// Environment variable holding the order receiver's Basic-auth password.
    pub order_receiver_password_env: String,
    /// Header carrying the shared secret of Norce event webhooks (a static custom header).
    pub norce_webhook_header: String,
    /// Environment variable holding the Norce webhook secret.
    pub norce_webhook_secret_env: String,
    /// Header that may carry the Brightpearl webhook secret (Brightpearl itself can only use the
    /// `?secret=` query parameter of the registered URI).
    pub brightpearl_webhook_header: String,
    /// Environment variable holding the Brightpearl webhook secret.
    pub brightpearl_webhook_secret_env: String,
    /// Environment variable holding the operator console's sign-in token (or `NAME_FILE`, a file
    /// holding it). The console at `/console` is off while it is unset.
    pub console_token_env: String,
    /// The base URL Brightpearl reaches this server at (`https://relay.example.com`); the
    /// subscriptions point at `{public_url}/brightpearl/webhooks?secret=…`. Unset: no
    /// registration (a warning names this key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Whether serve registers its Brightpearl webhook subscriptions at start.
    pub register_brightpearl_webhooks: bool,
    /// The events subscribed (`{resource}.{created|modified|destroyed}[.{specifier}]`).
    pub brightpearl_webhook_events: Vec<String>,
    /// Seconds before the registration is tried again after a transient failure (Brightpearl
    /// unreachable, throttled, 5xx), doubling each time up to an hour (0: only at start).
    pub brightpearl_webhook_retry_secs: u64,
    /// Seconds between scheduled runs of the `shipping` flow (0: only after ingest).
    pub shipping_every_secs: u64,
    /// Seconds between scheduled runs of the `orders` flow (orders and fulfilment; 0: only after ingest).
    pub orders_every_secs: u64,
    /// Seconds between scheduled reconciliation runs of the `stock` flow (stock and prices; 0: only after ingest).
    pub stock_reconcile_every_secs: u64,
    /// Delay between an ingest and the run it triggers, so a burst of webhooks makes one run.
    pub run_after_ingest_ms: u64,
    /// The same for the `shipping` flow, whose runs after an ingest only process what was pushed
    /// (no Norce poll, no alerts feed): 0 ships a pushed order at once; pushes arriving during
    /// a run make one more run right after it.
    pub shipping_run_after_ingest_ms: u64,
    /// Seconds between sweeps of the inbox for items whose ingest failed (0: only on new items).
    pub inbox_sweep_secs: u64,
    /// Seconds a client has to send a request head, from the connection (or, on a kept-alive
    /// connection, from the request's first byte); then the connection is closed.
    #[schemars(range(min = 1, max = 3600))]
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request body, from the end of its head; then `408`.
    #[schemars(range(min = 1, max = 3600))]
    pub body_read_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request; then it is closed.
    #[schemars(range(min = 1, max = 3600))]
    pub idle_timeout_secs: u64,
    /// Open connections at most (lowered to fit the process's open-files limit); beyond, `503`
    /// and the connection is closed.
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_connections: usize,
    /// Open connections from one client address at most; beyond, `503` and closed.
    pub max_connections_per_ip: usize,
    /// Seconds a shutdown (SIGTERM, SIGINT) lets running flow passes and requests finish; then
    /// they are cancelled and resume at the next start (0: cancel at once).
    #[schemars(range(max = 3600))]
    pub shutdown_grace_secs: u64,
    /// Seconds a worker's lease on an item (or on a flow's poll) lasts without renewal: with
    /// several workers on one PostgreSQL database, a killed worker's items are taken over by
    /// the others after at most this long. Renewed every third of it while the work runs.
    #[schemars(range(min = 3, max = 3600))]
    pub lease_secs: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8788)),
            body_limit_bytes: 1024 * 1024,
            order_receiver_user: "norce".to_owned(),
            order_receiver_password_env: "RELAY_ORDER_RECEIVER_PASSWORD".to_owned(),
            norce_webhook_header: "X-Relay-Secret".to_owned(),
            norce_webhook_secret_env: "RELAY_NORCE_WEBHOOK_SECRET".to_owned(),
            brightpearl_webhook_header: "X-Relay-Secret".to_owned(),
            brightpearl_webhook_secret_env: "RELAY_BRIGHTPEARL_WEBHOOK_SECRET".to_owned(),
            console_token_env: "RELAY_CONSOLE_TOKEN".to_owned(),
            public_url: None,
            register_brightpearl_webhooks: true,
            brightpearl_webhook_events: DEFAULT_BRIGHTPEARL_WEBHOOK_EVENTS
                .iter()
                .map(|e| (*e).to_owned())
                .collect(),
            brightpearl_webhook_retry_secs: 60,
            shipping_every_secs: 300,
            orders_every_secs: 300,
            stock_reconcile_every_secs: 3600,
            run_after_ingest_ms: 2000,
            shipping_run_after_ingest_ms: 0,
            inbox_sweep_secs: 30,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 512,
            max_connections_per_ip: 64,
            shutdown_grace_secs: 25,
            lease_secs: 30,
        }
    }
}

impl ServeConfig {
    /// Checks the values the file cannot express as types; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting: &str, reason: &str| ConfigError::Invalid {
            setting: format!("serve.{setting}"),
            reason: reason.to_owned(),
        };
        if self.body_limit_bytes == 0 {
            return Err(invalid("body_limit_bytes", "must be at least 1"));
        }
        self.validate_limits()?;
        if self.order_receiver_user.is_empty() || self.order_receiver_user.contains(':') {
            return Err(invalid(
                "order_receiver_user",
                "must be non-empty and contain no `:` (HTTP Basic)",
            ));
        }
        for (key, header) in [
            ("norce_webhook_header", &self.norce_webhook_header),
            (
                "brightpearl_webhook_header",
                &self.brightpearl_webhook_header,
            ),
        ] {
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(invalid(key, "is not a valid HTTP header name"));
            }
        }
        for (key, name) in [
            (
                "order_receiver_password_env",
                &self.order_receiver_password_env,
            ),
            ("norce_webhook_secret_env", &self.norce_webhook_secret_env),
            (
                "brightpearl_webhook_secret_env",
                &self.brightpearl_webhook_secret_env,
            ),
            ("console_token_env", &self.console_token_env),
        ] {
            if name.is_empty() {
                return Err(invalid(key, "must name an environment variable"));
            }
        }
        if let Some(url) = &self.public_url {
            check_public_url(url).map_err(|reason| invalid("public_url", &reason))?;
        }
        let mut seen = std::collections::HashSet::new();
        for (i, event) in self.brightpearl_webhook_events.iter().enumerate() {
            if let Err(reason) = check_event_name(event) {
                return Err(invalid(
                    "brightpearl_webhook_events",
                    &format!("entry {} `{event}` {reason}", i + 1),
                ));
            }
            if !seen.insert(event.as_str()) {
                return Err(invalid(
                    "brightpearl_webhook_events",
                    &format!("`{event}` is listed twice"),
                ));
            }
        }
        Ok(())
    }
}

/// The longest a listener timeout or the shutdown grace may be, in seconds (an hour; longer
/// only lets idle or slow clients hold connections).
const MAX_TIMEOUT_SECS: u64 = 3600;
/// The most connections `serve.max_connections` may allow.
const MAX_CONNECTIONS: usize = 1_000_000;

impl ServeConfig {
    /// The listener's timeouts and caps, and the shutdown grace.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let invalid = |setting: &str, reason: String| ConfigError::Invalid {
            setting: format!("serve.{setting}"),
            reason,
        };
        for (key, value, what) in [
            (
                "header_read_timeout_secs",
                self.header_read_timeout_secs,
                "the seconds a client has to send a request head",
            ),
            (
                "body_read_timeout_secs",
                self.body_read_timeout_secs,
                "the seconds a client has to send a request body",
            ),
            (
                "idle_timeout_secs",
                self.idle_timeout_secs,
                "the seconds a kept-alive connection may wait for its next request",
            ),
        ] {
            if value == 0 || value > MAX_TIMEOUT_SECS {
                return Err(invalid(
                    key,
                    format!("is {value}: set {what}, from 1 to {MAX_TIMEOUT_SECS}"),
                ));
            }
        }
        if self.shutdown_grace_secs > MAX_TIMEOUT_SECS {
            return Err(invalid(
                "shutdown_grace_secs",
                format!(
                    "is {}: set at most {MAX_TIMEOUT_SECS} seconds (0 cancels running passes at once), and below the stop timeout of the service manager (systemd TimeoutStopSec, Kubernetes terminationGracePeriodSeconds, docker stop --time)",
                    self.shutdown_grace_secs
                ),
            ));
        }
        if !(3..=MAX_TIMEOUT_SECS).contains(&self.lease_secs) {
            return Err(invalid(
                "lease_secs",
                format!(
                    "is {}: set 3 to {MAX_TIMEOUT_SECS} seconds, longer than one platform call with its retries (default 30); a killed worker's items wait this long for another worker",
                    self.lease_secs
                ),
            ));
        }
        if self.max_connections == 0 || self.max_connections > MAX_CONNECTIONS {
            return Err(invalid(
                "max_connections",
                format!(
                    "is {}: set the open connections allowed, from 1 to {MAX_CONNECTIONS}",
                    self.max_connections
                ),
            ));
        }
        if self.max_connections_per_ip == 0 || self.max_connections_per_ip > self.max_connections {
            return Err(invalid(
                "max_connections_per_ip",
                format!(
                    "is {}: set the connections allowed from one client address, from 1 to serve.max_connections ({}); behind a proxy every request comes from its address, so allow it enough",
                    self.max_connections_per_ip, self.max_connections
                ),
            ));
        }
        Ok(())
    }
}

/// `serve.public_url`: an absolute http(s) URL with a host, without credentials, query or
/// fragment (the receiver's path and the secret are appended).
fn check_public_url(text: &str) -> Result<(), String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("is empty: set the base URL Brightpearl reaches this server at (e.g. `https://relay.example.com`), or leave the key out".to_owned());
    }
    let url = reqwest::Url::parse(trimmed).map_err(|e| {
        format!("`{trimmed}` is not an absolute URL ({e}); e.g. `https://relay.example.com`")
    })?;
    // Credentials and a query (which may be a pasted `?secret=`) are refused first and never
    // shown: the messages below show only the scheme, or a URL without either.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not contain credentials (the webhook secret is added as `?secret=`)".to_owned(),
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment: give the base URL; `/brightpearl/webhooks?secret=…` is appended".to_owned());
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must start with https:// (or http://), not `{}:`",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{trimmed}` has no host"));
    }
    if trimmed.contains("${") {
        return Err("must not contain Brightpearl template variables (`${…}`)".to_owned());
    }
    Ok(())
}

/// A Brightpearl event name: `{resource}.{created|modified|destroyed}[.{specifier}]`, lower case.
fn check_event_name(event: &str) -> Result<(), &'static str> {
    const FORM: &str = "is not a Brightpearl event name such as `product.modified.on-hand-modified` ({resource}.{created|modified|destroyed}[.{specifier}])";
    let parts: Vec<&str> = event.split('.').collect();
    let word_ok = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !(2..=3).contains(&parts.len())
        || !parts.iter().all(|p| word_ok(p))
        || !matches!(parts[1], "created" | "modified" | "destroyed")
    {
        return Err(FORM);
    }
    Ok(())
}
