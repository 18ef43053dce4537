//! Pure helpers of the SQL side of SPEC §9 documents: the statements [`super::fetch`] and
//! [`super::fanout`] send, and the exact comparison of decoded values that narrows what SQL
//! returns (SQL compares by collation, `'a' = 'A'`; documents compare strings exactly).

use mysql_common::Value;

use crate::decode::field::FieldValue;
use crate::schema::{ColumnFamily, ColumnSpec, TableSchema};

/// Most tuples in one `IN (…)` list: long lists are split into several queries.
pub const IN_CHUNK: usize = 1_000;

/// `` `name` `` with backticks doubled.
pub(crate) fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// `` `db`.`table` ``.
pub(crate) fn table_name(schema: &TableSchema) -> String {
    format!("{}.{}", quote(&schema.db), quote(&schema.table))
}

/// `` alias.`col` `` of column `i` of `schema`.
pub(crate) fn col(alias: &str, schema: &TableSchema, i: usize) -> String {
    let name = schema.columns.get(i).map_or("", |c| c.name.as_str());
    format!("{alias}.{}", quote(name))
}

/// Every column of `schema`, in table order, qualified by `alias`.
pub(crate) fn all_columns(alias: &str, schema: &TableSchema) -> String {
    (0..schema.columns.len())
        .map(|i| col(alias, schema, i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `exprs IN (…)` for `n` tuples of placeholders: `a IN (?, ?)` for one expression,
/// `(a, b) IN ((?, ?), (?, ?))` for several.
pub(crate) fn in_list(exprs: &[String], n: usize) -> String {
    if exprs.len() == 1 {
        return format!("{} IN ({})", exprs[0], vec!["?"; n].join(", "));
    }
    let tuple = format!("({})", vec!["?"; exprs.len()].join(", "));
    format!("({}) IN ({})", exprs.join(", "), vec![tuple; n].join(", "))
}

/// `(a, b) > (?, ?)` (or `a > ?`): keyset pagination after the last key seen.
pub(crate) fn after(exprs: &[String]) -> String {
    if exprs.len() == 1 {
        return format!("{} > ?", exprs[0]);
    }
    format!(
        "({}) > ({})",
        exprs.join(", "),
        vec!["?"; exprs.len()].join(", ")
    )
}

/// A decoded value in a form that is equal exactly when SPEC §9 says two values are equal
/// (numbers by value, strings byte for byte); `None` for NULL (equal to nothing).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Exact {
    /// A number's canonical decimal text (`1.50` and `1.5` are one value).
    Num(String),
    /// Text exactly as decoded (also temporal text, base64 of bytes, SET/JSON text).
    Text(String),
    /// A parameter's bytes.
    Bytes(Vec<u8>),
}

/// Whether a column holds numbers (an `on` pair with a number on either side compares text
/// holding a number by value, as `where` does).
pub(crate) fn numeric(col: &ColumnSpec) -> bool {
    matches!(
        col.family(),
        ColumnFamily::Integer { .. }
            | ColumnFamily::MediumInt { .. }
            | ColumnFamily::Float
            | ColumnFamily::Double
            | ColumnFamily::Decimal
            | ColumnFamily::Bit
            | ColumnFamily::Year
    )
}

/// The exact form of `value`; `numeric`: compare text as a number (text that is not one
/// equals nothing).
pub(crate) fn exact(value: &FieldValue, numeric: bool) -> Option<Exact> {
    match value {
        FieldValue::Null => None,
        FieldValue::Int(i) => canonical_number(&i.to_string()),
        FieldValue::UInt(u) => canonical_number(&u.to_string()),
        // Display of a float never uses an exponent: the exact decimal of the shortest text.
        FieldValue::Float(f) => canonical_number(&f.to_string()),
        FieldValue::Double(d) => canonical_number(&d.to_string()),
        FieldValue::Decimal(t) => canonical_number(t),
        FieldValue::Str(s) if numeric => canonical_number(s),
        FieldValue::Str(s) | FieldValue::Raw(s) => Some(Exact::Text(s.clone())),
    }
}

/// The exact forms of `row`'s `cols`, each with its comparison mode; `None` when one is
/// NULL (the tuple matches nothing).
pub(crate) fn exact_tuple(
    row: &[FieldValue],
    cols: impl IntoIterator<Item = (usize, bool)>,
) -> Option<Vec<Exact>> {
    cols.into_iter()
        .map(|(i, num)| exact(row.get(i).unwrap_or(&FieldValue::Null), num))
        .collect()
}

/// `[-]digits[.digits]` without leading zeros of the integer part or trailing zeros of the
/// fraction, `0` for zero; `None` for text that is not such a number (NaN, inf, words).
pub(crate) fn canonical_number(text: &str) -> Option<Exact> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let zero = int == "0" && frac.is_empty();
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if negative && !zero {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(Exact::Num(out))
}

/// A SQL parameter in a form equal for the values MySQL and the stream agree are one key
/// (`Int(5)` and `UInt(5)` alike); `None` for NULL.
pub(crate) fn param_exact(value: &Value) -> Option<Exact> {
    match value {
        Value::NULL => None,
        Value::Int(i) => canonical_number(&i.to_string()),
        Value::UInt(u) => canonical_number(&u.to_string()),
        Value::Float(f) => canonical_number(&f.to_string()),
        Value::Double(d) => canonical_number(&d.to_string()),
        Value::Bytes(b) => Some(Exact::Bytes(b.clone())),
        other => Some(Exact::Text(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_and_keyset_conditions() {
        assert_eq!(in_list(&["t.`a`".into()], 3), "t.`a` IN (?, ?, ?)");
        assert_eq!(
            in_list(&["t.`a`".into(), "t.`b`".into()], 2),
            "(t.`a`, t.`b`) IN ((?, ?), (?, ?))"
        );
        assert_eq!(after(&["r.`id`".into()]), "r.`id` > ?");
        assert_eq!(
            after(&["r.`a`".into(), "r.`b`".into()]),
            "(r.`a`, r.`b`) > (?, ?)"
        );
        assert_eq!(quote("we`ird"), "`we``ird`");
    }

    #[test]
    fn numbers_compare_by_value_strings_exactly_null_never() {
        let n = |v: FieldValue| exact(&v, true);
        assert_eq!(n(FieldValue::Int(5)), n(FieldValue::UInt(5)));
        assert_eq!(n(FieldValue::Decimal("5.00".into())), n(FieldValue::Int(5)));
        assert_eq!(n(FieldValue::Decimal("-0.0".into())), n(FieldValue::Int(0)));
        assert_eq!(
            n(FieldValue::Double(1.5)),
            n(FieldValue::Decimal("1.50".into()))
        );
        assert_eq!(n(FieldValue::Str("07".into())), n(FieldValue::Int(7)));
        assert_eq!(n(FieldValue::Str("x".into())), None);
        assert_ne!(n(FieldValue::Int(10)), n(FieldValue::Int(1)));
        let s = |v: &str| exact(&FieldValue::Str(v.into()), false);
        assert_ne!(s("a"), s("A"));
        assert_ne!(s("a "), s("a"));
        assert_eq!(s("é"), s("é"));
        assert_eq!(exact(&FieldValue::Null, false), None);
        assert_eq!(
            exact_tuple(
                &[FieldValue::Int(1), FieldValue::Null],
                [(0, true), (1, true)]
            ),
            None
        );
        assert_eq!(param_exact(&Value::Int(7)), param_exact(&Value::UInt(7)));
        assert_ne!(
            param_exact(&Value::Bytes(b"a".to_vec())),
            param_exact(&Value::Bytes(b"A".to_vec()))
        );
        assert_eq!(param_exact(&Value::NULL), None);
    }
}
