//! The simulator's records, seeding from the dataset, and the asynchronous import jobs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use models_runtime::{Decimal, Timestamp};
use norce_models::connect;
use serde_json::{Value, json};

use super::config::{NorceConfig, NorcePriceList};
use crate::dataset::Dataset;

/// Order status names (Connect `OrderStatus`) and the status ids Query reports for them.
///
/// 0, 1, 2, 4, 5, 6 and 8 are documented (Query 3.0 "common statusId values"); the others are the
/// sandbox's own numbering (see the docs). `Acknowledged` is not stored: it sets `Confirmed`.
pub const STATUSES: &[(&str, i32)] = &[
    ("Created", 0),
    ("Allocation", 1),
    ("Confirmed", 2),
    ("BackOrder", 3),
    ("Delivered", 4),
    ("Invoiced", 5),
    ("Cancelled", 6),
    ("CreditControl", 7),
    ("PartlyDelivered", 8),
    ("ErpConfirmed", 9),
    ("ReadyForPickup", 10),
    ("PickedUp", 11),
    ("NotPickedUp", 12),
    ("OnHold", 13),
    ("WaitingForCancel", 14),
    ("WaitingForOnHoldRemoved", 15),
    ("CancelError", 16),
    ("AcknowledgementError", 17),
    ("ReadyForReservation", 18),
    ("Reserved", 19),
];

/// The Query status id of a status name.
pub fn status_id(name: &str) -> i32 {
    STATUSES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(0, |(_, id)| *id)
}

/// Parcel status text of a Connect parcel `StatusId`.
pub fn parcel_status(id: Option<i32>) -> Option<String> {
    let text = match id? {
        4 => "Delivered",
        6 => "Canceled",
        11 => "ReadyForPickup",
        12 => "PickedUp",
        20 => "Reserved",
        _ => return Some(format!("Status {}", id?)),
    };
    Some(text.to_owned())
}

/// VAT of every product (25 %, Sweden).
pub fn vat_multiplier() -> Decimal {
    Decimal::new(125, 2)
}

/// Price excluding VAT from a price including it (4 decimals, as Norce keeps prices).
pub fn ex_vat(inc: Decimal) -> Decimal {
    (inc / vat_multiplier()).round_dp(4).normalize()
}

/// (country code, internal id, name, alpha-3) of the countries the application has.
pub const COUNTRIES: &[(&str, i32, &str, &str)] = &[
    ("SE", 1, "Sweden", "SWE"),
    ("NO", 2, "Norway", "NOR"),
    ("DK", 3, "Denmark", "DNK"),
    ("FI", 4, "Finland", "FIN"),
];

pub fn country(code: &str) -> Option<(&'static str, i32, &'static str, &'static str)> {
    COUNTRIES
        .iter()
        .copied()
        .find(|(c, ..)| c.eq_ignore_ascii_case(code))
}

/// (currency code, internal id).
pub const CURRENCIES: &[(&str, i32)] = &[("SEK", 1), ("NOK", 2), ("DKK", 3), ("EUR", 4)];

pub fn currency_id(code: &str) -> i32 {
    CURRENCIES
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
        .map_or(0, |(_, id)| *id)
}

#[derive(Debug, Clone)]
pub struct TokenRec {
    #[allow(dead_code)]
    pub client_id: String,
    #[allow(dead_code)]
    pub scope: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct ProductRec {
    pub id: i64,
    pub sku: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct CustomerRec {
    pub id: i64,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub street: String,
    pub zip: String,
    pub city: String,
    pub country: String,
}

#[derive(Debug, Clone)]
pub struct LineRec {
    pub line_no: i32,
    pub product_id: i64,
    pub part_no: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price_inc_vat: Decimal,
}

#[derive(Debug, Clone)]
pub struct NoteRec {
    pub id: i64,
    pub created: DateTime<Utc>,
    pub note: connect::DeliveryNote,
    pub package_ids: Vec<i64>,
}

#[derive(Debug, Clone)]
pub struct StatusChange {
    pub at: DateTime<Utc>,
    pub status: String,
    pub by: String,
}

#[derive(Debug, Clone)]
pub struct OrderRec {
    pub id: i64,
    pub order_no: String,
    pub quotation_id: i32,
    pub application_id: i32,
    pub customer: CustomerRec,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub lines: Vec<LineRec>,
    pub delivery_method: String,
    pub pickup_point: Option<String>,
    pub currency: String,
    pub status: String,
    pub erp_order_no: Option<String>,
    pub infos: BTreeMap<String, String>,
    pub delivery_notes: Vec<NoteRec>,
    pub history: Vec<StatusChange>,
    pub confirmed_event_sent: bool,
    pub payment_method: String,
    pub payment_ref: String,
    pub payment_cancelled: bool,
}

impl OrderRec {
    pub fn total_inc_vat(&self) -> Decimal {
        self.lines
            .iter()
            .map(|l| {
                l.unit_price_inc_vat
                    .checked_mul(Decimal::from(l.quantity))
                    .unwrap_or(Decimal::MAX)
            })
            .fold(Decimal::ZERO, |sum, x| {
                sum.checked_add(x).unwrap_or(Decimal::MAX)
            })
    }

    pub fn total_ex_vat(&self) -> Decimal {
        (self.total_inc_vat() / vat_multiplier())
            .round_dp(2)
            .normalize()
    }

    pub fn status_id(&self) -> i32 {
        status_id(&self.status)
    }

    pub fn set_status(&mut self, status: &str, at: DateTime<Utc>, by: &str) {
        self.status = status.to_owned();
        self.updated = at;
        self.history.push(StatusChange {
            at,
            status: status.to_owned(),
            by: by.to_owned(),
        });
    }

    /// Whether `no` names this order: its ERP number, its web order number or its id.
    pub fn matches_order_no(&self, no: &str) -> bool {
        self.erp_order_no.as_deref() == Some(no)
            || self.order_no == no
            || is_decimal_of(no, self.id)
    }

    pub fn admin_json(&self) -> Value {
        json!({
            "id": self.id,
            "orderNo": self.order_no,
            "clientOrderRef": self.quotation_id,
            "erpOrderNo": self.erp_order_no,
            "applicationId": self.application_id,
            "status": self.status,
            "statusId": self.status_id(),
            "created": self.created.to_rfc3339(),
            "updated": self.updated.to_rfc3339(),
            "customer": {
                "id": self.customer.id, "firstName": self.customer.first_name, "lastName": self.customer.last_name,
                "email": self.customer.email, "phone": self.customer.phone, "street": self.customer.street,
                "zip": self.customer.zip, "city": self.customer.city, "country": self.customer.country,
            },
            "lines": self.lines.iter().map(|l| json!({
                "lineNo": l.line_no, "partNo": l.part_no, "name": l.name, "quantity": l.quantity,
                "unitPriceIncVat": l.unit_price_inc_vat.to_string(),
            })).collect::<Vec<_>>(),
            "totalIncVat": self.total_inc_vat().to_string(),
            "deliveryMethod": self.delivery_method,
            "pickupPoint": self.pickup_point,
            "currency": self.currency,
            "infos": self.infos,
            "payment": {"methodCode": self.payment_method, "ref": self.payment_ref, "cancelled": self.payment_cancelled},
            "deliveryNotes": self.delivery_notes.iter().map(|n| n.admin_json(self)).collect::<Vec<_>>(),
            "history": self.history.iter().map(|h| json!({"at": h.at.to_rfc3339(), "status": h.status, "by": h.by})).collect::<Vec<_>>(),
        })
    }
}

impl NoteRec {
    pub fn admin_json(&self, order: &OrderRec) -> Value {
        json!({
            "id": self.id,
            "orderId": order.id,
            "orderNo": order.order_no,
            "erpOrderNo": order.erp_order_no,
            "created": self.created.to_rfc3339(),
            "noteNo": self.note.note_no,
            "packages": self.note.delivery_note_packages.iter().flatten().zip(&self.package_ids).map(|(p, id)| json!({
                "id": id, "parcelNumber": p.parcel_number, "statusId": p.status_id,
            })).collect::<Vec<_>>(),
            "note": self.note,
        })
    }
}

#[derive(Debug, Clone)]
pub struct OnhandRec {
    pub onhand_value: Decimal,
    pub incoming_value: Option<Decimal>,
    pub next_delivery_date: Option<String>,
    pub lead_time_day_count: Option<i32>,
    pub minimum_value: Option<Decimal>,
    pub maximum_value: Option<Decimal>,
    pub is_active: bool,
    pub infos: Vec<connect::CodeValue>,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct PriceRec {
    pub price_sale: Option<Decimal>,
    pub cost_purchase: Option<Decimal>,
    pub cost_unit: Option<Decimal>,
    pub price_recommended: Option<Decimal>,
    pub price_previous: Option<Decimal>,
    pub price_catalog: Option<Decimal>,
    pub is_price_discountable: Option<bool>,
    pub is_active: bool,
    pub currency: String,
    pub price_rule: Option<i32>,
    pub price_rule_value: Option<Decimal>,
    pub updated: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct LogRec {
    pub severity: i32,
    pub message: String,
    pub at: DateTime<Utc>,
    pub row: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Work {
    Onhands {
        header: connect::SkuOnhandHeader,
        rows: Vec<connect::SkuOnhand>,
    },
    Prices {
        header: connect::SkuPriceListHeader,
        rows: Vec<connect::SkuPriceList>,
    },
}

#[derive(Debug, Clone)]
pub struct JobRec {
    pub id: i32,
    pub kind: &'static str,
    pub created: DateTime<Utc>,
    pub due: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub status_id: i32,
    pub totals: i32,
    pub inserts: i32,
    pub updates: i32,
    pub fail: i32,
    pub log: Vec<LogRec>,
    pub work: Option<Work>,
}

impl JobRec {
    /// Adds an informational (severity 1) log line; every import step that reports writes one.
    fn note(&mut self, message: String, at: DateTime<Utc>) {
        self.log.push(LogRec {
            severity: 1,
            message,
            at,
            row: None,
        });
    }

    /// Counts a row that failed validation and logs it (severity 2) with the row, as both
    /// imports do.
    fn reject_row<T: serde::Serialize>(&mut self, problem: String, at: DateTime<Utc>, row: &T) {
        self.fail += 1;
        self.log.push(LogRec {
            severity: 2,
            message: problem,
            at,
            row: Some(truncate_row(row)),
        });
    }

    /// Counts an applied row of either import: an update if the key existed, else an insert.
    fn count_applied(&mut self, existed: bool) {
        if existed {
            self.updates += 1
        } else {
            self.inserts += 1
        }
    }

    pub fn to_job(&self, now: DateTime<Utc>) -> connect::Job {
        let end = self.finished.unwrap_or(now);
        connect::Job {
            job_id: self.id,
            status_id: self.status_id,
            is_finished: Some(self.finished.is_some()),
            start: Some(Timestamp::from_datetime(self.created)),
            stop: self.finished.map(Timestamp::from_datetime),
            last_updated: Some(Timestamp::from_datetime(
                self.finished.unwrap_or(self.created),
            )),
            run_time: Some(timespan(end - self.created)),
            totals: Some(self.totals),
            insert: Some(self.inserts),
            updates: Some(self.updates),
            fail: Some(self.fail),
            storage_name: None,
        }
    }

    pub fn log_entries(&self) -> Vec<connect::JobLogEntry> {
        self.log
            .iter()
            .map(|l| connect::JobLogEntry {
                severity_id: l.severity,
                message: l.message.clone(),
                time_stamp: Some(Timestamp::from_datetime(l.at)),
                imported_row: l.row.clone(),
            })
            .collect()
    }
}

/// A .NET TimeSpan string: `00:00:05.0000000`.
fn timespan(d: Duration) -> String {
    let total_ms = d.num_milliseconds().max(0);
    let (h, rest) = (total_ms / 3_600_000, total_ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, ms) = (rest / 1000, rest % 1000);
    format!("{h:02}:{m:02}:{s:02}.{:07}", ms * 10_000)
}

#[derive(Debug, Clone)]
pub struct AttemptRec {
    pub at: DateTime<Utc>,
    pub status: Option<u16>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PushRec {
    pub id: u64,
    pub kind: &'static str,
    pub event_type: Option<String>,
    pub url: String,
    pub header_names: Vec<String>,
    pub payload: Value,
    pub created: DateTime<Utc>,
    pub attempts: Vec<AttemptRec>,
    pub state: &'static str,
}

impl PushRec {
    pub fn admin_json(&self) -> Value {
        json!({
            "id": self.id,
            "kind": self.kind,
            "eventType": self.event_type,
            "url": self.url,
            "headerNames": self.header_names,
            "payload": self.payload,
            "created": self.created.to_rfc3339(),
            "state": self.state,
            "attempts": self.attempts.iter().map(|a| json!({"at": a.at.to_rfc3339(), "status": a.status, "error": a.error})).collect::<Vec<_>>(),
        })
    }
}

/// Order ids by basket (quotation) id and by web or ERP order number, so the calls that name an
/// order that way do not scan every order. A hit is checked against the order and a miss falls
/// back to the scan, so the answers are the scan's even where a change was not indexed.
#[derive(Debug, Default)]
pub struct OrderIndex {
    by_quotation: HashMap<i32, i64>,
    by_number: HashMap<String, i64>,
}

impl OrderIndex {
    /// Indexes (or re-indexes, after its ERP number was set) an order.
    pub fn add(&mut self, order: &OrderRec) {
        self.by_quotation.insert(order.quotation_id, order.id);
        self.by_number.insert(order.order_no.clone(), order.id);
        if let Some(erp) = &order.erp_order_no {
            self.by_number.insert(erp.clone(), order.id);
        }
    }

    /// Indexes another number of order `id` (its ERP number, once set).
    pub fn add_number(&mut self, number: String, id: i64) {
        self.by_number.insert(number, id);
    }

    /// The id of the order of basket `quotation`.
    pub fn by_quotation(&self, orders: &BTreeMap<i64, OrderRec>, quotation: i32) -> Option<i64> {
        self.by_quotation
            .get(&quotation)
            .filter(|id| orders.get(id).is_some_and(|o| o.quotation_id == quotation))
            .copied()
            .or_else(|| {
                orders
                    .values()
                    .find(|o| o.quotation_id == quotation)
                    .map(|o| o.id)
            })
    }

    /// The id of the order `no` names (ERP number, web order number or id; see
    /// [`OrderRec::matches_order_no`]).
    pub fn by_number(&self, orders: &BTreeMap<i64, OrderRec>, no: &str) -> Option<i64> {
        self.by_number
            .get(no)
            .filter(|id| orders.get(id).is_some_and(|o| o.matches_order_no(no)))
            .copied()
            .or_else(|| {
                orders
                    .values()
                    .find(|o| o.matches_order_no(no))
                    .map(|o| o.id)
            })
    }
}

/// Everything the simulator holds.
#[derive(Debug)]
pub struct Inner {
    pub rng: fastrand::Rng,
    pub token_seq: u64,
    pub tokens: HashMap<String, TokenRec>,
    pub token_buckets: HashMap<String, Option<DateTime<Utc>>>,
    pub products: Vec<ProductRec>,
    pub customers: Vec<CustomerRec>,
    /// (warehouse code, location code) pairs set up "in Admin".
    pub locations: Vec<(String, String)>,
    pub orders: BTreeMap<i64, OrderRec>,
    /// Order ids by basket and by number, for the calls that name an order that way.
    pub order_index: OrderIndex,
    pub onhands: BTreeMap<(String, String, String), OnhandRec>,
    pub prices: BTreeMap<(String, String, i32), PriceRec>,
    pub jobs: BTreeMap<i32, JobRec>,
    /// Ids of the jobs not finished yet, so settling (before every call) does not scan them all.
    pub pending_jobs: BTreeSet<i32>,
    pub pushes: Vec<PushRec>,
    pub next_order_id: i64,
    pub next_quotation_id: i32,
    pub next_note_id: i64,
    pub next_package_id: i64,
    pub next_job_id: i32,
    pub price_lists: Vec<NorcePriceList>,
    pub application_id: i32,
}

/// FNV-1a over the dataset's identifying texts: a seed that follows the dataset's seed.
fn seed_of(dataset: &Dataset) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let texts = dataset
        .products
        .iter()
        .map(|p| format!("{}{}", p.sku, p.cost))
        .chain(dataset.customers.iter().map(|c| c.email.clone()));
    for text in texts {
        for byte in text.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash ^ 0x0004_0bce
}

pub fn parcel_number(rng: &mut fastrand::Rng) -> String {
    // An SSCC-like 20-digit number, as PostNord parcels carry.
    format!("00373{:015}", rng.u64(..1_000_000_000_000_000))
}

impl Inner {
    pub fn seed(config: &NorceConfig, dataset: &Dataset, start: DateTime<Utc>) -> Self {
        let rng = fastrand::Rng::with_seed(seed_of(dataset));
        let products: Vec<ProductRec> = dataset
            .products
            .iter()
            .map(|p| ProductRec {
                id: p.id,
                sku: p.sku.clone(),
                name: p.name.clone(),
            })
            .collect();
        let customers: Vec<CustomerRec> = dataset
            .customers
            .iter()
            .map(|c| CustomerRec {
                id: c.id,
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                email: c.email.clone(),
                phone: c.phone.clone(),
                street: c.address.street.clone(),
                zip: c.address.zip.clone(),
                city: c.address.city.clone(),
                country: c.address.country.clone(),
            })
            .collect();
        let locations: Vec<(String, String)> = dataset
            .warehouses
            .iter()
            .map(|w| (w.location_code.clone(), w.location_code.clone()))
            .collect();
        let mut onhands = BTreeMap::new();
        for product in &dataset.products {
            for ((warehouse, location), value) in locations.iter().zip(&product.on_hand) {
                onhands.insert(
                    (product.sku.clone(), warehouse.clone(), location.clone()),
                    OnhandRec {
                        onhand_value: Decimal::from(*value),
                        incoming_value: None,
                        next_delivery_date: None,
                        lead_time_day_count: None,
                        minimum_value: None,
                        maximum_value: None,
                        is_active: true,
                        infos: Vec::new(),
                        updated: start,
                    },
                );
            }
        }
        let mut prices = BTreeMap::new();
        if let Some(list) = config.price_lists.first() {
            for product in &dataset.products {
                prices.insert(
                    (product.sku.clone(), list.code.clone(), 1),
                    PriceRec {
                        price_sale: Some(ex_vat(product.price)),
                        cost_purchase: Some(product.cost.normalize()),
                        is_active: true,
                        currency: list.currency.clone(),
                        updated: Some(start),
                        ..PriceRec::default()
                    },
                );
            }
        }
        let application_id = i32::try_from(config.application_id).unwrap_or(i32::MAX);
        let mut inner = Self {
            rng,
            token_seq: 0,
            tokens: HashMap::new(),
            token_buckets: HashMap::new(),
            products,
            customers,
            locations,
            orders: BTreeMap::new(),
            order_index: OrderIndex::default(),
            onhands,
            prices,
            jobs: BTreeMap::new(),
            pending_jobs: BTreeSet::new(),
            pushes: Vec::new(),
            next_order_id: 100_001,
            next_quotation_id: 400_001,
            next_note_id: 1,
            next_package_id: 1,
            next_job_id: 1_000_001,
            price_lists: config.price_lists.clone(),
            application_id,
        };
        for (index, order) in dataset.orders.iter().enumerate() {
            let Some(customer) = inner.customers.get(order.customer).cloned() else {
                continue;
            };
            let lines = order
                .lines
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    let product = dataset.products.get(l.product)?;
                    Some(LineRec {
                        line_no: i as i32 + 1,
                        product_id: product.id,
                        part_no: product.sku.clone(),
                        name: product.name.clone(),
                        quantity: l.quantity,
                        unit_price_inc_vat: l.unit_price,
                    })
                })
                .collect();
            let quotation_id = 400_000 + i32::try_from(order.id - 100_000).unwrap_or(0);
            let mut rec = OrderRec {
                id: order.id,
                order_no: order.order_no.clone(),
                quotation_id,
                application_id,
                customer,
                created: order.created,
                updated: order.created,
                lines,
                delivery_method: order.delivery_method.clone(),
                pickup_point: order.pickup_point.clone(),
                currency: order.currency.clone(),
                status: "Created".into(),
                erp_order_no: None,
                infos: BTreeMap::new(),
                delivery_notes: Vec::new(),
                history: vec![StatusChange {
                    at: order.created,
                    status: "Created".into(),
                    by: "checkout".into(),
                }],
                confirmed_event_sent: false,
                payment_method: "KLARNA".into(),
                payment_ref: format!("psp-{quotation_id}"),
                payment_cancelled: false,
            };
            if config.seed_delivered_every > 0 && (index + 1) % config.seed_delivered_every == 0 {
                let erp = format!("ERP-{}", order.id);
                rec.erp_order_no = Some(erp.clone());
                rec.set_status("Confirmed", order.created + Duration::minutes(10), "seed");
                rec.confirmed_event_sent = true;
                let shipped = order.created + Duration::hours(2);
                let note = connect::DeliveryNote {
                    order_no: erp,
                    note_no: format!("DN-{}", order.id),
                    delivery_date: Timestamp::from_datetime(shipped),
                    buyer_company_code: None,
                    buyer_customer_code: None,
                    delivery_address: None,
                    delivery_name: Some(format!(
                        "{} {}",
                        rec.customer.first_name, rec.customer.last_name
                    )),
                    delivery_attention: None,
                    delivery_mode: Some(rec.delivery_method.clone()),
                    note_text: None,
                    division_code: None,
                    status_id: None,
                    delivery_note_items: Some(
                        rec.lines
                            .iter()
                            .map(|l| connect::DeliveryNoteItem {
                                row_number: Some(Decimal::from(l.line_no).into()),
                                item_no: l.part_no.clone(),
                                description: Some(l.name.clone()),
                                qty: Decimal::from(l.quantity).into(),
                                comment: None,
                                id: None,
                            })
                            .collect(),
                    ),
                    delivery_note_packages: Some(vec![connect::DeliveryNotePackage {
                        parcel_number: parcel_number(&mut inner.rng),
                        status_id: Some(4),
                        id: None,
                    }]),
                };
                inner.add_note(&mut rec, note, shipped);
                rec.set_status("Delivered", shipped, "seed");
            }
            inner.next_order_id = inner.next_order_id.max(order.id + 1);
            inner.next_quotation_id = inner.next_quotation_id.max(quotation_id + 1);
            inner.order_index.add(&rec);
            inner.orders.insert(rec.id, rec);
        }
        inner
    }

    /// Adds (or replaces, by note number) a delivery note on `order`, numbering it and its parcels.
    pub fn add_note(
        &mut self,
        order: &mut OrderRec,
        note: connect::DeliveryNote,
        at: DateTime<Utc>,
    ) -> i64 {
        let existing = order
            .delivery_notes
            .iter()
            .position(|n| n.note.note_no == note.note_no);
        // A package keeps its id when the replacing note has the same parcel number.
        let kept_id = |parcel: &str| {
            let old = &order.delivery_notes[existing?];
            old.note
                .delivery_note_packages
                .iter()
                .flatten()
                .zip(&old.package_ids)
                .find(|(p, _)| p.parcel_number == parcel)
                .map(|(_, id)| *id)
        };
        let kept: Vec<Option<i64>> = note
            .delivery_note_packages
            .iter()
            .flatten()
            .map(|p| kept_id(&p.parcel_number))
            .collect();
        let package_ids: Vec<i64> = kept
            .into_iter()
            .map(|kept| {
                kept.unwrap_or_else(|| {
                    let id = self.next_package_id;
                    self.next_package_id += 1;
                    id
                })
            })
            .collect();
        if let Some(existing) = existing.and_then(|i| order.delivery_notes.get_mut(i)) {
            existing.note = note;
            existing.package_ids = package_ids;
            order.updated = at;
            return existing.id;
        }
        let id = self.next_note_id;
        self.next_note_id += 1;
        order.delivery_notes.push(NoteRec {
            id,
            created: at,
            note,
            package_ids,
        });
        order.updated = at;
        id
    }

    pub fn known_part(&self, part_no: &str) -> bool {
        self.products.iter().any(|p| p.sku == part_no)
    }

    /// Why an on-hand row cannot be imported, if it cannot.
    pub fn onhand_problem(&self, row: &connect::SkuOnhand) -> Option<String> {
        if !self.known_part(&row.part_no) {
            return Some(format!(
                "PartNo '{}' does not exist; the row is ignored.",
                row.part_no
            ));
        }
        if !self
            .locations
            .iter()
            .any(|(w, l)| *w == row.warehouse_code && *l == row.location_code)
        {
            return Some(format!(
                "PartNo '{}': warehouse '{}' / location '{}' is not set up; the row is ignored.",
                row.part_no, row.warehouse_code, row.location_code
            ));
        }
        None
    }

    /// Why a price row cannot be imported, if it cannot.
    pub fn price_problem(
        &self,
        row: &connect::SkuPriceList,
        header: &connect::SkuPriceListHeader,
    ) -> Option<String> {
        if !self.known_part(&row.part_no) {
            return Some(format!(
                "PartNo '{}' does not exist; the row is ignored.",
                row.part_no
            ));
        }
        let Some(list) = self
            .price_lists
            .iter()
            .find(|l| l.code == row.price_list_code)
        else {
            return Some(format!(
                "PartNo '{}': price list '{}' does not exist; the row is ignored.",
                row.part_no, row.price_list_code
            ));
        };
        if let Some(currency) = &row.currency_code
            && !currency.eq_ignore_ascii_case(&list.currency)
        {
            return Some(format!(
                "PartNo '{}': CurrencyCode '{}' does not match the currency '{}' of price list '{}'.",
                row.part_no, currency, list.currency, list.code
            ));
        }
        for field in header
            .ignore_sku_price_list_fields_when_empty
            .iter()
            .flatten()
        {
            if price_field_is_empty(row, field.as_str()) {
                return Some(format!(
                    "PartNo '{}': mandatory field {} is empty; the row is skipped.",
                    row.part_no,
                    field.as_str()
                ));
            }
        }
        None
    }

    /// Registers a submitted (unfinished) job.
    pub fn add_job(&mut self, job: JobRec) {
        self.pending_jobs.insert(job.id);
        self.jobs.insert(job.id, job);
    }

    /// Finishes every job due by `now`, in submission order; returns (job id, final status).
    pub fn complete_due_jobs(&mut self, now: DateTime<Utc>) -> Vec<(i32, i32)> {
        let due: Vec<i32> = self
            .pending_jobs
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .filter(|j| j.finished.is_none() && j.due <= now)
            .map(|j| j.id)
            .collect();
        for id in &due {
            self.pending_jobs.remove(id);
        }
        let mut done = Vec::new();
        for id in due {
            let Some(mut job) = self.jobs.remove(&id) else {
                continue;
            };
            let at = job.due;
            match job.work.take() {
                Some(Work::Onhands { header, rows }) => {
                    self.apply_onhands(&mut job, &header, &rows, at)
                }
                Some(Work::Prices { header, rows }) => {
                    self.apply_prices(&mut job, &header, &rows, at)
                }
                None => {}
            }
            job.status_id = if job.totals > 0 && job.fail == job.totals {
                4
            } else {
                2
            };
            let message = format!(
                "Import finished. Total {}, inserted {}, updated {}, failed {}.",
                job.totals, job.inserts, job.updates, job.fail
            );
            job.note(message, at);
            job.finished = Some(at);
            done.push((job.id, job.status_id));
            self.jobs.insert(id, job);
        }
        done
    }

    fn apply_onhands(
        &mut self,
        job: &mut JobRec,
        header: &connect::SkuOnhandHeader,
        rows: &[connect::SkuOnhand],
        at: DateTime<Utc>,
    ) {
        let fields: BTreeSet<&str> = header
            .sku_onhand_fields_that_are_set
            .iter()
            .map(|f| f.as_str())
            .collect();
        let mut seen: BTreeSet<(String, String, String)> = BTreeSet::new();
        for row in rows {
            if let Some(problem) = self.onhand_problem(row) {
                job.reject_row(problem, at, row);
                continue;
            }
            let key = (
                row.part_no.clone(),
                row.warehouse_code.clone(),
                row.location_code.clone(),
            );
            seen.insert(key.clone());
            let existed = self.onhands.contains_key(&key);
            let rec = self.onhands.entry(key).or_insert_with(|| OnhandRec {
                onhand_value: Decimal::ZERO,
                incoming_value: None,
                next_delivery_date: None,
                lead_time_day_count: None,
                minimum_value: None,
                maximum_value: None,
                is_active: true,
                infos: Vec::new(),
                updated: at,
            });
            if fields.contains("OnhandValue") {
                rec.onhand_value = row.onhand_value.map_or(Decimal::ZERO, |v| v.0);
            }
            if fields.contains("IncomingValue") {
                rec.incoming_value = row.incoming_value.map(|v| v.0);
            }
            if fields.contains("NextDeliveryDate") {
                rec.next_delivery_date = row
                    .next_delivery_date
                    .as_ref()
                    .map(|t| t.as_str().to_owned());
            }
            if fields.contains("LeadTimeDayCount") {
                rec.lead_time_day_count = row.lead_time_day_count;
            }
            if fields.contains("MinimumValue") {
                rec.minimum_value = row.minimum_value.map(|v| v.0);
            }
            if fields.contains("MaximumValue") {
                rec.maximum_value = row.maximum_value.map(|v| v.0);
            }
            if fields.contains("IsActive") {
                rec.is_active = row.is_active.unwrap_or(true);
            }
            if fields.contains("Infos") {
                rec.infos = row.infos.clone().unwrap_or_default();
            }
            rec.updated = at;
            job.count_applied(existed);
        }
        if header.full_file {
            let scopes: BTreeSet<(String, String)> = seen
                .iter()
                .map(|(_, w, l)| (w.clone(), l.clone()))
                .collect();
            let mut deactivated = 0;
            for (key, rec) in self.onhands.iter_mut() {
                if scopes.contains(&(key.1.clone(), key.2.clone()))
                    && !seen.contains(key)
                    && rec.is_active
                {
                    rec.is_active = false;
                    rec.updated = at;
                    deactivated += 1;
                }
            }
            job.note(
                format!("FullFile: {deactivated} on-hand rows not in the file were deactivated."),
                at,
            );
        }
    }

    fn apply_prices(
        &mut self,
        job: &mut JobRec,
        header: &connect::SkuPriceListHeader,
        rows: &[connect::SkuPriceList],
        at: DateTime<Utc>,
    ) {
        let fields: BTreeSet<&str> = header
            .sku_price_list_fields_that_are_set
            .iter()
            .map(|f| f.as_str())
            .collect();
        let mut seen = BTreeSet::new();
        for row in rows {
            if let Some(problem) = self.price_problem(row, header) {
                job.reject_row(problem, at, row);
                continue;
            }
            let currency = self
                .price_lists
                .iter()
                .find(|l| l.code == row.price_list_code)
                .map(|l| l.currency.clone())
                .unwrap_or_default();
            let key = (
                row.part_no.clone(),
                row.price_list_code.clone(),
                row.quantity_break.unwrap_or(1),
            );
            seen.insert(key.clone());
            let existed = self.prices.contains_key(&key);
            let rec = self.prices.entry(key).or_insert_with(|| PriceRec {
                is_active: true,
                currency,
                ..PriceRec::default()
            });
            // Values that are null or 0 are ignored and do not overwrite (S-PRICEIMPORT).
            let set = |target: &mut Option<Decimal>,
                       name: &str,
                       value: Option<models_runtime::DecimalNumber>| {
                if fields.contains(name)
                    && let Some(v) = value
                    && !v.0.is_zero()
                {
                    *target = Some(v.0);
                }
            };
            set(&mut rec.price_sale, "PriceSale", row.price_sale);
            set(&mut rec.cost_purchase, "CostPurchase", row.cost_purchase);
            set(&mut rec.cost_unit, "CostUnit", row.cost_unit);
            set(
                &mut rec.price_recommended,
                "PriceRecommended",
                row.price_recommended,
            );
            set(&mut rec.price_previous, "PricePrevious", row.price_previous);
            set(&mut rec.price_catalog, "PriceCatalog", row.price_catalog);
            if fields.contains("PriceRule") {
                if let Some(rule) = row.price_rule.filter(|r| *r != 0) {
                    rec.price_rule = Some(rule);
                }
                if let Some(value) = row.price_rule_value.filter(|v| !v.0.is_zero()) {
                    rec.price_rule_value = Some(value.0);
                }
            }
            if fields.contains("IsPriceDiscountable")
                && let Some(v) = row.is_price_discountable
            {
                rec.is_price_discountable = Some(v);
            }
            if fields.contains("IsActive")
                && let Some(v) = row.is_active
            {
                rec.is_active = v;
            }
            rec.updated = Some(at);
            job.count_applied(existed);
        }
        if header.full_file {
            let lists: BTreeSet<String> = seen.iter().map(|(_, l, _)| l.clone()).collect();
            let mut deactivated = 0;
            for (key, rec) in self.prices.iter_mut() {
                if lists.contains(&key.1) && !seen.contains(key) && rec.is_active {
                    rec.is_active = false;
                    rec.updated = Some(at);
                    deactivated += 1;
                }
            }
            job.note(
                format!("FullFile: {deactivated} prices not in the file were deactivated."),
                at,
            );
        }
    }

    /// The default price (ex VAT) of a SKU on a price list.
    pub fn price_of(&self, sku: &str, list_code: &str) -> Option<&PriceRec> {
        self.prices
            .get(&(sku.to_owned(), list_code.to_owned(), 1))
            .filter(|p| p.is_active)
    }

    /// Active on-hand of a SKU over every location.
    pub fn onhand_of(&self, sku: &str) -> Decimal {
        self.onhands
            .iter()
            .filter(|((p, _, _), rec)| p == sku && rec.is_active)
            .map(|(_, rec)| rec.onhand_value)
            .sum()
    }
}

fn price_field_is_empty(row: &connect::SkuPriceList, field: &str) -> bool {
    let empty = |v: Option<models_runtime::DecimalNumber>| v.is_none_or(|v| v.0.is_zero());
    match field {
        "PriceSale" => empty(row.price_sale),
        "CostPurchase" => empty(row.cost_purchase),
        "CostUnit" => empty(row.cost_unit),
        "PriceRecommended" => empty(row.price_recommended),
        "PricePrevious" => empty(row.price_previous),
        "PriceCatalog" => empty(row.price_catalog),
        "IsPriceDiscountable" => row.is_price_discountable.is_none(),
        "IsActive" => row.is_active.is_none(),
        "PriceRule" => row.price_rule.is_none_or(|r| r == 0),
        _ => false,
    }
}

/// The row as JSON, truncated like Norce's `ImportedRow` (which "may be truncated").
pub fn truncate_row<T: serde::Serialize>(row: &T) -> String {
    let text = serde_json::to_string(row).unwrap_or_default();
    if text.chars().count() > 500 {
        text.chars().take(500).collect()
    } else {
        text
    }
}

/// Whether `text` is exactly how `id` is written in decimal (what `id.to_string() == text`
/// says), without allocating: order lookups scan every order.
fn is_decimal_of(text: &str, id: i64) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && !digits.starts_with('+')
        && (digits == "0" || !digits.starts_with('0'));
    canonical && text.parse::<i64>().is_ok_and(|n| n == id) && !(text.starts_with('-') && id == 0)
}

#[cfg(test)]
mod decimal_tests {
    use super::is_decimal_of;

    #[test]
    fn agrees_with_to_string() {
        for id in [0_i64, 7, 42, 100_001, -5, i64::MAX, i64::MIN] {
            for text in [
                "0",
                "7",
                "07",
                "+7",
                "42",
                "100001",
                "-5",
                "-0",
                "",
                "-",
                "x",
                "9223372036854775807",
                "-9223372036854775808",
            ] {
                assert_eq!(
                    is_decimal_of(text, id),
                    id.to_string() == text,
                    "{text:?} vs {id}"
                );
            }
        }
    }
}

#[cfg(test)]
mod order_index_tests {
    use super::*;

    #[test]
    fn answers_like_the_scan_indexed_or_not() {
        let dataset = crate::dataset::Dataset::generate(
            &crate::DatasetConfig {
                orders: 30,
                ..crate::DatasetConfig::default()
            },
            Utc::now(),
        );
        let mut inner = Inner::seed(&NorceConfig::default(), &dataset, Utc::now());
        // An order whose ERP number was set without re-indexing is still found (by the scan).
        let id = *inner.orders.keys().nth(3).unwrap();
        inner.orders.get_mut(&id).unwrap().erp_order_no = Some("ERP-LATE".into());
        let index = std::mem::take(&mut inner.order_index);
        let mut partial = OrderIndex::default();
        for order in inner.orders.values().step_by(2) {
            partial.add(order);
        }
        for index in [&index, &partial] {
            for order in inner.orders.values() {
                let scan = |no: &str| {
                    inner
                        .orders
                        .values()
                        .find(|o| o.matches_order_no(no))
                        .map(|o| o.id)
                };
                assert_eq!(
                    index.by_quotation(&inner.orders, order.quotation_id),
                    Some(order.id)
                );
                for no in [order.order_no.clone(), order.id.to_string()]
                    .into_iter()
                    .chain(order.erp_order_no.clone())
                {
                    assert_eq!(index.by_number(&inner.orders, &no), scan(&no), "{no}");
                }
            }
            assert_eq!(index.by_number(&inner.orders, "ERP-LATE"), Some(id));
            assert_eq!(index.by_number(&inner.orders, "NC-0"), None);
            assert_eq!(index.by_quotation(&inner.orders, -1), None);
        }
    }
}
