//! Walking a binlog file offline through the daemon's own decoding path (the table map
//! through `schema`, each rows event through `decode::rows::decode_rows_event`), for the
//! sample tests and `examples/dump_binlog.rs`. Included by path.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};

use binlog2es::decode::RowDecoder;
use binlog2es::decode::rows::{Op, decode_rows_event};
use binlog2es::schema::TableSchema;
use mysql_common::binlog::BinlogFileHeader;
use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::{
    Event, EventData, RowsEventData, TableMapEvent, TransactionPayloadEvent,
};

use crate::offline;

/// One decoded row change.
#[derive(Debug, Clone)]
pub struct Change {
    /// `db.table`.
    pub table: String,
    /// insert, update, partial_update, delete.
    pub op: &'static str,
    pub id: String,
    /// `_source` JSON text (empty for deletes).
    pub source: String,
}

/// What one file gave.
#[derive(Debug, Default)]
pub struct Decoded {
    pub server_version: String,
    pub changes: Vec<Change>,
    /// Located errors (table / column / event offset in the message).
    pub errors: Vec<String>,
}

pub fn samples_dir() -> PathBuf {
    // BINLOG2ES_SAMPLES_DIR points elsewhere (or at nothing, to check the skip).
    std::env::var_os("BINLOG2ES_SAMPLES_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/binlog-samples"),
        PathBuf::from,
    )
}

/// True (after saying so once on stderr) when the sample set is not next to this repository,
/// as in a clone of it alone: the sample tests then skip instead of failing.
pub fn samples_absent(suite: &str) -> bool {
    absent_notice(suite, &samples_dir())
}

/// The check behind [`samples_absent`], for suites with their own path.
pub fn absent_notice(suite: &str, dir: &Path) -> bool {
    static SAID: std::sync::Once = std::sync::Once::new();
    if dir.join("INDEX.json").is_file() {
        return false;
    }
    SAID.call_once(|| {
        use std::io::Write;
        // Straight to the process's stderr: the test harness captures eprintln! of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "{suite}: SKIPPED, {} is absent (the shared binlog sample set; place it there to run these tests)",
            dir.display()
        );
    });
    true
}

pub struct Walker {
    reader: EventStreamReader,
    schemas: HashMap<u64, Result<TableSchema, String>>,
    decoder: RowDecoder,
    out: Decoded,
    offset: u64,
}

impl Walker {
    pub fn schema_for(tme: &TableMapEvent<'_>) -> Result<TableSchema, String> {
        offline::offline_schema(tme)
    }

    fn handle(&mut self, event: &Event) {
        let kind = event.header().event_type_raw();
        if kind == EventType::FORMAT_DESCRIPTION_EVENT as u8 {
            if let Ok(Some(EventData::FormatDescriptionEvent(fde))) = event.read_data() {
                self.out.server_version = fde.server_version().into_owned();
            }
            return;
        }
        if kind == EventType::TABLE_MAP_EVENT as u8 {
            match event.read_event::<TableMapEvent<'_>>() {
                Ok(tme) => {
                    let schema = Self::schema_for(&tme);
                    self.schemas.insert(tme.table_id(), schema);
                }
                Err(e) => self
                    .out
                    .errors
                    .push(format!("at {}: table map: {e}", self.offset)),
            }
            return;
        }
        let data = match event.read_data() {
            Ok(Some(EventData::RowsEvent(rows))) => rows,
            Ok(_) => return,
            Err(e) => {
                // Only rows events matter here; others (pre-GA layouts) may not parse.
                if matches!(kind, 19..=25 | 30..=32 | 39) {
                    self.out
                        .errors
                        .push(format!("at {}: rows event: {e}", self.offset));
                }
                return;
            }
        };
        if let Err(e) = self.rows(&data) {
            self.out.errors.push(format!("at {}: {e}", self.offset));
        }
    }

    fn rows(&mut self, rows: &RowsEventData<'_>) -> Result<(), String> {
        let schema = match self.schemas.get(&rows.table_id()) {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Err(e.clone()),
            None => return Err("rows event without a table map".into()),
        };
        let event = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => "insert",
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => "delete",
            RowsEventData::PartialUpdateRowsEvent(_) => "partial_update",
            _ => "update",
        };
        // The daemon's own path: the reader calls exactly this.
        let changes =
            decode_rows_event(rows, schema, &mut self.decoder, None).map_err(|e| e.to_string())?;
        for change in changes {
            let (op, source) = match change.op {
                Op::Index(source) => (event, String::from_utf8(source.to_vec()).unwrap()),
                Op::Delete => ("delete", String::new()),
                // Plain rules (all the samples use) never ask for a refresh.
                Op::Refresh(_) => ("refresh", String::new()),
            };
            self.out.changes.push(Change {
                table: schema.qualified(),
                op,
                id: change.id,
                source,
            });
        }
        Ok(())
    }
}

/// Decodes every event of a sample file. Only an I/O or framing error of the event stream
/// itself ends the walk early (recorded as an error).
pub fn decode_file(relative: &str) -> Decoded {
    let path = samples_dir().join(relative);
    let mut input = BufReader::new(File::open(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")));
    let mut walker = Walker {
        reader: EventStreamReader::new(BinlogVersion::Version4),
        schemas: HashMap::new(),
        decoder: RowDecoder::default(),
        out: Decoded::default(),
        offset: 4,
    };
    if let Err(e) = BinlogFileHeader::read(&mut input) {
        walker.out.errors.push(format!("file header: {e}"));
        return walker.out;
    }
    loop {
        let event = match walker.reader.read(&mut input) {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(e) => {
                walker
                    .out
                    .errors
                    .push(format!("at {}: event stream: {e}", walker.offset));
                break;
            }
        };
        walker.handle(&event);
        if event.header().event_type_raw() == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
            // mysql_async's binlog stream inflates payloads; BinlogFile does not.
            match event.read_event::<TransactionPayloadEvent<'_>>() {
                Ok(tpe) => {
                    let inner = tpe.decompressed().map(|mut r| {
                        let mut all = Vec::new();
                        std::io::Read::read_to_end(&mut r, &mut all).map(|_| all)
                    });
                    match inner {
                        Ok(Ok(bytes)) => {
                            let mut cursor = Cursor::new(bytes);
                            loop {
                                match walker.reader.read_decompressed(&mut cursor) {
                                    Ok(Some(inner)) => walker.handle(&inner),
                                    Ok(None) => break,
                                    Err(e) => {
                                        walker.out.errors.push(format!(
                                            "at {}: payload event: {e}",
                                            walker.offset
                                        ));
                                        break;
                                    }
                                }
                            }
                        }
                        Ok(Err(e)) | Err(e) => walker
                            .out
                            .errors
                            .push(format!("at {}: payload: {e}", walker.offset)),
                    }
                }
                Err(e) => walker
                    .out
                    .errors
                    .push(format!("at {}: payload event: {e}", walker.offset)),
            }
        }
        let end = u64::from(event.header().log_pos());
        if end != 0 {
            walker.offset = end;
        }
    }
    walker.out
}
