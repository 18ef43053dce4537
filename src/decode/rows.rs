//! One rows event → the document changes it makes. This is the only path from a binlog rows
//! event to changes: the reader, the sample tests, the fuzz test and the benches all use it.

use bytes::Bytes;
use mysql_common::binlog::events::RowsEventData;
use mysql_common::io::ParseBuf;

use super::row::read_image;
use super::{DecodeError, RowDecoder};
use crate::document::RowShape;
use crate::schema::TableSchema;

/// What to do with the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or replace with this `_source` (a JSON object's text).
    Index(Bytes),
    /// Remove.
    Delete,
    /// Build the document of a rule with relations from MySQL's current rows when it is
    /// written (SPEC §9); the root row's key values say which row.
    Refresh(RootKey),
}

/// The key values of a root row, as SQL parameters for reading it again.
#[derive(Debug, Clone, PartialEq)]
pub struct RootKey(pub Vec<mysql_common::Value>);

// Key values are compared for tests only; a float key equal to itself is all that is needed.
impl Eq for RootKey {}

/// One document change a row makes: its `_id` and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocChange {
    /// The document `_id` (SPEC §5).
    pub id: String,
    /// Index a new `_source`, or delete.
    pub op: Op,
    /// `_routing` of the write or delete (SPEC §9 `routing`); `None`: no routing (and, for
    /// a refresh, the routing the re-read row gives).
    pub routing: Option<std::sync::Arc<str>>,
}

/// Decodes every row of `rows` (an event of `schema`'s table) into document changes, in
/// row order: an insert or update indexes the after image, a delete deletes the before
/// image's id, and an update that changes the key first deletes the old id. With `shape`
/// (a rule using SPEC §9 keys) the images are shaped by [`RowShape::row_change`] instead;
/// `None` is the plain path of SPEC §5.
///
/// # Errors
/// A row image that cannot be split, a missing image, or a value that does not decode;
/// the first one ends the event.
pub fn decode_rows_event(
    rows: &RowsEventData<'_>,
    schema: &TableSchema,
    decoder: &mut RowDecoder,
    shape: Option<&RowShape>,
) -> Result<Vec<DocChange>, DecodeError> {
    let (is_insert, is_delete) = match rows {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => (true, false),
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => (false, true),
        _ => (false, false),
    };
    let partial = matches!(rows, RowsEventData::PartialUpdateRowsEvent(_));
    let row_err = |source| DecodeError::Row {
        table: schema.qualified(),
        source,
    };
    let missing = |message| DecodeError::MissingImage {
        table: schema.qualified(),
        message,
    };
    let mut out = Vec::new();
    let mut buf = ParseBuf(rows.rows_data());
    while !buf.is_empty() {
        let before = match rows.columns_before_image() {
            Some(cols) => {
                Some(read_image(&mut buf, &schema.columns, cols, false).map_err(row_err)?)
            }
            None => None,
        };
        // The plain path's after image is read straight from the bytes when it can be
        // (`fast`); otherwise, and for what that reader gives up on, value by value.
        let mut fast = None;
        let after = match rows.columns_after_image() {
            Some(cols) => {
                if shape.is_none() && !is_delete && !partial {
                    let start = buf.0;
                    fast = decoder.decode_image(schema, &mut buf, cols);
                    if fast.is_none() {
                        buf = ParseBuf(start);
                    }
                }
                match fast {
                    Some(_) => None,
                    None => Some(
                        read_image(&mut buf, &schema.columns, cols, partial).map_err(row_err)?,
                    ),
                }
            }
            None => None,
        };
        if let Some(shape) = shape {
            if is_delete && before.is_none() {
                return Err(missing("delete without before image"));
            }
            if !is_delete && after.is_none() {
                return Err(missing("row change without after image"));
            }
            let old = match (&before, is_insert) {
                (Some(b), false) => Some(RowDecoder::decode_values(schema, b, None)?),
                _ => None,
            };
            let new = match (&after, is_delete) {
                (Some(a), false) => Some(RowDecoder::decode_values(schema, a, before.as_deref())?),
                _ => None,
            };
            shape.row_change(schema, old.as_deref(), new.as_deref(), &mut out);
            continue;
        }
        if is_delete {
            let before = before.ok_or_else(|| missing("delete without before image"))?;
            out.push(DocChange {
                id: decoder.decode_id(schema, &before)?,
                op: Op::Delete,
                routing: None,
            });
            continue;
        }
        let doc = match fast {
            Some(doc) => doc,
            None => {
                let after = after.ok_or_else(|| missing("row change without after image"))?;
                decoder.decode_row(schema, &after, before.as_deref())?
            }
        };
        if !is_insert && let Some(before) = before {
            let old = decoder.decode_id(schema, &before)?;
            if old != doc.id {
                out.push(DocChange {
                    id: old,
                    op: Op::Delete,
                    routing: None,
                });
            }
        }
        out.push(DocChange {
            id: doc.id,
            op: Op::Index(doc.source),
            routing: None,
        });
    }
    Ok(out)
}
