//! Stopping, killing and restarting the daemon never loses or regresses a change (SPEC §2.1,
//! §2.2, §2.7).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, \
                     n INT NOT NULL, note TEXT NULL) DEFAULT CHARSET = utf8mb4";

#[tokio::test]
async fn restart_after_sigterm_resumes_from_the_checkpoint() {
    // GIVEN a synced table and a daemon stopped with SIGTERM
    let mut f = Fixture::start("restart", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'a', 1, NULL), (2, 'b', 2, NULL), (3, 'c', 3, 'x')")
        .await;
    f.converge().await;
    assert_eq!(f.daemon.terminate().await, 0);
    assert!(f.daemon.checkpoint_path().exists());

    // WHEN rows change while it is down, and it starts again
    f.sql(
        "INSERT INTO t VALUES (4, 'd', 4, NULL); UPDATE t SET n = 20 WHERE id = 2; \
         DELETE FROM t WHERE id = 1; UPDATE t SET id = 33 WHERE id = 3",
    )
    .await;
    f.daemon.restart().await;

    // THEN it catches up
    f.converge().await;
    assert_eq!(f.doc("1").await, None);
    assert_eq!(f.doc("3").await, None);
    assert_eq!(f.doc("2").await.unwrap()["n"], 20);
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn replay_from_an_older_checkpoint_converges() {
    // GIVEN a synced table and a copy of an early checkpoint
    let mut f = Fixture::start("replay", TABLE).await;
    f.sql(&insert_rows(1..=50)).await;
    f.converge().await;
    let early = std::fs::read(f.daemon.checkpoint_path()).unwrap();

    // WHEN more changes stream, the daemon stops, and it restarts from the old checkpoint
    f.sql(
        "UPDATE t SET n = n + 100 WHERE id <= 10; DELETE FROM t WHERE id BETWEEN 11 AND 20; \
         UPDATE t SET id = 121 WHERE id = 21; UPDATE t SET id = 11 WHERE id = 22; \
         BEGIN; UPDATE t SET note = 'again' WHERE id <= 5; DELETE FROM t WHERE id = 30; COMMIT",
    )
    .await;
    f.sql(&insert_rows(51..=80)).await;
    f.converge().await;
    assert_eq!(f.daemon.terminate().await, 0);
    std::fs::write(f.daemon.checkpoint_path(), early).unwrap();
    f.daemon.restart().await;
    f.sql("UPDATE t SET n = n + 1 WHERE id <= 3; DELETE FROM t WHERE id = 50")
        .await;

    // THEN the replayed range neither resurrects deleted rows nor regresses updated ones
    f.converge().await;
    assert_eq!(f.doc("1").await.unwrap()["n"], 102);
    assert_eq!(f.doc("15").await, None);
    assert_eq!(f.doc("21").await, None);
    assert_eq!(f.daemon.terminate().await, 0);
}

/// `INSERT INTO t VALUES (id, 'row-id', id, NULL), …` for the ids.
fn insert_rows(ids: std::ops::RangeInclusive<u64>) -> String {
    let rows: Vec<String> = ids
        .map(|i| format!("({i}, 'row-{i}', {i}, NULL)"))
        .collect();
    format!("INSERT INTO t VALUES {}", rows.join(", "))
}

#[tokio::test]
async fn crash_loop_converges() {
    // GIVEN a streaming daemon and a background writer making random changes
    let mut f = Fixture::start("crash", TABLE).await;
    let seed: u64 = rand::random();
    println!("crash-loop: seed={seed}");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(random_writer(
        f.env.mysql_db(&f.db).await,
        seed,
        stop.clone(),
    ));

    // WHEN the daemon is SIGKILLed at random moments and restarted each time
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1));
    let mut kills = 0;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..=2000))).await;
        f.daemon.kill();
        kills += 1;
        f.daemon.restart().await;
    }
    stop.store(true, Ordering::Relaxed);
    let changes = writer.await.unwrap();

    // THEN, once the writer stops, the index equals the table exactly
    let diff = f.converge_within(secs(120)).await;
    println!("crash-loop: statements={changes}");
    println!(
        "crash-loop: rows={} kills={kills} mismatches={}",
        diff.rows,
        diff.mismatches()
    );
    assert!(changes > 0);
    assert_eq!(f.daemon.terminate().await, 0);
}

/// Random inserts, updates, deletes, key changes, multi-row statements and transactions (some
/// rolled back) on ids 1..=300 until `stop`; returns the number of statements run.
async fn random_writer(mut conn: Conn, seed: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut statements = 0;
    while !stop.load(Ordering::Relaxed) {
        if rng.random_bool(0.2) {
            let size = rng.random_range(2..=6);
            let sql: Vec<String> = (0..size).map(|_| random_change(&mut rng)).collect();
            let end = if rng.random_bool(0.2) {
                "ROLLBACK"
            } else {
                "COMMIT"
            };
            run(&mut conn, &format!("BEGIN; {}; {end}", sql.join("; "))).await;
            statements += size;
        } else {
            run(&mut conn, &random_change(&mut rng)).await;
            statements += 1;
        }
        let pause = rng.random_range(0..5);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    conn.disconnect().await.ok();
    statements
}

fn random_change(rng: &mut StdRng) -> String {
    let id = rng.random_range(1..=300u32);
    let n = rng.random_range(0..1_000_000u32);
    match rng.random_range(0..10) {
        0..=2 => {
            let note = if rng.random_bool(0.3) {
                "NULL".into()
            } else {
                format!("'note {n}'")
            };
            format!(
                "INSERT INTO t VALUES ({id}, 'name {n}', {n}, {note}) \
                 ON DUPLICATE KEY UPDATE n = {n}, note = {note}"
            )
        }
        3..=4 => format!("UPDATE t SET n = n + 1, name = 'upd {n}' WHERE id = {id}"),
        5 => format!("DELETE FROM t WHERE id = {id}"),
        6 => format!(
            "UPDATE IGNORE t SET id = {} WHERE id = {id}",
            rng.random_range(1..=300u32)
        ),
        7 => format!("UPDATE t SET n = n + 1 WHERE id BETWEEN {id} AND {id} + 20"),
        8 => format!("DELETE FROM t WHERE id BETWEEN {id} AND {id} + 3"),
        _ => format!("UPDATE t SET note = NULL WHERE id = {id}"),
    }
}

async fn run(conn: &mut Conn, sql: &str) {
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn checkpoint_from_another_server_without_gtid_is_refused() {
    // GIVEN a checkpoint written by a clean stop, then edited to claim another server and no
    // GTID state
    let mut f = Fixture::start("foreign", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'a', 1, NULL)").await;
    f.converge().await;
    assert_eq!(f.daemon.terminate().await, 0);
    let mut checkpoint = f.daemon.checkpoint();
    checkpoint["server"]["id"] = "someone-else".into();
    checkpoint["gtid"] = serde_json::Value::Null;
    f.daemon.write_checkpoint(&checkpoint);

    // WHEN the daemon starts with it
    f.daemon.spawn();
    let code = f.daemon.wait_exit(secs(60)).await;

    // THEN it refuses with exit 1 and a message about the checkpoint's server
    let log = f.daemon.last_run_log();
    assert_eq!(code, 1, "{log}");
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
    let refusal = log.lines().find(|line| {
        let line = line.to_lowercase();
        line.contains("checkpoint") && line.contains("server") && line.contains("someone-else")
    });
    assert!(
        refusal.is_some(),
        "no message about the checkpoint's server:\n{log}"
    );
    // Nothing was overwritten: the refused checkpoint is still there as it was.
    assert_eq!(f.daemon.checkpoint(), checkpoint);
}

#[tokio::test]
async fn checkpoint_from_another_server_resumes_by_gtid() {
    // GIVEN a synced table, the version of one of its documents, and a daemon stopped with
    // SIGTERM whose checkpoint is then edited to claim another server (GTID state kept)
    let mut f = Fixture::start("bygtid", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'a', 1, NULL), (2, 'b', 2, NULL), (3, 'c', 3, NULL)")
        .await;
    f.converge().await;
    let es = f.env.es();
    let version_before = es.version(&f.index, "1").await.expect("document 1");
    assert_eq!(f.daemon.terminate().await, 0);
    let mut checkpoint = f.daemon.checkpoint();
    let real_server = checkpoint["server"]["id"].clone();
    assert!(
        checkpoint["gtid"].as_str().is_some_and(|g| !g.is_empty()),
        "the checkpoint has no GTID state: {checkpoint}"
    );
    checkpoint["server"]["id"] = "someone-else".into();
    f.daemon.write_checkpoint(&checkpoint);

    // WHEN rows change while it is down, it starts again, and a row changes after the restart
    f.sql(
        "INSERT INTO t VALUES (4, 'd', 4, NULL); UPDATE t SET n = 20 WHERE id = 2; \
         DELETE FROM t WHERE id = 3",
    )
    .await;
    f.daemon.restart().await;
    f.converge().await;
    f.sql("UPDATE t SET name = 'a2' WHERE id = 1").await;

    // THEN it converges by GTID, and versions keep growing
    f.converge().await;
    assert_eq!(f.doc("3").await, None);
    assert_eq!(f.doc("2").await.unwrap()["n"], 20);
    assert_eq!(f.doc("1").await.unwrap()["name"], "a2");
    let version_after = es.version(&f.index, "1").await.expect("document 1");
    assert!(
        version_after > version_before,
        "version of document 1 went from {version_before} to {version_after}"
    );
    let version_4 = es.version(&f.index, "4").await.expect("document 4");
    assert!(
        version_4 > version_before,
        "document 4 written after document 1 has version {version_4} <= {version_before}"
    );

    let log = f.daemon.last_run_log();
    let by_gtid = log.to_lowercase();
    assert!(
        by_gtid.contains("by gtid") || by_gtid.contains("mode=gtid"),
        "the log does not say it resumed by GTID:\n{log}"
    );

    // AND the checkpoint names the real server again
    assert_eq!(f.daemon.terminate().await, 0);
    let checkpoint = f.daemon.checkpoint();
    assert_ne!(checkpoint["server"]["id"], "someone-else", "{checkpoint}");
    assert_eq!(checkpoint["server"]["id"], real_server, "{checkpoint}");
}

#[tokio::test]
async fn a_failover_that_lost_transactions_never_writes_below_a_version_already_written() {
    // GIVEN a primary, a replica following it by GTID (logging what it applies), and a daemon
    // on the primary whose checkpoint is written only every minute
    let primary = TestEnv::dedicated_static(&[]);
    let replica = TestEnv::dedicated_static(&["--server-id=2", "--log-slave-updates"]);
    let mut p = primary.mysql().await;
    let head: String = p
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    let port = primary.admin_url.rsplit(':').next().unwrap().to_owned();
    let mut r = replica.mysql().await;
    r.query_drop(format!(
        "SET GLOBAL gtid_slave_pos = '{head}'; \
         CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {port}, \
         MASTER_USER = 'admin', MASTER_PASSWORD = 'admin', MASTER_USE_GTID = slave_pos; \
         START SLAVE"
    ))
    .await
    .unwrap();
    let mut f = Fixture::start_on(primary, "failover", TABLE, None, |b| {
        b.checkpoint_toml("interval_ms = 60000")
    })
    .await;
    f.sql("INSERT INTO t VALUES (1, 'a', 1, NULL), (2, 'b', 2, NULL)")
        .await;
    f.converge().await;
    let replicated = wait_until(secs(60), async || {
        let n: Option<u64> = r
            .query_first(format!("SELECT COUNT(*) FROM `{}`.t", f.db))
            .await
            .unwrap_or(None);
        n == Some(2)
    })
    .await;
    assert!(replicated, "the replica did not receive the rows");

    // WHEN the replica stops applying, the primary changes a row (indexed, with a version
    // above the checkpoint's), the daemon dies, and the replica, promoted with a clock an hour
    // behind, changes the same row
    r.query_drop("STOP SLAVE SQL_THREAD").await.unwrap();
    f.sql("UPDATE t SET name = 'lost' WHERE id = 1").await;
    let es = primary.es();
    let indexed = wait_until(secs(60), async || {
        es.get(&f.index, "1")
            .await
            .is_some_and(|d| d["name"] == "lost")
    })
    .await;
    assert!(indexed, "the update was not indexed");
    f.daemon.kill();
    r.query_drop(format!(
        "STOP SLAVE; RESET SLAVE ALL; SET TIMESTAMP = UNIX_TIMESTAMP() - 3600; \
         UPDATE `{}`.t SET name = 'new' WHERE id = 1; SET TIMESTAMP = DEFAULT",
        f.db
    ))
    .await
    .unwrap();
    let config = std::fs::read_to_string(f.daemon.config_path()).unwrap();
    let replica_port = replica.admin_url.rsplit(':').next().unwrap();
    std::fs::write(
        f.daemon.config_path(),
        config.replace(&format!(":{port}"), &format!(":{replica_port}")),
    )
    .unwrap();
    f.daemon.restart().await;

    // THEN the daemon resumes on the replica by GTID and the replica's change wins: the index
    // equals the new primary's table
    let diff =
        wait_until_index_equals_table(replica, &mut f.daemon, &f.db, "t", &f.index, secs(60)).await;
    assert_eq!(diff.rows, 2);
    assert_eq!(f.doc("1").await.unwrap()["name"], "new");
    assert!(f.daemon.last_run_log().to_lowercase().contains("by gtid"));
}

#[tokio::test]
async fn a_backlog_replayed_after_downtime_collapses_changes_to_one_document() {
    // GIVEN a synced table, its writes through a counting proxy, batches of 10 documents
    let env = TestEnv::get();
    let proxy = common::proxy::EsProxy::start(&env.es_url);
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut f = Fixture::start_with("backlog", TABLE, None, |b| {
        b.es_url(proxy.url())
            .http_listen(&listen)
            .extra_toml("[writer]\nmax_docs = 10\n")
    })
    .await;
    f.sql(&insert_rows(1..=60)).await;
    f.converge().await;

    // Every transaction changes each of the 60 rows once: a batch of 10 consecutive changes
    // of one lane never holds a document twice, so only the backlog can collapse anything.
    let mut round = 0;
    let mut replay = async |f: &mut Fixture, window: Option<&str>, queue: Option<&str>| {
        assert_eq!(f.daemon.terminate().await, 0);
        for _ in 0..50 {
            round += 1;
            f.sql(&format!("UPDATE t SET n = n + 1, note = 'round {round}'"))
                .await;
        }
        f.sql("DELETE FROM t WHERE id % 7 = 0; UPDATE t SET name = 'last' WHERE id % 5 = 0")
            .await;
        f.sql(&insert_rows(1000 + round..=1000 + round)).await;
        for (key, value) in [("BACKLOG_WINDOW", window), ("QUEUE_CAPACITY", queue)] {
            let key = format!("BINLOG2ES__WRITER__{key}");
            match value {
                Some(v) => f.daemon.set_env(&key, v),
                None => f.daemon.remove_env(&key),
            }
        }
        let (requests, collapsed) = (
            proxy.bulk_passed(),
            metric(&base, "binlog2es_coalesced_changes_total").await,
        );
        assert_eq!(collapsed, None, "the daemon is down");
        f.daemon.restart().await;
        // THEN the index equals the table either way
        f.converge().await;
        let collapsed = metric(&base, "binlog2es_coalesced_changes_total")
            .await
            .expect("binlog2es_coalesced_changes_total");
        (proxy.bulk_passed() - requests, collapsed)
    };

    // WHEN it replays ~3,000 changes with the backlog off, then ~3,000 more with the default
    let (requests_off, collapsed_off) = replay(&mut f, Some("0"), None).await;
    let (requests_on, collapsed_on) = replay(&mut f, None, None).await;
    // AND ~3,000 more to a far sink (200 ms per request) through queues of 20 changes: the
    // router wakes a lane whose request slots are busy each time it finds the queue full, so
    // the backlog gathers at the reader's pace rather than by a queueful per request (which
    // would take ~1,500 / 20 = 75 requests per lane)
    proxy.set(common::proxy::Fault::Delay(Duration::from_millis(200)));
    let (requests_far, collapsed_far) = replay(&mut f, None, Some("20")).await;
    proxy.set(common::proxy::Fault::PassThrough);

    println!(
        "backlog off: {requests_off} requests; on: {requests_on} requests, {collapsed_on} collapsed; \
         far sink, queues of 20: {requests_far} requests, {collapsed_far} collapsed"
    );
    // AND with the backlog, changes to a document collapse across transactions into fewer
    // writes; without it nothing collapses
    assert_eq!(collapsed_off, 0.0);
    assert!(
        requests_off >= 300,
        "{requests_off} requests without the backlog"
    );
    assert!(
        collapsed_on > 0.0 && requests_on < requests_off,
        "backlog: {collapsed_on} collapsed, {requests_on} requests, against {requests_off}"
    );
    assert!(
        requests_far <= 40,
        "far sink, queues of 20: {requests_far} requests, {collapsed_far} collapsed"
    );
    assert_eq!(f.daemon.terminate().await, 0);
}
