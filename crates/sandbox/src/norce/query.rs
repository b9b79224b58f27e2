//! Query 3.0: `GET /commerce/query/3.0/Orders/Orders` with an OData subset and server paging.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use models_runtime::{Decimal, Timestamp};
use norce_models::query::{self, OrdersPage, QueryOrdersHeaders, QueryOrdersQuery};
use serde_json::{Value, json};

use super::model::{self, OrderRec};
use super::odata::{self, Kind, Val};
use super::{app_lookup, start_call};
use crate::SharedState;

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
        | "shipToCustomerInfoId" => Kind::Int,
        "orderDate" | "created" | "updated" => Kind::Date,
        "orderNo" | "source" | "buyerCompanyCode" | "buyerCustomerCode" | "deliveryMode"
        | "paymentTerms" | "deliveryAttention" | "deliveryMark" | "invoiceMark" => Kind::Str,
        "isPartlyDelivered" => Kind::Bool,
        _ => return None,
    })
}

/// Every top-level property `$select` may name (the filterable ones plus `freightCostExVat`).
fn selectable(prop: &str) -> bool {
    kind_of(prop).is_some() || prop == "freightCostExVat"
}

const EXPANDABLE: &[&str] = &["items", "addresses", "deliveryNotes"];

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
        "isPartlyDelivered" => Val::Bool(order.status == "PartlyDelivered"),
        _ => Val::Null,
    }
}

pub(super) fn to_query_order(order: &OrderRec, tenant_id: i32, expand: &[&str]) -> query::Order {
    let ts = Timestamp::from_datetime;
    let vat = model::vat_multiplier() - Decimal::ONE;
    let customer_id = i32::try_from(order.customer.id).ok();
    let items = expand.contains(&"items").then(|| {
        order
            .lines
            .iter()
            .map(|l| {
                let unit_ex = model::ex_vat(l.unit_price_inc_vat);
                query::OrderItem {
                    id: Some(order.id * 100 + i64::from(l.line_no)),
                    order_id: Some(order.id),
                    line_number: Some(l.line_no),
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
                    created: Some(ts(order.created)),
                    updated: Some(ts(order.updated)),
                    ..query::OrderItem::default()
                }
            })
            .collect()
    });
    let addresses = expand.contains(&"addresses").then(|| {
        let c = &order.customer;
        [(1, "delivery"), (2, "invoice")]
            .into_iter()
            .map(|(type_id, _)| query::OrderAddress {
                id: Some(order.id * 10 + type_id),
                type_id: Some(type_id as i32),
                name: Some(format!("{} {}", c.first_name, c.last_name)),
                line1: Some(c.street.clone()),
                zip_code: Some(c.zip.clone()),
                city: Some(c.city.clone()),
                country_id: model::country(&c.country).map(|(_, id, _, _)| id),
                email_address: Some(c.email.clone()),
                phone_number: Some(c.phone.clone()),
                shipping_phone_number: Some(c.phone.clone()),
                created: Some(ts(order.created)),
                ..query::OrderAddress::default()
            })
            .collect()
    });
    let delivery_notes = expand.contains(&"deliveryNotes").then(|| {
        order
            .delivery_notes
            .iter()
            .map(|n| {
                let address = n.note.delivery_address.as_ref();
                query::DeliveryNote {
                    id: Some(n.id),
                    note_no: Some(n.note.note_no.clone()),
                    type_id: Some(1),
                    reference_order_id: Some(order.id),
                    status_id: n.note.status_id,
                    delivery_date: Some(n.note.delivery_date.clone()),
                    delivery_mode: n.note.delivery_mode.clone(),
                    delivery_name: n.note.delivery_name.clone(),
                    delivery_attention: n.note.delivery_attention.clone(),
                    delivery_line1: address.and_then(|a| a.line1.clone()),
                    delivery_line2: address.and_then(|a| a.line2.clone()),
                    delivery_zip_code: address.and_then(|a| a.zip_code.clone()),
                    delivery_city: address.and_then(|a| a.city.clone()),
                    buyer_customer_code: n.note.buyer_customer_code.clone(),
                    note_text: n.note.note_text.clone(),
                    created: Some(ts(n.created)),
                    items: Some(
                        n.note
                            .delivery_note_items
                            .iter()
                            .flatten()
                            .map(|i| query::DeliveryNoteItem {
                                row_number: i
                                    .row_number
                                    .and_then(|r| r.0.trunc().to_string().parse().ok()),
                                part_no: Some(i.item_no.clone()),
                                description: i.description.clone(),
                                qty_delivered: Some(i.qty),
                                comment: i.comment.clone(),
                            })
                            .collect(),
                    ),
                    packages: Some(
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
                            .collect(),
                    ),
                }
            })
            .collect()
    });
    query::Order {
        id: order.id,
        client_id: Some(tenant_id),
        application_id: Some(order.application_id),
        quotation_id: Some(order.quotation_id),
        order_no: Some(order.order_no.clone()),
        order_date: Some(ts(order.created)),
        status_id: Some(order.status_id()),
        order_type_id: Some(1),
        source: Some("WEB".into()),
        currency_id: Some(model::currency_id(&order.currency)),
        buyer_customer_id: customer_id,
        payer_customer_id: customer_id,
        delivery_mode: Some(order.delivery_method.clone()),
        payment_terms: Some(order.payment_method.clone()),
        is_partly_delivered: Some(order.status == "PartlyDelivered"),
        created: Some(ts(order.created)),
        updated: Some(ts(order.updated)),
        items,
        addresses,
        delivery_notes,
        ..query::Order::default()
    }
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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
    let mut expand: Vec<&str> = Vec::new();
    for part in q
        .expand
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        // Nested options (`items($select=...)`) are accepted and ignored.
        let name = part.split('(').next().unwrap_or(part).trim();
        match EXPANDABLE.iter().find(|e| **e == name) {
            Some(e) => expand.push(e),
            None => {
                return odata_error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "The query specified in the URI is not valid. Could not find a property named '{name}' on type '{ENTITY}'."
                    ),
                );
            }
        }
    }
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
                map.retain(|k, _| select.iter().any(|s| s == k) || expand.contains(&k.as_str()));
            }
        }
    }
    Json(body).into_response()
}
