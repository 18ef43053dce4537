//! A newcomer's first hour and an operator's first week (issue 15): `version`, `probe`,
//! `status --json`, `verify --table`, `resync` of a table the server lacks, the metrics an
//! operator alerts on, and configuration mistakes answered with the key, its source and the fix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))";

#[tokio::test]
async fn version_names_the_git_revision() {
    for args in [&["version"][..], &["--version"][..]] {
        let out = run_cli(args).await;
        assert_eq!(out.code, 0, "{out}");
        let line = out.stdout.trim();
        assert!(line.starts_with("binlog2es 0."), "{out}");
        let rev = line
            .split("(git ")
            .nth(1)
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("no git revision: {out}"));
        // This test runs from the repository, so the revision is HEAD's (or "unknown" when the
        // build saw no git).
        assert!(
            rev == "unknown" || (rev.len() == 12 && rev.chars().all(|c| c.is_ascii_hexdigit())),
            "{out}"
        );
    }
}

#[tokio::test]
async fn completions_and_man_page_come_from_the_clap_definition() {
    let out = run_cli(&["completions", "bash"]).await;
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout.contains("verify") && out.stdout.contains("--table"),
        "{out}"
    );
    let out = run_cli(&["man"]).await;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains(".TH binlog2es"), "{out}");
}

/// `probe`, `status --json`, `verify --table`, `resync` of a missing table and the metrics,
/// against one running daemon.
#[tokio::test]
async fn an_operator_s_commands_against_a_running_daemon() {
    // GIVEN a daemon streaming two tables of one database, rows in both indices
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(TABLE).await;
    use mysql_async::prelude::Queryable;
    conn.query_drop("CREATE TABLE u (id INT PRIMARY KEY, name VARCHAR(20))")
        .await
        .unwrap();
    let port = free_port();
    let prefix = env.unique_index("firsthour");
    let daemon = Daemon::builder(env)
        .http_listen(&format!("127.0.0.1:{port}"))
        .table(&format!("{db}.*"), &format!("{prefix}-{{table}}"))
        .start()
        .await;
    conn.query_drop("INSERT INTO t VALUES (1, 'a'), (2, 'b'); INSERT INTO u VALUES (7, 'x')")
        .await
        .unwrap();
    let es = env.es();
    let (index_t, index_u) = (format!("{prefix}-t"), format!("{prefix}-u"));
    assert!(
        wait_until(secs(30), async || {
            es.refresh(&index_t).await;
            es.refresh(&index_u).await;
            es.count(&index_t).await == 2 && es.count(&index_u).await == 1
        })
        .await,
        "not streamed"
    );
    let config = daemon.config_path().display().to_string();

    // probe: ready (exit 0, the /readyz text)
    let out = run_cli(&["probe", "--config", &config]).await;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.starts_with("ready"), "{out}");

    // metrics: every series from the start (rejected at 0 before any rejection), readiness,
    // build, the checkpoint timestamp within a minute of now, process RSS
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    assert_eq!(value("binlog2es_rejected_documents_total"), 0.0);
    assert_eq!(value("binlog2es_bulk_retries_total"), 0.0);
    assert_eq!(value("binlog2es_changes_total{op=\"delete\"}"), 0.0);
    assert!(
        value("binlog2es_changes_total{op=\"insert\"}") >= 3.0,
        "{metrics}"
    );
    assert_eq!(value("binlog2es_ready"), 1.0);
    assert_eq!(value("binlog2es_build_info{"), 1.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let ts = value("binlog2es_checkpoint_timestamp_seconds");
    assert!(
        (now - ts).abs() < 60.0,
        "checkpoint timestamp {ts}, now {now}"
    );
    assert!(value("process_resident_memory_bytes") > 1e6, "{metrics}");

    // resync of a table a rule's pattern matches but the server lacks: refused, exit 1
    let missing = format!("{db}.nothere");
    let out = run_cli(&["resync", "--config", &config, "--table", &missing]).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("not a table on the server"), "{out}");

    // verify --table: only that table, with progress on stderr
    let out = run_cli(&["verify", "--config", &config, "--table", &format!("{db}.u")]).await;
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains(&format!("{db}.u -> {index_u}: 1 rows checked")),
        "{out}"
    );
    assert!(!out.stdout.contains(&format!("{db}.t ")), "{out}");
    assert!(
        out.stderr
            .contains(&format!("verify: [1/1] {db}.u: 1 rows")),
        "{out}"
    );
    // ... and a difference in that table is found
    es.request(reqwest::Method::DELETE, &format!("/{index_u}/_doc/7"), None)
        .await;
    es.refresh(&index_u).await;
    let out = run_cli(&["verify", "--config", &config, "--table", &format!("{db}.u")]).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("1 missing"), "{out}");
    // ... and a table that is not there is an error, not "all equal"
    let out = run_cli(&["verify", "--config", &config, "--table", &missing]).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains(&missing), "{out}");

    // status --json after a clean stop: the checkpoint the daemon wrote, as JSON
    let mut daemon = daemon;
    assert_eq!(daemon.terminate().await, 0);
    let out = run_cli(&["status", "--config", &config, "--json"]).await;
    assert_eq!(out.code, 0, "{out}");
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let (file, pos) = daemon.checkpoint_position();
    assert_eq!(
        status["checkpoint"]["position"].as_str().unwrap(),
        format!("{file}:{pos}"),
        "{out}"
    );
    // (other tests write to the same server meanwhile: some distance, but a known one)
    assert!(status["source"]["behind_bytes"].is_u64(), "{out}");
    assert_eq!(
        status["checkpoint_path"].as_str().unwrap(),
        daemon.checkpoint_path().display().to_string()
    );
    // probe against a stopped daemon: exit 1
    let out = run_cli(&["probe", "--config", &config]).await;
    assert_eq!(out.code, 1, "{out}");
}

/// Each mistake an operator makes in the file or the environment: exit 2, one line naming the
/// key, where it came from (file:line or the variable) and the fix.
#[tokio::test]
async fn configuration_mistakes_name_the_key_the_source_and_the_fix() {
    let env = TestEnv::get();
    type Configure = fn(DaemonBuilder) -> DaemonBuilder;
    let cases: [(Configure, &str, &[&str]); 6] = [
        (
            |b| b.snapshot_mode("Initial"),
            "",
            &[
                "`snapshot.mode`",
                "binlog2es.toml:",
                "`never`",
                "write \"initial\"",
            ],
        ),
        (
            |b| b.extra_toml("[writer]\ngzip = \"yes\"\n"),
            "",
            &["`writer.gzip`", "binlog2es.toml:", "true or false"],
        ),
        (
            |b| b.extra_toml("[writer]\nlanse = 2\n"),
            "",
            &["`writer.lanse`", "binlog2es.toml:", "did you mean `lanes`?"],
        ),
        (
            |b| b,
            "BINLOG2ES__WRITER__LANSE=2",
            &[
                "`writer.lanse`",
                "environment variable BINLOG2ES__WRITER__LANSE",
                "`lanes`",
            ],
        ),
        (
            |b| b.table_toml("match = \"db.t\"\nindex = \"{database}_{table}\""),
            "",
            &["tables[0].index", "`{database}`", "{db}"],
        ),
        (
            |b| b,
            "BINLOG2ES__ELASTICSEARCH__URL=127.0.0.1:9200",
            &["elasticsearch.url", "http://127.0.0.1:9200"],
        ),
    ];
    for (i, (configure, var, expected)) in cases.into_iter().enumerate() {
        let daemon = configure(Daemon::builder(env)).build();
        let config = daemon.config_path().display().to_string();
        let vars: Vec<(&str, &str)> = var.split_once('=').into_iter().collect();
        let out = run_cli_with_env(&["check", "--config", &config], &vars).await;
        assert_eq!(out.code, 2, "case {i}: {out}");
        assert_eq!(out.stderr.lines().count(), 1, "case {i}: one line: {out}");
        for e in expected {
            assert!(out.stderr.contains(e), "case {i}: expected {e}: {out}");
        }
    }
}

/// `check` says what it chose for the operator: a derived server id, port 80 for a URL
/// without a port.
#[tokio::test]
async fn check_reports_a_derived_server_id_and_a_url_without_a_port() {
    let env = TestEnv::get();
    let (db, _conn) = env.create_database_with(TABLE).await;
    let daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &env.unique_index("firsthour-check"))
        .build();
    // The harness writes server_id; take it out, and the ES URL's port too.
    let path = daemon.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("server_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, &text).unwrap();
    let out = daemon.cli("check").await;
    assert!(
        out.stdout.contains("mysql.server_id:") && out.stdout.contains("derived from this host"),
        "{out}"
    );
    let id: u32 = out
        .stdout
        .lines()
        .find_map(|l| l.split("mysql.server_id: ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(id >= 1_000_000, "{out}");

    let es_line = text
        .lines()
        .skip_while(|l| *l != "[elasticsearch]")
        .nth(1)
        .unwrap()
        .to_owned();
    std::fs::write(
        &path,
        text.replace(
            &es_line,
            "url = \"http://127.0.0.1\"\nconnect_timeout = \"1s\"",
        ),
    )
    .unwrap();
    let out = daemon.cli("check").await;
    assert!(out.stdout.contains("no port, so port 80 is used"), "{out}");
}
