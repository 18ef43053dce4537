//! Starting (or finding) the MySQL and Elasticsearch servers the tests share.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use super::TestEnv;

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin";
const DAEMON_USER: &str = "binlog2es";
const DAEMON_PASSWORD: &str = "binlog2es-test-pw";

pub(super) fn start() -> TestEnv {
    let started = Instant::now();
    let rt = runtime();
    let admin_url = match std::env::var("BINLOG2ES_TEST_MYSQL_URL") {
        Ok(url) => url,
        Err(_) => {
            let server = start_mariadb(&rt, &[]);
            let url = server.admin_url.clone();
            // The shared server lives as long as the test process (the watchdog ends it).
            let mut child = server.into_child();
            std::thread::spawn(move || child.wait()); // reaps it once the watchdog kills it
            url
        }
    };
    let es_url = es_url();
    let (daemon_url, is_mariadb) = rt.block_on(prepare_mysql(&admin_url));
    eprintln!(
        "test servers ready in {:.1?}: mysql {admin_url}, es {es_url}",
        started.elapsed()
    );
    TestEnv {
        admin_url,
        daemon_url,
        es_url,
        is_mariadb,
        tag: tag(),
        server: None,
    }
}

/// A MariaDB of its own (started with the usual arguments followed by `extra_args`) sharing
/// the test process's Elasticsearch; the server is killed when the returned env is dropped.
pub(super) fn start_dedicated(extra_args: &[String]) -> TestEnv {
    let started = Instant::now();
    let rt = runtime();
    let server = start_mariadb(&rt, extra_args);
    let admin_url = server.admin_url.clone();
    let es_url = es_url();
    let (daemon_url, is_mariadb) = rt.block_on(prepare_mysql(&admin_url));
    eprintln!(
        "dedicated mariadbd {extra_args:?} ready in {:.1?}: {admin_url}",
        started.elapsed()
    );
    TestEnv {
        admin_url,
        daemon_url,
        es_url,
        is_mariadb,
        tag: tag(),
        server: Some(server),
    }
}

impl TestEnv {
    /// The MariaDB of a [`TestEnv::dedicated`] env, to stop, kill and start again.
    ///
    /// # Panics
    /// For the shared servers, which other tests use.
    pub fn server(&mut self) -> &mut MariaDb {
        self.server
            .as_mut()
            .expect("only a TestEnv::dedicated server may be stopped or restarted")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Distinguishes runs against long-lived external servers.
fn tag() -> String {
    format!("{}{:04x}", std::process::id(), rand::random::<u16>())
}

static ES_URL: OnceLock<String> = OnceLock::new();

/// The Elasticsearch shared by every env of this test process (`BINLOG2ES_TEST_ES_URL`, or an
/// osmem-server started on first use), once it answers.
fn es_url() -> String {
    ES_URL
        .get_or_init(|| {
            std::thread::spawn(|| {
                let url = match std::env::var("BINLOG2ES_TEST_ES_URL") {
                    Ok(url) => url.trim_end_matches('/').to_string(),
                    Err(_) => start_osmem(),
                };
                runtime().block_on(wait_for_es(&url));
                url
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
        .clone()
}

/// A `mariadbd` this process started, with its temp dir (data dir, socket, error log).
///
/// Dropping it SIGKILLs the server and removes the dir; should the test process die first, the
/// watchdog does both.
pub struct MariaDb {
    pub admin_url: String,
    child: Option<Child>,
    dir: PathBuf,
    /// `mariadbd`'s arguments, kept to start it again on the same data dir and port.
    args: Vec<String>,
    /// The watchdog of the running `child` (each start gets its own).
    watchdog: Option<u32>,
}

impl MariaDb {
    /// Hands the process over for good: the watchdog alone ends it, with the test process.
    fn into_child(self) -> Child {
        let mut this = std::mem::ManuallyDrop::new(self);
        this.child.take().unwrap()
    }

    /// The server's error log.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("err.log")).unwrap_or_default()
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server cleanly (SIGTERM, as `systemctl stop` does) and waits for its exit,
    /// keeping its data dir and port for [`MariaDb::start`].
    ///
    /// # Panics
    /// If it is not running, or still runs after 60 s (it is then killed).
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("mariadbd is not running");
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                self.end_watchdog();
                panic!("mariadbd did not stop within 60 s of SIGTERM; killed it");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.end_watchdog();
    }

    /// SIGKILLs the server (a crash: InnoDB recovers at the next start), keeping its data
    /// dir and port for [`MariaDb::start`].
    ///
    /// # Panics
    /// If it is not running.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("mariadbd is not running");
        child.kill().ok();
        child.wait().ok();
        self.end_watchdog();
    }

    /// Starts the server again on the same data dir and port, and waits until it accepts
    /// connections. Blocks the calling thread (up to 60 s).
    ///
    /// # Panics
    /// If it is running, or does not come up.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "mariadbd is already running");
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.spawn(&runtime()))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
    }

    /// Spawns `mariadbd` with [`MariaDb::args`] and its watchdog; returns once the server
    /// accepts connections.
    fn spawn(&mut self, rt: &tokio::runtime::Runtime) {
        let mut child = Command::new(find_binary("mariadbd"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mariadbd");
        self.watchdog = Some(spawn_watchdog(child.id(), &self.dir));
        let opts = Opts::from_url(&self.admin_url).unwrap();
        let dir = &self.dir;
        let deadline = Instant::now() + Duration::from_secs(60);
        rt.block_on(async {
            loop {
                match Conn::new(opts.clone()).await {
                    Ok(conn) => {
                        conn.disconnect().await.ok();
                        break;
                    }
                    Err(e) => {
                        let log =
                            || std::fs::read_to_string(dir.join("err.log")).unwrap_or_default();
                        if let Ok(Some(status)) = child.try_wait() {
                            panic!("mariadbd exited with {status}; error log:\n{}", log());
                        }
                        if Instant::now() > deadline {
                            panic!("mariadbd not ready after 60 s ({e}); error log:\n{}", log());
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        self.child = Some(child);
    }

    /// Ends the watchdog of a server that is gone (a restarted server gets a new one).
    fn end_watchdog(&mut self) {
        if let Some(pid) = self.watchdog.take() {
            // Ours, and alive: it only ends by itself once this process or the dir is gone.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
        // The watchdog sees the dir gone and ends without killing anything.
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// Initialises a datadir in a temp dir and starts `mariadbd` with a ROW binlog on a free port,
/// `extra_args` last (so they override the defaults). Returns once the server accepts
/// connections.
fn start_mariadb(rt: &tokio::runtime::Runtime, extra_args: &[String]) -> MariaDb {
    let dir = tempfile::Builder::new()
        .prefix("b2e-mariadb-")
        .tempdir()
        .unwrap()
        .keep(); // removed by the watchdog below
    let data = dir.join("data");
    // Concurrent bootstraps sharing /tmp clash on temporary table files: give each its own.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut install = Command::new(find_binary("mariadb-install-db"));
    install.env("TMPDIR", &tmp);
    install.args([
        "--no-defaults",
        &format!("--datadir={}", data.display()),
        "--auth-root-authentication-method=socket",
        "--skip-test-db",
    ]);
    if unsafe { libc::geteuid() } == 0 {
        install.arg("--user=root");
    }
    let out = install.output().expect("running mariadb-install-db");
    assert!(
        out.status.success(),
        "mariadb-install-db failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let init = dir.join("init.sql");
    std::fs::write(
        &init,
        format!(
            "CREATE USER IF NOT EXISTS '{ADMIN}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{ADMIN}'@'%' WITH GRANT OPTION;\n"
        ),
    )
    .unwrap();

    let port = free_port();
    let d = |name: &str| dir.join(name).display().to_string();
    let mut args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", data.display()),
        format!("--socket={}", d("sock")),
        format!("--tmpdir={}", tmp.display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--log-bin={}", data.join("binlog").display()),
        "--binlog-format=ROW".into(),
        "--binlog-row-image=FULL".into(),
        "--binlog-row-metadata=FULL".into(),
        "--server-id=1".into(),
        "--skip-name-resolve".into(),
        format!("--pid-file={}", d("pid")),
        format!("--log-error={}", d("err.log")),
        format!("--init-file={}", init.display()),
        "--innodb-buffer-pool-size=128M".into(),
        "--innodb-log-file-size=256M".into(),
        "--innodb-flush-log-at-trx-commit=2".into(),
        "--sync-binlog=0".into(),
        "--max-connections=500".into(),
    ];
    args.extend(extra_args.iter().cloned());
    if unsafe { libc::geteuid() } == 0 {
        args.push("--user=root".into());
    }
    let mut server = MariaDb {
        admin_url: format!("mysql://{ADMIN}:{ADMIN_PASSWORD}@127.0.0.1:{port}"),
        child: None,
        dir,
        args,
        watchdog: None,
    };
    server.spawn(rt);
    server
}

/// Kills `pid` and removes `dir` once this test process is gone, however it ends; ends quietly
/// when `dir` disappears first (the server was stopped and cleaned up by its owner).
fn spawn_watchdog(pid: u32, dir: &Path) -> u32 {
    let mut watchdog = Command::new("sh")
        .args([
            "-c",
            r#"while kill -0 "$1" 2>/dev/null; do [ -d "$3" ] || exit 0; sleep 1; done; [ -d "$3" ] || exit 0; kill -9 "$2"; sleep 1; rm -rf "$3""#,
            "watchdog",
            &std::process::id().to_string(),
            &pid.to_string(),
            &dir.display().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0) // survive a Ctrl-C aimed at the test's process group
        .spawn()
        .expect("starting the watchdog");
    let watchdog_pid = watchdog.id();
    std::thread::spawn(move || watchdog.wait()); // reaps it, should it end first
    watchdog_pid
}

/// Starts osmem-server on a free port; it exits by itself when this process does.
fn start_osmem() -> String {
    let server = Osmem::start();
    let url = server.url.clone();
    // Shared for the life of the process: reaped by this thread, never killed.
    std::thread::spawn(move || {
        let mut server = std::mem::ManuallyDrop::new(server);
        server.child.wait()
    });
    url
}

/// An osmem-server of the caller's own, killed when dropped (or when this process exits):
/// for runs that must not share the sink's state with earlier ones (the e2e bench).
pub struct Osmem {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
}

impl Osmem {
    /// Starts one on a free port and returns once it printed its address.
    pub fn start() -> Osmem {
        let bin = std::env::var("OSMEM_SERVER_BIN").unwrap_or_else(|_| {
            Command::new("python3")
                .args(["-c", "import osmem_server as o; print(o.resolve_binary())"])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .unwrap_or_else(|| "osmem-server".into())
        });
        let mut child: Child = Command::new(&bin)
            .args(["-addr", "127.0.0.1:0", "-no-stdin-watch", "-parent-pid"])
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {bin}: {e} (pip install osmem-server, or set OSMEM_SERVER_BIN)")
            });
        // The first line is `{"url":"http://127.0.0.1:PORT",...}`; keep draining the rest so
        // the server never blocks on a full pipe.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let banner: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("osmem-server printed {line:?} instead of its banner: {e}"));
        let url = banner["url"]
            .as_str()
            .expect("url in osmem-server banner")
            .to_string();
        Osmem { url, child }
    }

    /// The server's process id (benches read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Waits for the server, learns its flavour and creates the daemon's least-privilege account.
async fn prepare_mysql(admin_url: &str) -> (String, bool) {
    let opts = Opts::from_url(admin_url).expect("BINLOG2ES_TEST_MYSQL_URL is not a mysql:// URL");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        match Conn::new(opts.clone()).await {
            Ok(conn) => break conn,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {admin_url}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let version: String = conn.query_first("SELECT VERSION()").await.unwrap().unwrap();
    let is_mariadb = version.contains("MariaDB");
    let privileges = daemon_privileges(is_mariadb);
    conn.query_drop(format!(
        "CREATE USER IF NOT EXISTS '{DAEMON_USER}'@'%' IDENTIFIED BY '{DAEMON_PASSWORD}'; \
         GRANT {privileges} ON *.* TO '{DAEMON_USER}'@'%'"
    ))
    .await
    .unwrap_or_else(|e| panic!("creating the daemon's MySQL account: {e}"));
    conn.disconnect().await.ok();
    let daemon_url = format!(
        "mysql://{DAEMON_USER}:{DAEMON_PASSWORD}@{}:{}",
        opts.ip_or_hostname(),
        opts.tcp_port()
    );
    (daemon_url, is_mariadb)
}

/// What the daemon's accounts are granted on this server flavour.
pub(super) fn daemon_privileges(is_mariadb: bool) -> &'static str {
    if is_mariadb {
        "SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR"
    } else {
        "SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT"
    }
}

async fn wait_for_es(url: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http.get(url).send().await {
            Ok(resp) if resp.status().is_success() => return,
            Ok(resp) if Instant::now() > deadline => panic!("{url} answers {}", resp.status()),
            Err(e) if Instant::now() > deadline => panic!("cannot reach {url}: {e}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `name` on PATH, else in the sbin directories Debian installs servers into.
fn find_binary(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} not found; install mariadb-server"))
}
