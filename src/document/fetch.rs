//! SPEC §9 documents of a rule with relations, built from MySQL's current rows in batches:
//! one query for the root rows, then one query per relation node for all the batch's
//! parents (long `IN` lists split into [`IN_CHUNK`] tuples), never one query per document.
//!
//! SQL compares by collation (`'a' = 'A'`), so every query may return more rows than the
//! document takes; which rows belong where is decided here, exactly (numbers by value,
//! strings byte for byte, NULL equal to nothing). Values are decoded by the stream's own
//! decoder from the binary-protocol rows (`scan::row_image`), so documents hold exactly the
//! SPEC §5/§6 values a row event would give.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use crate::config::TableRule;
use crate::config::document::{Relation, RelationKind, qualify};
use crate::decode::RowDecoder;
use crate::decode::field::FieldValue;
use crate::decode::rows::RootKey;
use crate::scan::{self, SchemaReadError};
use crate::schema::TableSchema;

use super::key::{routing_text, sql_param};
use super::plan::{DocumentPlan, RelationPlan};
use super::sql::{self, Exact, IN_CHUNK};
use super::{Level, PlanError};

/// One document built from MySQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// `_id` (SPEC §5, from the root row's key).
    pub id: String,
    /// `_source`: a JSON object's text.
    pub source: Bytes,
    /// `_routing` (SPEC §9 `routing`); `None` without routing or for a NULL value.
    pub routing: Option<Arc<str>>,
}

/// Why documents could not be built (or their roots found).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The rule does not fit the tables (a configuration error).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A query failed (a lost connection, a timeout...): worth trying again.
    #[error("reading `{table}`: {source}")]
    Query {
        /// `db.table` the query read.
        table: String,
        /// The driver's error.
        source: mysql_async::Error,
    },
    /// The root table cannot be turned into documents (unsupported column, no key...).
    #[error("`{table}` cannot be read: {message}")]
    Table {
        /// `db.table`.
        table: String,
        /// What is wrong.
        message: String,
    },
    /// A row read over SQL does not decode.
    #[error("a row of `{table}` does not decode: {message}")]
    Row {
        /// `db.table`.
        table: String,
        /// The decoder's message, with the column.
        message: String,
    },
}

impl FetchError {
    /// Whether trying again may succeed (a failed query), as opposed to a rule or table
    /// that does not fit.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Query { .. })
    }

    fn query(table: &TableSchema) -> impl FnOnce(mysql_async::Error) -> FetchError + '_ {
        move |source| FetchError::Query {
            table: table.qualified(),
            source,
        }
    }
}

/// Prepares a connection for [`build`] and [`super::fanout::FanOut::roots_after`]: UTF-8
/// text and UTC timestamps, the forms the decoder takes the values in.
///
/// # Errors
/// The `SET` fails (transient).
pub async fn setup_session(conn: &mut Conn) -> Result<(), FetchError> {
    conn.query_drop(scan::SESSION_SETUP)
        .await
        .map_err(|source| FetchError::Query {
            table: "(session)".into(),
            source,
        })
}

/// Reads the schema of the root table `db.table` and of every table of `rule`'s relations
/// as SQL rows decode (`scan::read_table_schema`), and resolves the rule (the `index`-th)
/// against them. Documents [`build`] with this plan decode right.
///
/// # Errors
/// [`FetchError::Plan`] when the rule does not fit the tables (a missing table or column),
/// [`FetchError::Table`] when the root cannot be read, [`FetchError::Query`] when a catalog
/// query fails.
pub async fn resolve_plan(
    conn: &mut Conn,
    index: usize,
    rule: &TableRule,
    db: &str,
    table: &str,
) -> Result<DocumentPlan, FetchError> {
    let root = scan::read_table_schema(conn, rule, db, table)
        .await
        .map_err(|e| match e {
            SchemaReadError::Query { table, source } => FetchError::Query { table, source },
            SchemaReadError::Table(message) => FetchError::Table {
                table: format!("{db}.{table}"),
                message,
            },
        })?;
    let mut names = Vec::new();
    let relations: Vec<&Relation> = rule.relations().map(|(_, r)| r).collect();
    collect_tables(&relations, db, &mut names);
    // Relation tables take their key from the catalog, never from the root's `id_columns`.
    let mut other = rule.clone();
    other.id_columns.clear();
    let mut schemas: HashMap<(String, String), Arc<TableSchema>> = HashMap::new();
    let mut unreadable: Vec<(String, String)> = Vec::new();
    for (d, t) in names {
        if schemas.contains_key(&(d.clone(), t.clone())) {
            continue;
        }
        match scan::read_table_schema(conn, &other, &d, &t).await {
            Ok(s) => {
                schemas.insert((d, t), Arc::new(s));
            }
            Err(SchemaReadError::Query { table, source }) => {
                return Err(FetchError::Query { table, source });
            }
            // A table that does not exist, has no key or an unsupported column: the plan
            // names the key, and the reason is added to its message.
            Err(SchemaReadError::Table(reason)) => unreadable.push((format!("`{d}.{t}`"), reason)),
        }
    }
    DocumentPlan::resolve(index, rule, Arc::new(root), &mut |d, t| {
        schemas.get(&(d.to_owned(), t.to_owned())).cloned()
    })
    .map_err(|mut e| {
        if let Some((_, reason)) = unreadable.iter().find(|(t, _)| e.message.contains(t)) {
            e.message = format!("{} ({reason})", e.message);
        }
        FetchError::Plan(e)
    })
}

/// Every `db.table` of `relations` (and their links), qualified as the plan qualifies them.
fn collect_tables(relations: &[&Relation], parent_db: &str, out: &mut Vec<(String, String)>) {
    for rel in relations {
        if let Some(t) = &rel.through {
            out.push(qualify(&t.table, parent_db));
        }
        let (db, table) = qualify(&rel.table, parent_db);
        let children: Vec<&Relation> = rel.children().map(|(_, r)| r).collect();
        out.push((db.clone(), table));
        collect_tables(&children, &db, out);
    }
}

/// Builds the documents of the root rows `keys` from MySQL's current rows, aligned with
/// `keys`: `None` where the root row does not exist or does not pass the root's row
/// conditions. `plan` comes from [`resolve_plan`]; `conn` had [`setup_session`].
///
/// # Errors
/// A failed query (transient) or a row that does not decode.
pub async fn build(
    conn: &mut Conn,
    plan: &DocumentPlan,
    keys: &[RootKey],
) -> Result<Vec<Option<Built>>, FetchError> {
    let mut out: Vec<Option<Built>> = vec![None; keys.len()];
    let root = &plan.root;
    // Distinct keys → the positions asking for them.
    let mut wanted: HashMap<Vec<Exact>, Vec<usize>> = HashMap::new();
    let mut distinct: Vec<&RootKey> = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(exact) = key
            .0
            .iter()
            .map(sql::param_exact)
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let slot = wanted.entry(exact).or_default();
        if slot.is_empty() {
            distinct.push(key);
        }
        slot.push(i);
    }
    let mut rows: Vec<Vec<FieldValue>> = Vec::new();
    let mut owners: Vec<Vec<usize>> = Vec::new();
    for chunk in distinct.chunks(IN_CHUNK) {
        let sql = root_sql(root, chunk.len());
        let params: Vec<Value> = chunk.iter().flat_map(|k| k.0.iter().cloned()).collect();
        let found: Vec<Row> = conn
            .exec(sql, params)
            .await
            .map_err(FetchError::query(root))?;
        for row in found {
            let values = decode(root, row.unwrap())?;
            let exact = root
                .key
                .iter()
                .map(|&k| sql::param_exact(&sql_param(&root.columns[k], &values[k])))
                .collect::<Option<Vec<_>>>();
            // An exact key match only: SQL may return 'A' for 'a'.
            let Some(asking) = exact.and_then(|e| wanted.remove(&e)) else {
                continue;
            };
            if plan.level.matches(&values) {
                rows.push(values);
                owners.push(asking);
            }
        }
    }
    let fetched = fetch_relations(conn, root, &plan.relations, &rows).await?;
    let mut buf = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        buf.clear();
        write_object(&plan.level, &plan.relations, &fetched, i, row, &mut buf);
        let built = Built {
            id: RowDecoder::id_of_values(root, row),
            source: Bytes::copy_from_slice(&buf),
            routing: plan
                .routing
                .and_then(|c| routing_text(row.get(c).unwrap_or(&FieldValue::Null)))
                .map(Arc::from),
        };
        for &k in &owners[i] {
            out[k] = Some(built.clone());
        }
    }
    Ok(out)
}

/// `SELECT` of the root rows with these keys.
pub(crate) fn root_sql(root: &TableSchema, n: usize) -> String {
    let keys: Vec<String> = root.key.iter().map(|&k| sql::col("r", root, k)).collect();
    format!(
        "SELECT {} FROM {} r WHERE {}",
        sql::all_columns("r", root),
        sql::table_name(root),
        sql::in_list(&keys, n)
    )
}

/// `SELECT` of a relation's rows for `n` distinct parent `on` tuples, in document order:
/// a join's rows by primary key (the lowest wins), a nest's by `order_by` then primary
/// key; through a link, the link's and the target's columns, by the target's `order_by`
/// then the link's primary key.
pub(crate) fn relation_sql(rel: &RelationPlan, n: usize) -> String {
    let t = &rel.table;
    let pk = |alias: &str, s: &TableSchema| -> Vec<String> {
        s.key.iter().map(|&k| sql::col(alias, s, k)).collect()
    };
    let mut order: Vec<String> = match rel.kind {
        RelationKind::Join => Vec::new(),
        RelationKind::Nest => rel.order_by.iter().map(|&c| sql::col("t", t, c)).collect(),
    };
    match &rel.through {
        None => {
            let on: Vec<String> = rel.on.iter().map(|&(_, c)| sql::col("t", t, c)).collect();
            order.extend(pk("t", t));
            format!(
                "SELECT {} FROM {} t WHERE {} ORDER BY {}",
                sql::all_columns("t", t),
                sql::table_name(t),
                sql::in_list(&on, n),
                order.join(", ")
            )
        }
        Some(link) => {
            let l = &link.table;
            let join: Vec<String> = link
                .to
                .iter()
                .map(|&(lc, tc)| format!("{} = {}", sql::col("l", l, lc), sql::col("t", t, tc)))
                .collect();
            let on: Vec<String> = link.on.iter().map(|&(_, c)| sql::col("l", l, c)).collect();
            order.extend(pk("l", l));
            format!(
                "SELECT {}, {} FROM {} l JOIN {} t ON {} WHERE {} ORDER BY {}",
                sql::all_columns("l", l),
                sql::all_columns("t", t),
                sql::table_name(l),
                sql::table_name(t),
                join.join(" AND "),
                sql::in_list(&on, n),
                order.join(", ")
            )
        }
    }
}

/// A binary-protocol row of `schema` as decoded values.
fn decode(schema: &TableSchema, row: Vec<Value>) -> Result<Vec<FieldValue>, FetchError> {
    let error = |message: String| FetchError::Row {
        table: schema.qualified(),
        message,
    };
    let image = scan::row_image(schema, row).map_err(|e| error(e.to_string()))?;
    RowDecoder::decode_values(schema, &image, None).map_err(|e| error(e.to_string()))
}

/// The rows of one relation for all parents of a level.
#[derive(Debug, Default)]
struct RelRows {
    /// The relation table's rows that belong to some parent (and pass the row conditions).
    rows: Vec<Vec<FieldValue>>,
    /// Per parent row: its elements (indices into `rows`), in document order; for a join,
    /// at most one.
    of_parent: Vec<Vec<usize>>,
    /// The relations of `rows`, plan order.
    children: Vec<RelRows>,
}

type Fetch<'a> = Pin<Box<dyn Future<Output = Result<Vec<RelRows>, FetchError>> + Send + 'a>>;

/// Fetches `rels` (the relations of `parent`'s rows `parents`) and their descendants: one
/// query per relation node (per chunk of distinct parent values).
fn fetch_relations<'a>(
    conn: &'a mut Conn,
    parent: &'a TableSchema,
    rels: &'a [RelationPlan],
    parents: &'a [Vec<FieldValue>],
) -> Fetch<'a> {
    Box::pin(async move {
        let mut out = Vec::with_capacity(rels.len());
        for rel in rels {
            let mut got = if parents.is_empty() {
                RelRows::default()
            } else {
                fetch_one(conn, parent, rel, parents).await?
            };
            if rel.values.is_none() && !rel.children.is_empty() {
                got.children = fetch_relations(conn, &rel.table, &rel.children, &got.rows).await?;
            }
            out.push(got);
        }
        Ok(out)
    })
}

/// (parent column, whether it compares as a number) and (child column, same) of `on`.
type Pairs = Vec<((usize, bool), (usize, bool))>;

fn pairs(left: &TableSchema, right: &TableSchema, on: &[(usize, usize)]) -> Pairs {
    on.iter()
        .map(|&(l, r)| {
            let num = left.columns.get(l).is_some_and(sql::numeric)
                || right.columns.get(r).is_some_and(sql::numeric);
            ((l, num), (r, num))
        })
        .collect()
}

async fn fetch_one(
    conn: &mut Conn,
    parent: &TableSchema,
    rel: &RelationPlan,
    parents: &[Vec<FieldValue>],
) -> Result<RelRows, FetchError> {
    let mut placement = Placement::new(parent, rel);
    let (parent_keys, tuples) = placement.parent_tuples(parent, parents);
    for chunk in tuples.chunks(IN_CHUNK) {
        let params: Vec<Value> = chunk.iter().flatten().cloned().collect();
        let found: Vec<Row> = conn
            .exec(relation_sql(rel, chunk.len()), params)
            .await
            .map_err(FetchError::query(&rel.table))?;
        for row in found {
            let mut values = row.unwrap();
            match &rel.through {
                Some(l) => {
                    let target = values.split_off(l.table.columns.len().min(values.len()));
                    let link = decode(&l.table, values)?;
                    placement.place(Some(link), decode(&rel.table, target)?);
                }
                None => placement.place(None, decode(&rel.table, values)?),
            }
        }
    }
    Ok(placement.finish(&parent_keys))
}

/// Places a relation's rows, as SQL returns them (a superset, in document order), under
/// the parents they belong to, exactly.
struct Placement<'a> {
    rel: &'a RelationPlan,
    /// Parent → this table (or → the link table with `through`).
    up: Pairs,
    /// Link → this table with `through`.
    to: Option<Pairs>,
    rows: Vec<Vec<FieldValue>>,
    /// Exact `on` values → the rows hanging there, in SQL order.
    groups: HashMap<Vec<Exact>, Vec<usize>>,
    /// Primary keys (of the link rows with `through`) already placed.
    placed: HashSet<Vec<Option<Exact>>>,
}

impl<'a> Placement<'a> {
    fn new(parent: &TableSchema, rel: &'a RelationPlan) -> Self {
        let (up, to) = match &rel.through {
            Some(link) => (
                pairs(parent, &link.table, &link.on),
                Some(pairs(&link.table, &rel.table, &link.to)),
            ),
            None => (pairs(parent, &rel.table, &rel.on), None),
        };
        Self {
            rel,
            up,
            to,
            rows: Vec::new(),
            groups: HashMap::new(),
            placed: HashSet::new(),
        }
    }

    /// Each parent's exact `on` values (`None` with a NULL), and the distinct ones as SQL
    /// parameters ('a' and 'A' are two).
    fn parent_tuples(
        &self,
        parent: &TableSchema,
        parents: &[Vec<FieldValue>],
    ) -> (Vec<Option<Vec<Exact>>>, Vec<Vec<Value>>) {
        let keys: Vec<Option<Vec<Exact>>> = parents
            .iter()
            .map(|p| sql::exact_tuple(p, self.up.iter().map(|&(l, _)| l)))
            .collect();
        let mut seen = HashSet::new();
        let mut tuples = Vec::new();
        for (p, key) in parents.iter().zip(&keys) {
            if let Some(key) = key
                && seen.insert(key.clone())
            {
                tuples.push(
                    self.up
                        .iter()
                        .map(|&((c, _), _)| {
                            let v = p.get(c).unwrap_or(&FieldValue::Null);
                            parent
                                .columns
                                .get(c)
                                .map_or(Value::NULL, |col| sql_param(col, v))
                        })
                        .collect(),
                );
            }
        }
        (keys, tuples)
    }

    /// Places one returned row (with its link row under `through`).
    fn place(&mut self, link: Option<Vec<FieldValue>>, values: Vec<FieldValue>) {
        let keyed_row = link.as_ref().unwrap_or(&values);
        let keyed = match &self.rel.through {
            Some(l) => &l.table,
            None => &self.rel.table,
        };
        let pk: Vec<Option<Exact>> = keyed
            .key
            .iter()
            .map(|&k| sql::exact(keyed_row.get(k).unwrap_or(&FieldValue::Null), false))
            .collect();
        // A row returned again by a later chunk (SQL equal to a tuple of both) was placed,
        // with its whole group, by the first chunk that returned it.
        if !self.placed.insert(pk) {
            return;
        }
        if let (Some(link), Some(to)) = (&link, &self.to) {
            let l = sql::exact_tuple(link, to.iter().map(|&(l, _)| l));
            let t = sql::exact_tuple(&values, to.iter().map(|&(_, r)| r));
            if l.is_none() || l != t {
                return;
            }
        }
        if !self.rel.level.matches(&values) {
            return;
        }
        let Some(key) = sql::exact_tuple(keyed_row, self.up.iter().map(|&(_, r)| r)) else {
            return;
        };
        self.groups.entry(key).or_default().push(self.rows.len());
        self.rows.push(values);
    }

    /// The rows and each parent's elements (a join's: the first, lowest key, only). Rows no
    /// parent takes (SQL's extra rows, a join's other matches) are dropped, so their own
    /// relations are not read.
    fn finish(mut self, parent_keys: &[Option<Vec<Exact>>]) -> RelRows {
        let mut of_parent: Vec<Vec<usize>> = parent_keys
            .iter()
            .map(|key| {
                let mut elements = key
                    .as_ref()
                    .and_then(|k| self.groups.get(k))
                    .cloned()
                    .unwrap_or_default();
                if self.rel.kind == RelationKind::Join {
                    elements.truncate(1);
                }
                elements
            })
            .collect();
        let mut kept: Vec<usize> = Vec::new();
        let mut moved: HashMap<usize, usize> = HashMap::new();
        for e in of_parent.iter_mut().flatten() {
            *e = *moved.entry(*e).or_insert_with(|| {
                kept.push(*e);
                kept.len() - 1
            });
        }
        let rows = kept
            .iter()
            .map(|&i| std::mem::take(&mut self.rows[i]))
            .collect();
        RelRows {
            rows,
            of_parent,
            children: Vec::new(),
        }
    }
}

/// Writes `row` (the `at`-th row of its level) as a JSON object: its fields, then its
/// relations in plan order.
fn write_object(
    level: &Level,
    rels: &[RelationPlan],
    fetched: &[RelRows],
    at: usize,
    row: &[FieldValue],
    out: &mut Vec<u8>,
) {
    out.push(b'{');
    let mut first = true;
    level.write_fields(row, out, &mut first);
    for (rel, got) in rels.iter().zip(fetched) {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(&rel.prefix);
        let elements = got.of_parent.get(at).map_or(&[][..], Vec::as_slice);
        let element = |i: usize, out: &mut Vec<u8>| match (rel.values, got.rows.get(i)) {
            (_, None) => out.extend_from_slice(b"null"),
            (Some(c), Some(r)) => r.get(c).unwrap_or(&FieldValue::Null).write_json(out),
            (None, Some(r)) => write_object(&rel.level, &rel.children, &got.children, i, r, out),
        };
        match rel.kind {
            RelationKind::Join => match elements.first() {
                Some(&i) => element(i, out),
                None => out.extend_from_slice(b"null"),
            },
            RelationKind::Nest => {
                out.push(b'[');
                for (n, &i) in elements.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    element(i, out);
                }
                out.push(b']');
            }
        }
    }
    out.push(b'}');
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::schema::ColumnSpec;
    use mysql_common::constants::ColumnType;

    /// A column: `i` INT, `s` VARCHAR (utf8mb4).
    fn column(name: &str, kind: char) -> ColumnSpec {
        let (column_type, collation) = match kind {
            'i' => (ColumnType::MYSQL_TYPE_LONG, 0),
            _ => (ColumnType::MYSQL_TYPE_VARCHAR, 45),
        };
        ColumnSpec {
            name: name.into(),
            column_type,
            collation,
            ..ColumnSpec::default()
        }
    }

    fn table(name: &str, cols: &[(&str, char)]) -> Arc<TableSchema> {
        Arc::new(TableSchema {
            db: "blog".into(),
            table: name.into(),
            columns: cols.iter().map(|(n, k)| column(n, *k)).collect(),
            key: vec![0],
            index: "articles".into(),
            decoder_cache: Default::default(),
        })
    }

    /// The blog rule of SPEC §9 (plus a string-keyed join), resolved.
    pub(crate) fn blog_plan() -> DocumentPlan {
        let rule: TableRule = serde_json::from_value(serde_json::json!({
            "match": "blog.article",
            "index": "articles",
            "include_columns": ["id", "title"],
            "where": { "status": ["published"] },
            "join": [
                { "field": "author", "table": "user", "on": { "author_id": "id" },
                  "include_columns": ["id", "name"] },
                { "field": "category", "table": "category", "on": { "category": "code" } }
            ],
            "nest": [
                { "field": "comments", "table": "comment", "on": { "id": "article_id" },
                  "include_columns": ["id", "body"], "where": { "approved": [1] },
                  "order_by": ["body"],
                  "join": [ { "field": "user", "table": "user", "on": { "user_id": "id" },
                              "include_columns": ["name"] } ] },
                { "field": "tags", "table": "tag", "values": "name",
                  "through": { "table": "article_tag", "on": { "id": "article_id" },
                               "to": { "tag_id": "id" } } }
            ]
        }))
        .unwrap();
        let root = table(
            "article",
            &[
                ("id", 'i'),
                ("title", 's'),
                ("status", 's'),
                ("author_id", 'i'),
                ("category", 's'),
            ],
        );
        let others = [
            table("user", &[("id", 'i'), ("name", 's')]),
            table("category", &[("code", 's'), ("label", 's')]),
            table(
                "comment",
                &[
                    ("id", 'i'),
                    ("article_id", 'i'),
                    ("user_id", 'i'),
                    ("body", 's'),
                    ("approved", 'i'),
                ],
            ),
            table("tag", &[("id", 'i'), ("name", 's')]),
            table(
                "article_tag",
                &[("id", 'i'), ("article_id", 'i'), ("tag_id", 'i')],
            ),
        ];
        DocumentPlan::resolve(0, &rule, root, &mut |db, t| {
            others.iter().find(|s| s.db == db && s.table == t).cloned()
        })
        .unwrap()
    }

    fn i(v: i64) -> FieldValue {
        FieldValue::Int(v)
    }

    fn s(v: &str) -> FieldValue {
        FieldValue::Str(v.into())
    }

    #[test]
    fn one_statement_per_relation_kind() {
        let plan = blog_plan();
        assert_eq!(
            root_sql(&plan.root, 2),
            "SELECT r.`id`, r.`title`, r.`status`, r.`author_id`, r.`category` \
             FROM `blog`.`article` r WHERE r.`id` IN (?, ?)"
        );
        let [author, _, comments, tags] = &plan.relations[..] else {
            panic!("four relations");
        };
        // A join: by primary key, the lowest wins.
        assert_eq!(
            relation_sql(author, 3),
            "SELECT t.`id`, t.`name` FROM `blog`.`user` t WHERE t.`id` IN (?, ?, ?) \
             ORDER BY t.`id`"
        );
        // A nest: order_by, ties by primary key.
        assert_eq!(
            relation_sql(comments, 1),
            "SELECT t.`id`, t.`article_id`, t.`user_id`, t.`body`, t.`approved` \
             FROM `blog`.`comment` t WHERE t.`article_id` IN (?) ORDER BY t.`body`, t.`id`"
        );
        // Through: link and target columns, by the link's primary key.
        assert_eq!(
            relation_sql(tags, 2),
            "SELECT l.`id`, l.`article_id`, l.`tag_id`, t.`id`, t.`name` \
             FROM `blog`.`article_tag` l JOIN `blog`.`tag` t ON l.`tag_id` = t.`id` \
             WHERE l.`article_id` IN (?, ?) ORDER BY l.`id`"
        );
    }

    /// Column `col` of each parent's elements.
    fn taken(got: &RelRows, col: usize) -> Vec<Vec<FieldValue>> {
        got.of_parent
            .iter()
            .map(|e| e.iter().map(|&r| got.rows[r][col].clone()).collect())
            .collect()
    }

    #[test]
    fn rows_are_placed_exactly_in_sql_order() {
        let plan = blog_plan();
        let root = plan.root.clone();
        let parents = vec![
            vec![i(1), s("a"), s("published"), i(7), s("x")],
            vec![i(2), s("b"), s("published"), FieldValue::Null, s("X")],
            vec![i(3), s("c"), s("published"), i(7), s("x")],
        ];
        // A string join: SQL returns 'X' for 'x' and the reverse; each takes its own.
        let category = &plan.relations[1];
        let mut p = Placement::new(&root, category);
        let (keys, tuples) = p.parent_tuples(&root, &parents);
        assert_eq!(tuples.len(), 2, "x and X are two tuples");
        p.place(None, vec![s("X"), s("upper")]);
        p.place(None, vec![s("x"), s("lower")]);
        p.place(None, vec![s("x"), s("lower")]); // again, from another chunk
        let got = p.finish(&keys);
        assert_eq!(
            taken(&got, 1),
            [vec![s("lower")], vec![s("upper")], vec![s("lower")]]
        );
        assert_eq!(got.rows.len(), 2);

        // A join: NULL matches nothing; the first (lowest key) of several wins.
        let author = &plan.relations[0];
        let mut p = Placement::new(&root, author);
        let (keys, tuples) = p.parent_tuples(&root, &parents);
        assert_eq!(tuples, vec![vec![Value::Int(7)]]);
        p.place(None, vec![i(7), s("ann")]);
        p.place(None, vec![i(8), s("other")]);
        let got = p.finish(&keys);
        assert_eq!(taken(&got, 1), [vec![s("ann")], vec![], vec![s("ann")]]);
        assert_eq!(got.rows.len(), 1, "rows no parent takes are dropped");

        // A nest: SQL order kept, rows failing `where` left out, NULL `on` left out.
        let comments = &plan.relations[2];
        let mut p = Placement::new(&root, comments);
        let (keys, _) = p.parent_tuples(&root, &parents);
        let c = |id, art: FieldValue, body: &str, ok| vec![i(id), art, i(5), s(body), i(ok)];
        p.place(None, c(12, i(1), "a", 1));
        p.place(None, c(10, i(3), "b", 1));
        p.place(None, c(11, i(1), "c", 0));
        p.place(None, c(13, i(1), "d", 1));
        p.place(None, c(14, FieldValue::Null, "e", 1));
        let got = p.finish(&keys);
        assert_eq!(taken(&got, 3), [vec![s("a"), s("d")], vec![], vec![s("b")]]);

        // Through: the link's `to` must equal the target's exactly.
        let tags = &plan.relations[3];
        let mut p = Placement::new(&root, tags);
        let (keys, _) = p.parent_tuples(&root, &parents);
        p.place(Some(vec![i(1), i(1), i(9)]), vec![i(9), s("rust")]);
        p.place(Some(vec![i(2), i(1), i(9)]), vec![i(9), s("rust")]);
        p.place(Some(vec![i(3), i(3), i(8)]), vec![i(9), s("wrong")]);
        let got = p.finish(&keys);
        assert_eq!(taken(&got, 1), [vec![s("rust"), s("rust")], vec![], vec![]]);
        assert_eq!(got.of_parent[0], [0, 1], "one element per link row");
    }

    #[test]
    fn documents_are_fields_then_joins_then_nests() {
        let plan = blog_plan();
        let user = RelRows {
            rows: vec![vec![i(5), s("bob")]],
            of_parent: vec![vec![0], vec![]],
            children: vec![],
        };
        let fetched = vec![
            RelRows {
                rows: vec![vec![i(7), s("ann")]],
                of_parent: vec![vec![0]],
                children: vec![],
            },
            RelRows {
                rows: vec![],
                of_parent: vec![vec![]],
                children: vec![],
            },
            RelRows {
                rows: vec![
                    vec![i(10), i(1), i(5), s("hi"), i(1)],
                    vec![i(11), i(1), i(6), s("yo"), i(1)],
                ],
                of_parent: vec![vec![0, 1]],
                children: vec![user],
            },
            RelRows {
                rows: vec![vec![i(9), s("rust")], vec![i(8), FieldValue::Null]],
                of_parent: vec![vec![0, 1, 0]],
                children: vec![],
            },
        ];
        let row = vec![i(1), s("T"), s("published"), i(7), s("x")];
        let mut out = Vec::new();
        write_object(&plan.level, &plan.relations, &fetched, 0, &row, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":1,"title":"T","author":{"id":7,"name":"ann"},"category":null,"comments":[{"id":10,"body":"hi","user":{"name":"bob"}},{"id":11,"body":"yo","user":null}],"tags":["rust",null,"rust"]}"#
        );
    }
}
