//! The models derive `schemars::JsonSchema` (typify's output); open enums and runtime types
//! describe their wire form.

use nshift_models::delivery::{Shipment, ShipmentStatus};

#[test]
fn structs_describe_their_wire_fields_and_open_enums_any_string() {
    let shipment = serde_json::to_value(schemars::schema_for!(Shipment)).unwrap();
    let properties = &shipment["properties"];
    assert!(properties.get("orderNo").is_some(), "{shipment}");
    assert!(properties.get("receiver").is_some(), "{shipment}");
    let status = serde_json::to_value(schemars::schema_for!(ShipmentStatus)).unwrap();
    assert_eq!(status["type"], "string", "{status}");
    assert!(
        status["examples"].as_array().is_some_and(|e| !e.is_empty()),
        "the listed values are examples, not a limit: {status}"
    );
}
