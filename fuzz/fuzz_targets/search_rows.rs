//! Brightpearl search answers: any JSON decodes into the envelope or is refused, and rows
//! decode by column name (or fail with a row-level error) without a panic.
#![no_main]

use brightpearl_models::common::SearchEnvelope;
use libfuzzer_sys::fuzz_target;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct ProductRow {
    #[serde(rename = "productId")]
    product_id: u64,
    #[serde(rename = "SKU", default)]
    sku: Option<String>,
    #[serde(rename = "stockTracked", default)]
    stock_tracked: Option<bool>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = serde_json::from_slice::<SearchEnvelope>(data) else {
        return;
    };
    let _ = envelope.response.decode_rows::<serde_json::Map<String, serde_json::Value>>();
    let _ = envelope.response.decode_rows::<ProductRow>();
});
