//! DECIMAL, DATE, DATETIME2, TIMESTAMP2 and TIME2 values written as JSON straight from
//! their packed binlog bytes, for [`super::fast`].
//!
//! The text is the one the long path writes (mysql_common's value, then
//! [`super::value::decode_value`]): the same digits, padding and `null`s. Only the common
//! shapes are handled here; any value that path would refuse or treat specially in a way
//! not repeated here (a short buffer, a digit group out of range, a negative fraction, a
//! year past 9999, …) is left to it, with nothing written and nothing consumed.

use mysql_common::constants::ColumnType;

use super::row::time2_packed;
use super::temporal::{self, civil_from_days};
use super::value::Resolved;
use crate::schema::{ColumnFamily, ColumnSpec};

/// Writes the JSON of the non-NULL value of `col` at the front of `bytes` when it is a
/// DECIMAL, DATE, DATETIME2, TIMESTAMP2 or TIME2 of the common shape, and returns the
/// bytes it took. `None`: another kind or an unusual value, and `out` is as it was.
pub(super) fn write_packed(
    col: &ColumnSpec,
    r: &Resolved,
    bytes: &[u8],
    out: &mut Vec<u8>,
) -> Option<usize> {
    use ColumnType::*;
    let mark = out.len();
    let taken = match (r.family, col.column_type) {
        (ColumnFamily::Decimal, MYSQL_TYPE_NEWDECIMAL) => {
            let (&precision, &scale) = (col.meta.first()?, col.meta.get(1)?);
            write_decimal(bytes, precision, scale, out)
        }
        (ColumnFamily::Date, MYSQL_TYPE_NEWDATE) => write_newdate(bytes, out),
        (ColumnFamily::DateTime { fractional: true }, MYSQL_TYPE_DATETIME2) => {
            write_datetime2(bytes, r.fsp, out)
        }
        (ColumnFamily::Timestamp { fractional: true }, MYSQL_TYPE_TIMESTAMP2) => {
            write_timestamp2(bytes, r.fsp, out)
        }
        (ColumnFamily::Time, MYSQL_TYPE_TIME2) => write_time2(bytes, r.fsp, out),
        _ => None,
    };
    if taken.is_none() {
        out.truncate(mark);
    }
    taken
}

/// Bytes of a partial group of 0..=9 decimal digits in MySQL's binary DECIMAL.
const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

const POW10: [u32; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

/// DECIMAL(precision, scale): `-?int(.frac)?`, the integer part without leading zeros,
/// exactly `scale` fraction digits, no sign on a zero (what mysql_common's text becomes
/// after `canonical_decimal`). Groups of nine digits are stored big-endian, a partial
/// group first and last; the first bit is the sign (set for positive), and a negative
/// value has every byte inverted.
fn write_decimal(bytes: &[u8], precision: u8, scale: u8, out: &mut Vec<u8>) -> Option<usize> {
    // Precision 0 (no bytes at all) and a scale above the precision are the long path's.
    if precision == 0 || scale > precision {
        return None;
    }
    let (intg, frac) = (usize::from(precision - scale), usize::from(scale));
    let (intg_full, intg_part) = (intg / 9, intg % 9);
    let (frac_full, frac_part) = (frac / 9, frac % 9);
    let size = DIG2BYTES[intg_part] + 4 * (intg_full + frac_full) + DIG2BYTES[frac_part];
    let raw = bytes.get(..size)?;
    let mask = if raw.first()? & 0x80 == 0 { 0xff } else { 0 };
    // One group: `digits` digits in its bytes at `at`, below 10^digits or refused.
    let group = |at: usize, digits: usize| -> Option<u32> {
        let n = DIG2BYTES[digits];
        let mut v: u32 = 0;
        for (k, &b) in raw.get(at..at + n)?.iter().enumerate() {
            let b = if at + k == 0 { b ^ 0x80 } else { b };
            v = (v << 8) | u32::from(b ^ mask);
        }
        (v < POW10[digits]).then_some(v)
    };
    // The sign goes in front once the value shows to be non-zero.
    let sign_at = out.len();
    let mut nonzero = false;
    let mut at = 0;
    let mut leading = true;
    let int_groups = std::iter::once(intg_part)
        .filter(|&d| d > 0)
        .chain(std::iter::repeat_n(9, intg_full));
    for digits in int_groups {
        let v = group(at, digits)?;
        at += DIG2BYTES[digits];
        if leading && v == 0 {
            continue;
        }
        push_padded(out, u64::from(v), if leading { 1 } else { 9 });
        leading = false;
        nonzero = true;
    }
    if leading {
        out.push(b'0');
    }
    if frac > 0 {
        out.push(b'.');
        let frac_groups =
            std::iter::repeat_n(9, frac_full).chain(std::iter::once(frac_part).filter(|&d| d > 0));
        for digits in frac_groups {
            let v = group(at, digits)?;
            at += DIG2BYTES[digits];
            nonzero |= v != 0;
            push_padded(out, u64::from(v), digits);
        }
    }
    if mask != 0 && nonzero {
        out.insert(sign_at, b'-');
    }
    Some(size)
}

/// DATE (MYSQL_TYPE_NEWDATE): 3 bytes little-endian, `year << 9 | month << 5 | day`.
fn write_newdate(bytes: &[u8], out: &mut Vec<u8>) -> Option<usize> {
    let &[b0, b1, b2, ..] = bytes else {
        return None;
    };
    let packed = u32::from_le_bytes([b0, b1, b2, 0]);
    let (year, month, day) = (packed >> 9, (packed >> 5) & 15, packed & 31);
    if year > 9999 || month > 12 {
        return None;
    }
    if is_calendar_date(year, month, day) {
        out.push(b'"');
        push_date(out, year, month, day);
        out.push(b'"');
    } else {
        out.extend_from_slice(b"null");
    }
    Some(3)
}

/// Fraction bytes of DATETIME2, TIMESTAMP2 and TIME2 by fractional-second digits.
const FRAC_BYTES: [usize; 7] = [0, 1, 1, 2, 2, 3, 3];

/// The stored fraction in microseconds, read as the signed big-endian number it is.
fn fraction(bytes: &[u8], fsp: u8) -> Option<i64> {
    Some(match (fsp, bytes) {
        (0, _) => 0,
        (1 | 2, &[b, ..]) => i64::from(b as i8) * 10_000,
        (3 | 4, &[b0, b1, ..]) => i64::from(i16::from_be_bytes([b0, b1])) * 100,
        (5 | 6, &[b0, b1, b2, ..]) => i64::from(i32::from_be_bytes([b0, b1, b2, 0]) >> 8),
        _ => return None,
    })
}

/// DATETIME2: 5 bytes big-endian, biased by 2^39, of
/// `((year * 13 + month) << 5 | day) << 17 | hour << 12 | minute << 6 | second`,
/// then the fraction. A date part that is no calendar date is `null`.
fn write_datetime2(bytes: &[u8], fsp: u8, out: &mut Vec<u8>) -> Option<usize> {
    let size = 5 + FRAC_BYTES.get(usize::from(fsp))?;
    let raw = bytes.get(..size)?;
    let (int_bytes, frac_bytes) = raw.split_at(5);
    // Without the bias bit (every real value has it) the long path reports the value.
    if int_bytes.first()? & 0x80 == 0 {
        return None;
    }
    let packed = int_bytes
        .iter()
        .fold(0_u64, |acc, &b| (acc << 8) | u64::from(b))
        - 0x80_0000_0000;
    let micros = fraction(frac_bytes, fsp)?;
    // A negative fraction borrows from the seconds; rare enough to leave to the long path.
    if !(0..=999_999).contains(&micros) {
        return None;
    }
    let ymd = packed >> 17;
    let (year_month, day) = (ymd >> 5, ymd & 31);
    let (year, month) = (year_month / 13, year_month % 13);
    let hms = packed & 0x1_ffff;
    let (hour, minute, second) = (hms >> 12, (hms >> 6) & 63, hms & 63);
    let (year, month, day) = (
        u32::try_from(year).ok()?,
        month as u32, // < 13
        day as u32,   // < 32
    );
    if year > 9999 {
        return None;
    }
    if !is_calendar_date(year, month, day) {
        out.extend_from_slice(b"null");
        return Some(size);
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    out.push(b'"');
    push_date(out, year, month, day);
    out.push(b'T');
    push_clock(out, hour, minute, second, micros as u32, fsp);
    out.push(b'"');
    Some(size)
}

/// TIMESTAMP2: seconds since the epoch, 4 bytes big-endian and unsigned, then the
/// fraction; written in UTC with a `Z`. Zero seconds (MySQL's zero value) is `null`.
fn write_timestamp2(bytes: &[u8], fsp: u8, out: &mut Vec<u8>) -> Option<usize> {
    let size = 4 + FRAC_BYTES.get(usize::from(fsp))?;
    let raw = bytes.get(..size)?;
    let (sec_bytes, frac_bytes) = raw.split_at(4);
    let seconds = u32::from_be_bytes(sec_bytes.try_into().ok()?);
    let micros = fraction(frac_bytes, fsp)?;
    // mysql_common prints a fraction outside 0..=999_999 so that the long path refuses it.
    if !(0..=999_999).contains(&micros) {
        return None;
    }
    if seconds == 0 {
        out.extend_from_slice(b"null");
        return Some(size);
    }
    let seconds = i64::from(seconds);
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let in_day = (seconds % 86_400) as u64;
    out.push(b'"');
    push_date(
        out,
        u32::try_from(year).ok()?, // 1970..=2106
        u32::from(month),
        u32::from(day),
    );
    out.push(b'T');
    push_clock(
        out,
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        micros as u32,
        fsp,
    );
    out.extend_from_slice(b"Z\"");
    Some(size)
}

/// TIME2: `[-]hh:mm:ss[.f]`, hours past 24 (up to 838) kept in the hours.
fn write_time2(bytes: &[u8], fsp: u8, out: &mut Vec<u8>) -> Option<usize> {
    let (packed, size) = time2_packed(bytes, fsp)?;
    let abs = packed.unsigned_abs();
    let hms = abs >> 24;
    // As `read_time2` splits it: ten bits of hours, six of minutes, six of seconds.
    let (hours, minute, second) = ((hms >> 12) % 1024, (hms >> 6) % 64, hms % 64);
    let micros = abs % (1 << 24);
    if minute > 59 || second > 59 || micros > 999_999 {
        return None;
    }
    out.push(b'"');
    if packed < 0 {
        out.push(b'-');
    }
    push_clock(out, hours, minute, second, micros as u32, fsp);
    out.push(b'"');
    Some(size)
}

/// Whether the parts (year below 10 000, month below 16, day below 32) name a calendar day.
fn is_calendar_date(year: u32, month: u32, day: u32) -> bool {
    temporal::is_calendar_date(year as u16, month as u8, day as u8)
}

/// `yyyy-mm-dd` of a year below 10 000.
fn push_date(out: &mut Vec<u8>, year: u32, month: u32, day: u32) {
    out.extend_from_slice(&[
        digit(year / 1000),
        digit(year / 100 % 10),
        digit(year / 10 % 10),
        digit(year % 10),
        b'-',
        digit(month / 10),
        digit(month % 10),
        b'-',
        digit(day / 10),
        digit(day % 10),
    ]);
}

/// `hh:mm:ss` (hours at least two digits) plus, when `fsp > 0`, exactly `fsp` fraction
/// digits of `micros` (below 10^6).
fn push_clock(out: &mut Vec<u8>, hours: u64, minute: u64, second: u64, micros: u32, fsp: u8) {
    if hours < 100 {
        out.extend_from_slice(&[digit(hours / 10), digit(hours % 10)]);
    } else {
        push_padded(out, hours, 2);
    }
    out.extend_from_slice(&[
        b':',
        digit(minute / 10),
        digit(minute % 10),
        b':',
        digit(second / 10),
        digit(second % 10),
    ]);
    if fsp > 0 {
        let fsp = usize::from(fsp.min(6));
        out.push(b'.');
        push_padded(out, u64::from(micros / POW10[6 - fsp]), fsp);
    }
}

/// The ASCII digit of `d` (below 10).
fn digit<T: Into<u64>>(d: T) -> u8 {
    b'0' + (d.into() % 10) as u8
}

/// `value` in decimal, zero-padded on the left to `width` digits.
fn push_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    const ZEROS: [u8; 9] = [b'0'; 9];
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(value).as_bytes();
    let pad = width.saturating_sub(digits.len());
    match ZEROS.get(..pad) {
        Some(zeros) => out.extend_from_slice(zeros),
        None => out.extend(std::iter::repeat_n(b'0', pad)),
    }
    out.extend_from_slice(digits);
}
