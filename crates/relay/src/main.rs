//! `relay`: the operator's CLI.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use client_core::Settings;
use relay::verify::{self, Platform};

#[derive(Debug, Parser)]
#[command(
    name = "relay",
    version,
    about = "Norce ↔ nShift ↔ Brightpearl integration runtime"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand, `relay` is `relay run` (the main job) with these options.
    #[command(flatten)]
    run: relay::cli::run::RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check each configured platform connection (token and one authenticated call) and print a
    /// table. With nothing configured, verify against the embedded sandbox. Exit code 1 when any
    /// check fails.
    Verify {
        /// Print the results as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Give each platform this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
        /// Verify against the embedded sandbox even when platforms are configured.
        #[arg(long)]
        sandbox: bool,
    },
    /// The main job: run every flow to completion once and print a summary. With no
    /// configured platform it starts the embedded sandbox with a seeded dataset.
    Run(relay::cli::run::RunArgs),
    /// Serve the receivers (Norce order receiver and events, Brightpearl webhooks), run the
    /// flows on a schedule, and expose /healthz and /metrics.
    Serve(relay::cli::serve::ServeArgs),
    /// Entities per flow and state, and the dead letters.
    Status(relay::cli::status::StatusArgs),
    /// Put dead-lettered items back to be processed again.
    Replay(relay::cli::status::ReplayArgs),
    /// Show or move a flow's cursor (moving it back backfills).
    Cursor(relay::cli::status::CursorArgs),
    /// Authorize a platform interactively (Brightpearl OAuth) and store the tokens.
    Auth(relay::cli::auth::AuthArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return relay::cli::run::execute(cli.run).await;
    };
    match command {
        Command::Verify {
            json,
            timeout_secs,
            sandbox,
        } => run_verify(json, Duration::from_secs(timeout_secs), sandbox).await,
        Command::Run(args) => relay::cli::run::execute(args).await,
        Command::Serve(args) => relay::cli::serve::execute(args).await,
        Command::Status(args) => relay::cli::status::execute_status(args).await,
        Command::Replay(args) => relay::cli::status::execute_replay(args).await,
        Command::Cursor(args) => relay::cli::status::execute_cursor(args).await,
        Command::Auth(args) => relay::cli::auth::execute(args).await,
    }
}

async fn run_verify(json: bool, timeout: Duration, force_sandbox: bool) -> ExitCode {
    let env = Settings::from_env();
    let configured = verify::configured_platforms(&env);
    // Keep the embedded sandbox alive until the checks are done.
    let (_sandbox, settings, platforms) = if configured.is_empty() || force_sandbox {
        match relay::embedded::start().await {
            Ok((sandbox, settings)) => {
                eprintln!(
                    "{}: verifying against the embedded sandbox at {}.",
                    relay::embedded::sandbox_reason(force_sandbox),
                    sandbox.base_url()
                );
                (Some(sandbox), settings, Platform::ALL.to_vec())
            }
            Err(e) => {
                eprintln!("relay verify: cannot start the embedded sandbox on 127.0.0.1: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        (None, env, configured)
    };
    let results = verify::verify(&settings, &platforms, timeout).await;
    if json {
        match serde_json::to_string_pretty(&results) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("relay verify: cannot write JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", verify::render_table(&results));
    }
    if results.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
