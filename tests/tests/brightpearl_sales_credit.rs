//! brightpearl-client's sales credits against the in-process sandbox (127.0.0.1 only): the
//! generated operations and `create_sales_credit_once`, which never credits a refund twice,
//! and `receive_credit_stock_once`, which never puts a credit's stock back twice.

mod common;

use std::time::Duration;

use auth_core::SecretString;
use brightpearl_client::models::order::operations::OrderApi as _;
use brightpearl_client::models::order::{
    self, SalesCreditRequest, SalesOrderCustomer, SalesOrderRequest, SalesOrderRowRequest,
};
use brightpearl_client::models::warehouse::{GoodsInMovement, GoodsInNoteRequest};
use brightpearl_client::{Client, GoodsInOutcome, SalesCreditOutcome, SearchQuery, SearchResource};
use client_core::{ErrorKind, Failure};
use common::Recorder;
use sandbox::{Sandbox, SandboxConfig};

async fn start(account: &str, tweak: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    let mut config = SandboxConfig {
        start_time: Some("2026-03-02T08:00:00Z".parse().unwrap()),
        ..SandboxConfig::default()
    };
    config.brightpearl.account = account.to_owned();
    tweak(&mut config);
    Sandbox::start(config).await.expect("sandbox starts")
}

fn staff_client(sandbox: &Sandbox, recorder: &Recorder) -> Client {
    let c = sandbox.credentials().brightpearl;
    Client::builder()
        .account(c.account)
        .app_ref(c.app_ref)
        .staff_token(SecretString::from(c.staff_token))
        .base_url(c.base_url)
        .transport(recorder.clone())
        .build()
        .unwrap()
}

fn row(product: i64, quantity: &str, net: &str, tax: &str) -> SalesOrderRowRequest {
    SalesOrderRowRequest {
        product_id: Some(product),
        quantity: quantity.parse().unwrap(),
        tax_code: "T25".into(),
        net: Some(net.parse().unwrap()),
        tax: Some(tax.parse().unwrap()),
        nominal_code: Some("4000".into()),
        external_ref: Some("line-1".into()),
        ..Default::default()
    }
}

/// A sales order of two units to refund, created with the generated method: its id.
async fn parent_order(client: &Client, external_ref: &str) -> i64 {
    let path = order::CreateSalesOrderPath {
        account: client.account().to_owned(),
    };
    let request = SalesOrderRequest {
        customer: SalesOrderCustomer {
            id: 201,
            ..Default::default()
        },
        external_ref: Some(external_ref.into()),
        installed_integration_instance_id: Some(13),
        rows: vec![row(1001, "2", "200", "50")],
        ..Default::default()
    };
    client
        .create_sales_order(&path, &request)
        .await
        .unwrap()
        .response
}

/// A credit of one of the two units.
fn credit(parent: i64, external_ref: &str) -> SalesCreditRequest {
    SalesCreditRequest {
        customer: SalesOrderCustomer {
            id: 201,
            ..Default::default()
        },
        parent_id: Some(parent.to_string()),
        external_ref: Some(external_ref.into()),
        installed_integration_instance_id: Some(13),
        warehouse_id: Some(2),
        rows: vec![row(1001, "1", "100", "25")],
        ..Default::default()
    }
}

async fn credits_with_key(client: &Client, key: &str) -> usize {
    let query = SearchQuery::new()
        .filter("orderTypeId", "3")
        .filter("externalRef", key);
    let page = client.search(SearchResource::Orders, &query).await.unwrap();
    page.len()
}

#[tokio::test]
async fn a_credit_is_created_once_and_a_retry_finds_it() {
    let sandbox = start("sc-once", |_| {}).await;
    let recorder = Recorder::new(Duration::from_secs(20));
    let client = staff_client(&sandbox, &recorder);
    let parent = parent_order(&client, "NC-300001").await;

    let first = client
        .create_sales_credit_once(&credit(parent, "NC-300001-R1"))
        .await
        .unwrap();
    let SalesCreditOutcome::Created(id) = first else {
        panic!("{first:?}")
    };
    // The retry (a crash after the POST, a timeout) searches first and posts nothing.
    let before = recorder.take().len();
    assert!(before >= 2, "a search, then the POST");
    let again = client
        .create_sales_credit_once(&credit(parent, "NC-300001-R1"))
        .await
        .unwrap();
    assert_eq!(again, SalesCreditOutcome::Existing(id));
    let sent = recorder.take();
    assert_eq!(sent.len(), 1, "only the search: {sent:?}");
    assert_eq!(credits_with_key(&client, "NC-300001-R1").await, 1);

    // The generated GET reads it back, linked to the sale.
    let path = order::GetSalesCreditsPath {
        account: client.account().to_owned(),
        id_set: id.to_string(),
    };
    let got = client.get_sales_credits(&path).await.unwrap().response;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].parent_id, Some(parent.to_string()));
    assert_eq!(
        got[0].total.as_ref().unwrap().gross,
        Some("125".parse().unwrap())
    );
    assert_eq!(
        client
            .find_sales_credit("NC-300001-R1", Some(13))
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        client
            .find_sales_credit("NC-300001-R2", Some(13))
            .await
            .unwrap(),
        None
    );
    // Another refund of the same order is its own credit.
    let second = client
        .create_sales_credit_once(&credit(parent, "NC-300001-R2"))
        .await
        .unwrap();
    assert!(matches!(second, SalesCreditOutcome::Created(other) if other != id));
}

#[tokio::test]
async fn a_credit_without_a_natural_key_is_refused_before_sending() {
    let sandbox = start("sc-nokey", |_| {}).await;
    let recorder = Recorder::new(Duration::from_secs(20));
    let client = staff_client(&sandbox, &recorder);
    for key in [None, Some(""), Some(" R1")] {
        let mut request = credit(1, "x");
        request.external_ref = key.map(str::to_owned);
        let err = client.create_sales_credit_once(&request).await.unwrap_err();
        assert!(
            matches!(
                err,
                brightpearl_client::Error::Failure(Failure::InvalidRequest { .. })
            ),
            "{err:?}"
        );
    }
    assert!(recorder.take().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn validation_errors_are_permanent_and_nothing_is_stored() {
    let sandbox = start("sc-invalid", |_| {}).await;
    let recorder = Recorder::new(Duration::from_secs(20));
    let client = staff_client(&sandbox, &recorder);
    let parent = parent_order(&client, "NC-300003").await;
    let mut request = credit(parent, "NC-300003-R1");
    request.parent_id = Some("999999".into());
    let err = client.create_sales_credit_once(&request).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permanent, "{err:?}");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(credits_with_key(&client, "NC-300003-R1").await, 0);
}

/// A goods-in note of the credit's only row into warehouse 2.
fn goods_in(row: i64, quantity: i64, reference: &str) -> GoodsInNoteRequest {
    GoodsInNoteRequest {
        transfer: Some(false),
        warehouse_id: 2,
        user_batch_reference: Some(reference.into()),
        received_on: None,
        goods_moved: vec![GoodsInMovement {
            product_id: 1001,
            purchase_order_row_id: Some(row),
            quantity,
            destination_location_id: Some(2),
            product_value: None,
        }],
    }
}

#[tokio::test]
async fn a_credits_stock_is_received_once_even_when_the_answer_is_lost() {
    let sandbox = start("sc-goods-in", |_| {}).await;
    let recorder = Recorder::new(Duration::from_secs(20));
    let client = staff_client(&sandbox, &recorder);
    let parent = parent_order(&client, "NC-300009").await;
    let id = client
        .create_sales_credit_once(&credit(parent, "NC-300009-R1"))
        .await
        .unwrap()
        .id();
    let path = order::GetSalesCreditsPath {
        account: client.account().to_owned(),
        id_set: id.to_string(),
    };
    let row = client.get_sales_credits(&path).await.unwrap().response[0]
        .rows
        .as_ref()
        .unwrap()[0]
        .id;
    assert!(
        client.goods_in_notes_of(id).await.unwrap().is_empty(),
        "404 is none"
    );
    // The POST is handled but its answer lost: the client finds the note on the credit.
    sandbox
        .state()
        .faults
        .add(sandbox::FaultRule {
            path_prefix: format!("/public-api/{}/warehouse-service/order/", client.account()),
            method: Some("POST".into()),
            commit_then_fail_rate: 1.0,
            remaining: Some(1),
            ..Default::default()
        })
        .unwrap();
    recorder.take();
    let first = client
        .receive_credit_stock_once(id, &goods_in(row, 1, "NC-300009-R1"))
        .await
        .unwrap();
    let GoodsInOutcome::Existing(note) = first else {
        panic!("found after the lost answer: {first:?}")
    };
    // A retry lists the notes first and posts nothing.
    recorder.take();
    let again = client
        .receive_credit_stock_once(id, &goods_in(row, 1, "NC-300009-R1"))
        .await
        .unwrap();
    assert_eq!(again, GoodsInOutcome::Existing(note));
    let sent = recorder.take();
    assert_eq!(sent.len(), 1, "only the list: {sent:?}");
    let notes = client.goods_in_notes_of(id).await.unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        notes[&note.to_string()].user_batch_reference.as_deref(),
        Some("NC-300009-R1")
    );
}
