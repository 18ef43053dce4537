//! A `[[tables]]` rule's SPEC §9 keys resolved against the tables involved: column
//! positions for fields, conditions, routing, `on` pairs, `through`, `values` and
//! `order_by`, as a tree of relations under the root.

use std::sync::Arc;

use crate::config::TableRule;
use crate::config::document::{Relation, RelationKind, qualify};
use crate::json_string::write_json_string;
use crate::schema::TableSchema;

use super::PlanError;
use super::level::{Level, column_of};

/// How one rule builds its documents.
#[derive(Debug, Clone)]
pub struct DocumentPlan {
    /// The root table (one row per document).
    pub root: Arc<TableSchema>,
    /// The root's fields and row conditions.
    pub level: Level,
    /// Column position of `routing`.
    pub routing: Option<usize>,
    /// Relations of the root row, in document order (joins, then nests).
    pub relations: Vec<RelationPlan>,
}

/// One `join` or `nest`, resolved.
#[derive(Debug, Clone)]
pub struct RelationPlan {
    /// Config key (`tables[0].nest[1]`), for messages.
    pub key: String,
    /// Document field.
    pub field: String,
    /// `"field":`.
    pub prefix: Vec<u8>,
    /// Object or array.
    pub kind: RelationKind,
    /// The embedded rows' table.
    pub table: Arc<TableSchema>,
    /// Fields and conditions of the embedded rows.
    pub level: Level,
    /// (parent column, this table's column) pairs; empty with `through`.
    pub on: Vec<(usize, usize)>,
    /// The link table of a many-to-many nest.
    pub through: Option<LinkPlan>,
    /// `values`: the column whose values make the array.
    pub values: Option<usize>,
    /// `order_by` columns (empty: by primary key, or the link's primary key with `through`).
    pub order_by: Vec<usize>,
    /// Relations of the embedded rows.
    pub children: Vec<RelationPlan>,
}

/// `through`, resolved.
#[derive(Debug, Clone)]
pub struct LinkPlan {
    /// The link table.
    pub table: Arc<TableSchema>,
    /// (parent column, link column) pairs.
    pub on: Vec<(usize, usize)>,
    /// (link column, embedded table column) pairs.
    pub to: Vec<(usize, usize)>,
}

impl DocumentPlan {
    /// Resolves `rule` (the `index`-th rule) for the root table `root`; `schema_of(db,
    /// table)` gives the other tables' schemas (`None`: no such table).
    ///
    /// # Errors
    /// A table, column or `on` column that does not exist, or two fields with one name.
    pub fn resolve(
        index: usize,
        rule: &TableRule,
        root: Arc<TableSchema>,
        schema_of: &mut dyn FnMut(&str, &str) -> Option<Arc<TableSchema>>,
    ) -> Result<Self, PlanError> {
        let key = format!("tables[{index}]");
        let level = Level::compile(&key, &rule.fields(), &rule.conditions(), &root)?;
        let routing = rule
            .routing
            .as_deref()
            .map(|name| column_of(&root, &key, "routing", name))
            .transpose()?;
        let relations = resolve_children(&key, &root, &level, &rule.join, &rule.nest, schema_of)?;
        Ok(Self {
            root,
            level,
            routing,
            relations,
        })
    }

    /// Whether documents come from several tables.
    pub fn has_relations(&self) -> bool {
        !self.relations.is_empty()
    }

    /// Every relation in the tree, parents before children, with its path of relation
    /// positions from the root (`[1, 0]`: the first child of the root's second relation).
    pub fn walk(&self) -> Vec<(Vec<usize>, &RelationPlan)> {
        fn go<'a>(
            rels: &'a [RelationPlan],
            path: &mut Vec<usize>,
            out: &mut Vec<(Vec<usize>, &'a RelationPlan)>,
        ) {
            for (i, r) in rels.iter().enumerate() {
                path.push(i);
                out.push((path.clone(), r));
                go(&r.children, path, out);
                path.pop();
            }
        }
        let mut out = Vec::new();
        go(&self.relations, &mut Vec::new(), &mut out);
        out
    }
}

fn resolve_children(
    parent_key: &str,
    parent: &TableSchema,
    parent_level: &Level,
    join: &[Relation],
    nest: &[Relation],
    schema_of: &mut dyn FnMut(&str, &str) -> Option<Arc<TableSchema>>,
) -> Result<Vec<RelationPlan>, PlanError> {
    let mut out = Vec::with_capacity(join.len() + nest.len());
    for (kind, list) in [(RelationKind::Join, join), (RelationKind::Nest, nest)] {
        for (pos, rel) in list.iter().enumerate() {
            let word = match kind {
                RelationKind::Join => "join",
                RelationKind::Nest => "nest",
            };
            let key = format!("{parent_key}.{word}[{pos}]");
            if parent_level.has_field(&rel.field) {
                return Err(PlanError::new(
                    &format!("{key}.field"),
                    format!(
                        "`{}` is also a column field of `{}`; rename one of them",
                        rel.field,
                        parent.qualified()
                    ),
                ));
            }
            out.push(resolve_one(&key, kind, parent, rel, schema_of)?);
        }
    }
    Ok(out)
}

fn lookup(
    key: &str,
    name: &str,
    parent_db: &str,
    schema_of: &mut dyn FnMut(&str, &str) -> Option<Arc<TableSchema>>,
) -> Result<Arc<TableSchema>, PlanError> {
    let (db, table) = qualify(name, parent_db);
    schema_of(&db, &table).ok_or_else(|| {
        PlanError::new(
            key,
            format!("table `{db}.{table}` does not exist (or has no primary key to order by)"),
        )
    })
}

fn pairs(
    key: &str,
    map: &std::collections::BTreeMap<String, String>,
    left: &TableSchema,
    right: &TableSchema,
) -> Result<Vec<(usize, usize)>, PlanError> {
    let mut out = Vec::with_capacity(map.len());
    for (l, r) in map {
        let li = column_of(left, key, "", l).map_err(|e| on_error(key, e))?;
        let ri = column_of(right, key, "", r).map_err(|e| on_error(key, e))?;
        out.push((li, ri));
    }
    Ok(out)
}

/// A column error of an `on` map, keyed by the map itself (`….on`).
fn on_error(key: &str, e: PlanError) -> PlanError {
    PlanError::new(key, e.message)
}

fn resolve_one(
    key: &str,
    kind: RelationKind,
    parent: &TableSchema,
    rel: &Relation,
    schema_of: &mut dyn FnMut(&str, &str) -> Option<Arc<TableSchema>>,
) -> Result<RelationPlan, PlanError> {
    let table = lookup(&format!("{key}.table"), &rel.table, &parent.db, schema_of)?;
    let level = Level::compile(key, &rel.fields(), &rel.conditions(), &table)?;
    let (on, through) = match &rel.through {
        Some(t) => {
            let link = lookup(
                &format!("{key}.through.table"),
                &t.table,
                &parent.db,
                schema_of,
            )?;
            let on = pairs(&format!("{key}.through.on"), &t.on, parent, &link)?;
            let to = pairs(&format!("{key}.through.to"), &t.to, &link, &table)?;
            (
                Vec::new(),
                Some(LinkPlan {
                    table: link,
                    on,
                    to,
                }),
            )
        }
        None => (pairs(&format!("{key}.on"), &rel.on, parent, &table)?, None),
    };
    let values = rel
        .values
        .as_deref()
        .map(|v| column_of(&table, key, "values", v))
        .transpose()?;
    let order_by = rel
        .order_by
        .iter()
        .map(|c| column_of(&table, key, "order_by", c))
        .collect::<Result<_, _>>()?;
    let children = resolve_children(key, &table, &level, &rel.join, &rel.nest, schema_of)?;
    let mut prefix = Vec::with_capacity(rel.field.len() + 3);
    write_json_string(&mut prefix, &rel.field);
    prefix.push(b':');
    Ok(RelationPlan {
        key: key.to_owned(),
        field: rel.field.clone(),
        prefix,
        kind,
        table,
        level,
        on,
        through,
        values,
        order_by,
        children,
    })
}

impl RelationPlan {
    /// Whether `on` pairs cover the embedded table's primary key (a join's `on` should
    /// name a key; `check` warns otherwise, after also looking at unique keys).
    pub fn on_covers_primary_key(&self) -> bool {
        self.through.is_none()
            && self
                .table
                .key
                .iter()
                .all(|k| self.on.iter().any(|(_, c)| c == k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{MINIMAL, load_str};
    use crate::schema::ColumnSpec;
    use std::collections::HashMap;

    fn table(db: &str, name: &str, cols: &[&str]) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            db: db.into(),
            table: name.into(),
            columns: cols
                .iter()
                .map(|n| ColumnSpec {
                    name: (*n).into(),
                    ..ColumnSpec::default()
                })
                .collect(),
            key: vec![0],
            index: name.into(),
            decoder_cache: Default::default(),
        })
    }

    fn blog() -> HashMap<(String, String), Arc<TableSchema>> {
        [
            table("blog", "article", &["id", "title", "author_id", "status"]),
            table("blog", "user", &["id", "name"]),
            table(
                "blog",
                "comment",
                &["id", "article_id", "user_id", "approved"],
            ),
            table("blog", "tag", &["id", "name"]),
            table("blog", "article_tag", &["id", "article_id", "tag_id"]),
        ]
        .into_iter()
        .map(|t| ((t.db.clone(), t.table.clone()), t))
        .collect()
    }

    fn resolve(rule_text: &str) -> Result<DocumentPlan, PlanError> {
        let config = load_str(&format!("{MINIMAL}{rule_text}")).expect("parses");
        let tables = blog();
        let mut schema_of = |db: &str, t: &str| tables.get(&(db.to_owned(), t.to_owned())).cloned();
        let root = tables[&("blog".to_owned(), "article".to_owned())].clone();
        DocumentPlan::resolve(1, &config.tables[1], root, &mut schema_of)
    }

    const RULE: &str = r#"
[[tables]]
match = "blog.article"
routing = "author_id"
[[tables.join]]
field = "author"
table = "blog.user"
on = { author_id = "id" }
[[tables.nest]]
field = "comments"
table = "comment"
on = { id = "article_id" }
order_by = ["approved"]
[[tables.nest.join]]
field = "user"
table = "blog.user"
on = { user_id = "id" }
[[tables.nest]]
field = "tags"
table = "blog.tag"
through = { table = "blog.article_tag", on = { id = "article_id" }, to = { tag_id = "id" } }
values = "name"
"#;

    #[test]
    fn the_tree_is_resolved_to_column_positions() {
        let plan = resolve(RULE).expect("resolves");
        assert_eq!(plan.routing, Some(2));
        let fields: Vec<&str> = plan.relations.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(fields, ["author", "comments", "tags"]);
        assert_eq!(plan.relations[0].on, vec![(2, 0)]);
        assert!(plan.relations[0].on_covers_primary_key());
        let comments = &plan.relations[1];
        assert_eq!(comments.table.table, "comment");
        assert_eq!(comments.on, vec![(0, 1)]);
        assert_eq!(comments.order_by, vec![3]);
        assert_eq!(comments.children[0].on, vec![(2, 0)]);
        let tags = &plan.relations[2];
        let link = tags.through.as_ref().expect("through");
        assert_eq!(
            (link.on.clone(), link.to.clone()),
            (vec![(0, 1)], vec![(2, 0)])
        );
        assert_eq!(tags.values, Some(1));
        let paths: Vec<Vec<usize>> = plan.walk().into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, vec![vec![0], vec![1], vec![1, 0], vec![2]]);
    }

    #[test]
    fn what_does_not_exist_is_named() {
        let cases = [
            (
                RULE.replace("blog.tag\"\nthrough", "blog.tags\"\nthrough"),
                "tables[1].nest[1].table",
                "blog.tags",
            ),
            (
                RULE.replace("on = { user_id = \"id\" }", "on = { user = \"id\" }"),
                "tables[1].nest[0].join[0].on",
                "`user`",
            ),
            (
                RULE.replace("values = \"name\"", "values = \"label\""),
                "tables[1].nest[1].values",
                "`label`",
            ),
            (
                RULE.replace("routing = \"author_id\"", "routing = \"writer\""),
                "tables[1].routing",
                "`writer`",
            ),
            (
                RULE.replace("field = \"author\"", "field = \"title\""),
                "tables[1].join[0].field",
                "`title`",
            ),
            (
                RULE.replace("to = { tag_id = \"id\" }", "to = { tag = \"id\" }"),
                "tables[1].nest[1].through.to",
                "`tag`",
            ),
        ];
        for (text, key, word) in cases {
            let err = resolve(&text).expect_err(key);
            assert_eq!(err.key, key, "{err}");
            assert!(err.message.contains(word), "{err}");
        }
    }
}
