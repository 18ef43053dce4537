//! Numeric column types at their edges become the JSON numbers SPEC §6 prescribes: integers of
//! every width signed and UNSIGNED (the full 64-bit unsigned range exact), FLOAT and DOUBLE as
//! the shortest text that reads back as the same 32/64-bit value, DECIMAL with MySQL's exact
//! digits and scale, BIT(n) and YEAR as numbers. Each document is compared field by field with
//! the expected JSON written out literally, and the digits are checked on the raw `_source`
//! text wherever a round trip through f64 would hide an error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

/// Waits for `expected.len()` documents and compares each with its expected `_source`.
///
/// serde_json (without `float_roundtrip`) may read a number text into an f64 one unit in the
/// last place off (`1e-45` → `1.0000000000000001e-45`), so a non-integer number that is within
/// 2 ulp of the expected one counts as equal here; the exact digits are checked on the raw
/// `_source` text ([`assert_raw_digits`], [`assert_float_text`]).
async fn assert_docs(f: &mut Fixture, expected: &[(&str, Value)]) {
    f.wait_for_count(expected.len() as u64).await;
    for (id, want) in expected {
        let mut doc = f
            .doc(id)
            .await
            .unwrap_or_else(|| panic!("no document {id}"));
        if let (Some(doc), Some(want)) = (doc.as_object_mut(), want.as_object()) {
            for (name, value) in doc.iter_mut() {
                if let Some(w) = want.get(name)
                    && parse_slack(value, w)
                {
                    *value = w.clone();
                }
            }
        }
        assert_fields(&doc, want, &format!("document {id}"));
    }
}

/// Whether two f64 numbers differ by at most 2 units in the last place (same sign).
fn parse_slack(got: &Value, want: &Value) -> bool {
    let (Some(g), Some(w)) = (got.as_number(), want.as_number()) else {
        return false;
    };
    if !(g.is_f64() && w.is_f64()) {
        return false;
    }
    let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
    g.is_sign_negative() == w.is_sign_negative()
        && (g.to_bits() as i64 - w.to_bits() as i64).abs() <= 2
}

/// Checks the exact text of fields in the raw `_source` of documents: (id, field, text).
async fn assert_raw_digits(f: &Fixture, cases: &[(&str, &str, &str)]) {
    let mut problems = Vec::new();
    for (id, field, digits) in cases {
        let raw = f.raw_source(id).await;
        let got = raw_field(&raw, field);
        if got != *digits {
            problems.push(format!(
                "  document {id} field {field}: expected {digits}, got {got}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} number text(s) differ:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

const INTEGERS: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, \
    i8 TINYINT, i16 SMALLINT, i24 MEDIUMINT, i32 INT, i64 BIGINT, \
    u8 TINYINT UNSIGNED, u16 SMALLINT UNSIGNED, u24 MEDIUMINT UNSIGNED, u32 INT UNSIGNED, \
    u64 BIGINT UNSIGNED, \
    flag TINYINT(1))";

#[tokio::test]
async fn integers_keep_every_width_and_sign() {
    // GIVEN a daemon streaming every integer width, signed and UNSIGNED, and TINYINT(1)
    // (the daemon creates the index: BIGINT UNSIGNED becomes unsigned_long)
    let mut f = Fixture::start("num-int", INTEGERS).await;

    // WHEN rows with the minimums, the maximums, zero, -1 and NULL are inserted (MEDIUMINT's
    // -1 and -8388608 are three bytes with the top bit set: they must be sign-extended)
    f.sql(
        "INSERT INTO t VALUES \
           (1, -128, -32768, -8388608, -2147483648, -9223372036854775808, \
               0, 0, 0, 0, 0, -128), \
           (2, 127, 32767, 8388607, 2147483647, 9223372036854775807, \
               255, 65535, 16777215, 4294967295, 18446744073709551615, 127), \
           (3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), \
           (4, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1), \
           (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await;

    // THEN each document holds exactly these numbers (TINYINT(1) is a number, not a boolean)
    assert_docs(
        &mut f,
        &[
            (
                "1",
                json!({"id": 1, "i8": -128, "i16": -32768, "i24": -8388608,
                       "i32": -2147483648_i64, "i64": -9223372036854775808_i64,
                       "u8": 0, "u16": 0, "u24": 0, "u32": 0, "u64": 0, "flag": -128}),
            ),
            (
                "2",
                json!({"id": 2, "i8": 127, "i16": 32767, "i24": 8388607, "i32": 2147483647,
                       "i64": 9223372036854775807_i64, "u8": 255, "u16": 65535,
                       "u24": 16777215, "u32": 4294967295_u64,
                       "u64": 18446744073709551615_u64, "flag": 127}),
            ),
            (
                "3",
                json!({"id": 3, "i8": 0, "i16": 0, "i24": 0, "i32": 0, "i64": 0,
                       "u8": 0, "u16": 0, "u24": 0, "u32": 0, "u64": 0, "flag": 0}),
            ),
            (
                "4",
                json!({"id": 4, "i8": -1, "i16": -1, "i24": -1, "i32": -1, "i64": -1,
                       "u8": 1, "u16": 1, "u24": 1, "u32": 1, "u64": 1, "flag": 1}),
            ),
            (
                "5",
                json!({"id": 5, "i8": null, "i16": null, "i24": null, "i32": null,
                       "i64": null, "u8": null, "u16": null, "u24": null, "u32": null,
                       "u64": null, "flag": null}),
            ),
        ],
    )
    .await;

    // AND the 64-bit extremes are written digit for digit
    assert_raw_digits(
        &f,
        &[
            ("1", "i64", "-9223372036854775808"),
            ("2", "i64", "9223372036854775807"),
            ("2", "u64", "18446744073709551615"),
            ("1", "i24", "-8388608"),
            ("4", "i24", "-1"),
            ("2", "u24", "16777215"),
        ],
    )
    .await;
    f.daemon.assert_running();
}

/// # Panics
/// Unless `text` reads back as exactly the 32-bit `want` (sign of zero included) and is its
/// shortest decimal form: read as a 64-bit value it equals the f64 of the shortest digits
/// (so a widened `0.10000000149011612` fails for 0.1).
fn assert_float_text(text: &str, want: f32, what: &str) {
    let as_f32: f32 = text
        .parse()
        .unwrap_or_else(|e| panic!("{what}: {text:?} is no number: {e}"));
    assert_eq!(
        as_f32.to_bits(),
        want.to_bits(),
        "{what}: {text} reads back as the 32-bit {as_f32:e}, expected {want:e}"
    );
    let shortest: f64 = format!("{want:e}").parse().unwrap();
    let as_f64: f64 = text.parse().unwrap();
    assert_eq!(
        as_f64.to_bits(),
        shortest.to_bits(),
        "{what}: {text} is not the shortest text of the 32-bit {want:e} (read as f64: {as_f64:e})"
    );
}

/// # Panics
/// Unless `text` reads back as exactly the 64-bit `want` (sign of zero included).
fn assert_double_text(text: &str, want: f64, what: &str) {
    let got: f64 = text
        .parse()
        .unwrap_or_else(|e| panic!("{what}: {text:?} is no number: {e}"));
    assert_eq!(
        got.to_bits(),
        want.to_bits(),
        "{what}: {text} reads back as {got:e}, expected {want:e}"
    );
}

#[tokio::test]
async fn floats_are_the_shortest_text_of_their_binary_value() {
    // GIVEN a daemon streaming a FLOAT and a DOUBLE column
    let mut f = Fixture::start(
        "num-float",
        "CREATE TABLE t (id INT PRIMARY KEY, f FLOAT, d DOUBLE)",
    )
    .await;

    // WHEN edge values are inserted: 0.1, negative zero (-1e-50 underflows to the FLOAT -0;
    // MariaDB stores a DOUBLE -0.0 as +0, and SELECT shows 0), the largest finite values, the
    // smallest denormals, 16777217 (not a FLOAT: stored as 16777216), and NULL
    f.sql(
        "INSERT INTO t VALUES \
           (1, 0.1, 0.1), \
           (2, -1e-50, -0.0e0), \
           (3, 3.402823466e38, 1.7976931348623157e308), \
           (4, 1e-45, 5e-324), \
           (5, 16777217, -2.5), \
           (6, -3.402823466e38, -1.7976931348623157e308), \
           (7, NULL, NULL)",
    )
    .await;

    // THEN each document holds these values (compared as f64: serde_json keeps no -0 apart)
    assert_docs(
        &mut f,
        &[
            ("1", json!({"id": 1, "f": 0.1, "d": 0.1})),
            ("2", json!({"id": 2, "f": -0.0, "d": 0.0})),
            (
                "3",
                json!({"id": 3, "f": 3.4028235e38, "d": 1.7976931348623157e308}),
            ),
            ("4", json!({"id": 4, "f": 1e-45, "d": 5e-324})),
            ("5", json!({"id": 5, "f": 16777216.0, "d": -2.5})),
            (
                "6",
                json!({"id": 6, "f": -3.4028235e38, "d": -1.7976931348623157e308}),
            ),
            ("7", json!({"id": 7, "f": null, "d": null})),
        ],
    )
    .await;

    // AND the raw text reads back as the same binary value, and a FLOAT as its shortest digits
    // (not the f32 widened to f64, e.g. 1.401298464324817e-45 for 1e-45)
    let floats: [(&str, f32); 6] = [
        ("1", 0.1),
        ("2", -0.0),
        ("3", f32::MAX),
        ("4", f32::from_bits(1)),
        ("5", 16777216.0),
        ("6", f32::MIN),
    ];
    for (id, want) in floats {
        let raw = f.raw_source(id).await;
        assert_float_text(
            raw_field(&raw, "f"),
            want,
            &format!("document {id} field f"),
        );
    }
    let doubles: [(&str, f64); 6] = [
        ("1", 0.1),
        ("2", 0.0),
        ("3", f64::MAX),
        ("4", f64::from_bits(1)),
        ("5", -2.5),
        ("6", f64::MIN),
    ];
    for (id, want) in doubles {
        let raw = f.raw_source(id).await;
        assert_double_text(
            raw_field(&raw, "d"),
            want,
            &format!("document {id} field d"),
        );
    }
    f.daemon.assert_running();
}

const DECIMALS: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, \
    wide DECIMAL(65,30), whole DECIMAL(10,0), money DECIMAL(5,2), small DECIMAL(10,3))";

const DEC65_MAX: &str = "99999999999999999999999999999999999.999999999999999999999999999999";

#[tokio::test]
async fn decimals_keep_mysql_digits_and_scale() {
    // GIVEN a daemon streaming DECIMAL columns of the widest precision and scale, no scale,
    // a money-like (5,2) and a scale with leading zeros
    let mut f = Fixture::start("num-dec", DECIMALS).await;

    // WHEN the maximums, the minimums, the smallest magnitudes, zeros and NULL are inserted
    f.sql(&format!(
        "INSERT INTO t VALUES \
           (1, {DEC65_MAX}, 9999999999, 999.99, 9999999.999), \
           (2, -{DEC65_MAX}, -9999999999, -999.99, -9999999.999), \
           (3, 0.000000000000000000000000000001, 1, 1.50, 0.001), \
           (4, -0.000000000000000000000000000001, -1, -0.01, -0.001), \
           (5, 0, 0, 0.00, 0), \
           (6, 12345678901234567890.000001, 1234567890, 12.3, 0.01), \
           (7, NULL, NULL, NULL, NULL)"
    ))
    .await;

    // THEN each document holds the numbers (as f64 here: serde_json rounds the wide ones)
    assert_docs(
        &mut f,
        &[
            (
                "1",
                json!({"id": 1, "wide": 1e35, "whole": 9999999999_u64, "money": 999.99,
                       "small": 9999999.999}),
            ),
            (
                "2",
                json!({"id": 2, "wide": -1e35, "whole": -9999999999_i64, "money": -999.99,
                       "small": -9999999.999}),
            ),
            (
                "3",
                json!({"id": 3, "wide": 1e-30, "whole": 1, "money": 1.5, "small": 0.001}),
            ),
            (
                "4",
                json!({"id": 4, "wide": -1e-30, "whole": -1, "money": -0.01, "small": -0.001}),
            ),
            (
                "5",
                json!({"id": 5, "wide": 0.0, "whole": 0, "money": 0.0, "small": 0.0}),
            ),
            (
                "6",
                json!({"id": 6, "wide": 12345678901234567890.000001_f64, "whole": 1234567890,
                       "money": 12.3, "small": 0.01}),
            ),
            (
                "7",
                json!({"id": 7, "wide": null, "whole": null, "money": null, "small": null}),
            ),
        ],
    )
    .await;

    // AND the stored text has exactly MySQL's digits: every scale digit, leading zeros, no
    // exponent, no float rounding
    let zeros30 = "0".repeat(30);
    let max = DEC65_MAX.to_string();
    let min = format!("-{DEC65_MAX}");
    let tiny = format!("0.{}1", "0".repeat(29));
    let minus_tiny = format!("-{tiny}");
    let zero = format!("0.{zeros30}");
    let big = format!("12345678901234567890.000001{}", "0".repeat(24));
    assert_raw_digits(
        &f,
        &[
            ("1", "wide", &max),
            ("1", "whole", "9999999999"),
            ("1", "money", "999.99"),
            ("1", "small", "9999999.999"),
            ("2", "wide", &min),
            ("2", "whole", "-9999999999"),
            ("2", "money", "-999.99"),
            ("2", "small", "-9999999.999"),
            ("3", "wide", &tiny),
            ("3", "whole", "1"),
            ("3", "money", "1.50"),
            ("3", "small", "0.001"),
            ("4", "wide", &minus_tiny),
            ("4", "whole", "-1"),
            ("4", "money", "-0.01"),
            ("4", "small", "-0.001"),
            ("5", "wide", &zero),
            ("5", "whole", "0"),
            ("5", "money", "0.00"),
            ("5", "small", "0.000"),
            ("6", "wide", &big),
            ("6", "whole", "1234567890"),
            ("6", "money", "12.30"),
            ("6", "small", "0.010"),
        ],
    )
    .await;
    f.daemon.assert_running();
}

#[tokio::test]
async fn bits_and_years_are_numbers() {
    // GIVEN a daemon streaming BIT(1), BIT(8), BIT(17), BIT(64) and YEAR columns into an index
    // it creates (BIT(64) reaches 2^64-1, so it must map to unsigned_long)
    let mut f = Fixture::start(
        "num-bit",
        "CREATE TABLE t (id INT PRIMARY KEY, b1 BIT(1), b8 BIT(8), b17 BIT(17), b64 BIT(64), \
         y YEAR)",
    )
    .await;

    // WHEN all-ones, zeros, top bits and the YEAR range (1901, 2155, and 0000) are inserted
    f.sql(
        "INSERT INTO t VALUES \
           (1, b'1', 255, b'11111111111111111', 0xFFFFFFFFFFFFFFFF, 1901), \
           (2, b'0', 0, 0, 0, 2155), \
           (3, 1, 128, 65536, 0x8000000000000000, '0000'), \
           (4, 0, 1, 1, 1, 2024), \
           (5, NULL, NULL, NULL, NULL, NULL)",
    )
    .await;

    // THEN each document holds these numbers (YEAR 0000 is the number 0, as SELECT shows it)
    assert_docs(
        &mut f,
        &[
            (
                "1",
                json!({"id": 1, "b1": 1, "b8": 255, "b17": 131071,
                       "b64": 18446744073709551615_u64, "y": 1901}),
            ),
            (
                "2",
                json!({"id": 2, "b1": 0, "b8": 0, "b17": 0, "b64": 0, "y": 2155}),
            ),
            (
                "3",
                json!({"id": 3, "b1": 1, "b8": 128, "b17": 65536,
                       "b64": 9223372036854775808_u64, "y": 0}),
            ),
            (
                "4",
                json!({"id": 4, "b1": 0, "b8": 1, "b17": 1, "b64": 1, "y": 2024}),
            ),
            (
                "5",
                json!({"id": 5, "b1": null, "b8": null, "b17": null, "b64": null, "y": null}),
            ),
        ],
    )
    .await;
    assert_raw_digits(
        &f,
        &[
            ("1", "b64", "18446744073709551615"),
            ("3", "b64", "9223372036854775808"),
            ("3", "y", "0"),
        ],
    )
    .await;

    // AND the index the daemon created maps BIT(64) to unsigned_long, the others to long
    let mapping = f
        .env
        .es()
        .mapping(&f.index)
        .await
        .expect("the index exists");
    let properties = &mapping["properties"];
    assert_eq!(
        properties["b64"]["type"], "unsigned_long",
        "mapping: {mapping}"
    );
    for field in ["b1", "b8", "b17", "y"] {
        assert_eq!(properties[field]["type"], "long", "{field} in {mapping}");
    }
    f.daemon.assert_running();
}
