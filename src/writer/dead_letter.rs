//! Rejected documents: one JSON entry each, made durable before the change
//! counts as handled, so a rejection is never lost. Destinations: a JSON-lines
//! file (appended and synced) or an Elasticsearch index (acknowledged).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use reqwest::Method;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::WriterError;
use crate::es::bulk::{Action, push};
use crate::es::response::{self, ItemOutcome};
use crate::es::{EsClient, SendError};
use crate::ordering::{Change, Op};
use crate::retry::{Attempt, Failure, Retry, RetryError, Verdict, retry_until};

/// One rejected document with everything needed to replay it by hand.
pub struct Rejection<'a> {
    /// The change.
    pub change: &'a Change,
    /// Item status from Elasticsearch.
    pub status: u16,
    /// Item error object.
    pub error: &'a serde_json::Value,
}

/// Where rejected documents go; shared by all lanes.
#[derive(Clone)]
pub struct DeadLetter {
    target: Target,
    /// Serialises writers; for an index, also whether it was created.
    lock: Arc<Mutex<bool>>,
}

#[derive(Clone)]
enum Target {
    File(PathBuf),
    Index {
        client: EsClient,
        index: String,
        retry_initial_ms: u64,
        retry_max_ms: u64,
    },
}

impl DeadLetter {
    /// A dead-letter file at `path` (created on first use).
    pub fn file(path: PathBuf) -> Self {
        Self {
            target: Target::File(path),
            lock: Arc::new(Mutex::new(false)),
        }
    }

    /// A dead-letter index, created on first use with a mapping that stores the
    /// document and the error without indexing them, so any document fits.
    pub fn index(
        client: EsClient,
        index: String,
        retry_initial_ms: u64,
        retry_max_ms: u64,
    ) -> Self {
        Self {
            target: Target::Index {
                client,
                index,
                retry_initial_ms,
                retry_max_ms,
            },
            lock: Arc::new(Mutex::new(false)),
        }
    }

    /// For log lines: the file path or the index name.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::File(p) => p.display().to_string(),
            Target::Index { index, .. } => format!("index {index}"),
        }
    }

    /// Records the entries durably (file: appended and synced; index: acknowledged).
    ///
    /// # Errors
    /// The destination cannot take them: the caller must not treat the changes as handled.
    pub async fn append(
        &self,
        rejections: &[Rejection<'_>],
        abort: &tokio_util::sync::CancellationToken,
    ) -> Result<(), WriterError> {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let entries: Vec<serde_json::Value> = rejections.iter().map(|r| entry(r, &now)).collect();
        let mut created = self.lock.lock().await;
        match &self.target {
            Target::File(path) => {
                let mut buf = Vec::new();
                for e in &entries {
                    // Serializing a Value into a Vec cannot fail.
                    let _ = serde_json::to_writer(&mut buf, e);
                    buf.push(b'\n');
                }
                let werr = |e: std::io::Error| WriterError::DeadLetter {
                    path: path.clone(),
                    source: e,
                };
                let mut f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(werr)?;
                f.write_all(&buf).await.map_err(werr)?;
                f.sync_data().await.map_err(werr)?;
                Ok(())
            }
            Target::Index {
                client,
                index,
                retry_initial_ms,
                retry_max_ms,
            } => {
                let retry = Retry::new(
                    *retry_initial_ms,
                    *retry_max_ms,
                    abort,
                    "Writing to the dead-letter index failed, retrying.",
                    index,
                );
                let entries = &entries;
                let (now, written) = retry_until(&retry, *created, |created| async move {
                    if !created && let Err(e) = create_index(client, index).await {
                        return (false, e);
                    }
                    match write_entries(client, index, entries).await {
                        Ok(()) => (true, Attempt::Done(())),
                        Err(e) => (true, e),
                    }
                })
                .await;
                *created = now;
                written.map_err(|e| {
                    let message = match e {
                        RetryError::Final(message) => message,
                        // The changes stay unresolved, so behind the checkpoint.
                        RetryError::Stopped { last } => format!("interrupted by shutdown: {last}"),
                        RetryError::Exhausted { last, .. } => last,
                    };
                    WriterError::DeadLetterIndex {
                        index: index.clone(),
                        message,
                    }
                })
            }
        }
    }
}

/// A failed step of writing to the dead-letter index: retried, or its final message.
type Step = Attempt<(), String>;

fn entry(r: &Rejection<'_>, now: &str) -> serde_json::Value {
    let c = r.change;
    let (op, document) = match &c.op {
        Op::Index(src) => (
            "index",
            serde_json::from_slice::<serde_json::Value>(src)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(src))),
        ),
        Op::Delete => ("delete", serde_json::Value::Null),
        // Refreshes are built before they are sent; one that is not has no document.
        Op::Refresh(_) => ("refresh", serde_json::Value::Null),
    };
    json!({
        "time": now,
        "index": &*c.key.index,
        "id": c.key.id,
        "op": op,
        "version": c.version.0,
        "status": r.status,
        "error": r.error,
        "position": c.origin.to_string(),
        "document": document,
    })
}

async fn create_index(client: &EsClient, index: &str) -> Result<(), Step> {
    let mapping = json!({"mappings": {"dynamic": false, "properties": {
        "time": {"type": "date"},
        "index": {"type": "keyword"},
        "id": {"type": "keyword"},
        "op": {"type": "keyword"},
        "version": {"type": "long"},
        "status": {"type": "integer"},
        "position": {"type": "keyword"},
        "error": {"type": "object", "enabled": false},
        "document": {"type": "object", "enabled": false}
    }}});
    let path = format!("/{index}");
    match client.json(Method::PUT, &path, Some(&mapping)).await {
        Err(e) => Err(Attempt::Again(Failure::new(e.to_string()))),
        Ok((s, _)) if (200..300).contains(&s) => Ok(()),
        Ok((400, body)) if body.to_string().contains("resource_already_exists") => Ok(()),
        Ok((s, body)) if Verdict::of_status(s) == Verdict::Transient => {
            Err(Attempt::Again(Failure::status(s, body)))
        }
        Ok((s, body)) => Err(Attempt::Fail(format!(
            "creating it failed (HTTP {s}): {body}"
        ))),
    }
}

async fn write_entries(
    client: &EsClient,
    index: &str,
    entries: &[serde_json::Value],
) -> Result<(), Step> {
    let mut body = Vec::new();
    for e in entries {
        // Serializing a Value into a Vec cannot fail.
        let source = serde_json::to_vec(e).unwrap_or_default();
        push(&mut body, Action::Index(&source), index, None, None, None);
    }
    let resp = match client.bulk(bytes::Bytes::from(body)).await {
        Ok(r) => r,
        Err(SendError::Status { status, body })
            if Verdict::of_status(status) != Verdict::Transient =>
        {
            return Err(Attempt::Fail(format!("HTTP {status}: {body}")));
        }
        Err(SendError::Status { status, body }) => {
            return Err(Attempt::Again(Failure::status(status, body)));
        }
        Err(e) => return Err(Attempt::Again(Failure::new(e.to_string()))),
    };
    let items = match response::parse(&resp, entries.len()) {
        Ok(None) => return Ok(()),
        Ok(Some(items)) => items,
        Err(e) => return Err(Attempt::Again(Failure::new(e.to_string()))),
    };
    for item in items {
        match item {
            ItemOutcome::Applied => {}
            ItemOutcome::Retry { status, error } => {
                return Err(Attempt::Again(Failure::new(format!(
                    "item HTTP {status}: {error}"
                ))));
            }
            ItemOutcome::Rejected { status, error } => {
                return Err(Attempt::Fail(format!(
                    "entry refused (HTTP {status}): {error}"
                )));
            }
        }
    }
    Ok(())
}
