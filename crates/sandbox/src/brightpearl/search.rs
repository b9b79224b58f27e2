//! The resource-search engine shared by every `*-search`: typed filters, `columns`, `sort`,
//! 1-based `firstResult`, `pageSize` up to the limit, `metaData` and positional rows.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use axum::http::StatusCode;
use brightpearl_models::common::{
    ReportDataType, SearchColumn, SearchEnvelope, SearchMetaData, SearchResults, SearchSorting,
    SearchSortingDirection,
};
use chrono::{DateTime, NaiveDate, Utc};
use models_runtime::Timestamp;
use serde_json::Value;

use super::idset::IdSet;
use super::reply::Reply;

/// One column of a search resource.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    pub name: &'static str,
    pub kind: Kind,
    pub reference: Option<&'static str>,
}

/// The data types the simulator filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    IdSet,
    String,
    SearchString,
    Boolean,
    Period,
}

impl Kind {
    fn report(self) -> ReportDataType {
        match self {
            Self::Integer => ReportDataType::Integer,
            Self::IdSet => ReportDataType::Idset,
            Self::String => ReportDataType::String,
            Self::SearchString => ReportDataType::SearchString,
            Self::Boolean => ReportDataType::Boolean,
            Self::Period => ReportDataType::Period,
        }
    }
}

pub const fn col(name: &'static str, kind: Kind) -> Col {
    Col {
        name,
        kind,
        reference: None,
    }
}

pub const fn col_ref(name: &'static str, kind: Kind, reference: &'static str) -> Col {
    Col {
        name,
        kind,
        reference: Some(reference),
    }
}

/// A search request, already read through the operation's generated `*Query`.
pub struct Search<'a> {
    pub cols: &'static [Col],
    /// Every row, values in `cols` order.
    pub rows: Vec<Vec<Value>>,
    /// (column, raw filter value) pairs.
    pub filters: Vec<(&'static str, Option<String>)>,
    pub columns: Option<&'a str>,
    pub sort: Option<&'a str>,
    pub page_size: Option<i64>,
    pub first_result: Option<i64>,
    pub max_page_size: i64,
    /// Reference maps sent whole (e.g. `orderStatusNames`: status id → label).
    pub reference: BTreeMap<String, BTreeMap<String, Value>>,
    /// Reference maps keyed by the row's id (its first column), sent for the page's rows only,
    /// as product search sends `productCategoryMembership` (product id → `[300, 301]`).
    pub row_reference: BTreeMap<String, BTreeMap<String, Value>>,
}

fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = Timestamp::parse(text) {
        return Some(t.to_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
}

/// A filter turned into a predicate on one value.
enum Filter {
    Ids(IdSet),
    Int(i64),
    Exact(String),
    Partial(String),
    Bool(bool),
    Period(Option<DateTime<Utc>>, Option<DateTime<Utc>>),
}

fn compile(col: &Col, raw: &str) -> Result<Filter, Reply> {
    let bad = || {
        Reply::bad_filter(format!(
            "Could not parse filter {}={raw} as {}",
            col.name,
            col.kind.report().as_str()
        ))
    };
    Ok(match col.kind {
        // Range syntax (`>5`, `5-`) is rejected on INTEGER and IDSET filters.
        Kind::IdSet => Filter::Ids(IdSet::parse(raw, false).map_err(|_| bad())?),
        Kind::Integer => Filter::Int(raw.trim().parse().map_err(|_| bad())?),
        Kind::String => Filter::Exact(raw.to_owned()),
        Kind::SearchString => Filter::Partial(raw.to_lowercase()),
        Kind::Boolean => match raw.trim() {
            "true" => Filter::Bool(true),
            "false" => Filter::Bool(false),
            _ => return Err(bad()),
        },
        Kind::Period => {
            let Some((from, to)) = raw.split_once('/') else {
                return Err(bad());
            };
            let side = |text: &str| -> Result<Option<DateTime<Utc>>, Reply> {
                if text.trim().is_empty() {
                    Ok(None)
                } else {
                    parse_instant(text.trim()).map(Some).ok_or_else(bad)
                }
            };
            Filter::Period(side(from)?, side(to)?)
        }
    })
}

fn matches(filter: &Filter, value: &Value) -> bool {
    match filter {
        Filter::Ids(set) => value.as_i64().is_some_and(|id| set.contains(id)),
        Filter::Int(n) => value.as_i64() == Some(*n),
        Filter::Exact(text) => value.as_str() == Some(text.as_str()),
        Filter::Partial(text) => value
            .as_str()
            .is_some_and(|v| v.to_lowercase().contains(text.as_str())),
        Filter::Bool(b) => value.as_bool() == Some(*b),
        Filter::Period(from, to) => {
            let Some(at) = value.as_str().and_then(parse_instant) else {
                return false;
            };
            from.is_none_or(|f| at >= f) && to.is_none_or(|t| at <= t)
        }
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn column_meta(col: &Col) -> SearchColumn {
    SearchColumn {
        name: Some(col.name.to_owned()),
        sortable: Some(true),
        filterable: Some(true),
        report_data_type: Some(col.kind.report()),
        // Brightpearl sends `referenceData` on every column, `[]` when it has none.
        reference_data: Some(
            col.reference
                .map(|r| vec![r.to_owned()])
                .unwrap_or_default(),
        ),
        is_free_text_searchable: Some(col.kind == Kind::SearchString),
        required: Some(false),
    }
}

impl Search<'_> {
    /// Runs the search and answers with its envelope or its error, as every search handler does.
    pub fn reply(self) -> Reply {
        match self.run() {
            Ok(envelope) => Reply::raw(StatusCode::OK, envelope),
            Err(reply) => reply,
        }
    }

    /// Filters, sorts and pages; bad parameters are `500 CMNC-018` as Brightpearl answers them.
    pub fn run(self) -> Result<SearchEnvelope, Reply> {
        let index_of = |name: &str| self.cols.iter().position(|c| c.name == name);
        let mut compiled = Vec::new();
        for (name, raw) in &self.filters {
            let Some(raw) = raw else { continue };
            let Some(i) = index_of(name) else { continue };
            compiled.push((i, compile(&self.cols[i], raw)?));
        }
        let selected: Vec<usize> = match self.columns.map(str::trim).filter(|c| !c.is_empty()) {
            None => (0..self.cols.len()).collect(),
            Some(list) => list
                .split(',')
                .map(|name| {
                    index_of(name.trim()).ok_or_else(|| {
                        Reply::bad_filter(format!("Unknown column `{}` in columns", name.trim()))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut sorting: Vec<(usize, bool)> = Vec::new();
        if let Some(sort) = self.sort.map(str::trim).filter(|s| !s.is_empty()) {
            for part in sort.split(',') {
                let (name, direction) =
                    part.trim().rsplit_once('.').unwrap_or((part.trim(), "ASC"));
                let Some(i) = index_of(name) else {
                    return Err(Reply::bad_filter(format!("Unknown sort column `{name}`")));
                };
                let descending = match direction.to_ascii_uppercase().as_str() {
                    "ASC" => false,
                    "DESC" => true,
                    _ => {
                        return Err(Reply::bad_filter(format!(
                            "Sort direction must be ASC or DESC, got `{direction}`"
                        )));
                    }
                };
                sorting.push((i, descending));
            }
        } else {
            sorting.push((0, false));
        }
        let page_size = self.page_size.unwrap_or(self.max_page_size);
        if !(1..=self.max_page_size).contains(&page_size) {
            return Err(Reply::bad_filter(format!(
                "pageSize must be between 1 and {}",
                self.max_page_size
            )));
        }
        let first = self.first_result.unwrap_or(1);
        if first < 1 {
            return Err(Reply::bad_filter(
                "firstResult is 1-based and must be at least 1",
            ));
        }
        let mut rows: Vec<Vec<Value>> = self
            .rows
            .into_iter()
            .filter(|row| compiled.iter().all(|(i, f)| matches(f, &row[*i])))
            .collect();
        rows.sort_by(|a, b| {
            sorting.iter().fold(Ordering::Equal, |acc, (i, desc)| {
                acc.then_with(|| {
                    if *desc {
                        compare(&b[*i], &a[*i])
                    } else {
                        compare(&a[*i], &b[*i])
                    }
                })
            })
        });
        let available = rows.len() as i64;
        let page_rows: Vec<Vec<Value>> = rows
            .into_iter()
            .skip((first - 1) as usize)
            .take(page_size as usize)
            .collect();
        let page_ids: Vec<String> = page_rows
            .iter()
            .filter_map(|row| row.first())
            .map(|id| match id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        let page: Vec<Vec<Value>> = page_rows
            .iter()
            .map(|row| selected.iter().map(|i| row[*i].clone()).collect())
            .collect();
        let mut reference = self.reference;
        for (name, by_row) in self.row_reference {
            let on_page: BTreeMap<String, Value> = page_ids
                .iter()
                .filter_map(|id| by_row.get(id).map(|v| (id.clone(), v.clone())))
                .collect();
            if !on_page.is_empty() {
                reference.insert(name, on_page);
            }
        }
        let returned = page.len() as i64;
        let last = first + returned - 1;
        let meta = SearchMetaData {
            results_available: Some(available),
            results_returned: Some(returned),
            first_result: Some(first),
            last_result: Some(last),
            more_pages_available: Some(last < available),
            columns: Some(
                selected
                    .iter()
                    .map(|i| column_meta(&self.cols[*i]))
                    .collect(),
            ),
            sorting: Some(
                sorting
                    .iter()
                    .map(|(i, desc)| SearchSorting {
                        filterable: Some(column_meta(&self.cols[*i])),
                        direction: Some(if *desc {
                            SearchSortingDirection::Desc
                        } else {
                            SearchSortingDirection::Asc
                        }),
                    })
                    .collect(),
            ),
        };
        Ok(SearchEnvelope {
            response: SearchResults {
                results: Some(page),
                meta_data: Some(meta),
            },
            // Always present, `{}` when empty, as in every recorded search answer.
            reference: Some(reference),
        })
    }
}

/// The 500 for a query string the spec's `*Query` type rejects.
pub fn bad_query(message: String) -> Reply {
    Reply::bad_filter(format!("Could not parse search parameters: {message}"))
}
