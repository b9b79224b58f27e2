//! Retries with full-jitter exponential backoff, `Retry-After`, an attempt cap and a
//! shared retry budget; only for requests that are safe to repeat.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::backoff::exponential_backoff;
// Re-exported here, where clients have always found it.
pub use crate::backoff::parse_retry_after;
use crate::error::Error;
use crate::replay::{TryCloneBody, clone_request};
use crate::token::BoxFuture;

/// Request extension: this request may be repeated although its method is not idempotent
/// (e.g. a POST carrying an idempotency key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Idempotent;

/// Request extension set by the retry layer: the 1-based attempt number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt(pub u32);

/// A token bucket shared by all requests of a client: retries withdraw from it, successes
/// refill it. When it is empty nothing is retried, which stops retry storms during an
/// outage. Clones share the bucket.
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    tokens: AtomicU32,
    capacity: u32,
    retry_cost: u32,
    success_refund: u32,
}

impl RetryBudget {
    /// A full bucket of `capacity`; each retry costs `retry_cost`; each first-attempt
    /// success refunds `success_refund`. A successful retry gives its cost back.
    pub fn new(capacity: u32, retry_cost: u32, success_refund: u32) -> Self {
        Self {
            inner: Arc::new(BudgetInner {
                tokens: AtomicU32::new(capacity),
                capacity,
                retry_cost,
                success_refund,
            }),
        }
    }

    /// Tokens left.
    pub fn available(&self) -> u32 {
        self.inner.tokens.load(Ordering::Relaxed)
    }

    fn withdraw(&self) -> bool {
        let cost = self.inner.retry_cost;
        self.inner
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(cost))
            .is_ok()
    }

    fn deposit(&self, n: u32) {
        let cap = self.inner.capacity;
        let _ = self
            .inner
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(n).min(cap))
            });
    }
}

impl Default for RetryBudget {
    /// 500 tokens, 5 per retry, 1 back per success (as in smithy-rs).
    fn default() -> Self {
        Self::new(500, 5, 1)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("available", &self.available())
            .finish()
    }
}

/// Retry settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Total attempts including the first (default 3).
    pub max_attempts: u32,
    /// Backoff base (default 500 ms); attempt `n` waits `rand[0,1) × min(base × 2ⁿ⁻¹, max)`.
    pub initial_backoff: Duration,
    /// Backoff cap (default 20 s).
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the response is returned
    /// (default 120 s).
    pub max_retry_after: Duration,
    /// Statuses worth retrying (default 429, 502, 503, 504).
    pub retry_statuses: Vec<StatusCode>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(120),
            retry_statuses: vec![
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::BAD_GATEWAY,
                StatusCode::SERVICE_UNAVAILABLE,
                StatusCode::GATEWAY_TIMEOUT,
            ],
        }
    }
}

impl RetryConfig {
    /// Sets the attempt cap.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the backoff base and cap.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    fn full_jitter(&self, attempt: u32) -> Duration {
        exponential_backoff(self.initial_backoff, attempt, self.max_backoff)
            .mul_f64(fastrand::f64())
    }
}

/// Retries failed attempts. Put it outermost (below tracing), so each attempt passes the
/// rate limiter and the auth layer again.
#[derive(Debug, Clone, Default)]
pub struct RetryLayer {
    config: Arc<RetryConfig>,
    budget: RetryBudget,
}

impl RetryLayer {
    /// A layer with its own default budget.
    pub fn new(config: RetryConfig) -> Self {
        Self {
            config: Arc::new(config),
            budget: RetryBudget::default(),
        }
    }

    /// Shares `budget` (e.g. one per upstream API).
    pub fn with_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RetryService {
            inner,
            config: Arc::clone(&self.config),
            budget: self.budget.clone(),
        }
    }
}

/// Service produced by [`RetryLayer`].
#[derive(Debug, Clone)]
pub struct RetryService<S> {
    inner: S,
    config: Arc<RetryConfig>,
    budget: RetryBudget,
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

impl<S, B, RB> Service<Request<B>> for RetryService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<Error>,
    B: TryCloneBody + Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Response<RB>, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        let budget = self.budget.clone();
        Box::pin(async move {
            let idempotent = is_idempotent(request.method())
                || request.extensions().get::<Idempotent>().is_some();
            let mut request = request;
            let mut attempt = 1u32;
            loop {
                request.extensions_mut().insert(Attempt(attempt));
                let next = if attempt < config.max_attempts {
                    clone_request(&request)
                } else {
                    None
                };
                if attempt > 1 {
                    std::future::poll_fn(|cx| inner.poll_ready(cx))
                        .await
                        .map_err(Into::into)?;
                }
                tracing::Span::current().record("attempt", attempt);
                let result = inner.call(request).await.map_err(Into::into);
                // Decide whether this outcome may be repeated, and how long the server asks us to wait.
                let hint: Option<Option<Duration>> = match &result {
                    Ok(resp) if idempotent && config.retry_statuses.contains(&resp.status()) => {
                        Some(parse_retry_after(resp.headers()))
                    }
                    // Never sent: safe for every method.
                    Err(e) if e.is_connect() => Some(None),
                    _ => None,
                };
                let Some(server_delay) = hint else {
                    if result.is_ok() {
                        budget.deposit(if attempt == 1 {
                            budget.inner.success_refund
                        } else {
                            budget.inner.retry_cost
                        });
                    }
                    return result;
                };
                let Some(next_request) = next else {
                    return result;
                };
                if server_delay.is_some_and(|d| d > config.max_retry_after) {
                    return result;
                }
                if !budget.withdraw() {
                    tracing::warn!(target: "auth_core::retry", attempt, "retry budget exhausted; not retrying");
                    return result;
                }
                let delay = config
                    .full_jitter(attempt)
                    .max(server_delay.unwrap_or_default());
                tracing::debug!(target: "auth_core::retry", attempt,
                    status = result.as_ref().ok().map(|r| r.status().as_u16()),
                    delay_ms = delay.as_millis() as u64, "retrying");
                drop(result);
                tokio::time::sleep(delay).await;
                request = next_request;
                attempt += 1;
            }
        })
    }
}
