//! The configuration file (TOML): mappings and settings. Secrets never go here: they come from
//! environment variables or `NAME_FILE` files (see the clients' READMEs).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::flows::orders::OrdersConfig;
use crate::flows::shipping::ShippingConfig;
use crate::flows::stock::StockConfig;
use crate::serve::ServeConfig;

/// The whole file. Every section and key is optional; unknown keys are errors that name them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
}

/// `[state]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// The data folder (the SQLite file, labels by default).
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("relay-data"),
        }
    }
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Failed attempts before an item goes to the dead letters.
    pub max_attempts: u32,
    /// Items processed at once per flow.
    pub concurrency: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            concurrency: 8,
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the configuration file `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema; the message names the key.
    #[error("configuration file `{path}`: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What toml says, with line and key.
        message: String,
    },
    /// A value is out of range.
    #[error("configuration `{setting}`: {reason}")]
    Invalid {
        /// The key path, e.g. `run.concurrency`.
        setting: String,
        /// Why and what to do.
        reason: String,
    },
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
        let config: RelayConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.run.max_attempts == 0 {
            return Err(ConfigError::Invalid {
                setting: "run.max_attempts".into(),
                reason: "must be at least 1".into(),
            });
        }
        if self.run.concurrency == 0 {
            return Err(ConfigError::Invalid {
                setting: "run.concurrency".into(),
                reason: "must be at least 1".into(),
            });
        }
        // Each section checks what serde cannot; their errors name the key already.
        self.stock.validate()?;
        self.orders.validate().map_err(|e| match e {
            crate::flows::FlowError::Config { setting, reason } => {
                ConfigError::Invalid { setting, reason }
            }
            other => ConfigError::Invalid {
                setting: "orders".into(),
                reason: other.to_string(),
            },
        })?;
        self.serve.validate().map_err(|e| match e {
            crate::serve::ServeError::Config { setting, reason } => {
                ConfigError::Invalid { setting, reason }
            }
            other => ConfigError::Invalid {
                setting: "serve".into(),
                reason: other.to_string(),
            },
        })?;
        Ok(())
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
}
