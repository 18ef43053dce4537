//! Rebuild bench (`binlog2es reindex`, SPEC §10) against the real servers the tests use (a
//! private `mariadbd` and `osmem-server`, or `BINLOG2ES_TEST_MYSQL_URL` /
//! `BINLOG2ES_TEST_ES_URL`).
//!
//! Run: `cargo bench --bench reindex` (1,000,000 rows; `REINDEX_BENCH_ROWS=N` for another
//! size). Under `cargo test` (no `--bench` argument) it prints one line and exits.
//!
//! 1. **initial copy**: a generated table exists before binlog2es starts; binlog2es (the
//!    release binary, default settings, `snapshot.mode = "initial"`) is timed from its start
//!    until its checkpoint lists no table being copied and the index holds every row.
//! 2. **rebuild**, with the same daemon still running: `binlog2es reindex` of that index is
//!    timed from the request until the checkpoint lists no rebuild and the name points to a
//!    new physical index holding every row.
//!
//! The run gets an osmem-server of its own; the rebuild writes next to the index it
//! replaces, as it does in production.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)] // the raw-ingest helpers are for the other benches
mod support;

use std::time::{Duration, Instant};

use common::{Daemon, TestEnv, free_port, run_cli};
use support::fresh_sink;

fn main() {
    support::main_with("reindex", bench);
}

/// Starts `daemon` and waits until its initial copy ended and `index` holds `rows`
/// documents on `es`; returns the time from the start.
async fn initial_copy(daemon: &mut Daemon, es: &common::Es, index: &str, rows: u64) -> Duration {
    let started = Instant::now();
    daemon.spawn();
    loop {
        daemon.assert_running();
        let done = daemon.checkpoint_path().exists()
            && daemon.checkpoint()["copies"]
                .as_array()
                .is_none_or(|c| c.is_empty());
        if done && es.count(index).await == rows {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn bench() {
    let rows: u64 = std::env::var("REINDEX_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(support::GENERATED_DDL).await;
    let loaded = Instant::now();
    support::fill_generated(&mut conn, rows).await;
    println!("reindex: {rows} rows loaded in {:.1?}", loaded.elapsed());
    let index = env.unique_index("bench-reindex");
    let sink = fresh_sink(env).await;
    let mut daemon = Daemon::builder(env)
        .es_url(&sink.url)
        .http_listen(&format!("127.0.0.1:{}", free_port()))
        .table(&format!("{db}.t"), &index)
        .snapshot_mode("initial")
        .build();

    // (1) the plain initial copy
    let copy = initial_copy(&mut daemon, &sink.es, &index, rows).await;
    println!("reindex: initial copy {copy:.1?}");

    // (2) the rebuild, the same daemon running
    let old = sink.es.alias_targets(&index).await;
    let config = daemon.config_path().display().to_string();
    let started = Instant::now();
    let out = run_cli(&["reindex", "--config", &config, "--index", &index]).await;
    assert_eq!(out.code, 0, "{out}");
    loop {
        daemon.assert_running();
        let rebuilding = daemon.checkpoint()["rebuilds"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        if !rebuilding {
            let now = sink.es.alias_targets(&index).await;
            assert!(now.len() == 1 && now != old, "{index}: {old:?} -> {now:?}");
            assert_eq!(sink.es.count(&index).await, rows);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rebuild = started.elapsed();
    assert_eq!(daemon.terminate().await, 0);
    println!(
        "reindex: {rows} rows, initial copy {:.1} s, rebuild {:.1} s, ratio {:.2}",
        copy.as_secs_f64(),
        rebuild.as_secs_f64(),
        rebuild.as_secs_f64() / copy.as_secs_f64()
    );
}
