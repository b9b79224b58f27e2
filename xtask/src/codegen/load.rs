//! Reading the specs: every `specs/<platform>/*.yaml`, parsed, or the problems that stop
//! generation. A bottom module: codegen and provenance both read through it.

use std::fs;
use std::path::{Path, PathBuf};

use super::model::{Diag, SpecFile};
use super::naming;

/// The platforms, each with `specs/<name>/` and `crates/<name>-models/`.
pub const PLATFORMS: &[&str] = &["norce", "nshift", "brightpearl"];

/// Why codegen failed.
#[derive(Debug)]
pub enum CodegenError {
    /// Specs that break the rules, each naming file and operation or schema.
    Invalid(Vec<Diag>),
    /// Reading or writing a file failed.
    Io(String),
}

impl std::fmt::Display for CodegenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodegenError::Invalid(diags) => {
                writeln!(f, "{} problem(s) in the specs:", diags.len())?;
                for diag in diags {
                    writeln!(f, "  {diag}")?;
                }
                Ok(())
            }
            CodegenError::Io(message) => f.write_str(message),
        }
    }
}

pub(crate) fn io_error(path: &Path, e: std::io::Error) -> CodegenError {
    CodegenError::Io(format!("{}: {e}", path.display()))
}

/// Loads every `*.yaml` of one platform, sorted by file name.
pub fn load_platform(root: &Path, platform: &str) -> Result<Vec<SpecFile>, CodegenError> {
    let dir = root.join("specs").join(platform);
    let mut paths: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_error(&dir, e)),
    };
    paths.sort();
    let mut files = Vec::new();
    let mut diags = Vec::new();
    for path in paths {
        let rel_path = format!(
            "specs/{platform}/{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("")
        );
        let text = fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        match serde_norway::from_str(&text) {
            Ok(doc) => {
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("")
                    .to_owned();
                let module = naming::snake(&stem);
                files.push(SpecFile {
                    platform: platform.to_owned(),
                    module,
                    rel_path,
                    doc,
                });
            }
            Err(e) => diags.push(Diag {
                file: rel_path,
                location: "YAML".to_owned(),
                message: e.to_string(),
            }),
        }
    }
    if diags.is_empty() {
        Ok(files)
    } else {
        Err(CodegenError::Invalid(diags))
    }
}

/// Each platform's spec files, and the problems of the files that did not parse.
pub type Loaded = (Vec<(&'static str, Vec<SpecFile>)>, Vec<Diag>);

/// The spec files of every platform that parsed, and the problems of those that did not (an
/// I/O error stops at once).
pub fn load_all(root: &Path) -> Result<Loaded, CodegenError> {
    let mut platforms = Vec::new();
    let mut diags = Vec::new();
    for platform in PLATFORMS {
        match load_platform(root, platform) {
            Ok(files) => platforms.push((*platform, files)),
            Err(CodegenError::Invalid(mut d)) => diags.append(&mut d),
            Err(e) => return Err(e),
        }
    }
    Ok((platforms, diags))
}
