//! order-service: sales-order POST and GET (flat), order GET (nested), order OPTIONS,
//! order-search, sales-order-search, order status PUT, status lists.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use brightpearl_models::common::{CreatedIdResponse, Money, Quantity};
use brightpearl_models::order::{
    GetOrdersQuery, Order, OrderAssignment, OrderAssignmentCurrent, OrderCurrency, OrderDelivery,
    OrderListResponse, OrderParties, OrderParty, OrderRow, OrderRowValue, OrderShippingStatus,
    OrderShippingStatusListResponse, OrderStatus, OrderStatusListResponse, OrderStatusRef,
    OrderStatusUpdate, OrderTotalValue, OrderTypeCode, SalesCredit, SalesOrder,
    SalesOrderCurrencyRead, SalesOrderListResponse, SalesOrderRequest, SalesOrderRow,
    SalesOrderTotal, SearchOrdersQuery, SearchSalesOrdersQuery, ShippingStatusCode,
    UpdateOrderStatusPath,
};
use models_runtime::Decimal;
use serde_json::{Value, json};

use super::config::{BrightpearlConfig, DuplicateExternalRef};
use super::idset;
use super::products::uris_reply;
use super::reply::{Ctx, Reply};
use super::search::{Col, Kind, Search, bad_query, col, col_ref};
use super::store::{Store, ts};

/// Sales order statuses of the simulated account.
pub const ORDER_STATUSES: &[(i64, &str)] = &[
    (1, "Draft / Quote"),
    (2, "New web order"),
    (3, "Awaiting payment"),
    (4, "Ready to ship"),
    (5, "Invoiced"),
    (6, "Cancelled"),
];
/// Status of a new sales order when the POST sets none.
pub const DEFAULT_STATUS: i64 = 2;
/// Shipping statuses as observed: 1 NST, 2 SNS, 3 SPS, 4 ASS.
pub const SHIPPING_STATUSES: &[(i64, &str, &str)] = &[
    (1, "NST", "No stock tracked products on order"),
    (2, "SNS", "Stock not shipped"),
    (3, "SPS", "Stock part shipped"),
    (4, "ASS", "All stock shipped"),
];

fn status_name(id: i64) -> Option<&'static str> {
    ORDER_STATUSES
        .iter()
        .find(|(s, _)| *s == id)
        .map(|(_, n)| *n)
}

pub fn shipping_status_id(code: Option<&ShippingStatusCode>) -> Option<i64> {
    let code = code?.as_str();
    SHIPPING_STATUSES
        .iter()
        .find(|(_, c, _)| *c == code)
        .map(|(id, _, _)| *id)
}

fn scaled(mut value: Decimal, scale: u32) -> Decimal {
    value.rescale(scale);
    value
}

fn invalid(message: impl Into<String>) -> Reply {
    Reply::bad_request("ORDC-400", message)
}

/// Validates the whole order before anything is written: the POST is atomic (the sales-credit
/// POST, same shape, validates with it).
pub(super) fn validate(store: &Store, request: &SalesOrderRequest) -> Result<(), Reply> {
    if !store.contacts.contains_key(&request.customer.id) {
        return Err(invalid(format!(
            "customer.id: contact {} does not exist",
            request.customer.id
        )));
    }
    if let Some(billing) = request.billing.as_ref().and_then(|b| b.contact_id)
        && !store.contacts.contains_key(&billing)
    {
        return Err(invalid(format!(
            "billing.contactId: contact {billing} does not exist"
        )));
    }
    if let Some(warehouse) = request.warehouse_id
        && !store.warehouses.iter().any(|(id, _)| *id == warehouse)
    {
        return Err(invalid(format!(
            "warehouseId: warehouse {warehouse} does not exist"
        )));
    }
    if let Some(status) = request.status_id
        && status_name(status).is_none()
    {
        return Err(invalid(format!(
            "statusId: order status {status} does not exist"
        )));
    }
    if let Some(list) = request.price_list_id
        && !store.price_lists.iter().any(|l| l.id == list)
    {
        return Err(invalid(format!(
            "priceListId: price list {list} does not exist"
        )));
    }
    if request
        .price_mode_code
        .as_ref()
        .is_some_and(|m| m.is_unknown())
    {
        return Err(invalid("priceModeCode must be INC or EXC"));
    }
    for (i, row) in request.rows.iter().enumerate() {
        match (row.product_id, row.name.as_deref().map(str::trim)) {
            (None, None | Some("")) => {
                return Err(invalid(format!("rows[{i}]: give a productId or a name")));
            }
            (Some(product), _) => {
                let Some(found) = store.products.get(&product) else {
                    return Err(invalid(format!(
                        "rows[{i}].productId: product {product} does not exist"
                    )));
                };
                let tracked = found
                    .stock
                    .as_ref()
                    .and_then(|s| s.stock_tracked)
                    .unwrap_or(false);
                if tracked && !row.quantity.fract().is_zero() {
                    return Err(invalid(format!(
                        "rows[{i}].quantity must be a whole number for a stock-tracked product"
                    )));
                }
            }
            _ => {}
        }
        if row.quantity <= Decimal::ZERO {
            return Err(invalid(format!("rows[{i}].quantity must be positive")));
        }
        if row.tax_code.trim().is_empty() {
            return Err(invalid(format!("rows[{i}].taxCode is required")));
        }
        // "Max precision of 4dp" (Sales Order Row PUT).
        for (field, value) in [("net", row.net), ("tax", row.tax)] {
            if value.is_some_and(|v| v.normalize().scale() > 4) {
                return Err(invalid(format!(
                    "rows[{i}].{field} takes at most 4 decimals"
                )));
            }
        }
    }
    Ok(())
}

pub fn create_sales_order(ctx: &mut Ctx<'_>) -> Reply {
    let request: SalesOrderRequest = match ctx.json() {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let now = ctx.now();
    let config = &ctx.state.config.brightpearl;
    let mut store = ctx.state.brightpearl.lock();
    if let Err(reply) = validate(&store, &request) {
        return reply;
    }
    if let Some(external) = &request.external_ref {
        let existing = store
            .orders_by_external_ref
            .get(&(external.clone(), request.installed_integration_instance_id))
            .copied();
        match (existing, config.duplicate_external_ref) {
            (Some(id), DuplicateExternalRef::Reject) => {
                return invalid(format!(
                    "externalRef `{external}` is already used by order {id} of this integration instance"
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
    let (order, _) = build(&mut store, config, &request, id, now);
    if let Some(external) = &order.external_ref {
        store
            .orders_by_external_ref
            .entry((external.clone(), order.installed_integration_instance_id))
            .or_insert(id);
    }
    store.orders.insert(id, order);
    // The simulated warehouse (off by default) may ship it at once; its events follow the
    // order's own.
    let shipped = match &config.warehouse_ships {
        Some(ships) => super::warehouse::ship_new_order(&mut store, ships, id, now),
        None => Vec::new(),
    };
    drop(store);
    ctx.emit("sales-order.created", vec![id]);
    ctx.emit("order.modified", vec![id]);
    ctx.events.extend(shipped);
    Reply::raw(StatusCode::OK, CreatedIdResponse { response: id })
}

/// The stored flat order of a validated `request` with id `id` (row ids taken from the store),
/// and whether it has a stock-tracked row. Shared with the sales-credit POST (same shape).
pub(super) fn build(
    store: &mut Store,
    config: &BrightpearlConfig,
    request: &SalesOrderRequest,
    id: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> (SalesOrder, bool) {
    let mut tracked = false;
    let mut rows = Vec::new();
    let (mut net, mut tax) = (Decimal::ZERO, Decimal::ZERO);
    for row in &request.rows {
        store.ids.row += 1;
        let product = row.product_id.and_then(|p| store.products.get(&p));
        tracked |= product
            .and_then(|p| p.stock.as_ref())
            .and_then(|s| s.stock_tracked)
            .unwrap_or(false);
        let name = row.name.clone().or_else(|| {
            product.and_then(|p| p.sales_channels.as_ref()?.first()?.product_name.clone())
        });
        let sku = row
            .sku
            .clone()
            .or_else(|| product.and_then(|p| p.identity.as_ref()?.sku.clone()));
        let row_net = row.net.unwrap_or_default();
        let row_tax = row.tax.unwrap_or_default();
        net += row_net;
        tax += row_tax;
        rows.push(SalesOrderRow {
            id: store.ids.row,
            product_id: row.product_id,
            name,
            sku,
            quantity: Some(scaled(row.quantity, 4)),
            tax_code: Some(row.tax_code.clone()),
            net: Some(scaled(row_net, 4)),
            tax: Some(scaled(row_tax, 4)),
            nominal_code: row.nominal_code.clone().or_else(|| Some("4000".into())),
            external_ref: row.external_ref.clone(),
            discount_percentage: row.discount_percentage.map(|d| scaled(d.0, 2)),
        });
    }
    let currency = request.currency.clone().unwrap_or_default();
    let total = SalesOrderTotal {
        net: Some(scaled(net, 4)),
        tax: Some(scaled(tax, 4)),
        gross: Some(scaled(net + tax, 4)),
        base_net: Some(scaled(net, 4)),
        base_tax: Some(scaled(tax, 4)),
        base_gross: Some(scaled(net + tax, 4)),
    };
    let order = SalesOrder {
        id,
        version: Some(1),
        customer: Some(request.customer.clone()),
        billing: request.billing.clone(),
        ref_: request.ref_.clone(),
        external_ref: request.external_ref.clone(),
        placed_on: Some(request.placed_on.clone().unwrap_or_else(|| ts(now))),
        tax_date: Some(request.tax_date.clone().unwrap_or_else(|| ts(now))),
        created_on: Some(ts(now)),
        created_by: Some(4),
        updated_on: Some(ts(now)),
        installed_integration_instance_id: request.installed_integration_instance_id,
        warehouse_id: request
            .warehouse_id
            .or_else(|| store.warehouses.first().map(|(w, _)| *w)),
        status_id: Some(request.status_id.unwrap_or(DEFAULT_STATUS)),
        channel_id: request.channel_id,
        staff_owner_id: request.staff_owner_id,
        price_list_id: request.price_list_id,
        price_mode_code: request.price_mode_code.clone(),
        currency: Some(SalesOrderCurrencyRead {
            code: Some(
                currency
                    .code
                    .unwrap_or_else(|| config.currency_code.clone()),
            ),
            fixed_exchange_rate: Some(currency.fixed_exchange_rate.unwrap_or(false)),
            exchange_rate: Some(scaled(currency.exchange_rate.unwrap_or(Decimal::ONE), 6)),
        }),
        delivery: request.delivery.clone(),
        total: Some(total),
        is_canceled: Some(false),
        order_payment_status: Some("UNPAID".into()),
        allocation_status_code: Some(if tracked { "ANR" } else { "AAA" }.into()),
        shipping_status_code: Some(if tracked {
            ShippingStatusCode::Sns
        } else {
            ShippingStatusCode::Nst
        }),
        stock_status_code: Some(if tracked { "SON" } else { "NON" }.into()),
        rows: Some(rows),
    };
    (order, tracked)
}

pub fn get_sales_orders(ctx: &mut Ctx<'_>, ids: &str) -> Reply {
    let set = match idset::parse_path(ids, false, Some(ctx.config().max_ids_order)) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    let found: Vec<SalesOrder> = store
        .orders
        .values()
        .filter(|o| set.contains(o.id))
        .cloned()
        .collect();
    if found.is_empty() {
        return Reply::not_found(format!("No sales orders found in ID set {ids}"));
    }
    Reply::raw(StatusCode::OK, SalesOrderListResponse { response: found })
}

fn party_from_address(
    contact_id: Option<i64>,
    address: Option<&brightpearl_models::order::OrderAddress>,
) -> OrderParty {
    let a = address.cloned().unwrap_or_default();
    OrderParty {
        contact_id,
        address_full_name: a.address_full_name,
        company_name: a.company_name,
        address_line1: a.address_line1,
        address_line2: a.address_line2,
        address_line3: a.address_line3,
        address_line4: a.address_line4,
        postal_code: a.postal_code,
        country_iso_code: a.country_iso_code,
        telephone: a.telephone,
        mobile_telephone: a.mobile_telephone,
        fax: a.fax,
        email: a.email,
        ..Default::default()
    }
}

/// The nested order shape of `order/{idSet}`, built from the stored sales order.
fn nested(store: &Store, order: &SalesOrder, account_currency: &str, custom: bool) -> Order {
    let money = |value: Option<Decimal>, currency: &Option<String>| Money {
        currency_code: currency.clone(),
        value,
    };
    let currency_code = order.currency.as_ref().and_then(|c| c.code.clone());
    let customer_id = order.customer.as_ref().map(|c| c.id);
    let mut customer = party_from_address(
        customer_id,
        order.customer.as_ref().and_then(|c| c.address.as_ref()),
    );
    if let Some(contact) = customer_id.and_then(|id| store.contacts.get(&id)) {
        if customer.address_full_name.is_none() {
            let name = [contact.first_name.clone(), contact.last_name.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            customer.address_full_name = Some(name);
        }
        if customer.email.is_none() {
            customer.email = super::contacts::primary_email(contact);
        }
        if customer.address_line1.is_none()
            && let Some(address) = contact
                .post_address_ids
                .as_ref()
                .and_then(|p| p.def)
                .and_then(|id| store.addresses.get(&id))
        {
            customer.address_line1 = Some(address.address_line1.clone());
            customer.address_line3 = address.address_line3.clone();
            customer.postal_code = address.postal_code.clone();
            customer.country_iso_code = address.country_iso_code.clone();
        }
    }
    let rows: BTreeMap<String, OrderRow> = order
        .rows
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, row)| {
            (
                row.id.to_string(),
                OrderRow {
                    order_row_sequence: Some((i + 1).to_string()),
                    product_id: row.product_id,
                    product_name: row.name.clone(),
                    product_sku: row.sku.clone(),
                    quantity: Some(Quantity {
                        magnitude: row.quantity,
                    }),
                    discount_percentage: row.discount_percentage,
                    row_value: Some(OrderRowValue {
                        tax_code: row.tax_code.clone(),
                        row_net: Some(money(row.net, &currency_code)),
                        row_tax: Some(money(row.tax, &currency_code)),
                        ..Default::default()
                    }),
                    nominal_code: row.nominal_code.clone(),
                    ..Default::default()
                },
            )
        })
        .collect();
    let total = order.total.clone().unwrap_or_default();
    Order {
        id: order.id,
        parent_order_id: Some(0),
        order_type_code: Some(OrderTypeCode::So),
        reference: order.ref_.clone(),
        version: order.version,
        order_status: Some(OrderStatusRef {
            order_status_id: order.status_id,
            name: order.status_id.and_then(status_name).map(str::to_owned),
        }),
        order_payment_status: order.order_payment_status.clone(),
        stock_status_code: order.stock_status_code.clone(),
        allocation_status_code: order.allocation_status_code.clone(),
        shipping_status_code: order.shipping_status_code.clone(),
        placed_on: order.placed_on.clone(),
        created_on: order.created_on.clone(),
        updated_on: order.updated_on.clone(),
        created_by_id: order.created_by,
        price_list_id: order.price_list_id,
        price_mode_code: order.price_mode_code.clone(),
        delivery: order.delivery.as_ref().map(|d| OrderDelivery {
            delivery_date: d.date.clone(),
            shipping_method_id: d.shipping_method_id,
        }),
        currency: Some(OrderCurrency {
            accounting_currency_code: Some(account_currency.to_owned()),
            order_currency_code: currency_code.clone(),
            exchange_rate: order.currency.as_ref().and_then(|c| c.exchange_rate),
            fixed_exchange_rate: order.currency.as_ref().and_then(|c| c.fixed_exchange_rate),
        }),
        total_value: Some(OrderTotalValue {
            net: total.net,
            tax_amount: total.tax,
            base_net: total.base_net,
            base_tax_amount: total.base_tax,
            base_total: total.base_gross,
            total: total.gross,
        }),
        assignment: Some(OrderAssignment {
            current: Some(OrderAssignmentCurrent {
                channel_id: order.channel_id,
                staff_owner_contact_id: order.staff_owner_id,
                ..Default::default()
            }),
        }),
        parties: Some(OrderParties {
            customer: Some(customer),
            delivery: Some(party_from_address(
                None,
                order.delivery.as_ref().and_then(|d| d.address.as_ref()),
            )),
            billing: Some(party_from_address(
                order
                    .billing
                    .as_ref()
                    .and_then(|b| b.contact_id)
                    .or(customer_id),
                order.billing.as_ref().and_then(|b| b.address.as_ref()),
            )),
        }),
        order_rows: Some(rows),
        warehouse_id: order.warehouse_id,
        installed_integration_instance_id: order.installed_integration_instance_id,
        acknowledged: Some(json!(0)),
        historical_order: Some(false),
        custom_fields: custom.then(BTreeMap::new),
        ..Default::default()
    }
}

pub fn get_orders(ctx: &mut Ctx<'_>, ids: &str) -> Reply {
    let query: GetOrdersQuery = ctx.query().unwrap_or_default();
    let custom = query
        .include_optional
        .as_deref()
        .is_some_and(|o| o.split(',').any(|p| p.trim() == "customFields"));
    let set = match idset::parse_path(ids, false, Some(ctx.config().max_ids_order)) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let currency = ctx.config().currency_code.clone();
    let store = ctx.state.brightpearl.lock();
    // An id that matches nothing is `200 {"response": []}` on this resource, not 404 (observed).
    let found: Vec<Order> = store
        .orders
        .values()
        .filter(|o| set.contains(o.id))
        .map(|o| nested(&store, o, &currency, custom))
        .collect();
    Reply::raw(StatusCode::OK, OrderListResponse { response: found })
}

pub fn order_uris(ctx: &mut Ctx<'_>, ids: Option<&str>) -> Reply {
    let set = match idset::parse_optional_path(ids) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    uris_reply(
        "/order",
        store.orders.keys().copied(),
        &set,
        ctx.config().max_ids_order,
    )
}

fn references() -> BTreeMap<String, BTreeMap<String, Value>> {
    BTreeMap::from([
        (
            "orderStatusNames".to_owned(),
            ORDER_STATUSES
                .iter()
                .map(|(id, n)| (id.to_string(), Value::from(*n)))
                .collect(),
        ),
        (
            "orderTypeNames".to_owned(),
            BTreeMap::from([
                ("1".to_owned(), Value::from("SALES_ORDER")),
                ("3".to_owned(), Value::from("SALES_CREDIT")),
            ]),
        ),
        (
            "orderShippingStatusNames".to_owned(),
            SHIPPING_STATUSES
                .iter()
                .map(|(id, _, d)| (id.to_string(), Value::from(*d)))
                .collect(),
        ),
    ])
}

const ORDER_COLUMNS: &[Col] = &[
    col("orderId", Kind::IdSet),
    col_ref("orderTypeId", Kind::Integer, "orderTypeNames"),
    col("contactId", Kind::Integer),
    col_ref("orderStatusId", Kind::Integer, "orderStatusNames"),
    col_ref(
        "orderShippingStatusId",
        Kind::Integer,
        "orderShippingStatusNames",
    ),
    col("createdOn", Kind::Period),
    col("updatedOn", Kind::Period),
    col("customerRef", Kind::String),
    col("externalRef", Kind::String),
    col("installedIntegrationInstanceId", Kind::Integer),
    col("warehouseId", Kind::Integer),
    col("channelId", Kind::Integer),
];

fn order_row(o: &SalesOrder) -> Vec<serde_json::Value> {
    vec![
        json!(o.id),
        json!(1),
        json!(o.customer.as_ref().map(|c| c.id)),
        json!(o.status_id),
        json!(shipping_status_id(o.shipping_status_code.as_ref())),
        json!(o.created_on.as_ref().map(|t| t.as_str().to_owned())),
        json!(o.updated_on.as_ref().map(|t| t.as_str().to_owned())),
        json!(o.ref_),
        json!(o.external_ref),
        json!(o.installed_integration_instance_id),
        json!(o.warehouse_id),
        json!(o.channel_id),
    ]
}

/// Order type id of a sales credit in the order search (`orderTypeNames`).
const SALES_CREDIT_TYPE_ID: i64 = 3;

/// The order-search row of a credit, in the columns of `orders::ORDER_COLUMNS`.
fn credit_row(c: &SalesCredit) -> Vec<Value> {
    vec![
        json!(c.id),
        json!(SALES_CREDIT_TYPE_ID),
        json!(c.customer.as_ref().map(|c| c.id)),
        json!(c.status_id),
        json!(shipping_status_id(c.shipping_status_code.as_ref())),
        json!(c.created_on.as_ref().map(|t| t.as_str().to_owned())),
        json!(c.updated_on.as_ref().map(|t| t.as_str().to_owned())),
        json!(c.ref_),
        json!(c.external_ref),
        json!(c.installed_integration_instance_id),
        json!(c.warehouse_id),
        json!(c.channel_id),
    ]
}

pub fn search_orders(ctx: &mut Ctx<'_>) -> Reply {
    let query: SearchOrdersQuery = match ctx.query() {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    let rows = {
        let store = ctx.state.brightpearl.lock();
        // Credits are orders too (type 3): a refund's natural key is looked up here.
        let mut rows: Vec<Vec<Value>> = store.orders.values().map(order_row).collect();
        rows.extend(store.credits.values().map(credit_row));
        rows.sort_by_key(|r| r[0].as_i64());
        rows
    };
    let search = Search {
        cols: ORDER_COLUMNS,
        rows,
        filters: vec![
            ("orderId", query.order_id.clone()),
            ("orderTypeId", query.order_type_id.clone()),
            ("orderStatusId", query.order_status_id.clone()),
            (
                "orderShippingStatusId",
                query.order_shipping_status_id.clone(),
            ),
            ("externalRef", query.external_ref.clone()),
            (
                "installedIntegrationInstanceId",
                query.installed_integration_instance_id.clone(),
            ),
            ("customerRef", query.customer_ref.clone()),
            ("createdOn", query.created_on.clone()),
            ("updatedOn", query.updated_on.clone()),
        ],
        columns: query.columns.as_deref(),
        sort: query.sort.as_deref(),
        page_size: query.page_size,
        first_result: query.first_result,
        max_page_size: ctx.config().max_page_size,
        reference: references(),
        row_reference: BTreeMap::new(),
    };
    search.reply()
}

const SALES_ORDER_COLUMNS: &[Col] = &[
    col("salesOrderId", Kind::IdSet),
    col("customerId", Kind::Integer),
    col_ref("orderStatusId", Kind::Integer, "orderStatusNames"),
    col_ref(
        "orderShippingStatus",
        Kind::Integer,
        "orderShippingStatusNames",
    ),
    col("createdOn", Kind::Period),
    col("updatedOn", Kind::Period),
    col("customerRef", Kind::String),
    col("externalRef", Kind::String),
    col("installedIntegrationInstanceId", Kind::Integer),
    col("warehouseId", Kind::Integer),
];

pub fn search_sales_orders(ctx: &mut Ctx<'_>) -> Reply {
    let query: SearchSalesOrdersQuery = match ctx.query() {
        Ok(q) => q,
        Err(e) => return bad_query(e),
    };
    let rows = ctx
        .state
        .brightpearl
        .lock()
        .orders
        .values()
        .map(|o| {
            let row = order_row(o);
            // salesOrderId, customerId, orderStatusId, orderShippingStatus, createdOn, updatedOn,
            // customerRef, externalRef, installedIntegrationInstanceId, warehouseId
            [0, 2, 3, 4, 5, 6, 7, 8, 9, 10]
                .iter()
                .map(|i| row[*i].clone())
                .collect()
        })
        .collect();
    let search = Search {
        cols: SALES_ORDER_COLUMNS,
        rows,
        filters: vec![
            ("salesOrderId", query.sales_order_id.clone()),
            ("externalRef", query.external_ref.clone()),
            (
                "installedIntegrationInstanceId",
                query.installed_integration_instance_id.clone(),
            ),
            ("orderStatusId", query.order_status_id.clone()),
            ("updatedOn", query.updated_on.clone()),
        ],
        columns: query.columns.as_deref(),
        sort: query.sort.as_deref(),
        page_size: query.page_size,
        first_result: query.first_result,
        max_page_size: ctx.config().max_page_size,
        reference: references(),
        row_reference: BTreeMap::new(),
    };
    search.reply()
}

pub fn update_status(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    let Ok(order_id) = id.parse::<i64>() else {
        return Reply::not_found(format!("No order found with id {id}"));
    };
    let path = UpdateOrderStatusPath {
        account: ctx.account.to_owned(),
        order_id,
    };
    let request: OrderStatusUpdate = match ctx.json() {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    if status_name(request.order_status_id).is_none() {
        return invalid(format!(
            "orderStatusId: order status {} does not exist",
            request.order_status_id
        ));
    }
    let now = ctx.now();
    {
        let mut store = ctx.state.brightpearl.lock();
        let Some(order) = store.orders.get_mut(&path.order_id) else {
            return Reply::not_found(format!("No order found with id {}", path.order_id));
        };
        order.status_id = Some(request.order_status_id);
        order.is_canceled = Some(request.order_status_id == 6);
        order.updated_on = Some(ts(now));
        order.version = Some(order.version.unwrap_or(0) + 1);
    }
    ctx.emit("order.modified.order-status", vec![path.order_id]);
    Reply::raw(StatusCode::OK, json!({}))
}

pub fn order_statuses() -> Reply {
    let statuses = ORDER_STATUSES
        .iter()
        .enumerate()
        .map(|(i, (id, name))| OrderStatus {
            status_id: *id,
            name: Some((*name).to_owned()),
            order_type_code: Some(OrderTypeCode::So),
            sort_order: Some(i as i64 + 1),
            disabled: Some(false),
            visible: Some(true),
            ..Default::default()
        })
        .collect();
    Reply::raw(
        StatusCode::OK,
        OrderStatusListResponse { response: statuses },
    )
}

pub fn shipping_statuses() -> Reply {
    let statuses = SHIPPING_STATUSES
        .iter()
        .map(|(id, code, description)| OrderShippingStatus {
            id: Some(*id),
            code: Some(ShippingStatusCode::from(*code)),
            description: Some((*description).to_owned()),
        })
        .collect();
    Reply::raw(
        StatusCode::OK,
        OrderShippingStatusListResponse { response: statuses },
    )
}
