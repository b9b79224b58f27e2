//! `relay serve` (work in progress).

use std::process::ExitCode;

/// Arguments of `relay serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
}

/// Runs the command.
pub async fn execute(_args: ServeArgs) -> ExitCode {
    eprintln!("relay serve: not available yet");
    ExitCode::from(2)
}
