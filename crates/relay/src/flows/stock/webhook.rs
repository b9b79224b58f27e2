//! Brightpearl product webhooks → pending `stock` / `prices` entities (no platform call).

use brightpearl_client::IdSet;
use brightpearl_client::models::integration::{WebhookEvent, WebhookEventName};

use crate::flows::context::{FlowContext, FlowError, Ingested};
use crate::state::{EntityUpdate, InboxItem, Status};

use super::names::{PRICES, STOCK, span};

/// The inbox source of Brightpearl webhooks.
pub const SOURCE: &str = crate::flows::context::SOURCE_BRIGHTPEARL_WEBHOOK;

/// The ids of a Brightpearl ID set (`1-5,7`), ascending, at most `cap` of them (nothing
/// beyond is expanded), with how many the set names in all.
pub(super) fn parse_id_set(text: &str, cap: u64) -> Result<(Vec<u64>, u64), String> {
    let set: IdSet = text
        .parse()
        .map_err(|e: brightpearl_client::IdSetError| e.to_string())?;
    if set.is_empty() {
        return Err("no ids".to_owned());
    }
    let take = usize::try_from(cap).unwrap_or(usize::MAX);
    Ok((set.iter().take(take).collect(), set.len()))
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
    let span = span(STOCK, "ingest", &item.key);
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
    let cap = ctx.config.stock.webhook_max_ids;
    let ids = match parse_id_set(&event.id, cap) {
        Ok((ids, named)) => {
            if named > cap {
                // The rest is left to a full reconciliation: moving the cursors to the epoch
                // makes the next pass of each flow a full one.
                tracing::warn!(
                    inbox_id = item.id,
                    named,
                    marked = cap,
                    "product webhook names more products than `stock.webhook_max_ids`; the first are marked pending, a full reconciliation on the next pass covers the rest"
                );
                for flow in flows {
                    ctx.store.set_cursor(flow, RECONCILE_REQUESTED)?;
                }
            }
            ids
        }
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

/// The cursor value that makes the next pass of a flow a full reconciliation (older than any
/// interval).
pub(super) const RECONCILE_REQUESTED: &str = "1970-01-01T00:00:00Z";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_sets_expand_up_to_the_cap_and_bad_ones_are_named() {
        assert_eq!(parse_id_set("1001", 10).unwrap(), (vec![1001], 1));
        assert_eq!(parse_id_set("5-7, 3,6", 10).unwrap(), (vec![3, 5, 6, 7], 4));
        assert!(parse_id_set("7-5", 10).unwrap_err().contains("7-5"));
        assert!(parse_id_set("x", 10).unwrap_err().contains("`x`"));
        assert!(parse_id_set("", 10).is_err());
        // A huge set costs only the cap.
        let (ids, named) = parse_id_set("1-18446744073709551615", 3).unwrap();
        assert_eq!((ids, named), (vec![1, 2, 3], u64::MAX));
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
