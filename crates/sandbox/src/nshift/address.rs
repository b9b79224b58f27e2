//! `POST /addresses/status?language=`: address validation (licence REST API AddressCheck).
//!
//! The answer is an array of `{location, messageId, message, arguments, error}` (API §3.8),
//! empty when the address is fine. Messages are in the asked language (SE, GB, DK, FI).

#![allow(clippy::result_large_err)] // Err is the ready-made axum Response.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use nshift_models::delivery::{
    AddressCheckRequest, AddressStatus, CheckAddressQuery, CheckAddressQueryLanguage,
};

use super::config::Licence;
use super::wire::{illegal, parse_body, parse_query, respond};
use super::{auth, catalog};
use crate::state::SharedState;

/// What a message is about.
#[derive(Debug, Clone, Copy)]
enum Finding {
    Name,
    Street,
    City,
    Country,
    ZipMissing,
    ZipFormat,
}

impl Finding {
    fn message_id(self) -> &'static str {
        match self {
            Self::Name => "WSAPIError.Name",
            Self::Street => "WSAPIError.Address1",
            Self::City => "WSAPIError.City",
            Self::Country => "WSAPIError.CountryCode",
            Self::ZipMissing => "WSAPIError.ZipCodeMissing",
            Self::ZipFormat => "WSAPIError.ZipCode",
        }
    }

    fn location(self) -> &'static str {
        match self {
            Self::Name => "Name",
            Self::Street => "Address1",
            Self::City => "City",
            Self::Country => "CountryCode",
            Self::ZipMissing | Self::ZipFormat => "Zipcode",
        }
    }

    /// Errors block a booking; the missing street is a warning.
    fn is_error(self) -> bool {
        !matches!(self, Self::Street)
    }

    /// The message in `language` (`{0}` is the first argument).
    fn text(self, language: &CheckAddressQueryLanguage) -> &'static str {
        use CheckAddressQueryLanguage as L;
        match (self, language) {
            (Self::Name, L::Se) => "Namn saknas",
            (Self::Name, L::Dk) => "Navn mangler",
            (Self::Name, L::Fi) => "Nimi puuttuu",
            (Self::Name, _) => "Name is missing",
            (Self::Street, L::Se) => "Gatuadress saknas",
            (Self::Street, L::Dk) => "Adresse mangler",
            (Self::Street, L::Fi) => "Katuosoite puuttuu",
            (Self::Street, _) => "Street address is missing",
            (Self::City, L::Se) => "Ort saknas",
            (Self::City, L::Dk) => "By mangler",
            (Self::City, L::Fi) => "Postitoimipaikka puuttuu",
            (Self::City, _) => "City is missing",
            (Self::Country, L::Se) => "Ogiltig landskod",
            (Self::Country, L::Dk) => "Ugyldig landekode",
            (Self::Country, L::Fi) => "Virheellinen maakoodi",
            (Self::Country, _) => "Invalid country code",
            (Self::ZipMissing, L::Se) => "Postnummer saknas",
            (Self::ZipMissing, L::Dk) => "Postnummer mangler",
            (Self::ZipMissing, L::Fi) => "Postinumero puuttuu",
            (Self::ZipMissing, _) => "Zip code is missing",
            (Self::ZipFormat, L::Se) => "Ogiltigt postnummer, förväntat format {0}",
            (Self::ZipFormat, L::Dk) => "Ugyldigt postnummer, forventet format {0}",
            (Self::ZipFormat, L::Fi) => "Virheellinen postinumero, odotettu muoto {0}",
            (Self::ZipFormat, _) => "Not valid zip code, expected format {0}",
        }
    }

    fn status(self, language: &CheckAddressQueryLanguage, arguments: &[&str]) -> AddressStatus {
        let mut message = self.text(language).to_owned();
        if let Some(first) = arguments.first() {
            message = message.replace("{0}", first);
        }
        AddressStatus {
            location: Some(self.location().to_owned()),
            message_id: Some(self.message_id().to_owned()),
            message: Some(message),
            arguments: (!arguments.is_empty())
                .then(|| arguments.iter().map(|a| (*a).to_owned()).collect()),
            error: Some(self.is_error()),
        }
    }
}

fn blank(value: Option<&str>) -> bool {
    value.is_none_or(|v| v.trim().is_empty())
}

/// The messages about `address`, in a fixed order.
pub fn check(
    address: &AddressCheckRequest,
    language: &CheckAddressQueryLanguage,
) -> Vec<AddressStatus> {
    let mut found = Vec::new();
    if blank(Some(&address.name)) {
        found.push(Finding::Name.status(language, &[]));
    }
    if blank(address.address1.as_deref()) {
        found.push(Finding::Street.status(language, &[]));
    }
    if blank(Some(&address.city)) {
        found.push(Finding::City.status(language, &[]));
    }
    let country = address.country_code.trim();
    let country_ok = country.len() == 2 && country.chars().all(|c| c.is_ascii_alphabetic());
    if !country_ok {
        found.push(Finding::Country.status(language, &[]));
    }
    match address.zipcode.as_deref().map(str::trim) {
        None | Some("") => found.push(Finding::ZipMissing.status(language, &[])),
        Some(zip) if country_ok && !catalog::zip_fits(country, zip) => {
            let pattern = catalog::zip_pattern(country).unwrap_or("?");
            found.push(Finding::ZipFormat.status(language, &[pattern]));
        }
        Some(_) => {}
    }
    found
}

/// `POST /addresses/status?language=`.
pub(super) async fn check_address(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond((|| {
        auth::authorize(&state, &headers, Licence::AddressCheck, false)?;
        let query: CheckAddressQuery = parse_query(&uri)?;
        if query.language.is_unknown() {
            return Err(illegal(format!(
                "Illegal language argument '{}' (SE, GB, DK or FI)",
                query.language.as_str()
            )));
        }
        let address: AddressCheckRequest = parse_body(&body)?;
        Ok(Json(check(&address, &query.language)).into_response())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(zip: Option<&str>, country: &str) -> AddressCheckRequest {
        AddressCheckRequest {
            name: "Anna Lind".into(),
            address1: Some("Avenyn 12".into()),
            zipcode: zip.map(str::to_owned),
            city: "Göteborg".into(),
            country_code: country.into(),
            ..AddressCheckRequest::default()
        }
    }

    #[test]
    fn a_good_address_has_no_messages_and_a_bad_zip_names_the_pattern() {
        let se = CheckAddressQueryLanguage::Se;
        assert!(check(&address(Some("411 36"), "SE"), &se).is_empty());
        let found = check(&address(Some("4113"), "SE"), &CheckAddressQueryLanguage::Gb);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message_id.as_deref(), Some("WSAPIError.ZipCode"));
        assert_eq!(found[0].arguments, Some(vec!["NNNNN".to_owned()]));
        assert_eq!(
            found[0].message.as_deref(),
            Some("Not valid zip code, expected format NNNNN")
        );
        assert_eq!(found[0].error, Some(true));
    }
}
