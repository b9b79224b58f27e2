//! Rust names from wire names.

/// Words of a wire name: split on anything that is not alphanumeric and on case changes
/// (`@odata.nextLink` → `odata`, `next`, `link`; `HTTPServer` → `http`, `server`).
fn words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        if c.is_ascii_uppercase() && !current.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                words.push(std::mem::take(&mut current));
            }
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "do", "dyn", "else",
    "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop",
    "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return", "self",
    "static", "struct", "super", "trait", "true", "try", "type", "typeof", "unsafe", "unsized",
    "use", "virtual", "where", "while", "yield",
];

/// `snake_case` field name; keywords get a trailing underscore (`type` → `type_`).
pub fn snake(name: &str) -> String {
    let mut out = words(name)
        .iter()
        .map(|w| w.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("_");
    if out.is_empty() {
        out = "value".to_owned();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'n');
    }
    if KEYWORDS.contains(&out.as_str()) {
        out.push('_');
    }
    out
}

/// `PascalCase` type or variant name (`IN_PROGRESS` → `InProgress`, `printed` → `Printed`).
pub fn pascal(name: &str) -> String {
    let mut out = String::new();
    for word in words(name) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            // Keep mixed case inside a word (`ListOrders3` stays), lower an all-caps word.
            let rest: String = chars.collect();
            if word.chars().all(|c| !c.is_ascii_lowercase()) {
                out.push_str(&rest.to_ascii_lowercase());
            } else {
                out.push_str(&rest);
            }
        }
    }
    if out.is_empty() {
        out = "Empty".to_owned();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    if out == "Self" {
        out.push('_');
    }
    out
}

/// `SCREAMING_SNAKE_CASE` constant name.
pub fn screaming(name: &str) -> String {
    let s = snake(name);
    s.trim_end_matches('_').to_ascii_uppercase()
}

/// The extension trait of a spec module's operations (`services` → `ServicesApi`).
pub fn api_trait(module: &str) -> String {
    format!("{}Api", pascal(module))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_names() {
        assert_eq!(snake("@odata.nextLink"), "odata_next_link");
        assert_eq!(snake("$filter"), "filter");
        assert_eq!(snake("X-StormConnect-Header"), "x_storm_connect_header");
        assert_eq!(snake("ApplicationId"), "application_id");
        assert_eq!(snake("HTTPServer"), "http_server");
        assert_eq!(snake("type"), "type_");
        assert_eq!(snake("pageNo"), "page_no");
        assert_eq!(snake("ListOrders3"), "list_orders3");
        assert_eq!(snake("1stLine"), "n1st_line");
    }

    #[test]
    fn pascal_names() {
        assert_eq!(pascal("IN_PROGRESS"), "InProgress");
        assert_eq!(pascal("printed"), "Printed");
        assert_eq!(pascal("ListOrders3"), "ListOrders3");
        assert_eq!(pascal("ASS"), "Ass");
        assert_eq!(pascal("1"), "V1");
        assert_eq!(pascal(""), "Empty");
        assert_eq!(pascal("getUris"), "GetUris");
        assert_eq!(pascal("order-service"), "OrderService");
        assert_eq!(api_trait("services"), "ServicesApi");
    }
}
