//! `relay serve`: receivers, scheduler, health and metrics (work in progress).

use serde::{Deserialize, Serialize};

/// The `[serve]` section of the configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {}
