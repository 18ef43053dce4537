//! Test harness shared by the integration tests (STYLE.md §6).
//!
//! One MariaDB (row binlog on) and one osmem-server are started lazily per test binary and
//! shared by its tests; each test gets its own database and index names. Set
//! `BINLOG2ES_TEST_MYSQL_URL` (an admin URL) and/or `BINLOG2ES_TEST_ES_URL` to use running
//! servers instead.
//!
//! - [`TestEnv`]: the shared servers, unique names, admin MySQL connections;
//!   [`TestEnv::dedicated`] starts a MariaDB of a test's own with extra server arguments.
//! - [`Fixture`]: the usual setup, a database with table `t` and a daemon streaming it
//!   ([`Fixture::start_with`]: with a pre-created index and/or extra daemon settings).
//! - [`Daemon`]: writes a config, runs `binlog2es run`, kills/terminates/restarts it.
//! - [`Es`]: small Elasticsearch client (refresh, count, get, all docs, raw requests).
//! - `compare`: table rows and index documents as JSON maps, [`Diff`], and
//!   [`wait_until_index_equals_table`]; [`wait_until`] for any other condition.
//!
//! Nothing waits with a fixed sleep: conditions are polled with a timeout. A `Daemon` dropped
//! during a panic prints its log tail and keeps its temp dir.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code: panics are the report

mod background;
pub mod certs;
mod compare;
mod daemon;
mod es;
pub mod proxy;
mod servers;
pub mod tls_proxy;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

// Each test binary uses a different part of the harness.
#[allow(unused_imports)]
pub use background::Background;
#[allow(unused_imports)]
pub use compare::{
    Diff, Docs, assert_fields, assert_index_equals_table, compare, diff_docs, table_rows,
    wait_until_index_equals_table,
};
#[allow(unused_imports)]
pub use daemon::{CliOutput, Daemon, DaemonBuilder, run_cli, run_cli_with_env};
#[allow(unused_imports)]
pub use es::Es;
#[allow(unused_imports)]
pub use servers::{MariaDb, Osmem, free_port};

/// The servers shared by all tests of one test binary.
pub struct TestEnv {
    /// Admin account: all privileges (`mysql://admin:admin@127.0.0.1:PORT` when ours).
    pub admin_url: String,
    /// Least-privilege account the daemon connects with.
    pub daemon_url: String,
    /// Elasticsearch-compatible endpoint, e.g. `http://127.0.0.1:PORT`.
    pub es_url: String,
    /// `VERSION()` says MariaDB.
    pub is_mariadb: bool,
    /// Makes database and index names unique across test processes and runs.
    tag: String,
    /// The MariaDB only this env uses ([`TestEnv::dedicated`]); dies with the env.
    server: Option<MariaDb>,
}

static ENV: OnceLock<TestEnv> = OnceLock::new();
static NAMES: AtomicU32 = AtomicU32::new(0);

impl TestEnv {
    /// The shared servers, started on first use.
    ///
    /// The start runs on a plain thread with its own runtime, so the servers (child processes)
    /// and the state outlive each `#[tokio::test]` runtime.
    pub fn get() -> &'static TestEnv {
        ENV.get_or_init(|| {
            std::thread::spawn(servers::start)
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Starts a MariaDB for this caller alone, with `extra_args` after the usual arguments
    /// (e.g. `["--binlog-row-metadata=MINIMAL"]`), sharing the process's Elasticsearch. The
    /// server is killed (and its data dir removed) when the returned env is dropped, or by a
    /// watchdog when the test process exits. Always a local `mariadbd`, even when
    /// `BINLOG2ES_TEST_MYSQL_URL` is set.
    pub fn dedicated(extra_args: &[&str]) -> TestEnv {
        let args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        std::thread::spawn(move || servers::start_dedicated(&args))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// A [`TestEnv::dedicated`] that lives as long as the test binary (for fixtures).
    pub fn dedicated_static(extra_args: &[&str]) -> &'static TestEnv {
        Box::leak(Box::new(TestEnv::dedicated(extra_args)))
    }

    /// The error log of a dedicated server (empty for shared or external servers).
    pub fn server_error_log(&self) -> String {
        self.server
            .as_ref()
            .map(MariaDb::error_log)
            .unwrap_or_default()
    }

    fn next_name(&self, prefix: &str, sep: char) -> String {
        let n = NAMES.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}{sep}{}{sep}{n}", self.tag)
    }

    /// A fresh index name (lowercase, unique), e.g. `repl-1234a7-3`.
    pub fn unique_index(&self, prefix: &str) -> String {
        self.next_name(&prefix.to_lowercase(), '-')
    }

    /// Creates a fresh, empty database and returns its name.
    pub async fn create_database(&self) -> String {
        let db = self.next_name("b2e", '_');
        let mut conn = self.mysql().await;
        conn.query_drop(format!("CREATE DATABASE `{db}`"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {db}: {e}"));
        conn.disconnect().await.ok();
        db
    }

    /// Creates a fresh database, runs `ddl` in it (several statements allowed) and returns its
    /// name with an admin connection whose default database it is.
    pub async fn create_database_with(&self, ddl: &str) -> (String, Conn) {
        let db = self.create_database().await;
        let mut conn = self.mysql_db(&db).await;
        conn.query_drop(ddl)
            .await
            .unwrap_or_else(|e| panic!("DDL in {db}: {e}\n{ddl}"));
        (db, conn)
    }

    /// An admin connection without a default database.
    pub async fn mysql(&self) -> Conn {
        connect(Opts::from_url(&self.admin_url).expect("admin URL")).await
    }

    /// An admin connection with `db` as its default database.
    pub async fn mysql_db(&self, db: &str) -> Conn {
        let opts = OptsBuilder::from_opts(Opts::from_url(&self.admin_url).expect("admin URL"))
            .db_name(Some(db));
        connect(opts.into()).await
    }

    /// Client for the shared Elasticsearch.
    pub fn es(&self) -> Es {
        Es::new(&self.es_url)
    }

    /// The server's current binlog file (e.g. `binlog.000001`).
    pub async fn binlog_file(&self) -> String {
        let mut conn = self.mysql().await;
        // MySQL 8.4 removed SHOW MASTER STATUS in favour of SHOW BINARY LOG STATUS.
        let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
            Ok(row) => row,
            Err(_) => conn.query_first("SHOW BINARY LOG STATUS").await.unwrap(),
        };
        let row = row.expect("binary logging is off");
        row.get::<String, _>(0).expect("binlog file name")
    }

    /// The server's current binlog end as (file, offset): every transaction committed before
    /// the call lies before it. Compares like a checkpoint position (file, then offset).
    pub async fn binlog_position(&self) -> (String, u64) {
        let mut conn = self.mysql().await;
        let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
            Ok(row) => row,
            Err(_) => conn.query_first("SHOW BINARY LOG STATUS").await.unwrap(),
        };
        let row = row.expect("binary logging is off");
        conn.disconnect().await.ok();
        (
            row.get::<String, _>(0).expect("binlog file name"),
            row.get::<u64, _>(1).expect("binlog position"),
        )
    }
}

impl TestEnv {
    /// Creates a fresh account named after `prefix` with the daemon's privileges; `auth` is
    /// the rest of `CREATE USER`, e.g. `IDENTIFIED BY 'pw' REQUIRE X509`. Returns its URL at
    /// the server's `host:port` with `password` in it.
    pub async fn create_account(&self, prefix: &str, password: &str, auth: &str) -> String {
        let user = self.next_name(prefix, '_');
        let mut conn = self.mysql().await;
        conn.query_drop(format!(
            "DROP USER IF EXISTS '{user}'@'%'; CREATE USER '{user}'@'%' {auth}; \
             GRANT {} ON *.* TO '{user}'@'%'",
            servers::daemon_privileges(self.is_mariadb)
        ))
        .await
        .unwrap_or_else(|e| panic!("creating account {user}: {e}"));
        conn.disconnect().await.ok();
        let host_port = self
            .daemon_url
            .rsplit('@')
            .next()
            .expect("host in daemon_url");
        format!("mysql://{user}:{password}@{host_port}")
    }
}

async fn connect(opts: Opts) -> Conn {
    Conn::new(opts)
        .await
        .unwrap_or_else(|e| panic!("connecting to MySQL: {e}"))
}

/// Polls `cond` every 50 ms until it returns true (then true) or `timeout` passes (then false).
pub async fn wait_until(timeout: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of metric `name`, summed over its series, from the daemon's `/metrics` at
/// `base` (`http://host:port`); `None` when it cannot be read or has no series.
pub async fn metric(base: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The usual test setup: a fresh database holding the tables `ddl` creates, and a daemon
/// streaming `db.t` into a fresh index.
pub struct Fixture {
    pub env: &'static TestEnv,
    pub db: String,
    /// Admin connection with `db` as default database.
    pub conn: Conn,
    pub index: String,
    pub daemon: Daemon,
}

impl Fixture {
    pub async fn start(prefix: &str, ddl: &str) -> Fixture {
        Fixture::start_with(prefix, ddl, None, |builder| builder).await
    }

    /// Like [`Fixture::start`], but creates the index first with `index_body` (settings,
    /// mappings) when given, and lets `configure` adjust the daemon's config.
    pub async fn start_with(
        prefix: &str,
        ddl: &str,
        index_body: Option<serde_json::Value>,
        configure: impl FnOnce(DaemonBuilder) -> DaemonBuilder,
    ) -> Fixture {
        Self::start_on(TestEnv::get(), prefix, ddl, index_body, configure).await
    }

    /// As [`Fixture::start_with`], on a given env (e.g. a leaked [`TestEnv::dedicated`]).
    pub async fn start_on(
        env: &'static TestEnv,
        prefix: &str,
        ddl: &str,
        index_body: Option<serde_json::Value>,
        configure: impl FnOnce(DaemonBuilder) -> DaemonBuilder,
    ) -> Fixture {
        let (db, conn) = env.create_database_with(ddl).await;
        let index = env.unique_index(prefix);
        if let Some(body) = index_body {
            env.es().create_index(&index, body).await;
        }
        let builder = Daemon::builder(env).table(&format!("{db}.t"), &index);
        let daemon = configure(builder).start().await;
        Fixture {
            env,
            db,
            conn,
            index,
            daemon,
        }
    }

    /// Waits for `expected.len()` documents and compares each with its expected `_source`.
    pub async fn assert_docs(&mut self, expected: &[(&str, serde_json::Value)]) {
        self.wait_for_count(expected.len() as u64).await;
        for (id, want) in expected {
            let doc = self
                .doc(id)
                .await
                .unwrap_or_else(|| panic!("no document {id}"));
            assert_fields(&doc, want, &format!("document {id}"));
        }
    }

    /// Runs statements (several allowed, `;`-separated) on the admin connection.
    pub async fn sql(&mut self, sql: &str) {
        self.conn
            .query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Waits (up to `timeout`) until the index equals table `t`.
    pub async fn converge_within(&mut self, timeout: Duration) -> Diff {
        let (env, db, index) = (self.env, &self.db, &self.index);
        wait_until_index_equals_table(env, &mut self.daemon, db, "t", index, timeout).await
    }

    /// Waits (up to 120 s) until the index equals table `t`.
    pub async fn converge(&mut self) -> Diff {
        self.converge_within(secs(120)).await
    }

    /// The document with this id, if any.
    pub async fn doc(&self, id: &str) -> Option<serde_json::Value> {
        self.env.es().get(&self.index, id).await
    }

    /// Waits (up to 120 s, the daemon running) until the index holds exactly `count`
    /// documents: for tables whose values `converge` cannot derive from a `SELECT` (JSON text,
    /// GEOMETRY). Panics on timeout.
    pub async fn wait_for_count(&mut self, count: u64) {
        let es = self.env.es();
        let deadline = Instant::now() + secs(120);
        loop {
            self.daemon.assert_running();
            let now = es.count(&self.index).await;
            if now == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "index {} has {now} documents, expected {count}",
                self.index
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The document with this id as its raw `_source` text (number digits exactly as stored).
    pub async fn raw_source(&self, id: &str) -> String {
        let raw = self
            .env
            .es()
            .get_raw(&self.index, id)
            .await
            .unwrap_or_else(|| panic!("no document {id}"));
        let at = raw.find("\"_source\"").expect("_source in the GET answer");
        let rest = raw[at + "\"_source\"".len()..].trim_start();
        let rest = rest
            .strip_prefix(':')
            .expect("':' after _source")
            .trim_start();
        // The object ends at its matching brace (strings may hold braces).
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for (i, c) in rest.char_indices() {
            if in_string {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '{' | '[' => depth += 1,
                '}' | ']' => {
                    depth -= 1;
                    if depth == 0 {
                        return rest[..=i].to_string();
                    }
                }
                _ => {}
            }
        }
        panic!("unterminated _source in {raw}")
    }
}

/// The text of field `name` in a raw `_source` JSON object, exactly as sent (to check
/// number digits that a parse would round).
pub fn raw_field<'a>(raw: &'a str, name: &str) -> &'a str {
    let key = format!("\"{name}\"");
    let at = raw
        .find(&key)
        .unwrap_or_else(|| panic!("no field {name} in {raw}"));
    let rest = raw[at + key.len()..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .unwrap_or_else(|| panic!("no ':' after {name} in {raw}"))
        .trim_start();
    let end = rest
        .find(|c: char| c == ',' || c == '}' || c.is_whitespace())
        .unwrap_or(rest.len());
    &rest[..end]
}
