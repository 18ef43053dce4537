//! SPEC §9 document keys of a `[[tables]]` rule: fields (`include_columns`,
//! `exclude_columns`, `rename`), rows (`where`, `where_null`, `where_not_null`), `routing`,
//! and relations (`join`, `nest`, `through`, `values`, `order_by`), nested to any depth.
//! Parsing and the checks that need no I/O; resolving against tables is `crate::document`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConfigError, TableRule};

/// Field selection of one level (the root or a relation): SPEC §9 "Fields".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    /// Only these columns, in this order; `None`: every column in table order.
    pub include: Option<Vec<String>>,
    /// Columns left out (after `include`).
    pub exclude: Vec<String>,
    /// Column → field name (after `exclude`).
    pub rename: BTreeMap<String, String>,
}

/// Row conditions of one level: SPEC §9 "Rows".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowConditions {
    /// Column → the values it must hold one of.
    pub any_of: BTreeMap<String, Vec<WhereValue>>,
    /// Columns that must be NULL.
    pub null: Vec<String>,
    /// Columns that must not be NULL.
    pub not_null: Vec<String>,
}

impl RowConditions {
    /// Whether no condition is set (every row is a document / an element).
    pub fn is_empty(&self) -> bool {
        self.any_of.is_empty() && self.null.is_empty() && self.not_null.is_empty()
    }
}

/// One value of a `where` list: compared with the column's §6 value, numbers by value and
/// strings exactly.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum WhereValue {
    /// A boolean: TRUE is 1 and FALSE is 0, as MySQL stores them.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A number with a fraction or an exponent.
    Float(f64),
    /// Text (also dates and times in their §6 form).
    Text(String),
}

/// `[[tables.join]]` / `[[tables.nest]]`: rows of another table embedded in the document.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    /// The document field that holds the object (join) or array (nest).
    pub field: String,
    /// `db.table` of the embedded rows (a bare name means the parent's database).
    pub table: String,
    /// Parent column → this table's column; all pairs must be equal. Empty with `through`.
    #[serde(default)]
    pub on: BTreeMap<String, String>,
    /// Many-to-many through a link table (nest only).
    #[serde(default)]
    pub through: Option<Through>,
    /// An array of this column's values instead of objects (nest only).
    #[serde(default)]
    pub values: Option<String>,
    /// Sort columns of the array, ascending, ties by primary key (nest only).
    #[serde(default)]
    pub order_by: Vec<String>,
    /// See [`Fields`].
    #[serde(default)]
    pub include_columns: Option<Vec<String>>,
    /// See [`Fields`].
    #[serde(default)]
    pub exclude_columns: Vec<String>,
    /// See [`Fields`].
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// See [`RowConditions`].
    #[serde(default, rename = "where")]
    pub where_any_of: BTreeMap<String, Vec<WhereValue>>,
    /// See [`RowConditions`].
    #[serde(default)]
    pub where_null: Vec<String>,
    /// See [`RowConditions`].
    #[serde(default)]
    pub where_not_null: Vec<String>,
    /// Many-to-one relations of this table's rows.
    #[serde(default)]
    pub join: Vec<Relation>,
    /// One-to-many relations of this table's rows.
    #[serde(default)]
    pub nest: Vec<Relation>,
}

/// `through = { table, on, to }`: the link table of a many-to-many `nest`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Through {
    /// `db.table` of the link rows (a bare name means the parent's database).
    pub table: String,
    /// Parent column → link column.
    pub on: BTreeMap<String, String>,
    /// Link column → the nested table's column.
    pub to: BTreeMap<String, String>,
}

/// Whether a relation is one object or an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// Many-to-one: an object or `null`.
    Join,
    /// One-to-many (or many-to-many with `through`): an array, `[]` when none.
    Nest,
}

/// `fields()` and `conditions()` of a level: the root rule and every relation carry the
/// same keys (flat, as SPEC §9 writes them; serde's `flatten` cannot be combined with
/// `deny_unknown_fields`).
macro_rules! level_keys {
    ($ty:ty) => {
        impl $ty {
            /// The level's field selection.
            pub fn fields(&self) -> Fields {
                Fields {
                    include: self.include_columns.clone(),
                    exclude: self.exclude_columns.clone(),
                    rename: self.rename.clone(),
                }
            }

            /// The level's row conditions.
            pub fn conditions(&self) -> RowConditions {
                RowConditions {
                    any_of: self.where_any_of.clone(),
                    null: self.where_null.clone(),
                    not_null: self.where_not_null.clone(),
                }
            }
        }
    };
}

level_keys!(Relation);
level_keys!(TableRule);

impl Relation {
    /// Child relations in document order: joins, then nests.
    pub fn children(&self) -> impl Iterator<Item = (RelationKind, &Relation)> {
        children(&self.join, &self.nest)
    }
}

/// Joins then nests, each tagged with its kind.
pub(crate) fn children<'a>(
    join: &'a [Relation],
    nest: &'a [Relation],
) -> impl Iterator<Item = (RelationKind, &'a Relation)> {
    join.iter()
        .map(|r| (RelationKind::Join, r))
        .chain(nest.iter().map(|r| (RelationKind::Nest, r)))
}

/// `db.table` of a relation's `table`: a bare name takes `parent_db`.
pub fn qualify(table: &str, parent_db: &str) -> (String, String) {
    match table.split_once('.') {
        Some((db, t)) => (db.to_owned(), t.to_owned()),
        None => (parent_db.to_owned(), table.to_owned()),
    }
}

impl TableRule {
    /// The root's relations in document order: joins, then nests.
    pub fn relations(&self) -> impl Iterator<Item = (RelationKind, &Relation)> {
        children(&self.join, &self.nest)
    }

    /// Whether documents are built from several tables (re-read from MySQL when written).
    pub fn has_relations(&self) -> bool {
        !self.join.is_empty() || !self.nest.is_empty()
    }

    /// Whether the rule shapes documents at all (any SPEC §9 key); without, a document is
    /// the row (SPEC §5) and nothing in the pipeline changes.
    pub fn shapes_documents(&self) -> bool {
        self.include_columns.is_some()
            || !self.exclude_columns.is_empty()
            || !self.rename.is_empty()
            || !self.conditions().is_empty()
            || self.routing.is_some()
            || self.has_relations()
    }

    /// Every `db.table` (lowercased) used inside this rule's relations, link tables
    /// included, with the rule's root database for bare names.
    pub fn relation_tables(&self, root_db: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        fn walk(rel: &Relation, parent_db: &str, out: &mut Vec<(String, String)>) {
            let (db, table) = qualify(&rel.table, parent_db);
            if let Some(t) = &rel.through {
                out.push(qualify(&t.table, parent_db));
            }
            for (_, child) in rel.children() {
                walk(child, &db, out);
            }
            out.push((db, table));
        }
        for (_, rel) in self.relations() {
            walk(rel, root_db, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Rules with relations writing one index would build each other's documents: refused,
/// naming the second rule.
///
/// # Errors
/// Two rules with relations whose `index` resolves to one name.
pub fn validate_relation_indices(rules: &[TableRule]) -> Result<(), ConfigError> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if !rule.has_relations() {
            continue;
        }
        let Some((db, table)) = rule.pattern.split_once('.') else {
            continue;
        };
        let index = rule.index_for(db, table);
        if let Some((_, first)) = seen.iter().find(|(name, _)| *name == index) {
            return Err(ConfigError::invalid(
                &format!("tables[{i}].index"),
                format!(
                    "`{index}` is also the index of tables[{first}], and both rules build                      documents with relations; give each its own index"
                ),
            ));
        }
        seen.push((index, i));
    }
    Ok(())
}

/// The checks of SPEC §9 keys that need no tables: names present, no field named twice
/// among the relations of one level, `values`/`order_by`/`through` only on a nest, a
/// `through` with `on` and `to`, a relation with an `on` or a `through`.
///
/// # Errors
/// The first problem, naming the key (`tables[0].nest[1].on`).
pub fn validate_rule(i: usize, rule: &TableRule) -> Result<(), ConfigError> {
    let key = format!("tables[{i}]");
    validate_fields(&key, &rule.fields())?;
    validate_conditions(&key, &rule.conditions())?;
    if let Some(r) = &rule.routing
        && r.is_empty()
    {
        return Err(ConfigError::invalid(
            &format!("{key}.routing"),
            "must name a column, e.g. routing = \"author_id\"",
        ));
    }
    if rule.has_relations() && rule.pattern.contains('*') {
        return Err(ConfigError::invalid(
            &format!("{key}.match"),
            "a rule with `join` or `nest` must name one table (no `*`): its relations' \
             `on` columns are columns of that table",
        ));
    }
    validate_relations(&key, &rule.join, &rule.nest)
}

fn validate_relations(
    parent: &str,
    join: &[Relation],
    nest: &[Relation],
) -> Result<(), ConfigError> {
    let mut names: Vec<&str> = Vec::new();
    for (n, (kind, rel)) in children(join, nest).enumerate() {
        let pos = match kind {
            RelationKind::Join => n,
            RelationKind::Nest => n - join.len(),
        };
        let kind_key = match kind {
            RelationKind::Join => "join",
            RelationKind::Nest => "nest",
        };
        let key = format!("{parent}.{kind_key}[{pos}]");
        let invalid = |sub: &str, message: &str| {
            Err(ConfigError::invalid(
                &if sub.is_empty() {
                    key.clone()
                } else {
                    format!("{key}.{sub}")
                },
                message,
            ))
        };
        if rel.field.is_empty() {
            return invalid(
                "field",
                "must name the document field, e.g. field = \"author\"",
            );
        }
        if names.contains(&rel.field.as_str()) {
            return invalid(
                "field",
                &format!(
                    "`{}` names two relations of one level; give each its own field",
                    rel.field
                ),
            );
        }
        names.push(&rel.field);
        if rel.table.is_empty() || rel.table.contains('*') {
            return invalid("table", "must name one table, e.g. table = \"blog.user\"");
        }
        if kind == RelationKind::Join {
            for (sub, set) in [
                ("through", rel.through.is_some()),
                ("values", rel.values.is_some()),
                ("order_by", !rel.order_by.is_empty()),
            ] {
                if set {
                    return invalid(sub, "applies to a `nest` only (a join is one object)");
                }
            }
        }
        match &rel.through {
            Some(t) => {
                if !rel.on.is_empty() {
                    return invalid(
                        "on",
                        "a `through` relation takes its pairs from through.on and through.to; \
                         remove `on`",
                    );
                }
                if t.table.is_empty() || t.table.contains('*') {
                    return invalid("through.table", "must name one link table");
                }
                if t.on.is_empty() {
                    return invalid(
                        "through.on",
                        "must pair columns, e.g. on = { id = \"article_id\" }",
                    );
                }
                if t.to.is_empty() {
                    return invalid(
                        "through.to",
                        "must pair columns, e.g. to = { tag_id = \"id\" }",
                    );
                }
            }
            None if rel.on.is_empty() => {
                return invalid(
                    "on",
                    "must pair this level's column with the table's column, e.g. \
                     on = { author_id = \"id\" }",
                );
            }
            None => {}
        }
        if let Some(v) = &rel.values {
            if v.is_empty() {
                return invalid("values", "must name a column of the table");
            }
            if !rel.join.is_empty() || !rel.nest.is_empty() {
                return invalid(
                    "values",
                    "an array of values has no objects to embed relations in; remove \
                     `values` or the inner relations",
                );
            }
        }
        validate_fields(&key, &rel.fields())?;
        validate_conditions(&key, &rel.conditions())?;
        validate_relations(&key, &rel.join, &rel.nest)?;
    }
    Ok(())
}

fn validate_fields(key: &str, fields: &Fields) -> Result<(), ConfigError> {
    if let Some(inc) = &fields.include
        && inc.is_empty()
    {
        return Err(ConfigError::invalid(
            &format!("{key}.include_columns"),
            "is empty: a document needs at least one field (leave the key out for all columns)",
        ));
    }
    for (col, field) in &fields.rename {
        if field.is_empty() {
            return Err(ConfigError::invalid(
                &format!("{key}.rename.{col}"),
                "must give the field a name",
            ));
        }
    }
    Ok(())
}

fn validate_conditions(key: &str, c: &RowConditions) -> Result<(), ConfigError> {
    for (col, values) in &c.any_of {
        if values.is_empty() {
            return Err(ConfigError::invalid(
                &format!("{key}.where.{col}"),
                "lists no values, so no row could match; list at least one",
            ));
        }
    }
    for col in &c.null {
        if c.not_null.contains(col) {
            return Err(ConfigError::invalid(
                &format!("{key}.where_null"),
                format!("`{col}` is also in where_not_null, so no row could match"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{MINIMAL, load_str};

    const BLOG: &str = r#"
[[tables]]
match = "blog.article"
index = "articles"
include_columns = ["id", "title", "status", "author_id", "updated_at"]
exclude_columns = ["internal_note"]
rename = { updated_at = "updated", camelCase = "Kept" }
where = { status = ["published", "featured"], rank = [1, 2.5, true] }
where_null = ["deleted_at"]
routing = "author_id"

  [[tables.join]]
  field = "author"
  table = "blog.user"
  on = { author_id = "id" }
  include_columns = ["id", "name"]

  [[tables.nest]]
  field = "comments"
  table = "blog.comment"
  on = { id = "article_id" }
  where = { approved = [1] }
  order_by = ["id"]

    [[tables.nest.join]]
    field = "user"
    table = "user"
    on = { user_id = "id" }

  [[tables.nest]]
  field = "tags"
  table = "blog.tag"
  through = { table = "blog.article_tag", on = { id = "article_id" }, to = { tag_id = "id" } }
  values = "name"
"#;

    #[test]
    fn the_blog_rule_parses_with_every_key() {
        let c = load_str(&format!("{MINIMAL}{BLOG}")).expect("parses");
        c.validate().expect("valid");
        let rule = &c.tables[1];
        assert!(rule.has_relations() && rule.shapes_documents());
        assert_eq!(
            rule.rename.get("camelCase").map(String::as_str),
            Some("Kept")
        );
        assert_eq!(rule.where_any_of["rank"].len(), 3);
        assert_eq!(
            rule.join[0].on.get("author_id").map(String::as_str),
            Some("id")
        );
        let inner = &rule.nest[0].join[0];
        assert_eq!(inner.field, "user");
        assert_eq!(
            rule.relation_tables("blog"),
            vec![
                ("blog".into(), "article_tag".into()),
                ("blog".into(), "comment".into()),
                ("blog".into(), "tag".into()),
                ("blog".into(), "user".into()),
            ]
        );
        assert!(!c.tables[0].shapes_documents());
    }

    #[test]
    fn mistakes_name_their_key() {
        let cases = [
            (
                "[[tables.join]]\nfield = \"a\"\ntable = \"blog.user\"\n",
                "tables[1].join[0].on",
            ),
            (
                "[[tables.join]]\nfield = \"a\"\ntable = \"blog.user\"\non = { a = \"id\" }\nvalues = \"x\"\n",
                "tables[1].join[0].values",
            ),
            (
                "[[tables.nest]]\nfield = \"a\"\ntable = \"t\"\non = { id = \"a\" }\n[[tables.nest]]\nfield = \"a\"\ntable = \"u\"\non = { id = \"a\" }\n",
                "tables[1].nest[1].field",
            ),
            ("where = { s = [] }\n", "tables[1].where.s"),
            (
                "where_null = [\"d\"]\nwhere_not_null = [\"d\"]\n",
                "tables[1].where_null",
            ),
            ("include_columns = []\n", "tables[1].include_columns"),
        ];
        for (extra, key) in cases {
            let text = format!(
                "{MINIMAL}[[tables]]\nmatch = \"blog.article\"\n{}",
                // keys of the rule itself go before its sub-tables
                extra
            );
            let err = load_str(&text)
                .and_then(|c| c.validate())
                .expect_err(extra)
                .to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        let twice = format!(
            "{MINIMAL}{BLOG}[[tables]]\nmatch = \"blog.page\"\nindex = \"articles\"\n[[tables.join]]\nfield = \"a\"\ntable = \"u\"\non = {{ a = \"id\" }}\n"
        );
        let err = load_str(&twice)
            .and_then(|c| c.validate())
            .expect_err("one index")
            .to_string();
        assert!(err.contains("tables[2].index"), "{err}");
        let text = format!(
            "{MINIMAL}[[tables]]\nmatch = \"blog.*\"\n[[tables.join]]\nfield = \"a\"\ntable = \"u\"\non = {{ a = \"id\" }}\n"
        );
        let err = load_str(&text)
            .and_then(|c| c.validate())
            .expect_err("wildcard")
            .to_string();
        assert!(err.contains("tables[1].match"), "{err}");
    }
}
