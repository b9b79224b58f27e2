//! `schemars::JsonSchema` for the runtime types the generated models hold, so the models derive it.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use crate::{DecimalNumber, Timestamp, VatMultiplier, VatPercent};

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A timestamp: RFC 3339, an offset without colon, a local time, a WCF date or a date.",
        })
    }
}

/// An exact decimal written as a JSON number.
fn number(description: &str) -> Schema {
    json_schema!({ "type": "number", "description": description })
}

impl JsonSchema for DecimalNumber {
    fn schema_name() -> Cow<'static, str> {
        "DecimalNumber".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        number("An exact decimal, written as a JSON number.")
    }
}

impl JsonSchema for VatPercent {
    fn schema_name() -> Cow<'static, str> {
        "VatPercent".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        number("A VAT rate in percent (25 for 25 %).")
    }
}

impl JsonSchema for VatMultiplier {
    fn schema_name() -> Cow<'static, str> {
        "VatMultiplier".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        number("A VAT rate as a multiplier (1.25 for 25 %).")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_types_describe_their_wire_form() {
        let timestamp = schemars::schema_for!(Timestamp);
        assert_eq!(
            timestamp.get("type").and_then(|t| t.as_str()),
            Some("string")
        );
        let vat = schemars::schema_for!(VatPercent);
        assert_eq!(vat.get("type").and_then(|t| t.as_str()), Some("number"));
    }
}
