//! Where a tenant's APIs live, and its token scope (README, "Settings" and "Token scopes").

use std::fmt;
use std::str::FromStr;

use client_core::SettingsError;
use reqwest::Url;

/// The legacy Norce \[Storm\] token endpoint (no `/identity` path prefix).
pub const LEGACY_STORM_TOKEN_URL: &str = "https://identity.storm.io/1.0/connect/token";

/// A Norce stage (`NORCE_STAGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// `{client}.api-{region}.playground.norce.tech`, scope `playground`.
    Playground,
    /// `{client}.api-{region}.stage.norce.tech`, scope `stage`.
    Stage,
    /// `{client}.api-{region}.norce.tech`, scope `prod` (legacy: `production`).
    Production,
}

impl Stage {
    /// Every stage, as written in `NORCE_STAGE` (in declaration order).
    pub const NAMES: &'static [&'static str] = &["playground", "stage", "production"];

    /// The value of `NORCE_STAGE` for this stage.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The host segment between `api-{region}` and `norce.tech` (none for production).
    pub fn host_segment(self) -> Option<&'static str> {
        (self != Self::Production).then(|| self.as_str())
    }

    /// The token scope: the current OAuth2 page's (`playground`, `stage`, `prod`), or with
    /// `legacy_lab` the older pages' and Storm tenants' (`lab`, `lab`, `production`).
    pub fn scope(self, legacy_lab: bool) -> &'static str {
        match (self, legacy_lab) {
            (Self::Production, false) => "prod",
            (Self::Production, true) => "production",
            (_, true) => "lab",
            (stage, false) => stage.as_str(),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `NORCE_STAGE` is not one of the stages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected one of playground, stage, production")]
pub struct ParseStageError;

impl FromStr for Stage {
    type Err = ParseStageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [Self::Playground, Self::Stage, Self::Production];
        match s.trim().to_ascii_lowercase().as_str() {
            "prod" => Some(Self::Production),
            name => all.into_iter().find(|stage| stage.as_str() == name),
        }
        .ok_or(ParseStageError)
    }
}

/// Where a tenant's APIs live.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Environment {
    /// A Norce Commerce tenant: `https://{client_slug}.api-{region}[.{stage}].norce.tech`.
    Norce {
        /// The client (tenant) slug, e.g. `norce-open-demo`.
        client_slug: String,
        /// The region, e.g. `se`.
        region: String,
        /// The stage.
        stage: Stage,
    },
    /// One explicit root for identity, Services, Connect and Query (the sandbox, a proxy).
    BaseUrl {
        /// The root; operation paths (`/identity/...`, `/commerce/...`) are appended to it.
        url: Url,
        /// The stage, for the token scope; may be omitted when a scope is given.
        stage: Option<Stage>,
    },
}

impl Environment {
    /// A Norce tenant. The slug and region are checked when the client is built.
    pub fn norce(client_slug: impl Into<String>, region: impl Into<String>, stage: Stage) -> Self {
        let (client_slug, region) = (client_slug.into(), region.into());
        Self::Norce {
            client_slug,
            region,
            stage,
        }
    }

    /// An explicit base URL (HTTPS, or HTTP on loopback), checked as `NORCE_BASE_URL`.
    pub fn base_url(url: &str, stage: Option<Stage>) -> Result<Self, SettingsError> {
        let url = client_core::base_url("NORCE_BASE_URL", url)?;
        Ok(Self::BaseUrl { url, stage })
    }

    /// The stage, if known.
    pub fn stage(&self) -> Option<Stage> {
        match self {
            Self::Norce { stage, .. } => Some(*stage),
            Self::BaseUrl { stage, .. } => *stage,
        }
    }

    /// The API root of this environment.
    pub fn api_root(&self) -> Result<Url, SettingsError> {
        let (slug, region, stage) = match self {
            Self::Norce {
                client_slug,
                region,
                stage,
            } => (client_slug, region, stage),
            Self::BaseUrl { url, .. } => return Ok(url.clone()),
        };
        check_label("NORCE_CLIENT_SLUG", slug, true)?;
        check_label("NORCE_REGION", region, false)?;
        let stage = stage
            .host_segment()
            .map(|s| format!(".{s}"))
            .unwrap_or_default();
        let host = format!("{slug}.api-{region}{stage}.norce.tech");
        Url::parse(&format!("https://{host}")).map_err(|e| {
            let reason = format!("`{host}` is not a valid host ({e})");
            SettingsError::invalid("NORCE_CLIENT_SLUG", reason)
        })
    }
}

/// A DNS label: lower-case letters and digits (and inner hyphens for the slug).
fn check_label(setting: &str, value: &str, hyphens: bool) -> Result<(), SettingsError> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || (hyphens && c == '-');
    let edges = !value.starts_with('-') && !value.ends_with('-');
    if !value.is_empty() && value.len() <= 63 && edges && value.chars().all(allowed) {
        return Ok(());
    }
    let what = match hyphens {
        true => "lower-case letters, digits and inner hyphens",
        false => "lower-case letters and digits",
    };
    let reason = format!(
        "`{value}` must be {what} (the part of the Norce host name, e.g. `norce-open-demo` / `se`)"
    );
    Err(SettingsError::invalid(setting, reason))
}

/// The URLs a client talks to. The operation paths of `norce-models` (`/commerce/...`) are
/// appended to the Services, Connect and Query roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The OAuth2 token endpoint.
    pub token_url: Url,
    /// Root of Services 1.1 (`/commerce/{service}/1.1/...`).
    pub services: Url,
    /// Root of Connect 4.0 (`/commerce/connect/4.0/...`).
    pub connect: Url,
    /// Root of Query 3.0 (`/commerce/query/3.0/...`).
    pub query: Url,
}

impl Endpoints {
    /// The endpoints of `environment`; with `legacy_storm` (`NORCE_LEGACY_STORM_IDENTITY`) the
    /// token comes from [`LEGACY_STORM_TOKEN_URL`].
    pub fn resolve(environment: &Environment, legacy_storm: bool) -> Result<Self, SettingsError> {
        let root = environment.api_root()?;
        let token_url = match legacy_storm {
            true => Url::parse(LEGACY_STORM_TOKEN_URL).map_err(|e| {
                SettingsError::invalid("NORCE_LEGACY_STORM_IDENTITY", e.to_string())
            })?,
            false => {
                let path = norce_models::identity::operations::REQUEST_TOKEN.path;
                client_core::join_path(&root, path)
            }
        };
        let (services, connect) = (root.clone(), root.clone());
        Ok(Self {
            token_url,
            services,
            connect,
            query: root,
        })
    }
}

/// The token scope: a non-blank `NORCE_SCOPE` as given, else the stage's ([`Stage::scope`]).
pub(crate) fn resolve_scope(
    explicit: Option<&str>,
    stage: Option<Stage>,
    legacy_lab: bool,
) -> Result<String, SettingsError> {
    match (explicit.map(str::trim).filter(|s| !s.is_empty()), stage) {
        (Some(scope), _) => Ok(scope.to_owned()),
        (None, Some(stage)) => Ok(stage.scope(legacy_lab).to_owned()),
        (None, None) => Err(SettingsError::missing(
            "NORCE_STAGE",
            "set it to playground, stage or production (or set NORCE_SCOPE)",
        )),
    }
}
