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

use tokio::task::{Id, JoinSet};

use super::WriterError;
use crate::ordering::{Change, key_hash};

/// An in-flight request's outcome and the size of its body.
pub(super) type Flushed = (Result<(), WriterError>, usize);

/// Up to `depth` requests in flight, with the key hashes each holds (tracked only when
/// `depth` > 1: one request at a time needs no check).
pub(super) struct InFlight {
    tasks: JoinSet<Flushed>,
    busy: HashMap<Id, HashSet<u64>>,
    depth: usize,
    /// Size of the last request body, so the next one starts at about its size.
    body_capacity: usize,
}

impl InFlight {
    /// Room for `depth` requests (at least one).
    pub fn new(depth: usize) -> Self {
        Self {
            tasks: JoinSet::new(),
            busy: HashMap::new(),
            depth: depth.max(1),
            body_capacity: 64 * 1024,
        }
    }

    /// No request in flight.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Every slot is taken.
    pub fn is_full(&self) -> bool {
        self.tasks.len() >= self.depth
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
        let task = self.tasks.spawn(request);
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
            Some(Ok((id, (result, capacity)))) => {
                self.busy.remove(&id);
                self.body_capacity = capacity;
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
