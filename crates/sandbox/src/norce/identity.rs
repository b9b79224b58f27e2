//! `POST /identity/1.0/connect/token`: OAuth2 client credentials, rate limited per client IP
//! (GCRA on the virtual clock), and the bearer check every `/commerce/...` call goes through.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use norce_models::identity::{
    OAuthError, OAuthErrorError, TokenRequest, TokenRequestGrantType, TokenResponse,
};
use serde_json::json;

use super::model::TokenRec;
use super::reply;
use crate::state::{AppState, SharedState};

fn oauth_error(
    status: StatusCode,
    error: OAuthErrorError,
    description: impl Into<String>,
) -> Response {
    let body = OAuthError {
        error: Some(error),
        error_description: Some(description.into()),
    };
    (status, Json(body)).into_response()
}

/// The client IP: the connection's peer when the server records it, else the first
/// `X-Forwarded-For` entry, else loopback (the sandbox only listens on loopback by default).
fn client_ip(extensions: &Extensions, headers: &HeaderMap) -> String {
    if let Some(ConnectInfo(addr)) = extensions.get::<ConnectInfo<SocketAddr>>() {
        return addr.ip().to_string();
    }
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "127.0.0.1".to_owned())
}

/// GCRA: one request per `interval`, `burst` at once. `Ok(())` consumes a slot; `Err(wait)` is the
/// time until the next slot frees up.
pub(super) fn gcra(
    tat: &mut Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    interval: Duration,
    burst: u32,
) -> Result<(), Duration> {
    let current = tat.map_or(now, |t| t.max(now));
    let next = current + interval;
    let limit = now + interval * burst.max(1) as i32;
    if next > limit {
        return Err(next - limit);
    }
    *tat = Some(next);
    Ok(())
}

pub(super) async fn token(
    State(state): State<SharedState>,
    extensions: Extensions,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let config = state.norce.config();
    let now = state.clock.now();
    let ip = client_ip(&extensions, &headers);
    let interval =
        Duration::milliseconds((60_000 / i64::from(config.token_rate_per_minute.max(1))).max(1));
    let limited = {
        let mut inner = state.norce.lock();
        let tat = inner.token_buckets.entry(ip).or_default();
        gcra(tat, now, interval, config.token_burst)
    };
    if let Err(wait) = limited {
        let secs = (wait.num_milliseconds() + 999) / 1000;
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": "too_many_requests", "error_description": format!("Token requests are limited to {} per minute per IP address with a burst of {}; cache the token.", config.token_rate_per_minute, config.token_burst)})),
        )
            .into_response();
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(secs.max(1)));
        return response;
    }
    let request = match form {
        Ok(Form(request)) => request,
        Err(rejection) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                OAuthErrorError::InvalidRequest,
                rejection.body_text(),
            );
        }
    };
    if request.grant_type != TokenRequestGrantType::ClientCredentials {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            OAuthErrorError::UnsupportedGrantType,
            format!(
                "grant_type `{}` is not supported; use client_credentials",
                request.grant_type
            ),
        );
    }
    let known =
        (request.client_id == config.client_id && request.client_secret == config.client_secret)
            || config.extra_accounts.iter().any(|a| {
                a.client_id == request.client_id && a.client_secret == request.client_secret
            });
    if !known {
        // Never echo the secret.
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            OAuthErrorError::InvalidClient,
            "unknown client_id or wrong client_secret",
        );
    }
    let scope = request.scope.as_str().to_owned();
    if request.scope.is_unknown() || !config.accepted_scopes.contains(&scope) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            OAuthErrorError::InvalidScope,
            format!(
                "scope `{scope}` is not one of {}",
                config.accepted_scopes.join(", ")
            ),
        );
    }
    let lifetime = i32::try_from(config.token_lifetime_secs).unwrap_or(i32::MAX);
    let expires_at = now + Duration::seconds(i64::from(lifetime));
    let access_token = {
        let mut inner = state.norce.lock();
        inner.token_seq += 1;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"at+jwt"}"#);
        let payload = json!({
            "iss": format!("{}/identity/1.0", state.base_url),
            "client_id": request.client_id,
            "scope": [scope],
            "exp": expires_at.timestamp(),
            "jti": inner.token_seq,
        });
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        let signature: Vec<u8> = (0..32).map(|_| inner.rng.u8(..)).collect();
        let token = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(signature));
        inner.tokens.insert(
            token.clone(),
            TokenRec {
                client_id: request.client_id.clone(),
                scope: scope.clone(),
                expires_at,
            },
        );
        token
    };
    Json(TokenResponse {
        access_token,
        expires_in: lifetime,
        token_type: "Bearer".into(),
        scope: Some(scope),
    })
    .into_response()
}

/// 401 unless the request carries a known, unexpired bearer token.
pub(super) fn check_bearer(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let unauthorized = |challenge: &str, message: &str| {
        let mut response = reply::error(StatusCode::UNAUTHORIZED, message);
        if let Ok(value) = HeaderValue::from_str(challenge) {
            response.headers_mut().insert("www-authenticate", value);
        }
        response
    };
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(unauthorized(
            "Bearer",
            "Authorization has been denied for this request: no bearer token.",
        ));
    };
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(unauthorized(
                "Bearer",
                "Authorization has been denied for this request: expected `Authorization: Bearer <token>`.",
            ));
        }
    };
    let now = state.clock.now();
    let inner = state.norce.lock();
    match inner.tokens.get(token) {
        None => Err(unauthorized(
            r#"Bearer error="invalid_token""#,
            "Authorization has been denied for this request: unknown token.",
        )),
        Some(rec) if rec.expires_at <= now => Err(unauthorized(
            r#"Bearer error="invalid_token", error_description="The token expired""#,
            &format!(
                "Authorization has been denied for this request: the token expired at {}.",
                rec.expires_at.to_rfc3339()
            ),
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let interval = Duration::seconds(20);
        let mut tat = None;
        let allowed = (0..25)
            .filter(|_| gcra(&mut tat, start, interval, 20).is_ok())
            .count();
        assert_eq!(allowed, 20);
        assert_eq!(
            gcra(&mut tat, start, interval, 20),
            Err(Duration::seconds(20))
        );
        let later = start + Duration::seconds(20);
        assert!(gcra(&mut tat, later, interval, 20).is_ok());
        assert!(gcra(&mut tat, later, interval, 20).is_err());
        // A long pause refills the whole burst, no more.
        let much_later = later + Duration::hours(2);
        assert_eq!(
            (0..25)
                .filter(|_| gcra(&mut tat, much_later, interval, 20).is_ok())
                .count(),
            20
        );
    }
}
