//! Black-box tests of spec drift (`SandboxConfig::drift`, `/_sandbox/drift`): successful JSON
//! answers carry the configured change at the right path, and a strict-decode report
//! (`conformance::compare` with the generated model) names each injected path.

mod common;

use base64::Engine as _;
use brightpearl_models::product::ProductListResponse;
use norce_models::query::QueryOrdersResponse;
use nshift_models::delivery::ZipcodeInfo;
use reqwest::StatusCode;
use sandbox::{DriftChange, DriftRule, Sandbox, SandboxConfig};
use serde_json::{Value, json};

const ORDERS: &str = "/commerce/query/3.0/Orders/Orders";
const ZIPCODES: &str = "/addresses/zipcodes?zip=41121&countryCode=SE";

/// The three rules of these tests: an extra field on Norce Query orders, a required field
/// removed from the Brightpearl product GET, a boolean turned into a string on nShift.
fn rules() -> Vec<DriftRule> {
    vec![
        DriftRule {
            path_prefix: ORDERS.into(),
            method: Some("GET".into()),
            change: DriftChange::Extra {
                path: "value[].extraField".into(),
                value: json!("surprise"),
            },
        },
        DriftRule {
            path_prefix: "/public-api/".into(),
            method: Some("GET".into()),
            change: DriftChange::Remove {
                path: "response[].id".into(),
            },
        },
        DriftRule {
            path_prefix: "/rs-extapi/".into(),
            method: None,
            change: DriftChange::Retype {
                path: "valid".into(),
                to: None,
            },
        },
    ]
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

async fn norce_orders(sb: &Sandbox) -> (StatusCode, Value) {
    let c = sb.credentials().norce;
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=playground",
        c.client_id, c.client_secret
    );
    let (status, token) = send(
        common::http()
            .post(format!("{}/identity/1.0/connect/token", sb.base_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    send(
        common::http()
            .get(format!("{}{ORDERS}?$top=3", sb.base_url()))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .header("ApplicationId", c.application_id.to_string()),
    )
    .await
}

async fn brightpearl_products(sb: &Sandbox) -> (StatusCode, Value) {
    let c = sb.credentials().brightpearl;
    send(
        common::http()
            .get(format!(
                "{}/public-api/{}/product-service/product/1001-1003",
                sb.base_url(),
                c.account
            ))
            .header("brightpearl-app-ref", c.app_ref)
            .header("brightpearl-staff-token", c.staff_token),
    )
    .await
}

async fn nshift_zipcode(sb: &Sandbox) -> (StatusCode, Value) {
    let c = sb.credentials().nshift;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", c.api_key_id, c.secret_id));
    send(
        common::http()
            .get(format!("{}{ZIPCODES}", c.base_url))
            .header("authorization", format!("Basic {basic}")),
    )
    .await
}

fn admin(sb: &Sandbox, method: reqwest::Method) -> reqwest::RequestBuilder {
    common::http().request(method, format!("{}/_sandbox/drift", sb.base_url()))
}

#[tokio::test]
async fn without_rules_answers_follow_the_spec() {
    let sb = common::start().await;
    assert!(sb.state().drift.rules().is_empty());

    let (status, orders) = norce_orders(&sb).await;
    assert_eq!(status, StatusCode::OK, "{orders}");
    let values = orders["value"].as_array().unwrap();
    assert_eq!(values.len(), 3);
    assert!(values.iter().all(|o| o.get("extraField").is_none()));
    let report = conformance::compare::<QueryOrdersResponse>(&orders);
    assert_eq!(report.decoded, Ok(()));
    assert!(
        !report.unknown.iter().any(|u| u.path.contains("extraField")),
        "{report:?}"
    );

    let (status, products) = brightpearl_products(&sb).await;
    assert_eq!(status, StatusCode::OK, "{products}");
    assert_eq!(products["response"][0]["id"], 1001);
    assert_eq!(
        conformance::compare::<ProductListResponse>(&products).decoded,
        Ok(())
    );

    let (status, zip) = nshift_zipcode(&sb).await;
    assert_eq!(status, StatusCode::OK, "{zip}");
    assert_eq!(zip["valid"], true);
    assert!(conformance::compare::<ZipcodeInfo>(&zip).is_clean());
}

#[tokio::test]
async fn configured_rules_change_answers_at_their_path_and_strict_decode_names_it() {
    let sb = common::start_with(SandboxConfig {
        drift: rules(),
        ..SandboxConfig::default()
    })
    .await;

    // Extra: every Norce order carries the field; the report calls it unknown.
    let (status, orders) = norce_orders(&sb).await;
    assert_eq!(status, StatusCode::OK, "{orders}");
    let values = orders["value"].as_array().unwrap();
    assert_eq!(values.len(), 3);
    assert!(
        values.iter().all(|o| o["extraField"] == "surprise"),
        "{orders}"
    );
    let report = conformance::compare::<QueryOrdersResponse>(&orders);
    assert_eq!(report.decoded, Ok(()));
    let unknown: Vec<&str> = report.unknown.iter().map(|u| u.path.as_str()).collect();
    assert!(unknown.contains(&"value[].extraField"), "{unknown:?}");

    // Remove: the products lack their required id; the report calls it missing.
    let (status, products) = brightpearl_products(&sb).await;
    assert_eq!(status, StatusCode::OK, "{products}");
    let items = products["response"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|p| p.get("id").is_none() && p.get("identity").is_some())
    );
    let report = conformance::compare::<ProductListResponse>(&products);
    assert!(report.decoded.is_err());
    assert_eq!(
        report.missing.as_deref(),
        Some("response[0].id"),
        "{report:?}"
    );

    // Retype: `valid` is a string; the report calls it mismatched.
    let (status, zip) = nshift_zipcode(&sb).await;
    assert_eq!(status, StatusCode::OK, "{zip}");
    assert_eq!(zip["valid"], "true");
    assert_eq!(zip["city"], "GÖTEBORG");
    let report = conformance::compare::<ZipcodeInfo>(&zip);
    let mismatch = report.mismatched.expect("a mismatch");
    assert_eq!(
        (mismatch.path.as_str(), mismatch.found.as_str()),
        ("valid", "string")
    );

    // Only successful answers are rewritten: a Brightpearl error keeps its body.
    sb.state()
        .drift
        .add(DriftRule {
            path_prefix: "/public-api/".into(),
            method: None,
            change: DriftChange::Extra {
                path: "drifted".into(),
                value: json!(true),
            },
        })
        .unwrap();
    assert_eq!(brightpearl_products(&sb).await.1["drifted"], true);
    let c = sb.credentials().brightpearl;
    let (status, error) = send(
        common::http()
            .get(format!(
                "{}/public-api/{}/product-service/product/9000",
                sb.base_url(),
                c.account
            ))
            .header("brightpearl-app-ref", c.app_ref)
            .header("brightpearl-staff-token", c.staff_token),
    )
    .await;
    assert!(!status.is_success(), "{status} {error}");
    assert!(error.get("drifted").is_none(), "{error}");
}

#[tokio::test]
async fn the_admin_endpoint_sets_lists_and_clears_rules() {
    let sb = common::start().await;

    // An invalid rule is refused naming the problem.
    let (status, error) = send(admin(&sb, reqwest::Method::POST).json(&json!({
        "change": {"kind": "remove", "path": "response[]"}
    })))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("must end in a key"),
        "{error}"
    );
    let (status, _) = send(admin(&sb, reqwest::Method::POST).json(&json!({
        "change": {"kind": "rename", "path": "a"}
    })))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for rule in rules() {
        let (status, list) = send(admin(&sb, reqwest::Method::POST).json(&rule)).await;
        assert_eq!(status, StatusCode::CREATED, "{list}");
    }
    let (_, list) = send(admin(&sb, reqwest::Method::GET)).await;
    let listed: Vec<DriftRule> = serde_json::from_value(list).unwrap();
    assert_eq!(listed, rules());
    assert_eq!(
        serde_json::to_value(&listed[2]).unwrap(),
        json!({"path_prefix": "/rs-extapi/", "method": null,
               "change": {"kind": "retype", "path": "valid"}})
    );

    assert_eq!(
        norce_orders(&sb).await.1["value"][0]["extraField"],
        "surprise"
    );
    assert!(
        brightpearl_products(&sb).await.1["response"][0]
            .get("id")
            .is_none()
    );
    assert_eq!(nshift_zipcode(&sb).await.1["valid"], "true");

    // The admin routes are never drifted, and clearing restores the spec.
    let (status, _) = send(admin(&sb, reqwest::Method::DELETE)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(sb.state().drift.rules().is_empty());
    assert!(
        norce_orders(&sb).await.1["value"][0]
            .get("extraField")
            .is_none()
    );
    assert_eq!(brightpearl_products(&sb).await.1["response"][0]["id"], 1001);
    assert_eq!(nshift_zipcode(&sb).await.1["valid"], true);
}
