//! The operator console at `/console`: server-rendered pages (maud) over the state, through the
//! [`Store`](crate::state::Store) trait, so it reads the same on SQLite and PostgreSQL.
//!
//! | page | what |
//! | --- | --- |
//! | `/console` | per flow: last and next run, done and failed in 24 h, dead letters, cursor age; the platforms' health; Brightpearl webhook registrations; a 48-hour chart |
//! | `/console/entities` | search by flow, status, reference (any platform's id) and date; paginated |
//! | `/console/entities/{flow}/{id}` | ids side by side, the history, the payload (secrets redacted), labels, **Retry** and **Mark resolved**; on an order **Refund** and its refunds |
//! | `/console/dead-letters` | the queue, bulk retry and resolve |
//! | `/console/cursors` | each flow's cursor; set one back, after a confirmation that says what will be re-read |
//! | `/console/mappings` | the configured mappings, read-only |
//! | `/console/audit` | who did what, when |
//!
//! Off unless a console token is set (`[serve] console_token_env`, `RELAY_CONSOLE_TOKEN` or
//! `RELAY_CONSOLE_TOKEN_FILE`): then every console path is a 404 that names the variable.
//! Signing in with the token sets a session cookie (see `auth.rs`); every form that changes
//! the state carries the session's CSRF token. Pages read without JavaScript; one small script
//! (`console.js`) only adds "select all" and a confirmation. Actions go through
//! [`crate::operator`], exactly as `relay replay` and `relay cursor set` do, and are recorded
//! in the audit log with the operator's name.

mod auth;
mod chart;
mod cursors;
mod dead_letters;
mod entities;
mod layout;
mod mappings;
mod overview;
mod signin;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};

use self::auth::SessionKey;
use self::layout::{Console, ConsoleState, Operator};
use super::shared::Shared;

/// The console's routes, under `/console`.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    let key = shared
        .secrets
        .console_token
        .as_ref()
        .map(SessionKey::derive);
    let console = Arc::new(Console { shared, key });
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route(
            "/console/login",
            get(signin::login_page).post(signin::login),
        )
        .route("/console/logout", post(signin::logout))
        .route("/console/entities", get(entities::list))
        .route("/console/entities/{flow}/{id}", get(entities::detail))
        .route("/console/entities/{flow}/{id}/retry", post(entities::retry))
        .route(
            "/console/entities/{flow}/{id}/return",
            post(entities::book_return),
        )
        .route(
            "/console/entities/{flow}/{id}/refund",
            post(entities::refund),
        )
        .route(
            "/console/entities/{flow}/{id}/resolve",
            post(entities::resolve),
        )
        .route(
            "/console/entities/{flow}/{id}/labels/{n}",
            get(entities::label),
        )
        .route(
            "/console/dead-letters",
            get(dead_letters::page).post(dead_letters::bulk),
        )
        .route("/console/cursors", get(cursors::page))
        .route("/console/cursors/{flow}/confirm", get(cursors::confirm))
        .route("/console/cursors/{flow}", post(cursors::set))
        .route("/console/mappings", get(mappings::page))
        .route("/console/audit", get(signin::audit))
        .route("/console/assets/console.css", get(signin::css))
        .route("/console/assets/console.js", get(signin::js))
        .route("/console/{*rest}", get(not_found))
        .layer(middleware::from_fn_with_state(console.clone(), guard))
        .with_state(console)
}

/// Every console answer: 404 while the console is off, and headers that keep pages out of
/// caches and frames and let them load nothing from elsewhere.
async fn guard(State(console): State<ConsoleState>, request: Request, next: Next) -> Response {
    let mut response = if console.key.is_none() {
        layout::off_page(&console.shared.config.console_token_env)
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn not_found(operator: Operator) -> Response {
    layout::error_page(
        &operator,
        StatusCode::NOT_FOUND,
        "No such console page",
        "Use the menu above.",
    )
}
