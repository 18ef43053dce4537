//! Helpers shared by the bench binaries that run against real servers (`e2e`, `snapshot`).

use std::time::{Duration, Instant};

use crate::common::{Es, Osmem, TestEnv};

/// Ops per raw bulk request (binlog2es' default `writer.max_docs`).
pub const RAW_BATCH: usize = 1000;

/// One `_bulk` request (its URL asks for at least `errors`); panics unless every item
/// was applied.
pub async fn post_bulk(http: &reqwest::Client, url: &str, body: impl Into<reqwest::Body>) {
    let resp = http
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "bulk: {}", resp.status());
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["errors"], false, "bulk errors: {answer}");
}

/// CPU seconds (user + system) of a process so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`: state is field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// CPU seconds the whole machine lost to other guests so far (`steal` of `/proc/stat`): a
/// run that grows it shared its cores with something outside this machine.
#[allow(dead_code)] // only the e2e bench reads it
pub fn steal_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu = stat.lines().next().unwrap();
    let steal: f64 = cpu.split_whitespace().nth(8).unwrap().parse().unwrap();
    steal / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

pub fn mib(kib: Option<u64>) -> f64 {
    kib.unwrap_or(0) as f64 / 1024.0
}

/// A sink of its own for one measured run (a fresh osmem-server, so that no run pays for
/// the documents of an earlier one), or the external `BINLOG2ES_TEST_ES_URL`.
pub struct Sink {
    pub url: String,
    pub es: Es,
    /// The server this sink started (stopped when dropped), `None` for an external one.
    server: Option<Osmem>,
}

impl Sink {
    /// CPU seconds the sink's server used so far (`None` for an external sink).
    #[allow(dead_code)] // only the e2e bench reads it
    pub fn cpu(&self) -> Option<f64> {
        self.server.as_ref().map(|s| cpu_seconds(s.pid()))
    }
}

pub async fn fresh_sink(env: &TestEnv) -> Sink {
    let (url, server) = if std::env::var("BINLOG2ES_TEST_ES_URL").is_ok() {
        (env.es_url.clone(), None)
    } else {
        let server = std::thread::spawn(Osmem::start).join().unwrap();
        (server.url.clone(), Some(server))
    };
    let es = Es::new(&url);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(&url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "{url} does not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Sink { url, es, server }
}

/// A well-mixed hash of an id (routing ops to connections, generating row contents).
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Sends `ops` (in order per connection, routed by id) over `connections` connections,
/// `RAW_BATCH` ops per `_bulk` request; returns the wall time.
pub async fn ingest(es_url: &str, ops: &[(u64, String)], connections: usize) -> Duration {
    let mut lanes: Vec<Vec<bytes::Bytes>> = vec![Vec::new(); connections];
    let mut per_lane: Vec<Vec<&str>> = vec![Vec::new(); connections];
    for (id, text) in ops {
        per_lane[(mix(*id) % connections as u64) as usize].push(text);
    }
    for (lane, texts) in per_lane.iter().enumerate() {
        for chunk in texts.chunks(RAW_BATCH) {
            lanes[lane].push(bytes::Bytes::from(chunk.concat()));
        }
    }
    // The daemon's own filter_path: its answers carry every item's status (a client that
    // retries failed items needs their positions), which costs the test server some work.
    let url = format!(
        "{es_url}/_bulk?filter_path={}",
        binlog2es::es::response::FILTER_PATH
    );
    let started = Instant::now();
    let tasks: Vec<_> = lanes
        .into_iter()
        .map(|bodies| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                for body in bodies {
                    post_bulk(&http, &url, body).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// A bench binary's `main`: runs `bench` on two worker threads under `cargo bench`, and only
/// prints a line under `cargo test` (no `--bench` argument).
pub fn main_with<F: std::future::Future<Output = ()>>(name: &str, bench: impl FnOnce() -> F) {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name}: skipped (run it with `cargo bench --bench {name}`)");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

/// The generated table of the copy benches (snapshot, reindex): ~700-byte rows.
#[allow(dead_code)] // the other benches include this module too
pub const GENERATED_DDL: &str = "CREATE TABLE t (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    customer_id INT NOT NULL,
    sku VARCHAR(32) NOT NULL,
    title VARCHAR(200) NOT NULL,
    body TEXT NOT NULL,
    price DECIMAL(12,2) NOT NULL,
    created_at DATETIME(6) NOT NULL
)";

/// Fills [`GENERATED_DDL`]'s table `t` with rows `1..=rows` in one statement.
#[allow(dead_code)] // the other benches include this module too
pub async fn fill_generated(conn: &mut mysql_async::Conn, rows: u64) {
    use mysql_async::prelude::Queryable;
    // Digits cross-joined: portable, and MySQL writes it as one statement.
    let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                  UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
                  UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let places = (1..=8).find(|p| 10u64.pow(*p) >= rows).unwrap_or(8);
    let from: Vec<String> = (0..places).map(|p| format!("{digits} p{p}")).collect();
    let sum: Vec<String> = (0..places)
        .map(|p| format!("p{p}.d * {}", 10u64.pow(p)))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO t SELECT s.i, s.i % 9973, CONCAT('SKU-', s.i % 100000), \
         CONCAT('Item ', s.i, ' cobalt harbor meadow'), REPEAT(CONCAT('lorem ', s.i % 97, ' '), 20), \
         (s.i % 100000) / 100, TIMESTAMP('2024-01-01') + INTERVAL s.i SECOND + INTERVAL 123456 MICROSECOND \
         FROM (SELECT {} + 1 AS i FROM {}) s WHERE s.i <= {rows}",
        sum.join(" + "),
        from.join(" CROSS JOIN ")
    ))
    .await
    .unwrap();
}
