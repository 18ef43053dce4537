//! Part 5 of the e2e bench (see its module docs): the insert-heavy workload, replayed with
//! the defaults and the [`VARIANTS`], against pre-built bodies, into an instant sink, and
//! next to the source's own decode time.

use super::*;

/// Rows of the insert-heavy workload (scaled by `BINLOG2ES_E2E_SCALE`).
const INSERT_HEAVY_ROWS: f64 = 200_000.0;

/// `[writer]` lines replayed beside the defaults on the insert-heavy workload, to compare
/// in the same run: (label, TOML lines).
const VARIANTS: &[(&str, &str)] = &[
    ("pipeline_depth 2", "pipeline_depth = 2"),
    (
        "adaptive up to 4",
        "pipeline_depth = 4;adaptive_concurrency = true",
    ),
    ("1 lane", "lanes = 1"),
    ("backlog off", "backlog_window = 0"),
];

/// What the insert-heavy part measured.
pub(super) struct InsertHeavy {
    rows: u64,
    /// Replay with the default settings.
    replay: Duration,
    replay_cpu: f64,
    /// (label, replay time) of each of [`VARIANTS`].
    variants: Vec<(&'static str, Duration)>,
    /// Pre-built bodies over `lanes` connections: the mean of [`Self::raws`].
    raw: Duration,
    /// The raw ingest right before and right after the default replay.
    raws: (Duration, Duration),
    /// Replay into the instant sink, and its CPU seconds.
    instant: Duration,
    instant_cpu: f64,
    /// `mariadb-binlog` decoding the same range; `None` when it could not run.
    source: Option<Duration>,
}

/// The daemon's `Lane time.` log lines, shortened to their fields.
fn lane_times(daemon: &Daemon) -> Vec<String> {
    daemon
        .last_run_log()
        .lines()
        .filter(|l| l.contains("Lane time."))
        .chain(
            // The last concurrency change of the run, when the limit adapts.
            daemon
                .last_run_log()
                .lines()
                .rfind(|l| l.contains("Request concurrency changed.")),
        )
        .map(|l| match l.find("wall_ms").or_else(|| l.find("from=")) {
            Some(at) => l[at..].to_string(),
            None => l.to_string(),
        })
        .collect()
}

/// A daemon for the insert-heavy replays, with its lanes' time logged.
fn replay_daemon(
    env: &TestEnv,
    url: &str,
    db: &str,
    index: &str,
    writer: &str,
) -> common::DaemonBuilder {
    let mut lines = std::env::var("BINLOG2ES_E2E_WRITER").unwrap_or_default();
    lines.push_str(&format!(";{writer}"));
    Daemon::builder(env)
        .es_url(url)
        .table(&format!("{db}.t"), index)
        .extra_toml(&format!("[writer]\n{}", lines.replace(';', "\n")))
        .extra_toml(
            "[logging]\nlevel = \"info,binlog2es::writer::lane_time=debug,\
             binlog2es::writer::in_flight=debug\"",
        )
}

/// Stops a daemon once it streams: its signal handlers are in place by then (a SIGTERM
/// during start-up can find none and kill it).
async fn stop_when_streaming(daemon: &mut Daemon) {
    let streaming = common::wait_until(Duration::from_secs(60), async || {
        daemon.log().contains("Streaming binlog.")
    })
    .await;
    assert!(streaming, "the daemon does not stream");
    assert_eq!(daemon.terminate().await, 0);
}

/// Replays from the daemon's checkpoint to `end`; returns the wall time and CPU seconds.
async fn replay_to(daemon: &mut Daemon, end: &(String, u64)) -> (Duration, f64) {
    let started = Instant::now();
    daemon.spawn();
    let pid = daemon.pid().unwrap();
    let done = wait_checkpoint(daemon, end, Duration::from_secs(900)).await;
    let cpu = cpu_seconds(pid);
    assert_eq!(daemon.terminate().await, 0);
    (done - started, cpu)
}

/// Time `mariadb-binlog` takes to read and decode `from..to` through the replication
/// protocol (the source's own limit), or `None` when it cannot run here.
async fn decode_time(env: &TestEnv, from: &(String, u64), to: &(String, u64)) -> Option<Duration> {
    // mysql://user:password@host:port
    let rest = env.admin_url.strip_prefix("mysql://")?;
    let (auth, host) = rest.split_once('@')?;
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (host, port) = host.trim_end_matches('/').split_once(':')?;
    let mut cmd = tokio::process::Command::new("mariadb-binlog");
    cmd.args([
        "--read-from-remote-server",
        &format!("--host={host}"),
        &format!("--port={port}"),
        &format!("--user={user}"),
        &format!("--password={password}"),
        "--base64-output=decode-rows",
        "-v",
        &format!("--start-position={}", from.1),
        &format!("--stop-position={}", to.1),
    ]);
    if from.0 != to.0 {
        cmd.arg("--to-last-log");
    }
    cmd.arg(&from.0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let out = cmd.output().await.ok()?;
    let took = started.elapsed();
    if !out.status.success() {
        println!(
            "source limit: mariadb-binlog failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    Some(took)
}

/// The workload's documents as pre-built bodies over `lanes` connections, into a fresh
/// sink; returns the wall time.
async fn raw_ingest(env: &TestEnv, w: Workload, rows: u64, lanes: usize) -> Duration {
    let sink = fresh_sink(env).await;
    let raw_index = env.unique_index("e2e-ins-raw");
    sink.es.create_index(&raw_index, index_body()).await;
    let ops = change_stream(w, &raw_index);
    let others = Others::start(&sink);
    let raw = ingest(&sink.url, &ops, lanes).await;
    assert_eq!(sink.es.count(&raw_index).await, rows, "{raw_index}");
    println!(
        "insert-heavy sink raw over {lanes} connection(s): {:.2} s; {}",
        raw.as_secs_f64(),
        others.report(&sink),
    );
    raw
}

/// What else used the cores during a measured run: the sink's server, and other guests of
/// the host (steal). The sink's CPU per run tells whether a slower run cost the sink more
/// work or only found its cores busy.
struct Others {
    sink_cpu: Option<f64>,
    steal: f64,
}

impl Others {
    fn start(sink: &Sink) -> Self {
        Others {
            sink_cpu: sink.cpu(),
            steal: support::steal_seconds(),
        }
    }

    fn report(&self, sink: &Sink) -> String {
        let cpu = match (self.sink_cpu, sink.cpu()) {
            (Some(before), Some(after)) => format!("sink CPU {:.2} s", after - before),
            _ => "sink CPU unknown".into(),
        };
        format!(
            "{cpu}, steal {:.2} s",
            support::steal_seconds() - self.steal
        )
    }
}

/// The insert-heavy workload (module docs, 5).
pub(super) async fn insert_heavy(env: &TestEnv, lanes: usize) -> InsertHeavy {
    let scale: f64 = std::env::var("BINLOG2ES_E2E_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let rows = ((INSERT_HEAVY_ROWS * scale / TXN_ROWS as f64)
        .round()
        .max(1.0) as u64)
        * TXN_ROWS;
    let w = Workload {
        inserts: rows,
        updates: 0,
        deletes: 0,
    };
    println!("insert-heavy: {rows} inserts in {TXN_ROWS}-row transactions, {lanes} lanes");
    // Every daemon starts (and records its checkpoint) before the workload, then stops; each
    // replays the same range later, alone on the machine.
    let (db, mut conn) = env.create_database_with(DDL).await;
    let mut runs = Vec::new();
    let mut labels: Vec<(&'static str, &'static str)> = vec![("default", "")];
    labels.extend(VARIANTS.iter().copied());
    for (label, writer) in labels {
        let sink = fresh_sink(env).await;
        let index = env.unique_index("e2e-ins");
        sink.es.create_index(&index, index_body()).await;
        let mut daemon = replay_daemon(env, &sink.url, &db, &index, writer)
            .start()
            .await;
        stop_when_streaming(&mut daemon).await;
        runs.push((label, sink, index, daemon));
    }
    // The instant sink forwards its start-up requests to a server of its own.
    let upstream = fresh_sink(env).await;
    let instant_sink = instant::start(&upstream.url).await;
    let instant_index = env.unique_index("e2e-ins-instant");
    upstream.es.create_index(&instant_index, index_body()).await;
    let mut instant_daemon = replay_daemon(env, &instant_sink.url, &db, &instant_index, "")
        .start()
        .await;
    stop_when_streaming(&mut instant_daemon).await;
    let from = instant_daemon.checkpoint_position();
    let load_time = load(&mut conn, w, None).await;
    let end = env.binlog_position().await;
    println!(
        "insert-heavy load: {:.2} s into MariaDB",
        load_time.as_secs_f64()
    );

    // The sink's speed drifts within a run, so the raw baseline brackets the default replay:
    // once right before it and once right after; the ratio uses their mean.
    let mut raws = vec![raw_ingest(env, w, rows, lanes).await];
    let mut replay = (Duration::ZERO, 0.0);
    let mut variants = Vec::new();
    for (label, sink, index, mut daemon) in runs {
        let others = Others::start(&sink);
        let (took, cpu) = replay_to(&mut daemon, &end).await;
        assert_eq!(sink.es.count(&index).await, rows, "{index}");
        println!(
            "insert-heavy replay, {label}: {:.2} s ({:.0} changes/s), CPU {cpu:.2} s; {}",
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64(),
            others.report(&sink),
        );
        for line in lane_times(&daemon) {
            println!("  lane time: {line}");
        }
        if label == "default" {
            replay = (took, cpu);
            raws.push(raw_ingest(env, w, rows, lanes).await);
        } else {
            variants.push((label, took));
        }
    }
    let raw = (raws[0] + raws[1]) / 2;

    let (instant, instant_cpu) = replay_to(&mut instant_daemon, &end).await;
    assert_eq!(
        instant_sink
            .items
            .load(std::sync::atomic::Ordering::Relaxed),
        rows,
        "instant sink items"
    );
    println!(
        "insert-heavy replay into an instant sink: {:.2} s ({:.0} changes/s), CPU {instant_cpu:.2} s \
         ({:.2} µs per change), {} requests",
        instant.as_secs_f64(),
        rows as f64 / instant.as_secs_f64(),
        instant_cpu * 1e6 / rows as f64,
        instant_sink
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    for line in lane_times(&instant_daemon) {
        println!("  lane time: {line}");
    }
    let source = decode_time(env, &from, &end).await;
    if let Some(t) = source {
        println!(
            "source limit: mariadb-binlog decodes the range in {:.2} s ({:.0} rows/s)",
            t.as_secs_f64(),
            rows as f64 / t.as_secs_f64()
        );
    }
    InsertHeavy {
        rows,
        replay: replay.0,
        replay_cpu: replay.1,
        variants,
        raw,
        raws: (raws[0], raws[1]),
        instant,
        instant_cpu,
        source,
    }
}

impl InsertHeavy {
    /// Its part of the SUMMARY line.
    pub(super) fn summary(&self) -> String {
        let secs = |d: Duration| d.as_secs_f64();
        let variants: Vec<String> = self
            .variants
            .iter()
            .map(|(label, t)| format!("{label} {:.2}x", secs(self.raw) / secs(*t)))
            .collect();
        let source = match self.source {
            Some(t) => format!(
                "{:.2}x mariadb-binlog's decode ({:.2}s)",
                secs(self.instant) / secs(t),
                secs(t)
            ),
            None => "mariadb-binlog not run".into(),
        };
        format!(
            "insert-heavy {}k: replay {:.2}s = {:.2}x raw ({:.2}s, mean of {:.2}s before and {:.2}s after) [{}], CPU {:.2}s | \
             instant sink {:.0} changes/s, {:.2} µs CPU/change, {source}",
            self.rows / 1000,
            secs(self.replay),
            secs(self.raw) / secs(self.replay),
            secs(self.raw),
            secs(self.raws.0),
            secs(self.raws.1),
            variants.join(", "),
            self.replay_cpu,
            self.rows as f64 / secs(self.instant),
            self.instant_cpu * 1e6 / self.rows as f64,
        )
    }
}
