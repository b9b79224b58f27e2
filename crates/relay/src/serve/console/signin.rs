//! Sign-in and sign-out, the audit log page, and the embedded assets.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::auth;
use super::layout::{
    ConsoleState, Form, Operator, audit_table, bare, off_page, page, state_failed,
};
use crate::serve::secrets::secret_matches;

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

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
        Err(e) => state_failed(&operator, &e),
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
}
