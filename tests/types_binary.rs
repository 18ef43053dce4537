//! BINARY(n), VARBINARY and BLOB types with the binary collation become base64 (standard
//! alphabet, padded; BINARY(n) keeps its zero padding), TEXT types with a text collation stay
//! strings (SPEC §6): with the collations from the table map (binlog_row_metadata=FULL) and
//! from information_schema when the table map has none (binary columns have no
//! COLLATION_NAME there; they are collation 63).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const BINARY_TABLE: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, \
    b4 BINARY(4) NULL, \
    vb VARBINARY(16) NULL, \
    tb TINYBLOB NULL, \
    bl BLOB NULL, \
    mb MEDIUMBLOB NULL, \
    lb LONGBLOB NULL, \
    tt TINYTEXT NULL, \
    tx TEXT NULL, \
    lt LONGTEXT CHARACTER SET latin1 NULL\
    ) DEFAULT CHARSET = utf8mb4";

async fn write_and_check(f: &mut Fixture) {
    f.sql(
        "INSERT INTO t VALUES \
           (1, X'61', X'00FF', X'', X'DEADBEEF', X'000000', X'F09F9880', 'tiny', 'é 😀', X'80'), \
           (2, X'00000001', '', 'a', 'ab', 'abc', 'abcd', '', '', ''), \
           (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await;
    f.converge().await;
    let expected = [
        (
            "1",
            json!({"id": 1, "b4": "YQAAAA==", "vb": "AP8=", "tb": "", "bl": "3q2+7w==",
                   "mb": "AAAA", "lb": "8J+YgA==", "tt": "tiny", "tx": "é 😀", "lt": "€"}),
        ),
        (
            "2",
            json!({"id": 2, "b4": "AAAAAQ==", "vb": "", "tb": "YQ==", "bl": "YWI=",
                   "mb": "YWJj", "lb": "YWJjZA==", "tt": "", "tx": "", "lt": ""}),
        ),
        (
            "3",
            json!({"id": 3, "b4": null, "vb": null, "tb": null, "bl": null, "mb": null,
                   "lb": null, "tt": null, "tx": null, "lt": null}),
        ),
    ];
    for (id, want) in &expected {
        let doc = f
            .doc(id)
            .await
            .unwrap_or_else(|| panic!("no document {id}"));
        assert_fields(&doc, want, &format!("document {id}"));
    }
}

#[tokio::test]
async fn binary_columns_are_base64_and_text_columns_strings() {
    // GIVEN a daemon streaming binary and text columns (collations in the table map)
    let mut f = Fixture::start("binary", BINARY_TABLE).await;
    // WHEN / THEN
    write_and_check(&mut f).await;
    f.daemon.assert_running();
}

#[tokio::test]
async fn binary_columns_are_base64_with_collations_from_the_catalog() {
    // GIVEN a MariaDB writing no optional metadata at all (binlog_row_metadata=NO_LOG: no
    // names, no charsets in the table map), so collations come from information_schema
    let env = TestEnv::dedicated_static(&["--binlog-row-metadata=NO_LOG"]);
    let mut f = Fixture::start_on(env, "binary-catalog", BINARY_TABLE, None, |b| b).await;
    // WHEN / THEN the documents are the same
    write_and_check(&mut f).await;
    f.daemon.assert_running();
}
