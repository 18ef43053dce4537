//! Errors of the reader stage, located at a binlog position where one applies.

use crate::decode::DecodeError;
use crate::retry::Verdict;
use crate::schema::SchemaError;

/// Errors of the reader stage.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// Could not connect or lost the connection.
    #[error("MySQL at {host}: {source}")]
    Connection {
        /// `host:port`.
        host: String,
        /// Driver error.
        source: mysql_async::Error,
    },
    /// No event, not even a heartbeat, for too long.
    #[error("no event or heartbeat from MySQL at {host} for {seconds}s; reconnecting")]
    Silent {
        /// `host:port`.
        host: String,
        /// Seconds waited.
        seconds: u64,
    },
    /// The server refused the binlog request or the account lacks a privilege.
    #[error("MySQL at {host} refused replication from {position}: {message}; {hint}")]
    Refused {
        /// `host:port`.
        host: String,
        /// Requested position.
        position: String,
        /// Server message.
        message: String,
        /// Fix.
        hint: &'static str,
    },
    /// A server setting makes streaming impossible.
    #[error("{0}")]
    Prerequisite(String),
    /// A row value could not be decoded.
    #[error("at binlog position {position}: {source}")]
    Decode {
        /// Event position.
        position: String,
        /// What failed.
        source: DecodeError,
    },
    /// The table's metadata is unusable.
    #[error("at binlog position {position}: {source}")]
    Schema {
        /// Event position.
        position: String,
        /// What failed.
        source: SchemaError,
    },
    /// A document rule does not fit its table (a column it names is missing...).
    #[error(
        "the [[tables]] rule for `{table}` does not fit the table: {source}; fix the rule (`binlog2es check` lists every such problem)"
    )]
    Plan {
        /// `db.table`.
        table: String,
        /// The key and what is wrong.
        source: crate::document::PlanError,
    },
    /// The sink's index task ended (a stop, or a failure it reports itself).
    #[error("the index task ended")]
    IndicesGone,
    /// A change of a relation table could not be traced to its root documents.
    #[error(
        "at binlog position {position}: cannot find the documents a change of `{table}` affects: {message}"
    )]
    FanOut {
        /// Event position.
        position: String,
        /// `db.table` of the change.
        table: String,
        /// What failed.
        message: String,
        /// A lost connection (worth reconnecting).
        transient: bool,
    },
    /// A malformed or unsupported event.
    #[error("at binlog position {position}: {message}")]
    Event {
        /// Event position.
        position: String,
        /// What is wrong.
        message: String,
    },
}

impl ReaderError {
    /// Whether reconnecting may help.
    pub fn is_transient(&self) -> bool {
        match self {
            // Only what the operator must fix (privileges, a purged position) is final.
            Self::Connection { source, .. } => Verdict::of_mysql(source) != Verdict::Fatal,
            Self::Silent { .. } => true,
            Self::FanOut { transient, .. } => *transient,
            // A catalog query that lost its connection is worth another try.
            Self::Schema {
                source: SchemaError::Query { source, .. },
                ..
            } => !matches!(source, mysql_async::Error::Server(_)),
            _ => false,
        }
    }
}
