//! The embedded sandbox: what relay runs against when no platform is configured.

use client_core::Settings;
use sandbox::{Credentials, Sandbox, SandboxConfig};

use crate::config::RelayConfig;

/// The sandbox's return product (PostNord Return Drop Off, to every Nordic country it ships to).
pub const RETURN_SERVICE: &str = "P24";
/// The sandbox's Brightpearl order status "Cancelled".
pub const CANCELLED_STATUS_ID: i64 = 6;

/// The order-lifecycle settings a real account sets in `relay.toml`, for the sandbox where they
/// are unset: the cancelled status, and refunds that put the stock back (each product into its
/// default location, which the sandbox's product records carry).
pub fn configure_lifecycle(config: &mut RelayConfig) {
    if config.orders.cancelled_status_id.is_none() {
        config.orders.cancelled_status_id = Some(CANCELLED_STATUS_ID);
    }
    config.orders.refund_restock = true;
}

/// Starts the sandbox on a free loopback port and returns it with settings that point every
/// client at it (Brightpearl as a private app with the staff token, so no browser is needed).
pub async fn start() -> std::io::Result<(Sandbox, Settings)> {
    let sandbox = Sandbox::start(SandboxConfig::default()).await?;
    let settings = settings_for(&sandbox.credentials());
    Ok((sandbox, settings))
}

/// Client settings for the sandbox's demo credentials.
pub fn settings_for(credentials: &Credentials) -> Settings {
    Settings::from_pairs(env_pairs(credentials))
}

/// The same settings as environment variables (name, value), for a relay child process.
pub fn env_pairs(credentials: &Credentials) -> Vec<(&'static str, String)> {
    let norce = &credentials.norce;
    let nshift = &credentials.nshift;
    let brightpearl = &credentials.brightpearl;
    vec![
        ("NORCE_BASE_URL", norce.base_url.clone()),
        ("NORCE_CLIENT_ID", norce.client_id.clone()),
        ("NORCE_CLIENT_SECRET", norce.client_secret.clone()),
        ("NORCE_APPLICATION_ID", norce.application_id.to_string()),
        ("NORCE_SCOPE", norce.scope.clone()),
        ("NSHIFT_BASE_URL", nshift.base_url.clone()),
        ("NSHIFT_API_KEY_ID", nshift.api_key_id.clone()),
        ("NSHIFT_SECRET_ID", nshift.secret_id.clone()),
        ("NSHIFT_DEVELOPER_ID", nshift.developer_id.clone()),
        ("BRIGHTPEARL_BASE_URL", brightpearl.base_url.clone()),
        ("BRIGHTPEARL_OAUTH_URL", brightpearl.oauth_url.clone()),
        ("BRIGHTPEARL_ACCOUNT", brightpearl.account.clone()),
        ("BRIGHTPEARL_APP_REF", brightpearl.app_ref.clone()),
        ("BRIGHTPEARL_DEV_REF", brightpearl.dev_ref.clone()),
        ("BRIGHTPEARL_STAFF_TOKEN", brightpearl.staff_token.clone()),
    ]
}

/// Why a command runs against the embedded sandbox, for its first line of output.
pub fn sandbox_reason(forced: bool) -> &'static str {
    if forced {
        "--sandbox given"
    } else {
        "No platform is configured (NORCE_*, NSHIFT_*, BRIGHTPEARL_*)"
    }
}
