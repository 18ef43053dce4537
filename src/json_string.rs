//! The JSON string writer every JSON text binlog2es produces goes through (documents,
//! field names, bulk action lines). A leaf: the decoder and the `_bulk` bodies share it.

/// Appends `text` as a JSON string (RFC 8259): `"` and `\` escaped, control characters
/// as `\n`-style or `\u00XX` escapes, everything else as UTF-8.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // Text is UTF-8 already: nothing to check, so nothing to fail.
    let _ = write_escaped::<false>(out, text.as_bytes());
}

/// [`write_json_string`] of bytes that must be UTF-8, checked on the way (one pass over
/// ASCII text instead of a check and then the escaping).
///
/// # Errors
/// The bytes are not UTF-8; then nothing is appended.
pub fn write_json_utf8(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), std::str::Utf8Error> {
    write_escaped::<true>(out, bytes)
}

/// The JSON string of `bytes`; with `CHECK`, the scan also stops at the first non-ASCII
/// byte, from where the rest is checked as UTF-8 at once.
fn write_escaped<const CHECK: bool>(
    out: &mut Vec<u8>,
    bytes: &[u8],
) -> Result<(), std::str::Utf8Error> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mark = out.len();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Runs without a byte to escape (most text is one) are copied whole.
    let (mut run_start, mut from, mut ascii) = (0, 0, CHECK);
    loop {
        let found = if ascii {
            next_special::<true>(bytes, from)
        } else {
            next_special::<false>(bytes, from)
        };
        let Some(at) = found else { break };
        let b = bytes.get(at).copied().unwrap_or_default();
        if b >= 0x80 {
            // Only ASCII before `at`, so a character starts there and the rest stands alone.
            if simdutf8::basic::from_utf8(bytes.get(at..).unwrap_or_default()).is_err() {
                out.truncate(mark);
                return std::str::from_utf8(bytes).map(|_| ());
            }
            (ascii, from) = (false, at);
            continue;
        }
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
        from = at + 1;
    }
    out.extend_from_slice(bytes.get(run_start..).unwrap_or_default());
    out.push(b'"');
    Ok(())
}

/// The index of the first byte at or after `from` that needs escaping (or, with
/// `NON_ASCII`, is not ASCII).
fn next_special<const NON_ASCII: bool>(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    // 32 bytes a step while none needs escaping, then at most one step of 16 and one of
    // 8; what is left (or the step with a byte to escape) byte by byte.
    let mut at = 0;
    while let Some(chunk) = rest.get(at..).and_then(<[u8]>::first_chunk::<32>) {
        if any_special::<32, NON_ASCII>(chunk) {
            break;
        }
        at += 32;
    }
    if let Some(chunk) = rest.get(at..).and_then(<[u8]>::first_chunk::<16>)
        && !any_special::<16, NON_ASCII>(chunk)
    {
        at += 16;
    }
    if let Some(chunk) = rest.get(at..).and_then(<[u8]>::first_chunk::<8>)
        && escape_mask::<NON_ASCII>(u64::from_le_bytes(*chunk)) == 0
    {
        at += 8;
    }
    rest.get(at..)?
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\' || (NON_ASCII && b >= 0x80))
        .map(|k| from + at + k)
}

/// Whether any byte of `chunk` needs escaping (or, with `NON_ASCII`, is not ASCII). One
/// flag for all kinds, without short-circuits: in this form the compiler tests the whole
/// chunk with a few vector compares and one mask.
fn any_special<const N: usize, const NON_ASCII: bool>(chunk: &[u8; N]) -> bool {
    let mut any = false;
    for &b in chunk {
        any |= (b < 0x20) | (b == b'"') | (b == b'\\') | (NON_ASCII & (b >= 0x80));
    }
    any
}

/// The high bit of each byte of `word` that is a control character, `"` or `\` (or, with
/// `NON_ASCII`, not ASCII) (SWAR): zero when none is.
fn escape_mask<const NON_ASCII: bool>(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let zero = |x: u64| below(x, 1);
    below(word, 0x20)
        | zero(word ^ (ONES * u64::from(b'"')))
        | zero(word ^ (ONES * u64::from(b'\\')))
        | if NON_ASCII { word & HIGH } else { 0 }
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
            assert_eq!(escape_mask::<false>(word) != 0, naive, "byte {b:#x}");
            assert_eq!(
                escape_mask::<true>(word) != 0,
                naive || b >= 0x80,
                "byte {b:#x}"
            );
        }
    }

    #[test]
    fn bytes_are_checked_as_utf8_while_escaped() {
        use rand::rngs::StdRng;
        use rand::{RngExt, SeedableRng};
        // Pieces around every step width: ASCII, bytes to escape, multi-byte characters and
        // bytes that are no UTF-8 (a lone continuation byte, a cut character, an overlong).
        let pieces: [&[u8]; 9] = [
            b"abcdefgh",
            b"x",
            b"\"",
            b"\n",
            "é".as_bytes(),
            "😀".as_bytes(),
            b"\x80",
            b"\xe2\x82",
            b"\xc0\xaf",
        ];
        let mut rng = StdRng::seed_from_u64(11);
        for _ in 0..20_000 {
            let bytes: Vec<u8> = (0..rng.random_range(0..16))
                .flat_map(|_| pieces[rng.random_range(0..pieces.len())].iter().copied())
                .collect();
            let mut got = b"x".to_vec();
            let verdict = write_json_utf8(&mut got, &bytes);
            match std::str::from_utf8(&bytes) {
                Ok(text) => {
                    let mut want = b"x".to_vec();
                    write_json_string(&mut want, text);
                    assert!(verdict.is_ok(), "{bytes:?}");
                    assert_eq!(got, want, "{bytes:?}");
                }
                Err(e) => {
                    assert_eq!(verdict, Err(e), "{bytes:?}");
                    assert_eq!(got, b"x", "nothing written for {bytes:?}");
                }
            }
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
