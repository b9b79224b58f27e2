//! `relay verify --deep`: every read-only operation the flows use, called on the merchant's own
//! accounts, each answer decoded as the flows decode it and strictly against the spec's model.
//!
//! The clients are built as the flows build them (same settings, same rate limiters and
//! retries) on a [`Tap`] transport that keeps a copy of every answer. After each typed call the
//! answers are matched to their spec operation by method and path, and each JSON answer is
//! compared with the operation's response model ([`conformance::compare`]): fields the spec
//! does not describe, required fields that are absent, values of another type. Only reads are
//! made: searches with small pages, GETs of ids found along the way, list endpoints.
//!
//! nShift's alerts feed is read from `fetchId=-1` (a fresh start): a `fetchId` is a cursor the
//! caller keeps and sends back (help.unifaun.com, "Shipment status via API"), so reading one
//! page moves nothing on nShift's side, and verify never writes relay's own state, so the
//! tracking flow's cursor stays where it is.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use client_core::{ReqwestTransport, Settings};
use conformance::strict::{is_sensitive_key, mask_document, mask_everything};
use conformance::{DecodeProblem, Exchange, FieldDiff, Mismatch, StrictReport, Tap};
use futures::StreamExt as _;
use models_runtime::{OperationInfo, ResponseVisitor};
use serde::Serialize;
use serde_json::Value;

use super::Platform;
use crate::config::RelayConfig;

/// What `--deep` was asked to do besides checking.
#[derive(Debug, Clone, Default)]
pub struct DeepOptions {
    /// Write each operation's first answer, masked, with its request line, into this folder.
    pub save: Option<PathBuf>,
    /// How many days back the Norce order reads look (default 7 when 0).
    pub days: u32,
    /// Each platform's probes together must finish within this (default 120 s when zero).
    pub timeout: Duration,
}

/// The whole `--deep` report.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DeepReport {
    /// One entry per operation called, in the order first called.
    pub operations: Vec<OperationCheck>,
    /// Operations the flows use that were not called, and why.
    pub not_called: Vec<NotCalled>,
    /// Platforms whose probes could not start (settings) or did not finish in time.
    pub platform_errors: Vec<PlatformError>,
    /// The folder the answers were saved in, with `--save`.
    pub saved_to: Option<String>,
}

impl DeepReport {
    /// Whether every call answered and every answer decoded normally (strict differences are
    /// warnings and do not fail the check).
    pub fn passed(&self) -> bool {
        self.platform_errors.is_empty() && self.operations.iter().all(OperationCheck::passed)
    }

    /// Whether any answer failed the normal decode.
    pub fn decode_failed(&self) -> bool {
        self.operations.iter().any(|o| !o.decode_errors.is_empty())
    }

    /// Whether some answer has fields or types the spec does not describe.
    pub fn has_differences(&self) -> bool {
        self.operations.iter().any(OperationCheck::has_differences)
    }
}

/// What was found for one spec operation.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct OperationCheck {
    /// The platform.
    pub platform: Platform,
    /// The spec's `operationId`.
    pub operation: &'static str,
    /// `METHOD path-template`.
    pub endpoint: String,
    /// The spec file that describes it, relative to the repository.
    pub spec: &'static str,
    /// The spec schema its answer decodes into (the innermost one for an array or a map).
    pub schema: String,
    /// Requests made (retries and pages included).
    pub calls: u32,
    /// JSON answers that decoded into the model.
    pub decoded: u32,
    /// Fields present that the spec does not describe.
    pub unknown: Vec<UnknownField>,
    /// Required fields that were absent.
    pub missing: Vec<MissingField>,
    /// Values of another type than the spec's.
    pub mismatched: Vec<TypeMismatch>,
    /// Normal decode failures: the flows would fail on these answers.
    pub decode_errors: Vec<DecodeProblem>,
    /// Calls that failed otherwise (status, refusal, timeout), with what to do.
    pub errors: Vec<String>,
}

impl OperationCheck {
    /// No call error and no normal decode failure.
    pub fn passed(&self) -> bool {
        self.errors.is_empty() && self.decode_errors.is_empty()
    }

    /// Whether the strict decode found anything.
    pub fn has_differences(&self) -> bool {
        !self.unknown.is_empty() || !self.missing.is_empty() || !self.mismatched.is_empty()
    }
}

/// A field in an answer that the spec does not describe.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct UnknownField {
    /// Where, array indices as `[]` (`response[].climateZone`).
    pub path: String,
    /// The spec schema that would describe it (the object it sits in).
    pub schema: String,
    /// The first value seen there, masked when personal or secret.
    pub example: Value,
}

/// A field the spec requires that an answer did not have.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MissingField {
    /// Where (`value[0].orderNo`).
    pub path: String,
    /// The spec schema that requires it.
    pub schema: String,
}

/// A value of another type than the spec says.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TypeMismatch {
    /// Where (`[0].id`).
    pub path: String,
    /// The spec schema the field belongs to.
    pub schema: String,
    /// What the model expected, in serde's words.
    pub expected: String,
    /// What the answer has (`string`, `map`, `null`, …).
    pub found: String,
}

/// A read the flows make that `--deep` did not, and why.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct NotCalled {
    /// The platform.
    pub platform: Platform,
    /// The spec's `operationId`.
    pub operation: &'static str,
    /// Why.
    pub reason: String,
}

/// A platform whose probes stopped before they ran or before they finished.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PlatformError {
    /// The platform.
    pub platform: Platform,
    /// What happened and what to do.
    pub advice: String,
}

/// Reads the flows make that no read-only call can reach, with the reason (they need an id
/// only a write returns). The coverage test accepts these and only these as not called.
pub const UNREACHABLE_READS: &[(Platform, &str, &str)] = &[
    (
        Platform::Norce,
        "GetJob",
        "needs the id of a Connect import job, which only an import (a write) returns",
    ),
    (
        Platform::Norce,
        "GetJobLog",
        "needs the id of a Connect import job, which only an import (a write) returns",
    ),
    (
        Platform::Nshift,
        "ListShipmentPdfs",
        "needs the id of a shipment relay booked (a write); the flows read it only when a booking's answer had no labels",
    ),
    (
        Platform::Nshift,
        "GetShipmentPdf",
        "needs the id of a shipment relay booked (a write); the flows read it only when a booking's answer had no labels",
    ),
];

/// One generated spec module: its file, its operations and its response models.
struct SpecModule {
    platform: Platform,
    file: &'static str,
    operations: &'static [OperationInfo],
    visit: fn(&str, Compare) -> Option<(String, StrictReport)>,
    schemas: SchemaFields,
}

/// A generated module's `SCHEMA_FIELDS`.
type SchemaFields = &'static [(&'static str, &'static [(&'static str, &'static str)])];

/// Strictly compares a raw answer with the visited model; also names the model.
struct Compare(Value);

impl ResponseVisitor for Compare {
    type Output = (String, StrictReport);

    fn visit<T>(self) -> Self::Output
    where
        T: serde::de::DeserializeOwned + serde::Serialize + 'static,
    {
        (
            std::any::type_name::<T>().to_owned(),
            conformance::compare::<T>(&self.0),
        )
    }
}

macro_rules! spec_module {
    ($platform:expr, $file:literal, $module:path) => {{
        use $module as m;
        SpecModule {
            platform: $platform,
            file: $file,
            operations: m::operations::ALL,
            visit: m::operations::visit_response::<Compare>,
            schemas: m::SCHEMA_FIELDS,
        }
    }};
}

fn spec_modules() -> [SpecModule; 13] {
    use brightpearl_client::models as bp;
    use norce_client::models as norce;
    [
        spec_module!(
            Platform::Norce,
            "specs/norce/services.yaml",
            norce::services
        ),
        spec_module!(Platform::Norce, "specs/norce/query.yaml", norce::query),
        spec_module!(Platform::Norce, "specs/norce/connect.yaml", norce::connect),
        spec_module!(
            Platform::Norce,
            "specs/norce/identity.yaml",
            norce::identity
        ),
        spec_module!(
            Platform::Nshift,
            "specs/nshift/delivery.yaml",
            nshift_client::models
        ),
        spec_module!(
            Platform::Brightpearl,
            "specs/brightpearl/product.yaml",
            bp::product
        ),
        spec_module!(
            Platform::Brightpearl,
            "specs/brightpearl/warehouse.yaml",
            bp::warehouse
        ),
        spec_module!(
            Platform::Brightpearl,
            "specs/brightpearl/order.yaml",
            bp::order
        ),
        spec_module!(
            Platform::Brightpearl,
            "specs/brightpearl/contact.yaml",
            bp::contact
        ),
        spec_module!(
            Platform::Brightpearl,
            "specs/brightpearl/integration.yaml",
            bp::integration
        ),
        spec_module!(
            Platform::Brightpearl,
            "specs/brightpearl/oauth.yaml",
            bp::oauth
        ),
        spec_module!(
            Platform::Brightpearl,
            "specs/brightpearl/common.yaml",
            bp::common
        ),
        spec_module!(Platform::Norce, "specs/norce/events.yaml", norce::events),
    ]
}

/// Token requests: checked by authenticating, never reported or saved (their answers are
/// secrets).
const TOKEN_OPERATIONS: &[&str] = &["RequestToken", "Authorize", "CreateJwtSession"];

/// The spec operation a request went to: same method, and the template's segments match the
/// end of the request path (`{name}` matches any one segment; base URLs may add a prefix).
/// The longest template wins; then the one with more literal segments.
pub fn operation_of(
    platform: Platform,
    method: &str,
    path: &str,
) -> Option<(&'static str, &'static OperationInfo)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut best: Option<((usize, usize), &'static str, &'static OperationInfo)> = None;
    for module in spec_modules().iter().filter(|m| m.platform == platform) {
        for op in module.operations {
            if !op.method.eq_ignore_ascii_case(method) {
                continue;
            }
            let template: Vec<&str> = op.path.split('/').filter(|s| !s.is_empty()).collect();
            if template.len() > segments.len() {
                continue;
            }
            let tail = &segments[segments.len() - template.len()..];
            let matches = template
                .iter()
                .zip(tail)
                .all(|(t, s)| (t.starts_with('{') && t.ends_with('}')) || t == s);
            if !matches {
                continue;
            }
            let literal = template.iter().filter(|t| !t.starts_with('{')).count();
            let rank = (template.len(), literal);
            if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
                best = Some((rank, module.file, op));
            }
        }
    }
    best.map(|(_, file, op)| (file, op))
}

/// Collects the checks of one platform from the answers its tap saw.
struct Recorder<'a> {
    platform: Platform,
    tap: Tap,
    checks: &'a mut Vec<OperationCheck>,
    not_called: &'a mut Vec<NotCalled>,
    save: Option<&'a Path>,
    saved: BTreeSet<&'static str>,
    save_errors: Vec<String>,
}

impl Recorder<'_> {
    /// Runs one typed call and records every answer it caused. `expected` is the operation a
    /// failure without any answer (refused, timed out) is charged to.
    async fn call<T, E>(
        &mut self,
        expected: &'static str,
        call: impl Future<Output = Result<T, E>>,
        hint: impl Fn(&E) -> String,
    ) -> Option<T> {
        let result = call.await;
        let mut last_operation = None;
        for exchange in self.tap.take() {
            last_operation = self.record(&exchange, expected).or(last_operation);
        }
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                let operation = last_operation.unwrap_or(expected);
                let advice = hint(&e);
                self.check(operation).errors.push(advice);
                None
            }
        }
    }

    /// Says why a read the flows make was not made.
    fn skip(&mut self, operation: &'static str, reason: impl Into<String>) {
        self.not_called.push(NotCalled {
            platform: self.platform,
            operation,
            reason: reason.into(),
        });
    }

    /// The check of `operation`, created on first use.
    fn check(&mut self, operation: &'static str) -> &mut OperationCheck {
        let platform = self.platform;
        let at = match self
            .checks
            .iter()
            .position(|c| c.platform == platform && c.operation == operation)
        {
            Some(at) => at,
            None => {
                let (spec, endpoint) = spec_modules()
                    .iter()
                    .filter(|m| m.platform == platform)
                    .find_map(|m| {
                        m.operations
                            .iter()
                            .find(|op| op.id == operation)
                            .map(|op| (m.file, format!("{} {}", op.method, op.path)))
                    })
                    .unwrap_or(("(not in the specs)", String::new()));
                self.checks.push(OperationCheck {
                    platform,
                    operation,
                    endpoint,
                    spec,
                    schema: String::new(),
                    calls: 0,
                    decoded: 0,
                    unknown: Vec::new(),
                    missing: Vec::new(),
                    mismatched: Vec::new(),
                    decode_errors: Vec::new(),
                    errors: Vec::new(),
                });
                self.checks.len() - 1
            }
        };
        &mut self.checks[at]
    }

    /// Records one answer; returns its operation (`None` for token requests).
    fn record(&mut self, exchange: &Exchange, expected: &'static str) -> Option<&'static str> {
        let method = exchange.method.as_str();
        let Some((file, op)) = operation_of(self.platform, method, exchange.uri.path()) else {
            let line = format!("{method} {}", exchange.uri.path());
            self.check(expected).errors.push(format!(
                "an answer came from {line}, which no spec operation describes: report it with the saved answers"
            ));
            return Some(expected);
        };
        if TOKEN_OPERATIONS.contains(&op.id) {
            return None;
        }
        let check = self.check(op.id);
        check.calls += 1;
        if !exchange.is_json_success() {
            return Some(op.id);
        }
        let raw: Value = match serde_json::from_slice(&exchange.body) {
            Ok(raw) => raw,
            Err(e) => {
                check.decode_errors.push(DecodeProblem::new(
                    ".",
                    format!("the answer is not JSON: {e}"),
                ));
                return Some(op.id);
            }
        };
        let visit = spec_modules()
            .iter()
            .find(|m| m.platform == self.platform && m.file == file)
            .map(|m| m.visit);
        if let Some((type_name, report)) =
            visit.and_then(|visit| visit(op.id, Compare(raw.clone())))
        {
            let root = Root::of(&type_name);
            let platform = self.platform;
            let check = self.check(op.id);
            check.schema = root.name.to_owned();
            merge(check, report, |path| schema_at(platform, &root, path));
        }
        if let Some(dir) = self.save
            && self.saved.insert(op.id)
            && let Err(e) = save_answer(dir, self.platform, op.id, exchange, &raw)
        {
            self.save_errors.push(e);
        }
        Some(op.id)
    }
}

/// Adds one answer's strict report to its operation's check (each path once); `schema_of`
/// names the schema a path's last field belongs to.
fn merge(check: &mut OperationCheck, report: StrictReport, schema_of: impl Fn(&str) -> String) {
    match report.decoded {
        Ok(()) => check.decoded += 1,
        Err(problem) => {
            if !check.decode_errors.iter().any(|p| p.path == problem.path) {
                check.decode_errors.push(problem);
            }
        }
    }
    for FieldDiff { path, example, .. } in report.unknown {
        if !check.unknown.iter().any(|f| f.path == path) {
            let schema = schema_of(&path);
            check.unknown.push(UnknownField {
                path,
                schema,
                example,
            });
        }
    }
    if let Some(path) = report.missing
        && !check.missing.iter().any(|m| m.path == path)
    {
        let schema = schema_of(&path);
        check.missing.push(MissingField { path, schema });
    }
    if let Some(Mismatch {
        path,
        expected,
        found,
        ..
    }) = report.mismatched
        && !check.mismatched.iter().any(|m| m.path == path)
    {
        let schema = schema_of(&path);
        check.mismatched.push(TypeMismatch {
            path,
            schema,
            expected,
            found,
        });
    }
}

/// The model an answer was decoded into, as the schema walk starts from it.
struct Root<'a> {
    /// The schema's name (the innermost named type: `Agent` of `Vec<…::Agent>`).
    name: &'a str,
    /// The answer is a map at the top (its first path segment is a key, not a field).
    map: bool,
}

impl<'a> Root<'a> {
    /// From `std::any::type_name` of the response model.
    fn of(type_name: &'a str) -> Self {
        let innermost = type_name
            .rsplit(['<', ' '])
            .next()
            .unwrap_or(type_name)
            .trim_end_matches('>');
        Self {
            name: innermost.rsplit("::").next().unwrap_or(innermost),
            map: type_name.contains("Map<"),
        }
    }
}

/// A JSON path as [`conformance::compare`] writes it, as segments: `Some(key)` (bare or
/// `["…"]`) or `None` for an index (`[3]`, `[]`).
fn path_segments(path: &str) -> Vec<Option<String>> {
    let mut segments = Vec::new();
    let mut key = String::new();
    let mut chars = path.chars();
    let flush = |key: &mut String, segments: &mut Vec<Option<String>>| {
        if !key.is_empty() {
            segments.push(Some(std::mem::take(key)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '.' => flush(&mut key, &mut segments),
            '[' => {
                flush(&mut key, &mut segments);
                let mut inside = String::new();
                for c in chars.by_ref() {
                    // A `]` inside a quoted key does not close the bracket.
                    let open_quote = inside.starts_with('"')
                        && (inside.len() == 1
                            || !inside.ends_with('"')
                            || inside.ends_with("\\\""));
                    if c == ']' && !open_quote {
                        break;
                    }
                    inside.push(c);
                }
                segments.push(serde_json::from_str::<String>(&inside).ok());
            }
            c => key.push(c),
        }
    }
    flush(&mut key, &mut segments);
    segments
}

/// The spec schema whose field the last key of `path` is: the object that holds it, or the
/// deepest schema the path reaches before a field the spec does not have.
fn schema_at(platform: Platform, root: &Root<'_>, path: &str) -> String {
    let modules = spec_modules();
    let fields = |schema: &str| -> Option<&'static [(&'static str, &'static str)]> {
        modules
            .iter()
            .filter(|m| m.platform == platform)
            .find_map(|m| m.schemas.iter().find(|(name, _)| *name == schema))
            .map(|(_, fields)| *fields)
    };
    // Aliases (`StatusList` = an array of `ValidationStatus`) stand for what they hold.
    let resolve = |mut schema: String, mut map: bool| {
        while let Some([("", held)]) = fields(&schema) {
            map |= held.starts_with("{}");
            schema = held.trim_start_matches("{}").to_owned();
        }
        (schema, map)
    };
    let mut segments = path_segments(path);
    // Up to the object holding the last key: drop trailing indices, then that key.
    while matches!(segments.last(), Some(None)) {
        segments.pop();
    }
    segments.pop();
    let (mut current, mut map_key_next) = resolve(root.name.to_owned(), root.map);
    for key in segments.into_iter().flatten() {
        if map_key_next {
            map_key_next = false;
            continue;
        }
        let held = fields(&current)
            .and_then(|fields| fields.iter().find(|(wire, _)| *wire == key))
            .map(|(_, held)| *held);
        match held {
            Some(held) if !held.is_empty() => {
                let map = held.starts_with("{}");
                (current, map_key_next) = resolve(held.trim_start_matches("{}").to_owned(), map);
            }
            _ => break,
        }
    }
    current
}

/// The file name of an operation's saved answer.
pub fn saved_file_name(platform: Platform, operation: &str) -> String {
    format!("{}-{operation}.json", platform.name().to_ascii_lowercase())
}

/// Writes one masked answer with its (masked) request line.
fn save_answer(
    dir: &Path,
    platform: Platform,
    operation: &str,
    exchange: &Exchange,
    raw: &Value,
) -> Result<(), String> {
    let document = serde_json::json!({
        "platform": platform.name(),
        "operation": operation,
        "request": format!("{} {}", exchange.method, masked_request_target(&exchange.uri)),
        "status": exchange.status.as_u16(),
        "response": mask_answer(raw),
    });
    let path = dir.join(saved_file_name(platform, operation));
    let text = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n")
        .map_err(|e| format!("--save: cannot write {}: {e}", path.display()))
}

/// The path and query of a request, with values of personal or secret parameters masked
/// (`primaryEmail=`, `zip=`, `secret=`).
pub fn masked_request_target(uri: &http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if is_sensitive_key(&key) || key.eq_ignore_ascii_case("secret") {
            out.append_pair(&key, &format!("<masked: {} chars>", value.chars().count()));
        } else {
            out.append_pair(&key, &value);
        }
    }
    format!("{}?{}", uri.path(), out.finish())
}

/// An answer with personal data and secrets masked: by key everywhere, and in Brightpearl
/// search rows (arrays of cells) by the column's name from `metaData.columns`.
pub fn mask_answer(raw: &Value) -> Value {
    let mut masked = mask_document(raw);
    let Some(meta) = raw.pointer("/response/metaData") else {
        return masked;
    };
    // A search's metadata names columns (`"name": "primaryEmail"`), never a person: kept as
    // it is, so a saved answer still says which cell is which.
    if let Some(slot) = masked.pointer_mut("/response/metaData") {
        *slot = meta.clone();
    }
    let columns: Vec<bool> = meta
        .pointer("/columns")
        .and_then(Value::as_array)
        .map(|columns| {
            columns
                .iter()
                .map(|c| {
                    c.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(is_sensitive_key)
                })
                .collect()
        })
        .unwrap_or_default();
    if columns.iter().any(|personal| *personal)
        && let Some(rows) = masked
            .pointer_mut("/response/results")
            .and_then(Value::as_array_mut)
    {
        for row in rows.iter_mut().filter_map(Value::as_array_mut) {
            for (cell, personal) in row.iter_mut().zip(&columns) {
                if *personal {
                    *cell = mask_everything(cell);
                }
            }
        }
    }
    masked
}

/// Ids found along the way, for the reads that need one.
#[derive(Debug, Default)]
struct Found {
    /// A Norce order number, id, and the receiver's country and zip code.
    order_no: Option<String>,
    order_id: Option<String>,
    email: Option<String>,
    country: Option<String>,
    zip: Option<String>,
}

/// Runs the deep check of `platforms` and returns the report.
pub async fn verify_deep(
    settings: &Settings,
    config: &RelayConfig,
    platforms: &[Platform],
    options: &DeepOptions,
) -> DeepReport {
    let mut report = DeepReport {
        operations: Vec::new(),
        not_called: Vec::new(),
        platform_errors: Vec::new(),
        saved_to: None,
    };
    if let Some(dir) = &options.save {
        if let Err(e) = std::fs::create_dir_all(dir) {
            report
                .platform_errors
                .extend(platforms.iter().map(|&platform| PlatformError {
                    platform,
                    advice: format!("--save: cannot create {}: {e}", dir.display()),
                }));
            return report;
        }
        report.saved_to = Some(dir.display().to_string());
    }
    let timeout = if options.timeout.is_zero() {
        Duration::from_secs(120)
    } else {
        options.timeout
    };
    let days = if options.days == 0 { 7 } else { options.days };
    report.not_called.extend(
        UNREACHABLE_READS
            .iter()
            .filter(|(platform, _, _)| platforms.contains(platform))
            .map(|&(platform, operation, reason)| NotCalled {
                platform,
                operation,
                reason: reason.to_owned(),
            }),
    );
    let mut found = Found::default();
    // Norce first: its orders give nShift and Brightpearl real values to look up.
    for platform in [Platform::Norce, Platform::Nshift, Platform::Brightpearl] {
        if !platforms.contains(&platform) {
            continue;
        }
        let tap = match ReqwestTransport::new(client_core::DEFAULT_TIMEOUT) {
            Ok(transport) => Tap::new(transport),
            Err(e) => {
                report.platform_errors.push(PlatformError {
                    platform,
                    advice: format!("cannot build the HTTP client: {e}"),
                });
                continue;
            }
        };
        let mut recorder = Recorder {
            platform,
            tap,
            checks: &mut report.operations,
            not_called: &mut report.not_called,
            save: options.save.as_deref(),
            saved: BTreeSet::new(),
            save_errors: Vec::new(),
        };
        let probes = async {
            match platform {
                Platform::Norce => norce(&mut recorder, settings, days, &mut found).await,
                Platform::Nshift => nshift(&mut recorder, settings, config, &found).await,
                Platform::Brightpearl => brightpearl(&mut recorder, settings, config, &found).await,
            }
        };
        let outcome = tokio::time::timeout(timeout, probes).await;
        let save_errors = std::mem::take(&mut recorder.save_errors);
        let advice = match outcome {
            Err(_) => Some(format!(
                "the reads did not finish within {} s: check the network, or give more time with --timeout-secs",
                timeout.as_secs()
            )),
            Ok(Err(advice)) => Some(advice),
            Ok(Ok(())) => None,
        };
        report.platform_errors.extend(
            advice
                .into_iter()
                .chain(save_errors)
                .map(|advice| PlatformError { platform, advice }),
        );
    }
    report
}

/// Norce: the application, Query orders of the last `days` days with every `$expand` the flows
/// send, one of them by `GetOrder`, and a page of `ListOrders3`.
async fn norce(
    rec: &mut Recorder<'_>,
    settings: &Settings,
    days: u32,
    found: &mut Found,
) -> Result<(), String> {
    use norce_client::models::query::QueryOrdersQuery;
    use norce_client::models::services::operations::ServicesApi as _;
    use norce_client::models::services::{GetOrderQuery, ListOrders3Query};
    use norce_client::{Error, Navigation};
    let client = norce_client::NorceClientBuilder::from_settings(settings)
        .map(|b| b.transport(rec.tap.clone()))
        .and_then(|b| b.build())
        .map_err(|e| e.hint())?;
    let hint = |e: &Error| e.hint();
    let query = Default::default();
    rec.call("GetApplication", client.get_application(&query), hint)
        .await;
    let since = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let since_text = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let query = QueryOrdersQuery {
        filter: Some(format!("created ge {since_text}")),
        expand: Some(client.query_navigation().expand(&[
            Navigation::OrderItems,
            Navigation::Buyer,
            Navigation::ShipTo,
            Navigation::DeliveryNotes,
        ])),
        orderby: Some("created desc".into()),
        top: Some(5),
        ..QueryOrdersQuery::default()
    };
    let page = rec
        .call(
            "QueryOrders",
            async { client.query_orders(query).next().await.transpose() },
            hint,
        )
        .await
        .flatten();
    if let Some(order) = page.as_ref().and_then(|p| p.value.first()) {
        found.order_no = Some(order.order_no.clone());
        found.order_id = Some(order.id.to_string());
        found.email = [&order.buyer_customer_info, &order.ship_to_customer_info]
            .into_iter()
            .flatten()
            .find_map(|c| c.email_address.clone())
            .filter(|e| !e.trim().is_empty());
    }
    let list = ListOrders3Query {
        from_date: Some(models_runtime::Timestamp::from_datetime(since)),
        page_no: Some(1),
        page_size: Some(5),
        ..ListOrders3Query::default()
    };
    let listed = rec
        .call("ListOrders3", client.list_orders3(&list), hint)
        .await;
    if found.order_id.is_none() {
        found.order_id = listed
            .as_ref()
            .and_then(|l| l.items.as_ref()?.first())
            .map(|item| item.id.to_string());
    }
    match found.order_id.clone() {
        Some(id) => {
            let query = GetOrderQuery {
                id,
                ..Default::default()
            };
            if let Some(order) = rec.call("GetOrder", client.get_order(&query), hint).await {
                let address = order.ship_to.as_ref().and_then(|c| c.address.as_ref());
                // nShift takes ISO alpha-2, as the shipping flow sends it.
                found.country = address
                    .and_then(|a| a.country_code.as_deref())
                    .and_then(crate::flows::shipping::country_alpha2);
                found.zip = address.and_then(|a| a.zip_code.clone());
                if found.order_no.is_none() {
                    found.order_no = order.order_no.clone();
                }
            }
        }
        None => rec.skip(
            "GetOrder",
            format!("no order in the last {days} days to read; widen with --days"),
        ),
    }
    Ok(())
}

/// nShift: stored-shipment search (by a real order number when Norce gave one), agents and
/// zip code info near the order's receiver, one page of the alerts feed.
async fn nshift(
    rec: &mut Recorder<'_>,
    settings: &Settings,
    config: &RelayConfig,
    found: &Found,
) -> Result<(), String> {
    use nshift_client::models::{FindAgentsQuery, GetZipcodeInfoQuery};
    use nshift_client::{DeliveryApi as _, Error};
    let client = nshift_client::NshiftClientBuilder::from_settings(settings)
        .map(|b| b.transport(rec.tap.clone()))
        .and_then(|b| b.build())
        .map_err(|e| e.hint())?;
    let hint = |e: &Error| e.hint();
    let order_no = found.order_no.as_deref().unwrap_or("relay-verify-probe");
    rec.call(
        "SearchStoredShipments",
        client.find_stored_by_order_no(order_no),
        hint,
    )
    .await;
    match (&found.country, &found.zip) {
        (Some(country), Some(zip)) => {
            let agent_type = crate::flows::shipping::agent_types(&config.shipping)
                .into_iter()
                .next();
            match agent_type {
                Some(agent_type) => {
                    let query = FindAgentsQuery {
                        type_: agent_type,
                        zip: Some(zip.clone()),
                        country_code: country.clone(),
                        street: None,
                        id: None,
                    };
                    rec.call("FindAgents", client.find_agents(&query), hint)
                        .await;
                }
                None => rec.skip(
                    "FindAgents",
                    "no delivery-method mapping has an agent_type (pickup points)",
                ),
            }
            let query = GetZipcodeInfoQuery {
                zip: zip.clone(),
                country_code: country.clone(),
            };
            rec.call("GetZipcodeInfo", client.get_zipcode_info(&query), hint)
                .await;
        }
        _ => {
            let reason = "no Norce order with a receiver country and zip code was found to look up near (Norce not configured, or no recent order)";
            rec.skip("FindAgents", reason);
            rec.skip("GetZipcodeInfo", reason);
        }
    }
    if config.shipping.track {
        rec.call(
            "FetchAlerts",
            client.fetch_alerts(nshift_client::FEED_START),
            hint,
        )
        .await;
    } else {
        rec.skip(
            "FetchAlerts",
            "shipping.track = false: the flows do not read it",
        );
    }
    Ok(())
}

/// Brightpearl: the catalog search with the stock flow's columns (one small page), product GET,
/// availability and prices of a few of its products, bundle availability of a bundle among
/// them, price lists, order and goods-out note searches with the flows' columns (and a shipped
/// note with its sales order, as fulfilment reads them), contacts by
/// the Norce order's e-mail, webhooks, warehouses, shipping methods and order statuses.
async fn brightpearl(
    rec: &mut Recorder<'_>,
    settings: &Settings,
    config: &RelayConfig,
    found: &Found,
) -> Result<(), String> {
    use brightpearl_client::models::integration::operations::IntegrationApi as _;
    use brightpearl_client::models::order::operations::OrderApi as _;
    use brightpearl_client::models::product::operations::ProductApi as _;
    use brightpearl_client::models::warehouse::operations::WarehouseApi as _;
    use brightpearl_client::models::{integration, order, product, warehouse};
    use brightpearl_client::{
        Error, NothingFound as _, SearchQuery, SearchResource, SortDirection,
    };
    let client = brightpearl_client::ClientBuilder::from_settings(settings)
        .map(|b| b.transport(rec.tap.clone()))
        .and_then(|b| b.build())
        .map_err(|e| e.hint())?;
    let hint = |e: &Error| e.hint();
    let query = SearchQuery::new()
        .columns(crate::flows::stock::CATALOG_COLUMNS)
        .sort("productId", SortDirection::Asc)
        .page_size(50);
    let page = rec
        .call(
            "SearchProducts",
            client.search(SearchResource::Products, &query),
            hint,
        )
        .await;
    let rows: Vec<brightpearl_client::ProductRow> = page
        .as_ref()
        .and_then(|p| p.decode_rows().ok())
        .unwrap_or_default();
    let tracked: Vec<u64> = rows
        .iter()
        .filter(|r| r.stock_tracked != Some(false))
        .map(|r| r.product_id)
        .take(5)
        .collect();
    let untracked: Vec<u64> = rows
        .iter()
        .filter(|r| r.stock_tracked == Some(false))
        .map(|r| r.product_id)
        .take(20)
        .collect();
    if tracked.is_empty() && untracked.is_empty() {
        for operation in [
            "GetProducts",
            "GetProductAvailability",
            "GetProductPrices",
            "GetBundleAvailability",
        ] {
            rec.skip(operation, "the product search found no product");
        }
    } else {
        let mut ids: Vec<u64> = tracked.clone();
        ids.extend(&untracked);
        let products = rec
            .call("GetProducts", client.products(&ids), hint)
            .await
            .unwrap_or_default();
        if tracked.is_empty() {
            rec.skip(
                "GetProductAvailability",
                "the first page of products has no stock-tracked product",
            );
        } else {
            rec.call(
                "GetProductAvailability",
                client.availability(&tracked),
                hint,
            )
            .await;
        }
        rec.call(
            "GetProductPrices",
            client.product_prices(&ids[..ids.len().min(5)], None),
            hint,
        )
        .await;
        let bundles: Vec<u64> = products
            .iter()
            .filter(|p| p.composition.as_ref().and_then(|c| c.bundle) == Some(true))
            .filter_map(|p| u64::try_from(p.id).ok())
            .take(2)
            .collect();
        if !config.stock.bundles {
            rec.skip(
                "GetBundleAvailability",
                "stock.bundles = false: the flows do not read it",
            );
        } else if bundles.is_empty() {
            rec.skip(
                "GetBundleAvailability",
                "no bundle among the first 50 products",
            );
        } else {
            rec.call(
                "GetBundleAvailability",
                client.bundle_availability_with(&bundles, config.stock.bundle_mode()),
                hint,
            )
            .await;
        }
    }
    let account = || client.account().to_owned();
    let path = product::ListPriceListsPath { account: account() };
    let lists = async { client.list_price_lists(&path).await.or_empty() };
    rec.call("ListPriceLists", lists, hint).await;
    let query = SearchQuery::new()
        .columns(crate::flows::orders::ORDER_SEARCH_COLUMNS)
        .page_size(5);
    rec.call(
        "SearchOrders",
        client.search(SearchResource::Orders, &query),
        hint,
    )
    .await;
    let query = SearchQuery::new()
        .filter("shipped", "true")
        .columns(crate::flows::orders::GOODS_OUT_SEARCH_COLUMNS)
        .sort("goodsOutNoteId", SortDirection::Asc)
        .page_size(5);
    let notes = rec
        .call(
            "SearchGoodsOutNotes",
            client.search(SearchResource::GoodsOutNotes, &query),
            hint,
        )
        .await;
    /// The ids of a goods-out-note search row.
    #[derive(serde::Deserialize)]
    struct NoteRow {
        #[serde(rename = "goodsOutNoteId")]
        note: u64,
        #[serde(rename = "orderId")]
        order: Option<u64>,
    }
    let shipped: Option<NoteRow> = notes
        .and_then(|page| page.decode_rows::<NoteRow>().ok())
        .and_then(|rows| rows.into_iter().next());
    match shipped {
        Some(row) => {
            // Fulfilment reads a shipped note and its sales order by id.
            rec.call(
                "GetGoodsOutNotes",
                client.goods_out_notes(&[row.note]),
                hint,
            )
            .await;
            match row.order {
                Some(order) => {
                    rec.call("GetSalesOrders", client.sales_orders(&[order]), hint)
                        .await;
                }
                None => rec.skip(
                    "GetSalesOrders",
                    "the shipped goods-out note has no orderId",
                ),
            }
        }
        None => {
            let reason = "no shipped goods-out note to read (fulfilment has nothing to do yet)";
            rec.skip("GetGoodsOutNotes", reason);
            rec.skip("GetSalesOrders", reason);
        }
    }
    match &found.email {
        Some(email) => {
            rec.call(
                "SearchContacts",
                client.find_contacts_by_email(email),
                hint,
            )
            .await;
        }
        None => rec.skip(
            "SearchContacts",
            "no Norce order with an e-mail was found to look up (Norce not configured, or no recent order)",
        ),
    }
    let path = integration::ListWebhooksPath { account: account() };
    let webhooks = async { client.list_webhooks(&path).await.or_empty() };
    rec.call("ListWebhooks", webhooks, hint).await;
    let path = warehouse::ListWarehousesPath { account: account() };
    let warehouses = async { client.list_warehouses(&path).await.or_empty() };
    rec.call("ListWarehouses", warehouses, hint).await;
    let path = warehouse::ListShippingMethodsPath { account: account() };
    let methods = async { client.list_shipping_methods(&path).await.or_empty() };
    rec.call("ListShippingMethods", methods, hint).await;
    let path = order::ListOrderStatusesPath { account: account() };
    let statuses = async { client.list_order_statuses(&path).await.or_empty() };
    rec.call("ListOrderStatuses", statuses, hint).await;
    Ok(())
}

/// Adds `text` and a newline to `out`, escaped: paths, examples and messages come from the
/// platforms' answers.
fn line(out: &mut String, text: String) {
    out.push_str(&crate::text::escape(&text));
    out.push('\n');
}

/// The report as a table and, below it, each difference with its path and example.
pub fn render(report: &DeepReport) -> String {
    let rows: Vec<Vec<String>> = report
        .operations
        .iter()
        .map(|o| {
            // A decode failure first: the client's error then only repeats it.
            let result = if !o.decode_errors.is_empty() {
                "FAILED: does not decode (see below)".to_owned()
            } else if !o.errors.is_empty() {
                format!("FAILED: {}", o.errors[0])
            } else if o.has_differences() {
                "ok, differs from the spec".to_owned()
            } else {
                "ok".to_owned()
            };
            let answers = o.decoded as usize + o.decode_errors.len();
            let result = if answers == 0 && result == "ok" {
                "ok (no JSON answer: empty)".to_owned()
            } else {
                result
            };
            vec![
                o.platform.name().to_owned(),
                o.operation.to_owned(),
                o.calls.to_string(),
                if answers == 0 {
                    "-".to_owned()
                } else {
                    format!("{}/{answers}", o.decoded)
                },
                o.unknown.len().to_string(),
                o.missing.len().to_string(),
                o.mismatched.len().to_string(),
                result,
            ]
        })
        .collect();
    let mut out = crate::table::render(
        &[
            "platform",
            "operation",
            "calls",
            "decode ok",
            "unknown fields",
            "missing fields",
            "type mismatches",
            "result",
        ],
        &rows,
    );
    let differing: Vec<&OperationCheck> = report
        .operations
        .iter()
        .filter(|o| o.has_differences() || !o.decode_errors.is_empty())
        .collect();
    if !differing.is_empty() {
        out.push_str("\nDifferences from the spec (update the named schema, or tell us with the saved answers):\n");
        for o in differing {
            line(
                &mut out,
                format!(
                    "  {} {} ({}, answer schema {}):",
                    o.platform.name(),
                    o.operation,
                    o.spec,
                    if o.schema.is_empty() { "?" } else { &o.schema }
                ),
            );
            for problem in &o.decode_errors {
                line(
                    &mut out,
                    format!("    does not decode  {}  {}", problem.path, problem.message),
                );
            }
            for field in &o.unknown {
                line(
                    &mut out,
                    format!(
                        "    unknown field    {}  (schema {})  example: {}",
                        field.path, field.schema, field.example
                    ),
                );
            }
            for field in &o.missing {
                line(
                    &mut out,
                    format!(
                        "    missing field    {}  (schema {})",
                        field.path, field.schema
                    ),
                );
            }
            for m in &o.mismatched {
                line(
                    &mut out,
                    format!(
                        "    type mismatch    {}  (schema {})  expected {}, found {}",
                        m.path, m.schema, m.expected, m.found
                    ),
                );
            }
        }
    }
    if !report.not_called.is_empty() {
        out.push_str("\nNot called:\n");
        for n in &report.not_called {
            line(
                &mut out,
                format!("  {} {}: {}", n.platform.name(), n.operation, n.reason),
            );
        }
    }
    for e in &report.platform_errors {
        out.push('\n');
        line(
            &mut out,
            format!("{}: FAILED: {}", e.platform.name(), e.advice),
        );
    }
    if let Some(dir) = &report.saved_to {
        out.push_str(&format!(
            "\nAnswers saved (masked) in {dir}: one file per operation.\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_matched_to_their_spec_operation() {
        let cases = [
            (
                Platform::Brightpearl,
                "GET",
                "/public-api/acme/product-service/product-search",
                "SearchProducts",
            ),
            (
                Platform::Brightpearl,
                "GET",
                "/public-api/acme/product-service/product-price/1-5/price-list/2",
                "GetProductPricesForPriceLists",
            ),
            (
                Platform::Brightpearl,
                "GET",
                "/public-api/acme/product-service/product-price/1-5",
                "GetProductPrices",
            ),
            (
                Platform::Nshift,
                "GET",
                "/rs-extapi/v1/stored-shipments",
                "SearchStoredShipments",
            ),
            (
                Platform::Nshift,
                "GET",
                "/rs-extapi/v1/stored-shipments/17",
                "GetStoredShipment",
            ),
            (
                Platform::Nshift,
                "GET",
                "/rs-extapi/v1/shipments",
                "FetchShipments",
            ),
            (
                Platform::Norce,
                "GET",
                "/commerce/query/3.0/Orders/Orders",
                "QueryOrders",
            ),
        ];
        for (platform, method, path, expected) in cases {
            assert_eq!(
                operation_of(platform, method, path).map(|(_, op)| op.id),
                Some(expected),
                "{method} {path}"
            );
        }
        assert!(operation_of(Platform::Nshift, "GET", "/nothing/here").is_none());
        assert!(operation_of(Platform::Nshift, "PATCH", "/rs-extapi/v1/shipments").is_none());
    }

    #[test]
    fn received_text_in_the_report_cannot_drive_the_terminal() {
        let report = DeepReport {
            operations: vec![OperationCheck {
                platform: Platform::Norce,
                operation: "GetOrder",
                endpoint: String::new(),
                spec: "specs/norce/services.yaml",
                schema: "Order".into(),
                calls: 1,
                decoded: 1,
                unknown: vec![UnknownField {
                    path: "evil\u{1b}]0;title\u{7}".into(),
                    schema: "Order".into(),
                    example: serde_json::json!("x"),
                }],
                missing: Vec::new(),
                mismatched: Vec::new(),
                decode_errors: Vec::new(),
                errors: Vec::new(),
            }],
            not_called: Vec::new(),
            platform_errors: Vec::new(),
            saved_to: None,
        };
        let shown = render(&report);
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\u{7}'),
            "{shown:?}"
        );
        assert!(shown.contains("evil\\u{1b}]0;title\\u{7}"), "{shown}");
    }

    #[test]
    fn paths_are_split_into_keys_and_indices() {
        let key = |k: &str| Some(k.to_owned());
        assert_eq!(
            path_segments("response[].climateZone"),
            vec![key("response"), None, key("climateZone")]
        );
        assert_eq!(path_segments("[0].id"), vec![None, key("id")]);
        assert_eq!(
            path_segments(r#"a["x.y"]["b]c"].d[12]"#),
            vec![key("a"), key("x.y"), key("b]c"), key("d"), None]
        );
    }

    #[test]
    fn differences_name_the_schema_that_holds_the_field() {
        let schema =
            |platform, type_name: &str, path: &str| schema_at(platform, &Root::of(type_name), path);
        let warehouses = "brightpearl_models::generated::warehouse::NamedItemListResponse";
        assert_eq!(
            schema(Platform::Brightpearl, warehouses, "response[].extra"),
            "NamedItem"
        );
        assert_eq!(
            schema(Platform::Brightpearl, warehouses, "extra"),
            "NamedItemListResponse"
        );
        // Through an array at the top.
        let agents = "alloc::vec::Vec<nshift_models::generated::delivery::Agent>";
        assert_eq!(schema(Platform::Nshift, agents, "[0].id"), "Agent");
        // Through maps keyed by product id, then by warehouse id.
        let availability = "brightpearl_models::generated::warehouse::ProductAvailabilityResponse";
        assert_eq!(
            schema(
                Platform::Brightpearl,
                availability,
                "response.1001.warehouses.3.extra"
            ),
            "StockLevels"
        );
        assert_eq!(
            schema(Platform::Brightpearl, availability, "response.1001.extra"),
            "ProductAvailability"
        );
        // A path through a field the spec lacks stops at the deepest known schema.
        assert_eq!(
            schema(Platform::Brightpearl, warehouses, "response[].nope.deeper"),
            "NamedItem"
        );
    }

    #[test]
    fn request_targets_mask_personal_and_secret_parameters() {
        let uri: http::Uri =
            "https://x/contact-search?primaryEmail=jane%40example.com&pageSize=5&secret=s3&zip=11122"
                .parse()
                .unwrap();
        let shown = masked_request_target(&uri);
        assert!(shown.starts_with("/contact-search?"), "{shown}");
        assert!(shown.contains("pageSize=5"), "{shown}");
        for leak in ["jane", "example.com", "s3&", "11122"] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
    }

    #[test]
    fn search_rows_are_masked_by_column_name() {
        let raw = serde_json::json!({"response": {
            "metaData": {"columns": [{"name": "contactId"}, {"name": "primaryEmail"}, {"name": "firstName"}]},
            "results": [[7, "jane@example.com", "Jane"]]
        }});
        let masked = mask_answer(&raw);
        assert_eq!(
            masked.pointer("/response/results/0"),
            Some(&serde_json::json!([
                7,
                "<masked: 16 chars>",
                "<masked: 4 chars>"
            ]))
        );
    }
}
