//! One token cache and one token-endpoint limiter per identity host and client id, shared by
//! every client built in the process.
//!
//! Norce's token endpoint allows 3 requests per minute per IP address (burst 20), so clients
//! built separately (one per flow, one per test of `relay verify`) must not fetch a token each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use auth_core::{
    ClientCredentials, ExposeSecret, RateLimitLayer, RateLimiter, SecretString, TokenCache, presets,
};
use reqwest::Url;
use tower::{ServiceBuilder, ServiceExt as _};

use client_core::BoxTransport;

struct Entry {
    id: u64,
    limiter: RateLimiter,
    cache: TokenCache,
    /// What the cache was built with; a change (rotated secret, other scope) replaces the cache
    /// but keeps the limiter, whose budget belongs to the host.
    secret: SecretString,
    scope: String,
    token_url: String,
}

type Key = (String, String);

fn registry() -> &'static Mutex<HashMap<Key, Entry>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Key, Entry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The host part of the key: scheme, host and port of the token URL.
pub(crate) fn identity_host(token_url: &Url) -> String {
    token_url.origin().ascii_serialization()
}

/// The shared cache for these credentials, created (with `transport` under the shared
/// token-endpoint limiter) on first use.
pub(crate) fn token_cache(
    token_url: &Url,
    client_id: &str,
    secret: &SecretString,
    scope: &str,
    transport: &BoxTransport,
) -> Result<(TokenCache, u64), auth_core::ConfigError> {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let key = (identity_host(token_url), client_id.to_owned());
    let mut map = registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(entry) = map.get(&key)
        && entry.secret.expose_secret() == secret.expose_secret()
        && entry.scope == scope
        && entry.token_url == token_url.as_str()
    {
        return Ok((entry.cache.clone(), entry.id));
    }
    let limiter = match map.get(&key) {
        Some(entry) => entry.limiter.clone(),
        None => RateLimiter::new(presets::norce_token_endpoint())?,
    };
    let token_transport = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()))
        .service(
            transport
                .clone()
                .map_response(|r: http::Response<bytes::Bytes>| r.map(http_body_util::Full::new)),
        );
    let uri: http::Uri = token_url
        .as_str()
        .parse()
        .map_err(|_| auth_core::ConfigError::Header("token url".into()))?;
    let source =
        ClientCredentials::new(token_transport, uri, client_id, secret.clone()).scope(scope);
    let cache = TokenCache::new(source);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(target: "norce_client", host = %key.0, client_id, scope, "new shared token cache");
    map.insert(
        key,
        Entry {
            id,
            limiter,
            cache: cache.clone(),
            secret: secret.clone(),
            scope: scope.to_owned(),
            token_url: token_url.as_str().to_owned(),
        },
    );
    Ok((cache, id))
}
