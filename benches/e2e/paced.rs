//! Part 4 of the e2e bench (see its module docs): 5,000 changes/s for 10 s, change→searchable
//! with the test server as the sink, the test server alone at that rate, and binlog2es' own
//! part of the latency against an instant sink.
//!
//! The paced indices map no field (`{"dynamic": false}` alone). The test server's cost for
//! indexing numeric fields grows with the index: with the other parts' three `long` fields
//! it cannot take 5,000 documents/s of this table (the sink alone then queues for tens of
//! seconds), and every latency would be its queue.

use super::*;

/// Rows per paced transaction.
const ROWS: u64 = 50;
/// Paced transactions, one every 10 ms.
const TICKS: u64 = 1000;

/// The test sink's refresh interval, stated next to change→searchable latencies: osmem-server
/// makes a write searchable when its request returns (no periodic refresh); Elasticsearch's
/// default is 1 s.
const SINK_REFRESH: &str = "none, searchable on acknowledgement";

/// The paced indices' body: nothing indexed (module docs).
fn paced_index_body() -> serde_json::Value {
    json!({"mappings": {"dynamic": false}})
}

/// What the paced part measured.
pub(super) struct Paced {
    /// Changes/s the paced load reached.
    rate: f64,
    /// change→searchable through binlog2es into the test server, sorted.
    searchable: Vec<Duration>,
    /// The daemon's peak RSS, MiB.
    pub(super) rss: f64,
    /// The test server alone at the same rate: tick → acknowledgement, sorted.
    sink_alone: Vec<Duration>,
    /// binlog2es into an instant sink: commit → the sink holds the document, sorted.
    own: Vec<Duration>,
    /// The rate of that run.
    own_rate: f64,
}

/// Runs the paced part (module docs) with `lanes` connections for the sink alone.
pub(super) async fn paced(env: &TestEnv, lanes: usize) -> Paced {
    // Through the test server, with a daemon of its own (steady streaming: its RSS is the
    // one to compare).
    let sink = fresh_sink(env).await;
    let (db, mut conn) = env.create_database_with(DDL).await;
    let index = env.unique_index("e2e-paced");
    sink.es.create_index(&index, paced_index_body()).await;
    let mut daemon = daemon_builder(env, &sink, &db, &index).start().await;
    let watch = Watch::start(&sink.url, &index);
    let took = pace(&mut conn, &watch.samples).await;
    let end = env.binlog_position().await;
    wait_checkpoint(&mut daemon, &end, Duration::from_secs(120)).await;
    let searchable = watch.finish().await;
    let rss = mib(daemon.peak_rss_kib());
    assert_eq!(daemon.terminate().await, 0);
    drop(sink);

    // The sink alone at the same rate: each tick's documents as one bulk request (over at
    // most `lanes` connections), timed from the tick to the acknowledgement.
    let sink = fresh_sink(env).await;
    let raw_index = env.unique_index("e2e-paced-raw");
    sink.es.create_index(&raw_index, paced_index_body()).await;
    let sink_alone = paced_raw(&sink.url, &raw_index, lanes).await;
    drop(sink);

    // binlog2es' own part: the same pace into an instant sink.
    let (own_rate, own) = paced_ours(env).await;
    Paced {
        rate: (ROWS * TICKS) as f64 / took.as_secs_f64(),
        searchable,
        rss,
        sink_alone,
        own,
        own_rate,
    }
}

/// The `p` percentile of sorted latencies `v`, in milliseconds.
fn ms(v: &[Duration], p: f64) -> f64 {
    percentile(v, p).as_secs_f64() * 1e3
}

impl Paced {
    /// The lines printed after the run.
    pub(super) fn report(&self) -> String {
        format!(
            "paced: {:.0} changes/s for 10 s; change→searchable p50 {:.0} ms, p99 {:.0} ms \
             ({} samples); peak RSS {:.1} MiB\n\
             sink raw, paced: ack p50 {:.0} ms, p99 {:.0} ms\n\
             paced into an instant sink ({:.0} changes/s): change→sink p50 {:.0} ms, \
             p99 {:.0} ms, max {:.0} ms ({} samples)",
            self.rate,
            ms(&self.searchable, 0.5),
            ms(&self.searchable, 0.99),
            self.searchable.len(),
            self.rss,
            ms(&self.sink_alone, 0.5),
            ms(&self.sink_alone, 0.99),
            self.own_rate,
            ms(&self.own, 0.5),
            ms(&self.own, 0.99),
            ms(&self.own, 1.0),
            self.own.len(),
        )
    }

    /// Its part of the SUMMARY line.
    pub(super) fn summary(&self) -> String {
        format!(
            "paced {:.0}/s p50 {:.0} ms p99 {:.0} ms (sink alone: p99 {:.0} ms; sink refresh \
             interval {SINK_REFRESH}); binlog2es' own part (instant sink, {:.0}/s): p50 {:.0} ms \
             p99 {:.0} ms",
            self.rate,
            ms(&self.searchable, 0.5),
            ms(&self.searchable, 0.99),
            ms(&self.sink_alone, 0.99),
            self.own_rate,
            ms(&self.own, 0.5),
            ms(&self.own, 0.99),
        )
    }
}

/// Inserts [`ROWS`] new rows as one transaction every 10 ms, [`TICKS`] times, sampling the
/// last row of each; returns the time it took.
async fn pace(conn: &mut Conn, samples: &Mutex<Vec<Sample>>) -> Duration {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sql = String::new();
    for k in 0..TICKS {
        tick.tick().await;
        let first = 1 + k * ROWS;
        let last = first + ROWS - 1;
        insert(conn, &mut sql, first..=last).await;
        sample(samples, last, Some(0)).await;
    }
    started.elapsed()
}

/// [`pace`] with a daemon (default settings) writing to an instant sink; returns the rate
/// reached and, per sampled commit, the time until its document reached the sink.
async fn paced_ours(env: &TestEnv) -> (f64, Vec<Duration>) {
    let upstream = fresh_sink(env).await;
    let sink = instant::start_recording(&upstream.url).await;
    let (db, mut conn) = env.create_database_with(DDL).await;
    let index = env.unique_index("e2e-paced-instant");
    upstream.es.create_index(&index, paced_index_body()).await;
    let mut daemon = Daemon::builder(env)
        .es_url(&sink.url)
        .table(&format!("{db}.t"), &index)
        .start()
        .await;
    let samples = Mutex::new(Vec::new());
    let took = pace(&mut conn, &samples).await;
    let end = env.binlog_position().await;
    wait_checkpoint(&mut daemon, &end, Duration::from_secs(120)).await;
    assert_eq!(daemon.terminate().await, 0);
    let arrivals = sink.arrivals.as_ref().unwrap().lock().unwrap();
    assert_eq!(arrivals.len() as u64, ROWS * TICKS, "documents at the sink");
    let mut latencies: Vec<Duration> = samples
        .into_inner()
        .iter()
        .map(|s| {
            let at = arrivals
                .get(&s.id)
                .unwrap_or_else(|| panic!("document {} never reached the sink", s.id));
            at.saturating_duration_since(s.committed)
        })
        .collect();
    latencies.sort();
    ((ROWS * TICKS) as f64 / took.as_secs_f64(), latencies)
}

/// Sends [`ROWS`] new documents every 10 ms as one bulk request each (at most `lanes` in
/// flight), [`TICKS`] times; returns each request's time from its tick to its
/// acknowledgement, sorted.
async fn paced_raw(es_url: &str, index: &str, lanes: usize) -> Vec<Duration> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(lanes)
        .build()
        .unwrap();
    let url = format!("{es_url}/_bulk?filter_path=errors");
    let slots = Arc::new(tokio::sync::Semaphore::new(lanes));
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for k in 0..TICKS {
        tick.tick().await;
        let at = Instant::now();
        let mut body = String::new();
        for id in 1 + k * ROWS..=(k + 1) * ROWS {
            body.push_str(&format!(
                "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{id}\",\"version\":1,\"version_type\":\"external_gte\"}}}}\n{}\n",
                row(id, 0, now_us()).json()
            ));
        }
        let (http, url, slots) = (http.clone(), url.clone(), Arc::clone(&slots));
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.unwrap();
            post_bulk(&http, &url, body).await;
            at.elapsed()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out.sort();
    out
}
