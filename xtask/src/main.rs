//! `cargo xtask codegen [--check]`: generate the `*-models` crates from `specs/`.

use std::path::PathBuf;
use std::process::ExitCode;

use xtask::codegen;

const USAGE: &str = "usage: cargo xtask codegen [--check] [--root DIR]\n\n  codegen          generate crates/*-models/src/generated/ from specs/\n  codegen --check  fail with a diff when the committed code is stale";

fn workspace_root() -> PathBuf {
    // xtask/ sits directly under the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
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
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["codegen"] => match codegen::write(&root) {
            Ok(files) => {
                let types: usize = files.iter().map(|f| f.public_items.len()).sum();
                println!("generated {} files ({types} public items)", files.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("cargo xtask codegen: {e}");
                ExitCode::FAILURE
            }
        },
        ["codegen", "--check"] => match codegen::check(&root) {
            Ok(drifts) if drifts.is_empty() => {
                println!("generated code is up to date");
                ExitCode::SUCCESS
            }
            Ok(drifts) => {
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
