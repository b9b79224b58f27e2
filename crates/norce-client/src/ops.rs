//! The operations: Services 1.1, Query 3.0 and Connect 4.0.

use futures::stream::{self, BoxStream, StreamExt as _};
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

use crate::client::{Call, NorceClient, json_body};
use crate::error::Error;
use crate::imports::{ImportOptions, header_json, onhand_header, price_list_header};

/// Page size used by [`NorceClient::list_orders`] when the query sets none.
pub const DEFAULT_PAGE_SIZE: i32 = 100;

impl NorceClient {
    fn get(&self, op: &'static models_runtime::OperationInfo, url: Url) -> Call {
        Call {
            op,
            url,
            body: None,
            headers: Vec::new(),
            idempotent: true,
        }
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
        let url = self.url(&self.inner.endpoints.services, op, &query)?;
        self.send_json(self.get(op, url)).await
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
        let url = self.url(&self.inner.endpoints.services, op, &query)?;
        self.send_json(self.get(op, url)).await
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
            return Err(Error::InvalidRequest {
                operation: op.id,
                reason: "ListOrders3 needs at least one of companyId, customerId, divisionCode, fromDate, toDate".into(),
            });
        }
        let mut query = query.clone();
        query.format = Some(ListOrders3QueryFormat::Json);
        let url = self.url(&self.inner.endpoints.services, op, &query)?;
        self.send_json(self.get(op, url)).await
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
        let first = self.url(&self.inner.endpoints.query, op, &query);
        stream::unfold(Some(first), move |next| {
            let client = client.clone();
            async move {
                let url = match next? {
                    Ok(url) => url,
                    Err(e) => return Some((Err(e), None)),
                };
                match client.query_page(client.get(op, url)).await {
                    Ok(page) => {
                        let next = page
                            .odata_next_link
                            .as_deref()
                            .filter(|l| !l.trim().is_empty())
                            .map(|link| client.next_link(link));
                        Some((Ok(page), next))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .boxed()
    }

    /// One Query page, its navigation names read as the spec's (`QueryNavigation`).
    async fn query_page(&self, call: Call) -> Result<OrdersPage, Error> {
        let op = call.op;
        let response = self.send(call).await?;
        let mut page: serde_json::Value = crate::client::decode(op, &response)?;
        self.inner.query_navigation.to_spec_names(&mut page);
        serde_json::from_value(page).map_err(|source| Error::Decode {
            operation: op.id,
            status: response.status(),
            body: String::from_utf8_lossy(&response.body()[..response.body().len().min(4096)])
                .into_owned(),
            source,
        })
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

    async fn connect_post<T: serde::Serialize>(
        &self,
        op: &'static models_runtime::OperationInfo,
        body: &T,
        idempotent: bool,
    ) -> Result<(), Error> {
        let url = self.url(&self.inner.endpoints.connect, op, &())?;
        let call = Call {
            op,
            url,
            body: Some(json_body(op, body)?),
            headers: Vec::new(),
            idempotent,
        };
        self.send(call).await.map(drop)
    }

    /// Sets an order's status (`POST /commerce/connect/4.0/Order/SendOrderStatus`). The order
    /// is matched by `ClientOrderRef` and/or `ErpOrderNo`; at least one must be set. Retried
    /// on 429/5xx (setting a status twice is harmless).
    pub async fn send_order_status(&self, request: &SendOrderStatusRequest) -> Result<(), Error> {
        let op = &connect::operations::SEND_ORDER_STATUS;
        if request.client_order_ref.is_none()
            && request.erp_order_no.as_deref().is_none_or(str::is_empty)
        {
            return Err(Error::InvalidRequest {
                operation: op.id,
                reason: "set ClientOrderRef or ErpOrderNo".into(),
            });
        }
        self.connect_post(op, request, true).await
    }

    /// Adds a delivery note with its parcels (tracking numbers) to an order
    /// (`POST /commerce/connect/4.0/Order/CreateDeliveryNote`). Not retried after the request
    /// may have reached Norce, so a note is never created twice.
    pub async fn create_delivery_note(&self, note: &DeliveryNote) -> Result<(), Error> {
        let op = &connect::operations::CREATE_DELIVERY_NOTE;
        self.connect_post(op, note, false).await
    }

    /// Cancels an order (`POST /commerce/connect/4.0/Order/CancelOrder`), with a PSP cancel
    /// per listed payment. Matched by `ClientOrderRef` and/or `ErpOrderNo`.
    pub async fn cancel_order(&self, request: &CancelOrderRequest) -> Result<(), Error> {
        let op = &connect::operations::CANCEL_ORDER;
        if request.client_order_ref.is_none()
            && request.erp_order_no.as_deref().is_none_or(str::is_empty)
        {
            return Err(Error::InvalidRequest {
                operation: op.id,
                reason: "set ClientOrderRef or ErpOrderNo".into(),
            });
        }
        self.connect_post(op, request, false).await
    }

    async fn import<T: serde::Serialize>(
        &self,
        op: &'static models_runtime::OperationInfo,
        rows: &[T],
        header: String,
    ) -> Result<JobResponse, Error> {
        let url = self.url(&self.inner.endpoints.connect, op, &())?;
        let call = Call {
            op,
            url,
            body: Some(json_body(op, &rows)?),
            headers: vec![("X-StormConnect-Header", header)],
            // Imports write absolute values: repeating one is harmless.
            idempotent: true,
        };
        self.send_json(call).await
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
        let op = &connect::operations::GET_JOB;
        let url = self.url(
            &self.inner.endpoints.connect,
            op,
            &connect::GetJobQuery { id: job_id },
        )?;
        self.send_json(self.get(op, url)).await
    }

    /// An import job's log (`GET /commerce/connect/4.0/Job/GetLog?id=`), oldest first. Norce's
    /// published sample answers a single entry rather than a list; both are read as a list.
    pub async fn get_job_log(&self, job_id: i32) -> Result<Vec<JobLogEntry>, Error> {
        let op = &connect::operations::GET_JOB_LOG;
        let url = self.url(
            &self.inner.endpoints.connect,
            op,
            &connect::GetJobLogQuery { id: job_id },
        )?;
        Ok(
            match self.send_json::<JobLogAnswer>(self.get(op, url)).await? {
                JobLogAnswer::JobLog(entries) => entries,
                JobLogAnswer::JobLogEntry(entry) => vec![entry],
            },
        )
    }
}
