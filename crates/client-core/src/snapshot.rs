//! A serializable, redacted view of a request, for insta snapshots of what a client sends.

use serde::Serialize;

/// Header names whose values are replaced by `[redacted]`.
const SECRET_HEADERS: &[&str] = &["authorization", "brightpearl-staff-token", "brightpearl-account-token", "cookie"];

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
    /// Captures `request`. Form bodies whose keys look secret (`*secret*`, `*token*`, `password`,
    /// `code`) are redacted too.
    pub fn of(request: &http::Request<bytes::Bytes>) -> Self {
        let uri = request.uri();
        let query = uri
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
            .unwrap_or_default();
        let mut headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                let secret = value.is_sensitive() || SECRET_HEADERS.contains(&name.as_str());
                let value = if secret { "[redacted]".to_owned() } else { value.to_str().unwrap_or("[binary]").to_owned() };
                (name.as_str().to_owned(), value)
            })
            .collect();
        headers.sort();
        let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let raw = request.body();
        let body = if raw.is_empty() {
            serde_json::Value::Null
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            let pairs = url::form_urlencoded::parse(raw).map(|(k, v)| {
                let key = k.to_ascii_lowercase();
                let secret = ["secret", "token", "password"].iter().any(|s| key.contains(s)) || key == "code";
                (k.into_owned(), serde_json::Value::String(if secret { "[redacted]".into() } else { v.into_owned() }))
            });
            serde_json::Value::Object(pairs.collect())
        } else {
            serde_json::from_slice(raw).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(raw).into_owned()))
        };
        Self { method: request.method().as_str().to_owned(), path: uri.path().to_owned(), query, headers, body }
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
            .body(bytes::Bytes::from_static(b"grant_type=client_credentials&client_id=id&client_secret=s3cr3t"))
            .unwrap();
        let mut sensitive = http::HeaderValue::from_static("hidden");
        sensitive.set_sensitive(true);
        request.headers_mut().insert("x-custom", sensitive);
        let snap = RequestSnapshot::of(&request);
        let text = serde_json::to_string(&snap).unwrap();
        for secret in ["abc", "s3cr3t", "hidden"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(snap.query, vec![("x".to_owned(), "1".to_owned())]);
        assert_eq!(snap.body["client_id"], "id");
    }
}
