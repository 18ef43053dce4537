//! Running the `binlog2es` binary: config files, `run` as a child process, and one-shot CLI
//! commands.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::TestEnv;

const BIN: &str = env!("CARGO_BIN_EXE_binlog2es");
static SERVER_IDS: AtomicU32 = AtomicU32::new(0);

/// A replica `server_id` unique among all daemons of all test processes connected at once.
fn next_server_id() -> u32 {
    1000 + (std::process::id() % 1000) * 50 + SERVER_IDS.fetch_add(1, Ordering::Relaxed)
}

/// Builds a daemon's config file; see [`Daemon::builder`].
pub struct DaemonBuilder {
    mysql_url: String,
    es_url: String,
    connect_timeout: String,
    snapshot_mode: String,
    mysql_toml: String,
    es_toml: String,
    http_toml: String,
    checkpoint_toml: String,
    snapshot_toml: String,
    http_listen: String,
    tables: String,
    extra_toml: String,
}

impl DaemonBuilder {
    /// The operations endpoint address (default `127.0.0.1:0`: a free port, so that
    /// daemons of parallel tests never collide).
    pub fn http_listen(mut self, addr: &str) -> Self {
        self.http_listen = addr.to_owned();
        self
    }

    /// Adds a `[[tables]]` rule syncing `pattern` ("db.table", "db.*") into `index`.
    pub fn table(self, pattern: &str, index: &str) -> Self {
        self.table_toml(&format!(
            "match = {}\nindex = {}",
            quote(pattern),
            quote(index)
        ))
    }

    /// Appends `lines` to the last `[[tables]]` rule (e.g. `create_index = false`).
    pub fn table_lines(mut self, lines: &str) -> Self {
        assert!(
            !self.tables.is_empty(),
            "table_lines needs a [[tables]] rule first"
        );
        self.tables += &format!("{lines}\n");
        self
    }

    /// Adds a `[[tables]]` rule with this body (e.g. extra `id_columns = [...]`).
    pub fn table_toml(mut self, body: &str) -> Self {
        self.tables += &format!("\n[[tables]]\n{body}\n");
        self
    }

    pub fn mysql_url(mut self, url: &str) -> Self {
        self.mysql_url = url.into();
        self
    }

    pub fn es_url(mut self, url: &str) -> Self {
        self.es_url = url.into();
        self
    }

    /// `mysql.connect_timeout`, e.g. `"1s"` (default `"10s"`).
    pub fn connect_timeout(mut self, timeout: &str) -> Self {
        self.connect_timeout = timeout.into();
        self
    }

    /// `snapshot.mode` (default `"never"`: start at the binlog's current end).
    pub fn snapshot_mode(mut self, mode: &str) -> Self {
        self.snapshot_mode = mode.into();
        self
    }

    /// Extra lines inside the `[mysql]` section.
    pub fn mysql_toml(mut self, lines: &str) -> Self {
        self.mysql_toml += &format!("{lines}\n");
        self
    }

    /// Extra lines inside the `[elasticsearch]` section.
    pub fn es_toml(mut self, lines: &str) -> Self {
        self.es_toml += &format!("{lines}\n");
        self
    }

    /// Extra lines inside the `[checkpoint]` section (e.g. `interval_ms = 10000`).
    pub fn checkpoint_toml(mut self, lines: &str) -> Self {
        self.checkpoint_toml += &format!("{lines}\n");
        self
    }

    /// Extra lines inside the `[snapshot]` section (e.g. `chunk_size = 200`).
    pub fn snapshot_toml(mut self, lines: &str) -> Self {
        self.snapshot_toml += &format!("{lines}\n");
        self
    }

    /// Extra lines inside the `[http]` section.
    pub fn http_toml(mut self, lines: &str) -> Self {
        self.http_toml += &format!("{lines}\n");
        self
    }

    /// TOML appended at the end of the file; must start with a section header (`[writer]`).
    pub fn extra_toml(mut self, text: &str) -> Self {
        self.extra_toml += &format!("\n{text}\n");
        self
    }

    /// Writes the config into a fresh temp dir without starting anything.
    pub fn build(self) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("b2e-daemon-")
            .tempdir()
            .unwrap();
        let root = dir.path().to_path_buf();
        let config = format!(
            "[mysql]\nurl = {}\nserver_id = {}\nconnect_timeout = {}\n{}\n\
             [elasticsearch]\nurl = {}\n{}\n\
             [checkpoint]\npath = {}\n{}\n\
             [snapshot]\nmode = {}\n{}\n\
             [http]\nlisten = {}\n{}{}{}",
            quote(&self.mysql_url),
            next_server_id(),
            quote(&self.connect_timeout),
            self.mysql_toml,
            quote(&self.es_url),
            self.es_toml,
            quote(&root.join("checkpoint.json").display().to_string()),
            self.checkpoint_toml,
            quote(&self.snapshot_mode),
            self.snapshot_toml,
            quote(&self.http_listen),
            self.http_toml,
            self.tables,
            self.extra_toml,
        );
        std::fs::write(root.join("binlog2es.toml"), config).unwrap();
        Daemon {
            root,
            dir: Some(dir),
            child: None,
            starts: 0,
            env: Vec::new(),
        }
    }

    /// Writes the config, runs `binlog2es run` and waits until it streams (checkpoint written).
    pub async fn start(self) -> Daemon {
        let mut daemon = self.build();
        daemon.restart().await;
        daemon
    }
}

/// A `binlog2es run` child process with its own temp dir (config, checkpoint, log).
///
/// Dropping it SIGKILLs the process; when the test is panicking, the log tail is printed and
/// the temp dir is kept for inspection.
pub struct Daemon {
    root: PathBuf,
    dir: Option<TempDir>,
    child: Option<Child>,
    starts: u32,
    /// Extra environment of every later `run` (e.g. `BINLOG2ES_REBUILD_PAUSE`).
    env: Vec<(String, String)>,
}

impl Daemon {
    /// A builder for a daemon pointed at the shared servers with the least-privilege account.
    pub fn builder(env: &TestEnv) -> DaemonBuilder {
        DaemonBuilder {
            mysql_url: env.daemon_url.clone(),
            es_url: env.es_url.clone(),
            connect_timeout: "10s".into(),
            snapshot_mode: "never".into(),
            mysql_toml: String::new(),
            es_toml: String::new(),
            http_toml: String::new(),
            checkpoint_toml: String::new(),
            snapshot_toml: String::new(),
            http_listen: "127.0.0.1:0".into(),
            tables: String::new(),
            extra_toml: String::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("binlog2es.toml")
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.root.join("checkpoint.json")
    }

    pub fn dead_letter_path(&self) -> PathBuf {
        self.root.join("dead-letter.jsonl")
    }

    /// stdout and stderr of every `run` of this daemon, appended.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("daemon.log")
    }

    /// The whole log (every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The log of the latest `run` only.
    pub fn last_run_log(&self) -> String {
        let log = self.log();
        match log.rfind("===== binlog2es run, start #") {
            Some(at) => log[at..].to_string(),
            None => log,
        }
    }

    /// The checkpoint file as JSON.
    ///
    /// # Panics
    /// If it does not exist or is not JSON.
    pub fn checkpoint(&self) -> serde_json::Value {
        let path = self.checkpoint_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
    }

    /// Replaces the checkpoint file with `checkpoint` (the daemon must not be running).
    pub fn write_checkpoint(&self, checkpoint: &serde_json::Value) {
        let text = serde_json::to_string_pretty(checkpoint).unwrap() + "\n";
        std::fs::write(self.checkpoint_path(), text).unwrap();
    }

    /// The checkpoint's `position` as (file, offset): compares file, then offset, like
    /// [`TestEnv::binlog_position`].
    pub fn checkpoint_position(&self) -> (String, u64) {
        let checkpoint = self.checkpoint();
        let position = &checkpoint["position"];
        let file = position["file"].as_str();
        let pos = position["pos"].as_u64();
        match (file, pos) {
            (Some(file), Some(pos)) => (file.to_string(), pos),
            _ => panic!("checkpoint without position {{file, pos}}: {checkpoint}"),
        }
    }

    /// The entries of the dead-letter file (none when it does not exist).
    pub fn dead_letters(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dead_letter_path()).unwrap_or_default();
        text.lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("dead-letter line is not JSON ({e}): {line}"))
            })
            .collect()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Spawns `run` with the same config (and so the same checkpoint) and waits until the
    /// checkpoint file exists, i.e. the daemon is connected and streaming.
    ///
    /// # Panics
    /// If it is already running, or exits or writes no checkpoint within 60 s.
    pub async fn restart(&mut self) {
        self.spawn();
        let checkpoint = self.checkpoint_path();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !checkpoint.exists() {
            self.assert_running();
            if Instant::now() > deadline {
                panic!("binlog2es wrote no checkpoint within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sets an environment variable for every later start of `run` (the config's
    /// `BINLOG2ES_*` overrides are otherwise removed from the daemon's environment).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Removes a variable [`Daemon::set_env`] set, for later starts.
    pub fn remove_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// Spawns `run` without waiting for anything.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "binlog2es is already running");
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        writeln!(log, "===== binlog2es run, start #{} =====", self.starts).unwrap();
        let child = command(&["run", "--config", &self.config_path().display().to_string()])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning binlog2es");
        self.child = Some(child);
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// SIGTERM, then waits up to 60 s for the exit; returns the exit code.
    pub async fn terminate(&mut self) -> i32 {
        let pid = self.pid().expect("binlog2es is not running");
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        self.wait_exit(Duration::from_secs(60)).await
    }

    /// Waits for the process to exit; returns its exit code (128 + signal if killed).
    ///
    /// # Panics
    /// After `timeout`, SIGKILLs it and panics.
    pub async fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("binlog2es is not running");
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return exit_code(status);
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("binlog2es did not exit within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => child.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// # Panics
    /// If the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            self.child = None;
            panic!("binlog2es exited with {status}");
        }
        assert!(self.child.is_some(), "binlog2es is not running");
    }

    /// Current resident set size in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> Option<u64> {
        self.proc_status("VmRSS:")
    }

    /// Peak resident set size since the process started, in KiB (`VmHWM`, kept by the kernel,
    /// so no sampling is needed). Read it before the process exits.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.proc_status("VmHWM:")
    }

    fn proc_status(&self, key: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// The last `lines` lines of the daemon's log, with a header.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "--- binlog2es log tail ({}) ---\n{tail}\n--- end ---",
            self.log_path().display()
        )
    }

    /// Runs a one-shot command (`check`, `status`, `verify`) with this daemon's config.
    pub async fn cli(&self, command: &str) -> CliOutput {
        run_cli(&[
            command,
            "--config",
            &self.config_path().display().to_string(),
        ])
        .await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.stderr_tail(60));
            if let Some(dir) = self.dir.take() {
                eprintln!("kept the daemon's dir: {}", dir.keep().display());
            }
        }
    }
}

/// What a finished CLI command left behind.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// stdout and stderr together, for "mentions X" assertions.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for CliOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `binlog2es ARGS…` to completion (killed after 60 s) and collects its output.
pub async fn run_cli(args: &[&str]) -> CliOutput {
    run_cli_with_env(args, &[]).await
}

/// As [`run_cli`], with these environment variables (e.g. `BINLOG2ES__MYSQL__PASSWORD`).
pub async fn run_cli_with_env(args: &[&str], env: &[(&str, &str)]) -> CliOutput {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = command(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("spawning binlog2es");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!(
                "binlog2es {args:?} still running after 60 s; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    CliOutput {
        code: exit_code(status),
        stdout: std::fs::read_to_string(out_path).unwrap(),
        stderr: std::fs::read_to_string(err_path).unwrap(),
    }
}

/// The binary with an environment free of `BINLOG2ES_*` settings that would override the config.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("BINLOG2ES_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
