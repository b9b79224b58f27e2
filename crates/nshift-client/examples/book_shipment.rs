//! Books one shipment exactly once and writes its labels to the current directory.
//!
//! ```sh
//! # against the sandbox (`cargo run -p sandbox` prints its credentials):
//! NSHIFT_BASE_URL=http://127.0.0.1:8787/rs-extapi/v1 \
//! NSHIFT_API_KEY_ID=SANDBOXKEY01 NSHIFT_SECRET_ID=sandbox-nshift-secret \
//! NSHIFT_DEVELOPER_ID=relay-dev-0001 \
//!   cargo run -p nshift-client --example book_shipment -- NC-100001
//! ```
//!
//! Running it again with the same order number books nothing new: it reports the existing
//! shipment (`AlreadyBooked`).

use nshift_client::models::{Parcel, Party, Service, Shipment};
use nshift_client::{BookingOutcome, NshiftClient};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let order_no = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "NC-100001".to_owned());
    match run(&order_no).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}\nhint: {}", e.hint());
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(order_no: &str) -> Result<(), nshift_client::Error> {
    let client = NshiftClient::from_env()?;
    let shipment = Shipment {
        // quickId 1: the first sender in the account's address book.
        sender: Party {
            quick_id: Some("1".into()),
            ..Default::default()
        },
        receiver: Party {
            name: Some("Anna Lind".into()),
            address1: Some("Drottninggatan 12".into()),
            zipcode: Some("11151".into()),
            city: Some("Stockholm".into()),
            country: Some("SE".into()),
            email: Some("anna.lind@example.com".into()),
            mobile: Some("+46701234567".into()),
            ..Default::default()
        },
        service: Service {
            id: "P15".into(),
            ..Default::default()
        },
        parcels: vec![Parcel {
            copies: 1,
            weight: Some(1.25),
            contents: Some("Clothes".into()),
            ..Default::default()
        }],
        sender_reference: Some(order_no.to_owned()),
        // Prints TEST on the label and sends no EDI to the carrier.
        test: Some(true),
        ..Default::default()
    };
    let booking = client.book_once(order_no, shipment).await?;
    match booking.outcome {
        BookingOutcome::Printed => println!("order {order_no}: booked now"),
        BookingOutcome::AlreadyBooked => {
            println!("order {order_no}: was already booked; nothing new was created")
        }
        _ => println!("order {order_no}: {:?}", booking.outcome),
    }
    for shipment in &booking.shipments {
        println!(
            "shipment {} parcels {:?}",
            shipment.info.id,
            shipment.parcel_numbers()
        );
        for (i, label) in shipment.labels.iter().enumerate() {
            let extension = if label.media_type() == "application/pdf" {
                "pdf"
            } else {
                "zpl"
            };
            let path = format!("{order_no}-{}-{i}.{extension}", shipment.info.id);
            match std::fs::write(&path, &label.bytes) {
                Ok(()) => println!(
                    "  wrote {path} ({}, {} bytes)",
                    label.media_type(),
                    label.bytes.len()
                ),
                Err(e) => eprintln!("  could not write {path}: {e}"),
            }
        }
    }
    Ok(())
}
