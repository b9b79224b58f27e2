//! The `rs-extapi/v1` routes. Requests are parsed with the generated `nshift-models` types, so a
//! request the spec rejects gets the platform's 400 `{code, message}`.

#![allow(clippy::result_large_err)] // Err is the ready-made axum Response.

use std::ops::Deref;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use nshift_models::delivery::{
    AlertFetchList, CancelShipmentPath, CreateShipmentQuery, DeleteStoredShipmentPath,
    FetchAlertsQuery, FetchShipmentsQuery, FindAgentsQuery, GetShipmentPdfPath,
    GetStoredShipmentPath, GetZipcodeInfoQuery, ListShipmentPdfsPath, ListShipmentPdfsQuery,
    PdfInfo, PrintConfig, PrintFileType, PrintInfo, PrintMedia, PrintStoredShipmentPath,
    PrintStoredShipmentQuery, SearchStoredShipmentsQuery, SearchStoredShipmentsQueryDateType,
    SearchStoredShipmentsQuerySearchField, SearchStoredShipmentsQuerySearchOp,
    SearchStoredShipmentsQueryStatus, Shipment, ShipmentFetchInfoList, ShipmentInfo,
    ShipmentPrintRequest, ShipmentStatus, StoredShipmentStatus, ZipcodeInfo, operations as ops,
};

use super::auth::{self, Caller};
use super::catalog;
use super::config::{HREF_PREFIX, Licence, NshiftConfig};
use super::label::{self, LabelContent};
use super::numbers;
use super::store::{Document, ParcelRecord, ShipmentRecord, Store, StoredRecord};
use super::validate::{self, Resolved, Target};
use super::wire::{
    Outcome, feed_cursor, illegal, missing, not_found, parse_body_numbers, parse_id, parse_path,
    parse_query, respond, unprocessable,
};
use crate::state::{AppState, SharedState};
use crate::util::lock;

/// The routes, relative to the API base.
pub fn api() -> Router<SharedState> {
    Router::new()
        .route(
            ops::CREATE_SHIPMENT.path,
            post(create_shipment).get(fetch_shipments),
        )
        .route(ops::CANCEL_SHIPMENT.path, delete(cancel_shipment))
        .route(ops::LIST_SHIPMENT_PDFS.path, get(list_pdfs))
        .route(ops::GET_SHIPMENT_PDF.path, get(get_pdf))
        .route(
            ops::CREATE_STORED_SHIPMENT.path,
            post(create_stored).get(search_stored),
        )
        .route(
            ops::GET_STORED_SHIPMENT.path,
            get(get_stored).delete(delete_stored),
        )
        .route(ops::PRINT_STORED_SHIPMENT.path, post(print_stored))
        .route(ops::FIND_AGENTS.path, get(find_agents))
        .route(ops::GET_ZIPCODE_INFO.path, get(zipcode_info))
        .route(ops::FETCH_ALERTS.path, get(fetch_alerts))
        .route(ops::CHECK_ADDRESS.path, post(super::address::check_address))
        .route(ops::GET_PRICE.path, post(super::price::get_price))
        .route(
            ops::FETCH_PRICE_HISTORY.path,
            post(super::price::fetch_price_history),
        )
        .route(
            ops::CREATE_JWT_SESSION.path,
            post(super::session::create_session).get(super::session::create_session),
        )
}

/// Shipments and stored shipments both belong to a profile group that limits who sees them.
trait InProfileGroup {
    fn profile_group(&self) -> Option<&str>;
}

impl InProfileGroup for ShipmentRecord {
    fn profile_group(&self) -> Option<&str> {
        self.profile_group.as_deref()
    }
}

impl InProfileGroup for StoredRecord {
    fn profile_group(&self) -> Option<&str> {
        self.profile_group.as_deref()
    }
}

/// A looked-up record if `caller` may see it, else the 404 every shipment lookup answers.
fn visible<R: Deref<Target: InProfileGroup>>(
    caller: &Caller,
    record: Option<R>,
) -> Result<R, Response> {
    record
        .filter(|r| caller.sees(r.profile_group()))
        .ok_or_else(not_found)
}

fn href_base(state: &AppState) -> String {
    format!("{}{HREF_PREFIX}", state.base_url)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn print_targets(config: &PrintConfig) -> Vec<(usize, PrintMedia, Option<PrintFileType>)> {
    let mut targets = vec![(1, config.target1_media.clone(), config.target1_type.clone())];
    for (n, media, kind) in [
        (2, &config.target2_media, &config.target2_type),
        (3, &config.target3_media, &config.target3_type),
        (4, &config.target4_media, &config.target4_type),
    ] {
        if let Some(media) = media {
            targets.push((n, media.clone(), kind.clone()));
        }
    }
    targets
}

fn is_current_generation(config: &PrintConfig) -> bool {
    config.target1_type.is_some()
        || config.target2_type.is_some()
        || config.target3_type.is_some()
        || config.target4_type.is_some()
        || config.target1_options.is_some()
        || config.target2_options.is_some()
        || config.target3_options.is_some()
        || config.target4_options.is_some()
}

fn address_lines(party: &nshift_models::delivery::Party) -> Vec<String> {
    let mut lines = Vec::new();
    lines.extend(party.name.clone());
    lines.extend(party.address1.clone());
    lines.extend(party.address2.clone());
    let zip_city = [party.zipcode.as_deref(), party.city.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    if !zip_city.is_empty() {
        lines.push(zip_city);
    }
    lines.extend(party.country.clone());
    lines
}

/// How the documents of a print call are returned.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    /// `prints[]` (printConfig) rather than `pdfs[]` (pdfConfig).
    current: bool,
    /// Inline base64 (`returnFile` / `inlinePdf`).
    inline: bool,
}

/// The profile group a shipment is filed under: the key's, else the one the shipment names,
/// else the account's default group (nShift's alerts name it, "Grundprofilgrupp").
fn profile_group_of(config: &NshiftConfig, caller: &Caller, shipment: &Shipment) -> Option<String> {
    caller
        .profile_group
        .clone()
        .or_else(|| shipment.profile_group.clone())
        .or_else(|| Some(config.default_profile_group.clone()).filter(|g| !g.is_empty()))
}

/// Books a validated shipment (a normal one, a return one, or both) with its documents, all in
/// one commit. Returns the ShipmentInfos with their documents.
#[allow(clippy::too_many_arguments)]
fn book(
    store: &mut Store,
    state: &AppState,
    caller: &Caller,
    shipment: &Shipment,
    resolved: &Resolved,
    target: &Target,
    delivery: Delivery,
    stored_id: Option<u64>,
    now: DateTime<Utc>,
) -> Vec<ShipmentInfo> {
    let config = &state.config.nshift;
    let base = href_base(state);
    let service = &resolved.service;
    let is_return = shipment.service.return_shipment == Some(true);
    let is_normal = shipment.service.normal_shipment.unwrap_or(!is_return) || !is_return;
    let return_numbers: Vec<String> = if is_return {
        resolved
            .parcels
            .iter()
            .map(|_| store.next_parcel_no(&service.partner_id))
            .collect()
    } else {
        Vec::new()
    };
    let ttl = super::store::config_secs(config.document_ttl_secs);
    let profile_group = profile_group_of(config, caller, shipment);

    let mut kinds = Vec::new();
    if is_normal {
        kinds.push(false);
    }
    if is_return {
        kinds.push(true);
    }
    let mut records = Vec::new();
    let mut documents = Vec::new();
    let mut infos = Vec::new();
    for returning in kinds {
        let id = store.next_shipment_id();
        let parcels: Vec<ParcelRecord> = resolved
            .parcels
            .iter()
            .enumerate()
            .map(|(i, parcel)| {
                if returning {
                    ParcelRecord {
                        parcel_no: return_numbers.get(i).cloned().unwrap_or_default(),
                        return_parcel_no: None,
                        reference: parcel.reference.clone(),
                        weight: parcel.weight,
                    }
                } else {
                    ParcelRecord {
                        parcel_no: store.next_parcel_no(&service.partner_id),
                        return_parcel_no: return_numbers.get(i).cloned(),
                        reference: parcel.reference.clone(),
                        weight: parcel.weight,
                    }
                }
            })
            .collect();
        let (sender, receiver) = if returning {
            let back_to = shipment
                .return_part
                .as_ref()
                .and_then(|p| catalog::complete_party(p, &state.nshift.book))
                .unwrap_or_else(|| resolved.sender.clone());
            (resolved.receiver.clone(), back_to)
        } else {
            (resolved.sender.clone(), resolved.receiver.clone())
        };
        let agent = if returning {
            None
        } else {
            resolved.agent.clone()
        };
        let test = shipment.test.unwrap_or(false);
        let content = LabelContent {
            service: format!("{} ({})", service.description, service.id),
            sender: address_lines(&sender),
            receiver: address_lines(&receiver),
            agent: agent
                .as_ref()
                .map(|a| address_lines(&catalog::agent_party(a)))
                .unwrap_or_default(),
            reference: shipment.sender_reference.clone(),
            parcel_numbers: parcels.iter().map(|p| p.parcel_no.clone()).collect(),
            test,
        };
        let document_id = store.next_document_id();
        let bytes = if target.zpl {
            label::zpl(&content)
        } else {
            label::pdf(&content, &target.media)
        };
        let description = if returning { "Return label" } else { "Label" };
        let document_href = format!("{base}/shipments/{id}/pdfs/{document_id}");
        let record = ShipmentRecord {
            id,
            key_id: caller.key_id.clone(),
            order_no: shipment.order_no.clone(),
            reference: shipment.sender_reference.clone(),
            shipment_no: Some(
                shipment
                    .shipment_no
                    .clone()
                    .unwrap_or_else(|| Store::shipment_no(id)),
            ),
            service_id: service.id.clone(),
            partner_id: service.partner_id.clone(),
            sender,
            receiver,
            agent_id: agent.map(|a| a.id),
            parcels,
            normal_shipment: !returning,
            return_shipment: returning,
            created: now,
            ship_date: super::store::ship_date(shipment, now),
            cancelled_at: None,
            developer_id: shipment.developer_id.clone(),
            profile_group: profile_group.clone(),
            test,
            addons: resolved.addons.clone(),
            documents: vec![document_id],
            stored_id,
            emitted: 0,
            price: super::price::list_price(config, shipment, service),
        };
        let mut info = record.info(&base, ShipmentStatus::Printed, now);
        let data = delivery.inline.then(|| b64(&bytes));
        if delivery.current {
            info.prints = Some(vec![PrintInfo {
                href: Some(document_href),
                id: Some(document_id.to_string()),
                description: Some(description.to_owned()),
                data,
            }]);
        } else {
            info.pdfs = Some(vec![PdfInfo {
                href: document_href,
                id: document_id.to_string(),
                description: Some(description.to_owned()),
                pdf: data,
            }]);
        }
        documents.push(Document {
            id: document_id,
            shipment_id: id,
            description: description.to_owned(),
            zpl: target.zpl,
            bytes,
            expires_at: now + ttl,
        });
        infos.push(info);
        records.push(record);
    }
    store.insert_shipments(records, documents);
    infos
}

// ------------------------------------------------------------------ POST /shipments

async fn create_shipment(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    respond(create_shipment_inner(&state, &headers, &uri, &body))
}

fn create_shipment_inner(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    body: &Bytes,
) -> Outcome {
    let config = &state.config.nshift;
    let caller = auth::authorize(state, headers, Licence::Print, false)?;
    let query: CreateShipmentQuery = parse_query(uri)?;
    let request: ShipmentPrintRequest = parse_body_numbers(body, &numbers::SHIPMENT_PRINT_REQUEST)?;
    let (targets, current) = match (&request.print_config, &request.pdf_config) {
        (Some(_), Some(_)) => return Err(illegal("Send printConfig or pdfConfig, not both")),
        (None, None) => return Err(missing("Missing printConfig argument")),
        (Some(print), None) => (print_targets(print), true),
        (None, Some(pdf)) => {
            let mut targets = vec![(1, pdf.target1_media.clone(), None)];
            for (n, media) in [
                (2, &pdf.target2_media),
                (3, &pdf.target3_media),
                (4, &pdf.target4_media),
            ] {
                if let Some(media) = media {
                    targets.push((n, media.clone(), None));
                }
            }
            (targets, false)
        }
    };
    let target = validate::pick_label_target(&targets).map_err(unprocessable)?;
    let (statuses, resolved) = validate::validate(
        &request.shipment,
        &config.services,
        &state.nshift.book,
        caller.profile_group.as_deref(),
    );
    let resolved = match resolved {
        Some(resolved) if !validate::has_errors(&statuses) => resolved,
        _ => return Err(unprocessable(statuses)),
    };
    let delivery = Delivery {
        current,
        inline: query.return_file.unwrap_or(false) || query.inline_pdf.unwrap_or(false),
    };
    let now = state.clock.now();
    let mut store = lock(&state.nshift.inner);
    let infos = book(
        &mut store,
        state,
        &caller,
        &request.shipment,
        &resolved,
        &target,
        delivery,
        None,
        now,
    );
    drop(store);
    tracing::debug!(count = infos.len(), "nshift: shipment booked");
    Ok((StatusCode::CREATED, Json(infos)).into_response())
}

// ------------------------------------------------------------------ DELETE /shipments/{id}

async fn cancel_shipment(
    State(state): State<SharedState>,
    headers: HeaderMap,
    path: Result<Path<CancelShipmentPath>, PathRejection>,
) -> Response {
    respond((|| {
        let config = &state.config.nshift;
        let caller = auth::authorize(&state, &headers, Licence::Discard, false)?;
        let id = parse_id(&parse_path(path)?.shipment_id, "shipment id")?;
        let now = state.clock.now();
        let mut store = lock(&state.nshift.inner);
        let record = visible(&caller, store.shipment_mut(id))?;
        if record.cancelled_at.is_none() {
            let (status, _) =
                record.status_at(now, &config.progress, config.test_shipments_progress);
            if status == ShipmentStatus::Delivered {
                return Err(illegal("Illegal shipment state: the shipment is delivered"));
            }
            record.cancelled_at = Some(now);
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

// ------------------------------------------------------------------ documents

async fn list_pdfs(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<ListShipmentPdfsPath>, PathRejection>,
) -> Response {
    respond((|| {
        let caller = auth::authorize(&state, &headers, Licence::Print, false)?;
        let id = parse_id(&parse_path(path)?.shipment_id, "shipment id")?;
        let query: ListShipmentPdfsQuery = parse_query(&uri)?;
        let now = state.clock.now();
        let base = href_base(&state);
        let mut store = lock(&state.nshift.inner);
        store.forget_expired(now);
        let record = visible(&caller, store.shipment(id))?;
        let list: Vec<PdfInfo> = record
            .documents
            .iter()
            .filter_map(|doc_id| store.document(*doc_id))
            .filter(|doc| doc.expires_at > now)
            .map(|doc| PdfInfo {
                href: format!("{base}/shipments/{id}/pdfs/{}", doc.id),
                id: doc.id.to_string(),
                description: Some(doc.description.clone()),
                pdf: query.inline_pdf.unwrap_or(false).then(|| b64(&doc.bytes)),
            })
            .collect();
        Ok(Json(list).into_response())
    })())
}

async fn get_pdf(
    State(state): State<SharedState>,
    headers: HeaderMap,
    path: Result<Path<GetShipmentPdfPath>, PathRejection>,
) -> Response {
    respond((|| {
        let config = &state.config.nshift;
        let caller = auth::authorize(&state, &headers, Licence::Print, false)?;
        let path = parse_path(path)?;
        let shipment_id = parse_id(&path.shipment_id, "shipment id")?;
        let doc_id = parse_id(&path.pdf_id, "pdf id")?;
        let now = state.clock.now();
        let mut store = lock(&state.nshift.inner);
        store.forget_expired(now);
        visible(&caller, store.shipment(shipment_id))?;
        let doc = store
            .document(doc_id)
            .filter(|d| d.shipment_id == shipment_id)
            .ok_or_else(not_found)?;
        if doc.expires_at <= now {
            let status = StatusCode::from_u16(config.expired_document_status)
                .unwrap_or(StatusCode::NOT_FOUND);
            return Err(status.into_response());
        }
        let (content_type, extension) = if doc.zpl {
            ("text/plain; charset=utf-8", "zpl")
        } else {
            ("application/pdf", "pdf")
        };
        let mut response = doc.bytes.clone().into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(value) =
            HeaderValue::from_str(&format!("inline; filename=\"{}.{extension}\"", doc.id))
        {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
        Ok(response)
    })())
}

// ------------------------------------------------------------------ feeds

async fn fetch_shipments(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    respond((|| {
        let config = &state.config.nshift;
        auth::authorize(&state, &headers, Licence::TrackBack, true)?;
        let query: FetchShipmentsQuery = parse_query(&uri)?;
        let now = state.clock.now();
        let base = href_base(&state);
        let mut store = lock(&state.nshift.inner);
        store.materialize(now, &config.progress, config.test_shipments_progress);
        let cursor = feed_cursor(query.fetch_id.as_deref(), store.head())?;
        let (events, more) = store.events_after(cursor, config.feed_page_size.max(1));
        let fetch_id = events.last().map_or(cursor, |e| e.seq);
        let shipments: Vec<ShipmentInfo> = events
            .iter()
            .filter_map(|e| {
                store
                    .shipment(e.shipment_id)
                    .map(|r| r.info(&base, e.status.clone(), e.at))
            })
            .collect();
        Ok(Json(ShipmentFetchInfoList {
            fetch_id: fetch_id.to_string(),
            min_delay: Some(if more { 0 } else { config.feed_min_delay_ms }),
            done: !more,
            shipments: Some(shipments),
        })
        .into_response())
    })())
}

async fn fetch_alerts(State(state): State<SharedState>, headers: HeaderMap, uri: Uri) -> Response {
    respond((|| {
        let config = &state.config.nshift;
        auth::authorize(&state, &headers, Licence::TrackBack, true)?;
        let query: FetchAlertsQuery = parse_query(&uri)?;
        let now = state.clock.now();
        let mut store = lock(&state.nshift.inner);
        store.materialize(now, &config.progress, config.test_shipments_progress);
        let cursor = feed_cursor(query.fetch_id.as_deref(), store.head())?;
        let (events, more) = store.events_after(cursor, config.feed_page_size.max(1));
        let fetch_id = events.last().map_or(cursor, |e| e.seq);
        let alerts = events
            .iter()
            .filter_map(|e| {
                store
                    .shipment(e.shipment_id)
                    .map(|r| r.alert(&e.status, e.at, e.registered))
            })
            .collect();
        Ok(Json(AlertFetchList {
            fetch_id: fetch_id.to_string(),
            done: !more,
            min_delay: Some(if more { 0 } else { config.feed_min_delay_ms }),
            alerts: Some(alerts),
        })
        .into_response())
    })())
}

// ------------------------------------------------------------------ stored shipments

async fn create_stored(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond((|| {
        let config = &state.config.nshift;
        let caller = auth::authorize(&state, &headers, Licence::Store, false)?;
        let shipment: Shipment = parse_body_numbers(&body, &numbers::SHIPMENT)?;
        let (statuses, _) = validate::validate(
            &shipment,
            &config.services,
            &state.nshift.book,
            caller.profile_group.as_deref(),
        );
        let status = if validate::has_errors(&statuses) {
            StoredShipmentStatus::Invalid
        } else if !statuses.is_empty() {
            StoredShipmentStatus::Warned
        } else {
            StoredShipmentStatus::Ready
        };
        let book = &state.nshift.book;
        let sender = catalog::complete_party(&shipment.sender, book)
            .unwrap_or_else(|| shipment.sender.clone());
        let receiver = catalog::complete_party(&shipment.receiver, book)
            .unwrap_or_else(|| shipment.receiver.clone());
        let now = state.clock.now();
        let base = href_base(&state);
        let profile_group = profile_group_of(config, &caller, &shipment);
        let mut store = lock(&state.nshift.inner);
        let record = store.insert_stored(|id| StoredRecord {
            id,
            key_id: caller.key_id.clone(),
            shipment,
            sender,
            receiver,
            status,
            statuses,
            created: now,
            changed: now,
            profile_group,
            deleted: false,
            printed: Vec::new(),
        });
        Ok((StatusCode::CREATED, Json(record.info(&base))).into_response())
    })())
}

fn text_matches(op: &SearchStoredShipmentsQuerySearchOp, field: Option<&str>, value: &str) -> bool {
    let Some(field) = field else { return false };
    if field.is_ascii() && value.is_ascii() {
        // The search runs over every stored shipment: compare ASCII text without allocating.
        let (field, value) = (field.as_bytes(), value.as_bytes());
        let same = |a: &[u8]| a.eq_ignore_ascii_case(value);
        return match op {
            SearchStoredShipmentsQuerySearchOp::Equals => same(field),
            SearchStoredShipmentsQuerySearchOp::Contains => {
                value.is_empty() || field.windows(value.len()).any(same)
            }
            SearchStoredShipmentsQuerySearchOp::StartsWith => {
                field.len() >= value.len() && same(&field[..value.len()])
            }
            SearchStoredShipmentsQuerySearchOp::EndsWith => {
                field.len() >= value.len() && same(&field[field.len() - value.len()..])
            }
            SearchStoredShipmentsQuerySearchOp::Unknown(_) => false,
        };
    }
    let (field, value) = (field.to_lowercase(), value.to_lowercase());
    match op {
        SearchStoredShipmentsQuerySearchOp::Equals => field == value,
        SearchStoredShipmentsQuerySearchOp::Contains => field.contains(&value),
        SearchStoredShipmentsQuerySearchOp::StartsWith => field.starts_with(&value),
        SearchStoredShipmentsQuerySearchOp::EndsWith => field.ends_with(&value),
        SearchStoredShipmentsQuerySearchOp::Unknown(_) => false,
    }
}

async fn search_stored(State(state): State<SharedState>, headers: HeaderMap, uri: Uri) -> Response {
    respond((|| {
        let config = &state.config.nshift;
        let caller = auth::authorize(&state, &headers, Licence::Store, false)?;
        let query: SearchStoredShipmentsQuery = parse_query(&uri)?;
        if let Some(bad) = query.search_field.as_ref().filter(|f| f.is_unknown()) {
            return Err(illegal(format!(
                "Illegal searchField argument '{}'",
                bad.as_str()
            )));
        }
        if let Some(bad) = query.search_op.as_ref().filter(|o| o.is_unknown()) {
            return Err(illegal(format!(
                "Illegal searchOp argument '{}'",
                bad.as_str()
            )));
        }
        if let Some(bad) = query.date_type.as_ref().filter(|d| d.is_unknown()) {
            return Err(illegal(format!(
                "Illegal dateType argument '{}'",
                bad.as_str()
            )));
        }
        if let Some(bad) = query.status.as_ref().filter(|s| s.is_unknown()) {
            return Err(illegal(format!(
                "Illegal status argument '{}'",
                bad.as_str()
            )));
        }
        let search = match (&query.search_field, &query.search_value) {
            (Some(field), Some(value)) => Some((
                field.clone(),
                query
                    .search_op
                    .clone()
                    .unwrap_or(SearchStoredShipmentsQuerySearchOp::Equals),
                value.clone(),
            )),
            (None, None) if query.search_op.is_none() => None,
            (None, _) => return Err(missing("Missing searchField argument")),
            (Some(_), None) => return Err(missing("Missing searchValue argument")),
        };
        let dates = match (&query.date_type, &query.date_from, &query.date_to) {
            (Some(kind), Some(from), Some(to)) => Some((kind.clone(), from.to_utc(), to.to_utc())),
            (None, None, None) => None,
            _ => {
                return Err(missing(
                    "dateType, dateFrom and dateTo must be used together",
                ));
            }
        };
        let base = href_base(&state);
        let store = lock(&state.nshift.inner);
        // An exact order-number search (the one `book_once` makes) reads the index; the others
        // scan. Both go through the same filters below.
        let candidates: Box<dyn Iterator<Item = &super::store::StoredRecord>> = match &search {
            Some((
                SearchStoredShipmentsQuerySearchField::OrderNo,
                SearchStoredShipmentsQuerySearchOp::Equals,
                value,
            )) => Box::new(store.stored_with_order_no(value)),
            _ => Box::new(store.stored_all()),
        };
        let found: Vec<_> = candidates
            .filter(|r| !r.deleted && caller.sees(r.profile_group.as_deref()))
            .filter(|r| {
                config.printed_stored_searchable || r.status != StoredShipmentStatus::Printed
            })
            .filter(|r| match &search {
                None => true,
                Some((field, op, value)) => {
                    let text = match field {
                        SearchStoredShipmentsQuerySearchField::OrderNo => {
                            r.shipment.order_no.as_deref()
                        }
                        SearchStoredShipmentsQuerySearchField::Reference => {
                            r.shipment.sender_reference.as_deref()
                        }
                        SearchStoredShipmentsQuerySearchField::ShipmentNo => {
                            r.shipment.shipment_no.as_deref()
                        }
                        SearchStoredShipmentsQuerySearchField::Unknown(_) => None,
                    };
                    text_matches(op, text, value)
                }
            })
            .filter(|r| match &dates {
                None => true,
                Some((kind, from, to)) => {
                    let at = match kind {
                        SearchStoredShipmentsQueryDateType::Ship => {
                            super::store::ship_date(&r.shipment, r.created)
                        }
                        _ => r.created,
                    };
                    *from <= at && at <= *to
                }
            })
            .filter(|r| match &query.status {
                None => true,
                Some(wanted) => matches!(
                    (wanted, &r.status),
                    (
                        SearchStoredShipmentsQueryStatus::Ready,
                        StoredShipmentStatus::Ready
                    ) | (
                        SearchStoredShipmentsQueryStatus::Invalid,
                        StoredShipmentStatus::Invalid
                    ) | (
                        SearchStoredShipmentsQueryStatus::Failed,
                        StoredShipmentStatus::Failed
                    ) | (
                        SearchStoredShipmentsQueryStatus::Warned,
                        StoredShipmentStatus::Warned
                    )
                ),
            })
            .take(config.stored_search_limit)
            .map(|r| r.info(&base))
            .collect();
        Ok(Json(found).into_response())
    })())
}

async fn get_stored(
    State(state): State<SharedState>,
    headers: HeaderMap,
    path: Result<Path<GetStoredShipmentPath>, PathRejection>,
) -> Response {
    respond((|| {
        let caller = auth::authorize(&state, &headers, Licence::Store, false)?;
        let id = parse_id(&parse_path(path)?.stored_id, "stored shipment id")?;
        let base = href_base(&state);
        let store = lock(&state.nshift.inner);
        let record = visible(&caller, store.stored(id))?;
        Ok(Json(record.info(&base)).into_response())
    })())
}

async fn delete_stored(
    State(state): State<SharedState>,
    headers: HeaderMap,
    path: Result<Path<DeleteStoredShipmentPath>, PathRejection>,
) -> Response {
    respond((|| {
        let caller = auth::authorize(&state, &headers, Licence::Store, false)?;
        let id = parse_id(&parse_path(path)?.stored_id, "stored shipment id")?;
        let now = state.clock.now();
        let mut store = lock(&state.nshift.inner);
        let record = visible(&caller, store.stored_mut(id))?;
        record.deleted = true;
        record.changed = now;
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

async fn print_stored(
    State(state): State<SharedState>,
    headers: HeaderMap,
    uri: Uri,
    path: Result<Path<PrintStoredShipmentPath>, PathRejection>,
    body: Bytes,
) -> Response {
    respond((|| {
        let config = &state.config.nshift;
        let caller = auth::authorize(&state, &headers, Licence::Print, false)?;
        let id = parse_id(&parse_path(path)?.stored_id, "stored shipment id")?;
        let query: PrintStoredShipmentQuery = parse_query(&uri)?;
        let print_config: PrintConfig = parse_body_numbers(&body, &numbers::PRINT_CONFIG)?;
        let target =
            validate::pick_label_target(&print_targets(&print_config)).map_err(unprocessable)?;
        let delivery = Delivery {
            current: query.return_file.is_some() || is_current_generation(&print_config),
            inline: query.return_file.unwrap_or(false) || query.inline_pdf.unwrap_or(false),
        };
        let now = state.clock.now();
        let mut store = lock(&state.nshift.inner);
        let record = visible(&caller, store.stored(id))?;
        if record.status != StoredShipmentStatus::Ready {
            let mut statuses = vec![validate::status(
                nshift_models::delivery::ValidationStatusType::Error,
                "Status",
                "StoredShipment",
                "NotReady",
                format!(
                    "The stored shipment is {}; only READY stored shipments can be printed",
                    record.status.as_str()
                ),
            )];
            statuses.extend(record.statuses.iter().cloned());
            return Err(unprocessable(statuses));
        }
        let shipment = record.shipment.clone();
        let (statuses, resolved) = validate::validate(
            &shipment,
            &config.services,
            &state.nshift.book,
            caller.profile_group.as_deref(),
        );
        let resolved = match resolved {
            Some(resolved) if !validate::has_errors(&statuses) => resolved,
            _ => return Err(unprocessable(statuses)),
        };
        let infos = book(
            &mut store,
            &state,
            &caller,
            &shipment,
            &resolved,
            &target,
            delivery,
            Some(id),
            now,
        );
        if let Some(record) = store.stored_mut(id) {
            record.status = StoredShipmentStatus::Printed;
            record.changed = now;
            record
                .printed
                .extend(infos.iter().filter_map(|i| i.id.parse::<u64>().ok()));
        }
        Ok((StatusCode::CREATED, Json(infos)).into_response())
    })())
}

// ------------------------------------------------------------------ addresses

async fn find_agents(State(state): State<SharedState>, headers: HeaderMap, uri: Uri) -> Response {
    respond((|| {
        auth::authorize(&state, &headers, Licence::PickUpLocator, false)?;
        let query: FindAgentsQuery = parse_query(&uri)?;
        if query.type_.trim().is_empty() {
            return Err(missing("Missing type argument"));
        }
        if query.country_code.trim().is_empty() {
            return Err(missing("Missing countryCode argument"));
        }
        if !catalog::is_agent_type(&query.type_) {
            return Err(illegal(format!("Illegal type argument '{}'", query.type_)));
        }
        if let Some(id) = query.id.as_deref().filter(|id| !id.trim().is_empty()) {
            let found: Vec<_> = catalog::agent_by_id(id.trim(), Some(&query.type_))
                .filter(|a| {
                    a.country_code
                        .eq_ignore_ascii_case(query.country_code.trim())
                })
                .into_iter()
                .collect();
            return Ok(Json(found).into_response());
        }
        let Some(zip) = query.zip.as_deref().filter(|z| !z.trim().is_empty()) else {
            return Err(missing("Missing zip argument"));
        };
        Ok(Json(catalog::agents_near(
            &query.type_,
            query.country_code.trim(),
            zip,
        ))
        .into_response())
    })())
}

async fn zipcode_info(State(state): State<SharedState>, headers: HeaderMap, uri: Uri) -> Response {
    respond((|| {
        auth::authorize(&state, &headers, Licence::ZipCheck, false)?;
        let query: GetZipcodeInfoQuery = parse_query(&uri)?;
        if query.zip.trim().is_empty() {
            return Err(missing("Missing zip argument"));
        }
        let country = query.country_code.trim();
        let valid = catalog::zip_fits(country, &query.zip);
        Ok(Json(ZipcodeInfo {
            city: valid.then(|| {
                catalog::city_for(country, &catalog::normalize_zip(country, &query.zip))
                    .to_uppercase()
            }),
            pattern: catalog::zip_pattern(country).map(str::to_owned),
            valid: Some(valid),
            box_: Some(false),
            rural: Some(false),
            customer: Some(false),
        })
        .into_response())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The allocation-free ASCII path gives what lower-casing both sides gives.
    #[test]
    fn text_matches_is_case_insensitive_like_lowercase() {
        let ops = [
            SearchStoredShipmentsQuerySearchOp::Equals,
            SearchStoredShipmentsQuerySearchOp::Contains,
            SearchStoredShipmentsQuerySearchOp::StartsWith,
            SearchStoredShipmentsQuerySearchOp::EndsWith,
        ];
        let texts = [
            "NC-100001",
            "nc-100001",
            "NC-1",
            "100001",
            "",
            "Ärende-1",
            "x",
        ];
        for op in &ops {
            for field in texts {
                for value in texts {
                    let (f, v) = (field.to_lowercase(), value.to_lowercase());
                    let expected = match op {
                        SearchStoredShipmentsQuerySearchOp::Equals => f == v,
                        SearchStoredShipmentsQuerySearchOp::Contains => f.contains(&v),
                        SearchStoredShipmentsQuerySearchOp::StartsWith => f.starts_with(&v),
                        SearchStoredShipmentsQuerySearchOp::EndsWith => f.ends_with(&v),
                        SearchStoredShipmentsQuerySearchOp::Unknown(_) => false,
                    };
                    assert_eq!(
                        text_matches(op, Some(field), value),
                        expected,
                        "{op:?} {field:?} {value:?}"
                    );
                }
            }
        }
    }
}
