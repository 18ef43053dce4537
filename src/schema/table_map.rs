//! Reading a table map event: column types, metadata, signedness, collations, ENUM/SET
//! labels and key columns from its optional metadata (`binlog_row_metadata=FULL`), and
//! completing it with catalog facts where that metadata is missing.

use mysql_common::binlog::events::{OptionalMetaExtractor, OptionalMetadataField, TableMapEvent};
use mysql_common::constants::ColumnType;

use super::catalog::CatalogColumns;
use super::table::{BINARY_COLLATION, ColumnSpec, SchemaError};

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
/// `decode_label` turns an ENUM/SET label's bytes into text by the column's collation
/// (character sets are the decoder's business: the reader passes `decode::decode_label`).
///
/// # Errors
/// Unknown column types, malformed optional metadata, or a label `decode_label` refuses.
pub fn read_table_map<E: std::fmt::Display>(
    tme: &TableMapEvent<'_>,
    decode_label: impl Fn(u16, &[u8]) -> Result<String, E>,
) -> Result<MapInfo, SchemaError> {
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
            .map(|raw| decode_label(collation, raw))
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
        self.columns.iter().any(|c| {
            c.column_type == ColumnType::MYSQL_TYPE_BLOB && c.collation != BINARY_COLLATION
        })
    }
}

/// Marks the named text columns as holding JSON (MariaDB's `JSON` alias).
pub fn mark_json_columns(map: &mut MapInfo, json_columns: &[String]) {
    for col in &mut map.columns {
        if col.column_type == ColumnType::MYSQL_TYPE_BLOB
            && col.collation != BINARY_COLLATION
            && json_columns.contains(&col.name)
        {
            col.json_text = true;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TableRule;
    use crate::schema::table::build;

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
            collations: vec![45, BINARY_COLLATION, 46],
            unsigned: vec![false; 3],
            key: vec![0],
            labels: vec![vec!["x".into(), "y".into()], vec![], vec![]],
        };
        merge_catalog("d", "t", &mut map, &catalog).unwrap();
        assert!(!map.lacks_labels());
        assert_eq!(map.columns[0].labels, ["x", "y"]);
        assert_eq!(map.columns[1].collation, BINARY_COLLATION);
        assert_eq!(map.key, [0]);
        assert!(map.has_text_blobs());
        mark_json_columns(&mut map, &["j".to_owned(), "b".to_owned()]);
        assert!(
            !map.columns[1].json_text,
            "a binary column is never JSON text"
        );
        assert!(map.columns[2].json_text);
    }
}
