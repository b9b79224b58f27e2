//! nshift-client against the in-process sandbox (127.0.0.1 only): every operation, the error
//! mapping, retries, the feeds, `book_once` under commit-then-fail and crashes, and insta
//! snapshots of the requests each operation sends (secrets redacted, no ports).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::{RetryConfig, SecretString};
use bytes::Bytes;
use client_core::{ReqwestTransport, Settings};
use common::Recorder;
use conformance::RequestSnapshot;
use futures::StreamExt as _;
use http::StatusCode;
use nshift_client::models::{
    CancelShipmentPath, DeleteStoredShipmentPath, FindAgentsQuery, GetStoredShipmentPath,
    GetZipcodeInfoQuery, ListShipmentPdfsPath, Parcel, Party, PrintConfig,
    SearchStoredShipmentsQuery, Service, Shipment, ShipmentPrintRequest,
};
use nshift_client::{
    AuthMode, BookOnceOptions, BookingOutcome, DeliveryApi as _, Error, ErrorKind, FEED_START,
    Failure, LabelFormat, NshiftClient,
};
use sandbox::nshift::{ApiKeyConfig, Licence, NshiftConfig};
use sandbox::{FaultRule, Sandbox, SandboxConfig, SharedState};

// ------------------------------------------------------------------ helpers

const STORE_ONLY_KEY: (&str, &str) = ("STOREONLYKEY0001", "store-only-secret");
const PROFILE_KEY: (&str, &str) = ("PROFILEKEY000001", "profile-key-secret");

fn config() -> SandboxConfig {
    SandboxConfig {
        start_time: Some("2026-03-02T08:00:00Z".parse().expect("time")),
        nshift: NshiftConfig {
            extra_keys: vec![
                ApiKeyConfig {
                    api_key_id: STORE_ONLY_KEY.0.into(),
                    secret_id: STORE_ONLY_KEY.1.into(),
                    licences: vec![Licence::Store],
                    profile_group: None,
                },
                ApiKeyConfig {
                    api_key_id: PROFILE_KEY.0.into(),
                    secret_id: PROFILE_KEY.1.into(),
                    licences: Licence::ALL.to_vec(),
                    profile_group: Some("webshop".into()),
                },
            ],
            ..NshiftConfig::default()
        },
        ..SandboxConfig::default()
    }
}

async fn start() -> Sandbox {
    Sandbox::start(config()).await.expect("sandbox starts")
}

/// A sandbox on its own runtime and thread (real time), for tests that pause tokio's clock.
struct RemoteSandbox {
    state: SharedState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RemoteSandbox {
    fn start() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let sandbox = Sandbox::start(config()).await.expect("sandbox starts");
                tx.send(sandbox.state().clone()).expect("send state");
                let _ = stopped.await;
                sandbox.shutdown().await;
            });
        });
        Self {
            state: rx.recv().expect("sandbox state"),
            stop: Some(stop),
        }
    }
}

impl Drop for RemoteSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn builder_for(state: &SharedState) -> nshift_client::NshiftClientBuilder {
    let creds = state.credentials().nshift;
    NshiftClient::builder()
        .base_url(creds.base_url)
        .api_key_id(creds.api_key_id)
        .secret_id(SecretString::from(creds.secret_id))
        .developer_id(creds.developer_id)
        .retry(RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(5)))
        .book_once_options(BookOnceOptions::default().retry_delay(Duration::ZERO))
}

fn client(sandbox: &Sandbox) -> NshiftClient {
    builder_for(sandbox.state()).build().expect("client")
}

/// A transport without timers (no request timeout, no pool idle timer): under paused time a
/// pending timer would let tokio's clock jump ahead while a request waits for the network.
fn untimed_transport() -> ReqwestTransport {
    ReqwestTransport::from_client(
        reqwest::Client::builder()
            .pool_idle_timeout(None)
            .build()
            .expect("reqwest client"),
    )
}

fn shipment(order_no: &str) -> Shipment {
    Shipment {
        sender: Party {
            quick_id: Some("1".into()),
            ..Default::default()
        },
        receiver: Party {
            name: Some("Anna Lind".into()),
            address1: Some("Drottninggatan 12".into()),
            zipcode: Some("11151".into()),
            city: Some("Stockholm".into()),
            country: Some("SE".into()),
            email: Some("anna.lind@example.com".into()),
            mobile: Some("+46701234567".into()),
            ..Default::default()
        },
        service: Service {
            id: "P15".into(),
            ..Default::default()
        },
        parcels: vec![Parcel {
            copies: 1,
            weight: Some(1.25),
            contents: Some("Clothes".into()),
            ..Default::default()
        }],
        order_no: Some(order_no.into()),
        sender_reference: Some(format!("ref-{order_no}")),
        ..Default::default()
    }
}

fn print_config(media: &str, kind: &str) -> PrintConfig {
    serde_json::from_value(serde_json::json!({"target1Media": media, "target1Type": kind}))
        .expect("print config")
}

fn print_request(order_no: &str) -> ShipmentPrintRequest {
    ShipmentPrintRequest {
        print_config: Some(print_config("thermo-190", "pdf")),
        shipment: shipment(order_no),
        ..Default::default()
    }
}

/// The shipments the sandbox holds for an order (admin route, cancelled ones included).
async fn admin_shipments(state: &SharedState, order_no: &str) -> Vec<serde_json::Value> {
    let url = format!(
        "{}/_sandbox/nshift/shipments?orderNo={order_no}",
        state.base_url
    );
    reqwest::get(url)
        .await
        .expect("admin")
        .json()
        .await
        .expect("admin json")
}

fn ctf_rule(prefix: &str) -> FaultRule {
    FaultRule {
        path_prefix: prefix.into(),
        method: Some("POST".into()),
        commit_then_fail_rate: 1.0,
        remaining: Some(1),
        ..Default::default()
    }
}

/// A transport that forwards a matching request (so nShift commits it) and then never answers:
/// the caller "crashes" while waiting.
#[derive(Clone)]
struct HangAfter {
    inner: ReqwestTransport,
    matches: fn(&http::Request<Bytes>) -> bool,
    reached: Arc<tokio::sync::Notify>,
}

fn hang_after(
    matches: fn(&http::Request<Bytes>) -> bool,
    reached: Arc<tokio::sync::Notify>,
) -> HangAfter {
    HangAfter {
        inner: ReqwestTransport::new(Duration::from_secs(10)).expect("transport"),
        matches,
        reached,
    }
}

impl tower::Service<http::Request<Bytes>> for HangAfter {
    type Response = http::Response<Bytes>;
    type Error = auth_core::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        let hit = (self.matches)(&request);
        let response = self.inner.call(request);
        let reached = self.reached.clone();
        Box::pin(async move {
            let response = response.await;
            if hit {
                reached.notify_one();
                std::future::pending::<()>().await;
            }
            response
        })
    }
}

fn is_store(r: &http::Request<Bytes>) -> bool {
    r.method() == http::Method::POST && r.uri().path().ends_with("/stored-shipments")
}

fn is_print(r: &http::Request<Bytes>) -> bool {
    r.method() == http::Method::POST
        && r.uri().path().contains("/stored-shipments/")
        && r.uri().path().ends_with("/shipments")
}

// ------------------------------------------------------------------ settings

#[test]
fn settings_name_what_is_missing_or_malformed_and_never_echo_secrets() {
    let err = nshift_client::NshiftClientBuilder::from_settings(&Settings::from_pairs([(
        "NSHIFT_SECRET_ID",
        "x",
    )]))
    .expect_err("missing id");
    assert!(err.to_string().contains("NSHIFT_API_KEY_ID"), "{err}");
    assert!(err.hint().contains("NSHIFT_API_KEY_ID"), "{}", err.hint());

    let err = nshift_client::NshiftClientBuilder::from_settings(&Settings::from_pairs([(
        "NSHIFT_API_KEY_ID",
        "ABC",
    )]))
    .expect_err("missing secret");
    assert!(err.to_string().contains("NSHIFT_SECRET_ID"), "{err}");
    assert!(err.to_string().contains("NSHIFT_SECRET_ID_FILE"), "{err}");

    let base = [
        ("NSHIFT_API_KEY_ID", "ABC"),
        ("NSHIFT_SECRET_ID", "topsecret-value"),
    ];
    for (name, value) in [
        ("NSHIFT_BASE_URL", "http://api.unifaun.com/rs-extapi/v1"),
        ("NSHIFT_AUTH", "oauth2"),
        ("NSHIFT_TIMEOUT_SECS", "soon"),
    ] {
        let pairs = base.iter().copied().chain([(name, value)]);
        let err = nshift_client::NshiftClientBuilder::from_settings(&Settings::from_pairs(pairs))
            .expect_err(name);
        assert!(err.to_string().contains(name), "{name}: {err}");
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    let err = NshiftClient::builder()
        .api_key_id("has:colon")
        .secret_id("s".into())
        .build()
        .expect_err("colon");
    assert!(err.to_string().contains("NSHIFT_API_KEY_ID"), "{err}");

    let dir = std::env::temp_dir().join(format!("nshift-client-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("secret");
    std::fs::write(&file, "from-file-secret\n").expect("write");
    let builder = nshift_client::NshiftClientBuilder::from_settings(&Settings::from_pairs([
        ("NSHIFT_API_KEY_ID", "ABC"),
        ("NSHIFT_SECRET_ID_FILE", file.to_str().expect("path")),
        ("NSHIFT_AUTH", "Bearer"),
        ("NSHIFT_DEVELOPER_ID", "dev-1"),
    ]))
    .expect("settings");
    assert!(!format!("{builder:?}").contains("from-file-secret"));
    let client = builder.build().expect("client");
    assert_eq!(client.base_url(), "https://api.unifaun.com/rs-extapi/v1");
    assert_eq!(client.auth_mode(), AuthMode::Bearer);
    assert_eq!(client.developer_id(), Some("dev-1"));
    assert!(!format!("{client:?}").contains("from-file-secret"));
}

// ------------------------------------------------------------------ operations

#[tokio::test]
async fn create_shipment_returns_decoded_pdf_and_zpl_labels_and_sets_the_developer_id() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let printed = client
        .create_shipment(print_request("NC-CREATE-1"))
        .await
        .expect("created");
    assert_eq!(printed.len(), 1);
    let label = &printed[0].labels[0];
    assert_eq!(label.format, LabelFormat::Pdf);
    assert_eq!(label.media_type(), "application/pdf");
    assert!(label.bytes.starts_with(b"%PDF"), "not a PDF");
    assert!(!printed[0].parcel_numbers().is_empty());
    let admin = admin_shipments(sandbox.state(), "NC-CREATE-1").await;
    assert_eq!(admin.len(), 1);
    assert_eq!(admin[0]["developerId"], "relay-dev-0001");

    // A developerId already in the shipment is kept.
    let mut request = print_request("NC-CREATE-2");
    request.shipment.developer_id = Some("someone-else".into());
    request.print_config = Some(print_config("thermo-190", "zpl"));
    let printed = client.create_shipment(request).await.expect("created");
    assert_eq!(printed[0].labels[0].format, LabelFormat::Zpl);
    assert_eq!(printed[0].labels[0].media_type(), "application/zpl");
    assert_eq!(
        admin_shipments(sandbox.state(), "NC-CREATE-2").await[0]["developerId"],
        "someone-else"
    );
}

#[tokio::test]
async fn bearer_auth_is_accepted() {
    let sandbox = start().await;
    let client = builder_for(sandbox.state())
        .auth_mode(AuthMode::Bearer)
        .build()
        .expect("client");
    let agents = client
        .find_agents(&FindAgentsQuery {
            type_: "POSTNORD".into(),
            zip: Some("11151".into()),
            country_code: "SE".into(),
            ..Default::default()
        })
        .await
        .expect("agents");
    assert!(!agents.is_empty());
}

#[tokio::test]
async fn stored_shipments_store_search_get_print_delete() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let stored = client
        .store_shipment(shipment("NC-STORED-1"))
        .await
        .expect("stored");
    assert_eq!(stored.status.as_ref().map(|s| s.as_str()), Some("READY"));
    let other = client
        .store_shipment(shipment("NC-STORED-2"))
        .await
        .expect("stored");

    let found = client
        .find_stored_by_order_no("NC-STORED-1")
        .await
        .expect("search");
    assert_eq!(
        found.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![stored.id.as_str()]
    );
    let all = client
        .search_stored_shipments(&SearchStoredShipmentsQuery::default())
        .await
        .expect("search all");
    assert_eq!(all.len(), 2);
    assert_eq!(
        client
            .get_stored_shipment(&GetStoredShipmentPath {
                stored_id: stored.id.clone()
            })
            .await
            .expect("get")
            .order_no
            .as_deref(),
        Some("NC-STORED-1")
    );

    let printed = client
        .print_stored_shipment(&stored.id, &print_config("laser-a5", "pdf"))
        .await
        .expect("printed");
    assert!(printed[0].labels[0].bytes.starts_with(b"%PDF"));
    // nShift prints a stored shipment once: the second print is refused with 422.
    let err = client
        .print_stored_shipment(&stored.id, &print_config("laser-a5", "pdf"))
        .await
        .expect_err("twice");
    assert!(matches!(err, Error::Validation { .. }), "{err:?}");
    assert_eq!(
        admin_shipments(sandbox.state(), "NC-STORED-1").await.len(),
        1
    );

    client
        .delete_stored_shipment(&DeleteStoredShipmentPath {
            stored_id: other.id.clone(),
        })
        .await
        .expect("deleted");
    assert!(
        client
            .find_stored_by_order_no("NC-STORED-2")
            .await
            .expect("search")
            .is_empty()
    );
    let err = client
        .delete_stored_shipment(&DeleteStoredShipmentPath {
            stored_id: "999999".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{err:?}");
}

#[tokio::test]
async fn documents_listed_and_fetched_and_shipment_cancelled() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let printed = client
        .create_shipment(print_request("NC-DOCS-1"))
        .await
        .expect("created");
    let id = printed[0].info.id.clone();
    let documents = client
        .list_shipment_pdfs(
            &ListShipmentPdfsPath {
                shipment_id: id.clone(),
            },
            &Default::default(),
        )
        .await
        .expect("documents");
    assert_eq!(documents.len(), 1);
    let document = client
        .fetch_document(&id, &documents[0].id)
        .await
        .expect("document");
    assert_eq!(document.format, LabelFormat::Pdf);
    assert!(document.bytes.starts_with(b"%PDF"));

    let path = CancelShipmentPath {
        shipment_id: id.clone(),
    };
    client.cancel_shipment(&path).await.expect("cancelled");
    let admin = admin_shipments(sandbox.state(), "NC-DOCS-1").await;
    assert_eq!(admin[0]["cancelled"], true);
    let path = CancelShipmentPath {
        shipment_id: "424242".into(),
    };
    let err = client.cancel_shipment(&path).await.expect_err("unknown");
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{err:?}");
    assert!(err.hint().contains("one hour"), "{}", err.hint());
}

#[tokio::test]
async fn pickup_points_and_zip_codes() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let query = FindAgentsQuery {
        type_: "POSTNORD".into(),
        zip: Some("11151".into()),
        country_code: "SE".into(),
        ..Default::default()
    };
    let agents = client.find_agents(&query).await.expect("agents");
    assert!(agents.len() >= 3, "{agents:?}");
    assert!(agents.iter().all(|a| a.country_code == "SE"));
    let zip = client
        .get_zipcode_info(&GetZipcodeInfoQuery {
            zip: "11151".into(),
            country_code: "SE".into(),
        })
        .await
        .expect("zip");
    assert_eq!(zip.valid, Some(true));
}

// ------------------------------------------------------------------ errors

#[tokio::test]
async fn bad_secret_is_unauthorized_with_a_hint_naming_the_settings() {
    let sandbox = start().await;
    let client = builder_for(sandbox.state())
        .secret_id("wrong-secret".into())
        .build()
        .expect("client");
    let err = client.find_stored_by_order_no("X").await.expect_err("401");
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err:?}");
    assert_eq!(err.status(), Some(http::StatusCode::UNAUTHORIZED));
    let hint = err.hint();
    assert!(
        hint.contains("NSHIFT_API_KEY_ID") && hint.contains("NSHIFT_SECRET_ID"),
        "{hint}"
    );
    assert!(!format!("{err:?} {err} {hint}").contains("wrong-secret"));
}

#[tokio::test]
async fn missing_licence_and_profile_keys_are_forbidden_with_a_licence_hint() {
    let sandbox = start().await;
    let creds = sandbox.credentials().nshift;
    let store_only = NshiftClient::builder()
        .base_url(&creds.base_url)
        .api_key_id(STORE_ONLY_KEY.0)
        .secret_id(STORE_ONLY_KEY.1.into())
        .build()
        .expect("client");
    // Store works, Print does not.
    store_only
        .store_shipment(shipment("NC-403-1"))
        .await
        .expect("stored");
    let err = store_only
        .create_shipment(print_request("NC-403-2"))
        .await
        .expect_err("403");
    assert_eq!(err.status(), Some(http::StatusCode::FORBIDDEN));
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.response().map(|r| r.operation), Some("CreateShipment"));
    let hint = err.hint();
    assert!(
        hint.contains("`REST API Print` licence") && hint.contains("profile"),
        "{hint}"
    );

    let profile = NshiftClient::builder()
        .base_url(&creds.base_url)
        .api_key_id(PROFILE_KEY.0)
        .secret_id(PROFILE_KEY.1.into())
        .build()
        .expect("client");
    let err = profile.fetch_alerts(FEED_START).await.expect_err("403");
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN), "{err:?}");
    assert!(err.hint().contains("REST API TrackBack"), "{}", err.hint());
}

#[tokio::test]
async fn validation_failure_is_typed_with_field_message_and_type() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let mut request = print_request("NC-422-1");
    request.shipment.receiver.zipcode = None;
    let err = client.create_shipment(request).await.expect_err("422");
    let Error::Validation { statuses, failure } = &err else {
        panic!("{err:?}")
    };
    let zip = statuses
        .iter()
        .find(|s| s.field.as_deref() == Some("Address_Zipcode"))
        .expect("zip status");
    assert_eq!(zip.message.as_deref(), Some("Postal code is missing"));
    assert_eq!(zip.type_.as_ref().map(|t| t.as_str()), Some("error"));
    assert!(failure.body.contains("Address_Zipcode"));
    assert_eq!(err.status(), Some(http::StatusCode::UNPROCESSABLE_ENTITY));
    assert!(
        err.to_string()
            .contains("Address_Zipcode: Postal code is missing (error)"),
        "{err}"
    );
    assert!(
        admin_shipments(sandbox.state(), "NC-422-1")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn bad_request_keeps_code_message_and_raw_body() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let err = client
        .find_agents(&FindAgentsQuery {
            type_: "POSTNORD".into(),
            country_code: "SE".into(),
            ..Default::default()
        })
        .await
        .expect_err("400");
    let Error::BadRequest {
        code,
        message,
        failure,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(code.as_ref().map(|c| c.as_str()), Some("MISSING"));
    assert_eq!(message.as_deref(), Some("Missing zip argument"));
    assert!(failure.body.contains("MISSING"));

    let query = SearchStoredShipmentsQuery {
        search_field: Some("bogus".into()),
        search_value: Some("x".into()),
        ..Default::default()
    };
    let err = client
        .search_stored_shipments(&query)
        .await
        .expect_err("400");
    assert!(
        matches!(&err, Error::BadRequest { code: Some(c), .. } if c.as_str() == "ILLEGAL"),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn throttled_get_is_retried_after_retry_after() {
    let sandbox = RemoteSandbox::start();
    sandbox
        .state
        .faults
        .add(FaultRule {
            path_prefix: "/rs-extapi/v1/addresses/agents".into(),
            rate_429: 1.0,
            retry_after_secs: Some(7),
            remaining: Some(1),
            ..Default::default()
        })
        .expect("rule");
    let client = builder_for(&sandbox.state)
        .transport(untimed_transport())
        .build()
        .expect("client");
    let started = tokio::time::Instant::now();
    let query = FindAgentsQuery {
        type_: "POSTNORD".into(),
        zip: Some("11151".into()),
        country_code: "SE".into(),
        ..Default::default()
    };
    let agents = client.find_agents(&query).await.expect("retried");
    assert!(!agents.is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "waited {:?}",
        started.elapsed()
    );
    let log = sandbox.state.faults.requests();
    let statuses: Vec<u16> = log
        .iter()
        .filter(|r| r.path.ends_with("/addresses/agents"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![429, 200]);
}

#[tokio::test(start_paused = true)]
async fn slow_answer_is_a_timeout_and_ambiguous_for_a_write() {
    let sandbox = RemoteSandbox::start();
    for (path, method) in [
        ("/rs-extapi/v1/addresses/zipcodes", None),
        ("/rs-extapi/v1/stored-shipments", Some("POST".into())),
    ] {
        let rule = FaultRule {
            path_prefix: path.into(),
            method,
            latency_ms: 600_000,
            ..Default::default()
        };
        sandbox.state.faults.add(rule).expect("rule");
    }
    // The default reqwest transport with a 5 s timeout; paused time fires it without waiting.
    let client = builder_for(&sandbox.state)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let err = client
        .get_zipcode_info(&GetZipcodeInfoQuery {
            zip: "11151".into(),
            country_code: "SE".into(),
        })
        .await
        .expect_err("timeout");
    // A GET changes nothing: its timeout is transient (and was retried), not ambiguous.
    assert!(
        matches!(err, Error::Failure(Failure::Timeout { .. })),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(err.hint().contains("NSHIFT_TIMEOUT_SECS"), "{}", err.hint());
    // A POST that stores may have been carried out: an ambiguous write, reconciled by book_once.
    let err = client
        .store_shipment(shipment("NC-SLOW-1"))
        .await
        .expect_err("timeout");
    assert!(
        matches!(err, Error::Failure(Failure::Timeout { .. })),
        "{err:?}"
    );
    assert!(err.is_ambiguous());
    assert_eq!(err.kind(), ErrorKind::AmbiguousWrite);
    assert!(err.hint().contains("book_once"), "{}", err.hint());
}

#[tokio::test]
async fn throttled_or_dropped_post_is_not_blindly_retried() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let faults = &sandbox.state().faults;
    faults
        .add(FaultRule {
            path_prefix: "/rs-extapi/v1/shipments".into(),
            method: Some("POST".into()),
            rate_429: 1.0,
            remaining: Some(1),
            ..Default::default()
        })
        .expect("rule");
    let err = client
        .create_shipment(print_request("NC-429-1"))
        .await
        .expect_err("429");
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert!(err.hint().contains("1s"), "{}", err.hint());
    assert_eq!(faults.count("POST", "/rs-extapi/v1/shipments"), 1);

    // The answer to a committed POST is lost: ambiguous, not retried, exactly one shipment.
    faults
        .add(ctf_rule("/rs-extapi/v1/shipments"))
        .expect("rule");
    let err = client
        .create_shipment(print_request("NC-CTF-1"))
        .await
        .expect_err("lost answer");
    assert!(err.is_ambiguous(), "{err:?}");
    assert_eq!(faults.count("POST", "/rs-extapi/v1/shipments"), 2);
    assert_eq!(admin_shipments(sandbox.state(), "NC-CTF-1").await.len(), 1);
}

// ------------------------------------------------------------------ book_once

#[tokio::test]
async fn book_once_survives_commit_then_fail_on_store_and_print() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let faults = &sandbox.state().faults;
    // The store's answer is lost, then the print's answer is lost.
    faults
        .add(ctf_rule("/rs-extapi/v1/stored-shipments"))
        .expect("rule");
    faults
        .add(ctf_rule("/rs-extapi/v1/stored-shipments/"))
        .expect("rule");

    let booking = client
        .book_once("NC-ONCE-1", shipment("NC-ONCE-1"))
        .await
        .expect("booked");
    assert_eq!(booking.outcome, BookingOutcome::AlreadyBooked);
    assert!(booking.details_recovered);
    assert_eq!(booking.shipments.len(), 1);
    assert!(!booking.shipments[0].parcel_numbers().is_empty());
    assert!(
        booking.shipments[0]
            .labels
            .iter()
            .any(|l| l.bytes.starts_with(b"%PDF"))
    );
    let faults_hit: Vec<_> = faults
        .requests()
        .into_iter()
        .filter(|r| r.fault.is_some())
        .map(|r| r.path)
        .collect();
    assert_eq!(faults_hit.len(), 2, "{faults_hit:?}");

    for _ in 0..3 {
        let again = client
            .book_once("NC-ONCE-1", shipment("NC-ONCE-1"))
            .await
            .expect("again");
        assert_eq!(again.outcome, BookingOutcome::AlreadyBooked);
        assert_eq!(again.shipments[0].info.id, booking.shipments[0].info.id);
    }
    let admin = admin_shipments(sandbox.state(), "NC-ONCE-1").await;
    assert_eq!(admin.len(), 1, "{admin:?}");
    assert_eq!(admin[0]["developerId"], "relay-dev-0001");
    // One stored shipment was created, and only one POST /stored-shipments was sent.
    assert_eq!(faults.count("POST", "/rs-extapi/v1/stored-shipments"), 2); // store + print
}

#[tokio::test]
async fn book_once_prints_once_and_reuses_the_stored_shipment() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let booking = client
        .book_once("NC-ONCE-2", shipment("NC-ONCE-2"))
        .await
        .expect("booked");
    assert_eq!(booking.outcome, BookingOutcome::Printed);
    assert!(booking.shipments[0].labels[0].bytes.starts_with(b"%PDF"));
    let again = client
        .book_once("NC-ONCE-2", shipment("NC-ONCE-2"))
        .await
        .expect("again");
    assert_eq!(again.outcome, BookingOutcome::AlreadyBooked);
    assert_eq!(again.stored_id, booking.stored_id);
    assert_eq!(admin_shipments(sandbox.state(), "NC-ONCE-2").await.len(), 1);

    let err = client
        .book_once("NC-ONCE-3", shipment("NC-OTHER"))
        .await
        .expect_err("mismatch");
    assert!(
        matches!(err, Error::Failure(Failure::InvalidRequest { .. })),
        "{err:?}"
    );

    // A stored shipment that cannot be printed is reported, not re-stored.
    let mut warned = shipment("NC-ONCE-4");
    warned.receiver.email = None;
    warned.receiver.mobile = None;
    let err = client
        .book_once("NC-ONCE-4", warned.clone())
        .await
        .expect_err("warned");
    assert!(
        matches!(&err, Error::NotPrintable { status, .. } if status == "WARNED"),
        "{err:?}"
    );
    assert!(!err.validation_statuses().is_empty());
    let _ = client
        .book_once("NC-ONCE-4", warned)
        .await
        .expect_err("still warned");
    assert_eq!(
        client
            .find_stored_by_order_no("NC-ONCE-4")
            .await
            .expect("search")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_book_once_calls_print_one_shipment() {
    let sandbox = start().await;
    let client = client(&sandbox);
    let calls = (0..4).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.book_once("NC-RACE-1", shipment("NC-RACE-1")).await })
    });
    let results = futures::future::join_all(calls).await;
    let outcomes: Vec<BookingOutcome> = results
        .into_iter()
        .map(|r| r.expect("task").expect("booked").outcome)
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == BookingOutcome::Printed)
            .count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(admin_shipments(sandbox.state(), "NC-RACE-1").await.len(), 1);
}

#[tokio::test]
async fn book_once_after_a_crash_following_the_committed_print() {
    let sandbox = start().await;
    let reached = Arc::new(tokio::sync::Notify::new());
    let crashing = builder_for(sandbox.state())
        .transport(hang_after(is_print, reached.clone()))
        .build()
        .expect("client");
    tokio::select! {
        result = crashing.book_once("NC-CRASH-1", shipment("NC-CRASH-1")) => panic!("should hang: {result:?}"),
        () = reached.notified() => {} // the print was committed; the future is dropped here
    }
    assert_eq!(
        admin_shipments(sandbox.state(), "NC-CRASH-1").await.len(),
        1
    );

    let client = client(&sandbox);
    let booking = client
        .book_once("NC-CRASH-1", shipment("NC-CRASH-1"))
        .await
        .expect("booked");
    assert_eq!(booking.outcome, BookingOutcome::AlreadyBooked);
    assert_eq!(booking.shipments.len(), 1);
    assert_eq!(
        admin_shipments(sandbox.state(), "NC-CRASH-1").await.len(),
        1
    );
}

#[tokio::test]
async fn book_once_after_a_crash_following_the_committed_store() {
    let sandbox = start().await;
    let reached = Arc::new(tokio::sync::Notify::new());
    let crashing = builder_for(sandbox.state())
        .transport(hang_after(is_store, reached.clone()))
        .build()
        .expect("client");
    tokio::select! {
        result = crashing.book_once("NC-CRASH-2", shipment("NC-CRASH-2")) => panic!("should hang: {result:?}"),
        () = reached.notified() => {}
    }
    assert!(
        admin_shipments(sandbox.state(), "NC-CRASH-2")
            .await
            .is_empty()
    );

    let client = client(&sandbox);
    let booking = client
        .book_once("NC-CRASH-2", shipment("NC-CRASH-2"))
        .await
        .expect("booked");
    assert_eq!(booking.outcome, BookingOutcome::Printed);
    assert_eq!(
        client
            .find_stored_by_order_no("NC-CRASH-2")
            .await
            .expect("search")
            .len(),
        1
    );
    let again = client
        .book_once("NC-CRASH-2", shipment("NC-CRASH-2"))
        .await
        .expect("again");
    assert_eq!(again.outcome, BookingOutcome::AlreadyBooked);
    assert_eq!(
        admin_shipments(sandbox.state(), "NC-CRASH-2").await.len(),
        1
    );
}

#[tokio::test]
async fn book_once_checks_the_feed_when_printed_stored_shipments_are_not_searchable() {
    let mut config = config();
    config.nshift.printed_stored_searchable = false;
    let sandbox = Sandbox::start(config).await.expect("sandbox");
    let client = builder_for(sandbox.state())
        .book_once_options(
            BookOnceOptions::default()
                .retry_delay(Duration::ZERO)
                .check_feed_before_store(true),
        )
        .build()
        .expect("client");
    let first = client
        .book_once("NC-FEED-1", shipment("NC-FEED-1"))
        .await
        .expect("booked");
    assert_eq!(first.outcome, BookingOutcome::Printed);
    let again = client
        .book_once("NC-FEED-1", shipment("NC-FEED-1"))
        .await
        .expect("again");
    assert_eq!(again.outcome, BookingOutcome::AlreadyBooked);
    assert_eq!(again.shipments[0].info.id, first.shipments[0].info.id);
    assert_eq!(admin_shipments(sandbox.state(), "NC-FEED-1").await.len(), 1);
}

// ------------------------------------------------------------------ feeds

#[tokio::test(start_paused = true)]
async fn alerts_feed_honours_min_delay_and_resumes_from_the_cursor() {
    let sandbox = RemoteSandbox::start();
    let client = builder_for(&sandbox.state)
        .transport(untimed_transport())
        .build()
        .expect("client");
    client
        .create_shipment(print_request("NC-ALERT-1"))
        .await
        .expect("created");

    let mut feed = Box::pin(client.alerts_feed(FEED_START));
    let first = feed.next().await.expect("page").expect("ok");
    assert!(first.done);
    assert_eq!(first.min_delay, Duration::from_secs(300));
    let orders: Vec<_> = first
        .items
        .iter()
        .filter_map(|a| a.shipment_info.as_ref()?.order_no.clone())
        .collect();
    assert_eq!(orders, vec!["NC-ALERT-1".to_owned()]);
    assert_eq!(
        first.items[0]
            .alert_code
            .as_deref()
            .map(|c| c.contains("PRINTED")),
        Some(true)
    );

    client
        .create_shipment(print_request("NC-ALERT-2"))
        .await
        .expect("created");
    let before = tokio::time::Instant::now();
    let second = feed.next().await.expect("page").expect("ok");
    assert!(
        before.elapsed() >= Duration::from_secs(300),
        "waited only {:?}",
        before.elapsed()
    );
    let orders: Vec<_> = second
        .items
        .iter()
        .filter_map(|a| a.shipment_info.as_ref()?.order_no.clone())
        .collect();
    assert_eq!(orders, vec!["NC-ALERT-2".to_owned()]);
    assert_ne!(second.fetch_id, first.fetch_id);

    // A new stream from the persisted cursor starts at once and sees only what came after.
    let before = tokio::time::Instant::now();
    let resumed = Box::pin(client.alerts_feed(first.fetch_id.clone()))
        .next()
        .await
        .expect("page")
        .expect("ok");
    assert!(before.elapsed() < Duration::from_secs(1));
    assert_eq!(resumed.items, second.items);
    assert_eq!(sandbox.state.faults.count("GET", "/rs-extapi/v1/alerts"), 3);
}

#[tokio::test]
async fn shipments_feed_pages_through_printed_shipments() {
    let sandbox = start().await;
    let client = client(&sandbox);
    client
        .create_shipment(print_request("NC-FEED-A"))
        .await
        .expect("created");
    client
        .create_shipment(print_request("NC-FEED-B"))
        .await
        .expect("created");
    let page = Box::pin(client.shipments_feed(FEED_START))
        .next()
        .await
        .expect("page")
        .expect("ok");
    let orders: Vec<_> = page
        .items
        .iter()
        .filter_map(|s| s.order_no.clone())
        .collect();
    assert_eq!(orders, vec!["NC-FEED-A".to_owned(), "NC-FEED-B".to_owned()]);
    assert!(page.done);
    let next = client.fetch_shipments(&page.fetch_id).await.expect("next");
    assert!(next.items.is_empty());
    assert_eq!(next.fetch_id, page.fetch_id);
}

// ------------------------------------------------------------------ request snapshots

#[tokio::test]
async fn request_snapshots_of_every_operation() {
    let sandbox = start().await;
    let recorder = Recorder::new(Duration::from_secs(10));
    let client = builder_for(sandbox.state())
        .transport(recorder.clone())
        .build()
        .expect("client");
    let seen: Mutex<Vec<RequestSnapshot>> = Mutex::default();
    let take = |recorder: &Recorder| -> RequestSnapshot {
        let mut log = recorder.take();
        assert_eq!(log.len(), 1, "{log:?}");
        seen.lock().expect("seen").push(log[0].clone());
        log.remove(0)
    };

    let printed = client
        .create_shipment(print_request("NC-SNAP-1"))
        .await
        .expect("created");
    insta::assert_yaml_snapshot!("create_shipment", take(&recorder));
    let shipment_id = printed[0].info.id.clone();

    let stored = client
        .store_shipment(shipment("NC-SNAP-2"))
        .await
        .expect("stored");
    insta::assert_yaml_snapshot!("store_shipment", take(&recorder));
    client
        .find_stored_by_order_no("NC-SNAP-2")
        .await
        .expect("search");
    insta::assert_yaml_snapshot!("search_stored_shipments", take(&recorder));
    let path = GetStoredShipmentPath {
        stored_id: stored.id.clone(),
    };
    client.get_stored_shipment(&path).await.expect("get");
    insta::assert_yaml_snapshot!("get_stored_shipment", take(&recorder));
    client
        .print_stored_shipment(&stored.id, &print_config("laser-a5", "pdf"))
        .await
        .expect("print");
    insta::assert_yaml_snapshot!("print_stored_shipment", take(&recorder));
    let other = client
        .store_shipment(shipment("NC-SNAP-3"))
        .await
        .expect("stored");
    recorder.take();
    let path = DeleteStoredShipmentPath {
        stored_id: other.id.clone(),
    };
    client.delete_stored_shipment(&path).await.expect("delete");
    insta::assert_yaml_snapshot!("delete_stored_shipment", take(&recorder));

    let path = ListShipmentPdfsPath {
        shipment_id: shipment_id.clone(),
    };
    let documents = client
        .list_shipment_pdfs(&path, &Default::default())
        .await
        .expect("documents");
    insta::assert_yaml_snapshot!("list_documents", take(&recorder));
    client
        .fetch_document(&shipment_id, &documents[0].id)
        .await
        .expect("document");
    insta::assert_yaml_snapshot!("fetch_document", take(&recorder));
    let path = CancelShipmentPath {
        shipment_id: shipment_id.clone(),
    };
    client.cancel_shipment(&path).await.expect("cancel");
    insta::assert_yaml_snapshot!("cancel_shipment", take(&recorder));

    let query = FindAgentsQuery {
        type_: "POSTNORD".into(),
        zip: Some("11151".into()),
        country_code: "SE".into(),
        ..Default::default()
    };
    client.find_agents(&query).await.expect("agents");
    insta::assert_yaml_snapshot!("find_agents", take(&recorder));
    client
        .get_zipcode_info(&GetZipcodeInfoQuery {
            zip: "11151".into(),
            country_code: "SE".into(),
        })
        .await
        .expect("zip");
    insta::assert_yaml_snapshot!("zipcode_info", take(&recorder));
    client.fetch_alerts(FEED_START).await.expect("alerts");
    insta::assert_yaml_snapshot!("fetch_alerts", take(&recorder));
    client.fetch_shipments(FEED_START).await.expect("shipments");
    insta::assert_yaml_snapshot!("fetch_shipments", take(&recorder));

    // Nothing secret anywhere: neither the Basic credentials nor the secret in clear.
    let creds = sandbox.credentials().nshift;
    let seen = seen.into_inner().expect("seen");
    assert_eq!(seen.len(), 13);
    let all = serde_json::to_string(&seen).expect("json");
    assert!(!all.contains(&creds.secret_id));
}

#[tokio::test]
async fn book_once_request_sequence_snapshot() {
    let sandbox = start().await;
    let recorder = Recorder::new(Duration::from_secs(10));
    let client = builder_for(sandbox.state())
        .transport(recorder.clone())
        .build()
        .expect("client");
    client
        .book_once("NC-SNAP-ONCE", shipment("NC-SNAP-ONCE"))
        .await
        .expect("booked");
    let sequence: Vec<String> = recorder
        .log()
        .iter()
        .map(|r| {
            let query: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            format!("{} {}{query}", r.method, r.path)
        })
        .collect();
    insta::assert_yaml_snapshot!("book_once_sequence", sequence);
}

// ------------------------------------------------------------------ address check and prices

fn address(zip: &str) -> nshift_client::models::AddressCheckRequest {
    nshift_client::models::AddressCheckRequest {
        name: "Anna Lind".into(),
        address1: Some("Drottninggatan 12".into()),
        zipcode: Some(zip.into()),
        city: "Stockholm".into(),
        country_code: "SE".into(),
        ..Default::default()
    }
}

fn price_request(service: &str) -> nshift_client::models::PriceRequest {
    let mut shipment = shipment("NC-PRICE");
    shipment.service.id = service.into();
    nshift_client::models::PriceRequest {
        additional_surcharges: None,
        shipment,
    }
}

#[tokio::test]
async fn check_address_returns_typed_messages_in_the_asked_language() {
    let sandbox = start().await;
    let client = client(&sandbox);
    use nshift_client::models::CheckAddressQueryLanguage as Language;
    let fine = client
        .check_address(&address("111 51"), Language::Se)
        .await
        .expect("checked");
    assert!(fine.is_empty(), "{fine:?}");
    let bad = client
        .check_address(&address("1115"), Language::Gb)
        .await
        .expect("checked");
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].message_id.as_deref(), Some("WSAPIError.ZipCode"));
    assert_eq!(bad[0].error, Some(true));
    assert_eq!(bad[0].arguments, Some(vec!["NNNNN".to_owned()]));
    assert_eq!(
        bad[0].message.as_deref(),
        Some("Not valid zip code, expected format NNNNN")
    );
    // An unknown language is refused before anything is sent.
    let err = client
        .check_address(&address("11151"), Language::from("DE"))
        .await
        .expect_err("unknown language");
    assert!(
        matches!(err, Error::Failure(Failure::InvalidRequest { .. })),
        "{err:?}"
    );

    // Without the AddressCheck licence: 403 naming it.
    let store_only = builder_for(sandbox.state())
        .api_key_id(STORE_ONLY_KEY.0)
        .secret_id(SecretString::from(STORE_ONLY_KEY.1))
        .build()
        .expect("client");
    let err = store_only
        .check_address(&address("11151"), Language::Se)
        .await
        .expect_err("forbidden");
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN), "{err:?}");
    assert!(
        err.hint().contains("REST API AddressCheck"),
        "{}",
        err.hint()
    );
}

#[tokio::test]
async fn price_quotes_surcharges_and_error_list() {
    let sandbox = start().await;
    let client = client(&sandbox);
    // P15: 89 + 4.50 × 2 kg (1.25 kg rounded up) = 98; (98 + 10) × 1.25 = 135.
    let mut request = price_request("P15");
    request.additional_surcharges = Some(nshift_client::models::AdditionalSurcharges {
        percent: Some(25),
        amount: Some(models_runtime::DecimalNumber(
            models_runtime::Decimal::from(10),
        )),
    });
    let quote = client.price(request).await.expect("quoted");
    let data = quote.price_data.expect("priced");
    let money = |d: Option<models_runtime::DecimalNumber>| d.map(|d| d.0.normalize().to_string());
    assert_eq!(money(data.price).as_deref(), Some("98"));
    assert_eq!(money(data.additional_surcharges).as_deref(), Some("37"));
    assert_eq!(
        money(data.price_with_additional_surcharges).as_deref(),
        Some("135")
    );
    assert_eq!(data.chargeable_weight, Some(2.0));
    assert_eq!(quote.error_list, Some(vec![]));

    // A service the account does not have: 200 with errorList and no price, not an error.
    let quote = client.price(price_request("NOPE")).await.expect("answered");
    assert!(quote.price_data.is_none());
    let errors = quote.error_list.unwrap_or_default();
    assert_eq!(errors[0]["messageCode"], "ServiceId", "{errors:?}");

    // A malformed surcharge is a typed 400.
    let mut negative = price_request("P15");
    negative.additional_surcharges = Some(nshift_client::models::AdditionalSurcharges {
        percent: Some(-1),
        amount: None,
    });
    let err = client.price(negative).await.expect_err("400");
    assert!(
        matches!(&err, Error::BadRequest { code: Some(c), .. } if c.as_str() == "ILLEGAL"),
        "{err:?}"
    );
}

#[tokio::test]
async fn price_history_pages_through_the_prices_of_printed_shipments() {
    let sandbox = start().await;
    let client = client(&sandbox);
    for order in ["NC-PH-1", "NC-PH-2"] {
        client
            .create_shipment(print_request(order))
            .await
            .expect("created");
    }
    let page = Box::pin(client.price_history_feed(FEED_START))
        .next()
        .await
        .expect("page")
        .expect("ok");
    assert!(page.done);
    assert_eq!(page.min_delay, Duration::from_secs(300));
    let orders: Vec<_> = page
        .items
        .iter()
        .filter_map(|p| p.order_no.clone())
        .collect();
    assert_eq!(orders, ["NC-PH-1", "NC-PH-2"]);
    // The price of a printed shipment is what a quote for it says.
    let quote = client.price(price_request("P15")).await.expect("quote");
    assert_eq!(
        page.items[0].price_data.as_ref().and_then(|d| d.price),
        quote.price_data.and_then(|d| d.price)
    );
    let next = client
        .fetch_price_history(&page.fetch_id)
        .await
        .expect("next");
    assert!(next.items.is_empty());
    assert_eq!(next.fetch_id, page.fetch_id);

    // Account-level, like the other feeds: a profile-bound key is refused.
    let profile = builder_for(sandbox.state())
        .api_key_id(PROFILE_KEY.0)
        .secret_id(SecretString::from(PROFILE_KEY.1))
        .build()
        .expect("client");
    let err = profile
        .fetch_price_history(FEED_START)
        .await
        .expect_err("403");
    assert_eq!(err.status(), Some(http::StatusCode::FORBIDDEN));
}

// ------------------------------------------------------------------ JWT auth

fn agents_query() -> FindAgentsQuery {
    FindAgentsQuery {
        type_: "POSTNORD".into(),
        zip: Some("11151".into()),
        country_code: "SE".into(),
        ..Default::default()
    }
}

fn status_count(state: &SharedState, path: &str, status: u16) -> usize {
    state
        .faults
        .requests()
        .iter()
        .filter(|r| r.path == path && r.status == status)
        .count()
}

#[test]
fn jwt_settings_are_named_and_validated() {
    let base = [
        ("NSHIFT_API_KEY_ID", "ABC"),
        ("NSHIFT_SECRET_ID", "topsecret-value"),
    ];
    let builder = nshift_client::NshiftClientBuilder::from_settings(&Settings::from_pairs(
        base.iter()
            .copied()
            .chain([("NSHIFT_AUTH", "JWT"), ("NSHIFT_JWT_METHOD", "get")]),
    ))
    .expect("settings");
    assert!(!format!("{builder:?}").contains("topsecret"));
    let client = builder.build().expect("client");
    assert_eq!(client.auth_mode(), AuthMode::Jwt);
    assert!(!format!("{client:?}").contains("topsecret"));
    for (name, value) in [
        ("NSHIFT_JWT_METHOD", "put"),
        ("NSHIFT_JWT_LIFETIME_SECS", "10"),
        ("NSHIFT_JWT_LIFETIME_SECS", "long"),
    ] {
        let pairs = base
            .iter()
            .copied()
            .chain([("NSHIFT_AUTH", "jwt"), (name, value)]);
        let err = nshift_client::NshiftClientBuilder::from_settings(&Settings::from_pairs(pairs))
            .expect_err(name);
        assert!(err.to_string().contains(name), "{name}: {err}");
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}

#[tokio::test]
async fn jwt_auth_fetches_once_and_replays_once_after_the_sandbox_expires_it() {
    let sandbox = start().await;
    let state = sandbox.state();
    let client = builder_for(state)
        .auth_mode(AuthMode::Jwt)
        .build()
        .expect("client");
    for _ in 0..3 {
        assert!(
            !client
                .find_agents(&agents_query())
                .await
                .expect("agents")
                .is_empty()
        );
    }
    assert_eq!(state.nshift.jwt_sessions_issued(), 1, "the JWT is cached");
    assert_eq!(state.faults.count("POST", "/rs-extapi/v1/sessions/jwt"), 1);

    // Twelve hours pass on the sandbox's clock only: the client still holds the JWT, gets a
    // 401, fetches a new one and replays the request once.
    state.clock.advance(Duration::from_secs(12 * 3600));
    let agents = client.find_agents(&agents_query()).await.expect("replayed");
    assert!(!agents.is_empty());
    assert_eq!(state.nshift.jwt_sessions_issued(), 2);
    assert_eq!(
        status_count(state, "/rs-extapi/v1/addresses/agents", 401),
        1
    );
    // A POST is replayed too (its body can be copied): the new JWT works for every operation.
    state.clock.advance(Duration::from_secs(12 * 3600));
    let stored = client
        .store_shipment(shipment("NC-JWT-1"))
        .await
        .expect("stored");
    assert_eq!(stored.status.as_ref().map(|s| s.as_str()), Some("READY"));
    assert_eq!(state.nshift.jwt_sessions_issued(), 3);
    let url = format!(
        "{}/_sandbox/nshift/stored-shipments?orderNo=NC-JWT-1",
        state.base_url
    );
    let stored: Vec<serde_json::Value> = reqwest::get(url)
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(stored.len(), 1, "the 401 came before anything was stored");

    // The session was fetched with Basic, and the JWT never shows in Debug or errors.
    let debug = format!("{client:?}");
    assert!(!debug.contains("eyJ"), "{debug}");

    // Wrong credentials: the JWT endpoint's 401 is Unauthorized, with the settings hint.
    let bad = builder_for(state)
        .secret_id(SecretString::from("wrong-secret"))
        .auth_mode(AuthMode::Jwt)
        .build()
        .expect("client");
    let err = bad.find_agents(&agents_query()).await.expect_err("401");
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.hint().contains("NSHIFT_AUTH"), "{}", err.hint());
    assert!(!err.to_string().contains("wrong-secret"));
}

#[tokio::test]
async fn jwt_method_is_configurable_and_a_wrong_one_says_so() {
    let mut config = config();
    config.nshift.jwt_methods = sandbox::nshift::JwtMethods::GetOnly;
    let sandbox = Sandbox::start(config).await.expect("sandbox starts");
    let state = sandbox.state();
    let post = builder_for(state)
        .auth_mode(AuthMode::Jwt)
        .build()
        .expect("client");
    let err = post.find_agents(&agents_query()).await.expect_err("405");
    assert!(
        matches!(err, Error::Failure(Failure::Token { .. })),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(http::StatusCode::METHOD_NOT_ALLOWED));
    assert!(err.hint().contains("NSHIFT_JWT_METHOD"), "{}", err.hint());
    assert!(!err.is_ambiguous());
    assert_eq!(
        status_count(state, "/rs-extapi/v1/addresses/agents", 401),
        0
    );
    assert_eq!(
        state.faults.count("GET", "/rs-extapi/v1/addresses/agents"),
        0,
        "nothing sent"
    );

    let get = builder_for(state)
        .auth_mode(AuthMode::Jwt)
        .jwt_method(nshift_client::JwtMethod::Get)
        .build()
        .expect("client");
    get.find_agents(&agents_query()).await.expect("agents");
    assert_eq!(state.faults.count("GET", "/rs-extapi/v1/sessions/jwt"), 1);
}

/// The sandbox's router as an in-process transport: no sockets and no timers, so tokio's paused
/// clock (which the sandbox's virtual clock follows) moves only when the test advances it.
fn in_process(state: &SharedState) -> nshift_client::Transport {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let router = sandbox::router(state.clone());
    tower::util::BoxCloneSyncService::new(tower::service_fn(
        move |request: http::Request<Bytes>| {
            let router = router.clone();
            async move {
                let response = router
                    .oneshot(request.map(http_body_util::Full::new))
                    .await
                    .map_err(auth_core::Error::transport)?;
                let (parts, body) = response.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(auth_core::Error::transport)?
                    .to_bytes();
                Ok::<_, auth_core::Error>(http::Response::from_parts(parts, bytes))
            }
        },
    ))
}

#[tokio::test(start_paused = true)]
async fn jwt_is_refreshed_ahead_of_its_expiry_under_paused_time() {
    let state: SharedState = Arc::new(sandbox::AppState::new(
        config(),
        "http://127.0.0.1:9".to_owned(),
    ));
    let client = builder_for(&state)
        .auth_mode(AuthMode::Jwt)
        .transport(in_process(&state))
        .build()
        .expect("client");
    client.find_agents(&agents_query()).await.expect("agents");
    assert_eq!(state.nshift.jwt_sessions_issued(), 1);

    // 10 h 49 min: still fresh (the refresh starts 10 min before the 11 h the client uses it).
    tokio::time::advance(Duration::from_secs(10 * 3600 + 49 * 60)).await;
    client.find_agents(&agents_query()).await.expect("agents");
    assert_eq!(state.nshift.jwt_sessions_issued(), 1);

    // 10 h 52 min: due; the call goes on with the current JWT and one background refresh runs.
    tokio::time::advance(Duration::from_secs(3 * 60)).await;
    client.find_agents(&agents_query()).await.expect("agents");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(state.nshift.jwt_sessions_issued(), 2);

    // Another 11 h: the refreshed JWT ran out on the client's side first: a new one is fetched
    // before any request, so the sandbox (12 h) never answered 401.
    tokio::time::advance(Duration::from_secs(11 * 3600)).await;
    client.find_agents(&agents_query()).await.expect("agents");
    assert_eq!(state.nshift.jwt_sessions_issued(), 3);
    assert_eq!(
        status_count(&state, "/rs-extapi/v1/addresses/agents", 401),
        0
    );
    assert_eq!(
        state.faults.count("GET", "/rs-extapi/v1/addresses/agents"),
        4
    );
}

#[tokio::test]
async fn request_snapshots_of_address_price_history_and_jwt() {
    let sandbox = start().await;
    let recorder = Recorder::new(Duration::from_secs(10));
    let client = builder_for(sandbox.state())
        .transport(recorder.clone())
        .auth_mode(AuthMode::Jwt)
        .build()
        .expect("client");
    let seen: Arc<Mutex<Vec<RequestSnapshot>>> = Arc::default();
    let take = |recorder: &Recorder| -> Vec<RequestSnapshot> {
        let taken = recorder.take();
        seen.lock().expect("seen").extend(taken.iter().cloned());
        taken
    };

    client
        .check_address(
            &address("11151"),
            nshift_client::models::CheckAddressQueryLanguage::Se,
        )
        .await
        .expect("checked");
    let mut first = take(&recorder);
    assert_eq!(first.len(), 2, "the JWT, then the call: {first:?}");
    insta::assert_yaml_snapshot!("create_jwt_session", first.remove(0));
    insta::assert_yaml_snapshot!("check_address", first.remove(0));
    client.price(price_request("P15")).await.expect("price");
    insta::assert_yaml_snapshot!("get_price", take(&recorder).remove(0));
    client
        .fetch_price_history(FEED_START)
        .await
        .expect("history");
    insta::assert_yaml_snapshot!("fetch_price_history", take(&recorder).remove(0));

    let creds = sandbox.credentials().nshift;
    let all = serde_json::to_string(&*seen.lock().expect("seen")).expect("json");
    assert_eq!(seen.lock().expect("seen").len(), 4);
    assert!(!all.contains(&creds.secret_id));
    assert!(!all.contains("eyJ"), "no JWT in the snapshots");
}
