//! Stage 2: row images to documents (SPEC §5, §6). Pure: no I/O.
//!
//! A row becomes an `_id` (the key columns' text forms, joined per §5) and a
//! `_source` JSON object with one field per column, written straight into a byte
//! buffer without building JSON trees.
//!
//! Entry points: [`rows::decode_rows_event`] (a rows event → document changes, the path the
//! reader takes), [`RowDecoder`] (one row) and [`value::decode_value`] (one value, dispatched
//! by the schema's column family to `numeric`, `temporal`, `text` (character sets, ENUM,
//! SET), [`json`] and [`geo`]). [`crate::json_string`] writes JSON strings ([`write_json_string`]), [`id`]
//! builds the `_id`.

mod decimal;
mod fast;
mod fast_packed;
pub mod field;
pub mod geo;
pub mod id;
pub mod images;
pub mod json;
mod numeric;
pub mod row;
pub mod rows;
mod temporal;
mod text;
pub mod value;

#[cfg(test)]
mod tests;

pub use crate::json_string::write_json_string;
pub use text::decode_label;

use std::borrow::Cow;

use bytes::Bytes;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::value::Value;

use crate::schema::TableSchema;
use field::{FieldValue, ValueError};
use id::doc_id;
use value::{Resolved, decode_resolved, decode_value, resolve, write_resolved};

/// A value that cannot be turned into JSON, located by table and column.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// One column's value.
    #[error("cannot decode column `{column}` of `{table}`: {source}")]
    Value {
        /// `db.table`.
        table: String,
        /// Column name.
        column: String,
        /// What is wrong.
        source: ValueError,
    },
    /// The row image does not have the table's shape.
    #[error("row image of `{table}` has {got} columns, the table map {expected}")]
    Shape {
        /// `db.table`.
        table: String,
        /// Columns in the image.
        got: usize,
        /// Columns in the schema.
        expected: usize,
    },
    /// The event lacks the image its kind needs.
    #[error("rows event of `{table}`: {message}")]
    MissingImage {
        /// `db.table`.
        table: String,
        /// Which image is missing, e.g. "delete without before image".
        message: &'static str,
    },
    /// The row image bytes cannot be split into values.
    #[error("row image of `{table}`: {source}")]
    Row {
        /// `db.table`.
        table: String,
        /// What is wrong.
        source: row::RowError,
    },
}

/// One row image: a value per column, `None` for SQL NULL.
pub type RowValues<'a> = [Option<BinlogValue<'a>>];

fn value_at<'r, 'a>(row: &'r RowValues<'a>, i: usize) -> Option<&'r BinlogValue<'a>> {
    match row.get(i) {
        None | Some(None) | Some(Some(BinlogValue::Value(Value::NULL))) => None,
        Some(Some(v)) => Some(v),
    }
}

/// The new value of a JSON column from its before-image value and MySQL's diff operations.
fn partial_json(
    before: Option<&RowValues<'_>>,
    i: usize,
    diffs: &[mysql_common::binlog::jsondiff::JsonDiff<'_>],
) -> Result<FieldValue, ValueError> {
    let message = |m: &str| {
        ValueError::from(json::JsonError::Diff {
            op: "partial update",
            path: "$".to_owned(),
            message: m.to_owned(),
        })
    };
    match before.and_then(|b| value_at(b, i)) {
        Some(BinlogValue::Jsonb(old)) => Ok(FieldValue::Raw(json::apply_diffs(old, diffs)?)),
        Some(_) => Err(message(
            "the before image holds no binary JSON for the column",
        )),
        None => Err(message(
            "the before image is missing or NULL; binlog_row_image must be FULL",
        )),
    }
}

/// What decoding needs of one column, derived once per schema ([`plan`]).
#[derive(Clone)]
struct ColumnPlan {
    /// The `"name":` JSON prefix of the column's field.
    prefix: Vec<u8>,
    /// The column resolved; `None` when it is refused (the long path says why).
    resolved: Option<Resolved>,
    /// The column's place in the key, for a key column.
    key_slot: Option<usize>,
    /// The labels of a SET column as JSON strings (empty for other columns).
    set_labels: Vec<Vec<u8>>,
}

/// The plan of each column of `schema`, built on its first row and kept with the schema
/// (so a changed table, which gets a new schema, never meets an old plan).
fn plan(schema: &TableSchema) -> Cow<'_, [ColumnPlan]> {
    let build = || -> Vec<ColumnPlan> {
        schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut prefix = Vec::with_capacity(c.name.len() + 3);
                write_json_string(&mut prefix, &c.name);
                prefix.push(b':');
                let resolved = resolve(c).ok();
                let set_labels = match resolved {
                    Some(Resolved {
                        family: crate::schema::ColumnFamily::Set,
                        ..
                    }) => c
                        .labels
                        .iter()
                        .map(|label| {
                            let mut json = Vec::with_capacity(label.len() + 2);
                            write_json_string(&mut json, label);
                            json
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                ColumnPlan {
                    prefix,
                    resolved,
                    key_slot: schema.key.iter().position(|&k| k == i),
                    set_labels,
                }
            })
            .collect()
    };
    // The cache holds nothing else; were it to, the plan is built for this row alone.
    match schema.decoder_cache.get_or_init(build) {
        Some(plan) => Cow::Borrowed(plan.as_slice()),
        None => Cow::Owned(build()),
    }
}

/// A decoded row: document id and `_source` JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRow {
    /// `_id` per SPEC §5.
    pub id: String,
    /// `_source` JSON object text.
    pub source: Bytes,
}

/// Reusable buffers for [`RowDecoder::decode_row`], so steady streaming does not allocate per field.
#[derive(Default)]
pub struct RowDecoder {
    /// The key columns' values, in key order.
    keys: Vec<FieldValue>,
    out: Vec<u8>,
}

impl RowDecoder {
    /// Decodes `row` of `schema` into a document. `before` is the row's before
    /// image for updates (partial JSON updates are applied to it).
    ///
    /// # Errors
    /// A value that does not decode, located by table and column.
    pub fn decode_row(
        &mut self,
        schema: &TableSchema,
        row: &RowValues<'_>,
        before: Option<&RowValues<'_>>,
    ) -> Result<DecodedRow, DecodeError> {
        if row.len() != schema.columns.len() {
            return Err(DecodeError::Shape {
                table: schema.qualified(),
                got: row.len(),
                expected: schema.columns.len(),
            });
        }
        self.keys.clear();
        self.keys.resize(schema.key.len(), FieldValue::Null);
        self.out.clear();
        self.out.push(b'{');
        let plan = plan(schema);
        for (i, (col, plan)) in schema.columns.iter().zip(plan.iter()).enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(&plan.prefix);
            let v = value_at(row, i);
            let located = |source| DecodeError::Value {
                table: schema.qualified(),
                column: col.name.clone(),
                source,
            };
            let key_slot = plan.key_slot;
            // A refused column is resolved again, for its error.
            let r = plan
                .resolved
                .map_or_else(|| resolve(col), Ok)
                .map_err(located)?;
            // Most values are written straight into the document; key values also make
            // the `_id`, so they are kept.
            if key_slot.is_none() && write_resolved(r, v, &mut self.out).map_err(located)? {
                continue;
            }
            let decoded = match v {
                // MySQL partial JSON update: the diff applies to the before image's value.
                Some(BinlogValue::JsonDiff(diffs)) => partial_json(before, i, diffs),
                _ => decode_resolved(col, r, v),
            }
            .map_err(located)?;
            decoded.write_json(&mut self.out);
            if let Some(k) = key_slot {
                self.keys[k] = decoded;
            }
        }
        self.out.push(b'}');
        Ok(self.finish())
    }

    /// The document of the row just written: `_id` from the kept key values, `_source`
    /// from the buffer.
    fn finish(&mut self) -> DecodedRow {
        // A single key (the usual case) needs no list of parts: its text is the `_id`, and
        // a string key's text is taken as it is.
        let id = match self.keys.as_mut_slice() {
            [FieldValue::Str(text)] => std::mem::take(text),
            [single] => {
                // Room for any integer: no growing on the way.
                let mut id = String::with_capacity(24);
                single.write_id_text(&mut id);
                id
            }
            keys => doc_id(&keys.iter().collect::<Vec<_>>()),
        };
        DecodedRow {
            id,
            source: Bytes::copy_from_slice(&self.out),
        }
    }

    /// Every column's value of `row` (SPEC §6), for rules that shape documents: partial
    /// JSON updates apply to `before` as in [`Self::decode_row`].
    ///
    /// # Errors
    /// A value that does not decode, located by table and column.
    pub fn decode_values(
        schema: &TableSchema,
        row: &RowValues<'_>,
        before: Option<&RowValues<'_>>,
    ) -> Result<Vec<FieldValue>, DecodeError> {
        if row.len() != schema.columns.len() {
            return Err(DecodeError::Shape {
                table: schema.qualified(),
                got: row.len(),
                expected: schema.columns.len(),
            });
        }
        schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, col)| {
                let v = value_at(row, i);
                match v {
                    Some(BinlogValue::JsonDiff(diffs)) => partial_json(before, i, diffs),
                    _ => decode_value(col, v),
                }
                .map_err(|source| DecodeError::Value {
                    table: schema.qualified(),
                    column: col.name.clone(),
                    source,
                })
            })
            .collect()
    }

    /// The `_id` of a row from its decoded values (the key columns' values, SPEC §5).
    pub fn id_of_values(schema: &TableSchema, values: &[FieldValue]) -> String {
        let parts: Vec<&FieldValue> = schema
            .key
            .iter()
            .map(|&k| values.get(k).unwrap_or(&FieldValue::Null))
            .collect();
        doc_id(&parts)
    }

    /// Only the `_id` of `row` (for the before image of an update or a delete).
    ///
    /// # Errors
    /// A key value that does not decode.
    pub fn decode_id(
        &mut self,
        schema: &TableSchema,
        row: &RowValues<'_>,
    ) -> Result<String, DecodeError> {
        let mut parts = Vec::with_capacity(schema.key.len());
        for &k in &schema.key {
            let col = schema.columns.get(k).ok_or_else(|| DecodeError::Shape {
                table: schema.qualified(),
                got: row.len(),
                expected: schema.columns.len(),
            })?;
            let v = value_at(row, k);
            parts.push(decode_value(col, v).map_err(|source| DecodeError::Value {
                table: schema.qualified(),
                column: col.name.clone(),
                source,
            })?);
        }
        let refs: Vec<&FieldValue> = parts.iter().collect();
        Ok(doc_id(&refs))
    }
}
