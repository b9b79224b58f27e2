//! The one way secrets are hidden wherever something is shown: `Debug` output, logs, request
//! snapshots, saved documents, URLs in `/healthz`.
//!
//! It lives here, in the crate every other crate of the workspace already builds on (auth-core,
//! the sandbox, client-core, the clients and relay), so that they all hide the same keys behind
//! the same [`REDACTED`] marker.
//!
//! ```
//! use models_runtime::redact::{REDACTED, is_secret_key, redact_json, redact_url};
//!
//! assert!(is_secret_key("client_secret") && is_secret_key("apiToken"));
//! assert!(!is_secret_key("token_lifetime_secs"));
//! assert_eq!(
//!     redact_url("https://relay.example/hooks?secret=s3cr3t&page=2"),
//!     format!("https://relay.example/hooks?secret={REDACTED}&page=2")
//! );
//! let shown = redact_json(serde_json::json!({"user": "jane", "password": "hunter2"}));
//! assert_eq!(shown, serde_json::json!({"user": "jane", "password": REDACTED}));
//! ```

use serde_json::Value;

/// What stands in for a secret wherever one would be shown. Lower case and in brackets: the
/// form the committed request snapshots have always shown.
pub const REDACTED: &str = "[redacted]";

/// Whether a key names a secret: a JSON field, a setting, a header, a query or form parameter.
///
/// Compared without case and without separators (`client_secret`, `clientSecret` and
/// `Client-Secret` are one key): anything with `secret`, `password`, `passwd` or `apikey` in it,
/// anything ending in `token` (`access_token`, `apiToken`, `brightpearl-staff-token`) or in
/// `authorization`, and `cookie`/`set-cookie`. Not secret: `token_type`, `token_lifetime_secs`,
/// and `code`, which is ordinary data in JSON (see [`is_secret_param`]).
pub fn is_secret_key(key: &str) -> bool {
    let key: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    ["secret", "password", "passwd", "apikey"]
        .iter()
        .any(|part| key.contains(part))
        || key.ends_with("token")
        || key.ends_with("authorization")
        || key == "cookie"
        || key == "setcookie"
}

/// Whether a query or form parameter carries a secret: [`is_secret_key`], and `code` (an OAuth
/// authorization code, which is sent as a parameter).
pub fn is_secret_param(name: &str) -> bool {
    is_secret_key(name) || name.eq_ignore_ascii_case("code")
}

/// `text` with the value of every secret parameter ([`is_secret_param`]) shown as [`REDACTED`].
///
/// `text` may be a URL, a query string, a form body or any text with URLs in it (a platform's
/// message, a webhook's `uriTemplate`): every `name=value` in it counts, the name running back
/// to the previous `?`, `&` or other non-name character, the value up to the next `&`, `#`,
/// quote or white space. Everything else is kept byte for byte, so a URL stays readable.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // `text[..copied]` is in `out` already.
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find('=') {
        let eq = from + found;
        let name_start = text[..eq]
            .char_indices()
            .rev()
            .find(|(_, c)| !is_name_char(*c))
            .map_or(0, |(at, c)| at + c.len_utf8());
        let value_end = text[eq + 1..]
            .find(is_value_end)
            .map_or(text.len(), |at| eq + 1 + at);
        let name = &text[name_start..eq];
        if name_start >= copied && !name.is_empty() && is_secret_param(&decode(name)) {
            out.push_str(&text[copied..=eq]);
            out.push_str(REDACTED);
            copied = value_end;
            from = value_end;
        } else {
            from = eq + 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// `value` with the value of every secret key ([`is_secret_key`]) shown as [`REDACTED`], at any
/// depth, and secret parameters inside its other strings redacted by [`redact_url`].
///
/// A secret key's object or array is searched rather than hidden whole (its own keys decide),
/// and a `null` stays `null` (it shows that no secret is set).
pub fn redact_json(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let hide = is_secret_key(&key)
                        && !(value.is_object() || value.is_array() || value.is_null());
                    let value = if hide {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact_json(value)
                    };
                    (key, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_json).collect()),
        Value::String(text) => Value::String(redact_url(&text)),
        other => other,
    }
}

/// A character of a parameter name as it appears in a URL or a form (percent-encoded or not).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '%' | '+')
}

/// A character that ends a parameter's value.
fn is_value_end(c: char) -> bool {
    matches!(c, '&' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
}

/// A parameter name as its receiver reads it (`client%5Fsecret` is `client_secret`).
fn decode(name: &str) -> String {
    percent_encoding::percent_decode_str(name)
        .decode_utf8_lossy()
        .replace('+', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_keys() {
        for key in [
            "secret",
            "client_secret",
            "secret_id",
            "clientSecret",
            "X-Relay-Secret",
            "password",
            "Password",
            "passwd",
            "token",
            "access_token",
            "refresh_token",
            "staff_token",
            "apiToken",
            "brightpearl-staff-token",
            "brightpearl-account-token",
            "apiKey",
            "api-key",
            "x_api_key",
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "set-cookie",
        ] {
            assert!(is_secret_key(key), "{key} is a secret key");
        }
        for key in [
            "id",
            "code",
            "Code",
            "token_type",
            "token_lifetime_secs",
            "tokenUrl",
            "name",
            "keyword",
            "statusCode",
        ] {
            assert!(!is_secret_key(key), "{key} is not a secret key");
        }
        assert!(is_secret_param("code") && is_secret_param("Code"));
        assert!(!is_secret_param("zipcode"));
    }

    #[test]
    fn urls_keep_everything_but_secret_values() {
        for (text, shown) in [
            (
                "https://h.example/hooks?secret=s3&page=2",
                "https://h.example/hooks?secret=[redacted]&page=2",
            ),
            (
                "/cb?page=2&access_token=abc#frag",
                "/cb?page=2&access_token=[redacted]#frag",
            ),
            ("https://h.example/x", "https://h.example/x"),
            ("a=1&b=2", "a=1&b=2"),
            (
                "grant_type=authorization_code&code=c0de&client%5Fsecret=s",
                "grant_type=authorization_code&code=[redacted]&client%5Fsecret=[redacted]",
            ),
            (
                "bad uri https://x/?secret=zz and \"secret=yy\"",
                "bad uri https://x/?secret=[redacted] and \"secret=[redacted]\"",
            ),
            ("secret=", "secret=[redacted]"),
            ("x==secret=a", "x==secret=[redacted]"),
            ("${nope}", "${nope}"),
            (
                "zipcode=12345&åsecret=ä",
                "zipcode=12345&åsecret=[redacted]",
            ),
        ] {
            assert_eq!(redact_url(text), shown, "{text}");
        }
    }

    #[test]
    fn json_hides_secret_keys_at_any_depth() {
        let value = json!({
            "uriTemplate": "https://relay.example/hooks?secret=s3cr3t&x=1",
            "rows": [{"apiToken": "t0k3n", "name": "kept", "port": {"password": 5}}],
            "headers": {"X-Relay-Secret": "h"},
            "client_secret": null,
            "token_lifetime_secs": 3600,
            "Code": "ErpStatusText",
        });
        assert_eq!(
            redact_json(value),
            json!({
                "uriTemplate": "https://relay.example/hooks?secret=[redacted]&x=1",
                "rows": [{"apiToken": REDACTED, "name": "kept", "port": {"password": REDACTED}}],
                "headers": {"X-Relay-Secret": REDACTED},
                "client_secret": null,
                "token_lifetime_secs": 3600,
                "Code": "ErpStatusText",
            })
        );
    }
}
