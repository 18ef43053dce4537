//! Character data: the column's collation picks a decoder (ten character-set codecs, base64
//! for `binary`), and ENUM/SET values become their labels. The codec table is data.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use encoding_rs::Encoding;
use mysql_common::Value;
use mysql_common::collations::{Collation, CollationId};
use mysql_common::constants::ColumnType;

use super::field::{FieldValue, ValueError, kind, malformed, type_name, unexpected};
use crate::json_string::write_json_string;

/// `bytes` as UTF-8 text of a column in `charset` (utf8mb3/utf8mb4).
pub(super) fn utf8<'b>(bytes: &'b [u8], charset: &'static str) -> Result<&'b str, ValueError> {
    // The SIMD check for the usual (valid) text; std's only to locate the bad byte.
    simdutf8::basic::from_utf8(bytes).or_else(|_| {
        std::str::from_utf8(bytes).map_err(|e| ValueError::InvalidText {
            charset,
            offset: Some(e.valid_up_to()),
        })
    })
}

/// ENUM: the 1-based index of the label; 0 is MySQL's invalid-value marker (`''`).
pub(super) fn decode_enum(
    ty: ColumnType,
    value: &Value,
    labels: &[String],
) -> Result<FieldValue, ValueError> {
    let index = match value {
        Value::Int(i) => u64::try_from(*i).map_err(|_| malformed(ty, i.to_string()))?,
        Value::UInt(u) => *u,
        other => return Err(unexpected(ty, kind(other))),
    };
    if index == 0 {
        return Ok(FieldValue::Str(String::new()));
    }
    usize::try_from(index - 1)
        .ok()
        .and_then(|i| labels.get(i))
        .map(|label| FieldValue::Str(label.clone()))
        .ok_or(ValueError::NoSuchLabel {
            column_type: type_name(ty),
            value: index,
            labels: labels.len(),
        })
}

/// SET: a little-endian bitmap, bit i = label i; written as an array in definition order.
pub(super) fn decode_set(
    ty: ColumnType,
    value: &Value,
    labels: &[String],
) -> Result<FieldValue, ValueError> {
    let Value::Bytes(bytes) = value else {
        return Err(unexpected(ty, kind(value)));
    };
    let mut out = Vec::with_capacity(2 + bytes.len() * 8);
    out.push(b'[');
    let mut first = true;
    for (byte_index, byte) in bytes.iter().enumerate() {
        for bit in 0..8 {
            if byte & (1 << bit) == 0 {
                continue;
            }
            let i = byte_index * 8 + bit;
            let label = labels.get(i).ok_or(ValueError::NoSuchLabel {
                column_type: type_name(ty),
                value: i as u64 + 1,
                labels: labels.len(),
            })?;
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_string(&mut out, label);
        }
    }
    out.push(b']');
    String::from_utf8(out)
        .map(FieldValue::Raw)
        .map_err(|_| malformed(ty, String::from_utf8_lossy(bytes).into_owned()))
}

/// Decodes an ENUM/SET label from the table map by the column's collation. Binary-collation
/// labels are kept as text (MySQL shows them as they are), so they must be UTF-8.
///
/// # Errors
/// Bytes invalid in the character set, or an unknown collation.
pub fn decode_label(collation: u16, bytes: &[u8]) -> Result<String, ValueError> {
    let (codec, charset) = text_codec(collation)?;
    let codec = match codec {
        TextCodec::Binary => TextCodec::Utf8,
        other => other,
    };
    let value = Value::Bytes(bytes.to_vec());
    match decode_text(ColumnType::MYSQL_TYPE_STRING, &value, codec, charset, None)? {
        FieldValue::Str(label) => Ok(label),
        _ => Err(malformed(
            ColumnType::MYSQL_TYPE_ENUM,
            String::from_utf8_lossy(bytes).into_owned(),
        )),
    }
}

/// How the bytes of a character column become a JSON string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum TextCodec {
    /// The `binary` character set: base64, standard alphabet, padded.
    Binary,
    Utf8,
    Ascii,
    /// ISO-8859-9. encoding_rs only has windows-1254, which differs in 0x80..=0x9F.
    Latin5,
    /// Big-endian UTF-32, which encoding_rs does not decode.
    Utf32,
    Whatwg(&'static Encoding),
}

/// Resolves a collation id to its decoder and MySQL character-set name.
///
/// Ids come from MySQL (via mysql_common's table) or MariaDB, whose ids below 256 agree
/// with MySQL's. MariaDB-only ids, checked against MariaDB 10.11's
/// `information_schema.collation_character_set_applicability`: 576..=738 (UCA 5.2.0 /
/// mysql561 collations, 32 ids per character set), 1024..2048 (NO PAD variants = base
/// id + 1024) and 2048..3328 (UCA 14.0.0, 256 ids per character set).
pub(super) fn text_codec(collation: u16) -> Result<(TextCodec, &'static str), ValueError> {
    // Resolved once per collation id: this runs for every text value.
    static KNOWN: std::sync::OnceLock<Vec<Option<(TextCodec, &'static str)>>> =
        std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| (0..4096).map(|id| resolve_codec(id).ok()).collect());
    match known.get(usize::from(collation)) {
        Some(Some(found)) => Ok(*found),
        _ => resolve_codec(collation),
    }
}

pub(super) fn resolve_codec(collation: u16) -> Result<(TextCodec, &'static str), ValueError> {
    let by_range = match collation {
        0 => Some("utf8mb4"),
        576..=607 => Some("utf8mb3"),
        608..=639 => Some("utf8mb4"),
        640..=671 => Some("ucs2"),
        672..=703 => Some("utf16"),
        736..=767 => Some("utf32"),
        2048..=3327 => Some(match (collation - 2048) >> 8 {
            0 => "utf8mb3",
            1 => "utf8mb4",
            2 => "ucs2",
            3 => "utf16",
            _ => "utf32",
        }),
        _ => None,
    };
    if let Some(name) = by_range {
        return codec_for_charset(name).ok_or(ValueError::UnknownCollation { collation });
    }
    let base_id = if (1024..2048).contains(&collation) {
        collation - 1024
    } else {
        collation
    };
    let resolved = Collation::resolve(CollationId::from(base_id));
    match resolved.charset() {
        "unknown" => Err(ValueError::UnknownCollation { collation }),
        name => codec_for_charset(name).ok_or_else(|| ValueError::UnsupportedCharset {
            collation,
            charset: name.to_owned(),
        }),
    }
}

/// MySQL character-set name → decoder, following MySQL's own tables where encoding_rs
/// (the WHATWG encodings) has a match or a superset: latin1 is windows-1252 with the five
/// undefined bytes as C1 controls, exactly as in MySQL; tis620 uses windows-874, gb2312
/// GBK, eucjpms EUC-JP and cp932 Shift_JIS (WHATWG's Shift_JIS is Windows-31J). dec8,
/// cp850, cp852, hp8, swe7, keybcs2, macce, armscii8 and geostd8 have no decoder.
fn codec_for_charset(name: &str) -> Option<(TextCodec, &'static str)> {
    use encoding_rs as enc;
    let whatwg =
        |encoding: &'static Encoding, name: &'static str| (TextCodec::Whatwg(encoding), name);
    Some(match name {
        "binary" => (TextCodec::Binary, "binary"),
        "utf8mb4" => (TextCodec::Utf8, "utf8mb4"),
        "utf8mb3" | "utf8" => (TextCodec::Utf8, "utf8mb3"),
        "ascii" => (TextCodec::Ascii, "ascii"),
        "latin5" => (TextCodec::Latin5, "latin5"),
        "utf32" => (TextCodec::Utf32, "utf32"),
        "latin1" => whatwg(enc::WINDOWS_1252, "latin1"),
        "latin2" => whatwg(enc::ISO_8859_2, "latin2"),
        "latin7" => whatwg(enc::ISO_8859_13, "latin7"),
        "greek" => whatwg(enc::ISO_8859_7, "greek"),
        "hebrew" => whatwg(enc::ISO_8859_8, "hebrew"),
        "cp1250" => whatwg(enc::WINDOWS_1250, "cp1250"),
        "cp1251" => whatwg(enc::WINDOWS_1251, "cp1251"),
        "cp1256" => whatwg(enc::WINDOWS_1256, "cp1256"),
        "cp1257" => whatwg(enc::WINDOWS_1257, "cp1257"),
        "cp866" => whatwg(enc::IBM866, "cp866"),
        "koi8r" => whatwg(enc::KOI8_R, "koi8r"),
        "koi8u" => whatwg(enc::KOI8_U, "koi8u"),
        "macroman" => whatwg(enc::MACINTOSH, "macroman"),
        "tis620" => whatwg(enc::WINDOWS_874, "tis620"),
        "sjis" => whatwg(enc::SHIFT_JIS, "sjis"),
        "cp932" => whatwg(enc::SHIFT_JIS, "cp932"),
        "ujis" => whatwg(enc::EUC_JP, "ujis"),
        "eucjpms" => whatwg(enc::EUC_JP, "eucjpms"),
        "euckr" => whatwg(enc::EUC_KR, "euckr"),
        "gb2312" => whatwg(enc::GBK, "gb2312"),
        "gbk" => whatwg(enc::GBK, "gbk"),
        "gb18030" => whatwg(enc::GB18030, "gb18030"),
        "big5" => whatwg(enc::BIG5, "big5"),
        // MySQL's ucs2 and utf16 are big-endian.
        "ucs2" => whatwg(enc::UTF_16BE, "ucs2"),
        "utf16" => whatwg(enc::UTF_16BE, "utf16"),
        "utf16le" => whatwg(enc::UTF_16LE, "utf16le"),
        _ => return None,
    })
}

pub(super) fn decode_text(
    ty: ColumnType,
    value: &Value,
    codec: TextCodec,
    charset: &'static str,
    pad_to: Option<usize>,
) -> Result<FieldValue, ValueError> {
    let Value::Bytes(bytes) = value else {
        return Err(unexpected(ty, kind(value)));
    };
    let invalid = |offset| ValueError::InvalidText { charset, offset };
    let text = match codec {
        TextCodec::Binary => {
            let bytes: Cow<'_, [u8]> = match pad_to {
                Some(n) if bytes.len() < n => {
                    let mut padded = bytes.clone();
                    padded.resize(n, 0);
                    Cow::Owned(padded)
                }
                _ => Cow::Borrowed(bytes),
            };
            BASE64.encode(bytes)
        }
        TextCodec::Utf8 => utf8(bytes, charset)?.to_owned(),
        TextCodec::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
            Some(offset) => return Err(invalid(Some(offset))),
            None => bytes.iter().map(|&b| char::from(b)).collect(),
        },
        TextCodec::Latin5 => bytes
            .iter()
            .map(|&b| match b {
                0xD0 => 'Ğ',
                0xDD => 'İ',
                0xDE => 'Ş',
                0xF0 => 'ğ',
                0xFD => 'ı',
                0xFE => 'ş',
                b => char::from(b),
            })
            .collect(),
        TextCodec::Utf32 => {
            let chunks = bytes.chunks_exact(4);
            if !chunks.remainder().is_empty() {
                return Err(invalid(Some(bytes.len() - chunks.remainder().len())));
            }
            let mut text = String::with_capacity(bytes.len() / 4);
            for (i, chunk) in chunks.enumerate() {
                let code = chunk
                    .try_into()
                    .ok()
                    .and_then(|quad: [u8; 4]| char::from_u32(u32::from_be_bytes(quad)))
                    .ok_or_else(|| invalid(Some(i * 4)))?;
                text.push(code);
            }
            text
        }
        TextCodec::Whatwg(encoding) => encoding
            .decode_without_bom_handling_and_without_replacement(bytes)
            .ok_or_else(|| invalid(None))?
            .into_owned(),
    };
    Ok(FieldValue::Str(text))
}
