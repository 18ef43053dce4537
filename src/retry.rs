//! Retrying: one backoff, one verdict per failure, one retry loop.
//!
//! Every stage that talks to MySQL or Elasticsearch asks [`Verdict::of_status`],
//! [`Verdict::of_item`] or [`Verdict::of_mysql`] what a failure means, and retries through
//! [`retry_until`], so that a status means the same thing everywhere (SPEC §2.4, §2.6).
//! This module is a leaf: it imports no stage.
//!
//! ## 401 and 403
//!
//! An Elasticsearch answer of 401 (credentials refused) or 403 (a privilege missing) is
//! [`Verdict::Transient`] on every request of a running daemon, and each retry is logged
//! at ERROR (an operator must act), not WARN. Both are fixed on the cluster (a key
//! re-enabled, a role granted), which heals a running daemon without a restart, while
//! the checkpoint holds everything not yet written; stopping instead would only trade a
//! stalled pipeline for a restart loop failing the same way. The one exception is
//! start-up, before anything is streamed (SPEC §2.6): there [`is_auth`] tells the check to
//! stop at once with the credentials to fix, rather than wait out `connect_timeout`.
//! Requests whose 403 has a meaning of its own (reading an index's mapping or templates
//! without `view_index_metadata`) look at the status before asking for a verdict.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

/// Backoff state for one retried operation.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    /// Starts at `initial_ms`, doubling up to `max_ms`.
    pub fn new(initial_ms: u64, max_ms: u64) -> Self {
        Self {
            initial_ms,
            max_ms,
            attempt: 0,
        }
    }

    /// Delays handed out so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The next delay: the capped exponential step, scaled by a random factor in
    /// [0.5, 1.0] so that lanes that failed together do not retry together.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling_ms();
        self.attempt = self.attempt.saturating_add(1);
        let factor = 0.5 + rand::random::<f64>() * 0.5;
        Duration::from_millis(((ceiling as f64) * factor) as u64)
    }

    fn ceiling_ms(&self) -> u64 {
        let shift = self.attempt.min(32);
        self.initial_ms
            .saturating_mul(1u64 << shift)
            .min(self.max_ms)
    }
}

/// What a failure means for the operation that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The cause passes by itself (connection lost, 429, 5xx, 401/403: see the module
    /// note): send the same request again after a backoff.
    Transient,
    /// The request as a whole cannot succeed as it is (400, 404, 413 …): the caller
    /// decides (split it, read the answer, or report it).
    Refused,
    /// One `_bulk` item is refused for good (a mapping error …): dead-letter it.
    Rejected,
    /// Only the operator can fix it (a missing MySQL privilege, a purged binlog, a
    /// malformed URL): stop with a message.
    Fatal,
}

impl Verdict {
    /// The verdict on a whole HTTP request answered with a non-2xx `status`.
    pub fn of_status(status: u16) -> Self {
        match status {
            401 | 403 | 429 | 500..=599 => Self::Transient,
            _ => Self::Refused,
        }
    }

    /// The verdict on one failed `_bulk` item (409 and 404 on a delete are applied, and
    /// must be told apart by the caller first).
    pub fn of_item(status: u16) -> Self {
        match status {
            429 | 500..=599 => Self::Transient,
            _ => Self::Rejected,
        }
    }

    /// The verdict on a MySQL error: missing privileges and a purged binlog position
    /// are final; lost connections and the server's temporary conditions are transient;
    /// any other error the server returns refuses that statement.
    pub fn of_mysql(e: &mysql_async::Error) -> Self {
        match e {
            mysql_async::Error::Server(e) if mysql_privilege_error(e.code) => Self::Fatal,
            // ER_MASTER_FATAL_ERROR_READING_BINLOG: the position was purged.
            mysql_async::Error::Server(e) if e.code == 1236 => Self::Fatal,
            // Too many connections, shutdown in progress, lock wait timeout, deadlock,
            // query interrupted, connection killed (MariaDB).
            mysql_async::Error::Server(e)
                if matches!(e.code, 1040 | 1053 | 1205 | 1213 | 1317 | 1927) =>
            {
                Self::Transient
            }
            mysql_async::Error::Server(_) => Self::Refused,
            mysql_async::Error::Url(_) => Self::Fatal,
            _ => Self::Transient,
        }
    }
}

/// Whether `status` is Elasticsearch refusing our credentials (401) or a privilege (403).
pub fn is_auth(status: u16) -> bool {
    matches!(status, 401 | 403)
}

/// MySQL error codes that mean the account lacks a privilege or cannot log in.
pub fn mysql_privilege_error(code: u16) -> bool {
    matches!(code, 1044 | 1045 | 1142 | 1143 | 1227 | 1370)
}

/// A failed attempt worth another try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What failed, for the log line and the final error.
    pub message: String,
    /// The server refused our credentials or a privilege: logged at ERROR.
    pub auth: bool,
}

impl Failure {
    /// A transient failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            auth: false,
        }
    }

    /// A transient HTTP answer: `HTTP {status}: {text}`, marked as auth for 401/403.
    pub fn status(status: u16, text: impl std::fmt::Display) -> Self {
        Self {
            message: format!("HTTP {status}: {text}"),
            auth: is_auth(status),
        }
    }
}

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt<T, E> {
    /// Succeeded (or ended in a way the caller handles): return this.
    Done(T),
    /// Failed transiently: back off and try again.
    Again(Failure),
    /// Failed for good: return this error.
    Fail(E),
}

/// Why [`retry_until`] gave up.
#[derive(Debug, PartialEq, Eq)]
pub enum RetryError<E> {
    /// An attempt failed for good.
    Final(E),
    /// `stop` fired while waiting to retry.
    Stopped {
        /// The last failure.
        last: String,
    },
    /// The attempt limit was reached.
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// How [`retry_until`] retries: backoff bounds, attempt limit, stop, and what it logs.
#[derive(Debug, Clone)]
pub struct Retry<'a> {
    /// First delay.
    pub initial_ms: u64,
    /// Longest delay.
    pub max_ms: u64,
    /// Attempts before giving up; 0 retries forever.
    pub max_attempts: u32,
    /// Waiting to retry ends when this fires.
    pub stop: &'a CancellationToken,
    /// The log message of each retry, e.g. "Bulk request failed, retrying."
    pub message: &'a str,
    /// What is retried (an index, a table …), the log line's `subject` field.
    pub subject: &'a str,
    /// Called before each retry (a metric).
    pub on_retry: fn(),
    /// No attempt starts after this (a start-up window); `None`: no limit.
    pub deadline: Option<Instant>,
}

impl<'a> Retry<'a> {
    /// Retries forever between `initial_ms` and `max_ms` until `stop` fires, logging
    /// `message` about `subject`.
    pub fn new(
        initial_ms: u64,
        max_ms: u64,
        stop: &'a CancellationToken,
        message: &'a str,
        subject: &'a str,
    ) -> Self {
        Self {
            initial_ms,
            max_ms,
            max_attempts: 0,
            stop,
            message,
            subject,
            on_retry: || {},
            deadline: None,
        }
    }

    /// Gives up ([`RetryError::Exhausted`]) once `deadline` has passed; the last delay is
    /// cut short to end there.
    pub fn within(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Gives up after `max_attempts` attempts (0: never).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Calls `on_retry` before each retry.
    pub fn on_retry(mut self, on_retry: fn()) -> Self {
        self.on_retry = on_retry;
        self
    }
}

/// Runs `attempt` until it is done or fails for good, sleeping a backoff delay after each
/// transient failure (logged once per retry: WARN, or ERROR for 401/403), until the
/// attempt limit or `stop`.
///
/// What an attempt changes for the next one (the items still to send, a flag) is passed
/// through by value, `state` in and out of each attempt, and returned at the end: a
/// closure whose future borrowed it mutably would not be `Send` for a spawned task.
///
/// # Errors
/// The attempt's final error, the attempt limit, or `stop` (next to the last state).
pub async fn retry_until<S, T, E, Fut>(
    retry: &Retry<'_>,
    mut state: S,
    mut attempt: impl FnMut(S) -> Fut,
) -> (S, Result<T, RetryError<E>>)
where
    Fut: Future<Output = (S, Attempt<T, E>)>,
{
    let mut backoff = Backoff::new(retry.initial_ms, retry.max_ms);
    loop {
        let (next, outcome) = attempt(state).await;
        state = next;
        let failure = match outcome {
            Attempt::Done(v) => return (state, Ok(v)),
            Attempt::Fail(e) => return (state, Err(RetryError::Final(e))),
            Attempt::Again(failure) => failure,
        };
        let attempts = backoff.attempts() + 1;
        let past_deadline = retry.deadline.is_some_and(|d| Instant::now() >= d);
        if past_deadline || retry.max_attempts > 0 && attempts >= retry.max_attempts {
            let last = failure.message;
            return (state, Err(RetryError::Exhausted { attempts, last }));
        }
        let mut delay = backoff.next_delay();
        if let Some(d) = retry.deadline {
            delay = delay.min(d.saturating_duration_since(Instant::now()));
        }
        let subject = retry.subject;
        if failure.auth {
            error!(subject, error = %failure.message, attempt = attempts, retry_in = ?delay, "Elasticsearch refuses our credentials or lacks a privilege; fix them, retrying.");
        } else {
            warn!(subject, error = %failure.message, attempt = attempts, retry_in = ?delay, "{}", retry.message);
        }
        (retry.on_retry)();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = retry.stop.cancelled() => {
                return (state, Err(RetryError::Stopped { last: failure.message }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let mut b = Backoff::new(100, 1000);
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert!((50..=100).contains(&delays[0]), "{delays:?}");
        assert!((100..=200).contains(&delays[1]), "{delays:?}");
        assert!((200..=400).contains(&delays[2]), "{delays:?}");
        for d in &delays[4..] {
            assert!((500..=1000).contains(d), "{delays:?}");
        }
        assert_eq!(b.attempts(), 8);
    }

    #[test]
    fn one_verdict_per_http_status() {
        use Verdict::*;
        let table = [
            (400, Refused, Rejected),
            (401, Transient, Rejected),
            (403, Transient, Rejected),
            (404, Refused, Rejected),
            (409, Refused, Rejected),
            (413, Refused, Rejected),
            (429, Transient, Transient),
            (500, Transient, Transient),
            (502, Transient, Transient),
            (503, Transient, Transient),
            (599, Transient, Transient),
        ];
        for (status, request, item) in table {
            assert_eq!(Verdict::of_status(status), request, "request {status}");
            assert_eq!(Verdict::of_item(status), item, "item {status}");
        }
        assert!(is_auth(401) && is_auth(403));
        assert!(!is_auth(400) && !is_auth(404) && !is_auth(429));
        assert!(Failure::status(401, "x").auth);
        assert!(!Failure::status(503, "x").auth);
        assert_eq!(Failure::status(503, "busy").message, "HTTP 503: busy");
    }

    #[test]
    fn one_verdict_per_mysql_error() {
        let server = |code: u16| {
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: String::new(),
                state: String::new(),
            })
        };
        for code in [1044, 1045, 1142, 1143, 1227, 1370, 1236] {
            assert_eq!(Verdict::of_mysql(&server(code)), Verdict::Fatal, "{code}");
        }
        for code in [1040, 1053, 1205, 1213, 1317, 1927] {
            assert_eq!(
                Verdict::of_mysql(&server(code)),
                Verdict::Transient,
                "{code}"
            );
        }
        for code in [1064, 1146, 1054] {
            assert_eq!(Verdict::of_mysql(&server(code)), Verdict::Refused, "{code}");
        }
        let io = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(Verdict::of_mysql(&io), Verdict::Transient);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_done_passing_the_state_along() {
        let stop = CancellationToken::new();
        let retry = Retry::new(100, 1000, &stop, "test, retrying.", "t");
        let (calls, out): (u32, Result<&str, RetryError<()>>) =
            retry_until(&retry, 0, |calls| async move {
                let calls = calls + 1;
                if calls < 4 {
                    (calls, Attempt::Again(Failure::new("down")))
                } else {
                    (calls, Attempt::Done("up"))
                }
            })
            .await;
        assert_eq!((calls, out), (4, Ok("up")));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_limit_on_final_errors_and_on_stop() {
        let stop = CancellationToken::new();
        let retry = Retry::new(100, 1000, &stop, "test, retrying.", "t").max_attempts(3);
        let (_, out): (u32, Result<(), RetryError<()>>) =
            retry_until(&retry, 0, |calls| async move {
                let calls = calls + 1;
                (calls, Attempt::Again(Failure::new(format!("down {calls}"))))
            })
            .await;
        let last = "down 3".to_owned();
        assert_eq!(out, Err(RetryError::Exhausted { attempts: 3, last }));
        let (_, out): ((), Result<(), RetryError<&str>>) =
            retry_until(&retry, (), |()| async { ((), Attempt::Fail("refused")) }).await;
        assert_eq!(out, Err(RetryError::Final("refused")));
        stop.cancel();
        let forever = Retry::new(100, 1000, &stop, "test, retrying.", "t");
        let (_, out): ((), Result<(), RetryError<()>>) = retry_until(&forever, (), |()| async {
            ((), Attempt::Again(Failure::new("down")))
        })
        .await;
        let last = "down".to_owned();
        assert_eq!(out, Err(RetryError::Stopped { last }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_ends_retrying_at_that_time() {
        let stop = CancellationToken::new();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(2500);
        let retry = Retry::new(200, 2000, &stop, "test, retrying.", "t").within(deadline);
        let (calls, out): (u32, Result<(), RetryError<()>>) =
            retry_until(&retry, 0, |calls| async move {
                (calls + 1, Attempt::Again(Failure::new("down")))
            })
            .await;
        assert!(
            matches!(out, Err(RetryError::Exhausted { attempts, .. }) if attempts == calls),
            "{out:?}"
        );
        // The last delay was cut to end at the deadline, and one attempt ran there.
        assert_eq!(Instant::now(), deadline);
        assert!(calls >= 3, "{calls}");
    }
}
