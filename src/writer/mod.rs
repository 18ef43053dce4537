//! Stage 4: batches per lane, `_bulk` requests, per-item outcomes, acknowledgements.
//!
//! Changes to one document always use the same lane, and a lane never has two
//! requests in flight that touch the same document (`writer.pipeline_depth`, default
//! one request at a time), so the order of changes to one document is the order they
//! reach Elasticsearch.
//! Transient failures are retried with backoff — the whole request or only the
//! failed items — while the lane's queue fills and backpressure reaches the reader.
//! Rejected documents go to the dead-letter file (or stop the daemon).
//!
//! A batch is capped by `writer.max_docs` and by `writer.max_bytes` of body (a change that
//! would overflow it starts the next batch; a single larger change goes alone). A request
//! the sink refuses as too large (HTTP 413, `http.max_content_length`) is split in halves
//! and retried; a single document that is still too large is rejected like a 400 item
//! (dead-lettered, or stops the daemon with `on_rejected = "fail"`).
//! Each batch holds its changes' share of the byte budget (see [`crate::ordering`]) until
//! it is done with, so the budget bounds what the queues and requests in flight hold.

pub mod bulk;
pub mod client;
pub mod dead_letter;
pub mod index;
pub mod indices;
pub mod response;
pub mod retry;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, warn};

use crate::checkpoint::{AckToken, TxnStatus};
use crate::config::{OnRejected, WriterConfig};
use crate::ordering::{Change, Routed, coalesce, key_hash};
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
    /// A table's index could not be prepared for its documents.
    #[error("at {at}: {source}")]
    Prepare {
        /// Where the request came from (a binlog position, a copy).
        at: String,
        /// What failed.
        source: Box<WriterError>,
    },
    /// Elasticsearch refused a request a statement needs (TRUNCATE, DROP).
    #[error("at {at}: {message}")]
    Statement {
        /// Where the statement was read.
        at: String,
        /// What was refused.
        message: String,
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
    pub async fn run(mut self, mut rx: mpsc::Receiver<Routed>) -> Result<(), WriterError> {
        let max_docs = self.ctx.config.max_docs;
        let max_bytes = self.ctx.config.max_bytes;
        let max_delay = Duration::from_millis(self.ctx.config.max_delay_ms);
        let depth = self.ctx.config.pipeline_depth.max(1);
        let abort = self.ctx.abort.clone();
        let mut in_flight: JoinSet<Flushed> = JoinSet::new();
        // Key hashes of each in-flight batch (only tracked with depth > 1).
        let mut busy: HashMap<tokio::task::Id, HashSet<u64>> = HashMap::new();
        // A change that did not fit in the last batch's bytes: the next batch starts with it.
        let mut carry: Option<Routed> = None;
        loop {
            // A free slot first: while every slot is busy the queue fills up, so the
            // next batch is a full one.
            while in_flight.len() >= depth {
                self.settle_one(&mut in_flight, &mut busy).await?;
            }
            let first = match carry.take() {
                Some(c) => Some(c),
                None => loop {
                    tokio::select! {
                        c = rx.recv() => break c,
                        done = in_flight.join_next_with_id(), if !in_flight.is_empty() => {
                            self.settled(done, &mut busy)?;
                        }
                        _ = abort.cancelled() => return Ok(()),
                    }
                },
            };
            let Some(first) = first else {
                return self.drain(&mut in_flight, &mut busy).await;
            };
            let deadline = tokio::time::Instant::now() + max_delay;
            let mut bytes = first.change.weight();
            let mut held = first.held;
            let mut batch = vec![first.change];
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
                    Some(c) if bytes + c.change.weight() > max_bytes => {
                        carry = Some(c);
                        break;
                    }
                    Some(c) => {
                        bytes += c.change.weight();
                        // One router, one semaphore: merging permits of it cannot fail.
                        held.merge(c.held);
                        batch.push(c.change);
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
                held,
            )
            .instrument(tracing::Span::current());
            let task = in_flight.spawn(flush);
            if depth > 1 {
                busy.insert(task.id(), keys);
            }
            if closed && carry.is_none() {
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
/// abandoned; `superseded` are the acknowledgements of the changes it superseded, and
/// `held` the batch's share of the byte budget, given back when this returns.
/// Returns the outcome and the size of the last request body.
async fn flush(
    ctx: Arc<LaneContext>,
    pending: Vec<Change>,
    superseded: Vec<AckToken>,
    capacity: usize,
    held: OwnedSemaphorePermit,
) -> Flushed {
    let _held = held;
    let mut capacity = capacity;
    // Parts still to write, the next one last. A batch is one part until the sink refuses
    // it as too large; each refused part is replaced by its two halves, in order.
    let mut parts = vec![pending];
    while let Some(mut part) = parts.pop() {
        match write_part(&ctx, &mut part, &mut capacity).await {
            Ok(Written::Done) => {}
            Ok(Written::Abandoned) => return (Ok(()), capacity),
            Err(e) => return (Err(e), capacity),
            Ok(Written::TooLarge { body }) if part.len() > 1 => {
                metrics::bulk_request("split");
                warn!(docs = part.len(), bytes = capacity, error = %body, "Elasticsearch refused a bulk request as too large (HTTP 413); splitting it in two.");
                let second = part.split_off(part.len() / 2);
                parts.push(second);
                parts.push(part);
            }
            Ok(Written::TooLarge { body }) => {
                metrics::bulk_request("refused");
                let error = serde_json::json!({
                    "type": "request_entity_too_large",
                    "reason": format!(
                        "this document alone makes a bulk request of {capacity} bytes, more \
                         than the sink's maximum request size (http.max_content_length); \
                         raise that limit on the cluster or make the row smaller"
                    ),
                    "response": body,
                });
                let rejected = part.drain(..).map(|c| (c, 413, error.clone())).collect();
                match reject(&ctx, rejected).await {
                    Ok(handled) => resolve_all(handled, Vec::new(), TxnStatus::Delivered),
                    Err(e) => return (Err(e), capacity),
                }
            }
        }
    }
    resolve_all(Vec::new(), superseded, TxnStatus::Delivered);
    (Ok(()), capacity)
}

/// How writing one part of a batch ended (errors aside).
enum Written {
    /// Every change applied or dead-lettered, its acknowledgement resolved.
    Done,
    /// Shutdown's drain budget ran out: the changes are dropped unresolved.
    Abandoned,
    /// HTTP 413 for the whole request: nothing was applied, the part is unchanged.
    TooLarge {
        /// Start of the response body.
        body: String,
    },
}

/// Sends `part` until every change is applied or dead-lettered (retrying transient
/// failures: the whole request, or only the failed items), or until the sink refuses it
/// as too large. `capacity` is the size of the last request body.
async fn write_part(
    ctx: &LaneContext,
    part: &mut Vec<Change>,
    capacity: &mut usize,
) -> Result<Written, WriterError> {
    let mut backoff = Backoff::new(ctx.config.retry_initial_ms, ctx.config.retry_max_ms);
    loop {
        let mut body = Vec::with_capacity(*capacity);
        bulk::encode(part, &mut body);
        *capacity = body.len();
        // The buffer is handed over, not copied.
        let body = Bytes::from(body);
        let started = Instant::now();
        let sent = tokio::select! {
            r = ctx.client.bulk_with(body, ctx.config.gzip) => r,
            _ = ctx.abort.cancelled() => return Ok(Written::Abandoned),
        };
        metrics::bulk_duration(started.elapsed());
        let failure = match sent {
            Ok(resp) => {
                let Some(items) = response::parse(&resp, part.len())? else {
                    metrics::bulk_request("success");
                    debug!(docs = part.len(), "Bulk request applied.");
                    resolve_all(std::mem::take(part), Vec::new(), TxnStatus::Delivered);
                    return Ok(Written::Done);
                };
                let (retry, reason) = settle_items(ctx, part, items).await?;
                // Applied and dead-lettered items are done; only the transient failures
                // go again.
                resolve_all(std::mem::take(part), Vec::new(), TxnStatus::Delivered);
                if retry.is_empty() {
                    metrics::bulk_request("partial");
                    return Ok(Written::Done);
                }
                *part = retry;
                metrics::bulk_request("retry_items");
                reason
            }
            Err(SendError::Status { status: 413, body }) => {
                return Ok(Written::TooLarge { body });
            }
            Err(SendError::Status { status, body })
                if !(status == 429 || status >= 500 || status == 401 || status == 403) =>
            {
                metrics::bulk_request("refused");
                let hint = "this is a bug or an incompatible server; please report it";
                return Err(WriterError::Refused { status, body, hint });
            }
            Err(e) => {
                metrics::bulk_request("error");
                e.to_string()
            }
        };
        let max = ctx.config.max_retries;
        if max > 0 && backoff.attempts() + 1 >= max {
            return Err(WriterError::RetriesExhausted {
                attempts: backoff.attempts() + 1,
                last: failure,
            });
        }
        let delay = backoff.next_delay();
        if failure.contains("HTTP 401") || failure.contains("HTTP 403") {
            error!(error = %failure, retry_in = ?delay, "Elasticsearch refuses our credentials; fix them, retrying.");
        } else {
            warn!(error = %failure, docs = part.len(), attempt = backoff.attempts(), retry_in = ?delay, "Bulk request failed, retrying.");
        }
        metrics::retry();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = ctx.abort.cancelled() => return Ok(Written::Abandoned),
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
        keep.extend(reject(ctx, rejected).await?);
    }
    *pending = keep;
    Ok((retry, reason))
}

/// Documents the sink refused for good (a 4xx item, or alone over its request size):
/// written to the dead-letter destination and counted, then returned as handled; or, with
/// `on_rejected = "fail"`, the daemon's stop.
async fn reject(
    ctx: &LaneContext,
    rejected: Vec<(Change, u16, serde_json::Value)>,
) -> Result<Vec<Change>, WriterError> {
    let Some((c, status, error)) = rejected.first() else {
        return Ok(Vec::new());
    };
    if ctx.on_rejected == OnRejected::Fail {
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
    Ok(rejected.into_iter().map(|(c, _, _)| c).collect())
}

fn resolve_all(changes: Vec<Change>, tokens: Vec<AckToken>, status: TxnStatus) {
    for c in changes {
        c.ack.resolve(status);
    }
    for t in tokens {
        t.resolve(status);
    }
}
