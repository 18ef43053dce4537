//! Copied SQL rows → documents, with the stream's value mapping.

use mysql_async::Value;

use crate::decode::RowDecoder;
use crate::document::RowShape;
use crate::document::shape::root_key;
use crate::ordering::{DocChange, Op};
use crate::scan;
use crate::schema::TableSchema;

/// Decodes SQL rows into documents with the stream's value mapping; with `shape` (a rule
/// with SPEC §9 keys) rows that are not documents are skipped, the rest shaped and routed,
/// and a rule with relations asks for each root document by the key values as read.
pub(super) fn decode_rows(
    decoder: &mut RowDecoder,
    schema: &TableSchema,
    shape: Option<&RowShape>,
    rows: Vec<Vec<Value>>,
) -> Result<Vec<DocChange>, RowError> {
    let mut docs = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(shape) = shape {
            let image = scan::row_image(schema, row)?;
            let values = RowDecoder::decode_values(schema, &image, None)?;
            // The key as the stream gives it (decoded, then as parameters): the values as
            // read would not compare equal for temporal or BIT keys.
            docs.extend(shape.write(schema, &values, || root_key(schema, &values)));
            continue;
        }
        let image = scan::row_image(schema, row)?;
        let doc = decoder.decode_row(schema, &image, None)?;
        docs.push(DocChange {
            id: doc.id,
            op: Op::Index(doc.source),
            routing: None,
        });
    }
    Ok(docs)
}

/// A copied row that cannot become a document.
#[derive(Debug, thiserror::Error)]
pub(super) enum RowError {
    /// A value the table's columns do not allow.
    #[error(transparent)]
    Image(#[from] scan::RowImageError),
    /// A value the stream's decoder refuses as well.
    #[error(transparent)]
    Decode(#[from] crate::decode::DecodeError),
}
