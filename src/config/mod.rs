//! Configuration: TOML file plus `BINLOG2ES__SECTION__KEY` environment overrides.
//!
//! Three steps kept apart: [`Config::load`] parses (unknown keys are errors that name
//! the key), [`Config::validate`] does every pure check, and the I/O checks live in
//! `reader::prerequisites`. Every default is a named const with the reason for its value.
//!
//! This file is the model (sections, defaults, loading); `validate` holds the pure checks,
//! `secret` the secret values and files, `rules` the `[[tables]]` rules and their lookup.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub mod document;
mod load;
mod rules;
mod secret;
mod validate;

pub use load::derive_server_id;

pub(crate) use rules::glob;
pub use rules::{KeylessPolicy, TableRule, index_is_per_table, rules_writing};
pub use secret::{Secret, read_secret, redact_url, secret};
pub use validate::{FingerprintError, parse_fingerprint};

/// Replica id before [`Config::load`] derives one (a configuration deserialized otherwise);
/// any value unique among the server's replicas works.
pub const DEFAULT_SERVER_ID: u32 = 4201;
/// Start-up retry window for unreachable servers (SPEC §2.6).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Server heartbeat period: an idle server is told apart from a dead link within 3×.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// One `_bulk` request may take this long before it counts as failed and is retried.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Drain budget on SIGTERM (SPEC §2.7).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Fewest lanes by default: one request can be on the wire while another is parsed.
pub const MIN_DEFAULT_LANES: usize = 2;
/// Most lanes by default: beyond this, batches fragment faster than sinks gain.
pub const MAX_DEFAULT_LANES: usize = 8;

/// Default lanes (parallel bulk connections): this machine's cores, between
/// [`MIN_DEFAULT_LANES`] and [`MAX_DEFAULT_LANES`]. More lanes than cores only split the
/// same work into smaller batches: on 2 cores shared with the sink, 2 lanes halved
/// change→searchable latency at 5,000 changes/s against 4, at the same replay time
/// (`cargo bench --bench e2e`).
pub fn default_lanes() -> usize {
    std::thread::available_parallelism()
        .map_or(MIN_DEFAULT_LANES, usize::from)
        .clamp(MIN_DEFAULT_LANES, MAX_DEFAULT_LANES)
}
/// Docs per bulk request: large enough to amortise the request, small enough to
/// keep one rejected batch cheap to retry.
pub const DEFAULT_MAX_DOCS: usize = 1000;
/// Bytes per bulk request (5 MiB): Elasticsearch advises bulk bodies of 5-15 MB, and
/// its `http.max_content_length` is 100 MiB.
pub const DEFAULT_MAX_BYTES: usize = 5 * 1024 * 1024;
/// Bytes of changes held between the reader and Elasticsearch, all lanes together
/// (64 MiB): room for a full 5 MiB batch in flight on each of 8 lanes plus as much again
/// queued, while rows of a megabyte can no longer fill `lanes × queue_capacity` slots.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 * 1024 * 1024;
/// A partial batch waits at most this long, bounding change→searchable latency.
pub const DEFAULT_MAX_DELAY_MS: u64 = 50;
/// Changes queued per lane before the reader blocks (backpressure, SPEC §2.3).
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// Changes a lane gathers from its queue while all its requests are in flight, collapsing
/// changes to one document into its latest: a replay of a backlog writes each document
/// once per window instead of once per change. Bounded in bytes by the shared budget too.
pub const DEFAULT_BACKLOG_WINDOW: usize = 65_536;
/// `_bulk` requests a lane keeps in flight. 1 (one at a time) is the plain, safest
/// order; more overlaps batch assembly and the sink's work on the next request, at the
/// cost of more connections (lanes × depth). Batches sharing a document never overlap.
pub const DEFAULT_PIPELINE_DEPTH: usize = 1;
/// Most in-flight requests per lane accepted by validation.
pub const MAX_PIPELINE_DEPTH: usize = 16;
/// First retry delay; doubles up to the maximum, with jitter.
pub const DEFAULT_RETRY_INITIAL_MS: u64 = 100;
/// Retry delay ceiling: an outage costs at most this much extra catch-up time.
pub const DEFAULT_RETRY_MAX_MS: u64 = 30_000;
/// Default operations endpoint address (SPEC §7), loopback only.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9187";
/// `/readyz` tolerates this much lag: a healthy stream is well under it, an outage
/// or a stuck sink soon exceeds it.
pub const DEFAULT_READY_MAX_LAG: Duration = Duration::from_secs(30);
/// Checkpoint writes are coalesced to at most one per interval (each is an fsync).
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: u64 = 200;

/// Errors from loading or validating the configuration (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// File missing or unreadable.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Syntax error (the message quotes the line).
    #[error("invalid configuration in {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message naming the key.
        message: String,
    },
    /// Unknown key, wrong type or value, missing key: where it came from and the fix.
    #[error("invalid configuration: `{key}` ({origin}): {message}")]
    At {
        /// Dotted key path (`tables[0].match`).
        key: String,
        /// `FILE:LINE`, `FILE` or `environment variable BINLOG2ES__…`.
        origin: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A value that parses but cannot work.
    #[error("invalid configuration: `{key}`: {message}")]
    Invalid {
        /// Dotted key path.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A secret file that cannot be read.
    #[error("cannot read `{key}` file {path}: {source}")]
    Secret {
        /// Dotted key path.
        key: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate or key file that cannot be used.
    #[error("`{key}` file {path}: {message}")]
    TlsFile {
        /// Dotted key path.
        key: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Drain budget on SIGTERM/SIGINT; default 30s.
    #[serde(default = "d_shutdown", deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Source server.
    pub mysql: MysqlConfig,
    /// Sink cluster.
    pub elasticsearch: EsConfig,
    /// Where progress is stored.
    pub checkpoint: CheckpointConfig,
    /// Initial copy policy.
    #[serde(default)]
    pub snapshot: SnapshotConfig,
    /// Batching, lanes, retries.
    #[serde(default)]
    pub writer: WriterConfig,
    /// Rejected documents.
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// Log format and level.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Operations endpoint (`/metrics`, `/healthz`, `/readyz`).
    #[serde(default)]
    pub http: HttpConfig,
    /// Which tables go to which index.
    #[serde(default)]
    pub tables: Vec<TableRule>,
    /// The file [`Config::load`] read (made absolute), for commands shown to the operator;
    /// `None` for a configuration built otherwise.
    #[serde(skip)]
    pub loaded_from: Option<PathBuf>,
}

/// `[mysql]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// `mysql://user:password@host:port`.
    pub url: String,
    /// Replica id announced to the server; unique among its replicas. Unset: derived from
    /// this host's name and the checkpoint path ([`derive_server_id`]), so two instances
    /// differ.
    #[serde(default = "d_server_id")]
    pub server_id: u32,
    /// Whether `server_id` was derived (not set in the file or environment); `check` says so.
    #[serde(skip)]
    pub server_id_derived: bool,
    /// Password (instead of one in the URL), e.g. from `BINLOG2ES__MYSQL__PASSWORD`.
    pub password: Option<Secret>,
    /// File holding the password (instead of one in the URL).
    pub password_file: Option<PathBuf>,
    /// TLS mode; default `preferred` (as the mysql client).
    #[serde(default)]
    pub tls_mode: TlsMode,
    /// CA bundle (PEM) for verify_ca / verify_identity; default: the public web roots.
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM), for accounts created `REQUIRE X509`.
    pub tls_cert_file: Option<PathBuf>,
    /// Private key of `tls_cert_file` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key_file: Option<PathBuf>,
    /// Start-up retry window.
    #[serde(default = "d_connect", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Heartbeat period requested from the server.
    #[serde(default = "d_heartbeat", deserialize_with = "duration")]
    pub heartbeat_interval: Duration,
}

impl fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("url", &redact_url(&self.url))
            .field("server_id", &self.server_id)
            .field("password", &self.password)
            .field("password_file", &self.password_file)
            .field("tls_mode", &self.tls_mode)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .finish()
    }
}

/// MySQL connection security (the mysql client's `--ssl-mode` values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain TCP.
    Disabled,
    /// TLS without certificate checks when the server offers it, else plain TCP (with a
    /// warning). Protects against eavesdropping, not against an active attacker.
    #[default]
    Preferred,
    /// TLS without certificate checks.
    Required,
    /// TLS, certificate chain checked against `tls_ca_file` or system roots.
    VerifyCa,
    /// As verify_ca, plus the host name.
    VerifyIdentity,
}

/// `[elasticsearch]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsConfig {
    /// One node URL.
    pub url: Option<String>,
    /// Several node URLs (requests go to the first; the others are fallbacks).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Basic auth user.
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Option<Secret>,
    /// File holding the basic auth password.
    pub password_file: Option<PathBuf>,
    /// API key (the base64 `id:key` form).
    pub api_key: Option<Secret>,
    /// File holding the API key.
    pub api_key_file: Option<PathBuf>,
    /// Bearer token (`Authorization: Bearer …`, e.g. an OAuth2/JWT or service token).
    pub bearer_token: Option<Secret>,
    /// File holding the bearer token (re-read at each start).
    pub bearer_token_file: Option<PathBuf>,
    /// CA bundle (PEM) for https with a private CA; the only CAs trusted when set.
    pub tls_ca_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the server's certificate or of a CA in its chain
    /// (instead of `tls_ca_file`), as Elasticsearch prints it at first start.
    pub ca_fingerprint: Option<String>,
    /// Client certificate chain (PEM) for clusters that authenticate by certificate.
    pub tls_cert_file: Option<PathBuf>,
    /// Private key of `tls_cert_file` (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// Start-up retry window.
    #[serde(default = "d_connect", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Per-request timeout.
    #[serde(default = "d_request", deserialize_with = "duration")]
    pub request_timeout: Duration,
}

impl fmt::Debug for EsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EsConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field(
                "urls",
                &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("username", &self.username)
            .field("password", &self.password)
            .field("password_file", &self.password_file)
            .field("api_key", &self.api_key)
            .field("api_key_file", &self.api_key_file)
            .field("bearer_token", &self.bearer_token)
            .field("bearer_token_file", &self.bearer_token_file)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl EsConfig {
    /// All configured node URLs, `url` first.
    pub fn all_urls(&self) -> Vec<String> {
        self.url.iter().chain(self.urls.iter()).cloned().collect()
    }
}

/// `[checkpoint]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// Checkpoint file.
    pub path: PathBuf,
    /// Minimum time between two checkpoint writes, in ms.
    #[serde(default = "d_ckpt_interval")]
    pub interval_ms: u64,
}

/// `[snapshot]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Copy policy.
    #[serde(default)]
    pub mode: SnapshotMode,
    /// Rows per chunk (one keyset-paginated SELECT).
    #[serde(default = "d_chunk_size")]
    pub chunk_size: usize,
    /// Tables copied at the same time, each on its own connection.
    #[serde(default = "d_parallelism")]
    pub parallelism: usize,
    /// How long one consistent snapshot (one read view on the server) is used before the
    /// next chunk takes a new one.
    #[serde(default = "d_snapshot_refresh", deserialize_with = "duration")]
    pub snapshot_refresh: Duration,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            mode: SnapshotMode::default(),
            chunk_size: d_chunk_size(),
            parallelism: d_parallelism(),
            snapshot_refresh: d_snapshot_refresh(),
        }
    }
}

/// When the initial copy runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Copy first when there is no checkpoint.
    Initial,
    /// Never copy; without a checkpoint start at the binlog's end.
    #[default]
    Never,
    /// As initial, and copy again when the checkpoint's binlog file was purged.
    WhenNeeded,
}

/// `[writer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterConfig {
    /// Parallel lanes (bulk connections).
    #[serde(default = "d_lanes")]
    pub lanes: usize,
    /// Max documents per bulk request.
    #[serde(default = "d_max_docs")]
    pub max_docs: usize,
    /// Max body bytes per bulk request.
    #[serde(default = "d_max_bytes")]
    pub max_bytes: usize,
    /// Max wait before a partial batch is sent, in ms.
    #[serde(default = "d_max_delay")]
    pub max_delay_ms: u64,
    /// Changes queued per lane.
    #[serde(default = "d_queue")]
    pub queue_capacity: usize,
    /// Most bytes of changes queued or in flight, all lanes together (see
    /// [`DEFAULT_MAX_BUFFERED_BYTES`]); at least `max_bytes`.
    #[serde(default = "d_max_buffered_bytes")]
    pub max_buffered_bytes: usize,
    /// Most changes a lane gathers while waiting for the sink (see
    /// [`DEFAULT_BACKLOG_WINDOW`]); 0 collapses only within a batch.
    #[serde(default = "d_backlog_window")]
    pub backlog_window: usize,
    /// First retry delay, in ms.
    #[serde(default = "d_retry_initial")]
    pub retry_initial_ms: u64,
    /// Retry delay ceiling, in ms.
    #[serde(default = "d_retry_max")]
    pub retry_max_ms: u64,
    /// Give up after this many attempts of one batch; 0 = retry forever.
    #[serde(default)]
    pub max_retries: u32,
    /// `_bulk` requests in flight per lane (see [`DEFAULT_PIPELINE_DEPTH`]).
    #[serde(default = "d_pipeline_depth")]
    pub pipeline_depth: usize,
    /// Adapt the requests in flight per lane to the sink, between 1 and `pipeline_depth`:
    /// more while its round trips stay flat, fewer on 429/5xx or rising round trips.
    #[serde(default)]
    pub adaptive_concurrency: bool,
    /// Gzip `_bulk` bodies (`Content-Encoding: gzip`): for slow links to the sink; on a
    /// fast network it costs more CPU than it saves. Default off.
    #[serde(default)]
    pub gzip: bool,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            lanes: default_lanes(),
            max_docs: DEFAULT_MAX_DOCS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_delay_ms: DEFAULT_MAX_DELAY_MS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            backlog_window: DEFAULT_BACKLOG_WINDOW,
            retry_initial_ms: DEFAULT_RETRY_INITIAL_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
            max_retries: 0,
            pipeline_depth: DEFAULT_PIPELINE_DEPTH,
            adaptive_concurrency: false,
            gzip: false,
        }
    }
}

/// `[dead_letter]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// What a rejected document does.
    #[serde(default)]
    pub on_rejected: OnRejected,
    /// Where rejected documents go: a file (default) or an index.
    #[serde(default, rename = "type")]
    pub destination: DeadLetterKind,
    /// Dead-letter file (`type = "file"`); default `dead-letter.jsonl` next to the checkpoint.
    pub path: Option<PathBuf>,
    /// Dead-letter index (`type = "index"`); default `binlog2es-dead-letter`.
    pub index: Option<String>,
}

/// Dead-letter destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterKind {
    /// JSON lines appended to a local file, synced before the change counts as handled.
    #[default]
    File,
    /// Documents in an Elasticsearch index, acknowledged before the change counts as handled.
    Index,
}

/// Default dead-letter index name.
pub const DEFAULT_DEAD_LETTER_INDEX: &str = "binlog2es-dead-letter";

/// Policy for documents Elasticsearch rejects (HTTP 400-class items).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRejected {
    /// Write it to the dead-letter file and continue.
    #[default]
    DeadLetter,
    /// Stop the daemon without advancing the checkpoint.
    Fail,
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `text` or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// Filter directive, e.g. `info` or `binlog2es=debug`; `RUST_LOG` wins.
    #[serde(default = "d_level")]
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: d_level(),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve the endpoint at all.
    #[serde(default = "d_true")]
    pub enabled: bool,
    /// Listen address; loopback by default so metrics are not exposed by accident.
    #[serde(default = "d_http_listen")]
    pub listen: std::net::SocketAddr,
    /// `/readyz` fails while the lag is above this.
    #[serde(default = "d_ready_lag", deserialize_with = "duration")]
    pub ready_max_lag: Duration,
    /// Basic auth user every request must present; default none (no authentication).
    pub username: Option<String>,
    /// Basic auth password for `username`.
    pub password: Option<Secret>,
    /// File holding the basic auth password.
    pub password_file: Option<PathBuf>,
    /// Serve https with this certificate chain (PEM); default plain http.
    pub tls_cert_file: Option<PathBuf>,
    /// Private key of `tls_cert_file` (PEM).
    pub tls_key_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: d_http_listen(),
            ready_max_lag: DEFAULT_READY_MAX_LAG,
            username: None,
            password: None,
            password_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Reads the file and applies `BINLOG2ES__*` overrides; then resolves relative
    /// `checkpoint.path` / `dead_letter.path` against the file's directory and derives
    /// `mysql.server_id` when neither sets it (see [`derive_server_id`]).
    ///
    /// # Errors
    /// Unreadable file, TOML syntax, unknown keys, wrong types: each names the key, where it
    /// came from (file and line, or the environment variable) and what to write instead.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        // vars() would panic on a variable that is not UTF-8; such a one is no override of ours.
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let env = load::env_overrides(vars);
        let (mut config, given) = load::deserialize(path, &text, &env)?;
        let dir = path.parent().unwrap_or(Path::new(""));
        config.checkpoint.path = load::beside(dir, &config.checkpoint.path);
        if let Some(p) = &config.dead_letter.path {
            config.dead_letter.path = Some(load::beside(dir, p));
        }
        if !given.server_id {
            config.mysql.server_id = derive_server_id(&config.checkpoint.path);
            config.mysql.server_id_derived = true;
        }
        config.loaded_from = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_owned()));
        Ok(config)
    }

    /// The dead-letter index name.
    pub fn dead_letter_index(&self) -> String {
        self.dead_letter
            .index
            .clone()
            .unwrap_or_else(|| DEFAULT_DEAD_LETTER_INDEX.to_owned())
    }

    /// The dead-letter file path (default next to the checkpoint).
    pub fn dead_letter_path(&self) -> PathBuf {
        self.dead_letter.path.clone().unwrap_or_else(|| {
            self.checkpoint
                .path
                .parent()
                .unwrap_or(Path::new("."))
                .join("dead-letter.jsonl")
        })
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a duration like \"10s\": {e}")))
}

fn d_shutdown() -> Duration {
    DEFAULT_SHUTDOWN_TIMEOUT
}
fn d_server_id() -> u32 {
    DEFAULT_SERVER_ID
}
fn d_connect() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}
fn d_heartbeat() -> Duration {
    DEFAULT_HEARTBEAT_INTERVAL
}
fn d_request() -> Duration {
    DEFAULT_REQUEST_TIMEOUT
}
fn d_ckpt_interval() -> u64 {
    DEFAULT_CHECKPOINT_INTERVAL_MS
}
fn d_pipeline_depth() -> usize {
    DEFAULT_PIPELINE_DEPTH
}
fn d_lanes() -> usize {
    default_lanes()
}
fn d_max_docs() -> usize {
    DEFAULT_MAX_DOCS
}
fn d_max_bytes() -> usize {
    DEFAULT_MAX_BYTES
}
fn d_max_delay() -> u64 {
    DEFAULT_MAX_DELAY_MS
}
fn d_backlog_window() -> usize {
    DEFAULT_BACKLOG_WINDOW
}
fn d_queue() -> usize {
    DEFAULT_QUEUE_CAPACITY
}
fn d_max_buffered_bytes() -> usize {
    DEFAULT_MAX_BUFFERED_BYTES
}
fn d_retry_initial() -> u64 {
    DEFAULT_RETRY_INITIAL_MS
}
fn d_retry_max() -> u64 {
    DEFAULT_RETRY_MAX_MS
}
fn d_http_listen() -> std::net::SocketAddr {
    DEFAULT_HTTP_LISTEN
        .parse()
        .unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 9187)))
}
fn d_ready_lag() -> Duration {
    DEFAULT_READY_MAX_LAG
}
fn d_level() -> String {
    "info".to_owned()
}
fn d_index() -> String {
    "{db}.{table}".to_owned()
}
fn d_true() -> bool {
    true
}
fn d_chunk_size() -> usize {
    1000
}
fn d_parallelism() -> usize {
    2
}
fn d_snapshot_refresh() -> Duration {
    Duration::from_secs(5)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Loads `text` as a configuration file (for the tests of every part of `config`).
    pub(crate) fn load_str(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(&p)
    }

    /// The smallest valid configuration.
    pub(crate) const MINIMAL: &str = r#"
[mysql]
url = "mysql://u:secret@127.0.0.1:3306"
[elasticsearch]
url = "http://127.0.0.1:9200"
[checkpoint]
path = "/tmp/x/checkpoint.json"
[snapshot]
mode = "never"
[[tables]]
match = "shop.*"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load_str(MINIMAL).unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.mysql.server_id,
            derive_server_id(Path::new("/tmp/x/checkpoint.json"))
        );
        assert!(c.mysql.server_id_derived);
        assert_eq!(c.writer.lanes, default_lanes());
        assert_eq!(c.mysql.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(c.tables[0].index_for("shop", "Orders"), "shop.orders");
        assert_eq!(
            c.dead_letter_path(),
            PathBuf::from("/tmp/x/dead-letter.jsonl")
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_str(&MINIMAL.replace("[mysql]\n", "[mysql]\nurll = \"x\"\n")).unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn wrong_type_and_bad_duration_are_named() {
        let err = load_str(&format!("{MINIMAL}\n[writer]\nlanes = \"many\"\n")).unwrap_err();
        assert!(err.to_string().contains("lanes"), "{err}");
        let err = load_str(&MINIMAL.replace("[mysql]\n", "[mysql]\nconnect_timeout = \"soon\"\n"))
            .unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
    }

    #[test]
    fn index_options_parse_with_defaults() {
        let c = load_str(MINIMAL).unwrap();
        assert!(c.tables[0].create_index);
        assert!(c.tables[0].mapping.is_empty());
        assert!(c.tables[0].index_settings.is_empty());
        let text = format!(
            "{MINIMAL}mapping = {{ Title = {{ type = \"keyword\" }}, price = {{ type = \"scaled_float\", scaling_factor = 100 }} }}\n\
             index_settings = {{ number_of_shards = 1, refresh_interval = \"5s\" }}\n"
        );
        let c = load_str(&text).unwrap();
        c.validate().unwrap();
        let rule = &c.tables[0];
        // Keys keep their case: they are column names.
        assert_eq!(
            rule.mapping["Title"],
            serde_json::json!({"type": "keyword"})
        );
        assert_eq!(
            rule.mapping["price"],
            serde_json::json!({"type": "scaled_float", "scaling_factor": 100})
        );
        assert_eq!(
            serde_json::Value::Object(rule.index_settings.clone()),
            serde_json::json!({"number_of_shards": 1, "refresh_interval": "5s"})
        );
    }

    /// The documented example files must stay loadable: users copy them.
    #[test]
    fn shipped_configs_load_and_validate() {
        for file in ["config/binlog2es.toml", "docker/binlog2es.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let c = Config::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
            c.validate().unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}
