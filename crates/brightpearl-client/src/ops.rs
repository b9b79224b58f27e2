//! The operations. Paths are relative to `/public-api/{account}`.

use std::collections::BTreeMap;

use brightpearl_models::common::GetUris;
use brightpearl_models::contact::{Contact, ContactRequest, PostAddressIds, PostalAddressRequest};
use brightpearl_models::integration::{
    MultiMessageRequest, MultiMessageResult, Webhook, WebhookRequest, WebhookSimulateRequest,
};
use brightpearl_models::order::{
    Order, OrderShippingStatus, OrderStatus, OrderStatusUpdate, SalesOrder, SalesOrderRequest,
};
use brightpearl_models::product::{PriceList, Product, ProductPrice};
use brightpearl_models::warehouse::{
    BundleAvailability, GoodsOutNote, NamedItem, ProductAvailability,
};
use http::Method;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::idset::IdSet;
use crate::search::{ContactRow, ProductRow, SearchQuery, SearchResource};

/// Most ids in one product GET.
pub const MAX_PRODUCT_IDS: usize = 200;
/// Most ids in one order or sales-order GET.
pub const MAX_ORDER_IDS: usize = 200;
/// Most ids in one goods-out-note GET.
pub const MAX_GOODS_OUT_NOTE_IDS: usize = 500;
/// Ids per availability, price and contact GET (no documented limit; about 100 avoids `414`).
pub const MAX_OTHER_IDS: usize = 100;
/// Most messages in one multi-message call.
pub const MAX_MULTI_MESSAGES: usize = 10;
/// Most resource ids in the `${resource-id}` test data of one webhook simulation.
pub const MAX_SIMULATE_IDS: usize = 10;
/// The test-data variable that carries the resource ids of a webhook simulation.
const RESOURCE_ID_VAR: &str = "${resource-id}";

/// How [`Client::bundle_availability`] asks for several bundles.
///
/// Brightpearl documents `GET /warehouse-service/bundle-availability/{PRODUCT-ID}` with one id
/// (product-availability names its segment an ID set; this page does not, and states no
/// limit), so whether an ID set is accepted is unconfirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BundleAvailabilityMode {
    /// One request per bundle id, as documented (default). The requests run
    /// `concurrency` at a time through the shared limiter.
    #[default]
    PerId,
    /// ID sets of up to [`MAX_OTHER_IDS`] ids per request. A chunk Brightpearl refuses with
    /// 400 is asked again one id at a time (an id refused alone is left out and logged).
    IdSets,
}

/// The ids of a new contact and its postal address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewContact {
    /// The contact id.
    pub contact_id: i64,
    /// The postal address id (default, billing and delivery).
    pub address_id: i64,
}

fn id_set(ids: &[u64]) -> IdSet {
    IdSet::from_ids(ids.iter().copied())
}

impl Client {
    /// Products by id: `GET /product-service/product/{idSet}`, in chunks of 200 fetched
    /// concurrently. Unknown ids are left out; the result is sorted by id.
    pub async fn products(&self, ids: &[u64]) -> Result<Vec<Product>> {
        let set = id_set(ids);
        let chunks: Vec<Vec<Product>> = self
            .get_chunked(&set, MAX_PRODUCT_IDS, |c| {
                format!("/product-service/product/{c}")
            })
            .await?;
        let mut products: Vec<Product> = chunks.into_iter().flatten().collect();
        products.sort_by_key(|p| p.id);
        Ok(products)
    }

    /// The GET URIs Brightpearl proposes for these products: `OPTIONS /product-service/product/{idSet}`.
    ///
    /// Each URI is relative to the product service (`/product/1001-1200`), compacted into ranges
    /// and sized to the 200-product GET limit; ids that do not exist are left out, so no URIs
    /// means none of the ids exists (`404 CMNC-404` also counts as none). No ids sends nothing
    /// and returns nothing (never the URIs of every product). A long ID set is split by URI
    /// length only; the URIs come back in ascending id order.
    ///
    /// ```no_run
    /// # async fn demo(client: brightpearl_client::Client) -> Result<(), brightpearl_client::Error> {
    /// let ids: Vec<u64> = (1001..=1450).collect();
    /// let uris = client.product_uris(&ids).await?;
    /// // e.g. ["/product/1001-1200", "/product/1201-1400", "/product/1401-1450"]
    /// for uri in &uris {
    ///     let _response = client.send_raw(http::Method::GET, &format!("/product-service{uri}"), &[], None).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn product_uris(&self, ids: &[u64]) -> Result<Vec<String>> {
        self.get_uris(ids, "/product-service/product").await
    }

    /// The product with exactly this SKU: `GET /product-service/product-search?SKU=…` then
    /// the product GET. `None` when no product has it.
    pub async fn product_by_sku(&self, sku: &str) -> Result<Option<Product>> {
        let query = SearchQuery::new()
            .filter("SKU", sku)
            .columns(["productId", "SKU"]);
        let rows: Vec<ProductRow> = self.search_all(SearchResource::Products, query).await?;
        let Some(row) = rows.into_iter().find(|r| r.sku.as_deref() == Some(sku)) else {
            return Ok(None);
        };
        Ok(self.products(&[row.product_id]).await?.into_iter().next())
    }

    /// Stock per product: `GET /warehouse-service/product-availability/{idSet}`, chunks of 100.
    /// Keyed by product id (as a string); products without figures are absent.
    ///
    /// One unknown or invalid id makes Brightpearl fail the whole call with 400; such a chunk
    /// is bisected until the bad ids are isolated, and those are left out (logged).
    pub async fn availability(
        &self,
        product_ids: &[u64],
    ) -> Result<BTreeMap<String, ProductAvailability>> {
        use futures::{StreamExt as _, TryStreamExt as _};
        let set = id_set(product_ids);
        let chunks = set.chunks(MAX_OTHER_IDS, self.inner.max_id_set_chars);
        let maps: Vec<BTreeMap<String, ProductAvailability>> =
            futures::stream::iter(chunks.into_iter().map(|c| self.availability_chunk(c)))
                .buffer_unordered(self.inner.concurrency)
                .try_collect()
                .await?;
        Ok(maps.into_iter().flatten().collect())
    }

    fn availability_chunk(
        &self,
        chunk: IdSet,
    ) -> futures::future::BoxFuture<'_, Result<BTreeMap<String, ProductAvailability>>> {
        Box::pin(async move {
            let path = format!("/warehouse-service/product-availability/{chunk}");
            match self
                .call::<BTreeMap<String, ProductAvailability>>(Method::GET, &path, &[], None)
                .await
            {
                Ok(found) => Ok(found.unwrap_or_default()),
                Err(Error::Api(failure)) if failure.status == http::StatusCode::BAD_REQUEST => {
                    let ids: Vec<u64> = chunk.iter().collect();
                    if ids.len() == 1 {
                        tracing::warn!(target: "brightpearl_client", id = ids[0], error = %failure, "availability refused for this id; left out");
                        return Ok(BTreeMap::new());
                    }
                    let (left, right) = ids.split_at(ids.len() / 2);
                    let (a, b) = futures::future::try_join(
                        self.availability_chunk(IdSet::from_ids(left.iter().copied())),
                        self.availability_chunk(IdSet::from_ids(right.iter().copied())),
                    )
                    .await?;
                    Ok(a.into_iter().chain(b).collect())
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Stock of bundles: `GET /warehouse-service/bundle-availability/{id}`, asked as the
    /// client's [`BundleAvailabilityMode`] says (default: one request per id, see
    /// [`ClientBuilder::bundle_availability_mode`](crate::ClientBuilder::bundle_availability_mode)).
    /// Keyed by product id (as a string). Bundles are never stock-tracked, so
    /// [`availability`](Self::availability) leaves them out; this is where their stock comes
    /// from: `onHand` only, per warehouse that holds every component, and in total. Ids that are
    /// not bundles (`404 CMNC-404`) are absent.
    ///
    /// ```no_run
    /// # async fn demo(client: brightpearl_client::Client) -> Result<(), brightpearl_client::Error> {
    /// let stock = client.bundle_availability(&[1013, 1020]).await?; // two requests
    /// let on_hand = stock.get("1013").and_then(|b| b.total.as_ref()).map(|t| t.on_hand);
    /// # let _ = on_hand; Ok(()) }
    /// ```
    pub async fn bundle_availability(
        &self,
        product_ids: &[u64],
    ) -> Result<BTreeMap<String, BundleAvailability>> {
        self.bundle_availability_with(product_ids, self.inner.bundle_availability_mode)
            .await
    }

    /// [`bundle_availability`](Self::bundle_availability) with the mode given per call.
    pub async fn bundle_availability_with(
        &self,
        product_ids: &[u64],
        mode: BundleAvailabilityMode,
    ) -> Result<BTreeMap<String, BundleAvailability>> {
        use futures::{StreamExt as _, TryStreamExt as _};
        let per_request = match mode {
            BundleAvailabilityMode::PerId => 1,
            BundleAvailabilityMode::IdSets => MAX_OTHER_IDS,
        };
        let chunks = id_set(product_ids).chunks(per_request, self.inner.max_id_set_chars);
        tracing::debug!(target: "brightpearl_client", ids = product_ids.len(), requests = chunks.len(), ?mode, "fetching bundle availability");
        // Collected first, so the future stays `Send` for every lifetime.
        let calls: Vec<_> = chunks
            .into_iter()
            .map(|c| self.bundle_availability_chunk(c))
            .collect();
        let maps: Vec<BTreeMap<String, BundleAvailability>> = futures::stream::iter(calls)
            .buffer_unordered(self.inner.concurrency)
            .try_collect()
            .await?;
        Ok(maps.into_iter().flatten().collect())
    }

    fn bundle_availability_chunk(
        &self,
        chunk: IdSet,
    ) -> futures::future::BoxFuture<'static, Result<BTreeMap<String, BundleAvailability>>> {
        let client = self.clone();
        Box::pin(async move {
            let path = format!("/warehouse-service/bundle-availability/{chunk}");
            match client
                .call::<BTreeMap<String, BundleAvailability>>(Method::GET, &path, &[], None)
                .await
            {
                Ok(found) => Ok(found.unwrap_or_default()),
                Err(Error::Api(failure)) if failure.status == http::StatusCode::BAD_REQUEST => {
                    if chunk.len() == 1 {
                        tracing::warn!(target: "brightpearl_client", id = %chunk, error = %failure, "bundle availability refused for this id; left out");
                        return Ok(BTreeMap::new());
                    }
                    tracing::warn!(target: "brightpearl_client", ids = %chunk, error = %failure, "bundle availability refused an ID set; asking one id at a time");
                    let ids: Vec<u64> = chunk.iter().collect();
                    client
                        .bundle_availability_with(&ids, BundleAvailabilityMode::PerId)
                        .await
                }
                Err(e) => Err(e),
            }
        })
    }

    /// Every price list: `GET /product-service/price-list`.
    pub async fn price_lists(&self) -> Result<Vec<PriceList>> {
        self.list("/product-service/price-list").await
    }

    /// Product prices: `GET /product-service/product-price/{idSet}[/price-list/{priceListId}]`,
    /// chunks of 100. `404 CMNC-404` ("No Product Prices Found") is an empty result.
    pub async fn product_prices(
        &self,
        product_ids: &[u64],
        price_list: Option<u64>,
    ) -> Result<Vec<ProductPrice>> {
        let set = id_set(product_ids);
        let suffix = price_list
            .map(|p| format!("/price-list/{p}"))
            .unwrap_or_default();
        let chunks: Vec<Vec<ProductPrice>> = self
            .get_chunked(&set, MAX_OTHER_IDS, |c| {
                format!("/product-service/product-price/{c}{suffix}")
            })
            .await?;
        let mut prices: Vec<ProductPrice> = chunks.into_iter().flatten().collect();
        prices.sort_by_key(|p| p.product_id);
        Ok(prices)
    }

    /// Contacts by id: `GET /contact-service/contact/{idSet}`, chunks of 100. Unknown ids
    /// (`CMNC-404`) are left out.
    pub async fn contacts(&self, ids: &[u64]) -> Result<Vec<Contact>> {
        let set = id_set(ids);
        let chunks: Vec<Vec<Contact>> = self
            .get_chunked(&set, MAX_OTHER_IDS, |c| {
                format!("/contact-service/contact/{c}")
            })
            .await?;
        let mut contacts: Vec<Contact> = chunks.into_iter().flatten().collect();
        contacts.sort_by_key(|c| c.contact_id);
        Ok(contacts)
    }

    /// Contacts whose primary e-mail is exactly `email` (ignoring ASCII case and surrounding
    /// blanks): `GET /contact-service/contact-search?primaryEmail=…`. Brightpearl matches
    /// partially, so the rows are filtered here.
    pub async fn find_contacts_by_email(&self, email: &str) -> Result<Vec<ContactRow>> {
        let wanted = email.trim();
        if wanted.is_empty() {
            return Err(Error::InvalidRequest("empty e-mail address".into()));
        }
        let query = SearchQuery::new().filter("primaryEmail", wanted).columns([
            "contactId",
            "primaryEmail",
            "firstName",
            "lastName",
        ]);
        let rows: Vec<ContactRow> = self.search_all(SearchResource::Contacts, query).await?;
        Ok(rows
            .into_iter()
            .filter(|r| {
                r.primary_email
                    .as_deref()
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case(wanted))
            })
            .collect())
    }

    /// Creates a postal address: `POST /contact-service/postal-address`; returns its id.
    pub async fn create_postal_address(&self, address: &PostalAddressRequest) -> Result<i64> {
        self.create("/contact-service/postal-address", Client::json(address)?)
            .await
    }

    /// Creates a contact: `POST /contact-service/contact`; returns its id.
    pub async fn create_contact(&self, contact: &ContactRequest) -> Result<i64> {
        self.create("/contact-service/contact", Client::json(contact)?)
            .await
    }

    /// Creates the postal address, then the contact using it as default, billing and delivery
    /// address (unless `contact.post_address_ids` is already set).
    pub async fn create_contact_with_address(
        &self,
        mut contact: ContactRequest,
        address: &PostalAddressRequest,
    ) -> Result<NewContact> {
        let address_id = self.create_postal_address(address).await?;
        if contact.post_address_ids.is_none() {
            contact.post_address_ids = Some(PostAddressIds {
                def: Some(address_id),
                bil: Some(address_id),
                del: Some(address_id),
            });
        }
        let contact_id = self.create_contact(&contact).await?;
        Ok(NewContact {
            contact_id,
            address_id,
        })
    }

    /// Creates a sales order with its rows: `POST /order-service/sales-order`; returns its id.
    /// Not retried on ambiguous failures: search `externalRef` before creating again.
    pub async fn create_sales_order(&self, order: &SalesOrderRequest) -> Result<i64> {
        self.create("/order-service/sales-order", Client::json(order)?)
            .await
    }

    /// Orders by id (nested shape): `GET /order-service/order/{idSet}`, chunks of 200.
    pub async fn orders(&self, ids: &[u64]) -> Result<Vec<Order>> {
        let set = id_set(ids);
        let chunks: Vec<Vec<Order>> = self
            .get_chunked(&set, MAX_ORDER_IDS, |c| format!("/order-service/order/{c}"))
            .await?;
        let mut orders: Vec<Order> = chunks.into_iter().flatten().collect();
        orders.sort_by_key(|o| o.id);
        Ok(orders)
    }

    /// The GET URIs Brightpearl proposes for these orders: `OPTIONS /order-service/order/{idSet}`.
    ///
    /// Each URI is relative to the order service (`/order/10001-10200,10250`), compacted into
    /// ranges and sized to the 200-order GET limit; ids that do not exist are left out (so this
    /// also tells which orders exist). No URIs (or `404 CMNC-404`) means none exists; no ids sends
    /// nothing and returns nothing. A long ID set is split by URI length only; the URIs come back
    /// in ascending id order.
    ///
    /// ```no_run
    /// # async fn demo(client: brightpearl_client::Client) -> Result<(), brightpearl_client::Error> {
    /// let uris = client.order_uris(&[10001, 10002, 10005, 99_999]).await?;
    /// assert_eq!(uris, ["/order/10001-10002,10005"]); // when 99999 does not exist
    /// # Ok(()) }
    /// ```
    pub async fn order_uris(&self, ids: &[u64]) -> Result<Vec<String>> {
        self.get_uris(ids, "/order-service/order").await
    }

    /// Sales orders by id (flat shape): `GET /order-service/sales-order/{idSet}`, chunks of 200.
    pub async fn sales_orders(&self, ids: &[u64]) -> Result<Vec<SalesOrder>> {
        let set = id_set(ids);
        let chunks: Vec<Vec<SalesOrder>> = self
            .get_chunked(&set, MAX_ORDER_IDS, |c| {
                format!("/order-service/sales-order/{c}")
            })
            .await?;
        Ok(chunks.into_iter().flatten().collect())
    }

    /// Sets an order's status: `PUT /order-service/order/{id}/status`.
    pub async fn update_order_status(
        &self,
        order_id: u64,
        update: &OrderStatusUpdate,
    ) -> Result<()> {
        self.call_unit(
            Method::PUT,
            &format!("/order-service/order/{order_id}/status"),
            Some(Client::json(update)?),
        )
        .await
    }

    /// Every order status of the account (`statusId`, `name`, `orderTypeCode`, `sortOrder`, …),
    /// as Brightpearl lists them: `GET /order-service/order-status`. Used to map Brightpearl
    /// statuses to Norce ones and to find the id for [`update_order_status`](Self::update_order_status).
    /// `CMNC-404` is an empty list.
    pub async fn order_statuses(&self) -> Result<Vec<OrderStatus>> {
        self.list("/order-service/order-status").await
    }

    /// Every order shipping status (`id`, `code` such as `NST`, `SNS`, `SPS`, `ASS`,
    /// `description`): `GET /order-service/order-shipping-status`. The ids are those of the
    /// `orderShippingStatusId` search column. `CMNC-404` is an empty list.
    pub async fn order_shipping_statuses(&self) -> Result<Vec<OrderShippingStatus>> {
        self.list("/order-service/order-shipping-status").await
    }

    /// Goods-out notes by their ids: `GET /warehouse-service/order/*/goods-note/goods-out/{idSet}`,
    /// chunks of 500. Keyed by GON id (as a string).
    pub async fn goods_out_notes(&self, ids: &[u64]) -> Result<BTreeMap<String, GoodsOutNote>> {
        let set = id_set(ids);
        let chunks: Vec<BTreeMap<String, GoodsOutNote>> = self
            .get_chunked(&set, MAX_GOODS_OUT_NOTE_IDS, |c| {
                format!("/warehouse-service/order/*/goods-note/goods-out/{c}")
            })
            .await?;
        Ok(chunks.into_iter().flatten().collect())
    }

    /// Every goods-out note of these orders: `GET /warehouse-service/order/{idSet}/goods-note/goods-out`,
    /// chunks of 200 orders.
    pub async fn goods_out_notes_for_orders(
        &self,
        order_ids: &[u64],
    ) -> Result<BTreeMap<String, GoodsOutNote>> {
        let set = id_set(order_ids);
        let chunks: Vec<BTreeMap<String, GoodsOutNote>> = self
            .get_chunked(&set, MAX_ORDER_IDS, |c| {
                format!("/warehouse-service/order/{c}/goods-note/goods-out")
            })
            .await?;
        Ok(chunks.into_iter().flatten().collect())
    }

    /// Every warehouse of the account, by id and name: `GET /warehouse-service/warehouse`.
    /// `CMNC-404` is an empty list.
    pub async fn warehouses(&self) -> Result<Vec<NamedItem>> {
        self.list("/warehouse-service/warehouse").await
    }

    /// Every shipping method of the account, by id and name (the `shippingMethodId` of orders
    /// and goods-out notes): `GET /warehouse-service/shipping-method`. Used to map Brightpearl
    /// shipping methods to Norce delivery methods and nShift services. `CMNC-404` is an empty list.
    pub async fn shipping_methods(&self) -> Result<Vec<NamedItem>> {
        self.list("/warehouse-service/shipping-method").await
    }

    /// Every webhook: `GET /integration-service/webhook` (`CMNC-404` is an empty list).
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.list("/integration-service/webhook").await
    }

    /// Webhooks by id: `GET /integration-service/webhook/{idSet}`, chunks of 100, sorted by id.
    /// Unknown ids are left out; when none exists Brightpearl answers `404 CMNC-404` ("No webhooks
    /// available in ID Set …"), which is an empty list. No ids sends nothing and returns nothing
    /// (use [`webhooks`](Self::webhooks) for every subscription).
    pub async fn webhooks_by_id(&self, ids: &[u64]) -> Result<Vec<Webhook>> {
        let set = id_set(ids);
        let chunks: Vec<Vec<Webhook>> = self
            .get_chunked(&set, MAX_OTHER_IDS, |c| {
                format!("/integration-service/webhook/{c}")
            })
            .await?;
        let mut webhooks: Vec<Webhook> = chunks.into_iter().flatten().collect();
        webhooks.sort_by_key(|w| w.id);
        Ok(webhooks)
    }

    /// Subscribes a webhook: `POST /integration-service/webhook`; returns its id.
    pub async fn create_webhook(&self, webhook: &WebhookRequest) -> Result<i64> {
        self.create("/integration-service/webhook", Client::json(webhook)?)
            .await
    }

    /// Replaces a webhook subscription with `webhook` (every field; POST and PUT hooks need
    /// `bodyTemplate` and `contentType`): `PUT /integration-service/webhook/{id}`. Brightpearl
    /// answers `{}`. An unknown id is an error here ([`Error::Api`], `404 CMNC-404`), not an
    /// empty result; an event that cannot be subscribed to is `400 INTC-064`.
    pub async fn update_webhook(&self, id: u64, webhook: &WebhookRequest) -> Result<()> {
        self.call_unit(
            Method::PUT,
            &format!("/integration-service/webhook/{id}"),
            Some(Client::json(webhook)?),
        )
        .await
    }

    /// Deletes a webhook: `DELETE /integration-service/webhook/{id}`.
    pub async fn delete_webhook(&self, id: u64) -> Result<()> {
        self.call_unit(
            Method::DELETE,
            &format!("/integration-service/webhook/{id}"),
            None,
        )
        .await
    }

    /// Makes Brightpearl call a webhook now with test data: `POST
    /// /integration-service/webhook/{id}/simulate`. `request.test_data` gives the template
    /// variables by name (`${resource-id}`, `${resource-type}`, `${lifecycle-event}`, …).
    /// Brightpearl answers `{}`; an unknown id is an error ([`Error::Api`], `404 CMNC-404`).
    ///
    /// `${resource-id}` is an ID set of at most 10 ids ([`MAX_SIMULATE_IDS`]): more, or text
    /// that is not an ID set, is refused here with [`Error::InvalidRequest`] naming the field,
    /// before anything is sent. It is sent in canonical form (`5,1-3` becomes `1-3,5`).
    ///
    /// ```no_run
    /// # async fn demo(client: brightpearl_client::Client) -> Result<(), brightpearl_client::Error> {
    /// use brightpearl_client::models::integration::WebhookSimulateRequest;
    /// let test_data = [("${resource-type}", "product"), ("${resource-id}", "1001-1005,1010"), ("${lifecycle-event}", "modified")];
    /// let request = WebhookSimulateRequest {
    ///     test_data: test_data.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
    /// };
    /// client.simulate_webhook(12, &request).await?;
    /// # Ok(()) }
    /// ```
    pub async fn simulate_webhook(&self, id: u64, request: &WebhookSimulateRequest) -> Result<()> {
        let mut request = request.clone();
        if let Some(ids) = request.test_data.get_mut(RESOURCE_ID_VAR) {
            let set = IdSet::parse(ids).map_err(|e| {
                Error::InvalidRequest(format!(
                    "testData `{RESOURCE_ID_VAR}` is not an ID set: {e}"
                ))
            })?;
            if set.len() > MAX_SIMULATE_IDS as u64 {
                return Err(Error::InvalidRequest(format!(
                    "testData `{RESOURCE_ID_VAR}` names {} ids; a webhook simulation takes at most {MAX_SIMULATE_IDS}",
                    set.len()
                )));
            }
            *ids = set.to_string();
        }
        self.call_unit(
            Method::POST,
            &format!("/integration-service/webhook/{id}/simulate"),
            Some(Client::json(&request)?),
        )
        .await
    }

    /// Runs up to 10 writes in one call (counted once by the throttle):
    /// `POST /multi-message`. More than 10 messages is [`Error::TooManyMessages`]; the
    /// per-message outcomes (HTTP 200 or 207) are returned as data.
    pub async fn multi_message(&self, request: &MultiMessageRequest) -> Result<MultiMessageResult> {
        let count = request.messages.len();
        if count > MAX_MULTI_MESSAGES {
            return Err(Error::TooManyMessages {
                count,
                max: MAX_MULTI_MESSAGES,
            });
        }
        if count == 0 {
            return Err(Error::InvalidRequest(
                "a multi-message call needs at least one message".into(),
            ));
        }
        self.call::<MultiMessageResult>(
            Method::POST,
            "/multi-message",
            &[],
            Some(Client::json(request)?),
        )
        .await?
        .ok_or_else(|| Error::InvalidRequest("multi-message answered without a response".into()))
    }

    /// `OPTIONS {resource}/{idSet}` for `ids`, split by URI length only (the answer is already
    /// sized to the GET limit); the `getUris` of every chunk, in chunk (ascending id) order.
    async fn get_uris(&self, ids: &[u64], resource: &str) -> Result<Vec<String>> {
        use futures::{StreamExt as _, TryStreamExt as _};
        let calls: Vec<_> = id_set(ids)
            .chunks(usize::MAX, self.inner.max_id_set_chars)
            .iter()
            .map(|chunk| {
                let client = self.clone();
                let path = format!("{resource}/{chunk}");
                async move {
                    client
                        .call::<GetUris>(Method::OPTIONS, &path, &[], None)
                        .await
                }
            })
            .collect();
        let answers: Vec<Option<GetUris>> = futures::stream::iter(calls)
            .buffered(self.inner.concurrency)
            .try_collect()
            .await?;
        Ok(answers
            .into_iter()
            .flatten()
            .flat_map(|a| a.get_uris.unwrap_or_default())
            .collect())
    }

    /// `GET path` of a list; `CMNC-404` is an empty list.
    async fn list<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<Vec<T>> {
        Ok(self
            .call::<Vec<T>>(Method::GET, path, &[], None)
            .await?
            .unwrap_or_default())
    }

    /// POSTs `body` and returns the `{"response": id}` of the created resource.
    async fn create(&self, path: &str, body: bytes::Bytes) -> Result<i64> {
        self.call::<i64>(Method::POST, path, &[], Some(body))
            .await?
            .ok_or_else(|| Error::InvalidRequest(format!("POST {path} answered without an id")))
    }
}
