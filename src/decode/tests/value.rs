//! Dispatch by column family: direct writes, unsupported types, raw JSON kinds, errors,
//! NULL, and document ids.

use super::*;
use crate::decode::id::doc_id;
use crate::decode::value::write_direct;
use mysql_common::constants::ColumnType::*;

#[test]
fn direct_writes_equal_decoded_values() {
    let mut json_col = col(MYSQL_TYPE_BLOB, &[4], false, 45);
    json_col.json_text = true;
    let cases: Vec<(ColumnSpec, Option<BinlogValue<'static>>)> = vec![
        (
            col(MYSQL_TYPE_LONGLONG, &[], true, 0),
            Some(BinlogValue::Value(Value::UInt(u64::MAX))),
        ),
        (
            col(MYSQL_TYPE_LONG, &[], false, 0),
            Some(BinlogValue::Value(Value::Int(-7))),
        ),
        (
            col(MYSQL_TYPE_VARCHAR, &[80, 0], false, 45),
            Some(BinlogValue::Value(Value::Bytes(
                "a \"quoted\" line\n…".into(),
            ))),
        ),
        (col(MYSQL_TYPE_VARCHAR, &[80, 0], false, 45), None),
        (
            json_col.clone(),
            Some(BinlogValue::Value(Value::Bytes(
                b"{ \"a\" : [1, \"x y\"] }".to_vec(),
            ))),
        ),
        (
            json_col,
            Some(BinlogValue::Value(Value::Bytes(b"[1,2]".to_vec()))),
        ),
    ];
    for (c, v) in &cases {
        let mut direct = Vec::new();
        assert!(write_direct(c, v.as_ref(), &mut direct).unwrap(), "{c:?}");
        let decoded = json_of(&decode_value(c, v.as_ref()).unwrap());
        assert_eq!(String::from_utf8(direct).unwrap(), decoded, "{v:?}");
    }
    // Invalid text is the same error either way; other kinds are left to decode_value.
    let c = col(MYSQL_TYPE_VARCHAR, &[80, 0], false, 45);
    let bad = BinlogValue::Value(Value::Bytes(vec![b'a', 0xff]));
    let mut out = Vec::new();
    assert_eq!(
        write_direct(&c, Some(&bad), &mut out)
            .unwrap_err()
            .to_string(),
        decode_value(&c, Some(&bad)).unwrap_err().to_string()
    );
    let latin1 = col(MYSQL_TYPE_VARCHAR, &[80, 0], false, 8);
    let v = BinlogValue::Value(Value::Bytes(vec![0xe9]));
    assert!(!write_direct(&latin1, Some(&v), &mut out).unwrap());
    assert!(out.is_empty());
}

#[test]
fn unsupported_types_fail_even_when_null() {
    let cases: &[(ColumnType, &str)] = &[
        (MYSQL_TYPE_DECIMAL, "DECIMAL (pre-5.0)"),
        (MYSQL_TYPE_TIME, "TIME (pre-5.6.4 format)"),
    ];
    for (ty, name) in cases {
        for value in [None, Some(&v(Value::Int(1)))] {
            match decode_value(&col(*ty, &[0, 1], false, 0), value) {
                Err(ValueError::Unsupported { column_type }) => assert_eq!(column_type, *name),
                other => panic!("{ty:?}: {other:?}"),
            }
        }
    }
    // ENUM/SET without labels (no metadata, no catalog) fail on every row too.
    for ty in [MYSQL_TYPE_ENUM, MYSQL_TYPE_SET] {
        for value in [None, Some(&v(Value::Int(1)))] {
            let result = decode_value(&col(ty, &[ty as u8, 1], false, 45), value);
            assert!(
                matches!(result, Err(ValueError::NoLabels { .. })),
                "{ty:?}: {result:?}"
            );
        }
    }
}

#[test]
fn json_geometry_and_vector_columns_write_raw_json() {
    // MySQL JSON {"a":[1,true]} as JSONB (small object holding a small array).
    let jsonb_doc: &[u8] = &[
        0x00, 1, 0, 22, 0, 11, 0, 1, 0, 0x02, 12, 0, b'a', 2, 0, 10, 0, 0x05, 1, 0, 0x04, 1, 0,
    ];
    let mut image = (jsonb_doc.len() as u32).to_le_bytes().to_vec();
    image.extend_from_slice(jsonb_doc);
    let json = col(MYSQL_TYPE_JSON, &[4], false, 63);
    assert_eq!(
        decode_json(&json, &from_binlog(&json, &image)),
        r#"{"a":[1,true]}"#
    );
    // MariaDB JSON: LONGTEXT with json_valid.
    let text = ColumnSpec {
        json_text: true,
        ..col(MYSQL_TYPE_BLOB, &[4], false, 46)
    };
    assert_eq!(
        decode_json(&text, &bytes(br#" {"a" : [1, 2.50]} "#)),
        r#"{"a":[1,2.50]}"#
    );
    assert!(matches!(
        decode_value(&text, Some(&bytes(b"{oops"))),
        Err(ValueError::Json(_))
    ));
    // json_text on a binary column is ignored: still base64.
    let binary = ColumnSpec {
        json_text: true,
        ..col(MYSQL_TYPE_BLOB, &[4], false, 63)
    };
    assert_eq!(decode_json(&binary, &bytes(b"{}")), r#""e30=""#);
    // GEOMETRY: SRID 0 + WKB point (1, 2).
    let mut wkb = vec![0, 0, 0, 0, 1, 1, 0, 0, 0];
    wkb.extend_from_slice(&1.0f64.to_le_bytes());
    wkb.extend_from_slice(&2.0f64.to_le_bytes());
    let geometry = col(MYSQL_TYPE_GEOMETRY, &[4], false, 63);
    assert_eq!(
        decode_json(&geometry, &bytes(&wkb)),
        r#"{"type":"Point","coordinates":[1.0,2.0]}"#
    );
    assert!(matches!(
        decode_value(&geometry, Some(&bytes(&wkb[..10]))),
        Err(ValueError::Geometry(_))
    ));
    // VECTOR: little-endian f32.
    let vector = col(MYSQL_TYPE_VECTOR, &[4], false, 63);
    let mut floats = Vec::new();
    for f in [0.1f32, -2.5, 3.0] {
        floats.extend_from_slice(&f.to_le_bytes());
    }
    assert_eq!(decode_json(&vector, &bytes(&floats)), "[0.1,-2.5,3.0]");
    assert_eq!(decode_json(&vector, &bytes(&[])), "[]");
    for bad in [&floats[..5], &f32::NAN.to_le_bytes()[..]] {
        assert!(matches!(
            decode_value(&vector, Some(&bytes(bad))),
            Err(ValueError::Malformed { .. })
        ));
    }
}

#[test]
fn bad_metadata_and_unexpected_values_are_errors() {
    for meta in [&[][..], &[7][..]] {
        for ty in [
            MYSQL_TYPE_DATETIME2,
            MYSQL_TYPE_TIMESTAMP2,
            MYSQL_TYPE_TIME2,
        ] {
            let result = decode_value(&col(ty, meta, false, 0), None);
            assert!(
                matches!(result, Err(ValueError::BadMetadata { .. })),
                "{ty:?} {meta:?}"
            );
        }
    }
    let cases: &[(ColumnType, &[u8], Value)] = &[
        (MYSQL_TYPE_LONG, &[], Value::Bytes(b"1".to_vec())),
        (MYSQL_TYPE_FLOAT, &[4], Value::Double(0.1)),
        (MYSQL_TYPE_NEWDECIMAL, &[3, 2], Value::Double(1.5)),
        (MYSQL_TYPE_NEWDATE, &[], Value::Time(false, 0, 0, 0, 0, 0)),
        (MYSQL_TYPE_DATETIME2, &[0], Value::Bytes(b"2024".to_vec())),
        (MYSQL_TYPE_TIME2, &[0], Value::Date(2024, 1, 1, 0, 0, 0, 0)),
        (MYSQL_TYPE_VARCHAR, &[10, 0], Value::Int(1)),
        (MYSQL_TYPE_YEAR, &[], Value::Int(2024)),
    ];
    for (ty, meta, value) in cases {
        let result = decode_value(&col(*ty, meta, false, 45), Some(&v(value.clone())));
        assert!(
            matches!(result, Err(ValueError::UnexpectedValue { .. })),
            "{ty:?} {value:?}: {result:?}"
        );
    }
    let jsonb = ParseBuf(&[0x04, 0x01])
        .parse::<mysql_common::binlog::jsonb::Value<'_>>(())
        .expect("JSONB literal true");
    let result = decode_value(
        &col(MYSQL_TYPE_LONG, &[], false, 0),
        Some(&BinlogValue::Jsonb(jsonb)),
    );
    assert!(
        matches!(
            result,
            Err(ValueError::UnexpectedValue { found: "JSONB", .. })
        ),
        "{result:?}"
    );
}

#[test]
fn null_is_null_for_every_supported_type() {
    for (ty, meta) in [
        (MYSQL_TYPE_LONG, &[][..]),
        (MYSQL_TYPE_DATETIME2, &[6][..]),
        (MYSQL_TYPE_VARCHAR, &[10, 0][..]),
        (MYSQL_TYPE_STRING, &[0xFE, 4][..]),
    ] {
        let c = col(ty, meta, false, 63);
        assert_eq!(decode_value(&c, None).ok(), Some(FieldValue::Null));
        assert_eq!(
            decode_value(&c, Some(&v(Value::NULL))).ok(),
            Some(FieldValue::Null)
        );
    }
    assert_eq!(json_of(&FieldValue::Null), "null");
}

#[test]
fn doc_ids() {
    let s = |t: &str| FieldValue::Str(t.to_owned());
    let cases: &[(&[FieldValue], &str)] = &[
        (&[FieldValue::Int(-42)], "-42"),
        (&[FieldValue::UInt(u64::MAX)], "18446744073709551615"),
        (&[s("a:b")], "a:b"),
        (&[s("a:b"), s(r"c\d")], r"a\:b:c\\d"),
        (&[FieldValue::Int(1), FieldValue::UInt(2), s("x")], "1:2:x"),
        (
            &[
                FieldValue::Decimal("1.50".to_owned()),
                FieldValue::Float(0.1),
            ],
            "1.50:0.1",
        ),
        (
            &[FieldValue::Double(0.1), s("2024-02-29T13:45:01Z")],
            r"0.1:2024-02-29T13\:45\:01Z",
        ),
        (&[s(""), s("")], ":"),
        (&[s(r"\:")], r"\:"),
        (&[s(r"\:"), s("")], r"\\\::"),
        (&[], ""),
    ];
    for (parts, expected) in cases {
        let refs: Vec<&FieldValue> = parts.iter().collect();
        assert_eq!(doc_id(&refs), *expected, "{parts:?}");
    }
}
