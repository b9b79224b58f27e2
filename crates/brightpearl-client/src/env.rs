//! The environment variables (and settings names) the builder reads.

/// Account code (required).
pub const ACCOUNT: &str = "BRIGHTPEARL_ACCOUNT";
/// App reference, sent as `brightpearl-app-ref` on every call (required).
pub const APP_REF: &str = "BRIGHTPEARL_APP_REF";
/// Developer reference, `brightpearl-dev-ref` (required with OAuth).
pub const DEV_REF: &str = "BRIGHTPEARL_DEV_REF";
/// OAuth client id (default: the app reference).
pub const CLIENT_ID: &str = "BRIGHTPEARL_CLIENT_ID";
/// OAuth client secret (or `_FILE`), for apps with confidential OAuth.
pub const CLIENT_SECRET: &str = "BRIGHTPEARL_CLIENT_SECRET";
/// Staff token of a private app (or `_FILE`); selects the private-app scheme.
pub const STAFF_TOKEN: &str = "BRIGHTPEARL_STAFF_TOKEN";
/// File where rotating OAuth tokens are kept (required with OAuth).
pub const TOKEN_STORE: &str = "BRIGHTPEARL_TOKEN_STORE";
/// Initial refresh token, used while the token store is empty (or `_FILE`).
pub const REFRESH_TOKEN: &str = "BRIGHTPEARL_REFRESH_TOKEN";
/// API base URL, e.g. `https://euw1.brightpearlconnect.com` (with OAuth the token's
/// `api_domain` wins).
pub const BASE_URL: &str = "BRIGHTPEARL_BASE_URL";
/// OAuth base URL (`/authorize/{account}`, `/token/{account}`), default
/// `https://oauth.brightpearl.com`.
pub const OAUTH_URL: &str = "BRIGHTPEARL_OAUTH_URL";
/// Per-request timeout in whole seconds (at least 1), default 30.
pub const TIMEOUT_SECS: &str = "BRIGHTPEARL_TIMEOUT_SECS";

/// Default OAuth host.
pub const DEFAULT_OAUTH_URL: &str = "https://oauth.brightpearl.com";
