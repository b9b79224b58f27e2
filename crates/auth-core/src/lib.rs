//! Platform-neutral tower layers for API clients: secrets, token sources, a token cache,
//! GCRA rate limiting, retries, auth and static headers, tracing.
//!
//! Recommended stack (outermost first):
//!
//! ```text
//! TraceLayer → RetryLayer → RateLimitLayer → AuthLayer → StaticHeadersLayer → transport
//! ```
//!
//! Retry sits outside the limiter and auth, so every attempt waits for a permit and gets a
//! current token. See the crate README for a full example.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod cache;
mod error;
mod headers;
pub mod oauth;
mod ratelimit;
pub mod retry;
mod store;
mod token;
mod trace;
mod transport;

pub use auth::{AuthLayer, AuthService, TryCloneBody};
pub use cache::{CachedToken, KeyedTokenCache, TokenCache, TokenCacheConfig};
pub use error::{
    BoxError, ConfigError, Error, InvalidTokenResponse, RateLimitError, SharedError, StoreError,
    TokenError,
};
pub use headers::{StaticHeaders, StaticHeadersLayer};
pub use oauth::{ClientAuth, ClientCredentials, RefreshTokenGrant, TokenResponse};
pub use ratelimit::{
    QuotaSpec, RateLimitKey, RateLimitLayer, RateLimitPreset, RateLimitService, RateLimiter,
    ResetUnit, ServerFeedback, TokioClock, presets,
};
pub use retry::{Attempt, Idempotent, RetryBudget, RetryConfig, RetryLayer, RetryService};
pub use secrecy::{ExposeSecret, SecretString};
pub use store::{FileTokenStore, MemoryTokenStore, StoredTokens, TokenStore};
pub use token::{AuthScheme, BoxFuture, StaticToken, Token, TokenSource};
pub use trace::{TraceLayer, TraceService};
pub use transport::TokenTransport;
