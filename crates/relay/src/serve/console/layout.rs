//! The console's frame (head, menu, messages), sign-in and sign-out, the error pages, the
//! audit log, the embedded assets, and small formatting helpers the pages share.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;

use super::auth;
use super::{ConsoleState, Form, Operator};
use crate::serve::secrets::secret_matches;
use crate::state::EntityEvent;

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

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
fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
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

#[derive(Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// Where to go after signing in: only a console path (never another site).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with("/console")
                && !next.starts_with("//")
                && !next.contains('\\')
                && !next.starts_with("/console/login") =>
        {
            next
        }
        _ => "/console",
    }
}

fn login_form(next: &str, failed: bool) -> Markup {
    html! {
        @if failed {
            p #flash role="alert" { "That is not the console token. Check " code { "RELAY_CONSOLE_TOKEN" } " on the server." }
        }
        form #sign-in method="post" action="/console/login" {
            input type="hidden" name="next" value=(next);
            label for="token" { "Console token" }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            label for="name" { "Your name (for the audit log)" }
            input #name type="text" name="name" maxlength="40" autocomplete="username";
            button #sign-in-button type="submit" { "Sign in" }
        }
    }
}

/// `GET /console/login`.
pub(super) async fn login_page(Query(query): Query<LoginQuery>) -> Response {
    bare(
        StatusCode::OK,
        "Sign in",
        login_form(safe_next(query.next.as_deref()), false),
    )
}

/// `POST /console/login`: the token is compared in constant time; a wrong one is a 401 and a
/// warning in the log (never the value tried).
pub(super) async fn login(
    State(console): State<ConsoleState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let next = safe_next(form.get("next")).to_owned();
    let (Some(key), Some(token)) = (&console.key, &console.shared.secrets.console_token) else {
        return off_page(&console.shared.config.console_token_env);
    };
    let given = form.get("token").unwrap_or_default();
    if !secret_matches(token, given.as_bytes()) {
        tracing::warn!("console: a sign-in with a wrong token was refused");
        return bare(StatusCode::UNAUTHORIZED, "Sign in", login_form(&next, true));
    }
    let session = match key.issue(form.get("name").unwrap_or_default(), Utc::now()) {
        Ok(session) => session,
        Err(e) => {
            tracing::error!(error = %e, "console: no random numbers for a session");
            return bare(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign in",
                html! { p.error { "The operating system gave no random numbers; try again." } },
            );
        }
    };
    tracing::info!(actor = %session.actor(), "console: signed in");
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = auth::set_cookie(&key.cookie_value(&session), secure);
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

/// `POST /console/logout`.
pub(super) async fn logout(operator: Operator, body: Bytes) -> Response {
    if let Err(refused) = operator.check_csrf(&Form::parse(&body)) {
        return *refused;
    }
    tracing::info!(actor = %operator.actor(), "console: signed out");
    (
        [(header::SET_COOKIE, auth::clear_cookie())],
        Redirect::to("/console/login"),
    )
        .into_response()
}

/// `GET /console/audit`: the last operator actions, newest first.
pub(super) async fn audit(operator: Operator) -> Response {
    match operator.shared().store().audit_log(500) {
        Ok(events) => page(
            &operator,
            "Audit log",
            "/console/audit",
            None,
            html! {
                p { "Every action taken in the console or with " code { "relay replay" } " / " code { "relay cursor set" } ", newest first (the last 500)." }
                (audit_table(&events))
            },
        ),
        Err(e) => super::state_failed(&operator, &e),
    }
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

/// `GET /console/assets/console.css`.
pub(super) async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

/// `GET /console/assets/console.js`.
pub(super) async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_only_sends_back_to_console_pages() {
        assert_eq!(
            safe_next(Some("/console/entities?ref=1")),
            "/console/entities?ref=1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/metrics",
            "/console\\..",
            "/console/login",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }

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
