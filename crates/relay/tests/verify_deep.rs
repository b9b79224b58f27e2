//! `relay verify --deep` against the sandbox: it calls every read the flows make and nothing
//! else, finds no difference on the faithful simulators, names each difference the drift switch
//! injects with its path, and saves answers with no personal data or secret left.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use relay::config::RelayConfig;
use relay::flows::{orders, shipping, stock};
use relay::verify::Platform;
use relay::verify::deep::{self, DeepOptions, DeepReport, UNREACHABLE_READS, operation_of};
use sandbox::{DriftChange, DriftRule, JsonKind, Sandbox};
use serde_json::json;

/// A data folder of this test's own.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "relay-verify-deep-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The sandbox `relay run` embeds (a warehouse that ships, so fulfilment reads too), with
/// Connect jobs that finish at once.
async fn flows_sandbox(drift: Vec<DriftRule>) -> Sandbox {
    let mut config = relay::cli::run::embedded_sandbox_config(42, 20, 50, 2);
    config.norce.job_delay_secs = 0.0;
    config.drift = drift;
    // The sandbox's clock starts now: --deep reads the orders of the last days by wall clock.
    Sandbox::start(config).await.expect("sandbox starts")
}

/// The spec operations of the requests the sandbox logged (token requests left out), with
/// their method.
fn logged_operations(sandbox: &Sandbox) -> BTreeSet<(Platform, String, &'static str)> {
    let creds = sandbox.credentials();
    let nshift_prefix = reqwest::Url::parse(&creds.nshift.base_url)
        .unwrap()
        .path()
        .to_owned();
    sandbox
        .state()
        .faults
        .requests()
        .into_iter()
        .filter(|r| !r.path.starts_with("/_sandbox"))
        .filter_map(|r| {
            let platform = if r.path.starts_with(&nshift_prefix) {
                Platform::Nshift
            } else if r.path.starts_with("/public-api/") {
                Platform::Brightpearl
            } else {
                Platform::Norce
            };
            let (_, op) = operation_of(platform, &r.method, &r.path)
                .unwrap_or_else(|| panic!("no spec operation for {} {}", r.method, r.path));
            (!["RequestToken", "CreateJwtSession"].contains(&op.id))
                .then(|| (platform, r.method.clone(), op.id))
        })
        .collect()
}

async fn deep(sandbox: &Sandbox, save: Option<PathBuf>) -> DeepReport {
    let settings = relay::embedded::settings_for(&sandbox.credentials());
    deep::verify_deep(
        &settings,
        &RelayConfig::default(),
        &Platform::ALL,
        &DeepOptions {
            save,
            ..DeepOptions::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_calls_every_read_the_flows_make_and_never_writes() {
    let sandbox = flows_sandbox(Vec::new()).await;
    let mut config = RelayConfig::default();
    config.state.dir = temp_dir("flows");
    let ctx = common::context(&sandbox, config);
    orders::run(&ctx).await.unwrap();
    shipping::run(&ctx).await.unwrap();
    stock::run(&ctx).await.unwrap();
    let fulfilled = orders::run_fulfilment(&ctx).await.unwrap();
    assert!(fulfilled.seen > 0, "fulfilment had shipped notes to read");
    let flows = logged_operations(&sandbox);
    let mut flow_reads: BTreeSet<(Platform, &str)> = flows
        .iter()
        .filter(|(_, method, _)| method == "GET")
        .map(|(platform, _, op)| (*platform, *op))
        .collect();
    // `relay serve` lists the Brightpearl webhooks before it registers its own.
    flow_reads.insert((Platform::Brightpearl, "ListWebhooks"));
    assert!(
        flow_reads.len() >= 15,
        "the flows read a fair part of the APIs: {flow_reads:?}"
    );

    sandbox.state().faults.clear_requests();
    let report = deep(&sandbox, None).await;
    assert!(report.passed(), "{}", deep::render(&report));
    assert!(!report.has_differences(), "{}", deep::render(&report));
    let called: BTreeSet<(Platform, &str)> = report
        .operations
        .iter()
        .filter(|o| o.calls > 0)
        .map(|o| (o.platform, o.operation))
        .collect();
    let unreachable: BTreeSet<(Platform, &str)> = UNREACHABLE_READS
        .iter()
        .map(|(p, op, _)| (*p, *op))
        .collect();
    let not_covered: Vec<_> = flow_reads
        .difference(&called)
        .filter(|read| !unreachable.contains(read))
        .collect();
    assert!(
        not_covered.is_empty(),
        "reads the flows make that --deep does not: {not_covered:?}\n{}",
        deep::render(&report)
    );
    // Never a write: every request of the deep check is a read (tokens aside).
    let verify_requests = logged_operations(&sandbox);
    let writes: Vec<_> = verify_requests
        .iter()
        .filter(|(_, method, _)| method != "GET")
        .collect();
    assert!(writes.is_empty(), "--deep wrote: {writes:?}");
    // What it called is what it reports.
    let logged: BTreeSet<(Platform, &str)> = verify_requests
        .iter()
        .map(|(platform, _, op)| (*platform, *op))
        .collect();
    assert_eq!(logged, called);
}

fn rule(path_prefix: &str, change: DriftChange) -> DriftRule {
    DriftRule {
        path_prefix: path_prefix.to_owned(),
        method: Some("GET".to_owned()),
        change,
    }
}

/// One difference of each kind on each platform.
fn drift_rules() -> Vec<DriftRule> {
    vec![
        // Unknown fields, one of them personal.
        rule(
            "/commerce/order/1.1/GetOrder",
            DriftChange::Extra {
                path: "CustomerEmail".into(),
                value: json!("drifted.person@example.com"),
            },
        ),
        rule(
            "/public-api/sandboxacct/warehouse-service/warehouse",
            DriftChange::Extra {
                path: "response[].climateZone".into(),
                value: json!("cold"),
            },
        ),
        // A required field absent: Query orders without `orderNo`.
        rule(
            "/commerce/query/3.0/Orders/Orders",
            DriftChange::Remove {
                path: "value[].orderNo".into(),
            },
        ),
        // A value of another type: an agent's `id` as an object.
        rule(
            "/rs-extapi/v1/addresses/agents",
            DriftChange::Retype {
                path: "[].id".into(),
                to: Some(JsonKind::Object),
            },
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_reported_with_the_path_kind_and_spec_of_each_difference() {
    let sandbox = flows_sandbox(drift_rules()).await;
    let report = deep(&sandbox, None).await;
    let table = deep::render(&report);
    let check = |platform: Platform, operation: &str| {
        report
            .operations
            .iter()
            .find(|o| o.platform == platform && o.operation == operation)
            .unwrap_or_else(|| panic!("{operation} not called:\n{table}"))
    };

    let get_order = check(Platform::Norce, "GetOrder");
    assert!(
        get_order.passed(),
        "an unknown field is a warning:\n{table}"
    );
    assert_eq!(get_order.unknown.len(), 1, "{table}");
    assert_eq!(get_order.unknown[0].path, "CustomerEmail");
    assert_eq!(get_order.unknown[0].example, json!("<masked: 26 chars>"));
    assert_eq!(get_order.unknown[0].schema, "Order");
    assert_eq!(get_order.spec, "specs/norce/services.yaml");
    assert_eq!(get_order.schema, "Order");

    let warehouses = check(Platform::Brightpearl, "ListWarehouses");
    assert_eq!(warehouses.unknown.len(), 1, "{table}");
    assert_eq!(warehouses.unknown[0].path, "response[].climateZone");
    assert_eq!(warehouses.unknown[0].example, json!("cold"));
    assert_eq!(
        warehouses.unknown[0].schema, "NamedItem",
        "the schema to update is the row's, not the envelope's"
    );
    assert_eq!(warehouses.schema, "NamedItemListResponse");
    assert_eq!(warehouses.spec, "specs/brightpearl/warehouse.yaml");

    let query = check(Platform::Norce, "QueryOrders");
    assert!(!query.passed(), "{table}");
    assert_eq!(query.missing.len(), 1, "{table}");
    assert_eq!(query.missing[0].path, "value[0].orderNo");
    assert_eq!(query.missing[0].schema, "Order");
    assert_eq!(query.schema, "OrdersPage");
    assert_eq!(query.spec, "specs/norce/query.yaml");

    let agents = check(Platform::Nshift, "FindAgents");
    assert!(!agents.passed(), "{table}");
    assert_eq!(agents.mismatched.len(), 1, "{table}");
    assert_eq!(agents.mismatched[0].path, "[0].id");
    assert_eq!(agents.mismatched[0].found, "map");
    assert_eq!(agents.mismatched[0].schema, "Agent");
    assert!(!agents.mismatched[0].expected.is_empty());

    // Nothing else differs.
    let differing: BTreeSet<&str> = report
        .operations
        .iter()
        .filter(|o| o.has_differences() || !o.passed())
        .map(|o| o.operation)
        .collect();
    assert_eq!(
        differing,
        BTreeSet::from(["GetOrder", "ListWarehouses", "QueryOrders", "FindAgents"]),
        "{table}"
    );
    assert!(report.decode_failed());
    // The table names each difference with its path, spec file and schema.
    for expected in [
        "unknown field    CustomerEmail  (schema Order)",
        "unknown field    response[].climateZone  (schema NamedItem)  example: \"cold\"",
        "missing field    value[0].orderNo  (schema Order)",
        "type mismatch    [0].id  (schema Agent)",
        "specs/norce/services.yaml, answer schema Order",
        "specs/brightpearl/warehouse.yaml, answer schema NamedItemListResponse",
        "FAILED: does not decode",
    ] {
        assert!(table.contains(expected), "{expected:?} in\n{table}");
    }
    assert!(!table.contains("drifted.person"), "{table}");
}

/// Every personal value of the sandbox's customers and every credential.
fn personal_values_and_secrets(sandbox: &Sandbox) -> Vec<String> {
    let dataset = &sandbox.state().dataset;
    let mut values: Vec<String> = dataset
        .customers
        .iter()
        .flat_map(|c| {
            [
                c.email.clone(),
                c.phone.clone(),
                c.address.street.clone(),
                format!("\"{}\"", c.first_name),
                format!("\"{}\"", c.last_name),
                format!("\"{}\"", c.address.zip),
            ]
        })
        .collect();
    let creds = sandbox.credentials();
    values.extend([
        creds.norce.client_secret.clone(),
        creds.nshift.secret_id.clone(),
        creds.brightpearl.staff_token.clone(),
        creds.brightpearl.client_secret.clone(),
        "drifted.person@example.com".to_owned(),
        "access_token".to_owned(),
        "Bearer".to_owned(),
    ]);
    values
}

#[tokio::test(flavor = "multi_thread")]
async fn saved_answers_hold_no_personal_data_or_secret() {
    // Drift that keeps the Query orders readable, so the contact search by e-mail runs too.
    let mut rules = drift_rules();
    rules.retain(|r| !matches!(r.change, DriftChange::Remove { .. }));
    let sandbox = flows_sandbox(rules).await;
    let dir = temp_dir("save");
    let report = deep(&sandbox, Some(dir.clone())).await;
    assert_eq!(report.saved_to.as_deref(), Some(dir.to_str().unwrap()));
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let answered: BTreeSet<String> = report
        .operations
        .iter()
        .filter(|o| o.decoded > 0 || !o.decode_errors.is_empty())
        .map(|o| deep::saved_file_name(o.platform, o.operation))
        .collect();
    let saved: BTreeSet<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(saved, answered, "one file per operation with a JSON answer");
    let leaks = personal_values_and_secrets(&sandbox);
    let mut masked_somewhere = false;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let saved: serde_json::Value = serde_json::from_str(&text).unwrap();
        let request = saved["request"].as_str().unwrap();
        assert!(request.starts_with("GET /"), "{request}");
        assert!(saved["response"].is_object() || saved["response"].is_array());
        for leak in &leaks {
            assert!(
                !text.contains(leak.as_str()),
                "{leak} in {}",
                file.display()
            );
        }
        masked_somewhere |= text.contains("<masked: ");
    }
    assert!(masked_somewhere, "the answers had personal data to mask");
    // The contact search was made by a real e-mail, masked in the request line.
    let contacts = std::fs::read_to_string(dir.join("brightpearl-SearchContacts.json")).unwrap();
    assert!(contacts.contains("primaryEmail=%3Cmasked"), "{contacts}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_prints_json_and_exits_1_when_an_answer_does_not_decode() {
    let sandbox = flows_sandbox(drift_rules()).await;
    let envs = relay::embedded::env_pairs(&sandbox.credentials());
    let run = move |args: &'static [&'static str]| {
        let envs = envs.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_relay"))
                .env_clear()
                .envs(envs)
                .args(args)
                .output()
                .unwrap()
        })
    };
    let output = run(&["verify", "--deep", "--json"]).await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let operations = report["operations"].as_array().unwrap();
    let query = operations
        .iter()
        .find(|o| o["operation"] == "QueryOrders")
        .unwrap();
    assert_eq!(
        query["missing"],
        json!([{"path": "value[0].orderNo", "schema": "Order"}])
    );
    assert_eq!(query["platform"], "norce");

    // Differences alone are warnings: exit 0.
    sandbox.state().drift.clear();
    sandbox
        .state()
        .drift
        .add(drift_rules().swap_remove(0))
        .unwrap();
    let output = run(&["verify", "--deep"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok, differs from the spec"), "{stdout}");
}

#[test]
fn with_nothing_configured_deep_checks_the_embedded_sandbox_cleanly() {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .env_clear()
        .args(["verify", "--deep"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(!stdout.contains("differs"), "{stdout}");
    for operation in [
        "GetApplication",
        "FetchAlerts",
        "SearchProducts",
        "ListOrderStatuses",
    ] {
        assert!(stdout.contains(operation), "{operation}:\n{stdout}");
    }
}

#[test]
fn save_needs_deep() {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .env_clear()
        .args(["verify", "--save", "x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--deep"));
}
