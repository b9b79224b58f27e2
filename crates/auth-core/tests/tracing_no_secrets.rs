//! Captures everything emitted through `tracing` and checks that no secret appears while
//! the request span carries method, host, path, status, attempt and permit wait.
//! Its own test binary: tracing caches callsite interest process-wide, so a scoped
//! subscriber is only reliable without other tests running in parallel threads.

#[path = "all/common.rs"]
mod common;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::{
    AuthLayer, ClientCredentials, QuotaSpec, RateLimitLayer, RateLimiter, RetryConfig, RetryLayer,
    StaticHeadersLayer, TokenCache, TraceLayer,
};
use tower::{ServiceBuilder, ServiceExt as _};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use common::{Api, TokenServer, get, token_url};

#[derive(Clone, Default)]
struct Capture {
    out: Arc<Mutex<String>>,
    next: Arc<Mutex<u64>>,
    meta: Arc<Mutex<std::collections::HashMap<u64, &'static Metadata<'static>>>>,
    // The test runs on one thread (current-thread runtime), so one stack suffices.
    stack: Arc<Mutex<Vec<u64>>>,
}

struct Visitor<'a>(&'a mut String);
impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing_core::Interest {
        tracing_core::Interest::always()
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut out = self.out.lock().unwrap();
        let _ = write!(out, "\nspan {}:", span.metadata().name());
        span.record(&mut Visitor(&mut out));
        let mut n = self.next.lock().unwrap();
        *n += 1;
        self.meta.lock().unwrap().insert(*n, span.metadata());
        Id::from_u64(*n)
    }
    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut out = self.out.lock().unwrap();
        out.push_str("\nrecord:");
        values.record(&mut Visitor(&mut out));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut out = self.out.lock().unwrap();
        let _ = write!(out, "\nevent {}:", event.metadata().target());
        event.record(&mut Visitor(&mut out));
    }
    fn enter(&self, id: &Id) {
        self.stack.lock().unwrap().push(id.into_u64());
    }
    fn exit(&self, _: &Id) {
        self.stack.lock().unwrap().pop();
    }
    fn current_span(&self) -> tracing_core::span::Current {
        let Some(id) = self.stack.lock().unwrap().last().copied() else {
            return tracing_core::span::Current::none();
        };
        match self.meta.lock().unwrap().get(&id) {
            Some(meta) => tracing_core::span::Current::new(Id::from_u64(id), meta),
            None => tracing_core::span::Current::none(),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn spans_and_events_carry_no_secret() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let server = TokenServer::new(600);
    let cache = TokenCache::new(ClientCredentials::new(
        server.service(),
        token_url(None),
        "cid",
        "CLIENTSECRET".into(),
    ));
    let api = Api::default();
    let limiter =
        RateLimiter::from_quota(QuotaSpec::per_period(1, Duration::from_secs(10), 1)).unwrap();
    let stack = ServiceBuilder::new()
        .layer(TraceLayer)
        .layer(RetryLayer::new(RetryConfig::default()))
        .layer(RateLimitLayer::new(limiter))
        .layer(AuthLayer::new(cache))
        .layer(
            StaticHeadersLayer::new()
                .secret_header("x-key", "HEADERSECRET".into())
                .unwrap(),
        )
        .service(api.service());
    stack
        .clone()
        .oneshot(get("http://api.test/items?apikey=QUERYSECRET"))
        .await
        .unwrap();
    api.revoke("tok-1");
    stack.oneshot(get("http://api.test/items")).await.unwrap();
    let out = capture.out.lock().unwrap().clone();
    for secret in [
        "CLIENTSECRET",
        "HEADERSECRET",
        "QUERYSECRET",
        "tok-1",
        "tok-2",
    ] {
        assert!(
            !out.contains(secret),
            "{secret} leaked into tracing output:{out}"
        );
    }
    assert!(
        out.contains("span http.request: method=GET host=\"api.test\" path=\"/items\""),
        "{out}"
    );
    assert!(out.contains("status=200"), "{out}");
    assert!(out.contains("attempt=1"), "{out}");
    assert!(
        out.contains("permit_wait_ms=10000"),
        "second request waited for a permit:{out}"
    );
    assert!(out.contains("token fetched"), "{out}");
}
