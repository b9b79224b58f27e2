//! The steps of one order that the single-call path and the batched path ([`super::batch`])
//! share: loading the order, the duplicate check, contacts, rows, the sales-order request, the
//! records before and after a POST, and Norce's confirmation. A bottom module: it uses neither
//! its parent nor `batch`, so neither forms a cycle through it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use brightpearl_client::models::contact::{
    ContactCommunication, ContactEmail, ContactEmails, ContactRequest, ContactTelephones,
    PostalAddressRequest,
};
use brightpearl_client::models::order::operations::OrderApi as _;
use brightpearl_client::models::order::{
    CreateSalesOrderPath, OrderAddress, SalesOrderCustomer, SalesOrderDelivery, SalesOrderRequest,
    SalesOrderRowRequest,
};
use brightpearl_client::{ProductRow, SearchQuery, SearchResource};
use norce_client::models::connect::operations::ConnectApi as _;
use norce_client::models::connect::{ConnectOrderStatus, SendOrderStatusRequest};
use tracing::Instrument as _;

use super::common::{FLOW, ORDER_SEARCH_COLUMNS};
use super::common::{OrderPayload, decimal};
use super::dedupe::{OrderRefRow, Recent, Verdict};
use super::model::{LineKind, NorceOrder};
use crate::config::orders::{CountryCodeForm, OrdersConfig, UnmatchedSku};
use crate::flows::action::ItemError;
use crate::flows::catalog::{ContactCache, SkuMap};
use crate::flows::context::{FlowContext, Outcome};
use crate::state::{EntityRecord, EntityUpdate, Status};

/// `SE` → `SWE`. The order's country is an alpha-2 code (Norce's, or the `orders.country_codes`
/// mapping); an unknown one is an error naming it.
pub(super) fn alpha3(alpha2: &str) -> Result<String, String> {
    isocountry::CountryCode::for_alpha2_caseless(alpha2.trim())
        .map(|c| c.alpha3().to_owned())
        .map_err(|_| format!("`{alpha2}` is not an ISO 3166-1 alpha-2 country code (check `orders.country_codes` or the Norce address)"))
}

/// The order's country in the form Brightpearl is given.
pub(super) fn country_in(
    form: CountryCodeForm,
    order: &NorceOrder,
) -> Result<Option<String>, ItemError> {
    match (form, order.address.country.as_deref()) {
        (_, None) => Ok(None),
        (CountryCodeForm::Alpha2, Some(code)) => Ok(Some(code.to_owned())),
        (CountryCodeForm::Alpha3, Some(code)) => alpha3(code)
            .map(Some)
            .map_err(|e| ItemError::permanent(format!("order {}: {e}", order.order_no))),
    }
}

/// Whether a pending order still needs its sales order (no Brightpearl id recorded yet).
pub(super) fn needs_sales_order(record: &EntityRecord) -> bool {
    matches!(
        record.step.as_deref(),
        None | Some("contact") | Some("posting")
    ) || record.target_id.is_none()
}

/// What the concurrent items of one pass share.
pub(super) struct Shared<'a> {
    pub(super) brightpearl: &'a brightpearl_client::Client,
    /// SKU → Brightpearl product id (`None`: no such product) and whether the id came from the
    /// shared map, looked up once per pass.
    pub(super) skus: Mutex<HashMap<String, (Option<i64>, bool)>>,
    /// The account's durable SKU map, shared with the stock flow.
    pub(super) sku_map: SkuMap<'a>,
    /// The account's e-mail → contact id cache.
    pub(super) contacts: ContactCache<'a>,
    /// Set once the multi-message endpoint failed as unavailable: the rest of the pass sends
    /// single calls.
    pub(super) single_calls: AtomicBool,
}

impl<'a> Shared<'a> {
    pub(super) fn new(ctx: &'a FlowContext, brightpearl: &'a brightpearl_client::Client) -> Self {
        let config = &ctx.config.orders;
        Self {
            brightpearl,
            skus: Mutex::new(HashMap::new()),
            sku_map: SkuMap::new(
                ctx.store.as_ref(),
                brightpearl.account(),
                config.sku_map_max_age_secs,
            ),
            contacts: ContactCache::new(
                ctx.store.as_ref(),
                brightpearl.account(),
                config.contact_cache_max_age_secs,
            ),
            single_calls: AtomicBool::new(false),
        }
    }

    /// Whether writes go one request each for the rest of the pass.
    pub(super) fn single_calls(&self) -> bool {
        self.single_calls.load(Ordering::Relaxed)
    }

    /// Falls back to single calls for the rest of the pass (logged once).
    pub(super) fn fall_back(&self, error: &brightpearl_client::Error) {
        if !self.single_calls.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                flow = FLOW,
                error = %error,
                "Brightpearl's multi-message endpoint is unavailable; single calls for the rest of this pass"
            );
        }
    }

    pub(super) fn forget_sku(&self, sku: &str) {
        self.skus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(sku);
    }

    pub(super) fn cached(&self, sku: &str) -> Option<(Option<i64>, bool)> {
        self.skus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sku)
            .copied()
    }

    pub(super) fn remember(&self, sku: &str, product: Option<i64>, from_map: bool) {
        self.skus
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sku.to_owned(), (product, from_map));
    }
}

/// The `installedIntegrationInstanceId` to stamp and search: configured, else the OAuth one.
pub(super) fn instance_id(
    ctx: &FlowContext,
    brightpearl: &brightpearl_client::Client,
) -> Option<i64> {
    ctx.config
        .orders
        .installed_integration_instance_id
        .or_else(|| {
            brightpearl
                .session()
                .installation_instance_id?
                .trim()
                .parse()
                .ok()
        })
}

/// A sales-order POST Brightpearl refused (a 4xx: nothing was created). When the contact or
/// some product ids came from the caches, those entries may be stale (a contact merged or
/// deleted, a product gone): they are dropped, with the recorded contact, and the order is
/// retried with fresh searches; otherwise the error stands.
#[allow(clippy::too_many_arguments)]
pub(super) fn refused(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    id: &str,
    payload: &mut OrderPayload,
    order: &NorceOrder,
    cached_contact: bool,
    mapped: &[String],
    error: ItemError,
) -> Result<ItemError, ItemError> {
    if error.kind() != Some(client_core::ErrorKind::Permanent) {
        return Ok(error);
    }
    if !cached_contact && mapped.is_empty() {
        return Ok(error);
    }
    if cached_contact {
        if let Some(email) = order.customer.email.as_deref() {
            shared.contacts.forget(email)?;
        }
        payload.contact_id = None;
        let text = payload.to_json().map_err(ItemError::permanent)?;
        ctx.store.update(
            FLOW,
            id,
            &EntityUpdate {
                payload: Some(text),
                ..EntityUpdate::default()
            },
        )?;
    }
    let skus: Vec<&str> = mapped.iter().map(String::as_str).collect();
    shared.sku_map.forget(&skus)?;
    for sku in &skus {
        shared.forget_sku(sku);
    }
    tracing::warn!(
        flow = FLOW,
        order_no = order.order_no,
        cached_contact,
        skus = ?skus,
        "Brightpearl refused the sales order built from cached ids; they are dropped and the order is retried with fresh searches"
    );
    let reason = match &error {
        ItemError::Failed { reason, .. } => reason.clone(),
        _ => String::new(),
    };
    Ok(ItemError::transient(format!(
        "{reason} (the cached contact or product ids were dropped; the next attempt searches them again)"
    )))
}

/// The stored order of a pending entity, read and normalised.
pub(super) fn load(
    ctx: &FlowContext,
    record: &EntityRecord,
) -> Result<(OrderPayload, NorceOrder), ItemError> {
    let id = record.source_id.as_str();
    let Some(text) = record.payload.as_deref() else {
        return Err(ItemError::permanent(format!(
            "order {id} has no stored Norce order: have Norce send it again (order receiver) or move the `orders` cursor back"
        )));
    };
    let payload: OrderPayload = serde_json::from_str(text).map_err(|e| {
        ItemError::permanent(format!("order {id}: the stored Norce order cannot be read ({e}); have Norce send it again or move the `orders` cursor back"))
    })?;
    let order = payload.normalise(&ctx.config.orders).map_err(|problem| {
        ItemError::permanent(format!("order {id}: {problem}; then `relay replay`"))
    })?;
    Ok((payload, order))
}

/// The Brightpearl order already made for this order, if any. Always asked before posting:
/// this is what makes a lost POST response safe. The page's bulk read settles most orders; the
/// rest are searched by `externalRef` on their own.
pub(super) async fn existing_order(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    recent: Option<&Recent>,
    record: &EntityRecord,
    payload: &OrderPayload,
    order: &NorceOrder,
) -> Result<Option<i64>, ItemError> {
    let verdict = recent.map_or(Verdict::Unknown, |r| {
        r.verdict(
            &order.order_no,
            payload.posted.as_ref(),
            record.step.as_deref() == Some("contact"),
        )
    });
    let found = match verdict {
        Verdict::Exists(found) => Some(found),
        Verdict::Absent => None,
        Verdict::Unknown => {
            let instance = instance_id(ctx, shared.brightpearl);
            find_order_by_external_ref(shared.brightpearl, &order.order_no, instance)
                .instrument(order_span(record))
                .await?
        }
    };
    if let Some(found) = found {
        tracing::info!(
            flow = FLOW,
            order_no = order.order_no,
            order_id = found,
            "Brightpearl order already exists; reused"
        );
    }
    Ok(found)
}

pub(super) fn order_span(record: &EntityRecord) -> tracing::Span {
    tracing::info_span!(
        "flow_step",
        flow = FLOW,
        step = "sales_order",
        source_id = record.source_id.as_str()
    )
}

/// Records the contact of an order (step `contact`).
pub(super) fn record_contact(
    ctx: &FlowContext,
    id: &str,
    payload: &mut OrderPayload,
    contact: i64,
) -> Result<(), ItemError> {
    payload.contact_id = Some(contact);
    let text = payload.to_json().map_err(ItemError::permanent)?;
    ctx.store.update(
        FLOW,
        id,
        &EntityUpdate {
            step: Some("contact".into()),
            payload: Some(text),
            ..EntityUpdate::default()
        },
    )?;
    Ok(())
}

/// Records, just before the sales-order POST, that it may have happened (step `posting`), with
/// the marker kept from the first POST: a later attempt's bulk check must cover what
/// Brightpearl created since.
pub(super) fn record_posting(
    ctx: &FlowContext,
    id: &str,
    payload: &mut OrderPayload,
    recent: Option<&Recent>,
) -> Result<(), ItemError> {
    if payload.posted.is_none() {
        payload.posted = Some(recent.map(Recent::marker).unwrap_or_default());
    }
    let text = payload.to_json().map_err(ItemError::permanent)?;
    ctx.store.update(
        FLOW,
        id,
        &EntityUpdate {
            step: Some("posting".into()),
            payload: Some(text),
            ..EntityUpdate::default()
        },
    )?;
    Ok(())
}

/// Records the Brightpearl order id (step `created`).
pub(super) fn record_created(ctx: &FlowContext, id: &str, order_id: i64) -> Result<(), ItemError> {
    ctx.store.update(
        FLOW,
        id,
        &EntityUpdate {
            step: Some("created".into()),
            target_id: Some(order_id.to_string()),
            ..EntityUpdate::default()
        },
    )?;
    Ok(())
}

pub(super) async fn process_order(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    recent: Option<&Recent>,
    record: &EntityRecord,
) -> Result<Outcome, ItemError> {
    let id = record.source_id.as_str();
    let config = &ctx.config.orders;
    let (mut payload, order) = load(ctx, record)?;
    let mut outcome = Outcome::default();
    let mut erp_id: Option<i64> = record.target_id.as_deref().and_then(|t| t.parse().ok());

    if needs_sales_order(record) {
        let span = order_span(record);
        let existing = existing_order(ctx, shared, recent, record, &payload, &order).await?;
        let order_id = match existing {
            Some(found) => found,
            None => {
                let (rows, mapped) = sales_order_rows(ctx, shared, &order)
                    .instrument(span.clone())
                    .await?;
                let mut cached_contact = false;
                let contact_id = match payload.contact_id {
                    Some(contact) => contact,
                    None => {
                        let email = customer_email(&order)?;
                        let contact = match shared.contacts.get(email)? {
                            Some(known) => {
                                cached_contact = true;
                                known
                            }
                            None => {
                                let contact = find_or_create_contact(shared.brightpearl, &order)
                                    .instrument(tracing::info_span!(
                                        "flow_step",
                                        flow = FLOW,
                                        step = "contact",
                                        source_id = id
                                    ))
                                    .await?;
                                shared.contacts.put(email, contact)?;
                                contact
                            }
                        };
                        record_contact(ctx, id, &mut payload, contact)?;
                        contact
                    }
                };
                record_posting(ctx, id, &mut payload, recent)?;
                let instance = instance_id(ctx, shared.brightpearl);
                let request = sales_order_request(config, &order, contact_id, instance, rows)?;
                let path = CreateSalesOrderPath {
                    account: shared.brightpearl.account().to_owned(),
                };
                let created = match shared
                    .brightpearl
                    .create_sales_order(&path, &request)
                    .instrument(span.clone())
                    .await
                {
                    Ok(created) => created.response,
                    Err(error) => {
                        let error = ItemError::from(error);
                        return Err(refused(
                            ctx,
                            shared,
                            id,
                            &mut payload,
                            &order,
                            cached_contact,
                            &mapped,
                            error,
                        )?);
                    }
                };
                tracing::info!(parent: &span, order_id = created, "Brightpearl order created");
                outcome.booked = true;
                created
            }
        };
        record_created(ctx, id, order_id)?;
        erp_id = Some(order_id);
    }
    confirm(ctx, id, &order, erp_id, outcome).await
}

/// Tells Norce the ERP order number, and finishes the entity (step `written_back`).
pub(super) async fn confirm(
    ctx: &FlowContext,
    id: &str,
    order: &NorceOrder,
    erp_id: Option<i64>,
    mut outcome: Outcome,
) -> Result<Outcome, ItemError> {
    let erp_id = erp_id.ok_or_else(|| {
        ItemError::transient(format!("order {id}: no Brightpearl order id recorded"))
    })?;
    let request = SendOrderStatusRequest {
        client_order_ref: order.basket_id,
        erp_order_no: Some(erp_id.to_string()),
        order_status: ConnectOrderStatus::from(ctx.config.orders.confirmed_status.as_str()),
        account_id: None,
        infos: None,
    };
    ctx.norce()?
        .send_order_status(&request)
        .instrument(tracing::info_span!(
            "flow_step",
            flow = FLOW,
            step = "confirm",
            source_id = id
        ))
        .await?;
    ctx.store.update(
        FLOW,
        id,
        &EntityUpdate {
            status: Some(Status::Done),
            step: Some("written_back".into()),
            clear_error: true,
            ..EntityUpdate::default()
        },
    )?;
    outcome.written_back = true;
    outcome.done = true;
    Ok(outcome)
}

/// The Brightpearl order whose `externalRef` is exactly `order_no` (and, when we stamp one,
/// whose `installedIntegrationInstanceId` is ours: the pair is Brightpearl's unique key).
pub(super) async fn find_order_by_external_ref(
    brightpearl: &brightpearl_client::Client,
    order_no: &str,
    instance: Option<i64>,
) -> Result<Option<i64>, ItemError> {
    let query = SearchQuery::new()
        .filter("externalRef", order_no)
        .columns(ORDER_SEARCH_COLUMNS);
    let rows: Vec<OrderRefRow> = brightpearl
        .search_all(SearchResource::Orders, query)
        .await?;
    let mut matching: Vec<i64> = rows
        .into_iter()
        .filter(|r| {
            r.external_ref.as_deref() == Some(order_no)
                && (instance.is_none() || r.instance == instance)
        })
        .map(|r| r.order_id)
        .collect();
    matching.sort_unstable();
    if matching.len() > 1 {
        tracing::warn!(order_no, orders = ?matching, "several Brightpearl orders carry this externalRef; the oldest is used");
    }
    Ok(matching.first().copied())
}

/// Brightpearl product id of a SKU (exact match): the pass's cache, then the account's shared
/// map ([`SkuMap`]), else one product-search (Brightpearl's `SKU` filter takes one value), whose
/// answer goes into both. The flag says the id came from the shared map.
pub(super) async fn product_id(
    shared: &Shared<'_>,
    sku: &str,
) -> Result<(Option<i64>, bool), ItemError> {
    if let Some(known) = shared.cached(sku) {
        return Ok(known);
    }
    if let Some(id) = shared.sku_map.get(&[sku])?.remove(sku) {
        shared.remember(sku, Some(id), true);
        return Ok((Some(id), true));
    }
    let query = SearchQuery::new()
        .filter("SKU", sku)
        .columns(["productId", "SKU"]);
    let rows: Vec<ProductRow> = shared
        .brightpearl
        .search_all(SearchResource::Products, query)
        .await?;
    let mut rows: Vec<ProductRow> = rows
        .into_iter()
        .filter(|r| r.sku.as_deref() == Some(sku))
        .collect();
    rows.sort_by_key(|r| r.product_id);
    let found = rows.first().and_then(|r| i64::try_from(r.product_id).ok());
    if let Some(row) = rows.first() {
        shared.sku_map.put([(sku.to_owned(), row.product_id)])?;
    }
    shared.remember(sku, found, false);
    Ok((found, false))
}

/// The rows of the sales order: products by SKU, fees (and, by configuration, unknown SKUs) as
/// free-text rows. Row net and tax are totals rounded to 2 decimals.
/// The SKUs whose ids came from the shared map come back with the rows.
pub(super) async fn sales_order_rows(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    order: &NorceOrder,
) -> Result<(Vec<SalesOrderRowRequest>, Vec<String>), ItemError> {
    let config = &ctx.config.orders;
    if order.lines.is_empty() {
        return Err(ItemError::permanent(format!(
            "order {} has no lines; nothing to create in Brightpearl",
            order.order_no
        )));
    }
    let mut rows = Vec::new();
    let mut unmatched = Vec::new();
    let mut mapped = Vec::new();
    for line in &order.lines {
        let what = format!(
            "order {} line {} ({})",
            order.order_no, line.line_no, line.part_no
        );
        if !line.quantity.is_positive() {
            return Err(ItemError::permanent(format!(
                "{what}: quantity {} is not positive",
                line.quantity
            )));
        }
        let product = match line.kind {
            LineKind::Fee => None,
            LineKind::Product => {
                let (product, from_map) = product_id(shared, &line.part_no).await?;
                if from_map {
                    mapped.push(line.part_no.clone());
                }
                product
            }
        };
        if line.kind == LineKind::Product && product.is_none() {
            match config.unmatched_sku {
                UnmatchedSku::FreeText => tracing::warn!(
                    order_no = order.order_no,
                    sku = line.part_no,
                    "no Brightpearl product with this SKU; added as a free-text row"
                ),
                _ => {
                    unmatched.push(line.part_no.clone());
                    continue;
                }
            }
        }
        if product.is_some() && !line.quantity.is_whole() {
            return Err(ItemError::permanent(format!(
                "{what}: quantity {} must be whole for a stock-tracked product",
                line.quantity
            )));
        }
        let net = line
            .unit_price
            .mul_round2(line.quantity)
            .ok_or_else(|| ItemError::permanent(format!("{what}: amount out of range")))?;
        let tax = net
            .mul_round2(line.vat_rate)
            .ok_or_else(|| ItemError::permanent(format!("{what}: amount out of range")))?;
        let name = match (product, line.kind) {
            (Some(_), _) => None,
            (None, LineKind::Fee) => {
                Some(line.name.clone().unwrap_or_else(|| line.part_no.clone()))
            }
            (None, LineKind::Product) => Some(format!(
                "{} (SKU {})",
                line.name.as_deref().unwrap_or("Unknown product"),
                line.part_no
            )),
        };
        rows.push(SalesOrderRowRequest {
            product_id: product,
            name,
            sku: product.map(|_| line.part_no.clone()),
            quantity: decimal(line.quantity, &what)?,
            tax_code: config.tax_code.clone(),
            net: Some(decimal(net, &what)?),
            tax: Some(decimal(tax.round2(), &what)?),
            nominal_code: config.nominal_code.clone(),
            external_ref: Some(line.line_no.to_string()),
            discount_percentage: None,
        });
    }
    if !unmatched.is_empty() {
        let list = unmatched
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ItemError::permanent(format!(
            "order {}: no Brightpearl product has SKU {list} (Norce part number = Brightpearl SKU); create the product in Brightpearl or correct the SKU and `relay replay`, or set `orders.unmatched_sku = \"free_text\"`",
            order.order_no
        )));
    }
    Ok((rows, mapped))
}

/// At most `max` characters (Brightpearl refuses longer names).
pub(super) fn clip(text: Option<&str>, max: usize) -> Option<String> {
    text.map(|t| t.chars().take(max).collect())
}

/// The order's customer e-mail, by which Brightpearl contacts are found.
pub(super) fn customer_email(order: &NorceOrder) -> Result<&str, ItemError> {
    order.customer.email.as_deref().map(str::trim).filter(|e| !e.is_empty()).ok_or_else(|| {
        ItemError::permanent(format!(
            "order {} has no customer e-mail; Brightpearl customers are found by e-mail: add it to the order in Norce, then `relay replay`",
            order.order_no
        ))
    })
}

/// The oldest of the contacts whose primary e-mail is exactly `email` (a partial match is never
/// reused).
pub(super) fn oldest_contact(
    order: &NorceOrder,
    mut found: Vec<brightpearl_client::ContactRow>,
) -> Result<Option<i64>, ItemError> {
    found.sort_by_key(|c| c.contact_id);
    let Some(contact) = found.first() else {
        return Ok(None);
    };
    if found.len() > 1 {
        tracing::warn!(
            order_no = order.order_no,
            contacts = found.len(),
            "several contacts have this e-mail; the oldest is used"
        );
    }
    i64::try_from(contact.contact_id).map(Some).map_err(|_| {
        ItemError::permanent(format!("contact id {} is out of range", contact.contact_id))
    })
}

/// The postal address and contact to create for the order's customer, new to Brightpearl.
pub(super) fn new_contact(
    order: &NorceOrder,
    email: &str,
) -> Result<(PostalAddressRequest, ContactRequest), ItemError> {
    let Some(line1) = order.address.line1.clone() else {
        return Err(ItemError::permanent(format!(
            "order {}: the customer {email} is new to Brightpearl and the order has no street address (Line1) for the contact; add it in Norce, then `relay replay`",
            order.order_no
        )));
    };
    let address = PostalAddressRequest {
        address_line1: line1,
        address_line2: order.address.line2.clone(),
        address_line3: order.address.city.clone(),
        address_line4: order.address.region.clone(),
        postal_code: order.address.zip.clone(),
        // The postal-address POST documents the 3-letter ISO code.
        country_iso_code: country_in(CountryCodeForm::Alpha3, order)?,
        country_id: None,
    };
    let contact = ContactRequest {
        first_name: clip(order.customer.first_name.as_deref(), 32),
        last_name: clip(order.customer.last_name.as_deref(), 32),
        communication: Some(ContactCommunication {
            emails: Some(ContactEmails {
                pri: Some(ContactEmail {
                    email: Some(email.to_owned()),
                }),
                ..ContactEmails::default()
            }),
            telephones: order.customer.phone.clone().map(|phone| ContactTelephones {
                mob: Some(phone),
                ..ContactTelephones::default()
            }),
            ..ContactCommunication::default()
        }),
        ..ContactRequest::default()
    };
    Ok((address, contact))
}

/// The contact Brightpearl holds for the order's e-mail (one contact-search; the oldest exact
/// match), if any.
pub(super) async fn find_contact(
    brightpearl: &brightpearl_client::Client,
    order: &NorceOrder,
) -> Result<Option<i64>, ItemError> {
    let found = brightpearl
        .find_contacts_by_email(customer_email(order)?)
        .await?;
    oldest_contact(order, found)
}

/// The contact whose primary e-mail is exactly the order's (a partial match is never reused),
/// or a new one with the order's address.
pub(super) async fn find_or_create_contact(
    brightpearl: &brightpearl_client::Client,
    order: &NorceOrder,
) -> Result<i64, ItemError> {
    if let Some(contact) = find_contact(brightpearl, order).await? {
        return Ok(contact);
    }
    let email = customer_email(order)?;
    let (address, contact) = new_contact(order, email)?;
    let created = brightpearl
        .create_contact_with_address(contact, &address)
        .await?;
    tracing::info!(
        order_no = order.order_no,
        contact_id = created.contact_id,
        "Brightpearl contact created"
    );
    Ok(created.contact_id)
}

pub(super) fn order_address(order: &NorceOrder, country_iso_code: Option<String>) -> OrderAddress {
    let name = [
        order.customer.first_name.as_deref(),
        order.customer.last_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    OrderAddress {
        address_full_name: (!name.is_empty()).then_some(name),
        company_name: order.customer.company.clone(),
        address_line1: order.address.line1.clone(),
        address_line2: order.address.line2.clone(),
        address_line3: order.address.city.clone(),
        address_line4: order.address.region.clone(),
        postal_code: order.address.zip.clone(),
        country_iso_code,
        telephone: None,
        mobile_telephone: order.customer.phone.clone(),
        fax: None,
        email: order.customer.email.clone(),
    }
}

pub(super) fn sales_order_request(
    config: &OrdersConfig,
    order: &NorceOrder,
    contact_id: i64,
    instance: Option<i64>,
    rows: Vec<SalesOrderRowRequest>,
) -> Result<SalesOrderRequest, ItemError> {
    let placed_on = match &order.placed_on {
        Some(text) => serde_json::from_value(serde_json::Value::String(text.clone())).ok(),
        None => None,
    };
    let currency = order.currency.as_ref().map(|code| {
        serde_json::from_value(serde_json::json!({ "code": code })).map_err(|e| {
            ItemError::permanent(format!("order {}: currency `{code}`: {e}", order.order_no))
        })
    });
    let country = country_in(config.sales_order_country_code, order)?;
    Ok(SalesOrderRequest {
        customer: SalesOrderCustomer {
            id: contact_id,
            address: Some(order_address(order, country.clone())),
        },
        billing: None,
        ref_: Some(order.order_no.clone()),
        external_ref: Some(order.order_no.clone()),
        placed_on,
        tax_date: None,
        installed_integration_instance_id: instance,
        warehouse_id: Some(config.warehouse_id),
        status_id: Some(config.status_id),
        channel_id: config.channel_id,
        lead_source_id: None,
        project_id: None,
        staff_owner_id: None,
        team_id: None,
        parent_id: None,
        price_list_id: Some(config.price_list_id),
        price_mode_code: None,
        currency: currency.transpose()?,
        delivery: Some(SalesOrderDelivery {
            date: None,
            shipping_method_id: None,
            address: Some(order_address(order, country)),
        }),
        rows,
    })
}
