//! Spec drift: successful JSON answers rewritten to differ from the spec the way a real platform
//! might (a field the spec does not have, a field missing, a value of another type), so that a
//! strict-decode report (`conformance::compare`) can be tested against the simulators.
//!
//! Rules come from [`crate::SandboxConfig::drift`] at start, `POST /_sandbox/drift` (or
//! [`Drift::add`] in-process) at run time. Like fault rules they match a method (optional) and a
//! path prefix; each changes one JSON path of the answer body after the handler ran. Only 2xx
//! answers whose content type is JSON are rewritten. No rules (the default): nothing changes.
//!
//! Paths are dotted object keys, `[]` for every element of an array and `[N]` for one element:
//! `value[].extraField`, `response[].id`, `valid`, `[].id` (a top-level array). A path that does
//! not exist in an answer changes nothing (`Extra` creates only the last key, never parents).

use std::sync::Mutex;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::util::lock;

/// One drift rule: where it applies and the one change it makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftRule {
    /// Requests whose path starts with this; empty matches all.
    #[serde(default)]
    pub path_prefix: String,
    /// Only this method (any case), or every method when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// The change to the answer body.
    pub change: DriftChange,
}

/// A change at a JSON path of an answer (`{"kind": "extra" | "remove" | "retype", "path", …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DriftChange {
    /// Adds (or overwrites) the field at `path` with `value`, in every object the path reaches.
    Extra {
        /// Where; the last segment must be a key.
        path: String,
        /// The value to add.
        value: Value,
    },
    /// Removes the field at `path`.
    Remove {
        /// Where; the last segment must be a key.
        path: String,
    },
    /// Turns the value at `path` into another JSON type: to `to` when given, else number →
    /// string (its text), string → number (its value if it is one, else 0), boolean → string,
    /// null → `{}`, object → `[]`, array → `{}`.
    Retype {
        /// Where.
        path: String,
        /// The target type, if not the default one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<JsonKind>,
    },
}

/// A JSON type, as [`DriftChange::Retype`] names its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonKind {
    /// A string (a scalar's text, a container's compact JSON).
    String,
    /// A number (a string's value if it is one, true 1, else 0).
    Number,
    /// A boolean (the value's truthiness).
    Boolean,
    /// An empty object.
    Object,
    /// An empty array.
    Array,
    /// `null`.
    Null,
}

impl DriftChange {
    /// The path the change applies at.
    pub fn path(&self) -> &str {
        match self {
            Self::Extra { path, .. } | Self::Remove { path } | Self::Retype { path, .. } => path,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Each,
    Index(usize),
}

/// Parses `a.b[].c[2]` into segments.
fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    if path.is_empty() {
        return Err("`path` must not be empty".to_owned());
    }
    let mut segments = Vec::new();
    for (i, part) in path.split('.').enumerate() {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if key.contains(']') {
            return Err(format!("`path` {path:?} has a stray bracket"));
        }
        if !key.is_empty() {
            segments.push(Segment::Key(key.to_owned()));
        } else if i > 0 || rest.is_empty() {
            return Err(format!("`path` {path:?} has an empty key"));
        }
        while !rest.is_empty() {
            let end = rest
                .find(']')
                .filter(|_| rest.starts_with('['))
                .ok_or_else(|| format!("`path` {path:?} has an unclosed or stray bracket"))?;
            let inside = &rest[1..end];
            segments.push(if inside.is_empty() {
                Segment::Each
            } else {
                Segment::Index(
                    inside
                        .parse()
                        .map_err(|_| format!("`path` {path:?} has a bad index {inside:?}"))?,
                )
            });
            rest = &rest[end + 1..];
        }
    }
    Ok(segments)
}

/// Checks a rule: its path parses, and `extra`/`remove` end in a key.
fn validate(rule: &DriftRule) -> Result<Vec<Segment>, String> {
    let segments = parse_path(rule.change.path())?;
    let ends_in_key = matches!(segments.last(), Some(Segment::Key(_)));
    if !ends_in_key && !matches!(rule.change, DriftChange::Retype { .. }) {
        return Err(format!(
            "`path` {:?} must end in a key for `extra` and `remove`",
            rule.change.path()
        ));
    }
    Ok(segments)
}

/// Applies `change` at `segments` under `value`.
fn apply_at(value: &mut Value, segments: &[Segment], change: &DriftChange) {
    let Some((first, rest)) = segments.split_first() else {
        if let DriftChange::Retype { to, .. } = change {
            *value = retype(value, *to);
        }
        return;
    };
    if rest.is_empty()
        && let (Segment::Key(key), Value::Object(object)) = (first, &mut *value)
    {
        match change {
            DriftChange::Extra { value, .. } => {
                object.insert(key.clone(), value.clone());
                return;
            }
            DriftChange::Remove { .. } => {
                object.remove(key);
                return;
            }
            DriftChange::Retype { .. } => {}
        }
    }
    match (first, value) {
        (Segment::Key(key), Value::Object(object)) => {
            if let Some(child) = object.get_mut(key) {
                apply_at(child, rest, change);
            }
        }
        (Segment::Each, Value::Array(items)) => {
            for item in items {
                apply_at(item, rest, change);
            }
        }
        (Segment::Index(i), Value::Array(items)) => {
            if let Some(item) = items.get_mut(*i) {
                apply_at(item, rest, change);
            }
        }
        _ => {}
    }
}

/// The value turned into another JSON type.
fn retype(value: &Value, to: Option<JsonKind>) -> Value {
    let to = to.unwrap_or(match value {
        Value::Number(_) | Value::Bool(_) => JsonKind::String,
        Value::String(_) => JsonKind::Number,
        Value::Null | Value::Array(_) => JsonKind::Object,
        Value::Object(_) => JsonKind::Array,
    });
    match to {
        JsonKind::String => Value::String(match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        JsonKind::Number => match value {
            Value::Number(n) => Value::Number(n.clone()),
            Value::String(s) => serde_json::from_str::<serde_json::Number>(s.trim())
                .map_or(Value::from(0), Value::Number),
            Value::Bool(b) => Value::from(u8::from(*b)),
            _ => Value::from(0),
        },
        JsonKind::Boolean => Value::Bool(match value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64() != Some(0.0),
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
        }),
        JsonKind::Object => Value::Object(Map::new()),
        JsonKind::Array => Value::Array(Vec::new()),
        JsonKind::Null => Value::Null,
    }
}

/// The drift rules in force.
#[derive(Debug, Default)]
pub struct Drift {
    rules: Mutex<Vec<(DriftRule, Vec<Segment>)>>,
}

impl Drift {
    /// No rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rules from the configuration; an invalid one is skipped with a warning.
    pub fn with_rules(rules: &[DriftRule]) -> Self {
        let drift = Self::new();
        for rule in rules {
            if let Err(message) = drift.add(rule.clone()) {
                tracing::warn!(%message, "sandbox: drift rule from the configuration skipped");
            }
        }
        drift
    }

    /// Adds a rule after validating its path.
    pub fn add(&self, rule: DriftRule) -> Result<(), String> {
        let segments = validate(&rule)?;
        lock(&self.rules).push((rule, segments));
        Ok(())
    }

    /// The rules in force, in order.
    pub fn rules(&self) -> Vec<DriftRule> {
        lock(&self.rules).iter().map(|(r, _)| r.clone()).collect()
    }

    /// Removes every rule.
    pub fn clear(&self) {
        lock(&self.rules).clear();
    }

    /// The changes (with parsed paths) of the rules matching a request, in order.
    fn matching(&self, method: &str, path: &str) -> Vec<(DriftChange, Vec<Segment>)> {
        lock(&self.rules)
            .iter()
            .filter(|(rule, _)| {
                rule.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                    && path.starts_with(&rule.path_prefix)
            })
            .map(|(rule, segments)| (rule.change.clone(), segments.clone()))
            .collect()
    }

    /// Applies every rule matching `method` and `path` to a JSON body, in order.
    pub fn apply(&self, method: &str, path: &str, body: &mut Value) {
        for (change, segments) in self.matching(method, path) {
            apply_at(body, &segments, &change);
        }
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
}

/// Middleware on every platform route (inside the fault middleware): rewrites successful JSON
/// answers by the matching rules of `drift`. It takes the rules, not the shared state, so that
/// this module stays below [`crate::AppState`] (which holds them).
pub async fn middleware(drift: &Drift, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let changes = drift.matching(&method, &path);
    let response = next.run(request).await;
    if changes.is_empty() || !response.status().is_success() || !is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::debug!(error = %e, "sandbox drift: cannot read the answer body");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    for (change, segments) in &changes {
        apply_at(&mut value, segments, change);
    }
    let rewritten = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(rewritten))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(change: DriftChange) -> DriftRule {
        DriftRule {
            path_prefix: String::new(),
            method: None,
            change,
        }
    }

    #[test]
    fn paths_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_path("value[].lines[2].x").unwrap(),
            vec![
                Segment::Key("value".into()),
                Segment::Each,
                Segment::Key("lines".into()),
                Segment::Index(2),
                Segment::Key("x".into()),
            ]
        );
        assert_eq!(
            parse_path("[].id").unwrap(),
            vec![Segment::Each, Segment::Key("id".into())]
        );
        for bad in ["", "a..b", "a[", "a]b", "a[x]", "a.[]"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
        let drift = Drift::new();
        let err = drift
            .add(rule(DriftChange::Remove {
                path: "value[]".into(),
            }))
            .unwrap_err();
        assert!(err.contains("must end in a key"), "{err}");
    }

    #[test]
    fn changes_apply_at_every_element_and_only_where_the_path_exists() {
        let drift = Drift::new();
        for change in [
            DriftChange::Extra {
                path: "value[].extra".into(),
                value: json!(1),
            },
            DriftChange::Remove {
                path: "value[].gone".into(),
            },
            DriftChange::Retype {
                path: "value[].n".into(),
                to: None,
            },
            DriftChange::Retype {
                path: "value[0].s".into(),
                to: None,
            },
            DriftChange::Extra {
                path: "missing.deep".into(),
                value: json!(1),
            },
        ] {
            drift.add(rule(change)).unwrap();
        }
        let mut body = json!({"value": [{"gone": 1, "n": 2, "s": "x"}, {"n": 1.5, "s": "7"}]});
        drift.apply("GET", "/", &mut body);
        assert_eq!(
            body,
            json!({"value": [{"extra": 1, "n": "2", "s": 0}, {"extra": 1, "n": "1.5", "s": "7"}]})
        );
    }

    #[test]
    fn retype_defaults_and_targets() {
        assert_eq!(retype(&json!("12"), None), json!(12));
        assert_eq!(retype(&json!(true), None), json!("true"));
        assert_eq!(retype(&json!(null), None), json!({}));
        assert_eq!(retype(&json!({"a": 1}), None), json!([]));
        assert_eq!(retype(&json!([1]), None), json!({}));
        assert_eq!(retype(&json!(5), Some(JsonKind::Boolean)), json!(true));
        assert_eq!(
            retype(&json!({"a": 1}), Some(JsonKind::String)),
            json!("{\"a\":1}")
        );
    }

    #[test]
    fn rules_match_method_and_prefix() {
        let drift = Drift::new();
        drift
            .add(DriftRule {
                path_prefix: "/x".into(),
                method: Some("get".into()),
                change: DriftChange::Remove { path: "a".into() },
            })
            .unwrap();
        assert_eq!(drift.matching("GET", "/x/1").len(), 1);
        assert!(drift.matching("POST", "/x/1").is_empty());
        assert!(drift.matching("GET", "/y").is_empty());
    }
}
