//! Resource search: a typed query builder, pages, a paging stream and typed rows.

use std::collections::BTreeMap;

use brightpearl_models::common::{SearchEnvelope, SearchMetaData, SearchResults};
use brightpearl_models::{contact, order, product, warehouse};
use futures::Stream;
use models_runtime::OperationInfo;
use serde::de::DeserializeOwned;

use crate::client::{Client, decode, found};
use crate::error::Result;

/// The operation of a search of [`SearchResource::Other`].
static OTHER_SEARCH: OperationInfo = OperationInfo {
    id: "Search",
    method: "GET",
    path: "/public-api/{account}/{search}",
    success_status: 200,
    request_media_type: None,
    response_media_type: Some("application/json"),
};

/// A searchable resource and its path.
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

    /// The path relative to `/public-api/{account}` (the generated operation's).
    pub fn path(&self) -> &'static str {
        match self {
            Self::Other(path) => path,
            known => known
                .operation()
                .path
                .trim_start_matches("/public-api/{account}"),
        }
    }

    /// The path of this search in `account`.
    fn path_in(&self, account: String) -> String {
        match self {
            Self::Products => product::SearchProductsPath { account }.to_path(),
            Self::Contacts => contact::SearchContactsPath { account }.to_path(),
            Self::Orders => order::SearchOrdersPath { account }.to_path(),
            Self::SalesOrders => order::SearchSalesOrdersPath { account }.to_path(),
            Self::GoodsOutNotes => warehouse::SearchGoodsOutNotesPath { account }.to_path(),
            Self::Other(path) => format!("/public-api/{account}{path}"),
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

/// A search: filters (by column name, in Brightpearl's syntax, e.g. `updatedOn=2024-01-01T00:00:00Z/`),
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
    sort: Vec<(String, SortDirection)>,
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
    pub fn columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Adds a sort criterion.
    pub fn sort(mut self, column: impl Into<String>, direction: SortDirection) -> Self {
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
        if !self.columns.is_empty() {
            out.push(("columns".into(), self.columns.join(",")));
        }
        if !self.sort.is_empty() {
            let sort: Vec<String> = self
                .sort
                .iter()
                .map(|(c, d)| {
                    format!(
                        "{c}.{}",
                        match d {
                            SortDirection::Asc => "ASC",
                            SortDirection::Desc => "DESC",
                        }
                    )
                })
                .collect();
            out.push(("sort".into(), sort.join(",")));
        }
        if let Some(n) = self.page_size {
            out.push(("pageSize".into(), n.to_string()));
        }
        if let Some(n) = self.first_result {
            out.push(("firstResult".into(), n.to_string()));
        }
        out
    }
}

/// One page of search results, with the reference maps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchPage {
    /// Rows and metadata.
    pub results: SearchResults,
    /// Reference data: name → id → value. Values are any JSON: labels in most maps
    /// (`orderStatusNames`: id → name), arrays of ids in others (`productCategoryMembership`).
    pub reference: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

impl SearchPage {
    /// The metadata (paging, columns).
    pub fn meta(&self) -> Option<&SearchMetaData> {
        self.results.meta_data.as_ref()
    }

    /// Whether another page follows (`morePagesAvailable`).
    pub fn more_pages(&self) -> bool {
        self.meta()
            .and_then(|m| m.more_pages_available)
            .unwrap_or(false)
    }

    /// `firstResult` of the next page (`lastResult + 1`), if another page follows.
    pub fn next_first_result(&self) -> Option<u64> {
        if !self.more_pages() {
            return None;
        }
        self.meta()
            .and_then(|m| m.last_result)
            .and_then(|l| u64::try_from(l).ok())
            .map(|l| l + 1)
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

    /// The label of `id` in the reference map `name` (e.g. `orderStatusNames`), when that
    /// value is a string.
    pub fn reference_label(&self, name: &str, id: &str) -> Option<&str> {
        self.reference_value(name, id)?.as_str()
    }

    /// The value of `id` in the reference map `name`, whatever its JSON type (product search's
    /// `productCategoryMembership` holds arrays of category ids).
    pub fn reference_value(&self, name: &str, id: &str) -> Option<&serde_json::Value> {
        self.reference.get(name)?.get(id)
    }
}

impl Client {
    /// Runs one search page. A `404 CMNC-404` is an empty page.
    pub async fn search(
        &self,
        resource: SearchResource,
        query: &SearchQuery,
    ) -> Result<SearchPage> {
        let path = resource.path_in(self.account().to_owned());
        let request = self
            .request(resource.operation(), &path, &query.to_query())
            .await?;
        let Some(response) = found(self.send(request).await)? else {
            return Ok(SearchPage::default());
        };
        let envelope: SearchEnvelope = decode(resource.operation().id, &response)?;
        Ok(SearchPage {
            results: envelope.response,
            reference: envelope.reference.unwrap_or_default(),
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
                match client.search(resource, &query).await {
                    Ok(page) => {
                        let next = page
                            .next_first_result()
                            .map(|first| query.clone().first_result(first));
                        Some((Ok(page), next))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
    }

    /// Every row of every page, decoded into `T` by column name.
    pub async fn search_all<T: DeserializeOwned>(
        &self,
        resource: SearchResource,
        query: SearchQuery,
    ) -> Result<Vec<T>> {
        use futures::StreamExt as _;
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
#[non_exhaustive]
pub struct ProductRow {
    /// Product id.
    #[serde(rename = "productId")]
    pub product_id: u64,
    /// SKU.
    #[serde(rename = "SKU", default)]
    pub sku: Option<String>,
    /// Product name.
    #[serde(rename = "productName", default)]
    pub product_name: Option<String>,
    /// Whether stock is tracked (column `stockTracked`). Bundles never are: their stock comes
    /// from [`Client::bundle_availability`](crate::Client::bundle_availability).
    #[serde(rename = "stockTracked", default)]
    pub stock_tracked: Option<bool>,
}

/// A `contact-search` row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct ContactRow {
    /// Contact id.
    #[serde(rename = "contactId")]
    pub contact_id: u64,
    /// Primary e-mail.
    #[serde(rename = "primaryEmail", default)]
    pub primary_email: Option<String>,
    /// First name.
    #[serde(rename = "firstName", default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(rename = "lastName", default)]
    pub last_name: Option<String>,
}

/// An `order-search` row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct OrderRow {
    /// Order id.
    #[serde(rename = "orderId")]
    pub order_id: u64,
    /// Order status id (label in the `orderStatusNames` reference map).
    #[serde(rename = "orderStatusId", default)]
    pub order_status_id: Option<u64>,
    /// Customer contact id.
    #[serde(rename = "contactId", default)]
    pub contact_id: Option<u64>,
    /// External reference (our order number).
    #[serde(rename = "externalRef", default)]
    pub external_ref: Option<String>,
}

/// A `goods-out-search` row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct GoodsOutNoteRow {
    /// Goods-out note id.
    #[serde(rename = "goodsOutNoteId")]
    pub goods_out_note_id: u64,
    /// Order id.
    #[serde(rename = "orderId", default)]
    pub order_id: Option<u64>,
    /// Whether it has shipped.
    #[serde(default)]
    pub shipped: Option<bool>,
    /// When it shipped.
    #[serde(rename = "shippedOn", default)]
    pub shipped_on: Option<String>,
}
