//! The JSON string writer.

use super::*;
use crate::decode::escape::{needs_escape, write_json_string};

#[test]
fn json_strings_escape_at_every_position() {
    // Each special byte at each offset of a text longer than the 8-byte fast path.
    for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '\u{7f}'] {
        for at in 0..20 {
            let mut text: String = "abcdefghijklmnopqrst".into();
            text.insert(at, special);
            let mut out = Vec::new();
            write_json_string(&mut out, &text);
            let back: String = serde_json::from_slice(&out).expect("valid JSON string");
            assert_eq!(back, text, "{special:?} at {at}");
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&text).unwrap(),
                "{special:?} at {at}"
            );
        }
    }
    for b in 0u8..=255 {
        let naive = b < 0x20 || b == b'"' || b == b'\\';
        let word = u64::from_le_bytes([b'a', b'a', b'a', b, b'a', b'a', b'a', b'a']);
        assert_eq!(needs_escape(word), naive, "byte {b:#x}");
    }
}

#[test]
fn strings_are_escaped_per_rfc_8259() {
    let cases: &[(&str, &str)] = &[
        ("", r#""""#),
        ("plain", r#""plain""#),
        (r#"say "hi""#, r#""say \"hi\"""#),
        (r"back\slash", r#""back\\slash""#),
        ("a\nb\rc\td", r#""a\nb\rc\td""#),
        ("\u{8}\u{c}", r#""\b\f""#),
        ("\u{0}\u{1}\u{1f}", r#""\u0000\u0001\u001f""#),
        ("\u{7f} é 😀 \u{2028}", "\"\u{7f} é 😀 \u{2028}\""),
        ("/", r#""/""#),
    ];
    for (input, expected) in cases {
        let json = json_of(&FieldValue::Str((*input).to_owned()));
        assert_eq!(json, *expected, "{input:?}");
        let back: String = serde_json::from_str(&json).expect("valid JSON string");
        assert_eq!(back, *input);
    }
}
