//! JSON columns are written as the JSON value itself (SPEC §6). On MariaDB, JSON is an alias
//! for LONGTEXT with a `json_valid(col)` CHECK constraint: the daemon finds the constraint in
//! information_schema.CHECK_CONSTRAINTS and parses the text. MySQL's binary JSON and partial
//! updates are covered offline by tests/binlog_samples.rs and the decode::json unit tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const JSON_TABLE: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, \
    doc JSON NULL, \
    `odd ``name` JSON NULL, \
    plain LONGTEXT NULL\
    ) DEFAULT CHARSET = utf8mb4";

#[tokio::test]
async fn mariadb_json_columns_are_json_values() {
    // GIVEN a daemon streaming MariaDB JSON columns (and a LONGTEXT without the check);
    // `doc` is mapped as a disabled object so any JSON shape indexes, and `plain` as text
    let mapping = json!({"mappings": {"properties": {
        "doc": {"type": "object", "enabled": false},
        "odd `name": {"type": "object", "enabled": false},
        "plain": {"type": "text"},
    }}});
    let mut f = Fixture::start_with("json", JSON_TABLE, Some(mapping), |b| b).await;

    // WHEN documents of every JSON kind are written, with insignificant whitespace and
    // numbers that a float would round
    f.sql(
        r#"INSERT INTO t VALUES
           (1, '{"a": 1, "b": [true, false, null], "c": {"d": "x\\ny \\"q\\""}}', '[]', '{"a": 1}'),
           (2, '[1, 2.50, -0.0, 12345678901234567890.000001, 1e3]', '"just a string"', NULL),
           (3, '  42  ', 'null', 'not json'),
           (4, '{"emoji": "😀", "tab": "\\t", "nested": [[[]]]}', '{}', ''),
           (5, NULL, NULL, NULL)"#,
    )
    .await;
    f.sql(r#"UPDATE t SET doc = JSON_SET(doc, '$.a', 2, '$.e', 'new') WHERE id = 1"#)
        .await;

    // THEN each document holds the JSON values, not strings
    f.wait_for_count(5).await;
    let expected = [
        (
            "1",
            json!({"id": 1, "doc": {"a": 2, "b": [true, false, null], "c": {"d": "x\ny \"q\""},
                                    "e": "new"},
                   "odd `name": [], "plain": "{\"a\": 1}"}),
        ),
        (
            "2",
            json!({"id": 2, "doc": [1, 2.5, -0.0, 12345678901234567890.000001_f64, 1000.0],
                   "odd `name": "just a string", "plain": null}),
        ),
        (
            "3",
            json!({"id": 3, "doc": 42, "odd `name": null, "plain": "not json"}),
        ),
        (
            "4",
            json!({"id": 4, "doc": {"emoji": "😀", "tab": "\t", "nested": [[[]]]},
                   "odd `name": {}, "plain": ""}),
        ),
        (
            "5",
            json!({"id": 5, "doc": null, "odd `name": null, "plain": null}),
        ),
    ];
    // The update may arrive after the count is reached: wait for its value.
    assert!(
        wait_until(secs(60), async || f
            .doc("1")
            .await
            .is_some_and(|d| d["doc"]["e"] == "new"))
        .await,
        "the JSON_SET update never arrived"
    );
    for (id, want) in &expected {
        let doc = f
            .doc(id)
            .await
            .unwrap_or_else(|| panic!("no document {id}"));
        assert_fields(&doc, want, &format!("document {id}"));
    }

    // AND number digits are kept as MariaDB stored them (no float round trip)
    let raw = f.raw_source("2").await;
    assert!(
        raw.contains("[1,2.50,-0.0,12345678901234567890.000001,1e3]"),
        "{raw}"
    );
    f.daemon.assert_running();
}
