//! The simulator's records: shipments, stored shipments, documents and the status-event log.
//!
//! Everything lives behind one mutex in [`super::NshiftState`]; a create computes its result
//! first and then commits it in one step under the lock, so it is all or nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use models_runtime::Timestamp;
use nshift_models::delivery::{
    Alert, AlertParcel, AlertShipmentInfo, Party, PriceData, PriceHistoryEntry, Shipment,
    ShipmentInfo, ShipmentStatus, StoredShipmentInfo, StoredShipmentStatus, ValidationStatus,
};

use super::config::ProgressConfig;

/// A configured number of seconds as a duration, capped at 100 years so date arithmetic
/// cannot overflow.
pub fn config_secs(secs: u64) -> Duration {
    Duration::seconds(i64::try_from(secs.min(100 * 365 * 86_400)).unwrap_or(0))
}

/// nShift's timestamp form (`2015-06-03T13:18:30.904+0000`).
pub fn ts(at: DateTime<Utc>) -> Timestamp {
    Timestamp::from_datetime_nshift(at)
}

/// One parcel of a booked shipment.
#[derive(Debug, Clone)]
pub struct ParcelRecord {
    /// Carrier parcel number.
    pub parcel_no: String,
    /// Parcel number of the matching return parcel.
    pub return_parcel_no: Option<String>,
    /// Parcel reference as sent.
    pub reference: Option<String>,
    /// Weight in kg of its parcel row as read (admin only).
    pub weight: Option<f64>,
}

/// A booked (printed) shipment.
#[derive(Debug, Clone)]
pub struct ShipmentRecord {
    pub id: u64,
    /// The API key that booked it.
    pub key_id: String,
    pub order_no: Option<String>,
    pub reference: Option<String>,
    /// The sender's `shipmentNo` if it set one, otherwise nShift's number ([`Store::shipment_no`]).
    pub shipment_no: Option<String>,
    pub service_id: String,
    pub partner_id: String,
    pub sender: Party,
    pub receiver: Party,
    pub agent_id: Option<String>,
    pub parcels: Vec<ParcelRecord>,
    pub normal_shipment: bool,
    pub return_shipment: bool,
    pub created: DateTime<Utc>,
    pub ship_date: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub developer_id: Option<String>,
    pub profile_group: Option<String>,
    pub test: bool,
    pub addons: Vec<String>,
    /// Documents printed with the shipment.
    pub documents: Vec<u64>,
    /// The stored shipment it was printed from.
    pub stored_id: Option<u64>,
    /// How many steps of its timeline are already in the event log.
    pub emitted: usize,
    /// Its price from the account's price list (`None` when the service has no entry).
    pub price: Option<PriceData>,
}

impl ShipmentRecord {
    /// The status steps up to cancellation, in time order (not all of them reached yet).
    pub fn timeline(
        &self,
        progress: &ProgressConfig,
        test_progress: bool,
    ) -> Vec<(DateTime<Utc>, ShipmentStatus)> {
        let after = |secs: u64| self.created + config_secs(secs);
        let mut steps = vec![(self.created, ShipmentStatus::Printed)];
        if !self.test || test_progress {
            let mut later = vec![
                (
                    after(progress.dispatching_after_secs),
                    ShipmentStatus::Dispatching,
                ),
                (
                    after(progress.out_for_delivery_after_secs),
                    if self.agent_id.is_some() {
                        ShipmentStatus::Delivering
                    } else {
                        ShipmentStatus::Outfordelivery
                    },
                ),
                (
                    after(progress.delivered_after_secs),
                    ShipmentStatus::Delivered,
                ),
            ];
            later.sort_by_key(|(at, _)| *at);
            steps.extend(later);
        }
        if let Some(cancelled) = self.cancelled_at {
            steps.retain(|(at, _)| *at <= cancelled);
            steps.push((cancelled, ShipmentStatus::Cancelled));
        }
        steps
    }

    /// The status at `now` and when it was reached.
    pub fn status_at(
        &self,
        now: DateTime<Utc>,
        progress: &ProgressConfig,
        test_progress: bool,
    ) -> (ShipmentStatus, DateTime<Utc>) {
        self.timeline(progress, test_progress)
            .into_iter()
            .take_while(|(at, _)| *at <= now)
            .last()
            .map(|(at, status)| (status, at))
            .unwrap_or((ShipmentStatus::Printed, self.created))
    }

    /// The summary the API returns, with `status` and `changed` as given.
    pub fn info(
        &self,
        href_base: &str,
        status: ShipmentStatus,
        changed: DateTime<Utc>,
    ) -> ShipmentInfo {
        ShipmentInfo {
            href: format!("{href_base}/shipments/{}", self.id),
            id: self.id.to_string(),
            status: Some(status),
            shipment_no: self.shipment_no.clone(),
            order_no: self.order_no.clone(),
            reference: self.reference.clone(),
            service_id: Some(self.service_id.clone()),
            parcel_count: Some(self.parcels.len() as i64),
            snd_name: self.sender.name.clone(),
            snd_zipcode: self.sender.zipcode.clone(),
            snd_city: self.sender.city.clone(),
            snd_country: self.sender.country.clone(),
            rcv_name: self.receiver.name.clone(),
            rcv_zipcode: self.receiver.zipcode.clone(),
            rcv_city: self.receiver.city.clone(),
            rcv_country: self.receiver.country.clone(),
            created: Some(ts(self.created)),
            changed: Some(ts(changed)),
            ship_date: Some(ts(self.ship_date)),
            return_shipment: Some(self.return_shipment),
            normal_shipment: Some(self.normal_shipment),
            consolidated: Some(false),
            parcels: Some(
                self.parcels
                    .iter()
                    .map(|p| nshift_models::delivery::ParcelInfo {
                        parcel_no: Some(p.parcel_no.clone()),
                        return_parcel_no: p.return_parcel_no.clone(),
                        reference: p.reference.clone(),
                    })
                    .collect(),
            ),
            pdfs: None,
            previous_pdfs: None,
            prints: None,
        }
    }

    /// Its entry in the price-history feed (POST /prices/history).
    pub fn price_entry(&self) -> PriceHistoryEntry {
        PriceHistoryEntry {
            shipment_id: Some(self.id.to_string()),
            shipment_no: self.shipment_no.clone(),
            order_no: self.order_no.clone(),
            reference: self.reference.clone(),
            service_id: Some(self.service_id.clone()),
            partner_id: Some(self.partner_id.clone()),
            print_date: Some(ts(self.created)),
            parcel_count: Some(self.parcels.len() as i64),
            price_data: self.price.clone(),
        }
    }

    /// The alert for a status event of this shipment.
    pub fn alert(
        &self,
        status: &ShipmentStatus,
        at: DateTime<Utc>,
        registered: DateTime<Utc>,
    ) -> Alert {
        Alert {
            alert_code: Some(format!("STATUS_TRANSITION_{}", status.as_str())),
            alert_time: Some(ts(at)),
            alert_created: Some(ts(registered)),
            alert_info: Some("STATUS".to_owned()),
            shipment_info: Some(AlertShipmentInfo {
                shipment_no: self.shipment_no.clone(),
                parcels: Some(
                    self.parcels
                        .iter()
                        .map(|p| AlertParcel {
                            parcel_no: Some(p.parcel_no.clone()),
                            return_parcel_no: p.return_parcel_no.clone(),
                            reference: p.reference.clone(),
                            part_order_no: None,
                        })
                        .collect(),
                ),
                order_no: self.order_no.clone(),
                reference: self.reference.clone(),
                print_date: Some(ts(self.created)),
                ship_date: Some(ts(self.ship_date)),
                service_id: Some(self.service_id.clone()),
                partner_id: Some(self.partner_id.clone()),
                parcel_count: Some(self.parcels.len() as i64),
                profile_group: self.profile_group.clone(),
                normal_shipment: Some(self.normal_shipment),
                return_shipment: Some(self.return_shipment),
            }),
        }
    }
}

/// A printed document.
#[derive(Debug, Clone)]
pub struct Document {
    pub id: u64,
    pub shipment_id: u64,
    pub description: String,
    /// ZPL text rather than a PDF.
    pub zpl: bool,
    pub bytes: Vec<u8>,
    pub expires_at: DateTime<Utc>,
}

/// A stored shipment.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub id: u64,
    pub key_id: String,
    pub shipment: Shipment,
    /// Sender and receiver completed from the address book (for the summary).
    pub sender: Party,
    pub receiver: Party,
    pub status: StoredShipmentStatus,
    pub statuses: Vec<ValidationStatus>,
    pub created: DateTime<Utc>,
    pub changed: DateTime<Utc>,
    pub profile_group: Option<String>,
    /// Deleted through the API: gone for clients, kept for the admin view.
    pub deleted: bool,
    /// Shipments printed from it.
    pub printed: Vec<u64>,
}

impl StoredRecord {
    /// The summary the API returns.
    pub fn info(&self, href_base: &str) -> StoredShipmentInfo {
        let service = &self.shipment.service;
        StoredShipmentInfo {
            href: format!("{href_base}/stored-shipments/{}", self.id),
            id: self.id.to_string(),
            status: Some(self.status.clone()),
            order_no: self.shipment.order_no.clone(),
            reference: self.shipment.sender_reference.clone(),
            service_id: Some(service.id.clone()),
            parcel_count: Some(self.shipment.parcels.iter().map(|p| p.copies.max(0)).sum()),
            snd_name: self.sender.name.clone(),
            snd_zipcode: self.sender.zipcode.clone(),
            snd_city: self.sender.city.clone(),
            snd_country: self.sender.country.clone(),
            rcv_name: self.receiver.name.clone(),
            rcv_zipcode: self.receiver.zipcode.clone(),
            rcv_city: self.receiver.city.clone(),
            rcv_country: self.receiver.country.clone(),
            created: Some(ts(self.created)),
            changed: Some(ts(self.changed)),
            ship_date: Some(ts(ship_date(&self.shipment, self.created))),
            return_shipment: Some(service.return_shipment.unwrap_or(false)),
            normal_shipment: Some(
                service
                    .normal_shipment
                    .unwrap_or(!service.return_shipment.unwrap_or(false)),
            ),
            addons: Some(
                service
                    .addons
                    .iter()
                    .flatten()
                    .map(|a| a.id.clone())
                    .collect(),
            ),
            statuses: Some(self.statuses.clone()),
        }
    }
}

/// The shipment's `shipDate` (`YYYY-MM-DD`, or a date-time) or else `default`.
pub fn ship_date(shipment: &Shipment, default: DateTime<Utc>) -> DateTime<Utc> {
    let Some(text) = shipment.ship_date.as_deref().map(str::trim) else {
        return default;
    };
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map_or(default, |d| d.and_utc());
    }
    Timestamp::parse(text).map_or(default, |t| t.to_utc())
}

/// One status event in the feed log.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    /// Position in the log, from 1; the feeds' `fetchId` is the last one delivered.
    pub seq: u64,
    pub shipment_id: u64,
    pub status: ShipmentStatus,
    /// When the status was reached.
    pub at: DateTime<Utc>,
    /// When the event entered the log.
    pub registered: DateTime<Utc>,
}

/// A JWT issued by `/sessions/jwt`.
#[derive(Debug, Clone)]
pub struct Session {
    /// The API key it was issued to (its licences and profile apply).
    pub key_id: String,
    /// When it stops being accepted (virtual time).
    pub expires_at: DateTime<Utc>,
}

/// All mutable state.
#[derive(Debug)]
pub struct Store {
    next_shipment_id: u64,
    next_stored_id: u64,
    next_document_id: u64,
    next_parcel_serial: u64,
    shipments: BTreeMap<u64, ShipmentRecord>,
    stored: BTreeMap<u64, StoredRecord>,
    /// Stored shipment ids by lower-cased `orderNo` (the search relay's `book_once` makes for
    /// every order), in id order. An order number never changes after the insert.
    stored_by_order_no: HashMap<String, Vec<u64>>,
    documents: HashMap<u64, Document>,
    /// (expiry, id) of the documents whose bytes are still kept, soonest first.
    expiring: BTreeSet<(DateTime<Utc>, u64)>,
    events: Vec<FeedEvent>,
    /// Shipments whose timeline may still add events to the log (see [`Store::materialize`]).
    open: BTreeSet<u64>,
    /// Issued JWTs by token.
    sessions: HashMap<String, Session>,
    sessions_issued: u64,
}

impl Store {
    /// Empty, with the id counters at their starting points (ids look like the RAML examples).
    pub fn new() -> Self {
        Self {
            next_shipment_id: 5_666_301,
            next_stored_id: 4_127_501,
            next_document_id: 10_234_401,
            next_parcel_serial: 100_001,
            shipments: BTreeMap::new(),
            stored: BTreeMap::new(),
            stored_by_order_no: HashMap::new(),
            documents: HashMap::new(),
            expiring: BTreeSet::new(),
            events: Vec::new(),
            open: BTreeSet::new(),
            sessions: HashMap::new(),
            sessions_issued: 0,
        }
    }

    pub fn shipments(&self) -> impl Iterator<Item = &ShipmentRecord> {
        self.shipments.values()
    }

    pub fn shipment(&self, id: u64) -> Option<&ShipmentRecord> {
        self.shipments.get(&id)
    }

    pub fn shipment_mut(&mut self, id: u64) -> Option<&mut ShipmentRecord> {
        self.shipments.get_mut(&id)
    }

    pub fn stored_all(&self) -> impl Iterator<Item = &StoredRecord> {
        self.stored.values()
    }

    pub fn stored(&self, id: u64) -> Option<&StoredRecord> {
        self.stored.get(&id).filter(|s| !s.deleted)
    }

    pub fn stored_mut(&mut self, id: u64) -> Option<&mut StoredRecord> {
        self.stored.get_mut(&id).filter(|s| !s.deleted)
    }

    pub fn document(&self, id: u64) -> Option<&Document> {
        self.documents.get(&id)
    }

    /// Drops the bytes of expired documents (their ids stay known, to answer 404/410).
    pub fn forget_expired(&mut self, now: DateTime<Utc>) {
        while let Some(&(expires_at, id)) = self.expiring.first()
            && expires_at <= now
        {
            self.expiring.pop_first();
            if let Some(doc) = self.documents.get_mut(&id) {
                doc.bytes = Vec::new();
            }
        }
    }

    pub fn next_shipment_id(&mut self) -> u64 {
        let id = self.next_shipment_id;
        self.next_shipment_id += 1;
        id
    }

    pub fn next_document_id(&mut self) -> u64 {
        let id = self.next_document_id;
        self.next_document_id += 1;
        id
    }

    /// A carrier-like parcel number for a carrier.
    ///
    /// PostNord: an SSCC with application identifier 00 (`00373500…` plus GS1 check digit);
    /// DHL: `JJD…`; Budbee: `BUD…`; others `SBX…`.
    pub fn next_parcel_no(&mut self, partner_id: &str) -> String {
        let serial = self.next_parcel_serial;
        self.next_parcel_serial += 1;
        match partner_id.to_ascii_uppercase().as_str() {
            "PLAB" => {
                let body = format!("3735000{serial:010}");
                format!("00{body}{}", gs1_check_digit(&body))
            }
            "DHL" => format!("JJD0014600{serial:010}"),
            "BUDBEE" => format!("BUD{serial:012}"),
            _ => format!("SBX{serial:012}"),
        }
    }

    /// nShift's shipment number of the shipment with this id: ten digits, like the
    /// `"4387174669"` of the published FetchAlerts example, derived from the id so that the same
    /// run gives the same numbers.
    pub fn shipment_no(id: u64) -> String {
        (4_380_000_000 + id % 10_000_000).to_string()
    }

    /// Commits booked shipments and their documents at once.
    pub fn insert_shipments(&mut self, records: Vec<ShipmentRecord>, documents: Vec<Document>) {
        for doc in documents {
            self.expiring.insert((doc.expires_at, doc.id));
            self.documents.insert(doc.id, doc);
        }
        for record in records {
            self.open.insert(record.id);
            self.shipments.insert(record.id, record);
        }
    }

    pub fn insert_stored(&mut self, make: impl FnOnce(u64) -> StoredRecord) -> &StoredRecord {
        let id = self.next_stored_id;
        self.next_stored_id += 1;
        let record = self.stored.entry(id).or_insert_with(|| make(id));
        if let Some(order_no) = &record.shipment.order_no {
            self.stored_by_order_no
                .entry(order_no.to_lowercase())
                .or_default()
                .push(id);
        }
        record
    }

    /// Every stored shipment (deleted ones too, like [`Store::stored_all`]) whose `orderNo`
    /// equals `order_no` ignoring case, in id order.
    pub fn stored_with_order_no(&self, order_no: &str) -> impl Iterator<Item = &StoredRecord> {
        self.stored_by_order_no
            .get(&order_no.to_lowercase())
            .into_iter()
            .flatten()
            .filter_map(|id| self.stored.get(id))
    }

    /// Records a new JWT made by `make` from its sequence number (1, 2, ...); returns the token.
    pub fn issue_session(&mut self, session: Session, make: impl FnOnce(u64) -> String) -> String {
        self.sessions_issued += 1;
        let token = make(self.sessions_issued);
        self.sessions.insert(token.clone(), session);
        token
    }

    /// The session of a JWT, expired or not.
    pub fn session(&self, token: &str) -> Option<&Session> {
        self.sessions.get(token)
    }

    /// How many JWTs were issued.
    pub fn sessions_issued(&self) -> u64 {
        self.sessions_issued
    }

    /// Number of booked shipments (the price-history feed's head).
    pub fn shipment_total(&self) -> u64 {
        self.shipments.len() as u64
    }

    /// Shipments in booking (id) order after the first `cursor`, at most `limit`, and whether
    /// more remain.
    pub fn shipments_after(&self, cursor: u64, limit: usize) -> (Vec<&ShipmentRecord>, bool) {
        let skip = usize::try_from(cursor).unwrap_or(usize::MAX);
        let page: Vec<_> = self.shipments.values().skip(skip).take(limit).collect();
        let more = skip.saturating_add(page.len()) < self.shipments.len();
        (page, more)
    }

    /// Appends every status step reached by `now` and not yet logged, in time order.
    ///
    /// Only open shipments are looked at: one leaves the set once its timeline is logged up to
    /// a final DELIVERED or CANCELLED step, after which its timeline cannot grow (a delivered
    /// shipment cannot be cancelled, a cancelled one is not cancelled again).
    pub fn materialize(
        &mut self,
        now: DateTime<Utc>,
        progress: &ProgressConfig,
        test_progress: bool,
    ) {
        let mut pending = Vec::new();
        let mut closed = Vec::new();
        for record in self.open.iter().filter_map(|id| self.shipments.get(id)) {
            let timeline = record.timeline(progress, test_progress);
            let len = timeline.len();
            let is_final = timeline.last().is_some_and(|(_, status)| {
                matches!(
                    status,
                    ShipmentStatus::Delivered | ShipmentStatus::Cancelled
                )
            });
            let mut emitted = record.emitted;
            for (index, (at, status)) in timeline.into_iter().enumerate().skip(record.emitted) {
                if at > now {
                    break;
                }
                pending.push((at, record.id, index, status));
                emitted = index + 1;
            }
            if is_final && emitted == len {
                closed.push(record.id);
            }
        }
        for id in closed {
            self.open.remove(&id);
        }
        pending.sort_by_key(|(at, id, index, _)| (*at, *id, *index));
        for (at, shipment_id, index, status) in pending {
            if let Some(record) = self.shipments.get_mut(&shipment_id) {
                record.emitted = index + 1;
            }
            let seq = self.events.len() as u64 + 1;
            self.events.push(FeedEvent {
                seq,
                shipment_id,
                status,
                at,
                registered: now,
            });
        }
    }

    /// The last sequence number in the log.
    pub fn head(&self) -> u64 {
        self.events.len() as u64
    }

    /// Events after `cursor`, at most `limit`, and whether more remain.
    pub fn events_after(&self, cursor: u64, limit: usize) -> (&[FeedEvent], bool) {
        let start = usize::try_from(cursor)
            .unwrap_or(usize::MAX)
            .min(self.events.len());
        let end = start.saturating_add(limit).min(self.events.len());
        (&self.events[start..end], end < self.events.len())
    }
}

/// GS1 mod-10 check digit of a digit string.
pub fn gs1_check_digit(digits: &str) -> u32 {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { d })
        .sum();
    (10 - sum % 10) % 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sscc_check_digit() {
        // GS1's worked example: 37610425002123456 → 9.
        assert_eq!(gs1_check_digit("37610425002123456"), 9);
        let mut store = Store::new();
        let no = store.next_parcel_no("PLAB");
        assert!(no.starts_with("00373500"), "{no}");
        assert_eq!(no.len(), 20);
        assert_eq!(
            gs1_check_digit(&no[2..19]),
            no[19..].parse::<u32>().unwrap()
        );
    }
}
