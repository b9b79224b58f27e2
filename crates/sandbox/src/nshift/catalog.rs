//! Seeded reference data: carrier services, zip code patterns, pickup points (agents) and the
//! account's address book.
//!
//! Everything here is a pure function of its inputs (or of the dataset), so the same request
//! always gets the same agents and the same sender. It uses no other module of the crate: the
//! dataset takes its pickup points from here.

use nshift_models::delivery::{Agent, Party};
use serde::{Deserialize, Serialize};

/// A carrier service the simulated account can book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// Service code (`service.id`), e.g. `P19`.
    pub id: String,
    /// Carrier id (`partnerId` in alerts), e.g. `PLAB` for PostNord.
    pub partner_id: String,
    /// Human-readable name, printed on the label.
    pub description: String,
    /// Receiver countries the service reaches (ISO alpha-2).
    pub to_countries: Vec<String>,
    /// Addon codes the service accepts (compared case-insensitively).
    pub addons: Vec<String>,
    /// Agent network (`/addresses/agents` `type`) for pickup-point services.
    #[serde(default)]
    pub agent_type: Option<String>,
    /// Whether a receiver phone or mobile number is required (an error when missing).
    #[serde(default)]
    pub requires_phone: bool,
    /// What the service offers for returns (`service.returnShipment`).
    #[serde(default)]
    pub returns: Returns,
}

/// A service's return option: nShift prints a return shipment only for services that have one
/// (the carrier's return product, or the return variant of an outbound service).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Returns {
    /// No return shipment (`returnShipment: true` is refused with 422).
    #[default]
    None,
    /// Outbound, with an optional return shipment in the same booking (`normalShipment` and
    /// `returnShipment` both true: two shipments) or a return shipment on its own.
    WithOutbound,
    /// A return product: only return shipments (`normalShipment: false`,
    /// `returnShipment: true`); an outbound booking is refused with 422.
    Only,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The default service table.
///
/// `P15`, `P19` and `PDK17` are the PostNord codes the reference notes use (RAML examples, spec
/// examples); the DHL (`ASPO`, `ASP2`) and Budbee (`BUDBEEHD`) codes are sandbox choices, and
/// so is the return product `P24` and which services offer a return (the PostNord ones; see
/// `x-assumed` on `Service.returnShipment` in specs/nshift/delivery.yaml).
pub fn default_services() -> Vec<ServiceConfig> {
    let nordic = strings(&["SE", "NO", "DK", "FI"]);
    vec![
        ServiceConfig {
            id: "P15".into(),
            partner_id: "PLAB".into(),
            description: "PostNord Parcel".into(),
            to_countries: nordic.clone(),
            addons: strings(&["NOT", "NOTSMS", "NOTEMAIL", "COD", "RPAY", "DNG"]),
            agent_type: None,
            requires_phone: false,
            returns: Returns::WithOutbound,
        },
        ServiceConfig {
            id: "P17".into(),
            partner_id: "PLAB".into(),
            description: "PostNord MyPack Home".into(),
            to_countries: nordic.clone(),
            addons: strings(&["NOTSMS", "NOTEMAIL", "DLVFLEX"]),
            agent_type: None,
            requires_phone: false,
            returns: Returns::WithOutbound,
        },
        ServiceConfig {
            id: "P19".into(),
            partner_id: "PLAB".into(),
            description: "PostNord MyPack Collect".into(),
            to_countries: nordic.clone(),
            addons: strings(&["NOTSMS", "NOTEMAIL", "PUPOPT", "COD"]),
            agent_type: Some("POSTNORD".into()),
            requires_phone: false,
            returns: Returns::WithOutbound,
        },
        ServiceConfig {
            id: "PDK17".into(),
            partner_id: "PLAB".into(),
            description: "PostNord MyPack Home (DK)".into(),
            to_countries: strings(&["DK"]),
            addons: strings(&["NOTSMS", "NOTEMAIL"]),
            agent_type: None,
            requires_phone: false,
            returns: Returns::WithOutbound,
        },
        ServiceConfig {
            id: "ASPO".into(),
            partner_id: "DHL".into(),
            description: "DHL Service Point".into(),
            to_countries: strings(&["SE"]),
            addons: strings(&["NOTSMS", "NOTEMAIL", "PUPOPT", "COD"]),
            agent_type: Some("DHLSP".into()),
            requires_phone: false,
            returns: Returns::None,
        },
        ServiceConfig {
            id: "ASP2".into(),
            partner_id: "DHL".into(),
            description: "DHL Paket".into(),
            to_countries: nordic,
            addons: strings(&["NOT", "RPAY", "DNG"]),
            agent_type: None,
            requires_phone: false,
            returns: Returns::None,
        },
        ServiceConfig {
            id: "BUDBEEHD".into(),
            partner_id: "BUDBEE".into(),
            description: "Budbee Home Delivery".into(),
            to_countries: strings(&["SE", "FI", "DK"]),
            addons: strings(&["NOTSMS", "NOTEMAIL"]),
            agent_type: None,
            requires_phone: true,
            returns: Returns::None,
        },
        ServiceConfig {
            id: "P24".into(),
            partner_id: "PLAB".into(),
            description: "PostNord Return Drop Off".into(),
            to_countries: strings(&["SE", "NO", "DK", "FI"]),
            addons: strings(&["NOTEMAIL"]),
            agent_type: None,
            requires_phone: false,
            returns: Returns::Only,
        },
    ]
}

/// The zip code pattern of a country (`N` = digit, `A` = letter), as `/addresses/zipcodes`
/// reports it. `None` for countries the sandbox does not check.
pub fn zip_pattern(country: &str) -> Option<&'static str> {
    match country.to_ascii_uppercase().as_str() {
        "SE" | "FI" | "DE" | "EE" => Some("NNNNN"),
        "NO" | "DK" => Some("NNNN"),
        "IS" => Some("NNN"),
        "PL" => Some("NN-NNN"),
        "NL" => Some("NNNNAA"),
        _ => None,
    }
}

/// The zip code with the separators a country allows removed (`411 21` → `41121` in Sweden).
pub fn normalize_zip(country: &str, zip: &str) -> String {
    let trimmed = zip.trim();
    match country.to_ascii_uppercase().as_str() {
        "SE" | "NL" => trimmed.replace(' ', ""),
        _ => trimmed.to_owned(),
    }
}

/// Whether `zip` fits the country's pattern (always true for unchecked countries).
pub fn zip_fits(country: &str, zip: &str) -> bool {
    let Some(pattern) = zip_pattern(country) else {
        return !zip.trim().is_empty();
    };
    let zip = normalize_zip(country, zip);
    zip.len() == pattern.len()
        && zip.chars().zip(pattern.chars()).all(|(c, p)| match p {
            'N' => c.is_ascii_digit(),
            'A' => c.is_ascii_alphabetic(),
            other => c == other,
        })
}

/// The city of a zip area (first digit), for agents and zip code lookups.
pub fn city_for(country: &str, zip: &str) -> &'static str {
    let digit = zip.chars().next().and_then(|c| c.to_digit(10)).unwrap_or(0) as usize;
    let table: [&str; 10] = match country.to_ascii_uppercase().as_str() {
        "SE" => [
            "Stockholm",
            "Stockholm",
            "Malmö",
            "Växjö",
            "Göteborg",
            "Jönköping",
            "Norrköping",
            "Västerås",
            "Sundsvall",
            "Umeå",
        ],
        "NO" => [
            "Oslo",
            "Moss",
            "Hamar",
            "Drammen",
            "Stavanger",
            "Bergen",
            "Ålesund",
            "Trondheim",
            "Bodø",
            "Tromsø",
        ],
        "DK" => [
            "København",
            "København",
            "København",
            "Helsingør",
            "Roskilde",
            "Odense",
            "Kolding",
            "Vejle",
            "Aarhus",
            "Aalborg",
        ],
        "FI" => [
            "Helsinki",
            "Lahti",
            "Turku",
            "Tampere",
            "Jyväskylä",
            "Lappeenranta",
            "Vaasa",
            "Kuopio",
            "Joensuu",
            "Oulu",
        ],
        _ => ["Sandbox City"; 10],
    };
    table[digit % 10]
}

/// Agent networks (`/addresses/agents` `type`) and the countries each serves.
const AGENT_TYPES: &[(&str, &[&str])] = &[
    ("POSTNORD", &["SE", "NO", "DK", "FI"]),
    ("DHLSP", &["SE"]),
    ("DHLSPCOD", &["SE"]),
    ("PP", &["SE"]),
    ("SBTL", &["SE"]),
    ("PPFI", &["FI"]),
    ("SBTLFI", &["FI"]),
    ("GLS", &["SE", "DK"]),
    ("MHM", &["FI"]),
    ("MHT", &["FI"]),
    ("ITELLA", &["FI"]),
    ("ITELLASP", &["FI"]),
    ("BRING", &["SE", "NO", "DK"]),
    ("BUSSGODS", &["SE"]),
    ("UPS", &["SE", "NO", "DK", "FI"]),
    ("BUDBEE", &["SE", "DK", "FI"]),
];

const COUNTRIES: &[&str] = &["SE", "NO", "DK", "FI"];

const BRANDS: &[&str] = &[
    "ICA Nära",
    "Coop",
    "Pressbyrån",
    "Circle K",
    "Hemköp",
    "Willys",
    "Kiosk",
    "Spar",
];
const STREETS: &[&str] = &[
    "Storgatan",
    "Kungsgatan",
    "Järnvägsgatan",
    "Torggatan",
    "Skolgatan",
    "Parkvägen",
];

/// Whether `agent_type` is a known agent network code.
pub fn is_agent_type(agent_type: &str) -> bool {
    AGENT_TYPES
        .iter()
        .any(|(t, _)| t.eq_ignore_ascii_case(agent_type))
}

fn type_index(agent_type: &str) -> Option<usize> {
    AGENT_TYPES
        .iter()
        .position(|(t, _)| t.eq_ignore_ascii_case(agent_type))
}

fn country_index(country: &str) -> Option<usize> {
    COUNTRIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(country))
}

/// FNV-1a, for stable per-area choices.
fn stable_hash(parts: &[&str]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for part in parts {
        for byte in part.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn area_len(country: &str) -> usize {
    if zip_pattern(country).is_some_and(|p| p.len() == 4) {
        2
    } else {
        3
    }
}

fn make_agent(t: usize, c: usize, area: &str, i: usize) -> Agent {
    let (type_code, _) = AGENT_TYPES[t];
    let country = COUNTRIES[c];
    let zip_len = zip_pattern(country).map_or(5, str::len);
    let suffix_len = zip_len.saturating_sub(area.len());
    let suffix = format!(
        "{:0width$}",
        (i * 17 + 3) % 10usize.pow(suffix_len as u32),
        width = suffix_len
    );
    let zipcode = format!("{area}{suffix}");
    let city = city_for(country, &zipcode);
    let h = stable_hash(&[type_code, country, area]) as usize;
    let brand = BRANDS[(h + i) % BRANDS.len()];
    let street = STREETS[(h / 7 + i) % STREETS.len()];
    Agent {
        id: format!("{:02}{}{}{:02}", t + 1, c + 1, area, i + 1),
        name: format!("{brand} {city} {}", i + 1),
        address1: Some(format!("{street} {}", 1 + (h + i * 13) % 80)),
        address2: None,
        zipcode: Some(zipcode),
        city: city.to_uppercase(),
        state: None,
        country_code: country.to_owned(),
        contact: None,
        phone: Some(format!(
            "+{} 10 {:03} {:02} {:02}",
            dial_code(country),
            (h + i) % 1000,
            i * 7 % 100,
            (h / 3) % 100
        )),
        fax: None,
        email: None,
        sms: None,
        service_type: None,
        service_code: None,
        opening_hours: Some("Mon-Fri 08:00-20:00, Sat 10:00-16:00".into()),
    }
}

fn dial_code(country: &str) -> &'static str {
    match country {
        "NO" => "47",
        "DK" => "45",
        "FI" => "358",
        _ => "46",
    }
}

/// The agents of a network near a zip code, nearest first: three to five per zip area
/// (the first two or three digits), always the same for the same input. Empty when the network
/// does not serve the country or the zip does not fit the country's pattern.
pub fn agents_near(agent_type: &str, country: &str, zip: &str) -> Vec<Agent> {
    let (Some(t), Some(c)) = (type_index(agent_type), country_index(country)) else {
        return Vec::new();
    };
    if !AGENT_TYPES[t]
        .1
        .iter()
        .any(|served| served.eq_ignore_ascii_case(country))
        || !zip_fits(country, zip)
    {
        return Vec::new();
    }
    let zip = normalize_zip(country, zip);
    let area = &zip[..area_len(COUNTRIES[c]).min(zip.len())];
    let count = 3 + (stable_hash(&[AGENT_TYPES[t].0, COUNTRIES[c], area]) % 3) as usize;
    (0..count).map(|i| make_agent(t, c, area, i)).collect()
}

/// One agent by its id (as returned by [`agents_near`]), optionally checked against a network.
pub fn agent_by_id(id: &str, agent_type: Option<&str>) -> Option<Agent> {
    if !id.is_ascii() || id.len() < 6 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = id[..2].parse::<usize>().ok()?.checked_sub(1)?;
    let c = id[2..3].parse::<usize>().ok()?.checked_sub(1)?;
    if t >= AGENT_TYPES.len() || c >= COUNTRIES.len() {
        return None;
    }
    if agent_type.is_some_and(|wanted| !AGENT_TYPES[t].0.eq_ignore_ascii_case(wanted)) {
        return None;
    }
    let country = COUNTRIES[c];
    let area_len = area_len(country);
    if id.len() != 3 + area_len + 2 {
        return None;
    }
    let area = &id[3..3 + area_len];
    let i = id[3 + area_len..].parse::<usize>().ok()?.checked_sub(1)?;
    // The agent exists only if the area lookup lists it.
    let first_zip = format!(
        "{area}{}",
        "0".repeat(zip_pattern(country).map_or(5, str::len) - area_len)
    );
    agents_near(AGENT_TYPES[t].0, country, &first_zip)
        .into_iter()
        .nth(i)
}

/// The account's address book: senders by quickId, seeded from the dataset's warehouses
/// (quickId `1` is the first warehouse).
#[derive(Debug, Clone)]
pub struct AddressBook {
    entries: Vec<(String, Party)>,
}

impl AddressBook {
    /// One sender per warehouse, quickIds `1`, `2`, ..., from each warehouse's name and
    /// location code (the dataset's warehouses; taken as pairs so that this module, which the
    /// dataset uses for its pickup points, does not use the dataset back).
    pub fn from_warehouses<'a>(warehouses: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        const SITES: &[(&str, &str, &str)] = &[
            ("Skeppsbron 5", "41121", "GÖTEBORG"),
            ("Lagervägen 12", "19162", "SOLLENTUNA"),
            ("Hamnvägen 3", "21120", "MALMÖ"),
        ];
        let entries = warehouses
            .into_iter()
            .enumerate()
            .map(|(i, (name, location_code))| {
                let (street, zip, city) = SITES[i % SITES.len()];
                let party = Party {
                    quick_id: Some((i + 1).to_string()),
                    name: Some(format!("Relay Sandbox AB ({name})")),
                    address1: Some(street.to_owned()),
                    zipcode: Some(zip.to_owned()),
                    city: Some(city.to_owned()),
                    country: Some("SE".to_owned()),
                    phone: Some("+46 31 725 35 00".to_owned()),
                    email: Some(format!("{}@sandbox.example", location_code.to_lowercase())),
                    ..Party::default()
                };
                ((i + 1).to_string(), party)
            })
            .collect();
        Self { entries }
    }

    /// The entry with this quickId.
    pub fn get(&self, quick_id: &str) -> Option<&Party> {
        self.entries
            .iter()
            .find(|(id, _)| id == quick_id.trim())
            .map(|(_, p)| p)
    }

    /// Every entry.
    pub fn entries(&self) -> impl Iterator<Item = &Party> {
        self.entries.iter().map(|(_, p)| p)
    }
}

/// `party` completed from `book`: the fields it leaves out are taken from its quickId's entry.
/// `None` when it names a quickId the book does not have.
pub fn complete_party(party: &Party, book: &AddressBook) -> Option<Party> {
    let Some(quick_id) = party.quick_id.as_deref().filter(|q| !q.trim().is_empty()) else {
        return Some(party.clone());
    };
    let entry = book.get(quick_id)?;
    let pick = |own: &Option<String>, book: &Option<String>| {
        own.clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| book.clone())
    };
    Some(Party {
        quick_id: party.quick_id.clone(),
        org_no: pick(&party.org_no, &entry.org_no),
        vat_no: pick(&party.vat_no, &entry.vat_no),
        name: pick(&party.name, &entry.name),
        address1: pick(&party.address1, &entry.address1),
        address2: pick(&party.address2, &entry.address2),
        zipcode: pick(&party.zipcode, &entry.zipcode),
        city: pick(&party.city, &entry.city),
        state: pick(&party.state, &entry.state),
        country: pick(&party.country, &entry.country),
        contact: pick(&party.contact, &entry.contact),
        phone: pick(&party.phone, &entry.phone),
        fax: pick(&party.fax, &entry.fax),
        email: pick(&party.email, &entry.email),
        mobile: pick(&party.mobile, &entry.mobile),
        door_code: pick(&party.door_code, &entry.door_code),
        service_type: None,
        service_code: None,
        opening_hours: None,
    })
}

/// An agent as a shipment party.
pub fn agent_party(agent: &Agent) -> Party {
    Party {
        quick_id: Some(agent.id.clone()),
        name: Some(agent.name.clone()),
        address1: agent.address1.clone(),
        zipcode: agent.zipcode.clone(),
        city: Some(agent.city.clone()),
        country: Some(agent.country_code.clone()),
        phone: agent.phone.clone(),
        opening_hours: agent.opening_hours.clone(),
        ..Party::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_patterns() {
        assert!(zip_fits("SE", "41121"));
        assert!(zip_fits("SE", "411 21"));
        assert!(!zip_fits("SE", "4112"));
        assert!(zip_fits("NO", "0150"));
        assert!(!zip_fits("NO", "01500"));
        assert!(zip_fits("DK", "8000"));
        assert!(!zip_fits("FI", "00A00"));
        assert!(zip_fits("US", "90210"));
    }

    #[test]
    fn agents_are_deterministic_and_found_by_id() {
        let a = agents_near("POSTNORD", "SE", "41121");
        assert!((3..=5).contains(&a.len()));
        assert_eq!(a, agents_near("postnord", "SE", "41199"));
        for agent in &a {
            assert_eq!(
                agent_by_id(&agent.id, Some("POSTNORD")).as_ref(),
                Some(agent)
            );
            assert!(zip_fits("SE", agent.zipcode.as_deref().unwrap_or_default()));
        }
        assert!(agent_by_id(&a[0].id, Some("DHLSP")).is_none());
        let no = agents_near("POSTNORD", "NO", "0150");
        assert_eq!(agent_by_id(&no[0].id, None).as_ref(), Some(&no[0]));
        assert!(agents_near("DHLSP", "NO", "0150").is_empty());
        assert!(agents_near("POSTNORD", "SE", "123").is_empty());
        assert!(agent_by_id("99999999", None).is_none());
    }
}
