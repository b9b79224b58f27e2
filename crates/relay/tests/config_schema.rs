//! `relay config schema` (the JSON Schema editors use for `relay.toml`), `relay config check`,
//! and every section of the file checked when it loads.

use std::path::PathBuf;
use std::process::{Command, Output};

use relay::config::RelayConfig;
use serde_json::Value;

fn relay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(args)
        .env_remove("RELAY_CONFIG")
        .output()
        .expect("the relay binary runs")
}

fn schema() -> Value {
    let out = relay(&["config", "schema"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the schema is JSON")
}

/// A schema node with its `$ref` (directly or as the one `allOf` entry) followed.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let reference = node["$ref"]
        .as_str()
        .or_else(|| node["allOf"][0]["$ref"].as_str());
    match reference.and_then(|r| r.strip_prefix("#/")) {
        Some(path) => {
            let target = path
                .split('/')
                .fold(root, |node, part| &node[part.replace("~1", "/")]);
            resolve(root, target)
        }
        None => node,
    }
}

/// The schema of the value at `key` inside the table described by `node`.
fn child<'a>(root: &'a Value, node: &'a Value, key: &str) -> Option<&'a Value> {
    let node = resolve(root, node);
    if let Some(property) = node["properties"].get(key) {
        return Some(resolve(root, property));
    }
    // A map (`[shipping.services.<code>]`): every key has the `additionalProperties` schema.
    match &node["additionalProperties"] {
        Value::Object(_) => Some(resolve(root, &node["additionalProperties"])),
        _ => None,
    }
}

#[test]
fn the_schema_has_every_section_and_documents_each_key_with_its_default() {
    let root = schema();
    assert_eq!(
        root,
        RelayConfig::json_schema(),
        "the CLI prints the library's"
    );
    assert_eq!(
        root["additionalProperties"], false,
        "an unknown section is flagged"
    );
    for section in ["state", "run", "shipping", "stock", "orders", "serve"] {
        let node = child(&root, &root, section).unwrap_or_else(|| panic!("[{section}]"));
        assert!(
            node["properties"]
                .as_object()
                .is_some_and(|p| !p.is_empty()),
            "[{section}] lists its keys: {node}"
        );
        assert_eq!(
            node["additionalProperties"], false,
            "[{section}]: a misspelt key is flagged"
        );
        assert!(
            root["properties"][section]["description"].is_string(),
            "[{section}] is described"
        );
    }
    let serve = child(&root, &root, "serve").unwrap();
    let limit = &serve["properties"]["body_limit_bytes"];
    assert_eq!(limit["default"], 1024 * 1024, "{limit}");
    assert_eq!(limit["minimum"], 1, "{limit}");
    assert!(
        limit["description"]
            .as_str()
            .is_some_and(|d| d.contains("request body")),
        "{limit}"
    );
    let shipping = child(&root, &root, "shipping").unwrap();
    let mapping = child(&root, &shipping["properties"]["services"], "ANY_METHOD")
        .expect("services is a map of delivery methods");
    assert!(mapping["properties"]["service_id"].is_object(), "{mapping}");
    let run = child(&root, &root, "run").unwrap();
    assert_eq!(run["properties"]["max_attempts"]["default"], 5);
}

#[test]
fn the_schema_knows_every_key_of_the_example_file() {
    let root = schema();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("relay.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let example: toml::Table = toml::from_str(&text).unwrap();
    fn walk(root: &Value, node: &Value, value: &toml::Value, at: &str, seen: &mut usize) {
        match value {
            toml::Value::Table(table) => {
                for (key, value) in table {
                    let here = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    let schema = child(root, node, key)
                        .unwrap_or_else(|| panic!("the schema has no `{here}`"));
                    *seen += 1;
                    walk(root, schema, value, &here, seen);
                }
            }
            toml::Value::Array(items) => {
                let item = resolve(root, &resolve(root, node)["items"]);
                for value in items.iter().filter(|v| v.is_table()) {
                    walk(root, item, value, &format!("{at}[]"), seen);
                }
            }
            _ => {}
        }
    }
    let mut seen = 0;
    walk(&root, &root, &toml::Value::Table(example), "", &mut seen);
    assert!(seen > 30, "the example sets {seen} keys");
}

#[test]
fn an_invalid_value_in_each_section_is_refused_at_load_naming_the_key_and_what_to_do() {
    for (text, key, advice) in [
        (
            "[state]\nretention_days = 0\n",
            "state.retention_days",
            "between 1 and",
        ),
        ("[run]\nconcurrency = 0\n", "run.concurrency", "at least 1"),
        (
            "[shipping]\norder_statuses = [\"Shipped\"]\n",
            "shipping.order_statuses",
            "use some of Created",
        ),
        (
            "[shipping.services.DHL]\ncustomer_no = \"1\"\n",
            "shipping.services.DHL.service_id",
            "set the nShift service code",
        ),
        (
            "[stock]\nvat_percent = 250\n",
            "stock.vat_percent",
            "percentage from 0 to 100",
        ),
        (
            "[[stock.warehouses]]\nbrightpearl_warehouse = 2\nnorce_warehouse = \" \"\n",
            "stock.warehouses[0].norce_warehouse",
            "Norce warehouse code",
        ),
        (
            "[orders]\nconfirmed_status = \"Shipped-ish\"\n",
            "orders.confirmed_status",
            "use one of",
        ),
        (
            "[serve]\nbody_limit_bytes = 0\n",
            "serve.body_limit_bytes",
            "at least 1",
        ),
        (
            "[serve]\npublic_url = \"relay.example.com\"\n",
            "serve.public_url",
            "https://relay.example.com",
        ),
    ] {
        let err = RelayConfig::parse(text, "relay.toml")
            .expect_err(text)
            .to_string();
        assert!(
            err.contains(&format!("`{key}`")) && err.contains(advice),
            "{text}: {err}"
        );
    }
    // Unknown keys and values of the wrong type name the key too, with the line.
    for (text, key) in [
        ("[shipping]\nlabel_dir = \"x\"\n", "label_dir"),
        (
            "[orders]\nunmatched_sku = \"ignore\"\n",
            "`orders.unmatched_sku`",
        ),
        ("[run]\nconcurrency = \"eight\"\n", "`run.concurrency`"),
        (
            "[[stock.warehouses]]\nbrightpearl_warehouse = \"two\"\nnorce_warehouse = \"WH1\"\n",
            "stock.warehouses[0].brightpearl_warehouse",
        ),
        ("[queue]\nx = 1\n", "queue"),
    ] {
        let err = RelayConfig::parse(text, "relay.toml")
            .expect_err(text)
            .to_string();
        assert!(
            err.contains("relay.toml") && err.contains(key) && err.contains("line"),
            "{text}: {err}"
        );
    }
}

#[test]
fn config_check_exits_non_zero_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("relay-config-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("relay.example.toml");
    let out = relay(&["config", "check", "-c", good.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let bad = dir.join("relay.toml");
    std::fs::write(&bad, "[shipping]\nmax_parcel_weight_kg = 0.0\n").unwrap();
    let out = relay(&["config", "check", "-c", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("shipping.max_parcel_weight_kg") && stderr.contains("above 0"),
        "{stderr}"
    );

    let out = relay(&[
        "config",
        "check",
        "-c",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "an unreadable file");
    let out = relay(&["config", "check"]);
    assert_eq!(out.status.code(), Some(2), "no file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_check_takes_the_file_before_or_after_the_subcommand() {
    let dir = std::env::temp_dir().join(format!("relay-config-first-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("relay.example.toml");
    let bad = dir.join("relay.toml");
    std::fs::write(&bad, "[shipping]\nmax_parcel_weight_kg = 0.0\n").unwrap();
    let missing = dir.join("missing.toml");
    for (file, code, expected) in [
        (&good, 0, "valid"),
        (&bad, 1, "shipping.max_parcel_weight_kg"),
        (&missing, 2, "missing.toml"),
    ] {
        let file = file.to_str().unwrap();
        let equals = format!("--config={file}");
        let after = relay(&["config", "check", "-c", file]);
        for args in [
            vec!["-c", file, "config", "check"],
            vec!["--config", file, "config", "check"],
            vec![equals.as_str(), "config", "check"],
        ] {
            let out = relay(&args);
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(code), "{args:?}: {said}");
            assert_eq!(out.status.code(), after.status.code(), "{args:?}: {said}");
            assert_eq!(out.stdout, after.stdout, "{args:?}");
            assert_eq!(out.stderr, after.stderr, "{args:?}");
            assert!(said.contains(expected), "{args:?}: {said}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
