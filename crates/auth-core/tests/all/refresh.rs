use std::sync::Arc;
use std::time::Duration;

use auth_core::{
    FileTokenStore, MemoryTokenStore, RefreshTokenGrant, StoredTokens, TokenCache, TokenStore,
};

use crate::common::{TokenServer, token_url};

fn sent_refresh_tokens(server: &TokenServer) -> Vec<String> {
    server
        .log()
        .iter()
        .filter_map(|s| s.form.get("refresh_token").cloned())
        .collect()
}

/// After each refresh the old refresh token is never sent again (the server rejects reuse
/// with invalid_grant, so any reuse would fail the test).
#[tokio::test(start_paused = true)]
async fn rotating_refresh_token_never_reused() {
    let server = TokenServer::new(600).with_refresh_token("rt-0");
    let store = Arc::new(MemoryTokenStore::new(Some(StoredTokens::refresh_only(
        "rt-0".into(),
    ))));
    let grant = RefreshTokenGrant::new(
        server.service(),
        token_url(None),
        "app",
        None,
        store.clone(),
    );
    let cache = TokenCache::new(grant);
    let t1 = cache.get().await.unwrap();
    assert!(cache.invalidate(&t1));
    cache.get().await.unwrap();
    tokio::time::sleep(Duration::from_secs(590)).await; // expiry forces the next refresh
    cache.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(sent_refresh_tokens(&server), ["rt-0", "rt-1", "rt-2"]);
    assert!(server.log().iter().all(|s| s.status == 200));
    let stored = store.snapshot().unwrap();
    use secrecy::ExposeSecret as _;
    assert_eq!(
        stored.refresh_token.expose_secret(),
        "rt-3",
        "new pair persisted"
    );
    assert_eq!(
        server.log()[0].form.get("client_id").map(String::as_str),
        Some("app")
    );
}

/// Ten caches sharing one grant refresh concurrently: exchanges are serialised and each
/// sends a different (the newest) refresh token.
#[tokio::test(start_paused = true)]
async fn concurrent_refreshes_never_share_a_refresh_token() {
    let server = TokenServer::new(600)
        .with_refresh_token("rt-0")
        .with_latency(Duration::from_millis(200));
    let store = Arc::new(MemoryTokenStore::new(Some(StoredTokens::refresh_only(
        "rt-0".into(),
    ))));
    let grant = Arc::new(RefreshTokenGrant::new(
        server.service(),
        token_url(None),
        "app",
        None,
        store,
    ));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let cache = TokenCache::new(Arc::clone(&grant));
        set.spawn(async move { cache.get().await.map(|_| ()) });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
    let sent = sent_refresh_tokens(&server);
    let mut unique = sent.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(sent.len(), 10);
    assert_eq!(unique.len(), 10, "{sent:?}");
    assert_eq!(server.state.lock().unwrap().max_in_flight, 1);
}

/// Across a restart with the file store: the stored access token is reused, and the next
/// refresh sends the rotated refresh token, never the original one. File mode is 0600.
#[tokio::test]
async fn file_store_survives_restart_without_reusing_old_refresh_token() {
    let dir = std::env::temp_dir().join(format!(
        "auth-core-test-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tokens.json");
    let server = TokenServer::new(600).with_refresh_token("rt-0");
    FileTokenStore::new(&path)
        .save(&StoredTokens::refresh_only("rt-0".into()))
        .await
        .unwrap();
    {
        let store = Arc::new(FileTokenStore::new(&path));
        let cache = TokenCache::new(RefreshTokenGrant::new(
            server.service(),
            token_url(None),
            "app",
            None,
            store,
        ));
        cache.get().await.unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Restart.
    let store = Arc::new(FileTokenStore::new(&path));
    let cache = TokenCache::new(RefreshTokenGrant::new(
        server.service(),
        token_url(None),
        "app",
        None,
        store,
    ));
    let reused = cache.get().await.unwrap();
    assert_eq!(
        server.count(),
        1,
        "stored access token reused after restart"
    );
    assert!(cache.invalidate(&reused));
    cache.get().await.unwrap();
    assert_eq!(sent_refresh_tokens(&server), ["rt-0", "rt-1"]);
    assert!(server.log().iter().all(|s| s.status == 200));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}
