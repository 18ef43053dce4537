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
/// Bytes per bulk request (5 MiB), well under Elasticsearch's 100 MiB limit.
pub const DEFAULT_MAX_BYTES: usize = 5 * 1024 * 1024;
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
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
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
    /// File holding the password (instead of one in the URL).
    pub password_file: Option<PathBuf>,
    /// TLS mode.
    #[serde(default)]
    pub tls_mode: TlsMode,
    /// CA bundle for verify_ca / verify_identity.
    pub tls_ca_file: Option<PathBuf>,
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
            .field("password_file", &self.password_file)
            .field("tls_mode", &self.tls_mode)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .finish()
    }
}

/// MySQL connection security.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain TCP.
    #[default]
    Disabled,
    /// TLS if the server offers it (not available yet: rejected by validate).
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
    pub password: Option<String>,
    /// File holding the basic auth password.
    pub password_file: Option<PathBuf>,
    /// API key (the base64 `id:key` form).
    pub api_key: Option<String>,
    /// File holding the API key.
    pub api_key_file: Option<PathBuf>,
    /// CA bundle for https with a private CA.
    pub tls_ca_file: Option<PathBuf>,
    /// Start-up retry window.
    #[serde(default = "d_connect", deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// Per-request timeout.
    #[serde(default = "d_request", deserialize_with = "duration")]
    pub request_timeout: Duration,
}

impl fmt::Debug for EsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("EsConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field(
                "urls",
                &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("password_file", &self.password_file)
            .field("api_key", &hidden(&self.api_key))
            .field("api_key_file", &self.api_key_file)
            .field("tls_ca_file", &self.tls_ca_file)
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
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Copy policy.
    #[serde(default)]
    pub mode: SnapshotMode,
}

/// When the initial copy runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMode {
    /// Copy first when there is no checkpoint (not available yet).
    Initial,
    /// Never copy; without a checkpoint start at the binlog's end.
    #[default]
    Never,
    /// As initial, and re-copy when the checkpoint was purged (not available yet).
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
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: d_http_listen(),
            ready_max_lag: DEFAULT_READY_MAX_LAG,
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
            create_index: true,
            mapping: BTreeMap::new(),
            index_settings: serde_json::Map::new(),
        }
    }
}

impl TableRule {
    /// Whether `db.table` matches this rule.
    pub fn matches(&self, db: &str, table: &str) -> bool {
        let Some((pd, pt)) = self.pattern.split_once('.') else {
            return false;
        };
        glob(pd, db) && glob(pt, table)
    }

    /// The index name for `db.table` (lowercased: Elasticsearch index names must be).
    pub fn index_for(&self, db: &str, table: &str) -> String {
        self.index
            .replace("{db}", db)
            .replace("{table}", table)
            .to_lowercase()
    }
}

/// `*` matches any run of characters (also empty); everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
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
        if self.mysql.tls_mode == TlsMode::Preferred {
            return Err(ConfigError::invalid(
                "mysql.tls_mode",
                "`preferred` is not supported yet; use `disabled`, `required`, `verify_ca` or `verify_identity`",
            ));
        }
        let urls = self.elasticsearch.all_urls();
        if urls.is_empty() {
            return Err(ConfigError::invalid(
                "elasticsearch.url",
                "missing; set url = \"http://host:9200\"",
            ));
        }
        for u in &urls {
            let parsed = u.parse::<elasticsearch::http::Url>().map_err(|e| {
                ConfigError::invalid("elasticsearch.url", format!("`{}`: {e}", redact_url(u)))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(
                    "elasticsearch.url",
                    "scheme must be http or https",
                ));
            }
        }
        let es = &self.elasticsearch;
        if (es.api_key.is_some() || es.api_key_file.is_some())
            && (es.username.is_some() || es.password.is_some() || es.password_file.is_some())
        {
            return Err(ConfigError::invalid(
                "elasticsearch.api_key",
                "use either an API key or username/password, not both",
            ));
        }
        if es.password.is_some() && es.password_file.is_some() {
            return Err(ConfigError::invalid(
                "elasticsearch.password_file",
                "set password or password_file, not both",
            ));
        }
        if self.checkpoint.path.as_os_str().is_empty() {
            return Err(ConfigError::invalid("checkpoint.path", "must not be empty"));
        }
        match self.snapshot.mode {
            SnapshotMode::Never => {}
            SnapshotMode::Initial | SnapshotMode::WhenNeeded => {
                return Err(ConfigError::invalid(
                    "snapshot.mode",
                    "the initial copy is not available in this version; set mode = \"never\" \
                     (streaming starts at the binlog's current end)",
                ));
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
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("snapshot.mode")
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
    fn secrets_are_redacted() {
        assert_eq!(
            redact_url("mysql://u:secret@h:1/db"),
            "mysql://u:***@h:1/db"
        );
        let c = load_str(MINIMAL).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
