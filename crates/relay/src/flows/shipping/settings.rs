//! `[shipping]` as a pass uses it: checked, with the built-in service mappings under the
//! configured ones, and the service chosen for an order.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::orders::Cutoff;
pub use crate::config::shipping::{
    ParcelStatusWriteback, ServiceMapping, ServiceOverride, ShippingConfig,
};
use crate::flows::context::{FlowContext, FlowError};

/// Statuses after which an order is never shipped unless configured to qualify.
pub(crate) const FINAL_STATUSES: &[&str] =
    &["Delivered", "PartlyDelivered", "Invoiced", "Cancelled"];

/// The pickup-point networks (`agent_type`) of the delivery-method mappings in force (the
/// configured ones over the built-in), for `relay verify --deep`'s agent search.
pub fn agent_types(config: &ShippingConfig) -> Vec<String> {
    let mut types: Vec<String> = services_in_force(config)
        .values()
        .filter_map(|m| m.agent_type.clone())
        .filter(|a| !a.trim().is_empty())
        .collect();
    types.dedup();
    types
}

/// The delivery-method mappings in force: the configured ones over the built-in (for the
/// flow, `relay verify --deep` and the console's mappings page).
pub fn services_in_force(config: &ShippingConfig) -> BTreeMap<String, ServiceMapping> {
    let mut services = builtin_services();
    services.extend(config.services.clone());
    services
}

fn builtin_services() -> BTreeMap<String, ServiceMapping> {
    let notices = || vec!["NOTSMS".to_owned(), "NOTEMAIL".to_owned()];
    let mut services = BTreeMap::new();
    services.insert(
        "POSTNORD_HOME".to_owned(),
        ServiceMapping {
            service_id: "P17".into(),
            addons: notices(),
            partner_id: Some("PLAB".into()),
            ..Default::default()
        },
    );
    services.insert(
        "POSTNORD_PICKUP".to_owned(),
        ServiceMapping {
            service_id: "P19".into(),
            addons: notices(),
            partner_id: Some("PLAB".into()),
            agent_type: Some("POSTNORD".into()),
            ..Default::default()
        },
    );
    let mut budbee_countries = BTreeMap::new();
    // Budbee does not deliver to Norway (nor does the sandbox's BUDBEEHD): PostNord home there.
    budbee_countries.insert(
        "NO".to_owned(),
        ServiceOverride {
            service_id: Some("P17".into()),
            partner_id: Some("PLAB".into()),
            ..Default::default()
        },
    );
    services.insert(
        "BUDBEE_HOME".to_owned(),
        ServiceMapping {
            service_id: "BUDBEEHD".into(),
            addons: notices(),
            partner_id: Some("BUDBEE".into()),
            countries: budbee_countries,
            ..Default::default()
        },
    );
    services
}

/// The service chosen for one order (mapping plus country override).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChosenService {
    pub service_id: String,
    pub addons: Vec<String>,
    pub partner_id: Option<String>,
    pub customer_no: Option<String>,
    pub agent_type: Option<String>,
    pub sender_quick_id: String,
    /// The return product for returns booked on their own (`return_service`).
    pub return_service: Option<String>,
    /// Whether the return label is booked with the outbound shipment.
    pub return_with_outbound: bool,
}

/// The configuration checked and completed, as a run uses it.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub poll: bool,
    /// `shipping.since`: orders placed before it are never booked.
    pub since: Option<Cutoff>,
    /// (name, statusId) of the qualifying statuses.
    pub statuses: Vec<(String, i32)>,
    pub labels_dir: PathBuf,
    pub test: bool,
    pub default_parcel_weight_kg: f64,
    pub item_weight_kg: f64,
    pub part_weights_kg: BTreeMap<String, f64>,
    pub max_parcel_weight_kg: f64,
    pub pickup_fallback_nearest: bool,
    pub skip_delivery_methods: Vec<String>,
    pub track: bool,
    pub parcel_status: ParcelStatusWriteback,
    pub sender_quick_id: String,
    pub services: BTreeMap<String, ServiceMapping>,
    pub concurrency: usize,
}

impl Settings {
    /// `[shipping]` checked (as at load) and completed: the built-in service mappings under
    /// the configured ones, the labels folder, and whether nShift bookings are test ones.
    pub(crate) fn new(ctx: &FlowContext, nshift_base_url: Option<&str>) -> Result<Self, FlowError> {
        let config = &ctx.config.shipping;
        // A context built in code (tests, tools) skips the load: check here too.
        config.validate()?;
        let statuses = config.statuses()?;
        let services = services_in_force(config);
        let labels_dir = config.labels_dir_in(&ctx.config.state.dir);
        let test = config
            .test
            .unwrap_or_else(|| nshift_base_url.is_some_and(is_loopback_url));
        Ok(Self {
            poll: config.poll,
            since: config.since,
            statuses,
            labels_dir,
            test,
            default_parcel_weight_kg: config.default_parcel_weight_kg,
            item_weight_kg: config.item_weight_kg,
            part_weights_kg: config.part_weights_kg.clone(),
            max_parcel_weight_kg: config.max_parcel_weight_kg,
            pickup_fallback_nearest: config.pickup_fallback_nearest,
            skip_delivery_methods: config.skip_delivery_methods.clone(),
            track: config.track,
            parcel_status: config.parcel_status,
            sender_quick_id: config.sender_quick_id.trim().to_owned(),
            services,
            concurrency: ctx.config.run.concurrency.max(1),
        })
    }

    /// Whether a Norce status text qualifies.
    pub(crate) fn qualifies(&self, status: &str) -> bool {
        self.statuses
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(status.trim()))
    }

    /// Why an order placed at `placed` is not booked under `shipping.since`; `None` when it is
    /// taken (at or after the cutoff, no cutoff, or no placing time to judge by).
    pub(crate) fn before_cutoff(
        &self,
        placed: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<String> {
        before_cutoff(self.since.as_ref(), placed)
    }

    pub(crate) fn skips(&self, delivery_method: &str) -> bool {
        self.skip_delivery_methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(delivery_method.trim()))
    }

    /// The service for a delivery method and receiver country, or `None` when unmapped.
    pub(crate) fn service_for(
        &self,
        delivery_method: &str,
        country: &str,
    ) -> Option<ChosenService> {
        let mapping = self.services.get(delivery_method.trim()).or_else(|| {
            self.services
                .iter()
                .find(|(code, _)| code.eq_ignore_ascii_case(delivery_method.trim()))
                .map(|(_, m)| m)
        })?;
        let mut chosen = ChosenService {
            service_id: mapping.service_id.trim().to_owned(),
            addons: mapping.addons.clone(),
            partner_id: mapping.partner_id.clone(),
            customer_no: mapping.customer_no.clone(),
            agent_type: mapping.agent_type.clone().filter(|a| !a.trim().is_empty()),
            sender_quick_id: mapping
                .sender_quick_id
                .clone()
                .unwrap_or_else(|| self.sender_quick_id.clone()),
            return_service: mapping
                .return_service
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            return_with_outbound: mapping.return_with_outbound,
        };
        if let Some(over) = mapping
            .countries
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(country))
            .map(|(_, o)| o)
        {
            if let Some(id) = &over.service_id {
                chosen.service_id = id.trim().to_owned();
            }
            if let Some(addons) = &over.addons {
                chosen.addons = addons.clone();
            }
            if over.partner_id.is_some() {
                chosen.partner_id = over.partner_id.clone();
            }
            if over.customer_no.is_some() {
                chosen.customer_no = over.customer_no.clone();
            }
            if let Some(agent) = &over.agent_type {
                chosen.agent_type = Some(agent.clone()).filter(|a| !a.trim().is_empty());
            }
        }
        Some(chosen)
    }
}

/// Why an order placed at `placed` is not booked under the cutoff `since` (`shipping.since`).
pub(crate) fn before_cutoff(
    since: Option<&Cutoff>,
    placed: Option<chrono::DateTime<chrono::Utc>>,
) -> Option<String> {
    let reason = since?.reason("shipping.since", placed?)?;
    Some(format!("{reason}: never booked in nShift"))
}

/// Whether a URL's host is 127.0.0.1, ::1 or localhost.
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host_port = rest.split(['/', '?']).next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelayConfig;

    fn context(shipping: ShippingConfig) -> FlowContext {
        FlowContext::offline(RelayConfig {
            shipping,
            ..RelayConfig::default()
        })
    }

    #[test]
    fn defaults_map_the_sandbox_delivery_methods() {
        let ctx = context(ShippingConfig::default());
        let settings = Settings::new(&ctx, Some("http://127.0.0.1:4000/rs-extapi/v1")).unwrap();
        assert!(settings.test, "a loopback nShift gets test shipments");
        assert_eq!(
            settings.labels_dir,
            PathBuf::from("relay-data").join("labels")
        );
        assert_eq!(
            settings
                .service_for("POSTNORD_HOME", "SE")
                .unwrap()
                .service_id,
            "P17"
        );
        let pickup = settings.service_for("POSTNORD_PICKUP", "SE").unwrap();
        assert_eq!(
            (pickup.service_id.as_str(), pickup.agent_type.as_deref()),
            ("P19", Some("POSTNORD"))
        );
        assert_eq!(
            settings
                .service_for("BUDBEE_HOME", "SE")
                .unwrap()
                .service_id,
            "BUDBEEHD"
        );
        assert_eq!(
            settings
                .service_for("BUDBEE_HOME", "no")
                .unwrap()
                .service_id,
            "P17"
        );
        assert!(settings.service_for("DHL_EXPRESS", "SE").is_none());
        assert!(
            settings.qualifies("created")
                && settings.qualifies("Confirmed")
                && !settings.qualifies("Delivered")
        );
        let real = Settings::new(&ctx, Some("https://api.unifaun.com/rs-extapi/v1")).unwrap();
        assert!(
            !real.test,
            "a real nShift gets real shipments unless `test` says otherwise"
        );
    }

    #[test]
    fn the_file_overrides_and_extends_the_mapping() {
        let text = r#"
            [shipping]
            order_statuses = ["Confirmed"]
            test = false
            [shipping.services.POSTNORD_HOME]
            service_id = "P15"
            partner_id = "PLAB"
            customer_no = "0123456789"
            [shipping.services.DHL]
            service_id = "ASP2"
            [shipping.services.DHL.countries.FI]
            service_id = "P17"
            addons = []
        "#;
        let config = RelayConfig::parse(text, "relay.toml").unwrap();
        let ctx = context(config.shipping);
        let settings = Settings::new(&ctx, Some("http://127.0.0.1:1")).unwrap();
        assert!(!settings.test);
        let home = settings.service_for("POSTNORD_HOME", "SE").unwrap();
        assert_eq!(
            (home.service_id.as_str(), home.customer_no.as_deref()),
            ("P15", Some("0123456789"))
        );
        assert_eq!(
            settings.service_for("DHL", "SE").unwrap().service_id,
            "ASP2"
        );
        let fi = settings.service_for("DHL", "FI").unwrap();
        assert_eq!((fi.service_id.as_str(), fi.addons.len()), ("P17", 0));
        assert_eq!(
            settings
                .service_for("POSTNORD_PICKUP", "SE")
                .unwrap()
                .service_id,
            "P19",
            "built-ins stay"
        );
        assert_eq!(settings.statuses, vec![("Confirmed".to_owned(), 2)]);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let err = RelayConfig::parse("[shipping]\nlabel_dir = \"x\"\n", "relay.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("label_dir"), "{err}");
        let cases = [
            (
                "[shipping]\norder_statuses = [\"Shipped\"]\n",
                "shipping.order_statuses",
            ),
            (
                "[shipping]\norder_statuses = []\n",
                "shipping.order_statuses",
            ),
            (
                "[shipping]\nmax_parcel_weight_kg = 0.0\n",
                "shipping.max_parcel_weight_kg",
            ),
            (
                "[shipping.services.X]\naddons = [\"NOT\"]\n",
                "shipping.services.X.service_id",
            ),
            (
                "[shipping.services.X]\nservice_id = \"P15\"\ncustomer_no = \"1\"\n",
                "shipping.services.X.partner_id",
            ),
            (
                "[shipping.services.X]\nservice_id = \"P15\"\n[shipping.services.X.countries.Norway]\nservice_id = \"P17\"\n",
                "shipping.services.X.countries.Norway",
            ),
            (
                "[shipping.part_weights_kg]\n\"SKU-1\" = -1.0\n",
                "shipping.part_weights_kg",
            ),
        ];
        for (text, key) in cases {
            // Checked when the file loads, naming the key.
            let err = RelayConfig::parse(text, "relay.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
            // And again by a pass whose configuration was built in code, not loaded.
            let config: RelayConfig = toml::from_str(text).unwrap();
            let err = Settings::new(&context(config.shipping), None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("http://127.0.0.1:8080/x"));
        assert!(is_loopback_url("http://localhost/x"));
        assert!(is_loopback_url("http://[::1]:9/x"));
        assert!(!is_loopback_url("https://api.unifaun.com/rs-extapi/v1"));
    }
}
