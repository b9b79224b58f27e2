//! The `X-StormConnect-Header` of Connect's asynchronous imports, computed from the rows.
//!
//! `…FieldsThatAreSet` tells Norce which fields of the payload to write; any other field is
//! left untouched. It is derived from the rows themselves: every row is serialized and each
//! field that is present (non-null) in at least one row is listed, in the spec's order.
//! Key fields (`PartNo`, `WarehouseCode`, …) are never listed.
//!
//! `IgnoreSkuPriceListFieldsWhenEmpty` may only name PriceSale, CostPurchase, CostUnit,
//! PriceRecommended, PricePrevious, PriceCatalog or IsActive, and each of them must also be in
//! `SkuPriceListFieldsThatAreSet` (Norce's SkuPriceListHeader rules); a header that breaks either
//! rule is refused before anything is sent.

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
    /// `FullFile`: when true, records of the same scope missing from the payload are
    /// deactivated or removed. Default false; use true only for a complete snapshot.
    pub full_file: bool,
    /// `SupplierId`, for supplier-scoped imports.
    pub supplier_id: Option<i32>,
    /// Send `…FieldsThatAreSet` as integer codes (3, 4, …) instead of names. Norce's examples
    /// use codes; names are documented as accepted for JSON.
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

    /// Sets `FullFile`.
    pub fn full_file(mut self, full_file: bool) -> Self {
        self.full_file = full_file;
        self
    }

    /// Sets `SupplierId`.
    pub fn supplier_id(mut self, supplier_id: i32) -> Self {
        self.supplier_id = Some(supplier_id);
        self
    }

    /// Sends field codes instead of names.
    pub fn field_codes(mut self, codes: bool) -> Self {
        self.field_codes = codes;
        self
    }

    /// Sets `IgnoreSkuPriceListFieldsWhenEmpty`: only PriceSale, CostPurchase, CostUnit,
    /// PriceRecommended, PricePrevious, PriceCatalog and IsActive, each also set by the rows
    /// (checked when the header is built).
    pub fn ignore_price_fields_when_empty(
        mut self,
        fields: Vec<SkuPriceListMandatoryField>,
    ) -> Self {
        self.ignore_price_fields_when_empty = fields;
        self
    }
}

/// Row fields that identify the record; never part of `FieldsThatAreSet`.
const ONHAND_KEYS: &[&str] = &["PartNo", "WarehouseCode", "LocationCode"];
/// Documented as no longer imported.
const ONHAND_UNSUPPORTED: &[&str] = &["OnOrderValue"];
/// Row fields of a price that identify it or qualify another field.
const PRICE_KEYS: &[&str] = &["PartNo", "PriceListCode", "QuantityBreak", "CurrencyCode"];

/// Field codes from Norce's header docs (S-HDR-ONHAND).
const ONHAND_CODES: &[(&str, i32)] = &[
    ("OnhandValue", 3),
    ("IncomingValue", 4),
    ("NextDeliveryDate", 5),
    ("LeadTimeDayCount", 6),
    ("MinimumValue", 8),
    ("MaximumValue", 9),
    ("IsActive", 10),
    ("Infos", 11),
];

/// Field codes from Norce's header docs (S-HDR-SKUPRICE).
const PRICE_CODES: &[(&str, i32)] = &[
    ("PriceSale", 3),
    ("CostPurchase", 4),
    ("CostUnit", 5),
    ("PriceRecommended", 6),
    ("PricePrevious", 7),
    ("PriceCatalog", 8),
    ("IsPriceDiscountable", 9),
    ("IsActive", 10),
    ("IsPriceDiscountableCreateOnly", 11),
    ("PriceRule", 12),
    ("FullfileResetInheritance", 13),
];

/// The names of the non-null fields of every row, in first-seen order.
fn set_fields<T: Serialize>(rows: &[T]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let value =
            serde_json::to_value(row).map_err(|e| format!("row {i} cannot be serialized: {e}"))?;
        let Value::Object(map) = value else {
            return Err(format!("row {i} is not a JSON object"));
        };
        for (key, v) in map {
            if !v.is_null() && !out.contains(&key) {
                out.push(key);
            }
        }
    }
    Ok(out)
}

/// The `SkuOnhandFieldsThatAreSet` of these rows, in the spec's order.
///
/// ```
/// use norce_models::connect::{SkuOnhand, SkuOnhandField};
/// let rows = [SkuOnhand { part_no: "1".into(), warehouse_code: "W".into(), location_code: "L".into(),
///     onhand_value: Some(serde_json::from_str("5").unwrap()), is_active: Some(true), ..Default::default() }];
/// assert_eq!(norce_client::onhand_fields_that_are_set(&rows).unwrap(),
///     vec![SkuOnhandField::OnhandValue, SkuOnhandField::IsActive]);
/// ```
pub fn onhand_fields_that_are_set(rows: &[SkuOnhand]) -> Result<Vec<SkuOnhandField>, Error> {
    onhand_fields(rows).map_err(|e| Error::invalid("ImportOnhands", e))
}

fn onhand_fields(rows: &[SkuOnhand]) -> Result<Vec<SkuOnhandField>, String> {
    let set = set_fields(rows)?;
    if let Some(bad) = set
        .iter()
        .find(|k| ONHAND_UNSUPPORTED.contains(&k.as_str()))
    {
        return Err(format!(
            "`{bad}` is no longer imported by Norce; leave it unset"
        ));
    }
    let mut fields: Vec<SkuOnhandField> = SkuOnhandField::KNOWN
        .iter()
        .filter(|name| set.iter().any(|k| k == *name))
        .map(|name| SkuOnhandField::from(*name))
        .collect();
    // Anything else that is set must be a key, or the header would silently drop it.
    if let Some(unknown) = set.iter().find(|k| {
        !ONHAND_KEYS.contains(&k.as_str()) && !SkuOnhandField::KNOWN.contains(&k.as_str())
    }) {
        return Err(format!("field `{unknown}` has no SkuOnhandField"));
    }
    fields.dedup();
    if fields.is_empty() {
        return Err("no row sets any on-hand field (OnhandValue, IncomingValue, …)".into());
    }
    Ok(fields)
}

/// The `SkuPriceListFieldsThatAreSet` of these rows, in the spec's order. `PriceRuleValue`
/// counts as `PriceRule`.
pub fn price_list_fields_that_are_set(
    rows: &[SkuPriceList],
) -> Result<Vec<SkuPriceListField>, Error> {
    price_fields(rows).map_err(|e| Error::invalid("ImportSkuPriceLists", e))
}

fn price_fields(rows: &[SkuPriceList]) -> Result<Vec<SkuPriceListField>, String> {
    let mut set = set_fields(rows)?;
    if set.iter().any(|k| k == "PriceRuleValue") {
        set.retain(|k| k != "PriceRuleValue");
        set.push("PriceRule".into());
    }
    if let Some(unknown) = set.iter().find(|k| {
        !PRICE_KEYS.contains(&k.as_str()) && !SkuPriceListField::KNOWN.contains(&k.as_str())
    }) {
        return Err(format!("field `{unknown}` has no SkuPriceListField"));
    }
    let fields: Vec<SkuPriceListField> = SkuPriceListField::KNOWN
        .iter()
        .filter(|name| set.iter().any(|k| k == *name))
        .map(|name| SkuPriceListField::from(*name))
        .collect();
    if fields.is_empty() {
        return Err("no row sets any price field (PriceSale, CostPurchase, …)".into());
    }
    Ok(fields)
}

/// Checks `IgnoreSkuPriceListFieldsWhenEmpty` against Norce's two rules: only the seven
/// [`SkuPriceListMandatoryField`] values, each also in `SkuPriceListFieldsThatAreSet`.
fn check_ignore_fields(
    set: &[SkuPriceListField],
    ignore: &[SkuPriceListMandatoryField],
) -> Result<(), String> {
    let allowed = SkuPriceListMandatoryField::KNOWN.join(", ");
    for field in ignore {
        if field.is_unknown() {
            return Err(format!(
                "IgnoreSkuPriceListFieldsWhenEmpty: `{field}` is not allowed; only {allowed} may be listed"
            ));
        }
        if !set.iter().any(|s| s.as_str() == field.as_str()) {
            let listed = set
                .iter()
                .map(SkuPriceListField::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(format!(
                "IgnoreSkuPriceListFieldsWhenEmpty: `{field}` must also be in SkuPriceListFieldsThatAreSet, which the rows make [{listed}] (allowed here: {allowed})"
            ));
        }
    }
    Ok(())
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

/// The `SkuPriceListHeader` for these rows. Refused (`Failure::InvalidRequest`) when
/// `IgnoreSkuPriceListFieldsWhenEmpty` names a field Norce does not allow there or one the rows
/// do not set.
///
/// ```
/// use norce_client::ImportOptions;
/// use norce_models::connect::{SkuPriceList, SkuPriceListMandatoryField};
/// let rows = [SkuPriceList { part_no: "1".into(), price_list_code: "SE".into(),
///     price_sale: Some(serde_json::from_str("199").unwrap()), ..Default::default() }];
/// let ok = ImportOptions::new(1).ignore_price_fields_when_empty(vec![SkuPriceListMandatoryField::PriceSale]);
/// assert!(norce_client::price_list_header(&rows, &ok).is_ok());
/// let unset = ImportOptions::new(1).ignore_price_fields_when_empty(vec![SkuPriceListMandatoryField::PriceCatalog]);
/// assert!(norce_client::price_list_header(&rows, &unset).unwrap_err().to_string().contains("PriceCatalog"));
/// ```
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
    check_ignore_fields(&fields, ignore).map_err(|e| Error::invalid(OP, e))?;
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

/// The single-line JSON of a header; with `codes`, field names in the `…Fields…` arrays
/// are replaced by Norce's integer codes.
pub(crate) fn header_json<T: Serialize>(
    operation: &'static str,
    header: &T,
    codes: bool,
) -> Result<String, Error> {
    let mut value = serde_json::to_value(header)
        .map_err(|e| Error::invalid(operation, format!("header: {e}")))?;
    if codes && let Value::Object(map) = &mut value {
        for (key, v) in map.iter_mut() {
            if !key.contains("Fields") {
                continue;
            }
            let table = if key.starts_with("SkuOnhand") {
                ONHAND_CODES
            } else {
                PRICE_CODES
            };
            if let Value::Array(items) = v {
                for item in items.iter_mut() {
                    if let Some(code) = item
                        .as_str()
                        .and_then(|name| table.iter().find(|(n, _)| *n == name))
                        .map(|(_, c)| *c)
                    {
                        *item = Value::from(code);
                    }
                }
            }
        }
    }
    // serde_json never writes a raw newline: strings escape it.
    serde_json::to_string(&value).map_err(|e| Error::invalid(operation, format!("header: {e}")))
}
