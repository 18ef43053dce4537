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
pub use super::index::Layout;
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
        /// Answered once the index is ready, or with why it cannot be.
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Note that `index` is being rebuilt into `target` (`None`: no longer), so that what
    /// `index` gets (new fields) its new index gets too.
    Rebuilding {
        /// The name readers use.
        index: String,
        /// The new physical index.
        target: Option<String>,
        /// Answered once noted.
        done: oneshot::Sender<()>,
    },
    /// Report whether the table's index still matches its rule (at start-up), creating
    /// nothing.
    Inspect {
        /// The table.
        schema: Arc<TableSchema>,
        /// Where the request comes from.
        at: String,
        /// Answered once inspected.
        done: oneshot::Sender<()>,
    },
    /// What the name `index` stands for.
    Describe {
        /// The name readers use.
        index: String,
        /// Where the request comes from.
        at: String,
        /// Answered with the layout, or why it cannot be read.
        done: oneshot::Sender<Result<Layout, String>>,
    },
    /// Refresh `switch.target`, then move the name to it in one `_aliases` request.
    Switch {
        /// What to move where.
        switch: Switch,
        /// Where the request comes from.
        at: String,
        /// Answered once readers see the new index, or with why not.
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Delete a physical index (answered also when it is already gone).
    Delete {
        /// The physical index.
        physical: String,
        /// Where the request comes from.
        at: String,
        /// Answered once deleted, or with why not.
        done: oneshot::Sender<Result<(), String>>,
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

    /// Prepares a rebuild's new index `physical` for the table (or why it cannot be);
    /// `None` when the task ended.
    pub async fn prepare_generation(
        &self,
        schema: Arc<TableSchema>,
        physical: Arc<str>,
        at: String,
    ) -> Option<Result<(), String>> {
        self.ask(|done| IndexRequest::PrepareGeneration {
            schema,
            physical,
            at,
            done,
        })
        .await
    }

    /// Reports drift of the table's index from its rule; `None` when the task ended.
    pub async fn inspect(&self, schema: Arc<TableSchema>, at: String) -> Option<()> {
        self.ask(|done| IndexRequest::Inspect { schema, at, done })
            .await
    }

    /// Notes that `index` is being rebuilt into `target` (`None`: no longer); `None` when
    /// the task ended.
    pub async fn rebuilding(&self, index: String, target: Option<String>) -> Option<()> {
        self.ask(|done| IndexRequest::Rebuilding {
            index,
            target,
            done,
        })
        .await
    }

    /// What `index` stands for (or why it cannot be read); `None` when the task ended.
    pub async fn describe(&self, index: String, at: String) -> Option<Result<Layout, String>> {
        self.ask(|done| IndexRequest::Describe { index, at, done })
            .await
    }

    /// Moves readers to the new index (or says why not); `None` when the task ended.
    pub async fn switch(&self, switch: Switch, at: String) -> Option<Result<(), String>> {
        self.ask(|done| IndexRequest::Switch { switch, at, done })
            .await
    }

    /// Deletes a physical index (or says why not); `None` when the task ended.
    pub async fn delete(&self, physical: String, at: String) -> Option<Result<(), String>> {
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
            // The rebuild's own requests: a refusal goes back to the rebuild, which reports
            // it and tries again later, while streaming goes on.
            IndexRequest::PrepareGeneration {
                schema,
                physical,
                at: _,
                done,
            } => {
                let ensured = manager.ensure_generation(&schema, &physical).await;
                let Some(answer) = for_rebuild(ensured, &http.stop) else {
                    return Ok(());
                };
                let _ = done.send(answer);
            }
            IndexRequest::Rebuilding {
                index,
                target,
                done,
            } => {
                manager.rebuilding(&index, target);
                let _ = done.send(());
            }
            IndexRequest::Inspect { schema, at, done } => {
                let inspected = manager.inspect(&schema).await;
                if !answer_prepared(inspected, &http.stop, at, done)? {
                    return Ok(());
                }
            }
            IndexRequest::Describe { index, at: _, done } => {
                let described = manager.describe(&index).await;
                let Some(answer) = for_rebuild(described, &http.stop) else {
                    return Ok(());
                };
                let _ = done.send(answer);
            }
            IndexRequest::Switch { switch, at, done } => {
                let refresh = format!("/{}/_refresh", path::segment(&switch.target));
                let actions = switch.actions();
                let switched = async {
                    http.request(Method::POST, &refresh, None, &at, Missing::Fails)
                        .await?;
                    http.request(
                        Method::POST,
                        "/_aliases",
                        Some(&actions),
                        &at,
                        Missing::Fails,
                    )
                    .await
                }
                .await;
                // What was ensured for the name described the old index.
                manager.forget(&switch.index);
                let Some(answer) = for_rebuild(switched, &http.stop) else {
                    return Ok(());
                };
                let _ = done.send(answer.map(|_| ()));
            }
            IndexRequest::Delete { physical, at, done } => {
                let path = format!("/{}", path::segment(&physical));
                let deleted = http
                    .request(Method::DELETE, &path, None, &at, Missing::Answers)
                    .await;
                let Some(answer) = for_rebuild(deleted, &http.stop) else {
                    return Ok(());
                };
                let _ = done.send(answer.map(|_| ()));
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

/// The answer to a rebuild's request: its value, or the error in words; `None` when
/// stopped meanwhile (the request then goes unanswered).
fn for_rebuild<T>(
    outcome: Result<T, WriterError>,
    stop: &CancellationToken,
) -> Option<Result<T, String>> {
    match outcome {
        Ok(v) if !stop.is_cancelled() => Some(Ok(v)),
        Ok(_) => None,
        Err(_) if stop.is_cancelled() => None,
        Err(e) => Some(Err(e.to_string())),
    }
}

/// What a 404 answer means to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Nothing to do (`{}`): deleting what is gone, listing nothing.
    Answers,
    /// An error: the request needed the index.
    Fails,
}

/// Requests retried with the writer's backoff until answered or stopped.
struct Http {
    client: EsClient,
    config: Arc<Config>,
    stop: CancellationToken,
}

impl Http {
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
        self.request(method, path, body, at, Missing::Answers).await
    }

    /// [`Http::json`], with `missing` saying what a 404 means.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        at: &str,
        missing: Missing,
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
                    Ok((404, _)) if missing == Missing::Answers => Attempt::Done(Some(json!({}))),
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
