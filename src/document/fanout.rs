//! STUB (replaced by the fetch branch): the root documents a change of another table affects.

use mysql_async::Conn;

use super::DocumentPlan;
use super::fetch::FetchError;
use crate::decode::field::FieldValue;
use crate::decode::rows::RootKey;

/// Paths from one table's occurrences in a rule up to the root.
#[derive(Debug, Clone)]
pub struct FanOut {}

impl FanOut {
    /// The paths of `db.table` in `plan`; `None` when the table does not occur.
    pub fn new(_plan: &DocumentPlan, _db: &str, _table: &str) -> Option<Self> {
        None
    }

    /// Roots found without a query.
    pub fn direct_roots(&self, _row: &[FieldValue]) -> Vec<(String, RootKey)> {
        Vec::new()
    }

    /// Whether some path needs a query.
    pub fn needs_query(&self) -> bool {
        false
    }

    /// Roots found by query, in key order after `after`, at most `limit`.
    ///
    /// # Errors
    /// A failed query.
    pub async fn roots_after(
        &self,
        _conn: &mut Conn,
        _rows: &[Vec<FieldValue>],
        _after: Option<&RootKey>,
        _limit: usize,
    ) -> Result<Vec<(String, RootKey)>, FetchError> {
        Ok(Vec::new())
    }
}
