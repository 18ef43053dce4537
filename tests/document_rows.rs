//! SPEC §9 rules without relations, end to end: fields (include/exclude/rename), rows
//! (`where`, `where_null`), routing, the initial copy, `verify`, and a rule that does not fit
//! its table (`check`, `run`). Expected documents are the rule applied to MySQL's rows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{Map, Value as Json, json};

const TABLE: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, title VARCHAR(40), secret VARCHAR(40), \
    status VARCHAR(20), author_id INT, deleted_at DATETIME NULL, updated_at DATETIME\
    ) DEFAULT CHARSET = utf8mb4";

const RULE: &str = "include_columns = [\"id\", \"title\", \"secret\", \"status\", \"author_id\", \"updated_at\"]\n\
    exclude_columns = [\"secret\"]\n\
    rename = { updated_at = \"updated\", author_id = \"author\" }\n\
    where = { status = [\"published\", \"featured\"] }\n\
    where_null = [\"deleted_at\"]\n\
    routing = \"author_id\"";

/// The rule `RULE` applied to one row's §6 document: `None` when the row is no document.
fn shaped(row: &Json) -> Option<Json> {
    let status = row["status"].as_str()?;
    if !["published", "featured"].contains(&status) || !row["deleted_at"].is_null() {
        return None;
    }
    let mut doc = Map::new();
    for (column, field) in [
        ("id", "id"),
        ("title", "title"),
        ("status", "status"),
        ("author_id", "author"),
        ("updated_at", "updated"),
    ] {
        doc.insert(field.into(), row[column].clone());
    }
    Some(Json::Object(doc))
}

/// The documents the rule gives for `db.t`'s current rows.
async fn expected(f: &Fixture) -> Docs {
    let mut conn = f.env.mysql().await;
    table_rows(&mut conn, &f.db, "t")
        .await
        .into_iter()
        .filter_map(|(id, row)| shaped(&row).map(|d| (id, d)))
        .collect()
}

/// Waits until the index holds exactly the rule's documents; panics with the diff.
async fn converge(f: &mut Fixture) {
    let deadline = Instant::now() + secs(120);
    loop {
        f.daemon.assert_running();
        let want = expected(f).await;
        let diff = diff_docs(&want, &f.env.es().docs(&f.index).await);
        if diff.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "index != rule on table: {diff}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every hit of the index as `_id` → `_routing` (`None`: no routing).
async fn routings(f: &Fixture) -> Vec<(String, Option<String>)> {
    let es = f.env.es();
    es.refresh(&f.index).await;
    let (status, body) = es
        .request(
            Method::POST,
            &format!("/{}/_search", f.index),
            Some(json!({"size": 1000, "sort": ["_doc"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut out: Vec<(String, Option<String>)> = body["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["_id"].as_str().unwrap().to_owned(),
                h["_routing"].as_str().map(str::to_owned),
            )
        })
        .collect();
    out.sort();
    out
}

async fn start(prefix: &str) -> Fixture {
    Fixture::start_with(prefix, TABLE, None, |b| b.table_lines(RULE)).await
}

const ROWS: &str = "INSERT INTO t VALUES \
    (1, 'one', 's1', 'published', 7, NULL, '2024-01-01 10:00:00'), \
    (2, 'two', 's2', 'draft', 7, NULL, '2024-01-02 10:00:00'), \
    (3, 'three', 's3', 'featured', 8, NULL, '2024-01-03 10:00:00'), \
    (4, 'four', 's4', 'published', NULL, NULL, '2024-01-04 10:00:00'), \
    (5, 'five', 's5', 'published', 9, '2024-02-01 00:00:00', '2024-01-05 10:00:00')";

#[tokio::test]
async fn fields_are_selected_renamed_and_routed() {
    // GIVEN a rule that selects, renames, filters and routes
    let mut f = start("docrows_fields").await;

    // WHEN rows are inserted
    f.sql(ROWS).await;

    // THEN the index holds the shaped matching rows only, each under its author's routing
    converge(&mut f).await;
    let doc = f.doc("1").await.unwrap();
    assert_eq!(
        doc,
        json!({"id": 1, "title": "one", "status": "published", "author": 7,
               "updated": "2024-01-01T10:00:00"})
    );
    assert_eq!(
        routings(&f).await,
        [
            ("1".into(), Some("7".into())),
            ("3".into(), Some("8".into())),
            ("4".into(), None),
        ]
    );
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn rows_that_stop_or_start_matching_are_deleted_or_indexed() {
    // GIVEN the shaped index of some rows
    let mut f = start("docrows_where").await;
    f.sql(ROWS).await;
    converge(&mut f).await;

    // WHEN a published row becomes a draft, a draft is published, and a row is soft-deleted
    f.sql("UPDATE t SET status = 'draft' WHERE id = 1").await;
    f.sql("UPDATE t SET status = 'published' WHERE id = 2")
        .await;
    f.sql("UPDATE t SET deleted_at = '2024-03-01 00:00:00' WHERE id = 3")
        .await;
    // and a soft-deleted row is restored, and a matching row is deleted
    f.sql("UPDATE t SET deleted_at = NULL WHERE id = 5").await;
    f.sql("DELETE FROM t WHERE id = 4").await;

    // THEN the documents follow: 1 and 3 gone, 2 and 5 there, 4 gone
    converge(&mut f).await;
    let ids: Vec<String> = routings(&f).await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["2", "5"]);
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn a_routing_change_moves_the_document() {
    // GIVEN a routed document
    let mut f = start("docrows_route").await;
    f.sql(ROWS).await;
    converge(&mut f).await;

    // WHEN its routing column changes, and another's becomes NULL
    f.sql("UPDATE t SET author_id = 42 WHERE id = 1").await;
    f.sql("UPDATE t SET author_id = NULL WHERE id = 3").await;

    // THEN each is written once, under its new routing (none for NULL), the old one gone
    converge(&mut f).await;
    let es = f.env.es();
    let want = vec![
        ("1".to_owned(), Some("42".to_owned())),
        ("3".to_owned(), None),
        ("4".to_owned(), None),
    ];
    let ok = wait_until(secs(30), async || routings(&f).await == want).await;
    assert!(ok, "routings {:?}", routings(&f).await);
    assert_eq!(es.count(&f.index).await, 3);
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn the_initial_copy_applies_the_rule() {
    // GIVEN rows written before the daemon ever ran
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    mysql_async::prelude::Queryable::query_drop(&mut conn, ROWS)
        .await
        .unwrap();
    let index = env.unique_index("docrows_copy");

    // WHEN the daemon starts with an initial copy
    let daemon = Daemon::builder(env)
        .snapshot_mode("initial")
        .table(&format!("{db}.t"), &index)
        .table_lines(RULE)
        .start()
        .await;
    let mut f = Fixture {
        env,
        db,
        conn,
        index,
        daemon,
    };

    // THEN the copy wrote the shaped, routed matching rows only
    converge(&mut f).await;
    assert_eq!(
        routings(&f).await,
        [
            ("1".into(), Some("7".into())),
            ("3".into(), Some("8".into())),
            ("4".into(), None),
        ]
    );
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn verify_compares_shaped_documents() {
    // GIVEN a converged shaped index
    let mut f = start("docrows_verify").await;
    f.sql(ROWS).await;
    converge(&mut f).await;

    // WHEN verify runs
    let out = f.daemon.cli("verify").await;

    // THEN all is equal (5 rows read, the 2 that are no documents not expected)
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("5 rows checked, 0 missing, 0 extra, 0 different"),
        "{out}"
    );

    // WHEN a document is tampered with and one is written for a row that is no document
    let es = f.env.es();
    let (status, body) = es
        .request(
            Method::PUT,
            &format!("/{}/_doc/1?routing=7", f.index),
            Some(
                json!({"id": 1, "title": "tampered", "status": "published", "author": 7,
                        "updated": "2024-01-01T10:00:00"}),
            ),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    let (status, body) = es
        .request(
            Method::PUT,
            &format!("/{}/_doc/2?routing=7", f.index),
            Some(json!({"id": 2})),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    es.refresh(&f.index).await;

    // THEN verify reports them and exits 1
    let out = f.daemon.cli("verify").await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("1 extra, 1 different"), "{out}");

    // WHEN --repair runs while the checkpoint is still at the insert
    let config = f.daemon.config_path().display().to_string();
    let repair = async || run_cli(&["verify", "--repair", "--config", &config]).await;
    let first = repair().await;

    // THEN the extra document is deleted (under its routing), the hand-edited one is left
    // alone (its version moved past the checkpoint's)
    assert_eq!(first.code, 1, "{first}");
    assert!(first.stdout.contains("1 repaired"), "{first}");
    assert!(first.stdout.contains("1 not repaired"), "{first}");

    // WHEN the checkpoint moves on (a transaction on a table not synced) and --repair runs
    // again
    let before = f.daemon.checkpoint()["version"].as_u64().unwrap();
    f.sql("CREATE TABLE other (id INT PRIMARY KEY); INSERT INTO other VALUES (1)")
        .await;
    let advanced = wait_until(secs(60), async || {
        f.daemon.checkpoint()["version"].as_u64().unwrap() > before
    })
    .await;
    assert!(advanced, "{}", f.daemon.checkpoint());
    let second = repair().await;
    assert_eq!(second.code, 0, "{second}");

    // THEN the index holds the rule's documents with their routing, and verify agrees
    converge(&mut f).await;
    assert_eq!(
        routings(&f).await,
        [
            ("1".into(), Some("7".into())),
            ("3".into(), Some("8".into())),
            ("4".into(), None),
        ]
    );
    assert_eq!(f.daemon.cli("verify").await.code, 0);
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn a_rule_naming_a_missing_column_fails_check_and_run() {
    // GIVEN a rule whose include_columns names a column the table does not have
    let env = TestEnv::get();
    let (db, _conn) = env.create_database_with(TABLE).await;
    let index = env.unique_index("docrows_bad");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &index)
        .table_lines("include_columns = [\"id\", \"nope\"]")
        .build();

    // WHEN check runs, THEN it names the key and the column
    let out = daemon.cli("check").await;
    assert_ne!(out.code, 0, "{out}");
    assert!(out.all().contains("tables[0].include_columns"), "{out}");
    assert!(out.all().contains("`nope`"), "{out}");

    // WHEN run meets the table's first row, THEN it stops with the same message (exit 2)
    daemon.restart().await;
    let mut conn = env.mysql_db(&db).await;
    mysql_async::prelude::Queryable::query_drop(&mut conn, ROWS)
        .await
        .unwrap();
    let code = daemon.wait_exit(secs(60)).await;
    assert_eq!(code, 2, "{}", daemon.stderr_tail(30));
    let log = daemon.log();
    assert!(log.contains("tables[0].include_columns"), "{log}");
    assert!(log.contains("`nope`"), "{log}");
}

#[tokio::test]
async fn check_resolves_relations_against_the_catalog() {
    // GIVEN a rule joining one table by its key and another by a column that is no key
    let env = TestEnv::get();
    let (db, _conn) = env
        .create_database_with(
            "CREATE TABLE t (id INT PRIMARY KEY, author_id INT, editor_code INT); \
             CREATE TABLE user (id INT PRIMARY KEY, code INT, name VARCHAR(20), UNIQUE KEY (name))",
        )
        .await;
    let index = env.unique_index("docrows_check");
    let join = |field: &str, table: &str, on: &str| {
        format!("[[tables.join]]\nfield = \"{field}\"\ntable = \"{table}\"\non = {{ {on} }}")
    };
    let daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &index)
        .table_lines(&join("author", "user", "author_id = \"id\""))
        .table_lines(&join("editor", "user", "editor_code = \"code\""))
        .build();

    // WHEN check runs, THEN the second join is a warning naming its key, and nothing fails
    let out = daemon.cli("check").await;
    assert!(out.all().contains("tables[0].join[1].on"), "{out}");
    assert!(!out.all().contains("tables[0].join[0].on"), "{out}");
    assert!(
        out.all().contains("not its primary key or a unique key"),
        "{out}"
    );
    assert!(out.all().contains("2 relation(s) fit"), "{out}");

    // GIVEN a rule naming a table and an `on` column that do not exist
    for (relation, key) in [
        (
            join("author", "nobody", "author_id = \"id\""),
            "tables[0].join[0].table",
        ),
        (
            join("author", "user", "author_id = \"uid\""),
            "tables[0].join[0].on",
        ),
    ] {
        let daemon = Daemon::builder(env)
            .table(&format!("{db}.t"), &index)
            .table_lines(&relation)
            .build();

        // WHEN check runs, THEN it fails naming the key
        let out = daemon.cli("check").await;
        assert_ne!(out.code, 0, "{out}");
        assert!(out.all().contains(key), "{key}: {out}");
    }
}
