//! The row side of a document rule (SPEC §9): which row images are documents, their shaped
//! `_source`, their routing, and the document changes one row change makes. Pure: rows come
//! in as decoded [`FieldValue`]s. A rule with relations only names the root documents a row
//! change affects ([`Op::Refresh`]); the lane builds them from MySQL.

use std::sync::Arc;

use bytes::Bytes;

use crate::config::TableRule;
use crate::decode::RowDecoder;
use crate::decode::field::FieldValue;
use crate::decode::rows::{DocChange, Op, RootKey};
use crate::schema::TableSchema;

use super::PlanError;
use super::key::{routing_text, sql_param};
use super::level::{Level, column_of};

/// How one root table's rows become documents under a rule that uses SPEC §9 keys.
#[derive(Debug, Clone)]
pub struct RowShape {
    /// The root's fields and row conditions.
    level: Level,
    /// Column position of `routing`.
    routing: Option<usize>,
    /// Documents are built from several tables (written as refreshes).
    relations: bool,
}

impl RowShape {
    /// The shape of `rule` (the `index_of_rule`-th rule) for `schema`'s table; `None` when
    /// the rule uses no §9 key, so rows take the plain path of SPEC §5.
    ///
    /// # Errors
    /// A named column the table does not have, or two fields with one name.
    pub fn new(
        index_of_rule: usize,
        rule: &TableRule,
        schema: &TableSchema,
    ) -> Result<Option<Self>, PlanError> {
        if !rule.shapes_documents() {
            return Ok(None);
        }
        let key = format!("tables[{index_of_rule}]");
        let level = Level::compile(&key, &rule.fields(), &rule.conditions(), schema)?;
        let routing = rule
            .routing
            .as_deref()
            .map(|name| column_of(schema, &key, "routing", name))
            .transpose()?;
        Ok(Some(Self {
            level,
            routing,
            relations: rule.has_relations(),
        }))
    }

    /// The root level (fields and row conditions).
    pub fn level(&self) -> &Level {
        &self.level
    }

    /// Column position of the `routing` column.
    pub fn routing_column(&self) -> Option<usize> {
        self.routing
    }

    /// Whether documents embed other tables' rows.
    pub fn has_relations(&self) -> bool {
        self.relations
    }

    /// Whether `row` is a document (SPEC §9 "Rows").
    pub fn matches(&self, row: &[FieldValue]) -> bool {
        self.level.matches(row)
    }

    /// The routing of `row`'s document: the routing column's text; `None` without
    /// `routing` or when the column is NULL.
    pub fn routing(&self, row: &[FieldValue]) -> Option<Arc<str>> {
        let v = row.get(self.routing?)?;
        routing_text(v).map(Arc::from)
    }

    /// The shaped `_source` of `row` (a JSON object of the root's fields).
    pub fn source(&self, row: &[FieldValue]) -> Bytes {
        let mut out = Vec::with_capacity(64 * self.level.fields().len() + 2);
        out.push(b'{');
        let mut first = true;
        self.level.write_fields(row, &mut out, &mut first);
        out.push(b'}');
        Bytes::from(out)
    }

    /// The write of `row`'s document when it is one: the shaped `_source` with its routing,
    /// or, with relations, a refresh of the root `key()` names. `None` when `row` does not
    /// match.
    pub fn write(
        &self,
        schema: &TableSchema,
        row: &[FieldValue],
        key: impl FnOnce() -> RootKey,
    ) -> Option<DocChange> {
        if !self.matches(row) {
            return None;
        }
        let id = RowDecoder::id_of_values(schema, row);
        Some(if self.relations {
            DocChange {
                id,
                op: Op::Refresh(key()),
                routing: None,
            }
        } else {
            DocChange {
                id,
                op: Op::Index(self.source(row)),
                routing: self.routing(row),
            }
        })
    }

    /// The document changes of one row change, appended to `out` in the order they apply:
    /// the delete of the before image's document (under its routing) when it was a document
    /// and is no longer one under that id and routing, then the write of the after image's
    /// document when it is one. `before` is `None` for an insert, `after` for a delete.
    pub fn row_change(
        &self,
        schema: &TableSchema,
        before: Option<&[FieldValue]>,
        after: Option<&[FieldValue]>,
        out: &mut Vec<DocChange>,
    ) {
        let write = after.and_then(|row| self.write(schema, row, || root_key(schema, row)));
        if let Some(old) = before.filter(|row| self.matches(row)) {
            let old_id = RowDecoder::id_of_values(schema, old);
            let old_routing = self.routing(old);
            let stays = after.is_some_and(|new| {
                write.as_ref().is_some_and(|w| w.id == old_id) && self.routing(new) == old_routing
            });
            if !stays {
                out.push(DocChange {
                    id: old_id,
                    op: Op::Delete,
                    routing: old_routing,
                });
            }
        }
        out.extend(write);
    }
}

/// The root key of `row` (its key columns' values, in key order) as SQL parameters.
pub fn root_key(schema: &TableSchema, row: &[FieldValue]) -> RootKey {
    RootKey(
        schema
            .key
            .iter()
            .map(|&k| match (schema.columns.get(k), row.get(k)) {
                (Some(col), Some(v)) => sql_param(col, v),
                _ => mysql_common::Value::NULL,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::document::WhereValue;
    use crate::schema::ColumnSpec;
    use std::collections::BTreeMap;

    fn schema() -> TableSchema {
        TableSchema {
            db: "blog".into(),
            table: "article".into(),
            columns: ["id", "title", "status", "author_id", "note"]
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

    fn rule(relations: bool) -> TableRule {
        let mut text = String::from(
            "[[tables]]\nmatch = \"blog.article\"\n\
             include_columns = [\"title\", \"status\", \"author_id\"]\n\
             rename = { author_id = \"author\" }\n\
             where = { status = [\"published\"] }\n\
             routing = \"author_id\"\n",
        );
        if relations {
            text.push_str(
                "[[tables.join]]\nfield = \"u\"\ntable = \"user\"\non = { author_id = \"id\" }\n",
            );
        }
        load(&text)
    }

    fn load(rule: &str) -> TableRule {
        let c = crate::config::tests::load_str(&format!("{}{rule}", crate::config::tests::MINIMAL))
            .unwrap();
        c.tables[1].clone()
    }

    fn row(id: i64, status: &str, author: Option<i64>) -> Vec<FieldValue> {
        vec![
            FieldValue::Int(id),
            FieldValue::Str("T".into()),
            FieldValue::Str(status.into()),
            author.map_or(FieldValue::Null, FieldValue::Int),
            FieldValue::Str("secret".into()),
        ]
    }

    fn changes(
        shape: &RowShape,
        before: Option<Vec<FieldValue>>,
        after: Option<Vec<FieldValue>>,
    ) -> Vec<(String, String, Option<String>)> {
        let mut out = Vec::new();
        shape.row_change(&schema(), before.as_deref(), after.as_deref(), &mut out);
        out.into_iter()
            .map(|c| {
                let op = match c.op {
                    Op::Index(b) => String::from_utf8(b.to_vec()).unwrap(),
                    Op::Delete => "delete".into(),
                    Op::Refresh(k) => format!("refresh {:?}", k.0),
                };
                (c.id, op, c.routing.map(|r| r.to_string()))
            })
            .collect()
    }

    fn shape(relations: bool) -> RowShape {
        RowShape::new(0, &rule(relations), &schema())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_rule_without_document_keys_has_no_shape() {
        let plain = load("[[tables]]\nmatch = \"blog.article\"\n");
        assert!(RowShape::new(0, &plain, &schema()).unwrap().is_none());
        let mut bad = rule(false);
        bad.include_columns = Some(vec!["nope".into()]);
        let err = RowShape::new(3, &bad, &schema()).unwrap_err();
        assert!(
            err.to_string().contains("tables[3].include_columns"),
            "{err}"
        );
        let mut bad = rule(false);
        bad.routing = Some("gone".into());
        let err = RowShape::new(1, &bad, &schema()).unwrap_err();
        assert!(err.to_string().contains("tables[1].routing"), "{err}");
    }

    #[test]
    fn matching_rows_are_shaped_with_routing() {
        let s = shape(false);
        assert_eq!(
            changes(&s, None, Some(row(1, "published", Some(7)))),
            [(
                "1".into(),
                r#"{"title":"T","status":"published","author":7}"#.into(),
                Some("7".into())
            )]
        );
        // Not a document before nor after: nothing, also for a delete.
        assert!(changes(&s, None, Some(row(1, "draft", Some(7)))).is_empty());
        assert!(
            changes(
                &s,
                Some(row(1, "draft", Some(7))),
                Some(row(1, "draft", Some(8)))
            )
            .is_empty()
        );
        assert!(changes(&s, Some(row(1, "draft", Some(7))), None).is_empty());
    }

    #[test]
    fn leaving_the_rows_deletes_and_entering_indexes() {
        let s = shape(false);
        assert_eq!(
            changes(
                &s,
                Some(row(1, "published", Some(7))),
                Some(row(1, "draft", Some(7)))
            ),
            [("1".into(), "delete".into(), Some("7".into()))]
        );
        let back = changes(
            &s,
            Some(row(1, "draft", Some(7))),
            Some(row(1, "published", Some(7))),
        );
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].2.as_deref(), Some("7"));
        assert_eq!(
            changes(&s, Some(row(1, "published", Some(7))), None),
            [("1".into(), "delete".into(), Some("7".into()))]
        );
        // An update that keeps id and routing is one write.
        let same = changes(
            &s,
            Some(row(1, "published", Some(7))),
            Some(row(1, "published", Some(7))),
        );
        assert_eq!(same.len(), 1);
        assert_ne!(same[0].1, "delete");
    }

    #[test]
    fn a_new_id_or_routing_deletes_the_old_document_first() {
        let s = shape(false);
        let moved = changes(
            &s,
            Some(row(1, "published", Some(7))),
            Some(row(1, "published", Some(8))),
        );
        assert_eq!(moved.len(), 2);
        assert_eq!(moved[0], ("1".into(), "delete".into(), Some("7".into())));
        assert_eq!(
            (moved[1].0.as_str(), moved[1].2.as_deref()),
            ("1", Some("8"))
        );
        let renumbered = changes(
            &s,
            Some(row(1, "published", Some(7))),
            Some(row(2, "published", Some(7))),
        );
        assert_eq!(
            renumbered[0],
            ("1".into(), "delete".into(), Some("7".into()))
        );
        assert_eq!(renumbered[1].0, "2");
        // A NULL routing column: no routing, and becoming NULL is a routing change.
        let to_null = changes(
            &s,
            Some(row(1, "published", Some(7))),
            Some(row(1, "published", None)),
        );
        assert_eq!(to_null[0], ("1".into(), "delete".into(), Some("7".into())));
        assert_eq!(to_null[1].2, None);
        assert_eq!(
            to_null[1].1,
            r#"{"title":"T","status":"published","author":null}"#
        );
    }

    #[test]
    fn relation_rules_ask_for_a_refresh() {
        let s = shape(true);
        assert_eq!(
            changes(&s, None, Some(row(4, "published", Some(7)))),
            [("4".into(), "refresh [Int(4)]".into(), None)]
        );
        let moved = changes(
            &s,
            Some(row(4, "published", Some(7))),
            Some(row(4, "published", Some(9))),
        );
        assert_eq!(moved[0], ("4".into(), "delete".into(), Some("7".into())));
        assert_eq!(moved[1], ("4".into(), "refresh [Int(4)]".into(), None));
        assert_eq!(
            changes(
                &s,
                Some(row(4, "published", Some(7))),
                Some(row(4, "draft", Some(7)))
            ),
            [("4".into(), "delete".into(), Some("7".into()))]
        );
    }

    #[test]
    fn where_values_of_numbers_and_null_columns() {
        let mut r = rule(false);
        r.where_any_of = BTreeMap::from([("author_id".into(), vec![WhereValue::Int(7)])]);
        r.where_null = vec!["note".into()];
        let s = RowShape::new(0, &r, &schema()).unwrap().unwrap();
        let mut soft = row(1, "x", Some(7));
        soft[4] = FieldValue::Null;
        assert!(s.matches(&soft));
        assert!(!s.matches(&row(1, "x", Some(7))));
        soft[3] = FieldValue::Int(8);
        assert!(!s.matches(&soft));
    }
}
