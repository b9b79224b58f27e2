//! Environments, endpoints and token scopes: where the Norce APIs live for a tenant.
//!
//! Token scopes: Norce's sources contradict. The current OAuth2 page lists `playground`, `stage`
//! or `prod`; its older version (and every code example) says `production`, with `lab` for
//! playground and stage in places; the Norce \[Storm\] page says `lab qa production`. The
//! default follows the current page (production → `prod`); `NORCE_LEGACY_LAB_SCOPE=true`
//! switches to the legacy values (`lab`, and `production` for production), and `NORCE_SCOPE`
//! sends any value.

use std::fmt;
use std::str::FromStr;

use client_core::SettingsError;
use reqwest::Url;

/// The identity path shared by the Norce hosts and the sandbox.
const TOKEN_PATH: &str = norce_models::identity::operations::REQUEST_TOKEN.path;

/// The legacy Norce \[Storm\] token endpoint (no `/identity` path prefix).
pub const LEGACY_STORM_TOKEN_URL: &str = "https://identity.storm.io/1.0/connect/token";

/// A Norce stage. Production has no stage segment in the host name.
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
    /// Every stage, as written in `NORCE_STAGE`.
    pub const NAMES: &'static [&'static str] = &["playground", "stage", "production"];

    /// The value of `NORCE_STAGE` for this stage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Playground => "playground",
            Self::Stage => "stage",
            Self::Production => "production",
        }
    }

    /// The host segment between `api-{region}` and `norce.tech` (none for production).
    pub fn host_segment(self) -> Option<&'static str> {
        (self != Self::Production).then(|| self.as_str())
    }

    /// The token scope: what Norce's current OAuth2 page lists (`playground`, `stage`,
    /// `prod`). With `legacy_lab`, the legacy values instead: `lab` for playground and stage
    /// and `production` for production, which older pages, Norce's code examples and every
    /// Norce \[Storm\] tenant use.
    ///
    /// ```
    /// use norce_client::Stage;
    /// assert_eq!(Stage::Production.scope(false), "prod");
    /// assert_eq!(Stage::Production.scope(true), "production");
    /// assert_eq!(Stage::Stage.scope(true), "lab");
    /// ```
    pub fn scope(self, legacy_lab: bool) -> &'static str {
        match (self, legacy_lab) {
            (Self::Production, false) => "prod",
            (Self::Production, true) => "production",
            (_, true) => "lab",
            (Self::Playground, false) => "playground",
            (Self::Stage, false) => "stage",
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
        match s.trim().to_ascii_lowercase().as_str() {
            "playground" => Ok(Self::Playground),
            "stage" => Ok(Self::Stage),
            "production" | "prod" => Ok(Self::Production),
            _ => Err(ParseStageError),
        }
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
        /// The stage, used for the token scope; may be omitted when a scope is given.
        stage: Option<Stage>,
    },
}

impl Environment {
    /// A Norce tenant. The slug and region are validated when the client is built.
    pub fn norce(client_slug: impl Into<String>, region: impl Into<String>, stage: Stage) -> Self {
        Self::Norce {
            client_slug: client_slug.into(),
            region: region.into(),
            stage,
        }
    }

    /// An explicit base URL (HTTPS, or HTTP on loopback), checked as `NORCE_BASE_URL`.
    pub fn base_url(url: &str, stage: Option<Stage>) -> Result<Self, SettingsError> {
        Ok(Self::BaseUrl {
            url: client_core::base_url("NORCE_BASE_URL", url)?,
            stage,
        })
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
        match self {
            Self::Norce {
                client_slug,
                region,
                stage,
            } => {
                check_label("NORCE_CLIENT_SLUG", client_slug, true)?;
                check_label("NORCE_REGION", region, false)?;
                let host = match stage.host_segment() {
                    Some(segment) => format!("{client_slug}.api-{region}.{segment}.norce.tech"),
                    None => format!("{client_slug}.api-{region}.norce.tech"),
                };
                Url::parse(&format!("https://{host}")).map_err(|e| {
                    SettingsError::invalid(
                        "NORCE_CLIENT_SLUG",
                        format!("`{host}` is not a valid host ({e})"),
                    )
                })
            }
            Self::BaseUrl { url, .. } => Ok(url.clone()),
        }
    }
}

/// A DNS label: lower-case letters and digits (and hyphens for the slug), not empty.
fn check_label(setting: &str, value: &str, hyphens: bool) -> Result<(), SettingsError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && !value.starts_with('-')
        && !value.ends_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || (hyphens && c == '-'));
    if ok {
        Ok(())
    } else {
        let allowed = if hyphens {
            "lower-case letters, digits and inner hyphens"
        } else {
            "lower-case letters and digits"
        };
        Err(SettingsError::invalid(
            setting,
            format!(
                "`{value}` must be {allowed} (the part of the Norce host name, e.g. `norce-open-demo` / `se`)"
            ),
        ))
    }
}

/// The URLs a client talks to. The operation paths of `norce-models` (which start with
/// `/commerce/...`) are appended to the Services, Connect and Query roots.
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
    /// The endpoints of `environment`; with `legacy_storm_identity` the token comes from
    /// `https://identity.storm.io/1.0/connect/token`.
    ///
    /// ```
    /// use norce_client::{Endpoints, Environment, Stage};
    /// let e = Endpoints::resolve(&Environment::norce("norce-open-demo", "se", Stage::Playground), false).unwrap();
    /// assert_eq!(e.token_url.as_str(), "https://norce-open-demo.api-se.playground.norce.tech/identity/1.0/connect/token");
    /// assert_eq!(e.services.as_str(), "https://norce-open-demo.api-se.playground.norce.tech/");
    /// let p = Endpoints::resolve(&Environment::norce("shop", "se", Stage::Production), false).unwrap();
    /// assert_eq!(p.query.as_str(), "https://shop.api-se.norce.tech/");
    /// ```
    pub fn resolve(
        environment: &Environment,
        legacy_storm_identity: bool,
    ) -> Result<Self, SettingsError> {
        let root = environment.api_root()?;
        let token_url = if legacy_storm_identity {
            Url::parse(LEGACY_STORM_TOKEN_URL)
                .map_err(|e| SettingsError::invalid("NORCE_LEGACY_STORM_IDENTITY", e.to_string()))?
        } else {
            client_core::join_path(&root, TOKEN_PATH)
        };
        Ok(Self {
            token_url,
            services: root.clone(),
            connect: root.clone(),
            query: root,
        })
    }
}

/// The token scope: an explicit scope (`NORCE_SCOPE`, any of the documented `playground`,
/// `stage`, `prod`, `production`, `lab`, `qa`, or another value) wins, then the stage (with the
/// legacy mapping, see [`Stage::scope`]).
pub(crate) fn resolve_scope(
    explicit: Option<&str>,
    stage: Option<Stage>,
    legacy_lab: bool,
) -> Result<String, SettingsError> {
    if let Some(scope) = explicit.map(str::trim).filter(|s| !s.is_empty()) {
        return Ok(scope.to_owned());
    }
    match stage {
        Some(stage) => Ok(stage.scope(legacy_lab).to_owned()),
        None => Err(SettingsError::missing(
            "NORCE_STAGE",
            "set it to playground, stage or production (or set NORCE_SCOPE)",
        )),
    }
}
