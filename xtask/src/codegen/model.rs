//! Reads one platform's spec files into a small intermediate form, validating as it goes.
//!
//! Everything the emitter cannot translate faithfully is reported as a [`Diag`] naming the file
//! and the operation or schema, instead of being guessed at.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_norway::{Mapping, Value};

use super::naming::{api_trait, pascal, snake};

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    /// Spec file relative to the workspace root.
    pub file: String,
    /// Operation or schema the problem is in.
    pub location: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.location, self.message)
    }
}

/// A loaded spec file.
pub struct SpecFile {
    /// `norce`, `nshift`, `brightpearl`.
    pub platform: String,
    /// The Rust module name: the file stem (`services`).
    pub module: String,
    /// Path relative to the workspace root (`specs/norce/services.yaml`).
    pub rel_path: String,
    /// The parsed document.
    pub doc: Value,
}

/// A Rust type expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// `String`.
    Str,
    /// `bool`.
    Bool,
    /// `i32` (`type: integer, format: int32`).
    I32,
    /// `i64` (any other `type: integer`).
    I64,
    /// `f64` (`type: number` without a format we translate).
    F64,
    /// `models_runtime::Decimal`: `type: string, format: decimal`, exact.
    Decimal,
    /// `models_runtime::DecimalNumber`: `type: number, format: decimal`, exact (never through `f64`).
    DecimalNumber,
    /// `type: number, format: vat-percent`.
    VatPercent,
    /// `type: number, format: vat-multiplier`.
    VatMultiplier,
    /// `models_runtime::Timestamp`: `format: date-time`, in every form the platforms send.
    Timestamp,
    /// `chrono::NaiveDate`: `format: date`.
    Date,
    /// `serde_json::Value`: arbitrary JSON (`items: {}`, an object without properties).
    Json,
    /// `Vec<u8>`: `format: binary`.
    Bytes,
    /// `()`: an operation that answers without a body.
    Unit,
    /// `Vec<T>`: `type: array`.
    Vec(Box<Ty>),
    /// `BTreeMap<String, T>`: an object with only `additionalProperties`.
    Map(Box<Ty>),
    /// `Option<T>`: `nullable: true`.
    Option(Box<Ty>),
    /// A generated type: in this module (`None`) or a sibling module.
    Named(Option<String>, String),
}

impl Ty {
    fn optional(self) -> Ty {
        match self {
            Ty::Option(_) => self,
            other => Ty::Option(Box::new(other)),
        }
    }
}

/// Documentation gathered from a schema or operation.
#[derive(Debug, Clone, Default)]
pub struct Docs {
    /// `description`, trimmed.
    pub description: Option<String>,
    /// `x-open-question`: what about this is unverified.
    pub open_question: Option<String>,
    /// `example`, as text.
    pub example: Option<String>,
}

/// A struct field or an operation parameter.
#[derive(Debug, Clone)]
pub struct Field {
    /// The Rust name (snake case, deduplicated within its struct).
    pub rust_name: String,
    /// The name on the wire, as the spec writes it.
    pub wire_name: String,
    /// The type, without the `Option` that `required`/`nullable` add.
    pub ty: Ty,
    /// Listed under `required` (always true for path parameters).
    pub required: bool,
    /// `nullable: true`: `null` is a value, so the field is an `Option` even when required.
    pub nullable: bool,
    /// The field holds its own struct, so it needs a `Box`.
    pub boxed: bool,
    /// What the spec says about it.
    pub docs: Docs,
}

/// One value of a string enum.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The Rust variant name (PascalCase, never `Unknown`, deduplicated).
    pub rust_name: String,
    /// The value on the wire.
    pub wire: String,
}

/// How a parameter value travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamCodec {
    /// `schema`: written with `Display`, read with `FromStr`.
    Display,
    /// `content: application/json`: the header value is JSON.
    Json,
}

/// A header parameter: the field and how its value travels.
#[derive(Debug, Clone)]
pub struct Param {
    /// The parameter as a field of the headers struct.
    pub field: Field,
    /// How the value is written and read.
    pub codec: ParamCodec,
}

/// One generated type.
#[derive(Debug, Clone)]
pub enum Item {
    /// An object schema: a struct with serde derives.
    Struct {
        /// The Rust type name.
        name: String,
        /// What the spec says about it.
        docs: Docs,
        /// The properties, `allOf` parts merged.
        fields: Vec<Field>,
    },
    /// A string enum: an open enum with an `Unknown(String)` variant.
    Enum {
        /// The Rust type name.
        name: String,
        /// What the spec says about it.
        docs: Docs,
        /// The listed values, in spec order.
        variants: Vec<Variant>,
        /// `x-case-insensitive`: known values match in any case.
        case_insensitive: bool,
    },
    /// A `oneOf` of `$ref`s: an untagged enum, one variant per member.
    Untagged {
        /// The Rust type name.
        name: String,
        /// What the spec says about it.
        docs: Docs,
        /// (variant name, type) per `oneOf` member, in spec order.
        variants: Vec<(String, Ty)>,
    },
    /// Anything else (arrays, maps, primitives, bodies naming another type): a type alias.
    Alias {
        /// The Rust type name.
        name: String,
        /// What the spec says about it.
        docs: Docs,
        /// The aliased type.
        ty: Ty,
    },
    /// The path parameters of an operation, with `to_path`.
    PathParams {
        /// The Rust type name.
        name: String,
        /// The operation id (PascalCase) the parameters belong to.
        op: String,
        /// The path as the spec writes it, `{name}` placeholders included.
        template: String,
        /// One field per `in: path` parameter.
        fields: Vec<Field>,
    },
    /// The query parameters of an operation.
    QueryParams {
        /// The Rust type name.
        name: String,
        /// The operation id (PascalCase) the parameters belong to.
        op: String,
        /// One field per `in: query` parameter.
        fields: Vec<Field>,
    },
    /// The header parameters of an operation, with `to_pairs` and `from_lookup`.
    HeaderParams {
        /// The Rust type name.
        name: String,
        /// The operation id (PascalCase) the parameters belong to.
        op: String,
        /// One per `in: header` parameter, in spec order.
        params: Vec<Param>,
    },
}

impl Item {
    /// The Rust type name of the item.
    pub fn name(&self) -> &str {
        match self {
            Item::Struct { name, .. }
            | Item::Enum { name, .. }
            | Item::Untagged { name, .. }
            | Item::Alias { name, .. }
            | Item::PathParams { name, .. }
            | Item::QueryParams { name, .. }
            | Item::HeaderParams { name, .. } => name,
        }
    }
}

/// One operation under `paths`.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The `operationId` in PascalCase.
    pub id: String,
    /// The HTTP method in upper case.
    pub method: String,
    /// The path template as the spec writes it.
    pub path: String,
    /// `description` (or the summary when there is none), `x-open-question`, `example`.
    pub docs: Docs,
    /// `summary` (required by validation).
    pub summary: Option<String>,
    /// The 2xx status of the success response.
    pub success_status: u16,
    /// The request body's media type, if it has a body.
    pub request_media_type: Option<String>,
    /// The success response's media type, if it has a body.
    pub response_media_type: Option<String>,
}

/// Everything generated for one spec file.
pub struct Module {
    /// The Rust module name (the spec file's stem).
    pub module: String,
    /// The spec file relative to the workspace root.
    pub rel_path: String,
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// `info.description`, trimmed.
    pub description: Option<String>,
    /// The generated types, each before the inline types of its fields.
    pub items: Vec<Item>,
    /// What typify generates: see [`TypifyInput`].
    pub typify: TypifyInput,
    /// The operations, in spec order.
    pub operations: Vec<Operation>,
}

/// The operation keys of a path item.
pub const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping().and_then(|m| m.get(key))
}

fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    get(v, key).and_then(Value::as_str)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn docs_of(v: &Value) -> Docs {
    Docs {
        description: get_str(v, "description").map(|s| s.trim().to_owned()),
        open_question: get(v, "x-open-question").and_then(scalar_text),
        example: get(v, "example").and_then(scalar_text),
    }
}

/// The schemas of one module as typify receives them: every struct and `oneOf` this module
/// defines, under the name we give it, as an OpenAPI schema in which every part that is a
/// named type of its own (inline ones included) is a local `$ref`; and the names typify must
/// not generate but use as they are (our open enums and aliases, and the types of sibling
/// modules), each with its Rust path.
#[derive(Debug, Clone, Default)]
pub struct TypifyInput {
    /// `components.schemas` for typify, by type name.
    pub schemas: Mapping,
    /// Type name → Rust path of the type used instead (typify's replacements).
    pub replacements: BTreeMap<String, String>,
}

/// A property the spec does not require is read alike whether it is absent or `null` (the
/// platforms write `null` for values they do not have, .NET's serializer for empty lists too),
/// so typify receives it `nullable`: an `Option`, never a `Vec` that refuses `null`.
fn nullable(schema: Value) -> Value {
    match schema {
        Value::Mapping(mut map) if !map.contains_key("$ref") => {
            map.insert("nullable".into(), true.into());
            Value::Mapping(map)
        }
        reference => mapping([
            ("allOf", Value::Sequence(vec![reference])),
            ("nullable", true.into()),
        ]),
    }
}

/// A YAML mapping of `pairs`, in their order.
pub fn mapping<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// `{$ref: '#/components/schemas/<name>'}`.
fn reference_to(name: &str) -> Value {
    mapping([("$ref", format!("#/components/schemas/{name}").into())])
}

/// Builds the module of one spec file.
pub struct Builder<'a> {
    files: &'a [SpecFile],
    file: &'a SpecFile,
    items: Vec<Item>,
    names: BTreeMap<String, String>,
    /// Inline schemas that became named types, by address, so typify's input can name them.
    inline: BTreeMap<usize, String>,
    typify: TypifyInput,
    /// The problems found so far.
    pub diags: Vec<Diag>,
}

impl<'a> Builder<'a> {
    /// A builder for `file`; `files` are the platform's spec files, for cross-file `$ref`s.
    pub fn new(files: &'a [SpecFile], file: &'a SpecFile) -> Self {
        Self {
            files,
            file,
            items: Vec::new(),
            names: BTreeMap::new(),
            inline: BTreeMap::new(),
            typify: TypifyInput::default(),
            diags: Vec::new(),
        }
    }

    fn diag(&mut self, location: &str, message: impl Into<String>) {
        self.diags.push(Diag {
            file: self.file.rel_path.clone(),
            location: location.to_owned(),
            message: message.into(),
        });
    }

    /// Reserves a type name; a second use is an error naming both places.
    fn claim(&mut self, name: &str, location: &str) -> bool {
        if let Some(first) = self.names.get(name) {
            let first = first.clone();
            self.diag(
                location,
                format!("type name `{name}` is already used by {first}: rename one of them"),
            );
            return false;
        }
        self.names.insert(name.to_owned(), location.to_owned());
        true
    }

    /// Resolves a `$ref` to (module if in another file, type name, schema).
    fn resolve(
        &mut self,
        reference: &str,
        location: &str,
    ) -> Option<(Option<String>, String, &'a Value)> {
        let (file_part, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let Some(name) = pointer.strip_prefix("/components/schemas/") else {
            self.diag(
                location,
                format!("`$ref: {reference}` must point at `#/components/schemas/<Name>`"),
            );
            return None;
        };
        let files = self.files;
        let target = if file_part.is_empty() {
            Some(self.file)
        } else {
            let stem = file_part
                .trim_start_matches("./")
                .trim_end_matches(".yaml")
                .trim_end_matches(".yml");
            files.iter().find(|f| f.module == stem)
        };
        let Some(target) = target else {
            self.diag(
                location,
                format!("`$ref: {reference}`: no spec file `{file_part}` for this platform"),
            );
            return None;
        };
        let schema = get(&target.doc, "components")
            .and_then(|c| get(c, "schemas"))
            .and_then(|s| get(s, name));
        let Some(schema) = schema else {
            self.diag(
                location,
                format!(
                    "`$ref: {reference}`: no schema `{name}` in {}",
                    target.rel_path
                ),
            );
            return None;
        };
        let module = (target.module != self.file.module).then(|| target.module.clone());
        Some((module, pascal(name), schema))
    }

    /// The Rust type of a schema; inline objects and enums become named types from `hint`.
    fn ty(&mut self, schema: &'a Value, hint: &str, location: &str) -> Ty {
        let ty = self.ty_inner(schema, hint, location);
        if get(schema, "nullable").and_then(Value::as_bool) == Some(true) {
            ty.optional()
        } else {
            ty
        }
    }

    fn ty_inner(&mut self, schema: &'a Value, hint: &str, location: &str) -> Ty {
        if let Some(reference) = get_str(schema, "$ref") {
            return match self.resolve(reference, location) {
                Some((module, name, _)) => Ty::Named(module, name),
                None => Ty::Json,
            };
        }
        for refused in ["anyOf", "not"] {
            if get(schema, refused).is_some() {
                self.diag(
                    location,
                    format!("`{refused}` is not supported: use `oneOf` of `$ref`s or `allOf`"),
                );
                return Ty::Json;
            }
        }
        if get(schema, "allOf").is_some() || get(schema, "oneOf").is_some() {
            self.define(hint, schema, location, false);
            return Ty::Named(None, hint.to_owned());
        }
        let format = get_str(schema, "format").unwrap_or("");
        match get_str(schema, "type") {
            Some("string") => {
                if get(schema, "enum").is_some() {
                    self.define(hint, schema, location, false);
                    return Ty::Named(None, hint.to_owned());
                }
                match format {
                    "date-time" => Ty::Timestamp,
                    "date" => Ty::Date,
                    "decimal" => Ty::Decimal,
                    "binary" => Ty::Bytes,
                    _ => Ty::Str,
                }
            }
            Some(numeric @ ("integer" | "number")) => {
                if get(schema, "enum").is_some() {
                    self.diag(location, format!("{numeric} enums are not supported: use `type: {numeric}` and list the values in the description"));
                }
                match (numeric, format) {
                    ("integer", "int32") => Ty::I32,
                    ("integer", _) => Ty::I64,
                    (_, "decimal") => Ty::DecimalNumber,
                    ("number", "vat-percent") => Ty::VatPercent,
                    ("number", "vat-multiplier") => Ty::VatMultiplier,
                    _ => Ty::F64,
                }
            }
            Some("boolean") => Ty::Bool,
            Some("array") => match get(schema, "items") {
                Some(items) => Ty::Vec(Box::new(self.ty(items, &format!("{hint}Item"), location))),
                None => {
                    self.diag(
                        location,
                        "`type: array` needs `items` (use `items: {}` for arbitrary JSON)",
                    );
                    Ty::Json
                }
            },
            Some("object") | None => {
                let has_props = get(schema, "properties")
                    .and_then(Value::as_mapping)
                    .is_some_and(|m| !m.is_empty());
                if has_props {
                    self.define(hint, schema, location, false);
                    return Ty::Named(None, hint.to_owned());
                }
                match get(schema, "additionalProperties") {
                    Some(Value::Mapping(m)) if !m.is_empty() => {
                        let ap = get(schema, "additionalProperties").unwrap_or(&Value::Null);
                        Ty::Map(Box::new(self.ty(ap, &format!("{hint}Value"), location)))
                    }
                    _ => Ty::Json,
                }
            }
            Some(other) => {
                self.diag(location, format!("unknown `type: {other}`"));
                Ty::Json
            }
        }
    }

    /// Collects properties and required names of an object schema, merging `allOf` parts.
    fn object_parts(
        &mut self,
        schema: &'a Value,
        location: &str,
        depth: usize,
    ) -> (Vec<(String, &'a Value)>, BTreeSet<String>) {
        let mut props = Vec::new();
        let mut required = BTreeSet::new();
        if depth > 8 {
            self.diag(location, "`allOf` nests too deeply (a cycle?)");
            return (props, required);
        }
        if let Some(parts) = get(schema, "allOf").and_then(Value::as_sequence) {
            for part in parts {
                let part = match get_str(part, "$ref") {
                    Some(reference) => match self.resolve(reference, location) {
                        Some((_, _, target)) => target,
                        None => continue,
                    },
                    None => part,
                };
                let (p, r) = self.object_parts(part, location, depth + 1);
                for (name, value) in p {
                    if let Some(existing) = props.iter_mut().find(|(n, _)| *n == name) {
                        existing.1 = value;
                    } else {
                        props.push((name, value));
                    }
                }
                required.extend(r);
            }
        }
        if let Some(map) = get(schema, "properties").and_then(Value::as_mapping) {
            for (key, value) in map {
                let Some(key) = key.as_str() else { continue };
                if let Some(existing) = props.iter_mut().find(|(n, _)| n == key) {
                    existing.1 = value;
                } else {
                    props.push((key.to_owned(), value));
                }
            }
        }
        if let Some(list) = get(schema, "required").and_then(Value::as_sequence) {
            required.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        (props, required)
    }

    /// A struct field or parameter. Parameters carry their description on the parameter,
    /// not the schema, so `field_location` says which it is and `described` skips the check.
    fn field(
        &mut self,
        owner: &str,
        wire: &str,
        schema: &'a Value,
        required: bool,
        field_location: &str,
        described: bool,
    ) -> Field {
        let is_pure_ref = get(schema, "$ref").is_some();
        let docs = docs_of(schema);
        if docs.description.is_none() && !is_pure_ref && !described {
            self.diag(
                field_location,
                "every property needs a one-line `description`",
            );
        }
        let ty = self.ty(schema, &format!("{owner}{}", pascal(wire)), field_location);
        let nullable = matches!(ty, Ty::Option(_));
        let ty = match ty {
            Ty::Option(inner) => *inner,
            other => other,
        };
        let boxed = ty == Ty::Named(None, owner.to_owned());
        Field {
            rust_name: snake(wire),
            wire_name: wire.to_owned(),
            ty,
            required,
            nullable,
            boxed,
            docs,
        }
    }

    fn dedupe_fields(fields: &mut [Field]) {
        let mut seen = BTreeSet::new();
        for field in fields.iter_mut() {
            let mut candidate = field.rust_name.clone();
            let mut n = 2;
            while !seen.insert(candidate.clone()) {
                candidate = format!("{}_{n}", field.rust_name.trim_end_matches('_'));
                n += 1;
            }
            field.rust_name = candidate;
        }
    }

    /// Defines a named type from a schema. `component` marks `components.schemas` entries,
    /// which need their own description.
    fn define(&mut self, name: &str, schema: &'a Value, location: &str, component: bool) {
        if !self.claim(name, location) {
            return;
        }
        self.inline
            .insert(std::ptr::from_ref(schema) as usize, name.to_owned());
        let docs = docs_of(schema);
        if component && docs.description.is_none() {
            self.diag(location, "every schema needs a one-line `description`");
        }
        if let Some(options) = get(schema, "oneOf").and_then(Value::as_sequence) {
            let mut variants = Vec::new();
            for option in options {
                match get_str(option, "$ref") {
                    Some(reference) => {
                        if let Some((module, target, _)) = self.resolve(reference, location) {
                            variants.push((target.clone(), Ty::Named(module, target)));
                        }
                    }
                    None => self.diag(location, "`oneOf` members must be `$ref`s to named schemas"),
                }
            }
            let members = options
                .iter()
                .map(|o| self.typify_schema(o, location))
                .collect();
            let mut untagged = Mapping::new();
            untagged.insert("oneOf".into(), Value::Sequence(members));
            if let Some(description) = &docs.description {
                untagged.insert("description".into(), description.clone().into());
            }
            self.typify
                .schemas
                .insert(name.into(), Value::Mapping(untagged));
            self.items.push(Item::Untagged {
                name: name.to_owned(),
                docs,
                variants,
            });
            return;
        }
        let numeric = matches!(get_str(schema, "type"), Some("integer" | "number"));
        if !numeric && let Some(values) = get(schema, "enum").and_then(Value::as_sequence) {
            let mut variants: Vec<Variant> = Vec::new();
            for value in values {
                let Some(wire) = value.as_str() else {
                    self.diag(
                        location,
                        format!("enum value {value:?} is not a string: quote it"),
                    );
                    continue;
                };
                let mut rust_name = pascal(wire);
                if rust_name == "Unknown" {
                    rust_name = "UnknownValue".to_owned();
                }
                let base = rust_name.clone();
                let mut n = 2;
                while variants.iter().any(|v| v.rust_name == rust_name) {
                    rust_name = format!("{base}{n}");
                    n += 1;
                }
                variants.push(Variant {
                    rust_name,
                    wire: wire.to_owned(),
                });
            }
            let case_insensitive =
                get(schema, "x-case-insensitive").and_then(Value::as_bool) == Some(true);
            self.typify
                .replacements
                .insert(name.to_owned(), name.to_owned());
            self.items.push(Item::Enum {
                name: name.to_owned(),
                docs,
                variants,
                case_insensitive,
            });
            return;
        }
        let is_object = get(schema, "properties").is_some() || get(schema, "allOf").is_some();
        if is_object {
            // Reserve the position so the struct comes before the inline types of its fields.
            let index = self.items.len();
            self.items.push(Item::Alias {
                name: name.to_owned(),
                docs: Docs::default(),
                ty: Ty::Unit,
            });
            let (props, required) = self.object_parts(schema, location, 0);
            let mut fields = Vec::new();
            let mut properties = Mapping::new();
            for (wire, prop) in props {
                let field_location = format!("{location} property `{wire}`");
                fields.push(self.field(
                    name,
                    &wire,
                    prop,
                    required.contains(&wire),
                    &field_location,
                    false,
                ));
                let mut typed = self.typify_schema(prop, &field_location);
                if !required.contains(&wire) {
                    typed = nullable(typed);
                }
                properties.insert(wire.as_str().into(), typed);
            }
            Self::dedupe_fields(&mut fields);
            let mut object = Mapping::new();
            object.insert("type".into(), "object".into());
            if let Some(description) = &docs.description {
                object.insert("description".into(), description.clone().into());
            }
            object.insert("properties".into(), Value::Mapping(properties));
            let required: Vec<Value> = fields
                .iter()
                .filter(|f| f.required)
                .map(|f| f.wire_name.clone().into())
                .collect();
            if !required.is_empty() {
                object.insert("required".into(), Value::Sequence(required));
            }

            self.typify
                .schemas
                .insert(name.into(), Value::Mapping(object));
            self.items[index] = Item::Struct {
                name: name.to_owned(),
                docs,
                fields,
            };
            return;
        }
        // Anything else is an alias of the underlying type (arrays, maps, primitives): typify
        // would make it a newtype, so it stays our alias.
        let ty = self.ty(schema, &format!("{name}Item"), location);
        self.typify
            .replacements
            .insert(name.to_owned(), name.to_owned());
        self.items.push(Item::Alias {
            name: name.to_owned(),
            docs,
            ty,
        });
    }

    /// `schema` as typify's input: a `$ref` stays one (to a sibling module's type it becomes a
    /// replacement), a part that became a named type is a `$ref` to it, a special format is
    /// typify's `x-rust-type` naming the models-runtime type, and everything else is copied.
    fn typify_schema(&mut self, schema: &'a Value, location: &str) -> Value {
        if let Some(reference) = get_str(schema, "$ref") {
            let Some((module, name, _)) = self.resolve(reference, location) else {
                return Value::Mapping(Mapping::new());
            };
            if let Some(module) = module {
                self.typify
                    .replacements
                    .insert(name.clone(), format!("super::{module}::{name}"));
            }
            return reference_to(&name);
        }
        if let Some(name) = self.inline.get(&(std::ptr::from_ref(schema) as usize)) {
            let reference = reference_to(name);
            return match get(schema, "nullable").and_then(Value::as_bool) {
                // A nullable inline type: `null` is a value of the field.
                Some(true) => nullable(reference),
                _ => reference,
            };
        }
        let Value::Mapping(mut out) = schema.clone() else {
            return Value::Mapping(Mapping::new());
        };
        let rust_type = match (get_str(schema, "type"), get_str(schema, "format")) {
            (Some("string"), Some("date-time")) => Some("Timestamp"),
            (Some("string"), Some("decimal")) => Some("Decimal"),
            (Some("number"), Some("decimal")) => Some("DecimalNumber"),
            (Some("number"), Some("vat-percent")) => Some("VatPercent"),
            (Some("number"), Some("vat-multiplier")) => Some("VatMultiplier"),
            _ => None,
        };
        // Arbitrary JSON (no type, or an object without properties or typed values) is
        // `serde_json::Value`, as typify would give for a bare `{}` but not for an object.
        let typed_values =
            matches!(get(schema, "additionalProperties"), Some(Value::Mapping(m)) if !m.is_empty());
        let arbitrary = matches!(get_str(schema, "type"), None | Some("object"))
            && get(schema, "properties").is_none()
            && !typed_values
            && ["allOf", "oneOf", "anyOf", "enum", "items"]
                .iter()
                .all(|key| get(schema, key).is_none());
        let rust_type = match rust_type {
            Some(name) => Some(("models-runtime", format!("models_runtime::{name}"))),
            None if arbitrary => Some(("serde_json", "serde_json::Value".to_owned())),
            None => None,
        };
        if let Some((krate, path)) = rust_type {
            out.retain(|key, _| matches!(key.as_str(), Some("description" | "nullable")));
            let extension = mapping([
                ("crate", krate.into()),
                ("version", "*".into()),
                ("path", path.into()),
            ]);
            out.insert("x-rust-type".into(), extension);
            return Value::Mapping(out);
        }
        // Limits stay documentation: typify would turn them into validating newtypes
        // (`NonZeroU64`, length-checked strings), and the models decode leniently on purpose
        // (an answer past a documented limit still decodes; `relay verify --deep` reports it).
        for limit in [
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "minLength",
            "maxLength",
            "pattern",
            "minItems",
            "maxItems",
        ] {
            out.remove(limit);
        }
        // A GUID stays a string for the same reason (typify would make it `uuid::Uuid`).
        if get_str(schema, "format") == Some("uuid") {
            out.remove("format");
        }
        if let Some(items) = get(schema, "items") {
            out.insert("items".into(), self.typify_schema(items, location));
        }
        if let Some(extra @ Value::Mapping(_)) = get(schema, "additionalProperties") {
            out.insert(
                "additionalProperties".into(),
                self.typify_schema(extra, location),
            );
        }
        Value::Mapping(out)
    }

    /// Builds the whole module.
    pub fn build(mut self) -> (Module, Vec<Diag>) {
        let doc = &self.file.doc;
        let version = get_str(doc, "openapi").unwrap_or("");
        if !version.starts_with("3.0.") {
            self.diag(
                "openapi",
                format!("`openapi: {version}`: only OpenAPI 3.0.x is supported"),
            );
        }
        let info = get(doc, "info").cloned().unwrap_or(Value::Null);
        let title = get_str(&info, "title").unwrap_or("").to_owned();
        if title.is_empty() {
            self.diag("info", "`info.title` is required");
        }
        let schemas = get(doc, "components")
            .and_then(|c| get(c, "schemas"))
            .and_then(Value::as_mapping);
        if let Some(schemas) = schemas {
            for (key, schema) in schemas {
                let Some(key) = key.as_str() else { continue };
                let location = format!("schema `{key}`");
                if pascal(key) != key {
                    self.diag(
                        &location,
                        format!("schema names are PascalCase: rename to `{}`", pascal(key)),
                    );
                }
                self.define(&pascal(key), schema, &location, true);
            }
        }
        let mut operations = Vec::new();
        if let Some(paths) = get(doc, "paths").and_then(Value::as_mapping) {
            let mut ids = BTreeSet::new();
            for (path, item) in paths {
                let Some(path) = path.as_str() else { continue };
                for method in METHODS {
                    let Some(op) = get(item, method) else {
                        continue;
                    };
                    if let Some(operation) = self.operation(path, method, item, op, &mut ids) {
                        operations.push(operation);
                    }
                }
            }
        }
        // The extension trait lives in `operations`, beside one unit struct per operation.
        let api = api_trait(&self.file.module);
        if let Some(op) = operations.iter().find(|op| op.id == api) {
            let location = format!("operation `{}` ({} {})", op.id, op.method, op.path);
            self.diag(
                &location,
                format!(
                    "`{api}` is the name of the operations' extension trait: rename the operationId"
                ),
            );
        }
        let module = Module {
            module: self.file.module.clone(),
            rel_path: self.file.rel_path.clone(),
            title,
            version: get_str(&info, "version").unwrap_or("").to_owned(),
            description: get_str(&info, "description").map(|s| s.trim().to_owned()),
            items: std::mem::take(&mut self.items),
            typify: std::mem::take(&mut self.typify),
            operations,
        };
        (module, self.diags)
    }

    fn resolve_param(&mut self, param: &'a Value, location: &str) -> Option<&'a Value> {
        let Some(reference) = get_str(param, "$ref") else {
            return Some(param);
        };
        let name = reference.rsplit('/').next().unwrap_or("");
        let found = get(&self.file.doc, "components")
            .and_then(|c| get(c, "parameters"))
            .and_then(|p| get(p, name));
        if found.is_none() {
            self.diag(
                location,
                format!("`$ref: {reference}`: no parameter `{name}` in components.parameters"),
            );
        }
        found
    }

    fn operation(
        &mut self,
        path: &str,
        method: &str,
        item: &'a Value,
        op: &'a Value,
        ids: &mut BTreeSet<String>,
    ) -> Option<Operation> {
        let method_upper = method.to_ascii_uppercase();
        let Some(raw_id) = get_str(op, "operationId") else {
            self.diag(
                &format!("operation {method_upper} {path}"),
                "missing `operationId`: every operation needs one",
            );
            return None;
        };
        let id = pascal(raw_id);
        let location = format!("operation `{raw_id}` ({method_upper} {path})");
        if !ids.insert(id.clone()) {
            self.diag(&location, "duplicate `operationId`");
            return None;
        }
        let summary = get_str(op, "summary").map(str::to_owned);
        if summary.is_none() {
            self.diag(&location, "every operation needs a `summary`");
        }

        // Parameters: path-level first, operation-level overriding by (name, in).
        let mut params: Vec<&'a Value> = Vec::new();
        for source in [get(item, "parameters"), get(op, "parameters")] {
            for param in source.and_then(Value::as_sequence).into_iter().flatten() {
                let Some(param) = self.resolve_param(param, &location) else {
                    continue;
                };
                let key = (get_str(param, "name"), get_str(param, "in"));
                params.retain(|p| (get_str(p, "name"), get_str(p, "in")) != key);
                params.push(param);
            }
        }
        let mut path_fields = Vec::new();
        let mut query_fields = Vec::new();
        let mut header_params = Vec::new();
        for param in params {
            let name = get_str(param, "name").unwrap_or("");
            let place = get_str(param, "in").unwrap_or("");
            let param_location = format!("{location} parameter `{name}`");
            if name.is_empty() {
                self.diag(&param_location, "parameter without `name`");
                continue;
            }
            if get_str(param, "description").is_none() {
                self.diag(
                    &param_location,
                    "every parameter needs a one-line `description`",
                );
            }
            let (schema, codec) = match (get(param, "schema"), get(param, "content")) {
                (Some(schema), None) => (schema, ParamCodec::Display),
                (None, Some(content)) => {
                    let json = get(content, "application/json").and_then(|c| get(c, "schema"));
                    match json {
                        Some(schema) if place == "header" => (schema, ParamCodec::Json),
                        _ => {
                            self.diag(&param_location, "`content` parameters must be headers with an `application/json` schema");
                            continue;
                        }
                    }
                }
                _ => {
                    self.diag(
                        &param_location,
                        "a parameter needs exactly one of `schema` or `content`",
                    );
                    continue;
                }
            };
            let required =
                place == "path" || get(param, "required").and_then(Value::as_bool) == Some(true);
            let mut field = self.field(
                &format!("{id}{}", pascal(place)),
                name,
                schema,
                required,
                &param_location,
                true,
            );
            let param_docs = docs_of(param);
            field.docs.description = param_docs.description.or(field.docs.description);
            field.docs.open_question = param_docs.open_question.or(field.docs.open_question);
            field.docs.example = param_docs.example.or(field.docs.example);
            if codec == ParamCodec::Display
                && matches!(field.ty, Ty::Vec(_) | Ty::Map(_) | Ty::Json | Ty::Bytes)
            {
                self.diag(&param_location, "only primitive and enum parameters are supported: use a comma-separated string and say so in the description");
                continue;
            }
            match place {
                "path" => {
                    if !path.contains(&format!("{{{name}}}")) {
                        self.diag(
                            &param_location,
                            format!("path parameter is not in the path `{path}`"),
                        );
                    }
                    path_fields.push(field)
                }
                "query" => query_fields.push(field),
                "header" => header_params.push(Param { field, codec }),
                other => self.diag(
                    &param_location,
                    format!("`in: {other}` is not supported (path, query or header)"),
                ),
            }
        }
        for segment in path.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(|c| c == '{' || c == '}');
            if !path_fields.iter().any(|f| f.wire_name == name) {
                self.diag(
                    &location,
                    format!("path placeholder `{{{name}}}` has no `in: path` parameter"),
                );
            }
        }
        if !path_fields.is_empty() {
            Self::dedupe_fields(&mut path_fields);
            let name = format!("{id}Path");
            if self.claim(&name, &location) {
                self.items.push(Item::PathParams {
                    name,
                    op: id.clone(),
                    template: path.to_owned(),
                    fields: path_fields,
                });
            }
        }
        if !query_fields.is_empty() {
            Self::dedupe_fields(&mut query_fields);
            let name = format!("{id}Query");
            if self.claim(&name, &location) {
                self.items.push(Item::QueryParams {
                    name,
                    op: id.clone(),
                    fields: query_fields,
                });
            }
        }
        if !header_params.is_empty() {
            let name = format!("{id}Headers");
            if self.claim(&name, &location) {
                self.items.push(Item::HeaderParams {
                    name,
                    op: id.clone(),
                    params: header_params,
                });
            }
        }

        // Request body.
        let mut request_media_type = None;
        if let Some(body) = get(op, "requestBody") {
            let content = get(body, "content").and_then(Value::as_mapping);
            match content {
                Some(content) if content.len() == 1 => {
                    let (media, media_value) = content
                        .iter()
                        .next()
                        .map(|(k, v)| (k.as_str().unwrap_or(""), v))
                        .unwrap_or(("", &Value::Null));
                    if ![
                        "application/json",
                        "application/x-www-form-urlencoded",
                        "text/plain",
                    ]
                    .contains(&media)
                    {
                        self.diag(
                            &location,
                            format!("request media type `{media}` is not supported"),
                        );
                    }
                    request_media_type = Some(media.to_owned());
                    match get(media_value, "schema") {
                        Some(schema) => self.named_or_alias(
                            &format!("{id}Request"),
                            schema,
                            &location,
                            docs_of(body),
                        ),
                        None => self.diag(&location, "request body without `schema`"),
                    }
                }
                _ => self.diag(
                    &location,
                    "a request body needs exactly one media type under `content`",
                ),
            }
        }

        // Responses: exactly one success schema.
        let mut success: Vec<(u16, Option<(String, &'a Value)>)> = Vec::new();
        let responses: Option<&'a Mapping> = get(op, "responses").and_then(Value::as_mapping);
        for (status, response) in responses.into_iter().flatten() {
            let status_text = scalar_text(status).unwrap_or_default();
            let content = get(response, "content").and_then(Value::as_mapping);
            let first = content
                .and_then(|c| c.iter().next())
                .map(|(k, v)| (k.as_str().unwrap_or("").to_owned(), v));
            if content.is_some_and(|c| c.len() > 1) {
                self.diag(
                    &location,
                    format!("response {status_text} has more than one media type: keep one"),
                );
            }
            if get(response, "description").is_none() {
                self.diag(
                    &location,
                    format!("response {status_text} needs a `description`"),
                );
            }
            if status_text.starts_with('2') {
                let code = status_text.parse().unwrap_or(200);
                let schema = first
                    .as_ref()
                    .and_then(|(media, v)| get(v, "schema").map(|s| (media.clone(), s)));
                success.push((code, schema));
            } else if let Some((_, media_value)) = first {
                let schema = get(media_value, "schema");
                let inline_object = schema
                    .is_some_and(|s| get(s, "$ref").is_none() && get(s, "properties").is_some());
                if inline_object {
                    self.diag(&location, format!("error response {status_text}: reference a component schema instead of an inline object"));
                }
            }
        }
        let with_schema: Vec<_> = success
            .iter()
            .filter_map(|(code, s)| s.as_ref().map(|s| (*code, s)))
            .collect();
        if success.is_empty() {
            self.diag(
                &location,
                "no 2xx response: exactly one success response is required",
            );
        }
        let distinct: BTreeSet<String> = with_schema
            .iter()
            .map(|(_, (_, s))| serde_norway::to_string(s).unwrap_or_default())
            .collect();
        if distinct.len() > 1 {
            self.diag(
                &location,
                "two success responses with different schemas: keep exactly one success schema",
            );
        }
        let success_status = with_schema
            .first()
            .map(|(c, _)| *c)
            .or_else(|| success.first().map(|(c, _)| *c))
            .unwrap_or(200);
        let response_name = format!("{id}Response");
        let mut response_media_type = None;
        match with_schema.first() {
            Some((_, (media, schema))) => {
                response_media_type = Some(media.clone());
                let json = media.contains("json");
                let binary = get_str(schema, "format") == Some("binary");
                if json {
                    self.named_or_alias(&response_name, schema, &location, Docs::default());
                } else if binary || media.starts_with("text/") {
                    let ty = if binary { Ty::Bytes } else { Ty::Str };
                    if self.claim(&response_name, &location) {
                        self.items.push(Item::Alias {
                            name: response_name,
                            docs: Docs::default(),
                            ty,
                        });
                    }
                } else {
                    self.diag(
                        &location,
                        format!(
                            "success media type `{media}` needs `type: string, format: binary`"
                        ),
                    );
                }
            }
            None => {
                if self.claim(&response_name, &location) {
                    self.items.push(Item::Alias {
                        name: response_name,
                        docs: Docs::default(),
                        ty: Ty::Unit,
                    });
                }
            }
        }
        let mut docs = docs_of(op);
        if docs.description.is_none() {
            docs.description = summary.clone();
        }
        Some(Operation {
            id,
            method: method_upper,
            path: path.to_owned(),
            docs,
            summary,
            success_status,
            request_media_type,
            response_media_type,
        })
    }

    /// An inline object becomes the named type itself; anything else an alias to its type.
    fn named_or_alias(&mut self, name: &str, schema: &'a Value, location: &str, docs: Docs) {
        let ty = self.ty(schema, name, location);
        if ty != Ty::Named(None, name.to_owned()) && self.claim(name, location) {
            self.typify
                .replacements
                .insert(name.to_owned(), name.to_owned());
            self.items.push(Item::Alias {
                name: name.to_owned(),
                docs,
                ty,
            });
        }
    }
}
