//! Resource search: the query builder, pages with their reference maps, the paging stream and
//! typed rows (decoded by column name).

use std::collections::BTreeMap;

use brightpearl_models::common::{SearchEnvelope, SearchMetaData, SearchResults};
use brightpearl_models::{contact, order, product, warehouse};
use futures::{Stream, StreamExt as _};
use models_runtime::OperationInfo;
use serde::de::DeserializeOwned;

use crate::client::{Client, decode};
use crate::error::{NothingFound as _, Result};

/// The operation of a search of [`SearchResource::Other`].
static OTHER_SEARCH: OperationInfo = OperationInfo {
    id: "Search",
    method: "GET",
    path: "/public-api/{account}/{search}",
    success_status: 200,
    request_media_type: None,
    response_media_type: Some("application/json"),
};

/// A searchable resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SearchResource {
    /// `/product-service/product-search`.
    Products,
    /// `/contact-service/contact-search`.
    Contacts,
    /// `/order-service/order-search`.
    Orders,
    /// `/order-service/sales-order-search`.
    SalesOrders,
    /// `/warehouse-service/goods-note/goods-out-search`.
    GoodsOutNotes,
    /// Any other search, by its path relative to `/public-api/{account}`.
    Other(&'static str),
}

impl SearchResource {
    /// The generated operation of this search.
    pub fn operation(&self) -> &'static OperationInfo {
        match self {
            Self::Products => &product::operations::SEARCH_PRODUCTS,
            Self::Contacts => &contact::operations::SEARCH_CONTACTS,
            Self::Orders => &order::operations::SEARCH_ORDERS,
            Self::SalesOrders => &order::operations::SEARCH_SALES_ORDERS,
            Self::GoodsOutNotes => &warehouse::operations::SEARCH_GOODS_OUT_NOTES,
            Self::Other(_) => &OTHER_SEARCH,
        }
    }

    /// The path of this search in `account` (a code of letters, digits, `-` and `_`, so
    /// nothing to encode).
    fn path_in(&self, account: &str) -> String {
        match self {
            Self::Other(path) => format!("/public-api/{account}{path}"),
            known => known.operation().path.replace("{account}", account),
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

/// A search: filters by column name in Brightpearl's syntax (`updatedOn=2024-01-01T00:00:00Z/`),
/// returned columns, sort, page size and first result.
///
/// ```
/// use brightpearl_client::{SearchQuery, SortDirection};
/// let q = SearchQuery::new()
///     .filter("SKU", "TSHIRT-RED-M")
///     .columns(["productId", "SKU"])
///     .sort("productId", SortDirection::Asc)
///     .page_size(100);
/// assert_eq!(q.to_query()[0], ("SKU".to_owned(), "TSHIRT-RED-M".to_owned()));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    filters: Vec<(String, String)>,
    columns: Vec<String>,
    /// Column and `ASC` / `DESC`.
    sort: Vec<(String, &'static str)>,
    page_size: Option<u32>,
    first_result: Option<u64>,
}

impl SearchQuery {
    /// An empty query (every row, Brightpearl's default columns).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a filter `column=value`.
    pub fn filter(mut self, column: impl Into<String>, value: impl Into<String>) -> Self {
        self.filters.push((column.into(), value.into()));
        self
    }

    /// A PERIOD filter `column=from/to`, either side optional (RFC 3339 times).
    pub fn period(self, column: impl Into<String>, from: Option<&str>, to: Option<&str>) -> Self {
        let value = format!("{}/{}", from.unwrap_or(""), to.unwrap_or(""));
        self.filter(column, value)
    }

    /// The columns to return, in this order.
    pub fn columns(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a sort criterion.
    pub fn sort(mut self, column: impl Into<String>, direction: SortDirection) -> Self {
        let direction = match direction {
            SortDirection::Asc => "ASC",
            SortDirection::Desc => "DESC",
        };
        self.sort.push((column.into(), direction));
        self
    }

    /// Rows per page (Brightpearl allows at most 500).
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    /// The 1-based first row.
    pub fn first_result(mut self, n: u64) -> Self {
        self.first_result = Some(n);
        self
    }

    /// The query pairs, in a stable order.
    pub fn to_query(&self) -> Vec<(String, String)> {
        let mut out = self.filters.clone();
        let mut add = |name: &str, value: String| out.push((name.into(), value));
        if !self.columns.is_empty() {
            add("columns", self.columns.join(","));
        }
        if !self.sort.is_empty() {
            let sort: Vec<String> = self.sort.iter().map(|(c, d)| format!("{c}.{d}")).collect();
            add("sort", sort.join(","));
        }
        if let Some(n) = self.page_size {
            add("pageSize", n.to_string());
        }
        if let Some(n) = self.first_result {
            add("firstResult", n.to_string());
        }
        out
    }
}

/// One page of search results, with the reference maps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPage {
    /// Rows and metadata.
    pub results: SearchResults,
    /// Reference data: name → id → value; labels in most maps (`orderStatusNames`), arrays of
    /// ids in others (`productCategoryMembership`).
    pub reference: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

impl SearchPage {
    /// The metadata (paging, columns).
    pub fn meta(&self) -> Option<&SearchMetaData> {
        self.results.meta_data.as_ref()
    }

    /// Whether another page follows (`morePagesAvailable`).
    pub fn more_pages(&self) -> bool {
        self.meta().and_then(|m| m.more_pages_available) == Some(true)
    }

    /// `firstResult` of the next page (`lastResult + 1`), if another page follows.
    pub fn next_first_result(&self) -> Option<u64> {
        let last = self.meta()?.last_result.and_then(|l| u64::try_from(l).ok());
        last.filter(|_| self.more_pages()).map(|l| l + 1)
    }

    /// Number of rows in this page.
    pub fn len(&self) -> usize {
        self.results.results.as_ref().map_or(0, Vec::len)
    }

    /// Whether this page has no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes the rows into `T` by column name (see `SearchResults::decode_rows`).
    pub fn decode_rows<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        Ok(self.results.decode_rows()?)
    }

    /// The label of `id` in the reference map `name` (e.g. `orderStatusNames`), when a string.
    pub fn reference_label(&self, name: &str, id: &str) -> Option<&str> {
        self.reference_value(name, id)?.as_str()
    }

    /// The value of `id` in the reference map `name`, whatever its JSON type.
    pub fn reference_value(&self, name: &str, id: &str) -> Option<&serde_json::Value> {
        self.reference.get(name)?.get(id)
    }
}

impl Client {
    /// Runs one search page; "nothing found" (`404 CMNC-404`) is an empty page.
    pub async fn search(
        &self,
        resource: SearchResource,
        query: &SearchQuery,
    ) -> Result<SearchPage> {
        let (op, path) = (resource.operation(), resource.path_in(self.account()));
        let request = self.request(op, &path, &query.to_query()).await?;
        let Some(response) = self.send(request).await.found()? else {
            return Ok(SearchPage::default());
        };
        let SearchEnvelope {
            response,
            reference,
        } = decode(op.id, &response)?;
        let reference = reference.unwrap_or_default();
        Ok(SearchPage {
            results: response,
            reference,
        })
    }

    /// Every page of a search, one after the other, while `morePagesAvailable` is true
    /// (`firstResult = lastResult + 1`). Stops after the first error.
    pub fn search_pages(
        &self,
        resource: SearchResource,
        query: SearchQuery,
    ) -> impl Stream<Item = Result<SearchPage>> + Send + 'static {
        let client = self.clone();
        futures::stream::unfold(Some(query), move |state| {
            let client = client.clone();
            async move {
                let query = state?;
                let page = client.search(resource, &query).await;
                let next = page.as_ref().ok().and_then(SearchPage::next_first_result);
                Some((page, next.map(|first| query.first_result(first))))
            }
        })
    }

    /// Every row of every page, decoded into `T` by column name.
    pub async fn search_all<T: DeserializeOwned>(
        &self,
        resource: SearchResource,
        query: SearchQuery,
    ) -> Result<Vec<T>> {
        let mut pages = std::pin::pin!(self.search_pages(resource, query));
        let mut rows = Vec::new();
        while let Some(page) = pages.next().await {
            rows.extend(page?.decode_rows::<T>()?);
        }
        Ok(rows)
    }
}

/// A `product-search` row (ask for these columns, or more).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ProductRow {
    /// Product id.
    pub product_id: u64,
    /// SKU.
    #[serde(rename = "SKU")]
    pub sku: Option<String>,
    /// Product name.
    pub product_name: Option<String>,
    /// Whether stock is tracked; bundles never are (see [`Client::bundle_availability`]).
    pub stock_tracked: Option<bool>,
}

/// A `contact-search` row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ContactRow {
    /// Contact id.
    pub contact_id: u64,
    /// Primary e-mail.
    pub primary_email: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
}

/// An `order-search` row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct OrderRow {
    /// Order id.
    pub order_id: u64,
    /// Order status id (label in the `orderStatusNames` reference map).
    pub order_status_id: Option<u64>,
    /// Customer contact id.
    pub contact_id: Option<u64>,
    /// External reference (our order number).
    pub external_ref: Option<String>,
    /// When the order last changed (ISO 8601), when the `updatedOn` column was asked for.
    #[serde(default)]
    pub updated_on: Option<String>,
}

/// A `goods-out-search` row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GoodsOutNoteRow {
    /// Goods-out note id.
    pub goods_out_note_id: u64,
    /// Order id.
    pub order_id: Option<u64>,
    /// Whether it has shipped.
    pub shipped: Option<bool>,
    /// When it shipped.
    pub shipped_on: Option<String>,
}
