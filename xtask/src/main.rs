//! `cargo xtask codegen [--check]`: generate the `*-models` crates from `specs/`;
//! `cargo xtask provenance [--missing]`: where the specs come from;
//! `cargo xtask lines [--files]`: the client crates' hand-written lines (issue 12's budget).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use xtask::codegen::{self, provenance};
use xtask::lines;

const USAGE: &str = "usage: cargo xtask codegen [--check] [--root DIR]\n       cargo xtask provenance [--missing] [--root DIR]\n       cargo xtask lines [--files] [--root DIR]\n\n  codegen                generate crates/*-models/src/generated/ from specs/\n  codegen --check        fail with a diff when the committed code is stale\n  provenance             x-source / x-assumed / x-open-question counts per platform (Markdown)\n  provenance --missing   every operation and schema without x-source or x-assumed\n  lines                  wc -l of client-core's and the three clients' src/, split into unit tests, comments, blank and code\n  lines --files          the same, file by file";

fn workspace_root() -> PathBuf {
    // xtask/ sits directly under the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Prints one provenance line per platform after codegen validated the specs.
fn print_provenance(root: &Path, command: &str) -> ExitCode {
    match provenance::summarize(root) {
        Ok(platforms) => {
            for platform in &platforms {
                println!("{platform}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("cargo xtask {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `--root DIR` points codegen at another checkout (used when testing the generator).
    let root = match args.iter().position(|a| a == "--root") {
        Some(i) if i + 1 < args.len() => {
            let dir = args.remove(i + 1);
            args.remove(i);
            PathBuf::from(dir)
        }
        _ => workspace_root(),
    };
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["codegen"] => match codegen::write(&root) {
            Ok(files) => {
                let types: usize = files.iter().map(|f| f.public_items.len()).sum();
                println!("generated {} files ({types} public items)", files.len());
                print_provenance(&root, "codegen")
            }
            Err(e) => {
                eprint!("cargo xtask codegen: {e}");
                ExitCode::FAILURE
            }
        },
        ["codegen", "--check"] => match codegen::check(&root) {
            Ok(drifts) if drifts.is_empty() => {
                println!("generated code is up to date");
                print_provenance(&root, "codegen --check")
            }
            Ok(drifts) => {
                // The specs are valid; only the generated code is stale.
                let _ = print_provenance(&root, "codegen --check");
                for drift in &drifts {
                    eprintln!("{}", drift.diff);
                }
                eprintln!(
                    "cargo xtask codegen --check: {} generated file(s) differ from the specs. Run `cargo xtask codegen` and commit the result; never edit generated files by hand.",
                    drifts.len()
                );
                ExitCode::FAILURE
            }
            Err(e) => {
                eprint!("cargo xtask codegen --check: {e}");
                ExitCode::FAILURE
            }
        },
        ["provenance"] => match provenance::summarize(&root) {
            Ok(platforms) => {
                print!("{}", provenance::markdown_table(&platforms));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("cargo xtask provenance: {e}");
                ExitCode::FAILURE
            }
        },
        ["provenance", "--missing"] => match provenance::summarize(&root) {
            Ok(platforms) => {
                let missing: Vec<_> = platforms.iter().flat_map(|p| &p.unsourced).collect();
                let mut out = std::io::stdout().lock();
                for entry in &missing {
                    // Stop quietly when the reader goes away (`| head`).
                    if writeln!(out, "{entry}").is_err() {
                        break;
                    }
                }
                eprintln!(
                    "{} operation(s) and schema(s) without `x-source`",
                    missing.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("cargo xtask provenance --missing: {e}");
                ExitCode::FAILURE
            }
        },
        ["lines", rest @ ..] if rest.iter().all(|a| *a == "--files") => {
            match lines::measure(&root) {
                Ok(crates) => {
                    print!("{}", lines::markdown_table(&crates, !rest.is_empty()));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprint!("cargo xtask lines: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
