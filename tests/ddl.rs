//! Schema changes while streaming (SPEC §5): column changes, TRUNCATE, DROP TABLE,
//! CREATE TABLE under a wildcard rule, RENAME TABLE.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, n INT NULL)";

#[tokio::test]
async fn column_changes_apply_to_later_rows() {
    // GIVEN a streamed table
    let mut f = Fixture::start("ddlcol", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'a', 1)").await;
    f.converge().await;

    // WHEN columns are added, renamed, retyped and dropped between writes
    f.sql("ALTER TABLE t ADD COLUMN extra VARCHAR(8) NULL")
        .await;
    f.sql("INSERT INTO t VALUES (2, 'b', 2, 'x')").await;
    f.sql("ALTER TABLE t RENAME COLUMN n TO amount").await;
    f.sql("INSERT INTO t VALUES (3, 'c', 3, 'y')").await;
    f.sql("ALTER TABLE t MODIFY COLUMN amount BIGINT NULL")
        .await;
    f.sql("INSERT INTO t VALUES (4, 'd', 40000000000, NULL)")
        .await;
    f.sql("ALTER TABLE t DROP COLUMN extra").await;
    f.sql("INSERT INTO t VALUES (5, 'e', 5); UPDATE t SET name = 'a2' WHERE id = 1")
        .await;

    // THEN each row's document has the columns its row had when it was written
    let es = f.env.es();
    let ok = wait_until(secs(60), async || es.get(&f.index, "5").await.is_some()).await;
    assert!(ok, "row 5 not indexed:\n{}", f.daemon.stderr_tail(30));
    assert_eq!(
        f.doc("2").await,
        Some(json!({"id": 2, "name": "b", "n": 2, "extra": "x"}))
    );
    assert_eq!(
        f.doc("3").await,
        Some(json!({"id": 3, "name": "c", "amount": 3, "extra": "y"}))
    );
    assert_eq!(
        f.doc("4").await,
        Some(json!({"id": 4, "name": "d", "amount": 40000000000i64, "extra": null}))
    );
    assert_eq!(
        f.doc("5").await,
        Some(json!({"id": 5, "name": "e", "amount": 5}))
    );
    // A row written after all changes has exactly the table's current columns.
    assert_eq!(
        f.doc("1").await,
        Some(json!({"id": 1, "name": "a2", "amount": 1}))
    );
    f.daemon.assert_running();
}

#[tokio::test]
async fn truncate_removes_the_tables_documents_in_order() {
    // GIVEN a streamed table with rows
    let mut f = Fixture::start("ddltrunc", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)")
        .await;

    // WHEN it is truncated right after more writes, and written again
    f.sql("UPDATE t SET n = 20 WHERE id = 2; TRUNCATE TABLE t; INSERT INTO t VALUES (4, 'd', 4)")
        .await;

    // THEN only the row written after the TRUNCATE remains, as in MySQL
    let diff = f.converge().await;
    assert_eq!(diff.rows, 1);
    assert_eq!(
        f.doc("4").await,
        Some(json!({"id": 4, "name": "d", "n": 4}))
    );
    assert_eq!(f.doc("2").await, None);
    f.daemon.assert_running();
}

#[tokio::test]
async fn drop_table_removes_its_documents_and_a_new_table_is_synced() {
    // GIVEN a wildcard rule over a database with one table
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    let prefix = env.unique_index("ddlwild");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.*"), &format!("{prefix}-{{table}}"))
        .start()
        .await;
    let es = env.es();
    let sql = async |conn: &mut mysql_async::Conn, q: &str| {
        use mysql_async::prelude::Queryable;
        conn.query_drop(q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    };
    sql(&mut conn, "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2)").await;
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &format!("{prefix}-t"), secs(60))
        .await;

    // WHEN a matching table is created and filled, and the first one is dropped
    sql(
        &mut conn,
        "CREATE TABLE u (code VARCHAR(8) PRIMARY KEY, qty INT NOT NULL); \
         INSERT INTO u VALUES ('x', 1), ('y', 2); DROP TABLE t",
    )
    .await;

    // THEN the new table streams into its own index and the dropped one's documents are gone
    wait_until_index_equals_table(env, &mut daemon, &db, "u", &format!("{prefix}-u"), secs(60))
        .await;
    let index_t = format!("{prefix}-t");
    let gone = wait_until(secs(60), async || es.count(&index_t).await == 0).await;
    assert!(
        gone,
        "documents of the dropped table remain:\n{}",
        daemon.stderr_tail(30)
    );
    daemon.assert_running();
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn a_rename_moves_documents_to_the_new_names_index() {
    // GIVEN a wildcard rule with one index per table
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    let prefix = env.unique_index("ddlren");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.*"), &format!("{prefix}-{{table}}"))
        .start()
        .await;
    use mysql_async::prelude::Queryable;
    conn.query_drop("INSERT INTO t VALUES (1, 'a', 1)")
        .await
        .unwrap();
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &format!("{prefix}-t"), secs(60))
        .await;

    // WHEN the table is renamed (no row events) and written to under its new name
    conn.query_drop("RENAME TABLE t TO t2; INSERT INTO t2 VALUES (2, 'b', 2)")
        .await
        .unwrap();

    // THEN the new name's index holds every row (the renamed rows are copied), and the old
    // name's documents are gone, as the old table is
    wait_until_index_equals_table(
        env,
        &mut daemon,
        &db,
        "t2",
        &format!("{prefix}-t2"),
        secs(60),
    )
    .await;
    let es = env.es();
    let old = format!("{prefix}-t");
    let gone = wait_until(secs(60), async || es.count(&old).await == 0).await;
    assert!(
        gone,
        "documents of the old name remain:\n{}",
        daemon.stderr_tail(30)
    );
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn a_rename_swap_keeps_the_index_filled_and_ends_equal_to_the_new_table() {
    // GIVEN a wildcard rule with one index per table, and a table with rows
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    let prefix = env.unique_index("ddlswap");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.*"), &format!("{prefix}-{{table}}"))
        .start()
        .await;
    use mysql_async::prelude::Queryable;
    conn.query_drop("INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)")
        .await
        .unwrap();
    let index = format!("{prefix}-t");
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index, secs(60)).await;

    // WHEN an online schema change builds a new table and swaps it in with one RENAME
    conn.query_drop(
        "CREATE TABLE t_new (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, n INT NULL, \
         extra INT NULL); INSERT INTO t_new SELECT id, name, n, 7 FROM t WHERE id <> 2; \
         RENAME TABLE t TO t_old, t_new TO t",
    )
    .await
    .unwrap();

    // THEN the index never runs empty while the new table is copied, and it ends equal to
    // the new table (row 2's document swept, the new column present)
    let es = env.es();
    let mut check = env.mysql().await;
    let deadline = std::time::Instant::now() + secs(60);
    loop {
        assert!(
            es.count(&index).await > 0,
            "the index ran empty during the swap"
        );
        let diff = compare(env, &mut check, &db, "t", &index).await;
        if diff.is_empty() {
            assert_eq!(diff.rows, 2);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "index != table: {diff}\n{}",
            daemon.stderr_tail(30)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(es.get(&index, "1").await.unwrap()["extra"], 7);
    let old = format!("{prefix}-t_old");
    wait_until_index_equals_table(env, &mut daemon, &db, "t_old", &old, secs(60)).await;
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn a_crash_right_after_truncate_keeps_the_rows_written_after_it() {
    // GIVEN a streamed table whose checkpoint is written only every 10 s
    let mut f = Fixture::start_with("ddlcrash", TABLE, None, |b| {
        b.checkpoint_toml("interval_ms = 10000")
    })
    .await;
    f.sql("INSERT INTO t VALUES (5, 'e', 5)").await;
    f.converge().await;

    // WHEN the table is truncated and refilled, and the daemon is killed as soon as the new
    // rows are searchable (well within the checkpoint interval)
    f.sql("TRUNCATE TABLE t; INSERT INTO t VALUES (1, 'a', 10), (3, 'c', 30)")
        .await;
    f.converge().await;
    f.daemon.kill();
    f.daemon.restart().await;
    f.sql("INSERT INTO t VALUES (7, 'g', 70)").await;

    // THEN the replay after the restart does not delete the rows written after the TRUNCATE
    let es = f.env.es();
    let caught_up = wait_until(secs(60), async || es.get(&f.index, "7").await.is_some()).await;
    assert!(
        caught_up,
        "row 7 not indexed:\n{}",
        f.daemon.stderr_tail(30)
    );
    let diff = f.converge().await;
    assert_eq!(diff.rows, 3);
    f.daemon.assert_running();
}

#[tokio::test]
async fn truncate_finds_documents_not_yet_refreshed() {
    // GIVEN an index that refreshes only every 30 s
    let body = json!({"settings": {"index": {"refresh_interval": "30s"}}});
    let mut f = Fixture::start_with("ddlrefresh", TABLE, Some(body), |b| b).await;

    // WHEN rows are written and the table is truncated right after (within the interval)
    f.sql("INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2)").await;
    let es = f.env.es();
    let seen = wait_until(secs(60), async || es.get(&f.index, "2").await.is_some()).await;
    assert!(seen, "row 2 not written:\n{}", f.daemon.stderr_tail(30));
    f.sql("TRUNCATE TABLE t; INSERT INTO t VALUES (3, 'c', 3)")
        .await;

    // THEN the documents written before the TRUNCATE are gone too
    let diff = f.converge().await;
    assert_eq!(diff.rows, 1);
    f.daemon.assert_running();
}

#[tokio::test]
async fn truncate_during_the_initial_copy_leaves_no_copied_document() {
    // GIVEN a table of 20k rows, and a daemon copying it through a proxy to Elasticsearch
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    use mysql_async::prelude::Queryable;
    conn.query_drop("INSERT INTO t SELECT seq, CONCAT('r', seq), seq FROM seq_1_to_20000")
        .await
        .unwrap();
    let index = env.unique_index("ddlcopy");
    let proxy = common::proxy::EsProxy::start(&env.es_url);
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &index)
        .es_url(proxy.url())
        .es_toml("request_timeout = \"2s\"")
        .snapshot_mode("initial")
        .snapshot_toml("chunk_size = 1000")
        .extra_toml("[writer]\nretry_initial_ms = 50\nretry_max_ms = 500")
        .start()
        .await;
    let es = env.es();
    let copying = wait_until(secs(60), async || es.count(&index).await > 0).await;
    assert!(
        copying,
        "the copy did not start:\n{}",
        daemon.stderr_tail(30)
    );

    // WHEN copied documents are held up on their way (bulk requests stall) while the table is
    // truncated and written again, and then go through
    proxy.set(common::proxy::Fault::Stall);
    let stalled = wait_until(secs(30), async || {
        proxy.hits(common::proxy::Fault::Stall) > 0
    })
    .await;
    assert!(stalled, "no bulk request was held up");
    // (The TRUNCATE may wait for the copy's read view to end: run it on the side.)
    let truncate = tokio::spawn(async move {
        conn.query_drop("TRUNCATE TABLE t; INSERT INTO t VALUES (1, 'a', 1), (20001, 'z', 2)")
            .await
            .unwrap();
    });
    wait_until(secs(5), async || {
        daemon.log().contains("Removed the table's documents")
    })
    .await;
    proxy.set(common::proxy::Fault::PassThrough);
    truncate.await.unwrap();

    // THEN no copied document survives the TRUNCATE: the index equals the table, also once
    // the copy has ended
    let diff = wait_until_index_equals_table(env, &mut daemon, &db, "t", &index, secs(120)).await;
    assert_eq!(diff.rows, 2);
    let done = wait_until(secs(120), async || {
        !daemon.cli("status").await.stdout.contains("copying")
    })
    .await;
    assert!(done, "the copy did not end:\n{}", daemon.stderr_tail(30));
    assert_eq!(es.count(&index).await, 2);
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn drop_database_removes_the_documents_of_its_tables() {
    // GIVEN a wildcard rule over a database with two tables, one index each
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    use mysql_async::prelude::Queryable;
    conn.query_drop("CREATE TABLE u (id INT PRIMARY KEY, v INT); INSERT INTO u VALUES (1, 1)")
        .await
        .unwrap();
    let prefix = env.unique_index("ddldropdb");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.*"), &format!("{prefix}-{{table}}"))
        .start()
        .await;
    conn.query_drop("INSERT INTO t VALUES (1, 'a', 1); INSERT INTO u VALUES (2, 2)")
        .await
        .unwrap();
    let es = env.es();
    let (it, iu) = (format!("{prefix}-t"), format!("{prefix}-u"));
    let seen = wait_until(secs(60), async || {
        es.count(&it).await == 1 && es.get(&iu, "2").await.is_some()
    })
    .await;
    assert!(seen, "rows not indexed:\n{}", daemon.stderr_tail(30));

    // … and an index binlog2es did not create, whose name the rule's template could give
    let foreign = format!("{prefix}-other");
    es.put(&foreign, "1", json!({"kept": true})).await;

    // WHEN the database is dropped
    conn.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .unwrap();

    // THEN both tables' documents are gone, and the foreign index is untouched
    let gone = wait_until(secs(60), async || {
        es.count(&it).await == 0 && es.count(&iu).await == 0
    })
    .await;
    assert!(gone, "documents remain:\n{}", daemon.stderr_tail(30));
    assert_eq!(es.count(&foreign).await, 1);
    daemon.assert_running();
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn partition_operations_are_followed() {
    // GIVEN a partitioned table and an unpartitioned twin, both synced
    let env = TestEnv::get();
    let (db, mut conn) = env
        .create_database_with(
            "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, n INT NULL) \
         PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (10), \
         PARTITION p1 VALUES LESS THAN (20), PARTITION p2 VALUES LESS THAN (30))",
        )
        .await;
    use mysql_async::prelude::Queryable;
    conn.query_drop(
        "CREATE TABLE x (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, n INT NULL); \
         INSERT INTO t VALUES (1, 'a', 1), (11, 'b', 2), (21, 'c', 3), (22, 'd', 4); \
         INSERT INTO x VALUES (5, 'x5', 5), (6, 'x6', 6)",
    )
    .await
    .unwrap();
    let prefix = env.unique_index("ddlpart");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.*"), &format!("{prefix}-{{table}}"))
        .snapshot_mode("initial")
        .start()
        .await;
    let (it, ix) = (format!("{prefix}-t"), format!("{prefix}-x"));
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &it, secs(60)).await;
    wait_until_index_equals_table(env, &mut daemon, &db, "x", &ix, secs(60)).await;

    // WHEN partitions are truncated, dropped and exchanged (no row events for any of it)
    conn.query_drop(
        "ALTER TABLE t TRUNCATE PARTITION p1; ALTER TABLE t DROP PARTITION p2; \
         ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE x; INSERT INTO t VALUES (12, 'e', 5)",
    )
    .await
    .unwrap();

    // THEN both indices follow their tables
    let diff = wait_until_index_equals_table(env, &mut daemon, &db, "t", &it, secs(120)).await;
    assert_eq!(diff.rows, 3);
    let diff = wait_until_index_equals_table(env, &mut daemon, &db, "x", &ix, secs(120)).await;
    assert_eq!(diff.rows, 1);
    daemon.assert_running();
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn truncate_with_default_indices_empties_only_that_tables_index() {
    // GIVEN the most common multi-rule config: two rules, both with the default index
    // `{db}.{table}`, so each table has an index of its own
    let env = TestEnv::get();
    let (db, mut conn) = env
        .create_database_with(&format!(
            "{TABLE}; CREATE TABLE u (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, n INT NULL)"
        ))
        .await;
    let mut daemon = Daemon::builder(env)
        .table_toml(&format!("match = \"{db}.t\""))
        .table_toml(&format!("match = \"{db}.u\""))
        .start()
        .await;
    let (index_t, index_u) = (format!("{db}.t"), format!("{db}.u"));
    use mysql_async::prelude::Queryable;
    conn.query_drop(
        "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2); INSERT INTO u VALUES (1, 'x', 1), (3, 'y', 3)",
    )
    .await
    .unwrap();
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index_t, secs(60)).await;
    wait_until_index_equals_table(env, &mut daemon, &db, "u", &index_u, secs(60)).await;

    // WHEN one table is truncated
    conn.query_drop("TRUNCATE TABLE t").await.unwrap();

    // THEN its index is empty, the other table's index is intact, and no false ERROR
    // about a shared index is logged
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index_t, secs(30)).await;
    assert_eq!(env.es().count(&index_t).await, 0);
    assert_index_equals_table(env, &db, "u", &index_u).await;
    assert_eq!(env.es().count(&index_u).await, 2);
    let log = daemon.log();
    assert!(!log.contains("shared with other tables"), "{log}");
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn keyless_table_under_a_wildcard_is_skipped_and_restarts_work() {
    // GIVEN a wildcard rule streaming a keyed table, the operations endpoint on a known port
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    let prefix = env.unique_index("keyless");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.*"), &format!("{prefix}-{{table}}"))
        .http_listen(&format!("127.0.0.1:{port}"))
        .start()
        .await;
    // Where a replay would start: before every statement below.
    let before = daemon.checkpoint();
    let index_t = format!("{prefix}-t");
    let sql = async |conn: &mut mysql_async::Conn, q: &str| {
        use mysql_async::prelude::Queryable;
        conn.query_drop(q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    };

    // WHEN a table without a primary key is created while streaming and written to, between
    // writes to the keyed table
    sql(
        &mut conn,
        "CREATE TABLE k (a INT, b VARCHAR(10)); INSERT INTO k VALUES (1, 'x'), (2, 'y'); \
         INSERT INTO t VALUES (1, 'a', 1); UPDATE k SET b = 'z' WHERE a = 1; \
         INSERT INTO k VALUES (3, 'w'); INSERT INTO t VALUES (2, 'b', 2)",
    )
    .await;

    // THEN the keyed table keeps syncing, the keyless one is not indexed, one WARN names it
    // and its fix, and the metric shows it
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index_t, secs(60)).await;
    assert_eq!(env.es().count(&format!("{prefix}-k")).await, 0);
    let table_k = format!("{db}.k");
    let warns = |log: &str| {
        log.lines()
            .filter(|l| l.contains("WARN") && l.contains(&table_k) && l.contains("no primary key"))
            .count()
    };
    let log = daemon.last_run_log();
    assert_eq!(warns(&log), 1, "{log}");
    assert!(
        log.contains("skip_tables") && log.contains("id_columns"),
        "{log}"
    );
    let series = format!("binlog2es_skipped_tables{{table=\"{table_k}\"}}");
    assert_eq!(metric(&base, &series).await, Some(1.0), "{series}");

    // AND a re-sync of it is refused, naming the fix, and the daemon streams on
    let config = daemon.config_path().display().to_string();
    let out = run_cli(&["resync", "--config", &config, "--table", &table_k]).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.all().contains("no primary key"), "{out}");
    sql(&mut conn, "INSERT INTO t VALUES (5, 'e', 5)").await;
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index_t, secs(60)).await;

    // AND a restart that reads those events again streams on (it used to stop at the same
    // event forever)
    daemon.kill();
    daemon.write_checkpoint(&before);
    daemon.restart().await;
    sql(&mut conn, "INSERT INTO t VALUES (3, 'c', 3)").await;
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index_t, secs(60)).await;
    assert_eq!(
        warns(&daemon.last_run_log()),
        1,
        "{}",
        daemon.last_run_log()
    );

    // AND after DROP TABLE, a replay over the dropped table's events streams on too (it used
    // to fail with a message about binlog_row_metadata)
    sql(&mut conn, "DROP TABLE k").await;
    daemon.kill();
    daemon.write_checkpoint(&before);
    daemon.restart().await;
    sql(&mut conn, "INSERT INTO t VALUES (4, 'd', 4)").await;
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index_t, secs(60)).await;
    let log = daemon.last_run_log();
    assert!(!log.contains("binlog_row_metadata"), "{log}");
    assert_eq!(env.es().count(&format!("{prefix}-k")).await, 0);
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn skip_tables_leave_tables_to_the_next_rule() {
    // GIVEN a wildcard rule skipping scratch tables and an audit table, and a later rule
    // that takes the audit table into an index of its own
    let env = TestEnv::get();
    let (db, mut conn) = env
        .create_database_with(&format!(
            "{TABLE}; CREATE TABLE tmp_a (id INT PRIMARY KEY, v INT); \
             CREATE TABLE audit (id INT PRIMARY KEY, what VARCHAR(20))"
        ))
        .await;
    let prefix = env.unique_index("skip");
    let audit_index = format!("{prefix}-audit-log");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.*"), &format!("{prefix}-{{table}}"))
        .table_lines(&format!("skip_tables = [\"{db}.tmp_*\", \"{db}.audit\"]"))
        .table(&format!("{db}.audit"), &audit_index)
        .start()
        .await;

    // WHEN all three tables are written, the skipped scratch table first
    use mysql_async::prelude::Queryable;
    conn.query_drop(
        "INSERT INTO tmp_a VALUES (1, 1), (2, 2); INSERT INTO audit VALUES (1, 'login'); \
         INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2)",
    )
    .await
    .unwrap();

    // THEN the synced table and the audit table (under the next rule) equal their indices,
    // and the scratch table's rows were never indexed
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &format!("{prefix}-t"), secs(60))
        .await;
    wait_until_index_equals_table(env, &mut daemon, &db, "audit", &audit_index, secs(60)).await;
    let es = env.es();
    assert_eq!(es.count(&format!("{prefix}-tmp_a")).await, 0);
    assert_eq!(es.count(&format!("{prefix}-audit")).await, 0);
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn initial_copy_sweeps_stale_documents_with_default_indices() {
    // GIVEN two tables under two rules with the default index, and in one index a document
    // from an earlier run whose row no longer exists
    let env = TestEnv::get();
    let (db, _conn) = env
        .create_database_with(&format!(
            "{TABLE}; CREATE TABLE u (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL, n INT NULL); \
             INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2); INSERT INTO u VALUES (1, 'x', 1)"
        ))
        .await;
    let (index_t, index_u) = (format!("{db}.t"), format!("{db}.u"));
    let es = env.es();
    let (status, body) = es
        .request(
            reqwest::Method::PUT,
            &format!("/{index_t}/_doc/99?version=1&version_type=external&refresh=true"),
            Some(json!({"id": 99, "name": "gone", "n": null})),
        )
        .await;
    assert!(status < 300, "{status} {body}");

    // WHEN the daemon copies both tables
    let mut daemon = Daemon::builder(env)
        .table_toml(&format!("match = \"{db}.t\""))
        .table_toml(&format!("match = \"{db}.u\""))
        .snapshot_mode("initial")
        .start()
        .await;

    // THEN the copy's sweep removes the stale document: each index equals its table
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index_t, secs(60)).await;
    wait_until_index_equals_table(env, &mut daemon, &db, "u", &index_u, secs(60)).await;
    assert_eq!(daemon.terminate().await, 0);
}
