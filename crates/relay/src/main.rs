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
    ///
    /// With --deep: call every read-only operation the flows use (small pages, ids found along
    /// the way; never a write), decode each answer as the flows do and strictly against the
    /// spec, and list the fields the spec does not describe, required fields that are absent and
    /// type mismatches. Exit code 1 when a call fails or an answer does not decode; differences
    /// alone are warnings.
    Verify {
        /// Print the results as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Give each platform this many seconds (with --deep: for all its reads together;
        /// default 30, with --deep 120).
        #[arg(long)]
        timeout_secs: Option<u64>,
        /// Verify against the embedded sandbox even when platforms are configured.
        #[arg(long)]
        sandbox: bool,
        /// Call every read-only operation the flows use and check the answers against the specs.
        #[arg(long)]
        deep: bool,
        /// With --deep: save each operation's first answer, masked (personal data and secrets),
        /// with its request line, one JSON file per operation in this folder.
        #[arg(long, value_name = "DIR", requires = "deep")]
        save: Option<std::path::PathBuf>,
        /// With --deep: how many days back to look for Norce orders to read.
        #[arg(long, default_value_t = 7, requires = "deep")]
        days: u32,
        #[command(flatten)]
        config: relay::cli::ConfigArgs,
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
    /// Queue a return label for a booked order (ORDER: the Norce order number). Like replay,
    /// it only queues: the next shipping pass (`relay run`, or `relay serve`) books the return
    /// in nShift exactly once and saves its label beside the order's labels. Refused when
    /// relay does not know the order, it is not booked yet, it has a return already, or its
    /// delivery method maps no `return_service` and no --service is given.
    Return(relay::cli::returns::ReturnArgs),
    /// Queue a refund of an imported order (ORDER: the Norce order number) as a Brightpearl
    /// sales credit: by default every row, all that earlier refunds left (with the freight row);
    /// --row SKU=QTY (repeatable) for some rows, --reason, --restock to put the stock back.
    /// Like replay, it only queues: the next orders pass (`relay run`, or `relay serve`)
    /// creates the credit exactly once (its externalRef `ORDER-R<n>` is searched first).
    /// Refused when relay does not know the order, its sales order is not created yet, a SKU
    /// is not on the order, or a quantity is more than is left.
    Refund(relay::cli::refund::RefundArgs),
    /// Show or move a flow's cursor (moving it back backfills).
    Cursor(relay::cli::status::CursorArgs),
    /// Authorize a platform interactively (Brightpearl OAuth) and store the tokens.
    Auth(relay::cli::auth::AuthArgs),
    /// The configuration file: print its JSON Schema (for editors), or check a file.
    Config(relay::cli::config::ConfigCommandArgs),
}

fn init_tracing() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only for a person at a terminal: never in a file or a journal, never with
    // NO_COLOR set (https://no-color.org).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse_from(relay::cli::config_after_subcommand(
        std::env::args_os().collect(),
    ));
    let Some(command) = cli.command else {
        return relay::cli::run::execute(cli.run).await;
    };
    match command {
        Command::Verify {
            json,
            timeout_secs,
            sandbox,
            deep,
            save,
            days,
            config,
        } => {
            let deep = deep.then(|| verify::deep::DeepOptions {
                save,
                days,
                timeout: Duration::from_secs(timeout_secs.unwrap_or(120)),
            });
            let timeout = Duration::from_secs(timeout_secs.unwrap_or(30));
            run_verify(json, timeout, sandbox, deep, &config).await
        }
        Command::Run(args) => relay::cli::run::execute(args).await,
        Command::Serve(args) => relay::cli::serve::execute(args).await,
        Command::Status(args) => relay::cli::status::execute_status(args).await,
        Command::Replay(args) => relay::cli::status::execute_replay(args).await,
        Command::Return(args) => relay::cli::returns::execute(args).await,
        Command::Refund(args) => relay::cli::refund::execute(args).await,
        Command::Cursor(args) => relay::cli::status::execute_cursor(args).await,
        Command::Auth(args) => relay::cli::auth::execute(args).await,
        Command::Config(args) => relay::cli::config::execute(args),
    }
}

async fn run_verify(
    json: bool,
    timeout: Duration,
    force_sandbox: bool,
    deep: Option<verify::deep::DeepOptions>,
    config: &relay::cli::ConfigArgs,
) -> ExitCode {
    let config = match config.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("relay verify: {e}");
            return ExitCode::from(2);
        }
    };
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
    if let Some(options) = deep {
        let report = verify::deep::verify_deep(&settings, &config, &platforms, &options).await;
        if json {
            match serde_json::to_string_pretty(&report) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("relay verify: cannot write JSON: {e}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            print!("{}", verify::deep::render(&report));
        }
        return if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        };
    }
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
