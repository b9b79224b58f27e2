//! Reading Brightpearl with as few requests as its ID sets allow: the catalog by one search
//! (500 rows a page, with each product's `stockTracked` flag), given products by a search on
//! their ID set (500 a request), availability and prices in the client's sets of 100, price
//! lists in one call; bundles (never stock-tracked) told apart by product GETs of 200 and their
//! stock read by bundle availability.

use std::collections::{BTreeMap, BTreeSet};

use brightpearl_client::{IdSet, ProductRow, SearchQuery, SearchResource, SortDirection};
use tracing::Instrument as _;

use super::names::span;
use crate::flows::context::FlowError;

/// Brightpearl's largest search page.
pub(super) const MAX_SEARCH_PAGE: u32 = 500;

/// Longest ID set in a query (the client's own limit for ID-set paths; the URI stays well
/// under the 2048 characters Brightpearl takes).
const MAX_ID_SET_CHARS: usize = 1500;

/// The search columns read: the id, the SKU and whether stock is tracked (bundles never are).
pub(crate) const COLUMNS: [&str; 3] = ["productId", "SKU", "stockTracked"];

/// What the product search says about one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CatalogEntry {
    /// The SKU; `None` without one (nothing to match in Norce).
    pub sku: Option<String>,
    /// The `stockTracked` column; `None` if Brightpearl did not send it.
    pub stock_tracked: Option<bool>,
}

impl From<ProductRow> for CatalogEntry {
    fn from(row: ProductRow) -> Self {
        Self {
            sku: row.sku.filter(|s| !s.trim().is_empty()),
            stock_tracked: row.stock_tracked,
        }
    }
}

/// Product id → SKU and stock tracking.
pub(super) type Catalog = BTreeMap<u64, CatalogEntry>;

/// Every product with its SKU: `product-search` with only the three columns, whole pages.
pub(super) async fn catalog(
    bp: &brightpearl_client::Client,
    flow: &'static str,
) -> Result<Catalog, FlowError> {
    let query = SearchQuery::new()
        .columns(COLUMNS)
        .sort("productId", SortDirection::Asc)
        .page_size(MAX_SEARCH_PAGE);
    let rows: Vec<ProductRow> = bp
        .search_all(SearchResource::Products, query)
        .instrument(span(flow, "catalog", "*"))
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.product_id, CatalogEntry::from(r)))
        .collect())
}

/// The SKUs of these products: `product-search` filtered by a `productId` ID set, 500 ids
/// (and at most 1500 characters of ID set) per request. Products Brightpearl no longer has
/// are absent from the result. (A search row carries the SKU, so this takes fewer requests
/// than product GETs of 200.)
pub(super) async fn products(
    bp: &brightpearl_client::Client,
    flow: &'static str,
    ids: &BTreeSet<u64>,
) -> Result<Catalog, FlowError> {
    let mut catalog = Catalog::new();
    for chunk in
        IdSet::from_ids(ids.iter().copied()).chunks(MAX_SEARCH_PAGE as usize, MAX_ID_SET_CHARS)
    {
        let label = chunk.to_string();
        let query = SearchQuery::new()
            .filter("productId", label.clone())
            .columns(COLUMNS)
            .sort("productId", SortDirection::Asc)
            .page_size(MAX_SEARCH_PAGE);
        let rows: Vec<ProductRow> = bp
            .search_all(SearchResource::Products, query)
            .instrument(span(flow, "products", &label))
            .await?;
        catalog.extend(
            rows.into_iter()
                .filter(|r| ids.contains(&r.product_id))
                .map(|r| (r.product_id, CatalogEntry::from(r))),
        );
    }
    Ok(catalog)
}

/// A short label for a set of ids in spans and logs (`1001-1200`, `1001 (+3)`).
pub(super) fn id_label(ids: &[u64]) -> String {
    match (ids.first(), ids.last()) {
        (Some(first), Some(last)) if ids.len() as u64 == last - first + 1 && first != last => {
            format!("{first}-{last}")
        }
        (Some(first), _) if ids.len() > 1 => format!("{first} (+{})", ids.len() - 1),
        (Some(first), _) => first.to_string(),
        _ => String::new(),
    }
}
