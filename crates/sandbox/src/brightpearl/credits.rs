//! order-service: the sales-credit POST and GET (flat), the refund side of a sales order.
//!
//! A credit is an order of type `SC` (order type id 3): it takes the next order id, shows in
//! the order search with `orderTypeId` 3, and is validated like a sales order plus its
//! `parentId`, which must name a sales order of the account.

use axum::http::StatusCode;
use brightpearl_models::common::CreatedIdResponse;
use brightpearl_models::order::{
    SalesCredit, SalesCreditListResponse, SalesCreditRequest, SalesOrderRequest,
};

use super::config::DuplicateExternalRef;
use super::idset;
use super::orders::{build, validate};
use super::reply::{Ctx, Reply};

fn invalid(message: impl Into<String>) -> Reply {
    Reply::bad_request("ORDC-400", message)
}

/// The credit body as the sales-order body it mirrors (same flat shape, documented so), so
/// one validation and one builder serve both POSTs.
fn as_order_request(request: &SalesCreditRequest) -> Result<SalesOrderRequest, Reply> {
    serde_json::to_value(request)
        .and_then(serde_json::from_value)
        .map_err(|e| Reply::bad_request("CMNU-003", format!("unreadable credit: {e}")))
}

pub fn create_sales_credit(ctx: &mut Ctx<'_>) -> Reply {
    let request: SalesCreditRequest = match ctx.json() {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let order_request = match as_order_request(&request) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let now = ctx.now();
    let config = &ctx.state.config.brightpearl;
    let mut store = ctx.state.brightpearl.lock();
    if let Err(reply) = validate(&store, &order_request) {
        return reply;
    }
    // Assumed from the accounting sales-credit POST's rules ("the order id must be in the
    // system, of type sales order"): a credit refunds an existing sale.
    if let Some(parent) = request.parent_id.as_deref() {
        let known = parent.trim().parse::<i64>().ok();
        if !known.is_some_and(|id| store.orders.contains_key(&id)) {
            return invalid(format!("parentId: sales order {parent} does not exist"));
        }
    }
    if request.rows.is_empty() {
        return invalid("rows: a sales credit needs at least one row");
    }
    if let Some(external) = &request.external_ref {
        let key = (external.clone(), request.installed_integration_instance_id);
        match (
            store.credits_by_external_ref.get(&key).copied(),
            config.duplicate_external_ref,
        ) {
            (Some(id), DuplicateExternalRef::Reject) => {
                return invalid(format!(
                    "externalRef `{external}` is already used by sales credit {id} of this integration instance"
                ));
            }
            (Some(id), DuplicateExternalRef::ReturnExisting) => {
                return Reply::raw(StatusCode::OK, CreatedIdResponse { response: id });
            }
            _ => {}
        }
    }
    store.ids.order += 1;
    let id = store.ids.order;
    let (order, _) = build(&mut store, config, &order_request, id, now);
    // The flat sales order as the flat credit (the credit adds `parentId`).
    let credit = serde_json::to_value(&order)
        .and_then(serde_json::from_value::<SalesCredit>)
        .map(|credit| SalesCredit {
            parent_id: request.parent_id.clone(),
            ..credit
        });
    let credit = match credit {
        Ok(credit) => credit,
        Err(e) => return Reply::bad_request("CMNU-003", format!("credit not stored: {e}")),
    };
    if let Some(external) = &credit.external_ref {
        store
            .credits_by_external_ref
            .entry((external.clone(), credit.installed_integration_instance_id))
            .or_insert(id);
    }
    store.credits.insert(id, credit);
    // No webhook: which events Brightpearl fires for a credit is not documented, and a
    // `sales-order.*` event would send the flows to read a sales order that is not one.
    Reply::raw(StatusCode::OK, CreatedIdResponse { response: id })
}

pub fn get_sales_credits(ctx: &mut Ctx<'_>, ids: &str) -> Reply {
    let set = match idset::parse_path(ids, false, Some(ctx.config().max_ids_order)) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    let found: Vec<SalesCredit> = store
        .credits
        .values()
        .filter(|c| set.contains(c.id))
        .cloned()
        .collect();
    // "2xx regardless of how many are returned: 207 if some were found, 200 otherwise".
    let some_missing = set.count().is_some_and(|n| (found.len() as u64) < n);
    let status = if !found.is_empty() && some_missing {
        StatusCode::MULTI_STATUS
    } else {
        StatusCode::OK
    };
    Reply::raw(status, SalesCreditListResponse { response: found })
}
