//! norce-client against the in-process sandbox (127.0.0.1 only) and against scripted
//! in-memory transports (paused tokio time, no network) for the timing-sensitive paths.
//!
//! Request snapshots: every request the client sends goes through a recording transport and
//! is stored as a redacted `conformance::RequestSnapshot` (path and query only, no host/port;
//! bearer tokens and the client secret redacted).

mod common;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use client_core::Settings;
use common::Recorder;
use futures::TryStreamExt as _;
use models_runtime::{DecimalNumber, Timestamp};
use norce_client::models::connect::operations::ConnectApi as _;
use norce_client::models::connect::{
    CancelOrderPayment, CancelOrderRequest, CodeValue, ConnectOrderStatus, DeliveryNote,
    DeliveryNoteItem, DeliveryNotePackage, GetJobQuery, OrderInfo, SendOrderStatusRequest,
    SkuOnhand, SkuOnhandField, SkuPriceList, SkuPriceListMandatoryField,
};
use norce_client::models::query::QueryOrdersQuery;
use norce_client::models::services::operations::ServicesApi as _;
use norce_client::models::services::{GetOrderQuery, ListOrders3Query};
use norce_client::{
    Error, ErrorKind, Failure, ImportOptions, NorceClient, NorceClientBuilder, RetryConfig,
    WaitOptions,
};
use sandbox::norce::NorceAccount;
use sandbox::{FaultRule, Sandbox, SandboxConfig};
use tower::Service;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Starts a sandbox at a fixed virtual time. Each gets its own client secret: the token cache
/// registry is process-wide and keyed by host:port and client id, and a port can be reused by a
/// later test, which must not inherit an earlier sandbox's token.
async fn start_with(mut config: SandboxConfig) -> Sandbox {
    static SEQ: AtomicU16 = AtomicU16::new(1);
    config.norce.client_secret = format!(
        "sandbox-norce-secret-{}",
        SEQ.fetch_add(1, Ordering::SeqCst)
    );
    config.start_time = Some("2026-03-02T08:00:00Z".parse().unwrap());
    Sandbox::start(config).await.expect("sandbox starts")
}

async fn start() -> Sandbox {
    start_with(SandboxConfig::default()).await
}

fn settings_for(sandbox: &Sandbox) -> Vec<(String, String)> {
    let c = sandbox.credentials().norce;
    vec![
        ("NORCE_BASE_URL".into(), c.base_url),
        ("NORCE_CLIENT_ID".into(), c.client_id),
        ("NORCE_CLIENT_SECRET".into(), c.client_secret),
        ("NORCE_APPLICATION_ID".into(), c.application_id.to_string()),
        ("NORCE_STAGE".into(), "playground".into()),
    ]
}

fn fast_retry() -> RetryConfig {
    RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(2))
}

/// A client for the sandbox built from settings, optionally over a recorder.
fn client(sandbox: &Sandbox, recorder: Option<&Recorder>) -> NorceClient {
    let mut builder =
        NorceClientBuilder::from_settings(&Settings::from_pairs(settings_for(sandbox)))
            .unwrap()
            .retry(fast_retry());
    if let Some(r) = recorder {
        builder = builder.transport(r.clone());
    }
    builder.build().unwrap()
}

type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// (URI, Authorization header) of one API request.
type ApiCall = (String, Option<String>);

/// A scripted transport: the token endpoint always succeeds; API calls get the queued
/// answers in order (the last one repeats). Every API request is logged.
#[derive(Clone)]
struct Scripted {
    answers: Arc<Mutex<VecDeque<http::Response<Bytes>>>>,
    last: Arc<Mutex<Option<http::Response<Bytes>>>>,
    api_calls: Arc<Mutex<Vec<ApiCall>>>,
    token_calls: Arc<AtomicU16>,
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response<Bytes> {
    let mut b = http::Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Bytes::from(body.to_owned())).unwrap()
}

fn clone_response(r: &http::Response<Bytes>) -> http::Response<Bytes> {
    let mut out = http::Response::new(r.body().clone());
    *out.status_mut() = r.status();
    *out.headers_mut() = r.headers().clone();
    out
}

impl Scripted {
    fn new(answers: Vec<http::Response<Bytes>>) -> Self {
        Self {
            answers: Arc::new(Mutex::new(answers.into())),
            last: Arc::default(),
            api_calls: Arc::default(),
            token_calls: Arc::default(),
        }
    }

    fn api_calls(&self) -> Vec<ApiCall> {
        self.api_calls.lock().unwrap().clone()
    }
}

impl Service<http::Request<Bytes>> for Scripted {
    type Response = http::Response<Bytes>;
    type Error = auth_core::Error;
    type Future = BoxFut<Result<http::Response<Bytes>, auth_core::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
        let path = request.uri().path().to_owned();
        if path.ends_with("/connect/token") {
            let n = self.token_calls.fetch_add(1, Ordering::SeqCst);
            let body = format!(
                r#"{{"access_token":"token-{n}","expires_in":3600,"token_type":"Bearer","scope":"playground"}}"#
            );
            return Box::pin(async move { Ok(answer(200, &[], &body)) });
        }
        let auth = request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        self.api_calls
            .lock()
            .unwrap()
            .push((request.uri().to_string(), auth));
        let next = self.answers.lock().unwrap().pop_front();
        let response = match next {
            Some(r) => {
                *self.last.lock().unwrap() = Some(clone_response(&r));
                r
            }
            None => clone_response(
                self.last
                    .lock()
                    .unwrap()
                    .as_ref()
                    .expect("a scripted answer"),
            ),
        };
        Box::pin(async move { Ok(response) })
    }
}

/// A fake loopback port per scripted client, so each gets its own shared token cache.
fn scripted_client(script: &Scripted) -> NorceClient {
    static PORT: AtomicU16 = AtomicU16::new(1);
    let port = PORT.fetch_add(1, Ordering::SeqCst);
    NorceClient::builder()
        .client_id("scripted")
        .client_secret("scripted-secret".to_owned().into())
        .application_id(1234)
        .scope("playground")
        .base_url(&format!("http://127.0.0.1:{port}"))
        .unwrap()
        .transport(script.clone())
        .build()
        .unwrap()
}

fn dec(text: &str) -> DecimalNumber {
    serde_json::from_str(text).unwrap()
}

fn orders_since_2020() -> ListOrders3Query {
    ListOrders3Query {
        from_date: Some(Timestamp::parse("2020-01-01T00:00:00.000Z").unwrap()),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Settings and environments

#[test]
fn settings_errors_name_the_setting() {
    let full = [
        ("NORCE_CLIENT_ID", "id"),
        ("NORCE_CLIENT_SECRET", "s3cr3t"),
        ("NORCE_APPLICATION_ID", "1042"),
        ("NORCE_CLIENT_SLUG", "norce-open-demo"),
        ("NORCE_REGION", "se"),
        ("NORCE_STAGE", "playground"),
    ];
    let without =
        |name: &str| Settings::from_pairs(full.iter().filter(|(k, _)| *k != name).copied());
    for name in [
        "NORCE_CLIENT_ID",
        "NORCE_CLIENT_SECRET",
        "NORCE_APPLICATION_ID",
        "NORCE_CLIENT_SLUG",
        "NORCE_REGION",
        "NORCE_STAGE",
    ] {
        let err = NorceClientBuilder::from_settings(&without(name)).unwrap_err();
        assert!(err.to_string().contains(name), "{name}: {err}");
        assert!(err.hint().contains(name), "{name}: {}", err.hint());
    }
    let with = |name: &'static str, value: &'static str| {
        Settings::from_pairs(
            full.iter()
                .filter(|(k, _)| *k != name)
                .copied()
                .chain([(name, value)]),
        )
    };
    for (name, value) in [
        ("NORCE_APPLICATION_ID", "abc"),
        ("NORCE_STAGE", "lab"),
        ("NORCE_REGION", "S E"),
        ("NORCE_BASE_URL", "http://norce.example.com"),
        ("NORCE_LEGACY_LAB_SCOPE", "maybe"),
        ("NORCE_TIMEOUT_SECS", "0"),
    ] {
        let err = NorceClientBuilder::from_settings(&with(name, value))
            .and_then(NorceClientBuilder::build)
            .unwrap_err();
        assert!(err.to_string().contains(name), "{name}: {err}");
        assert!(!format!("{err:?}").contains("s3cr3t"));
    }
    // The secret may come from a file.
    let dir = std::env::temp_dir().join(format!("norce-client-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("secret");
    std::fs::write(&path, "from-file\n").unwrap();
    let path = path.to_str().unwrap().to_owned();
    let settings = Settings::from_pairs(
        full.iter()
            .filter(|(k, _)| *k != "NORCE_CLIENT_SECRET")
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([("NORCE_CLIENT_SECRET_FILE".to_string(), path)]),
    );
    assert!(NorceClientBuilder::from_settings(&settings).is_ok());
}

#[tokio::test]
async fn environments_resolve_hosts_and_scopes() {
    let build = |pairs: &[(&str, &str)]| {
        let base = [
            ("NORCE_CLIENT_ID", "env-id"),
            ("NORCE_CLIENT_SECRET", "env-secret"),
            ("NORCE_APPLICATION_ID", "1042"),
        ];
        NorceClientBuilder::from_settings(&Settings::from_pairs(base.iter().chain(pairs).copied()))
            .unwrap()
            .build()
            .unwrap()
    };
    let playground = build(&[
        ("NORCE_CLIENT_SLUG", "norce-open-demo"),
        ("NORCE_REGION", "se"),
        ("NORCE_STAGE", "playground"),
    ]);
    assert_eq!(
        playground.endpoints().token_url.as_str(),
        "https://norce-open-demo.api-se.playground.norce.tech/identity/1.0/connect/token"
    );
    assert_eq!(
        playground.endpoints().connect.as_str(),
        "https://norce-open-demo.api-se.playground.norce.tech/"
    );
    assert_eq!(playground.scope(), "playground");
    let stage_lab = build(&[
        ("NORCE_CLIENT_SLUG", "acme"),
        ("NORCE_REGION", "se"),
        ("NORCE_STAGE", "stage"),
        ("NORCE_LEGACY_LAB_SCOPE", "true"),
    ]);
    assert_eq!(
        stage_lab.endpoints().services.as_str(),
        "https://acme.api-se.stage.norce.tech/"
    );
    assert_eq!(stage_lab.scope(), "lab");
    let production = build(&[
        ("NORCE_CLIENT_SLUG", "acme"),
        ("NORCE_REGION", "no"),
        ("NORCE_STAGE", "production"),
        ("NORCE_LEGACY_LAB_SCOPE", "true"),
    ]);
    assert_eq!(
        production.endpoints().query.as_str(),
        "https://acme.api-no.norce.tech/"
    );
    assert_eq!(production.scope(), "production");
    let storm = build(&[
        ("NORCE_CLIENT_SLUG", "acme"),
        ("NORCE_REGION", "se"),
        ("NORCE_STAGE", "stage"),
        ("NORCE_LEGACY_STORM_IDENTITY", "1"),
    ]);
    assert_eq!(
        storm.endpoints().token_url.as_str(),
        "https://identity.storm.io/1.0/connect/token"
    );
    let sandbox_like = build(&[
        ("NORCE_BASE_URL", "http://127.0.0.1:1/"),
        ("NORCE_SCOPE", "lab"),
    ]);
    assert_eq!(
        sandbox_like.endpoints().token_url.as_str(),
        "http://127.0.0.1:1/identity/1.0/connect/token"
    );
    assert_eq!(sandbox_like.scope(), "lab");
    assert!(!format!("{sandbox_like:?}").contains("env-secret"));
}

// ---------------------------------------------------------------------------------------------
// Every operation against the sandbox, with request snapshots

#[tokio::test]
async fn every_operation_with_request_snapshots() {
    let mut config = SandboxConfig::default();
    config.norce.query_page_size = 8;
    let sandbox = start_with(config).await;
    let recorder = Recorder::new(Duration::from_secs(10));
    let client = client(&sandbox, Some(&recorder));

    // verify = token + GetApplication.
    let app = client.verify().await.unwrap();
    assert_eq!(app.id, 1234);
    insta::assert_yaml_snapshot!("norce_verify", recorder.take());

    // ListOrders3: 20 orders, 7 per page.
    let pages: Vec<_> = client
        .list_orders(ListOrders3Query {
            page_size: Some(7),
            ..orders_since_2020()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        pages
            .iter()
            .map(|p| p.items.as_ref().map_or(0, Vec::len))
            .collect::<Vec<_>>(),
        vec![7, 7, 6]
    );
    assert!(pages.iter().all(|p| p.item_count == 20));
    insta::assert_yaml_snapshot!("norce_list_orders", recorder.take());

    // GetOrder.
    let first = &pages[0].items.as_ref().unwrap()[0];
    let query = GetOrderQuery {
        id: first.id.clone(),
        ..Default::default()
    };
    let order = client.get_order(&query).await.unwrap();
    assert_eq!(order.id, first.id);
    recorder.take();

    // Query 3.0: 20 orders, 8 per server page, following @odata.nextLink.
    let query = QueryOrdersQuery {
        orderby: Some("id".into()),
        count: Some(true),
        ..Default::default()
    };
    let qpages: Vec<_> = client.query_orders(query).try_collect().await.unwrap();
    assert_eq!(
        qpages.iter().map(|p| p.value.len()).collect::<Vec<_>>(),
        vec![8, 8, 4]
    );
    assert!(qpages.last().unwrap().odata_next_link.is_none());
    insta::assert_yaml_snapshot!("norce_query_orders", recorder.take());

    // Connect order methods on a seeded order.
    let target = pages
        .iter()
        .flat_map(|p| p.items.iter().flatten())
        .find(|o| o.status.as_deref() != Some("Delivered"))
        .unwrap()
        .clone();
    let quotation = target.quotation_id.unwrap();
    client
        .send_order_status(&SendOrderStatusRequest {
            client_order_ref: Some(quotation),
            erp_order_no: Some("SO-1001".into()),
            order_status: ConnectOrderStatus::Acknowledged,
            account_id: None,
            infos: Some(vec![OrderInfo {
                code: "ErpStatusText".into(),
                value: Some("Picked".into()),
            }]),
        })
        .await
        .unwrap();
    insta::assert_yaml_snapshot!("norce_send_order_status", recorder.take());
    let note = DeliveryNote {
        order_no: "SO-1001".into(),
        note_no: "DN-1001".into(),
        delivery_date: Timestamp::parse("2026-03-02T09:00:00Z").unwrap(),
        buyer_company_code: None,
        buyer_customer_code: None,
        delivery_address: None,
        delivery_name: None,
        delivery_attention: None,
        delivery_mode: Some("P19".into()),
        note_text: None,
        division_code: None,
        status_id: None,
        delivery_note_items: order
            .items
            .iter()
            .flatten()
            .take(1)
            .map(|i| DeliveryNoteItem {
                item_no: i.part_no.clone().unwrap(),
                qty: dec("1"),
                ..Default::default()
            })
            .collect::<Vec<_>>()
            .into(),
        delivery_note_packages: Some(vec![DeliveryNotePackage {
            parcel_number: "00370730253012345678".into(),
            status_id: None,
            id: None,
        }]),
    };
    client.create_delivery_note(&note).await.unwrap();
    let snaps = recorder.take();
    insta::assert_yaml_snapshot!("norce_create_delivery_note", snaps);
    let other = pages
        .iter()
        .flat_map(|p| p.items.iter().flatten())
        .find(|o| o.quotation_id != Some(quotation) && o.status.as_deref() != Some("Delivered"))
        .unwrap();
    // CancelOrder with a payment carrying every documented field (PaymentCode is an integer).
    client
        .cancel_order(&CancelOrderRequest {
            client_order_ref: other.quotation_id,
            payments: Some(vec![CancelOrderPayment {
                payment_code: Some(3),
                payment_method_code: Some("KLARNA".into()),
                payment_ref: "kl-5f2e9a10".into(),
                additional_info: Some(vec![CodeValue {
                    code: None,
                    code2: Some("KlarnaReference".into()),
                    id: None,
                    value: Some("4711".into()),
                }]),
                amount: Some(dec("349")),
                currency_code: Some("SEK".into()),
                payment_name: Some("Card".into()),
            }]),
            ..Default::default()
        })
        .await
        .unwrap();
    insta::assert_yaml_snapshot!("norce_cancel_order", recorder.take());

    // Imports: the header lists exactly what the rows set.
    let data = &sandbox.state().dataset;
    let (sku, location) = (
        data.products[0].sku.clone(),
        data.warehouses[0].location_code.clone(),
    );
    let rows = vec![
        SkuOnhand {
            part_no: sku.clone(),
            warehouse_code: location.clone(),
            location_code: location.clone(),
            onhand_value: Some(dec("42")),
            ..Default::default()
        },
        SkuOnhand {
            part_no: sku.clone(),
            warehouse_code: location.clone(),
            location_code: location.clone(),
            onhand_value: Some(dec("5")),
            is_active: Some(true),
            ..Default::default()
        },
    ];
    let job = client
        .import_onhands(&rows, &ImportOptions::new(1))
        .await
        .unwrap();
    assert_eq!(
        job.validation_summary
            .as_ref()
            .unwrap()
            .nr_of_validation_failures,
        Some(0)
    );
    let snaps = recorder.take();
    assert_eq!(snaps.len(), 1);
    let header = &snaps[0]
        .headers
        .iter()
        .find(|(k, _)| k == "x-stormconnect-header")
        .unwrap()
        .1;
    assert_eq!(
        header,
        r#"{"AccountId":1,"FullFile":false,"SerializationType":0,"SkuOnhandFieldsThatAreSet":["OnhandValue","IsActive"]}"#
    );
    insta::assert_yaml_snapshot!("norce_import_onhands", snaps);

    // Job/Get before the job is due, then wait after the sandbox clock moved on.
    let job_id: i32 = job.job_id.parse().unwrap();
    assert_eq!(
        client
            .get_job(&GetJobQuery { id: job_id })
            .await
            .unwrap()
            .status_id,
        1
    );
    sandbox.state().clock.advance(Duration::from_secs(10));
    let done = client
        .wait_for_import(&job, &WaitOptions::default())
        .await
        .unwrap();
    assert_eq!(done.status_id, 2);
    assert_eq!(done.fail, Some(0));
    let log = client.get_job_log(job_id).await.unwrap();
    assert!(
        log.iter().any(|e| e.message.starts_with("Import finished")),
        "{log:?}"
    );
    insta::assert_yaml_snapshot!("norce_job_get_and_log", recorder.take());

    // Prices, with codes instead of names.
    let prices = vec![SkuPriceList {
        part_no: sku.clone(),
        price_list_code: "SE-B2C".into(),
        currency_code: Some("SEK".into()),
        quantity_break: Some(1),
        price_sale: Some(dec("199")),
        price_recommended: Some(dec("249")),
        ..Default::default()
    }];
    let options = ImportOptions::new(1)
        .field_codes(true)
        .ignore_price_fields_when_empty(vec![SkuPriceListMandatoryField::PriceSale]);
    let job = client
        .import_sku_price_lists(&prices, &options)
        .await
        .unwrap();
    sandbox.state().clock.advance(Duration::from_secs(10));
    assert_eq!(
        client
            .wait_for_import(&job, &WaitOptions::default())
            .await
            .unwrap()
            .status_id,
        2
    );
    let snaps = recorder.take();
    insta::assert_yaml_snapshot!("norce_import_sku_price_lists", snaps[0]);
    // IgnoreSkuPriceListFieldsWhenEmpty breaking Norce's rules is refused before anything is
    // sent: a field the rows do not set, and one that may not be listed at all.
    for (field, needle) in [
        ("PriceCatalog", "SkuPriceListFieldsThatAreSet"),
        ("PriceRule", "PriceSale, CostPurchase, CostUnit"),
    ] {
        let options = ImportOptions::new(1)
            .ignore_price_fields_when_empty(vec![SkuPriceListMandatoryField::from(field)]);
        let err = client
            .import_sku_price_lists(&prices, &options)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Failure(Failure::InvalidRequest {
                    operation: "ImportSkuPriceLists",
                    ..
                })
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("`{field}`")) && text.contains(needle),
            "{text}"
        );
    }
    assert!(recorder.take().is_empty(), "nothing was sent");
    // No request carried a readable secret.
    let text = serde_json::to_string(&snaps).unwrap();
    assert!(!text.contains("sandbox-norce-secret") && !text.contains("Bearer "));
}

#[test]
fn fields_that_are_set_are_computed_not_listed() {
    let row = |f: fn(&mut SkuOnhand)| {
        let mut r = SkuOnhand {
            part_no: "1".into(),
            warehouse_code: "W".into(),
            location_code: "L".into(),
            ..Default::default()
        };
        f(&mut r);
        r
    };
    let rows = vec![
        row(|r| r.incoming_value = Some(dec("3"))),
        row(|r| r.next_delivery_date = Some(Timestamp::parse("2026-04-01T00:00:00Z").unwrap())),
        row(|r| {
            r.infos = Some(vec![CodeValue {
                code: Some("X".into()),
                code2: None,
                id: None,
                value: None,
            }])
        }),
    ];
    assert_eq!(
        norce_client::onhand_fields_that_are_set(&rows).unwrap(),
        vec![
            SkuOnhandField::IncomingValue,
            SkuOnhandField::NextDeliveryDate,
            SkuOnhandField::Infos
        ]
    );
    let err = norce_client::onhand_header(&[], &ImportOptions::new(1)).unwrap_err();
    assert!(
        matches!(err, Error::Failure(Failure::InvalidRequest { .. })),
        "{err}"
    );
    let nothing = norce_client::onhand_fields_that_are_set(&[row(|_| {})]).unwrap_err();
    assert!(nothing.to_string().contains("no row sets"), "{nothing}");
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[tokio::test]
async fn bad_secret_is_invalid_client_with_a_hint() {
    let sandbox = start().await;
    let mut pairs = settings_for(&sandbox);
    pairs.retain(|(k, _)| k != "NORCE_CLIENT_SECRET");
    pairs.push(("NORCE_CLIENT_SECRET".into(), "not-the-secret".into()));
    let client = NorceClientBuilder::from_settings(&Settings::from_pairs(pairs))
        .unwrap()
        .build()
        .unwrap();
    let err = client.verify().await.unwrap_err();
    assert!(
        matches!(err, Error::Failure(Failure::Token { .. })),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.oauth_error(), Some("invalid_client"));
    assert_eq!(err.status(), Some(http::StatusCode::UNAUTHORIZED));
    assert!(err.hint().contains("NORCE_CLIENT_SECRET"), "{}", err.hint());
    assert!(err.hint().contains("NORCE_CLIENT_ID"));
    assert!(!err.is_transient());
    for text in [err.to_string(), format!("{err:?}"), format!("{client:?}")] {
        assert!(!text.contains("not-the-secret"), "{text}");
    }
    // No API call was made without a token.
    assert_eq!(sandbox.state().faults.count("GET", "/commerce"), 0);
}

#[tokio::test]
async fn unknown_application_names_norce_application_id() {
    let sandbox = start().await;
    let mut pairs = settings_for(&sandbox);
    pairs.retain(|(k, _)| k != "NORCE_APPLICATION_ID");
    pairs.push(("NORCE_APPLICATION_ID".into(), "999".into()));
    let err = NorceClientBuilder::from_settings(&Settings::from_pairs(pairs))
        .unwrap()
        .build()
        .unwrap()
        .verify()
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND));
    assert!(
        err.hint().contains("NORCE_APPLICATION_ID"),
        "{}",
        err.hint()
    );
    assert!(err.response().unwrap().body.contains("999"));
}

#[tokio::test]
async fn clients_in_one_process_share_one_token() {
    let sandbox = start().await;
    let a = client(&sandbox, None);
    let b = client(&sandbox, None);
    assert!(a.shares_token_cache_with(&b));
    a.verify().await.unwrap();
    b.verify().await.unwrap();
    b.get_application(&Default::default()).await.unwrap();
    assert_eq!(
        sandbox
            .state()
            .faults
            .count("POST", "/identity/1.0/connect/token"),
        1
    );
    assert_eq!(a.token_fetch_count(), 1);
    // Another scope is another token.
    let mut pairs = settings_for(&sandbox);
    pairs.push(("NORCE_SCOPE".into(), "lab".into()));
    let lab = NorceClientBuilder::from_settings(&Settings::from_pairs(pairs))
        .unwrap()
        .build()
        .unwrap();
    assert!(!lab.shares_token_cache_with(&a));
    lab.verify().await.unwrap();
    assert_eq!(
        sandbox
            .state()
            .faults
            .count("POST", "/identity/1.0/connect/token"),
        2
    );
}

#[tokio::test]
async fn expired_token_is_refreshed_once_and_the_call_replayed() {
    let sandbox = start().await;
    let client = client(&sandbox, None);
    client.verify().await.unwrap();
    // The sandbox's clock moves past the token's 3600 s; the client's cache still trusts it.
    sandbox.state().clock.advance(Duration::from_secs(3700));
    let app = client.get_application(&Default::default()).await.unwrap();
    assert_eq!(app.id, 1234);
    let log = sandbox.state().faults.requests();
    let statuses: Vec<_> = log
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("POST", "/identity/1.0/connect/token", 200),
            ("GET", "/commerce/metadata/1.1/GetApplication", 200),
            ("GET", "/commerce/metadata/1.1/GetApplication", 401),
            ("POST", "/identity/1.0/connect/token", 200),
            ("GET", "/commerce/metadata/1.1/GetApplication", 200),
        ]
    );
    assert_eq!(client.token_fetch_count(), 2);
}

#[tokio::test]
async fn token_endpoint_429_is_throttling_with_retry_after() {
    let mut config = SandboxConfig::default();
    config.norce.token_burst = 1;
    config.norce.extra_accounts = vec![NorceAccount {
        client_id: "second".into(),
        client_secret: "second-secret".into(),
    }];
    let sandbox = start_with(config).await;
    client(&sandbox, None).verify().await.unwrap();
    // Another client id has its own client-side limiter, but the server counts per IP.
    let mut pairs = settings_for(&sandbox);
    pairs.retain(|(k, _)| k != "NORCE_CLIENT_ID" && k != "NORCE_CLIENT_SECRET");
    pairs.extend([
        ("NORCE_CLIENT_ID".into(), "second".into()),
        ("NORCE_CLIENT_SECRET".into(), "second-secret".into()),
    ]);
    let second = NorceClientBuilder::from_settings(&Settings::from_pairs(pairs))
        .unwrap()
        .build()
        .unwrap();
    let err = second.verify().await.unwrap_err();
    match &err {
        Error::Failure(Failure::Token {
            source:
                auth_core::TokenError::RateLimited {
                    retry_after: Some(wait),
                },
            ..
        }) => assert_eq!(*wait, Duration::from_secs(20)),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert!(err.is_transient());
    assert!(
        err.hint().contains("3 requests per minute"),
        "{}",
        err.hint()
    );
}

// ---------------------------------------------------------------------------------------------
// Throttling, errors and timeouts

#[tokio::test]
async fn injected_429_is_retried() {
    let sandbox = start().await;
    let client = client(&sandbox, None);
    client.verify().await.unwrap();
    sandbox
        .state()
        .faults
        .add(FaultRule {
            path_prefix: "/commerce/metadata".into(),
            rate_429: 1.0,
            retry_after_secs: Some(0),
            remaining: Some(1),
            ..Default::default()
        })
        .unwrap();
    client.get_application(&Default::default()).await.unwrap();
    let tail: Vec<_> = sandbox
        .state()
        .faults
        .requests()
        .iter()
        .rev()
        .take(2)
        .map(|r| (r.status, r.fault.clone()))
        .collect();
    assert_eq!(tail, vec![(200, None), (429, Some("429".into()))]);
    // A POST without the idempotent mark (CreateDeliveryNote) is not repeated.
    sandbox
        .state()
        .faults
        .add(FaultRule {
            path_prefix: "/commerce/connect/4.0/Order/CreateDeliveryNote".into(),
            rate_429: 1.0,
            retry_after_secs: Some(0),
            ..Default::default()
        })
        .unwrap();
    let note: DeliveryNote = serde_json::from_value(
        serde_json::json!({"OrderNo": "X", "NoteNo": "N", "DeliveryDate": "2026-03-02T09:00:00Z"}),
    )
    .unwrap();
    let err = client.create_delivery_note(&note).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err:?}");
    assert_eq!(err.status(), Some(http::StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(
        sandbox
            .state()
            .faults
            .count("POST", "/commerce/connect/4.0/Order/CreateDeliveryNote"),
        1
    );
}

#[tokio::test]
async fn job_log_is_a_list_or_norces_single_sample_object() {
    // A real log is a list; Norce's published GetLog sample is a single JobLogDto object.
    let entry = r#"{"SeverityId":1,"Message":"Starting import.","TimeStamp":"2026-03-02T08:00:00","ImportedRow":null}"#;
    let script = Scripted::new(vec![
        answer(200, &[], &format!("[{entry},{entry}]")),
        answer(
            200,
            &[],
            r#"{"SeverityId":3,"Message":"PartNo 'x' does not exist.","TimeStamp":"2026-03-02T08:00:01","ImportedRow":"x"}"#,
        ),
    ]);
    let client = scripted_client(&script);
    let log = client.get_job_log(7).await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].message, "Starting import.");
    let single = client.get_job_log(7).await.unwrap();
    assert_eq!(single.len(), 1);
    assert_eq!(single[0].severity_id, 3);
    assert_eq!(single[0].imported_row.as_deref(), Some("x"));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let script = Scripted::new(vec![
        answer(429, &[("retry-after", "7")], ""),
        answer(200, &[], r#"{"Id":1234}"#),
    ]);
    let client = scripted_client(&script);
    let started = tokio::time::Instant::now();
    client.get_application(&Default::default()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(script.api_calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn persistent_429_becomes_throttled_with_the_body() {
    let script = Scripted::new(vec![answer(
        429,
        &[("retry-after", "2"), ("x-request-id", "req-9")],
        r#"{"Message":"slow down"}"#,
    )]);
    let client = scripted_client(&script);
    let err = client
        .get_application(&Default::default())
        .await
        .unwrap_err();
    match &err {
        Error::Failure(Failure::Http(r)) => {
            assert_eq!(r.status, http::StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(r.retry_after, Some(Duration::from_secs(2)));
            assert_eq!(r.request_id.as_deref(), Some("req-9"));
            assert_eq!(r.body, r#"{"Message":"slow down"}"#);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Throttled);
    assert_eq!(script.api_calls().len(), 3, "three attempts");
}

#[tokio::test(start_paused = true)]
async fn status_codes_are_told_apart() {
    // 403: forbidden, kept raw with the request id.
    let script = Scripted::new(vec![answer(
        403,
        &[("x-request-id", "abc-1")],
        r#"{"Message":"Access denied for application 1234."}"#,
    )]);
    let err = scripted_client(&script)
        .get_application(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::FORBIDDEN), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(err.request_id(), Some("abc-1"));
    assert!(err.hint().contains("NORCE_APPLICATION_ID"));
    // 400 about the application id.
    let script = Scripted::new(vec![answer(
        400,
        &[],
        r#"{"Message":"parameter `ApplicationId`: is required but missing"}"#,
    )]);
    let err = scripted_client(&script)
        .get_application(&Default::default())
        .await
        .unwrap_err();
    match &err {
        Error::Validation { messages, .. } => assert_eq!(
            messages,
            &vec!["parameter `ApplicationId`: is required but missing".to_owned()]
        ),
        other => panic!("{other:?}"),
    }
    assert!(err.hint().contains("NORCE_APPLICATION_ID"));
    // 401 twice: refreshed once, then Unauthorized.
    let script = Scripted::new(vec![answer(
        401,
        &[],
        r#"{"Message":"Authorization has been denied for this request."}"#,
    )]);
    let err = scripted_client(&script)
        .get_application(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(http::StatusCode::UNAUTHORIZED),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    // The 401 answer is kept, body included.
    assert!(err.response().unwrap().body.contains("denied"), "{err:?}");
    let auths: Vec<_> = script
        .api_calls()
        .into_iter()
        .map(|(_, a)| a.unwrap())
        .collect();
    assert_eq!(
        auths,
        vec!["Bearer token-0".to_owned(), "Bearer token-1".to_owned()]
    );
    assert!(err.hint().contains("NORCE_STAGE"));
    // 500: the platform's own error, transient, raw body kept.
    let script = Scripted::new(vec![answer(500, &[], "<html>oops</html>")]);
    let err = scripted_client(&script)
        .get_application(&Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Failure(Failure::Http(_))), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(err.is_transient());
    assert_eq!(err.response().unwrap().body, "<html>oops</html>");
    // A success answer that does not fit the model.
    let script = Scripted::new(vec![answer(200, &[], r#"{"Name":"no id"}"#)]);
    let err = scripted_client(&script)
        .get_application(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Failure(Failure::Decode { .. })),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn transport_timeout_is_a_timeout() {
    #[derive(Clone)]
    struct Slow;
    impl Service<http::Request<Bytes>> for Slow {
        type Response = http::Response<Bytes>;
        type Error = auth_core::Error;
        type Future = BoxFut<Result<http::Response<Bytes>, auth_core::Error>>;
        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, request: http::Request<Bytes>) -> Self::Future {
            Box::pin(async move {
                if request.uri().path().ends_with("/connect/token") {
                    return Ok(answer(
                        200,
                        &[],
                        r#"{"access_token":"t","expires_in":3600}"#,
                    ));
                }
                let elapsed =
                    tokio::time::timeout(Duration::from_secs(30), std::future::pending::<()>())
                        .await
                        .unwrap_err();
                Err(auth_core::Error::transport(elapsed))
            })
        }
    }
    let client = NorceClient::builder()
        .client_id("slow")
        .client_secret("x".to_owned().into())
        .application_id(1)
        .scope("playground")
        .base_url("http://127.0.0.1:9999")
        .unwrap()
        .transport(Slow)
        .build()
        .unwrap();
    let err = client
        .get_application(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Failure(Failure::Timeout { .. })),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Transient, "a GET is safe to repeat");
    assert!(err.hint().contains("NORCE_TIMEOUT_SECS"));
}

// ---------------------------------------------------------------------------------------------
// Paging edge cases

#[tokio::test]
async fn list_orders_needs_a_filter_and_stops_on_errors() {
    let sandbox = start().await;
    let client = client(&sandbox, None);
    let result: Result<Vec<_>, _> = client
        .list_orders(ListOrders3Query::default())
        .try_collect()
        .await;
    assert!(
        matches!(
            result,
            Err(Error::Failure(Failure::InvalidRequest {
                operation: "ListOrders3",
                ..
            }))
        ),
        "{result:?}"
    );
    assert_eq!(sandbox.state().faults.count("GET", "/commerce"), 0);
    // Exactly one page when the page size covers everything.
    let pages: Vec<_> = client
        .list_orders(ListOrders3Query {
            page_size: Some(50),
            ..orders_since_2020()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 1);
    // A bad $filter is the platform's OData error, kept as data.
    let err = client
        .query_orders(QueryOrdersQuery {
            filter: Some("nope eq 1".into()),
            ..Default::default()
        })
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    match &err {
        Error::Validation { messages, .. } => {
            assert!(messages.iter().any(|m| m.contains("nope")), "{messages:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn foreign_next_link_is_not_followed() {
    let script = Scripted::new(vec![answer(
        200,
        &[],
        r#"{"value":[],"@odata.nextLink":"https://evil.example/commerce/query/3.0/Orders/Orders?$skip=8"}"#,
    )]);
    let client = scripted_client(&script);
    let results: Vec<_> =
        futures::StreamExt::collect::<Vec<_>>(client.query_orders(QueryOrdersQuery::default()))
            .await;
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert!(
        matches!(&results[1], Err(Error::InvalidResponse { .. })),
        "{:?}",
        results[1]
    );
    assert_eq!(script.api_calls().len(), 1);
    // A relative link is resolved against the Query root.
    let script = Scripted::new(vec![
        answer(
            200,
            &[],
            r#"{"value":[],"@odata.nextLink":"/commerce/query/3.0/Orders/Orders?$skip=8"}"#,
        ),
        answer(200, &[], r#"{"value":[]}"#),
    ]);
    let client = scripted_client(&script);
    let pages: Vec<_> = client
        .query_orders(QueryOrdersQuery::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 2);
    assert!(
        script.api_calls()[1]
            .0
            .ends_with("/commerce/query/3.0/Orders/Orders?$skip=8"),
        "{:?}",
        script.api_calls()
    );
}

// ---------------------------------------------------------------------------------------------
// Jobs

#[tokio::test]
async fn failed_import_job_carries_summary_and_log() {
    let sandbox = start().await;
    let client = client(&sandbox, None);
    let location = sandbox.state().dataset.warehouses[0].location_code.clone();
    let rows = vec![SkuOnhand {
        part_no: "NO-SUCH-SKU".into(),
        warehouse_code: location.clone(),
        location_code: location,
        onhand_value: Some(dec("1")),
        ..Default::default()
    }];
    let response = client
        .import_onhands(&rows, &ImportOptions::new(1))
        .await
        .unwrap();
    assert_eq!(
        response
            .validation_summary
            .as_ref()
            .unwrap()
            .nr_of_validation_failures,
        Some(1)
    );
    sandbox.state().clock.advance(Duration::from_secs(10));
    let err = client
        .wait_for_import(&response, &WaitOptions::default())
        .await
        .unwrap_err();
    let Error::JobFailed(failure) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failure.job.status_id, norce_client::JOB_VALIDATION_FAILED);
    assert!(failure.validation_summary.is_some());
    assert!(
        failure
            .log
            .iter()
            .any(|e| e.message.contains("NO-SUCH-SKU")),
        "{:?}",
        failure.log
    );
    assert!(failure.problems().iter().any(|m| m.contains("NO-SUCH-SKU")));
    assert!(err.hint().contains("validation"), "{}", err.hint());
    // A wrong AccountId is refused at once (400) with a hint.
    let err = client
        .import_onhands(&rows, &ImportOptions::new(77))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation { .. }), "{err:?}");
    assert!(err.hint().contains("AccountId"), "{}", err.hint());
}

fn job_json(status: i32) -> String {
    format!(
        r#"{{"JobId":7,"StatusId":{status},"IsFinished":{}}}"#,
        status != 1
    )
}

#[tokio::test(start_paused = true)]
async fn wait_for_job_backs_off_until_done() {
    let script = Scripted::new(vec![
        answer(200, &[], &job_json(1)),
        answer(200, &[], &job_json(1)),
        answer(200, &[], &job_json(1)),
        answer(200, &[], &job_json(2)),
    ]);
    let client = scripted_client(&script);
    let started = tokio::time::Instant::now();
    let job = client
        .wait_for_job(7, &WaitOptions::default())
        .await
        .unwrap();
    assert_eq!(job.status_id, 2);
    // Polls at 0, 1, 3 and 7 s.
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert!(
        script
            .api_calls()
            .iter()
            .all(|(u, _)| u.ends_with("/commerce/connect/4.0/Job/Get?id=7"))
    );
}

#[tokio::test(start_paused = true)]
async fn wait_for_job_times_out() {
    let script = Scripted::new(vec![answer(200, &[], &job_json(1))]);
    let client = scripted_client(&script);
    let err = client
        .wait_for_job(7, &WaitOptions::default().timeout(Duration::from_secs(20)))
        .await
        .unwrap_err();
    match err {
        Error::JobTimeout {
            job_id: 7,
            waited,
            last_status: Some(1),
        } => assert_eq!(waited, Duration::from_secs(20)),
        other => panic!("{other:?}"),
    }
    // 0, 1, 3, 7, 15, 20.
    assert_eq!(script.api_calls().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn failed_job_without_summary_reads_the_log() {
    let script = Scripted::new(vec![
        answer(200, &[], &job_json(3)),
        answer(
            200,
            &[],
            r#"[{"SeverityId":1,"Message":"Starting import."},{"SeverityId":3,"Message":"Deadlock"},{"SeverityId":1,"Message":"Import finished."}]"#,
        ),
    ]);
    let client = scripted_client(&script);
    let err = client
        .wait_for_job(7, &WaitOptions::default())
        .await
        .unwrap_err();
    let Error::JobFailed(failure) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failure.problems(), vec!["Deadlock".to_owned()]);
    assert!(err.to_string().contains("Deadlock"));
    assert!(
        script.api_calls()[1]
            .0
            .ends_with("/commerce/connect/4.0/Job/GetLog?id=7")
    );
}
