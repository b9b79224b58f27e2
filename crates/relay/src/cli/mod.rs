//! The `relay` subcommands, one module each; `main.rs` only parses and dispatches.

pub mod auth;
pub mod run;
pub mod serve;
pub mod status;

use std::path::{Path, PathBuf};

use crate::config::RelayConfig;

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
