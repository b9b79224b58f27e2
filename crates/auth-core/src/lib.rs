#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod auth;
mod backoff;
mod budget;
mod cache;
mod error;
mod headers;
pub mod oauth;
mod ratelimit;
mod replay;
pub mod retry;
mod shared;
mod store;
mod token;
mod trace;
mod transport;

pub use auth::{AuthLayer, AuthService};
pub use budget::{Budget, BudgetUsage, Priority};
pub use cache::{CachedToken, KeyedTokenCache, TokenCache, TokenCacheConfig};
pub use error::{
    BoxError, ConfigError, Error, InvalidTokenResponse, RateLimitError, SharedError,
    SharedStateError, StoreError, TokenError,
};
pub use headers::{StaticHeaders, StaticHeadersLayer};
pub use oauth::{ClientAuth, ClientCredentials, RefreshTokenGrant, TokenResponse};
pub use ratelimit::{
    BudgetLeft, QuotaSpec, RateLimitKey, RateLimitLayer, RateLimitPreset, RateLimitService,
    RateLimiter, ResetUnit, ServerFeedback, TokioClock, presets,
};
pub use replay::TryCloneBody;
pub use retry::{Attempt, Idempotent, RetryBudget, RetryConfig, RetryLayer, RetryService};
pub use secrecy::{ExposeSecret, SecretString};
pub use shared::{
    MemorySharedAuthState, SharedAuthState, SharedPair, SharedToken, SharedTokenConfig,
    SharedTokenSource, SharedTokenStore, new_holder_id,
};
pub use store::{FileTokenStore, MemoryTokenStore, StoredTokens, TokenStore};
pub use token::{AuthScheme, BoxFuture, StaticToken, Token, TokenSource};
pub use trace::{TraceLayer, TraceService};
pub use transport::TokenTransport;
