//! `binlog2es verify [--repair]`: compares every configured table with its index and reports
//! (and repairs) missing, extra and different documents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

const TABLE: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, \
    i24 MEDIUMINT, u64 BIGINT UNSIGNED, f FLOAT, d DOUBLE, dec6 DECIMAL(20,6), \
    s VARCHAR(20), l VARCHAR(20) CHARACTER SET latin1, tx TEXT, \
    dt DATE, dt6 DATETIME(6), ts3 TIMESTAMP(3) NULL, tm1 TIME(1), y YEAR, b BIT(5), \
    e ENUM('small','large'), st SET('red','green','blue'), j JSON, \
    bin4 BINARY(4), bl BLOB\
    ) DEFAULT CHARSET = utf8mb4";

const ROWS: &str = "SET time_zone = '+05:00'; INSERT INTO t VALUES \
    (1, -8388608, 18446744073709551615, 0.1, 1e300, 12345678901234.000001, 'héllo', 'café', \
     'long text', '2024-02-29', '2024-02-29 13:45:01.123456', '2024-02-29 13:45:01.5', \
     '-838:59:59.0', 2024, b'10101', 'large', 'red,blue', '{\"a\": [1, 2.5, \"x\"], \"b\": null}', \
     x'0102', x'00ff'), \
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
     NULL, NULL, NULL, NULL, NULL), \
    (3, 5, 0, -1.5, 2.25, 1.50, '', 'x', '', '1999-12-31', '1999-12-31 23:59:59', \
     '1999-12-31 23:59:59', '13:45:01.5', 1999, b'0', 'small', '', '[]', 'abcd', ''), \
    (4, 6, 7, 3, 4, 5, 'd', 'e', 'f', '2000-01-01', '2000-01-01 00:00:00', \
     '2000-01-01 00:00:00', '00:00:00', 2000, b'1', 'small', 'green', '{}', 'wxyz', 'q'), \
    (5, 7, 8, 4, 5, 6, 'g', 'h', 'i', '2001-01-01', '2001-01-01 00:00:00', \
     '2001-01-01 00:00:00', '00:00:01', 2001, b'11', 'large', 'red', '1', 'zzzz', 'r')";

async fn streamed() -> Fixture {
    let mut f = Fixture::start("verify", TABLE).await;
    f.sql(ROWS).await;
    f.wait_for_count(5).await;
    f
}

#[tokio::test]
async fn an_equal_index_verifies_clean() {
    // GIVEN a table with many column types, streamed into its index
    let mut f = streamed().await;

    // WHEN verify runs
    let out = f.daemon.cli("verify").await;

    // THEN it finds nothing and counts every row
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("5 rows checked, 0 missing, 0 extra, 0 different"),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("{}.t -> {}", f.db, f.index)),
        "{out}"
    );
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn tampering_is_reported_then_repaired() {
    // GIVEN a streamed table whose index was tampered with: one document deleted, one field
    // changed, one document without a row
    let mut f = streamed().await;
    let es = f.env.es();
    let (status, body) = es
        .request(Method::DELETE, &format!("/{}/_doc/3", f.index), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let mut doc = es.get(&f.index, "4").await.unwrap();
    doc["s"] = json!("tampered");
    es.put(&f.index, "4", doc).await;
    let mut extra = es.get(&f.index, "5").await.unwrap();
    extra["id"] = json!(99);
    es.put(&f.index, "99", extra).await;
    es.refresh(&f.index).await;

    // WHEN verify runs
    let out = f.daemon.cli("verify").await;

    // THEN it exits 1 naming each id under its kind of difference
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout
            .contains("5 rows checked, 1 missing, 1 extra, 1 different"),
        "{out}"
    );
    assert!(out.stdout.contains("missing: (e.g. 3)"), "{out}");
    assert!(out.stdout.contains("different: (e.g. 4)"), "{out}");
    assert!(out.stdout.contains("extra: (e.g. 99)"), "{out}");

    // WHEN verify --repair runs while the checkpoint is still at the insert
    let config = f.daemon.config_path().display().to_string();
    let repair = async || run_cli(&["verify", "--config", &config, "--repair"]).await;
    let first = repair().await;

    // THEN the extra document is deleted, but the two edited by hand (their versions moved
    // past the checkpoint's) are left alone: a repair never beats a newer version
    assert_eq!(first.code, 1, "{first}");
    assert!(first.stdout.contains("1 repaired"), "{first}");
    assert!(first.stdout.contains("2 not repaired"), "{first}");
    assert!(es.get(&f.index, "99").await.is_none());

    // WHEN the daemon checkpoints a later transaction (one on a table it does not sync),
    // and --repair runs again, then verify
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
    assert!(second.stdout.contains("2 repaired"), "{second}");
    let again = f.daemon.cli("verify").await;

    // THEN the index equals the table, and the daemon still streams over the repaired docs
    assert_eq!(again.code, 0, "{again}");
    assert!(es.get(&f.index, "99").await.is_none());
    assert_eq!(es.get(&f.index, "4").await.unwrap()["s"], json!("d"));
    f.sql("UPDATE t SET s = 'later' WHERE id = 3").await;
    let streamed = wait_until(secs(60), async || {
        es.get(&f.index, "3")
            .await
            .is_some_and(|d| d["s"] == json!("later"))
    })
    .await;
    assert!(streamed, "{:?}", es.get(&f.index, "3").await);
    assert_eq!(f.daemon.cli("verify").await.code, 0);
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn repair_without_a_checkpoint_is_refused() {
    // GIVEN a configuration whose checkpoint does not exist yet
    let env = TestEnv::get();
    let db = env.create_database().await;
    let daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &env.unique_index("nockpt"))
        .build();

    // WHEN verify --repair runs
    let config = daemon.config_path().display().to_string();
    let out = run_cli(&["verify", "--config", &config, "--repair"]).await;

    // THEN it refuses, naming the checkpoint
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("checkpoint"), "{out}");
}

#[tokio::test]
async fn a_bad_configuration_exits_2() {
    // GIVEN a configuration file that does not parse
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[mysql\nurl = ").unwrap();

    // WHEN verify runs with it
    let out = run_cli(&["verify", "--config", &path.display().to_string()]).await;

    // THEN it exits 2 with a message
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("error"), "{out}");
}

#[tokio::test]
async fn a_composite_binary_and_temporal_key_is_checked_by_its_values() {
    // GIVEN a table keyed by VARBINARY and TIMESTAMP (ids whose text MySQL cannot read back:
    // base64 and `…Z`), streamed, with one document deleted from the index
    let mut f = Fixture::start(
        "verifykey",
        "CREATE TABLE t (k VARBINARY(8), at TIMESTAMP(3), v INT, PRIMARY KEY (k, at))",
    )
    .await;
    f.sql(
        "SET time_zone = '+00:00'; INSERT INTO t VALUES \
         (x'00ff', '2024-02-29 13:45:01.5', 1), (x'3a5c', '2001-01-01 00:00:00', 2)",
    )
    .await;
    f.wait_for_count(2).await;
    let es = f.env.es();
    // SPEC §5: composite values joined by `:`, a `:` inside a value escaped by `\`
    let id = r"AP8=:2024-02-29T13\:45\:01.500Z";
    assert!(
        es.get(&f.index, id).await.is_some(),
        "{:?}",
        es.docs(&f.index).await
    );
    let (status, body) = es
        .request(
            Method::DELETE,
            &format!(
                "/{}/_doc/AP8=%3A2024-02-29T13%5C%3A45%5C%3A01.500Z",
                f.index
            ),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // WHEN verify runs
    let out = f.daemon.cli("verify").await;

    // THEN the deleted document is reported missing (not lost when re-checked)
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout
            .contains("2 rows checked, 1 missing, 0 extra, 0 different"),
        "{out}"
    );
    assert!(out.stdout.contains(id), "{out}");
    assert_eq!(f.daemon.terminate().await, 0);
}
