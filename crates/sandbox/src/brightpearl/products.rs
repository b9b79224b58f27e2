//! product-service: products, product OPTIONS, product-search, price lists, product prices.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use brightpearl_models::common::{GetUris, GetUrisResponse};
use brightpearl_models::product::{
    GetProductsQuery, PriceListListResponse, ProductListResponse, ProductPrice,
    ProductPriceListEntry, ProductPriceListResponse, SearchProductsQuery,
};
use serde_json::{Value, json};

use super::idset::{self, IdSet};
use super::reply::{Ctx, Reply};
use super::search::{Col, Kind, Search, bad_query, col};

pub fn get_products(ctx: &mut Ctx<'_>, ids: &str) -> Reply {
    let query: GetProductsQuery = ctx.query().unwrap_or_default();
    let set = match idset::parse_path(ids, false, Some(ctx.config().max_ids_product)) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let custom = query
        .include_optional
        .as_deref()
        .is_some_and(|o| o.split(',').any(|p| p.trim() == "customFields"));
    let store = ctx.state.brightpearl.lock();
    let found: Vec<_> = store
        .products
        .values()
        .filter(|p| set.contains(p.id))
        .map(|p| {
            let mut p = p.clone();
            if custom {
                p.custom_fields = Some(BTreeMap::new());
            }
            p
        })
        .collect();
    if found.is_empty() {
        return Reply::not_found(format!("No products found in ID set {ids}"));
    }
    Reply::raw(StatusCode::OK, ProductListResponse { response: found })
}

/// The `OPTIONS` answer of products and orders: the URIs of the `existing` ids that are in `set`,
/// chunked to `limit` ids each.
pub fn uris_reply(
    prefix: &str,
    existing: impl Iterator<Item = i64>,
    set: &IdSet,
    limit: usize,
) -> Reply {
    let existing: Vec<i64> = existing.filter(|id| set.contains(*id)).collect();
    Reply::raw(
        StatusCode::OK,
        GetUrisResponse {
            response: GetUris {
                get_uris: Some(idset::get_uris(prefix, &existing, limit)),
            },
        },
    )
}

pub fn product_uris(ctx: &mut Ctx<'_>, ids: Option<&str>) -> Reply {
    let set = match idset::parse_optional_path(ids) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    uris_reply(
        "/product",
        store.products.keys().copied(),
        &set,
        ctx.config().max_ids_product,
    )
}

const PRODUCT_COLUMNS: &[Col] = &[
    col("productId", Kind::IdSet),
    col("productName", Kind::SearchString),
    col("SKU", Kind::String),
    col("barcode", Kind::String),
    col("EAN", Kind::String),
    col("stockTracked", Kind::Boolean),
    col("productStatus", Kind::String),
    col("createdOn", Kind::Period),
    col("updatedOn", Kind::Period),
    col("brandId", Kind::Integer),
    col("productTypeId", Kind::Integer),
];

/// Product id → the ids of its Brightpearl categories, as product search's
/// `productCategoryMembership` reference map sends them (arrays, not labels).
fn category_membership(store: &super::store::Store) -> BTreeMap<String, Value> {
    store
        .products
        .values()
        .map(|p| {
            let ids: Vec<Value> = p
                .sales_channels
                .iter()
                .flatten()
                .flat_map(|c| c.categories.iter().flatten())
                .filter_map(|c| {
                    c.category_code
                        .as_deref()
                        .and_then(|code| code.parse::<i64>().ok())
                })
                .map(Value::from)
                .collect();
            (p.id.to_string(), Value::Array(ids))
        })
        .collect()
}

pub fn search_products(ctx: &mut Ctx<'_>) -> Reply {
    let query: SearchProductsQuery = match ctx.query() {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    let (rows, membership) = {
        let store = ctx.state.brightpearl.lock();
        let rows = store
            .products
            .values()
            .map(|p| {
                let identity = p.identity.clone().unwrap_or_default();
                let name = p
                    .sales_channels
                    .as_ref()
                    .and_then(|c| c.first())
                    .and_then(|c| c.product_name.clone());
                vec![
                    json!(p.id),
                    json!(name),
                    json!(identity.sku),
                    json!(identity.barcode),
                    json!(identity.ean),
                    json!(p.stock.as_ref().and_then(|s| s.stock_tracked)),
                    json!(p.status),
                    json!(p.created_on.as_ref().map(|t| t.as_str().to_owned())),
                    json!(p.updated_on.as_ref().map(|t| t.as_str().to_owned())),
                    json!(p.brand_id),
                    json!(p.product_type_id),
                ]
            })
            .collect();
        (rows, category_membership(&store))
    };
    let search = Search {
        cols: PRODUCT_COLUMNS,
        rows,
        filters: vec![
            ("productId", query.product_id.clone()),
            ("SKU", query.sku.clone()),
            ("productName", query.product_name.clone()),
            ("barcode", query.barcode.clone()),
            ("EAN", query.ean.clone()),
            ("productStatus", query.product_status.clone()),
            ("stockTracked", query.stock_tracked.map(|b| b.to_string())),
            ("createdOn", query.created_on.clone()),
            ("updatedOn", query.updated_on.clone()),
        ],
        columns: query.columns.as_deref(),
        sort: query.sort.as_deref(),
        page_size: query.page_size,
        first_result: query.first_result,
        max_page_size: ctx.config().max_page_size,
        reference: BTreeMap::new(),
        row_reference: BTreeMap::from([("productCategoryMembership".to_owned(), membership)]),
    };
    search.reply()
}

pub fn price_lists(ctx: &mut Ctx<'_>, ids: Option<&str>) -> Reply {
    let set = match idset::parse_optional_path(ids) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    let found: Vec<_> = store
        .price_lists
        .iter()
        .filter(|l| set.contains(l.id))
        .cloned()
        .collect();
    if found.is_empty() && ids.is_some() {
        return Reply::not_found(format!(
            "No price lists found in ID set {}",
            ids.unwrap_or_default()
        ));
    }
    Reply::raw(StatusCode::OK, PriceListListResponse { response: found })
}

pub fn product_prices(ctx: &mut Ctx<'_>, ids: &str, lists: Option<&str>) -> Reply {
    let set = match idset::parse_path(ids, false, None) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let list_set = match idset::parse_optional_path(lists) {
        Ok(l) => l,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    let mut found = Vec::new();
    for id in store
        .products
        .keys()
        .copied()
        .filter(|id| set.contains(*id))
    {
        // Brightpearl's example carries the product's SKU on each entry.
        let sku = store
            .products
            .get(&id)
            .and_then(|p| p.identity.as_ref())
            .and_then(|i| i.sku.clone());
        let entries: Vec<ProductPriceListEntry> = store
            .price_lists
            .iter()
            .filter(|l| list_set.contains(l.id))
            .map(|l| {
                let quantity_price = store
                    .prices
                    .get(&(id, l.id))
                    .map(|price| {
                        let mut price = *price;
                        price.rescale(4);
                        BTreeMap::from([("1".to_owned(), price)])
                    })
                    .unwrap_or_default();
                ProductPriceListEntry {
                    price_list_id: Some(l.id),
                    currency_code: l.currency_code.clone(),
                    currency_id: l.currency_id,
                    sku: sku.clone(),
                    quantity_price: Some(quantity_price),
                }
            })
            .collect();
        if !entries.is_empty() {
            found.push(ProductPrice {
                product_id: id,
                price_lists: Some(entries),
            });
        }
    }
    if found.is_empty() {
        return Reply::not_found("No Product Prices Found");
    }
    Reply::raw(StatusCode::OK, ProductPriceListResponse { response: found })
}
