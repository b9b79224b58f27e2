//! `cargo xtask lines`: the hand-written code of the client crates, measured the way issue 12's
//! budget counts it (`wc -l` of every `.rs` file under each crate's `src/`), and what those
//! lines are: unit tests, comments, blank lines and the code that is left.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The crates the budget covers: the request engine and the three clients.
pub const CLIENT_CRATES: [&str; 4] = [
    "client-core",
    "norce-client",
    "nshift-client",
    "brightpearl-client",
];

/// The counts of one file or of a sum of files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every line (`wc -l`).
    pub lines: usize,
    /// Lines from a top-level `#[cfg(test)]` to the end of the file (unit tests sit last).
    pub tests: usize,
    /// Comment lines (`//`, `///`, `//!`) outside the unit tests.
    pub comments: usize,
    /// Blank lines outside the unit tests.
    pub blank: usize,
}

impl Counts {
    /// Lines of code: what is neither unit test, comment nor blank.
    pub fn code(&self) -> usize {
        self.lines - self.tests - self.comments - self.blank
    }

    /// Counts `text`, one Rust source file.
    pub fn of(text: &str) -> Self {
        let mut counts = Self::default();
        let mut in_tests = false;
        for line in text.lines() {
            counts.lines += 1;
            let trimmed = line.trim_start();
            // Only an unindented attribute starts the file's test module.
            in_tests |= line.starts_with("#[cfg(test)]");
            if in_tests {
                counts.tests += 1;
            } else if trimmed.is_empty() {
                counts.blank += 1;
            } else if trimmed.starts_with("//") {
                counts.comments += 1;
            }
        }
        counts
    }

    fn add(&mut self, other: Self) {
        self.lines += other.lines;
        self.tests += other.tests;
        self.comments += other.comments;
        self.blank += other.blank;
    }
}

/// One crate's counts, file by file.
#[derive(Debug, Clone)]
pub struct CrateLines {
    /// The crate's directory name under `crates/`.
    pub name: String,
    /// Each file under `src/` (path relative to the crate) and its counts, sorted by path.
    pub files: Vec<(String, Counts)>,
}

impl CrateLines {
    /// The sum over the crate's files.
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        self.files.iter().for_each(|(_, c)| total.add(*c));
        total
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Counts the `src/` of each of [`CLIENT_CRATES`] under `root`.
pub fn measure(root: &Path) -> Result<Vec<CrateLines>, String> {
    let mut crates = Vec::new();
    for name in CLIENT_CRATES {
        let dir = root.join("crates").join(name);
        let mut paths = Vec::new();
        rust_files(&dir.join("src"), &mut paths)
            .map_err(|e| format!("cannot list {}/src: {e}\n", dir.display()))?;
        let mut files = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}\n", path.display()))?;
            let shown = path.strip_prefix(&dir).unwrap_or(&path);
            files.push((shown.display().to_string(), Counts::of(&text)));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        crates.push(CrateLines {
            name: name.to_owned(),
            files,
        });
    }
    Ok(crates)
}

/// A Markdown table: one row per crate (per file too with `by_file`) and the sum.
pub fn markdown_table(crates: &[CrateLines], by_file: bool) -> String {
    let mut out = String::from(
        "| crate | lines (`wc -l`) | unit tests | comments | blank | code |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    let row = |out: &mut String, name: &str, c: Counts| {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} |",
            c.lines,
            c.tests,
            c.comments,
            c.blank,
            c.code()
        );
    };
    let mut sum = Counts::default();
    for krate in crates {
        if by_file {
            for (file, counts) in &krate.files {
                row(&mut out, &format!("{}/{file}", krate.name), *counts);
            }
        }
        row(&mut out, &format!("**{}**", krate.name), krate.total());
        sum.add(krate.total());
    }
    row(&mut out, "**all four**", sum);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_split_into_tests_comments_blank_and_code() {
        let text = "//! Docs.\n\nfn a() {\n    // why\n    let s = \"// not a comment\";\n}\n\n#[cfg(test)]\nmod tests {\n\n    // in tests\n}\n";
        let counts = Counts::of(text);
        assert_eq!(
            counts,
            Counts {
                lines: 12,
                tests: 5,
                comments: 2,
                blank: 2,
            }
        );
        assert_eq!(counts.code(), 3);
    }

    #[test]
    fn an_indented_cfg_test_does_not_start_the_tests() {
        let counts = Counts::of("mod a {\n    #[cfg(test)]\n    fn b() {}\n}\n");
        assert_eq!((counts.tests, counts.code()), (0, 4));
    }
}
