//! The checkpoint file: what it contains and how it is written atomically.
//!
//! Write path: temp file in the same directory, fsync, rename over the old file,
//! fsync the directory. Only the final name is ever read, so a torn temp file left
//! by a crash is never loaded.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::copy::TableCopy;
use super::rebuild::Rebuild;
use crate::position::{BinlogPosition, GtidState, ParseError, Version};

/// Why a text is not a checkpoint this binlog2es can read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not the JSON of a checkpoint.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// Written by a binlog2es with another file format.
    #[error("format {0} is not supported (this binlog2es reads format {FORMAT_VERSION})")]
    Version(u32),
    /// The GTID state does not parse.
    #[error("{0}")]
    Gtid(#[from] ParseError),
    /// `updated_at` is not an RFC 3339 time.
    #[error("updated_at: {0}")]
    UpdatedAt(#[from] humantime::TimestampError),
}

/// Current file format; older formats must keep loading.
pub const FORMAT_VERSION: u32 = 1;

/// Errors of the checkpoint stage.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading the file failed.
    #[error("cannot read checkpoint {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the file failed.
    #[error("cannot write checkpoint {path}: {source} (is the directory writable?)")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file exists but is not a checkpoint we understand.
    #[error(
        "checkpoint {path} is corrupt: {message}; restore a backup, or delete it to start \
         again from the binlog's current end (changes in between are then not synced)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint belongs to another server and GTIDs cannot bridge the gap.
    #[error(
        "checkpoint {path} was written for server `{expected}`, but connected to `{actual}`; \
         positions of one server mean nothing on another. Enable GTIDs to resume after a \
         failover, or delete the checkpoint to start over"
    )]
    ForeignServer {
        /// The file.
        path: PathBuf,
        /// Identity in the checkpoint.
        expected: String,
        /// Identity of the connected server.
        actual: String,
    },
}

/// Server flavour, which decides how GTIDs are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// MySQL (GTID sets of UUID intervals).
    Mysql,
    /// MariaDB (GTID list of domain-server-seq).
    Mariadb,
}

/// Which server a position belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// MySQL or MariaDB.
    pub flavor: Flavor,
    /// `server_uuid` on MySQL; server_id, host name and data dir on MariaDB.
    pub id: String,
}

impl std::fmt::Display for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.flavor, self.id)
    }
}

/// Everything needed to resume: the end of the last fully acknowledged transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Server the position belongs to.
    pub server: ServerIdentity,
    /// Next event to read after the last acknowledged transaction.
    pub position: BinlogPosition,
    /// GTID state at `position` (used to resume on another server).
    pub gtid: GtidState,
    /// Version of the last acknowledged transaction.
    pub version: Version,
    /// When this state was written.
    pub updated_at: SystemTime,
    /// Tables whose copy (snapshot or re-sync) is not finished, with their progress.
    pub copies: Vec<TableCopy>,
    /// Index rebuilds in progress (SPEC §10).
    pub rebuilds: Vec<Rebuild>,
    /// Every version written to Elasticsearch so far is at most this (versions are leased
    /// ahead of the committed one); a resume on another server starts above it.
    pub version_lease: Version,
    /// Transactions (tickets) committed by this process so far; not stored.
    pub tickets: u64,
    /// While an XA transaction is prepared but not yet committed or rolled back: the
    /// state just before its PREPARE, which is what gets stored, since a restart must
    /// read the PREPARE again (its rows are only held in memory). `None` otherwise.
    pub pinned: Option<Box<Checkpoint>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    format: u32,
    server: ServerIdentity,
    position: BinlogPosition,
    gtid: Option<String>,
    version: Version,
    updated_at: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    copies: Vec<TableCopy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rebuilds: Vec<Rebuild>,
    #[serde(default, skip_serializing_if = "Version::is_zero")]
    version_lease: Version,
}

impl Checkpoint {
    /// The state to store and resume from: [`Checkpoint::pinned`] if set, else this one.
    pub fn durable(&self) -> &Checkpoint {
        match &self.pinned {
            Some(p) => p,
            None => self,
        }
    }

    /// The JSON text of this checkpoint (of its [`Checkpoint::durable`] state).
    pub fn encode(&self) -> String {
        let this = self.durable();
        let gtid = (!this.gtid.is_none()).then(|| this.gtid.to_string());
        let file = FileV1 {
            format: FORMAT_VERSION,
            server: this.server.clone(),
            position: this.position.clone(),
            gtid,
            version: this.version,
            updated_at: humantime::format_rfc3339_seconds(this.updated_at).to_string(),
            copies: this.copies.clone(),
            rebuilds: this.rebuilds.clone(),
            // The lease is the live one: it covers every version written so far.
            version_lease: self.version_lease,
        };
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_string_pretty(&file).unwrap_or_default() + "\n"
    }

    /// Parses checkpoint JSON text.
    ///
    /// # Errors
    /// What is wrong with the text.
    pub fn decode(text: &str) -> Result<Self, FormatError> {
        let file: FileV1 = serde_json::from_str(text)?;
        if file.format != FORMAT_VERSION {
            return Err(FormatError::Version(file.format));
        }
        let gtid = match (&file.gtid, file.server.flavor) {
            (None, _) => GtidState::None,
            (Some(g), Flavor::Mariadb) => GtidState::parse_mariadb(g)?,
            (Some(g), Flavor::Mysql) => GtidState::parse_mysql(g)?,
        };
        let updated_at = humantime::parse_rfc3339(&file.updated_at)?;
        Ok(Self {
            server: file.server,
            position: file.position,
            gtid,
            version: file.version,
            updated_at,
            copies: file.copies,
            rebuilds: file.rebuilds,
            version_lease: file.version_lease,
            tickets: 0,
            pinned: None,
        })
    }
}

/// The checkpoint file on disk.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    path: PathBuf,
}

impl CheckpointStore {
    /// A store at `path` (nothing is touched yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the checkpoint; `None` when there is none yet.
    ///
    /// # Errors
    /// Unreadable or corrupt file.
    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        Checkpoint::decode(&text)
            .map(Some)
            .map_err(|e| CheckpointError::Corrupt {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    /// Checks that the directory exists and is writable, creating it if needed.
    ///
    /// # Errors
    /// The directory cannot be created or written.
    pub fn ensure_writable(&self) -> Result<(), CheckpointError> {
        let dir = self.dir();
        let werr = |source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(werr)?;
        let probe = dir.join(format!(".binlog2es-probe-{}", std::process::id()));
        fs::write(&probe, b"").map_err(werr)?;
        let _ = fs::remove_file(&probe);
        Ok(())
    }

    /// Writes atomically: temp file, fsync, rename, fsync of the directory.
    ///
    /// # Errors
    /// Any I/O failure; the previous checkpoint then stays in place.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let werr = |source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.dir();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "checkpoint".into());
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            let mut f = fs::File::create(&tmp).map_err(werr)?;
            f.write_all(checkpoint.encode().as_bytes()).map_err(werr)?;
            f.sync_all().map_err(werr)?;
        }
        fs::rename(&tmp, &self.path).map_err(werr)?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(werr)?;
        Ok(())
    }

    fn dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }
}

/// Seconds since `t` (for lag and status output).
pub fn age(t: SystemTime) -> Duration {
    SystemTime::now().duration_since(t).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn sample() -> Checkpoint {
        Checkpoint {
            server: ServerIdentity {
                flavor: Flavor::Mariadb,
                id: "server_id=1 host=db1 datadir=/var/lib/mysql/".into(),
            },
            position: BinlogPosition::new("binlog.000003", 1234),
            gtid: GtidState::parse_mariadb("0-1-42").unwrap(),
            version: Version(1_782_200_000_000_000),
            updated_at: UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            copies: Vec::new(),
            rebuilds: Vec::new(),
            version_lease: Version(0),
            tickets: 0,
            pinned: None,
        }
    }

    /// The committed format: changing it breaks every deployed checkpoint.
    const GOLDEN_V1: &str = r#"{
  "format": 1,
  "server": {
    "flavor": "mariadb",
    "id": "server_id=1 host=db1 datadir=/var/lib/mysql/"
  },
  "position": {
    "file": "binlog.000003",
    "pos": 1234
  },
  "gtid": "0-1-42",
  "version": 1782200000000000,
  "updated_at": "2026-11-18T11:06:40Z"
}
"#;

    #[test]
    fn encoding_is_pinned() {
        assert_eq!(sample().encode(), GOLDEN_V1);
        assert_eq!(Checkpoint::decode(GOLDEN_V1).unwrap(), sample());
    }

    #[test]
    fn mysql_gtid_set_round_trips() {
        let mut c = sample();
        c.server.flavor = Flavor::Mysql;
        c.gtid = GtidState::parse_mysql("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9").unwrap();
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
        c.gtid = GtidState::None;
        assert!(c.encode().contains("\"gtid\": null"));
        assert_eq!(Checkpoint::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn copy_progress_round_trips_and_old_files_load() {
        use crate::checkpoint::copy::KeyValue;
        let mut c = sample();
        c.copies.push(TableCopy {
            db: "shop".into(),
            table: "orders".into(),
            after: Some(vec![KeyValue::Uint(42), KeyValue::Bytes("YQ==".into())]),
            rows: 1000,
            since: Version(7),
            into: None,
        });
        let text = c.encode();
        assert!(text.contains("\"copies\""), "{text}");
        assert_eq!(Checkpoint::decode(&text).unwrap(), c);
        // Files without the field (no copy running, or written before it existed) load.
        assert!(Checkpoint::decode(GOLDEN_V1).unwrap().copies.is_empty());
    }

    #[test]
    fn rebuilds_round_trip_and_old_files_have_none() {
        use crate::checkpoint::rebuild::{Phase, Rebuild};
        let mut c = sample();
        c.rebuilds.push(Rebuild {
            index: "orders".into(),
            target: "orders-2".into(),
            old: "orders-1".into(),
            phase: Phase::Switching,
            since: Version(9),
            listed: true,
        });
        c.copies.push(TableCopy {
            db: "shop".into(),
            table: "orders".into(),
            after: None,
            rows: 0,
            since: Version(9),
            into: Some("orders-2".into()),
        });
        let text = c.encode();
        assert!(text.contains("\"phase\": \"switching\""), "{text}");
        assert_eq!(Checkpoint::decode(&text).unwrap(), c);
        assert!(Checkpoint::decode(GOLDEN_V1).unwrap().rebuilds.is_empty());
    }

    #[test]
    fn corrupt_and_future_files_are_refused() {
        assert!(Checkpoint::decode("{\"format\": 1").is_err());
        assert!(Checkpoint::decode(&GOLDEN_V1.replace("\"format\": 1", "\"format\": 9")).is_err());
        assert!(Checkpoint::decode("").is_err());
    }

    #[test]
    fn save_then_load_and_torn_temp_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("checkpoint.json"));
        assert!(store.load().unwrap().is_none());
        store.ensure_writable().unwrap();
        store.save(&sample()).unwrap();
        // A crash mid-write leaves a torn temp file; it must never be read.
        std::fs::write(dir.path().join(".checkpoint.json.tmp"), "{\"form").unwrap();
        assert_eq!(store.load().unwrap(), Some(sample()));
        std::fs::write(store.path(), "garbage").unwrap();
        assert!(matches!(store.load(), Err(CheckpointError::Corrupt { .. })));
    }
}
