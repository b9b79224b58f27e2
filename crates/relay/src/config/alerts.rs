//! `[alerts]`: failure alerts to the operator (a webhook, e-mail), and how often they may come.
//! The webhook URL and the SMTP URL are secrets: only the names of their variables are here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// The longest `alerts.min_interval_secs`: a week (longer would hide a new incident for longer
/// than anyone waits for news).
pub const MAX_MIN_INTERVAL_SECS: u64 = 7 * 24 * 3600;
/// The most `alerts.flow_failures_in_a_row`.
pub const MAX_FLOW_FAILURES_IN_A_ROW: u32 = 1000;

/// The `[alerts]` section: who is told when items are dead-lettered, a flow keeps failing, or a
/// platform refuses relay's credentials, and how often. Alerts are off until the webhook URL's
/// or the SMTP URL's variable is set; both may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Environment variable holding the webhook URL alerts are POSTed to as JSON (Slack's
    /// incoming-webhook form `{"text": …}` plus structured fields), or `NAME_FILE` naming a
    /// file that holds it. The URL is a secret (it is the webhook's credential): never logged.
    pub webhook_url_env: String,
    /// Environment variable holding the SMTP server URL for e-mail alerts, with its credentials
    /// (`smtps://user:password@smtp.example.com:465`, or `smtp://…:587?tls=required` for
    /// STARTTLS), or `NAME_FILE`. A secret: never logged.
    pub smtp_url_env: String,
    /// The sender of e-mail alerts (`relay@example.com` or `Relay <relay@example.com>`);
    /// required when `email_to` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_from: Option<String>,
    /// Who receives e-mail alerts (addresses); empty: no e-mail.
    pub email_to: Vec<String>,
    /// Failed passes of one flow in a row (the pass stopped: a platform or the state
    /// unavailable, a setting unusable) before an alert; a pass that completes ends the incident
    /// with a recovery message.
    #[schemars(range(min = 1, max = 1000))]
    pub flow_failures_in_a_row: u32,
    /// Seconds between two messages about the same incident (a flow's dead letters, a flow's
    /// failures, a platform's credentials), and the length of the window in which at most a
    /// few messages go out at all; what is held back in a window is sent as one summary at its
    /// end ("49 more items dead-lettered").
    #[schemars(range(min = 1, max = 604800))]
    pub min_interval_secs: u64,
    /// Whether messages link to the operator console (`{serve.public_url}/console/…`; only
    /// when `serve.public_url` is set).
    pub console_link: bool,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhook_url_env: "RELAY_ALERT_WEBHOOK_URL".to_owned(),
            smtp_url_env: "RELAY_ALERT_SMTP_URL".to_owned(),
            email_from: None,
            email_to: Vec::new(),
            flow_failures_in_a_row: 3,
            min_interval_secs: 900,
            console_link: true,
        }
    }
}

impl AlertsConfig {
    /// Checks the values the file cannot express as types; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |setting: &str, reason: String| ConfigError::Invalid {
            setting: format!("alerts.{setting}"),
            reason,
        };
        for (key, name) in [
            ("webhook_url_env", &self.webhook_url_env),
            ("smtp_url_env", &self.smtp_url_env),
        ] {
            if name.trim().is_empty() || name.contains(['=', '\0']) {
                return Err(invalid(
                    key,
                    "must name an environment variable (the value itself is a secret and never goes in this file)".to_owned(),
                ));
            }
            if name.contains("://") {
                return Err(invalid(
                    key,
                    "names the environment variable that holds the URL, not the URL: the URL is a secret; put it in that variable (or a file named by `NAME_FILE`)".to_owned(),
                ));
            }
        }
        if self.webhook_url_env == self.smtp_url_env {
            return Err(invalid(
                "smtp_url_env",
                "must differ from alerts.webhook_url_env".to_owned(),
            ));
        }
        if !(1..=MAX_FLOW_FAILURES_IN_A_ROW).contains(&self.flow_failures_in_a_row) {
            return Err(invalid(
                "flow_failures_in_a_row",
                format!(
                    "is {}: set the failed passes in a row before an alert, from 1 to {MAX_FLOW_FAILURES_IN_A_ROW} (default 3)",
                    self.flow_failures_in_a_row
                ),
            ));
        }
        if !(1..=MAX_MIN_INTERVAL_SECS).contains(&self.min_interval_secs) {
            return Err(invalid(
                "min_interval_secs",
                format!(
                    "is {}: set the seconds between two messages about one incident, from 1 to {MAX_MIN_INTERVAL_SECS} (default 900)",
                    self.min_interval_secs
                ),
            ));
        }
        if let Some(from) = &self.email_from {
            check_mailbox(from).map_err(|reason| invalid("email_from", reason))?;
        }
        let mut seen = std::collections::HashSet::new();
        for (i, to) in self.email_to.iter().enumerate() {
            check_mailbox(to)
                .map_err(|reason| invalid("email_to", format!("entry {}: {reason}", i + 1)))?;
            if !seen.insert(to.trim().to_ascii_lowercase()) {
                return Err(invalid(
                    "email_to",
                    format!("entry {} is listed twice", i + 1),
                ));
            }
        }
        match (&self.email_from, self.email_to.is_empty()) {
            (None, false) => Err(invalid(
                "email_from",
                "is required when alerts.email_to is set: the sender's address (e.g. `relay@example.com`)".to_owned(),
            )),
            (Some(_), true) => Err(invalid(
                "email_to",
                "is empty while alerts.email_from is set: list who receives e-mail alerts, or leave both out".to_owned(),
            )),
            _ => Ok(()),
        }
    }
}

/// An e-mail address as a mailbox (`a@b.c` or `Name <a@b.c>`); header-breaking characters are
/// refused before parsing.
fn check_mailbox(text: &str) -> Result<(), String> {
    if text.chars().any(char::is_control) {
        return Err(
            "contains a control character (a line break would break the header)".to_owned(),
        );
    }
    text.trim()
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|_| {
            format!(
                "`{}` is not an e-mail address (e.g. `ops@example.com` or `Ops <ops@example.com>`)",
                crate::text::escape(text)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayConfig;

    #[test]
    fn defaults_and_a_full_section_load() {
        let config = RelayConfig::parse("", "t").unwrap().alerts;
        assert_eq!(config, AlertsConfig::default());
        assert_eq!(config.flow_failures_in_a_row, 3);
        assert_eq!(config.min_interval_secs, 900);
        assert!(config.console_link && config.email_to.is_empty());
        let text = "[alerts]\nwebhook_url_env = \"HOOK\"\nsmtp_url_env = \"SMTP\"\nemail_from = \"Relay <relay@example.com>\"\nemail_to = [\"ops@example.com\", \"b@example.com\"]\nflow_failures_in_a_row = 5\nmin_interval_secs = 60\nconsole_link = false\n";
        let config = RelayConfig::parse(text, "t").unwrap().alerts;
        assert_eq!(config.webhook_url_env, "HOOK");
        assert_eq!(config.email_to.len(), 2);
        assert_eq!(
            (config.flow_failures_in_a_row, config.min_interval_secs),
            (5, 60)
        );
        assert!(!config.console_link);
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        for (text, key, expected) in [
            (
                "flow_failures_in_a_row = 0",
                "alerts.flow_failures_in_a_row",
                "from 1",
            ),
            (
                "flow_failures_in_a_row = 5000",
                "alerts.flow_failures_in_a_row",
                "from 1",
            ),
            (
                "min_interval_secs = 0",
                "alerts.min_interval_secs",
                "from 1",
            ),
            (
                "min_interval_secs = 99999999",
                "alerts.min_interval_secs",
                "from 1",
            ),
            (
                "webhook_url_env = \"\"",
                "alerts.webhook_url_env",
                "environment variable",
            ),
            (
                "webhook_url_env = \"https://hooks.slack.com/services/T/B/x\"",
                "alerts.webhook_url_env",
                "not the URL",
            ),
            (
                "smtp_url_env = \"RELAY_ALERT_WEBHOOK_URL\"",
                "alerts.smtp_url_env",
                "differ",
            ),
            (
                "email_to = [\"ops@example.com\"]",
                "alerts.email_from",
                "required",
            ),
            (
                "email_from = \"relay@example.com\"",
                "alerts.email_to",
                "is empty",
            ),
            (
                "email_from = \"relay@example.com\"\nemail_to = [\"not an address\"]",
                "alerts.email_to",
                "entry 1",
            ),
            (
                "email_from = \"relay@example.com\"\nemail_to = [\"a@example.com\", \"A@example.com\"]",
                "alerts.email_to",
                "twice",
            ),
            (
                "email_from = \"relay@example.com\\r\\nBcc: x@evil.test\"\nemail_to = [\"a@example.com\"]",
                "alerts.email_from",
                "control character",
            ),
            ("console_links = true", "console_links", "unknown field"),
            (
                "min_interval_secs = \"15m\"",
                "alerts.min_interval_secs",
                "invalid type",
            ),
        ] {
            let err = RelayConfig::parse(&format!("[alerts]\n{text}\n"), "relay.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && err.contains(expected), "{text}: {err}");
            assert!(
                !err.contains("hooks.slack.com"),
                "a URL is not echoed: {err}"
            );
        }
    }
}
