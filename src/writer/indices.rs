//! Whole-index work on the sink side: preparing a table's index before its first document,
//! deleting every document of a table's index (TRUNCATE, DROP), listing the tables
//! whose indices binlog2es created (DROP DATABASE under a wildcard rule), and the index
//! work of a rebuild (SPEC §10: the new physical index, the alias switch, the old index's
//! deletion).
//!
//! The reader and the copy workers ask for it with an [`IndexRequest`] on a bounded queue
//! and wait for the answer before they route anything that depends on it, so this work is
//! ordered with the changes around it. One task serves the queue ([`serve`]); a failure it
//! cannot retry ends that task, and with it the run, with the error: the requester only
//! sees its answer dropped and stops.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::WriterError;
use super::index::{CREATED_BY, IndexManager};
use crate::config::Config;
use crate::document::store::Documents;
use crate::es::{EsClient, path};
use crate::retry::{Attempt, Failure, Retry, RetryError, Verdict, retry_until};
use crate::schema::TableSchema;

/// Requests waiting for the index task; the requesters wait for each answer anyway.
const QUEUE: usize = 16;

/// Work on whole indices, answered when done.
#[derive(Debug)]
pub enum IndexRequest {
    /// Make the table's index ready for its documents (create, or add fields).
    Prepare {
        /// The table.
        schema: Arc<TableSchema>,
        /// What the request is for, the error message's start ("at binlog position …",
        /// "cannot copy `db.t`").
        at: String,
        /// Answered once the index is ready.
        done: oneshot::Sender<()>,
    },
    /// Delete every document of `index`.
    Clear {
        /// The index.
        index: String,
        /// Where the request comes from.
        at: String,
        /// Answered with how many documents were deleted.
        done: oneshot::Sender<u64>,
    },
    /// Make a rebuild's new physical index ready for the table's documents.
    PrepareGeneration {
        /// The table.
        schema: Arc<TableSchema>,
        /// The physical index.
        physical: Arc<str>,
        /// Where the request comes from.
        at: String,
        /// Answered once the index is ready.
        done: oneshot::Sender<()>,
    },
    /// What the name `index` stands for.
    Describe {
        /// The name readers use.
        index: String,
        /// Where the request comes from.
        at: String,
        /// Answered with the layout.
        done: oneshot::Sender<Layout>,
    },
    /// Refresh `switch.target`, then move the name to it in one `_aliases` request.
    Switch {
        /// What to move where.
        switch: Switch,
        /// Where the request comes from.
        at: String,
        /// Answered once readers see the new index.
        done: oneshot::Sender<()>,
    },
    /// Delete a physical index (answered also when it is already gone).
    Delete {
        /// The physical index.
        physical: String,
        /// Where the request comes from.
        at: String,
        /// Answered once deleted.
        done: oneshot::Sender<()>,
    },
    /// The `_meta.source_table` of every index matching `pattern` that binlog2es created.
    CreatedTables {
        /// An index name pattern with `*` wildcards.
        pattern: String,
        /// Where the request comes from.
        at: String,
        /// Answered with the `db.table` names.
        done: oneshot::Sender<Vec<String>>,
    },
}

/// What an index name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// No index or alias of that name.
    Missing,
    /// A concrete index.
    Concrete {
        /// Created by binlog2es (`_meta.created_by`).
        ours: bool,
    },
    /// An alias of these physical indices.
    Alias {
        /// The physical indices, sorted.
        physical: Vec<String>,
        /// Every one of them was created by binlog2es.
        ours: bool,
    },
}

/// An alias switch: readers of `index` move from `old` to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switch {
    /// The name readers use.
    pub index: String,
    /// What it stands for now: a physical index behind the alias, or `index` itself when
    /// it is a concrete index (removed in the same request).
    pub old: String,
    /// The new physical index.
    pub target: String,
}

impl Switch {
    /// The `_aliases` request body: one atomic set of actions.
    pub fn actions(&self) -> Value {
        let add = json!({"add": {"index": self.target, "alias": self.index}});
        if self.old == self.index {
            // A concrete index cannot be renamed: the alias takes its name as it goes.
            json!({"actions": [add, {"remove_index": {"index": self.old}}]})
        } else {
            json!({"actions": [{"remove": {"index": self.old, "alias": self.index}}, add]})
        }
    }
}

/// The requesters' side of the index task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Indices {
    tx: mpsc::Sender<IndexRequest>,
}

impl Indices {
    /// A handle and the queue [`serve`] reads.
    pub fn channel() -> (Self, mpsc::Receiver<IndexRequest>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, rx)
    }

    /// Prepares the table's index; `None` when the index task ended (stopped or failed).
    pub async fn prepare(&self, schema: Arc<TableSchema>, at: String) -> Option<()> {
        self.ask(|done| IndexRequest::Prepare { schema, at, done })
            .await
    }

    /// Deletes every document of `index`; how many, or `None` when the task ended.
    pub async fn clear(&self, index: String, at: String) -> Option<u64> {
        self.ask(|done| IndexRequest::Clear { index, at, done })
            .await
    }

    /// Prepares a rebuild's new index `physical` for the table; `None` when the task ended.
    pub async fn prepare_generation(
        &self,
        schema: Arc<TableSchema>,
        physical: Arc<str>,
        at: String,
    ) -> Option<()> {
        self.ask(|done| IndexRequest::PrepareGeneration {
            schema,
            physical,
            at,
            done,
        })
        .await
    }

    /// What `index` stands for; `None` when the task ended.
    pub async fn describe(&self, index: String, at: String) -> Option<Layout> {
        self.ask(|done| IndexRequest::Describe { index, at, done })
            .await
    }

    /// Moves readers to the new index; `None` when the task ended.
    pub async fn switch(&self, switch: Switch, at: String) -> Option<()> {
        self.ask(|done| IndexRequest::Switch { switch, at, done })
            .await
    }

    /// Deletes a physical index; `None` when the task ended.
    pub async fn delete(&self, physical: String, at: String) -> Option<()> {
        self.ask(|done| IndexRequest::Delete { physical, at, done })
            .await
    }

    /// The source tables of the indices binlog2es created among those matching
    /// `pattern`; `None` when the task ended.
    pub async fn created_tables(&self, pattern: String, at: String) -> Option<Vec<String>> {
        self.ask(|done| IndexRequest::CreatedTables { pattern, at, done })
            .await
    }

    async fn ask<T>(&self, request: impl FnOnce(oneshot::Sender<T>) -> IndexRequest) -> Option<T> {
        let (done, answer) = oneshot::channel();
        self.tx.send(request(done)).await.ok()?;
        answer.await.ok()
    }
}

/// Serves index requests until every requester is gone or `stop` fires (Ok; a request
/// then in progress stays unanswered), or a request fails (Err).
///
/// # Errors
/// Elasticsearch refused a mapping, a deletion or a listing, retries were exhausted, or
/// `stop` fired while an index could not be prepared ([`WriterError::Prepare`],
/// [`WriterError::Statement`]).
pub async fn serve(
    mut rx: mpsc::Receiver<IndexRequest>,
    client: EsClient,
    config: Arc<Config>,
    stop: CancellationToken,
    documents: Option<Arc<Documents>>,
) -> Result<(), WriterError> {
    let mut manager = IndexManager::new(client.clone(), Arc::clone(&config))
        .with_stop(stop.clone())
        .with_documents(documents);
    let http = Http {
        client,
        config,
        stop,
    };
    loop {
        let request = tokio::select! {
            biased;
            // Whoever waits for an answer stops too.
            _ = http.stop.cancelled() => return Ok(()),
            r = rx.recv() => match r {
                Some(request) => request,
                None => return Ok(()),
            },
        };
        match request {
            IndexRequest::Prepare { schema, at, done } => {
                let ensured = manager.ensure(&schema).await;
                if !answer_prepared(ensured, &http.stop, at, done)? {
                    return Ok(());
                }
            }
            IndexRequest::Clear { index, at, done } => match http.clear(&index, &at).await? {
                Some(deleted) => {
                    let _ = done.send(deleted);
                }
                None => return Ok(()),
            },
            IndexRequest::PrepareGeneration {
                schema,
                physical,
                at,
                done,
            } => {
                let ensured = manager.ensure_generation(&schema, &physical).await;
                if !answer_prepared(ensured, &http.stop, at, done)? {
                    return Ok(());
                }
            }
            IndexRequest::Describe { index, at, done } => match http.describe(&index, &at).await? {
                Some(layout) => {
                    let _ = done.send(layout);
                }
                None => return Ok(()),
            },
            IndexRequest::Switch { switch, at, done } => {
                let refresh = format!("/{}/_refresh", path::segment(&switch.target));
                if http
                    .json(Method::POST, &refresh, None, &at)
                    .await?
                    .is_none()
                {
                    return Ok(());
                }
                let actions = switch.actions();
                if http
                    .json(Method::POST, "/_aliases", Some(&actions), &at)
                    .await?
                    .is_none()
                {
                    return Ok(());
                }
                // What was ensured for the name described the old index.
                manager.forget(&switch.index);
                let _ = done.send(());
            }
            IndexRequest::Delete { physical, at, done } => {
                let path = format!("/{}", path::segment(&physical));
                if http.json(Method::DELETE, &path, None, &at).await?.is_none() {
                    return Ok(());
                }
                let _ = done.send(());
            }
            IndexRequest::CreatedTables { pattern, at, done } => {
                let path = format!("/{}/_mapping", path::pattern(&pattern));
                let Some(mappings) = http.json(Method::GET, &path, None, &at).await? else {
                    return Ok(());
                };
                let _ = done.send(created_tables(&mappings));
            }
        }
    }
}

/// Answers a prepared index; `false` when stopped meanwhile (a stop while the index was
/// being prepared is a stop: its change is read again on the next start).
///
/// # Errors
/// The index could not be prepared.
fn answer_prepared(
    ensured: Result<(), WriterError>,
    stop: &CancellationToken,
    at: String,
    done: oneshot::Sender<()>,
) -> Result<bool, WriterError> {
    match ensured {
        Ok(()) => {
            let _ = done.send(());
            Ok(true)
        }
        Err(_) if stop.is_cancelled() => Ok(false),
        Err(source) => Err(WriterError::Prepare {
            at,
            source: Box::new(source),
        }),
    }
}

/// Requests retried with the writer's backoff until answered or stopped.
struct Http {
    client: EsClient,
    config: Arc<Config>,
    stop: CancellationToken,
}

impl Http {
    /// What `index` stands for (`GET /_alias/NAME`, then `GET /NAME/_mapping`); `None`
    /// when stopped first.
    async fn describe(&self, index: &str, at: &str) -> Result<Option<Layout>, WriterError> {
        let name = path::segment(index);
        let Some(aliases) = self
            .json(Method::GET, &format!("/_alias/{name}"), None, at)
            .await?
        else {
            return Ok(None);
        };
        let Some(mappings) = self
            .json(Method::GET, &format!("/{name}/_mapping"), None, at)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(layout(index, &aliases, &mappings)))
    }

    /// Refreshes `index` (so documents acknowledged within the refresh interval are found),
    /// then deletes by query until an answer reports no failure and no version conflict.
    /// How many were deleted, or `None` when stopped first.
    async fn clear(&self, index: &str, at: &str) -> Result<Option<u64>, WriterError> {
        let name = path::segment(index);
        let refresh = format!("/{name}/_refresh");
        let delete = format!("/{name}/_delete_by_query?conflicts=proceed&refresh=true");
        let query = json!({"query": {"match_all": {}}});
        let retry = self.retry(
            "Deleting the documents left some behind, deleting again.",
            index,
        );
        let (deleted, outcome) = retry_until(&retry, 0, |deleted| {
            let (refresh, delete, query) = (&refresh, &delete, &query);
            async move {
                let answer = match self.json(Method::POST, refresh, None, at).await {
                    Ok(Some(_)) => self.json(Method::POST, delete, Some(query), at).await,
                    other => other,
                };
                let answer = match answer {
                    Ok(Some(answer)) => answer,
                    // Stopped.
                    Ok(None) => return (deleted, Attempt::Done(false)),
                    Err(e) => return (deleted, Attempt::Fail(e)),
                };
                let deleted = deleted + answer["deleted"].as_u64().unwrap_or(0);
                match delete_leftovers(&answer) {
                    None => (deleted, Attempt::Done(true)),
                    Some(left) => (deleted, Attempt::Again(Failure::new(left))),
                }
            }
        })
        .await;
        let done = finish(outcome)?.unwrap_or(false);
        Ok(done.then_some(deleted))
    }

    /// One JSON request, retried while the answer is transient ([`Verdict::of_status`]).
    /// 404 answers `{}`. `None` when stopped first.
    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        at: &str,
    ) -> Result<Option<Value>, WriterError> {
        let retry = self.retry("Elasticsearch request failed, retrying.", path);
        let (_, outcome) = retry_until(&retry, (), |()| {
            let method = method.clone();
            async move {
                let sent = tokio::select! {
                    r = self.client.json(method, path, body) => r,
                    _ = self.stop.cancelled() => return ((), Attempt::Done(None)),
                };
                let attempt = match sent {
                    Ok((status, v)) if (200..300).contains(&status) => Attempt::Done(Some(v)),
                    Ok((404, _)) => Attempt::Done(Some(json!({}))),
                    Ok((status, v)) => match Verdict::of_status(status) {
                        Verdict::Transient => Attempt::Again(Failure::status(status, &v)),
                        _ => Attempt::Fail(WriterError::Statement {
                            at: at.to_owned(),
                            message: format!("Elasticsearch refused `{path}` (HTTP {status}): {v}"),
                        }),
                    },
                    Err(e) => Attempt::Again(Failure::new(e.to_string())),
                };
                ((), attempt)
            }
        })
        .await;
        finish(outcome).map(Option::flatten)
    }

    fn retry<'a>(&'a self, message: &'a str, subject: &'a str) -> Retry<'a> {
        Retry::new(
            self.config.writer.retry_initial_ms,
            self.config.writer.retry_max_ms,
            &self.stop,
            message,
            subject,
        )
    }
}

/// A retried request's end: its value, `None` when stopped, or its error.
fn finish<T>(outcome: Result<T, RetryError<WriterError>>) -> Result<Option<T>, WriterError> {
    match outcome {
        Ok(v) => Ok(Some(v)),
        Err(RetryError::Stopped { .. }) => Ok(None),
        Err(RetryError::Final(e)) => Err(e),
        Err(RetryError::Exhausted { attempts, last }) => {
            Err(WriterError::RetriesExhausted { attempts, last })
        }
    }
}

/// The layout of `index` from its `GET /_alias/NAME` and `GET /NAME/_mapping` answers (`{}`
/// for a 404).
fn layout(index: &str, aliases: &Value, mappings: &Value) -> Layout {
    let mappings = mappings.as_object().cloned().unwrap_or_default();
    let ours = !mappings.is_empty()
        && mappings
            .values()
            .all(|m| m["mappings"]["_meta"]["created_by"].as_str() == Some(CREATED_BY));
    let mut physical: Vec<String> = aliases
        .as_object()
        .into_iter()
        .flat_map(|a| a.iter())
        .filter(|(_, v)| v["aliases"].get(index).is_some())
        .map(|(k, _)| k.clone())
        .collect();
    physical.sort();
    if !physical.is_empty() {
        Layout::Alias { physical, ours }
    } else if mappings.contains_key(index) {
        Layout::Concrete { ours }
    } else {
        Layout::Missing
    }
}

/// The `_meta.source_table` of every index in a `_mapping` answer that binlog2es created,
/// each once (a rebuild's new index names the same table as the old one).
fn created_tables(mappings: &Value) -> Vec<String> {
    let mut tables: Vec<String> = mappings
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .map(|v| &v["mappings"]["_meta"])
        .filter(|m| m["created_by"].as_str() == Some(CREATED_BY))
        .filter_map(|m| m["source_table"].as_str().map(str::to_owned))
        .collect();
    tables.sort();
    tables.dedup();
    tables
}

/// What a `_delete_by_query` answer says it left behind (version conflicts, failures,
/// a time-out), or `None` when it deleted everything it found. A 200 answer can carry
/// any of these, so the status alone does not tell.
fn delete_leftovers(answer: &Value) -> Option<String> {
    let conflicts = answer["version_conflicts"].as_u64().unwrap_or(0);
    let failures = answer["failures"].as_array().map_or(0, Vec::len);
    let timed_out = answer["timed_out"].as_bool().unwrap_or(false);
    (conflicts > 0 || failures > 0 || timed_out).then(|| {
        format!("{conflicts} version conflicts, {failures} failures, timed_out={timed_out}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_answers_with_leftovers_are_retried() {
        let clean =
            json!({"deleted": 3, "version_conflicts": 0, "failures": [], "timed_out": false});
        assert_eq!(delete_leftovers(&clean), None);
        // Older servers may leave fields out: nothing reported means nothing left.
        assert_eq!(delete_leftovers(&json!({"deleted": 0})), None);
        for leftover in [
            json!({"deleted": 2, "version_conflicts": 1, "failures": []}),
            json!({"deleted": 2, "failures": [{"cause": {"type": "es_rejected_execution_exception"}}]}),
            json!({"deleted": 2, "timed_out": true}),
        ] {
            assert!(delete_leftovers(&leftover).is_some(), "{leftover}");
        }
    }

    #[test]
    fn layouts_tell_aliases_concrete_and_missing_indices_apart() {
        let meta = |by: &str| json!({"mappings": {"_meta": {"created_by": by}}});
        let aliases = json!({"orders-2": {"aliases": {"orders": {}}}});
        let mappings = json!({"orders-2": meta(CREATED_BY)});
        assert_eq!(
            layout("orders", &aliases, &mappings),
            Layout::Alias {
                physical: vec!["orders-2".into()],
                ours: true
            }
        );
        let mine = json!({"orders": meta(CREATED_BY)});
        assert_eq!(
            layout("orders", &json!({}), &mine),
            Layout::Concrete { ours: true }
        );
        let theirs = json!({"orders": meta("someone")});
        assert_eq!(
            layout("orders", &json!({}), &theirs),
            Layout::Concrete { ours: false }
        );
        assert_eq!(layout("orders", &json!({}), &json!({})), Layout::Missing);
    }

    #[test]
    fn switches_are_one_request() {
        let behind_alias = Switch {
            index: "orders".into(),
            old: "orders-1".into(),
            target: "orders-2".into(),
        };
        assert_eq!(
            behind_alias.actions(),
            json!({"actions": [
                {"remove": {"index": "orders-1", "alias": "orders"}},
                {"add": {"index": "orders-2", "alias": "orders"}},
            ]})
        );
        let concrete = Switch {
            old: "orders".into(),
            ..behind_alias
        };
        assert_eq!(
            concrete.actions(),
            json!({"actions": [
                {"add": {"index": "orders-2", "alias": "orders"}},
                {"remove_index": {"index": "orders"}},
            ]})
        );
    }

    #[test]
    fn only_indices_binlog2es_created_name_tables() {
        let mappings = json!({
            "ours": {"mappings": {"_meta": {"created_by": CREATED_BY, "source_table": "shop.a"}}},
            "foreign": {"mappings": {"_meta": {"created_by": "someone", "source_table": "shop.b"}}},
            "bare": {"mappings": {}},
        });
        assert_eq!(created_tables(&mappings), vec!["shop.a".to_owned()]);
        assert!(created_tables(&json!({})).is_empty());
    }
}
