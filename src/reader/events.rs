//! Binlog event facts that `mysql_common` does not parse for us: MariaDB's own
//! events, XA events, and how a query event bounds a transaction.
//!
//! XA transactions as the servers log them (seen on MariaDB 10.11 with
//! `mariadb-binlog`; MySQL from its documentation and source, no sample file has one):
//!
//! | case | MariaDB 10.5+ | MySQL 5.7+ |
//! |---|---|---|
//! | `XA PREPARE` | GTID (flag `FL_PREPARED_XA`), rows, `XA END xid`, `XA_PREPARE_LOG_EVENT` | GTID, `XA START xid`, rows, `XA END xid`, `XA_PREPARE_LOG_EVENT` |
//! | `XA COMMIT xid` | own group: GTID (standalone, `FL_COMPLETED_XA`), `XA COMMIT xid` | own group: GTID, `XA COMMIT xid` |
//! | `XA ROLLBACK xid` (after PREPARE) | as COMMIT, with `XA ROLLBACK xid` | as COMMIT, with `XA ROLLBACK xid` |
//! | `XA COMMIT xid ONE PHASE` | an ordinary transaction (GTID, rows, XID) | as PREPARE, the prepare event's `one_phase` flag set |
//! | `XA ROLLBACK` before PREPARE, empty XA | nothing | nothing |
//!
//! The servers write the xid in statements as `X'gtrid',X'bqual',formatID`.

use crate::checkpoint::Xid;
use crate::position::MariaGtid;

/// MariaDB `ANNOTATE_ROWS_EVENT` (original statement text).
pub const MARIADB_ANNOTATE_ROWS: u8 = 160;
/// MariaDB `BINLOG_CHECKPOINT_EVENT`.
pub const MARIADB_BINLOG_CHECKPOINT: u8 = 161;
/// MariaDB `GTID_EVENT`: starts a transaction.
pub const MARIADB_GTID: u8 = 162;
/// MariaDB `GTID_LIST_EVENT`: GTID state at the start of a file.
pub const MARIADB_GTID_LIST: u8 = 163;
/// MariaDB compressed query/rows events (`log_bin_compress=ON`): 165..=171.
pub const MARIADB_COMPRESSED: std::ops::RangeInclusive<u8> = 165..=171;

/// `XA_PREPARE_LOG_EVENT` (both flavours): ends the group of an `XA PREPARE` (or of a
/// MySQL one-phase `XA COMMIT`).
pub const XA_PREPARE: u8 = 38;

/// Flag in a MariaDB GTID event: the transaction is one statement with no COMMIT/XID.
const FL_STANDALONE: u8 = 1;
/// Flag in a MariaDB GTID event: the group is the `XA PREPARE` of an XA transaction.
const FL_PREPARED_XA: u8 = 64;

/// What a MariaDB GTID event says about the group it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtidEvent {
    /// The group's GTID.
    pub gtid: MariaGtid,
    /// One statement with no COMMIT/XID (DDL, and the XA COMMIT/ROLLBACK groups).
    pub standalone: bool,
    /// The group is an `XA PREPARE`: its rows count only once the XA transaction commits.
    pub prepared_xa: bool,
}

/// Reads a MariaDB GTID event body: `seq_no` u64, `domain_id` u32, flags u8 (the
/// rest, commit id and XA xid, is not needed: the xid is read from the group's end).
pub fn parse_mariadb_gtid(body: &[u8], server_id: u32) -> Option<MariaGtidEvent> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    let flags = *body.get(12)?;
    Some(MariaGtidEvent {
        gtid: MariaGtid {
            domain,
            server: server_id,
            seq,
        },
        standalone: flags & FL_STANDALONE != 0,
        prepared_xa: flags & FL_PREPARED_XA != 0,
    })
}

/// Reads an `XA_PREPARE_LOG_EVENT` body: `one_phase` u8, `formatID` i32,
/// `gtrid_length` u32, `bqual_length` u32, then gtrid and bqual bytes.
/// Returns whether it is a one-phase commit, and the xid.
pub fn parse_xa_prepare(body: &[u8]) -> Option<(bool, Xid)> {
    let one_phase = *body.first()? != 0;
    let format_id = i32::from_le_bytes(body.get(1..5)?.try_into().ok()?);
    let gtrid_len = u32::from_le_bytes(body.get(5..9)?.try_into().ok()?) as usize;
    let bqual_len = u32::from_le_bytes(body.get(9..13)?.try_into().ok()?) as usize;
    // XA limits each part to 64 bytes; more means a corrupt event.
    if gtrid_len > 64 || bqual_len > 64 {
        return None;
    }
    let gtrid = body.get(13..13 + gtrid_len)?.to_vec();
    let bqual = body
        .get(13 + gtrid_len..13 + gtrid_len + bqual_len)?
        .to_vec();
    Some((
        one_phase,
        Xid {
            format_id: i64::from(format_id),
            gtrid,
            bqual,
        },
    ))
}

/// The file name of a rotate event.
///
/// The first (fake) rotate event of a dump arrives before the format description
/// event, so the reader cannot know yet that it ends in a 4-byte CRC32 and leaves
/// those bytes in the name. Binlog names always end in `.` and digits, so 4 extra
/// bytes after such a name (or after the file we asked for) are the checksum.
pub fn rotate_file_name(raw: &[u8], requested: &str) -> String {
    fn looks_like_binlog(name: &[u8]) -> bool {
        match name.iter().rposition(|&b| b == b'.') {
            Some(dot) => {
                dot > 0 && dot + 1 < name.len() && name[dot + 1..].iter().all(u8::is_ascii_digit)
            }
            None => false,
        }
    }
    let n = raw.len();
    let strip = n > 4
        && (raw.starts_with(requested.as_bytes()) && n == requested.len() + 4
            || !looks_like_binlog(raw) && looks_like_binlog(&raw[..n - 4]));
    let name = if strip { &raw[..n - 4] } else { raw };
    String::from_utf8_lossy(name).into_owned()
}

/// Checks that a compressed transaction (MySQL `binlog_transaction_compression`)
/// inflates to its declared size. The binlog stream inflates it again and yields
/// the inner events, but skips a payload it cannot read without saying so, which
/// would silently lose the transaction's rows.
///
/// # Errors
/// What is wrong with the payload.
pub fn check_payload(event: &mysql_common::binlog::events::Event) -> Result<(), PayloadError> {
    use std::io::Read;
    let payload: mysql_common::binlog::events::TransactionPayloadEvent<'_> =
        event.read_event().map_err(PayloadError::Unreadable)?;
    let mut reader = payload.decompressed().map_err(PayloadError::Inflate)?;
    let mut sink = [0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = reader.read(&mut sink).map_err(PayloadError::Inflate)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let declared = payload.uncompressed_size();
    if declared != 0 && total != declared {
        return Err(PayloadError::Size { total, declared });
    }
    Ok(())
}

/// A compressed transaction that cannot be read whole.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The event itself is malformed.
    #[error("unreadable transaction payload event: {0}")]
    Unreadable(std::io::Error),
    /// The compressed stream is corrupt.
    #[error("cannot inflate transaction payload: {0}")]
    Inflate(std::io::Error),
    /// The payload inflates to another size than its header declares.
    #[error("transaction payload inflates to {total} bytes, its header says {declared}")]
    Size {
        /// Bytes inflated.
        total: u64,
        /// Bytes declared.
        declared: u64,
    },
}

/// What a query event means for transaction boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKind {
    /// `BEGIN` / `START TRANSACTION`.
    Begin,
    /// `COMMIT` (ends a transaction of non-XA engines).
    Commit,
    /// `ROLLBACK` (logged for non-transactional engines; ends the group).
    Rollback,
    /// `XA START xid` (MySQL; MariaDB flags the GTID event instead).
    XaStart,
    /// `XA END xid`: no effect on the group.
    XaEnd,
    /// `XA COMMIT xid [ONE PHASE]`.
    XaCommit {
        /// The committed XA transaction.
        xid: Xid,
        /// `ONE PHASE`: the rows are in this group, there was no PREPARE.
        one_phase: bool,
    },
    /// `XA ROLLBACK xid`.
    XaRollback(Xid),
    /// An XA statement whose xid could not be read.
    XaUnreadable,
    /// Anything else: DDL and other statements.
    Other,
}

/// Classifies a query event's text.
pub fn classify_query(sql: &str) -> QueryKind {
    let head: String = sql
        .trim_start()
        .chars()
        .take(20)
        .collect::<String>()
        .to_ascii_uppercase();
    let word = head
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    if word == "XA" {
        return classify_xa(sql);
    }
    match word {
        "BEGIN" => QueryKind::Begin,
        "START" if head.starts_with("START TRANSACTION") => QueryKind::Begin,
        "COMMIT" => QueryKind::Commit,
        "ROLLBACK" if !head.starts_with("ROLLBACK TO") => QueryKind::Rollback,
        _ => QueryKind::Other,
    }
}

/// Classifies an `XA ...` statement.
fn classify_xa(sql: &str) -> QueryKind {
    let mut rest = sql.trim_start();
    let mut words = Vec::new();
    // "XA" and the verb; "XA BEGIN" is a synonym of "XA START".
    for _ in 0..2 {
        let end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        words.push(rest[..end].to_ascii_uppercase());
        rest = rest[end..].trim_start();
    }
    match words[1].as_str() {
        "START" | "BEGIN" => QueryKind::XaStart,
        "END" => QueryKind::XaEnd,
        "COMMIT" => match parse_xid(rest) {
            Some((xid, tail)) => {
                let tail: Vec<String> = tail
                    .split_whitespace()
                    .map(str::to_ascii_uppercase)
                    .collect();
                QueryKind::XaCommit {
                    xid,
                    one_phase: tail == ["ONE", "PHASE"],
                }
            }
            None => QueryKind::XaUnreadable,
        },
        "ROLLBACK" => match parse_xid(rest) {
            Some((xid, _)) => QueryKind::XaRollback(xid),
            None => QueryKind::XaUnreadable,
        },
        _ => QueryKind::Other,
    }
}

/// Parses `gtrid [, bqual [, formatID]]` at the start of `text`; each string is
/// `X'hex'`, `0xhex` or a quoted string. Returns the xid and the text after it.
pub fn parse_xid(text: &str) -> Option<(Xid, &str)> {
    let (gtrid, mut rest) = parse_xid_string(text.trim_start())?;
    let mut xid = Xid {
        format_id: 1,
        gtrid,
        bqual: Vec::new(),
    };
    if let Some(r) = rest.trim_start().strip_prefix(',') {
        let (bqual, r) = parse_xid_string(r.trim_start())?;
        xid.bqual = bqual;
        rest = r;
        if let Some(r) = rest.trim_start().strip_prefix(',') {
            let r = r.trim_start();
            let end = r
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .unwrap_or(r.len());
            xid.format_id = r[..end].parse().ok()?;
            rest = &r[end..];
        }
    }
    Some((xid, rest))
}

/// One string of an xid: `X'hex'`, `0xhex`, `'text'` or `"text"` (doubled quotes escape).
fn parse_xid_string(text: &str) -> Option<(Vec<u8>, &str)> {
    fn hex(digits: &str) -> Option<Vec<u8>> {
        if !digits.len().is_multiple_of(2) {
            return None;
        }
        (0..digits.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
            .collect()
    }
    let bytes = text.as_bytes();
    match bytes.first()? {
        b'X' | b'x' if bytes.get(1) == Some(&b'\'') => {
            let body = &text[2..];
            let end = body.find('\'')?;
            Some((hex(&body[..end])?, &body[end + 1..]))
        }
        b'0' if matches!(bytes.get(1), Some(b'x' | b'X')) => {
            let body = &text[2..];
            let end = body
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(body.len());
            Some((hex(&body[..end])?, &body[end..]))
        }
        &q @ (b'\'' | b'"') => {
            let mut out = Vec::new();
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    c if c == q && bytes.get(i + 1) == Some(&q) => {
                        out.push(q);
                        i += 2;
                    }
                    c if c == q => return Some((out, &text[i + 1..])),
                    b'\\' if i + 1 < bytes.len() => {
                        out.push(bytes[i + 1]);
                        i += 2;
                    }
                    c => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            None
        }
        _ => None,
    }
}

/// Lower-case hyphenated UUID text of a 16-byte source id.
pub fn format_uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_gtid_body() {
        let mut body = Vec::new();
        body.extend_from_slice(&42u64.to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(FL_STANDALONE);
        let e = parse_mariadb_gtid(&body, 7).unwrap();
        let g = e.gtid;
        assert_eq!((g.domain, g.server, g.seq, e.standalone), (3, 7, 42, true));
        assert!(!e.prepared_xa);
        body[12] = 0;
        assert!(!parse_mariadb_gtid(&body, 7).unwrap().standalone);
        assert!(parse_mariadb_gtid(&body[..10], 7).is_none());
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Event bodies as MariaDB 10.11 wrote them for `XA START 'x1'; …; XA PREPARE 'x1';
    /// XA COMMIT 'x1'` and for the xid `'x4','b4',7`.
    #[test]
    fn mariadb_xa_events() {
        let prepare_gtid = unhex("0300000000000000000000004c010000000200783101ff");
        let e = parse_mariadb_gtid(&prepare_gtid, 1).unwrap();
        assert!(e.prepared_xa && !e.standalone);
        let commit_gtid = unhex("0500000000000000000000008d0100000002007831");
        let e = parse_mariadb_gtid(&commit_gtid, 1).unwrap();
        assert!(!e.prepared_xa && e.standalone);

        let (one_phase, xid) = parse_xa_prepare(&unhex("000100000002000000000000007831")).unwrap();
        assert!(!one_phase);
        assert_eq!(
            xid,
            Xid {
                format_id: 1,
                gtrid: b"x1".to_vec(),
                bqual: vec![]
            }
        );
        let (_, xid) = parse_xa_prepare(&unhex("0007000000020000000200000078346234")).unwrap();
        assert_eq!(
            xid,
            Xid {
                format_id: 7,
                gtrid: b"x4".to_vec(),
                bqual: b"b4".to_vec()
            }
        );
        assert_eq!(xid.to_string(), "X'7834',X'6234',7");
        let (one_phase, _) = parse_xa_prepare(&unhex("010100000002000000000000007831")).unwrap();
        assert!(one_phase);
        assert!(parse_xa_prepare(&unhex("0001000000020000000000000078")).is_none());
        assert!(parse_xa_prepare(&unhex("000100000041000000000000007831")).is_none());
    }

    #[test]
    fn xa_statements_are_classified() {
        let x1 = Xid {
            format_id: 1,
            gtrid: b"x1".to_vec(),
            bqual: vec![],
        };
        let x4 = Xid {
            format_id: 7,
            gtrid: b"x4".to_vec(),
            bqual: b"b4".to_vec(),
        };
        assert_eq!(classify_query("XA START X'7831',X'',1"), QueryKind::XaStart);
        assert_eq!(classify_query("xa begin 'a'"), QueryKind::XaStart);
        assert_eq!(classify_query("XA END X'7831',X'',1"), QueryKind::XaEnd);
        assert_eq!(
            classify_query("XA COMMIT X'7831',X'',1"),
            QueryKind::XaCommit {
                xid: x1.clone(),
                one_phase: false
            }
        );
        assert_eq!(
            classify_query("XA COMMIT X'7834',X'6234',7"),
            QueryKind::XaCommit {
                xid: x4.clone(),
                one_phase: false
            }
        );
        assert_eq!(
            classify_query("XA COMMIT 'x1' ONE PHASE"),
            QueryKind::XaCommit {
                xid: x1.clone(),
                one_phase: true
            }
        );
        assert_eq!(
            classify_query("XA ROLLBACK 'x4', \"b4\", 7"),
            QueryKind::XaRollback(x4)
        );
        assert_eq!(
            classify_query("XA ROLLBACK 0x7831"),
            QueryKind::XaRollback(x1)
        );
        assert_eq!(
            classify_query("XA COMMIT 'a''b'"),
            QueryKind::XaCommit {
                xid: Xid {
                    format_id: 1,
                    gtrid: b"a'b".to_vec(),
                    bqual: vec![]
                },
                one_phase: false
            }
        );
        assert_eq!(classify_query("XA COMMIT X'78"), QueryKind::XaUnreadable);
        assert_eq!(classify_query("XA ROLLBACK"), QueryKind::XaUnreadable);
        assert_eq!(classify_query("XA RECOVER"), QueryKind::Other);
    }

    #[test]
    fn rotate_names_lose_a_trailing_checksum() {
        assert_eq!(
            rotate_file_name(b"binlog.000002", "binlog.000001"),
            "binlog.000002"
        );
        assert_eq!(
            rotate_file_name(b"binlog.000001\x8f\x12\x03\xee", ""),
            "binlog.000001"
        );
        assert_eq!(
            rotate_file_name(b"binlog.0000011234", "binlog.000001"),
            "binlog.000001"
        );
        assert_eq!(
            rotate_file_name(b"mysql-bin.000123", "binlog.000001"),
            "mysql-bin.000123"
        );
    }

    /// The real compressed sample inflates cleanly; a corrupted copy is an error.
    #[test]
    fn compressed_payloads_are_checked() {
        use mysql_common::binlog::BinlogFile;
        use mysql_common::binlog::consts::{BinlogVersion, EventType};
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/binlog-samples/rust_mysql_common/transaction_compression.000001"
        );
        let Ok(bytes) = std::fs::read(path) else {
            panic!("sample missing: {path}");
        };
        let file = BinlogFile::new(BinlogVersion::Version4, &bytes[..]).unwrap();
        let mut seen = 0;
        let mut corrupted = 0;
        for ev in file {
            let ev = ev.unwrap();
            if ev.header().event_type_raw() == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
                check_payload(&ev).unwrap();
                seen += 1;
                // Flip bytes inside the compressed data: the check must notice.
                let mut raw = Vec::new();
                ev.write(BinlogVersion::Version4, &mut raw).unwrap();
                let mid = raw.len() / 2;
                for b in &mut raw[mid..mid + 8] {
                    *b ^= 0x5a;
                }
                let fde = ev.fde().clone();
                if let Ok(bad) = mysql_common::binlog::events::Event::read(
                    &fde.with_footer(Default::default()),
                    &raw[..],
                ) {
                    assert!(check_payload(&bad).is_err(), "corruption not detected");
                    corrupted += 1;
                }
            }
        }
        assert!(seen > 0, "no payload event in the sample");
        assert!(corrupted > 0, "no corrupted copy could be built");
    }

    #[test]
    fn queries_are_classified() {
        assert_eq!(classify_query("BEGIN"), QueryKind::Begin);
        assert_eq!(classify_query("  start transaction"), QueryKind::Begin);
        assert_eq!(classify_query("COMMIT"), QueryKind::Commit);
        assert_eq!(classify_query("ROLLBACK"), QueryKind::Rollback);
        assert_eq!(classify_query("ROLLBACK TO SAVEPOINT a"), QueryKind::Other);
        assert_eq!(classify_query("ALTER TABLE t ADD c INT"), QueryKind::Other);
        assert_eq!(classify_query("BEGINNING"), QueryKind::Other);
    }
}
