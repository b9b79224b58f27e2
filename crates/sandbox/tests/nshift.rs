//! Black-box tests of the nShift Delivery simulator over HTTP.

mod common;

use std::time::Duration;

use base64::Engine as _;
use nshift_models::delivery::{
    AlertFetchList, Error as ApiError, ShipmentFetchInfoList, ShipmentInfoList, StatusList,
    StoredShipmentInfo, StoredShipmentInfoList,
};
use reqwest::StatusCode;
use sandbox::nshift::{ApiKeyConfig, Licence, NshiftConfig};
use sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Api {
    sandbox: Sandbox,
    http: reqwest::Client,
    base: String,
    auth: String,
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", B64.encode(format!("{id}:{secret}")))
}

impl Api {
    async fn start() -> Self {
        Self::with(SandboxConfig::default()).await
    }

    async fn with(config: SandboxConfig) -> Self {
        let sandbox = common::start_with(config).await;
        let creds = sandbox.credentials().nshift;
        Self {
            http: common::http(),
            base: creds.base_url.clone(),
            auth: basic(&creds.api_key_id, &creds.secret_id),
            sandbox,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Vec<u8>, String) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("authorization", auth);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (
            status,
            response.bytes().await.expect("body").to_vec(),
            content_type,
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, body, _) = self
            .send(reqwest::Method::GET, path, &self.auth, None)
            .await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let (status, body, _) = self
            .send(reqwest::Method::POST, path, &self.auth, Some(body))
            .await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.send(reqwest::Method::DELETE, path, &self.auth, None)
            .await
            .0
    }

    async fn admin(&self, path: &str) -> Value {
        let url = format!("{}/_sandbox/nshift{path}", self.sandbox.base_url());
        self.http
            .get(url)
            .send()
            .await
            .expect("admin")
            .json()
            .await
            .expect("admin json")
    }

    async fn count(&self, order_no: &str) -> usize {
        self.admin(&format!("/shipments?orderNo={order_no}"))
            .await
            .as_array()
            .map_or(0, Vec::len)
    }

    fn advance(&self, secs: u64) {
        self.sandbox
            .state()
            .clock
            .advance(Duration::from_secs(secs));
    }
}

fn shipment(order_no: &str) -> Value {
    json!({
        "developerId": "relay-dev-0001",
        "sender": {"quickId": "1"},
        "senderPartners": [{"id": "PLAB", "custNo": "0123456789"}],
        "receiver": {
            "name": "Anna Lind", "address1": "Avenyn 12", "zipcode": "41136", "city": "Göteborg",
            "country": "SE", "phone": "+46701234567", "email": "anna@example.com"
        },
        "service": {"id": "P17", "addons": [{"id": "NOTSMS"}]},
        "parcels": [{"copies": 1, "weight": 1.5, "contents": "Clothes", "valuePerParcel": true}],
        "orderNo": order_no,
        "senderReference": "DN-1"
    })
}

fn print_config() -> Value {
    json!({"target1Media": "thermo-190", "target1Type": "pdf", "target2Media": "laser-a4", "target2Type": "pdf"})
}

fn print_request(order_no: &str) -> Value {
    json!({"printConfig": print_config(), "shipment": shipment(order_no)})
}

fn is_nshift_timestamp(text: &str) -> bool {
    // 2015-06-03T13:18:30.904+0000
    let b = text.as_bytes();
    text.len() == 28
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && text.ends_with("+0000")
        && text[..19]
            .replace(['-', ':', 'T'], "")
            .chars()
            .all(|c| c.is_ascii_digit())
}

// ------------------------------------------------------------------ auth

#[tokio::test]
async fn basic_and_bearer_auth_and_401() {
    let api = Api::start().await;
    let creds = api.sandbox.credentials().nshift;
    let path = "/addresses/agents?type=POSTNORD&zip=41121&countryCode=SE";
    let get = |auth: String| {
        let api = &api;
        async move { api.send(reqwest::Method::GET, path, &auth, None).await.0 }
    };
    assert_eq!(
        get(basic(&creds.api_key_id, &creds.secret_id)).await,
        StatusCode::OK
    );
    assert_eq!(
        get(format!("Bearer {}-{}", creds.api_key_id, creds.secret_id)).await,
        StatusCode::OK
    );
    assert_eq!(
        get(basic(&creds.api_key_id, "wrong")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(format!("Bearer {}", creds.api_key_id)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get("Digest abc".into()).await, StatusCode::UNAUTHORIZED);
    let response = api.http.get(api.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
}

fn config_with_keys() -> SandboxConfig {
    SandboxConfig {
        nshift: NshiftConfig {
            extra_keys: vec![
                ApiKeyConfig {
                    api_key_id: "STOREONLYKEY0001".into(),
                    secret_id: "store-only-secret-0000001".into(),
                    licences: vec![Licence::Store],
                    profile_group: None,
                },
                ApiKeyConfig {
                    api_key_id: "PROFILEKEY000001".into(),
                    secret_id: "profile-secret-000000001".into(),
                    licences: Licence::ALL.to_vec(),
                    profile_group: Some("webshop".into()),
                },
            ],
            ..NshiftConfig::default()
        },
        ..SandboxConfig::default()
    }
}

#[tokio::test]
async fn missing_licence_is_403() {
    let api = Api::with(config_with_keys()).await;
    let key = basic("STOREONLYKEY0001", "store-only-secret-0000001");
    let (status, _, _) = api
        .send(
            reqwest::Method::POST,
            "/shipments",
            &key,
            Some(&print_request("LIC-1")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(api.count("LIC-1").await, 0);
    let (status, _, _) = api
        .send(
            reqwest::Method::GET,
            "/addresses/agents?type=POSTNORD&zip=41121&countryCode=SE",
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The licence it has works.
    let (status, _, _) = api
        .send(
            reqwest::Method::POST,
            "/stored-shipments",
            &key,
            Some(&shipment("LIC-1")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn profile_bound_key_cannot_read_feeds_and_sees_only_its_profile() {
    let api = Api::with(config_with_keys()).await;
    let key = basic("PROFILEKEY000001", "profile-secret-000000001");
    for path in ["/shipments?fetchId=-1", "/alerts?fetchId=-1"] {
        assert_eq!(
            api.send(reqwest::Method::GET, path, &key, None).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        assert_eq!(
            api.get(path).await.0,
            StatusCode::OK,
            "{path} with the account-level key"
        );
    }
    // It can book, within its profile group.
    let (status, body, _) = api
        .send(
            reqwest::Method::POST,
            "/shipments",
            &key,
            Some(&print_request("PROF-1")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let created: ShipmentInfoList = serde_json::from_slice(&body).unwrap();
    let admin = api.admin("/shipments?orderNo=PROF-1").await;
    assert_eq!(admin[0]["profileGroup"], "webshop");
    // ... but not in another one.
    let mut other = print_request("PROF-2");
    other["shipment"]["profileGroup"] = json!("wholesale");
    let (status, _, _) = api
        .send(reqwest::Method::POST, "/shipments", &key, Some(&other))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // It does not see shipments outside its profile.
    let (_, body) = api.post("/shipments", &print_request("ACCOUNT-1")).await;
    let account_id = body[0]["id"].as_str().unwrap().to_owned();
    let (status, _, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("/shipments/{account_id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("/shipments/{}", created[0].id),
            &key,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

// ------------------------------------------------------------------ POST /shipments

#[tokio::test]
async fn create_with_print_config_and_return_file() {
    let api = Api::start().await;
    let (status, body) = api
        .post("/shipments?returnFile=true", &print_request("NC-100001"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let infos: ShipmentInfoList = serde_json::from_value(body.clone()).expect("fits the spec");
    assert_eq!(infos.len(), 1);
    let info = &infos[0];
    assert_eq!(info.status.as_ref().map(|s| s.as_str()), Some("PRINTED"));
    assert_eq!(info.order_no.as_deref(), Some("NC-100001"));
    assert_eq!(info.consolidated, Some(false));
    assert_eq!(
        info.snd_city.as_deref(),
        Some("GÖTEBORG"),
        "sender completed from quickId 1"
    );
    let parcel_no = info.parcels.as_ref().unwrap()[0].parcel_no.clone().unwrap();
    assert!(
        parcel_no.starts_with("00373500") && parcel_no.len() == 20,
        "{parcel_no}"
    );
    for field in ["created", "changed", "shipDate"] {
        assert!(
            is_nshift_timestamp(body[0][field].as_str().unwrap()),
            "{field}: {}",
            body[0][field]
        );
    }
    let prints = info.prints.as_ref().unwrap();
    let pdf = B64.decode(prints[0].data.as_ref().unwrap()).unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    assert!(
        String::from_utf8_lossy(&pdf).contains(&parcel_no),
        "the label shows the parcel number"
    );
    // The href (versioned prefix) serves the same document.
    let href = prints[0].href.clone().unwrap();
    assert!(href.contains("/ufoweb-"), "{href}");
    let response = api
        .http
        .get(&href)
        .header("authorization", &api.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(response.bytes().await.unwrap().to_vec(), pdf);
    // developerId recorded.
    let admin = api.admin("/shipments?orderNo=NC-100001").await;
    assert_eq!(admin[0]["developerId"], "relay-dev-0001");
    assert_eq!(admin[0]["parcelNos"][0], parcel_no.as_str());
}

#[tokio::test]
async fn create_with_pdf_config_and_inline_pdf() {
    let api = Api::start().await;
    let body = json!({"pdfConfig": {"target1Media": "laser-ste", "target1XOffset": 0, "target2Media": "laser-a4", "target3Media": null}, "shipment": shipment("OLD-1")});
    let (status, created) = api.post("/shipments?inlinePdf=true", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let pdfs = created[0]["pdfs"].as_array().unwrap();
    assert_eq!(pdfs[0]["description"], "Label");
    assert!(
        B64.decode(pdfs[0]["pdf"].as_str().unwrap())
            .unwrap()
            .starts_with(b"%PDF")
    );
    assert!(created[0].get("prints").is_none());
    // Without inlinePdf: URLs only.
    let (_, created) = api
        .post(
            "/shipments",
            &json!({"pdfConfig": {"target1Media": "laser-a5"}, "shipment": shipment("OLD-2")}),
        )
        .await;
    assert!(created[0]["pdfs"][0].get("pdf").is_none());
    let id = created[0]["id"].as_str().unwrap();
    let (status, list) = api.get(&format!("/shipments/{id}/pdfs")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let pdf_id = list[0]["id"].as_str().unwrap();
    let (status, bytes, content_type) = api
        .send(
            reqwest::Method::GET,
            &format!("/shipments/{id}/pdfs/{pdf_id}"),
            &api.auth,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/pdf");
    assert!(bytes.starts_with(b"%PDF"));
    // Unknown document or shipment → 404.
    assert_eq!(
        api.send(
            reqwest::Method::GET,
            &format!("/shipments/{id}/pdfs/1"),
            &api.auth,
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.send(reqwest::Method::GET, "/shipments/1/pdfs", &api.auth, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn zpl_when_the_print_config_asks_for_it() {
    let api = Api::start().await;
    let mut body = print_request("ZPL-1");
    body["printConfig"] = json!({"target1Media": "thermo-190", "target1Type": "zpl", "target1Options": [{"key": "mode", "value": "DT"}]});
    body["shipment"]["parcels"][0]["copies"] = json!(2);
    let (status, created) = api.post("/shipments?returnFile=true", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let zpl = String::from_utf8(
        B64.decode(created[0]["prints"][0]["data"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(zpl.starts_with("^XA"), "{zpl}");
    assert_eq!(zpl.matches("^XZ").count(), 2, "one label per parcel");
    for parcel in created[0]["parcels"].as_array().unwrap() {
        assert!(zpl.contains(parcel["parcelNo"].as_str().unwrap()));
    }
    // ZPL on a laser medium is an invalid print configuration.
    body["printConfig"] = json!({"target1Media": "laser-a4", "target1Type": "zpl"});
    body["shipment"]["orderNo"] = json!("ZPL-2");
    let (status, statuses) = api.post("/shipments", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(statuses[0]["field"], "PrintConfig_Target1Type");
    assert_eq!(api.count("ZPL-2").await, 0);
}

#[tokio::test]
async fn invalid_shipments_get_422_and_nothing_is_created() {
    let api = Api::start().await;
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "no zip",
            |s| drop(s["receiver"].as_object_mut().unwrap().remove("zipcode")),
            "Address_Zipcode",
            "ZipCode",
        ),
        (
            "SE zip of 4 digits",
            |s| s["receiver"]["zipcode"] = json!("4113"),
            "Address_Zipcode",
            "ZipCode",
        ),
        (
            "NO zip of 5 digits",
            |s| {
                s["receiver"]["country"] = json!("NO");
                s["receiver"]["zipcode"] = json!("01500");
            },
            "Address_Zipcode",
            "ZipCode",
        ),
        (
            "DK zip with a letter",
            |s| {
                s["receiver"]["country"] = json!("DK");
                s["receiver"]["zipcode"] = json!("80A0");
            },
            "Address_Zipcode",
            "ZipCode",
        ),
        (
            "FI zip of 4 digits",
            |s| {
                s["receiver"]["country"] = json!("FI");
                s["receiver"]["zipcode"] = json!("0010");
            },
            "Address_Zipcode",
            "ZipCode",
        ),
        (
            "unknown service",
            |s| s["service"]["id"] = json!("NOPE1"),
            "Service_Id",
            "ServiceId",
        ),
        (
            "no parcels",
            |s| s["parcels"] = json!([]),
            "Parcel_Copies",
            "ParcelMissing",
        ),
        (
            "addon the service lacks",
            |s| s["service"]["addons"] = json!([{"id": "COD"}]),
            "Addon_Id",
            "Addon",
        ),
        (
            "country the service does not reach",
            |s| {
                s["service"]["id"] = json!("PDK17");
                s["service"]["addons"] = json!([]);
            },
            "Address_Country",
            "Route",
        ),
    ];
    for (i, (name, edit, field, code)) in cases.into_iter().enumerate() {
        let order_no = format!("BAD-{i}");
        let mut body = print_request(&order_no);
        edit(&mut body["shipment"]);
        let (status, statuses) = api.post("/shipments?returnFile=true", &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {statuses}"
        );
        let list: StatusList = serde_json::from_value(statuses.clone()).expect("a status list");
        assert!(
            list.iter().any(|s| s.field.as_deref() == Some(field)
                && s.message_code.as_deref() == Some(code)
                && s.message.is_some()),
            "{name}: {statuses}"
        );
        assert_eq!(api.count(&order_no).await, 0, "{name}: nothing created");
    }
    assert_eq!(api.admin("/shipments").await.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn malformed_or_incomplete_bodies_get_400() {
    let api = Api::start().await;
    let response = api
        .http
        .post(api.url("/shipments"))
        .header("authorization", &api.auth)
        .header("content-type", "application/json")
        .body("{\"printConfig\": {")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let error: ApiError = response.json().await.unwrap();
    assert_eq!(error.code.as_ref().map(|c| c.as_str()), Some("ILLEGAL"));
    assert!(error.message.is_some());

    let (status, error) = api
        .post("/shipments", &json!({"printConfig": print_config()}))
        .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("MISSING")),
        "{error}"
    );
    let (status, error) = api
        .post("/shipments", &json!({"shipment": shipment("X-1")}))
        .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("MISSING")),
        "{error}"
    );
    let mut wrong_type = print_request("X-2");
    wrong_type["shipment"]["parcels"][0]["copies"] = json!("many");
    let (status, error) = api.post("/shipments", &wrong_type).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ILLEGAL")),
        "{error}"
    );
    assert_eq!(api.admin("/shipments").await.as_array().unwrap().len(), 0);
}

/// A parcel row with its numbers written as strings, as nShift's own samples send them.
fn string_number_parcel() -> Value {
    json!({"copies": "1", "weight": "37.5", "volume": "0.12", "contents": "Clothes", "valuePerParcel": true})
}

#[tokio::test]
async fn numbers_sent_as_strings_are_read_as_numbers() {
    let api = Api::start().await;
    // POST /shipments: the shipment's parcels and the print offsets as strings.
    let mut body = print_request("STR-1");
    body["shipment"]["parcels"] = json!([string_number_parcel()]);
    body["printConfig"]["target1XOffset"] = json!("0.0");
    let (status, created) = api.post("/shipments", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created[0]["parcelCount"], 1);
    let booked = api.admin("/shipments?orderNo=STR-1").await;
    assert_eq!(booked[0]["parcelWeights"], json!([37.5]), "{booked}");

    // POST /stored-shipments: the bare shipment, stored with the numbers read.
    let mut stored = shipment("STR-2");
    stored["parcels"] = json!([string_number_parcel(), {"copies": "2", "weight": "1.25"}]);
    let (status, info) = api.post("/stored-shipments", &stored).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    assert_eq!(
        (info["status"].as_str(), info["parcelCount"].as_i64()),
        (Some("READY"), Some(3))
    );
    let record = api.admin("/stored-shipments?orderNo=STR-2").await;
    let parcels = &record[0]["parcels"];
    assert_eq!(
        (
            parcels[0]["copies"].clone(),
            parcels[0]["weight"].clone(),
            parcels[0]["volume"].clone()
        ),
        (json!(1), json!(37.5), json!(0.12)),
        "{record}"
    );
    assert_eq!(parcels[1]["weight"], json!(1.25));
    // ... and printed with them.
    let (status, printed) = api
        .post(
            &format!(
                "/stored-shipments/{}/shipments",
                info["id"].as_str().unwrap()
            ),
            &json!({"target1Media": "laser-a5", "target1XOffset": "0.0", "target2Media": null}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{printed}");
    assert_eq!(
        api.admin("/shipments?orderNo=STR-2").await[0]["parcelWeights"],
        json!([37.5, 1.25, 1.25])
    );

    // POST /prices reads them too.
    let mut quote = json!({
        "additionalSurcharges": {"percent": "10", "amount": "5.50"},
        "shipment": shipment("STR-3")
    });
    quote["shipment"]["parcels"] = json!([{"copies": "1", "weight": "2.75"}]);
    let (status, price) = api.post("/prices", &quote).await;
    assert_eq!(status, StatusCode::OK, "{price}");
    assert_eq!(price["priceData"]["totalWeight"], json!(2.75), "{price}");
    // P17: 79 + 4.00 × 3 kg = 91; (91 + 5.50) × 1.10 = 106.15.
    assert_eq!(
        price["priceData"]["priceWithAdditionalSurcharges"],
        json!(106.15),
        "{price}"
    );
}

#[tokio::test]
async fn a_string_that_is_not_a_number_is_refused_naming_the_field() {
    let api = Api::start().await;
    let mut body = print_request("STR-BAD-1");
    body["shipment"]["parcels"] = json!([{"copies": "1", "weight": "heavy"}]);
    let (status, error) = api.post("/shipments", &body).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ILLEGAL")),
        "{error}"
    );
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("shipment.parcels[0].weight"), "{message}");
    assert!(message.contains("\"heavy\""), "{message}");
    assert_eq!(api.count("STR-BAD-1").await, 0);

    let mut stored = shipment("STR-BAD-2");
    stored["parcels"] = json!([{"copies": 1, "weight": 2}, {"copies": "1", "weight": "heavy"}]);
    let (status, error) = api.post("/stored-shipments", &stored).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ILLEGAL")),
        "{error}"
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("parcels[1].weight"),
        "{error}"
    );
    assert_eq!(
        api.admin("/stored-shipments?orderNo=STR-BAD-2").await,
        json!([])
    );

    // An integer field takes whole numbers only.
    stored["parcels"] = json!([{"copies": "1.5", "weight": "2"}]);
    let (status, error) = api.post("/stored-shipments", &stored).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("parcels[0].copies must be a whole number"),
        "{error}"
    );
}

#[tokio::test]
async fn documents_expire_after_an_hour() {
    let api = Api::start().await;
    let (_, created) = api.post("/shipments", &print_request("EXP-1")).await;
    let href = created[0]["prints"][0]["href"].as_str().unwrap().to_owned();
    assert!(
        created[0]["prints"][0].get("data").is_none(),
        "no inline data without returnFile"
    );
    let id = created[0]["id"].as_str().unwrap().to_owned();
    let fetch = || async {
        api.http
            .get(&href)
            .header("authorization", &api.auth)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(fetch().await, StatusCode::OK);
    api.advance(3590);
    assert_eq!(fetch().await, StatusCode::OK);
    api.advance(20);
    assert_eq!(fetch().await, StatusCode::NOT_FOUND);
    let (_, list) = api.get(&format!("/shipments/{id}/pdfs")).await;
    assert_eq!(list, json!([]));

    // 410 when configured so.
    let api = Api::with(SandboxConfig {
        nshift: NshiftConfig {
            expired_document_status: 410,
            ..NshiftConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let (_, created) = api.post("/shipments", &print_request("EXP-2")).await;
    let href = created[0]["prints"][0]["href"].as_str().unwrap().to_owned();
    api.advance(3601);
    assert_eq!(
        api.http
            .get(&href)
            .header("authorization", &api.auth)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::GONE
    );
}

// ------------------------------------------------------------------ stored shipments

#[tokio::test]
async fn stored_shipments_ready_warned_invalid_and_printing() {
    let api = Api::start().await;
    let (status, ready) = api.post("/stored-shipments", &shipment("ST-READY")).await;
    assert_eq!(status, StatusCode::CREATED);
    let ready: StoredShipmentInfo = serde_json::from_value(ready).unwrap();
    assert_eq!(ready.status.as_ref().map(|s| s.as_str()), Some("READY"));
    assert_eq!(ready.statuses.as_deref(), Some(&[][..]));

    // Pickup-point service without an agent: the nearest one is used, with a warning.
    let mut warned = shipment("ST-WARNED");
    warned["service"] = json!({"id": "P19"});
    let (_, warned) = api.post("/stored-shipments", &warned).await;
    assert_eq!(warned["status"], "WARNED", "{warned}");
    assert_eq!(warned["statuses"][0]["type"], "ignorable");

    let mut invalid = shipment("ST-INVALID");
    invalid["receiver"]["zipcode"] = json!("ABCDE");
    let (status, invalid) = api.post("/stored-shipments", &invalid).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(invalid["status"], "INVALID");
    assert_eq!(invalid["statuses"][0]["field"], "Address_Zipcode");

    // Printing: only READY.
    for other in [&warned, &invalid] {
        let (status, statuses) = api
            .post(
                &format!(
                    "/stored-shipments/{}/shipments",
                    other["id"].as_str().unwrap()
                ),
                &json!({"target1Media": "laser-a5"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{statuses}");
    }
    let print_path = format!("/stored-shipments/{}/shipments", ready.id);
    let (status, printed) = api
        .post(
            &format!("{print_path}?inlinePdf=true"),
            &json!({"target1Media": "laser-a5", "target2Media": null}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{printed}");
    let printed: ShipmentInfoList = serde_json::from_value(printed).unwrap();
    assert_eq!(printed[0].order_no.as_deref(), Some("ST-READY"));
    assert!(
        B64.decode(printed[0].pdfs.as_ref().unwrap()[0].pdf.as_ref().unwrap())
            .unwrap()
            .starts_with(b"%PDF")
    );
    let (_, after) = api.get(&format!("/stored-shipments/{}", ready.id)).await;
    assert_eq!(after["status"], "PRINTED");
    let (status, _) = api
        .post(&print_path, &json!({"target1Media": "laser-a5"}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a printed stored shipment is not READY"
    );
    assert_eq!(api.count("ST-READY").await, 1);

    // With printConfig and returnFile: prints[].
    let (_, second) = api.post("/stored-shipments", &shipment("ST-READY-2")).await;
    let (status, printed) = api
        .post(
            &format!(
                "/stored-shipments/{}/shipments?returnFile=true",
                second["id"].as_str().unwrap()
            ),
            &print_config(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        B64.decode(printed[0]["prints"][0]["data"].as_str().unwrap())
            .unwrap()
            .starts_with(b"%PDF")
    );

    // Delete.
    let (_, gone) = api.post("/stored-shipments", &shipment("ST-GONE")).await;
    let gone_path = format!("/stored-shipments/{}", gone["id"].as_str().unwrap());
    assert_eq!(api.delete(&gone_path).await, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&gone_path).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.delete(&gone_path).await, StatusCode::NOT_FOUND);
    let (_, found) = api
        .get("/stored-shipments?searchField=orderNo&searchOp=equals&searchValue=ST-GONE")
        .await;
    assert_eq!(found, json!([]));
    assert_eq!(
        api.admin("/stored-shipments?orderNo=ST-GONE").await[0]["deleted"],
        true
    );
}

#[tokio::test]
async fn stored_shipment_search() {
    let api = Api::start().await;
    for i in 0..55 {
        let mut body = shipment(&format!("BULK-{i:03}"));
        body["senderReference"] = json!(format!("REF-{i}"));
        let (status, _) = api.post("/stored-shipments", &body).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let search = |q: &'static str| {
        let api = &api;
        async move {
            let (status, body) = api.get(&format!("/stored-shipments?{q}")).await;
            assert_eq!(status, StatusCode::OK, "{q}: {body}");
            serde_json::from_value::<StoredShipmentInfoList>(body).unwrap()
        }
    };
    assert_eq!(search("").await.len(), 50, "at most 50 results");
    assert_eq!(
        search("searchField=orderNo&searchOp=contains&searchValue=bulk")
            .await
            .len(),
        50
    );
    let exact = search("searchField=orderNo&searchOp=equals&searchValue=BULK-007").await;
    assert_eq!(exact.len(), 1);
    assert_eq!(exact[0].reference.as_deref(), Some("REF-7"));
    // The exact search reads an index: it still ignores case and sees every shipment of the
    // number, in id order.
    let (status, _) = api.post("/stored-shipments", &shipment("bulk-007")).await;
    assert_eq!(status, StatusCode::CREATED);
    let both = search("searchField=orderNo&searchOp=equals&searchValue=Bulk-007").await;
    assert_eq!(
        both.iter()
            .map(|s| s.order_no.as_deref())
            .collect::<Vec<_>>(),
        [Some("BULK-007"), Some("bulk-007")]
    );
    assert!(
        search("searchField=orderNo&searchOp=equals&searchValue=BULK-0070")
            .await
            .is_empty()
    );
    assert_eq!(
        search("searchField=orderNo&searchValue=BULK-007")
            .await
            .len(),
        2,
        "equals by default"
    );
    assert_eq!(
        search("searchField=orderNo&searchOp=startsWith&searchValue=BULK-05")
            .await
            .len(),
        5
    );
    assert_eq!(
        search("searchField=orderNo&searchOp=endsWith&searchValue=9")
            .await
            .len(),
        5
    );
    assert_eq!(
        search("searchField=reference&searchOp=equals&searchValue=REF-54")
            .await
            .len(),
        1
    );
    assert_eq!(
        search("status=ready&searchField=orderNo&searchOp=equals&searchValue=BULK-001")
            .await
            .len(),
        1
    );
    assert_eq!(search("status=invalid").await.len(), 0);
    let window = search(
        "dateType=created&dateFrom=2026-03-02T00:00:00%2B00:00&dateTo=2026-03-03T00:00:00%2B00:00",
    )
    .await;
    assert_eq!(window.len(), 50);
    assert!(search("dateType=created&dateFrom=2026-03-03T00:00:00%2B00:00&dateTo=2026-03-04T00:00:00%2B00:00").await.is_empty());

    for bad in [
        "searchField=orderNo&searchOp=like&searchValue=x",
        "searchField=color&searchValue=x",
        "status=printed",
    ] {
        let (status, error) = api.get(&format!("/stored-shipments?{bad}")).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("ILLEGAL")),
            "{bad}"
        );
    }
    let (status, error) = api.get("/stored-shipments?dateType=created").await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("MISSING"))
    );
}

// ------------------------------------------------------------------ cancel

#[tokio::test]
async fn cancel_a_shipment() {
    let api = Api::start().await;
    let (_, created) = api.post("/shipments", &print_request("CAN-1")).await;
    let id = created[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.delete(&format!("/shipments/{id}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete(&format!("/shipments/{id}")).await,
        StatusCode::NO_CONTENT,
        "cancelling again is harmless"
    );
    assert_eq!(api.delete("/shipments/999").await, StatusCode::NOT_FOUND);
    let admin = api.admin("/shipments?orderNo=CAN-1").await;
    assert_eq!(
        admin.as_array().unwrap().len(),
        1,
        "cancelled shipments stay countable"
    );
    assert_eq!(admin[0]["status"], "CANCELLED");
    assert_eq!(admin[0]["cancelled"], true);
    // No progress after cancellation.
    api.advance(48 * 3600);
    let (_, feed) = api.get("/shipments?fetchId=-1").await;
    let statuses: Vec<&str> = feed["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["PRINTED", "CANCELLED"]);

    // A delivered shipment cannot be cancelled.
    let (_, created) = api.post("/shipments", &print_request("CAN-2")).await;
    api.advance(30 * 3600);
    let (status, body, _) = api
        .send(
            reqwest::Method::DELETE,
            &format!("/shipments/{}", created[0]["id"].as_str().unwrap()),
            &api.auth,
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
}

// ------------------------------------------------------------------ agents

#[tokio::test]
async fn pickup_points() {
    let api = Api::start().await;
    let (status, agents) = api
        .get("/addresses/agents?type=POSTNORD&zip=41121&countryCode=SE")
        .await;
    assert_eq!(status, StatusCode::OK);
    let list = agents.as_array().unwrap();
    assert!((3..=5).contains(&list.len()), "{agents}");
    assert_eq!(
        api.get("/addresses/agents?type=POSTNORD&zip=41121&countryCode=SE")
            .await
            .1,
        agents,
        "deterministic"
    );
    assert_eq!(list[0]["countryCode"], "SE");
    let agent_id = list[1]["id"].as_str().unwrap();
    let (_, one) = api
        .get(&format!(
            "/addresses/agents?type=POSTNORD&countryCode=SE&id={agent_id}"
        ))
        .await;
    assert_eq!(one, json!([list[1]]));
    let (_, norway) = api
        .get("/addresses/agents?type=POSTNORD&zip=0150&countryCode=NO")
        .await;
    assert!(!norway.as_array().unwrap().is_empty());
    assert_eq!(
        api.get("/addresses/agents?type=DHLSP&zip=0150&countryCode=NO")
            .await
            .1,
        json!([])
    );

    // Book to the chosen agent.
    let mut body = print_request("AG-1");
    body["shipment"]["service"] = json!({"id": "P19", "addons": [{"id": "PUPOPT"}]});
    body["shipment"]["agent"] = json!({"quickId": agent_id});
    let (status, created) = api.post("/shipments", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        api.admin("/shipments?orderNo=AG-1").await[0]["agentId"],
        agent_id
    );
    body["shipment"]["agent"] = json!({"quickId": "12345678"});
    body["shipment"]["orderNo"] = json!("AG-2");
    let (status, statuses) = api.post("/shipments", &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(statuses[0]["field"], "Agent_QuickId");

    let (status, error) = api
        .get("/addresses/agents?type=POSTNORD&countryCode=SE")
        .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("MISSING")),
        "{error}"
    );
    assert!(error["message"].as_str().unwrap().contains("zip"));
    let (status, error) = api.get("/addresses/agents?zip=41121&countryCode=SE").await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("MISSING")),
        "{error}"
    );
    let (status, error) = api
        .get("/addresses/agents?type=NOPE&zip=41121&countryCode=SE")
        .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ILLEGAL")),
        "{error}"
    );
}

#[tokio::test]
async fn zip_code_info() {
    let api = Api::start().await;
    let (_, info) = api
        .get("/addresses/zipcodes?zip=41121&countryCode=SE")
        .await;
    assert_eq!(
        (
            info["valid"].as_bool(),
            info["pattern"].as_str(),
            info["city"].as_str()
        ),
        (Some(true), Some("NNNNN"), Some("GÖTEBORG"))
    );
    let (_, info) = api.get("/addresses/zipcodes?zip=411&countryCode=NO").await;
    assert_eq!(info["valid"], false);
}

// ------------------------------------------------------------------ feeds

#[tokio::test]
async fn shipments_and_alerts_feeds_follow_the_clock() {
    let api = Api::start().await;
    let (_, a) = api.post("/shipments", &print_request("FEED-1")).await;
    let mut pickup = print_request("FEED-2");
    pickup["shipment"]["service"] = json!({"id": "P19"});
    let (_, b) = api.post("/shipments", &pickup).await;
    let (a, b) = (
        a[0]["id"].as_str().unwrap().to_owned(),
        b[0]["id"].as_str().unwrap().to_owned(),
    );

    let (status, page) = api.get("/shipments?fetchId=-1").await;
    assert_eq!(status, StatusCode::OK);
    let page: ShipmentFetchInfoList = serde_json::from_value(page).unwrap();
    assert!(page.done);
    assert_eq!(page.min_delay, Some(300_000));
    let seen: Vec<(String, String)> = page
        .shipments
        .unwrap()
        .iter()
        .map(|s| (s.id.clone(), s.status.as_ref().unwrap().as_str().to_owned()))
        .collect();
    assert_eq!(
        seen,
        [
            (a.clone(), "PRINTED".to_owned()),
            (b.clone(), "PRINTED".to_owned())
        ]
    );
    let cursor = page.fetch_id;

    // Nothing new until the clock moves.
    let (_, again) = api.get(&format!("/shipments?fetchId={cursor}")).await;
    assert_eq!(again["shipments"], json!([]));
    assert_eq!(again["fetchId"].as_str(), Some(cursor.as_str()));

    api.advance(5 * 3600);
    let (_, page) = api.get(&format!("/shipments?fetchId={cursor}")).await;
    let statuses: Vec<&str> = page["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["DISPATCHING", "DISPATCHING"]);
    assert!(is_nshift_timestamp(
        page["shipments"][0]["changed"].as_str().unwrap()
    ));
    let cursor = page["fetchId"].as_str().unwrap().to_owned();

    api.advance(30 * 3600);
    let (_, page) = api.get(&format!("/shipments?fetchId={cursor}")).await;
    let seen: Vec<(&str, &str)> = page["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            (a.as_str(), "OUTFORDELIVERY"),
            (b.as_str(), "DELIVERING"),
            (a.as_str(), "DELIVERED"),
            (b.as_str(), "DELIVERED")
        ]
    );

    // The alerts feed has its own cursor over the same events.
    let (status, alerts) = api.get("/alerts?fetchId=-1").await;
    assert_eq!(status, StatusCode::OK);
    let alerts: AlertFetchList = serde_json::from_value(alerts).unwrap();
    let alerts = alerts.alerts.unwrap();
    assert_eq!(alerts.len(), 8);
    assert_eq!(
        alerts[0].alert_code.as_deref(),
        Some("STATUS_TRANSITION_PRINTED")
    );
    assert_eq!(alerts[0].alert_info.as_deref(), Some("STATUS"));
    assert_eq!(
        alerts[7].alert_code.as_deref(),
        Some("STATUS_TRANSITION_DELIVERED")
    );
    let info = alerts[0].shipment_info.as_ref().unwrap();
    assert_eq!(info.order_no.as_deref(), Some("FEED-1"));
    assert_eq!(info.partner_id.as_deref(), Some("PLAB"));
    assert!(
        info.parcels.as_ref().unwrap()[0]
            .parcel_no
            .as_deref()
            .unwrap()
            .starts_with("00373500")
    );
    assert!(is_nshift_timestamp(
        alerts[0].alert_time.as_ref().unwrap().as_str()
    ));

    for (path, code) in [
        ("/shipments", "MISSING"),
        ("/shipments?fetchId=abc", "ILLEGAL"),
        ("/alerts?fetchId=999", "ILLEGAL"),
    ] {
        let (status, error) = api.get(path).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{path}"
        );
    }
}

#[tokio::test]
async fn feeds_page_with_done_and_min_delay() {
    let api = Api::with(SandboxConfig {
        nshift: NshiftConfig {
            feed_page_size: 3,
            feed_min_delay_ms: 1000,
            ..NshiftConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    for i in 0..5 {
        api.post("/shipments", &print_request(&format!("PAGE-{i}")))
            .await;
    }
    let (_, first) = api.get("/alerts?fetchId=-1").await;
    assert_eq!(
        (first["done"].as_bool(), first["minDelay"].as_i64()),
        (Some(false), Some(0))
    );
    assert_eq!(first["alerts"].as_array().unwrap().len(), 3);
    let (_, second) = api
        .get(&format!(
            "/alerts?fetchId={}",
            first["fetchId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        (second["done"].as_bool(), second["minDelay"].as_i64()),
        (Some(true), Some(1000))
    );
    assert_eq!(second["alerts"].as_array().unwrap().len(), 2);
}

// ------------------------------------------------------------------ faults

#[tokio::test]
async fn commit_then_fail_books_the_shipment_but_loses_the_response() {
    let api = Api::start().await;
    let rule = json!({"path_prefix": "/rs-extapi/v1/shipments", "method": "POST", "commit_then_fail_rate": 1.0, "remaining": 1});
    let response = api
        .http
        .post(format!("{}/_sandbox/faults", api.sandbox.base_url()))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let result = api
        .http
        .post(api.url("/shipments"))
        .header("authorization", &api.auth)
        .json(&print_request("CTF-1"))
        .send()
        .await;
    let outcome = match result {
        Err(e) => Err(e),
        Ok(response) => response.bytes().await.map(|_| ()),
    };
    assert!(outcome.is_err(), "the client sees a transport error");
    assert_eq!(api.count("CTF-1").await, 1, "the shipment exists");
    // The burst is over: a blind retry books a second shipment (why clients must reconcile).
    let (status, _) = api.post("/shipments", &print_request("CTF-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(api.count("CTF-1").await, 2);
}

#[tokio::test]
async fn normal_and_return_shipment_in_one_call() {
    let api = Api::start().await;
    let mut body = print_request("RET-1");
    body["shipment"]["service"]["normalShipment"] = json!(true);
    body["shipment"]["service"]["returnShipment"] = json!(true);
    let (status, created) = api.post("/shipments", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let list = created.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (
            list[0]["normalShipment"].as_bool(),
            list[1]["returnShipment"].as_bool()
        ),
        (Some(true), Some(true))
    );
    assert_eq!(
        list[0]["parcels"][0]["returnParcelNo"],
        list[1]["parcels"][0]["parcelNo"]
    );
    assert_eq!(list[1]["rcvCity"], "GÖTEBORG");
    assert_eq!(list[1]["sndName"], "Anna Lind");
    assert_eq!(api.count("RET-1").await, 2);
}

#[tokio::test]
async fn return_only_shipments_and_return_options_are_validated() {
    let api = Api::start().await;
    // A return product on its own: one return shipment, from the customer back to the sender.
    let mut body = print_request("RET-ONLY-1");
    body["shipment"]["service"] =
        json!({"id": "P24", "returnShipment": true, "normalShipment": false});
    let (status, created) = api.post("/shipments", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let list = created.as_array().unwrap();
    assert_eq!(list.len(), 1, "{created}");
    assert_eq!(
        (
            list[0]["returnShipment"].as_bool(),
            list[0]["normalShipment"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert_eq!(
        list[0]["sndName"], "Anna Lind",
        "the customer sends it back"
    );
    assert_eq!(list[0]["prints"][0]["description"], "Return label");
    let id = list[0]["id"].as_str().unwrap();
    let (status, pdfs) = api.get(&format!("/shipments/{id}/pdfs")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pdfs[0]["description"], "Return label", "{pdfs}");

    // Refused like any other field: 422 with a status naming it, nothing booked.
    let refused = |service: Value| {
        let mut body = print_request("RET-BAD-1");
        body["shipment"]["service"] = service;
        body
    };
    for (service, field) in [
        // BUDBEEHD has no return option.
        (
            json!({"id": "BUDBEEHD", "normalShipment": true, "returnShipment": true}),
            "Service_ReturnShipment",
        ),
        // P24 is a return product: never outbound.
        (json!({"id": "P24"}), "Service_NormalShipment"),
        (
            json!({"id": "P17", "normalShipment": false}),
            "Service_NormalShipment",
        ),
    ] {
        let (status, statuses) = api.post("/shipments", &refused(service.clone())).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{service}: {statuses}"
        );
        assert!(
            statuses
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["field"] == field && s["type"] == "error"),
            "{service}: {statuses}"
        );
    }
    assert_eq!(api.count("RET-BAD-1").await, 0);

    // Stored the same way: found by its orderNo (what book_once searches before storing
    // again), printed as one return shipment.
    let mut stored = shipment("RET-STORED-1");
    stored["service"] = json!({"id": "P24", "returnShipment": true});
    let (status, info) = api.post("/stored-shipments", &stored).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    assert_eq!(info["returnShipment"], true, "{info}");
    let (status, found) = api
        .get("/stored-shipments?searchField=orderNo&searchOp=equals&searchValue=RET-STORED-1")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found[0]["status"], "READY", "{found}");
    let stored_id = found[0]["id"].as_str().unwrap();
    let (status, printed) = api
        .post(
            &format!("/stored-shipments/{stored_id}/shipments"),
            &print_config(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{printed}");
    assert_eq!(printed.as_array().map(Vec::len), Some(1), "{printed}");
    assert_eq!(printed[0]["returnShipment"], true);
    assert!(
        printed[0]["parcels"][0]["parcelNo"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "{printed}"
    );
}

// ------------------------------------------------------------------ address check

#[tokio::test]
async fn address_check_messages_in_the_asked_language() {
    let api = Api::with(config_with_keys()).await;
    let good = json!({"name": "Anna Lind", "address1": "Avenyn 12", "zipcode": "411 36",
        "city": "Göteborg", "countryCode": "SE"});
    let (status, body) = api.post("/addresses/status?language=SE", &good).await;
    assert_eq!((status, body.clone()), (StatusCode::OK, json!([])));

    // A zip that does not fit the country: an error naming the expected pattern, in Swedish.
    let mut bad_zip = good.clone();
    bad_zip["zipcode"] = json!("4113");
    let (status, body) = api.post("/addresses/status?language=SE", &bad_zip).await;
    assert_eq!(status, StatusCode::OK);
    let messages: nshift_models::delivery::AddressStatusList =
        serde_json::from_value(body.clone()).expect("fits the spec");
    assert_eq!(messages.len(), 1, "{body}");
    assert_eq!(
        messages[0].message_id.as_deref(),
        Some("WSAPIError.ZipCode")
    );
    assert_eq!(messages[0].location.as_deref(), Some("Zipcode"));
    assert_eq!(messages[0].arguments, Some(vec!["NNNNN".to_owned()]));
    assert_eq!(messages[0].error, Some(true));
    assert_eq!(
        messages[0].message.as_deref(),
        Some("Ogiltigt postnummer, förväntat format NNNNN")
    );
    // The same in English, Danish and Finnish.
    for (language, text) in [
        ("GB", "Not valid zip code, expected format NNNNN"),
        ("DK", "Ugyldigt postnummer, forventet format NNNNN"),
        ("FI", "Virheellinen postinumero, odotettu muoto NNNNN"),
    ] {
        let (_, body) = api
            .post(&format!("/addresses/status?language={language}"), &bad_zip)
            .await;
        assert_eq!(body[0]["message"], text, "{language}");
    }

    // Missing zip and street, bad country: every finding, the street only as a warning.
    let sparse = json!({"name": "Anna Lind", "city": "Göteborg", "countryCode": "S1"});
    let (_, body) = api.post("/addresses/status?language=GB", &sparse).await;
    let found: Vec<(&str, bool)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["messageId"].as_str().unwrap(),
                m["error"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("WSAPIError.Address1", false),
            ("WSAPIError.CountryCode", true),
            ("WSAPIError.ZipCodeMissing", true)
        ]
    );
    // Deterministic.
    assert_eq!(
        api.post("/addresses/status?language=GB", &sparse).await.1,
        body
    );

    // Errors in nShift's shape.
    for (path, request, code) in [
        ("/addresses/status", good.clone(), "MISSING"),
        ("/addresses/status?language=DE", good.clone(), "ILLEGAL"),
        (
            "/addresses/status?language=SE",
            json!({"name": "A", "city": "B"}),
            "MISSING",
        ),
        (
            "/addresses/status?language=SE",
            json!({"name": 1, "city": "B", "countryCode": "SE"}),
            "ILLEGAL",
        ),
    ] {
        let (status, error) = api.post(path, &request).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{path} {request}"
        );
        let _: ApiError = serde_json::from_value(error).expect("error shape");
    }
    let (status, _, _) = api
        .send(
            reqwest::Method::POST,
            "/addresses/status?language=SE",
            &basic("STOREONLYKEY0001", "store-only-secret-0000001"),
            Some(&good),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

// ------------------------------------------------------------------ prices

fn price_request(service: &str) -> Value {
    json!({
        "shipment": {
            "sender": {"quickId": "1"},
            "senderPartners": [{"id": "DHL", "custNo": "123456"}],
            "receiver": {"name": "Anna Lind", "zipcode": "41136", "city": "Göteborg", "country": "SE"},
            "service": {"id": service},
            "parcels": [{"copies": 2, "weight": 1.25}, {"copies": 1, "weight": 0.5, "volume": 0.02}]
        }
    })
}

#[tokio::test]
async fn price_quote_with_surcharges_and_error_list() {
    let api = Api::with(config_with_keys()).await;
    // ASP2: 85 + 4.50/kg; 2 × 1.25 kg + max(0.5 kg, 0.02 m³ × 250 = 5 kg) → actual 3 kg,
    // volumetric 5 kg: chargeable 5 kg → 85 + 22.50 = 107.50.
    let (status, body) = api.post("/prices", &price_request("ASP2")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let quote: nshift_models::delivery::PriceResponse =
        serde_json::from_value(body.clone()).expect("fits the spec");
    let data = quote.price_data.expect("priced");
    assert_eq!(data.price.map(|p| p.to_string()).as_deref(), Some("107.5"));
    assert_eq!(data.total_weight, Some(3.0));
    assert_eq!(data.chargeable_weight, Some(5.0));
    assert_eq!(
        data.price_with_additional_surcharges
            .map(|p| p.to_string())
            .as_deref(),
        Some("107.5")
    );
    assert_eq!(quote.error_list, Some(vec![]));
    assert_eq!(
        api.post("/prices", &price_request("ASP2")).await.1,
        body,
        "deterministic"
    );

    // Surcharges: the amount first, then the percentage: (107.50 + 10) × 1.10 = 129.25.
    let mut with_surcharges = price_request("ASP2");
    with_surcharges["additionalSurcharges"] = json!({"amount": 10, "percent": 10});
    let (_, body) = api.post("/prices", &with_surcharges).await;
    assert_eq!(body["priceData"]["price"], json!(107.5));
    assert_eq!(body["priceData"]["additionalSurcharges"], json!(21.75));
    assert_eq!(
        body["priceData"]["priceWithAdditionalSurcharges"],
        json!(129.25)
    );

    // Problems come back in errorList (200, no priceData).
    let mut carrier_plab = price_request("P15");
    carrier_plab["shipment"]["senderPartners"] = json!([{"id": "PLAB", "priceEnquiry": "CARRIER"}]);
    let mut no_weight = price_request("ASP2");
    no_weight["shipment"]["parcels"] = json!([{"copies": 1}]);
    let mut bad_zip = price_request("ASP2");
    bad_zip["shipment"]["receiver"]["zipcode"] = json!("123");
    for (request, code) in [
        (price_request("NOPE"), "ServiceId"),
        (carrier_plab, "PriceEnquiry"),
        (no_weight, "Weight"),
        (bad_zip, "ZipCode"),
    ] {
        let (status, body) = api.post("/prices", &request).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("priceData").is_none(), "{body}");
        let codes: Vec<&str> = body["errorList"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["messageCode"].as_str())
            .collect();
        assert!(codes.contains(&code), "{code}: {body}");
    }
    // A carrier enquiry for a carrier that answers them is priced.
    let mut carrier_dhl = price_request("ASP2");
    carrier_dhl["shipment"]["senderPartners"] = json!([{"id": "DHL", "priceEnquiry": "carrier"}]);
    assert_eq!(
        api.post("/prices", &carrier_dhl).await.1["priceData"]["price"],
        json!(107.5)
    );

    // Malformed requests: 400 in nShift's error shape.
    let mut negative = price_request("ASP2");
    negative["additionalSurcharges"] = json!({"percent": -5});
    for (request, code) in [
        (json!({}), "MISSING"),
        (json!({"shipment": "x"}), "ILLEGAL"),
        (negative, "ILLEGAL"),
    ] {
        let (status, error) = api.post("/prices", &request).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{request}"
        );
    }
    let (status, _, _) = api
        .send(
            reqwest::Method::POST,
            "/prices",
            &basic("STOREONLYKEY0001", "store-only-secret-0000001"),
            Some(&price_request("ASP2")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn price_history_is_a_feed_of_printed_shipments() {
    let mut config = config_with_keys();
    config.nshift.feed_page_size = 2;
    config.nshift.feed_min_delay_ms = 1000;
    let api = Api::with(config).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, created) = api
            .post("/shipments", &print_request(&format!("PRICE-{i}")))
            .await;
        ids.push(created[0]["id"].as_str().unwrap().to_owned());
    }
    let (status, first) = api.post("/prices/history?fetchId=-1", &json!(null)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first: nshift_models::delivery::PriceHistoryFetchList =
        serde_json::from_value(first).expect("fits the spec");
    assert_eq!((first.done, first.min_delay), (false, Some(0)));
    let prices = first.prices.unwrap();
    assert_eq!(
        prices
            .iter()
            .map(|p| p.shipment_id.clone().unwrap())
            .collect::<Vec<_>>(),
        ids[..2]
    );
    assert_eq!(prices[0].order_no.as_deref(), Some("PRICE-0"));
    assert_eq!(prices[0].partner_id.as_deref(), Some("PLAB"));
    assert!(is_nshift_timestamp(
        prices[0].print_date.as_ref().unwrap().as_str()
    ));
    // The printed shipment's price is its list price: P17 79 + 4.00 × 2 kg (1.5 kg rounded up).
    let data = prices[0].price_data.as_ref().unwrap();
    assert_eq!(data.price.map(|p| p.to_string()).as_deref(), Some("87"));

    let (_, second) = api
        .post(
            &format!("/prices/history?fetchId={}", first.fetch_id),
            &json!({}),
        )
        .await;
    assert_eq!(
        (second["done"].as_bool(), second["minDelay"].as_i64()),
        (Some(true), Some(1000))
    );
    assert_eq!(
        second["prices"][0]["shipmentId"].as_str(),
        Some(ids[2].as_str())
    );
    let cursor = second["fetchId"].as_str().unwrap().to_owned();
    let (_, empty) = api
        .post(&format!("/prices/history?fetchId={cursor}"), &json!(null))
        .await;
    assert_eq!(
        (empty["prices"].clone(), empty["fetchId"].as_str()),
        (json!([]), Some(cursor.as_str()))
    );

    for (path, code) in [
        ("/prices/history", "MISSING"),
        ("/prices/history?fetchId=abc", "ILLEGAL"),
        ("/prices/history?fetchId=99", "ILLEGAL"),
    ] {
        let (status, error) = api.post(path, &json!(null)).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{path}"
        );
    }
    // Account-level like the other feeds: a profile-bound key gets 403.
    let (status, _, _) = api
        .send(
            reqwest::Method::POST,
            "/prices/history?fetchId=-1",
            &basic("PROFILEKEY000001", "profile-secret-000000001"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

// ------------------------------------------------------------------ JWT sessions

fn jwt_claims(token: &str) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1])
        .expect("base64url");
    serde_json::from_slice(&payload).expect("claims")
}

#[tokio::test]
async fn jwt_session_by_get_or_post_is_a_bearer_until_it_expires() {
    let api = Api::with(config_with_keys()).await;
    let creds = api.sandbox.credentials().nshift;
    let agents = "/addresses/agents?type=POSTNORD&zip=41121&countryCode=SE";
    let mut tokens = Vec::new();
    for method in [reqwest::Method::POST, reqwest::Method::GET] {
        let (status, body, _) = api
            .send(method.clone(), "/sessions/jwt", &api.auth, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{method}");
        let session: nshift_models::delivery::JwtSession =
            serde_json::from_slice(&body).expect("fits the spec");
        let claims = jwt_claims(&session.token);
        assert_eq!(claims["sub"], json!(creds.api_key_id));
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            12 * 3600
        );
        tokens.push(session.token);
    }
    assert_ne!(tokens[0], tokens[1]);
    assert_eq!(api.sandbox.state().nshift.jwt_sessions_issued(), 2);
    let bearer = format!("Bearer {}", tokens[0]);
    assert_eq!(
        api.send(reqwest::Method::GET, agents, &bearer, None)
            .await
            .0,
        StatusCode::OK
    );

    // Only Basic gets a session; a JWT or a wrong secret does not.
    for auth in [
        bearer.clone(),
        basic(&creds.api_key_id, "wrong"),
        format!("Bearer {}-{}", creds.api_key_id, creds.secret_id),
    ] {
        assert_eq!(
            api.send(reqwest::Method::POST, "/sessions/jwt", &auth, None)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    // The JWT carries its key's licences: a store-only key's JWT is refused elsewhere (403).
    let (_, body, _) = api
        .send(
            reqwest::Method::POST,
            "/sessions/jwt",
            &basic("STOREONLYKEY0001", "store-only-secret-0000001"),
            None,
        )
        .await;
    let store_only: Value = serde_json::from_slice(&body).unwrap();
    let store_bearer = format!("Bearer {}", store_only["token"].as_str().unwrap());
    assert_eq!(
        api.send(reqwest::Method::GET, agents, &store_bearer, None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.send(
            reqwest::Method::POST,
            "/stored-shipments",
            &store_bearer,
            Some(&shipment("JWT-1"))
        )
        .await
        .0,
        StatusCode::CREATED
    );
    // A forged token is unknown.
    let forged = format!("Bearer {}x", tokens[0]);
    assert_eq!(
        api.send(reqwest::Method::GET, agents, &forged, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // Twelve hours of virtual time later the JWT is refused (401); a new one works.
    api.advance(12 * 3600 - 1);
    assert_eq!(
        api.send(reqwest::Method::GET, agents, &bearer, None)
            .await
            .0,
        StatusCode::OK
    );
    api.advance(1);
    let (status, _, _) = api.send(reqwest::Method::GET, agents, &bearer, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, body, _) = api
        .send(reqwest::Method::POST, "/sessions/jwt", &api.auth, None)
        .await;
    let fresh: Value = serde_json::from_slice(&body).unwrap();
    let fresh = format!("Bearer {}", fresh["token"].as_str().unwrap());
    assert_eq!(
        api.send(reqwest::Method::GET, agents, &fresh, None).await.0,
        StatusCode::OK
    );
    // Basic and the combined key keep working alongside.
    assert_eq!(api.get(agents).await.0, StatusCode::OK);
}

#[tokio::test]
async fn jwt_method_can_be_restricted_by_config() {
    let api = Api::with(SandboxConfig {
        nshift: NshiftConfig {
            jwt_methods: sandbox::nshift::JwtMethods::PostOnly,
            ..NshiftConfig::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let response = api
        .http
        .get(api.url("/sessions/jwt"))
        .header("authorization", &api.auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    assert_eq!(
        api.send(reqwest::Method::POST, "/sessions/jwt", &api.auth, None)
            .await
            .0,
        StatusCode::OK
    );
}
