//! Norce → nShift shipping: qualifying Norce orders become nShift shipments, booked exactly
//! once; the labels are saved; the parcel numbers go back to Norce as a delivery note and the
//! order becomes Delivered; nShift's status events then update the recorded parcel status.
//!
//! # Pick-up
//!
//! * **Push**: the order receiver stores Norce's `OrderRequest` in the inbox (source
//!   `norce-order`); [`ingest`] turns it into a `Pending` entity without calling any platform.
//!   The shipment is built from the pushed data (what the shop sent).
//! * **Poll** (`[shipping] poll = true`, the default): Query 3.0 orders in the configured
//!   statuses, `updated ge <cursor − 5 min>` (the overlap catches late commits), oldest
//!   first. The cursor `shipping` is the latest `updated` seen (RFC 3339);
//!   `relay cursor set shipping <time>` moves it back to backfill.
//!   With no cursor every qualifying order is picked up. The shipment is built from `GetOrder`.
//!
//! Both key the entity by the Norce basket id (`ClientOrderRef` = Query `quotationId`), so an
//! order that is both pushed and polled is one entity. nShift's `orderNo` (the `book_once` key),
//! the label file names and the delivery note use the Norce order number (`NC-100001`).
//!
//! # Steps (the entity's `step` after each one)
//!
//! | step | platform call | replay safety |
//! | --- | --- | --- |
//! | `resolved` | Query (pushed orders: by `quotationId`), `GetOrder`: status check, order number, data | read only |
//! | `booked` | nShift `book_once(order number, shipment)` | `book_once` searches stored shipments by `orderNo` first: at most one printed shipment per order |
//! | `labels_saved` | labels from the booking, else `GET /shipments/{id}/pdfs` | files are written to a temporary name and renamed, so a crash leaves either no file or the whole file |
//! | `note_created` | `GetOrder`, then `CreateDeliveryNote` only if no note of the order has this note number or these parcel numbers | Norce's CreateDeliveryNote is not idempotent: the check runs before every attempt |
//! | `status_sent` (Done) | `SendOrderStatus` Delivered (PartlyDelivered when order lines were left off the note) | setting a status twice is harmless |
//!
//! Every step is recorded after its platform call, so a crash or a dropped future at any point
//! resumes at the first step not recorded, and that step checks the target first. Finished
//! entities (Done, Skipped) are never processed again, whatever the cursor says.
//!
//! # Failures
//!
//! * Unmapped delivery method: **failed permanently** (dead letter) with the configuration key
//!   to add, so that after adding the mapping `relay replay` ships it. Delivery methods that are
//!   never shipped through nShift (store pickup, digital goods) belong in
//!   `skip_delivery_methods`: those orders are `Skipped`.
//! * nShift validation (422, or a stored shipment that is INVALID/WARNED): permanent, with
//!   nShift's messages. The unprinted stored shipment is deleted and the entity goes back to
//!   re-reading the order from Norce, so fixing the order in Norce and replaying books it.
//! * Everything transient (5xx, timeouts, lost answers) is retried on the next pass and
//!   dead-lettered after `run.max_attempts`.
//! * Wrong credentials or a missing licence stop the flow (`Err`): no item could succeed.
//!
//! # Tracking
//!
//! The nShift alerts feed (cursor `shipping-alerts`, nShift's `fetchId`) is read after the
//! items. Each `STATUS_TRANSITION_<STATUS>` event updates the recorded parcels of the order:
//! the nShift status and the Norce parcel status it maps to (DELIVERED → 4 Delivered,
//! DELIVERING, i.e. waiting at the pickup point → 11 Ready for pickup, CANCELLED → 6 Canceled;
//! the in-transit statuses have no Norce parcel status). Norce's documented API has no call that
//! updates the parcel status of an existing delivery note, so the status is recorded in the
//! entity's payload (see `relay status`) and, with `shipping.parcel_status =
//! "update_delivery_note"` (the default), a changed Norce parcel status sends the delivery note
//! again with the same `NoteNo` (see [`ParcelStatusWriteback`]).

mod labels;
mod order;
mod shipment;
mod track;

pub(crate) use order::country_alpha2;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use futures::TryStreamExt as _;
use norce_client::models::connect::{
    ConnectOrderStatus, DeliveryAddress, DeliveryNote, DeliveryNoteItem, DeliveryNotePackage,
    SendOrderStatusRequest,
};
use norce_client::models::event::Event;
use norce_client::models::events::OrderRequest;
use norce_client::models::query::QueryOrdersQuery;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use self::order::{BookedShipment, Origin, ShippingItem};
use super::{
    FlowContext, FlowError, FlowReport, Ingested, Outcome, cursor_time, elapsed_ms, fail_item,
    for_each_pending,
};
use crate::state::{EntityRecord, EntityUpdate, InboxItem, Status};

/// The inbox sources this flow takes (see [`accepts`]).
pub use super::{SOURCE_NORCE_EVENT, SOURCE_NORCE_ORDER};

/// The flow's name: its entities, its cursor, its dead letters.
pub const FLOW: &str = "shipping";
/// The cursor of the nShift alerts feed (nShift's `fetchId`).
pub const ALERTS_CURSOR: &str = "shipping-alerts";
/// Minutes the poll reaches back before its cursor, for orders committed late.
const CURSOR_OVERLAP_MINUTES: i64 = 5;

/// Step names recorded in the entity.
mod steps {
    /// Order read from Norce, mapping checked.
    pub const RESOLVED: &str = "resolved";
    /// Printed in nShift; the shipment ids and parcel numbers are in the payload.
    pub const BOOKED: &str = "booked";
    /// Labels written to the labels folder.
    pub const LABELS_SAVED: &str = "labels_saved";
    /// The delivery note is on the Norce order.
    pub const NOTE_CREATED: &str = "note_created";
    /// The Norce order status is set; the entity is Done.
    pub const STATUS_SENT: &str = "status_sent";
    /// A parcel status changed after the note was written: the note is sent again, then the
    /// entity is Done again.
    pub const PARCELS_CHANGED: &str = "parcels_changed";
    /// Back to the start: re-read the order from Norce (after a permanent booking failure, so
    /// a replay uses the corrected order).
    pub const REREAD: &str = "reread";
}

/// The `[shipping]` section of the configuration file.
///
/// ```toml
/// [shipping]
/// poll = true                                # Query polling; false = order receiver pushes only
/// order_statuses = ["Created", "Confirmed"]  # Norce statuses that qualify for shipping
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
///
/// [shipping.services.BUDBEE_HOME.countries.NO]  # per receiver country (ISO alpha-2)
/// service_id = "P17"
/// ```
///
/// Built-in service mappings (used for a delivery method the file does not define):
/// `POSTNORD_HOME` → `P17`, `POSTNORD_PICKUP` → `P19` with agent type `POSTNORD`,
/// `BUDBEE_HOME` → `BUDBEEHD` (Norway: `P17`); all with addons `NOTSMS`, `NOTEMAIL`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShippingConfig {
    /// Poll Norce Query for qualifying orders (default true).
    pub poll: bool,
    /// Norce order statuses that qualify: `Created`, `Allocation`, `Confirmed`, `Delivered`,
    /// `Invoiced`, `Cancelled`, `PartlyDelivered` (default `Created`, `Confirmed`).
    pub order_statuses: Vec<String>,
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
    /// Norce delivery method code → nShift service (merged over the built-in mappings).
    pub services: BTreeMap<String, ServiceMapping>,
}

impl Default for ShippingConfig {
    fn default() -> Self {
        Self {
            poll: true,
            order_statuses: vec!["Created".to_owned(), "Confirmed".to_owned()],
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Overrides per receiver country (ISO alpha-2): unset fields keep the values above.
    pub countries: BTreeMap<String, ServiceOverride>,
}

/// `[shipping.services.<code>.countries.<country>]`: a per-country override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
const ORDER_STATUSES: &[(&str, i32)] = &[
    ("Created", 0),
    ("Allocation", 1),
    ("Confirmed", 2),
    ("Delivered", 4),
    ("Invoiced", 5),
    ("Cancelled", 6),
    ("PartlyDelivered", 8),
];

/// Statuses after which an order is never shipped unless configured to qualify.
const FINAL_STATUSES: &[&str] = &["Delivered", "PartlyDelivered", "Invoiced", "Cancelled"];

/// The pickup-point networks (`agent_type`) of the delivery-method mappings in force (the
/// configured ones over the built-in), for `relay verify --deep`'s agent search.
pub fn agent_types(config: &ShippingConfig) -> Vec<String> {
    let mut services = builtin_services();
    services.extend(config.services.clone());
    let mut types: Vec<String> = services
        .values()
        .filter_map(|m| m.agent_type.clone())
        .filter(|a| !a.trim().is_empty())
        .collect();
    types.dedup();
    types
}

fn builtin_services() -> BTreeMap<String, ServiceMapping> {
    let notices = || vec!["NOTSMS".to_owned(), "NOTEMAIL".to_owned()];
    let mut services = BTreeMap::new();
    services.insert(
        "POSTNORD_HOME".to_owned(),
        ServiceMapping {
            service_id: "P17".into(),
            addons: notices(),
            partner_id: Some("PLAB".into()),
            ..Default::default()
        },
    );
    services.insert(
        "POSTNORD_PICKUP".to_owned(),
        ServiceMapping {
            service_id: "P19".into(),
            addons: notices(),
            partner_id: Some("PLAB".into()),
            agent_type: Some("POSTNORD".into()),
            ..Default::default()
        },
    );
    let mut budbee_countries = BTreeMap::new();
    // Budbee does not deliver to Norway (nor does the sandbox's BUDBEEHD): PostNord home there.
    budbee_countries.insert(
        "NO".to_owned(),
        ServiceOverride {
            service_id: Some("P17".into()),
            partner_id: Some("PLAB".into()),
            ..Default::default()
        },
    );
    services.insert(
        "BUDBEE_HOME".to_owned(),
        ServiceMapping {
            service_id: "BUDBEEHD".into(),
            addons: notices(),
            partner_id: Some("BUDBEE".into()),
            countries: budbee_countries,
            ..Default::default()
        },
    );
    services
}

/// The service chosen for one order (mapping plus country override).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChosenService {
    pub service_id: String,
    pub addons: Vec<String>,
    pub partner_id: Option<String>,
    pub customer_no: Option<String>,
    pub agent_type: Option<String>,
    pub sender_quick_id: String,
}

/// The configuration checked and completed, as a run uses it.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub poll: bool,
    /// (name, statusId) of the qualifying statuses.
    pub statuses: Vec<(String, i32)>,
    pub labels_dir: PathBuf,
    pub test: bool,
    pub default_parcel_weight_kg: f64,
    pub item_weight_kg: f64,
    pub part_weights_kg: BTreeMap<String, f64>,
    pub max_parcel_weight_kg: f64,
    pub pickup_fallback_nearest: bool,
    pub skip_delivery_methods: Vec<String>,
    pub track: bool,
    pub parcel_status: ParcelStatusWriteback,
    pub sender_quick_id: String,
    pub services: BTreeMap<String, ServiceMapping>,
    pub concurrency: usize,
}

fn config_error(setting: impl Into<String>, reason: impl Into<String>) -> FlowError {
    FlowError::Config {
        setting: setting.into(),
        reason: reason.into(),
    }
}

fn check_weight(setting: &str, value: f64) -> Result<(), FlowError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(config_error(
            setting,
            format!("must be a weight in kg above 0, got {value}"),
        ))
    }
}

impl Settings {
    /// Checks `[shipping]`; every error names the key and what to set.
    pub(crate) fn new(ctx: &FlowContext, nshift_base_url: Option<&str>) -> Result<Self, FlowError> {
        let config = &ctx.config.shipping;
        let mut statuses = Vec::new();
        for name in &config.order_statuses {
            let found = ORDER_STATUSES
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name.trim()));
            match found {
                Some((known, id)) => statuses.push(((*known).to_owned(), *id)),
                None => {
                    let known: Vec<&str> = ORDER_STATUSES.iter().map(|(n, _)| *n).collect();
                    return Err(config_error(
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
            return Err(config_error(
                "shipping.order_statuses",
                "list at least one Norce order status, e.g. [\"Confirmed\"]",
            ));
        }
        check_weight(
            "shipping.default_parcel_weight_kg",
            config.default_parcel_weight_kg,
        )?;
        check_weight("shipping.item_weight_kg", config.item_weight_kg)?;
        check_weight("shipping.max_parcel_weight_kg", config.max_parcel_weight_kg)?;
        for (part, weight) in &config.part_weights_kg {
            check_weight(&format!("shipping.part_weights_kg.\"{part}\""), *weight)?;
        }
        if config.sender_quick_id.trim().is_empty() {
            return Err(config_error(
                "shipping.sender_quick_id",
                "set the nShift address-book quickId of the sender, e.g. \"1\"",
            ));
        }
        let mut services = builtin_services();
        for (code, mapping) in &config.services {
            let key = format!("shipping.services.{code}");
            if mapping.service_id.trim().is_empty() {
                return Err(config_error(
                    format!("{key}.service_id"),
                    "set the nShift service code, e.g. \"P19\"",
                ));
            }
            if mapping.customer_no.is_some() && mapping.partner_id.is_none() {
                return Err(config_error(
                    format!("{key}.partner_id"),
                    "set the carrier id (e.g. \"PLAB\") that `customer_no` belongs to",
                ));
            }
            for country in mapping.countries.keys() {
                if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(config_error(
                        format!("{key}.countries.{country}"),
                        "use an ISO 3166 alpha-2 country code, e.g. NO",
                    ));
                }
            }
            services.insert(code.clone(), mapping.clone());
        }
        let labels_dir = config
            .labels_dir
            .clone()
            .unwrap_or_else(|| ctx.config.state.dir.join("labels"));
        let test = config
            .test
            .unwrap_or_else(|| nshift_base_url.is_some_and(is_loopback_url));
        Ok(Self {
            poll: config.poll,
            statuses,
            labels_dir,
            test,
            default_parcel_weight_kg: config.default_parcel_weight_kg,
            item_weight_kg: config.item_weight_kg,
            part_weights_kg: config.part_weights_kg.clone(),
            max_parcel_weight_kg: config.max_parcel_weight_kg,
            pickup_fallback_nearest: config.pickup_fallback_nearest,
            skip_delivery_methods: config.skip_delivery_methods.clone(),
            track: config.track,
            parcel_status: config.parcel_status,
            sender_quick_id: config.sender_quick_id.trim().to_owned(),
            services,
            concurrency: ctx.config.run.concurrency.max(1),
        })
    }

    /// Whether a Norce status text qualifies.
    fn qualifies(&self, status: &str) -> bool {
        self.statuses
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(status.trim()))
    }

    fn skips(&self, delivery_method: &str) -> bool {
        self.skip_delivery_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(delivery_method.trim()))
    }

    /// The service for a delivery method and receiver country, or `None` when unmapped.
    pub(crate) fn service_for(
        &self,
        delivery_method: &str,
        country: &str,
    ) -> Option<ChosenService> {
        let mapping = self.services.get(delivery_method.trim()).or_else(|| {
            self.services
                .iter()
                .find(|(code, _)| code.eq_ignore_ascii_case(delivery_method.trim()))
                .map(|(_, m)| m)
        })?;
        let mut chosen = ChosenService {
            service_id: mapping.service_id.trim().to_owned(),
            addons: mapping.addons.clone(),
            partner_id: mapping.partner_id.clone(),
            customer_no: mapping.customer_no.clone(),
            agent_type: mapping.agent_type.clone().filter(|a| !a.trim().is_empty()),
            sender_quick_id: mapping
                .sender_quick_id
                .clone()
                .unwrap_or_else(|| self.sender_quick_id.clone()),
        };
        if let Some(over) = mapping
            .countries
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(country))
            .map(|(_, o)| o)
        {
            if let Some(id) = &over.service_id {
                chosen.service_id = id.trim().to_owned();
            }
            if let Some(addons) = &over.addons {
                chosen.addons = addons.clone();
            }
            if over.partner_id.is_some() {
                chosen.partner_id = over.partner_id.clone();
            }
            if over.customer_no.is_some() {
                chosen.customer_no = over.customer_no.clone();
            }
            if let Some(agent) = &over.agent_type {
                chosen.agent_type = Some(agent.clone()).filter(|a| !a.trim().is_empty());
            }
        }
        Some(chosen)
    }
}

/// Whether a URL's host is 127.0.0.1, ::1 or localhost.
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host_port = rest.split(['/', '?']).next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether this flow takes inbox items from `source` (Norce's order receiver and order events).
pub fn accepts(source: &str) -> bool {
    source == SOURCE_NORCE_ORDER || source == SOURCE_NORCE_EVENT
}

/// Turns an inbox item into a `Pending` entity, without calling any platform: a Norce order push
/// (`OrderRequest` JSON) with the order as the shop sent it, or a Norce order event (one of
/// `shipping.norce_events`) with the order's ids only (the order is read when processed). A
/// body that cannot be read is filed as a dead letter (entity `inbox-<id>`) so it can be
/// inspected; an order already being processed or finished is left as it is (a later push of a
/// shipped order never ships it again).
pub async fn ingest(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    let span =
        tracing::info_span!("shipping.step", flow = FLOW, step = "ingest", source_id = %item.key);
    let _guard = span.enter();
    match item.source.as_str() {
        SOURCE_NORCE_ORDER => ingest_push(ctx, item),
        SOURCE_NORCE_EVENT => ingest_event(ctx, item),
        _ => Ok(Ingested::Nothing),
    }
}

fn ingest_push(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    let request: OrderRequest = match serde_json::from_str(&item.body) {
        Ok(request) => request,
        Err(e) => {
            return file_bad_push(
                ctx,
                item,
                &format!("the order push is not a Norce OrderRequest: {e}"),
            );
        }
    };
    let source_id = request.client_order_ref.trim().to_owned();
    if source_id.is_empty() {
        return file_bad_push(ctx, item, "the order push has no ClientOrderRef");
    }
    let pushed = ShippingItem::from_push(&request);
    let payload = pushed.to_json()?;
    let existing = ctx.store.get(FLOW, &source_id)?;
    match existing {
        None => {
            ctx.store.upsert_pending(FLOW, &source_id, Some(&payload))?;
            tracing::info!("order push queued for shipping");
            Ok(Ingested::Work)
        }
        // Polled but not started yet: the pushed data is what the shop sent, use it.
        Some(record) if record.status == Status::Pending && record.step.is_none() => {
            let mut merged = pushed;
            if let Some(Ok(polled)) = record.payload.as_deref().map(ShippingItem::from_json) {
                merged.order_id = merged.order_id.or(polled.order_id);
            }
            ctx.store.update(
                FLOW,
                &source_id,
                &EntityUpdate {
                    payload: Some(merged.to_json()?),
                    ..Default::default()
                },
            )?;
            Ok(Ingested::Work)
        }
        Some(record) => {
            tracing::debug!(status = record.status.as_str(), step = ?record.step, "order already known; push ignored");
            Ok(Ingested::Nothing)
        }
    }
}

fn ingest_event(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    let event_type = item.key.split(':').next().unwrap_or_default();
    if !ctx
        .config
        .shipping
        .norce_events
        .iter()
        .any(|e| e == event_type)
    {
        tracing::debug!(
            event_type,
            "Norce event not in shipping.norce_events; ignored"
        );
        return Ok(Ingested::Nothing);
    }
    let event = match Event::decode(event_type, item.body.as_bytes()) {
        Ok(event) => event,
        Err(e) => {
            let reason = format!(
                "the Norce {event_type} does not have its documented shape ({e}); remove `{event_type}` from shipping.norce_events if it is not an order event"
            );
            return file_bad_push(ctx, item, &reason);
        }
    };
    // Every order event names the basket; OrderReceivedEvent names nothing else, so the order
    // id is looked up by it when the item is processed.
    let Some(order) = event.order_ref() else {
        let reason = format!(
            "the Norce {event_type} has no ClientOrderRef; remove `{event_type}` from shipping.norce_events if it is not an order event"
        );
        return file_bad_push(ctx, item, &reason);
    };
    let source_id = order.client_order_ref.as_str();
    let queued = ShippingItem::polled(source_id, order.order_id, None);
    if ctx.store.get(FLOW, source_id)?.is_some() {
        tracing::debug!(event_type, "order already known; event ignored");
        return Ok(Ingested::Nothing);
    }
    ctx.store
        .upsert_pending(FLOW, source_id, Some(&queued.to_json()?))?;
    tracing::info!(event_type, order_id = ?order.order_id, "order event queued the order for shipping");
    Ok(Ingested::Work)
}

fn file_bad_push(ctx: &FlowContext, item: &InboxItem, reason: &str) -> Result<Ingested, FlowError> {
    let source_id = format!("inbox-{}", item.id);
    ctx.store
        .upsert_pending(FLOW, &source_id, Some(&item.body))?;
    ctx.store.dead_letter(FLOW, &source_id, reason)?;
    tracing::warn!(reason, "order push dead-lettered");
    Ok(Ingested::Nothing)
}

/// Why an item stopped.
enum ItemError {
    /// The whole flow must stop (credentials, licence, state store, label folder).
    Flow(FlowError),
    /// This item failed; `permanent` sends it to the dead letters at once.
    Item {
        message: String,
        permanent: bool,
        reread: bool,
    },
}

impl From<FlowError> for ItemError {
    fn from(e: FlowError) -> Self {
        Self::Flow(e)
    }
}

impl From<crate::state::StateError> for ItemError {
    fn from(e: crate::state::StateError) -> Self {
        Self::Flow(e.into())
    }
}

fn transient(message: impl Into<String>) -> ItemError {
    ItemError::Item {
        message: message.into(),
        permanent: false,
        reread: false,
    }
}

fn permanent(message: impl Into<String>) -> ItemError {
    ItemError::Item {
        message: message.into(),
        permanent: true,
        reread: false,
    }
}

fn norce_error(what: &str, e: norce_client::Error) -> ItemError {
    match e {
        norce_client::Error::Settings(_)
        | norce_client::Error::Unauthorized { .. }
        | norce_client::Error::Forbidden { .. } => ItemError::Flow(FlowError::Norce(e)),
        norce_client::Error::Token { .. } if !e.is_transient() => {
            ItemError::Flow(FlowError::Norce(e))
        }
        e if e.is_transient() => transient(format!("{what}: {e} (retried on the next pass)")),
        e => permanent(format!("{what}: {e}")),
    }
}

fn nshift_error(what: &str, e: nshift_client::Error) -> ItemError {
    use nshift_client::Error as E;
    match e {
        E::Config(_) | E::Unauthorized { .. } | E::Forbidden { .. } => {
            ItemError::Flow(FlowError::Nshift(e))
        }
        E::Validation { .. }
        | E::NotPrintable { .. }
        | E::BadRequest { .. }
        | E::InvalidInput(_) => ItemError::Item {
            message: format!("{what}: {e}"),
            permanent: true,
            reread: true,
        },
        e => transient(format!("{what}: {e} (retried on the next pass)")),
    }
}

/// One pass: poll, process every pending entity, read the alerts feed.
pub async fn run(ctx: &FlowContext) -> Result<FlowReport, FlowError> {
    let started = Instant::now();
    let norce = ctx.norce()?;
    let nshift = ctx.nshift()?;
    let settings = Settings::new(ctx, Some(nshift.base_url()))?;
    let mut report = FlowReport {
        flow: FLOW.to_owned(),
        ..FlowReport::default()
    };

    if settings.poll {
        let already_done = poll(ctx, norce, &settings)
            .instrument(tracing::info_span!(
                "shipping.step",
                flow = FLOW,
                step = "poll",
                source_id = tracing::field::Empty
            ))
            .await?;
        report.seen += already_done;
        report.done += already_done;
    }

    // Alerts first: an order whose parcel status changed is set back to pending and its
    // delivery note is sent again in this same pass.
    if settings.track {
        let span = tracing::info_span!(
            "shipping.step",
            flow = FLOW,
            step = "track",
            source_id = tracing::field::Empty
        );
        match track::read_alerts(ctx, nshift).instrument(span).await {
            Ok(updated) => tracing::debug!(updated, "parcel statuses recorded"),
            Err(e) => {
                tracing::warn!(error = %e, "nShift alerts not read this pass; parcel status unchanged")
            }
        }
    }
    let tally = |outcome| report.add(outcome);
    for_each_pending(
        ctx,
        FLOW,
        settings.concurrency,
        |record| Box::pin(process(ctx, &settings, record)),
        tally,
    )
    .await?;

    report.duration_ms = elapsed_ms(started);
    Ok(report)
}

/// Polls Query for qualifying orders after the cursor and queues them. Returns how many of
/// them were already finished (not touched again).
async fn poll(
    ctx: &FlowContext,
    norce: &norce_client::NorceClient,
    settings: &Settings,
) -> Result<u64, FlowError> {
    let since = cursor_time(ctx, FLOW)?;
    let statuses = settings
        .statuses
        .iter()
        .map(|(_, id)| format!("statusId eq {id}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let mut filter = format!("({statuses})");
    if let Some(since) = since {
        // `ge` and a few minutes of overlap: an order committed in Norce with an `updated` a
        // little older than the newest one already seen is not lost. Seeing an order again is
        // harmless: its entity exists, and a finished one is never touched again.
        let from = since - chrono::Duration::minutes(CURSOR_OVERLAP_MINUTES);
        filter.push_str(&format!(
            " and updated ge {}",
            from.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ));
    }
    let query = QueryOrdersQuery {
        filter: Some(filter),
        orderby: Some("updated".to_owned()),
        select: Some("id,orderNo,quotationId,statusId,updated".to_owned()),
        ..QueryOrdersQuery::default()
    };
    let mut pages = norce.query_orders(query);
    let mut latest = since;
    let mut already_done = 0;
    while let Some(page) = pages.try_next().await? {
        for order in page.value {
            let Some(basket) = order.quotation_id else {
                tracing::warn!(
                    order_id = order.id,
                    "Norce order without quotationId (basket id) skipped by the poll"
                );
                continue;
            };
            let source_id = basket.to_string();
            let record = ctx.store.upsert_pending(
                FLOW,
                &source_id,
                Some(
                    &ShippingItem::polled(&source_id, Some(order.id), Some(order.order_no.clone()))
                        .to_json()?,
                ),
            )?;
            if matches!(record.status, Status::Done | Status::Skipped) {
                already_done += 1;
            }
            if let Some(updated) = order.updated.as_ref().map(|t| t.to_utc()) {
                latest = Some(latest.map_or(updated, |l| l.max(updated)));
            }
        }
    }
    if let Some(latest) = latest
        && Some(latest) != since
    {
        ctx.store.set_cursor(
            FLOW,
            &latest.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        )?;
    }
    Ok(already_done)
}

/// Processes one entity from its recorded step, turning item failures into failed attempts.
async fn process(
    ctx: &FlowContext,
    settings: &Settings,
    record: EntityRecord,
) -> Result<Outcome, FlowError> {
    let source_id = record.source_id.clone();
    let mut outcome = Outcome::default();
    match advance(ctx, settings, record, &mut outcome).await {
        Ok(()) => Ok(outcome),
        Err(ItemError::Flow(e)) => Err(e),
        Err(ItemError::Item {
            message,
            permanent,
            reread,
        }) => {
            let dead = fail_item(ctx, FLOW, &source_id, &message, permanent)?;
            if dead && reread {
                // The dead letter keeps the data that failed; the entity itself goes back to
                // re-reading the order, so a replay after fixing the order in Norce uses the fix.
                let current = ctx.store.get(FLOW, &source_id)?;
                if let Some(Ok(mut item)) = current
                    .as_ref()
                    .and_then(|r| r.payload.as_deref())
                    .map(ShippingItem::from_json)
                {
                    item.order = None;
                    item.origin = Origin::Poll;
                    ctx.store.update(
                        FLOW,
                        &source_id,
                        &EntityUpdate {
                            step: Some(steps::REREAD.to_owned()),
                            payload: Some(item.to_json()?),
                            ..Default::default()
                        },
                    )?;
                }
            }
            outcome.failed = true;
            Ok(outcome)
        }
    }
}

/// Records a finished step with the item's payload.
fn record_step(
    ctx: &FlowContext,
    item: &ShippingItem,
    step: &str,
    target_id: Option<String>,
    status: Option<Status>,
) -> Result<(), FlowError> {
    ctx.store.update(
        FLOW,
        &item.client_order_ref,
        &EntityUpdate {
            status,
            step: Some(step.to_owned()),
            target_id,
            payload: Some(item.to_json()?),
            clear_error: status.is_some(),
        },
    )?;
    Ok(())
}

async fn advance(
    ctx: &FlowContext,
    settings: &Settings,
    record: EntityRecord,
    outcome: &mut Outcome,
) -> Result<(), ItemError> {
    let norce = ctx.norce()?;
    let nshift = ctx.nshift()?;
    let source_id = record.source_id.clone();
    let mut item = match record.payload.as_deref().map(ShippingItem::from_json) {
        Some(Ok(item)) => item,
        Some(Err(e)) => {
            return Err(permanent(format!(
                "the recorded payload cannot be read ({e}); fix or remove the entity"
            )));
        }
        None => ShippingItem::polled(&source_id, None, None),
    };
    item.client_order_ref.clone_from(&source_id);
    let mut step = record.step.clone().filter(|s| s != steps::REREAD);
    let mut fresh_labels = None;

    if step.is_none() {
        let span = tracing::info_span!("shipping.step", flow = FLOW, step = "resolve", source_id = %source_id);
        match resolve(norce, settings, &mut item).instrument(span).await? {
            Resolution::Ready => {
                // nShift alerts name the order by its number: index it for the tracking step.
                if let Some(order_no) = &item.order_no {
                    ctx.store
                        .set_alias(FLOW, order_no, &source_id)
                        .map_err(FlowError::from)?;
                }
                record_step(ctx, &item, steps::RESOLVED, None, None)?;
                step = Some(steps::RESOLVED.to_owned());
            }
            Resolution::Skip(reason) => {
                tracing::info!(source_id = %source_id, reason = %reason, "order skipped");
                item.skipped = Some(reason);
                record_step(ctx, &item, steps::RESOLVED, None, Some(Status::Skipped))?;
                outcome.skipped = true;
                return Ok(());
            }
            Resolution::Wait(reason) => {
                tracing::info!(source_id = %source_id, reason = %reason, "order not ready for shipping yet");
                return Ok(());
            }
        }
    }

    if step.as_deref() == Some(steps::RESOLVED) {
        let span = tracing::info_span!("shipping.step", flow = FLOW, step = "book", source_id = %source_id);
        let booking = shipment::book(nshift, settings, &mut item)
            .instrument(span)
            .await?;
        outcome.booked = booking.printed_now;
        fresh_labels = Some(booking.labels);
        let target = item
            .shipment
            .as_ref()
            .and_then(|s| s.shipment_ids.first().cloned());
        record_step(ctx, &item, steps::BOOKED, target, None)?;
        step = Some(steps::BOOKED.to_owned());
    }

    if step.as_deref() == Some(steps::BOOKED) {
        let span = tracing::info_span!("shipping.step", flow = FLOW, step = "labels", source_id = %source_id);
        labels::save(nshift, settings, &mut item, fresh_labels.take())
            .instrument(span)
            .await?;
        outcome.labels = u32::try_from(item.labels.len()).unwrap_or(u32::MAX);
        record_step(ctx, &item, steps::LABELS_SAVED, None, None)?;
        step = Some(steps::LABELS_SAVED.to_owned());
    }

    if step.as_deref() == Some(steps::LABELS_SAVED) {
        let span = tracing::info_span!("shipping.step", flow = FLOW, step = "delivery_note", source_id = %source_id);
        let created = write_delivery_note(norce, &mut item)
            .instrument(span)
            .await?;
        outcome.written_back = created;
        outcome.note = created;
        record_step(ctx, &item, steps::NOTE_CREATED, None, None)?;
        step = Some(steps::NOTE_CREATED.to_owned());
    }

    if step.as_deref() == Some(steps::NOTE_CREATED) {
        let span = tracing::info_span!("shipping.step", flow = FLOW, step = "order_status", source_id = %source_id);
        send_status(norce, &mut item).instrument(span).await?;
        // Recorded below, after a parcel status that arrived meanwhile is on the note.
        step = Some(steps::STATUS_SENT.to_owned());
    }

    match step.as_deref() {
        // A parcel status arrived after the note was written (the alerts step set the entity
        // back to pending), or a pending entity at the last step only needs its status fixed.
        Some(steps::STATUS_SENT | steps::PARCELS_CHANGED) => {
            if item.parcel_status_unsent
                && settings.parcel_status == ParcelStatusWriteback::UpdateDeliveryNote
            {
                let span = tracing::info_span!("shipping.step", flow = FLOW, step = "parcel_status", source_id = %source_id);
                update_parcel_statuses(norce, &mut item)
                    .instrument(span)
                    .await?;
                outcome.written_back = true;
            }
            record_step(ctx, &item, steps::STATUS_SENT, None, Some(Status::Done))?;
            outcome.done = true;
            Ok(())
        }
        Some(other) => Err(permanent(format!(
            "unknown recorded step `{other}`; set the entity back with `relay replay`"
        ))),
        None => Ok(()),
    }
}

/// What resolving an order came to.
enum Resolution {
    /// Mapped and ready to book.
    Ready,
    /// Never shipped (final status, delivery method in `skip_delivery_methods`).
    Skip(String),
    /// Not in a qualifying status yet: left pending without counting a failure.
    Wait(String),
}

/// Reads the order from Norce: its order number, status, and (for polled orders) its data.
async fn resolve(
    norce: &norce_client::NorceClient,
    settings: &Settings,
    item: &mut ShippingItem,
) -> Result<Resolution, ItemError> {
    let order_id = match &item.order_id {
        Some(id) => id.clone(),
        None => find_order_id(norce, &item.client_order_ref).await?,
    };
    let order = norce
        .get_order(&order_id)
        .await
        .map_err(|e| norce_error(&format!("GetOrder {order_id}"), e))?;
    item.order_id = Some(order_id.clone());
    item.apply_norce_order(&order).map_err(permanent)?;
    let status = order.status.clone().unwrap_or_default();
    if !settings.qualifies(&status) {
        if FINAL_STATUSES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(status.trim()))
        {
            return Ok(Resolution::Skip(format!(
                "the Norce order is {status}, not one of shipping.order_statuses"
            )));
        }
        return Ok(Resolution::Wait(format!(
            "the Norce order is {status}, not one of shipping.order_statuses"
        )));
    }
    let Some(data) = &item.order else {
        return Err(permanent("the order has no shipping data"));
    };
    let method = data.delivery_method.clone().unwrap_or_default();
    if method.trim().is_empty() {
        return Err(permanent(
            "the Norce order has no delivery method code; set one on the order, then `relay replay`",
        ));
    }
    if settings.skips(&method) {
        return Ok(Resolution::Skip(format!(
            "delivery method `{method}` is in shipping.skip_delivery_methods"
        )));
    }
    let country = data.receiver.country.clone().unwrap_or_default();
    if settings.service_for(&method, &country).is_none() {
        return Err(permanent(format!(
            "no nShift service is mapped for the Norce delivery method `{method}`: add `[shipping.services.{method}]` with `service_id` (or list it in `shipping.skip_delivery_methods`), then `relay replay`"
        )));
    }
    Ok(Resolution::Ready)
}

/// The Norce order id of a basket id, from Query.
async fn find_order_id(
    norce: &norce_client::NorceClient,
    client_order_ref: &str,
) -> Result<String, ItemError> {
    let filter = match client_order_ref.trim().parse::<i64>() {
        Ok(basket) => format!("quotationId eq {basket}"),
        Err(_) => format!("orderNo eq '{}'", client_order_ref.replace('\'', "''")),
    };
    // `id` and `orderNo` are the fields every decoded Query order has (the model requires them).
    let query = QueryOrdersQuery {
        filter: Some(filter),
        select: Some("id,orderNo".to_owned()),
        top: Some(1),
        ..QueryOrdersQuery::default()
    };
    let mut pages = norce.query_orders(query);
    match pages.try_next().await {
        Ok(Some(page)) => match page.value.first() {
            Some(order) => Ok(order.id.to_string()),
            None => Err(transient(format!(
                "no Norce order has ClientOrderRef {client_order_ref} (yet); retried on the next pass"
            ))),
        },
        Ok(None) => Err(transient(format!(
            "no Norce order has ClientOrderRef {client_order_ref} (yet)"
        ))),
        Err(e) => Err(norce_error("Query orders", e)),
    }
}

/// Creates the delivery note unless the order already has it. Returns whether it was created
/// by this call.
async fn write_delivery_note(
    norce: &norce_client::NorceClient,
    item: &mut ShippingItem,
) -> Result<bool, ItemError> {
    let order_id = item
        .order_id
        .clone()
        .ok_or_else(|| permanent("the Norce order id is not recorded"))?;
    let booked = item
        .shipment
        .clone()
        .ok_or_else(|| permanent("the booking is not recorded"))?;
    let note_no = item.note_no.clone().unwrap_or_else(|| {
        format!(
            "NS-{}",
            booked.shipment_ids.first().map_or("0", String::as_str)
        )
    });
    item.note_no = Some(note_no.clone());

    // CreateDeliveryNote is not idempotent: check the order before every attempt.
    let order = norce
        .get_order(&order_id)
        .await
        .map_err(|e| norce_error(&format!("GetOrder {order_id}"), e))?;
    let exists = order.delivery_notes.iter().flatten().any(|note| {
        note.note_no.as_deref() == Some(note_no.as_str()) || {
            let parcels: Vec<&str> = note
                .packages
                .iter()
                .flatten()
                .filter_map(|p| p.parcel_number.as_deref())
                .collect();
            !booked.parcel_numbers.is_empty()
                && booked
                    .parcel_numbers
                    .iter()
                    .all(|p| parcels.contains(&p.as_str()))
        }
    });
    if exists {
        tracing::info!(note_no = %note_no, "the Norce order already has the delivery note; not created again");
        return Ok(false);
    }
    send_note(
        norce,
        item,
        &booked,
        &note_no,
        "CreateDeliveryNote (checked before the next attempt)",
    )
    .await?;
    tracing::info!(note_no = %note_no, parcels = booked.parcel_numbers.len(), "delivery note created");
    Ok(true)
}

/// Sends the delivery note again, same `NoteNo` and lines, with the parcels' current statuses
/// (`shipping.parcel_status = "update_delivery_note"`).
async fn update_parcel_statuses(
    norce: &norce_client::NorceClient,
    item: &mut ShippingItem,
) -> Result<(), ItemError> {
    let booked = item
        .shipment
        .clone()
        .ok_or_else(|| permanent("the booking is not recorded"))?;
    let note_no = item
        .note_no
        .clone()
        .ok_or_else(|| permanent("the delivery note number is not recorded"))?;
    send_note(
        norce,
        item,
        &booked,
        &note_no,
        "CreateDeliveryNote with the parcel statuses (if your Norce refuses a delivery note sent again, set shipping.parcel_status = \"record_only\")",
    )
    .await?;
    let statuses: Vec<String> = item
        .tracking
        .iter()
        .map(|(parcel, t)| format!("{parcel}={}", t.nshift_status))
        .collect();
    tracing::info!(note_no = %note_no, statuses = %statuses.join(","), "delivery note sent again with the parcel statuses");
    Ok(())
}

/// Sends the booking's delivery note with the parcels' current statuses; `what` names the call
/// in an error.
async fn send_note(
    norce: &norce_client::NorceClient,
    item: &mut ShippingItem,
    booked: &BookedShipment,
    note_no: &str,
    what: &str,
) -> Result<(), ItemError> {
    let note = delivery_note(item, booked, note_no)?;
    norce
        .create_delivery_note(&note)
        .await
        .map_err(|e| norce_error(what, e))?;
    item.parcel_status_unsent = false;
    Ok(())
}

/// The Norce delivery note of a booking: the order's lines, the receiver, and one package per
/// parcel with its latest Norce parcel status.
fn delivery_note(
    item: &ShippingItem,
    booked: &BookedShipment,
    note_no: &str,
) -> Result<DeliveryNote, ItemError> {
    let data = item
        .order
        .as_ref()
        .ok_or_else(|| permanent("the order data is not recorded"))?;
    let delivery_date = booked
        .printed_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
    let mut items = Vec::new();
    for line in &data.lines {
        let qty = line.quantity.parse().map_err(|_| {
            permanent(format!(
                "order line {} has quantity `{}`",
                line.part_no, line.quantity
            ))
        })?;
        let row_number = match line.row_number {
            Some(n) => Some(
                n.to_string()
                    .parse()
                    .map_err(|_| permanent("bad row number"))?,
            ),
            None => None,
        };
        items.push(DeliveryNoteItem {
            row_number,
            item_no: line.part_no.clone(),
            description: line.description.clone(),
            qty,
            comment: None,
            id: None,
        });
    }
    let receiver = &data.receiver;
    let note = DeliveryNote {
        // Norce matches the note to the order by its ERP number; without one, the order number.
        order_no: item
            .erp_order_no
            .clone()
            .or_else(|| item.order_no.clone())
            .unwrap_or_default(),
        note_no: note_no.to_owned(),
        delivery_date: delivery_date.into(),
        buyer_company_code: None,
        buyer_customer_code: None,
        delivery_address: Some(DeliveryAddress {
            line1: receiver.line1.clone(),
            line2: receiver.line2.clone(),
            zip_code: receiver.zip.clone(),
            city: receiver.city.clone(),
            country: receiver.country.clone(),
            ..DeliveryAddress::default()
        }),
        delivery_name: receiver.name.clone(),
        delivery_attention: None,
        delivery_mode: data.delivery_method.clone(),
        note_text: Some(format!(
            "nShift {} {}",
            booked.service_id,
            booked.shipment_ids.join(", ")
        )),
        division_code: None,
        status_id: None,
        delivery_note_items: Some(items),
        delivery_note_packages: Some(
            booked
                .parcel_numbers
                .iter()
                .map(|p| DeliveryNotePackage {
                    parcel_number: p.clone(),
                    status_id: item.tracking.get(p).and_then(|t| t.norce_status_id),
                    id: None,
                })
                .collect(),
        ),
    };
    Ok(note)
}

/// Sets the order Delivered (or PartlyDelivered).
async fn send_status(
    norce: &norce_client::NorceClient,
    item: &mut ShippingItem,
) -> Result<(), ItemError> {
    let status = if item.order.as_ref().is_some_and(|o| o.lines_left_out) {
        ConnectOrderStatus::PartlyDelivered
    } else {
        ConnectOrderStatus::Delivered
    };
    let client_order_ref = item.client_order_ref.trim().parse::<i32>().ok();
    let request = SendOrderStatusRequest {
        client_order_ref,
        erp_order_no: if client_order_ref.is_none() {
            item.erp_order_no.clone().or_else(|| item.order_no.clone())
        } else {
            None
        },
        order_status: status.clone(),
        account_id: None,
        infos: None,
    };
    norce
        .send_order_status(&request)
        .await
        .map_err(|e| norce_error("SendOrderStatus", e))?;
    item.order_status_sent = Some(status.as_str().to_owned());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayConfig;

    fn context(shipping: ShippingConfig) -> FlowContext {
        FlowContext::offline(RelayConfig {
            shipping,
            ..RelayConfig::default()
        })
    }

    #[test]
    fn defaults_map_the_sandbox_delivery_methods() {
        let ctx = context(ShippingConfig::default());
        let settings = Settings::new(&ctx, Some("http://127.0.0.1:4000/rs-extapi/v1")).unwrap();
        assert!(settings.test, "a loopback nShift gets test shipments");
        assert_eq!(
            settings.labels_dir,
            PathBuf::from("relay-data").join("labels")
        );
        assert_eq!(
            settings
                .service_for("POSTNORD_HOME", "SE")
                .unwrap()
                .service_id,
            "P17"
        );
        let pickup = settings.service_for("POSTNORD_PICKUP", "SE").unwrap();
        assert_eq!(
            (pickup.service_id.as_str(), pickup.agent_type.as_deref()),
            ("P19", Some("POSTNORD"))
        );
        assert_eq!(
            settings
                .service_for("BUDBEE_HOME", "SE")
                .unwrap()
                .service_id,
            "BUDBEEHD"
        );
        assert_eq!(
            settings
                .service_for("BUDBEE_HOME", "no")
                .unwrap()
                .service_id,
            "P17"
        );
        assert!(settings.service_for("DHL_EXPRESS", "SE").is_none());
        assert!(
            settings.qualifies("created")
                && settings.qualifies("Confirmed")
                && !settings.qualifies("Delivered")
        );
        let real = Settings::new(&ctx, Some("https://api.unifaun.com/rs-extapi/v1")).unwrap();
        assert!(
            !real.test,
            "a real nShift gets real shipments unless `test` says otherwise"
        );
    }

    #[test]
    fn the_file_overrides_and_extends_the_mapping() {
        let text = r#"
            [shipping]
            order_statuses = ["Confirmed"]
            test = false
            [shipping.services.POSTNORD_HOME]
            service_id = "P15"
            partner_id = "PLAB"
            customer_no = "0123456789"
            [shipping.services.DHL]
            service_id = "ASP2"
            [shipping.services.DHL.countries.FI]
            service_id = "P17"
            addons = []
        "#;
        let config = RelayConfig::parse(text, "relay.toml").unwrap();
        let ctx = context(config.shipping);
        let settings = Settings::new(&ctx, Some("http://127.0.0.1:1")).unwrap();
        assert!(!settings.test);
        let home = settings.service_for("POSTNORD_HOME", "SE").unwrap();
        assert_eq!(
            (home.service_id.as_str(), home.customer_no.as_deref()),
            ("P15", Some("0123456789"))
        );
        assert_eq!(
            settings.service_for("DHL", "SE").unwrap().service_id,
            "ASP2"
        );
        let fi = settings.service_for("DHL", "FI").unwrap();
        assert_eq!((fi.service_id.as_str(), fi.addons.len()), ("P17", 0));
        assert_eq!(
            settings
                .service_for("POSTNORD_PICKUP", "SE")
                .unwrap()
                .service_id,
            "P19",
            "built-ins stay"
        );
        assert_eq!(settings.statuses, vec![("Confirmed".to_owned(), 2)]);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let err = RelayConfig::parse("[shipping]\nlabel_dir = \"x\"\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("label_dir"), "{err}");
        let cases = [
            (
                "[shipping]\norder_statuses = [\"Shipped\"]\n",
                "shipping.order_statuses",
            ),
            (
                "[shipping]\norder_statuses = []\n",
                "shipping.order_statuses",
            ),
            (
                "[shipping]\nmax_parcel_weight_kg = 0.0\n",
                "shipping.max_parcel_weight_kg",
            ),
            (
                "[shipping.services.X]\naddons = [\"NOT\"]\n",
                "shipping.services.X.service_id",
            ),
            (
                "[shipping.services.X]\nservice_id = \"P15\"\ncustomer_no = \"1\"\n",
                "shipping.services.X.partner_id",
            ),
            (
                "[shipping.services.X]\nservice_id = \"P15\"\n[shipping.services.X.countries.Norway]\nservice_id = \"P17\"\n",
                "shipping.services.X.countries.Norway",
            ),
            (
                "[shipping.part_weights_kg]\n\"SKU-1\" = -1.0\n",
                "shipping.part_weights_kg",
            ),
        ];
        for (text, key) in cases {
            let config = RelayConfig::parse(text, "relay.toml").unwrap();
            let err = Settings::new(&context(config.shipping), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    /// `relay run` and `relay serve` drive passes as `Send` futures (boxed, spawned).
    #[allow(dead_code)]
    fn the_pass_is_send(
        ctx: &FlowContext,
    ) -> impl std::future::Future<Output = Result<FlowReport, FlowError>> + Send + '_ {
        run(ctx)
    }

    #[allow(dead_code)]
    fn ingest_is_send<'a>(
        ctx: &'a FlowContext,
        item: &'a InboxItem,
    ) -> impl std::future::Future<Output = Result<Ingested, FlowError>> + Send + 'a {
        ingest(ctx, item)
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("http://127.0.0.1:8080/x"));
        assert!(is_loopback_url("http://localhost/x"));
        assert!(is_loopback_url("http://[::1]:9/x"));
        assert!(!is_loopback_url("https://api.unifaun.com/rs-extapi/v1"));
    }

    #[tokio::test]
    async fn ingest_queues_a_push_once_and_dead_letters_garbage() {
        let ctx = context(ShippingConfig::default());
        assert!(
            accepts("norce-order") && accepts("norce-event") && !accepts("brightpearl-webhook")
        );
        let body = serde_json::json!({
            "ClientOrderRef": "400007",
            "ShippingAdvice": {"DeliveryMethodCode": "POSTNORD_HOME"},
            "ShipTo": {"Person": {"FirstName": "Anna", "LastName": "Lind", "Address": {"Line1": "Avenyn 1", "ZipCode": "41136", "City": "Göteborg", "Country": "SE"}}},
            "Items": [{"LineNo": 1, "PartNo": "SKU-00001", "Quantity": 2}]
        })
        .to_string();
        let item = InboxItem {
            id: 1,
            source: "norce-order".into(),
            key: "400007".into(),
            body,
            received_at: String::new(),
        };
        assert_eq!(ingest(&ctx, &item).await.unwrap(), Ingested::Work);
        assert_eq!(
            ingest(&ctx, &item).await.unwrap(),
            Ingested::Work,
            "a repeat before the pass starts refreshes the payload"
        );
        let records = ctx.store.list(Some(FLOW), None).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].source_id.as_str(), records[0].status),
            ("400007", Status::Pending)
        );
        let payload = ShippingItem::from_json(records[0].payload.as_deref().unwrap()).unwrap();
        assert_eq!(
            payload.order.unwrap().receiver.zip.as_deref(),
            Some("41136")
        );

        let garbage = InboxItem {
            id: 2,
            source: "norce-order".into(),
            key: "x".into(),
            body: "{".into(),
            received_at: String::new(),
        };
        assert_eq!(ingest(&ctx, &garbage).await.unwrap(), Ingested::Nothing);
        let letters = ctx.store.dead_letters().unwrap();
        assert_eq!(letters.len(), 1);
        assert!(
            letters[0].error.contains("OrderRequest"),
            "{}",
            letters[0].error
        );
    }

    #[tokio::test]
    async fn order_events_queue_their_order_by_client_order_ref() {
        let ctx = context(ShippingConfig::default());
        let event = |id: i64, event_type: &str, body: serde_json::Value| InboxItem {
            id,
            source: "norce-event".into(),
            key: format!("{event_type}:order-{id}"),
            body: body.to_string(),
            received_at: String::new(),
        };
        // The documented OrderReceivedEvent: the basket reference and the buyer, no OrderId.
        let received = serde_json::json!({"ClientId": 1000, "ApplicationId": 1042, "ClientOrderRef": "400077", "Email": "a@example.com", "Source": "WEB"});
        assert_eq!(
            ingest(&ctx, &event(1, "OrderReceivedEvent", received))
                .await
                .unwrap(),
            Ingested::Work
        );
        let record = ctx.store.get(FLOW, "400077").unwrap().unwrap();
        assert_eq!(
            (record.status, record.step.as_deref()),
            (Status::Pending, None)
        );
        let queued = ShippingItem::from_json(record.payload.as_deref().unwrap()).unwrap();
        // Only the basket: the order id is looked up and the order read when processed.
        assert_eq!(
            (queued.order_id.as_deref(), queued.order.is_none()),
            (None, true)
        );
        let confirmed = serde_json::json!({"ClientId": 1000, "ApplicationId": 1042, "OrderId": 77, "OrderNo": "NC-77", "ClientOrderRef": "400077", "Source": "WEB"});
        let ctx_confirmed = context(ShippingConfig::default());
        assert_eq!(
            ingest(
                &ctx_confirmed,
                &event(1, "OrderConfirmedEvent", confirmed.clone())
            )
            .await
            .unwrap(),
            Ingested::Work
        );
        let queued = ShippingItem::from_json(
            ctx_confirmed
                .store
                .get(FLOW, "400077")
                .unwrap()
                .unwrap()
                .payload
                .as_deref()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            queued.order_id.as_deref(),
            Some("77"),
            "events that carry the order id keep it"
        );
        let received = confirmed;

        // A later event for a known order changes nothing, even when it has started.
        ctx.store
            .update(
                FLOW,
                "400077",
                &EntityUpdate {
                    step: Some(steps::BOOKED.into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(
            ingest(&ctx, &event(2, "OrderConfirmedEvent", received))
                .await
                .unwrap(),
            Ingested::Nothing
        );
        assert_eq!(
            ctx.store
                .get(FLOW, "400077")
                .unwrap()
                .unwrap()
                .step
                .as_deref(),
            Some(steps::BOOKED)
        );

        // Events not in `shipping.norce_events` are ignored; so are ones without a body we need.
        let cancelled =
            serde_json::json!({"ClientId": 1000, "OrderId": 78, "ClientOrderRef": "400078"});
        assert_eq!(
            ingest(&ctx, &event(3, "OrderCancelledEvent", cancelled))
                .await
                .unwrap(),
            Ingested::Nothing
        );
        assert_eq!(
            ingest(
                &ctx,
                &event(
                    4,
                    "JobCompletedEvent",
                    serde_json::json!({"ClientId": 1000, "JobId": 5, "StatusId": 2})
                )
            )
            .await
            .unwrap(),
            Ingested::Nothing
        );
        assert_eq!(ctx.store.list(Some(FLOW), None).unwrap().len(), 1);
        assert!(ctx.store.dead_letters().unwrap().is_empty());

        // A configured event that is not an order event, or has no basket id, is a dead letter
        // naming what to fix.
        assert_eq!(ingest(&ctx, &event(5, "OrderReceivedEvent", serde_json::json!({"ClientId": 1000, "ApplicationId": 1042, "OrderId": 79, "Source": "WEB"}))).await.unwrap(), Ingested::Nothing);
        assert_eq!(
            ingest(
                &ctx,
                &event(
                    6,
                    "OrderReceivedEvent",
                    serde_json::json!({"ClientId": "x"})
                )
            )
            .await
            .unwrap(),
            Ingested::Nothing
        );
        let letters = ctx.store.dead_letters().unwrap();
        assert_eq!(letters.len(), 2, "{letters:?}");
        assert!(
            letters[0].error.contains("ClientOrderRef"),
            "{}",
            letters[0].error
        );
        assert!(
            letters[1].error.contains("shipping.norce_events"),
            "{}",
            letters[1].error
        );
    }
}
