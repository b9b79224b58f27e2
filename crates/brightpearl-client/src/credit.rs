//! Sales credits (refunds and returns) created at most once per natural key, and their stock
//! put back at most once (a goods-in note on the credit).
//!
//! Brightpearl documents `externalRef` + `installedIntegrationInstanceId` as a unique key of a
//! sales credit but not what a second POST with the same key answers, and a timed-out POST may
//! have created the credit. So the key is looked up in the order search (credits are orders of
//! type 3) before every create, and once more after a failed one.

use std::collections::BTreeMap;

use brightpearl_models::order::operations::OrderApi as _;
use brightpearl_models::order::{self, SalesCreditRequest};
use brightpearl_models::warehouse::operations::WarehouseApi as _;
use brightpearl_models::warehouse::{self, GoodsInNote, GoodsInNoteRequest};

use crate::client::Client;
use crate::error::{Error, NothingFound as _, Result};
use crate::search::{OrderRow, SearchQuery, SearchResource};

/// `orderTypeId` of a sales credit in the order search.
pub const SALES_CREDIT_ORDER_TYPE_ID: u64 = 3;

/// What [`Client::create_sales_credit_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SalesCreditOutcome {
    /// The credit was created now, with this id.
    Created(u64),
    /// A credit with the same natural key already existed (an earlier attempt): its id.
    Existing(u64),
}

impl SalesCreditOutcome {
    /// The credit id, created or found.
    pub fn id(self) -> u64 {
        match self {
            Self::Created(id) | Self::Existing(id) => id,
        }
    }
}

impl Client {
    /// The id of the sales credit with exactly this `externalRef` (and integration instance,
    /// when given), by `order-search?orderTypeId=3&externalRef=…`; `None` when there is none.
    /// The lowest id wins if an account holds several (created before the key was unique).
    pub async fn find_sales_credit(
        &self,
        external_ref: &str,
        installed_integration_instance_id: Option<i64>,
    ) -> Result<Option<u64>> {
        let mut query = SearchQuery::new()
            .filter("orderTypeId", SALES_CREDIT_ORDER_TYPE_ID.to_string())
            .filter("externalRef", external_ref);
        if let Some(instance) = installed_integration_instance_id {
            query = query.filter("installedIntegrationInstanceId", instance.to_string());
        }
        let query = query.columns(["orderId", "externalRef"]);
        let rows: Vec<OrderRow> = self.search_all(SearchResource::Orders, query).await?;
        // STRING filters are not documented as exact: keep only the exact key.
        Ok(rows
            .into_iter()
            .filter(|r| r.external_ref.as_deref() == Some(external_ref))
            .map(|r| r.order_id)
            .min())
    }

    /// Creates the sales credit unless one with its `externalRef` (and
    /// `installedIntegrationInstanceId`) exists: search first, then `POST sales-credit`. After
    /// a failed POST the key is looked up once more (a duplicate refused, or an earlier attempt
    /// that landed meanwhile) before the failure is returned. `externalRef` is required: it is
    /// what makes a retry safe.
    pub async fn create_sales_credit_once(
        &self,
        credit: &SalesCreditRequest,
    ) -> Result<SalesCreditOutcome> {
        let op = order::operations::CREATE_SALES_CREDIT.id;
        let Some(key) = credit.external_ref.as_deref().map(str::trim) else {
            return Err(Error::invalid(
                op,
                "externalRef is required (the natural key)",
            ));
        };
        if key.is_empty() || key != credit.external_ref.as_deref().unwrap_or_default() {
            return Err(Error::invalid(
                op,
                "externalRef must be non-empty without surrounding blanks",
            ));
        }
        let instance = credit.installed_integration_instance_id;
        if let Some(id) = self.find_sales_credit(key, instance).await? {
            return Ok(SalesCreditOutcome::Existing(id));
        }
        let path = order::CreateSalesCreditPath {
            account: self.account().to_owned(),
        };
        match self.create_sales_credit(&path, credit).await {
            Ok(created) => Ok(SalesCreditOutcome::Created(id_of(created.response))),
            Err(error) => match self.find_sales_credit(key, instance).await {
                Ok(Some(id)) => Ok(SalesCreditOutcome::Existing(id)),
                // The create's failure is what the caller decides on (retry, dead letter).
                _ => Err(error),
            },
        }
    }
}

/// Brightpearl ids are positive; a negative one would be a broken answer, kept visible as 0.
fn id_of(id: i64) -> u64 {
    u64::try_from(id).unwrap_or_default()
}

/// What [`Client::receive_credit_stock_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoodsInOutcome {
    /// The stock was received now, on the goods-in note with this id.
    Created(u64),
    /// The credit already had a goods-in note (an earlier attempt): its id.
    Existing(u64),
}

impl GoodsInOutcome {
    /// The goods-in note id, created or found.
    pub fn id(self) -> u64 {
        match self {
            Self::Created(id) | Self::Existing(id) => id,
        }
    }
}

impl Client {
    /// The goods-in notes of one order (a sales credit), keyed by note id, by
    /// `GET /warehouse-service/order/{id}/goods-note/goods-in`; "nothing found" is empty.
    pub async fn goods_in_notes_of(&self, order_id: u64) -> Result<BTreeMap<String, GoodsInNote>> {
        let path = warehouse::GetGoodsInNotesForOrdersPath {
            account: self.account().to_owned(),
            order_id_set: order_id.to_string(),
        };
        Ok(self
            .get_goods_in_notes_for_orders(&path)
            .await
            .or_empty()?
            .response)
    }

    /// The id of the goods-in note that put the stock of sales credit `credit_id` back (its
    /// lowest note), if it has one.
    pub async fn credit_goods_in_note(&self, credit_id: u64) -> Result<Option<u64>> {
        Ok(first_note(&self.goods_in_notes_of(credit_id).await?))
    }

    /// Puts the stock of sales credit `credit_id` back into a warehouse once: a goods-in note
    /// on the credit (`POST /warehouse-service/order/{creditId}/goods-note/goods-in`) unless
    /// the credit has one already. The goods-in note POST is not idempotent, so the credit's
    /// notes are listed first, and once more after a failed POST (an answer lost after
    /// Brightpearl stored the note) before the failure is returned. One note per credit: a
    /// refund's stock goes back in one note, so any note found means it is done.
    pub async fn receive_credit_stock_once(
        &self,
        credit_id: u64,
        note: &GoodsInNoteRequest,
    ) -> Result<GoodsInOutcome> {
        if let Some(id) = self.credit_goods_in_note(credit_id).await? {
            return Ok(GoodsInOutcome::Existing(id));
        }
        let path = warehouse::CreateGoodsInNotePath {
            account: self.account().to_owned(),
            order_id_set: credit_id.to_string(),
        };
        match self.create_goods_in_note(&path, note).await {
            Ok(created) => Ok(GoodsInOutcome::Created(id_of(created.response))),
            // The POST's failure is what the caller decides on (retry, dead letter) unless the
            // note is there after all.
            Err(error) => match self.credit_goods_in_note(credit_id).await {
                Ok(Some(id)) => Ok(GoodsInOutcome::Existing(id)),
                Ok(None) | Err(_) => Err(error),
            },
        }
    }
}

/// The lowest note id of a goods-in note map (keys are numeric strings).
fn first_note(notes: &BTreeMap<String, GoodsInNote>) -> Option<u64> {
    notes
        .iter()
        .filter_map(|(key, note)| {
            note.goods_note_id
                .and_then(|id| u64::try_from(id).ok())
                .or_else(|| key.parse().ok())
        })
        .min()
}
