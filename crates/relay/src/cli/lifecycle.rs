//! The embedded run's second act: once every flow has run, the embedded sandbox's shop cancels
//! one shipped order, and the operator asks for a return label for another and refunds a third
//! (what `relay return` and `relay refund` do); `relay run` then runs the orders and shipping
//! passes again, and the summary shows what each became. So the default `cargo run -p relay`
//! shows the whole order lifecycle, each step through the same code as in production: the
//! shipping poll finds the cancellation in Norce, the return and the refund are entities the
//! passes work through.

use serde::Serialize;
use serde_json::Value;

use crate::config::RelayConfig;
use crate::flows::orders::{FLOW as ORDERS_FLOW, REFUND_FLOW, RefundRequest};
use crate::flows::shipping::{CANCEL_FLOW, FLOW as SHIPPING_FLOW, RETURN_FLOW};
use crate::state::{EntityRecord, Status, Store};

/// Who the audit log says asked for the return and the refund.
pub const ACTOR: &str = "relay run (embedded sandbox)";
/// One thing done to an order after the first pass.
#[derive(Debug, Clone, Serialize)]
pub struct Act {
    /// `cancelled`, `returned` or `refunded`.
    pub what: &'static str,
    /// The Norce order number.
    pub order_no: String,
    /// The entity relay keeps for it: (flow, key); `None` when no order could be acted on.
    pub entity: Option<(String, String)>,
    /// What became of it after the second pass, in words ([`Act::outcome`]).
    pub outcome: String,
    /// Whether it finished (status done).
    pub done: bool,
}

/// A shipped order: (the shipping entity's key, the Norce order number).
fn shipped_orders(store: &dyn Store) -> Result<Vec<(String, String)>, String> {
    let records = store
        .list(Some(SHIPPING_FLOW), Some(Status::Done))
        .map_err(|e| e.to_string())?;
    Ok(records
        .into_iter()
        .filter_map(|record| {
            let payload: Value = serde_json::from_str(record.payload.as_deref()?).ok()?;
            let order_no = payload["order_no"].as_str()?.to_owned();
            Some((record.source_id, order_no))
        })
        .collect())
}

/// Acts on three different orders: the shop cancels one (the sandbox's
/// `POST /_sandbox/norce/orders/{id}/cancel`), the operator queues a return label for another
/// and a whole refund (with restock) of a third. Returns what was queued, in that order; an
/// act with no order left to act on is said in the list as not done.
pub async fn act(
    sandbox_url: &str,
    store: &dyn Store,
    config: &RelayConfig,
) -> Result<Vec<Act>, String> {
    let imported = store
        .list(Some(ORDERS_FLOW), Some(Status::Done))
        .map_err(|e| e.to_string())?;
    let is_imported = |order_no: &str| imported.iter().any(|r| r.source_id == order_no);
    // Orders with a Brightpearl sales order first: their cancellation reaches the ERP too.
    let mut shipped = shipped_orders(store)?;
    shipped.sort_by_key(|(_, order_no)| !is_imported(order_no));
    let http = reqwest::Client::new();
    let mut acts = Vec::new();

    // The shop cancels a booked order (not invoiced: the sandbox's shop refuses those).
    let mut cancelled = None;
    for (basket, order_no) in &shipped {
        let url = format!("{sandbox_url}/_sandbox/norce/orders/{order_no}/cancel");
        let answer = http
            .post(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if answer.status().is_success() {
            cancelled = Some((basket.clone(), order_no.clone()));
            break;
        }
    }
    acts.push(match cancelled {
        Some((basket, order_no)) => planned("cancelled", order_no, CANCEL_FLOW, basket),
        None => not_done("cancelled", "no booked order could be cancelled in Norce"),
    });

    // The operator asks for a return label (`relay return ORDER --service P24`) for another.
    let used = |acts: &[Act], order_no: &str| acts.iter().any(|a| a.order_no == order_no);
    let returnable: Vec<&str> = shipped
        .iter()
        .map(|(_, n)| n.as_str())
        .filter(|n| !used(&acts, n))
        .collect();
    acts.push(first_acted(
        ("returned", RETURN_FLOW, "no booked order to return"),
        returnable,
        |order_no| {
            let requested = crate::operator::request_return(
                store,
                config,
                order_no,
                Some(crate::embedded::RETURN_SERVICE),
                ACTOR,
            );
            requested.ok().map(|r| r.record.source_id)
        },
    ));

    // And refunds a third whole, its stock back in (`relay refund ORDER --restock`).
    let refundable: Vec<&str> = imported
        .iter()
        .map(|r| r.source_id.as_str())
        .filter(|n| !used(&acts, n))
        .collect();
    let request = RefundRequest {
        reason: Some("returned by the customer (embedded sandbox)".to_owned()),
        ..RefundRequest::default()
    };
    acts.push(first_acted(
        ("refunded", REFUND_FLOW, "no imported order to refund"),
        refundable,
        |order_no| {
            let queued = crate::operator::refund(store, config, order_no, &request, ACTOR);
            queued.ok().map(|q| q.record.source_id)
        },
    ));
    Ok(acts)
}

/// The first of `candidates` that `act` queues an entity for (it answers the entity's key), as
/// an [`Act`] of `(what, flow, why none)`; else an act not done, saying why.
fn first_acted<'a>(
    (what, flow, none): (&'static str, &str, &str),
    candidates: impl IntoIterator<Item = &'a str>,
    mut act: impl FnMut(&str) -> Option<String>,
) -> Act {
    for order_no in candidates {
        if let Some(key) = act(order_no) {
            return planned(what, order_no.to_owned(), flow, key);
        }
    }
    not_done(what, none)
}

fn planned(what: &'static str, order_no: String, flow: &str, key: String) -> Act {
    Act {
        what,
        order_no,
        entity: Some((flow.to_owned(), key)),
        outcome: "queued".to_owned(),
        done: false,
    }
}

fn not_done(what: &'static str, why: &str) -> Act {
    Act {
        what,
        order_no: String::new(),
        entity: None,
        outcome: why.to_owned(),
        done: false,
    }
}

impl Act {
    /// Queued but not done after the second pass (an act with no order to act on is not a
    /// failure: a small dataset can lack one).
    pub fn failed(&self) -> bool {
        self.entity.is_some() && !self.done
    }

    /// Reads what became of the act's entity from the state (after the second pass).
    pub fn settle(&mut self, store: &dyn Store) -> Result<(), String> {
        let Some((flow, key)) = &self.entity else {
            return Ok(());
        };
        let record = store
            .get(flow, key)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the {flow} entity {key} is missing from the state"))?;
        self.done = record.status == Status::Done;
        self.outcome = outcome(&record);
        Ok(())
    }
}

/// An entity's outcome in words: what the platforms now hold, or why not.
fn outcome(record: &EntityRecord) -> String {
    let payload: Value = record
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null);
    if record.status != Status::Done {
        return format!(
            "{} (step {}): {}",
            record.status.as_str(),
            record.step.as_deref().unwrap_or("none"),
            record.last_error.as_deref().unwrap_or("see `relay status`")
        );
    }
    let list = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    match record.flow.as_str() {
        CANCEL_FLOW => {
            let shipments = list(&payload["cancelled"]);
            let mut words = match shipments.len() {
                0 => "no shipment to cancel".to_owned(),
                1 => format!("nShift shipment {} cancelled", shipments[0]),
                _ => format!("nShift shipments {} cancelled", shipments.join(", ")),
            };
            if let Some(order) = payload["erp_order_id"].as_str() {
                words.push_str(&format!(
                    "; Brightpearl order {order} set to the cancelled status"
                ));
            }
            words
        }
        RETURN_FLOW => {
            let booked = &payload["booked"];
            let shipments = list(&booked["shipment_ids"]).join(", ");
            // File names only: the summary names the labels folder below.
            let labels: Vec<String> = list(&booked["labels"])
                .iter()
                .map(|path| {
                    std::path::Path::new(path)
                        .file_name()
                        .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned())
                })
                .collect();
            let labels = labels.join(", ");
            format!(
                "return shipment {shipments} ({}) booked; label {labels}",
                booked["service_id"].as_str().unwrap_or("?")
            )
        }
        REFUND_FLOW => {
            let mut words = format!(
                "Brightpearl sales credit {} for {} rows",
                payload["credit_id"],
                payload["lines"].as_array().map_or(0, Vec::len)
            );
            if let Some(note) = payload["goods_in_id"].as_u64() {
                words.push_str(&format!("; stock back in (goods-in note {note})"));
            }
            words
        }
        _ => format!("done (step {})", record.step.as_deref().unwrap_or("none")),
    }
}

/// The lifecycle table for the summary.
pub fn table(acts: &[Act]) -> String {
    let rows: Vec<Vec<String>> = acts
        .iter()
        .map(|act| {
            vec![
                act.what.to_owned(),
                act.order_no.clone(),
                act.entity
                    .as_ref()
                    .map(|(flow, key)| format!("{flow} {key}"))
                    .unwrap_or_default(),
                act.outcome.clone(),
            ]
        })
        .collect();
    crate::table::render(
        &["lifecycle", "order", "entity", "what became of it"],
        &rows,
    )
}
