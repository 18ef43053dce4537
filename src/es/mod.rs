//! The Elasticsearch side, shared by every stage that talks to it (writer, snapshot sweep,
//! verify, reader): the HTTP client, `_bulk` bodies and answers, and URL paths.
//!
//! A leaf: it uses configuration and TLS set-up, never a pipeline stage, so a stage can
//! send a request without importing the writer.

pub mod bulk;
pub mod client;
pub mod path;
pub mod response;

pub use client::{ClientError, EsClient, Scroll, ScrollError, SendError, ServerInfo};
