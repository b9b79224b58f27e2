//! The navigation property names of Norce Query 3.0 orders, configurable.
//!
//! Norce's published Query pages show the orders' scalar fields and some reverse navigation
//! names (`orderShipToCustomerInfo` on CustomerInfo, `deliveryNoteItem` on OrderItem), but not
//! the names of the Order's own navigations. `specs/norce/query.yaml` infers them (and marks them
//! `x-assumed`); a wrong name in `$expand` is a 400 on every poll. So the names are settings
//! (`NORCE_QUERY_NAVIGATION`): requests use the configured names, and each answer's keys are
//! renamed to the spec's names before decoding, so the models and the flows never change.

use client_core::{Settings, SettingsError};
use serde_json::Value;

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

/// Which name Norce uses for each Query order navigation. The default is the spec's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryNavigation {
    /// Order → lines.
    pub order_items: String,
    /// Order → buyer CustomerInfo.
    pub buyer: String,
    /// Order → ship-to CustomerInfo.
    pub ship_to: String,
    /// Order → payer CustomerInfo.
    pub payer: String,
    /// Order → delivery notes.
    pub delivery_notes: String,
    /// Delivery note → lines.
    pub delivery_note_items: String,
    /// Delivery note → parcels.
    pub delivery_note_packages: String,
}

impl Default for QueryNavigation {
    fn default() -> Self {
        Self {
            order_items: "orderItem".into(),
            buyer: "buyerCustomerInfo".into(),
            ship_to: "shipToCustomerInfo".into(),
            payer: "payerCustomerInfo".into(),
            delivery_notes: "deliveryNote".into(),
            delivery_note_items: "deliveryNoteItem".into(),
            delivery_note_packages: "deliveryNotePackage".into(),
        }
    }
}

const KEYS: &str = "order_items, buyer, ship_to, payer, delivery_notes, delivery_note_items, delivery_note_packages";

impl QueryNavigation {
    /// The names from `NORCE_QUERY_NAVIGATION` over the defaults.
    pub fn from_settings(settings: &Settings) -> Result<Self, SettingsError> {
        let mut navigation = Self::default();
        let Some(text) = settings.get(NAVIGATION_SETTING) else {
            return Ok(navigation);
        };
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let invalid = |why: String| SettingsError::invalid(NAVIGATION_SETTING, why);
            let (key, name) = pair
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| invalid(format!("`{pair}` is not `key=name` (keys: {KEYS})")))?;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(format!(
                    "`{name}` for `{key}` is not an OData property name (letters, digits, _)"
                )));
            }
            let slot = match key {
                "order_items" => &mut navigation.order_items,
                "buyer" => &mut navigation.buyer,
                "ship_to" => &mut navigation.ship_to,
                "payer" => &mut navigation.payer,
                "delivery_notes" => &mut navigation.delivery_notes,
                "delivery_note_items" => &mut navigation.delivery_note_items,
                "delivery_note_packages" => &mut navigation.delivery_note_packages,
                other => return Err(invalid(format!("unknown key `{other}` (keys: {KEYS})"))),
            };
            *slot = name.to_owned();
        }
        Ok(navigation)
    }

    /// The `$expand` value for these navigations, in Norce's configured names.
    pub fn expand(&self, navigations: &[Navigation]) -> String {
        navigations
            .iter()
            .map(|navigation| match navigation {
                Navigation::OrderItems => self.order_items.clone(),
                Navigation::Buyer => self.buyer.clone(),
                Navigation::ShipTo => self.ship_to.clone(),
                Navigation::Payer => self.payer.clone(),
                Navigation::DeliveryNotes => format!(
                    "{}($expand={},{})",
                    self.delivery_notes, self.delivery_note_items, self.delivery_note_packages
                ),
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Renames the configured names in a Query orders page (`{"value": [order, ...]}`) to the
    /// spec's, so the page decodes into the generated models whatever Norce calls them.
    pub(crate) fn to_spec_names(&self, page: &mut Value) {
        let spec = Self::default();
        if self == &spec {
            return;
        }
        let order_pairs = [
            (&self.order_items, &spec.order_items),
            (&self.buyer, &spec.buyer),
            (&self.ship_to, &spec.ship_to),
            (&self.payer, &spec.payer),
            (&self.delivery_notes, &spec.delivery_notes),
        ];
        let note_pairs = [
            (&self.delivery_note_items, &spec.delivery_note_items),
            (&self.delivery_note_packages, &spec.delivery_note_packages),
        ];
        let Some(orders) = page.get_mut("value").and_then(Value::as_array_mut) else {
            return;
        };
        for order in orders.iter_mut().filter_map(Value::as_object_mut) {
            rename(order, &order_pairs);
            let notes = order
                .get_mut(spec.delivery_notes.as_str())
                .and_then(Value::as_array_mut);
            for note in notes.into_iter().flatten().filter_map(Value::as_object_mut) {
                rename(note, &note_pairs);
            }
        }
    }
}

fn rename(object: &mut serde_json::Map<String, Value>, pairs: &[(&String, &String)]) {
    for (configured, spec) in pairs {
        if configured != spec
            && let Some(value) = object.remove(configured.as_str())
        {
            object.insert((*spec).clone(), value);
        }
    }
}
