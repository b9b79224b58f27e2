//! The navigation names of Norce Query 3.0 orders, configurable (README, "Settings": the spec
//! infers them, and a wrong name in `$expand` is a 400 on every poll).

use client_core::{Settings, SettingsError};
use serde_json::{Map, Value};

/// The setting that overrides navigation names: `key=name` pairs separated by commas, e.g.
/// `order_items=orderItems,delivery_notes=deliveryNotes`.
pub const NAVIGATION_SETTING: &str = "NORCE_QUERY_NAVIGATION";

/// A navigation of the Query order that the flows expand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Navigation {
    /// The order lines (spec: `orderItem`).
    OrderItems,
    /// The buyer's customer info (spec: `buyerCustomerInfo`).
    Buyer,
    /// The ship-to customer info (spec: `shipToCustomerInfo`).
    ShipTo,
    /// The payer's customer info (spec: `payerCustomerInfo`).
    Payer,
    /// The delivery notes with their lines and parcels (spec: `deliveryNote`, nested
    /// `deliveryNoteItem` and `deliveryNotePackage`).
    DeliveryNotes,
}

/// One field per navigation: `key = "spec name" on "order"` (a key of the order) or `"note"`
/// (a key of each delivery note); the key is also the setting's.
macro_rules! navigation_names {
    ($($(#[$doc:meta])* $key:ident = $spec:literal on $level:literal,)*) => {
        /// Which name Norce uses for each Query order navigation. The default is the spec's.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct QueryNavigation {
            $($(#[$doc])* pub $key: String,)*
        }

        impl Default for QueryNavigation {
            fn default() -> Self {
                Self { $($key: $spec.into(),)* }
            }
        }

        impl QueryNavigation {
            /// Every navigation: (key, configured name, spec name, level).
            fn names(&self) -> [(&'static str, &str, &'static str, &'static str); 7] {
                [$((stringify!($key), self.$key.as_str(), $spec, $level),)*]
            }

            /// Sets the name of `key`; false for an unknown key.
            fn set(&mut self, key: &str, name: &str) -> bool {
                match key {
                    $(stringify!($key) => self.$key = name.to_owned(),)*
                    _ => return false,
                }
                true
            }
        }
    };
}

navigation_names! {
    /// Order → lines.
    order_items = "orderItem" on "order",
    /// Order → buyer CustomerInfo.
    buyer = "buyerCustomerInfo" on "order",
    /// Order → ship-to CustomerInfo.
    ship_to = "shipToCustomerInfo" on "order",
    /// Order → payer CustomerInfo.
    payer = "payerCustomerInfo" on "order",
    /// Order → delivery notes.
    delivery_notes = "deliveryNote" on "order",
    /// Delivery note → lines.
    delivery_note_items = "deliveryNoteItem" on "note",
    /// Delivery note → parcels.
    delivery_note_packages = "deliveryNotePackage" on "note",
}

impl QueryNavigation {
    /// The names from `NORCE_QUERY_NAVIGATION` over the defaults.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let mut navigation = Self::default();
        let keys = navigation.names().map(|n| n.0).join(", ");
        let text = settings.get(NAVIGATION_SETTING).unwrap_or_default();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let invalid = |why: String| SettingsError::invalid(NAVIGATION_SETTING, why);
            let (key, name) = pair
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| invalid(format!("`{pair}` is not `key=name` (keys: {keys})")))?;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                let why = "is not an OData property name (letters, digits, _)";
                return Err(invalid(format!("`{name}` for `{key}` {why}")));
            }
            if !navigation.set(key, name) {
                return Err(invalid(format!("unknown key `{key}` (keys: {keys})")));
            }
        }
        Ok(navigation)
    }

    /// The `$expand` value for these navigations, in Norce's configured names.
    pub fn expand(&self, navigations: &[Navigation]) -> String {
        let name = |navigation: &Navigation| match navigation {
            Navigation::OrderItems => self.order_items.clone(),
            Navigation::Buyer => self.buyer.clone(),
            Navigation::ShipTo => self.ship_to.clone(),
            Navigation::Payer => self.payer.clone(),
            Navigation::DeliveryNotes => format!(
                "{}($expand={},{})",
                self.delivery_notes, self.delivery_note_items, self.delivery_note_packages
            ),
        };
        navigations.iter().map(name).collect::<Vec<_>>().join(",")
    }

    /// Renames the configured names in a Query orders page (`{"value": [order, ...]}`) to the
    /// spec's, so the page decodes into the generated models whatever Norce calls them.
    pub(crate) fn to_spec_names(&self, page: &mut Value) {
        let orders = page.get_mut("value").and_then(Value::as_array_mut);
        for order in orders
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            self.rename(order, "order");
            // Renamed above: the spec's name.
            let notes = order.get_mut("deliveryNote").and_then(Value::as_array_mut);
            for note in notes.into_iter().flatten().filter_map(Value::as_object_mut) {
                self.rename(note, "note");
            }
        }
    }

    fn rename(&self, object: &mut Map<String, Value>, level: &str) {
        for (_, configured, spec, _) in self.names().into_iter().filter(|n| n.3 == level) {
            if configured != spec
                && let Some(value) = object.remove(configured)
            {
                object.insert(spec.to_owned(), value);
            }
        }
    }
}
