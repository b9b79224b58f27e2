//! One token cache and one token-endpoint limiter per identity host and client id, shared by
//! every client of the process: Norce's token endpoint allows 3 requests per minute per IP
//! (burst 20), so clients built separately must not fetch a token each. With a shared auth
//! state (several worker processes over one database) the token is also fetched once per
//! lifetime for all processes, and the limiter's budget is the processes' together.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use auth_core::{ClientCredentials, ConfigError, ExposeSecret, RateLimitLayer, RateLimiter};
use auth_core::{
    RateLimitKey, SecretString, SharedAuthState, SharedTokenSource, TokenCache, presets,
};
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
    /// The shared state both were built over (compared by identity).
    shared: Option<Arc<dyn SharedAuthState>>,
}

/// Whether two optional shared states are the same one.
fn same_state(a: Option<&Arc<dyn SharedAuthState>>, b: Option<&Arc<dyn SharedAuthState>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)),
        _ => false,
    }
}

/// The shared limiter key of the token endpoint at `origin` (Norce limits it per host).
pub(crate) fn token_endpoint_key(origin: &str) -> RateLimitKey {
    RateLimitKey::new(format!("norce-token:{origin}"))
}

/// The shared token's name: one per identity host, client id and scope.
pub(crate) fn shared_token_name(origin: &str, client_id: &str, scope: &str) -> String {
    format!("norce:token:{origin}:{client_id}:{scope}")
}

/// (origin of the token URL, client id) → its entry.
static REGISTRY: Mutex<Option<HashMap<(String, String), Entry>>> = Mutex::new(None);

/// The shared cache for these credentials and its id, created (over `transport` under the
/// shared token-endpoint limiter) on first use; over `shared`, when given, its token and the
/// limiter's budget are shared with other processes too.
pub(crate) fn token_cache(
    token_url: &Url,
    client_id: &str,
    secret: &SecretString,
    scope: &str,
    transport: &BoxTransport,
    shared: Option<&Arc<dyn SharedAuthState>>,
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
        && same_state(entry.shared.as_ref(), shared)
    {
        return Ok((entry.cache.clone(), entry.id));
    }
    let limiter = match (old, shared) {
        (Some(entry), _) if same_state(entry.shared.as_ref(), shared) => entry.limiter.clone(),
        (_, Some(state)) => {
            RateLimiter::new(presets::norce_token_endpoint())?.with_shared(Arc::clone(state))?
        }
        (_, None) => RateLimiter::new(presets::norce_token_endpoint())?,
    };
    let token_transport = ServiceBuilder::new()
        .layer(RateLimitLayer::new(limiter.clone()).default_key(token_endpoint_key(&key.0)))
        .service(
            transport
                .clone()
                .map_response(|r| r.map(http_body_util::Full::new)),
        );
    let uri = (token_url.as_str().parse::<http::Uri>())
        .map_err(|_| ConfigError::Header("token url".into()))?;
    let source = ClientCredentials::new(token_transport, uri, client_id, secret.clone());
    let source = source.scope(scope);
    let cache = match shared {
        Some(state) => {
            let name = shared_token_name(&key.0, client_id, scope);
            TokenCache::new(SharedTokenSource::new(source, Arc::clone(state), name))
        }
        None => TokenCache::new(source),
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(target: "norce_client", host = %key.0, client_id, scope, shared = shared.is_some(), "new shared token cache");
    let entry = Entry {
        id,
        limiter,
        cache: cache.clone(),
        secret: secret.clone(),
        scope: scope.to_owned(),
        token_url: token_url.clone(),
        shared: shared.cloned(),
    };
    map.insert(key, entry);
    Ok((cache, id))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use auth_core::{MemorySharedAuthState, SharedAuthState};
    use bytes::Bytes;

    use crate::NorceClient;

    /// Four workers (each its own handle on one shared state, as separate processes would
    /// have): one token request for all of them, and the token endpoint's limiter is shared
    /// under a key naming the host.
    #[tokio::test(start_paused = true)]
    async fn workers_over_one_shared_state_fetch_one_token() {
        let token_requests = std::sync::Arc::new(AtomicUsize::new(0));
        let count = std::sync::Arc::clone(&token_requests);
        let transport = tower::service_fn(move |request: http::Request<Bytes>| {
            let token = request.uri().path().ends_with("/connect/token");
            if token {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let body = r#"{"access_token":"s3cr3t-token","expires_in":3600}"#;
            std::future::ready(Ok::<_, auth_core::Error>(http::Response::new(
                Bytes::from_static(body.as_bytes()),
            )))
        });
        let database = std::sync::Arc::new(MemorySharedAuthState::new());
        let mut clients = Vec::new();
        for _ in 0..4 {
            let worker: std::sync::Arc<dyn SharedAuthState> =
                std::sync::Arc::new(std::sync::Arc::clone(&database));
            let client = NorceClient::builder()
                .client_id("shared-workers")
                .client_secret("client-secret".to_owned().into())
                .application_id(1234)
                .scope("playground")
                .base_url("http://127.0.0.1:9")
                .unwrap()
                .transport(transport.clone())
                .shared_auth_state(worker)
                .build()
                .unwrap();
            clients.push(client);
        }
        assert!(
            !clients[0].shares_token_cache_with(&clients[1]),
            "one cache per worker"
        );
        for client in &clients {
            client.fetch_token().await.unwrap();
        }
        assert_eq!(token_requests.load(std::sync::atomic::Ordering::SeqCst), 1);
        let name = super::shared_token_name("http://127.0.0.1:9", "shared-workers", "playground");
        assert!(database.token(&name).await.unwrap().is_some());
        // The token endpoint's one permit was reserved under the host's key.
        let key = super::token_endpoint_key("http://127.0.0.1:9");
        let wait = database.reserve(&key.0, std::time::Duration::from_secs(20), 20);
        assert!(wait.await.unwrap().is_zero());
        assert!(!format!("{database:?} {:?}", clients[0]).contains("s3cr3t"));
    }
}
