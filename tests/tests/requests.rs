//! The JSON of representative requests, built with the generated types, as insta snapshots.
//! A spec change that alters what we send shows up here as a reviewed diff.

use brightpearl_models::order::{SalesOrderCustomer, SalesOrderRequest, SalesOrderRowRequest};
use models_runtime::{Decimal, DecimalNumber, Timestamp};
use norce_models::connect::{ImportOnhandsRequest, SkuOnhand, SkuOnhandField, SkuOnhandHeader};
use nshift_models::delivery::{
    Parcel, Partner, Party, PrintConfig, Service, Shipment, ShipmentPrintRequest,
};

#[test]
fn nshift_create_and_print_shipment() {
    let request = ShipmentPrintRequest {
        // PrintConfig has a required enum, so it has no Default: read it from its wire form.
        print_config: Some(
            serde_json::from_value::<PrintConfig>(
                serde_json::json!({"target1Media": "laser-a4", "target1Type": "pdf"}),
            )
            .unwrap(),
        ),
        shipment: Shipment {
            sender: Party {
                quick_id: Some("1".into()),
                ..Default::default()
            },
            sender_partners: Some(vec![Partner {
                id: "PLAB".into(),
                cust_no: Some("0123456789".into()),
                ..Default::default()
            }]),
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
                id: "P19".into(),
                ..Default::default()
            },
            parcels: vec![Parcel {
                copies: 1,
                weight: Some(1.25),
                contents: Some("Clothes".into()),
                ..Default::default()
            }],
            order_no: Some("NC-100001".into()),
            developer_id: Some("relay-dev-0001".into()),
            test: Some(true),
            ..Default::default()
        },
        ..Default::default()
    };
    insta::assert_yaml_snapshot!(request);
}

#[test]
fn norce_import_onhands() {
    let header = SkuOnhandHeader {
        account_id: 1234,
        full_file: false,
        sku_onhand_fields_that_are_set: vec![
            SkuOnhandField::from("OnhandValue"),
            SkuOnhandField::from("WarehouseCode"),
        ],
        ..Default::default()
    };
    let body: ImportOnhandsRequest = vec![SkuOnhand {
        part_no: "SKU-00001".into(),
        warehouse_code: "WH1".into(),
        location_code: "WH1".into(),
        onhand_value: Some(DecimalNumber(Decimal::new(17, 0))),
        ..Default::default()
    }];
    insta::assert_yaml_snapshot!("norce_import_onhands_header", header);
    insta::assert_yaml_snapshot!("norce_import_onhands_body", body);
    // The header travels as single-line JSON.
    let line = models_runtime::header::encode_json("X-StormConnect-Header", &header).unwrap();
    assert!(!line.contains('\n'));
}

#[test]
fn brightpearl_sales_order() {
    let request = SalesOrderRequest {
        customer: SalesOrderCustomer {
            id: 207,
            ..Default::default()
        },
        external_ref: Some("NC-100001".into()),
        installed_integration_instance_id: Some(42),
        placed_on: Some(Timestamp::parse("2026-03-02T08:00:00.000Z").unwrap()),
        rows: vec![SalesOrderRowRequest {
            product_id: Some(1001),
            quantity: Decimal::new(2, 0),
            tax_code: "T20".into(),
            net: Some(Decimal::new(99990, 2)),
            tax: Some(Decimal::new(19998, 2)),
            ..Default::default()
        }],
        ..Default::default()
    };
    insta::assert_yaml_snapshot!(request);
}
