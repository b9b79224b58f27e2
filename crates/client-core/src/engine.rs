//! The one request path: an [`ApiRequest`] (a generated `OperationInfo` with its rendered path,
//! query, body and headers) goes through a client's auth-core stack; a success answer comes
//! back, anything else becomes the platform's error through [`Platform::error`].

use std::fmt;
use std::marker::PhantomData;

use auth_core::Idempotent;
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response};
use models_runtime::{Operation, OperationInfo};
use reqwest::Url;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::failure::{Failure, HttpFailure};
use crate::health::{HealthRecorder, HealthSnapshot};
use crate::kind::ErrorKind;
use crate::query::{append_query, query_pairs};
use crate::transport::BoxTransport;

/// What a client tells the engine about its platform: names for traces and errors, and how a
/// [`Failure`] becomes the platform's own error (where the platform's meaning is read).
pub trait Platform: 'static {
    /// The platform's name in traces and logs (`norce`, `nshift`, `brightpearl`).
    const NAME: &'static str;
    /// The headers that may carry the platform's request id, tried in order.
    const REQUEST_ID_HEADERS: &'static [&'static str];
    /// The client's error type.
    type Error;
    /// Turns a failure of the shared path into the client's error.
    fn error(failure: Failure) -> Self::Error;
    /// The `Accept` header of a request of `op` unless the request sets one (default: the
    /// operation's response media type, none when it has no body).
    fn accept(op: &OperationInfo) -> Option<&'static str> {
        op.response_media_type
    }

    /// The client's classification of `error`, when it refines the failure's own
    /// ([`Failure::kind`], the default): what [`Engine::health`] records as the last error's
    /// kind.
    fn error_kind(error: &Self::Error) -> Option<ErrorKind> {
        let _ = error;
        None
    }
}

/// The operation of a request and whether it is safe to repeat: what an error needs to know
/// about the request it came from.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo {
    /// The generated operation.
    pub operation: &'static OperationInfo,
    /// Safe to repeat: retried by the stack, and a timeout or 5xx of it is transient (else an
    /// ambiguous write).
    pub idempotent: bool,
}

/// One request of one operation, built step by step. A step that fails (a query or body that
/// does not serialize, a header HTTP does not allow) is reported when the request is sent, as
/// [`Failure::InvalidRequest`] naming the operation, so building never returns a `Result`.
///
/// ```
/// # use models_runtime::OperationInfo;
/// static OP: OperationInfo = OperationInfo { id: "GetOrder", method: "GET", path: "/order/{id}",
///     success_status: 200, request_media_type: None, response_media_type: Some("application/json") };
/// #[derive(serde::Serialize)]
/// struct Q { format: &'static str }
/// let base = reqwest::Url::parse("https://h.example/prefix/").unwrap();
/// let request = client_core::ApiRequest::new(&OP, &base, "/order/7").query(&Q { format: "json" });
/// assert_eq!(request.url().as_str(), "https://h.example/prefix/order/7?format=json");
/// assert!(request.info().idempotent);
/// ```
#[derive(Clone)]
pub struct ApiRequest {
    info: RequestInfo,
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Bytes,
    invalid: Option<String>,
}

impl fmt::Debug for ApiRequest {
    /// Operation, method and path: never the query or a header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiRequest")
            .field("operation", &self.info.operation.id)
            .field("method", &self.method)
            .field("path", &self.url.path())
            .field("idempotent", &self.info.idempotent)
            .finish_non_exhaustive()
    }
}

/// `base` with `path` appended to its own path (a proxy mounted under `/norce` keeps its
/// prefix); no query.
pub fn join_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
    url.set_query(None);
    url
}

impl ApiRequest {
    /// A request of `op` to `base` + `path` (the path already rendered: a generated
    /// `*Path::to_path()` or the operation's literal path). The method is the operation's;
    /// it is idempotent when the method is (GET, HEAD, PUT, DELETE, OPTIONS, TRACE).
    pub fn new(op: &'static OperationInfo, base: &Url, path: &str) -> Self {
        Self::at(op, join_path(base, path))
    }

    /// A request of the generated operation `O` to `base`: its path rendered from `path`,
    /// `query` appended and `body` (if any) sent as the operation's request media type says
    /// (a form for `application/x-www-form-urlencoded`, text for `text/*`, else JSON). Add
    /// operation-specific headers and idempotency with the other steps.
    pub fn operation<O: Operation>(
        base: &Url,
        path: &O::Path,
        query: &O::Query,
        body: Option<&O::Body>,
    ) -> Self {
        let request = Self::new(&O::INFO, base, &O::path(path)).query(query);
        let Some(body) = body else {
            return request;
        };
        match O::INFO.request_media_type {
            Some("application/x-www-form-urlencoded") => request.form(body),
            Some(text) if text.starts_with("text/") => match serde_json::to_value(body) {
                Ok(serde_json::Value::String(s)) => request.body(s, text),
                _ => request.fail_owned(format!("the {text} body is not a string")),
            },
            _ => request.json(body),
        }
    }

    /// A request of `op` to a complete URL, query included (a followed next-page link).
    pub fn at(op: &'static OperationInfo, url: Url) -> Self {
        let parsed = Method::from_bytes(op.method.as_bytes());
        let invalid = parsed
            .is_err()
            .then(|| format!("`{}` is not an HTTP method", op.method));
        let method = parsed.unwrap_or_default();
        Self {
            info: RequestInfo {
                operation: op,
                idempotent: method.is_idempotent(),
            },
            method,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            invalid,
        }
    }

    /// Appends the query of a generated `*Query` type (absent fields left out).
    pub fn query<Q: Serialize + ?Sized>(mut self, query: &Q) -> Self {
        match query_pairs(query) {
            Ok(pairs) => append_query(&mut self.url, &pairs),
            Err(e) => self.fail(format!("the query does not serialize: {e}")),
        }
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json<B: Serialize + ?Sized>(self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => self.body(bytes, "application/json"),
            Err(e) => self.fail_owned(format!("the body does not serialize: {e}")),
        }
    }

    /// A form body (`application/x-www-form-urlencoded`), its fields as [`query_pairs`] reads
    /// them.
    pub fn form<B: Serialize + ?Sized>(self, body: &B) -> Self {
        match query_pairs(body) {
            Ok(pairs) => {
                let text = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&pairs)
                    .finish();
                self.body(text, "application/x-www-form-urlencoded")
            }
            Err(e) => self.fail_owned(format!("the form does not serialize: {e}")),
        }
    }

    /// A body of any media type.
    pub fn body(mut self, body: impl Into<Bytes>, media_type: &str) -> Self {
        self.body = body.into();
        self.header(CONTENT_TYPE.as_str(), media_type)
    }

    /// Sets a header (replacing one of the same name). The value is never shown in an error.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                self.headers.insert(name, value);
            }
            _ => self.fail(format!(
                "header `{name}` has a name or value HTTP does not allow"
            )),
        }
        self
    }

    /// Sets a header whose value is a credential (replacing one of the same name): as
    /// [`Self::header`], and the value is marked sensitive ([`HeaderValue::set_sensitive`]) so
    /// the HTTP stack neither indexes nor shows it.
    pub fn sensitive_header(mut self, name: &str, value: &str) -> Self {
        self = self.header(name, value);
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes())
            && let Some(value) = self.headers.get_mut(name)
        {
            value.set_sensitive(true);
        }
        self
    }

    /// Overrides whether the request is safe to repeat: a POST that changes nothing or writes
    /// absolute values (`true`), or a PUT that must not be repeated (`false`).
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.info.idempotent = idempotent;
        self
    }

    /// Overrides the method (a raw call whose method the caller chooses); the request is then
    /// idempotent when the new method is (override that with [`Self::idempotent`] after).
    pub fn method(mut self, method: Method) -> Self {
        self.info.idempotent = method.is_idempotent();
        self.method = method;
        self
    }

    /// The operation and whether the request is safe to repeat.
    pub fn info(&self) -> RequestInfo {
        self.info
    }

    /// The URL, query included.
    pub fn url(&self) -> &Url {
        &self.url
    }

    fn fail(&mut self, reason: String) {
        self.invalid.get_or_insert(reason);
    }

    fn fail_owned(mut self, reason: String) -> Self {
        self.fail(reason);
        self
    }
}

/// The one request engine of a client: its boxed auth-core stack, the platform that reads
/// meaning into failures, and the record of its calls' health ([`Self::health`]). Cheap to
/// clone; clones share the record.
pub struct Engine<P> {
    stack: BoxTransport,
    health: HealthRecorder,
    platform: PhantomData<fn() -> P>,
}

impl<P> Clone for Engine<P> {
    fn clone(&self) -> Self {
        Self {
            stack: self.stack.clone(),
            health: self.health.clone(),
            platform: PhantomData,
        }
    }
}

impl<P: Platform> fmt::Debug for Engine<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("platform", &P::NAME)
            .finish()
    }
}

impl<P: Platform> Engine<P> {
    /// An engine over `stack` (the client's layers over its transport), its health recorded
    /// afresh.
    pub fn new(stack: BoxTransport) -> Self {
        Self::with_health(stack, HealthRecorder::new())
    }

    /// An engine over `stack` recording its calls' health into `health` (shared with other
    /// engines of the same client, or with a layer of `stack` that notes every attempt's
    /// throttling answers, as [`CommonOptions::engine`](crate::CommonOptions::engine) builds).
    pub fn with_health(stack: BoxTransport, health: HealthRecorder) -> Self {
        Self {
            stack,
            health,
            platform: PhantomData,
        }
    }

    /// How this engine's calls went so far: how many, the last success, the last 429 and 503
    /// answers, the last error (kind, operation, status, request id; never a body, header
    /// value or credential). The token and rate-budget fields are left for the client to fill.
    pub fn health(&self) -> HealthSnapshot {
        self.health.snapshot()
    }

    /// The recorder behind [`Self::health`].
    pub fn health_recorder(&self) -> &HealthRecorder {
        &self.health
    }

    /// The platform's error for `failure`, recorded as the last error.
    fn fail(&self, failure: Failure) -> P::Error {
        let (operation, status, kind) = (failure.operation(), failure.status(), failure.kind());
        let request_id = failure.request_id().map(str::to_owned);
        let error = P::error(failure);
        let kind = P::error_kind(&error).unwrap_or(kind);
        self.health
            .failed(kind, operation, status, request_id.as_deref());
        error
    }

    /// Sends `request` in an `api.call` span (platform and operation id, never the query) and
    /// returns the answer whatever its status: only a failure of the stack is an error. For a
    /// platform that reads meaning into some non-success answers; see [`Self::reject`].
    pub async fn send_any(&self, request: ApiRequest) -> Result<Response<Bytes>, P::Error> {
        let ApiRequest {
            info,
            method,
            url,
            mut headers,
            body,
            invalid: problem,
        } = request;
        let operation = info.operation.id;
        let invalid = |reason| self.fail(Failure::InvalidRequest { operation, reason });
        if let Some(reason) = problem {
            return Err(invalid(reason));
        }
        if !headers.contains_key(ACCEPT)
            && let Some(accept) = P::accept(info.operation)
        {
            headers.insert(ACCEPT, HeaderValue::from_static(accept));
        }
        let mut http = http::Request::new(body);
        *http.method_mut() = method;
        *http.uri_mut() = url
            .as_str()
            .parse()
            .map_err(|e| invalid(format!("the URL is not a valid URI: {e}")))?;
        *http.headers_mut() = headers;
        if info.idempotent {
            http.extensions_mut().insert(Idempotent);
        }
        let span = tracing::info_span!("api.call", platform = P::NAME, operation);
        self.health.sent();
        let answer = self.stack.clone().oneshot(http).instrument(span).await;
        match answer {
            Ok(response) => {
                self.health.answered(response.status());
                Ok(response)
            }
            Err(e) => {
                let ids = P::REQUEST_ID_HEADERS;
                Err(self.fail(Failure::from_stack(operation, info.idempotent, ids, e)))
            }
        }
    }

    /// Sends `request`; a 2xx answer is returned, any other becomes the platform's error.
    pub async fn send(&self, request: ApiRequest) -> Result<Response<Bytes>, P::Error> {
        let info = request.info();
        let response = self.send_any(request).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.reject(info, &response))
        }
    }

    /// Sends `request` and decodes a 2xx JSON answer into `T`; a body that does not decode is
    /// [`Failure::Decode`] with the status and the body.
    pub async fn call_json<T: DeserializeOwned>(&self, request: ApiRequest) -> Result<T, P::Error> {
        let operation = request.info().operation.id;
        let response = self.send(request).await?;
        serde_json::from_slice(response.body())
            .map_err(|e| self.fail(Failure::decode(operation, &response, e)))
    }

    /// Sends `request` (built for `O`, see [`ApiRequest::operation`]) and reads `O`'s success
    /// answer as its response media type says: JSON into the model (an empty body as `null`),
    /// no media type as `()` whatever the body, anything else as text (`String`) or bytes
    /// (`Vec<u8>`). A body that does not decode is [`Failure::Decode`].
    pub async fn call<O: Operation>(&self, request: ApiRequest) -> Result<O::Response, P::Error> {
        let response = self.send(request).await?;
        decode_body(O::INFO.response_media_type, response.body())
            .map_err(|e| self.fail(Failure::decode(O::INFO.id, &response, e)))
    }

    /// The platform's error for a non-success `response` to the request `info` describes
    /// (logged with the status and request id, and recorded as the last error).
    pub fn reject(&self, info: RequestInfo, response: &Response<Bytes>) -> P::Error {
        let failure = HttpFailure::new(
            info.operation.id,
            info.idempotent,
            P::REQUEST_ID_HEADERS,
            response,
        );
        tracing::warn!(
            platform = P::NAME,
            operation = failure.operation,
            status = failure.status.as_u16(),
            request_id = failure.request_id.as_deref(),
            "the API answered an error"
        );
        self.fail(Failure::Http(Box::new(failure)))
    }
}

/// A success body read as `media` says (see [`Engine::call`]).
fn decode_body<T: DeserializeOwned>(
    media: Option<&str>,
    body: &[u8],
) -> Result<T, serde_json::Error> {
    use serde::de::IntoDeserializer;
    use serde::de::value::SeqDeserializer;
    let empty = body.iter().all(u8::is_ascii_whitespace);
    match media {
        // No body in the spec: whatever came is not read (`()` from `null`).
        None => T::deserialize(serde_json::Value::Null),
        Some(json) if json.contains("json") && empty => T::deserialize(serde_json::Value::Null),
        Some(json) if json.contains("json") => serde_json::from_slice(body),
        Some(_) => {
            // Text (`String`) when it is text and the model takes it; else the raw bytes.
            if let Ok(text) = std::str::from_utf8(body)
                && let Ok(value) = T::deserialize(
                    IntoDeserializer::<serde_json::Error>::into_deserializer(text),
                )
            {
                return Ok(value);
            }
            T::deserialize(SeqDeserializer::new(body.iter().copied()))
        }
    }
}
