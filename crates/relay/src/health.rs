//! Each platform connection's health, for the operator console: token validity, rate budget
//! left, the last throttling answers and errors, read from the clients the flows share
//! ([`platform_health`]). Nothing is fetched and no credential is shown: the clients record
//! only times, counts, error kinds, operation ids, statuses and request ids.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use client_core::{BudgetLeft, HealthSnapshot};
use serde::Serialize;

use crate::flows::FlowContext;
use crate::platform::Platform;

/// One platform connection's health, as of when it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformHealth {
    /// The platform's display name: `Norce`, `nShift` or `Brightpearl`.
    pub platform: &'static str,
    /// Whether the settings configure it (when not, every other field is empty).
    pub configured: bool,
    /// The API base URL calls go to, without user name, password, query or fragment.
    pub base_url: Option<String>,
    /// When the cached access token stops being valid; `None` before the first call and for
    /// credentials that do not expire (nShift's API key, Brightpearl's staff token).
    pub token_valid_until: Option<DateTime<Utc>>,
    /// What is left of the platform's rate budget, in words (`183 of 200 this minute`), when
    /// the client keeps one (Brightpearl).
    pub budget_left: Option<String>,
    /// Calls made since the process started (a call the client retried counts once).
    pub requests: u64,
    /// The last call answered with a success.
    pub last_ok: Option<DateTime<Utc>>,
    /// The last `429 Too Many Requests` answer (also one a retry got past).
    pub last_429: Option<DateTime<Utc>>,
    /// The last `503 Service Unavailable` answer (also one a retry got past; Brightpearl's
    /// throttle).
    pub last_503: Option<DateTime<Utc>>,
    /// The last failed call.
    pub last_error: Option<LastError>,
}

/// The last failed call of a platform connection: enough to quote it to the platform, never a
/// body, a header value or a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    /// When it failed.
    pub at: DateTime<Utc>,
    /// What it means (`transient`, `throttled`, `unauthorized`, `permanent`,
    /// `ambiguous_write`).
    pub kind: &'static str,
    /// The operation id (`GetOrder`, `CreateShipment`, ...).
    pub operation: &'static str,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// The request id the platform sent back, when it sent one.
    pub request_id: Option<String>,
}

/// The health of every platform connection of `ctx`, in report order (Norce, nShift,
/// Brightpearl); a platform without a client is there with `configured: false`.
pub fn platform_health(ctx: &FlowContext) -> Vec<PlatformHealth> {
    let norce = ctx.norce.as_ref().map(|client| {
        let url = public_url(&client.endpoints().services);
        (Some(url), client.health())
    });
    let nshift = ctx.nshift.as_ref().map(|client| {
        let url = reqwest::Url::parse(client.base_url()).ok();
        (url.as_ref().map(public_url), client.health())
    });
    let brightpearl = ctx.brightpearl.as_ref().map(|client| {
        // Unknown until the first token answer names the account's API host.
        let url = client.base_url().ok();
        (url.as_ref().map(public_url), client.health())
    });
    Platform::ALL
        .into_iter()
        .zip([norce, nshift, brightpearl])
        .map(|(platform, health)| match health {
            Some((base_url, snapshot)) => {
                PlatformHealth::from_snapshot(platform, base_url, &snapshot)
            }
            None => PlatformHealth::not_configured(platform),
        })
        .collect()
}

impl PlatformHealth {
    /// A platform the settings do not configure.
    pub fn not_configured(platform: Platform) -> Self {
        Self {
            platform: platform.name(),
            configured: false,
            base_url: None,
            token_valid_until: None,
            budget_left: None,
            requests: 0,
            last_ok: None,
            last_429: None,
            last_503: None,
            last_error: None,
        }
    }

    /// A configured platform whose client says `snapshot`.
    pub fn from_snapshot(
        platform: Platform,
        base_url: Option<String>,
        snapshot: &HealthSnapshot,
    ) -> Self {
        let time = |at: Option<SystemTime>| at.map(DateTime::<Utc>::from);
        Self {
            platform: platform.name(),
            configured: true,
            base_url,
            token_valid_until: time(snapshot.token_valid_until),
            budget_left: snapshot.budget_left.as_ref().map(budget_text),
            requests: snapshot.requests,
            last_ok: time(snapshot.last_ok),
            last_429: time(snapshot.last_429),
            last_503: time(snapshot.last_503),
            last_error: snapshot.last_error.as_ref().map(|e| LastError {
                at: e.at.into(),
                kind: e.kind.as_str(),
                operation: e.operation,
                status: e.status,
                request_id: e.request_id.clone(),
            }),
        }
    }
}

/// `url` as an operator may see it: no user name, password, query or fragment (a query may
/// carry a key).
fn public_url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    // Fails only for URLs that cannot have credentials, which then have none to remove.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// The budget left in words: the platform's own count when an answer told it (`183 of 200 this
/// minute`), else this process's permits; and a pause, when callers wait.
fn budget_text(budget: &BudgetLeft) -> String {
    let mut text = match (budget.server_remaining, budget.server_limit) {
        (Some(remaining), Some((limit, period))) => {
            // A rolling window with no call for a whole period is full again.
            let stale = budget.server_reported_ago.is_some_and(|ago| ago >= period);
            let left = if stale { limit } else { remaining };
            format!("{left} of {limit} {}", per(period))
        }
        (Some(remaining), None) => format!("{remaining} left, as the platform last said"),
        (None, _) => {
            let whose = if budget.shared {
                "in this worker"
            } else {
                "in this process"
            };
            format!(
                "{} of {} requests free at once {whose} (no answer yet)",
                budget.permits_now, budget.burst
            )
        }
    };
    if let Some(paused) = budget.paused_for {
        let seconds = paused.as_secs_f64().ceil();
        text.push_str(&format!("; waiting {seconds} s after a throttle"));
    }
    text
}

/// `this minute`, `per 5 min`, `per 30 s`.
fn per(period: Duration) -> String {
    match period.as_secs() {
        60 => "this minute".to_owned(),
        s if s >= 60 && s.is_multiple_of(60) => format!("per {} min", s / 60),
        s => format!("per {s} s"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use norce_client::models::services::operations::ServicesApi as _;

    use super::*;
    use crate::config::RelayConfig;
    use crate::state::{SqliteStore, Store};

    /// Every platform is listed; none configured says so and shows nothing else.
    #[test]
    fn an_offline_context_lists_three_unconfigured_platforms() {
        let ctx = FlowContext::offline(RelayConfig::default());
        let health = platform_health(&ctx);
        let names: Vec<_> = health.iter().map(|h| h.platform).collect();
        assert_eq!(names, ["Norce", "nShift", "Brightpearl"]);
        for (shown, platform) in health.iter().zip(Platform::ALL) {
            assert_eq!(*shown, PlatformHealth::not_configured(platform));
            assert!(!shown.configured && shown.base_url.is_none() && shown.requests == 0);
        }
    }

    fn budget(remaining: Option<u64>, ago: u64, paused: Option<u64>) -> BudgetLeft {
        let limiter = auth_core::RateLimiter::new(auth_core::presets::brightpearl()).unwrap();
        let mut budget = limiter.budget_left(&auth_core::RateLimitKey::new("k"));
        budget.server_remaining = remaining;
        budget.server_reported_ago = remaining.map(|_| Duration::from_secs(ago));
        budget.paused_for = paused.map(Duration::from_millis);
        budget
    }

    #[test]
    fn the_budget_in_words() {
        assert_eq!(
            budget_text(&budget(Some(183), 5, None)),
            "183 of 200 this minute"
        );
        // A minute without a call: the rolling window is full again.
        assert_eq!(
            budget_text(&budget(Some(3), 61, None)),
            "200 of 200 this minute"
        );
        assert_eq!(
            budget_text(&budget(Some(0), 1, Some(2500))),
            "0 of 200 this minute; waiting 3 s after a throttle"
        );
        assert_eq!(
            budget_text(&budget(None, 0, None)),
            "100 of 100 requests free at once in this process (no answer yet)"
        );
        let mut unknown_limit = budget(Some(7), 1, None);
        unknown_limit.server_limit = None;
        assert_eq!(
            budget_text(&unknown_limit),
            "7 left, as the platform last said"
        );
        assert_eq!(per(Duration::from_secs(300)), "per 5 min");
        assert_eq!(per(Duration::from_secs(30)), "per 30 s");
    }

    #[test]
    fn a_public_url_has_no_credentials() {
        let url = reqwest::Url::parse("https://user:pw@h.example/api/?key=s3cr3t#x").unwrap();
        assert_eq!(public_url(&url), "https://h.example/api/");
    }

    /// Against the embedded sandbox: after a call to each platform, each shows it, Norce its
    /// token's expiry, Brightpearl the budget its answer told; no credential anywhere.
    #[tokio::test]
    async fn the_sandbox_connections_show_their_calls() {
        let (sandbox, settings) = crate::embedded::start().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
        let config = Arc::new(RelayConfig::default());
        let ctx = FlowContext::from_settings(&settings, store, config).unwrap();
        let before = platform_health(&ctx);
        assert!(before.iter().all(|h| h.configured && h.requests == 0));
        assert!(
            before
                .iter()
                .all(|h| h.last_ok.is_none() && h.last_error.is_none())
        );

        let started = Utc::now();
        let norce = ctx.norce().unwrap();
        norce.fetch_token().await.unwrap();
        let order = norce_client::models::services::GetOrderQuery {
            id: "no-such-order".into(),
            ..Default::default()
        };
        let refused = norce.get_order(&order).await.unwrap_err();
        assert_eq!(refused.status(), Some(http::StatusCode::BAD_REQUEST));
        // Through a flow's client (its own budget): the connection's record is one.
        let stock = ctx.for_flow("stock");
        let products = stock
            .brightpearl()
            .unwrap()
            .products(&[1001])
            .await
            .unwrap();
        assert_eq!(products.len(), 1);

        let health = platform_health(&ctx);
        let [norce, nshift, brightpearl] = &health[..] else {
            panic!("{health:?}")
        };
        assert_eq!((norce.requests, norce.last_ok), (1, None));
        let last = norce.last_error.as_ref().unwrap();
        assert_eq!(
            (last.kind, last.operation, last.status),
            ("permanent", "GetOrder", Some(400))
        );
        assert!(last.at >= started);
        // The sandbox's tokens live an hour.
        let valid = norce.token_valid_until.unwrap() - started;
        assert!(valid > chrono::TimeDelta::minutes(59), "{valid}");
        let url = norce.base_url.as_deref().unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert_eq!(nshift.requests, 0);
        assert_eq!(
            (nshift.budget_left.as_deref(), nshift.last_ok),
            (None, None)
        );
        assert_eq!(brightpearl.requests, 1);
        assert!(brightpearl.last_ok >= Some(started));
        assert_eq!(brightpearl.last_error, None);
        // The account's limiter is the process's: another test's answer may be the last.
        let budget = brightpearl.budget_left.as_deref().unwrap();
        assert!(budget.ends_with(" of 200 this minute"), "{budget}");
        let token = brightpearl.token_valid_until;
        assert_eq!(token, None, "a staff token does not expire");

        let shown = format!("{health:?} {}", serde_json::to_string(&health).unwrap());
        let credentials = sandbox.credentials();
        for secret in [
            &credentials.norce.client_secret,
            &credentials.nshift.secret_id,
            &credentials.brightpearl.staff_token,
        ] {
            assert!(!shown.contains(secret.as_str()), "{shown}");
        }
    }
}
