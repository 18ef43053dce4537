//! Logs, metrics, progress and the operations HTTP endpoint.
pub mod http;
pub mod logging;
pub mod metrics;
pub mod progress;
