//! A serializable, redacted view of a request, for insta snapshots of what a client sends.

use models_runtime::redact::{REDACTED, is_secret_key, is_secret_param, redact_json, redact_url};
use serde::Serialize;

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

impl RequestSnapshot {
    /// Captures `request`, hiding secrets as [`models_runtime::redact`] does everywhere: secret
    /// headers (and any header marked sensitive), query pairs and form fields whose names are
    /// secret ([`is_secret_param`]), JSON fields whose keys are ([`is_secret_key`]), and secret
    /// parameters inside any other text, query value or form value (a URI carrying a shared
    /// secret).
    pub fn of(request: &http::Request<bytes::Bytes>) -> Self {
        let uri = request.uri();
        let query = uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| {
                        let v = if is_secret_param(&k) {
                            REDACTED.to_owned()
                        } else {
                            redact_url(&v)
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
                let secret = value.is_sensitive() || is_secret_key(name.as_str());
                let value = if secret {
                    REDACTED.to_owned()
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
                let secret = is_secret_param(&k);
                (
                    k.into_owned(),
                    serde_json::Value::String(if secret {
                        REDACTED.to_owned()
                    } else {
                        redact_url(&v)
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
