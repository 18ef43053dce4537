//! Rejected documents: one JSON line each, appended and synced before the
//! change counts as handled, so a rejection is never lost.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::WriterError;
use crate::ordering::{Change, Op};

/// One rejected document with everything needed to replay it by hand.
pub struct Rejection<'a> {
    /// The change.
    pub change: &'a Change,
    /// Item status from Elasticsearch.
    pub status: u16,
    /// Item error object.
    pub error: &'a serde_json::Value,
}

/// Append-only dead-letter file shared by all lanes.
#[derive(Clone)]
pub struct DeadLetterFile {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl DeadLetterFile {
    /// A dead-letter file at `path` (created on first use).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// The file path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Appends the entries and syncs the file.
    ///
    /// # Errors
    /// The file cannot be written: the caller must not treat the changes as handled.
    pub async fn append(&self, rejections: &[Rejection<'_>]) -> Result<(), WriterError> {
        let mut buf = Vec::new();
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        for r in rejections {
            let c = r.change;
            let (op, document) = match &c.op {
                Op::Index(src) => (
                    "index",
                    serde_json::from_slice::<serde_json::Value>(src)
                        .unwrap_or_else(|_| json!(String::from_utf8_lossy(src))),
                ),
                Op::Delete => ("delete", serde_json::Value::Null),
            };
            let line = json!({
                "time": now,
                "index": &*c.key.index,
                "id": c.key.id,
                "op": op,
                "version": c.version.0,
                "status": r.status,
                "error": r.error,
                "position": c.origin.to_string(),
                "document": document,
            });
            // Serializing a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut buf, &line);
            buf.push(b'\n');
        }
        let _guard = self.lock.lock().await;
        let werr = |e: std::io::Error| WriterError::DeadLetter {
            path: self.path.clone(),
            source: e,
        };
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(werr)?;
        f.write_all(&buf).await.map_err(werr)?;
        f.sync_data().await.map_err(werr)?;
        Ok(())
    }
}
