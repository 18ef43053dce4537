//! Table maps: what the reader knows of each table it streams, completed from the catalog
//! where the binlog lacks it, with the table's index made ready before its first change.

use std::sync::Arc;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use mysql_common::binlog::events::TableMapEvent;
use tracing::{debug, warn};

use super::{Reader, ReaderError};
use crate::checkpoint::Flavor;
use crate::config::KeylessPolicy;
use crate::document::RowShape;
use crate::schema::{self, SchemaError, TableSchema};

/// A streamed table: its schema and, under a rule with SPEC §9 keys, its row shape.
pub(super) type Known = (Arc<TableSchema>, Option<Arc<RowShape>>);

impl Reader {
    pub(super) async fn on_table_map(
        &mut self,
        tme: TableMapEvent<'static>,
    ) -> Result<(), ReaderError> {
        let id = tme.table_id();
        if let Some((known, _)) = self.tables.get(&id)
            && *known == tme
        {
            return Ok(());
        }
        self.watch_table(&tme).await?;
        let db = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        let Some((rule_index, rule)) = self.config.rule_index_for(&db, &table) else {
            self.tables.insert(id, (tme, None));
            return Ok(());
        };
        let position = self.here();
        let serr = |source| ReaderError::Schema {
            position: position.clone(),
            source,
        };
        let mut map = schema::read_table_map(&tme, crate::decode::decode_label).map_err(serr)?;
        if !map.has_names
            || (map.key.is_empty() && rule.id_columns.is_empty())
            || map.lacks_labels()
        {
            let catalog = self.catalog_conn().await?;
            let cols = schema::read_catalog(catalog, &db, &table)
                .await
                .map_err(serr)?;
            schema::merge_catalog(&db, &table, &mut map, &cols).map_err(serr)?;
        }
        // MariaDB's JSON is a LONGTEXT with a json_valid() check; only the catalog tells.
        if self.identity.flavor == Flavor::Mariadb && map.has_text_blobs() {
            let catalog = self.catalog_conn().await?;
            let json_columns = schema::read_json_columns(catalog, &db, &table)
                .await
                .map_err(serr)?;
            schema::mark_json_columns(&mut map, &json_columns);
        }
        let schema = match schema::build(&db, &table, &rule, map) {
            Ok(schema) => schema,
            // SPEC §2.5: a keyless table the rule may skip does not stop the others.
            Err(SchemaError::NoKey { table: name })
                if rule.keyless_policy() == KeylessPolicy::Skip =>
            {
                if schema::note_keyless(&name) {
                    warn!(table = %name, position = %position, rule = %rule.pattern,
                        "Table has no primary key and is NOT synced: add a primary key (then `binlog2es resync --table {name}`), set id_columns in its [[tables]] rule, or exclude it with skip_tables; on_keyless = \"fail\" stops instead.");
                }
                self.tables.insert(id, (tme, None));
                return Ok(());
            }
            Err(e) => return Err(serr(e)),
        };
        schema::clear_keyless(&schema.qualified());
        let shape = RowShape::new(rule_index, &rule, &schema)
            .map_err(|source| ReaderError::Plan {
                table: schema.qualified(),
                source,
            })?
            .map(Arc::new);
        let schema = Arc::new(schema);
        let at = format!("at binlog position {}", self.here());
        // During a rebuild the index task prepares the new index the same way.
        let prepared = tokio::select! {
            p = self.indices.prepare(Arc::clone(&schema), at) => p,
            _ = self.stop.cancelled() => None,
        };
        prepared.ok_or(ReaderError::IndicesGone)?;
        debug!(table = %schema.qualified(), index = %schema.index, "Table map.");
        self.tables.insert(id, (tme, Some((schema, shape))));
        Ok(())
    }

    pub(super) async fn catalog_conn(&mut self) -> Result<&mut Conn, ReaderError> {
        if self.catalog.is_none() {
            let mut c = self.source.connect().await.map_err(|e| self.conn_err(e))?;
            // Fan-out queries take text as UTF-8 and times in UTC (`document::key`).
            c.query_drop(crate::scan::SESSION_SETUP)
                .await
                .map_err(|e| self.conn_err(e))?;
            self.catalog = Some(c);
        }
        self.catalog
            .as_mut()
            .ok_or_else(|| ReaderError::Prerequisite("catalog connection unavailable".into()))
    }
}
