//! The request engine against in-memory stacks: how a request is built, what comes back, and
//! how each failure is classified.

use std::sync::{Arc, Mutex};

use auth_core::{AuthLayer, Idempotent, StaticToken, TokenCache};
use bytes::Bytes;
use client_core::{
    ApiRequest, BODY_LIMIT, BoxTransport, Engine, ErrorKind, Failure, Platform, RequestInfo,
};
use http::{Request, Response};
use models_runtime::{Caller, Operation, OperationInfo};
use reqwest::Url;
use serde::Serialize;

/// A platform whose error is the failure itself.
enum Test {}

impl Platform for Test {
    const NAME: &'static str = "test";
    const REQUEST_ID_HEADERS: &'static [&'static str] = &["x-request-id", "request-id"];
    type Error = Failure;
    fn error(failure: Failure) -> Failure {
        failure
    }
}

static GET: OperationInfo = OperationInfo {
    id: "GetThing",
    method: "GET",
    path: "/things/{id}",
    success_status: 200,
    request_media_type: None,
    response_media_type: Some("application/json"),
};

static POST: OperationInfo = OperationInfo {
    id: "CreateThing",
    method: "POST",
    path: "/things",
    success_status: 201,
    request_media_type: Some("application/json"),
    response_media_type: None,
};

type Seen = Arc<Mutex<Vec<Request<Bytes>>>>;

/// An engine whose transport answers every request with `answer` (or fails with the error it
/// returns) and keeps the requests.
fn engine_with<F>(answer: F) -> (Engine<Test>, Seen)
where
    F: Fn() -> Result<Response<Bytes>, auth_core::Error> + Clone + Send + Sync + 'static,
{
    let seen = Seen::default();
    let log = Arc::clone(&seen);
    let transport = tower::service_fn(move |request: Request<Bytes>| {
        log.lock().unwrap().push(request);
        std::future::ready(answer())
    });
    (Engine::new(BoxTransport::new(transport)), seen)
}

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Bytes> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Bytes::from(body.to_owned())).unwrap()
}

fn base() -> Url {
    Url::parse("https://api.example/root/").unwrap()
}

#[derive(Serialize)]
struct Query {
    format: &'static str,
    page: Option<u32>,
    name: &'static str,
}

#[tokio::test]
async fn the_request_follows_the_operation() {
    let (engine, seen) = engine_with(|| Ok(answer(200, &[], "{}")));
    let query = Query {
        format: "json",
        page: None,
        name: "a b",
    };
    let get = ApiRequest::new(&GET, &base(), "/things/7").query(&query);
    engine.send(get).await.unwrap();
    let post = ApiRequest::new(&POST, &base(), POST.path)
        .json(&serde_json::json!({"Name": "x"}))
        .header("X-Extra", "1");
    engine.send(post.clone()).await.unwrap();
    engine.send(post.idempotent(true)).await.unwrap();
    let form = ApiRequest::new(&POST, &base(), POST.path).form(&query);
    engine.send(form).await.unwrap();
    let seen = seen.lock().unwrap();
    let [get, post, again, form] = &seen[..] else {
        panic!("{seen:?}")
    };
    assert_eq!(get.method(), "GET");
    assert_eq!(
        get.uri(),
        "https://api.example/root/things/7?format=json&name=a+b"
    );
    assert_eq!(get.headers()["accept"], "application/json");
    assert!(get.extensions().get::<Idempotent>().is_some());
    assert_eq!(post.method(), "POST");
    assert_eq!(post.uri(), "https://api.example/root/things");
    assert_eq!(post.headers()["content-type"], "application/json");
    assert_eq!(post.headers()["x-extra"], "1");
    assert!(post.headers().get("accept").is_none(), "no response body");
    assert_eq!(post.body().as_ref(), br#"{"Name":"x"}"#);
    assert!(post.extensions().get::<Idempotent>().is_none());
    assert!(again.extensions().get::<Idempotent>().is_some());
    assert_eq!(
        form.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(form.body().as_ref(), b"format=json&name=a+b");
}

#[tokio::test]
async fn json_answers_decode_and_a_bad_one_keeps_its_body() {
    #[derive(Debug, serde::Deserialize)]
    struct Thing {
        id: u32,
    }
    let (engine, _) = engine_with(|| Ok(answer(200, &[], r#"{"id":7}"#)));
    let thing: Thing = engine
        .call_json(ApiRequest::new(&GET, &base(), "/things/7"))
        .await
        .unwrap();
    assert_eq!(thing.id, 7);
    let (engine, _) = engine_with(|| Ok(answer(200, &[], r#"{"name":"no id"}"#)));
    let err = engine
        .call_json::<Thing>(ApiRequest::new(&GET, &base(), "/things/7"))
        .await
        .unwrap_err();
    let Failure::Decode { status, body, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, r#"{"name":"no id"}"#)
    );
    assert_eq!(err.kind(), ErrorKind::Permanent);
}

#[tokio::test]
async fn a_non_success_answer_is_kept_raw_and_cut_once() {
    let long = "x".repeat(BODY_LIMIT + 10);
    let body = long.clone();
    let (engine, _) = engine_with(move || {
        Ok(answer(
            404,
            &[("request-id", "r-1"), ("set-cookie", "session=s3cr3t")],
            &body,
        ))
    });
    let err = engine
        .send(ApiRequest::new(&GET, &base(), "/things/7"))
        .await
        .unwrap_err();
    let http = err.http().unwrap();
    assert_eq!(http.operation, "GetThing");
    assert_eq!(http.status, 404);
    assert_eq!(http.request_id.as_deref(), Some("r-1"));
    assert_eq!(http.body.len(), BODY_LIMIT + "…[truncated]".len());
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert_eq!(err.request_id(), Some("r-1"));
    let shown = err.to_string();
    assert!(
        shown.starts_with("GetThing: answered 404 Not Found: xxx")
            && shown.ends_with("(request id r-1)"),
        "{shown}"
    );
    assert!(shown.len() < 400, "the message shows an excerpt");
    assert!(
        !format!("{err:?}").contains("s3cr3t"),
        "header values stay out of Debug"
    );
}

#[tokio::test]
async fn kinds_follow_the_status_and_whether_the_call_may_be_repeated() {
    let cases: [(u16, &OperationInfo, bool, ErrorKind); 7] = [
        (503, &GET, false, ErrorKind::Transient),
        (503, &POST, false, ErrorKind::AmbiguousWrite),
        (500, &POST, true, ErrorKind::Transient),
        (429, &POST, false, ErrorKind::Throttled),
        (401, &GET, false, ErrorKind::Unauthorized),
        (403, &POST, false, ErrorKind::Unauthorized),
        (409, &POST, false, ErrorKind::Permanent),
    ];
    for (status, op, mark, kind) in cases {
        let (engine, _) = engine_with(move || Ok(answer(status, &[("retry-after", "3")], "")));
        let mut request = ApiRequest::new(op, &base(), op.path);
        if mark {
            request = request.idempotent(true);
        }
        let err = engine.send(request).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{status} {}", op.id);
        assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(3)));
    }
    // After sending: a timeout or a broken connection is ambiguous for a POST only.
    let timeout = || {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        Err(auth_core::Error::transport(io))
    };
    for (op, kind) in [
        (&GET, ErrorKind::Transient),
        (&POST, ErrorKind::AmbiguousWrite),
    ] {
        let (engine, _) = engine_with(timeout);
        let err = engine
            .send(ApiRequest::new(op, &base(), op.path))
            .await
            .unwrap_err();
        assert!(matches!(err, Failure::Timeout { .. }), "{err:?}");
        assert_eq!(err.kind(), kind);
    }
    let (engine, _) =
        engine_with(|| Err(auth_core::Error::transport(std::io::Error::other("reset"))));
    let err = engine
        .send(ApiRequest::new(&POST, &base(), POST.path))
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::Transport { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::AmbiguousWrite);
    // Before sending: safe for any method.
    let (engine, _) =
        engine_with(|| Err(auth_core::Error::connect(std::io::Error::other("refused"))));
    let err = engine
        .send(ApiRequest::new(&POST, &base(), POST.path))
        .await
        .unwrap_err();
    assert!(matches!(err, Failure::NotSent { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Transient);
}

#[tokio::test]
async fn a_401_after_the_refresh_keeps_the_answer() {
    let transport = tower::service_fn(|_: Request<Bytes>| {
        std::future::ready(Ok::<_, auth_core::Error>(answer(
            401,
            &[("x-request-id", "u-1")],
            r#"{"response":"Authorization token expired"}"#,
        )))
    });
    let cache = TokenCache::new(StaticToken::bearer("t".to_owned().into()));
    let stack = tower::ServiceBuilder::new()
        .layer(AuthLayer::new(cache))
        .service(transport);
    let engine = Engine::<Test>::new(BoxTransport::new(stack));
    let err = engine
        .send(ApiRequest::new(&GET, &base(), "/things/7"))
        .await
        .unwrap_err();
    let http = err.http().unwrap();
    assert_eq!(http.status, 401);
    assert_eq!(http.request_id.as_deref(), Some("u-1"));
    assert!(http.body.contains("token expired"), "{http:?}");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
}

#[tokio::test]
async fn the_method_can_be_overridden_and_idempotency_follows_it() {
    let (engine, seen) = engine_with(|| Ok(answer(200, &[], "{}")));
    let put = ApiRequest::new(&POST, &base(), "/things/7").method(http::Method::PUT);
    assert!(put.info().idempotent);
    engine.send(put).await.unwrap();
    let post = ApiRequest::new(&GET, &base(), "/things").method(http::Method::POST);
    assert!(!post.info().idempotent);
    assert!(post.clone().idempotent(true).info().idempotent);
    engine.send(post).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].method(), "PUT");
    assert!(seen[0].extensions().get::<Idempotent>().is_some());
    assert_eq!(seen[1].method(), "POST");
    assert!(seen[1].extensions().get::<Idempotent>().is_none());
}

#[tokio::test]
async fn a_sensitive_header_is_sent_marked_sensitive() {
    let (engine, seen) = engine_with(|| Ok(answer(200, &[], "{}")));
    let request = ApiRequest::new(&GET, &base(), "/things/7")
        .header("x-plain", "visible")
        .sensitive_header("authorization", "Basic aWQ6c2VjcmV0");
    assert!(!format!("{request:?}").contains("aWQ6c2VjcmV0"));
    engine.send(request).await.unwrap();
    let bad = ApiRequest::new(&GET, &base(), "/x").sensitive_header("authorization", "a\nb");
    let err = engine.send(bad).await.unwrap_err();
    assert!(matches!(err, Failure::InvalidRequest { .. }), "{err:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "the invalid request is not sent");
    let auth = &seen[0].headers()["authorization"];
    assert_eq!(auth, "Basic aWQ6c2VjcmV0");
    assert!(auth.is_sensitive());
    assert!(!seen[0].headers()["x-plain"].is_sensitive());
}

#[tokio::test]
async fn an_invalid_request_is_not_sent() {
    struct Unserializable;
    impl Serialize for Unserializable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no"))
        }
    }
    let (engine, seen) = engine_with(|| Ok(answer(200, &[], "{}")));
    let bad_header = ApiRequest::new(&GET, &base(), "/x").header("x-key", "line\nbreak");
    let bad_query = ApiRequest::new(&GET, &base(), "/x").query(&Unserializable);
    let bad_body = ApiRequest::new(&POST, &base(), "/x").json(&Unserializable);
    for (request, needle) in [
        (bad_header, "header `x-key`"),
        (bad_query, "query"),
        (bad_body, "body"),
    ] {
        let info: RequestInfo = request.info();
        let err = engine.send(request).await.unwrap_err();
        let Failure::InvalidRequest { operation, reason } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*operation, info.operation.id);
        assert!(
            reason.contains(needle) && !reason.contains("break"),
            "{reason}"
        );
        assert_eq!(err.kind(), ErrorKind::Permanent);
    }
    assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
}

/// A generated-style operation: typed path, query and body, a JSON answer.
struct PutThing;

#[derive(Serialize)]
struct ThingPath {
    id: String,
}

#[derive(Debug, PartialEq, serde::Deserialize)]
struct Thing {
    id: u32,
}

static PUT: OperationInfo = OperationInfo {
    id: "PutThing",
    method: "PUT",
    path: "/things/{id}",
    success_status: 200,
    request_media_type: Some("application/json"),
    response_media_type: Some("application/json"),
};

impl Operation for PutThing {
    const INFO: OperationInfo = PUT;
    type Path = ThingPath;
    type Query = Query;
    type Body = serde_json::Value;
    type Response = Thing;
    fn path(path: &ThingPath) -> String {
        format!("/things/{}", models_runtime::path::encode_segment(&path.id))
    }
}

/// A form body, no path parameters, an answer without a body.
struct PostForm;

impl Operation for PostForm {
    const INFO: OperationInfo = OperationInfo {
        request_media_type: Some("application/x-www-form-urlencoded"),
        ..POST
    };
    type Path = ();
    type Query = ();
    type Body = Query;
    type Response = ();
    fn path(_: &()) -> String {
        POST.path.to_owned()
    }
}

/// A binary answer (a PDF) and a text one.
struct GetPdf;

impl Operation for GetPdf {
    const INFO: OperationInfo = OperationInfo {
        id: "GetPdf",
        response_media_type: Some("application/pdf"),
        ..GET
    };
    type Path = ();
    type Query = ();
    type Body = ();
    type Response = Vec<u8>;
    fn path(_: &()) -> String {
        "/pdf".to_owned()
    }
}

struct GetText;

impl Operation for GetText {
    const INFO: OperationInfo = OperationInfo {
        id: "GetText",
        response_media_type: Some("text/html"),
        ..GET
    };
    type Path = ();
    type Query = ();
    type Body = ();
    type Response = String;
    fn path(_: &()) -> String {
        "/text".to_owned()
    }
}

/// A client in a few lines: every generated operation through its engine.
struct TestClient(Engine<Test>);

impl Caller for TestClient {
    type Error = Failure;
    fn call<O: Operation>(
        &self,
        path: &O::Path,
        query: &O::Query,
        body: Option<&O::Body>,
    ) -> impl Future<Output = Result<O::Response, Failure>> + Send {
        let request = ApiRequest::operation::<O>(&base(), path, query, body);
        let engine = self.0.clone();
        async move { engine.call::<O>(request).await }
    }
}

fn assert_send<F: Future + Send>(future: F) -> F {
    future
}

#[tokio::test]
async fn a_generated_operation_is_built_from_its_types_and_its_answer_decoded() {
    let (engine, seen) = engine_with(|| Ok(answer(200, &[], r#"{"id":7}"#)));
    let client = TestClient(engine);
    let path = ThingPath { id: "a/b".into() };
    let query = Query {
        format: "json",
        page: Some(2),
        name: "n",
    };
    let body = serde_json::json!({"Name": "x"});
    let call = client.call::<PutThing>(&path, &query, Some(&body));
    assert_eq!(assert_send(call).await.unwrap(), Thing { id: 7 });
    // An answer the spec gives no body: whatever comes is not read.
    let form = Query {
        format: "f",
        page: None,
        name: "a b",
    };
    client
        .call::<PostForm>(&(), &(), Some(&form))
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let [put, post] = &seen[..] else {
        panic!("{seen:?}")
    };
    assert_eq!(put.method(), "PUT");
    assert_eq!(
        put.uri(),
        "https://api.example/root/things/a%2Fb?format=json&name=n&page=2"
    );
    assert_eq!(put.headers()["content-type"], "application/json");
    assert_eq!(put.body().as_ref(), br#"{"Name":"x"}"#);
    assert!(put.extensions().get::<Idempotent>().is_some(), "PUT");
    assert_eq!(post.uri(), "https://api.example/root/things");
    assert_eq!(
        post.headers()["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(post.body().as_ref(), b"format=f&name=a+b");
    assert!(post.extensions().get::<Idempotent>().is_none(), "POST");
}

#[tokio::test]
async fn binary_text_and_undecodable_answers_of_a_generated_operation() {
    let pdf = [b'%', b'P', b'D', b'F', 0xff, 0x00];
    let transport = tower::service_fn(move |request: Request<Bytes>| {
        let body = match request.uri().path() {
            "/root/pdf" => Bytes::copy_from_slice(&pdf),
            "/root/text" => Bytes::from_static(b"<html>ok</html>"),
            _ => Bytes::from_static(b"not json"),
        };
        std::future::ready(Ok::<_, auth_core::Error>(Response::new(body)))
    });
    let client = TestClient(Engine::new(BoxTransport::new(transport)));
    assert_eq!(client.call::<GetPdf>(&(), &(), None).await.unwrap(), pdf);
    assert_eq!(
        client.call::<GetText>(&(), &(), None).await.unwrap(),
        "<html>ok</html>"
    );
    let path = ThingPath { id: "1".into() };
    let query = Query {
        format: "json",
        page: None,
        name: "n",
    };
    let err = client
        .call::<PutThing>(&path, &query, None)
        .await
        .unwrap_err();
    let Failure::Decode {
        operation, body, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((*operation, body.as_str()), ("PutThing", "not json"));
}

/// What the engine records of its calls for an operator ([`client_core::HealthSnapshot`]).
mod health {
    use std::collections::VecDeque;
    use std::time::Duration;

    use client_core::options::RetryConfig;
    use client_core::{CommonOptions, HealthRecorder};
    use http::StatusCode;

    use super::*;

    /// A platform that calls every 500 permanent.
    enum Strict {}

    impl Platform for Strict {
        const NAME: &'static str = "strict";
        const REQUEST_ID_HEADERS: &'static [&'static str] = &["x-request-id"];
        type Error = Failure;
        fn error(failure: Failure) -> Failure {
            failure
        }
        fn error_kind(error: &Failure) -> Option<ErrorKind> {
            (error.status() == Some(StatusCode::INTERNAL_SERVER_ERROR))
                .then_some(ErrorKind::Permanent)
        }
    }

    /// A transport answering `(status, request id)` in turn, each with a body that names a
    /// secret.
    fn scripted(answers: &[(u16, &'static str)]) -> impl client_core::TransportService {
        let answers = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<_>>()));
        tower::service_fn(move |_request: Request<Bytes>| {
            let (status, id) = answers.lock().unwrap().pop_front().unwrap_or((200, ""));
            let mut response = Response::builder().status(status);
            if !id.is_empty() {
                response = response.header("x-request-id", id);
            }
            let body = Bytes::from_static(br#"{"token":"s3cr3t-body"}"#);
            std::future::ready(Ok::<_, auth_core::Error>(response.body(body).unwrap()))
        })
    }

    fn options() -> CommonOptions {
        CommonOptions {
            // No retries: the test needs no sleeps (the client tests cover retried attempts).
            retry: Some(RetryConfig::default().max_attempts(1)),
            ..CommonOptions::default()
        }
    }

    fn get() -> ApiRequest {
        let base = Url::parse("https://api.example/").unwrap();
        ApiRequest::new(&GET, &base, "/things/7").sensitive_header("authorization", "s3cr3t-key")
    }

    /// After a 200, a 429, a 503 and a 500 the snapshot shows each, the last error with its
    /// request id, and no secret.
    #[tokio::test]
    async fn the_snapshot_follows_the_answers() {
        let answers = [
            (200, "r-ok"),
            (429, "r-429"),
            (503, "r-503"),
            (500, "r-500"),
        ];
        let engine: Engine<Test> = options().engine(scripted(&answers));
        let fresh = engine.health();
        assert_eq!(
            (fresh.requests, fresh.last_ok, fresh.last_error),
            (0, None, None)
        );

        engine.send(get()).await.unwrap();
        let after_ok = engine.health();
        assert_eq!(after_ok.requests, 1);
        assert!(after_ok.last_ok.is_some_and(|t| t <= after_ok.taken_at));
        assert_eq!((after_ok.last_429, after_ok.last_error), (None, None));

        for expected in [429, 503, 500] {
            let err = engine.send(get()).await.unwrap_err();
            assert_eq!(err.status().map(|s| s.as_u16()), Some(expected));
        }
        let health = engine.health();
        assert_eq!(health.requests, 4);
        let (ok, throttled, unavailable) = (health.last_ok, health.last_429, health.last_503);
        assert!(ok.is_some() && throttled.is_some() && unavailable.is_some());
        assert!(ok <= throttled && throttled <= unavailable);
        let last = health.last_error.clone().unwrap();
        assert_eq!(
            (
                last.kind,
                last.operation,
                last.status,
                last.request_id.as_deref()
            ),
            (ErrorKind::Transient, "GetThing", Some(500), Some("r-500"))
        );
        assert!(unavailable.is_some_and(|t| t <= last.at) && last.at <= health.taken_at);
        assert_eq!(health.token_valid_until, None);
        assert_eq!(health.budget_left, None);

        let shown = format!("{health:?} {}", serde_json::to_string(&health).unwrap());
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let json = serde_json::to_value(&health).unwrap();
        assert_eq!(json["last_error"]["kind"], "transient");
        assert_eq!(json["last_error"]["request_id"], "r-500");
        assert_eq!(json["requests"], 4);
    }

    /// A failure of the stack (nothing answered) is the last error too, without status or
    /// request id; clones of an engine share its record.
    #[tokio::test]
    async fn a_failure_without_an_answer_and_clones_share_the_record() {
        let failing = tower::service_fn(|_request: Request<Bytes>| {
            let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
            std::future::ready(Err::<Response<Bytes>, _>(auth_core::Error::connect(
                refused,
            )))
        });
        let engine: Engine<Test> = options().engine(failing);
        let clone = engine.clone();
        let err = clone.send(get()).await.unwrap_err();
        assert!(matches!(err, Failure::NotSent { .. }), "{err:?}");
        let health = engine.health();
        let last = health.last_error.unwrap();
        assert_eq!(
            (health.requests, last.kind, last.status, last.request_id),
            (1, ErrorKind::Transient, None, None)
        );
    }

    /// Engines recording into one recorder (one client, several rate budgets) show one record;
    /// a client's own classification of an error wins over the failure's.
    #[tokio::test]
    async fn engines_share_a_recorder_and_the_clients_kind_is_recorded() {
        let health = HealthRecorder::new();
        let options = options();
        let first: Engine<Strict> =
            options.engine_recording(scripted(&[(200, "")]), health.clone());
        let second: Engine<Strict> =
            options.engine_recording(scripted(&[(500, "r-9")]), health.clone());
        first.send(get()).await.unwrap();
        second.send(get()).await.unwrap_err();
        let snapshot = health.snapshot();
        assert_eq!(second.health_recorder().snapshot().requests, 2);
        assert_eq!(first.health().last_error.map(|e| e.status), Some(Some(500)));
        assert_eq!(snapshot.requests, 2);
        assert!(snapshot.last_ok.is_some());
        let last = snapshot.last_error.unwrap();
        assert_eq!(
            (last.kind, last.request_id.as_deref()),
            (ErrorKind::Permanent, Some("r-9"))
        );
    }

    /// Tokio instants are placed relative to the snapshot (tokio's clock stands still).
    #[tokio::test(start_paused = true)]
    async fn wall_time_is_relative_to_the_snapshot() {
        let snapshot = HealthRecorder::new().snapshot();
        let now = tokio::time::Instant::now();
        let ahead = now + Duration::from_secs(90);
        assert_eq!(
            snapshot.wall_time(ahead),
            snapshot.taken_at + Duration::from_secs(90)
        );
        let before = now.checked_sub(Duration::from_millis(1)).unwrap();
        assert_eq!(
            snapshot.wall_time(before),
            snapshot.taken_at - Duration::from_millis(1)
        );
    }
}
