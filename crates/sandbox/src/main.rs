//! `sandbox`: serve the Norce, nShift and Brightpearl simulators on one port.
//!
//! The first line on stdout is one JSON object with every platform's base URL and demo
//! credentials; then it serves until Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use sandbox::{DatasetConfig, Sandbox, SandboxConfig};

#[derive(Debug, Parser)]
#[command(
    name = "sandbox",
    about = "Local simulators of Norce Commerce, nShift Delivery and Brightpearl"
)]
struct Args {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// Address to bind. Only loopback by default: the demo credentials are public.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Seed of the generated dataset.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of Norce orders in the dataset.
    #[arg(long, default_value_t = 20)]
    orders: usize,
    /// Number of SKUs in the dataset.
    #[arg(long, default_value_t = 50)]
    skus: usize,
    /// Number of warehouses in the dataset.
    #[arg(long, default_value_t = 2)]
    warehouses: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = SandboxConfig {
        dataset: DatasetConfig {
            seed: args.seed,
            orders: args.orders,
            skus: args.skus,
            warehouses: args.warehouses,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    };
    let sandbox = match Sandbox::start_on(config, SocketAddr::new(args.host, args.port)).await {
        Ok(sandbox) => sandbox,
        Err(e) => {
            eprintln!(
                "sandbox: cannot listen on {}:{}: {e} (try --port 0 for a free port)",
                args.host, args.port
            );
            return ExitCode::FAILURE;
        }
    };
    match serde_json::to_string(&sandbox.credentials()) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("sandbox: cannot print credentials: {e}");
            return ExitCode::FAILURE;
        }
    }
    eprintln!(
        "sandbox: serving on {} (Ctrl-C to stop)",
        sandbox.base_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    sandbox.shutdown().await;
    ExitCode::SUCCESS
}
