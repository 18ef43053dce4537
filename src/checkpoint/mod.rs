//! Stage 5: acknowledgements in binlog order → the committed checkpoint on disk.
//!
//! Invariant: the stored position never passes a change Elasticsearch has not
//! acknowledged (or that was not dead-lettered). Positions only ever land on
//! transaction boundaries.
pub mod ack;
pub mod copy;
pub mod rebuild;
pub mod store;
pub mod tracker;

pub use ack::{AckToken, TxnStatus};
pub use copy::{CopyMark, KeyValue, TableCopy};
pub use rebuild::{Phase, Rebuild, RebuildMark};
pub use store::{Checkpoint, CheckpointError, CheckpointStore, Flavor, ServerIdentity};
pub use tracker::{Tracker, TrackerExit, TxnGtid, TxnTicket, XaMark, Xid};
