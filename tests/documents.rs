//! SPEC §9 document rules end to end, on a blog schema: fields, rows, routing, join / nest /
//! through / values, and "every change reaches every document it affects".
//!
//! The expected documents come from an oracle written here from SPEC §9 and §6 alone: it
//! reads every table with plain `SELECT *` (the harness's `table_rows`, §6 values) and
//! evaluates the rule in Rust (strings compare exactly, NULL never equals NULL), so it shares
//! no code with `src/document`. `oracle_matches_a_hand_written_example` proves the oracle
//! against literal JSON first, so it cannot be wrong the same way as the code under test.
//!
//! Tests: the oracle's self-tests (`oracle_*`, `steps_change_what_they_say`: need MySQL, no
//! daemon); `every_change_reaches_every_document_it_affects` (one step per kind of change,
//! each compared with the oracle); `verify_finds_a_stale_document`;
//! `fields_only_rules_shape_select_and_route`; `blog_rule_end_to_end_with_kills` (a seeded
//! random workload with SIGKILLs; `BLOG_SEED=N` replays one).
//!
//! Limits of what is checked: osmem-server has one shard, so a document left behind under
//! an old routing is overwritten by the same id under the new one; only each hit's
//! `_routing` is compared. Objects compare as maps (field order is not checked), arrays in
//! order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cmp::Ordering as CmpOrdering;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::Method;
use serde_json::{Value as Json, json};

// ---------------------------------------------------------------------------------------
// Schema and rules
// ---------------------------------------------------------------------------------------

/// The blog schema. `status` is a VARCHAR so that values MySQL's collation calls equal to
/// `published` ('Published', 'published ') can exist and must not match `where`.
const SCHEMA: &str = "\
    CREATE TABLE `user` (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, email VARCHAR(64) NULL) \
      DEFAULT CHARSET = utf8mb4; \
    CREATE TABLE article (id INT PRIMARY KEY, title VARCHAR(128) NOT NULL, body TEXT NOT NULL, \
      status VARCHAR(16) NOT NULL, author_id INT NULL, internal_note VARCHAR(64) NULL, \
      deleted_at DATETIME NULL, updated_at DATETIME NOT NULL) DEFAULT CHARSET = utf8mb4; \
    CREATE TABLE comment (id INT PRIMARY KEY, article_id INT NOT NULL, user_id INT NULL, \
      body VARCHAR(255) NOT NULL, approved TINYINT NOT NULL) DEFAULT CHARSET = utf8mb4; \
    CREATE TABLE tag (id INT PRIMARY KEY, name VARCHAR(32) NULL) DEFAULT CHARSET = utf8mb4; \
    CREATE TABLE article_tag (id INT PRIMARY KEY AUTO_INCREMENT, article_id INT NOT NULL, \
      tag_id INT NOT NULL)";

/// Every table the oracle reads.
const TABLES: [&str; 5] = ["user", "article", "comment", "tag", "article_tag"];

/// SPEC §9's example rule on `db.article`, the body of a `[[tables]]` (the harness adds the
/// header). One deliberate change: comments are ordered by `user_id` (nullable, with ties),
/// not `id`, so that `order_by` is really exercised (NULLs first, ties by primary key).
fn blog_rule_toml(db: &str, index: &str) -> String {
    format!(
        r#"match = "{db}.article"
index = "{index}"
include_columns = ["id", "title", "body", "status", "author_id", "updated_at"]
exclude_columns = ["internal_note"]
rename = {{ updated_at = "updated" }}
where = {{ status = ["published", "featured"] }}
where_null = ["deleted_at"]
routing = "author_id"

  [[tables.join]]
  field = "author"
  table = "{db}.user"
  on = {{ author_id = "id" }}
  include_columns = ["id", "name"]

  [[tables.nest]]
  field = "comments"
  table = "{db}.comment"
  on = {{ id = "article_id" }}
  include_columns = ["id", "body", "user_id", "approved"]
  where = {{ approved = [1] }}
  order_by = ["user_id"]

    [[tables.nest.join]]
    field = "user"
    table = "{db}.user"
    on = {{ user_id = "id" }}
    include_columns = ["name"]

  [[tables.nest]]
  field = "tags"
  table = "{db}.tag"
  through = {{ table = "{db}.article_tag", on = {{ id = "article_id" }}, to = {{ tag_id = "id" }} }}
  values = "name"
"#
    )
}

/// The same rule as [`blog_rule_toml`], as the oracle reads it.
fn blog_rule() -> Rule {
    let user = Level {
        table: "user",
        include: Some(vec!["name"]),
        ..Level::default()
    };
    let comments = Level {
        table: "comment",
        include: Some(vec!["id", "body", "user_id", "approved"]),
        where_any: vec![("approved", vec![json!(1)])],
        join: vec![Rel::join("user", user, &[("user_id", "id")])],
        ..Level::default()
    };
    let author = Level {
        table: "user",
        include: Some(vec!["id", "name"]),
        ..Level::default()
    };
    let tags = Rel {
        field: "tags",
        level: Level {
            table: "tag",
            ..Level::default()
        },
        on: vec![],
        through: Some(Through {
            table: "article_tag",
            on: vec![("id", "article_id")],
            to: vec![("tag_id", "id")],
        }),
        values: Some("name"),
        order_by: vec![],
    };
    let mut comments = Rel::nest("comments", comments, &[("id", "article_id")]);
    comments.order_by = vec!["user_id"];
    Rule {
        root: Level {
            table: "article",
            include: Some(vec![
                "id",
                "title",
                "body",
                "status",
                "author_id",
                "updated_at",
            ]),
            exclude: vec!["internal_note"],
            rename: vec![("updated_at", "updated")],
            where_any: vec![("status", vec![json!("published"), json!("featured")])],
            where_null: vec!["deleted_at"],
            join: vec![Rel::join("author", author, &[("author_id", "id")])],
            nest: vec![comments, tags],
            ..Level::default()
        },
        routing: Some("author_id"),
    }
}

/// Fields-only rules (no relations) on the same schema: exclude without include, rename,
/// where with where_null, routing; and on `comment` include then exclude, where over two
/// numbers, where_not_null, routing by a renamed column.
fn fields_rules_toml(db: &str, articles: &str, comments: &str) -> String {
    format!(
        r#"match = "{db}.article"
index = "{articles}"
exclude_columns = ["internal_note", "body"]
rename = {{ updated_at = "updated", title = "headline" }}
where = {{ status = ["published", "featured"] }}
where_null = ["deleted_at"]
routing = "author_id"

[[tables]]
match = "{db}.comment"
index = "{comments}"
include_columns = ["id", "article_id", "user_id", "approved"]
exclude_columns = ["approved"]
rename = {{ article_id = "article" }}
where = {{ approved = [1, 2] }}
where_not_null = ["user_id"]
routing = "article_id"
"#
    )
}

/// [`fields_rules_toml`] as the oracle reads it: (articles rule, comments rule).
fn fields_rules() -> (Rule, Rule) {
    let articles = Rule {
        root: Level {
            table: "article",
            exclude: vec!["internal_note", "body"],
            rename: vec![("updated_at", "updated"), ("title", "headline")],
            where_any: vec![("status", vec![json!("published"), json!("featured")])],
            where_null: vec!["deleted_at"],
            ..Level::default()
        },
        routing: Some("author_id"),
    };
    let comments = Rule {
        root: Level {
            table: "comment",
            include: Some(vec!["id", "article_id", "user_id", "approved"]),
            exclude: vec!["approved"],
            rename: vec![("article_id", "article")],
            where_any: vec![("approved", vec![json!(1), json!(2)])],
            where_not_null: vec!["user_id"],
            ..Level::default()
        },
        routing: Some("article_id"),
    };
    (articles, comments)
}

// ---------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------

/// One level of a rule (the root or a relation's table): SPEC §9 fields and rows.
#[derive(Clone, Default)]
struct Level {
    table: &'static str,
    include: Option<Vec<&'static str>>,
    exclude: Vec<&'static str>,
    rename: Vec<(&'static str, &'static str)>,
    where_any: Vec<(&'static str, Vec<Json>)>,
    where_null: Vec<&'static str>,
    where_not_null: Vec<&'static str>,
    join: Vec<Rel>,
    nest: Vec<Rel>,
}

/// A `join` or `nest` (the kind is the list it sits in).
#[derive(Clone)]
struct Rel {
    field: &'static str,
    level: Level,
    /// (parent column, this table's column).
    on: Vec<(&'static str, &'static str)>,
    through: Option<Through>,
    values: Option<&'static str>,
    order_by: Vec<&'static str>,
}

impl Rel {
    fn join(field: &'static str, level: Level, on: &[(&'static str, &'static str)]) -> Rel {
        Rel {
            field,
            level,
            on: on.to_vec(),
            through: None,
            values: None,
            order_by: vec![],
        }
    }

    fn nest(field: &'static str, level: Level, on: &[(&'static str, &'static str)]) -> Rel {
        Rel::join(field, level, on)
    }
}

#[derive(Clone)]
struct Through {
    table: &'static str,
    /// (parent column, link column).
    on: Vec<(&'static str, &'static str)>,
    /// (link column, target column).
    to: Vec<(&'static str, &'static str)>,
}

struct Rule {
    root: Level,
    routing: Option<&'static str>,
}

/// One document: `_source` and `_routing`.
#[derive(Clone, Debug, PartialEq)]
struct Doc {
    source: Json,
    routing: Option<String>,
}

/// `_id` → document.
type DocMap = BTreeMap<String, Doc>;
type Row = serde_json::Map<String, Json>;
/// Table name → rows ordered by primary key (`id` in every table of the schema).
type Tables = BTreeMap<String, Vec<Row>>;

/// Every table of the schema, read with plain SQL as §6 values.
async fn read_tables(conn: &mut Conn, db: &str) -> Tables {
    let mut tables = Tables::new();
    for table in TABLES {
        let mut rows: Vec<Row> = table_rows(conn, db, table)
            .await
            .into_values()
            .map(|row| row.as_object().cloned().expect("row object"))
            .collect();
        rows.sort_by_key(|row| row["id"].as_i64().expect("integer id"));
        tables.insert(table.to_string(), rows);
    }
    tables
}

/// Every document `rule` gives on MySQL's current rows of `db`.
async fn expected_documents(conn: &mut Conn, db: &str, rule: &Rule) -> DocMap {
    evaluate(&read_tables(conn, db).await, rule)
}

/// The rule evaluated on `tables` (pure, so the self-test can feed literal rows too).
fn evaluate(tables: &Tables, rule: &Rule) -> DocMap {
    let mut docs = DocMap::new();
    for row in rows(tables, rule.root.table) {
        if !matches(&rule.root, row) {
            continue;
        }
        let routing = rule.routing.and_then(|column| text(&row[column]));
        let id = text(&row["id"]).expect("id is never NULL");
        let source = build(tables, &rule.root, row);
        docs.insert(id, Doc { source, routing });
    }
    docs
}

fn rows<'a>(tables: &'a Tables, table: &str) -> &'a [Row] {
    tables
        .get(table)
        .unwrap_or_else(|| panic!("oracle has no table {table}"))
}

/// A value as `_id` / `_routing` text (numbers in decimal, strings as they are); NULL: none.
fn text(value: &Json) -> Option<String> {
    match value {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// SPEC §9 equality of two §6 values: numbers by value, strings exactly, NULL equals nothing.
fn sql_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Null, _) | (_, Json::Null) => false,
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64() && x.as_u64() == y.as_u64(),
        },
        _ => a == b,
    }
}

/// ORDER BY ascending on one column: NULLs first, numbers by value, strings by bytes (the
/// rules here order only by integer columns, where bytes and collation agree).
fn order_cmp(a: &Json, b: &Json) -> CmpOrdering {
    match (a, b) {
        (Json::Null, Json::Null) => CmpOrdering::Equal,
        (Json::Null, _) => CmpOrdering::Less,
        (_, Json::Null) => CmpOrdering::Greater,
        (Json::Number(x), Json::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x.partial_cmp(&y).unwrap_or(CmpOrdering::Equal)
        }
        (Json::String(x), Json::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => panic!("oracle cannot order {a} against {b}"),
    }
}

/// SPEC §9 "Rows": every `where` column holds one of its values, `where_null` columns are
/// NULL, `where_not_null` columns are not.
fn matches(level: &Level, row: &Row) -> bool {
    let col = |c: &str| row.get(c).unwrap_or_else(|| panic!("no column {c}"));
    level
        .where_any
        .iter()
        .all(|(c, values)| values.iter().any(|v| sql_eq(col(c), v)))
        && level.where_null.iter().all(|c| col(c).is_null())
        && level.where_not_null.iter().all(|c| !col(c).is_null())
}

/// Whether every `on` pair is equal between `left` and `right`.
fn joined(pairs: &[(&str, &str)], left: &Row, right: &Row) -> bool {
    pairs.iter().all(|(l, r)| sql_eq(&left[*l], &right[*r]))
}

/// The object of `row` at `level`: include, then exclude, then rename, then relations.
fn build(tables: &Tables, level: &Level, row: &Row) -> Json {
    let mut object = serde_json::Map::new();
    let columns: Vec<&str> = match &level.include {
        Some(include) => include.clone(),
        None => row.keys().map(String::as_str).collect(),
    };
    for column in columns {
        if level.exclude.contains(&column) {
            continue;
        }
        let name = level
            .rename
            .iter()
            .find(|(c, _)| *c == column)
            .map_or(column, |(_, n)| *n);
        let value = row
            .get(column)
            .unwrap_or_else(|| panic!("{} has no column {column}", level.table));
        object.insert(name.to_string(), value.clone());
    }
    for rel in &level.join {
        // Several matches: the lowest primary key wins (rows are in key order).
        let first = rows(tables, rel.level.table)
            .iter()
            .find(|child| joined(&rel.on, row, child) && matches(&rel.level, child));
        let value = first.map_or(Json::Null, |child| build(tables, &rel.level, child));
        object.insert(rel.field.to_string(), value);
    }
    for rel in &level.nest {
        let children: Vec<&Row> = match &rel.through {
            None => {
                let mut children: Vec<&Row> = rows(tables, rel.level.table)
                    .iter()
                    .filter(|child| joined(&rel.on, row, child) && matches(&rel.level, child))
                    .collect();
                // Stable sort on key-ordered rows: ties stay in primary-key order.
                children.sort_by(|a, b| {
                    rel.order_by
                        .iter()
                        .map(|c| order_cmp(&a[*c], &b[*c]))
                        .find(|o| o.is_ne())
                        .unwrap_or(CmpOrdering::Equal)
                });
                children
            }
            Some(through) => {
                assert!(rel.order_by.is_empty(), "oracle: through with order_by");
                // One element per link row, in link primary-key order; a link row that
                // reaches no (matching) row gives no element, as an SQL inner join.
                rows(tables, through.table)
                    .iter()
                    .filter(|link| joined(&through.on, row, link))
                    .filter_map(|link| {
                        rows(tables, rel.level.table).iter().find(|target| {
                            joined(&through.to, link, target) && matches(&rel.level, target)
                        })
                    })
                    .collect()
            }
        };
        let elements = children
            .into_iter()
            .map(|child| match rel.values {
                Some(column) => child[column].clone(),
                None => build(tables, &rel.level, child),
            })
            .collect();
        object.insert(rel.field.to_string(), Json::Array(elements));
    }
    Json::Object(object)
}

// ---------------------------------------------------------------------------------------
// The index side and the comparison
// ---------------------------------------------------------------------------------------

/// Every document of `index` with its `_routing` (scroll; empty when there is no index).
async fn index_documents(es: &Es, index: &str) -> DocMap {
    let mut docs = DocMap::new();
    for hit in es.hits(index).await {
        let id = hit["_id"].as_str().expect("_id").to_string();
        let routing = hit["_routing"].as_str().map(str::to_string);
        docs.insert(
            id,
            Doc {
                source: hit["_source"].clone(),
                routing,
            },
        );
    }
    docs
}

/// `None` when equal; otherwise a report: counts, missing and extra ids, and the first
/// differing document (expected vs actual, source and routing).
fn describe_diff(expected: &DocMap, actual: &DocMap) -> Option<String> {
    let missing: Vec<&String> = expected
        .keys()
        .filter(|id| !actual.contains_key(*id))
        .collect();
    let extra: Vec<&String> = actual
        .keys()
        .filter(|id| !expected.contains_key(*id))
        .collect();
    let different: Vec<&String> = expected
        .iter()
        .filter(|(id, doc)| actual.get(*id).is_some_and(|a| a != *doc))
        .map(|(id, _)| id)
        .collect();
    if missing.is_empty() && extra.is_empty() && different.is_empty() {
        return None;
    }
    let mut report = format!(
        "expected {} documents, index has {}: {} missing {:?}, {} extra {:?}, {} different {:?}",
        expected.len(),
        actual.len(),
        missing.len(),
        &missing[..missing.len().min(8)],
        extra.len(),
        &extra[..extra.len().min(8)],
        different.len(),
        &different[..different.len().min(8)],
    );
    if let Some(id) = different.first() {
        let (want, got) = (&expected[*id], &actual[*id]);
        report += &format!(
            "\nfirst different document {id}:\n  expected routing {:?}, source {}\n  actual   \
             routing {:?}, source {}",
            want.routing, want.source, got.routing, got.source
        );
        if let (Some(w), Some(g)) = (want.source.as_object(), got.source.as_object()) {
            for (field, value) in w {
                if g.get(field) != Some(value) {
                    report += &format!(
                        "\n  field {field}: expected {value}, actual {}",
                        g.get(field).map_or("(absent)".into(), Json::to_string)
                    );
                }
            }
            for field in g.keys().filter(|f| !w.contains_key(*f)) {
                report += &format!("\n  field {field}: not expected");
            }
        }
    }
    if let Some(id) = missing.first() {
        report += &format!(
            "\nfirst missing document {id}: routing {:?}, source {}",
            expected[*id].routing, expected[*id].source
        );
    }
    if let Some(id) = extra.first() {
        report += &format!("\nfirst extra document {id}: {}", actual[*id].source);
    }
    Some(report)
}

/// Polls until `index` equals the oracle for `rule` on `db`, and returns the documents.
///
/// # Panics
/// If the daemon exits, or after `timeout`, with [`describe_diff`]'s report.
async fn converge(
    env: &TestEnv,
    daemon: &mut Daemon,
    db: &str,
    index: &str,
    rule: &Rule,
    timeout: Duration,
    what: &str,
) -> DocMap {
    let es = env.es();
    let mut conn = env.mysql().await;
    let deadline = Instant::now() + timeout;
    loop {
        daemon.assert_running();
        let expected = expected_documents(&mut conn, db, rule).await;
        let actual = index_documents(&es, index).await;
        match describe_diff(&expected, &actual) {
            None => {
                conn.disconnect().await.ok();
                return expected;
            }
            Some(report) if Instant::now() > deadline => {
                panic!("{what}: index {index} != rule on {db} after {timeout:?}: {report}")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(150)).await,
        }
    }
}

async fn run(conn: &mut Conn, sql: &str) {
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

// ---------------------------------------------------------------------------------------
// A small hand-made dataset: every case of the rule at least once
// ---------------------------------------------------------------------------------------

/// Articles: 10 published (author 1, comments in every order case, tags with a NULL name, a
/// dangling link and a repeated tag), 11 'Published' and 14 'published ' (collation-equal,
/// not exactly equal: no documents), 12 featured without author, 13 soft-deleted, 15 draft,
/// 16 featured with an author that does not exist.
const SMALL: &str = "\
    INSERT INTO `user` VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bob', NULL), (3, 'Cy', 'c@x'); \
    INSERT INTO article VALUES \
      (10, 'T10', 'B10', 'published', 1, 'n10', NULL, '2024-01-02 03:04:05'), \
      (11, 'T11', 'B11', 'Published', 1, NULL, NULL, '2024-01-02 03:04:05'), \
      (12, 'T12', 'B12', 'featured', NULL, NULL, NULL, '2024-02-29 23:59:59'), \
      (13, 'T13', 'B13', 'published', 2, NULL, '2024-01-01 00:00:00', '2024-01-01 00:00:00'), \
      (14, 'T14', 'B14', 'published ', 2, NULL, NULL, '2024-01-01 00:00:00'), \
      (15, 'T15', 'B15', 'draft', 3, NULL, NULL, '2024-01-01 00:00:00'), \
      (16, 'T16', 'B16', 'featured', 9, NULL, NULL, '2024-03-01 00:00:00'); \
    INSERT INTO comment VALUES \
      (99, 10, 3, 'c99', 2), (100, 10, 2, 'c100', 1), (101, 10, NULL, 'c101', 1), \
      (102, 10, 1, 'c102', 0), (103, 10, 2, 'c103', 1), (104, 12, 9, 'c104', 1), \
      (105, 10, 1, 'c105', 1), (107, 15, 1, 'c107', 1); \
    INSERT INTO tag VALUES (1, 'rust'), (2, 'sql'), (3, NULL); \
    INSERT INTO article_tag VALUES (1, 10, 2), (2, 10, 1), (3, 10, 3), (4, 10, 7), (5, 12, 1), \
      (6, 10, 2)";

/// What the blog rule gives on [`SMALL`], written by hand from SPEC §9.
fn small_expected() -> DocMap {
    let doc = |routing: Option<&str>, source: Json| Doc {
        source,
        routing: routing.map(str::to_string),
    };
    BTreeMap::from([
        (
            "10".to_string(),
            doc(
                Some("1"),
                json!({
                    "id": 10, "title": "T10", "body": "B10", "status": "published",
                    "author_id": 1, "updated": "2024-01-02T03:04:05",
                    "author": {"id": 1, "name": "Ann"},
                    "comments": [
                        {"id": 101, "body": "c101", "user_id": null, "approved": 1, "user": null},
                        {"id": 105, "body": "c105", "user_id": 1, "approved": 1,
                         "user": {"name": "Ann"}},
                        {"id": 100, "body": "c100", "user_id": 2, "approved": 1,
                         "user": {"name": "Bob"}},
                        {"id": 103, "body": "c103", "user_id": 2, "approved": 1,
                         "user": {"name": "Bob"}}
                    ],
                    "tags": ["sql", "rust", null, "sql"]
                }),
            ),
        ),
        (
            "12".to_string(),
            doc(
                None,
                json!({
                    "id": 12, "title": "T12", "body": "B12", "status": "featured",
                    "author_id": null, "updated": "2024-02-29T23:59:59", "author": null,
                    "comments": [
                        {"id": 104, "body": "c104", "user_id": 9, "approved": 1, "user": null}
                    ],
                    "tags": ["rust"]
                }),
            ),
        ),
        (
            "16".to_string(),
            doc(
                Some("9"),
                json!({
                    "id": 16, "title": "T16", "body": "B16", "status": "featured",
                    "author_id": 9, "updated": "2024-03-01T00:00:00", "author": null,
                    "comments": [], "tags": []
                }),
            ),
        ),
    ])
}

/// What the fields-only rules give on [`SMALL`]: (articles, comments), by hand.
fn small_fields_expected() -> (DocMap, DocMap) {
    let doc = |routing: &str, source: Json| Doc {
        source,
        routing: (!routing.is_empty()).then(|| routing.to_string()),
    };
    let articles = BTreeMap::from([
        (
            "10".to_string(),
            doc(
                "1",
                json!({"id": 10, "headline": "T10", "status": "published", "author_id": 1,
                       "deleted_at": null, "updated": "2024-01-02T03:04:05"}),
            ),
        ),
        (
            "12".to_string(),
            doc(
                "",
                json!({"id": 12, "headline": "T12", "status": "featured", "author_id": null,
                       "deleted_at": null, "updated": "2024-02-29T23:59:59"}),
            ),
        ),
        (
            "16".to_string(),
            doc(
                "9",
                json!({"id": 16, "headline": "T16", "status": "featured", "author_id": 9,
                       "deleted_at": null, "updated": "2024-03-01T00:00:00"}),
            ),
        ),
    ]);
    let comment = |id: u32, article: u32, user: u32| {
        (
            id.to_string(),
            doc(
                &article.to_string(),
                json!({"id": id, "article": article, "user_id": user}),
            ),
        )
    };
    let comments = BTreeMap::from([
        comment(99, 10, 3),
        comment(100, 10, 2),
        comment(103, 10, 2),
        comment(104, 12, 9),
        comment(105, 10, 1),
        comment(107, 15, 1),
    ]);
    (articles, comments)
}

#[tokio::test]
async fn oracle_matches_a_hand_written_example() {
    // GIVEN the small dataset in MySQL (no daemon: this proves the oracle alone)
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(SCHEMA).await;
    run(&mut conn, SMALL).await;

    // WHEN the oracle evaluates the blog rule and the fields-only rules on it
    let blog = expected_documents(&mut conn, &db, &blog_rule()).await;
    let (articles_rule, comments_rule) = fields_rules();
    let articles = expected_documents(&mut conn, &db, &articles_rule).await;
    let comments = expected_documents(&mut conn, &db, &comments_rule).await;

    // THEN it gives exactly the documents written by hand from SPEC §9
    if let Some(report) = describe_diff(&small_expected(), &blog) {
        panic!("oracle (blog rule) != hand-written documents: {report}");
    }
    let (want_articles, want_comments) = small_fields_expected();
    if let Some(report) = describe_diff(&want_articles, &articles) {
        panic!("oracle (fields-only articles) != hand-written documents: {report}");
    }
    if let Some(report) = describe_diff(&want_comments, &comments) {
        panic!("oracle (fields-only comments) != hand-written documents: {report}");
    }
    // AND the comparison itself notices a difference in a nested array's order and routing
    let mut swapped = small_expected();
    let doc = swapped.get_mut("10").unwrap();
    doc.source["comments"].as_array_mut().unwrap().swap(2, 3);
    assert!(describe_diff(&small_expected(), &swapped).is_some());
    let mut rerouted = small_expected();
    rerouted.get_mut("16").unwrap().routing = None;
    assert!(describe_diff(&small_expected(), &rerouted).is_some());
}

#[test]
fn oracle_joins_the_lowest_key_and_never_matches_null() {
    // GIVEN literal rows (no server): parents keyed by `k` (a number, a string differing
    // from a child's only by case, NULL) and children with repeated, case-differing and NULL
    // `k`, in primary-key order as the oracle reads them
    let rows = |values: Json| -> Vec<Row> {
        let array = values.as_array().unwrap().clone();
        array
            .into_iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    };
    let tables = Tables::from([
        (
            "p".to_string(),
            rows(json!([{"id": 1, "k": 5}, {"id": 2, "k": null}, {"id": 3, "k": "a"}])),
        ),
        (
            "c".to_string(),
            rows(
                json!([{"id": 2, "k": 5, "o": null}, {"id": 4, "k": "A", "o": 1},
                        {"id": 7, "k": 5, "o": 0}, {"id": 8, "k": 5, "o": null},
                        {"id": 9, "k": null, "o": 0}]),
            ),
        ),
    ]);
    let child = Level {
        table: "c",
        include: Some(vec!["id"]),
        ..Level::default()
    };
    let mut nest = Rel::nest("all", child.clone(), &[("k", "k")]);
    nest.order_by = vec!["o"];
    let rule = Rule {
        root: Level {
            table: "p",
            join: vec![Rel::join("one", child, &[("k", "k")])],
            nest: vec![nest],
            ..Level::default()
        },
        routing: Some("k"),
    };

    // WHEN the rule is evaluated
    let docs = evaluate(&tables, &rule);

    // THEN the join takes the lowest key, the nest orders NULLs first then ties by key,
    // NULL matches nothing, strings match exactly, and routing is the value as text
    let doc = |routing: Option<&str>, source: Json| Doc {
        source,
        routing: routing.map(str::to_string),
    };
    let want = BTreeMap::from([
        (
            "1".to_string(),
            doc(
                Some("5"),
                json!({"id": 1, "k": 5, "one": {"id": 2},
                       "all": [{"id": 2}, {"id": 8}, {"id": 7}]}),
            ),
        ),
        (
            "2".to_string(),
            doc(None, json!({"id": 2, "k": null, "one": null, "all": []})),
        ),
        (
            "3".to_string(),
            doc(
                Some("a"),
                json!({"id": 3, "k": "a", "one": null, "all": []}),
            ),
        ),
    ]);
    if let Some(report) = describe_diff(&want, &docs) {
        panic!("oracle != hand-written documents: {report}");
    }
}

/// The steps of `every_change_reaches_every_document_it_affects` on [`SMALL`], in order:
/// (what, SQL, whether it changes some document). `steps_change_what_they_say` checks the
/// flags with the oracle alone, so no step can pass by doing nothing.
fn blog_steps() -> Vec<(&'static str, &'static str, bool)> {
    vec![
        (
            "child inserted",
            "INSERT INTO comment VALUES (106, 12, 1, 'c106', 1)",
            true,
        ),
        (
            "child updated",
            "UPDATE comment SET body = 'c100 edited' WHERE id = 100",
            true,
        ),
        ("child deleted", "DELETE FROM comment WHERE id = 103", true),
        (
            "child moved to another parent",
            "UPDATE comment SET article_id = 16 WHERE id = 100",
            true,
        ),
        (
            "child starts matching where",
            "UPDATE comment SET approved = 1 WHERE id = 102",
            true,
        ),
        (
            "child stops matching where",
            "UPDATE comment SET approved = 0 WHERE id = 105",
            true,
        ),
        (
            "child's order_by column changed",
            "UPDATE comment SET user_id = 3 WHERE id = 101",
            true,
        ),
        (
            "child of a row that is no document",
            "INSERT INTO comment VALUES (108, 11, 1, 'c108', 1)",
            false,
        ),
        (
            "joined row changed (author and nested user)",
            "UPDATE `user` SET name = 'Ann 2' WHERE id = 1",
            true,
        ),
        (
            "joined row deleted (nested user)",
            "DELETE FROM `user` WHERE id = 2",
            true,
        ),
        (
            "joined row inserted for a dangling on",
            "INSERT INTO `user` VALUES (9, 'Nine', NULL)",
            true,
        ),
        (
            "joined row's column outside the fields",
            "UPDATE `user` SET email = 'new@x' WHERE id = 1",
            false,
        ),
        (
            "link row added",
            "INSERT INTO article_tag (article_id, tag_id) VALUES (16, 2)",
            true,
        ),
        (
            "link row removed",
            "DELETE FROM article_tag WHERE id = 1",
            true,
        ),
        (
            "through row changed (fans out)",
            "UPDATE tag SET name = 'SQL' WHERE id = 2",
            true,
        ),
        ("through row deleted", "DELETE FROM tag WHERE id = 1", true),
        (
            "root row's key changed",
            "UPDATE article SET id = 20 WHERE id = 12",
            true,
        ),
        (
            "root's on and routing column changed",
            "UPDATE article SET author_id = 3 WHERE id = 10",
            true,
        ),
        (
            "routing column becomes NULL",
            "UPDATE article SET author_id = NULL WHERE id = 16",
            true,
        ),
        (
            "root stops matching where",
            "UPDATE article SET status = 'draft' WHERE id = 16",
            true,
        ),
        (
            "root starts matching where",
            "UPDATE article SET status = 'featured' WHERE id = 15",
            true,
        ),
        (
            "root soft-deleted",
            "UPDATE article SET deleted_at = '2024-06-01 00:00:00' WHERE id = 10",
            true,
        ),
        (
            "root soft-delete undone",
            "UPDATE article SET deleted_at = NULL WHERE id = 10",
            true,
        ),
        (
            "root matches by collation only",
            "UPDATE article SET status = 'FEATURED' WHERE id = 11",
            false,
        ),
        (
            "joined row deleted (author)",
            "DELETE FROM `user` WHERE id = 3",
            true,
        ),
        (
            "one transaction over three tables",
            "BEGIN; UPDATE comment SET article_id = 15 WHERE id = 106; \
             INSERT INTO `user` VALUES (3, 'Cy again', NULL); \
             INSERT INTO article_tag (article_id, tag_id) VALUES (15, 3); COMMIT",
            true,
        ),
        (
            "root row that is no document deleted",
            "DELETE FROM article WHERE id = 11",
            false,
        ),
    ]
}

/// The steps of `fields_only_rules_shape_select_and_route` on [`SMALL`]; each changes some
/// document of the articles or the comments rule.
fn fields_steps() -> Vec<&'static str> {
    vec![
        "UPDATE article SET status = 'draft' WHERE id = 10",
        "UPDATE article SET status = 'published' WHERE id = 15",
        "UPDATE article SET status = 'featured' WHERE id = 10",
        "UPDATE article SET deleted_at = '2024-01-01 00:00:00' WHERE id = 12",
        "UPDATE article SET deleted_at = NULL WHERE id = 13",
        "UPDATE article SET author_id = 2 WHERE id = 10",
        "UPDATE article SET author_id = NULL WHERE id = 16",
        "UPDATE article SET author_id = 3 WHERE id = 12 OR id = 16",
        "UPDATE article SET title = 'New title', internal_note = 'x', body = 'y' WHERE id = 10",
        "UPDATE article SET id = 30 WHERE id = 10",
        "UPDATE comment SET approved = 0 WHERE id = 100",
        "UPDATE comment SET approved = 1 WHERE id = 102",
        "UPDATE comment SET user_id = NULL WHERE id = 103",
        "UPDATE comment SET user_id = 2 WHERE id = 101",
        "UPDATE comment SET article_id = 16 WHERE id = 99",
        "UPDATE comment SET id = 200 WHERE id = 104",
        "DELETE FROM comment WHERE id = 105",
        "BEGIN; DELETE FROM article WHERE id = 16; UPDATE comment SET article_id = 12 \
         WHERE article_id = 10; COMMIT",
    ]
}

#[tokio::test]
async fn steps_change_what_they_say() {
    // GIVEN the small dataset (no daemon: this checks the test's own steps)
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(SCHEMA).await;
    run(&mut conn, SMALL).await;
    let rule = blog_rule();

    // WHEN each step of the blog test runs, THEN the oracle's documents change exactly when
    // the step says so
    let mut before = expected_documents(&mut conn, &db, &rule).await;
    for (what, sql, changes) in blog_steps() {
        run(&mut conn, sql).await;
        let after = expected_documents(&mut conn, &db, &rule).await;
        assert_eq!(after != before, changes, "step {what:?} ({sql})");
        before = after;
    }

    // AND each step of the fields-only test changes some document
    let (db, mut conn) = env.create_database_with(SCHEMA).await;
    run(&mut conn, SMALL).await;
    let (articles, comments) = fields_rules();
    let mut before = (
        expected_documents(&mut conn, &db, &articles).await,
        expected_documents(&mut conn, &db, &comments).await,
    );
    for sql in fields_steps() {
        run(&mut conn, sql).await;
        let after = (
            expected_documents(&mut conn, &db, &articles).await,
            expected_documents(&mut conn, &db, &comments).await,
        );
        assert!(after != before, "step changed no document: {sql}");
        before = after;
    }
}

// ---------------------------------------------------------------------------------------
// End-to-end tests
// ---------------------------------------------------------------------------------------

/// A database with the blog schema and `data`, and a daemon (initial copy) running the blog
/// rule into a fresh index.
async fn blog_fixture(
    prefix: &str,
    data: &str,
) -> (&'static TestEnv, String, Conn, String, Daemon) {
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(SCHEMA).await;
    if !data.is_empty() {
        run(&mut conn, data).await;
    }
    let index = env.unique_index(prefix);
    let daemon = Daemon::builder(env)
        .snapshot_mode("initial")
        .table_toml(&blog_rule_toml(&db, &index))
        .start()
        .await;
    (env, db, conn, index, daemon)
}

#[tokio::test]
async fn every_change_reaches_every_document_it_affects() {
    // GIVEN the small dataset copied into the index by the blog rule
    let (env, db, mut conn, index, mut daemon) = blog_fixture("blogsteps", SMALL).await;
    let rule = blog_rule();
    let initial = converge(
        env,
        &mut daemon,
        &db,
        &index,
        &rule,
        secs(60),
        "initial copy",
    )
    .await;
    assert_eq!(initial, small_expected(), "the initial copy");

    // WHEN each kind of change of SPEC §9 happens, one step at a time
    // THEN after each, the index equals the rule on MySQL's rows, and the step did change
    // some document (no step can pass by doing nothing)
    let mut before = initial;
    for (what, sql, changes) in blog_steps() {
        run(&mut conn, sql).await;
        let after = converge(env, &mut daemon, &db, &index, &rule, secs(60), what).await;
        assert_eq!(after != before, changes, "step {what:?} ({sql})");
        before = after;
    }
    // Spot checks of the outcomes the steps are about (beyond "equals the oracle").
    let es = env.es();
    let docs = index_documents(&es, &index).await;
    assert!(!docs.contains_key("12"), "the old key's document remains");
    assert_eq!(docs["20"].routing, None);
    assert_eq!(docs["10"].routing.as_deref(), Some("3"));
    assert_eq!(
        docs["10"].source["author"],
        json!({"id": 3, "name": "Cy again"})
    );
    assert!(!docs.contains_key("16"), "16 stopped matching where");
    let ids = |doc: &Doc, field: &str| -> Vec<Json> {
        doc.source[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect()
    };
    assert!(!ids(&docs["10"], "comments").contains(&json!(100)));
    assert_eq!(docs["15"].source["tags"], json!([null]));
    assert!(ids(&docs["15"], "comments").contains(&json!(106)));

    let out = daemon.cli("verify").await;
    assert_eq!(out.code, 0, "verify after the steps: {out}");

    // WHEN a child table, the link table and the joined table are truncated in turn
    // THEN every document's comments become [], then tags [], then author null
    run(&mut conn, "TRUNCATE TABLE comment").await;
    let docs = converge(
        env,
        &mut daemon,
        &db,
        &index,
        &rule,
        secs(60),
        "TRUNCATE comment",
    )
    .await;
    assert!(docs.values().all(|d| d.source["comments"] == json!([])));
    run(&mut conn, "TRUNCATE TABLE article_tag").await;
    let docs = converge(
        env,
        &mut daemon,
        &db,
        &index,
        &rule,
        secs(60),
        "TRUNCATE article_tag",
    )
    .await;
    assert!(docs.values().all(|d| d.source["tags"] == json!([])));
    run(&mut conn, "UPDATE article SET author_id = 1 WHERE id = 15").await;
    converge(env, &mut daemon, &db, &index, &rule, secs(60), "author set").await;
    run(
        &mut conn,
        "INSERT INTO `user` VALUES (1, 'Ann 3', NULL) ON DUPLICATE KEY UPDATE name = 'Ann 3'",
    )
    .await;
    let docs = converge(
        env,
        &mut daemon,
        &db,
        &index,
        &rule,
        secs(60),
        "author back",
    )
    .await;
    assert_eq!(
        docs["15"].source["author"],
        json!({"id": 1, "name": "Ann 3"})
    );
    run(&mut conn, "TRUNCATE TABLE `user`").await;
    let docs = converge(
        env,
        &mut daemon,
        &db,
        &index,
        &rule,
        secs(60),
        "TRUNCATE user",
    )
    .await;
    assert!(docs.values().all(|d| d.source["author"].is_null()));
    // AND TRUNCATE of the root table removes every document
    run(&mut conn, "TRUNCATE TABLE article").await;
    let docs = converge(
        env,
        &mut daemon,
        &db,
        &index,
        &rule,
        secs(60),
        "TRUNCATE article",
    )
    .await;
    assert!(docs.is_empty());
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn verify_finds_a_stale_document() {
    // GIVEN the small dataset streamed by the blog rule
    let (env, db, _conn, index, mut daemon) = blog_fixture("blogstale", SMALL).await;
    let rule = blog_rule();
    converge(
        env,
        &mut daemon,
        &db,
        &index,
        &rule,
        secs(60),
        "initial copy",
    )
    .await;
    let clean = daemon.cli("verify").await;
    assert_eq!(clean.code, 0, "verify before tampering: {clean}");

    // WHEN document 10 is overwritten with a stale comments array, keeping its version and
    // routing (as if one write had been lost, not as a newer change)
    let es = env.es();
    let (status, current) = es
        .request(Method::GET, &format!("/{index}/_doc/10"), None)
        .await;
    assert_eq!(status, 200, "{current}");
    let version = current["_version"].as_u64().expect("_version");
    let mut stale = current["_source"].clone();
    stale["comments"] = json!([{"id": 100, "body": "an old body", "user_id": 2, "approved": 1,
                                 "user": {"name": "Bob"}}]);
    let (status, body) = es
        .request(
            Method::PUT,
            &format!(
                "/{index}/_doc/10?routing=1&version={version}&version_type=external_gte&refresh=true"
            ),
            Some(stale),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");

    // THEN verify exits 1 and names it as different
    let out = daemon.cli("verify").await;
    assert_eq!(out.code, 1, "{out}");
    let named = out.stdout.lines().any(|line| {
        line.contains("different")
            && line
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|word| word == "10")
    });
    assert!(
        named,
        "verify does not name document 10 as different: {out}"
    );
    assert!(
        out.stdout.contains("0 missing, 0 extra, 1 different"),
        "{out}"
    );

    // WHEN verify --repair runs, THEN it repairs it, and verify finds nothing
    let config = daemon.config_path().display().to_string();
    let repair = run_cli(&["verify", "--config", &config, "--repair"]).await;
    assert_eq!(repair.code, 0, "{repair}");
    let again = daemon.cli("verify").await;
    assert_eq!(again.code, 0, "verify after repair: {again}");
    let docs = converge(
        env,
        &mut daemon,
        &db,
        &index,
        &rule,
        secs(10),
        "after repair",
    )
    .await;
    assert_eq!(docs, small_expected());
    assert_eq!(daemon.terminate().await, 0);
}

#[tokio::test]
async fn fields_only_rules_shape_select_and_route() {
    // GIVEN the small dataset and fields-only rules on article and comment
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(SCHEMA).await;
    run(&mut conn, SMALL).await;
    let (articles, comments) = (env.unique_index("fieldsart"), env.unique_index("fieldscom"));
    let mut daemon = Daemon::builder(env)
        .snapshot_mode("initial")
        .table_toml(&fields_rules_toml(&db, &articles, &comments))
        .start()
        .await;
    let (article_rule, comment_rule) = fields_rules();
    let (want_articles, want_comments) = small_fields_expected();
    let got = converge(
        env,
        &mut daemon,
        &db,
        &articles,
        &article_rule,
        secs(60),
        "copy",
    )
    .await;
    assert_eq!(got, want_articles);
    let got = converge(
        env,
        &mut daemon,
        &db,
        &comments,
        &comment_rule,
        secs(60),
        "copy",
    )
    .await;
    assert_eq!(got, want_comments);

    // WHEN rows flip in and out of where / where_null / where_not_null, routing columns
    // change (to another value, to NULL, back), keys change and rows are deleted
    // THEN after each step both indices equal their rules, and the step changed something
    let (mut before_a, mut before_c) = (want_articles, want_comments);
    for sql in fields_steps() {
        run(&mut conn, sql).await;
        let a = converge(
            env,
            &mut daemon,
            &db,
            &articles,
            &article_rule,
            secs(60),
            sql,
        )
        .await;
        let c = converge(
            env,
            &mut daemon,
            &db,
            &comments,
            &comment_rule,
            secs(60),
            sql,
        )
        .await;
        assert!(
            a != before_a || c != before_c,
            "step changed no document: {sql}"
        );
        (before_a, before_c) = (a, c);
    }
    // Spot checks: the routing moved with its column; excluded columns never appear.
    let docs = index_documents(&env.es(), &articles).await;
    assert_eq!(docs["30"].routing.as_deref(), Some("2"));
    assert!(!docs.contains_key("12"), "12 was soft-deleted: {docs:?}");
    assert!(docs.values().all(|d| d.source.get("body").is_none()
        && d.source.get("internal_note").is_none()
        && d.source.get("title").is_none()));
    assert_eq!(daemon.cli("verify").await.code, 0);
    assert_eq!(daemon.terminate().await, 0);
}

// ---------------------------------------------------------------------------------------
// The workload test
// ---------------------------------------------------------------------------------------

const USERS: u32 = 40;
const ARTICLES: u32 = 300;
const COMMENTS: u32 = 900;
const TAGS: u32 = 25;
const LINKS: u32 = 700;
const STATUSES: [&str; 5] = ["published", "featured", "draft", "Published", "published "];

fn maybe_null(rng: &mut StdRng, p: f64, value: u32) -> String {
    if rng.random_bool(p) {
        "NULL".into()
    } else {
        value.to_string()
    }
}

/// INSERT statements for a seeded blog of a few hundred articles.
fn seed_blog(rng: &mut StdRng) -> Vec<String> {
    let users: Vec<String> = (1..=USERS)
        .map(|u| format!("({u}, 'user {u}', 'u{u}@example.com')"))
        .collect();
    let articles: Vec<String> = (1..=ARTICLES)
        .map(|a| {
            let status = STATUSES[rng.random_range(0..STATUSES.len())];
            let author = rng.random_range(1..=USERS + 3);
            let author = maybe_null(rng, 0.1, author);
            let deleted = if rng.random_bool(0.1) {
                "'2024-01-01 00:00:00'"
            } else {
                "NULL"
            };
            format!(
                "({a}, 'title {a}', 'body of {a}', '{status}', {author}, 'note {a}', {deleted}, \
                 '2024-01-01 00:00:00' + INTERVAL {a} MINUTE)"
            )
        })
        .collect();
    let comments: Vec<String> = (1..=COMMENTS)
        .map(|c| {
            let article = rng.random_range(1..=ARTICLES);
            let user = rng.random_range(1..=USERS + 3);
            let user = maybe_null(rng, 0.1, user);
            let approved = rng.random_range(0..=2);
            format!("({c}, {article}, {user}, 'comment {c}', {approved})")
        })
        .collect();
    let tags: Vec<String> = (1..=TAGS)
        .map(|t| {
            if t % 10 == 0 {
                format!("({t}, NULL)")
            } else {
                format!("({t}, 'tag {t}')")
            }
        })
        .collect();
    let links: Vec<String> = (1..=LINKS)
        .map(|_| {
            let article = rng.random_range(1..=ARTICLES);
            let tag = rng.random_range(1..=TAGS + 2);
            format!("({article}, {tag})")
        })
        .collect();
    vec![
        format!("INSERT INTO `user` VALUES {}", users.join(", ")),
        format!("INSERT INTO article VALUES {}", articles.join(", ")),
        format!("INSERT INTO comment VALUES {}", comments.join(", ")),
        format!("INSERT INTO tag VALUES {}", tags.join(", ")),
        format!(
            "INSERT INTO article_tag (article_id, tag_id) VALUES {}",
            links.join(", ")
        ),
    ]
}

/// One random statement over the five tables.
fn random_change(rng: &mut StdRng) -> String {
    let u = rng.random_range(1..=USERS + 5);
    let a = rng.random_range(1..=ARTICLES + 20);
    let c = rng.random_range(1..=COMMENTS + 50);
    let t = rng.random_range(1..=TAGS + 3);
    let n = rng.random_range(0..1_000_000u32);
    match rng.random_range(0..24) {
        // User renames fan out to every article they wrote or commented on.
        0..=2 => format!("UPDATE `user` SET name = 'user {n}' WHERE id = {u}"),
        3 => format!(
            "INSERT INTO `user` VALUES ({u}, 'back {n}', NULL) \
             ON DUPLICATE KEY UPDATE name = VALUES(name)"
        ),
        4 => format!("DELETE FROM `user` WHERE id = {u}"),
        5 | 6 => format!("UPDATE comment SET article_id = {a} WHERE id = {c}"),
        7 => format!("UPDATE comment SET approved = 1 - LEAST(approved, 1) WHERE id = {c}"),
        8 => {
            let user = maybe_null(rng, 0.1, u);
            let approved = rng.random_range(0..=1);
            format!(
                "INSERT INTO comment VALUES ({c}, {a}, {user}, 'comment {n}', {approved}) \
                 ON DUPLICATE KEY UPDATE body = VALUES(body), approved = VALUES(approved)"
            )
        }
        9 => format!("DELETE FROM comment WHERE id = {c}"),
        10 => {
            let status = STATUSES[rng.random_range(0..STATUSES.len())];
            format!("UPDATE article SET status = '{status}' WHERE id = {a}")
        }
        11 => format!(
            "UPDATE article SET deleted_at = IF(deleted_at IS NULL, '2024-05-05 05:05:05', NULL) \
             WHERE id = {a}"
        ),
        12 | 13 => {
            let author = maybe_null(rng, 0.15, u);
            format!("UPDATE article SET author_id = {author} WHERE id = {a}")
        }
        14 => format!(
            "UPDATE article SET title = 'title {n}', updated_at = updated_at + INTERVAL 1 SECOND \
             WHERE id = {a}"
        ),
        15 => format!("UPDATE tag SET name = 'tag {n}' WHERE id = {t}"),
        16 => format!("INSERT INTO article_tag (article_id, tag_id) VALUES ({a}, {t})"),
        17 => format!("DELETE FROM article_tag WHERE article_id = {a} ORDER BY id LIMIT 1"),
        18 => {
            if rng.random_bool(0.5) {
                format!("DELETE FROM tag WHERE id = {t}")
            } else {
                format!(
                    "INSERT INTO tag VALUES ({t}, 'tag {n}') \
                     ON DUPLICATE KEY UPDATE name = VALUES(name)"
                )
            }
        }
        19 => format!("DELETE FROM article WHERE id = {a}"),
        20 => {
            let author = maybe_null(rng, 0.1, u);
            let status = STATUSES[rng.random_range(0..2)];
            format!(
                "INSERT INTO article VALUES ({a}, 'title {n}', 'body {n}', '{status}', {author}, \
                 NULL, NULL, '2024-02-02 00:00:00') ON DUPLICATE KEY UPDATE title = VALUES(title)"
            )
        }
        21 => format!(
            "UPDATE IGNORE article SET id = {} WHERE id = {a}",
            rng.random_range(1..=ARTICLES + 20)
        ),
        22 => format!("UPDATE comment SET approved = 1 WHERE article_id = {a}"),
        _ => {
            let user = maybe_null(rng, 0.2, u);
            format!("UPDATE comment SET user_id = {user} WHERE id = {c}")
        }
    }
}

/// Runs random statements and multi-table transactions (some rolled back) until `stop`;
/// returns the number of statements.
async fn random_writer(mut conn: Conn, seed: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut statements = 0;
    while !stop.load(Ordering::Relaxed) {
        if rng.random_bool(0.2) {
            let size = rng.random_range(2..=5);
            let sql: Vec<String> = (0..size).map(|_| random_change(&mut rng)).collect();
            let end = if rng.random_bool(0.15) {
                "ROLLBACK"
            } else {
                "COMMIT"
            };
            run(&mut conn, &format!("BEGIN; {}; {end}", sql.join("; "))).await;
            statements += size;
        } else {
            run(&mut conn, &random_change(&mut rng)).await;
            statements += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..4))).await;
    }
    conn.disconnect().await.ok();
    statements
}

#[tokio::test]
async fn blog_rule_end_to_end_with_kills() {
    // GIVEN a seeded blog of a few hundred articles, copied by the blog rule
    let seed: u64 = std::env::var("BLOG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("blog workload: seed={seed} (rerun with BLOG_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let data = seed_blog(&mut rng).join("; ");
    let (env, db, _conn, index, mut daemon) = blog_fixture("blogload", &data).await;
    let rule = blog_rule();
    let copied = converge(
        env,
        &mut daemon,
        &db,
        &index,
        &rule,
        secs(60),
        "initial copy",
    )
    .await;
    assert!(
        copied.len() > 50,
        "too few documents to test: {}",
        copied.len()
    );

    // WHEN a random workload runs over all five tables while the daemon is SIGKILLed and
    // restarted three times
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn(random_writer(
        env.mysql_db(&db).await,
        seed.wrapping_add(1),
        stop.clone(),
    ));
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(700..=2500))).await;
        daemon.kill();
        daemon.restart().await;
    }
    tokio::time::sleep(Duration::from_millis(rng.random_range(300..=1000))).await;
    stop.store(true, Ordering::Relaxed);
    let statements = writer.await.unwrap();
    println!("blog workload: statements={statements}");
    assert!(
        statements > 100,
        "the workload ran only {statements} statements"
    );

    // THEN the index equals the rule on MySQL's rows, and verify agrees
    let docs = converge(
        env,
        &mut daemon,
        &db,
        &index,
        &rule,
        secs(60),
        "after the workload",
    )
    .await;
    println!("blog workload: documents={}", docs.len());
    let out = daemon.cli("verify").await;
    assert_eq!(out.code, 0, "verify after the workload: {out}");
    assert_eq!(daemon.terminate().await, 0);
}
