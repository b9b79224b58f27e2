//! The process-wide limiter registry: one budget per Brightpearl throttle pool.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use auth_core::{ConfigError, RateLimitKey, RateLimiter, presets};

type Registry = Mutex<HashMap<(String, String), RateLimiter>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The throttle-aware limiter ([`presets::brightpearl`]: 200 per rolling minute, corrected from
/// `brightpearl-requests-remaining` / `brightpearl-next-throttle-period`, paused by a 503) for
/// the pool of `account` and `dev_ref`, shared by every client of this process.
///
/// Brightpearl pools OAuth apps per account and developer, private apps per account: pass an
/// empty `dev_ref` for the latter.
pub fn shared_limiter(
    account: &str,
    dev_ref: &str,
) -> Result<(RateLimiter, RateLimitKey), ConfigError> {
    let pool = (account.to_owned(), dev_ref.to_owned());
    let key = RateLimitKey::new(format!("brightpearl:{account}:{dev_ref}"));
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(limiter) = map.get(&pool) {
        return Ok((limiter.clone(), key));
    }
    let limiter = RateLimiter::new(presets::brightpearl())?;
    map.insert(pool, limiter.clone());
    Ok((limiter, key))
}
