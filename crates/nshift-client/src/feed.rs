//! The `fetchId` feeds: status events (`GET /alerts`), printed shipments (`GET /shipments`)
//! and the prices of printed shipments (`POST /prices/history`).

use std::time::Duration;

use futures::Stream;
use nshift_models::delivery::operations::DeliveryApi;
use nshift_models::delivery::{
    Alert, FetchAlertsQuery, FetchPriceHistoryQuery, FetchShipmentsQuery, PriceHistoryEntry,
    ShipmentInfo,
};

use crate::client::NshiftClient;
use crate::error::Error;

/// The `fetchId` that starts a feed from the beginning.
pub const FEED_START: &str = "-1";

/// One page of a feed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FeedPage<T> {
    /// The items of this page (at most 100).
    pub items: Vec<T>,
    /// The cursor to persist once the items are processed: pass it to the next call (or to a
    /// new stream after a restart).
    pub fetch_id: String,
    /// `false` when more items are waiting (the next page is fetched at once).
    pub done: bool,
    /// How long nShift asked to wait before the next call.
    pub min_delay: Duration,
}

impl<T> FeedPage<T> {
    /// A page from nShift's fields (`minDelay` in milliseconds; negative or absent = 0).
    fn new(items: Option<Vec<T>>, fetch_id: String, done: bool, min_delay: Option<i64>) -> Self {
        let ms = min_delay.and_then(|m| u64::try_from(m).ok()).unwrap_or(0);
        let (items, min_delay) = (items.unwrap_or_default(), Duration::from_millis(ms));
        Self {
            items,
            fetch_id,
            done,
            min_delay,
        }
    }
}

impl NshiftClient {
    /// One page of status events (`GET /alerts?fetchId=`, licence REST API TrackBack; not for
    /// profile-bound keys). Start with [`FEED_START`], then pass the returned `fetch_id`.
    pub async fn fetch_alerts(&self, fetch_id: &str) -> Result<FeedPage<Alert>, Error> {
        let query = FetchAlertsQuery {
            fetch_id: Some(fetch_id.to_owned()),
        };
        let p = DeliveryApi::fetch_alerts(self, &query).await?;
        Ok(FeedPage::new(p.alerts, p.fetch_id, p.done, p.min_delay))
    }

    /// One page of the printed-shipments feed (`GET /shipments?fetchId=`, licence REST API
    /// TrackBack; not for profile-bound keys). Start with [`FEED_START`], then pass the returned
    /// `fetch_id`.
    pub async fn fetch_shipments(&self, fetch_id: &str) -> Result<FeedPage<ShipmentInfo>, Error> {
        let query = FetchShipmentsQuery {
            fetch_id: Some(fetch_id.to_owned()),
        };
        let p = DeliveryApi::fetch_shipments(self, &query).await?;
        Ok(FeedPage::new(p.shipments, p.fetch_id, p.done, p.min_delay))
    }

    /// One page of the prices of printed shipments (`POST /prices/history?fetchId=`, no body;
    /// the price licence, an account-level key in the sandbox). Start with [`FEED_START`], then
    /// pass the returned `fetch_id`. Same `done` / `minDelay` scheme as the other feeds.
    ///
    /// The item shape is not documented (see the spec's open question): fields nShift names
    /// differently decode as `None`.
    pub async fn fetch_price_history(
        &self,
        fetch_id: &str,
    ) -> Result<FeedPage<PriceHistoryEntry>, Error> {
        let query = FetchPriceHistoryQuery {
            fetch_id: Some(fetch_id.to_owned()),
        };
        let p = DeliveryApi::fetch_price_history(self, &query).await?;
        Ok(FeedPage::new(p.prices, p.fetch_id, p.done, p.min_delay))
    }

    /// The price-history feed as an endless stream of pages; same rules as
    /// [`NshiftClient::alerts_feed`].
    pub fn price_history_feed(
        &self,
        fetch_id: impl Into<String>,
    ) -> impl Stream<Item = Result<FeedPage<PriceHistoryEntry>, Error>> + Send + 'static {
        self.feed(fetch_id.into(), |client, cursor| async move {
            client.fetch_price_history(&cursor).await
        })
    }

    /// The status-event feed as an endless stream of pages, starting after `fetch_id`
    /// ([`FEED_START`] for the beginning, or the cursor you persisted).
    ///
    /// Each page carries the cursor to persist after processing it. Before each next request
    /// the stream waits the previous page's `minDelay` (on tokio's clock, and only when the
    /// next page is polled), so it never calls more often than nShift allows; while `done` is
    /// false the next page is fetched at once. After an error the stream ends: restart it from
    /// the last persisted cursor (idempotent GETs are already retried inside the client).
    pub fn alerts_feed(
        &self,
        fetch_id: impl Into<String>,
    ) -> impl Stream<Item = Result<FeedPage<Alert>, Error>> + Send + 'static {
        self.feed(fetch_id.into(), |client, cursor| async move {
            client.fetch_alerts(&cursor).await
        })
    }

    /// The printed-shipments feed as an endless stream of pages; same rules as
    /// [`NshiftClient::alerts_feed`].
    pub fn shipments_feed(
        &self,
        fetch_id: impl Into<String>,
    ) -> impl Stream<Item = Result<FeedPage<ShipmentInfo>, Error>> + Send + 'static {
        self.feed(fetch_id.into(), |client, cursor| async move {
            client.fetch_shipments(&cursor).await
        })
    }

    fn feed<T, F, Fut>(
        &self,
        cursor: String,
        fetch: F,
    ) -> impl Stream<Item = Result<FeedPage<T>, Error>> + Send + 'static
    where
        T: Send + 'static,
        F: Fn(NshiftClient, String) -> Fut + Send + Sync + Copy + 'static,
        Fut: Future<Output = Result<FeedPage<T>, Error>> + Send,
    {
        // The state is the client, the next cursor and the wait before fetching it; none after
        // an error, which ends the stream.
        let first = Some((self.clone(), cursor, Duration::ZERO));
        futures::stream::unfold(first, move |state| async move {
            let (client, cursor, wait) = state?;
            NshiftClient::pause(wait).await;
            match fetch(client.clone(), cursor).await {
                Ok(page) => {
                    let next = (client, page.fetch_id.clone(), page.min_delay);
                    Some((Ok(page), Some(next)))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}
