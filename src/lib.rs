//! binlog2es keeps Elasticsearch indices equal to MySQL tables by tailing the binlog.
//!
//! The pipeline of SPEC §1, one module per stage, typed messages on bounded channels:
//!
//! ```text
//! MySQL binlog ─> reader ──> decode ──> ordering ──> writer lanes ──> Elasticsearch
//!                 (events,   (rows →    (key → lane,  (batch, _bulk,
//!                  txns)      docs)      coalesce)     retry, dead-letter)
//!                   │ ▲                                   │ index task ◀─ IndexRequest
//!                   │ ├── snapshot (copy chunks, merged between transactions)
//!                   │ └── rebuild (steps recorded between transactions; changes mirrored)
//!                   └── TxnTicket ──> checkpoint tracker ◀── AckToken outcomes
//!                                       └─> checkpoint file (write, fsync, rename)
//! ```
//!
//! | module | role |
//! | --- | --- |
//! | [`reader`] | stage 1: replication stream, transaction boundaries, routing; asks the sink for index work by [`writer::indices::IndexRequest`] |
//! | [`decode`] | stage 2: rows events and row images → `_id` + `_source` (SPEC §5/§6) |
//! | [`ordering`] | stage 3: per-document lanes, coalescing, the memory budget |
//! | [`writer`] | stage 4: batching, `_bulk`, partial retries, dead-letter; the index task |
//! | [`checkpoint`] | stage 5: ordered acknowledgements → committed position on disk |
//! | [`snapshot`] | initial copy and re-sync; its merge is the one hook the reader calls between transactions |
//! | [`rebuild`] | SPEC §10: rebuilding an index behind its alias while streaming (`reindex`) |
//! | [`document`] | SPEC §9 rules: fields, rows, routing, relations; building documents from MySQL and the fan-out |
//! | [`read_view`] | read views that see every transaction the reader has read (copy windows, documents) |
//! | [`schema`] | leaf: table model, table-map reading, catalog queries |
//! | [`source`] | leaf: MySQL connection settings and the connect step (TLS) |
//! | [`es`] | leaf: Elasticsearch client, `_bulk` bodies and answers, URL paths |
//! | [`retry`] | leaf: backoff, one verdict per failure, `retry_until` |
//! | [`json_string`] | leaf: the JSON string writer of documents and `_bulk` lines |
//! | [`position`] | leaf: binlog positions, GTID state, external versions |
//! | [`config`] | leaf: configuration model, validation, secrets, table rules |
//! | [`telemetry`] | leaf: logs, metrics, the HTTP endpoint |
//! | `tls` | leaf: certificates, keys, fingerprints for all connections |
//! | [`shutdown`] | signals |
//! | `app` | start-up (where to start), stage wiring, drain |
//! | [`commands`] | `check`, `status`, `verify`, `resync`, `reindex` |
//! | `scan` | reading a table in key order (copy and verify) |
//!
//! A stage imports earlier stages and leaves, and later stages only for the messages it
//! sends them; no two modules import each other.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod app;
pub mod checkpoint;
pub mod commands;
pub mod config;
pub mod decode;
pub mod document;
pub mod es;
pub mod json_string;
pub mod ordering;
pub mod position;
pub mod read_view;
pub mod reader;
pub mod rebuild;
pub mod retry;
mod scan;
pub mod schema;
pub mod shutdown;
pub mod snapshot;
pub mod source;
pub mod telemetry;
pub(crate) mod tls;
pub mod writer;

#[cfg(test)]
mod test_alloc;
#[cfg(test)]
#[global_allocator]
static ALLOC: test_alloc::Counting = test_alloc::Counting;

pub use app::run;

/// The build's git revision (build.rs; "unknown" outside a git checkout).
pub const GIT_REVISION: &str = env!("BINLOG2ES_GIT_REV");
/// `VERSION (git REVISION)`, as `binlog2es version` prints it.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("BINLOG2ES_GIT_REV"),
    ")"
);
pub use commands::{check, status, verify};

use checkpoint::CheckpointError;
use config::ConfigError;
use reader::ReaderError;
use writer::WriterError;

/// Every error that can end a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration (exit 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Source side.
    #[error(transparent)]
    Reader(#[from] ReaderError),
    /// Sink side.
    #[error(transparent)]
    Writer(#[from] WriterError),
    /// Checkpoint file.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A table cannot be copied.
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    /// A server unreachable for the whole start-up window.
    #[error("cannot reach {what} at {host} within {seconds}s: {message}")]
    Unreachable {
        /// `MySQL` or `Elasticsearch`.
        what: &'static str,
        /// `host:port`.
        host: String,
        /// Start-up window.
        seconds: u64,
        /// Last error.
        message: String,
    },
    /// A TLS handshake failed in a way retrying cannot fix (certificate refused, TLS not
    /// offered); the message names the host and the setting to change.
    #[error("{0}")]
    Tls(String),
    /// Prerequisite checks failed at start-up.
    #[error("{0}")]
    Prerequisites(String),
    /// Shutdown left acknowledged work behind the checkpoint.
    #[error(
        "stopped before every change was acknowledged; the checkpoint stays at {position} \
         and the rest is replayed on the next start"
    )]
    Incomplete {
        /// Committed position.
        position: String,
    },
    /// A task ended unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

/// How an error is handled: retried, fatal, or a configuration problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Worth retrying.
    Transient,
    /// Stop with exit 1.
    Fatal,
    /// Stop with exit 2.
    Config,
}

impl Error {
    /// The class that decides retry and exit code.
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Config(_)
            | Error::Writer(WriterError::Config(_))
            | Error::Reader(ReaderError::Plan { .. }) => ErrorClass::Config,
            Error::Reader(e) if e.is_transient() => ErrorClass::Transient,
            _ => ErrorClass::Fatal,
        }
    }

    /// Process exit code for this error (SPEC §3).
    pub fn exit_code(&self) -> u8 {
        match self.class() {
            ErrorClass::Config => 2,
            _ => 1,
        }
    }
}
