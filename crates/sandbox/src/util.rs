//! Small helpers shared by the simulators.

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use models_runtime::redact::redact_json;

/// Locks a mutex, recovering the data if a handler panicked while holding it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A case-insensitive header lookup for the generated `*Headers::from_lookup`.
pub fn header_lookup<'a>(headers: &'a HeaderMap) -> impl Fn(&str) -> Option<&'a str> + 'a {
    move |name| headers.get(name).and_then(|v| v.to_str().ok())
}

/// Fallback for paths no simulator serves.
pub async fn not_found(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("sandbox: no route for {}", uri.path()),
    )
        .into_response()
}

/// `Debug` for a serializable settings or credentials value: its fields as JSON, every secret
/// one ([`models_runtime::redact::is_secret_key`]) shown as the one redaction marker (the demo
/// credentials are public, but printed state must not teach anyone to print secrets).
pub(crate) fn fmt_redacted<T: serde::Serialize>(
    name: &str,
    value: &T,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    match serde_json::to_value(value) {
        Ok(json) => write!(f, "{name} {}", redact_json(json)),
        Err(_) => write!(f, "{name} {{ .. }}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_debug_hides_secrets() {
        let config = crate::SandboxConfig::default();
        let shown = format!("{config:?}");
        for secret in [
            &config.norce.client_secret,
            &config.nshift.secret_id,
            &config.brightpearl.client_secret,
            &config.brightpearl.staff_token,
        ] {
            assert!(!shown.contains(secret.as_str()), "{secret} shown: {shown}");
        }
        assert!(
            shown.contains(&config.norce.client_id) && shown.contains("token_lifetime_secs"),
            "{shown}"
        );
        let credentials = crate::norce::credentials(&config.norce, "http://127.0.0.1:1");
        assert!(!format!("{credentials:?}").contains(config.norce.client_secret.as_str()));
    }
}
