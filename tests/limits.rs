//! Size limits (issue 11, items 12 and 13): the bytes held between the reader and
//! Elasticsearch are bounded (`writer.max_buffered_bytes`), not only the number of changes,
//! and a document larger than the sink's maximum request size (HTTP 413,
//! `http.max_content_length`) is dead-lettered while the stream goes on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::proxy::{EsProxy, Fault};
use common::*;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, body LONGTEXT NOT NULL) \
                     DEFAULT CHARSET = utf8mb4";

/// Short retry delays, so the sink's return is noticed within about a second.
const FAST_RETRIES: &str = "retry_initial_ms = 50\nretry_max_ms = 1000";

/// A database with table `t`, a daemon streaming it through a fault proxy with `writer`
/// lines in `[writer]` and its operations endpoint on a known port, and the index already
/// holding rows 1..=5 (so it exists before any fault starts). `body` is stored, not
/// analysed: osmem-server takes seconds to analyse a megabyte of text, which would time
/// the test rather than the daemon.
struct Setup {
    env: &'static TestEnv,
    db: String,
    conn: Conn,
    index: String,
    daemon: Daemon,
    proxy: EsProxy,
    base_url: String,
}

impl Setup {
    async fn start(prefix: &str, writer: &str) -> Setup {
        Setup::start_with(prefix, writer, "").await
    }

    /// As [`Setup::start`], with `extra` TOML (sections) after `[writer]`.
    async fn start_with(prefix: &str, writer: &str, extra: &str) -> Setup {
        let env = TestEnv::get();
        let (db, mut conn) = env.create_database_with(TABLE).await;
        let index = env.unique_index(prefix);
        env.es()
            .create_index(
                &index,
                serde_json::json!({"mappings": {"properties": {
                    "id": {"type": "long"},
                    "body": {"type": "text", "index": false}
                }}}),
            )
            .await;
        let proxy = EsProxy::start(&env.es_url);
        let listen = format!("127.0.0.1:{}", free_port());
        let mut daemon = Daemon::builder(env)
            .table(&format!("{db}.t"), &index)
            .es_url(proxy.url())
            .http_listen(&listen)
            .extra_toml(&format!("[writer]\n{FAST_RETRIES}\n{writer}\n{extra}"))
            .start()
            .await;
        conn.query_drop("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')")
            .await
            .unwrap();
        wait_until_index_equals_table(env, &mut daemon, &db, "t", &index, secs(60)).await;
        Setup {
            env,
            db,
            conn,
            index,
            daemon,
            proxy,
            base_url: format!("http://{listen}"),
        }
    }

    /// The value of metric `name` (summed over its series), 0 when it is not there yet.
    async fn metric(&self, name: &str) -> f64 {
        metric(&self.base_url, name).await.unwrap_or(0.0)
    }

    async fn sql(&mut self, sql: &str) {
        self.conn
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", &sql[..sql.len().min(200)]));
    }

    async fn binlog_position(&self) -> (String, u64) {
        self.env.binlog_position().await
    }
}

#[tokio::test]
async fn megabyte_rows_with_the_sink_down_stay_within_the_byte_budget() {
    const ROWS: u64 = 100;
    const ROW_BYTES: u64 = 1024 * 1024;
    const BUDGET: u64 = 8 * 1024 * 1024;
    // What the daemon may grow by: the budget, one request body per lane being encoded and
    // sent (2 × 2 MiB), the rows event being read and decoded, and allocator slack. Without
    // the byte budget every row would be queued (the queues hold 4096 changes per lane).
    const GROWTH_BOUND_KIB: u64 = 48 * 1024;
    // GIVEN a daemon with an 8 MiB byte budget and the default queue capacity, and
    // Elasticsearch refusing every connection
    let mut s = Setup::start(
        "bytes",
        &format!("lanes = 2\nmax_bytes = 2097152\nmax_buffered_bytes = {BUDGET}"),
    )
    .await;
    let rss_before = s.daemon.rss_kib().expect("VmRSS");
    let changes_before = s.metric("binlog2es_changes_total").await;
    s.proxy.set(Fault::Refuse);

    // WHEN 100 rows of 1 MiB each are written, one transaction each
    for i in 0..ROWS {
        let id = 100 + i;
        s.sql(&format!(
            "INSERT INTO t VALUES ({id}, REPEAT(CHAR(65 + {id} % 26), {ROW_BYTES}))"
        ))
        .await;
    }
    // and the reader has read all it is allowed to: its count of changes stops moving
    let mut last = (s.metric("binlog2es_changes_total").await, Instant::now());
    let settled = wait_until(secs(60), async || {
        s.daemon.assert_running();
        let now = s.metric("binlog2es_changes_total").await;
        if now != last.0 {
            last = (now, Instant::now());
        }
        last.1.elapsed() > Duration::from_secs(2)
    })
    .await;
    assert!(settled, "the reader never stopped reading");

    // THEN the reader stopped after about a budget's worth of rows, and memory stayed bounded
    let read = (last.0 - changes_before) as u64;
    let peak = s.daemon.peak_rss_kib().expect("VmHWM");
    let growth = peak.saturating_sub(rss_before);
    println!(
        "byte-budget: rows={ROWS} data={} MiB budget={} MiB rows_read={read} \
         rss_before={} MiB peak_rss={} MiB growth={} MiB proxy: {}",
        (ROWS * ROW_BYTES) >> 20,
        BUDGET >> 20,
        rss_before / 1024,
        peak / 1024,
        growth / 1024,
        s.proxy.stats()
    );
    assert!(s.proxy.hits(Fault::Refuse) > 0, "{}", s.proxy.stats());
    // Budget / row size, plus the one the reader waits to route.
    assert!(
        read <= BUDGET / ROW_BYTES + 2,
        "the reader read {read} rows of 1 MiB with a {} MiB budget",
        BUDGET >> 20
    );
    assert!(
        growth < GROWTH_BOUND_KIB,
        "RSS grew by {} MiB (bound {} MiB) while {} MiB were written",
        growth / 1024,
        GROWTH_BOUND_KIB / 1024,
        (ROWS * ROW_BYTES) >> 20
    );

    // AND once Elasticsearch is back, the index equals the table and the checkpoint moves on
    s.proxy.set(Fault::PassThrough);
    let end = s.binlog_position().await;
    let back = Instant::now();
    let (env, db, index) = (s.env, s.db.clone(), s.index.clone());
    wait_until_index_equals_table(env, &mut s.daemon, &db, "t", &index, secs(120)).await;
    println!(
        "byte-budget: converged {:.1}s after the sink came back",
        back.elapsed().as_secs_f64()
    );
    assert!(
        wait_until(secs(10), async || s.daemon.checkpoint_position() >= end).await,
        "the checkpoint stays at {:?}, before {end:?}",
        s.daemon.checkpoint_position()
    );
    assert!(s.daemon.dead_letters().is_empty());
    assert_eq!(s.daemon.terminate().await, 0, "{}", s.daemon.log());
}

#[tokio::test]
async fn a_document_over_the_sinks_request_size_is_dead_lettered_and_the_stream_goes_on() {
    const MAX_BODY: usize = 64 * 1024;
    // GIVEN one lane (so the big row shares a batch with small ones) and a sink that answers
    // 413 to bulk bodies over 64 KiB, as Elasticsearch does over http.max_content_length
    let mut s = Setup::start("too-large", "lanes = 1\nmax_delay_ms = 200").await;
    s.proxy.set(Fault::MaxBody(MAX_BODY));

    // WHEN one transaction writes 40 small rows and, among them, one of 100 kB
    let rows: Vec<String> = (10..50)
        .map(|id| {
            if id == 30 {
                format!("({id}, REPEAT('x', 100000))")
            } else {
                format!("({id}, 'small {id}')")
            }
        })
        .collect();
    s.sql(&format!("INSERT INTO t VALUES {}", rows.join(", ")))
        .await;
    let after_big = s.binlog_position().await;

    // THEN the small rows are indexed, the big one is not
    let es = s.env.es();
    let (db, index) = (s.db.clone(), s.index.clone());
    let mut expected = table_rows(&mut s.conn, &db, "t").await;
    let big = expected.remove("30").expect("row 30");
    let indexed = wait_until(secs(60), async || {
        s.daemon.assert_running();
        es.count(&index).await == expected.len() as u64
    })
    .await;
    let diff = diff_docs(&expected, &es.docs(&index).await);
    assert!(
        indexed && diff.is_empty(),
        "index != table without row 30: {diff}"
    );

    // AND the big one is in the dead-letter file, saying why, and counted as rejected
    assert!(
        wait_until(secs(30), async || !s.daemon.dead_letters().is_empty()).await,
        "no dead letter"
    );
    let letters = s.daemon.dead_letters();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["id"], "30", "{letter}");
    assert_eq!(letter["index"], index.as_str(), "{letter}");
    assert_eq!(letter["status"], 413, "{letter}");
    assert!(
        letter["error"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("maximum request size")),
        "{letter}"
    );
    assert_eq!(letter["document"], big, "{letter}");
    assert_eq!(s.metric("binlog2es_rejected_documents_total").await, 1.0);
    // The batch was split, not sent document by document.
    let refused = s.proxy.hits(Fault::MaxBody(MAX_BODY));
    assert!(
        (2..=12).contains(&refused),
        "413 answers: {refused}; {}",
        s.proxy.stats()
    );
    assert!(
        s.daemon.log().contains("splitting it in two"),
        "{}",
        s.daemon.log()
    );

    // AND the daemon keeps running: later rows stream and the checkpoint passes the big row
    s.sql("INSERT INTO t VALUES (60, 'after')").await;
    assert!(
        wait_until(secs(30), async || es.get(&index, "60").await.is_some()).await,
        "row 60 was not indexed"
    );
    assert!(
        wait_until(secs(10), async || s.daemon.checkpoint_position()
            >= after_big)
        .await,
        "the checkpoint stays at {:?}, before {after_big:?}",
        s.daemon.checkpoint_position()
    );
    s.daemon.assert_running();
    assert_eq!(s.daemon.terminate().await, 0, "{}", s.daemon.log());
}

#[tokio::test]
async fn a_document_over_the_sinks_request_size_stops_the_daemon_with_on_rejected_fail() {
    // GIVEN dead_letter.on_rejected = "fail" and a sink refusing bulk bodies over 64 KiB
    let mut s = Setup::start_with(
        "too-large-fail",
        "",
        "[dead_letter]\non_rejected = \"fail\"",
    )
    .await;
    let before_big = s.binlog_position().await;
    s.proxy.set(Fault::MaxBody(64 * 1024));

    // WHEN a row of 100 kB is written
    s.sql("INSERT INTO t VALUES (30, REPEAT('x', 100000))")
        .await;

    // THEN the daemon exits 1 naming the document and the limit, the checkpoint before it
    let code = s.daemon.wait_exit(secs(30)).await;
    assert_eq!(code, 1, "{}", s.daemon.log());
    let log = s.daemon.log();
    assert!(
        log.contains("rejected document `30`") && log.contains("maximum request size"),
        "{log}"
    );
    assert!(
        s.daemon.checkpoint_position() <= before_big,
        "the checkpoint {:?} passed the refused row (at {before_big:?})",
        s.daemon.checkpoint_position()
    );
    assert!(s.daemon.dead_letters().is_empty());
}

#[tokio::test]
async fn batches_stay_within_max_bytes() {
    // GIVEN writer.max_bytes = 64 KiB and a sink refusing bulk bodies over 64 KiB
    let mut s = Setup::start(
        "max-bytes",
        "lanes = 1\nmax_bytes = 65536\nmax_delay_ms = 200",
    )
    .await;
    s.proxy.set(Fault::MaxBody(65536));

    // WHEN one transaction writes 30 rows of 20 kB (three fit in a batch, four do not)
    let rows: Vec<String> = (10..40)
        .map(|id| format!("({id}, REPEAT(CHAR(65 + {id} % 26), 20000))"))
        .collect();
    s.sql(&format!("INSERT INTO t VALUES {}", rows.join(", ")))
        .await;

    // THEN every batch fits: the index equals the table, and no request was refused
    let (env, db, index) = (s.env, s.db.clone(), s.index.clone());
    wait_until_index_equals_table(env, &mut s.daemon, &db, "t", &index, secs(60)).await;
    assert_eq!(
        s.proxy.hits(Fault::MaxBody(65536)),
        0,
        "{}",
        s.proxy.stats()
    );
    assert!(s.proxy.bulk_passed() >= 10, "{}", s.proxy.stats());
    assert!(s.daemon.dead_letters().is_empty());
}

#[tokio::test]
async fn a_row_larger_than_the_whole_byte_budget_still_passes() {
    // GIVEN a byte budget of 1 MiB (and batches of at most 1 MiB)
    let mut s = Setup::start(
        "over-budget",
        "lanes = 2\nmax_bytes = 1048576\nmax_buffered_bytes = 1048576",
    )
    .await;

    // WHEN rows of 3 MB, larger than the whole budget, are written between small ones
    for id in 10..14 {
        s.sql(&format!("INSERT INTO t VALUES ({id}, 'small {id}')"))
            .await;
        s.sql(&format!(
            "INSERT INTO t VALUES ({}, REPEAT('y', 3000000))",
            id + 100
        ))
        .await;
    }

    // THEN each takes the whole budget in turn instead of waiting forever: all arrive
    let (env, db, index) = (s.env, s.db.clone(), s.index.clone());
    wait_until_index_equals_table(env, &mut s.daemon, &db, "t", &index, secs(60)).await;
    assert!(s.daemon.dead_letters().is_empty());
}
