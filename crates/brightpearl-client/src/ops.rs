//! What only Brightpearl means on top of the generated operations: reads by ID set, the
//! searches that need an exact match, and the limits of simulations and multi-messages.

use std::collections::BTreeMap;

use brightpearl_models::contact::operations::ContactApi as _;
use brightpearl_models::contact::{self, Contact, ContactRequest, PostalAddressRequest};
use brightpearl_models::integration::operations::IntegrationApi;
use brightpearl_models::integration::{self, MultiMessageRequest, MultiMessageResult};
use brightpearl_models::integration::{Webhook, WebhookSimulateRequest};
use brightpearl_models::order::{self, Order, SalesOrder};
use brightpearl_models::product::{self, Product, ProductPrice};
use brightpearl_models::warehouse::{self, BundleAvailability, GoodsOutNote, ProductAvailability};
use futures::future::BoxFuture;
use futures::{StreamExt as _, TryStreamExt as _};
use http::StatusCode;
use models_runtime::{Caller as _, Operation};

use crate::client::{BundleAvailabilityMode, Client};
use crate::error::{Error, NothingFound as _, Result};
use crate::idset::{IdSet, IdSetError};
use crate::search::{ContactRow, ProductRow, SearchQuery, SearchResource};

/// Most ids in one product GET.
pub const MAX_PRODUCT_IDS: usize = 200;
/// Most ids in one order or sales-order GET.
pub const MAX_ORDER_IDS: usize = 200;
/// Most ids in one goods-out-note GET.
pub const MAX_GOODS_OUT_NOTE_IDS: usize = 500;
/// Ids per availability, price, contact or webhook GET (no documented limit; 100 avoids `414`).
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

/// How a chunk refused with 400 (one bad id fails the whole call) is asked again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Split {
    /// Not: the 400 is the answer.
    Never,
    /// In halves, until the bad ids are alone.
    Halves,
    /// One id at a time.
    Singly,
}

/// Reads by ID set, one method per entry: the operation `module::Op` read by
/// [`Client::read`] in chunks of `max`, the chunk's ID set in the path field `set`, each
/// answer's items merged (sorted by `key` if given).
macro_rules! id_set_reads {
    ($(
        $(#[$doc:meta])*
        $vis:vis fn $name:ident($max:expr, $split:ident) -> $out:ty
            = $m:ident::$op:ident($path:ident { $set:ident $(, $field:ident: $value:expr)* })
            .map(|$a:ident| $items:expr) $(.sort_by($key:ident))?;
    )*) => {$(
        $(#[$doc])*
        $vis async fn $name(&self, ids: &[u64]) -> Result<$out> {
            let path = |account, $set| $m::$path { account, $set $(, $field: $value)* };
            let answers = self.read::<$m::operations::$op>(ids, $max, Split::$split, path);
            let items: $out = answers.await?.into_iter().flat_map(|$a| $items).collect();
            $(let mut items = items;
            items.sort_by_key(|item| item.$key);)?
            Ok(items)
        }
    )*};
}

impl Client {
    /// `O`'s answers for `ids` in ID-set chunks of at most `max` ids and `max_id_set_chars`
    /// characters, `concurrency` at a time, in ascending id order; `path(account, id_set)`
    /// addresses a chunk. "Nothing found" answers nothing; no ids send nothing (never the
    /// every-resource form of the path). A chunk refused with 400 is asked again as `split`
    /// says; an id refused alone is left out (logged).
    fn read<O>(
        &self,
        ids: &[u64],
        max: usize,
        split: Split,
        path: impl Fn(String, String) -> O::Path + Clone + Send + Sync + 'static,
    ) -> BoxFuture<'static, Result<Vec<O::Response>>>
    where
        O: Operation<Path: Send, Query: Default + Send> + 'static,
    {
        let set = IdSet::from_ids(ids.iter().copied());
        let chunks = set.chunks(max, self.inner.max_id_set_chars);
        tracing::debug!(target: "brightpearl_client", operation = O::INFO.id, ids = ids.len(), chunks = chunks.len(), "reading an ID set");
        // Collected first: a lazy `map` over the chunks makes the future `Send` only for some
        // lifetimes, which callers that box it as `Send` cannot accept.
        let calls: Vec<_> = chunks.into_iter().map(|chunk| {
            let (client, path) = (self.clone(), path.clone());
            async move {
                let at = path(client.inner.account.clone(), chunk.to_string());
                let answer = client.call::<O>(&at, &O::Query::default(), None).await;
                match answer.found() {
                    Ok(found) => Ok(Vec::from_iter(found)),
                    Err(e) if split == Split::Never || e.status() != Some(StatusCode::BAD_REQUEST) => Err(e),
                    Err(e) if chunk.len() == 1 => {
                        tracing::warn!(target: "brightpearl_client", id = %chunk, error = %e, "refused for this id; left out");
                        Ok(Vec::new())
                    }
                    Err(e) => {
                        tracing::warn!(target: "brightpearl_client", ids = %chunk, error = %e, "an ID set was refused; asking again split");
                        let ids: Vec<u64> = chunk.iter().collect();
                        let max = if split == Split::Halves { ids.len().div_ceil(2) } else { 1 };
                        client.read::<O>(&ids, max, split, path).await
                    }
                }
            }
        }).collect();
        let concurrency = self.inner.concurrency;
        Box::pin(async move {
            let answers = futures::stream::iter(calls).buffered(concurrency);
            let answers: Vec<Vec<O::Response>> = answers.try_collect().await?;
            Ok(answers.into_iter().flatten().collect())
        })
    }

    id_set_reads! {
        /// Products by id (`GET /product-service/product/{idSet}`), sorted by id.
        pub fn products(MAX_PRODUCT_IDS, Never) -> Vec<Product>
            = product::GetProducts(GetProductsPath { id_set })
            .map(|a| a.response).sort_by(id);
        /// The GET URIs Brightpearl proposes for these products (`OPTIONS
        /// /product-service/product/{idSet}`), such as `/product/1001-1200`: sized to the GET
        /// limit, unknown ids left out, in ascending id order.
        pub fn product_uris(usize::MAX, Never) -> Vec<String>
            = product::GetProductUris(GetProductUrisPath { id_set })
            .map(|a| a.response.get_uris.unwrap_or_default());
        /// Stock per product id (`GET /warehouse-service/product-availability/{idSet}`);
        /// products without figures (bundles among them) are absent. One bad id makes
        /// Brightpearl refuse a whole chunk with 400, so such a chunk is bisected.
        pub fn availability(MAX_OTHER_IDS, Halves) -> BTreeMap<String, ProductAvailability>
            = warehouse::GetProductAvailability(GetProductAvailabilityPath { id_set })
            .map(|a| a.response);
        /// Product prices in every price list
        /// (`GET /product-service/product-price/{idSet}`), sorted by product id.
        fn prices(MAX_OTHER_IDS, Never) -> Vec<ProductPrice>
            = product::GetProductPrices(GetProductPricesPath { id_set })
            .map(|a| a.response).sort_by(product_id);
        /// Contacts by id (`GET /contact-service/contact/{idSet}`), sorted by id.
        pub fn contacts(MAX_OTHER_IDS, Never) -> Vec<Contact>
            = contact::GetContacts(GetContactsPath { id_set })
            .map(|a| a.response).sort_by(contact_id);
        /// Orders by id, nested shape (`GET /order-service/order/{idSet}`), sorted by id.
        pub fn orders(MAX_ORDER_IDS, Never) -> Vec<Order>
            = order::GetOrders(GetOrdersPath { id_set })
            .map(|a| a.response).sort_by(id);
        /// The GET URIs Brightpearl proposes for these orders (`OPTIONS
        /// /order-service/order/{idSet}`), as [`Self::product_uris`] (so it tells which exist).
        pub fn order_uris(usize::MAX, Never) -> Vec<String>
            = order::GetOrderUris(GetOrderUrisPath { id_set })
            .map(|a| a.response.get_uris.unwrap_or_default());
        /// Sales orders by id, flat shape (`GET /order-service/sales-order/{idSet}`).
        pub fn sales_orders(MAX_ORDER_IDS, Never) -> Vec<SalesOrder>
            = order::GetSalesOrders(GetSalesOrdersPath { id_set })
            .map(|a| a.response);
        /// Goods-out notes by id (`GET /warehouse-service/order/*/goods-note/goods-out/{idSet}`).
        pub fn goods_out_notes(MAX_GOODS_OUT_NOTE_IDS, Never) -> BTreeMap<String, GoodsOutNote>
            = warehouse::GetGoodsOutNotes(GetGoodsOutNotesPath {
                goods_out_note_id_set, order_id_set: "*".to_owned()
            })
            .map(|a| a.response);
        /// Every goods-out note of these orders, by id
        /// (`GET /warehouse-service/order/{idSet}/goods-note/goods-out`).
        pub fn goods_out_notes_for_orders(MAX_ORDER_IDS, Never) -> BTreeMap<String, GoodsOutNote>
            = warehouse::GetGoodsOutNotesForOrders(GetGoodsOutNotesForOrdersPath { order_id_set })
            .map(|a| a.response);
        /// Webhooks by id (`GET /integration-service/webhook/{idSet}`), sorted by id (every
        /// webhook: the generated `list_webhooks`).
        pub fn webhooks_by_id(MAX_OTHER_IDS, Never) -> Vec<Webhook>
            = integration::GetWebhooks(GetWebhooksPath { id_set })
            .map(|a| a.response).sort_by(id);
    }

    /// Stock of bundles by product id (`GET /warehouse-service/bundle-availability/{id}`):
    /// `onHand` per warehouse holding every component, and in total, asked as the client's
    /// [`BundleAvailabilityMode`] says. Ids that are not bundles are absent.
    pub async fn bundle_availability(
        &self,
        ids: &[u64],
    ) -> Result<BTreeMap<String, BundleAvailability>> {
        let mode = self.inner.bundle_mode;
        self.bundle_availability_with(ids, mode).await
    }

    /// [`Self::bundle_availability`] with the mode given per call.
    pub async fn bundle_availability_with(
        &self,
        ids: &[u64],
        mode: BundleAvailabilityMode,
    ) -> Result<BTreeMap<String, BundleAvailability>> {
        use warehouse::{GetBundleAvailabilityPath, operations::GetBundleAvailability};
        let max = match mode {
            BundleAvailabilityMode::PerId => 1,
            BundleAvailabilityMode::IdSets => MAX_OTHER_IDS,
        };
        let path = |account, id_set| GetBundleAvailabilityPath { account, id_set };
        let answers = self.read::<GetBundleAvailability>(ids, max, Split::Singly, path);
        Ok(answers
            .await?
            .into_iter()
            .flat_map(|a| a.response)
            .collect())
    }

    /// Product prices (`GET /product-service/product-price/{idSet}[/price-list/{id}]`), in
    /// every price list or in `price_list`, sorted by product id.
    pub async fn product_prices(
        &self,
        ids: &[u64],
        price_list: Option<u64>,
    ) -> Result<Vec<ProductPrice>> {
        use product::{
            GetProductPricesForPriceListsPath, operations::GetProductPricesForPriceLists,
        };
        let Some(list) = price_list else {
            return self.prices(ids).await;
        };
        let path = move |account, id_set| GetProductPricesForPriceListsPath {
            account,
            id_set,
            price_list_id_set: list.to_string(),
        };
        let answers =
            self.read::<GetProductPricesForPriceLists>(ids, MAX_OTHER_IDS, Split::Never, path);
        let mut prices: Vec<_> = answers
            .await?
            .into_iter()
            .flat_map(|a| a.response)
            .collect();
        prices.sort_by_key(|p| p.product_id);
        Ok(prices)
    }

    /// The product with exactly this SKU (a product search, then the product GET); `None`
    /// when no product has it.
    pub async fn product_by_sku(&self, sku: &str) -> Result<Option<Product>> {
        let query = SearchQuery::new().filter("SKU", sku);
        let query = query.columns(["productId", "SKU"]);
        let rows: Vec<ProductRow> = self.search_all(SearchResource::Products, query).await?;
        let Some(row) = rows.into_iter().find(|r| r.sku.as_deref() == Some(sku)) else {
            return Ok(None);
        };
        Ok(self.products(&[row.product_id]).await?.into_iter().next())
    }

    /// Contacts whose primary e-mail is exactly `email`, ignoring ASCII case and surrounding
    /// blanks: Brightpearl's `primaryEmail` search matches partially.
    pub async fn find_contacts_by_email(&self, email: &str) -> Result<Vec<ContactRow>> {
        let wanted = email.trim();
        if wanted.is_empty() {
            let op = contact::operations::SEARCH_CONTACTS.id;
            return Err(Error::invalid(op, "empty e-mail address"));
        }
        let query = SearchQuery::new().filter("primaryEmail", wanted);
        let query = query.columns(["contactId", "primaryEmail", "firstName", "lastName"]);
        let mut rows: Vec<ContactRow> = self.search_all(SearchResource::Contacts, query).await?;
        rows.retain(|r| {
            let email = r.primary_email.as_deref().unwrap_or_default();
            email.trim().eq_ignore_ascii_case(wanted)
        });
        Ok(rows)
    }

    /// Creates the postal address, then the contact with it as default, billing and delivery
    /// address (unless `contact.post_address_ids` is set): Brightpearl links addresses by id.
    pub async fn create_contact_with_address(
        &self,
        mut contact: ContactRequest,
        address: &PostalAddressRequest,
    ) -> Result<NewContact> {
        let account = self.account().to_owned();
        let path = contact::CreatePostalAddressPath { account };
        let address_id = self.create_postal_address(&path, address).await?.response;
        let id = Some(address_id);
        let ids = contact::PostAddressIds {
            def: id,
            bil: id,
            del: id,
        };
        contact.post_address_ids.get_or_insert(ids);
        let path = contact::CreateContactPath {
            account: path.account,
        };
        let contact_id = self.create_contact(&path, &contact).await?.response;
        Ok(NewContact {
            contact_id,
            address_id,
        })
    }

    /// Makes Brightpearl call webhook `id` now with `request.test_data`
    /// (`POST /integration-service/webhook/{id}/simulate`). `${resource-id}` must be an ID set
    /// of at most [`MAX_SIMULATE_IDS`] ids, else nothing is sent (an invalid-request failure
    /// naming it); it is sent in canonical form (`5,1-3` becomes `1-3,5`).
    pub async fn simulate_webhook(&self, id: u64, request: &WebhookSimulateRequest) -> Result<()> {
        let invalid = |reason| Error::invalid(integration::operations::SIMULATE_WEBHOOK.id, reason);
        let webhook_id =
            i64::try_from(id).map_err(|_| invalid(format!("id {id} is not a Brightpearl id")))?;
        let mut request = request.clone();
        if let Some(ids) = request.test_data.get_mut(RESOURCE_ID_VAR) {
            let field = format!("testData `{RESOURCE_ID_VAR}`");
            let not_a_set = |e: IdSetError| invalid(format!("{field} is not an ID set: {}", e.0));
            let set: IdSet = ids.parse().map_err(not_a_set)?;
            if set.len() > MAX_SIMULATE_IDS as u64 {
                let n = set.len();
                return Err(invalid(format!(
                    "{field} names {n} ids; a webhook simulation takes at most {MAX_SIMULATE_IDS}"
                )));
            }
            *ids = set.to_string();
        }
        let account = self.account().to_owned();
        let path = integration::SimulateWebhookPath {
            account,
            webhook_id,
        };
        IntegrationApi::simulate_webhook(self, &path, &request)
            .await
            .map(drop)
    }

    /// Runs 1 to 10 writes in one call, counted once by the throttle (`POST /multi-message`);
    /// more is [`Error::TooManyMessages`]. The per-message outcomes are data.
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
