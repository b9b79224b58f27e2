//! The sandbox's OData `$filter` and `$orderby` parser (what relay's Norce Query requests are
//! checked by): any text parses or is refused with a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox::norce::odata::{Kind, parse_filter, parse_orderby};

fn kind_of(name: &str) -> Option<Kind> {
    match name {
        "id" | "statusId" | "quotationId" => Some(Kind::Int),
        "created" | "updated" => Some(Kind::Date),
        "orderNo" => Some(Kind::Str),
        "isPartDelivery" => Some(Kind::Bool),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_filter(text, "Order", &kind_of);
    let _ = parse_orderby(text, "Order", &kind_of);
});
