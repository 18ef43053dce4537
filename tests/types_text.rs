//! Text column types become strings decoded by the column's character set as MySQL does
//! (SPEC §6; latin1 is cp1252): multi-byte UTF-8 up to 4-byte characters (also filling a CHAR
//! to its byte boundary), single-byte charsets (latin1's 0x80–0x9F, greek, cp1251, koi8r,
//! latin2), CHAR's trailing-space stripping, long values, and characters JSON must escape.
//! Each document is compared field by field with the expected JSON written out literally. A
//! charset without a decoder (swe7) is covered by tests/types_core.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use serde_json::json;

const CHARSETS: &str = "CREATE TABLE t (\
    id INT PRIMARY KEY, \
    u4 VARCHAR(100) CHARACTER SET utf8mb4, \
    c3 CHAR(3) CHARACTER SET utf8mb4, \
    c63 CHAR(63) CHARACTER SET utf8mb4, \
    c64 CHAR(64) CHARACTER SET utf8mb4, \
    u3 VARCHAR(100) CHARACTER SET utf8mb3, \
    l1 VARCHAR(100) CHARACTER SET latin1, \
    a VARCHAR(100) CHARACTER SET ascii, \
    gr VARCHAR(20) CHARACTER SET greek, \
    w VARCHAR(20) CHARACTER SET cp1251, \
    k VARCHAR(20) CHARACTER SET koi8r, \
    l2 VARCHAR(20) CHARACTER SET latin2\
    ) DEFAULT CHARSET = utf8mb4";

#[tokio::test]
async fn strings_are_decoded_by_their_column_charset() {
    // GIVEN a daemon streaming text columns in utf8mb4, utf8mb3, latin1, ascii, greek, cp1251,
    // koi8r and latin2; CHAR(63) utf8mb4 is 252 bytes (one length byte in the row image),
    // CHAR(64) 256 bytes (two length bytes)
    let mut f = Fixture::start("text-cs", CHARSETS).await;

    // WHEN rows are inserted: emoji (also a ZWJ sequence), CJK, combining marks (NFD, kept
    // as written), 4-byte characters filling CHAR(n) to its last byte, the empty string;
    // single-byte columns get raw bytes: latin1 0x80–0x9F (cp1252, the five bytes cp1252 leaves
    // undefined are the C1 controls, as MySQL converts them), é, 0xA0, ÿ
    let emoji63 = "😀".repeat(63);
    let emoji64 = "🦀".repeat(64);
    f.sql(&format!(
        "INSERT INTO t VALUES \
           (1, 'a😀b🦀 👨\u{200D}👩\u{200D}👧 end', 'a😀b', '{emoji63}', '{emoji64}', 'é€漢', \
               X'808182838485868788898A8B8C8D8E8F', 'plain ascii ~!', \
               X'E1E2E3C1D3', X'CFF0E8E2E5F2A8B8', X'F0D2C9D7C5D4B3A3', X'A1B1A9B9'), \
           (2, '漢字かな한글', '😀😀😀', '', '', 'e\u{0301}', \
               X'909192939495969798999A9B9C9D9E9F', '', '', '', '', ''), \
           (3, 'e\u{0301} o\u{0308}\u{0301}', '𝄞', 'x', 'y', '', \
               X'E9A0FF20', 'tab\there', X'20', X'20', X'20', X'20'), \
           (4, '', '', NULL, NULL, NULL, '', NULL, NULL, NULL, NULL, NULL), \
           (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    ))
    .await;

    // THEN each document holds the decoded strings (VARCHAR keeps a trailing space)
    f.assert_docs(&[
        (
            "1",
            json!({"id": 1, "u4": "a😀b🦀 👨\u{200D}👩\u{200D}👧 end", "c3": "a😀b",
                       "c63": emoji63, "c64": emoji64, "u3": "é€漢",
                       "l1": "€\u{81}‚ƒ„…†‡ˆ‰Š‹Œ\u{8D}Ž\u{8F}",
                       "a": "plain ascii ~!", "gr": "αβγΑΣ", "w": "ПриветЁё",
                       "k": "ПриветЁё", "l2": "ĄąŠš"}),
        ),
        (
            "2",
            json!({"id": 2, "u4": "漢字かな한글", "c3": "😀😀😀", "c63": "", "c64": "",
                       "u3": "e\u{0301}",
                       "l1": "\u{90}\u{2018}\u{2019}\u{201C}\u{201D}•–—˜™š›œ\u{9D}žŸ",
                       "a": "", "gr": "", "w": "", "k": "", "l2": ""}),
        ),
        (
            "3",
            json!({"id": 3, "u4": "e\u{0301} o\u{0308}\u{0301}", "c3": "𝄞",
                       "c63": "x", "c64": "y", "u3": "", "l1": "é\u{A0}ÿ ",
                       "a": "tab\there", "gr": " ", "w": " ", "k": " ", "l2": " "}),
        ),
        (
            "4",
            json!({"id": 4, "u4": "", "c3": "", "c63": null, "c64": null, "u3": null,
                       "l1": "", "a": null, "gr": null, "w": null, "k": null, "l2": null}),
        ),
        (
            "5",
            json!({"id": 5, "u4": null, "c3": null, "c63": null, "c64": null,
                       "u3": null, "l1": null, "a": null, "gr": null, "w": null, "k": null,
                       "l2": null}),
        ),
    ])
    .await;
    f.daemon.assert_running();
}

#[tokio::test]
async fn char_loses_trailing_spaces_as_select_shows() {
    // GIVEN a daemon streaming CHAR(5) in utf8mb4 and latin1 beside a VARCHAR(5), with the
    // default sql_mode (no PAD_CHAR_TO_FULL_LENGTH: SELECT strips CHAR's trailing spaces)
    let mut f = Fixture::start(
        "text-char",
        "CREATE TABLE t (id INT PRIMARY KEY, c CHAR(5) CHARACTER SET utf8mb4, \
         cl CHAR(5) CHARACTER SET latin1, v VARCHAR(5) CHARACTER SET utf8mb4)",
    )
    .await;

    // WHEN values with trailing and leading spaces, only spaces, a trailing tab and a
    // trailing no-break space are inserted
    f.sql(
        "INSERT INTO t VALUES \
           (1, 'ab   ', 'ab   ', 'ab   '), \
           (2, '  ab', '  ab', '  ab'), \
           (3, '     ', '     ', '     '), \
           (4, 'ab\t', 'ab\t', 'ab\t'), \
           (5, 'é\u{A0}', X'E9A0', 'é\u{A0}'), \
           (6, '😀 😀 ', X'2020202041', '😀 😀 ')",
    )
    .await;

    // THEN CHAR values lose their trailing spaces only (SPACE, not tab or NBSP), and VARCHAR
    // keeps them
    f.assert_docs(&[
        ("1", json!({"id": 1, "c": "ab", "cl": "ab", "v": "ab   "})),
        (
            "2",
            json!({"id": 2, "c": "  ab", "cl": "  ab", "v": "  ab"}),
        ),
        ("3", json!({"id": 3, "c": "", "cl": "", "v": "     "})),
        (
            "4",
            json!({"id": 4, "c": "ab\t", "cl": "ab\t", "v": "ab\t"}),
        ),
        (
            "5",
            json!({"id": 5, "c": "é\u{A0}", "cl": "é\u{A0}", "v": "é\u{A0}"}),
        ),
        (
            "6",
            json!({"id": 6, "c": "😀 😀", "cl": "    A", "v": "😀 😀 "}),
        ),
    ])
    .await;

    // AND they are what SELECT returns
    let rows: Vec<(u32, String, String, String)> = f
        .conn
        .query("SELECT id, c, cl, v FROM t ORDER BY id")
        .await
        .unwrap();
    for (id, c, cl, v) in rows {
        let doc = f.doc(&id.to_string()).await.unwrap();
        assert_eq!(
            doc,
            json!({"id": id, "c": c, "cl": cl, "v": v}),
            "document {id} differs from SELECT"
        );
    }
    f.daemon.assert_running();
}

/// id, tx, mt, v.
type Row<'a> = (u32, Option<&'a str>, Option<&'a str>, Option<&'a str>);

#[tokio::test]
async fn json_special_characters_and_long_values_survive() {
    // GIVEN a daemon streaming TEXT and MEDIUMTEXT in utf8mb4 and a VARCHAR(20000) in utf8mb3
    let mut f = Fixture::start(
        "text-json",
        "CREATE TABLE t (id INT PRIMARY KEY, tx TEXT CHARACTER SET utf8mb4, \
         mt MEDIUMTEXT CHARACTER SET utf8mb4, v VARCHAR(20000) CHARACTER SET utf8mb3)",
    )
    .await;

    // WHEN values holding every character JSON must escape (quotes, backslashes, control
    // characters incl. NUL, DEL), the JavaScript line separators U+2028/U+2029, text that
    // looks like JSON escapes, and long values (20000 characters in the VARCHAR, 60000 bytes;
    // 400 KB in the MEDIUMTEXT) are inserted as parameters
    let specials = "double \" single ' back \\ slash / brace } bracket ] colon : comma ,";
    let controls = "nl\ncr\rtab\tbs\u{8}ff\u{c}soh\u{1}us\u{1f}nul\u{0}del\u{7f} \
                    ls\u{2028}ps\u{2029} </script><!--";
    let escapes = r#"\" \\ \u0041 \n {"not": "json"} \ud83d"#;
    let long_varchar = format!("{}ab", "é€x".repeat(6666));
    assert_eq!(long_varchar.chars().count(), 20000);
    let long_text = "😀 line\n".repeat(40_000);
    let rows: [Row<'_>; 4] = [
        (1, Some(specials), Some(controls), Some(escapes)),
        (2, Some(escapes), Some(&long_text), Some(&long_varchar)),
        (3, Some(""), Some(""), Some("")),
        (4, None, None, None),
    ];
    for row in rows {
        f.conn
            .exec_drop("INSERT INTO t VALUES (?, ?, ?, ?)", row)
            .await
            .unwrap();
    }

    // THEN the strings come back unchanged (each compared exactly; long ones by length first,
    // so that a failure stays readable)
    f.wait_for_count(4).await;
    let expected = [
        (
            "1",
            json!({"id": 1, "tx": specials, "mt": controls, "v": escapes}),
        ),
        (
            "2",
            json!({"id": 2, "tx": escapes, "mt": long_text, "v": long_varchar}),
        ),
        ("3", json!({"id": 3, "tx": "", "mt": "", "v": ""})),
        ("4", json!({"id": 4, "tx": null, "mt": null, "v": null})),
    ];
    for (id, want) in &expected {
        let doc = f
            .doc(id)
            .await
            .unwrap_or_else(|| panic!("no document {id}"));
        for field in ["mt", "v"] {
            if let (Some(got), Some(want)) = (doc[field].as_str(), want[field].as_str())
                && got.len() > 1000
            {
                assert_eq!(
                    (got.len(), got.chars().count()),
                    (want.len(), want.chars().count()),
                    "document {id} field {field}: (bytes, characters) differ"
                );
                let first = got.chars().zip(want.chars()).position(|(a, b)| a != b);
                assert_eq!(first, None, "document {id} field {field}: first difference");
            }
        }
        assert_fields(&doc, want, &format!("document {id}"));
    }
    f.daemon.assert_running();
}
