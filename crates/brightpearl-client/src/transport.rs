//! Small tower pieces of the stack: the boxed transport, the 401 capture below the auth layer,
//! the token-response sniffer (`api_domain`) and the seeded token store.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};

use auth_core::{BoxFuture, SecretString, StoreError, StoredTokens, TokenStore};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tower::Service;

use crate::error::ApiFailure;

pub use client_core::BoxTransport;

/// Request extension: where the layer below auth leaves a 401 answer, so the error keeps
/// Brightpearl's message although the auth layer only reports the status.
#[derive(Clone, Default)]
pub(crate) struct UnauthorizedSlot(pub(crate) Arc<Mutex<Option<ApiFailure>>>);

impl UnauthorizedSlot {
    pub(crate) fn take(&self) -> Option<ApiFailure> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Records 401 answers into the request's [`UnauthorizedSlot`].
#[derive(Clone)]
pub(crate) struct Capture401<S> {
    pub(crate) inner: S,
}

impl<S> Service<Request<Bytes>> for Capture401<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = auth_core::Error>,
    S::Future: Send + 'static,
{
    type Response = Response<Bytes>;
    type Error = auth_core::Error;
    type Future = BoxFuture<'static, Result<Response<Bytes>, auth_core::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let slot = request.extensions().get::<UnauthorizedSlot>().cloned();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            if response.status() == StatusCode::UNAUTHORIZED
                && let Some(slot) = slot
            {
                *slot.0.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(crate::client::failure_of(&response));
            }
            Ok(response)
        })
    }
}

/// What token responses told us about the installation (never a token).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// The `api_domain` of the latest token response: the host to call.
    pub api_domain: Option<String>,
    /// The `installation_instance_id` of the code exchange.
    pub installation_instance_id: Option<String>,
}

/// Shared session state, optionally persisted next to the token store.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionCell {
    pub(crate) state: Arc<RwLock<Session>>,
    pub(crate) file: Option<PathBuf>,
}

impl SessionCell {
    pub(crate) fn load(file: Option<PathBuf>) -> Self {
        let session = file
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|data| serde_json::from_slice::<Session>(&data).ok())
            .unwrap_or_default();
        Self {
            state: Arc::new(RwLock::new(session)),
            file,
        }
    }

    pub(crate) fn get(&self) -> Session {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Applies the fields of a token response body.
    pub(crate) fn observe_token_body(&self, body: &[u8]) {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let field = |name: &str| match json.get(name) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let (domain, instance) = (field("api_domain"), field("installation_instance_id"));
        if domain.is_none() && instance.is_none() {
            return;
        }
        let snapshot = {
            let mut session = self.state.write().unwrap_or_else(|p| p.into_inner());
            let before = session.clone();
            if domain.is_some() {
                session.api_domain = domain;
            }
            if instance.is_some() {
                session.installation_instance_id = instance;
            }
            if *session == before {
                return;
            }
            session.clone()
        };
        tracing::debug!(target: "brightpearl_client", api_domain = snapshot.api_domain.as_deref(), "token response: session updated");
        if let Some(path) = &self.file
            && let Ok(data) = serde_json::to_vec(&snapshot)
            && let Err(e) = std::fs::write(path, data)
        {
            tracing::warn!(target: "brightpearl_client", path = %path.display(), error = %e, "cannot persist the Brightpearl session (api_domain)");
        }
    }
}

/// The token transport: the boxed transport, with successful token answers fed to the session
/// (the body is wrapped in `Full`, as token sources want an `http_body::Body`).
#[derive(Clone)]
pub(crate) struct SniffingTransport {
    pub(crate) inner: BoxTransport,
    pub(crate) session: SessionCell,
}

impl Service<Request<Bytes>> for SniffingTransport {
    type Response = Response<http_body_util::Full<Bytes>>;
    type Error = auth_core::Error;
    type Future = BoxFuture<'static, Result<Self::Response, auth_core::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let future = self.inner.call(request);
        let session = self.session.clone();
        Box::pin(async move {
            let response = future.await?;
            if response.status().is_success() {
                session.observe_token_body(response.body());
            }
            Ok(response.map(http_body_util::Full::new))
        })
    }
}

/// A store that starts from an initial refresh token (`BRIGHTPEARL_REFRESH_TOKEN`) while the
/// real store is still empty; once anything is stored, the stored (newer) pair wins.
pub(crate) struct SeededStore {
    pub(crate) inner: Arc<dyn TokenStore>,
    pub(crate) initial: Option<SecretString>,
}

impl TokenStore for SeededStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, StoreError>> {
        Box::pin(async move {
            match self.inner.load().await? {
                Some(stored) => Ok(Some(stored)),
                None => Ok(self.initial.clone().map(StoredTokens::refresh_only)),
            }
        })
    }

    fn save<'a>(&'a self, tokens: &'a StoredTokens) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.save(tokens)
    }
}
