//! warehouse-service: product and bundle availability, goods-out notes (GET and search),
//! warehouses and shipping methods; plus the goods-out-note and stock changes the admin routes
//! drive.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use brightpearl_models::order::ShippingStatusCode;
use brightpearl_models::product::ProductWarehouseSettings;
use brightpearl_models::warehouse::{
    BundleAvailability, BundleAvailabilityResponse, BundleStockLevels, GetProductAvailabilityQuery,
    GoodsOutNote, GoodsOutNoteEvent, GoodsOutNoteEventCode, GoodsOutNoteMapResponse,
    GoodsOutNoteRow, GoodsOutNoteShipping, GoodsOutNoteStatus, NamedItem, NamedItemListResponse,
    ProductAvailability, ProductAvailabilityResponse, SearchGoodsOutNotesQuery, StockLevels,
};
use chrono::{DateTime, Utc};
use models_runtime::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::idset;
use super::reply::Event;
use super::reply::{Ctx, Reply};
use super::search::{Col, Kind, Search, bad_query, col};
use super::store::{Store, ts};

/// Shipping methods of the simulated account.
pub const SHIPPING_METHODS: &[(i64, &str)] = &[
    (1, "Standard delivery"),
    (2, "Express delivery"),
    (3, "Pickup point"),
];
/// Staff contact id the simulator acts as (GON events, creators).
const STAFF_ID: i64 = 4;
/// Most ids an availability request may expand to.
const AVAILABILITY_EXPAND_CAP: u64 = 10_000;

/// Whether a product exists and is stock-tracked (bundles never are).
fn is_stock_tracked(store: &Store, product: i64) -> bool {
    store
        .products
        .get(&product)
        .and_then(|p| p.stock.as_ref())
        .and_then(|s| s.stock_tracked)
        .unwrap_or(false)
}

fn levels(store: &Store, product: i64, warehouse: i64) -> StockLevels {
    let s = store.stock_of(product, warehouse);
    StockLevels {
        in_stock: Some(s.in_stock),
        on_hand: Some(s.on_hand()),
        allocated: Some(s.allocated),
        in_transit: Some(0),
    }
}

/// Availability of one product, in total and per warehouse.
pub fn availability_of(store: &Store, product: i64) -> ProductAvailability {
    let mut total = StockLevels {
        in_stock: Some(0),
        on_hand: Some(0),
        allocated: Some(0),
        in_transit: Some(0),
    };
    let mut warehouses = BTreeMap::new();
    for (w, _) in &store.warehouses {
        let l = levels(store, product, *w);
        total.in_stock = Some(total.in_stock.unwrap_or(0) + l.in_stock.unwrap_or(0));
        total.on_hand = Some(total.on_hand.unwrap_or(0) + l.on_hand.unwrap_or(0));
        total.allocated = Some(total.allocated.unwrap_or(0) + l.allocated.unwrap_or(0));
        warehouses.insert(w.to_string(), l);
    }
    ProductAvailability {
        total: Some(total),
        warehouses: Some(warehouses),
    }
}

/// The ids of an availability path's ID set, at most `AVAILABILITY_EXPAND_CAP` of them.
fn availability_ids(text: &str) -> Result<Vec<i64>, Reply> {
    let set = idset::parse_path(text, false, None)?;
    set.expand(AVAILABILITY_EXPAND_CAP).ok_or_else(|| {
        Reply::bad_request(
            "CMNC-400",
            format!("ID set names more than {AVAILABILITY_EXPAND_CAP} ids"),
        )
    })
}

pub fn availability(ctx: &mut Ctx<'_>, ids: &str) -> Reply {
    let _query: GetProductAvailabilityQuery = ctx.query().unwrap_or_default();
    let ids = match availability_ids(ids) {
        Ok(ids) => ids,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    // One unknown id fails the whole request (observed by a client that bisects its chunks).
    if let Some(missing) = ids.iter().find(|id| !store.products.contains_key(id)) {
        return Reply::bad_request("WHSC-400", format!("Product {missing} does not exist"));
    }
    // Ids of products that are not stock-tracked (bundles among them) are ignored: no entry.
    let response = ids
        .iter()
        .filter(|id| is_stock_tracked(&store, **id))
        .map(|id| (id.to_string(), availability_of(&store, *id)))
        .collect();
    Reply::raw(StatusCode::OK, ProductAvailabilityResponse { response })
}

/// Availability of one bundle: per warehouse that physically holds every component, how many
/// whole bundles the components on hand make (the minimum over the components of
/// `onHand / quantity`, rounded down, never below 0); the total is the sum. `None` when the
/// product is not a bundle.
pub fn bundle_availability_of(store: &Store, bundle: i64) -> Option<BundleAvailability> {
    let components = store.bundles.get(&bundle)?;
    let mut warehouses = BTreeMap::new();
    for (w, _) in &store.warehouses {
        let holds_all = components
            .iter()
            .all(|(c, _)| store.stock_of(*c, *w).in_stock > 0);
        if !holds_all {
            continue;
        }
        let on_hand = components
            .iter()
            .map(|(c, qty)| store.stock_of(*c, *w).on_hand().max(0) / (*qty).max(1))
            .min()
            .unwrap_or(0);
        warehouses.insert(
            w.to_string(),
            BundleStockLevels {
                on_hand,
                ..Default::default()
            },
        );
    }
    let total = warehouses.values().map(|l| l.on_hand).sum();
    Some(BundleAvailability {
        total: Some(BundleStockLevels {
            on_hand: total,
            ..Default::default()
        }),
        warehouses: Some(warehouses),
    })
}

/// `GET bundle-availability/{id}`: the documented form names one product id. An ID set of
/// several ids is accepted (answering for each bundle in it) since Brightpearl's behaviour is
/// unconfirmed; ids that are not bundles are left out, and none at all is `404 CMNC-404`.
pub fn bundle_availability(ctx: &mut Ctx<'_>, text: &str) -> Reply {
    let ids = match availability_ids(text) {
        Ok(ids) => ids,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    let response: BTreeMap<String, BundleAvailability> = ids
        .iter()
        .filter_map(|id| Some((id.to_string(), bundle_availability_of(&store, *id)?)))
        .collect();
    if response.is_empty() {
        return Reply::not_found(format!("No bundle products found in ID set {text}"));
    }
    Reply::raw(StatusCode::OK, BundleAvailabilityResponse { response })
}

pub fn goods_out_notes(ctx: &mut Ctx<'_>, orders: &str, gons: Option<&str>) -> Reply {
    let order_set = match idset::parse_path(orders, true, None) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let gon_set = match gons
        .map(|g| idset::parse_path(g, false, Some(ctx.config().max_ids_goods_out_note)))
        .transpose()
    {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    let found: BTreeMap<String, GoodsOutNote> = store
        .gons
        .iter()
        .filter(|(id, gon)| {
            order_set.contains(gon.order_id.unwrap_or(0))
                && gon_set.as_ref().is_none_or(|s| s.contains(**id))
        })
        .map(|(id, gon)| (id.to_string(), gon.clone()))
        .collect();
    if found.is_empty() {
        return Reply::not_found("No goods-out notes found");
    }
    Reply::raw(StatusCode::OK, GoodsOutNoteMapResponse { response: found })
}

const GON_COLUMNS: &[Col] = &[
    col("goodsOutNoteId", Kind::IdSet),
    col("orderId", Kind::IdSet),
    col("warehouseId", Kind::Integer),
    col("printed", Kind::Boolean),
    col("picked", Kind::Boolean),
    col("packed", Kind::Boolean),
    col("shipped", Kind::Boolean),
    col("shippedOn", Kind::Period),
    col("createdOn", Kind::Period),
    col("releaseDate", Kind::Period),
    col("shippingMethodId", Kind::Integer),
    col("priority", Kind::Boolean),
    col("transfer", Kind::Boolean),
    col("createdBy", Kind::Integer),
];

pub fn search_goods_out_notes(ctx: &mut Ctx<'_>) -> Reply {
    let query: SearchGoodsOutNotesQuery = match ctx.query() {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    let text = |t: &Option<models_runtime::Timestamp>| t.as_ref().map(|t| t.as_str().to_owned());
    let rows = ctx
        .state
        .brightpearl
        .lock()
        .gons
        .iter()
        .map(|(id, g)| {
            let status = g.status.clone().unwrap_or_default();
            vec![
                json!(id),
                json!(g.order_id),
                json!(g.warehouse_id),
                json!(status.printed),
                json!(status.picked),
                json!(status.packed),
                json!(status.shipped),
                json!(text(&status.shipped_on)),
                json!(text(&g.created_on)),
                json!(text(&g.release_date)),
                json!(g.shipping.as_ref().and_then(|s| s.shipping_method_id)),
                json!(g.priority),
                json!(g.transfer),
                json!(g.created_by),
            ]
        })
        .collect();
    let search = Search {
        cols: GON_COLUMNS,
        rows,
        filters: vec![
            ("goodsOutNoteId", query.goods_out_note_id.clone()),
            ("orderId", query.order_id.clone()),
            ("warehouseId", query.warehouse_id.clone()),
            ("shipped", query.shipped.map(|b| b.to_string())),
            ("shippedOn", query.shipped_on.clone()),
            ("createdOn", query.created_on.clone()),
        ],
        columns: query.columns.as_deref(),
        sort: query.sort.as_deref(),
        page_size: query.page_size,
        first_result: query.first_result,
        max_page_size: ctx.config().max_page_size,
        reference: BTreeMap::new(),
        row_reference: BTreeMap::new(),
    };
    search.reply()
}

pub fn warehouses(ctx: &mut Ctx<'_>) -> Reply {
    let store = ctx.state.brightpearl.lock();
    let response = store
        .warehouses
        .iter()
        .map(|(id, name)| NamedItem {
            id: *id,
            name: Some(name.clone()),
        })
        .collect();
    Reply::raw(StatusCode::OK, NamedItemListResponse { response })
}

pub fn shipping_methods(_ctx: &mut Ctx<'_>) -> Reply {
    let response = SHIPPING_METHODS
        .iter()
        .map(|(id, name)| NamedItem {
            id: *id,
            name: Some((*name).to_owned()),
        })
        .collect();
    Reply::raw(StatusCode::OK, NamedItemListResponse { response })
}

/// Admin request: a goods-out note for an order.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGoodsOutNote {
    /// The order.
    pub order_id: i64,
    /// Warehouse (default: the order's, else the first).
    pub warehouse_id: Option<i64>,
    /// Rows and quantities (default: everything of stock-tracked rows not yet on a note).
    pub rows: Option<Vec<GoodsOutNoteRowRequest>>,
    /// Shipping method (default: the order's delivery method).
    pub shipping_method_id: Option<i64>,
    /// Priority flag.
    pub priority: Option<bool>,
}

/// One row of [`CreateGoodsOutNote`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoodsOutNoteRowRequest {
    /// Sales order row id.
    pub order_row_id: i64,
    /// Quantity to send.
    pub quantity: i64,
}

/// An admin failure: status and message.
pub type AdminError = (StatusCode, String);

fn quantity(d: Option<Decimal>) -> i64 {
    d.and_then(|d| i64::try_from(d.trunc()).ok()).unwrap_or(0)
}

/// Quantity of each order row already on goods-out notes (`shipped_only`: on shipped ones).
fn on_notes(store: &Store, order_id: i64, shipped_only: bool) -> BTreeMap<i64, i64> {
    let mut sums = BTreeMap::new();
    for gon in store.gons.values().filter(|g| g.order_id == Some(order_id)) {
        if shipped_only && !gon.status.as_ref().and_then(|s| s.shipped).unwrap_or(false) {
            continue;
        }
        for (row, lines) in gon.order_rows.iter().flatten() {
            let Ok(row) = row.parse::<i64>() else {
                continue;
            };
            *sums.entry(row).or_insert(0) +=
                lines.iter().map(|l| l.quantity.unwrap_or(0)).sum::<i64>();
        }
    }
    sums
}

/// Stock-tracked product rows of an order: (row id, product id, quantity).
fn tracked_rows(store: &Store, order_id: i64) -> Vec<(i64, i64, i64)> {
    let Some(order) = store.orders.get(&order_id) else {
        return Vec::new();
    };
    order
        .rows
        .iter()
        .flatten()
        .filter_map(|row| {
            let product = row.product_id?;
            let tracked = store
                .products
                .get(&product)?
                .stock
                .as_ref()?
                .stock_tracked
                .unwrap_or(false);
            tracked.then(|| (row.id, product, quantity(row.quantity)))
        })
        .collect()
}

/// Creates a goods-out note, allocating its stock. Returns the note id and the events.
pub fn create_goods_out_note(
    store: &mut Store,
    request: &CreateGoodsOutNote,
    now: DateTime<Utc>,
) -> Result<(i64, Vec<Event>), AdminError> {
    let Some(order) = store.orders.get(&request.order_id).cloned() else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("order {} does not exist", request.order_id),
        ));
    };
    let warehouse = request
        .warehouse_id
        .or(order.warehouse_id)
        .or_else(|| store.warehouses.first().map(|(w, _)| *w))
        .unwrap_or(2);
    if !store.warehouses.iter().any(|(w, _)| *w == warehouse) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("warehouse {warehouse} does not exist"),
        ));
    }
    let rows = tracked_rows(store, request.order_id);
    let used = on_notes(store, request.order_id, false);
    let remaining = |row: i64, ordered: i64| ordered - used.get(&row).copied().unwrap_or(0);
    let mut lines: Vec<(i64, i64, i64)> = Vec::new();
    match &request.rows {
        None => {
            for (row, product, ordered) in &rows {
                let left = remaining(*row, *ordered);
                if left > 0 {
                    lines.push((*row, *product, left));
                }
            }
        }
        Some(wanted) => {
            for want in wanted {
                let Some((row, product, ordered)) =
                    rows.iter().find(|(r, _, _)| *r == want.order_row_id)
                else {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!(
                            "row {} is not a stock-tracked product row of order {}",
                            want.order_row_id, request.order_id
                        ),
                    ));
                };
                if want.quantity <= 0 || want.quantity > remaining(*row, *ordered) {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!(
                            "row {row}: quantity {} exceeds what is left to fulfil",
                            want.quantity
                        ),
                    ));
                }
                lines.push((*row, *product, want.quantity));
            }
        }
    }
    if lines.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "order {} has nothing left to put on a goods-out note",
                request.order_id
            ),
        ));
    }
    let mut order_rows: BTreeMap<String, Vec<GoodsOutNoteRow>> = BTreeMap::new();
    let mut products = Vec::new();
    for (row, product, qty) in &lines {
        store
            .stock
            .entry((*product, warehouse))
            .or_default()
            .allocated += qty;
        products.push(*product);
        order_rows
            .entry(row.to_string())
            .or_default()
            .push(GoodsOutNoteRow {
                product_id: Some(*product),
                quantity: Some(*qty),
                location_id: Some(warehouse * 100 + 1),
                external_ref: None,
            });
    }
    store.ids.gon += 1;
    let id = store.ids.gon;
    let sequence = store
        .gons
        .values()
        .filter(|g| g.order_id == Some(request.order_id))
        .count() as i64
        + 1;
    let gon = GoodsOutNote {
        order_id: Some(request.order_id),
        warehouse_id: Some(warehouse),
        transfer: Some(false),
        priority: Some(request.priority.unwrap_or(false)),
        status: Some(GoodsOutNoteStatus {
            printed: Some(false),
            picked: Some(false),
            packed: Some(false),
            shipped: Some(false),
            ..Default::default()
        }),
        shipping: Some(GoodsOutNoteShipping {
            reference: None,
            boxes: Some(1),
            weight: None,
            shipping_method_id: request
                .shipping_method_id
                .or_else(|| order.delivery.as_ref().and_then(|d| d.shipping_method_id)),
        }),
        release_date: Some(ts(now)),
        created_on: Some(ts(now)),
        created_by: Some(STAFF_ID),
        sequence: Some(sequence),
        label_uri: None,
        external_ref: None,
        order_rows: Some(order_rows),
        events: Some(vec![GoodsOutNoteEvent {
            occured: Some(ts(now)),
            event_owner_id: Some(STAFF_ID),
            event_code: Some(GoodsOutNoteEventCode::Pla),
        }]),
        last_event_version: Some(1),
    };
    store.gons.insert(id, gon);
    products.sort_unstable();
    products.dedup();
    Ok((
        id,
        vec![
            Event::new("goods-out-note.created", vec![id]),
            Event::new("product.modified.on-hand-modified", products),
        ],
    ))
}

/// Marks a goods-out note shipped (adding any missing printed, picked and packed events, as
/// Brightpearl does for `SHW`); the stock leaves the warehouse.
pub fn ship_goods_out_note(
    store: &mut Store,
    id: i64,
    reference: Option<String>,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, AdminError> {
    let Some(gon) = store.gons.get_mut(&id) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("goods-out note {id} does not exist"),
        ));
    };
    let mut status = gon.status.clone().unwrap_or_default();
    if status.shipped == Some(true) {
        return Err((
            StatusCode::CONFLICT,
            format!("goods-out note {id} is already shipped"),
        ));
    }
    let events = gon.events.get_or_insert_with(Vec::new);
    let mut add = |code: GoodsOutNoteEventCode| {
        events.push(GoodsOutNoteEvent {
            occured: Some(ts(now)),
            event_owner_id: Some(STAFF_ID),
            event_code: Some(code),
        })
    };
    if status.printed != Some(true) {
        status.printed = Some(true);
        status.printed_on = Some(ts(now));
        status.printed_by_id = Some(STAFF_ID);
        add(GoodsOutNoteEventCode::Pri);
    }
    if status.picked != Some(true) {
        status.picked = Some(true);
        status.picked_on = Some(ts(now));
        status.picked_by_id = Some(STAFF_ID);
        add(GoodsOutNoteEventCode::Pic);
    }
    if status.packed != Some(true) {
        status.packed = Some(true);
        status.packed_on = Some(ts(now));
        status.packed_by_id = Some(STAFF_ID);
        add(GoodsOutNoteEventCode::Pac);
    }
    status.shipped = Some(true);
    status.shipped_on = Some(ts(now));
    status.shipped_by_id = Some(STAFF_ID);
    add(GoodsOutNoteEventCode::Shw);
    gon.last_event_version = Some(gon.events.as_ref().map_or(0, |e| e.len() as i64));
    gon.status = Some(status);
    if let Some(reference) = reference {
        gon.shipping.get_or_insert_with(Default::default).reference = Some(reference);
    }
    let order_id = gon.order_id.unwrap_or(0);
    let warehouse = gon.warehouse_id.unwrap_or(0);
    let lines: Vec<(i64, i64)> = gon
        .order_rows
        .iter()
        .flatten()
        .flat_map(|(_, l)| l.iter())
        .map(|l| (l.product_id.unwrap_or(0), l.quantity.unwrap_or(0)))
        .collect();
    for (product, qty) in lines {
        let stock = store.stock.entry((product, warehouse)).or_default();
        stock.in_stock -= qty;
        stock.allocated -= qty;
    }
    let mut events = vec![Event::new("goods-out-note.modified.shipped", vec![id])];
    let shipped = on_notes(store, order_id, true);
    let rows = tracked_rows(store, order_id);
    let all = rows
        .iter()
        .all(|(row, _, qty)| shipped.get(row).copied().unwrap_or(0) >= *qty);
    let any = rows
        .iter()
        .any(|(row, _, _)| shipped.get(row).copied().unwrap_or(0) > 0);
    if let Some(order) = store.orders.get_mut(&order_id) {
        order.shipping_status_code = Some(if all {
            ShippingStatusCode::Ass
        } else if any {
            ShippingStatusCode::Sps
        } else {
            ShippingStatusCode::Sns
        });
        order.updated_on = Some(ts(now));
        order.version = Some(order.version.unwrap_or(0) + 1);
        if all {
            events.push(Event::new("order.modified.fully-shipped", vec![order_id]));
        }
    }
    Ok(events)
}

/// What the simulated warehouse does with a sales order just created, when
/// [`super::config::BrightpearlConfig::warehouse_ships`] is on: for every `every`-th order, a goods-out
/// note of all its stock-tracked rows (or, for a partial shipment, of its first row), marked
/// shipped at once with the order's shipping method (else `shipping_method_id`) and a tracking
/// reference. Returns the events of both steps, as the admin routes fire them; none when the
/// order is not one to ship or has no stock-tracked rows.
pub fn ship_new_order(
    store: &mut Store,
    ships: &super::config::WarehouseShips,
    order_id: i64,
    now: DateTime<Utc>,
) -> Vec<Event> {
    // The order is already stored: it is the `nth` created.
    let nth = store.orders.len();
    if ships.every == 0 || nth == 0 || !(nth - 1).is_multiple_of(ships.every) {
        return Vec::new();
    }
    let rows = tracked_rows(store, order_id);
    let Some(&(first_row, _, first_quantity)) = rows.first() else {
        return Vec::new();
    };
    let part_shipped = if ships.partial == 0 {
        0
    } else {
        store
            .orders
            .values()
            .filter(|o| o.shipping_status_code == Some(ShippingStatusCode::Sps))
            .count()
    };
    let partial_quantity = if rows.len() > 1 {
        Some(first_quantity)
    } else {
        (first_quantity > 1).then(|| first_quantity - 1)
    };
    let partial = part_shipped < ships.partial && partial_quantity.is_some();
    let shipping_method = store
        .orders
        .get(&order_id)
        .and_then(|o| o.delivery.as_ref()?.shipping_method_id)
        .unwrap_or(ships.shipping_method_id);
    let request = CreateGoodsOutNote {
        order_id,
        warehouse_id: None,
        rows: partial_quantity.filter(|_| partial).map(|quantity| {
            vec![GoodsOutNoteRowRequest {
                order_row_id: first_row,
                quantity,
            }]
        }),
        shipping_method_id: Some(shipping_method),
        priority: None,
    };
    let Ok((gon, mut events)) = create_goods_out_note(store, &request, now) else {
        return Vec::new();
    };
    let reference = format!("{}{gon:010}", ships.tracking_prefix);
    if let Ok(shipped) = ship_goods_out_note(store, gon, Some(reference), now) {
        events.extend(shipped);
    }
    events
}

/// The refusal of an admin request naming a product the account does not have.
fn no_product(product: i64) -> AdminError {
    let message = format!("product {product} does not exist");
    (StatusCode::NOT_FOUND, message)
}

/// The warehouse asked for (default: the first), if it exists.
fn existing_warehouse(store: &Store, asked: Option<i64>) -> Result<i64, AdminError> {
    let warehouse = asked
        .or_else(|| store.warehouses.first().map(|(w, _)| *w))
        .unwrap_or(2);
    if !store.warehouses.iter().any(|(w, _)| *w == warehouse) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("warehouse {warehouse} does not exist"),
        ));
    }
    Ok(warehouse)
}

/// Admin request: a product's default location in a warehouse, or none.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultLocationChange {
    /// Warehouse (default: the first).
    pub warehouse_id: Option<i64>,
    /// The new default location; `null` removes it.
    pub location_id: Option<i64>,
}

/// Sets (or with `locationId: null` removes) a product's default location in a warehouse, as
/// its record's `warehouses.{id}.defaultLocationId` shows it; returns the warehouse's settings.
pub fn set_default_location(
    store: &mut Store,
    product: i64,
    change: &DefaultLocationChange,
) -> Result<ProductWarehouseSettings, AdminError> {
    let warehouse = existing_warehouse(store, change.warehouse_id)?;
    let Some(record) = store.products.get_mut(&product) else {
        return Err(no_product(product));
    };
    let settings = (record.warehouses.get_or_insert_with(Default::default))
        .entry(warehouse.to_string())
        .or_default();
    settings.default_location_id = change.location_id;
    Ok(settings.clone())
}

/// Admin request: new stock figures for a product in a warehouse.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StockChange {
    /// Warehouse (default: the first).
    pub warehouse_id: Option<i64>,
    /// New on-hand quantity.
    pub on_hand: Option<i64>,
    /// Change of the on-hand quantity (instead of `onHand`).
    pub delta: Option<i64>,
}

/// Sets a product's on-hand quantity; returns its availability and the events.
pub fn change_stock(
    store: &mut Store,
    product: i64,
    change: &StockChange,
) -> Result<(ProductAvailability, Vec<Event>), AdminError> {
    if !store.products.contains_key(&product) {
        return Err(no_product(product));
    }
    if !is_stock_tracked(store, product) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "product {product} is not stock-tracked{}; change the stock of its components",
                if store.bundles.contains_key(&product) {
                    " (a bundle)"
                } else {
                    ""
                }
            ),
        ));
    }
    let warehouse = existing_warehouse(store, change.warehouse_id)?;
    let stock = store.stock.entry((product, warehouse)).or_default();
    let on_hand = match (change.on_hand, change.delta) {
        (Some(on_hand), None) => on_hand,
        (None, Some(delta)) => stock.on_hand() + delta,
        _ => {
            return Err((
                StatusCode::BAD_REQUEST,
                "give exactly one of `onHand` and `delta`".into(),
            ));
        }
    };
    stock.in_stock = on_hand + stock.allocated;
    Ok((
        availability_of(store, product),
        vec![Event::new(
            "product.modified.on-hand-modified",
            vec![product],
        )],
    ))
}
