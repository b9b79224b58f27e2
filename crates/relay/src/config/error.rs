//! [`ConfigError`]: why a configuration file cannot be used.

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
