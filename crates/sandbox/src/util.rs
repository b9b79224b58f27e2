//! Small helpers shared by the simulators.

use std::fmt;
use std::sync::{Mutex, MutexGuard};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

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

/// Whether a settings key names a secret (`client_secret`, `secret_id`, `password`,
/// `staff_token`); `token_lifetime_secs` and the like are not.
fn secret_key(key: &str) -> bool {
    key.contains("secret") || key.contains("password") || key == "token" || key.ends_with("_token")
}

fn redact(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if secret_key(&k) && v.is_string() {
                        Value::String("<redacted>".into())
                    } else {
                        redact(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

/// `Debug` for a serializable settings or credentials value: its fields as JSON, every secret
/// one shown as `<redacted>` (the demo credentials are public, but printed state must not teach
/// anyone to print secrets).
pub(crate) fn fmt_redacted<T: serde::Serialize>(
    name: &str,
    value: &T,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    match serde_json::to_value(value) {
        Ok(json) => write!(f, "{name} {}", redact(json)),
        Err(_) => write!(f, "{name} {{ .. }}"),
    }
}

/// Replaces the value of every query parameter of `url` by `REDACTED` (a URL may carry a shared
/// secret in its query); an unparsable URL is shown as `<invalid url>`.
pub(crate) fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let names: Vec<String> = parsed.query_pairs().map(|(k, _)| k.into_owned()).collect();
            if names.is_empty() {
                return parsed.to_string();
            }
            parsed
                .query_pairs_mut()
                .clear()
                .extend_pairs(names.iter().map(|n| (n.as_str(), "REDACTED")));
            parsed.to_string()
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_debug_hides_secrets_and_urls_hide_query_values() {
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
        assert_eq!(
            super::redacted_url("http://h/x?secret=s&a=1"),
            "http://h/x?secret=REDACTED&a=REDACTED"
        );
        assert_eq!(super::redacted_url("http://h/x"), "http://h/x");
    }
}
