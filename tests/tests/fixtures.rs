//! Every fixture under `tests/fixtures/<platform>/<module>.<Type>.<variant>.json` deserializes
//! into its generated type and serializes back to the same JSON: no field lost, none invented.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn round_trip<T: DeserializeOwned + Serialize>(json: &Value) -> Result<Value, String> {
    let typed: T =
        serde_json::from_value(json.clone()).map_err(|e| format!("does not deserialize: {e}"))?;
    serde_json::to_value(&typed).map_err(|e| format!("does not serialize: {e}"))
}

/// Maps `(crate, module, Type)` to the round trip through that type. A fixture whose type is
/// not listed fails the test, so a new fixture cannot be skipped silently.
macro_rules! registry {
    ($($krate:ident :: $module:ident :: $ty:ident),* $(,)?) => {
        fn round_trip_as(krate: &str, module: &str, ty: &str, json: &Value) -> Option<Result<Value, String>> {
            match (krate, module, ty) {
                $((stringify!($krate), stringify!($module), stringify!($ty)) => Some(round_trip::<$krate::$module::$ty>(json)),)*
                _ => None,
            }
        }
    };
}

registry! {
    brightpearl_models::common::AuthErrorResponse,
    brightpearl_models::common::ErrorEnvelope,
    brightpearl_models::common::SearchEnvelope,
    brightpearl_models::contact::ContactRequest,
    brightpearl_models::contact::PostalAddressRequest,
    brightpearl_models::integration::MultiMessageRequest,
    brightpearl_models::integration::MultiMessageResponse,
    brightpearl_models::integration::WebhookEvent,
    brightpearl_models::integration::WebhookRequest,
    brightpearl_models::oauth::TokenError,
    brightpearl_models::oauth::TokenResponse,
    brightpearl_models::order::OrderListResponse,
    brightpearl_models::order::SalesOrderRequest,
    brightpearl_models::product::PriceListListResponse,
    brightpearl_models::product::Product,
    brightpearl_models::product::ProductPriceListResponse,
    brightpearl_models::warehouse::GoodsOutNoteMapResponse,
    brightpearl_models::warehouse::ProductAvailabilityResponse,
    norce_models::connect::CancelOrderRequest,
    norce_models::connect::DeliveryNote,
    norce_models::connect::Job,
    norce_models::connect::JobResponse,
    norce_models::connect::SendOrderStatusRequest,
    norce_models::connect::SkuOnhand,
    norce_models::connect::SkuPriceList,
    norce_models::connect::StormConnectHeader,
    norce_models::events::NorceEvent,
    norce_models::events::OrderRequest,
    norce_models::events::OrderResponse,
    norce_models::identity::TokenRequest,
    norce_models::identity::TokenResponse,
    norce_models::query::OrdersPage,
    norce_models::services::Application,
    norce_models::services::Order,
    norce_models::services::OrderPagedList,
    norce_models::services::ProductItemPagedList,
    nshift_models::delivery::AgentList,
    nshift_models::delivery::AlertFetchList,
    nshift_models::delivery::Error,
    nshift_models::delivery::PriceRequest,
    nshift_models::delivery::PriceResponse,
    nshift_models::delivery::Shipment,
    nshift_models::delivery::ShipmentFetchInfoList,
    nshift_models::delivery::ShipmentInfo,
    nshift_models::delivery::ShipmentInfoList,
    nshift_models::delivery::ShipmentPrintRequest,
    nshift_models::delivery::StatusList,
    nshift_models::delivery::StoredShipmentInfo,
}

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut files = Vec::new();
    for platform in std::fs::read_dir(&root).unwrap() {
        for file in std::fs::read_dir(platform.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_fixture_round_trips_through_its_generated_type() {
    let files = fixtures();
    assert!(
        files.len() >= 40,
        "expected the platform fixtures, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let platform = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let mut parts = name.split('.');
        let (module, ty) = (parts.next().unwrap(), parts.next().unwrap());
        let text = std::fs::read_to_string(path).unwrap();
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        match round_trip_as(&format!("{platform}_models"), module, ty, &json) {
            None => failures.push(format!("{platform}/{name}: type {module}::{ty} is not in the registry")),
            Some(Err(e)) => failures.push(format!("{platform}/{name}: {e}")),
            Some(Ok(back)) if back != json => failures.push(format!(
                "{platform}/{name}: round trip changed the JSON\n  fixture: {json}\n  back:    {back}"
            )),
            Some(Ok(_)) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
