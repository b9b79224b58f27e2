use std::sync::Arc;

use auth_core::oauth::parse_token_response;
use auth_core::{
    AuthLayer, ClientCredentials, InvalidTokenResponse, MemoryTokenStore, RefreshTokenGrant,
    StaticHeadersLayer, StaticToken, StoredTokens, Token, TokenCache, TokenError,
};
use bytes::Bytes;
use http::{Response, StatusCode};
use tokio::time::Instant;

use crate::common::{TokenServer, token_url};

const SECRET: &str = "SUPERSECRET";

/// Debug of every secret-holding type prints a redaction, never the secret.
#[tokio::test]
async fn debug_of_secret_holding_types_is_redacted() {
    let server = TokenServer::new(600);
    let cc = ClientCredentials::new(server.service(), token_url(None), "id", SECRET.into());
    let stored = StoredTokens {
        refresh_token: SECRET.into(),
        access_token: Some(SECRET.into()),
        access_expires_at: None,
    };
    let store = Arc::new(MemoryTokenStore::new(Some(stored.clone())));
    let rt = RefreshTokenGrant::new(
        server.service(),
        token_url(None),
        "id",
        Some(SECRET.into()),
        store.clone(),
    );
    let token = Token::bearer(SECRET, None);
    let basic = StaticToken::basic("id", SECRET.into());
    let cache = TokenCache::new(StaticToken::bearer(SECRET.into()));
    let cached = cache.get().await.unwrap();
    let headers = StaticHeadersLayer::new()
        .secret_header("x-key", SECRET.into())
        .unwrap();
    let auth = AuthLayer::new(cache.clone());
    let response = parse_token_response(
        &Response::new(Bytes::from(format!(
            r#"{{"access_token":"{SECRET}","refresh_token":"{SECRET}","expires_in":60}}"#
        ))),
        Instant::now(),
    )
    .unwrap();
    let mut header = cached.header_value().clone();
    header.set_sensitive(true);
    let printed = [
        format!("{cc:?}"),
        format!("{rt:?}"),
        format!("{stored:?}"),
        format!("{store:?}"),
        format!("{token:?}"),
        format!("{basic:?}"),
        format!("{cache:?}"),
        format!("{cached:?}"),
        format!("{headers:?}"),
        format!("{auth:?}"),
        format!("{response:?}"),
        format!("{header:?}"),
        format!("{:?}", secrecy::SecretString::from(SECRET)),
    ];
    for p in &printed {
        assert!(!p.contains(SECRET), "leak: {p}");
        assert!(!p.contains("U1VQRVJTRUNSRVQ"), "base64 leak: {p}");
    }
    assert!(printed[0].contains(models_runtime::redact::REDACTED));
    assert!(cached.header_value().is_sensitive());
}

fn resp(status: u16, body: &str) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .body(Bytes::from(body.to_string()))
        .unwrap()
}

fn invalid(body: &str) -> InvalidTokenResponse {
    match parse_token_response(&resp(200, body), Instant::now()) {
        Err(TokenError::InvalidResponse(e)) => e,
        other => panic!("expected invalid response, got {other:?}"),
    }
}

/// Token response validation says what is wrong.
#[tokio::test(start_paused = true)]
async fn token_response_validation_errors() {
    assert_eq!(
        invalid(r#"{"expires_in":60}"#),
        InvalidTokenResponse::MissingAccessToken
    );
    assert_eq!(
        invalid(r#"{"access_token":"","expires_in":60}"#),
        InvalidTokenResponse::MissingAccessToken
    );
    assert_eq!(
        invalid(r#"{"access_token":"a"}"#),
        InvalidTokenResponse::MissingExpiresIn
    );
    assert_eq!(
        invalid(r#"{"access_token":"a","expires_in":0}"#),
        InvalidTokenResponse::NonPositiveExpiresIn(0)
    );
    assert_eq!(
        invalid(r#"{"access_token":"a","expires_in":-5}"#),
        InvalidTokenResponse::NonPositiveExpiresIn(-5)
    );
    assert_eq!(
        invalid(r#"{"access_token":"a","expires_in":"soon"}"#),
        InvalidTokenResponse::InvalidExpiresIn
    );
    assert_eq!(invalid("not json"), InvalidTokenResponse::NotJson);
    // A string lifetime is accepted.
    assert!(
        parse_token_response(
            &resp(200, r#"{"access_token":"a","expires_in":"60"}"#),
            Instant::now()
        )
        .is_ok()
    );
    // Sent 120 s ago with a 60 s lifetime: already expired on arrival.
    let sent = Instant::now();
    tokio::time::advance(std::time::Duration::from_secs(120)).await;
    let e = parse_token_response(&resp(200, r#"{"access_token":"a","expires_in":60}"#), sent)
        .unwrap_err();
    assert!(matches!(
        e,
        TokenError::InvalidResponse(InvalidTokenResponse::AlreadyExpired)
    ));
    assert!(e.to_string().contains("already expired"), "{e}");
    // Endpoint errors keep the OAuth code and description, never a secret.
    let e = parse_token_response(
        &resp(
            400,
            r#"{"error":"invalid_grant","error_description":"expired"}"#,
        ),
        Instant::now(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, TokenError::Endpoint { status, .. } if *status == StatusCode::BAD_REQUEST)
    );
    assert!(e.is_permanent());
    assert_eq!(
        e.to_string(),
        "token endpoint answered 400 Bad Request: invalid_grant (expired)"
    );
    let mut r = resp(429, "");
    r.headers_mut().insert("retry-after", "20".parse().unwrap());
    let e = parse_token_response(&r, Instant::now()).unwrap_err();
    assert!(matches!(e, TokenError::RateLimited { retry_after: Some(d) } if d.as_secs() == 20));
    assert!(!e.is_permanent());
}

/// A custom source returning an already expired token is rejected by the cache.
#[tokio::test(start_paused = true)]
async fn cache_rejects_expired_token_from_source() {
    struct Expired;
    impl auth_core::TokenSource for Expired {
        fn fetch(&self) -> auth_core::BoxFuture<'_, Result<Token, TokenError>> {
            Box::pin(async { Ok(Token::bearer("x", Some(Instant::now()))) })
        }
    }
    let err = TokenCache::new(Expired).get().await.unwrap_err();
    assert!(matches!(
        err,
        TokenError::InvalidResponse(InvalidTokenResponse::AlreadyExpired)
    ));
}

/// Static credentials render the right header values.
#[tokio::test]
async fn static_credentials_headers() {
    let basic = TokenCache::new(StaticToken::basic("user", "pass".into()))
        .get()
        .await
        .unwrap();
    assert_eq!(basic.header_value(), "Basic dXNlcjpwYXNz");
    let bearer = TokenCache::new(StaticToken::bearer("key".into()))
        .get()
        .await
        .unwrap();
    assert_eq!(bearer.header_value(), "Bearer key");
    let raw = TokenCache::new(StaticToken::raw("staff".into()))
        .get()
        .await
        .unwrap();
    assert_eq!(raw.header_value(), "staff");
}
