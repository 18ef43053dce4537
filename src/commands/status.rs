//! `binlog2es status`: the checkpoint, and how far behind the server's binlog it is.

use std::time::Duration;

use crate::Error;
use crate::app::lag::bytes_behind;
use crate::checkpoint::store::age;
use crate::checkpoint::{Checkpoint, CheckpointStore, Phase};
use crate::config::Config;
use crate::reader::prerequisites;
use crate::source::MysqlSource;

/// `binlog2es status`: the checkpoint, the server's current binlog position and
/// how far behind the checkpoint is. The server part is best effort: an
/// unreachable server is reported, not an error.
///
/// # Errors
/// Unreadable or corrupt checkpoint.
pub async fn status(config: &Config) -> Result<String, Error> {
    Ok(status_report(config).await?.to_string())
}

/// `binlog2es status --json`: the same facts as [`status`], as one JSON object for scripts.
///
/// # Errors
/// Unreadable or corrupt checkpoint.
pub async fn status_json(config: &Config) -> Result<serde_json::Value, Error> {
    Ok(status_report(config).await?.to_json())
}

/// What `status` found, printed as text or JSON.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// The checkpoint file.
    pub path: String,
    /// Its content; `None` before the first start.
    pub checkpoint: Option<Checkpoint>,
    /// The server's side; `None` when there is no checkpoint to compare with.
    pub source: Option<SourceStatus>,
}

/// The server half of `status`.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    /// Host (no credentials).
    pub host: String,
    /// The server's binlog head, when it could be read.
    pub head: Option<String>,
    /// Binlog bytes between the checkpoint and the head, when both are in the server's files.
    pub behind_bytes: Option<u64>,
    /// Why the server part is incomplete (unreachable, no binlog, …).
    pub error: Option<String>,
}

/// Reads the checkpoint and asks the server where its binlog is.
///
/// # Errors
/// Unreadable or corrupt checkpoint.
pub async fn status_report(config: &Config) -> Result<StatusReport, Error> {
    let store = CheckpointStore::new(config.checkpoint.path.clone());
    let checkpoint = store.load()?;
    let source = match &checkpoint {
        Some(c) => Some(server_status(config, c).await),
        None => None,
    };
    Ok(StatusReport {
        path: store.path().display().to_string(),
        checkpoint,
        source,
    })
}

impl StatusReport {
    /// The report as one JSON object (`checkpoint` is null before the first start).
    pub fn to_json(&self) -> serde_json::Value {
        let checkpoint = self.checkpoint.as_ref().map(|c| {
            let updated = c
                .updated_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            serde_json::json!({
                "server": {"flavor": format!("{:?}", c.server.flavor), "id": c.server.id},
                "position": c.position.to_string(),
                "gtid": (!c.gtid.is_none()).then(|| c.gtid.to_string()),
                "version": c.version.0,
                "updated_at": humantime::format_rfc3339_seconds(c.updated_at).to_string(),
                "updated_at_unix": updated,
                "age_seconds": age(c.updated_at).as_secs(),
                "copies": c.copies.iter().map(|copy| serde_json::json!({
                    "table": format!("{}.{}", copy.db, copy.table),
                    "rows": copy.rows,
                    "started": copy.after.is_some(),
                    "into": copy.into,
                })).collect::<Vec<_>>(),
            })
        });
        let rebuilds = self.checkpoint.as_ref().map_or_else(Vec::new, |c| {
            c.rebuilds
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "index": r.index,
                        "target": r.target,
                        "old": r.old,
                        "phase": r.phase.name(),
                        "since": r.since.0,
                        "rows_copied": rows_copied(c, &r.target),
                    })
                })
                .collect()
        });
        let source = self.source.as_ref().map(|s| {
            serde_json::json!({
                "host": s.host,
                "head": s.head,
                "behind_bytes": s.behind_bytes,
                "error": s.error,
            })
        });
        serde_json::json!({
            "checkpoint_path": self.path,
            "checkpoint": checkpoint,
            "rebuilds": rebuilds,
            "source": source,
        })
    }
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(c) = &self.checkpoint else {
            return writeln!(f, "checkpoint: none yet ({})", self.path);
        };
        writeln!(f, "checkpoint: {}", self.path)?;
        writeln!(f, "server:     {}", c.server)?;
        writeln!(f, "position:   {}", c.position)?;
        if c.gtid.is_none() {
            writeln!(f, "gtid:       -")?;
        } else {
            writeln!(f, "gtid:       {}", c.gtid)?;
        }
        writeln!(f, "version:    {}", c.version)?;
        writeln!(
            f,
            "updated:    {} ({}s ago)",
            humantime::format_rfc3339_seconds(c.updated_at),
            age(c.updated_at).as_secs()
        )?;
        for r in &c.rebuilds {
            writeln!(
                f,
                "rebuilding: {} into {} (phase {}, {} rows copied; readers see {})",
                r.index,
                r.target,
                r.phase.name(),
                rows_copied(c, &r.target),
                if matches!(r.phase, Phase::DeletingOld) {
                    &r.target
                } else {
                    &r.old
                },
            )?;
        }
        for copy in &c.copies {
            let into = copy
                .into
                .as_ref()
                .map(|i| format!(" into {i}"))
                .unwrap_or_default();
            writeln!(
                f,
                "copying:    {}.{}{into} ({} rows copied{})",
                copy.db,
                copy.table,
                copy.rows,
                if copy.after.is_some() {
                    ", resumes after the last one"
                } else {
                    ", not started"
                }
            )?;
        }
        if let Some(s) = &self.source {
            match (&s.head, &s.error) {
                (_, Some(e)) => writeln!(f, "source:     {e}")?,
                (Some(head), None) => {
                    writeln!(f, "source:     {} at {head}", s.host)?;
                    match s.behind_bytes {
                        Some(b) => writeln!(f, "behind:     {b} bytes")?,
                        None => {
                            writeln!(f, "behind:     unknown (checkpoint file not on the server)")?
                        }
                    }
                }
                (None, None) => writeln!(f, "source:     {} reports no binlog", s.host)?,
            }
        }
        Ok(())
    }
}

/// Rows the unfinished copies into a rebuild's `target` have copied so far.
fn rows_copied(c: &Checkpoint, target: &str) -> u64 {
    c.copies
        .iter()
        .filter(|copy| copy.into.as_deref() == Some(target))
        .map(|copy| copy.rows)
        .sum()
}

/// The server half of `status`: its binlog head and the distance to it.
async fn server_status(config: &Config, c: &Checkpoint) -> SourceStatus {
    let source = match MysqlSource::new(&config.mysql) {
        Ok(s) => s,
        Err(e) => {
            return SourceStatus {
                error: Some(e.to_string()),
                ..SourceStatus::default()
            };
        }
    };
    let host = source.host().to_owned();
    let fail = |error: String| SourceStatus {
        host: host.clone(),
        error: Some(error),
        ..SourceStatus::default()
    };
    let window = config.mysql.connect_timeout.min(Duration::from_secs(5));
    let mut conn = match tokio::time::timeout(window, source.connect()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return fail(format!("{host} unreachable: {e}")),
        Err(_) => return fail(format!("{host} unreachable: timed out")),
    };
    let head = prerequisites::binlog_head(&mut conn, c.server.flavor).await;
    let files = prerequisites::binlog_file_sizes(&mut conn)
        .await
        .unwrap_or_default();
    let _ = conn.disconnect().await;
    match head {
        Ok(Some((pos, _))) => SourceStatus {
            behind_bytes: bytes_behind(&files, &c.position, &pos),
            head: Some(pos.to_string()),
            host,
            error: None,
        },
        Ok(None) => SourceStatus {
            host,
            ..SourceStatus::default()
        },
        Err(e) => fail(format!("{host}: {e}")),
    }
}
