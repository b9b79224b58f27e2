//! Prices: `POST /prices` (a quote for a shipment) and `POST /prices/history` (the prices of
//! printed shipments as a fetchId feed).
//!
//! The price model is a sandbox choice (the notes give only the request and response shapes):
//! a per-service base price plus a price per chargeable kg, where the chargeable weight is the
//! larger of the actual weight and the volumetric weight (250 kg per m³), rounded up to a whole
//! kg. Surcharges follow the help centre: the amount is added first, then the percentage.

#![allow(clippy::result_large_err)] // Err is the ready-made axum Response.

use super::auth;
use super::catalog::ServiceConfig;
use super::config::{Licence, NshiftConfig};
use super::validate;
use super::wire::{feed_cursor, illegal, parse_body_numbers, parse_query, respond};
use crate::state::SharedState;
use crate::util::lock;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use models_runtime::{Decimal, DecimalNumber};
use nshift_models::delivery::{
    FetchPriceHistoryQuery, PriceData, PriceHistoryFetchList, PriceRequest, PriceResponse,
    Shipment, ValidationStatus, ValidationStatusType,
};

// The price list is configuration (`NshiftConfig::price_list`); its public path stays here.
pub use super::config::{PriceListEntry, default_carrier_price_partners, default_price_list};

/// kg per m³ used for the volumetric weight.
const VOLUMETRIC_KG_PER_M3: f64 = 250.0;

/// Actual and chargeable weight of a shipment's parcels (`None` when a parcel has no weight).
fn weights(shipment: &Shipment) -> Option<(f64, i64)> {
    let mut actual = 0.0;
    let mut volumetric = 0.0;
    for parcel in &shipment.parcels {
        let copies = parcel.copies.max(0) as f64;
        actual += parcel.weight? * copies;
        let volume = parcel
            .volume
            .or_else(|| Some(parcel.length? * parcel.width? * parcel.height?));
        volumetric += volume.unwrap_or(0.0).max(0.0) * VOLUMETRIC_KG_PER_M3 * copies;
    }
    let chargeable = actual.max(volumetric).ceil().max(1.0);
    // At most 99 rows of 99 copies of a finite weight: the cast cannot overflow meaningfully.
    Some((actual, chargeable.min(1e12) as i64))
}

/// The list price of `shipment` with `service` (no surcharges), or `None` when the price list
/// has no row for the service or a parcel has no weight.
pub fn list_price(
    config: &NshiftConfig,
    shipment: &Shipment,
    service: &ServiceConfig,
) -> Option<PriceData> {
    let row = config
        .price_list
        .iter()
        .find(|r| r.service_id.eq_ignore_ascii_case(&service.id))?;
    let (actual, chargeable) = weights(shipment)?;
    let price = (row.base + row.per_kg * Decimal::from(chargeable)).round_dp(2);
    Some(PriceData {
        price: Some(DecimalNumber(price)),
        additional_surcharges: Some(DecimalNumber(Decimal::ZERO)),
        price_with_additional_surcharges: Some(DecimalNumber(price)),
        total_weight: Some((actual * 1000.0).round() / 1000.0),
        chargeable_weight: Some(chargeable as f64),
    })
}

fn price_error(field: &str, code: &str, message: impl Into<String>) -> ValidationStatus {
    validate::status(ValidationStatusType::Error, field, "Price", code, message)
}

/// The validation codes that stop a price (the others, e.g. a missing receiver phone or
/// agent, only matter for booking).
const PRICE_RELEVANT: &[&str] = &[
    "ServiceId",
    "QuickId",
    "Country",
    "ZipCode",
    "Route",
    "ParcelMissing",
    "Copies",
    "Weight",
    "Addon",
];

fn as_json(statuses: Vec<ValidationStatus>) -> Vec<serde_json::Value> {
    statuses
        .into_iter()
        .filter_map(|s| serde_json::to_value(s).ok())
        .collect()
}

/// `POST /prices`.
pub(super) async fn get_price(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let config = &state.config.nshift;
        let caller = auth::authorize(&state, &headers, Licence::Price, false)?;
        let request: PriceRequest = parse_body_numbers(&body, &super::numbers::PRICE_REQUEST)?;
        let surcharges = request.additional_surcharges.clone().unwrap_or_default();
        let percent = surcharges.percent.unwrap_or(0);
        if percent < 0 {
            return Err(illegal(
                "Illegal additionalSurcharges.percent argument: must not be negative",
            ));
        }
        let amount = surcharges.amount.map_or(Decimal::ZERO, |a| a.0);
        if amount.is_sign_negative() {
            return Err(illegal(
                "Illegal additionalSurcharges.amount argument: must not be negative",
            ));
        }
        let shipment = &request.shipment;
        let (statuses, resolved) = validate::validate(
            shipment,
            &config.services,
            &state.nshift.book,
            caller.profile_group.as_deref(),
        );
        let mut errors: Vec<ValidationStatus> = statuses
            .into_iter()
            .filter(|s| {
                !matches!(s.type_, Some(ValidationStatusType::Ignorable))
                    && s.message_code
                        .as_deref()
                        .is_some_and(|c| PRICE_RELEVANT.contains(&c))
            })
            .collect();
        for (i, parcel) in shipment.parcels.iter().enumerate() {
            if parcel.weight.is_none() {
                errors.push(price_error(
                    "Parcel_Weight",
                    "Weight",
                    format!("Parcels[{i}]: a weight is needed for a price"),
                ));
            }
        }
        if let Some(resolved) = &resolved {
            let partner = &resolved.service.partner_id;
            let carrier_enquiry = shipment.sender_partners.iter().flatten().any(|p| {
                p.id.eq_ignore_ascii_case(partner)
                    && p.price_enquiry
                        .as_deref()
                        .is_some_and(|e| e.trim().eq_ignore_ascii_case("CARRIER"))
            });
            if carrier_enquiry
                && !config
                    .carrier_price_partners
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(partner))
            {
                errors.push(price_error(
                    "SenderPartner_PriceEnquiry",
                    "PriceEnquiry",
                    format!("Carrier price enquiry is not supported for {partner}"),
                ));
            }
        }
        let quote = match &resolved {
            Some(resolved) if errors.is_empty() => {
                let quote = list_price(config, shipment, &resolved.service);
                if quote.is_none() {
                    errors.push(price_error(
                        "Service_Id",
                        "NoPrice",
                        format!("No price list for service {}", resolved.service.id),
                    ));
                }
                quote
            }
            _ => None,
        };
        let price_data = quote.map(|mut data| {
            let price = data.price.map_or(Decimal::ZERO, |p| p.0);
            let with = ((price + amount) * (Decimal::from(100 + percent)) / Decimal::from(100))
                .round_dp(2);
            data.additional_surcharges = Some(DecimalNumber(with - price));
            data.price_with_additional_surcharges = Some(DecimalNumber(with));
            data
        });
        Ok(Json(PriceResponse {
            price_data,
            error_list: Some(as_json(errors)),
        })
        .into_response())
    })())
}

/// `POST /prices/history?fetchId=`: the prices of printed shipments in booking order, with the
/// feeds' fetchId / done / minDelay scheme. Any request body is ignored (none is documented),
/// but it must be JSON when present.
pub(super) async fn fetch_price_history(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond((|| {
        let config = &state.config.nshift;
        auth::authorize(&state, &headers, Licence::Price, true)?;
        let query: FetchPriceHistoryQuery = parse_query(&uri)?;
        if !body.iter().all(u8::is_ascii_whitespace) {
            serde_json::from_slice::<serde_json::Value>(&body)
                .map_err(|e| illegal(format!("Malformed JSON body: {e}")))?;
        }
        let store = lock(&state.nshift.inner);
        let cursor = feed_cursor(query.fetch_id.as_deref(), store.shipment_total())?;
        let (page, more) = store.shipments_after(cursor, config.feed_page_size.max(1));
        let fetch_id = cursor + page.len() as u64;
        let prices = page.iter().map(|r| r.price_entry()).collect();
        Ok(Json(PriceHistoryFetchList {
            fetch_id: fetch_id.to_string(),
            done: !more,
            min_delay: Some(if more { 0 } else { config.feed_min_delay_ms }),
            prices: Some(prices),
        })
        .into_response())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nshift_models::delivery::Parcel;

    #[test]
    fn chargeable_weight_is_the_larger_of_actual_and_volumetric_rounded_up() {
        let shipment = |parcels: Vec<Parcel>| Shipment {
            parcels,
            ..Shipment::default()
        };
        let parcel = |weight: Option<f64>, volume: Option<f64>, copies: i64| Parcel {
            copies,
            weight,
            volume,
            ..Parcel::default()
        };
        assert_eq!(
            weights(&shipment(vec![parcel(Some(1.25), None, 2)])),
            Some((2.5, 3))
        );
        // 0.02 m³ × 250 = 5 kg volumetric beats 1 kg actual.
        assert_eq!(
            weights(&shipment(vec![parcel(Some(1.0), Some(0.02), 1)])),
            Some((1.0, 5))
        );
        assert_eq!(
            weights(&shipment(vec![parcel(Some(0.1), None, 1)])),
            Some((0.1, 1))
        );
        assert_eq!(weights(&shipment(vec![parcel(None, None, 1)])), None);
    }
}
