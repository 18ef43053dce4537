//! A read view with a known binlog position: every transaction before the position is
//! visible in it, none after.
//!
//! - MariaDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT` fixes the read view and the
//!   `binlog_snapshot_file`/`binlog_snapshot_position` status variables report the binlog
//!   position that matches it. No lock is taken; no privilege beyond SELECT is needed.
//! - MySQL: the status variables do not exist, so commits are held for the instant it takes
//!   to open the read view and read the binlog head: `FLUSH TABLES WITH READ LOCK` (RELOAD),
//!   `START TRANSACTION WITH CONSISTENT SNAPSHOT`, `SHOW BINARY LOG STATUS`, `UNLOCK TABLES`.
//!   `lock_wait_timeout` bounds how long the lock may wait behind a long statement.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::checkpoint::Flavor;
use crate::position::{BinlogPosition, GtidState};
use crate::reader::prerequisites::binlog_head;

/// Seconds `FLUSH TABLES WITH READ LOCK` may wait on MySQL before the attempt fails (and is
/// retried), so a long-running statement never stalls the server behind our lock.
const LOCK_WAIT_SECONDS: u32 = 10;

/// Opens a consistent read-only transaction on `conn` and returns its binlog position,
/// and with `want_gtid` the GTID state there (for a checkpoint that starts at it).
///
/// # Errors
/// Query failures; a server that reports no binlog position.
pub(crate) async fn open(
    conn: &mut Conn,
    flavor: Flavor,
    want_gtid: bool,
) -> Result<(BinlogPosition, GtidState), mysql_async::Error> {
    // A consistent snapshot only exists under REPEATABLE READ; the server default may differ.
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    match flavor {
        Flavor::Mariadb => {
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await?;
            let rows: Vec<(String, String)> = conn
                .query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
                .await?;
            let get = |name: &str| {
                rows.iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let file = get("binlog_snapshot_file").unwrap_or_default();
            let pos: u64 = get("binlog_snapshot_position")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if file.is_empty() {
                return Err(no_binlog());
            }
            let gtid = if want_gtid {
                let g: Option<Option<String>> = conn
                    .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&file, pos))
                    .await?;
                GtidState::parse_mariadb(&g.flatten().unwrap_or_default()).unwrap_or_default()
            } else {
                GtidState::None
            };
            Ok((BinlogPosition::new(file, pos), gtid))
        }
        Flavor::Mysql => {
            conn.query_drop(format!(
                "SET SESSION lock_wait_timeout = {LOCK_WAIT_SECONDS}"
            ))
            .await?;
            conn.query_drop("FLUSH TABLES WITH READ LOCK").await?;
            let opened = async {
                conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                    .await?;
                binlog_head(conn, Flavor::Mysql).await
            }
            .await;
            // Commits wait while the lock is held: release it whatever happened.
            let unlocked = conn.query_drop("UNLOCK TABLES").await;
            let head = opened?;
            unlocked?;
            head.ok_or_else(no_binlog)
        }
    }
}

fn no_binlog() -> mysql_async::Error {
    mysql_async::Error::Other(
        "the server reports no binlog position for the snapshot; enable log_bin".into(),
    )
}
