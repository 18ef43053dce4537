//! Exact decimal text: the form DECIMAL values (column values and JSON numbers alike) are
//! written in.

/// Checks that `text` is `-?digits(.digits)?` (a JSON number we may write as it is) and
/// returns it with integer-part leading zeros removed and the sign of a zero dropped:
/// MySQL shows a negative zero as `0.00`, and the scale (trailing zeros) is kept.
pub(super) fn canonical_decimal(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((int_part, frac_part)) => (int_part, Some(frac_part)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || !frac_part.is_none_or(all_digits) {
        return None;
    }
    let int_part = match int_part.trim_start_matches('0') {
        "" => "0",
        trimmed => trimmed,
    };
    let is_zero = int_part == "0" && frac_part.is_none_or(|f| f.bytes().all(|b| b == b'0'));
    let mut out = String::with_capacity(text.len());
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(int_part);
    if let Some(frac_part) = frac_part {
        out.push('.');
        out.push_str(frac_part);
    }
    Some(out)
}
