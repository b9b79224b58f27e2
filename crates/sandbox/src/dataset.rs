//! A deterministic, seeded dataset shared by the three simulators.
//!
//! The same seed gives the same warehouses, products (one SKU each, known to both Brightpearl
//! and Norce), customers and Norce orders, so the connector flows have consistent data to move.

use chrono::{DateTime, Duration, Utc};
use models_runtime::Decimal;
use serde::{Deserialize, Serialize};

/// How much data to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetConfig {
    /// RNG seed.
    pub seed: u64,
    /// Number of Norce orders.
    pub orders: usize,
    /// Number of products (SKUs).
    pub skus: usize,
    /// Number of warehouses.
    pub warehouses: usize,
    /// Percentage of orders placed by a customer who ordered before (the rest each bring a new
    /// customer); `None`: orders pick from `orders / 2` customers at random.
    pub repeat_percent: Option<u8>,
    /// Best sellers: order lines pick among the first this many products four times in five
    /// (so SKUs recur across orders); `None`: any product alike.
    pub hot_skus: Option<usize>,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            orders: 20,
            skus: 50,
            warehouses: 2,
            repeat_percent: None,
            hot_skus: None,
        }
    }
}

/// A stock location (a Brightpearl warehouse, a Norce on-hand location).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warehouse {
    /// Brightpearl warehouse id (from 2).
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Norce location code for the same warehouse.
    pub location_code: String,
}

/// A product with one SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Brightpearl product id (from 1001).
    pub id: i64,
    /// The SKU: Brightpearl `SKU`, Norce part number.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Selling price including VAT, two decimals.
    pub price: Decimal,
    /// Cost price, four decimals as Brightpearl keeps them.
    pub cost: Decimal,
    /// Weight in kg per unit.
    pub weight_kg: Decimal,
    /// On hand per warehouse, in [`Dataset::warehouses`] order.
    pub on_hand: Vec<i64>,
}

/// A postal address in one of the Nordic countries nShift validates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Street and number.
    pub street: String,
    /// Postal code that fits the country's pattern.
    pub zip: String,
    /// City.
    pub city: String,
    /// ISO 3166-1 alpha-2 country.
    pub country: String,
}

/// A shop customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Norce customer id (from 5001).
    pub id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// E-mail, unique in the dataset.
    pub email: String,
    /// Mobile phone.
    pub phone: String,
    /// Delivery and billing address.
    pub address: Address,
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Index into [`Dataset::products`].
    pub product: usize,
    /// Quantity.
    pub quantity: i64,
    /// Unit price including VAT.
    pub unit_price: Decimal,
}

/// A shop order as Norce holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Norce order id (from 100001).
    pub id: i64,
    /// Order number shown to the customer (`NC-100001`).
    pub order_no: String,
    /// Index into [`Dataset::customers`].
    pub customer: usize,
    /// When the order was placed.
    pub created: DateTime<Utc>,
    /// Lines.
    pub lines: Vec<OrderLine>,
    /// Norce delivery method code (maps to an nShift service in the relay).
    pub delivery_method: String,
    /// The nShift PostNord agent id the customer picked, for pickup-point deliveries.
    pub pickup_point: Option<String>,
    /// Currency.
    pub currency: String,
}

/// The whole dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// Warehouses.
    pub warehouses: Vec<Warehouse>,
    /// Products.
    pub products: Vec<Product>,
    /// Customers.
    pub customers: Vec<Customer>,
    /// Orders, oldest first.
    pub orders: Vec<Order>,
}

const FIRST: &[&str] = &[
    "Anna", "Erik", "Maja", "Lars", "Sofia", "Nils", "Ingrid", "Oskar", "Freja", "Mikko",
];
const LAST: &[&str] = &[
    "Lind", "Berg", "Dahl", "Nyström", "Holm", "Virtanen", "Hansen", "Sjöberg", "Lund", "Strand",
];
const ITEMS: &[&str] = &[
    "Wool sweater",
    "Rain jacket",
    "Trail shoe",
    "Beanie",
    "Backpack",
    "Thermos",
    "Scarf",
    "Gloves",
];
/// (country, city, zip length, street) in the countries the nShift simulator validates.
const PLACES: &[(&str, &str, usize, &str)] = &[
    ("SE", "Stockholm", 5, "Drottninggatan"),
    ("SE", "Göteborg", 5, "Avenyn"),
    ("NO", "Oslo", 4, "Karl Johans gate"),
    ("DK", "København", 4, "Strøget"),
    ("FI", "Helsinki", 5, "Mannerheimintie"),
];
/// Norce delivery method codes the relay's default mapping knows.
pub const DELIVERY_METHODS: &[&str] = &["POSTNORD_HOME", "POSTNORD_PICKUP", "BUDBEE_HOME"];

fn cents(amount: i64, scale: u32) -> Decimal {
    Decimal::new(amount, scale)
}

impl Dataset {
    /// Makes the dataset for `config`; the same config always gives the same data.
    pub fn generate(config: &DatasetConfig, start: DateTime<Utc>) -> Self {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let warehouses = (0..config.warehouses.max(1))
            .map(|i| Warehouse {
                id: 2 + i as i64,
                name: format!("Warehouse {}", i + 1),
                location_code: format!("WH{}", i + 1),
            })
            .collect::<Vec<_>>();
        let products = (0..config.skus.max(1))
            .map(|i| {
                let price_cents = rng.i64(9_900..=249_900) / 100 * 100;
                Product {
                    id: 1001 + i as i64,
                    sku: format!("SKU-{:05}", i + 1),
                    name: format!("{} {}", ITEMS[i % ITEMS.len()], i + 1),
                    price: cents(price_cents, 2),
                    cost: cents(price_cents * 40 + rng.i64(0..100), 4),
                    weight_kg: cents(rng.i64(1..=40) * 50, 3),
                    on_hand: warehouses.iter().map(|_| rng.i64(0..=120)).collect(),
                }
            })
            .collect::<Vec<_>>();
        let customer_count = match config.repeat_percent {
            Some(_) => config.orders.max(3),
            None => (config.orders / 2).max(3),
        };
        let customers = (0..customer_count)
            .map(|i| {
                let (country, city, zip_len, street) = PLACES[rng.usize(..PLACES.len())];
                let zip = (0..zip_len)
                    .map(|d| char::from(b'0' + if d == 0 { rng.u8(1..=9) } else { rng.u8(0..=9) }))
                    .collect();
                let first = FIRST[rng.usize(..FIRST.len())];
                let last = LAST[rng.usize(..LAST.len())];
                Customer {
                    id: 5001 + i as i64,
                    first_name: first.to_owned(),
                    last_name: last.to_owned(),
                    email: format!(
                        "{}.{}{}@example.com",
                        first.to_lowercase(),
                        ascii_fold(last),
                        i + 1
                    ),
                    phone: format!(
                        "+46 70 {:03} {:02} {:02}",
                        rng.u16(100..999),
                        rng.u8(10..99),
                        rng.u8(10..99)
                    ),
                    address: Address {
                        street: format!("{street} {}", rng.u8(1..=120)),
                        zip,
                        city: city.to_owned(),
                        country: country.to_owned(),
                    },
                }
            })
            .collect::<Vec<_>>();
        // With `repeat_percent`, the customers not yet seen start here.
        let mut next_customer = 0;
        let orders = (0..config.orders)
            .map(|i| {
                let line_count = rng.usize(1..=3);
                let mut lines: Vec<OrderLine> = Vec::new();
                while lines.len() < line_count {
                    let product = match config.hot_skus {
                        Some(hot) if rng.u8(..5) < 4 => rng.usize(..hot.clamp(1, products.len())),
                        _ => rng.usize(..products.len()),
                    };
                    if lines.iter().any(|l| l.product == product) && products.len() > line_count {
                        continue;
                    }
                    lines.push(OrderLine {
                        product,
                        quantity: rng.i64(1..=3),
                        unit_price: products[product].price,
                    });
                }
                let delivery_method = DELIVERY_METHODS[rng.usize(..DELIVERY_METHODS.len())];
                // Orders are spread over the 48 hours before the sandbox starts.
                let minutes_before =
                    ((config.orders - i) as i64) * (48 * 60 / config.orders.max(1) as i64).max(1);
                let customer = match config.repeat_percent {
                    Some(percent) if i > 0 && rng.u8(..100) < percent => rng.usize(..next_customer),
                    Some(_) => {
                        next_customer += 1;
                        next_customer - 1
                    }
                    None => rng.usize(..customers.len()),
                };
                let pickup_point = (delivery_method == "POSTNORD_PICKUP").then(|| {
                    let fallback = 1_000 + rng.u16(0..900);
                    // The customer picked a real PostNord agent near them, as a checkout would
                    // (the nShift simulator knows the same agents).
                    let address = &customers[customer].address;
                    crate::nshift::catalog::agents_near("POSTNORD", &address.country, &address.zip)
                        .into_iter()
                        .next()
                        .map_or_else(|| fallback.to_string(), |agent| agent.id)
                });
                Order {
                    id: 100_001 + i as i64,
                    order_no: format!("NC-{}", 100_001 + i),
                    customer,
                    created: start - Duration::minutes(minutes_before),
                    lines,
                    delivery_method: delivery_method.to_owned(),
                    pickup_point,
                    currency: "SEK".to_owned(),
                }
            })
            .collect();
        Self {
            warehouses,
            products,
            customers,
            orders,
        }
    }

    /// The product with this SKU.
    pub fn product_by_sku(&self, sku: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.sku == sku)
    }
}

/// Lower-case ASCII for e-mail local parts (`Nyström` → `nystrom`).
fn ascii_fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'å' | 'ä' | 'Å' | 'Ä' => 'a',
            'ö' | 'ø' | 'Ö' | 'Ø' => 'o',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let config = DatasetConfig::default();
        assert_eq!(
            Dataset::generate(&config, start()),
            Dataset::generate(&config, start())
        );
        let other = DatasetConfig {
            seed: 7,
            ..config.clone()
        };
        assert_ne!(
            Dataset::generate(&config, start()),
            Dataset::generate(&other, start())
        );
    }

    #[test]
    fn sizes_and_invariants() {
        let config = DatasetConfig {
            seed: 1,
            orders: 100,
            skus: 30,
            warehouses: 3,
            ..DatasetConfig::default()
        };
        let data = Dataset::generate(&config, start());
        assert_eq!(
            (
                data.orders.len(),
                data.products.len(),
                data.warehouses.len()
            ),
            (100, 30, 3)
        );
        let mut emails: Vec<_> = data.customers.iter().map(|c| c.email.clone()).collect();
        emails.sort();
        emails.dedup();
        assert_eq!(emails.len(), data.customers.len(), "e-mails are unique");
        for order in &data.orders {
            assert!(order.created < start());
            assert!(!order.lines.is_empty());
        }
        for customer in &data.customers {
            let zip_len = if matches!(customer.address.country.as_str(), "NO" | "DK") {
                4
            } else {
                5
            };
            assert_eq!(customer.address.zip.len(), zip_len, "{customer:?}");
        }
        assert!(data.orders.windows(2).all(|w| w[0].created <= w[1].created));
    }

    #[test]
    fn repeat_customers_and_best_sellers_follow_their_shares() {
        let config = DatasetConfig {
            orders: 1000,
            skus: 5000,
            repeat_percent: Some(30),
            hot_skus: Some(400),
            ..DatasetConfig::default()
        };
        let data = Dataset::generate(&config, start());
        let mut seen = std::collections::HashSet::new();
        let repeats = data
            .orders
            .iter()
            .filter(|o| !seen.insert(o.customer))
            .count();
        assert!((250..=350).contains(&repeats), "{repeats} repeat orders");
        let lines: Vec<usize> = data
            .orders
            .iter()
            .flat_map(|o| o.lines.iter().map(|l| l.product))
            .collect();
        let hot = lines.iter().filter(|&&p| p < 400).count();
        assert!(
            hot * 10 >= lines.len() * 7,
            "{hot} of {} lines on best sellers",
            lines.len()
        );
    }
}
