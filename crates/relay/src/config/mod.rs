//! The configuration file (TOML): mappings and settings. Secrets never go here: they come from
//! environment variables or `NAME_FILE` files (see the clients' READMEs).

pub mod alerts;
mod error;
pub mod orders;
pub mod serve;
pub mod shipping;
pub mod stock;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::TimeDelta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use self::alerts::AlertsConfig;
pub use self::error::ConfigError;
pub use self::orders::OrdersConfig;
pub use self::serve::ServeConfig;
pub use self::shipping::ShippingConfig;
pub use self::stock::StockConfig;
use crate::state::RetentionPolicy;

/// The whole file. Every section and key is optional; unknown keys are errors that name them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(
    title = "relay.toml",
    description = "The relay configuration file (mappings and settings; secrets come from the environment). Every section and key is optional; unknown keys are errors."
)]
pub struct RelayConfig {
    /// Where state lives.
    pub state: StateConfig,
    /// How items are retried.
    pub run: RunConfig,
    /// Norce → nShift.
    pub shipping: ShippingConfig,
    /// Brightpearl → Norce stock and prices.
    pub stock: StockConfig,
    /// Norce → Brightpearl orders and fulfilment back.
    pub orders: OrdersConfig,
    /// `relay serve`: receivers and schedule.
    pub serve: ServeConfig,
    /// Failure alerts to the operator (`relay serve`): dead letters, failing flows, refused
    /// credentials; by webhook and/or e-mail, rate-limited.
    pub alerts: AlertsConfig,
}

/// `[state]`: where state lives and how long finished state is kept (`relay serve` prunes it
/// every `prune_every_secs`; unprocessed inbox items, pending and failed entities and dead
/// letters are never pruned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// The data folder (the SQLite file, labels by default).
    pub dir: PathBuf,
    /// A PostgreSQL database for the state instead of the SQLite file, so that several
    /// `relay serve` workers on several machines share it: `postgres://user@host:5432/db`.
    /// The password never goes in this file: give the whole URL in `RELAY_DATABASE_URL`
    /// instead (it wins over this key), or the password in the server's `.pgpass`.
    pub url: Option<String>,
    /// Days processed inbox items, and the payloads of finished (done or skipped) entities, are
    /// kept after their last change. The entity records themselves stay (they make a repeat
    /// push a no-op); fulfilment notes and parcel tracking of an older order go on without the
    /// order's pushed details.
    #[schemars(range(min = 1, max = 36500))]
    pub retention_days: u32,
    /// Processed inbox items kept at most (the newest; repeat deliveries included).
    #[schemars(range(min = 1))]
    pub retention_max_processed_inbox_rows: u64,
    /// Finished entities per flow that keep their payload at most (the most recently changed).
    #[schemars(range(min = 1))]
    pub retention_max_finished_payloads: u64,
    /// Seconds between two prune runs of `relay serve` (each in batches of a few hundred rows).
    #[schemars(range(min = 1))]
    pub prune_every_secs: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        let policy = RetentionPolicy::default();
        Self {
            dir: PathBuf::from("relay-data"),
            url: None,
            retention_days: u32::try_from(policy.max_age.num_days()).unwrap_or(30),
            retention_max_processed_inbox_rows: policy.max_processed_inbox_rows,
            retention_max_finished_payloads: policy.max_finished_payloads_per_flow,
            prune_every_secs: 600,
        }
    }
}

/// The longest `state.retention_days` (a hundred years: longer is "forever" in practice).
const MAX_RETENTION_DAYS: u32 = 36_500;

impl StateConfig {
    /// What [`crate::state::Store::prune`] keeps under these settings.
    pub fn retention_policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            max_age: TimeDelta::days(i64::from(self.retention_days)),
            max_processed_inbox_rows: self.retention_max_processed_inbox_rows,
            max_finished_payloads_per_flow: self.retention_max_finished_payloads,
        }
    }

    /// Time between two prune runs.
    pub fn prune_interval(&self) -> Duration {
        Duration::from_secs(self.prune_every_secs)
    }

    /// Checks the values the file cannot express as types; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting: &str, reason: String| ConfigError::Invalid {
            setting: format!("state.{setting}"),
            reason,
        };
        if !(1..=MAX_RETENTION_DAYS).contains(&self.retention_days) {
            return Err(invalid(
                "retention_days",
                format!(
                    "must be between 1 and {MAX_RETENTION_DAYS}: days processed inbox items and finished entities' payloads are kept (default 30)"
                ),
            ));
        }
        for (key, value) in [
            (
                "retention_max_processed_inbox_rows",
                self.retention_max_processed_inbox_rows,
            ),
            (
                "retention_max_finished_payloads",
                self.retention_max_finished_payloads,
            ),
        ] {
            if value == 0 {
                return Err(invalid(
                    key,
                    "must be at least 1: it is how many are kept; raise it to keep more, or leave the key out for the default".to_owned(),
                ));
            }
        }
        if let Some(url) = &self.url {
            check_database_url(url).map_err(|reason| invalid("url", reason))?;
        }
        if self.prune_every_secs == 0 {
            return Err(invalid(
                "prune_every_secs",
                "must be at least 1: pruning keeps the state bounded; to keep more, raise `state.retention_days` or the `state.retention_max_*` counts instead".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Why a database URL from the configuration file is unusable: it is not a `postgres://` URL,
/// or it carries a password (secrets never go in the file).
fn check_database_url(url: &str) -> Result<(), String> {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Err(
            "must start with `postgres://` (e.g. `postgres://relay@db.internal:5432/relay`); leave the key out for the SQLite file in `state.dir`".to_owned(),
        );
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if let Some((user_info, _)) = authority.rsplit_once('@')
        && user_info.contains(':')
    {
        return Err(
            "contains a password: secrets never go in the configuration file; set the whole URL in RELAY_DATABASE_URL instead, or keep the password in the server's .pgpass".to_owned(),
        );
    }
    Ok(())
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Failed attempts before an item goes to the dead letters.
    #[schemars(range(min = 1))]
    pub max_attempts: u32,
    /// Items processed at once per flow.
    #[schemars(range(min = 1))]
    pub concurrency: usize,
}

impl RunConfig {
    /// Checks the values the file cannot express as types; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::Invalid {
                setting: "run.max_attempts".into(),
                reason: "must be at least 1: failed attempts before an item goes to the dead letters (default 5)".into(),
            });
        }
        if self.concurrency == 0 {
            return Err(ConfigError::Invalid {
                setting: "run.concurrency".into(),
                reason: "must be at least 1: items processed at once per flow (default 8)".into(),
            });
        }
        Ok(())
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            concurrency: 8,
        }
    }
}

impl RelayConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let parse_error = |message: String| ConfigError::Parse {
            path: origin.to_owned(),
            message,
        };
        let document = toml::Deserializer::parse(text).map_err(|e| parse_error(e.to_string()))?;
        // The key path of a value serde refuses (wrong type, unknown variant or key), so the
        // message names `section.key` as the range checks below do.
        let config: RelayConfig = serde_path_to_error::deserialize(document).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner();
            parse_error(if at.is_empty() || at == "." {
                inner.to_string()
            } else {
                format!("`{at}`: {inner}")
            })
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every section, in file order; the first error names its `section.key` and what
    /// to do. [`RelayConfig::parse`] and [`RelayConfig::load`] run it, so a file that loads is
    /// one every flow and `relay serve` can use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.state.validate()?;
        self.run.validate()?;
        self.shipping.validate()?;
        self.stock.validate()?;
        self.orders.validate()?;
        self.serve.validate()?;
        self.alerts.validate()?;
        Ok(())
    }

    /// The JSON Schema of the configuration file, with every section, key, default and doc
    /// comment: `relay config schema` prints it for editors (Taplo / Even Better TOML, and any
    /// JSON-Schema-aware TOML plugin) to complete and check `relay.toml`. Draft 7, which every
    /// such editor reads.
    pub fn json_schema() -> serde_json::Value {
        let schema = schemars::generate::SchemaSettings::draft07()
            .into_generator()
            .into_root_schema_for::<RelayConfig>();
        serde_json::to_value(schema).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(RelayConfig::parse("", "t").unwrap(), RelayConfig::default());
    }

    #[test]
    fn section_checks_run_when_the_file_is_loaded() {
        let err = RelayConfig::parse("[stock]\nvat_percent = 250\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("stock.vat_percent"), "{err}");
        let err = RelayConfig::parse(
            "[orders]\nconfirmed_status = \"Shipped-ish\"\n",
            "relay.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("orders.confirmed_status"), "{err}");
        let err = RelayConfig::parse("[serve]\nbody_limit_bytes = 0\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("body_limit_bytes"), "{err}");
    }

    #[test]
    fn retention_settings_default_load_and_are_checked_naming_the_key() {
        let config = RelayConfig::parse("", "t").unwrap().state;
        assert_eq!(config.retention_policy(), RetentionPolicy::default());
        assert_eq!(config.prune_interval(), Duration::from_secs(600));
        let text = "[state]\nretention_days = 7\nretention_max_processed_inbox_rows = 50\nretention_max_finished_payloads = 60\nprune_every_secs = 30\n";
        let config = RelayConfig::parse(text, "t").unwrap().state;
        assert_eq!(
            config.retention_policy(),
            RetentionPolicy {
                max_age: TimeDelta::days(7),
                max_processed_inbox_rows: 50,
                max_finished_payloads_per_flow: 60,
            }
        );
        assert_eq!(config.prune_interval(), Duration::from_secs(30));
        for (text, key, expected) in [
            (
                "retention_days = 0",
                "state.retention_days",
                "between 1 and",
            ),
            (
                "retention_days = 40000",
                "state.retention_days",
                "between 1 and",
            ),
            (
                "retention_max_processed_inbox_rows = 0",
                "state.retention_max_processed_inbox_rows",
                "at least 1",
            ),
            (
                "retention_max_finished_payloads = 0",
                "state.retention_max_finished_payloads",
                "at least 1",
            ),
            (
                "prune_every_secs = 0",
                "state.prune_every_secs",
                "retention_days",
            ),
            ("retention_day = 3", "retention_day", "unknown field"),
        ] {
            let err = RelayConfig::parse(&format!("[state]\n{text}\n"), "relay.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = RelayConfig::parse("[run]\nconcurency = 3\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("relay.toml") && err.contains("concurency"),
            "{err}"
        );
        let err = RelayConfig::parse("[run]\nconcurrency = 0\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("run.concurrency"), "{err}");
    }

    #[test]
    fn a_database_url_in_the_file_is_checked_and_never_carries_a_password() {
        let state = |url: &str| StateConfig {
            url: Some(url.to_owned()),
            ..StateConfig::default()
        };
        assert!(state("postgres://relay@db:5432/relay").validate().is_ok());
        assert!(
            state("postgresql://db/relay?sslmode=disable")
                .validate()
                .is_ok()
        );
        let err = state("postgres://relay:hunter2@db/relay")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("state.url") && err.contains("RELAY_DATABASE_URL"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let err = state("mysql://db/relay")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("postgres://"), "{err}");
    }
}
