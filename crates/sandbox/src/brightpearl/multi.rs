//! multi-message: up to 10 destructive messages in one request (one request for throttling),
//! with per-message results; 200 when all succeeded, 207 otherwise.

use axum::http::{Method, StatusCode, Uri};
use brightpearl_models::integration::{
    MultiMessageOnFail, MultiMessageResponse, MultiMessageResult, ProcessedMessage,
    ProcessedMessageBody, SendMultiMessageRequest, WebhookHttpMethod,
};

use super::reply::{Ctx, Reply};

/// Routes and runs one message (a method and the path after the account) in a nested context:
/// `api`'s dispatcher, handed in so this module does not import `api`, which imports it.
pub type Dispatch = fn(&mut Ctx<'_>, &Method, &str) -> Reply;

/// `POST /integration-service/multi-message`: each message run through `dispatch`.
pub fn send(ctx: &mut Ctx<'_>, dispatch: Dispatch) -> Reply {
    if ctx.nested {
        return Reply::bad_request(
            "CMNC-400",
            "A multi-message cannot contain another multi-message",
        );
    }
    let request: SendMultiMessageRequest = match ctx.json() {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let max = ctx.config().max_multi_messages;
    if request.messages.is_empty() || request.messages.len() > max {
        return Reply::bad_request(
            "CMNC-400",
            format!(
                "A multi-message carries 1 to {max} messages, got {}",
                request.messages.len()
            ),
        );
    }
    if request.processing_mode.is_unknown() || request.on_fail.is_unknown() {
        return Reply::bad_request(
            "CMNC-400",
            "processingMode must be SEQUENTIAL or PARALLEL and onFail STOP or CONTINUE",
        );
    }
    if let Some(bad) = request.messages.iter().find(|m| {
        !matches!(
            m.http_method,
            WebhookHttpMethod::Post | WebhookHttpMethod::Put | WebhookHttpMethod::Delete
        )
    }) {
        return Reply::bad_request(
            "CMNC-400",
            format!(
                "Message `{}`: only POST, PUT and DELETE messages are allowed",
                bad.label
            ),
        );
    }
    let prefix = format!("/public-api/{}", ctx.account);
    let mut processed = Vec::new();
    let mut unprocessed = Vec::new();
    let mut stopped = false;
    let mut all_ok = true;
    // PARALLEL is run in order as well: the outcome of independent messages is the same.
    for message in &request.messages {
        if stopped {
            unprocessed.push(message.label.clone());
            continue;
        }
        let reply = run_one(
            ctx,
            dispatch,
            &prefix,
            message.http_method.as_str(),
            &message.uri,
            message.body.as_ref(),
        );
        if !reply.is_success() {
            all_ok = false;
            if request.on_fail == MultiMessageOnFail::Stop {
                stopped = true;
            }
        }
        processed.push(ProcessedMessage {
            label: message.label.clone(),
            status_code: i64::from(reply.status.as_u16()),
            // Brightpearl sends each message's own response as a JSON-encoded string.
            body: Some(ProcessedMessageBody {
                content: Some(reply.body.to_string()),
            }),
        });
    }
    let status = if all_ok && unprocessed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let body = MultiMessageResponse {
        response: MultiMessageResult {
            processed_messages: Some(processed),
            unprocessed_messages: Some(unprocessed),
        },
    };
    Reply::raw(status, body)
}

fn run_one(
    ctx: &mut Ctx<'_>,
    dispatch: Dispatch,
    prefix: &str,
    method: &str,
    uri: &str,
    body: Option<&serde_json::Value>,
) -> Reply {
    let relative = uri.strip_prefix(prefix).unwrap_or(uri);
    let full = format!(
        "{prefix}{}{relative}",
        if relative.starts_with('/') { "" } else { "/" }
    );
    let Ok(parsed) = full.parse::<Uri>() else {
        return Reply::not_found(format!("No resource at {uri}"));
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Reply::bad_request("CMNC-400", "bad httpMethod");
    };
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap_or_default())
        .unwrap_or_default();
    let mut inner = Ctx {
        state: ctx.state,
        account: ctx.account,
        uri: &parsed,
        body: &bytes,
        events: Vec::new(),
        nested: true,
    };
    let path = parsed.path().strip_prefix(prefix).unwrap_or_default();
    let reply = dispatch(&mut inner, &method, path);
    ctx.events.append(&mut inner.events);
    reply
}
