//! The document `_id` of a row: the text forms of its key values, joined per SPEC §5.

use super::field::FieldValue;

impl FieldValue {
    /// Appends the `_id` text form of this value (SPEC §5): numbers in decimal, strings as
    /// they are, other types in their §6 text form, no JSON quoting.
    ///
    /// `Null` appends nothing: key columns are NOT NULL, and rejecting a NULL key is the
    /// caller's decision, not a text form.
    pub fn write_id_text(&self, out: &mut String) {
        match self {
            FieldValue::Null => {}
            FieldValue::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
            FieldValue::UInt(u) => out.push_str(itoa::Buffer::new().format(*u)),
            FieldValue::Float(f) if f.is_finite() => {
                out.push_str(ryu::Buffer::new().format_finite(*f));
            }
            FieldValue::Double(d) if d.is_finite() => {
                out.push_str(ryu::Buffer::new().format_finite(*d));
            }
            FieldValue::Float(f) => out.push_str(&f.to_string()),
            FieldValue::Double(d) => out.push_str(&d.to_string()),
            FieldValue::Decimal(text) | FieldValue::Str(text) | FieldValue::Raw(text) => {
                out.push_str(text)
            }
        }
    }
}

/// Builds a document `_id` from key values per SPEC §5: single key = its text; composite =
/// values joined by ':' with '\\' and ':' inside each value escaped by a preceding '\\'.
pub fn doc_id(parts: &[&FieldValue]) -> String {
    let mut id = String::new();
    if let [single] = parts {
        single.write_id_text(&mut id);
        return id;
    }
    let mut text = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            id.push(':');
        }
        text.clear();
        part.write_id_text(&mut text);
        for c in text.chars() {
            if c == '\\' || c == ':' {
                id.push('\\');
            }
            id.push(c);
        }
    }
    id
}
