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
async fn renamed_table_follows_the_new_names_rule() {
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

    // WHEN the table is renamed and written to under its new name
    conn.query_drop("RENAME TABLE t TO t2; INSERT INTO t2 VALUES (2, 'b', 2)")
        .await
        .unwrap();

    // THEN later changes land in the new name's index; earlier documents stay where they were
    let es = env.es();
    let new_index = format!("{prefix}-t2");
    let moved = wait_until(secs(60), async || es.get(&new_index, "2").await.is_some()).await;
    assert!(
        moved,
        "row 2 not in {new_index}:\n{}",
        daemon.stderr_tail(30)
    );
    assert!(es.get(&format!("{prefix}-t"), "1").await.is_some());
    assert_eq!(daemon.terminate().await, 0);
}
