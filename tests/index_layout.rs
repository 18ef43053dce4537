//! Index layout and drift (SPEC §10): a new index is the physical `NAME-1` behind the alias
//! `NAME`, its `_meta` records the rule's fingerprint; an index that no longer matches its
//! rule is reported by `check` and at start-up with the command that rebuilds it; a new
//! column is added in place and is no drift; an index from before fingerprints is stamped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use binlog2es::config::Config;
use binlog2es::writer::index::index_fingerprint;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, title VARCHAR(40), n INT)";

/// The fingerprint the daemon's configuration gives its (one) rule's index.
fn expected_fingerprint(daemon: &Daemon, index: &str) -> String {
    let config = Config::load(&daemon.config_path()).unwrap();
    index_fingerprint(&config, &config.tables[0], index)
}

/// `GET /_alias/NAME`: status and answer.
async fn aliases(es: &Es, index: &str) -> (u16, Value) {
    es.request(Method::GET, &format!("/_alias/{index}"), None)
        .await
}

/// The drift report of `index` for the daemon's configuration file, as `check` and the log
/// give it, after `what differs`.
fn report(daemon: &Daemon, index: &str, what: &str) -> String {
    format!(
        "Index `{index}` no longer matches its rule ({what}); rebuild it with: binlog2es \
         reindex --config {} --index {index}",
        daemon.config_path().display()
    )
}

/// Appends `lines` to the configuration file (the table rule is its last section).
fn change_rule(daemon: &Daemon, lines: &str) {
    let path = daemon.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}{lines}\n")).unwrap();
}

#[tokio::test]
async fn a_new_index_is_its_first_generation_behind_an_alias() {
    // GIVEN a table streamed into an index that does not exist yet
    let mut f = Fixture::start("layout", TABLE).await;
    let es = f.env.es();

    // WHEN rows are written
    f.sql("INSERT INTO t VALUES (1, 'one', 1), (2, 'two', 2), (3, NULL, NULL)")
        .await;
    f.sql("UPDATE t SET title = 'deux' WHERE id = 2; DELETE FROM t WHERE id = 3")
        .await;

    // THEN the documents equal the rows, read through the name
    let diff = f.converge().await;
    assert!(diff.is_empty(), "{diff:?}");

    // AND the name is an alias of `NAME-1`, which holds them
    let physical = format!("{}-1", f.index);
    let (status, answer) = aliases(&es, &f.index).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({ &physical: {"aliases": { &f.index: {} }} }),
        "{answer}"
    );
    assert_eq!(es.count(&physical).await, 2);

    // AND its _meta records the rule's fingerprint next to the owner
    let mapping = es.mapping(&f.index).await.unwrap();
    let meta = &mapping["_meta"];
    assert_eq!(meta["created_by"], "binlog2es", "{mapping}");
    assert_eq!(meta["source_table"], format!("{}.t", f.db), "{mapping}");
    assert_eq!(
        meta["rule_fingerprint"],
        expected_fingerprint(&f.daemon, &f.index),
        "{mapping}"
    );

    // AND check finds nothing to report about it
    let out = f.daemon.cli("check").await;
    assert!(!out.all().contains("no longer matches"), "{out}");
}

/// Streams a row, stops the daemon, applies `change` to the rule and expects `check` and a
/// restarted daemon to report `what` (once), while streaming goes on.
async fn drift_is_reported(prefix: &str, change: &str, what: &str) {
    // GIVEN an index binlog2es created, holding the table's rows
    let mut f = Fixture::start(prefix, TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'one', 1)").await;
    let diff = f.converge().await;
    assert!(diff.is_empty(), "{diff:?}");

    // WHEN the daemon is stopped and its rule changed
    assert_eq!(f.daemon.terminate().await, 0);
    change_rule(&f.daemon, change);

    // THEN check warns about the index, naming what differs and the rebuild command
    let expected = report(&f.daemon, &f.index, what);
    let out = f.daemon.cli("check").await;
    assert!(
        out.stdout
            .contains(&format!("warning index {}: {expected}", f.index)),
        "expected {expected:?} in\n{out}"
    );

    // AND a restarted daemon logs it at start-up, before any change of the table arrives
    f.daemon.restart().await;
    let env = f.env;
    let logged = wait_until(secs(60), async || {
        f.daemon.last_run_log().contains(&expected)
    })
    .await;
    assert!(logged, "{}", f.daemon.last_run_log());
    // AND only once, while it keeps streaming
    f.sql("INSERT INTO t VALUES (2, 'two', 2)").await;
    f.sql("ALTER TABLE t ADD COLUMN extra INT; INSERT INTO t VALUES (3, 'three', 3, 3)")
        .await;
    let found = wait_until(secs(60), async || {
        env.es().get(&f.index, "3").await.is_some()
    })
    .await;
    assert!(found, "{}", f.daemon.last_run_log());
    assert_eq!(
        f.daemon.last_run_log().matches(&expected).count(),
        1,
        "{}",
        f.daemon.last_run_log()
    );
}

#[tokio::test]
async fn a_renamed_field_is_drift() {
    drift_is_reported(
        "driftrename",
        "rename = { n = \"count\" }",
        "its [[tables]] rule changed since the index was created",
    )
    .await;
}

#[tokio::test]
async fn a_mapping_override_of_another_type_is_drift() {
    drift_is_reported(
        "drifttype",
        "mapping = { title = { type = \"keyword\" } }",
        "its [[tables]] rule changed since the index was created; field `title` is `text` in \
         the index, the rule wants `keyword`",
    )
    .await;
}

#[tokio::test]
async fn a_new_column_is_added_in_place_and_is_no_drift() {
    // GIVEN an index binlog2es created
    let mut f = Fixture::start("newcol", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'one', 1)").await;
    assert!(f.converge().await.is_empty());

    // WHEN a column is added and filled (the existing row too: an ALTER alone writes no row)
    f.sql(
        "ALTER TABLE t ADD COLUMN price DECIMAL(8,2); INSERT INTO t VALUES (2, 'two', 2, 9.50); \
         UPDATE t SET price = 1.00 WHERE id = 1",
    )
    .await;

    // THEN the documents equal the rows, and the field was added to the same index
    let diff = f.converge().await;
    assert!(diff.is_empty(), "{diff:?}");
    let es = f.env.es();
    let mapping = es.mapping(&format!("{}-1", f.index)).await.unwrap();
    assert_eq!(
        mapping["properties"]["price"]["type"], "scaled_float",
        "{mapping}"
    );

    // AND neither the daemon nor check, nor a restarted daemon, reports drift
    f.daemon.terminate().await;
    let out = f.daemon.cli("check").await;
    assert!(!out.all().contains("no longer matches"), "{out}");
    f.daemon.restart().await;
    f.sql("INSERT INTO t VALUES (3, 'three', 3, 1.25)").await;
    assert!(f.converge().await.is_empty());
    assert!(
        !f.daemon.log().contains("no longer matches"),
        "{}",
        f.daemon.log()
    );
}

#[tokio::test]
async fn an_index_from_before_fingerprints_is_stamped() {
    // GIVEN a concrete index an earlier version created: ours, without a fingerprint
    let text =
        json!({"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}});
    let old_meta = json!({"created_by": "binlog2es", "binlog2es_version": "0.0.1",
        "source_table": "earlier.t"});
    let body = json!({"mappings": {"_meta": old_meta, "properties": {
        "id": {"type": "long"}, "title": text, "n": {"type": "long"}}}});
    let mut f = Fixture::start_with("stamp", TABLE, Some(body), |b| b).await;

    // WHEN the daemon first meets it
    f.sql("INSERT INTO t VALUES (1, 'one', 1)").await;
    assert!(f.converge().await.is_empty());

    // THEN the current fingerprint is recorded, the rest of _meta kept, and it stays concrete
    let es = f.env.es();
    let mapping = es.mapping(&f.index).await.unwrap();
    let mut meta = old_meta.clone();
    meta["rule_fingerprint"] = json!(expected_fingerprint(&f.daemon, &f.index));
    assert_eq!(mapping["_meta"], meta, "{mapping}");
    assert_eq!(aliases(&es, &f.index).await.0, 404);

    // AND it counts as matching its rule
    assert!(
        !f.daemon.log().contains("no longer matches"),
        "{}",
        f.daemon.log()
    );
    f.daemon.terminate().await;
    let out = f.daemon.cli("check").await;
    assert!(!out.all().contains("no longer matches"), "{out}");
}
