//! The operator console over HTTP, in-process: sign-in, every page, every action, CSRF,
//! redaction, and that its actions change the state exactly as `relay replay` and `relay
//! cursor set` do. On SQLite, and on PostgreSQL for the pages and actions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use relay::config::RelayConfig;
use relay::flows::{FlowContext, FlowError, FlowReport};
use relay::serve::{
    self, FlowEntry, FlowFuture, IngestFuture, SecretString, ServeSecrets, ServerHandle,
};
use relay::state::{EntityUpdate, EventKind, InboxItem, PgStore, SqliteStore, Status, Store};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

const TOKEN: &str = "console-token-for-tests-0123456789";
const RECEIVER_PASSWORD: &str = "receiver-pw-never-shown";

fn no_ingest<'a>(_ctx: &'a FlowContext, _item: &'a InboxItem) -> IngestFuture<'a> {
    Box::pin(async move { Ok(relay::flows::Ingested::Nothing) })
}

fn accepts_nothing(_source: &str) -> bool {
    false
}

/// A pass that finishes every pending shipping item (what a healthy platform would do).
fn finishing_pass(ctx: &FlowContext) -> FlowFuture<'_> {
    Box::pin(async move {
        let mut report = FlowReport {
            flow: "shipping".into(),
            ..FlowReport::default()
        };
        for record in ctx.store.list(Some("shipping"), Some(Status::Pending))? {
            ctx.store.update(
                "shipping",
                &record.source_id,
                &EntityUpdate {
                    status: Some(Status::Done),
                    step: Some("status_sent".into()),
                    clear_error: true,
                    ..Default::default()
                },
            )?;
            report.seen += 1;
            report.done += 1;
        }
        Ok::<_, FlowError>(report)
    })
}

/// A pass that does nothing (to compare the state right after an action).
fn idle_pass(_ctx: &FlowContext) -> FlowFuture<'_> {
    Box::pin(async move {
        Ok::<_, FlowError>(FlowReport {
            flow: "shipping".into(),
            ..FlowReport::default()
        })
    })
}

fn flows(run: fn(&FlowContext) -> FlowFuture<'_>) -> Vec<Arc<dyn relay::flows::Flow>> {
    vec![Arc::new(FlowEntry {
        name: "shipping",
        entity_flows: &["shipping"],
        run,
        accepts: accepts_nothing,
        ingest: no_ingest,
        every: None,
    }) as Arc<dyn relay::flows::Flow>]
}

struct Console {
    handle: ServerHandle,
    base: String,
    http: reqwest::Client,
    _dir: TempDir,
    labels: PathBuf,
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "relay-console-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(
    store: Arc<dyn Store>,
    token: Option<&str>,
    run: fn(&FlowContext) -> FlowFuture<'_>,
) -> Console {
    let dir = TempDir::new("serve");
    let mut config = RelayConfig::default();
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    config.serve.inbox_sweep_secs = 0;
    config.serve.register_brightpearl_webhooks = false;
    config.state.dir = dir.0.clone();
    let labels = dir.0.join("labels");
    std::fs::create_dir_all(&labels).unwrap();
    let secrets = ServeSecrets {
        order_receiver_password: Some(SecretString::from(RECEIVER_PASSWORD)),
        console_token: token.map(SecretString::from),
        ..ServeSecrets::default()
    };
    let ctx = FlowContext {
        store,
        norce: None,
        nshift: None,
        brightpearl: None,
        config: Arc::new(config.clone()),
        stopping: Default::default(),
        coordination: Default::default(),
        pass_origin: Default::default(),
    };
    let listener = serve::bind(&config.serve).await.unwrap();
    let handle = serve::start_with_flows(ctx, secrets, listener, flows(run))
        .await
        .unwrap();
    let base = handle.base_url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Console {
        handle,
        base,
        http,
        _dir: dir,
        labels,
    }
}

/// A signed-in browser: the session cookie and the page's CSRF token.
struct Session {
    cookie: String,
}

impl Console {
    async fn get(
        &self,
        path: &str,
        session: Option<&Session>,
    ) -> (StatusCode, String, reqwest::header::HeaderMap) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(session) = session {
            request = request.header(COOKIE, &session.cookie);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        (status, response.text().await.unwrap(), headers)
    }

    async fn post(
        &self,
        path: &str,
        session: Option<&Session>,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            );
        if let Some(session) = session {
            request = request.header(COOKIE, &session.cookie);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        (status, response.text().await.unwrap(), location)
    }

    async fn sign_in(&self, name: &str) -> Session {
        let response = self
            .http
            .post(format!("{}/console/login", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "token={TOKEN}&name={name}&next=%2Fconsole%2Fentities"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[LOCATION], "/console/entities");
        let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(set_cookie.contains(attribute), "{set_cookie}");
        }
        assert!(!set_cookie.contains(TOKEN), "the cookie is not the token");
        Session {
            cookie: set_cookie.split(';').next().unwrap().to_owned(),
        }
    }

    /// The CSRF token on a page.
    async fn csrf(&self, session: &Session) -> String {
        let (_, body, _) = self.get("/console/audit", Some(session)).await;
        let at = body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        body[at..at + 64].to_owned()
    }

    async fn wait_for_passes(&self, after: u64) {
        let mut runs = self.handle.runs();
        tokio::time::timeout(Duration::from_secs(10), runs.wait_for(|n| *n > after))
            .await
            .expect("a pass within 10 s")
            .unwrap();
    }
}

const PAGES: &[&str] = &[
    "/console",
    "/console/entities",
    "/console/entities/shipping/NC-1",
    "/console/dead-letters",
    "/console/cursors",
    "/console/cursors/orders/confirm?value=2026-11-01T00:00:00Z",
    "/console/mappings",
    "/console/audit",
];

/// An order that failed for good (dead-lettered) and one done, with a payload holding a
/// secret-looking field and a label.
fn seed(store: &dyn Store, labels: &Path) {
    let label = labels.join("NC-2-1.pdf");
    std::fs::write(&label, b"%PDF-1.4 label").unwrap();
    let outside = labels.parent().unwrap().join("elsewhere.pdf");
    std::fs::write(&outside, b"not a label").unwrap();
    store
        .upsert_pending(
            "shipping",
            "NC-1",
            Some(r#"{"orderNo":"NC-1","apiKey":"sk-live-do-not-show","note":"<script>alert(1)</script>"}"#),
        )
        .unwrap();
    store
        .record_failure(
            "shipping",
            "NC-1",
            "nShift refused the service (hint: map the delivery method)",
        )
        .unwrap();
    store
        .dead_letter(
            "shipping",
            "NC-1",
            "nShift refused the service (hint: map the delivery method)",
        )
        .unwrap();
    store.upsert_pending("shipping", "NC-2", None).unwrap();
    store
        .update(
            "shipping",
            "NC-2",
            &EntityUpdate {
                status: Some(Status::Done),
                step: Some("labels_saved".into()),
                target_id: Some("SHP-9001".into()),
                payload: Some(format!(
                    r#"{{"labels":[{:?},{:?}]}}"#,
                    label.to_str().unwrap(),
                    outside.to_str().unwrap()
                )),
                ..Default::default()
            },
        )
        .unwrap();
    store.set_alias("shipping", "TRACK-77", "NC-2").unwrap();
    store.set_cursor("orders", "2026-12-01T00:00:00Z").unwrap();
}

fn sqlite() -> Arc<dyn Store> {
    Arc::new(SqliteStore::in_memory().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_off_without_a_token() {
    let console = start(sqlite(), None, idle_pass).await;
    for path in ["/console", "/console/login", "/console/entities"] {
        let (status, body, _) = console.get(path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("RELAY_CONSOLE_TOKEN"), "{body}");
    }
    let (status, _, _) = console.post("/console/login", None, &[("token", "")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The rest of serve is unaffected.
    assert_eq!(console.get("/healthz", None).await.0, StatusCode::OK);
    console.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_and_action_needs_a_session_and_a_wrong_token_is_refused() {
    let store = sqlite();
    let console = start(store.clone(), Some(TOKEN), idle_pass).await;
    seed(store.as_ref(), &console.labels);
    for path in PAGES {
        let (status, _, headers) = console.get(path, None).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        let location = headers[LOCATION].to_str().unwrap();
        assert!(
            location.starts_with("/console/login?next=%2Fconsole"),
            "{location}"
        );
    }
    let letters = store.dead_letters().unwrap();
    for (path, form) in [
        ("/console/entities/shipping/NC-1/retry", vec![]),
        (
            "/console/entities/shipping/NC-1/resolve",
            vec![("reason", "x")],
        ),
        ("/console/dead-letters", vec![("action", "retry")]),
        (
            "/console/cursors/orders",
            vec![("value", "2020-01-01T00:00:00Z")],
        ),
    ] {
        let (status, _, location) = console.post(path, None, &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert!(location.unwrap().starts_with("/console/login"));
    }
    assert_eq!(store.dead_letters().unwrap(), letters, "nothing changed");
    assert_eq!(
        store.cursor("orders").unwrap().as_deref(),
        Some("2026-12-01T00:00:00Z")
    );

    // A wrong token: 401 with the sign-in form again, no cookie.
    let (status, body, _) = console
        .post(
            "/console/login",
            None,
            &[("token", "wrong"), ("next", "/console")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body.contains("id=\"flash\"") && body.contains("id=\"sign-in\""),
        "{body}"
    );
    // A forged or stale cookie is no session.
    let forged = Session {
        cookie: "relay_console=v1.1.abcd.b3BlcmF0b3I.00".to_owned(),
    };
    assert_eq!(
        console.get("/console", Some(&forged)).await.0,
        StatusCode::SEE_OTHER
    );
    // The sign-in never sends anyone to another site.
    let response = console
        .http
        .post(format!("{}/console/login", console.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}&next=https%3A%2F%2Fevil.example%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[LOCATION], "/console");
    console.handle.shutdown().await;
}

async fn pages_render_without_secrets(store: Arc<dyn Store>) {
    let console = start(store.clone(), Some(TOKEN), idle_pass).await;
    seed(store.as_ref(), &console.labels);
    let session = console.sign_in("Ann").await;
    let expected: &[(&str, &[&str])] = &[
        (
            "/console",
            &[
                "id=\"flows\"",
                "data-flow=\"shipping\"",
                "<svg id=\"chart\"",
                "items failed (dead letters): 1",
                "id=\"webhooks\"",
            ],
        ),
        (
            "/console/entities",
            &[
                "id=\"entities\"",
                "data-source-id=\"NC-1\"",
                "data-source-id=\"NC-2\"",
            ],
        ),
        (
            "/console/entities/shipping/NC-1",
            &[
                "id=\"entity-status\" class=\"status-failed\">failed<",
                "id=\"timeline\"",
                "dead_lettered",
                "map the delivery method",
                "id=\"retry\"",
                "id=\"resolve\"",
                "[redacted]",
            ],
        ),
        (
            "/console/entities/shipping/NC-2",
            &[
                "SHP-9001",
                "nShift shipment",
                "class=\"label-download\"",
                "NC-2-1.pdf",
            ],
        ),
        (
            "/console/dead-letters",
            &["id=\"dead-letters\"", "class=\"select-letter\"", "NC-1"],
        ),
        (
            "/console/cursors",
            &[
                "id=\"cursors\"",
                "2026-12-01T00:00:00Z",
                "class=\"cursor-form",
            ],
        ),
        (
            "/console/cursors/orders/confirm?value=2026-11-01T00:00:00Z",
            &[
                "id=\"cursor-confirmation\"",
                "back by 30.0 d",
                "id=\"confirm-cursor\"",
            ],
        ),
        (
            "/console/mappings",
            &["POSTNORD_HOME", "P17", "class=\"mapping\""],
        ),
        ("/console/audit", &["No actions yet"]),
    ];
    for (path, needles) in expected {
        let (status, body, headers) = console.get(path, Some(&session)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        for needle in *needles {
            assert!(body.contains(needle), "{path} lacks {needle}:\n{body}");
        }
        for secret in [TOKEN, RECEIVER_PASSWORD, "sk-live-do-not-show"] {
            assert!(!body.contains(secret), "{path} shows a secret");
        }
        assert!(
            !body.contains("<script>alert(1)"),
            "{path}: text is escaped"
        );
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
    // The label inside the labels folder downloads; the file the payload names elsewhere is
    // neither listed nor served.
    let (_, detail, _) = console
        .get("/console/entities/shipping/NC-2", Some(&session))
        .await;
    let labels =
        &detail[detail.find("id=\"labels\"").unwrap()..detail.find("id=\"payload\"").unwrap()];
    assert!(
        labels.contains("NC-2-1.pdf") && !labels.contains("elsewhere.pdf"),
        "{labels}"
    );
    let (status, body, headers) = console
        .get("/console/entities/shipping/NC-2/labels/1", Some(&session))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "%PDF-1.4 label");
    assert_eq!(headers["content-type"], "application/pdf");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("NC-2-1.pdf")
    );
    assert_eq!(
        console
            .get("/console/entities/shipping/NC-2/labels/2", Some(&session))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        console
            .get("/console/entities/shipping/NOPE", Some(&session))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        console.get("/console/no-such-page", Some(&session)).await.0,
        StatusCode::NOT_FOUND
    );
    // Bad filters name the field.
    let (status, body, _) = console
        .get("/console/entities?status=weird", Some(&session))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("`status`: no status `weird`"), "{body}");
    console.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_without_secrets_on_sqlite() {
    pages_render_without_secrets(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_without_secrets_on_postgres() {
    let Some(cluster) = pg_cluster::start_or_skip("console pages on PostgreSQL") else {
        return;
    };
    let url = cluster.create_database("console_pages").unwrap();
    pages_render_without_secrets(Arc::new(PgStore::connect(&url).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_filters_by_reference_status_and_date_and_pages_through_everything() {
    let store = sqlite();
    let console = start(store.clone(), Some(TOKEN), idle_pass).await;
    for n in 0..130 {
        let id = format!("NC-{n:03}");
        store.upsert_pending("shipping", &id, None).unwrap();
        if n % 10 == 0 {
            store.dead_letter("shipping", &id, "refused").unwrap();
        } else {
            store
                .update(
                    "shipping",
                    &id,
                    &EntityUpdate {
                        status: Some(Status::Done),
                        target_id: Some(format!("SHP-{n}")),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
    }
    store.set_alias("shipping", "TRACK-5", "NC-005").unwrap();
    store.upsert_pending("orders", "NC-005", None).unwrap();
    let session = console.sign_in("Bo").await;
    let rows = |body: &str| -> Vec<String> {
        body.split("data-source-id=\"")
            .skip(1)
            .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
            .collect()
    };
    let strings = |ids: &[&str]| -> Vec<String> { ids.iter().map(|s| (*s).to_owned()).collect() };
    let failed: Vec<String> = (0..13).rev().map(|n| format!("NC-{:03}", n * 10)).collect();
    for (query, expected) in [
        ("ref=NC-007", strings(&["NC-007"])),
        ("ref=SHP-7", strings(&["NC-007"])),
        ("ref=TRACK-5&flow=shipping", strings(&["NC-005"])),
        ("ref=NC-005", strings(&["NC-005", "NC-005"])),
        ("ref=NC-005&flow=shipping", strings(&["NC-005"])),
        ("status=failed&from=2000-01-01", failed),
        ("status=done&to=2000-01-01", Vec::new()),
    ] {
        let (status, body, _) = console
            .get(&format!("/console/entities?{query}"), Some(&session))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(rows(&body), expected, "{query}");
    }
    // Pages of 50, newest first, each record once.
    let mut seen = Vec::new();
    let mut path = "/console/entities?flow=shipping".to_owned();
    loop {
        let (_, body, _) = console.get(&path, Some(&session)).await;
        seen.extend(rows(&body));
        // The `<a>` tag with `id="next-page"`, whatever the order of its attributes.
        let Some(at) = body.find("id=\"next-page\"") else {
            break;
        };
        let tag = &body[body[..at].rfind('<').unwrap()..];
        let tag = &tag[..tag.find('>').unwrap()];
        let href = &tag[tag.find("href=\"").unwrap() + 6..];
        path = href[..href.find('"').unwrap()].replace("&amp;", "&");
    }
    let expected: Vec<String> = (0..130).rev().map(|n| format!("NC-{n:03}")).collect();
    assert_eq!(seen, expected);
    console.handle.shutdown().await;
}

/// The state of one item after an action, as an operator sees it.
fn item_state(
    store: &dyn Store,
    flow: &str,
    id: &str,
) -> (Status, u32, Option<String>, Option<String>, usize) {
    let record = store.get(flow, id).unwrap().unwrap();
    let letters = store.dead_letters_of(flow, id).unwrap().len();
    (
        record.status,
        record.attempts,
        record.step,
        record.target_id,
        letters,
    )
}

struct CliWorkspace(TempDir);

impl CliWorkspace {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(name);
        std::fs::write(
            dir.0.join("relay.toml"),
            format!(
                "[state]\ndir = {:?}\n",
                dir.0.join("data").to_str().unwrap()
            ),
        )
        .unwrap();
        Self(dir)
    }

    fn store(&self) -> SqliteStore {
        SqliteStore::open_in(&self.0.0.join("data")).unwrap()
    }

    fn relay(&self, args: &[&str]) {
        let (first, rest) = args.split_first().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_relay"))
            .env_clear()
            .current_dir(&self.0.0)
            .arg(first)
            .arg("--config")
            .arg(self.0.0.join("relay.toml"))
            .args(rest)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_needs_the_csrf_token_and_does_what_relay_replay_does() {
    let store = sqlite();
    let console = start(store.clone(), Some(TOKEN), idle_pass).await;
    seed(store.as_ref(), &console.labels);
    let cli = CliWorkspace::new("replay");
    seed(&cli.store(), &console.labels);
    let session = console.sign_in("Ann").await;

    let before = item_state(store.as_ref(), "shipping", "NC-1");
    let (status, body, _) = console
        .post("/console/entities/shipping/NC-1/retry", Some(&session), &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("form has expired"), "{body}");
    let (status, _, _) = console
        .post(
            "/console/entities/shipping/NC-1/retry",
            Some(&session),
            &[("csrf", "00")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        item_state(store.as_ref(), "shipping", "NC-1"),
        before,
        "refused: nothing changed"
    );

    let csrf = console.csrf(&session).await;
    let (status, _, location) = console
        .post(
            "/console/entities/shipping/NC-1/retry",
            Some(&session),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some("/console/entities/shipping/NC-1?flash=requeued")
    );
    let letter = cli.store().dead_letters().unwrap()[0].id.to_string();
    cli.relay(&["replay", &letter]);
    assert_eq!(
        item_state(store.as_ref(), "shipping", "NC-1"),
        item_state(&cli.store(), "shipping", "NC-1"),
        "the console's Retry leaves the item as `relay replay` does"
    );
    assert_eq!(
        item_state(store.as_ref(), "shipping", "NC-1").0,
        Status::Pending
    );
    // Both are in the history, with who did it.
    let requeued = |s: &dyn Store| -> Vec<String> {
        s.events("shipping", "NC-1", 50)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EventKind::Requeued)
            .filter_map(|e| e.actor)
            .collect()
    };
    assert_eq!(requeued(&cli.store()), vec!["cli".to_owned()]);
    let actors = requeued(store.as_ref());
    assert_eq!(actors.len(), 1);
    assert!(actors[0].starts_with("console:Ann/"), "{actors:?}");
    let (_, page, _) = console
        .get(
            "/console/entities/shipping/NC-1?flash=requeued",
            Some(&session),
        )
        .await;
    assert!(page.contains("id=\"flash\""), "{page}");
    assert!(
        page.contains("console:Ann/"),
        "the action is on the item's page"
    );
    let (_, audit, _) = console.get("/console/audit", Some(&session)).await;
    assert!(
        audit.contains("requeued") && audit.contains("NC-1"),
        "{audit}"
    );
    console.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_starts_a_pass_that_processes_the_item() {
    let store = sqlite();
    let console = start(store.clone(), Some(TOKEN), finishing_pass).await;
    seed(store.as_ref(), &console.labels);
    let runs = *console.handle.runs().borrow();
    let session = console.sign_in("Ann").await;
    let csrf = console.csrf(&session).await;
    console
        .post(
            "/console/entities/shipping/NC-1/retry",
            Some(&session),
            &[("csrf", &csrf)],
        )
        .await;
    console.wait_for_passes(runs).await;
    let (_, page, _) = console
        .get("/console/entities/shipping/NC-1", Some(&session))
        .await;
    assert!(
        page.contains("id=\"entity-status\" class=\"status-done\">done<"),
        "{page}"
    );
    console.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_needs_a_reason_and_keeps_it_in_the_history() {
    let store = sqlite();
    let console = start(store.clone(), Some(TOKEN), idle_pass).await;
    seed(store.as_ref(), &console.labels);
    let session = console.sign_in("Cy").await;
    let csrf = console.csrf(&session).await;
    let (status, body, _) = console
        .post(
            "/console/entities/shipping/NC-1/resolve",
            Some(&session),
            &[("csrf", &csrf), ("reason", "  ")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("a reason is required"), "{body}");
    let (status, _, location) = console
        .post(
            "/console/entities/shipping/NC-1/resolve",
            Some(&session),
            &[("csrf", &csrf), ("reason", "shipped by hand with DHL")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.unwrap().ends_with("flash=resolved"));
    assert_eq!(
        item_state(store.as_ref(), "shipping", "NC-1").0,
        Status::Resolved
    );
    assert!(store.dead_letters().unwrap().is_empty());
    let (_, page, _) = console
        .get("/console/entities/shipping/NC-1", Some(&session))
        .await;
    assert!(
        page.contains("shipped by hand with DHL") && page.contains("console:Cy/"),
        "{page}"
    );
    assert!(
        !page.contains("id=\"resolve\""),
        "a resolved item offers no second resolve"
    );
    console.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_retried_and_resolved_in_bulk() {
    let store = sqlite();
    let console = start(store.clone(), Some(TOKEN), idle_pass).await;
    for id in ["A", "B", "C", "D"] {
        store.upsert_pending("shipping", id, None).unwrap();
        store.dead_letter("shipping", id, "refused").unwrap();
    }
    let ids: Vec<String> = store
        .dead_letters()
        .unwrap()
        .iter()
        .map(|d| d.id.to_string())
        .collect();
    let session = console.sign_in("Di").await;
    let csrf = console.csrf(&session).await;
    let (status, _, _) = console
        .post(
            "/console/dead-letters",
            Some(&session),
            &[("action", "retry"), ("id", &ids[0])],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no csrf");
    let (status, _, location) = console
        .post(
            "/console/dead-letters",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("action", "retry"),
                ("id", &ids[0]),
                ("id", &ids[1]),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some("/console/dead-letters?flash=bulk_requeued&n=2")
    );
    let (status, body, _) = console
        .post(
            "/console/dead-letters",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("action", "resolve"),
                ("id", &ids[2]),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, location) = console
        .post(
            "/console/dead-letters",
            Some(&session),
            &[
                ("csrf", &csrf),
                ("action", "resolve"),
                ("id", &ids[2]),
                ("id", &ids[3]),
                ("reason", "cancelled by the customer"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some("/console/dead-letters?flash=bulk_resolved&n=2")
    );
    assert!(store.dead_letters().unwrap().is_empty());
    let statuses: Vec<Status> = ["A", "B", "C", "D"]
        .iter()
        .map(|id| item_state(store.as_ref(), "shipping", id).0)
        .collect();
    assert_eq!(
        statuses,
        [
            Status::Pending,
            Status::Pending,
            Status::Resolved,
            Status::Resolved
        ]
    );
    let (_, page, _) = console
        .get(
            "/console/dead-letters?flash=bulk_resolved&n=2",
            Some(&session),
        )
        .await;
    assert!(
        page.contains("2 item(s) marked resolved") && page.contains("No dead letters"),
        "{page}"
    );
    let (status, _, _) = console
        .post(
            "/console/dead-letters",
            Some(&session),
            &[("csrf", &csrf), ("action", "retry"), ("id", "x")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    console.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_is_set_back_after_the_confirmation_as_relay_cursor_set_does() {
    let store = sqlite();
    let console = start(store.clone(), Some(TOKEN), idle_pass).await;
    store.set_cursor("orders", "2026-12-01T00:00:00Z").unwrap();
    let cli = CliWorkspace::new("cursor");
    cli.store()
        .set_cursor("orders", "2026-12-01T00:00:00Z")
        .unwrap();
    let session = console.sign_in("Ed").await;
    // A bad value is refused with what to give, before any confirmation.
    let (status, body, _) = console
        .get(
            "/console/cursors/orders/confirm?value=monday",
            Some(&session),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("not an RFC 3339 time"), "{body}");
    let (status, body, _) = console
        .get("/console/cursors/nope/confirm?value=1", Some(&session))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("no flow `nope`"), "{body}");
    // The confirmation changes nothing.
    let (_, body, _) = console
        .get(
            "/console/cursors/orders/confirm?value=2026-11-28T12:00:00%2B01:00",
            Some(&session),
        )
        .await;
    assert!(
        body.contains("2026-11-28T11:00:00Z") && body.contains("not created twice"),
        "{body}"
    );
    assert_eq!(
        store.cursor("orders").unwrap().as_deref(),
        Some("2026-12-01T00:00:00Z")
    );
    let (status, _, _) = console
        .post(
            "/console/cursors/orders",
            Some(&session),
            &[("value", "2026-11-28T11:00:00Z")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = console.csrf(&session).await;
    let (status, _, location) = console
        .post(
            "/console/cursors/orders",
            Some(&session),
            &[("csrf", &csrf), ("value", "2026-11-28T12:00:00+01:00")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        location.as_deref(),
        Some("/console/cursors?flash=cursor_set")
    );
    cli.relay(&["cursor", "set", "orders", "2026-11-28T12:00:00+01:00"]);
    assert_eq!(
        store.cursor("orders").unwrap(),
        cli.store().cursor("orders").unwrap()
    );
    assert_eq!(
        store.cursor("orders").unwrap().as_deref(),
        Some("2026-11-28T11:00:00Z")
    );
    let audit = store.audit_log(10).unwrap();
    assert_eq!(audit[0].kind, EventKind::CursorSet);
    assert!(
        audit[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("2026-12-01T00:00:00Z"),
        "{audit:?}"
    );
    console.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_ends_the_session_in_this_browser() {
    let store = sqlite();
    let console = start(store, Some(TOKEN), idle_pass).await;
    let session = console.sign_in("Flo").await;
    let csrf = console.csrf(&session).await;
    let response = console
        .http
        .post(format!("{}/console/logout", console.base))
        .header(COOKIE, &session.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(
        response.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    console.handle.shutdown().await;
}
