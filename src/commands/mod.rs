//! The commands besides `run`, thin on top of the library: `check` (prerequisites),
//! `status` (the checkpoint), `verify` (tables against indices), `resync` (ask the running
//! daemon to copy a table again).

pub mod check;
pub mod resync;
pub mod status;
pub mod verify;

pub use check::check;
pub use resync::{ResyncError, probe, request_reindex, request_resync};
pub use status::{SourceStatus, StatusReport, status, status_json, status_report};
pub use verify::{verify, verify_tables};
