//! Client settings from code, a map or the environment, with errors that name the setting.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use auth_core::SecretString;

/// A setting that is missing or malformed. The message names the setting and what to do;
/// it never contains a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A required setting is absent or empty.
    #[error("`{name}` is not set: {hint}")]
    Missing {
        /// The setting (environment variable) name.
        name: String,
        /// What to set it to.
        hint: String,
    },
    /// A setting has a value that cannot be used.
    #[error("`{name}` is invalid: {reason}")]
    Invalid {
        /// The setting name.
        name: String,
        /// Why, and what is expected.
        reason: String,
    },
}

impl SettingsError {
    /// A missing setting with a hint.
    pub fn missing(name: &str, hint: impl Into<String>) -> Self {
        Self::Missing {
            name: name.to_owned(),
            hint: hint.into(),
        }
    }

    /// An invalid setting with the reason.
    pub fn invalid(name: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    /// The name of the setting at fault.
    pub fn setting(&self) -> &str {
        match self {
            Self::Missing { name, .. } | Self::Invalid { name, .. } => name,
        }
    }
}

/// A source of settings: the process environment or an explicit map.
///
/// A secret may also come from a file: `NAME_FILE=/run/secrets/x` is read when `NAME` is unset
/// (the usual container convention).
///
/// ```
/// use client_core::Settings;
/// let settings = Settings::from_pairs([("NSHIFT_API_KEY_ID", "abc")]);
/// assert_eq!(settings.required("NSHIFT_API_KEY_ID", "set the API key id").unwrap(), "abc");
/// assert!(settings.required("NSHIFT_SECRET_ID", "set the secret id").unwrap_err().to_string().contains("NSHIFT_SECRET_ID"));
/// ```
#[derive(Clone, Default)]
pub struct Settings {
    map: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: show only the names.
        match &self.map {
            Some(map) => f
                .debug_struct("Settings")
                .field("names", &map.keys().collect::<Vec<_>>())
                .finish(),
            None => f.write_str("Settings(environment)"),
        }
    }
}

impl Settings {
    /// Settings from the process environment.
    pub fn from_env() -> Self {
        Self { map: None }
    }

    /// Settings from explicit pairs (tests, configuration files).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            map: Some(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ),
        }
    }

    fn raw(&self, name: &str) -> Option<String> {
        match &self.map {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }

    /// The trimmed value, or `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        self.raw(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Whether any of these settings is present.
    pub fn any_set(&self, names: &[&str]) -> bool {
        names
            .iter()
            .any(|n| self.get(n).is_some() || self.get(&format!("{n}_FILE")).is_some())
    }

    /// A required value.
    pub fn required(&self, name: &str, hint: &str) -> Result<String, SettingsError> {
        self.get(name)
            .ok_or_else(|| SettingsError::missing(name, hint))
    }

    /// An optional value parsed as `T`; `expected` describes the format for the error.
    pub fn parse<T>(&self, name: &str, expected: &str) -> Result<Option<T>, SettingsError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|e| {
                SettingsError::invalid(name, format!("`{value}` is not {expected} ({e})"))
            }),
        }
    }

    /// An optional switch: `true`/`1`/`yes`/`on` or `false`/`0`/`no`/`off` (any case); unset is
    /// `false`.
    pub fn flag(&self, name: &str) -> Result<bool, SettingsError> {
        let Some(value) = self.get(name) else {
            return Ok(false);
        };
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(SettingsError::invalid(
                name,
                format!("`{value}` is not true or false"),
            )),
        }
    }

    /// An optional whole number of seconds, at least `min_secs`.
    pub fn seconds(&self, name: &str, min_secs: u64) -> Result<Option<Duration>, SettingsError> {
        match self.parse::<u64>(name, "a whole number of seconds")? {
            Some(secs) if secs < min_secs => Err(SettingsError::invalid(
                name,
                format!("must be at least {min_secs}"),
            )),
            secs => Ok(secs.map(Duration::from_secs)),
        }
    }

    /// An optional secret: `None` when neither `NAME` nor `NAME_FILE` is set, else
    /// [`Self::secret`] (an unreadable or empty file is an error).
    pub fn optional_secret(&self, name: &str) -> Result<Option<SecretString>, SettingsError> {
        if self.any_set(&[name]) {
            self.secret(name, "").map(Some)
        } else {
            Ok(None)
        }
    }

    /// A secret from `NAME`, or from the file named by `NAME_FILE`. Never echoed in errors.
    pub fn secret(&self, name: &str, hint: &str) -> Result<SecretString, SettingsError> {
        if let Some(value) = self.get(name) {
            return Ok(SecretString::from(value));
        }
        let file_setting = format!("{name}_FILE");
        if let Some(path) = self.get(&file_setting) {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                SettingsError::invalid(&file_setting, format!("cannot read `{path}`: {e}"))
            })?;
            let value = text.trim();
            if value.is_empty() {
                return Err(SettingsError::invalid(
                    &file_setting,
                    format!("`{path}` is empty"),
                ));
            }
            return Ok(SecretString::from(value.to_owned()));
        }
        Err(SettingsError::missing(
            name,
            format!("{hint} (or set `{file_setting}` to a file that holds it)"),
        ))
    }
}

/// Parses a base URL: HTTPS is required, plain HTTP only for loopback (the sandbox). The result
/// has no query or fragment and ends without a slash, so paths can be appended.
///
/// ```
/// assert!(client_core::base_url("NORCE_BASE_URL", "http://127.0.0.1:8787").is_ok());
/// let err = client_core::base_url("NORCE_BASE_URL", "http://shop.example.com").unwrap_err();
/// assert!(err.to_string().contains("NORCE_BASE_URL"));
/// ```
pub fn base_url(setting: &str, value: &str) -> Result<reqwest::Url, SettingsError> {
    // A value with user info may hold a password: never echoed in an error.
    let shown = if value.contains('@') {
        "the value (not shown: it may hold credentials)"
    } else {
        value
    };
    let url = reqwest::Url::parse(value.trim()).map_err(|e| {
        SettingsError::invalid(
            setting,
            format!("`{shown}` is not a URL ({e}); expected e.g. https://host/path"),
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SettingsError::invalid(
            setting,
            "must not contain credentials (user:password@): give the base URL only; credentials have their own settings",
        ));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(SettingsError::invalid(
                setting,
                format!(
                    "`{value}` uses plain http: use https (http is allowed only for 127.0.0.1/localhost)"
                ),
            ));
        }
        other => {
            return Err(SettingsError::invalid(
                setting,
                format!("`{value}` has scheme `{other}`: use https"),
            ));
        }
    }
    if url.host().is_none() {
        return Err(SettingsError::invalid(
            setting,
            format!("`{value}` has no host"),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(SettingsError::invalid(
            setting,
            format!("`{value}` must not have a query or fragment"),
        ));
    }
    let mut url = url;
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}
