//! Test doubles: a counting token server (in-process and on 127.0.0.1) and a mock API.

#![allow(dead_code, clippy::type_complexity)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::Error;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;

/// One request seen by the token server.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub form: HashMap<String, String>,
    pub status: u16,
}

#[derive(Default)]
pub struct ServerState {
    pub log: Vec<Seen>,
    pub issued: u64,
    /// The refresh token the server currently accepts (rotating).
    pub valid_refresh: Option<String>,
    /// Token-bucket enforcement like the vendor: (capacity, interval, tokens, last refill).
    pub bucket: Option<(u32, Duration, f64, Instant)>,
    pub in_flight: u32,
    pub max_in_flight: u32,
}

/// A token endpoint that counts what it receives. Cheap to clone (shared state).
#[derive(Clone)]
pub struct TokenServer {
    pub state: Arc<Mutex<ServerState>>,
    pub fail: Arc<AtomicBool>,
    pub expires_in: Arc<AtomicU64>,
    pub latency: Duration,
}

impl TokenServer {
    pub fn new(expires_in: u64) -> Self {
        Self {
            state: Arc::default(),
            fail: Arc::default(),
            expires_in: Arc::new(AtomicU64::new(expires_in)),
            latency: Duration::ZERO,
        }
    }

    pub fn with_latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }

    /// Enforce `capacity` burst and one request per `interval`, answering 429 beyond.
    pub fn with_bucket(self, capacity: u32, interval: Duration) -> Self {
        self.state.lock().unwrap().bucket =
            Some((capacity, interval, capacity as f64, Instant::now()));
        self
    }

    pub fn with_refresh_token(self, rt: &str) -> Self {
        self.state.lock().unwrap().valid_refresh = Some(rt.to_string());
        self
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().log.len()
    }

    pub fn log(&self) -> Vec<Seen> {
        self.state.lock().unwrap().log.clone()
    }

    pub async fn handle(&self, req: Request<Bytes>) -> Response<Full<Bytes>> {
        let form: HashMap<String, String> =
            form_urlencoded::parse(req.body()).into_owned().collect();
        {
            let mut s = self.state.lock().unwrap();
            s.in_flight += 1;
            s.max_in_flight = s.max_in_flight.max(s.in_flight);
        }
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let now = Instant::now();
        let mut s = self.state.lock().unwrap();
        s.in_flight -= 1;
        let (status, body) = 'answer: {
            if let Some((cap, interval, tokens, last)) = s.bucket.as_mut() {
                let refill = now.duration_since(*last).as_secs_f64() / interval.as_secs_f64();
                *tokens = (*tokens + refill).min(*cap as f64);
                *last = now;
                // Tolerate float rounding at exact interval boundaries.
                if *tokens < 1.0 - 1e-9 {
                    break 'answer (429, r#"{"error":"too_many_requests"}"#.to_string());
                }
                *tokens -= 1.0;
            }
            if self.fail.load(Ordering::SeqCst) {
                break 'answer (500, r#"{"error":"server_error"}"#.to_string());
            }
            s.issued += 1;
            let n = s.issued;
            let expires_in = self.expires_in.load(Ordering::SeqCst);
            match form.get("grant_type").map(String::as_str) {
                Some("refresh_token") => {
                    let sent = form.get("refresh_token").cloned().unwrap_or_default();
                    if s.valid_refresh.as_deref() != Some(sent.as_str()) {
                        break 'answer (400, r#"{"error":"invalid_grant","error_description":"refresh token reused or unknown"}"#.to_string());
                    }
                    let new_rt = format!("rt-{n}");
                    s.valid_refresh = Some(new_rt.clone());
                    (
                        200,
                        format!(
                            r#"{{"access_token":"at-{n}","refresh_token":"{new_rt}","token_type":"Bearer","expires_in":{expires_in}}}"#
                        ),
                    )
                }
                _ => (
                    200,
                    format!(
                        r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{expires_in}}}"#
                    ),
                ),
            }
        };
        s.log.push(Seen {
            at: now,
            form,
            status,
        });
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }

    /// An in-process tower service (no network).
    pub fn service(
        &self,
    ) -> impl tower::Service<
        Request<Bytes>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = auth_core::BoxFuture<'static, Result<Response<Full<Bytes>>, Infallible>>,
    >
    + Clone
    + Send
    + Sync
    + 'static
    + use<> {
        let server = self.clone();
        tower::service_fn(move |req: Request<Bytes>| {
            let server = server.clone();
            let f: auth_core::BoxFuture<'static, Result<Response<Full<Bytes>>, Infallible>> =
                Box::pin(async move { Ok::<_, Infallible>(server.handle(req).await) });
            f
        })
    }

    /// Serves on 127.0.0.1 with hyper; returns the address.
    pub async fn serve_loopback(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let server = server.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let bytes = body
                                    .collect()
                                    .await
                                    .map(|c| c.to_bytes())
                                    .unwrap_or_default();
                                Ok::<_, Infallible>(
                                    server.handle(Request::from_parts(parts, bytes)).await,
                                )
                            }
                        });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        });
        addr
    }
}

/// A hyper client as a token transport: `Request<Bytes>` in, connect errors classified.
pub fn hyper_transport() -> impl tower::Service<
    Request<Bytes>,
    Response = Response<hyper::body::Incoming>,
    Error = Error,
    Future = impl Send,
> + Clone
+ Send
+ Sync
+ 'static {
    use tower::ServiceExt as _;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    client
        .map_request(|r: Request<Bytes>| r.map(Full::new))
        .map_err(|e: hyper_util::client::legacy::Error| {
            if e.is_connect() {
                Error::connect(e)
            } else {
                Error::transport(e)
            }
        })
}

/// What the mock API saw.
#[derive(Default)]
pub struct ApiState {
    pub calls: u64,
    pub auth_headers: Vec<String>,
    pub revoked: Vec<String>,
    pub always_401: bool,
}

/// A mock API: 401 for revoked tokens (or always), else 200.
#[derive(Clone, Default)]
pub struct Api {
    pub state: Arc<Mutex<ApiState>>,
}

impl Api {
    pub fn calls(&self) -> u64 {
        self.state.lock().unwrap().calls
    }

    pub fn revoke(&self, token: &str) {
        self.state
            .lock()
            .unwrap()
            .revoked
            .push(format!("Bearer {token}"));
    }

    pub fn service<B: Send + 'static>(
        &self,
    ) -> impl tower::Service<
        Request<B>,
        Response = Response<Bytes>,
        Error = Error,
        Future = auth_core::BoxFuture<'static, Result<Response<Bytes>, Error>>,
    >
    + Clone
    + Send
    + 'static
    + use<B> {
        let api = self.clone();
        tower::service_fn(move |req: Request<B>| -> auth_core::BoxFuture<'static, Result<Response<Bytes>, Error>> {
            let api = api.clone();
            Box::pin(async move {
                let auth = req
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let mut s = api.state.lock().unwrap();
                s.calls += 1;
                s.auth_headers.push(auth.clone());
                let status = if s.always_401 || s.revoked.contains(&auth) || auth.is_empty() {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::OK
                };
                Ok::<_, Error>(Response::builder().status(status).body(Bytes::new()).unwrap())
            })
        })
    }
}

pub fn token_url(addr: Option<SocketAddr>) -> http::Uri {
    match addr {
        Some(a) => format!("http://{a}/connect/token").parse().unwrap(),
        None => "http://token.test/connect/token".parse().unwrap(),
    }
}

pub fn get(uri: &str) -> Request<Bytes> {
    Request::get(uri).body(Bytes::new()).unwrap()
}
