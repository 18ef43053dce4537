//! Initial-copy bench against the real servers the tests use (a private `mariadbd` and
//! `osmem-server`, or `BINLOG2ES_TEST_MYSQL_URL` / `BINLOG2ES_TEST_ES_URL`).
//!
//! Run: `cargo bench --bench snapshot` (1,000,000 rows; `BINLOG2ES_SNAPSHOT_ROWS=N` for
//! another size). Under `cargo test` (no `--bench` argument) it prints one line and exits.
//!
//! 1. **copy**: a generated table (id, customer, two varchars, ~200 B text, decimal,
//!    datetime(6)) exists before binlog2es starts; binlog2es (the release binary, default
//!    settings, `snapshot.mode = "initial"`) is timed from its start until its checkpoint
//!    lists no table being copied and the index holds every row. CPU seconds and peak RSS
//!    come from /proc.
//! 2. **raw**, in the same run: the very documents the copy wrote (read back from the
//!    index) sent to a fresh sink as pre-built `_bulk` bodies of 1000 ops with external
//!    versions, over as many connections as binlog2es has lanes. This is the baseline the
//!    copy's rate is divided by.
//!
//! Every index is created first with `{"dynamic": false}`, and each run gets an
//! osmem-server of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::{Daemon, TestEnv};
use serde_json::json;
use support::{cpu_seconds, fresh_sink, ingest, mib};

fn main() {
    support::main_with("snapshot", bench);
}

fn index_body() -> serde_json::Value {
    json!({"mappings": {"dynamic": false, "properties": {"id": {"type": "long"}}}})
}

async fn bench() {
    let rows: u64 = std::env::var("BINLOG2ES_SNAPSHOT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let lanes = binlog2es::config::default_lanes();
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(support::GENERATED_DDL).await;
    let loaded = Instant::now();
    support::fill_generated(&mut conn, rows).await;
    println!(
        "snapshot: {rows} rows loaded in {:.1?}, {lanes} lanes",
        loaded.elapsed()
    );

    // (1) the copy
    let sink = fresh_sink(env).await;
    let index = env.unique_index("bench-copy");
    sink.es.create_index(&index, index_body()).await;
    let mut daemon = Daemon::builder(env)
        .es_url(&sink.url)
        .table(&format!("{db}.t"), &index)
        .snapshot_mode("initial")
        .build();
    let started = Instant::now();
    daemon.spawn();
    let pid = daemon.pid().unwrap();
    loop {
        daemon.assert_running();
        let done = daemon.checkpoint_path().exists()
            && daemon.checkpoint()["copies"]
                .as_array()
                .is_none_or(|c| c.is_empty());
        if done && sink.es.count(&index).await == rows {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let copy = started.elapsed();
    let cpu = cpu_seconds(pid);
    let rss = mib(daemon.peak_rss_kib());
    assert_eq!(daemon.terminate().await, 0);
    let copy_rate = rows as f64 / copy.as_secs_f64();
    println!(
        "copy: {copy:.1?} ({copy_rate:.0} rows/s), binlog2es {cpu:.2} CPU s ({:.2} per 100k rows), peak RSS {rss:.1} MiB",
        cpu * 100_000.0 / rows as f64
    );

    // (2) the same documents, pre-built, straight into a fresh sink
    let docs = sink.es.docs(&index).await;
    assert_eq!(docs.len() as u64, rows);
    let version = 1u64 << 40;
    let ops: Vec<(u64, String)> = docs
        .iter()
        .map(|(id, source)| {
            let action = json!({"index": {"_index": index, "_id": id, "version": version,
                "version_type": "external_gte"}});
            (id.parse().unwrap_or(0), format!("{action}\n{source}\n"))
        })
        .collect();
    drop(docs);
    drop(sink);
    let raw_sink = fresh_sink(env).await;
    raw_sink.es.create_index(&index, index_body()).await;
    let raw = ingest(&raw_sink.url, &ops, lanes).await;
    let raw_rate = rows as f64 / raw.as_secs_f64();
    println!("raw: {raw:.1?} ({raw_rate:.0} docs/s) over {lanes} connections");
    println!(
        "SUMMARY snapshot rows={rows} copy={:.1}s ({copy_rate:.0}/s) raw={:.1}s ({raw_rate:.0}/s) \
         ratio={:.2} cpu={cpu:.2}s rss={rss:.1}MiB",
        copy.as_secs_f64(),
        raw.as_secs_f64(),
        copy_rate / raw_rate
    );
}
