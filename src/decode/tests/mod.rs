//! Unit tests of the value decoders, one file per type family, sharing the helpers here.

mod fast_packed;
mod numeric;
mod plan;
mod temporal;
mod text;
mod value;

use mysql_common::Value;
use mysql_common::binlog::value::BinlogValue;
use mysql_common::constants::ColumnType;
use mysql_common::io::ParseBuf;

use super::field::{FieldValue, ValueError};
use super::value::decode_value;
use crate::schema::ColumnSpec;

fn col(column_type: ColumnType, meta: &[u8], unsigned: bool, collation: u16) -> ColumnSpec {
    ColumnSpec {
        name: "c".to_owned(),
        column_type,
        meta: meta.to_vec(),
        unsigned,
        collation,
        ..ColumnSpec::default()
    }
}

/// Runs mysql_common's own row-image decoder on `bytes`, as the reader will.
fn from_binlog(col: &ColumnSpec, bytes: &[u8]) -> BinlogValue<'static> {
    ParseBuf(bytes)
        .parse::<BinlogValue<'_>>((col.column_type, &col.meta[..], col.unsigned, false))
        .expect("mysql_common decodes the test bytes")
        .into_owned()
}

fn json_of(field: &FieldValue) -> String {
    let mut out = Vec::new();
    field.write_json(&mut out);
    String::from_utf8(out).expect("JSON output is UTF-8")
}

fn decode_json(col: &ColumnSpec, value: &BinlogValue<'_>) -> String {
    match decode_value(col, Some(value)) {
        Ok(field) => json_of(&field),
        Err(err) => panic!("{col:?} {value:?}: {err}"),
    }
}

fn v(value: Value) -> BinlogValue<'static> {
    BinlogValue::Value(value)
}

fn bytes(b: &[u8]) -> BinlogValue<'static> {
    v(Value::Bytes(b.to_vec()))
}

fn labelled(ty: ColumnType, meta: &[u8], labels: &[&str]) -> ColumnSpec {
    ColumnSpec {
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        ..col(ty, meta, false, 45)
    }
}
