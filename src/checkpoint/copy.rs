//! Snapshot progress kept in the checkpoint: which tables are being copied and the last
//! primary key whose chunk Elasticsearch acknowledged.
//!
//! Progress travels with the transaction tickets, so it is committed by the same ordered
//! tracker as binlog positions: a chunk counts as copied only when it and everything read
//! before it are acknowledged, and a restart resumes the copy after that key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mysql_async::Value;
use serde::{Deserialize, Serialize};

use crate::position::Version;

/// One primary-key value, typed as the server sent it, so keyset pagination can resume
/// with exactly the same comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyValue {
    /// SQL NULL (only in `id_columns` that allow it).
    Null,
    /// Signed integer.
    Int(i64),
    /// Unsigned integer.
    Uint(u64),
    /// FLOAT.
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// Bytes (strings, DECIMAL text, binary), base64.
    Bytes(String),
    /// DATE/DATETIME/TIMESTAMP: year, month, day, hour, minute, second, microsecond.
    Date([u32; 7]),
    /// TIME: negative, days, hours, minutes, seconds, microseconds.
    Time(bool, u32, u8, u8, u8, u32),
}

impl From<&Value> for KeyValue {
    fn from(v: &Value) -> Self {
        match v {
            Value::NULL => Self::Null,
            Value::Int(i) => Self::Int(*i),
            Value::UInt(u) => Self::Uint(*u),
            Value::Float(f) => Self::Float(*f),
            Value::Double(d) => Self::Double(*d),
            Value::Bytes(b) => Self::Bytes(STANDARD.encode(b)),
            Value::Date(y, mo, d, h, mi, s, us) => Self::Date([
                u32::from(*y),
                u32::from(*mo),
                u32::from(*d),
                u32::from(*h),
                u32::from(*mi),
                u32::from(*s),
                *us,
            ]),
            Value::Time(neg, d, h, m, s, us) => Self::Time(*neg, *d, *h, *m, *s, *us),
        }
    }
}

/// A saved key value that cannot be bound (a hand-edited checkpoint).
#[derive(Debug, thiserror::Error)]
pub enum SavedKeyError {
    /// Bytes that are not base64.
    #[error("saved key bytes: {0}")]
    Bytes(#[from] base64::DecodeError),
    /// A date part out of its range.
    #[error("{part} {value} out of range in a saved key")]
    OutOfRange {
        /// Which part.
        part: &'static str,
        /// Its value.
        value: u32,
    },
}

impl KeyValue {
    /// The value to bind in a query.
    ///
    /// # Errors
    /// Bytes that are not base64, or a date part out of range (a hand-edited file).
    pub fn to_value(&self) -> Result<Value, SavedKeyError> {
        let narrow = |value: u32, part: &'static str| {
            u8::try_from(value).map_err(|_| SavedKeyError::OutOfRange { part, value })
        };
        Ok(match self {
            Self::Null => Value::NULL,
            Self::Int(i) => Value::Int(*i),
            Self::Uint(u) => Value::UInt(*u),
            Self::Float(f) => Value::Float(*f),
            Self::Double(d) => Value::Double(*d),
            Self::Bytes(b) => Value::Bytes(STANDARD.decode(b)?),
            Self::Date([y, mo, d, h, mi, s, us]) => Value::Date(
                u16::try_from(*y).map_err(|_| SavedKeyError::OutOfRange {
                    part: "year",
                    value: *y,
                })?,
                narrow(*mo, "month")?,
                narrow(*d, "day")?,
                narrow(*h, "hour")?,
                narrow(*mi, "minute")?,
                narrow(*s, "second")?,
                *us,
            ),
            Self::Time(neg, d, h, m, s, us) => Value::Time(*neg, *d, *h, *m, *s, *us),
        })
    }
}

/// Copy progress of one table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableCopy {
    /// Database.
    pub db: String,
    /// Table.
    pub table: String,
    /// Key of the last acknowledged chunk's last row; `None`: nothing copied yet.
    pub after: Option<Vec<KeyValue>>,
    /// Rows copied so far.
    pub rows: u64,
    /// Version current when the copy began: when it ends, documents of the table's own index
    /// still older than this had no row to copy and are deleted.
    pub since: Version,
    /// The physical index a rebuild copies into (SPEC §10); `None`: the rule's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
}

/// A change to the copy progress, carried by a ticket and applied when it commits.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyMark {
    /// The table is to be copied (again) from its first key.
    Start {
        /// Database.
        db: String,
        /// Table.
        table: String,
        /// Version current at the start.
        since: Version,
        /// The rebuild's index the copy writes, if any.
        into: Option<String>,
    },
    /// A chunk up to `after` is copied.
    Chunk {
        /// Database.
        db: String,
        /// Table.
        table: String,
        /// Last key of the chunk.
        after: Vec<KeyValue>,
        /// Rows in the chunk.
        rows: u64,
        /// The `since` of the copy that read it (see [`apply`]).
        since: Version,
        /// The rebuild's index the copy writes, if any.
        into: Option<String>,
    },
    /// The table is fully copied.
    Done {
        /// Database.
        db: String,
        /// Table.
        table: String,
        /// The `since` of the copy that ended (see [`apply`]).
        since: Version,
        /// The rebuild's index the copy writes, if any.
        into: Option<String>,
    },
}

/// Applies `mark` to the list of tables being copied.
///
/// A `Chunk` or `Done` mark counts only for the copy that the table's entry describes (the
/// same `since`): once a newer `Start` reset the entry (a statement changed the table's
/// rows while a copy ran), the older copy's progress must not move it, or a restart would
/// resume after rows that were never copied again, and its sweep would remove them.
pub fn apply(copies: &mut Vec<TableCopy>, mark: CopyMark) {
    // A rebuild's copy of a table is another entry than the table's own copy.
    let find = |copies: &mut Vec<TableCopy>, db: &str, table: &str, into: &Option<String>| {
        copies
            .iter()
            .position(|c| c.db == db && c.table == table && c.into == *into)
    };
    match mark {
        CopyMark::Start {
            db,
            table,
            since,
            into,
        } => {
            let fresh = TableCopy {
                db,
                table,
                after: None,
                rows: 0,
                since,
                into,
            };
            match find(copies, &fresh.db, &fresh.table, &fresh.into) {
                Some(i) => copies[i] = fresh,
                None => copies.push(fresh),
            }
        }
        CopyMark::Chunk {
            db,
            table,
            after,
            rows,
            since,
            into,
        } => {
            if let Some(i) = find(copies, &db, &table, &into)
                && copies[i].since == since
            {
                copies[i].after = Some(after);
                copies[i].rows += rows;
            }
        }
        CopyMark::Done {
            db,
            table,
            since,
            into,
        } => {
            if let Some(i) = find(copies, &db, &table, &into)
                && copies[i].since == since
            {
                copies.remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_round_trip_through_json() {
        let values = vec![
            Value::NULL,
            Value::Int(-7),
            Value::UInt(u64::MAX),
            Value::Float(0.1),
            Value::Double(-2.5e300),
            Value::Bytes(vec![0, 0xff, b':', b'\\']),
            Value::Date(2024, 2, 29, 13, 45, 1, 123_456),
            Value::Time(true, 34, 22, 59, 59, 500_000),
        ];
        for v in values {
            let k = KeyValue::from(&v);
            let text = serde_json::to_string(&k).unwrap();
            let back: KeyValue = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_value().unwrap(), v, "{text}");
        }
        assert_eq!(
            serde_json::to_string(&KeyValue::Int(5)).unwrap(),
            r#"{"int":5}"#
        );
    }

    #[test]
    fn marks_start_advance_and_finish_a_table() {
        let mut copies = Vec::new();
        let start = |since| CopyMark::Start {
            db: "d".into(),
            table: "t".into(),
            since: Version(since),
            into: None,
        };
        apply(&mut copies, start(10));
        apply(
            &mut copies,
            CopyMark::Chunk {
                db: "d".into(),
                table: "t".into(),
                after: vec![KeyValue::Int(1000)],
                rows: 1000,
                since: Version(10),
                into: None,
            },
        );
        assert_eq!(copies[0].after, Some(vec![KeyValue::Int(1000)]));
        assert_eq!(copies[0].rows, 1000);
        // A second start (re-sync) begins again from the first key.
        apply(&mut copies, start(20));
        assert_eq!(copies.len(), 1);
        assert_eq!(
            (copies[0].after.clone(), copies[0].since),
            (None, Version(20))
        );
        // The older copy's progress and end no longer move the entry.
        apply(
            &mut copies,
            CopyMark::Chunk {
                db: "d".into(),
                table: "t".into(),
                after: vec![KeyValue::Int(2000)],
                rows: 1000,
                since: Version(10),
                into: None,
            },
        );
        let done = |since| CopyMark::Done {
            db: "d".into(),
            table: "t".into(),
            since: Version(since),
            into: None,
        };
        apply(&mut copies, done(10));
        assert_eq!(
            (copies.len(), copies[0].after.clone(), copies[0].rows),
            (1, None, 0)
        );
        apply(&mut copies, done(20));
        assert!(copies.is_empty());
    }

    #[test]
    fn bad_saved_keys_are_errors_not_panics() {
        assert!(KeyValue::Bytes("%%".into()).to_value().is_err());
        assert!(
            KeyValue::Date([70_000, 1, 1, 0, 0, 0, 0])
                .to_value()
                .is_err()
        );
    }
}
