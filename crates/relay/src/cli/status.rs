//! `relay status`, `relay replay`, `relay cursor` (work in progress).

use std::process::ExitCode;

/// Arguments of `relay status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
}

/// Arguments of `relay replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
}

/// Arguments of `relay cursor`.
#[derive(Debug, clap::Args)]
pub struct CursorArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
}

/// Runs `relay status`.
pub async fn execute_status(_args: StatusArgs) -> ExitCode {
    eprintln!("relay status: not available yet");
    ExitCode::from(2)
}

/// Runs `relay replay`.
pub async fn execute_replay(_args: ReplayArgs) -> ExitCode {
    eprintln!("relay replay: not available yet");
    ExitCode::from(2)
}

/// Runs `relay cursor`.
pub async fn execute_cursor(_args: CursorArgs) -> ExitCode {
    eprintln!("relay cursor: not available yet");
    ExitCode::from(2)
}
