//! OAuth: `GET /authorize/{account}` (approves at once) and `POST /token/{account}` (code
//! exchange and refresh with rotating refresh tokens).

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use brightpearl_models::oauth::{
    AuthorizeQuery, GrantType, TokenError, TokenErrorCode, TokenRequest, TokenResponse,
};
use chrono::Duration;

use super::store::{AccessGrant, AuthCode};
use crate::state::SharedState;

/// An opaque token with the `+ / =` characters real tokens carry (clients must URL-encode them).
fn opaque(kind: &str, account: &str, seq: u64) -> String {
    let mut bytes = vec![0xfb, 0xff, 0xbf];
    bytes.extend_from_slice(format!("{kind}:{account}:{seq:08}").as_bytes());
    if bytes.len() % 3 == 0 {
        bytes.push(b'.');
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn page(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        format!("Brightpearl OAuth: {message}"),
    )
        .into_response()
}

/// The approval step: no login page, the merchant "approves" at once and is redirected (302) to
/// `redirect_uri?code=...&state=...`.
pub async fn authorize(
    State(state): State<SharedState>,
    Path(account): Path<String>,
    query: Result<Query<AuthorizeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let config = &state.config.brightpearl;
    let Ok(Query(query)) = query else {
        return page(
            StatusCode::BAD_REQUEST,
            "response_type, client_id and redirect_uri are required",
        );
    };
    if account != config.account {
        return page(StatusCode::NOT_FOUND, "unknown account");
    }
    if query.client_id != config.client_id {
        return page(StatusCode::BAD_REQUEST, "unknown client_id (app reference)");
    }
    let Ok(mut target) = reqwest::Url::parse(&query.redirect_uri) else {
        return page(
            StatusCode::BAD_REQUEST,
            "redirect_uri must be an absolute URL",
        );
    };
    if config
        .redirect_uri
        .as_deref()
        .is_some_and(|registered| registered != query.redirect_uri)
    {
        return page(
            StatusCode::BAD_REQUEST,
            "redirect_uri does not match the app settings",
        );
    }
    {
        let mut pairs = target.query_pairs_mut();
        if query.response_type != "code" {
            pairs.append_pair("error", "unsupported_response_type");
        } else {
            let mut store = state.brightpearl.lock();
            let seq = store.next_token();
            let code = opaque("code", &account, seq);
            let expires_at = state.clock.now() + Duration::seconds(config.auth_code_ttl_secs);
            store.codes.insert(
                code.clone(),
                AuthCode {
                    account: account.clone(),
                    redirect_uri: query.redirect_uri.clone(),
                    expires_at,
                },
            );
            pairs.append_pair("code", &code);
        }
        if let Some(csrf) = &query.state {
            pairs.append_pair("state", csrf);
        }
    }
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(location) = HeaderValue::from_str(target.as_str()) {
        response.headers_mut().insert("location", location);
    }
    response
}

fn token_error(code: TokenErrorCode, description: Option<&str>) -> Response {
    let body = TokenError {
        error: code,
        error_description: description.map(str::to_owned),
    };
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

const EXPIRED_OR_MISSING: &str = "The auth token has either expired or does not exist";

/// The token endpoint: `authorization_code` (single-use code, same redirect_uri) and
/// `refresh_token` (rotating: the used refresh token is dead afterwards).
pub async fn token(
    State(state): State<SharedState>,
    Path(account): Path<String>,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let config = &state.config.brightpearl;
    let Ok(Form(request)) = form else {
        return token_error(
            TokenErrorCode::Unknown("invalid_request".into()),
            Some("form body with grant_type and client_id required"),
        );
    };
    if account != config.account || request.client_id != config.client_id {
        return token_error(TokenErrorCode::InvalidClient, None);
    }
    match request.client_secret.as_deref() {
        Some(secret) if secret != config.client_secret => {
            return token_error(TokenErrorCode::InvalidClient, None);
        }
        None if config.confidential_oauth => {
            return token_error(TokenErrorCode::InvalidClient, None);
        }
        _ => {}
    }
    let now = state.clock.now();
    let mut store = state.brightpearl.lock();
    let refreshed = match request.grant_type {
        GrantType::AuthorizationCode => {
            let Some(code) = request.code.as_deref() else {
                return token_error(TokenErrorCode::InvalidGrant, Some(EXPIRED_OR_MISSING));
            };
            // Single use: the code is gone whether or not the rest checks out.
            let Some(grant) = store.codes.remove(code) else {
                return token_error(TokenErrorCode::InvalidGrant, Some(EXPIRED_OR_MISSING));
            };
            if grant.expires_at <= now || grant.account != account {
                return token_error(TokenErrorCode::InvalidGrant, Some(EXPIRED_OR_MISSING));
            }
            if request.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
                return token_error(
                    TokenErrorCode::InvalidGrant,
                    Some("Redirect uri does not match that used to request auth token"),
                );
            }
            false
        }
        GrantType::RefreshToken => {
            let Some(refresh) = request.refresh_token.as_deref() else {
                return token_error(TokenErrorCode::InvalidGrant, Some(EXPIRED_OR_MISSING));
            };
            match store.refresh.remove(refresh) {
                Some(owner) if owner == account => true,
                _ => return token_error(TokenErrorCode::InvalidGrant, Some(EXPIRED_OR_MISSING)),
            }
        }
        GrantType::Unknown(_) => {
            return token_error(
                TokenErrorCode::Unknown("unsupported_grant_type".into()),
                None,
            );
        }
    };
    let expires_in = if refreshed {
        config.refreshed_token_expires_in_secs
    } else {
        config.token_expires_in_secs
    };
    let seq = store.next_token();
    let access_token = opaque("access", &account, seq);
    let refresh_token = opaque("refresh", &account, seq);
    store.access.insert(
        access_token.clone(),
        AccessGrant {
            account: account.clone(),
            expires_at: now + Duration::seconds(expires_in),
            instance_id: config.installation_instance_id,
        },
    );
    store.refresh.insert(refresh_token.clone(), account.clone());
    drop(store);
    let body = TokenResponse {
        access_token,
        refresh_token: Some(refresh_token),
        expires_in: Some(expires_in),
        installation_instance_id: (!refreshed || config.instance_id_on_refresh)
            .then(|| config.installation_instance_id.to_string()),
        api_domain: Some(api_domain(&state)),
        token_type: Some("Bearer".into()),
    };
    let mut response = Json(body).into_response();
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    response
}

/// The configured `api_domain`, or the sandbox's own `host:port`.
pub fn api_domain(state: &SharedState) -> String {
    if let Some(domain) = &state.config.brightpearl.api_domain {
        return domain.clone();
    }
    reqwest::Url::parse(&state.base_url)
        .ok()
        .and_then(|url| {
            url.host_str().map(|host| match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            })
        })
        .unwrap_or_else(|| state.base_url.clone())
}
