//! In-memory state of the nShift simulator (held by [`crate::AppState`]).

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::catalog::AddressBook;
use super::config::NshiftConfig;
use super::store::Store;
use crate::dataset::Dataset;

/// In-memory state of the nshift simulator.
#[derive(Debug)]
pub struct NshiftState {
    pub(super) book: AddressBook,
    pub(super) inner: Mutex<Store>,
}

impl NshiftState {
    /// Seeds the state from the dataset (the address book's senders come from its warehouses).
    pub fn new(_config: &NshiftConfig, dataset: &Dataset, _start: DateTime<Utc>) -> Self {
        Self {
            book: AddressBook::from_warehouses(
                dataset
                    .warehouses
                    .iter()
                    .map(|w| (w.name.as_str(), w.location_code.as_str())),
            ),
            inner: Mutex::new(Store::new()),
        }
    }

    /// Number of JWTs issued by `/sessions/jwt` so far.
    pub fn jwt_sessions_issued(&self) -> u64 {
        crate::util::lock(&self.inner).sessions_issued()
    }

    /// Number of shipments booked with this `orderNo` (cancelled ones included).
    pub fn shipment_count(&self, order_no: &str) -> usize {
        crate::util::lock(&self.inner)
            .shipments()
            .filter(|s| s.order_no.as_deref() == Some(order_no))
            .count()
    }
}
