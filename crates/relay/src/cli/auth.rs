//! `relay auth brightpearl` (work in progress).

use std::process::ExitCode;

/// Arguments of `relay auth`.
#[derive(Debug, clap::Args)]
pub struct AuthArgs {}

/// Runs the command.
pub async fn execute(_args: AuthArgs) -> ExitCode {
    eprintln!("relay auth: not available yet");
    ExitCode::from(2)
}
