//! XA transactions: rows count when the XA transaction commits, never at `XA PREPARE`, and
//! never after `XA ROLLBACK`; a restart between PREPARE and COMMIT loses nothing, and the
//! checkpoint's GTID state stays exact (issue 11, item 5).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql_async::prelude::Queryable;

const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, \
                     n INT NOT NULL) DEFAULT CHARSET = utf8mb4";

/// Runs statements on `conn` (the XA transaction's own connection: a session holding a
/// prepared XA transaction accepts nothing but its COMMIT/ROLLBACK).
async fn run(conn: &mut mysql_async::Conn, sql: &str) {
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Waits until document `id` exists.
async fn wait_for_doc(f: &mut Fixture, id: &str) {
    let (es, index) = (f.env.es(), f.index.clone());
    let found = wait_until(secs(60), async || {
        f.daemon.assert_running();
        es.get(&index, id).await.is_some()
    })
    .await;
    assert!(found, "document {id} never appeared\n{}", f.daemon.log());
}

/// The server's `@@gtid_binlog_pos`.
async fn server_gtid(f: &mut Fixture) -> String {
    f.conn
        .query_first::<String, _>("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// The `gtid` of the checkpoint on disk.
fn checkpoint_gtid(f: &Fixture) -> String {
    f.daemon.checkpoint()["gtid"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the checkpoint on disk holds the server's current GTID state (both read
/// at each poll: other tests write to the same server).
async fn wait_for_exact_checkpoint(f: &mut Fixture) {
    let mut last = (String::new(), String::new());
    let ok = wait_until(secs(30), async || {
        last = (checkpoint_gtid(f), server_gtid(f).await);
        last.0 == last.1
    })
    .await;
    assert!(
        ok,
        "checkpoint GTID {} never reached the server's {}",
        last.0, last.1
    );
}

/// The sequence number of a one-domain MariaDB GTID state (`0-1-42` → 42).
fn gtid_seq(gtid: &str) -> u64 {
    gtid.rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a one-domain MariaDB GTID: {gtid}"))
}

#[tokio::test]
async fn xa_rows_are_indexed_only_when_it_commits() {
    // GIVEN a synced table
    let mut f = Fixture::start("xa-commit", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'a', 1), (5, 'e', 5)").await;
    f.converge().await;

    // WHEN an XA transaction is prepared (an xid with a branch and a format id), and a
    // later ordinary transaction is indexed
    let mut xa = f.env.mysql_db(&f.db).await;
    run(
        &mut xa,
        "XA START 'c1', 'branch', 7; \
         INSERT INTO t VALUES (10, 'x', 10), (11, 'y', 11); \
         UPDATE t SET n = 12 WHERE id = 11; DELETE FROM t WHERE id = 1; \
         UPDATE t SET n = 50 WHERE id = 5; \
         XA END 'c1', 'branch', 7; XA PREPARE 'c1', 'branch', 7",
    )
    .await;
    f.sql("INSERT INTO t VALUES (2, 'b', 2)").await;
    wait_for_doc(&mut f, "2").await;

    // THEN none of its changes are visible yet
    assert_eq!(f.doc("10").await, None, "XA rows indexed at PREPARE");
    assert_eq!(f.doc("11").await, None, "XA rows indexed at PREPARE");
    assert_eq!(f.doc("1").await.unwrap()["n"], 1);
    assert_eq!(f.doc("5").await.unwrap()["n"], 5);

    // WHEN it commits
    run(&mut xa, "XA COMMIT 'c1', 'branch', 7").await;

    // THEN all of them are, with a version above the transaction committed before it
    f.converge().await;
    assert_eq!(f.doc("11").await.unwrap()["n"], 12);
    assert_eq!(f.doc("1").await, None);
    let es = f.env.es();
    let (v2, v10) = (
        es.version(&f.index, "2").await.unwrap(),
        es.version(&f.index, "10").await.unwrap(),
    );
    assert!(v10 > v2, "XA rows carry version {v10}, not above {v2}");
    wait_for_exact_checkpoint(&mut f).await;
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn xa_rollback_leaves_no_documents() {
    // GIVEN a synced table
    let mut f = Fixture::start("xa-rollback", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'a', 1)").await;
    f.converge().await;

    // WHEN an XA transaction is prepared, a later transaction is indexed, and it rolls back
    let mut xa = f.env.mysql_db(&f.db).await;
    run(
        &mut xa,
        "XA START 'r1'; INSERT INTO t VALUES (10, 'x', 10), (11, 'y', 11); \
         UPDATE t SET n = 100 WHERE id = 1; XA END 'r1'; XA PREPARE 'r1'",
    )
    .await;
    f.sql("INSERT INTO t VALUES (2, 'b', 2)").await;
    wait_for_doc(&mut f, "2").await;
    assert_eq!(f.doc("10").await, None, "XA rows indexed at PREPARE");
    run(&mut xa, "XA ROLLBACK 'r1'").await;
    // and another XA transaction rolls back before it was prepared
    f.sql(
        "XA START 'r2'; INSERT INTO t VALUES (20, 'z', 20); XA END 'r2'; XA ROLLBACK 'r2'; \
         INSERT INTO t VALUES (3, 'c', 3)",
    )
    .await;

    // THEN the index holds exactly the table: no rolled-back row, the update undone
    wait_for_doc(&mut f, "3").await;
    f.converge().await;
    assert_eq!(f.doc("10").await, None);
    assert_eq!(f.doc("20").await, None);
    assert_eq!(f.doc("1").await.unwrap()["n"], 1);
    wait_for_exact_checkpoint(&mut f).await;
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn xa_one_phase_commit_is_indexed() {
    // GIVEN a synced table
    let mut f = Fixture::start("xa-one-phase", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'a', 1)").await;
    f.converge().await;

    // WHEN an XA transaction commits in one phase
    f.sql(
        "XA START 'o1'; INSERT INTO t VALUES (30, 'p', 30), (31, 'q', 31); \
         UPDATE t SET n = 2 WHERE id = 1; XA END 'o1'; XA COMMIT 'o1' ONE PHASE",
    )
    .await;

    // THEN its rows are indexed and the checkpoint is exact
    f.converge().await;
    assert_eq!(f.doc("1").await.unwrap()["n"], 2);
    assert!(f.doc("31").await.is_some());
    wait_for_exact_checkpoint(&mut f).await;
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn xa_prepared_before_a_restart_is_indexed_at_its_commit() {
    // GIVEN a synced table and an exact checkpoint
    let mut f = Fixture::start("xa-restart", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'a', 1)").await;
    f.converge().await;
    wait_for_exact_checkpoint(&mut f).await;
    let before = server_gtid(&mut f).await;

    // WHEN an XA transaction is prepared, a later transaction is indexed, and the daemon
    // stops (SIGTERM: the last committed state is written)
    let mut xa = f.env.mysql_db(&f.db).await;
    run(
        &mut xa,
        "XA START 'k1'; INSERT INTO t VALUES (10, 'x', 10), (11, 'y', 11); \
         UPDATE t SET n = 100 WHERE id = 1; XA END 'k1'; XA PREPARE 'k1'",
    )
    .await;
    f.sql("INSERT INTO t VALUES (2, 'b', 2)").await;
    let later: String = f
        .conn
        .query_first("SELECT @@last_gtid")
        .await
        .unwrap()
        .unwrap();
    wait_for_doc(&mut f, "2").await;
    assert_eq!(f.doc("10").await, None, "XA rows indexed at PREPARE");
    assert_eq!(f.daemon.terminate().await, 0);

    // THEN the checkpoint stays before the PREPARE (so before the later transaction, though
    // it was indexed), and a restart reads the PREPARE again
    let stored = checkpoint_gtid(&f);
    assert!(
        gtid_seq(&stored) >= gtid_seq(&before) && gtid_seq(&stored) < gtid_seq(&later),
        "the checkpoint ({stored}) passed the open XA PREPARE (between {before} and {later})"
    );

    // WHEN it restarts, is SIGKILLed while the XA transaction is still open, and the XA
    // transaction commits while it is down
    f.daemon.restart().await;
    f.sql("INSERT INTO t VALUES (3, 'c', 3)").await;
    wait_for_doc(&mut f, "3").await;
    f.daemon.kill();
    run(&mut xa, "XA COMMIT 'k1'").await;
    f.sql("INSERT INTO t VALUES (4, 'd', 4)").await;
    f.daemon.restart().await;

    // THEN its rows are indexed after the restart, and the checkpoint is exact again
    f.converge().await;
    assert_eq!(f.doc("1").await.unwrap()["n"], 100);
    assert!(f.doc("11").await.is_some());
    wait_for_exact_checkpoint(&mut f).await;
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn truncate_while_an_xa_transaction_is_prepared_does_not_stall() {
    // GIVEN two synced tables, each with its own index
    let env = TestEnv::get();
    let (db, mut conn) = env
        .create_database_with(&format!(
            "{TABLE}; {}",
            TABLE.replace("TABLE t ", "TABLE u ")
        ))
        .await;
    let (index_t, index_u) = (env.unique_index("xa-ddl-t"), env.unique_index("xa-ddl-u"));
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &index_t)
        .table(&format!("{db}.u"), &index_u)
        .start()
        .await;
    conn.query_drop("INSERT INTO t VALUES (1, 'a', 1); INSERT INTO u VALUES (1, 'a', 1)")
        .await
        .unwrap();
    wait_until_index_equals_table(env, &mut daemon, &db, "u", &index_u, secs(60)).await;

    // WHEN an XA transaction on `t` is prepared, and `u` is truncated and written after it
    let mut xa = env.mysql_db(&db).await;
    run(
        &mut xa,
        "XA START 'd1'; INSERT INTO t VALUES (10, 'x', 10); XA END 'd1'; XA PREPARE 'd1'",
    )
    .await;
    conn.query_drop("TRUNCATE TABLE u; INSERT INTO u VALUES (2, 'b', 2)")
        .await
        .unwrap();

    // THEN the TRUNCATE (which waits for earlier changes to be delivered) does not wait
    // for the open XA transaction, and the stream goes on
    let es = env.es();
    let streamed = wait_until(secs(60), async || {
        daemon.assert_running();
        es.get(&index_u, "2").await.is_some() && es.get(&index_u, "1").await.is_none()
    })
    .await;
    assert!(
        streamed,
        "the stream stalled behind the prepared XA transaction"
    );
    assert_eq!(
        es.get(&index_t, "10").await,
        None,
        "XA rows indexed at PREPARE"
    );

    // WHEN it commits, THEN its rows are indexed
    run(&mut xa, "XA COMMIT 'd1'").await;
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index_t, secs(60)).await;
    assert_eq!(daemon.terminate().await, 0);
}
