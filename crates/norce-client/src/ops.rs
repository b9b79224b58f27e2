//! Every generated operation over [`Caller`], and what is Norce's own: `format=json`, argument
//! checks, paging, Query navigation names and import headers (README, "Operations").

use std::future::Future;

use client_core::{ApiRequest, Failure};
use futures::stream::{self, BoxStream, StreamExt as _};
use models_runtime::{Caller, Operation};
use norce_models::connect::operations::{ImportOnhands, ImportSkuPriceLists};
use norce_models::connect::{JobResponse, SkuOnhand, SkuPriceList};
use norce_models::query::operations::{QUERY_ORDERS, QueryOrders};
use norce_models::query::{OrdersPage, QueryOrdersQuery};
use norce_models::services::operations::ServicesApi as _;
use norce_models::services::{Application, ListOrders3Query, OrderPagedList};
use serde::Serialize;
use serde_json::Value;

use crate::client::NorceClient;
use crate::error::Error;
use crate::imports::{ImportOptions, header_json, onhand_header, price_list_header};

/// Page size used by [`NorceClient::list_orders`] when the query sets none.
pub const DEFAULT_PAGE_SIZE: i32 = 100;

/// POSTs that are safe to repeat (retried; a timeout of one is transient): a status set twice
/// is harmless, imports write absolute values. Any other POST (a delivery note, a cancel) is
/// sent at most once after it may have reached Norce.
const REPEATABLE_POSTS: &[&str] = &["SendOrderStatus", "ImportOnhands", "ImportSkuPriceLists"];

/// Operations Norce cannot serve unless one of these query or body fields is set (non-blank):
/// refused before sending.
const ONE_OF: &[(&str, &[&str])] = &[
    (
        "ListOrders3",
        &[
            "companyId",
            "customerId",
            "divisionCode",
            "fromDate",
            "toDate",
        ],
    ),
    ("SendOrderStatus", &["ClientOrderRef", "ErpOrderNo"]),
    ("CancelOrder", &["ClientOrderRef", "ErpOrderNo"]),
];

/// Why an identity or event operation is refused.
const NOT_CALLED: &str = "not an operation of Services, Connect or Query: tokens come from the client's token cache, events are received by `relay serve`";

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
    /// The request of `O` under its API root (Connect, Query, else Services), Services with
    /// `format=json` unless the query sets a format, the repeatable POSTs marked.
    fn request<O: Operation>(
        &self,
        path: &O::Path,
        query: &O::Query,
        body: Option<&O::Body>,
    ) -> Result<ApiRequest, Error> {
        let (op, endpoints) = (&O::INFO, &self.inner.endpoints);
        let (base, services) = match op.path {
            p if p.starts_with("/commerce/connect/") => (&endpoints.connect, false),
            p if p.starts_with("/commerce/query/") => (&endpoints.query, false),
            p if p.starts_with("/commerce/") => (&endpoints.services, true),
            _ => return Err(Error::invalid(op.id, NOT_CALLED)),
        };
        let invalid = |e: serde_json::Error| {
            Error::invalid(op.id, format!("the request does not serialize: {e}"))
        };
        let mut query = serde_json::to_value(query).map_err(invalid)?;
        if let Some(fields) = ONE_OF.iter().find(|(id, _)| *id == op.id).map(|o| o.1) {
            let body = serde_json::to_value(body).map_err(invalid)?;
            let blank = |v: &Value| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty());
            let set = |field: &&str| [&query, &body].iter().any(|v| !blank(&v[*field]));
            if !fields.iter().any(set) {
                let reason = format!("set at least one of {}", fields.join(", "));
                return Err(Error::invalid(op.id, reason));
            }
        }
        if let Some(query) = query.as_object_mut().filter(|_| services) {
            query.entry("format").or_insert("json".into());
        }
        let request = ApiRequest::new(op, base, &O::path(path)).query(&query);
        let request = match body {
            // Every Services, Connect and Query body is JSON (only identity's is a form).
            Some(body) => request.json(body),
            None => request,
        };
        let idempotent = request.info().idempotent || REPEATABLE_POSTS.contains(&op.id);
        Ok(request.idempotent(idempotent))
    }

    /// A cheap end-to-end check for `relay verify`: a token (fetched or cached), then the
    /// Application. Errors carry a [`Error::hint`] naming the setting to fix.
    pub async fn verify(&self) -> Result<Application, Error> {
        self.fetch_token().await?;
        let application = self.get_application(&Default::default()).await?;
        if application.id != self.inner.application_id {
            tracing::warn!(target: "norce_client", asked = self.inner.application_id, got = application.id,
                "GetApplication returned another application id");
        }
        Ok(application)
    }

    /// Every page of `ListOrders3` from `query.page_no` (default 1), `query.page_size` orders
    /// per page (default [`DEFAULT_PAGE_SIZE`]). Ends after the page that reaches `ItemCount`,
    /// a short page or an empty page, or after the first error.
    pub fn list_orders(
        &self,
        mut query: ListOrders3Query,
    ) -> BoxStream<'static, Result<OrderPagedList, Error>> {
        let client = self.clone();
        let page_size = query
            .page_size
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_PAGE_SIZE);
        query.page_size = Some(page_size);
        let first = query.page_no.filter(|n| *n > 0).unwrap_or(1);
        stream::try_unfold(Some(first), move |page| {
            let (client, mut query) = (client.clone(), query.clone());
            async move {
                let Some(page_no) = page else { return Ok(None) };
                query.page_no = Some(page_no);
                let list = client.list_orders3(&query).await?;
                let n = list.items.as_ref().map_or(0, Vec::len);
                let seen = i64::from(page_no) * i64::from(page_size);
                let more = n > 0 && n >= page_size as usize && seen < i64::from(list.item_count);
                Ok(Some((list, more.then(|| page_no + 1))))
            }
        })
        .boxed()
    }

    /// Every page of Query 3.0 orders, following `@odata.nextLink` until it is absent; a link
    /// to another host is refused (the bearer token must not leave Norce), a relative one is
    /// resolved.
    pub fn query_orders(
        &self,
        query: QueryOrdersQuery,
    ) -> BoxStream<'static, Result<OrdersPage, Error>> {
        let client = self.clone();
        let first = self.request::<QueryOrders>(&(), &query, None);
        stream::try_unfold(Some(first), move |next| {
            let client = client.clone();
            async move {
                let Some(request) = next else { return Ok(None) };
                let page = client.query_page(request?).await?;
                let link = page.odata_next_link.as_deref();
                let next = link
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| client.next(l));
                Ok(Some((page, next)))
            }
        })
        .boxed()
    }

    /// One Query page, its navigation names read as the spec's.
    async fn query_page(&self, request: ApiRequest) -> Result<OrdersPage, Error> {
        let response = self.inner.engine.send(request).await?;
        let decode = |e| Error::from(Failure::decode(QUERY_ORDERS.id, &response, e));
        let mut page = serde_json::from_slice(response.body()).map_err(decode)?;
        self.inner.query_navigation.to_spec_names(&mut page);
        serde_json::from_value(page).map_err(decode)
    }

    /// The request of a next-page link: on the Query host only.
    fn next(&self, link: &str) -> Result<ApiRequest, Error> {
        let base = &self.inner.endpoints.query;
        let reason = match base.join(link) {
            Ok(url) if url.origin() == base.origin() => {
                return Ok(ApiRequest::at(&QUERY_ORDERS, url));
            }
            Ok(url) => format!(
                "@odata.nextLink points at {} instead of {}; not following it",
                url.origin().ascii_serialization(),
                base.origin().ascii_serialization()
            ),
            Err(e) => format!("@odata.nextLink `{link}` is not a URL: {e}"),
        };
        let operation = QUERY_ORDERS.id;
        Err(Error::InvalidResponse { operation, reason })
    }

    /// Imports stock levels (`ImportOnhands`, asynchronous; wait with
    /// [`NorceClient::wait_for_import`]). The `X-StormConnect-Header` lists exactly the fields
    /// the rows set.
    pub async fn import_onhands(
        &self,
        rows: &[SkuOnhand],
        options: &ImportOptions,
    ) -> Result<JobResponse, Error> {
        let header = onhand_header(rows, options)?;
        self.import::<ImportOnhands>(rows, &header, options).await
    }

    /// Imports SKU prices (`ImportSkuPriceLists`, asynchronous). Null or zero values do not
    /// overwrite in Norce.
    pub async fn import_sku_price_lists(
        &self,
        rows: &[SkuPriceList],
        options: &ImportOptions,
    ) -> Result<JobResponse, Error> {
        let header = price_list_header(rows, options)?;
        self.import::<ImportSkuPriceLists>(rows, &header, options)
            .await
    }

    /// An import of `rows` with its `X-StormConnect-Header` (Norce's field codes do not fit
    /// the generated header type).
    async fn import<O: Operation<Path = (), Query = (), Response = JobResponse>>(
        &self,
        rows: &[impl Serialize],
        header: &impl Serialize,
        options: &ImportOptions,
    ) -> Result<JobResponse, Error> {
        let header = header_json(O::INFO.id, header, options.field_codes)?;
        let request = self.request::<O>(&(), &(), None)?.json(rows);
        let request = request.header("X-StormConnect-Header", &header);
        self.inner.engine.call::<O>(request).await
    }
}
