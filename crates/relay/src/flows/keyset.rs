//! Keyset paging over Norce Query for the polls: each request reads one page ordered by a
//! time property and `id`, and the next request starts after the last order seen.
//!
//! Query's own `nextLink` pages with `$skip`: when orders leave the poll's status filter
//! between two pages (another flow, or another worker, set them Delivered), every later page
//! starts that many orders too far and the orders in between are never seen, while the cursor
//! still moves past them. A key never skips: an order that changes meanwhile gets a newer
//! time and is seen in a later page or poll.

use chrono::{DateTime, SecondsFormat, Utc};
use norce_client::models::query::QueryOrdersQuery;

/// Where the next page of a keyset poll starts.
#[derive(Debug, Clone)]
pub(crate) struct Keyset {
    /// The Query property the pages are ordered by (`updated`, `created`).
    property: &'static str,
    /// The last (time, id) seen, once a page was read.
    after: Option<(DateTime<Utc>, i64)>,
    /// Whether the last page moved the key (a full page whose orders lack the property
    /// cannot: the poll then stops instead of reading it again).
    moved: bool,
}

impl Keyset {
    /// Pages ordered by `property`, then `id`.
    pub(crate) fn new(property: &'static str) -> Self {
        Self {
            property,
            after: None,
            moved: true,
        }
    }

    /// The query of the next page: `base` with the key's condition added to its filter and
    /// the key as its order.
    pub(crate) fn page_query(&mut self, base: &QueryOrdersQuery) -> QueryOrdersQuery {
        let property = self.property;
        let mut filter = base.filter.clone().unwrap_or_default();
        if let Some((time, id)) = self.after {
            let at = time.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            let condition = format!("({property} gt {at} or ({property} eq {at} and id gt {id}))");
            filter = if filter.is_empty() {
                condition
            } else {
                format!("{filter} and {condition}")
            };
        }
        self.moved = false;
        QueryOrdersQuery {
            filter: (!filter.is_empty()).then_some(filter),
            orderby: Some(format!("{property},id")),
            ..base.clone()
        }
    }

    /// Records an order of the page just read (its key time, when it has one, and its id).
    pub(crate) fn saw(&mut self, time: Option<DateTime<Utc>>, id: i64) {
        if let Some(time) = time {
            self.after = Some((time, id));
            self.moved = true;
        }
    }

    /// Whether to read another page after one whose answer said more follow (`nextLink`).
    pub(crate) fn more(&self, next_link: Option<&str>) -> bool {
        self.moved && next_link.is_some_and(|l| !l.trim().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_page_starts_after_the_last_order_seen() {
        let base = QueryOrdersQuery {
            filter: Some("(statusId eq 1)".into()),
            ..QueryOrdersQuery::default()
        };
        let mut keyset = Keyset::new("updated");
        let first = keyset.page_query(&base);
        assert_eq!(first.filter.as_deref(), Some("(statusId eq 1)"));
        assert_eq!(first.orderby.as_deref(), Some("updated,id"));
        let t: DateTime<Utc> = "2026-03-02T08:00:00.123Z".parse().unwrap();
        keyset.saw(Some(t), 41);
        assert!(keyset.more(Some("https://next")));
        assert!(!keyset.more(None) && !keyset.more(Some(" ")));
        let second = keyset.page_query(&base);
        assert_eq!(
            second.filter.as_deref(),
            Some(
                "(statusId eq 1) and (updated gt 2026-03-02T08:00:00.123Z or (updated eq 2026-03-02T08:00:00.123Z and id gt 41))"
            )
        );
        // A page whose orders carry no time cannot move the key: no endless re-reading.
        keyset.saw(None, 42);
        assert!(!keyset.more(Some("https://next")));
    }
}
