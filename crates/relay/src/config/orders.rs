//! `[orders]`: Norce orders into Brightpearl and fulfilment back (flows `orders`, `fulfilment`).

use std::collections::BTreeMap;

use norce_client::models::connect::ConnectOrderStatus;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// The `[orders]` section of the configuration file. Every key is optional; the defaults work
/// against the embedded sandbox and name a real Brightpearl account's usual setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersConfig {
    /// Poll for new work (Norce Query for orders, Brightpearl goods-out-note search for
    /// shipments) in every pass; with `false` only the receivers' inbox feeds the flows.
    /// Default `true`.
    pub poll: bool,
    /// Norce order status ids picked up by polling. Default `[0]` (Created).
    pub import_status_ids: Vec<i32>,
    /// Which `OrderRequest` field of a Norce push holds the order number. Default
    /// `customer_order_ref` (falling back to `ClientOrderRef` when empty).
    pub push_order_number: PushOrderNumber,
    /// What to do with a line whose part number is no Brightpearl SKU. Default `dead_letter`.
    pub unmatched_sku: UnmatchedSku,
    /// `installedIntegrationInstanceId` stamped on every order (with `externalRef` Brightpearl's
    /// unique key). Default: the OAuth installation's id; none for a private app.
    pub installed_integration_instance_id: Option<i64>,
    /// Brightpearl order status id of new orders. Default `2` (the sandbox's "New web order").
    pub status_id: i64,
    /// Brightpearl sales channel id of the web shop. Default: none (Brightpearl's default).
    pub channel_id: Option<i64>,
    /// Brightpearl warehouse to allocate from. Default `2` (the sandbox's first warehouse).
    pub warehouse_id: i64,
    /// Brightpearl price list id of new orders. Default `2` (the sandbox's "Retail").
    pub price_list_id: i64,
    /// Brightpearl tax code of every row. Default `T25` (Swedish 25 %, as in the sandbox).
    pub tax_code: String,
    /// Sales nominal code of every row. Default: none (Brightpearl's default).
    pub nominal_code: Option<String>,
    /// Norce status sent once the Brightpearl order exists. Default `Acknowledged` (Norce sets
    /// Confirmed and stores the ERP order number).
    pub confirmed_status: String,
    /// Norce status once every stock line has shipped. Default `Delivered`.
    pub delivered_status: String,
    /// Norce status while only some have. Default `PartlyDelivered`.
    pub partly_delivered_status: String,
    /// Delivery note number = this prefix + the goods-out note id. Default `GON-`.
    pub delivery_note_prefix: String,
    /// Norce order events (webhooks received by `relay serve`) that start a pass at once: the
    /// pass reads the new order through the Query poll, the way Norce recommends
    /// (`OrderReceivedEvent`, then a Query fetch). Ignored with `poll = false`. Default
    /// `OrderReceivedEvent`.
    pub norce_events: Vec<String>,
    /// Norce country id (Query `countryId`) → ISO 3166 alpha-2 code. Default: the sandbox's
    /// `1 SE, 2 NO, 3 DK, 4 FI`.
    pub country_codes: BTreeMap<String, String>,
    /// Norce currency id (Query `currencyId`) → ISO 4217 code. Default: the sandbox's
    /// `1 SEK, 2 NOK, 3 DKK, 4 EUR`.
    pub currency_codes: BTreeMap<String, String>,
    /// The country code form of the sales order's delivery address (`alpha2` or `alpha3`). Its
    /// form is undocumented (the order GET shows both `countryIsoCode` SE and
    /// `countryIsoCode3` SWE; open question in `specs/brightpearl/order.yaml`). The contact's
    /// postal address always gets the documented 3-letter code. Default `alpha2`.
    pub sales_order_country_code: CountryCodeForm,
    /// How long an entry of the shared SKU → Brightpearl product id map (filled by the stock
    /// flow's catalog reads and by the orders flow's searches) is trusted; an older one is
    /// searched again. 60 to 2592000. Default `86400` (a day; a full stock reconciliation
    /// refreshes every entry sooner).
    pub sku_map_max_age_secs: u64,
    /// How long an e-mail → Brightpearl contact id entry (contacts found or created) is used
    /// without a contact-search; `0` turns the cache off. At most 31536000. Default `2592000`
    /// (30 days).
    pub contact_cache_max_age_secs: u64,
    /// Margin of the bulk duplicate check (one order-search per page of orders, by our recent
    /// orders' `createdOn`): an order posted before is looked for among the orders Brightpearl
    /// created from this long before the newest order it had when the POST was sent. 60 to
    /// 86400. Default `600`.
    pub duplicate_check_overlap_secs: u64,
    /// Most search pages (500 orders each) the bulk duplicate check reads per page of orders;
    /// an order posted before outside what they cover is checked on its own. 1 to 100.
    /// Default `4`.
    pub duplicate_check_max_pages: u32,
    /// Send the writes of a page of orders (new customers' postal addresses and contacts, then
    /// the sales orders) in multi-message batches of up to 10, each ONE request against
    /// Brightpearl's 200 a minute; `false` sends one request per write. Each order still records
    /// that it is being posted before its batch is sent, so a lost answer is found before any
    /// re-POST. When the multi-message endpoint itself is unavailable (404, 501, or a 5xx that
    /// is not the throttle) the rest of the pass falls back to single calls. Default `true`.
    pub multi_message: bool,
}

/// `orders.sales_order_country_code`: which ISO 3166-1 code Brightpearl gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CountryCodeForm {
    /// Two letters (`SE`).
    #[default]
    Alpha2,
    /// Three letters (`SWE`).
    Alpha3,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Self {
            poll: true,
            import_status_ids: vec![0],
            push_order_number: PushOrderNumber::default(),
            unmatched_sku: UnmatchedSku::default(),
            installed_integration_instance_id: None,
            status_id: 2,
            channel_id: None,
            warehouse_id: 2,
            price_list_id: 2,
            tax_code: "T25".into(),
            nominal_code: None,
            confirmed_status: "Acknowledged".into(),
            delivered_status: "Delivered".into(),
            partly_delivered_status: "PartlyDelivered".into(),
            delivery_note_prefix: "GON-".into(),
            norce_events: vec!["OrderReceivedEvent".into()],
            country_codes: map(&[("1", "SE"), ("2", "NO"), ("3", "DK"), ("4", "FI")]),
            currency_codes: map(&[("1", "SEK"), ("2", "NOK"), ("3", "DKK"), ("4", "EUR")]),
            sales_order_country_code: CountryCodeForm::default(),
            sku_map_max_age_secs: 86_400,
            contact_cache_max_age_secs: 2_592_000,
            duplicate_check_overlap_secs: 600,
            duplicate_check_max_pages: 4,
            multi_message: true,
        }
    }
}

/// `orders.unmatched_sku`: a Norce line whose part number Brightpearl does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnmatchedSku {
    /// Fail the order permanently into the dead letters, naming the SKU (fix the product, then
    /// `relay replay`).
    #[default]
    DeadLetter,
    /// Add the line as a free-text row (no stock, no fulfilment) named after the line and SKU.
    FreeText,
}

/// `orders.push_order_number`: where a pushed `OrderRequest` carries the Norce order number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PushOrderNumber {
    /// `CustomerOrderRef`, or `ClientOrderRef` when that is empty.
    #[default]
    CustomerOrderRef,
    /// `ClientOrderRef` (tenants whose basket id is the order number).
    ClientOrderRef,
}

impl OrdersConfig {
    /// Checks the values a pass depends on; the error names the key and the allowed values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting: &str, reason: String| {
            Err(ConfigError::Invalid {
                setting: format!("orders.{setting}"),
                reason,
            })
        };
        for (key, value) in [
            ("confirmed_status", &self.confirmed_status),
            ("delivered_status", &self.delivered_status),
            ("partly_delivered_status", &self.partly_delivered_status),
        ] {
            if !ConnectOrderStatus::KNOWN.contains(&value.as_str()) {
                return invalid(
                    key,
                    format!(
                        "`{value}` is not a Norce order status; use one of {}",
                        ConnectOrderStatus::KNOWN.join(", ")
                    ),
                );
            }
        }
        if self.tax_code.trim().is_empty() {
            return invalid(
                "tax_code",
                "must not be empty: Brightpearl needs a tax code on every row (e.g. \"T25\")"
                    .into(),
            );
        }
        if self.poll && self.import_status_ids.is_empty() {
            return invalid("import_status_ids", "must list at least one Norce status id (0 = Created), or set `orders.poll = false`".into());
        }
        for (key, value, range) in [
            (
                "sku_map_max_age_secs",
                self.sku_map_max_age_secs,
                60..=2_592_000,
            ),
            (
                "contact_cache_max_age_secs",
                self.contact_cache_max_age_secs,
                0..=31_536_000,
            ),
            (
                "duplicate_check_overlap_secs",
                self.duplicate_check_overlap_secs,
                60..=86_400,
            ),
            (
                "duplicate_check_max_pages",
                u64::from(self.duplicate_check_max_pages),
                1..=100,
            ),
        ] {
            if !range.contains(&value) {
                return invalid(
                    key,
                    format!(
                        "{value} is out of range; use {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
            }
        }
        if self.delivery_note_prefix.chars().count() > 30 {
            return invalid(
                "delivery_note_prefix",
                "must be at most 30 characters (Norce note numbers are short)".into(),
            );
        }
        Ok(())
    }
}
