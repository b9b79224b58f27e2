//! Path parameter encoding.

/// Percent-encodes one path segment (RFC 3986 `pchar`), keeping the sub-delimiters that the
/// platforms use inside segments, such as the commas and dashes of Brightpearl ID sets (`1-5,7`).
///
/// ```
/// assert_eq!(models_runtime::path::encode_segment("1-5,7"), "1-5,7");
/// assert_eq!(models_runtime::path::encode_segment("a b/c"), "a%20b%2Fc");
/// ```
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&byte);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
