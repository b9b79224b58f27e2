//! The `relay` subcommands, one module each; `main.rs` only parses and dispatches.

pub mod auth;
pub mod config;
pub mod lifecycle;
pub mod refund;
pub mod returns;
pub mod run;
pub mod serve;
pub mod status;

use std::path::{Path, PathBuf};

use crate::config::RelayConfig;

/// The subcommands that take `-c/--config`.
const TAKE_CONFIG: &[&str] = &[
    "verify", "run", "serve", "status", "replay", "cursor", "return", "refund",
];

/// Moves a `-c FILE` / `--config FILE` / `--config=FILE` / `-cFILE` given before the subcommand
/// to just after it, so `relay -c relay.toml status` means `relay status -c relay.toml` and
/// `relay -c relay.toml config check` means `relay config check -c relay.toml` (clap
/// reads options before a subcommand as the top-level `relay run`'s). Anything else is left
/// as it is, for clap to accept or explain.
///
/// ```
/// let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
/// assert_eq!(
///     relay::cli::config_after_subcommand(args(&["relay", "-c", "r.toml", "status", "--json"])),
///     args(&["relay", "status", "-c", "r.toml", "--json"])
/// );
/// assert_eq!(
///     relay::cli::config_after_subcommand(args(&["relay", "--config=r.toml", "config", "check"])),
///     args(&["relay", "config", "check", "--config=r.toml"])
/// );
/// assert_eq!(
///     relay::cli::config_after_subcommand(args(&["relay", "-c", "r.toml"])),
///     args(&["relay", "-c", "r.toml"])
/// );
/// ```
pub fn config_after_subcommand(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let text = |i: usize| args.get(i).and_then(|a| a.to_str());
    let width = match text(1) {
        Some("-c" | "--config") => 2,
        Some(a) if a.starts_with("--config=") || (a.starts_with("-c") && a.len() > 2) => 1,
        _ => return args,
    };
    // How many words name the subcommand that takes the option (`status`, `config check`).
    let words = match (text(1 + width), text(2 + width)) {
        (Some(sub), _) if TAKE_CONFIG.contains(&sub) => 1,
        (Some("config"), Some("check")) => 2,
        _ => return args,
    };
    let sub = 1 + width..1 + width + words;
    let mut out = Vec::with_capacity(args.len());
    out.push(args[0].clone());
    out.extend_from_slice(&args[sub.clone()]);
    out.extend_from_slice(&args[1..1 + width]);
    out.extend_from_slice(&args[sub.end..]);
    out
}

/// `--config FILE`, shared by the commands that read the configuration file.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// The configuration file (TOML). Without it: defaults, and platforms from the environment.
    #[arg(long, short = 'c', env = "RELAY_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration, or defaults when no file is given.
    pub fn load(&self) -> Result<RelayConfig, String> {
        match &self.config {
            Some(path) => RelayConfig::load(Path::new(path)).map_err(|e| e.to_string()),
            None => Ok(RelayConfig::default()),
        }
    }
}

/// The environment variable with the PostgreSQL URL of the state (wins over `[state] url`;
/// it may carry the password, the file may not).
pub const ENV_DATABASE_URL: &str = "RELAY_DATABASE_URL";

/// The state `[state]` names, and where it is for messages (never with a password):
/// PostgreSQL when `RELAY_DATABASE_URL` or `[state] url` is set, else the SQLite file in
/// `[state] dir`.
pub(crate) fn open_store(
    state: &crate::config::StateConfig,
) -> Result<(std::sync::Arc<dyn crate::state::Store>, String), String> {
    let from_env = std::env::var(ENV_DATABASE_URL)
        .ok()
        .filter(|url| !url.trim().is_empty());
    match from_env.as_deref().or(state.url.as_deref()) {
        Some(url) => {
            let setting = if from_env.is_some() {
                ENV_DATABASE_URL
            } else {
                "state.url"
            };
            let store = crate::state::PgStore::connect(url.trim())
                .map_err(|e| format!("state database ({setting}): {e}"))?;
            Ok((std::sync::Arc::new(store), describe_database(url)))
        }
        None => {
            let store =
                crate::state::SqliteStore::open_in(&state.dir).map_err(|e| e.to_string())?;
            Ok((std::sync::Arc::new(store), state.dir.display().to_string()))
        }
    }
}

/// [`open_store`] for a long-running worker: while the database cannot be reached (a worker
/// started during a PostgreSQL restart or failover), it tries again, every second and then
/// less often, for up to `wait`; a URL that cannot work fails at once.
pub(crate) async fn open_store_waiting(
    state: &crate::config::StateConfig,
    wait: std::time::Duration,
) -> Result<(std::sync::Arc<dyn crate::state::Store>, String), String> {
    let url = std::env::var(ENV_DATABASE_URL)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .or_else(|| state.url.clone());
    let Some(url) = url else {
        return open_store(state);
    };
    crate::state::PgStore::check_url(url.trim()).map_err(|e| format!("state database: {e}"))?;
    let started = tokio::time::Instant::now();
    let mut pause = std::time::Duration::from_secs(1);
    loop {
        match open_store(state) {
            Ok(opened) => return Ok(opened),
            Err(e) if started.elapsed() + pause <= wait => {
                tracing::warn!(error = %e, retry_in_secs = pause.as_secs(), "state database not reachable yet; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// `PostgreSQL host:port/db`: the URL without its user and password.
fn describe_database(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split('?').next().unwrap_or_default();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("PostgreSQL {rest}")
}

/// A data folder in the temp directory that no earlier process used, for a command running
/// against the embedded sandbox (which starts empty every time, so its relay state must too).
pub(crate) fn fresh_sandbox_data_dir(command: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "relay-sandbox-{command}-{}-{stamp}",
        std::process::id()
    ))
}
