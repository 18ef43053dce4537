//! Batching: a lane's queue cut into batches capped by `writer.max_docs`, by
//! `writer.max_bytes` of body and by `writer.max_delay_ms` of waiting.

use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::ordering::{Change, Routed};

/// One batch: its changes in queue order and their share of the byte budget.
pub(super) struct Batch {
    /// The changes.
    pub changes: Vec<Change>,
    /// Budget bytes held for them, given back when the batch is done with.
    pub held: OwnedSemaphorePermit,
}

/// Cuts a lane's queue into batches.
pub(super) struct Batcher {
    rx: mpsc::Receiver<Routed>,
    /// A change that did not fit in the last batch's bytes: the next batch starts with it.
    carry: Option<Routed>,
    /// The queue was found closed while filling a batch.
    closed: bool,
    max_docs: usize,
    max_bytes: usize,
    max_delay: Duration,
}

impl Batcher {
    /// Batches `rx` within these caps.
    pub fn new(
        rx: mpsc::Receiver<Routed>,
        max_docs: usize,
        max_bytes: usize,
        max_delay: Duration,
    ) -> Self {
        Self {
            rx,
            carry: None,
            closed: false,
            max_docs,
            max_bytes,
            max_delay,
        }
    }

    /// The first change of the next batch; `None` when the queue is closed and drained.
    /// Cancel-safe: nothing is taken unless this returns.
    pub async fn first(&mut self) -> Option<Routed> {
        match self.carry.take() {
            Some(c) => Some(c),
            None => self.rx.recv().await,
        }
    }

    /// A batch starting with `first`: whatever else is queued or arrives within
    /// `max_delay`, up to `max_docs` changes and `max_bytes` (a change that would overflow
    /// the bytes starts the next batch; a single larger change goes alone).
    pub async fn fill(&mut self, first: Routed) -> Batch {
        let deadline = tokio::time::Instant::now() + self.max_delay;
        let mut bytes = first.change.weight();
        let mut held = first.held;
        let mut changes = vec![first.change];
        while changes.len() < self.max_docs && bytes < self.max_bytes {
            let next = match self.rx.try_recv() {
                Ok(c) => Some(c),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.closed = true;
                    None
                }
                Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                    c = self.rx.recv() => {
                        self.closed = c.is_none();
                        c
                    }
                    _ = tokio::time::sleep_until(deadline) => None,
                },
            };
            match next {
                Some(c) if bytes + c.change.weight() > self.max_bytes => {
                    self.carry = Some(c);
                    break;
                }
                Some(c) => {
                    bytes += c.change.weight();
                    // One router, one semaphore: merging permits of it cannot fail.
                    held.merge(c.held);
                    changes.push(c.change);
                }
                None => break,
            }
        }
        Batch { changes, held }
    }

    /// Whether a change is waiting for the next batch.
    pub fn has_queued(&self) -> bool {
        self.carry.is_some() || !self.rx.is_empty()
    }

    /// Whether the queue is closed and every change was handed out in a batch.
    pub fn finished(&self) -> bool {
        self.closed && self.carry.is_none()
    }
}
