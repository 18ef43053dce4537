//! Dates and times in their SPEC §6 text forms: DATE, DATETIME, TIMESTAMP (UTC) and TIME.

use mysql_common::Value;
use mysql_common::constants::ColumnType;

use super::field::{FieldValue, ValueError, kind, malformed, unexpected};

pub(super) fn decode_date(ty: ColumnType, value: &Value) -> Result<FieldValue, ValueError> {
    let Value::Date(year, month, day, ..) = *value else {
        return Err(unexpected(ty, kind(value)));
    };
    check_date(ty, year, month, day)?;
    if !is_calendar_date(year, month, day) {
        return Ok(FieldValue::Null);
    }
    let mut out = String::with_capacity(10);
    push_date(&mut out, year, month, day);
    Ok(FieldValue::Str(out))
}

/// DATETIME: the zero value, and (as for DATE) a date part that is not a calendar date, are
/// `null`: no JSON consumer can read them as dates.
pub(super) fn decode_datetime(
    ty: ColumnType,
    value: &Value,
    fsp: u8,
) -> Result<FieldValue, ValueError> {
    let Value::Date(year, month, day, hour, minute, second, micros) = *value else {
        return Err(unexpected(ty, kind(value)));
    };
    check_date(ty, year, month, day)?;
    if !is_calendar_date(year, month, day) {
        return Ok(FieldValue::Null);
    }
    if hour > 23 || minute > 59 || second > 59 || micros > 999_999 {
        return Err(malformed(ty, format!("{value:?}")));
    }
    let mut out = String::with_capacity(26);
    push_date(&mut out, year, month, day);
    out.push('T');
    push_clock(&mut out, u64::from(hour), minute, second, micros, fsp);
    Ok(FieldValue::Str(out))
}

pub(super) fn decode_timestamp(
    ty: ColumnType,
    value: &Value,
    fsp: u8,
) -> Result<FieldValue, ValueError> {
    let (seconds, micros) = match value {
        // Old TIMESTAMP: unsigned 32-bit seconds.
        Value::Int(seconds) => (*seconds, 0),
        Value::UInt(seconds) => (
            i64::try_from(*seconds).map_err(|_| malformed(ty, seconds.to_string()))?,
            0,
        ),
        // TIMESTAMP2: "<seconds>[.<6-digit micros>]".
        Value::Bytes(bytes) => parse_timestamp2(bytes)
            .ok_or_else(|| malformed(ty, String::from_utf8_lossy(bytes).into_owned()))?,
        other => return Err(unexpected(ty, kind(other))),
    };
    // MySQL's own zero test is on the seconds alone.
    if seconds == 0 {
        return Ok(FieldValue::Null);
    }
    if !(0..=i64::from(u32::MAX)).contains(&seconds) {
        return Err(malformed(ty, seconds.to_string()));
    }
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let in_day = seconds.rem_euclid(86_400);
    // All bounded: the year by u32::MAX seconds (2106), the clock parts by 86 400.
    let (Ok(year), Ok(hour), Ok(minute), Ok(second)) = (
        u16::try_from(year),
        u64::try_from(in_day / 3600),
        u8::try_from(in_day % 3600 / 60),
        u8::try_from(in_day % 60),
    ) else {
        return Err(malformed(ty, seconds.to_string()));
    };
    let mut out = String::with_capacity(27);
    push_date(&mut out, year, month, day);
    out.push('T');
    push_clock(&mut out, hour, minute, second, micros, fsp);
    out.push('Z');
    Ok(FieldValue::Str(out))
}

/// Parses mysql_common's TIMESTAMP2 text. It prints the stored big-endian u32 after a cast
/// to i32, so seconds past 2038-01-19 (MariaDB 11.5+ allows up to 2106) come out negative;
/// they are mapped back to the u32 they were.
fn parse_timestamp2(bytes: &[u8]) -> Option<(i64, u32)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (seconds, micros) = match text.split_once('.') {
        Some((seconds, micros)) => (seconds, Some(micros)),
        None => (text, None),
    };
    let digits = seconds.strip_prefix('-').unwrap_or(seconds);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = seconds.parse().ok()?;
    let seconds = match seconds {
        s if s < 0 && s >= i64::from(i32::MIN) => s + (1_i64 << 32),
        s => s,
    };
    let micros = match micros {
        None => 0,
        Some(m) if m.len() == 6 && m.bytes().all(|b| b.is_ascii_digit()) => m.parse().ok()?,
        Some(_) => return None,
    };
    Some((seconds, micros))
}

/// TIME: hours = days * 24 + h, sign kept (also for a negative value under one hour).
pub(super) fn decode_time(
    ty: ColumnType,
    value: &Value,
    fsp: u8,
) -> Result<FieldValue, ValueError> {
    let Value::Time(negative, days, hour, minute, second, micros) = *value else {
        return Err(unexpected(ty, kind(value)));
    };
    if hour > 23 || minute > 59 || second > 59 || micros > 999_999 {
        return Err(malformed(ty, format!("{value:?}")));
    }
    let mut out = String::with_capacity(17);
    if negative {
        out.push('-');
    }
    push_clock(
        &mut out,
        u64::from(days) * 24 + u64::from(hour),
        minute,
        second,
        micros,
        fsp,
    );
    Ok(FieldValue::Str(out))
}

/// Parts no server stores (even with ALLOW_INVALID_DATES or sql_mode ''): a corrupt value.
fn check_date(ty: ColumnType, year: u16, month: u8, day: u8) -> Result<(), ValueError> {
    if year > 9999 || month > 12 || day > 31 {
        return Err(malformed(ty, format!("{year}-{month}-{day}")));
    }
    Ok(())
}

/// Whether the parts name a day of the proleptic Gregorian calendar (SPEC §6). Not: the zero
/// date, a zero month or day, or a day past the month's end (`2023-02-30`, `2023-04-31`),
/// which MySQL stores under `ALLOW_INVALID_DATES` and which no JSON consumer reads as a date.
pub(super) fn is_calendar_date(year: u16, month: u8, day: u8) -> bool {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let last = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=last).contains(&day)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
pub(super) fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u8, day as u8)
}

fn push_date(out: &mut String, year: u16, month: u8, day: u8) {
    push_padded(out, u64::from(year), 4);
    out.push('-');
    push_padded(out, u64::from(month), 2);
    out.push('-');
    push_padded(out, u64::from(day), 2);
}

/// `hh:mm:ss` plus, when `fsp > 0`, exactly `fsp` fraction digits.
fn push_clock(out: &mut String, hours: u64, minute: u8, second: u8, micros: u32, fsp: u8) {
    push_padded(out, hours, 2);
    out.push(':');
    push_padded(out, u64::from(minute), 2);
    out.push(':');
    push_padded(out, u64::from(second), 2);
    if fsp > 0 {
        let fsp = fsp.min(6);
        out.push('.');
        let scaled = micros / 10_u32.pow(u32::from(6 - fsp));
        push_padded(out, u64::from(scaled), usize::from(fsp));
    }
}

fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}
