//! The stage wiring of `run`: spawn the writer lanes, the tracker, the checkpoint writer,
//! the reader and the copy coordinator with the channels between them; watch them until
//! a signal or a failure; then drain within one shutdown budget.
//!
//! Drain order: the reader stops first (no new changes), the lanes finish their queues,
//! then the tracker and the checkpoint writer end with the last committed position. A
//! lane failing for good aborts the others, since nothing can be committed past it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::Error;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, Tracker, TrackerExit};
use crate::config::{Config, DeadLetterKind};
use crate::document::store::Documents;
use crate::es::EsClient;
use crate::ordering::{LaneSender, Router, lane_queue};
use crate::reader::{Reader, ReaderError, ReaderSetup, StartMode, StreamState};
use crate::rebuild::RebuildSetup;
use crate::snapshot::{ResyncRequest, SnapshotError};
use crate::source::MysqlSource;
use crate::telemetry::http::ReindexCall;
use crate::telemetry::progress::Progress;
use crate::writer::dead_letter::DeadLetter;
use crate::writer::indices::Indices;
use crate::writer::{Lane, LaneContext, WriterError};

/// Copy requests queued for the reader: each worker has at most one chunk in flight.
const COPY_QUEUE: usize = 64;

/// Tickets queued for the tracker: enough to cover many small transactions while
/// the oldest one waits for its batch, bounded so the reader feels backpressure.
const TICKET_QUEUE: usize = 16_384;
/// Requests to write the checkpoint at once; the reader waits for each, so few are queued.
const SYNC_QUEUE: usize = 16;

/// Both servers as start-up left them.
pub(super) struct Upstream {
    /// Elasticsearch, reached.
    pub(super) client: EsClient,
    /// MySQL connection settings.
    pub(super) source: MysqlSource,
    /// MySQL `host:port`, for messages.
    pub(super) host: String,
    /// Rules with relations (SPEC §9), resolved against the tables.
    pub(super) documents: Option<Arc<Documents>>,
}

/// The re-sync channel: requests for the copy coordinator, and the reader's sender.
pub(super) struct Resync {
    /// What the copy coordinator receives.
    pub(super) requests: mpsc::Receiver<ResyncRequest>,
    /// The reader's way to ask for a copy (a statement that changed rows without events).
    pub(super) reader: mpsc::Sender<ResyncRequest>,
    /// `POST /reindex` calls; `None` without the endpoint.
    pub(super) reindex: Option<mpsc::Receiver<ReindexCall>>,
}

/// The running stages.
pub(super) struct Stages {
    /// Stops the reader and the copies.
    stop_reading: CancellationToken,
    /// Makes the lanes give up what they hold.
    abort: CancellationToken,
    lanes: JoinSet<Result<(), WriterError>>,
    tracker: JoinHandle<TrackerExit>,
    persist: JoinHandle<Result<(), CheckpointError>>,
    reader: JoinHandle<Result<(), ReaderError>>,
    copier: JoinHandle<Result<(), SnapshotError>>,
    /// The rebuild coordinator (SPEC §10).
    rebuilds: JoinHandle<()>,
    /// The sink's index task (index preparation, deleting a table's documents).
    indices: JoinHandle<Result<(), WriterError>>,
}

/// How the watch over the stages ended.
pub(super) struct Ended {
    /// The first failure, if any.
    failure: Option<Error>,
    /// The reader's task is already joined.
    reader_done: bool,
    /// The checkpoint writer's task is already joined.
    persist_done: bool,
    /// The index task is already joined.
    indices_done: bool,
    /// A lane, the copy or the checkpoint writer failed for good: what the lanes hold
    /// cannot be committed past it, so they give it up. A reader or index-task failure
    /// lets them drain, so less is replayed on the next start.
    abort_lanes: bool,
}

impl Stages {
    /// Spawns every stage, connected, starting at `start` (a checkpoint and how to resume
    /// it).
    pub(super) fn spawn(
        config: &Arc<Config>,
        up: Upstream,
        (start, mode): (Checkpoint, StartMode),
        store: &CheckpointStore,
        progress: &Arc<Progress>,
        resync: Resync,
        http_stop: &CancellationToken,
    ) -> Self {
        let Upstream {
            client,
            source,
            host,
            documents,
        } = up;
        let stop_reading = CancellationToken::new();
        let abort = CancellationToken::new();
        let (indices, index_requests) = Indices::channel();
        let index_task = tokio::spawn(crate::writer::indices::serve(
            index_requests,
            client.clone(),
            Arc::clone(config),
            stop_reading.clone(),
            documents.clone(),
        ));
        let (lanes, senders) = spawn_lanes(config, &client, &abort, &documents);
        let (ticket_tx, ticket_rx) = mpsc::channel(TICKET_QUEUE);
        let (ckpt_tx, ckpt_rx) = watch::channel(start.clone());
        let committed = ckpt_rx.clone();
        let ckpt_rx_for_head = ckpt_rx.clone();
        let ckpt_rx_for_copier = ckpt_rx.clone();
        let ckpt_rx_for_rebuilds = ckpt_rx.clone();
        // Copy workers ask the reader to merge their chunks; a few in flight is plenty.
        let (copy_tx, copy_rx) = mpsc::channel(COPY_QUEUE);
        let tracker = tokio::spawn(
            Tracker::new(start.clone())
                .with_progress(Arc::clone(progress))
                .run(ticket_rx, ckpt_tx),
        );
        let (sync_tx, sync_rx) = mpsc::channel(SYNC_QUEUE);
        let sync_for_rebuilds = sync_tx.clone();
        let persist = tokio::spawn(crate::checkpoint::tracker::persist(
            store.clone(),
            ckpt_rx,
            Duration::from_millis(config.checkpoint.interval_ms),
            sync_rx,
        ));
        let reader = Reader::new(ReaderSetup {
            config: Arc::clone(config),
            source: source.clone(),
            host,
            identity: start.server.clone(),
            state: StreamState {
                position: start.position.clone(),
                gtid: start.gtid.clone(),
                version: start.version,
            },
            mode,
            router: Router::new(senders, config.writer.max_buffered_bytes),
            tickets: ticket_tx,
            stop: stop_reading.clone(),
            indices: indices.clone(),
            committed,
            progress: Arc::clone(progress),
            copies: Some(copy_rx),
            persist: sync_tx,
            leased: start.version_lease,
            resync: resync.reader.clone(),
            documents,
            rebuilds: start.rebuilds.clone(),
        });
        let reader = tokio::spawn(reader.run());
        let rebuilds = tokio::spawn(crate::rebuild::run(RebuildSetup {
            config: Arc::clone(config),
            source: source.clone(),
            indices: indices.clone(),
            reader: copy_tx.clone(),
            copies: resync.reader,
            committed: ckpt_rx_for_rebuilds,
            persist: sync_for_rebuilds,
            resume: start.rebuilds.clone(),
            calls: resync.reindex,
            stop: stop_reading.clone(),
        }));
        let copier = tokio::spawn(crate::snapshot::run(crate::snapshot::CopySetup {
            config: Arc::clone(config),
            source: source.clone(),
            flavor: start.server.flavor,
            es: client.clone(),
            indices,
            reader: copy_tx,
            committed: ckpt_rx_for_copier,
            pending: start.copies.clone(),
            resync: resync.requests,
            stop: stop_reading.clone(),
        }));
        if config.http.enabled {
            tokio::spawn(super::lag::poll_head(
                source,
                start.server.flavor,
                ckpt_rx_for_head,
                http_stop.clone(),
            ));
        }
        Self {
            stop_reading,
            abort,
            lanes,
            tracker,
            persist,
            reader,
            copier,
            rebuilds,
            indices: index_task,
        }
    }

    /// Runs until a signal, a fatal reader error, or a lane failure.
    pub(super) async fn supervise(&mut self, shutdown: impl Future<Output = ()>) -> Ended {
        let mut failure: Option<Error> = None;
        tokio::pin!(shutdown);
        let mut reader_done = false;
        let mut copier_done = false;
        let mut rebuilds_done = false;
        let mut persist_done = false;
        let mut indices_done = false;
        let mut index_failed = false;
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    info!("Shutting down: draining in-flight batches.");
                    break;
                }
                r = &mut self.reader => {
                    reader_done = true;
                    match r {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => failure = Some(e.into()),
                        Err(e) => failure = Some(Error::Internal(format!("reader task: {e}"))),
                    }
                    break;
                }
                Some(r) = self.lanes.join_next() => {
                    // A lane ending cleanly only means the reader dropped its queues; the
                    // reader's own result (awaited below) says why.
                    if !matches!(r, Ok(Ok(()))) {
                        failure = Some(lane_failure(r));
                    }
                    break;
                }
                r = &mut self.persist, if !persist_done => {
                    // The checkpoint task ends only with the tracker, or when a write failed:
                    // never stream on with the position on disk frozen.
                    persist_done = true;
                    failure = Some(match r {
                        // The tracker stopped (a failed transaction): the lanes say why.
                        Ok(Ok(())) => continue,
                        Ok(Err(e)) => e.into(),
                        Err(e) => Error::Internal(format!("checkpoint task: {e}")),
                    });
                    break;
                }
                r = &mut self.indices, if !indices_done => {
                    indices_done = true;
                    match r {
                        // Every requester is gone.
                        Ok(Ok(())) => continue,
                        Ok(Err(e)) => failure = Some(e.into()),
                        Err(e) => failure = Some(Error::Internal(format!("index task: {e}"))),
                    }
                    index_failed = true;
                    break;
                }
                r = &mut self.rebuilds, if !rebuilds_done => {
                    rebuilds_done = true;
                    match r {
                        // Stopped: nothing more to do.
                        Ok(()) => continue,
                        Err(e) => failure = Some(Error::Internal(format!("rebuild task: {e}"))),
                    }
                    break;
                }
                r = &mut self.copier, if !copier_done => {
                    copier_done = true;
                    match r {
                        // Copies done and no re-sync can come: keep streaming.
                        Ok(Ok(())) => continue,
                        Ok(Err(e)) => failure = Some(e.into()),
                        Err(e) => failure = Some(Error::Internal(format!("copy task: {e}"))),
                    }
                    break;
                }
            }
        }
        Ended {
            abort_lanes: failure.is_some() && !reader_done && !index_failed,
            failure,
            reader_done,
            persist_done,
            indices_done,
        }
    }

    /// Stops the reader, drains the lanes and ends the tracker and the checkpoint writer,
    /// all within `shutdown_timeout`; says how the daemon stopped.
    ///
    /// # Errors
    /// The first failure; [`Error::Incomplete`] when work was left behind the checkpoint.
    pub(super) async fn drain(
        mut self,
        ended: Ended,
        config: &Config,
        store: &CheckpointStore,
    ) -> Result<(), Error> {
        let Ended {
            mut failure,
            reader_done,
            persist_done,
            indices_done,
            abort_lanes,
        } = ended;
        // Set when the drain gave up on queued or in-flight changes: the exit is then 1 even
        // if no transaction ticket recorded it (the reader may have stopped inside a
        // transaction).
        let mut abandoned = false;
        self.stop_reading.cancel();
        // One budget for the whole stop: the reader's exit and the drain share it.
        let deadline = Instant::now() + config.shutdown_timeout;
        if abort_lanes {
            self.abort.cancel();
        }
        if !reader_done {
            abandoned |= self
                .stop_reader(&mut failure, deadline, config.shutdown_timeout)
                .await;
        }
        if !indices_done {
            self.stop_indices(&mut failure, deadline).await;
        }
        abandoned |= self
            .drain_lanes(&mut failure, deadline, config.shutdown_timeout)
            .await;
        let exit = self
            .tracker
            .await
            .map_err(|e| Error::Internal(format!("tracker task: {e}")))?;
        let persisted = if persist_done {
            Ok(())
        } else {
            self.persist
                .await
                .map_err(|e| Error::Internal(format!("checkpoint task: {e}")))?
        };
        let committed = store.load().ok().flatten();
        let at = committed
            .as_ref()
            .map(|c| c.position.to_string())
            .unwrap_or_default();
        if let Err(e) = persisted {
            failure.get_or_insert(e.into());
        }
        if let Some(e) = failure {
            error!(checkpoint = %at, "Stopped: {e}");
            return Err(e);
        }
        match exit {
            TrackerExit::Drained if !abandoned => {
                info!(checkpoint = %at, "Stopped cleanly.");
                Ok(())
            }
            TrackerExit::Drained | TrackerExit::Abandoned(_) | TrackerExit::Failed(_) => {
                Err(Error::Incomplete { position: at })
            }
        }
    }

    /// Awaits the reader until `deadline`; returns whether it was abandoned.
    async fn stop_reader(
        &mut self,
        failure: &mut Option<Error>,
        deadline: Instant,
        timeout: Duration,
    ) -> bool {
        // The reader watches the stop signal wherever it waits; the bound is a safety net
        // so that a stop under an outage still ends within shutdown_timeout.
        match tokio::time::timeout_at(deadline, &mut self.reader).await {
            Ok(Ok(Err(e))) if failure.is_none() => *failure = Some(e.into()),
            Ok(Err(e)) if failure.is_none() => {
                *failure = Some(Error::Internal(format!("reader task: {e}")))
            }
            Ok(_) => {}
            Err(_) => {
                warn!(
                    ?timeout,
                    "The reader did not stop within shutdown_timeout; abandoning it."
                );
                self.reader.abort();
                self.abort.cancel();
                return true;
            }
        }
        false
    }

    /// Awaits the index task until `deadline`: a reader that stopped because that task
    /// ended leaves the reason to it.
    async fn stop_indices(&mut self, failure: &mut Option<Error>, deadline: Instant) {
        match tokio::time::timeout_at(deadline, &mut self.indices).await {
            Ok(Ok(Err(e))) => {
                failure.get_or_insert(e.into());
            }
            Ok(Err(e)) => {
                failure.get_or_insert(Error::Internal(format!("index task: {e}")));
            }
            Ok(Ok(Ok(()))) => {}
            Err(_) => self.indices.abort(),
        }
    }

    /// Lanes finish their queues until `deadline`; returns whether the rest was abandoned.
    async fn drain_lanes(
        &mut self,
        failure: &mut Option<Error>,
        deadline: Instant,
        timeout: Duration,
    ) -> bool {
        let lanes = &mut self.lanes;
        let drain = async {
            while let Some(r) = lanes.join_next().await {
                if let Ok(Err(e)) = r {
                    return Some(Error::Writer(e));
                }
            }
            None
        };
        match tokio::time::timeout_at(deadline, drain).await {
            Ok(Some(e)) => {
                self.abort.cancel();
                failure.get_or_insert(e);
            }
            Ok(None) => {}
            Err(_) => {
                warn!(
                    ?timeout,
                    "Drain took longer than shutdown_timeout; abandoning the rest."
                );
                self.abort.cancel();
                while self.lanes.join_next().await.is_some() {}
                return true;
            }
        }
        false
    }
}

/// The writer lanes, each with its bounded queue; returns them and their queues' senders.
fn spawn_lanes(
    config: &Config,
    client: &EsClient,
    abort: &CancellationToken,
    documents: &Option<Arc<Documents>>,
) -> (JoinSet<Result<(), WriterError>>, Vec<LaneSender>) {
    let mut lanes = JoinSet::new();
    let mut senders = Vec::with_capacity(config.writer.lanes);
    let ctx = LaneContext {
        client: client.clone(),
        config: config.writer.clone(),
        on_rejected: config.dead_letter.on_rejected,
        dead_letter: match config.dead_letter.destination {
            DeadLetterKind::File => DeadLetter::file(config.dead_letter_path()),
            DeadLetterKind::Index => DeadLetter::index(
                client.clone(),
                config.dead_letter_index(),
                config.writer.retry_initial_ms,
                config.writer.retry_max_ms,
            ),
        },
        abort: abort.clone(),
        documents: documents.clone(),
    };
    for id in 0..config.writer.lanes {
        let (tx, queue) = lane_queue(config.writer.queue_capacity);
        senders.push(tx);
        lanes.spawn(Lane::new(id, ctx.clone()).run(queue));
    }
    (lanes, senders)
}

fn lane_failure(r: Result<Result<(), WriterError>, tokio::task::JoinError>) -> Error {
    match r {
        Ok(Err(e)) => Error::Writer(e),
        Ok(Ok(())) => Error::Internal("a writer lane stopped unexpectedly".into()),
        Err(e) => Error::Internal(format!("writer lane: {e}")),
    }
}
