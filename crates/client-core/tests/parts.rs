//! The transport and settings, through the public API.

use std::time::Duration;

use auth_core::{Error, ExposeSecret};
use bytes::Bytes;
use client_core::{ReqwestTransport, Settings, base_url, is_timeout};
use http::Response;
use tower::ServiceExt as _;

#[test]
fn base_url_rules() {
    assert_eq!(
        base_url("X", "https://a.example/api/").unwrap().as_str(),
        "https://a.example/api"
    );
    assert!(base_url("X", "http://localhost:1/").is_ok());
    assert!(base_url("X", "http://[::1]:1").is_ok());
    for secret in [
        "https://user:hunter2@a.example/api",
        "https://hunter2@a.example",
        "http://u:hunter2@[bad",
    ] {
        let err = base_url("NORCE_BASE_URL", secret).unwrap_err().to_string();
        assert!(
            err.contains("NORCE_BASE_URL") && !err.contains("hunter2"),
            "{err}"
        );
    }
    for bad in [
        "http://10.0.0.1",
        "ftp://a.example",
        "not a url",
        "https://a.example/?q=1",
    ] {
        let err = base_url("NORCE_BASE_URL", bad).unwrap_err();
        assert_eq!(err.setting(), "NORCE_BASE_URL", "{bad}");
    }
}

#[test]
fn parse_names_the_setting_and_value() {
    let settings = Settings::from_pairs([("NORCE_APPLICATION_ID", "abc")]);
    let err = settings
        .parse::<u32>("NORCE_APPLICATION_ID", "a number")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`NORCE_APPLICATION_ID` is invalid: `abc` is not a number"),
        "{err}"
    );
    assert_eq!(settings.parse::<u32>("OTHER", "a number").unwrap(), None);
}

#[test]
fn secrets_from_value_or_file_and_never_echoed() {
    let dir = std::env::temp_dir().join(format!("client-core-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("secret");
    std::fs::write(&path, "from-file\n").unwrap();
    let settings = Settings::from_pairs([("A", "inline"), ("B_FILE", path.to_str().unwrap())]);
    assert_eq!(settings.secret("A", "h").unwrap().expose_secret(), "inline");
    assert_eq!(
        settings.secret("B", "h").unwrap().expose_secret(),
        "from-file"
    );
    let err = settings.secret("C", "set the secret").unwrap_err();
    assert!(
        err.to_string()
            .contains("`C` is not set: set the secret (or set `C_FILE`"),
        "{err}"
    );
    assert!(!format!("{settings:?}").contains("inline"));
    assert_eq!(
        settings
            .optional_secret("B")
            .unwrap()
            .unwrap()
            .expose_secret(),
        "from-file"
    );
    assert!(settings.optional_secret("C").unwrap().is_none());
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let settings = Settings::from_pairs([("D_FILE", empty.to_str().unwrap())]);
    assert_eq!(
        settings.optional_secret("D").unwrap_err().setting(),
        "D_FILE"
    );
}

#[test]
fn seconds_have_a_minimum() {
    let settings = Settings::from_pairs([("T", "0"), ("U", "90"), ("V", "soon")]);
    assert_eq!(
        settings.seconds("T", 1).unwrap_err().to_string(),
        "`T` is invalid: must be at least 1"
    );
    assert_eq!(
        settings.seconds("U", 60).unwrap(),
        Some(Duration::from_secs(90))
    );
    assert_eq!(settings.seconds("W", 1).unwrap(), None);
    assert!(
        settings
            .seconds("V", 1)
            .unwrap_err()
            .to_string()
            .contains("`soon` is not a whole number of seconds")
    );
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let request = http::Request::get(format!("http://127.0.0.1:{port}/hook?secret=s3cr3t"))
        .body(Bytes::new())
        .unwrap();
    let err = ReqwestTransport::new(Duration::from_secs(5))
        .unwrap()
        .oneshot(request)
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err}");
    // The message keeps the address but never the query.
    let shown = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
    assert!(
        shown.contains(&format!("127.0.0.1:{port}/hook")) && !shown.contains("s3cr3t"),
        "{shown}"
    );
}

#[test]
fn timeouts_are_found_in_the_error_chain() {
    let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
    assert!(is_timeout(&Error::transport(io)));
    assert!(is_timeout(&Error::connect(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "slow"
    ))));
    assert!(!is_timeout(&Error::transport(std::io::Error::other(
        "reset"
    ))));
    assert!(!is_timeout(&Error::Unauthorized {
        response: Box::new(Response::new(Bytes::new()))
    }));
}

#[tokio::test]
async fn reqwest_timeout_is_a_timeout() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Accept and read, never answer.
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = socket.read(&mut buf).await;
        std::future::pending::<()>().await;
    });
    let request = http::Request::get(format!("http://{addr}/"))
        .body(Bytes::new())
        .unwrap();
    let err = ReqwestTransport::new(Duration::from_millis(200))
        .unwrap()
        .oneshot(request)
        .await
        .unwrap_err();
    assert!(is_timeout(&err), "{err}");
}

#[tokio::test]
async fn round_trips_status_headers_and_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = socket.read(&mut buf).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 418 I'm a teapot\r\nx-request-id: abc\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
            .await
            .unwrap();
    });
    let request = http::Request::post(format!("http://{addr}/x"))
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    let response = ReqwestTransport::new(Duration::from_secs(5))
        .unwrap()
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), 418);
    assert_eq!(response.headers()["x-request-id"], "abc");
    assert_eq!(response.body().as_ref(), b"hello");
}

#[test]
fn flags_and_common_options_from_settings() {
    let settings = Settings::from_pairs([
        ("ON", "Yes"),
        ("OFF", "0"),
        ("BAD", "maybe"),
        ("TIMEOUT_SECS", "5"),
        ("ZERO_SECS", "0"),
    ]);
    assert!(settings.flag("ON").unwrap());
    assert!(!settings.flag("OFF").unwrap() && !settings.flag("UNSET").unwrap());
    let err = settings.flag("BAD").unwrap_err().to_string();
    assert!(err.contains("`BAD`") && err.contains("maybe"), "{err}");

    let common = client_core::CommonOptions::from_settings(&settings, "TIMEOUT_SECS").unwrap();
    assert_eq!(common.timeout, Some(Duration::from_secs(5)));
    let err = client_core::CommonOptions::from_settings(&settings, "ZERO_SECS").unwrap_err();
    assert_eq!(err.setting(), "ZERO_SECS");
    let custom = client_core::CommonOptions {
        transport: Some(client_core::BoxTransport::new(
            ReqwestTransport::new(Duration::from_secs(1)).unwrap(),
        )),
        ..common
    };
    assert!(format!("{custom:?}").contains("custom_transport: true"));
}

/// `Debug` of the common options tells only whether a shared state is set, never what it holds.
#[tokio::test]
async fn debug_shows_only_whether_a_shared_state_is_set() {
    use auth_core::{MemorySharedAuthState, SharedAuthState as _, SharedToken};
    let state = std::sync::Arc::new(MemorySharedAuthState::new());
    let token = SharedToken::new("s3cr3t-token".into(), None);
    state.save_token("t", &token).await.unwrap();
    let options = client_core::CommonOptions {
        shared: Some(state),
        ..client_core::CommonOptions::default()
    };
    let rendered = format!("{options:?}");
    assert!(rendered.contains("shared_auth_state: true"), "{rendered}");
    assert!(!rendered.contains("s3cr3t"), "{rendered}");
    let unset = format!("{:?}", client_core::CommonOptions::default());
    assert!(unset.contains("shared_auth_state: false"), "{unset}");
}
