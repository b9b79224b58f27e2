//! The simulator's data: tokens, throttle windows, and the seeded and created resources.

use std::collections::{BTreeMap, HashMap, VecDeque};

use brightpearl_models::contact::{
    Contact, ContactCommunication, ContactEmail, ContactEmails, ContactTelephones, PostAddressIds,
    PostalAddressRequest, RelationshipToAccount,
};
use brightpearl_models::integration::Webhook;
use brightpearl_models::order::{SalesCredit, SalesOrder};
use brightpearl_models::product::{
    LocalisedText, PriceList, PriceListTypeCode, Product, ProductCategoryRef, ProductComposition,
    ProductDimensions, ProductFinancialDetails, ProductIdentity, ProductSalesChannel, ProductStock,
    ProductWarehouseSettings, ProductWeight, TaxCodeRef, TextFormat,
};
use brightpearl_models::warehouse::{GoodsInNote, GoodsOutNote};
use chrono::{DateTime, Duration, Utc};
use models_runtime::{Decimal, Timestamp};
use serde::{Deserialize, Serialize};

use super::config::BrightpearlConfig;
use crate::dataset::Dataset;

/// Brightpearl's timestamp form: milliseconds and a `+00:00` offset.
pub fn ts(at: DateTime<Utc>) -> Timestamp {
    let text = at
        .fixed_offset()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    Timestamp::parse(&text).unwrap_or_else(|_| Timestamp::from_datetime(at))
}

/// An authorization code waiting to be exchanged.
#[derive(Debug, Clone)]
pub struct AuthCode {
    pub account: String,
    pub redirect_uri: String,
    pub expires_at: DateTime<Utc>,
}

/// An access token.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub account: String,
    pub expires_at: DateTime<Utc>,
    pub instance_id: i64,
}

/// Stock of one product in one warehouse; `onHand = inStock - allocated`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stock {
    pub in_stock: i64,
    pub allocated: i64,
}

impl Stock {
    pub fn on_hand(&self) -> i64 {
        self.in_stock - self.allocated
    }
}

/// One webhook call the simulator made (secret query values of the URL, such as `secret=`, are
/// redacted: the URL is shown by the admin API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// Sequence number from 1.
    pub seq: u64,
    /// The webhook subscription.
    pub webhook_id: i64,
    /// The full event (`goods-out-note.modified.shipped`).
    pub event: String,
    /// The ids (an ID set) sent in `${resource-id}`.
    pub resource_ids: String,
    /// HTTP method used.
    pub method: String,
    /// Target URL with secret query values redacted ([`models_runtime::redact::redact_url`]).
    pub url: String,
    /// Body sent (the rendered body template), if any.
    pub body: Option<String>,
    /// Virtual time the event was raised.
    pub raised_on: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// Status of the last attempt, if the receiver answered.
    pub status: Option<u16>,
    /// Whether an attempt got a 2xx.
    pub delivered: bool,
    /// Transport error of the last attempt, if any.
    pub error: Option<String>,
}

/// Id counters: every id the simulator hands out comes from one of these.
#[derive(Debug, Default)]
pub struct Counters {
    pub token: u64,
    pub address: i64,
    pub contact: i64,
    pub order: i64,
    pub row: i64,
    pub gon: i64,
    /// Goods-in notes (stock received against sales credits).
    pub goods_in: i64,
    pub webhook: i64,
    pub delivery: u64,
}

/// All simulator data.
#[derive(Debug, Default)]
pub struct Store {
    pub ids: Counters,
    pub codes: HashMap<String, AuthCode>,
    pub access: HashMap<String, AccessGrant>,
    /// Live refresh tokens (a used one is removed: refresh tokens rotate).
    pub refresh: HashMap<String, String>,
    pub windows: HashMap<(String, String), VecDeque<DateTime<Utc>>>,
    pub products: BTreeMap<i64, Product>,
    pub warehouses: Vec<(i64, String)>,
    pub stock: BTreeMap<(i64, i64), Stock>,
    /// Bundle product id → its components: (component product id, quantity per bundle).
    /// Bundles are not stock-tracked and have no stock of their own.
    pub bundles: BTreeMap<i64, Vec<(i64, i64)>>,
    pub price_lists: Vec<PriceList>,
    pub prices: BTreeMap<(i64, i64), Decimal>,
    pub addresses: BTreeMap<i64, PostalAddressRequest>,
    pub contacts: BTreeMap<i64, Contact>,
    pub orders: BTreeMap<i64, SalesOrder>,
    /// The first (lowest) order id of each (`externalRef`, `installedIntegrationInstanceId`),
    /// so a sales-order POST finds a duplicate without scanning every order. Orders are only
    /// added by that POST and neither field changes afterwards.
    pub orders_by_external_ref: HashMap<(String, Option<i64>), i64>,
    /// Sales credits (orders of type `SC`), by id; they share the order id sequence.
    pub credits: BTreeMap<i64, SalesCredit>,
    /// The first credit id of each (`externalRef`, `installedIntegrationInstanceId`), the
    /// credits' own unique key (the sales-credit POST documents it like the sales-order one).
    pub credits_by_external_ref: HashMap<(String, Option<i64>), i64>,
    pub gons: BTreeMap<i64, GoodsOutNote>,
    /// Goods-in notes by id: a sales credit's stock put back (see `goods_in`).
    pub goods_in_notes: BTreeMap<i64, GoodsInNote>,
    pub webhooks: BTreeMap<i64, Webhook>,
    pub deliveries: Vec<WebhookDelivery>,
}

/// Most seeded products made bundles (at most one in ten of the dataset's products).
pub const MAX_SEEDED_BUNDLES: usize = 5;

/// The seeded bundles: up to [`MAX_SEEDED_BUNDLES`] (and one in ten) of the dataset's products,
/// taken from the end of the catalog and skipping products on seeded orders (a bundle row would
/// never get a goods-out note). Bundle `k` is made of the products at index `2k` (one per
/// bundle) and `2k + 1` (two per bundle), which are never bundles themselves.
/// Returns (bundle product id, components).
pub fn seeded_bundles(dataset: &Dataset) -> Vec<(i64, Vec<(i64, i64)>)> {
    let products = &dataset.products;
    let count = MAX_SEEDED_BUNDLES.min(products.len() / 10);
    let on_orders: std::collections::BTreeSet<usize> = dataset
        .orders
        .iter()
        .flat_map(|o| o.lines.iter().map(|l| l.product))
        .collect();
    let components_end = 2 * count;
    (components_end..products.len())
        .rev()
        .filter(|i| !on_orders.contains(i))
        .take(count)
        .enumerate()
        .map(|(k, i)| {
            (
                products[i].id,
                vec![(products[2 * k].id, 1), (products[2 * k + 1].id, 2)],
            )
        })
        .collect()
}

/// Plausible dimensions of a seeded product in cm (volume in cm³), from its id.
fn dimensions(id: i64) -> ProductDimensions {
    let cm = |value: i64| Decimal::new(value * 100, 2);
    let (length, width, height) = (10 + id % 30, 5 + id % 20, 2 + id % 10);
    ProductDimensions {
        length: Some(cm(length)),
        height: Some(cm(height)),
        width: Some(cm(width)),
        volume: Some(cm(length * width * height)),
    }
}

/// Price list ids of the seeded lists.
pub const COST_PRICE_LIST: i64 = 1;
pub const RETAIL_PRICE_LIST: i64 = 2;

impl Store {
    /// Seeds products, stock, price lists and some customers (as contacts) from the dataset.
    pub fn seed(config: &BrightpearlConfig, dataset: &Dataset, start: DateTime<Utc>) -> Self {
        let mut store = Self {
            ids: Counters {
                address: 300,
                contact: 200,
                order: 10_000,
                row: 50_000,
                gon: 0,
                goods_in: 0,
                webhook: 0,
                token: 0,
                delivery: 0,
            },
            warehouses: dataset
                .warehouses
                .iter()
                .map(|w| (w.id, w.name.clone()))
                .collect(),
            ..Self::default()
        };
        let bundles: BTreeMap<i64, Vec<(i64, i64)>> = seeded_bundles(dataset).into_iter().collect();
        for (index, p) in dataset.products.iter().enumerate() {
            let bundle = bundles.contains_key(&p.id);
            let created = start - Duration::days(90) + Duration::minutes(index as i64);
            let updated = start - Duration::hours(48) + Duration::minutes(index as i64 * 7);
            let warehouses = dataset
                .warehouses
                .iter()
                .map(|w| {
                    (
                        w.id.to_string(),
                        ProductWarehouseSettings {
                            default_location_id: Some(w.id * 100 + 1),
                            overflow_location_id: Some(w.id * 100 + 2),
                            // Bundles hold no stock of their own, so nothing to reorder.
                            reorder_level: Some(if bundle { 0 } else { 5 + p.id % 6 }),
                            reorder_quantity: Some(if bundle { 0 } else { 20 + 10 * (p.id % 3) }),
                        },
                    )
                })
                .collect();
            let product = Product {
                id: p.id,
                brand_id: Some(1),
                product_type_id: Some(1),
                featured: Some(false),
                status: Some("LIVE".into()),
                version: Some(updated.timestamp_millis()),
                created_on: Some(ts(created)),
                updated_on: Some(ts(updated)),
                identity: Some(ProductIdentity {
                    sku: Some(p.sku.clone()),
                    barcode: Some(format!("73{:011}", p.id)),
                    ..Default::default()
                }),
                stock: Some(ProductStock {
                    // Bundles are always non-stock-tracked in Brightpearl.
                    stock_tracked: Some(!bundle),
                    weight: Some(ProductWeight {
                        magnitude: Some(p.weight_kg),
                    }),
                    dimensions: Some(dimensions(p.id)),
                }),
                financial_details: Some(ProductFinancialDetails {
                    taxable: Some(true),
                    tax_code: Some(TaxCodeRef {
                        id: Some(1),
                        code: Some("T25".into()),
                    }),
                }),
                sales_channels: Some(vec![ProductSalesChannel {
                    sales_channel_name: Some("Brightpearl".into()),
                    product_name: Some(p.name.clone()),
                    product_condition: Some("new".into()),
                    // Two categories each, so product search sends array reference maps.
                    categories: Some(vec![
                        ProductCategoryRef {
                            category_code: Some((300 + p.id % 3).to_string()),
                        },
                        ProductCategoryRef {
                            category_code: Some("310".into()),
                        },
                    ]),
                    description: Some(LocalisedText {
                        language_code: Some("EN".into()),
                        text: Some(format!("<p>{}</p>", p.name)),
                        format: Some(TextFormat::HtmlFragment),
                    }),
                    short_description: Some(LocalisedText {
                        language_code: Some("EN".into()),
                        text: Some(p.name.clone()),
                        format: Some(TextFormat::HtmlFragment),
                    }),
                }]),
                composition: Some(ProductComposition {
                    bundle: Some(bundle),
                }),
                warehouses: Some(warehouses),
                nominal_code_stock: Some("1001".into()),
                nominal_code_purchases: Some("5000".into()),
                nominal_code_sales: Some("4000".into()),
                // As in Brightpearl's recorded product GET: no seasons, no reporting
                // classification, empty pop-up messages.
                season_ids: Some(Vec::new()),
                reporting: Some(serde_json::json!({})),
                sales_popup_message: Some(String::new()),
                warehouse_popup_message: Some(String::new()),
                ..Default::default()
            };
            store.products.insert(p.id, product);
            // A bundle's stock is that of its components.
            let own_stock = if bundle { &[][..] } else { &p.on_hand[..] };
            for (w, on_hand) in dataset.warehouses.iter().zip(own_stock) {
                store.stock.insert(
                    (p.id, w.id),
                    Stock {
                        in_stock: *on_hand,
                        allocated: 0,
                    },
                );
            }
            store.prices.insert((p.id, COST_PRICE_LIST), p.cost);
            store.prices.insert((p.id, RETAIL_PRICE_LIST), p.price);
        }
        store.bundles = bundles;
        let list =
            |id: i64, code: &str, name: &str, kind: PriceListTypeCode, gross: bool| PriceList {
                id,
                name: Some(LocalisedText {
                    language_code: Some("EN".into()),
                    text: Some(name.into()),
                    format: Some(TextFormat::Plaintext),
                }),
                code: Some(code.into()),
                currency_code: Some(config.currency_code.clone()),
                currency_symbol: Some(if config.currency_code == "SEK" {
                    "kr".into()
                } else {
                    config.currency_code.clone()
                }),
                currency_id: Some(1),
                price_list_type_code: Some(kind),
                gross: Some(gross),
            };
        store.price_lists = vec![
            list(
                COST_PRICE_LIST,
                "COST",
                "Cost",
                PriceListTypeCode::Buy,
                false,
            ),
            list(
                RETAIL_PRICE_LIST,
                "RETAIL",
                "Retail",
                PriceListTypeCode::Sell,
                true,
            ),
        ];
        if config.seed_contact_every > 0 {
            for (index, c) in dataset
                .customers
                .iter()
                .enumerate()
                .filter(|(i, _)| i % config.seed_contact_every == 0)
            {
                let at = start - Duration::days(30) + Duration::hours(index as i64);
                let address = store.next_address();
                store.addresses.insert(
                    address,
                    PostalAddressRequest {
                        address_line1: c.address.street.clone(),
                        address_line3: Some(c.address.city.clone()),
                        postal_code: Some(c.address.zip.clone()),
                        country_iso_code: Some(c.address.country.clone()),
                        ..Default::default()
                    },
                );
                let id = store.next_contact();
                store.contacts.insert(
                    id,
                    Contact {
                        contact_id: id,
                        is_primary_contact: Some(true),
                        first_name: Some(c.first_name.clone()),
                        last_name: Some(c.last_name.clone()),
                        post_address_ids: Some(PostAddressIds {
                            def: Some(address),
                            bil: Some(address),
                            del: Some(address),
                        }),
                        communication: Some(ContactCommunication {
                            emails: Some(ContactEmails {
                                pri: Some(ContactEmail {
                                    email: Some(c.email.clone()),
                                }),
                                ..Default::default()
                            }),
                            telephones: Some(ContactTelephones {
                                mob: Some(c.phone.clone()),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        relationship_to_account: Some(RelationshipToAccount {
                            is_supplier: Some(false),
                            is_staff: Some(false),
                        }),
                        created_on: Some(ts(at)),
                        updated_on: Some(ts(at)),
                        ..Default::default()
                    },
                );
            }
        }
        store
    }

    pub fn next_address(&mut self) -> i64 {
        self.ids.address += 1;
        self.ids.address
    }

    pub fn next_contact(&mut self) -> i64 {
        self.ids.contact += 1;
        self.ids.contact
    }

    pub fn next_token(&mut self) -> u64 {
        self.ids.token += 1;
        self.ids.token
    }

    /// Counts a request against its pool's rolling window: `Ok((remaining, next period ms))`, or
    /// `Err(next period ms)` when the pool is exhausted (throttled requests do not count).
    pub fn throttle(
        &mut self,
        pool: &(String, String),
        now: DateTime<Utc>,
        limit: usize,
        window: Duration,
    ) -> Result<(usize, u64), u64> {
        let times = self.windows.entry(pool.clone()).or_default();
        while times.front().is_some_and(|t| *t + window <= now) {
            times.pop_front();
        }
        let next_ms = |times: &VecDeque<DateTime<Utc>>| {
            times
                .front()
                .map_or(window.num_milliseconds(), |oldest| {
                    (*oldest + window - now).num_milliseconds()
                })
                .max(0) as u64
        };
        if times.len() >= limit {
            return Err(next_ms(times));
        }
        times.push_back(now);
        Ok((limit - times.len(), next_ms(times)))
    }

    /// Stock figures of a product in a warehouse.
    pub fn stock_of(&self, product: i64, warehouse: i64) -> Stock {
        self.stock
            .get(&(product, warehouse))
            .copied()
            .unwrap_or_default()
    }
}
