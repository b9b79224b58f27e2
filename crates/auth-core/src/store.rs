//! Persistence for rotating refresh tokens.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use models_runtime::redact::REDACTED;
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

use crate::error::StoreError;
use crate::token::{BoxFuture, Token};

/// A refresh token and, optionally, the access token issued with it.
#[derive(Clone)]
pub struct StoredTokens {
    /// The newest refresh token.
    pub refresh_token: SecretString,
    /// The access token issued with it.
    pub access_token: Option<SecretString>,
    /// Wall-clock expiry of the access token (wall clock, because it must survive a restart).
    pub access_expires_at: Option<SystemTime>,
}

impl StoredTokens {
    /// Only a refresh token (the usual initial state after an authorization-code exchange).
    pub fn refresh_only(refresh_token: SecretString) -> Self {
        Self {
            refresh_token,
            access_token: None,
            access_expires_at: None,
        }
    }

    /// The stored access token as a [`Token`], if it has at least `min_left` lifetime left.
    pub fn reusable_access_token(&self, min_left: Duration) -> Option<Token> {
        let access = self.access_token.as_ref()?;
        let left = self
            .access_expires_at?
            .duration_since(SystemTime::now())
            .ok()?;
        (left > min_left).then(|| Token::bearer(access.clone(), Some(Instant::now() + left)))
    }
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field("refresh_token", &REDACTED)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| REDACTED),
            )
            .field("access_expires_at", &self.access_expires_at)
            .finish()
    }
}

/// Where a [`RefreshTokenGrant`](crate::RefreshTokenGrant) keeps the newest token pair.
pub trait TokenStore: Send + Sync + 'static {
    /// Loads the pair; `Ok(None)` when nothing is stored yet.
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, StoreError>>;
    /// Durably replaces the pair.
    fn save<'a>(&'a self, tokens: &'a StoredTokens) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// An in-memory store (tests, or processes that get the refresh token injected).
#[derive(Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<Option<StoredTokens>>,
}

impl MemoryTokenStore {
    /// A store holding `tokens`.
    pub fn new(tokens: Option<StoredTokens>) -> Self {
        Self {
            tokens: Mutex::new(tokens),
        }
    }

    /// The current content.
    pub fn snapshot(&self) -> Option<StoredTokens> {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTokenStore")
            .field("tokens", &self.snapshot())
            .finish()
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, StoreError>> {
        let snapshot = self.snapshot();
        Box::pin(async move { Ok(snapshot) })
    }

    fn save<'a>(&'a self, tokens: &'a StoredTokens) -> BoxFuture<'a, Result<(), StoreError>> {
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokens.clone());
        Box::pin(async { Ok(()) })
    }
}

/// A JSON file store: written atomically (temp file, fsync, rename) with mode 0600 on Unix.
///
/// It serialises writers within one process only; do not share a file between processes.
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FileFormat {
    refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_expires_at_unix: Option<u64>,
}

impl FileTokenStore {
    /// A store at `path` (the file need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load_sync(path: &Path) -> Result<Option<StoredTokens>, StoreError> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // serde_json's error message may quote input: never include it.
        let file: FileFormat = serde_json::from_slice(&data)
            .map_err(|_| StoreError::Malformed(format!("{}", path.display())))?;
        Ok(Some(StoredTokens {
            refresh_token: SecretString::from(file.refresh_token),
            access_token: file.access_token.map(SecretString::from),
            access_expires_at: file
                .access_expires_at_unix
                .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        }))
    }

    fn save_sync(path: &Path, tokens: &StoredTokens) -> Result<(), StoreError> {
        use std::io::Write as _;
        let file = FileFormat {
            refresh_token: tokens.refresh_token.expose_secret().to_owned(),
            access_token: tokens
                .access_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            access_expires_at_unix: tokens
                .access_expires_at
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
        };
        let data = serde_json::to_vec(&file).map_err(|e| StoreError::Malformed(e.to_string()))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let result = (|| {
            let mut f = options.open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // Make the rename itself durable.
            #[cfg(unix)]
            std::fs::File::open(dir)?.sync_all()?;
            Ok::<_, std::io::Error>(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(result?)
    }
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<StoredTokens>, StoreError>> {
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::load_sync(&path))
                .await
                .map_err(std::io::Error::other)?
        })
    }

    fn save<'a>(&'a self, tokens: &'a StoredTokens) -> BoxFuture<'a, Result<(), StoreError>> {
        let path = self.path.clone();
        let tokens = tokens.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || Self::save_sync(&path, &tokens))
                .await
                .map_err(std::io::Error::other)?
        })
    }
}
