//! Black-box tests of the Brightpearl simulator over HTTP.

mod common;

use std::time::Duration;

use brightpearl_models::common::{ErrorEnvelope, GetUrisResponse, SearchEnvelope};
use brightpearl_models::integration::WebhookEvent;
use brightpearl_models::oauth::{TokenError, TokenErrorCode, TokenResponse};
use brightpearl_models::order::{OrderListResponse, SalesOrderListResponse, ShippingStatusCode};
use brightpearl_models::product::{
    PriceListListResponse, ProductListResponse, ProductPriceListResponse,
};
use brightpearl_models::warehouse::{
    BundleAvailabilityResponse, GoodsOutNoteMapResponse, ProductAvailabilityResponse,
};
use reqwest::{Method, StatusCode};
use sandbox::Sandbox;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const REDIRECT: &str = "https://connector.example.com/brightpearl/callback";

struct Bp {
    sandbox: Sandbox,
    http: reqwest::Client,
}

impl Bp {
    async fn start() -> Self {
        let sandbox = common::start().await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        Self { sandbox, http }
    }

    fn creds(&self) -> sandbox::brightpearl::BrightpearlCredentials {
        self.sandbox.credentials().brightpearl
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/public-api/{}{path}",
            self.sandbox.base_url(),
            self.creds().account
        )
    }

    /// A request with the private staff-app headers.
    fn staff(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let c = self.creds();
        self.http
            .request(method, self.url(path))
            .header("brightpearl-app-ref", c.app_ref)
            .header("brightpearl-staff-token", c.staff_token)
    }

    /// A request with an OAuth token.
    fn bearer(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        let c = self.creds();
        self.http
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("brightpearl-app-ref", c.app_ref)
            .header("brightpearl-dev-ref", c.dev_ref)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.staff(Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.staff(Method::POST, path).json(&body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.staff(Method::PUT, path).json(&body)).await
    }

    async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(
            self.http
                .post(format!(
                    "{}/_sandbox/brightpearl{path}",
                    self.sandbox.base_url()
                ))
                .json(&body),
        )
        .await
    }

    async fn admin_get(&self, path: &str) -> (StatusCode, Value) {
        send(self.http.get(format!(
            "{}/_sandbox/brightpearl{path}",
            self.sandbox.base_url()
        )))
        .await
    }

    /// Authorize, follow the redirect by hand, and return (code, state).
    async fn authorize(&self, state: &str) -> (String, String) {
        let c = self.creds();
        let response = self
            .http
            .get(format!("{}/authorize/{}", c.oauth_url, c.account))
            .query(&[
                ("response_type", "code"),
                ("client_id", c.client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("state", state),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT), "{location}");
        let url = reqwest::Url::parse(&location).unwrap();
        let get = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        (get("code"), get("state"))
    }

    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let c = self.creds();
        send(
            self.http
                .post(format!("{}/token/{}", c.oauth_url, c.account))
                .form(form),
        )
        .await
    }

    async fn exchange(&self, code: &str) -> (StatusCode, Value) {
        let c = self.creds();
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("redirect_uri", REDIRECT),
        ])
        .await
    }

    async fn oauth(&self) -> TokenResponse {
        let (code, _) = self.authorize("s").await;
        let (status, body) = self.exchange(&code).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }
}

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn error_code(body: &Value) -> String {
    let envelope: ErrorEnvelope = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not an error envelope: {body}: {e}"));
    envelope.errors[0].code.clone()
}

// ---------------------------------------------------------------- OAuth

#[tokio::test]
async fn authorize_redirects_with_code_and_state() {
    let bp = Bp::start().await;
    let (code, state) = bp.authorize("csrf-123").await;
    assert!(!code.is_empty());
    assert_eq!(state, "csrf-123");
    // A wrong client id gets no redirect.
    let c = bp.creds();
    let response = bp
        .http
        .get(format!("{}/authorize/{}", c.oauth_url, c.account))
        .query(&[
            ("response_type", "code"),
            ("client_id", "someone-else"),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A wrong response_type is redirected with an error.
    let response = bp
        .http
        .get(format!("{}/authorize/{}", c.oauth_url, c.account))
        .query(&[
            ("response_type", "token"),
            ("client_id", c.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("state", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error=unsupported_response_type")
    );
}

#[tokio::test]
async fn code_exchange_is_single_use_and_api_domain_points_at_the_sandbox() {
    let bp = Bp::start().await;
    let (code, _) = bp.authorize("s").await;
    let (status, body) = bp.exchange(&code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token: TokenResponse = serde_json::from_value(body).unwrap();
    assert_eq!(token.token_type.as_deref(), Some("Bearer"));
    assert_eq!(token.expires_in, Some(604_800));
    assert_eq!(token.installation_instance_id.as_deref(), Some("13"));
    let base = reqwest::Url::parse(&bp.sandbox.base_url()).unwrap();
    assert_eq!(
        token.api_domain.unwrap(),
        format!("{}:{}", base.host_str().unwrap(), base.port().unwrap())
    );
    assert!(token.refresh_token.is_some());
    // Tokens carry + / = like real ones: the form encoding must survive them.
    assert!(
        token.access_token.contains('+')
            || token.access_token.contains('/')
            || token.access_token.contains('=')
    );
    // The code is single use.
    let (status, body) = bp.exchange(&code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error: TokenError = serde_json::from_value(body).unwrap();
    assert_eq!(error.error, TokenErrorCode::InvalidGrant);
    // The token works on the API.
    let (status, _) = send(bp.bearer(
        Method::GET,
        "/warehouse-service/warehouse",
        &token.access_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn redirect_uri_must_match_and_client_must_be_known() {
    let bp = Bp::start().await;
    let c = bp.creds();
    let (code, _) = bp.authorize("s").await;
    let (status, body) = bp
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &c.client_id),
            ("redirect_uri", "https://elsewhere.example/cb"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "Redirect uri does not match that used to request auth token"
    );
    let (status, body) = bp
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", "nobody"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_used_one_is_invalid_grant() {
    let bp = Bp::start().await;
    let c = bp.creds();
    let first = bp.oauth().await;
    let old_refresh = first.refresh_token.clone().unwrap();
    let (status, body) = bp
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &old_refresh),
            ("client_id", &c.client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second: TokenResponse = serde_json::from_value(body).unwrap();
    assert_ne!(second.refresh_token.as_deref(), Some(old_refresh.as_str()));
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(second.expires_in, Some(537_227));
    let (status, body) = bp
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &old_refresh),
            ("client_id", &c.client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = send(bp.bearer(
        Method::GET,
        "/warehouse-service/warehouse",
        &second.access_token,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
}

// ---------------------------------------------------------------- authentication

#[tokio::test]
async fn staff_token_private_app_works_and_a_wrong_one_is_401() {
    let bp = Bp::start().await;
    let (status, body) = bp.get("/warehouse-service/warehouse").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response"].as_array().unwrap().len(), 2);
    let c = bp.creds();
    let (status, body) = send(
        bp.http
            .get(bp.url("/warehouse-service/warehouse"))
            .header("brightpearl-app-ref", c.app_ref)
            .header("brightpearl-staff-token", "nope"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["response"].is_string());
}

#[tokio::test]
async fn missing_app_ref_or_dev_ref_is_401() {
    let bp = Bp::start().await;
    let token = bp.oauth().await.access_token;
    let c = bp.creds();
    let (status, body) = send(
        bp.http
            .get(bp.url("/warehouse-service/warehouse"))
            .bearer_auth(&token)
            .header("brightpearl-dev-ref", &c.dev_ref),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["response"]
            .as_str()
            .unwrap()
            .contains("brightpearl-app-ref"),
        "{body}"
    );
    let (status, body) = send(
        bp.http
            .get(bp.url("/warehouse-service/warehouse"))
            .bearer_auth(&token)
            .header("brightpearl-app-ref", &c.app_ref),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["response"]
            .as_str()
            .unwrap()
            .contains("brightpearl-dev-ref"),
        "{body}"
    );
}

#[tokio::test]
async fn expired_token_is_401_with_a_string_body_and_no_www_authenticate() {
    let bp = Bp::start().await;
    let token = bp.oauth().await;
    bp.sandbox
        .state()
        .clock
        .advance(Duration::from_secs(token.expires_in.unwrap() as u64 + 1));
    let response = bp
        .bearer(
            Method::GET,
            "/warehouse-service/warehouse",
            &token.access_token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("www-authenticate").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"response": "Authorization token expired"}));
}

#[tokio::test]
async fn unknown_account_is_an_invalid_instance_token() {
    let bp = Bp::start().await;
    let c = bp.creds();
    let (status, body) = send(
        bp.http
            .get(format!(
                "{}/public-api/otheraccount/warehouse-service/warehouse",
                bp.sandbox.base_url()
            ))
            .header("brightpearl-app-ref", c.app_ref)
            .header("brightpearl-staff-token", c.staff_token),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["response"], "Invalid instance token");
}

// ---------------------------------------------------------------- throttling

#[tokio::test]
async fn two_hundred_per_rolling_minute_then_503_until_the_window_moves() {
    let bp = Bp::start().await;
    let token = bp.oauth().await.access_token;
    for i in 1..=200u64 {
        let response = bp
            .bearer(Method::GET, "/order-service/order-status", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {i}");
        let remaining: u64 = response.headers()["brightpearl-requests-remaining"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(remaining, 200 - i);
        let period: u64 = response.headers()["brightpearl-next-throttle-period"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(period <= 60_000);
    }
    let response = bp
        .bearer(Method::GET, "/order-service/order-status", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["brightpearl-requests-remaining"], "0");
    let body = response.text().await.unwrap();
    assert!(body.contains("too many requests"), "{body}");
    // The private-app pool is a different pool.
    assert_eq!(
        bp.get("/order-service/order-status").await.0,
        StatusCode::OK
    );
    bp.sandbox.state().clock.advance(Duration::from_secs(61));
    let response = bp
        .bearer(Method::GET, "/order-service/order-status", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["brightpearl-requests-remaining"], "199");
}

// ---------------------------------------------------------------- ID sets, OPTIONS, CMNC-404

#[tokio::test]
async fn id_sets_ranges_limits_and_long_uris() {
    let bp = Bp::start().await;
    let (status, body) = bp.get("/product-service/product/1001-1005,1007").await;
    assert_eq!(status, StatusCode::OK);
    let products: ProductListResponse = serde_json::from_value(body).unwrap();
    assert_eq!(
        products.response.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![1001, 1002, 1003, 1004, 1005, 1007]
    );
    assert_eq!(
        products.response[0]
            .identity
            .as_ref()
            .unwrap()
            .sku
            .as_deref(),
        Some("SKU-00001")
    );

    let (status, body) = bp.get("/product-service/product/1005-1001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_code(&body).starts_with("CMNC"));
    // 201 ids in one product GET is over the limit of 200.
    let (status, body) = bp.get("/product-service/product/1001-1201").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // 200 is fine (only the existing ones come back).
    assert_eq!(
        bp.get("/product-service/product/1001-1200").await.0,
        StatusCode::OK
    );
    // A very long ID set is 414 before anything else.
    let long: Vec<String> = (0..600).map(|i| (1001 + i * 3).to_string()).collect();
    let (status, _) = bp
        .get(&format!(
            "/warehouse-service/product-availability/{}",
            long.join(",")
        ))
        .await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
}

#[tokio::test]
async fn options_returns_chunked_get_uris() {
    let bp = Bp::start().await;
    let (status, body) = send(bp.staff(
        Method::OPTIONS,
        "/product-service/product/1001-1003,1005,9000",
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let uris: GetUrisResponse = serde_json::from_value(body).unwrap();
    assert_eq!(
        uris.response.get_uris.unwrap(),
        vec!["/product/1001-1003,1005"]
    );
    let (_, body) = send(bp.staff(Method::OPTIONS, "/product-service/product")).await;
    let uris: GetUrisResponse = serde_json::from_value(body).unwrap();
    assert_eq!(uris.response.get_uris.unwrap(), vec!["/product/1001-1050"]);
}

/// Every operation of the specs is served at its method and path template (a handler may still
/// refuse the sample input): never the 404 of an unknown path, never a 405.
#[tokio::test]
async fn every_operation_of_the_specs_is_served_at_its_path() {
    use brightpearl_models::{contact, integration, order, product, warehouse};
    let bp = Bp::start().await;
    let all = [
        product::operations::ALL,
        warehouse::operations::ALL,
        contact::operations::ALL,
        order::operations::ALL,
        integration::operations::ALL,
    ];
    for op in all.into_iter().flatten() {
        let template = op.path.strip_prefix("/public-api/{account}").unwrap();
        let path: Vec<&str> = template
            .split('/')
            .map(|part| if part.starts_with('{') { "1" } else { part })
            .collect();
        let path = path.join("/");
        let method = Method::from_bytes(op.method.as_bytes()).unwrap();
        let (status, body) = send(bp.staff(method, &path).json(&json!({}))).await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            status != StatusCode::METHOD_NOT_ALLOWED
                && !message.starts_with("No resource at")
                && !message.ends_with("is not served by the sandbox"),
            "{} {} ({path}): {status} {body}",
            op.id,
            op.method
        );
    }
}

#[tokio::test]
async fn empty_gets_are_cmnc_404_where_brightpearl_sends_it() {
    let bp = Bp::start().await;
    let (status, body) = bp.get("/product-service/product/9000-9005").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "CMNC-404");
    let (status, body) = bp.get("/contact-service/contact/1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errors"][0]["message"], "No Contact Found");
    let (status, body) = bp.get("/product-service/product-price/9000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errors"][0]["message"], "No Product Prices Found");
    // The order GET answers an unknown id with an empty list instead.
    let (status, body) = bp.get("/order-service/order/999").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"response": []}));
}

// ---------------------------------------------------------------- products, stock, prices

#[derive(Debug, Deserialize)]
struct ProductRow {
    #[serde(rename = "productId")]
    id: i64,
    #[serde(rename = "SKU")]
    sku: String,
}

#[tokio::test]
async fn product_search_columns_paging_sku_filter_and_sort() {
    let bp = Bp::start().await;
    let (status, body) = bp
        .get("/product-service/product-search?columns=SKU,productId&pageSize=20&firstResult=21")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: SearchEnvelope = serde_json::from_value(body).unwrap();
    assert_eq!(page.response.column_names(), vec!["SKU", "productId"]);
    let meta = page.response.meta_data.clone().unwrap();
    assert_eq!(
        (
            meta.results_available,
            meta.results_returned,
            meta.first_result,
            meta.last_result
        ),
        (Some(50), Some(20), Some(21), Some(40))
    );
    assert_eq!(meta.more_pages_available, Some(true));
    let rows: Vec<ProductRow> = page.response.decode_rows().unwrap();
    assert_eq!((rows[0].id, rows[0].sku.as_str()), (1021, "SKU-00021"));
    // The last page says there is no more.
    let (_, body) = bp
        .get("/product-service/product-search?pageSize=20&firstResult=41")
        .await;
    let page: SearchEnvelope = serde_json::from_value(body).unwrap();
    assert_eq!(
        page.response.meta_data.unwrap().more_pages_available,
        Some(false)
    );
    // SKU filter.
    let (_, body) = bp
        .get("/product-service/product-search?SKU=SKU-00007")
        .await;
    let page: SearchEnvelope = serde_json::from_value(body).unwrap();
    let rows: Vec<ProductRow> = page.response.decode_rows().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, 1007);
    // Sort descending.
    let (_, body) = bp
        .get("/product-service/product-search?sort=productId.DESC&pageSize=1")
        .await;
    let page: SearchEnvelope = serde_json::from_value(body).unwrap();
    assert_eq!(
        page.response.decode_rows::<ProductRow>().unwrap()[0].id,
        1050
    );
    // Over the page-size limit, and unknown columns, are the 500 CMNC-018 Brightpearl sends.
    let (status, body) = bp.get("/product-service/product-search?pageSize=501").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&body), "CMNC-018");
    let (status, _) = bp.get("/product-service/product-search?columns=nope").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (status, _) = bp
        .get("/product-service/product-search?productId=%3E5")
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn availability_in_total_and_per_warehouse() {
    let bp = Bp::start().await;
    let dataset = bp.sandbox.state().dataset.clone();
    let (status, body) = bp
        .get("/warehouse-service/product-availability/1001-1002")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let availability: ProductAvailabilityResponse = serde_json::from_value(body).unwrap();
    for product in &dataset.products[..2] {
        let entry = &availability.response[&product.id.to_string()];
        let total: i64 = product.on_hand.iter().sum();
        assert_eq!(entry.total.as_ref().unwrap().on_hand, Some(total));
        for (warehouse, on_hand) in dataset.warehouses.iter().zip(&product.on_hand) {
            assert_eq!(
                entry.warehouses.as_ref().unwrap()[&warehouse.id.to_string()].on_hand,
                Some(*on_hand)
            );
        }
    }
    // One unknown id fails the whole request.
    let (status, _) = bp
        .get("/warehouse-service/product-availability/1001,99999")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// The seeded bundles (not stock-tracked), highest id first: bundle `k` is made of the
/// products at index `2k` (one each) and `2k + 1` (two each).
async fn bundle_ids(bp: &Bp) -> Vec<i64> {
    let (status, body) = bp
        .get("/product-service/product-search?stockTracked=false&columns=productId,SKU&sort=productId.DESC")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: SearchEnvelope = serde_json::from_value(body).unwrap();
    page.response
        .decode_rows::<ProductRow>()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn set_on_hand(bp: &Bp, product: i64, warehouse: i64, on_hand: i64) {
    let (status, body) = bp
        .admin_post(
            &format!("/products/{product}/stock"),
            json!({"warehouseId": warehouse, "onHand": on_hand}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn bundles_are_not_stock_tracked_and_product_availability_leaves_them_out() {
    let bp = Bp::start().await;
    let dataset = bp.sandbox.state().dataset.clone();
    let bundles = bundle_ids(&bp).await;
    // A handful of the 50 products, none on a seeded order, none a component.
    assert_eq!(bundles.len(), 5, "{bundles:?}");
    let on_orders: Vec<i64> = dataset
        .orders
        .iter()
        .flat_map(|o| o.lines.iter().map(|l| dataset.products[l.product].id))
        .collect();
    assert!(
        bundles.iter().all(|b| !on_orders.contains(b) && *b > 1010),
        "{bundles:?}"
    );

    // The product GET says so: not stock-tracked, `composition.bundle`.
    let (status, body) = bp
        .get(&format!("/product-service/product/1001,{}", bundles[0]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let products: ProductListResponse = serde_json::from_value(body).unwrap();
    let [single, bundle] = &products.response[..] else {
        panic!("{products:?}")
    };
    assert_eq!(single.composition.as_ref().unwrap().bundle, Some(false));
    assert_eq!(single.stock.as_ref().unwrap().stock_tracked, Some(true));
    assert_eq!(bundle.composition.as_ref().unwrap().bundle, Some(true));
    assert_eq!(bundle.stock.as_ref().unwrap().stock_tracked, Some(false));

    // product-availability ignores non-stock-tracked ids: no entry, and no 400.
    let (status, body) = bp
        .get("/warehouse-service/product-availability/1001-1050")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let availability: ProductAvailabilityResponse = serde_json::from_value(body).unwrap();
    assert_eq!(availability.response.len(), 45);
    assert!(
        bundles
            .iter()
            .all(|b| !availability.response.contains_key(&b.to_string()))
    );
    let (status, body) = bp
        .get(&format!(
            "/warehouse-service/product-availability/{}",
            bundles[0]
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"], json!({}));

    // A bundle has no stock of its own to change.
    let (status, body) = bp
        .admin_post(
            &format!("/products/{}/stock", bundles[0]),
            json!({"warehouseId": 2, "onHand": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn bundle_availability_is_what_the_components_on_hand_make() {
    let bp = Bp::start().await;
    let bundles = bundle_ids(&bp).await;
    let (first, second) = (bundles[0], bundles[1]);
    // Bundle 0 = 1 × 1001 + 2 × 1002; bundle 1 = 1 × 1003 + 2 × 1004.
    set_on_hand(&bp, 1001, 2, 7).await;
    set_on_hand(&bp, 1002, 2, 9).await;
    set_on_hand(&bp, 1001, 3, 0).await;
    set_on_hand(&bp, 1002, 3, 50).await;
    let (status, body) = bp
        .get(&format!("/warehouse-service/bundle-availability/{first}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let availability: BundleAvailabilityResponse = serde_json::from_value(body.clone()).unwrap();
    let entry = &availability.response[&first.to_string()];
    // min(7 / 1, 9 / 2) = 4 in warehouse 2; warehouse 3 holds no 1001, so it is not listed.
    let warehouses = entry.warehouses.as_ref().unwrap();
    assert_eq!(warehouses.keys().collect::<Vec<_>>(), ["2"], "{body}");
    assert_eq!(warehouses["2"].on_hand, 4);
    assert_eq!(entry.total.as_ref().unwrap().on_hand, 4);
    // Only onHand, as the published example.
    assert_eq!(
        body["response"][first.to_string()]["total"],
        json!({"onHand": 4})
    );

    // A warehouse that holds every component but too few of one is listed with 0.
    set_on_hand(&bp, 1001, 3, 5).await;
    set_on_hand(&bp, 1002, 3, 1).await;
    let (_, body) = bp
        .get(&format!("/warehouse-service/bundle-availability/{first}"))
        .await;
    assert_eq!(
        body["response"][first.to_string()]["warehouses"],
        json!({"2": {"onHand": 4}, "3": {"onHand": 0}})
    );
    assert_eq!(body["response"][first.to_string()]["total"]["onHand"], 4);

    // An ID set (unconfirmed in Brightpearl) is accepted: one entry per bundle in it; ids that
    // are not bundles are left out.
    let (status, body) = bp
        .get(&format!(
            "/warehouse-service/bundle-availability/1001,{second},{first}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let availability: BundleAvailabilityResponse = serde_json::from_value(body).unwrap();
    let mut keys: Vec<_> = availability.response.keys().cloned().collect();
    keys.sort();
    let mut want = vec![first.to_string(), second.to_string()];
    want.sort();
    assert_eq!(keys, want);

    // Not a bundle, or no product at all: 404 CMNC-404, as other unknown ids.
    for id in ["1001", "99999"] {
        let (status, body) = bp
            .get(&format!("/warehouse-service/bundle-availability/{id}"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}: {body}");
        assert_eq!(error_code(&body), "CMNC-404");
    }
    let (status, _) = bp.get("/warehouse-service/bundle-availability/9-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The operation takes only GET.
    let (status, _) = send(bp.staff(
        Method::POST,
        &format!("/warehouse-service/bundle-availability/{first}"),
    ))
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn price_lists_and_product_prices() {
    let bp = Bp::start().await;
    let (status, body) = bp.get("/product-service/price-list").await;
    assert_eq!(status, StatusCode::OK);
    let lists: PriceListListResponse = serde_json::from_value(body).unwrap();
    assert_eq!(lists.response.len(), 2);
    assert_eq!(lists.response[1].code.as_deref(), Some("RETAIL"));
    let product = bp.sandbox.state().dataset.products[0].clone();
    let (status, body) = bp
        .get("/product-service/product-price/1001/price-list/2")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let prices: ProductPriceListResponse = serde_json::from_value(body).unwrap();
    let entry = &prices.response[0].price_lists.as_ref().unwrap()[0];
    assert_eq!(entry.price_list_id, Some(2));
    assert_eq!(entry.quantity_price.as_ref().unwrap()["1"], product.price);
    let (_, body) = bp.get("/product-service/product-price/1001-1003").await;
    let prices: ProductPriceListResponse = serde_json::from_value(body).unwrap();
    assert_eq!(prices.response.len(), 3);
    assert_eq!(prices.response[0].price_lists.as_ref().unwrap().len(), 2);
}

// ---------------------------------------------------------------- contacts

#[derive(Debug, Deserialize)]
struct ContactRow {
    #[serde(rename = "contactId")]
    id: i64,
    #[serde(rename = "primaryEmail")]
    email: Option<String>,
}

#[tokio::test]
async fn contact_search_matches_primary_email_partially() {
    let bp = Bp::start().await;
    let customer = bp.sandbox.state().dataset.customers[0].clone();
    let (status, body) = bp
        .get(&format!(
            "/contact-service/contact-search?primaryEmail={}",
            customer.email
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let page: SearchEnvelope = serde_json::from_value(body).unwrap();
    let rows: Vec<ContactRow> = page.response.decode_rows().unwrap();
    assert!(
        rows.iter()
            .any(|r| r.email.as_deref() == Some(customer.email.as_str()))
    );
    // A fragment matches every contact containing it, as Brightpearl's SEARCH_STRING does.
    let (_, body) = bp
        .get("/contact-service/contact-search?primaryEmail=example.com")
        .await;
    let page: SearchEnvelope = serde_json::from_value(body).unwrap();
    let rows: Vec<ContactRow> = page.response.decode_rows().unwrap();
    assert!(rows.len() > 1, "{rows:?}");
    // Only some customers are seeded as contacts.
    let customers = bp.sandbox.state().dataset.customers.len();
    assert!(rows.len() < customers);
    assert!(rows.iter().all(|r| r.id > 200));
}

#[tokio::test]
async fn postal_address_then_contact_create() {
    let bp = Bp::start().await;
    // The documented form is the 3-letter ISO code; a 2-letter one is refused.
    let (status, body) = bp
        .post(
            "/contact-service/postal-address",
            json!({"addressLine1": "Storgatan 1", "countryIsoCode": "SE"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("SWE"), "{body}");
    let (status, body) = bp
        .post("/contact-service/postal-address", json!({"addressLine1": "Storgatan 1", "addressLine3": "Stockholm", "postalCode": "11122", "countryIsoCode": "SWE"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let address = body["response"].as_i64().unwrap();
    let (status, body) = bp
        .post(
            "/contact-service/contact",
            json!({"firstName": "Greta", "lastName": "Garbo", "postAddressIds": {"DEF": address, "BIL": address, "DEL": address},
                   "communication": {"emails": {"PRI": {"email": "greta@example.org"}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let contact = body["response"].as_i64().unwrap();
    let (status, body) = bp.get(&format!("/contact-service/contact/{contact}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["response"][0]["communication"]["emails"]["PRI"]["email"],
        "greta@example.org"
    );
    assert_eq!(body["response"][0]["postAddressIds"]["DEF"], address);
    // Validation: an address that does not exist, a name over 32 characters, a missing line 1.
    let (status, _) = bp
        .post(
            "/contact-service/contact",
            json!({"firstName": "A", "postAddressIds": {"DEF": 999999}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = bp
        .post(
            "/contact-service/contact",
            json!({"firstName": "x".repeat(33)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = bp
        .post(
            "/contact-service/postal-address",
            json!({"postalCode": "1"}),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error_code(&body), "CMNU-003");
}

// ---------------------------------------------------------------- sales orders

fn order_body(customer: i64, external_ref: &str) -> Value {
    json!({
        "customer": {"id": customer},
        "ref": "NC-100001",
        "externalRef": external_ref,
        "installedIntegrationInstanceId": 13,
        "channelId": 1,
        "warehouseId": 2,
        "delivery": {"shippingMethodId": 1, "address": {"addressFullName": "Anna Lind", "addressLine1": "Avenyn 1", "postalCode": "41136", "countryIsoCode": "SE"}},
        "rows": [
            {"productId": 1001, "quantity": 2, "taxCode": "T25", "net": 100.00, "tax": 25.00, "externalRef": "line-1"},
            {"productId": 1002, "quantity": 1, "taxCode": "T25", "net": 50.50, "tax": 12.62, "externalRef": "line-2"},
            {"name": "Shipping", "quantity": 1, "taxCode": "T25", "net": 39.2, "tax": 9.8}
        ]
    })
}

#[derive(Debug, Deserialize)]
struct SalesOrderRow {
    #[serde(rename = "salesOrderId")]
    id: i64,
    #[serde(rename = "externalRef")]
    external_ref: Option<String>,
}

#[tokio::test]
async fn sales_order_create_get_and_search_by_external_ref() {
    let bp = Bp::start().await;
    let (status, body) = bp
        .post("/order-service/sales-order", order_body(201, "NC-100001"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["response"].as_i64().unwrap();

    let (status, body) = bp.get(&format!("/order-service/sales-order/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let orders: SalesOrderListResponse = serde_json::from_value(body).unwrap();
    let order = &orders.response[0];
    assert_eq!(order.external_ref.as_deref(), Some("NC-100001"));
    assert_eq!(order.installed_integration_instance_id, Some(13));
    let rows = order.rows.as_ref().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].external_ref.as_deref(), Some("line-1"));
    assert_eq!(rows[0].sku.as_deref(), Some("SKU-00001"));
    assert_eq!(order.shipping_status_code, Some(ShippingStatusCode::Sns));

    let (_, body) = bp.get(&format!("/order-service/order/{id}")).await;
    let nested: OrderListResponse = serde_json::from_value(body).unwrap();
    let nested = &nested.response[0];
    assert_eq!(nested.order_rows.as_ref().unwrap().len(), 3);
    assert_eq!(
        nested
            .parties
            .as_ref()
            .unwrap()
            .customer
            .as_ref()
            .unwrap()
            .contact_id,
        Some(201)
    );

    let (_, body) = bp
        .get("/order-service/sales-order-search?externalRef=NC-100001")
        .await;
    let page: SearchEnvelope = serde_json::from_value(body).unwrap();
    let found: Vec<SalesOrderRow> = page.response.decode_rows().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].id, found[0].external_ref.as_deref()),
        (id, Some("NC-100001"))
    );
    let (_, body) = bp
        .get("/order-service/order-search?externalRef=NC-100001&columns=orderId,externalRef")
        .await;
    let page: SearchEnvelope = serde_json::from_value(body).unwrap();
    assert_eq!(
        page.response.results.unwrap(),
        vec![vec![json!(id), json!("NC-100001")]]
    );
    assert!(page.reference.unwrap().contains_key("orderStatusNames"));
    let (_, body) = bp
        .get("/order-service/order-search?externalRef=NC-999")
        .await;
    let page: SearchEnvelope = serde_json::from_value(body).unwrap();
    assert_eq!(page.response.meta_data.unwrap().results_available, Some(0));
    // A bad INTEGER filter value is 500 CMNC-018.
    let (status, body) = bp
        .get("/order-service/order-search?orderStatusId=BAD%20PARAM")
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "CMNC-018".to_owned())
    );

    // The admin route finds it by externalRef.
    let (status, body) = bp.admin_get("/orders?externalRef=NC-100001").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["id"], id);

    // The same externalRef for the same instance is refused.
    let (status, body) = bp
        .post("/order-service/sales-order", order_body(201, "NC-100001"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn sales_order_validation() {
    let bp = Bp::start().await;
    // Unknown customer.
    let (status, body) = bp
        .post("/order-service/sales-order", order_body(9999, "A"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("customer")
    );
    // A row with neither productId nor name.
    let mut bad = order_body(201, "B");
    bad["rows"][0] = json!({"quantity": 1, "taxCode": "T25"});
    assert_eq!(
        bp.post("/order-service/sales-order", bad).await.0,
        StatusCode::BAD_REQUEST
    );
    // Fractional quantity of a stock-tracked product.
    let mut bad = order_body(201, "C");
    bad["rows"][0]["quantity"] = json!(1.5);
    assert_eq!(
        bp.post("/order-service/sales-order", bad).await.0,
        StatusCode::BAD_REQUEST
    );
    // Unknown product.
    let mut bad = order_body(201, "D");
    bad["rows"][0]["productId"] = json!(424242);
    assert_eq!(
        bp.post("/order-service/sales-order", bad).await.0,
        StatusCode::BAD_REQUEST
    );
    // A body the spec rejects (no rows) and no body at all.
    let (status, body) = bp
        .post(
            "/order-service/sales-order",
            json!({"customer": {"id": 201}}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "CMNU-003".to_owned())
    );
    let (status, body) = send(bp.staff(Method::POST, "/order-service/sales-order")).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "CMNC-010".to_owned())
    );
    // Nothing was created: the POST is atomic.
    let (_, body) = bp.admin_get("/orders").await;
    assert_eq!(body, json!([]));
}

#[tokio::test]
async fn order_status_put() {
    let bp = Bp::start().await;
    let (_, body) = bp
        .post("/order-service/sales-order", order_body(201, "NC-1"))
        .await;
    let id = body["response"].as_i64().unwrap();
    let (status, body) = bp
        .put(
            &format!("/order-service/order/{id}/status"),
            json!({"orderStatusId": 4, "orderNote": {"text": "ok", "isPublic": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({}));
    let (_, body) = bp.get(&format!("/order-service/order/{id}")).await;
    assert_eq!(body["response"][0]["orderStatus"]["orderStatusId"], 4);
    let (_, body) = bp
        .get("/order-service/order-search?orderStatusId=4&columns=orderId")
        .await;
    assert_eq!(body["response"]["results"], json!([[id]]));
    assert_eq!(
        bp.put(
            &format!("/order-service/order/{id}/status"),
            json!({"orderStatusId": 77})
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let (status, body) = bp
        .put("/order-service/order/5/status", json!({"orderStatusId": 4}))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "CMNC-404".to_owned())
    );
}

// ---------------------------------------------------------------- webhooks and goods-out notes

/// A local receiver: every call's (query, body) goes to the channel.
async fn receiver() -> (String, mpsc::UnboundedReceiver<(String, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |uri: axum::http::Uri, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((uri.query().unwrap_or_default().to_owned(), body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), rx)
}

const BODY_TEMPLATE: &str = r#"{"accountCode":"${account-code}","resourceType":"${resource-type}","id":"${resource-id}","lifecycleEvent":"${lifecycle-event}","fullEvent":"${full-event}","raisedOn":"${raised-on}","brightpearlVersion":"${brightpearl-version}"}"#;

fn webhook(event: &str, url: &str) -> Value {
    json!({"subscribeTo": event, "httpMethod": "POST", "uriTemplate": format!("{url}?secret=s3cret"), "bodyTemplate": BODY_TEMPLATE,
           "contentType": "application/json", "idSetAccepted": true, "qualityOfService": 1})
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, WebhookEvent) {
    let (query, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("webhook call within 10 s")
        .expect("channel open");
    let event: WebhookEvent = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
    (query, event)
}

#[tokio::test]
async fn webhooks_crud() {
    let bp = Bp::start().await;
    let (status, body) = bp.get("/integration-service/webhook").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "CMNC-404".to_owned())
    );
    let (status, body) = bp
        .post(
            "/integration-service/webhook",
            webhook(
                "product.modified.on-hand-modified",
                "http://127.0.0.1:9/hook",
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["response"].as_i64().unwrap();
    let (_, body) = bp
        .post(
            "/integration-service/webhook",
            webhook("goods-out-note.modified.shipped", "http://127.0.0.1:9/hook"),
        )
        .await;
    let second = body["response"].as_i64().unwrap();
    let (status, body) = bp.get("/integration-service/webhook").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["response"].as_array().unwrap().len(), 2);
    let (_, body) = bp.get(&format!("/integration-service/webhook/{id}")).await;
    assert_eq!(
        body["response"][0]["subscribeTo"],
        "product.modified.on-hand-modified"
    );
    // Unknown events are INTC-064.
    let (status, body) = bp
        .post(
            "/integration-service/webhook",
            webhook("contact.created", "http://127.0.0.1:9/hook"),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "INTC-064".to_owned())
    );
    // Update, delete, and the deleted one is gone.
    let (status, _) = bp
        .put(
            &format!("/integration-service/webhook/{id}"),
            webhook("product.modified", "http://127.0.0.1:9/other"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = bp.get(&format!("/integration-service/webhook/{id}")).await;
    assert_eq!(body["response"][0]["subscribeTo"], "product.modified");
    let (status, body) = send(bp.staff(
        Method::DELETE,
        &format!("/integration-service/webhook/{second}"),
    ))
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (status, body) = bp
        .get(&format!("/integration-service/webhook/{second}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["errors"][0]["message"],
        format!("No webhooks available in ID Set {second}")
    );
}

#[tokio::test]
async fn stock_change_fires_the_product_webhook_with_ids_only() {
    let bp = Bp::start().await;
    let (url, mut rx) = receiver().await;
    let (status, _) = bp
        .post(
            "/integration-service/webhook",
            webhook("product.modified.on-hand-modified", &url),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = bp
        .admin_post(
            "/products/1003/stock",
            json!({"warehouseId": 2, "onHand": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (query, event) = next_event(&mut rx).await;
    assert_eq!(query, "secret=s3cret");
    assert_eq!(event.id, "1003");
    assert_eq!(event.resource_type.as_deref(), Some("product"));
    assert_eq!(
        event.full_event.as_ref().map(|e| e.as_str()),
        Some("product.modified.on-hand-modified")
    );
    assert_eq!(event.account_code.as_deref(), Some("sandboxacct"));
    let (_, body) = bp.get("/warehouse-service/product-availability/1003").await;
    assert_eq!(body["response"]["1003"]["warehouses"]["2"]["onHand"], 7);
    // The delivery log has it, with the secret redacted.
    let (_, body) = bp.admin_get("/webhook-deliveries").await;
    let delivery = &body[0];
    assert_eq!(delivery["event"], "product.modified.on-hand-modified");
    assert!(!delivery["url"].as_str().unwrap().contains("s3cret"));
}

/// The admin route sets and removes a product's default location, as its record shows it; an
/// unknown product or warehouse is refused.
#[tokio::test]
async fn a_products_default_location_is_set_and_removed_by_the_admin_route() {
    let bp = Bp::start().await;
    let location =
        |body: &Value| body["response"][0]["warehouses"]["2"]["defaultLocationId"].clone();
    let (_, body) = bp.get("/product-service/product/1003").await;
    assert_eq!(location(&body), json!(201), "the seeded default");
    let path = "/products/1003/default-location";
    let (status, body) = bp
        .admin_post(path, json!({"warehouseId": 2, "locationId": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = bp.get("/product-service/product/1003").await;
    assert_eq!(location(&body), Value::Null, "{body}");
    let (status, _) = bp.admin_post(path, json!({"locationId": 250})).await;
    assert_eq!(status, StatusCode::OK, "the first warehouse by default");
    let (_, body) = bp.get("/product-service/product/1003").await;
    assert_eq!(location(&body), json!(250));
    let (status, body) = bp
        .admin_post(path, json!({"warehouseId": 99, "locationId": 1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("warehouse 99"), "{body}");
    let (status, _) = bp
        .admin_post(
            "/products/999999/default-location",
            json!({"locationId": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = bp.admin_post(path, json!({"location": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.to_string().contains("warehouseId?, locationId"),
        "{body}"
    );
}

#[tokio::test]
async fn goods_out_notes_get_search_and_shipped_webhook() {
    let bp = Bp::start().await;
    let (url, mut rx) = receiver().await;
    bp.post(
        "/integration-service/webhook",
        webhook("goods-out-note.modified.shipped", &url),
    )
    .await;
    let (_, body) = bp
        .post("/order-service/sales-order", order_body(201, "NC-7"))
        .await;
    let order = body["response"].as_i64().unwrap();
    let before: ProductAvailabilityResponse = serde_json::from_value(
        bp.get("/warehouse-service/product-availability/1001")
            .await
            .1,
    )
    .unwrap();

    let (status, body) = bp
        .admin_post("/goods-out-notes", json!({"orderId": order}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let gon = body["id"].as_i64().unwrap();
    // Creating the note allocates stock.
    let after: ProductAvailabilityResponse = serde_json::from_value(
        bp.get("/warehouse-service/product-availability/1001")
            .await
            .1,
    )
    .unwrap();
    let allocated = |a: &ProductAvailabilityResponse| {
        a.response["1001"].warehouses.as_ref().unwrap()["2"]
            .allocated
            .unwrap()
    };
    assert_eq!(allocated(&after) - allocated(&before), 2);

    let (status, body) = bp
        .get(&format!(
            "/warehouse-service/order/{order}/goods-note/goods-out"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let notes: GoodsOutNoteMapResponse = serde_json::from_value(body).unwrap();
    let note = &notes.response[&gon.to_string()];
    assert_eq!(note.order_id, Some(order));
    assert_eq!(
        note.order_rows.as_ref().unwrap().len(),
        2,
        "only stock-tracked rows"
    );
    let (status, _) = bp
        .get(&format!(
            "/warehouse-service/order/*/goods-note/goods-out/{gon}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = bp
        .get("/warehouse-service/goods-note/goods-out-search?shipped=true")
        .await;
    assert_eq!(body["response"]["metaData"]["resultsAvailable"], 0);

    let (status, body) = bp
        .admin_post(
            &format!("/goods-out-notes/{gon}/ship"),
            json!({"reference": "TRACK123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, event) = next_event(&mut rx).await;
    assert_eq!(event.id, gon.to_string());
    assert_eq!(
        event.full_event.as_ref().map(|e| e.as_str()),
        Some("goods-out-note.modified.shipped")
    );

    let (_, body) = bp.get("/warehouse-service/goods-note/goods-out-search?shipped=true&columns=goodsOutNoteId,orderId").await;
    assert_eq!(body["response"]["results"], json!([[gon, order]]));
    let (_, body) = bp
        .get(&format!(
            "/warehouse-service/order/*/goods-note/goods-out/{gon}"
        ))
        .await;
    let note = &body["response"][gon.to_string()];
    assert_eq!(note["status"]["shipped"], true);
    assert_eq!(note["shipping"]["reference"], "TRACK123");
    let (_, body) = bp.get(&format!("/order-service/sales-order/{order}")).await;
    assert_eq!(body["response"][0]["shippingStatusCode"], "ASS");
    // Unknown order ids on the GON GET are CMNC-404.
    let (status, body) = bp
        .get("/warehouse-service/order/424242/goods-note/goods-out")
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "CMNC-404".to_owned())
    );
}

#[tokio::test]
async fn the_simulated_warehouse_ships_every_nth_new_order_one_in_part() {
    // Off by default: a new order gets no goods-out note.
    let bp = Bp::start().await;
    bp.post("/order-service/sales-order", order_body(201, "NC-1"))
        .await;
    let (_, body) = bp
        .get("/warehouse-service/goods-note/goods-out-search")
        .await;
    assert_eq!(body["response"]["metaData"]["resultsAvailable"], 0);

    let mut config = sandbox::SandboxConfig::default();
    config.brightpearl.warehouse_ships = Some(sandbox::brightpearl::WarehouseShips {
        shipping_method_id: 3,
        ..Default::default()
    });
    let sandbox = common::start_with(config).await;
    let bp = Bp {
        sandbox,
        http: common::http(),
    };
    let (url, mut rx) = receiver().await;
    bp.post(
        "/integration-service/webhook",
        webhook("goods-out-note.modified.shipped", &url),
    )
    .await;
    let mut orders = Vec::new();
    for n in 1..=4 {
        let (status, body) = bp
            .post(
                "/order-service/sales-order",
                order_body(201, &format!("NC-{n}")),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        orders.push(body["response"].as_i64().unwrap());
    }

    // Every 2nd order from the first: orders 1 and 3. The first is the partial one (its first
    // row only), the third ships whole.
    let (_, body) = bp
        .get("/warehouse-service/goods-note/goods-out-search?shipped=true&columns=goodsOutNoteId,orderId,shippedOn&sort=goodsOutNoteId.ASC")
        .await;
    let results = body["response"]["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2, "{body}");
    assert_eq!(
        (results[0][1].as_i64(), results[1][1].as_i64()),
        (Some(orders[0]), Some(orders[2]))
    );
    // Shipped on the virtual clock, as the order was created.
    assert!(
        results[0][2]
            .as_str()
            .unwrap()
            .starts_with("2026-03-02T08:00"),
        "{body}"
    );

    let (_, body) = bp
        .get("/warehouse-service/order/*/goods-note/goods-out/1,2")
        .await;
    let notes: GoodsOutNoteMapResponse = serde_json::from_value(body).unwrap();
    let (_, body) = bp
        .get(&format!("/order-service/sales-order/{}", orders[0]))
        .await;
    let first_row = body["response"][0]["rows"][0]["id"].as_i64().unwrap();
    assert_eq!(body["response"][0]["shippingStatusCode"], "SPS");
    let partial = &notes.response["1"];
    let rows = partial.order_rows.as_ref().unwrap();
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        vec![&first_row.to_string()]
    );
    assert_eq!(rows[&first_row.to_string()][0].quantity, Some(2));
    let whole = &notes.response["2"];
    assert_eq!(
        whole.order_rows.as_ref().unwrap().len(),
        2,
        "both stock-tracked rows"
    );
    for (id, note) in [(1, partial), (2, whole)] {
        assert_eq!(note.status.as_ref().unwrap().shipped, Some(true));
        let shipping = note.shipping.as_ref().unwrap();
        assert_eq!(
            shipping.reference.as_deref(),
            Some(format!("SBXTRK{id:010}").as_str())
        );
        assert_eq!(
            shipping.shipping_method_id,
            Some(1),
            "the order's shipping method, not the fallback"
        );
    }
    let (_, body) = bp
        .get(&format!("/order-service/sales-order/{}", orders[2]))
        .await;
    assert_eq!(body["response"][0]["shippingStatusCode"], "ASS");
    for order in [orders[1], orders[3]] {
        let (_, body) = bp.get(&format!("/order-service/sales-order/{order}")).await;
        assert_eq!(body["response"][0]["shippingStatusCode"], "SNS");
    }

    // The same webhooks as the admin routes fire.
    let mut shipped = Vec::new();
    for _ in 0..2 {
        let (_, event) = next_event(&mut rx).await;
        assert_eq!(
            event.full_event.as_ref().map(|e| e.as_str()),
            Some("goods-out-note.modified.shipped")
        );
        shipped.push(event.id);
    }
    shipped.sort();
    assert_eq!(shipped, ["1", "2"]);
}

// ---------------------------------------------------------------- multi-message

#[tokio::test]
async fn multi_message_limits_and_per_message_results() {
    let bp = Bp::start().await;
    let (_, body) = bp
        .post("/order-service/sales-order", order_body(201, "NC-9"))
        .await;
    let order = body["response"].as_i64().unwrap();
    let message = |label: &str, uri: String| json!({"label": label, "uri": uri, "httpMethod": "PUT", "body": {"orderStatusId": 4}});
    let eleven: Vec<Value> = (0..11)
        .map(|i| {
            message(
                &format!("m{i}"),
                format!("/order-service/order/{order}/status"),
            )
        })
        .collect();
    let (status, body) = bp
        .post(
            "/multi-message",
            json!({"processingMode": "SEQUENTIAL", "onFail": "CONTINUE", "messages": eleven}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let messages = vec![
        message("good", format!("/order-service/order/{order}/status")),
        message("bad", "/order-service/order/1/status".to_owned()),
        json!({"label": "address", "uri": "/contact-service/postal-address", "httpMethod": "POST", "body": {"addressLine1": "Gatan 2"}}),
    ];
    let (status, body) = bp
        .post(
            "/multi-message",
            json!({"processingMode": "SEQUENTIAL", "onFail": "CONTINUE", "messages": messages}),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let processed = body["response"]["processedMessages"].as_array().unwrap();
    assert_eq!(processed.len(), 3);
    assert_eq!(
        (
            processed[0]["label"].clone(),
            processed[0]["statusCode"].clone()
        ),
        (json!("good"), json!(200))
    );
    assert_eq!(processed[1]["statusCode"], 404);
    // Each message's own response is a JSON-encoded string, as Brightpearl sends it.
    let content = |i: usize| -> Value {
        let text = processed[i]["body"]["content"]
            .as_str()
            .unwrap_or_else(|| panic!("content is a string: {}", processed[i]));
        serde_json::from_str(text).unwrap()
    };
    assert_eq!(content(1)["errors"][0]["code"], "CMNC-404");
    assert!(content(2)["response"].is_i64());

    let (status, body) = bp
        .post(
            "/multi-message",
            json!({"processingMode": "SEQUENTIAL", "onFail": "STOP", "messages": messages}),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(
        body["response"]["processedMessages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(body["response"]["unprocessedMessages"], json!(["address"]));

    let ok = vec![
        message("a", format!("/order-service/order/{order}/status")),
        message("b", format!("/order-service/order/{order}/status")),
    ];
    let response = bp
        .staff(Method::POST, "/multi-message")
        .json(&json!({"processingMode": "PARALLEL", "onFail": "STOP", "messages": ok}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The whole batch counted as one request (3 POSTs + this one after the order create).
    let remaining: u64 = response.headers()["brightpearl-requests-remaining"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(remaining, 200 - 5);
}

#[tokio::test]
async fn webhook_simulate_sends_test_data_and_caps_ids_at_ten() {
    let bp = Bp::start().await;
    let (url, mut rx) = receiver().await;
    let (_, body) = bp
        .post(
            "/integration-service/webhook",
            webhook("product.modified.on-hand-modified", &url),
        )
        .await;
    let id = body["response"].as_i64().unwrap();
    let path = format!("/integration-service/webhook/{id}/simulate");
    let (status, body) = bp
        .post(
            &path,
            json!({"testData": {"${resource-id}": "1-5,99", "${resource-type}": "product"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, event) = next_event(&mut rx).await;
    assert_eq!(event.id, "1-5,99");
    let (status, _) = bp
        .post(&path, json!({"testData": {"${resource-id}": "1-11"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------- sales credits

/// A credit of one refunded row of the order `parent`.
fn credit_body(parent: &Value, external_ref: &str) -> Value {
    json!({
        "customer": {"id": 201},
        "externalRef": external_ref,
        "installedIntegrationInstanceId": 13,
        "parentId": parent.to_string(),
        "warehouseId": 2,
        "priceListId": 1,
        "currency": {"code": "SEK"},
        "rows": [
            {"productId": 1001, "quantity": 1, "taxCode": "T25", "net": 50.00, "tax": 12.50, "nominalCode": "4000", "externalRef": "line-1"}
        ]
    })
}

#[tokio::test]
async fn sales_credit_create_get_and_search_by_type_and_external_ref() {
    let bp = Bp::start().await;
    let (status, order) = bp
        .post("/order-service/sales-order", order_body(201, "NC-200001"))
        .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    let parent = order["response"].clone();
    let (status, body) = bp
        .post(
            "/order-service/sales-credit",
            credit_body(&parent, "NC-200001-R1"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let credit = body["response"].as_i64().unwrap();
    assert!(
        credit > parent.as_i64().unwrap(),
        "credits share the order ids"
    );

    let (status, body) = bp
        .get(&format!("/order-service/sales-credit/{credit}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let list: brightpearl_models::order::SalesCreditListResponse =
        serde_json::from_value(body).unwrap();
    let got = &list.response[0];
    assert_eq!(got.parent_id.as_deref(), Some(parent.to_string().as_str()));
    assert_eq!(got.external_ref.as_deref(), Some("NC-200001-R1"));
    let rows = got.rows.as_deref().unwrap();
    assert_eq!(rows[0].net, Some("50.0000".parse().unwrap()));
    assert_eq!(
        got.total.as_ref().unwrap().gross,
        Some("62.5000".parse().unwrap())
    );
    // A credit is not a sales order.
    let (status, _) = bp
        .get(&format!("/order-service/sales-order/{credit}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // 207 when only some ids are found; 200 and [] when none is.
    let (status, body) = bp
        .get(&format!(
            "/order-service/sales-credit/{credit},{}",
            credit + 50
        ))
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let (status, body) = bp.get("/order-service/sales-credit/1").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"response": []})));

    // The order search lists it with order type 3, found by its natural key.
    let (status, body) = bp
        .get("/order-service/order-search?orderTypeId=3&externalRef=NC-200001-R1&installedIntegrationInstanceId=13")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let envelope: SearchEnvelope = serde_json::from_value(body).unwrap();
    let results = envelope.response.results.unwrap_or_default();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0][0], json!(credit));
    assert_eq!(results[0][1], json!(3));
    let (_, body) = bp
        .get("/order-service/order-search?orderTypeId=1&externalRef=NC-200001-R1")
        .await;
    let envelope: SearchEnvelope = serde_json::from_value(body).unwrap();
    assert!(envelope.response.results.unwrap_or_default().is_empty());

    // The same natural key again is refused (the sales-order default).
    let (status, body) = bp
        .post(
            "/order-service/sales-credit",
            credit_body(&parent, "NC-200001-R1"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("already used"), "{body}");
}

/// One change that makes a credit body invalid.
type Edit = dyn Fn(&mut Value);

#[tokio::test]
async fn sales_credit_validation() {
    let bp = Bp::start().await;
    let (_, order) = bp
        .post("/order-service/sales-order", order_body(201, "NC-200002"))
        .await;
    let parent = order["response"].clone();
    let cases: Vec<(&str, Box<Edit>)> = vec![
        ("parentId", Box::new(|b| b["parentId"] = json!("999999"))),
        ("customer", Box::new(|b| b["customer"]["id"] = json!(9999))),
        ("warehouseId", Box::new(|b| b["warehouseId"] = json!(777))),
        (
            "productId",
            Box::new(|b| b["rows"][0]["productId"] = json!(9_999_999)),
        ),
        (
            "taxCode",
            Box::new(|b| b["rows"][0]["taxCode"] = json!(" ")),
        ),
        (
            "quantity",
            Box::new(|b| b["rows"][0]["quantity"] = json!(0)),
        ),
        (
            "4 decimals",
            Box::new(|b| b["rows"][0]["net"] = json!("1.23456")),
        ),
        ("at least one row", Box::new(|b| b["rows"] = json!([]))),
    ];
    for (field, edit) in cases {
        let mut body = credit_body(&parent, "NC-200002-R1");
        edit(&mut body);
        let (status, answer) = bp.post("/order-service/sales-credit", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert!(answer.to_string().contains(field), "{field}: {answer}");
    }
    // Nothing was stored by the refused bodies.
    let (_, body) = bp.get("/order-service/order-search?orderTypeId=3").await;
    let envelope: SearchEnvelope = serde_json::from_value(body).unwrap();
    assert!(envelope.response.results.unwrap_or_default().is_empty());
}

// ---------------------------------------------------------------- goods-in notes on credits

/// `inStock` of product 1001 in warehouse 2.
async fn in_stock_1001(bp: &Bp) -> i64 {
    let (status, body) = bp.get("/warehouse-service/product-availability/1001").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["response"]["1001"]["warehouses"]["2"]["inStock"]
        .as_i64()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_goods_in_note_on_a_credit_puts_its_stock_back_once() {
    let bp = Bp::start().await;
    let (_, order) = bp
        .post("/order-service/sales-order", order_body(201, "NC-200003"))
        .await;
    let parent = order["response"].clone();
    let mut credit = credit_body(&parent, "NC-200003-R1");
    credit["rows"][0]["quantity"] = json!(2);
    let (status, body) = bp.post("/order-service/sales-credit", credit).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let credit = body["response"].as_i64().unwrap();
    let (_, body) = bp
        .get(&format!("/order-service/sales-credit/{credit}"))
        .await;
    let row = body["response"][0]["rows"][0]["id"].as_i64().unwrap();
    let path = format!("/warehouse-service/order/{credit}/goods-note/goods-in");
    // None yet: 404, as for goods-out notes.
    let (status, _) = bp.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let note = |quantity: i64, reference: &str| {
        json!({
            "transfer": false, "warehouseId": 2, "userBatchReference": reference,
            "goodsMoved": [{"productId": 1001, "purchaseOrderRowId": row, "quantity": quantity,
                            "destinationLocationId": 2, "productValue": {"currency": "SEK", "value": "25.00"}}]
        })
    };
    let before = in_stock_1001(&bp).await;
    let cases: Vec<(&str, String, Value)> = vec![
        (
            "not a sales credit",
            format!("/warehouse-service/order/{parent}/goods-note/goods-in"),
            note(1, "a"),
        ),
        ("would receive 3 of 2", path.clone(), note(3, "a")),
        ("warehouseId", path.clone(), {
            let mut b = note(1, "a");
            b["warehouseId"] = json!(777);
            b
        }),
        ("is not a row of order", path.clone(), {
            let mut b = note(1, "a");
            b["goodsMoved"][0]["purchaseOrderRowId"] = json!(1);
            b
        }),
        ("destinationLocationId", path.clone(), {
            let mut b = note(1, "a");
            b["goodsMoved"][0]["destinationLocationId"] = json!(null);
            b
        }),
    ];
    for (what, at, body) in cases {
        let (status, answer) = bp.post(&at, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert!(answer.to_string().contains(what), "{what}: {answer}");
    }
    assert_eq!(
        in_stock_1001(&bp).await,
        before,
        "refused notes change nothing"
    );

    let (status, body) = bp.post(&path, note(2, "NC-200003-R1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["response"].as_i64().unwrap();
    assert_eq!(in_stock_1001(&bp).await, before + 2, "the stock is back");
    let (status, body) = bp.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let notes: brightpearl_models::warehouse::GoodsInNoteMapResponse =
        serde_json::from_value(body).unwrap();
    let got = &notes.response[&id.to_string()];
    assert_eq!(got.order_id, Some(credit));
    assert_eq!(got.user_batch_reference.as_deref(), Some("NC-200003-R1"));
    // The reference is unique, and the row is received in full.
    let (status, answer) = bp.post(&path, note(0, "NC-200003-R1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.to_string().contains("already used"), "{answer}");
    let (status, answer) = bp.post(&path, note(1, "other")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer.to_string().contains("would receive 3 of 2"),
        "{answer}"
    );
    assert_eq!(in_stock_1001(&bp).await, before + 2);
    // What the sandbox holds, for scenarios that count writes.
    let admin = |path: String| {
        let url = format!("{}/_sandbox/brightpearl{path}", bp.sandbox.base_url());
        async move {
            let answer = reqwest::get(url).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
            answer.json::<Value>().await.unwrap()
        }
    };
    let credits = admin("/sales-credits?externalRef=NC-200003-R1".into()).await;
    assert_eq!(credits.as_array().unwrap().len(), 1, "{credits}");
    assert_eq!(credits[0]["id"], credit);
    let none = admin("/sales-credits?externalRef=NC-200003-R9".into()).await;
    assert_eq!(none.as_array().unwrap().len(), 0);
    let notes = admin(format!("/goods-in-notes?orderId={credit}")).await;
    assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
    assert_eq!(notes[0]["goodsNoteId"], id);
    let none = admin(format!("/goods-in-notes?orderId={parent}")).await;
    assert_eq!(none.as_array().unwrap().len(), 0);
}
