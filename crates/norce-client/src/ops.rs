//! The operations: Services 1.1, Query 3.0 and Connect 4.0.

use client_core::ApiRequest;
use futures::stream::{self, BoxStream, StreamExt as _};
use models_runtime::OperationInfo;
use norce_models::connect::{
    self, CancelOrderRequest, DeliveryNote, Job, JobLogAnswer, JobLogEntry, JobResponse,
    SendOrderStatusRequest, SkuOnhand, SkuPriceList,
};
use norce_models::query::{self, OrdersPage, QueryOrdersQuery};
use norce_models::services::{
    self, Application, GetApplicationQuery, GetApplicationQueryFormat, GetOrderQuery,
    GetOrderQueryFormat, ListOrders3Query, ListOrders3QueryFormat, Order, OrderPagedList,
};
use reqwest::Url;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::NorceClient;
use crate::error::Error;
use crate::imports::{ImportOptions, header_json, onhand_header, price_list_header};

/// Page size used by [`NorceClient::list_orders`] when the query sets none.
pub const DEFAULT_PAGE_SIZE: i32 = 100;

impl NorceClient {
    /// `op` (its literal path) under the Services, Connect or Query root, with `query`,
    /// its JSON answer decoded.
    async fn get<T: DeserializeOwned>(
        &self,
        base: &Url,
        op: &'static OperationInfo,
        query: &impl Serialize,
    ) -> Result<T, Error> {
        let request = ApiRequest::new(op, base, op.path).query(query);
        self.inner.engine.call_json(request).await
    }

    /// The Application the `ApplicationId` refers to
    /// (`GET /commerce/metadata/1.1/GetApplication?format=json`).
    pub async fn get_application(&self) -> Result<Application, Error> {
        let op = &services::operations::GET_APPLICATION;
        let query = GetApplicationQuery {
            format: Some(GetApplicationQueryFormat::Json),
            application_id: None,
            culture_code: None,
        };
        self.get(&self.inner.endpoints.services, op, &query).await
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
        let op = &services::operations::GET_ORDER;
        let query = GetOrderQuery {
            format: Some(GetOrderQueryFormat::Json),
            id: id.to_owned(),
            culture_code: None,
        };
        self.get(&self.inner.endpoints.services, op, &query).await
    }

    /// One page of `ListOrders3` (`GET /commerce/order/1.1/ListOrders3`), as asked.
    pub async fn list_orders_page(
        &self,
        query: &ListOrders3Query,
    ) -> Result<OrderPagedList, Error> {
        let op = &services::operations::LIST_ORDERS3;
        let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
        if blank(&query.company_id)
            && blank(&query.customer_id)
            && blank(&query.division_code)
            && query.from_date.is_none()
            && query.to_date.is_none()
        {
            return Err(Error::invalid(
                op.id,
                "ListOrders3 needs at least one of companyId, customerId, divisionCode, fromDate, toDate",
            ));
        }
        let mut query = query.clone();
        query.format = Some(ListOrders3QueryFormat::Json);
        self.get(&self.inner.endpoints.services, op, &query).await
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
        let first = ApiRequest::new(op, &self.inner.endpoints.query, op.path).query(&query);
        stream::unfold(Some(Ok(first)), move |next| {
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

    /// A Connect POST of `body`; `idempotent` when repeating it is harmless.
    fn connect(
        &self,
        op: &'static OperationInfo,
        body: &impl Serialize,
        idempotent: bool,
    ) -> ApiRequest {
        let request = ApiRequest::new(op, &self.inner.endpoints.connect, op.path);
        request.json(body).idempotent(idempotent)
    }

    /// Sets an order's status (`POST /commerce/connect/4.0/Order/SendOrderStatus`). The order
    /// is matched by `ClientOrderRef` and/or `ErpOrderNo`; at least one must be set. Retried
    /// on 429/5xx (setting a status twice is harmless).
    pub async fn send_order_status(&self, request: &SendOrderStatusRequest) -> Result<(), Error> {
        let op = &connect::operations::SEND_ORDER_STATUS;
        order_ref(op, request.client_order_ref, &request.erp_order_no)?;
        self.inner
            .engine
            .send(self.connect(op, request, true))
            .await
            .map(drop)
    }

    /// Adds a delivery note with its parcels (tracking numbers) to an order
    /// (`POST /commerce/connect/4.0/Order/CreateDeliveryNote`). Not retried after the request
    /// may have reached Norce, so a note is never created twice.
    pub async fn create_delivery_note(&self, note: &DeliveryNote) -> Result<(), Error> {
        let request = self.connect(&connect::operations::CREATE_DELIVERY_NOTE, note, false);
        self.inner.engine.send(request).await.map(drop)
    }

    /// Cancels an order (`POST /commerce/connect/4.0/Order/CancelOrder`), with a PSP cancel
    /// per listed payment. Matched by `ClientOrderRef` and/or `ErpOrderNo`.
    pub async fn cancel_order(&self, request: &CancelOrderRequest) -> Result<(), Error> {
        let op = &connect::operations::CANCEL_ORDER;
        order_ref(op, request.client_order_ref, &request.erp_order_no)?;
        self.inner
            .engine
            .send(self.connect(op, request, false))
            .await
            .map(drop)
    }

    async fn import(
        &self,
        op: &'static OperationInfo,
        rows: &[impl Serialize],
        header: String,
    ) -> Result<JobResponse, Error> {
        // Imports write absolute values: repeating one is harmless.
        let request = self
            .connect(op, &rows, true)
            .header("X-StormConnect-Header", &header);
        self.inner.engine.call_json(request).await
    }

    /// Imports stock levels (`POST /commerce/connect/4.0/Product/ImportOnhands`, asynchronous).
    /// The `X-StormConnect-Header` lists exactly the fields the rows set. Returns the
    /// `JobResponse`; wait for it with [`NorceClient::wait_for_import`].
    pub async fn import_onhands(
        &self,
        rows: &[SkuOnhand],
        options: &ImportOptions,
    ) -> Result<JobResponse, Error> {
        let op = &connect::operations::IMPORT_ONHANDS;
        let header = header_json(op.id, &onhand_header(rows, options)?, options.field_codes)?;
        self.import(op, rows, header).await
    }

    /// Imports SKU prices (`POST /commerce/connect/4.0/Product/ImportSkuPriceLists`,
    /// asynchronous). Null or zero values do not overwrite in Norce.
    pub async fn import_sku_price_lists(
        &self,
        rows: &[SkuPriceList],
        options: &ImportOptions,
    ) -> Result<JobResponse, Error> {
        let op = &connect::operations::IMPORT_SKU_PRICE_LISTS;
        let header = header_json(
            op.id,
            &price_list_header(rows, options)?,
            options.field_codes,
        )?;
        self.import(op, rows, header).await
    }

    /// An import job (`GET /commerce/connect/4.0/Job/Get?id=`).
    pub async fn get_job(&self, job_id: i32) -> Result<Job, Error> {
        let query = connect::GetJobQuery { id: job_id };
        let op = &connect::operations::GET_JOB;
        self.get(&self.inner.endpoints.connect, op, &query).await
    }

    /// An import job's log (`GET /commerce/connect/4.0/Job/GetLog?id=`), oldest first. Norce's
    /// published sample answers a single entry rather than a list; both are read as a list.
    pub async fn get_job_log(&self, job_id: i32) -> Result<Vec<JobLogEntry>, Error> {
        let op = &connect::operations::GET_JOB_LOG;
        let query = connect::GetJobLogQuery { id: job_id };
        let answer = self.get(&self.inner.endpoints.connect, op, &query).await?;
        Ok(match answer {
            JobLogAnswer::JobLog(entries) => entries,
            JobLogAnswer::JobLogEntry(entry) => vec![entry],
        })
    }
}

/// SendOrderStatus and CancelOrder find the order by `ClientOrderRef` and/or `ErpOrderNo`.
fn order_ref(op: &OperationInfo, client: Option<i32>, erp: &Option<String>) -> Result<(), Error> {
    if client.is_some() || erp.as_deref().is_some_and(|s| !s.is_empty()) {
        Ok(())
    } else {
        Err(Error::invalid(op.id, "set ClientOrderRef or ErpOrderNo"))
    }
}
