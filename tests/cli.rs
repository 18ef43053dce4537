//! The command line: `check`, `status`, exit codes and plain error messages (SPEC §2.5, §2.6,
//! §3).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))";

#[tokio::test]
async fn check_passes_on_a_good_setup() {
    let env = TestEnv::get();
    let (db, _conn) = env.create_database_with(TABLE).await;
    let daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &env.unique_index("check"))
        .build();

    let out = daemon.cli("check").await;

    assert_eq!(out.code, 0, "{out}");
}

#[tokio::test]
async fn unknown_config_key_exits_2_and_names_it() {
    let env = TestEnv::get();
    let daemon = Daemon::builder(env)
        .mysql_toml(r#"urll = "mysql://oops@127.0.0.1:1""#)
        .table("db.t", "idx")
        .build();

    for command in ["check", "run"] {
        let out = daemon.cli(command).await;
        assert_eq!(out.code, 2, "{command}: {out}");
        assert!(out.stderr.contains("urll"), "{command}: {out}");
        assert!(!out.stderr.contains("panicked"), "{command}: {out}");
    }
}

#[tokio::test]
async fn missing_config_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml").display().to_string();

    for command in ["check", "run", "status"] {
        let out = run_cli(&[command, "--config", &missing]).await;
        assert_eq!(out.code, 2, "{command}: {out}");
        assert!(out.stderr.contains("nope.toml"), "{command}: {out}");
    }
}

#[tokio::test]
async fn status_prints_the_checkpoint_after_a_run() {
    // GIVEN a daemon that streamed some rows and stopped cleanly
    let mut f = Fixture::start("status", TABLE).await;
    f.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b')").await;
    f.converge().await;
    assert_eq!(f.daemon.terminate().await, 0);

    // WHEN status is asked
    let out = f.daemon.cli("status").await;

    // THEN it prints the checkpoint's binlog file (and a position)
    assert_eq!(out.code, 0, "{out}");
    let file = f.env.binlog_file().await;
    assert!(out.stdout.contains(&file), "expected {file}: {out}");
    assert!(
        out.stdout.chars().any(|c| c.is_ascii_digit()),
        "no position: {out}"
    );
    // AND the source server's position and the binlog distance to it
    assert!(out.stdout.contains("source:"), "{out}");
    let behind = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("behind:"))
        .unwrap_or_else(|| panic!("no behind line: {out}"));
    assert!(behind.trim().ends_with("bytes"), "{out}");
}

#[tokio::test]
async fn check_fails_for_a_table_without_primary_key() {
    let env = TestEnv::get();
    let (db, _conn) = env
        .create_database_with("CREATE TABLE nokey (a INT, b VARCHAR(20))")
        .await;
    let daemon = Daemon::builder(env)
        .table(&format!("{db}.nokey"), &env.unique_index("nokey"))
        .build();

    let out = daemon.cli("check").await;

    assert_eq!(out.code, 1, "{out}");
    assert!(out.all().contains("nokey"), "{out}");
    assert!(out.all().contains("id_columns"), "{out}");
}

#[tokio::test]
async fn run_refuses_a_table_without_primary_key_and_accepts_id_columns() {
    let env = TestEnv::get();
    let (db, _conn) = env
        .create_database_with("CREATE TABLE nokey (a INT NOT NULL, b VARCHAR(20))")
        .await;
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.nokey"), &env.unique_index("nokey"))
        .build();
    daemon.spawn();
    let code = daemon.wait_exit(secs(60)).await;
    let log = daemon.stderr_tail(20);
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("nokey") && log.contains("id_columns"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // With id_columns the same table streams.
    let index = env.unique_index("idcols");
    let mut daemon = Daemon::builder(env)
        .table_toml(&format!(
            "match = \"{db}.nokey\"\nindex = \"{index}\"\nid_columns = [\"a\"]"
        ))
        .start()
        .await;
    let mut conn = env.mysql_db(&db).await;
    use mysql_async::prelude::Queryable;
    conn.query_drop("INSERT INTO nokey VALUES (7, 'x')")
        .await
        .unwrap();
    let es = env.es();
    let ok = wait_until(secs(60), async || es.get(&index, "7").await.is_some()).await;
    assert!(ok, "{}", daemon.stderr_tail(20));
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn run_exits_1_naming_an_unreachable_mysql() {
    let env = TestEnv::get();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut daemon = Daemon::builder(env)
        .mysql_url(&format!("mysql://binlog2es:pw@{addr}"))
        .connect_timeout("1s")
        .table("db.t", "idx")
        .build();

    let started = Instant::now();
    daemon.spawn();
    let code = daemon.wait_exit(secs(30)).await;

    // (On failure the daemon's Drop prints its log.)
    let log = std::fs::read_to_string(daemon.log_path()).unwrap();
    assert_eq!(code, 1);
    assert!(started.elapsed() < secs(20), "took {:?}", started.elapsed());
    assert!(log.contains(&addr), "the log does not name {addr}");
    assert!(!log.contains("panicked"), "the daemon panicked");
}

#[tokio::test]
async fn check_names_a_keyless_table_under_a_wildcard_and_run_skips_it() {
    // GIVEN a wildcard rule over a keyed table and a table without a primary key
    let env = TestEnv::get();
    let (db, mut conn) = env
        .create_database_with(&format!(
            "{TABLE}; CREATE TABLE nokey (a INT, b VARCHAR(20)); \
             INSERT INTO t VALUES (1, 'a'), (2, 'b'); INSERT INTO nokey VALUES (1, 'x')"
        ))
        .await;
    let prefix = env.unique_index("wildkey");
    let builder = || {
        Daemon::builder(env)
            .table(&format!("{db}.*"), &format!("{prefix}-{{table}}"))
            .snapshot_mode("initial")
    };
    let mut daemon = builder().build();

    // WHEN check runs
    let out = daemon.cli("check").await;

    // THEN it passes, with one warning naming the keyless table and the fix, and the keyed
    // table is reported as synced
    assert_eq!(out.code, 0, "{out}");
    let keyless: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains(&format!("{db}.nokey")))
        .collect();
    assert_eq!(keyless.len(), 1, "{out}");
    assert!(
        keyless[0].contains("no primary key") && keyless[0].contains("skip_tables"),
        "{out}"
    );
    assert!(out.stdout.contains(&format!("{db}.t")), "{out}");

    // AND run copies and streams the keyed table, leaves the keyless one out, and says so
    daemon.restart().await;
    use mysql_async::prelude::Queryable;
    conn.query_drop("INSERT INTO t VALUES (3, 'c'); INSERT INTO nokey VALUES (2, 'y')")
        .await
        .unwrap();
    wait_until_index_equals_table(env, &mut daemon, &db, "t", &format!("{prefix}-t"), secs(60))
        .await;
    assert_eq!(env.es().count(&format!("{prefix}-nokey")).await, 0);
    let log = daemon.last_run_log();
    let warns = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(&format!("{db}.nokey")))
        .count();
    assert_eq!(warns, 1, "{log}");
    // AND verify compares the synced table and reports the keyless one as skipped, not as a
    // difference
    let out = daemon.cli("verify").await;
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(&format!("{db}.nokey")) && l.contains("skipped")),
        "{out}"
    );
    assert_eq!(daemon.terminate().await, 0);

    // AND with on_keyless = "fail" the same table fails check, naming it
    let strict = builder().table_lines("on_keyless = \"fail\"").build();
    let out = strict.cli("check").await;
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.all().contains(&format!("{db}.nokey")) && out.all().contains("id_columns"),
        "{out}"
    );
}
