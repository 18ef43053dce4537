//! Read views that see every transaction the reader has read, without a global lock on
//! either flavour: the copy's windows, and the reads that build documents with relations
//! (SPEC §9) and find the documents a change reaches.
//!
//! # The watermark merge
//! A copy worker opens a window at the reader (the *low watermark* `L`: the reader's
//! position; from then on the reader records every id the stream changes in the table), opens
//! a read view that sees at least every transaction up to `L` ([`read_view_covering`]), runs
//! the chunk's `SELECT`, and only then reads the binlog head ([`high_watermark`], `H`). The
//! reader emits the chunk once it has read up to `H`, dropping the ids it recorded.
//!
//! Why that is exact: take a row the chunk holds with value `v`.
//! - If the stream changed the row at a position after `L`, the reader recorded its id before
//!   it emits the chunk (it emits at or after `H`, and it records everything it reads after
//!   `L`): the row is dropped and the stream carries its state.
//! - Otherwise every change to the row lies at or before `L`. The read view sees all of them
//!   (below), and nothing later changed the row up to the emission, so `v` is the row's value
//!   from `L` to the emission: writing it with the current version is writing the truth.
//! - A row the read view does not hold is not in the chunk: either deleted (the stream or the
//!   sweep deletes its document) or inserted after `L` (recorded, the stream indexes it).
//! - `H` is read after the `SELECT`: every transaction the read view sees had committed in
//!   the engine, so it was in the binlog before `H`, and the reader has read it (and recorded
//!   it when after `L`) by the time it emits the chunk.
//!
//! # The one race, and why it cannot bite
//! Servers write a transaction to the binlog *before* committing it in the engine (two-phase
//! commit). So a transaction `T` may already be in the binlog before `L` (the reader read it,
//! before the window opened, so nothing recorded it) while its engine commit is not yet
//! visible to a read view opened right then: the chunk would hold the row's value from before
//! `T` and overwrite `T`'s document. [`read_view_covering`] therefore only returns a read view
//! that provably sees every transaction up to `L`:
//! - MariaDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT` reports the binlog position the
//!   read view matches exactly (`binlog_snapshot_file`/`binlog_snapshot_position`; MariaDB
//!   commits to the engine in binlog order). The view covers `L` iff that position is at or
//!   after `L`; otherwise it is dropped and a new window is tried a moment later.
//! - MySQL: every transaction up to `L` was written to the binlog before the window opened,
//!   so when we look afterwards it has either committed (and then its GTID is in
//!   `gtid_executed`, which MySQL updates only after the engine commit) or still *owns* its
//!   GTID (`@@GLOBAL.gtid_owned`: from the GTID's assignment, before the binlog write, to
//!   after the engine commit). We read the GTIDs owned after the window opened and wait until
//!   none of them is owned any more; only then is the read view opened, which therefore sees
//!   all of `T`. That needs `gtid_mode = ON` (anonymous transactions own nothing we can see);
//!   without it the copy stops with a message saying so. A GTID owned for longer than
//!   [`OWNED_WAIT`] (a long transaction applied on a replica) makes the worker try a new
//!   window.
//!
//! Everything else — the window, the `SELECT`, the high watermark, the merge — is the same
//! code on both flavours, and no lock, no `RELOAD` and no write is needed: `SELECT` on the
//! table, and `REPLICATION CLIENT` (MariaDB: `BINLOG MONITOR`) for the binlog head.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::checkpoint::Flavor;
use crate::position::reached;
use crate::position::{BinlogPosition, GtidState};

/// How long the MySQL path waits for the GTIDs owned when a window opened before it tries a
/// new window (and logs why at debug level).
pub const OWNED_WAIT: Duration = Duration::from_secs(10);

/// How often `@@GLOBAL.gtid_owned` is read again while waiting (owned GTIDs normally commit
/// within a millisecond or two).
const OWNED_POLL: Duration = Duration::from_millis(2);

/// Why no read view could be opened.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// A query failed (the connection was lost, a lock wait timed out...): try again.
    #[error(transparent)]
    Sql(#[from] mysql_async::Error),
    /// The server cannot support the lock-free copy as configured.
    #[error("{0}")]
    Unsupported(String),
}

/// Opens a consistent read-only transaction on `conn` whose read view sees every transaction
/// in the binlog up to `low` (see the module comment). `Ok(false)`: not yet; the transaction
/// was rolled back, and the caller opens a new window and tries again.
///
/// # Errors
/// Query failures; MySQL without `gtid_mode = ON`.
pub(crate) async fn read_view_covering(
    conn: &mut Conn,
    flavor: Flavor,
    low: &BinlogPosition,
) -> Result<bool, ViewError> {
    // A consistent snapshot only exists under REPEATABLE READ; the server default may differ.
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    match flavor {
        Flavor::Mariadb => {
            let at = mariadb_snapshot(conn).await?;
            if reached(&at, low) {
                return Ok(true);
            }
            tracing::debug!(snapshot = %at, window = %low, "Read view older than the window; taking a new one.");
            conn.query_drop("ROLLBACK").await?;
            Ok(false)
        }
        Flavor::Mysql => {
            let (mode, owned): (Option<String>, Option<String>) = conn
                .query_first("SELECT @@GLOBAL.gtid_mode, @@GLOBAL.gtid_owned")
                .await?
                .unwrap_or((None, None));
            if !mode
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("ON"))
            {
                return Err(ViewError::Unsupported(format!(
                    "the copy needs gtid_mode = ON on MySQL (it is {}): without a global lock, \
                     the copy tells that transactions already in the binlog are visible by \
                     their GTIDs; set gtid_mode = ON and enforce_gtid_consistency = ON, or use \
                     snapshot.mode = \"never\"",
                    mode.as_deref().unwrap_or("unknown")
                )));
            }
            let mut waiting = owned_gtids(owned.as_deref().unwrap_or_default());
            let deadline = Instant::now() + OWNED_WAIT;
            while !waiting.is_empty() {
                if Instant::now() >= deadline {
                    tracing::debug!(owned = ?waiting, "GTIDs owned for long; trying a new window.");
                    return Ok(false);
                }
                tokio::time::sleep(OWNED_POLL).await;
                let now: Option<Option<String>> =
                    conn.query_first("SELECT @@GLOBAL.gtid_owned").await?;
                let now = owned_gtids(now.flatten().as_deref().unwrap_or_default());
                waiting.retain(|g| now.contains(g));
            }
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await?;
            Ok(true)
        }
    }
}

/// The binlog head, read after a chunk's `SELECT`: the high watermark. `head_sql` remembers
/// which statement this server knows (MySQL 8.4 dropped `SHOW MASTER STATUS`, MariaDB never
/// had `SHOW BINARY LOG STATUS`); start with `None`.
///
/// # Errors
/// Query failures; a server with the binlog off.
pub(crate) async fn high_watermark(
    conn: &mut Conn,
    head_sql: &mut Option<&'static str>,
) -> Result<BinlogPosition, mysql_async::Error> {
    const STATEMENTS: [&str; 2] = ["SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"];
    // A `Row`, read by column: the statements return more columns than file and position.
    let row: Option<mysql_async::Row> = match *head_sql {
        Some(sql) => conn.query_first(sql).await?,
        None => match conn.query_first(STATEMENTS[0]).await {
            Ok(row) => {
                *head_sql = Some(STATEMENTS[0]);
                row
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1064 => {
                *head_sql = Some(STATEMENTS[1]);
                conn.query_first(STATEMENTS[1]).await?
            }
            Err(e) => return Err(e),
        },
    };
    let row = row.ok_or_else(no_binlog)?;
    let file: Option<String> = row.get_opt(0).and_then(Result::ok);
    let pos: Option<u64> = row.get_opt(1).and_then(Result::ok);
    match (file, pos) {
        (Some(file), Some(pos)) => Ok(BinlogPosition::new(file, pos)),
        _ => Err(no_binlog()),
    }
}

/// The GTIDs in a `@@GLOBAL.gtid_owned` value (`uuid:5#12:6#13,uuid2[:tag]:7#14`; the number
/// after `#` is the owning thread), as `uuid[:tag]:gno#thread` items.
fn owned_gtids(text: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for group in text.split(',') {
        let mut prefix = Vec::new();
        for part in group.split(':').map(str::trim) {
            if part.starts_with(|c: char| c.is_ascii_digit()) && part.contains('#') {
                out.insert(format!("{}:{part}", prefix.join(":")));
            } else if !part.is_empty() {
                prefix.push(part);
            }
        }
    }
    out
}

/// `START TRANSACTION WITH CONSISTENT SNAPSHOT` on MariaDB, and the binlog position its read
/// view matches.
async fn mariadb_snapshot(conn: &mut Conn) -> Result<BinlogPosition, mysql_async::Error> {
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
    Ok(BinlogPosition::new(file, pos))
}

/// Where a full copy's stream starts: a binlog position and the GTID state there, with a
/// transaction left open on `conn` (the caller ends it).
///
/// - MariaDB: a consistent snapshot's exact position, and `BINLOG_GTID_POS` of it.
/// - MySQL, without a lock: `gtid_executed` first, then the binlog head. Every GTID in the
///   set committed before the head was read, so none lies after the position; one that
///   committed in between is missing from the set, and a resume by GTID after a failover
///   reads that transaction again (idempotent: same ids, versions). The copy itself does not
///   depend on this pair: each window waits for its own low watermark (see above).
///
/// # Errors
/// Query failures; a server that reports no binlog position.
pub(crate) async fn open(
    conn: &mut Conn,
    flavor: Flavor,
    want_gtid: bool,
) -> Result<(BinlogPosition, GtidState), mysql_async::Error> {
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await?;
    match flavor {
        Flavor::Mariadb => {
            let at = mariadb_snapshot(conn).await?;
            let gtid = if want_gtid {
                let g: Option<Option<String>> = conn
                    .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&at.file, at.pos))
                    .await?;
                GtidState::parse_mariadb(&g.flatten().unwrap_or_default()).unwrap_or_default()
            } else {
                GtidState::None
            };
            Ok((at, gtid))
        }
        Flavor::Mysql => {
            let executed: Option<Option<String>> =
                conn.query_first("SELECT @@GLOBAL.gtid_executed").await?;
            let executed = executed.flatten().unwrap_or_default();
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await?;
            let at = high_watermark(conn, &mut None).await?;
            let gtid = match executed.trim() {
                s if !want_gtid || s.is_empty() => GtidState::None,
                s => GtidState::parse_mysql(&s.replace('\n', "")).unwrap_or_default(),
            };
            Ok((at, gtid))
        }
    }
}

fn no_binlog() -> mysql_async::Error {
    mysql_async::Error::Other(
        "the server reports no binlog position for the snapshot; enable log_bin".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_gtids_are_read_one_by_one() {
        let u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let u2 = "4e11fa47-71ca-11e1-9e33-c80aa9429562";
        let set = owned_gtids(&format!("{u1}:5#12:6#13,\n{u2}:tag:7#14"));
        let mut items: Vec<_> = set.into_iter().collect();
        items.sort();
        assert_eq!(
            items,
            [
                format!("{u1}:5#12"),
                format!("{u1}:6#13"),
                format!("{u2}:tag:7#14")
            ]
        );
        assert!(owned_gtids("").is_empty());
        // One of two GTIDs of a server committed: the other is still waited for.
        let before = owned_gtids(&format!("{u1}:5#12:6#13"));
        let now = owned_gtids(&format!("{u1}:6#13:7#15"));
        let left: Vec<_> = before.iter().filter(|g| now.contains(*g)).collect();
        assert_eq!(left, [&format!("{u1}:6#13")]);
    }
}
