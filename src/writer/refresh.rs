//! Refresh changes (rules with relations, SPEC §9) become documents just before their batch
//! is written: one build per index per batch, reading MySQL's current rows
//! ([`crate::document::store::Documents::build`]). A lane builds a document only after every
//! earlier request holding it finished (see [`super::in_flight`]), so the reads of one
//! document happen in the order of its changes and each write carries state at least as new
//! as the change that asked for it.

use std::collections::HashMap;
use std::sync::Arc;

use super::{LaneContext, WriterError};
use crate::checkpoint::AckToken;
use crate::document::store::DocumentsError;
use crate::ordering::{Change, Op, RootKey};
use crate::telemetry::metrics;

/// Builds every refresh in `pending`. A root row that is gone or no longer matches the rule
/// needs no write (its delete travels as a change of its own): such a change leaves the
/// batch and its acknowledgement joins `superseded`. `None` when stopped first.
///
/// # Errors
/// A rule that does not fit its tables, or no rule for a refresh's index (a bug).
pub(super) async fn build_refreshes(
    ctx: &LaneContext,
    mut pending: Vec<Change>,
    superseded: &mut Vec<AckToken>,
) -> Result<Option<Vec<Change>>, WriterError> {
    let mut by_index: HashMap<Arc<str>, (Vec<usize>, Vec<RootKey>)> = HashMap::new();
    for (i, c) in pending.iter_mut().enumerate() {
        if let Op::Refresh(key) = &mut c.op {
            // The key is taken, not copied: the op becomes the built document (or the
            // change leaves the batch) below.
            let key = std::mem::replace(key, RootKey(Vec::new()));
            let slot = by_index.entry(Arc::clone(&c.key.index)).or_default();
            slot.0.push(i);
            slot.1.push(key);
        }
    }
    if by_index.is_empty() {
        return Ok(Some(pending));
    }
    let Some(documents) = &ctx.documents else {
        return Err(WriterError::Task(
            "a document refresh reached a lane without document rules".into(),
        ));
    };
    let mut gone = vec![false; pending.len()];
    for (index, (positions, keys)) in by_index {
        let built = match documents.build(&index, &keys, &ctx.abort).await {
            Ok(built) => built,
            Err(DocumentsError::Stopped) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        metrics::documents_built(keys.len());
        for (pos, doc) in positions.into_iter().zip(built) {
            let change = &mut pending[pos];
            match doc {
                Some(doc) if doc.id == change.key.id => {
                    change.op = Op::Index(doc.source);
                    change.routing = doc.routing;
                }
                _ => gone[pos] = true,
            }
        }
    }
    let mut out = Vec::with_capacity(pending.len());
    for (change, gone) in pending.into_iter().zip(gone) {
        if gone {
            superseded.push(change.ack);
        } else {
            out.push(change);
        }
    }
    Ok(Some(out))
}
