//! `cargo xtask codegen`: `specs/<platform>/*.yaml` → `crates/<platform>-models/src/generated/`.
//!
//! Our own generator rather than typify: the models need open enums (an `Unknown` variant),
//! exact decimals from strings, timestamps in every form the platforms send, and types for
//! inline operation schemas. typify can express none of these without patching its output, and
//! the validation below keeps the spec subset small enough to translate faithfully.

pub mod emit;
mod load;
pub mod model;
pub mod naming;
pub mod provenance;

use std::fs;
use std::path::Path;

use load::io_error;
pub use load::{CodegenError, Loaded, PLATFORMS, load_all, load_platform};
use model::{Builder, Diag, Item};

/// How strictly to validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Refuse operations and `components.schemas` entries without `x-source`.
    /// Defaults to [`provenance::REQUIRE_SOURCES`].
    pub require_sources: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            require_sources: provenance::REQUIRE_SOURCES,
        }
    }
}

/// One generated file.
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    /// Path relative to the workspace root.
    pub rel_path: String,
    /// Formatted contents.
    pub contents: String,
    /// `kind Name` for every public item, for the type-list snapshots.
    pub public_items: Vec<String>,
}

fn public_items(module: &str, items: &[Item], operations: &[model::Operation]) -> Vec<String> {
    let mut out: Vec<String> = items
        .iter()
        .map(|item| {
            let kind = match item {
                Item::Struct { .. }
                | Item::PathParams { .. }
                | Item::QueryParams { .. }
                | Item::HeaderParams { .. } => "struct",
                Item::Enum { .. } | Item::Untagged { .. } => "enum",
                Item::Alias { .. } => "type",
            };
            format!("{kind} {}", item.name())
        })
        .collect();
    out.extend(operations.iter().map(|op| {
        format!(
            "const operations::{} ({} {})",
            naming::screaming(&op.id),
            op.method,
            op.path
        )
    }));
    out.extend(
        operations
            .iter()
            .map(|op| format!("struct operations::{} (Operation)", op.id)),
    );
    if !operations.is_empty() {
        let api = naming::api_trait(module);
        out.push(format!("trait operations::{api}"));
        out.extend(
            operations
                .iter()
                .map(|op| format!("fn operations::{api}::{}", naming::snake(&op.id))),
        );
    }
    out
}

/// Generates every file of every platform (nothing is written), with the default [`Options`].
pub fn generate(root: &Path) -> Result<Vec<GeneratedFile>, CodegenError> {
    generate_with(root, Options::default())
}

/// Generates every file of every platform (nothing is written).
pub fn generate_with(root: &Path, options: Options) -> Result<Vec<GeneratedFile>, CodegenError> {
    let mut out = Vec::new();
    let (platforms, mut diags) = load_all(root)?;
    for (platform, files) in platforms {
        let dir = format!("crates/{platform}-models/src/generated");
        let mut modules = Vec::new();
        for file in &files {
            let (module, mut d) = Builder::new(&files, file).build();
            diags.append(&mut d);
            let public = public_items(&module.module, &module.items, &module.operations);
            match emit::emit_module(&module) {
                Ok(contents) => out.push(GeneratedFile {
                    rel_path: format!("{dir}/{}.rs", module.module),
                    contents,
                    public_items: public,
                }),
                Err(message) => diags.push(Diag {
                    file: file.rel_path.clone(),
                    location: "output".to_owned(),
                    message,
                }),
            }
            modules.push((module.module.clone(), file.rel_path.clone()));
        }
        diags.extend(provenance::validate(&files, options.require_sources));
        let contents = emit::emit_mod_rs(platform, &modules).map_err(CodegenError::Io)?;
        out.push(GeneratedFile {
            rel_path: format!("{dir}/mod.rs"),
            contents,
            public_items: Vec::new(),
        });
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(CodegenError::Invalid(diags))
    }
}

/// A generated file that differs from what is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// Path relative to the workspace root.
    pub rel_path: String,
    /// A unified diff from the file on disk to what codegen produces.
    pub diff: String,
}

fn existing_generated(root: &Path) -> Result<Vec<String>, CodegenError> {
    let mut found = Vec::new();
    for platform in PLATFORMS {
        let rel_dir = format!("crates/{platform}-models/src/generated");
        let dir = root.join(&rel_dir);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&dir, e)),
        };
        for entry in entries.filter_map(Result::ok) {
            if let Some(name) = entry.file_name().to_str().filter(|n| n.ends_with(".rs")) {
                found.push(format!("{rel_dir}/{name}"));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Compares the committed files with a fresh generation.
pub fn check(root: &Path) -> Result<Vec<Drift>, CodegenError> {
    let generated = generate(root)?;
    let mut drifts = Vec::new();
    for file in &generated {
        let path = root.join(&file.rel_path);
        let current = fs::read_to_string(&path).unwrap_or_default();
        if current != file.contents {
            let diff = similar::TextDiff::from_lines(&current, &file.contents)
                .unified_diff()
                .context_radius(2)
                .header(
                    &format!("a/{} (committed)", file.rel_path),
                    &format!("b/{} (generated)", file.rel_path),
                )
                .to_string();
            drifts.push(Drift {
                rel_path: file.rel_path.clone(),
                diff,
            });
        }
    }
    for stale in existing_generated(root)? {
        if !generated.iter().any(|g| g.rel_path == stale) {
            drifts.push(Drift {
                diff: format!("{stale} has no spec any more: delete it\n"),
                rel_path: stale,
            });
        }
    }
    Ok(drifts)
}

/// Writes every generated file and removes generated files whose spec is gone.
pub fn write(root: &Path) -> Result<Vec<GeneratedFile>, CodegenError> {
    let generated = generate(root)?;
    for file in &generated {
        let path = root.join(&file.rel_path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        if fs::read_to_string(&path).ok().as_deref() != Some(file.contents.as_str()) {
            fs::write(&path, &file.contents).map_err(|e| io_error(&path, e))?;
        }
    }
    for stale in existing_generated(root)? {
        if !generated.iter().any(|g| g.rel_path == stale) {
            let path = root.join(&stale);
            fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
        }
    }
    Ok(generated)
}
