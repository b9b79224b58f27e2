//! The client and its operations.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode, header};
use models_runtime::OperationInfo;
use nshift_models::delivery::{
    AddressCheckRequest, AddressStatus, Agent, CancelShipmentPath, CheckAddressQueryLanguage,
    DeleteStoredShipmentPath, Error as ApiError, FindAgentsQuery, GetShipmentPdfPath,
    GetStoredShipmentPath, GetZipcodeInfoQuery, ListShipmentPdfsPath, PdfInfo, PriceRequest,
    PriceResponse, PrintConfig, PrintFileType, PrintStoredShipmentPath, SearchStoredShipmentsQuery,
    Shipment, ShipmentInfo, ShipmentPrintRequest, StoredShipmentInfo, ValidationStatus,
    ZipcodeInfo, operations as ops,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

use crate::config::{AuthMode, BookOnceOptions, NshiftClientBuilder, Transport};
use crate::error::{Error, body_text};

/// A document's file format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LabelFormat {
    /// `application/pdf`.
    Pdf,
    /// Zebra ZPL (`application/zpl`), sent to thermal printers as is.
    Zpl,
    /// Something else, with the media type nShift gave (or `application/octet-stream`).
    Other(String),
}

impl LabelFormat {
    /// The media type.
    pub fn media_type(&self) -> &str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Zpl => "application/zpl",
            Self::Other(media_type) => media_type,
        }
    }

    /// Recognises the format from the content, else from a declared media type or file type.
    fn detect(bytes: &[u8], declared: Option<&str>) -> Self {
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(0);
        let content = &bytes[start..];
        if content.starts_with(b"%PDF") {
            return Self::Pdf;
        }
        if content.starts_with(b"^XA") || content.starts_with(b"~") {
            return Self::Zpl;
        }
        match declared.map(|d| d.split(';').next().unwrap_or(d).trim().to_ascii_lowercase()) {
            Some(d) if d == "application/pdf" || d == "pdf" => Self::Pdf,
            Some(d) if d.contains("zpl") => Self::Zpl,
            Some(d) if !d.is_empty() => Self::Other(d),
            _ => Self::Other("application/octet-stream".to_owned()),
        }
    }
}

/// A printed document (label, waybill, customs paper) decoded into bytes.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Label {
    /// nShift's document id, when known.
    pub id: Option<String>,
    /// What it is, e.g. `Label`.
    pub description: Option<String>,
    /// PDF or ZPL.
    pub format: LabelFormat,
    /// The file.
    pub bytes: Bytes,
}

impl Label {
    /// The media type (`application/pdf`, `application/zpl`, ...).
    pub fn media_type(&self) -> &str {
        self.format.media_type()
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Label")
            .field("id", &self.id)
            .field("description", &self.description)
            .field("format", &self.format)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// A shipment created by a print call, with its documents decoded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PrintedShipment {
    /// nShift's summary (id, parcels with tracking numbers, document links).
    pub info: ShipmentInfo,
    /// The documents that came back inline (empty when nShift only sent links).
    pub labels: Vec<Label>,
}

impl PrintedShipment {
    pub(crate) fn new(info: ShipmentInfo, labels: Vec<Label>) -> Self {
        Self { info, labels }
    }

    /// The carrier parcel (tracking) numbers.
    pub fn parcel_numbers(&self) -> Vec<&str> {
        self.info
            .parcels
            .iter()
            .flatten()
            .filter_map(|p| p.parcel_no.as_deref())
            .collect()
    }
}

/// A client of the nShift Delivery REST API (`rs-extapi/v1`). Cheap to clone; clones share
/// the connection pool and retry budget.
///
/// Every request goes through Trace → Retry → Auth (static Basic or Bearer) → transport.
/// Only idempotent requests (GET, DELETE) are retried on 429/502/503/504; a POST is retried only
/// when the connection failed before anything was sent. See [`NshiftClient::book_once`] for
/// booking exactly once.
#[derive(Clone)]
pub struct NshiftClient {
    service: Transport,
    base_url: reqwest::Url,
    developer_id: Option<String>,
    auth_mode: AuthMode,
    pub(crate) print_config: PrintConfig,
    pub(crate) book_options: BookOnceOptions,
}

impl fmt::Debug for NshiftClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NshiftClient")
            .field("base_url", &self.base_url.as_str())
            .field("developer_id", &self.developer_id)
            .field("auth_mode", &self.auth_mode)
            .finish_non_exhaustive()
    }
}

/// The licence nShift requires for an operation (for the 403 hint).
fn licence_of(op: &OperationInfo) -> &'static str {
    match op.id {
        "CreateShipment" | "PrintStoredShipment" | "ListShipmentPdfs" | "GetShipmentPdf" => {
            "REST API Print"
        }
        "SearchStoredShipments"
        | "CreateStoredShipment"
        | "GetStoredShipment"
        | "DeleteStoredShipment" => "REST API Store",
        "CancelShipment" => "REST API Discard",
        "FetchShipments" | "FetchAlerts" => "REST API TrackBack",
        "FindAgents" => "REST API PickUpLocator",
        "GetZipcodeInfo" => "REST API ZipCheck",
        "CheckAddress" => "REST API AddressCheck",
        "GetPrice" | "FetchPriceHistory" => "price (the licence name is undocumented)",
        _ => "the licence of this operation",
    }
}

/// Query pairs of a serializable parameter struct (absent fields left out, sorted by name).
fn query_pairs<Q: Serialize>(query: &Q) -> Result<Vec<(String, String)>, Error> {
    client_core::query_pairs(query)
        .map_err(|e| Error::InvalidInput(format!("query parameters: {e}")))
}

/// A request body.
pub(crate) enum Body<'a> {
    None,
    Json(&'a (dyn erased::Json + Sync)),
}

mod erased {
    /// Object-safe JSON serialization.
    pub trait Json {
        fn to_json(&self) -> Result<Vec<u8>, serde_json::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
            serde_json::to_vec(self)
        }
    }
}

impl NshiftClient {
    /// A builder; see [`NshiftClientBuilder`].
    pub fn builder() -> NshiftClientBuilder {
        NshiftClientBuilder::default()
    }

    /// A client configured from the environment (`NSHIFT_*`, see the README).
    pub fn from_env() -> Result<Self, Error> {
        NshiftClientBuilder::from_env()?.build()
    }

    pub(crate) fn new(
        service: Transport,
        base_url: reqwest::Url,
        developer_id: Option<String>,
        auth_mode: AuthMode,
        print_config: PrintConfig,
        book_options: BookOnceOptions,
    ) -> Self {
        Self {
            service,
            base_url,
            developer_id,
            auth_mode,
            print_config,
            book_options,
        }
    }

    /// The API base URL.
    pub fn base_url(&self) -> &str {
        self.base_url.as_str()
    }

    /// The Developer ID put into shipments that have none.
    pub fn developer_id(&self) -> Option<&str> {
        self.developer_id.as_deref()
    }

    /// How the `Authorization` header is formed.
    pub fn auth_mode(&self) -> AuthMode {
        self.auth_mode
    }

    /// Puts the configured Developer ID into `shipment` when it has none.
    pub fn apply_developer_id(&self, shipment: &mut Shipment) {
        if shipment
            .developer_id
            .as_deref()
            .is_none_or(|d| d.trim().is_empty())
            && self.developer_id.is_some()
        {
            shipment.developer_id.clone_from(&self.developer_id);
        }
    }

    fn url(&self, path: &str, query: &[(String, String)]) -> reqwest::Url {
        let mut url = self.base_url.clone();
        let full = format!("{}{}", self.base_url.path().trim_end_matches('/'), path);
        url.set_path(&full);
        client_core::append_query(&mut url, query);
        url
    }

    /// Sends one request and returns the success answer, or the error the status maps to.
    async fn send(
        &self,
        op: &OperationInfo,
        path: &str,
        query: &[(String, String)],
        body: Body<'_>,
    ) -> Result<http::Response<Bytes>, Error> {
        self.send_with(op, path, query, body, false).await
    }

    /// [`Self::send`]; `read_only` marks a POST that changes nothing (address check, prices)
    /// as safe to retry on 429/502/503/504.
    async fn send_with(
        &self,
        op: &OperationInfo,
        path: &str,
        query: &[(String, String)],
        body: Body<'_>,
        read_only: bool,
    ) -> Result<http::Response<Bytes>, Error> {
        let url = self.url(path, query);
        let method = Method::from_bytes(op.method.as_bytes())
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let mut builder = http::Request::builder().method(method).uri(url.as_str());
        if let Some(accept) = op.response_media_type {
            builder = builder.header(header::ACCEPT, accept);
        }
        let bytes = match body {
            Body::None => Bytes::new(),
            Body::Json(value) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(
                    value
                        .to_json()
                        .map_err(|e| Error::InvalidInput(format!("request body: {e}")))?,
                )
            }
        };
        let mut request = builder
            .body(bytes)
            .map_err(|e| Error::InvalidInput(format!("request: {e}")))?;
        if read_only {
            request.extensions_mut().insert(auth_core::Idempotent);
        }
        let response = self
            .service
            .clone()
            .oneshot(request)
            .await
            .map_err(Error::from_stack)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        Err(self.status_error(op, path, response))
    }

    fn status_error(
        &self,
        op: &OperationInfo,
        path: &str,
        response: http::Response<Bytes>,
    ) -> Error {
        let status = response.status();
        let raw = response.body();
        let body = body_text(raw);
        let operation = format!("{} {}", op.method, path);
        match status {
            StatusCode::UNAUTHORIZED => Error::Unauthorized { status, body },
            StatusCode::FORBIDDEN => Error::Forbidden {
                operation,
                licence: licence_of(op),
                body,
            },
            StatusCode::NOT_FOUND | StatusCode::GONE => Error::NotFound { operation, body },
            StatusCode::BAD_REQUEST => {
                let parsed: ApiError = serde_json::from_slice(raw).unwrap_or_default();
                Error::BadRequest {
                    code: parsed.code,
                    message: parsed.message,
                    body,
                }
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                let statuses: Vec<ValidationStatus> = serde_json::from_slice(raw)
                    .or_else(|_| serde_json::from_slice::<ValidationStatus>(raw).map(|s| vec![s]))
                    .unwrap_or_default();
                Error::Validation { statuses, body }
            }
            StatusCode::TOO_MANY_REQUESTS => Error::Throttled {
                retry_after: auth_core::retry::parse_retry_after(response.headers()),
                body,
            },
            s if s.is_server_error() => {
                let parsed: ApiError = serde_json::from_slice(raw).unwrap_or_default();
                Error::Server {
                    status,
                    message: parsed.message,
                    body,
                }
            }
            _ => Error::UnexpectedStatus { status, body },
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        op: &OperationInfo,
        path: &str,
        query: &[(String, String)],
        body: Body<'_>,
    ) -> Result<T, Error> {
        self.json_with(op, path, query, body, false).await
    }

    /// [`Self::json`] with [`Self::send_with`]'s `read_only`.
    async fn json_with<T: DeserializeOwned>(
        &self,
        op: &OperationInfo,
        path: &str,
        query: &[(String, String)],
        body: Body<'_>,
        read_only: bool,
    ) -> Result<T, Error> {
        let response = self.send_with(op, path, query, body, read_only).await?;
        serde_json::from_slice(response.body()).map_err(|e| Error::Decode {
            operation: format!("{} {path}", op.method),
            message: e.to_string(),
            body: body_text(response.body()),
        })
    }

    /// Decodes the inline documents of print results.
    fn printed(
        infos: Vec<ShipmentInfo>,
        declared: Option<&PrintFileType>,
    ) -> Result<Vec<PrintedShipment>, Error> {
        let declared = declared.map(PrintFileType::as_str);
        infos
            .into_iter()
            .map(|info| {
                let mut labels = Vec::new();
                let inline =
                    info.prints
                        .iter()
                        .flatten()
                        .map(|p| (p.id.clone(), p.description.clone(), p.data.as_deref()))
                        .chain(info.pdfs.iter().flatten().map(|p| {
                            (Some(p.id.clone()), p.description.clone(), p.pdf.as_deref())
                        }));
                for (id, description, data) in inline {
                    let Some(data) = data.filter(|d| !d.is_empty()) else {
                        continue;
                    };
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(data.trim())
                        .map_err(|e| Error::Decode {
                            operation: "inline document".to_owned(),
                            message: format!(
                                "document {} is not base64: {e}",
                                id.as_deref().unwrap_or("?")
                            ),
                            body: String::new(),
                        })?;
                    let format = LabelFormat::detect(&bytes, declared);
                    labels.push(Label {
                        id,
                        description,
                        format,
                        bytes: Bytes::from(bytes),
                    });
                }
                Ok(PrintedShipment { info, labels })
            })
            .collect()
    }

    /// Books **and prints** a shipment in one call (`POST /shipments?returnFile=true`, licence
    /// REST API Print). The labels come back inline and are decoded into bytes (PDF or ZPL).
    ///
    /// The configured Developer ID is added when the shipment has none. The request is **not**
    /// retried after it may have been sent: nShift has no idempotency key, and a blind retry can
    /// book a second, billable shipment. Prefer [`NshiftClient::book_once`] when a booking must
    /// happen exactly once. Send `printConfig` (current) or `pdfConfig` (2016); with `pdfConfig`
    /// the documents are asked for with `inlinePdf=true` instead.
    pub async fn create_shipment(
        &self,
        mut request: ShipmentPrintRequest,
    ) -> Result<Vec<PrintedShipment>, Error> {
        self.apply_developer_id(&mut request.shipment);
        let op = &ops::CREATE_SHIPMENT;
        let query = if request.pdf_config.is_some() && request.print_config.is_none() {
            [("inlinePdf".to_owned(), "true".to_owned())]
        } else {
            [("returnFile".to_owned(), "true".to_owned())]
        };
        let declared = request
            .print_config
            .as_ref()
            .and_then(|c| c.target1_type.clone());
        let infos: Vec<ShipmentInfo> = self.json(op, op.path, &query, Body::Json(&request)).await?;
        Self::printed(infos, declared.as_ref())
    }

    /// Stores a shipment for later printing (`POST /stored-shipments`, licence REST API Store).
    /// The body is the bare shipment; the configured Developer ID is added when it has none.
    /// The answer's `status` is READY, WARNED, INVALID or FAILED, with `statuses` explaining it.
    /// Not retried after it may have been sent (see [`NshiftClient::book_once`]).
    pub async fn store_shipment(
        &self,
        mut shipment: Shipment,
    ) -> Result<StoredShipmentInfo, Error> {
        self.apply_developer_id(&mut shipment);
        let op = &ops::CREATE_STORED_SHIPMENT;
        self.json(op, op.path, &[], Body::Json(&shipment)).await
    }

    /// Searches stored shipments (`GET /stored-shipments`, licence REST API Store); at most 50
    /// results. `dateType`, `dateFrom` and `dateTo` must be used together.
    pub async fn search_stored_shipments(
        &self,
        query: &SearchStoredShipmentsQuery,
    ) -> Result<Vec<StoredShipmentInfo>, Error> {
        let op = &ops::SEARCH_STORED_SHIPMENTS;
        self.json(op, op.path, &query_pairs(query)?, Body::None)
            .await
    }

    /// The stored shipments whose `orderNo` equals `order_no` exactly
    /// (`GET /stored-shipments?searchField=orderNo&searchOp=equals&searchValue=…`).
    pub async fn find_stored_by_order_no(
        &self,
        order_no: &str,
    ) -> Result<Vec<StoredShipmentInfo>, Error> {
        let query = SearchStoredShipmentsQuery {
            search_field: Some("orderNo".into()),
            search_op: Some("equals".into()),
            search_value: Some(order_no.to_owned()),
            ..SearchStoredShipmentsQuery::default()
        };
        let found = self.search_stored_shipments(&query).await?;
        Ok(found
            .into_iter()
            .filter(|s| s.order_no.as_deref() == Some(order_no))
            .collect())
    }

    /// One stored shipment (`GET /stored-shipments/{storedId}`, licence REST API Store).
    pub async fn get_stored_shipment(&self, stored_id: &str) -> Result<StoredShipmentInfo, Error> {
        let op = &ops::GET_STORED_SHIPMENT;
        let path = GetStoredShipmentPath {
            stored_id: stored_id.to_owned(),
        }
        .to_path();
        self.json(op, &path, &[], Body::None).await
    }

    /// Prints a READY stored shipment (`POST /stored-shipments/{storedId}/shipments?returnFile=true`,
    /// licence REST API Print); the labels come back decoded. A stored shipment can be printed
    /// once: afterwards it is PRINTED and another print gets 422. A combined normal and return
    /// stored shipment gives two shipments.
    pub async fn print_stored_shipment(
        &self,
        stored_id: &str,
        config: &PrintConfig,
    ) -> Result<Vec<PrintedShipment>, Error> {
        let op = &ops::PRINT_STORED_SHIPMENT;
        let path = PrintStoredShipmentPath {
            stored_id: stored_id.to_owned(),
        }
        .to_path();
        let query = [("returnFile".to_owned(), "true".to_owned())];
        let infos: Vec<ShipmentInfo> = self.json(op, &path, &query, Body::Json(config)).await?;
        Self::printed(infos, config.target1_type.as_ref())
    }

    /// Deletes a stored shipment permanently (`DELETE /stored-shipments/{storedId}`, licence
    /// REST API Store).
    pub async fn delete_stored_shipment(&self, stored_id: &str) -> Result<(), Error> {
        let op = &ops::DELETE_STORED_SHIPMENT;
        let path = DeleteStoredShipmentPath {
            stored_id: stored_id.to_owned(),
        }
        .to_path();
        self.send(op, &path, &[], Body::None).await.map(drop)
    }

    /// Cancels (discards) a printed shipment (`DELETE /shipments/{shipmentId}`, licence REST API
    /// Discard): its status becomes cancelled and the carrier is told if it supports that.
    pub async fn cancel_shipment(&self, shipment_id: &str) -> Result<(), Error> {
        let op = &ops::CANCEL_SHIPMENT;
        let path = CancelShipmentPath {
            shipment_id: shipment_id.to_owned(),
        }
        .to_path();
        self.send(op, &path, &[], Body::None).await.map(drop)
    }

    /// Lists the documents of a shipment (`GET /shipments/{shipmentId}/pdfs`, licence REST API
    /// Print). Documents are available for one hour after printing.
    pub async fn list_documents(&self, shipment_id: &str) -> Result<Vec<PdfInfo>, Error> {
        let op = &ops::LIST_SHIPMENT_PDFS;
        let path = ListShipmentPdfsPath {
            shipment_id: shipment_id.to_owned(),
        }
        .to_path();
        self.json(op, &path, &[], Body::None).await
    }

    /// Downloads one document (`GET /shipments/{shipmentId}/pdfs/{pdfId}`, licence REST API
    /// Print) as bytes with its format (PDF, or ZPL for thermal targets). An expired document is
    /// [`Error::NotFound`].
    pub async fn fetch_document(&self, shipment_id: &str, pdf_id: &str) -> Result<Label, Error> {
        let op = &ops::GET_SHIPMENT_PDF;
        let path = GetShipmentPdfPath {
            shipment_id: shipment_id.to_owned(),
            pdf_id: pdf_id.to_owned(),
        }
        .to_path();
        let response = self.send(op, &path, &[], Body::None).await?;
        let declared = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.into_body();
        let format = LabelFormat::detect(&bytes, declared.as_deref());
        Ok(Label {
            id: Some(pdf_id.to_owned()),
            description: None,
            format,
            bytes,
        })
    }

    /// Pickup points (agents) near an address (`GET /addresses/agents`, licence REST API
    /// PickUpLocator). Put the chosen agent's `id` into `shipment.agent.quickId`.
    pub async fn find_agents(&self, query: &FindAgentsQuery) -> Result<Vec<Agent>, Error> {
        let op = &ops::FIND_AGENTS;
        self.json(op, op.path, &query_pairs(query)?, Body::None)
            .await
    }

    /// City and format of a zip code (`GET /addresses/zipcodes`, licence REST API ZipCheck).
    pub async fn zipcode_info(&self, query: &GetZipcodeInfoQuery) -> Result<ZipcodeInfo, Error> {
        let op = &ops::GET_ZIPCODE_INFO;
        self.json(op, op.path, &query_pairs(query)?, Body::None)
            .await
    }

    /// Validates an address (`POST /addresses/status?language=`, licence REST API
    /// AddressCheck). The answer lists the problems, each with `error: true` (an error) or
    /// `false` (a warning), its `location` and `messageId`, and the message in `language`
    /// (SE, GB, DK or FI); it is empty when the address is fine. Changes nothing, so it is
    /// retried like a GET.
    pub async fn check_address(
        &self,
        address: &AddressCheckRequest,
        language: CheckAddressQueryLanguage,
    ) -> Result<Vec<AddressStatus>, Error> {
        if language.is_unknown() {
            return Err(Error::InvalidInput(format!(
                "address check language `{}` is not SE, GB, DK or FI",
                language.as_str()
            )));
        }
        let op = &ops::CHECK_ADDRESS;
        let query = [("language".to_owned(), language.as_str().to_owned())];
        self.json_with(op, op.path, &query, Body::Json(address), true)
            .await
    }

    /// Quotes the price of a shipment without booking it (`POST /prices`; the licence name is
    /// undocumented). The configured Developer ID is added when the shipment has none.
    /// Problems (unknown service, no weight, a carrier that does not answer price enquiries)
    /// come back in `errorList` with no `priceData`, not as an error. Changes nothing, so it
    /// is retried like a GET.
    pub async fn price(&self, mut request: PriceRequest) -> Result<PriceResponse, Error> {
        self.apply_developer_id(&mut request.shipment);
        let op = &ops::GET_PRICE;
        self.json_with(op, op.path, &[], Body::Json(&request), true)
            .await
    }

    /// One page of a feed (`GET /alerts`, `GET /shipments` or `POST /prices/history` with
    /// `fetchId`). Reading a page changes nothing, so the POST is retried like a GET.
    pub(crate) async fn feed_page<T: DeserializeOwned>(
        &self,
        op: &OperationInfo,
        fetch_id: &str,
    ) -> Result<T, Error> {
        let query = [("fetchId".to_owned(), fetch_id.to_owned())];
        self.json_with(op, op.path, &query, Body::None, true).await
    }

    /// Sleeps on tokio's clock (so paused-time tests run instantly).
    pub(crate) async fn pause(delay: Duration) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_format_from_content_then_declared_type() {
        assert_eq!(LabelFormat::detect(b"%PDF-1.4", None), LabelFormat::Pdf);
        assert_eq!(
            LabelFormat::detect(b"\n^XA^FO50,50^XZ", Some("application/pdf")),
            LabelFormat::Zpl
        );
        assert_eq!(
            LabelFormat::detect(b"xx", Some("application/pdf; charset=binary")),
            LabelFormat::Pdf
        );
        assert_eq!(LabelFormat::detect(b"xx", Some("zpl")), LabelFormat::Zpl);
        assert_eq!(
            LabelFormat::detect(b"xx", None).media_type(),
            "application/octet-stream"
        );
    }

    #[test]
    fn query_pairs_leave_out_absent_fields() {
        let query = FindAgentsQuery {
            type_: "POSTNORD".into(),
            country_code: "SE".into(),
            ..Default::default()
        };
        assert_eq!(
            query_pairs(&query).unwrap(),
            vec![
                ("countryCode".to_owned(), "SE".to_owned()),
                ("type".to_owned(), "POSTNORD".to_owned())
            ]
        );
    }
}
