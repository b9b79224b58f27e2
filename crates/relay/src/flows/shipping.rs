//! Norce → nShift shipping (work in progress).

use serde::{Deserialize, Serialize};

/// The `[shipping]` section of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShippingConfig {}
