//! `relay auth brightpearl`: authorize the Brightpearl OAuth app interactively and store its
//! tokens.
//!
//! It prints the authorize URL (and opens a browser only with `--open`), receives the redirect
//! on a loopback listener (`http://127.0.0.1:{--port}{--path}`, which must be the redirect URI
//! registered for the app), checks the `state` it sent, exchanges the code with
//! brightpearl-client (`exchange_code`), which writes the tokens to `BRIGHTPEARL_TOKEN_STORE`,
//! then makes one API call with a new client built from the same settings to prove the stored
//! tokens work. Nothing secret is printed: not the code, not a token.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use brightpearl_client::NothingFound as _;
use brightpearl_client::models::product::{ListPriceListsPath, operations::ProductApi as _};
use client_core::Settings;
use serde::Serialize;
use tokio::sync::mpsc;

/// Arguments of `relay auth`.
#[derive(Debug, clap::Args)]
pub struct AuthArgs {
    /// The platform to authorize.
    #[command(subcommand)]
    pub platform: AuthPlatform,
}

/// The platforms `relay auth` can authorize.
#[derive(Debug, clap::Subcommand)]
#[non_exhaustive]
pub enum AuthPlatform {
    /// Brightpearl OAuth (instance app): approve the app in a browser; the tokens go to
    /// BRIGHTPEARL_TOKEN_STORE. Needs BRIGHTPEARL_ACCOUNT, BRIGHTPEARL_APP_REF,
    /// BRIGHTPEARL_DEV_REF and BRIGHTPEARL_TOKEN_STORE (BRIGHTPEARL_CLIENT_SECRET for a
    /// confidential app).
    Brightpearl(BrightpearlAuthArgs),
}

/// Arguments of `relay auth brightpearl`.
#[derive(Debug, Clone, clap::Args)]
pub struct BrightpearlAuthArgs {
    /// Loopback port that receives the redirect (0: any free port). The redirect URI
    /// `http://127.0.0.1:PORT/PATH` must be registered for the app.
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Path of the redirect URI.
    #[arg(long, default_value = "/callback")]
    pub path: String,
    /// Also try to open the authorize URL in a browser (it is always printed).
    #[arg(long)]
    pub open: bool,
    /// Give up when no redirect arrives within this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

/// How [`authorize_brightpearl`] listens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthOptions {
    /// Loopback port (0: any free one).
    pub port: u16,
    /// Redirect path, starting with `/`.
    pub path: String,
    /// How long to wait for the redirect.
    pub timeout: Duration,
}

impl AuthOptions {
    /// Listen on `port` at `/callback`, waiting up to five minutes.
    pub fn new(port: u16) -> Self {
        Self {
            port,
            path: "/callback".to_owned(),
            timeout: Duration::from_secs(300),
        }
    }

    /// Sets the redirect path.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets how long to wait for the redirect.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What the operator must do: open `url`; the browser comes back to `redirect_uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizePrompt {
    /// The authorize URL (no secret in it: client id, redirect URI and a one-time `state`).
    pub url: String,
    /// Where the listener waits.
    pub redirect_uri: String,
}

/// A successful authorization (no secrets: the tokens are only in the token store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuthOutcome {
    /// The Brightpearl account.
    pub account: String,
    /// Where the tokens were stored.
    pub token_store: PathBuf,
    /// The API host Brightpearl named for the account.
    pub api_domain: Option<String>,
    /// The installation instance id (for `installedIntegrationInstanceId` on sales orders).
    pub installation_instance_id: Option<String>,
    /// Lifetime of the first access token, seconds (it is refreshed automatically).
    pub access_token_expires_in_secs: u64,
    /// Result of the check call with the stored tokens: `None` when it worked.
    pub verification_error: Option<String>,
}

impl std::fmt::Display for AuthOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Brightpearl account `{}` authorized.", self.account)?;
        writeln!(
            f,
            "  tokens stored in:          {}",
            self.token_store.display()
        )?;
        writeln!(
            f,
            "  API domain:                {}",
            self.api_domain.as_deref().unwrap_or("(not given)")
        )?;
        writeln!(
            f,
            "  installation instance id:  {}",
            self.installation_instance_id
                .as_deref()
                .unwrap_or("(not given)")
        )?;
        writeln!(
            f,
            "  access token valid for:    {} s (refreshed automatically)",
            self.access_token_expires_in_secs
        )?;
        match &self.verification_error {
            None => write!(f, "  check (GET price-list):    ok"),
            Some(e) => write!(f, "  check (GET price-list):    FAILED: {e}"),
        }
    }
}

/// Why `relay auth brightpearl` failed; each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A setting is missing or wrong.
    #[error("{0}")]
    Settings(String),
    /// A staff token is configured: that is a private app, which is not authorized this way.
    #[error(
        "BRIGHTPEARL_STAFF_TOKEN is set, which selects a private app (no OAuth needed); unset it to authorize an OAuth app"
    )]
    StaffToken,
    /// The redirect path is unusable.
    #[error("redirect path `{0}` must start with `/`, e.g. /callback")]
    Path(String),
    /// The folder of the token store cannot be created.
    #[error("cannot create the folder of BRIGHTPEARL_TOKEN_STORE `{path}`: {source}")]
    TokenStoreDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The loopback listener cannot be opened.
    #[error(
        "cannot listen on 127.0.0.1:{port}: {source}; pick another --port (and register that redirect URI for the app)"
    )]
    Listen {
        /// The port.
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// No redirect arrived in time.
    #[error(
        "no redirect arrived within {0} s; run the command again and approve the app in the browser (check that the registered redirect URI is the one printed)"
    )]
    Timeout(u64),
    /// The redirect's `state` is not the one sent: possibly a forged request.
    #[error(
        "the redirect's `state` does not match the one sent (a stale browser tab, or a forged request); nothing was stored. Run the command again"
    )]
    StateMismatch,
    /// Brightpearl answered with an error instead of a code.
    #[error("Brightpearl refused the authorization: {error}{}; check the app reference and redirect URI, then run again", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        /// The OAuth `error`.
        error: String,
        /// The `error_description`.
        description: Option<String>,
    },
    /// The redirect has no `code`.
    #[error("the redirect has no `code`; run the command again")]
    MissingCode,
    /// The code exchange failed.
    #[error("code exchange failed: {0}")]
    Exchange(String),
}

/// Runs the command.
pub async fn execute(args: AuthArgs) -> ExitCode {
    match args.platform {
        AuthPlatform::Brightpearl(args) => execute_brightpearl(args).await,
    }
}

async fn execute_brightpearl(args: BrightpearlAuthArgs) -> ExitCode {
    let options = AuthOptions::new(args.port)
        .path(args.path.clone())
        .timeout(Duration::from_secs(args.timeout_secs));
    let open = args.open;
    let timeout = args.timeout_secs;
    let result = authorize_brightpearl(&Settings::from_env(), &options, |prompt| {
        println!(
            "Open this URL in a browser and approve the app:\n\n  {}\n",
            prompt.url
        );
        if open {
            open_browser(&prompt.url);
        }
        eprintln!(
            "Waiting up to {timeout} s for the redirect to {} ...",
            prompt.redirect_uri
        );
    })
    .await;
    match result {
        Ok(outcome) => {
            println!("{outcome}");
            if outcome.verification_error.is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("relay auth brightpearl: {e}");
            ExitCode::from(1)
        }
    }
}

/// Best effort: the URL is printed anyway.
fn open_browser(url: &str) {
    let (program, args): (&str, Vec<&str>) = if cfg!(target_os = "macos") {
        ("open", vec![url])
    } else if cfg!(target_os = "windows") {
        ("cmd", vec!["/C", "start", "", url])
    } else {
        ("xdg-open", vec![url])
    };
    let spawned = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!(
            "Could not start `{program}` to open a browser ({e}); open the URL above yourself."
        );
    }
}

/// The query of one redirect.
type Callback = HashMap<String, String>;

#[derive(Clone)]
struct CallbackState {
    expected_state: String,
    sender: mpsc::Sender<Callback>,
}

/// The page the browser shows after the redirect.
async fn callback(State(state): State<CallbackState>, Query(query): Query<Callback>) -> Response {
    // Fixed texts only: the query is whatever the link carried, so it is not put into the page
    // (the terminal shows Brightpearl's error).
    let (status, text) = if query.contains_key("error") {
        (
            StatusCode::BAD_REQUEST,
            "Brightpearl refused the authorization. See the terminal.",
        )
    } else if query.get("state") != Some(&state.expected_state) {
        (
            StatusCode::BAD_REQUEST,
            "This redirect does not belong to the running `relay auth` (state mismatch). See the terminal.",
        )
    } else {
        (
            StatusCode::OK,
            "relay received the authorization. You can close this window and return to the terminal.",
        )
    };
    // Only the first redirect counts; a full channel means one is already being handled.
    let _ = state.sender.try_send(query);
    (
        status,
        Html(format!(
            "<!doctype html><title>relay auth</title><p>{text}</p>"
        )),
    )
        .into_response()
}

/// Authorizes the Brightpearl OAuth app of `settings`: calls `on_url` with the authorize URL,
/// waits for the redirect on 127.0.0.1, checks `state`, exchanges the code (the tokens go to
/// `BRIGHTPEARL_TOKEN_STORE`) and checks them with one API call.
pub async fn authorize_brightpearl(
    settings: &Settings,
    options: &AuthOptions,
    on_url: impl FnOnce(&AuthorizePrompt),
) -> Result<AuthOutcome, AuthError> {
    use brightpearl_client::env;
    if settings.any_set(&[env::STAFF_TOKEN]) {
        return Err(AuthError::StaffToken);
    }
    if !options.path.starts_with('/') {
        return Err(AuthError::Path(options.path.clone()));
    }
    let Some(store) = settings.get(env::TOKEN_STORE).map(PathBuf::from) else {
        return Err(AuthError::Settings(format!(
            "{} is not set: set it to the file where the rotating OAuth tokens are kept (e.g. relay-data/brightpearl-tokens.json)",
            env::TOKEN_STORE
        )));
    };
    if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| AuthError::TokenStoreDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let build = || {
        brightpearl_client::ClientBuilder::from_settings(settings)
            .and_then(|b| b.build())
            .map_err(|e| AuthError::Settings(e.hint()))
    };
    let client = build()?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|source| AuthError::Listen {
            port: options.port,
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| AuthError::Listen {
            port: options.port,
            source,
        })?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}{}", options.path);
    let expected_state = brightpearl_client::Client::generate_state();
    let url = client
        .authorize_url(&redirect_uri, &expected_state)
        .map_err(|e| AuthError::Settings(e.hint()))?;

    let (sender, mut receiver) = mpsc::channel::<Callback>(1);
    let app = Router::new()
        .route(&options.path, axum::routing::get(callback))
        .with_state(CallbackState {
            expected_state: expected_state.clone(),
            sender,
        });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    on_url(&AuthorizePrompt {
        url: url.to_string(),
        redirect_uri: redirect_uri.clone(),
    });
    let received = tokio::time::timeout(options.timeout, receiver.recv()).await;
    let result = match received {
        Err(_) | Ok(None) => Err(AuthError::Timeout(options.timeout.as_secs())),
        Ok(Some(query)) => {
            finish(
                &client,
                build,
                &store,
                &redirect_uri,
                &expected_state,
                query,
            )
            .await
        }
    };
    // The browser has its page by now (the exchange took a round trip); stop listening.
    let _ = stop.send(());
    if tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .is_err()
    {
        tracing::debug!("the redirect listener did not stop within 2 s; left to the runtime");
    }
    result
}

async fn finish(
    client: &brightpearl_client::Client,
    build: impl Fn() -> Result<brightpearl_client::Client, AuthError>,
    store: &std::path::Path,
    redirect_uri: &str,
    expected_state: &str,
    query: Callback,
) -> Result<AuthOutcome, AuthError> {
    if let Some(error) = query.get("error") {
        return Err(AuthError::Denied {
            error: error.clone(),
            description: query.get("error_description").cloned(),
        });
    }
    if query.get("state").map(String::as_str) != Some(expected_state) {
        return Err(AuthError::StateMismatch);
    }
    let Some(code) = query.get("code").filter(|c| !c.is_empty()) else {
        return Err(AuthError::MissingCode);
    };
    let authorization = client
        .exchange_code(code, redirect_uri)
        .await
        .map_err(|e| AuthError::Exchange(format!("{e} ({})", e.hint())))?;
    // A fresh client reads the tokens back from the store, as every later run will.
    let verifier = build()?;
    let path = ListPriceListsPath {
        account: verifier.account().to_owned(),
    };
    let verification_error = match verifier.list_price_lists(&path).await.or_empty() {
        Ok(_) => None,
        Err(e) => Some(format!("{e} ({})", e.hint())),
    };
    Ok(AuthOutcome {
        account: client.account().to_owned(),
        token_store: store.to_path_buf(),
        api_domain: authorization.api_domain,
        installation_instance_id: authorization.installation_instance_id,
        access_token_expires_in_secs: authorization.expires_in.as_secs(),
        verification_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Command {
        Auth(AuthArgs),
    }

    #[test]
    fn parses_the_brightpearl_subcommand() {
        let cli =
            Cli::try_parse_from(["relay", "auth", "brightpearl", "--port", "0", "--open"]).unwrap();
        let Command::Auth(AuthArgs {
            platform: AuthPlatform::Brightpearl(args),
        }) = cli.command;
        assert_eq!(
            (args.port, args.open, args.path.as_str(), args.timeout_secs),
            (0, true, "/callback", 300)
        );
        assert!(Cli::try_parse_from(["relay", "auth"]).is_err());
    }

    #[tokio::test]
    async fn refuses_a_staff_token_and_a_missing_store() {
        let settings = Settings::from_pairs([("BRIGHTPEARL_STAFF_TOKEN", "x".to_owned())]);
        let err = authorize_brightpearl(&settings, &AuthOptions::new(0), |_| {})
            .await
            .unwrap_err();
        assert!(matches!(err, AuthError::StaffToken), "{err}");
        let settings = Settings::from_pairs([("BRIGHTPEARL_ACCOUNT", "acme".to_owned())]);
        let err = authorize_brightpearl(&settings, &AuthOptions::new(0), |_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("BRIGHTPEARL_TOKEN_STORE"), "{err}");
        let err = authorize_brightpearl(&settings, &AuthOptions::new(0).path("callback"), |_| {})
            .await
            .unwrap_err();
        assert!(err.to_string().contains("must start with `/`"), "{err}");
    }
}
