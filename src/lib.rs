//! binlog2es keeps Elasticsearch indices equal to MySQL tables by tailing the binlog.
//!
//! ```text
//! MySQL binlog ─> reader ─> decode ─> ordering ─> writer lanes ─> Elasticsearch
//!                   │                  (key→lane)   (batch, _bulk, retry)
//!                   └── TxnTicket ──> checkpoint tracker <── AckToken outcomes
//!                                       └─> checkpoint file (atomic)
//! ```
//!
//! | module | stage |
//! | --- | --- |
//! | [`config`] | TOML + env configuration, validation |
//! | [`position`] | binlog positions, GTID state, external versions |
//! | [`schema`] | table model, table-map reading, catalog queries (a leaf every stage uses) |
//! | [`reader`] | replication stream, transactions, server checks |
//! | [`decode`] | row images → `_id` + `_source` JSON (SPEC §5/§6) |
//! | [`ordering`] | per-document lanes and coalescing |
//! | [`writer`] | batching, `_bulk`, retries, dead-letter |
//! | [`es`] | Elasticsearch client, `_bulk` bodies and answers, URL paths (a leaf every stage may use) |
//! | [`retry`] | backoff, one verdict per failure, the retry loop (a leaf) |
//! | [`checkpoint`] | ordered acknowledgements → committed position on disk |
//! | [`snapshot`] | initial copy and re-sync, merged into the stream by the reader |
//! | [`shutdown`] | signals and drain |
//! | `tls` | certificates, keys, fingerprints and certificate errors for all connections |
//! | [`telemetry`] | logs and metrics |

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::await_holding_lock)]

mod app;
pub mod checkpoint;
pub mod commands;
pub mod config;
pub mod decode;
pub mod es;
pub mod ordering;
pub mod position;
pub mod reader;
pub mod retry;
mod scan;
pub mod schema;
pub mod shutdown;
pub mod snapshot;
pub mod source;
pub mod telemetry;
pub(crate) mod tls;
pub mod writer;

pub use app::run;
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
            Error::Config(_) | Error::Writer(WriterError::Config(_)) => ErrorClass::Config,
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
