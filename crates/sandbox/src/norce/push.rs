//! What Norce pushes: new orders to the order receiver (Basic auth, `OrderRequest`) and event
//! webhooks (static headers), each retried on non-2xx with Norce's backoff schedule.

use std::time::Duration;

use models_runtime::{Decimal, Timestamp};
use norce_models::events::{
    ClientCustomer, JobCompletedEvent, OrderEvent, OrderItemType, OrderItemTypeGroup,
    OrderReceivedEvent, OrderRequest, OrderRequestAddress, OrderRequestHeader, OrderRequestItem,
    OrderRequestPerson, OrderResponse, OrderResponseStatusCode, Payment, PickupStore,
    ShippingAdvice,
};
use serde_json::Value;

use super::model::{self, AttemptRec, OrderRec, PushRec};
use crate::state::SharedState;

/// Where and how one push goes.
struct Target {
    url: String,
    headers: Vec<(String, String)>,
    basic: Option<(String, String)>,
    order_receiver: bool,
}

fn record(
    state: &SharedState,
    kind: &'static str,
    event_type: Option<&str>,
    target: &Target,
    payload: &Value,
) -> u64 {
    let mut inner = state.norce.lock();
    let id = inner.pushes.len() as u64 + 1;
    inner.pushes.push(PushRec {
        id,
        kind,
        event_type: event_type.map(str::to_owned),
        url: target.url.clone(),
        header_names: target
            .headers
            .iter()
            .map(|(k, _)| k.clone())
            .chain(target.basic.as_ref().map(|_| "Authorization".to_owned()))
            .collect(),
        payload: payload.clone(),
        created: state.clock.now(),
        attempts: Vec::new(),
        state: "pending",
    });
    id
}

fn spawn(
    state: &SharedState,
    kind: &'static str,
    event_type: Option<&str>,
    target: Target,
    payload: Value,
) {
    let id = record(state, kind, event_type, &target, &payload);
    let state = state.clone();
    tokio::spawn(async move { deliver(state, id, target, payload).await });
}

async fn deliver(state: SharedState, id: u64, target: Target, payload: Value) {
    let config = state.norce.config();
    let schedule = config.retry_schedule_secs.clone();
    let factor = if config.push_time_factor.is_finite() && config.push_time_factor >= 0.0 {
        config.push_time_factor
    } else {
        1.0
    };
    let timeout = Duration::from_millis(config.push_timeout_ms.max(1));
    for attempt in 0..=schedule.len() {
        let mut request = state.http.post(&target.url).timeout(timeout).json(&payload);
        for (name, value) in &target.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some((user, password)) = &target.basic {
            request = request.basic_auth(user, Some(password));
        }
        let (status, error, erp_order_no) = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if !status.is_success() {
                    (
                        Some(status.as_u16()),
                        Some(format!("HTTP {}", status.as_u16())),
                        None,
                    )
                } else if target.order_receiver {
                    match serde_json::from_str::<OrderResponse>(&text) {
                        Ok(r) if r.status_code == OrderResponseStatusCode::Failed => (
                            Some(status.as_u16()),
                            Some(format!(
                                "StatusCode Failed: {}",
                                r.description.unwrap_or_default()
                            )),
                            None,
                        ),
                        Ok(r) => (
                            Some(status.as_u16()),
                            None,
                            r.erp_order_no
                                .filter(|n| r.has_erp_order_no == Some(true) && !n.is_empty()),
                        ),
                        Err(_) => (Some(status.as_u16()), None, None),
                    }
                } else {
                    (Some(status.as_u16()), None, None)
                }
            }
            Err(e) => (
                None,
                Some(if e.is_timeout() {
                    "timeout".to_owned()
                } else {
                    "connection failed".to_owned()
                }),
                None,
            ),
        };
        let ok = error.is_none();
        let dead = !ok && attempt == schedule.len();
        tracing::debug!(push = id, url = %models_runtime::redact::redact_url(&target.url), ?status, ok, "norce push attempt");
        {
            let now = state.clock.now();
            let mut inner = state.norce.lock();
            let mut order_id = None;
            // Push ids are positions from 1 in the never-shrinking list (see `record`).
            let index = usize::try_from(id - 1).unwrap_or(usize::MAX);
            if let Some(push) = inner.pushes.get_mut(index) {
                push.attempts.push(AttemptRec {
                    at: now,
                    status,
                    error,
                });
                push.state = if ok {
                    "delivered"
                } else if dead {
                    "dead"
                } else {
                    "pending"
                };
                order_id = push
                    .payload
                    .get("ClientOrderRef")
                    .and_then(Value::as_str)
                    .and_then(|r| r.parse::<i32>().ok());
            }
            if let (Some(erp), Some(quotation)) = (erp_order_no, order_id)
                && let Some(id) = inner.order_index.by_quotation(&inner.orders, quotation)
                && let Some(order) = inner.orders.get_mut(&id)
                && order.erp_order_no.is_none()
            {
                order.erp_order_no = Some(erp.clone());
                inner.order_index.add_number(erp, id);
            }
        }
        if ok || dead {
            return;
        }
        let delay = schedule.get(attempt).copied().unwrap_or(0) as f64 * factor;
        tokio::time::sleep(Duration::try_from_secs_f64(delay).unwrap_or(Duration::MAX)).await;
    }
}

/// Pushes `payload` to the webhook configured for `event_type`, if any.
fn emit(state: &SharedState, event_type: &str, payload: Value) {
    for hook in state
        .norce
        .config()
        .webhooks
        .iter()
        .filter(|h| h.event_type == event_type)
    {
        let target = Target {
            url: hook.url.clone(),
            headers: hook
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            basic: None,
            order_receiver: false,
        };
        spawn(state, "webhook", Some(event_type), target, payload.clone());
    }
}

/// An order event (`OrderConfirmedEvent`, `OrderCancelledEvent`, ...), in the documented shape
/// of its type: `OrderReceivedEvent` names the basket and the buyer only (no `OrderId`, no
/// `OrderNo`); the others name the order.
pub(super) fn order_event(state: &SharedState, event_type: &str, order: &OrderRec) {
    let client_id = state.norce.config().tenant_id;
    let c = &order.customer;
    let payload = if event_type == "OrderReceivedEvent" {
        serde_json::to_value(OrderReceivedEvent {
            client_id,
            application_id: order.application_id,
            client_order_ref: order.quotation_id.to_string(),
            email: Some(c.email.clone()),
            cell_phone: Some(c.phone.clone()),
            first_name: Some(c.first_name.clone()),
            last_name: Some(c.last_name.clone()),
            source: "WEB".into(),
        })
    } else {
        serde_json::to_value(OrderEvent {
            client_id,
            application_id: order.application_id,
            order_id: order.id,
            order_no: order
                .erp_order_no
                .clone()
                .unwrap_or_else(|| order.order_no.clone()),
            client_order_ref: order.quotation_id.to_string(),
            cell_phone: Some(c.phone.clone()),
            first_name: Some(c.first_name.clone()),
            last_name: Some(c.last_name.clone()),
            source: "WEB".into(),
            drop_point_code: order.pickup_point.clone(),
        })
    };
    match payload {
        Ok(payload) => emit(state, event_type, payload),
        Err(e) => tracing::warn!(error = %e, "norce: cannot serialize an order event"),
    }
}

/// `JobCompletedEvent` for a finished import job.
pub(super) fn job_completed(state: &SharedState, job_id: i32, status_id: i32) {
    let event = JobCompletedEvent {
        client_id: state.norce.config().tenant_id,
        application_id: Some(state.norce.lock().application_id),
        job_id,
        status_id,
    };
    match serde_json::to_value(&event) {
        Ok(payload) => emit(state, "JobCompletedEvent", payload),
        Err(e) => tracing::warn!(error = %e, "norce: cannot serialize a job event"),
    }
}

/// The `OrderRequest` Norce pushes to the order receiver.
pub(super) fn order_request(state: &SharedState, order: &OrderRec) -> OrderRequest {
    let c = &order.customer;
    let address = OrderRequestAddress {
        line1: Some(c.street.clone()),
        zip_code: Some(c.zip.clone()),
        city: Some(c.city.clone()),
        country: Some(c.country.clone()),
        shipping_phone_number: Some(c.phone.clone()),
        ..OrderRequestAddress::default()
    };
    let person = OrderRequestPerson {
        customer_code: None,
        first_name: Some(c.first_name.clone()),
        last_name: Some(c.last_name.clone()),
        email: Some(c.email.clone()),
        cell_phone: Some(c.phone.clone()),
        address: Some(address),
        ..OrderRequestPerson::default()
    };
    let party = ClientCustomer {
        company: None,
        person: Some(person),
    };
    let vat = model::vat_multiplier() - Decimal::ONE;
    let items = order
        .lines
        .iter()
        .map(|l| {
            let unit_ex = model::ex_vat(l.unit_price_inc_vat);
            OrderRequestItem {
                line_no: l.line_no,
                part_no: l.part_no.clone(),
                internal_product_id: i32::try_from(l.product_id).ok(),
                description: Some(l.name.clone()),
                quantity: i32::try_from(l.quantity).ok(),
                quantity2: Some(Decimal::from(l.quantity).into()),
                type_: Some(OrderItemType::ErpStandard),
                type_group: Some(OrderItemTypeGroup::Physical),
                unit_price: Some(unit_ex.into()),
                unit_price_original: Some(unit_ex.into()),
                unit_vat: Some(
                    (l.unit_price_inc_vat - unit_ex)
                        .round_dp(4)
                        .normalize()
                        .into(),
                ),
                vat_rate: Some(models_runtime::VatPercent::from_fraction(vat)),
                discount: Some(Decimal::ZERO.into()),
                ..OrderRequestItem::default()
            }
        })
        .collect();
    let config = state.norce.config();
    OrderRequest {
        header: Some(OrderRequestHeader {
            application_key: Some(format!(
                "{:08x}-0000-4000-8000-{:012x}",
                order.application_id, config.tenant_id
            )),
        }),
        client_order_ref: order.quotation_id.to_string(),
        erp_order_no: None,
        order_type: Some("Standard".into()),
        source: Some("WEB".into()),
        submit_date: Some(Timestamp::from_datetime(order.created)),
        currency_code: Some(order.currency.clone()),
        customer_order_ref: Some(order.order_no.clone()),
        sell_to: Some(party.clone()),
        bill_to: Some(party.clone()),
        ship_to: Some(party),
        shipping_advice: Some(ShippingAdvice {
            delivery_method_code: Some(order.delivery_method.clone()),
            pickup_store: order.pickup_point.as_ref().map(|p| PickupStore {
                code: Some(p.clone()),
                is_drop_point: Some(true),
                ..PickupStore::default()
            }),
            ..ShippingAdvice::default()
        }),
        payments: Some(vec![Payment {
            payment_method_code: Some(order.payment_method.clone()),
            payment_name: Some("Klarna".into()),
            payment_ref: Some(order.payment_ref.clone()),
            amount: Some(order.total_inc_vat().into()),
            currency_code: Some(order.currency.clone()),
            ..Payment::default()
        }]),
        items: Some(items),
        ..OrderRequest::default()
    }
}

/// A new order: the order receiver push and `OrderReceivedEvent`.
pub(super) fn new_order(state: &SharedState, order: &OrderRec) {
    if let Some(receiver) = &state.norce.config().order_receiver {
        match serde_json::to_value(order_request(state, order)) {
            Ok(payload) => {
                let target = Target {
                    url: receiver.url.clone(),
                    headers: Vec::new(),
                    basic: Some((receiver.username.clone(), receiver.password.clone())),
                    order_receiver: true,
                };
                spawn(state, "order-receiver", None, target, payload);
            }
            Err(e) => tracing::warn!(error = %e, "norce: cannot serialize an OrderRequest"),
        }
    }
    order_event(state, "OrderReceivedEvent", order);
}
