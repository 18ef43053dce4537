//! Every row image of a rows event as decoded values: what a change of a table used inside
//! a rule's relations (SPEC §9) is looked at for, to find the documents it affects.

use mysql_common::binlog::events::RowsEventData;
use mysql_common::io::ParseBuf;

use super::field::FieldValue;
use super::row::read_image;
use super::{DecodeError, RowDecoder};
use crate::schema::TableSchema;

/// The before and after images of every row of `rows`, each as one value per column, in
/// row order (an update gives two, an insert or delete one).
///
/// # Errors
/// A row image that cannot be split, or a value that does not decode.
pub fn event_images(
    rows: &RowsEventData<'_>,
    schema: &TableSchema,
) -> Result<Vec<Vec<FieldValue>>, DecodeError> {
    let partial = matches!(rows, RowsEventData::PartialUpdateRowsEvent(_));
    let row_err = |source| DecodeError::Row {
        table: schema.qualified(),
        source,
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
        let after = match rows.columns_after_image() {
            Some(cols) => {
                Some(read_image(&mut buf, &schema.columns, cols, partial).map_err(row_err)?)
            }
            None => None,
        };
        if let Some(after) = &after {
            out.push(RowDecoder::decode_values(schema, after, before.as_deref())?);
        }
        if let Some(before) = &before {
            out.push(RowDecoder::decode_values(schema, before, None)?);
        }
    }
    Ok(out)
}
