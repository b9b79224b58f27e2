//! `[shipping]`: Norce orders booked in nShift, labels, delivery notes and parcel tracking.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::orders::Cutoff;

/// The `[shipping]` section of the configuration file.
///
/// ```toml
/// [shipping]
/// poll = true                                # Query polling; false = order receiver pushes only
/// order_statuses = ["Created", "Confirmed"]  # Norce statuses that qualify for shipping
/// since = "2026-12-01"                       # go-live: orders placed before are never booked
/// labels_dir = "/var/lib/relay/labels"       # default <state.dir>/labels
/// sender_quick_id = "1"                      # nShift address-book entry of the sender
/// test = false                               # nShift test shipments (default: true only against a loopback nShift, i.e. the sandbox)
/// default_parcel_weight_kg = 1.0             # weight when the lines give none; also the minimum
/// item_weight_kg = 0.5                       # one unit without an entry in part_weights_kg
/// max_parcel_weight_kg = 20.0                # more weight → more parcels
/// pickup_fallback_nearest = true             # unknown pickup point → the nearest agent
/// skip_delivery_methods = ["STORE_PICKUP"]   # never shipped through nShift: Skipped
/// track = true                               # read nShift's alerts feed for parcel status
///
/// [shipping.part_weights_kg]
/// "SKU-00001" = 1.2
///
/// [shipping.services.POSTNORD_HOME]          # Norce delivery method code
/// service_id = "P17"                         # nShift service code
/// addons = ["NOTSMS", "NOTEMAIL"]            # sent only when the receiver has a mobile / e-mail
/// partner_id = "PLAB"                        # carrier, for the sender's customer number
/// customer_no = "0123456789"                 # your customer number with that carrier
///
/// [shipping.services.POSTNORD_PICKUP]
/// service_id = "P19"
/// agent_type = "POSTNORD"                    # pickup-point network: the order's pickup point is the agent
/// return_service = "P24"                     # return product for `relay return` / the console
/// return_with_outbound = true                # return label booked with the outbound shipment
///
/// [shipping.services.BUDBEE_HOME.countries.NO]  # per receiver country (ISO alpha-2)
/// service_id = "P17"
/// ```
///
/// Built-in service mappings (used for a delivery method the file does not define):
/// `POSTNORD_HOME` → `P17`, `POSTNORD_PICKUP` → `P19` with agent type `POSTNORD`,
/// `BUDBEE_HOME` → `BUDBEEHD` (Norway: `P17`); all with addons `NOTSMS`, `NOTEMAIL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ShippingConfig {
    /// Poll Norce Query for qualifying orders (default true).
    pub poll: bool,
    /// Norce order statuses that qualify: `Created`, `Allocation`, `Confirmed`, `Delivered`,
    /// `Invoiced`, `Cancelled`, `PartlyDelivered` (default `Created`, `Confirmed`).
    pub order_statuses: Vec<String>,
    /// Go-live cutoff: Norce orders placed (created) before it are never booked in nShift,
    /// whatever the cursor says, however they arrive (the poll reads only orders created since;
    /// a push, an order event or a replay of an older order is recorded as skipped), and
    /// `relay cursor set shipping` refuses a time before it without `--force`. An RFC 3339 time
    /// (`2026-12-01T00:00:00+01:00`) or a date (`2026-12-01`: the start of that day in UTC).
    /// Default: none (every qualifying order is shipped).
    pub since: Option<Cutoff>,
    /// Where labels are written (default `<state.dir>/labels`), one file per label,
    /// `<order number>-<n>.pdf` (or `.zpl`).
    pub labels_dir: Option<PathBuf>,
    /// The sender's quickId in the nShift address book (default `1`).
    pub sender_quick_id: String,
    /// Book nShift test shipments (TEST on the label, no EDI to the carrier). Unset: true when
    /// the nShift base URL is a loopback address (the sandbox), else false.
    pub test: Option<bool>,
    /// Parcel weight when the order lines give none, and the minimum parcel weight (kg,
    /// default 1.0).
    pub default_parcel_weight_kg: f64,
    /// Weight of one unit whose part number is not in `part_weights_kg` (kg, default 0.5).
    pub item_weight_kg: f64,
    /// Weight of one unit per part number (kg).
    pub part_weights_kg: BTreeMap<String, f64>,
    /// Heaviest parcel; a heavier order is split into equal parcels (kg, default 20).
    pub max_parcel_weight_kg: f64,
    /// When the order's pickup point is not an agent nShift knows, use the nearest agent of
    /// the service's network to the receiver (default true). False: the order fails.
    pub pickup_fallback_nearest: bool,
    /// Delivery method codes never shipped through nShift; such orders are `Skipped`.
    pub skip_delivery_methods: Vec<String>,
    /// Read the nShift alerts feed to record parcel status (default true; needs the TrackBack
    /// licence and an account-level API key).
    pub track: bool,
    /// What a parcel status from the alerts feed does in Norce (see [`ParcelStatusWriteback`]).
    /// Default `update_delivery_note`.
    pub parcel_status: ParcelStatusWriteback,
    /// Norce order events (webhooks received by `relay serve`) that queue their order for
    /// shipping, by the event's `ClientOrderRef`; the order is then read and checked like a
    /// polled one. Default `OrderReceivedEvent`, `OrderConfirmedEvent`,
    /// `OrderPaymentReceivedEvent`. Other events are ignored.
    pub norce_events: Vec<String>,
    /// Cancel the nShift shipment of an order cancelled in Norce (`OrderCancelledEvent`): the
    /// booked shipment is cancelled once (`DELETE /shipments/{id}`) and the Brightpearl order
    /// gets `orders.cancelled_status_id`. Default `true`.
    pub cancel_shipments: bool,
    /// nShift shipment statuses in which a shipment is not yet handed over to the carrier, so it
    /// may still be cancelled. nShift documents no "handed over" flag; the last status the
    /// alerts feed recorded decides, and a shipment with no recorded status counts as
    /// `PRINTED`. A shipment in any other status is reported on the entity, not cancelled.
    /// Default `["PRINTED"]`.
    pub cancellable_statuses: Vec<String>,
    /// Norce delivery method code → nShift service (merged over the built-in mappings).
    pub services: BTreeMap<String, ServiceMapping>,
}

impl Default for ShippingConfig {
    fn default() -> Self {
        Self {
            poll: true,
            order_statuses: vec!["Created".to_owned(), "Confirmed".to_owned()],
            since: None,
            labels_dir: None,
            sender_quick_id: "1".to_owned(),
            test: None,
            default_parcel_weight_kg: 1.0,
            item_weight_kg: 0.5,
            part_weights_kg: BTreeMap::new(),
            max_parcel_weight_kg: 20.0,
            pickup_fallback_nearest: true,
            skip_delivery_methods: Vec::new(),
            track: true,
            parcel_status: ParcelStatusWriteback::default(),
            norce_events: [
                "OrderReceivedEvent",
                "OrderConfirmedEvent",
                "OrderPaymentReceivedEvent",
            ]
            .map(str::to_owned)
            .to_vec(),
            cancel_shipments: true,
            cancellable_statuses: vec!["PRINTED".to_owned()],
            services: BTreeMap::new(),
        }
    }
}

/// `shipping.parcel_status`: how nShift parcel events reach Norce.
///
/// Norce documents no call that changes one parcel of an existing delivery note; the parcel
/// `StatusId` (4 Delivered, 6 Canceled, 11 Ready for pickup) travels on `CreateDeliveryNote`.
/// Open question (see the Norce spec): whether Norce replaces a note sent again with the same
/// `NoteNo` (as the sandbox does) or refuses it. Switch to `record_only` if your tenant refuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ParcelStatusWriteback {
    /// Send the delivery note again (same `NoteNo`, same lines) with the parcels' new statuses.
    #[default]
    UpdateDeliveryNote,
    /// Record the status in relay's state only (`relay status`, the entity payload).
    RecordOnly,
}

/// `[shipping.services.<delivery method code>]`: the nShift service for a Norce delivery method.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceMapping {
    /// nShift service code, e.g. `P19` (required).
    pub service_id: String,
    /// Addon codes, e.g. `NOTSMS` (SMS notice, sent with the receiver's mobile), `NOTEMAIL`
    /// (e-mail notice, with the receiver's e-mail); others are sent as given.
    pub addons: Vec<String>,
    /// Carrier id (e.g. `PLAB`), for `customer_no`.
    pub partner_id: Option<String>,
    /// The sender's customer number with the carrier (needs `partner_id`).
    pub customer_no: Option<String>,
    /// Pickup-point network (`/addresses/agents` type, e.g. `POSTNORD`) for pickup services:
    /// the order's pickup point becomes the shipment's agent.
    pub agent_type: Option<String>,
    /// Sender quickId for this service (default `shipping.sender_quick_id`).
    pub sender_quick_id: Option<String>,
    /// nShift service code of the return product (e.g. `P24`) for return labels booked on
    /// their own: `relay return ORDER` and the console's **Book return label** (a return-only
    /// shipment: `service.returnShipment` true, `normalShipment` false). Without it those need
    /// `--service`. The label goes beside the outbound ones as `<order>-return-<n>.pdf`.
    pub return_service: Option<String>,
    /// Book the return label with the outbound shipment (default false): the booking asks for
    /// the outbound service's return option (`service.normalShipment` and `returnShipment`
    /// both true), nShift prints two shipments, and the return one is recorded on the entity
    /// and saved as `<order>-return-<n>.pdf`. The outbound service must offer a return.
    pub return_with_outbound: bool,
    /// Overrides per receiver country (ISO alpha-2): unset fields keep the values above.
    pub countries: BTreeMap<String, ServiceOverride>,
}

/// `[shipping.services.<code>.countries.<country>]`: a per-country override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceOverride {
    /// nShift service code.
    pub service_id: Option<String>,
    /// Addon codes.
    pub addons: Option<Vec<String>>,
    /// Carrier id.
    pub partner_id: Option<String>,
    /// Customer number with the carrier.
    pub customer_no: Option<String>,
    /// Pickup-point network; an empty string turns the agent off.
    pub agent_type: Option<String>,
}

/// Norce order status names with their documented Query `statusId`.
pub(crate) const ORDER_STATUSES: &[(&str, i32)] = &[
    ("Created", 0),
    ("Allocation", 1),
    ("Confirmed", 2),
    ("Delivered", 4),
    ("Invoiced", 5),
    ("Cancelled", 6),
    ("PartlyDelivered", 8),
];

fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.into(),
        reason: reason.into(),
    }
}

fn check_weight(setting: &str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(invalid(
            setting,
            format!("must be a weight in kg above 0, got {value}"),
        ))
    }
}

impl ShippingConfig {
    /// Where the labels are saved: `labels_dir`, else `labels` in the state's data folder.
    pub fn labels_dir_in(&self, state_dir: &std::path::Path) -> PathBuf {
        self.labels_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("labels"))
    }

    /// The qualifying statuses as (Norce name, Query `statusId`), or an error naming
    /// `shipping.order_statuses` and the statuses there are.
    pub fn statuses(&self) -> Result<Vec<(String, i32)>, ConfigError> {
        let mut statuses = Vec::new();
        for name in &self.order_statuses {
            let found = ORDER_STATUSES
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name.trim()));
            match found {
                Some((known, id)) => statuses.push(((*known).to_owned(), *id)),
                None => {
                    let known: Vec<&str> = ORDER_STATUSES.iter().map(|(n, _)| *n).collect();
                    return Err(invalid(
                        "shipping.order_statuses",
                        format!(
                            "unknown Norce order status `{name}`; use some of {}",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        if statuses.is_empty() {
            return Err(invalid(
                "shipping.order_statuses",
                "list at least one Norce order status, e.g. [\"Confirmed\"]",
            ));
        }
        Ok(statuses)
    }

    /// Checks what serde cannot; every error names the key and what to set.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.statuses()?;
        if self.cancel_shipments
            && self
                .cancellable_statuses
                .iter()
                .any(|s| s.trim().is_empty() || s.trim() != s.to_ascii_uppercase())
        {
            return Err(ConfigError::Invalid {
                setting: "shipping.cancellable_statuses".to_owned(),
                reason: "nShift statuses are upper case without spaces (e.g. \"PRINTED\")"
                    .to_owned(),
            });
        }
        check_weight(
            "shipping.default_parcel_weight_kg",
            self.default_parcel_weight_kg,
        )?;
        check_weight("shipping.item_weight_kg", self.item_weight_kg)?;
        check_weight("shipping.max_parcel_weight_kg", self.max_parcel_weight_kg)?;
        for (part, weight) in &self.part_weights_kg {
            check_weight(&format!("shipping.part_weights_kg.\"{part}\""), *weight)?;
        }
        if self.sender_quick_id.trim().is_empty() {
            return Err(invalid(
                "shipping.sender_quick_id",
                "set the nShift address-book quickId of the sender, e.g. \"1\"",
            ));
        }
        for (code, mapping) in &self.services {
            let key = format!("shipping.services.{code}");
            if mapping.service_id.trim().is_empty() {
                return Err(invalid(
                    format!("{key}.service_id"),
                    "set the nShift service code, e.g. \"P19\"",
                ));
            }
            if let Some(service) = &mapping.return_service
                && (service.trim().is_empty() || service.trim().contains(char::is_whitespace))
            {
                return Err(invalid(
                    format!("{key}.return_service"),
                    "set the nShift service code of the return product (e.g. \"P24\"), one word, or leave the key out",
                ));
            }
            if mapping.customer_no.is_some() && mapping.partner_id.is_none() {
                return Err(invalid(
                    format!("{key}.partner_id"),
                    "set the carrier id (e.g. \"PLAB\") that `customer_no` belongs to",
                ));
            }
            for country in mapping.countries.keys() {
                if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(invalid(
                        format!("{key}.countries.{country}"),
                        "use an ISO 3166 alpha-2 country code, e.g. NO",
                    ));
                }
            }
        }
        Ok(())
    }
}
