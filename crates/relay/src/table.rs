//! Fixed-width text tables for the CLI's reports.

use std::fmt::Write as _;

/// Renders `rows` under `headers`, columns padded to their widest cell, separated by two spaces.
///
/// ```
/// let text = relay::table::render(&["a", "bb"], &[vec!["xyz".into(), "1".into()]]);
/// assert_eq!(text, "a    bb\n---  --\nxyz  1\n");
/// ```
///
/// Cells are escaped with [`crate::text::escape`]: they often hold received values.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| crate::text::escape(cell).into_owned())
                .collect()
        })
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        line(row.clone());
    }
    out
}
