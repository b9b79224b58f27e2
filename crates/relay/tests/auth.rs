//! `relay auth brightpearl` end to end against the sandbox: the sandbox's `/authorize` approves
//! at once and redirects, so the test plays the browser with two plain HTTP GETs.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use brightpearl_client::models::product::{ListPriceListsPath, operations::ProductApi as _};
use client_core::Settings;
use relay::cli::auth::{AuthError, AuthOptions, authorize_brightpearl};
use sandbox::{Sandbox, SandboxConfig};

/// A GET as a browser would send it (no redirects followed): status, `Location`, body.
async fn browser_get(url: &str) -> (u16, Option<String>, String) {
    let answer = common::http("GET", url, None).await;
    (answer.status, answer.location, answer.body)
}

/// OAuth settings for the sandbox's Brightpearl, with the tokens kept in `store`.
fn oauth_settings(sandbox: &Sandbox, store: &Path) -> Settings {
    let bp = sandbox.credentials().brightpearl;
    Settings::from_pairs([
        ("BRIGHTPEARL_ACCOUNT", bp.account),
        ("BRIGHTPEARL_APP_REF", bp.app_ref),
        ("BRIGHTPEARL_DEV_REF", bp.dev_ref),
        ("BRIGHTPEARL_CLIENT_ID", bp.client_id),
        ("BRIGHTPEARL_OAUTH_URL", bp.oauth_url),
        ("BRIGHTPEARL_TOKEN_STORE", store.display().to_string()),
    ])
}

fn temp_store(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relay-auth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("tokens").join("brightpearl.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizes_through_the_redirect_and_stores_working_tokens() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let store = temp_store("ok");
    let settings = oauth_settings(&sandbox, &store);
    let (tx, rx) = tokio::sync::oneshot::channel::<(String, String)>();
    let mut tx = Some(tx);
    let options = AuthOptions::new(0);
    let authorize = authorize_brightpearl(&settings, &options, |prompt| {
        if let Some(tx) = tx.take() {
            let _ = tx.send((prompt.url.clone(), prompt.redirect_uri.clone()));
        }
    });
    let browser = async {
        let (url, redirect_uri) = rx.await.expect("the authorize URL is printed");
        assert!(
            url.starts_with(&format!("{}/authorize/", sandbox.base_url())),
            "{url}"
        );
        assert!(
            redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/callback"),
            "{redirect_uri}"
        );
        let (status, location, _) = browser_get(&url).await;
        assert_eq!(status, 302);
        let location = location.expect("a redirect");
        assert!(
            location.starts_with(&redirect_uri)
                && location.contains("code=")
                && location.contains("state="),
            "{location}"
        );
        let (status, _, page) = browser_get(&location).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("close this window"), "{page}");
    };
    let (outcome, ()) = tokio::join!(authorize, browser);
    let outcome = outcome.expect("authorized");
    assert_eq!(outcome.verification_error, None);
    assert_eq!(outcome.token_store, store);
    assert!(
        outcome
            .api_domain
            .as_deref()
            .is_some_and(|d| sandbox.base_url().ends_with(d)),
        "{:?}",
        outcome.api_domain
    );
    assert_eq!(outcome.installation_instance_id.as_deref(), Some("13"));
    assert!(store.exists(), "the token store was written");

    // Nothing secret in what is printed: no stored token appears in the output.
    let printed = format!("{outcome}\n{outcome:?}");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&store).unwrap()).unwrap();
    let secrets: Vec<&str> = stored
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_str())
        .filter(|s| s.len() > 12)
        .collect();
    assert!(!secrets.is_empty(), "{stored}");
    for secret in secrets {
        assert!(!printed.contains(secret), "a token was printed");
    }

    // A client built from the same settings (a later `relay run`) works with the stored tokens.
    let client = brightpearl_client::ClientBuilder::from_settings(&settings)
        .unwrap()
        .build()
        .unwrap();
    let path = ListPriceListsPath {
        account: client.account().to_owned(),
    };
    let lists = client
        .list_price_lists(&path)
        .await
        .expect("authorized call");
    assert_eq!(lists.response.len(), 2);
    let _ = std::fs::remove_dir_all(store.parent().unwrap().parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_with_another_state_stores_nothing() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let store = temp_store("state");
    let settings = oauth_settings(&sandbox, &store);
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let mut tx = Some(tx);
    let options = AuthOptions::new(0);
    let authorize = authorize_brightpearl(&settings, &options, |prompt| {
        if let Some(tx) = tx.take() {
            let _ = tx.send(prompt.redirect_uri.clone());
        }
    });
    let forged = async {
        let redirect_uri = rx.await.unwrap();
        let (status, _, _) =
            browser_get(&format!("{redirect_uri}?code=stolen&state=not-the-one")).await;
        assert_eq!(status, 400);
    };
    let (result, ()) = tokio::join!(authorize, forged);
    let err = result.unwrap_err();
    assert!(matches!(err, AuthError::StateMismatch), "{err}");
    assert!(err.to_string().contains("Run the command again"), "{err}");
    assert!(!store.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_redirect_times_out_with_advice() {
    let sandbox = common::sandbox_with(SandboxConfig::default()).await;
    let store = temp_store("timeout");
    let settings = oauth_settings(&sandbox, &store);
    // Paused-free: a zero timeout elapses at once.
    let err = authorize_brightpearl(
        &settings,
        &AuthOptions::new(0).timeout(Duration::ZERO),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, AuthError::Timeout(0)), "{err}");
    assert!(err.to_string().contains("redirect URI"), "{err}");
}
