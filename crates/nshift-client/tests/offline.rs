//! The client's own rules through its public API and an in-memory transport (no network):
//! which calls are safe to repeat, how answers and failures are classified, what the hints
//! name. The operations against the sandbox are in `tests/tests/nshift_client.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::{Idempotent, RetryConfig};
use bytes::Bytes;
use http::StatusCode;
use nshift_client::models::{
    AddressCheckRequest, CancelShipmentPath, CheckAddressQueryLanguage, FindAgentsQuery,
    ListShipmentPdfsPath, PriceRequest, Shipment,
};
use nshift_client::{DeliveryApi as _, Error, ErrorKind, Failure, NshiftClient};

/// What the transport saw: method, path and whether the request was marked safe to repeat.
type Seen = Arc<Mutex<Vec<(String, String, bool)>>>;

/// A client whose transport answers every request with `answer()`, keeping what it saw.
fn client_with<F>(answer: F) -> (NshiftClient, Seen)
where
    F: Fn() -> Result<http::Response<Bytes>, auth_core::Error> + Clone + Send + Sync + 'static,
{
    let seen = Seen::default();
    let log = Arc::clone(&seen);
    let transport = tower::service_fn(move |request: http::Request<Bytes>| {
        let idempotent = request.extensions().get::<Idempotent>().is_some();
        let (method, path) = (
            request.method().to_string(),
            request.uri().path().to_owned(),
        );
        log.lock().unwrap().push((method, path, idempotent));
        std::future::ready(answer())
    });
    let client = NshiftClient::builder()
        .base_url("http://127.0.0.1:9/rs-extapi/v1")
        .api_key_id("OFFLINEKEY")
        .secret_id("offline-s3cr3t".to_owned().into())
        .retry(RetryConfig::default().backoff(Duration::from_millis(1), Duration::from_millis(2)))
        .transport(transport)
        .build()
        .unwrap();
    (client, seen)
}

fn answering(status: u16, body: &'static str) -> (NshiftClient, Seen) {
    client_with(move || {
        let response = http::Response::builder().status(status);
        Ok(response.body(Bytes::from_static(body.as_bytes())).unwrap())
    })
}

fn agents() -> FindAgentsQuery {
    FindAgentsQuery {
        type_: "POSTNORD".into(),
        zip: Some("11151".into()),
        country_code: "SE".into(),
        ..Default::default()
    }
}

/// The documents of shipment 1.
fn pdfs() -> ListShipmentPdfsPath {
    ListShipmentPdfsPath {
        shipment_id: "1".into(),
    }
}

#[test]
fn query_pairs_leave_out_absent_fields() {
    let query = FindAgentsQuery {
        type_: "POSTNORD".into(),
        country_code: "SE".into(),
        ..Default::default()
    };
    assert_eq!(
        client_core::query_pairs(&query).unwrap(),
        vec![
            ("countryCode".to_owned(), "SE".to_owned()),
            ("type".to_owned(), "POSTNORD".to_owned())
        ]
    );
}

#[tokio::test]
async fn posts_that_change_nothing_are_safe_to_repeat_and_writes_are_not() {
    let (client, seen) = answering(200, "[]");
    let address = AddressCheckRequest::default();
    client
        .check_address(&address, CheckAddressQueryLanguage::Se)
        .await
        .unwrap();
    let _ = client.price(PriceRequest::default()).await;
    let _ = client.fetch_price_history("-1").await;
    let _ = client.store_shipment(Shipment::default()).await;
    let _ = client.create_shipment(Default::default()).await;
    client.find_agents(&agents()).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let marks: Vec<(&str, bool)> = seen
        .iter()
        .map(|(method, path, idempotent)| {
            assert!(path.starts_with("/rs-extapi/v1/"), "{path}");
            (method.as_str(), *idempotent)
        })
        .collect();
    assert_eq!(
        marks,
        [
            ("POST", true),  // /addresses/status
            ("POST", true),  // /prices
            ("POST", true),  // /prices/history
            ("POST", false), // /stored-shipments
            ("POST", false), // /shipments
            ("GET", true),   // /addresses/agents
        ]
    );
}

#[tokio::test]
async fn a_5xx_is_an_ambiguous_write_only_for_a_write() {
    let (client, _) = answering(500, r#"{"code":"INTERNAL","message":"boom"}"#);
    let err = client
        .store_shipment(Shipment::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AmbiguousWrite, "{err:?}");
    assert!(err.is_ambiguous());
    assert!(err.hint().contains("book_once"), "{}", err.hint());
    assert_eq!(err.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert!(err.to_string().contains("CreateStoredShipment"), "{err}");

    let err = client.find_agents(&agents()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    let err = client.price(PriceRequest::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
}

#[tokio::test]
async fn a_broken_connection_is_ambiguous_for_a_write_and_not_sending_is_safe() {
    let (client, _) = client_with(|| Err(auth_core::Error::transport("reset by peer")));
    let err = client
        .store_shipment(Shipment::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Failure(Failure::Transport { .. })),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::AmbiguousWrite);
    assert!(err.hint().contains("reconcile"), "{}", err.hint());

    let (client, seen) = client_with(|| Err(auth_core::Error::connect("refused")));
    let err = client
        .store_shipment(Shipment::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    assert!(err.hint().contains("NSHIFT_BASE_URL"), "{}", err.hint());
    assert!(seen.lock().unwrap().len() > 1, "not sent, so retried");
}

#[tokio::test]
async fn answers_keep_nshifts_meaning() {
    let (client, _) = answering(
        400,
        r#"{"code":"MISSING","message":"Missing zip argument"}"#,
    );
    let err = client.find_agents(&agents()).await.unwrap_err();
    let Error::BadRequest { code, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(code.as_ref().map(|c| c.as_str()), Some("MISSING"));
    assert_eq!(message.as_deref(), Some("Missing zip argument"));
    assert_eq!(err.kind(), ErrorKind::Permanent);

    // One status instead of a list is read as a list of one.
    let status = r#"{"field":"Address_Zipcode","message":"Postal code is missing","type":"error"}"#;
    let (client, _) = answering(422, status);
    let err = client
        .store_shipment(Shipment::default())
        .await
        .unwrap_err();
    assert_eq!(err.validation_statuses().len(), 1, "{err:?}");
    assert!(
        err.to_string()
            .contains("Address_Zipcode: Postal code is missing (error)"),
        "{err}"
    );

    let (client, _) = answering(403, "");
    let path = CancelShipmentPath {
        shipment_id: "1".into(),
    };
    let err = client.cancel_shipment(&path).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(
        err.hint().contains("`REST API Discard` licence"),
        "{}",
        err.hint()
    );

    let (client, _) = answering(401, "");
    let err = client
        .list_shipment_pdfs(&pdfs(), &Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let shown = format!("{err} {err:?} {}", err.hint());
    assert!(shown.contains("NSHIFT_SECRET_ID"), "{shown}");
    assert!(!shown.contains("offline-s3cr3t"), "{shown}");

    let (client, _) = answering(429, "");
    let err = client
        .list_shipment_pdfs(&pdfs(), &Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled);
}

#[tokio::test]
async fn arguments_and_answers_that_cannot_be_used() {
    let (client, seen) = answering(200, "not json");
    let err = client
        .check_address(&AddressCheckRequest::default(), "DE".into())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Failure(Failure::InvalidRequest { .. })),
        "{err:?}"
    );
    assert!(seen.lock().unwrap().is_empty(), "refused before sending");
    let err = client
        .book_once(" ", Shipment::default())
        .await
        .unwrap_err();
    assert!(err.hint().contains("order number"), "{}", err.hint());

    let err = client
        .list_shipment_pdfs(&pdfs(), &Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Failure(Failure::Decode { .. })),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Permanent);

    let (client, _) = answering(
        200,
        r#"[{"id":"1","href":"h","prints":[{"id":"p1","data":"%%%"}]}]"#,
    );
    let err = client
        .create_shipment(Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not base64"), "{err}");
}

/// A client over an in-memory nShift holding at most one stored shipment (its status);
/// returns the requests seen as `METHOD path`.
fn scripted_nshift() -> (NshiftClient, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use bytes::Bytes;
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let stored: Arc<Mutex<Option<&'static str>>> = Arc::default();
    let log = Arc::clone(&seen);
    let transport = tower::service_fn(move |request: http::Request<Bytes>| {
        let (method, path) = (request.method().as_str(), request.uri().path());
        log.lock().unwrap().push(format!("{method} {path}"));
        let mut stored = stored.lock().unwrap();
        let info = |status: &str| {
            format!(r#"{{"id":"7","href":"h","orderNo":"NC-1","status":"{status}"}}"#)
        };
        let (status, body) = match (method, path.rsplit('/').next().unwrap_or_default()) {
            ("GET", "stored-shipments") => {
                (200, format!("[{}]", stored.map(info).unwrap_or_default()))
            }
            ("POST", "stored-shipments") => {
                *stored = Some("READY");
                (201, info("READY"))
            }
            ("POST", "shipments") => {
                *stored = Some("PRINTED");
                let printed =
                    r#"[{"id":"900","href":"h","orderNo":"NC-1","parcels":[{"parcelNo":"P1"}]}]"#;
                (201, printed.to_owned())
            }
            _ => (404, String::new()),
        };
        let response = http::Response::builder()
            .status(status)
            .header("Content-Type", "application/json")
            .body(Bytes::from(body))
            .unwrap();
        std::future::ready(Ok::<_, auth_core::Error>(response))
    });
    let client = NshiftClient::builder()
        .base_url("http://127.0.0.1:9/rs-extapi/v1")
        .api_key_id("UNITKEY")
        .secret_id("unit-s3cr3t".to_owned().into())
        .transport(transport)
        .build()
        .unwrap();
    (client, seen)
}

/// `book_once_exclusive` (one writer per order) searches once, before storing; `book_once`
/// searches again before printing.
#[tokio::test]
async fn the_only_writer_prints_what_it_stored_without_searching_again() {
    let searches = |seen: &[String]| {
        seen.iter()
            .filter(|r| *r == "GET /rs-extapi/v1/stored-shipments")
            .count()
    };
    let (shared, seen) = scripted_nshift();
    let booking = shared.book_once("NC-1", Shipment::default()).await.unwrap();
    assert_eq!(booking.outcome, nshift_client::BookingOutcome::Printed);
    assert_eq!(searches(&seen.lock().unwrap()), 2, "{seen:?}");

    let (exclusive, seen) = scripted_nshift();
    let booking = exclusive
        .book_once_exclusive("NC-1", Shipment::default())
        .await
        .unwrap();
    assert_eq!(
        (booking.outcome, booking.stored_id.as_deref()),
        (nshift_client::BookingOutcome::Printed, Some("7"))
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "GET /rs-extapi/v1/stored-shipments",
            "POST /rs-extapi/v1/stored-shipments",
            "POST /rs-extapi/v1/stored-shipments/7/shipments",
        ],
        "one search, before the store"
    );
    // Booked again (a resumed order): the search finds it printed, nothing is stored.
    let again = exclusive
        .book_once_exclusive("NC-1", Shipment::default())
        .await;
    assert!(
        !matches!(again, Ok(ref b) if b.outcome == nshift_client::BookingOutcome::Printed),
        "{again:?}"
    );
}
