//! `relay refund ORDER`: queue a refund (a Brightpearl sales credit) of an imported Norce
//! order. Like `relay replay`, it only changes the state: the next `orders` pass credits it
//! (`relay run`, or `relay serve`'s next pass).

use std::process::ExitCode;

/// Arguments of `relay refund`.
#[derive(Debug, clap::Args)]
pub struct RefundArgs {
    #[command(flatten)]
    config: super::ConfigArgs,
    /// The Norce order number (e.g. NC-100001).
    order: String,
    /// Refund only this row: SKU (the Norce part number; `Freight` for the freight row) and
    /// quantity, e.g. `--row SKU-1=2`. Repeatable. Without it: every row, all that earlier
    /// refunds left.
    #[arg(long = "row", value_name = "SKU=QTY", value_parser = crate::flows::orders::parse_refund_row)]
    rows: Vec<(String, String)>,
    /// Why (kept on the refund and in the audit log).
    #[arg(long)]
    reason: Option<String>,
    /// Put the refunded stock back into `orders.warehouse_id` (a goods-in note on the credit, at
    /// `orders.refund_location_id` or each product's default location). Default:
    /// `orders.refund_restock`.
    #[arg(long, conflicts_with = "no_restock")]
    restock: bool,
    /// Do not put the stock back, whatever `orders.refund_restock` says.
    #[arg(long)]
    no_restock: bool,
}

/// Runs `relay refund`: exit code 0 when queued, 2 when refused (the order unknown to relay,
/// its Brightpearl sales order not created yet, a SKU not on the order, a quantity above what
/// is left) with the reason.
pub async fn execute(args: RefundArgs) -> ExitCode {
    match queue(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("relay refund: {}", crate::text::escape(&message));
            ExitCode::from(2)
        }
    }
}

fn queue(args: &RefundArgs) -> Result<ExitCode, String> {
    let config = args.config.load()?;
    let (store, _) = super::open_store(&config.state)
        .map_err(|e| format!("state in `{}`: {e}", config.state.dir.display()))?;
    let request = crate::flows::orders::RefundRequest {
        rows: args.rows.clone(),
        reason: args.reason.clone(),
        restock: match (args.restock, args.no_restock) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
    };
    let queued = crate::operator::refund(
        store.as_ref(),
        &config,
        &args.order,
        &request,
        crate::operator::CLI_ACTOR,
    )
    .map_err(|e| e.to_string())?;
    println!(
        "refund {} queued: {}",
        crate::text::escape(&queued.record.source_id),
        crate::text::escape(&queued.summary)
    );
    println!(
        "run `relay run` (or let `relay serve` pick it up) to create the Brightpearl sales credit"
    );
    Ok(ExitCode::SUCCESS)
}
