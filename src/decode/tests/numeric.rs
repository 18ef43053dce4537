//! Integers, floats, DECIMAL, BIT and YEAR.

use super::*;
use mysql_common::binlog::decimal::Decimal;
use mysql_common::constants::ColumnType::*;

#[test]
fn integers_keep_their_full_range() {
    let cases: &[(ColumnType, bool, Value, &str)] = &[
        (MYSQL_TYPE_TINY, false, Value::Int(-128), "-128"),
        (MYSQL_TYPE_TINY, false, Value::Int(127), "127"),
        (MYSQL_TYPE_TINY, true, Value::UInt(255), "255"),
        (MYSQL_TYPE_SHORT, false, Value::Int(-32768), "-32768"),
        (MYSQL_TYPE_SHORT, true, Value::UInt(65535), "65535"),
        (MYSQL_TYPE_INT24, false, Value::Int(-8388608), "-8388608"),
        (MYSQL_TYPE_INT24, true, Value::Int(16777215), "16777215"),
        (
            MYSQL_TYPE_LONG,
            false,
            Value::Int(i32::MIN.into()),
            "-2147483648",
        ),
        (
            MYSQL_TYPE_LONG,
            true,
            Value::UInt(u32::MAX.into()),
            "4294967295",
        ),
        (
            MYSQL_TYPE_LONGLONG,
            false,
            Value::Int(i64::MIN),
            "-9223372036854775808",
        ),
        (
            MYSQL_TYPE_LONGLONG,
            false,
            Value::Int(i64::MAX),
            "9223372036854775807",
        ),
        (
            MYSQL_TYPE_LONGLONG,
            true,
            Value::UInt(u64::MAX),
            "18446744073709551615",
        ),
        (MYSQL_TYPE_LONGLONG, true, Value::UInt(0), "0"),
    ];
    for (ty, unsigned, value, expected) in cases {
        let c = col(*ty, &[], *unsigned, 0);
        assert_eq!(
            decode_json(&c, &v(value.clone())),
            *expected,
            "{ty:?} {value:?}"
        );
    }
}

#[test]
fn integers_from_row_image_bytes() {
    let cases: &[(ColumnType, bool, &[u8], &str)] = &[
        (MYSQL_TYPE_TINY, false, &[0x80], "-128"),
        (MYSQL_TYPE_TINY, true, &[0xFF], "255"),
        (MYSQL_TYPE_SHORT, false, &[0x00, 0x80], "-32768"),
        (MYSQL_TYPE_INT24, false, &[0x00, 0x00, 0x80], "-8388608"),
        (MYSQL_TYPE_INT24, false, &[0xFF, 0xFF, 0xFF], "-1"),
        (MYSQL_TYPE_INT24, false, &[0xFF, 0xFF, 0x7F], "8388607"),
        (MYSQL_TYPE_INT24, true, &[0xFF, 0xFF, 0xFF], "16777215"),
        (MYSQL_TYPE_INT24, true, &[0x00, 0x00, 0x80], "8388608"),
        (MYSQL_TYPE_LONG, true, &[0xFF; 4], "4294967295"),
        (
            MYSQL_TYPE_LONGLONG,
            false,
            &[0, 0, 0, 0, 0, 0, 0, 0x80],
            "-9223372036854775808",
        ),
        (
            MYSQL_TYPE_LONGLONG,
            true,
            &[0xFF; 8],
            "18446744073709551615",
        ),
    ];
    for (ty, unsigned, raw, expected) in cases {
        let c = col(*ty, &[], *unsigned, 0);
        assert_eq!(decode_json(&c, &from_binlog(&c, raw)), *expected, "{ty:?}");
    }
}

#[test]
fn medium_int_sign_is_restored_and_range_checked() {
    let signed = col(MYSQL_TYPE_INT24, &[], false, 0);
    let unsigned = col(MYSQL_TYPE_INT24, &[], true, 0);
    // A mysql_common that sign-extends would send the negative number itself.
    assert_eq!(decode_json(&signed, &v(Value::Int(-1))), "-1");
    for (c, value) in [
        (&signed, Value::Int(16_777_216)),
        (&signed, Value::Int(-8_388_609)),
        (&unsigned, Value::Int(-1)),
        (&unsigned, Value::UInt(u64::MAX)),
    ] {
        let result = decode_value(c, Some(&v(value.clone())));
        assert!(
            matches!(result, Err(ValueError::Malformed { .. })),
            "{value:?}: {result:?}"
        );
    }
}

#[test]
fn floats_are_shortest_round_trip() {
    let float = col(MYSQL_TYPE_FLOAT, &[4], false, 0);
    let double = col(MYSQL_TYPE_DOUBLE, &[8], false, 0);
    let cases: &[(&ColumnSpec, BinlogValue<'static>, &str)] = &[
        (&float, from_binlog(&float, &0.1_f32.to_le_bytes()), "0.1"),
        (&float, v(Value::Float(3.402_823_5e38)), "3.4028235e38"),
        (&float, v(Value::Float(-1.5)), "-1.5"),
        (&float, v(Value::Float(1.0)), "1.0"),
        (&float, v(Value::Float(1e-7)), "1e-7"),
        (&double, from_binlog(&double, &0.1_f64.to_le_bytes()), "0.1"),
        (
            &double,
            v(Value::Double(f64::MAX)),
            "1.7976931348623157e308",
        ),
        (&double, v(Value::Double(5e-324)), "5e-324"),
        (&double, v(Value::Double(-0.0)), "-0.0"),
    ];
    for (c, value, expected) in cases {
        assert_eq!(decode_json(c, value), *expected, "{value:?}");
    }
    let nan = decode_value(&float, Some(&v(Value::Float(f32::NAN))));
    assert!(matches!(nan, Err(ValueError::Malformed { .. })), "{nan:?}");
    let inf = decode_value(&double, Some(&v(Value::Double(f64::INFINITY))));
    assert!(matches!(inf, Err(ValueError::Malformed { .. })), "{inf:?}");
}

#[test]
fn decimals_keep_digits_and_scale() {
    // Through mysql_common's binary DECIMAL decoder: (text, precision, scale, expected).
    let binary: &[(&str, u8, u8, &str)] = &[
        (
            "12345678901234567890.000001",
            26,
            6,
            "12345678901234567890.000001",
        ),
        ("1.50", 3, 2, "1.50"),
        ("-123.45", 5, 2, "-123.45"),
        ("-0.00", 3, 2, "0.00"),
    ];
    for (text, precision, scale, expected) in binary {
        let c = col(MYSQL_TYPE_NEWDECIMAL, &[*precision, *scale], false, 0);
        let mut raw = Vec::new();
        text.parse::<Decimal>()
            .expect("test decimal parses")
            .write_bin(&mut raw)
            .expect("test decimal encodes");
        assert_eq!(decode_json(&c, &from_binlog(&c, &raw)), *expected, "{text}");
    }
    // From the text mysql_common produces.
    let c = col(MYSQL_TYPE_NEWDECIMAL, &[10, 3], false, 0);
    let text: &[(&str, &str)] = &[
        ("-0.001", "-0.001"),
        ("-0.00", "0.00"),
        ("0", "0"),
        ("-0", "0"),
        ("007.50", "7.50"),
        (
            "99999999999999999999999999999999999999999999999999",
            "99999999999999999999999999999999999999999999999999",
        ),
    ];
    for (input, expected) in text {
        assert_eq!(
            decode_json(&c, &bytes(input.as_bytes())),
            *expected,
            "{input}"
        );
    }
    for bad in [
        "", "-", ".5", "1.", "1e5", "1.2.3", "+1", " 1", "NaN", "1_000",
    ] {
        let result = decode_value(&c, Some(&bytes(bad.as_bytes())));
        assert!(
            matches!(result, Err(ValueError::Malformed { .. })),
            "{bad:?}: {result:?}"
        );
    }
}

#[test]
fn bit_and_year_are_numbers() {
    let cases: &[(ColumnType, &[u8], &[u8], &str)] = &[
        // BIT(n) metadata: [n % 8, n / 8].
        (MYSQL_TYPE_BIT, &[1, 0], &[0x01], "1"),
        (MYSQL_TYPE_BIT, &[2, 1], &[0x03, 0xFF], "1023"),
        (MYSQL_TYPE_BIT, &[0, 8], &[0xFF; 8], "18446744073709551615"),
        (MYSQL_TYPE_YEAR, &[], &[0], "0"),
        (MYSQL_TYPE_YEAR, &[], &[1], "1901"),
        (MYSQL_TYPE_YEAR, &[], &[124], "2024"),
        (MYSQL_TYPE_YEAR, &[], &[255], "2155"),
    ];
    for (ty, meta, raw, expected) in cases {
        let c = col(*ty, meta, false, 0);
        assert_eq!(
            decode_json(&c, &from_binlog(&c, raw)),
            *expected,
            "{ty:?} {raw:?}"
        );
    }
    let c = col(MYSQL_TYPE_BIT, &[0, 8], false, 0);
    let too_long = decode_value(&c, Some(&bytes(&[1; 9])));
    assert!(
        matches!(too_long, Err(ValueError::Malformed { .. })),
        "{too_long:?}"
    );
}
