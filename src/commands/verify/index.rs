//! What the index holds, and the repair: `_mget` by id and routing, the scroll over every
//! id, and the versioned writes and deletes of `--repair`.

use std::collections::HashMap;

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Map, Value as Json, json};

use super::expected::Expected;
use super::{CHUNK, VerifyError, es};
use crate::es::{EsClient, bulk, response};

pub(super) fn check_status(status: u16, body: &Json, what: &str) -> Result<(), VerifyError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(VerifyError::Es(format!("{what}: HTTP {status}: {body}")))
    }
}

/// The indexed `_source` and `_routing` of each (id, routing) that has a document.
pub(super) async fn mget(
    client: &EsClient,
    index: &str,
    ids: &[(String, Option<String>)],
) -> Result<HashMap<String, (Map<String, Json>, Option<String>)>, VerifyError> {
    let mut found = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    // A routed document is found on its routing's shard only.
    let docs: Vec<Json> = ids
        .iter()
        .map(|(id, routing)| match routing {
            Some(r) => json!({ "_id": id, "routing": r }),
            None => json!({ "_id": id }),
        })
        .collect();
    let (status, body) = client
        .json(
            Method::POST,
            &format!("/{index}/_mget"),
            Some(&json!({ "docs": docs })),
        )
        .await
        .map_err(es)?;
    if status == 404 {
        return Ok(found);
    }
    check_status(status, &body, "_mget")?;
    for doc in body["docs"].as_array().into_iter().flatten() {
        if doc["found"] == Json::Bool(true)
            && let (Some(id), Some(source)) = (doc["_id"].as_str(), doc["_source"].as_object())
        {
            let routing = doc["_routing"].as_str().map(str::to_owned);
            found.insert(id.to_owned(), (source.clone(), routing));
        }
    }
    Ok(found)
}

/// Every document id of the index with its `_routing` (after a refresh, so recent writes
/// are seen).
pub(super) async fn scroll_ids(
    client: &EsClient,
    index: &str,
) -> Result<Vec<(String, Option<String>)>, VerifyError> {
    let mut ids = Vec::new();
    client
        .scroll(
            index,
            json!({ "_source": false, "sort": ["_doc"] }),
            |hit| {
                if let Some(id) = hit["_id"].as_str() {
                    ids.push((id.to_owned(), hit["_routing"].as_str().map(str::to_owned)));
                }
            },
        )
        .await
        .map_err(|e| VerifyError::Es(e.to_string()))?;
    Ok(ids)
}

/// Writes the rows of `ids` that exist and deletes the others, versioned so that a newer
/// streamed change always wins. Returns how many actions Elasticsearch applied and how
/// many it refused as version conflicts.
pub(super) async fn repair(
    client: &EsClient,
    index: &str,
    ids: &[String],
    (rows, indexed_routing): (&HashMap<String, Expected>, &HashMap<String, Option<String>>),
    version: u64,
) -> Result<(u64, u64), VerifyError> {
    let (mut applied, mut conflicts) = (0, 0);
    for chunk in ids.chunks(CHUNK) {
        let mut body = Vec::new();
        for id in chunk {
            let expected = rows
                .get(id)
                .map(|e| (Json::Object(e.source.clone()).to_string(), &e.routing));
            let (action, routing) = match &expected {
                Some((source, routing)) => (bulk::Action::Index(source.as_bytes()), *routing),
                None => (
                    bulk::Action::Delete,
                    indexed_routing.get(id).unwrap_or(&None),
                ),
            };
            bulk::push(
                &mut body,
                action,
                index,
                Some(id),
                Some(version),
                routing.as_deref(),
            );
        }
        let answer = client.bulk(Bytes::from(body)).await.map_err(es)?;
        let Some(items) = response::items(&answer, chunk.len()).map_err(es)? else {
            applied += chunk.len() as u64;
            continue;
        };
        for item in items {
            match item.status {
                // 404: deleting what is already gone; 409: a newer change is there.
                200..=299 => applied += 1,
                404 if item.action == "delete" => applied += 1,
                409 => conflicts += 1,
                _ => {
                    let error = item.error.unwrap_or_default();
                    return Err(VerifyError::Es(format!("repair of {index}: {error}")));
                }
            }
        }
    }
    Ok((applied, conflicts))
}
