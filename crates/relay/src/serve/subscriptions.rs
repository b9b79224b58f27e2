//! Registration of `relay serve`'s own Brightpearl webhook subscriptions at start.
//!
//! Brightpearl only pushes events someone subscribed to, so at start (in the background: the
//! receivers answer meanwhile) the server makes sure that every event of
//! `[serve] brightpearl_webhook_events` has exactly one subscription pointing at its
//! `POST /brightpearl/webhooks` receiver:
//!
//! 1. list the account's webhooks (`GET /integration-service/webhook`);
//! 2. per event, *ours* are the subscriptions to that event whose `uriTemplate` is our
//!    destination (`{serve.public_url}/brightpearl/webhooks`) once its `secret` query value is
//!    left out; other integrations' subscriptions (another destination) are never touched;
//! 3. one of ours that carries the current secret and our settings (POST, the body template,
//!    `application/json`, `idSetAccepted`, quality of service 1) is kept (*already present*);
//!    otherwise one is created (*registered*, or *replaced* when ours existed with a rotated
//!    secret or older settings); every other one of ours (stale or a duplicate) is deleted after
//!    the new one exists, so events keep arriving throughout;
//! 4. when something was created, the list is read again and duplicates another process created
//!    at the same moment are removed (the lowest id is kept), so a subscription is never doubled;
//! 5. ours for events no longer configured are deleted (*unsubscribed*).
//!
//! A failure (e.g. `400 INTC-064` for an event the account cannot subscribe to) only concerns
//! its event: it is logged as a warning with Brightpearl's message, shown in `/healthz` and in
//! the `relay_brightpearl_webhook_subscriptions` metric, and serve keeps running (the flows'
//! polling and reconciliation cover what webhooks would have announced).
//!
//! The secret is part of the registered URI (Brightpearl cannot send headers), but it never
//! appears in logs, errors, `Debug` output or `/healthz`: URIs are shown with the value
//! replaced by the one redaction marker ([`models_runtime::redact`]), and platform messages are
//! scrubbed of it.

use brightpearl_client::NothingFound as _;
use brightpearl_client::models::integration::operations::IntegrationApi as _;
use brightpearl_client::models::integration::{
    CreateWebhookPath, DeleteWebhookPath, ListWebhooksPath, Webhook, WebhookEventName,
    WebhookHttpMethod, WebhookRequest,
};
use models_runtime::redact::{REDACTED, redact_url};
use reqwest::Url;
use serde::Serialize;
use tracing::Instrument as _;

use super::secrets::{ExposeSecret, SecretString, ServeSecrets, secret_matches};
use crate::config::ServeConfig;

/// The path of the Brightpearl receiver below `serve.public_url`.
pub const RECEIVER_PATH: &str = "/brightpearl/webhooks";

/// The query parameter carrying the shared secret in the registered URI.
pub const SECRET_PARAM: &str = "secret";

/// What Brightpearl posts: a `WebhookEvent` (ids only) built from its template variables.
pub const BODY_TEMPLATE: &str = concat!(
    r#"{"accountCode":"${account-code}","resourceType":"${resource-type}","id":"${resource-id}","#,
    r#""lifecycleEvent":"${lifecycle-event}","fullEvent":"${full-event}","raisedOn":"${raised-on}","#,
    r#""brightpearlVersion":"${brightpearl-version}"}"#
);

/// Content type of the posted body.
pub const CONTENT_TYPE: &str = "application/json";

/// At-least-once delivery (the receiver is idempotent).
pub const QUALITY_OF_SERVICE: i64 = 1;

/// What happened to one configured event's subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SubscriptionOutcome {
    /// None of ours existed; one was created.
    Registered,
    /// Ours existed with the current secret and settings; nothing was created.
    AlreadyPresent,
    /// Ours existed with another secret (or older settings); a new one was created and the
    /// stale one deleted.
    Replaced,
    /// Brightpearl refused or could not be reached; see the error.
    Failed,
    /// Ours for an event no longer in `serve.brightpearl_webhook_events`: deleted.
    Unsubscribed,
}

impl SubscriptionOutcome {
    /// Every outcome, in the order the metric lists them.
    pub const ALL: [SubscriptionOutcome; 5] = [
        Self::Registered,
        Self::AlreadyPresent,
        Self::Replaced,
        Self::Failed,
        Self::Unsubscribed,
    ];

    /// The name in `/healthz` and the metric's `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::AlreadyPresent => "already_present",
            Self::Replaced => "replaced",
            Self::Failed => "failed",
            Self::Unsubscribed => "unsubscribed",
        }
    }
}

/// One configured event's subscription after registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionReport {
    /// The event (`product.modified.on-hand-modified`).
    pub event: String,
    /// What happened.
    pub outcome: SubscriptionOutcome,
    /// The subscription in force (`None` when none could be created).
    pub webhook_id: Option<i64>,
    /// The registered URI with its secret redacted (`secret=[redacted]`).
    pub uri: String,
    /// Subscriptions of ours deleted because they were stale (rotated secret, older settings) or
    /// duplicates.
    pub removed: Vec<i64>,
    /// Why it failed (Brightpearl's message; never the secret).
    pub error: Option<String>,
    /// The failure may pass (Brightpearl unreachable, throttled, 5xx): serve tries again later
    /// (`serve.brightpearl_webhook_retry_secs`). A refusal such as `INTC-064` is not retried.
    pub transient: bool,
}

/// Where registration stands, as `/healthz` (`brightpearl_webhooks`) and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WebhookRegistration {
    /// Running (the receivers already answer).
    Pending {
        /// The events being registered.
        events: Vec<String>,
    },
    /// Not attempted; the reason names the setting to change.
    Skipped {
        /// Why.
        reason: String,
    },
    /// Done: one report per configured event.
    Finished {
        /// The events' outcomes, in configuration order.
        subscriptions: Vec<SubscriptionReport>,
    },
}

impl WebhookRegistration {
    /// Whether registration is over (skipped or finished).
    pub fn is_settled(&self) -> bool {
        !matches!(self, Self::Pending { .. })
    }

    /// The report of `event`, once finished.
    pub fn subscription(&self, event: &str) -> Option<&SubscriptionReport> {
        match self {
            Self::Finished { subscriptions } => subscriptions.iter().find(|s| s.event == event),
            _ => None,
        }
    }

    /// The state name (`pending`, `skipped`, `finished`).
    pub fn state(&self) -> &'static str {
        match self {
            Self::Pending { .. } => "pending",
            Self::Skipped { .. } => "skipped",
            Self::Finished { .. } => "finished",
        }
    }
}

/// Our subscription's URI: the full one (with the secret) and its forms without the secret.
#[derive(Clone)]
pub(crate) struct Target {
    /// `{public_url}/brightpearl/webhooks?secret=…`: what is registered. Never shown.
    uri: String,
    /// The URI without its `secret` parameter: what "our destination" means.
    destination: String,
    /// The URI with the secret redacted.
    shown: String,
    /// The secret, to compare existing subscriptions' values with.
    secret: SecretString,
    /// The secret as it appears in `uri` (percent-encoded), to scrub from messages.
    encoded_secret: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("uri", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// The URI for `public_url` (validated by [`ServeConfig::validate`]) and `secret`.
    pub(crate) fn new(public_url: &str, secret: &SecretString) -> Result<Self, String> {
        let base = format!("{}{RECEIVER_PATH}", public_url.trim().trim_end_matches('/'));
        let mut url = Url::parse(&base).map_err(|e| format!("`{base}` is not a URL: {e}"))?;
        url.query_pairs_mut()
            .append_pair(SECRET_PARAM, secret.expose_secret());
        let uri = url.to_string();
        let encoded_secret = url
            .query()
            .and_then(|q| q.strip_prefix(&format!("{SECRET_PARAM}=")))
            .map(str::to_owned)
            .unwrap_or_default();
        let (destination, _) = split(&uri).ok_or_else(|| format!("`{base}` is not a URL"))?;
        Ok(Self {
            shown: redact_url(&uri),
            uri,
            destination,
            secret: secret.clone(),
            encoded_secret,
        })
    }

    /// The URI with the secret redacted.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// `text` with its secret parameters redacted and every other occurrence of the secret
    /// (decoded or as the URI carries it) replaced by the marker too.
    fn scrub(&self, text: &str) -> String {
        let mut out = redact_url(text);
        for value in [self.secret.expose_secret(), self.encoded_secret.as_str()] {
            if !value.is_empty() {
                out = out.replace(value, REDACTED);
            }
        }
        out
    }

    fn request(&self, event: &str) -> WebhookRequest {
        WebhookRequest {
            subscribe_to: WebhookEventName::from(event),
            http_method: WebhookHttpMethod::Post,
            uri_template: self.uri.clone(),
            body_template: Some(BODY_TEMPLATE.to_owned()),
            content_type: Some(CONTENT_TYPE.to_owned()),
            id_set_accepted: Some(true),
            quality_of_service: Some(QUALITY_OF_SERVICE),
        }
    }
}

/// `uri` without its `secret` parameter (other parameters kept in order), and the secret's
/// decoded value; `None` when `uri` is not a URL (another integration's template, say).
fn split(uri: &str) -> Option<(String, Option<String>)> {
    let mut url = Url::parse(uri.trim()).ok()?;
    let mut secret = None;
    let mut others: Vec<(String, String)> = Vec::new();
    for (key, value) in url.query_pairs() {
        if key == SECRET_PARAM {
            secret.get_or_insert_with(|| value.into_owned());
        } else {
            others.push((key.into_owned(), value.into_owned()));
        }
    }
    if others.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(others);
    }
    url.set_fragment(None);
    Some((url.to_string(), secret))
}

/// What to do for one event, given the account's webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventPlan {
    /// Ours with the current secret and settings (the lowest id), kept.
    pub(crate) keep: Option<i64>,
    /// Ours to delete: stale ones, and duplicates of the kept one.
    pub(crate) delete: Vec<i64>,
}

impl EventPlan {
    /// Whether one of ours existed but none is current (a rotated secret, older settings).
    fn replaces(&self) -> bool {
        self.keep.is_none() && !self.delete.is_empty()
    }
}

/// Whether a listed field agrees with ours (a field the listing leaves out is taken as ours).
fn agrees<T: PartialEq>(listed: Option<&T>, ours: &T) -> bool {
    listed.is_none_or(|value| value == ours)
}

/// Ours (our destination, whatever the secret) for events not in `events`, by event, in id
/// order: an event taken out of the configuration.
pub(crate) fn unconfigured(
    existing: &[Webhook],
    events: &[String],
    target: &Target,
) -> Vec<(String, Vec<i64>)> {
    let mut by_event: std::collections::BTreeMap<String, Vec<i64>> =
        std::collections::BTreeMap::new();
    for webhook in existing {
        let Some(event) = webhook.subscribe_to.as_ref().map(|s| s.as_str().to_owned()) else {
            continue;
        };
        let ours = webhook
            .uri_template
            .as_deref()
            .and_then(split)
            .is_some_and(|(destination, _)| destination == target.destination);
        if ours && !events.contains(&event) {
            by_event.entry(event).or_default().push(webhook.id);
        }
    }
    by_event
        .into_iter()
        .map(|(event, mut ids)| {
            ids.sort_unstable();
            (event, ids)
        })
        .collect()
}

/// Ours among `existing` for `event` and what to keep and delete.
pub(crate) fn plan_event(existing: &[Webhook], event: &str, target: &Target) -> EventPlan {
    let mut ours: Vec<(&Webhook, Option<String>)> = existing
        .iter()
        .filter(|w| w.subscribe_to.as_ref().is_some_and(|s| s.as_str() == event))
        .filter_map(|w| {
            let (destination, secret) = split(w.uri_template.as_deref()?)?;
            (destination == target.destination).then_some((w, secret))
        })
        .collect();
    ours.sort_by_key(|(w, _)| w.id);
    let current = |w: &Webhook, secret: &Option<String>| {
        secret
            .as_deref()
            .is_some_and(|s| secret_matches(&target.secret, s.as_bytes()))
            && w.http_method
                .as_ref()
                .is_none_or(|m| m.as_str().eq_ignore_ascii_case("POST"))
            && agrees(w.body_template.as_ref(), &BODY_TEMPLATE.to_owned())
            && w.content_type
                .as_deref()
                .is_none_or(|c| c.eq_ignore_ascii_case(CONTENT_TYPE))
            && agrees(w.id_set_accepted.as_ref(), &true)
            && agrees(w.quality_of_service.as_ref(), &QUALITY_OF_SERVICE)
    };
    let keep = ours
        .iter()
        .find(|(w, secret)| current(w, secret))
        .map(|(w, _)| w.id);
    let delete = ours
        .iter()
        .map(|(w, _)| w.id)
        .filter(|id| Some(*id) != keep)
        .collect();
    EventPlan { keep, delete }
}

/// What registration needs, or why it is skipped (the reason names the setting).
#[derive(Debug)]
pub(crate) enum Prepared {
    /// Register `events` at `target` with `client`.
    Run {
        /// The Brightpearl client.
        client: brightpearl_client::Client,
        /// Where.
        target: Target,
        /// What.
        events: Vec<String>,
    },
    /// Skip; the reason names the setting, `warn` whether an operator should act.
    Skip {
        /// Why.
        reason: String,
        /// Whether this deserves a warning (a setting is missing) rather than a note.
        warn: bool,
    },
}

/// Decides whether registration runs with this configuration, secrets and client.
pub(crate) fn prepare(
    config: &ServeConfig,
    secrets: &ServeSecrets,
    client: Option<&brightpearl_client::Client>,
) -> Prepared {
    let skip = |reason: String, warn: bool| Prepared::Skip { reason, warn };
    if !config.register_brightpearl_webhooks {
        return skip(
            "`serve.register_brightpearl_webhooks` is false".to_owned(),
            false,
        );
    }
    // An emptied list still runs when serve knows its address: it unsubscribes what it had.
    if config.brightpearl_webhook_events.is_empty() && config.public_url.is_none() {
        return skip(
            "`serve.brightpearl_webhook_events` is empty".to_owned(),
            false,
        );
    }
    let Some(client) = client else {
        return skip(
            "Brightpearl is not configured (BRIGHTPEARL_* settings)".to_owned(),
            false,
        );
    };
    let Some(public_url) = config.public_url.as_deref() else {
        return skip(
            "`serve.public_url` is not set: set it to the base URL Brightpearl reaches this server at (e.g. `https://relay.example.com`), or register the webhooks yourself".to_owned(),
            true,
        );
    };
    let Some(secret) = &secrets.brightpearl_webhook_secret else {
        return skip(
            format!(
                "`{}` is not set: the registered URI needs the Brightpearl webhook secret",
                config.brightpearl_webhook_secret_env
            ),
            true,
        );
    };
    match Target::new(public_url, secret) {
        Ok(target) => Prepared::Run {
            client: client.clone(),
            target,
            events: config.brightpearl_webhook_events.clone(),
        },
        Err(reason) => skip(format!("`serve.public_url`: {reason}"), true),
    }
}

/// Whether registering again later may succeed unchanged, from the error's shared kind (the
/// registration lists before it writes, so a write whose answer was lost is safe to repeat).
fn worth_retrying(error: &brightpearl_client::Error) -> bool {
    use client_core::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::Transient | ErrorKind::Throttled | ErrorKind::AmbiguousWrite
    )
}

/// Whether a delete failed only because the webhook is already gone.
fn is_gone(error: &brightpearl_client::Error) -> bool {
    error.status().is_some_and(|s| s.as_u16() == 404)
}

/// Every webhook of the account (Brightpearl's "nothing found" is none).
async fn webhooks(
    client: &brightpearl_client::Client,
) -> Result<Vec<Webhook>, brightpearl_client::Error> {
    let account = client.account().to_owned();
    let listed = client.list_webhooks(&ListWebhooksPath { account }).await;
    Ok(listed.or_empty()?.response)
}

/// Registers `events` at `target`: one report per event, in order. Never fails as a whole.
pub(crate) async fn register(
    client: &brightpearl_client::Client,
    target: &Target,
    events: &[String],
) -> Vec<SubscriptionReport> {
    let span =
        tracing::info_span!("brightpearl_webhooks", uri = %target.shown(), events = events.len());
    async {
        let existing = match webhooks(client).await {
            Ok(existing) => existing,
            Err(e) => {
                let error = format!("cannot list the existing webhooks: {}", target.scrub(&e.to_string()));
                tracing::warn!(error = %error, transient = worth_retrying(&e), "Brightpearl webhook registration failed; events arrive only through polling meanwhile");
                return events.iter().map(|event| failed(event, target, None, Vec::new(), (error.clone(), worth_retrying(&e)))).collect();
            }
        };
        let mut reports = Vec::with_capacity(events.len());
        for event in events {
            let plan = plan_event(&existing, event, target);
            let report = apply(client, target, event, plan).instrument(tracing::info_span!("subscription", event = %event)).await;
            reports.push(report);
        }
        if reports.iter().any(|r| matches!(r.outcome, SubscriptionOutcome::Registered | SubscriptionOutcome::Replaced)) {
            remove_concurrent_duplicates(client, target, &mut reports).await;
        }
        for (event, ids) in unconfigured(&existing, events, target) {
            let (removed, error) = delete_all(client, target, &ids).await;
            let report = match error {
                Some(error) => failed(&event, target, None, removed, error),
                None => {
                    tracing::info!(event = %event, removed = ?removed, "Brightpearl webhook subscription of an event no longer configured deleted");
                    SubscriptionReport {
                        event,
                        outcome: SubscriptionOutcome::Unsubscribed,
                        webhook_id: None,
                        uri: target.shown().to_owned(),
                        removed,
                        error: None,
                        transient: false,
                    }
                }
            };
            reports.push(report);
        }
        let count = |outcome| reports.iter().filter(|r| r.outcome == outcome).count();
        tracing::info!(
            registered = count(SubscriptionOutcome::Registered),
            already_present = count(SubscriptionOutcome::AlreadyPresent),
            replaced = count(SubscriptionOutcome::Replaced),
            failed = count(SubscriptionOutcome::Failed),
            "Brightpearl webhook subscriptions checked"
        );
        reports
    }
    .instrument(span)
    .await
}

fn failed(
    event: &str,
    target: &Target,
    webhook_id: Option<i64>,
    removed: Vec<i64>,
    (error, transient): (String, bool),
) -> SubscriptionReport {
    SubscriptionReport {
        event: event.to_owned(),
        outcome: SubscriptionOutcome::Failed,
        webhook_id,
        uri: target.shown().to_owned(),
        removed,
        error: Some(error),
        transient,
    }
}

/// Deletes `ids`; returns the deleted ones and the first error (a webhook already gone counts
/// as deleted).
async fn delete_all(
    client: &brightpearl_client::Client,
    target: &Target,
    ids: &[i64],
) -> (Vec<i64>, Option<(String, bool)>) {
    let mut removed = Vec::new();
    let mut first_error = None;
    for &id in ids {
        if id < 0 {
            first_error.get_or_insert_with(|| (format!("webhook id {id} is not deletable"), false));
            continue;
        }
        let account = client.account().to_owned();
        let path = DeleteWebhookPath {
            account,
            webhook_id: id,
        };
        match client.delete_webhook(&path).await {
            Ok(_) => removed.push(id),
            Err(e) if is_gone(&e) => removed.push(id),
            Err(e) => {
                first_error.get_or_insert_with(|| {
                    (
                        format!(
                            "cannot delete webhook {id}: {}",
                            target.scrub(&e.to_string())
                        ),
                        worth_retrying(&e),
                    )
                });
            }
        }
    }
    (removed, first_error)
}

/// Subscribes `request`; the new webhook's id.
async fn create_webhook(
    client: &brightpearl_client::Client,
    request: &WebhookRequest,
) -> Result<i64, brightpearl_client::Error> {
    let account = client.account().to_owned();
    let path = CreateWebhookPath { account };
    Ok(client.create_webhook(&path, request).await?.response)
}

async fn apply(
    client: &brightpearl_client::Client,
    target: &Target,
    event: &str,
    plan: EventPlan,
) -> SubscriptionReport {
    let replaces = plan.replaces();
    let (webhook_id, outcome) = match plan.keep {
        Some(id) => (id, SubscriptionOutcome::AlreadyPresent),
        None => match create_webhook(client, &target.request(event)).await {
            Ok(id) => (
                id,
                if replaces {
                    SubscriptionOutcome::Replaced
                } else {
                    SubscriptionOutcome::Registered
                },
            ),
            Err(e) => {
                let error = target.scrub(&e.to_string());
                tracing::warn!(event, error = %error, transient = worth_retrying(&e), "Brightpearl refused the webhook subscription; this event arrives only through polling");
                return failed(event, target, None, Vec::new(), (error, worth_retrying(&e)));
            }
        },
    };
    let (removed, error) = delete_all(client, target, &plan.delete).await;
    if let Some(error) = error {
        tracing::warn!(event, webhook_id, error = %error.0, "a stale or duplicate Brightpearl webhook subscription could not be removed");
        return failed(event, target, Some(webhook_id), removed, error);
    }
    match outcome {
        SubscriptionOutcome::AlreadyPresent if removed.is_empty() => {
            tracing::info!(event, webhook_id, uri = %target.shown(), "Brightpearl webhook subscription already present")
        }
        SubscriptionOutcome::AlreadyPresent => {
            tracing::info!(event, webhook_id, uri = %target.shown(), removed = ?removed, "Brightpearl webhook subscription already present; duplicates removed")
        }
        SubscriptionOutcome::Replaced => {
            tracing::info!(event, webhook_id, uri = %target.shown(), removed = ?removed, "Brightpearl webhook subscription replaced (rotated secret or older settings)")
        }
        _ => {
            tracing::info!(event, webhook_id, uri = %target.shown(), "Brightpearl webhook subscription registered")
        }
    }
    SubscriptionReport {
        event: event.to_owned(),
        outcome,
        webhook_id: Some(webhook_id),
        uri: target.shown().to_owned(),
        removed,
        error: None,
        transient: false,
    }
}

/// Runs `attempt` until no event failed transiently: after such a failure it waits `first`,
/// then twice as long after each further one, at most `max`. `publish` sees every result.
/// `first` zero: one attempt. Returns when settled; the caller stops it at shutdown by dropping
/// the future.
pub(crate) async fn register_until_settled<Fut>(
    mut attempt: impl FnMut() -> Fut,
    mut publish: impl FnMut(Vec<SubscriptionReport>),
    first: std::time::Duration,
    max: std::time::Duration,
) where
    Fut: std::future::Future<Output = Vec<SubscriptionReport>>,
{
    let mut wait = first;
    loop {
        let reports = attempt().await;
        let retry = reports
            .iter()
            .any(|r| r.outcome == SubscriptionOutcome::Failed && r.transient);
        publish(reports);
        if !retry || first.is_zero() {
            return;
        }
        tracing::info!(
            in_secs = wait.as_secs(),
            "Brightpearl webhook registration will be tried again (a transient failure)"
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(max);
    }
}

/// After creating: reads the list again and removes duplicates of ours (a second process that
/// registered at the same moment, or a create whose answer was lost and was sent again).
async fn remove_concurrent_duplicates(
    client: &brightpearl_client::Client,
    target: &Target,
    reports: &mut [SubscriptionReport],
) {
    let existing = match webhooks(client).await {
        Ok(existing) => existing,
        Err(e) => {
            tracing::warn!(error = %target.scrub(&e.to_string()), "cannot read the webhooks again to check for duplicates; the next start checks again");
            return;
        }
    };
    for report in reports
        .iter_mut()
        .filter(|r| r.outcome != SubscriptionOutcome::Failed)
    {
        let plan = plan_event(&existing, &report.event, target);
        let Some(keep) = plan.keep else { continue };
        if plan.delete.is_empty() && report.webhook_id == Some(keep) {
            continue;
        }
        let (removed, error) = delete_all(client, target, &plan.delete).await;
        tracing::info!(event = %report.event, webhook_id = keep, removed = ?removed, "duplicate Brightpearl webhook subscriptions removed");
        report.webhook_id = Some(keep);
        report.removed.extend(removed);
        if let Some((error, transient)) = error {
            tracing::warn!(event = %report.event, error = %error, "a duplicate Brightpearl webhook subscription could not be removed");
            report.outcome = SubscriptionOutcome::Failed;
            report.error = Some(error);
            report.transient = transient;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: SubscriptionOutcome, transient: bool) -> SubscriptionReport {
        SubscriptionReport {
            event: "product.modified.on-hand-modified".into(),
            outcome,
            webhook_id: None,
            uri: String::new(),
            removed: Vec::new(),
            error: None,
            transient,
        }
    }

    /// Attempts made (at which virtual second) until the registration settles, when attempt `n`
    /// (0-based) returns `outcomes(n)`.
    async fn attempts_until_settled(
        first: u64,
        outcomes: impl Fn(usize) -> (SubscriptionOutcome, bool),
    ) -> (Vec<u64>, usize) {
        let start = tokio::time::Instant::now();
        let at = std::cell::RefCell::new(Vec::new());
        let published = std::cell::Cell::new(0);
        register_until_settled(
            || {
                let n = at.borrow().len();
                at.borrow_mut().push(start.elapsed().as_secs());
                let (outcome, transient) = outcomes(n);
                async move {
                    vec![
                        report(SubscriptionOutcome::AlreadyPresent, false),
                        report(outcome, transient),
                    ]
                }
            },
            |_| published.set(published.get() + 1),
            std::time::Duration::from_secs(first),
            std::time::Duration::from_secs(3600),
        )
        .await;
        (at.into_inner(), published.get())
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_tried_again_with_a_doubling_wait() {
        let failing_until = |k: usize| {
            move |n: usize| {
                if n < k {
                    (SubscriptionOutcome::Failed, true)
                } else {
                    (SubscriptionOutcome::Registered, false)
                }
            }
        };
        assert_eq!(
            attempts_until_settled(60, failing_until(3)).await,
            (vec![0, 60, 180, 420], 4)
        );
        // The wait stops doubling at the maximum.
        let (at, _) = attempts_until_settled(1000, failing_until(4)).await;
        assert_eq!(at, vec![0, 1000, 3000, 6600, 10200]);
        // A refusal is final; so is any failure when retrying is off.
        assert_eq!(
            attempts_until_settled(60, |_| (SubscriptionOutcome::Failed, false)).await,
            (vec![0], 1)
        );
        assert_eq!(
            attempts_until_settled(0, |_| (SubscriptionOutcome::Failed, true)).await,
            (vec![0], 1)
        );
    }

    fn hook(id: i64, event: &str, uri: &str) -> Webhook {
        Webhook {
            id,
            subscribe_to: Some(WebhookEventName::from(event)),
            http_method: Some(WebhookHttpMethod::Post),
            uri_template: Some(uri.to_owned()),
            body_template: Some(BODY_TEMPLATE.to_owned()),
            content_type: Some(CONTENT_TYPE.to_owned()),
            id_set_accepted: Some(true),
            quality_of_service: Some(QUALITY_OF_SERVICE),
        }
    }

    const EVENT: &str = "product.modified.on-hand-modified";

    #[test]
    fn the_uri_carries_the_secret_and_shows_it_redacted() {
        let target = Target::new(
            "https://relay.example.com/base/",
            &SecretString::from("s3 cr&t"),
        )
        .unwrap();
        assert_eq!(
            target.uri,
            "https://relay.example.com/base/brightpearl/webhooks?secret=s3+cr%26t"
        );
        assert_eq!(
            target.shown(),
            "https://relay.example.com/base/brightpearl/webhooks?secret=[redacted]"
        );
        assert_eq!(
            target.destination,
            "https://relay.example.com/base/brightpearl/webhooks"
        );
        let debug = format!("{target:?}");
        assert!(!debug.contains("s3") && debug.contains(REDACTED), "{debug}");
        assert_eq!(
            target.scrub("bad uri …?secret=s3+cr%26t and s3 cr&t"),
            "bad uri …?secret=[redacted] and [redacted]"
        );
        assert_eq!(
            target.scrub("refused http://x/y?a=1&secret=zz"),
            "refused http://x/y?a=1&secret=[redacted]"
        );
    }

    #[test]
    fn ours_is_the_same_event_and_destination_whatever_the_secret() {
        let target = Target::new("http://127.0.0.1:8788", &SecretString::from("new")).unwrap();
        let ours_current = "http://127.0.0.1:8788/brightpearl/webhooks?secret=new";
        let ours_stale = "http://127.0.0.1:8788/brightpearl/webhooks?secret=old";
        let existing = vec![
            hook(1, EVENT, "https://other.example.com/hook?secret=new"),
            hook(2, "goods-out-note.modified.shipped", ours_current),
            hook(3, EVENT, ours_stale),
            Webhook {
                uri_template: Some("${account-code}".into()),
                ..hook(4, EVENT, "")
            },
        ];
        // Only a stale one of ours: replace it.
        let plan = plan_event(&existing, EVENT, &target);
        assert_eq!(
            plan,
            EventPlan {
                keep: None,
                delete: vec![3]
            }
        );
        assert!(plan.replaces());
        // Ours with the current secret, plus a duplicate and a stale one: keep the lowest.
        let mut more = existing.clone();
        more.push(hook(7, EVENT, ours_current));
        more.push(hook(5, EVENT, ours_current));
        assert_eq!(
            plan_event(&more, EVENT, &target),
            EventPlan {
                keep: Some(5),
                delete: vec![3, 7]
            }
        );
        // Nothing of ours: create, delete nothing.
        let plan = plan_event(&existing, "product.modified", &target);
        assert_eq!(
            plan,
            EventPlan {
                keep: None,
                delete: vec![]
            }
        );
        assert!(!plan.replaces());
        // Ours with the current secret but older settings is stale too.
        let old = Webhook {
            quality_of_service: Some(0),
            ..hook(9, EVENT, ours_current)
        };
        assert_eq!(
            plan_event(&[old], EVENT, &target),
            EventPlan {
                keep: None,
                delete: vec![9]
            }
        );
        // Fields the listing leaves out are taken as ours.
        let sparse = Webhook {
            body_template: None,
            content_type: None,
            id_set_accepted: None,
            quality_of_service: None,
            http_method: None,
            ..hook(11, EVENT, ours_current)
        };
        assert_eq!(
            plan_event(&[sparse], EVENT, &target),
            EventPlan {
                keep: Some(11),
                delete: vec![]
            }
        );
    }

    #[test]
    fn registration_is_skipped_naming_what_to_set() {
        let secrets = ServeSecrets {
            brightpearl_webhook_secret: Some(SecretString::from("s")),
            ..ServeSecrets::default()
        };
        let reason =
            |config: &ServeConfig, secrets: &ServeSecrets| match prepare(config, secrets, None) {
                Prepared::Skip { reason, .. } => reason,
                Prepared::Run { .. } => panic!("runs"),
            };
        let off = ServeConfig {
            register_brightpearl_webhooks: false,
            ..ServeConfig::default()
        };
        assert!(reason(&off, &secrets).contains("serve.register_brightpearl_webhooks"));
        assert!(reason(&ServeConfig::default(), &secrets).contains("BRIGHTPEARL_"));
    }

    #[test]
    fn the_body_template_makes_a_webhook_event_the_receiver_accepts() {
        let body = BODY_TEMPLATE
            .replace("${account-code}", "acme")
            .replace("${resource-type}", "product")
            .replace("${resource-id}", "1001-1003,1009")
            .replace("${lifecycle-event}", "modified")
            .replace("${full-event}", EVENT)
            .replace("${raised-on}", "2026-03-02T08:00:00.000+00:00")
            .replace("${brightpearl-version}", "7.0.0");
        let event: brightpearl_client::models::integration::WebhookEvent =
            serde_json::from_str(&body).unwrap();
        assert_eq!(event.id, "1001-1003,1009");
        assert_eq!(
            event.full_event,
            Some(WebhookEventName::ProductModifiedOnHandModified)
        );
        assert_eq!(event.account_code.as_deref(), Some("acme"));
        assert!(
            event.raised_on.is_some()
                && event.brightpearl_version.is_some()
                && event.lifecycle_event.is_some()
        );
    }
}
