//! API key authentication (Basic `id:secret`, `Bearer id-secret`, or `Bearer <JWT>` from
//! `/sessions/jwt`), licences and profiles.
//!
//! Secrets are compared and dropped here; nothing is logged.

#![allow(clippy::result_large_err)] // Err is the ready-made axum Response.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq as _;

use super::config::{Licence, NshiftConfig};
use crate::state::AppState;
use crate::util::lock;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The API key id.
    pub key_id: String,
    /// The profile group of a profile-bound key.
    pub profile_group: Option<String>,
    licences: Vec<Licence>,
}

impl Caller {
    /// Whether the caller may see a record of `profile_group` (account-level keys see all).
    pub fn sees(&self, profile_group: Option<&str>) -> bool {
        self.profile_group
            .as_deref()
            .is_none_or(|own| profile_group == Some(own))
    }
}

/// 401 with an empty body (the RAML defines none) and a Basic challenge.
pub fn unauthorized() -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"rs-extapi\""),
    );
    response
}

/// 403 with an empty body.
pub fn forbidden() -> Response {
    StatusCode::FORBIDDEN.into_response()
}

/// Constant-time equality (`subtle`), so timing says nothing about how much of a secret
/// matched (only whether the lengths differ).
fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Whether a configured (id, secret) pair is the one the header carries.
type KeyMatcher = Box<dyn Fn(&str, &str) -> bool>;

/// Every key on the account: (id, secret, licences, profile group).
fn keys(config: &NshiftConfig) -> impl Iterator<Item = (&str, &str, &[Licence], Option<&str>)> {
    std::iter::once((
        config.api_key_id.as_str(),
        config.secret_id.as_str(),
        Licence::ALL,
        None,
    ))
    .chain(config.extra_keys.iter().map(|k| {
        (
            k.api_key_id.as_str(),
            k.secret_id.as_str(),
            k.licences.as_slice(),
            k.profile_group.as_deref(),
        )
    }))
}

fn caller_of(id: &str, licences: &[Licence], profile: Option<&str>) -> Caller {
    Caller {
        key_id: id.to_owned(),
        profile_group: profile.map(str::to_owned),
        licences: licences.to_vec(),
    }
}

/// The scheme and credential of the `Authorization` header.
fn authorization(headers: &HeaderMap) -> Option<(&str, &str)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    Some((scheme, rest.trim()))
}

/// The (id, secret) pair the header carries, as Basic or as the combined bearer key.
fn credentials_from(headers: &HeaderMap, config: &NshiftConfig) -> Option<Caller> {
    let (scheme, rest) = authorization(headers)?;
    let matches: KeyMatcher = if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let (id, secret) = (id.to_owned(), secret.to_owned());
        Box::new(move |kid, ksecret| same(&id, kid) & same(&secret, ksecret))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let token = rest.to_owned();
        Box::new(move |kid, ksecret| same(&token, &format!("{kid}-{ksecret}")))
    } else {
        return None;
    };
    keys(config)
        .find(|(id, secret, _, _)| !id.is_empty() && matches(id, secret))
        .map(|(id, _, licences, profile)| caller_of(id, licences, profile))
}

/// The caller of a Basic `id:secret` header (the only form `/sessions/jwt` takes).
pub fn basic_caller(config: &NshiftConfig, headers: &HeaderMap) -> Option<Caller> {
    let (scheme, _) = authorization(headers)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    credentials_from(headers, config)
}

/// The caller of a `Bearer <JWT>` header whose session has not expired on the virtual clock;
/// the key's current licences and profile apply.
fn session_caller(state: &AppState, headers: &HeaderMap) -> Option<Caller> {
    let (scheme, token) = authorization(headers)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.matches('.').count() != 2 {
        return None;
    }
    let now = state.clock.now();
    let key_id = {
        let store = lock(&state.nshift.inner);
        let session = store.session(token)?;
        if session.expires_at <= now {
            return None;
        }
        session.key_id.clone()
    };
    keys(&state.config.nshift)
        .find(|(id, _, _, _)| *id == key_id)
        .map(|(id, _, licences, profile)| caller_of(id, licences, profile))
}

/// Authenticates the request and checks the licence; `account_level` refuses profile-bound keys
/// (GET /shipments, GET /alerts and, a sandbox choice, POST /prices/history).
pub fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    licence: Licence,
    account_level: bool,
) -> Result<Caller, Response> {
    let caller = credentials_from(headers, &state.config.nshift)
        .or_else(|| session_caller(state, headers))
        .ok_or_else(unauthorized)?;
    if !caller.licences.contains(&licence) || (account_level && caller.profile_group.is_some()) {
        return Err(forbidden());
    }
    Ok(caller)
}
