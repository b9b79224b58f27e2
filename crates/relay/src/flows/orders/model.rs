//! The Norce order as the `orders` flow keeps it: one shape for both sources (Query 3.0 polling
//! and the order receiver's `OrderRequest` push), stored as the entity payload so a replay or a
//! resumed pass needs no Norce read.

use norce_client::models::VatRate;
use norce_client::models::events::{
    ClientCustomer, OrderItemType, OrderItemTypeGroup, OrderRequest, OrderRequestAddress,
};
use norce_client::models::query;
use serde::{Deserialize, Serialize};

use super::amount::Amount;
use crate::config::orders::{OrdersConfig, PushOrderNumber};

/// A Norce order, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NorceOrder {
    /// The Norce order number (`orderNo`): the entity id and Brightpearl's `externalRef`.
    pub order_no: String,
    /// The basket id (`ClientOrderRef`, Query `quotationId`): how `SendOrderStatus` finds the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basket_id: Option<i32>,
    /// ISO 4217 currency code, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// When the order was placed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_on: Option<String>,
    /// The buyer.
    pub customer: Customer,
    /// Where the goods go.
    pub address: Address,
    /// The order lines.
    pub lines: Vec<Line>,
    /// Where the order came from (`query` or `push`), for inspection.
    pub source: String,
}

/// The buyer of an order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Customer {
    /// E-mail address (the contact key in Brightpearl).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Phone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Company name (B2B).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
}

/// A postal address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Address {
    /// Street.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line1: Option<String>,
    /// Second line (care-of, box).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    /// Postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    /// Town.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// ISO 3166 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// What kind of line it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LineKind {
    /// A product, matched by SKU.
    #[default]
    Product,
    /// A fee (freight, invoice fee): always a free-text row, never matched by SKU.
    Fee,
}

/// An order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Line {
    /// Norce line number (kept as the Brightpearl row's `externalRef`).
    pub line_no: i32,
    /// Part number = Brightpearl SKU.
    pub part_no: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Quantity.
    pub quantity: Amount,
    /// Unit price excluding VAT (after line discounts, as Norce sends it).
    pub unit_price: Amount,
    /// VAT rate as a fraction (0.25).
    pub vat_rate: Amount,
    /// Product or fee.
    #[serde(default)]
    pub kind: LineKind,
}

/// Why a Norce order cannot be taken.
pub(crate) type Problem = String;

fn text(value: Option<&String>) -> Option<String> {
    value
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn decimal(value: Option<&impl std::fmt::Display>) -> Option<Amount> {
    value.and_then(|v| Amount::parse(&v.to_string()))
}

/// A VAT rate as a fraction (0.25). Each model field says which form it carries (Query and
/// Connect percent, Storm Services multiplier); the conversion is the models' own.
fn vat_fraction(rate: Option<&impl VatRate>) -> Amount {
    rate.and_then(|r| Amount::parse(&r.fraction().to_string()))
        .unwrap_or(Amount::ZERO)
}

/// The buyer's e-mail of a Query order (the ship-to's when the buyer has none).
pub(crate) fn query_email(order: &query::Order) -> Option<String> {
    [&order.buyer_customer_info, &order.ship_to_customer_info]
        .into_iter()
        .flatten()
        .find_map(|c| text(c.email_address.as_ref()))
}

impl NorceOrder {
    /// From a Query 3.0 order expanded with its lines (`orderItem`) and its ship-to and buyer
    /// customer infos.
    pub(crate) fn from_query(order: &query::Order, config: &OrdersConfig) -> Result<Self, Problem> {
        let order_no = text(Some(&order.order_no))
            .ok_or_else(|| format!("Norce order id {} has no orderNo", order.id))?;
        // Ship-to for the address, the buyer when the order has no separate ship-to.
        let address = order
            .ship_to_customer_info
            .as_ref()
            .or(order.buyer_customer_info.as_ref());
        let buyer = order.buyer_customer_info.as_ref().or(address);
        let country = match address.and_then(|a| a.country_id) {
            Some(id) => Some(config.country_codes.get(&id.to_string()).cloned().ok_or_else(|| {
                format!("Norce country id {id} of order {order_no} has no ISO code: add it to `orders.country_codes` (e.g. \"{id}\" = \"SE\")")
            })?),
            None => None,
        };
        let currency = order
            .currency_id
            .and_then(|id| config.currency_codes.get(&id.to_string()).cloned());
        let mut lines = Vec::new();
        for item in order.order_item.as_deref().unwrap_or_default() {
            // Query writes line numbers as decimals; Norce's are whole numbers.
            let line_no = match item.line_number.as_ref() {
                None => 0,
                Some(n) => {
                    n.0.fract()
                        .is_zero()
                        .then(|| i32::try_from(n.0).ok())
                        .flatten()
                        .ok_or_else(|| {
                            format!("line number {n} of order {order_no} is not a whole number")
                        })?
                }
            };
            let part_no = text(item.part_no.as_ref())
                .ok_or_else(|| format!("line {line_no} of order {order_no} has no partNo"))?;
            let quantity = decimal(item.qty_ordered.as_ref()).ok_or_else(|| {
                format!("line {line_no} ({part_no}) of order {order_no} has no qtyOrdered")
            })?;
            lines.push(Line {
                line_no,
                part_no,
                name: text(item.product_name.as_ref()),
                quantity,
                unit_price: decimal(item.price_sale.as_ref()).unwrap_or_default(),
                vat_rate: vat_fraction(item.vat_rate.as_ref()),
                kind: LineKind::Product,
            });
        }
        if let Some(freight) = decimal(order.freight_cost.as_ref()).filter(|f| f.is_positive()) {
            // Query carries freight on the order, not as a line; VAT as on the products.
            let vat = lines.first().map_or(Amount::ZERO, |l| l.vat_rate);
            lines.push(fee_line(&lines, "Freight", freight, vat));
        }
        Ok(NorceOrder {
            order_no,
            basket_id: order.quotation_id,
            currency,
            placed_on: order
                .order_date
                .as_ref()
                .or(order.created.as_ref())
                .map(|t| t.to_rfc3339()),
            customer: Customer {
                email: query_email(order),
                first_name: buyer.and_then(|b| text(b.first_name.as_ref())),
                last_name: buyer.and_then(|b| text(b.last_name.as_ref())),
                phone: [buyer, address].into_iter().flatten().find_map(|c| {
                    text(c.cell_phone_number.as_ref())
                        .or_else(|| text(c.phone_number.as_ref()))
                        .or_else(|| text(c.shipping_phone_number.as_ref()))
                }),
                company: buyer.and_then(|b| text(b.company_name.as_ref())),
            },
            address: Address {
                line1: address.and_then(|a| text(a.address_line1.as_ref())),
                line2: address.and_then(|a| {
                    text(a.address_line2.as_ref()).or_else(|| text(a.care_of.as_ref()))
                }),
                zip: address.and_then(|a| text(a.zip_code.as_ref())),
                city: address.and_then(|a| text(a.city.as_ref())),
                region: address.and_then(|a| text(a.region.as_ref())),
                country,
            },
            lines,
            source: "query".into(),
        })
    }

    /// From an `OrderRequest` pushed to the order receiver.
    pub(crate) fn from_push(
        request: &OrderRequest,
        config: &OrdersConfig,
    ) -> Result<Self, Problem> {
        let order_no = push_order_number(request, config.push_order_number)
            .ok_or("the pushed OrderRequest has neither CustomerOrderRef nor ClientOrderRef")?;
        let party = |c: Option<&ClientCustomer>| c.and_then(|c| c.person.clone());
        let buyer = party(request.sell_to.as_ref()).or_else(|| party(request.bill_to.as_ref()));
        let receiver = party(request.ship_to.as_ref()).or_else(|| buyer.clone());
        let company = [&request.sell_to, &request.bill_to]
            .into_iter()
            .flatten()
            .find_map(|c| c.company.as_ref().and_then(|co| text(co.name.as_ref())));
        let email = [&buyer, &receiver]
            .into_iter()
            .flatten()
            .find_map(|p| text(p.email.as_ref()));
        let address: OrderRequestAddress = receiver
            .as_ref()
            .and_then(|p| p.address.clone())
            .unwrap_or_default();
        let mut lines = Vec::new();
        for item in request.items.as_deref().unwrap_or_default() {
            let part_no = text(Some(&item.part_no)).ok_or_else(|| {
                format!("line {} of order {order_no} has no PartNo", item.line_no)
            })?;
            let quantity = decimal(item.quantity2.as_ref())
                .or_else(|| item.quantity.map(|q| Amount::from_int(i64::from(q))))
                .ok_or_else(|| {
                    format!(
                        "line {} ({part_no}) of order {order_no} has no Quantity",
                        item.line_no
                    )
                })?;
            let fee = matches!(
                item.type_group,
                Some(OrderItemTypeGroup::Fee | OrderItemTypeGroup::AddedFee)
            ) || matches!(
                item.type_,
                Some(OrderItemType::Freight | OrderItemType::Invoice)
            );
            lines.push(Line {
                line_no: item.line_no,
                part_no,
                name: text(item.description.as_ref()),
                quantity,
                unit_price: decimal(item.unit_price.as_ref()).unwrap_or_default(),
                vat_rate: vat_fraction(item.vat_rate.as_ref()),
                kind: if fee {
                    LineKind::Fee
                } else {
                    LineKind::Product
                },
            });
        }
        for fee in request.fees.as_deref().unwrap_or_default() {
            // Fee amounts are taken as excluding VAT, like UnitPrice on the lines.
            if let Some(amount) = decimal(fee.amount.as_ref()).filter(|a| a.is_positive()) {
                let name = text(fee.description.as_ref()).unwrap_or_else(|| {
                    if fee.type_ == Some(1) {
                        "Invoice fee".into()
                    } else {
                        "Shipping".into()
                    }
                });
                let line = fee_line(&lines, &name, amount, vat_fraction(fee.vat_rate.as_ref()));
                lines.push(line);
            }
        }
        Ok(NorceOrder {
            basket_id: request.client_order_ref.trim().parse().ok(),
            currency: text(request.currency_code.as_ref()),
            placed_on: request.submit_date.as_ref().map(|t| t.to_rfc3339()),
            customer: Customer {
                email,
                first_name: buyer.as_ref().and_then(|p| text(p.first_name.as_ref())),
                last_name: buyer.as_ref().and_then(|p| text(p.last_name.as_ref())),
                phone: [&buyer, &receiver].into_iter().flatten().find_map(|p| {
                    text(p.cell_phone.as_ref())
                        .or_else(|| text(p.private_phone.as_ref()))
                        .or_else(|| text(p.work_phone.as_ref()))
                }),
                company,
            },
            address: Address {
                line1: text(address.line1.as_ref()),
                line2: text(address.line2.as_ref()).or_else(|| text(address.care_of.as_ref())),
                zip: text(address.zip_code.as_ref()),
                city: text(address.city.as_ref()),
                region: text(address.region.as_ref()),
                country: text(address.country.as_ref()).map(|c| c.to_ascii_uppercase()),
            },
            lines,
            order_no,
            source: "push".into(),
        })
    }
}

/// A fee line numbered after the last line.
fn fee_line(lines: &[Line], name: &str, amount: Amount, vat_rate: Amount) -> Line {
    Line {
        line_no: lines.iter().map(|l| l.line_no).max().unwrap_or(0) + 1,
        part_no: name.to_owned(),
        name: Some(name.to_owned()),
        quantity: Amount::ONE,
        unit_price: amount,
        vat_rate,
        kind: LineKind::Fee,
    }
}

/// The Norce order number of a push, as `orders.push_order_number` says.
pub(crate) fn push_order_number(request: &OrderRequest, which: PushOrderNumber) -> Option<String> {
    let client = text(Some(&request.client_order_ref));
    match which {
        PushOrderNumber::CustomerOrderRef => text(request.customer_order_ref.as_ref()).or(client),
        PushOrderNumber::ClientOrderRef => client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push() -> OrderRequest {
        serde_json::from_value(serde_json::json!({
            "ClientOrderRef": "400001",
            "CustomerOrderRef": "NC-100001",
            "CurrencyCode": "SEK",
            "SellTo": {"Person": {"FirstName": "Anna", "LastName": "Svensson", "Email": "anna@example.com", "CellPhone": "+46 70 1"}},
            "ShipTo": {"Person": {"FirstName": "Anna", "LastName": "Svensson", "Address": {"Line1": "Storgatan 1", "ZipCode": "11151", "City": "Stockholm", "Country": "se"}}},
            "Items": [
                {"LineNo": 1, "PartNo": "SKU-00001", "Description": "Mug", "Quantity": 2, "UnitPrice": 79.992, "VatRate": 25},
                {"LineNo": 2, "PartNo": "FREIGHT", "Quantity": 1, "UnitPrice": 39, "VatRate": 12, "TypeGroup": "Fee"}
            ],
            "Fees": [{"Amount": 19, "Type": 1, "VatRate": 25}]
        }))
        .unwrap()
    }

    #[test]
    fn a_push_is_normalised() {
        let order = NorceOrder::from_push(&push(), &OrdersConfig::default()).unwrap();
        assert_eq!(order.order_no, "NC-100001");
        assert_eq!(order.basket_id, Some(400_001));
        assert_eq!(order.customer.email.as_deref(), Some("anna@example.com"));
        assert_eq!(order.address.country.as_deref(), Some("SE"));
        assert_eq!(order.lines.len(), 3);
        assert_eq!(
            (
                order.lines[0].quantity.to_string(),
                order.lines[0].unit_price.to_string()
            ),
            ("2".into(), "79.992".into())
        );
        assert_eq!(order.lines[1].kind, LineKind::Fee);
        // Connect's VatRate is percent: 25 is 25 %, 12 is 12 %.
        assert_eq!(order.lines[0].vat_rate.to_string(), "0.25");
        assert_eq!(order.lines[1].vat_rate.to_string(), "0.12");
        assert_eq!(order.lines[2].vat_rate.to_string(), "0.25");
        assert_eq!(
            (order.lines[2].line_no, order.lines[2].name.as_deref()),
            (3, Some("Invoice fee"))
        );
        // The payload round-trips.
        let text = serde_json::to_string(&order).unwrap();
        assert_eq!(serde_json::from_str::<NorceOrder>(&text).unwrap(), order);
    }

    #[test]
    fn the_push_order_number_is_configurable() {
        let mut request = push();
        assert_eq!(
            push_order_number(&request, PushOrderNumber::ClientOrderRef).as_deref(),
            Some("400001")
        );
        request.customer_order_ref = Some("  ".into());
        assert_eq!(
            push_order_number(&request, PushOrderNumber::CustomerOrderRef).as_deref(),
            Some("400001")
        );
    }

    #[test]
    fn a_query_vat_rate_is_percent() {
        // Query 3.0 documents vatRate "in percent": 25 is a 25 % row, not 2,400 %.
        let order: query::Order = serde_json::from_value(serde_json::json!({
            "id": 1, "orderNo": "NC-1",
            "orderItem": [{"lineNumber": 1, "partNo": "SKU-1", "qtyOrdered": 1, "priceSale": 100, "vatRate": 25},
                      {"lineNumber": 2.0, "partNo": "SKU-2", "qtyOrdered": 1, "priceSale": 100, "vatRate": 1}]
        }))
        .unwrap();
        let order = NorceOrder::from_query(&order, &OrdersConfig::default()).unwrap();
        assert_eq!(order.lines[0].vat_rate.to_string(), "0.25");
        assert_eq!(
            order.lines[1].vat_rate.to_string(),
            "0.01",
            "1 is 1 %, never read as a multiplier"
        );
    }

    #[test]
    fn a_query_order_with_an_unknown_country_names_the_setting() {
        let order: query::Order = serde_json::from_value(serde_json::json!({
            "id": 1, "orderNo": "NC-1", "shipToCustomerInfo": {"firstName": "Anna", "lastName": "Svensson", "countryId": 99, "emailAddress": "a@x.se"}
        }))
        .unwrap();
        let err = NorceOrder::from_query(&order, &OrdersConfig::default()).unwrap_err();
        assert!(
            err.contains("orders.country_codes") && err.contains("99"),
            "{err}"
        );
    }

    #[test]
    fn a_query_order_reads_its_customer_infos() {
        // Query 3.0 keeps guest customer data in CustomerInfo rows: ship-to for the address,
        // the buyer for the contact.
        let order: query::Order = serde_json::from_value(serde_json::json!({
            "id": 1, "orderNo": "NC-1",
            "buyerCustomerInfo": {"firstName": "Anna", "lastName": "Svensson", "emailAddress": "anna@example.com", "cellPhoneNumber": "+46 70 1", "companyName": "Acme"},
            "shipToCustomerInfo": {"firstName": "Bo", "lastName": "Ek", "addressLine1": "Storgatan 1", "careOf": "c/o Ek", "zipCode": "11151", "city": "Stockholm", "countryId": 1},
            "orderItem": [{"lineNumber": 1.5, "partNo": "SKU-1", "qtyOrdered": 1, "priceSale": 100, "vatRate": 25}]
        }))
        .unwrap();
        let config = OrdersConfig {
            country_codes: [("1".to_owned(), "SE".to_owned())].into(),
            ..OrdersConfig::default()
        };
        // A fractional line number cannot be a Norce line: refused, naming it.
        assert!(
            NorceOrder::from_query(&order, &config)
                .unwrap_err()
                .contains("1.5")
        );
        let mut order = order;
        order.order_item = None;
        let order = NorceOrder::from_query(&order, &config).unwrap();
        assert_eq!(order.customer.email.as_deref(), Some("anna@example.com"));
        assert_eq!(
            (
                order.customer.first_name.as_deref(),
                order.customer.company.as_deref()
            ),
            (Some("Anna"), Some("Acme"))
        );
        assert_eq!(order.customer.phone.as_deref(), Some("+46 70 1"));
        assert_eq!(
            (
                order.address.line1.as_deref(),
                order.address.line2.as_deref()
            ),
            (Some("Storgatan 1"), Some("c/o Ek"))
        );
        assert_eq!(
            (
                order.address.zip.as_deref(),
                order.address.country.as_deref()
            ),
            (Some("11151"), Some("SE"))
        );
    }
}
