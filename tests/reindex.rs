//! `binlog2es reindex` (SPEC §10, issue 14): an index is rebuilt behind its alias under the
//! current rule while the stream keeps writing; readers of the alias see the old or the new
//! index, complete, throughout; a crash in any phase resumes the rebuild on restart; a concrete
//! index an older version created is converted; refusals name the index.
//!
//! Drift reporting (`check`, the start-up warning) has tests of its own in `index_mapping.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};

const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, title VARCHAR(100) NOT NULL, \
                     price INT NOT NULL, n INT NOT NULL) DEFAULT CHARSET = utf8mb4";

/// The test hook's environment variable and the line the daemon logs when it stops there.
const PAUSE: &str = "BINLOG2ES_REBUILD_PAUSE";
const PAUSED: &str = "Rebuild paused for a test.";
const FINISHED: &str = "Rebuild finished; readers now see the new index.";

/// Rows `id % DELETABLE == 0` are the only pre-existing rows a writer deletes, so every other
/// row that existed before it started is in the index throughout (the readers' floor).
const DELETABLE: u64 = 30;

/// Fills `t` with rows `1..=count` in one statement (a cross join of digits: portable, no
/// sequence engine or recursion limit needed).
async fn fill(conn: &mut Conn, count: u64) {
    let digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                  UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 \
                  UNION ALL SELECT 8 UNION ALL SELECT 9)";
    let places = (1..=7).find(|p| 10u64.pow(*p) >= count).unwrap_or(7);
    let from: Vec<String> = (0..places).map(|p| format!("{digits} p{p}")).collect();
    let sum: Vec<String> = (0..places)
        .map(|p| format!("p{p}.d * {}", 10u64.pow(p)))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO t (id, title, price, n) SELECT s.i, CONCAT('title ', s.i), s.i % 997, 0 \
         FROM (SELECT {} + 1 AS i FROM {}) s WHERE s.i <= {count}",
        sum.join(" + "),
        from.join(" CROSS JOIN ")
    ))
    .await
    .unwrap();
}

/// A database with `t` holding `rows` rows and a daemon (endpoint on a known port,
/// `snapshot.mode = "initial"`, small copy chunks) that has copied it into a fresh index.
struct Setup {
    env: &'static TestEnv,
    db: String,
    conn: Conn,
    index: String,
    daemon: Daemon,
}

impl Setup {
    /// `index_body`: create the index first with this body, given the database's name (e.g.
    /// a concrete index of an older version); `vars`: environment of the daemon's `run`.
    async fn start(
        prefix: &str,
        rows: u64,
        index_body: Option<fn(&str) -> Value>,
        vars: &[(&str, &str)],
        configure: impl FnOnce(DaemonBuilder) -> DaemonBuilder,
    ) -> Setup {
        let env = TestEnv::get();
        let (db, mut conn) = env.create_database_with(TABLE).await;
        fill(&mut conn, rows).await;
        let index = env.unique_index(prefix);
        if let Some(body) = index_body {
            env.es().create_index(&index, body(&db)).await;
        }
        let builder = Daemon::builder(env)
            .http_listen(&format!("127.0.0.1:{}", free_port()))
            .snapshot_mode("initial")
            .snapshot_toml("chunk_size = 50")
            .table(&format!("{db}.t"), &index);
        let mut daemon = configure(builder).build();
        for (key, value) in vars {
            daemon.set_env(key, value);
        }
        daemon.restart().await;
        let mut setup = Setup {
            env,
            db,
            conn,
            index,
            daemon,
        };
        setup.converge().await;
        setup
    }

    async fn sql(&mut self, sql: &str) {
        self.conn
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Waits (up to 120 s) until the index (through its alias) equals `t`.
    async fn converge(&mut self) {
        let (env, db, index) = (self.env, &self.db, &self.index);
        wait_until_index_equals_table(env, &mut self.daemon, db, "t", index, secs(120)).await;
    }

    /// `binlog2es reindex --config F --index NAME`.
    async fn reindex(&self, index: &str) -> CliOutput {
        let config = self.daemon.config_path().display().to_string();
        run_cli(&["reindex", "--config", &config, "--index", index]).await
    }

    /// Stops the daemon, adds `lines` to its rule and starts it again.
    async fn change_rule(&mut self, lines: &str) {
        assert_eq!(
            self.daemon.terminate().await,
            0,
            "stopping for the rule change"
        );
        let path = self.daemon.config_path();
        let config = std::fs::read_to_string(&path).unwrap();
        let rule_end = format!("index = \"{}\"\n", self.index);
        assert!(config.contains(&rule_end), "{config}");
        std::fs::write(
            &path,
            config.replace(&rule_end, &format!("{rule_end}{lines}\n")),
        )
        .unwrap();
        self.daemon.restart().await;
    }

    /// Waits (up to `timeout`, the daemon running) until `needle` is in the latest run's log.
    async fn wait_for_log(&mut self, needle: &str, timeout: Duration) {
        let daemon = &mut self.daemon;
        let seen = wait_until(timeout, async || {
            daemon.assert_running();
            daemon.last_run_log().contains(needle)
        })
        .await;
        assert!(seen, "no `{needle}` in the log after {timeout:?}");
    }

    /// Waits (up to `timeout`, the daemon running) until the checkpoint lists no rebuild.
    async fn wait_for_rebuild_end(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while rebuilding(&self.daemon) {
            self.daemon.assert_running();
            assert!(
                Instant::now() < deadline,
                "rebuild not finished after {timeout:?}; checkpoint: {}",
                self.daemon.checkpoint()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The physical index behind the rule's name: the alias target, or the name itself when
    /// it is a concrete index.
    async fn physical(&self) -> String {
        let es = self.env.es();
        match es.alias_targets(&self.index).await.as_slice() {
            [] => {
                assert_eq!(
                    es.indices(&self.index).await,
                    vec![self.index.clone()],
                    "{} is neither an alias nor an index",
                    self.index
                );
                self.index.clone()
            }
            [one] => one.clone(),
            many => panic!("{} points to several indices: {many:?}", self.index),
        }
    }

    /// After a rebuild from `old`: the rule's name is an alias to exactly one new generation
    /// `NAME-<n>`, which is the only physical index of that name left (`old` is gone, no stray
    /// half-built one); returns it.
    async fn assert_rebuilt_from(&self, old: &str) -> String {
        let (es, index) = (self.env.es(), &self.index);
        let targets = es.alias_targets(index).await;
        assert_eq!(
            targets.len(),
            1,
            "{index} should alias one index: {targets:?}"
        );
        let target = targets[0].clone();
        assert_ne!(target, old, "{index} still points to the old index");
        let generation = target.strip_prefix(&format!("{index}-"));
        assert!(
            generation.is_some_and(|g| g.parse::<u32>().is_ok()),
            "{index} points to {target}, not to a generation {index}-<n>"
        );
        assert_eq!(
            es.indices(&format!("{index}-*")).await,
            vec![target.clone()],
            "physical indices of {index} besides the new one"
        );
        assert!(
            es.indices(index).await.is_empty(),
            "a concrete index {index} is left"
        );
        assert!(
            !rebuilding(&self.daemon),
            "checkpoint still lists a rebuild: {}",
            self.daemon.checkpoint()
        );
        target
    }
}

/// Whether the checkpoint lists a rebuild.
fn rebuilding(daemon: &Daemon) -> bool {
    daemon.checkpoint()["rebuilds"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
}

/// Small transactions of one to three statements until `stop` is set: updates of the first
/// `rows` rows, inserts of new ids (taken from `ever`, the count of ids that ever existed,
/// before the insert is sent) and deletes of pre-existing rows with `id % DELETABLE == 0`
/// only. Returns how many transactions committed.
fn spawn_writer(
    env: &'static TestEnv,
    db: String,
    rows: u64,
    ever: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut conn = env.mysql_db(&db).await;
        let mut rng = StdRng::seed_from_u64(0x5eed_0014);
        let mut done = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut statements = vec!["BEGIN".to_string()];
            for _ in 0..rng.random_range(1..=3) {
                statements.push(match rng.random_range(0..10) {
                    0..=4 => format!(
                        "UPDATE t SET n = n + 1, title = CONCAT('changed ', id, ' ', n) \
                         WHERE id = {}",
                        rng.random_range(1..=rows)
                    ),
                    5..=7 => {
                        let id = ever.fetch_add(1, Ordering::SeqCst) + 1;
                        format!("INSERT INTO t VALUES ({id}, 'new {id}', {}, 0)", id % 997)
                    }
                    _ => format!(
                        "DELETE FROM t WHERE id = {}",
                        DELETABLE * rng.random_range(1..=rows / DELETABLE)
                    ),
                });
            }
            statements.push("COMMIT".into());
            let sql = statements.join("; ");
            conn.query_drop(&sql)
                .await
                .unwrap_or_else(|e| panic!("writer transaction `{sql}` failed: {e}"));
            done += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        conn.disconnect().await.ok();
        done
    })
}

/// What a reader saw through the alias.
#[derive(Debug, Default)]
struct Reads {
    counts: u64,
    docs: u64,
    problems: Vec<String>,
}

impl Reads {
    fn problem(&mut self, text: String) {
        if self.problems.len() < 20 {
            self.problems.push(text);
        }
    }
}

/// Polls `GET NAME/_count` and pages of `NAME/_search` (no refresh of its own) until `stop`:
/// every answer is 200, every count lies in `floor..=ever` (ever read after the answer, so
/// it counts every id that could have a document), and every document has exactly one of the
/// `shapes` (field-name sets) with `id` matching `_id`.
fn spawn_reader(
    es_url: String,
    index: String,
    floor: u64,
    ever: Arc<AtomicU64>,
    shapes: Arc<Vec<BTreeSet<String>>>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> tokio::task::JoinHandle<Reads> {
    tokio::spawn(async move {
        let es = Es::new(&es_url);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut reads = Reads::default();
        while !stop.load(Ordering::Relaxed) {
            let (status, body) = es
                .request(Method::GET, &format!("/{index}/_count"), None)
                .await;
            let ceiling = ever.load(Ordering::SeqCst);
            match body["count"].as_u64() {
                Some(count) if status == 200 => {
                    reads.counts += 1;
                    if count < floor || count > ceiling {
                        reads.problem(format!(
                            "count {count} outside {floor}..={ceiling} (read #{})",
                            reads.counts
                        ));
                    }
                }
                _ => reads.problem(format!("GET /{index}/_count: {status} {body}")),
            }
            let from = rng.random_range(0..floor.saturating_sub(100));
            let (status, body) = es
                .request(
                    Method::POST,
                    &format!("/{index}/_search"),
                    Some(json!({"size": 100, "from": from})),
                )
                .await;
            let Some(hits) = body["hits"]["hits"].as_array().filter(|_| status == 200) else {
                reads.problem(format!("POST /{index}/_search: {status} {body}"));
                continue;
            };
            for hit in hits {
                reads.docs += 1;
                let source = &hit["_source"];
                let fields: BTreeSet<String> = source
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default();
                let id_matches = source["id"].as_u64().map(|id| id.to_string()).as_deref()
                    == hit["_id"].as_str();
                if !shapes.contains(&fields) || !id_matches {
                    reads.problem(format!("incomplete document {}: {source}", hit["_id"]));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reads
    })
}

fn shape(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|f| f.to_string()).collect()
}

/// The rebuild under load: `rows` rows copied under the first rule; the rule gains `lines`
/// (the daemon restarted); a writer and two readers run while `reindex` rebuilds the index;
/// at the end the index equals the table under the new rule (`rename`: column → field) and
/// the name is an alias to the new generation only. Returns the setup for further checks.
async fn rebuild_under_load(
    prefix: &str,
    lines: &str,
    rename: &[(&str, &str)],
    shapes: Vec<BTreeSet<String>>,
) -> Setup {
    const ROWS: u64 = 3_000;
    // GIVEN an index copied from a table under the first rule
    let mut s = Setup::start(prefix, ROWS, None, &[], |b| b).await;
    let env = s.env;
    // AND the rule changed, the daemon restarted
    s.change_rule(lines).await;

    // WHEN a writer changes the table and two readers poll the alias while it is rebuilt
    let ever = Arc::new(AtomicU64::new(ROWS));
    let stop_writer = Arc::new(AtomicBool::new(false));
    let stop_readers = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(
        env,
        s.db.clone(),
        ROWS,
        Arc::clone(&ever),
        Arc::clone(&stop_writer),
    );
    let shapes = Arc::new(shapes);
    let readers: Vec<_> = (0..2)
        .map(|n| {
            spawn_reader(
                env.es_url.clone(),
                s.index.clone(),
                ROWS - ROWS / DELETABLE,
                Arc::clone(&ever),
                Arc::clone(&shapes),
                Arc::clone(&stop_readers),
                n,
            )
        })
        .collect();
    let writing = wait_until(secs(30), async || ever.load(Ordering::SeqCst) > ROWS + 20).await;
    assert!(writing, "the writer inserted nothing in 30 s");
    let old = s.physical().await;
    let rebuild = Instant::now();
    let out = s.reindex(&s.index).await;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains(&s.index), "{out}");
    s.wait_for_rebuild_end(secs(180)).await;
    eprintln!("{}: rebuilt in {:.1?}", s.index, rebuild.elapsed());
    stop_writer.store(true, Ordering::Relaxed);
    let transactions = writer.await.unwrap();
    assert!(transactions > 0);

    // THEN the index equals the table under the new rule
    let deadline = Instant::now() + secs(120);
    loop {
        s.daemon.assert_running();
        let mut expected = table_rows(&mut s.conn, &s.db, "t").await;
        for doc in expected.values_mut() {
            let fields = doc.as_object_mut().unwrap();
            for (column, field) in rename {
                let value = fields.remove(*column).unwrap();
                fields.insert(field.to_string(), value);
            }
        }
        let diff = diff_docs(&expected, &env.es().docs(&s.index).await);
        if diff.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "index {} != table under the new rule after 120 s: {diff}",
            s.index
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // AND the readers never saw a missing, doubled or incomplete index
    stop_readers.store(true, Ordering::Relaxed);
    for reader in readers {
        let reads = reader.await.unwrap();
        assert!(
            reads.problems.is_empty(),
            "a reader saw (of {} counts, {} documents):\n{}",
            reads.counts,
            reads.docs,
            reads.problems.join("\n")
        );
        assert!(reads.counts > 0 && reads.docs > 0, "{reads:?}");
        eprintln!("reader: {} counts, {} documents", reads.counts, reads.docs);
    }
    // AND the name is an alias to the new generation alone, the old index is gone
    s.assert_rebuilt_from(&old).await;
    assert!(s.daemon.last_run_log().contains(FINISHED));
    s
}

#[tokio::test]
async fn a_renamed_field_is_rebuilt_behind_the_alias_while_streaming() {
    let s = rebuild_under_load(
        "reidx-rename",
        "rename = { title = \"headline\" }",
        &[("title", "headline")],
        vec![
            shape(&["id", "title", "price", "n"]),
            shape(&["id", "headline", "price", "n"]),
        ],
    )
    .await;
    let mapping = s.env.es().mapping(&s.index).await.unwrap();
    assert!(
        mapping["properties"]["title"].is_null(),
        "the new index maps the old field: {mapping}"
    );
}

#[tokio::test]
async fn a_changed_field_type_is_rebuilt_behind_the_alias_while_streaming() {
    // The first index maps the INT column as a number.
    let s = rebuild_under_load(
        "reidx-type",
        "mapping = { price = { type = \"keyword\" } }",
        &[],
        vec![shape(&["id", "title", "price", "n"])],
    )
    .await;
    let mapping = s.env.es().mapping(&s.index).await.unwrap();
    assert_eq!(
        mapping["properties"]["price"]["type"], "keyword",
        "{mapping}"
    );
}

#[tokio::test]
async fn a_concrete_index_of_an_older_version_is_converted_to_an_alias() {
    // GIVEN a concrete index NAME, created by binlog2es before the alias layout (no
    // fingerprint), holding the table's documents
    let env = TestEnv::get();
    let body = |db: &str| {
        json!({"mappings": {"_meta": {
            "created_by": "binlog2es",
            "source_table": format!("{db}.t"),
            "binlog2es_version": "0.9.0",
        }}})
    };
    let mut s = Setup::start("reidx-concrete", 500, Some(body), &[], |b| b).await;
    assert_eq!(
        s.physical().await,
        s.index,
        "the index should still be concrete"
    );

    // WHEN it is rebuilt while rows change
    let out = s.reindex(&s.index).await;
    assert_eq!(out.code, 0, "{out}");
    s.sql(
        "INSERT INTO t VALUES (10001, 'during', 1, 0); UPDATE t SET n = 5 WHERE id = 7; \
           DELETE FROM t WHERE id = 9",
    )
    .await;
    s.wait_for_rebuild_end(secs(120)).await;

    // THEN NAME is an alias to a new physical index, the concrete index is gone
    s.converge().await;
    s.assert_rebuilt_from(&s.index.clone()).await;

    // AND a restarted daemon keeps writing through the alias
    assert_eq!(s.daemon.terminate().await, 0);
    s.daemon.restart().await;
    s.sql("INSERT INTO t VALUES (10002, 'after', 2, 0); DELETE FROM t WHERE id = 11")
        .await;
    s.converge().await;
    let target = s.assert_rebuilt_from(&s.index.clone()).await;
    assert_eq!(
        env.es().count(&target).await,
        env.es().count(&s.index).await
    );
    assert_eq!(s.daemon.terminate().await, 0);
}

#[tokio::test]
async fn reindex_refuses_unknown_foreign_and_concurrent_requests() {
    // GIVEN a daemon writing two indices of its own and one it did not create, whose
    // rebuilds stop in the copy (the test hook)
    let env = TestEnv::get();
    let foreign = env.unique_index("reidx-foreign");
    env.es()
        .create_index(
            &foreign,
            json!({"mappings": {"properties": {"id": {"type": "long"}}}}),
        )
        .await;
    let other = env.unique_index("reidx-other");
    let mut s = Setup::start("reidx-refuse", 300, None, &[(PAUSE, "copy")], |b| b).await;
    s.sql(
        "CREATE TABLE u LIKE t; INSERT INTO u SELECT * FROM t WHERE id <= 10; \
           CREATE TABLE f LIKE t; INSERT INTO f SELECT * FROM t WHERE id <= 10",
    )
    .await;
    // The new rules need a restart.
    assert_eq!(s.daemon.terminate().await, 0);
    let path = s.daemon.config_path();
    let mut config = std::fs::read_to_string(&path).unwrap();
    config += &format!(
        "\n[[tables]]\nmatch = \"{db}.u\"\nindex = \"{other}\"\n\
         \n[[tables]]\nmatch = \"{db}.f\"\nindex = \"{foreign}\"\n",
        db = s.db
    );
    std::fs::write(&path, config).unwrap();
    s.daemon.restart().await;
    s.sql("UPDATE u SET n = 1; UPDATE f SET n = 1").await;
    let es = env.es();
    let ready = wait_until(secs(60), async || {
        es.count(&other).await == 10 && es.count(&foreign).await == 10
    })
    .await;
    assert!(ready, "the other tables were not streamed");

    // THEN an index no rule writes is refused, naming it
    let out = s.reindex("reidx-no-such-index").await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("reidx-no-such-index"), "{out}");
    // AND an index binlog2es did not create
    let out = s.reindex(&foreign).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains(&foreign), "{out}");
    assert_eq!(es.alias_targets(&foreign).await, Vec::<String>::new());
    assert_eq!(es.indices(&foreign).await, vec![foreign.clone()]);

    // AND while one rebuild runs, a second one (of it or of another index) is refused
    let out = s.reindex(&s.index).await;
    assert_eq!(out.code, 0, "{out}");
    s.wait_for_log(PAUSED, secs(60)).await;
    for index in [s.index.clone(), other.clone()] {
        let out = s.reindex(&index).await;
        assert_eq!(out.code, 1, "second reindex of {index}: {out}");
        assert!(out.stderr.contains(&s.index), "{out}");
    }
    assert!(rebuilding(&s.daemon));
}

#[tokio::test]
async fn reindex_needs_the_http_endpoint() {
    let env = TestEnv::get();
    let daemon = Daemon::builder(env)
        .http_toml("enabled = false")
        .table("reidx_nodb.t", "reidx-disabled")
        .build();
    let config = daemon.config_path().display().to_string();
    let out = run_cli(&["reindex", "--config", &config, "--index", "reidx-disabled"]).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("http.enabled"), "{out}");
}

/// SIGKILL while the rebuild waits at `point` (rows changing meanwhile); a restart without
/// the hook finishes it: the index equals the table, the name aliases the new generation
/// alone, the old index and no half-built one are left, the checkpoint has no rebuild.
async fn killed_at(point: &str) {
    // GIVEN an index copied from a table of a few hundred rows (copy chunks of 50)
    let mut s = Setup::start(
        &format!("reidx-kill-{point}"),
        400,
        None,
        &[(PAUSE, point)],
        |b| b,
    )
    .await;
    let old = s.physical().await;

    // WHEN a rebuild stops at `point`, rows change, and the daemon is killed
    let out = s.reindex(&s.index).await;
    assert_eq!(out.code, 0, "{out}");
    s.wait_for_log(PAUSED, secs(120)).await;
    assert!(rebuilding(&s.daemon), "{}", s.daemon.checkpoint());
    s.sql(
        "INSERT INTO t VALUES (5001, 'paused a', 1, 0), (5002, 'paused b', 2, 0); \
           UPDATE t SET n = n + 1 WHERE id IN (3, 103, 203, 303); \
           DELETE FROM t WHERE id IN (4, 204)",
    )
    .await;
    s.daemon.kill();

    // AND restarted without the hook (rows changing before it streams again)
    s.sql(
        "INSERT INTO t VALUES (5003, 'down', 3, 0); UPDATE t SET title = 'down' WHERE id = 5; \
           DELETE FROM t WHERE id = 6",
    )
    .await;
    s.daemon.remove_env(PAUSE);
    s.daemon.restart().await;

    // THEN the rebuild finishes, and nothing is lost
    s.wait_for_rebuild_end(secs(120)).await;
    s.converge().await;
    s.assert_rebuilt_from(&old).await;
    assert!(s.daemon.log().contains(FINISHED), "{}", s.daemon.log());
    // AND streaming goes on through the alias
    s.sql("INSERT INTO t VALUES (5004, 'after', 4, 0); DELETE FROM t WHERE id = 7")
        .await;
    s.converge().await;
    assert_eq!(s.daemon.terminate().await, 0);
}

#[tokio::test]
async fn killed_in_the_copy_the_restart_finishes_the_rebuild() {
    killed_at("copy").await;
}

#[tokio::test]
async fn killed_in_the_catch_up_the_restart_finishes_the_rebuild() {
    killed_at("catch-up").await;
}

#[tokio::test]
async fn killed_just_before_the_switch_the_restart_finishes_the_rebuild() {
    killed_at("before-switch").await;
}

#[tokio::test]
async fn killed_just_after_the_switch_the_restart_finishes_the_rebuild() {
    killed_at("after-switch").await;
}
