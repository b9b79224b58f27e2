//! The console's bottom module: the signed-in operator (the extractor every page takes), posted
//! forms, the frame (head, menu, messages), the error pages, action messages and small
//! formatting helpers; every page module uses it, it uses none of them.

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::auth::{self, Session, SessionKey};
use crate::operator;
use crate::serve::shared::Shared;
use crate::state::EntityEvent;

/// The menu: (id, path, label).
const MENU: &[(&str, &str, &str)] = &[
    ("nav-overview", "/console", "Overview"),
    ("nav-entities", "/console/entities", "Entities"),
    ("nav-dead-letters", "/console/dead-letters", "Dead letters"),
    ("nav-cursors", "/console/cursors", "Cursors"),
    ("nav-mappings", "/console/mappings", "Mappings"),
    ("nav-audit", "/console/audit", "Audit log"),
];

/// A whole page for a signed-in operator: the menu (with `current` marked), the message of the
/// last action (`flash`), then `body`.
pub(super) fn page(
    operator: &Operator,
    title: &str,
    current: &str,
    flash: Option<&str>,
    body: Markup,
) -> Response {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    header {
                        span.brand { "relay console" }
                        nav #nav {
                            @for (id, path, label) in MENU {
                                a id=(id) href=(path) aria-current=[(*path == current).then_some("page")] { (label) }
                            }
                        }
                        form #sign-out method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(operator.csrf);
                            span.who { (operator.session.name) }
                            button type="submit" { "Sign out" }
                        }
                    }
                    main {
                        h1 { (title) }
                        @if let Some(flash) = flash {
                            p #flash role="status" { (flash) }
                        }
                        (body)
                    }
                }
            }
        }
        .into_string(),
    )
    .into_response()
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · relay console" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// A page without the menu (sign-in, console off).
pub(super) fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    (
        status,
        Html(
            html! {
                (DOCTYPE)
                html lang="en" {
                    (head(title))
                    body.bare {
                        main {
                            h1 { (title) }
                            (body)
                        }
                    }
                }
            }
            .into_string(),
        ),
    )
        .into_response()
}

/// The answer of every console path while no console token is set.
pub(super) fn off_page(variable: &str) -> Response {
    bare(
        StatusCode::NOT_FOUND,
        "The console is off",
        html! {
            p { "Set " code { (variable) } " (or " code { (variable) "_FILE" } ", a file holding it) to a long random token and restart " code { "relay serve" } "; then sign in here with it." }
        },
    )
}

/// An error page with the menu.
pub(super) fn error_page(
    operator: &Operator,
    status: StatusCode,
    title: &str,
    what_to_do: &str,
) -> Response {
    let mut response = page(
        operator,
        title,
        "",
        None,
        html! { p.error { (what_to_do) } },
    );
    *response.status_mut() = status;
    response
}

/// The audit table (`table#audit`) of `events`.
pub(super) fn audit_table(events: &[EntityEvent]) -> Markup {
    html! {
        @if events.is_empty() {
            p.empty { "No actions yet." }
        } @else {
            table #audit {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Item" } th { "Details" } } }
                tbody {
                    @for event in events {
                        tr {
                            td { (time(&event.at)) }
                            td { (event.actor.as_deref().unwrap_or("")) }
                            td { (event.kind.as_str()) }
                            td {
                                @if event.source_id.is_empty() {
                                    (event.flow)
                                } @else {
                                    a href=(entity_path(&event.flow, &event.source_id)) { (event.flow) " " (event.source_id) }
                                }
                            }
                            td { (event.detail.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// What [`encode_query`] leaves as it is: RFC 3986's unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` percent-encoded for a path segment or a query value.
pub(super) fn encode_query(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, UNRESERVED).to_string()
}

/// The detail page of an entity.
pub(super) fn entity_path(flow: &str, source_id: &str) -> String {
    format!(
        "/console/entities/{}/{}",
        encode_query(flow),
        encode_query(source_id)
    )
}

/// A stored RFC 3339 time shown as `2026-12-03 14:05:09 UTC` (the text itself when it is not
/// a time), in a `time` element with the exact value.
pub(super) fn time(stamp: &str) -> Markup {
    match DateTime::parse_from_rfc3339(stamp) {
        Ok(t) => {
            let t = t.with_timezone(&Utc);
            html! { time datetime=(stamp) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
        }
        Err(_) => html! { (stamp) },
    }
}

/// A duration for people: `45 s`, `12 min`, `3.5 h`, `2.0 d`.
pub(super) fn human_duration(seconds: i64) -> String {
    let s = seconds.abs();
    let text = if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else if s < 172_800 {
        format!("{:.1} h", s as f64 / 3600.0)
    } else {
        format!("{:.1} d", s as f64 / 86_400.0)
    };
    if seconds < 0 {
        format!("in {text}")
    } else {
        text
    }
}

/// The hidden CSRF field of a form.
pub(super) fn csrf_field(operator: &Operator) -> Markup {
    html! { input type="hidden" name="csrf" value=(operator.csrf); }
}

/// Text shortened to `max` characters with an ellipsis.
pub(super) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Markup from trusted, constant text (the chart's SVG, built from numbers only).
pub(super) fn trusted(text: String) -> Markup {
    PreEscaped(text)
}

/// What the console's handlers share.
pub(super) struct Console {
    /// What `relay serve` shares.
    pub(super) shared: Arc<Shared>,
    /// `None`: the console is off.
    pub(super) key: Option<SessionKey>,
}

/// The handlers' state.
pub(super) type ConsoleState = Arc<Console>;

/// A signed-in operator (the extractor every page takes): not signed in → 303 to the sign-in
/// page, which sends them back here afterwards.
pub(super) struct Operator {
    pub(super) console: ConsoleState,
    pub(super) session: Session,
    pub(super) csrf: String,
}

impl Operator {
    pub(super) fn shared(&self) -> &Shared {
        &self.console.shared
    }

    /// Who the audit log names.
    pub(super) fn actor(&self) -> String {
        self.session.actor()
    }

    /// Refuses a form without this session's CSRF token (403).
    pub(super) fn check_csrf(&self, form: &Form) -> Result<(), Box<Response>> {
        let key = self.console.key.as_ref();
        let given = form.get("csrf").unwrap_or_default();
        if key.is_some_and(|key| key.csrf_matches(&self.session, given)) {
            Ok(())
        } else {
            tracing::warn!(
                actor = %self.actor(),
                "console: a form without a valid CSRF token was refused"
            );
            Err(Box::new(error_page(
                self,
                StatusCode::FORBIDDEN,
                "This form has expired",
                "The request did not carry this session's form token (a form from another site, or from before you signed in again). Reload the page and try again.",
            )))
        }
    }
}

impl FromRequestParts<ConsoleState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let Some(key) = &console.key else {
            return Err(off_page(&console.shared.config.console_token_env));
        };
        let session = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(auth::cookie_in)
            .find_map(|value| key.open(value, chrono::Utc::now()));
        match session {
            Some(session) => Ok(Operator {
                csrf: key.csrf(&session),
                console: console.clone(),
                session,
            }),
            None => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/console", |p| p.as_str());
                let location = format!("/console/login?next={}", encode_query(next));
                Err(Redirect::to(&location).into_response())
            }
        }
    }
}

/// A posted form (`application/x-www-form-urlencoded`), repeated names kept.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A page's answer when the state cannot be read: 500 with the store's message (which never
/// holds a secret), logged.
pub(super) fn state_failed(operator: &Operator, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %error, "console: the state could not be read");
    error_page(
        operator,
        StatusCode::INTERNAL_SERVER_ERROR,
        "The state could not be read",
        &format!("{error}. Check the state database (`relay status`) and reload."),
    )
}

/// The entity flows of the running flows (`shipping`, `orders`, `stock`, `prices`, ...).
pub(super) fn entity_flows(operator: &Operator) -> Vec<&'static str> {
    operator
        .shared()
        .flows
        .iter()
        .flat_map(|f| f.entity_flows().iter().copied())
        .collect()
}

/// The message after an action, by its code in the query (never text from the query itself).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Flash {
    /// The action's code.
    pub(super) flash: Option<String>,
    /// How many items it touched.
    pub(super) n: Option<u64>,
}

impl Flash {
    pub(super) fn text(&self) -> Option<String> {
        let n = self.n.unwrap_or(0);
        Some(match self.flash.as_deref()? {
            "requeued" => {
                "Sent back to its flow: a pass has been started; reload to see it processed."
                    .to_owned()
            }
            "already_pending" => {
                "It has no dead letter and is pending: a pass has been started for it.".to_owned()
            }
            "nothing_to_retry" => "Nothing to retry: it is not failed.".to_owned(),
            "return_queued" => {
                "Return label queued: a shipping pass has been started; reload to see it booked."
                    .to_owned()
            }
            "return_already_queued" => {
                "A return label is queued already: a shipping pass has been started.".to_owned()
            }
            "resolved" => "Marked resolved; the reason is in its history.".to_owned(),
            "refund_queued" => "Refund queued: the orders pass has been started and creates the Brightpearl sales credit; it is listed under Refunds.".to_owned(),
            "bulk_requeued" => {
                format!("{n} dead letter(s) sent back to their flows; passes have been started.")
            }
            "bulk_resolved" => format!("{n} item(s) marked resolved."),
            "cursor_set" => {
                "Cursor set; the flow's pass has been started and re-reads from there.".to_owned()
            }
            _ => return None,
        })
    }
}

/// The answer to an action that could not be done: 400 with what to do, or 500 when the state
/// failed.
pub(super) fn action_failed(operator: &Operator, error: &operator::ActionError) -> Response {
    match error {
        operator::ActionError::Invalid(what) => error_page(
            operator,
            StatusCode::BAD_REQUEST,
            "That could not be done",
            what,
        ),
        other => state_failed(operator, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_shortening_read_well() {
        assert_eq!(human_duration(30), "30 s");
        assert_eq!(human_duration(600), "10 min");
        assert_eq!(human_duration(-600), "in 10 min");
        assert_eq!(human_duration(3 * 86_400), "3.0 d");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
