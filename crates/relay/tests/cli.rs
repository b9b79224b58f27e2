//! The `relay` binary's operator commands (`status`, `cursor`, `replay`) over a data folder in a
//! temporary directory, with a cleared environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use relay::state::{SqliteStore, Status, Store};
use serde_json::Value;

/// A fresh folder with a `relay.toml` whose `[state] dir` is `data` inside it; removed on drop.
struct Workspace {
    root: PathBuf,
}

impl Workspace {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("relay-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let data = root.join("data");
        std::fs::write(
            root.join("relay.toml"),
            format!("[state]\ndir = {:?}\n", data.to_str().unwrap()),
        )
        .unwrap();
        Self { root }
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn config(&self) -> PathBuf {
        self.root.join("relay.toml")
    }

    fn relay(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
        command.env_clear().current_dir(&self.root);
        let (first, rest) = args.split_first().unwrap();
        command.arg(first);
        // `cursor` takes `--config` before its subcommand.
        command.arg("--config").arg(self.config());
        command.args(rest);
        command.output().unwrap()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn store(path: &Path) -> SqliteStore {
    SqliteStore::open_in(path).unwrap()
}

#[test]
fn status_on_an_empty_store() {
    let ws = Workspace::new("status-empty");
    let out = ok(&ws.relay(&["status"]));
    assert!(out.contains(ws.data().to_str().unwrap()), "{out}");
    assert!(out.contains("no entities yet"), "{out}");
    assert!(out.contains("inbox: 0 pending"), "{out}");
    assert!(out.contains("dead letters: none"), "{out}");
    let json: Value = serde_json::from_str(&ok(&ws.relay(&["status", "--json"]))).unwrap();
    assert_eq!(json["entities"], serde_json::json!([]));
    assert_eq!(json["dead_letters"], serde_json::json!([]));
    assert_eq!(json["inbox_pending"], 0);
}

#[test]
fn status_shows_entities_per_flow_and_the_dead_letters() {
    let ws = Workspace::new("status-full");
    {
        let store = store(&ws.data());
        store.upsert_pending("shipping", "NC-1", None).unwrap();
        store.upsert_pending("shipping", "NC-2", None).unwrap();
        store.upsert_pending("orders", "NC-9", Some("{}")).unwrap();
        store
            .dead_letter("orders", "NC-9", "unknown SKU SKU-404")
            .unwrap();
    }
    let out = ok(&ws.relay(&["status"]));
    let lines: Vec<&str> = out.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("flow") && l.contains("pending"))
        .expect("entity table");
    assert!(
        lines[header + 2..].iter().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["orders", "0", "0", "1", "0", "0"]
        ),
        "{out}"
    );
    assert!(
        lines[header + 2..]
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["shipping", "2", "0", "0", "0", "0"]),
        "{out}"
    );
    assert!(out.contains("dead letters: 1"), "{out}");
    let row = lines
        .iter()
        .find(|l| l.contains("NC-9") && l.contains("unknown SKU SKU-404"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.starts_with("1 ") && row.contains("orders"), "{row}");
    assert!(out.contains("relay replay"), "{out}");
}

#[test]
fn cursor_set_then_show() {
    let ws = Workspace::new("cursor");
    let out = ok(&ws.relay(&["cursor", "set", "shipping", "2026-01-01T00:00:00Z"]));
    assert!(
        out.contains("shipping") && out.contains("(unset) -> 2026-01-01T00:00:00Z"),
        "{out}"
    );
    // Other offsets are normalised to UTC.
    ok(&ws.relay(&["cursor", "set", "stock", "2026-02-01T02:00:00+02:00"]));
    let out = ok(&ws.relay(&["cursor", "show"]));
    let shipping = out
        .lines()
        .find(|l| l.starts_with("shipping"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(shipping.ends_with("2026-01-01T00:00:00Z"), "{out}");
    let stock = out
        .lines()
        .find(|l| l.starts_with("stock"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(stock.ends_with("2026-02-01T00:00:00Z"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("orders") && l.ends_with("(unset)")),
        "{out}"
    );
    let json: Value = serde_json::from_str(&ok(&ws.relay(&["cursor", "show", "--json"]))).unwrap();
    assert_eq!(json["shipping"], "2026-01-01T00:00:00Z");
    assert_eq!(json["orders"], Value::Null);
    assert_eq!(
        store(&ws.data()).cursor("shipping").unwrap().as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
}

#[test]
fn a_bad_cursor_time_or_flow_is_refused_naming_them() {
    let ws = Workspace::new("cursor-bad");
    let out = ws.relay(&["cursor", "set", "shipping", "yesterday"]);
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("`shipping`") && err.contains("RFC 3339") && err.contains("yesterday"),
        "{err}"
    );
    assert!(
        err.contains("2026-01-01T00:00:00Z"),
        "the message shows the format: {err}"
    );

    let out = ws.relay(&["cursor", "set", "shiping", "2026-01-01T00:00:00Z"]);
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("`shiping`") && err.contains("shipping"),
        "{err}"
    );
    assert_eq!(
        store(&ws.data()).cursor("shipping").unwrap(),
        None,
        "nothing was written"
    );

    // The alerts cursor is nShift's feed position (a fetchId), never a time.
    let out = ws.relay(&["cursor", "set", "shipping-alerts", "2026-01-01T00:00:00Z"]);
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("`shipping-alerts`") && err.contains("fetchId") && err.contains("-1"),
        "{err}"
    );
    assert_eq!(
        store(&ws.data()).cursor("shipping-alerts").unwrap(),
        None,
        "nothing was written"
    );
    ok(&ws.relay(&["cursor", "set", "shipping-alerts", "-1"]));
    assert_eq!(
        store(&ws.data())
            .cursor("shipping-alerts")
            .unwrap()
            .as_deref(),
        Some("-1")
    );
}

#[test]
fn replay_all_failed_requeues_the_dead_letters() {
    let ws = Workspace::new("replay");
    {
        let store = store(&ws.data());
        for id in ["NC-7", "NC-8"] {
            store
                .upsert_pending("orders", id, Some("{\"x\":1}"))
                .unwrap();
            store
                .record_failure("orders", id, "Brightpearl 503")
                .unwrap();
            store.dead_letter("orders", id, "Brightpearl 503").unwrap();
        }
    }
    let out = ok(&ws.relay(&["replay", "--all-failed"]));
    assert!(out.contains("NC-7") && out.contains("NC-8"), "{out}");
    assert!(
        out.contains("2 item(s) requeued") && out.contains("relay run"),
        "{out}"
    );
    let store = store(&ws.data());
    assert!(store.dead_letters().unwrap().is_empty());
    let record = store.get("orders", "NC-7").unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (Status::Pending, 0));

    // Nothing left: says so and succeeds.
    let out = ok(&ws.relay(&["replay", "--all-failed"]));
    assert!(out.contains("no dead letters"), "{out}");
}

#[test]
fn replay_by_id_names_unknown_ids_and_needs_a_choice() {
    let ws = Workspace::new("replay-id");
    let letter = {
        let store = store(&ws.data());
        store.upsert_pending("shipping", "NC-1", None).unwrap();
        store
            .dead_letter("shipping", "NC-1", "no service for method X")
            .unwrap()
    };
    let out = ws.relay(&["replay", &letter.id.to_string(), "999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("shipping NC-1 is pending again"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("no dead letter with id 999"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        store(&ws.data())
            .get("shipping", "NC-1")
            .unwrap()
            .unwrap()
            .status,
        Status::Pending
    );

    let out = ws.relay(&["replay"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap asks for ids or --all-failed"
    );
    assert!(
        text(&out.stderr).contains("--all-failed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_configuration_file_is_named() {
    let ws = Workspace::new("bad-config");
    std::fs::write(ws.config(), "[serve]\nlisten = \"not an address\"\n").unwrap();
    let out = ws.relay(&["status"]);
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("relay.toml") && err.contains("listen"),
        "{err}"
    );
}

#[test]
fn the_config_option_goes_before_or_after_the_subcommand() {
    let ws = Workspace::new("config-first");
    let config = ws.config();
    for args in [
        vec!["-c", config.to_str().unwrap(), "status"],
        vec!["--config", config.to_str().unwrap(), "status", "--json"],
        vec!["status", "-c", config.to_str().unwrap()],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_relay"))
            .env_clear()
            .current_dir(&ws.root)
            .args(&args)
            .output()
            .unwrap();
        let out = ok(&output);
        assert!(out.contains(ws.data().to_str().unwrap()), "{args:?}: {out}");
    }
}

#[test]
fn received_text_cannot_drive_the_terminal() {
    let ws = Workspace::new("hostile-text");
    let hostile = "NC-\u{1b}]0;pwned\u{7}\u{1b}[31mred\u{0}\u{202e}";
    {
        let store = store(&ws.data());
        store.upsert_pending("orders", hostile, Some("{}")).unwrap();
        store
            .dead_letter("orders", hostile, &format!("unknown SKU {hostile}"))
            .unwrap();
    }
    let out = ok(&ws.relay(&["status"]));
    assert!(
        !out.chars()
            .any(|c| c.is_control() && c != '\n' || c == '\u{202e}'),
        "{out:?}"
    );
    assert!(out.contains("NC-\\u{1b}]0;pwned\\u{7}"), "{out}");
    let out = ok(&ws.relay(&["replay", "--all-failed"]));
    assert!(
        !out.contains('\u{1b}') && out.contains("\\u{1b}"),
        "{out:?}"
    );
}

#[test]
fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let ws = Workspace::new("no-colour");
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .env_clear()
        .env("RUST_LOG", "info")
        .current_dir(&ws.root)
        // Against the embedded sandbox: requests and spans enough to log.
        .args(["verify", "-c", ws.config().to_str().unwrap()])
        .output()
        .unwrap();
    ok(&output);
    let stderr = text(&output.stderr);
    assert!(!stderr.is_empty(), "debug logs were written");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}
