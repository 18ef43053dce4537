//! Decoded values as SQL parameters: how a root key or an `on` value read from a row image
//! is looked up again in MySQL (`WHERE (k) IN ((?))`). The connection is utf8mb4 with a UTC
//! time zone (`scan::SESSION_SETUP`), so text goes as UTF-8 and temporal values as their
//! SPEC §6 text without the `T` and `Z`.

use base64::Engine;
use mysql_common::Value;

use crate::decode::field::FieldValue;
use crate::schema::{ColumnFamily, ColumnSpec};

/// `value` (a decoded value of `col`) as a parameter MySQL compares equal to the stored one.
pub fn sql_param(col: &ColumnSpec, value: &FieldValue) -> Value {
    match value {
        FieldValue::Null => Value::NULL,
        FieldValue::Int(i) => Value::Int(*i),
        FieldValue::UInt(u) => Value::UInt(*u),
        FieldValue::Float(f) => Value::Float(*f),
        FieldValue::Double(d) => Value::Double(*d),
        FieldValue::Decimal(text) => Value::Bytes(text.as_bytes().to_vec()),
        FieldValue::Str(s) => match col.family() {
            // Binary values are base64 in documents; MySQL compares the bytes.
            ColumnFamily::Binary => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_or_else(|_| Value::Bytes(s.as_bytes().to_vec()), Value::Bytes),
            ColumnFamily::Date
            | ColumnFamily::DateTime { .. }
            | ColumnFamily::Timestamp { .. }
            | ColumnFamily::Time => {
                Value::Bytes(s.trim_end_matches('Z').replacen('T', " ", 1).into_bytes())
            }
            _ => Value::Bytes(s.as_bytes().to_vec()),
        },
        FieldValue::Raw(raw) => match col.family() {
            // SET: MySQL's text form of the value is its labels joined by commas.
            ColumnFamily::Set => {
                let labels: Vec<String> = serde_json::from_str(raw).unwrap_or_default();
                Value::Bytes(labels.join(",").into_bytes())
            }
            _ => Value::Bytes(raw.as_bytes().to_vec()),
        },
    }
}

/// The routing text of a value (SPEC §9: the column's value as text); `None` for NULL.
pub fn routing_text(value: &FieldValue) -> Option<String> {
    match value {
        FieldValue::Null => None,
        FieldValue::Int(i) => Some(i.to_string()),
        FieldValue::UInt(u) => Some(u.to_string()),
        FieldValue::Float(f) => Some(f.to_string()),
        FieldValue::Double(d) => Some(d.to_string()),
        FieldValue::Decimal(t) | FieldValue::Str(t) | FieldValue::Raw(t) => Some(t.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::constants::ColumnType;

    fn col(ty: ColumnType, collation: u16) -> ColumnSpec {
        ColumnSpec {
            name: "c".into(),
            column_type: ty,
            collation,
            ..ColumnSpec::default()
        }
    }

    #[test]
    fn values_become_parameters_mysql_compares_equal() {
        let text = col(ColumnType::MYSQL_TYPE_VARCHAR, 45);
        assert_eq!(
            sql_param(&text, &FieldValue::Str("é".into())),
            Value::Bytes("é".into())
        );
        let bin = col(
            ColumnType::MYSQL_TYPE_VARCHAR,
            crate::schema::BINARY_COLLATION,
        );
        assert_eq!(
            sql_param(&bin, &FieldValue::Str("AAE=".into())),
            Value::Bytes(vec![0, 1])
        );
        let dt = col(ColumnType::MYSQL_TYPE_DATETIME2, 0);
        assert_eq!(
            sql_param(&dt, &FieldValue::Str("2024-02-29T13:45:01.5".into())),
            Value::Bytes(b"2024-02-29 13:45:01.5".to_vec())
        );
        let ts = col(ColumnType::MYSQL_TYPE_TIMESTAMP2, 0);
        assert_eq!(
            sql_param(&ts, &FieldValue::Str("2024-02-29T13:45:01Z".into())),
            Value::Bytes(b"2024-02-29 13:45:01".to_vec())
        );
        assert_eq!(
            sql_param(&text, &FieldValue::UInt(u64::MAX)),
            Value::UInt(u64::MAX)
        );
        assert_eq!(routing_text(&FieldValue::Int(-4)).as_deref(), Some("-4"));
        assert_eq!(routing_text(&FieldValue::Null), None);
    }
}
