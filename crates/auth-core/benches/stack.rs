//! Per-request cost of the full stack with a warm token against the bare inner service
//! (in-process, no network), and the token cache under 64 concurrent tasks.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use auth_core::{
    AuthLayer, QuotaSpec, RateLimitLayer, RateLimiter, RetryConfig, RetryLayer, StaticHeadersLayer,
    StaticToken, TokenCache, TraceLayer,
};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Service, ServiceBuilder, ServiceExt as _};

fn inner() -> impl Service<
    Request<Bytes>,
    Response = Response<Bytes>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Bytes>, Infallible>>,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|_req: Request<Bytes>| std::future::ready(Ok(Response::new(Bytes::new()))))
}

fn request() -> Request<Bytes> {
    Request::get("http://api.test/v1/items?page=1")
        .body(Bytes::new())
        .unwrap()
}

fn bench_stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = TokenCache::new(StaticToken::bearer("bench-token".into()));
    // A quota that never makes callers wait, so the limiter's bookkeeping is measured.
    let limiter = RateLimiter::from_quota(QuotaSpec {
        replenish_interval: Duration::from_nanos(1),
        burst: 1_000_000,
    })
    .unwrap();
    let stack = ServiceBuilder::new()
        .layer(TraceLayer)
        .layer(RetryLayer::new(RetryConfig::default()))
        .layer(RateLimitLayer::new(limiter))
        .layer(AuthLayer::new(cache.clone()))
        .layer(
            StaticHeadersLayer::new()
                .header("applicationid", "1")
                .unwrap(),
        )
        .service(inner().map_err(auth_core::Error::from));
    rt.block_on(cache.get()).unwrap();

    let mut group = c.benchmark_group("per_request");
    let bare = inner();
    group.bench_function("bare_inner", |b| {
        b.iter(|| rt.block_on(bare.clone().oneshot(request())).unwrap())
    });
    group.bench_function("full_stack_warm_token", |b| {
        b.iter(|| rt.block_on(stack.clone().oneshot(request())).unwrap())
    });
    group.finish();

    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    c.bench_function("token_cache_get_64_tasks", |b| {
        b.iter_custom(|iters| {
            let cache = cache.clone();
            mt.block_on(async move {
                let per_task = iters.div_ceil(64).max(1);
                let start = Instant::now();
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..64 {
                    let c = cache.clone();
                    set.spawn(async move {
                        for _ in 0..per_task {
                            std::hint::black_box(c.get().await.unwrap());
                        }
                    });
                }
                while set.join_next().await.is_some() {}
                // Time per get() call across all tasks.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * 64) as f64)
            })
        })
    });
}

criterion_group!(benches, bench_stack);
criterion_main!(benches);
