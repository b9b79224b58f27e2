//! `/public-api/{account}/...`: URI length, account, authentication, throttling, routing and the
//! `{response}` / `{errors}` envelopes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use brightpearl_models::common::AuthErrorResponse;
use brightpearl_models::{contact, integration, order, product, warehouse};
use serde_json::json;

use super::reply::{Ctx, Reply};
use super::{contacts, multi, orders, products, warehouse as wh, webhooks};
use crate::SharedState;
use crate::util::header_lookup;

/// One matched operation, with its raw path parameters.
#[derive(Debug, Clone)]
pub enum Route {
    GetProducts(String),
    ProductUris(Option<String>),
    SearchProducts,
    ListPriceLists,
    GetPriceLists(String),
    GetProductPrices(String, Option<String>),
    Availability(String),
    BundleAvailability(String),
    GoodsOutNotes(String, Option<String>),
    SearchGoodsOutNotes,
    ListWarehouses,
    ListShippingMethods,
    SearchContacts,
    GetContacts(String),
    CreateContact,
    CreatePostalAddress,
    CreateSalesOrder,
    GetSalesOrders(String),
    GetOrders(String),
    OrderUris(Option<String>),
    SearchOrders,
    SearchSalesOrders,
    UpdateOrderStatus(String),
    ListOrderStatuses,
    ListOrderShippingStatuses,
    ListWebhooks,
    CreateWebhook,
    GetWebhooks(String),
    UpdateWebhook(String),
    DeleteWebhook(String),
    SimulateWebhook(String),
    MultiMessage,
}

/// Matches a method and the path segments after `/public-api/{account}`: 405 when another
/// method is served at the path, else 404.
pub fn route(method: &Method, segs: &[String]) -> Result<Route, Reply> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.as_str();
    if let Some(found) = matched(&s, m) {
        return Ok(found);
    }
    if ["GET", "POST", "PUT", "DELETE", "OPTIONS"]
        .iter()
        .any(|other| matched(&s, other).is_some())
    {
        return Err(Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "CMNC-405",
            format!("{m} is not supported on this resource"),
        ));
    }
    Err(Reply::not_found(format!("No resource at /{}", s.join("/"))))
}

/// The operation served at path segments `s` for method `m`, if any.
fn matched(s: &[&str], m: &str) -> Option<Route> {
    let found = match (s, m) {
        (["product-service", "product", ids], "GET") => Route::GetProducts(ids.to_string()),
        (["product-service", "product", ids], "OPTIONS") => {
            Route::ProductUris(Some(ids.to_string()))
        }
        (["product-service", "product"], "OPTIONS") => Route::ProductUris(None),
        (["product-service", "product-search"], "GET") => Route::SearchProducts,
        (["product-service", "price-list"], "GET") => Route::ListPriceLists,
        (["product-service", "price-list", ids], "GET") => Route::GetPriceLists(ids.to_string()),
        (["product-service", "product-price", ids], "GET") => {
            Route::GetProductPrices(ids.to_string(), None)
        }
        (["product-service", "product-price", ids, "price-list", pl], "GET") => {
            Route::GetProductPrices(ids.to_string(), Some(pl.to_string()))
        }
        (["warehouse-service", "product-availability", ids], "GET") => {
            Route::Availability(ids.to_string())
        }
        (["warehouse-service", "bundle-availability", ids], "GET") => {
            Route::BundleAvailability(ids.to_string())
        }
        (
            [
                "warehouse-service",
                "order",
                orders,
                "goods-note",
                "goods-out",
            ],
            "GET",
        ) => Route::GoodsOutNotes(orders.to_string(), None),
        (
            [
                "warehouse-service",
                "order",
                orders,
                "goods-note",
                "goods-out",
                gons,
            ],
            "GET",
        ) => Route::GoodsOutNotes(orders.to_string(), Some(gons.to_string())),
        (["warehouse-service", "goods-note", "goods-out-search"], "GET") => {
            Route::SearchGoodsOutNotes
        }
        (["warehouse-service", "warehouse"], "GET") => Route::ListWarehouses,
        (["warehouse-service", "shipping-method"], "GET") => Route::ListShippingMethods,
        (["contact-service", "contact-search"], "GET") => Route::SearchContacts,
        (["contact-service", "contact", ids], "GET") => Route::GetContacts(ids.to_string()),
        (["contact-service", "contact"], "POST") => Route::CreateContact,
        (["contact-service", "postal-address"], "POST") => Route::CreatePostalAddress,
        (["order-service", "sales-order"], "POST") => Route::CreateSalesOrder,
        (["order-service", "sales-order", ids], "GET") => Route::GetSalesOrders(ids.to_string()),
        (["order-service", "order", ids], "GET") => Route::GetOrders(ids.to_string()),
        (["order-service", "order", ids], "OPTIONS") => Route::OrderUris(Some(ids.to_string())),
        (["order-service", "order"], "OPTIONS") => Route::OrderUris(None),
        (["order-service", "order-search"], "GET") => Route::SearchOrders,
        (["order-service", "sales-order-search"], "GET") => Route::SearchSalesOrders,
        (["order-service", "order", id, "status"], "PUT") => {
            Route::UpdateOrderStatus(id.to_string())
        }
        (["order-service", "order-status"], "GET") => Route::ListOrderStatuses,
        (["order-service", "order-shipping-status"], "GET") => Route::ListOrderShippingStatuses,
        (["integration-service", "webhook"], "GET") => Route::ListWebhooks,
        (["integration-service", "webhook"], "POST") => Route::CreateWebhook,
        (["integration-service", "webhook", ids], "GET") => Route::GetWebhooks(ids.to_string()),
        (["integration-service", "webhook", id], "PUT") => Route::UpdateWebhook(id.to_string()),
        (["integration-service", "webhook", id], "DELETE") => Route::DeleteWebhook(id.to_string()),
        (["integration-service", "webhook", id, "simulate"], "POST") => {
            Route::SimulateWebhook(id.to_string())
        }
        (["multi-message"], "POST") => Route::MultiMessage,
        _ => return None,
    };
    Some(found)
}

/// The authentication headers every operation declares, read through its generated `*Headers`.
#[derive(Debug, Clone)]
pub struct AuthHeaders {
    pub app_ref: String,
    pub dev_ref: Option<String>,
    pub staff_token: Option<String>,
}

macro_rules! read_headers {
    ($lookup:expr, $ty:ty) => {
        <$ty>::from_lookup($lookup).map(|h| AuthHeaders {
            app_ref: h.brightpearl_app_ref,
            dev_ref: h.brightpearl_dev_ref,
            staff_token: h.brightpearl_staff_token,
        })
    };
}

/// Parses the operation's headers with its generated `*Headers::from_lookup`.
fn parse_headers<'a>(
    route: Option<&Route>,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<AuthHeaders, models_runtime::ParamError> {
    let Some(route) = route else {
        return read_headers!(lookup, warehouse::ListWarehousesHeaders);
    };
    match route {
        Route::GetProducts(_) => read_headers!(lookup, product::GetProductsHeaders),
        Route::ProductUris(_) => read_headers!(lookup, product::GetProductUrisHeaders),
        Route::SearchProducts => read_headers!(lookup, product::SearchProductsHeaders),
        Route::ListPriceLists => read_headers!(lookup, product::ListPriceListsHeaders),
        Route::GetPriceLists(_) => read_headers!(lookup, product::GetPriceListsHeaders),
        Route::GetProductPrices(_, None) => read_headers!(lookup, product::GetProductPricesHeaders),
        Route::GetProductPrices(_, Some(_)) => {
            read_headers!(lookup, product::GetProductPricesForPriceListsHeaders)
        }
        Route::Availability(_) => read_headers!(lookup, warehouse::GetProductAvailabilityHeaders),
        Route::BundleAvailability(_) => {
            read_headers!(lookup, warehouse::GetBundleAvailabilityHeaders)
        }
        Route::GoodsOutNotes(_, None) => {
            read_headers!(lookup, warehouse::GetGoodsOutNotesForOrdersHeaders)
        }
        Route::GoodsOutNotes(_, Some(_)) => {
            read_headers!(lookup, warehouse::GetGoodsOutNotesHeaders)
        }
        Route::SearchGoodsOutNotes => read_headers!(lookup, warehouse::SearchGoodsOutNotesHeaders),
        Route::ListWarehouses => read_headers!(lookup, warehouse::ListWarehousesHeaders),
        Route::ListShippingMethods => read_headers!(lookup, warehouse::ListShippingMethodsHeaders),
        Route::SearchContacts => read_headers!(lookup, contact::SearchContactsHeaders),
        Route::GetContacts(_) => read_headers!(lookup, contact::GetContactsHeaders),
        Route::CreateContact => read_headers!(lookup, contact::CreateContactHeaders),
        Route::CreatePostalAddress => read_headers!(lookup, contact::CreatePostalAddressHeaders),
        Route::CreateSalesOrder => read_headers!(lookup, order::CreateSalesOrderHeaders),
        Route::GetSalesOrders(_) => read_headers!(lookup, order::GetSalesOrdersHeaders),
        Route::GetOrders(_) => read_headers!(lookup, order::GetOrdersHeaders),
        Route::OrderUris(_) => read_headers!(lookup, order::GetOrderUrisHeaders),
        Route::SearchOrders => read_headers!(lookup, order::SearchOrdersHeaders),
        Route::SearchSalesOrders => read_headers!(lookup, order::SearchSalesOrdersHeaders),
        Route::UpdateOrderStatus(_) => read_headers!(lookup, order::UpdateOrderStatusHeaders),
        Route::ListOrderStatuses => read_headers!(lookup, order::ListOrderStatusesHeaders),
        Route::ListOrderShippingStatuses => {
            read_headers!(lookup, order::ListOrderShippingStatusesHeaders)
        }
        Route::ListWebhooks => read_headers!(lookup, integration::ListWebhooksHeaders),
        Route::CreateWebhook => read_headers!(lookup, integration::CreateWebhookHeaders),
        Route::GetWebhooks(_) => read_headers!(lookup, integration::GetWebhooksHeaders),
        Route::UpdateWebhook(_) => read_headers!(lookup, integration::UpdateWebhookHeaders),
        Route::DeleteWebhook(_) => read_headers!(lookup, integration::DeleteWebhookHeaders),
        Route::SimulateWebhook(_) => read_headers!(lookup, integration::SimulateWebhookHeaders),
        Route::MultiMessage => read_headers!(lookup, integration::SendMultiMessageHeaders),
    }
}

/// Runs one matched operation.
pub fn dispatch(ctx: &mut Ctx<'_>, route: Route) -> Reply {
    match route {
        Route::GetProducts(ids) => products::get_products(ctx, &ids),
        Route::ProductUris(ids) => products::product_uris(ctx, ids.as_deref()),
        Route::SearchProducts => products::search_products(ctx),
        Route::ListPriceLists => products::price_lists(ctx, None),
        Route::GetPriceLists(ids) => products::price_lists(ctx, Some(&ids)),
        Route::GetProductPrices(ids, lists) => {
            products::product_prices(ctx, &ids, lists.as_deref())
        }
        Route::Availability(ids) => wh::availability(ctx, &ids),
        Route::BundleAvailability(ids) => wh::bundle_availability(ctx, &ids),
        Route::GoodsOutNotes(orders, gons) => wh::goods_out_notes(ctx, &orders, gons.as_deref()),
        Route::SearchGoodsOutNotes => wh::search_goods_out_notes(ctx),
        Route::ListWarehouses => wh::warehouses(ctx),
        Route::ListShippingMethods => wh::shipping_methods(ctx),
        Route::SearchContacts => contacts::search(ctx),
        Route::GetContacts(ids) => contacts::get(ctx, &ids),
        Route::CreateContact => contacts::create(ctx),
        Route::CreatePostalAddress => contacts::create_postal_address(ctx),
        Route::CreateSalesOrder => orders::create_sales_order(ctx),
        Route::GetSalesOrders(ids) => orders::get_sales_orders(ctx, &ids),
        Route::GetOrders(ids) => orders::get_orders(ctx, &ids),
        Route::OrderUris(ids) => orders::order_uris(ctx, ids.as_deref()),
        Route::SearchOrders => orders::search_orders(ctx),
        Route::SearchSalesOrders => orders::search_sales_orders(ctx),
        Route::UpdateOrderStatus(id) => orders::update_status(ctx, &id),
        Route::ListOrderStatuses => orders::order_statuses(),
        Route::ListOrderShippingStatuses => orders::shipping_statuses(),
        Route::ListWebhooks => webhooks::list(ctx, None),
        Route::CreateWebhook => webhooks::create(ctx),
        Route::GetWebhooks(ids) => webhooks::list(ctx, Some(&ids)),
        Route::UpdateWebhook(id) => webhooks::update(ctx, &id),
        Route::DeleteWebhook(id) => webhooks::delete(ctx, &id),
        Route::SimulateWebhook(id) => webhooks::simulate(ctx, &id),
        Route::MultiMessage => multi::send(ctx, run_nested),
    }
}

/// One message of a multi-message, by its path after the account: routed and run as a request
/// of its own. Handed to [`multi::send`], so `multi` need not import this module.
fn run_nested(ctx: &mut Ctx<'_>, method: &Method, path: &str) -> Reply {
    match route(method, &segments(path)) {
        Ok(route) => dispatch(ctx, route),
        Err(reply) => reply,
    }
}

/// Splits and percent-decodes the path after the account.
pub fn segments(rest: &str) -> Vec<String> {
    let mut segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    if segs.last().is_some_and(String::is_empty) {
        segs.pop();
    }
    segs
}

/// One path segment as the platform reads it (`%2C` is `,`); a malformed escape stays as it is.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// A 401 with the string body Brightpearl sends (and no `WWW-Authenticate`).
fn unauthorized(message: &str) -> Reply {
    Reply::raw(
        StatusCode::UNAUTHORIZED,
        AuthErrorResponse {
            response: Some(message.to_owned()),
        },
    )
}

/// The throttle pool of a request: account plus developer (OAuth) or the account (private apps).
type Pool = (String, String);

/// Checks the credentials; returns the throttle pool and the installation instance id.
fn authenticate(
    state: &SharedState,
    account: &str,
    headers: &HeaderMap,
    auth: &AuthHeaders,
) -> Result<(Pool, Option<i64>), Reply> {
    let config = &state.config.brightpearl;
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    if let Some(token) = bearer {
        let now = state.clock.now();
        let found = state.brightpearl.lock().access.get(&token).cloned();
        let Some(grant) = found else {
            return Err(unauthorized("Invalid instance token"));
        };
        if grant.account != account {
            return Err(unauthorized("Invalid instance token"));
        }
        if now >= grant.expires_at {
            return Err(unauthorized("Authorization token expired"));
        }
        if auth.app_ref != config.app_ref {
            return Err(unauthorized("Invalid brightpearl-app-ref for this token"));
        }
        let Some(dev_ref) = auth.dev_ref.as_deref() else {
            return Err(unauthorized(
                "Missing brightpearl-dev-ref header: required with an OAuth token",
            ));
        };
        if dev_ref != config.dev_ref {
            return Err(unauthorized("Invalid brightpearl-dev-ref"));
        }
        return Ok((
            (account.to_owned(), dev_ref.to_owned()),
            Some(grant.instance_id),
        ));
    }
    if let Some(staff) = auth.staff_token.as_deref() {
        if staff != config.staff_token || auth.app_ref != config.app_ref {
            return Err(unauthorized("Invalid staff token or app reference"));
        }
        return Ok(((account.to_owned(), String::new()), None));
    }
    Err(unauthorized(
        "Not authenticated: send Authorization: Bearer <token> or brightpearl-staff-token",
    ))
}

fn finish(reply: Reply, throttle: Option<(usize, u64)>, instance: Option<i64>) -> Response {
    let mut response = (reply.status, axum::Json(reply.body)).into_response();
    let headers = response.headers_mut();
    if let Some((remaining, next_ms)) = throttle {
        headers.insert(
            "brightpearl-requests-remaining",
            HeaderValue::from(remaining as u64),
        );
        headers.insert(
            "brightpearl-next-throttle-period",
            HeaderValue::from(next_ms),
        );
    }
    if let Some(instance) = instance {
        headers.insert(
            "brightpearl-installed-integration-instance-id",
            HeaderValue::from(instance),
        );
    }
    response
}

/// Every `/public-api/{account}/...` request.
pub async fn entry(
    State(state): State<SharedState>,
    Path((account, rest)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = &state.config.brightpearl;
    let uri_length = uri
        .path_and_query()
        .map_or(uri.path().len(), |pq| pq.as_str().len());
    if uri_length > config.max_uri_length {
        let mut response = (StatusCode::URI_TOO_LONG, "414 Request-URI Too Long").into_response();
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("text/plain"));
        return response;
    }
    let segs = segments(&rest);
    let routed = route(&method, &segs);
    let auth = match parse_headers(routed.as_ref().ok(), header_lookup(&headers)) {
        Ok(auth) => auth,
        Err(e) => return finish(unauthorized(&e.to_string()), None, None),
    };
    if account != config.account {
        return finish(unauthorized("Invalid instance token"), None, None);
    }
    let (pool, instance) = match authenticate(&state, &account, &headers, &auth) {
        Ok(found) => found,
        Err(reply) => return finish(reply, None, None),
    };
    let now = state.clock.now();
    let limit = config.requests_per_window;
    let window = chrono::Duration::seconds(config.throttle_window_secs as i64);
    let throttle = state.brightpearl.lock().throttle(&pool, now, limit, window);
    let (remaining, next_ms) = match throttle {
        Ok(counts) => counts,
        Err(next_ms) => {
            let reply = Reply::raw(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"response": "You have sent too many requests. Please wait before sending another request"}),
            );
            return finish(reply, Some((0, next_ms)), instance);
        }
    };
    let reply = match routed {
        Err(reply) => reply,
        Ok(route) => {
            let mut ctx = Ctx {
                state: &state,
                account: &account,
                uri: &uri,
                body: &body,
                events: Vec::new(),
                nested: false,
            };
            let reply = dispatch(&mut ctx, route);
            webhooks::fire(&state, std::mem::take(&mut ctx.events));
            reply
        }
    };
    finish(reply, Some((remaining, next_ms)), instance)
}
