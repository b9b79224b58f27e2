//! Writing the booking back to Norce: the delivery note (checked before every create that may
//! follow one that reached Norce: Norce's CreateDeliveryNote is not idempotent), the note again
//! with changed parcel statuses, and the order status.

use norce_client::models::connect::operations::ConnectApi as _;
use norce_client::models::connect::{
    ConnectOrderStatus, DeliveryAddress, DeliveryNote, DeliveryNoteItem, DeliveryNotePackage,
    SendOrderStatusRequest,
};
use norce_client::models::services::{GetOrderQuery, operations::ServicesApi as _};

use super::order::{BookedShipment, ShippingItem};
use crate::flows::action::ItemError;

/// Whether an earlier attempt may have sent the order's delivery note: a crash, a dropped pass
/// or a lost answer after `CreateDeliveryNote` reached Norce, before the step was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EarlierNote {
    /// The order is read first (`GetOrder`) and the note created only if it is not there.
    Possible,
    /// This attempt is the first to reach the note step (it recorded the steps before it
    /// itself): created without reading the order first.
    Impossible,
}

/// Creates the delivery note unless an earlier attempt may have sent it and the order has it.
/// Returns whether it was created by this call.
pub(crate) async fn write_delivery_note(
    norce: &norce_client::NorceClient,
    item: &mut ShippingItem,
    earlier: EarlierNote,
) -> Result<bool, ItemError> {
    let order_id = item
        .order_id
        .clone()
        .ok_or_else(|| ItemError::permanent("the Norce order id is not recorded"))?;
    let booked = item
        .shipment
        .clone()
        .ok_or_else(|| ItemError::permanent("the booking is not recorded"))?;
    let note_no = item.note_no.clone().unwrap_or_else(|| {
        format!(
            "NS-{}",
            booked.shipment_ids.first().map_or("0", String::as_str)
        )
    });
    item.note_no = Some(note_no.clone());

    // CreateDeliveryNote is not idempotent: check the order before every attempt that may
    // follow one that reached Norce.
    if earlier == EarlierNote::Possible
        && note_exists(norce, &order_id, &note_no, &booked.parcel_numbers).await?
    {
        tracing::info!(note_no = %note_no, "the Norce order already has the delivery note; not created again");
        return Ok(false);
    }
    send_note(
        norce,
        item,
        &booked,
        &note_no,
        "CreateDeliveryNote (checked before the next attempt)",
    )
    .await?;
    tracing::info!(note_no = %note_no, parcels = booked.parcel_numbers.len(), "delivery note created");
    Ok(true)
}

/// Whether the Norce order has a delivery note with `note_no` or with all of `parcel_numbers`.
async fn note_exists(
    norce: &norce_client::NorceClient,
    order_id: &str,
    note_no: &str,
    parcel_numbers: &[String],
) -> Result<bool, ItemError> {
    let order = norce
        .get_order(&GetOrderQuery {
            id: order_id.to_owned(),
            ..Default::default()
        })
        .await
        .map_err(|e| ItemError::call(&format!("GetOrder {order_id}"), e))?;
    Ok(order.delivery_notes.iter().flatten().any(|note| {
        note.note_no.as_deref() == Some(note_no) || {
            let parcels: Vec<&str> = note
                .packages
                .iter()
                .flatten()
                .filter_map(|p| p.parcel_number.as_deref())
                .collect();
            !parcel_numbers.is_empty()
                && parcel_numbers.iter().all(|p| parcels.contains(&p.as_str()))
        }
    }))
}

/// Sends the delivery note again, same `NoteNo` and lines, with the parcels' current statuses
/// (`shipping.parcel_status = "update_delivery_note"`).
pub(crate) async fn update_parcel_statuses(
    norce: &norce_client::NorceClient,
    item: &mut ShippingItem,
) -> Result<(), ItemError> {
    let booked = item
        .shipment
        .clone()
        .ok_or_else(|| ItemError::permanent("the booking is not recorded"))?;
    let note_no = item
        .note_no
        .clone()
        .ok_or_else(|| ItemError::permanent("the delivery note number is not recorded"))?;
    send_note(
        norce,
        item,
        &booked,
        &note_no,
        "CreateDeliveryNote with the parcel statuses (if your Norce refuses a delivery note sent again, set shipping.parcel_status = \"record_only\")",
    )
    .await?;
    let statuses: Vec<String> = item
        .tracking
        .iter()
        .map(|(parcel, t)| format!("{parcel}={}", t.nshift_status))
        .collect();
    tracing::info!(note_no = %note_no, statuses = %statuses.join(","), "delivery note sent again with the parcel statuses");
    Ok(())
}

/// Sends the booking's delivery note with the parcels' current statuses; `what` names the call
/// in an error.
async fn send_note(
    norce: &norce_client::NorceClient,
    item: &mut ShippingItem,
    booked: &BookedShipment,
    note_no: &str,
    what: &str,
) -> Result<(), ItemError> {
    let note = delivery_note(item, booked, note_no)?;
    norce
        .create_delivery_note(&note)
        .await
        .map_err(|e| ItemError::call(what, e))?;
    item.parcel_status_unsent = false;
    Ok(())
}

/// The Norce delivery note of a booking: the order's lines, the receiver, and one package per
/// parcel with its latest Norce parcel status.
fn delivery_note(
    item: &ShippingItem,
    booked: &BookedShipment,
    note_no: &str,
) -> Result<DeliveryNote, ItemError> {
    let data = item
        .order
        .as_ref()
        .ok_or_else(|| ItemError::permanent("the order data is not recorded"))?;
    let delivery_date = booked
        .printed_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
    let mut items = Vec::new();
    for line in &data.lines {
        let qty = line.quantity.parse().map_err(|_| {
            ItemError::permanent(format!(
                "order line {} has quantity `{}`",
                line.part_no, line.quantity
            ))
        })?;
        let row_number = match line.row_number {
            Some(n) => Some(
                n.to_string()
                    .parse()
                    .map_err(|_| ItemError::permanent("bad row number"))?,
            ),
            None => None,
        };
        items.push(DeliveryNoteItem {
            row_number,
            item_no: line.part_no.clone(),
            description: line.description.clone(),
            qty,
            comment: None,
            id: None,
        });
    }
    let receiver = &data.receiver;
    let note = DeliveryNote {
        // Norce matches the note to the order by its ERP number; without one, the order number.
        order_no: item
            .erp_order_no
            .clone()
            .or_else(|| item.order_no.clone())
            .unwrap_or_default(),
        note_no: note_no.to_owned(),
        delivery_date: delivery_date.into(),
        buyer_company_code: None,
        buyer_customer_code: None,
        delivery_address: Some(DeliveryAddress {
            line1: receiver.line1.clone(),
            line2: receiver.line2.clone(),
            zip_code: receiver.zip.clone(),
            city: receiver.city.clone(),
            country: receiver.country.clone(),
            ..DeliveryAddress::default()
        }),
        delivery_name: receiver.name.clone(),
        delivery_attention: None,
        delivery_mode: data.delivery_method.clone(),
        note_text: Some(format!(
            "nShift {} {}",
            booked.service_id,
            booked.shipment_ids.join(", ")
        )),
        division_code: None,
        status_id: None,
        delivery_note_items: Some(items),
        delivery_note_packages: Some(
            booked
                .parcel_numbers
                .iter()
                .map(|p| DeliveryNotePackage {
                    parcel_number: p.clone(),
                    status_id: item.tracking.get(p).and_then(|t| t.norce_status_id),
                    id: None,
                })
                .collect(),
        ),
    };
    Ok(note)
}

/// Sets the order Delivered (or PartlyDelivered).
pub(crate) async fn send_status(
    norce: &norce_client::NorceClient,
    item: &mut ShippingItem,
) -> Result<(), ItemError> {
    let status = if item.order.as_ref().is_some_and(|o| o.lines_left_out) {
        ConnectOrderStatus::PartlyDelivered
    } else {
        ConnectOrderStatus::Delivered
    };
    let client_order_ref = item.client_order_ref.trim().parse::<i32>().ok();
    let request = SendOrderStatusRequest {
        client_order_ref,
        erp_order_no: if client_order_ref.is_none() {
            item.erp_order_no.clone().or_else(|| item.order_no.clone())
        } else {
            None
        },
        order_status: status.clone(),
        account_id: None,
        infos: None,
    };
    norce
        .send_order_status(&request)
        .await
        .map_err(|e| ItemError::call("SendOrderStatus", e))?;
    item.order_status_sent = Some(status.as_str().to_owned());
    Ok(())
}
