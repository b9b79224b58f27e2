//! integration-service webhooks: CRUD, simulate, and delivery of events (ids only) to the
//! subscribed URIs with the subscription's templates, quality of service and ID-set batching.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use brightpearl_models::common::CreatedIdResponse;
use brightpearl_models::integration::{
    CreateWebhookRequest, DeleteWebhookPath, SimulateWebhookRequest, UpdateWebhookPath,
    UpdateWebhookRequest, Webhook, WebhookHttpMethod, WebhookListResponse, WebhookRequest,
};
use serde_json::json;

use super::idset::{self, IdSet};
use super::reply::{Ctx, Event, Reply};
use super::store::WebhookDelivery;
use crate::state::SharedState;

/// A subscription gets its event and every more specific one (`product.modified` also gets
/// `product.modified.on-hand-modified`).
fn subscribed(webhook: &Webhook, event: &str) -> bool {
    let Some(subscription) = webhook.subscribe_to.as_ref() else {
        return false;
    };
    let subscription = subscription.as_str();
    event == subscription
        || event
            .strip_prefix(subscription)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn validate(request: &WebhookRequest) -> Result<(), Reply> {
    if request.subscribe_to.is_unknown() {
        return Err(Reply::bad_request(
            "INTC-064",
            format!(
                "The event `{}` does not exist or cannot be subscribed to",
                request.subscribe_to.as_str()
            ),
        ));
    }
    if request.http_method.is_unknown() {
        return Err(Reply::bad_request(
            "INTC-400",
            "httpMethod must be GET, POST, PUT or DELETE",
        ));
    }
    let uri = request.uri_template.trim();
    if !(uri.starts_with("http://") || uri.starts_with("https://")) {
        return Err(Reply::bad_request(
            "INTC-400",
            "uriTemplate must be an absolute http(s) URL",
        ));
    }
    if matches!(
        request.http_method,
        WebhookHttpMethod::Post | WebhookHttpMethod::Put
    ) && (request.body_template.as_deref().is_none_or(str::is_empty)
        || request.content_type.as_deref().is_none_or(str::is_empty))
    {
        return Err(Reply::bad_request(
            "INTC-400",
            "bodyTemplate and contentType are required for POST and PUT webhooks",
        ));
    }
    if request
        .quality_of_service
        .is_some_and(|q| !(0..=1).contains(&q))
    {
        return Err(Reply::bad_request(
            "INTC-400",
            "qualityOfService must be 0 or 1",
        ));
    }
    Ok(())
}

fn stored(id: i64, request: WebhookRequest) -> Webhook {
    Webhook {
        id,
        subscribe_to: Some(request.subscribe_to),
        http_method: Some(request.http_method),
        uri_template: Some(request.uri_template),
        body_template: request.body_template,
        content_type: request.content_type,
        id_set_accepted: Some(request.id_set_accepted.unwrap_or(false)),
        quality_of_service: Some(request.quality_of_service.unwrap_or(0)),
    }
}

pub fn list(ctx: &mut Ctx<'_>, ids: Option<&str>) -> Reply {
    let set = match idset::parse_optional_path(ids) {
        Ok(set) => set,
        Err(reply) => return reply,
    };
    let store = ctx.state.brightpearl.lock();
    let found: Vec<Webhook> = store
        .webhooks
        .values()
        .filter(|w| set.contains(w.id))
        .cloned()
        .collect();
    if found.is_empty() {
        return Reply::not_found(match ids {
            Some(ids) => format!("No webhooks available in ID Set {ids}"),
            None => "No webhooks available".to_owned(),
        });
    }
    Reply::raw(StatusCode::OK, WebhookListResponse { response: found })
}

pub fn create(ctx: &mut Ctx<'_>) -> Reply {
    let request: CreateWebhookRequest = match ctx.json() {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    if let Err(reply) = validate(&request) {
        return reply;
    }
    let mut store = ctx.state.brightpearl.lock();
    store.ids.webhook += 1;
    let id = store.ids.webhook;
    store.webhooks.insert(id, stored(id, request));
    Reply::raw(StatusCode::OK, CreatedIdResponse { response: id })
}

pub fn update(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    let Ok(webhook_id) = id.parse::<i64>() else {
        return Reply::not_found(format!("No webhooks available in ID Set {id}"));
    };
    let path = UpdateWebhookPath {
        account: ctx.account.to_owned(),
        webhook_id,
    };
    let request: UpdateWebhookRequest = match ctx.json() {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    if let Err(reply) = validate(&request) {
        return reply;
    }
    let mut store = ctx.state.brightpearl.lock();
    if !store.webhooks.contains_key(&path.webhook_id) {
        return Reply::not_found(format!(
            "No webhooks available in ID Set {}",
            path.webhook_id
        ));
    }
    store
        .webhooks
        .insert(path.webhook_id, stored(path.webhook_id, request));
    Reply::raw(StatusCode::OK, json!({}))
}

pub fn delete(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    let Ok(webhook_id) = id.parse::<i64>() else {
        return Reply::not_found(format!("No webhooks available in ID Set {id}"));
    };
    let path = DeleteWebhookPath {
        account: ctx.account.to_owned(),
        webhook_id,
    };
    let mut store = ctx.state.brightpearl.lock();
    if store.webhooks.remove(&path.webhook_id).is_none() {
        return Reply::not_found(format!(
            "No webhooks available in ID Set {}",
            path.webhook_id
        ));
    }
    Reply::raw(StatusCode::OK, json!({}))
}

pub fn simulate(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    let Ok(webhook_id) = id.parse::<i64>() else {
        return Reply::not_found(format!("No webhooks available in ID Set {id}"));
    };
    let request: SimulateWebhookRequest = match ctx.json() {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let Some(webhook) = ctx
        .state
        .brightpearl
        .lock()
        .webhooks
        .get(&webhook_id)
        .cloned()
    else {
        return Reply::not_found(format!("No webhooks available in ID Set {webhook_id}"));
    };
    let ids = request
        .test_data
        .get("${resource-id}")
        .cloned()
        .unwrap_or_default();
    match IdSet::parse(&ids, false) {
        Ok(set) if set.count().unwrap_or(0) <= 10 => {}
        Ok(_) => {
            return Reply::bad_request("INTC-400", "testData ${resource-id} takes at most 10 ids");
        }
        Err(e) => return Reply::bad_request("INTC-400", format!("testData ${{resource-id}}: {e}")),
    }
    let event = request
        .test_data
        .get("${full-event}")
        .cloned()
        .or_else(|| webhook.subscribe_to.as_ref().map(|s| s.as_str().to_owned()))
        .unwrap_or_default();
    let mut vars = base_vars(ctx.state, &Event::new(&event, Vec::new()), &ids);
    vars.extend(request.test_data);
    send(ctx.state, &webhook, &event, &ids, vars);
    Reply::raw(StatusCode::OK, json!({}))
}

fn base_vars(state: &SharedState, event: &Event, ids: &str) -> BTreeMap<String, String> {
    let (resource, lifecycle, specifier) = event.parts();
    let raised = state
        .clock
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false);
    BTreeMap::from([
        (
            "${account-code}".to_owned(),
            state.config.brightpearl.account.clone(),
        ),
        ("${resource-type}".to_owned(), resource),
        ("${resource-id}".to_owned(), ids.to_owned()),
        ("${lifecycle-event}".to_owned(), lifecycle),
        ("${resource-specifier}".to_owned(), specifier),
        ("${full-event}".to_owned(), event.full_event.clone()),
        ("${raised-on}".to_owned(), raised),
        (
            "${brightpearl-version}".to_owned(),
            state.config.brightpearl.brightpearl_version.clone(),
        ),
    ])
}

fn render(template: &str, vars: &BTreeMap<String, String>) -> String {
    vars.iter()
        .fold(template.to_owned(), |text, (name, value)| {
            text.replace(name.as_str(), value)
        })
}

/// Sends every event to every matching subscription (one call per ID set when `idSetAccepted`,
/// else one call per id). Calls run in the background.
pub fn fire(state: &SharedState, events: Vec<Event>) {
    for event in events {
        let hooks: Vec<Webhook> = state
            .brightpearl
            .lock()
            .webhooks
            .values()
            .filter(|w| subscribed(w, &event.full_event))
            .cloned()
            .collect();
        for webhook in hooks {
            let batches: Vec<String> = if webhook.id_set_accepted.unwrap_or(false) {
                vec![idset::compact(&event.ids)]
            } else {
                event.ids.iter().map(i64::to_string).collect()
            };
            for ids in batches {
                let vars = base_vars(state, &event, &ids);
                send(state, &webhook, &event.full_event, &ids, vars);
            }
        }
    }
}

fn send(
    state: &SharedState,
    webhook: &Webhook,
    event: &str,
    ids: &str,
    vars: BTreeMap<String, String>,
) {
    let method = webhook
        .http_method
        .clone()
        .unwrap_or(WebhookHttpMethod::Post);
    let url = render(webhook.uri_template.as_deref().unwrap_or_default(), &vars);
    let with_body = matches!(method, WebhookHttpMethod::Post | WebhookHttpMethod::Put);
    let body =
        with_body.then(|| render(webhook.body_template.as_deref().unwrap_or_default(), &vars));
    let seq = {
        let mut store = state.brightpearl.lock();
        store.ids.delivery += 1;
        let seq = store.ids.delivery;
        store.deliveries.push(WebhookDelivery {
            seq,
            webhook_id: webhook.id,
            event: event.to_owned(),
            resource_ids: ids.to_owned(),
            method: method.as_str().to_owned(),
            url: models_runtime::redact::redact_url(&url),
            body: body.clone(),
            raised_on: vars.get("${raised-on}").cloned().unwrap_or_default(),
            attempts: 0,
            status: None,
            delivered: false,
            error: None,
        });
        seq
    };
    let content_type = webhook
        .content_type
        .clone()
        .unwrap_or_else(|| "application/json".into());
    let at_least_once = webhook.quality_of_service == Some(1);
    let state = state.clone();
    tokio::spawn(async move {
        let config = &state.config.brightpearl;
        let Ok(http_method) = reqwest::Method::from_bytes(method.as_str().as_bytes()) else {
            return;
        };
        for attempt in 1..=config.webhook_retries + 1 {
            let mut request = state
                .http
                .request(http_method.clone(), &url)
                .timeout(Duration::from_millis(config.webhook_timeout_ms));
            if let Some(body) = &body {
                request = request
                    .header("content-type", content_type.as_str())
                    .body(body.clone());
            }
            let outcome = request.send().await;
            let (status, error) = match &outcome {
                Ok(response) => (Some(response.status().as_u16()), None),
                Err(e) => (
                    None,
                    Some(if e.is_timeout() {
                        "timeout".to_owned()
                    } else {
                        "connection failed".to_owned()
                    }),
                ),
            };
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            {
                let mut store = state.brightpearl.lock();
                if let Some(record) = store.deliveries.iter_mut().find(|d| d.seq == seq) {
                    record.attempts = attempt;
                    record.status = status;
                    record.delivered = delivered;
                    record.error = error;
                }
            }
            // QoS 0 (at most once) retries only on 503; QoS 1 (at least once) on everything but 4xx.
            let retry = match status {
                Some(s) if (200..300).contains(&s) => false,
                Some(503) => true,
                Some(s) if (400..500).contains(&s) => false,
                _ => at_least_once,
            };
            if !retry {
                break;
            }
            tokio::time::sleep(Duration::from_millis(config.webhook_retry_delay_ms)).await;
        }
    });
}
