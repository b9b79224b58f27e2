//! The receivers' secrets: read from the environment (or `NAME_FILE`), held as `secrecy`
//! strings, compared in constant time.

use super::error::ServeError;
use crate::config::ServeConfig;

/// The receivers' secrets are `secrecy` strings: never shown by `Debug`, wiped on drop.
pub use secrecy::{ExposeSecret, SecretString};

/// Whether `candidate` equals `secret`, compared in constant time (`subtle`): the time says
/// whether the lengths differ, never where the contents do.
pub fn secret_matches(secret: &SecretString, candidate: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    secret.expose_secret().as_bytes().ct_eq(candidate).into()
}

/// The receivers' secrets. A receiver without its secret is disabled (503 naming the variable).
#[derive(Debug, Clone, Default)]
pub struct ServeSecrets {
    /// The order receiver's Basic-auth password.
    pub order_receiver_password: Option<SecretString>,
    /// The Norce event webhooks' shared secret.
    pub norce_webhook_secret: Option<SecretString>,
    /// The Brightpearl webhooks' shared secret.
    pub brightpearl_webhook_secret: Option<SecretString>,
    /// The operator console's sign-in token; the console is off without it.
    pub console_token: Option<SecretString>,
}

impl ServeSecrets {
    /// Reads each secret from the variable `config` names, or from the file named by its
    /// `NAME_FILE` variable. An unset secret leaves its receiver disabled; an unreadable or empty
    /// file is an error naming the variable (never the value).
    pub fn from_settings(
        config: &ServeConfig,
        settings: &client_core::Settings,
    ) -> Result<Self, ServeError> {
        Ok(Self {
            order_receiver_password: read_secret(settings, &config.order_receiver_password_env)?,
            norce_webhook_secret: read_secret(settings, &config.norce_webhook_secret_env)?,
            brightpearl_webhook_secret: read_secret(
                settings,
                &config.brightpearl_webhook_secret_env,
            )?,
            console_token: read_secret(settings, &config.console_token_env)?,
        })
    }
}

fn read_secret(
    settings: &client_core::Settings,
    name: &str,
) -> Result<Option<SecretString>, ServeError> {
    if let Some(value) = settings.get(name).filter(|v| !v.is_empty()) {
        return Ok(Some(SecretString::from(value)));
    }
    let file_setting = format!("{name}_FILE");
    let Some(path) = settings.get(&file_setting) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| ServeError::Secret {
        setting: file_setting.clone(),
        reason: format!("cannot read `{path}`: {e}"),
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(ServeError::Secret {
            setting: file_setting,
            reason: format!("`{path}` is empty"),
        });
    }
    Ok(Some(SecretString::from(value)))
}
