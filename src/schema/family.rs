//! The one classification of a column by its type and flags, which the decoder (how a
//! value becomes JSON) and the index mapping (which field type holds it) both follow, so
//! the two cannot disagree.

use mysql_common::constants::ColumnType;

use super::table::{BINARY_COLLATION, ColumnSpec};

/// What kind of data a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnFamily {
    /// TINYINT, SMALLINT, INT, BIGINT.
    Integer {
        /// BIGINT: an unsigned one reaches 2^64-1.
        bigint: bool,
        /// UNSIGNED.
        unsigned: bool,
    },
    /// MEDIUMINT, whose sign the decoder restores itself.
    MediumInt {
        /// UNSIGNED.
        unsigned: bool,
    },
    /// FLOAT.
    Float,
    /// DOUBLE.
    Double,
    /// DECIMAL (precision and scale in the metadata).
    Decimal,
    /// BIT(n) (the width in the metadata).
    Bit,
    /// YEAR.
    Year,
    /// DATE.
    Date,
    /// DATETIME.
    DateTime {
        /// DATETIME2: the fractional-second precision is in the metadata.
        fractional: bool,
    },
    /// TIMESTAMP.
    Timestamp {
        /// TIMESTAMP2: the fractional-second precision is in the metadata.
        fractional: bool,
    },
    /// TIME2 (MySQL 5.6.4+).
    Time,
    /// The pre-5.6.4 TIME format.
    OldTime,
    /// CHAR, VARCHAR, TEXT, BINARY, VARBINARY and BLOB types in the `binary` character set.
    Binary,
    /// CHAR, VARCHAR and TEXT types in a text character set.
    Text,
    /// MariaDB's `JSON` alias: a text column holding JSON.
    JsonText,
    /// ENUM.
    Enum,
    /// SET.
    Set,
    /// MySQL's binary JSON.
    Json,
    /// GEOMETRY and its subtypes.
    Geometry,
    /// VECTOR (MySQL 9).
    Vector,
    /// Types no row image carries in a usable form: pre-5.0 DECIMAL, NULL, typed arrays,
    /// unknown.
    Unsupported,
}

/// Whether `collation` is the `binary` character set: its id, or MariaDB's NO PAD variant
/// of it (base id + 1024).
pub fn is_binary_collation(collation: u16) -> bool {
    collation == BINARY_COLLATION || collation == BINARY_COLLATION + 1024
}

impl ColumnSpec {
    /// The column's family, from its type, unsigned flag, collation and JSON flag.
    pub fn family(&self) -> ColumnFamily {
        use ColumnType::*;
        match self.column_type {
            MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG => ColumnFamily::Integer {
                bigint: false,
                unsigned: self.unsigned,
            },
            MYSQL_TYPE_LONGLONG => ColumnFamily::Integer {
                bigint: true,
                unsigned: self.unsigned,
            },
            MYSQL_TYPE_INT24 => ColumnFamily::MediumInt {
                unsigned: self.unsigned,
            },
            MYSQL_TYPE_FLOAT => ColumnFamily::Float,
            MYSQL_TYPE_DOUBLE => ColumnFamily::Double,
            MYSQL_TYPE_NEWDECIMAL => ColumnFamily::Decimal,
            MYSQL_TYPE_BIT => ColumnFamily::Bit,
            MYSQL_TYPE_YEAR => ColumnFamily::Year,
            // TableMapEvent reports DATE as NEWDATE; both decode to `Value::Date`.
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => ColumnFamily::Date,
            MYSQL_TYPE_DATETIME => ColumnFamily::DateTime { fractional: false },
            MYSQL_TYPE_DATETIME2 => ColumnFamily::DateTime { fractional: true },
            MYSQL_TYPE_TIMESTAMP => ColumnFamily::Timestamp { fractional: false },
            MYSQL_TYPE_TIMESTAMP2 => ColumnFamily::Timestamp { fractional: true },
            MYSQL_TYPE_TIME2 => ColumnFamily::Time,
            MYSQL_TYPE_TIME => ColumnFamily::OldTime,
            MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_STRING
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
            | MYSQL_TYPE_BLOB => {
                // Binary data stays bytes (base64) even when flagged JSON.
                if is_binary_collation(self.collation) {
                    ColumnFamily::Binary
                } else if self.json_text {
                    ColumnFamily::JsonText
                } else {
                    ColumnFamily::Text
                }
            }
            MYSQL_TYPE_ENUM => ColumnFamily::Enum,
            MYSQL_TYPE_SET => ColumnFamily::Set,
            MYSQL_TYPE_JSON => ColumnFamily::Json,
            MYSQL_TYPE_GEOMETRY => ColumnFamily::Geometry,
            MYSQL_TYPE_VECTOR => ColumnFamily::Vector,
            MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NULL | MYSQL_TYPE_TYPED_ARRAY | MYSQL_TYPE_UNKNOWN => {
                ColumnFamily::Unsupported
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_columns_split_by_collation_then_json_flag() {
        let col = |collation, json_text| ColumnSpec {
            column_type: ColumnType::MYSQL_TYPE_BLOB,
            collation,
            json_text,
            ..ColumnSpec::default()
        };
        assert_eq!(col(63, true).family(), ColumnFamily::Binary);
        assert_eq!(col(63 + 1024, false).family(), ColumnFamily::Binary);
        assert_eq!(col(45, true).family(), ColumnFamily::JsonText);
        assert_eq!(col(0, false).family(), ColumnFamily::Text);
    }
}
