//! Provenance of the specs: where each operation and schema comes from (`x-source`), what could
//! not be confirmed (`x-assumed`), and what the notes leave open (`x-open-question`).
//!
//! The values are always validated (wherever they appear in a file); whether every operation
//! and every `components.schemas` entry must name a source is a switch, [`REQUIRE_SOURCES`],
//! because the specs are still being annotated.

use std::fmt;
use std::path::Path;

use serde_norway::{Mapping, Value};

use super::load::{CodegenError, load_all};
use super::model::{Diag, METHODS, SpecFile};

/// Whether `cargo xtask codegen` refuses an operation or a `components.schemas` entry that has
/// no `x-source` (rule 1 in `specs/README.md`).
///
/// On: every spec names its sources. Only the default is chosen here: the validation itself
/// takes the requirement as a parameter ([`validate`], [`super::Options::require_sources`]), so
/// the tests exercise it both ways.
pub const REQUIRE_SOURCES: bool = true;

/// The forms an `x-source` string may take, for the messages.
const ACCEPTED_FORMS: &str = "`https://…` (a published page), `github:Owner/Repo/path` (a file in a public repository) or `shared reference: <file>` (our notes)";

/// Provenance counts of one file or platform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Operations (method objects under `paths`).
    pub operations: usize,
    /// Operations carrying `x-source`.
    pub operations_sourced: usize,
    /// Schemas directly under `components.schemas`.
    pub schemas: usize,
    /// Those schemas carrying `x-source`.
    pub schemas_sourced: usize,
    /// Every `x-assumed`, wherever it appears.
    pub assumed: usize,
    /// Every `x-open-question`, wherever it appears.
    pub open_questions: usize,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.operations += other.operations;
        self.operations_sourced += other.operations_sourced;
        self.schemas += other.schemas;
        self.schemas_sourced += other.schemas_sourced;
        self.assumed += other.assumed;
        self.open_questions += other.open_questions;
    }
}

/// An operation or `components.schemas` entry without `x-source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsourced {
    /// Spec file relative to the workspace root.
    pub file: String,
    /// `operation `Id` (GET /path)` or `schema `Name``.
    pub location: String,
    /// An operation (otherwise a schema).
    pub operation: bool,
}

impl Unsourced {
    /// The refusal when sources are required.
    pub fn diag(&self) -> Diag {
        let what = if self.operation {
            "operation"
        } else {
            "schema"
        };
        Diag {
            file: self.file.clone(),
            location: self.location.clone(),
            message: format!(
                "missing `x-source`: name the published source of this {what} (a docs URL, `github:Owner/Repo/path`, or `shared reference: <file>`), and mark what it does not confirm with `x-assumed` beside it"
            ),
        }
    }
}

impl fmt::Display for Unsourced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.location)
    }
}

/// What one walk over a spec file found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// What the file holds and how much of it is sourced.
    pub counts: Counts,
    /// Operations and schemas without `x-source`, in file order.
    pub unsourced: Vec<Unsourced>,
    /// Malformed `x-source` / `x-assumed` values (always refused).
    pub diags: Vec<Diag>,
}

/// Provenance of one platform's specs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformProvenance {
    /// `norce`, `nshift`, `brightpearl`.
    pub platform: String,
    /// The counts summed over the platform's spec files.
    pub counts: Counts,
    /// Operations and schemas without `x-source`.
    pub unsourced: Vec<Unsourced>,
}

impl PlatformProvenance {
    /// Counts of the platform's files (value problems are not reported here; see [`validate`]).
    pub fn of(platform: &str, files: &[SpecFile]) -> Self {
        let mut counts = Counts::default();
        let mut unsourced = Vec::new();
        for file in files {
            let scan = scan_file(file);
            counts.add(&scan.counts);
            unsourced.extend(scan.unsourced);
        }
        Self {
            platform: platform.to_owned(),
            counts,
            unsourced,
        }
    }
}

/// The summary line printed by `cargo xtask codegen [--check]`:
/// `provenance norce: 15/15 operations sourced, 88/88 schemas sourced, 7 fields assumed (x-assumed), 3 open questions`.
impl fmt::Display for PlatformProvenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        write!(
            f,
            "provenance {}: {}/{} operations sourced, {}/{} schemas sourced, {} fields assumed (x-assumed), {} open questions",
            self.platform,
            c.operations_sourced,
            c.operations,
            c.schemas_sourced,
            c.schemas,
            c.assumed,
            c.open_questions
        )
    }
}

/// The Markdown table printed by `cargo xtask provenance`.
pub fn markdown_table(platforms: &[PlatformProvenance]) -> String {
    let mut out = String::from(
        "| platform | operations sourced | schemas sourced | assumed | open questions |\n| --- | --- | --- | --- | --- |\n",
    );
    for p in platforms {
        let c = &p.counts;
        out.push_str(&format!(
            "| {} | {}/{} | {}/{} | {} | {} |\n",
            p.platform,
            c.operations_sourced,
            c.operations,
            c.schemas_sourced,
            c.schemas,
            c.assumed,
            c.open_questions
        ));
    }
    out
}

/// Provenance problems of one platform's files: malformed values always, and with
/// `require_sources` every operation and `components.schemas` entry without `x-source` or
/// `x-assumed`.
pub fn validate(files: &[SpecFile], require_sources: bool) -> Vec<Diag> {
    let mut diags = Vec::new();
    for file in files {
        let scan = scan_file(file);
        diags.extend(scan.diags);
        if require_sources {
            diags.extend(scan.unsourced.iter().map(Unsourced::diag));
        }
    }
    diags
}

/// Provenance of every platform with specs under `root/specs/`. Refuses (like codegen) when a
/// file does not parse or holds a malformed `x-source` / `x-assumed`; missing sources are
/// counted, never refused.
pub fn summarize(root: &Path) -> Result<Vec<PlatformProvenance>, CodegenError> {
    let mut out = Vec::new();
    let (platforms, mut diags) = load_all(root)?;
    for (platform, files) in platforms {
        if files.is_empty() {
            continue;
        }
        diags.extend(validate(&files, false));
        out.push(PlatformProvenance::of(platform, &files));
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(CodegenError::Invalid(diags))
    }
}

/// Walks one file: counts, unsourced operations and schemas, malformed values.
pub fn scan_file(file: &SpecFile) -> Scan {
    let mut walker = Walker {
        file,
        scan: Scan::default(),
    };
    walker.document();
    walker.scan
}

fn get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    v.as_mapping().and_then(|m| m.get(key))
}

/// A value for a message: one line, at most 80 characters.
fn render(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => serde_norway::to_string(other).unwrap_or_default(),
    };
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 80 {
        format!("{}…", line.chars().take(79).collect::<String>())
    } else {
        line
    }
}

/// Why an `x-source` string is not an accepted form, if it is not.
fn source_form_problem(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return Some(format!(
            "`x-source` is empty: name the published source: {ACCEPTED_FORMS}"
        ));
    }
    let ok = if let Some(rest) = text.strip_prefix("https://") {
        rest.split_whitespace()
            .next()
            .is_some_and(|url| !url.starts_with('/'))
    } else if let Some(rest) = text.strip_prefix("github:") {
        // github:Owner/Repo/path (a note may follow after a space).
        let target = rest.split_whitespace().next().unwrap_or("");
        let segments: Vec<&str> = target.split('/').collect();
        rest == rest.trim_start() && segments.len() >= 3 && segments.iter().all(|s| !s.is_empty())
    } else if let Some(rest) = text.strip_prefix("shared reference") {
        !rest
            .trim_start_matches(|c: char| c == ':' || c.is_whitespace())
            .is_empty()
    } else {
        false
    };
    (!ok).then(|| {
        format!(
            "`x-source: {}` is not an accepted source: use {ACCEPTED_FORMS}",
            render(&Value::String(text.to_owned()))
        )
    })
}

struct Walker<'f> {
    file: &'f SpecFile,
    scan: Scan,
}

impl Walker<'_> {
    fn diag(&mut self, location: &str, message: String) {
        self.scan.diags.push(Diag {
            file: self.file.rel_path.clone(),
            location: location.to_owned(),
            message,
        });
    }

    fn document(&mut self) {
        let Some(root) = self.file.doc.as_mapping() else {
            return;
        };
        self.annotations(root, "document");
        for (key, value) in root {
            let Some(key) = key.as_str() else { continue };
            match key {
                "paths" => self.paths(value),
                "components" => self.components(value),
                _ if key.starts_with("x-") => {}
                _ => self.node(value, key),
            }
        }
    }

    fn paths(&mut self, paths: &Value) {
        let Some(paths) = paths.as_mapping() else {
            return;
        };
        for (path, item) in paths {
            let Some(path) = path.as_str() else { continue };
            let Some(item_map) = item.as_mapping() else {
                continue;
            };
            let path_location = format!("path `{path}`");
            self.annotations(item_map, &path_location);
            for (key, child) in item_map {
                let Some(key) = key.as_str() else { continue };
                if METHODS.contains(&key) {
                    let method = key.to_ascii_uppercase();
                    let location = match get(child, "operationId").and_then(Value::as_str) {
                        Some(id) => format!("operation `{id}` ({method} {path})"),
                        None => format!("operation {method} {path}"),
                    };
                    self.entry(child, &location, true);
                } else {
                    self.child(key, child, &path_location);
                }
            }
        }
    }

    fn components(&mut self, components: &Value) {
        let Some(components) = components.as_mapping() else {
            return;
        };
        for (kind, entries) in components {
            let Some(kind) = kind.as_str() else { continue };
            let Some(entries) = entries.as_mapping() else {
                continue;
            };
            for (name, entry) in entries {
                let Some(name) = name.as_str() else { continue };
                match kind {
                    "schemas" => self.entry(entry, &format!("schema `{name}`"), false),
                    "parameters" => self.node(entry, &format!("parameter `{name}`")),
                    "requestBodies" => self.node(entry, &format!("request body `{name}`")),
                    "responses" => self.node(entry, &format!("response `{name}`")),
                    other => self.node(entry, &format!("components.{other} `{name}`")),
                }
            }
        }
    }

    /// An operation or a `components.schemas` entry: counted, and listed when unsourced.
    fn entry(&mut self, value: &Value, location: &str, operation: bool) {
        let sourced = get(value, "x-source").is_some();
        let counts = &mut self.scan.counts;
        if operation {
            counts.operations += 1;
            counts.operations_sourced += usize::from(sourced);
        } else {
            counts.schemas += 1;
            counts.schemas_sourced += usize::from(sourced);
        }
        // `x-assumed` says what a source does not confirm; it never replaces the source.
        if !sourced {
            self.scan.unsourced.push(Unsourced {
                file: self.file.rel_path.clone(),
                location: location.to_owned(),
                operation,
            });
        }
        self.node(value, location);
    }

    /// Checks the annotations of one object and walks its children.
    fn node(&mut self, value: &Value, location: &str) {
        match value {
            Value::Mapping(map) => {
                self.annotations(map, location);
                for (key, child) in map {
                    if let Some(key) = key.as_str() {
                        self.child(key, child, location);
                    }
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.node(item, &format!("{location}[{i}]"));
                }
            }
            _ => {}
        }
    }

    /// One member of an object, with a location in the terms of the rules.
    fn child(&mut self, key: &str, child: &Value, location: &str) {
        match key {
            // Annotations are checked on their owner; these hold data, not schemas.
            _ if key.starts_with("x-") => {}
            "example" | "examples" | "enum" | "required" | "default" => {}
            "properties" => {
                for (name, property) in child.as_mapping().into_iter().flatten() {
                    let name = name
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| render(name));
                    self.node(property, &format!("{location} property `{name}`"));
                }
            }
            "parameters" => {
                for (i, param) in child.as_sequence().into_iter().flatten().enumerate() {
                    let name = get(param, "name")
                        .or_else(|| get(param, "$ref"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| i.to_string());
                    self.node(param, &format!("{location} parameter `{name}`"));
                }
            }
            "responses" => {
                for (status, response) in child.as_mapping().into_iter().flatten() {
                    self.node(response, &format!("{location} response {}", render(status)));
                }
            }
            "content" => {
                for (_media, media_value) in child.as_mapping().into_iter().flatten() {
                    self.node(media_value, location);
                }
            }
            "schema" => self.node(child, location),
            "requestBody" => self.node(child, &format!("{location} request body")),
            "items" | "additionalProperties" | "not" => {
                self.node(child, &format!("{location} {key}"))
            }
            "allOf" | "oneOf" | "anyOf" => {
                for (i, part) in child.as_sequence().into_iter().flatten().enumerate() {
                    self.node(part, &format!("{location} {key}[{i}]"));
                }
            }
            other => self.node(child, &format!("{location} `{other}`")),
        }
    }

    /// Counts and checks `x-source`, `x-assumed` and `x-open-question` of one object.
    fn annotations(&mut self, map: &Mapping, location: &str) {
        if let Some(source) = map.get("x-source") {
            self.source(source, location);
        }
        if let Some(assumed) = map.get("x-assumed") {
            self.scan.counts.assumed += 1;
            match assumed {
                Value::String(reason) if !reason.trim().is_empty() => {}
                Value::String(_) => self.diag(location, "`x-assumed` is empty: say what could not be confirmed and why".to_owned()),
                other => self.diag(
                    location,
                    format!("`x-assumed: {}` must be a non-empty string saying what could not be confirmed and why", render(other)),
                ),
            }
        }
        if map.contains_key("x-open-question") {
            self.scan.counts.open_questions += 1;
        }
    }

    fn source(&mut self, source: &Value, location: &str) {
        match source {
            Value::String(text) => {
                if let Some(message) = source_form_problem(text) {
                    self.diag(location, message);
                }
            }
            Value::Sequence(items) if items.is_empty() => {
                self.diag(
                    location,
                    format!(
                        "`x-source` is an empty list: name at least one source: {ACCEPTED_FORMS}"
                    ),
                );
            }
            Value::Sequence(items) => {
                for item in items {
                    let message = match item {
                        Value::String(text) => source_form_problem(text),
                        other => Some(format!(
                            "`x-source` list entry `{}` is not a string: use {ACCEPTED_FORMS}",
                            render(other)
                        )),
                    };
                    if let Some(message) = message {
                        self.diag(location, message);
                    }
                }
            }
            other => self.diag(
                location,
                format!(
                    "`x-source: {}` must be a string or a list of strings: use {ACCEPTED_FORMS}",
                    render(other)
                ),
            ),
        }
    }
}
