//! A decoded column value ([`FieldValue`]) and what can be wrong with one
//! ([`ValueError`]), shared by the decoders of every type family.

use mysql_common::Value;
use mysql_common::constants::ColumnType;

use crate::json_string::write_json_string;

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

impl FieldValue {
    /// Appends the JSON text of this value to `out`.
    ///
    /// Non-finite floats cannot come out of [`decode_value`](super::value::decode_value); if
    /// one is built by hand it is written as `null`, since JSON has no NaN or infinity.
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
}

fn at_offset(offset: Option<usize>) -> String {
    offset
        .map(|o| format!(" (first bad byte at offset {o})"))
        .unwrap_or_default()
}

pub(super) fn unexpected(ty: ColumnType, found: &'static str) -> ValueError {
    ValueError::UnexpectedValue {
        column_type: type_name(ty),
        found,
    }
}

pub(super) fn malformed(ty: ColumnType, value: String) -> ValueError {
    ValueError::Malformed {
        column_type: type_name(ty),
        value,
    }
}

pub(super) fn bad_metadata(ty: ColumnType, meta: &[u8]) -> ValueError {
    ValueError::BadMetadata {
        column_type: type_name(ty),
        meta: meta.to_vec(),
    }
}

pub(super) fn kind(value: &Value) -> &'static str {
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
pub(super) fn type_name(ty: ColumnType) -> &'static str {
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
