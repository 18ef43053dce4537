//! Adaptive request concurrency of one lane (`writer.adaptive_concurrency`), in the manner
//! of Vector's adaptive request concurrency: additive increase while the sink's round-trip
//! time stays flat, multiplicative decrease when the sink pushes back (HTTP 429 / 5xx) or
//! its round-trip time rises. The ceiling is `writer.pipeline_depth`; the floor is one.
//!
//! Pure logic, no clock: the lane reports each settled request's round trip and whether the
//! sink pushed back while it was in flight. Decisions are taken once per window of `limit`
//! settled requests (about one round trip of the whole lane), so one slow answer does not
//! move the limit. Per-document order is not this module's business: the in-flight set
//! still never lets two requests holding one document travel together.

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
    pushed_back: bool,
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

    /// A batch waited for a free slot (every allowed request was in flight).
    pub fn saturated(&mut self) {
        self.window.saturated = true;
    }

    /// A request settled after `rtt`; `pushed_back` when the sink answered 429/5xx to it
    /// (whole request or items) at least once.
    pub fn settled(&mut self, rtt: Duration, pushed_back: bool) {
        if !self.adaptive || self.max == 1 {
            return;
        }
        let w = &mut self.window;
        w.settled += 1;
        w.rtt_sum += rtt.as_secs_f64();
        w.pushed_back |= pushed_back;
        if pushed_back {
            // Back off at once: waiting for the window's end would keep hammering.
            self.decrease();
            return;
        }
        if w.settled < self.limit {
            return;
        }
        let mean = w.rtt_sum / w.settled as f64;
        let saturated = w.saturated;
        self.window = Window::default();
        match self.past_rtt {
            Some(past) if mean > past * RTT_RISE => self.decrease(),
            _ => {
                self.past_rtt = Some(match self.past_rtt {
                    Some(past) => past * (1.0 - EWMA_WEIGHT) + mean * EWMA_WEIGHT,
                    None => mean,
                });
                if saturated {
                    self.limit = (self.limit + 1).min(self.max);
                }
            }
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
                c.settled(Duration::from_secs_f64(rtt(limit)), push_back(step));
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
    fn a_fixed_limit_never_moves() {
        let mut c = Concurrency::fixed(3);
        drive(&mut c, 10, |_| 0.1, |s| s % 2 == 0);
        assert_eq!(c.limit(), 3);
        let mut one = Concurrency::new(1);
        drive(&mut one, 10, |_| 0.1, |_| false);
        assert_eq!(one.limit(), 1);
    }
}
