//! warehouse-service: goods-in notes on sales credits (returned stock put back into a
//! warehouse), the POST and the GET by order.
//!
//! The sandbox takes goods-in notes only on sales credits (the refund side of relay; purchase
//! orders are not simulated): each movement names a row of the credit (`purchaseOrderRowId`, as
//! public integrations send it) and its product, and at most the row's quantity is received
//! over all notes. The stock goes up in the warehouse at once (`in_stock`), and
//! `goods-in-note.created` and `product.modified.on-hand-modified` are raised.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use brightpearl_models::common::CreatedIdResponse;
use brightpearl_models::warehouse::{GoodsInNote, GoodsInNoteMapResponse, GoodsInNoteRequest};

use super::idset;
use super::reply::{Ctx, Reply};
use super::store::ts;

/// Staff contact id the simulator acts as (as for goods-out notes).
const STAFF_ID: i64 = 4;

fn invalid(message: impl Into<String>) -> Reply {
    Reply::bad_request("WHSC-400", message)
}

/// `POST /warehouse-service/order/{id}/goods-note/goods-in`.
pub fn create_goods_in_note(ctx: &mut Ctx<'_>, order: &str) -> Reply {
    let request: GoodsInNoteRequest = match ctx.json() {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let Ok(order_id) = order.trim().parse::<i64>() else {
        return invalid(format!("`{order}` is not one order id"));
    };
    let now = ctx.now();
    let mut store = ctx.state.brightpearl.lock();
    let Some(credit) = store.credits.get(&order_id) else {
        return invalid(format!(
            "order {order_id} is not a sales credit of this account (the sandbox receives goods only against sales credits)"
        ));
    };
    if !store
        .warehouses
        .iter()
        .any(|(id, _)| *id == request.warehouse_id)
    {
        return invalid(format!(
            "warehouseId: warehouse {} does not exist",
            request.warehouse_id
        ));
    }
    if request.goods_moved.is_empty() {
        return invalid("goodsMoved: at least one product is required");
    }
    if let Some(reference) = request.user_batch_reference.as_deref()
        && let Some((id, _)) = store
            .goods_in_notes
            .iter()
            .find(|(_, n)| n.user_batch_reference.as_deref() == Some(reference))
    {
        return invalid(format!(
            "userBatchReference `{reference}` is already used by goods-in note {id}"
        ));
    }
    // Quantities received so far per credit row, over this note's movements too.
    let mut received: BTreeMap<i64, i64> = BTreeMap::new();
    for note in store
        .goods_in_notes
        .values()
        .filter(|n| n.order_id == Some(order_id))
    {
        for moved in note.goods_moved.iter().flatten() {
            if let Some(row) = moved.purchase_order_row_id {
                *received.entry(row).or_default() += moved.quantity;
            }
        }
    }
    let rows = credit.rows.clone().unwrap_or_default();
    for moved in &request.goods_moved {
        let Some(row_id) = moved.purchase_order_row_id else {
            return invalid("goodsMoved[].purchaseOrderRowId: the credit row is required");
        };
        let Some(row) = rows.iter().find(|r| r.id == row_id) else {
            return invalid(format!(
                "goodsMoved[].purchaseOrderRowId: row {row_id} is not a row of order {order_id}"
            ));
        };
        if row.product_id != Some(moved.product_id) {
            return invalid(format!(
                "goodsMoved[].productId: row {row_id} is not of product {}",
                moved.product_id
            ));
        }
        let tracked = store
            .products
            .get(&moved.product_id)
            .and_then(|p| p.stock.as_ref())
            .and_then(|s| s.stock_tracked)
            .unwrap_or(false);
        if !tracked {
            return invalid(format!(
                "goodsMoved[].productId: product {} is not stock-tracked",
                moved.product_id
            ));
        }
        if moved.quantity <= 0 {
            return invalid("goodsMoved[].quantity must be positive");
        }
        if moved.destination_location_id.is_none_or(|l| l <= 0) {
            return invalid("goodsMoved[].destinationLocationId is required");
        }
        let ordered = row
            .quantity
            .and_then(|q| i64::try_from(q.trunc()).ok())
            .unwrap_or(0);
        let total = received.entry(row_id).or_default();
        *total += moved.quantity;
        if *total > ordered {
            return invalid(format!(
                "goodsMoved: row {row_id} would receive {} of {ordered}",
                *total
            ));
        }
    }
    store.ids.goods_in += 1;
    let id = store.ids.goods_in;
    let warehouse = request.warehouse_id;
    let mut products = Vec::new();
    for moved in &request.goods_moved {
        store
            .stock
            .entry((moved.product_id, warehouse))
            .or_default()
            .in_stock += moved.quantity;
        products.push(moved.product_id);
    }
    store.goods_in_notes.insert(
        id,
        GoodsInNote {
            goods_note_id: Some(id),
            order_id: Some(order_id),
            warehouse_id: Some(warehouse),
            transfer: Some(request.transfer.unwrap_or(false)),
            goods_note_status: Some("CLOSED".to_owned()),
            user_batch_reference: request.user_batch_reference.clone(),
            received_on: Some(request.received_on.clone().unwrap_or_else(|| ts(now))),
            created_by: Some(STAFF_ID),
            goods_moved: Some(request.goods_moved.clone()),
        },
    );
    drop(store);
    products.sort_unstable();
    products.dedup();
    ctx.emit("goods-in-note.created", vec![id]);
    ctx.emit("product.modified.on-hand-modified", products);
    Reply::raw(StatusCode::OK, CreatedIdResponse { response: id })
}

/// `GET /warehouse-service/order/{idSet}/goods-note/goods-in`: the notes of those orders, a
/// map by note id; 404 when there is none.
pub fn goods_in_notes(ctx: &mut Ctx<'_>, orders: &str) -> Reply {
    // "You cannot request all goods-in notes for all orders": no `*` here.
    let set = match idset::parse_path(orders, false, Some(200)) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    let found: BTreeMap<String, GoodsInNote> = store
        .goods_in_notes
        .iter()
        .filter(|(_, n)| set.contains(n.order_id.unwrap_or(0)))
        .map(|(id, n)| (id.to_string(), n.clone()))
        .collect();
    if found.is_empty() {
        return Reply::not_found("No goods-in notes found");
    }
    Reply::raw(StatusCode::OK, GoodsInNoteMapResponse { response: found })
}
