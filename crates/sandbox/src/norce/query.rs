//! Query 3.0: `GET /commerce/query/3.0/Orders/Orders` with an OData subset and server paging.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use models_runtime::{Decimal, Timestamp};
use norce_models::query::{self, OrdersPage, QueryOrdersHeaders, QueryOrdersQuery};
use serde_json::{Value, json};

use super::call::{app_lookup, start_call};
use super::model::{self, OrderRec};
use super::odata::{self, Kind, Val};
use crate::state::SharedState;

const ENTITY: &str = "Orders.Order";
const PATH: &str = norce_models::query::operations::QUERY_ORDERS.path;

/// An OData error body: `{"error": {"code", "message"}}`.
fn odata_error(status: StatusCode, message: impl Into<String>) -> Response {
    let code = if status == StatusCode::BAD_REQUEST {
        "BadRequest"
    } else {
        "Error"
    };
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

/// Filterable and sortable properties of the Query order.
fn kind_of(prop: &str) -> Option<Kind> {
    Some(match prop {
        "id"
        | "clientId"
        | "applicationId"
        | "quotationId"
        | "statusId"
        | "orderTypeId"
        | "currencyId"
        | "buyerCompanyId"
        | "buyerCustomerId"
        | "payerCompanyId"
        | "payerCustomerId"
        | "buyerCustomerInfoId"
        | "payerCustomerInfoId"
        | "shipToCustomerInfoId"
        | "dropPointCustomerInfoId" => Kind::Int,
        "orderDate" | "created" | "updated" => Kind::Date,
        "orderNo" | "source" | "buyerCompanyCode" | "buyerCustomerCode" | "deliveryMode"
        | "paymentTerms" | "deliveryAttention" | "deliveryMark" | "invoiceMark" => Kind::Str,
        "isPartDelivery" => Kind::Bool,
        _ => return None,
    })
}

/// Every top-level property `$select` may name (the filterable ones plus `freightCost`).
fn selectable(prop: &str) -> bool {
    kind_of(prop).is_some() || prop == "freightCost"
}

/// The navigation properties of the Query 3.0 Order, as the spec names them.
const EXPANDABLE: &[&str] = &[
    "orderItem",
    "buyerCustomerInfo",
    "shipToCustomerInfo",
    "payerCustomerInfo",
    "deliveryNote",
];

/// The navigation properties of a DeliveryNote (nested `$expand`).
const NOTE_EXPANDABLE: &[&str] = &["deliveryNoteItem", "deliveryNotePackage"];

/// What an `$expand` asks for: the order's navigations and, under `deliveryNote(...)`, the
/// note's own.
#[derive(Debug, Default)]
pub(super) struct Expand {
    order: Vec<&'static str>,
    note: Vec<&'static str>,
}

impl Expand {
    fn has(&self, name: &str) -> bool {
        self.order.contains(&name)
    }

    fn note_has(&self, name: &str) -> bool {
        self.note.contains(&name)
    }
}

/// Splits at commas outside parentheses: `a,b($expand=c,d)` → `a`, `b($expand=c,d)`.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

fn no_property(name: &str, entity: &str) -> String {
    format!(
        "The query specified in the URI is not valid. Could not find a property named '{name}' on type '{entity}'."
    )
}

/// Reads `$expand`, refusing a name the entity does not have as Query does.
fn parse_expand(text: &str) -> Result<Expand, String> {
    let mut expand = Expand::default();
    for part in split_top_level(text) {
        let (name, options) = match part.split_once('(') {
            Some((name, rest)) => (name.trim(), rest.trim_end_matches(')')),
            None => (part, ""),
        };
        let known = EXPANDABLE
            .iter()
            .find(|e| **e == name)
            .ok_or_else(|| no_property(name, ENTITY))?;
        expand.order.push(known);
        // Nested options: `$expand=` is read (and checked); `$select` and others are ignored.
        for option in options.split(';') {
            let Some(nested) = option.trim().strip_prefix("$expand=") else {
                continue;
            };
            if *known != "deliveryNote" {
                return Err(no_property(nested, "Orders.Navigation"));
            }
            for inner in split_top_level(nested) {
                let inner = inner.split('(').next().unwrap_or(inner).trim();
                let found = NOTE_EXPANDABLE
                    .iter()
                    .find(|e| **e == inner)
                    .ok_or_else(|| no_property(inner, "Orders.DeliveryNote"))?;
                expand.note.push(found);
            }
        }
    }
    Ok(expand)
}

fn value_of(order: &OrderRec, tenant_id: i32, prop: &str) -> Val {
    match prop {
        "id" => Val::Int(order.id),
        "clientId" => Val::Int(i64::from(tenant_id)),
        "applicationId" => Val::Int(i64::from(order.application_id)),
        "quotationId" => Val::Int(i64::from(order.quotation_id)),
        "statusId" => Val::Int(i64::from(order.status_id())),
        "orderTypeId" => Val::Int(1),
        "currencyId" => Val::Int(i64::from(model::currency_id(&order.currency))),
        "buyerCustomerId" | "payerCustomerId" => Val::Int(order.customer.id),
        "orderDate" | "created" => Val::Date(order.created),
        "updated" => Val::Date(order.updated),
        "orderNo" => Val::Str(order.order_no.clone()),
        "source" => Val::Str("WEB".into()),
        "deliveryMode" => Val::Str(order.delivery_method.clone()),
        "paymentTerms" => Val::Str(order.payment_method.clone()),
        "isPartDelivery" => Val::Bool(order.status == "PartlyDelivered"),
        _ => Val::Null,
    }
}

pub(super) fn to_query_order(order: &OrderRec, tenant_id: i32, expand: &Expand) -> query::Order {
    let ts = Timestamp::from_datetime;
    let vat = model::vat_multiplier() - Decimal::ONE;
    let customer_id = i32::try_from(order.customer.id).ok();
    let items = expand.has("orderItem").then(|| {
        order
            .lines
            .iter()
            .map(|l| {
                let unit_ex = model::ex_vat(l.unit_price_inc_vat);
                query::OrderItem {
                    id: Some(order.id * 100 + i64::from(l.line_no)),
                    order_id: Some(order.id),
                    line_number: Some(Decimal::from(l.line_no).into()),
                    status_id: Some(order.status_id()),
                    part_no: Some(l.part_no.clone()),
                    product_name: Some(l.name.clone()),
                    qty_ordered: Some(Decimal::from(l.quantity).into()),
                    currency_id: Some(model::currency_id(&order.currency)),
                    vat_rate: Some(models_runtime::VatPercent::from_fraction(vat)),
                    price_sale: Some(unit_ex.into()),
                    line_amount: unit_ex
                        .checked_mul(Decimal::from(l.quantity))
                        .map(|a| a.round_dp(4).normalize().into()),
                    delivery_mode: Some(order.delivery_method.clone()),
                    is_part_delivery: Some(false),
                    created: Some(ts(order.created)),
                    updated: Some(ts(order.updated)),
                    ..query::OrderItem::default()
                }
            })
            .collect()
    });
    // Guest customer data lives in CustomerInfo rows; buyer, payer and ship-to share one here.
    let info_id = order.id * 10 + 1;
    let customer_info = || {
        let c = &order.customer;
        query::CustomerInfo {
            id: Some(info_id),
            first_name: Some(c.first_name.clone()),
            last_name: Some(c.last_name.clone()),
            email_address: Some(c.email.clone()),
            phone_number: Some(c.phone.clone()),
            cell_phone_number: Some(c.phone.clone()),
            shipping_phone_number: Some(c.phone.clone()),
            address_line1: Some(c.street.clone()),
            zip_code: Some(c.zip.clone()),
            city: Some(c.city.clone()),
            country_id: model::country(&c.country).map(|(_, id, _, _)| id),
            created: Some(ts(order.created)),
            ..query::CustomerInfo::default()
        }
    };
    let delivery_notes = expand.has("deliveryNote").then(|| {
        order
            .delivery_notes
            .iter()
            .map(|n| {
                let address = n.note.delivery_address.as_ref();
                query::DeliveryNote {
                    id: Some(n.id),
                    client_id: Some(tenant_id),
                    note_no: n.note.note_no.clone(),
                    type_id: Some(1),
                    reference_order_id: Some(order.id),
                    delivery_date: Some(n.note.delivery_date.clone()),
                    delivery_mode: n.note.delivery_mode.clone(),
                    delivery_name: n.note.delivery_name.clone(),
                    delivery_attention: n.note.delivery_attention.clone(),
                    delivery_care_of: address.and_then(|a| a.care_of.clone()),
                    delivery_address_line1: address.and_then(|a| a.line1.clone()),
                    delivery_address_line2: address.and_then(|a| a.line2.clone()),
                    delivery_zip_code: address.and_then(|a| a.zip_code.clone()),
                    delivery_city: address.and_then(|a| a.city.clone()),
                    delivery_region: address.and_then(|a| a.region.clone()),
                    note_text: n.note.note_text.clone(),
                    delivery_note_item: expand.note_has("deliveryNoteItem").then(|| {
                        n.note
                            .delivery_note_items
                            .iter()
                            .flatten()
                            .map(|i| query::DeliveryNoteItem {
                                delivery_note_id: Some(n.id),
                                line_number: i.row_number,
                                part_no: i.item_no.clone(),
                                product_name: i.description.clone(),
                                quantity: Some(i.qty),
                                note_text: i.comment.clone(),
                                ..query::DeliveryNoteItem::default()
                            })
                            .collect()
                    }),
                    delivery_note_package: expand.note_has("deliveryNotePackage").then(|| {
                        n.note
                            .delivery_note_packages
                            .iter()
                            .flatten()
                            .zip(&n.package_ids)
                            .map(|(p, id)| query::DeliveryNotePackage {
                                id: Some(*id),
                                parcel_number: Some(p.parcel_number.clone()),
                                status_id: p.status_id,
                            })
                            .collect()
                    }),
                    ..query::DeliveryNote::default()
                }
            })
            .collect()
    });
    query::Order {
        id: order.id,
        client_id: Some(tenant_id),
        application_id: Some(order.application_id),
        quotation_id: Some(order.quotation_id),
        order_no: order.order_no.clone(),
        order_date: Some(ts(order.created)),
        status_id: Some(order.status_id()),
        order_type_id: Some(1),
        source: Some("WEB".into()),
        currency_id: Some(model::currency_id(&order.currency)),
        buyer_customer_id: customer_id,
        payer_customer_id: customer_id,
        buyer_customer_info_id: Some(info_id),
        payer_customer_info_id: Some(info_id),
        ship_to_customer_info_id: Some(info_id),
        delivery_mode: Some(order.delivery_method.clone()),
        payment_terms: Some(order.payment_method.clone()),
        is_part_delivery: Some(order.status == "PartlyDelivered"),
        created: Some(ts(order.created)),
        updated: Some(ts(order.updated)),
        order_item: items,
        buyer_customer_info: expand.has("buyerCustomerInfo").then(customer_info),
        ship_to_customer_info: expand.has("shipToCustomerInfo").then(customer_info),
        payer_customer_info: expand.has("payerCustomerInfo").then(customer_info),
        delivery_note: delivery_notes,
        ..query::Order::default()
    }
}

/// Everything but RFC 3986 unreserved characters, which a query value keeps as they are.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

pub(super) async fn query_orders(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(r) = start_call(
        &state,
        &headers,
        |h| QueryOrdersHeaders::from_lookup(app_lookup(h)),
        |e| odata_error(StatusCode::BAD_REQUEST, e.to_string()),
    ) {
        return r;
    }
    let q: QueryOrdersQuery = match axum::extract::Query::try_from_uri(&uri) {
        Ok(axum::extract::Query(q)) => q,
        Err(e) => return odata_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if let Some(top) = q.top.filter(|t| *t < 0) {
        return odata_error(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid value '{top}' for $top query option found. The $top query option requires a non-negative integer value."
            ),
        );
    }
    if let Some(skip) = q.skip.filter(|s| *s < 0) {
        return odata_error(
            StatusCode::BAD_REQUEST,
            format!(
                "Invalid value '{skip}' for $skip query option found. The $skip query option requires a non-negative integer value."
            ),
        );
    }
    let filter = match q.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        None => None,
        Some(text) => match odata::parse_filter(text, ENTITY, &kind_of) {
            Ok(expr) => Some(expr),
            Err(message) => {
                return odata_error(
                    StatusCode::BAD_REQUEST,
                    format!("The query specified in the URI is not valid. {message}"),
                );
            }
        },
    };
    let orderby = match q
        .orderby
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        None => Vec::new(),
        Some(text) => match odata::parse_orderby(text, ENTITY, &kind_of) {
            Ok(keys) => keys,
            Err(message) => {
                return odata_error(
                    StatusCode::BAD_REQUEST,
                    format!("The query specified in the URI is not valid. {message}"),
                );
            }
        },
    };
    let expand = match q.expand.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        None => Expand::default(),
        Some(text) => match parse_expand(text) {
            Ok(expand) => expand,
            Err(message) => return odata_error(StatusCode::BAD_REQUEST, message),
        },
    };
    let mut select: Vec<String> = Vec::new();
    for part in q
        .select
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if part == "*" {
            select.clear();
            break;
        }
        if !selectable(part) && !EXPANDABLE.contains(&part) {
            return odata_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "The query specified in the URI is not valid. Could not find a property named '{part}' on type '{ENTITY}'."
                ),
            );
        }
        select.push(part.to_owned());
    }
    let tenant_id = state.norce.config().tenant_id;
    let page_size = state.norce.config().query_page_size.max(1);
    let (rows, count) = {
        let inner = state.norce.lock();
        let mut matching: Vec<&OrderRec> = inner
            .orders
            .values()
            .filter(|o| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.eval(&|p| value_of(o, tenant_id, p)))
            })
            .collect();
        matching.sort_by(|a, b| {
            for (prop, descending) in &orderby {
                let ord =
                    odata::order(&value_of(a, tenant_id, prop), &value_of(b, tenant_id, prop));
                let ord = if *descending { ord.reverse() } else { ord };
                if ord.is_ne() {
                    return ord;
                }
            }
            a.id.cmp(&b.id)
        });
        let count = matching.len();
        let skip = q.skip.unwrap_or(0) as usize;
        let wanted = q.top.map_or(usize::MAX, |t| t as usize);
        let rows: Vec<query::Order> = matching
            .into_iter()
            .skip(skip)
            .take(wanted.min(page_size))
            .map(|o| to_query_order(o, tenant_id, &expand))
            .collect();
        (rows, count)
    };
    let skip = q.skip.unwrap_or(0) as usize;
    let served = rows.len();
    let remaining_in_top = q
        .top
        .map_or(usize::MAX, |t| t as usize)
        .saturating_sub(served);
    let more = skip + served < count && remaining_in_top > 0 && served > 0;
    let next_link = more.then(|| {
        let mut params: Vec<(&str, String)> = Vec::new();
        for (name, value) in [
            ("$filter", &q.filter),
            ("$orderby", &q.orderby),
            ("$expand", &q.expand),
            ("$select", &q.select),
        ] {
            if let Some(v) = value {
                params.push((name, v.clone()));
            }
        }
        if let Some(c) = q.count {
            params.push(("$count", c.to_string()));
        }
        if q.top.is_some() {
            params.push(("$top", remaining_in_top.to_string()));
        }
        params.push(("$skip", (skip + served).to_string()));
        let query: Vec<String> = params
            .iter()
            .map(|(n, v)| format!("{n}={}", encode(v)))
            .collect();
        format!("{}{PATH}?{}", state.base_url, query.join("&"))
    });
    let page = OrdersPage {
        odata_context: Some(format!(
            "{}/commerce/query/3.0/Orders/$metadata#Orders",
            state.base_url
        )),
        odata_count: (q.count == Some(true)).then_some(count as i64),
        value: rows,
        odata_next_link: next_link,
    };
    let mut body = match serde_json::to_value(&page) {
        Ok(v) => v,
        Err(e) => return odata_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if !select.is_empty()
        && let Some(Value::Array(values)) = body.get_mut("value")
    {
        for value in values.iter_mut() {
            if let Value::Object(map) = value {
                map.retain(|k, _| select.iter().any(|s| s == k) || expand.has(k));
            }
        }
    }
    Json(body).into_response()
}
