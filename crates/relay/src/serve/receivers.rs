//! The HTTP side: the three receivers, `/healthz` and `/metrics`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use futures::StreamExt as _;
use norce_client::models::event::Event;
use norce_client::models::events::{OrderRequest, OrderResponse, OrderResponseStatusCode};
use serde::Serialize;
use subtle::ConstantTimeEq as _;
use tracing::Instrument as _;

use super::secrets::{SecretString, secret_matches};
use super::shared::Shared;
use crate::flows::context::{SOURCE_BRIGHTPEARL_WEBHOOK, SOURCE_NORCE_EVENT, SOURCE_NORCE_ORDER};
use crate::state::InboxPut;

type AppState = Arc<Shared>;

pub(super) fn router(shared: AppState) -> Router {
    Router::new()
        .route("/norce/order-receiver", post(norce_order))
        .route("/norce/events/{event_type}", post(norce_event))
        .route(
            "/brightpearl/webhooks",
            post(brightpearl_webhook).put(brightpearl_webhook),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// A refusal: status and message; each receiver renders it in its own error shape.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// Not an error: a valid delivery of something no flow takes (an event type relay does
    /// not subscribe to). Answered 200 so the sender does not retry, and never stored.
    fn ignored(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::debug!(reason = %message, "received, not stored");
        Self::new(StatusCode::OK, message)
    }
}

/// 415 unless the request says its body is JSON (`application/json`, any `+json` type, with
/// or without parameters such as `charset`).
fn require_json(headers: &HeaderMap) -> Result<(), Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        return Ok(());
    }
    let shown = if content_type.is_empty() {
        "none".to_owned()
    } else {
        format!("`{}`", crate::text::escape(content_type))
    };
    Err(Refusal::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("the body must be JSON: send `Content-Type: application/json` (got {shown})"),
    ))
}

/// Reads the body up to the limit (413 beyond it, checked on `Content-Length` first).
async fn read_body(shared: &Shared, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Refusal> {
    let limit = shared.config.body_limit_bytes;
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes (`serve.body_limit_bytes`)"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize).min(limit));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Parses a JSON body with the generated type; the error names the JSON path of the problem.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Refusal> {
    serde_json::from_slice(bytes).map_err(|e| refusal_at(bytes, &e, what))
}

/// A 400 for a body serde could not read as `what`, naming the JSON path of the problem.
fn refusal_at(bytes: &[u8], e: &serde_json::Error, what: &str) -> Refusal {
    let path = json_path_at(bytes, e.line(), e.column());
    let at = if path.is_empty() {
        String::new()
    } else {
        format!(" at `{path}`")
    };
    let kind = match e.classify() {
        serde_json::error::Category::Data => "is not a valid",
        _ => "is not JSON for",
    };
    Refusal::new(
        StatusCode::BAD_REQUEST,
        format!("the body {kind} {what}{at}: {e}"),
    )
}

/// The JSON path (`Items[0].Quantity`) of the value open at 1-based `line`/`column` of `text`,
/// found by scanning the text up to there: what a refusal names (public for the fuzz targets).
pub fn json_path_at(text: &[u8], line: usize, column: usize) -> String {
    enum Frame {
        Object {
            key: Option<String>,
            expecting_key: bool,
        },
        Array {
            index: usize,
        },
    }
    // Byte offset of line/column.
    let mut offset = 0;
    let mut current_line = 1;
    for (i, b) in text.iter().enumerate() {
        if current_line == line {
            offset = i + column;
            break;
        }
        if *b == b'\n' {
            current_line += 1;
        }
        offset = text.len();
    }
    let end = offset.min(text.len());
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < end {
        match text[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    if text[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let s = String::from_utf8_lossy(&text[start..i.min(text.len())]).into_owned();
                if let Some(Frame::Object { key, expecting_key }) = stack.last_mut()
                    && *expecting_key
                {
                    *key = Some(s);
                    *expecting_key = false;
                }
            }
            b'{' => stack.push(Frame::Object {
                key: None,
                expecting_key: true,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, expecting_key }) => {
                    *key = None;
                    *expecting_key = true;
                }
                None => {}
            },
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// Commits the item; 503 when the store fails (nothing acknowledged, the sender retries).
fn commit(shared: &Shared, source: &str, key: &str, body: &str) -> Result<InboxPut, Refusal> {
    match shared.store().inbox_put(source, key, body) {
        Ok(put) => {
            match put {
                InboxPut::Inserted(id) => tracing::info!(id, "stored in the inbox"),
                InboxPut::Duplicate(id) => {
                    tracing::info!(id, "duplicate of an unprocessed inbox item")
                }
                // A changed body while the older is still queued: the flows read the newer one.
                InboxPut::Updated {
                    id,
                    version,
                    superseded,
                } => tracing::info!(
                    id,
                    version,
                    superseded,
                    "newer version of an unprocessed inbox item; the older one is superseded"
                ),
            }
            shared.accepted.send_modify(|n| *n += 1);
            shared.inbox_wake[super::shared::inbox_lane(source)].notify_one();
            Ok(put)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store the received item; answering 503 so the sender retries");
            Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot store the item right now; retry later",
            ))
        }
    }
}

fn disabled(variable: &str) -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("this receiver is disabled: set `{variable}` on the relay host"),
    )
}

// ---- Norce order receiver ---------------------------------------------------------------------

/// Checks HTTP Basic credentials in constant time (both parts always compared).
fn basic_auth_ok(headers: &HeaderMap, user: &str, password: &SecretString) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Some(decoded) = base64_decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return false;
    };
    let user_ok: bool = decoded[..colon].ct_eq(user.as_bytes()).into();
    let password_ok = secret_matches(password, &decoded[colon + 1..]);
    user_ok & password_ok
}

/// Standard base64, padded or not (clients differ); `None` when malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const BASIC: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    BASIC.decode(text).ok()
}

fn order_response(status: StatusCode, ok: bool, description: String) -> Response {
    let body = OrderResponse {
        status_code: if ok {
            OrderResponseStatusCode::Ok
        } else {
            OrderResponseStatusCode::Failed
        },
        description: Some(description),
        erp_order_no: None,
        has_erp_order_no: Some(false),
    };
    (status, axum::Json(body)).into_response()
}

async fn norce_order(State(shared): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let span = tracing::info_span!(
        "receiver",
        receiver = "norce-order",
        client_order_ref = tracing::field::Empty
    );
    let result = async {
        let Some(password) = &shared.secrets.order_receiver_password else {
            return Err(disabled(&shared.config.order_receiver_password_env));
        };
        if !basic_auth_ok(&headers, &shared.config.order_receiver_user, password) {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong Basic credentials",
            ));
        }
        require_json(&headers)?;
        let bytes = read_body(&shared, &headers, body).await?;
        let order: OrderRequest = parse_json(&bytes, "OrderRequest")?;
        let key = order.client_order_ref.trim();
        if key.is_empty() {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the body is not a valid OrderRequest at `ClientOrderRef`: it is empty",
            ));
        }
        tracing::Span::current().record("client_order_ref", key);
        let text = String::from_utf8_lossy(&bytes);
        let put = commit(&shared, SOURCE_NORCE_ORDER, key, &text)?;
        Ok((key.to_owned(), put))
    }
    .instrument(span)
    .await;
    let response = match result {
        Ok((key, InboxPut::Inserted(_))) => {
            order_response(StatusCode::OK, true, format!("order {key} queued"))
        }
        Ok((key, InboxPut::Duplicate(_))) => {
            order_response(StatusCode::OK, true, format!("order {key} already queued"))
        }
        Ok((key, InboxPut::Updated { version, .. })) => order_response(
            StatusCode::OK,
            true,
            format!("order {key} updated (version {version})"),
        ),
        Err(refusal) => {
            let mut response = order_response(refusal.status, false, refusal.message);
            if refusal.status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"relay\""),
                );
            }
            response
        }
    };
    shared
        .metrics
        .record_request("norce-order", response.status().as_u16());
    response
}

// ---- Norce event webhooks ---------------------------------------------------------------------

#[derive(Serialize)]
struct Message {
    message: String,
}

fn message(status: StatusCode, text: String) -> Response {
    (status, axum::Json(Message { message: text })).into_response()
}

fn header_secret_ok(headers: &HeaderMap, name: &str, secret: &SecretString) -> bool {
    headers
        .get(name)
        .is_some_and(|v| secret_matches(secret, v.as_bytes()))
}

/// FNV-1a 64 of the body: the dedupe key of payloads without an id.
fn body_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("h{hash:016x}")
}

async fn norce_event(
    State(shared): State<AppState>,
    Path(event_type): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = tracing::info_span!("receiver", receiver = "norce-event", event_type = %event_type);
    let result = async {
        let Some(secret) = &shared.secrets.norce_webhook_secret else {
            return Err(disabled(&shared.config.norce_webhook_secret_env));
        };
        if !header_secret_ok(&headers, &shared.config.norce_webhook_header, secret) {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                format!("missing or wrong shared secret in the `{}` header", shared.config.norce_webhook_header),
            ));
        }
        if event_type.is_empty() || !event_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, format!("`{event_type}` is not a Norce event type name (path `/norce/events/{{eventType}}`)")));
        }
        require_json(&headers)?;
        let bytes = read_body(&shared, &headers, body).await?;
        if !matches!(serde_json::from_slice::<serde_json::Value>(&bytes), Ok(serde_json::Value::Object(_))) {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not a valid Norce {event_type}: it must be a JSON object")));
        }
        if !subscribed_norce_events(&shared).any(|e| e == event_type) {
            return Err(Refusal::ignored(format!("{event_type} received; relay does not subscribe to it (`shipping.norce_events`, `orders.norce_events`): not stored")));
        }
        // Decoded by the type its URL names (an OrderReceivedEvent has no OrderId). A body that
        // is not its type's documented shape is refused now, naming the field: stored, it could
        // only fail later, after Norce was told it arrived.
        let decoded = Event::decode(&event_type, &bytes)
            .map_err(|e| refusal_at(&bytes, &e, &format!("Norce {event_type}")))?;
        let dedupe = decoded.dedupe_key();
        let key = format!("{event_type}:{}", dedupe.unwrap_or_else(|| body_hash(&bytes)));
        commit(&shared, SOURCE_NORCE_EVENT, &key, &String::from_utf8_lossy(&bytes))
    }
    .instrument(span)
    .await;
    let response = match result {
        Ok(_) => StatusCode::OK.into_response(),
        Err(refusal) => message(refusal.status, refusal.message),
    };
    shared
        .metrics
        .record_request("norce-event", response.status().as_u16());
    response
}

// ---- Brightpearl webhooks ---------------------------------------------------------------------

/// The Brightpearl resources whose webhooks a flow takes: products (stock and prices) and
/// goods-out notes (fulfilment). Events of other resources are answered 200 and dropped.
const HANDLED_BRIGHTPEARL_RESOURCES: &[&str] = &["product", "goods-out-note"];

/// The Norce event types the flows of this server take.
fn subscribed_norce_events(shared: &Shared) -> impl Iterator<Item = &str> {
    let config = &shared.ctx.config;
    // A receivers-only server (no flows) stores what the configured flows of the servers that
    // process its inbox take.
    let runs =
        |name: &str| shared.flows.is_empty() || shared.flows.iter().any(|f| f.name() == name);
    let shipping = runs("shipping").then_some(&config.shipping.norce_events);
    let orders = runs("orders").then_some(&config.orders.norce_events);
    shipping
        .into_iter()
        .chain(orders)
        .flatten()
        .map(String::as_str)
}

async fn brightpearl_webhook(
    State(shared): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = tracing::info_span!(
        "receiver",
        receiver = "brightpearl-webhook",
        event = tracing::field::Empty
    );
    let result = async {
        let Some(secret) = &shared.secrets.brightpearl_webhook_secret else {
            return Err(disabled(&shared.config.brightpearl_webhook_secret_env));
        };
        let by_query = query
            .get("secret")
            .is_some_and(|v| secret_matches(secret, v.as_bytes()));
        let by_header = header_secret_ok(&headers, &shared.config.brightpearl_webhook_header, secret);
        if !(by_query | by_header) {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                format!("missing or wrong shared secret (the `secret` query parameter of the registered URI, or the `{}` header)", shared.config.brightpearl_webhook_header),
            ));
        }
        require_json(&headers)?;
        let bytes = read_body(&shared, &headers, body).await?;
        let event: brightpearl_client::models::integration::WebhookEvent = parse_json(&bytes, "Brightpearl WebhookEvent")?;
        let id = event.id.trim();
        match id.parse::<brightpearl_client::IdSet>() {
            Ok(set) if !set.is_empty() => {}
            Ok(_) => return Err(Refusal::new(StatusCode::BAD_REQUEST, "the body is not a valid Brightpearl WebhookEvent at `id`: it is empty")),
            Err(e) => return Err(Refusal::new(StatusCode::BAD_REQUEST, format!("the body is not a valid Brightpearl WebhookEvent at `id`: {}", crate::text::escape(&e.to_string())))),
        }
        let name = match (&event.full_event, &event.resource_type, &event.lifecycle_event) {
            (Some(full), _, _) => full.as_str().to_owned(),
            (None, Some(resource), Some(lifecycle)) => format!("{resource}.{}", lifecycle.as_str()),
            (None, Some(resource), None) => resource.clone(),
            _ => "unknown".to_owned(),
        };
        tracing::Span::current().record("event", name.as_str());
        let resource = name.split('.').next().unwrap_or_default();
        if !HANDLED_BRIGHTPEARL_RESOURCES.contains(&resource) {
            return Err(Refusal::ignored(format!("{name} received; no flow takes {resource} events: not stored")));
        }
        commit(&shared, SOURCE_BRIGHTPEARL_WEBHOOK, &format!("{name}:{id}"), &String::from_utf8_lossy(&bytes))
    }
    .instrument(span)
    .await;
    let response = match result {
        Ok(_) => StatusCode::OK.into_response(),
        Err(refusal) => message(refusal.status, refusal.message),
    };
    shared
        .metrics
        .record_request("brightpearl-webhook", response.status().as_u16());
    response
}

// ---- health and metrics -----------------------------------------------------------------------

#[derive(Serialize)]
struct Health {
    status: &'static str,
    store: String,
    inbox_pending: Option<u64>,
    receivers: HashMap<&'static str, bool>,
    flows: std::collections::BTreeMap<String, FlowHealth>,
    /// The Brightpearl webhook registration (URIs with the secret redacted).
    brightpearl_webhooks: super::subscriptions::WebhookRegistration,
}

#[derive(Serialize)]
struct FlowHealth {
    every_secs: Option<u64>,
    last_run: Option<super::metrics::LastRun>,
}

async fn healthz(State(shared): State<AppState>) -> Response {
    let pending = shared.store().inbox_len();
    let store = match &pending {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let mut last_runs = shared.metrics.last_runs();
    let flows = shared
        .flows
        .iter()
        .map(|f| {
            let health = FlowHealth {
                every_secs: f.every(&shared.config).map(|d| d.as_secs()),
                last_run: last_runs.remove(f.name()),
            };
            (f.name().to_owned(), health)
        })
        .collect();
    let receivers = HashMap::from(
        shared
            .receivers()
            .map(|(receiver, enabled, _)| (receiver, enabled)),
    );
    let ok = pending.is_ok();
    let brightpearl_webhooks = shared.webhooks.borrow().clone();
    let health = Health {
        status: if ok { "ok" } else { "degraded" },
        store,
        inbox_pending: pending.ok(),
        receivers,
        flows,
        brightpearl_webhooks,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(health)).into_response()
}

async fn metrics(State(shared): State<AppState>) -> Response {
    let flows: Vec<&str> = shared
        .flows
        .iter()
        .flat_map(|f| f.entity_flows().iter().copied())
        .collect();
    let text = shared.metrics.render(
        shared.store(),
        &flows,
        &shared.connections.stats(),
        shared.alerts.as_ref().map(crate::alerts::Alerter::stats),
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(super::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_path_names_nested_fields() {
        let text = br#"{"ClientOrderRef":"1","Items":[{"LineNo":1,"PartNo":"A","Quantity":1},{"LineNo":2,"PartNo":"B","Quantity":"x"}]}"#;
        let err = serde_json::from_slice::<OrderRequest>(text).unwrap_err();
        assert_eq!(
            json_path_at(text, err.line(), err.column()),
            "Items[1].Quantity",
            "{err}"
        );
        let text = b"{\n  \"Items\": []\n}";
        let err = serde_json::from_slice::<OrderRequest>(text).unwrap_err();
        assert!(err.to_string().contains("ClientOrderRef"), "{err}");
        assert_eq!(json_path_at(text, err.line(), err.column()), "");
    }

    #[test]
    fn base64_round_trips_basic_credentials() {
        assert_eq!(base64_decode("ZXJwOmh1bnRlcjI=").unwrap(), b"erp:hunter2");
        assert_eq!(base64_decode("ZXJwOmh1bnRlcjI").unwrap(), b"erp:hunter2");
        assert!(base64_decode("not base64!").is_none());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("basic ZXJwOmh1bnRlcjI="),
        );
        let password = |p: &str| SecretString::from(p);
        assert!(basic_auth_ok(&headers, "erp", &password("hunter2")));
        assert!(!basic_auth_ok(&headers, "erp", &password("hunter3")));
        assert!(!basic_auth_ok(&headers, "erq", &password("hunter2")));
    }
}
