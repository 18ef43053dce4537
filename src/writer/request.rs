//! One batch's requests: the whole request retried while the failure is transient, only
//! the failed items when some were applied, halves when the sink finds it too large;
//! rejected items dead-lettered (or the daemon's stop).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, warn};

use super::dead_letter::Rejection;
use super::in_flight::Flushed;
use super::lane_time::{Activity, LaneTime};
use super::{LaneContext, WriterError, bulk};
use crate::checkpoint::{AckToken, TxnStatus};
use crate::config::OnRejected;
use crate::es::response::{self, ItemOutcome};
use crate::es::{EsClient, SendError};
use crate::ordering::{Change, key_hash};
use crate::retry::{Attempt, Failure, Retry, RetryError, Verdict, retry_until};
use crate::telemetry::metrics;

/// Where a lane's `_bulk` requests go: the client, or a fake in tests.
pub(super) trait BulkSink: Sync {
    /// `POST /_bulk` with an NDJSON body (gzipped when `gzip`); the response body.
    fn bulk(
        &self,
        body: Bytes,
        gzip: bool,
    ) -> impl Future<Output = Result<Bytes, SendError>> + Send;
}

impl BulkSink for EsClient {
    fn bulk(
        &self,
        body: Bytes,
        gzip: bool,
    ) -> impl Future<Output = Result<Bytes, SendError>> + Send {
        self.bulk_with(body, gzip)
    }
}

/// Writes one coalesced batch until every change is applied, dead-lettered or
/// abandoned; `superseded` are the acknowledgements of the changes it superseded, and
/// `held` the batch's share of the byte budget, given back when this returns.
/// Returns the outcome and the size of the last request body.
pub(super) async fn flush(
    ctx: Arc<LaneContext>,
    times: Arc<LaneTime>,
    pending: Vec<Change>,
    mut superseded: Vec<AckToken>,
    capacity: usize,
    held: OwnedSemaphorePermit,
) -> Flushed {
    let _held = held;
    let mut capacity = capacity;
    let at = Instant::now();
    let built = super::refresh::build_refreshes(&ctx, pending, &mut superseded).await;
    times.add(Activity::Build, at);
    let pending = match built {
        Ok(Some(pending)) => pending,
        Ok(None) => return (Ok(()), capacity),
        Err(e) => return (Err(e), capacity),
    };
    if pending.is_empty() {
        // Every refresh found its root gone or no longer a document: nothing to send.
        resolve_all(Vec::new(), superseded, TxnStatus::Delivered);
        return (Ok(()), capacity);
    }
    let sink = &ctx.client;
    // Parts still to write, the next one last. A batch is one part until the sink refuses
    // it as too large; each refused part is replaced by its two halves, in order.
    let mut parts = vec![pending];
    while let Some(mut part) = parts.pop() {
        match write_part(&ctx, sink, &mut part, &mut capacity, &times).await {
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
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Written {
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

/// Sends `part` through `sink` until every change is applied or dead-lettered (retrying
/// transient failures: the whole request, or only the failed items), or until the sink
/// refuses it as too large. `capacity` is the size of the last request body.
pub(super) async fn write_part(
    ctx: &LaneContext,
    sink: &impl BulkSink,
    part: &mut Vec<Change>,
    capacity: &mut usize,
    times: &LaneTime,
) -> Result<Written, WriterError> {
    let retry = Retry::new(
        ctx.config.retry_initial_ms,
        ctx.config.retry_max_ms,
        &ctx.abort,
        "Bulk request failed, retrying.",
        "_bulk",
    )
    .max_attempts(ctx.config.max_retries)
    .on_retry(metrics::retry);
    let state = (std::mem::take(part), *capacity);
    let ((rest, size), written) = retry_until(&retry, state, |(mut part, size)| async move {
        let at = Instant::now();
        let mut body = Vec::with_capacity(size);
        bulk::encode(&part, &mut body);
        let size = body.len();
        // The buffer is handed over, not copied.
        let body = Bytes::from(body);
        times.add(Activity::Build, at);
        times.request(part.len());
        let started = Instant::now();
        let sent = tokio::select! {
            r = sink.bulk(body, ctx.config.gzip) => r,
            _ = ctx.abort.cancelled() => return ((part, size), Attempt::Done(Written::Abandoned)),
        };
        metrics::bulk_duration(started.elapsed());
        let attempt = match sent {
            Ok(resp) => {
                let answer = applied(ctx, &mut part, &resp).await;
                times.add(Activity::Sink, started);
                match answer {
                    Ok(None) => Attempt::Done(Written::Done),
                    Ok(Some(failure)) => Attempt::Again(failure),
                    Err(e) => Attempt::Fail(e),
                }
            }
            Err(SendError::Status { status: 413, body }) => {
                Attempt::Done(Written::TooLarge { body })
            }
            Err(SendError::Status { status, body })
                if Verdict::of_status(status) != Verdict::Transient =>
            {
                metrics::bulk_request("refused");
                let hint = "this is a bug or an incompatible server; please report it";
                Attempt::Fail(WriterError::Refused { status, body, hint })
            }
            Err(SendError::Status { status, body }) => {
                metrics::bulk_request("error");
                Attempt::Again(Failure::status(status, body))
            }
            Err(e) => {
                metrics::bulk_request("error");
                Attempt::Again(Failure::new(e.to_string()))
            }
        };
        if matches!(attempt, Attempt::Again(_)) {
            times.pushed_back();
        }
        ((part, size), attempt)
    })
    .await;
    *part = rest;
    *capacity = size;
    match written {
        Ok(written) => Ok(written),
        Err(RetryError::Final(e)) => Err(e),
        Err(RetryError::Stopped { .. }) => Ok(Written::Abandoned),
        Err(RetryError::Exhausted { attempts, last }) => {
            Err(WriterError::RetriesExhausted { attempts, last })
        }
    }
}

/// Settles `part` by a `_bulk` answer: applied and dead-lettered changes are resolved and
/// taken out; `part` keeps the items to send again, and the failure to report for them.
async fn applied(
    ctx: &LaneContext,
    part: &mut Vec<Change>,
    resp: &[u8],
) -> Result<Option<Failure>, WriterError> {
    let Some(items) = response::parse(resp, part.len())? else {
        metrics::bulk_request("success");
        debug!(docs = part.len(), "Bulk request applied.");
        resolve_all(std::mem::take(part), Vec::new(), TxnStatus::Delivered);
        return Ok(None);
    };
    let (retry, reason) = settle_items(ctx, part, items).await?;
    // Applied and dead-lettered items are done; only the transient failures go again.
    resolve_all(std::mem::take(part), Vec::new(), TxnStatus::Delivered);
    if retry.is_empty() {
        metrics::bulk_request("partial");
        return Ok(None);
    }
    *part = retry;
    metrics::bulk_request("retry_items");
    Ok(Some(Failure::new(reason)))
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
    // A document can have two items in one request (a delete under its old routing, then
    // the write under the new one): once one is retried, the later ones go again after it,
    // so their order holds (with one shard, both are the same document).
    let mut retried: HashSet<u64> = HashSet::new();
    for (c, outcome) in std::mem::take(pending).into_iter().zip(items) {
        if !retried.is_empty() && retried.contains(&key_hash(&c.key)) {
            retry.push(c);
            continue;
        }
        match outcome {
            ItemOutcome::Applied => keep.push(c),
            ItemOutcome::Retry { status, error } => {
                if reason.is_empty() {
                    reason = format!("item HTTP {status}: {error}");
                }
                retried.insert(key_hash(&c.key));
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
