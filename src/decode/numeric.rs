//! Numbers: MEDIUMINT (sign restored), DECIMAL (exact text), BIT, YEAR and VECTOR.

use mysql_common::Value;
use mysql_common::constants::ColumnType;

use super::decimal::canonical_decimal;
use super::field::{FieldValue, ValueError, kind, malformed, unexpected};

/// MEDIUMINT. mysql_common 0.37 reads a signed INT24 without sign extension
/// (`ParseBuf::eat_i24_le` fills a zeroed `[u8; 4]`), so -1 arrives as 16777215. A signed
/// MEDIUMINT never exceeds 8388607, so 8388608..=16777215 can only be such a value and is
/// mapped back; a fixed mysql_common that sends the negative number passes unchanged.
pub(super) fn decode_medium_int(
    ty: ColumnType,
    value: &Value,
    unsigned: bool,
) -> Result<FieldValue, ValueError> {
    const SIGN_BIT: i64 = 1 << 23;
    let raw = match value {
        Value::Int(i) => *i,
        Value::UInt(u) => i64::try_from(*u).map_err(|_| malformed(ty, u.to_string()))?,
        other => return Err(unexpected(ty, kind(other))),
    };
    let (min, max) = if unsigned {
        (0, 2 * SIGN_BIT - 1)
    } else {
        (-SIGN_BIT, 2 * SIGN_BIT - 1)
    };
    if !(min..=max).contains(&raw) {
        return Err(malformed(ty, raw.to_string()));
    }
    if unsigned {
        Ok(FieldValue::UInt(raw.unsigned_abs()))
    } else if raw >= SIGN_BIT {
        Ok(FieldValue::Int(raw - 2 * SIGN_BIT))
    } else {
        Ok(FieldValue::Int(raw))
    }
}

pub(super) fn decode_decimal(ty: ColumnType, value: &Value) -> Result<FieldValue, ValueError> {
    let Value::Bytes(bytes) = value else {
        return Err(unexpected(ty, kind(value)));
    };
    std::str::from_utf8(bytes)
        .ok()
        .and_then(canonical_decimal)
        .map(FieldValue::Decimal)
        .ok_or_else(|| malformed(ty, String::from_utf8_lossy(bytes).into_owned()))
}

pub(super) fn decode_bit(ty: ColumnType, value: &Value) -> Result<FieldValue, ValueError> {
    match value {
        // BIT(n) is at most 64 bits, so at most 8 big-endian bytes.
        Value::Bytes(bytes) if bytes.len() <= 8 => Ok(FieldValue::UInt(
            bytes
                .iter()
                .fold(0_u64, |acc, &b| (acc << 8) | u64::from(b)),
        )),
        Value::Bytes(bytes) => Err(malformed(ty, format!("{} bytes", bytes.len()))),
        other => Err(unexpected(ty, kind(other))),
    }
}

pub(super) fn decode_year(ty: ColumnType, value: &Value) -> Result<FieldValue, ValueError> {
    let Value::Bytes(bytes) = value else {
        return Err(unexpected(ty, kind(value)));
    };
    let year: u64 = std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(ty, String::from_utf8_lossy(bytes).into_owned()))?;
    // mysql_common adds 1900 to the stored byte; byte 0 is YEAR 0000 (1900 is not a valid
    // YEAR, whose range is 1901..=2155).
    Ok(FieldValue::UInt(if year == 1900 { 0 } else { year }))
}

/// VECTOR (MySQL 9): little-endian f32 values, written as a JSON array of numbers.
pub(super) fn decode_vector(ty: ColumnType, value: &Value) -> Result<FieldValue, ValueError> {
    let Value::Bytes(bytes) = value else {
        return Err(unexpected(ty, kind(value)));
    };
    let chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return Err(malformed(ty, format!("{} bytes", bytes.len())));
    }
    let mut out = String::with_capacity(2 + bytes.len() * 3);
    out.push('[');
    let mut buffer = ryu::Buffer::new();
    for (i, chunk) in chunks.enumerate() {
        let quad: [u8; 4] = chunk
            .try_into()
            .map_err(|_| malformed(ty, format!("{} bytes", bytes.len())))?;
        let x = f32::from_le_bytes(quad);
        if !x.is_finite() {
            return Err(malformed(ty, x.to_string()));
        }
        if i > 0 {
            out.push(',');
        }
        out.push_str(buffer.format_finite(x));
    }
    out.push(']');
    Ok(FieldValue::Raw(out))
}
