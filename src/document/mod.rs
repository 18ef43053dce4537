//! SPEC §9 documents: a rule's fields, rows, routing and relations resolved against the
//! tables ([`plan`]), one level's fields and row conditions ([`level`]), documents with
//! relations built from MySQL in batches ([`fetch`]) and the root documents a change of
//! another table reaches ([`fanout`]).
//!
//! A rule without relations shapes each row image where it is decoded (exact, like a plain
//! row). A rule with relations builds its documents from MySQL's current rows when they are
//! written: changes only name the root documents they affect.

pub mod fanout;
pub mod fetch;
pub mod key;
pub mod level;
pub mod plan;
pub mod shape;
pub(crate) mod sql;
pub mod store;

pub use level::{Level, value_equals};
pub use plan::{DocumentPlan, LinkPlan, RelationPlan};
pub use shape::RowShape;

/// A document rule that does not fit the tables, naming the configuration key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("`{key}`: {message}")]
pub struct PlanError {
    /// Dotted key path (`tables[0].nest[1].on`).
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl PlanError {
    /// An error at `key`.
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}
