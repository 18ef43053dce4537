//! The document of an after image read straight from the event's bytes.
//!
//! `mysql_common`'s value parser copies every string into its own `Vec` and every row into
//! a `Vec` of values; for the common columns (integers, UTF-8 text and MariaDB JSON text,
//! SET, DECIMAL and the packed dates and times) this reader borrows the bytes from the event buffer and writes the JSON at once.
//! Any other column goes through the same value parser and decoder as
//! [`super::RowDecoder::decode_row`]. It never reports an error itself: on anything
//! surprising it gives up, and the caller decodes the row again through `read_image` and
//! `decode_row`, which say what is wrong. So its output is theirs or nothing.

use bitvec::slice::BitSlice;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;
use mysql_common::value::Value;

use super::fast_packed::write_packed;
use super::field::FieldValue;
use super::row::{meta_len, read_value};
use super::text::{TextCodec, utf8};
use super::value::{Resolved, decode_resolved, string_max_bytes, write_resolved};
use super::{DecodedRow, RowDecoder, plan};
use crate::json_string::{write_json_string, write_json_utf8};
use crate::schema::{ColumnFamily, ColumnSpec, TableSchema};

impl RowDecoder {
    /// The document of the (not partial) after image at `buf`, whose present columns are
    /// `present`; `None` when the caller must decode the row the long way (then `buf` is
    /// left anywhere inside the image).
    pub(super) fn decode_image<'a>(
        &mut self,
        schema: &'a TableSchema,
        buf: &mut ParseBuf<'a>,
        present: &BitSlice<u8>,
    ) -> Option<DecodedRow> {
        let columns = &schema.columns;
        if present.len() != columns.len() || present.count_ones() != columns.len() {
            return None;
        }
        let null_bytes = buf.checked_eat(columns.len().div_ceil(8))?;
        self.keys.clear();
        self.keys.resize(schema.key.len(), FieldValue::Null);
        self.out.clear();
        self.out.push(b'{');
        let plan = plan(schema);
        for (i, (col, plan)) in columns.iter().zip(plan.iter()).enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.out.extend_from_slice(&plan.prefix);
            // As in `decode_row`: the column is resolved (and may be refused) even when NULL.
            let r = plan.resolved.as_ref()?;
            let key_slot = plan.key_slot;
            if null_bytes.get(i / 8).is_none_or(|b| b >> (i % 8) & 1 == 1) {
                self.out.extend_from_slice(b"null");
                continue;
            }
            if col.meta.len() < meta_len(col.column_type) {
                return None;
            }
            let key = key_slot.and_then(|k| self.keys.get_mut(k));
            if write_borrowed(col, r, &plan.set_labels, buf, &mut self.out, key)? {
                continue;
            }
            // Every other column: mysql_common's value, then the decoder's usual path.
            let value = match read_value(buf, col, false).ok()? {
                BinlogValue::Value(Value::NULL) => None,
                BinlogValue::JsonDiff(_) => return None,
                v => Some(v),
            };
            if key_slot.is_none() && write_resolved(*r, value.as_ref(), &mut self.out).ok()? {
                continue;
            }
            let decoded = decode_resolved(col, *r, value.as_ref()).ok()?;
            decoded.write_json(&mut self.out);
            if let Some(k) = key_slot {
                *self.keys.get_mut(k)? = decoded;
            }
        }
        self.out.push(b'}');
        Some(self.finish())
    }
}

/// Writes the JSON of one non-NULL value of the kinds read here without mysql_common
/// (integers, UTF-8 text, MariaDB JSON text, SET, and through [`write_packed`] DECIMAL,
/// DATE, DATETIME2, TIMESTAMP2, TIME2), consuming its bytes. `Some(false)`:
/// another kind, nothing consumed; `None`: give up. A key column's value is also stored
/// in `key` (integers and text only; other key kinds take the long way). A SET writes its
/// labels from `set_labels`, the column's labels as JSON strings.
// Inlined: it runs for nearly every column, and out of line (where the compiler once put
// it) its calls cost more than they save.
#[inline(always)]
fn write_borrowed(
    col: &ColumnSpec,
    r: &Resolved,
    set_labels: &[Vec<u8>],
    buf: &mut ParseBuf<'_>,
    out: &mut Vec<u8>,
    key: Option<&mut FieldValue>,
) -> Option<bool> {
    use ColumnType::*;
    match r.family {
        ColumnFamily::Integer { .. } => {
            let n = match col.column_type {
                MYSQL_TYPE_TINY => 1,
                MYSQL_TYPE_SHORT => 2,
                MYSQL_TYPE_LONG => 4,
                MYSQL_TYPE_LONGLONG => 8,
                _ => return Some(false),
            };
            let bytes = buf.checked_eat(n)?;
            let mut word = [0u8; 8];
            word.get_mut(..n)?.copy_from_slice(bytes);
            let unsigned = u64::from_le_bytes(word);
            // mysql_common's reading: zero-extended when the column is unsigned, else
            // sign-extended from its width.
            let value = if col.unsigned {
                FieldValue::UInt(unsigned)
            } else {
                let shift = 64 - 8 * n as u32;
                FieldValue::Int(((unsigned << shift) as i64) >> shift)
            };
            value.write_json(out);
            if let Some(key) = key {
                *key = value;
            }
            Some(true)
        }
        ColumnFamily::Text | ColumnFamily::JsonText if r.text.0 == TextCodec::Utf8 => {
            let json = r.family == ColumnFamily::JsonText;
            if json && key.is_some() {
                return Some(false);
            }
            let bytes = string_bytes(col, buf)?;
            match key {
                // Plain text: checked while it is escaped.
                None if !json => write_json_utf8(out, bytes).ok()?,
                _ => {
                    let text = utf8(bytes, r.text.1).ok()?;
                    if json {
                        super::json::write_text_json(text, out).ok()?;
                    } else {
                        write_json_string(out, text);
                    }
                    if let Some(key) = key {
                        *key = FieldValue::Str(text.to_owned());
                    }
                }
            }
            Some(true)
        }
        ColumnFamily::Set if key.is_none() => {
            let n = usize::from(*col.meta.get(1)?);
            let bytes = buf.checked_eat(n)?;
            out.push(b'[');
            let mut first = true;
            for (byte_index, byte) in bytes.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (1 << bit) == 0 {
                        continue;
                    }
                    let label = set_labels.get(byte_index * 8 + bit)?;
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    out.extend_from_slice(label);
                }
            }
            out.push(b']');
            Some(true)
        }
        // Not for key columns: their `FieldValue` is the long path's to build.
        ColumnFamily::Decimal
        | ColumnFamily::Date
        | ColumnFamily::DateTime { .. }
        | ColumnFamily::Timestamp { .. }
        | ColumnFamily::Time
            if key.is_none() =>
        {
            match write_packed(col, r, buf.0, out) {
                Some(n) => {
                    buf.checked_eat(n)?;
                    Some(true)
                }
                None => Some(false),
            }
        }
        _ => Some(false),
    }
}

/// The bytes of a character column's value, length-prefixed as mysql_common reads it for
/// the column's type.
fn string_bytes<'a>(col: &ColumnSpec, buf: &mut ParseBuf<'a>) -> Option<&'a [u8]> {
    use ColumnType::*;
    let prefix = match col.column_type {
        MYSQL_TYPE_VARCHAR | MYSQL_TYPE_VAR_STRING => {
            let max = u16::from_le_bytes([*col.meta.first()?, *col.meta.get(1)?]);
            if max < 256 { 1 } else { 2 }
        }
        MYSQL_TYPE_STRING => {
            if string_max_bytes(&col.meta)? < 256 {
                1
            } else {
                2
            }
        }
        MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB => {
            match col.meta.first()? {
                n @ 1..=4 => usize::from(*n),
                _ => return None,
            }
        }
        _ => return None,
    };
    // Little-endian, at most 4 bytes: folded from the last, without a copy of odd length.
    let len = buf
        .checked_eat(prefix)?
        .iter()
        .rev()
        .fold(0_usize, |len, &b| len << 8 | usize::from(b));
    buf.checked_eat(len)
}
