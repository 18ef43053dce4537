//! Rebuilding an index behind its alias while streaming (SPEC §10, `binlog2es reindex`).
//!
//! One rebuild at a time walks these steps, each recorded in the checkpoint on a ticket of
//! its own (the reader sends it between two transactions, so it has a place in the stream):
//! 1. the new physical index `NAME-<generation>` is created with the current mapping;
//! 2. *start* (phase `copying`): from this point of the stream on, the reader writes every
//!    change to `NAME` to the new index too, and every table whose rule writes `NAME` is
//!    copied into it through the same merge as the initial copy;
//! 3. `catching_up`: the copies have ended; once this step is committed, everything routed
//!    before it is acknowledged in both indices;
//! 4. `switching`: the new index is refreshed and `NAME` moved to it in one `_aliases`
//!    request (a concrete `NAME` is removed in the same request);
//! 5. `deleting_old`: the reader stops mirroring (readers reach the new index through the
//!    alias), the old physical index is deleted, and the rebuild leaves the checkpoint.
//!
//! A restart resumes the step the committed checkpoint names: the copies resume after their
//! last acknowledged key, mirroring resumes with the stream, a switch already made is seen
//! and not made twice. A step Elasticsearch refuses (a privilege, a mapping) is logged and
//! tried again later while streaming goes on; a rebuild whose index no rule writes any more
//! (the configuration changed before a restart) is abandoned before its switch, and readers
//! keep the old index.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::checkpoint::tracker::SyncRequest;
use crate::checkpoint::{Checkpoint, Phase, Rebuild, RebuildMark};
use crate::config::Config;
use crate::position::Version;
use crate::snapshot::ResyncRequest;
use crate::snapshot::merge::CopyRequest;
use crate::source::MysqlSource;
use crate::telemetry::http::{ReindexCall, ResyncReply};
use crate::telemetry::metrics;
use crate::writer::indices::{Indices, Layout, Switch};

/// Longest wait before a refused step is tried again.
const RETRY_MAX: Duration = Duration::from_secs(60);

mod pause;

pub use pause::{PausePoint, pause_point};

/// What the rebuild coordinator needs.
pub struct RebuildSetup {
    /// Configuration.
    pub config: Arc<Config>,
    /// Where table lists and schemas are read.
    pub source: MysqlSource,
    /// The sink's index task.
    pub indices: Indices,
    /// The reader, which records each step between two transactions.
    pub reader: mpsc::Sender<CopyRequest>,
    /// The copy coordinator.
    pub copies: mpsc::Sender<ResyncRequest>,
    /// The committed checkpoint.
    pub committed: watch::Receiver<Checkpoint>,
    /// The checkpoint writer: each step is on disk before the next begins.
    pub persist: mpsc::Sender<SyncRequest>,
    /// Rebuilds in progress at start.
    pub resume: Vec<Rebuild>,
    /// `POST /reindex` calls; `None` without the endpoint.
    pub calls: Option<mpsc::Receiver<ReindexCall>>,
    /// Stops the rebuild where it is (it resumes on the next start).
    pub stop: CancellationToken,
}

/// Serves reindex calls and drives rebuilds until stopped.
pub async fn run(setup: RebuildSetup) {
    let (resume, mut calls, stop) = (setup.resume, setup.calls, setup.stop.clone());
    let steps = Steps {
        config: setup.config,
        source: setup.source,
        indices: setup.indices,
        reader: setup.reader,
        copies: setup.copies,
        committed: setup.committed,
        persist: setup.persist,
        stop: setup.stop,
    };
    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    // Drift is reported at start-up, not only when a table's first change arrives.
    tokio::spawn({
        let steps = steps.clone();
        async move { steps.report_drift().await }
    });
    if let Some(rebuild) = resume.into_iter().next() {
        info!(index = %rebuild.index, target = %rebuild.target, phase = rebuild.phase.name(), "Resuming the rebuild.");
        let steps = steps.clone();
        running = Some(tokio::spawn(async move { steps.drive(rebuild).await }));
    }
    loop {
        let call = tokio::select! {
            _ = stop.cancelled() => return,
            done = finished(&mut running), if running.is_some() => {
                running = None;
                // A panic in a rebuild is a bug; the rebuild resumes on the next start.
                if let Err(e) = done {
                    warn!(error = %e, "The rebuild task failed; it resumes on the next start.");
                }
                continue;
            }
            call = next_call(&mut calls), if calls.is_some() => {
                match call {
                    Some(call) => call,
                    None => {
                        calls = None;
                        continue;
                    }
                }
            }
        };
        let recorded = steps
            .committed
            .borrow()
            .rebuilds
            .first()
            .map(|r| r.index.clone());
        if running.is_some() || recorded.is_some() {
            let text = match recorded {
                Some(index) => format!(
                    "a rebuild of `{index}` is already running; wait for it to finish (binlog2es status)"
                ),
                None => "a rebuild is already being started".to_owned(),
            };
            let _ = call.reply.send(ResyncReply::Refused(text));
            continue;
        }
        let steps = steps.clone();
        running = Some(tokio::spawn(async move {
            let ReindexCall { index, reply } = call;
            match steps.begin(&index).await {
                Ok(Some(rebuild)) => {
                    let text = format!(
                        "rebuild of `{}` into `{}` started; follow it with `binlog2es status`",
                        rebuild.index, rebuild.target
                    );
                    let _ = reply.send(ResyncReply::Accepted(text));
                    steps.drive(rebuild).await;
                }
                Ok(None) => {}
                Err(Refusal(text)) => {
                    let _ = reply.send(ResyncReply::Refused(text));
                }
            }
        }));
    }
}

/// The running rebuild's end (pending forever without one).
async fn finished(
    running: &mut Option<tokio::task::JoinHandle<()>>,
) -> Result<(), tokio::task::JoinError> {
    match running {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

/// The next reindex call (pending forever without the endpoint).
async fn next_call(calls: &mut Option<mpsc::Receiver<ReindexCall>>) -> Option<ReindexCall> {
    match calls {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Why a reindex call is not done, in words for the operator.
struct Refusal(String);

/// Why a step of a running rebuild did not complete.
enum StepError {
    /// Stopped (or the index task ended, which reports why): resumed on the next start.
    Stopped,
    /// Refused or not as expected; tried again later.
    Failed(String),
}

/// A request's answer as a step sees it.
fn answered<T>(answer: Option<Result<T, String>>) -> Result<T, StepError> {
    match answer {
        None => Err(StepError::Stopped),
        Some(Err(e)) => Err(StepError::Failed(e)),
        Some(Ok(v)) => Ok(v),
    }
}

/// Why the tables of an index are not known.
enum TablesError {
    /// No table a rule writes to the index exists.
    NoRule(String),
    /// MySQL could not be asked.
    Unreachable(String),
}

/// The steps of a rebuild, with what they talk to.
#[derive(Clone)]
struct Steps {
    config: Arc<Config>,
    source: MysqlSource,
    indices: Indices,
    reader: mpsc::Sender<CopyRequest>,
    copies: mpsc::Sender<ResyncRequest>,
    committed: watch::Receiver<Checkpoint>,
    persist: mpsc::Sender<SyncRequest>,
    stop: CancellationToken,
}

impl Steps {
    /// Checks the call, creates the new index and records the start; the rebuild, or
    /// `None` when stopped first.
    async fn begin(&self, index: &str) -> Result<Option<Rebuild>, Refusal> {
        let at = format!("rebuild of `{index}`");
        let tables = match self.tables_of(index).await {
            Ok(tables) => tables,
            Err(TablesError::NoRule(text) | TablesError::Unreachable(text)) => {
                return Err(Refusal(text));
            }
        };
        let unreadable = |e: String| Refusal(format!("cannot read `{index}`: {e}"));
        let layout = match self.layout(index, &at).await {
            Err(StepError::Stopped) => return Ok(None),
            Err(StepError::Failed(e)) => return Err(unreadable(e)),
            Ok(layout) => layout,
        };
        let old = match layout {
            Layout::Missing => {
                return Err(Refusal(format!(
                    "index `{index}` does not exist yet; binlog2es creates it with the first document"
                )));
            }
            Layout::Concrete { ours: false } | Layout::Alias { ours: false, .. } => {
                return Err(Refusal(format!(
                    "index `{index}` was not created by binlog2es (no _meta.created_by); it is never replaced"
                )));
            }
            Layout::Concrete { ours: true } => index.to_owned(),
            Layout::Alias { physical, .. } if physical.len() == 1 => physical[0].clone(),
            Layout::Alias { physical, .. } => {
                return Err(Refusal(format!(
                    "alias `{index}` stands for several indices ({}); binlog2es rebuilds only an alias of one index",
                    physical.join(", ")
                )));
            }
        };
        let target = next_generation(index, &old);
        match self.clear_leftover(&target, &at).await {
            Err(StepError::Stopped) => return Ok(None),
            Err(StepError::Failed(e)) => return Err(Refusal(e)),
            Ok(()) => {}
        }
        let cannot = |e: String| Refusal(format!("cannot create `{target}`: {e}"));
        for schema in self.schemas(&tables).await.map_err(cannot)? {
            let physical = Arc::from(target.as_str());
            let prepared = self
                .indices
                .prepare_generation(Arc::new(schema), physical, at.clone());
            match answered(prepared.await) {
                Err(StepError::Stopped) => return Ok(None),
                Err(StepError::Failed(e)) => return Err(cannot(e)),
                Ok(()) => {}
            }
        }
        if self
            .indices
            .rebuilding(index.to_owned(), Some(target.clone()))
            .await
            .is_none()
        {
            return Ok(None);
        }
        let start = Rebuild {
            index: index.to_owned(),
            target,
            old,
            phase: Phase::Copying,
            // The reader puts its version at the start here.
            since: Version(0),
            listed: false,
        };
        let mark = RebuildMark::Start {
            rebuild: start.clone(),
            tables,
        };
        let Some(since) = self.record(mark).await else {
            return Ok(None);
        };
        let rebuild = Rebuild { since, ..start };
        info!(index = %rebuild.index, target = %rebuild.target, old = %rebuild.old, "Rebuild started.");
        Ok(Some(rebuild))
    }

    /// Deletes `target` when it is the leftover of a start that was never recorded (it may
    /// hold documents of that attempt); refuses an index of that name that is someone
    /// else's or that a rule writes.
    async fn clear_leftover(&self, target: &str, at: &str) -> Result<(), StepError> {
        match self.layout(target, at).await? {
            Layout::Missing => Ok(()),
            Layout::Concrete { ours: true } => {
                match self.tables_of(target).await {
                    Err(TablesError::NoRule(_)) => {}
                    Ok(_) => {
                        return Err(StepError::Failed(format!(
                            "index `{target}` is written by a [[tables]] rule of its own; rename that rule's index, or delete `{target}`, then reindex again"
                        )));
                    }
                    Err(TablesError::Unreachable(e)) => return Err(StepError::Failed(e)),
                }
                info!(index = %target, "Deleting the leftover of an unrecorded rebuild start.");
                answered(self.indices.delete(target.to_owned(), at.to_owned()).await)
            }
            _ => Err(StepError::Failed(format!(
                "index `{target}` exists and was not left by binlog2es; delete or rename it, then reindex again"
            ))),
        }
    }

    /// Walks `rebuild` from its phase to the end; a refused step is tried again later.
    async fn drive(&self, mut rebuild: Rebuild) {
        let mut delay = Duration::from_secs(1);
        if rebuild.phase.mirrors()
            && self
                .indices
                .rebuilding(rebuild.index.clone(), Some(rebuild.target.clone()))
                .await
                .is_none()
        {
            return;
        }
        loop {
            metrics::reindex_phase(rebuild.phase.gauge());
            info!(index = %rebuild.index, target = %rebuild.target, phase = rebuild.phase.name(), "Rebuild phase.");
            let next = match self.step(&mut rebuild).await {
                Ok(Some(next)) => next,
                // Finished, or abandoned.
                Ok(None) => return,
                Err(StepError::Stopped) => return,
                Err(StepError::Failed(e)) => {
                    warn!(index = %rebuild.index, target = %rebuild.target, phase = rebuild.phase.name(), error = %e, retry_in = ?delay, "A rebuild step failed; trying it again later (streaming goes on).");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.stop.cancelled() => return,
                    }
                    delay = (delay * 2).min(RETRY_MAX);
                    continue;
                }
            };
            delay = Duration::from_secs(1);
            let mark = RebuildMark::Phase {
                index: rebuild.index.clone(),
                phase: next,
            };
            if self.record(mark).await.is_none() {
                return;
            }
            rebuild.phase = next;
        }
    }

    /// Does the work of `rebuild`'s phase; the next phase, or `None` when the rebuild is
    /// over (finished or abandoned).
    async fn step(&self, rebuild: &mut Rebuild) -> Result<Option<Phase>, StepError> {
        let at = format!("rebuild of `{}`", rebuild.index);
        match rebuild.phase {
            Phase::Copying => {
                if !self.still_wanted(rebuild, &at).await? {
                    return Ok(None);
                }
                if !rebuild.listed {
                    self.list_copies(rebuild, &at).await?;
                }
                self.copies_done(&rebuild.target).await?;
                Ok(Some(Phase::CatchingUp))
            }
            Phase::CatchingUp => {
                if !self.still_wanted(rebuild, &at).await? {
                    return Ok(None);
                }
                // Committed with this phase: everything routed before it is in both.
                pause_point(PausePoint::CatchUp, &self.stop).await;
                Ok(Some(Phase::Switching))
            }
            Phase::Switching => {
                self.switch(rebuild, &at).await?;
                Ok(Some(Phase::DeletingOld))
            }
            Phase::DeletingOld => {
                // A concrete old index went with the switch's request.
                if rebuild.old != rebuild.index {
                    answered(self.indices.delete(rebuild.old.clone(), at.clone()).await)?;
                }
                self.end(rebuild).await?;
                metrics::reindex_completed();
                info!(index = %rebuild.index, target = %rebuild.target, old = %rebuild.old, "Rebuild finished; readers now see the new index.");
                Ok(None)
            }
        }
    }

    /// Whether a rule still writes the rebuilt index (the configuration may have changed
    /// before a restart). When none does, the rebuild is abandoned before its switch:
    /// readers keep the old index, the new one is deleted.
    async fn still_wanted(&self, rebuild: &Rebuild, at: &str) -> Result<bool, StepError> {
        match self.tables_of(&rebuild.index).await {
            Ok(_) => Ok(true),
            Err(TablesError::Unreachable(e)) => Err(StepError::Failed(e)),
            Err(TablesError::NoRule(_)) => {
                warn!(index = %rebuild.index, target = %rebuild.target, "No [[tables]] rule writes the index any more: the rebuild is abandoned, readers keep the old index, the new one is deleted.");
                answered(
                    self.indices
                        .delete(rebuild.target.clone(), at.to_owned())
                        .await,
                )?;
                self.end(rebuild).await?;
                Ok(false)
            }
        }
    }

    /// Records the rebuild's end (the checkpoint forgets it and its copies).
    async fn end(&self, rebuild: &Rebuild) -> Result<(), StepError> {
        let end = RebuildMark::End {
            index: rebuild.index.clone(),
        };
        self.record(end).await.ok_or(StepError::Stopped)?;
        let _ = self.indices.rebuilding(rebuild.index.clone(), None).await;
        metrics::reindex_phase(0);
        Ok(())
    }

    /// Lists the tables again once the start is recorded, records a copy of each one not
    /// yet copied (a table created or renamed just before the start, whose changes went to
    /// the old index only), and hands the copies to the copy coordinator. After a restart
    /// that came between the start and this step, every table is copied again: harmless.
    async fn list_copies(&self, rebuild: &mut Rebuild, at: &str) -> Result<(), StepError> {
        let tables = match self.tables_of(&rebuild.index).await {
            Ok(tables) => tables,
            Err(TablesError::NoRule(e) | TablesError::Unreachable(e)) => {
                return Err(StepError::Failed(e));
            }
        };
        let planned: HashSet<(String, String)> = self
            .committed
            .borrow()
            .copies
            .iter()
            .filter(|c| c.into.as_deref() == Some(rebuild.target.as_str()))
            .map(|c| (c.db.clone(), c.table.clone()))
            .collect();
        let extra: Vec<(String, String)> = tables
            .iter()
            .filter(|t| !planned.contains(*t))
            .cloned()
            .collect();
        // The start's own list was just read; a table added meanwhile needs its fields.
        let schemas = self.schemas(&extra).await.map_err(StepError::Failed)?;
        for schema in schemas {
            let physical = Arc::from(rebuild.target.as_str());
            let prepared =
                self.indices
                    .prepare_generation(Arc::new(schema), physical, at.to_owned());
            answered(prepared.await)?;
        }
        let mark = RebuildMark::Listed {
            index: rebuild.index.clone(),
            tables: extra,
        };
        self.record(mark).await.ok_or(StepError::Stopped)?;
        rebuild.listed = true;
        for (db, table) in tables {
            let (reply, answer) = oneshot::channel();
            let request = ResyncRequest {
                db,
                table,
                reply,
                since: Some(rebuild.since),
                into: Some(rebuild.target.clone()),
            };
            self.copies
                .send(request)
                .await
                .map_err(|_| StepError::Stopped)?;
            let _ = answer.await;
        }
        info!(index = %rebuild.index, target = %rebuild.target, "Copying every table of the index into the new one.");
        Ok(())
    }

    /// Moves readers to the new index unless they already see it.
    async fn switch(&self, rebuild: &Rebuild, at: &str) -> Result<(), StepError> {
        let only_target = |layout: &Layout| matches!(layout, Layout::Alias { physical, .. } if physical == std::slice::from_ref(&rebuild.target));
        if only_target(&self.layout(&rebuild.index, at).await?) {
            return Ok(());
        }
        pause_point(PausePoint::BeforeSwitch, &self.stop).await;
        let switch = Switch {
            index: rebuild.index.clone(),
            old: rebuild.old.clone(),
            target: rebuild.target.clone(),
        };
        answered(self.indices.switch(switch, at.to_owned()).await)?;
        let after = self.layout(&rebuild.index, at).await?;
        if !only_target(&after) {
            return Err(StepError::Failed(format!(
                "after the switch `{}` stands for {after:?}, not `{}`: another process changes its aliases; fix them by hand (POST /_aliases)",
                rebuild.index, rebuild.target
            )));
        }
        info!(index = %rebuild.index, target = %rebuild.target, "Readers switched to the new index.");
        pause_point(PausePoint::AfterSwitch, &self.stop).await;
        if self.stop.is_cancelled() {
            return Err(StepError::Stopped);
        }
        Ok(())
    }

    /// What `index` stands for.
    async fn layout(&self, index: &str, at: &str) -> Result<Layout, StepError> {
        answered(self.indices.describe(index.to_owned(), at.to_owned()).await)
    }

    /// Waits until no copy into `target` is left in the committed checkpoint.
    async fn copies_done(&self, target: &str) -> Result<(), StepError> {
        let mut committed = self.committed.clone();
        tokio::select! {
            r = committed.wait_for(|c| !c.copies.iter().any(|t| t.into.as_deref() == Some(target))) => {
                r.map(|_| ()).map_err(|_| StepError::Stopped)
            }
            _ = self.stop.cancelled() => Err(StepError::Stopped),
        }
    }

    /// Has the reader record `mark` and waits until it is committed and on disk (an
    /// accepted rebuild survives a crash; a restart resumes no earlier step than the one
    /// done); the version the reader recorded it at, or `None` when stopped first.
    async fn record(&self, mark: RebuildMark) -> Option<Version> {
        let (reply, answer) = oneshot::channel();
        self.reader
            .send(CopyRequest::Rebuild { mark, reply })
            .await
            .ok()?;
        let (tickets, version) = tokio::select! {
            r = answer => r.ok()?,
            _ = self.stop.cancelled() => return None,
        };
        let (done, written) = oneshot::channel();
        let sync = SyncRequest {
            tickets,
            lease: Version(0),
            done,
        };
        tokio::select! {
            r = async { self.persist.send(sync).await.ok()?; written.await.ok() } => r.map(|()| version),
            _ = self.stop.cancelled() => None,
        }
    }

    /// Has the index task look at the index of every table a rule matches (one table per
    /// index), so that indices that no longer match their rule are reported at start-up.
    /// Best effort: a failure here is reported again when the table's first change comes.
    async fn report_drift(&self) {
        let Ok(mut conn) = self.source.connect().await else {
            return;
        };
        let Ok(all) = crate::schema::catalog::user_tables(&mut conn).await else {
            return;
        };
        if conn.query_drop(crate::scan::SESSION_SETUP).await.is_err() {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        for (db, table) in all {
            let Some(rule) = self.config.rule_for(&db, &table) else {
                continue;
            };
            if !rule.create_index || seen.contains(&rule.index_for(&db, &table)) {
                continue;
            }
            // A table that cannot be read (no key, say) is the stream's to report.
            let Ok(schema) = crate::scan::read_table_schema(&mut conn, rule, &db, &table).await
            else {
                continue;
            };
            seen.insert(rule.index_for(&db, &table));
            let at = format!("at start-up, `{}`", schema.index);
            if self.indices.inspect(Arc::new(schema), at).await.is_none() {
                break;
            }
        }
        let _ = conn.disconnect().await;
    }

    /// The tables whose rule writes `index` (keyless ones skipped: they are not synced).
    async fn tables_of(&self, index: &str) -> Result<Vec<(String, String)>, TablesError> {
        let unreachable = |e: mysql_async::Error| {
            TablesError::Unreachable(format!("cannot list the tables on MySQL ({e}); try again"))
        };
        let mut conn = self.source.connect().await.map_err(unreachable)?;
        let all = crate::schema::catalog::user_tables(&mut conn)
            .await
            .map_err(unreachable)?;
        let _ = conn.disconnect().await;
        let tables: Vec<(String, String)> = all
            .into_iter()
            .filter(|(db, t)| {
                self.config
                    .rule_for(db, t)
                    .is_some_and(|rule| rule.index_for(db, t) == index)
            })
            .filter(|(db, t)| !crate::schema::is_keyless(&format!("{db}.{t}")))
            .collect();
        if tables.is_empty() {
            return Err(TablesError::NoRule(format!(
                "no [[tables]] rule writes index `{index}` (no table on the server matches a rule whose index is `{index}`)"
            )));
        }
        Ok(tables)
    }

    /// The schemas of `tables` as their rules see them.
    async fn schemas(
        &self,
        tables: &[(String, String)],
    ) -> Result<Vec<crate::schema::TableSchema>, String> {
        let failed = |what: String| format!("cannot read the tables' columns: {what}");
        let mut conn = self
            .source
            .connect()
            .await
            .map_err(|e| failed(e.to_string()))?;
        conn.query_drop(crate::scan::SESSION_SETUP)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let mut schemas = Vec::with_capacity(tables.len());
        for (db, table) in tables {
            let Some(rule) = self.config.rule_for(db, table) else {
                continue;
            };
            let schema = crate::scan::read_table_schema(&mut conn, rule, db, table)
                .await
                .map_err(|e| failed(e.to_string()))?;
            schemas.push(schema);
        }
        let _ = conn.disconnect().await;
        Ok(schemas)
    }
}

/// The new physical index after `old`: `NAME-<n+1>` for `old = NAME-<n>`, `NAME-1` for a
/// concrete `NAME` (or a physical name of another form).
fn next_generation(index: &str, old: &str) -> String {
    let current = old
        .strip_prefix(index)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let mut next = current + 1;
    while format!("{index}-{next}") == old {
        next += 1;
    }
    format!("{index}-{next}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_count_up_from_the_old_index() {
        assert_eq!(next_generation("orders", "orders"), "orders-1");
        assert_eq!(next_generation("orders", "orders-1"), "orders-2");
        assert_eq!(next_generation("orders", "orders-41"), "orders-42");
        // A physical index named otherwise (made by hand) starts the count.
        assert_eq!(next_generation("orders", "orders_v7"), "orders-1");
        assert_eq!(next_generation("orders", "orders-x"), "orders-1");
    }
}
