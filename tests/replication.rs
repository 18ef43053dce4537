//! Row changes stream into documents: inserts, updates, deletes, transactions, keys, NULLs,
//! and one large transaction within a memory cap.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use reqwest::Method;
use serde_json::json;

const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, \
                     n INT NULL, note TEXT NULL) DEFAULT CHARSET = utf8mb4";

#[tokio::test]
async fn harness_starts_the_servers() {
    let env = TestEnv::get();
    let mut admin = env.mysql().await;
    let one: Option<i64> = admin.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
    // The daemon's account can connect and see the binlog.
    let opts = mysql_async::Opts::from_url(&env.daemon_url).unwrap();
    let mut daemon_conn = mysql_async::Conn::new(opts).await.unwrap();
    let log_bin: Option<i64> = daemon_conn.query_first("SELECT @@log_bin").await.unwrap();
    assert_eq!(log_bin, Some(1));
    assert!(env.binlog_file().await.contains('.'));
    let (status, body) = env.es().request(Method::GET, "/", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["version"]["number"].is_string(), "{body}");
}

#[tokio::test]
async fn harness_compare_reports_missing_extra_and_different() {
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    conn.query_drop("INSERT INTO t VALUES (1, 'a', 1, NULL), (2, 'b', 2, 'x'), (3, 'c', 3, 'y')")
        .await
        .unwrap();
    let (es, index) = (env.es(), env.unique_index("harness"));
    es.put(
        &index,
        "1",
        json!({"id": 1, "name": "a", "n": 1.0, "note": null}),
    )
    .await;
    es.put(
        &index,
        "2",
        json!({"id": 2, "name": "B", "n": 2, "note": "x"}),
    )
    .await;
    es.put(&index, "4", json!({"id": 4})).await;
    assert!(wait_until(secs(10), async || es.count(&index).await == 3).await);

    let diff = compare(env, &mut conn, &db, "t", &index).await;
    assert_eq!(diff.missing, ["3"], "{diff}");
    assert_eq!(diff.extra, ["4"], "{diff}");
    assert_eq!(diff.different.len(), 1, "{diff}");
    assert_eq!(diff.different[0].0, "2", "{diff}");

    conn.query_drop(
        "UPDATE t SET name = 'B' WHERE id = 2; DELETE FROM t WHERE id = 3; \
                     INSERT INTO t (id, name) VALUES (4, 'd')",
    )
    .await
    .unwrap();
    es.put(
        &index,
        "4",
        json!({"id": 4, "name": "d", "n": null, "note": null}),
    )
    .await;
    assert_index_equals_table(env, &db, "t", &index).await;
}

#[tokio::test]
async fn single_row_insert_update_delete() {
    // GIVEN a daemon streaming an empty table
    let mut f = Fixture::start("single", TABLE).await;

    // WHEN a row is inserted THEN its document appears with every column
    f.sql("INSERT INTO t VALUES (1, 'first', 10, 'note'), (2, 'second', 20, NULL)")
        .await;
    f.converge().await;
    assert_eq!(
        f.doc("1").await,
        Some(json!({"id": 1, "name": "first", "n": 10, "note": "note"}))
    );

    // WHEN a row is updated THEN its document follows
    f.sql("UPDATE t SET name = 'changed', n = n + 1 WHERE id = 1")
        .await;
    f.converge().await;
    assert_eq!(f.doc("1").await.unwrap()["name"], "changed");

    // WHEN a row is deleted THEN its document is gone and the other stays
    f.sql("DELETE FROM t WHERE id = 1").await;
    f.converge().await;
    assert_eq!(f.doc("1").await, None);
    assert!(f.doc("2").await.is_some());
}

#[tokio::test]
async fn key_changing_update_moves_the_document() {
    let mut f = Fixture::start("rekey", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'row', 1, NULL)").await;
    f.converge().await;

    f.sql("UPDATE t SET id = 2 WHERE id = 1").await;

    f.converge().await;
    assert_eq!(f.doc("1").await, None);
    assert_eq!(
        f.doc("2").await,
        Some(json!({"id": 2, "name": "row", "n": 1, "note": null}))
    );
}

#[tokio::test]
async fn transaction_applies_its_last_state_and_rollback_leaves_no_trace() {
    // GIVEN a daemon streaming a table with some rows
    let mut f = Fixture::start("txn", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'one', 1, NULL), (2, 'two', 2, NULL), (3, 'three', 3, NULL)")
        .await;
    f.converge().await;

    // WHEN one transaction changes the same rows several times
    f.sql(
        "BEGIN; \
         INSERT INTO t VALUES (4, 'four', 4, 'new'); \
         UPDATE t SET n = 10 WHERE id = 1; \
         UPDATE t SET n = 11, note = 'twice' WHERE id = 1; \
         DELETE FROM t WHERE id = 2; \
         INSERT INTO t VALUES (2, 'two again', 22, NULL); \
         UPDATE t SET id = 30 WHERE id = 3; \
         UPDATE t SET name = 'moved' WHERE id = 30; \
         DELETE FROM t WHERE id = 4; \
         INSERT INTO t VALUES (5, 'five', 5, NULL); \
         UPDATE t SET n = n * 2; \
         COMMIT",
    )
    .await;
    // AND another transaction is rolled back, followed by a marker row
    f.sql(
        "BEGIN; INSERT INTO t VALUES (100, 'ghost', 0, NULL); \
         UPDATE t SET name = 'ghost' WHERE id = 1; DELETE FROM t WHERE id = 5; ROLLBACK",
    )
    .await;
    f.sql("INSERT INTO t VALUES (6, 'marker', 6, NULL)").await;

    // THEN the index holds the committed end state only
    f.converge().await;
    assert_eq!(
        f.doc("1").await,
        Some(json!({"id": 1, "name": "one", "n": 22, "note": "twice"}))
    );
    assert_eq!(f.doc("2").await.unwrap()["name"], "two again");
    assert_eq!(f.doc("3").await, None);
    assert_eq!(f.doc("4").await, None);
    assert_eq!(f.doc("30").await.unwrap()["name"], "moved");
    assert_eq!(f.doc("100").await, None);
    assert!(f.doc("5").await.is_some());
}

#[tokio::test]
async fn two_tables_stream_into_two_indices() {
    // GIVEN one daemon with a rule per table
    let env = TestEnv::get();
    let ddl = format!("{TABLE}; CREATE TABLE u (id INT PRIMARY KEY, label VARCHAR(20))");
    let (db, mut conn) = env.create_database_with(&ddl).await;
    let (index_t, index_u) = (env.unique_index("two-t"), env.unique_index("two-u"));
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &index_t)
        .table(&format!("{db}.u"), &index_u)
        .start()
        .await;

    // WHEN both tables change, also within one transaction
    conn.query_drop(
        "INSERT INTO t VALUES (1, 't1', 1, NULL); INSERT INTO u VALUES (1, 'u1'), (2, 'u2'); \
         BEGIN; UPDATE t SET name = 't1b' WHERE id = 1; DELETE FROM u WHERE id = 1; \
         INSERT INTO t VALUES (2, 't2', 2, 'x'); COMMIT",
    )
    .await
    .unwrap();

    // THEN each index equals its table, and nothing crossed over
    for (table, index) in [("t", &index_t), ("u", &index_u)] {
        wait_until_index_equals_table(env, &mut daemon, &db, table, index, secs(120)).await;
    }
    assert_eq!(
        env.es().get(&index_u, "2").await,
        Some(json!({"id": 2, "label": "u2"}))
    );
}

#[tokio::test]
async fn composite_primary_key_joins_values_with_colons() {
    let ddl = "CREATE TABLE t (a INT NOT NULL, b VARCHAR(20) NOT NULL, v INT, PRIMARY KEY (b, a))";
    let mut f = Fixture::start("composite", ddl).await;

    f.sql(r"INSERT INTO t VALUES (1, 'x', 1), (2, 'x', 2), (1, 'a:b', 3), (1, 'c\\d', 4)")
        .await;
    f.sql("UPDATE t SET a = 3 WHERE a = 2 AND b = 'x'").await;

    // Key order is the primary key's (b, a), and ':' and '\' inside values are escaped.
    f.converge().await;
    assert_eq!(f.doc("x:1").await, Some(json!({"a": 1, "b": "x", "v": 1})));
    assert_eq!(f.doc("x:3").await.unwrap()["v"], 2);
    assert_eq!(f.doc("x:2").await, None);
    assert_eq!(f.doc(r"a\:b:1").await.unwrap()["v"], 3);
    assert_eq!(f.doc(r"c\\d:1").await.unwrap()["v"], 4);
}

#[tokio::test]
async fn null_values_are_present_as_null() {
    let ddl = "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(10), i BIGINT, d DOUBLE, x TEXT)";
    let mut f = Fixture::start("nulls", ddl).await;

    f.sql("INSERT INTO t VALUES (1, NULL, NULL, NULL, NULL), (2, 'b', 2, 2.5, 'x')")
        .await;
    f.sql("UPDATE t SET s = NULL, i = NULL, d = NULL, x = NULL WHERE id = 2")
        .await;
    f.sql("INSERT INTO t VALUES (3, 'c', 3, 0.1, 'y'); UPDATE t SET s = 'set' WHERE id = 1")
        .await;

    f.converge().await;
    let all_null = json!({"id": 2, "s": null, "i": null, "d": null, "x": null});
    assert_eq!(f.doc("2").await, Some(all_null));
    assert_eq!(
        f.doc("1").await,
        Some(json!({"id": 1, "s": "set", "i": null, "d": null, "x": null}))
    );
    assert_eq!(f.doc("3").await.unwrap()["d"], 0.1);
}

/// `(SELECT 0 AS d UNION ALL … SELECT 9) alias`: ten rows, plain SQL for MariaDB and MySQL.
fn digits(alias: &str) -> String {
    let rest: String = (1..10).map(|d| format!(" UNION ALL SELECT {d}")).collect();
    format!("(SELECT 0 AS d{rest}) {alias}")
}

#[tokio::test]
async fn large_transaction_streams_within_the_memory_cap() {
    const ROWS: u64 = 100_000;
    const CAP_KIB: u64 = 512 * 1024;
    // GIVEN a daemon streaming an empty table
    let mut f = Fixture::start("large", TABLE).await;

    // WHEN one statement (one transaction) inserts 100k rows
    let n = "(1 + d1.d + 10 * d2.d + 100 * d3.d + 1000 * d4.d + 10000 * d5.d)";
    f.sql(&format!(
        "INSERT INTO t (id, name, n, note) \
         SELECT {n}, CONCAT('name-', {n}), {n} % 1000, IF({n} % 10 = 0, NULL, REPEAT('x', 100)) \
         FROM {} CROSS JOIN {} CROSS JOIN {} CROSS JOIN {} CROSS JOIN {}",
        digits("d1"),
        digits("d2"),
        digits("d3"),
        digits("d4"),
        digits("d5")
    ))
    .await;

    // THEN the index equals the table and the daemon's peak RSS stayed under the cap
    let diff = f.converge_within(secs(300)).await;
    assert_eq!(diff.rows as u64, ROWS);
    let peak = f.daemon.peak_rss_kib().expect("VmHWM of the daemon");
    println!(
        "large transaction: rows={ROWS} peak_rss={} MiB now_rss={} MiB",
        peak / 1024,
        f.daemon.rss_kib().unwrap_or(0) / 1024
    );
    assert!(
        peak < CAP_KIB,
        "peak RSS {} MiB >= {} MiB",
        peak / 1024,
        CAP_KIB / 1024
    );
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn minimal_row_metadata_takes_column_names_from_information_schema() {
    // GIVEN a MariaDB of its own with binlog_row_metadata=MINIMAL (no column names in the
    // binlog) and a daemon streaming a table of it
    let env = TestEnv::dedicated(&["--binlog-row-metadata=MINIMAL"]);
    let mut admin = env.mysql().await;
    let metadata: Option<String> = admin
        .query_first("SELECT @@binlog_row_metadata")
        .await
        .unwrap();
    assert_eq!(metadata.as_deref(), Some("MINIMAL"));
    let ddl = "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), n INT)";
    let (db, mut conn) = env.create_database_with(ddl).await;
    let index = env.unique_index("minimal");
    let mut daemon = Daemon::builder(&env)
        .table(&format!("{db}.t"), &index)
        .start()
        .await;

    // WHEN rows are written
    conn.query_drop(
        "INSERT INTO t VALUES (1, 'a', 10), (2, 'b', 20); UPDATE t SET n = 11 WHERE id = 1",
    )
    .await
    .unwrap();

    // THEN the documents carry the real column names
    wait_until_index_equals_table(&env, &mut daemon, &db, "t", &index, secs(60)).await;
    let es = env.es();
    assert_eq!(
        es.get(&index, "1").await,
        Some(json!({"id": 1, "name": "a", "n": 11}))
    );

    // WHEN a column is added and later rows are written
    conn.query_drop(
        "ALTER TABLE t ADD COLUMN extra INT; \
         INSERT INTO t VALUES (3, 'c', 30, 300); UPDATE t SET n = 21, extra = 2 WHERE id = 2",
    )
    .await
    .unwrap();

    // THEN they include the new column (names were refreshed when the table map changed)
    let arrived = wait_until(secs(60), async || {
        daemon.assert_running();
        es.get(&index, "3").await.is_some()
            && es.get(&index, "2").await.is_some_and(|d| d["n"] == 21)
    })
    .await;
    assert!(arrived, "rows written after the ALTER did not arrive");
    assert_eq!(
        es.get(&index, "3").await,
        Some(json!({"id": 3, "name": "c", "n": 30, "extra": 300}))
    );
    assert_eq!(
        es.get(&index, "2").await,
        Some(json!({"id": 2, "name": "b", "n": 21, "extra": 2}))
    );
    assert_eq!(
        es.get(&index, "1").await,
        Some(json!({"id": 1, "name": "a", "n": 11})),
        "a row not written since the ALTER changed"
    );
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn check_warns_about_minimal_row_metadata() {
    // GIVEN a MariaDB of its own with binlog_row_metadata=MINIMAL
    let env = TestEnv::dedicated(&["--binlog-row-metadata=MINIMAL"]);
    let (db, _conn) = env
        .create_database_with("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))")
        .await;
    let daemon = Daemon::builder(&env)
        .table(&format!("{db}.t"), &env.unique_index("minimal-check"))
        .build();

    // WHEN `check` runs
    let out = daemon.cli("check").await;

    // THEN it passes, with a warning line about binlog_row_metadata
    assert_eq!(out.code, 0, "{out}");
    let warning = out.all().lines().any(|line| {
        line.to_lowercase().contains("warning") && line.contains("binlog_row_metadata")
    });
    assert!(warning, "no warning about binlog_row_metadata: {out}");
}
