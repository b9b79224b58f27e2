//! Brightpearl → Norce stock and prices (work in progress).

use serde::{Deserialize, Serialize};

/// The `[stock]` section of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StockConfig {}
