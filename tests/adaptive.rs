//! `writer.adaptive_concurrency` against the real servers (issue 16): one lane with
//! `pipeline_depth = 4` streams through the fault proxy, its level read from the gauge
//! `binlog2es_writer_concurrency` on `/metrics`. When the sink moves far away the slower
//! round trips drop the level to one, where the lane learns the new pace and climbs to the
//! depth while a steady workload keeps it busy; a 429 storm brings it down to one, where it
//! stays while the daemon retries; after the storm it climbs to the depth again; at the end
//! every document equals its row.
//!
//! The proxy holds each `_bulk` request 200 ms ([`FAR`]): a sink far away, whose round trip
//! does not grow with the requests in flight, so more of them pay and the right level is
//! the depth. Straight to the local test server (debug build, two shared cores) the round
//! trip grew from about 5 ms at one request to 40–100 ms at four and the level cycled
//! between one and four (measured while this test drains its backlog at the end): no level
//! there holds long enough to assert.
//!
//! Only polls with generous deadlines: no timing is asserted, so a busy machine makes the
//! test slower, not red.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::proxy::{EsProxy, Fault};
use common::*;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, \
                     n INT NOT NULL, note TEXT NULL) DEFAULT CHARSET = utf8mb4";

/// One lane, so the gauge is that lane's level; small batches, so the workload keeps every
/// slot busy; short retry delays, so the storm's end is seen soon; the lane's moves in the
/// log (its tail is printed on failure).
const WRITER: &str = "[writer]\nlanes = 1\npipeline_depth = 4\nadaptive_concurrency = true\n\
                      max_docs = 10\nmax_delay_ms = 5\nretry_initial_ms = 50\n\
                      retry_max_ms = 500\n[logging]\nlevel = \"info,binlog2es::writer=debug\"";

/// The lane's ceiling, `pipeline_depth` above.
const DEPTH: f64 = 4.0;

/// A sink whose round trip stays at least 200 ms whatever is in flight: at the depth it
/// takes 200 changes/s, less than the workload makes.
const FAR: Fault = Fault::Delay(Duration::from_millis(200));

/// Rows the table starts with; the workload updates them in slices of [`SLICE`] (several
/// hundred changes/s).
const ROWS: u64 = 200;
const SLICE: u64 = 20;

/// Gauge of the lane's level.
const LEVEL: &str = "binlog2es_writer_concurrency";

/// `levels` as runs, e.g. `1×12 2×3 4×1`.
fn runs(levels: &[f64]) -> String {
    let mut out: Vec<(f64, usize)> = Vec::new();
    for &l in levels {
        match out.last_mut() {
            Some((last, n)) if *last == l => *n += 1,
            _ => out.push((l, 1)),
        }
    }
    let parts: Vec<String> = out.iter().map(|(l, n)| format!("{l}×{n}")).collect();
    parts.join(" ")
}

/// The value of the unlabelled series `name` on `/metrics` at `url`.
async fn metric(url: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls the level until `want` holds (true) or `timeout` passes (false), checking that the
/// daemon runs; every level read is added to `seen`.
async fn wait_for_level(
    daemon: &mut Daemon,
    url: &str,
    timeout: Duration,
    seen: &mut Vec<f64>,
    mut want: impl FnMut(f64) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        daemon.assert_running();
        if let Some(level) = metric(url, LEVEL).await {
            seen.push(level);
            if want(level) {
                return true;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Updates slices of the table, and now and then inserts or deletes a row, until stopped.
fn workload(conn: Conn) -> Background {
    Background::spawn(conn, |k| {
        let lo = (k * SLICE) % ROWS + 1;
        let mut sql = format!(
            "UPDATE t SET n = n + 1, note = 'pass {k}' WHERE id BETWEEN {lo} AND {}",
            lo + SLICE - 1
        );
        if k.is_multiple_of(7) {
            let id = ROWS + 1 + k;
            sql += &format!("; INSERT INTO t VALUES ({id}, 'new {k}', {k}, NULL)");
        }
        if k.is_multiple_of(11) {
            sql += &format!("; DELETE FROM t WHERE id = {}", lo + SLICE / 2);
        }
        (sql, Duration::from_millis(25))
    })
}

#[tokio::test]
async fn the_level_climbs_falls_to_one_under_a_429_storm_and_climbs_again() {
    // GIVEN one adaptive lane of depth 4 writing through the proxy, at one while idle
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    let index = env.unique_index("adaptive");
    let proxy = EsProxy::start(&env.es_url);
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}/metrics");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &index)
        .es_url(proxy.url())
        .http_listen(&listen)
        .extra_toml(WRITER)
        .start()
        .await;
    let mut start = Vec::new();
    assert!(
        wait_for_level(&mut daemon, &url, secs(30), &mut start, |l| l == 1.0).await,
        "the lane does not start at one request in flight: {start:?}"
    );
    // AND the table's first rows written straight to the local server, whose round trip
    // (a few ms) the lane learns
    let rows: Vec<String> = (1..=ROWS)
        .map(|i| format!("({i}, 'row {i}', {i}, NULL)"))
        .collect();
    conn.query_drop(format!("INSERT INTO t VALUES {}", rows.join(", ")))
        .await
        .unwrap();
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &index, secs(60)).await;

    // WHEN the sink moves far away and a workload keeps the lane busy
    proxy.set(FAR);
    let workload = workload(env.mysql_db(&db).await);

    // THEN the level is at one (the slower round trips are a rise) and climbs to the depth
    // once the lane has learned the new pace
    let mut healthy = Vec::new();
    let mut was_one = false;
    assert!(
        wait_for_level(&mut daemon, &url, secs(30), &mut healthy, |l| {
            was_one |= l == 1.0;
            was_one && l == DEPTH
        })
        .await,
        "the level did not go from one to {DEPTH} on a healthy sink: {}; proxy: {}",
        runs(&healthy),
        proxy.stats()
    );
    println!("adaptive: healthy: {}", runs(&healthy));

    // WHEN every _bulk is answered 429
    let retries = metric(&url, "binlog2es_bulk_retries_total").await.unwrap();
    proxy.set(Fault::Status(429));

    // THEN the level falls to one and stays there while the daemon retries
    let mut storm = Vec::new();
    assert!(
        wait_for_level(&mut daemon, &url, secs(30), &mut storm, |l| l == 1.0).await,
        "the level did not fall to one during the storm: {}; proxy: {}",
        runs(&storm),
        proxy.stats()
    );
    let hits = proxy.hits(Fault::Status(429));
    let mut held = Vec::new();
    // Until the proxy answered 429 ten more times: the retries go on.
    let went_on = wait_for_level(&mut daemon, &url, secs(30), &mut held, |l| {
        l != 1.0 || proxy.hits(Fault::Status(429)) >= hits + 10
    })
    .await;
    assert!(
        went_on && held.iter().all(|&l| l == 1.0),
        "during the storm: {}; proxy: {}",
        runs(&held),
        proxy.stats()
    );
    let retried = metric(&url, "binlog2es_bulk_retries_total").await.unwrap();
    assert!(retried >= retries + 10.0, "retries {retries} → {retried}");
    println!("adaptive: storm: {}, then {}", runs(&storm), runs(&held));

    // WHEN the storm ends
    proxy.set(FAR);

    // THEN the level climbs to the depth again
    let mut after = Vec::new();
    assert!(
        wait_for_level(&mut daemon, &url, secs(30), &mut after, |l| l == DEPTH).await,
        "the level did not reach {DEPTH} again after the storm: {}; proxy: {}",
        runs(&after),
        proxy.stats()
    );
    println!("adaptive: after the storm: {}", runs(&after));

    // AND nothing was lost: every document equals its row
    let statements = workload.stop().await;
    proxy.set(Fault::PassThrough);
    let diff = wait_until_index_equals_table(env, &mut daemon, &db, "t", &index, secs(60)).await;
    println!(
        "adaptive: statements={statements} rows={} proxy: {}",
        diff.rows,
        proxy.stats()
    );
    assert!(
        daemon.dead_letters().is_empty(),
        "{:?}",
        daemon.dead_letters()
    );
    assert_eq!(daemon.terminate().await, 0, "{}", daemon.log());
}
