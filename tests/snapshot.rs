//! The initial copy and on-line re-sync (SPEC §4 `snapshot.mode`): existing rows are copied
//! while the stream runs, and the index ends equal to the table whatever the writers did
//! meanwhile, across a crash, and after the checkpoint's binlog was purged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, \
                     n INT NOT NULL, note TEXT NULL) DEFAULT CHARSET = utf8mb4";

/// Fills `t` with rows `1..=count` in one statement (a cross join of digits: portable to
/// MySQL and MariaDB, no sequence engine or recursion limit needed).
async fn fill(conn: &mut Conn, count: u64) {
    let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                  UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
                  UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let places = (1..=7).find(|p| 10u64.pow(*p) >= count).unwrap_or(7);
    let mut from = Vec::new();
    let mut sum = Vec::new();
    for p in 0..places {
        from.push(format!("{digits} p{p}"));
        sum.push(format!("p{p}.d * {}", 10u64.pow(p)));
    }
    let sql = format!(
        "INSERT INTO t (id, name, n, note) SELECT s.i, CONCAT('row-', s.i), s.i % 1000, NULL \
         FROM (SELECT {} + 1 AS i FROM {}) s WHERE s.i <= {count}",
        sum.join(" + "),
        from.join(" CROSS JOIN ")
    );
    conn.query_drop(sql).await.unwrap();
}

/// Random inserts, updates (also of the key) and deletes over ids `1..=max_id`, each its own
/// transaction, until `stop` is set or `limit` statements ran. Returns how many ran.
fn spawn_writer(
    env: &'static TestEnv,
    db: String,
    max_id: u64,
    limit: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut conn = env.mysql_db(&db).await;
        let mut rng = StdRng::seed_from_u64(0x5eed_0004);
        let mut done = 0;
        while done < limit && !stop.load(Ordering::Relaxed) {
            let id = rng.random_range(1..=max_id);
            let sql = match rng.random_range(0..10) {
                0..=3 => format!("UPDATE t SET n = n + 1, note = 'w{done}' WHERE id = {id}"),
                4..=5 => format!("DELETE FROM t WHERE id = {id}"),
                6 => format!(
                    "UPDATE t SET id = {} WHERE id = {id}",
                    max_id + 1 + rng.random_range(0..max_id)
                ),
                _ => format!(
                    "INSERT INTO t VALUES ({id}, 'new-{done}', 1, 'i') \
                     ON DUPLICATE KEY UPDATE name = 'dup-{done}'"
                ),
            };
            // A key change may collide with an existing id: that statement just fails.
            let _ = conn.query_drop(sql).await;
            done += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        done
    })
}

/// Whether the checkpoint still lists tables being copied.
fn copying(daemon: &Daemon) -> bool {
    daemon.checkpoint()["copies"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
}

/// Rows the checkpoint says were copied of the first table being copied.
fn copied_rows(daemon: &Daemon) -> u64 {
    daemon.checkpoint()["copies"][0]["rows"]
        .as_u64()
        .unwrap_or(0)
}

async fn wait_for_copy_end(daemon: &mut Daemon, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while copying(daemon) {
        daemon.assert_running();
        assert!(
            Instant::now() < deadline,
            "copy not finished after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn initial_copy_of_a_million_rows_under_concurrent_writes_equals_the_table() {
    // GIVEN a table of 1,000,000 rows that exist before binlog2es first starts
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    const ROWS: u64 = 1_000_000;
    fill(&mut conn, ROWS).await;
    let index = env.unique_index("snap-1m");

    // WHEN binlog2es starts with snapshot.mode = "initial" while a writer keeps changing rows
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &index)
        .snapshot_mode("initial")
        .start()
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(env, db.clone(), ROWS, 5_000, Arc::clone(&stop));
    wait_for_copy_end(&mut daemon, secs(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let statements = writer.await.unwrap();

    // THEN the index equals the table: nothing missed, doubled, regressed or resurrected
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index, secs(300)).await;
    let log = daemon.log();
    assert!(
        statements > 100,
        "the writer ran only {statements} statements"
    );
    assert!(
        log.contains("Copy progress")
            && log.contains("rows_per_second")
            && log.contains("time_left"),
        "no progress lines in the log:\n{}",
        daemon.stderr_tail(30)
    );
    for line in log.lines().filter(|l| l.contains("Copy progress")) {
        eprintln!("{line}");
    }
    eprintln!("initial-copy: rows={ROWS} concurrent_statements={statements}");
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn a_copy_killed_midway_resumes_after_the_last_acknowledged_key() {
    // GIVEN a 60k-row table being copied
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    fill(&mut conn, 60_000).await;
    let index = env.unique_index("snap-kill");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &index)
        .snapshot_mode("initial")
        .extra_toml("[writer]\nlanes = 2\n")
        .start()
        .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(env, db.clone(), 60_000, 2_000, Arc::clone(&stop));

    // WHEN it is killed once part of the table is acknowledged, and started again
    assert!(
        wait_until(secs(300), async || copied_rows(&daemon) >= 15_000).await,
        "the copy made no progress:\n{}",
        daemon.stderr_tail(30)
    );
    daemon.kill();
    let saved = copied_rows(&daemon);
    assert!(copying(&daemon), "copy ended before the kill");
    let status = daemon.cli("status").await;
    assert!(
        status
            .stdout
            .contains(&format!("copying:    {db}.t ({saved} rows copied")),
        "{status}"
    );
    daemon.restart().await;
    wait_for_copy_end(&mut daemon, secs(600)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    // THEN it resumed after the saved key (not from the start) and the index equals the table
    let second = daemon.last_run_log();
    assert!(
        second.contains(&format!("rows_done_before={saved}")),
        "the second run did not resume at {saved} rows:\n{second}"
    );
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index, secs(300)).await;
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn a_purged_checkpoint_is_refused_by_initial_and_recopied_by_when_needed() {
    // GIVEN a server of this test's own (PURGE would break other tests' daemons), a synced
    // table, and an index holding documents of rows that will be deleted while the daemon is
    // down
    let env = TestEnv::dedicated_static(&[]);
    let (db, mut conn) = env.create_database_with(TABLE).await;
    fill(&mut conn, 3_000).await;
    let index = env.unique_index("snap-purge");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &index)
        .snapshot_mode("when_needed")
        .start()
        .await;
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index, secs(120)).await;
    assert_eq!(daemon.terminate().await, 0);

    // WHEN rows change while it is down and the binlog it stopped in is purged
    conn.query_drop(
        "DELETE FROM t WHERE id % 7 = 0; UPDATE t SET n = n + 5000 WHERE id % 5 = 0; \
         INSERT INTO t VALUES (100001, 'late', 1, NULL); UPDATE t SET id = 100002 WHERE id = 1",
    )
    .await
    .unwrap();
    let (stopped_in, _) = daemon.checkpoint_position();
    // MariaDB keeps a file until its binlog checkpoint moved on (asynchronously after the
    // rotation), so purge until the file is really gone.
    let purged = wait_until(secs(30), async || {
        conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
        let current = env.binlog_file().await;
        conn.query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
            .await
            .unwrap();
        let files: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await.unwrap();
        !files
            .iter()
            .any(|r| r.get::<String, _>(0).as_deref() == Some(stopped_in.as_str()))
    })
    .await;
    assert!(purged, "{stopped_in} could not be purged");

    // THEN with mode "initial" it refuses with a message naming when_needed
    let config = std::fs::read_to_string(daemon.config_path()).unwrap();
    std::fs::write(
        daemon.config_path(),
        config.replace("mode = \"when_needed\"", "mode = \"initial\""),
    )
    .unwrap();
    daemon.spawn();
    let code = daemon.wait_exit(secs(60)).await;
    let log = daemon.last_run_log();
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("purged") && log.contains("when_needed") && !log.contains("panicked"),
        "{log}"
    );

    // AND with "when_needed" it copies the tables again, removing the deleted rows' documents
    std::fs::write(daemon.config_path(), config).unwrap();
    daemon.restart().await;
    wait_for_copy_end(&mut daemon, secs(120)).await;
    conn.query_drop("UPDATE t SET note = 'after' WHERE id = 2")
        .await
        .unwrap();
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index, secs(120)).await;
    let es = env.es();
    assert_eq!(es.get(&index, "7").await, None, "a deleted row came back");
    assert_eq!(
        es.get(&index, "1").await,
        None,
        "the old key of a moved row stayed"
    );
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn resync_of_one_table_under_concurrent_writes_equals_the_table() {
    // GIVEN a streamed table whose index lost documents and gained foreign ones
    let env = TestEnv::get();
    let port = free_port();
    let mut f = Fixture::start_with("resync", TABLE, None, |b| {
        b.http_listen(&format!("127.0.0.1:{port}"))
    })
    .await;
    f.sql("INSERT INTO t VALUES (0, 'zero', 0, NULL)").await;
    f.converge().await;
    fill(&mut f.conn, 5_000).await;
    f.converge().await;
    let es = env.es();
    for id in ["5", "500", "4999"] {
        es.request(
            reqwest::Method::DELETE,
            &format!("/{}/_doc/{id}", f.index),
            None,
        )
        .await;
    }
    es.request(
        reqwest::Method::PUT,
        &format!("/{}/_doc/ghost?version=1&version_type=external", f.index),
        Some(serde_json::json!({"id": -1, "name": "ghost", "n": 0, "note": null})),
    )
    .await;
    es.refresh(&f.index).await;
    assert_ne!(es.count(&f.index).await, 5_001);

    // WHEN a re-sync is requested while a writer keeps changing the table
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(env, f.db.clone(), 5_000, 2_000, Arc::clone(&stop));
    let out = run_cli(&[
        "resync",
        "--config",
        &f.daemon.config_path().display().to_string(),
        "--table",
        &format!("{}.t", f.db),
    ])
    .await;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("re-sync"), "{out}");
    // A table no rule matches is refused.
    let unknown = run_cli(&[
        "resync",
        "--config",
        &f.daemon.config_path().display().to_string(),
        "--table",
        "nosuch.table",
    ])
    .await;
    assert_eq!(unknown.code, 1, "{unknown}");
    assert!(
        unknown.stderr.contains("matches no [[tables]] rule"),
        "{unknown}"
    );
    assert!(
        wait_until(secs(300), async || {
            !copying(&f.daemon) && f.daemon.log().contains("Table copied")
        })
        .await,
        "re-sync did not finish:\n{}",
        f.daemon.stderr_tail(30)
    );
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    // THEN missing documents are back, foreign ones gone, and every concurrent change holds
    f.converge().await;
    assert_eq!(es.get(&f.index, "ghost").await, None);
    assert_eq!(f.daemon.terminate().await, 0);
}
