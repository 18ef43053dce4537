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

use binlog2es::config::TableRule;
use binlog2es::decode::RowDecoder;
use binlog2es::decode::row::read_image;
use binlog2es::decode::rows::{DocChange, Op, decode_rows_event};
use binlog2es::schema::{ColumnSpec, MapInfo, TableSchema};
use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::{
    Event, EventData, FormatDescriptionEvent, RowsEventData, TableMapEvent,
};
use mysql_common::constants::ColumnType;
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

/// A WRITE_ROWS event (v2) of `schema`'s table with every column present, carrying `rows`
/// (row images concatenated as in a rows event body).
fn write_rows_event(schema: &TableSchema, rows: &[u8]) -> Event {
    let columns = schema.columns.len();
    let mut raw = vec![0u8; 19];
    raw.extend_from_slice(&1u64.to_le_bytes()[..6]); // table id
    raw.extend_from_slice(&0u16.to_le_bytes()); // flags
    raw.extend_from_slice(&2u16.to_le_bytes()); // extra data length, itself included
    raw.push(u8::try_from(columns).unwrap());
    raw.extend(std::iter::repeat_n(0xff, columns.div_ceil(8)));
    raw.extend_from_slice(rows);
    raw[4] = EventType::WRITE_ROWS_EVENT as u8;
    let size = u32::try_from(raw.len()).unwrap();
    raw[9..13].copy_from_slice(&size.to_le_bytes());
    let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    Event::read(&fde, &raw[..]).unwrap()
}

/// A table of DECIMAL, DATE, DATETIME2, TIMESTAMP2 and TIME2 columns keyed by column
/// `key` (0: the BIGINT id; 1: the DECIMAL(10,0), which the direct reader leaves to the
/// long path).
fn packed_schema(key: usize) -> TableSchema {
    use ColumnType::*;
    let col = |name: &str, column_type, meta: &[u8]| ColumnSpec {
        name: name.into(),
        column_type,
        meta: meta.to_vec(),
        ..ColumnSpec::default()
    };
    let columns = vec![
        col("id", MYSQL_TYPE_LONGLONG, &[]),
        col("whole", MYSQL_TYPE_NEWDECIMAL, &[10, 0]),
        col("price", MYSQL_TYPE_NEWDECIMAL, &[12, 2]),
        col("wide", MYSQL_TYPE_NEWDECIMAL, &[65, 30]),
        col("day", MYSQL_TYPE_NEWDATE, &[]),
        col("dt0", MYSQL_TYPE_DATETIME2, &[0]),
        col("dt6", MYSQL_TYPE_DATETIME2, &[6]),
        col("ts0", MYSQL_TYPE_TIMESTAMP2, &[0]),
        col("ts3", MYSQL_TYPE_TIMESTAMP2, &[3]),
        col("t0", MYSQL_TYPE_TIME2, &[0]),
        col("t2", MYSQL_TYPE_TIME2, &[2]),
        col("t6", MYSQL_TYPE_TIME2, &[6]),
    ];
    let rule = TableRule {
        pattern: "shop.packed".into(),
        index: "packed".into(),
        ..TableRule::default()
    };
    let map = MapInfo {
        columns,
        has_names: true,
        key: vec![key],
    };
    binlog2es::schema::build("shop", "packed", &rule, map).unwrap()
}

/// Binary DECIMAL(precision, scale) of `int.frac` (digit strings that fit the column).
fn decimal_bytes(precision: usize, scale: usize, negative: bool, int: &str, frac: &str) -> Vec<u8> {
    const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    let intg = precision - scale;
    let digits = format!("{int:0>intg$}{frac:0<scale$}");
    let lead = intg % 9;
    let (int, frac) = digits.split_at(intg);
    let groups = std::iter::once(&int[..lead])
        .filter(|g| !g.is_empty())
        .chain(
            int.as_bytes()[lead..]
                .chunks(9)
                .map(|c| std::str::from_utf8(c).unwrap()),
        )
        .chain(
            frac.as_bytes()
                .chunks(9)
                .map(|c| std::str::from_utf8(c).unwrap()),
        );
    let mut out = Vec::new();
    for g in groups {
        let v: u32 = g.parse().unwrap();
        out.extend_from_slice(&v.to_be_bytes()[4 - DIG2BYTES[g.len()]..]);
    }
    if negative {
        out.iter_mut().for_each(|b| *b = !*b);
    }
    out[0] ^= 0x80;
    out
}

/// One row image of [`packed_schema`]: variant `k` of each column's edge values, the
/// columns whose bit is set in `nulls` NULL.
fn packed_row(id: u64, k: usize, nulls: u16) -> Vec<u8> {
    let mut out = nulls.to_le_bytes().to_vec();
    let mut put = |column: usize, bytes: &[u8]| {
        if nulls >> column & 1 == 0 {
            out.extend_from_slice(bytes);
        }
    };
    put(0, &id.to_le_bytes());
    let whole = [
        (false, "0"),
        (true, "0"),
        (true, "42"),
        (false, "9999999999"),
    ];
    let (neg, int) = whole[k % whole.len()];
    put(1, &decimal_bytes(10, 0, neg, int, ""));
    let price = [
        (false, "1", "50"),
        (true, "0", "05"),
        (true, "0", "00"),
        (false, "0", ""),
    ];
    let (neg, int, frac) = price[k % price.len()];
    put(2, &decimal_bytes(12, 2, neg, int, frac));
    let wide = [
        (
            true,
            "12345678901234567890123456789012345",
            "123456789012345678901234567890",
        ),
        (false, "", "000000000000000000000000000001"),
        (false, "1000000000", "5"),
    ];
    let (neg, int, frac) = wide[k % wide.len()];
    put(3, &decimal_bytes(65, 30, neg, int, frac));
    let days = [
        (2024, 2, 29),
        (0, 0, 0),
        (2023, 2, 29),
        (9999, 12, 31),
        (1000, 1, 1),
    ];
    let (y, m, d) = days[k % days.len()];
    put(4, &(((y << 9) | (m << 5) | d) as u32).to_le_bytes()[..3]);
    let datetime = |y: u64, mo: u64, d: u64, hms: (u64, u64, u64)| -> u64 {
        let (h, mi, s) = hms;
        (((((y * 13 + mo) << 5) | d) << 17) | (h << 12) | (mi << 6) | s) + 0x80_0000_0000
    };
    let stamps = [
        datetime(2024, 2, 29, (13, 45, 1)),
        datetime(0, 0, 0, (0, 0, 0)),
        datetime(9999, 12, 31, (23, 59, 59)),
        datetime(2023, 4, 31, (1, 2, 3)),
    ];
    let stamp = stamps[k % stamps.len()];
    put(5, &stamp.to_be_bytes()[3..]);
    let micros = [0u32, 123_456, 999_999][k % 3];
    put(
        6,
        &[&stamp.to_be_bytes()[3..], &micros.to_be_bytes()[1..]].concat(),
    );
    let seconds = [0u32, 1, 1_709_214_301, u32::MAX, 2_147_483_648][k % 5];
    put(7, &seconds.to_be_bytes());
    let millis = [0u16, 999, 5, 120][k % 4];
    put(
        8,
        &[&seconds.to_be_bytes()[..], &(millis * 10).to_be_bytes()].concat(),
    );
    // TIME2 as MySQL packs it: the packed value, negative for a negative time, biased.
    let times: [(bool, i64, i64); 5] = [
        (false, 13 * 4096 + 45 * 64 + 1, 0),
        (true, 838 * 4096 + 59 * 64 + 59, 0),
        (true, 0, 500_000),
        (false, 100 * 4096, 250_000),
        (true, 25 * 4096 + 1, 10_000),
    ];
    let (neg, hms, us) = times[k % times.len()];
    let packed = ((hms << 24) + us) * if neg { -1 } else { 1 };
    let (int, frac) = (packed >> 24, packed % (1 << 24));
    put(9, &((int + 0x80_0000) as u32).to_be_bytes()[1..]);
    put(
        10,
        &[
            &((int + 0x80_0000) as u32).to_be_bytes()[1..],
            &[((frac / 10_000) & 0xff) as u8][..],
        ]
        .concat(),
    );
    put(11, &((packed + 0x8000_0000_0000) as u64).to_be_bytes()[2..]);
    out
}

#[test]
fn direct_reader_equals_mysql_common_values_on_packed_edge_values() {
    let mut rng = Lcg(65);
    for key in [0, 1] {
        let schema = packed_schema(key);
        let mut dec = RowDecoder::default();
        let mut docs = String::new();
        for event_no in 0..40u64 {
            let rows: Vec<u8> = (0..7)
                .flat_map(|r| {
                    let k = (event_no * 7 + r) as usize;
                    // Every fifth row has one NULL column (not the key).
                    let nulls = if k % 5 == 4 { 1u16 << (2 + k % 10) } else { 0 };
                    packed_row(event_no * 7 + r, k, nulls)
                })
                .collect();
            let event = write_rows_event(&schema, &rows);
            let what = format!("key {key}, event {event_no}");
            assert!(compare(&event, &schema, &mut dec, &what), "{what}");
            let Ok(Some(EventData::RowsEvent(ev))) = event.read_data() else {
                unreachable!()
            };
            for change in decode_rows_event(&ev, &schema, &mut dec, None).unwrap() {
                if let Op::Index(source) = change.op {
                    docs.push_str(std::str::from_utf8(&source).unwrap());
                    docs.push('\n');
                }
            }
            for k in 0..8 {
                if let Some(bad) = mutated(&event, &mut rng) {
                    compare(&bad, &schema, &mut dec, &format!("{what}, change {k}"));
                }
            }
        }
        for expected in [
            r#""whole":-42,"#,
            r#""whole":0,"#,
            r#""price":-0.05,"#,
            r#""price":0.00,"#,
            r#""wide":-12345678901234567890123456789012345.123456789012345678901234567890,"#,
            r#""wide":0.000000000000000000000000000001,"#,
            r#""day":"2024-02-29","#,
            r#""day":null,"#,
            r#""dt0":"9999-12-31T23:59:59","#,
            r#""dt0":null,"#,
            r#""dt6":"2024-02-29T13:45:01.123456","#,
            r#""ts0":null,"#,
            r#""ts0":"2106-02-07T06:28:15Z","#,
            r#""ts3":"2024-02-29T13:45:01.999Z","#,
            r#""t0":"-838:59:59","#,
            r#""t2":"-00:00:00.50","#,
            r#""t6":"-25:00:01.010000"}"#,
            r#""t6":"100:00:00.250000"}"#,
        ] {
            assert!(
                docs.contains(expected),
                "key {key}: no {expected} in\n{docs}"
            );
        }
    }
}
