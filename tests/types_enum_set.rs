//! ENUM → its label (`""` for MySQL's invalid-value index 0), SET → an array of labels in
//! definition order (SPEC §6). Labels come from the table map (binlog_row_metadata=FULL) and,
//! on a server without full metadata, from information_schema.COLUMNS.COLUMN_TYPE.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const ENUM_SET: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, \
    e ENUM('red', 'it''s', 'a,b', 'back\\\\slash', '😀', '') NULL, \
    el ENUM('café', '€uro') CHARACTER SET latin1 NULL, \
    s SET('one', 'two', 'three', 'four') NULL, \
    s64 SET('b0','b1','b2','b3','b4','b5','b6','b7','b8','b9','b10','b11','b12','b13','b14',\
            'b15','b16','b17','b18','b19','b20','b21','b22','b23','b24','b25','b26','b27',\
            'b28','b29','b30','b31','b32','b33','b34','b35','b36','b37','b38','b39','b40',\
            'b41','b42','b43','b44','b45','b46','b47','b48','b49','b50','b51','b52','b53',\
            'b54','b55','b56','b57','b58','b59','b60','b61','b62','b63') NULL\
    ) DEFAULT CHARSET = utf8mb4";

/// The rows every test writes, and the documents they must become.
async fn write_rows(f: &mut Fixture, wide: &str) -> Vec<(&'static str, serde_json::Value)> {
    f.sql(&format!(
        "INSERT INTO t VALUES \
           (1, 'red', 'café', 'one,three', 'b0,b63'), \
           (2, 'it''s', '€uro', 'four,two,one', 'b31,b32'), \
           (3, 'a,b', NULL, '', ''), \
           (4, 'back\\\\slash', 'café', 'two', NULL), \
           (5, '{wide}', NULL, 'one,two,three,four', 'b1'), \
           (6, '', NULL, NULL, NULL), \
           (7, NULL, NULL, NULL, NULL)",
    ))
    .await;
    // Index 0, MySQL's invalid-value marker: a bad label under a non-strict sql_mode.
    f.sql(
        "SET SESSION sql_mode = ''; INSERT INTO t (id, e) VALUES (8, 'no such colour'); \
         SET SESSION sql_mode = DEFAULT",
    )
    .await;
    // An update changes labels in place.
    f.sql("UPDATE t SET e = 'red', s = 'three,one' WHERE id = 3")
        .await;
    vec![
        (
            "1",
            json!({"id": 1, "e": "red", "el": "café", "s": ["one", "three"],
                     "s64": ["b0", "b63"]}),
        ),
        (
            "2",
            json!({"id": 2, "e": "it's", "el": "€uro", "s": ["one", "two", "four"],
                     "s64": ["b31", "b32"]}),
        ),
        (
            "3",
            json!({"id": 3, "e": "red", "el": null, "s": ["one", "three"], "s64": []}),
        ),
        (
            "4",
            json!({"id": 4, "e": "back\\slash", "el": "café", "s": ["two"], "s64": null}),
        ),
        (
            "5",
            json!({"id": 5, "e": wide, "el": null, "s": ["one", "two", "three", "four"],
                     "s64": ["b1"]}),
        ),
        (
            "6",
            json!({"id": 6, "e": "", "el": null, "s": null, "s64": null}),
        ),
        (
            "7",
            json!({"id": 7, "e": null, "el": null, "s": null, "s64": null}),
        ),
        (
            "8",
            json!({"id": 8, "e": "", "el": null, "s": null, "s64": null}),
        ),
    ]
}

async fn assert_docs(f: &mut Fixture, expected: &[(&str, serde_json::Value)]) {
    // converge compares with the table read back through SELECT (ENUM as text, SET split).
    f.converge().await;
    for (id, want) in expected {
        let doc = f
            .doc(id)
            .await
            .unwrap_or_else(|| panic!("no document {id}"));
        assert_fields(&doc, want, &format!("document {id}"));
    }
    // SET labels are a JSON array in definition order, as stored.
    assert!(
        f.raw_source("2")
            .await
            .contains(r#""s":["one","two","four"]"#),
        "{}",
        f.raw_source("2").await
    );
}

#[tokio::test]
async fn enum_and_set_labels_from_the_table_map() {
    // GIVEN a daemon streaming ENUM/SET columns of a server with binlog_row_metadata=FULL
    let mut f = Fixture::start("enumset", ENUM_SET).await;
    // WHEN rows with every kind of label, the empty set, index 0 and NULL are written
    let expected = write_rows(&mut f, "😀").await;
    // THEN each document holds the labels
    assert_docs(&mut f, &expected).await;
    f.daemon.assert_running();
}

#[tokio::test]
async fn enum_and_set_labels_from_the_catalog_without_full_metadata() {
    // GIVEN a MariaDB with binlog_row_metadata=MINIMAL (no ENUM/SET values, no names in the
    // table map) and a daemon streaming from it
    let env = TestEnv::dedicated_static(&["--binlog-row-metadata=MINIMAL"]);
    // MariaDB's information_schema is utf8mb3: a 4-byte label (😀) would read back as '?', so
    // this table uses a 2-byte one (a documented limit of the catalog fallback).
    let mut f = Fixture::start_on(
        env,
        "enumset-minimal",
        &ENUM_SET.replace('😀', "ü"),
        None,
        |b| b,
    )
    .await;
    // WHEN the same rows are written
    let expected = write_rows(&mut f, "ü").await;
    // THEN the labels come from information_schema and the documents are the same
    assert_docs(&mut f, &expected).await;
    f.daemon.assert_running();
}
