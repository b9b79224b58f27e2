//! `relay serve`: the receivers, the inbox processor, the scheduler, `/healthz` and `/metrics`
//! (see [`crate::serve`]) until SIGINT (Ctrl-C) or SIGTERM.
//!
//! The first signal stops gracefully within `serve.shutdown_grace_secs` (no new connections,
//! passes or inbox items; running passes finish or are cancelled at the end of the grace, and
//! resume at the next start); a second one ends the process at once (as safe as a crash: every
//! step is recorded as it goes).
//!
//! With no configured platform (or `--sandbox`) it starts the embedded sandbox and points the
//! sandbox's Norce order receiver and order event webhooks at itself, with the configured
//! receiver secrets (`RELAY_*`, see [`ServeSecrets`]) or, for those not set, ones generated for
//! this process and printed once to stderr, labelled with their variables (serve also
//! registers the Brightpearl secret with the sandbox's webhooks itself);
//! `POST {sandbox}/_sandbox/norce/orders` then places an order that arrives in the inbox. It sets `serve.public_url` to its own address, so serve
//! registers its Brightpearl subscriptions with the sandbox:
//! `POST {sandbox}/_sandbox/brightpearl/products/{id}/stock` then sends an on-hand webhook here.
//! The state goes to `[state] dir` when the configuration file sets it (a restart resumes), else
//! to a fresh folder in the temp directory.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use client_core::Settings;
use sandbox::{Sandbox, SandboxConfig};

use crate::flows::FlowContext;
use crate::serve::{self, ExposeSecret, SecretString, ServeSecrets, ShutdownOutcome};
use crate::verify::configured_platforms;

/// The environment variable naming this worker on its leases (several `relay serve` workers
/// on one database); default: host, process id and a random suffix.
pub const ENV_WORKER_ID: &str = "RELAY_WORKER_ID";

/// How long `relay serve` waits at start for an unreachable state database.
const DATABASE_WAIT_SECS: u64 = 60;

/// Arguments of `relay serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
    /// Listen here instead of `[serve] listen` (e.g. `127.0.0.1:0`).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Serve against the embedded sandbox even when platforms are configured.
    #[arg(long)]
    sandbox: bool,
}

/// Runs the command.
pub async fn execute(args: ServeArgs) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("relay serve: {message}");
            ExitCode::from(2)
        }
    }
}

/// `http://addr`, with an unspecified listen address (`0.0.0.0`, `[::]`) as the loopback one,
/// which the embedded sandbox can reach.
fn local_url(addr: std::net::SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}")
}

/// A token for an embedded-sandbox receiver secret or console token: 128 bits from the
/// operating system's generator (the clock hashed, should it have none).
fn sandbox_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(i);
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            chunk.copy_from_slice(&hasher.finish().to_be_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the operator console is: with the embedded sandbox, the sign-in link carries the
/// generated token in its fragment (which browsers never send), so a click signs in; against
/// real platforms, only the address. `None` while the console is off.
fn console_url(
    addr: std::net::SocketAddr,
    token: &Option<SecretString>,
    sandbox: bool,
) -> Option<String> {
    let token = token.as_ref()?;
    let here = local_url(addr);
    Some(if sandbox {
        format!(
            "operator console: {here}/console/login#token={} (local demo; the token is the console's sign-in)",
            token.expose_secret()
        )
    } else {
        format!("operator console: {here}/console (sign in with the console token)")
    })
}

/// A receiver secret generated for an embedded-sandbox run, to print once.
struct Generated {
    /// The variable that would set it.
    variable: String,
    /// What it is for.
    purpose: String,
    value: String,
}

/// Generates each receiver secret `secrets` lacks (an embedded-sandbox run needs all three, as
/// the sandbox pushes to every receiver) and says which it made; a missing console token is
/// generated too (shown once, in the console's sign-in link).
fn fill_missing_secrets(
    secrets: &mut ServeSecrets,
    config: &crate::serve::ServeConfig,
) -> Vec<Generated> {
    if secrets.console_token.is_none() {
        secrets.console_token = Some(SecretString::from(sandbox_token()));
    }
    let mut generated = Vec::new();
    for (slot, variable, purpose) in [
        (
            &mut secrets.order_receiver_password,
            &config.order_receiver_password_env,
            format!(
                "order receiver (POST /norce/order-receiver), HTTP Basic user `{}`",
                config.order_receiver_user
            ),
        ),
        (
            &mut secrets.norce_webhook_secret,
            &config.norce_webhook_secret_env,
            format!(
                "Norce events (POST /norce/events/{{eventType}}), header `{}`",
                config.norce_webhook_header
            ),
        ),
        (
            &mut secrets.brightpearl_webhook_secret,
            &config.brightpearl_webhook_secret_env,
            "Brightpearl webhooks (POST /brightpearl/webhooks?secret=…); serve registers it with the sandbox's webhooks itself".to_owned(),
        ),
    ] {
        if slot.is_none() {
            let value = sandbox_token();
            *slot = Some(SecretString::from(value.clone()));
            generated.push(Generated {
                variable: variable.clone(),
                purpose,
                value,
            });
        }
    }
    generated
}

/// The text that shows the generated secrets, once, on stderr (never through the log): the
/// operator needs them to call the receivers by hand.
fn generated_text(generated: &[Generated]) -> String {
    if generated.is_empty() {
        return String::new();
    }
    let shown = |g: &Generated| format!("{}={}", g.variable, g.value);
    let width = generated.iter().map(|g| shown(g).len()).max().unwrap_or(0);
    let mut text = String::from(
        "relay serve: generated receiver credentials for this run (not configured; set these variables to choose your own):\n",
    );
    for g in generated {
        text.push_str(&format!("  {:<width$}  {}\n", shown(g), g.purpose));
    }
    text
}

/// Whether the configuration file sets `[state] dir` (the default applies otherwise).
fn state_dir_configured(args: &super::ConfigArgs) -> Result<bool, String> {
    let Some(path) = &args.config else {
        return Ok(false);
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the configuration file `{}`: {e}",
            path.display()
        )
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("configuration file `{}`: {e}", path.display()))?;
    Ok(table
        .get("state")
        .and_then(toml::Value::as_table)
        .is_some_and(|state| state.contains_key("dir")))
}

/// The stop signals: SIGINT (Ctrl-C) and SIGTERM (systemd, Kubernetes, Docker).
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

/// A stop signal received: its name and the exit code of a process it ends at once.
#[derive(Debug, Clone, Copy)]
struct Received {
    name: &'static str,
    exit_code: i32,
}

impl Signals {
    /// Takes over SIGINT and SIGTERM from their default (ending the process at once).
    #[cfg(unix)]
    fn install() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let handler = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))
        };
        Ok(Self {
            interrupt: handler(SignalKind::interrupt(), "SIGINT")?,
            terminate: handler(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    /// Takes over Ctrl-C.
    #[cfg(not(unix))]
    fn install() -> Result<Self, String> {
        Ok(Self {})
    }

    /// The next stop signal.
    #[cfg(unix)]
    async fn next(&mut self) -> Received {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Received { name: "SIGINT", exit_code: 130 },
            Some(()) = self.terminate.recv() => Received { name: "SIGTERM", exit_code: 143 },
            else => std::future::pending().await,
        }
    }

    /// The next stop signal.
    #[cfg(not(unix))]
    async fn next(&mut self) -> Received {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        Received {
            name: "Ctrl-C",
            exit_code: 130,
        }
    }
}

/// How long the embedded sandbox may take to stop after serve did.
const SANDBOX_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

async fn serve(args: ServeArgs) -> Result<(), String> {
    // Before anything else: a stop signal during the start is then handled (right after it)
    // instead of killing the process half-started.
    let mut signals = Signals::install()?;
    let mut config = args.config.load()?;
    if let Some(listen) = args.listen {
        config.serve.listen = listen;
    }
    let env = Settings::from_env();
    let listener = serve::bind(&config.serve)
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listen address: {e}"))?;

    let mut secrets =
        ServeSecrets::from_settings(&config.serve, &env).map_err(|e| e.to_string())?;
    let mut sandbox: Option<Sandbox> = None;
    let mut state_note: Option<&str> = None;
    let settings = if args.sandbox || configured_platforms(&env).is_empty() {
        // The operator's secrets when given (so the receivers keep the credentials their
        // callers have), generated ones for the rest.
        let generated = fill_missing_secrets(&mut secrets, &config.serve);
        let expose = |secret: &Option<SecretString>| {
            secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned())
                .unwrap_or_default()
        };
        let password = expose(&secrets.order_receiver_password);
        let webhook_secret = expose(&secrets.norce_webhook_secret);
        let here = local_url(addr);
        let mut sandbox_config = SandboxConfig::default();
        sandbox_config.norce.order_receiver = Some(sandbox::norce::OrderReceiverConfig {
            url: format!("{here}/norce/order-receiver"),
            username: config.serve.order_receiver_user.clone(),
            password,
        });
        sandbox_config.norce.webhooks = [
            "OrderReceivedEvent",
            "OrderConfirmedEvent",
            "OrderCancelledEvent",
            "OrderDeliveredEvent",
            "OrderPartlyDeliveredEvent",
        ]
        .into_iter()
        .map(|event| sandbox::norce::WebhookConfig {
            event_type: event.to_owned(),
            url: format!("{here}/norce/events/{event}"),
            headers: BTreeMap::from([(
                config.serve.norce_webhook_header.clone(),
                webhook_secret.clone(),
            )]),
        })
        .collect();
        let started = Sandbox::start(sandbox_config)
            .await
            .map_err(|e| format!("cannot start the embedded sandbox on 127.0.0.1: {e}"))?;
        // Serve registers its Brightpearl webhooks with the sandbox, pointing here.
        config.serve.public_url = Some(here);
        if state_dir_configured(&args.config)? {
            state_note = Some("the state folder is `[state] dir`: a restart resumes from it");
        } else {
            // The sandbox starts empty every time, so by default its relay state does too.
            config.state.dir = super::fresh_sandbox_data_dir("serve");
            state_note = Some(
                "the state folder is fresh for this run; set `[state] dir` to keep the state across restarts",
            );
        }
        eprintln!(
            "{}: serving against the embedded sandbox at {}; its Norce order receiver and order events point here, and serve registers its Brightpearl webhooks there. Place an order with `curl -X POST {}/_sandbox/norce/orders`; change stock with `curl -X POST {}/_sandbox/brightpearl/products/1001/stock -H 'content-type: application/json' -d '{{\"warehouseId\":2,\"onHand\":7}}'`.",
            crate::embedded::sandbox_reason(args.sandbox),
            started.base_url(),
            started.base_url(),
            started.base_url()
        );
        eprint!("{}", generated_text(&generated));
        let settings = crate::embedded::settings_for(&started.credentials());
        sandbox = Some(started);
        settings
    } else {
        env
    };

    let grace = config.serve.shutdown_grace_secs;
    // A worker that starts while PostgreSQL restarts waits for it instead of exiting.
    let (store, state_location) =
        super::open_store_waiting(&config.state, Duration::from_secs(DATABASE_WAIT_SECS)).await?;
    let lease_ttl = Duration::from_secs(config.serve.lease_secs);
    let mut ctx = FlowContext::from_settings(&settings, store, Arc::new(config))
        .map_err(|e| format!("platform settings: {e}"))?;
    // A name of the operator's (a stable one per worker slot resumes its own items at once
    // after a restart; two live workers must never share one), else the store's default.
    if let Some(worker) = std::env::var(ENV_WORKER_ID)
        .ok()
        .map(|w| w.trim().to_owned())
        .filter(|w| !w.is_empty())
    {
        ctx.coordination.worker = worker.into();
    }
    ctx.coordination.lease_ttl = lease_ttl;
    let console_token = secrets.console_token.clone();
    let handle = serve::start(ctx, secrets, listener)
        .await
        .map_err(|e| e.to_string())?;
    // This line's form is read by scripts and tests (the address, the state folder).
    eprintln!(
        "relay serve: listening on http://{addr} (POST /norce/order-receiver, /norce/events/{{eventType}}, /brightpearl/webhooks; GET /healthz, /metrics); state in {}. Ctrl-C stops.",
        state_location
    );
    if let Some(note) = state_note {
        eprintln!("relay serve: {note}.");
    }
    if let Some(url) = console_url(addr, &console_token, sandbox.is_some()) {
        eprintln!("relay serve: {url}");
    }
    eprintln!(
        "relay serve: SIGTERM stops too; running passes get up to {grace} s (serve.shutdown_grace_secs); a second signal stops at once."
    );
    let first = signals.next().await;
    tracing::info!(signal = first.name, "stop signal received");
    eprintln!(
        "relay serve: {} received: stopping (no new connections or passes; running passes get up to {grace} s); send it again to stop at once",
        first.name
    );
    let outcome = {
        let shutdown = handle.shutdown();
        tokio::pin!(shutdown);
        tokio::select! {
            outcome = &mut shutdown => outcome,
            second = signals.next() => {
                // Safe like a crash: every step is recorded as it goes and resumes at the next
                // start.
                tracing::warn!(signal = second.name, "second stop signal: stopping at once");
                eprintln!(
                    "relay serve: {} received again: stopping at once; unfinished items resume at the next start",
                    second.name
                );
                std::process::exit(second.exit_code);
            }
        }
    };
    if let Some(sandbox) = sandbox
        && tokio::time::timeout(SANDBOX_STOP_WAIT, sandbox.shutdown())
            .await
            .is_err()
    {
        tracing::warn!("the embedded sandbox did not stop in time; leaving it");
    }
    match outcome {
        ShutdownOutcome::Clean => {
            eprintln!("relay serve: stopped");
            Ok(())
        }
        ShutdownOutcome::Cancelled => {
            eprintln!(
                "relay serve: stopped; passes still running after {grace} s were cancelled and resume at the next start"
            );
            Ok(())
        }
        ShutdownOutcome::Abandoned => Err(format!(
            "stopped, but some work did not end within {grace} s and its cancel (see the log); it resumes at the next start"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::ServeConfig;

    #[test]
    fn only_missing_secrets_are_generated_and_the_printed_ones_are_labelled() {
        let config = ServeConfig::default();
        let mut secrets = ServeSecrets {
            norce_webhook_secret: Some(SecretString::from("given")),
            ..ServeSecrets::default()
        };
        let generated = fill_missing_secrets(&mut secrets, &config);
        assert!(serve::secret_matches(
            &secrets.norce_webhook_secret.unwrap(),
            b"given"
        ));
        // The console gets a token too, shown only in its sign-in link (never with the
        // receivers' credentials), and only for the embedded sandbox.
        let addr: std::net::SocketAddr = "0.0.0.0:8788".parse().unwrap();
        let token = secrets.console_token.clone().unwrap();
        let link = console_url(addr, &secrets.console_token, true).unwrap();
        assert!(
            link.contains("http://127.0.0.1:8788/console/login#token=")
                && link.ends_with(&format!(
                    "{} (local demo; the token is the console's sign-in)",
                    token.expose_secret()
                )),
            "{link}"
        );
        let real = console_url(addr, &secrets.console_token, false).unwrap();
        assert!(!real.contains(token.expose_secret()), "{real}");
        assert_eq!(console_url(addr, &None, true), None);
        let password = secrets.order_receiver_password.unwrap();
        let brightpearl = secrets.brightpearl_webhook_secret.unwrap();
        let text = generated_text(&generated);
        assert_eq!(text.matches("generated receiver credentials").count(), 1);
        let password_line = text
            .lines()
            .find(|l| l.contains("RELAY_ORDER_RECEIVER_PASSWORD="))
            .unwrap();
        assert!(serve::secret_matches(
            &password,
            password_line
                .split('=')
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .as_bytes()
        ));
        assert!(password_line.contains("HTTP Basic user `norce`"));
        assert!(
            !text.contains("RELAY_NORCE_WEBHOOK_SECRET"),
            "configured: {text}"
        );
        assert!(
            text.contains(&format!(
                "RELAY_BRIGHTPEARL_WEBHOOK_SECRET={}",
                brightpearl.expose_secret()
            )),
            "{text}"
        );
        assert_eq!(generated_text(&[]), "");
    }

    #[test]
    fn the_state_dir_counts_as_configured_only_when_the_file_sets_it() {
        let dir = std::env::temp_dir().join(format!("relay-cli-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("relay.toml");
        let args = super::super::ConfigArgs {
            config: Some(file.clone()),
        };
        std::fs::write(&file, "[state]\ndir = \"relay-data\"\n").unwrap();
        assert!(
            state_dir_configured(&args).unwrap(),
            "even the default value, when written"
        );
        std::fs::write(&file, "[serve]\nlisten = \"127.0.0.1:0\"\n").unwrap();
        assert!(!state_dir_configured(&args).unwrap());
        assert!(!state_dir_configured(&super::super::ConfigArgs { config: None }).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
