//! The operations: Services 1.1, Query 3.0 and Connect 4.0, each one a generated method
//! (`ServicesApi`, `ConnectApi`, `QueryApi`) over [`Caller`]; what is Norce's own stays here
//! (argument checks, Query pages and navigation names, import headers).

use std::future::Future;

use client_core::ApiRequest;
use futures::stream::{self, BoxStream, StreamExt as _};
use models_runtime::{Caller, Operation};
use norce_models::connect::operations::{ConnectApi, ImportOnhands, ImportSkuPriceLists};
use norce_models::connect::{
    CancelOrderRequest, DeliveryNote, GetJobLogQuery, GetJobQuery, Job, JobLogAnswer, JobLogEntry,
    JobResponse, SendOrderStatusRequest, SkuOnhand, SkuPriceList,
};
use norce_models::query::{self, OrdersPage, QueryOrdersQuery};
use norce_models::services::operations::ServicesApi;
use norce_models::services::{
    Application, GetApplicationQuery, GetApplicationQueryFormat, GetOrderQuery,
    GetOrderQueryFormat, ListOrders3Query, ListOrders3QueryFormat, Order, OrderPagedList,
};
use reqwest::Url;
use serde::Serialize;

use crate::client::NorceClient;
use crate::error::Error;
use crate::imports::{ImportOptions, header_json, onhand_header, price_list_header};

/// Page size used by [`NorceClient::list_orders`] when the query sets none.
pub const DEFAULT_PAGE_SIZE: i32 = 100;

/// POSTs that are safe to repeat (retried by the stack; a timeout of one is transient):
/// setting a status twice is harmless, and imports write absolute values. Every other POST
/// (a delivery note, a cancellation) is sent at most once after it may have reached Norce.
const REPEATABLE_POSTS: &[&str] = &["SendOrderStatus", "ImportOnhands", "ImportSkuPriceLists"];

/// Why an identity or event operation is refused.
const NOT_CALLED: &str = "not an operation of Services, Connect or Query: tokens come from the client's token cache, events are received by `relay serve`";

/// Every generated Norce operation through the one engine: the API root by the operation's
/// path (Connect, Query, else Services), the repeatable POSTs marked.
impl Caller for NorceClient {
    type Error = Error;

    fn call<O: Operation>(
        &self,
        path: &O::Path,
        query: &O::Query,
        body: Option<&O::Body>,
    ) -> impl Future<Output = Result<O::Response, Error>> + Send {
        let request = self.request::<O>(path, query, body);
        let engine = self.inner.engine.clone();
        async move { engine.call::<O>(request?).await }
    }
}

impl NorceClient {
    /// The request of `O` under its API root. The identity and event operations are refused:
    /// tokens come from the token cache and events are Norce's calls to us.
    fn request<O: Operation>(
        &self,
        path: &O::Path,
        query: &O::Query,
        body: Option<&O::Body>,
    ) -> Result<ApiRequest, Error> {
        let endpoints = &self.inner.endpoints;
        let op = &O::INFO;
        let base = match op.path {
            p if p.starts_with("/commerce/connect/") => &endpoints.connect,
            p if p.starts_with("/commerce/query/") => &endpoints.query,
            p if p.starts_with("/commerce/") => &endpoints.services,
            _ => return Err(Error::invalid(op.id, NOT_CALLED)),
        };
        let request = ApiRequest::operation::<O>(base, path, query, body);
        Ok(match op.method {
            "POST" if REPEATABLE_POSTS.contains(&op.id) => request.idempotent(true),
            _ => request,
        })
    }

    /// The Application the `ApplicationId` refers to
    /// (`GET /commerce/metadata/1.1/GetApplication?format=json`).
    pub async fn get_application(&self) -> Result<Application, Error> {
        let format = Some(GetApplicationQueryFormat::Json);
        let query = GetApplicationQuery {
            format,
            ..Default::default()
        };
        ServicesApi::get_application(self, &query).await
    }

    /// A cheap end-to-end check for `relay verify`: fetches a token (or reuses the cached one)
    /// and reads the Application. Errors carry a [`Error::hint`] naming the setting to fix.
    pub async fn verify(&self) -> Result<Application, Error> {
        self.fetch_token().await?;
        let application = self.get_application().await?;
        if application.id != self.inner.application_id {
            tracing::warn!(target: "norce_client", asked = self.inner.application_id, got = application.id,
                "GetApplication returned another application id");
        }
        Ok(application)
    }

    /// One order with items and delivery notes (`GET /commerce/order/1.1/GetOrder?id=`).
    pub async fn get_order(&self, id: &str) -> Result<Order, Error> {
        let query = GetOrderQuery {
            format: Some(GetOrderQueryFormat::Json),
            id: id.to_owned(),
            ..Default::default()
        };
        ServicesApi::get_order(self, &query).await
    }

    /// One page of `ListOrders3` (`GET /commerce/order/1.1/ListOrders3`), as asked.
    pub async fn list_orders_page(
        &self,
        query: &ListOrders3Query,
    ) -> Result<OrderPagedList, Error> {
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        if blank(&query.company_id)
            && blank(&query.customer_id)
            && blank(&query.division_code)
            && query.from_date.is_none()
            && query.to_date.is_none()
        {
            return Err(Error::invalid(
                "ListOrders3",
                "ListOrders3 needs at least one of companyId, customerId, divisionCode, fromDate, toDate",
            ));
        }
        let mut query = query.clone();
        query.format = Some(ListOrders3QueryFormat::Json);
        ServicesApi::list_orders3(self, &query).await
    }

    /// Every page of `ListOrders3` from `query.page_no` (default 1), `query.page_size` orders
    /// per page (default [`DEFAULT_PAGE_SIZE`]). Ends after the page that reaches `ItemCount`,
    /// a short page, or an empty page; stops after the first error.
    pub fn list_orders(
        &self,
        query: ListOrders3Query,
    ) -> BoxStream<'static, Result<OrderPagedList, Error>> {
        let client = self.clone();
        let mut query = query;
        let page_size = query
            .page_size
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_PAGE_SIZE);
        query.page_size = Some(page_size);
        let first = query.page_no.filter(|n| *n > 0).unwrap_or(1);
        stream::unfold(Some(first), move |page| {
            let client = client.clone();
            let mut query = query.clone();
            async move {
                let page_no = page?;
                query.page_no = Some(page_no);
                match client.list_orders_page(&query).await {
                    Ok(list) => {
                        let n = list.items.as_ref().map_or(0, Vec::len);
                        let seen = i64::from(page_no) * i64::from(page_size);
                        let more =
                            n > 0 && n >= page_size as usize && seen < i64::from(list.item_count);
                        Some((Ok(list), more.then(|| page_no + 1)))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .boxed()
    }

    /// Every page of Query 3.0 orders (`GET /commerce/query/3.0/Orders/Orders`), following
    /// `@odata.nextLink` until it is absent. A next link on another host is refused (the
    /// bearer token must not leave the Norce host); a relative one is resolved.
    pub fn query_orders(
        &self,
        query: QueryOrdersQuery,
    ) -> BoxStream<'static, Result<OrdersPage, Error>> {
        let client = self.clone();
        let op = &query::operations::QUERY_ORDERS;
        let first = self.request::<query::operations::QueryOrders>(&(), &query, None);
        stream::unfold(Some(first), move |next| {
            let client = client.clone();
            async move {
                let request = match next? {
                    Ok(request) => request,
                    Err(e) => return Some((Err(e), None)),
                };
                match client.query_page(request).await {
                    Ok(page) => {
                        let next = page
                            .odata_next_link
                            .as_deref()
                            .filter(|l| !l.trim().is_empty())
                            .map(|link| client.next_link(link).map(|url| ApiRequest::at(op, url)));
                        Some((Ok(page), next))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .boxed()
    }

    /// One Query page, its navigation names read as the spec's (`QueryNavigation`).
    async fn query_page(&self, request: ApiRequest) -> Result<OrdersPage, Error> {
        let op = request.info().operation.id;
        let response = self.inner.engine.send(request).await?;
        let decode = |e| Error::from(client_core::Failure::decode(op, &response, e));
        let mut page = serde_json::from_slice(response.body()).map_err(decode)?;
        self.inner.query_navigation.to_spec_names(&mut page);
        serde_json::from_value(page).map_err(decode)
    }

    fn next_link(&self, link: &str) -> Result<Url, Error> {
        let op = &query::operations::QUERY_ORDERS;
        let base = &self.inner.endpoints.query;
        let url = base.join(link).map_err(|e| Error::InvalidResponse {
            operation: op.id,
            reason: format!("@odata.nextLink `{link}` is not a URL: {e}"),
        })?;
        if url.origin() != base.origin() {
            return Err(Error::InvalidResponse {
                operation: op.id,
                reason: format!(
                    "@odata.nextLink points at {} instead of {}; not following it",
                    url.origin().ascii_serialization(),
                    base.origin().ascii_serialization()
                ),
            });
        }
        Ok(url)
    }

    /// Sets an order's status (`POST /commerce/connect/4.0/Order/SendOrderStatus`). The order
    /// is matched by `ClientOrderRef` and/or `ErpOrderNo`; at least one must be set. Retried
    /// on 429/5xx (setting a status twice is harmless).
    pub async fn send_order_status(&self, request: &SendOrderStatusRequest) -> Result<(), Error> {
        order_ref(
            "SendOrderStatus",
            request.client_order_ref,
            &request.erp_order_no,
        )?;
        ConnectApi::send_order_status(self, request).await
    }

    /// Adds a delivery note with its parcels (tracking numbers) to an order
    /// (`POST /commerce/connect/4.0/Order/CreateDeliveryNote`). Not retried after the request
    /// may have reached Norce, so a note is never created twice.
    pub async fn create_delivery_note(&self, note: &DeliveryNote) -> Result<(), Error> {
        ConnectApi::create_delivery_note(self, note).await
    }

    /// Cancels an order (`POST /commerce/connect/4.0/Order/CancelOrder`), with a PSP cancel
    /// per listed payment. Matched by `ClientOrderRef` and/or `ErpOrderNo`.
    pub async fn cancel_order(&self, request: &CancelOrderRequest) -> Result<(), Error> {
        order_ref(
            "CancelOrder",
            request.client_order_ref,
            &request.erp_order_no,
        )?;
        ConnectApi::cancel_order(self, request).await
    }

    /// An import of `rows` with its `X-StormConnect-Header` (computed by the caller; Norce's
    /// field codes do not fit the generated header type).
    async fn import<O: Operation<Path = (), Query = (), Response = JobResponse>>(
        &self,
        rows: &[impl Serialize],
        header: String,
    ) -> Result<JobResponse, Error> {
        let request = self.request::<O>(&(), &(), None)?.json(rows);
        let request = request.header("X-StormConnect-Header", &header);
        self.inner.engine.call::<O>(request).await
    }

    /// Imports stock levels (`POST /commerce/connect/4.0/Product/ImportOnhands`, asynchronous).
    /// The `X-StormConnect-Header` lists exactly the fields the rows set. Returns the
    /// `JobResponse`; wait for it with [`NorceClient::wait_for_import`].
    pub async fn import_onhands(
        &self,
        rows: &[SkuOnhand],
        options: &ImportOptions,
    ) -> Result<JobResponse, Error> {
        let header = onhand_header(rows, options)?;
        let header = header_json("ImportOnhands", &header, options.field_codes)?;
        self.import::<ImportOnhands>(rows, header).await
    }

    /// Imports SKU prices (`POST /commerce/connect/4.0/Product/ImportSkuPriceLists`,
    /// asynchronous). Null or zero values do not overwrite in Norce.
    pub async fn import_sku_price_lists(
        &self,
        rows: &[SkuPriceList],
        options: &ImportOptions,
    ) -> Result<JobResponse, Error> {
        let header = price_list_header(rows, options)?;
        let header = header_json("ImportSkuPriceLists", &header, options.field_codes)?;
        self.import::<ImportSkuPriceLists>(rows, header).await
    }

    /// An import job (`GET /commerce/connect/4.0/Job/Get?id=`).
    pub async fn get_job(&self, job_id: i32) -> Result<Job, Error> {
        ConnectApi::get_job(self, &GetJobQuery { id: job_id }).await
    }

    /// An import job's log (`GET /commerce/connect/4.0/Job/GetLog?id=`), oldest first. Norce's
    /// published sample answers a single entry rather than a list; both are read as a list.
    pub async fn get_job_log(&self, job_id: i32) -> Result<Vec<JobLogEntry>, Error> {
        let answer = ConnectApi::get_job_log(self, &GetJobLogQuery { id: job_id }).await?;
        Ok(match answer {
            JobLogAnswer::JobLog(entries) => entries,
            JobLogAnswer::JobLogEntry(entry) => vec![entry],
        })
    }
}

/// SendOrderStatus and CancelOrder find the order by `ClientOrderRef` and/or `ErpOrderNo`.
fn order_ref(op: &'static str, client: Option<i32>, erp: &Option<String>) -> Result<(), Error> {
    if client.is_some() || erp.as_deref().is_some_and(|s| !s.is_empty()) {
        Ok(())
    } else {
        Err(Error::invalid(op, "set ClientOrderRef or ErpOrderNo"))
    }
}
