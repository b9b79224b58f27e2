//! Prints the stock of some products, by id or SKU.
//!
//! ```text
//! BRIGHTPEARL_ACCOUNT=myaccount BRIGHTPEARL_APP_REF=myaccount_relay \
//! BRIGHTPEARL_STAFF_TOKEN_FILE=/run/secrets/bp-staff \
//! BRIGHTPEARL_BASE_URL=https://euw1.brightpearlconnect.com \
//!   cargo run -p brightpearl-client --example stock -- 1001 1002 SKU-00007
//! ```
//!
//! Against the sandbox: start `cargo run -p sandbox`, then use the printed Brightpearl
//! credentials (`base_url`, `account`, `app_ref`, `staff_token`).

use brightpearl_client::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("error: {e}\nhint: {}", e.hint());
        std::process::exit(1);
    }
}

async fn run() -> Result<(), brightpearl_client::Error> {
    let client = Client::from_env()?;
    let mut ids: Vec<u64> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.parse::<u64>() {
            Ok(id) => ids.push(id),
            Err(_) => match client.product_by_sku(&arg).await? {
                Some(product) => ids.push(product.id as u64),
                None => eprintln!("no product has SKU {arg}"),
            },
        }
    }
    if ids.is_empty() {
        eprintln!("usage: stock <product id or SKU>...");
        return Ok(());
    }
    let stock = client.availability(&ids).await?;
    for id in &ids {
        match stock.get(&id.to_string()).and_then(|a| a.total.as_ref()) {
            Some(total) => println!(
                "{id}: on hand {}, in stock {}, allocated {}",
                total.on_hand.unwrap_or(0),
                total.in_stock.unwrap_or(0),
                total.allocated.unwrap_or(0)
            ),
            None => println!("{id}: no stock figures (unknown or not stock-tracked)"),
        }
    }
    Ok(())
}
