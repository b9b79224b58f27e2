//! Norce event webhooks decoded by their event type.
//!
//! Norce's event payloads carry no type field: each event type is configured with its own URL
//! (`/norce/events/{eventType}`), so the type name is known before the body is read. Decoding by
//! that name, rather than by shape, keeps an `OrderReceivedEvent` (which has no `OrderId`) from
//! being taken for another event or for none.

use crate::events::{
    CustomerChangedNotification, JobCompletedEvent, OrderEvent, OrderPaymentReceivedEvent,
    OrderReceivedEvent,
};

/// A Norce event, decoded as its event type says.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// `OrderReceivedEvent`: the basket reference and the buyer only.
    OrderReceived(OrderReceivedEvent),
    /// An order event that names the order (`OrderConfirmedEvent`, `OrderCancelledEvent`,
    /// `OrderDeliveredEvent`, `OrderPartlyDeliveredEvent`, `OrderReadyForPickupEvent`).
    Order(OrderEvent),
    /// `OrderPaymentReceivedEvent`.
    OrderPaymentReceived(OrderPaymentReceivedEvent),
    /// `JobCompletedEvent`.
    JobCompleted(JobCompletedEvent),
    /// `CustomerChangedNotification` or `CompanyChangedNotification`.
    CustomerChanged(CustomerChangedNotification),
    /// Any other event type, kept as JSON.
    Other(serde_json::Value),
}

/// The event types whose body is an [`OrderEvent`].
pub const ORDER_EVENT_TYPES: &[&str] = &[
    "OrderConfirmedEvent",
    "OrderCancelledEvent",
    "OrderDeliveredEvent",
    "OrderPartlyDeliveredEvent",
    "OrderReadyForPickupEvent",
];

/// How an event names its order: always the basket reference, the order id where the event
/// carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRef {
    /// `ClientOrderRef` (the basket id, Query `quotationId`), trimmed; never empty.
    pub client_order_ref: String,
    /// The Norce order id, when the event carries it (not on `OrderReceivedEvent`).
    pub order_id: Option<i64>,
}

impl Event {
    /// Decodes `body` as the payload of `event_type` (the name the webhook URL was configured
    /// with). An event type this crate does not model is kept as JSON; a body that is not the
    /// documented shape of its type is an error naming the field.
    pub fn decode(event_type: &str, body: &[u8]) -> Result<Self, serde_json::Error> {
        Ok(match event_type {
            "OrderReceivedEvent" => Self::OrderReceived(serde_json::from_slice(body)?),
            "OrderPaymentReceivedEvent" => {
                Self::OrderPaymentReceived(serde_json::from_slice(body)?)
            }
            "JobCompletedEvent" => Self::JobCompleted(serde_json::from_slice(body)?),
            "CustomerChangedNotification" | "CompanyChangedNotification" => {
                Self::CustomerChanged(serde_json::from_slice(body)?)
            }
            t if ORDER_EVENT_TYPES.contains(&t) => Self::Order(serde_json::from_slice(body)?),
            _ => Self::Other(serde_json::from_slice(body)?),
        })
    }

    /// The order this event is about, if it is an order event with a basket reference.
    pub fn order_ref(&self) -> Option<OrderRef> {
        let (reference, order_id) = match self {
            Self::OrderReceived(e) => (Some(e.client_order_ref.as_str()), None),
            Self::Order(e) => (Some(e.client_order_ref.as_str()), Some(e.order_id)),
            Self::OrderPaymentReceived(e) => (Some(e.client_order_ref.as_str()), None),
            Self::JobCompleted(_) | Self::CustomerChanged(_) | Self::Other(_) => return None,
        };
        let client_order_ref = reference.map(str::trim).filter(|r| !r.is_empty())?;
        Some(OrderRef {
            client_order_ref: client_order_ref.to_owned(),
            order_id,
        })
    }

    /// A key that is the same for repeat deliveries of the same event, where the payload has
    /// one (`None`: dedupe by the body).
    pub fn dedupe_key(&self) -> Option<String> {
        match self {
            Self::JobCompleted(e) => Some(format!("job-{}", e.job_id)),
            Self::Order(e) => Some(format!("order-{}", e.order_id)),
            Self::OrderReceived(e) => Some(format!("basket-{}", e.client_order_ref.trim())),
            Self::OrderPaymentReceived(e) => e
                .payment_ref
                .as_deref()
                .map(|r| format!("payment-{}-{r}", e.client_order_ref.trim())),
            Self::CustomerChanged(e) => match (e.customer_id, e.company_id) {
                (Some(id), _) => Some(format!("customer-{id}")),
                (None, Some(id)) => Some(format!("company-{id}")),
                (None, None) => None,
            },
            Self::Other(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_order_is_found_by_its_basket_reference() {
        // The documented OrderReceivedEvent: no OrderId, no OrderNo.
        let body = br#"{"ClientId":1000,"ApplicationId":1042,"ClientOrderRef":" 456789 ","Email":"a@example.com","Source":"WEB"}"#;
        let event = Event::decode("OrderReceivedEvent", body).unwrap();
        assert_eq!(
            event.order_ref(),
            Some(OrderRef {
                client_order_ref: "456789".into(),
                order_id: None
            })
        );
        assert_eq!(event.dedupe_key().as_deref(), Some("basket-456789"));
    }

    #[test]
    fn payment_code_is_a_string_and_payment_ref_optional() {
        let body = br#"{"ClientId":1000,"ClientOrderRef":"456789","ErpOrderNo":"E-1","PaymentCode":"KLARNA","Amount":123.45}"#;
        let Event::OrderPaymentReceived(event) =
            Event::decode("OrderPaymentReceivedEvent", body).unwrap()
        else {
            panic!("not a payment event")
        };
        assert_eq!(event.payment_code, "KLARNA");
        assert_eq!(event.payment_ref, None);
        let wrong =
            br#"{"ClientId":1000,"ClientOrderRef":"456789","ErpOrderNo":"E-1","PaymentCode":5}"#;
        assert!(Event::decode("OrderPaymentReceivedEvent", wrong).is_err());
    }

    #[test]
    fn order_events_name_the_order_and_unknown_types_stay_json() {
        let body = br#"{"ClientId":1000,"ApplicationId":1042,"OrderId":77,"OrderNo":"NC-77","ClientOrderRef":"400077","Source":"WEB"}"#;
        let event = Event::decode("OrderConfirmedEvent", body).unwrap();
        assert_eq!(
            event.order_ref(),
            Some(OrderRef {
                client_order_ref: "400077".into(),
                order_id: Some(77)
            })
        );
        let other =
            Event::decode("SkuChangedNotification", br#"{"ClientId":1,"SkuId":5}"#).unwrap();
        assert!(matches!(other, Event::Other(_)));
        assert_eq!(other.order_ref(), None);
        // A received order without its basket reference is refused, naming the field.
        let error = Event::decode(
            "OrderReceivedEvent",
            br#"{"ClientId":1,"ApplicationId":2,"Source":"WEB"}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains("ClientOrderRef"), "{error}");
    }
}
