//! `binlog2es status`: the checkpoint, and how far behind the server's binlog it is.

use std::time::Duration;

use crate::Error;
use crate::app::lag::bytes_behind;
use crate::checkpoint::store::age;
use crate::checkpoint::{Checkpoint, CheckpointStore};
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
    let store = CheckpointStore::new(config.checkpoint.path.clone());
    let mut out = match store.load()? {
        None => format!("checkpoint: none yet ({})\n", store.path().display()),
        Some(c) => {
            let mut text = format!(
                "checkpoint: {}\nserver:     {}\nposition:   {}\ngtid:       {}\nversion:    {}\nupdated:    {} ({}s ago)\n",
                store.path().display(),
                c.server,
                c.position,
                if c.gtid.is_none() {
                    "-".to_owned()
                } else {
                    c.gtid.to_string()
                },
                c.version,
                humantime::format_rfc3339_seconds(c.updated_at),
                age(c.updated_at).as_secs(),
            );
            for copy in &c.copies {
                text.push_str(&format!(
                    "copying:    {}.{} ({} rows copied{})\n",
                    copy.db,
                    copy.table,
                    copy.rows,
                    if copy.after.is_some() {
                        ", resumes after the last one"
                    } else {
                        ", not started"
                    }
                ));
            }
            text.push_str(&server_status(config, &c).await);
            text
        }
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// The server half of `status`: its binlog head and the distance to it.
async fn server_status(config: &Config, c: &Checkpoint) -> String {
    let source = match MysqlSource::new(&config.mysql) {
        Ok(s) => s,
        Err(e) => return format!("source:     {e}\n"),
    };
    let host = source.host();
    let window = config.mysql.connect_timeout.min(Duration::from_secs(5));
    let mut conn = match tokio::time::timeout(window, source.connect()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return format!("source:     {host} unreachable: {e}\n"),
        Err(_) => return format!("source:     {host} unreachable: timed out\n"),
    };
    let head = prerequisites::binlog_head(&mut conn, c.server.flavor).await;
    let files = prerequisites::binlog_file_sizes(&mut conn)
        .await
        .unwrap_or_default();
    let _ = conn.disconnect().await;
    match head {
        Ok(Some((pos, _))) => {
            let behind = bytes_behind(&files, &c.position, &pos)
                .map(|b| format!("{b} bytes"))
                .unwrap_or_else(|| "unknown (checkpoint file not on the server)".into());
            format!("source:     {host} at {pos}\nbehind:     {behind}\n")
        }
        Ok(None) => format!("source:     {host} reports no binlog\n"),
        Err(e) => format!("source:     {host}: {e}\n"),
    }
}
