//! What `relay serve`'s receivers read before answering: a Norce order push, a Norce event of
//! each type the flows take, a Brightpearl webhook and its ID set, and the JSON path named in a
//! refusal. The first byte picks the receiver; any body is read or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use norce_models::event::{Event, ORDER_EVENT_TYPES};

const OTHER_EVENTS: &[&str] = &[
    "OrderReceivedEvent",
    "OrderPaymentReceivedEvent",
    "JobCompletedEvent",
    "CustomerChangedNotification",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => {
            if let Err(e) = serde_json::from_slice::<norce_models::events::OrderRequest>(body) {
                let _ = relay::serve::json_path_at(body, e.line(), e.column());
            }
        }
        1 => {
            let types: Vec<&str> = ORDER_EVENT_TYPES.iter().chain(OTHER_EVENTS).copied().collect();
            let event_type = types[usize::from(selector / 3) % types.len()];
            match Event::decode(event_type, body) {
                Ok(event) => {
                    let _ = event.dedupe_key();
                }
                Err(e) => {
                    let _ = relay::serve::json_path_at(body, e.line(), e.column());
                }
            }
        }
        _ => {
            if let Ok(event) =
                serde_json::from_slice::<brightpearl_models::integration::WebhookEvent>(body)
            {
                let _ = event.id.parse::<brightpearl_client::IdSet>();
            }
        }
    }
});
