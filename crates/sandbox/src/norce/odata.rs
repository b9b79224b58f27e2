//! A small OData v4 subset: `$filter` with `eq ne gt ge lt le`, `and`, `or`, parentheses and
//! integer, string, date-time, boolean and null literals; `$orderby`.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use models_runtime::Timestamp;

/// The type of a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Edm.Int64`.
    Int,
    /// `Edm.DateTimeOffset`.
    Date,
    /// `Edm.String`.
    Str,
    /// `Edm.Boolean`.
    Bool,
}

impl Kind {
    fn edm(self) -> &'static str {
        match self {
            Kind::Int => "Edm.Int64",
            Kind::Date => "Edm.DateTimeOffset",
            Kind::Str => "Edm.String",
            Kind::Bool => "Edm.Boolean",
        }
    }
}

/// A literal or a property value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// An integer (`42`).
    Int(i64),
    /// A date-time (`2024-05-01T00:00:00Z`; a bare date is midnight UTC).
    Date(DateTime<Utc>),
    /// A string (`'text'`, `''` for a quote inside).
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// `null`, or a property without a value.
    Null,
}

impl Val {
    fn kind(&self) -> Option<Kind> {
        match self {
            Val::Int(_) => Some(Kind::Int),
            Val::Date(_) => Some(Kind::Date),
            Val::Str(_) => Some(Kind::Str),
            Val::Bool(_) => Some(Kind::Bool),
            Val::Null => None,
        }
    }

    fn compare(&self, other: &Val) -> Option<Ordering> {
        match (self, other) {
            (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
            (Val::Date(a), Val::Date(b)) => Some(a.cmp(b)),
            (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
            (Val::Bool(a), Val::Bool(b)) => Some(a.cmp(b)),
            (Val::Null, Val::Null) => Some(Ordering::Equal),
            _ => None,
        }
    }
}

/// A comparison operator of `$filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `eq`.
    Eq,
    /// `ne`.
    Ne,
    /// `gt`.
    Gt,
    /// `ge`.
    Ge,
    /// `lt`.
    Lt,
    /// `le`.
    Le,
}

impl Op {
    fn parse(word: &str) -> Option<Op> {
        Some(match word {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Op::Eq => "Equal",
            Op::Ne => "NotEqual",
            Op::Gt => "GreaterThan",
            Op::Ge => "GreaterThanOrEqual",
            Op::Lt => "LessThan",
            Op::Le => "LessThanOrEqual",
        }
    }
}

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `prop op value`.
    Cmp {
        /// The property name, as the entity set writes it.
        prop: String,
        /// The comparison.
        op: Op,
        /// The literal compared against.
        value: Val,
    },
    /// Both sides hold.
    And(Box<Expr>, Box<Expr>),
    /// Either side holds.
    Or(Box<Expr>, Box<Expr>),
}

impl Expr {
    /// Evaluates against an entity whose properties `get` reads.
    pub fn eval(&self, get: &dyn Fn(&str) -> Val) -> bool {
        match self {
            Expr::And(a, b) => a.eval(get) && b.eval(get),
            Expr::Or(a, b) => a.eval(get) || b.eval(get),
            Expr::Cmp { prop, op, value } => {
                let actual = get(prop);
                match (op, actual.compare(value)) {
                    (Op::Eq, Some(o)) => o == Ordering::Equal,
                    (Op::Ne, Some(o)) => o != Ordering::Equal,
                    (Op::Ne, None) => true,
                    (_, None) => false,
                    (Op::Gt, Some(o)) => o == Ordering::Greater,
                    (Op::Ge, Some(o)) => o != Ordering::Less,
                    (Op::Lt, Some(o)) => o == Ordering::Less,
                    (Op::Le, Some(o)) => o != Ordering::Greater,
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Quoted(String),
    Word(String),
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            tokens.push((i, Token::Open));
            i += 1;
        } else if c == ')' {
            tokens.push((i, Token::Close));
            i += 1;
        } else if c == '\'' {
            let start = i;
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(format!(
                            "Syntax error: unterminated string literal at position {start} in '{text}'."
                        ));
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        value.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        value.push(*ch);
                        i += 1;
                    }
                }
            }
            tokens.push((start, Token::Quoted(value)));
        } else {
            let start = i;
            while i < chars.len()
                && !chars[i].is_whitespace()
                && !matches!(chars[i], '(' | ')' | '\'')
            {
                i += 1;
            }
            tokens.push((start, Token::Word(chars[start..i].iter().collect())));
        }
    }
    Ok(tokens)
}

fn literal(word: &str) -> Option<Val> {
    if let Ok(n) = word.parse::<i64>() {
        return Some(Val::Int(n));
    }
    match word {
        "true" => return Some(Val::Bool(true)),
        "false" => return Some(Val::Bool(false)),
        "null" => return Some(Val::Null),
        _ => {}
    }
    if let Ok(t) = Timestamp::parse(word) {
        return Some(Val::Date(t.to_utc()));
    }
    NaiveDate::parse_from_str(word, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| Val::Date(d.and_utc()))
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<(usize, Token)>,
    pos: usize,
    kind_of: &'a dyn Fn(&str) -> Option<Kind>,
    entity: &'a str,
}

impl Parser<'_> {
    fn syntax(&self, what: &str) -> String {
        let at = self
            .tokens
            .get(self.pos)
            .map_or(self.text.chars().count(), |(p, _)| *p);
        format!("Syntax error at position {at} in '{}': {what}.", self.text)
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some((_, Token::Word(w))) if w == word)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.primary()?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.primary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.tokens.get(self.pos).cloned() {
            Some((_, Token::Open)) => {
                self.pos += 1;
                let inner = self.or()?;
                match self.tokens.get(self.pos) {
                    Some((_, Token::Close)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(self.syntax("')' expected")),
                }
            }
            Some((_, Token::Word(prop))) => {
                let Some(kind) = (self.kind_of)(&prop) else {
                    if matches!(self.tokens.get(self.pos + 1), Some((_, Token::Open))) {
                        return Err(format!(
                            "An unknown function with name '{prop}' was found; the sandbox supports only comparisons combined with 'and' and 'or'."
                        ));
                    }
                    return Err(format!(
                        "Could not find a property named '{prop}' on type '{}'.",
                        self.entity
                    ));
                };
                self.pos += 1;
                let op = match self.tokens.get(self.pos) {
                    Some((_, Token::Word(w))) => Op::parse(w).ok_or_else(|| {
                        self.syntax(&format!(
                            "'{w}' is not a comparison operator (eq, ne, gt, ge, lt, le)"
                        ))
                    })?,
                    _ => {
                        return Err(self.syntax(
                            "a comparison operator (eq, ne, gt, ge, lt, le) was expected",
                        ));
                    }
                };
                self.pos += 1;
                let value = match self.tokens.get(self.pos) {
                    Some((_, Token::Quoted(s))) => Val::Str(s.clone()),
                    Some((_, Token::Word(w))) => literal(w)
                        .ok_or_else(|| self.syntax(&format!("'{w}' is not a valid literal")))?,
                    _ => return Err(self.syntax("a literal was expected")),
                };
                self.pos += 1;
                if let Some(found) = value.kind()
                    && found != kind
                {
                    return Err(format!(
                        "A binary operator with incompatible types was detected. Found operand types '{}' and '{}' for operator kind '{}'.",
                        kind.edm(),
                        found.edm(),
                        op.name()
                    ));
                }
                if value == Val::Null && !matches!(op, Op::Eq | Op::Ne) {
                    return Err(format!(
                        "Operator '{}' cannot compare with null.",
                        op.name()
                    ));
                }
                Ok(Expr::Cmp { prop, op, value })
            }
            Some(_) => Err(self.syntax("a property name or '(' was expected")),
            None => Err(self.syntax("unexpected end of expression")),
        }
    }
}

/// Parses `$filter`; `kind_of` names the entity's filterable properties.
pub fn parse_filter(
    text: &str,
    entity: &str,
    kind_of: &dyn Fn(&str) -> Option<Kind>,
) -> Result<Expr, String> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
        kind_of,
        entity,
    };
    let expr = parser.or()?;
    if parser.pos < parser.tokens.len() {
        return Err(parser.syntax("'and', 'or' or the end of the expression was expected"));
    }
    Ok(expr)
}

/// Parses `$orderby`: `prop [asc|desc], ...`.
pub fn parse_orderby(
    text: &str,
    entity: &str,
    kind_of: &dyn Fn(&str) -> Option<Kind>,
) -> Result<Vec<(String, bool)>, String> {
    let mut keys = Vec::new();
    for part in text.split(',') {
        let mut words = part.split_whitespace();
        let Some(prop) = words.next() else {
            return Err(format!(
                "Syntax error in $orderby '{text}': empty sort key."
            ));
        };
        if kind_of(prop).is_none() {
            return Err(format!(
                "Could not find a property named '{prop}' on type '{entity}'."
            ));
        }
        let descending = match words.next() {
            None => false,
            Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(format!(
                    "Syntax error in $orderby '{text}': '{other}' must be 'asc' or 'desc'."
                ));
            }
        };
        if let Some(extra) = words.next() {
            return Err(format!(
                "Syntax error in $orderby '{text}': unexpected '{extra}'."
            ));
        }
        keys.push((prop.to_owned(), descending));
    }
    Ok(keys)
}

/// Compares two property values for `$orderby` (nulls first, as OData sorts them).
pub fn order(a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Null, Val::Null) => Ordering::Equal,
        (Val::Null, _) => Ordering::Less,
        (_, Val::Null) => Ordering::Greater,
        _ => a.compare(b).unwrap_or(Ordering::Equal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(prop: &str) -> Option<Kind> {
        match prop {
            "id" => Some(Kind::Int),
            "orderDate" => Some(Kind::Date),
            "orderNo" => Some(Kind::Str),
            _ => None,
        }
    }

    #[test]
    fn parses_and_evaluates() {
        let expr = parse_filter(
            "orderDate ge 2026-03-01T00:00:00Z and (id eq 5 or orderNo eq 'NC-''1')",
            "Order",
            &kinds,
        )
        .unwrap();
        let get = |p: &str| match p {
            "id" => Val::Int(5),
            "orderDate" => Val::Date("2026-03-02T00:00:00Z".parse().unwrap()),
            _ => Val::Str("x".into()),
        };
        assert!(expr.eval(&get));
        let get2 = |p: &str| match p {
            "id" => Val::Int(6),
            "orderDate" => Val::Date("2026-03-02T00:00:00Z".parse().unwrap()),
            _ => Val::Str("NC-'1".into()),
        };
        assert!(expr.eval(&get2));
    }

    #[test]
    fn rejects_with_odata_style_messages() {
        assert!(
            parse_filter("foo eq 1", "Order", &kinds)
                .unwrap_err()
                .contains("'foo'")
        );
        assert!(
            parse_filter("id gt 2026-01-01T00:00:00Z", "Order", &kinds)
                .unwrap_err()
                .contains("incompatible types")
        );
        assert!(
            parse_filter("id eq", "Order", &kinds)
                .unwrap_err()
                .contains("Syntax error")
        );
        assert!(
            parse_filter("id eq 1 id", "Order", &kinds)
                .unwrap_err()
                .contains("Syntax error")
        );
        assert!(
            parse_filter("contains(orderNo,'x')", "Order", &kinds)
                .unwrap_err()
                .contains("function")
        );
        assert!(parse_orderby("id sideways", "Order", &kinds).is_err());
        assert_eq!(
            parse_orderby("orderDate desc, id", "Order", &kinds).unwrap(),
            vec![("orderDate".into(), true), ("id".into(), false)]
        );
    }
}
