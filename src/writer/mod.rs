//! Stage 4: batches per lane, `_bulk` requests, per-item outcomes, acknowledgements.
//!
//! Changes to one document always use the same lane, and a lane never has two
//! requests in flight that touch the same document (`writer.pipeline_depth`, default
//! one request at a time), so the order of changes to one document is the order they
//! reach Elasticsearch.
//! Transient failures are retried with backoff — the whole request or only the
//! failed items — while the lane's queue fills and backpressure reaches the reader.
//! Rejected documents go to the dead-letter file (or stop the daemon).

pub mod bulk;
pub mod client;
pub mod dead_letter;
pub mod index;
pub mod response;
pub mod retry;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, warn};

use crate::checkpoint::{AckToken, TxnStatus};
use crate::config::{OnRejected, WriterConfig};
use crate::ordering::{Change, coalesce, key_hash};
use crate::telemetry::metrics;
pub use client::{EsClient, SendError};
use dead_letter::{DeadLetter, Rejection};
use response::ItemOutcome;
use retry::Backoff;

/// Errors of the writer stage.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// Client construction (URL, secrets, CA).
    #[error("{0}")]
    Setup(String),
    /// A secret, certificate or key file named in `[elasticsearch]` is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The dead-letter file cannot be written.
    #[error("cannot write dead-letter file {path}: {source}")]
    DeadLetter {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The dead-letter index cannot take rejected documents.
    #[error("cannot write to the dead-letter index `{index}`: {message}")]
    DeadLetterIndex {
        /// Index.
        index: String,
        /// What failed.
        message: String,
    },
    /// A document was rejected and `on_rejected = "fail"`.
    #[error(
        "Elasticsearch rejected document `{id}` in index `{index}` (HTTP {status}): {error}; \
         binlog position {position}. Fix the mapping or data, or set \
         dead_letter.on_rejected = \"dead_letter\""
    )]
    Rejected {
        /// Index.
        index: String,
        /// Document id.
        id: String,
        /// Item status.
        status: u16,
        /// Item error.
        error: String,
        /// Source position.
        position: String,
    },
    /// A request that retrying cannot fix (e.g. 413, or a malformed request).
    #[error("Elasticsearch refused a bulk request (HTTP {status}): {body}; {hint}")]
    Refused {
        /// Status.
        status: u16,
        /// Body excerpt.
        body: String,
        /// What to do.
        hint: &'static str,
    },
    /// `writer.max_retries` attempts failed.
    #[error("giving up after {attempts} attempts: {last}; raise writer.max_retries (0 = forever)")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// Last error.
        last: String,
    },
    /// Elasticsearch refused to create, inspect or extend a target index.
    #[error("cannot prepare index `{index}`: {message}; {hint}")]
    Index {
        /// The index.
        index: String,
        /// What was refused, with the server's reason (it names the field).
        message: String,
        /// What to do.
        hint: String,
    },
    /// Shutdown arrived while an index could not be prepared (server unreachable).
    #[error(
        "stopped while preparing index `{index}` (last error: {last}); the changes after the \
         checkpoint are replayed on the next start"
    )]
    IndexInterrupted {
        /// The index.
        index: String,
        /// Last transient error.
        last: String,
    },
    /// The sink's response did not match the request.
    #[error("{0}")]
    Response(#[from] response::ResponseError),
    /// A lane's request task ended abnormally (a bug).
    #[error("writer request task: {0}")]
    Task(String),
}

/// Everything a lane needs besides its queue.
#[derive(Clone)]
pub struct LaneContext {
    /// Sink client.
    pub client: EsClient,
    /// Batching and retry settings.
    pub config: WriterConfig,
    /// Rejection policy.
    pub on_rejected: OnRejected,
    /// Dead-letter destination.
    pub dead_letter: DeadLetter,
    /// Fires when the drain budget is spent: abandon whatever is still pending.
    pub abort: CancellationToken,
}

/// One lane: batches its queue and writes each batch until acknowledged, with up to
/// `writer.pipeline_depth` requests in flight.
///
/// Ordering with more than one request in flight: a batch is sent only when no
/// in-flight batch holds any of its documents (compared by key hash, so a collision
/// only makes it wait). Two writes to one document therefore never travel together,
/// and the later one starts only after the earlier one was acknowledged (or
/// dead-lettered) — the same order as with one request at a time, without relying on
/// versions (a delete's tombstone may be gone, and a transaction's changes share one
/// version). Acknowledgements may complete out of order across batches; the tracker
/// awaits transactions in binlog order, so the checkpoint never passes a change that
/// is still in flight.
pub struct Lane {
    id: usize,
    ctx: Arc<LaneContext>,
    /// Size of the last request body, so the next one starts at about its size.
    body_capacity: usize,
}

/// An in-flight request's outcome and the size of its body.
type Flushed = (Result<(), WriterError>, usize);

impl Lane {
    /// Lane number `id`.
    pub fn new(id: usize, ctx: LaneContext) -> Self {
        Self {
            id,
            ctx: Arc::new(ctx),
            body_capacity: 64 * 1024,
        }
    }

    /// Runs until the queue is closed and drained, or `abort` fires.
    ///
    /// # Errors
    /// A fatal sink condition (rejection with `on_rejected = "fail"`, refused request,
    /// retries exhausted, dead-letter file unwritable).
    #[tracing::instrument(name = "lane", skip_all, fields(stage = "writer", lane = self.id))]
    pub async fn run(mut self, mut rx: mpsc::Receiver<Change>) -> Result<(), WriterError> {
        let max_docs = self.ctx.config.max_docs;
        let max_bytes = self.ctx.config.max_bytes;
        let max_delay = Duration::from_millis(self.ctx.config.max_delay_ms);
        let depth = self.ctx.config.pipeline_depth.max(1);
        let abort = self.ctx.abort.clone();
        let mut in_flight: JoinSet<Flushed> = JoinSet::new();
        // Key hashes of each in-flight batch (only tracked with depth > 1).
        let mut busy: HashMap<tokio::task::Id, HashSet<u64>> = HashMap::new();
        loop {
            // A free slot first: while every slot is busy the queue fills up, so the
            // next batch is a full one.
            while in_flight.len() >= depth {
                self.settle_one(&mut in_flight, &mut busy).await?;
            }
            let first = loop {
                tokio::select! {
                    c = rx.recv() => break c,
                    done = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                        self.settled(done, &mut busy)?;
                    }
                    _ = abort.cancelled() => return Ok(()),
                }
            };
            let Some(first) = first else {
                return self.drain(&mut in_flight, &mut busy).await;
            };
            let deadline = tokio::time::Instant::now() + max_delay;
            let mut bytes = first.weight();
            let mut batch = vec![first];
            let mut closed = false;
            while batch.len() < max_docs && bytes < max_bytes {
                let next = match rx.try_recv() {
                    Ok(c) => Some(c),
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        None
                    }
                    Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                        c = rx.recv() => {
                            closed = c.is_none();
                            c
                        }
                        _ = tokio::time::sleep_until(deadline) => None,
                    },
                };
                match next {
                    Some(c) => {
                        bytes += c.weight();
                        batch.push(c);
                    }
                    None => break,
                }
            }
            let (pending, superseded) = coalesce(batch);
            let keys: HashSet<u64> = if depth > 1 {
                pending.iter().map(|c| key_hash(&c.key)).collect()
            } else {
                HashSet::new()
            };
            // Per-document order: wait until no in-flight batch holds one of these documents.
            while busy.values().any(|held| !held.is_disjoint(&keys)) {
                self.settle_one(&mut in_flight, &mut busy).await?;
            }
            let flush = flush(
                Arc::clone(&self.ctx),
                pending,
                superseded,
                self.body_capacity,
            )
            .instrument(tracing::Span::current());
            let task = in_flight.spawn(flush);
            if depth > 1 {
                busy.insert(task.id(), keys);
            }
            if closed {
                // The queue is closed and was drained into this last batch.
                return self.drain(&mut in_flight, &mut busy).await;
            }
        }
    }

    /// Waits for every in-flight request.
    async fn drain(
        &mut self,
        in_flight: &mut JoinSet<Flushed>,
        busy: &mut HashMap<tokio::task::Id, HashSet<u64>>,
    ) -> Result<(), WriterError> {
        while !in_flight.is_empty() {
            self.settle_one(in_flight, busy).await?;
        }
        Ok(())
    }

    /// Waits for one in-flight request to finish.
    async fn settle_one(
        &mut self,
        in_flight: &mut JoinSet<Flushed>,
        busy: &mut HashMap<tokio::task::Id, HashSet<u64>>,
    ) -> Result<(), WriterError> {
        let done = in_flight.join_next_with_id().await;
        self.settled(done, busy)
    }

    fn settled(
        &mut self,
        done: Option<Result<(tokio::task::Id, Flushed), tokio::task::JoinError>>,
        busy: &mut HashMap<tokio::task::Id, HashSet<u64>>,
    ) -> Result<(), WriterError> {
        match done {
            None => Ok(()),
            Some(Ok((id, (result, capacity)))) => {
                busy.remove(&id);
                self.body_capacity = capacity;
                result
            }
            Some(Err(e)) => {
                busy.remove(&e.id());
                Err(WriterError::Task(e.to_string()))
            }
        }
    }
}

/// Writes one coalesced batch until every change is applied, dead-lettered or
/// abandoned; `done_tokens` are the acknowledgements of the changes it superseded.
/// Returns the outcome and the size of the last request body.
async fn flush(
    ctx: Arc<LaneContext>,
    mut pending: Vec<Change>,
    superseded: Vec<AckToken>,
    capacity: usize,
) -> Flushed {
    let mut done_tokens = superseded;
    let mut capacity = capacity;
    let mut backoff = Backoff::new(ctx.config.retry_initial_ms, ctx.config.retry_max_ms);
    loop {
        let mut body = Vec::with_capacity(capacity);
        bulk::encode(&pending, &mut body);
        capacity = body.len();
        // The buffer is handed over, not copied.
        let body = Bytes::from(body);
        let started = Instant::now();
        let sent = tokio::select! {
            r = ctx.client.bulk_with(body, ctx.config.gzip) => r,
            _ = ctx.abort.cancelled() => return (Ok(()), capacity),
        };
        metrics::bulk_duration(started.elapsed());
        let failure = match sent {
            Ok(resp) => {
                let items = match response::parse(&resp, pending.len()) {
                    Ok(items) => items,
                    Err(e) => return (Err(e.into()), capacity),
                };
                let Some(items) = items else {
                    metrics::bulk_request("success");
                    debug!(docs = pending.len(), "Bulk request applied.");
                    resolve_all(pending, done_tokens, TxnStatus::Delivered);
                    return (Ok(()), capacity);
                };
                let (retry, reason) = match settle_items(&ctx, &mut pending, items).await {
                    Ok(r) => r,
                    Err(e) => return (Err(e), capacity),
                };
                for c in std::mem::take(&mut pending) {
                    done_tokens.push(c.ack);
                }
                if retry.is_empty() {
                    metrics::bulk_request("partial");
                    resolve_all(Vec::new(), done_tokens, TxnStatus::Delivered);
                    return (Ok(()), capacity);
                }
                // Applied items are done; only the transient failures go again.
                resolve_all(
                    Vec::new(),
                    std::mem::take(&mut done_tokens),
                    TxnStatus::Delivered,
                );
                pending = retry;
                metrics::bulk_request("retry_items");
                reason
            }
            Err(SendError::Status { status, body })
                if !(status == 429 || status >= 500 || status == 401 || status == 403) =>
            {
                metrics::bulk_request("refused");
                let hint = if status == 413 {
                    "lower writer.max_bytes"
                } else {
                    "this is a bug or an incompatible server; please report it"
                };
                return (Err(WriterError::Refused { status, body, hint }), capacity);
            }
            Err(e) => {
                metrics::bulk_request("error");
                e.to_string()
            }
        };
        let max = ctx.config.max_retries;
        if max > 0 && backoff.attempts() + 1 >= max {
            let err = WriterError::RetriesExhausted {
                attempts: backoff.attempts() + 1,
                last: failure,
            };
            return (Err(err), capacity);
        }
        let delay = backoff.next_delay();
        if failure.contains("HTTP 401") || failure.contains("HTTP 403") {
            error!(error = %failure, retry_in = ?delay, "Elasticsearch refuses our credentials; fix them, retrying.");
        } else {
            warn!(error = %failure, docs = pending.len(), attempt = backoff.attempts(), retry_in = ?delay, "Bulk request failed, retrying.");
        }
        metrics::retry();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = ctx.abort.cancelled() => return (Ok(()), capacity),
        }
    }
}

/// Splits a partially failed batch: rejected items are dead-lettered (or fail
/// the daemon), transient ones are returned for another attempt.
async fn settle_items(
    ctx: &LaneContext,
    pending: &mut Vec<Change>,
    items: Vec<ItemOutcome>,
) -> Result<(Vec<Change>, String), WriterError> {
    let mut retry = Vec::new();
    let mut keep = Vec::with_capacity(pending.len());
    let mut rejected: Vec<(Change, u16, serde_json::Value)> = Vec::new();
    let mut reason = String::new();
    for (c, outcome) in std::mem::take(pending).into_iter().zip(items) {
        match outcome {
            ItemOutcome::Applied => keep.push(c),
            ItemOutcome::Retry { status, error } => {
                if reason.is_empty() {
                    reason = format!("item HTTP {status}: {error}");
                }
                retry.push(c);
            }
            ItemOutcome::Rejected { status, error } => rejected.push((c, status, error)),
        }
    }
    if !rejected.is_empty() {
        if ctx.on_rejected == OnRejected::Fail {
            let (c, status, error) = &rejected[0];
            let err = WriterError::Rejected {
                index: c.key.index.to_string(),
                id: c.key.id.clone(),
                status: *status,
                error: error.to_string(),
                position: c.origin.to_string(),
            };
            for (c, _, _) in rejected {
                c.ack.resolve(TxnStatus::Failed);
            }
            return Err(err);
        }
        let entries: Vec<Rejection<'_>> = rejected
            .iter()
            .map(|(c, status, error)| Rejection {
                change: c,
                status: *status,
                error,
            })
            .collect();
        ctx.dead_letter.append(&entries, &ctx.abort).await?;
        metrics::rejected(rejected.len());
        let (c, status, error) = &rejected[0];
        warn!(
            count = rejected.len(),
            index = %c.key.index,
            id = %c.key.id,
            status,
            error = %error,
            position = %c.origin,
            dead_letter = %ctx.dead_letter.describe(),
            "Elasticsearch rejected documents; written to the dead-letter destination."
        );
        keep.extend(rejected.into_iter().map(|(c, _, _)| c));
    }
    *pending = keep;
    Ok((retry, reason))
}

fn resolve_all(changes: Vec<Change>, tokens: Vec<AckToken>, status: TxnStatus) {
    for c in changes {
        c.ack.resolve(status);
    }
    for t in tokens {
        t.resolve(status);
    }
}
