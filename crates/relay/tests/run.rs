//! `relay` (= `relay run`), the main job: every flow against the embedded sandbox, and the API
//! budget of a whole run.

mod common;

use std::process::Command;

/// A summary row: (items, the flow's words, skipped, failed), read by the header's columns.
fn row<'a>(stdout: &'a str, flow: &str) -> (u64, &'a str, u64, u64) {
    let header = stdout
        .lines()
        .find(|l| l.starts_with("flow "))
        .unwrap_or_else(|| panic!("no table:\n{stdout}"));
    let at = |name: &str| {
        header
            .find(name)
            .unwrap_or_else(|| panic!("no column {name}: {header}"))
    };
    let (items, done, skipped, failed, time) = (
        at("items"),
        at("work done"),
        at("skipped"),
        at("failed"),
        at("time"),
    );
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(flow))
        .unwrap_or_else(|| panic!("no {flow} row:\n{stdout}"));
    let cell = |from: usize, to: usize| line.get(from..to.min(line.len())).unwrap_or("").trim();
    let number = |text: &str| {
        text.parse::<u64>()
            .unwrap_or_else(|_| panic!("`{text}` in {line}"))
    };
    (
        number(cell(items, done)),
        cell(done, skipped),
        number(cell(skipped, failed)),
        number(cell(failed, time)),
    )
}

/// The numbers in a flow's words, in order.
fn numbers(words: &str) -> Vec<u64> {
    words
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect()
}

#[test]
fn relay_without_a_subcommand_runs_every_flow_against_the_embedded_sandbox() {
    // The same as `cargo run -p relay` on a fresh clone: no subcommand, nothing configured.
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .env_clear()
        .output()
        .expect("relay runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("embedded sandbox")
            && stderr.contains("warehouse ships every 2nd sales order"),
        "{stderr}"
    );

    // Every flow had work, in its own words, and nothing failed.
    for flow in ["orders", "shipping", "stock", "fulfilment"] {
        let (items, words, _, failed) = row(&stdout, flow);
        assert!(items > 0, "{flow} had work:\n{stdout}");
        assert_eq!(failed, 0, "nothing failed in {flow}:\n{stdout}");
        assert!(
            numbers(words).iter().all(|n| *n > 0),
            "{flow} did something of each kind: {words}\n{stdout}"
        );
    }
    let (orders, words, _, _) = row(&stdout, "orders");
    assert!(
        words.ends_with("confirmed back") && numbers(words) == [orders, orders],
        "{words}"
    );
    let (shipped, words, _, _) = row(&stdout, "shipping");
    assert!(
        words.contains("booked")
            && words.contains("labels")
            && words.contains("notes")
            && numbers(words) == [shipped; 3],
        "{words}"
    );
    let (_, words, _, _) = row(&stdout, "stock");
    assert!(
        words.contains("on-hand rows")
            && words.contains("price rows")
            && words.contains("import job"),
        "{words}"
    );
    let (notes, words, _, _) = row(&stdout, "fulfilment");
    assert!(
        words.contains("notes written") && words.contains("partly delivered"),
        "{words}"
    );
    let [written, delivered, partly] = numbers(words)[..] else {
        panic!("{words}")
    };
    assert!(
        delivered >= 1 && partly >= 1,
        "at least one delivered and one partly delivered note: {words}"
    );
    assert_eq!((written, delivered + partly), (notes, notes), "{words}");
    assert_eq!(row(&stdout, "total").3, 0, "{stdout}");
    // A legend line per flow says what its words mean.
    for (flow, meaning) in [
        ("orders", "imported into Brightpearl"),
        ("shipping", "label files saved"),
        ("stock", "a row per SKU and location"),
        ("fulfilment", "goods-out notes as Norce delivery notes"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(flow) && l.contains(meaning)),
            "a legend line for {flow}:\n{stdout}"
        );
    }

    // Then the lifecycle on three orders, each done, through the same flows as in production.
    assert!(
        stdout.contains("the embedded shop cancelled an order"),
        "{stdout}"
    );
    for (what, entity, became) in [
        ("cancelled", "cancel ", "nShift shipment "),
        ("returned", "return ", "return shipment "),
        ("refunded", "refund NC-", "Brightpearl sales credit "),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(what))
            .unwrap_or_else(|| panic!("no {what} row:\n{stdout}"));
        assert!(
            line.contains(entity) && line.contains(became),
            "{what}: {line}\n{stdout}"
        );
    }
    assert!(
        stdout.contains("set to the cancelled status")
            && stdout.contains("-return-1.pdf")
            && stdout.contains("stock back in"),
        "{stdout}"
    );

    // Where to look next, and the advice works.
    assert!(stdout.contains("Where to look next"), "{stdout}");
    assert!(
        stdout.contains("relay verify")
            && stdout.contains("NORCE_*")
            && stdout.contains("BRIGHTPEARL_*"),
        "{stdout}"
    );
    let labels = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("labels"))
        .unwrap_or_else(|| panic!("{stdout}"))
        .trim();
    let labels_dir = labels.split(" (").next().unwrap();
    let files = std::fs::read_dir(labels_dir)
        .unwrap_or_else(|e| panic!("{labels_dir}: {e}"))
        .count() as u64;
    assert_eq!(
        files,
        shipped + 1,
        "one label per shipment and the return label in {labels_dir}"
    );
    let status = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("status"))
        .unwrap_or_else(|| panic!("{stdout}"))
        .trim();
    let args: Vec<&str> = status.split_whitespace().collect();
    assert_eq!(&args[..3], ["relay", "status", "--config"], "{status}");
    let shown = Command::new(env!("CARGO_BIN_EXE_relay"))
        .env_clear()
        .args(&args[1..])
        .output()
        .unwrap();
    let shown_text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{shown_text}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let fulfilment: Vec<&str> = shown_text
        .lines()
        .find(|l| l.starts_with("fulfilment"))
        .unwrap_or_else(|| panic!("{shown_text}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        fulfilment[1..],
        ["0", &notes.to_string(), "0", "0", "0"],
        "`relay status` reads this run's state: {shown_text}"
    );
    let state = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("state"))
        .unwrap()
        .trim();
    let _ = std::fs::remove_dir_all(state.split(" (").next().unwrap());
}

#[test]
fn the_json_summary_keeps_its_keys_and_adds_each_flows_counts() {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .env_clear()
        .args(["run", "--json", "--sandbox-orders", "8"])
        .output()
        .expect("relay runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    for key in ["flows", "errors", "dead_letters", "data_dir", "labels_dir"] {
        assert!(summary.get(key).is_some(), "{key}: {summary:#}");
    }
    // The lifecycle's acts, each done, and its second pass of orders and shipping.
    let acts = summary["lifecycle"]["acts"].as_array().unwrap();
    let whats: Vec<&str> = acts.iter().map(|a| a["what"].as_str().unwrap()).collect();
    assert_eq!(whats, ["cancelled", "returned", "refunded"], "{summary:#}");
    for act in acts {
        assert_eq!(act["done"], true, "{act}");
        assert!(
            act["order_no"].as_str().unwrap().starts_with("NC-"),
            "{act}"
        );
    }
    let names = |flows: &serde_json::Value| -> Vec<String> {
        let flows = flows.as_array().unwrap().iter();
        flows
            .map(|f| f["flow"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&summary["lifecycle"]["flows"]),
        ["orders", "shipping"]
    );
    let flows = summary["flows"].as_array().unwrap();
    assert_eq!(
        names(&summary["flows"]),
        ["orders", "shipping", "stock", "fulfilment"]
    );
    for flow in flows {
        for key in [
            "seen",
            "booked",
            "written_back",
            "done",
            "skipped",
            "failed",
            "duration_ms",
        ] {
            assert!(flow[key].is_u64(), "today's key {key}: {flow}");
        }
        for key in [
            "labels",
            "notes",
            "delivered",
            "partly_delivered",
            "onhand_rows",
            "price_rows",
            "import_jobs",
        ] {
            assert!(flow[key].is_u64(), "new key {key}: {flow}");
        }
        assert!(
            flow["seen"].as_u64().unwrap() > 0 && flow["failed"] == 0,
            "{flow}"
        );
    }
    let fulfilment = &flows[3];
    assert!(
        fulfilment["delivered"].as_u64().unwrap() >= 1
            && fulfilment["partly_delivered"].as_u64().unwrap() >= 1,
        "{fulfilment}"
    );
    assert!(
        flows[2]["import_jobs"].as_u64().unwrap() >= 2
            && flows[2]["onhand_rows"].as_u64().unwrap() > 0,
        "{}",
        flows[2]
    );
    let _ = std::fs::remove_dir_all(summary["data_dir"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_embedded_sandbox_fulfilment_writes_delivery_notes_with_tracking_and_statuses_to_norce()
 {
    // The sandbox `relay run` starts (on a fixed clock), and the flows in the run's order.
    let mut config = relay::cli::run::embedded_sandbox_config(42, 20, 50, 2);
    config.norce.job_delay_secs = 0.0;
    // Brightpearl's throttle budget is per account and process-wide in the client: an account of
    // its own, so the other in-process run of this file keeps its budget.
    config.brightpearl.account = "fulfilmentdemo".into();
    let sandbox = common::sandbox_with(config).await;
    let dir = std::env::temp_dir().join(format!("relay-run-fulfilment-{}", std::process::id()));
    let mut relay_config = relay::config::RelayConfig::default();
    relay_config.state.dir = dir.clone();
    relay_config.stock.job_wait.initial_interval_ms = 1;
    let context = common::context(&sandbox, relay_config);
    let orders = relay::flows::orders::run(&context).await.unwrap();
    relay::flows::shipping::run(&context).await.unwrap();
    relay::flows::stock::run(&context).await.unwrap();
    let fulfilment = relay::flows::orders::run_fulfilment(&context)
        .await
        .unwrap();
    assert_eq!(orders.failed, 0, "{orders:?}");
    // Every 2nd sales order from the first was shipped as it was created.
    let shipped = orders.booked.div_ceil(2);
    assert_eq!(
        (fulfilment.seen, fulfilment.notes, fulfilment.failed),
        (shipped, shipped, 0),
        "{fulfilment:?}"
    );
    assert_eq!(
        (fulfilment.delivered, fulfilment.partly_delivered),
        (shipped - 1, 1),
        "{fulfilment:?}"
    );

    let base = sandbox.base_url();
    let mut statuses = Vec::new();
    for record in context.store.list(Some("fulfilment"), None).unwrap() {
        let note_no = record.target_id.clone().unwrap();
        assert_eq!(note_no, format!("GON-{}", record.source_id));
        let notes = common::http(
            "GET",
            &format!("{base}/_sandbox/norce/delivery-notes?noteNo={note_no}"),
            None,
        )
        .await
        .json();
        let notes = notes.as_array().unwrap();
        assert_eq!(notes.len(), 1, "{note_no}: {notes:?}");
        let tracking = format!("SBXTRK{:010}", record.source_id.parse::<u64>().unwrap());
        assert_eq!(
            notes[0]["packages"][0]["parcelNumber"],
            tracking.as_str(),
            "{:#}",
            notes[0]
        );
        let order = common::http(
            "GET",
            &format!(
                "{base}/_sandbox/norce/orders/{}",
                notes[0]["orderNo"].as_str().unwrap()
            ),
            None,
        )
        .await
        .json();
        statuses.push(order["status"].as_str().unwrap().to_owned());
    }
    statuses.sort();
    let partly = statuses.iter().filter(|s| *s == "PartlyDelivered").count();
    assert_eq!(
        (partly, statuses.len() - partly),
        (1, shipped as usize - 1),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| s == "Delivered" || s == "PartlyDelivered"),
        "{statuses:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_run_fetches_one_norce_token_and_never_trips_brightpearl_throttling() {
    let sandbox = common::sandbox_with(sandbox::SandboxConfig::default()).await;
    let mut config = relay::config::RelayConfig::default();
    config.stock.job_wait.initial_interval_ms = 1;
    config.state.dir =
        std::env::temp_dir().join(format!("relay-run-budget-{}", std::process::id()));
    let context = common::context(&sandbox, config);
    // Import jobs complete on the sandbox's clock: move it while the stock pass waits.
    let state = sandbox.state().clone();
    let pump = tokio::spawn(async move {
        loop {
            state.clock.advance(std::time::Duration::from_secs(10));
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    relay::flows::orders::run(&context).await.unwrap();
    relay::flows::shipping::run(&context).await.unwrap();
    relay::flows::stock::run(&context).await.unwrap();
    relay::flows::orders::run_fulfilment(&context)
        .await
        .unwrap();
    pump.abort();

    let log = sandbox.state().faults.requests();
    let token_requests = log
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/identity/1.0/connect/token")
        .count();
    // One process, one client id, one token lifetime (3600 s by default, and the run is far
    // shorter): exactly one token request.
    assert_eq!(
        token_requests, 1,
        "Norce token endpoint called {token_requests} times"
    );
    let throttled = log
        .iter()
        .filter(|r| r.path.starts_with("/public-api/") && r.status == 503)
        .count();
    assert_eq!(throttled, 0, "Brightpearl answered 503 {throttled} times");
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("relay-run-budget-{}", std::process::id())),
    );
}
