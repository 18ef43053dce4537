//! The sweep's view of an index: pages of the documents older than a copy's start.

use std::sync::Arc;

use serde_json::json;

use crate::es::{EsClient, Scroll, ScrollError};
use crate::position::Version;

/// Pages of the ids of documents whose version is below a copy's start, read with a scroll
/// (a fixed view of the index: deleting meanwhile does not move the pages).
pub(super) struct StalePages<'a> {
    scroll: Scroll<'a>,
    since: Version,
}

impl<'a> StalePages<'a> {
    /// Refreshes `index` and opens a scroll over it; a missing index has no pages.
    pub(super) async fn open(
        es: &'a EsClient,
        index: &'a str,
        since: Version,
        page: usize,
    ) -> Result<StalePages<'a>, ScrollError> {
        let query = json!({ "_source": false, "version": true, "sort": ["_doc"], "size": page });
        let scroll = Scroll::open(es, index, &query).await?;
        Ok(StalePages { scroll, since })
    }

    /// The stale ids of the next page (possibly none), or `None` at the end.
    pub(super) async fn next_page(
        &mut self,
    ) -> Result<Option<Vec<(String, Option<Arc<str>>)>>, ScrollError> {
        let Some(hits) = self.scroll.next_page().await? else {
            return Ok(None);
        };
        let since = self.since.0;
        Ok(Some(
            hits.iter()
                .filter(|hit| hit["_version"].as_u64().is_some_and(|v| v < since))
                .filter_map(|hit| {
                    let id = hit["_id"].as_str()?.to_owned();
                    Some((id, hit["_routing"].as_str().map(Arc::from)))
                })
                .collect(),
        ))
    }

    /// Frees the scroll on the server (it would expire after a minute anyway).
    pub(super) async fn close(self) {
        self.scroll.close().await;
    }
}
