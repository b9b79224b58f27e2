//! The `[stock]` section: warehouse and price-list mappings, the reconciliation interval, the
//! import batch size and how Norce import jobs are awaited.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use schemars::JsonSchema;

use super::error::ConfigError;

/// The `[stock]` section of the configuration file (Brightpearl → Norce stock and prices).
///
/// ```toml
/// [stock]
/// full_reconcile_interval_secs = 86400   # a full pass at most this often; 0 = every run
/// quantity = "on_hand"                   # or "in_stock"
/// norce_account_id = 1                   # AccountId of the X-StormConnect-Header
/// import_batch_rows = 2000               # rows per Norce import job
/// full_file = false                      # FullFile on full passes (one job per pass)
/// vat_percent = 25.0                     # removed from gross Brightpearl price lists
/// bundles = true                         # bundle stock from bundle-availability
/// bundle_id_sets = false                 # one bundle id per request (as documented)
///
/// [[stock.warehouses]]
/// brightpearl_warehouse = 2
/// norce_warehouse = "WH1"                # norce_location defaults to the warehouse code
///
/// [[stock.price_lists]]
/// brightpearl_price_list = 2
/// norce_price_list = "SE-B2C"
/// field = "price_sale"
///
/// [stock.job_wait]
/// timeout_secs = 600
/// initial_interval_ms = 1000
/// max_interval_ms = 30000
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StockConfig {
    /// A full reconciliation (every product) runs when the flow's cursor is older than this
    /// (or absent); other runs only process products marked pending by webhooks. 0 makes
    /// every run a full one. Default 86400 (nightly, as Brightpearl's own apps do).
    pub full_reconcile_interval_secs: u64,
    /// Brightpearl warehouse id → Norce warehouse and location. Default: the sandbox's
    /// warehouses 2 → `WH1` and 3 → `WH2`. Stock in an unmapped warehouse is not sent.
    pub warehouses: Vec<WarehouseMapping>,
    /// Which Brightpearl figure becomes Norce's `OnhandValue`. Default `on_hand`.
    pub quantity: StockQuantity,
    /// `AccountId` of Norce's `X-StormConnect-Header` (the integration's system account in
    /// Norce Admin). Default 1 (the sandbox's).
    pub norce_account_id: i32,
    /// Brightpearl price list → Norce price list and price field. Default: the sandbox's
    /// Retail list (2, gross) → `SE-B2C` `PriceSale`, and Cost (1) → `SE-B2C` `CostPurchase`.
    pub price_lists: Vec<PriceListMapping>,
    /// VAT removed from prices of gross Brightpearl price lists (Norce prices are ex VAT), in
    /// percent. Default 25.
    #[schemars(range(min = 0, max = 100))]
    pub vat_percent: f64,
    /// Most rows in one Norce import job. Default 2000.
    #[schemars(range(min = 1))]
    pub import_batch_rows: usize,
    /// Send full passes with `FullFile = true`, so Norce deactivates on-hand rows and prices
    /// of the imported locations and lists that the pass did not contain. A full pass is then
    /// sent as one job whatever `import_batch_rows` says (several FullFile jobs would each
    /// deactivate the others' rows). Default false, as Norce recommends.
    pub full_file: bool,
    /// Send the stock of bundles too. Bundles are never stock-tracked, so product
    /// availability leaves them out: the products the catalog search marks as not stock-tracked
    /// are read with product GETs (200 a request) to tell bundles from services, and each
    /// bundle's on-hand comes from bundle availability (what its components on hand make, per
    /// warehouse). With `quantity = "in_stock"` a bundle still sends its `onHand` (the only
    /// figure Brightpearl gives for bundles). Default true.
    pub bundles: bool,
    /// Ask bundle availability for ID sets of up to 100 bundles per request instead of one
    /// bundle per request. Brightpearl documents one product id per request; whether an ID set
    /// works is unconfirmed (a refused set is asked again one id at a time). Default false.
    pub bundle_id_sets: bool,
    /// Most products one Brightpearl product webhook marks pending. A webhook naming more
    /// (an ID set such as `1-100000`) marks the first this many, and the rest are left to a
    /// full reconciliation, which the webhook requests for the next pass: one small request
    /// cannot make relay write hundreds of thousands of rows. Default 2000.
    #[schemars(range(min = 1))]
    pub webhook_max_ids: u64,
    /// How import jobs are awaited.
    pub job_wait: JobWaitConfig,
}

impl Default for StockConfig {
    fn default() -> Self {
        Self {
            full_reconcile_interval_secs: 86_400,
            warehouses: vec![
                WarehouseMapping::new(2, "WH1"),
                WarehouseMapping::new(3, "WH2"),
            ],
            quantity: StockQuantity::OnHand,
            norce_account_id: 1,
            price_lists: vec![
                PriceListMapping {
                    brightpearl_price_list: 2,
                    norce_price_list: "SE-B2C".into(),
                    field: PriceField::PriceSale,
                    includes_vat: None,
                },
                PriceListMapping {
                    brightpearl_price_list: 1,
                    norce_price_list: "SE-B2C".into(),
                    field: PriceField::CostPurchase,
                    includes_vat: None,
                },
            ],
            vat_percent: 25.0,
            import_batch_rows: 2_000,
            full_file: false,
            bundles: true,
            bundle_id_sets: false,
            webhook_max_ids: 2_000,
            job_wait: JobWaitConfig::default(),
        }
    }
}

/// One `[[stock.warehouses]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarehouseMapping {
    /// The Brightpearl warehouse id.
    pub brightpearl_warehouse: u64,
    /// The Norce warehouse code (set up in Norce Admin).
    pub norce_warehouse: String,
    /// The Norce location code; the warehouse code when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norce_location: Option<String>,
}

impl WarehouseMapping {
    /// A mapping whose location code is the warehouse code.
    pub fn new(brightpearl_warehouse: u64, norce_warehouse: &str) -> Self {
        Self {
            brightpearl_warehouse,
            norce_warehouse: norce_warehouse.to_owned(),
            norce_location: None,
        }
    }

    /// The Norce location code.
    pub fn location(&self) -> &str {
        self.norce_location
            .as_deref()
            .unwrap_or(&self.norce_warehouse)
    }
}

/// Which Brightpearl availability figure is sent as Norce's on-hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StockQuantity {
    /// `onHand`: in stock minus allocated, i.e. what can still be sold.
    OnHand,
    /// `inStock`: physically in the warehouse, allocated or not.
    InStock,
}

/// One `[[stock.price_lists]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceListMapping {
    /// The Brightpearl price list id.
    pub brightpearl_price_list: u64,
    /// The Norce price list code.
    pub norce_price_list: String,
    /// The Norce price field the Brightpearl price goes to.
    pub field: PriceField,
    /// Whether the Brightpearl prices include VAT; absent: the price list's own `gross` flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes_vat: Option<bool>,
}

/// A Norce `SkuPriceList` price field.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PriceField {
    /// `PriceSale`.
    PriceSale,
    /// `CostPurchase`.
    CostPurchase,
    /// `CostUnit`.
    CostUnit,
    /// `PriceRecommended`.
    PriceRecommended,
    /// `PricePrevious`.
    PricePrevious,
    /// `PriceCatalog`.
    PriceCatalog,
}

impl PriceField {
    /// Norce's name of the field.
    pub fn norce_name(self) -> &'static str {
        match self {
            PriceField::PriceSale => "PriceSale",
            PriceField::CostPurchase => "CostPurchase",
            PriceField::CostUnit => "CostUnit",
            PriceField::PriceRecommended => "PriceRecommended",
            PriceField::PricePrevious => "PricePrevious",
            PriceField::PriceCatalog => "PriceCatalog",
        }
    }
}

/// `[stock.job_wait]`: how Norce import jobs are polled (`Job/Get` with exponential backoff).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JobWaitConfig {
    /// Give up waiting after this many seconds (the job then counts as failed for this pass
    /// and is imported again on the next one). Default 600.
    pub timeout_secs: u64,
    /// First delay between polls, milliseconds. Default 1000.
    pub initial_interval_ms: u64,
    /// Longest delay between polls, milliseconds. Default 30000.
    pub max_interval_ms: u64,
}

impl Default for JobWaitConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 600,
            initial_interval_ms: 1_000,
            max_interval_ms: 30_000,
        }
    }
}

impl JobWaitConfig {
    /// The client's wait options.
    pub fn wait_options(&self) -> norce_client::WaitOptions {
        norce_client::WaitOptions::default()
            .timeout(Duration::from_secs(self.timeout_secs))
            .intervals(
                Duration::from_millis(self.initial_interval_ms),
                Duration::from_millis(self.max_interval_ms),
            )
    }
}

fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.into(),
        reason: reason.into(),
    }
}

impl StockConfig {
    /// Checks the values serde cannot: each error names the key and what to do.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.import_batch_rows == 0 {
            return Err(invalid(
                "stock.import_batch_rows",
                "must be at least 1 (rows per Norce import job)",
            ));
        }
        if !(self.vat_percent.is_finite() && (0.0..=100.0).contains(&self.vat_percent)) {
            return Err(invalid(
                "stock.vat_percent",
                format!(
                    "is {}; give a percentage from 0 to 100, e.g. 25",
                    self.vat_percent
                ),
            ));
        }
        if self.webhook_max_ids == 0 {
            return Err(invalid(
                "stock.webhook_max_ids",
                "must be at least 1 (products one webhook may mark pending; e.g. 2000)",
            ));
        }
        if self.job_wait.initial_interval_ms == 0 {
            return Err(invalid(
                "stock.job_wait.initial_interval_ms",
                "must be at least 1",
            ));
        }
        if self.job_wait.timeout_secs == 0 {
            return Err(invalid("stock.job_wait.timeout_secs", "must be at least 1"));
        }
        let mut seen = BTreeSet::new();
        for (i, w) in self.warehouses.iter().enumerate() {
            if w.norce_warehouse.trim().is_empty() {
                return Err(invalid(
                    format!("stock.warehouses[{i}].norce_warehouse"),
                    "is empty; give the Norce warehouse code set up in Norce Admin",
                ));
            }
            if w.norce_location
                .as_deref()
                .is_some_and(|l| l.trim().is_empty())
            {
                return Err(invalid(
                    format!("stock.warehouses[{i}].norce_location"),
                    "is empty; leave it out to use the warehouse code",
                ));
            }
            if !seen.insert(w.brightpearl_warehouse) {
                return Err(invalid(
                    format!("stock.warehouses[{i}].brightpearl_warehouse"),
                    format!(
                        "Brightpearl warehouse {} is mapped twice; keep one entry per warehouse",
                        w.brightpearl_warehouse
                    ),
                ));
            }
        }
        let mut targets = BTreeSet::new();
        for (i, p) in self.price_lists.iter().enumerate() {
            if p.norce_price_list.trim().is_empty() {
                return Err(invalid(
                    format!("stock.price_lists[{i}].norce_price_list"),
                    "is empty; give the Norce price list code",
                ));
            }
            if !targets.insert((p.norce_price_list.as_str(), p.field)) {
                return Err(invalid(
                    format!("stock.price_lists[{i}]"),
                    format!(
                        "`{}` {} is filled by two Brightpearl price lists; map each Norce field once",
                        p.norce_price_list,
                        p.field.norce_name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The Norce (warehouse, location) of a Brightpearl warehouse, if mapped.
    pub fn norce_location_of(&self, brightpearl_warehouse: u64) -> Option<&WarehouseMapping> {
        self.warehouses
            .iter()
            .find(|w| w.brightpearl_warehouse == brightpearl_warehouse)
    }

    /// How the client asks bundle availability.
    pub fn bundle_mode(&self) -> brightpearl_client::BundleAvailabilityMode {
        if self.bundle_id_sets {
            brightpearl_client::BundleAvailabilityMode::IdSets
        } else {
            brightpearl_client::BundleAvailabilityMode::PerId
        }
    }

    /// How long a full reconciliation stays fresh.
    pub fn full_interval(&self) -> Duration {
        Duration::from_secs(self.full_reconcile_interval_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayConfig;

    #[test]
    fn defaults_match_the_sandbox() {
        let config = StockConfig::default();
        assert_eq!(
            config.norce_location_of(3).map(WarehouseMapping::location),
            Some("WH2")
        );
        assert!(config.validate().is_ok());
        assert!(config.bundles && !config.bundle_id_sets);
        assert_eq!(
            config.bundle_mode(),
            brightpearl_client::BundleAvailabilityMode::PerId
        );
        assert_eq!(RelayConfig::parse("[stock]\n", "t").unwrap().stock, config);
    }

    #[test]
    fn keys_parse_and_unknown_ones_are_named() {
        let text = "[stock]\nfull_reconcile_interval_secs = 0\nquantity = \"in_stock\"\nbundles = false\nbundle_id_sets = true\n\n[[stock.warehouses]]\nbrightpearl_warehouse = 7\nnorce_warehouse = \"MAIN\"\nnorce_location = \"A1\"\n\n[[stock.price_lists]]\nbrightpearl_price_list = 4\nnorce_price_list = \"NO-B2C\"\nfield = \"price_recommended\"\nincludes_vat = false\n\n[stock.job_wait]\ninitial_interval_ms = 5\n";
        let config = RelayConfig::parse(text, "relay.toml").unwrap().stock;
        assert_eq!(config.quantity, StockQuantity::InStock);
        assert!(!config.bundles);
        assert_eq!(
            config.bundle_mode(),
            brightpearl_client::BundleAvailabilityMode::IdSets
        );
        assert_eq!(
            config.warehouses,
            vec![WarehouseMapping {
                brightpearl_warehouse: 7,
                norce_warehouse: "MAIN".into(),
                norce_location: Some("A1".into())
            }]
        );
        assert_eq!(config.price_lists[0].field, PriceField::PriceRecommended);
        assert_eq!(config.job_wait.initial_interval_ms, 5);
        assert_eq!(config.job_wait.timeout_secs, 600);
        let err = RelayConfig::parse("[stock]\nwarehouse = []\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("warehouse") && err.contains("relay.toml"),
            "{err}"
        );
        let err = RelayConfig::parse("[stock]\nquantity = \"free\"\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("free"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut config = StockConfig {
            import_batch_rows: 0,
            ..StockConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("stock.import_batch_rows")
        );
        config.import_batch_rows = 10;
        config.warehouses.push(WarehouseMapping::new(2, "WH9"));
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("stock.warehouses[2].brightpearl_warehouse")
        );
        config.warehouses.pop();
        config.price_lists[1].field = PriceField::PriceSale;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("stock.price_lists[1]")
        );
        config.price_lists[1].field = PriceField::CostPurchase;
        config.vat_percent = -1.0;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("stock.vat_percent")
        );
    }
}
