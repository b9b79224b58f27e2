//! Delivery of the decided messages: a webhook POST (JSON) and/or an e-mail over SMTP, each with
//! a timeout and a few attempts with backoff, from one background task fed by a bounded queue.
//! The channels' URLs are secrets: never in a log line, an error or `Debug`; a message that
//! somehow contains one has it replaced before it leaves.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{mpsc, watch};

use super::message::{Alert, AlertError, AlertSecrets, AlertStats};
use crate::config::AlertsConfig;

/// Each channel's time for one attempt.
pub(super) const TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per message and channel.
pub(super) const ATTEMPTS: u32 = 4;
/// The wait before the second attempt; doubled before each next one (1, 2, 4 s).
pub(super) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// How long the stop lets the queue's last messages go out (one attempt each).
const FLUSH_AT_STOP: Duration = Duration::from_secs(5);
/// What replaces a secret found in a message.
const REDACTED: &str = "[redacted]";

/// The configured channels, their secrets, and the counters.
pub(super) struct Delivery {
    webhook: Option<Webhook>,
    email: Option<Email>,
    /// The secrets' texts a message must never contain (URLs, the SMTP password).
    secrets: Vec<SecretString>,
    queued: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    delivered: watch::Sender<u64>,
}

struct Webhook {
    /// A secret: never shown.
    url: reqwest::Url,
    client: reqwest::Client,
}

struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

/// How one attempt went.
enum Attempt {
    /// Delivered.
    Done,
    /// Worth another attempt (a timeout, a refused connection, 429, 5xx, a 4xx SMTP reply).
    Retry(String),
    /// Will fail again the same way (a 4xx webhook answer, a 5xx SMTP reply).
    Fail(String),
}

impl Delivery {
    /// The channels `secrets` set; `None` when none is.
    pub(super) fn new(
        config: &AlertsConfig,
        secrets: &AlertSecrets,
    ) -> Result<Option<Self>, AlertError> {
        let webhook = secrets
            .webhook_url
            .as_ref()
            .map(|secret| webhook(&config.webhook_url_env, secret))
            .transpose()?;
        let email = match (&secrets.smtp_url, &config.email_from) {
            (Some(secret), Some(from)) if !config.email_to.is_empty() => {
                Some(email(config, secret, from)?)
            }
            (Some(_), _) => {
                tracing::warn!(
                    smtp = %config.smtp_url_env,
                    "alerts: the SMTP URL is set but [alerts] email_from / email_to are not: no e-mail alerts"
                );
                None
            }
            (None, _) => {
                if !config.email_to.is_empty() {
                    tracing::warn!(
                        smtp = %config.smtp_url_env,
                        "alerts: [alerts] email_to is set but the SMTP URL variable is not: no e-mail alerts"
                    );
                }
                None
            }
        };
        if webhook.is_none() && email.is_none() {
            return Ok(None);
        }
        let mut hidden = Vec::new();
        for secret in [&secrets.webhook_url, &secrets.smtp_url]
            .into_iter()
            .flatten()
        {
            let text = secret.expose_secret().trim();
            hidden.push(SecretString::from(text.to_owned()));
            if let Ok(url) = reqwest::Url::parse(text)
                && let Some(password) = url.password()
            {
                hidden.push(SecretString::from(password.to_owned()));
                if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
                    hidden.push(SecretString::from(decoded.into_owned()));
                }
            }
        }
        // A very short "secret" would turn ordinary words into `[redacted]`.
        hidden.retain(|s| s.expose_secret().len() >= 6);
        Ok(Some(Self {
            webhook,
            email,
            secrets: hidden,
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            delivered: watch::channel(0).0,
        }))
    }

    /// The channels, by name (`["webhook", "email"]`).
    pub(super) fn channels(&self) -> Vec<&'static str> {
        let mut channels = Vec::new();
        if self.webhook.is_some() {
            channels.push("webhook");
        }
        if self.email.is_some() {
            channels.push("email");
        }
        channels
    }

    pub(super) fn stats(&self) -> AlertStats {
        AlertStats {
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    pub(super) fn delivered(&self) -> watch::Receiver<u64> {
        self.delivered.subscribe()
    }

    /// Queues `alert` without waiting: a full queue (or a stopped delivery) drops it, counted
    /// and logged, so that no flow ever waits for an alert.
    pub(super) fn enqueue(&self, queue: &mpsc::Sender<Alert>, alert: Alert) {
        match queue.try_send(alert) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "the queue is full",
                    mpsc::error::TrySendError::Closed(_) => "delivery has stopped",
                };
                tracing::warn!(why, "alert dropped: not delivered");
            }
        }
    }

    /// `text` with every secret replaced.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            let secret = secret.expose_secret();
            if text.contains(secret) {
                text = text.replace(secret, REDACTED);
            }
        }
        text
    }

    /// Sends `alert` on every channel, each with up to `attempts` attempts.
    async fn deliver(&self, alert: &Alert, attempts: u32) {
        if let Some(webhook) = &self.webhook {
            let body = serde_json::to_string(alert)
                .map(|body| self.scrub(&body))
                .unwrap_or_default();
            let ok = self
                .with_attempts("webhook", attempts, || webhook.post(body.clone()))
                .await;
            self.count(ok);
        }
        if let Some(email) = &self.email {
            let subject = self.scrub(&alert.subject);
            let text = self.scrub(&alert.text);
            let ok = self
                .with_attempts("email", attempts, || email.send(&subject, &text))
                .await;
            self.count(ok);
        }
        self.delivered.send_modify(|n| *n += 1);
    }

    fn count(&self, ok: bool) {
        let counter = if ok { &self.sent } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `attempt` until it is done, fails for good, or `attempts` were made, waiting 1, 2,
    /// 4 s between them; returns whether it was delivered.
    async fn with_attempts<F, Fut>(&self, channel: &'static str, attempts: u32, attempt: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Attempt>,
    {
        let mut backoff = FIRST_BACKOFF;
        for n in 1..=attempts.max(1) {
            match attempt().await {
                Attempt::Done => {
                    tracing::info!(channel, attempt = n, "alert delivered");
                    return true;
                }
                Attempt::Fail(reason) => {
                    tracing::warn!(channel, attempt = n, reason = %self.scrub(&reason), "alert not delivered: refused (no retry)");
                    return false;
                }
                Attempt::Retry(reason) if n < attempts => {
                    tracing::info!(channel, attempt = n, reason = %self.scrub(&reason), retry_in_ms = backoff.as_millis() as u64, "alert not delivered yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
                Attempt::Retry(reason) => {
                    tracing::warn!(channel, attempts = n, reason = %self.scrub(&reason), "alert not delivered: giving up");
                }
            }
        }
        false
    }
}

/// Drains the queue until the stop; then gives what is still queued one attempt each, for
/// [`FLUSH_AT_STOP`] at most.
pub(super) async fn run(
    delivery: std::sync::Arc<Delivery>,
    mut outbox: mpsc::Receiver<Alert>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let alert = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            alert = outbox.recv() => match alert {
                Some(alert) => alert,
                None => return,
            },
        };
        // A delivery still retrying at the stop gives up (the stop must stay within its grace).
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => {
                tracing::info!("stopping: an alert still being retried is given up");
                break;
            }
            () = delivery.deliver(&alert, ATTEMPTS) => {}
        }
    }
    outbox.close();
    let flush = async {
        while let Some(alert) = outbox.recv().await {
            delivery.deliver(&alert, 1).await;
        }
    };
    if tokio::time::timeout(FLUSH_AT_STOP, flush).await.is_err() {
        tracing::warn!("stopping: alerts still queued were not delivered");
    }
}

impl Webhook {
    async fn post(&self, body: String) -> Attempt {
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        match response {
            // The error would name the URL, a secret; its causes do not (a refused connection,
            // a timeout, a DNS failure).
            Err(e) => {
                let e = e.without_url();
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    reason.push_str(": ");
                    reason.push_str(&cause.to_string());
                    source = cause.source();
                }
                Attempt::Retry(reason)
            }
            Ok(answer) => {
                let status = answer.status();
                if status.is_success() {
                    Attempt::Done
                } else if status.as_u16() == 429
                    || status.as_u16() == 408
                    || status.is_server_error()
                {
                    Attempt::Retry(format!("the webhook answered {status}"))
                } else {
                    Attempt::Fail(format!(
                        "the webhook answered {status}: check the URL in the webhook variable (a revoked or mistyped webhook)"
                    ))
                }
            }
        }
    }
}

impl Email {
    async fn send(&self, subject: &str, text: &str) -> Attempt {
        let message = match email_message(&self.from, &self.to, subject, text) {
            Ok(message) => message,
            Err(e) => return Attempt::Fail(format!("the e-mail cannot be built: {e}")),
        };
        match self.transport.send(message).await {
            Ok(_) => Attempt::Done,
            Err(e) if e.is_permanent() => Attempt::Fail(format!("the SMTP server refused: {e}")),
            Err(e) => Attempt::Retry(format!("SMTP: {e}")),
        }
    }
}

/// The e-mail of an alert: plain text, the subject its first line.
pub(super) fn email_message(
    from: &Mailbox,
    to: &[Mailbox],
    subject: &str,
    text: &str,
) -> Result<Message, lettre::error::Error> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in to {
        builder = builder.to(to.clone());
    }
    builder.body(text.to_owned())
}

/// Whether `url`'s host is this machine (plain HTTP and SMTP are allowed only there).
fn loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The webhook channel of the URL in `setting`; errors name the variable, never the value.
fn webhook(setting: &str, secret: &SecretString) -> Result<Webhook, AlertError> {
    let invalid = |reason: &str| AlertError::Secret {
        setting: setting.to_owned(),
        reason: format!("{reason} (the value is not shown)"),
    };
    let url = reqwest::Url::parse(secret.expose_secret().trim()).map_err(|_| {
        invalid("is not an absolute URL: set the webhook's URL, e.g. https://hooks.slack.com/services/…")
    })?;
    match url.scheme() {
        "https" => {}
        "http" if loopback(&url) => {}
        "http" => {
            return Err(invalid(
                "must be an https:// URL: plain http would send the alerts in the clear (it is allowed only to this machine)",
            ));
        }
        _ => return Err(invalid("must be an https:// URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        // A redirect would carry the alert somewhere the operator did not name.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| invalid("cannot be used: the HTTP client did not build"))?;
    Ok(Webhook { url, client })
}

/// The e-mail channel of the SMTP URL in `config.smtp_url_env`; errors name the variable or
/// the key, never the value.
fn email(config: &AlertsConfig, secret: &SecretString, from: &str) -> Result<Email, AlertError> {
    let setting = &config.smtp_url_env;
    let invalid = |reason: &str| AlertError::Secret {
        setting: setting.clone(),
        reason: format!("{reason} (the value is not shown)"),
    };
    let text = secret.expose_secret().trim();
    let url = reqwest::Url::parse(text).map_err(|_| {
        invalid("is not a URL: set e.g. smtps://user:password@smtp.example.com:465")
    })?;
    let tls = url
        .query_pairs()
        .find(|(key, _)| key == "tls")
        .map(|(_, value)| value.into_owned());
    match (url.scheme(), tls.as_deref()) {
        ("smtps", None) | ("smtp", Some("required")) => {}
        ("smtp", None | Some("opportunistic")) if loopback(&url) => {}
        ("smtp", None | Some("opportunistic")) => {
            return Err(invalid(
                "would send the password and the alerts in the clear: use smtps://…:465 (TLS) or smtp://…:587?tls=required (STARTTLS); plain smtp:// is allowed only to this machine",
            ));
        }
        _ => {
            return Err(invalid(
                "must be smtps://user:password@host:465 or smtp://user:password@host:587?tls=required",
            ));
        }
    }
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(text)
        .map_err(|_| invalid("cannot be used as an SMTP server URL"))?
        .timeout(Some(TIMEOUT))
        .build();
    let mailbox = |key: &str, text: &str| {
        text.trim()
            .parse::<Mailbox>()
            .map_err(|_| AlertError::Secret {
                setting: format!("alerts.{key}"),
                reason: "is not an e-mail address".to_owned(),
            })
    };
    let from = mailbox("email_from", from)?;
    let to = config
        .email_to
        .iter()
        .map(|to| mailbox("email_to", to))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Email {
        transport,
        from,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AlertsConfig {
        AlertsConfig {
            email_from: Some("Relay <relay@example.com>".to_owned()),
            email_to: vec!["ops@example.com".to_owned()],
            ..AlertsConfig::default()
        }
    }

    fn secrets(webhook: Option<&str>, smtp: Option<&str>) -> AlertSecrets {
        AlertSecrets {
            webhook_url: webhook.map(|s| SecretString::from(s.to_owned())),
            smtp_url: smtp.map(|s| SecretString::from(s.to_owned())),
        }
    }

    fn error(webhook: Option<&str>, smtp: Option<&str>) -> String {
        match Delivery::new(&config(), &secrets(webhook, smtp)) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn urls_are_checked_naming_the_variable_never_the_value() {
        assert!(
            Delivery::new(&config(), &AlertSecrets::default())
                .unwrap()
                .is_none()
        );
        let delivery = Delivery::new(
            &config(),
            &secrets(
                Some("https://hooks.example.com/services/T0/B0/s3cr3t-hook"),
                Some("smtps://relay:pa%24%24word-1@smtp.example.com:465"),
            ),
        )
        .unwrap()
        .unwrap();
        assert_eq!(delivery.channels(), ["webhook", "email"]);
        let scrubbed =
            delivery.scrub("a https://hooks.example.com/services/T0/B0/s3cr3t-hook b pa$$word-1 c");
        assert_eq!(scrubbed, "a [redacted] b [redacted] c");
        for (webhook, smtp, expected) in [
            (Some("not a url s3cr3t"), None, "RELAY_ALERT_WEBHOOK_URL"),
            (Some("http://hooks.example.com/s3cr3t"), None, "https://"),
            (Some("ftp://hooks.example.com/s3cr3t"), None, "https://"),
            (
                None,
                Some("smtp://u:s3cr3t@smtp.example.com:25"),
                "in the clear",
            ),
            (
                None,
                Some("smtp://u:s3cr3t@smtp.example.com?tls=opportunistic"),
                "in the clear",
            ),
            (None, Some("imap://u:s3cr3t@mail.example.com"), "smtps://"),
            (None, Some("s3cr3t"), "RELAY_ALERT_SMTP_URL"),
        ] {
            let err = error(webhook, smtp);
            assert!(err.contains(expected), "{webhook:?} {smtp:?}: {err}");
            assert!(!err.contains("s3cr3t"), "{err}");
        }
        // Plain HTTP and SMTP only to this machine.
        assert_eq!(
            error(
                Some("http://127.0.0.1:9/hook"),
                Some("smtp://localhost:2525")
            ),
            ""
        );
        assert!(
            Delivery::new(&config(), &secrets(Some("http://[::1]:9/x"), None))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn the_email_carries_the_alert_as_plain_text() {
        let from: Mailbox = "Relay <relay@example.com>".parse().unwrap();
        let to: Vec<Mailbox> = vec![
            "ops@example.com".parse().unwrap(),
            "b@example.com".parse().unwrap(),
        ];
        let message = email_message(
            &from,
            &to,
            "relay: shipping 1001 was dead-lettered",
            "line one\nline two",
        )
        .unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("Subject: relay: shipping 1001 was dead-lettered"),
            "{text}"
        );
        assert!(
            text.contains("To: ops@example.com, b@example.com"),
            "{text}"
        );
        assert!(text.contains("Content-Type: text/plain"), "{text}");
        assert!(text.contains("line one\r\nline two"), "{text}");
    }
}
