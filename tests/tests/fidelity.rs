//! The fidelity traps of the three platforms, tested on the generated types.

use brightpearl_models::common::{SearchEnvelope, SearchResults};
use brightpearl_models::order::ShippingStatusCode;
use brightpearl_models::product::Product;
use models_runtime::Decimal;
use norce_models::connect::ConnectOrderStatus;
use nshift_models::delivery::{AlertFetchList, ShipmentInfo, ShipmentStatus};
use serde_json::json;

#[test]
fn nshift_timestamps_with_colonless_offsets_parse_and_round_trip() {
    let info: ShipmentInfo = serde_json::from_value(json!({
        "href": "https://api.example/rs-extapi/v1/shipments/1",
        "id": "1",
        "created": "2015-06-03T13:18:30.904+0000",
        "changed": "2015-06-03T15:18:30.904+02:00"
    }))
    .unwrap();
    let created = info.created.as_ref().unwrap();
    assert_eq!(created.to_rfc3339(), "2015-06-03T13:18:30.904+00:00");
    // RFC 3339 works too, and both name the same instant.
    assert_eq!(info.changed.as_ref().unwrap().to_utc(), created.to_utc());
    let back = serde_json::to_value(&info).unwrap();
    assert_eq!(
        back["created"], "2015-06-03T13:18:30.904+0000",
        "written back as it came"
    );
}

#[test]
fn brightpearl_money_stays_exact_decimal() {
    let envelope: brightpearl_models::common::Money =
        serde_json::from_value(json!({"currencyCode": "GBP", "value": "9.0909"})).unwrap();
    let value = envelope.value.unwrap();
    assert_eq!(value, Decimal::new(90909, 4));
    // 0.1 + 0.2 is exact in decimal, unlike f64.
    let sum = Decimal::from_str_exact("0.1").unwrap() + Decimal::from_str_exact("0.2").unwrap();
    assert_eq!(sum.to_string(), "0.3");
    assert_eq!(serde_json::to_value(&envelope).unwrap()["value"], "9.0909");
}

#[test]
fn brightpearl_absent_fields_deserialize() {
    // Brightpearl omits null fields: a product with nothing but its id is valid.
    let product: Product = serde_json::from_value(json!({"id": 1001})).unwrap();
    assert_eq!(product.id, 1001);
    assert!(product.created_on.is_none());
    assert_eq!(
        serde_json::to_value(&product).unwrap(),
        json!({"id": 1001}),
        "absent stays absent"
    );
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct ProductRow {
    #[serde(rename = "productId")]
    id: i64,
    #[serde(rename = "SKU")]
    sku: String,
    #[serde(rename = "productName")]
    name: Option<String>,
}

fn search(columns: &[&str], rows: serde_json::Value) -> SearchResults {
    let envelope: SearchEnvelope = serde_json::from_value(json!({
        "response": {
            "results": rows,
            "metaData": {
                "resultsAvailable": 2, "resultsReturned": 2, "firstResult": 1, "lastResult": 2,
                "morePagesAvailable": false,
                "columns": columns.iter().map(|c| json!({"name": c})).collect::<Vec<_>>()
            }
        }
    }))
    .unwrap();
    envelope.response
}

#[test]
fn brightpearl_positional_rows_decode_by_column_name_in_any_order() {
    let a = search(
        &["productId", "SKU", "productName"],
        json!([[1001, "SKU-1", "Sweater"], [1002, "SKU-2", null]]),
    );
    let b = search(
        &["SKU", "productName", "productId"],
        json!([["SKU-1", "Sweater", 1001], ["SKU-2", null, 1002]]),
    );
    let rows_a: Vec<ProductRow> = a.decode_rows().unwrap();
    let rows_b: Vec<ProductRow> = b.decode_rows().unwrap();
    assert_eq!(rows_a, rows_b);
    assert_eq!(
        rows_a[0],
        ProductRow {
            id: 1001,
            sku: "SKU-1".into(),
            name: Some("Sweater".into())
        }
    );
    assert_eq!(rows_a[1].name, None);
}

#[test]
fn brightpearl_malformed_rows_are_errors_not_panics() {
    let short = search(&["productId", "SKU"], json!([[1001]]));
    let err = short.decode_rows::<ProductRow>().unwrap_err();
    assert!(
        err.to_string()
            .contains("row 0 has 1 values but `metaData.columns` names 2"),
        "{err}"
    );
    let wrong_type = search(&["productId", "SKU"], json!([["not a number", "SKU-1"]]));
    assert!(
        wrong_type
            .decode_rows::<ProductRow>()
            .unwrap_err()
            .to_string()
            .contains("row 0")
    );
}

#[test]
fn unknown_enum_values_become_unknown_variants() {
    // A status type nShift adds later.
    let status: ShipmentStatus = serde_json::from_value(json!("HELD_AT_CUSTOMS")).unwrap();
    assert_eq!(status, ShipmentStatus::Unknown("HELD_AT_CUSTOMS".into()));
    assert_eq!(
        serde_json::to_value(&status).unwrap(),
        json!("HELD_AT_CUSTOMS")
    );
    // A Norce order status and a Brightpearl shipping status code that are not in our specs.
    let norce: ConnectOrderStatus = serde_json::from_value(json!("AwaitingPickup")).unwrap();
    assert!(norce.is_unknown());
    let code: ShippingStatusCode = serde_json::from_value(json!("XYZ")).unwrap();
    assert_eq!(code.as_str(), "XYZ");
    assert!(code.is_unknown());
    // Known values stay known.
    let known: ShipmentStatus = serde_json::from_value(json!("DELIVERED")).unwrap();
    assert_eq!(known, ShipmentStatus::Delivered);
}

#[test]
fn unknown_fields_are_ignored() {
    let feed: AlertFetchList = serde_json::from_value(json!({
        "fetchId": "1", "done": true, "alerts": [], "someFieldNShiftAddedLater": {"x": 1}
    }))
    .unwrap();
    assert_eq!(feed.fetch_id, "1");
}
