//! The packed-value writer of the direct reader (`fast_packed`) against the long path
//! (`read_value` + `decode_value`): the same JSON and the same bytes taken whenever it
//! answers, and an answer for every ordinary value.

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use super::*;
use crate::decode::fast_packed::write_packed;
use crate::decode::row::read_value;
use crate::decode::value::resolve;
use mysql_common::constants::ColumnType::*;

/// The long path's JSON and bytes taken, or `None` when it refuses the value.
fn long_path(col: &ColumnSpec, bytes: &[u8]) -> Option<(String, usize)> {
    let mut buf = ParseBuf(bytes);
    let value = read_value(&mut buf, col, false).ok()?;
    let taken = bytes.len() - buf.0.len();
    let field = decode_value(col, Some(&value)).ok()?;
    Some((json_of(&field), taken))
}

/// The direct writer's JSON and bytes taken; checks that it writes nothing when it
/// declines.
fn fast_path(col: &ColumnSpec, bytes: &[u8]) -> Option<(String, usize)> {
    let r = resolve(col).ok()?;
    let mut out = b"{".to_vec();
    let Some(taken) = write_packed(col, &r, bytes, &mut out) else {
        assert_eq!(out, b"{", "{col:?} {bytes:02x?}: declined after writing");
        return None;
    };
    let json = String::from_utf8(out[1..].to_vec()).expect("UTF-8");
    Some((json, taken))
}

/// Both paths on `bytes`; returns the direct writer's JSON when it answered (and then
/// agreed with the long path).
fn same(col: &ColumnSpec, bytes: &[u8]) -> Option<String> {
    let fast = fast_path(col, bytes)?;
    assert_eq!(
        Some(&fast),
        long_path(col, bytes).as_ref(),
        "{:?} {:?} {bytes:02x?}",
        col.column_type,
        col.meta
    );
    Some(fast.0)
}

/// Both paths agree and the direct writer answered `expected`.
fn expect(col: &ColumnSpec, bytes: &[u8], expected: &str) {
    assert_eq!(
        same(col, bytes).as_deref(),
        Some(expected),
        "{:?} {:?} {bytes:02x?}",
        col.column_type,
        col.meta
    );
}

/// Random bytes and one-byte changes of `good`: wherever the direct writer answers, the
/// long path agrees.
fn fuzz_around(col: &ColumnSpec, good: &[u8], rng: &mut StdRng) {
    let mut bad = good.to_vec();
    let at = rng.random_range(0..bad.len() as u64) as usize;
    bad[at] = rng.next_u64() as u8;
    same(col, &bad);
    same(
        col,
        &good[..rng.random_range(0..good.len() as u64) as usize],
    );
    let noise: Vec<u8> = (0..good.len()).map(|_| rng.next_u64() as u8).collect();
    same(col, &noise);
}

/// MySQL's binary DECIMAL(precision, scale) of `int.frac` (digit strings that fit).
fn decimal_bytes(precision: usize, scale: usize, negative: bool, int: &str, frac: &str) -> Vec<u8> {
    const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];
    let intg = precision - scale;
    let int = format!("{int:0>intg$}");
    let frac = format!("{frac:0<scale$}");
    let mut groups: Vec<&str> = Vec::new();
    let lead = intg % 9;
    if lead > 0 {
        groups.push(&int[..lead]);
    }
    groups.extend(
        int.as_bytes()[lead..]
            .chunks(9)
            .map(|c| std::str::from_utf8(c).unwrap()),
    );
    groups.extend(
        frac.as_bytes()
            .chunks(9)
            .map(|c| std::str::from_utf8(c).unwrap()),
    );
    let mut out = Vec::new();
    for g in groups {
        let v: u32 = g.parse().unwrap();
        let n = DIG2BYTES[g.len()];
        out.extend_from_slice(&v.to_be_bytes()[4 - n..]);
    }
    if negative {
        for b in &mut out {
            *b = !*b;
        }
    }
    out[0] ^= 0x80;
    out
}

#[test]
fn decimals_match_the_long_path() {
    let cases: &[(usize, usize, bool, &str, &str, &str)] = &[
        (12, 2, false, "1", "50", "1.50"),
        (12, 2, true, "1", "50", "-1.50"),
        (12, 2, false, "0", "0", "0.00"),
        (12, 2, true, "0", "0", "0.00"),
        (12, 2, true, "0", "05", "-0.05"),
        (12, 2, false, "9999999999", "99", "9999999999.99"),
        (12, 2, false, "1000000000", "01", "1000000000.01"),
        (10, 0, false, "0", "", "0"),
        (10, 0, true, "0", "", "0"),
        (10, 0, true, "42", "", "-42"),
        (9, 0, false, "123456789", "", "123456789"),
        (1, 0, true, "7", "", "-7"),
        (1, 1, false, "", "5", "0.5"),
        (3, 3, true, "", "123", "-0.123"),
        (18, 9, false, "000000001", "000000001", "1.000000001"),
        (
            19,
            0,
            false,
            "1000000000000000000",
            "",
            "1000000000000000000",
        ),
        (
            65,
            30,
            true,
            "12345678901234567890123456789012345",
            "123456789012345678901234567890",
            "-12345678901234567890123456789012345.123456789012345678901234567890",
        ),
        (65, 0, false, &"9".repeat(65), "", &"9".repeat(65)),
        (65, 30, false, "", "1", "0.100000000000000000000000000000"),
    ];
    for &(p, s, neg, int, frac, expected) in cases {
        let col = col(MYSQL_TYPE_NEWDECIMAL, &[p as u8, s as u8], false, 0);
        let mut bytes = decimal_bytes(p, s, neg, int, frac);
        bytes.push(0x5a); // the next column's byte: not taken
        expect(&col, &bytes, expected);
    }
    let mut rng = StdRng::seed_from_u64(65);
    for _ in 0..20_000 {
        let p = 1 + rng.random_range(0..65) as usize;
        let s = rng.random_range(0..p.min(30) as u64 + 1) as usize;
        let digits = |n: usize, rng: &mut StdRng| -> String {
            (0..n)
                .map(|_| (b'0' + rng.random_range(0..10) as u8) as char)
                .collect()
        };
        let (int, frac) = (
            digits(
                rng.random_range(0..p as u64 - s as u64 + 1) as usize,
                &mut rng,
            ),
            digits(s, &mut rng),
        );
        let col = col(MYSQL_TYPE_NEWDECIMAL, &[p as u8, s as u8], false, 0);
        let bytes = decimal_bytes(p, s, rng.random_range(0..2) == 0, &int, &frac);
        assert!(same(&col, &bytes).is_some(), "{p},{s} {int}.{frac}");
        fuzz_around(&col, &bytes, &mut rng);
    }
    // Metadata the long path refuses or treats apart: left to it.
    for meta in [[0u8, 0], [2, 5]] {
        let col = col(MYSQL_TYPE_NEWDECIMAL, &meta, false, 0);
        assert_eq!(fast_path(&col, &[0x80, 0, 0, 0, 0]), None);
    }
}

fn newdate_bytes(y: u32, m: u32, d: u32) -> Vec<u8> {
    ((y << 9) | (m << 5) | d).to_le_bytes()[..3].to_vec()
}

/// The stored fraction of `micros` (already cut to `fsp` digits).
fn frac_bytes(micros: i64, fsp: u8) -> Vec<u8> {
    match fsp {
        1 | 2 => vec![(micros / 10_000) as u8],
        3 | 4 => ((micros / 100) as u16).to_be_bytes().to_vec(),
        5 | 6 => (micros as u32).to_be_bytes()[1..].to_vec(),
        _ => Vec::new(),
    }
}

fn datetime2_bytes(ymdhms: (u64, u64, u64, u64, u64, u64), micros: i64, fsp: u8) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = ymdhms;
    let packed = ((((y * 13 + mo) << 5) | d) << 17) | (h << 12) | (mi << 6) | s;
    let mut out = (packed + 0x80_0000_0000).to_be_bytes()[3..].to_vec();
    out.extend(frac_bytes(micros, fsp));
    out
}

fn timestamp2_bytes(seconds: u32, micros: i64, fsp: u8) -> Vec<u8> {
    let mut out = seconds.to_be_bytes().to_vec();
    out.extend(frac_bytes(micros, fsp));
    out
}

/// TIME2 bytes as MySQL writes them (`my_time_packed_to_binary`).
fn time2_bytes(neg: bool, hms: (i64, i64, i64), micros: i64, fsp: u8) -> Vec<u8> {
    let (h, m, s) = hms;
    let mut packed = (((h << 12) | (m << 6) | s) << 24) + micros;
    if neg {
        packed = -packed;
    }
    let (int, frac) = (packed >> 24, packed % (1 << 24));
    let be = |v: i64, n: usize| (v as u64).to_be_bytes()[8 - n..].to_vec();
    match fsp {
        0 => be(int + 0x80_0000, 3),
        1 | 2 => [be(int + 0x80_0000, 3), be((frac / 10_000) & 0xff, 1)].concat(),
        3 | 4 => [be(int + 0x80_0000, 3), be((frac / 100) & 0xffff, 2)].concat(),
        _ => be(packed + 0x8000_0000_0000, 6),
    }
}

/// `micros` cut to `fsp` digits, as the server stores it.
fn cut(micros: i64, fsp: u8) -> i64 {
    let unit = 10_i64.pow(6 - u32::from(fsp));
    micros / unit * unit
}

#[test]
fn dates_match_the_long_path() {
    let c = col(MYSQL_TYPE_NEWDATE, &[], false, 0);
    expect(&c, &newdate_bytes(2024, 2, 29), r#""2024-02-29""#);
    expect(&c, &newdate_bytes(1, 1, 1), r#""0001-01-01""#);
    expect(&c, &newdate_bytes(9999, 12, 31), r#""9999-12-31""#);
    expect(&c, &newdate_bytes(0, 0, 0), "null");
    expect(&c, &newdate_bytes(2023, 2, 29), "null");
    expect(&c, &newdate_bytes(2024, 4, 31), "null");
    // Parts no server writes: the long path's error, so not answered here.
    assert_eq!(fast_path(&c, &newdate_bytes(10_000, 1, 1)), None);
    assert_eq!(fast_path(&c, &newdate_bytes(2024, 13, 1)), None);
    assert_eq!(fast_path(&c, &[1, 2]), None);
    // MYSQL_TYPE_DATE has no parser in mysql_common: the long path says so.
    let old = col(MYSQL_TYPE_DATE, &[], false, 0);
    assert_eq!(fast_path(&old, &newdate_bytes(2024, 2, 29)), None);
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..20_000 {
        let bytes: Vec<u8> = (0..3).map(|_| rng.next_u64() as u8).collect();
        same(&c, &bytes);
    }
}

/// fsp, date and clock parts, microseconds, the JSON expected.
type DateTimeCase = (u8, (u64, u64, u64, u64, u64, u64), i64, &'static str);

#[test]
fn datetimes_match_the_long_path() {
    let cases: &[DateTimeCase] = &[
        (0, (2024, 2, 29, 13, 45, 1), 0, r#""2024-02-29T13:45:01""#),
        (
            6,
            (2024, 2, 29, 13, 45, 1),
            123_456,
            r#""2024-02-29T13:45:01.123456""#,
        ),
        (
            1,
            (2024, 2, 29, 13, 45, 1),
            900_000,
            r#""2024-02-29T13:45:01.9""#,
        ),
        (
            2,
            (1000, 1, 1, 0, 0, 0),
            10_000,
            r#""1000-01-01T00:00:00.01""#,
        ),
        (
            3,
            (9999, 12, 31, 23, 59, 59),
            999_000,
            r#""9999-12-31T23:59:59.999""#,
        ),
        (
            4,
            (1970, 1, 1, 0, 0, 0),
            100,
            r#""1970-01-01T00:00:00.0001""#,
        ),
        (
            5,
            (2000, 2, 29, 12, 0, 0),
            10,
            r#""2000-02-29T12:00:00.00001""#,
        ),
        (
            6,
            (2000, 2, 29, 12, 0, 0),
            0,
            r#""2000-02-29T12:00:00.000000""#,
        ),
        (0, (0, 0, 0, 0, 0, 0), 0, "null"),
        (6, (0, 0, 0, 0, 0, 0), 0, "null"),
        (3, (2023, 2, 29, 1, 2, 3), 0, "null"),
        (0, (2024, 0, 10, 1, 2, 3), 0, "null"),
    ];
    for &(fsp, parts, micros, expected) in cases {
        let c = col(MYSQL_TYPE_DATETIME2, &[fsp], false, 0);
        let mut bytes = datetime2_bytes(parts, micros, fsp);
        bytes.push(0xa5);
        expect(&c, &bytes, expected);
    }
    let c = col(MYSQL_TYPE_DATETIME2, &[0], false, 0);
    // Without the bias bit, and with a clock no server writes: the long path's errors.
    assert_eq!(fast_path(&c, &[0, 0, 0, 0, 0]), None);
    assert_eq!(
        fast_path(&c, &datetime2_bytes((2024, 1, 1, 24, 0, 0), 0, 0)),
        None
    );
    // A negative fraction (never written by a server) is left to the long path.
    let c = col(MYSQL_TYPE_DATETIME2, &[2], false, 0);
    assert_eq!(fast_path(&c, &[0x80, 0, 0, 0, 1, 0xff]), None);
    let mut rng = StdRng::seed_from_u64(6);
    for _ in 0..20_000 {
        let fsp = rng.random_range(0..7) as u8;
        let c = col(MYSQL_TYPE_DATETIME2, &[fsp], false, 0);
        let parts = (
            rng.random_range(0..10_000),
            1 + rng.random_range(0..12),
            1 + rng.random_range(0..28),
            rng.random_range(0..24),
            rng.random_range(0..60),
            rng.random_range(0..60),
        );
        let bytes = datetime2_bytes(parts, cut(rng.random_range(0..1_000_000) as i64, fsp), fsp);
        assert!(same(&c, &bytes).is_some(), "{parts:?} fsp {fsp}");
        fuzz_around(&c, &bytes, &mut rng);
    }
}

#[test]
fn timestamps_match_the_long_path() {
    let cases: &[(u8, u32, i64, &str)] = &[
        (0, 0, 0, "null"),
        (6, 0, 0, "null"),
        (3, 0, 5_000, "null"),
        (0, 1, 0, r#""1970-01-01T00:00:01Z""#),
        (
            6,
            1_709_214_301,
            123_456,
            r#""2024-02-29T13:45:01.123456Z""#,
        ),
        (2, 1_709_214_301, 0, r#""2024-02-29T13:45:01.00Z""#),
        (1, 951_782_400, 500_000, r#""2000-02-29T00:00:00.5Z""#),
        (0, 2_147_483_647, 0, r#""2038-01-19T03:14:07Z""#),
        // Past 2038 (MariaDB 11.5+): mysql_common's i32 text is mapped back.
        (4, 2_147_483_648, 999_900, r#""2038-01-19T03:14:08.9999Z""#),
        (0, u32::MAX, 0, r#""2106-02-07T06:28:15Z""#),
    ];
    for &(fsp, seconds, micros, expected) in cases {
        let c = col(MYSQL_TYPE_TIMESTAMP2, &[fsp], false, 0);
        let mut bytes = timestamp2_bytes(seconds, micros, fsp);
        bytes.push(0x33);
        expect(&c, &bytes, expected);
    }
    // Fractions no server writes (negative, a million or more): left to the long path.
    let c = col(MYSQL_TYPE_TIMESTAMP2, &[1], false, 0);
    assert_eq!(fast_path(&c, &[0, 0, 0, 1, 0xff]), None);
    assert_eq!(fast_path(&c, &[0, 0, 0, 1, 100]), None);
    let mut rng = StdRng::seed_from_u64(2038);
    for _ in 0..20_000 {
        let fsp = rng.random_range(0..7) as u8;
        let c = col(MYSQL_TYPE_TIMESTAMP2, &[fsp], false, 0);
        let seconds = (rng.next_u64() as u32) | (rng.next_u64() as u32) << 16;
        let bytes = timestamp2_bytes(
            seconds,
            cut(rng.random_range(0..1_000_000) as i64, fsp),
            fsp,
        );
        assert!(same(&c, &bytes).is_some(), "{seconds} fsp {fsp}");
        fuzz_around(&c, &bytes, &mut rng);
    }
}

type TimeCase = (u8, bool, (i64, i64, i64), i64, &'static str);

#[test]
fn times_match_the_long_path() {
    // fsp, negative, hours/minutes/seconds, microseconds, the JSON expected.
    let cases: &[TimeCase] = &[
        (0, false, (0, 0, 0), 0, r#""00:00:00""#),
        (0, false, (13, 45, 1), 0, r#""13:45:01""#),
        (0, true, (13, 45, 1), 0, r#""-13:45:01""#),
        (0, false, (838, 59, 59), 0, r#""838:59:59""#),
        (0, true, (838, 59, 59), 0, r#""-838:59:59""#),
        (6, true, (838, 59, 59), 0, r#""-838:59:59.000000""#),
        (1, true, (0, 0, 0), 500_000, r#""-00:00:00.5""#),
        (2, true, (12, 30, 0), 250_000, r#""-12:30:00.25""#),
        (3, true, (1, 2, 3), 456_000, r#""-01:02:03.456""#),
        (4, false, (100, 0, 0), 100, r#""100:00:00.0001""#),
        (5, true, (24, 0, 0), 10, r#""-24:00:00.00001""#),
        (6, true, (1, 2, 3), 456_789, r#""-01:02:03.456789""#),
        (6, false, (0, 0, 0), 1, r#""00:00:00.000001""#),
    ];
    for &(fsp, neg, hms, micros, expected) in cases {
        let c = col(MYSQL_TYPE_TIME2, &[fsp], false, 0);
        let mut bytes = time2_bytes(neg, hms, micros, fsp);
        bytes.push(0x77);
        expect(&c, &bytes, expected);
    }
    let mut rng = StdRng::seed_from_u64(838);
    for _ in 0..20_000 {
        let fsp = rng.random_range(0..7) as u8;
        let c = col(MYSQL_TYPE_TIME2, &[fsp], false, 0);
        let hms = (
            rng.random_range(0..839) as i64,
            rng.random_range(0..60) as i64,
            rng.random_range(0..60) as i64,
        );
        let neg = rng.random_range(0..2) == 0;
        let bytes = time2_bytes(
            neg,
            hms,
            cut(rng.random_range(0..1_000_000) as i64, fsp),
            fsp,
        );
        assert!(same(&c, &bytes).is_some(), "{neg} {hms:?} fsp {fsp}");
        fuzz_around(&c, &bytes, &mut rng);
    }
}

#[test]
fn other_kinds_and_bad_metadata_are_declined() {
    let int = col(MYSQL_TYPE_LONG, &[], false, 0);
    assert_eq!(fast_path(&int, &[1, 0, 0, 0]), None);
    // Fractional digits above 6: `resolve` refuses the column itself.
    let c = col(MYSQL_TYPE_TIME2, &[7], false, 0);
    assert!(resolve(&c).is_err());
}
