//! Per-table column metadata: names, types, signedness, collations, ENUM/SET labels and key
//! columns, from the table map event's optional metadata
//! (`binlog_row_metadata=FULL`) or, where that is missing, from `information_schema`.
//! On MariaDB, text columns that are really JSON (the `JSON` alias is a LONGTEXT with a
//! `json_valid(col)` CHECK constraint) are found in `information_schema.CHECK_CONSTRAINTS`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use mysql_async::prelude::Queryable;
use mysql_common::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_common::constants::ColumnType;

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

/// Tables this process leaves out for lack of a key (SPEC §2.5), so each is reported once.
static KEYLESS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Records that `table` (`db.table`) is skipped for lack of a key and sets its metric.
/// Returns whether this is news, i.e. whether to log it.
pub fn note_keyless(table: &str) -> bool {
    crate::telemetry::metrics::skipped_table(table, true);
    // A poisoned lock only means another thread panicked mid-insert; the set is still usable.
    let mut set = KEYLESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    set.insert(table.to_owned())
}

/// Whether `table` (`db.table`) is skipped for lack of a key.
pub fn is_keyless(table: &str) -> bool {
    let set = KEYLESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    set.contains(table)
}

/// `table` is synced (again): it got a key. Clears its metric if it was skipped.
pub fn clear_keyless(table: &str) {
    let mut set = KEYLESS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if set.remove(table) {
        crate::telemetry::metrics::skipped_table(table, false);
    }
}

/// What the table map event itself tells about the columns.
#[derive(Debug)]
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
    // ENUM_STR_VALUE / SET_STR_VALUE: one label list per ENUM (SET) column, in column order.
    // OptionalMetaExtractor skips these two fields, so they are read here.
    let mut enum_labels: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut set_labels: Vec<Vec<Vec<u8>>> = Vec::new();
    for field in tme.iter_optional_meta() {
        match field.map_err(|e| bad(format!("optional metadata: {e}")))? {
            OptionalMetadataField::EnumStrValue(values) => {
                for column in values.iter_values() {
                    let column = column.map_err(|e| bad(format!("ENUM values: {e}")))?;
                    enum_labels.push(
                        column
                            .values()
                            .iter()
                            .map(|v| v.value_raw().to_vec())
                            .collect(),
                    );
                }
            }
            OptionalMetadataField::SetStrValue(values) => {
                for column in values.iter_values() {
                    let column = column.map_err(|e| bad(format!("SET values: {e}")))?;
                    set_labels.push(
                        column
                            .values()
                            .iter()
                            .map(|v| v.value_raw().to_vec())
                            .collect(),
                    );
                }
            }
            _ => {}
        }
    }
    let mut enum_labels = enum_labels.into_iter();
    let mut set_labels = set_labels.into_iter();
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
        let raw_labels = match column_type {
            ColumnType::MYSQL_TYPE_ENUM => enum_labels.next().unwrap_or_default(),
            ColumnType::MYSQL_TYPE_SET => set_labels.next().unwrap_or_default(),
            _ => Vec::new(),
        };
        let labels = raw_labels
            .iter()
            .map(|raw| crate::decode::value::decode_label(collation, raw))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("column {i}: ENUM/SET label: {e}")))?;
        columns.push(ColumnSpec {
            name: names.get(i).cloned().unwrap_or_default(),
            column_type,
            meta,
            unsigned,
            collation,
            labels,
            json_text: false,
        });
    }
    Ok(MapInfo {
        has_names: names.len() == count,
        columns,
        key: key.into_iter().filter(|&k| k < count).collect(),
    })
}

impl MapInfo {
    /// Whether an ENUM or SET column lacks its labels (no ENUM_STR_VALUE/SET_STR_VALUE
    /// metadata): the catalog has to supply them.
    pub fn lacks_labels(&self) -> bool {
        self.columns
            .iter()
            .any(|c| c.column_type.is_enum_or_set_type() && c.labels.is_empty())
    }

    /// Whether a TEXT-family column (a BLOB type that is not binary) exists, which on MariaDB
    /// may be the JSON alias.
    pub fn has_text_blobs(&self) -> bool {
        self.columns
            .iter()
            .any(|c| c.column_type == ColumnType::MYSQL_TYPE_BLOB && c.collation != BINARY)
    }
}

/// The `binary` collation id.
const BINARY: u16 = 63;

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
    /// ENUM/SET labels per column (empty for other columns).
    pub labels: Vec<Vec<String>>,
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
    let rows: Vec<(String, Option<String>, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLLATION_NAME, COLUMN_TYPE, DATA_TYPE \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(qerr)?;
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    // BINARY, VARBINARY and the BLOB types have no collation in information_schema; they
    // are the binary character set (base64 in documents), not text.
    let collations = rows
        .iter()
        .map(|r| match r.1.as_deref() {
            Some(name) => collation_id(name),
            None if is_binary_data_type(&r.3) => BINARY,
            None => 0,
        })
        .collect();
    let labels = rows.iter().map(|r| parse_labels(&r.2)).collect();
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
        labels,
    })
}

fn is_binary_data_type(data_type: &str) -> bool {
    matches!(
        data_type.to_ascii_lowercase().as_str(),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
    )
}

/// The labels of an `enum('a','b')` / `set('a','b')` COLUMN_TYPE, in definition order.
/// Labels are single-quoted; a quote inside is doubled (`''`) and a backslash escaped (`\\`).
/// Anything else (or a malformed list) gives no labels.
fn parse_labels(column_type: &str) -> Vec<String> {
    let lower = column_type.to_ascii_lowercase();
    let Some(start) = ["enum(", "set("]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map(|p| p.len())
    else {
        return Vec::new();
    };
    let mut labels = Vec::new();
    let mut chars = column_type
        .get(start..)
        .unwrap_or_default()
        .chars()
        .peekable();
    loop {
        match chars.next() {
            Some('\'') => {}
            _ => return Vec::new(),
        }
        let mut label = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                Some('\'') => break,
                Some('\\') => match chars.next() {
                    Some(c) => label.push(c),
                    None => return Vec::new(),
                },
                Some(c) => label.push(c),
                None => return Vec::new(),
            }
        }
        labels.push(label);
        match chars.next() {
            Some(',') => {}
            Some(')') => return labels,
            _ => return Vec::new(),
        }
    }
}

/// Names of the columns of `db.table` that MariaDB's `JSON` alias created: a CHECK constraint
/// that is exactly `json_valid(`col`)`. MariaDB only: MySQL's CHECK_CONSTRAINTS has no
/// TABLE_NAME (and MySQL has a real JSON type).
///
/// # Errors
/// The query fails.
pub async fn read_json_columns(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
) -> Result<Vec<String>, SchemaError> {
    let clauses: Vec<String> = conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await
        .map_err(|source| SchemaError::Query {
            table: format!("{db}.{table}"),
            source,
        })?;
    Ok(clauses
        .iter()
        .filter_map(|c| json_valid_column(c))
        .collect())
}

/// The column of a `json_valid(`col`)` check clause (case-insensitive function name, the column
/// backquoted with `` ` `` doubled inside, or bare), if that is the whole clause.
fn json_valid_column(clause: &str) -> Option<String> {
    let clause = clause.trim();
    let prefix = "json_valid(";
    if !clause.get(..prefix.len())?.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let inner = clause.get(prefix.len()..)?.strip_suffix(')')?.trim();
    if let Some(quoted) = inner.strip_prefix('`').and_then(|q| q.strip_suffix('`')) {
        let name = quoted.replace("``", "`");
        // A lone backquote inside would mean the clause is more than one identifier.
        (!quoted.replace("``", "").contains('`')).then_some(name)
    } else if !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
    {
        Some(inner.to_owned())
    } else {
        None
    }
}

/// Marks the named text columns as holding JSON (MariaDB's `JSON` alias).
pub fn mark_json_columns(map: &mut MapInfo, json_columns: &[String]) {
    for col in &mut map.columns {
        if col.column_type == ColumnType::MYSQL_TYPE_BLOB
            && col.collation != BINARY
            && json_columns.contains(&col.name)
        {
            col.json_text = true;
        }
    }
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
    if catalog.names.is_empty() {
        // Dropped since the event was written (a replay after a restart): the event's own
        // metadata is all there is. Full metadata is enough, and its key is the table's key.
        if map.has_names && !map.lacks_labels() {
            return Ok(());
        }
        return Err(SchemaError::Gone {
            table: format!("{db}.{table}"),
        });
    }
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
        if col.column_type.is_enum_or_set_type() && col.labels.is_empty() {
            col.labels = catalog.labels.get(i).cloned().unwrap_or_default();
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
            crate::decode::write_json_string(&mut p, &c.name);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_type_labels() {
        let cases: &[(&str, &[&str])] = &[
            ("enum('a','b')", &["a", "b"]),
            ("ENUM('x')", &["x"]),
            ("set('red','green','blue')", &["red", "green", "blue"]),
            (
                "enum('it''s','a,b','back\\\\slash','')",
                &["it's", "a,b", "back\\slash", ""],
            ),
            ("enum('é','😀')", &["é", "😀"]),
            ("int(11)", &[]),
            ("varchar(10)", &[]),
            ("enum('open", &[]),
            ("enum(a)", &[]),
        ];
        for (column_type, expected) in cases {
            assert_eq!(parse_labels(column_type), *expected, "{column_type}");
        }
    }

    #[test]
    fn json_valid_clauses() {
        let cases: &[(&str, Option<&str>)] = &[
            ("json_valid(`doc`)", Some("doc")),
            ("JSON_VALID(`a b`)", Some("a b")),
            ("json_valid(`we``ird`)", Some("we`ird")),
            ("json_valid(doc)", Some("doc")),
            ("json_valid(`a`) and `b` > 0", None),
            ("json_valid(`a`) or `a` is null", None),
            ("`a` > 0", None),
            ("json_valid(`a`,`b`)", None),
            ("", None),
        ];
        for (clause, expected) in cases {
            assert_eq!(json_valid_column(clause).as_deref(), *expected, "{clause}");
        }
    }

    #[test]
    fn a_dropped_table_keeps_the_events_own_metadata() {
        let col = |name: &str| ColumnSpec {
            name: name.into(),
            column_type: ColumnType::MYSQL_TYPE_LONG,
            ..ColumnSpec::default()
        };
        let gone = CatalogColumns {
            names: vec![],
            collations: vec![],
            unsigned: vec![],
            key: vec![],
            labels: vec![],
        };
        // Full metadata without a key: the table was keyless, not "changed since".
        let mut map = MapInfo {
            columns: vec![col("a"), col("b")],
            has_names: true,
            key: vec![],
        };
        merge_catalog("d", "t", &mut map, &gone).unwrap();
        let rule = TableRule::default();
        let err = build("d", "t", &rule, map).unwrap_err();
        assert!(matches!(err, SchemaError::NoKey { .. }), "{err}");
        assert!(err.to_string().contains("skip_tables"), "{err}");
        // Without names nothing can decode it: say the table is gone, not that it changed.
        let mut map = MapInfo {
            columns: vec![col(""), col("")],
            has_names: false,
            key: vec![],
        };
        let err = merge_catalog("d", "t", &mut map, &gone).unwrap_err();
        assert!(matches!(err, SchemaError::Gone { .. }), "{err}");
        assert!(err.to_string().contains("no longer exists"), "{err}");
    }

    #[test]
    fn keyless_tables_are_reported_once() {
        assert!(!is_keyless("once.t"));
        assert!(note_keyless("once.t"));
        assert!(!note_keyless("once.t"));
        assert!(is_keyless("once.t"));
        clear_keyless("once.t");
        assert!(!is_keyless("once.t"));
        assert!(note_keyless("once.t"), "reported again after it had a key");
    }

    #[test]
    fn catalog_fills_labels_and_binary_collations() {
        let col = |name: &str, column_type: ColumnType, collation: u16| ColumnSpec {
            name: name.into(),
            column_type,
            collation,
            ..ColumnSpec::default()
        };
        let mut map = MapInfo {
            columns: vec![
                col("", ColumnType::MYSQL_TYPE_ENUM, 0),
                col("", ColumnType::MYSQL_TYPE_BLOB, 0),
                col("", ColumnType::MYSQL_TYPE_BLOB, 0),
            ],
            has_names: false,
            key: vec![],
        };
        assert!(map.lacks_labels());
        let catalog = CatalogColumns {
            names: vec!["e".into(), "b".into(), "j".into()],
            collations: vec![45, BINARY, 46],
            unsigned: vec![false; 3],
            key: vec![0],
            labels: vec![vec!["x".into(), "y".into()], vec![], vec![]],
        };
        merge_catalog("d", "t", &mut map, &catalog).unwrap();
        assert!(!map.lacks_labels());
        assert_eq!(map.columns[0].labels, ["x", "y"]);
        assert_eq!(map.columns[1].collation, BINARY);
        assert_eq!(map.key, [0]);
        assert!(map.has_text_blobs());
        mark_json_columns(&mut map, &["j".to_owned(), "b".to_owned()]);
        assert!(
            !map.columns[1].json_text,
            "a binary column is never JSON text"
        );
        assert!(map.columns[2].json_text);
        assert!(is_binary_data_type("LONGBLOB") && !is_binary_data_type("longtext"));
    }
}
