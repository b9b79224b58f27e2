//! Brightpearl product webhooks → pending `stock` / `prices` entities (no platform call).

use brightpearl_client::models::integration::{WebhookEvent, WebhookEventName};

use crate::flows::{FlowContext, FlowError, Ingested};
use crate::state::{EntityUpdate, InboxItem, Status};

use super::{PRICES, STOCK};

/// The inbox source of Brightpearl webhooks.
pub const SOURCE: &str = crate::flows::SOURCE_BRIGHTPEARL_WEBHOOK;

/// Most ids one webhook may name (a larger ID set is refused rather than expanded).
const MAX_IDS_PER_EVENT: u64 = 100_000;

/// Expands a Brightpearl ID set (`1-5,7`) into its ids.
pub(super) fn parse_id_set(text: &str) -> Result<Vec<u64>, String> {
    let mut ids = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.trim(), hi.trim()),
            None => (part, part),
        };
        let parse = |s: &str| {
            s.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{part}` is not an id or an id range"))
        };
        let (lo, hi) = (parse(lo)?, parse(hi)?);
        if hi < lo {
            return Err(format!("range `{part}` is descending"));
        }
        if (ids.len() as u64).saturating_add(hi - lo + 1) > MAX_IDS_PER_EVENT {
            return Err(format!("more than {MAX_IDS_PER_EVENT} ids"));
        }
        ids.extend(lo..=hi);
    }
    if ids.is_empty() {
        return Err("no ids".to_owned());
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Which flows a product event concerns: stock always; prices unless it is only an on-hand
/// change (a price change arrives as a plain `product.modified`).
fn flows_of(event: &WebhookEvent) -> Option<&'static [&'static str]> {
    let name = event.full_event.as_ref().map(WebhookEventName::as_str);
    let is_product = name.is_some_and(|n| n.starts_with("product."))
        || (name.is_none() && event.resource_type.as_deref() == Some("product"));
    if !is_product {
        return None;
    }
    if matches!(
        event.full_event,
        Some(WebhookEventName::ProductModifiedOnHandModified)
    ) {
        Some(&[STOCK])
    } else {
        Some(&[STOCK, PRICES])
    }
}

/// Marks the products of a product webhook pending. The step becomes `webhook:{inbox id}` even
/// when the entity is already pending, so a pass that read Brightpearl before this change does
/// not mark it done (see the module docs). A body that is not a webhook event, or names no
/// usable ids, is logged (naming the inbox item and the fix) and dropped: the next full
/// reconciliation covers whatever it meant, and retrying it could never succeed.
pub(super) async fn ingest(ctx: &FlowContext, item: &InboxItem) -> Result<Ingested, FlowError> {
    let span = super::span(STOCK, "ingest", &item.key);
    let _entered = span.enter();
    let event: WebhookEvent = match serde_json::from_str(&item.body) {
        Ok(event) => event,
        Err(e) => {
            tracing::error!(inbox_id = item.id, error = %e, "inbox item is not a Brightpearl webhook event (accountCode, resourceType, id, lifecycleEvent, fullEvent, raisedOn); dropped. Check the webhook's bodyTemplate; the next full stock reconciliation covers the change");
            return Ok(Ingested::Nothing);
        }
    };
    let Some(flows) = flows_of(&event) else {
        tracing::debug!(inbox_id = item.id, event = ?event.full_event, "not a product event; nothing for stock or prices");
        return Ok(Ingested::Nothing);
    };
    let ids = match parse_id_set(&event.id) {
        Ok(ids) => ids,
        Err(reason) => {
            tracing::error!(inbox_id = item.id, id_set = %event.id, reason, "product webhook with an unusable ID set; dropped. The next full stock reconciliation covers the change");
            return Ok(Ingested::Nothing);
        }
    };
    let step = format!("webhook:{}", item.id);
    for flow in flows {
        for id in &ids {
            let source_id = id.to_string();
            ctx.store.upsert_pending(flow, &source_id, None)?;
            ctx.store.update(
                flow,
                &source_id,
                &EntityUpdate {
                    status: Some(Status::Pending),
                    step: Some(step.clone()),
                    ..EntityUpdate::default()
                },
            )?;
        }
    }
    tracing::info!(inbox_id = item.id, products = ids.len(), flows = ?flows, "products marked pending");
    Ok(Ingested::Work)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_sets_expand_and_bad_ones_are_named() {
        assert_eq!(parse_id_set("1001").unwrap(), vec![1001]);
        assert_eq!(parse_id_set("5-7, 3,6").unwrap(), vec![3, 5, 6, 7]);
        assert!(parse_id_set("7-5").unwrap_err().contains("7-5"));
        assert!(parse_id_set("x").unwrap_err().contains("`x`"));
        assert!(parse_id_set("").is_err());
        assert!(
            parse_id_set("1-999999999")
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn on_hand_events_concern_stock_only() {
        let event = |name: &str| WebhookEvent {
            id: "1".into(),
            full_event: serde_json::from_value(serde_json::json!(name)).unwrap(),
            ..Default::default()
        };
        assert_eq!(
            flows_of(&event("product.modified.on-hand-modified")),
            Some(&[STOCK][..])
        );
        assert_eq!(
            flows_of(&event("product.modified")),
            Some(&[STOCK, PRICES][..])
        );
        assert_eq!(flows_of(&event("goods-out-note.created")), None);
    }
}
