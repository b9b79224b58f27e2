//! What the token responses tell about the installation (`api_domain`, instance id), kept
//! next to the token store, and the store seeded with an initial refresh token.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use auth_core::{
    BoxFuture, ExposeSecret, SecretString, SharedAuthState, SharedToken, StoreError, StoredTokens,
    TokenStore,
};
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
/// restart that reuses a stored access token still knows `api_domain`), and in the shared
/// auth state when there is one (so a worker that uses another worker's access token knows
/// it too; kept in a token row named `{pair}:session`, never expiring, holding no secret).
#[derive(Clone, Default)]
pub(crate) struct SessionCell {
    state: Arc<RwLock<Session>>,
    file: Option<PathBuf>,
    shared: Option<(Arc<dyn SharedAuthState>, String)>,
}

impl fmt::Debug for SessionCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCell")
            .field("session", &self.get())
            .field("file", &self.file)
            .field("shared", &self.shared.as_ref().map(|(_, name)| name))
            .finish()
    }
}

impl SessionCell {
    pub(crate) fn load(
        file: Option<PathBuf>,
        shared: Option<(Arc<dyn SharedAuthState>, String)>,
    ) -> Self {
        let stored = file.as_ref().and_then(|p| std::fs::read(p).ok());
        let session = stored.and_then(|data| serde_json::from_slice(&data).ok());
        let state = Arc::new(RwLock::new(session.unwrap_or_default()));
        Self {
            state,
            file,
            shared,
        }
    }

    /// While `api_domain` is unknown here, takes the session another worker shared.
    pub(crate) async fn read_shared(&self) {
        let Some((state, name)) = &self.shared else {
            return;
        };
        if self.get().api_domain.is_some() {
            return;
        }
        let row = match state.token(name).await {
            Ok(row) => row,
            Err(error) => {
                tracing::warn!(target: "brightpearl_client", %error, "cannot read the shared Brightpearl session (api_domain)");
                return;
            }
        };
        let data = row.map(|t| t.secret().expose_secret().as_bytes().to_vec());
        let Some(shared) = data.and_then(|d| serde_json::from_slice::<Session>(&d).ok()) else {
            return;
        };
        let mut session = self.state.write().unwrap_or_else(|p| p.into_inner());
        if session.api_domain.is_none() {
            *session = shared;
        }
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
        if let Some((state, name)) = self.shared.clone()
            && let Ok(data) = serde_json::to_string(&snapshot)
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(async move {
                let row = SharedToken::new(SecretString::from(data), None);
                if let Err(error) = state.save_token(&name, &row).await {
                    tracing::warn!(target: "brightpearl_client", %error, "cannot share the Brightpearl session (api_domain)");
                }
            });
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
