//! Numbers sent as JSON strings.
//!
//! nShift's own request samples write numbers as strings: `"copies": "1"`, `"weight": "37.5"`
//! and `"volume": "0.12"` in the RAML examples of POST /stored-shipments, POST /shipments and
//! POST /consolidated-shipments (`nshift-raml-2016/root-resource-v1.raml`), and again in the
//! help centre's prepared-shipment sample. The server takes them: the RAML's 201 sample for the
//! stored shipment warns that the weight `"37.5"` exceeds the service's maximum, so it read the
//! string as a number.
//!
//! The generated models read JSON numbers only, so the request bodies that hold numbers go
//! through [`normalize`] before they are decoded: wherever the spec has `type: integer` or
//! `type: number`, a string holding a number becomes that number, and a string that is not a
//! number is refused with the field named. Every other value is left for the model to judge.
//! The shapes below list exactly those places; a unit test checks them against
//! `specs/nshift/delivery.yaml`.

use std::fmt;
use std::str::FromStr;

use serde_json::{Number, Value};

/// What the spec has at one place of a request body (only places that lead to numbers).
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// `type: integer`.
    Integer,
    /// `type: number`.
    Number,
    /// `type: number, format: decimal`: the model reads a string exactly, so a numeric string
    /// is kept as it is and only a non-numeric one is refused.
    Decimal,
    /// An object: the properties that hold numbers somewhere below.
    Object(&'static [(&'static str, Shape)]),
    /// An array of this.
    Array(&'static Shape),
}

use Shape::{Array, Decimal, Integer, Number as Num, Object};

/// `PrintConfig` and `PdfConfig` (the 2016 fields are a subset).
pub const PRINT_CONFIG: Shape = Object(&[
    ("target1XOffset", Num),
    ("target1YOffset", Num),
    ("target2XOffset", Num),
    ("target2YOffset", Num),
    ("target3XOffset", Num),
    ("target3YOffset", Num),
    ("target4XOffset", Num),
    ("target4YOffset", Num),
]);

const ADDON: Shape = Object(&[
    ("amount", Decimal),
    ("tempMin", Num),
    ("tempMax", Num),
    ("length", Num),
    ("width", Num),
]);

const SERVICE: Shape = Object(&[
    ("waybillInvoice", Integer),
    ("waybillEurCertificate", Integer),
    ("waybillExportNotification", Integer),
    ("waybillUnits332", Integer),
    ("waybillWeight332", Num),
    ("waybillUnits334", Integer),
    ("waybillWeight334", Num),
    ("waybillUnits336", Integer),
    ("waybillWeight336", Num),
    ("waybillUnits342", Integer),
    ("waybillWeight342", Num),
    ("waybillCod", Integer),
    ("waybillCod342", Integer),
    ("waybillHomeDelivery342", Integer),
    ("shipperLoadAndCount", Integer),
    ("addons", Array(&ADDON)),
]);

const DANGEROUS_GOODS: Shape = Object(&[("netWeight", Num), ("netVolume", Num), ("quantity", Num)]);

const ARTICLE: Shape = Object(&[
    ("count", Integer),
    ("price", Decimal),
    ("weight", Num),
    ("volume", Num),
    ("loadingMeters", Num),
    ("customsOtherQuantity", Num),
    ("customsValue", Decimal),
    ("customsNetWeight", Num),
    ("dangerousGoods", DANGEROUS_GOODS),
]);

const PARCEL: Shape = Object(&[
    ("copies", Integer),
    ("weight", Num),
    ("volume", Num),
    ("length", Num),
    ("width", Num),
    ("height", Num),
    ("loadingMeters", Num),
    ("dangerousGoods", DANGEROUS_GOODS),
    ("articles", Array(&ARTICLE)),
]);

const CUSTOMS_LINE: Shape = Object(&[
    ("copies", Integer),
    ("value", Decimal),
    ("netWeight", Num),
    ("otherQuantity", Num),
]);

const CUSTOMS_DECLARATION: Shape = Object(&[
    ("parcelCount", Integer),
    ("discount", Decimal),
    ("freightCharges", Decimal),
    ("insuranceCharges", Decimal),
    ("otherCharges", Decimal),
    ("lines", Array(&CUSTOMS_LINE)),
]);

/// `Shipment`: the body of POST /stored-shipments and the `shipment` of the other bodies.
pub const SHIPMENT: Shape = Object(&[
    ("totalEurPallets", Integer),
    ("totalHalfPallets", Integer),
    ("totalQuarterPallets", Integer),
    ("totalWeight", Num),
    ("totalVolume", Num),
    ("totalLoadingMeters", Num),
    ("totalQuantity", Integer),
    ("totalPieces", Integer),
    ("totalPallets", Integer),
    ("service", SERVICE),
    ("parcels", Array(&PARCEL)),
    ("customsDeclaration", CUSTOMS_DECLARATION),
]);

/// `ShipmentPrintRequest`: the body of POST /shipments.
pub const SHIPMENT_PRINT_REQUEST: Shape = Object(&[
    ("printConfig", PRINT_CONFIG),
    ("pdfConfig", PRINT_CONFIG),
    ("shipment", SHIPMENT),
]);

/// `PriceRequest`: the body of POST /prices.
pub const PRICE_REQUEST: Shape = Object(&[
    (
        "additionalSurcharges",
        Object(&[("percent", Integer), ("amount", Decimal)]),
    ),
    ("shipment", SHIPMENT),
]);

/// A string where the spec has a number, that is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotANumber {
    /// Where in the body, e.g. `shipment.parcels[0].weight`.
    pub path: String,
    /// The string as sent.
    pub value: String,
    /// An integer was expected.
    pub integer: bool,
}

impl fmt::Display for NotANumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.integer {
            "a whole number"
        } else {
            "a number"
        };
        write!(
            f,
            "Illegal argument in body: {} must be {what}, got {}",
            self.path,
            Value::String(self.value.clone())
        )
    }
}

/// Rewrites the numeric strings of `body` at the places `shape` names into JSON numbers (decimal
/// places keep their string), or names the first such string that is not a number.
pub fn normalize(body: &mut Value, shape: &Shape) -> Result<(), NotANumber> {
    let mut path = String::new();
    walk(body, shape, &mut path)
}

fn walk(value: &mut Value, shape: &Shape, path: &mut String) -> Result<(), NotANumber> {
    // Values of another type than the shape expects (numbers, null, ...) are left for the model.
    match shape {
        Object(fields) => {
            let Value::Object(map) = value else {
                return Ok(());
            };
            for (name, field) in fields.iter() {
                if let Some(child) = map.get_mut(*name) {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(name);
                    walk(child, field, path)?;
                    path.truncate(len);
                }
            }
            Ok(())
        }
        Array(item) => {
            let Value::Array(items) = value else {
                return Ok(());
            };
            for (i, child) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(child, item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Integer | Num | Decimal => {
            let Value::String(text) = value else {
                return Ok(());
            };
            let trimmed = text.trim();
            let replacement = match shape {
                Integer => trimmed.parse::<i64>().ok().map(|n| Value::Number(n.into())),
                Num => trimmed
                    .parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number),
                _ => models_runtime::Decimal::from_str(trimmed)
                    .ok()
                    .map(|_| Value::String(trimmed.to_owned())),
            };
            match replacement {
                Some(replacement) => {
                    *value = replacement;
                    Ok(())
                }
                None => Err(NotANumber {
                    path: path.clone(),
                    value: text.clone(),
                    integer: matches!(shape, Integer),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::json;

    use super::*;

    #[test]
    fn numeric_strings_become_numbers_where_the_spec_has_numbers() {
        let mut body = json!({
            "pdfConfig": {"target1Media": "laser-ste", "target1XOffset": "0.0", "target3Media": null},
            "shipment": {
                "sender": {"quickId": "1", "zipcode": "41121"},
                "service": {"id": "P15", "valueAmount": "100", "addons": [{"id": "COD", "amount": "499.50"}]},
                "parcels": [
                    {"copies": "1", "weight": "37.5", "volume": "0.12", "contents": "12"},
                    {"copies": 2, "weight": 1.5, "height": " 0.2 ",
                     "articles": [{"count": "3", "customsValue": "10.10"}]}
                ],
                "totalPallets": "2",
                "orderNo": "100"
            }
        });
        normalize(&mut body, &SHIPMENT_PRINT_REQUEST).unwrap();
        let shipment = &body["shipment"];
        assert_eq!(shipment["parcels"][0]["copies"], json!(1));
        assert_eq!(shipment["parcels"][0]["weight"], json!(37.5));
        assert_eq!(shipment["parcels"][0]["volume"], json!(0.12));
        assert_eq!(shipment["parcels"][1]["copies"], json!(2));
        assert_eq!(shipment["parcels"][1]["height"], json!(0.2));
        assert_eq!(shipment["parcels"][1]["articles"][0]["count"], json!(3));
        assert_eq!(shipment["totalPallets"], json!(2));
        assert_eq!(body["pdfConfig"]["target1XOffset"], json!(0.0));
        assert_eq!(body["pdfConfig"]["target3Media"], Value::Null);
        // Decimals keep their exact string; strings in string fields stay strings.
        assert_eq!(shipment["service"]["addons"][0]["amount"], json!("499.50"));
        assert_eq!(
            shipment["parcels"][1]["articles"][0]["customsValue"],
            json!("10.10")
        );
        assert_eq!(shipment["service"]["valueAmount"], json!("100"));
        assert_eq!(shipment["sender"]["zipcode"], json!("41121"));
        assert_eq!(shipment["parcels"][0]["contents"], json!("12"));
        assert_eq!(shipment["orderNo"], json!("100"));
    }

    #[test]
    fn a_string_that_is_not_a_number_is_refused_with_its_path() {
        let mut body = json!({"parcels": [{"copies": 1}, {"copies": "1", "weight": "heavy"}]});
        let error = normalize(&mut body, &SHIPMENT).unwrap_err();
        assert_eq!(error.path, "parcels[1].weight");
        assert_eq!(
            error.to_string(),
            "Illegal argument in body: parcels[1].weight must be a number, got \"heavy\""
        );
        for (copies, refused) in [
            ("1.5", true),
            ("", true),
            ("one", true),
            ("-1", false),
            (" 7 ", false),
        ] {
            let mut body = json!({"shipment": {"parcels": [{"copies": copies}]}});
            let result = normalize(&mut body, &SHIPMENT_PRINT_REQUEST);
            assert_eq!(result.is_err(), refused, "{copies:?}");
            if let Err(error) = result {
                assert_eq!(error.path, "shipment.parcels[0].copies");
                assert!(error.integer);
            }
        }
        for weight in ["NaN", "inf", "1,5"] {
            let mut body = json!({"parcels": [{"copies": 1, "weight": weight}]});
            assert!(normalize(&mut body, &SHIPMENT).is_err(), "{weight}");
        }
        let mut body = json!({"additionalSurcharges": {"amount": "ten"}, "shipment": {}});
        assert_eq!(
            normalize(&mut body, &PRICE_REQUEST).unwrap_err().path,
            "additionalSurcharges.amount"
        );
    }

    #[test]
    fn values_of_other_types_are_left_for_the_model() {
        let original = json!({"parcels": {"copies": "1"}, "service": [], "totalWeight": true});
        let mut body = original.clone();
        normalize(&mut body, &SHIPMENT).unwrap();
        assert_eq!(body, original);
    }

    // ---------------------------------------------------------------- the shapes match the spec

    /// One property of a schema in the spec, as far as numbers are concerned.
    #[derive(Debug, Clone)]
    enum Prop {
        Leaf(&'static str),
        Ref(String),
        ArrayOf(String),
        Other,
    }

    /// A property being read: name, `type`, `format`, `$ref` or `items.$ref`.
    #[derive(Default)]
    struct Reading {
        name: String,
        ty: Option<String>,
        format: Option<String>,
        prop: Option<Prop>,
    }

    type Schemas = BTreeMap<String, Vec<(String, Prop)>>;

    fn finish(schemas: &mut Schemas, schema: Option<&String>, reading: Option<Reading>) {
        let (Some(schema), Some(reading)) = (schema, reading) else {
            return;
        };
        let prop = match (reading.ty.as_deref(), reading.format.as_deref()) {
            (Some("integer"), _) => Prop::Leaf("integer"),
            (Some("number"), Some("decimal")) => Prop::Leaf("decimal"),
            (Some("number"), _) => Prop::Leaf("number"),
            _ => reading.prop.unwrap_or(Prop::Other),
        };
        schemas
            .entry(schema.clone())
            .or_default()
            .push((reading.name, prop));
    }

    fn reference(line: &str) -> Option<String> {
        line.trim()
            .strip_prefix("$ref: '#/components/schemas/")
            .and_then(|l| l.strip_suffix('\''))
            .map(str::to_owned)
    }

    /// The properties of every `components.schemas` entry of the nShift spec, read from its
    /// regular layout: schemas at 4 spaces, their properties at 8, a property's keys at 10 and
    /// its `items` keys at 12.
    fn spec_schemas() -> Schemas {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../specs/nshift/delivery.yaml"
        );
        let text = std::fs::read_to_string(path).expect("the nShift spec");
        let mut schemas = Schemas::new();
        let mut in_schemas = false;
        let mut schema: Option<String> = None;
        let mut in_properties = false;
        let mut reading: Option<Reading> = None;
        for line in text.lines() {
            if line == "  schemas:" {
                in_schemas = true;
                continue;
            }
            if !in_schemas || line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let indent = line.len() - line.trim_start().len();
            let key = line.trim().strip_suffix(':').filter(|k| !k.contains(' '));
            if indent <= 8 {
                finish(&mut schemas, schema.as_ref(), reading.take());
            }
            match (indent, reading.as_mut()) {
                (4, _) => {
                    schema = key.map(str::to_owned);
                    in_properties = false;
                }
                (6, _) => in_properties = key == Some("properties"),
                (8, _) if in_properties => {
                    reading = key.map(|k| Reading {
                        name: k.to_owned(),
                        ..Reading::default()
                    });
                }
                (10, Some(reading)) => {
                    let line = line.trim();
                    if let Some(ty) = line.strip_prefix("type: ") {
                        reading.ty = Some(ty.to_owned());
                    } else if let Some(format) = line.strip_prefix("format: ") {
                        reading.format = Some(format.to_owned());
                    } else if let Some(target) = reference(line) {
                        reading.prop = Some(Prop::Ref(target));
                    }
                }
                (12, Some(reading)) if reading.ty.as_deref() == Some("array") => {
                    if let Some(target) = reference(line) {
                        reading.prop = Some(Prop::ArrayOf(target));
                    }
                }
                _ => {}
            }
        }
        finish(&mut schemas, schema.as_ref(), reading.take());
        schemas
    }

    fn spec_leaves(schemas: &Schemas, name: &str, prefix: &str, out: &mut BTreeSet<String>) {
        for (field, prop) in schemas.get(name).into_iter().flatten() {
            let path = format!("{prefix}.{field}");
            match prop {
                Prop::Leaf(kind) => {
                    out.insert(format!("{path}: {kind}"));
                }
                Prop::Ref(target) => spec_leaves(schemas, target, &path, out),
                Prop::ArrayOf(target) => spec_leaves(schemas, target, &format!("{path}[]"), out),
                Prop::Other => {}
            }
        }
    }

    fn shape_leaves(shape: &Shape, prefix: &str, out: &mut BTreeSet<String>) {
        match shape {
            Integer => {
                out.insert(format!("{prefix}: integer"));
            }
            Num => {
                out.insert(format!("{prefix}: number"));
            }
            Decimal => {
                out.insert(format!("{prefix}: decimal"));
            }
            Object(fields) => {
                for (name, field) in fields.iter() {
                    shape_leaves(field, &format!("{prefix}.{name}"), out);
                }
            }
            Array(item) => shape_leaves(item, &format!("{prefix}[]"), out),
        }
    }

    /// Every `integer`/`number` place of the request bodies is in the shapes, and nothing else.
    #[test]
    fn shapes_list_every_number_of_the_request_bodies_in_the_spec() {
        let schemas = spec_schemas();
        assert!(
            schemas.contains_key("Parcel"),
            "the spec was read: {:?}",
            schemas.keys()
        );
        for (schema, shape) in [
            ("ShipmentPrintRequest", &SHIPMENT_PRINT_REQUEST),
            ("Shipment", &SHIPMENT),
            ("PrintConfig", &PRINT_CONFIG),
            ("PriceRequest", &PRICE_REQUEST),
        ] {
            let mut expected = BTreeSet::new();
            spec_leaves(&schemas, schema, schema, &mut expected);
            let mut listed = BTreeSet::new();
            shape_leaves(shape, schema, &mut listed);
            assert!(expected.len() > 5, "{schema}: {expected:?}");
            assert_eq!(listed, expected, "{schema}");
        }
        // PdfConfig's offsets are PrintConfig's, and the address check has no numbers.
        let mut pdf = BTreeSet::new();
        spec_leaves(&schemas, "PdfConfig", "PrintConfig", &mut pdf);
        let mut print = BTreeSet::new();
        spec_leaves(&schemas, "PrintConfig", "PrintConfig", &mut print);
        assert_eq!(pdf, print);
        let mut address = BTreeSet::new();
        spec_leaves(
            &schemas,
            "AddressCheckRequest",
            "AddressCheckRequest",
            &mut address,
        );
        assert!(address.is_empty(), "{address:?}");
    }
}
