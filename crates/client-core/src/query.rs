//! Query strings from the generated `*Query` types.

use serde::Serialize;

/// The query pairs of a serializable parameter struct: absent (`null`) fields left out,
/// strings as they are, anything else as its JSON text; in the order of its JSON object
/// (sorted by name). A value that is not an object (`()`) has no pairs.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Q { id: i32, format: Option<&'static str>, name: &'static str }
/// let pairs = client_core::query_pairs(&Q { id: 7, format: None, name: "a b" }).unwrap();
/// assert_eq!(pairs, [("id".to_owned(), "7".to_owned()), ("name".to_owned(), "a b".to_owned())]);
/// assert!(client_core::query_pairs(&()).unwrap().is_empty());
/// ```
pub fn query_pairs<Q: Serialize + ?Sized>(
    query: &Q,
) -> Result<Vec<(String, String)>, serde_json::Error> {
    let serde_json::Value::Object(map) = serde_json::to_value(query)? else {
        return Ok(Vec::new());
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect())
}

/// Appends `pairs` to the query of `url`, form-encoded; no pairs leaves the URL as it is
/// (no stray `?`).
///
/// ```
/// let mut url = reqwest::Url::parse("https://h.example/p").unwrap();
/// client_core::append_query(&mut url, &[]);
/// assert_eq!(url.as_str(), "https://h.example/p");
/// client_core::append_query(&mut url, &[("q".to_owned(), "a&b".to_owned())]);
/// assert_eq!(url.as_str(), "https://h.example/p?q=a%26b");
/// ```
pub fn append_query(url: &mut reqwest::Url, pairs: &[(String, String)]) {
    if !pairs.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
}
