//! Adaptive request concurrency of one lane (`writer.adaptive_concurrency`), in the manner
//! of Vector's adaptive request concurrency: additive increase while the sink's round-trip
//! time stays flat, multiplicative decrease when the sink pushes back (HTTP 429 / 5xx) or
//! its round-trip time rises. The ceiling is `writer.pipeline_depth`; the floor is one.
//!
//! Pure logic, no clock: the lane reports each push-back as it sees it (also while the
//! request is still retrying: in a storm none settles, yet the limit must fall) and each
//! settled request's round trip. Increases and round-trip rises are judged once per window
//! of `limit` settled requests (about one round trip of the whole lane), so one slow answer
//! does not move the limit. Per-document order is not this module's business: the in-flight
//! set still never lets two requests holding one document travel together.

use std::time::Duration;

/// A window's mean round trip above the past mean by this factor counts as a rise.
const RTT_RISE: f64 = 1.5;
/// Factor applied to the limit on push-back or a rise.
const DECREASE: f64 = 0.5;
/// Weight of the newest window in the past mean.
const EWMA_WEIGHT: f64 = 0.3;

/// The limit on requests in flight, and what it learned.
#[derive(Debug, Clone)]
pub(super) struct Concurrency {
    limit: usize,
    /// The limit moves (else it stays at `max`).
    adaptive: bool,
    max: usize,
    /// Mean round trip of past calm windows, in seconds; `None` until the first one.
    past_rtt: Option<f64>,
    /// The window being measured.
    window: Window,
}

#[derive(Debug, Clone, Default)]
struct Window {
    settled: usize,
    rtt_sum: f64,
    /// Some request waited for a slot: more concurrency was wanted.
    saturated: bool,
}

impl Concurrency {
    /// Starts at one request in flight, at most `max`.
    pub fn new(max: usize) -> Self {
        Self {
            limit: 1,
            adaptive: true,
            max: max.max(1),
            past_rtt: None,
            window: Window::default(),
        }
    }

    /// A fixed limit of `depth`, that never changes.
    pub fn fixed(depth: usize) -> Self {
        let depth = depth.max(1);
        Self {
            limit: depth,
            adaptive: false,
            max: depth,
            past_rtt: None,
            window: Window::default(),
        }
    }

    /// Requests allowed in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The limit can move (adaptive, with room above one).
    pub fn is_adaptive(&self) -> bool {
        self.adaptive && self.max > 1
    }

    /// The sink pushed back (429/5xx, failed items, connection error): halve the limit now,
    /// not when the request settles, which in a storm takes as long as the storm.
    pub fn pushed_back(&mut self) {
        if self.is_adaptive() {
            self.decrease();
        }
    }

    /// A batch waited for a free slot (every allowed request was in flight).
    pub fn saturated(&mut self) {
        self.window.saturated = true;
    }

    /// A request settled after `rtt`; `disturbed` when the sink pushed back while it was in
    /// flight: then its round trip holds retries and backoff, not the sink's pace, and only
    /// [`Concurrency::pushed_back`] counts.
    pub fn settled(&mut self, rtt: Duration, disturbed: bool) {
        if !self.is_adaptive() || disturbed {
            return;
        }
        let w = &mut self.window;
        w.settled += 1;
        w.rtt_sum += rtt.as_secs_f64();
        if w.settled < self.limit {
            return;
        }
        let mean = w.rtt_sum / w.settled as f64;
        let saturated = w.saturated;
        self.window = Window::default();
        let rise = matches!(self.past_rtt, Some(past) if mean > past * RTT_RISE);
        if rise && self.limit > 1 {
            // Our own requests queue at the sink: fewer, and the rise is not learned.
            self.decrease();
            return;
        }
        // Calm, or a rise at one request in flight, which cannot be ours: the sink's own
        // round trip changed (without learning it the limit would stay at one for good).
        self.past_rtt = Some(match self.past_rtt {
            Some(past) => past * (1.0 - EWMA_WEIGHT) + mean * EWMA_WEIGHT,
            None => mean,
        });
        if saturated && !rise {
            self.limit = (self.limit + 1).min(self.max);
        }
    }

    fn decrease(&mut self) {
        self.limit = ((self.limit as f64 * DECREASE).floor() as usize).max(1);
        self.window = Window::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a controller against a sink whose round trip is `rtt(in_flight)` and that
    /// pushes back when `push_back(step)`; every step the lane is saturated and one window's
    /// worth of requests settles. Returns the limit after each step.
    fn drive(
        c: &mut Concurrency,
        steps: usize,
        rtt: impl Fn(usize) -> f64,
        push_back: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        let mut out = Vec::new();
        for step in 0..steps {
            let limit = c.limit();
            for _ in 0..limit {
                c.saturated();
                let pushed_back = push_back(step);
                if pushed_back {
                    c.pushed_back();
                }
                c.settled(Duration::from_secs_f64(rtt(limit)), pushed_back);
            }
            out.push(c.limit());
        }
        out
    }

    #[test]
    fn grows_to_the_ceiling_while_latency_stays_flat() {
        let mut c = Concurrency::new(8);
        let limits = drive(&mut c, 20, |_| 0.1, |_| false);
        assert_eq!(*limits.last().unwrap(), 8);
        // One step at a time.
        assert!(limits.windows(2).all(|w| w[1] <= w[0] + 1));
    }

    #[test]
    fn does_not_grow_when_the_lane_never_waits_for_a_slot() {
        let mut c = Concurrency::new(8);
        for _ in 0..50 {
            c.settled(Duration::from_millis(100), false);
        }
        assert_eq!(c.limit(), 1);
    }

    #[test]
    fn settles_where_latency_starts_to_rise() {
        // A sink with room for 3 requests: beyond that each one waits for the others.
        let mut c = Concurrency::new(16);
        let limits = drive(
            &mut c,
            60,
            |n| 0.1 * (n as f64 / 3.0).max(1.0).powi(2),
            |_| false,
        );
        let tail = &limits[30..];
        assert!(tail.iter().all(|l| (2..=5).contains(l)), "{limits:?}");
    }

    #[test]
    fn backs_off_under_a_429_storm_and_recovers_after() {
        let mut c = Concurrency::new(8);
        drive(&mut c, 20, |_| 0.1, |_| false);
        assert_eq!(c.limit(), 8);
        let storm = drive(&mut c, 5, |_| 0.1, |_| true);
        assert_eq!(*storm.last().unwrap(), 1, "{storm:?}");
        let after = drive(&mut c, 20, |_| 0.1, |_| false);
        assert_eq!(*after.last().unwrap(), 8, "{after:?}");
    }

    #[test]
    fn push_backs_of_requests_still_retrying_halve_the_limit_down_to_one() {
        let mut c = Concurrency::new(8);
        drive(&mut c, 20, |_| 0.1, |_| false);
        assert_eq!(c.limit(), 8);
        let mut limits = Vec::new();
        for _ in 0..5 {
            c.pushed_back();
            limits.push(c.limit());
        }
        assert_eq!(limits, [4, 2, 1, 1, 1]);
        // The retried requests settle late: their round trips are not the sink's pace.
        c.saturated();
        c.settled(Duration::from_secs(3), true);
        assert_eq!(c.limit(), 1);
        assert!((c.past_rtt.unwrap() - 0.1).abs() < 1e-9, "{:?}", c.past_rtt);
        let after = drive(&mut c, 20, |_| 0.1, |_| false);
        assert_eq!(*after.last().unwrap(), 8, "{after:?}");
        let mut fixed = Concurrency::fixed(4);
        fixed.pushed_back();
        assert_eq!(fixed.limit(), 4);
    }

    #[test]
    fn a_lasting_rise_of_the_sinks_own_round_trip_is_learned_at_one() {
        // A sink 4 ms away moves to 200 ms away, whatever is in flight.
        let mut c = Concurrency::new(4);
        drive(&mut c, 10, |_| 0.004, |_| false);
        assert_eq!(c.limit(), 4);
        let limits = drive(&mut c, 20, |_| 0.2, |_| false);
        assert!(limits.contains(&1), "{limits:?}");
        assert_eq!(*limits.last().unwrap(), 4, "{limits:?}");
    }

    #[test]
    fn a_fixed_limit_never_moves() {
        let mut c = Concurrency::fixed(3);
        drive(&mut c, 10, |_| 0.1, |s| s % 2 == 0);
        assert_eq!(c.limit(), 3);
        let mut one = Concurrency::new(1);
        drive(&mut one, 10, |_| 0.1, |_| false);
        assert_eq!(one.limit(), 1);
    }
}
