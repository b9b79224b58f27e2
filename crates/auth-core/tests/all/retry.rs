use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use auth_core::{Attempt, Error, Idempotent, RetryBudget, RetryConfig, RetryLayer};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt as _};

/// A scripted upstream: pops one outcome per call (the last one repeats).
#[derive(Clone)]
struct Script {
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    calls: Arc<Mutex<Vec<(Instant, u32)>>>,
}

#[derive(Clone)]
enum Outcome {
    Status(u16, Option<String>),
    Connect,
    Broken,
}

impl Script {
    fn new(outcomes: Vec<Outcome>) -> Self {
        Self {
            outcomes: Arc::new(Mutex::new(outcomes)),
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn service(
        &self,
    ) -> impl tower::Service<
        Request<Bytes>,
        Response = Response<Bytes>,
        Error = Error,
        Future = auth_core::BoxFuture<'static, Result<Response<Bytes>, Error>>,
    >
    + Clone
    + Send
    + 'static
    + use<> {
        let s = self.clone();
        tower::service_fn(move |req: Request<Bytes>| -> auth_core::BoxFuture<'static, Result<Response<Bytes>, Error>> {
            let s = s.clone();
            Box::pin(async move {
                let attempt = req.extensions().get::<Attempt>().map(|a| a.0).unwrap_or(0);
                s.calls.lock().unwrap().push((Instant::now(), attempt));
                let outcome = {
                    let mut o = s.outcomes.lock().unwrap();
                    if o.len() > 1 { o.remove(0) } else { o[0].clone() }
                };
                match outcome {
                    Outcome::Status(code, retry_after) => {
                        let mut b = Response::builder().status(code);
                        if let Some(r) = retry_after {
                            b = b.header("retry-after", r);
                        }
                        Ok(b.body(Bytes::new()).unwrap())
                    }
                    Outcome::Connect => Err(Error::connect(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))),
                    Outcome::Broken => Err(Error::transport(std::io::Error::from(std::io::ErrorKind::ConnectionReset))),
                }
            })
        })
    }
}

fn req(method: Method) -> Request<Bytes> {
    Request::builder()
        .method(method)
        .uri("http://api.test/r")
        .body(Bytes::from_static(b"{}"))
        .unwrap()
}

/// `Retry-After: 30` (seconds) is honoured.
#[tokio::test(start_paused = true)]
async fn retry_after_seconds_honoured() {
    let script = Script::new(vec![
        Outcome::Status(429, Some("30".into())),
        Outcome::Status(200, None),
    ]);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryConfig::default()))
        .service(script.service());
    let start = Instant::now();
    let r = svc.oneshot(req(Method::GET)).await.unwrap();
    assert_eq!(r.status(), 200);
    let calls = script.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert!(calls[1].0 - start >= Duration::from_secs(30));
    assert_eq!(calls[1].1, 2, "attempt number is visible to inner layers");
}

/// `Retry-After` as an HTTP date is honoured too.
#[tokio::test(start_paused = true)]
async fn retry_after_http_date_honoured() {
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(12));
    let script = Script::new(vec![
        Outcome::Status(503, Some(date)),
        Outcome::Status(200, None),
    ]);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryConfig::default()))
        .service(script.service());
    let start = Instant::now();
    assert_eq!(svc.oneshot(req(Method::GET)).await.unwrap().status(), 200);
    // HTTP dates have one-second resolution.
    assert!(
        start.elapsed() >= Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// A POST that may have reached the server is not retried; marked idempotent it is.
#[tokio::test(start_paused = true)]
async fn non_idempotent_post_not_retried_unless_marked() {
    let script = Script::new(vec![Outcome::Status(503, None), Outcome::Status(200, None)]);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryConfig::default()))
        .service(script.service());
    let r = svc.clone().oneshot(req(Method::POST)).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(script.calls(), 1);

    let script = Script::new(vec![Outcome::Broken, Outcome::Status(200, None)]);
    let svc2 = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryConfig::default()))
        .service(script.service());
    assert!(matches!(
        svc2.oneshot(req(Method::POST)).await,
        Err(Error::Transport(_))
    ));
    assert_eq!(
        script.calls(),
        1,
        "a broken connection after sending is not retried"
    );

    let script = Script::new(vec![Outcome::Status(503, None), Outcome::Status(200, None)]);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryConfig::default()))
        .service(script.service());
    let mut marked = req(Method::POST);
    marked.extensions_mut().insert(Idempotent);
    assert_eq!(svc.oneshot(marked).await.unwrap().status(), 200);
    assert_eq!(script.calls(), 2);
}

/// A connection error before sending is retried for any method.
#[tokio::test(start_paused = true)]
async fn connect_error_retried_even_for_post() {
    let script = Script::new(vec![Outcome::Connect, Outcome::Status(201, None)]);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryConfig::default()))
        .service(script.service());
    assert_eq!(
        svc.oneshot(req(Method::POST)).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(script.calls(), 2);
}

/// The attempt cap and the shared budget: during an outage only budget/cost retries happen.
#[tokio::test(start_paused = true)]
async fn retry_budget_stops_a_storm() {
    let script = Script::new(vec![Outcome::Status(503, None)]);
    let budget = RetryBudget::new(10, 5, 1);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryConfig::default().max_attempts(3)).with_budget(budget.clone()))
        .service(script.service());
    for _ in 0..20 {
        assert_eq!(
            svc.clone()
                .oneshot(req(Method::GET))
                .await
                .unwrap()
                .status(),
            503
        );
    }
    assert_eq!(
        script.calls(),
        20 + 2,
        "10 tokens / cost 5 = 2 retries in total"
    );
    assert_eq!(budget.available(), 0);

    // The attempt cap alone.
    let script = Script::new(vec![Outcome::Status(502, None)]);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryConfig::default().max_attempts(4)))
        .service(script.service());
    assert_eq!(svc.oneshot(req(Method::GET)).await.unwrap().status(), 502);
    assert_eq!(script.calls(), 4);
}

/// A Retry-After beyond the configured maximum is not waited for.
#[tokio::test(start_paused = true)]
async fn excessive_retry_after_returns_response() {
    let script = Script::new(vec![
        Outcome::Status(429, Some("3600".into())),
        Outcome::Status(200, None),
    ]);
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryConfig::default()))
        .service(script.service());
    assert_eq!(svc.oneshot(req(Method::GET)).await.unwrap().status(), 429);
    assert_eq!(script.calls(), 1);
}
