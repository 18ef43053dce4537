//! Reading tables over SQL with the stream's value mapping, shared by the snapshot and
//! `verify`: the table's schema from the catalog (with the table-map types and metadata the
//! binary-protocol values are converted for), keyset-paginated chunks in primary-key order,
//! and binary-protocol values turned into the row images the decoder takes.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;

use crate::config::TableRule;
use crate::schema::catalog;
use crate::schema::{self, BINARY_COLLATION, ColumnSpec, MapInfo, TableSchema};

/// The utf8mb4 collation a scanning connection uses (`SET NAMES utf8mb4`).
const UTF8MB4: u16 = 45;

/// Session settings every scanning connection needs: UTF-8 text and UTC timestamps, the
/// forms [`wire_to_binlog`] expects.
pub(crate) const SESSION_SETUP: &str = "SET NAMES utf8mb4; SET time_zone = '+00:00'";

/// A value read over SQL that names an ENUM or SET label its column does not have.
#[derive(Debug, thiserror::Error)]
#[error("{kind} label {label:?} unknown")]
pub(crate) struct UnknownLabel {
    /// `ENUM` or `SET`.
    kind: &'static str,
    /// The label as the server sent it.
    label: String,
}

/// A row read over SQL that does not fit its table, located by column.
#[derive(Debug, thiserror::Error)]
#[error("{table}.{column}: {source}")]
pub(crate) struct RowImageError {
    /// `db.table`.
    table: String,
    /// The column.
    column: String,
    /// What does not fit.
    source: UnknownLabel,
}

/// A row read over SQL as the row image the binlog would carry, for the decoder.
///
/// # Errors
/// A value that does not fit its column (an unknown ENUM/SET label), located by column.
pub(crate) fn row_image(
    schema: &TableSchema,
    row: impl IntoIterator<Item = Value>,
) -> Result<Vec<Option<BinlogValue<'static>>>, RowImageError> {
    schema
        .columns
        .iter()
        .zip(row)
        .map(|(col, value)| {
            wire_to_binlog(col, value)
                .map(|v| Some(BinlogValue::Value(v)))
                .map_err(|source| RowImageError {
                    table: schema.qualified(),
                    column: col.name.clone(),
                    source,
                })
        })
        .collect()
}

/// Why a table's schema could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemaReadError {
    /// The catalog query failed (a lost connection...): worth trying again.
    #[error("reading information_schema for `{table}`: {source}")]
    Query {
        /// `db.table`.
        table: String,
        /// The driver's error.
        source: mysql_async::Error,
    },
    /// The table cannot be turned into documents (unsupported column, no key...).
    #[error("{0}")]
    Table(String),
}

/// Builds the table's schema from the catalog, with the table-map types and metadata bytes
/// the binary-protocol values are converted for, telling a failed query (transient) from a
/// table that cannot be copied.
pub(crate) async fn read_table_schema(
    conn: &mut Conn,
    rule: &TableRule,
    db: &str,
    table: &str,
) -> Result<TableSchema, SchemaReadError> {
    let query = |source| SchemaReadError::Query {
        table: format!("{db}.{table}"),
        source,
    };
    let from_catalog = |e| match e {
        schema::SchemaError::Query { source, .. } => query(source),
        e => SchemaReadError::Table(e.to_string()),
    };
    let rows = catalog::column_type_facts(conn, db, table)
        .await
        .map_err(from_catalog)?;
    let catalog = schema::read_catalog(conn, db, table)
        .await
        .map_err(from_catalog)?;
    let mut columns = Vec::with_capacity(rows.len());
    for (i, facts) in rows.iter().enumerate() {
        let data_type = facts.data_type.to_ascii_lowercase();
        let binary = catalog.collations.get(i) == Some(&BINARY_COLLATION);
        let (ty, meta, text) = wire_type(&data_type, facts.precision, facts.scale, facts.fsp)
            .ok_or_else(|| {
                SchemaReadError::Table(format!(
                    "column `{}` has type {}, which verify does not support",
                    catalog.names.get(i).map(String::as_str).unwrap_or("?"),
                    facts.column_type
                ))
            })?;
        let meta = if ty == ColumnType::MYSQL_TYPE_STRING && binary {
            string_meta(facts.octets.unwrap_or(0))
        } else {
            meta
        };
        columns.push(ColumnSpec {
            name: String::new(),
            column_type: ty,
            meta,
            unsigned: false,
            // The connection is utf8mb4: every text value arrives as UTF-8.
            collation: if binary {
                BINARY_COLLATION
            } else if text {
                UTF8MB4
            } else {
                0
            },
            labels: Vec::new(),
            json_text: data_type == "json",
        });
    }
    let mut map = MapInfo {
        columns,
        has_names: false,
        key: Vec::new(),
    };
    schema::merge_catalog(db, table, &mut map, &catalog)
        .map_err(|e| SchemaReadError::Table(e.to_string()))?;
    if map.has_text_blobs() {
        // MariaDB's JSON alias; MySQL's CHECK_CONSTRAINTS has no TABLE_NAME (query fails).
        if let Ok(json_columns) = schema::read_json_columns(conn, db, table).await {
            schema::mark_json_columns(&mut map, &json_columns);
        }
    }
    schema::build(db, table, rule, map).map_err(|e| SchemaReadError::Table(e.to_string()))
}

/// Table-map type and metadata for an information_schema DATA_TYPE, and whether values are
/// text in the connection character set.
pub(crate) fn wire_type(
    data_type: &str,
    precision: Option<u64>,
    scale: Option<u64>,
    fsp: Option<u64>,
) -> Option<(ColumnType, Vec<u8>, bool)> {
    use ColumnType::*;
    let fsp = vec![u8::try_from(fsp.unwrap_or(0)).unwrap_or(0)];
    let narrow = |v: Option<u64>| u8::try_from(v.unwrap_or(0)).unwrap_or(0);
    Some(match data_type {
        "tinyint" | "bool" | "boolean" => (MYSQL_TYPE_TINY, vec![], false),
        "smallint" => (MYSQL_TYPE_SHORT, vec![], false),
        "mediumint" => (MYSQL_TYPE_INT24, vec![], false),
        "int" | "integer" => (MYSQL_TYPE_LONG, vec![], false),
        "bigint" => (MYSQL_TYPE_LONGLONG, vec![], false),
        "float" => (MYSQL_TYPE_FLOAT, vec![4], false),
        "double" | "real" | "double precision" => (MYSQL_TYPE_DOUBLE, vec![8], false),
        "decimal" | "numeric" => (
            MYSQL_TYPE_NEWDECIMAL,
            vec![narrow(precision), narrow(scale)],
            false,
        ),
        "bit" => {
            let bits = precision.unwrap_or(1);
            (
                MYSQL_TYPE_BIT,
                vec![(bits % 8) as u8, (bits / 8) as u8],
                false,
            )
        }
        "year" => (MYSQL_TYPE_YEAR, vec![], false),
        "date" => (MYSQL_TYPE_NEWDATE, vec![], false),
        "datetime" => (MYSQL_TYPE_DATETIME2, fsp, false),
        "timestamp" => (MYSQL_TYPE_TIMESTAMP2, fsp, false),
        "time" => (MYSQL_TYPE_TIME2, fsp, false),
        "char" | "binary" => (MYSQL_TYPE_STRING, string_meta(0), true),
        "varchar" | "varbinary" => (MYSQL_TYPE_VARCHAR, vec![0, 0], true),
        "tinytext" | "text" | "mediumtext" | "longtext" | "tinyblob" | "blob" | "mediumblob"
        | "longblob" | "json" => (MYSQL_TYPE_BLOB, vec![4], true),
        "enum" => (MYSQL_TYPE_ENUM, vec![], false),
        "set" => (MYSQL_TYPE_SET, vec![], false),
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" | "geomcollection" => {
            (MYSQL_TYPE_GEOMETRY, vec![4], false)
        }
        "vector" => (MYSQL_TYPE_VECTOR, vec![4], false),
        _ => return None,
    })
}

/// MYSQL_TYPE_STRING metadata for a maximum byte length, encoded as the table map does
/// (the two high bits of the length XOR-ed into the real-type byte).
pub(crate) fn string_meta(len: u64) -> Vec<u8> {
    let high = ((len >> 8) & 0x3) as u8;
    vec![0xfe ^ (high << 4), (len & 0xff) as u8]
}

pub(crate) fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

pub(crate) fn select_list(schema: &TableSchema) -> String {
    let cols: Vec<String> = schema.columns.iter().map(|c| quote(&c.name)).collect();
    format!(
        "SELECT {} FROM {}.{}",
        cols.join(", "),
        quote(&schema.db),
        quote(&schema.table)
    )
}

pub(crate) fn key_list(schema: &TableSchema) -> String {
    let keys: Vec<String> = schema
        .key
        .iter()
        .map(|&k| quote(&schema.columns[k].name))
        .collect();
    keys.join(", ")
}

pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The next chunk of rows in key order after `after` (the last key values seen).
pub(crate) async fn read_chunk(
    conn: &mut Conn,
    schema: &TableSchema,
    after: Option<&[Value]>,
    limit: usize,
) -> Result<Vec<Vec<Value>>, mysql_async::Error> {
    let keys = key_list(schema);
    let (filter, params) = match after {
        Some(values) => (
            format!(" WHERE ({keys}) > ({})", placeholders(values.len())),
            values.to_vec(),
        ),
        None => (String::new(), Vec::new()),
    };
    let sql = format!(
        "{}{filter} ORDER BY {keys} LIMIT {limit}",
        select_list(schema)
    );
    let rows: Vec<Row> = conn.exec(sql, params).await?;
    Ok(rows.into_iter().map(Row::unwrap).collect())
}

/// A binary-protocol value as the binlog would carry it for this column.
pub(crate) fn wire_to_binlog(col: &ColumnSpec, value: Value) -> Result<Value, UnknownLabel> {
    use ColumnType::*;
    // Only these types arrive in another form than the binlog's; the rest pass as they are.
    let converted = matches!(
        col.column_type,
        MYSQL_TYPE_YEAR | MYSQL_TYPE_TIMESTAMP2 | MYSQL_TYPE_ENUM | MYSQL_TYPE_SET
    );
    if value == Value::NULL || !converted {
        return Ok(value);
    }
    Ok(match (col.column_type, &value) {
        (MYSQL_TYPE_YEAR, Value::Int(y)) => Value::Bytes(y.to_string().into_bytes()),
        (MYSQL_TYPE_YEAR, Value::UInt(y)) => Value::Bytes(y.to_string().into_bytes()),
        (MYSQL_TYPE_TIMESTAMP2, Value::Date(y, mo, d, h, mi, s, us)) => {
            if *mo == 0 || *d == 0 {
                Value::Bytes(b"0".to_vec())
            } else {
                let days = days_from_civil(i64::from(*y), i64::from(*mo), i64::from(*d));
                let secs =
                    days * 86_400 + i64::from(*h) * 3600 + i64::from(*mi) * 60 + i64::from(*s);
                let text = if *us > 0 {
                    format!("{secs}.{us:06}")
                } else {
                    secs.to_string()
                };
                Value::Bytes(text.into_bytes())
            }
        }
        (MYSQL_TYPE_ENUM, Value::Bytes(label)) => {
            let label = String::from_utf8_lossy(label);
            if label.is_empty() {
                Value::UInt(0)
            } else {
                let i =
                    col.labels
                        .iter()
                        .position(|l| *l == label)
                        .ok_or_else(|| UnknownLabel {
                            kind: "ENUM",
                            label: label.clone().into_owned(),
                        })?;
                Value::UInt(i as u64 + 1)
            }
        }
        (MYSQL_TYPE_SET, Value::Bytes(text)) => {
            let text = String::from_utf8_lossy(text);
            let mut bitmap = vec![0u8; col.labels.len().div_ceil(8).max(1)];
            for label in text.split(',').filter(|l| !l.is_empty()) {
                let i = col
                    .labels
                    .iter()
                    .position(|l| l == label)
                    .ok_or_else(|| UnknownLabel {
                        kind: "SET",
                        label: label.to_owned(),
                    })?;
                bitmap[i / 8] |= 1 << (i % 8);
            }
            Value::Bytes(bitmap)
        }
        _ => value,
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn long_char_metadata_round_trips() {
        for len in [0u64, 1, 255, 256, 765, 1020] {
            let meta = string_meta(len);
            let (b0, b1) = (u64::from(meta[0]), u64::from(meta[1]));
            let decoded = if b0 & 0x30 != 0x30 {
                b1 | (((b0 & 0x30) ^ 0x30) << 4)
            } else {
                b1
            };
            assert_eq!(decoded, len);
        }
    }
}
