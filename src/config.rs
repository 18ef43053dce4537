//! Configuration: TOML file plus `BINLOG2ES__SECTION__KEY` environment overrides.
//!
//! Three steps kept apart: [`Config::load`] parses (unknown keys are errors that name
//! the key), [`Config::validate`] does every pure check, and the I/O checks live in
//! `reader::prerequisites`. Every default is a named const with the reason for its value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Default replica id; any value unique among the server's replicas works.
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
    /// Syntax error, unknown key or wrong type.
    #[error("invalid configuration in {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message naming the key.
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

/// A password, API key or token: `Debug` and `Display` show `<redacted>`, never the value.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The whole configuration.
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
}

/// `[mysql]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// `mysql://user:password@host:port`.
    pub url: String,
    /// Replica id announced to the server; unique among its replicas.
    #[serde(default = "d_server_id")]
    pub server_id: u32,
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
            retry_initial_ms: DEFAULT_RETRY_INITIAL_MS,
            retry_max_ms: DEFAULT_RETRY_MAX_MS,
            max_retries: 0,
            pipeline_depth: DEFAULT_PIPELINE_DEPTH,
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

/// `[[tables]]`: one sync rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRule {
    /// `db.table`, `*` wildcards allowed.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Index name template with `{db}` and `{table}`.
    #[serde(default = "d_index")]
    pub index: String,
    /// Columns forming `_id` when the table has no primary key (or to override it).
    #[serde(default)]
    pub id_columns: Vec<String>,
    /// `db.table` patterns (same `*` syntax as `match`) this rule does not take; a later
    /// rule may match them. Default empty.
    #[serde(default)]
    pub skip_tables: Vec<String>,
    /// What to do with a matched table that has no primary key and no `id_columns`; default
    /// [`KeylessPolicy::default_for`] the pattern (skip under a wildcard, fail for one table).
    #[serde(default)]
    pub on_keyless: Option<KeylessPolicy>,
    /// Whether binlog2es may create the index (mapping derived from the column types) and
    /// add fields for new columns; default true. `false`: indices of this rule are never
    /// created or altered (Elasticsearch's own auto-creation and dynamic mapping apply).
    #[serde(default = "d_true")]
    pub create_index: bool,
    /// Field definitions that replace the derived ones (whole definitions, per field), e.g.
    /// `{ title = { type = "keyword" } }`; used when binlog2es creates or extends the index.
    /// Default empty.
    #[serde(default)]
    pub mapping: BTreeMap<String, serde_json::Value>,
    /// Index settings sent when binlog2es creates the index (e.g.
    /// `{ number_of_shards = 1 }`); default empty: the cluster's defaults and templates.
    #[serde(default)]
    pub index_settings: serde_json::Map<String, serde_json::Value>,
}

/// A rule matching nothing, with every option at its default (for code building rules).
impl Default for TableRule {
    fn default() -> Self {
        Self {
            pattern: String::new(),
            index: d_index(),
            id_columns: Vec::new(),
            skip_tables: Vec::new(),
            on_keyless: None,
            create_index: true,
            mapping: BTreeMap::new(),
            index_settings: serde_json::Map::new(),
        }
    }
}

/// `[[tables]] on_keyless`: a matched table without a primary key (and no `id_columns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeylessPolicy {
    /// Leave the table out, with one WARN naming it and a metric; the others go on.
    Skip,
    /// Refuse to start, or stop the daemon, naming the table and the fix.
    Fail,
}

impl KeylessPolicy {
    /// The default for a `match` pattern: a rule naming one table exactly exists for that
    /// table, so it cannot be left out silently (`fail`); a wildcard rule may meet tables
    /// nobody planned for (created later, scratch copies), which must not stop the others
    /// (`skip`, SPEC §2.5).
    pub fn default_for(pattern: &str) -> Self {
        if pattern.contains('*') {
            Self::Skip
        } else {
            Self::Fail
        }
    }
}

impl TableRule {
    /// Whether `db.table` matches this rule: its pattern and none of its `skip_tables`.
    pub fn matches(&self, db: &str, table: &str) -> bool {
        pattern_matches(&self.pattern, db, table)
            && !self
                .skip_tables
                .iter()
                .any(|p| pattern_matches(p, db, table))
    }

    /// The policy for keyless tables: `on_keyless`, or the default for the pattern.
    pub fn keyless_policy(&self) -> KeylessPolicy {
        self.on_keyless
            .unwrap_or_else(|| KeylessPolicy::default_for(&self.pattern))
    }

    /// The index name for `db.table` (lowercased: Elasticsearch index names must be).
    pub fn index_for(&self, db: &str, table: &str) -> String {
        self.index
            .replace("{db}", db)
            .replace("{table}", table)
            .to_lowercase()
    }
}

/// Whether `db.table` matches the `db.table` pattern `pattern` (`*` wildcards).
fn pattern_matches(pattern: &str, db: &str, table: &str) -> bool {
    let Some((pd, pt)) = pattern.split_once('.') else {
        return false;
    };
    glob(pd, db) && glob(pt, table)
}

/// `*` matches any run of characters (also empty); everything else literally.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

impl Config {
    /// Reads the file and applies `BINLOG2ES__*` overrides.
    ///
    /// # Errors
    /// Unreadable file, TOML syntax, unknown keys, wrong types.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let built = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("BINLOG2ES")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        built.try_deserialize().map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Every check that needs no I/O; names the offending key.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        mysql_async::Opts::from_url(&self.mysql.url).map_err(|e| {
            ConfigError::invalid(
                "mysql.url",
                format!("{e}; expected mysql://user:password@host:port"),
            )
        })?;
        if self.mysql.server_id == 0 {
            return Err(ConfigError::invalid(
                "mysql.server_id",
                "must be a non-zero id unique among the server's replicas",
            ));
        }
        self.validate_mysql_tls()?;
        let urls = self.elasticsearch.all_urls();
        if urls.is_empty() {
            return Err(ConfigError::invalid(
                "elasticsearch.url",
                "missing; set url = \"http://host:9200\"",
            ));
        }
        for u in &urls {
            let parsed = u.parse::<reqwest::Url>().map_err(|e| {
                ConfigError::invalid("elasticsearch.url", format!("`{}`: {e}", redact_url(u)))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(
                    "elasticsearch.url",
                    "scheme must be http or https",
                ));
            }
        }
        self.validate_es_security(&urls)?;
        self.validate_http_security()?;
        if self.checkpoint.path.as_os_str().is_empty() {
            return Err(ConfigError::invalid("checkpoint.path", "must not be empty"));
        }
        for (key, v) in [
            ("snapshot.chunk_size", self.snapshot.chunk_size),
            ("snapshot.parallelism", self.snapshot.parallelism),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        let w = &self.writer;
        for (key, v) in [
            ("writer.lanes", w.lanes),
            ("writer.max_docs", w.max_docs),
            ("writer.queue_capacity", w.queue_capacity),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if !(1..=MAX_PIPELINE_DEPTH).contains(&w.pipeline_depth) {
            return Err(ConfigError::invalid(
                "writer.pipeline_depth",
                format!("must be between 1 and {MAX_PIPELINE_DEPTH}"),
            ));
        }
        if w.lanes > 256 {
            return Err(ConfigError::invalid("writer.lanes", "must be at most 256"));
        }
        if w.max_bytes < 1024 {
            return Err(ConfigError::invalid(
                "writer.max_bytes",
                "must be at least 1024",
            ));
        }
        if w.max_buffered_bytes < w.max_bytes {
            return Err(ConfigError::invalid(
                "writer.max_buffered_bytes",
                format!(
                    "must be at least writer.max_bytes ({}): batches are filled from it",
                    w.max_bytes
                ),
            ));
        }
        if w.retry_initial_ms == 0 || w.retry_max_ms < w.retry_initial_ms {
            return Err(ConfigError::invalid(
                "writer.retry_max_ms",
                "need 0 < retry_initial_ms <= retry_max_ms",
            ));
        }
        let dl = &self.dead_letter;
        match dl.destination {
            DeadLetterKind::File if dl.index.is_some() => {
                return Err(ConfigError::invalid(
                    "dead_letter.index",
                    "is for type = \"index\"; remove it or set type = \"index\"",
                ));
            }
            DeadLetterKind::Index if dl.path.is_some() => {
                return Err(ConfigError::invalid(
                    "dead_letter.path",
                    "is for type = \"file\"; remove it or set type = \"file\"",
                ));
            }
            DeadLetterKind::Index => {
                let name = self.dead_letter_index();
                if name.is_empty()
                    || name != name.to_lowercase()
                    || name.starts_with(['_', '-', '+'])
                    || name.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'])
                {
                    return Err(ConfigError::invalid(
                        "dead_letter.index",
                        format!(
                            "`{name}` is not a valid index name (lowercase, no spaces or \\/*?\"<>|,#:)"
                        ),
                    ));
                }
            }
            DeadLetterKind::File => {}
        }
        if self.tables.is_empty() {
            return Err(ConfigError::invalid(
                "tables",
                "no [[tables]] rule; add one with match = \"db.table\"",
            ));
        }
        for (i, t) in self.tables.iter().enumerate() {
            let key = format!("tables[{i}].match");
            let Some((db, table)) = t.pattern.split_once('.') else {
                return Err(ConfigError::invalid(
                    &key,
                    format!("`{}` must be `db.table` (wildcards allowed)", t.pattern),
                ));
            };
            if db.is_empty() || table.is_empty() || table.contains('.') {
                return Err(ConfigError::invalid(
                    &key,
                    format!("`{}` must be `db.table` (wildcards allowed)", t.pattern),
                ));
            }
            for (j, skip) in t.skip_tables.iter().enumerate() {
                let valid = skip
                    .split_once('.')
                    .is_some_and(|(d, t)| !d.is_empty() && !t.is_empty() && !t.contains('.'));
                if !valid {
                    return Err(ConfigError::invalid(
                        &format!("tables[{i}].skip_tables[{j}]"),
                        format!("`{skip}` must be `db.table` (wildcards allowed), as `match`"),
                    ));
                }
            }
            let sample = t.index_for("db", "table");
            if sample.is_empty()
                || sample.starts_with(['_', '-', '+'])
                || sample.chars().any(|c| {
                    matches!(
                        c,
                        '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
                    )
                })
            {
                return Err(ConfigError::invalid(
                    &format!("tables[{i}].index"),
                    format!("`{}` does not give a valid index name", t.index),
                ));
            }
            validate_mapping(i, t)?;
        }
        Ok(())
    }

    /// The first rule matching `db.table`, if any.
    pub fn rule_for(&self, db: &str, table: &str) -> Option<&TableRule> {
        self.tables.iter().find(|r| r.matches(db, table))
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

impl Config {
    /// `[mysql]` password and TLS keys: each file where it has an effect.
    fn validate_mysql_tls(&self) -> Result<(), ConfigError> {
        let m = &self.mysql;
        not_both(
            ("mysql.password", m.password.is_some()),
            ("mysql.password_file", m.password_file.is_some()),
        )?;
        cert_and_key("mysql", &m.tls_cert_file, &m.tls_key_file)?;
        let files = [
            ("mysql.tls_ca_file", m.tls_ca_file.is_some()),
            ("mysql.tls_cert_file", m.tls_cert_file.is_some()),
        ];
        match m.tls_mode {
            TlsMode::Disabled => {
                if let Some((key, _)) = files.iter().find(|(_, set)| *set) {
                    return Err(ConfigError::invalid(
                        key,
                        "has no effect with tls_mode = \"disabled\"; remove it or choose a TLS mode",
                    ));
                }
            }
            TlsMode::Preferred | TlsMode::Required if m.tls_ca_file.is_some() => {
                return Err(ConfigError::invalid(
                    "mysql.tls_ca_file",
                    "is only checked with tls_mode = \"verify_ca\" or \"verify_identity\" \
                     (preferred and required do not verify the server); set one of them",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// `[elasticsearch]` credentials (one kind) and TLS keys (only for https URLs).
    fn validate_es_security(&self, urls: &[String]) -> Result<(), ConfigError> {
        let es = &self.elasticsearch;
        not_both(
            ("elasticsearch.password", es.password.is_some()),
            ("elasticsearch.password_file", es.password_file.is_some()),
        )?;
        not_both(
            ("elasticsearch.api_key", es.api_key.is_some()),
            ("elasticsearch.api_key_file", es.api_key_file.is_some()),
        )?;
        not_both(
            ("elasticsearch.bearer_token", es.bearer_token.is_some()),
            (
                "elasticsearch.bearer_token_file",
                es.bearer_token_file.is_some(),
            ),
        )?;
        let kinds = [
            (
                "username/password",
                es.username.is_some() || es.password.is_some() || es.password_file.is_some(),
            ),
            ("api_key", es.api_key.is_some() || es.api_key_file.is_some()),
            (
                "bearer_token",
                es.bearer_token.is_some() || es.bearer_token_file.is_some(),
            ),
        ];
        let set: Vec<&str> = kinds.iter().filter(|k| k.1).map(|k| k.0).collect();
        if set.len() > 1 {
            return Err(ConfigError::invalid(
                "elasticsearch",
                format!(
                    "{} are set; choose one way to authenticate",
                    set.join(" and ")
                ),
            ));
        }
        let url_credentials = urls.iter().any(|u| {
            u.parse::<reqwest::Url>()
                .is_ok_and(|p| !p.username().is_empty() || p.password().is_some())
        });
        if url_credentials && !set.is_empty() {
            return Err(ConfigError::invalid(
                "elasticsearch.url",
                format!(
                    "carries credentials and {} is set too; keep one (preferably {} with a \
                     *_file, out of the URL)",
                    set[0], set[0]
                ),
            ));
        }
        if es.username.is_none() && (es.password.is_some() || es.password_file.is_some()) {
            return Err(ConfigError::invalid(
                "elasticsearch.username",
                "missing: a password needs a username",
            ));
        }
        not_both(
            ("elasticsearch.tls_ca_file", es.tls_ca_file.is_some()),
            ("elasticsearch.ca_fingerprint", es.ca_fingerprint.is_some()),
        )?;
        if let Some(f) = &es.ca_fingerprint {
            crate::tls::parse_fingerprint(f)
                .map_err(|e| ConfigError::invalid("elasticsearch.ca_fingerprint", e))?;
        }
        cert_and_key("elasticsearch", &es.tls_cert_file, &es.tls_key_file)?;
        let tls_keys = [
            ("elasticsearch.tls_ca_file", es.tls_ca_file.is_some()),
            ("elasticsearch.ca_fingerprint", es.ca_fingerprint.is_some()),
            ("elasticsearch.tls_cert_file", es.tls_cert_file.is_some()),
        ];
        if !urls.iter().any(|u| u.starts_with("https://"))
            && let Some((key, _)) = tls_keys.iter().find(|(_, set)| *set)
        {
            return Err(ConfigError::invalid(
                key,
                "has no effect: no elasticsearch URL is https://",
            ));
        }
        Ok(())
    }

    /// `[http]` basic auth (user and password together) and TLS (certificate and key).
    fn validate_http_security(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        not_both(
            ("http.password", h.password.is_some()),
            ("http.password_file", h.password_file.is_some()),
        )?;
        let has_password = h.password.is_some() || h.password_file.is_some();
        match (h.username.is_some(), has_password) {
            (true, false) => Err(ConfigError::invalid(
                "http.password",
                "missing: http.username needs password or password_file",
            )),
            (false, true) => Err(ConfigError::invalid(
                "http.username",
                "missing: a password needs a username",
            )),
            _ => cert_and_key("http", &h.tls_cert_file, &h.tls_key_file),
        }
    }
}

/// At most one of two alternative keys.
fn not_both(a: (&str, bool), b: (&str, bool)) -> Result<(), ConfigError> {
    if a.1 && b.1 {
        return Err(ConfigError::invalid(
            b.0,
            format!("set `{}` or `{}`, not both", a.0, b.0),
        ));
    }
    Ok(())
}

/// `tls_cert_file` and `tls_key_file` of `section`: both or neither.
fn cert_and_key(
    section: &str,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Result<(), ConfigError> {
    match (cert.is_some(), key.is_some()) {
        (true, false) => Err(ConfigError::invalid(
            &format!("{section}.tls_key_file"),
            "missing: tls_cert_file needs its private key",
        )),
        (false, true) => Err(ConfigError::invalid(
            &format!("{section}.tls_cert_file"),
            "missing: tls_key_file needs its certificate",
        )),
        _ => Ok(()),
    }
}

/// A secret given inline or as a file (`file_key` names the file key in errors).
///
/// # Errors
/// Unreadable file.
pub fn secret(
    file_key: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(p)) => read_secret(file_key, p).map(Secret::new).map(Some),
        (None, None) => Ok(None),
    }
}

/// `mapping` and `index_settings` of rule `i`: each mapping value a table with a `type`,
/// and neither set when `create_index = false` (they would have no effect).
fn validate_mapping(i: usize, t: &TableRule) -> Result<(), ConfigError> {
    if !t.create_index {
        for (key, set) in [
            ("mapping", !t.mapping.is_empty()),
            ("index_settings", !t.index_settings.is_empty()),
        ] {
            if set {
                return Err(ConfigError::invalid(
                    &format!("tables[{i}].{key}"),
                    "has no effect with create_index = false; remove it, or set create_index = true",
                ));
            }
        }
    }
    for (field, def) in &t.mapping {
        let key = format!("tables[{i}].mapping.{field}");
        if field.is_empty() {
            return Err(ConfigError::invalid(&key, "field names must not be empty"));
        }
        let Some(table) = def.as_object() else {
            return Err(ConfigError::invalid(
                &key,
                "must be a table like { type = \"keyword\" }",
            ));
        };
        match table.get("type").and_then(serde_json::Value::as_str) {
            Some(ty) if !ty.is_empty() => {}
            _ => {
                return Err(ConfigError::invalid(
                    &key,
                    "needs a `type`, e.g. { type = \"keyword\" } (use type = \"object\" for objects)",
                ));
            }
        }
    }
    Ok(())
}

/// Reads a secret file, trimming one trailing newline.
///
/// # Errors
/// Unreadable file.
pub fn read_secret(key: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Secret {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// `scheme://user:***@host…`: a URL with its password hidden, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.split_once('@') {
        Some((a, h)) if !a.contains('/') => (a, h),
        _ => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
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
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(&p)
    }

    const MINIMAL: &str = r#"
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
        assert_eq!(c.mysql.server_id, DEFAULT_SERVER_ID);
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
    fn validate_names_the_key() {
        let mut c = load_str(MINIMAL).unwrap();
        c.tables[0].pattern = "nodot".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("tables[0].match"), "{e}");
        let mut c = load_str(MINIMAL).unwrap();
        c.writer.lanes = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("writer.lanes")
        );
        let mut c = load_str(MINIMAL).unwrap();
        c.snapshot.mode = SnapshotMode::Initial;
        c.validate().unwrap();
        c.snapshot.chunk_size = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("snapshot.chunk_size")
        );
    }

    #[test]
    fn a_byte_budget_smaller_than_a_batch_is_refused() {
        let c = load_str(MINIMAL).unwrap();
        assert_eq!(c.writer.max_buffered_bytes, DEFAULT_MAX_BUFFERED_BYTES);
        let c = load_str(&format!(
            "{MINIMAL}\n[writer]\nmax_bytes = 2097152\nmax_buffered_bytes = 1048576\n"
        ))
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("writer.max_buffered_bytes") && e.contains("max_bytes"),
            "{e}"
        );
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

    #[test]
    fn index_options_are_validated() {
        let bad = [
            (
                "mapping = { title = \"keyword\" }",
                "tables[0].mapping.title",
            ),
            ("mapping = { title = { index = false } }", "needs a `type`"),
            (
                "create_index = false\nmapping = { title = { type = \"keyword\" } }",
                "tables[0].mapping",
            ),
            (
                "create_index = false\nindex_settings = { number_of_shards = 1 }",
                "tables[0].index_settings",
            ),
        ];
        for (lines, expected) in bad {
            let c = load_str(&format!("{MINIMAL}{lines}\n")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(expected), "{lines}: {e}");
        }
        let err = load_str(&format!("{MINIMAL}index_settings = 3\n")).unwrap_err();
        assert!(err.to_string().contains("index_settings"), "{err}");
        let c = load_str(&format!("{MINIMAL}create_index = false\n")).unwrap();
        c.validate().unwrap();
        assert!(!c.tables[0].create_index);
    }

    #[test]
    fn dead_letter_destination_keys_must_fit_the_type() {
        let c = load_str(&format!("{MINIMAL}\n[dead_letter]\ntype = \"index\"\n")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.dead_letter_index(), DEFAULT_DEAD_LETTER_INDEX);
        let c = load_str(&format!(
            "{MINIMAL}\n[dead_letter]\ntype = \"index\"\npath = \"/x\"\n"
        ))
        .unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("dead_letter.path")
        );
        let c = load_str(&format!("{MINIMAL}\n[dead_letter]\nindex = \"dl\"\n")).unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("dead_letter.index")
        );
        let c = load_str(&format!(
            "{MINIMAL}\n[dead_letter]\ntype = \"index\"\nindex = \"Bad Name\"\n"
        ))
        .unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("not a valid index name")
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

    #[test]
    fn globs_match() {
        assert!(glob("shop", "shop"));
        assert!(glob("*", "anything"));
        assert!(glob("ord*", "orders"));
        assert!(glob("*_log", "audit_log"));
        assert!(!glob("ord*", "customers"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
    }

    #[test]
    fn skip_tables_hand_tables_to_the_next_rule() {
        let text = format!(
            "{}skip_tables = [\"shop.tmp_*\", \"shop.audit\"]\non_keyless = \"fail\"\n\
             [[tables]]\nmatch = \"shop.*\"\nindex = \"scratch\"\n",
            MINIMAL
        );
        let c = load_str(&text).unwrap();
        c.validate().unwrap();
        let index = |t: &str| c.rule_for("shop", t).map(|r| r.index_for("shop", t));
        assert_eq!(index("orders").as_deref(), Some("shop.orders"));
        assert_eq!(index("tmp_1").as_deref(), Some("scratch"));
        assert_eq!(index("audit").as_deref(), Some("scratch"));
        assert_eq!(index("audit2").as_deref(), Some("shop.audit2"));
        assert_eq!(c.tables[0].keyless_policy(), KeylessPolicy::Fail);
        assert_eq!(c.tables[1].keyless_policy(), KeylessPolicy::Skip);

        let mut c = load_str(MINIMAL).unwrap();
        c.tables[0].skip_tables = vec!["nodot".into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("tables[0].skip_tables[0]") && e.contains("nodot"),
            "{e}"
        );
        let e = load_str(&format!("{MINIMAL}on_keyless = \"ignore\"\n")).unwrap_err();
        assert!(e.to_string().contains("ignore"), "{e}");
    }

    #[test]
    fn keyless_default_depends_on_the_pattern() {
        assert_eq!(KeylessPolicy::default_for("shop.*"), KeylessPolicy::Skip);
        assert_eq!(KeylessPolicy::default_for("*.orders"), KeylessPolicy::Skip);
        assert_eq!(
            KeylessPolicy::default_for("shop.orders"),
            KeylessPolicy::Fail
        );
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_url("mysql://u:secret@h:1/db"),
            "mysql://u:***@h:1/db"
        );
        let c = load_str(MINIMAL).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
        let text = MINIMAL
            .replace("[mysql]\n", "[mysql]\npassword = \"secret-my\"\n")
            .replace(
                "[elasticsearch]\n",
                "[elasticsearch]\nbearer_token = \"secret-bearer\"\n",
            );
        let text = format!("{text}\n[http]\nusername = \"u\"\npassword = \"secret-http\"\n");
        let c = load_str(&text).unwrap();
        c.validate().unwrap();
        let debug = format!(
            "{c:?} {:?} {}",
            c.mysql.password,
            c.http.password.clone().unwrap()
        );
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        let es = MINIMAL.replace(
            "[elasticsearch]\n",
            "[elasticsearch]\napi_key = \"secret-key\"\n",
        );
        assert!(!format!("{:?}", load_str(&es).unwrap()).contains("secret"));
    }

    #[test]
    fn preferred_is_the_default_tls_mode_and_security_keys_are_validated() {
        let c = load_str(MINIMAL).unwrap();
        assert_eq!(c.mysql.tls_mode, TlsMode::Preferred);
        let https = MINIMAL.replace("http://127.0.0.1:9200", "https://127.0.0.1:9200");
        let bad = [
            (
                "[mysql]\n",
                "tls_mode = \"disabled\"\ntls_ca_file = \"/ca\"\n",
                "mysql.tls_ca_file",
            ),
            (
                "[mysql]\n",
                "tls_mode = \"required\"\ntls_ca_file = \"/ca\"\n",
                "verify_ca",
            ),
            (
                "[mysql]\n",
                "tls_mode = \"verify_ca\"\ntls_cert_file = \"/c\"\n",
                "mysql.tls_key_file",
            ),
            (
                "[mysql]\n",
                "password = \"a\"\npassword_file = \"/p\"\n",
                "mysql.password_file",
            ),
            (
                "[elasticsearch]\n",
                "username = \"u\"\napi_key = \"k\"\n",
                "choose one way",
            ),
            (
                "[elasticsearch]\n",
                "bearer_token = \"t\"\napi_key_file = \"/k\"\n",
                "choose one way",
            ),
            (
                "[elasticsearch]\n",
                "password = \"p\"\n",
                "elasticsearch.username",
            ),
            (
                "[elasticsearch]\n",
                "tls_ca_file = \"/ca\"\n",
                "no elasticsearch URL is https",
            ),
            (
                "[elasticsearch]\n",
                "ca_fingerprint = \"12:34\"\n",
                "elasticsearch.ca_fingerprint",
            ),
            (
                "[elasticsearch]\n",
                "tls_key_file = \"/k\"\n",
                "elasticsearch.tls_cert_file",
            ),
        ];
        for (section, lines, expected) in bad {
            let base = if lines.contains("tls_ca_file") && section.contains("elastic") {
                MINIMAL.to_owned()
            } else {
                https.clone()
            };
            let c = load_str(&base.replace(section, &format!("{section}{lines}"))).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(expected), "{lines}: {e}");
        }
        for (lines, expected) in [
            ("username = \"u\"\n", "http.password"),
            ("password = \"p\"\n", "http.username"),
            ("tls_cert_file = \"/c\"\n", "http.tls_key_file"),
        ] {
            let c = load_str(&format!("{MINIMAL}\n[http]\n{lines}")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(expected), "{lines}: {e}");
        }
        let in_url = https
            .replace("https://", "https://u:secret@")
            .replace("[elasticsearch]\n", "[elasticsearch]\napi_key = \"k\"\n");
        let e = load_str(&in_url)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("elasticsearch.url") && !e.contains("secret"),
            "{e}"
        );
        let good = https.replace(
            "[elasticsearch]\n",
            &format!(
                "[elasticsearch]\nca_fingerprint = \"{}\"\n",
                "ab:".repeat(31) + "ab"
            ),
        );
        load_str(&good).unwrap().validate().unwrap();
    }
}
