//! Tables used inside the relations of document rules (SPEC §9): their changes become
//! refreshes of the root documents they affect (the fan-out), routed with the
//! transaction's version like any change, so each root document's lane sees them in binlog
//! order. A fan-out that needs a query walks the roots in key-ordered chunks, routing each
//! chunk before reading the next: memory stays bounded and the lanes' backpressure holds
//! the reader as it does for rows.

use std::collections::HashSet;
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_common::binlog::events::{RowsEventData, TableMapEvent};

use super::{HeldRows, Reader, ReaderError, ddl};
use crate::checkpoint::TxnGtid;
use crate::config::TableRule;
use crate::decode::images::event_images;
use crate::document::fetch::FetchError;
use crate::ordering::{DocChange, Op, Origin};
use crate::retry::Verdict;
use crate::schema;
use crate::schema::TableSchema;
use crate::telemetry::metrics;

/// Roots read per fan-out query.
const FANOUT_CHUNK: usize = 10_000;

impl Reader {
    /// Keeps the decoding schema of a table that rules use inside relations.
    pub(super) async fn watch_table(
        &mut self,
        tme: &TableMapEvent<'static>,
    ) -> Result<(), ReaderError> {
        let id = tme.table_id();
        let db = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        let Some(docs) = &self.documents else {
            return Ok(());
        };
        if !docs.uses(&db, &table) {
            self.watched.remove(&id);
            return Ok(());
        }
        let position = self.here();
        let serr = |source| ReaderError::Schema {
            position: position.clone(),
            source,
        };
        let mut map = schema::read_table_map(tme, crate::decode::decode_label).map_err(serr)?;
        if !map.has_names || map.lacks_labels() {
            let catalog = self.catalog_conn().await?;
            let cols = schema::read_catalog(catalog, &db, &table)
                .await
                .map_err(serr)?;
            schema::merge_catalog(&db, &table, &mut map, &cols).map_err(serr)?;
        }
        if map.has_text_blobs() {
            let catalog = self.catalog_conn().await?;
            if let Ok(json) = schema::read_json_columns(catalog, &db, &table).await {
                schema::mark_json_columns(&mut map, &json);
            }
        }
        // Only the values matter here; a link table without a key is keyed by all columns.
        let rule = TableRule {
            id_columns: if map.key.is_empty() {
                map.columns.iter().map(|c| c.name.clone()).collect()
            } else {
                Vec::new()
            },
            ..TableRule::default()
        };
        let built = schema::build(&db, &table, &rule, map).map_err(serr)?;
        self.watched.insert(id, Arc::new(built));
        Ok(())
    }

    /// A statement that reshapes (`ALTER`/`CREATE TABLE`) a table of a document rule: its
    /// plan is resolved again; a table used inside relations also makes its roots'
    /// documents be built again (as [`ddl::Ddl::Recopy`] of that table).
    pub(super) async fn reshaped_relation_table(
        &mut self,
        sql: &str,
        db: &str,
    ) -> Option<ddl::Ddl> {
        let docs = self.documents.clone()?;
        let (db, table) = ddl::reshaped_table(sql, db)?;
        let roots = docs.roots_using(&db, &table);
        // The plans read the new columns from now on.
        docs.reload_using(&db, &table, &self.stop).await;
        // A relation table's new shape may change every document of its rules: their roots
        // are copied again (not the table itself, which a plain rule may also mirror).
        (!roots.is_empty()).then_some(ddl::Ddl::Recopy(roots))
    }

    /// Routes a refresh of every root document a rows event of a watched table affects.
    pub(super) async fn on_relation_rows(
        &mut self,
        rows: &RowsEventData<'_>,
        timestamp: u32,
    ) -> Result<(), ReaderError> {
        let Some(schema) = self.watched.get(&rows.table_id()).cloned() else {
            return Ok(());
        };
        let Some(docs) = self.documents.clone() else {
            return Ok(());
        };
        let involved = docs.involving(&schema.db, &schema.table);
        if involved.is_empty() {
            return Ok(());
        }
        let images = event_images(rows, &schema).map_err(|source| ReaderError::Decode {
            position: self.here(),
            source,
        })?;
        if self.txn.is_none() {
            self.begin(timestamp, TxnGtid::None, true).await;
        }
        let origin = Origin {
            file: Arc::clone(&self.file),
            pos: self.outer_end,
        };
        for inv in involved {
            let root = Arc::clone(&inv.plan.plan.root);
            let mut seen: HashSet<String> = HashSet::new();
            let mut direct = Vec::new();
            for image in &images {
                for (id, key) in inv.fanout.direct_roots(image) {
                    if seen.insert(id.clone()) {
                        direct.push(refresh(id, key));
                    }
                }
            }
            self.route_refreshes(&root, &origin, direct).await?;
            if !inv.fanout.needs_query() {
                continue;
            }
            let mut after = None;
            loop {
                let position = self.here();
                self.note_read();
                let conn = self.catalog_conn().await?;
                // The query must see the change's own transaction (and every one before).
                let found = match docs.cover_read(conn).await {
                    Ok(()) => {
                        inv.fanout
                            .roots_after(conn, &images, after.as_ref(), FANOUT_CHUNK)
                            .await
                    }
                    Err(e) => Err(e),
                };
                let ended = conn.query_drop("COMMIT").await;
                let chunk = found.map_err(|e| fanout_error(position, &schema, &e))?;
                ended.map_err(|e| self.conn_err(e))?;
                let full = chunk.len() == FANOUT_CHUNK;
                after = chunk.last().map(|(_, k)| k.clone());
                let changes: Vec<DocChange> = chunk
                    .into_iter()
                    // Keyset pages never repeat a root: only the direct ones are remembered,
                    // so memory does not grow with the fan-out.
                    .filter(|(id, _)| !seen.contains(id))
                    .map(|(id, key)| refresh(id, key))
                    .collect();
                self.route_refreshes(&root, &origin, changes).await?;
                if !full || self.stop.is_cancelled() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Routes (or holds, in an XA transaction) refreshes of root documents of `root`.
    async fn route_refreshes(
        &mut self,
        root: &Arc<crate::schema::TableSchema>,
        origin: &Origin,
        changes: Vec<DocChange>,
    ) -> Result<(), ReaderError> {
        if changes.is_empty() {
            return Ok(());
        }
        metrics::fanout_documents(changes.len());
        let rows = HeldRows {
            schema: Arc::clone(root),
            origin: origin.clone(),
            changes,
        };
        match self.txn.as_mut().and_then(|t| t.held.as_mut()) {
            Some(held) => {
                held.push(rows);
                Ok(())
            }
            None => self.route_rows(rows).await,
        }
    }
}

/// A failed fan-out query: worth reconnecting when the server may answer next time (a lost
/// connection, a lock wait or deadlock, see [`Verdict::of_mysql`]). A statement the tables no
/// longer fit (the reader is behind an `ALTER`) is final here; the restart resolves the rule
/// against the new tables.
fn fanout_error(position: String, schema: &TableSchema, e: &FetchError) -> ReaderError {
    ReaderError::FanOut {
        position,
        table: schema.qualified(),
        message: e.to_string(),
        transient: matches!(e, FetchError::Query { source, .. }
            if Verdict::of_mysql(source) == Verdict::Transient
                || !matches!(source, mysql_async::Error::Server(_))),
    }
}

fn refresh(id: String, key: crate::ordering::RootKey) -> DocChange {
    DocChange {
        id,
        op: Op::Refresh(key),
        routing: None,
    }
}
