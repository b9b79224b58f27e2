//! The shipping entity's payload: the order's shipping data, normalised from a Norce push
//! (`OrderRequest`) or from `GetOrder`, and what the flow has done with it.

use std::collections::BTreeMap;

use norce_client::models::events::{ClientCustomer, OrderRequest, OrderRequestAddress};
use norce_client::models::services::{CustomerData, Order};
use serde::{Deserialize, Serialize};

use crate::flows::context::FlowError;
use crate::state::StateError;

/// Where the entity's shipping data comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Origin {
    /// Norce's order receiver push: the pushed data is used.
    Push,
    /// Query polling (or a re-read): `GetOrder` is used.
    #[default]
    Poll,
}

/// The payload of a shipping entity (JSON in the store).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ShippingItem {
    /// Norce basket id (`ClientOrderRef`, Query `quotationId`): the entity's source id.
    pub client_order_ref: String,
    /// Norce's internal order id.
    pub order_id: Option<String>,
    /// Norce order number (`NC-100001`): nShift's `orderNo`, label names.
    pub order_no: Option<String>,
    /// The ERP order number, when the order has one (the delivery note's `OrderNo`).
    pub erp_order_no: Option<String>,
    /// Push or poll.
    pub origin: Origin,
    /// The shipping data.
    pub order: Option<OrderData>,
    /// Why the order was skipped.
    pub skipped: Option<String>,
    /// The booking.
    pub shipment: Option<BookedShipment>,
    /// Label files written.
    pub labels: Vec<String>,
    /// Why labels are missing (documents expired before they were saved).
    pub labels_missing: Option<String>,
    /// The delivery note number.
    pub note_no: Option<String>,
    /// The Norce order status sent.
    pub order_status_sent: Option<String>,
    /// Parcel number → latest tracking status.
    pub tracking: BTreeMap<String, ParcelTracking>,
    /// A parcel's Norce status changed after the delivery note was written: the note is sent
    /// again with the new statuses (`shipping.parcel_status = "update_delivery_note"`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub parcel_status_unsent: bool,
    /// The return shipment, booked with the outbound one or on demand (`relay return`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_shipment: Option<ReturnShipment>,
}

/// A return shipment booked for the order, as recorded on the shipping entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ReturnShipment {
    /// How it was booked: `with_outbound` (one booking with the outbound shipment) or
    /// `on_demand` (its own booking, `relay return` or the console).
    pub booked_with: String,
    /// The nShift `orderNo` its booking is keyed on (`book_once`).
    pub order_no: String,
    /// nShift shipment ids of the return shipment.
    pub shipment_ids: Vec<String>,
    /// The stored shipment that was printed.
    pub stored_id: Option<String>,
    /// The return parcels' carrier numbers.
    pub parcel_numbers: Vec<String>,
    /// Service code of the return.
    pub service_id: String,
    /// When nShift printed it (RFC 3339).
    pub printed_at: Option<String>,
    /// Whether the booking was found already printed (a resumed attempt).
    pub already_booked: bool,
    /// Return label files written.
    pub labels: Vec<String>,
    /// Why return labels are missing (documents expired before they were saved).
    pub labels_missing: Option<String>,
}

/// What a shipment needs from the order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct OrderData {
    /// Norce delivery method code.
    pub delivery_method: Option<String>,
    /// The pickup point (drop point) the customer chose.
    pub pickup_point: Option<String>,
    /// `false` when the customer declined SMS notices.
    pub sms_notify: Option<bool>,
    /// The receiver: delivery address, billing address as fallback.
    pub receiver: Receiver,
    /// Physical lines to ship.
    pub lines: Vec<Line>,
    /// Whether physical lines were left off (→ PartlyDelivered).
    pub lines_left_out: bool,
}

/// The shipment's receiver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Receiver {
    pub name: Option<String>,
    pub contact: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub zip: Option<String>,
    pub city: Option<String>,
    /// ISO alpha-2.
    pub country: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
}

/// One order line to ship.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Line {
    pub row_number: Option<i64>,
    pub part_no: String,
    pub description: Option<String>,
    /// Decimal quantity as text (exact, as Norce gave it).
    pub quantity: String,
}

/// The nShift booking as recorded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct BookedShipment {
    /// nShift shipment ids (normally one).
    pub shipment_ids: Vec<String>,
    /// The stored shipment that was printed.
    pub stored_id: Option<String>,
    /// Carrier parcel (tracking) numbers.
    pub parcel_numbers: Vec<String>,
    /// Service code booked.
    pub service_id: String,
    /// The pickup point used, if any.
    pub agent_id: Option<String>,
    /// When nShift printed it (RFC 3339).
    pub printed_at: Option<String>,
    /// Whether the booking was found already printed (a resumed run).
    pub already_booked: bool,
}

/// A parcel's latest tracking status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ParcelTracking {
    /// nShift status, e.g. `DELIVERED`.
    pub nshift_status: String,
    /// The Norce parcel status it maps to (4 Delivered, 6 Canceled, 11 Ready for pickup).
    pub norce_status_id: Option<i32>,
    /// When it happened (RFC 3339).
    pub at: Option<String>,
}

fn blank_to_none(value: Option<&String>) -> Option<String> {
    value.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn join_name(first: Option<&String>, last: Option<&String>) -> Option<String> {
    let name = [first, last]
        .into_iter()
        .flatten()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

/// ISO alpha-3 → alpha-2 for the countries a Nordic shop ships to; alpha-2 passes through.
pub(crate) fn country_alpha2(code: &str) -> Option<String> {
    const TABLE: &[(&str, &str)] = &[
        ("SWE", "SE"),
        ("NOR", "NO"),
        ("DNK", "DK"),
        ("FIN", "FI"),
        ("ISL", "IS"),
        ("DEU", "DE"),
        ("EST", "EE"),
        ("LVA", "LV"),
        ("LTU", "LT"),
        ("POL", "PL"),
        ("NLD", "NL"),
        ("BEL", "BE"),
        ("LUX", "LU"),
        ("FRA", "FR"),
        ("ESP", "ES"),
        ("PRT", "PT"),
        ("ITA", "IT"),
        ("AUT", "AT"),
        ("CHE", "CH"),
        ("CZE", "CZ"),
        ("IRL", "IE"),
        ("GBR", "GB"),
        ("USA", "US"),
        ("ALA", "AX"),
        ("FRO", "FO"),
        ("GRL", "GL"),
    ];
    let code = code.trim();
    match code.len() {
        2 if code.chars().all(|c| c.is_ascii_alphabetic()) => Some(code.to_ascii_uppercase()),
        3 => TABLE
            .iter()
            .find(|(a3, _)| a3.eq_ignore_ascii_case(code))
            .map(|(_, a2)| (*a2).to_owned()),
        _ => None,
    }
}

fn address_is_usable(address: &OrderRequestAddress) -> bool {
    address
        .line1
        .as_deref()
        .is_some_and(|l| !l.trim().is_empty())
        || address
            .zip_code
            .as_deref()
            .is_some_and(|z| !z.trim().is_empty())
}

/// The receiver from a push role (ship-to), with the billing role as fallback per field group.
fn receiver_from_push(
    ship_to: Option<&ClientCustomer>,
    bill_to: Option<&ClientCustomer>,
) -> Receiver {
    let person = |c: Option<&ClientCustomer>| c.and_then(|c| c.person.clone());
    let company = |c: Option<&ClientCustomer>| c.and_then(|c| c.company.clone());
    let ship_person = person(ship_to);
    let bill_person = person(bill_to);
    let address = ship_person
        .as_ref()
        .and_then(|p| p.address.clone())
        .filter(address_is_usable)
        .or_else(|| {
            bill_person
                .as_ref()
                .and_then(|p| p.address.clone())
                .filter(address_is_usable)
        })
        .unwrap_or_default();
    let who = ship_person
        .clone()
        .or(bill_person.clone())
        .unwrap_or_default();
    let contact = join_name(who.first_name.as_ref(), who.last_name.as_ref());
    let company_name = company(ship_to).and_then(|c| blank_to_none(c.name.as_ref()));
    let mobile = blank_to_none(who.cell_phone.as_ref())
        .or_else(|| blank_to_none(address.shipping_phone_number.as_ref()));
    Receiver {
        name: company_name.or_else(|| contact.clone()),
        contact,
        line1: blank_to_none(address.line1.as_ref()),
        line2: blank_to_none(address.line2.as_ref())
            .or_else(|| blank_to_none(address.care_of.as_ref()).map(|c| format!("c/o {c}"))),
        zip: blank_to_none(address.zip_code.as_ref()),
        city: blank_to_none(address.city.as_ref()),
        country: address
            .country
            .as_deref()
            .and_then(country_alpha2)
            .or_else(|| blank_to_none(address.country.as_ref())),
        phone: blank_to_none(address.shipping_phone_number.as_ref())
            .or_else(|| blank_to_none(who.private_phone.as_ref()))
            .or_else(|| blank_to_none(who.work_phone.as_ref()))
            .or_else(|| mobile.clone()),
        mobile,
        email: blank_to_none(who.email.as_ref())
            .or_else(|| bill_person.and_then(|p| blank_to_none(p.email.as_ref()))),
    }
}

fn role_is_usable(role: &CustomerData) -> bool {
    role.address.as_ref().is_some_and(|a| {
        a.line1.as_deref().is_some_and(|l| !l.trim().is_empty())
            || a.zip_code.as_deref().is_some_and(|z| !z.trim().is_empty())
    })
}

/// The receiver from `GetOrder`'s ship-to, billing as fallback.
fn receiver_from_order(order: &Order) -> Result<Receiver, String> {
    let role = order
        .ship_to
        .as_ref()
        .filter(|r| role_is_usable(r))
        .or(order.bill_to.as_ref().filter(|r| role_is_usable(r)))
        .ok_or_else(|| "the Norce order has neither a delivery nor a billing address".to_owned())?;
    let address = role.address.clone().unwrap_or_default();
    let customer = role
        .customer
        .clone()
        .or_else(|| order.bill_to.as_ref().and_then(|b| b.customer.clone()))
        .unwrap_or_default();
    let contact = join_name(customer.first_name.as_ref(), customer.last_name.as_ref());
    let company = role
        .company
        .as_ref()
        .and_then(|c| blank_to_none(c.name.as_ref()));
    let country = match address.country_code.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(code) => Some(country_alpha2(code).ok_or_else(|| format!("the Norce order's country code `{code}` is not one relay knows; use ISO alpha-2 or alpha-3"))?),
        None => None,
    };
    let mobile = blank_to_none(customer.cell_phone.as_ref())
        .or_else(|| blank_to_none(address.shipping_phone_number.as_ref()));
    Ok(Receiver {
        name: company.or_else(|| contact.clone()),
        contact,
        line1: blank_to_none(address.line1.as_ref()),
        line2: blank_to_none(address.line2.as_ref())
            .or_else(|| blank_to_none(address.care_of.as_ref()).map(|c| format!("c/o {c}"))),
        zip: blank_to_none(address.zip_code.as_ref()),
        city: blank_to_none(address.city.as_ref()),
        country,
        phone: blank_to_none(address.shipping_phone_number.as_ref())
            .or_else(|| blank_to_none(customer.phone.as_ref()))
            .or_else(|| mobile.clone()),
        mobile,
        email: blank_to_none(customer.email.as_ref()),
    })
}

/// A payload that would not serialise, as the state error it is (it cannot be stored). Shared
/// by every shipping payload (items, cancellations, returns).
pub(crate) fn storage_error(e: serde_json::Error) -> FlowError {
    FlowError::State(StateError::Sqlite(rusqlite::Error::ToSqlConversionFailure(
        Box::new(e),
    )))
}

impl ShippingItem {
    /// A polled order: only its ids until `GetOrder` is read.
    pub(crate) fn polled(
        client_order_ref: &str,
        order_id: Option<i64>,
        order_no: Option<String>,
    ) -> Self {
        Self {
            client_order_ref: client_order_ref.to_owned(),
            order_id: order_id.map(|id| id.to_string()),
            order_no,
            origin: Origin::Poll,
            ..Self::default()
        }
    }

    /// A pushed order with its shipping data.
    pub(crate) fn from_push(request: &OrderRequest) -> Self {
        let advice = request.shipping_advice.clone().unwrap_or_default();
        let mut lines = Vec::new();
        let mut left_out = false;
        for item in request.items.iter().flatten() {
            let group = item
                .type_group
                .as_ref()
                .map(|g| g.as_str().to_owned())
                .unwrap_or_default();
            // Fees, services and virtual goods are not shipped.
            if matches!(group.as_str(), "Virtual" | "Fee" | "Service" | "AddedFee")
                || item.part_no.trim().is_empty()
            {
                continue;
            }
            let quantity = item
                .quantity2
                .map(|q| q.to_string())
                .or_else(|| item.quantity.map(|q| q.to_string()))
                .unwrap_or_default();
            if quantity.parse::<f64>().map_or(true, |q| q <= 0.0) {
                left_out = true;
                continue;
            }
            lines.push(Line {
                row_number: Some(i64::from(item.line_no)),
                part_no: item.part_no.clone(),
                description: item.description.clone(),
                quantity,
            });
        }
        let data = OrderData {
            delivery_method: blank_to_none(advice.delivery_method_code.as_ref()),
            pickup_point: advice
                .pickup_store
                .as_ref()
                .and_then(|p| blank_to_none(p.code.as_ref())),
            sms_notify: advice.do_sms_notify,
            receiver: receiver_from_push(request.ship_to.as_ref(), request.bill_to.as_ref()),
            lines,
            lines_left_out: left_out,
        };
        Self {
            client_order_ref: request.client_order_ref.trim().to_owned(),
            erp_order_no: blank_to_none(request.erp_order_no.as_ref()),
            origin: Origin::Push,
            order: Some(data),
            ..Self::default()
        }
    }

    /// Takes the order number and ERP number from `GetOrder`, and the shipping data too unless
    /// the order was pushed.
    pub(crate) fn apply_norce_order(&mut self, order: &Order) -> Result<(), String> {
        let order_no = blank_to_none(order.order_no.as_ref())
            .ok_or_else(|| format!("Norce order {} has no order number", order.id))?;
        self.order_no = Some(order_no);
        let erp = order
            .info
            .iter()
            .flatten()
            .find(|i| {
                i.code
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case("ErpOrderNo"))
            })
            .and_then(|i| blank_to_none(i.value.as_ref()));
        if erp.is_some() {
            self.erp_order_no = erp;
        }
        if self.origin == Origin::Push && self.order.is_some() {
            return Ok(());
        }
        let mut lines = Vec::new();
        let mut left_out = false;
        for item in order.items.iter().flatten() {
            let Some(part_no) = blank_to_none(item.part_no.as_ref()) else {
                continue;
            };
            let quantity = item.qty_ordered.map(|q| q.to_string()).unwrap_or_default();
            if quantity.parse::<f64>().map_or(true, |q| q <= 0.0) {
                left_out = true;
                continue;
            }
            lines.push(Line {
                row_number: item
                    .row_number
                    .and_then(|r| r.to_string().parse::<f64>().ok())
                    .map(|r| r as i64),
                part_no,
                description: item.name.clone(),
                quantity,
            });
        }
        self.order = Some(OrderData {
            delivery_method: blank_to_none(order.delivery_method.as_ref()),
            pickup_point: order
                .drop_point
                .as_ref()
                .and_then(|d| blank_to_none(d.drop_point_code.as_ref())),
            sms_notify: None,
            receiver: receiver_from_order(order)?,
            lines,
            lines_left_out: left_out,
        });
        Ok(())
    }

    /// The payload as stored.
    pub(crate) fn to_json(&self) -> Result<String, FlowError> {
        serde_json::to_string(self).map_err(storage_error)
    }

    /// Reads a stored payload.
    pub(crate) fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_become_alpha2() {
        assert_eq!(country_alpha2("SWE").as_deref(), Some("SE"));
        assert_eq!(country_alpha2("no").as_deref(), Some("NO"));
        assert_eq!(country_alpha2("Sweden"), None);
        assert_eq!(country_alpha2("XYZ"), None);
    }

    #[test]
    fn push_receiver_falls_back_to_billing_and_fees_are_not_shipped() {
        let request: OrderRequest = serde_json::from_value(serde_json::json!({
            "ClientOrderRef": "400001",
            "ShippingAdvice": {"DeliveryMethodCode": "POSTNORD_PICKUP", "PickupStore": {"Code": "1234"}, "DoSMSNotify": false},
            "ShipTo": {"Person": {"FirstName": "Nils", "LastName": "Holm", "CellPhone": "+46 70 1"}},
            "BillTo": {"Person": {"FirstName": "Nils", "LastName": "Holm", "Email": "n@example.com",
                "Address": {"Line1": "Storgatan 1", "ZipCode": "11122", "City": "Stockholm", "Country": "SE"}}},
            "Items": [
                {"LineNo": 1, "PartNo": "SKU-1", "Quantity": 2, "TypeGroup": "Physical"},
                {"LineNo": 2, "PartNo": "FREIGHT", "Quantity": 1, "TypeGroup": "Fee"}
            ]
        }))
        .unwrap();
        let item = ShippingItem::from_push(&request);
        let data = item.order.unwrap();
        assert_eq!(data.receiver.line1.as_deref(), Some("Storgatan 1"));
        assert_eq!(data.receiver.name.as_deref(), Some("Nils Holm"));
        assert_eq!(data.receiver.mobile.as_deref(), Some("+46 70 1"));
        assert_eq!(data.receiver.email.as_deref(), Some("n@example.com"));
        assert_eq!(
            (data.pickup_point.as_deref(), data.sms_notify),
            (Some("1234"), Some(false))
        );
        assert_eq!(data.lines.len(), 1);
        assert!(!data.lines_left_out);
        assert_eq!(item.origin, Origin::Push);
    }
}
