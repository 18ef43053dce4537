//! Per-table column metadata: names, types, signedness, collations and key
//! columns, from the table map event's optional metadata
//! (`binlog_row_metadata=FULL`) or, where that is missing, from `information_schema`.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_common::binlog::events::{OptionalMetaExtractor, TableMapEvent};

use crate::config::TableRule;
use crate::decode::value::ColumnSpec;

/// Everything the decoder needs to know about one table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableSchema {
    /// Database name.
    pub db: String,
    /// Table name.
    pub table: String,
    /// Columns in table order.
    pub columns: Vec<ColumnSpec>,
    /// Indexes into `columns` of the `_id` columns, in key order.
    pub key: Vec<usize>,
    /// Target index.
    pub index: Arc<str>,
    /// `"name":` JSON prefixes, one per column, built once.
    pub field_prefixes: Vec<Vec<u8>>,
}

impl TableSchema {
    /// `db.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.db, self.table)
    }
}

/// Why a schema cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// No key and no `id_columns`.
    #[error(
        "table `{table}` has no primary key: add one, or set id_columns = [\"col\", …] in its \
         [[tables]] rule so documents get a stable _id"
    )]
    NoKey {
        /// `db.table`.
        table: String,
    },
    /// `id_columns` names a column the table does not have.
    #[error("id_columns of `{table}` names `{column}`, which the table does not have")]
    UnknownIdColumn {
        /// `db.table`.
        table: String,
        /// The column.
        column: String,
    },
    /// The table map is malformed.
    #[error("table map of `{table}`: {message}")]
    TableMap {
        /// `db.table`.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// information_schema does not match the binlog's table map.
    #[error(
        "`{table}` has {binlog} columns in the binlog but {catalog} in information_schema \
         (the table changed since); set binlog_row_metadata=FULL on the server so column \
         names travel with each event"
    )]
    Mismatch {
        /// `db.table`.
        table: String,
        /// Columns in the event.
        binlog: usize,
        /// Columns in the catalog.
        catalog: usize,
    },
    /// The catalog query failed.
    #[error("reading information_schema for `{table}`: {source}")]
    Query {
        /// `db.table`.
        table: String,
        /// Driver error.
        source: mysql_async::Error,
    },
}

/// What the table map event itself tells about the columns.
pub struct MapInfo {
    /// Column specs; names empty when the event has none.
    pub columns: Vec<ColumnSpec>,
    /// Whether names came with the event.
    pub has_names: bool,
    /// Primary key column indexes from the event, if present.
    pub key: Vec<usize>,
}

/// Reads column types, metadata and optional metadata out of a table map event.
///
/// # Errors
/// Unknown column types or malformed optional metadata.
pub fn read_table_map(tme: &TableMapEvent<'_>) -> Result<MapInfo, SchemaError> {
    let table = format!("{}.{}", tme.database_name(), tme.table_name());
    let bad = |m: String| SchemaError::TableMap {
        table: table.clone(),
        message: m,
    };
    let extractor = OptionalMetaExtractor::new(tme.iter_optional_meta())
        .map_err(|e| bad(format!("optional metadata: {e}")))?;
    let mut signedness = extractor.iter_signedness();
    let mut charsets = extractor.iter_charset();
    let mut enum_set_charsets = extractor.iter_enum_and_set_charset();
    let names: Vec<String> = extractor
        .iter_column_name()
        .map(|n| n.map(|n| n.name().into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("column names: {e}")))?;
    let key: Vec<usize> = extractor
        .iter_primary_key()
        .map(|k| k.map(|k| k as usize))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("primary key: {e}")))?;
    let count = tme.columns_count() as usize;
    let mut columns = Vec::with_capacity(count);
    for i in 0..count {
        let column_type = tme
            .get_column_type(i)
            .map_err(|e| bad(format!("column {i}: {e}")))?
            .ok_or_else(|| bad(format!("column {i}: no type")))?;
        let meta = tme.get_column_metadata(i).unwrap_or(&[]).to_vec();
        let unsigned = if column_type.is_numeric_type() {
            signedness.next().unwrap_or(false)
        } else {
            false
        };
        let collation = if column_type.is_character_type() {
            charsets
                .next()
                .transpose()
                .map_err(|e| bad(format!("charset: {e}")))?
                .unwrap_or(0)
        } else if column_type.is_enum_or_set_type() {
            enum_set_charsets
                .next()
                .transpose()
                .map_err(|e| bad(format!("charset: {e}")))?
                .unwrap_or(0)
        } else {
            0
        };
        columns.push(ColumnSpec {
            name: names.get(i).cloned().unwrap_or_default(),
            column_type,
            meta,
            unsigned,
            collation,
        });
    }
    Ok(MapInfo {
        has_names: names.len() == count,
        columns,
        key: key.into_iter().filter(|&k| k < count).collect(),
    })
}

/// Column facts from `information_schema`, for servers without full row metadata.
pub struct CatalogColumns {
    /// Names in ordinal order.
    pub names: Vec<String>,
    /// Collation ids in ordinal order (0 when none).
    pub collations: Vec<u16>,
    /// Whether each column is unsigned.
    pub unsigned: Vec<bool>,
    /// Primary key column indexes in key order.
    pub key: Vec<usize>,
}

/// Reads a table's columns and primary key from `information_schema`.
///
/// # Errors
/// The query fails.
pub async fn read_catalog(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
) -> Result<CatalogColumns, SchemaError> {
    let qerr = |source| SchemaError::Query {
        table: format!("{db}.{table}"),
        source,
    };
    let rows: Vec<(String, Option<String>, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLLATION_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(qerr)?;
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let collations = rows
        .iter()
        .map(|r| r.1.as_deref().map(collation_id).unwrap_or(0))
        .collect();
    let unsigned = rows
        .iter()
        .map(|r| r.2.to_ascii_lowercase().contains("unsigned"))
        .collect();
    let key_names: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? \
             AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(qerr)?;
    let key = key_names
        .iter()
        .filter_map(|k| names.iter().position(|n| n == k))
        .collect();
    Ok(CatalogColumns {
        names,
        collations,
        unsigned,
        key,
    })
}

/// The collation id for a collation name; names this mysql_common does not know
/// (newer MariaDB collations) fall back to their character set's default.
fn collation_id(name: &str) -> u16 {
    use mysql_common::collations::CollationId;
    let id = CollationId::from(name) as u16;
    if id != 0 {
        return id;
    }
    let charset = name.split('_').next().unwrap_or_default();
    match charset {
        "latin1" => 8,
        "ascii" => 11,
        "binary" => 63,
        "utf8mb3" | "utf8" => 33,
        _ => 45,
    }
}

/// Completes a table map with catalog facts where the event lacks them.
///
/// # Errors
/// Column counts differ.
pub fn merge_catalog(
    db: &str,
    table: &str,
    map: &mut MapInfo,
    catalog: &CatalogColumns,
) -> Result<(), SchemaError> {
    if catalog.names.len() != map.columns.len() {
        return Err(SchemaError::Mismatch {
            table: format!("{db}.{table}"),
            binlog: map.columns.len(),
            catalog: catalog.names.len(),
        });
    }
    for (i, col) in map.columns.iter_mut().enumerate() {
        if !map.has_names {
            col.name.clone_from(&catalog.names[i]);
        }
        if col.collation == 0 {
            col.collation = catalog.collations[i];
        }
        if col.column_type.is_numeric_type() && !col.unsigned {
            col.unsigned = catalog.unsigned[i];
        }
    }
    map.has_names = true;
    if map.key.is_empty() {
        map.key.clone_from(&catalog.key);
    }
    Ok(())
}

/// Builds the final schema: chooses the `_id` columns and the index.
///
/// # Errors
/// No usable key.
pub fn build(
    db: &str,
    table: &str,
    rule: &TableRule,
    map: MapInfo,
) -> Result<TableSchema, SchemaError> {
    let qualified = format!("{db}.{table}");
    let key = if rule.id_columns.is_empty() {
        map.key
    } else {
        rule.id_columns
            .iter()
            .map(|c| {
                map.columns
                    .iter()
                    .position(|col| &col.name == c)
                    .ok_or_else(|| SchemaError::UnknownIdColumn {
                        table: qualified.clone(),
                        column: c.clone(),
                    })
            })
            .collect::<Result<_, _>>()?
    };
    if key.is_empty() {
        return Err(SchemaError::NoKey { table: qualified });
    }
    let field_prefixes = map
        .columns
        .iter()
        .map(|c| {
            let mut p = Vec::with_capacity(c.name.len() + 3);
            crate::writer::bulk::write_json_str(&mut p, &c.name);
            p.push(b':');
            p
        })
        .collect();
    Ok(TableSchema {
        db: db.to_owned(),
        table: table.to_owned(),
        columns: map.columns,
        key,
        index: rule.index_for(db, table).into(),
        field_prefixes,
    })
}
