//! Bad configurations and environments: each ends in one clear message and the
//! SPEC exit code, through the real binary (SPEC §2.5, §3).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql_async::prelude::Queryable;

/// A config file in a fresh temp dir; `checkpoint` is relative to that dir.
fn config(mysql_url: &str, es_url: &str, body_extra: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("binlog2es.toml");
    let text = format!(
        "[mysql]\nurl = \"{mysql_url}\"\nconnect_timeout = \"1s\"\n\n\
         [elasticsearch]\nurl = \"{es_url}\"\nconnect_timeout = \"1s\"\n\n\
         [checkpoint]\npath = \"{}\"\n\n\
         [snapshot]\nmode = \"never\"\n\n\
         [http]\nenabled = false\n\n\
         [[tables]]\nmatch = \"nodb_{}.t\"\n{body_extra}\n",
        dir.path().join("state/checkpoint.json").display(),
        std::process::id(),
    );
    std::fs::write(&path, text).unwrap();
    (dir, path.display().to_string())
}

/// Runs `binlog2es run` and checks the exit code, the needles and that the
/// failure is one `error:` line without a panic trace.
async fn expect_run(path: &str, code: i32, needles: &[&str]) {
    let out = run_cli(&["run", "--config", path]).await;
    let all = out.all();
    assert_eq!(out.code, code, "{all}");
    for n in needles {
        assert!(all.contains(n), "`{n}` not in:\n{all}");
    }
    assert!(!all.contains("panicked"), "{all}");
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "not exactly one error line:\n{all}"
    );
}

#[tokio::test]
async fn a_wrong_type_exits_2_naming_the_key() {
    let env = TestEnv::get();
    let (_d, path) = config(&env.daemon_url, &env.es_url, "");
    let text = std::fs::read_to_string(&path).unwrap() + "\n[writer]\nlanes = \"many\"\n";
    std::fs::write(&path, text).unwrap();
    expect_run(&path, 2, &["lanes"]).await;
}

#[tokio::test]
async fn a_missing_url_exits_2_naming_it() {
    let env = TestEnv::get();
    let (_d, path) = config(&env.daemon_url, &env.es_url, "");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("url = \"mysql"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, text).unwrap();
    expect_run(&path, 2, &["url"]).await;
}

#[tokio::test]
async fn an_unreachable_elasticsearch_exits_1_naming_it() {
    let env = TestEnv::get();
    let port = free_port();
    let (_d, path) = config(&env.daemon_url, &format!("http://127.0.0.1:{port}"), "");
    expect_run(&path, 1, &["Elasticsearch", &format!("127.0.0.1:{port}")]).await;
}

#[tokio::test]
async fn a_wrong_password_exits_1() {
    let env = TestEnv::get();
    let url = env
        .daemon_url
        .replacen(":binlog2es-test-pw@", ":not-the-password@", 1);
    assert_ne!(url, env.daemon_url, "the harness password changed");
    let (_d, path) = config(&url, &env.es_url, "");
    expect_run(&path, 1, &["refused the login"]).await;
}

#[tokio::test]
async fn missing_replication_privileges_exit_1_with_the_grant_to_add() {
    let env = TestEnv::get();
    let user = format!("noprivs{}", std::process::id());
    let mut admin = env.mysql().await;
    admin
        .query_drop(format!(
            "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO '{user}'@'%'"
        ))
        .await
        .unwrap();
    let host = env.daemon_url.rsplit_once('@').unwrap().1;
    let (_d, path) = config(&format!("mysql://{user}:pw@{host}"), &env.es_url, "");
    expect_run(&path, 1, &["REPLICATION"]).await;
}

#[tokio::test]
async fn statement_binlog_and_minimal_row_image_exit_1_naming_both() {
    if std::env::var("BINLOG2ES_TEST_MYSQL_URL").is_ok() {
        // An external server's settings are not ours to change.
        return;
    }
    let env = TestEnv::dedicated(&["--binlog-format=MIXED", "--binlog-row-image=MINIMAL"]);
    let (_d, path) = config(&env.daemon_url, &env.es_url, "");
    expect_run(
        &path,
        1,
        &["binlog_format", "ROW", "binlog_row_image", "FULL"],
    )
    .await;
    let out = run_cli(&["check", "--config", &path]).await;
    assert_eq!(out.code, 1, "{}", out.all());
}

#[tokio::test]
async fn an_unwritable_checkpoint_dir_exits_1() {
    let env = TestEnv::get();
    let (dir, path) = config(&env.daemon_url, &env.es_url, "");
    // A regular file where the checkpoint directory should be (root ignores modes).
    std::fs::write(dir.path().join("state"), "not a directory").unwrap();
    expect_run(&path, 1, &["checkpoint", "state"]).await;
}

#[tokio::test]
async fn a_corrupt_checkpoint_exits_1_and_says_how_to_recover() {
    let env = TestEnv::get();
    let (dir, path) = config(&env.daemon_url, &env.es_url, "");
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(
        dir.path().join("state/checkpoint.json"),
        "{\"format\": 1, \"posi",
    )
    .unwrap();
    expect_run(&path, 1, &["corrupt", "checkpoint.json"]).await;
    let out = run_cli(&["status", "--config", &path]).await;
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.all().contains("corrupt"), "{}", out.all());
}
