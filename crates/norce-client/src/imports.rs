//! The `X-StormConnect-Header` of Connect's asynchronous imports, computed from the rows
//! (README, "X-StormConnect-Header").

use norce_models::connect::{
    SkuOnhand, SkuOnhandField, SkuOnhandHeader, SkuPriceList, SkuPriceListField,
    SkuPriceListHeader, SkuPriceListMandatoryField,
};
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;

/// Options of an import's `X-StormConnect-Header`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// The integration's system account id in Norce Admin (`AccountId`).
    pub account_id: i32,
    /// `FullFile`: records of the same scope missing from the payload are deactivated or
    /// removed. Default false; true only for a complete snapshot.
    pub full_file: bool,
    /// `SupplierId`, for supplier-scoped imports.
    pub supplier_id: Option<i32>,
    /// Send `…FieldsThatAreSet` as integer codes (Norce's examples) instead of names (documented
    /// as accepted for JSON).
    pub field_codes: bool,
    /// Price imports only: `IgnoreSkuPriceListFieldsWhenEmpty` (a row missing one of these
    /// fields is skipped). Each must be one of the seven allowed fields and set by the rows.
    pub ignore_price_fields_when_empty: Vec<SkuPriceListMandatoryField>,
}

impl ImportOptions {
    /// `AccountId = account_id`, `FullFile = false`, names, nothing ignored.
    pub fn new(account_id: i32) -> Self {
        Self {
            account_id,
            full_file: false,
            supplier_id: None,
            field_codes: false,
            ignore_price_fields_when_empty: Vec::new(),
        }
    }

    setters! {
        /// Sets `FullFile`.
        full_file(bool) => full_file = full_file;
        /// Sets `SupplierId`.
        supplier_id(i32) => supplier_id = Some(supplier_id);
        /// Sends field codes instead of names.
        field_codes(bool) => field_codes = field_codes;
        /// Sets `IgnoreSkuPriceListFieldsWhenEmpty` (checked when the header is built).
        ignore_price_fields_when_empty(Vec<SkuPriceListMandatoryField>) =>
            ignore_price_fields_when_empty = ignore_price_fields_when_empty;
    }
}

/// Row fields that identify the record or qualify another field: never "set".
const KEYS: &[&str] = &[
    "PartNo",
    "WarehouseCode",
    "LocationCode",
    "PriceListCode",
    "QuantityBreak",
    "CurrencyCode",
];

/// Norce's field codes (S-HDR-ONHAND, S-HDR-SKUPRICE), from 3 in this order; 7 of on-hand
/// (`OnOrderValue`) is no longer imported.
const ONHAND_CODES: &[&str] = &[
    "OnhandValue",
    "IncomingValue",
    "NextDeliveryDate",
    "LeadTimeDayCount",
    "OnOrderValue",
    "MinimumValue",
    "MaximumValue",
    "IsActive",
    "Infos",
];
const PRICE_CODES: &[&str] = SkuPriceListField::KNOWN;

/// The fields (of `known`, in its order) that at least one row sets (non-null).
/// `PriceRuleValue` counts as `PriceRule`; the unsupported `OnOrderValue` is refused.
fn fields_that_are_set<T: From<&'static str>>(
    op: &'static str,
    rows: &[impl Serialize],
    known: &'static [&'static str],
    what: &str,
) -> Result<Vec<T>, Error> {
    let fail = |reason: String| Error::invalid(op, reason);
    let mut set = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let row = serde_json::to_value(row).map_err(|e| fail(format!("row {i}: {e}")))?;
        let Value::Object(row) = row else {
            return Err(fail(format!("row {i} is not a JSON object")));
        };
        for (key, _) in row.into_iter().filter(|(_, value)| !value.is_null()) {
            let key = if key == "PriceRuleValue" {
                "PriceRule".into()
            } else {
                key
            };
            if key == "OnOrderValue" {
                return Err(fail(
                    "`OnOrderValue` is no longer imported by Norce; leave it unset".into(),
                ));
            }
            if !known.contains(&key.as_str()) && !KEYS.contains(&key.as_str()) {
                return Err(fail(format!("field `{key}` has no {what}")));
            }
            set.push(key);
        }
    }
    let fields: Vec<T> = (known.iter().copied())
        .filter(|name| set.iter().any(|k| k == name))
        .map(T::from)
        .collect();
    match fields.is_empty() {
        true => Err(fail(format!(
            "no row sets any {what} ({}, …)",
            known[..2].join(", ")
        ))),
        false => Ok(fields),
    }
}

/// The `SkuOnhandFieldsThatAreSet` of these rows, in the spec's order.
pub fn onhand_fields_that_are_set(rows: &[SkuOnhand]) -> Result<Vec<SkuOnhandField>, Error> {
    fields_that_are_set(
        "ImportOnhands",
        rows,
        SkuOnhandField::KNOWN,
        "SkuOnhandField",
    )
}

/// The `SkuPriceListFieldsThatAreSet` of these rows, in the spec's order.
pub fn price_list_fields_that_are_set(
    rows: &[SkuPriceList],
) -> Result<Vec<SkuPriceListField>, Error> {
    let known = SkuPriceListField::KNOWN;
    fields_that_are_set("ImportSkuPriceLists", rows, known, "SkuPriceListField")
}

/// The `SkuOnhandHeader` for these rows.
pub fn onhand_header(
    rows: &[SkuOnhand],
    options: &ImportOptions,
) -> Result<SkuOnhandHeader, Error> {
    if rows.is_empty() {
        return Err(Error::invalid("ImportOnhands", "no rows to import"));
    }
    Ok(SkuOnhandHeader {
        account_id: options.account_id,
        full_file: options.full_file,
        job_id: None,
        serialization_type: Some(0),
        storage_name: None,
        supplier_id: options.supplier_id,
        sku_onhand_fields_that_are_set: onhand_fields_that_are_set(rows)?,
    })
}

/// The `SkuPriceListHeader` for these rows. `IgnoreSkuPriceListFieldsWhenEmpty` may only name
/// the seven [`SkuPriceListMandatoryField`] values, each also set by the rows (Norce's rules).
pub fn price_list_header(
    rows: &[SkuPriceList],
    options: &ImportOptions,
) -> Result<SkuPriceListHeader, Error> {
    const OP: &str = "ImportSkuPriceLists";
    if rows.is_empty() {
        return Err(Error::invalid(OP, "no rows to import"));
    }
    let fields = price_list_fields_that_are_set(rows)?;
    let ignore = &options.ignore_price_fields_when_empty;
    let allowed = SkuPriceListMandatoryField::KNOWN.join(", ");
    let prefix = "IgnoreSkuPriceListFieldsWhenEmpty";
    for field in ignore {
        if field.is_unknown() {
            let reason =
                format!("{prefix}: `{field}` is not allowed; only {allowed} may be listed");
            return Err(Error::invalid(OP, reason));
        }
        if !fields.iter().any(|s| s.as_str() == field.as_str()) {
            let listed: Vec<_> = fields.iter().map(SkuPriceListField::as_str).collect();
            let reason = format!(
                "{prefix}: `{field}` must also be in SkuPriceListFieldsThatAreSet, which the rows make [{}] (allowed here: {allowed})",
                listed.join(", ")
            );
            return Err(Error::invalid(OP, reason));
        }
    }
    Ok(SkuPriceListHeader {
        account_id: options.account_id,
        full_file: options.full_file,
        job_id: None,
        serialization_type: Some(0),
        storage_name: None,
        supplier_id: options.supplier_id,
        sku_price_list_fields_that_are_set: fields,
        ignore_sku_price_list_fields_when_empty: (!ignore.is_empty()).then(|| ignore.clone()),
    })
}

/// The single-line JSON of a header; with `codes`, the names in its `…Fields…` arrays are
/// replaced by Norce's integer codes.
pub(crate) fn header_json(
    op: &'static str,
    header: &impl Serialize,
    codes: bool,
) -> Result<String, Error> {
    let fail = |e: serde_json::Error| Error::invalid(op, format!("header: {e}"));
    let mut value = serde_json::to_value(header).map_err(fail)?;
    let arrays = value.as_object_mut().into_iter().flatten();
    for (key, items) in arrays.filter(|(key, _)| codes && key.contains("Fields")) {
        let table = match key.starts_with("SkuOnhand") {
            true => ONHAND_CODES,
            false => PRICE_CODES,
        };
        for item in items.as_array_mut().into_iter().flatten() {
            let position = table.iter().position(|name| Some(*name) == item.as_str());
            if let Some(position) = position {
                *item = Value::from(position + 3);
            }
        }
    }
    // serde_json never writes a raw newline: strings escape it.
    serde_json::to_string(&value).map_err(fail)
}
