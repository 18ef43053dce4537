//! Where we are in the change history: binlog file+offset, GTID state, and the
//! external document version derived from them.
//!
//! The version is the one piece of state that must never go backwards (SPEC §2.2),
//! so its derivation lives here as one pure function, [`Version::next`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A place in one server's binlog: the file and the byte offset of the next event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BinlogPosition {
    /// Binlog file name as the server reports it (`binlog.000003`).
    pub file: String,
    /// Offset of the next event to read in `file`.
    pub pos: u64,
}

impl BinlogPosition {
    /// Builds a position.
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        Self {
            file: file.into(),
            pos,
        }
    }

    /// The numeric suffix of the file name (`binlog.000012` → 12), used for ordering.
    fn file_seq(&self) -> Option<u64> {
        self.file.rsplit('.').next()?.parse().ok()
    }
}

impl PartialOrd for BinlogPosition {
    /// Positions compare across files by the file's sequence suffix; files with
    /// different base names are not comparable.
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        let base = |p: &Self| p.file.rsplit_once('.').map(|(b, _)| b.to_owned());
        if base(self) != base(other) {
            return None;
        }
        Some(
            self.file_seq()?
                .cmp(&other.file_seq()?)
                .then(self.pos.cmp(&other.pos)),
        )
    }
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// Error for a position or GTID text that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {what} `{text}`: {why}")]
pub struct ParseError {
    what: &'static str,
    text: String,
    why: &'static str,
}

impl ParseError {
    fn new(what: &'static str, text: &str, why: &'static str) -> Self {
        Self {
            what,
            text: text.to_owned(),
            why,
        }
    }
}

impl FromStr for BinlogPosition {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (file, pos) = s
            .rsplit_once(':')
            .ok_or_else(|| ParseError::new("binlog position", s, "expected FILE:OFFSET"))?;
        if file.is_empty() {
            return Err(ParseError::new("binlog position", s, "empty file name"));
        }
        let pos = pos
            .parse()
            .map_err(|_| ParseError::new("binlog position", s, "offset is not a number"))?;
        Ok(Self::new(file, pos))
    }
}

/// MariaDB GTID `domain-server-seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MariaGtid {
    /// Replication domain.
    pub domain: u32,
    /// Server that originated the transaction.
    pub server: u32,
    /// Sequence number within the domain.
    pub seq: u64,
}

/// The set of transactions applied up to a position, in the server's own GTID flavour.
///
/// MariaDB keeps the last GTID per domain (`0-1-100,1-2-7`); MySQL keeps a set of
/// intervals per source UUID (`3e11fa47-…:1-100:105`), optionally tagged (`uuid:tag:1-5`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum GtidState {
    /// No GTID information (MySQL with `gtid_mode=OFF`).
    #[default]
    None,
    /// MariaDB: domain → last GTID in that domain.
    MariaDb(BTreeMap<u32, MariaGtid>),
    /// MySQL: `uuid[:tag]` → sorted, disjoint, inclusive intervals.
    MySql(BTreeMap<String, Vec<(u64, u64)>>),
}

impl GtidState {
    /// Parses a MariaDB GTID list (`0-1-100,1-2-7`; empty text is an empty list).
    ///
    /// # Errors
    /// A part that is not `domain-server-seq`.
    pub fn parse_mariadb(text: &str) -> Result<Self, ParseError> {
        let mut map = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split('-');
            let bad = || ParseError::new("MariaDB GTID", part, "expected DOMAIN-SERVER-SEQ");
            let domain = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let server = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let seq = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            if it.next().is_some() {
                return Err(bad());
            }
            map.insert(
                domain,
                MariaGtid {
                    domain,
                    server,
                    seq,
                },
            );
        }
        Ok(Self::MariaDb(map))
    }

    /// Parses a MySQL GTID set (`uuid:1-5:7,uuid2:tag:1-3`; empty text is an empty set).
    ///
    /// # Errors
    /// Malformed intervals.
    pub fn parse_mysql(text: &str) -> Result<Self, ParseError> {
        let mut map: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        let mut sid = String::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split(':');
            let uuid = fields.next().unwrap_or_default().to_ascii_lowercase();
            if uuid.len() != 36 {
                return Err(ParseError::new("MySQL GTID set", part, "bad source UUID"));
            }
            sid.clone_from(&uuid);
            for f in fields {
                if f.is_empty() || !f.as_bytes()[0].is_ascii_digit() {
                    // A tag: following intervals belong to `uuid:tag`.
                    sid = format!("{uuid}:{}", f.to_ascii_lowercase());
                    continue;
                }
                let bad = || ParseError::new("MySQL GTID set", part, "bad interval");
                let (a, b) = match f.split_once('-') {
                    Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                    None => {
                        let n = f.parse().map_err(|_| bad())?;
                        (n, n)
                    }
                };
                if a == 0 || b < a {
                    return Err(bad());
                }
                let ivs = map.entry(sid.clone()).or_default();
                ivs.push((a, b));
                normalize(ivs);
            }
        }
        Ok(Self::MySql(map))
    }

    /// Records a MariaDB transaction's GTID.
    pub fn add_mariadb(&mut self, gtid: MariaGtid) {
        if !matches!(self, Self::MariaDb(_)) {
            *self = Self::MariaDb(BTreeMap::new());
        }
        if let Self::MariaDb(map) = self {
            map.insert(gtid.domain, gtid);
        }
    }

    /// Records a MySQL transaction's GTID (`sid` is `uuid` or `uuid:tag`).
    pub fn add_mysql(&mut self, sid: &str, gno: u64) {
        if !matches!(self, Self::MySql(_)) {
            *self = Self::MySql(BTreeMap::new());
        }
        if let Self::MySql(map) = self {
            add_interval(map.entry(sid.to_owned()).or_default(), gno);
        }
    }

    /// Whether no GTID information is held.
    pub fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }
}

fn add_interval(ivs: &mut Vec<(u64, u64)>, n: u64) {
    ivs.push((n, n));
    normalize(ivs);
}

fn normalize(ivs: &mut Vec<(u64, u64)>) {
    ivs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
    for &(a, b) in ivs.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *ivs = out;
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => Ok(()),
            Self::MariaDb(map) => {
                let mut first = true;
                for g in map.values() {
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    write!(f, "{}-{}-{}", g.domain, g.server, g.seq)?;
                }
                Ok(())
            }
            Self::MySql(map) => {
                let mut first = true;
                for (sid, ivs) in map {
                    if !first {
                        f.write_str(",")?;
                    }
                    first = false;
                    f.write_str(sid)?;
                    for (a, b) in ivs {
                        if a == b {
                            write!(f, ":{a}")?;
                        } else {
                            write!(f, ":{a}-{b}")?;
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// External document version (`version_type=external_gte`).
///
/// Every transaction in the binlog, whether or not it touches a synced table, gets
/// the next version; all changes of one transaction share it (external_gte accepts
/// an equal version, and per-key order inside a transaction is kept by the lanes).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Version(pub u64);

impl Version {
    /// Bits below the timestamp: room for 2^20 (≈1M) transactions per second
    /// before the counter borrows from the next second.
    pub const SEQ_BITS: u32 = 20;

    /// The version of the transaction that follows `self` and started at
    /// `unix_seconds` (the binlog event header time).
    ///
    /// `max(prev + 1, seconds << 20)`: it grows by at least one per transaction, so
    /// replaying from a checkpoint (which stores `prev`) yields the same versions;
    /// and it is floored by the clock, so it keeps growing after a failover to a
    /// server whose offsets start over, or after a lost checkpoint, without
    /// depending on which tables are configured.
    pub fn next(self, unix_seconds: u32) -> Version {
        let floor = u64::from(unix_seconds) << Self::SEQ_BITS;
        Version(self.0.saturating_add(1).max(floor))
    }

    /// How far ahead of a version about to be written the stored lease reaches: a
    /// minute of the clock floor, so a stream following the clock renews it about
    /// once a minute.
    pub const LEASE_AHEAD: u64 = 60 << Self::SEQ_BITS;

    /// The lease to store before writing `self`.
    pub fn lease(self) -> Version {
        Version(self.0.saturating_add(Self::LEASE_AHEAD))
    }

    /// Whether this is the zero version (nothing written yet).
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether the stream at `here` has read everything up to `at`. Positions of different
/// binlog base names never compare (another server): such a chunk is never emitted, and the
/// worker's window is invalidated by the reconnect instead.
pub fn reached(here: &BinlogPosition, at: &BinlogPosition) -> bool {
    // An emptied position (see `invalidate_all`) is due at once, to be refused.
    at.file.is_empty()
        || matches!(
            here.partial_cmp(at),
            Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn position_round_trips_and_orders_across_files() {
        let p: BinlogPosition = "mysql-bin.000002:1234".parse().unwrap();
        assert_eq!(p, BinlogPosition::new("mysql-bin.000002", 1234));
        assert_eq!(p.to_string(), "mysql-bin.000002:1234");
        let later = BinlogPosition::new("mysql-bin.000010", 4);
        assert!(p < later);
        assert!(BinlogPosition::new("mysql-bin.000002", 5) < p);
        assert_eq!(p.partial_cmp(&BinlogPosition::new("other.000001", 4)), None);
        assert!("nofile".parse::<BinlogPosition>().is_err());
        assert!(":4".parse::<BinlogPosition>().is_err());
    }

    #[test]
    fn mariadb_gtid_list_round_trips() {
        let mut g = GtidState::parse_mariadb("0-1-100, 1-2-7").unwrap();
        assert_eq!(g.to_string(), "0-1-100,1-2-7");
        g.add_mariadb(MariaGtid {
            domain: 0,
            server: 3,
            seq: 101,
        });
        assert_eq!(g.to_string(), "0-3-101,1-2-7");
        assert!(GtidState::parse_mariadb("0-1").is_err());
        assert_eq!(GtidState::parse_mariadb("").unwrap().to_string(), "");
    }

    #[test]
    fn mysql_gtid_set_merges_intervals() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let mut g = GtidState::parse_mysql(&format!("{u}:1-5:7")).unwrap();
        g.add_mysql(u, 6);
        assert_eq!(g.to_string(), format!("{u}:1-7"));
        g.add_mysql(u, 9);
        g.add_mysql(&format!("{u}:blue"), 1);
        assert_eq!(g.to_string(), format!("{u}:1-7:9,{u}:blue:1"));
        let tagged = GtidState::parse_mysql(&format!("{u}:1-2:blue:4")).unwrap();
        assert_eq!(tagged.to_string(), format!("{u}:1-2,{u}:blue:4"));
        assert!(GtidState::parse_mysql("nope:1").is_err());
        assert!(GtidState::parse_mysql(&format!("{u}:5-2")).is_err());
    }

    #[test]
    fn version_is_floored_by_clock_and_strictly_grows() {
        let v0 = Version(0);
        let v1 = v0.next(1_700_000_000);
        assert_eq!(v1.0, 1_700_000_000u64 << 20);
        assert_eq!(v1.next(1_700_000_000).0, v1.0 + 1);
        // A transaction stamped earlier (long transaction, clock skew after failover)
        // still gets a larger version.
        assert_eq!(v1.next(1_600_000_000).0, v1.0 + 1);
        assert_eq!(v1.next(1_700_000_001).0, 1_700_000_001u64 << 20);
    }

    proptest! {
        #[test]
        fn version_sequence_is_monotonic_and_replay_stable(
            stamps in proptest::collection::vec(0u32..2_000_000_000, 1..200),
            cut in 0usize..200,
        ) {
            let mut v = Version(0);
            let mut all = Vec::new();
            for &s in &stamps {
                let n = v.next(s);
                prop_assert!(n > v);
                v = n;
                all.push(v);
            }
            // Replaying from a checkpoint taken after `cut` transactions gives the same versions.
            let cut = cut.min(stamps.len());
            let mut r = if cut == 0 { Version(0) } else { all[cut - 1] };
            for (i, &s) in stamps.iter().enumerate().skip(cut) {
                r = r.next(s);
                prop_assert_eq!(r, all[i]);
            }
        }
    }
}
