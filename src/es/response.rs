//! `_bulk` responses → one outcome per item.
//!
//! Classification follows what a replaying, externally versioned writer needs:
//! 409 means a newer or equal version is already there (applied), 404 on a delete
//! means already gone (applied); otherwise [`Verdict::of_item`] decides (429 and 5xx are
//! worth retrying, other 4xx are rejections of that one document).

use serde::Deserialize;
use std::collections::HashMap;

use crate::retry::Verdict;

/// Response fields we ask for with `filter_path`.
pub const FILTER_PATH: &str = "errors,items.*.status,items.*.error";

/// What happened to one item of a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    /// Written, or already superseded (409), or already deleted (404 on delete).
    Applied,
    /// Temporary failure (429, 5xx): send again.
    Retry {
        /// HTTP status.
        status: u16,
        /// Error object.
        error: serde_json::Value,
    },
    /// The document cannot be indexed (mapping error …): dead-letter it.
    Rejected {
        /// HTTP status.
        status: u16,
        /// Error object.
        error: serde_json::Value,
    },
}

#[derive(Deserialize)]
struct Body {
    errors: bool,
    #[serde(default)]
    items: Vec<HashMap<String, Item>>,
}

/// The response with its items skipped.
#[derive(Deserialize)]
struct Head {
    errors: bool,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// The response does not fit the request.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// Not the JSON we expect.
    #[error("unreadable bulk response: {0}")]
    Json(#[from] serde_json::Error),
    /// A different number of items than sent.
    #[error("bulk response has {got} items for {sent} actions")]
    Count {
        /// Items returned.
        got: usize,
        /// Actions sent.
        sent: usize,
    },
}

/// One item of a `_bulk` answer as the server sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawItem {
    /// Its action: `index`, `delete` …
    pub action: String,
    /// HTTP status.
    pub status: u16,
    /// Error object, if any.
    pub error: Option<serde_json::Value>,
}

/// The items of a response to a request of `sent` actions, when it reports errors;
/// `None` means every item was applied (`errors: false`).
///
/// # Errors
/// Malformed JSON or an item count that does not match.
pub fn items(body: &[u8], sent: usize) -> Result<Option<Vec<RawItem>>, ResponseError> {
    // The usual answer has no errors: read only the flag and skip the items without
    // building them (one map per item would cost more than the rest of a lane's work).
    let head: Head = serde_json::from_slice(body)?;
    if !head.errors {
        return Ok(None);
    }
    let parsed: Body = serde_json::from_slice(body)?;
    if !parsed.errors {
        return Ok(None);
    }
    if parsed.items.len() != sent {
        return Err(ResponseError::Count {
            got: parsed.items.len(),
            sent,
        });
    }
    Ok(Some(
        parsed
            .items
            .into_iter()
            .map(|m| match m.into_iter().next() {
                Some((action, item)) => RawItem {
                    action,
                    status: item.status,
                    error: item.error,
                },
                None => RawItem {
                    action: String::new(),
                    status: 500,
                    error: None,
                },
            })
            .collect(),
    ))
}

/// Classifies every item of a response to a request of `sent` actions.
/// `None` means every item was applied (`errors: false`).
///
/// # Errors
/// Malformed JSON or an item count that does not match.
pub fn parse(body: &[u8], sent: usize) -> Result<Option<Vec<ItemOutcome>>, ResponseError> {
    Ok(items(body, sent)?.map(|items| {
        items
            .into_iter()
            .map(|i| classify(&i.action, i.status, i.error))
            .collect()
    }))
}

fn classify(action: &str, status: u16, error: Option<serde_json::Value>) -> ItemOutcome {
    let error = error.unwrap_or(serde_json::Value::Null);
    match status {
        200..=299 | 409 => ItemOutcome::Applied,
        404 if action == "delete" => ItemOutcome::Applied,
        _ if Verdict::of_item(status) == Verdict::Transient => ItemOutcome::Retry { status, error },
        _ => ItemOutcome::Rejected { status, error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_errors_is_fast_path() {
        let body = br#"{"errors":false,"items":[{"index":{"status":201}}]}"#;
        assert_eq!(parse(body, 1).unwrap(), None);
    }

    #[test]
    fn items_are_classified() {
        let body = br#"{"errors":true,"items":[
            {"index":{"status":201}},
            {"index":{"status":409,"error":{"type":"version_conflict_engine_exception"}}},
            {"delete":{"status":404}},
            {"index":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
            {"index":{"status":503,"error":{"type":"unavailable_shards_exception"}}},
            {"index":{"status":400,"error":{"type":"mapper_parsing_exception"}}},
            {"index":{"status":404,"error":{"type":"index_not_found_exception"}}}
        ]}"#;
        let out = parse(body, 7).unwrap().unwrap();
        assert_eq!(out[0], ItemOutcome::Applied);
        assert_eq!(out[1], ItemOutcome::Applied);
        assert_eq!(out[2], ItemOutcome::Applied);
        assert!(matches!(out[3], ItemOutcome::Retry { status: 429, .. }));
        assert!(matches!(out[4], ItemOutcome::Retry { status: 503, .. }));
        assert!(matches!(out[5], ItemOutcome::Rejected { status: 400, .. }));
        assert!(matches!(out[6], ItemOutcome::Rejected { status: 404, .. }));
    }

    #[test]
    fn mismatched_count_is_an_error() {
        let body = br#"{"errors":true,"items":[{"index":{"status":201}}]}"#;
        assert!(matches!(parse(body, 2), Err(ResponseError::Count { .. })));
        assert!(parse(b"<html>", 1).is_err());
    }
}
