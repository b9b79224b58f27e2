//! Dead letters: the queue, with bulk retry and resolve.

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{
    self, Flash, Form, Operator, action_failed, csrf_field, entity_flows, entity_path, shorten,
    state_failed, time,
};
use crate::operator::{self, ActionError};

/// Dead letters per page.
const PAGE_SIZE: usize = 100;

/// The query of `/console/dead-letters`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Filters {
    flow: Option<String>,
    after: Option<i64>,
    flash: Option<String>,
    n: Option<u64>,
}

/// `GET /console/dead-letters`.
pub(super) async fn page(operator: Operator, Query(filters): Query<Filters>) -> Response {
    let store = operator.shared().store();
    let flow = filters.flow.as_deref().filter(|f| !f.is_empty());
    let flows = entity_flows(&operator);
    if let Some(flow) = flow
        && !flows.contains(&flow)
    {
        return layout::error_page(
            &operator,
            StatusCode::BAD_REQUEST,
            "No such flow",
            &format!("`flow`: no flow `{flow}`; choose from {}", flows.join(", ")),
        );
    }
    let after = filters.after.unwrap_or(0);
    let (letters, counts) = match (
        store.dead_letters_page(flow, after, PAGE_SIZE),
        store.dead_letter_counts(),
    ) {
        (Ok(letters), Ok(counts)) => (letters, counts),
        (Err(e), _) | (_, Err(e)) => return state_failed(&operator, &e),
    };
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let body = html! {
        p {
            "Items the flows gave up on. " strong { (total) } " open"
            @for (name, n) in &counts { " · " a href={ "/console/dead-letters?flow=" (layout::encode_query(name)) } { (name) ": " (n) } }
            @if flow.is_some() { " · " a href="/console/dead-letters" { "all flows" } }
        }
        @if letters.is_empty() {
            p.empty { "No dead letters." }
        } @else {
            form #dead-letters-form method="post" action="/console/dead-letters" {
                (csrf_field(&operator))
                table #dead-letters {
                    thead { tr {
                        th { input #select-all type="checkbox" aria-label="select all"; }
                        th { "Id" } th { "Flow" } th { "Item" } th { "Error" } th { "Since" }
                    } }
                    tbody {
                        @for letter in &letters {
                            tr data-id=(letter.id) {
                                td { input.select-letter type="checkbox" name="id" value=(letter.id) aria-label={ "select " (letter.source_id) }; }
                                td { (letter.id) }
                                td { (letter.flow) }
                                td { a.entity-link href=(entity_path(&letter.flow, &letter.source_id)) { (letter.source_id) } }
                                td { (shorten(&letter.error, 160)) }
                                td { (time(&letter.created_at)) }
                            }
                        }
                    }
                }
                div.actions {
                    div {
                        button #retry-selected type="submit" name="action" value="retry" { "Retry selected" }
                    }
                    div.stack {
                        label for="bulk-reason" { "Reason (to mark resolved)" }
                        input #bulk-reason type="text" name="reason" size="40" maxlength="500";
                        " "
                        button #resolve-selected.secondary type="submit" name="action" value="resolve" { "Mark selected resolved" }
                    }
                }
            }
            @if letters.len() == PAGE_SIZE {
                @if let Some(last) = letters.last() {
                    p.pager { a #next-page href={ "/console/dead-letters?after=" (last.id) @if let Some(flow) = flow { "&flow=" (layout::encode_query(flow)) } } { "More →" } }
                }
            }
        }
    };
    layout::page(
        &operator,
        "Dead letters",
        "/console/dead-letters",
        Flash {
            flash: filters.flash,
            n: filters.n,
        }
        .text()
        .as_deref(),
        body,
    )
}

/// `POST /console/dead-letters`: `action=retry` requeues the ticked ones (as `relay replay`);
/// `action=resolve` marks their items resolved with the reason.
pub(super) async fn bulk(operator: Operator, body: Bytes) -> Response {
    let form = Form::parse(&body);
    if let Err(refused) = operator.check_csrf(&form) {
        return *refused;
    }
    let ids: Result<Vec<i64>, _> = form.all("id").map(str::parse::<i64>).collect();
    let Ok(ids) = ids else {
        return action_failed(
            &operator,
            &ActionError::Invalid("`id`: dead letter ids are numbers; reload the page".to_owned()),
        );
    };
    if ids.is_empty() {
        return action_failed(
            &operator,
            &ActionError::Invalid("Tick at least one dead letter first.".to_owned()),
        );
    }
    let store = operator.shared().store();
    let actor = operator.actor();
    match form.get("action") {
        Some("retry") => match operator::requeue(store, &ids, &actor) {
            Ok(outcome) => {
                let mut flows: Vec<&str> = outcome
                    .requeued
                    .iter()
                    .map(|(_, r)| r.flow.as_str())
                    .collect();
                flows.dedup();
                for flow in flows {
                    operator.shared().trigger_entity_flow(flow);
                }
                tracing::info!(actor = %actor, requeued = outcome.requeued.len(), missing = outcome.missing.len(), "console: bulk retry");
                Redirect::to(&format!(
                    "/console/dead-letters?flash=bulk_requeued&n={}",
                    outcome.requeued.len()
                ))
                .into_response()
            }
            Err(e) => action_failed(&operator, &e),
        },
        Some("resolve") => {
            let reason = form.get("reason").unwrap_or_default();
            let mut resolved = 0u64;
            for id in ids {
                let letter = match store.dead_letters_page(None, id - 1, 1) {
                    Ok(page) => page.into_iter().find(|d| d.id == id),
                    Err(e) => return state_failed(&operator, &e),
                };
                // Gone already (another operator, or resolved with its item): nothing to do.
                let Some(letter) = letter else { continue };
                match operator::resolve(store, &letter.flow, &letter.source_id, &actor, reason) {
                    Ok(_) => resolved += 1,
                    Err(e) => return action_failed(&operator, &e),
                }
            }
            tracing::info!(actor = %actor, resolved, "console: bulk resolve");
            Redirect::to(&format!(
                "/console/dead-letters?flash=bulk_resolved&n={resolved}"
            ))
            .into_response()
        }
        _ => action_failed(
            &operator,
            &ActionError::Invalid("`action` must be retry or resolve".to_owned()),
        ),
    }
}
