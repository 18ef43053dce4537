//! STUB (replaced by the fetch branch): building documents with relations from MySQL.

use std::sync::Arc;

use bytes::Bytes;
use mysql_async::Conn;

use super::{DocumentPlan, PlanError};
use crate::config::TableRule;
use crate::decode::rows::RootKey;

/// A built document.
#[derive(Debug, Clone)]
pub struct Built {
    /// `_id`.
    pub id: String,
    /// `_source`.
    pub source: Bytes,
    /// `_routing`.
    pub routing: Option<Arc<str>>,
}

/// Why documents could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The rule does not fit the tables.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A query failed.
    #[error("{0}")]
    Query(#[from] mysql_async::Error),
    /// A table cannot be read.
    #[error("{0}")]
    Table(String),
}

/// Resolves the plan of `rule` for `db.table` with the tables' SQL schemas.
///
/// # Errors
/// Stub.
pub async fn resolve_plan(
    _conn: &mut Conn,
    _index: usize,
    _rule: &TableRule,
    _db: &str,
    _table: &str,
) -> Result<DocumentPlan, FetchError> {
    Err(FetchError::Table("not built yet".into()))
}

/// Builds the documents of `keys`.
///
/// # Errors
/// Stub.
pub async fn build(
    _conn: &mut Conn,
    _plan: &DocumentPlan,
    _keys: &[RootKey],
) -> Result<Vec<Option<Built>>, FetchError> {
    Err(FetchError::Table("not built yet".into()))
}
