//! Durable lookups the Brightpearl flows share to spend fewer of the account's 200 requests a
//! minute, kept in the state store ([`Store::lookup_get`]) so that flows running in separate
//! processes (`relay run --flow stock`, then `--flow orders`) use each other's reads:
//!
//! - **SKU → product id** ([`SkuMap`]), one map per Brightpearl account: the stock flow writes
//!   every product it reads (a full catalog read replaces the map), the orders flow reads it and
//!   fills misses by product-search. An entry older than `orders.sku_map_max_age_secs` counts
//!   as a miss; one the sales-order POST refuses is removed.
//! - **e-mail → contact id** ([`ContactCache`]), per account: contacts the orders flow found or
//!   created, so a repeat customer costs no contact-search. An entry older than
//!   `orders.contact_cache_max_age_secs` counts as a miss; one the sales-order POST refuses is
//!   removed (the next attempt searches again).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::state::{StateError, Store};

/// The lookup map of an account's SKUs.
fn sku_map_name(account: &str) -> String {
    format!("brightpearl-sku:{account}")
}

/// The lookup map of an account's contacts by e-mail.
fn contact_map_name(account: &str) -> String {
    format!("brightpearl-contact:{account}")
}

/// Entries newer than `max_age` (as of `now`), parsed as ids.
fn fresh(
    store: &dyn Store,
    map: &str,
    keys: &[&str],
    max_age: TimeDelta,
    now: DateTime<Utc>,
) -> Result<HashMap<String, i64>, StateError> {
    Ok(store
        .lookup_get(map, keys)?
        .into_iter()
        .filter(|l| {
            DateTime::parse_from_rfc3339(&l.updated_at)
                .is_ok_and(|at| now.signed_duration_since(at.with_timezone(&Utc)) <= max_age)
        })
        .filter_map(|l| Some((l.key, l.value.parse().ok()?)))
        .collect())
}

fn seconds(secs: u64) -> TimeDelta {
    TimeDelta::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

/// The entries to store, the first product of a SKU kept (products come in id order, and
/// the oldest of several with one SKU is the one orders use).
fn first_per_sku(products: impl IntoIterator<Item = (String, u64)>) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    products
        .into_iter()
        .filter(|(sku, _)| seen.insert(sku.clone()))
        .map(|(sku, id)| (sku, id.to_string()))
        .collect()
}

/// SKU → Brightpearl product id of one account (see the module docs).
pub struct SkuMap<'a> {
    store: &'a dyn Store,
    map: String,
    max_age: TimeDelta,
}

impl<'a> SkuMap<'a> {
    /// The map of `account`, whose entries are trusted for `max_age_secs`.
    pub fn new(store: &'a dyn Store, account: &str, max_age_secs: u64) -> Self {
        Self {
            store,
            map: sku_map_name(account),
            max_age: seconds(max_age_secs),
        }
    }

    /// The fresh entries among `skus`.
    pub fn get(&self, skus: &[&str]) -> Result<HashMap<String, i64>, StateError> {
        fresh(self.store, &self.map, skus, self.max_age, Utc::now())
    }

    /// Records products read from Brightpearl (SKU, product id).
    pub fn put(&self, products: impl IntoIterator<Item = (String, u64)>) -> Result<(), StateError> {
        let entries = first_per_sku(products);
        if entries.is_empty() {
            return Ok(());
        }
        self.store.lookup_put(&self.map, &entries)
    }

    /// Replaces the map with a full catalog read (products gone from Brightpearl drop out).
    pub fn replace(
        &self,
        products: impl IntoIterator<Item = (String, u64)>,
    ) -> Result<(), StateError> {
        let entries = first_per_sku(products);
        self.store.lookup_replace(&self.map, &entries)
    }

    /// Drops entries found wrong (a product the sales-order POST says does not exist).
    pub fn forget(&self, skus: &[&str]) -> Result<(), StateError> {
        self.store.lookup_remove(&self.map, skus)
    }
}

/// E-mail (trimmed, lower case) → Brightpearl contact id of one account.
pub struct ContactCache<'a> {
    store: &'a dyn Store,
    map: String,
    max_age: TimeDelta,
}

impl<'a> ContactCache<'a> {
    /// The cache of `account`, whose entries are used for `max_age_secs` (0: no cache).
    pub fn new(store: &'a dyn Store, account: &str, max_age_secs: u64) -> Self {
        Self {
            store,
            map: contact_map_name(account),
            max_age: seconds(max_age_secs),
        }
    }

    /// A max age of 0 turns the cache off.
    fn enabled(&self) -> bool {
        self.max_age > TimeDelta::zero()
    }

    /// The key of `email`: trimmed, lower case. Orders of one customer are grouped by it too.
    pub fn key(email: &str) -> String {
        email.trim().to_lowercase()
    }

    /// The contact recorded for `email`, if fresh.
    pub fn get(&self, email: &str) -> Result<Option<i64>, StateError> {
        if !self.enabled() {
            return Ok(None);
        }
        let key = Self::key(email);
        Ok(fresh(self.store, &self.map, &[&key], self.max_age, Utc::now())?.remove(&key))
    }

    /// Records the contact found or created for `email`.
    pub fn put(&self, email: &str, contact_id: i64) -> Result<(), StateError> {
        if !self.enabled() {
            return Ok(());
        }
        self.store
            .lookup_put(&self.map, &[(Self::key(email), contact_id.to_string())])
    }

    /// Drops the entry of `email` (its contact was refused).
    pub fn forget(&self, email: &str) -> Result<(), StateError> {
        self.store.lookup_remove(&self.map, &[&Self::key(email)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SqliteStore;

    #[test]
    fn maps_are_per_account_and_age_out() {
        let store = SqliteStore::in_memory().unwrap();
        let skus = SkuMap::new(&store, "a", 3600);
        skus.put([("S1".to_owned(), 1), ("S2".to_owned(), 2)])
            .unwrap();
        assert_eq!(
            skus.get(&["S1", "S3"]).unwrap(),
            HashMap::from([("S1".into(), 1)])
        );
        assert!(
            SkuMap::new(&store, "b", 3600)
                .get(&["S1"])
                .unwrap()
                .is_empty()
        );
        skus.forget(&["S1"]).unwrap();
        assert!(skus.get(&["S1"]).unwrap().is_empty());
        skus.replace([("S9".to_owned(), 9)]).unwrap();
        assert!(skus.get(&["S2"]).unwrap().is_empty());

        // The store's clock is an hour behind: its entries are older than a minute.
        let old = SqliteStore::in_memory()
            .unwrap()
            .with_clock(|| Utc::now() - TimeDelta::hours(1));
        SkuMap::new(&old, "a", 60)
            .put([("S1".to_owned(), 1)])
            .unwrap();
        assert!(SkuMap::new(&old, "a", 60).get(&["S1"]).unwrap().is_empty());
        assert_eq!(SkuMap::new(&old, "a", 7200).get(&["S1"]).unwrap().len(), 1);

        let contacts = ContactCache::new(&store, "a", 3600);
        contacts.put(" Ann@Example.com ", 7).unwrap();
        assert_eq!(contacts.get("ann@example.com").unwrap(), Some(7));
        contacts.forget("ANN@example.com").unwrap();
        assert_eq!(contacts.get("ann@example.com").unwrap(), None);
        let off = ContactCache::new(&store, "a", 0);
        off.put("bo@example.com", 8).unwrap();
        assert_eq!(off.get("bo@example.com").unwrap(), None);
    }
}
