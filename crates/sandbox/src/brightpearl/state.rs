//! In-memory state of the Brightpearl simulator (held by [`crate::AppState`]).

use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::config::BrightpearlConfig;
use super::store::{Store, WebhookDelivery};
use crate::dataset::Dataset;

/// In-memory state of the brightpearl simulator.
#[derive(Debug, Default)]
pub struct BrightpearlState {
    inner: Mutex<Store>,
}

impl BrightpearlState {
    /// Seeds the state from the dataset.
    pub fn new(config: &BrightpearlConfig, dataset: &Dataset, start: DateTime<Utc>) -> Self {
        Self {
            inner: Mutex::new(Store::seed(config, dataset, start)),
        }
    }

    /// The webhook calls made so far (oldest first).
    pub fn webhook_deliveries(&self) -> Vec<WebhookDelivery> {
        self.lock().deliveries.clone()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Store> {
        crate::util::lock(&self.inner)
    }
}
