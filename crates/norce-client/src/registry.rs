//! One token cache and one token-endpoint limiter per identity host and client id, shared by
//! every client of the process: Norce's token endpoint allows 3 requests per minute per IP
//! (burst 20), so clients built separately must not fetch a token each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use auth_core::{ClientCredentials, ConfigError, ExposeSecret, RateLimitLayer, RateLimiter};
use auth_core::{SecretString, TokenCache, presets};
use client_core::BoxTransport;
use reqwest::Url;
use tower::{ServiceBuilder, ServiceExt as _};

struct Entry {
    id: u64,
    limiter: RateLimiter,
    cache: TokenCache,
    /// What the cache was built with: a change (rotated secret, other scope) replaces the
    /// cache but keeps the limiter, whose budget belongs to the host.
    secret: SecretString,
    scope: String,
    token_url: Url,
}

/// (origin of the token URL, client id) → its entry.
static REGISTRY: Mutex<Option<HashMap<(String, String), Entry>>> = Mutex::new(None);

/// The shared cache for these credentials and its id, created (over `transport` under the
/// shared token-endpoint limiter) on first use.
pub(crate) fn token_cache(
    token_url: &Url,
    client_id: &str,
    secret: &SecretString,
    scope: &str,
    transport: &BoxTransport,
) -> Result<(TokenCache, u64), ConfigError> {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let key = (
        token_url.origin().ascii_serialization(),
        client_id.to_owned(),
    );
    let mut registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let map = registry.get_or_insert_with(HashMap::new);
    let old = map.get(&key);
    if let Some(entry) = old
        && entry.secret.expose_secret() == secret.expose_secret()
        && (entry.scope.as_str(), &entry.token_url) == (scope, token_url)
    {
        return Ok((entry.cache.clone(), entry.id));
    }
    let limiter = match old {
        Some(entry) => entry.limiter.clone(),
        None => RateLimiter::new(presets::norce_token_endpoint())?,
    };
    let token_transport = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()))
        .service(
            transport
                .clone()
                .map_response(|r| r.map(http_body_util::Full::new)),
        );
    let uri = (token_url.as_str().parse::<http::Uri>())
        .map_err(|_| ConfigError::Header("token url".into()))?;
    let source = ClientCredentials::new(token_transport, uri, client_id, secret.clone());
    let cache = TokenCache::new(source.scope(scope));
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(target: "norce_client", host = %key.0, client_id, scope, "new shared token cache");
    let entry = Entry {
        id,
        limiter,
        cache: cache.clone(),
        secret: secret.clone(),
        scope: scope.to_owned(),
        token_url: token_url.clone(),
    };
    map.insert(key, entry);
    Ok((cache, id))
}
