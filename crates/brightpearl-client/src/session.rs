//! What the token responses tell about the installation (`api_domain`, instance id), kept
//! next to the token store, and the store seeded with an initial refresh token.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use auth_core::{BoxFuture, SecretString, StoreError, StoredTokens, TokenStore};
use serde_json::Value;

/// What token responses told us about the installation (never a token).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    /// The `api_domain` of the latest token response: the host to call.
    pub api_domain: Option<String>,
    /// The `installation_instance_id` of the code exchange.
    pub installation_instance_id: Option<String>,
}

/// The session shared by a client's clones, persisted in `file` when there is one (so a
/// restart that reuses a stored access token still knows `api_domain`).
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionCell {
    state: Arc<RwLock<Session>>,
    file: Option<PathBuf>,
}

impl SessionCell {
    pub(crate) fn load(file: Option<PathBuf>) -> Self {
        let stored = file.as_ref().and_then(|p| std::fs::read(p).ok());
        let session = stored.and_then(|data| serde_json::from_slice(&data).ok());
        let state = Arc::new(RwLock::new(session.unwrap_or_default()));
        Self { state, file }
    }

    pub(crate) fn get(&self) -> Session {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes the session fields of a token response body.
    pub(crate) fn observe_token_body(&self, body: &[u8]) {
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        let field = |name: &str| match json.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let mut session = self.state.write().unwrap_or_else(|p| p.into_inner());
        let before = session.clone();
        session.api_domain = field("api_domain").or(session.api_domain.take());
        let instance = field("installation_instance_id");
        session.installation_instance_id = instance.or(session.installation_instance_id.take());
        if *session == before {
            return;
        }
        let snapshot = session.clone();
        drop(session);
        tracing::debug!(target: "brightpearl_client", api_domain = snapshot.api_domain.as_deref(), "token response: session updated");
        if let Some(path) = &self.file
            && let Ok(data) = serde_json::to_vec(&snapshot)
            && let Err(e) = std::fs::write(path, data)
        {
            tracing::warn!(target: "brightpearl_client", path = %path.display(), error = %e, "cannot persist the Brightpearl session (api_domain)");
        }
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
            let stored = self.inner.load().await?;
            Ok(stored.or_else(|| self.initial.clone().map(StoredTokens::refresh_only)))
        })
    }

    fn save<'a>(&'a self, tokens: &'a StoredTokens) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.save(tokens)
    }
}
