//! In-memory state of the Norce simulator (held by [`crate::AppState`]).

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::config::NorceConfig;
use super::model;
use crate::dataset::Dataset;

/// In-memory state of the norce simulator.
#[derive(Debug)]
pub struct NorceState {
    config: NorceConfig,
    inner: Mutex<model::Inner>,
}

impl NorceState {
    /// Seeds the state from the dataset.
    pub fn new(config: &NorceConfig, dataset: &Dataset, start: DateTime<Utc>) -> Self {
        Self {
            config: config.clone(),
            inner: Mutex::new(model::Inner::seed(config, dataset, start)),
        }
    }

    /// The configuration the simulator started with.
    pub fn config(&self) -> &NorceConfig {
        &self.config
    }

    /// Revokes every issued access token (as an admin revoking the integration's access would):
    /// the next API call with one gets 401 and the client must fetch a new token.
    pub fn revoke_tokens(&self) -> usize {
        let mut inner = self.lock();
        let revoked = inner.tokens.len();
        inner.tokens.clear();
        revoked
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, model::Inner> {
        crate::util::lock(&self.inner)
    }
}
