//! Which root documents a change of another table of a rule affects (SPEC §9 "every change
//! reaches every document it affects"). A changed row belongs to the parents whose `on`
//! columns equal its own, so each occurrence of the table in the relation tree gives a path
//! of joins from the root down to that parent, filtered by the changed row's values. The
//! changed table itself is never joined: a deleted row (or an update's before image) is no
//! longer in it.
//!
//! A direct relation of the root whose root-side `on` columns cover the root's key needs no
//! query: the changed row holds the key. Everything else is one query per call over every
//! path (a `UNION`), in root-key order with keyset pagination, so a change reaching 500,000
//! roots is walked in bounded pages. Row conditions are ignored here (the re-read decides;
//! a superset is harmless) but no root is ever missed. The root table's own rows are the
//! stream's: only its occurrences inside relations count here.

use std::collections::HashSet;
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use crate::decode::RowDecoder;
use crate::decode::field::FieldValue;
use crate::decode::rows::RootKey;
use crate::scan;
use crate::schema::TableSchema;

use super::fetch::FetchError;
use super::key::sql_param;
use super::plan::{DocumentPlan, RelationPlan};
use super::sql::{self, Exact};

/// How changes of one table reach the root documents of one rule.
#[derive(Debug, Clone)]
pub struct FanOut {
    /// The root table.
    root: Arc<TableSchema>,
    /// The root's key columns as a table of their own (key order), to decode the keys a
    /// query returns and compute `_id`s exactly as the stream does.
    keys: TableSchema,
    /// Direct relations of the root: per root key column, the changed table's column.
    direct: Vec<Vec<usize>>,
    /// Paths that need a query.
    paths: Vec<Path>,
}

/// One table joined on the way down from the root.
#[derive(Debug, Clone)]
struct Hop {
    table: Arc<TableSchema>,
    /// (previous node's column, this table's column).
    on: Vec<(usize, usize)>,
}

/// The joins from the root to the parent a changed row hangs from.
#[derive(Debug, Clone)]
struct Path {
    /// Tables joined after the root; the last node (the root when empty) is the parent.
    hops: Vec<Hop>,
    /// Parent columns equal to the changed row's `changed` columns, pair by pair.
    parent_cols: Vec<usize>,
    /// The changed table's columns, same order.
    changed: Vec<usize>,
    /// The changed table (its column specs turn values into parameters).
    table: Arc<TableSchema>,
}

impl Path {
    /// The parent node's schema.
    fn parent<'a>(&'a self, root: &'a TableSchema) -> &'a TableSchema {
        self.hops.last().map_or(root, |h| &h.table)
    }
}

impl FanOut {
    /// The paths by which rows of `db.table` reach `plan`'s root documents: every
    /// occurrence in the relation tree, as a joined table or as a `through` link table.
    pub fn new(plan: &DocumentPlan, db: &str, table: &str) -> Self {
        let root = &plan.root;
        let mut paths = Vec::new();
        collect(&plan.relations, &[], db, table, &mut paths);
        let (direct, paths): (Vec<Path>, Vec<Path>) = paths
            .into_iter()
            .partition(|p| p.hops.is_empty() && direct_columns(root, p).is_some());
        let mut direct: Vec<Vec<usize>> = direct
            .iter()
            .filter_map(|p| direct_columns(root, p))
            .collect();
        direct.dedup();
        let keys = TableSchema {
            db: root.db.clone(),
            table: root.table.clone(),
            columns: root
                .key
                .iter()
                .filter_map(|&k| root.columns.get(k).cloned())
                .collect(),
            key: (0..root.key.len()).collect(),
            index: root.index.clone(),
            decoder_cache: Default::default(),
        };
        Self {
            root: root.clone(),
            keys,
            direct,
            paths,
        }
    }

    /// Whether the table occurs nowhere in the rule's relations.
    pub fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.paths.is_empty()
    }

    /// Whether some root documents are found only by a query ([`FanOut::roots_after`]).
    pub fn needs_query(&self) -> bool {
        !self.paths.is_empty()
    }

    /// The roots a changed row (one decoded value per column) reaches directly, no query:
    /// `(_id, key)`; nothing for a NULL `on` value.
    pub fn direct_roots(&self, row: &[FieldValue]) -> Vec<(String, RootKey)> {
        let mut out: Vec<(String, RootKey)> = Vec::new();
        for cols in &self.direct {
            let values: Vec<FieldValue> = cols
                .iter()
                .map(|&c| row.get(c).cloned().unwrap_or(FieldValue::Null))
                .collect();
            if values.iter().any(|v| matches!(v, FieldValue::Null)) {
                continue;
            }
            let id = RowDecoder::id_of_values(&self.keys, &values);
            if out.iter().any(|(known, _)| *known == id) {
                continue;
            }
            let key = values
                .iter()
                .zip(&self.keys.columns)
                .map(|(v, col)| sql_param(col, v))
                .collect();
            out.push((id, RootKey(key)));
        }
        out
    }

    /// The next `limit` roots (in the root key's SQL order, after `after`) that the changed
    /// rows `rows` (before and after images, one decoded value per column) reach through a
    /// query path: `(_id, key)`. Fewer than `limit` means the walk is done.
    ///
    /// # Errors
    /// A failed query (transient) or a key that does not decode.
    pub async fn roots_after(
        &self,
        conn: &mut Conn,
        rows: &[Vec<FieldValue>],
        after: Option<&RootKey>,
        limit: usize,
    ) -> Result<Vec<(String, RootKey)>, FetchError> {
        let Some((sql, params)) = self.query(rows, after, limit) else {
            return Ok(Vec::new());
        };
        let found: Vec<Row> = conn
            .exec(sql, params)
            .await
            .map_err(|source| FetchError::Query {
                table: self.keys.qualified(),
                source,
            })?;
        let mut out = Vec::with_capacity(found.len());
        for row in found {
            let error = |message: String| FetchError::Row {
                table: self.keys.qualified(),
                message,
            };
            let image =
                scan::row_image(&self.keys, row.unwrap()).map_err(|e| error(e.to_string()))?;
            let values = RowDecoder::decode_values(&self.keys, &image, None)
                .map_err(|e| error(e.to_string()))?;
            let key = values
                .iter()
                .zip(&self.keys.columns)
                .map(|(v, col)| sql_param(col, v))
                .collect();
            out.push((RowDecoder::id_of_values(&self.keys, &values), RootKey(key)));
        }
        Ok(out)
    }

    /// The statement and parameters of [`FanOut::roots_after`]; `None` when no path has a
    /// non-NULL value to look for.
    pub(crate) fn query(
        &self,
        rows: &[Vec<FieldValue>],
        after: Option<&RootKey>,
        limit: usize,
    ) -> Option<(String, Vec<Value>)> {
        let root_keys: Vec<String> = self
            .root
            .key
            .iter()
            .map(|&k| sql::col("r", &self.root, k))
            .collect();
        let aliases: Vec<String> = (0..root_keys.len()).map(|i| format!("k{i}")).collect();
        let order = aliases.join(", ");
        let mut selects = Vec::new();
        let mut params = Vec::new();
        for path in &self.paths {
            let Some((mut select, mut values)) = path_select(&self.root, path, rows) else {
                continue;
            };
            if let Some(after) = after {
                select.push_str(&format!(" AND {}", sql::after(&root_keys)));
                values.extend(after.0.iter().cloned());
            }
            selects.push(format!("{select} ORDER BY {order} LIMIT {limit}"));
            params.extend(values);
        }
        let sql = match selects.len() {
            0 => return None,
            1 => selects.remove(0),
            // Each branch's first `limit` keys hold the union's first `limit`.
            _ => format!(
                "{} ORDER BY {order} LIMIT {limit}",
                selects
                    .iter()
                    .map(|s| format!("({s})"))
                    .collect::<Vec<_>>()
                    .join(" UNION ")
            ),
        };
        Some((sql, params))
    }
}

/// `SELECT DISTINCT root keys FROM root JOIN … WHERE (parent cols) IN (…)` of one path, with
/// its parameters; `None` when every changed row has a NULL in the path's columns.
fn path_select(
    root: &TableSchema,
    path: &Path,
    rows: &[Vec<FieldValue>],
) -> Option<(String, Vec<Value>)> {
    let parent = path.parent(root);
    let modes: Vec<bool> = path
        .parent_cols
        .iter()
        .zip(&path.changed)
        .map(|(&p, &c)| {
            parent.columns.get(p).is_some_and(sql::numeric)
                || path.table.columns.get(c).is_some_and(sql::numeric)
        })
        .collect();
    // Distinct non-NULL tuples of the changed rows, exactly.
    let mut seen: HashSet<Vec<Exact>> = HashSet::new();
    let mut params = Vec::new();
    let mut n = 0;
    for row in rows {
        let cols = path.changed.iter().copied().zip(modes.iter().copied());
        let Some(exact) = sql::exact_tuple(row, cols) else {
            continue;
        };
        if seen.insert(exact) {
            n += 1;
            for &c in &path.changed {
                let v = row.get(c).unwrap_or(&FieldValue::Null);
                params.push(
                    path.table
                        .columns
                        .get(c)
                        .map_or(Value::NULL, |col| sql_param(col, v)),
                );
            }
        }
    }
    if n == 0 {
        return None;
    }
    // Node 0 is the root (`r`), node i the i-th hop (`a<i>`).
    let alias = |i: usize| {
        if i == 0 {
            "r".to_owned()
        } else {
            format!("a{i}")
        }
    };
    let select: Vec<String> = root
        .key
        .iter()
        .enumerate()
        .map(|(i, &k)| format!("{} AS k{i}", sql::col("r", root, k)))
        .collect();
    let mut sql = format!(
        "SELECT DISTINCT {} FROM {} r",
        select.join(", "),
        sql::table_name(root)
    );
    let mut prev: &TableSchema = root;
    for (i, hop) in path.hops.iter().enumerate() {
        let on: Vec<String> = hop
            .on
            .iter()
            .map(|&(p, c)| {
                format!(
                    "{} = {}",
                    sql::col(&alias(i), prev, p),
                    sql::col(&alias(i + 1), &hop.table, c)
                )
            })
            .collect();
        sql.push_str(&format!(
            " JOIN {} {} ON {}",
            sql::table_name(&hop.table),
            alias(i + 1),
            on.join(" AND ")
        ));
        prev = &hop.table;
    }
    let cond: Vec<String> = path
        .parent_cols
        .iter()
        .map(|&p| sql::col(&alias(path.hops.len()), parent, p))
        .collect();
    sql.push_str(&format!(" WHERE {}", sql::in_list(&cond, n)));
    Some((sql, params))
}

/// Per root key column (key order), the changed table's column equal to it, when the path
/// is a direct relation of the root whose `on` covers the root's key.
fn direct_columns(root: &TableSchema, path: &Path) -> Option<Vec<usize>> {
    if !path.hops.is_empty() {
        return None;
    }
    root.key
        .iter()
        .map(|k| {
            path.parent_cols
                .iter()
                .position(|p| p == k)
                .and_then(|j| path.changed.get(j).copied())
        })
        .collect()
}

/// Paths of every occurrence of `db.table` in `rels`, whose parent is reached by `hops`.
fn collect(rels: &[RelationPlan], hops: &[Hop], db: &str, table: &str, out: &mut Vec<Path>) {
    let is = |s: &TableSchema| s.db == db && s.table == table;
    for rel in rels {
        let mut below = hops.to_vec();
        match &rel.through {
            Some(link) => {
                let link_hop = Hop {
                    table: link.table.clone(),
                    on: link.on.clone(),
                };
                if is(&link.table) {
                    out.push(Path {
                        hops: hops.to_vec(),
                        parent_cols: link.on.iter().map(|&(p, _)| p).collect(),
                        changed: link.on.iter().map(|&(_, c)| c).collect(),
                        table: link.table.clone(),
                    });
                }
                below.push(link_hop);
                if is(&rel.table) {
                    // A target row hangs from the link rows pointing at it.
                    out.push(Path {
                        hops: below.clone(),
                        parent_cols: link.to.iter().map(|&(l, _)| l).collect(),
                        changed: link.to.iter().map(|&(_, t)| t).collect(),
                        table: rel.table.clone(),
                    });
                }
                below.push(Hop {
                    table: rel.table.clone(),
                    on: link.to.clone(),
                });
            }
            None => {
                if is(&rel.table) {
                    out.push(Path {
                        hops: hops.to_vec(),
                        parent_cols: rel.on.iter().map(|&(p, _)| p).collect(),
                        changed: rel.on.iter().map(|&(_, c)| c).collect(),
                        table: rel.table.clone(),
                    });
                }
                below.push(Hop {
                    table: rel.table.clone(),
                    on: rel.on.clone(),
                });
            }
        }
        collect(&rel.children, &below, db, table, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::fetch::tests::blog_plan;

    fn i(v: i64) -> FieldValue {
        FieldValue::Int(v)
    }

    #[test]
    fn a_direct_child_names_its_root_without_a_query() {
        let plan = blog_plan();
        let comments = FanOut::new(&plan, "blog", "comment");
        assert!(!comments.needs_query() && !comments.is_empty());
        let row = vec![i(10), i(3), i(5), FieldValue::Str("b".into()), i(1)];
        assert_eq!(
            comments.direct_roots(&row),
            vec![("3".to_owned(), RootKey(vec![Value::Int(3)]))]
        );
        let orphan = vec![i(10), FieldValue::Null, i(5), FieldValue::Null, i(1)];
        assert!(comments.direct_roots(&orphan).is_empty());
        // A root-level link table is direct too.
        let links = FanOut::new(&plan, "blog", "article_tag");
        assert_eq!(
            links.direct_roots(&[i(1), i(4), i(9)]),
            vec![("4".to_owned(), RootKey(vec![Value::Int(4)]))]
        );
        assert!(!links.needs_query());
        assert!(FanOut::new(&plan, "blog", "nothing").is_empty());
        assert!(FanOut::new(&plan, "other", "user").is_empty());
    }

    #[test]
    fn other_occurrences_are_one_union_query_with_keyset_pages() {
        let plan = blog_plan();
        let users = FanOut::new(&plan, "blog", "user");
        assert!(users.needs_query());
        assert!(users.direct_roots(&[i(7), FieldValue::Null]).is_empty());
        // Before and after image of one user, and a second user.
        let rows = vec![
            vec![i(7), FieldValue::Str("ann".into())],
            vec![i(7), FieldValue::Str("anne".into())],
            vec![i(8), FieldValue::Null],
        ];
        let (sql, params) = users.query(&rows, None, 50).unwrap();
        assert_eq!(
            sql,
            "(SELECT DISTINCT r.`id` AS k0 FROM `blog`.`article` r \
             WHERE r.`author_id` IN (?, ?) ORDER BY k0 LIMIT 50) UNION \
             (SELECT DISTINCT r.`id` AS k0 FROM `blog`.`article` r \
             JOIN `blog`.`comment` a1 ON r.`id` = a1.`article_id` \
             WHERE a1.`user_id` IN (?, ?) ORDER BY k0 LIMIT 50) ORDER BY k0 LIMIT 50"
        );
        assert_eq!(
            params,
            vec![Value::Int(7), Value::Int(8), Value::Int(7), Value::Int(8)]
        );
        let after = RootKey(vec![Value::Int(40)]);
        let (sql, params) = users.query(&rows[..1], Some(&after), 2).unwrap();
        assert!(
            sql.starts_with(
                "(SELECT DISTINCT r.`id` AS k0 FROM `blog`.`article` r \
                 WHERE r.`author_id` IN (?) AND r.`id` > ? ORDER BY k0 LIMIT 2)"
            ),
            "{sql}"
        );
        assert_eq!(
            params,
            vec![Value::Int(7), Value::Int(40), Value::Int(7), Value::Int(40)]
        );
        // A NULL key everywhere: nothing to look for.
        assert!(
            users
                .query(&[vec![FieldValue::Null, FieldValue::Null]], None, 5)
                .is_none()
        );
    }

    #[test]
    fn a_through_target_is_reached_by_its_link_rows() {
        let plan = blog_plan();
        let tags = FanOut::new(&plan, "blog", "tag");
        let (sql, params) = tags
            .query(&[vec![i(9), FieldValue::Null]], None, 10)
            .unwrap();
        assert_eq!(
            sql,
            "SELECT DISTINCT r.`id` AS k0 FROM `blog`.`article` r \
             JOIN `blog`.`article_tag` a1 ON r.`id` = a1.`article_id` \
             WHERE a1.`tag_id` IN (?) ORDER BY k0 LIMIT 10"
        );
        assert_eq!(params, vec![Value::Int(9)]);
    }
}
