//! Services 1.1: `metadata/GetApplication`, `order/ListOrders3`, `order/GetOrder`,
//! `product/ListProducts2`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use models_runtime::{Decimal, DecimalNumber, ParamError};
use norce_models::services::{
    self, Application, ApplicationClient, Country, CountryList, Culture, CultureList, Currency,
    CurrencyList, CustomerData, GetApplicationHeaders, GetApplicationQuery, GetOrderHeaders,
    GetOrderQuery, ListOrders3Headers, ListOrders3Query, ListProducts2Headers, ListProducts2Query,
    OnHand, OrderAddress, OrderCompany, OrderCustomer, OrderDeliveryNote, OrderDeliveryNoteItem,
    OrderDeliveryNotePackage, OrderInfo, OrderPagedList, PricelistSeedList, ProductItem,
    ProductItemPagedList, Role, RoleList, SalesArea, SalesAreaList,
};
use serde::de::DeserializeOwned;

use super::call::{app_lookup, start_call};
use super::config::NorcePriceList;
use super::model::{self, OrderRec};
use super::reply::{bad_request, error};
use crate::state::SharedState;

/// `/Date(ms+0000)/`, as Services 1.1 writes dates.
pub fn wcf_date(at: DateTime<Utc>) -> String {
    format!("/Date({}+0000)/", at.timestamp_millis())
}

pub(super) fn parse_query<T: DeserializeOwned>(uri: &Uri) -> Result<T, Response> {
    axum::extract::Query::<T>::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| bad_request(e.body_text()))
}

/// The `format` parameter every Services query has, each with its own generated enum.
trait FormatParam {
    /// The value given, and whether it is not one the spec knows.
    fn format(&self) -> Option<(&str, bool)>;
}

macro_rules! format_param {
    ($($query:ty),*) => {$(
        impl FormatParam for $query {
            fn format(&self) -> Option<(&str, bool)> {
                self.format.as_ref().map(|f| (f.as_str(), f.is_unknown()))
            }
        }
    )*};
}

format_param!(
    GetApplicationQuery,
    ListOrders3Query,
    GetOrderQuery,
    ListProducts2Query
);

/// The preamble every Services handler shares: [`start_call`], then the query string and its
/// `format`; returns the parsed headers and query.
fn services_request<H, Q: DeserializeOwned + FormatParam>(
    state: &SharedState,
    headers: &HeaderMap,
    uri: &Uri,
    parse: impl FnOnce(&HeaderMap) -> Result<H, ParamError>,
) -> Result<(H, Q), Response> {
    let header = start_call(state, headers, parse, |e| bad_request(e.to_string()))?;
    let query: Q = parse_query(uri)?;
    if let Some((f, true)) = query.format() {
        return Err(bad_request(format!(
            "Query parameter `format`: `{f}` is not supported; use `json`."
        )));
    }
    Ok((header, query))
}

/// 1-based paging: `pageNo` only works together with `pageSize`; outside the range is empty.
pub(super) fn page<T>(
    items: Vec<T>,
    page_no: Option<i32>,
    page_size: Option<i32>,
) -> Result<Vec<T>, Response> {
    if let Some(no) = page_no
        && no < 1
    {
        return Err(bad_request(format!(
            "Query parameter `pageNo` must be 1 or more, got {no}."
        )));
    }
    let Some(size) = page_size else {
        return Ok(items);
    };
    if size < 1 {
        return Err(bad_request(format!(
            "Query parameter `pageSize` must be 1 or more, got {size}."
        )));
    }
    let size = size as usize;
    let skip = (page_no.unwrap_or(1) as usize - 1).saturating_mul(size);
    Ok(items.into_iter().skip(skip).take(size).collect())
}

fn application(state: &SharedState, id: i32) -> Application {
    let config = state.norce.config();
    let key = format!("{:08x}-0000-4000-8000-{:012x}", id, config.tenant_id);
    let sek = Currency {
        id: Some(1),
        name: Some("Swedish krona".into()),
        code: Some("SEK".into()),
        prefix: None,
        suffix: Some(" kr".into()),
    };
    let sweden = SalesArea {
        id: Some(1),
        name: Some("Sweden".into()),
        currency_id: Some(1),
        vat_code_id: Some(1),
    };
    let countries: Vec<Country> = model::COUNTRIES
        .iter()
        .map(|(code, id, name, _)| Country {
            id: Some(*id),
            name: Some((*name).into()),
            code: Some((*code).into()),
        })
        .collect();
    let buyer = Role {
        id: Some(13),
        name: Some("Buyer".into()),
        description: Some("Allowed to buy on the application".into()),
    };
    let cultures = vec![
        Culture {
            code: Some("sv-SE".into()),
            name: Some("Swedish (Sweden)".into()),
        },
        Culture {
            code: Some("en-GB".into()),
            name: Some("English (United Kingdom)".into()),
        },
    ];
    Application {
        id,
        // "Will be the same as Id if none exists": the sandbox's application has no parent.
        parent_id: Some(id),
        key: Some(key),
        name: Some("Sandbox Playground SE".into()),
        url: Some(state.base_url.clone()),
        sender_email_address: Some("no-reply@example.com".into()),
        client: Some(ApplicationClient {
            id: Some(config.tenant_id),
            key: Some(format!("00000000-0000-4000-8000-{:012x}", config.tenant_id)),
            name: Some("Sandbox".into()),
        }),
        cultures: Some(CultureList {
            default: cultures.first().cloned(),
            list: Some(cultures),
        }),
        currencies: Some(CurrencyList {
            default: Some(sek.clone()),
            list: Some(vec![sek]),
        }),
        pricelists: Some(PricelistSeedList {
            ids: Some(config.price_lists.iter().map(|l| l.id).collect()),
            default: config.price_lists.first().map(|l| l.id),
        }),
        sales_areas: Some(SalesAreaList {
            default: Some(sweden.clone()),
            list: Some(vec![sweden]),
        }),
        roles: Some(RoleList {
            default: Some(buyer.clone()),
            list: Some(vec![buyer]),
        }),
        authorizations: Some(Vec::new()),
        countries: Some(CountryList {
            default: countries.first().cloned(),
            list: Some(countries),
        }),
    }
}

pub(super) async fn get_application(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let (header, query): (_, GetApplicationQuery) =
        match services_request(&state, &headers, &uri, |h| {
            GetApplicationHeaders::from_lookup(app_lookup(h))
        }) {
            Ok(r) => r,
            Err(r) => return r,
        };
    let id = query.application_id.unwrap_or(header.application_id);
    let known = state.norce.lock().application_id;
    if id != known {
        return error(
            StatusCode::NOT_FOUND,
            format!("Application {id} does not exist for this client."),
        );
    }
    Json(application(&state, id)).into_response()
}

fn customer_data(order: &OrderRec) -> CustomerData {
    let c = &order.customer;
    let country = model::country(&c.country);
    CustomerData {
        // The dataset's customers are private persons: an empty company, as Norce's example
        // always carries the object.
        company: Some(OrderCompany::default()),
        customer: Some(OrderCustomer {
            id: i32::try_from(c.id).ok(),
            no: None,
            first_name: Some(c.first_name.clone()),
            last_name: Some(c.last_name.clone()),
            ssn: None,
            email: Some(c.email.clone()),
            phone: Some(c.phone.clone()),
            cell_phone: Some(c.phone.clone()),
        }),
        address: Some(OrderAddress {
            line1: Some(c.street.clone()),
            city: Some(c.city.clone()),
            zip_code: Some(c.zip.clone()),
            country: country.map(|(_, _, name, _)| name.to_owned()),
            country_code: country.map(|(_, _, _, alpha3)| alpha3.to_owned()),
            shipping_phone_number: Some(c.phone.clone()),
            ..OrderAddress::default()
        }),
        // A buyer's role is not a drop point: the code is empty (the pickup point, if any, is
        // the order's DropPoint).
        drop_point_code: Some(String::new()),
    }
}

pub(super) fn list_item(order: &OrderRec) -> services::OrderListItem {
    let full = full_order(order);
    services::OrderListItem {
        id: full.id,
        quotation_id: full.quotation_id,
        order_no: full.order_no,
        order_date: full.order_date,
        status: full.status,
        source: full.source,
        currency: full.currency,
        sell_to: full.sell_to,
        bill_to: full.bill_to,
        ship_to: full.ship_to,
        drop_point: full.drop_point,
        order_total_inc_vat: full.order_total_inc_vat,
        order_total_ex_vat: full.order_total_ex_vat,
        payment_method: full.payment_method,
        delivery_method: full.delivery_method,
        type_id: full.type_id,
        delivery_mark: full.delivery_mark,
    }
}

/// The product's image key (a GUID in Norce), derived from its id.
fn image_key(product_id: i64) -> String {
    format!("{product_id:08x}-0000-4000-9000-000000000001")
}

pub(super) fn full_order(order: &OrderRec) -> services::Order {
    let vat = model::vat_multiplier() - Decimal::ONE;
    let items = order
        .lines
        .iter()
        .map(|l| {
            let unit_ex = model::ex_vat(l.unit_price_inc_vat);
            services::OrderItem {
                row_number: Some(Decimal::from(l.line_no).into()),
                // No structure (bundle) lines in the sandbox: every line is top level.
                parent_row_number: Some(Decimal::ZERO.into()),
                part_no: Some(l.part_no.clone()),
                name: Some(l.name.clone()),
                qty_ordered: Some(Decimal::from(l.quantity).into()),
                unit_price: Some(unit_ex.into()),
                row_amount: unit_ex
                    .checked_mul(Decimal::from(l.quantity))
                    .map(|a| a.round_dp(4).normalize().into()),
                // No discounts: the unit price is the catalog (and standard, recommended) price.
                unit_discount: Some(Decimal::ZERO.into()),
                unit_price_inc_vat: Some(l.unit_price_inc_vat.into()),
                vat_rate: Some(models_runtime::VatMultiplier::from_fraction(vat)),
                price_recommended: Some(unit_ex.into()),
                price_catalog: Some(unit_ex.into()),
                price_standard: Some(unit_ex.into()),
                image_key: Some(image_key(l.product_id)),
                type_: Some(1),
                status: Some(order.status.clone()),
                info: Some(Vec::new()),
            }
        })
        .collect();
    let notes = order
        .delivery_notes
        .iter()
        .map(|n| OrderDeliveryNote {
            id: i32::try_from(n.id).ok(),
            note_no: Some(n.note.note_no.clone()),
            delivery_date: Some(wcf_date(n.note.delivery_date.to_utc())),
            delivery_mode: n.note.delivery_mode.clone(),
            note_text: n.note.note_text.clone(),
            status: n.note.status_id.map(|s| format!("Status {s}")),
            items: Some(
                n.note
                    .delivery_note_items
                    .iter()
                    .flatten()
                    .map(|i| {
                        let ordered = order
                            .lines
                            .iter()
                            .find(|l| l.part_no == i.item_no)
                            .map(|l| Decimal::from(l.quantity));
                        OrderDeliveryNoteItem {
                            row_number: i.row_number,
                            item_no: Some(i.item_no.clone()),
                            item_description: i.description.clone(),
                            qty_ordered: ordered.map(DecimalNumber::from),
                            qty_delivered: Some(i.qty),
                            qty_backordered: ordered
                                .and_then(|o| o.checked_sub(i.qty.0))
                                .map(|d| DecimalNumber::from(d.max(Decimal::ZERO))),
                            comment: i.comment.clone(),
                            ..OrderDeliveryNoteItem::default()
                        }
                    })
                    .collect(),
            ),
            packages: Some(
                n.note
                    .delivery_note_packages
                    .iter()
                    .flatten()
                    .zip(&n.package_ids)
                    .map(|(p, id)| OrderDeliveryNotePackage {
                        id: i32::try_from(*id).ok(),
                        parcel_number: Some(p.parcel_number.clone()),
                        status: model::parcel_status(p.status_id),
                    })
                    .collect(),
            ),
        })
        .collect();
    let mut info: Vec<OrderInfo> = order
        .infos
        .iter()
        .map(|(code, value)| OrderInfo {
            code: Some(code.clone()),
            value: Some(value.clone()),
            ..OrderInfo::default()
        })
        .collect();
    if let Some(erp) = &order.erp_order_no {
        info.insert(
            0,
            OrderInfo {
                code: Some("ErpOrderNo".into()),
                name: Some("ERP order number".into()),
                description: None,
                value: Some(erp.clone()),
            },
        );
    }
    let party = customer_data(order);
    services::Order {
        id: order.id.to_string(),
        quotation_id: Some(order.quotation_id),
        order_no: Some(order.order_no.clone()),
        order_date: Some(wcf_date(order.created)),
        status: Some(order.status.clone()),
        source: Some("WEB".into()),
        currency: Some(order.currency.clone()),
        sell_to: Some(party.clone()),
        bill_to: Some(party.clone()),
        ship_to: Some(party),
        // Always the object, as in Norce's example; without a pickup point it is empty.
        drop_point: Some(CustomerData {
            drop_point_code: order.pickup_point.clone(),
            ..CustomerData::default()
        }),
        order_total_inc_vat: Some(order.total_inc_vat().into()),
        order_total_ex_vat: Some(order.total_ex_vat().into()),
        payment_method: Some(order.payment_method.clone()),
        delivery_method: Some(order.delivery_method.clone()),
        type_id: Some(1),
        // Copied from the basket's OrderReference, which the sandbox's checkouts leave empty.
        delivery_mark: Some(String::new()),
        items: Some(items),
        delivery_notes: Some(notes),
        info: Some(info),
    }
}

/// An internal id sent as a string (Norce's spec types ListOrders3's `companyId` and
/// `customerId` as strings); blank is absent, anything but an integer is a 400.
fn parse_id(name: &str, value: Option<&str>) -> Result<Option<i64>, Response> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    value.parse::<i64>().map(Some).map_err(|_| {
        bad_request(format!(
            "Query parameter `{name}`: `{value}` is not an internal id."
        ))
    })
}

fn parse_seed(name: &str, seed: Option<&str>) -> Result<Option<Vec<i32>>, Response> {
    let Some(seed) = seed.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    seed.split(',')
        .map(|part| {
            part.trim().parse::<i32>().map_err(|_| {
                bad_request(format!(
                    "Query parameter `{name}`: `{part}` is not a comma-separated list of ids."
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

pub(super) async fn list_orders3(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query: ListOrders3Query = match services_request(&state, &headers, &uri, |h| {
        ListOrders3Headers::from_lookup(app_lookup(h))
    }) {
        Ok((_, q)) => q,
        Err(r) => return r,
    };
    let (company_id, customer_id) = match (
        parse_id("companyId", query.company_id.as_deref()),
        parse_id("customerId", query.customer_id.as_deref()),
    ) {
        (Ok(company), Ok(customer)) => (company, customer),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let division_code = query
        .division_code
        .as_deref()
        .filter(|d| !d.trim().is_empty());
    if company_id.is_none()
        && customer_id.is_none()
        && division_code.is_none()
        && query.from_date.is_none()
        && query.to_date.is_none()
    {
        return bad_request(
            "At least one of `companyId`, `customerId`, `divisionCode`, `fromDate` or `toDate` must be given.",
        );
    }
    let statuses = match parse_seed("statusSeed", query.status_seed.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let from = query.from_date.as_ref().map(|t| t.to_utc());
    let to = query.to_date.as_ref().map(|t| t.to_utc());
    let matching: Vec<services::OrderListItem> = {
        let inner = state.norce.lock();
        inner
            .orders
            .values()
            // The sandbox has no company (B2B) or division orders.
            .filter(|_| company_id.is_none() && division_code.is_none())
            .filter(|o| customer_id.is_none_or(|c| c == o.customer.id))
            .filter(|o| from.is_none_or(|f| o.created >= f))
            .filter(|o| to.is_none_or(|t| o.created <= t))
            .filter(|o| statuses.as_ref().is_none_or(|s| s.contains(&o.status_id())))
            .filter(|_| {
                query
                    .source
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case("WEB"))
            })
            .map(list_item)
            .collect()
    };
    let total = i32::try_from(matching.len()).unwrap_or(i32::MAX);
    match page(matching, query.page_no, query.page_size) {
        Ok(items) => Json(OrderPagedList {
            item_count: total,
            items: Some(items),
        })
        .into_response(),
        Err(r) => r,
    }
}

pub(super) async fn get_order(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query: GetOrderQuery = match services_request(&state, &headers, &uri, |h| {
        GetOrderHeaders::from_lookup(app_lookup(h))
    }) {
        Ok((_, q)) => q,
        Err(r) => return r,
    };
    let Ok(id) = query.id.trim().parse::<i64>() else {
        return bad_request(format!(
            "Query parameter `id`: `{}` is not an order id.",
            query.id
        ));
    };
    let order = state.norce.lock().orders.get(&id).map(full_order);
    match order {
        Some(order) => Json(order).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("Order {id} was not found.")),
    }
}

pub(super) async fn list_products2(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query: ListProducts2Query = match services_request(&state, &headers, &uri, |h| {
        ListProducts2Headers::from_lookup(app_lookup(h))
    }) {
        Ok((_, q)) => q,
        Err(r) => return r,
    };
    let statuses = match parse_seed("statusSeed", query.status_seed.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let price_list_ids = match parse_seed("pricelistSeed", query.pricelist_seed.as_deref()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (field, descending) = match query
        .sort
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => ("Name", false),
        Some(sort) => {
            let mut parts = sort.split_whitespace();
            let field = parts.next().unwrap_or("Name");
            let descending = match parts.next() {
                None => false,
                Some(d) if d.eq_ignore_ascii_case("asc") => false,
                Some(d) if d.eq_ignore_ascii_case("desc") => true,
                Some(d) => {
                    return bad_request(format!(
                        "Query parameter `sort`: `{d}` must be `Asc` or `Desc`."
                    ));
                }
            };
            match ["PopularityRank", "Name", "Price", "SortOrder"]
                .iter()
                .find(|f| f.eq_ignore_ascii_case(field))
            {
                Some(f) => (*f, descending),
                None => {
                    return bad_request(format!(
                        "Query parameter `sort`: `{field}` is not one of PopularityRank, Name, Price, SortOrder."
                    ));
                }
            }
        }
    };
    let search = query
        .search_string
        .as_deref()
        .map(str::to_lowercase)
        .filter(|s| !s.is_empty());
    let mut items: Vec<ProductItem> = {
        let inner = state.norce.lock();
        let lists: Vec<&NorcePriceList> = match &price_list_ids {
            Some(ids) => inner
                .price_lists
                .iter()
                .filter(|l| ids.contains(&l.id))
                .collect(),
            None => inner.price_lists.iter().take(1).collect(),
        };
        inner
            .products
            .iter()
            .enumerate()
            .filter(|_| statuses.as_ref().is_none_or(|s| s.contains(&1)))
            .filter(|(_, p)| {
                search.as_ref().is_none_or(|s| {
                    p.name.to_lowercase().contains(s) || p.sku.to_lowercase().contains(s)
                })
            })
            .map(|(rank, p)| {
                let price = lists.iter().find_map(|l| {
                    inner
                        .price_of(&p.sku, &l.code)
                        .and_then(|r| r.price_sale.map(|v| (l.id, v, r)))
                });
                let onhand = inner.onhand_of(&p.sku);
                ProductItem {
                    id: i32::try_from(p.id).unwrap_or(0),
                    name: Some(p.name.clone()),
                    unique_name: Some(p.name.to_lowercase().replace(' ', "-")),
                    part_no: Some(p.sku.clone()),
                    price: price.map(|(_, v, _)| v.into()),
                    price_inc_vat: price
                        .and_then(|(_, v, _)| v.checked_mul(model::vat_multiplier()))
                        .map(|v| v.round_dp(2).normalize().into()),
                    price_recommended: price
                        .and_then(|(_, _, r)| r.price_recommended.map(Into::into)),
                    price_catalog: price.and_then(|(_, _, r)| r.price_catalog.map(Into::into)),
                    price_list_id: price.map(|(id, _, _)| id),
                    vat_rate: Some(models_runtime::VatMultiplier(model::vat_multiplier())),
                    on_hand: Some(OnHand {
                        value: Some(onhand.into()),
                        is_active: Some(true),
                        ..OnHand::default()
                    }),
                    status_id: Some(1),
                    popularity_rank: Some(rank as i32 + 1),
                    sort_order: Some(rank as i32 + 1),
                    is_buyable: Some(onhand > Decimal::ZERO && price.is_some()),
                    ..ProductItem::default()
                }
            })
            .collect()
    };
    items.sort_by(|a, b| {
        let order = match field {
            "Name" => a.name.cmp(&b.name),
            "Price" => a.price.cmp(&b.price),
            _ => a.popularity_rank.cmp(&b.popularity_rank),
        };
        if descending { order.reverse() } else { order }
    });
    let total = i32::try_from(items.len()).unwrap_or(i32::MAX);
    match page(items, query.page_no, query.page_size) {
        Ok(items) => Json(ProductItemPagedList {
            item_count: total,
            items: Some(items),
        })
        .into_response(),
        Err(r) => r,
    }
}
