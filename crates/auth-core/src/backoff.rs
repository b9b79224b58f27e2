//! Waiting between attempts: exponential backoff and `Retry-After`. A bottom module shared by
//! the retry layer, the token cache, the OAuth grants and the rate limiter.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, header};

/// Parses `Retry-After` as delay seconds or an HTTP date (a past date means zero).
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("retry-after", "7".parse().unwrap());
/// assert_eq!(auth_core::retry::parse_retry_after(&h), Some(std::time::Duration::from_secs(7)));
/// ```
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// `min(base × 2ⁿ⁻¹, max)` for the `n`-th (1-based) attempt or failure, before jitter.
pub(crate) fn exponential_backoff(base: Duration, n: u32, max: Duration) -> Duration {
    base.saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(max)
}
