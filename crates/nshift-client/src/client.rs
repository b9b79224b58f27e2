//! The client: every generated operation through [`Caller`] (the `DeliveryApi` methods), and
//! methods for what is nShift's own (the Developer ID, the print query, decoded labels, the
//! address-check language).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use auth_core::TokenCache;
use client_core::{ApiRequest, Engine, Failure, HealthSnapshot};
use http::header;
use models_runtime::{Caller, Operation};
use nshift_models::delivery::operations::{
    CreateShipment, DeliveryApi, GetShipmentPdf, PrintStoredShipment,
};
use nshift_models::delivery::{
    AddressCheckRequest, AddressStatus, CheckAddressQuery, CheckAddressQueryLanguage,
    CreateShipmentQuery, GetShipmentPdfPath, PriceRequest, PriceResponse, PrintConfig,
    PrintStoredShipmentPath, PrintStoredShipmentQuery, SearchStoredShipmentsQuery, Shipment,
    ShipmentInfo, ShipmentPrintRequest, StoredShipmentInfo,
};
use reqwest::Url;

use crate::config::{AuthMode, BookOnceOptions};
use crate::error::{Error, Nshift};
use crate::label::{Label, LabelFormat, PrintedShipment};

/// The POSTs that change nothing, so they are retried like a GET (and a timeout of one is
/// transient). The booking POSTs are not: nShift has no idempotency key.
const REPEATABLE_POSTS: &[&str] = &["CheckAddress", "GetPrice", "FetchPriceHistory"];

/// A client of the nShift Delivery REST API (`rs-extapi/v1`); the stack, what is retried and
/// why are in the crate README. Cheap to clone; clones share the connection pool and retry
/// budget. `Debug` shows no credential: they live in the auth layer, which it does not show.
#[derive(Clone)]
pub struct NshiftClient {
    pub(crate) engine: Engine<Nshift>,
    /// The auth layer's token cache, read for [`Self::health`].
    pub(crate) token: TokenCache,
    pub(crate) base_url: Url,
    pub(crate) developer_id: Option<String>,
    pub(crate) auth_mode: AuthMode,
    pub(crate) print_config: PrintConfig,
    pub(crate) book_options: BookOnceOptions,
}

/// Every generated operation under the base URL, the POSTs that change nothing marked safe
/// to repeat.
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

impl fmt::Debug for NshiftClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NshiftClient")
            .field("engine", &self.engine)
            .field("base_url", &self.base_url.as_str())
            .field("developer_id", &self.developer_id)
            .field("auth_mode", &self.auth_mode)
            .field("print_config", &self.print_config)
            .field("book_options", &self.book_options)
            .finish_non_exhaustive()
    }
}

impl NshiftClient {
    /// How this client's calls went so far (requests, the last success, 429, 503 and error)
    /// and, with [`AuthMode::Jwt`], until when the cached JWT is valid (`None` before the
    /// first call, and always for Basic and Bearer keys, which do not expire), for an
    /// operator's overview. nShift reports no rate budget, so `budget_left` is `None`.
    /// Nothing is fetched.
    pub fn health(&self) -> HealthSnapshot {
        let mut health = self.engine.health();
        let valid_until = self.token.valid_until();
        health.token_valid_until = valid_until.map(|at| health.wall_time(at));
        health
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
        let missing = shipment.developer_id.as_deref();
        if missing.is_none_or(|d| d.trim().is_empty()) && self.developer_id.is_some() {
            shipment.developer_id.clone_from(&self.developer_id);
        }
    }

    fn request<O: Operation>(
        &self,
        path: &O::Path,
        query: &O::Query,
        body: Option<&O::Body>,
    ) -> ApiRequest {
        let request = ApiRequest::operation::<O>(&self.base_url, path, query, body);
        let idempotent = request.info().idempotent || REPEATABLE_POSTS.contains(&O::INFO.id);
        request.idempotent(idempotent)
    }

    /// Sends a print request and decodes the shipments with their inline documents (one that
    /// is not base64 is a decode failure of the answer).
    async fn print(
        &self,
        request: ApiRequest,
        declared: Option<&str>,
    ) -> Result<Vec<PrintedShipment>, Error> {
        let operation = request.info().operation.id;
        let response = self.engine.send(request).await?;
        let decode = |e| Error::from(Failure::decode(operation, &response, e));
        let infos: Vec<ShipmentInfo> = serde_json::from_slice(response.body()).map_err(decode)?;
        let printed = infos
            .into_iter()
            .map(|info| PrintedShipment::decode(info, declared));
        let printed = printed.collect::<Result<_, _>>();
        printed.map_err(|reason| decode(serde::de::Error::custom(reason)))
    }

    /// Books **and prints** a shipment (`POST /shipments`, licence REST API Print) with the
    /// labels decoded, the Developer ID added. Not retried once it may have been sent (a
    /// second, billable shipment): prefer [`NshiftClient::book_once`]. With `pdfConfig` (2016)
    /// instead of `printConfig` the documents are asked for with `inlinePdf=true`.
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

    /// Stores a shipment for later printing (`POST /stored-shipments`, licence REST API Store),
    /// the Developer ID added; its `status` is READY, WARNED, INVALID or FAILED. Not retried
    /// once it may have been sent (see [`NshiftClient::book_once`]).
    pub async fn store_shipment(
        &self,
        mut shipment: Shipment,
    ) -> Result<StoredShipmentInfo, Error> {
        self.apply_developer_id(&mut shipment);
        self.create_stored_shipment(&shipment).await
    }

    /// The stored shipments whose `orderNo` equals `order_no` exactly (the search
    /// `orderNo equals`, its answer checked again).
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
        let found = found.into_iter();
        Ok(found
            .filter(|s| s.order_no.as_deref() == Some(order_no))
            .collect())
    }

    /// Prints a READY stored shipment (`POST /stored-shipments/{storedId}/shipments`, licence
    /// REST API Print) with the labels decoded. nShift prints one once: then it is PRINTED and
    /// another print gets 422 (what [`NshiftClient::book_once`] relies on).
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

    /// Downloads one document (`GET /shipments/{shipmentId}/pdfs/{pdfId}`, licence REST API
    /// Print) with its format recognised; documents expire an hour after printing (404/410).
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
        Ok(Label {
            id: Some(pdf_id.to_owned()),
            description: None,
            format: LabelFormat::detect(&bytes, declared.as_deref()),
            bytes,
        })
    }

    /// Validates an address (`POST /addresses/status`, licence REST API AddressCheck): the
    /// problems (`error: false` is a warning) in `language`, none when it is fine. A language
    /// other than SE, GB, DK or FI is refused before sending.
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

    /// Quotes a shipment without booking it (`POST /prices`), the Developer ID added. A
    /// shipment that cannot be priced is answered with `errorList`, not an error.
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
