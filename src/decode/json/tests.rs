//! Unit tests of JSON writing: binary JSON, MariaDB JSON text, paths and diffs.

use super::*;
use mysql_common::io::ParseBuf;

/// JSONB bytes as MySQL writes them (small storage: 2-byte offsets).
mod enc {
    pub const SMALL_OBJECT: u8 = 0x00;
    pub const SMALL_ARRAY: u8 = 0x02;
    pub const LITERAL: u8 = 0x04;
    pub const INT16: u8 = 0x05;
    pub const INT64: u8 = 0x09;
    pub const UINT64: u8 = 0x0a;
    pub const DOUBLE: u8 = 0x0b;
    pub const STRING: u8 = 0x0c;
    pub const OPAQUE: u8 = 0x0f;
}

/// A scalar value as (type, payload) for [`array`]/[`object`].
type Item = (u8, Vec<u8>);

fn string(s: &str) -> Item {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    (enc::STRING, v)
}

fn int16(i: i16) -> Item {
    (enc::INT16, i.to_le_bytes().to_vec())
}

/// Small array or object body (without the leading type byte).
fn container(keys: Option<&[&str]>, items: &[Item]) -> Vec<u8> {
    let n = items.len();
    let key_entries = keys.map_or(0, |k| k.len() * 4);
    let header = 4 + key_entries + n * 3;
    let mut keys_blob = Vec::new();
    let mut key_entries_bytes = Vec::new();
    if let Some(keys) = keys {
        let mut offset = header;
        for k in keys {
            key_entries_bytes.extend_from_slice(&(offset as u16).to_le_bytes());
            key_entries_bytes.extend_from_slice(&(k.len() as u16).to_le_bytes());
            keys_blob.extend_from_slice(k.as_bytes());
            offset += k.len();
        }
    }
    let mut values_blob = Vec::new();
    let mut value_entries = Vec::new();
    for (ty, payload) in items {
        value_entries.push(*ty);
        if *ty == enc::INT16 || *ty == enc::LITERAL {
            let mut inline = payload.clone();
            inline.resize(2, 0);
            value_entries.extend_from_slice(&inline);
        } else {
            let offset = header + keys_blob.len() + values_blob.len();
            value_entries.extend_from_slice(&(offset as u16).to_le_bytes());
            values_blob.extend_from_slice(payload);
        }
    }
    let total = header + keys_blob.len() + values_blob.len();
    let mut out = Vec::new();
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&(total as u16).to_le_bytes());
    out.extend_from_slice(&key_entries_bytes);
    out.extend_from_slice(&value_entries);
    out.extend_from_slice(&keys_blob);
    out.extend_from_slice(&values_blob);
    out
}

fn doc(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty];
    v.extend_from_slice(body);
    v
}

fn text(bytes: &[u8]) -> Result<String, JsonError> {
    let value: jsonb::Value<'_> = ParseBuf(bytes).parse(()).expect("parses");
    jsonb_to_text(&value)
}

#[test]
fn jsonb_scalars_and_containers_become_json_text() {
    let dec = {
        // DECIMAL(5,2) 123.45: precision, scale, binary.
        let mut d = vec![5, 2];
        Decimal::parse_str_bytes(b"123.45")
            .unwrap()
            .write_bin(&mut d)
            .unwrap();
        (enc::OPAQUE, {
            let mut v = vec![ColumnType::MYSQL_TYPE_NEWDECIMAL as u8, d.len() as u8];
            v.extend_from_slice(&d);
            v
        })
    };
    // 2015-01-15 23:24:25.5 packed.
    let ymd: i64 = ((2015 * 13 + 1) << 5) | 15;
    let hms: i64 = (23 << 12) | (24 << 6) | 25;
    let packed: i64 = (((ymd << 17) | hms) << 24) + 500_000;
    let date_time = (enc::OPAQUE, {
        let mut v = vec![ColumnType::MYSQL_TYPE_DATETIME as u8, 8];
        v.extend_from_slice(&packed.to_le_bytes());
        v
    });
    let date = (enc::OPAQUE, {
        let mut v = vec![ColumnType::MYSQL_TYPE_DATE as u8, 8];
        v.extend_from_slice(&(((ymd << 17) << 24).to_le_bytes()));
        v
    });
    let time_packed: i64 = -((((12_i64 << 12) | (1 << 6) | 2) << 24) + 3);
    let time = (enc::OPAQUE, {
        let mut v = vec![ColumnType::MYSQL_TYPE_TIME as u8, 8];
        v.extend_from_slice(&time_packed.to_le_bytes());
        v
    });
    let blob = (
        enc::OPAQUE,
        vec![ColumnType::MYSQL_TYPE_BLOB as u8, 1, 0x55],
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![enc::LITERAL, 0], "null"),
        (vec![enc::LITERAL, 1], "true"),
        (vec![enc::LITERAL, 2], "false"),
        (doc(enc::INT16, &(-5i16).to_le_bytes()), "-5"),
        (
            doc(enc::INT64, &i64::MIN.to_le_bytes()),
            "-9223372036854775808",
        ),
        (
            doc(enc::UINT64, &u64::MAX.to_le_bytes()),
            "18446744073709551615",
        ),
        (doc(enc::DOUBLE, &0.1f64.to_le_bytes()), "0.1"),
        (doc(enc::DOUBLE, &1.0f64.to_le_bytes()), "1.0"),
        (doc(enc::DOUBLE, &1e300f64.to_le_bytes()), "1e300"),
        (doc(enc::STRING, &string("a\"\n😀").1), r#""a\"\n😀""#),
        (doc(enc::OPAQUE, &dec.1), "123.45"),
        (
            doc(enc::OPAQUE, &date_time.1),
            r#""2015-01-15 23:24:25.500000""#,
        ),
        (doc(enc::OPAQUE, &date.1), r#""2015-01-15""#),
        (doc(enc::OPAQUE, &time.1), r#""-12:01:02.000003""#),
        (doc(enc::OPAQUE, &blob.1), r#""base64:type252:VQ==""#),
        (
            doc(
                enc::SMALL_ARRAY,
                &container(None, &[int16(1), string("x"), (enc::LITERAL, vec![0])]),
            ),
            r#"[1,"x",null]"#,
        ),
        (
            doc(
                enc::SMALL_OBJECT,
                &container(Some(&["a", "bb"]), &[int16(1), dec.clone()]),
            ),
            r#"{"a":1,"bb":123.45}"#,
        ),
        (
            doc(
                enc::SMALL_OBJECT,
                &container(
                    Some(&["k"]),
                    &[(enc::SMALL_ARRAY, container(None, &[int16(7)]))],
                ),
            ),
            r#"{"k":[7]}"#,
        ),
        (doc(enc::SMALL_ARRAY, &container(None, &[])), "[]"),
    ];
    for (bytes, expected) in cases {
        assert_eq!(text(&bytes).unwrap(), expected, "{bytes:?}");
    }
    let failing: Vec<Vec<u8>> = vec![
        doc(enc::DOUBLE, &f64::NAN.to_le_bytes()),
        doc(enc::STRING, &[2, 0xff, 0xfe]),
        doc(
            enc::OPAQUE,
            &[ColumnType::MYSQL_TYPE_NEWDECIMAL as u8, 2, 3, 5],
        ),
        doc(enc::OPAQUE, &[ColumnType::MYSQL_TYPE_DATE as u8, 2, 1, 2]),
    ];
    for bytes in failing {
        let result = ParseBuf(&bytes)
            .parse::<jsonb::Value<'_>>(())
            .map_err(|e| binary(e.to_string()))
            .and_then(|v| jsonb_to_text(&v));
        assert!(result.is_err(), "{bytes:?}: {result:?}");
    }
}

#[test]
fn corrupt_jsonb_never_panics() {
    let good = doc(
        enc::SMALL_OBJECT,
        &container(
            Some(&["a", "bb"]),
            &[
                int16(1),
                (enc::SMALL_ARRAY, container(None, &[string("x")])),
            ],
        ),
    );
    // The fixture itself must be valid, or every mutation below tests only the parser.
    let parsed = ParseBuf(&good)
        .parse::<jsonb::Value<'_>>(())
        .expect("the unmutated fixture parses");
    assert_eq!(jsonb_to_text(&parsed).unwrap(), r#"{"a":1,"bb":["x"]}"#);
    for i in 0..good.len() {
        for b in [0u8, 0x7f, 0xff] {
            let mut bad = good.clone();
            bad[i] = b;
            if let Ok(v) = ParseBuf(&bad).parse::<jsonb::Value<'_>>(()) {
                let _ = jsonb_to_text(&v);
                let _ = to_node(&v, 0);
            }
        }
        if let Ok(v) = ParseBuf(&good[..i]).parse::<jsonb::Value<'_>>(()) {
            let _ = jsonb_to_text(&v);
        }
    }
}

#[test]
fn mariadb_text_is_validated_and_compacted() {
    let cases = [
        (
            r#"{"a": 1, "b" : [true, null, "x y\n"]}"#,
            r#"{"a":1,"b":[true,null,"x y\n"]}"#,
        ),
        (
            "  12345678901234567890.000001 ",
            "12345678901234567890.000001",
        ),
        ("1e400", "1e400"),
        (r#""say \"hi\" \\" "#, r#""say \"hi\" \\""#),
        ("[\n]", "[]"),
    ];
    for (input, expected) in cases {
        assert_eq!(text_to_json(input).unwrap(), expected, "{input}");
    }
    for bad in ["", "{", "[1,]", "{'a':1}", "nul", "1 2", "\"a\nb\""] {
        assert!(
            matches!(text_to_json(bad), Err(JsonError::Text(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn paths_parse_like_mysql_prints_them() {
    let cases: &[(&str, Option<Vec<Leg>>)] = &[
        ("$", Some(vec![])),
        ("$.a", Some(vec![Leg::Key("a".into())])),
        (
            "$.a[3].b",
            Some(vec![
                Leg::Key("a".into()),
                Leg::Index(3),
                Leg::Key("b".into()),
            ]),
        ),
        (
            r#"$."x y"."q\"t""#,
            Some(vec![Leg::Key("x y".into()), Leg::Key("q\"t".into())]),
        ),
        ("$[last]", Some(vec![Leg::FromEnd(0)])),
        ("$[last-2]", Some(vec![Leg::FromEnd(2)])),
        ("a", None),
        ("$.", None),
        ("$[x]", None),
        (r#"$."open"#, None),
    ];
    for (path, expected) in cases {
        assert_eq!(&parse_path(path), expected, "{path}");
    }
}

fn diff_bytes(op: u8, path: &str, value: Option<&[u8]>) -> Vec<u8> {
    let mut v = vec![op, path.len() as u8];
    v.extend_from_slice(path.as_bytes());
    if let Some(value) = value {
        v.push(value.len() as u8);
        v.extend_from_slice(value);
    }
    v
}

#[test]
fn diffs_apply_to_the_before_image() {
    let before = doc(
        enc::SMALL_OBJECT,
        &container(
            Some(&["a", "list"]),
            &[
                int16(1),
                (
                    enc::SMALL_ARRAY,
                    container(None, &[int16(1), int16(2), int16(3)]),
                ),
            ],
        ),
    );
    let before: jsonb::Value<'_> = ParseBuf(&before).parse(()).unwrap();
    let five = doc(enc::INT16, &5i16.to_le_bytes());
    let s = doc(enc::STRING, &string("new").1);
    let cases: Vec<(Vec<Vec<u8>>, &str)> = vec![
        (
            vec![diff_bytes(0, "$.a", Some(&five))],
            r#"{"a":5,"list":[1,2,3]}"#,
        ),
        (
            vec![diff_bytes(0, "$.list[1]", Some(&s))],
            r#"{"a":1,"list":[1,"new",3]}"#,
        ),
        (
            vec![diff_bytes(1, "$.b", Some(&s))],
            r#"{"a":1,"b":"new","list":[1,2,3]}"#,
        ),
        (
            vec![diff_bytes(1, "$.list[0]", Some(&five))],
            r#"{"a":1,"list":[5,1,2,3]}"#,
        ),
        (
            vec![diff_bytes(1, "$.list[9]", Some(&five))],
            r#"{"a":1,"list":[1,2,3,5]}"#,
        ),
        (
            vec![diff_bytes(2, "$.list[0]", None)],
            r#"{"a":1,"list":[2,3]}"#,
        ),
        (vec![diff_bytes(2, "$.a", None)], r#"{"list":[1,2,3]}"#),
        (
            vec![
                diff_bytes(2, "$.a", None),
                diff_bytes(0, "$.list[last]", Some(&five)),
            ],
            r#"{"list":[1,2,5]}"#,
        ),
        (vec![diff_bytes(0, "$", Some(&five))], "5"),
    ];
    for (raw_diffs, expected) in cases {
        let diffs: Vec<JsonDiff<'_>> = raw_diffs
            .iter()
            .map(|d| ParseBuf(d).parse(()).unwrap())
            .collect();
        assert_eq!(
            apply_diffs(&before, &diffs).unwrap(),
            expected,
            "{raw_diffs:?}"
        );
    }
    let failing = [
        diff_bytes(0, "$.missing", Some(&five)),
        diff_bytes(2, "$.list[7]", None),
        diff_bytes(1, "$.a.b", Some(&five)),
        diff_bytes(0, "bad", Some(&five)),
    ];
    for raw in failing {
        let d: JsonDiff<'_> = ParseBuf(&raw).parse(()).unwrap();
        assert!(
            matches!(apply_diffs(&before, &[d]), Err(JsonError::Diff { .. })),
            "{raw:?}"
        );
    }
}

#[test]
fn plain_json_check_accepts_only_what_serde_json_accepts() {
    let plain = [
        r#"{"color":"red","size":3,"dims":{"w":1.5,"h":2},"labels":["a","b"]}"#,
        " [1, -0, 0.5, 1e400, 2E-3, -12.5e+7, true, false, null, \"é 😀\", {}, []] ",
        r#""just a string""#,
        "0",
        "-7",
    ];
    for text in plain {
        assert!(plain_scan(text.as_bytes()).is_some(), "{text}");
    }
    let deep = format!("{}{}", "[".repeat(99), "]".repeat(99));
    assert!(plain_scan(deep.as_bytes()).is_some());
    let not_plain = [
        "",
        " ",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "1e+",
        "+1",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{1:2}",
        "[1 2]",
        "tru",
        "nul",
        "truex",
        "\"a\\nb\"",
        "\"a\u{1}b\"",
        "\"open",
        "[1]]",
        "{}{}",
        "\u{feff}{}",
        "NaN",
        "[1,,2]",
        "{\"a\":}",
        "1 2",
    ];
    let deeper = format!("{}{}", "[".repeat(101), "]".repeat(101));
    let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for text in not_plain
        .iter()
        .copied()
        .chain([deeper.as_str(), too_deep.as_str()])
    {
        assert!(plain_scan(text.as_bytes()).is_none(), "{text}");
    }
    // Whatever the quick check accepts, serde_json accepts too.
    for text in plain
        .iter()
        .copied()
        .chain(not_plain)
        .chain([deep.as_str()])
    {
        if plain_scan(text.as_bytes()).is_some() {
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
                "{text}"
            );
        }
    }
}

#[test]
fn plain_check_tells_whether_whitespace_stands_outside_strings() {
    let cases = [
        (r#"{"a":[1,"x y"],"b":{}}"#, Some(false)),
        (r#"{"a" :1}"#, Some(true)),
        (r#"{"a":[1, 2]}"#, Some(true)),
        (" 1", Some(true)),
        ("1\n", Some(true)),
        (r#"[ ]"#, Some(true)),
        (r#""\t""#, None),
    ];
    for (text, expected) in cases {
        assert_eq!(plain_scan(text.as_bytes()), expected, "{text:?}");
    }
}

/// Whitespace outside strings removed, the slow way (a reference for the tests).
fn compacted(text: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        } else {
            in_string = c == '"';
        }
        out.push(c);
    }
    out
}

#[test]
fn random_json_text_is_judged_as_serde_json_judges_it() {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    // Token soup: mostly valid pieces, so that many texts parse and many nearly do.
    const TOKENS: [&str; 26] = [
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"k\"",
        "\"a b\"",
        "\"é\"",
        "\"q\\\"\"",
        "\"\\n\"",
        "1",
        "-0",
        "0.5",
        "1e5",
        "-2.5E-3",
        "01",
        "1.",
        "true",
        "false",
        "null",
        "nul",
        " ",
        "\n",
        "\t",
        "\"\u{1}\"",
    ];
    let mut rng = StdRng::seed_from_u64(16);
    let (mut valid, mut plain) = (0, 0);
    for _ in 0..100_000 {
        let text: String = (0..rng.random_range(1..12))
            .map(|_| TOKENS[rng.random_range(0..TOKENS.len())])
            .collect();
        let scan = plain_scan(text.as_bytes());
        let serde_ok = serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
        if let Some(spaced) = scan {
            assert!(serde_ok, "{text:?}");
            assert_eq!(spaced, compacted(&text) != text, "{text:?}");
            plain += 1;
        }
        let mut out = b"x".to_vec();
        match write_text_json(&text, &mut out) {
            Ok(()) => {
                assert!(serde_ok, "{text:?}");
                assert_eq!(out[1..], *compacted(&text).as_bytes(), "{text:?}");
                valid += 1;
            }
            Err(_) => {
                assert!(!serde_ok, "{text:?}");
                assert_eq!(out, b"x", "nothing written for {text:?}");
            }
        }
    }
    // The soup must exercise both verdicts and the quick path.
    assert!(
        valid > 1_000 && plain > 1_000 && valid < 90_000,
        "{valid} {plain}"
    );
}
