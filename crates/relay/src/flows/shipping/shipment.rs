//! Building the nShift shipment from the order and booking it exactly once.

use client_core::ErrorKind;
use nshift_client::models::{
    Addon, DeleteStoredShipmentPath, FindAgentsQuery, Parcel, Partner, Party, Service, Shipment,
};
use nshift_client::{Booking, BookingOutcome, DeliveryApi as _, Label, NshiftClient};

use super::labels::not_found;
use super::order::{BookedShipment, OrderData, ReturnShipment, ShippingItem};
use super::settings::{ChosenService, Settings};
use crate::flows::action::ItemError;

/// What booking produced for the next steps.
pub(crate) struct Booked {
    /// Whether this call printed the shipment (false: found already printed).
    pub printed_now: bool,
    /// The labels that came back, if any (saved by the next step).
    pub labels: Vec<Label>,
    /// The return labels that came back with a return booked with the outbound shipment.
    pub return_labels: Vec<Label>,
}

/// How a return shipment was booked (`ReturnShipment::booked_with`).
pub(crate) const WITH_OUTBOUND: &str = "with_outbound";
/// A return booked on its own (`relay return`, the console).
pub(crate) const ON_DEMAND: &str = "on_demand";

/// Parcel count and weight per parcel for the order's lines.
pub(crate) fn parcels_for(settings: &Settings, order: &OrderData) -> (i64, f64) {
    let total: f64 = order
        .lines
        .iter()
        .map(|line| {
            let quantity = line.quantity.parse::<f64>().unwrap_or(0.0).max(0.0);
            let unit = settings
                .part_weights_kg
                .get(&line.part_no)
                .copied()
                .unwrap_or(settings.item_weight_kg);
            quantity * unit
        })
        .sum();
    let total = if total.is_finite() && total > 0.0 {
        total
    } else {
        settings.default_parcel_weight_kg
    };
    let count = (total / settings.max_parcel_weight_kg)
        .ceil()
        .clamp(1.0, 99.0);
    let per_parcel = (total / count).max(
        settings
            .default_parcel_weight_kg
            .min(settings.max_parcel_weight_kg),
    );
    // Two decimals: nShift takes kg with grams at most.
    (count as i64, (per_parcel * 100.0).round() / 100.0)
}

/// The nShift `senderReference` (at most 17 characters recommended).
fn reference(order_no: &str) -> String {
    order_no
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(17)
        .collect()
}

/// The addons, with the receiver's contact where the notice needs it; notices without a
/// contact to send to are left out (nShift would refuse them).
fn addons(service: &ChosenService, order: &OrderData) -> Vec<Addon> {
    let receiver = &order.receiver;
    service
        .addons
        .iter()
        .filter_map(|code| {
            let code = code.trim();
            match code.to_ascii_uppercase().as_str() {
                "NOTSMS" => {
                    if order.sms_notify == Some(false) {
                        return None;
                    }
                    let mobile = receiver.mobile.clone().or_else(|| receiver.phone.clone())?;
                    Some(Addon {
                        id: code.to_owned(),
                        misc: Some(mobile),
                        ..Addon::default()
                    })
                }
                "NOTEMAIL" => {
                    let email = receiver.email.clone()?;
                    Some(Addon {
                        id: code.to_owned(),
                        misc: Some(email),
                        ..Addon::default()
                    })
                }
                "" => None,
                _ => Some(Addon {
                    id: code.to_owned(),
                    ..Addon::default()
                }),
            }
        })
        .collect()
}

/// The pickup point as nShift's agent: the order's pickup point when nShift knows it, else
/// (with `pickup_fallback_nearest`) the nearest agent of the network.
async fn agent(
    nshift: &NshiftClient,
    settings: &Settings,
    agent_type: &str,
    order: &OrderData,
) -> Result<Option<Party>, ItemError> {
    let receiver = &order.receiver;
    let country = receiver.country.clone().unwrap_or_default();
    let zip = receiver.zip.clone().unwrap_or_default();
    let mut query = FindAgentsQuery {
        type_: agent_type.to_owned(),
        zip: Some(zip.clone()),
        country_code: country.clone(),
        street: None,
        id: None,
    };
    if let Some(id) = &order.pickup_point {
        query.id = Some(id.clone());
        match nshift.find_agents(&query).await {
            Ok(found) if !found.is_empty() => {
                return Ok(found.first().map(|a| Party {
                    quick_id: Some(a.id.clone()),
                    ..Party::default()
                }));
            }
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(ItemError::call("pickup point lookup", e)),
        }
        if !settings.pickup_fallback_nearest {
            return Err(ItemError::permanent(format!(
                "nShift knows no {agent_type} pickup point `{id}`; fix the order's pickup point or set `shipping.pickup_fallback_nearest = true`"
            )));
        }
        tracing::warn!(pickup_point = %id, agent_type, "the order's pickup point is not an nShift agent; using the nearest one");
        query.id = None;
    }
    let found = nshift
        .find_agents(&query)
        .await
        .map_err(|e| ItemError::call("pickup point lookup", e))?;
    match found.first() {
        Some(a) => Ok(Some(Party {
            quick_id: Some(a.id.clone()),
            ..Party::default()
        })),
        None => Err(ItemError::permanent(format!(
            "nShift has no {agent_type} pickup point near {zip} {country}; check the receiver address"
        ))),
    }
}

/// How the shipment's pickup point (nShift agent) is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentChoice {
    /// The order's pickup point as it is, without a lookup (the checkout picked it from the
    /// same network); nShift checks it when the shipment is stored. Orders without one get
    /// the lookup.
    AsOrdered,
    /// Looked up: the order's pickup point when nShift knows it, else (with
    /// `pickup_fallback_nearest`) the nearest agent.
    LookedUp,
}

/// The nShift shipment for the order, its service, and whether its agent is the order's
/// pickup point taken without a lookup.
pub(crate) async fn build(
    nshift: &NshiftClient,
    settings: &Settings,
    item: &ShippingItem,
    choice: AgentChoice,
) -> Result<(Shipment, ChosenService, bool), ItemError> {
    let order = item
        .order
        .as_ref()
        .ok_or_else(|| ItemError::permanent("the order data is not recorded"))?;
    let order_no = item
        .order_no
        .clone()
        .ok_or_else(|| ItemError::permanent("the Norce order number is not recorded"))?;
    let method = order.delivery_method.clone().unwrap_or_default();
    let receiver = &order.receiver;
    let country = receiver.country.clone().unwrap_or_default();
    let service = settings
        .service_for(&method, &country)
        .ok_or_else(|| ItemError::permanent(format!("no nShift service is mapped for the Norce delivery method `{method}`: add `[shipping.services.{method}]`")))?;
    let as_ordered = order
        .pickup_point
        .as_ref()
        .filter(|_| service.agent_type.is_some() && choice == AgentChoice::AsOrdered);
    let agent = match (&service.agent_type, as_ordered) {
        (Some(_), Some(id)) => Some(Party {
            quick_id: Some(id.clone()),
            ..Party::default()
        }),
        (Some(agent_type), None) => agent(nshift, settings, agent_type, order).await?,
        (None, _) => None,
    };
    let unverified_agent = as_ordered.is_some();
    let (copies, weight) = parcels_for(settings, order);
    let sender_partners = match (&service.partner_id, &service.customer_no) {
        (Some(partner), Some(customer_no)) => Some(vec![Partner {
            id: partner.clone(),
            cust_no: Some(customer_no.clone()),
            ..Partner::default()
        }]),
        _ => None,
    };
    let shipment = Shipment {
        sender: Party {
            quick_id: Some(service.sender_quick_id.clone()),
            ..Party::default()
        },
        sender_partners,
        receiver: Party {
            name: receiver.name.clone(),
            address1: receiver.line1.clone(),
            address2: receiver.line2.clone(),
            zipcode: receiver.zip.clone(),
            city: receiver.city.clone(),
            country: receiver.country.clone(),
            contact: receiver.contact.clone(),
            phone: receiver.phone.clone(),
            mobile: receiver.mobile.clone(),
            email: receiver.email.clone(),
            ..Party::default()
        },
        agent,
        test: Some(settings.test),
        order_no: Some(order_no.clone()),
        sender_reference: Some(reference(&order_no)),
        service: Service {
            id: service.service_id.clone(),
            addons: Some(addons(&service, order)).filter(|a| !a.is_empty()),
            // The service's return option: nShift prints the outbound and the return
            // shipment from the one booking (two shipments in the answer).
            normal_shipment: service.return_with_outbound.then_some(true),
            return_shipment: service.return_with_outbound.then_some(true),
            ..Service::default()
        },
        parcels: vec![Parcel {
            copies,
            value_per_parcel: Some(true),
            weight: Some(weight),
            package_code: Some("PC".to_owned()),
            contents: order
                .lines
                .first()
                .and_then(|l| l.description.clone())
                .or_else(|| Some("Goods".to_owned())),
            ..Parcel::default()
        }],
        ..Shipment::default()
    };
    Ok((shipment, service, unverified_agent))
}

/// Books the order exactly once and records the booking in `item`.
pub(crate) async fn book(
    nshift: &NshiftClient,
    settings: &Settings,
    item: &mut ShippingItem,
) -> Result<Booked, ItemError> {
    let (shipment, service, unverified_agent) =
        build(nshift, settings, item, AgentChoice::AsOrdered).await?;
    let order_no = item.order_no.clone().unwrap_or_default();
    let mut agent_id = agent_id_of(&shipment);
    let mut service = service;
    let booking = match book_exclusive(nshift, &order_no, shipment).await {
        Ok(booking) => booking,
        Err(refused) if unverified_agent && refused.kind() == Some(ErrorKind::Permanent) => {
            // nShift refused the shipment with the order's pickup point taken as it is: look the
            // pickup point up now. Known to nShift: the refusal is about something else. Unknown:
            // the lookup's own answer (the nearest agent, or the error naming the setting).
            let (checked, checked_service, _) =
                build(nshift, settings, item, AgentChoice::LookedUp).await?;
            if agent_id_of(&checked) == agent_id {
                return Err(refused);
            }
            tracing::warn!(pickup_point = ?agent_id, agent = ?agent_id_of(&checked), "the order's pickup point is not an nShift agent; booking with the nearest one");
            agent_id = agent_id_of(&checked);
            service = checked_service;
            book_exclusive(nshift, &order_no, checked).await?
        }
        Err(e) => return Err(e),
    };
    let printed_now = booking.outcome == BookingOutcome::Printed;
    // A booking with the return option prints two shipments: the return one is recorded on
    // its own, so its parcels never go on the Norce delivery note.
    let mut booking = booking;
    let (returns, outbound): (Vec<_>, Vec<_>) = std::mem::take(&mut booking.shipments)
        .into_iter()
        .partition(|s| {
            s.info.return_shipment == Some(true) && s.info.normal_shipment != Some(true)
        });
    booking.shipments = outbound;
    let (with_return, return_service_id) =
        (service.return_with_outbound, service.service_id.clone());
    let parcel_numbers: Vec<String> = booking
        .shipments
        .iter()
        .flat_map(|s| s.parcel_numbers().into_iter().map(str::to_owned))
        .collect();
    if booking.shipments.is_empty() || parcel_numbers.is_empty() {
        // Printed, but nShift did not (yet) show its parcels: the booking exists, and the next
        // pass's book_once finds it again without booking twice.
        return Err(ItemError::transient(format!(
            "order {order_no} is booked in nShift but its shipment details could not be read back yet (printed-shipments feed)"
        )));
    }
    if !booking.redundant_stored_ids.is_empty() {
        tracing::info!(redundant = ?booking.redundant_stored_ids, "unprinted duplicate stored shipments left in nShift (harmless)");
    }
    let printed_at = booking
        .shipments
        .first()
        .and_then(|s| s.info.created.as_ref())
        .map(|t| t.to_rfc3339());
    item.shipment = Some(BookedShipment {
        shipment_ids: booking
            .shipments
            .iter()
            .map(|s| s.info.id.clone())
            .collect(),
        stored_id: booking.stored_id.clone(),
        parcel_numbers,
        service_id: service.service_id,
        agent_id,
        printed_at,
        already_booked: !printed_now,
    });
    tracing::info!(order_no = %order_no, printed_now, "shipment booked");
    let mut return_labels = Vec::new();
    if with_return {
        if returns.is_empty() {
            // The outbound booking stands; a return can still be booked on demand.
            tracing::warn!(order_no = %order_no, "nShift printed no return shipment with the outbound one");
        } else {
            item.return_shipment = Some(return_record(
                WITH_OUTBOUND,
                &order_no,
                &return_service_id,
                booking.stored_id.clone(),
                !printed_now,
                &returns,
            ));
            return_labels = returns.into_iter().flat_map(|s| s.labels).collect();
        }
    }
    let labels = booking
        .shipments
        .into_iter()
        .flat_map(|s| s.labels)
        .collect();
    Ok(Booked {
        printed_now,
        labels,
        return_labels,
    })
}

/// The record of a printed return shipment.
pub(crate) fn return_record(
    booked_with: &str,
    order_no: &str,
    service_id: &str,
    stored_id: Option<String>,
    already_booked: bool,
    shipments: &[nshift_client::PrintedShipment],
) -> ReturnShipment {
    ReturnShipment {
        booked_with: booked_with.to_owned(),
        order_no: order_no.to_owned(),
        shipment_ids: shipments.iter().map(|s| s.info.id.clone()).collect(),
        stored_id,
        parcel_numbers: shipments
            .iter()
            .flat_map(|s| s.parcel_numbers().into_iter().map(str::to_owned))
            .collect(),
        service_id: service_id.to_owned(),
        printed_at: shipments
            .first()
            .and_then(|s| s.info.created.as_ref())
            .map(|t| t.to_rfc3339()),
        already_booked,
        labels: Vec::new(),
        labels_missing: None,
    }
}

/// The nShift `orderNo` a return booked on its own is keyed on: its own, so `book_once`
/// finds that booking (and never the outbound one) when it searches before storing again.
pub(crate) fn return_order_no(order_no: &str) -> String {
    format!("{order_no}-R")
}

/// The return-only shipment of a booked order (`service_id` a return product): the same
/// parties as the outbound shipment (nShift prints the return from the receiver back to the
/// sender), `normalShipment` false and `returnShipment` true, keyed on [`return_order_no`].
pub(crate) fn build_return(
    settings: &Settings,
    item: &ShippingItem,
    service_id: &str,
) -> Result<Shipment, ItemError> {
    let order = item
        .order
        .as_ref()
        .ok_or_else(|| ItemError::permanent("the order data is not recorded"))?;
    let order_no = item
        .order_no
        .clone()
        .ok_or_else(|| ItemError::permanent("the Norce order number is not recorded"))?;
    let method = order.delivery_method.clone().unwrap_or_default();
    let receiver = &order.receiver;
    let country = receiver.country.clone().unwrap_or_default();
    let service = settings.service_for(&method, &country).ok_or_else(|| {
        ItemError::permanent(format!(
            "no nShift service is mapped for the Norce delivery method `{method}`"
        ))
    })?;
    let (copies, weight) = parcels_for(settings, order);
    let sender_partners = match (&service.partner_id, &service.customer_no) {
        (Some(partner), Some(customer_no)) => Some(vec![Partner {
            id: partner.clone(),
            cust_no: Some(customer_no.clone()),
            ..Partner::default()
        }]),
        _ => None,
    };
    Ok(Shipment {
        sender: Party {
            quick_id: Some(service.sender_quick_id.clone()),
            ..Party::default()
        },
        sender_partners,
        receiver: Party {
            name: receiver.name.clone(),
            address1: receiver.line1.clone(),
            address2: receiver.line2.clone(),
            zipcode: receiver.zip.clone(),
            city: receiver.city.clone(),
            country: receiver.country.clone(),
            contact: receiver.contact.clone(),
            phone: receiver.phone.clone(),
            mobile: receiver.mobile.clone(),
            email: receiver.email.clone(),
            ..Party::default()
        },
        test: Some(settings.test),
        order_no: Some(return_order_no(&order_no)),
        sender_reference: Some(reference(&order_no)),
        service: Service {
            id: service_id.trim().to_owned(),
            normal_shipment: Some(false),
            return_shipment: Some(true),
            ..Service::default()
        },
        parcels: vec![Parcel {
            copies,
            value_per_parcel: Some(true),
            weight: Some(weight),
            package_code: Some("PC".to_owned()),
            contents: Some("Return".to_owned()),
            ..Parcel::default()
        }],
        ..Shipment::default()
    })
}

/// The agent (pickup point) id of a shipment.
fn agent_id_of(shipment: &Shipment) -> Option<String> {
    shipment.agent.as_ref().and_then(|a| a.quick_id.clone())
}

/// `book_once` as the order's only writer (the entity is processed by one worker at a time:
/// one stored-shipment search per booking instead of two); a refusal for good deletes the
/// order's unprinted stored shipments (see [`remove_unprinted`]).
pub(crate) async fn book_exclusive(
    nshift: &NshiftClient,
    order_no: &str,
    shipment: Shipment,
) -> Result<Booking, ItemError> {
    match nshift.book_once_exclusive(order_no, shipment).await {
        Ok(booking) => Ok(booking),
        Err(e) => {
            if e.kind() == ErrorKind::Permanent {
                remove_unprinted(nshift, order_no).await;
            }
            Err(ItemError::call(&format!("nShift booking of {order_no}"), e))
        }
    }
}

/// Deletes the order's stored shipments that were never printed (a booking nShift refused
/// for good: validation, or a stored shipment WARNED, INVALID or FAILED), so a replay with
/// corrected data stores a new one instead of finding the refused one again. Printed ones are
/// never touched. Best effort: a failure is logged, the item fails as it would anyway.
async fn remove_unprinted(nshift: &NshiftClient, order_no: &str) {
    let stored = match nshift.find_stored_by_order_no(order_no).await {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(order_no, error = %e, "could not look for the refused stored shipment");
            return;
        }
    };
    for shipment in stored {
        let printed = shipment
            .status
            .as_ref()
            .is_some_and(|s| s.as_str().eq_ignore_ascii_case("PRINTED"));
        if printed {
            continue;
        }
        let path = DeleteStoredShipmentPath {
            stored_id: shipment.id.clone(),
        };
        match nshift.delete_stored_shipment(&path).await {
            Ok(()) => {
                tracing::info!(order_no, stored_id = %shipment.id, "unprintable stored shipment deleted")
            }
            Err(e) => {
                tracing::warn!(order_no, stored_id = %shipment.id, error = %e, "could not delete the unprintable stored shipment")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::order::{Line, Receiver};
    use super::*;
    use crate::config::RelayConfig;
    use crate::flows::context::FlowContext;

    fn settings(text: &str) -> Settings {
        let ctx = FlowContext::offline(RelayConfig::parse(text, "t").unwrap());
        Settings::new(&ctx, None).unwrap()
    }

    fn order(lines: &[(&str, &str)]) -> OrderData {
        OrderData {
            lines: lines
                .iter()
                .map(|(p, q)| Line {
                    part_no: (*p).into(),
                    quantity: (*q).into(),
                    ..Line::default()
                })
                .collect(),
            receiver: Receiver {
                mobile: Some("+46 70".into()),
                ..Receiver::default()
            },
            ..OrderData::default()
        }
    }

    #[test]
    fn parcels_from_item_weights_with_defaults() {
        let s = settings(
            "[shipping]\nitem_weight_kg = 0.5\nmax_parcel_weight_kg = 10.0\n[shipping.part_weights_kg]\nHEAVY = 7.0\n",
        );
        assert_eq!(
            parcels_for(&s, &order(&[("A", "2")])),
            (1, 1.0),
            "1 kg from 2 × 0.5, at least the default"
        );
        assert_eq!(
            parcels_for(&s, &order(&[("A", "1")])),
            (1, 1.0),
            "the default is the minimum"
        );
        assert_eq!(
            parcels_for(&s, &order(&[("HEAVY", "3"), ("A", "2")])),
            (3, 7.33)
        );
        assert_eq!(parcels_for(&s, &order(&[])), (1, 1.0));
    }

    #[test]
    fn notices_need_a_contact() {
        let s = settings("");
        let service = s.service_for("POSTNORD_HOME", "SE").unwrap();
        let mut data = order(&[("A", "1")]);
        let codes = |d: &OrderData| {
            addons(&service, d)
                .into_iter()
                .map(|a| a.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(&data), vec!["NOTSMS"], "no e-mail: no e-mail notice");
        data.receiver.email = Some("a@example.com".into());
        data.sms_notify = Some(false);
        assert_eq!(codes(&data), vec!["NOTEMAIL"], "SMS declined");
    }

    #[test]
    fn reference_is_short() {
        assert_eq!(reference("NC-100001"), "NC-100001");
        assert_eq!(
            reference("A VERY LONG ORDER NUMBER 123"),
            "AVERYLONGORDERNUM"
        );
    }
}
