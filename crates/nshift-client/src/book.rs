//! Booking a shipment exactly once: store under a unique `orderNo`, search before re-posting,
//! print the stored shipment (which nShift prints at most once), recover from the feed.

use std::collections::BTreeMap;
use std::time::Duration;

use nshift_models::delivery::{PrintConfig, Shipment, ShipmentInfo, StoredShipmentInfo};
use tracing::Instrument as _;

use client_core::ErrorKind;
use http::StatusCode;

use crate::client::NshiftClient;
use crate::error::Error;
use crate::feed::FEED_START;
use crate::label::PrintedShipment;

/// The operation named in `book_once`'s own refusals.
const BOOK_ONCE: &str = "BookOnce";

/// How a [`Booking`] came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BookingOutcome {
    /// This call printed the stored shipment.
    Printed,
    /// The order had already been printed (by an earlier call, a call that crashed, or a call
    /// whose answer was lost); nothing new was booked.
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
    /// The shipments (normally one; two for a normal + return shipment). With
    /// [`BookingOutcome::Printed`] they come from the print answer with their labels; with
    /// [`BookingOutcome::AlreadyBooked`] from the printed-shipments feed, with the labels that
    /// could still be downloaded (documents expire after one hour).
    pub shipments: Vec<PrintedShipment>,
    /// `false` when the order is known to be printed but its shipments could not be read back
    /// (the key cannot read the printed-shipments feed: no TrackBack licence or a profile-bound
    /// key). The booking still exists; look it up in nShift.
    pub details_recovered: bool,
    /// Other stored shipments with the same order number that were **not** printed (left by a
    /// lost store answer or a concurrent call). They are harmless (never printed by
    /// `book_once`) and may be deleted with [`NshiftClient::delete_stored_shipment`].
    pub redundant_stored_ids: Vec<String>,
}

fn status_of(stored: &StoredShipmentInfo) -> String {
    stored
        .status
        .as_ref()
        .map(|s| s.as_str().to_ascii_uppercase())
        .unwrap_or_default()
}

fn numeric_key(id: &str) -> (u64, String) {
    (id.parse::<u64>().unwrap_or(u64::MAX), id.to_owned())
}

/// The stored shipment to use (printed first, then the oldest id) and the unprinted others.
fn canonical(mut candidates: Vec<StoredShipmentInfo>) -> Option<(StoredShipmentInfo, Vec<String>)> {
    candidates.sort_by_key(|c| (status_of(c) != "PRINTED", numeric_key(&c.id)));
    let mut iter = candidates.into_iter();
    let first = iter.next()?;
    let others = iter
        .filter(|c| status_of(c) != "PRINTED")
        .map(|c| c.id)
        .collect();
    Some((first, others))
}

/// Failures after which the next round may safely search and try again: anything that may
/// go away (not sent, throttled, a timeout or 5xx) or may have been carried out.
fn worth_another_round(e: &Error) -> bool {
    e.kind().is_retryable() || e.kind() == ErrorKind::AmbiguousWrite
}

/// The stored shipment is gone (deleted meanwhile).
fn is_gone(e: &Error) -> bool {
    e.status()
        .is_some_and(|s| s == StatusCode::NOT_FOUND || s == StatusCode::GONE)
}

impl NshiftClient {
    /// Books `shipment` for `order_no` **exactly once**, even across retries, lost answers and
    /// crashes, with the client's print configuration; see [`NshiftClient::book_once_with`].
    pub async fn book_once(&self, order_no: &str, shipment: Shipment) -> Result<Booking, Error> {
        let config = self.print_config.clone();
        self.book_once_with(order_no, shipment, &config).await
    }

    /// Books `shipment` for `order_no` exactly once with the print configuration `print`.
    ///
    /// `order_no` becomes `shipment.orderNo` and must be unique per booking (an order number,
    /// or order number plus a parcel-set suffix); a shipment that already carries a different
    /// `orderNo` is refused. The configured Developer ID is added.
    ///
    /// Each round searches the stored shipments for `orderNo` first; none → store it, then
    /// search again; READY → print it; PRINTED → [`BookingOutcome::AlreadyBooked`], its
    /// shipments read back from the printed-shipments feed; WARNED, INVALID or FAILED →
    /// [`Error::NotPrintable`]. A store or print that ends ambiguously or throttled leads to a
    /// new round, never to a blind repeat. The guarantee (at most one printed shipment per
    /// order number, exactly one after `Ok`) and its limits are in the [crate](crate)
    /// documentation, section "`book_once`: booking exactly once".
    pub async fn book_once_with(
        &self,
        order_no: &str,
        mut shipment: Shipment,
        print: &PrintConfig,
    ) -> Result<Booking, Error> {
        let order_no = order_no.trim().to_owned();
        if order_no.is_empty() {
            return Err(Error::invalid(
                BOOK_ONCE,
                "book_once needs a non-empty order number",
            ));
        }
        if let Some(existing) = shipment
            .order_no
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty())
            && existing != order_no
        {
            return Err(Error::invalid(
                BOOK_ONCE,
                format!(
                    "the shipment's orderNo `{existing}` differs from the order number `{order_no}` passed to book_once"
                ),
            ));
        }
        shipment.order_no = Some(order_no.clone());
        self.apply_developer_id(&mut shipment);
        let span = tracing::info_span!("nshift.book_once", order_no = %order_no);
        self.book_rounds(&order_no, &shipment, print)
            .instrument(span)
            .await
    }

    async fn book_rounds(
        &self,
        order_no: &str,
        shipment: &Shipment,
        print: &PrintConfig,
    ) -> Result<Booking, Error> {
        let options = &self.book_options;
        let mut failures = 0u32;
        let mut last: Option<Error> = None;
        // A print refused (422/404) for this stored id: returned if it is still READY next round.
        let mut print_refused: Option<(String, Error)> = None;
        // Hard cap on iterations: a store or a print without failure moves one step forward.
        for _ in 0..options.max_rounds.saturating_mul(3).max(3) {
            if failures >= options.max_rounds {
                break;
            }
            let candidates = match self.find_stored_by_order_no(order_no).await {
                Ok(found) => found,
                Err(e) if worth_another_round(&e) => {
                    last = Some(self.failed_round(e, &mut failures).await);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some((stored, redundant)) = canonical(candidates) else {
                if options.check_feed_before_store {
                    let printed = self.printed_for_order(order_no).await?;
                    if !printed.is_empty() {
                        tracing::info!(
                            "order already printed (found in the printed-shipments feed)"
                        );
                        let shipments = self.with_labels(printed).await;
                        return Ok(Booking {
                            order_no: order_no.to_owned(),
                            stored_id: None,
                            outcome: BookingOutcome::AlreadyBooked,
                            shipments,
                            details_recovered: true,
                            redundant_stored_ids: Vec::new(),
                        });
                    }
                }
                match self.store_shipment(shipment.clone()).await {
                    Ok(info) => {
                        tracing::info!(stored_id = %info.id, status = %status_of(&info), "shipment stored")
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
                    return self.recover(order_no, stored, redundant).await;
                }
                "READY" => {
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
                        // Printed (422 not READY) or deleted (404) meanwhile: look again. A 422
                        // while it is still READY is a real refusal, returned next round.
                        Err(e) if matches!(e, Error::Validation { .. }) || is_gone(&e) => {
                            failures += 1;
                            print_refused = Some((stored.id.clone(), e));
                        }
                        Err(e) => return Err(e),
                    }
                }
                status => {
                    return Err(Error::NotPrintable {
                        order_no: order_no.to_owned(),
                        stored_id: stored.id,
                        status: status.to_owned(),
                        statuses: stored.statuses.unwrap_or_default(),
                    });
                }
            }
        }
        let last = last
            .or(print_refused.map(|(_, e)| e))
            .unwrap_or_else(|| Error::invalid(BOOK_ONCE, "no attempt made"));
        Err(Error::BookingUnresolved {
            order_no: order_no.to_owned(),
            attempts: failures,
            last: Box::new(last),
        })
    }

    /// Counts a round that ended with `e` and pauses before the next (a 429's `Retry-After`,
    /// at most 60 s, else [`retry_delay`](crate::BookOnceOptions::retry_delay)); `e` is then
    /// the last failure.
    async fn failed_round(&self, e: Error, failures: &mut u32) -> Error {
        *failures += 1;
        let delay = match e.retry_after() {
            Some(d) if e.kind() == ErrorKind::Throttled => d.min(Duration::from_secs(60)),
            _ => self.book_options.retry_delay,
        };
        Self::pause(delay).await;
        e
    }

    /// The order's shipments from the printed-shipments feed (latest state of each).
    async fn printed_for_order(&self, order_no: &str) -> Result<Vec<ShipmentInfo>, Error> {
        let mut found: BTreeMap<(u64, String), ShipmentInfo> = BTreeMap::new();
        let mut cursor = FEED_START.to_owned();
        for _ in 0..self.book_options.max_feed_pages.max(1) {
            let page = self.fetch_shipments(&cursor).await?;
            for info in page.items {
                if info.order_no.as_deref() == Some(order_no) {
                    found.insert(numeric_key(&info.id), info);
                }
            }
            if page.done || page.fetch_id == cursor {
                break;
            }
            cursor = page.fetch_id;
            Self::pause(page.min_delay).await;
        }
        Ok(found.into_values().collect())
    }

    /// Best effort: the documents still available for each shipment.
    async fn with_labels(&self, infos: Vec<ShipmentInfo>) -> Vec<PrintedShipment> {
        let mut out = Vec::with_capacity(infos.len());
        for info in infos {
            let mut labels = Vec::new();
            match self.list_documents(&info.id).await {
                Ok(docs) => {
                    for doc in docs {
                        match self.fetch_document(&info.id, &doc.id).await {
                            Ok(mut label) => {
                                label.description = doc.description.clone();
                                labels.push(label);
                            }
                            Err(e) => tracing::debug!(error = %e, "document no longer available"),
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "documents not listed"),
            }
            out.push(PrintedShipment { info, labels });
        }
        out
    }

    async fn recover(
        &self,
        order_no: &str,
        stored: StoredShipmentInfo,
        redundant: Vec<String>,
    ) -> Result<Booking, Error> {
        let (shipments, details_recovered) = match self.printed_for_order(order_no).await {
            Ok(infos) if !infos.is_empty() => (self.with_labels(infos).await, true),
            Ok(_) => {
                tracing::warn!("printed stored shipment not (yet) in the printed-shipments feed");
                (Vec::new(), false)
            }
            Err(e) if e.status() == Some(StatusCode::FORBIDDEN) => {
                tracing::warn!(
                    "the key cannot read the printed-shipments feed; booking details not recovered"
                );
                (Vec::new(), false)
            }
            Err(e) => return Err(e),
        };
        Ok(Booking {
            order_no: order_no.to_owned(),
            stored_id: Some(stored.id),
            outcome: BookingOutcome::AlreadyBooked,
            shipments,
            details_recovered,
            redundant_stored_ids: redundant,
        })
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
        let (pick, others) = canonical(vec![
            stored("12", "READY"),
            stored("9", "READY"),
            stored("100", "READY"),
        ])
        .unwrap();
        assert_eq!(pick.id, "9");
        assert_eq!(others, vec!["12".to_owned(), "100".to_owned()]);
        let (pick, others) =
            canonical(vec![stored("9", "READY"), stored("12", "PRINTED")]).unwrap();
        assert_eq!(pick.id, "12");
        assert_eq!(others, vec!["9".to_owned()]);
        assert!(canonical(Vec::new()).is_none());
    }
}
