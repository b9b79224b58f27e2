//! The operations. Paths are relative to `/public-api/{account}`.

use std::collections::BTreeMap;
use std::future::Future;

use brightpearl_models::contact::operations::ContactApi;
use brightpearl_models::contact::{
    self, Contact, ContactRequest, PostAddressIds, PostalAddressRequest,
};
use brightpearl_models::integration::operations::IntegrationApi;
use brightpearl_models::integration::{
    self, MultiMessageRequest, MultiMessageResult, Webhook, WebhookRequest, WebhookSimulateRequest,
};
use brightpearl_models::order::operations::OrderApi;
use brightpearl_models::order::{
    self, Order, OrderShippingStatus, OrderStatus, OrderStatusUpdate, SalesOrder, SalesOrderRequest,
};
use brightpearl_models::product::operations::ProductApi as _;
use brightpearl_models::product::{self, PriceList, Product, ProductPrice};
use brightpearl_models::warehouse::operations::WarehouseApi as _;
use brightpearl_models::warehouse::{
    self, BundleAvailability, GoodsOutNote, NamedItem, ProductAvailability,
};
use futures::future::BoxFuture;
use futures::{StreamExt as _, TryStreamExt as _};
use http::StatusCode;

use crate::client::{BundleAvailabilityMode, Client, found};
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

/// The ids of a new contact and its postal address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewContact {
    /// The contact id.
    pub contact_id: i64,
    /// The postal address id (default, billing and delivery).
    pub address_id: i64,
}

/// An id of ours as the `i64` of a generated path; an id past `i64::MAX` names nothing.
fn path_id(operation: &'static str, id: u64) -> Result<i64> {
    let reason = || format!("id {id} is not a Brightpearl id");
    i64::try_from(id).map_err(|_| Error::invalid(operation, reason()))
}

/// A read's answer, Brightpearl's "nothing found" (`404 CMNC-404`) as the empty answer.
fn or_empty<T: Default>(answer: Result<T>) -> Result<T> {
    Ok(found(answer)?.unwrap_or_default())
}

impl Client {
    /// Products by id: `GET /product-service/product/{idSet}`, in chunks of 200 fetched
    /// concurrently. Unknown ids are left out; the result is sorted by id.
    pub async fn products(&self, ids: &[u64]) -> Result<Vec<Product>> {
        let chunks = self.get_chunked(ids, MAX_PRODUCT_IDS, |client, account, id_set| async move {
            let path = product::GetProductsPath { account, id_set };
            let query = product::GetProductsQuery::default();
            Ok(client.get_products(&path, &query).await?.response)
        });
        let mut products: Vec<Product> = chunks.await?.into_iter().flatten().collect();
        products.sort_by_key(|p| p.id);
        Ok(products)
    }

    /// The GET URIs Brightpearl proposes for these products: `OPTIONS /product-service/product/{idSet}`.
    ///
    /// Each URI is relative to the product service (`/product/1001-1200`), compacted into ranges
    /// and sized to the 200-product GET limit; ids that do not exist are left out, so no URIs
    /// means none of the ids exists (`404 CMNC-404` also counts as none). No ids sends nothing
    /// and returns nothing (never the URIs of every product). A long ID set is split by URI
    /// length only (the answer is already sized to the GET limit); the URIs come back in
    /// ascending id order.
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
        let answers = self.get_chunked(ids, usize::MAX, |client, account, id_set| async move {
            let path = product::GetProductUrisPath { account, id_set };
            Ok(client.get_product_uris(&path).await?.response)
        });
        Ok(answers
            .await?
            .into_iter()
            .flat_map(|a| a.get_uris.unwrap_or_default())
            .collect())
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
        let fetch = |client: Client, account, id_set| async move {
            let path = warehouse::GetProductAvailabilityPath { account, id_set };
            Ok(client
                .get_product_availability(&path, &warehouse::GetProductAvailabilityQuery::default())
                .await?
                .response)
        };
        self.by_id(product_ids.to_vec(), MAX_OTHER_IDS, true, fetch)
            .await
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

    /// [`bundle_availability`](Self::bundle_availability) with the mode given per call. A
    /// chunk Brightpearl refuses with 400 is asked again one id at a time.
    pub async fn bundle_availability_with(
        &self,
        product_ids: &[u64],
        mode: BundleAvailabilityMode,
    ) -> Result<BTreeMap<String, BundleAvailability>> {
        let per_request = match mode {
            BundleAvailabilityMode::PerId => 1,
            BundleAvailabilityMode::IdSets => MAX_OTHER_IDS,
        };
        tracing::debug!(target: "brightpearl_client", ids = product_ids.len(), ?mode, "fetching bundle availability");
        let fetch = |client: Client, account, id_set| async move {
            let path = warehouse::GetBundleAvailabilityPath { account, id_set };
            Ok(client.get_bundle_availability(&path).await?.response)
        };
        self.by_id(product_ids.to_vec(), per_request, false, fetch)
            .await
    }

    /// Maps keyed by id for `ids`, in ID-set chunks of `per_request` ids, `concurrency` at a
    /// time; `fetch(client, account, id_set)` asks for one chunk. A chunk Brightpearl refuses
    /// with 400 (one bad id fails the whole call) is asked again split, in halves when
    /// `bisect`, else one id at a time; an id refused alone is left out (logged).
    fn by_id<T, F, Fut>(
        &self,
        ids: Vec<u64>,
        per_request: usize,
        bisect: bool,
        fetch: F,
    ) -> BoxFuture<'static, Result<BTreeMap<String, T>>>
    where
        T: Send + 'static,
        F: Fn(Client, String, String) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<BTreeMap<String, T>>> + Send + 'static,
    {
        let client = self.clone();
        Box::pin(async move {
            let chunks = IdSet::from_ids(ids).chunks(per_request, client.inner.max_id_set_chars);
            // Collected first, so the future stays `Send` for every lifetime.
            let calls: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let (client, fetch) = (client.clone(), fetch.clone());
                    async move {
                        let answer = fetch(client.clone(), client.inner.account.clone(), chunk.to_string());
                        match found(answer.await) {
                            Ok(map) => Ok(map.unwrap_or_default()),
                            Err(e) if e.status() == Some(StatusCode::BAD_REQUEST) => {
                                let ids: Vec<u64> = chunk.iter().collect();
                                if let [id] = ids[..] {
                                    tracing::warn!(target: "brightpearl_client", id, error = %e, "refused for this id; left out");
                                    return Ok(BTreeMap::new());
                                }
                                tracing::warn!(target: "brightpearl_client", ids = %chunk, error = %e, "an ID set was refused; asking again split");
                                let per_request = if bisect { ids.len().div_ceil(2) } else { 1 };
                                client.by_id(ids, per_request, bisect, fetch).await
                            }
                            Err(e) => Err(e),
                        }
                    }
                })
                .collect();
            let maps: Vec<BTreeMap<String, T>> = futures::stream::iter(calls)
                .buffer_unordered(client.inner.concurrency)
                .try_collect()
                .await?;
            Ok(maps.into_iter().flatten().collect())
        })
    }

    /// Every price list: `GET /product-service/price-list`.
    pub async fn price_lists(&self) -> Result<Vec<PriceList>> {
        let account = self.account().to_owned();
        let path = product::ListPriceListsPath { account };
        Ok(or_empty(self.list_price_lists(&path).await)?.response)
    }

    /// Product prices: `GET /product-service/product-price/{idSet}[/price-list/{priceListId}]`,
    /// chunks of 100. `404 CMNC-404` ("No Product Prices Found") is an empty result.
    pub async fn product_prices(
        &self,
        product_ids: &[u64],
        price_list: Option<u64>,
    ) -> Result<Vec<ProductPrice>> {
        let chunks = self.get_chunked(
            product_ids,
            MAX_OTHER_IDS,
            |client, account, id_set| async move {
                let answer = match price_list {
                    None => {
                        let path = product::GetProductPricesPath { account, id_set };
                        client.get_product_prices(&path).await
                    }
                    Some(list) => {
                        let price_list_id_set = list.to_string();
                        let path = product::GetProductPricesForPriceListsPath {
                            account,
                            id_set,
                            price_list_id_set,
                        };
                        client.get_product_prices_for_price_lists(&path).await
                    }
                };
                Ok(answer?.response)
            },
        );
        let mut prices: Vec<ProductPrice> = chunks.await?.into_iter().flatten().collect();
        prices.sort_by_key(|p| p.product_id);
        Ok(prices)
    }

    /// Contacts by id: `GET /contact-service/contact/{idSet}`, chunks of 100. Unknown ids
    /// (`CMNC-404`) are left out.
    pub async fn contacts(&self, ids: &[u64]) -> Result<Vec<Contact>> {
        let chunks = self.get_chunked(ids, MAX_OTHER_IDS, |client, account, id_set| async move {
            let path = contact::GetContactsPath { account, id_set };
            Ok(client
                .get_contacts(&path, &contact::GetContactsQuery::default())
                .await?
                .response)
        });
        let mut contacts: Vec<Contact> = chunks.await?.into_iter().flatten().collect();
        contacts.sort_by_key(|c| c.contact_id);
        Ok(contacts)
    }

    /// Contacts whose primary e-mail is exactly `email` (ignoring ASCII case and surrounding
    /// blanks): `GET /contact-service/contact-search?primaryEmail=…`. Brightpearl matches
    /// partially, so the rows are filtered here.
    pub async fn find_contacts_by_email(&self, email: &str) -> Result<Vec<ContactRow>> {
        let wanted = email.trim();
        if wanted.is_empty() {
            let op = &contact::operations::SEARCH_CONTACTS;
            return Err(Error::invalid(op.id, "empty e-mail address"));
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
        let account = self.account().to_owned();
        let path = contact::CreatePostalAddressPath { account };
        let created = ContactApi::create_postal_address(self, &path, address);
        Ok(created.await?.response)
    }

    /// Creates a contact: `POST /contact-service/contact`; returns its id.
    pub async fn create_contact(&self, contact: &ContactRequest) -> Result<i64> {
        let account = self.account().to_owned();
        let path = contact::CreateContactPath { account };
        Ok(ContactApi::create_contact(self, &path, contact)
            .await?
            .response)
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
        let account = self.account().to_owned();
        let path = order::CreateSalesOrderPath { account };
        Ok(OrderApi::create_sales_order(self, &path, order)
            .await?
            .response)
    }

    /// Orders by id (nested shape): `GET /order-service/order/{idSet}`, chunks of 200.
    pub async fn orders(&self, ids: &[u64]) -> Result<Vec<Order>> {
        let chunks = self.get_chunked(ids, MAX_ORDER_IDS, |client, account, id_set| async move {
            let path = order::GetOrdersPath { account, id_set };
            Ok(client
                .get_orders(&path, &order::GetOrdersQuery::default())
                .await?
                .response)
        });
        let mut orders: Vec<Order> = chunks.await?.into_iter().flatten().collect();
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
        let answers = self.get_chunked(ids, usize::MAX, |client, account, id_set| async move {
            let path = order::GetOrderUrisPath { account, id_set };
            Ok(client.get_order_uris(&path).await?.response)
        });
        Ok(answers
            .await?
            .into_iter()
            .flat_map(|a| a.get_uris.unwrap_or_default())
            .collect())
    }

    /// Sales orders by id (flat shape): `GET /order-service/sales-order/{idSet}`, chunks of 200.
    pub async fn sales_orders(&self, ids: &[u64]) -> Result<Vec<SalesOrder>> {
        let chunks = self.get_chunked(ids, MAX_ORDER_IDS, |client, account, id_set| async move {
            let path = order::GetSalesOrdersPath { account, id_set };
            Ok(client.get_sales_orders(&path).await?.response)
        });
        Ok(chunks.await?.into_iter().flatten().collect())
    }

    /// Sets an order's status: `PUT /order-service/order/{id}/status`.
    pub async fn update_order_status(
        &self,
        order_id: u64,
        update: &OrderStatusUpdate,
    ) -> Result<()> {
        let path = order::UpdateOrderStatusPath {
            account: self.account().to_owned(),
            order_id: path_id(order::operations::UPDATE_ORDER_STATUS.id, order_id)?,
        };
        OrderApi::update_order_status(self, &path, update)
            .await
            .map(drop)
    }

    /// Every order status of the account (`statusId`, `name`, `orderTypeCode`, `sortOrder`, …),
    /// as Brightpearl lists them: `GET /order-service/order-status`. Used to map Brightpearl
    /// statuses to Norce ones and to find the id for [`update_order_status`](Self::update_order_status).
    /// `CMNC-404` is an empty list.
    pub async fn order_statuses(&self) -> Result<Vec<OrderStatus>> {
        let account = self.account().to_owned();
        let path = order::ListOrderStatusesPath { account };
        Ok(or_empty(self.list_order_statuses(&path).await)?.response)
    }

    /// Every order shipping status (`id`, `code` such as `NST`, `SNS`, `SPS`, `ASS`,
    /// `description`): `GET /order-service/order-shipping-status`. The ids are those of the
    /// `orderShippingStatusId` search column. `CMNC-404` is an empty list.
    pub async fn order_shipping_statuses(&self) -> Result<Vec<OrderShippingStatus>> {
        let account = self.account().to_owned();
        let path = order::ListOrderShippingStatusesPath { account };
        Ok(or_empty(self.list_order_shipping_statuses(&path).await)?.response)
    }

    /// Goods-out notes by their ids: `GET /warehouse-service/order/*/goods-note/goods-out/{idSet}`,
    /// chunks of 500. Keyed by GON id (as a string).
    pub async fn goods_out_notes(&self, ids: &[u64]) -> Result<BTreeMap<String, GoodsOutNote>> {
        let chunks = self.get_chunked(
            ids,
            MAX_GOODS_OUT_NOTE_IDS,
            |client, account, id_set| async move {
                let order_id_set = "*".to_owned();
                let path = warehouse::GetGoodsOutNotesPath {
                    account,
                    order_id_set,
                    goods_out_note_id_set: id_set,
                };
                Ok(client.get_goods_out_notes(&path).await?.response)
            },
        );
        Ok(chunks.await?.into_iter().flatten().collect())
    }

    /// Every goods-out note of these orders: `GET /warehouse-service/order/{idSet}/goods-note/goods-out`,
    /// chunks of 200 orders.
    pub async fn goods_out_notes_for_orders(
        &self,
        order_ids: &[u64],
    ) -> Result<BTreeMap<String, GoodsOutNote>> {
        let chunks = self.get_chunked(
            order_ids,
            MAX_ORDER_IDS,
            |client, account, order_id_set| async move {
                let path = warehouse::GetGoodsOutNotesForOrdersPath {
                    account,
                    order_id_set,
                };
                Ok(client.get_goods_out_notes_for_orders(&path).await?.response)
            },
        );
        Ok(chunks.await?.into_iter().flatten().collect())
    }

    /// Every warehouse of the account, by id and name: `GET /warehouse-service/warehouse`.
    /// `CMNC-404` is an empty list.
    pub async fn warehouses(&self) -> Result<Vec<NamedItem>> {
        let account = self.account().to_owned();
        let path = warehouse::ListWarehousesPath { account };
        Ok(or_empty(self.list_warehouses(&path).await)?.response)
    }

    /// Every shipping method of the account, by id and name (the `shippingMethodId` of orders
    /// and goods-out notes): `GET /warehouse-service/shipping-method`. Used to map Brightpearl
    /// shipping methods to Norce delivery methods and nShift services. `CMNC-404` is an empty list.
    pub async fn shipping_methods(&self) -> Result<Vec<NamedItem>> {
        let account = self.account().to_owned();
        let path = warehouse::ListShippingMethodsPath { account };
        Ok(or_empty(self.list_shipping_methods(&path).await)?.response)
    }

    /// Every webhook: `GET /integration-service/webhook` (`CMNC-404` is an empty list).
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        let account = self.account().to_owned();
        let path = integration::ListWebhooksPath { account };
        Ok(or_empty(self.list_webhooks(&path).await)?.response)
    }

    /// Webhooks by id: `GET /integration-service/webhook/{idSet}`, chunks of 100, sorted by id.
    /// Unknown ids are left out; when none exists Brightpearl answers `404 CMNC-404` ("No webhooks
    /// available in ID Set …"), which is an empty list. No ids sends nothing and returns nothing
    /// (use [`webhooks`](Self::webhooks) for every subscription).
    pub async fn webhooks_by_id(&self, ids: &[u64]) -> Result<Vec<Webhook>> {
        let chunks = self.get_chunked(ids, MAX_OTHER_IDS, |client, account, id_set| async move {
            let path = integration::GetWebhooksPath { account, id_set };
            Ok(client.get_webhooks(&path).await?.response)
        });
        let mut webhooks: Vec<Webhook> = chunks.await?.into_iter().flatten().collect();
        webhooks.sort_by_key(|w| w.id);
        Ok(webhooks)
    }

    /// Subscribes a webhook: `POST /integration-service/webhook`; returns its id.
    pub async fn create_webhook(&self, webhook: &WebhookRequest) -> Result<i64> {
        let account = self.account().to_owned();
        let path = integration::CreateWebhookPath { account };
        Ok(IntegrationApi::create_webhook(self, &path, webhook)
            .await?
            .response)
    }

    /// Replaces a webhook subscription with `webhook` (every field; POST and PUT hooks need
    /// `bodyTemplate` and `contentType`): `PUT /integration-service/webhook/{id}`. Brightpearl
    /// answers `{}`. An unknown id is an error here ([`Error::Api`], `404 CMNC-404`), not an
    /// empty result; an event that cannot be subscribed to is `400 INTC-064`.
    pub async fn update_webhook(&self, id: u64, webhook: &WebhookRequest) -> Result<()> {
        let path = integration::UpdateWebhookPath {
            account: self.account().to_owned(),
            webhook_id: path_id(integration::operations::UPDATE_WEBHOOK.id, id)?,
        };
        IntegrationApi::update_webhook(self, &path, webhook)
            .await
            .map(drop)
    }

    /// Deletes a webhook: `DELETE /integration-service/webhook/{id}`.
    pub async fn delete_webhook(&self, id: u64) -> Result<()> {
        let path = integration::DeleteWebhookPath {
            account: self.account().to_owned(),
            webhook_id: path_id(integration::operations::DELETE_WEBHOOK.id, id)?,
        };
        IntegrationApi::delete_webhook(self, &path).await.map(drop)
    }

    /// Makes Brightpearl call a webhook now with test data: `POST
    /// /integration-service/webhook/{id}/simulate`. `request.test_data` gives the template
    /// variables by name (`${resource-id}`, `${resource-type}`, `${lifecycle-event}`, …).
    /// Brightpearl answers `{}`; an unknown id is an error ([`Error::Api`], `404 CMNC-404`).
    ///
    /// `${resource-id}` is an ID set of at most 10 ids ([`MAX_SIMULATE_IDS`]): more, or text
    /// that is not an ID set, is refused here (a [`client_core::Failure::InvalidRequest`]
    /// naming the field) before anything is sent. It is sent in canonical form (`5,1-3` becomes
    /// `1-3,5`).
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
        let op = integration::operations::SIMULATE_WEBHOOK.id;
        let mut request = request.clone();
        if let Some(ids) = request.test_data.get_mut(RESOURCE_ID_VAR) {
            let set = IdSet::parse(ids).map_err(|e| {
                Error::invalid(
                    op,
                    format!("testData `{RESOURCE_ID_VAR}` is not an ID set: {e}"),
                )
            })?;
            if set.len() > MAX_SIMULATE_IDS as u64 {
                return Err(Error::invalid(
                    op,
                    format!(
                        "testData `{RESOURCE_ID_VAR}` names {} ids; a webhook simulation takes at most {MAX_SIMULATE_IDS}",
                        set.len()
                    ),
                ));
            }
            *ids = set.to_string();
        }
        let path = integration::SimulateWebhookPath {
            account: self.account().to_owned(),
            webhook_id: path_id(op, id)?,
        };
        IntegrationApi::simulate_webhook(self, &path, &request)
            .await
            .map(drop)
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
            let op = integration::operations::SEND_MULTI_MESSAGE.id;
            return Err(Error::invalid(
                op,
                "a multi-message call needs at least one message",
            ));
        }
        let account = self.account().to_owned();
        let path = integration::SendMultiMessagePath { account };
        Ok(self.send_multi_message(&path, request).await?.response)
    }
}
