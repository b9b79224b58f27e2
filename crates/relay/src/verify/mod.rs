//! `relay verify`: one authenticated call per configured platform, reported as a table;
//! [`deep`] (`--deep`): every read-only operation the flows use, decoded strictly.

pub mod deep;

use std::future::Future;
use std::time::{Duration, Instant};

use brightpearl_client::NothingFound as _;
use brightpearl_client::models::product::{ListPriceListsPath, operations::ProductApi as _};
use client_core::Settings;
use serde::Serialize;

pub use crate::platform::{Platform, configured_platforms};

/// The outcome of one platform's check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// Which platform.
    pub platform: Platform,
    /// The endpoint that was called (or the setting that stopped the check).
    pub endpoint: String,
    /// Whether the platform accepted our credentials.
    pub authenticated: bool,
    /// Whether the whole check passed.
    pub ok: bool,
    /// Time the check took, in milliseconds.
    pub latency_ms: u64,
    /// What was found (on success) or what to do (on failure).
    pub advice: String,
}

/// What a platform check reports before timing is added.
struct Outcome {
    endpoint: String,
    authenticated: bool,
    result: Result<String, String>,
}

impl Outcome {
    /// The settings stopped the check before any call.
    fn settings(hint: String) -> Self {
        Self {
            endpoint: "(settings)".into(),
            authenticated: false,
            result: Err(hint),
        }
    }

    /// The call to `endpoint` failed; only a 401 means the credentials were refused.
    fn failed<S: Into<u16>>(endpoint: String, status: Option<S>, hint: String) -> Self {
        Self {
            endpoint,
            authenticated: !is_401(status),
            result: Err(hint),
        }
    }
}

async fn timed(
    platform: Platform,
    timeout: Duration,
    check: impl Future<Output = Outcome>,
) -> CheckResult {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, check).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome {
            endpoint: "-".to_owned(),
            authenticated: false,
            result: Err(format!(
                "no answer within {}s: check the base URL and the network",
                timeout.as_secs()
            )),
        },
    };
    let (ok, advice) = match outcome.result {
        Ok(detail) => (true, detail),
        Err(advice) => (false, advice),
    };
    CheckResult {
        platform,
        endpoint: outcome.endpoint,
        authenticated: outcome.authenticated,
        ok,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        advice,
    }
}

async fn check_norce(settings: &Settings) -> Outcome {
    let client =
        match norce_client::NorceClientBuilder::from_settings(settings).and_then(|b| b.build()) {
            Ok(client) => client,
            Err(e) => return Outcome::settings(e.hint()),
        };
    let endpoint = format!(
        "{}{}",
        client.endpoints().services.as_str().trim_end_matches('/'),
        norce_client::models::services::operations::GET_APPLICATION.path
    );
    if let Err(e) = client.fetch_token().await {
        return Outcome {
            endpoint,
            authenticated: false,
            result: Err(e.hint()),
        };
    }
    use norce_client::models::services::operations::ServicesApi as _;
    match client.get_application(&Default::default()).await {
        Ok(app) => Outcome {
            endpoint,
            authenticated: true,
            result: Ok(
                format!("application {} {}", app.id, app.name.unwrap_or_default())
                    .trim()
                    .to_owned(),
            ),
        },
        Err(e) => Outcome::failed(endpoint, e.status(), e.hint()),
    }
}

/// Whether the platform rejected the credentials (as opposed to failing otherwise).
fn is_401<S: Into<u16>>(status: Option<S>) -> bool {
    status.is_some_and(|s| s.into() == 401)
}

async fn check_nshift(settings: &Settings) -> Outcome {
    let client =
        match nshift_client::NshiftClientBuilder::from_settings(settings).and_then(|b| b.build()) {
            Ok(client) => client,
            Err(e) => return Outcome::settings(e.hint()),
        };
    let endpoint = format!(
        "{}/stored-shipments",
        client.base_url().trim_end_matches('/')
    );
    // A search that finds nothing: an authenticated read that creates nothing.
    match client.find_stored_by_order_no("relay-verify-probe").await {
        Ok(found) => Outcome {
            endpoint,
            authenticated: true,
            result: Ok(format!("API key accepted ({} probe matches)", found.len())),
        },
        Err(e) => Outcome::failed(endpoint, e.status(), e.hint()),
    }
}

async fn check_brightpearl(settings: &Settings) -> Outcome {
    let client =
        match brightpearl_client::ClientBuilder::from_settings(settings).and_then(|b| b.build()) {
            Ok(client) => client,
            Err(e) => return Outcome::settings(e.hint()),
        };
    let endpoint = match client.base_url() {
        Ok(url) => format!(
            "{}/public-api/{}/product-service/price-list",
            url.as_str().trim_end_matches('/'),
            client.account()
        ),
        Err(e) => return Outcome::settings(e.hint()),
    };
    // Token (for OAuth apps) plus one cheap GET.
    let path = ListPriceListsPath {
        account: client.account().to_owned(),
    };
    match client.list_price_lists(&path).await.or_empty() {
        Ok(lists) => Outcome {
            endpoint,
            authenticated: true,
            result: Ok(format!(
                "account {} ({} price lists)",
                client.account(),
                lists.response.len()
            )),
        },
        Err(e) => Outcome::failed(endpoint, e.status(), e.hint()),
    }
}

/// Runs the checks of `platforms` concurrently, each bounded by `timeout`.
pub async fn verify(
    settings: &Settings,
    platforms: &[Platform],
    timeout: Duration,
) -> Vec<CheckResult> {
    let checks = platforms.iter().map(|&platform| async move {
        match platform {
            Platform::Norce => timed(platform, timeout, check_norce(settings)).await,
            Platform::Nshift => timed(platform, timeout, check_nshift(settings)).await,
            Platform::Brightpearl => timed(platform, timeout, check_brightpearl(settings)).await,
        }
    });
    futures::future::join_all(checks).await
}

/// The report as a fixed-width table.
pub fn render_table(results: &[CheckResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.platform.name().to_owned(),
                r.endpoint.clone(),
                if r.authenticated { "yes" } else { "no" }.to_owned(),
                format!("{} ms", r.latency_ms),
                if r.ok {
                    format!("ok: {}", r.advice)
                } else {
                    format!("FAILED: {}", r.advice)
                },
            ]
        })
        .collect();
    crate::table::render(
        &["platform", "endpoint", "authenticated", "latency", "result"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_count_as_configured_by_any_of_their_settings() {
        let settings = Settings::from_pairs([
            ("NSHIFT_SECRET_ID_FILE", "/run/secret"),
            ("BRIGHTPEARL_ACCOUNT", "acme"),
        ]);
        assert_eq!(
            configured_platforms(&settings),
            vec![Platform::Nshift, Platform::Brightpearl]
        );
        assert!(configured_platforms(&Settings::from_pairs::<&str, &str>([])).is_empty());
    }

    #[test]
    fn table_aligns_columns_and_marks_failures() {
        let results = [
            CheckResult {
                platform: Platform::Norce,
                endpoint: "https://a/x".into(),
                authenticated: true,
                ok: true,
                latency_ms: 12,
                advice: "application 1".into(),
            },
            CheckResult {
                platform: Platform::Nshift,
                endpoint: "(settings)".into(),
                authenticated: false,
                ok: false,
                latency_ms: 0,
                advice: "set NSHIFT_SECRET_ID".into(),
            },
        ];
        let table = render_table(&results);
        let lines: Vec<_> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[2].starts_with("Norce   ") && lines[2].ends_with("ok: application 1"),
            "{table}"
        );
        assert!(
            lines[3].contains("no ") && lines[3].ends_with("FAILED: set NSHIFT_SECRET_ID"),
            "{table}"
        );
        let column = lines[0].find("authenticated").unwrap();
        assert_eq!(&lines[2][column..column + 3], "yes");
    }
}
