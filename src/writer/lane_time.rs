//! Where a lane's time goes: waiting for the reader, filling a batch, waiting for a free
//! request slot or for an earlier request holding the same documents, building bodies, and
//! the sink's round trips. Logged at DEBUG (`binlog2es::writer=debug`) at most every
//! [`REPORT_EVERY`] and when the lane ends, so a slow stream can be told apart from a slow
//! sink or a lane that leaves the sink idle.
//!
//! Counters are atomics because request tasks run beside the lane loop; each costs a clock
//! read per batch, never per document.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::debug;

/// Period of the lane's time report.
pub(super) const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Nanoseconds spent per activity since the lane started.
#[derive(Debug, Default)]
pub(crate) struct LaneTime {
    /// Waiting for the first change of a batch with no request in flight: the sink idle
    /// on this lane because the reader has nothing for it.
    idle: AtomicU64,
    /// Waiting for the first change of a batch while requests are in flight.
    input: AtomicU64,
    /// Filling a batch after its first change (up to `max_delay_ms`).
    fill: AtomicU64,
    /// Waiting for a free request slot (`pipeline_depth` requests in flight): sink-bound.
    slot: AtomicU64,
    /// Waiting for an in-flight request that holds one of the batch's documents.
    order: AtomicU64,
    /// Building request bodies (refreshes from MySQL, encoding).
    build: AtomicU64,
    /// Request round trips, from sending the body to the parsed answer.
    sink: AtomicU64,
    /// Requests sent (retries included).
    requests: AtomicU64,
    /// Documents in those requests.
    docs: AtomicU64,
    /// Attempts the sink pushed back on (429, 5xx, failed items, connection errors) since
    /// the concurrency limit last looked.
    pushed_back: AtomicU64,
}

/// What a lane was doing.
#[derive(Debug, Clone, Copy)]
pub(super) enum Activity {
    Idle,
    Input,
    Fill,
    Slot,
    Order,
    Build,
    Sink,
}

impl LaneTime {
    fn counter(&self, activity: Activity) -> &AtomicU64 {
        match activity {
            Activity::Idle => &self.idle,
            Activity::Input => &self.input,
            Activity::Fill => &self.fill,
            Activity::Slot => &self.slot,
            Activity::Order => &self.order,
            Activity::Build => &self.build,
            Activity::Sink => &self.sink,
        }
    }

    /// Adds the time since `since` to `activity`.
    pub fn add(&self, activity: Activity, since: Instant) {
        let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counter(activity).fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts one request of `docs` documents.
    pub fn request(&self, docs: usize) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.docs.fetch_add(docs as u64, Ordering::Relaxed);
    }

    /// The sink pushed back on an attempt.
    pub fn pushed_back(&self) {
        self.pushed_back.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the sink pushed back since the last call.
    pub fn take_pushed_back(&self) -> bool {
        self.pushed_back.swap(0, Ordering::Relaxed) > 0
    }

    fn ms(&self, activity: Activity) -> u64 {
        self.counter(activity).load(Ordering::Relaxed) / 1_000_000
    }

    /// Logs the totals at DEBUG; `wall` is the lane's age.
    pub fn report(&self, wall: Duration) {
        let wall_ms = wall.as_millis() as u64;
        let sink_ms = self.ms(Activity::Sink);
        debug!(
            wall_ms,
            sink_ms,
            // Share of the wall time with a request of this lane at the sink (with more
            // than one in flight the round trips overlap and this can pass 100).
            sink_busy_pct = sink_ms * 100 / wall_ms.max(1),
            idle_ms = self.ms(Activity::Idle),
            input_ms = self.ms(Activity::Input),
            fill_ms = self.ms(Activity::Fill),
            slot_ms = self.ms(Activity::Slot),
            order_ms = self.ms(Activity::Order),
            build_ms = self.ms(Activity::Build),
            requests = self.requests.load(Ordering::Relaxed),
            docs = self.docs.load(Ordering::Relaxed),
            "Lane time."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_added_per_activity() {
        let t = LaneTime::default();
        let long_ago = Instant::now() - Duration::from_millis(5);
        t.add(Activity::Sink, long_ago);
        t.add(Activity::Sink, long_ago);
        t.request(10);
        assert!(t.ms(Activity::Sink) >= 10);
        assert_eq!(t.ms(Activity::Idle), 0);
        assert_eq!(t.docs.load(Ordering::Relaxed), 10);
    }
}
