//! The client and its operations: every generated operation through [`Caller`] (the
//! `DeliveryApi` methods), and thin methods for what is nShift's own (the Developer ID, the
//! print query, decoded labels, ids as `&str`).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use client_core::{ApiRequest, Engine, Failure};
use http::header;
use models_runtime::{Caller, Operation};
use nshift_models::delivery::operations::{
    CreateShipment, DeliveryApi, GetShipmentPdf, PrintStoredShipment,
};
use nshift_models::delivery::{
    AddressCheckRequest, AddressStatus, CancelShipmentPath, CheckAddressQuery,
    CheckAddressQueryLanguage, CreateShipmentQuery, DeleteStoredShipmentPath, GetShipmentPdfPath,
    GetStoredShipmentPath, ListShipmentPdfsPath, PdfInfo, PriceRequest, PriceResponse, PrintConfig,
    PrintStoredShipmentPath, PrintStoredShipmentQuery, SearchStoredShipmentsQuery, Shipment,
    ShipmentInfo, ShipmentPrintRequest, StoredShipmentInfo,
};
use reqwest::Url;

use crate::config::{AuthMode, BookOnceOptions};
use crate::error::{Error, Nshift};
use crate::label::{Label, LabelFormat, PrintedShipment};

/// POSTs that change nothing, so they are safe to repeat (retried like a GET; a timeout of one
/// is transient): an address check, a price quote, a page of the price history. The booking
/// POSTs (a shipment, a stored shipment, a print) are sent at most once after they may have
/// reached nShift: it has no idempotency key.
const REPEATABLE_POSTS: &[&str] = &["CheckAddress", "GetPrice", "FetchPriceHistory"];

/// A client of the nShift Delivery REST API (`rs-extapi/v1`). Cheap to clone; clones share
/// the connection pool and retry budget.
///
/// Every request goes through Trace → Retry → Auth (static Basic or Bearer, or a cached JWT) →
/// transport. Only requests that are safe to repeat (GET, DELETE, and the POSTs that change
/// nothing: address check, price quote, price history) are retried on 429/502/503/504; another
/// POST is retried only when the connection failed before anything was sent. See
/// [`NshiftClient::book_once`] for booking exactly once.
#[derive(Clone)]
pub struct NshiftClient {
    pub(crate) engine: Engine<Nshift>,
    pub(crate) base_url: Url,
    pub(crate) developer_id: Option<String>,
    pub(crate) auth_mode: AuthMode,
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

/// Every generated nShift operation through the one engine, under the base URL; the POSTs
/// that change nothing are marked safe to repeat.
impl Caller for NshiftClient {
    type Error = Error;

    fn call<O: Operation>(
        &self,
        path: &O::Path,
        query: &O::Query,
        body: Option<&O::Body>,
    ) -> impl Future<Output = Result<O::Response, Error>> + Send {
        let request = self.request::<O>(path, query, body);
        let engine = self.engine.clone();
        async move { engine.call::<O>(request).await }
    }
}

impl NshiftClient {
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

    /// The request of `O` under the base URL, the repeatable POSTs marked.
    fn request<O: Operation>(
        &self,
        path: &O::Path,
        query: &O::Query,
        body: Option<&O::Body>,
    ) -> ApiRequest {
        let request = ApiRequest::operation::<O>(&self.base_url, path, query, body);
        match O::INFO.method {
            "POST" if REPEATABLE_POSTS.contains(&O::INFO.id) => request.idempotent(true),
            _ => request,
        }
    }

    /// Sends a print request and decodes the shipments with their inline documents; a document
    /// that is not base64 is a decode failure of the answer.
    async fn print(
        &self,
        request: ApiRequest,
        declared: Option<&str>,
    ) -> Result<Vec<PrintedShipment>, Error> {
        let operation = request.info().operation.id;
        let response = self.engine.send(request).await?;
        let decode = |e| Error::from(Failure::decode(operation, &response, e));
        let infos: Vec<ShipmentInfo> = serde_json::from_slice(response.body()).map_err(decode)?;
        infos
            .into_iter()
            .map(|info| {
                PrintedShipment::decode(info, declared)
                    .map_err(|reason| decode(serde::de::Error::custom(reason)))
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
        let inline_pdf = request.pdf_config.is_some() && request.print_config.is_none();
        let query = CreateShipmentQuery {
            return_file: (!inline_pdf).then_some(true),
            inline_pdf: inline_pdf.then_some(true),
        };
        let config = request.print_config.as_ref();
        let declared = config.and_then(|c| c.target1_type.as_ref().map(|t| t.as_str().to_owned()));
        let request = self.request::<CreateShipment>(&(), &query, Some(&request));
        self.print(request, declared.as_deref()).await
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
        self.create_stored_shipment(&shipment).await
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
        let stored_id = stored_id.to_owned();
        DeliveryApi::get_stored_shipment(self, &GetStoredShipmentPath { stored_id }).await
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
        let stored_id = stored_id.to_owned();
        let path = PrintStoredShipmentPath { stored_id };
        let query = PrintStoredShipmentQuery {
            return_file: Some(true),
            inline_pdf: None,
        };
        let request = self.request::<PrintStoredShipment>(&path, &query, Some(config));
        let declared = config.target1_type.as_ref().map(|t| t.as_str());
        self.print(request, declared).await
    }

    /// Deletes a stored shipment permanently (`DELETE /stored-shipments/{storedId}`, licence
    /// REST API Store).
    pub async fn delete_stored_shipment(&self, stored_id: &str) -> Result<(), Error> {
        let stored_id = stored_id.to_owned();
        DeliveryApi::delete_stored_shipment(self, &DeleteStoredShipmentPath { stored_id }).await
    }

    /// Cancels (discards) a printed shipment (`DELETE /shipments/{shipmentId}`, licence REST API
    /// Discard): its status becomes cancelled and the carrier is told if it supports that.
    pub async fn cancel_shipment(&self, shipment_id: &str) -> Result<(), Error> {
        let shipment_id = shipment_id.to_owned();
        DeliveryApi::cancel_shipment(self, &CancelShipmentPath { shipment_id }).await
    }

    /// Lists the documents of a shipment (`GET /shipments/{shipmentId}/pdfs`, licence REST API
    /// Print). Documents are available for one hour after printing.
    pub async fn list_documents(&self, shipment_id: &str) -> Result<Vec<PdfInfo>, Error> {
        let path = ListShipmentPdfsPath {
            shipment_id: shipment_id.to_owned(),
        };
        self.list_shipment_pdfs(&path, &Default::default()).await
    }

    /// Downloads one document (`GET /shipments/{shipmentId}/pdfs/{pdfId}`, licence REST API
    /// Print) as bytes with its format (PDF, or ZPL for thermal targets). An expired document is
    /// answered 404 (or 410).
    pub async fn fetch_document(&self, shipment_id: &str, pdf_id: &str) -> Result<Label, Error> {
        let path = GetShipmentPdfPath {
            shipment_id: shipment_id.to_owned(),
            pdf_id: pdf_id.to_owned(),
        };
        let request = self.request::<GetShipmentPdf>(&path, &(), None);
        let response = self.engine.send(request).await?;
        let declared = response.headers().get(header::CONTENT_TYPE);
        let declared = declared.and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = response.into_body();
        let format = LabelFormat::detect(&bytes, declared.as_deref());
        Ok(Label {
            id: Some(pdf_id.to_owned()),
            description: None,
            format,
            bytes,
        })
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
            let language = language.as_str();
            let reason = format!("address check language `{language}` is not SE, GB, DK or FI");
            return Err(Error::invalid("CheckAddress", reason));
        }
        DeliveryApi::check_address(self, &CheckAddressQuery { language }, address).await
    }

    /// Quotes the price of a shipment without booking it (`POST /prices`; the licence name is
    /// undocumented). The configured Developer ID is added when the shipment has none.
    /// Problems (unknown service, no weight, a carrier that does not answer price enquiries)
    /// come back in `errorList` with no `priceData`, not as an error. Changes nothing, so it
    /// is retried like a GET.
    pub async fn price(&self, mut request: PriceRequest) -> Result<PriceResponse, Error> {
        self.apply_developer_id(&mut request.shipment);
        self.get_price(&request).await
    }

    /// Sleeps on tokio's clock (so paused-time tests run instantly).
    pub(crate) async fn pause(delay: Duration) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}
