//! The operator console in a real browser: headless Chromium over WebDriver (see
//! `common/browser.rs`) against `relay serve` in-process on 127.0.0.1, with the embedded sandbox
//! behind it. The test relies only on the console's HTML contract (routes and element ids).
//!
//! The scenario: a sandbox fault makes nShift refuse every booking, so the start's shipping pass
//! dead-letters the orders; the operator signs in (a wrong token first), finds one order by its
//! number, sees it failed, and, once the fault is gone, retries it from its page until it is
//! done. Along the way: the session cookie is HttpOnly, a POST without the CSRF token is refused,
//! and screenshots of each page are taken (into `docs/console/` with
//! `RELAY_UPDATE_SCREENSHOTS=1`, else into a temporary folder, so CI leaves the tree clean).
//!
//! Without Chromium the tests print `SKIPPED` and pass; with `CI=true` they fail instead.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use browser::Browser;
use relay::config::RelayConfig;
use relay::serve::{self, SecretString, ServeSecrets};
use relay::state::Status;
use sandbox::{DatasetConfig, FaultRule, Sandbox, SandboxConfig};
use serde_json::{Value, json};

const TOKEN: &str = "console-token-for-the-browser-test";

/// How long one page may take to show the element a step waits for.
const PAGE: Duration = Duration::from_secs(10);

/// Where the screenshots go: `docs/console/` when `RELAY_UPDATE_SCREENSHOTS=1` (to refresh the
/// documentation's pictures), else a folder under the temporary directory, printed at the end.
fn screenshot_dir() -> PathBuf {
    let dir = if std::env::var("RELAY_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        // The workspace's root is two folders above this crate's.
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .expect("crates/relay is two folders deep")
            .join("docs/console")
    } else {
        // One folder, overwritten by each run (only one test takes screenshots).
        std::env::temp_dir().join("relay-console-screenshots")
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// The harness itself, against a page of its own: it works here whatever the console's state.

/// A form page, its POST (which checks a CSRF field and sets an HttpOnly cookie and a plain one)
/// and the page it redirects to.
async fn harness_site() -> (String, tokio::task::JoinHandle<()>) {
    use axum::Form;
    use axum::http::{StatusCode, header};
    use axum::response::{Html, IntoResponse};
    use axum::routing::get;
    use std::collections::HashMap;

    async fn form() -> Html<&'static str> {
        Html(
            r#"<!doctype html><title>harness</title>
            <form id="greet" method="post" action="/greet">
              <input type="hidden" name="csrf" value="harness-csrf">
              <input id="name" name="name"><button id="go" type="submit">Go</button>
            </form>"#,
        )
    }
    async fn greet(Form(fields): Form<HashMap<String, String>>) -> axum::response::Response {
        if fields.get("csrf").map(String::as_str) != Some("harness-csrf") {
            return (StatusCode::FORBIDDEN, "no csrf").into_response();
        }
        let name: String = fields
            .get("name")
            .map(|n| n.chars().filter(char::is_ascii_alphanumeric).collect())
            .unwrap_or_default();
        (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, format!("/hello?name={name}")),
                (
                    header::SET_COOKIE,
                    "harness_session=s3cret; HttpOnly; SameSite=Strict; Path=/".to_owned(),
                ),
            ],
        )
            .into_response()
    }
    async fn hello(
        axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
    ) -> axum::response::Response {
        let name: String = query
            .get("name")
            .map(|n| n.chars().filter(char::is_ascii_alphanumeric).collect())
            .unwrap_or_default();
        (
            [(header::SET_COOKIE, "visible=1; Path=/")],
            Html(format!(
                "<!doctype html><title>hello</title><p id=\"greeting\">Hello, {name}</p>"
            )),
        )
            .into_response()
    }

    let app = axum::Router::new()
        .route("/", get(form))
        .route("/greet", axum::routing::post(greet))
        .route("/hello", get(hello));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_harness_drives_chromium_through_a_form() {
    let Some(browser) = Browser::start_or_skip("the_harness_drives_chromium_through_a_form").await
    else {
        return;
    };
    let (base, site) = harness_site().await;

    browser.goto(&format!("{base}/")).await;
    browser.find("#name").await.send_keys("Ada").await;
    browser.find("#go").await.click().await;
    let greeting = browser.wait_for("#greeting", PAGE).await;
    assert_eq!(greeting.text().await, "Hello, Ada");
    assert!(browser.url().await.ends_with("/hello?name=Ada"));

    // Scripts see the plain cookie, never the HttpOnly one; WebDriver sees both, with the flag.
    let script_cookies = browser.execute("return document.cookie", json!([])).await;
    assert_eq!(script_cookies, "visible=1");
    let cookies = browser.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "harness_session")
        .unwrap_or_else(|| panic!("{cookies:?}"));
    assert_eq!(session["httpOnly"], true);

    // A script's POST without the CSRF field is refused by the page's server.
    let status = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/greet', {method: 'POST', body: new URLSearchParams({name: 'Eve'})})
               .then(r => done(r.status), e => done(String(e)));",
            json!([]),
        )
        .await;
    assert_eq!(status, 403);

    // The screenshot is a PNG as wide as the window.
    let png = browser.screenshot().await;
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 1280, "the window is 1280 wide");
    site.abort();
}

// ---------------------------------------------------------------------------------------------
// The console.

/// A small sandbox with a Brightpearl account of its own (the client's throttle pool is per
/// account and process-wide).
async fn sandbox() -> Sandbox {
    static ACCOUNTS: AtomicUsize = AtomicUsize::new(1);
    let mut config = SandboxConfig {
        dataset: DatasetConfig {
            orders: 4,
            skus: 12,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    };
    config.brightpearl.account = format!("consoleacct{}", ACCOUNTS.fetch_add(1, Ordering::Relaxed));
    // Norce's stock import jobs finish at once: the start's stock pass would otherwise wait
    // seconds for them.
    config.norce.job_delay_secs = 0.0;
    common::sandbox_with(config).await
}

/// Every flow runs once at start (a full overview), then only when triggered: the console's
/// retry is then the only thing that runs shipping again.
fn config(dir: &std::path::Path) -> RelayConfig {
    let mut config = RelayConfig::default();
    config.state.dir = dir.to_path_buf();
    config.shipping.track = false;
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    config.serve.shipping_every_secs = 3600;
    config.serve.orders_every_secs = 3600;
    config.serve.stock_reconcile_every_secs = 3600;
    config.serve.run_after_ingest_ms = 0;
    config.serve.inbox_sweep_secs = 0;
    config.serve.register_brightpearl_webhooks = false;
    config
}

/// GET on the sandbox's admin API.
async fn admin(sandbox: &Sandbox, path: &str) -> Value {
    let answer = common::http("GET", &format!("{}{path}", sandbox.base_url()), None).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    answer.json()
}

/// The text of `#entity-status`, trimmed and in lower case.
async fn entity_status(browser: &Browser) -> String {
    let status = browser.wait_for("#entity-status", PAGE).await;
    status.text().await.trim().to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_signs_in_finds_a_failed_order_and_retries_it() {
    let test = "an_operator_signs_in_finds_a_failed_order_and_retries_it";
    let Some(browser) = Browser::start_or_skip(test).await else {
        return;
    };
    let shots = screenshot_dir();
    let sandbox = sandbox().await;
    // nShift refuses every booking (400: permanent), so the shipping pass dead-letters them.
    sandbox
        .state()
        .faults
        .add(FaultRule {
            path_prefix: "/rs-extapi/v1/stored-shipments".into(),
            method: Some("POST".into()),
            error_rate: 1.0,
            error_statuses: vec![400],
            ..FaultRule::default()
        })
        .unwrap();

    let dir = tempfile::Builder::new()
        .prefix("relay-console-browser-")
        .tempdir()
        .unwrap();
    let config = config(dir.path());
    let listener = serve::bind(&config.serve).await.unwrap();
    let ctx = common::context(&sandbox, config);
    let store = ctx.store.clone();
    let secrets = ServeSecrets {
        console_token: Some(SecretString::from(TOKEN)),
        ..ServeSecrets::default()
    };
    let handle = serve::start(ctx, secrets, listener).await.unwrap();
    let base = handle.base_url();

    // The start's passes, one per flow (no sleeping: the server's counter).
    let flows = relay::flows::registry().len() as u64;
    let mut runs = handle.runs();
    tokio::time::timeout(Duration::from_secs(60), runs.wait_for(|n| *n >= flows))
        .await
        .expect("every flow's first pass finishes within 60 s")
        .unwrap();
    let letters: Vec<_> = store
        .dead_letters()
        .unwrap()
        .into_iter()
        .filter(|l| l.flow == "shipping")
        .collect();
    let letter = letters
        .first()
        .unwrap_or_else(|| panic!("the refused bookings are dead-lettered: {letters:?}"));
    let source_id = letter.source_id.clone();
    let orders = admin(&sandbox, "/_sandbox/norce/orders").await;
    let order_no = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["clientOrderRef"].to_string().trim_matches('"') == source_id)
        .and_then(|o| o["orderNo"].as_str())
        .unwrap_or_else(|| panic!("the order of basket {source_id}"))
        .to_owned();

    // Not signed in: to the sign-in page, which remembers where we were going.
    browser.goto(&format!("{base}/console")).await;
    browser.wait_for("form#sign-in", PAGE).await;
    let login_url = browser.url().await;
    assert!(
        login_url.starts_with(&format!("{base}/console/login?next=")),
        "{login_url}"
    );

    // A wrong token: refused with a message, no session.
    browser
        .find("#token")
        .await
        .send_keys("not-the-token")
        .await;
    browser.find("#sign-in-button").await.click().await;
    browser.wait_for("#flash", PAGE).await;
    assert!(
        !browser
            .cookies()
            .await
            .iter()
            .any(|c| c["name"] == "relay_console"),
        "no session after a wrong token"
    );

    // The right token: on to the overview.
    browser.goto(&login_url).await;
    browser.find("#token").await.send_keys(TOKEN).await;
    browser.find("#sign-in-button").await.click().await;
    browser.wait_for("table#flows", PAGE).await;
    assert_eq!(browser.url().await, format!("{base}/console"));
    for id in [
        "nav#nav",
        "#nav-overview",
        "#nav-entities",
        "#nav-dead-letters",
        "#nav-cursors",
        "#nav-mappings",
        "#nav-audit",
        "#sign-out",
        "svg#chart",
        "table#platforms",
        "#webhooks",
    ] {
        browser.find(id).await;
    }
    assert!(
        browser.find_all("table#flows tr[data-flow]").await.len() >= 4,
        "one row per flow"
    );
    browser.screenshot_to(&shots.join("overview.png")).await;

    // The session cookie is out of the page's scripts' reach, and held for /console only.
    let script_cookies = browser.execute("return document.cookie", json!([])).await;
    assert!(
        !script_cookies
            .as_str()
            .unwrap_or_default()
            .contains("relay_console"),
        "document.cookie: {script_cookies}"
    );
    let cookies = browser.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "relay_console")
        .unwrap_or_else(|| panic!("the session cookie: {cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    assert_eq!(session["path"], "/console", "{session}");
    assert!(
        !session["value"]
            .as_str()
            .unwrap_or_default()
            .contains(TOKEN),
        "the cookie is a session, not the token"
    );

    // Entities: the order by its number.
    browser.find("#nav-entities").await.click().await;
    browser.wait_for("form#entity-filter", PAGE).await;
    for id in [
        "input#ref",
        "select#flow",
        "select#status",
        "input#from",
        "input#to",
    ] {
        browser.find(id).await;
    }
    browser.find("input#ref").await.send_keys(&order_no).await;
    browser.find("button#filter-button").await.click().await;
    browser.wait_for("table#entities", PAGE).await;
    let row = format!("table#entities tr[data-flow=\"shipping\"][data-source-id=\"{source_id}\"]");
    browser.wait_for(&row, PAGE).await;
    browser.screenshot_to(&shots.join("entities.png")).await;
    browser
        .find(&format!("{row} a.entity-link"))
        .await
        .click()
        .await;

    // Its page: failed, with the Retry and Resolve forms.
    assert_eq!(entity_status(&browser).await, "failed");
    let detail_url = browser.url().await;
    assert!(
        detail_url.starts_with(&format!("{base}/console/entities/shipping/")),
        "{detail_url}"
    );
    for id in [
        "#entity-step",
        "table#ids",
        "table#timeline",
        "pre#payload",
        "form#retry-form",
        "form#resolve-form",
        "textarea#reason",
        "button#resolve",
    ] {
        browser.find(id).await;
    }
    browser
        .screenshot_to(&shots.join("entity-failed.png"))
        .await;

    // A POST from the page's own scripts without the CSRF token is refused, and changes nothing.
    let status = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], {method: 'POST', body: new URLSearchParams({}), redirect: 'manual'})
               .then(r => done(r.status), e => done(String(e)));",
            json!([format!("{detail_url}/retry")]),
        )
        .await;
    assert_eq!(status, 403, "a POST without csrf");
    assert_eq!(
        store.get("shipping", &source_id).unwrap().unwrap().status,
        Status::Failed
    );

    // The cause is fixed; Retry requeues it and triggers a shipping pass at once.
    sandbox.state().faults.clear();
    let before = *runs.borrow_and_update();
    browser.find("button#retry").await.click().await;
    browser.wait_for("#flash", PAGE).await;
    let back = browser.url().await;
    assert_eq!(
        back.split('?').next(),
        Some(detail_url.as_str()),
        "back to the entity's page"
    );

    // Bounded wait for the pass (the server's counter, not a sleep), then the page says done.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = store.get("shipping", &source_id).unwrap().unwrap().status;
        if status == Status::Done {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{source_id} is done within 20 s of the retry (now {status:?}, passes {} → {})",
            before,
            *runs.borrow()
        );
        let _ = tokio::time::timeout(left, runs.changed()).await;
    }
    // The page again, without the retry's message (it rides on the URL).
    browser.goto(&detail_url).await;
    assert_eq!(entity_status(&browser).await, "done");
    browser.screenshot_to(&shots.join("entity-done.png")).await;

    // Dead letters: the other refused orders are still there to pick.
    browser.find("#nav-dead-letters").await.click().await;
    browser.wait_for("table#dead-letters", PAGE).await;
    for id in [
        "form#dead-letters-form",
        "input#bulk-reason",
        "button#retry-selected",
        "button#resolve-selected",
    ] {
        browser.find(id).await;
    }
    if letters.len() > 1 {
        let others = browser.find_all("input.select-letter").await;
        assert!(!others.is_empty(), "the other dead letters are listed");
    }
    browser.screenshot_to(&shots.join("dead-letters.png")).await;

    // Cursors: moving one back asks for confirmation first (not given here).
    browser.find("#nav-cursors").await.click().await;
    browser.wait_for("table#cursors", PAGE).await;
    let value = browser
        .find("form.cursor-form[data-flow=\"shipping\"] input[name=\"value\"]")
        .await;
    value.clear().await;
    // Enter submits the form (WebDriver's key code for Enter).
    value.send_keys("2026-03-01T00:00:00Z\u{E007}").await;
    browser.wait_for("#cursor-confirmation", PAGE).await;
    browser.find("form#cursor-set-form").await;
    browser.find("button#confirm-cursor").await;
    browser
        .screenshot_to(&shots.join("cursor-confirm.png"))
        .await;

    // Signing out ends the session: the console asks to sign in again.
    browser
        .execute(
            "document.getElementById('sign-out').requestSubmit()",
            json!([]),
        )
        .await;
    browser.wait_for("form#sign-in", PAGE).await;
    browser.goto(&format!("{base}/console")).await;
    browser.wait_for("form#sign-in", PAGE).await;

    println!("console screenshots: {}", shots.display());
    handle.shutdown().await;
}
