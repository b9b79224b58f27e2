//! [`ServeError`]: why `relay serve` could not start.

use crate::config::ConfigError;

/// Why `relay serve` could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A `[serve]` value is unusable.
    #[error("configuration `{setting}`: {reason}")]
    Config {
        /// The key path, e.g. `serve.body_limit_bytes`.
        setting: String,
        /// Why.
        reason: String,
    },
    /// A secret's variable or file is unusable (the value is never shown).
    #[error("`{setting}`: {reason}")]
    Secret {
        /// The environment variable.
        setting: String,
        /// Why.
        reason: String,
    },
    /// The listen address cannot be bound or read.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

impl From<ConfigError> for ServeError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { setting, reason } => ServeError::Config { setting, reason },
            other => ServeError::Config {
                setting: "serve".into(),
                reason: other.to_string(),
            },
        }
    }
}
