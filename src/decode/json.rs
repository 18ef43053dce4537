//! JSON columns (SPEC §6: "the JSON value itself").
//!
//! - MySQL binary JSON (JSONB) is written as JSON text straight from mysql_common's lazy
//!   [`jsonb::Value`] accessors: no `serde_json::Value` tree, keys in MySQL's stored order
//!   (by length, then bytes, as `SELECT` shows them), doubles as the shortest round-trip
//!   text, DECIMALs with their exact digits, and temporal values as MySQL prints them
//!   (`"2015-01-15 23:24:25.000000"`). Other opaque values become MySQL's
//!   `"base64:type<N>:<data>"` strings. (mysql_common's own `serde_json` conversion turns
//!   decimals into strings and fails on opaque values, hence this writer.)
//! - MariaDB's JSON is a LONGTEXT with a `json_valid()` check: [`text_to_json`] validates the
//!   text and removes insignificant whitespace, keeping numbers' digits as written.
//! - MySQL partial updates ([`apply_diffs`]): the before image's JSONB becomes a small tree,
//!   the REPLACE / INSERT / REMOVE operations are applied at their paths, and the tree is
//!   written back as text. Only columns with a diff build a tree.
//!
//! Everything is bounds-checked; malformed input is a [`JsonError`], never a panic.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mysql_common::binlog::decimal::Decimal;
use mysql_common::binlog::jsonb::{self, ComplexValue, StorageFormat};
use mysql_common::binlog::jsondiff::{JsonDiff, JsonDiffOperation};
use mysql_common::constants::ColumnType;

use super::decimal::canonical_decimal;
use crate::json_string::write_json_string;

/// MySQL refuses documents nested deeper than 100; anything deeper here is malformed.
const MAX_DEPTH: usize = 100;

/// Why a JSON value cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The binary JSON is malformed.
    #[error("malformed binary JSON: {0}")]
    Binary(String),
    /// JSON text (MariaDB) that does not parse.
    #[error("invalid JSON text: {0}")]
    Text(String),
    /// A partial update that does not fit the before image.
    #[error("partial JSON update {op} at `{path}`: {message}")]
    Diff {
        /// REPLACE, INSERT or REMOVE.
        op: &'static str,
        /// The JSON path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn binary(message: impl Into<String>) -> JsonError {
    JsonError::Binary(message.into())
}

/// Writes a JSONB value as compact JSON text.
///
/// # Errors
/// Malformed JSONB, invalid UTF-8 in strings or keys, non-finite doubles, nesting deeper than
/// MySQL allows.
pub fn write_jsonb(out: &mut Vec<u8>, value: &jsonb::Value<'_>) -> Result<(), JsonError> {
    write_value(out, value, 0)
}

/// [`write_jsonb`] into a new string.
///
/// # Errors
/// As [`write_jsonb`].
pub fn jsonb_to_text(value: &jsonb::Value<'_>) -> Result<String, JsonError> {
    let mut out = Vec::with_capacity(64);
    write_jsonb(&mut out, value)?;
    String::from_utf8(out).map_err(|e| binary(e.to_string()))
}

fn write_value(out: &mut Vec<u8>, value: &jsonb::Value<'_>, depth: usize) -> Result<(), JsonError> {
    use jsonb::Value as V;
    if depth > MAX_DEPTH {
        return Err(binary("nested deeper than 100 levels"));
    }
    let mut int = itoa::Buffer::new();
    match value {
        V::Null => out.extend_from_slice(b"null"),
        V::Bool(true) => out.extend_from_slice(b"true"),
        V::Bool(false) => out.extend_from_slice(b"false"),
        V::I16(x) => out.extend_from_slice(int.format(*x).as_bytes()),
        V::U16(x) => out.extend_from_slice(int.format(*x).as_bytes()),
        V::I32(x) => out.extend_from_slice(int.format(*x).as_bytes()),
        V::U32(x) => out.extend_from_slice(int.format(*x).as_bytes()),
        V::I64(x) => out.extend_from_slice(int.format(*x).as_bytes()),
        V::U64(x) => out.extend_from_slice(int.format(*x).as_bytes()),
        V::F64(x) => write_double(out, *x)?,
        V::String(s) => write_utf8_string(out, s.str_raw())?,
        V::SmallArray(a) => write_array(out, a, depth)?,
        V::LargeArray(a) => write_array(out, a, depth)?,
        V::SmallObject(o) => write_object(out, o, depth)?,
        V::LargeObject(o) => write_object(out, o, depth)?,
        V::Opaque(o) => write_opaque(out, o.value_type(), o.data_raw())?,
    }
    Ok(())
}

fn write_double(out: &mut Vec<u8>, x: f64) -> Result<(), JsonError> {
    if !x.is_finite() {
        return Err(binary(format!("double {x} has no JSON form")));
    }
    out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    Ok(())
}

fn write_utf8_string(out: &mut Vec<u8>, raw: &[u8]) -> Result<(), JsonError> {
    let text = std::str::from_utf8(raw)
        .map_err(|e| binary(format!("string is not UTF-8 at byte {}", e.valid_up_to())))?;
    write_json_string(out, text);
    Ok(())
}

fn write_array<'a, T: StorageFormat>(
    out: &mut Vec<u8>,
    array: &'a ComplexValue<'a, T, jsonb::Array>,
    depth: usize,
) -> Result<(), JsonError> {
    out.push(b'[');
    for i in 0..array.element_count() {
        if i > 0 {
            out.push(b',');
        }
        let element = array
            .elem_at(i)
            .map_err(|e| binary(e.to_string()))?
            .ok_or_else(|| binary("array element missing"))?;
        write_value(out, &element, depth + 1)?;
    }
    out.push(b']');
    Ok(())
}

fn write_object<'a, T: StorageFormat>(
    out: &mut Vec<u8>,
    object: &'a ComplexValue<'a, T, jsonb::Object>,
    depth: usize,
) -> Result<(), JsonError> {
    out.push(b'{');
    for i in 0..object.element_count() {
        if i > 0 {
            out.push(b',');
        }
        let key = object
            .key_at(i)
            .map_err(|e| binary(e.to_string()))?
            .ok_or_else(|| binary("object key missing"))?;
        write_utf8_string(out, key.value_raw())?;
        out.push(b':');
        let element = object
            .elem_at(i)
            .map_err(|e| binary(e.to_string()))?
            .ok_or_else(|| binary("object value missing"))?;
        write_value(out, &element, depth + 1)?;
    }
    out.push(b'}');
    Ok(())
}

/// Opaque scalars: MySQL types stored inside JSON, written as MySQL's `JSON` output shows them.
fn write_opaque(out: &mut Vec<u8>, ty: ColumnType, data: &[u8]) -> Result<(), JsonError> {
    use ColumnType::*;
    match ty {
        MYSQL_TYPE_NEWDECIMAL => {
            let text = opaque_decimal(data)?;
            out.extend_from_slice(text.as_bytes());
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_DATETIME | MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIME => {
            let packed = data
                .first_chunk::<8>()
                .map(|b| i64::from_le_bytes(*b))
                .ok_or_else(|| binary("temporal value shorter than 8 bytes"))?;
            let text = match ty {
                MYSQL_TYPE_TIME => packed_time_text(packed),
                MYSQL_TYPE_DATE => packed_datetime_text(packed, false),
                _ => packed_datetime_text(packed, true),
            };
            write_json_string(out, &text);
        }
        other => {
            let text = format!("base64:type{}:{}", other as u8, BASE64.encode(data));
            write_json_string(out, &text);
        }
    }
    Ok(())
}

/// An opaque DECIMAL: precision byte, scale byte, then MySQL's binary decimal.
fn opaque_decimal(data: &[u8]) -> Result<String, JsonError> {
    let bad = || binary("malformed DECIMAL inside JSON");
    let (&precision, rest) = data.split_first().ok_or_else(bad)?;
    let (&scale, bin) = rest.split_first().ok_or_else(bad)?;
    // Decimal::read_bin subtracts scale from precision and indexes a table by both.
    if precision == 0 || precision > 65 || scale > 30 || scale > precision {
        return Err(bad());
    }
    let decimal = Decimal::read_bin(bin, usize::from(precision), usize::from(scale), false)
        .map_err(|_| bad())?;
    canonical_decimal(&decimal.to_string()).ok_or_else(bad)
}

/// `YYYY-MM-DD[ hh:mm:ss.ffffff]` from MySQL's packed datetime (TIME_to_longlong_datetime_packed).
fn packed_datetime_text(packed: i64, with_time: bool) -> String {
    let negative = packed < 0;
    let abs = packed.unsigned_abs();
    let micros = abs % (1 << 24);
    let ymdhms = abs >> 24;
    let ymd = ymdhms >> 17;
    let ym = ymd >> 5;
    let hms = ymdhms % (1 << 17);
    let (year, month, day) = (ym / 13, ym % 13, ymd % (1 << 5));
    let (hour, minute, second) = (hms >> 12, (hms >> 6) % (1 << 6), hms % (1 << 6));
    let sign = if negative { "-" } else { "" };
    if with_time {
        format!("{sign}{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{micros:06}")
    } else {
        format!("{sign}{year:04}-{month:02}-{day:02}")
    }
}

/// `[-]hh:mm:ss.ffffff` from MySQL's packed time (TIME_to_longlong_time_packed).
fn packed_time_text(packed: i64) -> String {
    let negative = packed < 0;
    let abs = packed.unsigned_abs();
    let micros = abs % (1 << 24);
    let hms = abs >> 24;
    let (hour, minute, second) = (
        (hms >> 12) % (1 << 10),
        (hms >> 6) % (1 << 6),
        hms % (1 << 6),
    );
    let sign = if negative { "-" } else { "" };
    format!("{sign}{hour:02}:{minute:02}:{second:02}.{micros:06}")
}

/// Validates MariaDB's JSON text and returns it compact (whitespace outside strings removed,
/// everything else, number digits included, as written).
///
/// # Errors
/// Text that is not one JSON value.
pub fn text_to_json(text: &str) -> Result<String, JsonError> {
    let mut out = Vec::with_capacity(text.len());
    write_text_json(text, &mut out)?;
    // Only ASCII whitespace was left out of valid UTF-8, so the rest is valid UTF-8.
    String::from_utf8(out).map_err(|e| JsonError::Text(e.to_string()))
}

/// [`text_to_json`] appending to `out`: nothing is appended when the text is invalid.
///
/// # Errors
/// Text that is not one JSON value.
pub fn write_text_json(text: &str, out: &mut Vec<u8>) -> Result<(), JsonError> {
    // serde_json skips numbers without converting them, so 1e400 or 30-digit integers pass.
    // Plain text (the usual case) is checked by `plain_scan`, which accepts only what
    // serde_json accepts; serde_json judges the rest and words the error.
    let bytes = text.as_bytes();
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let spaced = match plain_scan(bytes) {
        Some(spaced) => spaced,
        None => {
            serde_json::from_str::<serde::de::IgnoredAny>(text)
                .map_err(|e| JsonError::Text(e.to_string()))?;
            bytes.iter().any(is_space)
        }
    };
    // Compact text (the usual case) is copied as it is.
    if !spaced {
        out.extend_from_slice(bytes);
        return Ok(());
    }
    // Whitespace and quotes are ASCII, so bytes can be scanned without decoding UTF-8;
    // runs between skipped bytes are copied whole.
    out.reserve(bytes.len());
    let (mut in_string, mut escaped, mut run) = (false, false, 0);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if is_space(&b) {
            out.extend_from_slice(&bytes[run..i]);
            run = i + 1;
        } else if b == b'"' {
            in_string = true;
        }
    }
    out.extend_from_slice(&bytes[run..]);
    Ok(())
}

/// A JSON document being patched: containers as trees, scalars as their JSON text.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Scalar(String),
    Array(Vec<Node>),
    /// Members in MySQL's key order (length, then bytes).
    Object(Vec<(String, Node)>),
}

fn to_node(value: &jsonb::Value<'_>, depth: usize) -> Result<Node, JsonError> {
    use jsonb::Value as V;
    if depth > MAX_DEPTH {
        return Err(binary("nested deeper than 100 levels"));
    }
    fn array<'a, T: StorageFormat>(
        a: &'a ComplexValue<'a, T, jsonb::Array>,
        depth: usize,
    ) -> Result<Node, JsonError> {
        let mut items = Vec::new();
        for i in 0..a.element_count() {
            let element = a
                .elem_at(i)
                .map_err(|e| binary(e.to_string()))?
                .ok_or_else(|| binary("array element missing"))?;
            items.push(to_node(&element, depth + 1)?);
        }
        Ok(Node::Array(items))
    }
    fn object<'a, T: StorageFormat>(
        o: &'a ComplexValue<'a, T, jsonb::Object>,
        depth: usize,
    ) -> Result<Node, JsonError> {
        let mut members = Vec::new();
        for i in 0..o.element_count() {
            let key = o
                .key_at(i)
                .map_err(|e| binary(e.to_string()))?
                .ok_or_else(|| binary("object key missing"))?;
            let key = std::str::from_utf8(key.value_raw())
                .map_err(|_| binary("object key is not UTF-8"))?
                .to_owned();
            let element = o
                .elem_at(i)
                .map_err(|e| binary(e.to_string()))?
                .ok_or_else(|| binary("object value missing"))?;
            members.push((key, to_node(&element, depth + 1)?));
        }
        Ok(Node::Object(members))
    }
    match value {
        V::SmallArray(a) => array(a, depth),
        V::LargeArray(a) => array(a, depth),
        V::SmallObject(o) => object(o, depth),
        V::LargeObject(o) => object(o, depth),
        scalar => Ok(Node::Scalar(jsonb_to_text(scalar)?)),
    }
}

fn write_node(out: &mut Vec<u8>, node: &Node) {
    match node {
        Node::Scalar(text) => out.extend_from_slice(text.as_bytes()),
        Node::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_node(out, item);
            }
            out.push(b']');
        }
        Node::Object(members) => {
            out.push(b'{');
            for (i, (key, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(out, key);
                out.push(b':');
                write_node(out, value);
            }
            out.push(b'}');
        }
    }
}

/// One step of a JSON path as MySQL writes them in diffs: `.key`, `."key"`, `[n]`, `[last-n]`.
#[derive(Debug, Clone, PartialEq)]
enum Leg {
    Key(String),
    Index(usize),
    /// `[last]` is `FromEnd(0)`, `[last-2]` `FromEnd(2)`.
    FromEnd(usize),
}

fn parse_path(path: &str) -> Option<Vec<Leg>> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut legs = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Some(legs);
        }
        if let Some(after) = rest.strip_prefix('.') {
            let after = after.trim_start();
            if let Some(quoted) = after.strip_prefix('"') {
                let mut key = String::new();
                let mut chars = quoted.char_indices();
                let end = loop {
                    let (i, c) = chars.next()?;
                    match c {
                        '"' => break i + 1,
                        '\\' => {
                            let (_, e) = chars.next()?;
                            key.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                'r' => '\r',
                                'b' => '\u{8}',
                                'f' => '\u{c}',
                                'u' => {
                                    let mut code = 0u32;
                                    for _ in 0..4 {
                                        code = code * 16 + chars.next()?.1.to_digit(16)?;
                                    }
                                    char::from_u32(code)?
                                }
                                other => other,
                            });
                        }
                        c => key.push(c),
                    }
                };
                legs.push(Leg::Key(key));
                rest = quoted.get(end..)?;
            } else {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let key = after.get(..end)?.trim_end();
                if key.is_empty() {
                    return None;
                }
                legs.push(Leg::Key(key.to_owned()));
                rest = after.get(end..)?;
            }
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = after.get(..end)?.trim();
            let leg = if let Some(back) = inner.strip_prefix("last") {
                let back = back.trim();
                if back.is_empty() {
                    Leg::FromEnd(0)
                } else {
                    Leg::FromEnd(back.strip_prefix('-')?.trim().parse().ok()?)
                }
            } else {
                Leg::Index(inner.parse().ok()?)
            };
            legs.push(leg);
            rest = after.get(end + 1..)?;
        } else {
            return None;
        }
    }
}

/// MySQL orders object keys by length, then bytes.
fn key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

fn resolve(len: usize, leg: &Leg) -> Option<usize> {
    match leg {
        Leg::Index(i) => Some(*i),
        Leg::FromEnd(back) => len.checked_sub(1)?.checked_sub(*back),
        Leg::Key(_) => None,
    }
}

fn child_mut<'n>(node: &'n mut Node, leg: &Leg) -> Option<&'n mut Node> {
    match (node, leg) {
        (Node::Object(members), Leg::Key(key)) => {
            members.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
        }
        (Node::Array(items), leg) => {
            let i = resolve(items.len(), leg)?;
            items.get_mut(i)
        }
        // MySQL auto-wraps a scalar as a one-element array for `[0]`/`[last]`.
        (node @ Node::Scalar(_), leg) if resolve(1, leg) == Some(0) => Some(node),
        _ => None,
    }
}

fn apply_one(root: &mut Node, diff: &JsonDiff<'_>) -> Result<(), JsonError> {
    let op = match diff.operation() {
        JsonDiffOperation::REPLACE => "REPLACE",
        JsonDiffOperation::INSERT => "INSERT",
        JsonDiffOperation::REMOVE => "REMOVE",
    };
    let path = diff.path_str().into_owned();
    let fail = |message: &str| JsonError::Diff {
        op,
        path: path.clone(),
        message: message.to_owned(),
    };
    let legs = parse_path(&path).ok_or_else(|| fail("cannot parse the path"))?;
    let new_value = match diff.value() {
        Some(v) => Some(to_node(v, 0)?),
        None => None,
    };
    let Some((last, parents)) = legs.split_last() else {
        // `$` itself: only a REPLACE of the whole document makes sense.
        return match (diff.operation(), new_value) {
            (JsonDiffOperation::REPLACE, Some(v)) => {
                *root = v;
                Ok(())
            }
            _ => Err(fail("only REPLACE may target `$`")),
        };
    };
    let mut parent = &mut *root;
    for leg in parents {
        parent = child_mut(parent, leg).ok_or_else(|| fail("the path does not exist"))?;
    }
    match diff.operation() {
        JsonDiffOperation::REPLACE => {
            let target = child_mut(parent, last).ok_or_else(|| fail("the path does not exist"))?;
            *target = new_value.ok_or_else(|| fail("no value"))?;
        }
        JsonDiffOperation::INSERT => {
            let value = new_value.ok_or_else(|| fail("no value"))?;
            match (parent, last) {
                (Node::Object(members), Leg::Key(key)) => {
                    match members.binary_search_by(|(k, _)| key_order(k, key)) {
                        Ok(i) => {
                            if let Some(member) = members.get_mut(i) {
                                member.1 = value;
                            }
                        }
                        Err(i) => members.insert(i, (key.clone(), value)),
                    }
                }
                (Node::Array(items), leg) => {
                    let i = match leg {
                        Leg::Index(i) => (*i).min(items.len()),
                        _ => resolve(items.len(), leg).unwrap_or(0).min(items.len()),
                    };
                    items.insert(i, value);
                }
                _ => return Err(fail("the parent is not a container of that kind")),
            }
        }
        JsonDiffOperation::REMOVE => match (parent, last) {
            (Node::Object(members), Leg::Key(key)) => {
                let i = members
                    .iter()
                    .position(|(k, _)| k == key)
                    .ok_or_else(|| fail("the member does not exist"))?;
                members.remove(i);
            }
            (Node::Array(items), leg) => {
                let i = resolve(items.len(), leg)
                    .filter(|&i| i < items.len())
                    .ok_or_else(|| fail("the element does not exist"))?;
                items.remove(i);
            }
            _ => return Err(fail("the parent is not a container of that kind")),
        },
    }
    Ok(())
}

/// Applies MySQL's partial-update operations to the before image's JSON value and returns the
/// new document as compact JSON text.
///
/// # Errors
/// Malformed JSONB, or a diff whose path does not exist in the before image.
pub fn apply_diffs(before: &jsonb::Value<'_>, diffs: &[JsonDiff<'_>]) -> Result<String, JsonError> {
    let mut root = to_node(before, 0)?;
    for diff in diffs {
        apply_one(&mut root, diff)?;
    }
    let mut out = Vec::with_capacity(64);
    write_node(&mut out, &root);
    String::from_utf8(out).map_err(|e| binary(e.to_string()))
}

/// Whether `b` is one JSON value (RFC 8259) of a plain kind: strings without escapes,
/// nesting below 100 (serde_json stops at 128). `Some(spaced)`: it is, and `spaced` says
/// whether whitespace stands outside its strings (then it needs compacting). `None` says
/// nothing: the caller asks serde_json.
///
/// One pass, no recursion: the kinds of the enclosing containers are a stack of bits.
fn plain_scan(b: &[u8]) -> Option<bool> {
    let mut s = Scan {
        b,
        i: 0,
        spaced: false,
    };
    // Whether the innermost open container is an object, and the same of the ones around
    // it (innermost in the low bit); `depth` open containers in all.
    let (mut in_object, mut outer, mut depth) = (false, 0_u128, 0);
    'value: loop {
        s.ws();
        match s.peek()? {
            open @ (b'{' | b'[') => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                let object = open == b'{';
                s.i += 1;
                s.ws();
                if s.peek()? == if object { b'}' } else { b']' } {
                    s.i += 1;
                } else {
                    outer = outer << 1 | u128::from(in_object);
                    in_object = object;
                    depth += 1;
                    if object {
                        s.key()?;
                    }
                    continue 'value;
                }
            }
            b'"' => s.string()?,
            b't' => s.literal(b"true")?,
            b'f' => s.literal(b"false")?,
            b'n' => s.literal(b"null")?,
            b'-' | b'0'..=b'9' => s.number()?,
            _ => return None,
        }
        // After a value: the enclosing containers close, or a comma leads to the next value.
        loop {
            s.ws();
            if depth == 0 {
                return (s.i == b.len()).then_some(s.spaced);
            }
            match s.peek()? {
                b',' => {
                    s.i += 1;
                    if in_object {
                        s.ws();
                        s.key()?;
                    }
                    continue 'value;
                }
                c if c == if in_object { b'}' } else { b']' } => {
                    s.i += 1;
                    depth -= 1;
                    in_object = outer & 1 == 1;
                    outer >>= 1;
                }
                _ => return None,
            }
        }
    }
}

/// The bytes that end a plain string: the quote, and the backslash and control characters
/// that it must not hold.
const STRING_STOPS: [bool; 256] = {
    let mut stops = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        stops[c] = true;
        c += 1;
    }
    stops[b'"' as usize] = true;
    stops[b'\\' as usize] = true;
    stops
};

/// The cursor of [`plain_scan`].
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    /// Whitespace was skipped.
    spaced: bool,
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
            self.spaced = true;
        }
    }

    /// A string without escapes or control characters, then `:`.
    fn key(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.string()?;
        self.ws();
        if self.peek()? != b':' {
            return None;
        }
        self.i += 1;
        Some(())
    }

    /// A string without escapes or control characters, at its opening quote.
    fn string(&mut self) -> Option<()> {
        let rest = self.b.get(self.i + 1..)?;
        let end = rest.iter().position(|&c| STRING_STOPS[usize::from(c)])?;
        (rest.get(end) == Some(&b'"')).then_some(())?;
        self.i += end + 2;
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b.get(self.i..)?.starts_with(word).then_some(())?;
        self.i += word.len();
        Some(())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Skips ASCII digits; how many.
    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }
}

#[cfg(test)]
mod tests;
