//! Fault injection per route, and a log of every request the platforms received.
//!
//! Rules are set through `POST /_sandbox/faults` (or [`Faults::add`] in-process) and apply to
//! every platform route whose path starts with the rule's `path_prefix` (and method, if given).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::util::lock;

/// One fault rule. Rates are probabilities from 0 to 1, drawn from the sandbox's seeded RNG.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// Requests whose path starts with this (e.g. `/rs-extapi/v1/shipments`); empty matches all.
    pub path_prefix: String,
    /// Only this method (upper case), or every method when absent.
    pub method: Option<String>,
    /// Delay before the request is handled, in milliseconds.
    pub latency_ms: u64,
    /// Share of requests answered with a server error instead of being handled.
    pub error_rate: f64,
    /// Statuses to pick the server error from (default 500, 502, 503).
    pub error_statuses: Vec<u16>,
    /// Share of requests answered 429 with `Retry-After`.
    pub rate_429: f64,
    /// `Retry-After` seconds on injected 429s (default 1).
    pub retry_after_secs: Option<u64>,
    /// Share of requests whose connection is dropped before they are handled.
    pub drop_rate: f64,
    /// Share of requests that are handled (the write happens) but whose response is lost:
    /// the connection drops instead of answering.
    pub commit_then_fail_rate: f64,
    /// Apply to this many more matching requests, then retire (a burst); forever when absent.
    pub remaining: Option<u64>,
}

/// What a rule decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pass,
    Error(u16),
    TooMany(u64),
    Drop,
    CommitThenFail,
}

/// One request the platforms received, as the log keeps it (no headers: no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Sequence number from 1.
    pub seq: u64,
    /// Virtual time of arrival (RFC 3339).
    pub at: String,
    /// Method.
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Status sent, or 0 when the connection was dropped.
    pub status: u16,
    /// The fault injected, if any.
    pub fault: Option<String>,
}

const LOG_CAPACITY: usize = 20_000;

/// The fault rules and the request log.
#[derive(Debug)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    rng: Mutex<fastrand::Rng>,
    log: Mutex<(u64, VecDeque<LoggedRequest>)>,
}

impl Faults {
    /// No rules, RNG seeded for reproducible runs.
    pub fn new(seed: u64) -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            rng: Mutex::new(fastrand::Rng::with_seed(seed ^ 0x5eed_fa17)),
            log: Mutex::new((0, VecDeque::new())),
        }
    }

    /// Adds a rule after validating it.
    pub fn add(&self, rule: FaultRule) -> Result<(), String> {
        for (name, rate) in [
            ("error_rate", rule.error_rate),
            ("rate_429", rule.rate_429),
            ("drop_rate", rule.drop_rate),
            ("commit_then_fail_rate", rule.commit_then_fail_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("`{name}` must be between 0 and 1, got {rate}"));
            }
        }
        if let Some(bad) = rule
            .error_statuses
            .iter()
            .find(|s| !(400..=599).contains(*s))
        {
            return Err(format!("`error_statuses` must be 4xx or 5xx, got {bad}"));
        }
        lock(&self.rules).push(rule);
        Ok(())
    }

    /// The rules in force.
    pub fn rules(&self) -> Vec<FaultRule> {
        lock(&self.rules).clone()
    }

    /// Removes every rule.
    pub fn clear(&self) {
        lock(&self.rules).clear();
    }

    /// The logged requests (oldest first; the last 20,000 are kept).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.log).1.iter().cloned().collect()
    }

    /// The logged requests whose sequence number is above `seq`, oldest first: a reader that
    /// follows the log as it grows (passing the last `seq` it saw) counts every request without
    /// copying the whole log each time. Requests the log no longer keeps are missing; the first
    /// one returned then has a `seq` above `seq + 1`.
    pub fn requests_after(&self, seq: u64) -> Vec<LoggedRequest> {
        let log = lock(&self.log);
        let newer = log.1.iter().rev().take_while(|r| r.seq > seq).count();
        log.1.iter().skip(log.1.len() - newer).cloned().collect()
    }

    /// Every request received since start, including those the log no longer keeps.
    pub fn total_requests(&self) -> u64 {
        lock(&self.log).0
    }

    /// Empties the request log (the total keeps counting).
    pub fn clear_requests(&self) {
        lock(&self.log).1.clear();
    }

    /// Number of logged requests matching a method and path prefix.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        lock(&self.log)
            .1
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .count()
    }

    fn record(&self, at: String, method: &str, path: &str, status: u16, fault: Option<&str>) {
        let mut log = lock(&self.log);
        log.0 += 1;
        let seq = log.0;
        if log.1.len() == LOG_CAPACITY {
            log.1.pop_front();
        }
        log.1.push_back(LoggedRequest {
            seq,
            at,
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            fault: fault.map(str::to_owned),
        });
    }

    /// Picks the latency and outcome for one request, consuming burst budgets.
    fn decide(&self, method: &str, path: &str) -> (Duration, Outcome) {
        let mut rules = lock(&self.rules);
        let mut rng = lock(&self.rng);
        let mut latency = Duration::ZERO;
        let mut outcome = Outcome::Pass;
        for rule in rules.iter_mut() {
            let method_matches = rule
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method));
            if !method_matches || !path.starts_with(&rule.path_prefix) || rule.remaining == Some(0)
            {
                continue;
            }
            // A rule is used up only when it takes effect: a request another rule already
            // failed does not count against this rule's burst.
            if outcome != Outcome::Pass && rule.latency_ms == 0 {
                continue;
            }
            if let Some(remaining) = rule.remaining.as_mut() {
                *remaining -= 1;
            }
            latency += Duration::from_millis(rule.latency_ms);
            if outcome != Outcome::Pass {
                continue;
            }
            if rng.f64() < rule.drop_rate {
                outcome = Outcome::Drop;
            } else if rng.f64() < rule.error_rate {
                let statuses = if rule.error_statuses.is_empty() {
                    &[500, 502, 503][..]
                } else {
                    &rule.error_statuses
                };
                outcome = Outcome::Error(statuses[rng.usize(..statuses.len())]);
            } else if rng.f64() < rule.rate_429 {
                outcome = Outcome::TooMany(rule.retry_after_secs.unwrap_or(1));
            } else if rng.f64() < rule.commit_then_fail_rate {
                outcome = Outcome::CommitThenFail;
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        (latency, outcome)
    }
}

/// A response whose body fails at once: hyper aborts the connection, so the client sees a
/// transport error with no status, as when a connection drops.
fn dropped_connection() -> Response {
    let stream = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "sandbox fault: connection dropped",
        ))
    });
    let mut response = Response::new(Body::from_stream(stream));
    // A length the body never delivers makes sure no client takes the response as complete.
    response
        .headers_mut()
        .insert("content-length", HeaderValue::from_static("64"));
    response
}

/// Middleware on every platform route: applies the rules of `faults` and logs the request at
/// `clock`'s time. It takes the parts of the shared state it needs, not the state itself, so
/// that this module stays below [`crate::AppState`] (which holds it).
pub async fn middleware(faults: &Faults, clock: &Clock, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let at = clock.now().to_rfc3339();
    let (latency, outcome) = faults.decide(&method, &path);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (response, status, fault) = match outcome {
        Outcome::Pass => {
            let response = next.run(request).await;
            let status = response.status().as_u16();
            (response, status, None)
        }
        Outcome::Error(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = serde_json::json!({"message": format!("sandbox fault: injected {code}")});
            (
                (status, axum::Json(body)).into_response(),
                code,
                Some("error"),
            )
        }
        Outcome::TooMany(secs) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                "sandbox fault: too many requests",
            )
                .into_response();
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
            (response, 429, Some("429"))
        }
        Outcome::Drop => (dropped_connection(), 0, Some("drop")),
        Outcome::CommitThenFail => {
            // The handler runs (the write happens); its response is thrown away.
            drop(next.run(request).await);
            (dropped_connection(), 0, Some("commit_then_fail"))
        }
    };
    faults.record(at, &method, &path, status, fault);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_after_follows_the_log() {
        let faults = Faults::new(1);
        for path in ["/a", "/b", "/c"] {
            faults.record(String::new(), "GET", path, 200, None);
        }
        let paths = |after| -> Vec<String> {
            faults
                .requests_after(after)
                .into_iter()
                .map(|r| r.path)
                .collect()
        };
        assert_eq!(paths(0), ["/a", "/b", "/c"]);
        assert_eq!(paths(2), ["/c"]);
        assert!(paths(3).is_empty());
    }

    #[test]
    fn bursts_retire_after_their_count() {
        let faults = Faults::new(1);
        faults
            .add(FaultRule {
                path_prefix: "/x".into(),
                rate_429: 1.0,
                remaining: Some(2),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(faults.decide("GET", "/x/1").1, Outcome::TooMany(1));
        assert_eq!(faults.decide("GET", "/y").1, Outcome::Pass);
        assert_eq!(faults.decide("POST", "/x/2").1, Outcome::TooMany(1));
        assert_eq!(faults.decide("GET", "/x/3").1, Outcome::Pass);
        assert!(faults.rules().is_empty());
    }

    #[test]
    fn a_burst_is_not_spent_on_requests_another_rule_failed() {
        let faults = Faults::new(1);
        faults
            .add(FaultRule {
                error_rate: 1.0,
                error_statuses: vec![503],
                remaining: Some(1),
                ..Default::default()
            })
            .unwrap();
        faults
            .add(FaultRule {
                rate_429: 1.0,
                remaining: Some(2),
                ..Default::default()
            })
            .unwrap();
        let outcomes: Vec<_> = (0..4).map(|_| faults.decide("GET", "/").1).collect();
        assert_eq!(
            outcomes,
            vec![
                Outcome::Error(503),
                Outcome::TooMany(1),
                Outcome::TooMany(1),
                Outcome::Pass
            ]
        );
    }

    #[test]
    fn rates_follow_the_seeded_rng() {
        let faults = Faults::new(7);
        faults
            .add(FaultRule {
                error_rate: 0.5,
                error_statuses: vec![503],
                ..Default::default()
            })
            .unwrap();
        let errors = (0..1000)
            .filter(|_| faults.decide("GET", "/").1 == Outcome::Error(503))
            .count();
        assert!((400..600).contains(&errors), "{errors}");
    }

    #[test]
    fn invalid_rules_are_refused_naming_the_field() {
        let faults = Faults::new(1);
        let err = faults
            .add(FaultRule {
                drop_rate: 2.0,
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.contains("drop_rate"));
        let err = faults
            .add(FaultRule {
                error_statuses: vec![200],
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.contains("error_statuses"));
    }
}
