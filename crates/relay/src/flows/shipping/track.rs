//! Parcel status from the nShift alerts feed, recorded on the shipping entities.

use nshift_client::models::Alert;
use nshift_client::{FEED_START, NshiftClient};

use super::names::{ALERTS_CURSOR, FLOW, steps};
use super::order::{ParcelTracking, ShippingItem};
use crate::config::shipping::ParcelStatusWriteback;
use crate::flows::context::{FlowContext, FlowError};
use crate::state::{EntityUpdate, Status};

/// Pages read at most per pass; the rest waits for the next pass (the cursor is kept per page).
const MAX_PAGES: usize = 50;

/// The nShift status of an alert code (`STATUS_TRANSITION_DELIVERED` → `DELIVERED`).
pub(crate) fn alert_status(alert: &Alert) -> Option<String> {
    let code = alert.alert_code.as_deref()?.trim().to_ascii_uppercase();
    let status = code
        .strip_prefix("STATUS_TRANSITION_")
        .or_else(|| code.strip_prefix("STATUS_"))?;
    (!status.is_empty()).then(|| status.to_owned())
}

/// The Norce parcel `StatusId` for an nShift shipment status: 4 Delivered, 6 Canceled,
/// 11 Ready for pickup (DELIVERING: waiting at the pickup point). In-transit statuses have no
/// documented Norce parcel status.
pub(crate) fn norce_parcel_status(nshift_status: &str) -> Option<i32> {
    match nshift_status {
        "DELIVERED" => Some(4),
        "CANCELLED" => Some(6),
        "DELIVERING" => Some(11),
        _ => None,
    }
}

/// Reads the alerts feed from the cursor and records each event's status on the parcels of
/// its order. Returns how many entities changed. The cursor is saved after each page, so a
/// crash re-reads at most one page (recording a status again is harmless: the latest event
/// time wins).
pub(crate) async fn read_alerts(
    ctx: &FlowContext,
    nshift: &NshiftClient,
) -> Result<usize, FlowError> {
    let mut cursor = ctx
        .store
        .cursor(ALERTS_CURSOR)?
        .unwrap_or_else(|| FEED_START.to_owned());
    let mut changed = 0;
    for _ in 0..MAX_PAGES {
        let page = nshift.fetch_alerts(&cursor).await?;
        for alert in &page.items {
            let Some(order_no) = alert
                .shipment_info
                .as_ref()
                .and_then(|s| s.order_no.as_deref())
            else {
                continue;
            };
            let Some(status) = alert_status(alert) else {
                continue;
            };
            // Recorded when the order was resolved; shipments of other systems have none.
            let Some(source_id) = ctx.store.find_alias(FLOW, order_no)? else {
                continue;
            };
            if record_alert(ctx, &source_id, alert, &status)? {
                changed += 1;
            }
        }
        let moved = page.fetch_id != cursor;
        if moved {
            ctx.store.set_cursor(ALERTS_CURSOR, &page.fetch_id)?;
            cursor = page.fetch_id;
        }
        if page.done || !moved {
            break;
        }
    }
    Ok(changed)
}

/// Records one alert on the entity's parcels; returns whether anything changed.
fn record_alert(
    ctx: &FlowContext,
    source_id: &str,
    alert: &Alert,
    status: &str,
) -> Result<bool, FlowError> {
    let Some(record) = ctx.store.get(FLOW, source_id)? else {
        return Ok(false);
    };
    let Some(Ok(mut item)) = record.payload.as_deref().map(ShippingItem::from_json) else {
        return Ok(false);
    };
    let Some(booked) = &item.shipment else {
        return Ok(false);
    };
    let at = alert.alert_time.as_ref().map(|t| t.to_utc());
    let alert_parcels: Vec<String> = alert
        .shipment_info
        .iter()
        .flat_map(|s| s.parcels.iter().flatten())
        .filter_map(|p| p.parcel_no.clone())
        .collect();
    // An alert without parcel numbers is about the whole shipment.
    let parcels: Vec<String> = if alert_parcels.is_empty() {
        booked.parcel_numbers.clone()
    } else {
        alert_parcels
            .into_iter()
            .filter(|p| booked.parcel_numbers.contains(p))
            .collect()
    };
    let mut changed = false;
    let mut norce_status_changed = false;
    for parcel in parcels {
        let entry = item.tracking.entry(parcel).or_default();
        let newer = match (
            at,
            entry
                .at
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
        ) {
            (Some(at), Some(recorded)) => at >= recorded,
            _ => true,
        };
        if newer && entry.nshift_status != status {
            let norce_status_id = norce_parcel_status(status);
            norce_status_changed |=
                norce_status_id.is_some() && norce_status_id != entry.norce_status_id;
            *entry = ParcelTracking {
                nshift_status: status.to_owned(),
                norce_status_id,
                at: at.map(|t| t.to_rfc3339()),
            };
            changed = true;
        }
    }
    if changed {
        tracing::info!(source_id, status, "parcel status recorded");
        let mut update = EntityUpdate::default();
        // A status Norce knows (Delivered, Canceled, Ready for pickup) goes onto the delivery
        // note: one not written yet carries it when it is; a written one is sent again, so a
        // finished entity goes back to pending for that step.
        if norce_status_changed
            && ctx.config.shipping.parcel_status == ParcelStatusWriteback::UpdateDeliveryNote
        {
            item.parcel_status_unsent = true;
            if record.status == Status::Done && record.step.as_deref() == Some(steps::STATUS_SENT) {
                update.status = Some(Status::Pending);
                update.step = Some(steps::PARCELS_CHANGED.to_owned());
            }
        }
        update.payload = Some(item.to_json()?);
        ctx.store.update(FLOW, source_id, &update)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_codes_map_to_norce_parcel_statuses() {
        let alert = |code: &str| Alert {
            alert_code: Some(code.to_owned()),
            ..Alert::default()
        };
        assert_eq!(
            alert_status(&alert("STATUS_TRANSITION_DELIVERED")).as_deref(),
            Some("DELIVERED")
        );
        assert_eq!(
            alert_status(&alert("STATUS_PRINTED")).as_deref(),
            Some("PRINTED")
        );
        assert_eq!(alert_status(&alert("OTHER")), None);
        assert_eq!(norce_parcel_status("DELIVERED"), Some(4));
        assert_eq!(norce_parcel_status("DELIVERING"), Some(11));
        assert_eq!(norce_parcel_status("CANCELLED"), Some(6));
        assert_eq!(norce_parcel_status("DISPATCHING"), None);
    }
}
