//! One level of a document (the root row, or one relation's rows): which columns become
//! which fields (`include_columns`, `exclude_columns`, `rename`, in that order) and which
//! rows count (`where`, `where_null`, `where_not_null`). Pure: rows come in as decoded
//! [`FieldValue`]s.

use crate::config::document::{Fields, RowConditions, WhereValue};
use crate::decode::field::FieldValue;
use crate::json_string::write_json_string;
use crate::schema::TableSchema;

use super::PlanError;

/// Fields and row conditions of one level, resolved to column positions.
#[derive(Debug, Clone)]
pub struct Level {
    /// (column position, field name) in output order.
    fields: Vec<(usize, String)>,
    /// `"name":` of each field, same order.
    prefixes: Vec<Vec<u8>>,
    any_of: Vec<(usize, Vec<WhereValue>)>,
    null: Vec<usize>,
    not_null: Vec<usize>,
}

impl Level {
    /// Resolves `fields` and `conditions` against `schema`; `key` is the config key of the
    /// level (`tables[0].nest[1]`) for messages.
    ///
    /// # Errors
    /// A named column the table does not have, or two columns given one field name.
    pub fn compile(
        key: &str,
        fields: &Fields,
        conditions: &RowConditions,
        schema: &TableSchema,
    ) -> Result<Self, PlanError> {
        let col = |sub: &str, name: &str| column_of(schema, key, sub, name);
        let mut chosen: Vec<usize> = match &fields.include {
            Some(names) => names
                .iter()
                .map(|n| col("include_columns", n))
                .collect::<Result<_, _>>()?,
            None => (0..schema.columns.len()).collect(),
        };
        for name in &fields.exclude {
            let c = col("exclude_columns", name)?;
            chosen.retain(|&i| i != c);
        }
        for name in fields.rename.keys() {
            col("rename", name)?;
        }
        let mut out: Vec<(usize, String)> = Vec::with_capacity(chosen.len());
        for i in chosen {
            let column = &schema.columns[i].name;
            let name = fields.rename.get(column).unwrap_or(column).clone();
            if out.iter().any(|(_, n)| *n == name) {
                return Err(PlanError::new(
                    key,
                    format!(
                        "two fields would be named `{name}` (check include_columns and rename)"
                    ),
                ));
            }
            out.push((i, name));
        }
        let any_of = conditions
            .any_of
            .iter()
            .map(|(name, values)| Ok((col("where", name)?, values.clone())))
            .collect::<Result<_, PlanError>>()?;
        let null = conditions
            .null
            .iter()
            .map(|n| col("where_null", n))
            .collect::<Result<_, _>>()?;
        let not_null = conditions
            .not_null
            .iter()
            .map(|n| col("where_not_null", n))
            .collect::<Result<_, _>>()?;
        let prefixes = out
            .iter()
            .map(|(_, name)| {
                let mut p = Vec::with_capacity(name.len() + 3);
                write_json_string(&mut p, name);
                p.push(b':');
                p
            })
            .collect();
        Ok(Self {
            fields: out,
            prefixes,
            any_of,
            null,
            not_null,
        })
    }

    /// Whether the level has row conditions.
    pub fn filters(&self) -> bool {
        !self.any_of.is_empty() || !self.null.is_empty() || !self.not_null.is_empty()
    }

    /// Whether `row` (one value per column) passes every row condition.
    pub fn matches(&self, row: &[FieldValue]) -> bool {
        let value = |i: usize| row.get(i).unwrap_or(&FieldValue::Null);
        self.null
            .iter()
            .all(|&i| matches!(value(i), FieldValue::Null))
            && self
                .not_null
                .iter()
                .all(|&i| !matches!(value(i), FieldValue::Null))
            && self
                .any_of
                .iter()
                .all(|(i, values)| values.iter().any(|w| value_equals(value(*i), w)))
    }

    /// The fields in output order: (column position, field name).
    pub fn fields(&self) -> &[(usize, String)] {
        &self.fields
    }

    /// Writes `"field":value` pairs of `row`, comma-separated, without braces (relations
    /// may follow); `first` says whether nothing was written into the object yet.
    pub fn write_fields(&self, row: &[FieldValue], out: &mut Vec<u8>, first: &mut bool) {
        for ((i, _), prefix) in self.fields.iter().zip(&self.prefixes) {
            if !*first {
                out.push(b',');
            }
            *first = false;
            out.extend_from_slice(prefix);
            row.get(*i).unwrap_or(&FieldValue::Null).write_json(out);
        }
    }

    /// Whether a field of this level has the name `name`.
    pub fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|(_, n)| n == name)
    }
}

/// The position of column `name` in `schema`, or an error naming `key.sub`.
pub(super) fn column_of(
    schema: &TableSchema,
    key: &str,
    sub: &str,
    name: &str,
) -> Result<usize, PlanError> {
    schema
        .columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| {
            PlanError::new(
                &format!("{key}.{sub}"),
                format!(
                    "`{}` has no column `{name}`; its columns are {}",
                    schema.qualified(),
                    schema
                        .columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

/// SPEC §9 value comparison: NULL equals nothing, numbers compare by value (exactly, also
/// beyond 64 bits and for decimals), strings exactly (bytes after decoding); a number and a
/// string compare as the number's decimal text.
pub fn value_equals(field: &FieldValue, wanted: &WhereValue) -> bool {
    let wanted_num = match wanted {
        WhereValue::Bool(b) => Some(Number::parse(if *b { "1" } else { "0" })),
        WhereValue::Int(i) => Some(Number::parse(&i.to_string())),
        WhereValue::Float(f) => Some(Number::parse(&f.to_string())),
        WhereValue::Text(t) => Number::try_parse(t),
    };
    match field {
        FieldValue::Null => false,
        FieldValue::Int(i) => wanted_num == Some(Number::parse(&i.to_string())),
        FieldValue::UInt(u) => wanted_num == Some(Number::parse(&u.to_string())),
        FieldValue::Float(f) => wanted_num == Some(Number::parse(&f.to_string())),
        FieldValue::Double(d) => wanted_num == Some(Number::parse(&d.to_string())),
        FieldValue::Decimal(text) => wanted_num == Number::try_parse(text),
        FieldValue::Str(s) => match wanted {
            WhereValue::Text(t) => s == t,
            // A number against text (an ENUM of digits, a VARCHAR code): the number's text.
            _ => Number::try_parse(s).is_some_and(|n| Some(n) == wanted_num),
        },
        FieldValue::Raw(raw) => match wanted {
            // SET: the labels joined by commas, as MySQL shows the value.
            WhereValue::Text(t) => set_text(raw).is_some_and(|s| s == *t),
            _ => false,
        },
    }
}

/// A SET value's JSON array of labels as MySQL's text (`a,b`); `None` for other JSON.
fn set_text(raw: &str) -> Option<String> {
    let labels: Vec<String> = serde_json::from_str(raw).ok()?;
    Some(labels.join(","))
}

/// A decimal number in a canonical form: sign, significant digits, and the power of ten of
/// the last digit, so `1.50`, `1.5` and `15e-1` are one value.
#[derive(Debug, PartialEq, Eq)]
struct Number {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Number {
    /// Parses text known to be a number (falls back to a value nothing equals).
    fn parse(text: &str) -> Self {
        Self::try_parse(text).unwrap_or(Number {
            negative: false,
            digits: "NaN".into(),
            exponent: 0,
        })
    }

    /// Parses `[-+]digits[.digits][e[-+]digits]`; `None` for anything else.
    fn try_parse(text: &str) -> Option<Self> {
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exp) = match rest.find(['e', 'E']) {
            Some(p) => (&rest[..p], rest[p + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let all = format!("{int}{frac}");
        let mut exponent = exp - frac.len() as i64;
        let trimmed = all.trim_start_matches('0');
        let without_tail = trimmed.trim_end_matches('0');
        exponent += (trimmed.len() - without_tail.len()) as i64;
        if without_tail.is_empty() {
            return Some(Number {
                negative: false,
                digits: String::new(),
                exponent: 0,
            });
        }
        Some(Number {
            negative,
            digits: without_tail.to_owned(),
            exponent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnSpec, TableSchema};
    use std::collections::BTreeMap;

    fn schema(cols: &[&str]) -> TableSchema {
        TableSchema {
            db: "blog".into(),
            table: "article".into(),
            columns: cols
                .iter()
                .map(|n| ColumnSpec {
                    name: (*n).into(),
                    ..ColumnSpec::default()
                })
                .collect(),
            key: vec![0],
            index: "articles".into(),
            decoder_cache: Default::default(),
        }
    }

    #[test]
    fn numbers_compare_by_value_and_strings_exactly() {
        let t = |s: &str| WhereValue::Text(s.into());
        assert!(value_equals(&FieldValue::Int(1), &WhereValue::Int(1)));
        assert!(value_equals(&FieldValue::Int(1), &WhereValue::Bool(true)));
        assert!(value_equals(
            &FieldValue::Decimal("1.50".into()),
            &WhereValue::Float(1.5)
        ));
        assert!(value_equals(
            &FieldValue::Decimal("-0.000".into()),
            &WhereValue::Int(0)
        ));
        assert!(value_equals(
            &FieldValue::UInt(18_446_744_073_709_551_615),
            &t("18446744073709551615")
        ));
        assert!(!value_equals(
            &FieldValue::UInt(18_446_744_073_709_551_615),
            &WhereValue::Float(18_446_744_073_709_551_615.0)
        ));
        assert!(value_equals(
            &FieldValue::Float(0.1),
            &WhereValue::Float(0.1)
        ));
        assert!(value_equals(
            &FieldValue::Decimal("1200".into()),
            &t("1.2e3")
        ));
        assert!(value_equals(&FieldValue::Str("abc".into()), &t("abc")));
        assert!(!value_equals(&FieldValue::Str("abc".into()), &t("ABC")));
        assert!(!value_equals(&FieldValue::Str("abc ".into()), &t("abc")));
        assert!(value_equals(
            &FieldValue::Str("7".into()),
            &WhereValue::Int(7)
        ));
        assert!(!value_equals(&FieldValue::Null, &t("")));
        assert!(value_equals(
            &FieldValue::Raw("[\"a\",\"b\"]".into()),
            &t("a,b")
        ));
        assert!(!value_equals(&FieldValue::Int(10), &WhereValue::Int(1)));
    }

    #[test]
    fn fields_are_included_excluded_then_renamed() {
        let s = schema(&["id", "title", "secret", "updated_at"]);
        let fields = Fields {
            include: Some(vec!["updated_at".into(), "id".into(), "secret".into()]),
            exclude: vec!["secret".into()],
            rename: BTreeMap::from([("updated_at".into(), "updated".into())]),
        };
        let level = Level::compile("tables[0]", &fields, &RowConditions::default(), &s).unwrap();
        let row = vec![
            FieldValue::Int(7),
            FieldValue::Str("t".into()),
            FieldValue::Str("x".into()),
            FieldValue::Str("2024-01-01T00:00:00".into()),
        ];
        let mut out = Vec::new();
        let mut first = true;
        level.write_fields(&row, &mut out, &mut first);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""updated":"2024-01-01T00:00:00","id":7"#
        );
    }

    #[test]
    fn mistakes_are_named() {
        let s = schema(&["id", "a", "b"]);
        let bad = Fields {
            include: Some(vec!["id".into(), "nope".into()]),
            ..Fields::default()
        };
        let err = Level::compile("tables[2]", &bad, &RowConditions::default(), &s).unwrap_err();
        assert!(
            err.to_string().contains("tables[2].include_columns"),
            "{err}"
        );
        assert!(err.to_string().contains("`nope`"), "{err}");
        let twice = Fields {
            rename: BTreeMap::from([("a".into(), "b".into())]),
            ..Fields::default()
        };
        let err = Level::compile("tables[0]", &twice, &RowConditions::default(), &s).unwrap_err();
        assert!(
            err.to_string().contains("two fields would be named `b`"),
            "{err}"
        );
        let cond = RowConditions {
            null: vec!["gone".into()],
            ..RowConditions::default()
        };
        let err = Level::compile("tables[0]", &Fields::default(), &cond, &s).unwrap_err();
        assert!(err.to_string().contains("tables[0].where_null"), "{err}");
    }

    #[test]
    fn rows_match_every_condition() {
        let s = schema(&["id", "status", "deleted_at", "approved"]);
        let cond = RowConditions {
            any_of: BTreeMap::from([(
                "status".into(),
                vec![
                    WhereValue::Text("published".into()),
                    WhereValue::Text("featured".into()),
                ],
            )]),
            null: vec!["deleted_at".into()],
            not_null: vec!["approved".into()],
        };
        let level = Level::compile("tables[0]", &Fields::default(), &cond, &s).unwrap();
        let row = |status: &str, deleted: FieldValue, approved: FieldValue| {
            vec![
                FieldValue::Int(1),
                FieldValue::Str(status.into()),
                deleted,
                approved,
            ]
        };
        assert!(level.matches(&row("featured", FieldValue::Null, FieldValue::Int(0))));
        assert!(!level.matches(&row("draft", FieldValue::Null, FieldValue::Int(0))));
        assert!(!level.matches(&row(
            "published",
            FieldValue::Str("2024-01-01".into()),
            FieldValue::Int(0)
        )));
        assert!(!level.matches(&row("published", FieldValue::Null, FieldValue::Null)));
    }
}
