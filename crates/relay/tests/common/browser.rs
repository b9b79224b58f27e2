//! A real headless Chromium for the browser tests, driven over W3C WebDriver by `chromedriver`
//! (Debian's `chromium` and `chromium-driver`; `.ci/run` installs them when missing).
//!
//! Why a small client of our own instead of `fantoccini` (the well-kept WebDriver crate): with
//! `default-features = false` it still adds 28 crates to the build (the `webdriver` crate pulls
//! `icu_segmenter` 1.x, `time`, `cookie` twice and `http` 0.2 besides our 1.x), about 45 s of
//! compile time on the 2-core CI machine, for the dozen endpoints these tests call. Over
//! `reqwest` and `serde_json`, already dependencies of relay, the protocol is a few JSON calls and
//! costs nothing to build.
//!
//! `chromedriver` runs as a child on a free 127.0.0.1 port, in a process group of its own, with a
//! fresh profile folder. [`Browser`]'s drop (also when a test panics) ends the session, which
//! quits Chromium, then kills chromedriver and whatever is left of its group, and removes the
//! profile.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C key of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long the harness waits for chromedriver to answer `/status` and for a session to start.
const STARTUP: Duration = Duration::from_secs(30);

/// The Chromium command line: headless, and nothing that reaches out to the network (the
/// machine's network is closed; a blocked lookup would only slow the browser down). No sandbox:
/// CI runs as root, where Chromium's sandbox refuses to start.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// Whether this runs in CI (`CI=true`), where the browser must be there.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}

/// A program from the variable `env`, else the first of `candidates` that exists, else `name` on
/// the `PATH`.
fn program(env: &str, candidates: &[&str], name: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    if let Some(found) = candidates.iter().map(Path::new).find(|p| p.is_file()) {
        return Ok(found.to_path_buf());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "`{name}` not found (set {env}, or `apt-get install chromium chromium-driver`; \
                 `.ci/run` installs them)"
            )
        })
}

/// A free port on 127.0.0.1 (released for chromedriver to take).
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// The chromedriver child and its session; ended on drop.
struct Driver {
    child: Child,
    port: u16,
    session: Option<String>,
}

impl Driver {
    /// `DELETE /session/{id}` over a plain blocking socket (drop cannot await): chromedriver
    /// quits Chromium and its helpers (crashpad) before it answers.
    fn end_session(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            read_answer(&mut stream);
        }
    }
}

/// Reads one HTTP answer to its end (chromedriver keeps the connection open despite
/// `Connection: close`, so reading to the end of the stream would wait for the read timeout).
fn read_answer(stream: &mut TcpStream) {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(head_end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if answer.len() >= head_end + 4 + length {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.end_session();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever chromedriver left (a Chromium whose session could not be ended) is in the
        // group it leads: our own child's group, by its id.
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            kill_group(pgid);
        }
    }
}

/// SIGKILL to the process group `pgid` (our chromedriver's, which it leads).
#[allow(unsafe_code)] // one libc call; the workspace denies unsafe code elsewhere
fn kill_group(pgid: i32) {
    // SAFETY: kill(2) takes plain integers; a negative pid signals only that process group.
    let _ = unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// An error answer of the WebDriver protocol (`{"value": {"error", "message"}}`), or a transport
/// failure.
#[derive(Debug)]
pub struct WebDriverError {
    /// The HTTP status (0 when chromedriver did not answer).
    pub status: u16,
    /// The protocol's error code (`no such element`, `javascript error`, …).
    pub error: String,
    /// chromedriver's message.
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The first line: chromedriver appends a long native stack trace.
        let message = self.message.lines().next().unwrap_or_default();
        write!(f, "{} ({}): {message}", self.error, self.status)
    }
}

/// A headless Chromium with one WebDriver session.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:{port}/session/{id}`.
    session_url: String,
    // Dropped before `profile`, so the folder is removed after Chromium quit.
    driver: Driver,
    profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("session_url", &self.session_url)
            .finish_non_exhaustive()
    }
}

impl Browser {
    /// Starts chromedriver and a Chromium session, or says why not.
    pub async fn start() -> Result<Self, String> {
        let chromedriver = program(
            "CHROMEDRIVER",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
            "chromedriver",
        )?;
        let chromium = program("CHROMIUM", &["/usr/bin/chromium"], "chromium")?;
        let profile = tempfile::Builder::new()
            .prefix("relay-browser-")
            .tempdir()
            .map_err(|e| format!("cannot create the profile folder: {e}"))?;
        let log = profile.path().join("chromedriver.log");
        let port = free_port()?;
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A group of its own: the drop can end Chromium too if the session does not end.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", chromedriver.display()))?;
        let mut driver = Driver {
            child,
            port,
            session: None,
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        let base = format!("http://127.0.0.1:{port}");
        let log_tail = |log: &Path| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            match lines[lines.len().saturating_sub(15)..].join("\n") {
                tail if tail.is_empty() => "\n(chromedriver's log is empty)".to_owned(),
                tail => format!("; chromedriver's log:\n{tail}"),
            }
        };

        // Ready when `/status` says so; the wait is bounded, and a driver that exited is
        // reported at once.
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                return Err(format!(
                    "chromedriver exited at start ({status}){}",
                    log_tail(&log)
                ));
            }
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(answer) => answer
                    .json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "chromedriver did not get ready within {STARTUP:?}{}",
                    log_tail(&log)
                ));
            }
            // A real process starting: a short real wait, bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let answer = tokio::time::timeout(
            STARTUP,
            http.post(format!("{base}/session"))
                .json(&capabilities)
                .send(),
        )
        .await
        .map_err(|_| format!("Chromium did not start within {STARTUP:?}"))?
        .map_err(|e| format!("chromedriver did not answer the new session: {e}"))?;
        let status = answer.status().as_u16();
        let body: Value = answer
            .json()
            .await
            .map_err(|e| format!("chromedriver's new session answer is not JSON: {e}"))?;
        let Some(session) = body["value"]["sessionId"].as_str() else {
            return Err(format!(
                "Chromium did not start ({status}): {}{}",
                body["value"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default(),
                log_tail(&log)
            ));
        };
        driver.session = Some(session.to_owned());
        Ok(Self {
            http,
            session_url: format!("{base}/session/{session}"),
            driver,
            profile,
        })
    }

    /// A browser for `test`, or `None` after a loud `SKIPPED` line on standard error (past the
    /// test harness's capture) when Chromium or chromedriver is missing or does not start. In CI
    /// (`CI=true`) it panics instead: CI never skips. (The policy of `pg_cluster::start_or_skip`.)
    pub async fn start_or_skip(test: &str) -> Option<Self> {
        match Self::start().await {
            Ok(browser) => Some(browser),
            Err(why) if in_ci() => panic!(
                "{test}: a headless Chromium is required in CI (CI=true) but does not start: \
                 {why}. `.ci/run` installs Debian's chromium and chromium-driver."
            ),
            Err(why) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: {test}: no headless Chromium: {why}"
                );
                None
            }
        }
    }

    /// One WebDriver command on the session: its `value`, or the protocol's error.
    pub async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let url = format!("{}{path}", self.session_url);
        let mut request = self.http.request(method.clone(), &url);
        if method == reqwest::Method::POST {
            // Every POST carries a JSON object, `{}` when it has no parameters.
            request = request.json(&body.unwrap_or_else(|| json!({})));
        }
        let answer = request.send().await.map_err(|e| WebDriverError {
            status: 0,
            error: "transport".into(),
            message: format!("{method} {path}: {e}"),
        })?;
        let status = answer.status().as_u16();
        let mut body: Value = answer.json().await.map_err(|e| WebDriverError {
            status,
            error: "decode".into(),
            message: format!("{method} {path}: {e}"),
        })?;
        let value = body["value"].take();
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(WebDriverError {
            status,
            error: value["error"].as_str().unwrap_or("unknown").to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// [`Browser::command`] for test steps: a protocol error fails the test, naming the step.
    async fn must(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        self.command(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {what}: {e}"))
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.must(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Reloads the page.
    pub async fn refresh(&self) {
        self.must(reqwest::Method::POST, "/refresh", None).await;
    }

    /// The page's URL.
    pub async fn url(&self) -> String {
        let value = self.must(reqwest::Method::GET, "/url", None).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        let value = self.must(reqwest::Method::GET, "/source", None).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The elements matching the CSS `selector` (none: empty).
    pub async fn find_all(&self, selector: &str) -> Vec<Element<'_>> {
        let found = self
            .must(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await;
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT_KEY].as_str())
            .map(|id| Element {
                browser: self,
                id: id.to_owned(),
            })
            .collect()
    }

    /// The first element matching `selector`, if any.
    pub async fn try_find(&self, selector: &str) -> Option<Element<'_>> {
        self.find_all(selector).await.into_iter().next()
    }

    /// The first element matching `selector`; none fails the test with the page's URL and the
    /// start of its text, which usually says why.
    pub async fn find(&self, selector: &str) -> Element<'_> {
        if let Some(element) = self.try_find(selector).await {
            return element;
        }
        let text = self
            .execute(
                "return document.body ? document.body.innerText : ''",
                json!([]),
            )
            .await;
        let text: String = text
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(1500)
            .collect();
        panic!(
            "no element `{selector}` on {}; the page says:\n{text}",
            self.url().await
        )
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its return value.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.must(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Runs `script` asynchronously: it ends by calling the last argument,
    /// `arguments[arguments.length - 1]`, with its result (a `fetch` and its status).
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.must(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The cookies the browser holds for the page (name, value, `httpOnly`, `sameSite`, …).
    pub async fn cookies(&self) -> Vec<Value> {
        let value = self.must(reqwest::Method::GET, "/cookie", None).await;
        value.as_array().cloned().unwrap_or_default()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let value = self.must(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or_default())
            .expect("the screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        png
    }

    /// A PNG of the whole page, beyond the viewport (Chromium's DevTools `Page.captureScreenshot`
    /// through chromedriver: standard WebDriver only takes the viewport).
    pub async fn full_page_screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let size = self
            .execute(
                "const e = document.documentElement;
                 return [window.innerWidth, Math.max(e.scrollHeight, window.innerHeight)];",
                json!([]),
            )
            .await;
        let (width, height) = (
            size[0].as_f64().unwrap_or(1280.0),
            size[1].as_f64().unwrap_or(900.0),
        );
        let value = self
            .must(
                reqwest::Method::POST,
                "/goog/cdp/execute",
                Some(json!({"cmd": "Page.captureScreenshot", "params": {
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                }})),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value["data"].as_str().unwrap_or_default())
            .expect("the screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        png
    }

    /// A PNG of the whole page written to `path`.
    pub async fn screenshot_to(&self, path: &Path) {
        let png = self.full_page_screenshot().await;
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Waits (at most `timeout`, checking every 100 ms) until `selector` matches; the page is
    /// a real browser's, so this is a bounded poll rather than a signal.
    pub async fn wait_for(&self, selector: &str, timeout: Duration) -> Element<'_> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.try_find(selector).await {
                return element;
            }
            if Instant::now() > deadline {
                // The failure with the page's text.
                return self.find(selector).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One element of the page (until the page changes).
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    /// Clicks it (a link or a submit button: the navigation it starts is waited for).
    pub async fn click(&self) {
        self.browser
            .must(reqwest::Method::POST, &self.path("/click"), None)
            .await;
    }

    /// Types `text` into it.
    pub async fn send_keys(&self, text: &str) {
        self.browser
            .must(
                reqwest::Method::POST,
                &self.path("/value"),
                Some(json!({ "text": text })),
            )
            .await;
    }

    /// Empties an input.
    pub async fn clear(&self) {
        self.browser
            .must(reqwest::Method::POST, &self.path("/clear"), None)
            .await;
    }

    /// Its rendered text.
    pub async fn text(&self) -> String {
        let value = self
            .browser
            .must(reqwest::Method::GET, &self.path("/text"), None)
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// An attribute (`href`, `name`, …), if set.
    pub async fn attribute(&self, name: &str) -> Option<String> {
        let value = self
            .browser
            .must(
                reqwest::Method::GET,
                &self.path(&format!("/attribute/{name}")),
                None,
            )
            .await;
        value.as_str().map(str::to_owned)
    }

    /// A DOM property (`value` of an input, …).
    pub async fn property(&self, name: &str) -> Value {
        self.browser
            .must(
                reqwest::Method::GET,
                &self.path(&format!("/property/{name}")),
                None,
            )
            .await
    }
}
