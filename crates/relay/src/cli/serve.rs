//! `relay serve`: the receivers, the inbox processor, the scheduler, `/healthz` and `/metrics`
//! (see [`crate::serve`]) until Ctrl-C.
//!
//! With no configured platform (or `--sandbox`) it starts the embedded sandbox with a fresh data
//! folder and points the sandbox's Norce order receiver and order event webhooks at itself, with a
//! password and secret generated for this process; `POST {sandbox}/_sandbox/norce/orders` then
//! places an order that arrives in the inbox. It also generates a Brightpearl webhook secret and
//! sets `serve.public_url` to its own address, so serve registers its Brightpearl subscriptions
//! with the sandbox: `POST {sandbox}/_sandbox/brightpearl/products/{id}/stock` then sends an
//! on-hand webhook here.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use client_core::Settings;
use sandbox::{Sandbox, SandboxConfig};

use crate::flows::FlowContext;
use crate::serve::{self, Secret, ServeSecrets};
use crate::state::{SqliteStore, Store};
use crate::verify::configured_platforms;

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

/// A random-enough token for the embedded sandbox's receiver password (local demo only).
fn sandbox_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u64 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(i);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out
}

async fn serve(args: ServeArgs) -> Result<(), String> {
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
    let settings = if args.sandbox || configured_platforms(&env).is_empty() {
        let password = sandbox_token();
        let webhook_secret = sandbox_token();
        let brightpearl_secret = sandbox_token();
        let here = local_url(addr);
        let mut sandbox_config = SandboxConfig::default();
        sandbox_config.norce.order_receiver = Some(sandbox::norce::OrderReceiverConfig {
            url: format!("{here}/norce/order-receiver"),
            username: config.serve.order_receiver_user.clone(),
            password: password.clone(),
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
        secrets.order_receiver_password = Some(Secret::new(password));
        secrets.norce_webhook_secret = Some(Secret::new(webhook_secret));
        secrets.brightpearl_webhook_secret = Some(Secret::new(brightpearl_secret));
        // Serve registers its Brightpearl webhooks with the sandbox, pointing here.
        config.serve.public_url = Some(here);
        config.state.dir = super::fresh_sandbox_data_dir("serve");
        eprintln!(
            "{}: serving against the embedded sandbox at {}; its Norce order receiver and order events point here, and serve registers its Brightpearl webhooks there. Place an order with `curl -X POST {}/_sandbox/norce/orders`; change stock with `curl -X POST {}/_sandbox/brightpearl/products/1001/stock -H 'content-type: application/json' -d '{{\"warehouseId\":2,\"onHand\":7}}'`.",
            crate::embedded::sandbox_reason(args.sandbox),
            started.base_url(),
            started.base_url(),
            started.base_url()
        );
        let settings = crate::embedded::settings_for(&started.credentials());
        sandbox = Some(started);
        settings
    } else {
        env
    };

    let data_dir = config.state.dir.clone();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open_in(&data_dir).map_err(|e| e.to_string())?);
    let ctx = FlowContext::from_settings(&settings, store, Arc::new(config))
        .map_err(|e| format!("platform settings: {e}"))?;
    let mut handle = serve::start(ctx, secrets, listener)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "relay serve: listening on http://{addr} (POST /norce/order-receiver, /norce/events/{{eventType}}, /brightpearl/webhooks; GET /healthz, /metrics); state in {}. Ctrl-C stops.",
        data_dir.display()
    );
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!(
            "relay serve: cannot listen for Ctrl-C ({e}); serving until the process is stopped"
        );
        handle.wait().await;
    }
    eprintln!("relay serve: stopping (a running flow pass finishes first)");
    handle.shutdown().await;
    if let Some(sandbox) = sandbox {
        sandbox.shutdown().await;
    }
    Ok(())
}
