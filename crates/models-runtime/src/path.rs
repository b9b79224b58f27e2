//! Path parameter encoding.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What [`encode_segment`] percent-encodes: everything but RFC 3986 `pchar` (unreserved
/// characters, sub-delimiters, `:` and `@`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Percent-encodes one path segment (RFC 3986 `pchar`), keeping the sub-delimiters that the
/// platforms use inside segments, such as the commas and dashes of Brightpearl ID sets (`1-5,7`).
///
/// ```
/// assert_eq!(models_runtime::path::encode_segment("1-5,7"), "1-5,7");
/// assert_eq!(models_runtime::path::encode_segment("a b/c"), "a%20b%2Fc");
/// ```
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_pchar_and_encodes_the_rest_in_upper_case_hex() {
        let kept = "AZaz09-._~!$&'()*+,;=:@";
        assert_eq!(super::encode_segment(kept), kept);
        assert_eq!(
            super::encode_segment("/?#[]%\" å"),
            "%2F%3F%23%5B%5D%25%22%20%C3%A5"
        );
        assert_eq!(super::encode_segment("\u{7f}\n"), "%7F%0A");
    }
}
