//! `relay return ORDER`: queue a return label for a booked order. Like `relay replay`, it only
//! changes the state: the next shipping pass books it (`relay run`, or `relay serve`'s next
//! pass).

use std::process::ExitCode;

/// Arguments of `relay return`.
#[derive(Debug, clap::Args)]
pub struct ReturnArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
    /// The Norce order number (e.g. NC-100001), or the basket id.
    order: String,
    /// The nShift return product to book (default: the delivery method's
    /// `shipping.services.<method>.return_service`).
    #[arg(long, value_name = "SERVICE_ID")]
    service: Option<String>,
}

/// Runs `relay return`: exit code 0 when queued (or queued already), 2 when refused (unknown
/// order, not booked yet, a return already, no return service) with the reason.
pub async fn execute(args: ReturnArgs) -> ExitCode {
    match queue(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("relay return: {message}");
            ExitCode::from(2)
        }
    }
}

fn queue(args: &ReturnArgs) -> Result<ExitCode, String> {
    let config = args.config.load()?;
    let (store, _) = super::open_store(&config.state)
        .map_err(|e| format!("state in `{}`: {e}", config.state.dir.display()))?;
    let requested = crate::operator::request_return(
        store.as_ref(),
        &config,
        &args.order,
        args.service.as_deref(),
        crate::operator::CLI_ACTOR,
    )
    .map_err(|e| e.to_string())?;
    let order = crate::text::escape(&requested.order_no);
    let service = crate::text::escape(&requested.service_id);
    if requested.already_queued {
        println!("a return label for order {order} is queued already (service {service})");
    } else {
        println!("return label for order {order} queued (service {service})");
    }
    println!(
        "run `relay run` (or let `relay serve` pick it up) to book it; the label is saved beside the order's labels as <order>-return-1.pdf"
    );
    Ok(ExitCode::SUCCESS)
}
