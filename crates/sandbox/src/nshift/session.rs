//! `/sessions/jwt`: swaps HTTP Basic `id:secret` for a JWT valid for 12 hours (DEV-auth, API
//! §1.2), which the other routes then accept as `Authorization: Bearer <token>` until it
//! expires on the sandbox's virtual clock.
//!
//! The notes are unsure whether the method is GET or POST: both are answered unless
//! `jwt_methods` says otherwise (the other one then gets 405).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nshift_models::delivery::JwtSession;
use serde_json::json;

use super::auth;
use super::config::JwtMethods;
use super::store::{Session, config_secs};
use crate::state::SharedState;
use crate::util::lock;

fn allowed(methods: JwtMethods, method: &Method) -> bool {
    match methods {
        JwtMethods::Both => method == Method::GET || method == Method::POST,
        JwtMethods::GetOnly => method == Method::GET,
        JwtMethods::PostOnly => method == Method::POST,
    }
}

fn method_not_allowed(methods: JwtMethods) -> Response {
    let allow = match methods {
        JwtMethods::Both => "GET, POST",
        JwtMethods::GetOnly => "GET",
        JwtMethods::PostOnly => "POST",
    };
    let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// GET or POST `/sessions/jwt`: Basic credentials only (a bearer, JWT or combined key, gets 401).
pub(super) async fn create_session(
    State(state): State<SharedState>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let config = &state.config.nshift;
    if !allowed(config.jwt_methods, &method) {
        return method_not_allowed(config.jwt_methods);
    }
    let Some(caller) = auth::basic_caller(config, &headers) else {
        return auth::unauthorized();
    };
    let now = state.clock.now();
    let expires_at = now + config_secs(config.jwt_lifetime_secs);
    let token = lock(&state.nshift.inner).issue_session(
        Session {
            key_id: caller.key_id.clone(),
            expires_at,
        },
        |seq| {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
            let payload = json!({
                "iss": "rs-extapi-sandbox",
                "sub": caller.key_id,
                "iat": now.timestamp(),
                "exp": expires_at.timestamp(),
                "jti": seq,
            });
            let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
            // Deterministic: the same sequence number always gets the same signature.
            let mut rng = fastrand::Rng::with_seed(0x6e53_6869_6674 ^ seq);
            let signature: Vec<u8> = (0..32).map(|_| rng.u8(..)).collect();
            format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature))
        },
    );
    tracing::debug!(key_id = %caller.key_id, "nshift: JWT session issued");
    Json(JwtSession { token }).into_response()
}
