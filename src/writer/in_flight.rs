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
//!
//! The limit in force is published as the gauge `binlog2es_writer_concurrency`, summed over
//! lanes (a lane adds its limit when it starts, moves it by each change, takes it back when
//! it ends).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::{Id, JoinSet};
// Round trips on tokio's clock: tests with paused time measure their virtual ones.
use tokio::time::Instant;
use tracing::debug;

use super::WriterError;
use super::concurrency::Concurrency;
use super::lane_time::LaneTime;
use crate::ordering::{Change, key_hash};
use crate::telemetry::metrics;

/// While waiting for a request to settle, how often an adaptive lane looks whether the sink
/// pushed back on one still being retried: in a storm no request settles for a long time.
const PUSH_BACK_LOOK: Duration = Duration::from_millis(100);

/// An in-flight request's outcome and the size of its body.
pub(super) type Flushed = (Result<(), WriterError>, usize);

/// Up to `depth` requests in flight (fewer while the adaptive limit is lower), with the
/// key hashes each holds (tracked only when `depth` > 1: one request at a time needs no
/// check).
pub(super) struct InFlight {
    /// Each request's outcome, round trip, and [`InFlight::push_backs`] when it started.
    tasks: JoinSet<(Flushed, Duration, u64)>,
    busy: HashMap<Id, HashSet<u64>>,
    depth: usize,
    /// The limit in force (fixed at `depth` unless adaptive).
    concurrency: Concurrency,
    /// Where the sink's push-backs are counted.
    times: Arc<LaneTime>,
    /// Push-backs seen so far: a request that settles with a later count than it started
    /// with was in flight while the sink pushed back, so it may have been retried, and its
    /// round trip is not counted as the sink's.
    push_backs: u64,
    /// Size of the last request body, so the next one starts at about its size.
    body_capacity: usize,
}

impl InFlight {
    /// Room for `depth` requests (at least one); with `adaptive`, as many as the sink
    /// takes without slowing down, up to `depth` ([`Concurrency`]).
    pub fn new(depth: usize, adaptive: bool, times: Arc<LaneTime>) -> Self {
        let depth = depth.max(1);
        let concurrency = if adaptive {
            Concurrency::new(depth)
        } else {
            Concurrency::fixed(depth)
        };
        metrics::writer_concurrency(0, concurrency.limit());
        Self {
            tasks: JoinSet::new(),
            busy: HashMap::new(),
            depth,
            concurrency,
            times,
            push_backs: 0,
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
        let push_backs = self.push_backs;
        let task = self.tasks.spawn(async move {
            let started = Instant::now();
            let flushed = request.await;
            (flushed, started.elapsed(), push_backs)
        });
        if self.depth > 1 {
            self.busy.insert(task.id(), keys);
        }
    }

    /// Waits for one in-flight request to finish (none: returns at once); an adaptive lane
    /// meanwhile lowers its limit on each push-back of a request still retrying.
    /// Cancel-safe: a finished request is settled before this returns.
    ///
    /// # Errors
    /// The request's fatal error, or its task ending abnormally.
    pub async fn settle_one(&mut self) -> Result<(), WriterError> {
        let joined = loop {
            if !self.concurrency.is_adaptive() {
                break self.tasks.join_next_with_id().await;
            }
            tokio::select! {
                joined = self.tasks.join_next_with_id() => break joined,
                () = tokio::time::sleep(PUSH_BACK_LOOK) => self.look_for_push_back(),
            }
        };
        match joined {
            None => Ok(()),
            Some(Ok((id, ((result, capacity), rtt, push_backs)))) => {
                self.busy.remove(&id);
                self.body_capacity = capacity;
                self.look_for_push_back();
                let disturbed = self.push_backs != push_backs;
                self.adjust(Some(rtt), |c| c.settled(rtt, disturbed));
                result
            }
            Some(Err(e)) => {
                self.busy.remove(&e.id());
                Err(WriterError::Task(e.to_string()))
            }
        }
    }

    /// Halves the limit if the sink pushed back since the last look.
    fn look_for_push_back(&mut self) {
        if self.times.take_pushed_back() {
            self.push_backs += 1;
            self.adjust(None, Concurrency::pushed_back);
        }
    }

    /// Applies `change` to the limit; logs and publishes a move.
    fn adjust(&mut self, rtt: Option<Duration>, change: impl FnOnce(&mut Concurrency)) {
        let before = self.concurrency.limit();
        change(&mut self.concurrency);
        let after = self.concurrency.limit();
        if after != before {
            debug!(
                from = before,
                to = after,
                rtt_ms = rtt.map(|d| d.as_millis() as u64),
                "Request concurrency changed."
            );
            metrics::writer_concurrency(before, after);
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

impl Drop for InFlight {
    fn drop(&mut self) {
        // The lane ended: its share leaves the sum.
        metrics::writer_concurrency(self.concurrency.limit(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::watch;

    #[test]
    fn the_gauge_sums_the_limits_of_the_lanes_alive() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let level = || {
            handle.render().lines().find_map(|l| {
                l.strip_prefix(metrics::WRITER_CONCURRENCY)?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
        };
        ::metrics::with_local_recorder(&recorder, || {
            let fixed = InFlight::new(3, false, Default::default());
            let adaptive = InFlight::new(4, true, Default::default());
            assert_eq!(level(), Some(4.0), "3 fixed + 1 adaptive, at its start");
            drop(fixed);
            assert_eq!(level(), Some(1.0));
            drop(adaptive);
            assert_eq!(level(), Some(0.0));
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_storm_lowers_the_limit_while_no_request_settles() {
        let times = Arc::new(LaneTime::default());
        let mut lane = InFlight::new(4, true, Arc::clone(&times));
        // Flat, saturated rounds: up to the depth.
        for _ in 0..4 {
            while !lane.is_full() {
                lane.spawn(
                    async {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        (Ok(()), 0)
                    },
                    HashSet::new(),
                );
            }
            lane.saturated();
            lane.drain().await.unwrap();
        }
        assert_eq!(lane.concurrency.limit(), 4);
        // Four requests the sink answers 429 until the storm ends.
        let (end, storm) = watch::channel(false);
        for _ in 0..4 {
            let (times, mut storm) = (Arc::clone(&times), storm.clone());
            lane.spawn(
                async move {
                    while !*storm.borrow_and_update() {
                        times.pushed_back();
                        let _ =
                            tokio::time::timeout(Duration::from_millis(50), storm.changed()).await;
                    }
                    (Ok(()), 0)
                },
                HashSet::new(),
            );
        }
        let waited = tokio::time::timeout(Duration::from_secs(1), lane.settle_one()).await;
        assert!(waited.is_err(), "a request settled during the storm");
        assert_eq!(lane.concurrency.limit(), 1);
        assert_eq!(lane.tasks.len(), 4, "cancelling the wait lost a request");
        end.send(true).unwrap();
        lane.drain().await.unwrap();
        assert_eq!(lane.concurrency.limit(), 1);
    }
}
