//! Shipment validation: the statuses a 422 (POST /shipments) or a stored shipment's `statuses`
//! carry, and the completed parties a valid shipment is booked with.

use nshift_models::delivery::{
    Agent, Party, PrintFileType, PrintMedia, Shipment, ValidationStatus, ValidationStatusType,
};

use super::catalog::{self, AddressBook, Returns, ServiceConfig};

/// One validation finding.
pub fn status(
    kind: ValidationStatusType,
    field: &str,
    location: &str,
    code: &str,
    message: impl Into<String>,
) -> ValidationStatus {
    ValidationStatus {
        message: Some(message.into()),
        message_code: Some(code.to_owned()),
        field: Some(field.to_owned()),
        location: Some(location.to_owned()),
        type_: Some(kind),
    }
}

fn error(field: &str, location: &str, code: &str, message: impl Into<String>) -> ValidationStatus {
    status(ValidationStatusType::Error, field, location, code, message)
}

fn warning(
    field: &str,
    location: &str,
    code: &str,
    message: impl Into<String>,
) -> ValidationStatus {
    status(
        ValidationStatusType::Ignorable,
        field,
        location,
        code,
        message,
    )
}

/// Whether any status is blocking (anything but `ignorable`).
pub fn has_errors(statuses: &[ValidationStatus]) -> bool {
    statuses
        .iter()
        .any(|s| !matches!(s.type_, Some(ValidationStatusType::Ignorable)))
}

/// A shipment completed with the account's data, ready to book.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The service.
    pub service: ServiceConfig,
    /// Sender with the address book's data filled in.
    pub sender: Party,
    /// Receiver with the address book's data filled in.
    pub receiver: Party,
    /// The pickup point, for agent services.
    pub agent: Option<Agent>,
    /// Addon codes as sent.
    pub addons: Vec<String>,
    /// One entry per physical parcel.
    pub parcels: Vec<ResolvedParcel>,
}

/// One physical parcel of a valid shipment (a parcel row with `copies: n` gives n of them).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedParcel {
    /// Parcel reference as sent.
    pub reference: Option<String>,
    /// The row's weight in kg as read (numeric strings included).
    pub weight: Option<f64>,
}

fn blank(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(|s| s.trim().is_empty())
}

fn check_address(party: &Party, location: &str, statuses: &mut Vec<ValidationStatus>) {
    if blank(&party.name) {
        statuses.push(error("Address_Name", location, "Name", "Name is missing"));
    }
    if blank(&party.city) {
        statuses.push(error("Address_City", location, "City", "City is missing"));
    }
    let country = party.country.as_deref().map(str::trim).unwrap_or_default();
    if country.is_empty() {
        statuses.push(error(
            "Address_Country",
            location,
            "Country",
            "Country is missing",
        ));
    } else if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
        statuses.push(error(
            "Address_Country",
            location,
            "Country",
            "Not valid country code",
        ));
    }
    match party.zipcode.as_deref().map(str::trim) {
        None | Some("") => statuses.push(error(
            "Address_Zipcode",
            location,
            "ZipCode",
            "Postal code is missing",
        )),
        Some(zip) if !country.is_empty() && !catalog::zip_fits(country, zip) => {
            let pattern = catalog::zip_pattern(country).unwrap_or("?");
            statuses.push(error(
                "Address_Zipcode",
                location,
                "ZipCode",
                format!("Not valid postal code (expected {pattern})"),
            ));
        }
        Some(_) => {}
    }
}

/// The shipment's `normalShipment` / `returnShipment` against the service's return option:
/// a return from a service without one, an outbound shipment of a return product, or a
/// shipment that is neither, are refused like any other field.
fn check_return_option(
    shipment: &Shipment,
    service: &ServiceConfig,
    statuses: &mut Vec<ValidationStatus>,
) {
    let returning = shipment.service.return_shipment == Some(true);
    let normal = shipment.service.normal_shipment.unwrap_or(!returning);
    if !normal && !returning {
        statuses.push(error(
            "Service_NormalShipment",
            "Service",
            "ShipmentType",
            "The shipment is neither a normal nor a return shipment",
        ));
        return;
    }
    match service.returns {
        Returns::None if returning => statuses.push(error(
            "Service_ReturnShipment",
            "Service",
            "ReturnShipment",
            format!("Service {} has no return shipment", service.id),
        )),
        Returns::Only if normal => statuses.push(error(
            "Service_NormalShipment",
            "Service",
            "ReturnShipment",
            format!(
                "Service {} is a return service: book it with returnShipment true and normalShipment false",
                service.id
            ),
        )),
        _ => {}
    }
}

/// Validates `shipment` against the service table and address book.
///
/// `profile_group` is the profile of a profile-bound API key: such a key may only post within it.
pub fn validate(
    shipment: &Shipment,
    services: &[ServiceConfig],
    book: &AddressBook,
    profile_group: Option<&str>,
) -> (Vec<ValidationStatus>, Option<Resolved>) {
    let mut statuses = Vec::new();

    let service = services
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(shipment.service.id.trim()))
        .cloned();
    if service.is_none() {
        statuses.push(error(
            "Service_Id",
            "Service",
            "ServiceId",
            format!("Unknown service code '{}'", shipment.service.id),
        ));
    }

    if let Some(service) = &service {
        check_return_option(shipment, service, &mut statuses);
    }

    let sender = match catalog::complete_party(&shipment.sender, book) {
        Some(party) => {
            check_address(&party, "Sender", &mut statuses);
            party
        }
        None => {
            statuses.push(error(
                "Party_QuickId",
                "Sender",
                "QuickId",
                "Unknown sender quick ID",
            ));
            shipment.sender.clone()
        }
    };
    let receiver = match catalog::complete_party(&shipment.receiver, book) {
        Some(party) => {
            check_address(&party, "Receiver", &mut statuses);
            party
        }
        None => {
            statuses.push(error(
                "Party_QuickId",
                "Receiver",
                "QuickId",
                "Unknown receiver quick ID",
            ));
            shipment.receiver.clone()
        }
    };
    let receiver_country = receiver
        .country
        .as_deref()
        .unwrap_or_default()
        .trim()
        .to_ascii_uppercase();

    if let Some(service) = &service {
        if !receiver_country.is_empty()
            && !service
                .to_countries
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&receiver_country))
        {
            statuses.push(error(
                "Address_Country",
                "Receiver",
                "Route",
                format!(
                    "Service {} does not deliver to {receiver_country}",
                    service.id
                ),
            ));
        }
        if service.requires_phone && blank(&receiver.phone) && blank(&receiver.mobile) {
            statuses.push(error(
                "Address_Phone",
                "Receiver",
                "Phone",
                "Receiver phone or mobile number is required",
            ));
        }
    }
    if blank(&receiver.phone)
        && blank(&receiver.mobile)
        && blank(&receiver.email)
        && !service.as_ref().is_some_and(|s| s.requires_phone)
    {
        statuses.push(warning(
            "Address_Phone",
            "Receiver",
            "Notification",
            "No receiver phone, mobile or e-mail for notifications",
        ));
    }

    let addons: Vec<String> = shipment
        .service
        .addons
        .iter()
        .flatten()
        .map(|a| a.id.trim().to_owned())
        .collect();
    if let Some(service) = &service {
        for addon in &addons {
            if !service.addons.iter().any(|a| a.eq_ignore_ascii_case(addon)) {
                statuses.push(error(
                    "Addon_Id",
                    "Service",
                    "Addon",
                    format!("Addon {addon} is not available for service {}", service.id),
                ));
            }
        }
    }

    let mut agent = None;
    if let Some(service) = &service {
        match (&service.agent_type, &shipment.agent) {
            (Some(agent_type), Some(given)) => match given
                .quick_id
                .as_deref()
                .map(str::trim)
                .filter(|q| !q.is_empty())
            {
                Some(id) => match catalog::agent_by_id(id, Some(agent_type)) {
                    Some(found) if found.country_code.eq_ignore_ascii_case(&receiver_country) => {
                        agent = Some(found)
                    }
                    _ => statuses.push(error(
                        "Agent_QuickId",
                        "Agent",
                        "Agent",
                        format!("Unknown agent '{id}' for {agent_type}"),
                    )),
                },
                None => statuses.push(error(
                    "Agent_QuickId",
                    "Agent",
                    "Agent",
                    "The agent needs its quickId (the id from /addresses/agents)",
                )),
            },
            (Some(agent_type), None) => {
                let zip = receiver.zipcode.as_deref().unwrap_or_default();
                agent = catalog::agents_near(agent_type, &receiver_country, zip)
                    .into_iter()
                    .next();
                if agent.is_some() {
                    statuses.push(warning(
                        "Agent_QuickId",
                        "Agent",
                        "Agent",
                        "No agent given; the nearest agent is used",
                    ));
                } else if !has_errors(&statuses) {
                    statuses.push(error(
                        "Agent_QuickId",
                        "Agent",
                        "Agent",
                        "No agent found near the receiver",
                    ));
                }
            }
            (None, Some(_)) => statuses.push(warning(
                "Agent",
                "Agent",
                "Agent",
                format!("Service {} does not use an agent; ignored", service.id),
            )),
            (None, None) => {}
        }
    }

    let mut parcels = Vec::new();
    if shipment.parcels.is_empty() {
        statuses.push(error(
            "Parcel_Copies",
            "Parcels",
            "ParcelMissing",
            "At least one parcel is required",
        ));
    }
    for (i, row) in shipment.parcels.iter().enumerate() {
        let location = format!("Parcels[{i}]");
        if row.copies < 1 {
            statuses.push(error(
                "Parcel_Copies",
                &location,
                "Copies",
                "Copies must be at least 1",
            ));
            continue;
        }
        if row.copies > 99 {
            statuses.push(error(
                "Parcel_Copies",
                &location,
                "Copies",
                "At most 99 copies per parcel row",
            ));
            continue;
        }
        match row.weight {
            None => statuses.push(warning(
                "Parcel_Weight",
                &location,
                "Weight",
                "Weight is missing",
            )),
            Some(w) if w < 0.0 || !w.is_finite() => statuses.push(error(
                "Parcel_Weight",
                &location,
                "Weight",
                "Weight must be positive",
            )),
            Some(_) => {}
        }
        for _ in 0..row.copies {
            parcels.push(ResolvedParcel {
                reference: row.reference.clone(),
                weight: row.weight,
            });
        }
    }

    for option in shipment.options.iter().flatten() {
        if option.id.eq_ignore_ascii_case("CONSOLIDATE") {
            statuses.push(error(
                "Option_Id",
                "Options",
                "Consolidation",
                "The consolidation function is not available on this account",
            ));
        }
    }

    if let (Some(profile), Some(asked)) = (profile_group, shipment.profile_group.as_deref())
        && !asked.trim().is_empty()
        && asked != profile
    {
        statuses.push(error(
            "ProfileGroup",
            "Shipment",
            "ProfileGroup",
            format!("The API key may only post in profile group {profile}"),
        ));
    }

    let resolved = service.map(|service| Resolved {
        service,
        sender,
        receiver,
        agent,
        addons,
        parcels,
    });
    (statuses, resolved)
}

/// A print target as the server reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Media wire value.
    pub media: String,
    /// ZPL instead of PDF.
    pub zpl: bool,
}

fn media_ok(media: &PrintMedia) -> bool {
    !media.is_unknown()
}

/// Checks the targets and picks the one the label goes to: the first label-capable medium
/// (anything but `laser-a4`), else the first target.
pub fn pick_label_target(
    targets: &[(usize, PrintMedia, Option<PrintFileType>)],
) -> Result<Target, Vec<ValidationStatus>> {
    let mut statuses = Vec::new();
    for (n, media, kind) in targets {
        let field = format!("PrintConfig_Target{n}Media");
        if !media_ok(media) {
            statuses.push(error(
                &field,
                "PrintConfig",
                "Media",
                format!("Unknown media '{}'", media.as_str()),
            ));
        }
        if let Some(kind) = kind {
            if kind.is_unknown() {
                statuses.push(error(
                    &format!("PrintConfig_Target{n}Type"),
                    "PrintConfig",
                    "Type",
                    format!("Unknown type '{}'", kind.as_str()),
                ));
            } else if matches!(kind, PrintFileType::Zpl) && !media.as_str().starts_with("thermo-") {
                statuses.push(error(
                    &format!("PrintConfig_Target{n}Type"),
                    "PrintConfig",
                    "Type",
                    "ZPL needs a thermo medium",
                ));
            }
        }
    }
    if !statuses.is_empty() {
        return Err(statuses);
    }
    let chosen = targets
        .iter()
        .find(|(_, media, _)| !matches!(media, PrintMedia::LaserA4))
        .or_else(|| targets.first());
    match chosen {
        Some((_, media, kind)) => Ok(Target {
            media: media.as_str().to_owned(),
            zpl: matches!(kind, Some(PrintFileType::Zpl)),
        }),
        None => Err(vec![error(
            "PrintConfig_Target1Media",
            "PrintConfig",
            "Media",
            "No print target",
        )]),
    }
}
