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
//! and not made twice.

use std::sync::Arc;

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

mod pause;

pub use pause::{PausePoint, pause_point};

/// A rebuild that cannot go on; the daemon stops with this message.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The alias does not point where the switch put it.
    #[error(
        "rebuild of `{index}`: after the switch `{index}` stands for {found}, not `{target}`; \
         another process changed its aliases: fix them by hand (POST /_aliases), then restart"
    )]
    Switch {
        /// The name readers use.
        index: String,
        /// The new index.
        target: String,
        /// What the name stands for.
        found: String,
    },
}

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
///
/// # Errors
/// A rebuild found the index in a state it cannot go on from.
pub async fn run(setup: RebuildSetup) -> Result<(), RebuildError> {
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
    let mut running: Option<tokio::task::JoinHandle<Result<(), RebuildError>>> = None;
    if let Some(rebuild) = resume.into_iter().next() {
        info!(index = %rebuild.index, target = %rebuild.target, phase = rebuild.phase.name(), "Resuming the rebuild.");
        let steps = steps.clone();
        running = Some(tokio::spawn(async move { steps.drive(rebuild).await }));
    }
    loop {
        let call = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            done = finished(&mut running), if running.is_some() => {
                running = None;
                match done {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => return Err(e),
                    // A panic in a rebuild is a bug; the rebuild resumes on the next start.
                    Err(e) => {
                        warn!(error = %e, "The rebuild task failed; it resumes on the next start.");
                        continue;
                    }
                }
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
        if running.is_some() {
            let running_index = steps
                .committed
                .borrow()
                .rebuilds
                .first()
                .map(|r| r.index.clone());
            let text = match running_index {
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
                    steps.drive(rebuild).await
                }
                Ok(None) => Ok(()),
                Err(Refusal(text)) => {
                    let _ = reply.send(ResyncReply::Refused(text));
                    Ok(())
                }
            }
        }));
    }
}

/// The running rebuild's end (pending forever without one).
async fn finished(
    running: &mut Option<tokio::task::JoinHandle<Result<(), RebuildError>>>,
) -> Result<Result<(), RebuildError>, tokio::task::JoinError> {
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
        let tables = self.tables_of(index).await?;
        let Some(layout) = self.indices.describe(index.to_owned(), at.clone()).await else {
            return Ok(None);
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
        // A new index of that name is a leftover of a start that was never recorded: it
        // may hold documents of that attempt, so it is made again from nothing.
        match self.indices.describe(target.clone(), at.clone()).await {
            None => return Ok(None),
            Some(Layout::Missing) => {}
            Some(Layout::Concrete { ours: true }) => {
                info!(index = %index, target = %target, "Deleting the leftover of an unrecorded rebuild start.");
                if self
                    .indices
                    .delete(target.clone(), at.clone())
                    .await
                    .is_none()
                {
                    return Ok(None);
                }
            }
            Some(_) => {
                return Err(Refusal(format!(
                    "index `{target}` exists and was not left by binlog2es; delete or rename it, then reindex again"
                )));
            }
        }
        for schema in self.schemas(&tables).await? {
            let prepared = self.indices.prepare_generation(
                Arc::new(schema),
                Arc::from(target.as_str()),
                at.clone(),
            );
            if prepared.await.is_none() {
                return Ok(None);
            }
        }
        let start = Rebuild {
            index: index.to_owned(),
            target,
            old,
            phase: Phase::Copying,
            // The reader puts its version at the start here.
            since: Version(0),
        };
        let mark = RebuildMark::Start {
            rebuild: start.clone(),
            tables: tables.clone(),
        };
        let Some(since) = self.record(mark).await else {
            return Ok(None);
        };
        let rebuild = Rebuild { since, ..start };
        info!(index = %rebuild.index, target = %rebuild.target, old = %rebuild.old, tables = tables.len(), "Rebuild started.");
        for (db, table) in tables {
            let (reply, answer) = oneshot::channel();
            let request = ResyncRequest {
                db,
                table,
                reply,
                since: Some(since),
                into: Some(rebuild.target.clone()),
            };
            if self.copies.send(request).await.is_err() {
                return Ok(None);
            }
            let _ = answer.await;
        }
        Ok(Some(rebuild))
    }

    /// Walks `rebuild` from its phase to the end.
    async fn drive(&self, mut rebuild: Rebuild) -> Result<(), RebuildError> {
        let at = format!("rebuild of `{}`", rebuild.index);
        loop {
            metrics::reindex_phase(rebuild.phase.gauge());
            info!(index = %rebuild.index, target = %rebuild.target, phase = rebuild.phase.name(), "Rebuild phase.");
            let next = match rebuild.phase {
                Phase::Copying => {
                    if !self.copies_done(&rebuild.target).await {
                        return Ok(());
                    }
                    Phase::CatchingUp
                }
                Phase::CatchingUp => {
                    // Committed with this phase: everything routed before it is in both.
                    pause_point(PausePoint::CatchUp, &self.stop).await;
                    Phase::Switching
                }
                Phase::Switching => {
                    if !self.switch(&rebuild, &at).await? {
                        return Ok(());
                    }
                    Phase::DeletingOld
                }
                Phase::DeletingOld => {
                    // A concrete old index went with the switch's request.
                    if rebuild.old != rebuild.index
                        && self
                            .indices
                            .delete(rebuild.old.clone(), at.clone())
                            .await
                            .is_none()
                    {
                        return Ok(());
                    }
                    let end = RebuildMark::End {
                        index: rebuild.index.clone(),
                    };
                    if self.record(end).await.is_none() {
                        return Ok(());
                    }
                    metrics::reindex_phase(0);
                    metrics::reindex_completed();
                    info!(index = %rebuild.index, target = %rebuild.target, old = %rebuild.old, "Rebuild finished; readers now see the new index.");
                    return Ok(());
                }
            };
            let mark = RebuildMark::Phase {
                index: rebuild.index.clone(),
                phase: next,
            };
            if self.record(mark).await.is_none() {
                return Ok(());
            }
            rebuild.phase = next;
        }
    }

    /// Moves readers to the new index unless they already see it; `false` when stopped.
    async fn switch(&self, rebuild: &Rebuild, at: &str) -> Result<bool, RebuildError> {
        let only_target = |layout: &Layout| matches!(layout, Layout::Alias { physical, .. } if physical == std::slice::from_ref(&rebuild.target));
        let Some(before) = self.layout(&rebuild.index, at).await else {
            return Ok(false);
        };
        if !only_target(&before) {
            pause_point(PausePoint::BeforeSwitch, &self.stop).await;
            let switch = Switch {
                index: rebuild.index.clone(),
                old: rebuild.old.clone(),
                target: rebuild.target.clone(),
            };
            if self.indices.switch(switch, at.to_owned()).await.is_none() {
                return Ok(false);
            }
            let Some(after) = self.layout(&rebuild.index, at).await else {
                return Ok(false);
            };
            if !only_target(&after) {
                return Err(RebuildError::Switch {
                    index: rebuild.index.clone(),
                    target: rebuild.target.clone(),
                    found: format!("{after:?}"),
                });
            }
            info!(index = %rebuild.index, target = %rebuild.target, "Readers switched to the new index.");
            pause_point(PausePoint::AfterSwitch, &self.stop).await;
        }
        Ok(!self.stop.is_cancelled())
    }

    /// What `index` stands for; `None` when stopped first.
    async fn layout(&self, index: &str, at: &str) -> Option<Layout> {
        self.indices.describe(index.to_owned(), at.to_owned()).await
    }

    /// Waits until no copy into `target` is left in the committed checkpoint; `false` when
    /// stopped first.
    async fn copies_done(&self, target: &str) -> bool {
        let mut committed = self.committed.clone();
        tokio::select! {
            r = committed.wait_for(|c| !c.copies.iter().any(|t| t.into.as_deref() == Some(target))) => r.is_ok(),
            _ = self.stop.cancelled() => false,
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

    /// The tables whose rule writes `index` (keyless ones skipped: they are not synced).
    async fn tables_of(&self, index: &str) -> Result<Vec<(String, String)>, Refusal> {
        let unreachable = |e: mysql_async::Error| {
            Refusal(format!("cannot list the tables on MySQL ({e}); try again"))
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
            return Err(Refusal(format!(
                "no [[tables]] rule writes index `{index}` (no table on the server matches a rule whose index is `{index}`)"
            )));
        }
        Ok(tables)
    }

    /// The schemas of `tables` as their rules see them.
    async fn schemas(
        &self,
        tables: &[(String, String)],
    ) -> Result<Vec<crate::schema::TableSchema>, Refusal> {
        let failed = |what: String| Refusal(format!("cannot read the tables' columns: {what}"));
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
