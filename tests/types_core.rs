//! Core column types become the JSON values SPEC §6 prescribes, each written out literally;
//! a column that cannot be decoded (a character set without a decoder) stops the daemon with a
//! located error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use serde_json::json;

const CORE_TYPES: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, \
    i8 TINYINT, i16 SMALLINT, i24 MEDIUMINT, i32 INT, i64 BIGINT, \
    u8 TINYINT UNSIGNED, u16 SMALLINT UNSIGNED, u24 MEDIUMINT UNSIGNED, u32 INT UNSIGNED, \
    u64 BIGINT UNSIGNED, \
    f FLOAT, d DOUBLE, dec30 DECIMAL(30,6), dec5 DECIMAL(5,2), \
    s VARCHAR(20) CHARACTER SET utf8mb4, l VARCHAR(20) CHARACTER SET latin1, \
    dt DATE, dt6 DATETIME(6), dt0 DATETIME, ts3 TIMESTAMP(3) NULL, \
    tm TIME, tm1 TIME(1), \
    bin4 BINARY(4), bl BLOB\
    ) DEFAULT CHARSET = utf8mb4";

#[tokio::test]
async fn core_types_stream_as_spec_values() {
    // GIVEN an index created with `u64` as unsigned_long (dynamic mapping would make it a
    // `long`, which cannot hold 18446744073709551615; osmem-server accepts unsigned_long) and
    // `d` as double (dynamic mapping makes 0.1 a `float`, which cannot hold 1e300), and a
    // daemon streaming a table with the core column types
    let mapping = json!({"mappings": {"properties": {
        "u64": {"type": "unsigned_long"},
        "d": {"type": "double"},
    }}});
    let mut f = Fixture::start_with("types", CORE_TYPES, Some(mapping), |b| b).await;

    // WHEN rows with extreme, fractional, zero and NULL values are inserted
    // Row 1: signed minimums, unsigned zero, and the §6 examples. TIMESTAMP(3) is written in
    // +05:00, so its UTC value is five hours earlier.
    f.sql(
        "SET time_zone = '+05:00'; \
         INSERT INTO t VALUES (1, \
           -128, -32768, -8388608, -2147483648, -9223372036854775808, \
           0, 0, 0, 0, 0, \
           0.1, 0.1, 12345678901234567890.000001, 1.50, \
           'x\u{1F980}y', 'é€', \
           '2024-02-29', '2024-02-29 13:45:01.123456', '2024-02-29 13:45:01', \
           '2024-02-29 18:45:01.250', \
           '-838:59:59', '13:45:01.5', \
           'ab', X'00FF10'); \
         SET time_zone = DEFAULT",
    )
    .await;
    // Row 2: signed and unsigned maximums, negative decimals, zero dates (sql_mode '' allows
    // them in this session only).
    f.sql(
        "SET SESSION sql_mode = ''; \
         INSERT INTO t VALUES (2, \
           127, 32767, 8388607, 2147483647, 9223372036854775807, \
           255, 65535, 16777215, 4294967295, 18446744073709551615, \
           -2.5, 1e300, -0.000001, -999.99, \
           '', 'plain', \
           '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', \
           '0000-00-00 00:00:00', \
           '838:59:59', '00:00:00.0', \
           X'00000001', X''); \
         SET SESSION sql_mode = DEFAULT",
    )
    .await;
    // Row 3: NULL in every nullable column.
    f.sql("INSERT INTO t (id) VALUES (3)").await;

    // THEN each document holds exactly these values
    f.converge().await;
    let row1 = json!({
        "id": 1,
        "i8": -128, "i16": -32768, "i24": -8388608, "i32": -2147483648_i64,
        "i64": i64::MIN,
        "u8": 0, "u16": 0, "u24": 0, "u32": 0, "u64": 0,
        "f": 0.1, "d": 0.1, "dec30": 12345678901234567890.000001, "dec5": 1.5,
        "s": "x\u{1F980}y", "l": "é€",
        "dt": "2024-02-29", "dt6": "2024-02-29T13:45:01.123456", "dt0": "2024-02-29T13:45:01",
        "ts3": "2024-02-29T13:45:01.250Z",
        "tm": "-838:59:59", "tm1": "13:45:01.5",
        "bin4": "YWIAAA==", "bl": "AP8Q",
    });
    let row2 = json!({
        "id": 2,
        "i8": 127, "i16": 32767, "i24": 8388607, "i32": 2147483647, "i64": i64::MAX,
        "u8": 255, "u16": 65535, "u24": 16777215, "u32": 4294967295_u64,
        "u64": 18446744073709551615_u64,
        "f": -2.5, "d": 1e300, "dec30": -0.000001, "dec5": -999.99,
        "s": "", "l": "plain",
        "dt": null, "dt6": null, "dt0": null, "ts3": null,
        "tm": "838:59:59", "tm1": "00:00:00.0",
        "bin4": "AAAAAQ==", "bl": "",
    });
    let row3 = json!({
        "id": 3,
        "i8": null, "i16": null, "i24": null, "i32": null, "i64": null,
        "u8": null, "u16": null, "u24": null, "u32": null, "u64": null,
        "f": null, "d": null, "dec30": null, "dec5": null,
        "s": null, "l": null,
        "dt": null, "dt6": null, "dt0": null, "ts3": null,
        "tm": null, "tm1": null,
        "bin4": null, "bl": null,
    });
    for (id, expected) in [("1", &row1), ("2", &row2), ("3", &row3)] {
        let doc = f
            .doc(id)
            .await
            .unwrap_or_else(|| panic!("no document {id}"));
        assert_fields(&doc, expected, &format!("document {id}"));
    }

    // AND the numbers' digits are exact in the stored text (serde_json would round them)
    let es = f.env.es();
    let raw1 = es.get_raw(&f.index, "1").await.unwrap();
    let raw2 = es.get_raw(&f.index, "2").await.unwrap();
    assert!(raw1.contains("12345678901234567890.000001"), "{raw1}");
    assert!(raw1.contains("1.50"), "{raw1}");
    for (raw, field, digits) in [
        (&raw1, "dec30", "12345678901234567890.000001"),
        (&raw1, "dec5", "1.50"),
        (&raw1, "f", "0.1"),
        (&raw1, "d", "0.1"),
        (&raw1, "i64", "-9223372036854775808"),
        (&raw2, "u64", "18446744073709551615"),
        (&raw2, "dec30", "-0.000001"),
        (&raw2, "dec5", "-999.99"),
    ] {
        assert_eq!(raw_field(raw, field), digits, "field {field} in {raw}");
    }
    f.daemon.assert_running();
}

#[tokio::test]
async fn negative_time_with_a_fraction_keeps_sign_and_fraction() {
    // GIVEN a daemon streaming TIME columns with fractions of 1 to 6 digits
    let ddl = "CREATE TABLE t (id INT PRIMARY KEY, t1 TIME(1), t2 TIME(2), t3 TIME(3), \
               t6 TIME(6))";
    let mut f = Fixture::start("negtime", ddl).await;

    // WHEN negative times with fractions are inserted
    f.sql(
        "INSERT INTO t VALUES \
           (1, '-00:00:00.5', '-12:30:00.25', '-00:00:01.125', '-838:59:58.999999'), \
           (2, '-838:59:58.9', '-00:00:00.01', '-100:00:00.001', '-00:00:00.000001')",
    )
    .await;

    // THEN the sign, the hours and fsp fraction digits are kept (SPEC §6: "-838:59:59")
    f.converge().await;
    let expected = [
        json!({"id": 1, "t1": "-00:00:00.5", "t2": "-12:30:00.25", "t3": "-00:00:01.125",
               "t6": "-838:59:58.999999"}),
        json!({"id": 2, "t1": "-838:59:58.9", "t2": "-00:00:00.01", "t3": "-100:00:00.001",
               "t6": "-00:00:00.000001"}),
    ];
    for (id, expected) in ["1", "2"].into_iter().zip(&expected) {
        let doc = f
            .doc(id)
            .await
            .unwrap_or_else(|| panic!("no document {id}"));
        assert_fields(&doc, expected, &format!("document {id}"));
    }
}

#[tokio::test]
async fn undecodable_column_stops_with_a_located_error() {
    // GIVEN a daemon streaming a table with a column in a character set that has no decoder
    // (swe7; every SPEC §6 type is supported, so a charset stands for what cannot be decoded)
    let env = TestEnv::get();
    let ddl = "CREATE TABLE colours (id INT PRIMARY KEY, shade VARCHAR(10) CHARACTER SET swe7)";
    let (db, mut conn) = env.create_database_with(ddl).await;
    let index = env.unique_index("enum");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.colours"), &index)
        .start()
        .await;

    // WHEN a row of it is written
    conn.query_drop("INSERT INTO colours VALUES (1, 'green')")
        .await
        .unwrap();

    // THEN `run` exits 1 with a message naming the table, the column and a binlog position
    let code = daemon.wait_exit(secs(60)).await;
    let log = daemon.last_run_log();
    assert_eq!(code, 1, "{log}");
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
    let file = env.binlog_file().await;
    let located = log.lines().find(|line| {
        line.contains(&format!("{db}.colours"))
            && line.contains("shade")
            && line.contains(&format!("{file}:"))
    });
    assert!(
        located.is_some(),
        "no line names `{db}.colours`, column `shade` and a position in {file}:\n{log}"
    );
    println!("located error: {}", located.unwrap());
    assert_eq!(env.es().count(&index).await, 0, "a document was written");
}
