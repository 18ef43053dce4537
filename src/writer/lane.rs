//! A lane: batches from its queue, written with up to `writer.pipeline_depth` requests in
//! flight, never two holding the same document (see [`super::in_flight`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::batch::Batcher;
use super::in_flight::InFlight;
use super::lane_time::{Activity, LaneTime, REPORT_EVERY};
use super::request::flush;
use super::{LaneContext, WriterError};
use crate::ordering::{LaneQueue, coalesce};

/// One lane: batches its queue and writes each batch until acknowledged, with up to
/// `writer.pipeline_depth` requests in flight.
pub struct Lane {
    id: usize,
    ctx: Arc<LaneContext>,
}

impl Lane {
    /// Lane number `id`.
    pub fn new(id: usize, ctx: LaneContext) -> Self {
        Self {
            id,
            ctx: Arc::new(ctx),
        }
    }

    /// Runs until the queue is closed and drained, or `abort` fires.
    ///
    /// # Errors
    /// A fatal sink condition (rejection with `on_rejected = "fail"`, refused request,
    /// retries exhausted, dead-letter file unwritable).
    #[tracing::instrument(name = "lane", skip_all, fields(stage = "writer", lane = self.id))]
    pub async fn run(self, queue: LaneQueue) -> Result<(), WriterError> {
        let config = &self.ctx.config;
        let LaneQueue { rx, full } = queue;
        let mut batcher = Batcher::new(
            rx,
            config.max_docs,
            config.max_bytes,
            Duration::from_millis(config.max_delay_ms),
            config.backlog_window,
        );
        let times = Arc::new(LaneTime::default());
        let mut in_flight = InFlight::new(
            config.pipeline_depth,
            config.adaptive_concurrency,
            Arc::clone(&times),
        );
        let abort = self.ctx.abort.clone();
        let started = Instant::now();
        let mut reported = started;
        let result = async {
            loop {
                if reported.elapsed() >= REPORT_EVERY {
                    times.report(started.elapsed());
                    reported = Instant::now();
                }
                // A free slot first: while every slot is busy the queue fills up.
                let at = Instant::now();
                if in_flight.is_full() && batcher.has_queued() {
                    in_flight.saturated();
                }
                // What queues meanwhile moves into the backlog, where changes to one
                // document collapse: when the sink is the bottleneck the backlog grows at
                // the reader's pace (a queueful each time the router finds the queue full),
                // and every collapsed change is a write saved.
                while in_flight.is_full() {
                    tokio::select! {
                        settled = in_flight.settle_one() => settled?,
                        () = full.notified(), if batcher.has_room() => batcher.absorb_queued(),
                        () = abort.cancelled() => return Ok(()),
                    }
                }
                if batcher.has_room() {
                    batcher.absorb_queued();
                }
                times.add(Activity::Slot, at);
                let at = Instant::now();
                let waiting = if in_flight.is_empty() {
                    Activity::Idle
                } else {
                    Activity::Input
                };
                let pending = loop {
                    tokio::select! {
                        c = batcher.first() => break c,
                        settled = in_flight.settle_one(), if !in_flight.is_empty() => settled?,
                        () = abort.cancelled() => return Ok(()),
                    }
                };
                times.add(waiting, at);
                if !pending {
                    return in_flight.drain().await;
                }
                let at = Instant::now();
                let Some(batch) = batcher.fill().await else {
                    continue;
                };
                times.add(Activity::Fill, at);
                let (pending, mut superseded) = coalesce(batch.changes);
                superseded.extend(batch.superseded);
                crate::telemetry::metrics::coalesced(superseded.len());
                let keys = in_flight.keys_of(&pending);
                // Per-document order: wait until no in-flight batch holds one of these
                // documents.
                let at = Instant::now();
                while in_flight.holds_any(&keys) {
                    in_flight.settle_one().await?;
                }
                times.add(Activity::Order, at);
                let request = flush(
                    Arc::clone(&self.ctx),
                    Arc::clone(&times),
                    pending,
                    superseded,
                    in_flight.body_capacity(),
                    batch.held,
                )
                .instrument(tracing::Span::current());
                in_flight.spawn(request, keys);
                if batcher.finished() {
                    // The queue is closed and was drained into this last batch.
                    return in_flight.drain().await;
                }
            }
        }
        .await;
        times.report(started.elapsed());
        tracing::debug!(collapsed = batcher.collapsed(), "Lane stopped.");
        result
    }
}
