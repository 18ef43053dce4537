//! Documents Elasticsearch rejects are dead-lettered and the stream goes on, or, with
//! `on_rejected = "fail"`, stop the daemon without advancing the checkpoint (SPEC §2.4).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)";

/// An index whose `name` is a `long`: '123' indexes, 'abc' is a mapping error (HTTP 400).
fn name_is_long() -> Value {
    json!({"mappings": {"properties": {"id": {"type": "long"}, "name": {"type": "long"}}}})
}

#[tokio::test]
async fn rejected_documents_are_dead_lettered_and_the_stream_goes_on() {
    // GIVEN a daemon streaming into an index where `name` is a long
    let mut f = Fixture::start_with("dead", TABLE, Some(name_is_long()), |b| b).await;
    let before = f.daemon.checkpoint_position();

    // WHEN rows with numeric and non-numeric names are written, also in one statement
    f.sql("INSERT INTO t VALUES (1, '123'), (2, 'abc'), (3, '456')")
        .await;
    f.sql("INSERT INTO t VALUES (4, 'not a number')").await;
    f.sql("INSERT INTO t VALUES (5, '789')").await;
    let after_bad = f.env.binlog_position().await;

    // THEN the good rows are indexed
    let es = f.env.es();
    let indexed = wait_until(secs(60), async || {
        es.get(&f.index, "1").await.is_some() && es.get(&f.index, "5").await.is_some()
    })
    .await;
    assert!(indexed, "rows 1 and 5 were not indexed");
    assert_eq!(f.doc("1").await, Some(json!({"id": 1, "name": "123"})));
    assert_eq!(f.doc("3").await, Some(json!({"id": 3, "name": "456"})));
    assert_eq!(f.doc("2").await, None);
    assert_eq!(f.doc("4").await, None);

    // AND the bad ones are in dead-letter.jsonl next to the checkpoint, one JSON line each
    assert_eq!(
        f.daemon.dead_letter_path().parent(),
        f.daemon.checkpoint_path().parent()
    );
    let dead = wait_until(secs(30), async || f.daemon.dead_letters().len() >= 2).await;
    // Lanes write in parallel: the file's order across documents is not defined.
    let mut letters = f.daemon.dead_letters();
    letters.sort_by_key(|l| l["id"].as_str().map(str::to_owned));
    assert!(dead, "dead letters: {letters:?}");
    assert_eq!(letters.len(), 2, "{letters:?}");
    let file = f.env.binlog_file().await;
    for (letter, id, name) in [(&letters[0], 2, "abc"), (&letters[1], 4, "not a number")] {
        let id_text = id.to_string();
        assert_eq!(letter["index"], f.index.as_str(), "{letter}");
        assert_eq!(letter["id"], id_text.as_str(), "{letter}");
        assert_eq!(letter["op"], "index", "{letter}");
        assert!(
            letter["version"].as_u64().is_some_and(|v| v > 0),
            "{letter}"
        );
        assert_eq!(letter["status"], 400, "{letter}");
        assert!(
            letter["error"].to_string().contains("name"),
            "the error does not name the field: {letter}"
        );
        let position = letter["position"].to_string();
        assert!(position.contains(&file), "position in {file}: {letter}");
        assert_eq!(
            letter["document"],
            json!({"id": id, "name": name}),
            "{letter}"
        );
    }

    // AND the daemon keeps running, later rows still stream
    f.daemon.assert_running();
    f.sql("INSERT INTO t VALUES (6, '1000'); UPDATE t SET name = '124' WHERE id = 1")
        .await;
    let streamed = wait_until(secs(60), async || {
        es.get(&f.index, "6").await.is_some()
            && es.get(&f.index, "1").await == Some(json!({"id": 1, "name": "124"}))
    })
    .await;
    assert!(streamed, "later rows did not stream");

    // AND the checkpoint moves past the transactions that held the rejected rows
    let passed = wait_until(secs(30), async || {
        f.daemon.checkpoint_position() >= after_bad
    })
    .await;
    let now = f.daemon.checkpoint_position();
    assert!(
        passed,
        "checkpoint {now:?} is not past {after_bad:?} (was {before:?})"
    );
    let status = f.daemon.cli("status").await;
    assert_eq!(status.code, 0, "{status}");
    let shown = status_position(&status.stdout, &now.0);
    assert!(
        shown.is_some_and(|pos| pos >= now.1),
        "status does not show the checkpoint {now:?}: {status}"
    );
    assert_eq!(f.daemon.dead_letters().len(), 2);
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn on_rejected_fail_stops_without_advancing_the_checkpoint() {
    // GIVEN a daemon with on_rejected = "fail" that has streamed a good row
    let mut f = Fixture::start_with("fail", TABLE, Some(name_is_long()), |b| {
        b.extra_toml("[dead_letter]\non_rejected = \"fail\"")
    })
    .await;
    f.sql("INSERT INTO t VALUES (1, '123')").await;
    let after_good = f.env.binlog_position().await;
    let es = f.env.es();
    assert!(wait_until(secs(60), async || es.get(&f.index, "1").await.is_some()).await);
    let caught_up = wait_until(secs(30), async || {
        f.daemon.checkpoint_position() >= after_good
    })
    .await;
    assert!(caught_up, "checkpoint never reached {after_good:?}");
    let before = f.daemon.checkpoint_position();

    // WHEN a transaction holds a rejected row (with a good one)
    f.sql("BEGIN; INSERT INTO t VALUES (777001, 'abc'); INSERT INTO t VALUES (2, '5'); COMMIT")
        .await;
    let bad_txn_start = transaction_start(f.env, &mut f.conn).await;

    // THEN `run` exits 1 naming the index and the id
    let code = f.daemon.wait_exit(secs(60)).await;
    let log = f.daemon.last_run_log();
    assert_eq!(code, 1, "{log}");
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
    let named = log
        .lines()
        .any(|line| line.contains(&f.index) && line.contains("777001"));
    assert!(
        named,
        "no line names index {} and id 777001:\n{log}",
        f.index
    );

    // AND the checkpoint is not past the transaction that held the rejected row
    let after = f.daemon.checkpoint_position();
    println!("checkpoint before {before:?}, after {after:?}, rejected txn at {bad_txn_start:?}");
    assert!(
        after >= before,
        "checkpoint went back: {before:?} -> {after:?}"
    );
    match bad_txn_start {
        Some(start) => assert!(
            after <= start,
            "checkpoint {after:?} is past the start {start:?} of the rejected transaction \
             (it was {before:?} before)"
        ),
        None => assert!(
            after < f.env.binlog_position().await,
            "checkpoint {after:?} is at the binlog's end, past the rejected transaction"
        ),
    }
    assert!(f.daemon.dead_letters().is_empty());
    assert_eq!(f.doc("777001").await, None);
}

/// The offset `status` prints after `file:`.
fn status_position(stdout: &str, file: &str) -> Option<u64> {
    let at = stdout.find(&format!("{file}:"))? + file.len() + 1;
    let digits: String = stdout[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Where the transaction last committed on `conn` starts in the binlog, as (file, offset):
/// MariaDB names its GTID in `@@last_gtid`, and `SHOW BINLOG EVENTS` gives that GTID event's
/// position. `None` on MySQL (no per-session last GTID without session tracking).
async fn transaction_start(env: &TestEnv, conn: &mut Conn) -> Option<(String, u64)> {
    if !env.is_mariadb {
        return None;
    }
    let gtid: String = conn.query_first("SELECT @@last_gtid").await.unwrap()?;
    let file = env.binlog_file().await;
    let events: Vec<mysql_async::Row> = conn
        .query(format!("SHOW BINLOG EVENTS IN '{file}'"))
        .await
        .unwrap();
    let start = events.iter().find_map(|event| {
        let kind: String = event.get("Event_type")?;
        let info: String = event.get("Info")?;
        let is_ours = kind == "Gtid"
            && info
                .split_whitespace()
                .any(|word| word.trim_end_matches(';') == gtid);
        is_ours.then(|| event.get::<u64, _>("Pos"))?
    });
    assert!(start.is_some(), "GTID {gtid} not found in {file}");
    start.map(|pos| (file, pos))
}

#[tokio::test]
async fn rejected_documents_can_go_to_a_dead_letter_index() {
    // GIVEN a daemon whose dead-letter destination is an index
    let dead_index = TestEnv::get().unique_index("deadletters");
    let toml = format!("[dead_letter]\ntype = \"index\"\nindex = \"{dead_index}\"");
    let mut f = Fixture::start_with("deadidx", TABLE, Some(name_is_long()), |b| {
        b.extra_toml(&toml)
    })
    .await;

    // WHEN a good and a bad row stream, then another good one
    f.sql("INSERT INTO t VALUES (1, '123'), (2, 'abc')").await;
    f.sql("INSERT INTO t VALUES (3, '456')").await;

    // THEN the bad one is an entry in the dead-letter index, the others are indexed
    let es = f.env.es();
    let ok = wait_until(secs(60), async || {
        es.get(&f.index, "3").await.is_some() && es.count(&dead_index).await == 1
    })
    .await;
    assert!(ok, "{}", f.daemon.stderr_tail(30));
    es.refresh(&dead_index).await;
    let docs = es.docs(&dead_index).await;
    let entry = docs.values().next().unwrap();
    assert_eq!(entry["index"], f.index.as_str(), "{entry}");
    assert_eq!(entry["id"], "2", "{entry}");
    assert_eq!(entry["status"], 400, "{entry}");
    assert_eq!(
        entry["document"],
        json!({"id": 2, "name": "abc"}),
        "{entry}"
    );
    assert!(
        entry["position"].as_str().is_some_and(|p| p.contains(':')),
        "{entry}"
    );
    assert!(
        f.daemon.dead_letters().is_empty(),
        "no file when the index is the destination"
    );
    f.daemon.assert_running();
    assert_eq!(f.daemon.terminate().await, 0);
}
