//! Pure-stage throughput: row decoding, `_bulk` encoding, coalescing and routing.
//! Inputs are built outside the timed closures; no I/O.
//!
//! Run: `cargo bench --bench pipeline`

use std::hint::black_box;
use std::sync::Arc;

use binlog2es::checkpoint::AckToken;
use binlog2es::config::TableRule;
use binlog2es::decode::RowDecoder;
use binlog2es::decode::row::read_image;
use binlog2es::decode::value::ColumnSpec;
use binlog2es::ordering::{Change, DocKey, Op, Origin, coalesce, lane_of};
use binlog2es::position::Version;
use binlog2es::reader::schema::{MapInfo, build};
use binlog2es::writer::bulk::encode;
use bitvec::slice::BitSlice;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;

const ROWS: usize = 10_000;

fn schema() -> binlog2es::reader::schema::TableSchema {
    let col =
        |name: &str, t: ColumnType, meta: Vec<u8>, unsigned: bool, collation: u16| ColumnSpec {
            name: name.into(),
            column_type: t,
            meta,
            unsigned,
            collation,
            ..ColumnSpec::default()
        };
    let columns = vec![
        col("id", ColumnType::MYSQL_TYPE_LONGLONG, vec![], true, 0),
        col("customer_id", ColumnType::MYSQL_TYPE_LONG, vec![], false, 0),
        col(
            "title",
            ColumnType::MYSQL_TYPE_VARCHAR,
            vec![0xfc, 0x03],
            false,
            45,
        ),
        col("body", ColumnType::MYSQL_TYPE_BLOB, vec![2], false, 45),
        col("price", ColumnType::MYSQL_TYPE_DOUBLE, vec![8], false, 0),
        col(
            "created_at",
            ColumnType::MYSQL_TYPE_DATETIME2,
            vec![6],
            false,
            0,
        ),
    ];
    let rule = TableRule {
        pattern: "shop.orders".into(),
        index: "orders".into(),
        id_columns: vec![],
        ..TableRule::default()
    };
    build(
        "shop",
        "orders",
        &rule,
        MapInfo {
            columns,
            has_names: true,
            key: vec![0],
        },
    )
    .expect("schema")
}

/// Row images as a server writes them (all columns present, none NULL).
fn rows() -> Vec<Vec<u8>> {
    (0..ROWS)
        .map(|i| {
            let mut r = vec![0u8]; // null bitmap
            r.extend_from_slice(&(i as u64).to_le_bytes());
            r.extend_from_slice(&((i % 977) as i32).to_le_bytes());
            let title = format!("Order number {i} for a customer");
            r.extend_from_slice(&(title.len() as u16).to_le_bytes());
            r.extend_from_slice(title.as_bytes());
            r.extend_from_slice(&400u16.to_le_bytes());
            r.extend_from_slice(&[b'x'; 400]);
            r.extend_from_slice(&(i as f64 * 1.25).to_le_bytes());
            // DATETIME2(6) 2024-02-29 13:45:01.123456
            let ymd: u64 = ((2024 * 13 + 2) << 5) | 29;
            let hms: u64 = (13 << 12) | (45 << 6) | 1;
            let packed = ((ymd << 17) | hms) + 0x80_0000_0000;
            r.extend_from_slice(&packed.to_be_bytes()[3..]);
            r.extend_from_slice(&123_456u32.to_be_bytes()[1..]);
            r
        })
        .collect()
}

fn changes(n: usize, distinct: usize) -> Vec<Change> {
    let source = Bytes::from_static(br#"{"id":1,"customer_id":2,"title":"Order","price":1.50,"created_at":"2024-02-29T13:45:01.123456"}"#);
    let index: Arc<str> = "orders".into();
    let file: Arc<str> = "binlog.000001".into();
    (0..n)
        .map(|i| Change {
            key: DocKey {
                index: Arc::clone(&index),
                id: (i % distinct).to_string(),
            },
            op: Op::Index(source.clone()),
            version: Version(i as u64),
            origin: Origin {
                file: Arc::clone(&file),
                pos: i as u64,
            },
            ack: AckToken::open().0,
        })
        .collect()
}

fn bench_decode(c: &mut Criterion) {
    let schema = schema();
    let rows = rows();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(ROWS as u64));
    let all = [0xffu8];
    let present = &BitSlice::<u8>::from_slice(&all)[..schema.columns.len()];
    g.bench_function("row_image_to_document", |b| {
        let mut dec = RowDecoder::default();
        b.iter(|| {
            for r in &rows {
                let mut buf = ParseBuf(r);
                let values = read_image(&mut buf, &schema.columns, present, false).expect("split");
                black_box(dec.decode_row(&schema, &values, None).expect("decode"));
            }
        })
    });
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let batch = changes(1000, 1000);
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
    let mut g = c.benchmark_group("ordering");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("coalesce_10k_half_duplicates", |b| {
        b.iter_batched(
            || changes(ROWS, ROWS / 2),
            |batch| black_box(coalesce(batch)),
            criterion::BatchSize::LargeInput,
        )
    });
    let keys: Vec<DocKey> = changes(ROWS, ROWS).into_iter().map(|c| c.key).collect();
    g.bench_function("route_10k", |b| {
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

criterion_group!(benches, bench_decode, bench_encode, bench_ordering);
criterion_main!(benches);
