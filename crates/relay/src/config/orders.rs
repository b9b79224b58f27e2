//! `[orders]`: Norce orders into Brightpearl and fulfilment back (flows `orders`, `fulfilment`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
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
    /// Go-live cutoff: Norce orders placed (created) before it are never imported into
    /// Brightpearl nor confirmed back, whatever the cursor says, however they arrive (the poll
    /// starts at it; a push or a replay of an older order is recorded as skipped), and
    /// `relay cursor set orders` refuses a time before it without `--force`. An RFC 3339 time
    /// (`2026-12-01T00:00:00+01:00`) or a date (`2026-12-01`: the start of that day in UTC).
    /// Default: none (every order is taken).
    pub since: Option<Cutoff>,
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
    /// Brightpearl order status id that marks an order cancelled: an order cancelled in Norce
    /// gets it (`UpdateOrderStatus`). Default: none (the Brightpearl order is left as it is).
    pub cancelled_status_id: Option<i64>,
    /// Whether a refund (`relay refund`, the console's Refund) also puts the refunded
    /// stock-tracked products back into `orders.warehouse_id` (a goods-in note on the sales
    /// credit) when the refund does not say. Default `false` (a refund of money only: goods
    /// that come back are received in Brightpearl by hand, or refunded with `--restock`).
    pub refund_restock: bool,
    /// Brightpearl warehouse location that restocked goods go to (`destinationLocationId`), for
    /// example a returns or quarantine location. Default: none (each product goes to its own
    /// default location in `orders.warehouse_id`, from its Brightpearl record).
    pub refund_location_id: Option<i64>,
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

/// A go-live cutoff (`orders.since`, `shipping.since`): an instant, written in the file as an
/// RFC 3339 time or as a date (the start of that day in UTC). Checked when the file loads.
///
/// ```
/// use relay::config::orders::Cutoff;
/// let day: Cutoff = "2026-12-01".parse().unwrap();
/// assert_eq!(day.to_string(), "2026-12-01T00:00:00Z");
/// let time: Cutoff = "2026-12-01T08:30:00+01:00".parse().unwrap();
/// assert_eq!(time.to_string(), "2026-12-01T07:30:00Z");
/// assert!("1 December".parse::<Cutoff>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cutoff(DateTime<Utc>);

impl Cutoff {
    /// The cutoff at `instant`.
    pub fn new(instant: DateTime<Utc>) -> Self {
        Self(instant)
    }

    /// The instant: what was placed before it is not taken.
    pub fn instant(&self) -> DateTime<Utc> {
        self.0
    }

    /// Whether something placed at `placed` is before the cutoff (not taken).
    pub fn excludes(&self, placed: DateTime<Utc>) -> bool {
        placed < self.0
    }

    /// Why an order placed at `placed` is not taken, naming `setting` (`orders.since`); `None`
    /// when it was placed at or after the cutoff.
    pub fn reason(&self, setting: &str, placed: DateTime<Utc>) -> Option<String> {
        self.excludes(placed).then(|| {
            format!(
                "placed {}, before the go-live cutoff `{setting}` ({self})",
                placed.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
        })
    }
}

impl std::str::FromStr for Cutoff {
    type Err = String;

    /// An RFC 3339 time, or a date `YYYY-MM-DD` (the start of that day in UTC). The error says
    /// what to give; the caller names the key.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(time) = DateTime::parse_from_rfc3339(text) {
            return Ok(Self(time.with_timezone(&Utc)));
        }
        // Exactly `YYYY-MM-DD` (chrono alone would also take `2026-12-1`).
        let shaped = text.len() == 10
            && text.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) if shaped => Ok(Self(date.and_time(chrono::NaiveTime::MIN).and_utc())),
            _ => Err(format!(
                "`{text}` is not a time: give an RFC 3339 time with its offset (\"2026-12-01T00:00:00+01:00\") or a date (\"2026-12-01\", the start of that day in UTC)"
            )),
        }
    }
}

impl std::fmt::Display for Cutoff {
    /// RFC 3339 in UTC, to the second (`2026-12-01T00:00:00Z`), as cursors are written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl Serialize for Cutoff {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cutoff {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Cutoff {
    fn schema_name() -> Cow<'static, str> {
        "Cutoff".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An RFC 3339 time (2026-12-01T00:00:00+01:00) or a date (2026-12-01, the start of that day in UTC).",
            "pattern": "^\\d{4}-\\d{2}-\\d{2}([Tt ].+)?$",
            "examples": ["2026-12-01", "2026-12-01T00:00:00+01:00"],
        })
    }
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
            since: None,
            push_order_number: PushOrderNumber::default(),
            unmatched_sku: UnmatchedSku::default(),
            installed_integration_instance_id: None,
            status_id: 2,
            cancelled_status_id: None,
            refund_restock: false,
            refund_location_id: None,
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
        if let Some(id) = self.cancelled_status_id
            && (id <= 0 || id == self.status_id)
        {
            return invalid(
                "cancelled_status_id",
                format!(
                    "{id} cannot mark a cancelled order: use a positive Brightpearl order status id other than `orders.status_id` (see Settings > Order statuses)"
                ),
            );
        }
        if let Some(id) = self.refund_location_id
            && id <= 0
        {
            return invalid(
                "refund_location_id",
                format!("{id} is not a Brightpearl location id: use a positive id"),
            );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayConfig;

    #[test]
    fn the_go_live_cutoff_loads_as_a_time_or_a_day_in_both_sections() {
        let config = RelayConfig::parse(
            "[orders]\nsince = \"2026-12-01\"\n[shipping]\nsince = \"2026-12-01T08:00:00+01:00\"\n",
            "relay.toml",
        )
        .unwrap();
        let day = config.orders.since.unwrap();
        assert_eq!(
            day.to_string(),
            "2026-12-01T00:00:00Z",
            "a day starts at midnight UTC"
        );
        let time = config.shipping.since.unwrap();
        assert_eq!(time.to_string(), "2026-12-01T07:00:00Z");
        assert!(day.excludes("2026-11-30T23:59:59Z".parse().unwrap()));
        assert!(
            !day.excludes(day.instant()),
            "placed at the cutoff is taken"
        );
        let reason = day
            .reason("orders.since", "2026-11-30T12:00:00Z".parse().unwrap())
            .unwrap();
        assert!(
            reason.contains("`orders.since`") && reason.contains("2026-11-30T12:00:00Z"),
            "{reason}"
        );
        assert_eq!(
            day.reason("orders.since", "2026-12-02T00:00:00Z".parse().unwrap()),
            None
        );
        // Unset by default: every order is taken.
        let config = RelayConfig::parse("", "relay.toml").unwrap();
        assert_eq!((config.orders.since, config.shipping.since), (None, None));
        // Written back as it loads (the example-file test serialises the defaults).
        let json = serde_json::to_value(OrdersConfig {
            since: Some(day),
            ..OrdersConfig::default()
        })
        .unwrap();
        assert_eq!(json["since"], "2026-12-01T00:00:00Z");
    }

    #[test]
    fn a_cutoff_that_is_no_time_is_refused_at_load_naming_the_key_and_what_to_give() {
        for section in ["orders", "shipping"] {
            for bad in [
                "\"yesterday\"",
                "\"2026-12-1\"",
                "\"2026-13-01\"",
                "\"2026-12-01T00:00:00\"",
                "20261201",
            ] {
                let text = format!("[{section}]\nsince = {bad}\n");
                let err = RelayConfig::parse(&text, "relay.toml")
                    .expect_err(&text)
                    .to_string();
                assert!(err.contains(&format!("`{section}.since`")), "{text}: {err}");
                if bad.starts_with('"') {
                    assert!(
                        err.contains("RFC 3339") && err.contains("2026-12-01"),
                        "{text}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_cancelled_status_and_cancellable_statuses_are_checked_at_load() {
        let config =
            RelayConfig::parse("[orders]\ncancelled_status_id = 6\n", "relay.toml").unwrap();
        assert_eq!(config.orders.cancelled_status_id, Some(6));
        assert!(config.shipping.cancel_shipments);
        assert_eq!(config.shipping.cancellable_statuses, ["PRINTED"]);
        for bad in ["cancelled_status_id = 0", "cancelled_status_id = 2"] {
            let err = RelayConfig::parse(&format!("[orders]\n{bad}\n"), "relay.toml")
                .expect_err(bad)
                .to_string();
            assert!(err.contains("orders.cancelled_status_id"), "{bad}: {err}");
        }
        let err = RelayConfig::parse(
            "[shipping]\ncancellable_statuses = [\"printed\"]\n",
            "relay.toml",
        )
        .expect_err("lower case")
        .to_string();
        assert!(err.contains("shipping.cancellable_statuses"), "{err}");
    }

    #[test]
    fn the_schema_describes_the_cutoff_as_a_string() {
        let schema = RelayConfig::json_schema();
        let text = schema.to_string();
        for section in ["OrdersConfig", "ShippingConfig"] {
            let since = &schema["definitions"][section]["properties"]["since"];
            assert!(since.is_object(), "{section}: {text}");
            let described = since.to_string();
            assert!(
                described.contains("string") && described.to_lowercase().contains("go-live"),
                "{section}: {described}"
            );
        }
    }
}
