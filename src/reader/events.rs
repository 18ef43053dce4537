//! Binlog event facts that `mysql_common` does not parse for us: MariaDB's own
//! events, and how a query event bounds a transaction.

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

/// Flag in a MariaDB GTID event: the transaction is one statement with no COMMIT/XID.
const FL_STANDALONE: u8 = 1;

/// Reads a MariaDB GTID event body: `seq_no` u64, `domain_id` u32, flags u8.
/// Returns the GTID and whether the transaction is standalone (DDL).
pub fn parse_mariadb_gtid(body: &[u8], server_id: u32) -> Option<(MariaGtid, bool)> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    let flags = *body.get(12)?;
    Some((
        MariaGtid {
            domain,
            server: server_id,
            seq,
        },
        flags & FL_STANDALONE != 0,
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
/// A message saying what is wrong with the payload.
pub fn check_payload(event: &mysql_common::binlog::events::Event) -> Result<(), String> {
    use std::io::Read;
    let payload: mysql_common::binlog::events::TransactionPayloadEvent<'_> = event
        .read_event()
        .map_err(|e| format!("unreadable transaction payload event: {e}"))?;
    let mut reader = payload
        .decompressed()
        .map_err(|e| format!("cannot inflate transaction payload: {e}"))?;
    let mut sink = [0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = reader
            .read(&mut sink)
            .map_err(|e| format!("cannot inflate transaction payload: {e}"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let declared = payload.uncompressed_size();
    if declared != 0 && total != declared {
        return Err(format!(
            "transaction payload inflates to {total} bytes, its header says {declared}"
        ));
    }
    Ok(())
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
    match word {
        "BEGIN" => QueryKind::Begin,
        "START" if head.starts_with("START TRANSACTION") => QueryKind::Begin,
        "COMMIT" => QueryKind::Commit,
        "ROLLBACK" if !head.starts_with("ROLLBACK TO") => QueryKind::Rollback,
        _ => QueryKind::Other,
    }
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
        let (g, standalone) = parse_mariadb_gtid(&body, 7).unwrap();
        assert_eq!((g.domain, g.server, g.seq, standalone), (3, 7, 42, true));
        body[12] = 0;
        assert!(!parse_mariadb_gtid(&body, 7).unwrap().1);
        assert!(parse_mariadb_gtid(&body[..10], 7).is_none());
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
