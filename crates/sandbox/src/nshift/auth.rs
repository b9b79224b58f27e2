//! API key authentication (Basic `id:secret` or `Bearer id-secret`), licences and profiles.
//!
//! Secrets are compared and dropped here; nothing is logged.

#![allow(clippy::result_large_err)] // Err is the ready-made axum Response.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::{Licence, NshiftConfig};

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

/// Constant-time-ish equality, so timing says nothing about how much of a secret matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a configured (id, secret) pair is the one the header carries.
type KeyMatcher = Box<dyn Fn(&str, &str) -> bool>;

/// The (id, secret) pair the header carries, as Basic or as the combined bearer key.
fn credentials_from(headers: &HeaderMap, config: &NshiftConfig) -> Option<Caller> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    let keys = std::iter::once((
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
    }));
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
    keys.into_iter()
        .find(|(id, secret, _, _)| !id.is_empty() && matches(id, secret))
        .map(|(id, _, licences, profile)| Caller {
            key_id: id.to_owned(),
            profile_group: profile.map(str::to_owned),
            licences: licences.to_vec(),
        })
}

/// Authenticates the request and checks the licence; `account_level` refuses profile-bound keys
/// (GET /shipments and GET /alerts).
pub fn authorize(
    config: &NshiftConfig,
    headers: &HeaderMap,
    licence: Licence,
    account_level: bool,
) -> Result<Caller, Response> {
    let caller = credentials_from(headers, config).ok_or_else(unauthorized)?;
    if !caller.licences.contains(&licence) || (account_level && caller.profile_group.is_some()) {
        return Err(forbidden());
    }
    Ok(caller)
}
