//! Lists orders from Norce: connects with the `NORCE_*` environment variables, or, when
//! `NORCE_CLIENT_ID` is not set, starts the in-process sandbox and uses its demo credentials.
//!
//! ```text
//! cargo run -p norce-client --example norce_orders                 # sandbox
//! NORCE_CLIENT_ID=… NORCE_CLIENT_SECRET=… NORCE_APPLICATION_ID=1042 \
//! NORCE_CLIENT_SLUG=norce-open-demo NORCE_REGION=se NORCE_STAGE=playground \
//!   cargo run -p norce-client --example norce_orders -- 2024-08-01T00:00:00Z
//! ```
//!
//! The optional argument is the `fromDate` of ListOrders3 (default 2020-01-01).

use futures::StreamExt as _;
use models_runtime::Timestamp;
use norce_client::models::query::QueryOrdersQuery;
use norce_client::models::services::ListOrders3Query;
use norce_client::{NorceClient, NorceClientBuilder, Settings};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}\nhint: {}", e.hint());
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), norce_client::Error> {
    let from = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "2020-01-01T00:00:00Z".into());
    let from_date = Timestamp::parse(&from).map_err(|e| norce_client::Failure::InvalidRequest {
        operation: "ListOrders3",
        reason: format!("fromDate `{from}`: {e}"),
    })?;

    // Keep the sandbox alive for the whole run.
    let (client, _sandbox) = if Settings::from_env().any_set(&["NORCE_CLIENT_ID"]) {
        (NorceClient::from_env()?, None)
    } else {
        let sandbox = sandbox::Sandbox::start(sandbox::SandboxConfig::default())
            .await
            .map_err(|e| norce_client::Failure::InvalidRequest {
                operation: "sandbox",
                reason: e.to_string(),
            })?;
        let c = sandbox.credentials().norce;
        println!(
            "NORCE_CLIENT_ID not set: using the sandbox at {}",
            c.base_url
        );
        let settings = Settings::from_pairs([
            ("NORCE_BASE_URL", c.base_url),
            ("NORCE_CLIENT_ID", c.client_id),
            ("NORCE_CLIENT_SECRET", c.client_secret),
            ("NORCE_APPLICATION_ID", c.application_id.to_string()),
            ("NORCE_SCOPE", c.scope),
        ]);
        (
            NorceClientBuilder::from_settings(&settings)?.build()?,
            Some(sandbox),
        )
    };

    let app = client.verify().await?;
    println!(
        "application {} {:?} (scope {})",
        app.id,
        app.name.as_deref().unwrap_or(""),
        client.scope()
    );

    let query = ListOrders3Query {
        from_date: Some(from_date),
        page_size: Some(10),
        ..Default::default()
    };
    let mut pages = client.list_orders(query);
    let mut shown = 0;
    while let Some(page) = pages.next().await {
        let page = page?;
        for order in page.items.iter().flatten() {
            shown += 1;
            println!(
                "  {:>10}  {:<14} {:<10} {} {}",
                order.id,
                order.order_no.as_deref().unwrap_or("-"),
                order.status.as_deref().unwrap_or("-"),
                order
                    .order_total_inc_vat
                    .as_ref()
                    .map(|d| d.0.to_string())
                    .unwrap_or_default(),
                order.currency.as_deref().unwrap_or(""),
            );
        }
        println!("  … {shown} of {} (ListOrders3)", page.item_count);
    }

    let query = QueryOrdersQuery {
        top: Some(5),
        orderby: Some("id desc".into()),
        ..Default::default()
    };
    if let Some(page) = client.query_orders(query).next().await {
        let page = page?;
        println!("Query 3.0: {} order(s) on the first page", page.value.len());
    }
    Ok(())
}
