//! The `fetchId` feeds: status events (`GET /alerts`), printed shipments (`GET /shipments`)
//! and the prices of printed shipments (`POST /prices/history`).

use std::time::Duration;

use futures::Stream;
use nshift_models::delivery::{
    Alert, AlertFetchList, PriceHistoryEntry, PriceHistoryFetchList, ShipmentFetchInfoList,
    ShipmentInfo, operations as ops,
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

/// Converts nShift's `minDelay` milliseconds (negative or absent = 0).
fn min_delay(ms: Option<i64>) -> Duration {
    Duration::from_millis(ms.and_then(|m| u64::try_from(m).ok()).unwrap_or(0))
}

struct FeedState {
    client: NshiftClient,
    cursor: String,
    wait: Duration,
    failed: bool,
}

impl NshiftClient {
    /// One page of status events (`GET /alerts?fetchId=`, licence REST API TrackBack; not for
    /// profile-bound keys). Start with [`FEED_START`], then pass the returned `fetch_id`.
    pub async fn fetch_alerts(&self, fetch_id: &str) -> Result<FeedPage<Alert>, Error> {
        let page: AlertFetchList = self.feed_page(&ops::FETCH_ALERTS, fetch_id).await?;
        Ok(FeedPage {
            items: page.alerts.unwrap_or_default(),
            fetch_id: page.fetch_id,
            done: page.done,
            min_delay: min_delay(page.min_delay),
        })
    }

    /// One page of the printed-shipments feed (`GET /shipments?fetchId=`, licence REST API
    /// TrackBack; not for profile-bound keys). Start with [`FEED_START`], then pass the returned
    /// `fetch_id`.
    pub async fn fetch_shipments(&self, fetch_id: &str) -> Result<FeedPage<ShipmentInfo>, Error> {
        let page: ShipmentFetchInfoList = self.feed_page(&ops::FETCH_SHIPMENTS, fetch_id).await?;
        Ok(FeedPage {
            items: page.shipments.unwrap_or_default(),
            fetch_id: page.fetch_id,
            done: page.done,
            min_delay: min_delay(page.min_delay),
        })
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
        let page: PriceHistoryFetchList =
            self.feed_page(&ops::FETCH_PRICE_HISTORY, fetch_id).await?;
        Ok(FeedPage {
            items: page.prices.unwrap_or_default(),
            fetch_id: page.fetch_id,
            done: page.done,
            min_delay: min_delay(page.min_delay),
        })
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
        let state = FeedState {
            client: self.clone(),
            cursor,
            wait: Duration::ZERO,
            failed: false,
        };
        futures::stream::unfold(state, move |mut state| async move {
            if state.failed {
                return None;
            }
            NshiftClient::pause(state.wait).await;
            match fetch(state.client.clone(), state.cursor.clone()).await {
                Ok(page) => {
                    state.cursor.clone_from(&page.fetch_id);
                    state.wait = page.min_delay;
                    Some((Ok(page), state))
                }
                Err(e) => {
                    state.failed = true;
                    Some((Err(e), state))
                }
            }
        })
    }
}
