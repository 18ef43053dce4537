//! The per-schema column plan ([`super::super::plan`]): built on a schema's first row and
//! never used for another schema, however alike.

use bitvec::slice::BitSlice;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;

use super::super::row::read_image;
use super::super::{DecodedRow, RowDecoder};
use super::col;
use crate::schema::{ColumnSpec, TableSchema};

fn named(name: &str, column_type: ColumnType, meta: &[u8]) -> ColumnSpec {
    ColumnSpec {
        name: name.to_owned(),
        ..col(column_type, meta, false, 45)
    }
}

fn schema(columns: Vec<ColumnSpec>, key: Vec<usize>) -> TableSchema {
    TableSchema {
        db: "db".into(),
        table: "t".into(),
        columns,
        key,
        index: "t".into(),
        decoder_cache: Default::default(),
    }
}

/// The row's document by the direct reader, after checking it against the long path.
fn decode(dec: &mut RowDecoder, schema: &TableSchema, image: &[u8]) -> DecodedRow {
    let all = [0xffu8];
    let present = &BitSlice::<u8>::from_slice(&all)[..schema.columns.len()];
    let fast = dec
        .decode_image(schema, &mut ParseBuf(image), present)
        .expect("the direct reader takes the row");
    let values = read_image(&mut ParseBuf(image), &schema.columns, present, false).unwrap();
    let long = dec.decode_row(schema, &values, None).unwrap();
    assert_eq!(fast, long);
    fast
}

fn doc(id: &str, source: &str) -> DecodedRow {
    DecodedRow {
        id: id.to_owned(),
        source: source.as_bytes().to_vec().into(),
    }
}

/// `id INT` (the key) and `v VARCHAR(20)`.
fn id_and_text() -> TableSchema {
    schema(
        vec![
            named("id", ColumnType::MYSQL_TYPE_LONG, &[]),
            named("v", ColumnType::MYSQL_TYPE_VARCHAR, &[20, 0]),
        ],
        vec![0],
    )
}

#[test]
fn a_changed_table_never_meets_the_old_plan() {
    use ColumnType::*;
    let mut dec = RowDecoder::default();
    let before = id_and_text();
    // null bitmap, id = 7, v = "hi"
    let row = [0u8, 7, 0, 0, 0, 2, b'h', b'i'];
    assert_eq!(
        decode(&mut dec, &before, &row),
        doc("7", r#"{"id":7,"v":"hi"}"#)
    );
    // The same table after ALTER TABLE: other names, types and key, as the reader builds
    // it from the next table map (a new schema, the same decoder).
    let after = schema(
        vec![
            named("v", MYSQL_TYPE_LONG, &[]),
            named("id", MYSQL_TYPE_LONGLONG, &[]),
        ],
        vec![1],
    );
    let row = [0u8, 5, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        decode(&mut dec, &after, &row),
        doc("9", r#"{"v":5,"id":9}"#)
    );
    // And back: the first schema's plan is still its own.
    let row = [0u8, 8, 0, 0, 0, 1, b'x'];
    assert_eq!(
        decode(&mut dec, &before, &row),
        doc("8", r#"{"id":8,"v":"x"}"#)
    );
}

#[test]
fn a_clone_derives_its_own_plan() {
    let mut dec = RowDecoder::default();
    let original = id_and_text();
    let row = [0u8, 7, 0, 0, 0, 2, b'h', b'i'];
    decode(&mut dec, &original, &row);
    let mut changed = original.clone();
    changed.columns[1].name = "w".into();
    changed.key = vec![1];
    assert_eq!(
        decode(&mut dec, &changed, &row),
        doc("hi", r#"{"id":7,"w":"hi"}"#)
    );
    assert_eq!(
        decode(&mut dec, &original, &row),
        doc("7", r#"{"id":7,"v":"hi"}"#)
    );
}

#[test]
fn set_labels_follow_the_schema() {
    use ColumnType::*;
    let with = |labels: &[&str]| {
        let mut set = named("s", MYSQL_TYPE_SET, &[MYSQL_TYPE_SET as u8, 1]);
        set.labels = labels.iter().map(|l| (*l).to_owned()).collect();
        schema(vec![named("id", MYSQL_TYPE_LONG, &[]), set], vec![0])
    };
    let mut dec = RowDecoder::default();
    // id = 1, s = labels 0 and 2
    let row = [0u8, 1, 0, 0, 0, 0b101];
    assert_eq!(
        decode(&mut dec, &with(&["a", "b", "c\"d"]), &row),
        doc("1", r#"{"id":1,"s":["a","c\"d"]}"#)
    );
    assert_eq!(
        decode(&mut dec, &with(&["x", "y", "z"]), &row),
        doc("1", r#"{"id":1,"s":["x","z"]}"#)
    );
}
