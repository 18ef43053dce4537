//! End-to-end bench against the real servers the integration tests use (a private
//! `mariadbd` and `osmem-server`, or `BINLOG2ES_TEST_MYSQL_URL` / `BINLOG2ES_TEST_ES_URL`).
//!
//! Run: `cargo bench --bench e2e` (about 23 minutes on 2 cores). Under `cargo test` (no
//! `--bench` argument) it prints one line and exits.
//!
//! Workload, in one database table of ~660-byte documents (ints, varchar, ~400 B text,
//! decimal, datetime(6), JSON, SET): 100k inserts in 1000-row transactions, 50k updates and
//! 10k deletes (also 1000 rows per transaction), leaving 90k documents. Every index is
//! created first with `{"dynamic": false}` and three `long` fields (the paced ones of 4
//! with none, see `e2e/paced.rs`), and every run gets an osmem-server of its own (none
//! pays for the documents of an earlier one).
//!
//! 1. **replay**: binlog2es (the release binary, as a child process, default settings)
//!    starts at the position before the workload; timed until its checkpoint reaches the
//!    binlog end (everything acknowledged). Its CPU seconds and peak RSS come from /proc,
//!    the changes it coalesced from its `/metrics`. Then again with a byte budget wide
//!    enough to hold the workload ([`WIDE_WINDOW`]), so every update finds its insert
//!    still waiting in a lane's backlog.
//! 2. **sink raw**, in the same run: the same change stream, every change as one
//!    pre-built bulk op in binlog order, 1000 ops per request, over as many connections as
//!    binlog2es has lanes (ops routed per document, like the lanes) and over one; then the
//!    90k final documents alone. These are the baselines replay is divided by.
//! 3. **streaming**: binlog2es runs first, the workload is loaded as fast as MariaDB takes
//!    it; reports the lag after the last commit and change→searchable latencies of one
//!    sample row per transaction (poll of an `ids` search, 10 ms period).
//! 4. **paced**: 5,000 changes/s (50-row insert transactions every 10 ms) for 10 s against
//!    the same daemon; change→searchable p50/p99 and the daemon's RSS; the sink alone at
//!    that rate; and the same pace into an *instant sink* that notes when each document
//!    arrives: binlog2es' own part of the latency (commit → the sink holds the document).
//!
//! 5. **insert-heavy** (`e2e/insert_heavy.rs`): 200,000 single-table inserts in 1000-row
//!    transactions, replayed (as in 1) with default settings and with the variants of
//!    [`insert_heavy::VARIANTS`], against the same stream as pre-built bodies over `lanes`
//!    connections (sent right before and right after the default replay, as the test
//!    server's speed drifts within a run); then replayed into an
//!    *instant sink* (answers `_bulk` at once, see `support/instant.rs`): the daemon's own
//!    ceiling, in changes/s and CPU per change, next to the source limit, the time
//!    `mariadb-binlog --read-from-remote-server --base64-output=decode-rows -v` takes to
//!    decode the same binlog range. Each replay logs where its lanes spent their time
//!    ("Lane time.", printed here).
//!
//! Env: `BINLOG2ES_E2E_ONLY=replay` runs 1 and 2 only, `=insert-heavy` 5 only,
//! `=paced` 4 only;
//! `BINLOG2ES_E2E_SCALE` (default 1.0) scales the workload; `BINLOG2ES_E2E_WRITER`
//! adds lines to the daemon's `[writer]` section (e.g. `gzip = true`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "e2e/insert_heavy.rs"]
mod insert_heavy;
#[path = "support/instant.rs"]
mod instant;
#[path = "e2e/paced.rs"]
mod paced;
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Daemon, Es, TestEnv};
use insert_heavy::insert_heavy;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde_json::json;
use support::{Sink, cpu_seconds, fresh_sink, ingest, mib, mix, post_bulk};
use tokio::sync::Mutex;

/// Rows per transaction in the bulk workload.
const TXN_ROWS: u64 = 1000;
/// The daemon's `writer.lanes`: from `BINLOG2ES_E2E_WRITER` when it sets them, else the
/// default; the raw baselines use as many connections.
fn lanes() -> usize {
    std::env::var("BINLOG2ES_E2E_WRITER")
        .ok()
        .and_then(|lines| {
            lines.split([';', '\n']).find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == "lanes").then(|| value.trim().parse().ok())?
            })
        })
        .unwrap_or_else(binlog2es::config::default_lanes)
}

const DDL: &str = "CREATE TABLE t (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    customer_id INT NOT NULL,
    sku VARCHAR(32) NOT NULL,
    title VARCHAR(200) NOT NULL,
    body TEXT NOT NULL,
    price DECIMAL(12,2) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    attrs JSON NOT NULL,
    tags SET('red','green','blue','sale','new','eco') NOT NULL,
    rev INT NOT NULL,
    stamp BIGINT NOT NULL
)";

const WORDS: [&str; 16] = [
    "alpha", "brisk", "cobalt", "dune", "ember", "fjord", "garnet", "harbor", "indigo", "juniper",
    "kelp", "lumen", "meadow", "nickel", "orchid", "pebble",
];
const TAGS: [&str; 6] = ["red", "green", "blue", "sale", "new", "eco"];

/// Sizes of the workload.
#[derive(Clone, Copy)]
struct Workload {
    inserts: u64,
    updates: u64,
    deletes: u64,
}

impl Workload {
    fn scaled() -> Self {
        let scale: f64 = std::env::var("BINLOG2ES_E2E_SCALE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1.0);
        let n = |base: f64| ((base * scale / TXN_ROWS as f64).round().max(1.0) as u64) * TXN_ROWS;
        Workload {
            inserts: n(100_000.0),
            updates: n(50_000.0),
            deletes: n(10_000.0),
        }
    }
    fn changes(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }
    fn final_docs(&self) -> u64 {
        self.inserts - self.deletes
    }
    /// Deleted ids: the block right after the updated ones.
    fn deleted(&self) -> std::ops::RangeInclusive<u64> {
        self.updates + 1..=self.updates + self.deletes
    }
}

/// One row of the table, deterministic in (id, rev).
struct Row {
    id: u64,
    customer_id: u32,
    sku: String,
    title: String,
    body: String,
    price_cents: u64,
    created_at: String,
    attrs: String,
    tags: Vec<&'static str>,
    rev: u32,
    stamp: u64,
}

fn row(id: u64, rev: u32, stamp: u64) -> Row {
    let h = mix(id);
    let word = |k: u64| WORDS[(mix(h ^ k) % 16) as usize];
    let mut body = String::with_capacity(420);
    let mut k = 0;
    while body.len() < 400 {
        body.push_str(word(k));
        body.push(' ');
        k += 1;
    }
    body.truncate(400);
    let tags = TAGS
        .iter()
        .enumerate()
        .filter(|(i, _)| h >> (8 + i) & 1 == 1)
        .map(|(_, t)| *t)
        .collect();
    Row {
        id,
        customer_id: (h % 100_000) as u32,
        sku: format!("SKU-{:08X}", h as u32),
        title: format!("{} {} {} order {id}", word(100), word(101), word(102)),
        body,
        price_cents: h % 1_000_000 + u64::from(rev) * 100,
        created_at: format!(
            "2024-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
            h % 12 + 1,
            h % 28 + 1,
            h % 24,
            h % 60,
            (h >> 7) % 60,
            h % 1_000_000
        ),
        attrs: format!(
            r#"{{"color":"{}","size":{},"dims":{{"w":{}.5,"h":{}}},"labels":["{}","{}"]}}"#,
            word(200),
            h % 50,
            h % 9,
            h % 7,
            word(201),
            word(202)
        ),
        tags,
        rev,
        stamp,
    }
}

impl Row {
    fn sql_values(&self, out: &mut String) {
        use std::fmt::Write;
        write!(
            out,
            "({},{},'{}','{}','{}',{}.{:02},'{}','{}','{}',{},{})",
            self.id,
            self.customer_id,
            self.sku,
            self.title,
            self.body,
            self.price_cents / 100,
            self.price_cents % 100,
            self.created_at.replace('T', " "),
            self.attrs,
            self.tags.join(","),
            self.rev,
            self.stamp
        )
        .unwrap();
    }

    /// The `_source` binlog2es writes for this row (same fields, same formats).
    fn json(&self) -> String {
        format!(
            r#"{{"id":{},"customer_id":{},"sku":"{}","title":"{}","body":"{}","price":{}.{:02},"created_at":"{}","attrs":{},"tags":{},"rev":{},"stamp":{}}}"#,
            self.id,
            self.customer_id,
            self.sku,
            self.title,
            self.body,
            self.price_cents / 100,
            self.price_cents % 100,
            self.created_at,
            self.attrs,
            serde_json::to_string(&self.tags).unwrap(),
            self.rev,
            self.stamp
        )
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// A row whose change must become searchable: id, the `rev` it must show (`None`: gone),
/// and when its transaction committed.
#[derive(Clone)]
struct Sample {
    id: u64,
    rev: Option<u32>,
    committed: Instant,
}

/// The `stamp` column of the rows the workload's transaction starting at row `first` writes
/// with revision `rev`. Fixed rather than the clock, so the raw baselines send the very
/// values the binlog holds (the test server's cost depends on the values it indexes).
fn txn_stamp(first: u64, rev: u32) -> u64 {
    1_700_000_000_000_000 + u64::from(rev) * 1_000_000_000 + first
}

/// The first row of the workload's transaction that writes row `id`.
fn txn_first(id: u64) -> u64 {
    (id - 1) / TXN_ROWS * TXN_ROWS + 1
}

/// Inserts rows `ids` (revision 0) in one statement, i.e. one transaction.
async fn insert(conn: &mut Conn, sql: &mut String, ids: std::ops::RangeInclusive<u64>) {
    sql.clear();
    sql.push_str("INSERT INTO t VALUES ");
    let stamp = txn_stamp(*ids.start(), 0);
    for id in ids.clone() {
        if id > *ids.start() {
            sql.push(',');
        }
        row(id, 0, stamp).sql_values(sql);
    }
    conn.query_drop(&*sql).await.unwrap();
}

/// Records that the transaction that just committed must make row `id` show `rev`.
async fn sample(samples: &Mutex<Vec<Sample>>, id: u64, rev: Option<u32>) {
    samples.lock().await.push(Sample {
        id,
        rev,
        committed: Instant::now(),
    });
}

/// Loads the workload into `db.t`; one sample per transaction goes to `samples` when given.
/// Returns the time it took.
async fn load(conn: &mut Conn, w: Workload, samples: Option<&Arc<Mutex<Vec<Sample>>>>) -> Duration {
    let started = Instant::now();
    let mut sql = String::with_capacity(1 << 20);
    let mut first = 1;
    while first <= w.inserts {
        let last = (first + TXN_ROWS - 1).min(w.inserts);
        insert(conn, &mut sql, first..=last).await;
        if let Some(s) = samples {
            sample(s, last, Some(0)).await;
        }
        first = last + 1;
    }
    let mut first = 1;
    while first <= w.updates {
        let last = (first + TXN_ROWS - 1).min(w.updates);
        conn.query_drop(format!(
            "UPDATE t SET rev = rev + 1, price = price + 1, stamp = {} WHERE id BETWEEN {first} AND {last}",
            txn_stamp(first, 1)
        ))
        .await
        .unwrap();
        if let Some(s) = samples {
            sample(s, last, Some(1)).await;
        }
        first = last + 1;
    }
    let deleted = w.deleted();
    let mut first = *deleted.start();
    while first <= *deleted.end() {
        let last = (first + TXN_ROWS - 1).min(*deleted.end());
        conn.query_drop(format!("DELETE FROM t WHERE id BETWEEN {first} AND {last}"))
            .await
            .unwrap();
        if let Some(s) = samples {
            sample(s, last, None).await;
        }
        first = last + 1;
    }
    started.elapsed()
}

/// The workload's change stream in binlog order, as bulk ops of one document each:
/// `(document id, NDJSON lines)`. Versions grow per transaction as binlog2es' do.
fn change_stream(w: Workload, index: &str) -> Vec<(u64, String)> {
    let mut out = Vec::with_capacity(w.changes() as usize);
    let mut version = 1u64 << 40;
    let op = |id: u64, version: u64, source: Option<String>| {
        let action = if source.is_some() { "index" } else { "delete" };
        let mut text = format!(
            "{{\"{action}\":{{\"_index\":\"{index}\",\"_id\":\"{id}\",\"version\":{version},\"version_type\":\"external_gte\"}}}}\n"
        );
        if let Some(s) = source {
            text.push_str(&s);
            text.push('\n');
        }
        (id, text)
    };
    for id in 1..=w.inserts {
        if (id - 1) % TXN_ROWS == 0 {
            version += 1;
        }
        let stamp = txn_stamp(txn_first(id), 0);
        out.push(op(id, version, Some(row(id, 0, stamp).json())));
    }
    for id in 1..=w.updates {
        if (id - 1) % TXN_ROWS == 0 {
            version += 1;
        }
        let stamp = txn_stamp(txn_first(id), 1);
        out.push(op(id, version, Some(row(id, 1, stamp).json())));
    }
    for id in w.deleted() {
        if (id - 1) % TXN_ROWS == 0 {
            version += 1;
        }
        out.push(op(id, version, None));
    }
    out
}

/// The final documents only (one index op each).
fn final_docs(w: Workload, index: &str) -> Vec<(u64, String)> {
    let deleted = w.deleted();
    (1..=w.inserts)
        .filter(|id| !deleted.contains(id))
        .map(|id| {
            let rev = u32::from(id <= w.updates);
            let stamp = txn_stamp(txn_first(id), rev);
            let text = format!(
                "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{id}\",\"version\":1,\"version_type\":\"external_gte\"}}}}\n{}\n",
                row(id, rev, stamp).json()
            );
            (id, text)
        })
        .collect()
}

fn index_body() -> serde_json::Value {
    json!({"mappings": {"dynamic": false, "properties": {
        "id": {"type": "long"}, "rev": {"type": "long"}, "stamp": {"type": "long"}
    }}})
}

/// Waits until the daemon's checkpoint is at or past `target`; returns when.
async fn wait_checkpoint(
    daemon: &mut Daemon,
    target: &(String, u64),
    timeout: Duration,
) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        daemon.assert_running();
        if std::fs::read_to_string(daemon.checkpoint_path())
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|c| {
                Some((
                    c["position"]["file"].as_str()?.to_string(),
                    c["position"]["pos"].as_u64()?,
                ))
            })
            .is_some_and(|at| at >= *target)
        {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "checkpoint did not reach {target:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks that the index holds exactly the table's ids with the table's `rev`.
async fn verify(env: &TestEnv, es: &Es, db: &str, index: &str) {
    let mut conn = env.mysql_db(db).await;
    let rows: Vec<(u64, u32)> = conn.query("SELECT id, rev FROM t").await.unwrap();
    let docs = es.docs(index).await;
    assert_eq!(docs.len(), rows.len(), "{index}: document count");
    for (id, rev) in rows {
        let doc = docs
            .get(&id.to_string())
            .unwrap_or_else(|| panic!("{index}: no doc {id}"));
        assert_eq!(doc["rev"], json!(rev), "{index}: doc {id}");
    }
}

/// A [`watch_latency`] task and the samples it waits for.
struct Watch {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Duration>>,
}

impl Watch {
    /// Starts watching `index` for the samples pushed to [`Watch::samples`].
    fn start(es_url: &str, index: &str) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn(watch_latency(
            es_url.to_string(),
            index.to_string(),
            Arc::clone(&samples),
            Arc::clone(&stop),
        ));
        Watch {
            samples,
            stop,
            task,
        }
    }

    /// Waits until every sample is seen; returns the latencies, sorted.
    async fn finish(self) -> Vec<Duration> {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let mut latencies = self.task.await.unwrap();
        latencies.sort();
        latencies
    }
}

/// Polls the index for sampled changes until `stop` and none are left; returns latencies.
async fn watch_latency(
    es_url: String,
    index: String,
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Duration> {
    let http = reqwest::Client::new();
    let url = format!("{es_url}/{index}/_search?filter_path=hits.hits._id,hits.hits._source.rev");
    let mut pending: Vec<Sample> = Vec::new();
    let mut out = Vec::new();
    loop {
        pending.append(&mut *samples.lock().await);
        if pending.is_empty() && stop.load(std::sync::atomic::Ordering::Acquire) {
            return out;
        }
        if !pending.is_empty() {
            let ids: Vec<String> = pending.iter().map(|s| s.id.to_string()).collect();
            let body =
                json!({"size": ids.len(), "_source": ["rev"], "query": {"ids": {"values": ids}}});
            let answer: serde_json::Value = http
                .post(&url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let seen: HashMap<u64, u64> = answer["hits"]["hits"]
                .as_array()
                .map(|hits| {
                    hits.iter()
                        .filter_map(|h| {
                            Some((
                                h["_id"].as_str()?.parse().ok()?,
                                h["_source"]["rev"].as_u64()?,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let now = Instant::now();
            pending.retain(|s| {
                let done = match s.rev {
                    Some(rev) => seen.get(&s.id).is_some_and(|r| *r >= u64::from(rev)),
                    None => !seen.contains_key(&s.id),
                };
                if done {
                    out.push(now - s.committed);
                }
                !done
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn daemon_builder(env: &TestEnv, sink: &Sink, db: &str, index: &str) -> common::DaemonBuilder {
    daemon_builder_with(env, sink, db, index, "")
}

/// As [`daemon_builder`], with `writer` lines added to the `[writer]` section.
fn daemon_builder_with(
    env: &TestEnv,
    sink: &Sink,
    db: &str,
    index: &str,
    writer: &str,
) -> common::DaemonBuilder {
    let b = Daemon::builder(env)
        .es_url(&sink.url)
        .table(&format!("{db}.t"), index);
    let lines = std::env::var("BINLOG2ES_E2E_WRITER").unwrap_or_default() + ";" + writer;
    b.extra_toml(&format!("[writer]\n{}", lines.replace(';', "\n")))
}

fn main() {
    support::main_with("e2e", bench);
}

/// The `[writer]` line of the wide-window replay: a byte budget that holds the whole
/// workload, so every update finds its insert still waiting.
const WIDE_WINDOW: &str = "max_buffered_bytes = 268435456";

/// One replay of the mix.
struct Replay {
    time: Duration,
    cpu: f64,
    rss: f64,
    /// Changes never written (`binlog2es_coalesced_changes_total`).
    coalesced: f64,
}

/// Replays the mix: checkpoint before the workload, load it, start binlog2es there with
/// `writer` added to its `[writer]` section; timed until the checkpoint reaches the end.
async fn replay_mix(env: &TestEnv, w: Workload, writer: &str) -> Replay {
    let sink = fresh_sink(env).await;
    let (db, mut conn) = env.create_database_with(DDL).await;
    let index = env.unique_index("e2e-replay");
    sink.es.create_index(&index, index_body()).await;
    let listen = format!("127.0.0.1:{}", common::free_port());
    let mut daemon = daemon_builder_with(env, &sink, &db, &index, writer)
        .http_listen(&listen)
        .start()
        .await;
    assert_eq!(daemon.terminate().await, 0);
    let load_time = load(&mut conn, w, None).await;
    let end = env.binlog_position().await;
    println!("load: {:.2} s into MariaDB", load_time.as_secs_f64());
    let started = Instant::now();
    daemon.spawn();
    let pid = daemon.pid().unwrap();
    let done = wait_checkpoint(&mut daemon, &end, Duration::from_secs(600)).await;
    let time = done - started;
    let cpu = cpu_seconds(pid);
    let rss = mib(daemon.peak_rss_kib());
    let coalesced = common::metric(
        &format!("http://{listen}"),
        "binlog2es_coalesced_changes_total",
    )
    .await
    .unwrap_or(f64::NAN);
    assert_eq!(daemon.terminate().await, 0);
    verify(env, &sink.es, &db, &index).await;
    println!(
        "replay{}: {:.2} s ({:.0} changes/s), CPU {:.2} s ({:.2} s per 100k changes), \
         peak RSS {rss:.1} MiB, {coalesced:.0} changes coalesced",
        if writer.is_empty() {
            String::new()
        } else {
            format!(" with `{writer}`")
        },
        time.as_secs_f64(),
        w.changes() as f64 / time.as_secs_f64(),
        cpu,
        cpu * 100_000.0 / w.changes() as f64,
    );
    Replay {
        time,
        cpu,
        rss,
        coalesced,
    }
}

async fn bench() {
    let w = Workload::scaled();
    let lanes = lanes();
    let env = TestEnv::get();
    if std::env::var("BINLOG2ES_E2E_ONLY").is_ok_and(|o| o == "paced") {
        let paced = paced::paced(env, lanes).await;
        println!("{}", paced.report());
        println!("SUMMARY {}", paced.summary());
        return;
    }
    if std::env::var("BINLOG2ES_E2E_ONLY").is_ok_and(|o| o == "insert-heavy") {
        let heavy = insert_heavy(env, lanes).await;
        println!("SUMMARY {}", heavy.summary());
        return;
    }
    println!(
        "e2e: {} inserts, {} updates, {} deletes ({} changes, {} final documents), {lanes} lanes",
        w.inserts,
        w.updates,
        w.deletes,
        w.changes(),
        w.final_docs()
    );

    // (a) replay with defaults, then with a window of coalescing wide enough for the
    // workload's reuse distance (every row updated 100k changes after its insert).
    let mix = replay_mix(env, w, "").await;
    let wide = replay_mix(env, w, WIDE_WINDOW).await;
    let (replay, replay_cpu, replay_rss, coalesced) = (mix.time, mix.cpu, mix.rss, mix.coalesced);

    // (c) the sink's raw rate for the same stream over the same connections, over one, and
    // for the final documents alone; each on a fresh sink.
    let mut raw = Vec::new();
    for (what, connections) in [
        ("change stream", lanes),
        ("change stream", 1),
        ("final documents", lanes),
    ] {
        let sink = fresh_sink(env).await;
        let raw_index = env.unique_index("e2e-raw");
        sink.es.create_index(&raw_index, index_body()).await;
        let ops = if what == "change stream" {
            change_stream(w, &raw_index)
        } else {
            final_docs(w, &raw_index)
        };
        let took = ingest(&sink.url, &ops, connections).await;
        assert_eq!(
            sink.es.count(&raw_index).await,
            w.final_docs(),
            "{raw_index}"
        );
        println!(
            "sink raw, {what} ({} ops) over {connections} connection(s): {:.2} s",
            ops.len(),
            took.as_secs_f64()
        );
        raw.push(took);
    }
    let (raw_stream, raw_stream_1, raw_final) = (raw[0], raw[1], raw[2]);
    if std::env::var("BINLOG2ES_E2E_ONLY").is_ok_and(|o| o == "replay") {
        let ratio = |raw: Duration, r: &Replay| raw.as_secs_f64() / r.time.as_secs_f64();
        println!(
            "SUMMARY replay/raw {:.2}x, vs final documents {:.2}x, {:.0} coalesced | wide \
             budget: {:.2}x raw, {:.2}x final documents, {:.0} coalesced",
            ratio(raw_stream, &mix),
            ratio(raw_final, &mix),
            mix.coalesced,
            ratio(raw_stream, &wide),
            ratio(raw_final, &wide),
            wide.coalesced
        );
        return;
    }

    let heavy = insert_heavy(env, lanes).await;

    // (b) streaming: binlog2es first, then the workload at full speed.
    let sink = fresh_sink(env).await;
    let (db, mut conn) = env.create_database_with(DDL).await;
    let index = env.unique_index("e2e-stream");
    sink.es.create_index(&index, index_body()).await;
    let mut daemon = daemon_builder(env, &sink, &db, &index).start().await;
    let pid = daemon.pid().unwrap();
    let cpu_before = cpu_seconds(pid);
    let watch = Watch::start(&sink.url, &index);
    let load_time = load(&mut conn, w, Some(&watch.samples)).await;
    let loaded = Instant::now();
    let end = env.binlog_position().await;
    let caught_up = wait_checkpoint(&mut daemon, &end, Duration::from_secs(600)).await;
    let lag = caught_up - loaded;
    let stream_cpu = cpu_seconds(pid) - cpu_before;
    let latencies = watch.finish().await;
    assert_eq!(daemon.terminate().await, 0);
    verify(env, &sink.es, &db, &index).await;
    let implied = raw_stream.saturating_sub(load_time);
    println!(
        "streaming: workload loaded in {:.2} s; lag after it {:.2} s (the raw sink rate implies {:.2} s); \
         change→searchable p50 {:.0} ms, p99 {:.0} ms ({} samples); CPU {:.2} s",
        load_time.as_secs_f64(),
        lag.as_secs_f64(),
        implied.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.len(),
        stream_cpu
    );
    drop(sink);

    let paced = paced::paced(env, lanes).await;
    println!("{}", paced.report());

    let big = big_transaction(env).await;

    let secs = |d: Duration| d.as_secs_f64();
    let big = match big {
        Some((rows, rss)) => format!(" | big transaction: {rows} rows, peak RSS {rss:.1} MiB"),
        None => String::new(),
    };
    println!(
        "SUMMARY mix replay {:.2}s = {:.2}x the raw change-stream rate ({:.2}s, {lanes} conn; 1 conn {:.2}s), \
         {:.2}x the final-documents rate ({:.2}s), {coalesced:.0} changes coalesced; \
         with `{WIDE_WINDOW}` {:.2}s = {:.2}x raw, {:.2}x final, {:.0} coalesced, peak RSS {:.1} MiB | CPU {:.2}s per 100k changes | peak RSS {:.1} MiB \
         (paced {:.1}) | streaming lag {:.2}s (raw implies {:.2}s), p99 {:.0} ms | \
         {} | {}{big}",
        secs(replay),
        secs(raw_stream) / secs(replay),
        secs(raw_stream),
        secs(raw_stream_1),
        secs(raw_final) / secs(replay),
        secs(raw_final),
        secs(wide.time),
        secs(raw_stream) / secs(wide.time),
        secs(raw_final) / secs(wide.time),
        wide.coalesced,
        wide.rss,
        replay_cpu * 100_000.0 / w.changes() as f64,
        replay_rss,
        paced.rss,
        secs(lag),
        secs(implied),
        secs(percentile(&latencies, 0.99)) * 1e3,
        paced.summary(),
        heavy.summary(),
    );
}

/// Optional (`BINLOG2ES_E2E_BIG_TXN=ROWS`, MariaDB only): one transaction of ROWS rows
/// while binlog2es streams with default settings; the sink is slower than the binlog
/// throughout, so this also shows the bound under backpressure. Returns (rows, peak RSS).
async fn big_transaction(env: &TestEnv) -> Option<(u64, f64)> {
    let rows: u64 = std::env::var("BINLOG2ES_E2E_BIG_TXN").ok()?.parse().ok()?;
    if !env.is_mariadb {
        println!("big transaction: skipped (needs MariaDB's sequence tables)");
        return None;
    }
    let sink = fresh_sink(env).await;
    let (db, mut conn) = env.create_database_with(DDL).await;
    let index = env.unique_index("e2e-big");
    sink.es.create_index(&index, index_body()).await;
    let mut daemon = daemon_builder(env, &sink, &db, &index).start().await;
    let started = Instant::now();
    conn.query_drop(format!(
        "INSERT INTO t SELECT seq, seq % 100000, CONCAT('SKU-', HEX(seq)), \
         CONCAT('big transaction order ', seq), REPEAT(CHAR(97 + seq % 26), 400), \
         (seq % 100000) / 100, '2024-02-29 13:45:01.123456', \
         JSON_OBJECT('color', 'red', 'size', seq % 50, 'labels', JSON_ARRAY('a', 'b')), \
         'red,sale', 0, 0 FROM seq_1_to_{rows}"
    ))
    .await
    .unwrap();
    let committed = started.elapsed();
    let end = env.binlog_position().await;
    wait_checkpoint(&mut daemon, &end, Duration::from_secs(3600)).await;
    let total = started.elapsed();
    let rss = mib(daemon.peak_rss_kib());
    assert_eq!(daemon.terminate().await, 0);
    assert_eq!(sink.es.count(&index).await, rows, "{index}");
    println!(
        "big transaction: {rows} rows committed in {:.1} s, all acknowledged after {:.1} s; \
         peak RSS {rss:.1} MiB",
        committed.as_secs_f64(),
        total.as_secs_f64()
    );
    Some((rows, rss))
}
