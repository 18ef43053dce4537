//! Column values: one binlog value of one column → a [`FieldValue`] (SPEC §6), and the
//! document `_id` text of key values (SPEC §5).
//!
//! Pure: no I/O and no `serde_json::Value` trees. JSON text is appended straight to the
//! caller's buffer. Anything surprising in the data (a value of the wrong kind, short
//! metadata, bytes that are invalid in the column's character set) becomes a
//! [`ValueError`], never a panic and never a silent replacement. The caller adds the
//! table, column and binlog position.
//!
//! What mysql_common 0.37 (`binlog/value.rs`) hands us, and what we make of it:
//!
//! | column type | `BinlogValue::Value(..)` | here |
//! | --- | --- | --- |
//! | TINY, SHORT, LONG, LONGLONG | `Int` / `UInt` (by the unsigned flag) | `Int` / `UInt` |
//! | INT24 | `Int`, negatives not sign-extended (fixed here) | `Int` / `UInt` |
//! | FLOAT / DOUBLE | `Float` / `Double` | `Float` / `Double` |
//! | NEWDECIMAL | `Bytes` of the exact decimal text | `Decimal` |
//! | YEAR | `Bytes("<1900 + y>")`, y = 0 for YEAR 0000 | `UInt` |
//! | BIT | `Bytes`, big-endian | `UInt` |
//! | NEWDATE | `Date(y, m, d, 0, 0, 0, 0)` | `Str` or `Null` |
//! | DATETIME2 / DATETIME | `Date(y, m, d, h, mi, s, us)` | `Str` or `Null` |
//! | TIMESTAMP2 | `Bytes("<unix s>[.<6-digit us>]")` | `Str` (UTC, `Z`) or `Null` |
//! | TIMESTAMP | `Int(unix s)` | `Str` (UTC, `Z`) or `Null` |
//! | TIME2 | `Time(neg, days, h, m, s, us)` | `Str` |
//! | VARCHAR, STRING, BLOB types | `Bytes` | `Str` (text or base64) |
//! | ENUM | `Int(index)` (1-based, 0 = invalid value) | `Str(label)`, `""` for 0 |
//! | SET | `Bytes`, little-endian bitmap | `Raw` array of labels |
//! | JSON (MySQL) | `Jsonb(..)` / `JsonDiff(..)` | `Raw` JSON text ([`super::json`]) |
//! | JSON (MariaDB: LONGTEXT + `json_valid`) | `Bytes` of text | `Raw` JSON text |
//! | GEOMETRY | `Bytes`: SRID + WKB | `Raw` GeoJSON ([`super::geo`]) |
//! | VECTOR | `Bytes`: little-endian f32s | `Raw` array of numbers |
//!
//! A NULL column arrives as `Value::NULL` (or as `None` from the caller).
//!
//! ENUM and SET labels come from the schema module ([`ColumnSpec::labels`]: table-map
//! optional metadata, else `information_schema`), and so does the MariaDB JSON flag
//! ([`ColumnSpec::json_text`]). A partial JSON update needs the before image, so
//! [`super::RowDecoder`] applies it; here it is an unexpected value. Refused as
//! [`ValueError::Unsupported`]: the old pre-5.6.4 TIME format (mysql_common reads it
//! unsigned and truncates the hours, so the result would be silently wrong), pre-5.0
//! DECIMAL, and typed arrays (never in a row image).

use mysql_common::Value;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;

use super::field::{FieldValue, ValueError, bad_metadata, kind, malformed, type_name, unexpected};
use super::numeric::{decode_bit, decode_decimal, decode_medium_int, decode_vector, decode_year};
use super::temporal::{decode_date, decode_datetime, decode_time, decode_timestamp};
use super::text::{TextCodec, decode_enum, decode_set, decode_text, text_codec, utf8};
use crate::json_string::write_json_string;
use crate::schema::{ColumnFamily, ColumnSpec};

/// Decodes one column value per SPEC §6. `None` means SQL NULL.
///
/// The column type is checked before the value, so an unsupported column fails on every
/// row, NULL or not, instead of only on the rows that happen to hold a value.
///
/// # Errors
///
/// [`ValueError::Unsupported`] for column types without a mapping, and the other variants
/// when the metadata or the value does not fit the column type.
pub fn decode_value(
    col: &ColumnSpec,
    value: Option<&BinlogValue<'_>>,
) -> Result<FieldValue, ValueError> {
    decode_resolved(col, resolve(col)?, value)
}

/// [`decode_value`] for a column already resolved (the decoder's per-schema plan).
pub(super) fn decode_resolved(
    col: &ColumnSpec,
    r: Resolved,
    value: Option<&BinlogValue<'_>>,
) -> Result<FieldValue, ValueError> {
    let ty = col.column_type;
    let value = match value {
        None | Some(BinlogValue::Value(Value::NULL)) => return Ok(FieldValue::Null),
        Some(BinlogValue::Value(value)) => value,
        Some(BinlogValue::Jsonb(jsonb)) => {
            return match r.family {
                ColumnFamily::Json => Ok(FieldValue::Raw(super::json::jsonb_to_text(jsonb)?)),
                _ => Err(unexpected(ty, "JSONB")),
            };
        }
        Some(BinlogValue::JsonDiff(_)) => return Err(unexpected(ty, "partial JSON")),
    };
    let (codec, charset) = r.text;
    match r.family {
        ColumnFamily::Integer { .. } => match value {
            Value::Int(i) => Ok(FieldValue::Int(*i)),
            Value::UInt(u) => Ok(FieldValue::UInt(*u)),
            other => Err(unexpected(ty, kind(other))),
        },
        ColumnFamily::MediumInt { unsigned } => decode_medium_int(ty, value, unsigned),
        ColumnFamily::Float => match value {
            Value::Float(f) if f.is_finite() => Ok(FieldValue::Float(*f)),
            Value::Float(f) => Err(malformed(ty, f.to_string())),
            other => Err(unexpected(ty, kind(other))),
        },
        ColumnFamily::Double => match value {
            Value::Double(d) if d.is_finite() => Ok(FieldValue::Double(*d)),
            Value::Double(d) => Err(malformed(ty, d.to_string())),
            other => Err(unexpected(ty, kind(other))),
        },
        ColumnFamily::Decimal => decode_decimal(ty, value),
        ColumnFamily::Bit => decode_bit(ty, value),
        ColumnFamily::Year => decode_year(ty, value),
        ColumnFamily::Date => decode_date(ty, value),
        ColumnFamily::DateTime { .. } => decode_datetime(ty, value, r.fsp),
        ColumnFamily::Timestamp { .. } => decode_timestamp(ty, value, r.fsp),
        ColumnFamily::Time => decode_time(ty, value, r.fsp),
        ColumnFamily::Binary | ColumnFamily::Text => {
            decode_text(ty, value, codec, charset, r.pad_to)
        }
        ColumnFamily::JsonText => match decode_text(ty, value, codec, charset, None)? {
            FieldValue::Str(text) => Ok(FieldValue::Raw(super::json::text_to_json(&text)?)),
            other => Ok(other),
        },
        ColumnFamily::Enum => decode_enum(ty, value, &col.labels),
        ColumnFamily::Set => decode_set(ty, value, &col.labels),
        ColumnFamily::Json => Err(unexpected(ty, kind(value))),
        ColumnFamily::Geometry => match value {
            Value::Bytes(bytes) => Ok(FieldValue::Raw(super::geo::geometry_to_geojson(bytes)?)),
            other => Err(unexpected(ty, kind(other))),
        },
        ColumnFamily::Vector => decode_vector(ty, value),
        // `resolve` refuses these before any value is looked at.
        ColumnFamily::OldTime | ColumnFamily::Unsupported => Err(unsupported(col)),
    }
}

/// Writes the JSON of one column value straight into `out` for the common kinds (NULL,
/// integers, UTF-8 text, MariaDB JSON text), skipping the [`FieldValue`] and its copy.
/// Returns `false`, with nothing written, for every other kind: the caller then goes
/// through [`decode_value`]. Output and errors are exactly those of [`decode_value`].
///
/// # Errors
/// As [`decode_value`].
pub fn write_direct(
    col: &ColumnSpec,
    value: Option<&BinlogValue<'_>>,
    out: &mut Vec<u8>,
) -> Result<bool, ValueError> {
    write_resolved(resolve(col)?, value, out)
}

/// [`write_direct`] for a column already resolved (the decoder's per-schema plan).
pub(super) fn write_resolved(
    r: Resolved,
    value: Option<&BinlogValue<'_>>,
    out: &mut Vec<u8>,
) -> Result<bool, ValueError> {
    let value = match value {
        None | Some(BinlogValue::Value(Value::NULL)) => {
            out.extend_from_slice(b"null");
            return Ok(true);
        }
        Some(BinlogValue::Value(value)) => value,
        Some(_) => return Ok(false),
    };
    let (codec, charset) = r.text;
    match (r.family, value) {
        (ColumnFamily::Integer { .. }, Value::Int(i)) => {
            out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
        }
        (ColumnFamily::Integer { .. }, Value::UInt(u)) => {
            out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes());
        }
        (ColumnFamily::Text, Value::Bytes(bytes)) if codec == TextCodec::Utf8 => {
            write_json_string(out, utf8(bytes, charset)?);
        }
        (ColumnFamily::JsonText, Value::Bytes(bytes)) if codec == TextCodec::Utf8 => {
            super::json::write_text_json(utf8(bytes, charset)?, out)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A column's family (the schema's one classification) with what its metadata and
/// collation decide resolved up front, so metadata problems show regardless of the row's
/// values.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resolved {
    pub(super) family: ColumnFamily,
    /// Fractional-second digits of DATETIME2, TIMESTAMP2 and TIME2; 0 for the others.
    pub(super) fsp: u8,
    /// The codec of character data and MySQL's name of its character set (for error
    /// messages); the binary codec for every other family.
    pub(super) text: (TextCodec, &'static str),
    /// BINARY(n): the byte length to restore trailing 0x00 up to.
    pub(super) pad_to: Option<usize>,
}

/// Resolves `col`'s family, refusing columns no value of which can be decoded.
pub(super) fn resolve(col: &ColumnSpec) -> Result<Resolved, ValueError> {
    let ty = col.column_type;
    let mut r = Resolved {
        family: col.family(),
        fsp: 0,
        text: (TextCodec::Binary, "binary"),
        pad_to: None,
    };
    match r.family {
        ColumnFamily::DateTime { fractional: true }
        | ColumnFamily::Timestamp { fractional: true }
        | ColumnFamily::Time => r.fsp = fsp(col)?,
        // MySQL strips trailing 0x00 from BINARY(n) in the row image; put them back.
        ColumnFamily::Binary if ty == ColumnType::MYSQL_TYPE_STRING => {
            r.pad_to =
                Some(string_max_bytes(&col.meta).ok_or_else(|| bad_metadata(ty, &col.meta))?);
        }
        ColumnFamily::Text | ColumnFamily::JsonText => r.text = text_codec(col.collation)?,
        ColumnFamily::Enum | ColumnFamily::Set if col.labels.is_empty() => {
            return Err(ValueError::NoLabels {
                column_type: type_name(ty),
            });
        }
        ColumnFamily::OldTime | ColumnFamily::Unsupported => return Err(unsupported(col)),
        _ => {}
    }
    Ok(r)
}

/// The refusal of a column type without a mapping.
fn unsupported(col: &ColumnSpec) -> ValueError {
    let column_type = match col.family() {
        ColumnFamily::OldTime => "TIME (pre-5.6.4 format)".to_owned(),
        _ => type_name(col.column_type).to_owned(),
    };
    ValueError::Unsupported { column_type }
}

/// Fractional-second precision of DATETIME2/TIME2/TIMESTAMP2: metadata byte 0, 0..=6.
fn fsp(col: &ColumnSpec) -> Result<u8, ValueError> {
    match col.meta.first() {
        Some(&fsp) if fsp <= 6 => Ok(fsp),
        _ => Err(bad_metadata(col.column_type, &col.meta)),
    }
}

/// Maximum byte length of a MYSQL_TYPE_STRING column, decoded from its two metadata bytes
/// exactly as mysql_common's `BinlogValue::deserialize` does (long CHAR lengths keep two
/// extra bits XOR-ed into the real-type byte, MySQL bug #37426).
pub(super) fn string_max_bytes(meta: &[u8]) -> Option<usize> {
    let byte0 = usize::from(*meta.first()?);
    let byte1 = usize::from(*meta.get(1)?);
    Some(if byte0 == 0 {
        byte1 << 8
    } else if byte0 & 0x30 != 0x30 {
        byte1 | (((byte0 & 0x30) ^ 0x30) << 4)
    } else {
        byte1
    })
}
