//! The platforms relay talks to, and which of them the settings configure (used by the flows'
//! context, `relay verify`, `run` and `serve`).

use client_core::Settings;
use serde::Serialize;

/// A platform relay talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Norce Commerce.
    Norce,
    /// nShift Delivery.
    Nshift,
    /// Brightpearl.
    Brightpearl,
}

impl Platform {
    /// All platforms, in report order.
    pub const ALL: [Platform; 3] = [Platform::Norce, Platform::Nshift, Platform::Brightpearl];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Norce => "Norce",
            Platform::Nshift => "nShift",
            Platform::Brightpearl => "Brightpearl",
        }
    }

    /// The settings whose presence means the platform is configured.
    pub fn settings(self) -> &'static [&'static str] {
        match self {
            Platform::Norce => &[
                "NORCE_CLIENT_ID",
                "NORCE_CLIENT_SECRET",
                "NORCE_APPLICATION_ID",
                "NORCE_CLIENT_SLUG",
                "NORCE_BASE_URL",
            ],
            Platform::Nshift => &["NSHIFT_API_KEY_ID", "NSHIFT_SECRET_ID", "NSHIFT_BASE_URL"],
            Platform::Brightpearl => &[
                "BRIGHTPEARL_ACCOUNT",
                "BRIGHTPEARL_CLIENT_ID",
                "BRIGHTPEARL_STAFF_TOKEN",
                "BRIGHTPEARL_BASE_URL",
            ],
        }
    }
}

/// The platforms with at least one setting present.
pub fn configured_platforms(settings: &Settings) -> Vec<Platform> {
    Platform::ALL
        .into_iter()
        .filter(|p| settings.any_set(p.settings()))
        .collect()
}
