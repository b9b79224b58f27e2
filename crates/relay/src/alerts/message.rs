//! What an alert is, the channels' secrets and the delivery counts: the bottom module of
//! `alerts`, used by the decisions (`engine`), the delivery (`deliver`) and the hooks.

use chrono::{DateTime, Utc};
use client_core::Settings;
use secrecy::SecretString;
use serde::Serialize;

use crate::config::AlertsConfig;

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// An item was dead-lettered.
    DeadLetter,
    /// A flow's dead-letter queue is empty again.
    DeadLettersCleared,
    /// A flow's passes stopped `alerts.flow_failures_in_a_row` times in a row.
    FlowFailing,
    /// A pass of that flow completed again.
    FlowRecovered,
    /// A platform refused relay's credentials: no token could be had.
    PlatformUnauthorized,
    /// That platform's calls succeed again.
    PlatformRecovered,
    /// What the rate limits held back in a window.
    Summary,
}

/// One message, as the webhook receives it (JSON) and e-mail shows it (`text`). Values that came
/// from outside (references, errors) are escaped; no secret is ever in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// The whole message (Slack shows this): the subject, then the error, what to do and the
    /// console link, one a line.
    pub text: String,
    /// What it is about.
    pub event: AlertEvent,
    /// The incident it belongs to (`dead-letters/shipping`, `flow/orders`, `platform/norce`,
    /// `summary`): its recovery carries the same key.
    pub incident: String,
    /// The flow (for dead letters: the entity flow, as the console names it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// The platform (`Norce`, `nShift`, `Brightpearl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The item's reference: the source id (a Norce order number, a product id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The dead letter's id (`relay replay ID`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_id: Option<i64>,
    /// What failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The console page to look at (when `serve.public_url` is set and `alerts.console_link`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
    /// Failed passes in a row, or items and messages a summary stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// When it was decided (RFC 3339).
    pub at: String,
    /// The first line (the e-mail subject).
    #[serde(skip)]
    pub subject: String,
    /// Lines between the subject and the error (a summary's lists).
    #[serde(skip)]
    pub details: Vec<String>,
}

impl Alert {
    pub(super) fn new(
        event: AlertEvent,
        incident: &str,
        at: DateTime<Utc>,
        subject: String,
    ) -> Self {
        Self {
            text: String::new(),
            event,
            incident: incident.to_owned(),
            flow: None,
            platform: None,
            reference: None,
            dead_letter_id: None,
            error: None,
            hint: None,
            console_url: None,
            count: None,
            at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            subject,
            details: Vec::new(),
        }
    }

    /// Composes [`Alert::text`] from the other fields.
    pub(super) fn finish(&mut self) {
        let mut lines = vec![self.subject.clone()];
        lines.extend(self.details.iter().cloned());
        if let Some(error) = &self.error {
            lines.push(format!("Error: {error}"));
        }
        if let Some(hint) = &self.hint {
            lines.push(format!("What to do: {hint}"));
        }
        if let Some(url) = &self.console_url {
            lines.push(format!("Console: {url}"));
        }
        self.text = lines.join("\n");
    }
}

/// Why the alerts cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// A secret's variable or file is unusable (the value is never shown).
    #[error("`{setting}`: {reason}")]
    Secret {
        /// The environment variable.
        setting: String,
        /// Why, and what to set.
        reason: String,
    },
}

/// The alert channels' secrets: the webhook URL and the SMTP URL (with its credentials). `Debug`
/// shows only whether each is set.
#[derive(Clone, Default)]
pub struct AlertSecrets {
    /// The webhook URL.
    pub webhook_url: Option<SecretString>,
    /// The SMTP server URL.
    pub smtp_url: Option<SecretString>,
}

impl std::fmt::Debug for AlertSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |secret: &Option<SecretString>| {
            if secret.is_some() {
                models_runtime::redact::REDACTED
            } else {
                "unset"
            }
        };
        f.debug_struct("AlertSecrets")
            .field("webhook_url", &shown(&self.webhook_url))
            .field("smtp_url", &shown(&self.smtp_url))
            .finish()
    }
}

impl AlertSecrets {
    /// Reads the URLs from the variables `config` names, or from the files their `NAME_FILE`
    /// variables name. Unset: that channel is off; an unreadable or empty file is an error
    /// naming the variable (never the value).
    pub fn from_settings(config: &AlertsConfig, settings: &Settings) -> Result<Self, AlertError> {
        let read = |name: &str| {
            settings
                .optional_secret(name)
                .map_err(|e| AlertError::Secret {
                    setting: e.setting().to_owned(),
                    reason: e.to_string(),
                })
        };
        Ok(Self {
            webhook_url: read(&config.webhook_url_env)?,
            smtp_url: read(&config.smtp_url_env)?,
        })
    }
}

/// What the delivery task has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AlertStats {
    /// Messages decided and queued for delivery.
    pub queued: u64,
    /// Messages dropped because the queue was full (or delivery had stopped).
    pub dropped: u64,
    /// Deliveries that succeeded (one per message and channel).
    pub sent: u64,
    /// Deliveries that failed after their attempts (one per message and channel).
    pub failed: u64,
}
