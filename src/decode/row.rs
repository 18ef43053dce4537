//! Row images of a rows event, split into per-column values.
//!
//! `mysql_common` can iterate rows too, but it rebuilds column descriptors for
//! every row and decodes negative `TIME(1|2)` fractions with an unsigned
//! subtraction (a panic in debug builds, a wrong value in release). Splitting the
//! images here keeps both out of our path: TIME2 is decoded below, every other
//! type by `mysql_common`'s value parser after its metadata was checked.

use bitvec::slice::BitSlice;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;
use mysql_common::value::Value;

use crate::schema::ColumnSpec;

/// Why a row image cannot be split.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// Fewer bytes than the image needs.
    #[error("row image ends early")]
    Truncated,
    /// A column the schema has is missing from the image.
    #[error(
        "column `{column}` is missing from the row image; binlog_row_image must be FULL \
         (SET GLOBAL binlog_row_image = 'FULL')"
    )]
    NotFull {
        /// The column.
        column: String,
    },
    /// The image has more columns than the schema.
    #[error("row image has {got} columns, the table {expected}")]
    Shape {
        /// Columns in the event.
        got: usize,
        /// Columns in the schema.
        expected: usize,
    },
    /// Metadata too short for the column's type.
    #[error("column `{column}` has table-map metadata {meta:?}, too short for its type")]
    Metadata {
        /// The column.
        column: String,
        /// The bytes.
        meta: Vec<u8>,
    },
    /// The value bytes do not parse.
    #[error("column `{column}`: {message}")]
    Value {
        /// The column.
        column: String,
        /// Parser message.
        message: String,
    },
}

/// Metadata bytes a type needs before `mysql_common` may index into them.
pub(super) fn meta_len(t: ColumnType) -> usize {
    use ColumnType::*;
    match t {
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_BIT
        | MYSQL_TYPE_NEWDECIMAL
        | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_SET => 2,
        MYSQL_TYPE_BLOB
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_GEOMETRY
        | MYSQL_TYPE_VECTOR
        | MYSQL_TYPE_TIMESTAMP2
        | MYSQL_TYPE_DATETIME2
        | MYSQL_TYPE_TIME2
        | MYSQL_TYPE_TYPED_ARRAY => 1,
        _ => 0,
    }
}

/// Reads one row image: the null bitmap of the present columns, then their values.
/// Returns one entry per schema column; `None` is SQL NULL.
///
/// # Errors
/// A truncated or malformed image, or one that is not FULL.
pub fn read_image<'a>(
    buf: &mut ParseBuf<'a>,
    columns: &'a [ColumnSpec],
    present: &BitSlice<u8>,
    partial_json: bool,
) -> Result<Vec<Option<BinlogValue<'a>>>, RowError> {
    if present.len() != columns.len() {
        return Err(RowError::Shape {
            got: present.len(),
            expected: columns.len(),
        });
    }
    // MySQL's PARTIAL_UPDATE_ROWS after image starts with value options and a
    // bitmap of the JSON columns that carry a diff instead of a full value.
    let mut partial_bits: Option<Vec<bool>> = None;
    if partial_json {
        let options = buf.checked_eat_lenenc_int().ok_or(RowError::Truncated)?;
        if options & 1 != 0 {
            let json_cols = columns
                .iter()
                .filter(|c| c.column_type == ColumnType::MYSQL_TYPE_JSON)
                .count();
            let bytes = buf
                .checked_eat(json_cols.div_ceil(8))
                .ok_or(RowError::Truncated)?;
            let bits = BitSlice::<u8>::from_slice(bytes);
            partial_bits = Some(bits.iter().take(json_cols).map(|b| *b).collect());
        }
    }
    let n_present = present.count_ones();
    if n_present != columns.len() {
        let missing = present.iter_zeros().next().unwrap_or(0);
        return Err(RowError::NotFull {
            column: columns
                .get(missing)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
        });
    }
    let null_bytes = buf
        .checked_eat(n_present.div_ceil(8))
        .ok_or(RowError::Truncated)?;
    let mut out = Vec::with_capacity(columns.len());
    let mut json_idx = 0;
    for (i, col) in columns.iter().enumerate() {
        let is_json = col.column_type == ColumnType::MYSQL_TYPE_JSON;
        let is_partial = is_json
            && partial_bits
                .as_ref()
                .is_some_and(|b| b.get(json_idx).copied().unwrap_or(false));
        if is_json {
            json_idx += 1;
        }
        // Every column is present (checked above), so image and table order agree.
        let null = null_bytes.get(i / 8).is_none_or(|b| b >> (i % 8) & 1 == 1);
        if null {
            out.push(None);
            continue;
        }
        out.push(Some(read_value(buf, col, is_partial)?));
    }
    Ok(out)
}

/// Reads one non-NULL value of `col` (metadata checked, bytes mysql_common would mishandle
/// refused first).
///
/// # Errors
/// Short metadata, a refused or truncated value.
pub(super) fn read_value<'a>(
    buf: &mut ParseBuf<'a>,
    col: &'a ColumnSpec,
    is_partial: bool,
) -> Result<BinlogValue<'a>, RowError> {
    // mysql_common computes `precision - scale` for NEWDECIMAL: a scale above the
    // precision would underflow (a panic), so such metadata is refused here.
    let bad_decimal = col.column_type == ColumnType::MYSQL_TYPE_NEWDECIMAL
        && matches!(col.meta.as_slice(), [precision, scale, ..] if scale > precision);
    if col.meta.len() < meta_len(col.column_type) || bad_decimal {
        return Err(RowError::Metadata {
            column: col.name.clone(),
            meta: col.meta.clone(),
        });
    }
    if let Some(message) = precheck(col, buf.0) {
        return Err(RowError::Value {
            column: col.name.clone(),
            message,
        });
    }
    if col.column_type == ColumnType::MYSQL_TYPE_TIME2 {
        read_time2(buf, col.meta[0]).ok_or(RowError::Truncated)
    } else {
        buf.parse::<BinlogValue<'a>>((col.column_type, &col.meta[..], col.unsigned, is_partial))
            .map_err(|e| RowError::Value {
                column: col.name.clone(),
                message: e.to_string(),
            })
    }
}

/// Rejects value bytes that `mysql_common`'s parser would mishandle (found by
/// fuzzing): it would panic (debug builds: arithmetic overflow; any build: index
/// out of bounds) or, with overflow checks off, silently wrap.
fn precheck(col: &ColumnSpec, bytes: &[u8]) -> Option<String> {
    use ColumnType::*;
    match col.column_type {
        // Typed arrays only exist in multi-valued index logs, never in a table's
        // row image; their metadata names another type that is then mis-indexed.
        MYSQL_TYPE_TYPED_ARRAY => Some("typed array values are not supported".into()),
        // DATETIME2 is stored with a bias that sets the top bit for every valid
        // value (the zero date included); without it the packed value overflows.
        MYSQL_TYPE_DATETIME2 => match bytes.first() {
            Some(b) if b & 0x80 != 0 => None,
            Some(_) => Some("DATETIME value without its sign bias".into()),
            None => None,
        },
        MYSQL_TYPE_NEWDECIMAL => match col.meta.as_slice() {
            [precision, scale, ..] => decimal_groups_ok(bytes, *precision, *scale)
                .then_some(())
                .map_or(Some("DECIMAL digit group out of range".into()), |()| None),
            _ => None,
        },
        _ => None,
    }
}

/// Bytes per partial group of 0..=9 decimal digits in MySQL's binary DECIMAL.
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// Whether every digit group of a binary DECIMAL(precision, scale) is below its
/// power of ten, as MySQL's `decimal_bin2dec` requires. Too few bytes is left to
/// the parser (it reports a truncated value).
fn decimal_groups_ok(bytes: &[u8], precision: u8, scale: u8) -> bool {
    let (precision, scale) = (usize::from(precision), usize::from(scale));
    let Some(intg) = precision.checked_sub(scale) else {
        return false;
    };
    let (intg0, intg0x) = (intg / 9, intg % 9);
    let (frac0, frac0x) = (scale / 9, scale % 9);
    // (bytes, digits) of each group, in storage order; no allocation (this runs per value).
    let groups = std::iter::once((DIG2BYTES[intg0x], intg0x))
        .filter(|g| g.1 > 0)
        .chain(std::iter::repeat_n((4, 9), intg0 + frac0))
        .chain(std::iter::once((DIG2BYTES[frac0x], frac0x)).filter(|g| g.1 > 0));
    let size: usize = groups.clone().map(|g| g.0).sum();
    let Some(raw) = bytes.get(..size) else {
        return true;
    };
    if raw.is_empty() {
        return true;
    }
    // The first bit is the sign (set for positive); negative values store every
    // byte inverted.
    let negative = raw[0] & 0x80 == 0;
    let mut at = 0;
    for (n, digits) in groups {
        let mut v: u64 = 0;
        for (k, b) in raw[at..at + n].iter().enumerate() {
            let mut b = *b;
            if at + k == 0 {
                b ^= 0x80;
            }
            if negative {
                b = !b;
            }
            v = (v << 8) | u64::from(b);
        }
        if v >= 10u64.pow(digits as u32) {
            return false;
        }
        at += n;
    }
    true
}

/// TIME2 (MySQL 5.6.4+ packed time) with `fsp` fractional digits.
fn read_time2(buf: &mut ParseBuf<'_>, fsp: u8) -> Option<BinlogValue<'static>> {
    let (packed, size) = time2_packed(buf.0, fsp)?;
    buf.checked_eat(size)?;
    let neg = packed < 0;
    let abs = packed.unsigned_abs();
    let hms = abs >> 24;
    let hours = ((hms >> 12) % (1 << 10)) as u32;
    Some(BinlogValue::Value(Value::Time(
        neg,
        hours / 24,
        (hours % 24) as u8,
        ((hms >> 6) % (1 << 6)) as u8,
        (hms % (1 << 6)) as u8,
        (abs % (1 << 24)) as u32,
    )))
}

/// The packed TIME2 value (`hms << 24 + micros`, negative for a negative time) at the
/// front of `bytes`, and the bytes it takes.
pub(super) fn time2_packed(bytes: &[u8], fsp: u8) -> Option<(i64, usize)> {
    fn be(bytes: &[u8]) -> i64 {
        bytes.iter().fold(0i64, |acc, &b| (acc << 8) | i64::from(b))
    }
    const INT_OFS: i64 = 0x80_0000;
    let int = |bytes: &[u8]| Some(be(bytes.get(..3)?) - INT_OFS);
    Some(match fsp {
        0 => (int(bytes)? << 24, 3),
        1 | 2 => {
            let mut int = int(bytes)?;
            let mut frac = be(bytes.get(3..4)?);
            // A negative time stores its fraction as a borrow from the integer part.
            if int < 0 && frac > 0 {
                int += 1;
                frac -= 0x100;
            }
            ((int << 24) + frac * 10_000, 4)
        }
        3 | 4 => {
            let mut int = int(bytes)?;
            let mut frac = be(bytes.get(3..5)?);
            if int < 0 && frac > 0 {
                int += 1;
                frac -= 0x1_0000;
            }
            ((int << 24) + frac * 100, 5)
        }
        _ => (be(bytes.get(..6)?) - 0x8000_0000_0000, 6),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TIME2 bytes as MySQL writes them (my_time_packed_to_binary).
    fn time2_bytes(neg: bool, h: i64, m: i64, s: i64, us: i64, fsp: u8) -> Vec<u8> {
        let hms = (h << 12) | (m << 6) | s;
        let mut packed = (hms << 24) + us;
        if neg {
            packed = -packed;
        }
        let int = packed >> 24;
        let frac = packed % (1 << 24);
        let mut out = Vec::new();
        let put = |v: i64, n: usize, out: &mut Vec<u8>| {
            for k in (0..n).rev() {
                out.push((v >> (8 * k)) as u8);
            }
        };
        match fsp {
            0 => put(int + 0x80_0000, 3, &mut out),
            // The fraction is stored as a signed byte/short: C's `%` keeps the sign.
            1 | 2 => {
                put(int + 0x80_0000, 3, &mut out);
                put((frac / 10_000) & 0xff, 1, &mut out);
            }
            3 | 4 => {
                put(int + 0x80_0000, 3, &mut out);
                put((frac / 100) & 0xffff, 2, &mut out);
            }
            _ => put(packed + 0x8000_0000_0000, 6, &mut out),
        }
        out
    }

    #[test]
    fn time2_round_trips_signs_and_fractions() {
        let cases = [
            (false, 13, 45, 1, 500_000, 1),
            (true, 0, 0, 0, 500_000, 1),
            (true, 12, 30, 0, 250_000, 2),
            (true, 838, 59, 59, 0, 0),
            (true, 1, 2, 3, 456_000, 3),
            (true, 1, 2, 3, 456_789, 6),
            (false, 0, 0, 0, 0, 0),
        ];
        for (neg, h, m, s, us, fsp) in cases {
            let bytes = time2_bytes(neg, h, m, s, us, fsp);
            let mut buf = ParseBuf(&bytes);
            let got = read_time2(&mut buf, fsp).unwrap();
            assert!(buf.is_empty());
            assert_eq!(
                got,
                BinlogValue::Value(Value::Time(
                    neg,
                    (h / 24) as u32,
                    (h % 24) as u8,
                    m as u8,
                    s as u8,
                    us as u32
                )),
                "{neg} {h}:{m}:{s}.{us} fsp {fsp}"
            );
        }
        assert!(read_time2(&mut ParseBuf(&[0x80, 0]), 0).is_none());
    }

    fn spec(name: &str, t: ColumnType, meta: Vec<u8>) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            column_type: t,
            meta,
            unsigned: false,
            collation: 45,
            ..ColumnSpec::default()
        }
    }

    #[test]
    fn decimal_groups_are_checked() {
        // DECIMAL(3,3) 0.123 is one 2-byte group (3 digits): 123 = 0x007b, sign bit set.
        assert!(decimal_groups_ok(&[0x80, 0x7b], 3, 3));
        // 0xffff (after the sign bit) is 32767 > 999: a fuzzed value.
        assert!(!decimal_groups_ok(&[0xff, 0xff], 3, 3));
        // -0.123: every byte inverted.
        assert!(decimal_groups_ok(&[!0x80 & 0x7f, !0x7b], 3, 3));
        // DECIMAL(12,2) 1.50: int 10 digits = one 4-byte group + 1 digit (1 byte); frac 1 byte.
        assert!(decimal_groups_ok(&[0x80, 0, 0, 0, 1, 50], 12, 2));
        assert!(!decimal_groups_ok(&[0x80, 0, 0, 0, 1, 200], 12, 2));
        assert!(
            decimal_groups_ok(&[0x80], 12, 2),
            "short input is left to the parser"
        );
    }

    #[test]
    fn fuzz_found_inputs_are_located_errors() {
        let all = [0xffu8];
        let one = &BitSlice::<u8>::from_slice(&all)[..1];
        let cases = [
            (
                spec("d", ColumnType::MYSQL_TYPE_NEWDECIMAL, vec![3, 3]),
                vec![0u8, 0xff, 0xff],
            ),
            (
                spec("t", ColumnType::MYSQL_TYPE_DATETIME2, vec![0]),
                vec![0u8, 0, 0, 0, 0, 0],
            ),
            (
                spec("a", ColumnType::MYSQL_TYPE_TYPED_ARRAY, vec![0xfe]),
                vec![0u8, 0x0c, 0, 0, 0],
            ),
        ];
        for (col, data) in cases {
            let cols = vec![col];
            let got = read_image(&mut ParseBuf(&data), &cols, one, false);
            assert!(
                matches!(got, Err(RowError::Value { .. })),
                "{:?}: {got:?}",
                cols[0].column_type
            );
        }
    }

    #[test]
    fn images_split_with_nulls_and_refuse_partial_images() {
        let cols = vec![
            spec("a", ColumnType::MYSQL_TYPE_LONG, vec![]),
            spec("b", ColumnType::MYSQL_TYPE_VARCHAR, vec![20, 0]),
            spec("c", ColumnType::MYSQL_TYPE_LONG, vec![]),
        ];
        // null bitmap: c is NULL (bit 2); a = 7; b = "hi"
        let data = [0b100u8, 7, 0, 0, 0, 2, b'h', b'i'];
        let all = [0b111u8];
        let present = &BitSlice::<u8>::from_slice(&all)[..3];
        let mut buf = ParseBuf(&data);
        let row = read_image(&mut buf, &cols, present, false).unwrap();
        assert!(buf.is_empty());
        assert_eq!(row[0], Some(BinlogValue::Value(Value::Int(7))));
        assert_eq!(
            row[1],
            Some(BinlogValue::Value(Value::Bytes(b"hi".to_vec())))
        );
        assert_eq!(row[2], None);

        let some = [0b101u8];
        let present = &BitSlice::<u8>::from_slice(&some)[..3];
        assert!(matches!(
            read_image(&mut ParseBuf(&data), &cols, present, false),
            Err(RowError::NotFull { .. })
        ));
        assert!(matches!(
            read_image(
                &mut ParseBuf(&data[..6]),
                &cols,
                &BitSlice::<u8>::from_slice(&all)[..3],
                false
            ),
            Err(RowError::Value { .. })
        ));
        let bad_decimal = vec![spec("d", ColumnType::MYSQL_TYPE_NEWDECIMAL, vec![2, 5])];
        assert!(matches!(
            read_image(
                &mut ParseBuf(&[0u8, 0x80, 0, 0, 0]),
                &bad_decimal,
                &BitSlice::<u8>::from_slice(&all)[..1],
                false
            ),
            Err(RowError::Metadata { .. })
        ));
        let short_meta = vec![spec("v", ColumnType::MYSQL_TYPE_VARCHAR, vec![])];
        assert!(matches!(
            read_image(
                &mut ParseBuf(&[0u8, 1, b'x']),
                &short_meta,
                &BitSlice::<u8>::from_slice(&all)[..1],
                false
            ),
            Err(RowError::Metadata { .. })
        ));
    }
}
