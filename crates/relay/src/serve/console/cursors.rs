//! Cursors: each flow's position in its source; set one back to backfill, after a
//! confirmation that says what will be re-read.

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{
    self, Flash, Form, Operator, action_failed, csrf_field, human_duration, state_failed,
};
use crate::operator::{self, CURSOR_FLOWS, CursorFloor};

/// What a flow re-reads from a cursor, and why nothing is done twice.
fn rereads(flow: &str) -> &'static str {
    match flow {
        "shipping" => {
            "Norce orders in the shipping statuses (`shipping.order_statuses`) changed since then are read again. Orders already booked are recognised by their records and by nShift's stored shipments, so none is booked twice."
        }
        "shipping-alerts" => {
            "nShift's alerts feed is read again from that position. Tracking statuses already written back to Norce are not written again."
        }
        "stock" => {
            "Brightpearl products whose stock changed since then are read again and their levels imported to Norce (an import sets levels, so repeating it changes nothing that is right)."
        }
        "prices" => {
            "Brightpearl products whose prices changed since then are read again and their prices imported to Norce (an import sets prices, so repeating it changes nothing that is right)."
        }
        "orders" => {
            "Norce orders in the import statuses changed since then are read again. Orders already in Brightpearl are recognised by their reference and not created twice."
        }
        "fulfilment" => {
            "Brightpearl goods-out notes shipped since then are read again. Delivery notes Norce already has are not created twice."
        }
        _ => "The flow reads its source again from that position.",
    }
}

fn as_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct PageQuery {
    flash: Option<String>,
}

/// `GET /console/cursors`.
pub(super) async fn page(operator: Operator, Query(query): Query<PageQuery>) -> Response {
    let store = operator.shared().store();
    let mut rows = Vec::new();
    for flow in CURSOR_FLOWS {
        match store.cursor(flow) {
            Ok(value) => rows.push((*flow, value)),
            Err(e) => return state_failed(&operator, &e),
        }
    }
    let now = Utc::now();
    let body = html! {
        p { "Where each flow reads its source from. Setting one back re-reads from there (a backfill); the next page says what will be re-read before anything changes." }
        table #cursors {
            thead { tr { th { "Flow" } th { "Cursor" } th { "Age" } th { "Set back to" } } }
            tbody {
                @for (flow, value) in &rows {
                    tr data-flow=(flow) {
                        td { (flow) }
                        td { code { (value.as_deref().unwrap_or("(unset)")) } }
                        td { (value.as_deref().and_then(as_time).map(|t| human_duration((now - t).num_seconds())).unwrap_or_default()) }
                        td {
                            form.cursor-form.inline data-flow=(flow) method="get" action={ "/console/cursors/" (flow) "/confirm" } {
                                input type="text" name="value" required size="24"
                                    placeholder=(if *flow == crate::flows::shipping::ALERTS_CURSOR { "fetchId, e.g. -1" } else { "2026-12-01T00:00:00Z" })
                                    aria-label={ "new cursor of " (flow) };
                                " "
                                button.secondary type="submit" { "Preview" }
                            }
                        }
                    }
                }
            }
        }
    };
    let flash = Flash {
        flash: query.flash,
        n: None,
    };
    layout::page(
        &operator,
        "Cursors",
        "/console/cursors",
        flash.text().as_deref(),
        body,
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ConfirmQuery {
    value: Option<String>,
}

/// What setting `flow`'s cursor from `before` to `after` does, in words; with the flow's
/// go-live cutoff, what no cursor brings back.
fn explanation(
    flow: &str,
    before: Option<&str>,
    after: &str,
    floor: Option<&CursorFloor>,
) -> Markup {
    let moved = match (before.and_then(as_time), as_time(after)) {
        (Some(b), Some(a)) if a < b => {
            Some(format!("back by {}", human_duration((b - a).num_seconds())))
        }
        (Some(b), Some(a)) if a > b => Some(format!(
            "forward by {}: changes in between are NOT read",
            human_duration((a - b).num_seconds())
        )),
        _ => None,
    };
    html! {
        p #cursor-confirmation {
            "The cursor of " strong { (flow) } " moves from " code { (before.unwrap_or("(unset)")) } " to " code { (after) }
            @if let Some(moved) = moved { " (" (moved) ")" }
            ". " (rereads(flow))
            @if let Some(floor) = floor {
                " Orders placed before the go-live cutoff " code { (floor.setting) } " ("
                code { (floor.since_text()) } ") are never " (floor.never) ", whatever the cursor."
            }
        }
    }
}

/// `GET /console/cursors/{flow}/confirm?value=`: the confirmation.
pub(super) async fn confirm(
    operator: Operator,
    UrlPath(flow): UrlPath<String>,
    Query(query): Query<ConfirmQuery>,
) -> Response {
    let text = query.value.unwrap_or_default();
    let floor = CursorFloor::of(&operator.shared().ctx.config, &flow);
    // Refused before anything is shown: the console never moves a cursor before the go-live
    // cutoff (the message names the key and `relay cursor set --force`).
    let after = match operator::cursor_value(&flow, &text, floor.as_ref(), false) {
        Ok(after) => after,
        Err(e) => return action_failed(&operator, &e),
    };
    let before = match operator.shared().store().cursor(&flow) {
        Ok(before) => before,
        Err(e) => return state_failed(&operator, &e),
    };
    let body = html! {
        (explanation(&flow, before.as_deref(), &after, floor.as_ref()))
        form #cursor-set-form method="post" action={ "/console/cursors/" (flow) } {
            (csrf_field(&operator))
            input type="hidden" name="value" value=(after);
            button #confirm-cursor type="submit" { "Set the cursor and start a pass" }
            " "
            a href="/console/cursors" { "Cancel" }
        }
    };
    layout::page(
        &operator,
        &format!("Set the cursor of {flow}"),
        "/console/cursors",
        None,
        body,
    )
}

/// `POST /console/cursors/{flow}`: sets it (as `relay cursor set`) and starts the flow's pass.
pub(super) async fn set(
    operator: Operator,
    UrlPath(flow): UrlPath<String>,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(refused) = operator.check_csrf(&form) {
        return *refused;
    }
    let value = form.get("value").unwrap_or_default();
    let floor = CursorFloor::of(&operator.shared().ctx.config, &flow);
    match operator::set_cursor(
        operator.shared().store(),
        &flow,
        value,
        &operator.actor(),
        floor.as_ref(),
        false,
    ) {
        Ok(change) => {
            tracing::info!(actor = %operator.actor(), flow, before = ?change.before, after = change.after, "console: cursor set");
            operator.shared().trigger_entity_flow(&flow);
            if flow == crate::flows::shipping::ALERTS_CURSOR {
                operator
                    .shared()
                    .trigger_entity_flow(crate::flows::shipping::FLOW);
            }
            Redirect::to("/console/cursors?flash=cursor_set").into_response()
        }
        Err(e) => action_failed(&operator, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confirmation_says_how_far_and_what_is_reread() {
        let text = explanation(
            "orders",
            Some("2026-12-03T00:00:00Z"),
            "2026-12-01T00:00:00Z",
            None,
        )
        .into_string();
        assert!(text.contains("back by 2.0 d"), "{text}");
        assert!(text.contains("not created twice"), "{text}");
        let text = explanation(
            "stock",
            Some("2026-12-01T00:00:00Z"),
            "2026-12-03T00:00:00Z",
            None,
        )
        .into_string();
        assert!(text.contains("NOT read"), "{text}");
        let text = explanation("shipping", None, "2026-12-01T00:00:00Z", None).into_string();
        assert!(text.contains("(unset)"), "{text}");
    }

    #[test]
    fn the_confirmation_names_the_go_live_cutoff() {
        let config =
            crate::config::RelayConfig::parse("[shipping]\nsince = \"2026-11-01\"\n", "relay.toml")
                .unwrap();
        let floor = CursorFloor::of(&config, "shipping");
        let text = explanation(
            "shipping",
            Some("2026-12-03T00:00:00Z"),
            "2026-12-01T00:00:00Z",
            floor.as_ref(),
        )
        .into_string();
        assert!(
            text.contains("shipping.since") && text.contains("2026-11-01T00:00:00Z"),
            "{text}"
        );
        assert!(text.contains("never booked"), "{text}");
        assert!(CursorFloor::of(&config, "orders").is_none());
    }
}
