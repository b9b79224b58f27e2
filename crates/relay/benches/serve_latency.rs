//! `cargo bench -p relay --bench serve_latency [-- ORDERS [RATE [LATENCY_MS [RUN_AFTER_INGEST_MS]]]]`
//!
//! How long `relay serve` takes from a Norce order push to the order's label on disk. The
//! sandbox answers every platform call after `LATENCY_MS` (default 20); `relay serve` (in this
//! process, with the shipping flow only: push-driven, no polling, no tracking, no periodic
//! passes) takes Norce's order receiver; `ORDERS` (default 200) qualifying orders are pushed at
//! `RATE` per second (default 20) as Norce would, and each order's time from its push's 2xx to
//! its first label file is measured. `RUN_AFTER_INGEST_MS` sets
//! `serve.shipping_run_after_ingest_ms` (default: the configuration's default, 0), the pause
//! between an ingest and the shipping pass it triggers.
//!
//! Prints one JSON object: `orders`, `rate`, `latency_ms`, `run_after_ingest_ms`,
//! `calls_per_order`, `p50_ms`, `p99_ms`, `max_ms`, `min_possible_ms` (calls per order ×
//! latency: the order's calls one after another with nothing else in the way) and
//! `p99_over_min`, with the calls by operation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay::config::RelayConfig;
use relay::flows::FlowContext;
use relay::flows::shipping::Shipping;
use relay::serve::{self, SecretString, ServeSecrets};
use relay::state::{SqliteStore, Status, Store};
use sandbox::{DatasetConfig, FaultRule, Sandbox, SandboxConfig};
use serde_json::{Value, json};

/// The order receiver's Basic-auth user (the configuration's default) and this run's password.
const USER: &str = "norce";
const PASSWORD: &str = "serve-latency-bench";

/// How long the bench waits for the last label after the last push.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// How often the labels folder is looked at.
const WATCH_EVERY: Duration = Duration::from_millis(2);

/// What the bench runs.
struct Options {
    orders: usize,
    rate: f64,
    latency_ms: u64,
    run_after_ingest_ms: Option<u64>,
}

/// The `OrderRequest` Norce pushes for a sandbox order (its admin JSON).
fn order_request(order: &Value) -> String {
    let customer = &order["customer"];
    let address = json!({
        "Line1": customer["street"], "ZipCode": customer["zip"], "City": customer["city"],
        "Country": customer["country"], "ShippingPhoneNumber": customer["phone"],
    });
    let person = json!({
        "FirstName": customer["firstName"], "LastName": customer["lastName"],
        "Email": customer["email"], "CellPhone": customer["phone"], "Address": address,
    });
    let items: Vec<Value> = order["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| json!({"LineNo": l["lineNo"], "PartNo": l["partNo"], "Description": l["name"], "Quantity": l["quantity"], "TypeGroup": "Physical"}))
        .collect();
    json!({
        "ClientOrderRef": order["clientOrderRef"].to_string(),
        "CustomerOrderRef": order["orderNo"],
        "CurrencyCode": "SEK",
        "SellTo": {"Person": person}, "BillTo": {"Person": person}, "ShipTo": {"Person": person},
        "ShippingAdvice": {
            "DeliveryMethodCode": order["deliveryMethod"],
            "PickupStore": order["pickupPoint"].as_str().map(|p| json!({"Code": p, "IsDropPoint": true})),
        },
        "Items": items,
    })
    .to_string()
}

/// The sandbox's orders that qualify for shipping by default, as (order number, push body).
async fn qualifying_pushes(
    http: &reqwest::Client,
    sandbox: &Sandbox,
) -> Result<Vec<(String, String)>, String> {
    let url = format!("{}/_sandbox/norce/orders", sandbox.base_url());
    let orders: Value = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let statuses = relay::flows::shipping::ShippingConfig::default().order_statuses;
    Ok(orders
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| {
            let status = o["status"].as_str().unwrap_or_default();
            statuses.iter().any(|s| s.eq_ignore_ascii_case(status))
        })
        .map(|o| {
            let number = o["orderNo"].as_str().unwrap_or_default().to_owned();
            (number, order_request(o))
        })
        .collect())
}

/// The configuration: state in `dir`, shipping driven by the pushes alone.
fn config(dir: &Path, run_after_ingest_ms: Option<u64>) -> RelayConfig {
    let mut config = RelayConfig::default();
    config.state.dir = dir.to_path_buf();
    // Every order of the sandbox is in Norce from the start: a poll would ship orders before
    // they are pushed. Tracking (the alerts feed) is not on the push-to-label path.
    config.shipping.poll = false;
    config.shipping.track = false;
    config.orders.poll = false;
    config.serve.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.serve.shipping_every_secs = 0;
    config.serve.orders_every_secs = 0;
    config.serve.stock_reconcile_every_secs = 0;
    config.serve.inbox_sweep_secs = 0;
    config.serve.register_brightpearl_webhooks = false;
    if let Some(ms) = run_after_ingest_ms {
        config.serve.shipping_run_after_ingest_ms = ms;
    }
    config
}

/// Shipping entities done.
fn shipping_done(store: &dyn Store) -> usize {
    store.counts().map_or(0, |counts| {
        counts
            .iter()
            .filter(|(flow, status, _)| flow == "shipping" && *status == Status::Done)
            .map(|(_, _, n)| usize::try_from(*n).unwrap_or(0))
            .sum()
    })
}

/// The `p`-th percentile (0–100) of sorted values, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Calls per platform operation (ids in paths left out).
fn calls_by_operation(sandbox: &Sandbox) -> BTreeMap<String, u64> {
    let mut by_operation = BTreeMap::new();
    for request in sandbox.state().faults.requests() {
        let path: String = request
            .path
            .split('/')
            .filter(|p| !p.is_empty() && !p.bytes().all(|b| b.is_ascii_digit()))
            .collect::<Vec<_>>()
            .join("/");
        *by_operation
            .entry(format!("{} /{path}", request.method))
            .or_default() += 1;
    }
    by_operation
}

async fn measure(options: &Options) -> Result<Value, String> {
    let sandbox = Sandbox::start(SandboxConfig {
        dataset: DatasetConfig {
            // Every 5th seeded order is Delivered (not shipped): enough for `orders` to qualify.
            orders: options.orders * 5 / 4 + 5,
            seed: 5,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| format!("sandbox: {e}"))?;
    let http = reqwest::Client::new();
    let mut pushes = qualifying_pushes(&http, &sandbox).await?;
    pushes.truncate(options.orders);
    if pushes.len() < options.orders {
        return Err(format!(
            "the sandbox has {} qualifying orders, {} wanted",
            pushes.len(),
            options.orders
        ));
    }
    sandbox.state().faults.add(FaultRule {
        latency_ms: options.latency_ms,
        ..FaultRule::default()
    })?;

    let data_dir: PathBuf = std::env::temp_dir().join(format!(
        "relay-serve-latency-{}-{}",
        std::process::id(),
        options.orders
    ));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let labels = data_dir.join("labels");
    let config = config(&data_dir, options.run_after_ingest_ms);
    let run_after_ingest_ms = config.serve.shipping_run_after_ingest_ms;
    let listener = serve::bind(&config.serve)
        .await
        .map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open_in(&data_dir).map_err(|e| e.to_string())?);
    let settings = relay::embedded::settings_for(&sandbox.credentials());
    let ctx = FlowContext::from_settings(&settings, store.clone(), Arc::new(config))
        .map_err(|e| e.to_string())?;
    let secrets = ServeSecrets {
        order_receiver_password: Some(SecretString::from(PASSWORD)),
        ..ServeSecrets::default()
    };
    let handle = serve::start_with_flows(ctx, secrets, listener, vec![Arc::new(Shipping)])
        .await
        .map_err(|e| e.to_string())?;
    let receiver = format!("{}/norce/order-receiver", handle.base_url());

    let calls_before = sandbox.state().faults.total_requests();
    let started = Instant::now();
    // Each push at its slot (RATE per second), answered 2xx: when the clock of its order starts.
    let every = Duration::from_secs_f64(1.0 / options.rate.max(0.001));
    let mut sent = tokio::task::JoinSet::new();
    for (i, (order_no, body)) in pushes.into_iter().enumerate() {
        let (http, receiver) = (http.clone(), receiver.clone());
        let slot = started + every.mul_f64(i as f64);
        sent.spawn(async move {
            tokio::time::sleep_until(slot.into()).await;
            let response = http
                .post(&receiver)
                .basic_auth(USER, Some(PASSWORD))
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("push of {order_no}: {e}"))?;
            let answered = Instant::now();
            if !response.status().is_success() {
                return Err(format!(
                    "push of {order_no}: {} {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                ));
            }
            Ok::<_, String>((order_no, answered))
        });
    }

    // Watch the labels folder while the pushes go out: an order's clock stops at its first label.
    let mut pushed: BTreeMap<String, Instant> = BTreeMap::new();
    let mut latencies_ms = Vec::with_capacity(options.orders);
    let mut last_push = started;
    loop {
        while let Some(joined) = sent.try_join_next() {
            let (order_no, at) = joined.map_err(|e| e.to_string())??;
            last_push = last_push.max(at);
            pushed.insert(order_no, at);
        }
        let now = Instant::now();
        pushed.retain(|order_no, at| {
            let saved = labels.join(format!("{order_no}-1.pdf")).exists();
            if saved {
                latencies_ms.push(now.duration_since(*at).as_secs_f64() * 1000.0);
            }
            !saved
        });
        if sent.is_empty() && pushed.is_empty() {
            break;
        }
        if sent.is_empty() && now.duration_since(last_push) > DRAIN_LIMIT {
            return Err(format!(
                "{} orders had no label {} s after the last push: {:?}",
                pushed.len(),
                DRAIN_LIMIT.as_secs(),
                pushed.keys().take(5).collect::<Vec<_>>()
            ));
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
    let elapsed = started.elapsed();
    // The note and the order status follow the label: count the calls once every order is done.
    let deadline = Instant::now() + DRAIN_LIMIT;
    while shipping_done(store.as_ref()) < latencies_ms.len() && Instant::now() < deadline {
        tokio::time::sleep(WATCH_EVERY).await;
    }
    let calls = sandbox.state().faults.total_requests() - calls_before;
    let _ = handle.shutdown().await;
    let by_operation = calls_by_operation(&sandbox);
    let _ = std::fs::remove_dir_all(&data_dir);

    latencies_ms.sort_by(f64::total_cmp);
    let shipped = latencies_ms.len();
    let calls_per_order = calls as f64 / shipped.max(1) as f64;
    let min_possible_ms = calls_per_order * options.latency_ms as f64;
    let p99 = percentile(&latencies_ms, 99.0);
    Ok(json!({
        "orders": shipped,
        "rate": options.rate,
        "latency_ms": options.latency_ms,
        "run_after_ingest_ms": run_after_ingest_ms,
        "calls_per_order": (calls_per_order * 100.0).round() / 100.0,
        "p50_ms": round1(percentile(&latencies_ms, 50.0)),
        "p99_ms": round1(p99),
        "max_ms": round1(latencies_ms.last().copied().unwrap_or(0.0)),
        "min_possible_ms": round1(min_possible_ms),
        "p99_over_min": (p99 / min_possible_ms.max(f64::MIN_POSITIVE) * 100.0).round() / 100.0,
        "seconds": (elapsed.as_secs_f64() * 100.0).round() / 100.0,
        "calls_by_operation": by_operation,
    }))
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let options = Options {
        orders: args.next().and_then(|a| a.parse().ok()).unwrap_or(200),
        rate: args.next().and_then(|a| a.parse().ok()).unwrap_or(20.0),
        latency_ms: args.next().and_then(|a| a.parse().ok()).unwrap_or(20),
        run_after_ingest_ms: args.next().and_then(|a| a.parse().ok()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("serve_latency: cannot start a runtime: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(measure(&options)) {
        Ok(result) => println!(
            "{}",
            serde_json::to_string_pretty(&result).unwrap_or_default()
        ),
        Err(e) => {
            eprintln!("serve_latency: {e}");
            std::process::exit(1);
        }
    }
}
