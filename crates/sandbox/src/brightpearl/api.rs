//! `/public-api/{account}/...`: URI length, account, authentication, throttling, routing and the
//! `{response}` / `{errors}` envelopes.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use brightpearl_models::common::AuthErrorResponse;
use brightpearl_models::{contact, integration, order, product, warehouse};
use models_runtime::OperationInfo;
use serde_json::json;

use super::reply::{Ctx, Reply};
use super::{contacts, credits, goods_in, multi, orders, products, warehouse as wh, webhooks};
use crate::state::SharedState;
use crate::util::header_lookup;

/// The prefix of every API operation's path template.
const API_PREFIX: &str = "/public-api/{account}";

/// Every operation of the Brightpearl API specs, as generated (the OAuth spec is served by
/// `oauth.rs`).
fn operations() -> impl Iterator<Item = &'static OperationInfo> {
    [
        product::operations::ALL,
        warehouse::operations::ALL,
        contact::operations::ALL,
        order::operations::ALL,
        integration::operations::ALL,
    ]
    .into_iter()
    .flatten()
}

/// One matched operation, with its path parameters by name (percent-decoded).
#[derive(Debug, Clone)]
pub struct Route {
    pub op: &'static OperationInfo,
    params: Vec<(&'static str, String)>,
}

impl Route {
    /// A path parameter; empty when absent.
    fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// A path parameter that may be left out (`OPTIONS .../product` covers every product).
    fn optional(&self, name: &str) -> Option<&str> {
        Some(self.param(name)).filter(|v| !v.is_empty())
    }
}

/// The parameters of `template` (after [`API_PREFIX`]) matched against path segments `segs`,
/// if it matches: same length, equal literals, a non-empty value for each `{name}`.
fn template_match(template: &'static str, segs: &[String]) -> Option<Vec<(&'static str, String)>> {
    let parts: Vec<&'static str> = template.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() != segs.len() {
        return None;
    }
    let mut params = Vec::new();
    for (part, seg) in parts.into_iter().zip(segs) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !seg.is_empty() => params.push((name, seg.clone())),
            None if part == seg => {}
            _ => return None,
        }
    }
    Some(params)
}

/// The operation served at path segments `segs` (after `/public-api/{account}`) for `method`,
/// found by the generated method and path template. An `OPTIONS` may leave out its trailing
/// ID set (the spec: "without an ID set it covers all").
fn matched(segs: &[String], method: &str) -> Option<Route> {
    operations()
        .filter(|op| op.method == method)
        .find_map(|op| {
            let template = op.path.strip_prefix(API_PREFIX)?;
            let params = template_match(template, segs).or_else(|| {
                let every = template
                    .strip_suffix("/{idSet}")
                    .filter(|_| method == "OPTIONS")?;
                template_match(every, segs)
            })?;
            Some(Route { op, params })
        })
}

/// Matches a method and the path segments after `/public-api/{account}`: 405 when another
/// method is served at the path, else 404.
pub fn route(method: &Method, segs: &[String]) -> Result<Route, Reply> {
    let m = method.as_str();
    if let Some(found) = matched(segs, m) {
        return Ok(found);
    }
    if ["GET", "POST", "PUT", "DELETE", "OPTIONS"]
        .iter()
        .any(|other| matched(segs, other).is_some())
    {
        return Err(Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "CMNC-405",
            format!("{m} is not supported on this resource"),
        ));
    }
    Err(Reply::not_found(format!(
        "No resource at /{}",
        segs.join("/")
    )))
}

/// The authentication headers every operation declares, read through its generated `*Headers`.
#[derive(Debug, Clone)]
pub struct AuthHeaders {
    pub app_ref: String,
    pub dev_ref: Option<String>,
    pub staff_token: Option<String>,
}

/// Parses the headers of operation `id` with its generated `*Headers::from_lookup` (an
/// unrouted request's with those of `ListWarehouses`: every operation declares the same).
fn parse_headers<'a>(
    id: Option<&str>,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<AuthHeaders, models_runtime::ParamError> {
    macro_rules! by_id {
        ($($id:literal => $ty:ty,)*) => {
            match id {
                $(Some($id) => <$ty>::from_lookup(lookup).map(|h| AuthHeaders {
                    app_ref: h.brightpearl_app_ref,
                    dev_ref: h.brightpearl_dev_ref,
                    staff_token: h.brightpearl_staff_token,
                }),)*
                _ => parse_headers(Some("ListWarehouses"), lookup),
            }
        };
    }
    by_id! {
        "GetProducts" => product::GetProductsHeaders,
        "GetProductUris" => product::GetProductUrisHeaders,
        "SearchProducts" => product::SearchProductsHeaders,
        "ListPriceLists" => product::ListPriceListsHeaders,
        "GetPriceLists" => product::GetPriceListsHeaders,
        "GetProductPrices" => product::GetProductPricesHeaders,
        "GetProductPricesForPriceLists" => product::GetProductPricesForPriceListsHeaders,
        "GetProductAvailability" => warehouse::GetProductAvailabilityHeaders,
        "GetBundleAvailability" => warehouse::GetBundleAvailabilityHeaders,
        "GetGoodsOutNotesForOrders" => warehouse::GetGoodsOutNotesForOrdersHeaders,
        "GetGoodsOutNotes" => warehouse::GetGoodsOutNotesHeaders,
        "SearchGoodsOutNotes" => warehouse::SearchGoodsOutNotesHeaders,
        "GetGoodsInNotesForOrders" => warehouse::GetGoodsInNotesForOrdersHeaders,
        "CreateGoodsInNote" => warehouse::CreateGoodsInNoteHeaders,
        "ListWarehouses" => warehouse::ListWarehousesHeaders,
        "ListShippingMethods" => warehouse::ListShippingMethodsHeaders,
        "SearchContacts" => contact::SearchContactsHeaders,
        "GetContacts" => contact::GetContactsHeaders,
        "CreateContact" => contact::CreateContactHeaders,
        "CreatePostalAddress" => contact::CreatePostalAddressHeaders,
        "CreateSalesOrder" => order::CreateSalesOrderHeaders,
        "GetSalesOrders" => order::GetSalesOrdersHeaders,
        "CreateSalesCredit" => order::CreateSalesCreditHeaders,
        "GetSalesCredits" => order::GetSalesCreditsHeaders,
        "GetOrders" => order::GetOrdersHeaders,
        "GetOrderUris" => order::GetOrderUrisHeaders,
        "SearchOrders" => order::SearchOrdersHeaders,
        "SearchSalesOrders" => order::SearchSalesOrdersHeaders,
        "UpdateOrderStatus" => order::UpdateOrderStatusHeaders,
        "ListOrderStatuses" => order::ListOrderStatusesHeaders,
        "ListOrderShippingStatuses" => order::ListOrderShippingStatusesHeaders,
        "ListWebhooks" => integration::ListWebhooksHeaders,
        "CreateWebhook" => integration::CreateWebhookHeaders,
        "GetWebhooks" => integration::GetWebhooksHeaders,
        "UpdateWebhook" => integration::UpdateWebhookHeaders,
        "DeleteWebhook" => integration::DeleteWebhookHeaders,
        "SimulateWebhook" => integration::SimulateWebhookHeaders,
        "SendMultiMessage" => integration::SendMultiMessageHeaders,
    }
}

/// What serves one operation.
type Handler = fn(&mut Ctx<'_>, &Route) -> Reply;

/// The handler of the operation `id`; `None` for an operation the sandbox does not serve (a
/// test makes sure every operation of the specs is served).
fn handler(id: &str) -> Option<Handler> {
    let handler: Handler = match id {
        "GetProducts" => |ctx, r| products::get_products(ctx, r.param("idSet")),
        "GetProductUris" => |ctx, r| products::product_uris(ctx, r.optional("idSet")),
        "SearchProducts" => |ctx, _| products::search_products(ctx),
        "ListPriceLists" => |ctx, _| products::price_lists(ctx, None),
        "GetPriceLists" => |ctx, r| products::price_lists(ctx, Some(r.param("idSet"))),
        "GetProductPrices" => |ctx, r| products::product_prices(ctx, r.param("idSet"), None),
        "GetProductPricesForPriceLists" => |ctx, r| {
            products::product_prices(ctx, r.param("idSet"), Some(r.param("priceListIdSet")))
        },
        "GetProductAvailability" => |ctx, r| wh::availability(ctx, r.param("idSet")),
        "GetBundleAvailability" => |ctx, r| wh::bundle_availability(ctx, r.param("idSet")),
        "GetGoodsOutNotesForOrders" => {
            |ctx, r| wh::goods_out_notes(ctx, r.param("orderIdSet"), None)
        }
        "GetGoodsOutNotes" => |ctx, r| {
            wh::goods_out_notes(
                ctx,
                r.param("orderIdSet"),
                Some(r.param("goodsOutNoteIdSet")),
            )
        },
        "SearchGoodsOutNotes" => |ctx, _| wh::search_goods_out_notes(ctx),
        "GetGoodsInNotesForOrders" => |ctx, r| goods_in::goods_in_notes(ctx, r.param("orderIdSet")),
        "CreateGoodsInNote" => |ctx, r| goods_in::create_goods_in_note(ctx, r.param("orderIdSet")),
        "ListWarehouses" => |ctx, _| wh::warehouses(ctx),
        "ListShippingMethods" => |ctx, _| wh::shipping_methods(ctx),
        "SearchContacts" => |ctx, _| contacts::search(ctx),
        "GetContacts" => |ctx, r| contacts::get(ctx, r.param("idSet")),
        "CreateContact" => |ctx, _| contacts::create(ctx),
        "CreatePostalAddress" => |ctx, _| contacts::create_postal_address(ctx),
        "CreateSalesOrder" => |ctx, _| orders::create_sales_order(ctx),
        "GetSalesOrders" => |ctx, r| orders::get_sales_orders(ctx, r.param("idSet")),
        "CreateSalesCredit" => |ctx, _| credits::create_sales_credit(ctx),
        "GetSalesCredits" => |ctx, r| credits::get_sales_credits(ctx, r.param("idSet")),
        "GetOrders" => |ctx, r| orders::get_orders(ctx, r.param("idSet")),
        "GetOrderUris" => |ctx, r| orders::order_uris(ctx, r.optional("idSet")),
        "SearchOrders" => |ctx, _| orders::search_orders(ctx),
        "SearchSalesOrders" => |ctx, _| orders::search_sales_orders(ctx),
        "UpdateOrderStatus" => |ctx, r| orders::update_status(ctx, r.param("orderId")),
        "ListOrderStatuses" => |_, _| orders::order_statuses(),
        "ListOrderShippingStatuses" => |_, _| orders::shipping_statuses(),
        "ListWebhooks" => |ctx, _| webhooks::list(ctx, None),
        "CreateWebhook" => |ctx, _| webhooks::create(ctx),
        "GetWebhooks" => |ctx, r| webhooks::list(ctx, Some(r.param("idSet"))),
        "UpdateWebhook" => |ctx, r| webhooks::update(ctx, r.param("webhookId")),
        "DeleteWebhook" => |ctx, r| webhooks::delete(ctx, r.param("webhookId")),
        "SimulateWebhook" => |ctx, r| webhooks::simulate(ctx, r.param("webhookId")),
        "SendMultiMessage" => |ctx, _| multi::send(ctx, run_nested),
        _ => return None,
    };
    Some(handler)
}

/// Runs one matched operation (an operation without a handler is 404, as Brightpearl answers
/// a path it does not know).
pub fn dispatch(ctx: &mut Ctx<'_>, route: &Route) -> Reply {
    match handler(route.op.id) {
        Some(handler) => handler(ctx, route),
        None => Reply::not_found(format!("{} is not served by the sandbox", route.op.id)),
    }
}

/// One message of a multi-message, by its path after the account: routed and run as a request
/// of its own. Handed to [`multi::send`], so `multi` need not import this module.
fn run_nested(ctx: &mut Ctx<'_>, method: &Method, path: &str) -> Reply {
    match route(method, &segments(path)) {
        Ok(route) => dispatch(ctx, &route),
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
    let id = routed.as_ref().ok().map(|route| route.op.id);
    let auth = match parse_headers(id, header_lookup(&headers)) {
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
            let reply = dispatch(&mut ctx, &route);
            webhooks::fire(&state, std::mem::take(&mut ctx.events));
            reply
        }
    };
    finish(reply, Some((remaining, next_ms)), instance)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routing is the specs': every generated operation has a handler, and its method with
    /// its path template (parameters filled in) routes to it, so an operation the sandbox does
    /// not serve, or serves at another path, fails here.
    #[test]
    fn every_operation_of_the_specs_is_routed_to_its_handler() {
        let mut served = 0;
        for op in operations() {
            assert!(
                handler(op.id).is_some(),
                "{} ({} {}) is not served",
                op.id,
                op.method,
                op.path
            );
            let template = op.path.strip_prefix(API_PREFIX).expect(op.path);
            let path: Vec<&str> = template
                .split('/')
                .map(|part| if part.starts_with('{') { "1" } else { part })
                .collect();
            let method = Method::from_bytes(op.method.as_bytes()).unwrap();
            match route(&method, &segments(&path.join("/"))) {
                Ok(route) => assert_eq!(route.op.id, op.id, "{} {}", op.method, op.path),
                Err(reply) => panic!("{} {}: {}", op.method, op.path, reply.status),
            }
            served += 1;
        }
        assert_eq!(
            served, 38,
            "the operations of product, warehouse, contact, order and integration"
        );
    }

    #[test]
    fn unknown_paths_are_404_other_methods_405_and_parameters_are_decoded() {
        let refused =
            |method: Method, path: &str| route(&method, &segments(path)).err().map(|r| r.status);
        assert_eq!(
            refused(Method::GET, "/product-service/nothing"),
            Some(StatusCode::NOT_FOUND)
        );
        assert_eq!(
            refused(Method::GET, "/product-service/product"),
            Some(StatusCode::METHOD_NOT_ALLOWED),
            "OPTIONS only"
        );
        assert_eq!(
            refused(Method::DELETE, "/product-service/product/1"),
            Some(StatusCode::METHOD_NOT_ALLOWED)
        );
        let every = route(&Method::OPTIONS, &segments("/order-service/order")).unwrap();
        assert_eq!(
            (every.op.id, every.optional("idSet")),
            ("GetOrderUris", None)
        );
        let orders = route(&Method::GET, &segments("/order-service/order/1-3%2C7")).unwrap();
        assert_eq!(
            (orders.op.id, orders.param("idSet")),
            ("GetOrders", "1-3,7")
        );
        let notes = route(
            &Method::GET,
            &segments("/warehouse-service/order/*/goods-note/goods-out/5"),
        )
        .unwrap();
        assert_eq!(
            (notes.param("orderIdSet"), notes.param("goodsOutNoteIdSet")),
            ("*", "5")
        );
    }
}
