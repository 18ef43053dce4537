//! Secure connections: MySQL over TLS (modes, CA and host name checks, client
//! certificates, the `preferred` fallback, authentication plugins), Elasticsearch over
//! https behind basic auth, API key, bearer token or client certificate, with a path prefix,
//! and the operations endpoint with basic auth over https.
//!
//! A MariaDB of this binary's own runs with the test PKI's certificate (which names
//! `localhost` only, so `127.0.0.1` is the wrong host name); one without TLS shows the
//! `preferred` fallback.
//! Elasticsearch is reached through [`TlsEsProxy`], a TLS-terminating front of the shared
//! osmem-server.

mod common;

use std::sync::OnceLock;

use common::certs::TestPki;
use common::tls_proxy::{TlsEsProxy, TlsFront};
use common::{Daemon, DaemonBuilder, Fixture, TestEnv, free_port, run_cli, secs, wait_until};
use mysql_async::prelude::Queryable;

const TABLE: &str = "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(40))";

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(TestPki::generate)
}

/// The MariaDB with TLS.
fn tls_env() -> &'static TestEnv {
    static ENV: OnceLock<&'static TestEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let pki = pki();
        TestEnv::dedicated_static(&[
            &format!("--ssl-ca={}", pki.ca.display()),
            &format!("--ssl-cert={}", pki.server_cert.display()),
            &format!("--ssl-key={}", pki.server_key.display()),
        ])
    })
}

fn localhost(url: &str) -> String {
    url.replace("@127.0.0.1:", "@localhost:")
}

fn path(p: &std::path::Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// `[mysql]` lines for `mode` with the test CA (and the client certificate when `client`).
fn mysql_tls(mode: &str, ca: &std::path::Path, client: bool) -> String {
    let mut lines = format!("tls_mode = \"{mode}\"\ntls_ca_file = {}", path(ca));
    if client {
        let pki = pki();
        lines += &format!(
            "\ntls_cert_file = {}\ntls_key_file = {}",
            path(&pki.client_cert),
            path(&pki.client_key)
        );
    }
    lines
}

/// A config for `env` syncing nothing in particular (for `check` and failing `run`s).
fn config(env: &TestEnv, configure: impl FnOnce(DaemonBuilder) -> DaemonBuilder) -> Daemon {
    configure(
        Daemon::builder(env)
            .table("nothing.here", "nothing")
            .connect_timeout("3s"),
    )
    .build()
}

async fn check(daemon: &Daemon) -> common::CliOutput {
    daemon.cli("check").await
}

async fn run_once(daemon: &Daemon) -> common::CliOutput {
    run_cli(&[
        "run",
        "--config",
        &daemon.config_path().display().to_string(),
    ])
    .await
}

/// The one `error:` line of a failed command; no panic, nothing else on stderr but logs.
fn error_line(out: &common::CliOutput) -> String {
    assert!(!out.all().contains("panicked"), "{out}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one error line\n{out}");
    lines[0].to_string()
}

#[tokio::test]
async fn verified_mysql_tls_with_a_client_certificate_and_https_elasticsearch_stream() {
    // GIVEN an account that needs a client certificate, and Elasticsearch behind https,
    // basic auth and a path prefix
    let env = tls_env();
    let pki = pki();
    let url = env
        .create_account("x509s", "x509-pw", "IDENTIFIED BY 'x509-pw' REQUIRE X509")
        .await;
    let es = TlsEsProxy::start(
        &env.es_url,
        pki,
        TlsFront {
            prefix: Some("/cloud/es".into()),
            ..TlsFront::basic("writer", "es-secret")
        },
    );
    let es_password = pki.write("es-password", "es-secret\n");

    // WHEN the daemon verifies the server's certificate and host name and shows its own
    let mut f = Fixture::start_on(env, "tls", TABLE, None, |b| {
        b.mysql_url(&localhost(&url))
            .mysql_toml(&mysql_tls("verify_identity", &pki.ca, true))
            .es_url(&es.url())
            .es_toml(&format!(
                "tls_ca_file = {}\nusername = \"writer\"\npassword_file = {}",
                path(&pki.ca),
                path(&es_password)
            ))
    })
    .await;
    f.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b'); UPDATE t SET name = 'c' WHERE id = 1")
        .await;

    // THEN rows stream, nothing was refused, and `check` reports the connection encrypted
    let diff = f.converge().await;
    assert!(diff.is_empty(), "{diff}");
    assert_eq!(es.refused(), 0);
    let out = check(&f.daemon).await;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("mysql tls: TLSv1."), "{out}");
    assert!(out.stdout.contains("host name verified"), "{out}");
}

#[tokio::test]
async fn mysql_certificate_checks_refuse_a_wrong_ca_or_host_name_with_a_clear_message() {
    let env = tls_env();
    let pki = pki();
    let host_port = env.daemon_url.rsplit('@').next().unwrap().to_string();

    // GIVEN a CA that did not sign the server's certificate
    let wrong_ca = config(env, |b| {
        b.mysql_url(&localhost(&env.daemon_url))
            .mysql_toml(&mysql_tls("verify_ca", &pki.other_ca, false))
    });
    // THEN run exits 1 with one line: what, which host, how to fix
    let out = run_once(&wrong_ca).await;
    assert_eq!(out.code, 1, "{out}");
    let line = error_line(&out);
    let host = host_port.replace("127.0.0.1", "localhost");
    assert!(
        line.contains(&format!("TLS with MySQL at {host} failed")),
        "{line}"
    );
    assert!(line.contains("not signed by a CA we trust"), "{line}");
    assert!(line.contains(&pki.other_ca.display().to_string()), "{line}");
    assert!(line.contains("point mysql.tls_ca_file at the CA"), "{line}");

    // GIVEN the right CA but an address the certificate does not name
    let wrong_host = config(env, |b| {
        b.mysql_url(&env.daemon_url)
            .mysql_toml(&mysql_tls("verify_identity", &pki.ca, false))
    });
    let out = run_once(&wrong_host).await;
    assert_eq!(out.code, 1, "{out}");
    let line = error_line(&out);
    assert!(
        line.contains(&format!("TLS with MySQL at {host_port} failed")),
        "{line}"
    );
    assert!(line.contains("is for localhost, not `127.0.0.1`"), "{line}");
    assert!(line.contains("verify_ca"), "{line}");

    // AND verify_ca accepts the same address (CA checked, name not)
    let ca_only = config(env, |b| {
        b.mysql_url(&env.daemon_url)
            .mysql_toml(&mysql_tls("verify_ca", &pki.ca, false))
    });
    let out = check(&ca_only).await;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("host name not checked"), "{out}");
}

#[tokio::test]
async fn client_certificate_accounts_and_tls_only_accounts_are_enforced() {
    let env = tls_env();
    let x509 = env
        .create_account("x509c", "x509-pw", "IDENTIFIED BY 'x509-pw' REQUIRE X509")
        .await;
    let ssl = env
        .create_account("ssl", "ssl-pw", "IDENTIFIED BY 'ssl-pw' REQUIRE SSL")
        .await;

    // GIVEN an account created REQUIRE X509, and no client certificate configured
    let no_cert = config(env, |b| {
        b.mysql_url(&x509).mysql_toml("tls_mode = \"required\"")
    });
    // THEN the login is refused, and the message says what to set
    let out = check(&no_cert).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("refused the login"), "{out}");
    assert!(out.stdout.contains("tls_cert_file"), "{out}");

    // GIVEN an account created REQUIRE SSL: plain TCP is refused, preferred uses TLS
    let plain = config(env, |b| {
        b.mysql_url(&ssl).mysql_toml("tls_mode = \"disabled\"")
    });
    let out = check(&plain).await;
    assert_eq!(out.code, 1, "{out}");
    let preferred = config(env, |b| {
        b.mysql_url(&ssl).mysql_toml("tls_mode = \"preferred\"")
    });
    let out = check(&preferred).await;
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("certificate not verified"), "{out}");
}

#[tokio::test]
async fn preferred_falls_back_to_plain_tcp_with_a_warning_and_required_refuses() {
    // GIVEN a MariaDB without TLS (a local one even when the shared server is an external
    // MySQL, which offers TLS)
    let env = TestEnv::dedicated_static(&[]);

    // WHEN the daemon runs with the default tls_mode (preferred)
    let mut f = Fixture::start_on(env, "pref", TABLE, None, |b| b).await;
    f.sql("INSERT INTO t VALUES (1, 'a')").await;
    let diff = f.converge().await;

    // THEN it streams without TLS and says so once
    assert!(diff.is_empty(), "{diff}");
    let log = f.daemon.log();
    assert_eq!(log.matches("does not offer TLS").count(), 1, "{log}");

    // AND with tls_mode = "required" it stops at once, naming the host and the fix
    let required = config(env, |b| b.mysql_toml("tls_mode = \"required\""));
    let out = run_once(&required).await;
    assert_eq!(out.code, 1, "{out}");
    let line = error_line(&out);
    assert!(line.contains("does not offer TLS"), "{line}");
    assert!(line.contains("tls_mode = \"preferred\""), "{line}");
}

#[tokio::test]
async fn elasticsearch_certificate_checks_refuse_a_wrong_ca_host_or_fingerprint() {
    let env = TestEnv::get();
    let pki = pki();
    let es = TlsEsProxy::start(&env.es_url, pki, TlsFront::basic("u", "p"));
    let auth = "username = \"u\"\npassword = \"p\"";
    let with = |url: String, lines: String| {
        config(env, move |b| {
            b.es_url(&url).es_toml(&format!("{auth}\n{lines}"))
        })
    };
    let es_line = |out: &common::CliOutput| -> String {
        out.stdout
            .lines()
            .find(|l| l.contains(" elasticsearch: "))
            .unwrap_or_else(|| panic!("no elasticsearch finding\n{out}"))
            .to_string()
    };

    // A wrong CA: run exits 1 at once with one line naming host, CA file and fix
    let out = run_once(&with(
        es.url(),
        format!("tls_ca_file = {}", path(&pki.other_ca)),
    ))
    .await;
    assert_eq!(out.code, 1, "{out}");
    let line = error_line(&out);
    let host = es.url().trim_start_matches("https://").to_string();
    assert!(
        line.contains(&format!("TLS with Elasticsearch at {host} failed")),
        "{line}"
    );
    assert!(line.contains("not signed by a CA we trust"), "{line}");
    assert!(line.contains("set elasticsearch.tls_ca_file"), "{line}");

    // A wrong host name
    let out = check(&with(
        es.ip_url(),
        format!("tls_ca_file = {}", path(&pki.ca)),
    ))
    .await;
    assert_eq!(out.code, 1, "{out}");
    let line = es_line(&out);
    assert!(line.starts_with("error"), "{line}");
    assert!(line.contains("is for localhost, not `127.0.0.1`"), "{line}");

    // No CA configured: the public roots do not know the test CA
    let out = check(&with(es.url(), String::new())).await;
    assert!(es_line(&out).contains("public web roots"), "{out}");

    // A wrong fingerprint names what the server presented
    let wrong = format!("ca_fingerprint = \"{}\"", "00".repeat(32));
    let out = check(&with(es.url(), wrong)).await;
    let line = es_line(&out);
    assert!(line.contains("SHA-256 fingerprint"), "{line}");
    assert!(line.contains(&pki.ca_fingerprint), "{line}");

    // The CA's fingerprint works by name; the leaf's pins the certificate whatever the name
    let by_ca = format!("ca_fingerprint = \"{}\"", pki.ca_fingerprint);
    let out = check(&with(es.url(), by_ca)).await;
    assert!(es_line(&out).starts_with("ok"), "{out}");
    let by_leaf = format!(
        "ca_fingerprint = \"{}\"",
        pki.leaf_fingerprint.replace(':', "")
    );
    let out = check(&with(es.ip_url(), by_leaf)).await;
    assert!(es_line(&out).starts_with("ok"), "{out}");
    assert_eq!(es.refused(), 0);
}

#[tokio::test]
async fn elasticsearch_api_key_bearer_token_and_client_certificate_authenticate() {
    let env = TestEnv::get();
    let pki = pki();
    let ca = format!("tls_ca_file = {}", path(&pki.ca));
    let es_check = async |es: &TlsEsProxy, lines: &str| -> common::CliOutput {
        let url = es.url();
        let lines = format!("{ca}\n{lines}");
        check(&config(env, |b| b.es_url(&url).es_toml(&lines))).await
    };
    let ok = |out: &common::CliOutput| {
        out.stdout
            .lines()
            .any(|l| l.starts_with("ok") && l.contains(" elasticsearch: "))
    };

    // API key from a file
    let es = TlsEsProxy::start(&env.es_url, pki, TlsFront::token("ApiKey", "aWQ6a2V5"));
    let key_file = pki.write("api-key", "aWQ6a2V5\n");
    let out = es_check(&es, &format!("api_key_file = {}", path(&key_file))).await;
    assert!(ok(&out), "{out}");
    let out = es_check(&es, "api_key = \"d3Jvbmc6a2V5\"").await;
    assert!(
        out.stdout.contains("refused our credentials (HTTP 401)"),
        "{out}"
    );

    // Bearer token
    let es = TlsEsProxy::start(&env.es_url, pki, TlsFront::token("Bearer", "tok-123"));
    let out = es_check(&es, "bearer_token = \"tok-123\"").await;
    assert!(ok(&out), "{out}");

    // Client certificate (with basic auth on top): refused without it, accepted with it
    let es = TlsEsProxy::start(
        &env.es_url,
        pki,
        TlsFront {
            client_cert: true,
            ..TlsFront::basic("u", "p")
        },
    );
    let basic = "username = \"u\"\npassword = \"p\"";
    let out = es_check(&es, basic).await;
    assert!(!ok(&out), "{out}");
    assert!(out.stdout.contains("tls_cert_file"), "{out}");
    let cert = format!(
        "{basic}\ntls_cert_file = {}\ntls_key_file = {}",
        path(&pki.client_cert),
        path(&pki.client_key)
    );
    let out = es_check(&es, &cert).await;
    assert!(ok(&out), "{out}");
}

#[tokio::test]
async fn the_operations_endpoint_serves_https_with_basic_auth_and_warns_when_exposed() {
    // GIVEN a daemon whose endpoint has a certificate and a password
    let pki = pki();
    let port = free_port();
    let password = pki.write("http-password", "metrics-pw\n");
    let f = Fixture::start_with("ops-tls", TABLE, None, |b| {
        b.http_listen(&format!("127.0.0.1:{port}"))
            .http_toml(&format!(
                "username = \"prom\"\npassword_file = {}\ntls_cert_file = {}\ntls_key_file = {}",
                path(&password),
                path(&pki.server_cert),
                path(&pki.server_key)
            ))
    })
    .await;
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/metrics");

    // THEN without credentials it answers 401, with them 200, and plain http gets nothing
    let ready = wait_until(secs(30), async || client.get(&url).send().await.is_ok()).await;
    assert!(ready, "endpoint not up");
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = client
        .get(&url)
        .basic_auth("prom", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let authorised = client
        .get(&url)
        .basic_auth("prom", Some("metrics-pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(authorised.status(), 200);
    assert!(authorised.text().await.unwrap().contains("binlog2es_"));
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    drop(f);

    // AND check warns about an endpoint open to other hosts without a password
    let exposed = config(TestEnv::get(), |b| b.http_listen("0.0.0.0:9187"));
    let out = check(&exposed).await;
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("warning") && l.contains("reachable from other hosts")),
        "{out}"
    );
}

#[tokio::test]
async fn unusable_certificate_files_exit_2_naming_the_key_and_path() {
    let env = TestEnv::get();
    let pki = pki();
    let junk = pki.write("junk.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
    let missing = pki.dir().join("missing.pem");
    let cases = [
        (
            "mysql.tls_cert_file",
            missing.clone(),
            config(env, |b| {
                b.mysql_toml(&format!(
                    "tls_mode = \"required\"\ntls_cert_file = {}\ntls_key_file = {}",
                    path(&missing),
                    path(&pki.client_key)
                ))
            }),
        ),
        (
            "elasticsearch.tls_ca_file",
            junk.clone(),
            config(env, |b| {
                b.es_url("https://localhost:1")
                    .es_toml(&format!("tls_ca_file = {}", path(&junk)))
            }),
        ),
        (
            "http.tls_key_file",
            pki.client_key.clone(),
            config(env, |b| {
                b.http_toml(&format!(
                    "tls_cert_file = {}\ntls_key_file = {}",
                    path(&pki.server_cert),
                    path(&pki.client_key)
                ))
            }),
        ),
    ];
    for (key, file, daemon) in cases {
        let out = run_once(&daemon).await;
        assert_eq!(out.code, 2, "{key}: {out}");
        let line = error_line(&out);
        assert!(line.contains(key), "{key}: {line}");
        assert!(line.contains(&file.display().to_string()), "{key}: {line}");
    }
}

/// mysql_native_password and MariaDB's ed25519 over TLS and without it; caching_sha2_password
/// over TLS and without it (RSA key exchange) where the server is MySQL 8, i.e. when
/// `BINLOG2ES_TEST_MYSQL_URL` points at one; MariaDB does not implement it.
#[tokio::test]
async fn authentication_plugins_log_in_over_tls_and_without() {
    let tls = tls_env();
    let native = "IDENTIFIED VIA mysql_native_password USING PASSWORD('native-pw')";
    for (env, mode) in [(tls, "required"), (tls, "disabled")] {
        let url = env.create_account("native", "native-pw", native).await;
        let out = check(&config(env, |b| {
            b.mysql_url(&url)
                .mysql_toml(&format!("tls_mode = \"{mode}\""))
        }))
        .await;
        assert_eq!(out.code, 0, "mysql_native_password, tls_mode {mode}: {out}");
    }
    // MariaDB's ed25519 plugin, over TLS and without it.
    let mut admin = tls.mysql().await;
    admin
        .query_drop("INSTALL SONAME 'auth_ed25519'")
        .await
        .or_else(|e| match e.to_string().contains("already") {
            true => Ok(()),
            false => Err(e),
        })
        .unwrap_or_else(|e| panic!("installing auth_ed25519: {e}"));
    admin.disconnect().await.ok();
    let ed25519 = "IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw')";
    for mode in ["required", "disabled"] {
        let url = tls.create_account("ed25519", "ed-pw", ed25519).await;
        let out = check(&config(tls, |b| {
            b.mysql_url(&url)
                .mysql_toml(&format!("tls_mode = \"{mode}\""))
        }))
        .await;
        assert_eq!(out.code, 0, "ed25519, tls_mode {mode}: {out}");
    }
    let shared = TestEnv::get();
    if shared.is_mariadb {
        println!(
            "skipped: caching_sha2_password needs MySQL 8 (set BINLOG2ES_TEST_MYSQL_URL to one)"
        );
        return;
    }
    let sha2 = "IDENTIFIED WITH caching_sha2_password BY 'sha2-pw'";
    for mode in ["required", "disabled"] {
        // A fresh account each time: its first login is the full exchange (RSA without
        // TLS), not the server's cached fast path.
        let url = shared.create_account("sha2", "sha2-pw", sha2).await;
        let out = check(&config(shared, |b| {
            b.mysql_url(&url)
                .mysql_toml(&format!("tls_mode = \"{mode}\""))
        }))
        .await;
        assert_eq!(out.code, 0, "caching_sha2_password, tls_mode {mode}: {out}");
    }
}
