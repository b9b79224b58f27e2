//! The `externalRef` check of a whole page of orders in one order-search.
//!
//! Brightpearl's `externalRef` search filter takes one value (a STRING filter; no documented
//! multi-value form, `specs/brightpearl/order.yaml`), so a page of orders cannot be looked up
//! by its references. Instead the page reads our integration's recent orders
//! (`installedIntegrationInstanceId` = ours, `createdOn` a PERIOD filter `from/`, newest first,
//! 500 a request) and matches their `externalRef`s. Exactly once still holds because every
//! order records, just before its first POST, the newest `createdOn` the check had seen
//! ([`PostMarker`](super::common::PostMarker), Brightpearl's own clock, so our clock's skew does
//! not matter): an order whose POST took effect although its answer was lost was created after
//! that, and a later attempt is only trusted to the bulk read when it covers that time (minus
//! `orders.duplicate_check_overlap_secs`); otherwise it is looked up on its own as before. An
//! order never posted (no marker, step not `contact`) has nothing to find.

use std::collections::HashMap;

use brightpearl_client::{SearchQuery, SearchResource, SortDirection};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use tracing::Instrument as _;

use super::common::{FLOW, PostMarker};
use crate::flows::action::ItemError;

/// Brightpearl's largest search page.
const PAGE: u32 = 500;

/// The columns the bulk check reads.
const COLUMNS: [&str; 4] = [
    "orderId",
    "externalRef",
    "installedIntegrationInstanceId",
    "createdOn",
];

/// An `order-search` row with the columns the duplicate checks read (the bulk one here, the
/// single one in `steps`; `createdOn` only when asked for).
#[derive(Debug, Deserialize)]
pub(super) struct OrderRefRow {
    #[serde(rename = "orderId")]
    pub(super) order_id: i64,
    #[serde(rename = "externalRef", default)]
    pub(super) external_ref: Option<String>,
    #[serde(rename = "installedIntegrationInstanceId", default)]
    pub(super) instance: Option<i64>,
    #[serde(rename = "createdOn", default)]
    created_on: Option<String>,
}

fn instant(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What one bulk read established.
#[derive(Debug, Default)]
pub(super) struct Recent {
    /// `externalRef` → the oldest order carrying it (ours, when we stamp an instance).
    found: HashMap<String, i64>,
    /// Every order created at or after this instant was read; `None` with `all`: every order.
    covered_from: Option<DateTime<Utc>>,
    all: bool,
    /// The newest `createdOn` read (Brightpearl's clock), for the marker of orders posted next.
    newest: Option<String>,
    overlap: TimeDelta,
}

/// What the bulk read says about one order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Brightpearl has it: this order id.
    Exists(i64),
    /// It cannot exist: never posted, or posted and the read covers when it would have been made.
    Absent,
    /// The read does not settle it: search its `externalRef` on its own.
    Unknown,
}

impl Recent {
    /// The verdict for `order_no`, given its marker and whether its recorded step is `contact`
    /// without a marker (recorded by a version that posted without one).
    pub(super) fn verdict(
        &self,
        order_no: &str,
        marker: Option<&PostMarker>,
        legacy_contact_step: bool,
    ) -> Verdict {
        if let Some(id) = self.found.get(order_no) {
            return Verdict::Exists(*id);
        }
        match marker {
            None if legacy_contact_step => Verdict::Unknown,
            None => Verdict::Absent,
            Some(marker) if self.covers(marker) => Verdict::Absent,
            Some(_) => Verdict::Unknown,
        }
    }

    fn covers(&self, marker: &PostMarker) -> bool {
        if self.all {
            return true;
        }
        match (
            marker.newest.as_deref().and_then(instant),
            self.covered_from,
        ) {
            (Some(newest), Some(from)) => from <= newest - self.overlap,
            _ => false,
        }
    }

    /// The marker to record before an order's first POST.
    pub(super) fn marker(&self) -> PostMarker {
        PostMarker {
            newest: self.newest.clone(),
        }
    }
}

/// Reads our recent orders for a page whose orders posted before carry `markers`: from the
/// oldest marker (minus the overlap) when every one has a time, else every order of ours, at
/// most `max_pages` requests; a page with no order posted before reads one request (the newest
/// orders, for the markers).
pub(super) async fn recent_orders(
    brightpearl: &brightpearl_client::Client,
    instance: Option<i64>,
    markers: &[&PostMarker],
    overlap_secs: u64,
    max_pages: u32,
) -> Result<Recent, ItemError> {
    let overlap = TimeDelta::seconds(i64::try_from(overlap_secs).unwrap_or(86_400));
    let from = if markers.is_empty() {
        None
    } else {
        markers
            .iter()
            .map(|m| m.newest.as_deref().and_then(instant))
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().min())
            .map(|t| t - overlap)
    };
    let max_pages = if markers.is_empty() {
        1
    } else {
        max_pages.max(1)
    };
    let mut query = SearchQuery::new()
        .columns(COLUMNS)
        .sort("createdOn", SortDirection::Desc)
        .page_size(PAGE);
    if let Some(instance) = instance {
        query = query.filter("installedIntegrationInstanceId", instance.to_string());
    }
    if let Some(from) = from {
        let text = from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        query = query.period("createdOn", Some(&text), None);
    }
    let mut recent = Recent {
        overlap,
        ..Recent::default()
    };
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut newest: Option<(DateTime<Utc>, String)> = None;
    let mut complete = false;
    let span = tracing::info_span!(
        "flow_step",
        flow = FLOW,
        step = "duplicate_check",
        source_id = "page"
    );
    for _ in 0..max_pages {
        let page = brightpearl
            .search(SearchResource::Orders, &query)
            .instrument(span.clone())
            .await?;
        for row in page.decode_rows::<OrderRefRow>()? {
            let created = row.created_on.as_deref().and_then(instant);
            if let (Some(at), Some(text)) = (created, row.created_on.as_ref()) {
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
                if newest.as_ref().is_none_or(|(n, _)| at > *n) {
                    newest = Some((at, text.clone()));
                }
            }
            let ours = instance.is_none() || row.instance == instance;
            if let (Some(reference), true) = (row.external_ref, ours) {
                let id = recent.found.entry(reference).or_insert(row.order_id);
                *id = (*id).min(row.order_id);
            }
        }
        match page.next_first_result() {
            Some(next) => query = query.first_result(next),
            None => {
                complete = true;
                break;
            }
        }
    }
    recent.newest = newest.map(|(_, text)| text);
    match (complete, from) {
        (true, None) => recent.all = true,
        (true, Some(from)) => recent.covered_from = Some(from),
        // Newest first: everything created after the oldest row read was read (rows at that
        // very instant may continue on the next page).
        (false, _) => {
            recent.covered_from = oldest.map(|o| o + TimeDelta::nanoseconds(1));
        }
    }
    tracing::debug!(
        flow = FLOW,
        orders = recent.found.len(),
        all = recent.all,
        covered_from = ?recent.covered_from,
        "bulk duplicate check read"
    );
    Ok(recent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(newest: Option<&str>) -> PostMarker {
        PostMarker {
            newest: newest.map(str::to_owned),
        }
    }

    #[test]
    fn verdicts_trust_the_read_only_where_it_covers_the_first_post() {
        let recent = Recent {
            found: HashMap::from([("NC-1".to_owned(), 5)]),
            covered_from: instant("2026-03-02T08:00:00Z"),
            all: false,
            newest: Some("2026-03-02T09:00:00Z".into()),
            overlap: TimeDelta::minutes(10),
        };
        assert_eq!(recent.verdict("NC-1", None, false), Verdict::Exists(5));
        assert_eq!(recent.verdict("NC-2", None, false), Verdict::Absent);
        assert_eq!(recent.verdict("NC-2", None, true), Verdict::Unknown);
        let inside = marker(Some("2026-03-02T08:10:00Z"));
        assert_eq!(
            recent.verdict("NC-2", Some(&inside), false),
            Verdict::Absent
        );
        let edge = marker(Some("2026-03-02T08:09:59Z"));
        assert_eq!(recent.verdict("NC-2", Some(&edge), false), Verdict::Unknown);
        assert_eq!(
            recent.verdict("NC-2", Some(&marker(None)), false),
            Verdict::Unknown
        );
        let all = Recent {
            all: true,
            ..Recent::default()
        };
        assert_eq!(
            all.verdict("NC-2", Some(&marker(None)), false),
            Verdict::Absent
        );
        assert_eq!(recent.marker(), marker(Some("2026-03-02T09:00:00Z")));
    }
}
