//! Schema building for offline tests over ../shared/binlog-samples, where no
//! catalog exists to complete a table map. Included by path, without the server harness.

use binlog2es::config::TableRule;
use binlog2es::schema::{self, TableSchema};
use mysql_common::binlog::events::TableMapEvent;

/// A rule matching every table, into `{db}.{table}`.
pub fn rule() -> TableRule {
    TableRule {
        pattern: "*.*".into(),
        index: "{db}.{table}".into(),
        ..TableRule::default()
    }
}

/// The schema the daemon would build, completed where the daemon would ask the
/// catalog: names `@1…` without full metadata, the first column as key without a
/// primary key, and stand-in labels `#1`, `#2`, … (as many as the value width
/// allows) for ENUM/SET columns without their values.
pub fn offline_schema(tme: &TableMapEvent<'_>) -> Result<TableSchema, String> {
    let mut map =
        schema::read_table_map(tme, binlog2es::decode::decode_label).map_err(|e| e.to_string())?;
    if !map.has_names {
        for (i, col) in map.columns.iter_mut().enumerate() {
            col.name = format!("@{}", i + 1);
        }
        map.has_names = true;
    }
    if map.key.is_empty() {
        map.key = vec![0];
    }
    for col in &mut map.columns {
        if col.column_type.is_enum_or_set_type() && col.labels.is_empty() {
            let n = match col.meta.get(1) {
                Some(1) if col.column_type.is_enum_type() => 255,
                Some(_) if col.column_type.is_enum_type() => 65535,
                Some(bytes) => usize::from(*bytes) * 8,
                None => 0,
            };
            col.labels = (1..=n).map(|i| format!("#{i}")).collect();
        }
    }
    schema::build(&tme.database_name(), &tme.table_name(), &rule(), map).map_err(|e| e.to_string())
}
