//! DATE, DATETIME, TIMESTAMP and TIME.

use super::*;
use crate::decode::temporal::civil_from_days;
use mysql_common::constants::ColumnType::*;

fn newdate_bytes(y: u32, m: u32, d: u32) -> Vec<u8> {
    let packed = (y << 9) | (m << 5) | d;
    packed.to_le_bytes()[..3].to_vec()
}

#[test]
fn dates() {
    let c = col(MYSQL_TYPE_NEWDATE, &[], false, 0);
    let cases: &[((u32, u32, u32), &str)] = &[
        ((2024, 2, 29), r#""2024-02-29""#),
        ((1000, 1, 1), r#""1000-01-01""#),
        ((9999, 12, 31), r#""9999-12-31""#),
        ((0, 1, 1), r#""0000-01-01""#),
        ((0, 0, 0), "null"),
        ((2024, 0, 0), "null"),
        ((2024, 1, 0), "null"),
        ((2024, 0, 5), "null"),
        // Days past the month's end (ALLOW_INVALID_DATES) are no calendar dates.
        ((2023, 2, 30), "null"),
        ((2023, 2, 29), "null"),
        ((1900, 2, 29), "null"),
        ((2000, 2, 29), r#""2000-02-29""#),
        ((0, 2, 29), r#""0000-02-29""#),
        ((2023, 4, 31), "null"),
        ((2023, 6, 31), "null"),
        ((2023, 9, 31), "null"),
        ((2023, 11, 31), "null"),
        ((2023, 11, 30), r#""2023-11-30""#),
        ((2023, 12, 31), r#""2023-12-31""#),
    ];
    for ((y, m, d), expected) in cases {
        let raw = newdate_bytes(*y, *m, *d);
        assert_eq!(
            decode_json(&c, &from_binlog(&c, &raw)),
            *expected,
            "{y}-{m}-{d}"
        );
    }
    let bad = decode_value(&c, Some(&v(Value::Date(2024, 13, 1, 0, 0, 0, 0))));
    assert!(matches!(bad, Err(ValueError::Malformed { .. })), "{bad:?}");
}

/// (year, month, day, hour, minute, second)
type DateTimeParts = (u64, u64, u64, u64, u64, u64);
/// (fsp, negative, (hours, minutes, seconds), microseconds, expected JSON)
type TimeCase = (u8, bool, (i64, i64, i64), i64, &'static str);

/// DATETIME2 row-image bytes (MySQL `my_datetime_packed_to_binary`).
fn datetime2_bytes(dt: DateTimeParts, usec: u32, fsp: u8) -> Vec<u8> {
    let (y, m, d, h, mi, s) = dt;
    let int_part = ((y * 13 + m) << 22) | (d << 17) | (h << 12) | (mi << 6) | s;
    let mut raw = (int_part + 0x80_0000_0000).to_be_bytes()[3..].to_vec();
    match fsp {
        1 | 2 => raw.push((usec / 10_000) as u8),
        3 | 4 => raw.extend_from_slice(&((usec / 100) as u16).to_be_bytes()),
        5 | 6 => raw.extend_from_slice(&usec.to_be_bytes()[1..]),
        _ => {}
    }
    raw
}

#[test]
fn datetimes() {
    let at = (2024, 2, 29, 13, 45, 1);
    let cases: &[(u8, DateTimeParts, u32, &str)] = &[
        (0, at, 0, r#""2024-02-29T13:45:01""#),
        (1, at, 500_000, r#""2024-02-29T13:45:01.5""#),
        (3, at, 123_000, r#""2024-02-29T13:45:01.123""#),
        (3, at, 0, r#""2024-02-29T13:45:01.000""#),
        (6, at, 123_456, r#""2024-02-29T13:45:01.123456""#),
        (6, at, 1, r#""2024-02-29T13:45:01.000001""#),
        (
            6,
            (9999, 12, 31, 23, 59, 59),
            999_999,
            r#""9999-12-31T23:59:59.999999""#,
        ),
        (0, (0, 0, 0, 0, 0, 0), 0, "null"),
        (6, (0, 0, 0, 0, 0, 0), 0, "null"),
        (0, (2024, 0, 0, 10, 0, 0), 0, "null"),
        (0, (2023, 2, 30, 10, 0, 0), 0, "null"),
        (6, (2023, 4, 31, 23, 59, 59), 999_999, "null"),
        (0, (2100, 2, 29, 0, 0, 0), 0, "null"),
        (
            3,
            (2400, 2, 29, 0, 0, 1),
            5_000,
            r#""2400-02-29T00:00:01.005""#,
        ),
    ];
    for (fsp, dt, usec, expected) in cases {
        let c = col(MYSQL_TYPE_DATETIME2, &[*fsp], false, 0);
        let raw = datetime2_bytes(*dt, *usec, *fsp);
        assert_eq!(
            decode_json(&c, &from_binlog(&c, &raw)),
            *expected,
            "{dt:?} fsp {fsp}"
        );
    }
    // Pre-5.6.4 DATETIME: YYYYMMDDHHMMSS as a little-endian u64.
    let old = col(MYSQL_TYPE_DATETIME, &[], false, 0);
    let raw = 20_240_229_134_501_u64.to_le_bytes();
    assert_eq!(
        decode_json(&old, &from_binlog(&old, &raw)),
        r#""2024-02-29T13:45:01""#
    );
}

fn timestamp2_bytes(seconds: u32, usec: u32, fsp: u8) -> Vec<u8> {
    let mut raw = seconds.to_be_bytes().to_vec();
    match fsp {
        1 | 2 => raw.push((usec / 10_000) as u8),
        3 | 4 => raw.extend_from_slice(&((usec / 100) as u16).to_be_bytes()),
        5 | 6 => raw.extend_from_slice(&usec.to_be_bytes()[1..]),
        _ => {}
    }
    raw
}

#[test]
fn timestamps_are_utc() {
    let cases: &[(u8, u32, u32, &str)] = &[
        (0, 0, 0, "null"),
        (6, 0, 0, "null"),
        (0, 1, 0, r#""1970-01-01T00:00:01Z""#),
        (0, 1_709_214_301, 0, r#""2024-02-29T13:45:01Z""#),
        (
            6,
            1_709_214_301,
            123_456,
            r#""2024-02-29T13:45:01.123456Z""#,
        ),
        (3, 1_709_214_301, 123_000, r#""2024-02-29T13:45:01.123Z""#),
        (3, 1_709_214_301, 0, r#""2024-02-29T13:45:01.000Z""#),
        (2, 978_307_199, 990_000, r#""2000-12-31T23:59:59.99Z""#),
        (0, i32::MAX as u32, 0, r#""2038-01-19T03:14:07Z""#),
        // Past 2038 (MariaDB 11.5+): mysql_common prints these as negative i32.
        (0, u32::MAX, 0, r#""2106-02-07T06:28:15Z""#),
    ];
    for (fsp, seconds, usec, expected) in cases {
        let c = col(MYSQL_TYPE_TIMESTAMP2, &[*fsp], false, 0);
        let raw = timestamp2_bytes(*seconds, *usec, *fsp);
        assert_eq!(
            decode_json(&c, &from_binlog(&c, &raw)),
            *expected,
            "{seconds} fsp {fsp}"
        );
    }
    let c = col(MYSQL_TYPE_TIMESTAMP2, &[6], false, 0);
    assert_eq!(decode_json(&c, &bytes(b"0")), "null");
    assert_eq!(
        decode_json(&c, &bytes(b"1709214301.123456")),
        r#""2024-02-29T13:45:01.123456Z""#
    );
    let c3 = col(MYSQL_TYPE_TIMESTAMP2, &[3], false, 0);
    assert_eq!(
        decode_json(&c3, &bytes(b"1709214301.123000")),
        r#""2024-02-29T13:45:01.123Z""#
    );
    for bad in ["", "abc", "1.5", "1.1234567", "-", "99999999999"] {
        let result = decode_value(&c, Some(&bytes(bad.as_bytes())));
        assert!(
            matches!(result, Err(ValueError::Malformed { .. })),
            "{bad:?}: {result:?}"
        );
    }
    let old = col(MYSQL_TYPE_TIMESTAMP, &[], false, 0);
    let raw = 1_709_214_301_u32.to_le_bytes();
    assert_eq!(
        decode_json(&old, &from_binlog(&old, &raw)),
        r#""2024-02-29T13:45:01Z""#
    );
    assert_eq!(decode_json(&old, &from_binlog(&old, &[0; 4])), "null");
}

#[test]
fn civil_from_days_matches_a_day_by_day_calendar() {
    let (mut y, mut m, mut d) = (1970_i64, 1_u8, 1_u8);
    for days in 0..=i64::from(u32::MAX) / 86_400 {
        assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_len = match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        d += 1;
        if d > month_len {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
}

/// TIME2 row-image bytes for fsp 0, 1 (non-negative only) and 6.
fn time2_bytes(negative: bool, h: i64, m: i64, s: i64, usec: i64, fsp: u8) -> Vec<u8> {
    let int_part = (h << 12) | (m << 6) | s;
    match fsp {
        0 => {
            let v = if negative { -int_part } else { int_part } + 0x80_0000;
            v.to_be_bytes()[5..].to_vec()
        }
        1 => {
            assert!(!negative, "helper covers non-negative TIME(1) only");
            let mut raw = (int_part + 0x80_0000).to_be_bytes()[5..].to_vec();
            raw.push((usec / 10_000) as u8);
            raw
        }
        6 => {
            let packed = (int_part << 24) + usec;
            let v = if negative { -packed } else { packed } + 0x8000_0000_0000;
            v.to_be_bytes()[2..].to_vec()
        }
        _ => unreachable!("helper covers fsp 0, 1 and 6"),
    }
}

#[test]
fn times_keep_sign_and_long_hours() {
    let cases: &[TimeCase] = &[
        (0, true, (838, 59, 59), 0, r#""-838:59:59""#),
        (0, false, (838, 59, 59), 0, r#""838:59:59""#),
        (0, false, (0, 0, 0), 0, r#""00:00:00""#),
        (1, false, (13, 45, 1), 500_000, r#""13:45:01.5""#),
        (6, false, (13, 45, 1), 123_456, r#""13:45:01.123456""#),
        (6, true, (0, 0, 0), 1, r#""-00:00:00.000001""#),
        (6, true, (100, 0, 1), 500_000, r#""-100:00:01.500000""#),
    ];
    for (fsp, negative, (h, m, s), usec, expected) in cases {
        let c = col(MYSQL_TYPE_TIME2, &[*fsp], false, 0);
        let raw = time2_bytes(*negative, *h, *m, *s, *usec, *fsp);
        assert_eq!(
            decode_json(&c, &from_binlog(&c, &raw)),
            *expected,
            "{h}:{m}:{s}"
        );
    }
    let c = col(MYSQL_TYPE_TIME2, &[0], false, 0);
    assert_eq!(
        decode_json(&c, &v(Value::Time(false, 1, 2, 3, 4, 0))),
        r#""26:03:04""#
    );
    let old = decode_value(&col(MYSQL_TYPE_TIME, &[], false, 0), None);
    assert!(
        matches!(old, Err(ValueError::Unsupported { .. })),
        "{old:?}"
    );
}
