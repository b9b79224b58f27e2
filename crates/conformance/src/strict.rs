//! Strict-decode comparison of a raw JSON response with a model type: groundwork for
//! `relay verify --deep`.
//!
//! The generated models are lenient on purpose (unknown fields ignored, absent optional fields
//! `None`), so a response can decode while the model silently drops part of it. [`compare`]
//! decodes `raw` into the model, serializes the model back and diffs the two, and, when the
//! decode fails, says where and why. Examples of dropped values are masked when their key looks
//! personal or secret (see [`compare`]), so a report can be logged or printed as it is.
//!
//! Paths are dotted object keys with `[i]` for array elements (`lines[1].qty`); in
//! [`StrictReport::unknown`] the indices are collapsed to `[]` (`lines[].email`). A key that is
//! empty or contains `.`, `[`, `]` or `"` is written as `["key"]`. The root is `.`.

use std::collections::HashSet;

use models_runtime::redact::{REDACTED, is_secret_key, redact_url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

/// What [`compare`] found: whether the response decodes, and what the model does not keep.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StrictReport {
    /// `Ok` when `raw` decodes into the model; otherwise where and why it does not.
    pub decoded: Result<(), DecodeProblem>,
    /// Paths present (and not `null`) in the response that the model does not keep, each once,
    /// in order of first appearance, with a masked example. Empty when the decode fails.
    pub unknown: Vec<FieldDiff>,
    /// The path of the required field whose absence failed the decode (`lines[1].qty`).
    pub missing: Option<String>,
    /// The value whose type (or format) failed the decode.
    pub mismatched: Option<Mismatch>,
}

impl StrictReport {
    /// Whether the response decodes and the model keeps all of it.
    pub fn is_clean(&self) -> bool {
        self.decoded.is_ok() && self.unknown.is_empty()
    }
}

/// Why a response does not decode into the model: the first error serde met.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DecodeProblem {
    /// Where the error occurred, with exact indices (`lines[1].qty`); `.` for the root.
    pub path: String,
    /// serde's message; the offending string is masked when its key looks personal or secret.
    pub message: String,
}

impl DecodeProblem {
    /// A problem at `path` (`.` for the root), for a check that finds one of its own (an
    /// answer that is not JSON at all).
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A path in the response that the model does not keep.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FieldDiff {
    /// The path, array indices collapsed to `[]` (`lines[].email`).
    pub path: String,
    /// The first value met at that path, masked.
    pub example: Value,
}

/// A value of the wrong type (or format) for the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Mismatch {
    /// Where the value is, with exact indices (`lines[1].qty`).
    pub path: String,
    /// What the model expected, in serde's words (`i64`, `a string`, `an RFC 3339 timestamp`).
    pub expected: String,
    /// What the response has, as a kind without the value (`string`, `integer`, `map`, `null`).
    pub found: String,
}

/// Decodes `raw` into `T` and reports what does not fit.
///
/// When the decode succeeds, `T` is serialized back to JSON and every object key of `raw` that
/// is not in the result is reported in [`StrictReport::unknown`] (arrays are compared element
/// by element). Keys whose value is `null` are never reported: an optional field that is `null`
/// is dropped on serialization just like an unknown one. A key that the model renames on
/// serialization (an alias) is reported too. If `T` cannot be serialized back, the report says
/// so in [`StrictReport::decoded`] with path `.`.
///
/// When the decode fails, [`StrictReport::decoded`] has the path and message of the error, and
/// [`StrictReport::missing`] or [`StrictReport::mismatched`] classify it (`missing field` vs
/// `invalid type` / `invalid value`).
///
/// Masking: an example is masked when its key (case-insensitive, ignoring `_` and `-`) looks
/// personal or secret: names (`name`, `firstName`, `lastName`, `fullName`, `addressFullName`,
/// `companyName`, `deliveryName`, `rcvName`, …), `email*`, phone numbers (`phone`, `telephone`,
/// `mobile`, `cellPhone*`), address parts (`address`, `address1`, `addressLine*`, `line1`,
/// `street`, `zip*`, `postalCode`, `city`), `ssn`, and secrets
/// ([`models_runtime::redact::is_secret_key`]). Every string inside a personal value becomes
/// `"<masked: N chars>"` (numbers, booleans and `null` stay); every value inside a secret one is
/// shown as the one redaction marker, [`REDACTED`], with no length. Other strings keep their text
/// except for secret parameters ([`models_runtime::redact::redact_url`]), as in
/// [`crate::RequestSnapshot`].
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Deserialize, Serialize)]
/// struct Order {
///     id: i64,
///     #[serde(default, skip_serializing_if = "Option::is_none")]
///     note: Option<String>,
/// }
///
/// let raw = serde_json::json!({"id": 7, "note": null, "email": "jane@example.com"});
/// let report = conformance::compare::<Order>(&raw);
/// assert_eq!(report.decoded, Ok(()));
/// assert_eq!(report.unknown[0].path, "email");
/// assert_eq!(report.unknown[0].example, "<masked: 16 chars>");
///
/// let report = conformance::compare::<Order>(&serde_json::json!({"id": "7"}));
/// let mismatch = report.mismatched.unwrap();
/// assert_eq!((mismatch.path.as_str(), mismatch.found.as_str()), ("id", "string"));
/// ```
pub fn compare<T: DeserializeOwned + Serialize>(raw: &Value) -> StrictReport {
    let model: T = match serde_path_to_error::deserialize(raw) {
        Ok(model) => model,
        Err(error) => return failed(raw, error),
    };
    let kept = match serde_json::to_value(&model) {
        Ok(kept) => kept,
        Err(error) => {
            return StrictReport {
                decoded: Err(DecodeProblem {
                    path: ".".to_owned(),
                    message: format!("decoded, but the model does not serialize back: {error}"),
                }),
                unknown: Vec::new(),
                missing: None,
                mismatched: None,
            };
        }
    };
    let mut unknown = Vec::new();
    let mut seen = HashSet::new();
    diff(raw, &kept, "", &mut unknown, &mut seen);
    StrictReport {
        decoded: Ok(()),
        unknown,
        missing: None,
        mismatched: None,
    }
}

/// Adds to `out` every path of `raw` (under `path`) that `kept` lacks, once each.
fn diff(
    raw: &Value,
    kept: &Value,
    path: &str,
    out: &mut Vec<FieldDiff>,
    seen: &mut HashSet<String>,
) {
    match (raw, kept) {
        (Value::Object(raw), Value::Object(kept)) => {
            for (key, value) in raw {
                let child = key_path(path, key);
                match kept.get(key) {
                    Some(kept) => diff(value, kept, &child, out, seen),
                    None if value.is_null() => {}
                    None => {
                        if seen.insert(child.clone()) {
                            out.push(FieldDiff {
                                path: child,
                                example: mask(key, value),
                            });
                        }
                    }
                }
            }
        }
        (Value::Array(raw), Value::Array(kept)) => {
            let child = format!("{path}[]");
            for (raw, kept) in raw.iter().zip(kept) {
                diff(raw, kept, &child, out, seen);
            }
        }
        _ => {}
    }
}

/// The report for a failed decode.
fn failed(raw: &Value, error: serde_path_to_error::Error<serde_json::Error>) -> StrictReport {
    let segments: Vec<&Segment> = error.path().iter().collect();
    let mut path = String::new();
    let mut at = Some(raw);
    let mut last_key = None;
    for segment in &segments {
        match segment {
            Segment::Seq { index } => {
                path.push_str(&format!("[{index}]"));
                at = at.and_then(|v| v.get(index));
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                path = key_path(&path, key);
                last_key = Some(key.as_str());
                at = at.and_then(|v| if v.is_object() { v.get(key) } else { Some(v) });
            }
            Segment::Unknown => {
                path = key_path(&path, "?");
                at = None;
            }
        }
    }
    let original = error.inner().to_string();
    let mut message = original.clone();
    if let (Some(Value::String(text)), Some(key)) = (at, last_key)
        && sensitive_key(key)
    {
        let masked = if is_secret_key(key) {
            REDACTED.to_owned()
        } else {
            masked(text)
        };
        message = message.replace(&format!("{text:?}"), &format!("{masked:?}"));
        if text.chars().count() >= 4 {
            message = message.replace(text.as_str(), &masked);
        }
    }
    let missing = original
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .map(|field| key_path(&path, field));
    let mismatched = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|prefix| original.strip_prefix(prefix))
        .map(|rest| {
            let found_end = rest.find(['`', '"', ',']).unwrap_or(rest.len());
            let expected = rest
                .rfind(", expected ")
                .map(|at| rest[at + ", expected ".len()..].to_owned())
                .unwrap_or_default();
            Mismatch {
                path: display_path(&path),
                expected,
                found: rest[..found_end].trim().to_owned(),
            }
        });
    StrictReport {
        decoded: Err(DecodeProblem {
            path: display_path(&path),
            message,
        }),
        unknown: Vec::new(),
        missing,
        mismatched,
    }
}

/// `path` extended by the object key `key`.
fn key_path(path: &str, key: &str) -> String {
    if key.is_empty() || key.contains(['.', '[', ']', '"']) {
        format!("{path}[{}]", Value::String(key.to_owned()))
    } else if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `path`, or `.` for the root.
fn display_path(path: &str) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path.to_owned()
    }
}

/// A whole document masked as [`compare`] masks its examples: every string under a key that
/// looks personal becomes `"<masked: N chars>"`, whatever sits under a secret key is redacted,
/// and so are secret parameters in other strings. For saving a response that may be attached to a bug report.
///
/// ```
/// let raw = serde_json::json!({"id": 7, "customer": {"email": "jane@example.com"}, "sku": "A-1"});
/// let masked = conformance::strict::mask_document(&raw);
/// assert_eq!(masked, serde_json::json!({"id": 7, "customer": {"email": "<masked: 16 chars>"}, "sku": "A-1"}));
/// ```
pub fn mask_document(value: &Value) -> Value {
    mask("", value)
}

/// Every string in `value` masked (`"<masked: N chars>"`), for a value known to be personal
/// whatever its key (a search row cell under a personal column).
pub fn mask_everything(value: &Value) -> Value {
    mask_all(value)
}

/// Whether a key (a JSON field, a query parameter, a search column) looks personal or secret:
/// the rule [`compare`] and [`mask_document`] mask by.
pub fn is_sensitive_key(key: &str) -> bool {
    sensitive_key(key)
}

/// Whether a key looks personal or secret (see [`compare`]).
fn sensitive_key(key: &str) -> bool {
    if is_secret_key(key) {
        return true;
    }
    let key: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const NAME_OWNERS: &[&str] = &[
        "first",
        "last",
        "full",
        "middle",
        "given",
        "family",
        "sur",
        "nick",
        "user",
        "display",
        "company",
        "contact",
        "customer",
        "delivery",
        "billing",
        "shipping",
        "invoice",
        "rcv",
        "snd",
        "receiver",
        "sender",
        "recipient",
        "person",
    ];
    const CONTAINS: &[&str] = &[
        "email",
        "phone",
        "mobile",
        "addressline",
        "street",
        "zip",
        "postalcode",
        "postcode",
        "city",
        "socialsecurity",
        "authorization",
        "apikey",
    ];
    let numbered = |prefix: &str| {
        key.strip_prefix(prefix)
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
    };
    key.strip_suffix("name")
        .is_some_and(|owner| owner.is_empty() || NAME_OWNERS.iter().any(|o| owner.ends_with(o)))
        || CONTAINS.iter().any(|part| key.contains(part))
        || key.ends_with("ssn")
        || numbered("address")
        || (key.len() > 4 && numbered("line"))
}

/// `"<masked: N chars>"` for `text`.
fn masked(text: &str) -> String {
    format!("<masked: {} chars>", text.chars().count())
}

/// `value` found under `key`, masked: everything in it when the key is sensitive, otherwise
/// whatever sits under sensitive keys inside it (and `secret=` parameters).
fn mask(key: &str, value: &Value) -> Value {
    if is_secret_key(key) {
        return redact_all(value);
    }
    if sensitive_key(key) {
        return mask_all(value);
    }
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), mask(k, v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| mask(key, v)).collect()),
        Value::String(text) => Value::String(redact_url(text)),
        other => other.clone(),
    }
}

/// `value` with every string, number and boolean in it shown as [`REDACTED`] (what sits under a
/// secret key: not even its length is shown).
fn redact_all(value: &Value) -> Value {
    match value {
        Value::Null => Value::Null,
        Value::Array(items) => Value::Array(items.iter().map(redact_all).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_all(v)))
                .collect(),
        ),
        _ => Value::String(REDACTED.to_owned()),
    }
}

/// `value` with every string in it masked.
fn mask_all(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(masked(text)),
        Value::Array(items) => Value::Array(items.iter().map(mask_all).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), mask_all(v))).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    /// Shaped like a generated model: required `id`, optional fields skipped when `None`.
    #[derive(Debug, Deserialize, Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Order {
        id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lines: Option<Vec<Line>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        customer: Option<Customer>,
    }

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Line {
        sku: String,
        qty: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<f64>,
    }

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Customer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_name: Option<String>,
    }

    const EMAIL: &str = "jane.doe@example.com";

    fn leak_check(report: &StrictReport, secrets: &[&str]) {
        let debug = format!("{report:?}");
        let json = serde_json::to_string(report).unwrap();
        for secret in secrets {
            assert!(!debug.contains(secret), "{secret} leaked in Debug: {debug}");
            assert!(!json.contains(secret), "{secret} leaked in JSON: {json}");
        }
    }

    #[test]
    fn clean_response_reports_nothing() {
        let raw = json!({
            "id": 7,
            "note": "n",
            "lines": [{"sku": "A", "qty": 1, "price": 2.5}, {"sku": "B", "qty": 2}],
            "customer": {"firstName": "Jane"}
        });
        let report = compare::<Order>(&raw);
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.missing, None);
        assert_eq!(report.mismatched, None);
    }

    #[test]
    fn null_for_an_option_field_is_not_unknown() {
        let raw = json!({"id": 7, "note": null, "lines": [{"sku": "A", "qty": 1, "price": null}]});
        let report = compare::<Order>(&raw);
        assert!(report.is_clean(), "{report:?}");
    }

    #[test]
    fn extra_fields_are_reported_with_paths_and_masked_examples() {
        let raw = json!({
            "id": 7,
            "email": EMAIL,
            "channel": "web",
            "lines": [
                {"sku": "A", "qty": 1, "contactEmail": EMAIL, "weight": 3},
                {"sku": "B", "qty": 2, "contactEmail": "other.person@example.com"},
                {"sku": "C", "qty": 3, "extra": {"phone": "+46701234567", "kind": "x"}}
            ],
            "customer": {"firstName": "Jane", "lastName": "Doe", "token": "t0k3n-value"}
        });
        let report = compare::<Order>(&raw);
        assert_eq!(report.decoded, Ok(()));
        // Sorted: serde_json's key order depends on its `preserve_order` feature.
        let found: std::collections::BTreeMap<&str, &Value> = report
            .unknown
            .iter()
            .map(|d| (d.path.as_str(), &d.example))
            .collect();
        let expected = json!({
            "channel": "web",
            "customer.lastName": "<masked: 3 chars>",
            "customer.token": REDACTED,
            "email": "<masked: 20 chars>",
            "lines[].contactEmail": "<masked: 20 chars>",
            "lines[].weight": 3,
            "lines[].extra": {"kind": "x", "phone": "<masked: 12 chars>"},
        });
        let expected: std::collections::BTreeMap<&str, &Value> = expected
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        assert_eq!(found, expected);
        assert_eq!(report.unknown.len(), 7, "{:?}", report.unknown);
        assert!(!report.is_clean());
        leak_check(&report, &[EMAIL, "other.person", "Doe", "t0k3n", "+4670"]);
    }

    #[test]
    fn missing_required_field_is_named() {
        let raw = json!({"id": 7, "lines": [{"sku": "A", "qty": 1}, {"sku": "B"}]});
        let report = compare::<Order>(&raw);
        assert_eq!(report.missing.as_deref(), Some("lines[1].qty"));
        assert_eq!(report.mismatched, None);
        let problem = report.decoded.unwrap_err();
        assert!(
            problem.message.contains("missing field `qty`"),
            "{problem:?}"
        );

        let report = compare::<Order>(&json!({"note": "no id"}));
        assert_eq!(report.missing.as_deref(), Some("id"));
        assert!(report.unknown.is_empty());
    }

    #[test]
    fn string_for_a_number_is_a_mismatch_naming_the_field() {
        let raw = json!({"id": 7, "lines": [{"sku": "A", "qty": "x"}]});
        let report = compare::<Order>(&raw);
        assert_eq!(report.missing, None);
        assert_eq!(
            report.mismatched,
            Some(Mismatch {
                path: "lines[0].qty".to_owned(),
                expected: "i64".to_owned(),
                found: "string".to_owned(),
            })
        );
        let problem = report.decoded.unwrap_err();
        assert_eq!(problem.path, "lines[0].qty");
        assert!(problem.message.contains("invalid type"), "{problem:?}");
    }

    #[test]
    fn personal_value_in_a_failing_field_is_masked_in_the_message() {
        #[derive(Debug, Deserialize, Serialize)]
        struct Contact {
            email: i64,
        }
        let report = compare::<Contact>(&json!({"email": EMAIL}));
        let mismatch = report.mismatched.clone().unwrap();
        assert_eq!(
            (mismatch.path.as_str(), mismatch.found.as_str()),
            ("email", "string")
        );
        assert!(
            format!("{report:?}").contains("<masked: 20 chars>"),
            "{report:?}"
        );
        leak_check(&report, &[EMAIL]);
    }

    #[test]
    fn root_type_mismatch_has_the_root_path() {
        let report = compare::<Order>(&json!("not an object"));
        let mismatch = report.mismatched.unwrap();
        assert_eq!(
            (mismatch.path.as_str(), mismatch.found.as_str()),
            (".", "string")
        );
    }

    #[test]
    fn sensitive_keys() {
        for key in [
            "name",
            "firstName",
            "last_name",
            "FullName",
            "addressFullName",
            "companyName",
            "deliveryName",
            "rcvName",
            "email",
            "ContactEmails",
            "phone",
            "Telephone",
            "mobile",
            "CellPhone",
            "cellPhoneNumber",
            "line1",
            "Line2",
            "address1",
            "addressLine3",
            "street",
            "zip",
            "ZipCode",
            "rcvZipcode",
            "postalCode",
            "city",
            "deliveryCity",
            "SSN",
            "token",
            "client_secret",
            "password",
            "Authorization",
            "apiKey",
            "api-key",
        ] {
            assert!(sensitive_key(key), "{key} should be masked");
        }
        for key in [
            "id",
            "sku",
            "productName",
            "priceListName",
            "qty",
            "lines",
            "status",
        ] {
            assert!(!sensitive_key(key), "{key} should not be masked");
        }
    }

    #[test]
    fn odd_keys_are_quoted_in_paths() {
        #[derive(Debug, Deserialize, Serialize)]
        struct Empty {}
        let report = compare::<Empty>(&json!({"a.b": 1, "": 2}));
        let paths: Vec<&str> = report.unknown.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, [r#"[""]"#, r#"["a.b"]"#]);
    }
}
