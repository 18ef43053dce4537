//! Character sets, binary strings, ENUM and SET.

use super::*;
use crate::decode::text::decode_label;
use crate::decode::value::string_max_bytes;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mysql_common::constants::ColumnType::*;

#[test]
fn text_is_decoded_by_collation() {
    let cases: &[(u16, &[u8], &str)] = &[
        (0, "😀 é".as_bytes(), r#""😀 é""#),
        (45, "😀".as_bytes(), r#""😀""#),
        (255, "😀".as_bytes(), r#""😀""#),
        (33, "é".as_bytes(), r#""é""#), // utf8mb3_general_ci
        (8, &[0x80], r#""€""#),         // latin1 is cp1252
        (8, &[0xE9, 0x81], "\"é\u{81}\""),
        (11, b"plain", r#""plain""#),
        (30, &[0xD0, 0xDD, 0xFE, 0xE9], r#""Ğİşé""#), // latin5 (ISO-8859-9)
        (51, &[0xC0], r#""А""#),                      // cp1251
        (54, &[0x00, 0x41, 0xD8, 0x3D, 0xDE, 0x00], r#""A😀""#), // utf16 (BE)
        (56, &[0x41, 0x00], r#""A""#),                // utf16le
        (60, &[0x00, 0x01, 0xF6, 0x00], r#""😀""#),   // utf32
        (28, &[0xC4, 0xE3], r#""你""#),               // gbk
        (13, &[0x82, 0xA0], r#""あ""#),               // sjis
        (2304, "😀".as_bytes(), r#""😀""#),           // MariaDB utf8mb4_uca1400_ai_ci
        (609, "😀".as_bytes(), r#""😀""#),            // MariaDB utf8mb4_myanmar_ci
        (1071, &[0x80], r#""€""#),                    // MariaDB latin1_nopad_bin
    ];
    for (collation, raw, expected) in cases {
        let c = col(MYSQL_TYPE_VARCHAR, &[0x10, 0x00], false, *collation);
        assert_eq!(
            decode_json(&c, &bytes(raw)),
            *expected,
            "collation {collation}"
        );
    }
    let failing: &[(u16, &[u8])] = &[
        (45, &[0x61, 0xC3, 0x28]),
        (0, &[0xFF]),
        (11, &[0x80]),
        (60, &[0x00, 0x11, 0x00, 0x00]),
        (60, &[0x00, 0x00, 0x41]),
        (54, &[0xD8, 0x3D]),
    ];
    for (collation, raw) in failing {
        let c = col(MYSQL_TYPE_VARCHAR, &[0x10, 0x00], false, *collation);
        let result = decode_value(&c, Some(&bytes(raw)));
        assert!(
            matches!(result, Err(ValueError::InvalidText { .. })),
            "collation {collation}: {result:?}"
        );
    }
    let c = col(MYSQL_TYPE_VARCHAR, &[0x10, 0x00], false, 45);
    match decode_value(&c, Some(&bytes(&[0x61, 0xC3, 0x28]))) {
        Err(ValueError::InvalidText { charset, offset }) => {
            assert_eq!((charset, offset), ("utf8mb4", Some(1)));
        }
        other => panic!("{other:?}"),
    }
    let dec8 = decode_value(&col(MYSQL_TYPE_VARCHAR, &[16, 0], false, 3), None);
    assert!(
        matches!(
            dec8,
            Err(ValueError::UnsupportedCharset { collation: 3, .. })
        ),
        "{dec8:?}"
    );
    let unknown = decode_value(&col(MYSQL_TYPE_VARCHAR, &[16, 0], false, 4000), None);
    assert!(
        matches!(
            unknown,
            Err(ValueError::UnknownCollation { collation: 4000 })
        ),
        "{unknown:?}"
    );
}

#[test]
fn binary_strings_are_base64() {
    let binary4 = col(MYSQL_TYPE_STRING, &[0xFE, 4], false, 63);
    let char40 = col(MYSQL_TYPE_STRING, &[0xFE, 40], false, 45);
    let varbinary = col(MYSQL_TYPE_VARCHAR, &[10, 0], false, 63);
    let blob = col(MYSQL_TYPE_BLOB, &[2], false, 63);
    let text = col(MYSQL_TYPE_BLOB, &[2], false, 45);
    let cases: &[(&ColumnSpec, &[u8], &str)] = &[
        // BINARY(4) = 'ab\0\0': the row image carries "ab".
        (&binary4, &[2, b'a', b'b'], r#""YWIAAA==""#),
        (&binary4, &[0], r#""AAAAAA==""#),
        (&binary4, &[4, 1, 2, 3, 4], r#""AQIDBA==""#),
        (&char40, &[2, b'a', b'b'], r#""ab""#),
        (&varbinary, &[2, b'a', b'b'], r#""YWI=""#),
        (&blob, &[4, 0, 0x00, 0x01, 0x02, 0xFF], r#""AAEC/w==""#),
        (
            &text,
            &[6, 0, b'h', 0xC3, 0xA9, b'l', b'l', b'o'],
            r#""héllo""#,
        ),
    ];
    for (c, raw, expected) in cases {
        assert_eq!(
            decode_json(c, &from_binlog(c, raw)),
            *expected,
            "{c:?} {raw:?}"
        );
    }
    // A CHAR/BINARY longer than 255 bytes keeps two length bits in the type byte.
    assert_eq!(string_max_bytes(&[0xCE, 0xFC]), Some(1020));
    assert_eq!(string_max_bytes(&[0xFE, 0xFF]), Some(255));
    assert_eq!(string_max_bytes(&[0xFE]), None);
    let binary300 = col(MYSQL_TYPE_STRING, &[0xEE, 0x2C], false, 63);
    match decode_value(&binary300, Some(&bytes(b"x"))) {
        Ok(FieldValue::Str(b64)) => {
            let raw = BASE64.decode(b64).expect("valid base64");
            assert_eq!((raw.len(), raw.first()), (300, Some(&b'x')));
        }
        other => panic!("{other:?}"),
    }
    let short = decode_value(&col(MYSQL_TYPE_STRING, &[0xFE], false, 63), None);
    assert!(
        matches!(short, Err(ValueError::BadMetadata { .. })),
        "{short:?}"
    );
}

#[test]
fn enums_are_labels_and_sets_label_arrays() {
    let e = labelled(MYSQL_TYPE_ENUM, &[0xF7, 1], &["red", "gr\"een", "😀"]);
    let e2 = labelled(MYSQL_TYPE_ENUM, &[0xF7, 2], &["a"; 300]);
    let s = labelled(MYSQL_TYPE_SET, &[0xF8, 1], &["a", "b", "c"]);
    let s9 = labelled(
        MYSQL_TYPE_SET,
        &[0xF8, 2],
        &["0", "1", "2", "3", "4", "5", "6", "7", "8"],
    );
    let cases: &[(&ColumnSpec, &[u8], &str)] = &[
        (&e, &[1], r#""red""#),
        (&e, &[2], r#""gr\"een""#),
        (&e, &[3], r#""😀""#),
        (&e, &[0], r#""""#),
        (&e2, &[44, 1], r#""a""#),
        (&s, &[0], "[]"),
        (&s, &[0b101], r#"["a","c"]"#),
        (&s, &[0b111], r#"["a","b","c"]"#),
        (&s9, &[0b1000_0001, 1], r#"["0","7","8"]"#),
    ];
    for (c, raw, expected) in cases {
        assert_eq!(decode_json(c, &from_binlog(c, raw)), *expected, "{raw:?}");
    }
    for (c, raw) in [(&e, &[4u8][..]), (&s, &[0b1000][..])] {
        let result = decode_value(c, Some(&from_binlog(c, raw)));
        assert!(
            matches!(result, Err(ValueError::NoSuchLabel { .. })),
            "{raw:?}: {result:?}"
        );
    }
    assert!(matches!(
        decode_value(&e, Some(&v(Value::Int(-1)))),
        Err(ValueError::Malformed { .. })
    ));
    // Labels are decoded by their collation; binary labels stay text.
    assert_eq!(decode_label(8, &[0x80]).unwrap(), "€");
    assert_eq!(decode_label(63, b"x").unwrap(), "x");
    assert!(decode_label(45, &[0xFF]).is_err());
}

#[test]
fn the_binary_codec_is_exactly_the_schemas_binary_family() {
    // The index mapping follows `ColumnFamily`; the decoder's codec must agree with it.
    use crate::decode::text::{TextCodec, resolve_codec};
    use crate::schema::family::is_binary_collation;
    for id in 0..4096_u16 {
        let binary = matches!(resolve_codec(id), Ok((TextCodec::Binary, _)));
        assert_eq!(binary, is_binary_collation(id), "collation {id}");
    }
}
