//! Small helpers shared by the simulators.
#![allow(dead_code)] // header_lookup is used by the platform simulators as they grow.

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
    (StatusCode::NOT_FOUND, format!("sandbox: no route for {}", uri.path())).into_response()
}
