//! [`ErrorKind`]: the one classification of a failed call that retries and relay share.

/// What a failed call means for whoever decides what to do next: the same five answers for
/// every platform, so the retry layer, the flows and the operator see one vocabulary.
///
/// Each client's error type answers `kind()`; relay derives its per-item decision (retry
/// later, dead-letter, wait, skip) from it alone. It serializes as [`as_str`](Self::as_str) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Trying again later, unchanged, may succeed: a connection that failed before sending,
    /// a 5xx or a timeout of a call that is safe to repeat.
    Transient,
    /// The platform (or our own limiter) asked us to slow down: wait, then try again.
    Throttled,
    /// The credentials were refused or have expired: an operator must fix or re-authorise
    /// them; trying again unchanged will fail the same way.
    Unauthorized,
    /// Will fail again the same way: a refused input, a missing or malformed setting, an
    /// answer that does not decode. Someone must change something first.
    Permanent,
    /// A write that may or may not have been carried out (sent, then a timeout, a broken
    /// connection or a 5xx): find out what happened before sending it again.
    AmbiguousWrite,
}

impl ErrorKind {
    /// Whether a later attempt of the same call may succeed without anyone changing anything
    /// ([`Transient`](Self::Transient) and [`Throttled`](Self::Throttled)).
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::Throttled)
    }

    /// A short lower-case name for logs, metrics and the state store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Throttled => "throttled",
            Self::Unauthorized => "unauthorized",
            Self::Permanent => "permanent",
            Self::AmbiguousWrite => "ambiguous_write",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
