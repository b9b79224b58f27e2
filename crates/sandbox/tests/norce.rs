//! Black-box tests of the Norce simulator over HTTP (see the Norce section of the crate README for the rule table).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus, Uri};
use axum::response::IntoResponse;
use base64::Engine;
use reqwest::StatusCode;
use sandbox::norce::{NorceConfig, OrderReceiverConfig, WebhookConfig};
use sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// helpers

fn form(sb: &Sandbox, secret: &str, scope: &str, grant: &str) -> String {
    let c = sb.credentials().norce;
    format!(
        "grant_type={grant}&client_id={}&client_secret={secret}&scope={scope}",
        c.client_id
    )
}

async fn token_request(sb: &Sandbox, body: String) -> reqwest::Response {
    common::http()
        .post(format!("{}/identity/1.0/connect/token", sb.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn token(sb: &Sandbox) -> String {
    let secret = sb.credentials().norce.client_secret;
    let response = token_request(sb, form(sb, &secret, "playground", "client_credentials")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn get(sb: &Sandbox, token: &str, path_and_query: &str) -> (StatusCode, Value) {
    let app = sb.credentials().norce.application_id;
    let url = if path_and_query.starts_with("http") {
        path_and_query.to_owned()
    } else {
        format!("{}{path_and_query}", sb.base_url())
    };
    let response = common::http()
        .get(url)
        .bearer_auth(token)
        .header("ApplicationId", app.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(
    sb: &Sandbox,
    token: &str,
    path: &str,
    connect_header: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let app = sb.credentials().norce.application_id;
    let mut request = common::http()
        .post(format!("{}{path}", sb.base_url()))
        .bearer_auth(token)
        .header("ApplicationId", app.to_string())
        .json(&body);
    if let Some(h) = connect_header {
        request = request.header("X-StormConnect-Header", h);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A sandbox with this Norce configuration (pushes, webhooks) and the rest by default.
async fn with_norce(norce: NorceConfig) -> Sandbox {
    common::start_with(SandboxConfig {
        norce,
        ..SandboxConfig::default()
    })
    .await
}

async fn admin(sb: &Sandbox, path: &str) -> Value {
    let response = common::http()
        .get(format!("{}/_sandbox/norce{path}", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

fn advance(sb: &Sandbox, secs: u64) {
    sb.state().clock.advance(Duration::from_secs(secs));
}

const ONHAND_HEADER: &str =
    r#"{"AccountId":1,"FullFile":false,"SkuOnhandFieldsThatAreSet":[3],"SerializationType":0}"#;
const PRICE_HEADER: &str = r#"{"AccountId":1,"FullFile":false,"SkuPriceListFieldsThatAreSet":["PriceSale","CostPurchase","PriceRecommended"]}"#;

/// A receiver standing in for our order receiver / webhook endpoint.
struct Received {
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone)]
struct ReceiverState {
    statuses: Arc<Vec<u16>>,
    calls: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<Received>,
}

async fn receive(
    State(s): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: bytes::Bytes,
) -> axum::response::Response {
    let n = s.calls.fetch_add(1, Ordering::SeqCst);
    let status = s.statuses.get(n).copied().unwrap_or(200);
    let _ = s.tx.send(Received {
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let code = AxumStatus::from_u16(status).unwrap();
    if code.is_success() {
        (
            code,
            axum::Json(json!({"StatusCode": "OK", "HasErpOrderNo": true, "ErpOrderNo": "BP-9001"})),
        )
            .into_response()
    } else {
        (code, "receiver down").into_response()
    }
}

/// Starts a receiver on 127.0.0.1:0 answering `statuses` in turn (then 200).
async fn receiver(statuses: Vec<u16>) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = ReceiverState {
        statuses: Arc::new(statuses),
        calls: Arc::new(AtomicUsize::new(0)),
        tx,
    };
    let app = Router::new().fallback(receive).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a push arrives in time")
        .expect("channel open")
}

/// Polls the admin push log until `pred` holds (pushes are recorded after the response).
async fn wait_for_pushes(sb: &Sandbox, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let pushes = admin(sb, "/pushes").await;
            let list = pushes.as_array().cloned().unwrap_or_default();
            if pred(&list) {
                return list;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("push log reaches the expected state")
}

// ---------------------------------------------------------------------------------------------
// identity

#[tokio::test]
async fn seed_curl_token_request_gets_the_documented_shape() {
    let sb = common::start().await;
    let c = sb.credentials().norce;
    // The seed's curl: --data grant_type=client_credentials --data client_id=... --data client_secret=... --data scope=...
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=playground",
        c.client_id, c.client_secret
    );
    let response = token_request(&sb, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3),
        "{body}"
    );
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "playground");
    // And the token works for the seed's GetApplication call.
    let (status, app) = get(
        &sb,
        body["access_token"].as_str().unwrap(),
        "/commerce/metadata/1.1/GetApplication?format=json",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["Id"], c.application_id);
    assert_eq!(app["Currencies"]["Default"]["Code"], "SEK");
    assert_eq!(app["Roles"]["Default"]["Name"], "Buyer");
}

#[tokio::test]
async fn token_errors_follow_oauth() {
    let sb = common::start().await;
    let secret = sb.credentials().norce.client_secret;

    let response = token_request(
        &sb,
        form(&sb, "guessed-xyz", "playground", "client_credentials"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(
        !body.to_string().contains("guessed-xyz"),
        "never echo secrets: {body}"
    );

    let response = token_request(&sb, form(&sb, &secret, "galaxy", "client_credentials")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );

    let response = token_request(&sb, form(&sb, &secret, "playground", "password")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );

    let response = token_request(
        &sb,
        "grant_type=client_credentials&client_id=x&scope=lab".into(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("client_secret"),
        "{body}"
    );

    // `lab` is still a valid scope.
    let response = token_request(&sb, form(&sb, &secret, "lab", "client_credentials")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["scope"], "lab");
}

#[tokio::test]
async fn token_rate_limit_is_a_burst_of_20_then_3_per_minute_on_the_virtual_clock() {
    let sb = common::start().await;
    let secret = sb.credentials().norce.client_secret;
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(
            token_request(&sb, form(&sb, &secret, "playground", "client_credentials"))
                .await
                .status(),
        );
    }
    assert!(
        statuses[..20].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert!(
        statuses[20..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let limited = token_request(&sb, form(&sb, &secret, "playground", "client_credentials")).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));

    advance(&sb, 20);
    assert_eq!(
        token_request(&sb, form(&sb, &secret, "playground", "client_credentials"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        token_request(&sb, form(&sb, &secret, "playground", "client_credentials"))
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn commerce_calls_need_an_unexpired_bearer_token() {
    let sb = common::start().await;
    let app = sb.credentials().norce.application_id.to_string();
    let url = format!("{}/commerce/order/1.1/GetOrder?id=100001", sb.base_url());
    let response = common::http()
        .get(&url)
        .header("ApplicationId", &app)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = common::http()
        .get(&url)
        .bearer_auth("not-a-token")
        .header("ApplicationId", &app)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let token = token(&sb).await;
    assert_eq!(
        get(&sb, &token, "/commerce/order/1.1/GetOrder?id=100001")
            .await
            .0,
        StatusCode::OK
    );
    advance(&sb, 3599);
    assert_eq!(
        get(&sb, &token, "/commerce/order/1.1/GetOrder?id=100001")
            .await
            .0,
        StatusCode::OK
    );
    advance(&sb, 1);
    let (status, body) = get(&sb, &token, "/commerce/order/1.1/GetOrder?id=100001").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["Message"].as_str().unwrap().contains("expired"));
    // Connect and Query check too.
    assert_eq!(
        get(&sb, &token, "/commerce/query/3.0/Orders/Orders")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(
            &sb,
            &token,
            "/commerce/connect/4.0/Order/CancelOrder",
            None,
            json!({"ClientOrderRef": 400001})
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn application_id_header_must_be_numeric_and_present() {
    let sb = common::start().await;
    let token = token(&sb).await;
    // Services and Query need it; Connect does not (see
    // `connect_calls_do_not_need_the_application_id_header`).
    for path in [
        "/commerce/order/1.1/GetOrder?id=100001",
        "/commerce/query/3.0/Orders/Orders",
    ] {
        let url = format!("{}{path}", sb.base_url());
        let missing = common::http()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(
            missing.text().await.unwrap().contains("ApplicationId"),
            "{path}"
        );
        let bad = common::http()
            .get(&url)
            .bearer_auth(&token)
            .header("ApplicationId", "abc")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(
            bad.text().await.unwrap().contains("ApplicationId"),
            "{path}"
        );
    }
    // Header names are case-insensitive; `application-id` is accepted too.
    let url = format!("{}/commerce/order/1.1/GetOrder?id=100001", sb.base_url());
    for name in ["applicationid", "APPLICATIONID", "application-id"] {
        let ok = common::http()
            .get(&url)
            .bearer_auth(&token)
            .header(name, "1234")
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// Services

#[tokio::test]
async fn list_orders3_filters_and_pages() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let (status, body) = get(&sb, &token, "/commerce/order/1.1/ListOrders3?format=json").await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a filter is required: {body}"
    );

    let from = "2026-02-27T00:00:00.000Z";
    let (status, all) = get(
        &sb,
        &token,
        &format!("/commerce/order/1.1/ListOrders3?fromDate={from}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["ItemCount"], 20);
    assert_eq!(all["Items"].as_array().unwrap().len(), 20);

    let mut seen = Vec::new();
    for page_no in 1..=4 {
        let (_, page) = get(
            &sb,
            &token,
            &format!("/commerce/order/1.1/ListOrders3?fromDate={from}&pageNo={page_no}&pageSize=6"),
        )
        .await;
        assert_eq!(page["ItemCount"], 20, "ItemCount is the total");
        seen.extend(
            page["Items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["Id"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(seen.len(), 20);
    let (_, beyond) = get(
        &sb,
        &token,
        &format!("/commerce/order/1.1/ListOrders3?fromDate={from}&pageNo=5&pageSize=6"),
    )
    .await;
    assert_eq!(beyond["Items"].as_array().unwrap().len(), 0);

    // A narrow date range and a customer.
    let (_, window) = get(
        &sb,
        &token,
        "/commerce/order/1.1/ListOrders3?fromDate=2026-03-01T08:00:00Z&toDate=2026-03-02T08:00:00Z",
    )
    .await;
    let count = window["ItemCount"].as_i64().unwrap();
    assert!(count > 0 && count < 20, "{count}");
    let customer = all["Items"][0]["SellTo"]["Customer"]["Id"]
        .as_i64()
        .unwrap();
    let (_, mine) = get(
        &sb,
        &token,
        &format!("/commerce/order/1.1/ListOrders3?customerId={customer}"),
    )
    .await;
    assert!(
        mine["Items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["SellTo"]["Customer"]["Id"] == customer)
    );

    let (status, body) = get(
        &sb,
        &token,
        "/commerce/order/1.1/ListOrders3?fromDate=yesterday",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("fromDate"), "{body}");
}

#[tokio::test]
async fn list_orders3_reads_company_and_customer_ids_as_strings() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let (_, all) = get(
        &sb,
        &token,
        "/commerce/order/1.1/ListOrders3?fromDate=2026-02-27T00:00:00.000Z",
    )
    .await;
    let customer = all["Items"][0]["SellTo"]["Customer"]["Id"]
        .as_i64()
        .unwrap();
    // Norce's spec types both as strings: padded digits are still the id.
    let (status, mine) = get(
        &sb,
        &token,
        &format!("/commerce/order/1.1/ListOrders3?customerId=%20{customer}%20"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert!(mine["ItemCount"].as_i64().unwrap() > 0, "{mine}");
    // A company id is accepted; the sandbox has no company orders.
    let (status, company) = get(
        &sb,
        &token,
        "/commerce/order/1.1/ListOrders3?companyId=2001",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{company}");
    assert_eq!(company["ItemCount"], 0);
    // Not an id: 400 naming the parameter.
    for (name, value) in [("customerId", "anna"), ("companyId", "1.5")] {
        let (status, body) = get(
            &sb,
            &token,
            &format!("/commerce/order/1.1/ListOrders3?{name}={value}"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert!(body.to_string().contains(name), "{body}");
    }
    // Blank is no filter at all, so the at-least-one rule applies.
    let (status, body) = get(
        &sb,
        &token,
        "/commerce/order/1.1/ListOrders3?customerId=&companyId=%20",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("At least one"), "{body}");
}

#[tokio::test]
async fn get_order_returns_the_full_order() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let (status, order) = get(
        &sb,
        &token,
        "/commerce/order/1.1/GetOrder?id=100001&format=json",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["Id"], "100001");
    assert_eq!(order["OrderNo"], "NC-100001");
    assert_eq!(order["Status"], "Created");
    assert!(order["OrderDate"].as_str().unwrap().starts_with("/Date("));
    assert!(!order["Items"].as_array().unwrap().is_empty());
    assert!(order["ShipTo"]["Address"]["City"].is_string());
    let (status, _) = get(&sb, &token, "/commerce/order/1.1/GetOrder?id=999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = get(&sb, &token, "/commerce/order/1.1/GetOrder").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("id"), "{body}");
}

#[tokio::test]
async fn list_products2_pages_and_sorts() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let (status, page) = get(
        &sb,
        &token,
        "/commerce/product/1.1/ListProducts2?statusSeed=1,3&pageNo=2&pageSize=10&sort=Price%20Desc",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["ItemCount"], 50);
    let items = page["Items"].as_array().unwrap();
    assert_eq!(items.len(), 10);
    let prices: Vec<f64> = items.iter().map(|i| i["Price"].as_f64().unwrap()).collect();
    assert!(prices.windows(2).all(|w| w[0] >= w[1]), "{prices:?}");
    assert!(items[0]["PartNo"].as_str().unwrap().starts_with("SKU-"));
    assert_eq!(
        get(
            &sb,
            &token,
            "/commerce/product/1.1/ListProducts2?sort=Colour"
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
}

// ---------------------------------------------------------------------------------------------
// Query

#[tokio::test]
async fn query_orders_filters_orders_and_pages_with_next_link() {
    let config = SandboxConfig {
        norce: NorceConfig {
            query_page_size: 7,
            ..NorceConfig::default()
        },
        ..SandboxConfig::default()
    };
    let sb = common::start_with(config).await;
    let token = token(&sb).await;

    // Server paging: follow @odata.nextLink (absolute, on the sandbox) until it is absent.
    let (status, mut page) =
        get(&sb, &token, "/commerce/query/3.0/Orders/Orders?$count=true").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["@odata.count"], 20);
    let mut ids: Vec<i64> = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        ids.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_i64().unwrap()),
        );
        let Some(next) = page["@odata.nextLink"].as_str().map(str::to_owned) else {
            break;
        };
        assert!(next.starts_with(&sb.base_url()), "{next}");
        page = get(&sb, &token, &next).await.1;
    }
    assert_eq!(pages, 3);
    assert_eq!(ids, (100_001..=100_020).collect::<Vec<_>>());

    // $filter on dates and ids, $orderby, $top, $skip.
    let filter = "orderDate ge 2026-03-01T08:00:00Z and id ne 100020";
    let url = format!(
        "/commerce/query/3.0/Orders/Orders?$filter={}&$orderby=orderDate%20desc",
        filter.replace(' ', "%20")
    );
    let (_, filtered) = get(&sb, &token, &url).await;
    let values = filtered["value"].as_array().unwrap();
    assert!(!values.is_empty());
    let dates: Vec<&str> = values
        .iter()
        .map(|o| o["orderDate"].as_str().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{dates:?}");
    assert!(
        values.iter().all(
            |o| o["id"] != 100_020 && o["orderDate"].as_str().unwrap() >= "2026-03-01T08:00:00"
        )
    );

    let (_, top) = get(
        &sb,
        &token,
        "/commerce/query/3.0/Orders/Orders?$filter=id%20gt%20100005&$orderby=id&$top=3&$skip=2",
    )
    .await;
    let top_ids: Vec<i64> = top["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    assert_eq!(top_ids, vec![100_008, 100_009, 100_010]);
    assert!(
        top.get("@odata.nextLink").is_none(),
        "$top within one page needs no next link"
    );

    let (_, paged_top) = get(&sb, &token, "/commerce/query/3.0/Orders/Orders?$top=10").await;
    let next = paged_top["@odata.nextLink"].as_str().unwrap().to_owned();
    let (_, rest) = get(&sb, &token, &next).await;
    assert_eq!(
        rest["value"].as_array().unwrap().len(),
        3,
        "$top caps the pages: {next}"
    );
    assert!(rest.get("@odata.nextLink").is_none());

    let (_, selected) = get(
        &sb,
        &token,
        "/commerce/query/3.0/Orders/Orders?$select=id,statusId&$top=1&$expand=orderItem",
    )
    .await;
    let first = selected["value"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, vec!["id", "orderItem", "statusId"]);

    // The navigations of the spec; names Query does not have are refused as Query refuses them.
    let (_, expanded) = get(
        &sb,
        &token,
        "/commerce/query/3.0/Orders/Orders?$top=1&$expand=orderItem,shipToCustomerInfo,buyerCustomerInfo",
    )
    .await;
    let order = &expanded["value"][0];
    assert!(
        order["orderItem"][0]["vatRate"] == 25,
        "Query VAT is percent: {order}"
    );
    assert!(
        order["shipToCustomerInfo"]["addressLine1"].is_string(),
        "{order}"
    );
    assert!(
        order["buyerCustomerInfo"]["emailAddress"].is_string(),
        "{order}"
    );
    for (expand, unknown) in [
        ("items", "items"),
        ("addresses", "addresses"),
        ("deliveryNotes", "deliveryNotes"),
        ("deliveryNote($expand=packages)", "packages"),
    ] {
        let (status, body) = get(
            &sb,
            &token,
            &format!("/commerce/query/3.0/Orders/Orders?$top=1&$expand={expand}"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{expand}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("'{unknown}'")),
            "{expand}: {message}"
        );
    }

    // Bad $filter: 400 with an OData error.
    for bad in [
        "colour%20eq%20'red'",
        "id%20gt",
        "orderDate%20gt%2042",
        "id%20eq%201%20or",
    ] {
        let (status, body) = get(
            &sb,
            &token,
            &format!("/commerce/query/3.0/Orders/Orders?$filter={bad}"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    assert_eq!(
        get(
            &sb,
            &token,
            "/commerce/query/3.0/Orders/Orders?$orderby=colour"
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&sb, &token, "/commerce/query/3.0/Orders/Orders?$top=-1")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

// ---------------------------------------------------------------------------------------------
// Connect

#[tokio::test]
async fn connect_header_is_required_and_validated() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let rows = json!([{"PartNo": "SKU-00001", "WarehouseCode": "WH1", "LocationCode": "WH1", "OnhandValue": 5}]);
    let path = "/commerce/connect/4.0/Product/ImportOnhands";
    let cases: [(Option<&str>, &str); 7] = [
        (None, "X-StormConnect-Header"),
        (Some("{not json"), "X-StormConnect-Header"),
        (
            Some(r#"{"FullFile":false,"SkuOnhandFieldsThatAreSet":[3]}"#),
            "AccountId",
        ),
        (
            Some(r#"{"AccountId":99,"FullFile":false,"SkuOnhandFieldsThatAreSet":[3]}"#),
            "AccountId",
        ),
        (
            Some(r#"{"AccountId":1,"FullFile":false}"#),
            "SkuOnhandFieldsThatAreSet",
        ),
        (
            Some(r#"{"AccountId":1,"FullFile":false,"SkuOnhandFieldsThatAreSet":[]}"#),
            "SkuOnhandFieldsThatAreSet",
        ),
        (
            Some(r#"{"AccountId":1,"FullFile":false,"SkuOnhandFieldsThatAreSet":[7]}"#),
            "SkuOnhandFieldsThatAreSet",
        ),
    ];
    for (header, named) in cases {
        let (status, body) = post(&sb, &token, path, header, rows.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{header:?}: {body}");
        assert!(
            body["Message"].as_str().unwrap().contains(named),
            "{header:?} should name {named}: {body}"
        );
    }
    // A price header on the on-hand import lacks the on-hand field list.
    let (status, body) = post(&sb, &token, path, Some(PRICE_HEADER), rows.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("SkuOnhandFieldsThatAreSet"),
        "{body}"
    );
    // A body the spec rejects names the field.
    let (status, body) = post(
        &sb,
        &token,
        path,
        Some(ONHAND_HEADER),
        json!([{"PartNo": "SKU-00001", "WarehouseCode": "WH1"}]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["Message"].as_str().unwrap().contains("LocationCode"),
        "{body}"
    );
    // Codes or names both work.
    for header in [
        ONHAND_HEADER,
        r#"{"AccountId":1,"FullFile":false,"SkuOnhandFieldsThatAreSet":["OnhandValue"]}"#,
    ] {
        let (status, body) = post(&sb, &token, path, Some(header), rows.clone()).await;
        assert_eq!(status, StatusCode::OK, "{header}: {body}");
    }
}

/// A POST without the `ApplicationId` header (Norce's Connect samples send none).
async fn post_without_application_id(
    sb: &Sandbox,
    token: &str,
    path: &str,
    connect_header: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = common::http()
        .post(format!("{}{path}", sb.base_url()))
        .bearer_auth(token)
        .json(&body);
    if let Some(h) = connect_header {
        request = request.header("X-StormConnect-Header", h);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn connect_calls_do_not_need_the_application_id_header() {
    let sb = common::start().await;
    let token = token(&sb).await;
    // Order methods, an import and the job calls all succeed without the header.
    let (status, body) = post_without_application_id(
        &sb,
        &token,
        "/commerce/connect/4.0/Order/SendOrderStatus",
        None,
        json!({"ClientOrderRef": 400001, "ErpOrderNo": "SO-1", "OrderStatus": "Acknowledged"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post_without_application_id(
        &sb,
        &token,
        "/commerce/connect/4.0/Order/CancelOrder",
        None,
        json!({"ClientOrderRef": 400002}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, job) = post_without_application_id(
        &sb,
        &token,
        "/commerce/connect/4.0/Product/ImportOnhands",
        Some(ONHAND_HEADER),
        json!([{"PartNo": "SKU-00001", "WarehouseCode": "WH1", "LocationCode": "WH1", "OnhandValue": 5}]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let job_id = job["JobId"].as_str().unwrap().to_owned();
    for path in ["Job/Get", "Job/GetLog"] {
        let response = common::http()
            .get(format!(
                "{}/commerce/connect/4.0/{path}?id={job_id}",
                sb.base_url()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    // A malformed value is still refused, naming the header.
    let response = common::http()
        .get(format!(
            "{}/commerce/connect/4.0/Job/Get?id={job_id}",
            sb.base_url()
        ))
        .bearer_auth(&token)
        .header("ApplicationId", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("ApplicationId"));

    // A tenant that does demand it is still simulated when configured.
    let strict = common::start_with(SandboxConfig {
        norce: NorceConfig {
            connect_requires_application_id: true,
            ..NorceConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let strict_token = crate::token(&strict).await;
    let (status, body) = post_without_application_id(
        &strict,
        &strict_token,
        "/commerce/connect/4.0/Order/CancelOrder",
        None,
        json!({"ClientOrderRef": 400002}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["Message"].as_str().unwrap().contains("ApplicationId"));
}

#[tokio::test]
async fn ignore_fields_when_empty_follow_norces_rules() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let path = "/commerce/connect/4.0/Product/ImportSkuPriceLists";
    let rows = json!([{"PartNo": "SKU-00001", "PriceListCode": "SE-B2C", "CurrencyCode": "SEK", "PriceSale": 199, "PriceRule": 2}]);
    // Refused like any other bad header: 400 naming the list and the field.
    let cases = [
        // PriceRule is set, but may not be listed (by name or by its code 12).
        (
            r#"{"AccountId":1,"FullFile":false,"SkuPriceListFieldsThatAreSet":["PriceSale","PriceRule"],"IgnoreSkuPriceListFieldsWhenEmpty":["PriceRule"]}"#,
            "PriceRule",
        ),
        (
            r#"{"AccountId":1,"FullFile":false,"SkuPriceListFieldsThatAreSet":[3,12],"IgnoreSkuPriceListFieldsWhenEmpty":[12]}"#,
            "PriceRule",
        ),
        // Allowed, but not in SkuPriceListFieldsThatAreSet.
        (
            r#"{"AccountId":1,"FullFile":false,"SkuPriceListFieldsThatAreSet":[3],"IgnoreSkuPriceListFieldsWhenEmpty":["PriceCatalog"]}"#,
            "PriceCatalog",
        ),
        // Not a field at all.
        (
            r#"{"AccountId":1,"FullFile":false,"SkuPriceListFieldsThatAreSet":[3],"IgnoreSkuPriceListFieldsWhenEmpty":[99]}"#,
            "99",
        ),
    ];
    for (header, field) in cases {
        let (status, body) = post(&sb, &token, path, Some(header), rows.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{header}: {body}");
        let message = body["Message"].as_str().unwrap();
        assert!(
            message.contains("X-StormConnect-Header")
                && message.contains("IgnoreSkuPriceListFieldsWhenEmpty")
                && message.contains(&format!("`{field}`")),
            "{header}: {message}"
        );
    }
    // Every allowed field that is also set is accepted, by name or code.
    for header in [
        r#"{"AccountId":1,"FullFile":false,"SkuPriceListFieldsThatAreSet":["PriceSale","PriceRule"],"IgnoreSkuPriceListFieldsWhenEmpty":["PriceSale"]}"#,
        r#"{"AccountId":1,"FullFile":false,"SkuPriceListFieldsThatAreSet":[3,4,5,6,7,8,10],"IgnoreSkuPriceListFieldsWhenEmpty":[3,4,5,6,7,8,10]}"#,
    ] {
        let (status, body) = post(&sb, &token, path, Some(header), rows.clone()).await;
        assert_eq!(status, StatusCode::OK, "{header}: {body}");
    }
}

#[tokio::test]
async fn cancel_order_payments_carry_the_documented_fields() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let cancel = "/commerce/connect/4.0/Order/CancelOrder";
    let payment = json!({
        "PaymentCode": 3, "PaymentMethodCode": "KLARNA", "PaymentRef": "kl-400004",
        "AdditionalInfo": [{"Code": "x", "Code2": "KlarnaReference", "Id": 7, "Value": "4711"}],
        "Amount": 349, "CurrencyCode": "SEK", "PaymentName": "Card"
    });
    let (status, body) = post(
        &sb,
        &token,
        cancel,
        None,
        json!({"ClientOrderRef": 400004, "ErpOrderNo": "", "Payments": [payment]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        get(&sb, &token, "/commerce/order/1.1/GetOrder?id=100004")
            .await
            .1["Status"],
        "Cancelled"
    );
    // PaymentCode is an integer in Connect; a string is a 400 about the value.
    let (status, body) = post(
        &sb,
        &token,
        cancel,
        None,
        json!({"ClientOrderRef": 400006, "Payments": [{"PaymentRef": "p", "PaymentCode": "KLARNA"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["Message"].as_str().unwrap();
    assert!(
        message.contains("\"KLARNA\"") && message.contains("expected i32"),
        "{body}"
    );
}

#[tokio::test]
async fn token_endpoint_accepts_every_documented_scope() {
    let sb = common::start().await;
    let secret = sb.credentials().norce.client_secret;
    // Current docs (playground, stage, prod), older docs (production, lab), Storm (qa).
    for scope in ["playground", "stage", "prod", "production", "lab", "qa"] {
        let response = token_request(&sb, form(&sb, &secret, scope, "client_credentials")).await;
        assert_eq!(response.status(), StatusCode::OK, "{scope}");
        assert_eq!(response.json::<Value>().await.unwrap()["scope"], scope);
    }
    // A tenant that takes only the current values is simulated by narrowing the list.
    let narrow = common::start_with(SandboxConfig {
        norce: NorceConfig {
            accepted_scopes: vec!["playground".into(), "stage".into(), "prod".into()],
            ..NorceConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let secret = narrow.credentials().norce.client_secret;
    let response = token_request(
        &narrow,
        form(&narrow, &secret, "production", "client_credentials"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
    assert!(
        body["error_description"].as_str().unwrap().contains("prod"),
        "{body}"
    );
}

#[tokio::test]
async fn import_job_runs_asynchronously_on_the_virtual_clock() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let rows = json!([
        {"PartNo": "SKU-00001", "WarehouseCode": "WH1", "LocationCode": "WH1", "OnhandValue": 77},
        {"PartNo": "NO-SUCH-SKU", "WarehouseCode": "WH1", "LocationCode": "WH1", "OnhandValue": 3},
    ]);
    let (status, job) = post(
        &sb,
        &token,
        "/commerce/connect/4.0/Product/ImportOnhands",
        Some(ONHAND_HEADER),
        rows,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    let job_id = job["JobId"].as_str().unwrap().to_owned();
    assert_eq!(job["ValidationSummary"]["NrOfItemsInTotal"], 2);
    assert_eq!(job["ValidationSummary"]["NrOfValidationFailures"], 1);
    assert!(
        job["ValidationSummary"]["Messages"][0]
            .as_str()
            .unwrap()
            .contains("NO-SUCH-SKU")
    );

    let (status, pending) = get(
        &sb,
        &token,
        &format!("/commerce/connect/4.0/Job/Get?id={job_id}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    assert_eq!(pending["StatusId"], 1);
    assert_eq!(pending["IsFinished"], false);
    let before = admin(&sb, "/onhands?partNo=SKU-00001&warehouseCode=WH1").await;
    assert_ne!(
        before["onhands"][0]["onhandValue"], "77",
        "nothing is applied before the job runs"
    );

    advance(&sb, 5);
    let (_, done) = get(
        &sb,
        &token,
        &format!("/commerce/connect/4.0/Job/Get?id={job_id}"),
    )
    .await;
    assert_eq!(done["StatusId"], 2, "{done}");
    assert_eq!(done["IsFinished"], true);
    assert_eq!(done["Totals"], 2);
    assert_eq!(done["Updates"], 1);
    assert_eq!(done["Fail"], 1);
    let (_, log) = get(
        &sb,
        &token,
        &format!("/commerce/connect/4.0/Job/GetLog?id={job_id}"),
    )
    .await;
    let messages: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.first(), Some(&"Starting import."));
    assert!(messages.last().unwrap().starts_with("Import finished."));
    assert!(
        messages.iter().any(|m| m.contains("NO-SUCH-SKU")),
        "{messages:?}"
    );

    let after = admin(&sb, "/onhands?partNo=SKU-00001&warehouseCode=WH1").await;
    assert_eq!(after["onhands"][0]["onhandValue"], "77");
    let (_, products) = get(
        &sb,
        &token,
        "/commerce/product/1.1/ListProducts2?searchString=SKU-00001",
    )
    .await;
    assert!(products["Items"][0]["OnHand"]["Value"].as_f64().unwrap() >= 77.0);
    assert_eq!(
        get(&sb, &token, "/commerce/connect/4.0/Job/Get?id=42")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn null_or_zero_prices_do_not_overwrite() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let before = admin(&sb, "/prices?partNo=SKU-00001&priceListCode=SE-B2C").await;
    let sale = before["prices"][0]["priceSale"].clone();
    let cost = before["prices"][0]["costPurchase"].clone();
    assert!(sale.is_string());
    let rows = json!([
        {"PartNo": "SKU-00001", "PriceListCode": "SE-B2C", "PriceSale": null, "CostPurchase": 0, "PriceRecommended": 199.5, "CurrencyCode": "SEK"},
        {"PartNo": "SKU-00002", "PriceListCode": "SE-B2C", "PriceSale": 123.4567, "CurrencyCode": "SEK"},
        {"PartNo": "SKU-00003", "PriceListCode": "SE-B2C", "PriceSale": 10, "CurrencyCode": "EUR"},
        {"PartNo": "SKU-00004", "PriceListCode": "NO-SUCH-LIST", "PriceSale": 10},
    ]);
    let (status, job) = post(
        &sb,
        &token,
        "/commerce/connect/4.0/Product/ImportSkuPriceLists",
        Some(PRICE_HEADER),
        rows,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(
        job["ValidationSummary"]["NrOfValidationFailures"], 2,
        "{job}"
    );
    advance(&sb, 10);
    let (_, done) = get(
        &sb,
        &token,
        &format!(
            "/commerce/connect/4.0/Job/Get?id={}",
            job["JobId"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(done["StatusId"], 2);
    let after = admin(&sb, "/prices?partNo=SKU-00001&priceListCode=SE-B2C").await;
    assert_eq!(
        after["prices"][0]["priceSale"], sale,
        "null does not overwrite"
    );
    assert_eq!(
        after["prices"][0]["costPurchase"], cost,
        "0 does not overwrite"
    );
    assert_eq!(after["prices"][0]["priceRecommended"], "199.5");
    let other = admin(&sb, "/prices?partNo=SKU-00002").await;
    assert_eq!(other["prices"][0]["priceSale"], "123.4567");
}

#[tokio::test]
async fn delivery_note_shows_on_the_order() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let note = json!({
        "OrderNo": "NC-100002",
        "NoteNo": "DN-1",
        "DeliveryDate": "2026-03-02T10:00:00Z",
        "DeliveryMode": "POSTNORD_HOME",
        "DeliverynoteItems": [{"RowNumber": 1, "ItemNo": "SKU-00001", "Qty": 1}],
        "DeliveryNotePackages": [{"ParcelNumber": "00370730253012345678", "StatusId": 11}],
    });
    let (status, body) = post(
        &sb,
        &token,
        "/commerce/connect/4.0/Order/CreateDeliveryNote",
        None,
        note,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, order) = get(&sb, &token, "/commerce/order/1.1/GetOrder?id=100002").await;
    let notes = order["DeliveryNotes"].as_array().unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["NoteNo"], "DN-1");
    assert_eq!(
        notes[0]["Packages"][0]["ParcelNumber"],
        "00370730253012345678"
    );
    assert_eq!(
        notes[0]["Items"].as_array().unwrap().len(),
        1,
        "the sample's `DeliverynoteItems` spelling is accepted"
    );

    let (_, q) = get(
        &sb,
        &token,
        "/commerce/query/3.0/Orders/Orders?$filter=id%20eq%20100002&$expand=deliveryNote($expand=deliveryNoteItem,deliveryNotePackage)",
    )
    .await;
    assert_eq!(
        q["value"][0]["deliveryNote"][0]["deliveryNotePackage"][0]["parcelNumber"],
        "00370730253012345678"
    );
    assert_eq!(
        q["value"][0]["deliveryNote"][0]["deliveryNotePackage"][0]["statusId"],
        11
    );
    assert!(
        q["value"][0]["deliveryNote"][0]["deliveryNoteItem"][0]["partNo"].is_string(),
        "{q}"
    );

    let notes = admin(&sb, "/delivery-notes?orderNo=NC-100002").await;
    assert_eq!(notes.as_array().unwrap().len(), 1);
    let package_id = notes[0]["packages"][0]["id"].clone();

    // The same NoteNo again replaces the note: the parcel keeps its package id, gets the new
    // status, and a new parcel gets a new id.
    let resent = json!({
        "OrderNo": "NC-100002",
        "NoteNo": "DN-1",
        "DeliveryDate": "2026-03-02T10:00:00Z",
        "DeliveryNoteItems": [{"RowNumber": 1, "ItemNo": "SKU-00001", "Qty": 1}],
        "DeliveryNotePackages": [
            {"ParcelNumber": "00370730253012345678", "StatusId": 4},
            {"ParcelNumber": "00370730253012345679"}
        ],
    });
    let (status, body) = post(
        &sb,
        &token,
        "/commerce/connect/4.0/Order/CreateDeliveryNote",
        None,
        resent,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let notes = admin(&sb, "/delivery-notes?orderNo=NC-100002").await;
    assert_eq!(notes.as_array().unwrap().len(), 1, "{notes}");
    let packages = notes[0]["packages"].as_array().unwrap();
    assert_eq!(
        (&packages[0]["id"], &packages[0]["statusId"]),
        (&package_id, &json!(4)),
        "{notes}"
    );
    assert_ne!(packages[1]["id"], package_id);

    let (status, body) = post(
        &sb,
        &token,
        "/commerce/connect/4.0/Order/CreateDeliveryNote",
        None,
        json!({"OrderNo": "NC-1", "NoteNo": "X", "DeliveryDate": "2026-03-02T10:00:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = post(
        &sb,
        &token,
        "/commerce/connect/4.0/Order/CreateDeliveryNote",
        None,
        json!({"OrderNo": "NC-100002", "NoteNo": "X"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["Message"].as_str().unwrap().contains("DeliveryDate"),
        "{body}"
    );
}

#[tokio::test]
async fn send_order_status_and_cancel() {
    let sb = common::start().await;
    let token = token(&sb).await;
    let path = "/commerce/connect/4.0/Order/SendOrderStatus";
    let (status, body) = post(
        &sb,
        &token,
        path,
        None,
        json!({"ClientOrderRef": 400001, "ErpOrderNo": "SO-1", "OrderStatus": "Acknowledged"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, order) = get(&sb, &token, "/commerce/order/1.1/GetOrder?id=100001").await;
    assert_eq!(order["Status"], "Confirmed");
    assert_eq!(order["Info"][0]["Value"], "SO-1");
    let (_, q) = get(
        &sb,
        &token,
        "/commerce/query/3.0/Orders/Orders?$filter=id%20eq%20100001",
    )
    .await;
    assert_eq!(q["value"][0]["statusId"], 2);
    // Matched by the ERP number from now on.
    let (status, _) = post(
        &sb,
        &token,
        path,
        None,
        json!({"ErpOrderNo": "SO-1", "OrderStatus": "PartlyDelivered"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get(&sb, &token, "/commerce/order/1.1/GetOrder?id=100001")
            .await
            .1["Status"],
        "PartlyDelivered"
    );

    let (status, body) = post(
        &sb,
        &token,
        path,
        None,
        json!({"ClientOrderRef": 400001, "OrderStatus": "Teleported"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["Message"].as_str().unwrap().contains("OrderStatus"));
    let (status, _) = post(
        &sb,
        &token,
        path,
        None,
        json!({"ClientOrderRef": 1, "OrderStatus": "Confirmed"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = post(&sb, &token, path, None, json!({"ClientOrderRef": 400001})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["Message"].as_str().unwrap().contains("OrderStatus"),
        "{body}"
    );

    // Cancel.
    let cancel = "/commerce/connect/4.0/Order/CancelOrder";
    let (status, body) = post(
        &sb,
        &token,
        cancel,
        None,
        json!({"ClientOrderRef": 400003, "Payments": [{"PaymentRef": "psp-400003"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        get(&sb, &token, "/commerce/order/1.1/GetOrder?id=100003")
            .await
            .1["Status"],
        "Cancelled"
    );
    let (_, q) = get(
        &sb,
        &token,
        "/commerce/query/3.0/Orders/Orders?$filter=statusId%20eq%206",
    )
    .await;
    assert_eq!(q["value"].as_array().unwrap().len(), 1);
    let (status, _) = post(
        &sb,
        &token,
        path,
        None,
        json!({"ClientOrderRef": 400003, "OrderStatus": "Delivered"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a cancelled order stays cancelled"
    );
    // The seeded delivered order (every 5th) cannot be cancelled.
    let (status, _) = post(
        &sb,
        &token,
        cancel,
        None,
        json!({"ErpOrderNo": "ERP-100005"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&sb, &token, cancel, None, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn seeded_state_is_deterministic_with_parcels_on_delivered_orders() {
    let a = common::start().await;
    let b = common::start().await;
    let order_a = admin(&a, "/orders/100005").await;
    let order_b = admin(&b, "/orders/100005").await;
    assert_eq!(order_a["status"], "Delivered");
    let parcel = order_a["deliveryNotes"][0]["packages"][0]["parcelNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(parcel.len(), 20);
    assert_eq!(
        order_b["deliveryNotes"][0]["packages"][0]["parcelNumber"],
        parcel.as_str()
    );
    let signature = |t: String| t.rsplit('.').next().unwrap().to_owned();
    assert_eq!(
        signature(token(&a).await),
        signature(token(&b).await),
        "tokens come from the seeded RNG"
    );
    let onhands = admin(&a, "/onhands").await;
    assert_eq!(onhands["locations"].as_array().unwrap().len(), 2);
    assert_eq!(onhands["onhands"].as_array().unwrap().len(), 100);
}

// ---------------------------------------------------------------------------------------------
// pushes

#[tokio::test]
async fn order_receiver_gets_basic_auth_and_is_retried_after_a_500() {
    let (url, mut rx) = receiver(vec![500]).await;
    let norce = NorceConfig {
        order_receiver: Some(OrderReceiverConfig {
            url: format!("{url}/norce/order-receiver"),
            username: "erp".into(),
            password: "hunter2".into(),
        }),
        push_time_factor: 0.001,
        ..NorceConfig::default()
    };
    let sb = with_norce(norce).await;
    let created = common::http()
        .post(format!("{}/_sandbox/norce/orders", sb.base_url()))
        .json(&json!({"customerId": 5001, "lines": [{"sku": "SKU-00007", "quantity": 2}], "deliveryMethod": "POSTNORD_PICKUP", "pickupPoint": "1234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let order: Value = created.json().await.unwrap();
    assert_eq!(order["id"], 100_021);

    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("erp:hunter2")
    );
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    for push in [&first, &second] {
        assert_eq!(push.path, "/norce/order-receiver");
        assert_eq!(
            push.headers.get("authorization").unwrap().to_str().unwrap(),
            expected
        );
        assert_eq!(
            push.body["ClientOrderRef"],
            order["clientOrderRef"].to_string()
        );
        assert_eq!(push.body["Items"][0]["PartNo"], "SKU-00007");
        assert_eq!(push.body["ShippingAdvice"]["PickupStore"]["Code"], "1234");
    }
    let pushes = wait_for_pushes(&sb, |p| p.iter().any(|x| x["state"] == "delivered")).await;
    let receiver_push = pushes
        .iter()
        .find(|p| p["kind"] == "order-receiver")
        .unwrap();
    let statuses: Vec<i64> = receiver_push["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, vec![500, 200]);
    assert!(
        !receiver_push.to_string().contains("hunter2"),
        "the password is never shown"
    );
    // The receiver's OrderResponse ErpOrderNo is stored on the order.
    assert_eq!(admin(&sb, "/orders/100021").await["erpOrderNo"], "BP-9001");
    // The new order is visible through the APIs.
    let token = token(&sb).await;
    assert_eq!(
        get(&sb, &token, "/commerce/order/1.1/GetOrder?id=100021")
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn event_webhooks_carry_the_static_headers() {
    let (url, mut rx) = receiver(vec![503]).await;
    let headers: BTreeMap<String, String> =
        [("X-Norce-Secret".to_owned(), "s3cret".to_owned())].into();
    let hook = |event: &str| WebhookConfig {
        event_type: event.into(),
        url: format!("{url}/norce/events/{event}"),
        headers: headers.clone(),
    };
    let norce = NorceConfig {
        webhooks: vec![
            hook("OrderReceivedEvent"),
            hook("OrderConfirmedEvent"),
            hook("JobCompletedEvent"),
        ],
        push_time_factor: 0.001,
        ..NorceConfig::default()
    };
    let sb = with_norce(norce).await;

    // A new order: OrderReceivedEvent (first attempt 503, then retried).
    let created = common::http()
        .post(format!("{}/_sandbox/norce/orders", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let order: Value = created.json().await.unwrap();
    for _ in 0..2 {
        let event = next(&mut rx).await;
        assert_eq!(event.path, "/norce/events/OrderReceivedEvent");
        assert_eq!(event.headers.get("x-norce-secret").unwrap(), "s3cret");
        // The documented OrderReceivedEvent: the basket and the buyer, no OrderId or OrderNo.
        assert!(
            event.body.get("OrderId").is_none() && event.body.get("OrderNo").is_none(),
            "{}",
            event.body
        );
        assert_eq!(
            event.body["ClientOrderRef"],
            order["clientOrderRef"].to_string()
        );
        assert_eq!(event.body["Source"], "WEB");
        assert_eq!(event.body["ClientId"], 1000);
    }

    // Confirming the order: OrderConfirmedEvent, once.
    let token = token(&sb).await;
    let status = json!({"ClientOrderRef": order["clientOrderRef"], "OrderStatus": "Confirmed"});
    assert_eq!(
        post(
            &sb,
            &token,
            "/commerce/connect/4.0/Order/SendOrderStatus",
            None,
            status.clone()
        )
        .await
        .0,
        StatusCode::OK
    );
    let event = next(&mut rx).await;
    assert_eq!(event.path, "/norce/events/OrderConfirmedEvent");

    // A finished import: JobCompletedEvent.
    let rows = json!([{"PartNo": "SKU-00001", "WarehouseCode": "WH2", "LocationCode": "WH2", "OnhandValue": 1}]);
    let (_, job) = post(
        &sb,
        &token,
        "/commerce/connect/4.0/Product/ImportOnhands",
        Some(ONHAND_HEADER),
        rows,
    )
    .await;
    advance(&sb, 5);
    let _ = get(
        &sb,
        &token,
        &format!(
            "/commerce/connect/4.0/Job/Get?id={}",
            job["JobId"].as_str().unwrap()
        ),
    )
    .await;
    let event = next(&mut rx).await;
    assert_eq!(event.path, "/norce/events/JobCompletedEvent");
    assert_eq!(event.headers.get("x-norce-secret").unwrap(), "s3cret");
    assert_eq!(
        event.body["JobId"].to_string(),
        job["JobId"].as_str().unwrap()
    );
    assert_eq!(event.body["StatusId"], 2);

    // Confirming again raises no second OrderConfirmedEvent.
    assert_eq!(
        post(
            &sb,
            &token,
            "/commerce/connect/4.0/Order/SendOrderStatus",
            None,
            status
        )
        .await
        .0,
        StatusCode::OK
    );
    let pushes = wait_for_pushes(&sb, |p| p.iter().all(|x| x["state"] == "delivered")).await;
    assert_eq!(
        pushes
            .iter()
            .filter(|p| p["eventType"] == "OrderConfirmedEvent")
            .count(),
        1
    );
    assert!(
        pushes.iter().all(|p| !p.to_string().contains("s3cret")),
        "header values are never shown"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .is_err(),
        "nothing else was pushed"
    );
}

#[tokio::test]
async fn nothing_is_pushed_without_configured_urls() {
    let sb = common::start().await;
    let created = common::http()
        .post(format!("{}/_sandbox/norce/orders", sb.base_url()))
        .json(&json!({"lines": [{"sku": "SKU-00001"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(admin(&sb, "/pushes").await.as_array().unwrap().len(), 0);
    let bad = common::http()
        .post(format!("{}/_sandbox/norce/orders", sb.base_url()))
        .json(&json!({"lines": [{"sku": "NOPE"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_shop_cancels_an_order_once_with_its_event_but_not_an_invoiced_one() {
    let (url, mut rx) = receiver(vec![]).await;
    let norce = NorceConfig {
        webhooks: vec![WebhookConfig {
            event_type: "OrderCancelledEvent".into(),
            url: format!("{url}/norce/events/OrderCancelledEvent"),
            headers: BTreeMap::new(),
        }],
        push_time_factor: 0.001,
        ..NorceConfig::default()
    };
    let sb = with_norce(norce).await;
    let orders = admin(&sb, "/orders").await;
    let open = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["status"] == "Created")
        .expect("an open order")
        .clone();
    let cancel = |id: String| {
        let base = sb.base_url();
        async move {
            common::http()
                .post(format!("{base}/_sandbox/norce/orders/{id}/cancel"))
                .send()
                .await
                .unwrap()
        }
    };
    let number = open["orderNo"].as_str().unwrap().to_owned();
    let answer = cancel(number.clone()).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let cancelled: Value = answer.json().await.unwrap();
    assert_eq!(cancelled["status"], "Cancelled");
    assert_ne!(cancelled["updated"], open["updated"], "{cancelled}");
    let event = next(&mut rx).await;
    assert_eq!(event.path, "/norce/events/OrderCancelledEvent");
    assert_eq!(event.body["OrderNo"], number.as_str());
    // Again: the same answer, no second event.
    assert_eq!(cancel(number).await.status(), StatusCode::OK);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .is_err(),
        "one event for one cancellation"
    );
    // A delivered order (its label booked) can be; an invoiced one cannot; an unknown one is
    // not found.
    let delivered = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["status"] == "Delivered")
        .expect("the dataset seeds delivered orders");
    assert_eq!(
        cancel(delivered["id"].to_string()).await.status(),
        StatusCode::OK
    );
    let other = orders
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["status"] == "Created" && o["orderNo"] != open["orderNo"])
        .expect("another open order");
    let token = token(&sb).await;
    let invoiced = json!({"ClientOrderRef": other["clientOrderRef"], "OrderStatus": "Invoiced"});
    let (status, _) = post(
        &sb,
        &token,
        "/commerce/connect/4.0/Order/SendOrderStatus",
        None,
        invoiced,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let answer = cancel(other["id"].to_string()).await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    assert!(answer.text().await.unwrap().contains("cannot be cancelled"));
    assert_eq!(
        cancel("NOPE-1".into()).await.status(),
        StatusCode::NOT_FOUND
    );
}
