//! The JSON string writer every JSON text binlog2es produces goes through (documents,
//! field names, bulk action lines). A leaf: the decoder and the `_bulk` bodies share it.

/// Appends `text` as a JSON string (RFC 8259): `"` and `\` escaped, control characters
/// as `\n`-style or `\u00XX` escapes, everything else as UTF-8.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Runs without a byte to escape (most text is one) are copied whole.
    let mut run_start = 0;
    while let Some(at) = next_special(bytes, run_start) {
        let b = bytes.get(at).copied().unwrap_or_default();
        out.extend_from_slice(bytes.get(run_start..at).unwrap_or_default());
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0C => b'f',
            _ => b'u',
        };
        out.extend_from_slice(&[b'\\', short]);
        if short == b'u' {
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0x0F)],
            ]);
        }
        run_start = at + 1;
    }
    out.extend_from_slice(bytes.get(run_start..).unwrap_or_default());
    out.push(b'"');
}

/// The index of the first byte at or after `from` that needs escaping.
fn next_special(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    // 32 bytes a step while none needs escaping, then at most one step of 16 and one of
    // 8; what is left (or the step with a byte to escape) byte by byte.
    let mut at = 0;
    while let Some(chunk) = rest.get(at..).and_then(<[u8]>::first_chunk::<32>) {
        if any_special(chunk) {
            break;
        }
        at += 32;
    }
    if let Some(chunk) = rest.get(at..).and_then(<[u8]>::first_chunk::<16>)
        && !any_special(chunk)
    {
        at += 16;
    }
    if let Some(chunk) = rest.get(at..).and_then(<[u8]>::first_chunk::<8>)
        && escape_mask(u64::from_le_bytes(*chunk)) == 0
    {
        at += 8;
    }
    rest.get(at..)?
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .map(|k| from + at + k)
}

/// Whether any byte of `chunk` needs escaping. One flag per kind, OR-ed at the end: in
/// this form the compiler checks the whole chunk with vector instructions.
fn any_special<const N: usize>(chunk: &[u8; N]) -> bool {
    let (mut control, mut quote, mut backslash) = (0_u8, 0_u8, 0_u8);
    for &b in chunk {
        control |= u8::from(b < 0x20);
        quote |= u8::from(b == b'"');
        backslash |= u8::from(b == b'\\');
    }
    control | quote | backslash != 0
}

/// The high bit of each byte of `word` that is a control character, `"` or `\` (SWAR):
/// zero when none is.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let zero = |x: u64| below(x, 1);
    below(word, 0x20)
        | zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use super::*;
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
            assert_eq!(escape_mask(word) != 0, naive, "byte {b:#x}");
        }
    }

    #[test]
    fn texts_of_every_length_with_several_escapes_match_serde_json() {
        // Lengths across the 32-, 16- and 8-byte steps and the byte-by-byte tail, with up to
        // four special bytes (the first must not hide the second).
        let specials = ['"', '\\', '\n', '\u{0}', '\u{1f}', ' ', '~', 'é', '\u{7f}'];
        let mut seed = 7_u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        for _ in 0..20_000 {
            let len = next(100);
            let mut chars: Vec<char> = (0..len)
                .map(|_| char::from(b'a' + next(26) as u8))
                .collect();
            for _ in 0..next(5) {
                let at = next(chars.len() + 1);
                chars.insert(at, specials[next(specials.len())]);
            }
            let text: String = chars.into_iter().collect();
            let mut out = b"x".to_vec();
            write_json_string(&mut out, &text);
            assert_eq!(
                &out[1..],
                serde_json::to_string(&text).unwrap().as_bytes(),
                "{text:?}"
            );
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
            let mut out = Vec::new();
            write_json_string(&mut out, input);
            let json = String::from_utf8(out).expect("UTF-8");
            assert_eq!(json, *expected, "{input:?}");
            let back: String = serde_json::from_str(&json).expect("valid JSON string");
            assert_eq!(back, *input);
        }
    }
}
