//! What the HTTP handlers and the background tasks of `relay serve` share, and the inbox lanes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::listener;
use super::metrics::Metrics;
use super::secrets::ServeSecrets;
use super::subscriptions::WebhookRegistration;
use crate::config::ServeConfig;
use crate::flows::context::{SOURCE_BRIGHTPEARL_WEBHOOK, SOURCE_NORCE_EVENT, SOURCE_NORCE_ORDER};
use crate::flows::{Flow, FlowContext};
use crate::state::{InboxLane, Store};

/// Norce's order traffic: its own inbox lane.
const NORCE_SOURCES: &[&str] = &[SOURCE_NORCE_ORDER, SOURCE_NORCE_EVENT];

/// The inbox lanes, each drained by its own processor, so that a burst of Brightpearl webhooks
/// (each marking up to `stock.webhook_max_ids` products) never holds back Norce's orders.
pub(crate) const INBOX_LANES: [InboxLane; 2] = [
    InboxLane::Of(NORCE_SOURCES),
    InboxLane::Except(NORCE_SOURCES),
];

/// The lane (index into [`INBOX_LANES`]) of an item of `source`.
pub(crate) fn inbox_lane(source: &str) -> usize {
    usize::from(!INBOX_LANES[0].contains(source))
}

/// What the HTTP handlers and the background tasks share.
pub(crate) struct Shared {
    pub(crate) ctx: FlowContext,
    pub(crate) config: ServeConfig,
    pub(crate) secrets: ServeSecrets,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) flows: Vec<Arc<dyn Flow>>,
    /// The listener's connection counters (for `/metrics`).
    pub(crate) connections: Arc<listener::Counters>,
    /// Wakes the inbox processor of each of [`INBOX_LANES`].
    pub(crate) inbox_wake: [tokio::sync::Notify; 2],
    /// Items committed to the inbox by the receivers (new or duplicate), for waiters.
    pub(crate) accepted: watch::Sender<u64>,
    /// Inbox items processed (done) by the processor, for waiters.
    pub(crate) processed: watch::Sender<u64>,
    /// Flow passes finished (ok or stopped), for waiters.
    pub(crate) runs: watch::Sender<u64>,
    /// Where the Brightpearl webhook registration stands.
    pub(crate) webhooks: watch::Sender<WebhookRegistration>,
    /// Starts a pass of each flow (by [`Flow::name`]) at once: the inbox processor after an
    /// item gave the flow work, the console after an operator's retry or cursor change.
    pub(crate) triggers: Vec<(&'static str, Arc<tokio::sync::Notify>)>,
    /// The failure alerts (`[alerts]`), when a channel is set.
    pub(crate) alerts: Option<crate::alerts::Alerter>,
}

impl Shared {
    pub(crate) fn store(&self) -> &dyn Store {
        self.ctx.store.as_ref()
    }

    /// Starts a pass of the flow that keeps the entities of `entity_flow` (`prices` is kept by
    /// `stock`); nothing when no flow does.
    pub(crate) fn trigger_entity_flow(&self, entity_flow: &str) {
        let Some(flow) = self
            .flows
            .iter()
            .find(|f| f.name() == entity_flow || f.entity_flows().contains(&entity_flow))
        else {
            return;
        };
        if let Some((_, trigger)) = self.triggers.iter().find(|(name, _)| *name == flow.name()) {
            trigger.notify_one();
        }
    }

    /// Each receiver (named by its inbox source), whether it is enabled (its secret is set), and
    /// the variable that sets the secret.
    pub(crate) fn receivers(&self) -> [(&'static str, bool, &str); 3] {
        [
            (
                SOURCE_NORCE_ORDER,
                self.secrets.order_receiver_password.is_some(),
                &self.config.order_receiver_password_env,
            ),
            (
                SOURCE_NORCE_EVENT,
                self.secrets.norce_webhook_secret.is_some(),
                &self.config.norce_webhook_secret_env,
            ),
            (
                SOURCE_BRIGHTPEARL_WEBHOOK,
                self.secrets.brightpearl_webhook_secret.is_some(),
                &self.config.brightpearl_webhook_secret_env,
            ),
        ]
    }
}

/// Durations from `[serve]` seconds, `None` for 0.
pub(crate) fn every(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}
