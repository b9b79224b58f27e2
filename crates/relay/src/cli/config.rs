//! `relay config`: the configuration file's JSON Schema (`schema`, for editors) and a check of a
//! file (`check`), the same one every command runs when it loads the file.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{ConfigError, RelayConfig};

/// Arguments of `relay config`.
#[derive(Debug, clap::Args)]
pub struct ConfigCommandArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

/// What `relay config` does.
#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Print the JSON Schema of the configuration file (every section and key, with its
    /// default and description), for an editor to complete and check `relay.toml`:
    /// `relay config schema > relay.schema.json`, then `#:schema ./relay.schema.json` as the
    /// first line of `relay.toml` (Taplo, Even Better TOML).
    Schema,
    /// Load a configuration file and check every section as `run` and `serve` do when they
    /// load it. Exit code 0 when it is valid, 1 naming the `section.key` and what to do when it
    /// is not, 2 when it cannot be read.
    Check {
        #[command(flatten)]
        config: super::ConfigArgs,
    },
}

/// Runs the command.
pub fn execute(args: ConfigCommandArgs) -> ExitCode {
    match args.command {
        ConfigCommand::Schema => print_schema(),
        ConfigCommand::Check { config } => match &config.config {
            Some(path) => check(path),
            None => {
                eprintln!(
                    "relay config check: no file given: pass `-c relay.toml` (or set RELAY_CONFIG)"
                );
                ExitCode::from(2)
            }
        },
    }
}

fn print_schema() -> ExitCode {
    let schema = RelayConfig::json_schema();
    match serde_json::to_string_pretty(&schema) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = writeln!(out, "{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("relay config schema: cannot write the schema: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &Path) -> ExitCode {
    match RelayConfig::load(path) {
        Ok(_) => {
            println!(
                "{}: valid (sections state, run, shipping, stock, orders, serve checked)",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e @ ConfigError::Read { .. }) => {
            eprintln!("relay config check: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("relay config check: {e}");
            ExitCode::from(1)
        }
    }
}
