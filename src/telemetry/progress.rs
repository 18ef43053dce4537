//! Shared progress facts for lag, readiness and status: what the reader has
//! seen, and what the checkpoint tracker has committed.
//!
//! Lag is "known minus committed": while transactions read from the server wait
//! for acknowledgement, it is the age of the last committed transaction's
//! timestamp; once everything read is committed and the connection is alive
//! (an event or heartbeat arrived within the silence window), it is zero; with a
//! silent connection it grows with the silence.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Counters updated by the reader and the tracker, read by the HTTP endpoint.
#[derive(Debug, Default)]
pub struct Progress {
    streaming: AtomicBool,
    read_version: AtomicU64,
    read_ts: AtomicU64,
    activity_ms: AtomicU64,
    committed_version: AtomicU64,
    committed_ts: AtomicU64,
    events: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

impl Progress {
    /// Marks the stream as connected (`true`) or reconnecting (`false`).
    pub fn set_streaming(&self, on: bool) {
        self.streaming.store(on, Ordering::Release);
        if on {
            self.touch();
        }
    }

    /// Whether the binlog stream is connected.
    pub fn streaming(&self) -> bool {
        self.streaming.load(Ordering::Acquire)
    }

    /// Records that an event or heartbeat arrived.
    pub fn touch(&self) {
        self.activity_ms.store(now_ms(), Ordering::Release);
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a transaction read completely (version and server timestamp).
    pub fn read(&self, version: u64, unix_seconds: u32) {
        self.read_version.store(version, Ordering::Release);
        self.read_ts
            .store(u64::from(unix_seconds), Ordering::Release);
    }

    /// Records the committed (acknowledged) transaction.
    pub fn committed(&self, version: u64, unix_seconds: u32) {
        self.committed_version.store(version, Ordering::Release);
        if unix_seconds != 0 {
            self.committed_ts
                .store(u64::from(unix_seconds), Ordering::Release);
        }
    }

    /// Events and heartbeats received so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Current lag; `silence` is how long a healthy connection may stay quiet.
    pub fn lag(&self, silence: Duration) -> Duration {
        let now = now_ms();
        let read = self.read_version.load(Ordering::Acquire);
        let committed = self.committed_version.load(Ordering::Acquire);
        let quiet =
            Duration::from_millis(now.saturating_sub(self.activity_ms.load(Ordering::Acquire)));
        if read > committed {
            // Behind: the age of the last acknowledged transaction, or of the first one
            // read when nothing was acknowledged yet.
            let committed_ts = self.committed_ts.load(Ordering::Acquire);
            let ts = if committed_ts != 0 {
                committed_ts
            } else {
                self.read_ts.load(Ordering::Acquire)
            };
            return Duration::from_millis(now.saturating_sub(ts * 1000));
        }
        if self.streaming() && quiet <= silence {
            Duration::ZERO
        } else {
            quiet
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_zero_when_caught_up_and_alive() {
        let p = Progress::default();
        p.set_streaming(true);
        p.read(5, 1);
        p.committed(5, 1);
        assert_eq!(p.lag(Duration::from_secs(10)), Duration::ZERO);
    }

    #[test]
    fn lag_is_the_age_of_the_committed_change_while_behind() {
        let p = Progress::default();
        p.set_streaming(true);
        let now = (now_ms() / 1000) as u32;
        p.committed(4, now - 30);
        p.read(9, now);
        let lag = p.lag(Duration::from_secs(10)).as_secs();
        assert!((29..=31).contains(&lag), "{lag}");
    }

    #[test]
    fn a_silent_connection_shows_lag() {
        let p = Progress::default();
        p.set_streaming(false);
        assert!(p.lag(Duration::from_secs(10)) > Duration::from_secs(1000));
    }
}
