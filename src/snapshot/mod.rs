//! Copies existing rows (the initial snapshot, and on-line re-syncs of one table) while the
//! stream keeps running, without a global lock (MySQL and MariaDB) and without loss or
//! regression.
//!
//! Each table is read in primary-key order in chunks (keyset pagination) inside short
//! consistent snapshots, between a low and a high watermark ([`consistent`]); the chunks are
//! merged into the stream by the reader (see [`crate::snapshot::merge`]), so they go through
//! the same lanes, versions and checkpoint as streamed changes. Progress (the last key of the
//! last acknowledged chunk) is committed in the checkpoint with the chunk, so a restart
//! resumes after it; a chunk in flight at a crash is read and sent again, idempotently
//! (same `_id`, a version no older than what it may overwrite).
//!
//! When a table's copy ends and its index holds only that table's documents, documents older
//! than the copy's start version that neither the copy nor the stream wrote are deleted: their
//! rows no longer exist (deleted while binlog2es was away, e.g. behind a purged binlog).

pub mod merge;
mod rows;
mod stale;

use rows::decode_rows;
use stale::StalePages;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mysql_async::Value;
use mysql_async::prelude::Queryable;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::checkpoint::{Checkpoint, CopyMark, Flavor, KeyValue, TableCopy};
use crate::config::Config;
use crate::decode::RowDecoder;
use crate::document::RowShape;
use crate::es::EsClient;
use crate::ordering::{DocChange, Op};
use crate::position::{BinlogPosition, Version};
use crate::read_view as consistent;
use crate::retry::{Attempt, Failure, Retry, RetryError, retry_until};
use crate::scan;
use crate::snapshot::merge::{ChunkOutcome, CopyChunk, CopyRequest, Opened};
use crate::source::MysqlSource;
use crate::telemetry::metrics;
use crate::writer::indices::Indices;
use consistent::ViewError;

/// Errors that stop a copy (and the daemon): a table binlog2es cannot read or decode.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The table's columns or rows cannot be turned into documents.
    #[error("cannot copy `{table}`: {message}")]
    Table {
        /// `db.table`.
        table: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A re-sync asked for while running (`binlog2es resync`, `POST /resync`).
#[derive(Debug)]
pub struct ResyncRequest {
    /// Database.
    pub db: String,
    /// Table.
    pub table: String,
    /// Accepted, or why not.
    pub reply: oneshot::Sender<Result<String, String>>,
    /// Set when the start is already recorded in the checkpoint with this version (a
    /// statement that changed rows without row events, see the reader; a rebuild's copy);
    /// `None`: record it.
    pub since: Option<Version>,
    /// The physical index a rebuild copies the table into (SPEC §10); `None`: the rule's.
    pub into: Option<String>,
}

/// Which copy: a table, into the rule's index (`None`) or into a rebuild's new index.
type CopyKey = (String, String, Option<String>);

/// The key of `copy`.
fn key_of(copy: &TableCopy) -> CopyKey {
    (copy.db.clone(), copy.table.clone(), copy.into.clone())
}

/// What the copy coordinator needs.
pub struct CopySetup {
    /// Configuration.
    pub config: Arc<Config>,
    /// Where the copy connections go.
    pub source: MysqlSource,
    /// Server flavour (decides how a snapshot is opened).
    pub flavor: Flavor,
    /// Sink client (the final sweep).
    pub es: EsClient,
    /// The sink's index task (a table's index is ready before its first chunk).
    pub indices: Indices,
    /// Requests to the reader.
    pub reader: mpsc::Sender<CopyRequest>,
    /// The committed checkpoint (copies resume from it; the sweep waits on it).
    pub committed: watch::Receiver<Checkpoint>,
    /// Tables whose copy is pending at start-up.
    pub pending: Vec<TableCopy>,
    /// Re-sync requests.
    pub resync: mpsc::Receiver<ResyncRequest>,
    /// Stops the copy.
    pub stop: CancellationToken,
}

/// Rows copied and expected, for the progress log.
#[derive(Default)]
struct Counters {
    done: AtomicU64,
    expected: AtomicU64,
}

/// Runs pending copies and re-sync requests, `snapshot.parallelism` tables at a time, until
/// `stop` fires or the reader goes away.
///
/// # Errors
/// A table that cannot be copied (unsupported column, undecodable value, index refused).
pub async fn run(mut setup: CopySetup) -> Result<(), SnapshotError> {
    let counters = Arc::new(Counters::default());
    let mut queue: std::collections::VecDeque<(TableCopy, bool)> =
        setup.pending.drain(..).map(|t| (t, false)).collect();
    let mut active: HashSet<CopyKey> = HashSet::new();
    let mut workers: JoinSet<Result<CopyKey, SnapshotError>> = JoinSet::new();
    let mut log_tick = tokio::time::interval(Duration::from_secs(5));
    log_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_log = (Instant::now(), 0u64);
    let mut resync_open = true;
    // Tables a statement changed while their copy ran: copied again when it ends.
    let mut deferred: HashSet<CopyKey> = HashSet::new();
    loop {
        while workers.len() < setup.config.snapshot.parallelism {
            let Some((copy, announce)) = queue.pop_front() else {
                break;
            };
            active.insert(key_of(&copy));
            let worker = Worker::new(&setup, Arc::clone(&counters));
            workers.spawn(worker.copy_table(copy, announce));
        }
        if workers.is_empty() && queue.is_empty() && !resync_open {
            return Ok(());
        }
        tokio::select! {
            _ = setup.stop.cancelled() => return Ok(()),
            Some(done) = workers.join_next(), if !workers.is_empty() => {
                match done {
                    Ok(Ok(key)) => {
                        active.remove(&key);
                        if deferred.remove(&key) {
                            queue.push_back((fresh_copy(key), true));
                        }
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(e) => {
                        return Err(SnapshotError::Table {
                            table: "?".into(),
                            message: format!("copy task failed: {e}"),
                        });
                    }
                }
                if workers.is_empty() && queue.is_empty() {
                    let total = counters.done.load(Ordering::Relaxed);
                    info!(rows = total, "Copy finished; streaming continues.");
                }
            }
            req = setup.resync.recv(), if resync_open => {
                let Some(req) = req else {
                    resync_open = false;
                    continue;
                };
                let key = (req.db.clone(), req.table.clone(), req.into.clone());
                let queued = queue.iter_mut().find(|(c, _)| key_of(c) == key);
                let answer = if let (Some(since), Some((copy, _))) = (req.since, queued) {
                    // Not started yet: it will read the rows as they are now; its sweep must
                    // reach the documents written before the statement.
                    // The statement's ticket reset the checkpoint's entry to the first key:
                    // so does the queued copy (rows before a saved key may have changed).
                    copy.since = copy.since.max(since);
                    copy.after = None;
                    copy.rows = 0;
                    Ok(format!("copy of `{}.{}` already queued", req.db, req.table))
                } else if req.since.is_some() && active.contains(&key) {
                    // The running copy may have passed rows the statement changed: copy the
                    // table again once it ends (recorded in the checkpoint then).
                    deferred.insert(key);
                    Ok(format!("`{}.{}` is copied again after the running copy", req.db, req.table))
                } else if active.contains(&key) || queue.iter().any(|(c, _)| key_of(c) == key) {
                    Err(format!("`{}.{}` is already being copied", req.db, req.table))
                } else if setup.config.rule_for(&req.db, &req.table).is_none() {
                    Err(format!("`{}.{}` matches no [[tables]] rule", req.db, req.table))
                } else if crate::schema::is_keyless(&format!("{}.{}", req.db, req.table)) {
                    // A copy would stop the daemon at its first chunk: it has no key to go by.
                    Err(format!(
                        "`{}.{}` has no primary key and is skipped: add one, or set id_columns in its [[tables]] rule",
                        req.db, req.table
                    ))
                } else {
                    queue.push_back((
                        TableCopy {
                            db: req.db.clone(),
                            table: req.table.clone(),
                            after: None,
                            rows: 0,
                            since: req.since.unwrap_or(Version(0)),
                            into: req.into.clone(),
                        },
                        req.since.is_none(),
                    ));
                    match &req.into {
                        None => info!(table = %format!("{}.{}", req.db, req.table), "Re-sync requested."),
                        Some(into) => info!(table = %format!("{}.{}", req.db, req.table), index = %into, "Copying the table into the rebuilt index."),
                    }
                    Ok(format!("re-sync of `{}.{}` started", req.db, req.table))
                };
                let _ = req.reply.send(answer);
            }
            _ = log_tick.tick() => {
                if !workers.is_empty() {
                    last_log = log_progress(&counters, last_log);
                }
            }
        }
    }
}

/// A copy of `db.table` (into `into`) from its first key.
fn fresh_copy((db, table, into): CopyKey) -> TableCopy {
    TableCopy {
        db,
        table,
        after: None,
        rows: 0,
        since: Version(0),
        into,
    }
}

/// Logs rows done, rate since the last line and the estimated time left.
fn log_progress(counters: &Counters, (at, before): (Instant, u64)) -> (Instant, u64) {
    let done = counters.done.load(Ordering::Relaxed);
    let expected = counters.expected.load(Ordering::Relaxed).max(done);
    let secs = at.elapsed().as_secs_f64().max(0.001);
    let rate = (done.saturating_sub(before)) as f64 / secs;
    let left = if rate > 0.0 {
        humantime::format_duration(Duration::from_secs(
            ((expected - done) as f64 / rate) as u64,
        ))
        .to_string()
    } else {
        "unknown".into()
    };
    info!(
        rows_done = done,
        rows_expected = expected,
        rows_per_second = rate.round() as u64,
        time_left = %left,
        "Copy progress."
    );
    (Instant::now(), done)
}

/// The connection to MySQL is gone or the reader stopped: try the table again later
/// (transient) or give up quietly (stopped).
enum Interrupt {
    Stopped,
    Transient(String),
    Fatal(SnapshotError),
}

impl Interrupt {
    /// What the retry loop does about it: stopping ends the copy quietly.
    fn attempt(self) -> Attempt<(), SnapshotError> {
        match self {
            Interrupt::Stopped => Attempt::Done(()),
            Interrupt::Transient(e) => Attempt::Again(Failure::new(e)),
            Interrupt::Fatal(e) => Attempt::Fail(e),
        }
    }
}

impl From<mysql_async::Error> for Interrupt {
    fn from(e: mysql_async::Error) -> Self {
        Interrupt::Transient(e.to_string())
    }
}

/// Copies one table.
struct Worker {
    config: Arc<Config>,
    source: MysqlSource,
    flavor: Flavor,
    es: EsClient,
    indices: Indices,
    reader: mpsc::Sender<CopyRequest>,
    committed: watch::Receiver<Checkpoint>,
    stop: CancellationToken,
    counters: Arc<Counters>,
}

impl Worker {
    fn new(setup: &CopySetup, counters: Arc<Counters>) -> Self {
        Self {
            config: Arc::clone(&setup.config),
            source: setup.source.clone(),
            flavor: setup.flavor,
            es: setup.es.clone(),
            indices: setup.indices.clone(),
            reader: setup.reader.clone(),
            committed: setup.committed.clone(),
            stop: setup.stop.clone(),
            counters,
        }
    }

    /// Copies `copy`'s table from its saved key to the end, then sweeps; `announce` records
    /// the start in the checkpoint first (a re-sync).
    async fn copy_table(self, copy: TableCopy, announce: bool) -> Result<CopyKey, SnapshotError> {
        let key = key_of(&copy);
        let name = format!("{}.{}", copy.db, copy.table);
        let stop = self.stop.clone();
        let retry = Retry::new(
            200,
            30_000,
            &stop,
            "Copy interrupted, resuming after the last copied key.",
            &name,
        );
        let state = (self, copy, !announce);
        let (_, copied) = retry_until(
            &retry,
            state,
            |(mut worker, mut copy, announced)| async move {
                if !announced {
                    match worker.announce(&copy).await {
                        Ok(since) => copy.since = since,
                        Err(i) => return ((worker, copy, false), i.attempt()),
                    }
                }
                let attempt = match worker.copy_once(&mut copy).await {
                    Ok(()) => Attempt::Done(()),
                    Err(i) => i.attempt(),
                };
                ((worker, copy, true), attempt)
            },
        )
        .await;
        match copied {
            Err(RetryError::Final(e)) => Err(e),
            // Copied, or stopped (there is no attempt limit).
            Ok(()) | Err(RetryError::Stopped { .. } | RetryError::Exhausted { .. }) => Ok(key),
        }
    }

    /// Records a (re-)start of the table's copy in the checkpoint; returns its version.
    async fn announce(&mut self, copy: &TableCopy) -> Result<Version, Interrupt> {
        loop {
            let window = self.open_window(&copy.db, &copy.table).await?;
            let mark = CopyMark::Start {
                db: copy.db.clone(),
                table: copy.table.clone(),
                since: window.opened.version,
                into: copy.into.clone(),
            };
            if self.commit_mark(&window, mark).await? {
                return Ok(window.opened.version);
            }
        }
    }

    /// Commits `mark` with a chunk of no rows that closes `window`; `false` when the window
    /// was invalidated meanwhile (the caller tries again under a new one).
    async fn commit_mark(&self, window: &Window, mark: CopyMark) -> Result<bool, Interrupt> {
        let at = window.opened.position.clone();
        let outcome = self
            .send_chunk(window, at, "".into(), Vec::new(), Some(mark), true)
            .await?;
        Ok(matches!(outcome, ChunkOutcome::Emitted { .. }))
    }

    /// Opens a window at the reader, closed again when the returned guard is dropped.
    async fn open_window(&self, db: &str, table: &str) -> Result<Window, Interrupt> {
        let (reply, rx) = oneshot::channel();
        let request = CopyRequest::Open {
            db: db.to_owned(),
            table: table.to_owned(),
            reply,
        };
        let opened = self.ask(request, rx).await?;
        Ok(Window {
            opened,
            reader: self.reader.clone(),
        })
    }

    /// Sends `request` to the reader and waits for its answer on `rx`; a reader that is
    /// gone, or `stop`, ends the copy quietly.
    async fn ask<T>(&self, request: CopyRequest, rx: oneshot::Receiver<T>) -> Result<T, Interrupt> {
        self.reader
            .send(request)
            .await
            .map_err(|_| Interrupt::Stopped)?;
        tokio::select! {
            r = rx => r.map_err(|_| Interrupt::Stopped),
            _ = self.stop.cancelled() => Err(Interrupt::Stopped),
        }
    }

    /// Hands a chunk to the reader and waits until it was emitted (or refused).
    async fn send_chunk(
        &self,
        window: &Window,
        at: BinlogPosition,
        index: Arc<str>,
        docs: Vec<DocChange>,
        mark: Option<CopyMark>,
        last: bool,
    ) -> Result<ChunkOutcome, Interrupt> {
        let (reply, rx) = oneshot::channel();
        let chunk = CopyChunk {
            window: window.opened.window,
            at,
            index,
            docs,
            mark,
            last,
            reply,
        };
        self.ask(CopyRequest::Chunk(chunk), rx).await
    }

    async fn copy_once(&mut self, copy: &mut TableCopy) -> Result<(), Interrupt> {
        let name = format!("{}.{}", copy.db, copy.table);
        let fatal = |message: String| {
            Interrupt::Fatal(SnapshotError::Table {
                table: name.clone(),
                message,
            })
        };
        let Some((rule_index, rule)) = self.config.rule_index_for(&copy.db, &copy.table) else {
            // The rule was removed since the copy began: nothing to copy any more.
            self.finish(copy, None).await?;
            return Ok(());
        };
        let mut conn = self.source.connect().await?;
        conn.query_drop(scan::SESSION_SETUP).await?;
        let estimate =
            crate::schema::catalog::table_rows_estimate(&mut conn, &copy.db, &copy.table).await?;
        let Some(estimate) = estimate else {
            info!(table = %name, "Table no longer exists; nothing to copy.");
            self.finish(copy, None).await?;
            return Ok(());
        };
        let schema = scan::read_table_schema(&mut conn, &rule, &copy.db, &copy.table)
            .await
            .map_err(|e| match e {
                // A lost connection is retried like any other; only the table itself is fatal.
                scan::SchemaReadError::Query { source, .. } => Interrupt::from(source),
                scan::SchemaReadError::Table(m) => fatal(m),
            })?;
        let shape = RowShape::new(rule_index, &rule, &schema).map_err(|e| fatal(e.to_string()))?;
        let schema = Arc::new(schema);
        let at = format!("cannot copy `{name}`");
        // A failure ends the index task, which reports it; this copy just stops.
        let target: Arc<str> = match &copy.into {
            None => {
                let prepared = self.indices.prepare(Arc::clone(&schema), at);
                prepared.await.ok_or(Interrupt::Stopped)?;
                Arc::clone(&schema.index)
            }
            Some(into) => {
                let into: Arc<str> = Arc::from(into.as_str());
                let prepared =
                    self.indices
                        .prepare_generation(Arc::clone(&schema), Arc::clone(&into), at);
                // A refusal (a privilege on the new index, say) is logged and tried again:
                // the rebuild waits, streaming goes on.
                prepared
                    .await
                    .ok_or(Interrupt::Stopped)?
                    .map_err(Interrupt::Transient)?;
                into
            }
        };

        let estimate = estimate.unwrap_or(0).saturating_sub(copy.rows);
        self.counters
            .expected
            .fetch_add(estimate, Ordering::Relaxed);
        info!(table = %name, index = %target, rows_estimated = estimate, rows_done_before = copy.rows, "Copying table.");
        let mut after: Option<Vec<Value>> = match &copy.after {
            None => None,
            Some(keys) => Some(
                keys.iter()
                    .map(KeyValue::to_value)
                    .collect::<Result<_, _>>()
                    .map_err(|e| fatal(format!("the checkpoint's resume key is unusable: {e}")))?,
            ),
        };
        let mut decoder = RowDecoder::default();
        let chunk_size = self.config.snapshot.chunk_size;
        let mut head_sql = None;
        // Every way out of this loop (an error included) drops `window`, which closes it at
        // the reader: a window left open would record every changed id of the table.
        'windows: loop {
            // Low watermark first, then a read view that sees everything up to it.
            let window = self.open_window(&copy.db, &copy.table).await?;
            let covered =
                consistent::read_view_covering(&mut conn, self.flavor, &window.opened.position)
                    .await
                    .map_err(|e| match e {
                        ViewError::Sql(e) => Interrupt::from(e),
                        ViewError::Unsupported(m) => fatal(m),
                    })?;
            if !covered {
                drop(window);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let started = Instant::now();
            loop {
                let rows =
                    scan::read_chunk(&mut conn, &schema, after.as_deref(), chunk_size).await?;
                // High watermark: read after the SELECT, so every change the read view holds
                // lies before it.
                let at = consistent::high_watermark(&mut conn, &mut head_sql).await?;
                let full = rows.len() == chunk_size;
                tracing::debug!(table = %name, rows = rows.len(), at = %at, "Chunk read.");
                let refresh = started.elapsed() >= self.config.snapshot.snapshot_refresh;
                let Some(last_row) = rows.last() else {
                    conn.query_drop("COMMIT").await?;
                    break 'windows;
                };
                let last_key: Vec<Value> =
                    schema.key.iter().map(|&k| last_row[k].clone()).collect();
                // Rows read, not documents: a shaped rule may skip rows.
                let n = rows.len() as u64;
                let docs = decode_rows(&mut decoder, &schema, shape.as_ref(), rows)
                    .map_err(|e| fatal(e.to_string()))?;
                let mark = CopyMark::Chunk {
                    db: copy.db.clone(),
                    table: copy.table.clone(),
                    after: last_key.iter().map(KeyValue::from).collect(),
                    rows: n,
                    since: copy.since,
                    into: copy.into.clone(),
                };
                let close = !full || refresh;
                match self
                    .send_chunk(&window, at, Arc::clone(&target), docs, Some(mark), close)
                    .await?
                {
                    ChunkOutcome::Invalidated => {
                        // A TRUNCATE/DROP came between, or the window outgrew its bound:
                        // read again from the same key under a new window.
                        conn.query_drop("COMMIT").await?;
                        continue 'windows;
                    }
                    ChunkOutcome::Emitted { .. } => {
                        // A retry after a lost connection resumes here, not at the start.
                        copy.after = Some(last_key.iter().map(KeyValue::from).collect());
                        after = Some(last_key);
                        copy.rows += n;
                        self.counters.done.fetch_add(n, Ordering::Relaxed);
                        metrics::snapshot_rows(n);
                        if copy.into.is_some() {
                            metrics::reindex_rows(n);
                            crate::rebuild::pause_point(
                                crate::rebuild::PausePoint::Copy,
                                &self.stop,
                            )
                            .await;
                        }
                    }
                }
                if !full {
                    conn.query_drop("COMMIT").await?;
                    break 'windows;
                }
                if refresh {
                    conn.query_drop("COMMIT").await?;
                    continue 'windows;
                }
            }
        }
        let _ = conn.disconnect().await;
        // A rebuild's new index holds only what this copy and the stream wrote since the
        // rebuild began: nothing in it is stale.
        let per_table = crate::config::index_is_per_table(&self.config, &copy.db, &copy.table)
            && copy.into.is_none();
        self.finish(copy, per_table.then(|| Arc::clone(&schema.index)))
            .await?;
        info!(table = %name, rows = copy.rows, "Table copied.");
        Ok(())
    }

    /// Ends a table's copy: with `sweep` (its own index and the copy's last key), deletes
    /// documents the copy and the stream did not write, then records the end. A window
    /// invalidated on the way (TRUNCATE, or more changes than a window holds) starts the end
    /// again under a new one.
    async fn finish(&mut self, copy: &TableCopy, sweep: Option<Arc<str>>) -> Result<(), Interrupt> {
        loop {
            let window = self.open_window(&copy.db, &copy.table).await?;
            if let Some(index) = &sweep
                && !self.sweep(copy, &window, index).await?
            {
                continue;
            }
            let mark = CopyMark::Done {
                db: copy.db.clone(),
                table: copy.table.clone(),
                since: copy.since,
                into: copy.into.clone(),
            };
            if self.commit_mark(&window, mark).await? {
                return Ok(());
            }
        }
    }

    /// Deletes documents of `index` older than the copy's start version. They were neither
    /// copied nor streamed since, so their row did not exist when the window opened — unless
    /// the stream touched them since, which the window filters out. Walks the index one page
    /// at a time (`snapshot.chunk_size` documents), deleting each page's stale documents
    /// before reading the next, so memory does not grow with the index. `false` when the
    /// window was invalidated: the caller sweeps again under a new one.
    async fn sweep(
        &mut self,
        copy: &TableCopy,
        window: &Window,
        index: &Arc<str>,
    ) -> Result<bool, Interrupt> {
        // Every copied chunk, and everything read before the window, must be in the index
        // first, or a document on its way would look stale.
        let wanted = window.opened.tickets;
        let stop = self.stop.clone();
        tokio::select! {
            r = self.committed.wait_for(|c| c.tickets >= wanted) => {
                r.map_err(|_| Interrupt::Stopped)?;
            }
            _ = stop.cancelled() => return Err(Interrupt::Stopped),
        }
        let mut pages =
            StalePages::open(&self.es, index, copy.since, self.config.snapshot.chunk_size)
                .await
                .map_err(|e| Interrupt::Transient(e.to_string()))?;
        let mut deleted = 0usize;
        let result = async {
            while let Some(ids) = pages
                .next_page()
                .await
                .map_err(|e| Interrupt::Transient(e.to_string()))?
            {
                if ids.is_empty() {
                    continue;
                }
                let n = ids.len();
                let docs = ids
                    .into_iter()
                    .map(|(id, routing)| DocChange {
                        id,
                        op: Op::Delete,
                        routing,
                    })
                    .collect();
                let outcome = self
                    .send_chunk(
                        window,
                        window.opened.position.clone(),
                        Arc::clone(index),
                        docs,
                        None,
                        false,
                    )
                    .await?;
                if outcome == ChunkOutcome::Invalidated {
                    return Ok(false);
                }
                deleted += n;
            }
            Ok(true)
        }
        .await;
        pages.close().await;
        if deleted > 0 {
            info!(table = %format!("{}.{}", copy.db, copy.table), index = %index, documents = deleted, "Deleted documents whose rows no longer exist.");
        }
        result
    }
}

/// A window opened at the reader; dropping it closes the window there (a window nobody
/// closes records every changed id of its table until it outgrows its bound).
struct Window {
    opened: Opened,
    reader: mpsc::Sender<CopyRequest>,
}

impl Drop for Window {
    fn drop(&mut self) {
        // Closing twice is harmless (the last chunk already closed it at the reader).
        let close = CopyRequest::Close(self.opened.window);
        match self.reader.try_send(close) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(close)) => {
                // The reader is busy: send it later, without blocking whoever drops us.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let reader = self.reader.clone();
                    rt.spawn(async move {
                        let _ = reader.send(close).await;
                    });
                }
            }
        }
    }
}
