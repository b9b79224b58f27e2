//! `relay run` (work in progress).

use std::process::ExitCode;

/// Arguments of `relay run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
}

/// Runs the command.
pub async fn execute(_args: RunArgs) -> ExitCode {
    eprintln!("relay run: not available yet");
    ExitCode::from(2)
}
