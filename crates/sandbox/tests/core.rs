//! The sandbox's shared machinery, black-box: the binary's first line, admin routes, the
//! virtual clock, fault injection and the request log.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use sandbox::FaultRule;
use serde_json::{Value, json};

#[test]
fn binary_prints_credentials_as_its_first_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sandbox"))
        .args(["--port", "0", "--seed", "7", "--orders", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sandbox binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let json: Value = serde_json::from_str(&line).expect("first line is JSON");
    for (platform, keys) in [
        (
            "norce",
            &[
                "base_url",
                "client_id",
                "client_secret",
                "application_id",
                "scope",
            ][..],
        ),
        (
            "nshift",
            &["base_url", "api_key_id", "secret_id", "developer_id"][..],
        ),
        (
            "brightpearl",
            &[
                "base_url",
                "oauth_url",
                "account",
                "app_ref",
                "dev_ref",
                "client_id",
                "client_secret",
                "staff_token",
            ][..],
        ),
    ] {
        for key in keys {
            assert!(
                json[platform][key].is_string() || json[platform][key].is_number(),
                "{platform}.{key} in {line}"
            );
        }
    }
    let base = json["norce"]["base_url"].as_str().unwrap();
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "binds loopback by default: {base}"
    );
    assert!(
        json["nshift"]["base_url"]
            .as_str()
            .unwrap()
            .ends_with("/rs-extapi/v1")
    );
}

#[tokio::test]
async fn admin_clock_advances_and_rejects_bad_input() {
    let sb = common::start().await;
    let http = common::http();
    let url = format!("{}/_sandbox/clock", sb.base_url());
    let before: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert!(
        before["now"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-02T08:00")
    );
    let after: Value = http
        .post(format!("{url}/advance"))
        .json(&json!({"seconds": 3600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        after["now"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-02T09:00"),
        "{after}"
    );
    let bad = http
        .post(format!("{url}/advance"))
        .json(&json!({"seconds": -1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("seconds"));
}

#[tokio::test]
async fn injected_errors_429_bursts_and_drops_then_normal_service() {
    let sb = common::start().await;
    let http = common::http();
    let faults = format!("{}/_sandbox/faults", sb.base_url());
    let target = format!(
        "{}/rs-extapi/v1/addresses/agents?type=POSTNORD&zip=11151&countryCode=SE",
        sb.base_url()
    );

    // A 503 for the next request, then two 429s, then a dropped connection.
    for rule in [
        json!({"path_prefix": "/rs-extapi/v1/addresses", "error_rate": 1.0, "error_statuses": [503], "remaining": 1}),
        json!({"path_prefix": "/rs-extapi/v1/addresses", "rate_429": 1.0, "retry_after_secs": 7, "remaining": 2}),
    ] {
        let response = http.post(&faults).json(&rule).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let creds = sb.credentials().nshift;
    let get = || {
        http.get(&target)
            .basic_auth(&creds.api_key_id, Some(&creds.secret_id))
            .send()
    };
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let throttled = get().await.unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.headers()["retry-after"], "7");
    assert_eq!(get().await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::OK,
        "bursts retire"
    );

    sb.state()
        .faults
        .add(FaultRule {
            path_prefix: "/rs-extapi/v1/addresses".into(),
            drop_rate: 1.0,
            remaining: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert!(
        get().await.is_err(),
        "a dropped connection is a transport error"
    );
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);

    // The log saw every request, with the fault that hit it, and no headers (no secrets).
    let log: Value = http
        .get(format!("{}/_sandbox/requests", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let faults_seen: Vec<_> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["fault"].clone())
        .collect();
    assert_eq!(
        faults_seen,
        vec![
            json!("error"),
            json!("429"),
            json!("429"),
            Value::Null,
            json!("drop"),
            Value::Null
        ]
    );
    assert!(!log.to_string().contains(&creds.secret_id));
}

#[tokio::test]
async fn invalid_fault_rules_are_refused_naming_the_field() {
    let sb = common::start().await;
    let http = common::http();
    let faults = format!("{}/_sandbox/faults", sb.base_url());
    let response = http
        .post(&faults)
        .json(&json!({"error_rate": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("error_rate"));
    let response = http
        .post(&faults)
        .json(&json!({"eror_rate": 0.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response.text().await.unwrap().contains("eror_rate"),
        "unknown fields are named"
    );
    assert_eq!(
        http.delete(&faults).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn unknown_routes_are_404_and_admin_bypasses_faults() {
    let sb = common::start().await;
    let http = common::http();
    sb.state()
        .faults
        .add(FaultRule {
            error_rate: 1.0,
            ..Default::default()
        })
        .unwrap();
    let missing = http
        .get(format!("{}/nowhere", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let health = http
        .get(format!("{}/_sandbox/health", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "admin routes are never faulted"
    );
    let dataset: Value = http
        .get(format!("{}/_sandbox/dataset", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dataset["orders"].as_array().unwrap().len(), 20);
}

/// Latency is injected with tokio's timer, so paused time measures it exactly (no socket: the
/// router is called as a tower service).
#[tokio::test(start_paused = true)]
async fn injected_latency_delays_the_matching_route_only() {
    use tower::ServiceExt as _;
    let config = sandbox::SandboxConfig {
        start_time: Some("2026-03-02T08:00:00Z".parse().unwrap()),
        ..Default::default()
    };
    let state = std::sync::Arc::new(sandbox::AppState::new(config, "http://127.0.0.1:1".into()));
    state
        .faults
        .add(FaultRule {
            path_prefix: "/rs-extapi/v1/alerts".into(),
            latency_ms: 250,
            ..Default::default()
        })
        .unwrap();
    let call = |path: &'static str| {
        let app = sandbox::router(state.clone());
        async move {
            let started = tokio::time::Instant::now();
            let request = axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            (response.status(), started.elapsed())
        }
    };
    let (status, waited) = call("/rs-extapi/v1/alerts").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "handled after the delay");
    assert_eq!(waited, std::time::Duration::from_millis(250));
    let (_, waited) = call("/rs-extapi/v1/shipments").await;
    assert_eq!(waited, std::time::Duration::ZERO);
}

#[tokio::test]
async fn norce_tokens_can_be_revoked_mid_run() {
    let sb = common::start().await;
    let http = common::http();
    let creds = sb.credentials().norce;
    let token: Value = http
        .post(format!("{}/identity/1.0/connect/token", creds.base_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &creds.client_id),
            ("client_secret", &creds.client_secret),
            ("scope", &creds.scope),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_owned();
    let call = || {
        http.get(format!(
            "{}/commerce/metadata/1.1/GetApplication?format=json",
            creds.base_url
        ))
        .bearer_auth(&bearer)
        .header("ApplicationId", creds.application_id.to_string())
        .send()
    };
    assert_eq!(call().await.unwrap().status(), StatusCode::OK);
    let revoked: Value = http
        .post(format!("{}/_sandbox/norce/tokens/revoke", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(revoked["revoked"], 1);
    assert_eq!(call().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}
