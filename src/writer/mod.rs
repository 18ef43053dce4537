//! Stage 4: batches per lane, `_bulk` requests, per-item outcomes, acknowledgements.
//!
//! Changes to one document always use the same lane, and a lane never has two
//! requests in flight that touch the same document (`writer.pipeline_depth`, default
//! one request at a time), so the order of changes to one document is the order they
//! reach Elasticsearch.
//! Transient failures are retried with backoff — the whole request or only the
//! failed items — while the lane's queue fills and backpressure reaches the reader.
//! Rejected documents go to the dead-letter file (or stop the daemon).
//!
//! A batch is capped by `writer.max_docs` and by `writer.max_bytes` of body (a change that
//! would overflow it starts the next batch; a single larger change goes alone). A request
//! the sink refuses as too large (HTTP 413, `http.max_content_length`) is split in halves
//! and retried; a single document that is still too large is rejected like a 400 item
//! (dead-lettered, or stops the daemon with `on_rejected = "fail"`).
//! Each batch holds its changes' share of the byte budget (see [`crate::ordering`]) until
//! it is done with, so the budget bounds what the queues and requests in flight hold.
//!
//! Layout: `batch` cuts a lane's queue into batches, `in_flight` keeps the requests in
//! flight and the documents they hold, `lane` runs the two, `request` writes one batch
//! (retries through [`crate::retry`], partial retry, 413 split, rejections), `refresh` builds
//! the documents of rules with relations from MySQL just before, [`bulk`]
//! builds its body, [`dead_letter`] keeps what was rejected, [`index`] prepares target
//! indices. The HTTP client itself is [`crate::es`].

mod backlog;
mod batch;
pub mod bulk;
mod concurrency;
pub mod dead_letter;
mod in_flight;
pub mod index;
pub mod indices;
mod lane;
mod lane_time;
mod refresh;
mod request;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{OnRejected, WriterConfig};
use crate::document::store::Documents;
use crate::es::{ClientError, EsClient};
use dead_letter::DeadLetter;
pub use lane::Lane;

/// Errors of the writer stage.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// Client construction (URL, secrets, CA).
    #[error("{0}")]
    Setup(String),
    /// A secret, certificate or key file named in `[elasticsearch]` is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The dead-letter file cannot be written.
    #[error("cannot write dead-letter file {path}: {source}")]
    DeadLetter {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The dead-letter index cannot take rejected documents.
    #[error("cannot write to the dead-letter index `{index}`: {message}")]
    DeadLetterIndex {
        /// Index.
        index: String,
        /// What failed.
        message: String,
    },
    /// A document was rejected and `on_rejected = "fail"`.
    #[error(
        "Elasticsearch rejected document `{id}` in index `{index}` (HTTP {status}): {error}; \
         binlog position {position}. Fix the mapping or data, or set \
         dead_letter.on_rejected = \"dead_letter\""
    )]
    Rejected {
        /// Index.
        index: String,
        /// Document id.
        id: String,
        /// Item status.
        status: u16,
        /// Item error.
        error: String,
        /// Source position.
        position: String,
    },
    /// A request that retrying cannot fix (e.g. 413, or a malformed request).
    #[error("Elasticsearch refused a bulk request (HTTP {status}): {body}; {hint}")]
    Refused {
        /// Status.
        status: u16,
        /// Body excerpt.
        body: String,
        /// What to do.
        hint: &'static str,
    },
    /// `writer.max_retries` attempts failed.
    #[error("giving up after {attempts} attempts: {last}; raise writer.max_retries (0 = forever)")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// Last error.
        last: String,
    },
    /// Elasticsearch refused to create, inspect or extend a target index.
    #[error("cannot prepare index `{index}`: {message}; {hint}")]
    Index {
        /// The index.
        index: String,
        /// What was refused, with the server's reason (it names the field).
        message: String,
        /// What to do.
        hint: String,
    },
    /// Shutdown arrived while an index could not be prepared (server unreachable).
    #[error(
        "stopped while preparing index `{index}` (last error: {last}); the changes after the \
         checkpoint are replayed on the next start"
    )]
    IndexInterrupted {
        /// The index.
        index: String,
        /// Last transient error.
        last: String,
    },
    /// A table's index could not be prepared for its documents.
    #[error("{at}: {source}")]
    Prepare {
        /// What the request was for ("at binlog position …", "cannot copy `db.t`").
        at: String,
        /// What failed.
        source: Box<WriterError>,
    },
    /// Elasticsearch refused a request a statement needs (TRUNCATE, DROP).
    #[error("{at}: {message}")]
    Statement {
        /// Where the statement was read ("at binlog position …").
        at: String,
        /// What was refused.
        message: String,
    },
    /// The sink's response did not match the request.
    #[error("{0}")]
    Response(#[from] crate::es::response::ResponseError),
    /// A lane's request task ended abnormally (a bug).
    #[error("writer request task: {0}")]
    Task(String),
    /// Documents of a rule with relations could not be built from MySQL.
    #[error("{0}; the changes after the checkpoint are replayed on the next start")]
    Documents(Box<crate::document::store::DocumentsError>),
}

impl From<crate::document::store::DocumentsError> for WriterError {
    fn from(e: crate::document::store::DocumentsError) -> Self {
        // Boxed: the rule's error is large, and writer errors travel in every lane result.
        Self::Documents(Box::new(e))
    }
}

impl From<ClientError> for WriterError {
    fn from(e: ClientError) -> Self {
        // Kept as two variants so that a bad setting still exits as a configuration error.
        match e {
            ClientError::Setup(message) => Self::Setup(message),
            ClientError::Config(e) => Self::Config(e),
        }
    }
}

/// Everything a lane needs besides its queue.
#[derive(Clone)]
pub struct LaneContext {
    /// Sink client.
    pub client: EsClient,
    /// Batching and retry settings.
    pub config: WriterConfig,
    /// Rejection policy.
    pub on_rejected: OnRejected,
    /// Dead-letter destination.
    pub dead_letter: DeadLetter,
    /// Fires when the drain budget is spent: abandon whatever is still pending.
    pub abort: CancellationToken,
    /// Rules with relations, whose documents are built when written; `None`: no such rule.
    pub documents: Option<Arc<Documents>>,
}
