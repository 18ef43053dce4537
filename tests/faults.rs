//! Real faults, survived (issue 5, SPEC §2): Elasticsearch refusing connections, answering
//! 429/503, stalling or cutting responses (through the fault-injecting proxy), MariaDB
//! stopped and started again, the binlog dump connection killed, the daemon SIGKILLed
//! mid-batch or after a torn checkpoint write, and SIGTERM under load.
//!
//! Each fault test ends with the index equal to the table and prints the recovery time, from
//! the fault's end to convergence, as `fault-recovery: NAME=SECONDSs` (grep for it). Retries use
//! small delays (`retry_initial_ms = 50`, `retry_max_ms = 1000`) to keep the suite fast.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::{EsProxy, Fault};
use common::*;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, \
                     n INT NOT NULL, note TEXT NULL) DEFAULT CHARSET = utf8mb4";

/// Short retry delays: an outage ends in at most about a second more.
const FAST_RETRIES: &str = "retry_initial_ms = 50\nretry_max_ms = 1000";

/// What a test changes in the daemon's configuration.
#[derive(Default)]
struct Options {
    /// Lines before the first section (e.g. `shutdown_timeout`).
    top: &'static str,
    /// Lines in `[elasticsearch]` (e.g. `request_timeout`).
    elasticsearch: &'static str,
    /// Lines in `[writer]`, after the fast retries.
    writer: &'static str,
    /// Route the daemon's Elasticsearch traffic through a fault proxy.
    proxy: bool,
    /// Serve the operations endpoint on a known port (see [`Setup::metrics`]).
    metrics: bool,
}

/// A database with table `t` holding rows 1..=20, a daemon streaming it (through a proxy when
/// asked), and the index already equal to the table, so that the index exists and the table's
/// schema is known before any fault starts.
struct Setup {
    env: &'static TestEnv,
    db: String,
    conn: Conn,
    index: String,
    daemon: Daemon,
    proxy: Option<EsProxy>,
    /// `http://127.0.0.1:PORT` of the operations endpoint, when asked for.
    http: Option<String>,
}

impl Setup {
    async fn start(prefix: &str, options: Options) -> Setup {
        let env = TestEnv::get();
        let (db, conn) = env.create_database_with(TABLE).await;
        let index = env.unique_index(prefix);
        let proxy = options.proxy.then(|| EsProxy::start(&env.es_url));
        let mut builder = Daemon::builder(env)
            .table(&format!("{db}.t"), &index)
            .extra_toml(&format!("[writer]\n{FAST_RETRIES}\n{}", options.writer));
        if let Some(proxy) = &proxy {
            builder = builder.es_url(proxy.url());
        }
        let http_addr = options
            .metrics
            .then(|| format!("127.0.0.1:{}", free_port()));
        if let Some(addr) = &http_addr {
            builder = builder.http_listen(addr);
        }
        let http = http_addr.map(|addr| format!("http://{addr}"));
        let mut daemon = build_with(builder, options.top, options.elasticsearch);
        daemon.restart().await;
        let mut setup = Setup {
            env,
            db,
            conn,
            index,
            daemon,
            proxy,
            http,
        };
        setup.sql(&insert_rows(1..=20)).await;
        setup.converge().await;
        setup
    }

    /// The value of metric `name` (summed over its series) from `/metrics`.
    async fn metric(&self, name: &str) -> Option<f64> {
        metric(self.http.as_ref().expect("started without metrics"), name).await
    }

    async fn sql(&mut self, sql: &str) {
        self.conn
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Waits (up to 120 s, the daemon running) until the index equals the table.
    async fn converge(&mut self) -> Diff {
        let (env, db, index) = (self.env, &self.db, &self.index);
        wait_until_index_equals_table(env, &mut self.daemon, db, "t", index, secs(120)).await
    }

    /// Converges, then prints and returns the time since `fault_end`.
    async fn recovered(&mut self, name: &str, fault_end: Instant) -> Duration {
        let diff = self.converge().await;
        report_recovery(name, fault_end, &diff)
    }

    /// A background writer on a connection of its own; see [`random_writer`].
    async fn writer(&self, seed: u64) -> Background {
        random_writer(self.env.mysql_db(&self.db).await, seed)
    }

    /// The daemon ends cleanly and dead-lettered nothing (no fault here rejects a document).
    async fn finish(mut self) {
        assert!(
            self.daemon.dead_letters().is_empty(),
            "dead letters: {:?}",
            self.daemon.dead_letters()
        );
        assert_eq!(self.daemon.terminate().await, 0, "{}", self.daemon.log());
    }
}

/// Writes the config of `builder`, adding `top` lines before the first section and
/// `elasticsearch` lines to `[elasticsearch]` (the builder has no hook for either).
fn build_with(builder: DaemonBuilder, top: &str, elasticsearch: &str) -> Daemon {
    let daemon = builder.build();
    let path = daemon.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[elasticsearch]\n"), "{text}");
    let text = text.replacen(
        "[elasticsearch]\n",
        &format!("[elasticsearch]\n{elasticsearch}\n"),
        1,
    );
    std::fs::write(&path, format!("{top}\n{text}")).unwrap();
    daemon
}

fn report_recovery(name: &str, fault_end: Instant, diff: &Diff) -> Duration {
    let took = fault_end.elapsed();
    println!(
        "fault-recovery: {name}={:.1}s (rows={})",
        took.as_secs_f64(),
        diff.rows
    );
    took
}

/// `INSERT INTO t VALUES (id, 'row-id', id, NULL), …` for the ids.
fn insert_rows(ids: std::ops::RangeInclusive<u64>) -> String {
    let rows: Vec<String> = ids
        .map(|i| format!("({i}, 'row-{i}', {i}, NULL)"))
        .collect();
    format!("INSERT INTO t VALUES {}", rows.join(", "))
}

/// Random inserts, updates, deletes, key changes and transactions (some rolled back) on ids
/// 1..=300, one statement every few milliseconds, until stopped.
fn random_writer(conn: Conn, seed: u64) -> Background {
    let mut rng = StdRng::seed_from_u64(seed);
    Background::spawn(conn, move |_| {
        let sql = if rng.random_bool(0.2) {
            let size = rng.random_range(2..=5);
            let changes: Vec<String> = (0..size).map(|_| random_change(&mut rng)).collect();
            let end = if rng.random_bool(0.2) {
                "ROLLBACK"
            } else {
                "COMMIT"
            };
            format!("BEGIN; {}; {end}", changes.join("; "))
        } else {
            random_change(&mut rng)
        };
        (sql, Duration::from_millis(rng.random_range(2..=15)))
    })
}

fn random_change(rng: &mut StdRng) -> String {
    let id = rng.random_range(1..=300u32);
    let n = rng.random_range(0..1_000_000u32);
    match rng.random_range(0..10) {
        0..=3 => format!(
            "INSERT INTO t VALUES ({id}, 'name {n}', {n}, 'note {n}') \
             ON DUPLICATE KEY UPDATE n = {n}, name = 'upd {n}'"
        ),
        4..=5 => format!("UPDATE t SET n = n + 1, note = 'upd {n}' WHERE id = {id}"),
        6 => format!("DELETE FROM t WHERE id = {id}"),
        7 => format!(
            "UPDATE IGNORE t SET id = {} WHERE id = {id}",
            rng.random_range(1..=300u32)
        ),
        8 => format!("UPDATE t SET n = n + 1 WHERE id BETWEEN {id} AND {id} + 10"),
        _ => format!("UPDATE t SET note = NULL WHERE id = {id}"),
    }
}

/// Lines of the daemon's log with `needle`.
fn log_lines(daemon: &Daemon, needle: &str) -> Vec<String> {
    daemon
        .log()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

const BULK_RETRY: &str = "Bulk request failed, retrying";

/// Prints the first and the last retry line, to show what the daemon logged.
fn print_retries(name: &str, retries: &[String]) {
    for line in [retries.first(), retries.last()].into_iter().flatten() {
        println!("{name}: retry logged: {line}");
    }
}

/// Keeps `fault` on for at least `min` and until it was applied `hits` times (at most 60 s),
/// checking that the daemon keeps running.
async fn hold_fault(daemon: &mut Daemon, proxy: &EsProxy, fault: Fault, min: Duration, hits: u64) {
    proxy.set(fault);
    let started = Instant::now();
    loop {
        daemon.assert_running();
        if started.elapsed() >= min && proxy.hits(fault) >= hits {
            return;
        }
        assert!(
            started.elapsed() < secs(60),
            "{fault:?} was hit {} times in 60 s, expected {hits}: {}",
            proxy.hits(fault),
            proxy.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The proxy itself: each fault does what it says, seen from a plain HTTP client.
#[tokio::test]
async fn proxy_injects_each_fault() {
    let env = TestEnv::get();
    let proxy = EsProxy::start(&env.es_url);
    let index = env.unique_index("proxy");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let bulk = |http: &reqwest::Client| {
        let body = format!("{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"1\"}}}}\n{{\"a\":1}}\n");
        http.post(format!("{}/_bulk", proxy.url()))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };

    // Pass-through, keep-alive: several requests on one pooled connection.
    for _ in 0..3 {
        let resp = bulk(&http).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["errors"], false, "{body}");
    }
    let root = http.get(proxy.url()).send().await.unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(proxy.bulk_passed(), 3);
    assert_eq!(proxy.hits(Fault::PassThrough), 4);

    // Status: _bulk answered by the proxy, other requests still forwarded.
    proxy.set(Fault::Status(429));
    let resp = bulk(&http).await.unwrap();
    assert_eq!(resp.status(), 429);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], 429, "{body}");
    assert_eq!(http.get(proxy.url()).send().await.unwrap().status(), 200);
    assert_eq!(proxy.hits(Fault::Status(429)), 1);

    // Stall: the request times out on the client's side.
    proxy.set(Fault::Stall);
    let err = bulk(&http).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(proxy.hits(Fault::Stall), 1);

    // Cut: the body ends early, after Elasticsearch applied the request.
    proxy.set(Fault::Cut);
    let outcome = match bulk(&http).await {
        Ok(resp) => resp.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(outcome.is_err(), "a cut response read whole");
    assert_eq!(proxy.hits(Fault::Cut), 1);

    // Refuse: accepted, then reset (a fresh client: a pooled connection is reset as well,
    // but may be dropped before its request is counted).
    proxy.set(Fault::Refuse);
    assert!(bulk(&reqwest::Client::new()).await.is_err());
    assert!(proxy.hits(Fault::Refuse) >= 1);

    // Down: the port refuses connections.
    proxy.set(Fault::Down);
    let port = proxy.url().rsplit(':').next().unwrap().to_string();
    let started = Instant::now();
    // The listener closes asynchronously: wait for the refusal, within a bound.
    let refused = loop {
        let connect = std::net::TcpStream::connect(format!("127.0.0.1:{port}"));
        match connect {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break true,
            _ if started.elapsed() > secs(5) => break false,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    assert!(refused, "the port still accepts connections 5 s after Down");

    // And back.
    proxy.set(Fault::PassThrough);
    assert!(
        wait_until(secs(5), async || bulk(&http)
            .await
            .is_ok_and(|r| r.status() == 200))
        .await,
        "{}",
        proxy.stats()
    );
}

#[tokio::test]
async fn es_refusing_connections_for_30s_loses_nothing() {
    // GIVEN a synced table and a writer changing it all along
    let mut s = Setup::start(
        "refused",
        Options {
            proxy: true,
            metrics: true,
            ..Options::default()
        },
    )
    .await;
    let writer = s.writer(1).await;

    // WHEN Elasticsearch is unreachable for 30 s: 15 s not listening (ECONNREFUSED), then
    // 15 s accepting and resetting every connection
    let proxy = s.proxy.take().unwrap();
    hold_fault(&mut s.daemon, &proxy, Fault::Down, secs(1), 0).await;
    // A request forwarded just before the switch may still land; nothing after it.
    let docs_before = s.env.es().count(&s.index).await;
    hold_fault(&mut s.daemon, &proxy, Fault::Down, secs(14), 0).await;
    let retries_while_down = log_lines(&s.daemon, BULK_RETRY).len();
    hold_fault(&mut s.daemon, &proxy, Fault::Refuse, secs(15), 1).await;
    assert_eq!(
        s.env.es().count(&s.index).await,
        docs_before,
        "documents changed while Elasticsearch was unreachable"
    );
    let lag_in_outage = s.metric("binlog2es_lag_seconds").await;
    let retries_metric = s.metric("binlog2es_bulk_retries_total").await;
    proxy.set(Fault::PassThrough);
    let fault_end = Instant::now();
    let statements = writer.stop().await;

    // THEN the daemon retried throughout, kept running, and converges
    let recovery = s.recovered("es-refused", fault_end).await;
    let retries = log_lines(&s.daemon, BULK_RETRY).len();
    println!(
        "es-refused: statements={statements} retries_while_down={retries_while_down} \
         retries={retries} proxy: {}",
        proxy.stats()
    );
    print_retries("es-refused", &log_lines(&s.daemon, BULK_RETRY));
    assert!(statements > 100, "the writer ran {statements} statements");
    assert!(retries_while_down > 0, "no retry while not listening");
    assert!(retries > retries_while_down, "no retry while resetting");
    assert!(proxy.hits(Fault::Refuse) > 0, "{}", proxy.stats());
    // Retries back off to at most retry_max_ms: recovery takes about that long, not longer.
    assert!(recovery < secs(30), "recovery took {recovery:?}");

    // AND the metrics showed the outage: retries counted, lag of about the outage's length
    // during it, and back to (near) zero after
    let mut lag_after = None;
    let lag_recovered = wait_until(secs(10), async || {
        lag_after = s.metric("binlog2es_lag_seconds").await;
        lag_after.is_some_and(|lag| lag < 5.0)
    })
    .await;
    println!(
        "es-refused: metrics: retries_total={retries_metric:?} lag_in_outage={lag_in_outage:?} \
         lag_after={lag_after:?}"
    );
    assert!(
        retries_metric.is_some_and(|n| n >= retries_while_down as f64),
        "binlog2es_bulk_retries_total = {retries_metric:?}, yet {retries_while_down} retries \
         were logged while not listening"
    );
    assert!(
        lag_in_outage.is_some_and(|lag| lag >= 20.0),
        "binlog2es_lag_seconds = {lag_in_outage:?} after a 30 s outage with writes"
    );
    assert!(
        lag_recovered,
        "binlog2es_lag_seconds = {lag_after:?} after recovery"
    );
    s.finish().await;
}

#[tokio::test]
async fn es_answering_429_then_503_is_retried() {
    // GIVEN a synced table and a writer changing it
    let mut s = Setup::start(
        "throttled",
        Options {
            proxy: true,
            ..Options::default()
        },
    )
    .await;
    let writer = s.writer(2).await;
    let proxy = s.proxy.take().unwrap();

    // WHEN every _bulk is answered 429 for a while, then 503
    hold_fault(&mut s.daemon, &proxy, Fault::Status(429), secs(3), 5).await;
    hold_fault(&mut s.daemon, &proxy, Fault::Status(503), secs(3), 5).await;
    proxy.set(Fault::PassThrough);
    let fault_end = Instant::now();
    let statements = writer.stop().await;

    // THEN it converges, and the log shows the retries of both
    s.recovered("es-429-503", fault_end).await;
    let retries = log_lines(&s.daemon, BULK_RETRY);
    println!(
        "es-429-503: statements={statements} retries={} proxy: {}",
        retries.len(),
        proxy.stats()
    );
    print_retries("es-429-503", &retries);
    for status in ["429", "503"] {
        assert!(
            retries
                .iter()
                .any(|l| l.contains(status) && l.contains("WARN")),
            "no WARN retry line mentioning {status}:\n{}",
            retries.join("\n")
        );
    }
    s.finish().await;
}

#[tokio::test]
async fn es_stalling_is_detected_by_request_timeout() {
    // GIVEN a daemon whose bulk requests time out after 2 s
    let mut s = Setup::start(
        "stalled",
        Options {
            proxy: true,
            elasticsearch: "request_timeout = \"2s\"",
            ..Options::default()
        },
    )
    .await;
    let writer = s.writer(3).await;
    let proxy = s.proxy.take().unwrap();

    // WHEN Elasticsearch reads the _bulk requests and never answers, for 6 s
    hold_fault(&mut s.daemon, &proxy, Fault::Stall, secs(6), 2).await;
    proxy.set(Fault::PassThrough);
    let fault_end = Instant::now();
    let statements = writer.stop().await;

    // THEN the stalled requests time out and are retried, and it converges
    let recovery = s.recovered("es-stall", fault_end).await;
    let retries = log_lines(&s.daemon, BULK_RETRY);
    println!(
        "es-stall: statements={statements} retries={} proxy: {}",
        retries.len(),
        proxy.stats()
    );
    print_retries("es-stall", &retries);
    assert!(!retries.is_empty(), "no retry after a stalled request");
    // A stalled request is abandoned after request_timeout, then retried within retry_max_ms.
    assert!(recovery < secs(20), "recovery took {recovery:?}");
    s.finish().await;
}

#[tokio::test]
async fn cut_responses_are_retried_idempotently() {
    // GIVEN a synced table and a writer changing it
    let mut s = Setup::start(
        "cut",
        Options {
            proxy: true,
            ..Options::default()
        },
    )
    .await;
    let writer = s.writer(4).await;
    let proxy = s.proxy.take().unwrap();

    // WHEN each _bulk reaches Elasticsearch but its response is cut in half, for a while
    hold_fault(&mut s.daemon, &proxy, Fault::Cut, secs(3), 5).await;
    proxy.set(Fault::PassThrough);
    let fault_end = Instant::now();
    let statements = writer.stop().await;

    // THEN the batches are sent again, the replays change nothing stale, and it converges
    s.recovered("es-cut", fault_end).await;
    let retries = log_lines(&s.daemon, BULK_RETRY);
    println!(
        "es-cut: statements={statements} retries={} proxy: {}",
        retries.len(),
        proxy.stats()
    );
    print_retries("es-cut", &retries);
    assert!(!retries.is_empty(), "no retry after a cut response");
    s.finish().await;
}

#[tokio::test]
async fn backpressure_bounds_memory_and_holds_the_checkpoint() {
    const ROWS: u64 = 10_000;
    const NOTE_BYTES: u64 = 6_000;
    const CAP_KIB: u64 = 256 * 1024;
    // GIVEN a daemon with small queues and an 8 MiB byte budget (while the sink is behind,
    // lanes gather their queues into their backlogs until the budget is spent: that is its
    // legitimate bound, far below the data written) and Elasticsearch refusing every
    // connection
    let mut s = Setup::start(
        "backpressure",
        Options {
            proxy: true,
            writer: "queue_capacity = 64\nmax_docs = 50\nmax_bytes = 1048576\n\
                     max_buffered_bytes = 8388608",
            ..Options::default()
        },
    )
    .await;
    let proxy = s.proxy.take().unwrap();
    let rss_before = s.daemon.rss_kib().expect("VmRSS");
    proxy.set(Fault::Refuse);

    // WHEN 10k rows of 6 kB each (60 MB) are written in 1000-row transactions
    let mut conn = s.env.mysql_db(&s.db).await;
    let mut first_end = None;
    let mut checkpoints = Vec::new();
    for chunk in 0..ROWS / 1000 {
        let from = 1000 + chunk * 1000;
        let n = format!("({from} + d1.d + 10 * d2.d + 100 * d3.d)");
        conn.query_drop(format!(
            "INSERT INTO t (id, name, n, note) \
             SELECT {n}, CONCAT('big-', {n}), {n} % 1000, \
             REPEAT(CHAR(65 + {n} % 26), {NOTE_BYTES}) \
             FROM {} CROSS JOIN {} CROSS JOIN {}",
            digits("d1"),
            digits("d2"),
            digits("d3")
        ))
        .await
        .unwrap();
        if first_end.is_none() {
            // The end of the first outage transaction is at or before this position.
            first_end = Some(binlog_position(&mut conn).await);
        }
        checkpoints.push(s.daemon.checkpoint_position());
    }
    // Give the reader time to fill every queue it can.
    let settle = Instant::now();
    while settle.elapsed() < secs(3) {
        s.daemon.assert_running();
        checkpoints.push(s.daemon.checkpoint_position());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // THEN memory stayed bounded, and the checkpoint never passed the first unacknowledged
    // transaction
    let peak = s.daemon.peak_rss_kib().expect("VmHWM");
    let data_kib = ROWS * NOTE_BYTES / 1024;
    println!(
        "backpressure: rows={ROWS} data={} MiB rss_before={} MiB peak_rss={} MiB proxy: {}",
        data_kib / 1024,
        rss_before / 1024,
        peak / 1024,
        proxy.stats()
    );
    assert!(proxy.hits(Fault::Refuse) > 0, "{}", proxy.stats());
    assert!(peak < CAP_KIB, "peak RSS {} MiB", peak / 1024);
    assert!(
        peak - rss_before.min(peak) < data_kib / 2,
        "RSS grew by {} MiB while {} MiB were written: the daemon buffers instead of \
         applying backpressure",
        (peak - rss_before) / 1024,
        data_kib / 1024
    );
    let first_end = first_end.unwrap();
    for checkpoint in &checkpoints {
        assert!(
            *checkpoint < first_end,
            "the checkpoint reached {checkpoint:?} while the transaction ending at or before \
             {first_end:?} was not acknowledged"
        );
    }

    // AND once Elasticsearch is back, everything arrives and the checkpoint moves on
    proxy.set(Fault::PassThrough);
    let fault_end = Instant::now();
    let end = binlog_position(&mut conn).await;
    s.recovered("backpressure", fault_end).await;
    assert!(
        wait_until(secs(10), async || s.daemon.checkpoint_position() >= end).await,
        "the checkpoint stays at {:?}, before {end:?}",
        s.daemon.checkpoint_position()
    );
    s.finish().await;
}

/// `(SELECT 0 AS d UNION ALL … SELECT 9) alias`: ten rows, plain SQL for MariaDB and MySQL.
fn digits(alias: &str) -> String {
    let rest: String = (1..10).map(|d| format!(" UNION ALL SELECT {d}")).collect();
    format!("(SELECT 0 AS d{rest}) {alias}")
}

/// The server's binlog end (file, offset) on this connection; compares like
/// [`Daemon::checkpoint_position`].
async fn binlog_position(conn: &mut Conn) -> (String, u64) {
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(row) => row,
        Err(_) => conn.query_first("SHOW BINARY LOG STATUS").await.unwrap(),
    };
    let row = row.expect("binary logging is off");
    (row.get(0).unwrap(), row.get(1).unwrap())
}

/// Inserts a row (and updates an earlier one) every 20 ms, with ids from `first` on, until
/// stopped, on a connection opened again whenever it fails (the server may be down).
struct ResilientWriter {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<u64>,
}

impl ResilientWriter {
    fn spawn(url: &str, db: &str, first: u64) -> ResilientWriter {
        let opts = mysql_async::OptsBuilder::from_opts(Opts::from_url(url).unwrap())
            .db_name(Some(db.to_string()));
        let (stop, failed, written) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let task = tokio::spawn(resilient_writer(
            opts.into(),
            first,
            stop.clone(),
            [failed.clone(), written.clone()],
        ));
        ResilientWriter {
            stop,
            failed,
            written,
            task,
        }
    }

    /// Waits until `more` statements succeeded after this call (the server takes writes).
    async fn wait_for_writes(&self, more: u64) {
        let target = self.written.load(Ordering::Relaxed) + more;
        assert!(
            wait_until(secs(60), async || self.written.load(Ordering::Relaxed)
                >= target)
            .await,
            "the writer did not write {more} more statements in 60 s"
        );
    }

    /// Statements that failed so far.
    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Stops it; returns the statements that succeeded and those that failed.
    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let done = self.task.await.unwrap();
        (done, self.failed.load(Ordering::Relaxed))
    }
}

async fn resilient_writer(
    opts: Opts,
    first: u64,
    stop: Arc<AtomicBool>,
    [failed, written]: [Arc<AtomicU64>; 2],
) -> u64 {
    let mut conn: Option<Conn> = None;
    let mut id = first;
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = Conn::new(opts.clone()).await.ok();
        }
        let ok = match conn.as_mut() {
            Some(c) => {
                let sql = format!(
                    "INSERT INTO t VALUES ({id}, 'w-{id}', {id}, NULL); \
                     UPDATE t SET n = n + 1 WHERE id = {}",
                    id - 5
                );
                c.query_drop(sql).await.is_ok()
            }
            None => false,
        };
        if ok {
            done += 1;
            written.fetch_add(1, Ordering::Relaxed);
        } else {
            conn = None;
            failed.fetch_add(1, Ordering::Relaxed);
        }
        id += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(conn) = conn {
        conn.disconnect().await.ok();
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_stopped_and_started_again_mid_stream() {
    // GIVEN a MariaDB of its own, a daemon streaming a table of it, and a writer inserting
    // rows all along (reconnecting whenever the server is gone)
    let mut env = TestEnv::dedicated(&[]);
    let (db, mut conn) = env.create_database_with(TABLE).await;
    let index = env.unique_index("mariadb-restart");
    let mut daemon = Daemon::builder(&env)
        .table(&format!("{db}.t"), &index)
        .extra_toml(&format!("[writer]\n{FAST_RETRIES}"))
        .start()
        .await;
    conn.query_drop(insert_rows(1..=20)).await.unwrap();
    conn.disconnect().await.ok();
    let writer = ResilientWriter::spawn(&env.admin_url, &db, 1000);
    writer.wait_for_writes(30).await;

    // WHEN the server is stopped cleanly for 3 s (the writer's statements fail meanwhile) and
    // started again, the writer going on for 1 s more
    tokio::task::block_in_place(|| env.server().stop());
    let down = Instant::now();
    while down.elapsed() < secs(3) {
        daemon.assert_running();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed_while_stopped = writer.failed();
    tokio::task::block_in_place(|| env.server().start());
    let restarted = Instant::now();
    writer.wait_for_writes(30).await;
    let (written, failed) = writer.stop().await;

    // THEN the daemon reconnects and the index equals the table
    let diff = wait_until_index_equals_table(&env, &mut daemon, &db, "t", &index, secs(120)).await;
    report_recovery("mariadb-stop", restarted, &diff);
    println!("mariadb-stop: written={written} failed={failed}");
    assert!(failed_while_stopped > 0, "no write failed while stopped");
    assert!(written >= 60, "the writer wrote {written} statements");

    // AND the same when the server crashes (SIGKILL) for 2 s
    let writer = ResilientWriter::spawn(&env.admin_url, &db, 100_000);
    writer.wait_for_writes(20).await;
    tokio::task::block_in_place(|| env.server().kill());
    tokio::time::sleep(Duration::from_secs(2)).await;
    daemon.assert_running();
    tokio::task::block_in_place(|| env.server().start());
    let restarted = Instant::now();
    writer.wait_for_writes(20).await;
    let (written, failed) = writer.stop().await;
    let diff = wait_until_index_equals_table(&env, &mut daemon, &db, "t", &index, secs(120)).await;
    report_recovery("mariadb-kill", restarted, &diff);
    let lost = log_lines(&daemon, "Replication stream lost, reconnecting");
    println!(
        "mariadb-kill: written={written} failed={failed} reconnect_warnings={}",
        lost.len()
    );
    assert!(failed > 0, "no write failed while the server was down");
    assert!(daemon.dead_letters().is_empty());
    assert_eq!(daemon.terminate().await, 0, "{}", daemon.log());
}

/// The local ports of `pid`'s TCP connections to `remote_port` (from /proc).
fn local_ports_to(pid: u32, remote_port: u16) -> Vec<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|target| {
                    let t = target.to_string_lossy().into_owned();
                    Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let port = |address: &str| u16::from_str_radix(address.rsplit(':').next()?, 16).ok();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && port(cols[2]) == Some(remote_port) && inodes.contains(cols[9]) {
                ports.extend(port(cols[1]));
            }
        }
    }
    ports
}

/// The id of the `Binlog Dump` thread serving `daemon`, found by its client port.
async fn dump_thread(conn: &mut Conn, daemon: &Daemon, mysql_port: u16) -> Option<u64> {
    let ports = local_ports_to(daemon.pid()?, mysql_port);
    let threads: Vec<(u64, String)> = conn
        .query(
            "SELECT ID, HOST FROM information_schema.PROCESSLIST \
             WHERE COMMAND LIKE 'Binlog Dump%'",
        )
        .await
        .unwrap();
    threads.into_iter().find_map(|(id, host)| {
        let port: u16 = host.rsplit(':').next()?.parse().ok()?;
        ports.contains(&port).then_some(id)
    })
}

/// Kills the daemon's binlog dump thread `times` times, each time `pause` after the daemon
/// has a new one. Returns the killed thread ids, the reconnect times (from a kill to the next
/// dump thread), and when the last kill happened.
async fn kill_dump_threads(
    s: &mut Setup,
    times: usize,
    pause: Duration,
) -> (Vec<u64>, Vec<Duration>, Instant) {
    let mysql_port = Opts::from_url(&s.env.admin_url).unwrap().tcp_port();
    let mut admin = s.env.mysql().await;
    let mut killed = Vec::new();
    let mut reconnects = Vec::new();
    let mut last_kill = Instant::now();
    for round in 0..=times {
        let mut thread = None;
        let found = wait_until(secs(60), async || {
            thread = dump_thread(&mut admin, &s.daemon, mysql_port).await;
            thread.is_some_and(|t| !killed.contains(&t))
        })
        .await;
        s.daemon.assert_running();
        assert!(
            found,
            "no (new) binlog dump thread of the daemon within 60 s; killed {killed:?}"
        );
        if round > 0 {
            reconnects.push(last_kill.elapsed());
        }
        if round == times {
            break;
        }
        tokio::time::sleep(pause).await;
        let thread = thread.unwrap();
        admin.query_drop(format!("KILL {thread}")).await.unwrap();
        last_kill = Instant::now();
        killed.push(thread);
    }
    (killed, reconnects, last_kill)
}

#[tokio::test]
async fn killed_binlog_dump_connection_reconnects() {
    // GIVEN a synced table and a writer changing it
    let mut s = Setup::start("dumpkill", Options::default()).await;
    let writer = s.writer(7).await;

    // WHEN the daemon's binlog dump thread is killed three times, each time once the daemon
    // has a new one
    let (killed, reconnects, last_kill) =
        kill_dump_threads(&mut s, 3, Duration::from_millis(500)).await;
    let statements = writer.stop().await;

    // THEN it reconnects from its position and converges
    s.recovered("dump-killed", last_kill).await;
    println!("dump-killed: statements={statements} killed={killed:?} reconnects={reconnects:?}");
    assert!(
        !log_lines(&s.daemon, "Replication stream lost, reconnecting").is_empty(),
        "no reconnect warning"
    );
    s.finish().await;
}

#[tokio::test]
async fn reconnect_stays_prompt_after_many_separate_disconnects() {
    // GIVEN a synced table and a writer changing it
    let mut s = Setup::start("dumpkills", Options::default()).await;
    let writer = s.writer(8).await;

    // WHEN the binlog dump thread is killed 7 times, 1 s after each reconnect (separate
    // outages, each over at once: the server is up all along)
    let (killed, reconnects, last_kill) = kill_dump_threads(&mut s, 7, secs(1)).await;
    let statements = writer.stop().await;

    // THEN it converges, and every reconnect was prompt: a backoff that is never reset after
    // a successful connection would make the Nth blip cost 0.2 s x 2^N (up to 30 s)
    s.recovered("dump-killed-7x", last_kill).await;
    println!("dump-killed-7x: statements={statements} killed={killed:?} reconnects={reconnects:?}");
    let slowest = reconnects.iter().max().unwrap();
    assert!(
        *slowest < secs(5),
        "reconnecting after a killed dump thread took up to {slowest:?} (each: {reconnects:?}); \
         the server was reachable all along"
    );
    s.finish().await;
}

#[tokio::test]
async fn torn_checkpoint_temp_file_is_never_loaded() {
    // GIVEN a synced table and a daemon SIGKILLed as if in the middle of a checkpoint write:
    // a valid checkpoint, and next to it a torn temp file pointing further ahead
    let mut s = Setup::start("torn", Options::default()).await;
    s.sql("UPDATE t SET n = 100 WHERE id <= 5").await;
    s.converge().await;
    s.daemon.kill();
    let valid = std::fs::read_to_string(s.daemon.checkpoint_path()).unwrap();
    let tmp = s.daemon.dir().join(".checkpoint.json.tmp");

    // WHEN rows change while it is down, the temp file claims the binlog's new end, and the
    // daemon starts again
    s.sql(&insert_rows(21..=40)).await;
    s.sql("UPDATE t SET n = 200 WHERE id <= 10; DELETE FROM t WHERE id = 20")
        .await;
    let (file, pos) = binlog_position(&mut s.conn).await;
    let mut ahead = s.daemon.checkpoint();
    ahead["position"] = serde_json::json!({"file": file, "pos": pos});
    let ahead = serde_json::to_string_pretty(&ahead).unwrap();
    let mut torn = ahead.as_bytes()[..ahead.len() * 2 / 3].to_vec();
    torn.extend_from_slice(b"\0\0\0\xff\xfe");
    std::fs::write(&tmp, &torn).unwrap();
    let restarted = Instant::now();
    s.daemon.restart().await;

    // THEN it resumes from the valid checkpoint and converges
    s.recovered("torn-checkpoint", restarted).await;
    let log = s.daemon.last_run_log();
    assert!(log.contains("Resuming from checkpoint"), "{log}");
    assert!(!log.to_lowercase().contains("corrupt"), "{log}");

    // AND a complete temp file that never got renamed is not read either: it claims a
    // position past changes made while the daemon is down, which must still arrive
    s.daemon.kill();
    s.sql(&insert_rows(41..=60)).await;
    s.sql("DELETE FROM t WHERE id <= 3").await;
    let (file, pos) = binlog_position(&mut s.conn).await;
    let mut ahead = s.daemon.checkpoint();
    ahead["position"] = serde_json::json!({"file": file, "pos": pos});
    std::fs::write(&tmp, serde_json::to_string_pretty(&ahead).unwrap()).unwrap();
    let restarted = Instant::now();
    s.daemon.restart().await;
    s.recovered("unrenamed-checkpoint", restarted).await;
    assert_ne!(
        std::fs::read_to_string(s.daemon.checkpoint_path()).unwrap(),
        valid
    );
    s.finish().await;
}

#[tokio::test]
async fn sigkill_during_a_large_transaction_converges() {
    const ROWS: u64 = 20_000;
    // GIVEN a synced table
    let mut s = Setup::start("killbatch", Options::default()).await;
    let es = s.env.es();
    let before = es.count(&s.index).await;

    // WHEN one transaction inserts 20k rows and the daemon is SIGKILLed while it writes them
    let n = "(1000 + d1.d + 10 * d2.d + 100 * d3.d + 1000 * d4.d + 10000 * d5.d)";
    let insert = format!(
        "INSERT INTO t (id, name, n, note) \
         SELECT {n}, CONCAT('bulk-', {n}), {n} % 1000, IF({n} % 7 = 0, NULL, REPEAT('y', 50)) \
         FROM {} CROSS JOIN {} CROSS JOIN {} CROSS JOIN {} CROSS JOIN {} WHERE {n} < {}",
        digits("d1"),
        digits("d2"),
        digits("d3"),
        digits("d4"),
        digits("d5"),
        1000 + ROWS
    );
    s.sql(&insert).await;
    let end = binlog_position(&mut s.conn).await;
    let mut at_kill = before;
    let writing = wait_until(secs(60), async || {
        at_kill = es.count(&s.index).await;
        at_kill > before
    })
    .await;
    s.daemon.kill();
    assert!(writing, "no document of the transaction arrived");
    let after_kill = es.count(&s.index).await;
    let checkpoint = s.daemon.checkpoint_position();
    println!(
        "kill-mid-batch: rows={ROWS} docs_at_kill={} docs_after_kill={} checkpoint={checkpoint:?} \
         txn_end<={end:?}",
        at_kill - before,
        after_kill - before
    );
    // The checkpoint never passes a change Elasticsearch has not acknowledged.
    if checkpoint >= end {
        assert_eq!(
            after_kill,
            before + ROWS,
            "the checkpoint passed the transaction, but only part of it is indexed"
        );
    }

    // THEN after a restart everything arrives
    let restarted = Instant::now();
    s.daemon.restart().await;
    let recovery = s.recovered("kill-mid-batch", restarted).await;
    assert!(
        at_kill - before < ROWS,
        "the daemon had written the whole transaction before the kill (recovery {recovery:?})"
    );
    s.finish().await;
}

/// One insert statement of [`insert_writer`]: its ids, and the binlog end before and after.
#[derive(Clone)]
struct Inserted {
    ids: std::ops::RangeInclusive<u64>,
    before: (String, u64),
    after: (String, u64),
}

/// Inserts 5 new rows per statement until stopped, recording around each statement the
/// binlog end: the statement's transaction lies between `before` and `after`.
async fn insert_writer(mut conn: Conn, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Inserted>>>) {
    let mut next = 1000;
    while !stop.load(Ordering::Relaxed) {
        let before = binlog_position(&mut conn).await;
        let ids = next..=next + 4;
        conn.query_drop(insert_rows(ids.clone())).await.unwrap();
        let after = binlog_position(&mut conn).await;
        next += 5;
        log.lock().unwrap().push(Inserted { ids, before, after });
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    conn.disconnect().await.ok();
}

/// Waits until `insert_writer` logged `more` statements after this call.
async fn wait_for_inserts(log: &Mutex<Vec<Inserted>>, more: usize) {
    let target = log.lock().unwrap().len() + more;
    assert!(
        wait_until(secs(60), async || log.lock().unwrap().len() >= target).await,
        "the writer did not insert {more} more statements in 60 s"
    );
}

#[tokio::test]
async fn sigterm_while_elasticsearch_refuses_exits_1_within_the_timeout() {
    // GIVEN small lane queues, a 3 s drain budget, and Elasticsearch refusing connections
    let mut s = Setup::start(
        "sigtermdown",
        Options {
            top: "shutdown_timeout = \"3s\"",
            writer: "queue_capacity = 64",
            proxy: true,
            metrics: true,
            ..Options::default()
        },
    )
    .await;
    s.proxy.as_ref().unwrap().set(Fault::Refuse);

    // WHEN 10k rows are written, the reader has filled the queues (it has read far more
    // changes than they hold and waits for room), and SIGTERM arrives
    s.sql("INSERT INTO t SELECT seq, CONCAT('row-', seq), seq, NULL FROM seq_21_to_10020")
        .await;
    let blocked = wait_until(secs(60), async || {
        s.metric("binlog2es_changes_total").await.unwrap_or(0.0) >= 1_000.0
    })
    .await;
    assert!(
        blocked,
        "the reader did not read the rows:\n{}",
        s.daemon.stderr_tail(30)
    );
    let sent = Instant::now();
    let code = s.daemon.terminate().await;
    let took = sent.elapsed();

    // THEN it exits 1 (work left behind the checkpoint) within the drain budget, with margin
    let log = s.daemon.last_run_log();
    assert_eq!(code, 1, "{log}");
    assert!(took < secs(8), "exit took {took:?}");
    assert!(!log.contains("panicked"), "{log}");

    // AND with Elasticsearch back, a restart converges
    s.proxy.as_ref().unwrap().set(Fault::PassThrough);
    s.daemon.restart().await;
    let diff = s.converge().await;
    assert_eq!(diff.rows, 10_020);
}

#[tokio::test]
async fn a_failed_checkpoint_write_stops_the_daemon() {
    // GIVEN a streaming daemon
    let mut s = Setup::start("ckptfail", Options::default()).await;

    // WHEN its checkpoint can no longer be written (a directory where its temp file goes:
    // refused even for root) and rows keep changing
    let blocker = s.daemon.dir().join(".checkpoint.json.tmp");
    std::fs::create_dir(&blocker).unwrap();
    s.sql(&insert_rows(21..=30)).await;

    // THEN it stops with exit 1, naming the checkpoint, instead of streaming on with the
    // position on disk frozen
    let code = s.daemon.wait_exit(secs(60)).await;
    let log = s.daemon.last_run_log();
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("cannot write checkpoint"), "{log}");

    // AND once the file can be written again, a restart converges
    std::fs::remove_dir(&blocker).unwrap();
    s.daemon.restart().await;
    let diff = s.converge().await;
    assert_eq!(diff.rows, 30);
}

#[tokio::test]
async fn sigterm_under_load_drains_and_exits_0() {
    // GIVEN a daemon with a 10 s drain budget and a writer inserting rows fast
    let mut s = Setup::start(
        "sigterm",
        Options {
            top: "shutdown_timeout = \"10s\"",
            ..Options::default()
        },
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let writer = tokio::spawn(insert_writer(
        s.env.mysql_db(&s.db).await,
        stop.clone(),
        log.clone(),
    ));
    wait_for_inserts(&log, 100).await;

    // WHEN it gets SIGTERM while the writer keeps going, right after a recent statement's
    // rows arrived
    let es = s.env.es();
    let recent: Inserted = log
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("nothing inserted");
    let last_id = recent.ids.end().to_string();
    assert!(
        wait_until(secs(30), async || es
            .get(&s.index, &last_id)
            .await
            .is_some())
        .await,
        "row {last_id} did not arrive"
    );
    let sent = Instant::now();
    let code = s.daemon.terminate().await;
    let took = sent.elapsed();
    let docs_at_exit = es.docs(&s.index).await;

    // THEN it exits 0 within shutdown_timeout (+ 5 s)
    println!(
        "sigterm: exit={code} after {took:?} docs={}",
        docs_at_exit.len()
    );
    assert_eq!(code, 0, "{}", s.daemon.last_run_log());
    assert!(took < secs(15), "exit took {took:?}");
    let checkpoint = s.daemon.checkpoint_position();
    // The writer goes on while the daemon is down.
    wait_for_inserts(&log, 20).await;
    let restarted = Instant::now();
    s.daemon.restart().await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let inserted = std::mem::take(&mut *log.lock().unwrap());

    // AND the checkpoint it wrote covers what was acknowledged before the signal (the
    // statement's transaction ends after `before`), and nothing it covers is missing
    assert!(
        checkpoint > recent.before,
        "checkpoint {checkpoint:?} does not cover rows {:?} (committed after {:?}), indexed \
         before SIGTERM",
        recent.ids,
        recent.before
    );
    let mut covered = 0;
    for statement in &inserted {
        if statement.after <= checkpoint {
            covered += 1;
            for id in statement.ids.clone() {
                assert!(
                    docs_at_exit.contains_key(&id.to_string()),
                    "row {id} (committed before {:?}) is behind the checkpoint {checkpoint:?} \
                     but was not in the index at exit",
                    statement.after
                );
            }
        }
    }
    println!(
        "sigterm: statements={} covered_by_checkpoint={covered}",
        inserted.len()
    );

    // AND after a restart it converges
    s.recovered("sigterm-restart", restarted).await;
    s.finish().await;
}
