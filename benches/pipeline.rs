//! Pure-stage throughput (criterion, `Throughput::Elements` = row changes): decoding,
//! `_bulk` encoding, coalescing and routing. Inputs are built outside the timed closures;
//! no I/O.
//!
//! - `decode/samples`: binlog bytes → documents over the real files of
//!   `../shared/binlog-samples` whose rows events all decode (event parsing, table maps,
//!   row splitting and documents, the daemon's path as `tests/binlog_samples.rs` drives it);
//! - `decode/realistic`: 100k row images of a realistic table (BIGINT, INT, two VARCHARs,
//!   ~400 B TEXT, DECIMAL(12,2), DATETIME(6), MariaDB JSON, SET; ~660 B of JSON per row);
//! - `decode_encode/realistic`: the same rows to [`Change`]s to `_bulk` bodies of 1000;
//! - `encode/bulk_ndjson_1000`: documents → `_bulk` NDJSON;
//! - `ordering/*`: coalescing in writer batches of 1000 and lane routing, at 1M changes;
//! - last, a `SUMMARY` line: decode + encode changes/s per core (thread CPU time) of the
//!   reader's path next to the previous path (every value through mysql_common), measured
//!   alternately in the same run.
//!
//! Run: `cargo bench --bench pipeline` (a group: `cargo bench --bench pipeline -- decode`).
//! Under `cargo test --all-targets` each bench runs once, on 1% of the inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/offline.rs"]
mod offline;

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use binlog2es::checkpoint::AckToken;
use binlog2es::config::TableRule;
use binlog2es::decode::RowDecoder;
use binlog2es::decode::row::read_image;
use binlog2es::decode::rows::decode_rows_event;
use binlog2es::ordering::{Change, DocKey, Op, Origin, coalesce, lane_of};
use binlog2es::position::Version;
use binlog2es::schema::{ColumnSpec, MapInfo, TableSchema, build};
use binlog2es::writer::bulk::encode;
use bitvec::slice::BitSlice;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::{Event, EventData, FormatDescriptionEvent, TableMapEvent};
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;

/// Whether criterion measures (`cargo bench`) rather than runs each bench once as a test
/// (`cargo test --all-targets`), where small inputs keep the run quick.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Rows of the realistic table per iteration.
fn rows_per_iter() -> usize {
    if measuring() { 100_000 } else { 1_000 }
}

/// Changes for the ordering benches.
fn changes_per_iter() -> usize {
    if measuring() { 1_000_000 } else { 10_000 }
}
/// Default `writer.max_docs`.
const BATCH: usize = 1000;

fn col(name: &str, t: ColumnType, meta: Vec<u8>, unsigned: bool, collation: u16) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        column_type: t,
        meta,
        unsigned,
        collation,
        ..ColumnSpec::default()
    }
}

fn rule() -> TableRule {
    TableRule {
        pattern: "shop.orders".into(),
        index: "orders".into(),
        ..TableRule::default()
    }
}

/// The realistic table as MariaDB's table map describes it (utf8mb4, collation 45).
fn realistic_schema() -> TableSchema {
    use ColumnType::*;
    let mut attrs = col("attrs", MYSQL_TYPE_BLOB, vec![4], false, 45);
    attrs.json_text = true;
    let mut tags = col(
        "tags",
        MYSQL_TYPE_SET,
        vec![MYSQL_TYPE_SET as u8, 1],
        false,
        45,
    );
    tags.labels = ["red", "green", "blue", "sale", "new", "eco"]
        .map(String::from)
        .to_vec();
    let columns = vec![
        col("id", MYSQL_TYPE_LONGLONG, vec![], true, 0),
        col("customer_id", MYSQL_TYPE_LONG, vec![], false, 0),
        col("sku", MYSQL_TYPE_VARCHAR, vec![128, 0], false, 45),
        col("title", MYSQL_TYPE_VARCHAR, vec![0x20, 0x03], false, 45),
        col("body", MYSQL_TYPE_BLOB, vec![2], false, 45),
        col("price", MYSQL_TYPE_NEWDECIMAL, vec![12, 2], false, 0),
        col("created_at", MYSQL_TYPE_DATETIME2, vec![6], false, 0),
        attrs,
        tags,
        col("rev", MYSQL_TYPE_LONG, vec![], false, 0),
        col("stamp", MYSQL_TYPE_LONGLONG, vec![], false, 0),
    ];
    build(
        "shop",
        "orders",
        &rule(),
        MapInfo {
            columns,
            has_names: true,
            key: vec![0],
        },
    )
    .expect("schema")
}

/// Rows per rows event: MySQL starts a new rows event once one reaches
/// `binlog_row_event_max_size` (8 KiB by default); a realistic row takes ~600 bytes.
const ROWS_PER_EVENT: usize = 13;

/// WRITE_ROWS events of `rows` realistic rows, [`ROWS_PER_EVENT`] rows each.
fn realistic_events(schema: &TableSchema, rows: usize) -> Vec<Event> {
    (0..rows)
        .step_by(ROWS_PER_EVENT)
        .map(|start| {
            let end = (start + ROWS_PER_EVENT).min(rows);
            write_rows_event(schema, &realistic_rows(start..end))
        })
        .collect()
}

/// Row images of the realistic table, concatenated as in a rows event body.
fn realistic_rows(rows: std::ops::Range<usize>) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "alpha", "brisk", "cobalt", "dune", "ember", "fjord", "garnet", "harbor",
    ];
    let mut out = Vec::with_capacity(rows.len() * 600);
    for i in rows.start as u64..rows.end as u64 {
        out.extend_from_slice(&[0u8, 0]); // null bitmap of 11 columns
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&((i % 99_991) as i32).to_le_bytes());
        let sku = format!("SKU-{i:08X}");
        out.push(sku.len() as u8);
        out.extend_from_slice(sku.as_bytes());
        let title = format!(
            "{} {} order {i}",
            WORDS[i as usize % 8],
            WORDS[i as usize / 8 % 8]
        );
        out.extend_from_slice(&(title.len() as u16).to_le_bytes());
        out.extend_from_slice(title.as_bytes());
        let mut body = String::new();
        while body.len() < 400 {
            body.push_str(WORDS[(i as usize + body.len()) % 8]);
            body.push(' ');
        }
        body.truncate(400);
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.extend_from_slice(body.as_bytes());
        // DECIMAL(12,2): a 1-digit group (1 byte), a 9-digit group (4 bytes), 2 digits (1 byte).
        out.push(0x80);
        out.extend_from_slice(&((i % 100_000) as u32).to_be_bytes());
        out.push((i % 100) as u8);
        // DATETIME2(6) 2024-02-29 13:45:01.123456
        let ymd: u64 = ((2024 * 13 + 2) << 5) | 29;
        let hms: u64 = (13 << 12) | (45 << 6) | 1;
        let packed = ((ymd << 17) | hms) + 0x80_0000_0000;
        out.extend_from_slice(&packed.to_be_bytes()[3..]);
        out.extend_from_slice(&123_456u32.to_be_bytes()[1..]);
        let attrs = format!(
            r#"{{"color":"{}","size":{},"dims":{{"w":1.5,"h":2}},"labels":["{}","{}"]}}"#,
            WORDS[i as usize % 8],
            i % 50,
            WORDS[(i as usize + 1) % 8],
            WORDS[(i as usize + 2) % 8]
        );
        out.extend_from_slice(&(attrs.len() as u32).to_le_bytes());
        out.extend_from_slice(attrs.as_bytes());
        out.push((i % 64) as u8);
        out.extend_from_slice(&((i % 3) as i32).to_le_bytes());
        out.extend_from_slice(&(1_700_000_000_000_000 + i).to_le_bytes());
    }
    out
}

/// A WRITE_ROWS event (v2) of `schema`'s table with every column present, carrying `rows`
/// (row images concatenated as in a rows event body), read back as the stream reads events.
fn write_rows_event(schema: &TableSchema, rows: &[u8]) -> Event {
    const HEADER: usize = 19;
    let columns = schema.columns.len();
    let mut raw = vec![0u8; HEADER];
    raw.extend_from_slice(&1u64.to_le_bytes()[..6]); // table id
    raw.extend_from_slice(&0u16.to_le_bytes()); // flags
    raw.extend_from_slice(&2u16.to_le_bytes()); // extra data length, itself included
    raw.push(u8::try_from(columns).expect("a one-byte column count"));
    raw.extend(std::iter::repeat_n(0xff, columns.div_ceil(8)));
    raw.extend_from_slice(rows);
    raw[4] = EventType::WRITE_ROWS_EVENT as u8;
    let size = u32::try_from(raw.len()).expect("event size");
    raw[9..13].copy_from_slice(&size.to_le_bytes());
    let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
    Event::read(&fde, &raw[..]).expect("a well-formed event")
}

/// Decodes every row of a rows event of `schema` through the reader's own path, handing
/// each document to `each`.
fn decode_all(
    schema: &TableSchema,
    events: &[Event],
    dec: &mut RowDecoder,
    mut each: impl FnMut(String, Bytes),
) {
    for event in events {
        let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() else {
            panic!("not a rows event");
        };
        for change in decode_rows_event(&rows, schema, dec, None).expect("decode") {
            if let Op::Index(source) = change.op {
                each(change.id, source);
            }
        }
    }
}

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/binlog-samples")
}

/// Walks one binlog file the way the reader does (table maps cached by id and rebuilt only
/// when they change) and decodes every rows event as the reader does; returns (document
/// changes, events that failed).
fn walk(bytes: &[u8], dec: &mut RowDecoder) -> (usize, usize) {
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let mut input = Cursor::new(&bytes[4..]);
    let mut tables: HashMap<u64, (TableMapEvent<'static>, Option<TableSchema>)> = HashMap::new();
    let (mut docs, mut errors) = (0, 0);
    while let Ok(Some(event)) = reader.read(&mut input) {
        let kind = event.header().event_type_raw();
        if kind == EventType::TABLE_MAP_EVENT as u8 {
            let Ok(tme) = event.read_event::<TableMapEvent<'_>>() else {
                errors += 1;
                continue;
            };
            if tables.get(&tme.table_id()).is_some_and(|(t, _)| *t == tme) {
                continue;
            }
            let schema = offline::offline_schema(&tme).ok();
            tables.insert(tme.table_id(), (tme.into_owned(), schema));
            continue;
        }
        let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() else {
            continue;
        };
        let Some((_, Some(schema))) = tables.get(&rows.table_id()) else {
            errors += 1;
            continue;
        };
        match decode_rows_event(&rows, schema, dec, None) {
            Ok(changes) => {
                docs += changes.len();
                black_box(changes);
            }
            Err(_) => errors += 1,
        }
    }
    (docs, errors)
}

/// The sample files whose rows all decode, with their bytes and document counts.
/// None without the sample set (a clone of this repository alone): `decode/samples` is skipped.
fn sample_files() -> Vec<(Vec<u8>, usize)> {
    let Ok(text) = std::fs::read_to_string(samples_dir().join("INDEX.json")) else {
        eprintln!(
            "decode/samples: SKIPPED, {} is absent",
            samples_dir().display()
        );
        return Vec::new();
    };
    let index: serde_json::Value = serde_json::from_str(&text).expect("INDEX.json");
    let mut dec = RowDecoder::default();
    index["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter(|f| f["kind"] == "binlog")
        .filter_map(|f| {
            let path = samples_dir()
                .join(f["dir"].as_str()?)
                .join(f["file"].as_str()?);
            let bytes = std::fs::read(path).ok()?;
            let (docs, errors) = walk(&bytes, &mut dec);
            (docs > 0 && errors == 0).then_some((bytes, docs))
        })
        .collect()
}

fn bench_decode(c: &mut Criterion) {
    let files = sample_files();
    let docs: usize = files.iter().map(|f| f.1).sum();
    let bytes: usize = files.iter().map(|f| f.0.len()).sum();
    eprintln!(
        "decode/samples: {} files, {docs} row changes, {bytes} bytes",
        files.len()
    );
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(docs as u64));
    if !files.is_empty() {
        g.bench_function("samples", |b| {
            let mut dec = RowDecoder::default();
            b.iter(|| {
                for (bytes, _) in &files {
                    black_box(walk(bytes, &mut dec));
                }
            })
        });
    }
    let schema = realistic_schema();
    let n_rows = rows_per_iter();
    let events = realistic_events(&schema, n_rows);
    g.throughput(Throughput::Elements(n_rows as u64));
    g.sample_size(20);
    g.bench_function("realistic", |b| {
        let mut dec = RowDecoder::default();
        b.iter(|| {
            decode_all(&schema, &events, &mut dec, |id, src| {
                drop(black_box((id, src)))
            })
        })
    });
    // The row images alone (no event parsing, no change list): the value decoder's own
    // cost, comparable with figures taken before the rows-event path existed.
    let images = realistic_rows(0..n_rows);
    g.bench_function("row_images", |b| {
        let mut dec = RowDecoder::default();
        let all = [0xffu8, 0xff];
        let present = &BitSlice::<u8>::from_slice(&all)[..schema.columns.len()];
        b.iter(|| {
            let mut buf = ParseBuf(&images);
            while !buf.is_empty() {
                let values = read_image(&mut buf, &schema.columns, present, false).expect("split");
                let doc = dec.decode_row(&schema, &values, None).expect("decode");
                drop(black_box((doc.id, doc.source)));
            }
        })
    });
    g.finish();

    // Decode + build changes + encode `_bulk` bodies of 1000 on one core: the reader's and
    // a lane's CPU work per change, without the network.
    let mut g = c.benchmark_group("decode_encode");
    g.throughput(Throughput::Elements(n_rows as u64));
    g.sample_size(20);
    let index: Arc<str> = "orders".into();
    let file: Arc<str> = "binlog.000001".into();
    g.bench_function("realistic", |b| {
        let mut run = DecodeEncode::new(&index, &file);
        b.iter(|| run.once(Reader::Direct, &schema, &events))
    });
    g.finish();
}

/// Which value reader a decode + encode run uses.
#[derive(Clone, Copy)]
enum Reader {
    /// `decode_rows_event`, the reader's path (values read straight from the event bytes
    /// where they can be).
    Direct,
    /// The previous path: every value through mysql_common (`read_image`), then
    /// `RowDecoder::decode_row`.
    Values,
}

/// Decode + build changes + encode `_bulk` bodies of [`BATCH`]: the reader's and a lane's
/// CPU work per change, without the network.
struct DecodeEncode {
    dec: RowDecoder,
    batch: Vec<Change>,
    body: Vec<u8>,
    token: AckToken,
    index: Arc<str>,
    file: Arc<str>,
}

impl DecodeEncode {
    fn new(index: &Arc<str>, file: &Arc<str>) -> Self {
        DecodeEncode {
            dec: RowDecoder::default(),
            batch: Vec::with_capacity(BATCH),
            body: Vec::with_capacity(1 << 20),
            token: AckToken::open().0,
            index: Arc::clone(index),
            file: Arc::clone(file),
        }
    }

    /// One pass over `events` (WRITE_ROWS events of `schema`); returns the changes made.
    fn once(&mut self, reader: Reader, schema: &TableSchema, events: &[Event]) -> usize {
        let mut n = 0;
        let Self {
            dec,
            batch,
            body,
            token,
            index,
            file,
        } = self;
        let mut each = |id: String, src: Bytes| {
            n += 1;
            batch.push(Change {
                key: DocKey {
                    index: Arc::clone(index),
                    id,
                },
                op: Op::Index(src),
                routing: None,
                version: Version(7),
                origin: Origin {
                    file: Arc::clone(file),
                    pos: 4,
                },
                ack: token.clone(),
            });
            if batch.len() == BATCH {
                encode(batch, body);
                black_box(body.len());
                batch.clear();
            }
        };
        match reader {
            Reader::Direct => decode_all(schema, events, dec, each),
            Reader::Values => {
                for event in events {
                    let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() else {
                        panic!("not a rows event");
                    };
                    let present = rows.columns_after_image().expect("an after image");
                    let mut buf = ParseBuf(rows.rows_data());
                    while !buf.is_empty() {
                        let values =
                            read_image(&mut buf, &schema.columns, present, false).expect("split");
                        let doc = dec.decode_row(schema, &values, None).expect("decode");
                        each(doc.id, doc.source);
                    }
                }
            }
        }
        n
    }
}

/// CPU time of the calling thread: what one core spent, whatever else the machine runs.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The SUMMARY line: decode + encode changes per second of one core's CPU time, the
/// direct reader next to the previous path (mysql_common's values), measured alternately
/// in the same run, best of several passes each.
fn summary(_: &mut Criterion) {
    let schema = realistic_schema();
    let n_rows = rows_per_iter();
    let events = realistic_events(&schema, n_rows);
    let (index, file): (Arc<str>, Arc<str>) = ("orders".into(), "binlog.000001".into());
    let mut run = DecodeEncode::new(&index, &file);
    let rounds = if measuring() { 7 } else { 1 };
    let mut best = [Duration::MAX; 2];
    for _ in 0..rounds {
        for (slot, reader) in [Reader::Values, Reader::Direct].into_iter().enumerate() {
            let start = thread_cpu();
            assert_eq!(run.once(reader, &schema, &events), n_rows);
            best[slot] = best[slot].min(thread_cpu() - start);
        }
    }
    let rate = |d: Duration| n_rows as f64 / d.as_secs_f64();
    let (values, direct) = (rate(best[0]), rate(best[1]));
    println!(
        "SUMMARY decode+encode, {n_rows} realistic rows, changes/s per core (thread CPU, \
         best of {rounds}): direct reader {:.2}M, previous path (mysql_common values) \
         {:.2}M, x{:.2}",
        direct / 1e6,
        values / 1e6,
        direct / values
    );
}

fn changes(n: usize, distinct: usize) -> Vec<Change> {
    let source = Bytes::from_static(br#"{"id":1,"customer_id":2,"title":"Order","price":1.50,"created_at":"2024-02-29T13:45:01.123456"}"#);
    let index: Arc<str> = "orders".into();
    let file: Arc<str> = "binlog.000001".into();
    let mut token = AckToken::open().0;
    (0..n)
        .map(|i| {
            if i % BATCH == 0 {
                token = AckToken::open().0;
            }
            Change {
                key: DocKey {
                    index: Arc::clone(&index),
                    id: (i % distinct).to_string(),
                },
                op: Op::Index(source.clone()),
                routing: None,
                version: Version(i as u64),
                origin: Origin {
                    file: Arc::clone(&file),
                    pos: i as u64,
                },
                ack: token.clone(),
            }
        })
        .collect()
}

fn bench_encode(c: &mut Criterion) {
    let batch = changes(BATCH, BATCH);
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("bulk_ndjson_1000", |b| {
        let mut out = Vec::with_capacity(256 * 1024);
        b.iter(|| {
            encode(&batch, &mut out);
            black_box(out.len());
        })
    });
    g.finish();
}

fn bench_ordering(c: &mut Criterion) {
    let n = changes_per_iter();
    let mut g = c.benchmark_group("ordering");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    // Every key twice in each writer batch of 1000 (an insert and its update).
    g.bench_function("coalesce_1m_in_batches_half_duplicates", |b| {
        b.iter_batched(
            || {
                let mut all = changes(n, n / 2);
                // Pair each key with its duplicate inside the same batch.
                all.sort_by_key(|c| (c.version.0 as usize % (n / 2)) / (BATCH / 2));
                all
            },
            |mut all| {
                let mut kept = 0;
                while !all.is_empty() {
                    let rest = all.split_off(all.len().saturating_sub(BATCH));
                    let (out, superseded) = coalesce(rest);
                    kept += out.len();
                    black_box(superseded);
                }
                black_box(kept)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("coalesce_1m_in_batches_distinct", |b| {
        b.iter_batched(
            || changes(n, n),
            |mut all| {
                let mut kept = 0;
                while !all.is_empty() {
                    let rest = all.split_off(all.len().saturating_sub(BATCH));
                    kept += coalesce(rest).0.len();
                }
                black_box(kept)
            },
            BatchSize::PerIteration,
        )
    });
    let keys: Vec<DocKey> = changes(n, n).into_iter().map(|c| c.key).collect();
    g.bench_function("route_1m", |b| {
        b.iter(|| {
            let mut s = 0usize;
            for k in &keys {
                s += lane_of(k, 4);
            }
            black_box(s)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_decode, bench_encode, bench_ordering, summary);
criterion_main!(benches);
