//! The rows-event decoder reads common after-image values straight from the event bytes
//! (`decode::fast`). Here its changes are compared with those of the value-by-value path
//! (mysql_common's values through `read_image` + `RowDecoder::decode_row`) on every rows
//! event of ../shared/binlog-samples, as they are and with bytes of their row images
//! changed: the same changes, or the same error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/offline.rs"]
mod offline;

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;

use binlog2es::decode::RowDecoder;
use binlog2es::decode::row::read_image;
use binlog2es::decode::rows::{DocChange, Op, decode_rows_event};
use binlog2es::schema::TableSchema;
use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use mysql_common::io::ParseBuf;

/// The plain path (no shaping rule) of `decode_rows_event` with every image read by
/// `read_image`, as it was before the direct reader.
fn by_values(
    rows: &RowsEventData<'_>,
    schema: &TableSchema,
    dec: &mut RowDecoder,
) -> Result<Vec<DocChange>, String> {
    let (is_insert, is_delete) = match rows {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => (true, false),
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => (false, true),
        _ => (false, false),
    };
    let partial = matches!(rows, RowsEventData::PartialUpdateRowsEvent(_));
    let table = schema.qualified();
    let row_err = |e| format!("row image of `{table}`: {e}");
    let missing = |m| format!("rows event of `{table}`: {m}");
    let mut out = Vec::new();
    let mut buf = ParseBuf(rows.rows_data());
    while !buf.is_empty() {
        let before = match rows.columns_before_image() {
            Some(cols) => {
                Some(read_image(&mut buf, &schema.columns, cols, false).map_err(row_err)?)
            }
            None => None,
        };
        let after = match rows.columns_after_image() {
            Some(cols) => {
                Some(read_image(&mut buf, &schema.columns, cols, partial).map_err(row_err)?)
            }
            None => None,
        };
        if is_delete {
            let before = before.ok_or_else(|| missing("delete without before image"))?;
            let id = dec.decode_id(schema, &before).map_err(|e| e.to_string())?;
            out.push(DocChange {
                id,
                op: Op::Delete,
                routing: None,
            });
            continue;
        }
        let after = after.ok_or_else(|| missing("row change without after image"))?;
        let doc = dec
            .decode_row(schema, &after, before.as_deref())
            .map_err(|e| e.to_string())?;
        if !is_insert && let Some(before) = before {
            let old = dec.decode_id(schema, &before).map_err(|e| e.to_string())?;
            if old != doc.id {
                out.push(DocChange {
                    id: old,
                    op: Op::Delete,
                    routing: None,
                });
            }
        }
        out.push(DocChange {
            id: doc.id,
            op: Op::Index(doc.source),
            routing: None,
        });
    }
    Ok(out)
}

/// Both paths on one event; returns whether it decoded.
fn compare(event: &Event, schema: &TableSchema, dec: &mut RowDecoder, what: &str) -> bool {
    let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() else {
        return false;
    };
    let direct = decode_rows_event(&rows, schema, dec, None).map_err(|e| e.to_string());
    let reference = by_values(&rows, schema, dec);
    assert_eq!(direct, reference, "{what}");
    direct.is_ok()
}

/// A small deterministic generator for the changed bytes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// `event` with one to three bytes of its row images replaced.
fn mutated(event: &Event, rng: &mut Lcg) -> Option<Event> {
    let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() else {
        return None;
    };
    let rows_len = rows.rows_data().len();
    let mut raw = Vec::new();
    event.write(BinlogVersion::Version4, &mut raw).ok()?;
    let trailer = raw.len() - 19 - event.data().len();
    let end = raw.len() - trailer;
    let start = end - rows_len;
    if rows_len == 0 {
        return None;
    }
    for _ in 0..=rng.next() % 3 {
        let at = start + (rng.next() as usize) % rows_len;
        raw[at] = rng.next() as u8;
    }
    Event::read(event.fde(), &raw[..]).ok()
}

#[test]
fn direct_reader_equals_mysql_common_values_on_the_samples() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/binlog-samples");
    let Ok(text) = std::fs::read_to_string(dir.join("INDEX.json")) else {
        eprintln!("SKIPPED: {} is absent", dir.display());
        return;
    };
    let index: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut dec = RowDecoder::default();
    let mut rng = Lcg(16);
    let (mut events, mut decoded, mut changed) = (0, 0, 0);
    for f in index["files"].as_array().unwrap() {
        if f["kind"] != "binlog" {
            continue;
        }
        let path = dir
            .join(f["dir"].as_str().unwrap())
            .join(f["file"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        let mut reader = EventStreamReader::new(BinlogVersion::Version4);
        let mut input = Cursor::new(&bytes[4..]);
        let mut tables: HashMap<u64, TableSchema> = HashMap::new();
        while let Ok(Some(event)) = reader.read(&mut input) {
            if event.header().event_type_raw() == EventType::TABLE_MAP_EVENT as u8 {
                if let Ok(tme) = event.read_event::<TableMapEvent<'_>>()
                    && let Ok(schema) = offline::offline_schema(&tme)
                {
                    tables.insert(tme.table_id(), schema);
                }
                continue;
            }
            let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() else {
                continue;
            };
            let Some(schema) = tables.get(&rows.table_id()) else {
                continue;
            };
            let what = format!("{} at {}", path.display(), event.header().log_pos());
            events += 1;
            decoded += usize::from(compare(&event, schema, &mut dec, &what));
            for k in 0..8 {
                if let Some(bad) = mutated(&event, &mut rng) {
                    changed += 1;
                    compare(&bad, schema, &mut dec, &format!("{what}, change {k}"));
                }
            }
        }
    }
    eprintln!("{events} rows events ({decoded} decode), {changed} changed copies");
    assert!(decoded > 100, "too few rows events decoded: {decoded}");
}
