//! Secrets are never printed: distinctive passwords are planted in the MySQL URL, the
//! Elasticsearch password, the endpoint's password file and the environment, then the
//! daemon streams at debug level, `check`, `status`, `verify` and failing `run`s (wrong
//! passwords, an unreachable server, a bad URL parameter) print their messages, and none
//! of it contains a planted value, nor the basic-auth header built from one.

mod common;

use base64::Engine;
use common::certs::TestPki;
use common::tls_proxy::{TlsEsProxy, TlsFront};
use common::{CliOutput, Daemon, DaemonBuilder, Fixture, TestEnv, run_cli, run_cli_with_env};

const MYSQL_PASSWORD: &str = "Pl4nted-MySQL-k9f3";
const ES_PASSWORD: &str = "Pl4nted-ES-q7z1";
const WRONG_MYSQL_PASSWORD: &str = "Pl4nted-WrongMySQL-x2v8";
const WRONG_ES_PASSWORD: &str = "Pl4nted-WrongES-m5n4";
const HTTP_PASSWORD: &str = "Pl4nted-HTTP-r3t6";

/// Everything that must never be printed.
fn planted() -> Vec<String> {
    let mut all: Vec<String> = [
        MYSQL_PASSWORD,
        ES_PASSWORD,
        WRONG_MYSQL_PASSWORD,
        WRONG_ES_PASSWORD,
        HTTP_PASSWORD,
    ]
    .map(String::from)
    .to_vec();
    for (user, password) in [("writer", ES_PASSWORD), ("writer", WRONG_ES_PASSWORD)] {
        all.push(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
    }
    all
}

fn assert_clean(what: &str, text: &str) {
    for secret in planted() {
        assert!(
            !text.contains(&secret),
            "{what} contains the planted secret {secret}:\n{text}"
        );
    }
    assert!(
        !text.contains("Pl4nted"),
        "{what} contains a planted secret:\n{text}"
    );
}

fn quoted(p: &std::path::Path) -> String {
    format!("{:?}", p.display().to_string())
}

#[tokio::test]
async fn planted_passwords_appear_in_no_log_and_no_command_output() {
    // GIVEN passwords planted in the MySQL URL, the Elasticsearch password (behind an https
    // front that checks it) and the endpoint's password file, and debug logging
    let env = TestEnv::get();
    let pki = TestPki::generate();
    let es = TlsEsProxy::start(&env.es_url, &pki, TlsFront::basic("writer", ES_PASSWORD));
    let mysql_url = env
        .create_account(
            "planted",
            MYSQL_PASSWORD,
            &format!("IDENTIFIED BY '{MYSQL_PASSWORD}'"),
        )
        .await;
    let http_password = pki.write("http-password", HTTP_PASSWORD);
    let secured = |b: DaemonBuilder, mysql_url: &str, es_password: &str| {
        b.mysql_url(mysql_url)
            .es_url(&es.url())
            .es_toml(&format!(
                "tls_ca_file = {}\nusername = \"writer\"\npassword = \"{es_password}\"",
                quoted(&pki.ca)
            ))
            .http_toml(&format!(
                "username = \"prom\"\npassword_file = {}",
                quoted(&http_password)
            ))
            .extra_toml("[logging]\nlevel = \"debug\"")
    };

    // WHEN the daemon streams, and stops
    let mut f = Fixture::start_with(
        "secrets",
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",
        None,
        |b| secured(b, &mysql_url, ES_PASSWORD),
    )
    .await;
    f.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b'); DELETE FROM t WHERE id = 2")
        .await;
    let diff = f.converge().await;
    assert!(diff.is_empty(), "{diff}");
    assert_eq!(f.daemon.terminate().await, 0);

    // AND check, status and verify run with the right passwords
    let mut outputs: Vec<(String, CliOutput)> = Vec::new();
    for command in ["check", "status", "verify"] {
        outputs.push((command.into(), f.daemon.cli(command).await));
    }
    assert_eq!(outputs[0].1.code, 0, "{}", outputs[0].1);

    // AND check and run with a wrong MySQL password, then a wrong Elasticsearch password
    let wrong_mysql = mysql_url.replace(MYSQL_PASSWORD, WRONG_MYSQL_PASSWORD);
    let bad = |mysql: &str, es_password: &str| {
        secured(Daemon::builder(env), mysql, es_password)
            .table("nothing.here", "nothing")
            .connect_timeout("2s")
            .build()
    };
    for (name, daemon) in [
        ("wrong MySQL password", bad(&wrong_mysql, ES_PASSWORD)),
        (
            "wrong Elasticsearch password",
            bad(&mysql_url, WRONG_ES_PASSWORD),
        ),
        (
            "unreachable MySQL",
            bad(
                &format!("mysql://planted:{MYSQL_PASSWORD}@127.0.0.1:1"),
                ES_PASSWORD,
            ),
        ),
        (
            "bad URL parameter",
            bad(
                &format!("{mysql_url}/?no_such_parameter={MYSQL_PASSWORD}"),
                ES_PASSWORD,
            ),
        ),
    ] {
        let check = daemon.cli("check").await;
        assert_ne!(check.code, 0, "{name}: {check}");
        outputs.push((format!("check, {name}"), check));
        let config = daemon.config_path().display().to_string();
        let run = run_cli(&["run", "--config", &config]).await;
        assert_ne!(run.code, 0, "{name}: {run}");
        outputs.push((format!("run, {name}"), run));
    }

    // AND check takes both passwords from the environment instead of the file
    let from_env = secured(
        Daemon::builder(env),
        &mysql_url.replace(&format!(":{MYSQL_PASSWORD}@"), "@"),
        "replaced-by-the-environment",
    )
    .table("nothing.here", "nothing")
    .build();
    let config = from_env.config_path().display().to_string();
    let check = run_cli_with_env(
        &["check", "--config", &config],
        &[
            ("BINLOG2ES__MYSQL__PASSWORD", MYSQL_PASSWORD),
            ("BINLOG2ES__ELASTICSEARCH__PASSWORD", ES_PASSWORD),
        ],
    )
    .await;
    assert_eq!(check.code, 0, "{check}");
    outputs.push(("check, passwords from the environment".into(), check));

    // THEN no log line and no output holds a planted secret
    let log = f.daemon.log();
    assert!(log.contains("DEBUG"), "debug logging was not on:\n{log}");
    assert_clean("the daemon's log", &log);
    for (what, out) in &outputs {
        assert_clean(what, &out.all());
    }
    // (and the failures were the ones planted, so their messages were printed)
    let all: String = outputs.iter().map(|(_, o)| o.all()).collect();
    assert!(all.contains("refused the login"), "{all}");
    assert!(all.contains("refused our credentials (HTTP 401)"), "{all}");
    assert!(all.contains("cannot reach MySQL at 127.0.0.1:1"), "{all}");
}
