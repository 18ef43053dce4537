//! The requests a lane has in flight, and the documents each one holds.
//!
//! Ordering with more than one request in flight: a batch is sent only when no
//! in-flight batch holds any of its documents (compared by key hash, so a collision
//! only makes it wait). Two writes to one document therefore never travel together,
//! and the later one starts only after the earlier one was acknowledged (or
//! dead-lettered) — the same order as with one request at a time, without relying on
//! versions (a delete's tombstone may be gone, and a transaction's changes share one
//! version). Acknowledgements may complete out of order across batches; the tracker
//! awaits transactions in binlog order, so the checkpoint never passes a change that
//! is still in flight.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::{Id, JoinSet};
use tracing::debug;

use super::WriterError;
use super::concurrency::Concurrency;
use super::lane_time::LaneTime;
use crate::ordering::{Change, key_hash};

/// An in-flight request's outcome and the size of its body.
pub(super) type Flushed = (Result<(), WriterError>, usize);

/// Up to `depth` requests in flight (fewer while the adaptive limit is lower), with the
/// key hashes each holds (tracked only when `depth` > 1: one request at a time needs no
/// check).
pub(super) struct InFlight {
    tasks: JoinSet<(Flushed, Duration)>,
    busy: HashMap<Id, HashSet<u64>>,
    depth: usize,
    /// The limit in force (fixed at `depth` unless adaptive).
    concurrency: Concurrency,
    /// Where the sink's push-backs are counted.
    times: Arc<LaneTime>,
    /// Size of the last request body, so the next one starts at about its size.
    body_capacity: usize,
}

impl InFlight {
    /// Room for `depth` requests (at least one); with `adaptive`, as many as the sink
    /// takes without slowing down, up to `depth` ([`Concurrency`]).
    pub fn new(depth: usize, adaptive: bool, times: Arc<LaneTime>) -> Self {
        let depth = depth.max(1);
        Self {
            tasks: JoinSet::new(),
            busy: HashMap::new(),
            depth,
            concurrency: if adaptive {
                Concurrency::new(depth)
            } else {
                Concurrency::fixed(depth)
            },
            times,
            body_capacity: 64 * 1024,
        }
    }

    /// No request in flight.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Every slot is taken.
    pub fn is_full(&self) -> bool {
        self.tasks.len() >= self.concurrency.limit()
    }

    /// A batch is ready while every slot is taken: more concurrency would be used.
    pub fn saturated(&mut self) {
        self.concurrency.saturated();
    }

    /// The size of the last settled request's body.
    pub fn body_capacity(&self) -> usize {
        self.body_capacity
    }

    /// The key hashes a batch of `pending` changes would hold.
    pub fn keys_of(&self, pending: &[Change]) -> HashSet<u64> {
        if self.depth > 1 {
            pending.iter().map(|c| key_hash(&c.key)).collect()
        } else {
            HashSet::new()
        }
    }

    /// Whether an in-flight request holds one of `keys`.
    pub fn holds_any(&self, keys: &HashSet<u64>) -> bool {
        self.busy.values().any(|held| !held.is_disjoint(keys))
    }

    /// Starts a request holding `keys`.
    pub fn spawn(
        &mut self,
        request: impl Future<Output = Flushed> + Send + 'static,
        keys: HashSet<u64>,
    ) {
        let task = self.tasks.spawn(async move {
            let started = Instant::now();
            let flushed = request.await;
            (flushed, started.elapsed())
        });
        if self.depth > 1 {
            self.busy.insert(task.id(), keys);
        }
    }

    /// Waits for one in-flight request to finish (none: returns at once).
    /// Cancel-safe: a finished request is settled before this returns.
    ///
    /// # Errors
    /// The request's fatal error, or its task ending abnormally.
    pub async fn settle_one(&mut self) -> Result<(), WriterError> {
        match self.tasks.join_next_with_id().await {
            None => Ok(()),
            Some(Ok((id, ((result, capacity), rtt)))) => {
                self.busy.remove(&id);
                self.body_capacity = capacity;
                let before = self.concurrency.limit();
                self.concurrency.settled(rtt, self.times.take_pushed_back());
                if self.concurrency.limit() != before {
                    debug!(
                        from = before,
                        to = self.concurrency.limit(),
                        rtt_ms = rtt.as_millis() as u64,
                        "Request concurrency changed."
                    );
                }
                result
            }
            Some(Err(e)) => {
                self.busy.remove(&e.id());
                Err(WriterError::Task(e.to_string()))
            }
        }
    }

    /// Waits for every in-flight request.
    ///
    /// # Errors
    /// The first fatal error.
    pub async fn drain(&mut self) -> Result<(), WriterError> {
        while !self.is_empty() {
            self.settle_one().await?;
        }
        Ok(())
    }
}
