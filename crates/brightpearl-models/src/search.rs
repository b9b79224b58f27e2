//! Decoding Brightpearl's positional search rows by column name.
//!
//! A search answers `results: [[1001, "SKU-1", ...], ...]` with the meaning of each position in
//! `metaData.columns`. The order of the columns is Brightpearl's choice (and changes with the
//! `columns` query parameter), so rows are decoded by name, never by position.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::generated::common::SearchResults;

/// A search response that cannot be decoded into rows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RowDecodeError {
    /// The response has rows but no `metaData.columns` to name them.
    #[error("search response has results but no `metaData.columns`: cannot name the values")]
    MissingColumns,
    /// A row has a different number of values than there are columns.
    #[error("search row {row} has {got} values but `metaData.columns` names {expected}")]
    RowLength {
        /// Index of the row in `results`.
        row: usize,
        /// Number of columns.
        expected: usize,
        /// Number of values in the row.
        got: usize,
    },
    /// A row does not fit the target type.
    #[error("search row {row} does not decode: {source}")]
    Row {
        /// Index of the row in `results`.
        row: usize,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

impl SearchResults {
    /// The column names, in the order the values appear in each row.
    pub fn column_names(&self) -> Vec<&str> {
        self.meta_data
            .as_ref()
            .and_then(|m| m.columns.as_ref())
            .map(|columns| {
                columns
                    .iter()
                    .map(|c| c.name.as_deref().unwrap_or(""))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Each row as a JSON object keyed by column name.
    pub fn rows_as_objects(&self) -> Result<Vec<Map<String, Value>>, RowDecodeError> {
        let rows = self.results.as_deref().unwrap_or_default();
        let names = self.column_names();
        if names.is_empty() && !rows.is_empty() {
            return Err(RowDecodeError::MissingColumns);
        }
        rows.iter()
            .enumerate()
            .map(|(index, row)| {
                if row.len() != names.len() {
                    return Err(RowDecodeError::RowLength {
                        row: index,
                        expected: names.len(),
                        got: row.len(),
                    });
                }
                Ok(names
                    .iter()
                    .map(|n| (*n).to_owned())
                    .zip(row.iter().cloned())
                    .collect())
            })
            .collect()
    }

    /// Decodes every row into `T`, matching the struct's (serde) field names to column names.
    /// Columns `T` does not name are ignored; `T`'s optional fields may be absent.
    ///
    /// ```
    /// use brightpearl_models::common::SearchResults;
    /// #[derive(serde::Deserialize)]
    /// struct Row { #[serde(rename = "productId")] id: u64, #[serde(rename = "SKU")] sku: String }
    ///
    /// let results: SearchResults = serde_json::from_str(r#"{
    ///   "results": [["A-1", 7]],
    ///   "metaData": {"columns": [{"name": "SKU"}, {"name": "productId"}]}
    /// }"#).unwrap();
    /// let rows: Vec<Row> = results.decode_rows().unwrap();
    /// assert_eq!((rows[0].id, rows[0].sku.as_str()), (7, "A-1"));
    /// ```
    pub fn decode_rows<T: DeserializeOwned>(&self) -> Result<Vec<T>, RowDecodeError> {
        self.rows_as_objects()?
            .into_iter()
            .enumerate()
            .map(|(row, object)| {
                serde_json::from_value(Value::Object(object))
                    .map_err(|source| RowDecodeError::Row { row, source })
            })
            .collect()
    }
}
