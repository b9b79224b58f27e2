//! Text that came from outside (a platform's answer, a pushed order, a webhook) made safe to
//! print on a terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character (C0 such as ESC, BEL and NUL, DEL, C1) and every
/// bidirectional-formatting character written as `\u{..}`, so a received value can neither
/// drive the terminal (retitle it, colour it, move the cursor) nor reorder what is shown.
/// Borrowed when there is nothing to escape.
///
/// ```
/// assert_eq!(relay::text::escape("order 42"), "order 42");
/// assert_eq!(relay::text::escape("\u{1b}]0;owned\u{7}x\0"), "\\u{1b}]0;owned\\u{7}x\\u{0}");
/// ```
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Control characters and the Unicode bidi embeddings, overrides and isolates.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_and_bidi_are_shown_not_obeyed() {
        let hostile = "A\u{1b}[31mred\u{1b}[0m\u{7}\u{9b}2J\u{202e}txt.exe\r\n";
        let shown = escape(hostile);
        assert!(!shown.chars().any(needs_escape), "{shown}");
        assert_eq!(
            shown,
            "A\\u{1b}[31mred\\u{1b}[0m\\u{7}\\u{9b}2J\\u{202e}txt.exe\\u{d}\\u{a}"
        );
        assert!(matches!(escape("plain åäö"), Cow::Borrowed(_)));
    }
}
