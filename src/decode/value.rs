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

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use encoding_rs::Encoding;
use mysql_common::Value;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::collations::{Collation, CollationId};
use mysql_common::constants::ColumnType;

/// One column as the decoder needs it (built by the schema module from the table map event).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    /// Column name; becomes the `_source` field name.
    pub name: String,
    /// Real type (ENUM/SET already resolved from MYSQL_TYPE_STRING by TableMapEvent::get_column_type).
    pub column_type: ColumnType,
    /// Raw table-map metadata bytes for this column (TableMapEvent::get_column_metadata).
    pub meta: Vec<u8>,
    /// UNSIGNED flag (table map optional metadata SIGNEDNESS); matters for MEDIUMINT only,
    /// as mysql_common already applies it to the other integer types.
    pub unsigned: bool,
    /// Collation id from the table map's optional metadata (0 = unknown → treat as utf8mb4).
    pub collation: u16,
    /// ENUM / SET labels in definition order, already decoded by the column's character set
    /// (table-map ENUM_STR_VALUE / SET_STR_VALUE, or information_schema COLUMN_TYPE).
    /// Empty for other types.
    pub labels: Vec<String>,
    /// A text column holding JSON (MariaDB's JSON alias: LONGTEXT with a `json_valid` check),
    /// written as the JSON value instead of a string.
    pub json_text: bool,
}

impl Default for ColumnSpec {
    /// An unnamed column of unknown type; for struct-update syntax in tests and benches.
    fn default() -> Self {
        ColumnSpec {
            name: String::new(),
            column_type: ColumnType::MYSQL_TYPE_NULL,
            meta: Vec::new(),
            unsigned: false,
            collation: 0,
            labels: Vec::new(),
            json_text: false,
        }
    }
}

/// A decoded column value, ready to be written as JSON. Exact: no float round trips for DECIMAL.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// A JSON number kept as its exact decimal text (DECIMAL), e.g. "1.50", "-0.001".
    Decimal(String),
    /// Text, a temporal value in its SPEC §6 form, or base64 of binary bytes.
    Str(String),
    /// Complete, compact JSON text written as it is (SET arrays, JSON documents, GeoJSON,
    /// VECTOR arrays).
    Raw(String),
}

/// What is wrong with one column value. The caller adds table, column and position.
#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    /// The column type has no mapping yet (ENUM, SET, JSON, GEOMETRY, VECTOR, …).
    #[error("{column_type} columns are not supported")]
    Unsupported { column_type: String },
    /// The table-map metadata is too short or out of range for the column type.
    #[error("{column_type} column has unexpected table-map metadata {meta:?}")]
    BadMetadata {
        column_type: &'static str,
        meta: Vec<u8>,
    },
    /// The binlog value is not of the kind this column type produces.
    #[error("{column_type} column holds an unexpected {found} value")]
    UnexpectedValue {
        column_type: &'static str,
        found: &'static str,
    },
    /// The value has the right kind but impossible content (bad decimal text, month 13, …).
    #[error("{column_type} value {value:?} is malformed")]
    Malformed {
        column_type: &'static str,
        value: String,
    },
    /// The bytes are not valid in the column's character set.
    #[error("bytes are not valid {charset}{}", at_offset(*offset))]
    InvalidText {
        charset: &'static str,
        offset: Option<usize>,
    },
    /// The collation is known but its character set has no decoder here.
    #[error("character set {charset} (collation id {collation}) has no decoder")]
    UnsupportedCharset { collation: u16, charset: String },
    /// Neither MySQL nor MariaDB (as far as we know) uses this collation id.
    #[error("unknown collation id {collation}")]
    UnknownCollation { collation: u16 },
    /// ENUM/SET labels are unknown (no optional metadata and no catalog answer).
    #[error(
        "{column_type} labels are unknown; set binlog_row_metadata=FULL on the server \
         (or let binlog2es read information_schema.COLUMNS)"
    )]
    NoLabels { column_type: &'static str },
    /// An ENUM index or SET bit beyond the known labels.
    #[error("{column_type} value {value} has no label among the {labels} known")]
    NoSuchLabel {
        column_type: &'static str,
        value: u64,
        labels: usize,
    },
    /// A JSON document that cannot be written (malformed JSONB, invalid MariaDB JSON text, a
    /// partial update that does not fit).
    /// (Boxed: it is the largest variant, and decode errors travel inside every reader error.)
    #[error(transparent)]
    Json(Box<super::json::JsonError>),
    /// A geometry that cannot be written as GeoJSON.
    #[error("GEOMETRY: {0}")]
    Geometry(#[from] super::geo::GeoError),
}

impl From<super::json::JsonError> for ValueError {
    fn from(e: super::json::JsonError) -> Self {
        ValueError::Json(Box::new(e))
    }
}

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
    let ty = col.column_type;
    let family = family_of(col)?;
    let value = match value {
        None | Some(BinlogValue::Value(Value::NULL)) => return Ok(FieldValue::Null),
        Some(BinlogValue::Value(value)) => value,
        Some(BinlogValue::Jsonb(jsonb)) => {
            return match family {
                Family::Json => Ok(FieldValue::Raw(super::json::jsonb_to_text(jsonb)?)),
                _ => Err(unexpected(ty, "JSONB")),
            };
        }
        Some(BinlogValue::JsonDiff(_)) => return Err(unexpected(ty, "partial JSON")),
    };
    match family {
        Family::Integer => match value {
            Value::Int(i) => Ok(FieldValue::Int(*i)),
            Value::UInt(u) => Ok(FieldValue::UInt(*u)),
            other => Err(unexpected(ty, kind(other))),
        },
        Family::MediumInt { unsigned } => decode_medium_int(ty, value, unsigned),
        Family::Float => match value {
            Value::Float(f) if f.is_finite() => Ok(FieldValue::Float(*f)),
            Value::Float(f) => Err(malformed(ty, f.to_string())),
            other => Err(unexpected(ty, kind(other))),
        },
        Family::Double => match value {
            Value::Double(d) if d.is_finite() => Ok(FieldValue::Double(*d)),
            Value::Double(d) => Err(malformed(ty, d.to_string())),
            other => Err(unexpected(ty, kind(other))),
        },
        Family::Decimal => decode_decimal(ty, value),
        Family::Bit => decode_bit(ty, value),
        Family::Year => decode_year(ty, value),
        Family::Date => decode_date(ty, value),
        Family::DateTime { fsp } => decode_datetime(ty, value, fsp),
        Family::Timestamp { fsp } => decode_timestamp(ty, value, fsp),
        Family::Time { fsp } => decode_time(ty, value, fsp),
        Family::Text {
            codec,
            charset,
            pad_to,
        } => decode_text(ty, value, codec, charset, pad_to),
        Family::JsonText { codec, charset } => {
            match decode_text(ty, value, codec, charset, None)? {
                FieldValue::Str(text) => Ok(FieldValue::Raw(super::json::text_to_json(&text)?)),
                other => Ok(other),
            }
        }
        Family::Enum => decode_enum(ty, value, &col.labels),
        Family::Set => decode_set(ty, value, &col.labels),
        Family::Json => Err(unexpected(ty, kind(value))),
        Family::Geometry => match value {
            Value::Bytes(bytes) => Ok(FieldValue::Raw(super::geo::geometry_to_geojson(bytes)?)),
            other => Err(unexpected(ty, kind(other))),
        },
        Family::Vector => decode_vector(ty, value),
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
    let family = family_of(col)?;
    let value = match value {
        None | Some(BinlogValue::Value(Value::NULL)) => {
            out.extend_from_slice(b"null");
            return Ok(true);
        }
        Some(BinlogValue::Value(value)) => value,
        Some(_) => return Ok(false),
    };
    match (family, value) {
        (Family::Integer, Value::Int(i)) => {
            out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes());
        }
        (Family::Integer, Value::UInt(u)) => {
            out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes());
        }
        (
            Family::Text {
                codec: TextCodec::Utf8,
                charset,
                pad_to: None,
            },
            Value::Bytes(bytes),
        ) => {
            write_json_string(out, utf8(bytes, charset)?);
        }
        (
            Family::JsonText {
                codec: TextCodec::Utf8,
                charset,
            },
            Value::Bytes(bytes),
        ) => {
            super::json::write_text_json(utf8(bytes, charset)?, out)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// `bytes` as UTF-8 text of a column in `charset` (utf8mb3/utf8mb4).
fn utf8<'b>(bytes: &'b [u8], charset: &'static str) -> Result<&'b str, ValueError> {
    std::str::from_utf8(bytes).map_err(|e| ValueError::InvalidText {
        charset,
        offset: Some(e.valid_up_to()),
    })
}

/// ENUM: the 1-based index of the label; 0 is MySQL's invalid-value marker (`''`).
fn decode_enum(ty: ColumnType, value: &Value, labels: &[String]) -> Result<FieldValue, ValueError> {
    let index = match value {
        Value::Int(i) => u64::try_from(*i).map_err(|_| malformed(ty, i.to_string()))?,
        Value::UInt(u) => *u,
        other => return Err(unexpected(ty, kind(other))),
    };
    if index == 0 {
        return Ok(FieldValue::Str(String::new()));
    }
    usize::try_from(index - 1)
        .ok()
        .and_then(|i| labels.get(i))
        .map(|label| FieldValue::Str(label.clone()))
        .ok_or(ValueError::NoSuchLabel {
            column_type: type_name(ty),
            value: index,
            labels: labels.len(),
        })
}

/// SET: a little-endian bitmap, bit i = label i; written as an array in definition order.
fn decode_set(ty: ColumnType, value: &Value, labels: &[String]) -> Result<FieldValue, ValueError> {
    let Value::Bytes(bytes) = value else {
        return Err(unexpected(ty, kind(value)));
    };
    let mut out = Vec::with_capacity(2 + bytes.len() * 8);
    out.push(b'[');
    let mut first = true;
    for (byte_index, byte) in bytes.iter().enumerate() {
        for bit in 0..8 {
            if byte & (1 << bit) == 0 {
                continue;
            }
            let i = byte_index * 8 + bit;
            let label = labels.get(i).ok_or(ValueError::NoSuchLabel {
                column_type: type_name(ty),
                value: i as u64 + 1,
                labels: labels.len(),
            })?;
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_string(&mut out, label);
        }
    }
    out.push(b']');
    String::from_utf8(out)
        .map(FieldValue::Raw)
        .map_err(|_| malformed(ty, String::from_utf8_lossy(bytes).into_owned()))
}

/// VECTOR (MySQL 9): little-endian f32 values, written as a JSON array of numbers.
fn decode_vector(ty: ColumnType, value: &Value) -> Result<FieldValue, ValueError> {
    let Value::Bytes(bytes) = value else {
        return Err(unexpected(ty, kind(value)));
    };
    let chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return Err(malformed(ty, format!("{} bytes", bytes.len())));
    }
    let mut out = String::with_capacity(2 + bytes.len() * 3);
    out.push('[');
    let mut buffer = ryu::Buffer::new();
    for (i, chunk) in chunks.enumerate() {
        let quad: [u8; 4] = chunk
            .try_into()
            .map_err(|_| malformed(ty, format!("{} bytes", bytes.len())))?;
        let x = f32::from_le_bytes(quad);
        if !x.is_finite() {
            return Err(malformed(ty, x.to_string()));
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(buffer.format_finite(x));
    }
    out.push(']');
    Ok(FieldValue::Raw(out))
}

/// Decodes an ENUM/SET label from the table map by the column's collation. Binary-collation
/// labels are kept as text (MySQL shows them as they are), so they must be UTF-8.
///
/// # Errors
/// Bytes invalid in the character set, or an unknown collation.
pub fn decode_label(collation: u16, bytes: &[u8]) -> Result<String, ValueError> {
    let (codec, charset) = text_codec(collation)?;
    let codec = match codec {
        TextCodec::Binary => TextCodec::Utf8,
        other => other,
    };
    let value = Value::Bytes(bytes.to_vec());
    match decode_text(ColumnType::MYSQL_TYPE_STRING, &value, codec, charset, None)? {
        FieldValue::Str(label) => Ok(label),
        _ => Err(malformed(
            ColumnType::MYSQL_TYPE_ENUM,
            String::from_utf8_lossy(bytes).into_owned(),
        )),
    }
}

impl FieldValue {
    /// Appends the JSON text of this value to `out`.
    ///
    /// Non-finite floats cannot come out of [`decode_value`]; if one is built by hand it is
    /// written as `null`, since JSON has no NaN or infinity.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            FieldValue::Null => out.extend_from_slice(b"null"),
            FieldValue::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
            FieldValue::UInt(u) => {
                out.extend_from_slice(itoa::Buffer::new().format(*u).as_bytes());
            }
            FieldValue::Float(f) if f.is_finite() => {
                out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes());
            }
            FieldValue::Double(d) if d.is_finite() => {
                out.extend_from_slice(ryu::Buffer::new().format_finite(*d).as_bytes());
            }
            FieldValue::Float(_) | FieldValue::Double(_) => out.extend_from_slice(b"null"),
            FieldValue::Decimal(text) | FieldValue::Raw(text) => {
                out.extend_from_slice(text.as_bytes());
            }
            FieldValue::Str(text) => write_json_string(out, text),
        }
    }

    /// Appends the `_id` text form of this value (SPEC §5): numbers in decimal, strings as
    /// they are, other types in their §6 text form, no JSON quoting.
    ///
    /// `Null` appends nothing: key columns are NOT NULL, and rejecting a NULL key is the
    /// caller's decision, not a text form.
    pub fn write_id_text(&self, out: &mut String) {
        match self {
            FieldValue::Null => {}
            FieldValue::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
            FieldValue::UInt(u) => out.push_str(itoa::Buffer::new().format(*u)),
            FieldValue::Float(f) if f.is_finite() => {
                out.push_str(ryu::Buffer::new().format_finite(*f));
            }
            FieldValue::Double(d) if d.is_finite() => {
                out.push_str(ryu::Buffer::new().format_finite(*d));
            }
            FieldValue::Float(f) => out.push_str(&f.to_string()),
            FieldValue::Double(d) => out.push_str(&d.to_string()),
            FieldValue::Decimal(text) | FieldValue::Str(text) | FieldValue::Raw(text) => {
                out.push_str(text)
            }
        }
    }
}

/// Builds a document `_id` from key values per SPEC §5: single key = its text; composite =
/// values joined by ':' with '\\' and ':' inside each value escaped by a preceding '\\'.
pub fn doc_id(parts: &[&FieldValue]) -> String {
    let mut id = String::new();
    if let [single] = parts {
        single.write_id_text(&mut id);
        return id;
    }
    let mut text = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            id.push(':');
        }
        text.clear();
        part.write_id_text(&mut text);
        for c in text.chars() {
            if c == '\\' || c == ':' {
                id.push('\\');
            }
            id.push(c);
        }
    }
    id
}

/// How a column type is decoded, with everything taken from metadata and collation
/// resolved up front (so metadata problems show regardless of the row's values).
#[derive(Debug, Clone, Copy)]
enum Family {
    Integer,
    MediumInt {
        unsigned: bool,
    },
    Float,
    Double,
    Decimal,
    Bit,
    Year,
    Date,
    DateTime {
        fsp: u8,
    },
    Timestamp {
        fsp: u8,
    },
    Time {
        fsp: u8,
    },
    Text {
        codec: TextCodec,
        /// MySQL's name of the character set, for error messages.
        charset: &'static str,
        /// BINARY(n): the byte length to restore trailing 0x00 up to.
        pad_to: Option<usize>,
    },
    /// MariaDB's JSON alias: text, parsed and written as the JSON value.
    JsonText {
        codec: TextCodec,
        charset: &'static str,
    },
    Enum,
    Set,
    /// MySQL binary JSON.
    Json,
    Geometry,
    Vector,
}

fn family_of(col: &ColumnSpec) -> Result<Family, ValueError> {
    use ColumnType::*;
    let ty = col.column_type;
    let family = match ty {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_LONGLONG => {
            Family::Integer
        }
        MYSQL_TYPE_INT24 => Family::MediumInt {
            unsigned: col.unsigned,
        },
        MYSQL_TYPE_FLOAT => Family::Float,
        MYSQL_TYPE_DOUBLE => Family::Double,
        MYSQL_TYPE_NEWDECIMAL => Family::Decimal,
        MYSQL_TYPE_BIT => Family::Bit,
        MYSQL_TYPE_YEAR => Family::Year,
        // TableMapEvent reports DATE as NEWDATE; both decode to `Value::Date`.
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Family::Date,
        MYSQL_TYPE_DATETIME => Family::DateTime { fsp: 0 },
        MYSQL_TYPE_DATETIME2 => Family::DateTime { fsp: fsp(col)? },
        MYSQL_TYPE_TIMESTAMP => Family::Timestamp { fsp: 0 },
        MYSQL_TYPE_TIMESTAMP2 => Family::Timestamp { fsp: fsp(col)? },
        MYSQL_TYPE_TIME2 => Family::Time { fsp: fsp(col)? },
        MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_STRING
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB => {
            let (codec, charset) = text_codec(col.collation)?;
            if col.json_text && codec != TextCodec::Binary {
                return Ok(Family::JsonText { codec, charset });
            }
            // MySQL strips trailing 0x00 from BINARY(n) in the row image; put them back.
            let pad_to = match (codec, ty) {
                (TextCodec::Binary, MYSQL_TYPE_STRING) => {
                    Some(string_max_bytes(&col.meta).ok_or_else(|| bad_metadata(ty, &col.meta))?)
                }
                _ => None,
            };
            Family::Text {
                codec,
                charset,
                pad_to,
            }
        }
        MYSQL_TYPE_TIME => {
            return Err(ValueError::Unsupported {
                column_type: "TIME (pre-5.6.4 format)".to_owned(),
            });
        }
        MYSQL_TYPE_ENUM | MYSQL_TYPE_SET if col.labels.is_empty() => {
            return Err(ValueError::NoLabels {
                column_type: type_name(ty),
            });
        }
        MYSQL_TYPE_ENUM => Family::Enum,
        MYSQL_TYPE_SET => Family::Set,
        MYSQL_TYPE_JSON => Family::Json,
        MYSQL_TYPE_GEOMETRY => Family::Geometry,
        MYSQL_TYPE_VECTOR => Family::Vector,
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NULL | MYSQL_TYPE_TYPED_ARRAY | MYSQL_TYPE_UNKNOWN => {
            return Err(ValueError::Unsupported {
                column_type: type_name(ty).to_owned(),
            });
        }
    };
    Ok(family)
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
fn string_max_bytes(meta: &[u8]) -> Option<usize> {
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

/// MEDIUMINT. mysql_common 0.37 reads a signed INT24 without sign extension
/// (`ParseBuf::eat_i24_le` fills a zeroed `[u8; 4]`), so -1 arrives as 16777215. A signed
/// MEDIUMINT never exceeds 8388607, so 8388608..=16777215 can only be such a value and is
/// mapped back; a fixed mysql_common that sends the negative number passes unchanged.
fn decode_medium_int(
    ty: ColumnType,
    value: &Value,
    unsigned: bool,
) -> Result<FieldValue, ValueError> {
    const SIGN_BIT: i64 = 1 << 23;
    let raw = match value {
        Value::Int(i) => *i,
        Value::UInt(u) => i64::try_from(*u).map_err(|_| malformed(ty, u.to_string()))?,
        other => return Err(unexpected(ty, kind(other))),
    };
    let (min, max) = if unsigned {
        (0, 2 * SIGN_BIT - 1)
    } else {
        (-SIGN_BIT, 2 * SIGN_BIT - 1)
    };
    if !(min..=max).contains(&raw) {
        return Err(malformed(ty, raw.to_string()));
    }
    if unsigned {
        Ok(FieldValue::UInt(raw.unsigned_abs()))
    } else if raw >= SIGN_BIT {
        Ok(FieldValue::Int(raw - 2 * SIGN_BIT))
    } else {
        Ok(FieldValue::Int(raw))
    }
}

fn decode_decimal(ty: ColumnType, value: &Value) -> Result<FieldValue, ValueError> {
    let Value::Bytes(bytes) = value else {
        return Err(unexpected(ty, kind(value)));
    };
    std::str::from_utf8(bytes)
        .ok()
        .and_then(canonical_decimal)
        .map(FieldValue::Decimal)
        .ok_or_else(|| malformed(ty, String::from_utf8_lossy(bytes).into_owned()))
}

/// Checks that `text` is `-?digits(.digits)?` (a JSON number we may write as it is) and
/// returns it with integer-part leading zeros removed and the sign of a zero dropped:
/// MySQL shows a negative zero as `0.00`, and the scale (trailing zeros) is kept.
pub(crate) fn canonical_decimal(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((int_part, frac_part)) => (int_part, Some(frac_part)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !frac_part.is_none_or(all_digits) {
        return None;
    }
    let int_part = match int_part.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let is_zero = int_part == "0" && frac_part.is_none_or(|f| f.bytes().all(|b| b == b'0'));
    let mut out = String::with_capacity(text.len());
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(int_part);
    if let Some(frac_part) = frac_part {
        out.push('.');
        out.push_str(frac_part);
    }
    Some(out)
}

fn decode_bit(ty: ColumnType, value: &Value) -> Result<FieldValue, ValueError> {
    match value {
        // BIT(n) is at most 64 bits, so at most 8 big-endian bytes.
        Value::Bytes(bytes) if bytes.len() <= 8 => Ok(FieldValue::UInt(
            bytes
                .iter()
                .fold(0_u64, |acc, &b| (acc << 8) | u64::from(b)),
        )),
        Value::Bytes(bytes) => Err(malformed(ty, format!("{} bytes", bytes.len()))),
        other => Err(unexpected(ty, kind(other))),
    }
}

fn decode_year(ty: ColumnType, value: &Value) -> Result<FieldValue, ValueError> {
    let Value::Bytes(bytes) = value else {
        return Err(unexpected(ty, kind(value)));
    };
    let year: u64 = std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(ty, String::from_utf8_lossy(bytes).into_owned()))?;
    // mysql_common adds 1900 to the stored byte; byte 0 is YEAR 0000 (1900 is not a valid
    // YEAR, whose range is 1901..=2155).
    Ok(FieldValue::UInt(if year == 1900 { 0 } else { year }))
}

fn decode_date(ty: ColumnType, value: &Value) -> Result<FieldValue, ValueError> {
    let Value::Date(year, month, day, ..) = *value else {
        return Err(unexpected(ty, kind(value)));
    };
    check_date(ty, year, month, day)?;
    if !is_calendar_date(year, month, day) {
        return Ok(FieldValue::Null);
    }
    let mut out = String::with_capacity(10);
    push_date(&mut out, year, month, day);
    Ok(FieldValue::Str(out))
}

/// DATETIME: the zero value, and (as for DATE) a date part that is not a calendar date, are
/// `null`: no JSON consumer can read them as dates.
fn decode_datetime(ty: ColumnType, value: &Value, fsp: u8) -> Result<FieldValue, ValueError> {
    let Value::Date(year, month, day, hour, minute, second, micros) = *value else {
        return Err(unexpected(ty, kind(value)));
    };
    check_date(ty, year, month, day)?;
    if !is_calendar_date(year, month, day) {
        return Ok(FieldValue::Null);
    }
    if hour > 23 || minute > 59 || second > 59 || micros > 999_999 {
        return Err(malformed(ty, format!("{value:?}")));
    }
    let mut out = String::with_capacity(26);
    push_date(&mut out, year, month, day);
    out.push('T');
    push_clock(&mut out, u64::from(hour), minute, second, micros, fsp);
    Ok(FieldValue::Str(out))
}

fn decode_timestamp(ty: ColumnType, value: &Value, fsp: u8) -> Result<FieldValue, ValueError> {
    let (seconds, micros) = match value {
        // Old TIMESTAMP: unsigned 32-bit seconds.
        Value::Int(seconds) => (*seconds, 0),
        Value::UInt(seconds) => (
            i64::try_from(*seconds).map_err(|_| malformed(ty, seconds.to_string()))?,
            0,
        ),
        // TIMESTAMP2: "<seconds>[.<6-digit micros>]".
        Value::Bytes(bytes) => parse_timestamp2(bytes)
            .ok_or_else(|| malformed(ty, String::from_utf8_lossy(bytes).into_owned()))?,
        other => return Err(unexpected(ty, kind(other))),
    };
    // MySQL's own zero test is on the seconds alone.
    if seconds == 0 {
        return Ok(FieldValue::Null);
    }
    if !(0..=i64::from(u32::MAX)).contains(&seconds) {
        return Err(malformed(ty, seconds.to_string()));
    }
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let in_day = seconds.rem_euclid(86_400);
    // All bounded: the year by u32::MAX seconds (2106), the clock parts by 86 400.
    let (Ok(year), Ok(hour), Ok(minute), Ok(second)) = (
        u16::try_from(year),
        u64::try_from(in_day / 3600),
        u8::try_from(in_day % 3600 / 60),
        u8::try_from(in_day % 60),
    ) else {
        return Err(malformed(ty, seconds.to_string()));
    };
    let mut out = String::with_capacity(27);
    push_date(&mut out, year, month, day);
    out.push('T');
    push_clock(&mut out, hour, minute, second, micros, fsp);
    out.push('Z');
    Ok(FieldValue::Str(out))
}

/// Parses mysql_common's TIMESTAMP2 text. It prints the stored big-endian u32 after a cast
/// to i32, so seconds past 2038-01-19 (MariaDB 11.5+ allows up to 2106) come out negative;
/// they are mapped back to the u32 they were.
fn parse_timestamp2(bytes: &[u8]) -> Option<(i64, u32)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (seconds, micros) = match text.split_once('.') {
        Some((seconds, micros)) => (seconds, Some(micros)),
        None => (text, None),
    };
    let digits = seconds.strip_prefix('-').unwrap_or(seconds);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = seconds.parse().ok()?;
    let seconds = match seconds {
        s if s < 0 && s >= i64::from(i32::MIN) => s + (1_i64 << 32),
        s => s,
    };
    let micros = match micros {
        None => 0,
        Some(m) if m.len() == 6 && m.bytes().all(|b| b.is_ascii_digit()) => m.parse().ok()?,
        Some(_) => return None,
    };
    Some((seconds, micros))
}

/// TIME: hours = days * 24 + h, sign kept (also for a negative value under one hour).
fn decode_time(ty: ColumnType, value: &Value, fsp: u8) -> Result<FieldValue, ValueError> {
    let Value::Time(negative, days, hour, minute, second, micros) = *value else {
        return Err(unexpected(ty, kind(value)));
    };
    if hour > 23 || minute > 59 || second > 59 || micros > 999_999 {
        return Err(malformed(ty, format!("{value:?}")));
    }
    let mut out = String::with_capacity(17);
    if negative {
        out.push('-');
    }
    push_clock(
        &mut out,
        u64::from(days) * 24 + u64::from(hour),
        minute,
        second,
        micros,
        fsp,
    );
    Ok(FieldValue::Str(out))
}

/// Parts no server stores (even with ALLOW_INVALID_DATES or sql_mode ''): a corrupt value.
fn check_date(ty: ColumnType, year: u16, month: u8, day: u8) -> Result<(), ValueError> {
    if year > 9999 || month > 12 || day > 31 {
        return Err(malformed(ty, format!("{year}-{month}-{day}")));
    }
    Ok(())
}

/// Whether the parts name a day of the proleptic Gregorian calendar (SPEC §6). Not: the zero
/// date, a zero month or day, or a day past the month's end (`2023-02-30`, `2023-04-31`),
/// which MySQL stores under `ALLOW_INVALID_DATES` and which no JSON consumer reads as a date.
fn is_calendar_date(year: u16, month: u8, day: u8) -> bool {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let last = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=last).contains(&day)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u8, day as u8)
}

fn push_date(out: &mut String, year: u16, month: u8, day: u8) {
    push_padded(out, u64::from(year), 4);
    out.push('-');
    push_padded(out, u64::from(month), 2);
    out.push('-');
    push_padded(out, u64::from(day), 2);
}

/// `hh:mm:ss` plus, when `fsp > 0`, exactly `fsp` fraction digits.
fn push_clock(out: &mut String, hours: u64, minute: u8, second: u8, micros: u32, fsp: u8) {
    push_padded(out, hours, 2);
    out.push(':');
    push_padded(out, u64::from(minute), 2);
    out.push(':');
    push_padded(out, u64::from(second), 2);
    if fsp > 0 {
        let fsp = fsp.min(6);
        out.push('.');
        let scaled = micros / 10_u32.pow(u32::from(6 - fsp));
        push_padded(out, u64::from(scaled), usize::from(fsp));
    }
}

fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// How the bytes of a character column become a JSON string.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TextCodec {
    /// The `binary` character set: base64, standard alphabet, padded.
    Binary,
    Utf8,
    Ascii,
    /// ISO-8859-9. encoding_rs only has windows-1254, which differs in 0x80..=0x9F.
    Latin5,
    /// Big-endian UTF-32, which encoding_rs does not decode.
    Utf32,
    Whatwg(&'static Encoding),
}

/// Resolves a collation id to its decoder and MySQL character-set name.
///
/// Ids come from MySQL (via mysql_common's table) or MariaDB, whose ids below 256 agree
/// with MySQL's. MariaDB-only ids, checked against MariaDB 10.11's
/// `information_schema.collation_character_set_applicability`: 576..=738 (UCA 5.2.0 /
/// mysql561 collations, 32 ids per character set), 1024..2048 (NO PAD variants = base
/// id + 1024) and 2048..3328 (UCA 14.0.0, 256 ids per character set).
fn text_codec(collation: u16) -> Result<(TextCodec, &'static str), ValueError> {
    // Resolved once per collation id: this runs for every text value.
    static KNOWN: std::sync::OnceLock<Vec<Option<(TextCodec, &'static str)>>> =
        std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| (0..4096).map(|id| resolve_codec(id).ok()).collect());
    match known.get(usize::from(collation)) {
        Some(Some(found)) => Ok(*found),
        _ => resolve_codec(collation),
    }
}

fn resolve_codec(collation: u16) -> Result<(TextCodec, &'static str), ValueError> {
    let by_range = match collation {
        0 => Some("utf8mb4"),
        576..=607 => Some("utf8mb3"),
        608..=639 => Some("utf8mb4"),
        640..=671 => Some("ucs2"),
        672..=703 => Some("utf16"),
        736..=767 => Some("utf32"),
        2048..=3327 => Some(match (collation - 2048) >> 8 {
            0 => "utf8mb3",
            1 => "utf8mb4",
            2 => "ucs2",
            3 => "utf16",
            _ => "utf32",
        }),
        _ => None,
    };
    if let Some(name) = by_range {
        return codec_for_charset(name).ok_or(ValueError::UnknownCollation { collation });
    }
    let base_id = if (1024..2048).contains(&collation) {
        collation - 1024
    } else {
        collation
    };
    let resolved = Collation::resolve(CollationId::from(base_id));
    match resolved.charset() {
        "unknown" => Err(ValueError::UnknownCollation { collation }),
        name => codec_for_charset(name).ok_or_else(|| ValueError::UnsupportedCharset {
            collation,
            charset: name.to_owned(),
        }),
    }
}

/// MySQL character-set name → decoder, following MySQL's own tables where encoding_rs
/// (the WHATWG encodings) has a match or a superset: latin1 is windows-1252 with the five
/// undefined bytes as C1 controls, exactly as in MySQL; tis620 uses windows-874, gb2312
/// GBK, eucjpms EUC-JP and cp932 Shift_JIS (WHATWG's Shift_JIS is Windows-31J). dec8,
/// cp850, cp852, hp8, swe7, keybcs2, macce, armscii8 and geostd8 have no decoder.
fn codec_for_charset(name: &str) -> Option<(TextCodec, &'static str)> {
    use encoding_rs as enc;
    let whatwg =
        |encoding: &'static Encoding, name: &'static str| (TextCodec::Whatwg(encoding), name);
    Some(match name {
        "binary" => (TextCodec::Binary, "binary"),
        "utf8mb4" => (TextCodec::Utf8, "utf8mb4"),
        "utf8mb3" | "utf8" => (TextCodec::Utf8, "utf8mb3"),
        "ascii" => (TextCodec::Ascii, "ascii"),
        "latin5" => (TextCodec::Latin5, "latin5"),
        "utf32" => (TextCodec::Utf32, "utf32"),
        "latin1" => whatwg(enc::WINDOWS_1252, "latin1"),
        "latin2" => whatwg(enc::ISO_8859_2, "latin2"),
        "latin7" => whatwg(enc::ISO_8859_13, "latin7"),
        "greek" => whatwg(enc::ISO_8859_7, "greek"),
        "hebrew" => whatwg(enc::ISO_8859_8, "hebrew"),
        "cp1250" => whatwg(enc::WINDOWS_1250, "cp1250"),
        "cp1251" => whatwg(enc::WINDOWS_1251, "cp1251"),
        "cp1256" => whatwg(enc::WINDOWS_1256, "cp1256"),
        "cp1257" => whatwg(enc::WINDOWS_1257, "cp1257"),
        "cp866" => whatwg(enc::IBM866, "cp866"),
        "koi8r" => whatwg(enc::KOI8_R, "koi8r"),
        "koi8u" => whatwg(enc::KOI8_U, "koi8u"),
        "macroman" => whatwg(enc::MACINTOSH, "macroman"),
        "tis620" => whatwg(enc::WINDOWS_874, "tis620"),
        "sjis" => whatwg(enc::SHIFT_JIS, "sjis"),
        "cp932" => whatwg(enc::SHIFT_JIS, "cp932"),
        "ujis" => whatwg(enc::EUC_JP, "ujis"),
        "eucjpms" => whatwg(enc::EUC_JP, "eucjpms"),
        "euckr" => whatwg(enc::EUC_KR, "euckr"),
        "gb2312" => whatwg(enc::GBK, "gb2312"),
        "gbk" => whatwg(enc::GBK, "gbk"),
        "gb18030" => whatwg(enc::GB18030, "gb18030"),
        "big5" => whatwg(enc::BIG5, "big5"),
        // MySQL's ucs2 and utf16 are big-endian.
        "ucs2" => whatwg(enc::UTF_16BE, "ucs2"),
        "utf16" => whatwg(enc::UTF_16BE, "utf16"),
        "utf16le" => whatwg(enc::UTF_16LE, "utf16le"),
        _ => return None,
    })
}

fn decode_text(
    ty: ColumnType,
    value: &Value,
    codec: TextCodec,
    charset: &'static str,
    pad_to: Option<usize>,
) -> Result<FieldValue, ValueError> {
    let Value::Bytes(bytes) = value else {
        return Err(unexpected(ty, kind(value)));
    };
    let invalid = |offset| ValueError::InvalidText { charset, offset };
    let text = match codec {
        TextCodec::Binary => {
            let bytes: Cow<'_, [u8]> = match pad_to {
                Some(n) if bytes.len() < n => {
                    let mut padded = bytes.clone();
                    padded.resize(n, 0);
                    Cow::Owned(padded)
                }
                _ => Cow::Borrowed(bytes),
            };
            BASE64.encode(bytes)
        }
        TextCodec::Utf8 => utf8(bytes, charset)?.to_owned(),
        TextCodec::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
            Some(offset) => return Err(invalid(Some(offset))),
            None => bytes.iter().map(|&b| char::from(b)).collect(),
        },
        TextCodec::Latin5 => bytes
            .iter()
            .map(|&b| match b {
                0xD0 => 'Ğ',
                0xDD => 'İ',
                0xDE => 'Ş',
                0xF0 => 'ğ',
                0xFD => 'ı',
                0xFE => 'ş',
                b => char::from(b),
            })
            .collect(),
        TextCodec::Utf32 => {
            let chunks = bytes.chunks_exact(4);
            if !chunks.remainder().is_empty() {
                return Err(invalid(Some(bytes.len() - chunks.remainder().len())));
            }
            let mut text = String::with_capacity(bytes.len() / 4);
            for (i, chunk) in chunks.enumerate() {
                let code = chunk
                    .try_into()
                    .ok()
                    .and_then(|quad: [u8; 4]| char::from_u32(u32::from_be_bytes(quad)))
                    .ok_or_else(|| invalid(Some(i * 4)))?;
                text.push(code);
            }
            text
        }
        TextCodec::Whatwg(encoding) => encoding
            .decode_without_bom_handling_and_without_replacement(bytes)
            .ok_or_else(|| invalid(None))?
            .into_owned(),
    };
    Ok(FieldValue::Str(text))
}

/// Appends `text` as a JSON string (RFC 8259): `"` and `\` escaped, control characters
/// as `\n`-style or `\u00XX` escapes, everything else as UTF-8.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len() + 2);
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip 8 bytes at a time while none needs escaping (most text).
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if !needs_escape(u64::from_le_bytes(word)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0C => b'f',
            0x00..=0x1F => b'u',
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(bytes.get(run_start..i).unwrap_or_default());
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            out.extend_from_slice(b"00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0x0F)]);
        }
        i += 1;
        run_start = i;
    }
    out.extend_from_slice(bytes.get(run_start..).unwrap_or_default());
    out.push(b'"');
}

/// Whether any of the 8 bytes in `word` is a control character, `"` or `\` (SWAR: a byte
/// below 0x20 or equal to one of the two has its high bit set in the result).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let zero = |x: u64| below(x, 1);
    (below(word, 0x20)
        | zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'\\'))))
        != 0
}

fn at_offset(offset: Option<usize>) -> String {
    offset
        .map(|o| format!(" (first bad byte at offset {o})"))
        .unwrap_or_default()
}

fn unexpected(ty: ColumnType, found: &'static str) -> ValueError {
    ValueError::UnexpectedValue {
        column_type: type_name(ty),
        found,
    }
}

fn malformed(ty: ColumnType, value: String) -> ValueError {
    ValueError::Malformed {
        column_type: type_name(ty),
        value,
    }
}

fn bad_metadata(ty: ColumnType, meta: &[u8]) -> ValueError {
    ValueError::BadMetadata {
        column_type: type_name(ty),
        meta: meta.to_vec(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::NULL => "NULL",
        Value::Bytes(_) => "bytes",
        Value::Int(_) => "signed integer",
        Value::UInt(_) => "unsigned integer",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Date(..) => "date",
        Value::Time(..) => "time",
    }
}

/// The binlog type's name for messages (binlog types, so DATETIME2 and NEWDATE show as such).
fn type_name(ty: ColumnType) -> &'static str {
    use ColumnType::*;
    match ty {
        MYSQL_TYPE_DECIMAL => "DECIMAL (pre-5.0)",
        MYSQL_TYPE_TINY => "TINYINT",
        MYSQL_TYPE_SHORT => "SMALLINT",
        MYSQL_TYPE_LONG => "INT",
        MYSQL_TYPE_FLOAT => "FLOAT",
        MYSQL_TYPE_DOUBLE => "DOUBLE",
        MYSQL_TYPE_NULL => "NULL",
        MYSQL_TYPE_TIMESTAMP => "TIMESTAMP",
        MYSQL_TYPE_LONGLONG => "BIGINT",
        MYSQL_TYPE_INT24 => "MEDIUMINT",
        MYSQL_TYPE_DATE => "DATE",
        MYSQL_TYPE_TIME => "TIME",
        MYSQL_TYPE_DATETIME => "DATETIME",
        MYSQL_TYPE_YEAR => "YEAR",
        MYSQL_TYPE_NEWDATE => "NEWDATE",
        MYSQL_TYPE_VARCHAR => "VARCHAR",
        MYSQL_TYPE_BIT => "BIT",
        MYSQL_TYPE_TIMESTAMP2 => "TIMESTAMP2",
        MYSQL_TYPE_DATETIME2 => "DATETIME2",
        MYSQL_TYPE_TIME2 => "TIME2",
        MYSQL_TYPE_TYPED_ARRAY => "TYPED_ARRAY",
        MYSQL_TYPE_VECTOR => "VECTOR",
        MYSQL_TYPE_UNKNOWN => "UNKNOWN",
        MYSQL_TYPE_JSON => "JSON",
        MYSQL_TYPE_NEWDECIMAL => "DECIMAL",
        MYSQL_TYPE_ENUM => "ENUM",
        MYSQL_TYPE_SET => "SET",
        MYSQL_TYPE_TINY_BLOB => "TINYBLOB",
        MYSQL_TYPE_MEDIUM_BLOB => "MEDIUMBLOB",
        MYSQL_TYPE_LONG_BLOB => "LONGBLOB",
        MYSQL_TYPE_BLOB => "BLOB",
        MYSQL_TYPE_VAR_STRING => "VAR_STRING",
        MYSQL_TYPE_STRING => "STRING",
        MYSQL_TYPE_GEOMETRY => "GEOMETRY",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ColumnType::*;
    use mysql_common::binlog::decimal::Decimal;
    use mysql_common::io::ParseBuf;

    fn col(column_type: ColumnType, meta: &[u8], unsigned: bool, collation: u16) -> ColumnSpec {
        ColumnSpec {
            name: "c".to_owned(),
            column_type,
            meta: meta.to_vec(),
            unsigned,
            collation,
            ..ColumnSpec::default()
        }
    }

    /// Runs mysql_common's own row-image decoder on `bytes`, as the reader will.
    fn from_binlog(col: &ColumnSpec, bytes: &[u8]) -> BinlogValue<'static> {
        ParseBuf(bytes)
            .parse::<BinlogValue<'_>>((col.column_type, &col.meta[..], col.unsigned, false))
            .expect("mysql_common decodes the test bytes")
            .into_owned()
    }

    fn json_of(field: &FieldValue) -> String {
        let mut out = Vec::new();
        field.write_json(&mut out);
        String::from_utf8(out).expect("JSON output is UTF-8")
    }

    #[test]
    fn json_strings_escape_at_every_position() {
        // Each special byte at each offset of a text longer than the 8-byte fast path.
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '\u{7f}'] {
            for at in 0..20 {
                let mut text: String = "abcdefghijklmnopqrst".into();
                text.insert(at, special);
                let mut out = Vec::new();
                write_json_string(&mut out, &text);
                let back: String = serde_json::from_slice(&out).expect("valid JSON string");
                assert_eq!(back, text, "{special:?} at {at}");
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    serde_json::to_string(&text).unwrap(),
                    "{special:?} at {at}"
                );
            }
        }
        for b in 0u8..=255 {
            let naive = b < 0x20 || b == b'"' || b == b'\\';
            let word = u64::from_le_bytes([b'a', b'a', b'a', b, b'a', b'a', b'a', b'a']);
            assert_eq!(needs_escape(word), naive, "byte {b:#x}");
        }
    }

    #[test]
    fn direct_writes_equal_decoded_values() {
        let mut json_col = col(MYSQL_TYPE_BLOB, &[4], false, 45);
        json_col.json_text = true;
        let cases: Vec<(ColumnSpec, Option<BinlogValue<'static>>)> = vec![
            (
                col(MYSQL_TYPE_LONGLONG, &[], true, 0),
                Some(BinlogValue::Value(Value::UInt(u64::MAX))),
            ),
            (
                col(MYSQL_TYPE_LONG, &[], false, 0),
                Some(BinlogValue::Value(Value::Int(-7))),
            ),
            (
                col(MYSQL_TYPE_VARCHAR, &[80, 0], false, 45),
                Some(BinlogValue::Value(Value::Bytes(
                    "a \"quoted\" line\n…".into(),
                ))),
            ),
            (col(MYSQL_TYPE_VARCHAR, &[80, 0], false, 45), None),
            (
                json_col.clone(),
                Some(BinlogValue::Value(Value::Bytes(
                    b"{ \"a\" : [1, \"x y\"] }".to_vec(),
                ))),
            ),
            (
                json_col,
                Some(BinlogValue::Value(Value::Bytes(b"[1,2]".to_vec()))),
            ),
        ];
        for (c, v) in &cases {
            let mut direct = Vec::new();
            assert!(write_direct(c, v.as_ref(), &mut direct).unwrap(), "{c:?}");
            let decoded = json_of(&decode_value(c, v.as_ref()).unwrap());
            assert_eq!(String::from_utf8(direct).unwrap(), decoded, "{v:?}");
        }
        // Invalid text is the same error either way; other kinds are left to decode_value.
        let c = col(MYSQL_TYPE_VARCHAR, &[80, 0], false, 45);
        let bad = BinlogValue::Value(Value::Bytes(vec![b'a', 0xff]));
        let mut out = Vec::new();
        assert_eq!(
            write_direct(&c, Some(&bad), &mut out)
                .unwrap_err()
                .to_string(),
            decode_value(&c, Some(&bad)).unwrap_err().to_string()
        );
        let latin1 = col(MYSQL_TYPE_VARCHAR, &[80, 0], false, 8);
        let v = BinlogValue::Value(Value::Bytes(vec![0xe9]));
        assert!(!write_direct(&latin1, Some(&v), &mut out).unwrap());
        assert!(out.is_empty());
    }

    fn decode_json(col: &ColumnSpec, value: &BinlogValue<'_>) -> String {
        match decode_value(col, Some(value)) {
            Ok(field) => json_of(&field),
            Err(err) => panic!("{col:?} {value:?}: {err}"),
        }
    }

    fn v(value: Value) -> BinlogValue<'static> {
        BinlogValue::Value(value)
    }

    fn bytes(b: &[u8]) -> BinlogValue<'static> {
        v(Value::Bytes(b.to_vec()))
    }

    #[test]
    fn integers_keep_their_full_range() {
        let cases: &[(ColumnType, bool, Value, &str)] = &[
            (MYSQL_TYPE_TINY, false, Value::Int(-128), "-128"),
            (MYSQL_TYPE_TINY, false, Value::Int(127), "127"),
            (MYSQL_TYPE_TINY, true, Value::UInt(255), "255"),
            (MYSQL_TYPE_SHORT, false, Value::Int(-32768), "-32768"),
            (MYSQL_TYPE_SHORT, true, Value::UInt(65535), "65535"),
            (MYSQL_TYPE_INT24, false, Value::Int(-8388608), "-8388608"),
            (MYSQL_TYPE_INT24, true, Value::Int(16777215), "16777215"),
            (
                MYSQL_TYPE_LONG,
                false,
                Value::Int(i32::MIN.into()),
                "-2147483648",
            ),
            (
                MYSQL_TYPE_LONG,
                true,
                Value::UInt(u32::MAX.into()),
                "4294967295",
            ),
            (
                MYSQL_TYPE_LONGLONG,
                false,
                Value::Int(i64::MIN),
                "-9223372036854775808",
            ),
            (
                MYSQL_TYPE_LONGLONG,
                false,
                Value::Int(i64::MAX),
                "9223372036854775807",
            ),
            (
                MYSQL_TYPE_LONGLONG,
                true,
                Value::UInt(u64::MAX),
                "18446744073709551615",
            ),
            (MYSQL_TYPE_LONGLONG, true, Value::UInt(0), "0"),
        ];
        for (ty, unsigned, value, expected) in cases {
            let c = col(*ty, &[], *unsigned, 0);
            assert_eq!(
                decode_json(&c, &v(value.clone())),
                *expected,
                "{ty:?} {value:?}"
            );
        }
    }

    #[test]
    fn integers_from_row_image_bytes() {
        let cases: &[(ColumnType, bool, &[u8], &str)] = &[
            (MYSQL_TYPE_TINY, false, &[0x80], "-128"),
            (MYSQL_TYPE_TINY, true, &[0xFF], "255"),
            (MYSQL_TYPE_SHORT, false, &[0x00, 0x80], "-32768"),
            (MYSQL_TYPE_INT24, false, &[0x00, 0x00, 0x80], "-8388608"),
            (MYSQL_TYPE_INT24, false, &[0xFF, 0xFF, 0xFF], "-1"),
            (MYSQL_TYPE_INT24, false, &[0xFF, 0xFF, 0x7F], "8388607"),
            (MYSQL_TYPE_INT24, true, &[0xFF, 0xFF, 0xFF], "16777215"),
            (MYSQL_TYPE_INT24, true, &[0x00, 0x00, 0x80], "8388608"),
            (MYSQL_TYPE_LONG, true, &[0xFF; 4], "4294967295"),
            (
                MYSQL_TYPE_LONGLONG,
                false,
                &[0, 0, 0, 0, 0, 0, 0, 0x80],
                "-9223372036854775808",
            ),
            (
                MYSQL_TYPE_LONGLONG,
                true,
                &[0xFF; 8],
                "18446744073709551615",
            ),
        ];
        for (ty, unsigned, raw, expected) in cases {
            let c = col(*ty, &[], *unsigned, 0);
            assert_eq!(decode_json(&c, &from_binlog(&c, raw)), *expected, "{ty:?}");
        }
    }

    #[test]
    fn medium_int_sign_is_restored_and_range_checked() {
        let signed = col(MYSQL_TYPE_INT24, &[], false, 0);
        let unsigned = col(MYSQL_TYPE_INT24, &[], true, 0);
        // A mysql_common that sign-extends would send the negative number itself.
        assert_eq!(decode_json(&signed, &v(Value::Int(-1))), "-1");
        for (c, value) in [
            (&signed, Value::Int(16_777_216)),
            (&signed, Value::Int(-8_388_609)),
            (&unsigned, Value::Int(-1)),
            (&unsigned, Value::UInt(u64::MAX)),
        ] {
            let result = decode_value(c, Some(&v(value.clone())));
            assert!(
                matches!(result, Err(ValueError::Malformed { .. })),
                "{value:?}: {result:?}"
            );
        }
    }

    #[test]
    fn floats_are_shortest_round_trip() {
        let float = col(MYSQL_TYPE_FLOAT, &[4], false, 0);
        let double = col(MYSQL_TYPE_DOUBLE, &[8], false, 0);
        let cases: &[(&ColumnSpec, BinlogValue<'static>, &str)] = &[
            (&float, from_binlog(&float, &0.1_f32.to_le_bytes()), "0.1"),
            (&float, v(Value::Float(3.402_823_5e38)), "3.4028235e38"),
            (&float, v(Value::Float(-1.5)), "-1.5"),
            (&float, v(Value::Float(1.0)), "1.0"),
            (&float, v(Value::Float(1e-7)), "1e-7"),
            (&double, from_binlog(&double, &0.1_f64.to_le_bytes()), "0.1"),
            (
                &double,
                v(Value::Double(f64::MAX)),
                "1.7976931348623157e308",
            ),
            (&double, v(Value::Double(5e-324)), "5e-324"),
            (&double, v(Value::Double(-0.0)), "-0.0"),
        ];
        for (c, value, expected) in cases {
            assert_eq!(decode_json(c, value), *expected, "{value:?}");
        }
        let nan = decode_value(&float, Some(&v(Value::Float(f32::NAN))));
        assert!(matches!(nan, Err(ValueError::Malformed { .. })), "{nan:?}");
        let inf = decode_value(&double, Some(&v(Value::Double(f64::INFINITY))));
        assert!(matches!(inf, Err(ValueError::Malformed { .. })), "{inf:?}");
    }

    #[test]
    fn decimals_keep_digits_and_scale() {
        // Through mysql_common's binary DECIMAL decoder: (text, precision, scale, expected).
        let binary: &[(&str, u8, u8, &str)] = &[
            (
                "12345678901234567890.000001",
                26,
                6,
                "12345678901234567890.000001",
            ),
            ("1.50", 3, 2, "1.50"),
            ("-123.45", 5, 2, "-123.45"),
            ("-0.00", 3, 2, "0.00"),
        ];
        for (text, precision, scale, expected) in binary {
            let c = col(MYSQL_TYPE_NEWDECIMAL, &[*precision, *scale], false, 0);
            let mut raw = Vec::new();
            text.parse::<Decimal>()
                .expect("test decimal parses")
                .write_bin(&mut raw)
                .expect("test decimal encodes");
            assert_eq!(decode_json(&c, &from_binlog(&c, &raw)), *expected, "{text}");
        }
        // From the text mysql_common produces.
        let c = col(MYSQL_TYPE_NEWDECIMAL, &[10, 3], false, 0);
        let text: &[(&str, &str)] = &[
            ("-0.001", "-0.001"),
            ("-0.00", "0.00"),
            ("0", "0"),
            ("-0", "0"),
            ("007.50", "7.50"),
            (
                "99999999999999999999999999999999999999999999999999",
                "99999999999999999999999999999999999999999999999999",
            ),
        ];
        for (input, expected) in text {
            assert_eq!(
                decode_json(&c, &bytes(input.as_bytes())),
                *expected,
                "{input}"
            );
        }
        for bad in [
            "", "-", ".5", "1.", "1e5", "1.2.3", "+1", " 1", "NaN", "1_000",
        ] {
            let result = decode_value(&c, Some(&bytes(bad.as_bytes())));
            assert!(
                matches!(result, Err(ValueError::Malformed { .. })),
                "{bad:?}: {result:?}"
            );
        }
    }

    #[test]
    fn bit_and_year_are_numbers() {
        let cases: &[(ColumnType, &[u8], &[u8], &str)] = &[
            // BIT(n) metadata: [n % 8, n / 8].
            (MYSQL_TYPE_BIT, &[1, 0], &[0x01], "1"),
            (MYSQL_TYPE_BIT, &[2, 1], &[0x03, 0xFF], "1023"),
            (MYSQL_TYPE_BIT, &[0, 8], &[0xFF; 8], "18446744073709551615"),
            (MYSQL_TYPE_YEAR, &[], &[0], "0"),
            (MYSQL_TYPE_YEAR, &[], &[1], "1901"),
            (MYSQL_TYPE_YEAR, &[], &[124], "2024"),
            (MYSQL_TYPE_YEAR, &[], &[255], "2155"),
        ];
        for (ty, meta, raw, expected) in cases {
            let c = col(*ty, meta, false, 0);
            assert_eq!(
                decode_json(&c, &from_binlog(&c, raw)),
                *expected,
                "{ty:?} {raw:?}"
            );
        }
        let c = col(MYSQL_TYPE_BIT, &[0, 8], false, 0);
        let too_long = decode_value(&c, Some(&bytes(&[1; 9])));
        assert!(
            matches!(too_long, Err(ValueError::Malformed { .. })),
            "{too_long:?}"
        );
    }

    fn newdate_bytes(y: u32, m: u32, d: u32) -> Vec<u8> {
        let packed = (y << 9) | (m << 5) | d;
        packed.to_le_bytes()[..3].to_vec()
    }

    #[test]
    fn dates() {
        let c = col(MYSQL_TYPE_NEWDATE, &[], false, 0);
        let cases: &[((u32, u32, u32), &str)] = &[
            ((2024, 2, 29), r#""2024-02-29""#),
            ((1000, 1, 1), r#""1000-01-01""#),
            ((9999, 12, 31), r#""9999-12-31""#),
            ((0, 1, 1), r#""0000-01-01""#),
            ((0, 0, 0), "null"),
            ((2024, 0, 0), "null"),
            ((2024, 1, 0), "null"),
            ((2024, 0, 5), "null"),
            // Days past the month's end (ALLOW_INVALID_DATES) are no calendar dates.
            ((2023, 2, 30), "null"),
            ((2023, 2, 29), "null"),
            ((1900, 2, 29), "null"),
            ((2000, 2, 29), r#""2000-02-29""#),
            ((0, 2, 29), r#""0000-02-29""#),
            ((2023, 4, 31), "null"),
            ((2023, 6, 31), "null"),
            ((2023, 9, 31), "null"),
            ((2023, 11, 31), "null"),
            ((2023, 11, 30), r#""2023-11-30""#),
            ((2023, 12, 31), r#""2023-12-31""#),
        ];
        for ((y, m, d), expected) in cases {
            let raw = newdate_bytes(*y, *m, *d);
            assert_eq!(
                decode_json(&c, &from_binlog(&c, &raw)),
                *expected,
                "{y}-{m}-{d}"
            );
        }
        let bad = decode_value(&c, Some(&v(Value::Date(2024, 13, 1, 0, 0, 0, 0))));
        assert!(matches!(bad, Err(ValueError::Malformed { .. })), "{bad:?}");
    }

    /// (year, month, day, hour, minute, second)
    type DateTimeParts = (u64, u64, u64, u64, u64, u64);
    /// (fsp, negative, (hours, minutes, seconds), microseconds, expected JSON)
    type TimeCase = (u8, bool, (i64, i64, i64), i64, &'static str);

    /// DATETIME2 row-image bytes (MySQL `my_datetime_packed_to_binary`).
    fn datetime2_bytes(dt: DateTimeParts, usec: u32, fsp: u8) -> Vec<u8> {
        let (y, m, d, h, mi, s) = dt;
        let int_part = ((y * 13 + m) << 22) | (d << 17) | (h << 12) | (mi << 6) | s;
        let mut raw = (int_part + 0x80_0000_0000).to_be_bytes()[3..].to_vec();
        match fsp {
            1 | 2 => raw.push((usec / 10_000) as u8),
            3 | 4 => raw.extend_from_slice(&((usec / 100) as u16).to_be_bytes()),
            5 | 6 => raw.extend_from_slice(&usec.to_be_bytes()[1..]),
            _ => {}
        }
        raw
    }

    #[test]
    fn datetimes() {
        let at = (2024, 2, 29, 13, 45, 1);
        let cases: &[(u8, DateTimeParts, u32, &str)] = &[
            (0, at, 0, r#""2024-02-29T13:45:01""#),
            (1, at, 500_000, r#""2024-02-29T13:45:01.5""#),
            (3, at, 123_000, r#""2024-02-29T13:45:01.123""#),
            (3, at, 0, r#""2024-02-29T13:45:01.000""#),
            (6, at, 123_456, r#""2024-02-29T13:45:01.123456""#),
            (6, at, 1, r#""2024-02-29T13:45:01.000001""#),
            (
                6,
                (9999, 12, 31, 23, 59, 59),
                999_999,
                r#""9999-12-31T23:59:59.999999""#,
            ),
            (0, (0, 0, 0, 0, 0, 0), 0, "null"),
            (6, (0, 0, 0, 0, 0, 0), 0, "null"),
            (0, (2024, 0, 0, 10, 0, 0), 0, "null"),
            (0, (2023, 2, 30, 10, 0, 0), 0, "null"),
            (6, (2023, 4, 31, 23, 59, 59), 999_999, "null"),
            (0, (2100, 2, 29, 0, 0, 0), 0, "null"),
            (
                3,
                (2400, 2, 29, 0, 0, 1),
                5_000,
                r#""2400-02-29T00:00:01.005""#,
            ),
        ];
        for (fsp, dt, usec, expected) in cases {
            let c = col(MYSQL_TYPE_DATETIME2, &[*fsp], false, 0);
            let raw = datetime2_bytes(*dt, *usec, *fsp);
            assert_eq!(
                decode_json(&c, &from_binlog(&c, &raw)),
                *expected,
                "{dt:?} fsp {fsp}"
            );
        }
        // Pre-5.6.4 DATETIME: YYYYMMDDHHMMSS as a little-endian u64.
        let old = col(MYSQL_TYPE_DATETIME, &[], false, 0);
        let raw = 20_240_229_134_501_u64.to_le_bytes();
        assert_eq!(
            decode_json(&old, &from_binlog(&old, &raw)),
            r#""2024-02-29T13:45:01""#
        );
    }

    fn timestamp2_bytes(seconds: u32, usec: u32, fsp: u8) -> Vec<u8> {
        let mut raw = seconds.to_be_bytes().to_vec();
        match fsp {
            1 | 2 => raw.push((usec / 10_000) as u8),
            3 | 4 => raw.extend_from_slice(&((usec / 100) as u16).to_be_bytes()),
            5 | 6 => raw.extend_from_slice(&usec.to_be_bytes()[1..]),
            _ => {}
        }
        raw
    }

    #[test]
    fn timestamps_are_utc() {
        let cases: &[(u8, u32, u32, &str)] = &[
            (0, 0, 0, "null"),
            (6, 0, 0, "null"),
            (0, 1, 0, r#""1970-01-01T00:00:01Z""#),
            (0, 1_709_214_301, 0, r#""2024-02-29T13:45:01Z""#),
            (
                6,
                1_709_214_301,
                123_456,
                r#""2024-02-29T13:45:01.123456Z""#,
            ),
            (3, 1_709_214_301, 123_000, r#""2024-02-29T13:45:01.123Z""#),
            (3, 1_709_214_301, 0, r#""2024-02-29T13:45:01.000Z""#),
            (2, 978_307_199, 990_000, r#""2000-12-31T23:59:59.99Z""#),
            (0, i32::MAX as u32, 0, r#""2038-01-19T03:14:07Z""#),
            // Past 2038 (MariaDB 11.5+): mysql_common prints these as negative i32.
            (0, u32::MAX, 0, r#""2106-02-07T06:28:15Z""#),
        ];
        for (fsp, seconds, usec, expected) in cases {
            let c = col(MYSQL_TYPE_TIMESTAMP2, &[*fsp], false, 0);
            let raw = timestamp2_bytes(*seconds, *usec, *fsp);
            assert_eq!(
                decode_json(&c, &from_binlog(&c, &raw)),
                *expected,
                "{seconds} fsp {fsp}"
            );
        }
        let c = col(MYSQL_TYPE_TIMESTAMP2, &[6], false, 0);
        assert_eq!(decode_json(&c, &bytes(b"0")), "null");
        assert_eq!(
            decode_json(&c, &bytes(b"1709214301.123456")),
            r#""2024-02-29T13:45:01.123456Z""#
        );
        let c3 = col(MYSQL_TYPE_TIMESTAMP2, &[3], false, 0);
        assert_eq!(
            decode_json(&c3, &bytes(b"1709214301.123000")),
            r#""2024-02-29T13:45:01.123Z""#
        );
        for bad in ["", "abc", "1.5", "1.1234567", "-", "99999999999"] {
            let result = decode_value(&c, Some(&bytes(bad.as_bytes())));
            assert!(
                matches!(result, Err(ValueError::Malformed { .. })),
                "{bad:?}: {result:?}"
            );
        }
        let old = col(MYSQL_TYPE_TIMESTAMP, &[], false, 0);
        let raw = 1_709_214_301_u32.to_le_bytes();
        assert_eq!(
            decode_json(&old, &from_binlog(&old, &raw)),
            r#""2024-02-29T13:45:01Z""#
        );
        assert_eq!(decode_json(&old, &from_binlog(&old, &[0; 4])), "null");
    }

    #[test]
    fn civil_from_days_matches_a_day_by_day_calendar() {
        let (mut y, mut m, mut d) = (1970_i64, 1_u8, 1_u8);
        for days in 0..=i64::from(u32::MAX) / 86_400 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > month_len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    /// TIME2 row-image bytes for fsp 0, 1 (non-negative only) and 6.
    fn time2_bytes(negative: bool, h: i64, m: i64, s: i64, usec: i64, fsp: u8) -> Vec<u8> {
        let int_part = (h << 12) | (m << 6) | s;
        match fsp {
            0 => {
                let v = if negative { -int_part } else { int_part } + 0x80_0000;
                v.to_be_bytes()[5..].to_vec()
            }
            1 => {
                assert!(!negative, "helper covers non-negative TIME(1) only");
                let mut raw = (int_part + 0x80_0000).to_be_bytes()[5..].to_vec();
                raw.push((usec / 10_000) as u8);
                raw
            }
            6 => {
                let packed = (int_part << 24) + usec;
                let v = if negative { -packed } else { packed } + 0x8000_0000_0000;
                v.to_be_bytes()[2..].to_vec()
            }
            _ => unreachable!("helper covers fsp 0, 1 and 6"),
        }
    }

    #[test]
    fn times_keep_sign_and_long_hours() {
        let cases: &[TimeCase] = &[
            (0, true, (838, 59, 59), 0, r#""-838:59:59""#),
            (0, false, (838, 59, 59), 0, r#""838:59:59""#),
            (0, false, (0, 0, 0), 0, r#""00:00:00""#),
            (1, false, (13, 45, 1), 500_000, r#""13:45:01.5""#),
            (6, false, (13, 45, 1), 123_456, r#""13:45:01.123456""#),
            (6, true, (0, 0, 0), 1, r#""-00:00:00.000001""#),
            (6, true, (100, 0, 1), 500_000, r#""-100:00:01.500000""#),
        ];
        for (fsp, negative, (h, m, s), usec, expected) in cases {
            let c = col(MYSQL_TYPE_TIME2, &[*fsp], false, 0);
            let raw = time2_bytes(*negative, *h, *m, *s, *usec, *fsp);
            assert_eq!(
                decode_json(&c, &from_binlog(&c, &raw)),
                *expected,
                "{h}:{m}:{s}"
            );
        }
        let c = col(MYSQL_TYPE_TIME2, &[0], false, 0);
        assert_eq!(
            decode_json(&c, &v(Value::Time(false, 1, 2, 3, 4, 0))),
            r#""26:03:04""#
        );
        let old = decode_value(&col(MYSQL_TYPE_TIME, &[], false, 0), None);
        assert!(
            matches!(old, Err(ValueError::Unsupported { .. })),
            "{old:?}"
        );
    }

    #[test]
    fn text_is_decoded_by_collation() {
        let cases: &[(u16, &[u8], &str)] = &[
            (0, "😀 é".as_bytes(), r#""😀 é""#),
            (45, "😀".as_bytes(), r#""😀""#),
            (255, "😀".as_bytes(), r#""😀""#),
            (33, "é".as_bytes(), r#""é""#), // utf8mb3_general_ci
            (8, &[0x80], r#""€""#),         // latin1 is cp1252
            (8, &[0xE9, 0x81], "\"é\u{81}\""),
            (11, b"plain", r#""plain""#),
            (30, &[0xD0, 0xDD, 0xFE, 0xE9], r#""Ğİşé""#), // latin5 (ISO-8859-9)
            (51, &[0xC0], r#""А""#),                      // cp1251
            (54, &[0x00, 0x41, 0xD8, 0x3D, 0xDE, 0x00], r#""A😀""#), // utf16 (BE)
            (56, &[0x41, 0x00], r#""A""#),                // utf16le
            (60, &[0x00, 0x01, 0xF6, 0x00], r#""😀""#),   // utf32
            (28, &[0xC4, 0xE3], r#""你""#),               // gbk
            (13, &[0x82, 0xA0], r#""あ""#),               // sjis
            (2304, "😀".as_bytes(), r#""😀""#),           // MariaDB utf8mb4_uca1400_ai_ci
            (609, "😀".as_bytes(), r#""😀""#),            // MariaDB utf8mb4_myanmar_ci
            (1071, &[0x80], r#""€""#),                    // MariaDB latin1_nopad_bin
        ];
        for (collation, raw, expected) in cases {
            let c = col(MYSQL_TYPE_VARCHAR, &[0x10, 0x00], false, *collation);
            assert_eq!(
                decode_json(&c, &bytes(raw)),
                *expected,
                "collation {collation}"
            );
        }
        let failing: &[(u16, &[u8])] = &[
            (45, &[0x61, 0xC3, 0x28]),
            (0, &[0xFF]),
            (11, &[0x80]),
            (60, &[0x00, 0x11, 0x00, 0x00]),
            (60, &[0x00, 0x00, 0x41]),
            (54, &[0xD8, 0x3D]),
        ];
        for (collation, raw) in failing {
            let c = col(MYSQL_TYPE_VARCHAR, &[0x10, 0x00], false, *collation);
            let result = decode_value(&c, Some(&bytes(raw)));
            assert!(
                matches!(result, Err(ValueError::InvalidText { .. })),
                "collation {collation}: {result:?}"
            );
        }
        let c = col(MYSQL_TYPE_VARCHAR, &[0x10, 0x00], false, 45);
        match decode_value(&c, Some(&bytes(&[0x61, 0xC3, 0x28]))) {
            Err(ValueError::InvalidText { charset, offset }) => {
                assert_eq!((charset, offset), ("utf8mb4", Some(1)));
            }
            other => panic!("{other:?}"),
        }
        let dec8 = decode_value(&col(MYSQL_TYPE_VARCHAR, &[16, 0], false, 3), None);
        assert!(
            matches!(
                dec8,
                Err(ValueError::UnsupportedCharset { collation: 3, .. })
            ),
            "{dec8:?}"
        );
        let unknown = decode_value(&col(MYSQL_TYPE_VARCHAR, &[16, 0], false, 4000), None);
        assert!(
            matches!(
                unknown,
                Err(ValueError::UnknownCollation { collation: 4000 })
            ),
            "{unknown:?}"
        );
    }

    #[test]
    fn binary_strings_are_base64() {
        let binary4 = col(MYSQL_TYPE_STRING, &[0xFE, 4], false, 63);
        let char40 = col(MYSQL_TYPE_STRING, &[0xFE, 40], false, 45);
        let varbinary = col(MYSQL_TYPE_VARCHAR, &[10, 0], false, 63);
        let blob = col(MYSQL_TYPE_BLOB, &[2], false, 63);
        let text = col(MYSQL_TYPE_BLOB, &[2], false, 45);
        let cases: &[(&ColumnSpec, &[u8], &str)] = &[
            // BINARY(4) = 'ab\0\0': the row image carries "ab".
            (&binary4, &[2, b'a', b'b'], r#""YWIAAA==""#),
            (&binary4, &[0], r#""AAAAAA==""#),
            (&binary4, &[4, 1, 2, 3, 4], r#""AQIDBA==""#),
            (&char40, &[2, b'a', b'b'], r#""ab""#),
            (&varbinary, &[2, b'a', b'b'], r#""YWI=""#),
            (&blob, &[4, 0, 0x00, 0x01, 0x02, 0xFF], r#""AAEC/w==""#),
            (
                &text,
                &[6, 0, b'h', 0xC3, 0xA9, b'l', b'l', b'o'],
                r#""héllo""#,
            ),
        ];
        for (c, raw, expected) in cases {
            assert_eq!(
                decode_json(c, &from_binlog(c, raw)),
                *expected,
                "{c:?} {raw:?}"
            );
        }
        // A CHAR/BINARY longer than 255 bytes keeps two length bits in the type byte.
        assert_eq!(string_max_bytes(&[0xCE, 0xFC]), Some(1020));
        assert_eq!(string_max_bytes(&[0xFE, 0xFF]), Some(255));
        assert_eq!(string_max_bytes(&[0xFE]), None);
        let binary300 = col(MYSQL_TYPE_STRING, &[0xEE, 0x2C], false, 63);
        match decode_value(&binary300, Some(&bytes(b"x"))) {
            Ok(FieldValue::Str(b64)) => {
                let raw = BASE64.decode(b64).expect("valid base64");
                assert_eq!((raw.len(), raw.first()), (300, Some(&b'x')));
            }
            other => panic!("{other:?}"),
        }
        let short = decode_value(&col(MYSQL_TYPE_STRING, &[0xFE], false, 63), None);
        assert!(
            matches!(short, Err(ValueError::BadMetadata { .. })),
            "{short:?}"
        );
    }

    #[test]
    fn unsupported_types_fail_even_when_null() {
        let cases: &[(ColumnType, &str)] = &[
            (MYSQL_TYPE_DECIMAL, "DECIMAL (pre-5.0)"),
            (MYSQL_TYPE_TIME, "TIME (pre-5.6.4 format)"),
        ];
        for (ty, name) in cases {
            for value in [None, Some(&v(Value::Int(1)))] {
                match decode_value(&col(*ty, &[0, 1], false, 0), value) {
                    Err(ValueError::Unsupported { column_type }) => assert_eq!(column_type, *name),
                    other => panic!("{ty:?}: {other:?}"),
                }
            }
        }
        // ENUM/SET without labels (no metadata, no catalog) fail on every row too.
        for ty in [MYSQL_TYPE_ENUM, MYSQL_TYPE_SET] {
            for value in [None, Some(&v(Value::Int(1)))] {
                let result = decode_value(&col(ty, &[ty as u8, 1], false, 45), value);
                assert!(
                    matches!(result, Err(ValueError::NoLabels { .. })),
                    "{ty:?}: {result:?}"
                );
            }
        }
    }

    fn labelled(ty: ColumnType, meta: &[u8], labels: &[&str]) -> ColumnSpec {
        ColumnSpec {
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            ..col(ty, meta, false, 45)
        }
    }

    #[test]
    fn enums_are_labels_and_sets_label_arrays() {
        let e = labelled(MYSQL_TYPE_ENUM, &[0xF7, 1], &["red", "gr\"een", "😀"]);
        let e2 = labelled(MYSQL_TYPE_ENUM, &[0xF7, 2], &["a"; 300]);
        let s = labelled(MYSQL_TYPE_SET, &[0xF8, 1], &["a", "b", "c"]);
        let s9 = labelled(
            MYSQL_TYPE_SET,
            &[0xF8, 2],
            &["0", "1", "2", "3", "4", "5", "6", "7", "8"],
        );
        let cases: &[(&ColumnSpec, &[u8], &str)] = &[
            (&e, &[1], r#""red""#),
            (&e, &[2], r#""gr\"een""#),
            (&e, &[3], r#""😀""#),
            (&e, &[0], r#""""#),
            (&e2, &[44, 1], r#""a""#),
            (&s, &[0], "[]"),
            (&s, &[0b101], r#"["a","c"]"#),
            (&s, &[0b111], r#"["a","b","c"]"#),
            (&s9, &[0b1000_0001, 1], r#"["0","7","8"]"#),
        ];
        for (c, raw, expected) in cases {
            assert_eq!(decode_json(c, &from_binlog(c, raw)), *expected, "{raw:?}");
        }
        for (c, raw) in [(&e, &[4u8][..]), (&s, &[0b1000][..])] {
            let result = decode_value(c, Some(&from_binlog(c, raw)));
            assert!(
                matches!(result, Err(ValueError::NoSuchLabel { .. })),
                "{raw:?}: {result:?}"
            );
        }
        assert!(matches!(
            decode_value(&e, Some(&v(Value::Int(-1)))),
            Err(ValueError::Malformed { .. })
        ));
        // Labels are decoded by their collation; binary labels stay text.
        assert_eq!(decode_label(8, &[0x80]).unwrap(), "€");
        assert_eq!(decode_label(63, b"x").unwrap(), "x");
        assert!(decode_label(45, &[0xFF]).is_err());
    }

    #[test]
    fn json_geometry_and_vector_columns_write_raw_json() {
        // MySQL JSON {"a":[1,true]} as JSONB (small object holding a small array).
        let jsonb_doc: &[u8] = &[
            0x00, 1, 0, 22, 0, 11, 0, 1, 0, 0x02, 12, 0, b'a', 2, 0, 10, 0, 0x05, 1, 0, 0x04, 1, 0,
        ];
        let mut image = (jsonb_doc.len() as u32).to_le_bytes().to_vec();
        image.extend_from_slice(jsonb_doc);
        let json = col(MYSQL_TYPE_JSON, &[4], false, 63);
        assert_eq!(
            decode_json(&json, &from_binlog(&json, &image)),
            r#"{"a":[1,true]}"#
        );
        // MariaDB JSON: LONGTEXT with json_valid.
        let text = ColumnSpec {
            json_text: true,
            ..col(MYSQL_TYPE_BLOB, &[4], false, 46)
        };
        assert_eq!(
            decode_json(&text, &bytes(br#" {"a" : [1, 2.50]} "#)),
            r#"{"a":[1,2.50]}"#
        );
        assert!(matches!(
            decode_value(&text, Some(&bytes(b"{oops"))),
            Err(ValueError::Json(_))
        ));
        // json_text on a binary column is ignored: still base64.
        let binary = ColumnSpec {
            json_text: true,
            ..col(MYSQL_TYPE_BLOB, &[4], false, 63)
        };
        assert_eq!(decode_json(&binary, &bytes(b"{}")), r#""e30=""#);
        // GEOMETRY: SRID 0 + WKB point (1, 2).
        let mut wkb = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
        wkb.extend_from_slice(&1.0f64.to_le_bytes());
        wkb.extend_from_slice(&2.0f64.to_le_bytes());
        let geometry = col(MYSQL_TYPE_GEOMETRY, &[4], false, 63);
        assert_eq!(
            decode_json(&geometry, &bytes(&wkb)),
            r#"{"type":"Point","coordinates":[1.0,2.0]}"#
        );
        assert!(matches!(
            decode_value(&geometry, Some(&bytes(&wkb[..10]))),
            Err(ValueError::Geometry(_))
        ));
        // VECTOR: little-endian f32.
        let vector = col(MYSQL_TYPE_VECTOR, &[4], false, 63);
        let mut floats = Vec::new();
        for f in [0.1f32, -2.5, 3.0] {
            floats.extend_from_slice(&f.to_le_bytes());
        }
        assert_eq!(decode_json(&vector, &bytes(&floats)), "[0.1,-2.5,3.0]");
        assert_eq!(decode_json(&vector, &bytes(&[])), "[]");
        for bad in [&floats[..5], &f32::NAN.to_le_bytes()[..]] {
            assert!(matches!(
                decode_value(&vector, Some(&bytes(bad))),
                Err(ValueError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn bad_metadata_and_unexpected_values_are_errors() {
        for meta in [&[][..], &[7][..]] {
            for ty in [
                MYSQL_TYPE_DATETIME2,
                MYSQL_TYPE_TIMESTAMP2,
                MYSQL_TYPE_TIME2,
            ] {
                let result = decode_value(&col(ty, meta, false, 0), None);
                assert!(
                    matches!(result, Err(ValueError::BadMetadata { .. })),
                    "{ty:?} {meta:?}"
                );
            }
        }
        let cases: &[(ColumnType, &[u8], Value)] = &[
            (MYSQL_TYPE_LONG, &[], Value::Bytes(b"1".to_vec())),
            (MYSQL_TYPE_FLOAT, &[4], Value::Double(0.1)),
            (MYSQL_TYPE_NEWDECIMAL, &[3, 2], Value::Double(1.5)),
            (MYSQL_TYPE_NEWDATE, &[], Value::Time(false, 0, 0, 0, 0, 0)),
            (MYSQL_TYPE_DATETIME2, &[0], Value::Bytes(b"2024".to_vec())),
            (MYSQL_TYPE_TIME2, &[0], Value::Date(2024, 1, 1, 0, 0, 0, 0)),
            (MYSQL_TYPE_VARCHAR, &[10, 0], Value::Int(1)),
            (MYSQL_TYPE_YEAR, &[], Value::Int(2024)),
        ];
        for (ty, meta, value) in cases {
            let result = decode_value(&col(*ty, meta, false, 45), Some(&v(value.clone())));
            assert!(
                matches!(result, Err(ValueError::UnexpectedValue { .. })),
                "{ty:?} {value:?}: {result:?}"
            );
        }
        let jsonb = ParseBuf(&[0x04, 0x01])
            .parse::<mysql_common::binlog::jsonb::Value<'_>>(())
            .expect("JSONB literal true");
        let result = decode_value(
            &col(MYSQL_TYPE_LONG, &[], false, 0),
            Some(&BinlogValue::Jsonb(jsonb)),
        );
        assert!(
            matches!(
                result,
                Err(ValueError::UnexpectedValue { found: "JSONB", .. })
            ),
            "{result:?}"
        );
    }

    #[test]
    fn null_is_null_for_every_supported_type() {
        for (ty, meta) in [
            (MYSQL_TYPE_LONG, &[][..]),
            (MYSQL_TYPE_DATETIME2, &[6][..]),
            (MYSQL_TYPE_VARCHAR, &[10, 0][..]),
            (MYSQL_TYPE_STRING, &[0xFE, 4][..]),
        ] {
            let c = col(ty, meta, false, 63);
            assert_eq!(decode_value(&c, None).ok(), Some(FieldValue::Null));
            assert_eq!(
                decode_value(&c, Some(&v(Value::NULL))).ok(),
                Some(FieldValue::Null)
            );
        }
        assert_eq!(json_of(&FieldValue::Null), "null");
    }

    #[test]
    fn strings_are_escaped_per_rfc_8259() {
        let cases: &[(&str, &str)] = &[
            ("", r#""""#),
            ("plain", r#""plain""#),
            (r#"say "hi""#, r#""say \"hi\"""#),
            (r"back\slash", r#""back\\slash""#),
            ("a\nb\rc\td", r#""a\nb\rc\td""#),
            ("\u{8}\u{c}", r#""\b\f""#),
            ("\u{0}\u{1}\u{1f}", r#""\u0000\u0001\u001f""#),
            ("\u{7f} é 😀 \u{2028}", "\"\u{7f} é 😀 \u{2028}\""),
            ("/", r#""/""#),
        ];
        for (input, expected) in cases {
            let json = json_of(&FieldValue::Str((*input).to_owned()));
            assert_eq!(json, *expected, "{input:?}");
            let back: String = serde_json::from_str(&json).expect("valid JSON string");
            assert_eq!(back, *input);
        }
    }

    #[test]
    fn doc_ids() {
        let s = |t: &str| FieldValue::Str(t.to_owned());
        let cases: &[(&[FieldValue], &str)] = &[
            (&[FieldValue::Int(-42)], "-42"),
            (&[FieldValue::UInt(u64::MAX)], "18446744073709551615"),
            (&[s("a:b")], "a:b"),
            (&[s("a:b"), s(r"c\d")], r"a\:b:c\\d"),
            (&[FieldValue::Int(1), FieldValue::UInt(2), s("x")], "1:2:x"),
            (
                &[
                    FieldValue::Decimal("1.50".to_owned()),
                    FieldValue::Float(0.1),
                ],
                "1.50:0.1",
            ),
            (
                &[FieldValue::Double(0.1), s("2024-02-29T13:45:01Z")],
                r"0.1:2024-02-29T13\:45\:01Z",
            ),
            (&[s(""), s("")], ":"),
            (&[s(r"\:")], r"\:"),
            (&[s(r"\:"), s("")], r"\\\::"),
            (&[], ""),
        ];
        for (parts, expected) in cases {
            let refs: Vec<&FieldValue> = parts.iter().collect();
            assert_eq!(doc_id(&refs), *expected, "{parts:?}");
        }
    }
}
