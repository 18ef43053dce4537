//! The table model every stage shares: a table's columns as the decoder needs them, its
//! `_id` columns and its target index, and why such a model cannot be built.

use std::any::Any;
use std::sync::{Arc, OnceLock};

use mysql_common::constants::ColumnType;

use crate::config::TableRule;

use super::table_map::MapInfo;

/// The `binary` collation id: BINARY, VARBINARY and the BLOB types hold bytes, not text.
pub const BINARY_COLLATION: u16 = 63;

/// One column as the decoder needs it (built from the table map event, completed from the
/// catalog).
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

/// What the decoder derives from a schema once (field names as JSON, resolved column
/// types, key slots), kept with the schema so that it lives exactly as long as it: a
/// changed table gets a new schema and so an empty cache. Opaque here, since the decoder's
/// types belong to decode, which this module must not import.
///
/// Derived from the schema, so it never makes two schemas differ; a clone starts empty (it
/// may be changed before use, and must not keep what its original derived).
#[derive(Default)]
pub struct DecoderCache(OnceLock<Box<dyn Any + Send + Sync>>);

impl DecoderCache {
    /// The cached `T`, built by `build` the first time it is asked for; `None` when the
    /// cache already holds a value of another type.
    pub fn get_or_init<T: Any + Send + Sync>(&self, build: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(build())).downcast_ref()
    }
}

impl Clone for DecoderCache {
    fn clone(&self) -> Self {
        DecoderCache::default()
    }
}

impl PartialEq for DecoderCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for DecoderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecoderCache")
    }
}

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
    /// What the decoder derives from the fields above, built on first use.
    pub decoder_cache: DecoderCache,
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
         [[tables]] rule so documents get a stable _id, or leave it out with \
         skip_tables = [\"{table}\"] (or on_keyless = \"skip\")"
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
    /// The table no longer exists and the event lacks what the catalog would have told.
    #[error(
        "`{table}` no longer exists, so information_schema cannot supply the column names \
         or ENUM/SET labels its binlog event lacks; set binlog_row_metadata=FULL on the server \
         so they travel with each event"
    )]
    Gone {
        /// `db.table`.
        table: String,
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
    Ok(TableSchema {
        db: db.to_owned(),
        table: table.to_owned(),
        columns: map.columns,
        key,
        index: rule.index_for(db, table).into(),
        decoder_cache: DecoderCache::default(),
    })
}
