//! Bench of SPEC §9 document rules against the real servers (a private `mariadbd` and
//! `osmem-server`, or `BINLOG2ES_TEST_MYSQL_URL` / `BINLOG2ES_TEST_ES_URL`).
//!
//! Run: `cargo bench --bench documents`. Under `cargo test` it prints one line and exits.
//!
//! 1. **root-only changes**: 20k article inserts and 20k article updates (1000 rows per
//!    transaction), replayed by the release binary with a plain mirror rule, then with a
//!    rule that joins the author and nests the comments (with a nested join of the
//!    comment's user); each run on a fresh sink, timed until its checkpoint reaches the
//!    binlog end. Ratio = plain time / relation time (target ≥ 0.7).
//! 2. **fan-out**: 100k articles of one author are indexed through the relation rule, then
//!    one `UPDATE user` renames that author; timed until the checkpoint passes the update.
//!    Baseline, same run: the same 100k updated documents as pre-built `_bulk` bodies (1000
//!    per request, as many connections as lanes) into a sink already holding the 100k
//!    documents. Ratio = raw time / fan-out time (target ≥ 0.5); the daemon's peak RSS.
//! 3. **MySQL load**: `Com_select` during each run, per 1,000 changed documents.
//!
//! Env: `BINLOG2ES_DOCS_SCALE` (default 1.0) scales both workloads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::{Daemon, TestEnv};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use support::{Sink, cpu_seconds, fresh_sink, ingest, mib};

const DDL: &str = "
CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(100), email VARCHAR(200));
CREATE TABLE article (id INT PRIMARY KEY, title VARCHAR(200), body TEXT, author_id INT,
  rev INT, KEY (author_id));
CREATE TABLE comment (id INT PRIMARY KEY, article_id INT, user_id INT, body VARCHAR(200),
  KEY (article_id), KEY (user_id));
";

/// Users; articles' authors are spread over them in part 1.
const USERS: u64 = 100;

fn scale() -> f64 {
    std::env::var("BINLOG2ES_DOCS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn relation_rule(db: &str, index: &str) -> String {
    format!(
        r#"match = "{db}.article"
index = "{index}"
[[tables.join]]
field = "author"
table = "{db}.user"
on = {{ author_id = "id" }}
include_columns = ["id", "name"]
[[tables.nest]]
field = "comments"
table = "{db}.comment"
on = {{ id = "article_id" }}
[[tables.nest.join]]
field = "user"
table = "{db}.user"
on = {{ user_id = "id" }}
include_columns = ["name"]"#
    )
}

fn main() {
    support::main_with("documents", bench);
}

async fn com_select(conn: &mut Conn) -> u64 {
    let row: Option<(String, u64)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Com_select'")
        .await
        .unwrap();
    row.map_or(0, |r| r.1)
}

async fn wait_checkpoint(daemon: &mut Daemon, target: &(String, u64), timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        daemon.assert_running();
        let at = std::fs::read_to_string(daemon.checkpoint_path())
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|c| {
                Some((
                    c["position"]["file"].as_str()?.to_string(),
                    c["position"]["pos"].as_u64()?,
                ))
            });
        if at.is_some_and(|at| at >= *target) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint did not reach {target:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A stopped daemon whose checkpoint is the binlog's current end.
async fn parked(env: &TestEnv, sink: &Sink, rule: String) -> Daemon {
    let mut d = Daemon::builder(env)
        .es_url(&sink.url)
        .table_toml(&rule)
        .start()
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.terminate().await, 0);
    d
}

/// Replays from the daemon's checkpoint to `end`; (seconds, CPU seconds, peak RSS MiB,
/// SELECTs).
async fn replay(env: &TestEnv, daemon: &mut Daemon, end: &(String, u64)) -> (f64, f64, f64, u64) {
    let mut conn = env.mysql().await;
    let selects = com_select(&mut conn).await;
    let started = Instant::now();
    daemon.spawn();
    let pid = daemon.pid().unwrap();
    wait_checkpoint(daemon, end, Duration::from_secs(900)).await;
    let took = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid);
    let rss = mib(daemon.peak_rss_kib());
    let selects = com_select(&mut conn).await - selects;
    assert_eq!(daemon.terminate().await, 0);
    (took, cpu, rss, selects)
}

async fn insert_articles(conn: &mut Conn, ids: std::ops::Range<u64>, author: impl Fn(u64) -> u64) {
    let ids: Vec<u64> = ids.collect();
    for chunk in ids.chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "({i}, 'title {i}', 'body of article {i} with some words in it', {}, 0)",
                    author(*i)
                )
            })
            .collect();
        conn.query_drop(format!(
            "INSERT INTO article (id, title, body, author_id, rev) VALUES {}",
            values.join(",")
        ))
        .await
        .unwrap();
    }
}

async fn bench() {
    let s = scale();
    let roots = ((20_000.0 * s) as u64).max(1000);
    let fan = ((100_000.0 * s) as u64).max(1000);
    let env = TestEnv::get();
    println!("documents: {roots} root inserts + {roots} root updates; fan-out of {fan} documents");

    // Part 1: root-only changes, plain rule against a rule with two relations.
    let (db, mut conn) = env.create_database_with(DDL).await;
    let users: Vec<String> = (1..=USERS)
        .map(|u| format!("({u}, 'user {u}', 'u{u}@example.com')"))
        .collect();
    conn.query_drop(format!("INSERT INTO user VALUES {}", users.join(",")))
        .await
        .unwrap();
    let plain_sink = fresh_sink(env).await;
    let rel_sink = fresh_sink(env).await;
    let plain_index = env.unique_index("docs-plain");
    let rel_index = env.unique_index("docs-rel");
    let mut plain = parked(
        env,
        &plain_sink,
        format!("match = \"{db}.article\"\nindex = \"{plain_index}\""),
    )
    .await;
    let mut rel = parked(env, &rel_sink, relation_rule(&db, &rel_index)).await;
    insert_articles(&mut conn, 0..roots, |i| 1 + i % USERS).await;
    let comments: Vec<String> = (0..roots / 10)
        .map(|c| format!("({c}, {}, {}, 'comment {c}')", c * 10, 1 + c % USERS))
        .collect();
    for chunk in comments.chunks(1000) {
        conn.query_drop(format!("INSERT INTO comment VALUES {}", chunk.join(",")))
            .await
            .unwrap();
    }
    for start in (0..roots).step_by(1000) {
        conn.query_drop(format!(
            "UPDATE article SET rev = rev + 1 WHERE id >= {start} AND id < {}",
            start + 1000
        ))
        .await
        .unwrap();
    }
    let end = env.binlog_position().await;
    let p = replay(env, &mut plain, &end).await;
    let r = replay(env, &mut rel, &end).await;
    assert_eq!(plain_sink.es.count(&plain_index).await, roots);
    assert_eq!(rel_sink.es.count(&rel_index).await, roots);
    let changes = (2 * roots + roots / 10) as f64;
    println!(
        "root-only: plain {:.2} s (CPU {:.2} s, {:.1} MiB), with relations {:.2} s (CPU {:.2} s, {:.1} MiB, {} SELECTs = {:.2} per 1,000 documents written)",
        p.0,
        p.1,
        p.2,
        r.0,
        r.1,
        r.2,
        r.3,
        r.3 as f64 * 1000.0 / changes
    );
    drop((plain_sink, rel_sink));

    // Part 2: one UPDATE of a joined row that fans out to `fan` documents.
    let (db, mut conn) = env.create_database_with(DDL).await;
    conn.query_drop("INSERT INTO user VALUES (1, 'before', 'a@example.com')")
        .await
        .unwrap();
    let sink = fresh_sink(env).await;
    let index = env.unique_index("docs-fan");
    let mut daemon = parked(env, &sink, relation_rule(&db, &index)).await;
    insert_articles(&mut conn, 0..fan, |_| 1).await;
    let loaded = env.binlog_position().await;
    replay(env, &mut daemon, &loaded).await;
    assert_eq!(sink.es.count(&index).await, fan);
    conn.query_drop("UPDATE user SET name = 'after' WHERE id = 1")
        .await
        .unwrap();
    let end = env.binlog_position().await;
    let f = replay(env, &mut daemon, &end).await;
    let docs = sink.es.docs(&index).await;
    assert!(
        docs.values().all(|d| d["author"]["name"] == "after"),
        "every document has the new name"
    );
    let mapping = sink.es.mapping(&index).await.unwrap_or_default();
    drop(sink);

    // The raw baseline: the same updated documents into a sink that holds them already.
    let sink = fresh_sink(env).await;
    let raw_index = env.unique_index("docs-raw");
    sink.es
        .create_index(&raw_index, serde_json::json!({ "mappings": mapping }))
        .await;
    let doc = |i: u64, name: &str| {
        let source = serde_json::json!({
            "id": i, "title": format!("title {i}"),
            "body": format!("body of article {i} with some words in it"),
            "author_id": 1, "rev": 0, "author": {"id": 1, "name": name}, "comments": []
        });
        (
            i,
            format!(
                "{{\"index\":{{\"_index\":\"{raw_index}\",\"_id\":\"{i}\",\"version\":{},\"version_type\":\"external_gte\"}}}}\n{source}\n",
                i + if name == "after" { 10_000_000 } else { 1 }
            ),
        )
    };
    let lanes = binlog2es::config::default_lanes();
    let before: Vec<(u64, String)> = (0..fan).map(|i| doc(i, "before")).collect();
    ingest(&sink.url, &before, lanes).await;
    let after: Vec<(u64, String)> = (0..fan).map(|i| doc(i, "after")).collect();
    let raw = ingest(&sink.url, &after, lanes).await.as_secs_f64();
    assert_eq!(sink.es.count(&raw_index).await, fan);
    println!(
        "fan-out: {fan} documents in {:.2} s (CPU {:.2} s, peak RSS {:.1} MiB, {} SELECTs = {:.2} per 1,000 documents); raw _bulk of the same documents {:.2} s",
        f.0,
        f.1,
        f.2,
        f.3,
        f.3 as f64 * 1000.0 / fan as f64,
        raw
    );
    println!(
        "SUMMARY documents: root-only with two relations {:.2}x the plain rule's rate (target >= 0.7); fan-out {:.2}x the raw _bulk rate (target >= 0.5), peak RSS {:.1} MiB (target < 100); MySQL SELECTs per 1,000 documents: {:.2} root-only, {:.2} fan-out",
        p.0 / r.0,
        raw / f.0,
        f.2,
        r.3 as f64 * 1000.0 / changes,
        f.3 as f64 * 1000.0 / fan as f64
    );
}
