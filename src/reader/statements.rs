//! Statements the reader acts on besides row events: those that change rows without
//! row events (TRUNCATE, DROP, RENAME, DROP DATABASE, partition and tablespace
//! operations), and the XA statements that decide when held rows count.
//!
//! Ordering: the reader waits until every ticket it sent before the statement is
//! committed, deletes the affected documents, records the copies it plans on tickets
//! sent before the statement's own, and has the checkpoint written past the statement
//! before it routes anything after it (see [`Reader::after_ddl`]).

use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use super::{Reader, ReaderError, ddl};
use crate::checkpoint::{TxnGtid, XaMark, Xid};

impl Reader {
    /// Applies a statement that changes rows without row events: clears the documents of
    /// tables that are gone, and plans a new copy of tables whose rows changed or appeared
    /// (sent with the statement's ticket by [`Reader::after_ddl`]). Returns `None` when
    /// stopped first, else whether anything was done.
    pub(super) async fn on_ddl(&mut self, ddl: ddl::Ddl) -> Result<Option<bool>, ReaderError> {
        let (verb, gone, recopy) = match ddl {
            ddl::Ddl::Truncate(t) => ("TRUNCATE", vec![t], Vec::new()),
            ddl::Ddl::Drop(ts) => ("DROP TABLE", ts, Vec::new()),
            ddl::Ddl::Rename(pairs) => {
                let (from, to): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
                ("RENAME", from, to)
            }
            ddl::Ddl::DropDatabase(db) => {
                let Some(tables) = self.tables_of_database(&db).await? else {
                    return Ok(None);
                };
                ("DROP DATABASE", tables, Vec::new())
            }
            ddl::Ddl::Recopy(ts) => ("ALTER TABLE", Vec::new(), ts),
        };
        // SPEC §9: a statement on a table a document rule uses inside its relations changes
        // those documents: the rule is resolved again and its root table copied again.
        let mut recopy = recopy;
        if let Some(docs) = self.documents.clone() {
            let touched: Vec<ddl::TableName> = gone.iter().chain(&recopy).cloned().collect();
            for (db, t) in touched {
                docs.reload_using(&db, &t, &self.stop).await;
                for root in docs.roots_using(&db, &t) {
                    if !recopy.contains(&root) {
                        info!(statement = verb, table = %format!("{db}.{t}"), root = %format!("{}.{}", root.0, root.1), "A table of a document rule changed; its documents are built again.");
                        recopy.push(root);
                    }
                }
            }
        }
        for (db, t) in gone.iter().chain(&recopy) {
            self.copies.invalidate(db, t);
        }
        // A table that is gone and comes back in the same statement (a rename swap, as
        // online schema-change tools do) keeps its documents: its copy's sweep removes the
        // stale ones, and readers never see an empty index meanwhile.
        let targets: Vec<(String, String, bool)> = gone
            .iter()
            .filter(|t| !recopy.contains(t))
            .filter_map(|(db, t)| {
                let rule = self.config.rule_for(db, t)?;
                Some((
                    format!("{db}.{t}"),
                    rule.index_for(db, t),
                    crate::config::index_is_per_table(&self.config, db, t),
                ))
            })
            .collect();
        let recopy: Vec<ddl::TableName> = recopy
            .into_iter()
            .filter(|(db, t)| self.config.rule_for(db, t).is_some())
            .collect();
        if targets.is_empty() && recopy.is_empty() {
            return Ok(Some(false));
        }
        // Everything routed before the statement (stream changes and copied chunks) must be
        // in Elasticsearch first, or a late write of an earlier row would survive the delete.
        let wanted = self.sent;
        let stop = self.stop.clone();
        tokio::select! {
            r = self.committed.wait_for(|c| c.tickets >= wanted) => {
                if r.is_err() {
                    return Ok(None);
                }
            }
            _ = stop.cancelled() => return Ok(None),
        }
        for (table, index, per_table) in targets {
            if !per_table {
                error!(statement = verb, table = %table, index = %index, position = %self.here(),
                    "The index is shared with other tables, so this table's documents cannot be told apart and were NOT removed; delete them by hand or give the table its own index.");
                continue;
            }
            let at = format!("at binlog position {}", self.here());
            // A rebuild's new index holds the same documents (see `Reader::route_change`).
            if let Some(target) = self.mirror_of(&index) {
                tokio::select! {
                    d = self.indices.clear(target.to_string(), at.clone()) => d.ok_or(ReaderError::IndicesGone)?,
                    _ = self.stop.cancelled() => return Ok(None),
                };
            }
            let deleted = tokio::select! {
                d = self.indices.clear(index.clone(), at) => d.ok_or(ReaderError::IndicesGone)?,
                _ = self.stop.cancelled() => return Ok(None),
            };
            info!(statement = verb, table = %table, index = %index, deleted, position = %self.here(), "Removed the table's documents.");
        }
        for (db, table) in &recopy {
            info!(statement = verb, table = %format!("{db}.{table}"), position = %self.here(),
                "Rows changed without row events; the table is copied again.");
        }
        self.recopy = recopy;
        Ok(Some(true))
    }

    /// Records the copies the statement [`Reader::on_ddl`] planned, a ticket each, sent
    /// before the statement's own ticket: the checkpoint can then not pass the statement
    /// without them (and a stop drops every later ticket, never an earlier one).
    pub(super) async fn send_recopy_marks(&mut self) {
        // The copies start at the statement's version: every document written before it
        // (the rows it removed included) is older, so the copies' sweeps can find them.
        let since = self.txn.as_ref().map_or(self.state.version, |t| t.version);
        for (db, table) in self.recopy.clone() {
            let ticket = self.mark_ticket(
                Some(crate::checkpoint::CopyMark::Start {
                    db,
                    table,
                    since,
                    into: None,
                }),
                None,
            );
            self.send_ticket(ticket).await;
        }
    }

    /// After a statement [`Reader::on_ddl`] acted on was committed: has the checkpoint
    /// written before anything after the statement is routed, then starts the copies it
    /// planned. A replay of the statement after a crash would otherwise delete documents
    /// written after it, whose replayed writes then lose to the delete's higher internal
    /// version. Returns `false` when stopped first.
    pub(super) async fn after_ddl(&mut self) -> bool {
        let recopy = std::mem::take(&mut self.recopy);
        if !self.sync(self.sent, self.leased).await {
            return false;
        }
        for (db, table) in recopy {
            let (reply, _answer) = oneshot::channel();
            let request = crate::snapshot::ResyncRequest {
                db,
                table,
                reply,
                // The statement's version, as in its copy marks (it is committed now).
                since: Some(self.state.version),
                into: None,
            };
            // Without a copy coordinator the copy starts from the checkpoint at the next start.
            let _ = self.resync.send(request).await;
        }
        true
    }

    /// The synced tables of database `db`: tables a rule names exactly, and for a wildcard
    /// rule, the tables whose indices binlog2es created (their `_meta` names the source
    /// table) among those the rule's `index` template gives for `db`. Indices binlog2es did
    /// not create are never taken for a table. `None` when stopped first.
    pub(super) async fn tables_of_database(
        &mut self,
        db: &str,
    ) -> Result<Option<Vec<ddl::TableName>>, ReaderError> {
        let mut out = Vec::new();
        let rules = self.config.tables.clone();
        for rule in &rules {
            let Some((pd, pt)) = rule.pattern.split_once('.') else {
                continue;
            };
            if !crate::config::glob(pd, db) {
                continue;
            }
            if !pt.contains('*') {
                out.push((db.to_owned(), pt.to_owned()));
                continue;
            }
            let pattern = rule
                .index
                .replace("{db}", db)
                .replace("{table}", "*")
                .to_lowercase();
            let at = format!("at binlog position {}", self.here());
            let created = tokio::select! {
                t = self.indices.created_tables(pattern, at) => t.ok_or(ReaderError::IndicesGone)?,
                _ = self.stop.cancelled() => return Ok(None),
            };
            let prefix = format!("{db}.");
            for table in created
                .iter()
                .filter_map(|t| t.strip_prefix(prefix.as_str()))
                .filter(|t| crate::config::glob(pt, t))
            {
                out.push((db.to_owned(), table.to_owned()));
            }
        }
        out.sort();
        out.dedup();
        Ok(Some(out))
    }

    /// Ends the group of an `XA PREPARE`: its rows wait for the XA transaction's end.
    pub(super) async fn on_xa_prepare(&mut self, timestamp: u32, xid: Xid) {
        if self.txn.is_none() {
            self.begin(timestamp, TxnGtid::None, true).await;
        }
        let Some(t) = self.txn.as_mut() else { return };
        let held = t.held.take().unwrap_or_default();
        t.xa = Some(XaMark::Prepared(xid.clone()));
        let rows: usize = held.iter().map(|h| h.changes.len()).sum();
        debug!(xid = %xid, rows, position = %self.here(), "XA transaction prepared; its rows wait for its commit.");
        if self.prepared.insert(xid.clone(), held).is_some() {
            warn!(xid = %xid, position = %self.here(), "XA transaction prepared again before it ended; keeping the later rows.");
        }
        self.commit().await;
    }

    /// Ends an XA transaction: `commit` routes its rows (held in this group for a
    /// one-phase commit, else since its PREPARE) with this group's version; a
    /// rollback drops them. Closes the group.
    pub(super) async fn on_xa_end(
        &mut self,
        timestamp: u32,
        xid: Xid,
        one_phase: bool,
        commit: bool,
    ) -> Result<(), ReaderError> {
        if self.txn.is_none() {
            self.begin(timestamp, TxnGtid::None, false).await;
        }
        let here_held = self.txn.as_mut().and_then(|t| t.held.take());
        let rows = match (one_phase, here_held) {
            (true, held) => held,
            (false, held) => {
                if let Some(t) = self.txn.as_mut() {
                    t.xa = Some(XaMark::Resolved(xid.clone()));
                }
                let prepared = self.prepared.remove(&xid);
                if prepared.is_none() && commit {
                    // Usually a replay from a checkpoint that an older XA transaction kept
                    // back: this one committed before the restart. But if it was prepared
                    // before binlog2es first started, no copy could see its rows.
                    warn!(xid = %xid, position = %self.here(),
                        "XA COMMIT of a transaction whose PREPARE was not read in this run: fine if it was applied before the restart; if it was prepared before binlog2es first started, its rows are missing: run `binlog2es resync` for the tables it changed.");
                }
                // An XA ROLLBACK inside the group (never prepared) drops what it held.
                prepared.or(held)
            }
        };
        if commit {
            for held in rows.into_iter().flatten() {
                self.route_rows(held).await?;
            }
        }
        self.commit().await;
        Ok(())
    }
}
