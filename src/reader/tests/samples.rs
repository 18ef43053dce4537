//! Reading the shared binlog samples: their events, row counts and the transactions
//! their decoded text names.

use super::*;

pub(super) fn sample(relative: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/binlog-samples"
    ))
    .join(relative)
}

/// The events of a binlog file as the replication stream delivers them: every event of
/// the file, and after a TRANSACTION_PAYLOAD event the events inflated from it.
pub(super) fn stream_events(relative: &str) -> Vec<Event> {
    let path = sample(relative);
    let mut input = BufReader::new(File::open(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")));
    BinlogFileHeader::read(&mut input).unwrap();
    let mut esr = EventStreamReader::new(BinlogVersion::Version4);
    let mut out = Vec::new();
    while let Some(event) = esr.read(&mut input).unwrap() {
        let payload = event.header().event_type_raw() == EventType::TRANSACTION_PAYLOAD_EVENT as u8;
        let inner = if payload {
            let tpe: TransactionPayloadEvent<'_> = event.read_event().unwrap();
            let mut bytes = Vec::new();
            tpe.decompressed().unwrap().read_to_end(&mut bytes).unwrap();
            Some(bytes)
        } else {
            None
        };
        out.push(event);
        if let Some(bytes) = inner {
            let mut cursor = Cursor::new(bytes);
            while let Some(e) = esr.read_decompressed(&mut cursor).unwrap() {
                out.push(e);
            }
        }
    }
    out
}

/// Rows of the rows events of tables matching `synced`, by mysql_common's own row
/// iterator: (written, updated, deleted).
pub(super) fn row_counts(
    events: &[Event],
    synced: impl Fn(&str, &str) -> bool,
) -> (usize, usize, usize) {
    let mut maps: HashMap<u64, TableMapEvent<'static>> = HashMap::new();
    let (mut written, mut updated, mut deleted) = (0, 0, 0);
    for event in events {
        match event.read_data() {
            Ok(Some(EventData::TableMapEvent(tme))) => {
                maps.insert(tme.table_id(), tme.into_owned());
            }
            Ok(Some(EventData::RowsEvent(rows))) => {
                let tme = &maps[&rows.table_id()];
                if !synced(&tme.database_name(), &tme.table_name()) {
                    continue;
                }
                let n = rows.rows(tme).map(Result::unwrap).count();
                match rows {
                    RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => {
                        written += n;
                    }
                    RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => {
                        deleted += n;
                    }
                    _ => updated += n,
                }
            }
            _ => {}
        }
    }
    (written, updated, deleted)
}

/// The (end, GTID) of every transaction in a mariadb-binlog `.decoded.txt`: a
/// `GTID d-s-n trans` line opens it, the next `Xid =` line's `end_log_pos` ends it.
pub(super) fn mariadb_transactions_in_decoded_text(relative: &str) -> Vec<(u64, TxnGtid)> {
    let text = std::fs::read_to_string(sample(relative)).unwrap();
    let end_of = |line: &str| -> u64 {
        let after = line.split("end_log_pos ").nth(1).unwrap();
        after.split(' ').next().unwrap().parse().unwrap()
    };
    let mut out = Vec::new();
    let mut open = None;
    for line in text.lines() {
        if let Some(rest) = line.split("\tGTID ").nth(1) {
            assert!(
                open.is_none(),
                "{relative}: GTID inside a transaction: {line}"
            );
            let gtid = rest.split(' ').next().unwrap();
            let parts: Vec<&str> = gtid.split('-').collect();
            open = Some(TxnGtid::MariaDb(MariaGtid {
                domain: parts[0].parse().unwrap(),
                server: parts[1].parse().unwrap(),
                seq: parts[2].parse().unwrap(),
            }));
        } else if line.contains("\tXid = ") {
            out.push((end_of(line), open.take().unwrap()));
        }
    }
    assert!(open.is_none(), "{relative}: unfinished transaction");
    out
}
