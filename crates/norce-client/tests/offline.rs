//! The client's own rules, through its public API and an in-memory transport (no network):
//! endpoints and scopes, error messages, import headers, Query navigation names.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::TryStreamExt as _;
use norce_client::models::connect::operations::ConnectApi as _;
use norce_client::models::connect::{
    SkuOnhand, SkuOnhandField, SkuPriceList, SkuPriceListField, SkuPriceListMandatoryField,
};
use norce_client::models::query::QueryOrdersQuery;
use norce_client::models::services::operations::ServicesApi as _;
use norce_client::{
    Endpoints, Environment, Error, Failure, ImportOptions, LEGACY_STORM_TOKEN_URL,
    NAVIGATION_SETTING, Navigation, NorceClient, QueryNavigation, Settings, Stage,
};

type Seen = Arc<Mutex<Vec<http::Request<Bytes>>>>;

/// A client whose transport answers the token endpoint, and every API call with
/// `(status, body)`; the API requests are kept. Each gets its own loopback port, so its own
/// shared token cache.
fn client(status: u16, body: &'static str, navigation: QueryNavigation) -> (NorceClient, Seen) {
    static PORT: AtomicU16 = AtomicU16::new(1);
    let seen = Seen::default();
    let log = Arc::clone(&seen);
    let transport = tower::service_fn(move |request: http::Request<Bytes>| {
        let token = request.uri().path().ends_with("/connect/token");
        let (status, body) = if token {
            (200, r#"{"access_token":"t","expires_in":3600}"#)
        } else {
            log.lock().unwrap().push(request);
            (status, body)
        };
        let response = http::Response::builder().status(status);
        std::future::ready(Ok::<_, auth_core::Error>(
            response.body(Bytes::from_static(body.as_bytes())).unwrap(),
        ))
    });
    let port = PORT.fetch_add(1, Ordering::SeqCst);
    let client = NorceClient::builder()
        .client_id("offline")
        .client_secret("offline-secret".to_owned().into())
        .application_id(1234)
        .scope("playground")
        .base_url(&format!("http://127.0.0.1:{port}"))
        .unwrap()
        .query_navigation(navigation)
        .transport(transport)
        .build()
        .unwrap();
    (client, seen)
}

fn dec(s: &str) -> models_runtime::DecimalNumber {
    serde_json::from_str(s).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Endpoints and scopes

#[test]
fn hosts_follow_the_stage() {
    let playground = Environment::norce("norce-open-demo", "se", Stage::Playground);
    let e = Endpoints::resolve(&playground, false).unwrap();
    assert_eq!(
        e.token_url.as_str(),
        "https://norce-open-demo.api-se.playground.norce.tech/identity/1.0/connect/token"
    );
    assert_eq!(
        e.services.as_str(),
        "https://norce-open-demo.api-se.playground.norce.tech/"
    );
    let production = Environment::norce("shop", "se", Stage::Production);
    let p = Endpoints::resolve(&production, false).unwrap();
    assert_eq!(p.query.as_str(), "https://shop.api-se.norce.tech/");
    let stage = Endpoints::resolve(&Environment::norce("acme", "se", Stage::Stage), false).unwrap();
    assert_eq!(
        stage.connect.as_str(),
        "https://acme.api-se.stage.norce.tech/"
    );
    let storm = Endpoints::resolve(&Environment::norce("acme", "se", Stage::Stage), true).unwrap();
    assert_eq!(storm.token_url.as_str(), LEGACY_STORM_TOKEN_URL);
    let err =
        Endpoints::resolve(&Environment::norce("Acme!", "se", Stage::Stage), false).unwrap_err();
    assert_eq!(err.setting(), "NORCE_CLIENT_SLUG");
    let err =
        Endpoints::resolve(&Environment::norce("acme", "s-e", Stage::Stage), false).unwrap_err();
    assert_eq!(err.setting(), "NORCE_REGION");
}

#[test]
fn base_url_keeps_its_prefix() {
    let env = Environment::base_url("http://127.0.0.1:8787/norce/", None).unwrap();
    let e = Endpoints::resolve(&env, false).unwrap();
    assert_eq!(
        e.token_url.as_str(),
        "http://127.0.0.1:8787/norce/identity/1.0/connect/token"
    );
    assert_eq!(
        client_core::join_path(&e.services, "/commerce/x").as_str(),
        "http://127.0.0.1:8787/norce/commerce/x"
    );
    assert_eq!(
        Environment::base_url("http://example.com", None)
            .unwrap_err()
            .setting(),
        "NORCE_BASE_URL"
    );
}

/// The scope a client built with these settings uses.
fn scope(explicit: Option<&str>, stage: Option<Stage>, legacy_lab: bool) -> Result<String, Error> {
    let mut builder = NorceClient::builder()
        .client_id("scopes")
        .client_secret("s".to_owned().into())
        .application_id(1)
        .environment(Environment::base_url("http://127.0.0.1:9", stage)?)
        .legacy_lab_scope(legacy_lab);
    if let Some(scope) = explicit {
        builder = builder.scope(scope);
    }
    Ok(builder.build()?.scope().to_owned())
}

#[test]
fn scopes() {
    let scope = |e, s, l| scope(e, s, l).unwrap();
    // The current docs: playground, stage or prod.
    assert_eq!(scope(None, Some(Stage::Playground), false), "playground");
    assert_eq!(scope(None, Some(Stage::Stage), false), "stage");
    assert_eq!(scope(None, Some(Stage::Production), false), "prod");
    // The legacy values: lab, and production.
    assert_eq!(scope(None, Some(Stage::Playground), true), "lab");
    assert_eq!(scope(None, Some(Stage::Stage), true), "lab");
    assert_eq!(scope(None, Some(Stage::Production), true), "production");
    // NORCE_SCOPE wins, whatever it says (trimmed; blank is no override).
    for explicit in ["production", "prod", "lab", "qa", "custom"] {
        assert_eq!(
            scope(Some(explicit), Some(Stage::Production), false),
            explicit
        );
    }
    assert_eq!(scope(Some(" qa "), None, true), "qa");
    assert_eq!(scope(Some("  "), Some(Stage::Production), false), "prod");
    match self::scope(None, None, false) {
        Err(Error::Settings(e)) => assert_eq!(e.setting(), "NORCE_STAGE"),
        other => panic!("{other:?}"),
    }
    assert_eq!(Stage::Production.scope(false), "prod");
    assert_eq!(Stage::Stage.scope(true), "lab");
    assert_eq!(Stage::Stage.to_string(), "stage");
    assert_eq!(" Playground".parse::<Stage>(), Ok(Stage::Playground));
    assert_eq!("PROD".parse::<Stage>(), Ok(Stage::Production));
    assert!("lab".parse::<Stage>().is_err());
}

// ---------------------------------------------------------------------------------------------
// Error messages

#[tokio::test]
async fn messages_from_common_bodies() {
    for (body, expected) in [
        (
            r#"{"Message":"The request is invalid.","ModelState":{"x":["ApplicationId is missing"]}}"#,
            &["The request is invalid.", "ApplicationId is missing"][..],
        ),
        (
            r#"{"error":{"code":"","message":"bad $filter"}}"#,
            &["bad $filter"],
        ),
        ("upstream down", &["upstream down"]),
    ] {
        let (client, _) = client(400, body, QueryNavigation::default());
        let err = client
            .get_application(&Default::default())
            .await
            .unwrap_err();
        let Error::Validation { messages, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(messages, expected);
        if expected.len() == 2 {
            assert!(
                err.hint().contains("NORCE_APPLICATION_ID"),
                "{}",
                err.hint()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Import headers

#[test]
fn onhand_fields_follow_the_rows() {
    let rows = vec![
        SkuOnhand {
            part_no: "1".into(),
            warehouse_code: "W".into(),
            location_code: "L".into(),
            incoming_value: Some(dec("2")),
            ..Default::default()
        },
        SkuOnhand {
            part_no: "2".into(),
            warehouse_code: "W".into(),
            location_code: "L".into(),
            onhand_value: Some(dec("5")),
            ..Default::default()
        },
    ];
    assert_eq!(
        norce_client::onhand_fields_that_are_set(&rows).unwrap(),
        vec![SkuOnhandField::OnhandValue, SkuOnhandField::IncomingValue]
    );
    let bare = vec![SkuOnhand {
        part_no: "1".into(),
        ..Default::default()
    }];
    assert!(norce_client::onhand_fields_that_are_set(&bare).is_err());
    let old = vec![SkuOnhand {
        on_order_value: Some(dec("1")),
        onhand_value: Some(dec("1")),
        ..Default::default()
    }];
    let err = norce_client::onhand_fields_that_are_set(&old).unwrap_err();
    assert!(err.to_string().contains("OnOrderValue"), "{err}");
}

#[tokio::test]
async fn price_fields_and_codes() {
    let rows = vec![SkuPriceList {
        part_no: "1".into(),
        price_list_code: "SE".into(),
        currency_code: Some("SEK".into()),
        price_sale: Some(dec("199")),
        price_catalog: Some(dec("249")),
        price_rule_value: Some(dec("10")),
        ..Default::default()
    }];
    let header = norce_client::price_list_header(&rows, &ImportOptions::new(1)).unwrap();
    assert_eq!(
        header.sku_price_list_fields_that_are_set,
        vec![
            SkuPriceListField::PriceSale,
            SkuPriceListField::PriceCatalog,
            SkuPriceListField::PriceRule
        ]
    );
    // Sent as codes, the ignore list too.
    let (client, seen) = client(200, r#"{"JobId":"1"}"#, QueryNavigation::default());
    let codes = ImportOptions::new(1).field_codes(true);
    let ignore = codes.clone().ignore_price_fields_when_empty(vec![
        SkuPriceListMandatoryField::PriceSale,
        SkuPriceListMandatoryField::PriceCatalog,
    ]);
    for options in [codes, ignore] {
        client
            .import_sku_price_lists(&rows, &options)
            .await
            .unwrap();
    }
    let headers: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            r.headers()["x-stormconnect-header"]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        headers,
        [
            r#"{"AccountId":1,"FullFile":false,"SerializationType":0,"SkuPriceListFieldsThatAreSet":[3,8,12]}"#,
            r#"{"AccountId":1,"FullFile":false,"IgnoreSkuPriceListFieldsWhenEmpty":[3,8],"SerializationType":0,"SkuPriceListFieldsThatAreSet":[3,8,12]}"#
        ]
    );
}

/// Every field a row can set, sent as Norce's code (S-HDR-ONHAND, S-HDR-SKUPRICE).
#[tokio::test]
async fn every_settable_field_has_norces_code() {
    let (client, seen) = client(200, r#"{"JobId":"1"}"#, QueryNavigation::default());
    let codes = ImportOptions::new(1).field_codes(true);
    let onhand = SkuOnhand {
        part_no: "1".into(),
        onhand_value: Some(dec("1")),
        incoming_value: Some(dec("1")),
        next_delivery_date: Some("2026-04-01T00:00:00Z".parse().unwrap()),
        lead_time_day_count: Some(1),
        minimum_value: Some(dec("1")),
        maximum_value: Some(dec("1")),
        is_active: Some(true),
        infos: Some(vec![]),
        ..Default::default()
    };
    client.import_onhands(&[onhand], &codes).await.unwrap();
    let price = SkuPriceList {
        part_no: "1".into(),
        price_sale: Some(dec("1")),
        cost_purchase: Some(dec("1")),
        cost_unit: Some(dec("1")),
        price_recommended: Some(dec("1")),
        price_previous: Some(dec("1")),
        price_catalog: Some(dec("1")),
        is_price_discountable: Some(true),
        is_active: Some(true),
        price_rule: Some(1),
        ..Default::default()
    };
    client
        .import_sku_price_lists(&[price], &codes)
        .await
        .unwrap();
    let headers: Vec<serde_json::Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(r.headers()["x-stormconnect-header"].as_bytes()).unwrap())
        .collect();
    assert_eq!(
        headers[0]["SkuOnhandFieldsThatAreSet"],
        serde_json::json!([3, 4, 5, 6, 8, 9, 10, 11])
    );
    assert_eq!(
        headers[1]["SkuPriceListFieldsThatAreSet"],
        serde_json::json!([3, 4, 5, 6, 7, 8, 9, 10, 12])
    );
}

#[test]
fn ignore_fields_follow_norces_two_rules() {
    let rows = vec![SkuPriceList {
        part_no: "1".into(),
        price_list_code: "SE".into(),
        price_sale: Some(dec("199")),
        price_rule: Some(2),
        is_active: Some(true),
        ..Default::default()
    }];
    let with = |fields: &[&str]| {
        ImportOptions::new(1).ignore_price_fields_when_empty(
            fields
                .iter()
                .map(|f| SkuPriceListMandatoryField::from(*f))
                .collect(),
        )
    };
    // Allowed and set by the rows.
    let header = norce_client::price_list_header(&rows, &with(&["PriceSale", "IsActive"])).unwrap();
    assert_eq!(
        header.ignore_sku_price_list_fields_when_empty,
        Some(vec![
            SkuPriceListMandatoryField::PriceSale,
            SkuPriceListMandatoryField::IsActive
        ])
    );
    // PriceRule is set by the rows but may not be listed: named, with the allowed values.
    let err = norce_client::price_list_header(&rows, &with(&["PriceRule"])).unwrap_err();
    let text = err.to_string();
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
    assert!(
        text.contains("`PriceRule`")
            && text.contains(
                "PriceSale, CostPurchase, CostUnit, PriceRecommended, PricePrevious, PriceCatalog, IsActive"
            ),
        "{text}"
    );
    // Allowed but not set by any row.
    let text = norce_client::price_list_header(&rows, &with(&["CostUnit"]))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("`CostUnit`") && text.contains("SkuPriceListFieldsThatAreSet"),
        "{text}"
    );
    assert!(text.contains("[PriceSale, IsActive, PriceRule]"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Query navigation names

#[test]
fn defaults_are_the_spec_names_and_expand_nests_the_note_navigations() {
    let navigation = QueryNavigation::default();
    assert_eq!(
        navigation.expand(&[
            Navigation::OrderItems,
            Navigation::ShipTo,
            Navigation::DeliveryNotes
        ]),
        "orderItem,shipToCustomerInfo,deliveryNote($expand=deliveryNoteItem,deliveryNotePackage)"
    );
}

#[tokio::test]
async fn configured_names_are_sent_and_read_back_as_the_spec_names() {
    let settings = Settings::from_pairs([(
        NAVIGATION_SETTING,
        "order_items=orderItems, delivery_notes=deliveryNotes,delivery_note_items=items",
    )]);
    let navigation = QueryNavigation::from_settings(&settings).unwrap();
    assert_eq!(navigation.expand(&[Navigation::OrderItems]), "orderItems");
    let page = r#"{"value": [{"id": 1, "orderNo": "1", "orderItems": [{"partNo": "A"}], "deliveryNotes": [{"noteNo": "N", "items": [{"partNo": "A"}]}]}]}"#;
    let (client, _) = client(200, page, navigation);
    let pages: Vec<_> = client
        .query_orders(QueryOrdersQuery::default())
        .try_collect()
        .await
        .unwrap();
    let order = &pages[0].value[0];
    let items = order.order_item.as_ref().unwrap();
    assert_eq!(items[0].part_no.as_deref(), Some("A"));
    let notes = order.delivery_note.as_ref().unwrap();
    assert_eq!(
        notes[0].delivery_note_item.as_ref().unwrap()[0].part_no,
        "A"
    );
}

#[test]
fn bad_settings_name_the_setting_and_the_keys() {
    for bad in ["order_items", "lines=orderItem", "order_items=order item"] {
        let settings = Settings::from_pairs([(NAVIGATION_SETTING, bad)]);
        let error = QueryNavigation::from_settings(&settings)
            .unwrap_err()
            .to_string();
        assert!(error.contains(NAVIGATION_SETTING), "{bad}: {error}");
    }
    let settings = Settings::from_pairs([(NAVIGATION_SETTING, "lines=orderItem")]);
    assert!(
        QueryNavigation::from_settings(&settings)
            .unwrap_err()
            .to_string()
            .contains("order_items")
    );
}

// ---------------------------------------------------------------------------------------------
// Generated operations over the client (`Caller`)

#[tokio::test(start_paused = true)]
async fn generated_operations_go_to_their_api_and_only_repeatable_posts_are_retried() {
    use norce_client::models::events::{OrderRequest, operations::EventsApi as _};
    use norce_client::models::services::{ListProducts2Query, operations::ServicesApi as _};
    let (client, seen) = client(503, "", QueryNavigation::default());
    // A generated method every `Caller` has: the Services root with `format=json`, the
    // stack's headers, retried as a GET.
    let query = ListProducts2Query {
        status_seed: Some("1,3".into()),
        ..Default::default()
    };
    let err = client.list_products2(&query).await.unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    let get = seen.lock().unwrap().drain(..).collect::<Vec<_>>();
    assert!(get.len() > 1, "a GET is retried: {get:?}");
    assert_eq!(
        get[0].uri().path_and_query().unwrap(),
        "/commerce/product/1.1/ListProducts2?format=json&statusSeed=1%2C3"
    );
    assert_eq!(get[0].headers()["applicationid"], "1234");
    assert_eq!(get[0].headers()["authorization"], "Bearer t");
    // SendOrderStatus is repeatable (a status set twice is harmless), a delivery note is not.
    let status = serde_json::from_value(serde_json::json!({
        "ErpOrderNo": "SO-1", "OrderStatus": "Acknowledged"
    }))
    .unwrap();
    client.send_order_status(&status).await.unwrap_err();
    let sent = seen.lock().unwrap().drain(..).count();
    assert!(sent > 1, "SendOrderStatus retried ({sent})");
    let note = serde_json::from_value(serde_json::json!({
        "OrderNo": "SO-1", "NoteNo": "DN-1", "DeliveryDate": "2026-03-02T09:00:00Z"
    }))
    .unwrap();
    let err = client.create_delivery_note(&note).await.unwrap_err();
    assert_eq!(
        err.kind(),
        norce_client::ErrorKind::AmbiguousWrite,
        "{err:?}"
    );
    assert_eq!(seen.lock().unwrap().drain(..).count(), 1, "sent once");
    // Events are Norce's calls to us: refused, nothing sent.
    let err = client
        .receive_order(&OrderRequest::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Failure(Failure::InvalidRequest {
                operation: "ReceiveOrder",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn services_ask_for_json_and_norces_argument_checks_send_nothing() {
    use norce_client::models::connect::{CancelOrderRequest, SendOrderStatusRequest};
    use norce_client::models::services::{GetOrderQuery, ListOrders3Query};
    let (client, seen) = client(503, "", QueryNavigation::default());
    let uris = |seen: &Seen| {
        let sent = seen.lock().unwrap().drain(..).collect::<Vec<_>>();
        sent.iter()
            .map(|r| r.uri().path_and_query().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let order = GetOrderQuery {
        id: "7".into(),
        ..Default::default()
    };
    client.get_order(&order).await.unwrap_err();
    assert_eq!(
        uris(&seen)[0],
        "/commerce/order/1.1/GetOrder?format=json&id=7"
    );
    // In the query's (sorted) order, as if the caller had set it.
    let list = ListOrders3Query {
        company_id: Some("1".into()),
        ..Default::default()
    };
    client.list_orders3(&list).await.unwrap_err();
    assert_eq!(
        uris(&seen)[0],
        "/commerce/order/1.1/ListOrders3?companyId=1&format=json"
    );
    // Refused before sending: ListOrders3 without a filter, an order reference left blank.
    let blank = ListOrders3Query {
        company_id: Some(" ".into()),
        ..Default::default()
    };
    let refused = [
        client.list_orders3(&blank).await.unwrap_err(),
        client
            .cancel_order(&CancelOrderRequest::default())
            .await
            .unwrap_err(),
        client
            .send_order_status(&SendOrderStatusRequest {
                erp_order_no: Some(String::new()),
                ..serde_json::from_str(r#"{"OrderStatus":"Acknowledged"}"#).unwrap()
            })
            .await
            .unwrap_err(),
    ];
    for (err, field) in refused
        .iter()
        .zip(["companyId", "ClientOrderRef", "ErpOrderNo"])
    {
        assert!(
            matches!(err, Error::Failure(Failure::InvalidRequest { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains(field), "{err}");
        assert!(err.hint().contains(field), "{}", err.hint());
    }
    assert!(uris(&seen).is_empty(), "nothing sent");
}

/// What the client records of its calls and its token for an operator.
mod health {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;
    use client_core::ErrorKind;
    use norce_client::NorceClient;
    use norce_models::services::GetOrderQuery;
    use norce_models::services::operations::ServicesApi as _;
    use tokio::time::Instant;

    /// A client whose transport answers the token endpoint with a token living an hour, and
    /// the API calls with `(status, extra header)` in turn.
    fn client(answers: &[(u16, (&'static str, &'static str))]) -> NorceClient {
        let answers = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<_>>()));
        let transport = tower::service_fn(move |request: http::Request<Bytes>| {
            let token = request.uri().path().ends_with("/connect/token");
            let (status, header, body) = if token {
                let body = r#"{"access_token":"tok-s3cr3t","expires_in":3600}"#;
                (200, ("x-request-id", "r-token"), body)
            } else {
                let (status, header) = answers
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or((200, ("x", "")));
                (status, header, r#"{"Id":"7","Note":"s3cr3t-body"}"#)
            };
            let response = http::Response::builder()
                .status(status)
                .header(header.0, header.1)
                .body(Bytes::from_static(body.as_bytes()));
            std::future::ready(Ok::<_, auth_core::Error>(response.unwrap()))
        });
        NorceClient::builder()
            .client_id("health")
            .client_secret("health-secret".to_owned().into())
            .application_id(1)
            .scope("playground")
            // Its own host: its own token cache in the process-wide registry.
            .base_url("http://127.0.0.1:59101")
            .unwrap()
            .transport(transport)
            .build()
            .unwrap()
    }

    /// A 200, a 429 that a retry hid, a 503 on every attempt and a 500: the snapshot tells
    /// when each came, the last error with its kind and request id, the token's expiry, and
    /// no secret.
    #[tokio::test(start_paused = true)]
    async fn health_follows_the_calls_and_the_token() {
        let id = |id| ("x-request-id", id);
        let client = client(&[
            (200, id("r-1")),
            (429, ("retry-after", "2")),
            (200, id("r-2")),
            (503, id("r-3a")),
            (503, id("r-3b")),
            (503, id("r-3c")),
            (500, id("r-500")),
        ]);
        let order = GetOrderQuery {
            id: "7".into(),
            ..Default::default()
        };
        let fresh = client.health();
        assert_eq!((fresh.requests, fresh.token_valid_until), (0, None));

        let started = Instant::now();
        client.get_order(&order).await.unwrap();
        let first_ok = Instant::now();
        tokio::time::advance(Duration::from_secs(10)).await;
        let throttled = Instant::now();
        client.get_order(&order).await.unwrap();
        tokio::time::advance(Duration::from_secs(10)).await;
        let err = client.get_order(&order).await.unwrap_err();
        assert_eq!(err.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
        let unavailable = Instant::now();
        tokio::time::advance(Duration::from_secs(10)).await;
        let failed = Instant::now();
        client.get_order(&order).await.unwrap_err();
        tokio::time::advance(Duration::from_secs(5)).await;

        let health = client.health();
        let wall = |at| Some(health.wall_time(at));
        assert_eq!(health.requests, 4, "calls, not attempts");
        assert_eq!(
            health.token_valid_until,
            wall(started + Duration::from_secs(3600))
        );
        assert_eq!(health.last_429, wall(throttled));
        // The call the retry completed after the 429.
        assert!(health.last_ok > wall(first_ok) && health.last_ok < wall(unavailable));
        assert_eq!(health.last_503, wall(unavailable));
        let last = health.last_error.clone().unwrap();
        assert_eq!(Some(last.at), wall(failed));
        assert_eq!(
            (
                last.kind,
                last.operation,
                last.status,
                last.request_id.as_deref()
            ),
            (ErrorKind::Transient, "GetOrder", Some(500), Some("r-500"))
        );
        assert_eq!(health.budget_left, None);
        assert_eq!(
            health.taken_at.duration_since(last.at).unwrap(),
            Duration::from_secs(5)
        );
        let shown = format!("{health:?} {}", serde_json::to_string(&health).unwrap());
        for secret in ["s3cr3t", "health-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
