//! Lag: a small task polls the server's binlog head and publishes how far the committed
//! checkpoint is behind it (`binlog2es_behind_bytes`); `status` uses the same distance.

use std::time::Duration;

use mysql_async::Conn;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Checkpoint;
use crate::reader::prerequisites;
use crate::source::MysqlSource;
use crate::telemetry::metrics;

/// How often the server's binlog head is polled for `binlog2es_behind_bytes`.
const HEAD_POLL: Duration = Duration::from_secs(5);

/// Polls the server's binlog head and publishes the distance to the checkpoint.
/// Best effort: a failed poll is retried at the next tick with a new connection.
pub(crate) async fn poll_head(
    source: MysqlSource,
    flavor: crate::checkpoint::Flavor,
    committed: watch::Receiver<Checkpoint>,
    stop: CancellationToken,
) {
    let mut conn: Option<Conn> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEAD_POLL) => {}
            _ = stop.cancelled() => return,
        }
        if conn.is_none() {
            conn = source.connect().await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        let head = prerequisites::binlog_head(c, flavor).await;
        let files = prerequisites::binlog_file_sizes(c).await;
        match (head, files) {
            (Ok(Some((pos, _))), Ok(files)) => {
                let at = committed.borrow().position.clone();
                if let Some(b) = bytes_behind(&files, &at, &pos) {
                    metrics::behind_bytes(b);
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = %e, "Polling the binlog head failed.");
                conn = None;
            }
            _ => {}
        }
    }
}

/// Bytes of binlog between `from` and `to`, using the server's file sizes.
pub(crate) fn bytes_behind(
    files: &[(String, u64)],
    from: &crate::position::BinlogPosition,
    to: &crate::position::BinlogPosition,
) -> Option<u64> {
    if from.file == to.file {
        return Some(to.pos.saturating_sub(from.pos));
    }
    let start = files.iter().position(|(f, _)| *f == from.file)?;
    let end = files.iter().position(|(f, _)| *f == to.file)?;
    if end < start {
        return Some(0);
    }
    let mut total = files[start].1.saturating_sub(from.pos);
    for (_, size) in &files[start + 1..end] {
        total += size;
    }
    Some(total + to.pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::BinlogPosition;

    #[test]
    fn distance_spans_files() {
        let files = vec![
            ("b.000001".to_owned(), 1000),
            ("b.000002".to_owned(), 500),
            ("b.000003".to_owned(), 300),
        ];
        let p = |f: &str, n| BinlogPosition::new(f, n);
        assert_eq!(
            bytes_behind(&files, &p("b.000001", 400), &p("b.000001", 900)),
            Some(500)
        );
        assert_eq!(
            bytes_behind(&files, &p("b.000001", 400), &p("b.000003", 100)),
            Some(1200)
        );
        assert_eq!(
            bytes_behind(&files, &p("x.000001", 4), &p("b.000003", 100)),
            None
        );
    }
}
