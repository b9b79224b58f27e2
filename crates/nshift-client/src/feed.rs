//! The `fetchId` feeds (crate README, "Feeds"): status events, printed shipments and the prices
//! of printed shipments, one page at a time or as streams that honour `minDelay`.

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
    /// The cursor to persist once the items are processed, for the next call or a restart.
    pub fetch_id: String,
    /// `false` when more items are waiting (the next page is fetched at once).
    pub done: bool,
    /// How long nShift asked to wait before the next call (`minDelay`; negative = none).
    pub min_delay: Duration,
}

/// A one-page call and its stream per feed; each page's fields are nShift's list of items,
/// `fetchId`, `done` and `minDelay` (ms).
macro_rules! feeds {
    ($($(#[$doc:meta])* $fetch:ident, $(#[$stream_doc:meta])* $stream:ident: $query:ident => $items:ident: $item:ty;)+) => {
        impl NshiftClient {$(
            $(#[$doc])*
            pub async fn $fetch(&self, fetch_id: &str) -> Result<FeedPage<$item>, Error> {
                let fetch_id = Some(fetch_id.to_owned());
                let page = DeliveryApi::$fetch(self, &$query { fetch_id }).await?;
                let ms = page.min_delay.and_then(|m| u64::try_from(m).ok());
                Ok(FeedPage {
                    items: page.$items.unwrap_or_default(),
                    fetch_id: page.fetch_id,
                    done: page.done,
                    min_delay: Duration::from_millis(ms.unwrap_or(0)),
                })
            }

            $(#[$stream_doc])*
            pub fn $stream(
                &self,
                fetch_id: impl Into<String>,
            ) -> impl Stream<Item = Result<FeedPage<$item>, Error>> + Send + 'static {
                let first = Some((self.clone(), fetch_id.into(), Duration::ZERO));
                // The state: the client, the next cursor and the wait before it; none after an
                // error, which ends the stream.
                futures::stream::unfold(first, |state| async move {
                    let (client, cursor, wait) = state?;
                    NshiftClient::pause(wait).await;
                    match client.$fetch(&cursor).await {
                        Ok(page) => {
                            let next = (client, page.fetch_id.clone(), page.min_delay);
                            Some((Ok(page), Some(next)))
                        }
                        Err(e) => Some((Err(e), None)),
                    }
                })
            }
        )+}
    };
}

feeds! {
    /// One page of status events (`GET /alerts`, licence REST API TrackBack, no profile-bound
    /// keys): start with [`FEED_START`], then pass the returned `fetch_id`.
    fetch_alerts,
    /// The status events as an endless stream of pages from `fetch_id` ([`FEED_START`] or a
    /// persisted cursor). Before each next request it waits the previous page's `minDelay`
    /// (tokio's clock), at once while `done` is false; after an error it ends: restart it from
    /// the last persisted cursor (GETs are already retried inside the client).
    alerts_feed: FetchAlertsQuery => alerts: Alert;

    /// One page of the printed-shipments feed (`GET /shipments`, licence REST API TrackBack,
    /// no profile-bound keys): start with [`FEED_START`], then pass the returned `fetch_id`.
    fetch_shipments,
    /// The printed shipments as a stream of pages, as [`NshiftClient::alerts_feed`].
    shipments_feed: FetchShipmentsQuery => shipments: ShipmentInfo;

    /// One page of the prices of printed shipments (`POST /prices/history`, no body; the price
    /// licence). The item shape is undocumented: fields named otherwise decode as `None`.
    fetch_price_history,
    /// The prices of printed shipments as a stream of pages, as [`NshiftClient::alerts_feed`].
    price_history_feed: FetchPriceHistoryQuery => prices: PriceHistoryEntry;
}
