//! Pure-stage throughput: row decoding, `_bulk` encoding, coalescing and routing.
//! Inputs are built outside the timed closures; no I/O.
//!
//! Run: `cargo bench --bench pipeline`

use std::hint::black_box;
use std::sync::Arc;

use binlog2es::checkpoint::AckToken;
use binlog2es::config::TableRule;
use binlog2es::decode::RowDecoder;
use binlog2es::decode::value::ColumnSpec;
use binlog2es::ordering::{Change, DocKey, Op, Origin, coalesce, lane_of};
use binlog2es::position::Version;
use binlog2es::reader::schema::{MapInfo, build};
use binlog2es::writer::bulk::encode;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mysql_common::binlog::row::BinlogRow;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::packets::Column;
use mysql_common::value::Value;

const ROWS: usize = 10_000;

fn schema() -> binlog2es::reader::schema::TableSchema {
    let col =
        |name: &str, t: ColumnType, meta: Vec<u8>, unsigned: bool, collation: u16| ColumnSpec {
            name: name.into(),
            column_type: t,
            meta,
            unsigned,
            collation,
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
        col(
            "price",
            ColumnType::MYSQL_TYPE_NEWDECIMAL,
            vec![12, 2],
            false,
            0,
        ),
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

fn rows() -> Vec<BinlogRow> {
    let cols: Arc<[Column]> = Arc::from(
        (0..6)
            .map(|_| Column::new(ColumnType::MYSQL_TYPE_NULL))
            .collect::<Vec<_>>(),
    );
    (0..ROWS)
        .map(|i| {
            let v = |x: Value| Some(BinlogValue::Value(x));
            BinlogRow::new(
                vec![
                    v(Value::UInt(i as u64)),
                    v(Value::Int((i % 977) as i64)),
                    v(Value::Bytes(
                        format!("Order number {i} for a customer").into_bytes(),
                    )),
                    v(Value::Bytes(vec![b'x'; 400])),
                    v(Value::Bytes(
                        format!("{}.{:02}", i * 3, i % 100).into_bytes(),
                    )),
                    v(Value::Date(2024, 2, 29, 13, 45, 1, 123_456)),
                ],
                Arc::clone(&cols),
            )
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
    g.bench_function("row_to_document", |b| {
        let mut dec = RowDecoder::default();
        b.iter(|| {
            for r in &rows {
                black_box(dec.decode_row(&schema, r).expect("decode"));
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
