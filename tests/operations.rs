//! The operations endpoint (SPEC §7): `/metrics`, `/healthz`, `/readyz`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(32) NOT NULL)";

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        }
        Err(e) => (0, e.to_string()),
    }
}

#[tokio::test]
async fn metrics_health_and_readiness_are_served() {
    // GIVEN a daemon with its endpoint on a known port
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut f = Fixture::start_with("ops", TABLE, None, |b| {
        b.http_listen(&format!("127.0.0.1:{port}"))
    })
    .await;

    // WHEN rows stream
    f.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b'); UPDATE t SET name = 'c' WHERE id = 1; DELETE FROM t WHERE id = 2")
        .await;
    f.converge().await;

    // THEN the process is healthy, ready, and the metrics count what happened
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    let ready = wait_until(secs(30), async || {
        get(&format!("{base}/readyz")).await.0 == 200
    })
    .await;
    assert!(ready, "{:?}", get(&format!("{base}/readyz")).await);
    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200, "{text}");
    for needle in [
        "binlog2es_changes_total{op=\"insert\"} 2",
        "binlog2es_changes_total{op=\"update\"} 1",
        "binlog2es_changes_total{op=\"delete\"} 1",
        "binlog2es_bulk_requests_total{outcome=\"success\"}",
        "binlog2es_bulk_duration_seconds_bucket",
        "binlog2es_lag_seconds",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    // AND the polled distance to the server's binlog head reaches zero
    let caught_up = wait_until(secs(30), async || {
        get(&format!("{base}/metrics"))
            .await
            .1
            .contains("binlog2es_behind_bytes 0")
    })
    .await;
    assert!(caught_up, "{}", get(&format!("{base}/metrics")).await.1);
    assert_eq!(f.daemon.terminate().await, 0);
}

#[tokio::test]
async fn a_taken_port_stops_start_up_with_a_clear_message() {
    // GIVEN a port someone else listens on
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let env = TestEnv::get();
    let db = env.create_database().await;
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &env.unique_index("taken"))
        .http_listen(&addr)
        .build();

    // WHEN the daemon starts
    daemon.spawn();
    let code = daemon.wait_exit(secs(60)).await;

    // THEN it exits 1 naming the key and the address
    let log = daemon.stderr_tail(20);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("http.listen") && log.contains(&addr), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    // GIVEN a daemon with JSON logs
    let mut f = Fixture::start_with("jsonlog", TABLE, None, |b| {
        b.extra_toml("[logging]\nformat = \"json\"")
    })
    .await;
    f.sql("INSERT INTO t VALUES (1, 'a')").await;
    f.converge().await;
    assert_eq!(f.daemon.terminate().await, 0);

    // THEN every log line the daemon wrote is a JSON object with a level and a message
    let log = std::fs::read_to_string(f.daemon.log_path()).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.starts_with("=====") && !l.trim().is_empty())
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }
    assert!(log.contains("Stopped cleanly"), "{log}");
}
