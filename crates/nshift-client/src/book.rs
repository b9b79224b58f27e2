//! Booking a shipment exactly once: store under a unique `orderNo`, search before re-posting,
//! print the stored shipment (which nShift prints at most once), recover from the feed. The
//! steps, the guarantee and its limits are in the crate README, "`book_once`".

use std::collections::BTreeMap;
use std::time::Duration;

use client_core::ErrorKind;
use http::StatusCode;
use nshift_models::delivery::operations::DeliveryApi as _;
use nshift_models::delivery::{
    ListShipmentPdfsPath, PrintConfig, Shipment, ShipmentInfo, StoredShipmentInfo,
};
use tracing::Instrument as _;

use crate::client::NshiftClient;
use crate::error::Error;
use crate::feed::FEED_START;
use crate::label::{Label, PrintedShipment};

/// The operation named in `book_once`'s own refusals.
const BOOK_ONCE: &str = "BookOnce";

/// How a [`Booking`] came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BookingOutcome {
    /// This call printed the stored shipment.
    Printed,
    /// An earlier call (maybe one that crashed or lost its answer) had printed it; nothing
    /// new was booked.
    AlreadyBooked,
}

/// The result of [`NshiftClient::book_once`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Booking {
    /// The order number the booking is keyed on (`shipment.orderNo`).
    pub order_no: String,
    /// The stored shipment that was (or had been) printed, when known.
    pub stored_id: Option<String>,
    /// Whether this call printed it.
    pub outcome: BookingOutcome,
    /// The shipments (two for a normal + return shipment): from the print answer, or when
    /// [`BookingOutcome::AlreadyBooked`] from the printed-shipments feed with the labels still
    /// downloadable (documents expire after an hour).
    pub shipments: Vec<PrintedShipment>,
    /// `false` when the order is printed but its shipments could not be read back (not in the
    /// feed yet, or the key cannot read it); the booking exists all the same.
    pub details_recovered: bool,
    /// Other, never printed stored shipments of the order (a lost store answer, a concurrent
    /// call): harmless, and may be deleted (`delete_stored_shipment`).
    pub redundant_stored_ids: Vec<String>,
}

fn status_of(stored: &StoredShipmentInfo) -> String {
    let status = stored.status.as_ref();
    status
        .map(|s| s.as_str().to_ascii_uppercase())
        .unwrap_or_default()
}

fn numeric_key(id: &str) -> (u64, String) {
    (id.parse::<u64>().unwrap_or(u64::MAX), id.to_owned())
}

/// Who may book an order at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writers {
    /// Concurrent callers may book the same order: after a store, search again so that every
    /// caller prints the same (canonical) stored shipment.
    Several,
    /// The caller is the order's only writer: the stored shipment a store answered READY is
    /// printed without searching again.
    One,
}

/// The stored shipment every caller picks (printed first, then the lowest id) and the
/// unprinted others.
fn canonical(mut candidates: Vec<StoredShipmentInfo>) -> Option<(StoredShipmentInfo, Vec<String>)> {
    candidates.sort_by_key(|c| (status_of(c) != "PRINTED", numeric_key(&c.id)));
    let mut iter = candidates.into_iter();
    let first = iter.next()?;
    let others = iter.filter(|c| status_of(c) != "PRINTED").map(|c| c.id);
    Some((first, others.collect()))
}

/// Failures after which the next round may search and try again: those that may go away or
/// may have been carried out.
fn worth_another_round(e: &Error) -> bool {
    e.kind().is_retryable() || e.kind() == ErrorKind::AmbiguousWrite
}

/// The stored shipment is gone (deleted meanwhile).
fn is_gone(e: &Error) -> bool {
    e.status()
        .is_some_and(|s| s == StatusCode::NOT_FOUND || s == StatusCode::GONE)
}

impl NshiftClient {
    /// Books `shipment` for `order_no` **exactly once** with the client's print configuration;
    /// see [`NshiftClient::book_once_with`].
    pub async fn book_once(&self, order_no: &str, shipment: Shipment) -> Result<Booking, Error> {
        let config = self.print_config.clone();
        self.book_once_with(order_no, shipment, &config).await
    }

    /// [`NshiftClient::book_once`] for a caller that is the **only writer** of `order_no`
    /// (one worker per order, e.g. under a lease): one stored-shipment search fewer per
    /// booking. The search before a store stays (it finds what a lost answer or a crash left
    /// behind), and so does the search after every failed step; what goes is the search
    /// between a successful store and the print, whose only purpose is to make concurrent
    /// callers agree on one stored shipment: the stored shipment the store answered READY is
    /// printed directly. Two callers booking the same order at the same time through this
    /// method could each print their own stored shipment: use [`NshiftClient::book_once`]
    /// unless nothing else books the order meanwhile.
    pub async fn book_once_exclusive(
        &self,
        order_no: &str,
        shipment: Shipment,
    ) -> Result<Booking, Error> {
        let config = self.print_config.clone();
        self.book_once_as(order_no, shipment, &config, Writers::One)
            .await
    }

    /// Books `shipment` for `order_no` exactly once, even across retries, lost answers and
    /// crashes, printing with `print`. `order_no` becomes `shipment.orderNo` (a different one
    /// already there is refused) and must be unique per booking; the Developer ID is added.
    /// Ambiguous or throttled steps lead to a new round that searches first, never to a blind
    /// repeat; [`Error::BookingUnresolved`] when the rounds run out, [`Error::NotPrintable`]
    /// for a WARNED, INVALID or FAILED stored shipment.
    pub async fn book_once_with(
        &self,
        order_no: &str,
        shipment: Shipment,
        print: &PrintConfig,
    ) -> Result<Booking, Error> {
        self.book_once_as(order_no, shipment, print, Writers::Several)
            .await
    }

    async fn book_once_as(
        &self,
        order_no: &str,
        mut shipment: Shipment,
        print: &PrintConfig,
        writers: Writers,
    ) -> Result<Booking, Error> {
        let order_no = order_no.trim().to_owned();
        if order_no.is_empty() {
            let reason = "book_once needs a non-empty order number";
            return Err(Error::invalid(BOOK_ONCE, reason));
        }
        let existing = shipment.order_no.as_deref().map(str::trim);
        if let Some(existing) = existing.filter(|o| !o.is_empty() && *o != order_no) {
            let reason = format!(
                "the shipment's orderNo `{existing}` differs from the order number `{order_no}` passed to book_once"
            );
            return Err(Error::invalid(BOOK_ONCE, reason));
        }
        shipment.order_no = Some(order_no.clone());
        self.apply_developer_id(&mut shipment);
        let span = tracing::info_span!("nshift.book_once", order_no = %order_no);
        let rounds = self.book_rounds(&order_no, &shipment, print, writers);
        rounds.instrument(span).await
    }

    async fn book_rounds(
        &self,
        order_no: &str,
        shipment: &Shipment,
        print: &PrintConfig,
        writers: Writers,
    ) -> Result<Booking, Error> {
        let options = &self.book_options;
        let (mut failures, mut last) = (0u32, None);
        // The stored shipment this call's store just answered READY, printed without searching
        // again when the caller is the only writer (nothing else can have stored one since the
        // search that came before the store).
        let mut stored_now: Option<StoredShipmentInfo> = None;
        // A print refused (422/404) for this stored id: returned if it is still READY next round.
        let mut print_refused: Option<(String, Error)> = None;
        // A hard cap: a store or a print without failure moves one step forward.
        for _ in 0..options.max_rounds.saturating_mul(3).max(3) {
            if failures >= options.max_rounds {
                break;
            }
            let found = match stored_now.take() {
                Some(info) => Some((info, Vec::new())),
                None => match self.find_stored_by_order_no(order_no).await {
                    Ok(found) => canonical(found),
                    Err(e) if worth_another_round(&e) => {
                        last = Some(self.failed_round(e, &mut failures).await);
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            let Some((stored, redundant)) = found else {
                if options.check_feed_before_store {
                    let printed = self.printed_for_order(order_no).await?;
                    if !printed.is_empty() {
                        tracing::info!(
                            "order already printed (found in the printed-shipments feed)"
                        );
                        return self
                            .already_booked(order_no, None, Vec::new(), Ok(printed))
                            .await;
                    }
                }
                match self.store_shipment(shipment.clone()).await {
                    Ok(info) => {
                        tracing::info!(stored_id = %info.id, status = %status_of(&info), "shipment stored");
                        // Any other status (or none in the answer) is read back by the search.
                        if writers == Writers::One && status_of(&info) == "READY" {
                            stored_now = Some(info);
                        }
                    }
                    Err(e) if worth_another_round(&e) => {
                        tracing::warn!(error = %e, "store ended ambiguously; searching before posting again");
                        last = Some(self.failed_round(e, &mut failures).await);
                    }
                    Err(e) => return Err(e),
                }
                continue;
            };
            match status_of(&stored).as_str() {
                "PRINTED" => {
                    tracing::info!(stored_id = %stored.id, "order already printed; reading its shipments back");
                    let printed = self.printed_for_order(order_no).await;
                    return self
                        .already_booked(order_no, Some(stored.id), redundant, printed)
                        .await;
                }
                "READY" => {}
                status => {
                    return Err(Error::NotPrintable {
                        order_no: order_no.to_owned(),
                        stored_id: stored.id,
                        status: status.to_owned(),
                        statuses: stored.statuses.unwrap_or_default(),
                    });
                }
            }
            if let Some((id, e)) = print_refused.take()
                && id == stored.id
            {
                return Err(e);
            }
            match self.print_stored_shipment(&stored.id, print).await {
                Ok(shipments) => {
                    tracing::info!(stored_id = %stored.id, count = shipments.len(), "stored shipment printed");
                    return Ok(Booking {
                        order_no: order_no.to_owned(),
                        stored_id: Some(stored.id),
                        outcome: BookingOutcome::Printed,
                        shipments,
                        details_recovered: true,
                        redundant_stored_ids: redundant,
                    });
                }
                Err(e) if worth_another_round(&e) => {
                    tracing::warn!(error = %e, "print ended ambiguously; checking the stored shipment before printing again");
                    last = Some(self.failed_round(e, &mut failures).await);
                }
                // Printed (422 not READY) or deleted (404) meanwhile: look again. A 422 while
                // it is still READY is a real refusal, returned next round.
                Err(e) if matches!(e, Error::Validation { .. }) || is_gone(&e) => {
                    failures += 1;
                    print_refused = Some((stored.id, e));
                }
                Err(e) => return Err(e),
            }
        }
        let last = last.or(print_refused.map(|(_, e)| e));
        let last = last.unwrap_or_else(|| Error::invalid(BOOK_ONCE, "no attempt made"));
        Err(Error::BookingUnresolved {
            order_no: order_no.to_owned(),
            attempts: failures,
            last: Box::new(last),
        })
    }

    /// Counts a failed round and pauses before the next (a 429's `Retry-After`, at most 60 s,
    /// else the configured `retry_delay`); returns `e`, now the last failure.
    async fn failed_round(&self, e: Error, failures: &mut u32) -> Error {
        *failures += 1;
        let delay = match e.retry_after() {
            Some(d) if e.kind() == ErrorKind::Throttled => d.min(Duration::from_secs(60)),
            _ => self.book_options.retry_delay,
        };
        Self::pause(delay).await;
        e
    }

    /// The order's shipments from the printed-shipments feed (the latest state of each).
    async fn printed_for_order(&self, order_no: &str) -> Result<Vec<ShipmentInfo>, Error> {
        let mut found = BTreeMap::new();
        let mut cursor = FEED_START.to_owned();
        for _ in 0..self.book_options.max_feed_pages.max(1) {
            let page = self.fetch_shipments(&cursor).await?;
            let mine = page.items.into_iter();
            let mine = mine.filter(|info| info.order_no.as_deref() == Some(order_no));
            found.extend(mine.map(|info| (numeric_key(&info.id), info)));
            if page.done || page.fetch_id == cursor {
                break;
            }
            cursor = page.fetch_id;
            Self::pause(page.min_delay).await;
        }
        Ok(found.into_values().collect())
    }

    /// The booking of an order found printed, its shipments read back from the feed (`printed`)
    /// with the labels still available; not recovered when the feed has none or is forbidden.
    async fn already_booked(
        &self,
        order_no: &str,
        stored_id: Option<String>,
        redundant: Vec<String>,
        printed: Result<Vec<ShipmentInfo>, Error>,
    ) -> Result<Booking, Error> {
        let mut shipments = Vec::new();
        let details_recovered = match printed {
            Ok(infos) if !infos.is_empty() => {
                for info in infos {
                    let labels = self.labels_of(&info.id).await;
                    shipments.push(PrintedShipment { info, labels });
                }
                true
            }
            Ok(_) => {
                tracing::warn!("printed stored shipment not (yet) in the printed-shipments feed");
                false
            }
            Err(e) if e.status() == Some(StatusCode::FORBIDDEN) => {
                tracing::warn!(
                    "the key cannot read the printed-shipments feed; details not recovered"
                );
                false
            }
            Err(e) => return Err(e),
        };
        Ok(Booking {
            order_no: order_no.to_owned(),
            stored_id,
            outcome: BookingOutcome::AlreadyBooked,
            shipments,
            details_recovered,
            redundant_stored_ids: redundant,
        })
    }

    /// Best effort: the documents of a shipment still available.
    async fn labels_of(&self, shipment_id: &str) -> Vec<Label> {
        let path = ListShipmentPdfsPath {
            shipment_id: shipment_id.to_owned(),
        };
        let documents = match self.list_shipment_pdfs(&path, &Default::default()).await {
            Ok(documents) => documents,
            Err(e) => {
                tracing::debug!(error = %e, "documents not listed");
                return Vec::new();
            }
        };
        let mut labels = Vec::new();
        for document in documents {
            match self.fetch_document(shipment_id, &document.id).await {
                Ok(label) => labels.push(Label {
                    description: document.description,
                    ..label
                }),
                Err(e) => tracing::debug!(error = %e, "document no longer available"),
            }
        }
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(id: &str, status: &str) -> StoredShipmentInfo {
        StoredShipmentInfo {
            id: id.into(),
            href: String::new(),
            status: Some(status.into()),
            ..Default::default()
        }
    }

    #[test]
    fn canonical_prefers_printed_then_lowest_id() {
        let ready = |id| stored(id, "READY");
        let (pick, others) = canonical(vec![ready("12"), ready("9"), ready("100")]).unwrap();
        assert_eq!(pick.id, "9");
        assert_eq!(others, vec!["12".to_owned(), "100".to_owned()]);
        let (pick, others) = canonical(vec![ready("9"), stored("12", "PRINTED")]).unwrap();
        assert_eq!(pick.id, "12");
        assert_eq!(others, vec!["9".to_owned()]);
        assert!(canonical(Vec::new()).is_none());
    }
}
