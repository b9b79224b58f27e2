//! A serializable, redacted view of a request, for insta snapshots of what a client sends.

use serde::Serialize;

/// Header names whose values are replaced by `[redacted]`.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "brightpearl-staff-token",
    "brightpearl-account-token",
    "cookie",
];

/// Method, path, query, headers (sorted, secrets redacted) and body of one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestSnapshot {
    /// HTTP method.
    pub method: String,
    /// Path without host.
    pub path: String,
    /// Query pairs in order.
    pub query: Vec<(String, String)>,
    /// Headers sorted by name; secret values redacted.
    pub headers: Vec<(String, String)>,
    /// JSON body, form pairs as an object, or text.
    pub body: serde_json::Value,
}

/// Whether a key names a secret: `*secret*`, `*token*`, `*password*`, and in forms and queries
/// also `code` (an OAuth authorization code; in JSON bodies `Code` is ordinary data).
pub(crate) fn secret_key(key: &str, form: bool) -> bool {
    let key = key.to_ascii_lowercase();
    ["secret", "token", "password"]
        .iter()
        .any(|s| key.contains(s))
        || (form && key == "code")
}

/// `text` with the value of every `secret=` parameter in it (a URI with a shared secret, such as
/// a webhook's `uriTemplate`) replaced by `[redacted]`.
pub(crate) fn redact_secret_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("secret=") {
        let value_start = at + "secret=".len();
        out.push_str(&rest[..value_start]);
        out.push_str("[redacted]");
        let value_len = rest[value_start..]
            .find(['&', '#', '"', ' '])
            .unwrap_or(rest.len() - value_start);
        rest = &rest[value_start + value_len..];
    }
    out.push_str(rest);
    out
}

/// `value` with secret-looking keys' values and `secret=` parameters redacted, recursively.
fn redact_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v =
                        if secret_key(&k, false) && !v.is_object() && !v.is_array() && !v.is_null()
                        {
                            Value::String("[redacted]".into())
                        } else {
                            redact_json(v)
                        };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_json).collect()),
        Value::String(text) => Value::String(redact_secret_params(&text)),
        other => other,
    }
}

impl RequestSnapshot {
    /// Captures `request`. Query pairs, form fields and JSON fields whose keys look secret
    /// (`*secret*`, `*token*`, `*password*`; `code` in forms and queries) are redacted too, and so
    /// is the value of any `secret=` parameter inside a text, a query value or a form value (a
    /// URI carrying a shared secret).
    pub fn of(request: &http::Request<bytes::Bytes>) -> Self {
        let uri = request.uri();
        let query = uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| {
                        let v = if secret_key(&k, true) {
                            "[redacted]".to_owned()
                        } else {
                            redact_secret_params(&v)
                        };
                        (k.into_owned(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                let secret = value.is_sensitive() || SECRET_HEADERS.contains(&name.as_str());
                let value = if secret {
                    "[redacted]".to_owned()
                } else {
                    value.to_str().unwrap_or("[binary]").to_owned()
                };
                (name.as_str().to_owned(), value)
            })
            .collect();
        headers.sort();
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let raw = request.body();
        let body = if raw.is_empty() {
            serde_json::Value::Null
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let pairs = url::form_urlencoded::parse(raw).map(|(k, v)| {
                let secret = secret_key(&k, true);
                (
                    k.into_owned(),
                    serde_json::Value::String(if secret {
                        "[redacted]".into()
                    } else {
                        redact_secret_params(&v)
                    }),
                )
            });
            serde_json::Value::Object(pairs.collect())
        } else {
            redact_json(serde_json::from_slice(raw).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(raw).into_owned())
            }))
        };
        Self {
            method: request.method().as_str().to_owned(),
            path: uri.path().to_owned(),
            query,
            headers,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secret_headers_and_form_fields() {
        let mut request = http::Request::post("https://h.example/token?x=1")
            .header("authorization", "Bearer abc")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(bytes::Bytes::from_static(b"grant_type=client_credentials&client_id=id&client_secret=s3cr3t&redirect_uri=https%3A%2F%2Fr.example%2F%3Fsecret%3Df0rm"))
            .unwrap();
        let mut sensitive = http::HeaderValue::from_static("hidden");
        sensitive.set_sensitive(true);
        request.headers_mut().insert("x-custom", sensitive);
        let snap = RequestSnapshot::of(&request);
        let text = serde_json::to_string(&snap).unwrap();
        for secret in ["abc", "s3cr3t", "hidden", "f0rm"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(snap.query, vec![("x".to_owned(), "1".to_owned())]);
        assert_eq!(snap.body["client_id"], "id");
    }

    #[test]
    fn redacts_secret_json_fields_query_pairs_and_uri_secrets() {
        let body = serde_json::json!({
            "uriTemplate": "https://relay.example/brightpearl/webhooks?secret=s3cr3t&x=1",
            "rows": [{"apiToken": "t0k3n", "name": "kept"}],
            "note": "see ?secret=hidden",
            "statusCode": 4,
            "Code": "ErpStatusText",
        });
        let request = http::Request::put(
            "https://h.example/hook?secret=q5ecret&page=2&next=%2Fcb%3Fsecret%3Dn3xt",
        )
        .header("content-type", "application/json")
        .body(bytes::Bytes::from(body.to_string()))
        .unwrap();
        let snap = RequestSnapshot::of(&request);
        let text = serde_json::to_string(&snap).unwrap();
        for secret in ["s3cr3t", "t0k3n", "hidden", "q5ecret", "n3xt"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(
            snap.body["uriTemplate"],
            "https://relay.example/brightpearl/webhooks?secret=[redacted]&x=1"
        );
        assert_eq!(snap.body["rows"][0]["name"], "kept");
        assert_eq!(
            (&snap.body["statusCode"], &snap.body["Code"]),
            (&serde_json::json!(4), &serde_json::json!("ErpStatusText"))
        );
        assert_eq!(
            snap.query[..2],
            [
                ("secret".to_owned(), "[redacted]".to_owned()),
                ("page".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(
            snap.query[2],
            ("next".to_owned(), "/cb?secret=[redacted]".to_owned())
        );
    }
}
