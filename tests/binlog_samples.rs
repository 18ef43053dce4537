//! Real binlog files (../shared/binlog-samples, see its README.md and INDEX.json) decoded
//! offline through the daemon's own code: mysql_common's event parser, then
//! `schema::read_table_map` + `schema::build` and `decode::rows::decode_rows_event`, the
//! function the reader calls. (`cargo run --example dump_binlog -- FILE` prints what a file
//! decodes to.)
//!
//! - Every rows event of every MySQL 8 / 9 file decodes without error (ROWS v2, GTID,
//!   optional metadata, TRANSACTION_PAYLOAD (inflated here the way mysql_async's stream does),
//!   PARTIAL_UPDATE_ROWS with JSON diffs, JSON, VECTOR, ENUM/SET with labels, BIT).
//! - Values are checked against the text the server's tools printed beside each file
//!   (`*.decoded.txt`, `*.decoded-table-metadata.txt`, `*.upstream-*.txt`); each check quotes
//!   the line it comes from.
//! - Every other file is walked too: an undecodable value must be a located error, never a
//!   panic.
//!
//! Tables without a primary key in their metadata get a synthetic key (the first column), and
//! files without column names get mysqlbinlog's `@1`, `@2`, … names, so every row decodes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/offline.rs"]
mod offline;
#[path = "common/samples.rs"]
mod samples;

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;

use binlog2es::decode::RowDecoder;
use binlog2es::decode::row::read_image;
use mysql_common::binlog::BinlogFileHeader;
use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::{EventData, RowsEventData, TableMapEvent};
use mysql_common::io::ParseBuf;
use samples::{Decoded, Walker, decode_file, samples_absent, samples_dir};
use serde_json::{Value, json};

/// Every binlog file of the sample set (those INDEX.json lists as `kind: binlog`).
fn all_sample_files() -> Vec<String> {
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(samples_dir().join("INDEX.json")).unwrap())
            .unwrap();
    index["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "binlog")
        .map(|f| {
            format!(
                "{}/{}",
                f["dir"].as_str().unwrap(),
                f["file"].as_str().unwrap()
            )
        })
        .collect()
}

fn is_mysql8(version: &str) -> bool {
    !version.contains("MariaDB") && (version.starts_with("8.") || version.starts_with("9."))
}

fn docs(decoded: &Decoded) -> Vec<Value> {
    decoded
        .changes
        .iter()
        .filter(|c| c.op != "delete")
        .map(|c| serde_json::from_str(&c.source).unwrap())
        .collect()
}

/// The located error a non-FULL row image gives (SPEC: binlog_row_image=FULL is required).
fn assert_not_full(decoded: &Decoded, file: &str, table: &str) {
    assert!(
        !decoded.errors.is_empty(),
        "{file}: expected a refused image"
    );
    for e in &decoded.errors {
        assert!(
            e.starts_with("at ")
                && e.contains(table)
                && e.contains("binlog_row_image must be FULL"),
            "{file}: {e}"
        );
    }
}

#[test]
fn every_rows_event_of_the_mysql_8_files_decodes() {
    if samples_absent("binlog_samples") {
        return;
    }
    // Files whose row images are not FULL: the daemon refuses them on purpose, with a located
    // error. minimal_row_metadata: binlog_row_image=MINIMAL INSERT; rpl_unfiltered_hidden_gcol:
    // an 8.0.17 table map that lists a hidden functional-index column the image omits (the
    // MySQL bug that test reproduces); json.binlog.000001: the PARTIAL_UPDATE_ROWS event was
    // logged with binlog_row_image=MINIMAL (see partial_json_update_of_the_json_sample).
    let refused = [
        ("rust_mysql_common/minimal_row_metadata.000001", "noria.t1"),
        (
            "rust_mysql_common/rpl_unfiltered_hidden_gcol.000001",
            "test.t",
        ),
        ("rust_mysql_common/json.binlog.000001", "mysql.t"),
    ];
    let mut files = 0;
    let mut changes = 0;
    for file in all_sample_files() {
        let decoded = decode_file(&file);
        if !is_mysql8(&decoded.server_version) {
            continue;
        }
        files += 1;
        changes += decoded.changes.len();
        match refused.iter().find(|(f, _)| *f == file) {
            Some((_, table)) => assert_not_full(&decoded, &file, table),
            None => assert!(decoded.errors.is_empty(), "{file}: {:?}", decoded.errors),
        }
    }
    assert!(files >= 25, "only {files} MySQL 8/9 files found");
    assert!(changes >= 7_260, "only {changes} row changes decoded");
}

#[test]
fn older_and_mariadb_files_never_panic_and_errors_are_located() {
    if samples_absent("binlog_samples") {
        return;
    }
    // Genuine limits, each a located error, never a panic: MySQL Cluster 5.1 partial row
    // images (refused: FULL images are required), MariaDB 10.0's old hires TIMESTAMP(3)
    // (type 7 with fsp metadata, which mysql_common reads as 4 bytes), truncated files.
    for file in all_sample_files() {
        let decoded = std::panic::catch_unwind(|| decode_file(&file))
            .unwrap_or_else(|_| panic!("{file}: decoding panicked"));
        for e in &decoded.errors {
            assert!(
                e.starts_with("at ") || e.starts_with("file header"),
                "{file}: {e}"
            );
            let located = e.contains('`') || e.contains("event stream") || e.contains("payload");
            assert!(located, "{file}: error names no table: {e}");
        }
    }
}

fn find(decoded: &Decoded, table: &str, op: &str, id: &str) -> Value {
    let change = decoded
        .changes
        .iter()
        .find(|c| c.table == table && c.op == op && c.id == id)
        .unwrap_or_else(|| panic!("no {op} of {table} id {id} in {:#?}", decoded.changes));
    serde_json::from_str(&change.source).unwrap()
}

#[test]
fn enum_and_set_labels_come_from_the_table_map() {
    if samples_absent("binlog_samples") {
        return;
    }
    // mysql-enum-string-set.000001 (MySQL 8.0.28, FULL metadata):
    // `f3` ENUM('var1','variant2','foo'), `f4` SET('one','two','three','four')
    // INSERT: "@3=1", "@4=b'00000101'"; UPDATE SET: "@3=2", "@4=b'00001010'"
    let d = decode_file("rust_mysql_common/mysql-enum-string-set.000001");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let digits = "0123456789";
    let insert = find(&d, "mysql.t", "insert", &digits.repeat(10));
    assert_eq!(insert["f3"], json!("var1"));
    assert_eq!(insert["f4"], json!(["one", "three"]));
    assert_eq!(insert["f5"], json!(digits));
    let update = find(&d, "mysql.t", "update", "field1");
    assert_eq!(
        update,
        json!({"f1": "field1", "f2": "field_2", "f3": "variant2", "f4": ["two", "four"],
               "f5": update["f5"].clone()})
    );
    // A delete carries only the id the before image gives.
    assert!(
        d.changes
            .iter()
            .any(|c| (c.table.as_str(), c.op, c.id.as_str()) == ("mysql.t", "delete", "field1")),
        "{:#?}",
        d.changes
    );
}

#[test]
fn json_documents_are_json_values() {
    if samples_absent("binlog_samples") {
        return;
    }
    // json.binlog.000001: t(id, json_col JSON, name AS (json_col->>'$.name'), age AS
    // (json_col->'$.age')): the generated columns are MySQL's own reading of the document, so
    // every decoded document must agree with them.
    let d = decode_file("rust_mysql_common/json.binlog.000001");
    let docs = docs(&d);
    assert_eq!(docs.len(), 12);
    for doc in &docs {
        assert_eq!(doc["@2"]["name"], doc["@3"], "{doc}");
        assert_eq!(doc["@2"]["age"], doc["@4"], "{doc}");
    }
    assert_eq!(
        find(&d, "mysql.t", "insert", "3"),
        json!({"@1": 3, "@2": {"age": 40, "data": "zzzzzzzzzz", "name": "Pete"},
               "@3": "Pete", "@4": 40})
    );
    // json-opaque.binlog (MySQL 9.0.1): opaque values inside JSON, as MySQL prints them
    // (upstream test: {"a": "base64:type15:VQ=="}, {"b": "2012-03-18"}, …).
    let d = decode_file("rust_mysql_common/json-opaque.binlog");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let sources: Vec<&str> = d.changes.iter().map(|c| c.source.as_str()).collect();
    assert_eq!(
        sources,
        [
            r#"{"a":{"a":"base64:type15:VQ=="}}"#,
            r#"{"a":{"b":"2012-03-18"}}"#,
            r#"{"a":{"c":"2012-03-18 11:30:45.000000"}}"#,
            r#"{"a":{"c":"87:31:46.654321"}}"#,
            r#"{"a":{"d":123.456}}"#,
            r#"{"a":{"e":9.00}}"#,
            r#"{"a":{"e":[0,1,true,false]}}"#,
            r#"{"a":{"e":null}}"#,
        ]
    );
}

#[test]
fn partial_json_update_of_the_json_sample() {
    if samples_absent("binlog_samples") {
        return;
    }
    // The PARTIAL_UPDATE_ROWS event (end_log_pos 3980) of json.binlog.000001 was logged with
    // binlog_row_image=MINIMAL: its before image holds only `id`, its after image the JSON
    // diff and the two generated columns. The daemon needs FULL images (it refuses this one,
    // see above); here the before image is completed from the row's previous full image (the
    // UPDATE at 3496) so the real diff bytes go through RowDecoder's diff application.
    let path = samples_dir().join("rust_mysql_common/json.binlog.000001");
    let mut input = BufReader::new(File::open(path).unwrap());
    BinlogFileHeader::read(&mut input).unwrap();
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let mut schema = None;
    let mut last_full: HashMap<
        String,
        Vec<Option<mysql_common::binlog::value::BinlogValue<'static>>>,
    > = HashMap::new();
    let mut decoder = RowDecoder::default();
    let mut results = Vec::new();
    while let Some(event) = reader.read(&mut input).unwrap() {
        if event.header().event_type_raw() == EventType::TABLE_MAP_EVENT as u8 {
            let tme = event.read_event::<TableMapEvent<'_>>().unwrap();
            schema = Some(Walker::schema_for(&tme).unwrap());
            continue;
        }
        let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() else {
            continue;
        };
        let schema = schema.as_ref().unwrap();
        let mut buf = ParseBuf(rows.rows_data());
        let partial = matches!(rows, RowsEventData::PartialUpdateRowsEvent(_));
        while !buf.is_empty() {
            if !partial {
                if rows.columns_before_image().is_some() {
                    read_image(
                        &mut buf,
                        &schema.columns,
                        rows.columns_before_image().unwrap(),
                        false,
                    )
                    .unwrap();
                }
                let after = read_image(
                    &mut buf,
                    &schema.columns,
                    rows.columns_after_image().unwrap(),
                    false,
                )
                .unwrap();
                let owned: Vec<_> = after
                    .into_iter()
                    .map(|v| v.map(|v| v.into_owned()))
                    .collect();
                let id = decoder.decode_id(schema, &owned).unwrap();
                last_full.insert(id, owned);
                continue;
            }
            // Split the MINIMAL images with the column subsets they carry.
            let before_bits = rows.columns_before_image().unwrap();
            let after_bits = rows.columns_after_image().unwrap();
            let subset = |bits: &bitvec::slice::BitSlice<u8>| -> Vec<_> {
                schema
                    .columns
                    .iter()
                    .zip(bits.iter())
                    .filter(|(_, b)| **b)
                    .map(|(c, _)| c.clone())
                    .collect()
            };
            let before_cols = subset(before_bits);
            let after_cols = subset(after_bits);
            let all = bitvec::vec::BitVec::<u8>::repeat(true, 8);
            // A local buffer: read_image ties the values to the column slices' lifetime.
            let mut local = ParseBuf(buf.0);
            let before: Vec<_> =
                read_image(&mut local, &before_cols, &all[..before_cols.len()], false)
                    .unwrap()
                    .into_iter()
                    .map(|v| v.map(|v| v.into_owned()))
                    .collect();
            let after: Vec<_> = read_image(&mut local, &after_cols, &all[..after_cols.len()], true)
                .unwrap()
                .into_iter()
                .map(|v| v.map(|v| v.into_owned()))
                .collect();
            let consumed = buf.0.len() - local.0.len();
            buf = ParseBuf(&buf.0[consumed..]);
            let id = binlog2es::decode::value::decode_value(&before_cols[0], before[0].as_ref())
                .unwrap();
            let mut id_text = String::new();
            id.write_id_text(&mut id_text);
            let old = last_full.get(&id_text).unwrap().clone();
            let mut new_row = old.clone();
            let mut it = after.into_iter();
            for (i, present) in after_bits.iter().enumerate() {
                if *present {
                    new_row[i] = it.next().unwrap();
                }
            }
            assert!(
                new_row.iter().any(|v| matches!(
                    v,
                    Some(mysql_common::binlog::value::BinlogValue::JsonDiff(_))
                )),
                "the sample carries a JSON diff"
            );
            let doc = decoder.decode_row(schema, &new_row, Some(&old)).unwrap();
            results.push(
                serde_json::from_str::<Value>(std::str::from_utf8(&doc.source).unwrap()).unwrap(),
            );
        }
    }
    assert!(!results.is_empty(), "no partial update found");
    for doc in &results {
        // The generated columns in the same after image are MySQL's reading of the new document.
        assert_eq!(doc["@2"]["name"], doc["@3"], "{doc}");
        assert_eq!(doc["@2"]["age"], doc["@4"], "{doc}");
    }
    // UPDATE … SET json_col = JSON_SET(json_col, '$.age', age + 1): 25 → 26 for Joe.
    assert_eq!(
        results[0],
        json!({"@1": 1, "@2": {"age": 26, "data": "xxxxxxxxxx", "name": "Joe"},
               "@3": "Joe", "@4": 26})
    );
}

#[test]
fn compressed_transactions_and_gtid_files_decode() {
    if samples_absent("binlog_samples") {
        return;
    }
    // transaction_compression.000001: one zstd TRANSACTION_PAYLOAD holding INSERT INTO test.tb1.
    let d = decode_file("rust_mysql_common/transaction_compression.000001");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.changes.len(), 1);
    assert_eq!(
        (d.changes[0].table.as_str(), d.changes[0].op),
        ("test.tb1", "insert")
    );
    // mysql-bin.000057 (8.0.31): compressed payloads with ROWS_QUERY, a JSON column, TIMESTAMP,
    // DATE, ENUM/SET (MINIMAL metadata: stand-in labels), BINARY.
    let d = decode_file("mysql-binlog-connector-rust/mysql-bin.000057");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let row = find(&d, "a.test_table_3", "insert", "6666");
    assert_eq!(row["@10"], json!({"c": 1}));
    assert_eq!(row["@6"], json!("2022-11-20T13:53:32Z"));
    assert_eq!(row["@3"], json!("2022-11-20"));
    // data_80045_gtid.binlog.000002: "UPDATE t1 SET id=id+100 WHERE id<=3" (WHERE @1=1, SET
    // @1=101) and "DELETE WHERE id<100" (4, 5, 6). A changed key deletes the old document.
    let d = decode_file("percona-binlog-server/data_80045_gtid.binlog.000002");
    let ids: Vec<(&str, &str)> = d.changes.iter().map(|c| (c.op, c.id.as_str())).collect();
    assert_eq!(
        ids,
        [
            ("delete", "1"),
            ("update", "101"),
            ("delete", "2"),
            ("update", "102"),
            ("delete", "3"),
            ("update", "103"),
            ("delete", "4"),
            ("delete", "5"),
            ("delete", "6")
        ]
    );
    // binlog_transaction_with_GTID_TAG.000001 (MySQL 9.6): a tagged GTID; DECIMAL kept exact.
    let d = decode_file("rust_mysql_common/binlog_transaction_with_GTID_TAG.000001");
    assert_eq!(d.changes.len(), 1);
    assert_eq!(d.changes[0].source, r#"{"@1":3,"@2":100,"@3":250.00}"#);
}

#[test]
fn scalar_values_match_the_decoded_text() {
    if samples_absent("binlog_samples") {
        return;
    }
    // mysql_type_bit.000001: "@1=b'100' /* BIT(3) */", "@2='foo'", "@3=b'00100000' /* BIT(8) */"
    let d = decode_file("rust_mysql_common/mysql_type_bit.000001");
    assert_eq!(d.changes[0].source, r#"{"a":4,"b":"foo","c":32}"#);
    // time_issue.000001: "@1='-507:48:27' /* TIME(0) */"
    let d = decode_file("rust_mysql_common/time_issue.000001");
    assert_eq!(d.changes[0].source, r#"{"@1":"-507:48:27"}"#);
    // binlog-invisible-columns.000001: "@3=-3 (4294967293)", "@5='\x05'" (a BLOB: base64),
    // "@6=6000000000"; the UPDATE's SET "@1=111 … @3=-333 … @4='444'"
    let d = decode_file("rust_mysql_common/binlog-invisible-columns.000001");
    assert_eq!(
        find(&d, "mysql.t1", "insert", "1"),
        json!({"f1": 1, "f2": 2, "f3": -3, "f4": "4", "f5": "BQ==", "f6": 6000000000_u64})
    );
    assert_eq!(
        find(&d, "mysql.t1", "update", "111"),
        json!({"f1": 111, "f2": 222, "f3": -333, "f4": "444", "f5": "VQ==", "f6": null})
    );
    // 8.0_02_query_bigger: "@5=99.911 /* DECIMAL(12,3) */", "@11='1990:08:01' /* DATE */", and the
    // UPDATE's DECIMAL 88.880 with its trailing zero; a CJK VARCHAR.
    let d = decode_file("mysql-cdc-rs/8.0_02_query_bigger.binlog.000733");
    let first = d.changes.iter().find(|c| c.id == "1234567890111").unwrap();
    assert!(
        first
            .source
            .contains(r#""@5":99.911,"@6":76.11,"@7":888.1"#),
        "{}",
        first.source
    );
    assert!(
        first.source.contains(r#""@11":"1990-08-01""#),
        "{}",
        first.source
    );
    let update = d.changes.iter().find(|c| c.op == "update").unwrap();
    assert!(
        update.source.contains(r#""@5":88.880"#),
        "{}",
        update.source
    );
    assert!(d.changes.iter().any(|c| c.source.contains("使用箭头标记")));
    // 8.2_32_delete_rows_v2: insert, update, delete of test.int_table
    let d = decode_file("mysql-cdc-rs/8.2_32_delete_rows_v2.binlog.000001");
    let ops: Vec<(&str, &str)> = d
        .changes
        .iter()
        .map(|c| (c.op, c.source.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            (
                "insert",
                r#"{"@1":1,"@2":11,"@3":111,"@4":1111,"@5":11111,"@6":1}"#
            ),
            (
                "update",
                r#"{"@1":1,"@2":22,"@3":222,"@4":1111,"@5":11111,"@6":1}"#
            ),
            ("delete", ""),
        ]
    );
    // vector.binlog (MySQL 9.0.1): VECTOR(3) [1.1, 2.2, 3.3] as the shortest f32 text.
    let d = decode_file("rust_mysql_common/vector.binlog");
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(
        find(&d, "dtb.bar", "insert", "2"),
        json!({"id": 2, "vector_column": [1.01, -1.01], "foo": "YmFy",
               "vector_column2": [42.0, 43.0, 44.0, 45.0]})
    );
    assert_eq!(
        d.changes[0].source,
        r#"{"id":1,"vector_column":[1.1,2.2,3.3]}"#
    );
}
