//! Refunds: a Norce order refunded (in full or some rows) becomes one Brightpearl sales credit
//! for the refunded rows and amounts, and optionally its stock goes back into the warehouse.
//!
//! Norce documents no refund event (`specs/norce/events.yaml`, the `x-open-question` on the
//! event types), so the signal is an operator's action: `relay refund ORDER` or the console's
//! **Refund** on the order's page ([`crate::operator::refund`]). It checks the request against
//! what relay holds (the order known, its Brightpearl sales order created, the SKUs on the order,
//! at most what is left after earlier refunds) and queues one entity of [`REFUND_FLOW`] keyed
//! `{orderNo}-R{n}` (the order's n-th refund, so two partial refunds are two entities). The
//! `orders` pass processes them after its orders:
//!
//! | step recorded | platform call | check on replay |
//! | --- | --- | --- |
//! | `crediting` (before the call) | Brightpearl `POST sales-credit` (`externalRef` = `{orderNo}-R{n}`, `parentId` = the sales order) | `create_sales_credit_once` searches the key first: a credit stored before its answer was lost is found, never posted twice |
//! | `credited` (target id = the credit id) | | |
//! | `restocking` (before the call, with `--restock`) | Brightpearl goods-in note on the credit, into `orders.warehouse_id` at `orders.refund_location_id`, else at each product's default location there | a resumed attempt looks for the credit's note before building one; `receive_credit_stock_once` lists the credit's goods-in notes first |
//! | `restocked` (done) | | |
//!
//! Rows and amounts are those the orders flow sends for the sales order (the same rows, SKU
//! lookup and rounding, `steps::sales_order_rows`), for the refunded quantities: a row's net is
//! its unit price × the refunded quantity, rounded once to cents. The order's `orders` entity
//! gets the step `refunded {orderNo}-R{n}`.

use std::collections::BTreeMap;

use brightpearl_client::models::order::operations::OrderApi as _;
use brightpearl_client::models::order::{
    GetSalesCreditsPath, SalesCreditRequest, SalesOrderCustomer,
};
use brightpearl_client::models::warehouse::{
    GoodsInMovement, GoodsInNoteRequest, GoodsInProductValue,
};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::amount::Amount;
use super::common::{FLOW, OrderPayload};
use super::model::{Line, NorceOrder};
use super::steps::{
    Shared, country_in, find_contact, instance_id, order_address, sales_order_rows,
};
use crate::config::orders::OrdersConfig;
use crate::flows::action::{ItemError, settle};
use crate::flows::context::{FlowContext, FlowError, Outcome, PENDING_PAGE};
use crate::state::{EntityRecord, EntityUpdate, StateError, Status, Store};

/// The entities of refunds (keyed `{orderNo}-R{n}`, also the sales credit's `externalRef`).
pub const REFUND_FLOW: &str = "refund";

/// What an operator asks to refund of one order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RefundRequest {
    /// Rows to refund as (SKU = Norce part number, quantity); empty: everything not refunded yet.
    pub rows: Vec<(String, String)>,
    /// Why (kept on the refund and in the audit log).
    pub reason: Option<String>,
    /// Put the stock back (`None`: `orders.refund_restock`).
    pub restock: Option<bool>,
}

/// One `SKU=QTY` row of a refund request as (SKU, quantity text), for `relay refund --row` and
/// the console's form alike; the quantity is checked against the order when it is planned.
pub fn parse_refund_row(text: &str) -> Result<(String, String), String> {
    match text.rsplit_once('=') {
        Some((sku, qty)) if !sku.trim().is_empty() && !qty.trim().is_empty() => {
            Ok((sku.trim().to_owned(), qty.trim().to_owned()))
        }
        _ => Err(format!("`{text}` is not SKU=QTY (e.g. SKU-1=2)")),
    }
}

/// One refunded order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefundLine {
    /// The Norce line number.
    pub line_no: i32,
    /// Its part number (SKU).
    pub part_no: String,
    /// The quantity refunded.
    pub quantity: Amount,
}

/// What a `refund` entity keeps as its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefundPayload {
    /// The Norce order number.
    pub order_no: String,
    /// The refund's number among the order's refunds (1, 2, …).
    pub seq: u32,
    /// Whether it refunds everything that was left (no rows named).
    pub whole: bool,
    /// The refunded lines.
    pub lines: Vec<RefundLine>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the stock goes back.
    pub restock: bool,
    /// The Brightpearl sales credit, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit_id: Option<u64>,
    /// The goods-in note that put the stock back, once made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goods_in_id: Option<u64>,
}

impl RefundPayload {
    fn to_json(&self) -> Result<String, String> {
        serde_json::to_string(self).map_err(|e| format!("cannot store the refund: {e}"))
    }
}

/// The key of an order's `seq`-th refund: `{orderNo}-R{seq}`.
pub fn refund_key(order_no: &str, seq: u32) -> String {
    format!("{order_no}-R{seq}")
}

/// A refund checked against what relay holds, ready to be queued as `key`.
#[derive(Debug, Clone)]
pub struct PlannedRefund {
    /// The entity key (`{orderNo}-R{n}`).
    pub key: String,
    /// The payload (JSON).
    pub payload: String,
    /// One line for the audit log and the operator: what is refunded.
    pub summary: String,
}

/// Every refund of `order_no` relay holds, by number (the keys are consecutive).
fn earlier_refunds(
    store: &dyn Store,
    order_no: &str,
) -> Result<Vec<(EntityRecord, RefundPayload)>, RefundRefused> {
    let mut found = Vec::new();
    for seq in 1.. {
        let key = refund_key(order_no, seq);
        let Some(record) = store.get(REFUND_FLOW, &key)? else {
            break;
        };
        let payload: RefundPayload = record
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .ok_or_else(|| format!("refund {key} has no readable payload"))?;
        found.push((record, payload));
    }
    Ok(found)
}

/// The refund entities of `order_no`, first to last (for the console's order page).
pub fn refunds_of(store: &dyn Store, order_no: &str) -> Result<Vec<EntityRecord>, StateError> {
    let mut found = Vec::new();
    for seq in 1.. {
        match store.get(REFUND_FLOW, &refund_key(order_no, seq))? {
            Some(record) => found.push(record),
            None => break,
        }
    }
    Ok(found)
}

/// Why a refund cannot be queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefundRefused {
    /// The order, a row or a quantity does not allow it; the text says what to do.
    #[error("{0}")]
    Invalid(String),
    /// The state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<String> for RefundRefused {
    fn from(reason: String) -> Self {
        Self::Invalid(reason)
    }
}

/// Checks a refund of `order_no` against what relay holds and plans it as the order's next
/// refund: no platform call. The errors name the problem and what to do.
pub fn plan_refund(
    store: &dyn Store,
    config: &OrdersConfig,
    order_no: &str,
    request: &RefundRequest,
) -> Result<PlannedRefund, RefundRefused> {
    let order_no = order_no.trim();
    let Some(record) = store.get(FLOW, order_no)? else {
        return Err(format!(
            "order {order_no} is unknown to relay: no Norce order with this number was imported (check the number; `relay status` lists the orders flow)"
        ).into());
    };
    if record.target_id.is_none() {
        return Err(format!(
            "order {order_no} has no Brightpearl sales order yet (status {}, step {}): nothing to credit; run `relay run` (or let `relay serve` import it), then refund",
            record.status.as_str(),
            record.step.as_deref().unwrap_or("none")
        ).into());
    }
    let payload: OrderPayload = record
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| format!("order {order_no}: the stored Norce order cannot be read"))?;
    let order = payload
        .normalise(config)
        .map_err(|problem| format!("order {order_no}: {problem}"))?;
    let earlier = earlier_refunds(store, order_no)?;
    // What earlier refunds took, per line (a skipped one never will).
    let mut refunded: BTreeMap<i32, Amount> = BTreeMap::new();
    for (record, payload) in &earlier {
        if record.status == Status::Skipped {
            continue;
        }
        for line in &payload.lines {
            let sum = refunded.entry(line.line_no).or_default();
            *sum = add(*sum, line.quantity);
        }
    }
    let left = |line: &Line| {
        sub(
            line.quantity,
            refunded.get(&line.line_no).copied().unwrap_or_default(),
        )
    };
    let mut lines = Vec::new();
    if request.rows.is_empty() {
        for line in &order.lines {
            let left = left(line);
            if left.is_positive() {
                lines.push(RefundLine {
                    line_no: line.line_no,
                    part_no: line.part_no.clone(),
                    quantity: left,
                });
            }
        }
        if lines.is_empty() {
            return Err(format!(
                "order {order_no} is refunded in full already ({} earlier refund(s)); nothing is left to credit",
                earlier.len()
            ).into());
        }
    } else {
        let mut asked: Vec<(String, Amount)> = Vec::new();
        for (sku, quantity) in &request.rows {
            let sku = sku.trim();
            let quantity = Amount::parse(quantity)
                .filter(|q| q.is_positive())
                .ok_or_else(|| format!("row {sku}: `{quantity}` is not a positive quantity"))?;
            match asked.iter_mut().find(|(s, _)| s == sku) {
                Some((_, q)) => *q = add(*q, quantity),
                None => asked.push((sku.to_owned(), quantity)),
            }
        }
        for (sku, quantity) in asked {
            let on_order: Vec<&Line> = order.lines.iter().filter(|l| l.part_no == sku).collect();
            if on_order.is_empty() {
                let skus: Vec<&str> = order.lines.iter().map(|l| l.part_no.as_str()).collect();
                return Err(format!(
                    "SKU `{sku}` is not on order {order_no} (its rows: {})",
                    skus.join(", ")
                )
                .into());
            }
            let ordered = on_order
                .iter()
                .fold(Amount::ZERO, |sum, l| add(sum, l.quantity));
            let available = on_order
                .iter()
                .fold(Amount::ZERO, |sum, l| add(sum, left(l)));
            if quantity > available {
                return Err(format!(
                    "SKU `{sku}` of order {order_no}: {quantity} asked, but only {available} of the {ordered} ordered are left after earlier refunds"
                ).into());
            }
            // Spread over the SKU's lines in order (one line per SKU in practice).
            let mut rest = quantity;
            for line in on_order {
                if !rest.is_positive() {
                    break;
                }
                let take = rest.min(left(line));
                if take.is_positive() {
                    lines.push(RefundLine {
                        line_no: line.line_no,
                        part_no: line.part_no.clone(),
                        quantity: take,
                    });
                    rest = sub(rest, take);
                }
            }
        }
    }
    let restock = request.restock.unwrap_or(config.refund_restock);
    let seq = u32::try_from(earlier.len())
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    let reason = request
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    let planned = RefundPayload {
        order_no: order_no.to_owned(),
        seq,
        whole: request.rows.is_empty(),
        lines,
        reason,
        restock,
        credit_id: None,
        goods_in_id: None,
    };
    let rows: Vec<String> = planned
        .lines
        .iter()
        .map(|l| format!("{} × {}", l.part_no, l.quantity))
        .collect();
    let summary = format!(
        "refund of order {order_no}{}: {}{}{}",
        if planned.whole {
            " (all that was left)"
        } else {
            ""
        },
        rows.join(", "),
        if restock { "; stock put back" } else { "" },
        planned
            .reason
            .as_deref()
            .map(|r| format!("; reason: {r}"))
            .unwrap_or_default()
    );
    Ok(PlannedRefund {
        key: refund_key(order_no, seq),
        payload: planned.to_json()?,
        summary,
    })
}

/// `a + b` (quantities of one order: never near the range's end).
fn add(a: Amount, b: Amount) -> Amount {
    a.checked_add(b).unwrap_or(a)
}

/// `a - b`, at least zero.
fn sub(a: Amount, b: Amount) -> Amount {
    a.checked_sub(b)
        .filter(|d| *d >= Amount::ZERO)
        .unwrap_or(Amount::ZERO)
}

/// Processes every pending refund, a page at a time (after the pass's orders).
pub(super) async fn run_refunds(
    ctx: &FlowContext,
    shared: &Shared<'_>,
) -> Result<Vec<Outcome>, FlowError> {
    let mut outcomes = Vec::new();
    let mut after = 0;
    while !ctx.stopping.is_set() {
        let page = ctx
            .store
            .list_after(REFUND_FLOW, Some(Status::Pending), after, PENDING_PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for record in page {
            if ctx.stopping.is_set() {
                break;
            }
            let span = tracing::info_span!(
                "flow_step",
                flow = REFUND_FLOW,
                step = "refund",
                source_id = record.source_id.as_str()
            );
            let result = process(ctx, shared, &record).instrument(span).await;
            outcomes.push(settle(ctx, REFUND_FLOW, &record.source_id, result)?);
        }
    }
    Ok(outcomes)
}

/// Records the refund's payload and step (and target id, once known).
fn record_step(
    ctx: &FlowContext,
    key: &str,
    payload: &RefundPayload,
    step: &str,
    done: bool,
) -> Result<(), ItemError> {
    ctx.store.update(
        REFUND_FLOW,
        key,
        &EntityUpdate {
            status: done.then_some(Status::Done),
            step: Some(step.to_owned()),
            target_id: payload.credit_id.map(|id| id.to_string()),
            payload: Some(payload.to_json().map_err(ItemError::permanent)?),
            clear_error: done,
        },
    )?;
    Ok(())
}

async fn process(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    record: &EntityRecord,
) -> Result<Outcome, ItemError> {
    let key = record.source_id.as_str();
    let mut refund: RefundPayload = record
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .ok_or_else(|| {
            ItemError::permanent(format!(
                "refund {key} has no readable payload; mark it resolved and refund again"
            ))
        })?;
    let Some(order_record) = ctx.store.get(FLOW, &refund.order_no)? else {
        return Err(ItemError::permanent(format!(
            "order {} is no longer in relay's state; credit it in Brightpearl by hand",
            refund.order_no
        )));
    };
    let sales_order: i64 = order_record
        .target_id
        .as_deref()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            ItemError::permanent(format!(
                "order {} has no Brightpearl sales order recorded",
                refund.order_no
            ))
        })?;
    let (payload, order) = super::steps::load(ctx, &order_record)?;
    let mut outcome = Outcome::default();
    if refund.credit_id.is_none() {
        // The intent first: a crash after the POST leaves `crediting`, and the retry's
        // search by `externalRef` finds what was stored.
        record_step(ctx, key, &refund, "crediting", false)?;
        let request =
            credit_request(ctx, shared, key, &refund, &payload, &order, sales_order).await?;
        let created = shared
            .brightpearl
            .create_sales_credit_once(&request)
            .await
            .map_err(|e| ItemError::call(&format!("sales credit {key}"), e))?;
        if matches!(created, brightpearl_client::SalesCreditOutcome::Existing(_)) {
            tracing::info!(
                key,
                credit_id = created.id(),
                "sales credit found by its externalRef (an earlier attempt); not posted again"
            );
        } else {
            tracing::info!(
                key,
                credit_id = created.id(),
                "Brightpearl sales credit created"
            );
        }
        refund.credit_id = Some(created.id());
        record_step(ctx, key, &refund, "credited", false)?;
        ctx.store.update(
            FLOW,
            &refund.order_no,
            &EntityUpdate {
                step: Some(format!("refunded {key}")),
                ..EntityUpdate::default()
            },
        )?;
    }
    let credit_id = refund.credit_id.unwrap_or_default();
    if refund.restock && refund.goods_in_id.is_none() {
        // A resumed attempt may have posted the note already: found, nothing is built (its
        // products may have changed since).
        let posted = match record.step.as_deref() {
            Some("restocking") => shared
                .brightpearl
                .credit_goods_in_note(credit_id)
                .await
                .map_err(|e| {
                    ItemError::call(&format!("goods-in notes of credit {credit_id}"), e)
                })?,
            _ => None,
        };
        record_step(ctx, key, &refund, "restocking", false)?;
        if let Some(id) = posted {
            tracing::info!(
                key,
                credit_id,
                goods_in_id = id,
                "goods-in note found (an earlier attempt); not built again"
            );
            refund.goods_in_id = Some(id);
        } else if let Some(note) = goods_in_request(ctx, shared, key, credit_id, &order).await? {
            let received = shared
                .brightpearl
                .receive_credit_stock_once(credit_id, &note)
                .await
                .map_err(|e| ItemError::call(&format!("goods-in note of credit {credit_id}"), e))?;
            tracing::info!(
                key,
                credit_id,
                goods_in_id = received.id(),
                "refunded stock put back"
            );
            refund.goods_in_id = Some(received.id());
        } else {
            tracing::info!(
                key,
                credit_id,
                "no stock-tracked product refunded; no stock to put back"
            );
        }
        record_step(ctx, key, &refund, "restocked", true)?;
    } else {
        let step = if refund.goods_in_id.is_some() {
            "restocked"
        } else {
            "credited"
        };
        record_step(ctx, key, &refund, step, true)?;
    }
    outcome.done = true;
    Ok(outcome)
}

/// The sales credit of a refund: the order's customer, currency, price list, warehouse and
/// channel, the refunded rows as the sales order has them, linked by `parentId`.
async fn credit_request(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    key: &str,
    refund: &RefundPayload,
    payload: &OrderPayload,
    order: &NorceOrder,
    sales_order: i64,
) -> Result<SalesCreditRequest, ItemError> {
    let config = &ctx.config.orders;
    // The order's lines with the refunded quantities: the rows come out of the orders flow's
    // own row builder, so products, tax and rounding are the sales order's.
    let mut refunded = order.clone();
    refunded.lines = refund
        .lines
        .iter()
        .map(|r| {
            let line = order
                .lines
                .iter()
                .find(|l| l.line_no == r.line_no && l.part_no == r.part_no)
                .ok_or_else(|| {
                    ItemError::permanent(format!(
                        "refund {key}: line {} ({}) is no longer on order {}",
                        r.line_no, r.part_no, order.order_no
                    ))
                })?;
            Ok(Line {
                quantity: r.quantity,
                ..line.clone()
            })
        })
        .collect::<Result<_, ItemError>>()?;
    let (rows, _) = sales_order_rows(ctx, shared, &refunded).await?;
    let contact = match payload.contact_id {
        Some(contact) => contact,
        None => find_contact(shared.brightpearl, order)
            .await?
            .ok_or_else(|| {
                ItemError::permanent(format!(
                    "refund {key}: no Brightpearl contact has the order's e-mail"
                ))
            })?,
    };
    let currency = order
        .currency
        .as_ref()
        .map(|code| {
            serde_json::from_value(serde_json::json!({ "code": code }))
                .map_err(|e| ItemError::permanent(format!("refund {key}: currency `{code}`: {e}")))
        })
        .transpose()?;
    let country = country_in(config.sales_order_country_code, order)?;
    Ok(SalesCreditRequest {
        customer: SalesOrderCustomer {
            id: contact,
            address: Some(order_address(order, country)),
        },
        billing: None,
        ref_: Some(order.order_no.clone()),
        external_ref: Some(key.to_owned()),
        parent_id: Some(sales_order.to_string()),
        placed_on: None,
        tax_date: None,
        installed_integration_instance_id: instance_id(ctx, shared.brightpearl),
        warehouse_id: Some(config.warehouse_id),
        status_id: None,
        channel_id: config.channel_id,
        price_list_id: Some(config.price_list_id),
        price_mode_code: None,
        currency,
        delivery: None,
        rows,
    })
}

/// The goods-in note that puts a credit's products back: its product rows (read from the
/// credit, for their row ids) into `orders.warehouse_id`, each at [`destinations`]. `None`
/// when the credit has no product row.
async fn goods_in_request(
    ctx: &FlowContext,
    shared: &Shared<'_>,
    key: &str,
    credit_id: u64,
    order: &NorceOrder,
) -> Result<Option<GoodsInNoteRequest>, ItemError> {
    let config = &ctx.config.orders;
    let path = GetSalesCreditsPath {
        account: shared.brightpearl.account().to_owned(),
        id_set: credit_id.to_string(),
    };
    let credits = shared
        .brightpearl
        .get_sales_credits(&path)
        .await
        .map_err(|e| ItemError::call(&format!("sales credit {credit_id}"), e))?;
    let Some(credit) = credits
        .response
        .into_iter()
        .find(|c| u64::try_from(c.id).ok() == Some(credit_id))
    else {
        return Err(ItemError::transient(format!(
            "sales credit {credit_id} of refund {key} is not readable yet"
        )));
    };
    let mut moved = Vec::new();
    for row in credit.rows.unwrap_or_default() {
        let Some(product) = row.product_id else {
            continue;
        };
        let quantity = row
            .quantity
            .as_ref()
            .and_then(|q| Amount::parse(&q.to_string()))
            .and_then(Amount::to_int)
            .unwrap_or(0);
        if quantity <= 0 {
            continue;
        }
        // The unit's value: the row's net over its quantity (what the customer paid).
        let value = row
            .net
            .as_ref()
            .and_then(|net| Amount::parse(&net.to_string()))
            .and_then(|net| net.div_int(quantity))
            .and_then(|v| super::common::decimal(v, key).ok());
        moved.push(GoodsInMovement {
            product_id: product,
            purchase_order_row_id: Some(row.id),
            quantity,
            destination_location_id: None,
            product_value: order.currency.clone().map(|currency| GoodsInProductValue {
                currency: Some(currency),
                value,
            }),
        });
    }
    if moved.is_empty() {
        return Ok(None);
    }
    // Only the products that move need a location.
    let products: Vec<i64> = moved.iter().map(|m| m.product_id).collect();
    let locations = destinations(shared, config, key, &products).await?;
    for movement in &mut moved {
        movement.destination_location_id = locations.get(&movement.product_id).copied();
    }
    Ok(Some(GoodsInNoteRequest {
        transfer: Some(false),
        warehouse_id: config.warehouse_id,
        user_batch_reference: Some(key.to_owned()),
        received_on: None,
        goods_moved: moved,
    }))
}

/// Where each of `products` (those the note moves, at least one) is put back:
/// `orders.refund_location_id` when it is set, else the product's default location in
/// `orders.warehouse_id`, read from its Brightpearl record (one product GET for the note). A
/// product without one is a permanent failure naming both settings.
async fn destinations(
    shared: &Shared<'_>,
    config: &OrdersConfig,
    key: &str,
    products: &[i64],
) -> Result<BTreeMap<i64, i64>, ItemError> {
    if let Some(location) = config.refund_location_id {
        return Ok(products.iter().map(|p| (*p, location)).collect());
    }
    let ids: Vec<u64> = products
        .iter()
        .filter_map(|p| u64::try_from(*p).ok())
        .collect();
    let records = shared
        .brightpearl
        .products(&ids)
        .await
        .map_err(|e| ItemError::call(&format!("the products of refund {key}"), e))?;
    let warehouse = config.warehouse_id.to_string();
    let default_location = |product: i64| {
        let record = records.iter().find(|r| r.id == product)?;
        record
            .warehouses
            .as_ref()?
            .get(&warehouse)?
            .default_location_id
    };
    let mut locations = BTreeMap::new();
    for &product in products {
        let Some(location) = default_location(product) else {
            return Err(ItemError::permanent(format!(
                "refund {key} puts product {product} back, but it has no default location in warehouse {warehouse} (`orders.warehouse_id`): give it one in Brightpearl, or set `orders.refund_location_id`, then `relay replay`"
            )));
        };
        locations.insert(product, location);
    }
    Ok(locations)
}
