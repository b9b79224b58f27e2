//! Norce → Brightpearl orders and fulfilment back (work in progress).

use serde::{Deserialize, Serialize};

/// The `[orders]` section of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersConfig {}
