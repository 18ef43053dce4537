//! SPEC §9 documents with relations built from MySQL (`document::fetch`) and the root
//! documents a change of another table reaches (`document::fanout`), against the real
//! MariaDB. Expected documents are computed here from plain `SELECT *` reads, independently
//! of the code under test, and compared whole.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use binlog2es::config::TableRule;
use binlog2es::decode::field::FieldValue;
use binlog2es::decode::rows::RootKey;
use binlog2es::document::fanout::FanOut;
use binlog2es::document::fetch::{self, FetchError};
use common::*;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde_json::{Value as Json, json};

const SCHEMA: &str = "
    CREATE TABLE user (id INT PRIMARY KEY, name VARCHAR(40)) DEFAULT CHARSET = utf8mb4;
    CREATE TABLE category (code VARCHAR(10) PRIMARY KEY, label VARCHAR(40))
        DEFAULT CHARSET = utf8mb4 COLLATE utf8mb4_general_ci;
    CREATE TABLE article (id INT PRIMARY KEY, title VARCHAR(100), status VARCHAR(20),
        author_id INT, category_code VARCHAR(10), deleted_at DATETIME NULL)
        DEFAULT CHARSET = utf8mb4 COLLATE utf8mb4_general_ci;
    CREATE TABLE comment (id INT PRIMARY KEY, article_id INT, user_id INT, body TEXT,
        approved TINYINT, score INT NULL) DEFAULT CHARSET = utf8mb4;
    CREATE TABLE tag (id INT PRIMARY KEY, name VARCHAR(40) NULL) DEFAULT CHARSET = utf8mb4;
    CREATE TABLE article_tag (id INT PRIMARY KEY, article_id INT, tag_id INT);
";

const ROWS: &str = "
    INSERT INTO user VALUES (1, 'ann'), (2, 'bob'), (3, 'Åsa');
    INSERT INTO category VALUES ('news', 'News'), ('tech', 'Tech');
    INSERT INTO article VALUES
        (1, 'Hello', 'published', 1, 'news', NULL),
        (2, 'No author', 'published', NULL, 'NEWS', NULL),
        (3, 'Draft', 'draft', 2, 'tech', NULL),
        (4, 'Featured', 'featured', 2, NULL, NULL),
        (5, 'Deleted', 'published', 1, 'tech', '2024-01-01 00:00:00'),
        (6, 'Lonely', 'Published', 3, 'tech', NULL),
        (7, 'Quiet', 'published', 3, 'tech ', NULL);
    INSERT INTO comment VALUES
        (1, 1, 2, 'first', 1, 5), (2, 1, 1, 'second', 1, NULL), (3, 1, 3, 'third', 1, 5),
        (4, 1, 1, 'hidden', 0, 1), (5, 4, 99, 'ghost', 1, 2), (6, 4, NULL, 'anon', 1, 1),
        (7, 3, 1, 'on a draft', 1, 0), (8, 2, 1, 'x', 1, 0), (9, NULL, 1, 'orphan', 1, 0),
        (10, 7, 1, 'quiet', 1, -3);
    INSERT INTO tag VALUES (1, 'rust'), (2, NULL), (3, 'db');
    INSERT INTO article_tag VALUES
        (1, 1, 3), (2, 1, 1), (3, 1, 999), (4, 1, 2), (5, 4, 1), (6, 2, 3), (7, 1, 3);
    -- Enough rows for several IN chunks (1,000 tuples each) at every level; `seq` 1..2500
    -- from a digits table (portable: no sequence engine, no recursion limit).
    CREATE TABLE digits (d INT);
    INSERT INTO digits VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9);
    CREATE TABLE seq (seq INT PRIMARY KEY);
    INSERT INTO seq SELECT a.d * 1000 + b.d * 100 + c.d * 10 + e.d FROM digits a, digits b,
        digits c, digits e WHERE a.d * 1000 + b.d * 100 + c.d * 10 + e.d BETWEEN 1 AND 2500;
    INSERT INTO article SELECT 1000 + seq, CONCAT('bulk ', seq), 'published', NULL, 'news', NULL
        FROM seq;
    INSERT INTO comment SELECT 1000 + seq, 1000 + seq, seq % 3 + 1, CONCAT('c', seq), 1, seq % 4
        FROM seq;
    INSERT INTO comment SELECT 5000 + seq, 1000 + seq, 2, 'more', seq % 2, 1 FROM seq;
    INSERT INTO article_tag SELECT 1000 + seq, 1000 + seq, seq % 4 FROM seq;
";

fn rule(db: &str) -> TableRule {
    serde_json::from_value(json!({
        "match": format!("{db}.article"),
        "index": "articles",
        "include_columns": ["id", "title", "status", "author_id"],
        "rename": { "title": "headline" },
        "where": { "status": ["published", "featured"] },
        "where_null": ["deleted_at"],
        "routing": "author_id",
        "join": [
            { "field": "author", "table": "user", "on": { "author_id": "id" },
              "include_columns": ["id", "name"] },
            { "field": "category", "table": "category", "on": { "category_code": "code" } }
        ],
        "nest": [
            { "field": "comments", "table": "comment", "on": { "id": "article_id" },
              "include_columns": ["id", "body", "score"], "where": { "approved": [1] },
              "order_by": ["score"],
              "join": [ { "field": "user", "table": "user", "on": { "user_id": "id" },
                          "include_columns": ["name"] } ] },
            { "field": "tags", "table": "tag", "values": "name",
              "through": { "table": "article_tag", "on": { "id": "article_id" },
                           "to": { "tag_id": "id" } } }
        ]
    }))
    .unwrap()
}

type Article = (
    i64,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
);
type Comment = (i64, Option<i64>, Option<i64>, String, i64, Option<i64>);

/// The tables as plain rows.
struct Tables {
    users: Vec<(i64, String)>,
    categories: Vec<(String, String)>,
    articles: Vec<Article>,
    comments: Vec<Comment>,
    tags: Vec<(i64, Option<String>)>,
    links: Vec<(i64, i64, i64)>,
}

async fn read_tables(conn: &mut Conn) -> Tables {
    Tables {
        users: conn.query("SELECT id, name FROM user").await.unwrap(),
        categories: conn
            .query("SELECT code, label FROM category")
            .await
            .unwrap(),
        articles: conn
            .query(
                "SELECT id, title, status, author_id, category_code, \
                 CAST(deleted_at AS CHAR) FROM article ORDER BY id",
            )
            .await
            .unwrap(),
        comments: conn
            .query("SELECT id, article_id, user_id, body, approved, score FROM comment")
            .await
            .unwrap(),
        tags: conn.query("SELECT id, name FROM tag").await.unwrap(),
        links: conn
            .query("SELECT id, article_id, tag_id FROM article_tag")
            .await
            .unwrap(),
    }
}

/// The document SPEC §9 gives for article `id` (straightforwardly, strings exactly).
fn expected(t: &Tables, id: i64) -> Option<Json> {
    let a = t.articles.iter().find(|a| a.0 == id)?;
    if !["published", "featured"].contains(&a.2.as_str()) || a.5.is_some() {
        return None;
    }
    let user = |uid: Option<i64>| t.users.iter().find(|u| Some(u.0) == uid);
    let author = user(a.3).map_or(Json::Null, |u| json!({ "id": u.0, "name": u.1 }));
    let category = t
        .categories
        .iter()
        .find(|c| Some(&c.0) == a.4.as_ref())
        .map_or(Json::Null, |c| json!({ "code": c.0, "label": c.1 }));
    let mut comments: Vec<&Comment> = t
        .comments
        .iter()
        .filter(|c| c.1 == Some(id) && c.4 == 1)
        .collect();
    // ORDER BY score (NULLs first), ties by id.
    comments.sort_by_key(|c| (c.5, c.0));
    let comments: Vec<Json> = comments
        .iter()
        .map(|c| {
            let u = user(c.2).map_or(Json::Null, |u| json!({ "name": u.1 }));
            json!({ "id": c.0, "body": c.3, "score": c.5, "user": u })
        })
        .collect();
    let mut links: Vec<&(i64, i64, i64)> = t.links.iter().filter(|l| l.1 == id).collect();
    links.sort_by_key(|l| l.0);
    let tags: Vec<Json> = links
        .iter()
        .filter_map(|l| t.tags.iter().find(|tag| tag.0 == l.2))
        .map(|tag| json!(tag.1))
        .collect();
    Some(json!({
        "id": a.0, "headline": a.1, "status": a.2, "author_id": a.3,
        "author": author, "category": category, "comments": comments, "tags": tags,
    }))
}

/// Prepared statements this session has executed so far.
async fn statements_executed(conn: &mut Conn) -> i64 {
    let row: Option<(String, i64)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Com_stmt_execute'")
        .await
        .unwrap();
    row.unwrap().1
}

async fn setup() -> (String, Conn, binlog2es::document::DocumentPlan) {
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(SCHEMA).await;
    conn.query_drop(ROWS).await.unwrap();
    let mut reader = env.mysql_db(&db).await;
    fetch::setup_session(&mut reader).await.unwrap();
    let plan = fetch::resolve_plan(&mut reader, 0, &rule(&db), &db, "article")
        .await
        .unwrap();
    conn.disconnect().await.ok();
    (db, reader, plan)
}

#[tokio::test]
async fn documents_equal_the_rule_on_mysql_rows() {
    // GIVEN the blog tables with edge cases and 2,500 more articles
    let (_db, mut conn, plan) = setup().await;
    let tables = read_tables(&mut conn).await;
    let mut ids: Vec<i64> = tables.articles.iter().map(|a| a.0).collect();
    ids.extend([100, 1]); // a missing row, a key asked twice
    let keys: Vec<RootKey> = ids
        .iter()
        .map(|&i| RootKey(vec![mysql_async::Value::Int(i)]))
        .collect();

    // WHEN every document is built in one call
    let executed_before = statements_executed(&mut conn).await;
    let built = fetch::build(&mut conn, &plan, &keys).await.unwrap();
    let executed = statements_executed(&mut conn).await - executed_before;

    // THEN it took one query per relation node and chunk of 1,000 parents, not per document:
    // root 3 (2,508 keys), author 1, category 1, comments 3, comments.user 1, tags 3.
    assert_eq!(executed, 12, "statements executed");

    // THEN each equals the rule evaluated on the rows, whole
    assert_eq!(built.len(), keys.len());
    let mut documents = 0;
    for (id, got) in ids.iter().zip(&built) {
        let want = expected(&tables, *id);
        match (got, want) {
            (None, None) => {}
            (Some(b), Some(want)) => {
                documents += 1;
                let source: Json = serde_json::from_slice(&b.source).unwrap();
                assert_eq!(source, want, "article {id}");
                assert_eq!(b.id, id.to_string());
                let author = tables.articles.iter().find(|a| a.0 == *id).unwrap().3;
                assert_eq!(
                    b.routing.as_deref(),
                    author.map(|a| a.to_string()).as_deref()
                );
            }
            (got, want) => panic!("article {id}: built {got:?}, expected {want:?}"),
        }
    }
    assert_eq!(
        documents,
        2_500 + 4 + 1,
        "1, 2, 4, 7, the repeated 1, the bulk ones"
    );

    // The edge cases, spelled out (the comparison above already covers them).
    let doc =
        |i: usize| -> Json { serde_json::from_slice(&built[i].as_ref().unwrap().source).unwrap() };
    assert_eq!(doc(1)["author"], Json::Null, "NULL author_id");
    assert_eq!(
        doc(1)["category"],
        Json::Null,
        "'NEWS' does not match 'news'"
    );
    assert_eq!(doc(0)["category"]["code"], "news");
    assert_eq!(
        doc(0)["tags"],
        json!(["db", "rust", null, "db"]),
        "missing tag 999 left out"
    );
    assert_eq!(
        doc(3)["comments"][0]["user"],
        Json::Null,
        "user missing (NULL)"
    );
    assert_eq!(doc(3)["comments"][1]["user"], Json::Null, "user 99 missing");
    assert_eq!(
        doc(6)["category"],
        Json::Null,
        "'tech ' does not match 'tech'"
    );
    assert!(built[5].is_none(), "'Published' is not 'published'");
}

#[tokio::test]
async fn a_missing_relation_table_is_a_plan_error() {
    let env = TestEnv::get();
    let (db, mut conn) = env.create_database_with(SCHEMA).await;
    fetch::setup_session(&mut conn).await.unwrap();
    let mut bad = rule(&db);
    bad.join[0].table = "nobody".into();
    let err = fetch::resolve_plan(&mut conn, 3, &bad, &db, "article")
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Plan(_)), "{err}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("tables[3].join[0].table"), "{err}");
}

/// Every root `fan` reaches from `rows`, walked in pages of `limit`.
async fn walk(
    fan: &FanOut,
    conn: &mut Conn,
    rows: &[Vec<FieldValue>],
    limit: usize,
) -> (BTreeSet<i64>, usize) {
    let mut out = BTreeSet::new();
    let mut after: Option<RootKey> = None;
    let mut pages = 0;
    loop {
        let page = fan
            .roots_after(conn, rows, after.as_ref(), limit)
            .await
            .unwrap();
        pages += 1;
        for (id, _) in &page {
            assert!(out.insert(id.parse().unwrap()), "root {id} twice");
        }
        if page.len() < limit {
            return (out, pages);
        }
        after = page.last().map(|(_, k)| k.clone());
    }
}

#[tokio::test]
async fn a_change_reaches_every_root_document_it_affects() {
    let (db, mut conn, plan) = setup().await;
    let tables = read_tables(&mut conn).await;

    // A user change (before and after image): articles it authors or has commented on,
    // whatever their row conditions.
    let users = FanOut::new(&plan, &db, "user");
    assert!(users.needs_query());
    let before = vec![FieldValue::Int(3), FieldValue::Str("Åsa".into())];
    let after = vec![FieldValue::Int(3), FieldValue::Str("Asa".into())];
    let want: BTreeSet<i64> = tables
        .articles
        .iter()
        .filter(|a| a.3 == Some(3))
        .map(|a| a.0)
        .chain(
            tables
                .comments
                .iter()
                .filter(|c| c.2 == Some(3))
                .filter_map(|c| c.1)
                .filter(|a| tables.articles.iter().any(|x| x.0 == *a)),
        )
        .collect();
    assert!(want.len() > 800, "{}", want.len());
    let (got, pages) = walk(&users, &mut conn, &[before, after], 97).await;
    assert_eq!(got, want);
    assert!(pages > 8, "walked in pages: {pages}");
    // Small pages, and a user nobody references.
    let few = vec![vec![FieldValue::Int(1), FieldValue::Null]];
    let want_1: BTreeSet<i64> = tables
        .articles
        .iter()
        .filter(|a| a.3 == Some(1))
        .map(|a| a.0)
        .chain(
            tables
                .comments
                .iter()
                .filter(|c| c.2 == Some(1))
                .filter_map(|c| c.1)
                .filter(|a| tables.articles.iter().any(|x| x.0 == *a)),
        )
        .collect();
    let (got, _) = walk(&users, &mut conn, &few, 2).await;
    let got_small: BTreeSet<i64> = got.iter().copied().filter(|&a| a < 1000).collect();
    let want_small: BTreeSet<i64> = want_1.iter().copied().filter(|&a| a < 1000).collect();
    assert_eq!(got_small, want_small);
    assert_eq!(got, want_1);
    let nobody = vec![vec![FieldValue::Int(42), FieldValue::Null]];
    assert_eq!(walk(&users, &mut conn, &nobody, 5).await.0, BTreeSet::new());

    // A comment change: its article directly, no query, also when the row is gone or moved.
    let comments = FanOut::new(&plan, &db, "comment");
    assert!(!comments.needs_query());
    let moved_from = vec![
        FieldValue::Int(8),
        FieldValue::Int(2),
        FieldValue::Int(1),
        FieldValue::Str("x".into()),
        FieldValue::Int(1),
        FieldValue::Int(0),
    ];
    let mut moved_to = moved_from.clone();
    moved_to[1] = FieldValue::Int(4);
    let mut roots = comments.direct_roots(&moved_from);
    roots.extend(comments.direct_roots(&moved_to));
    let ids: Vec<&str> = roots.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["2", "4"]);
    // The keys build those documents.
    let keys: Vec<RootKey> = roots.into_iter().map(|(_, k)| k).collect();
    let built = fetch::build(&mut conn, &plan, &keys).await.unwrap();
    assert_eq!(built[0].as_ref().unwrap().id, "2");
    assert_eq!(built[1].as_ref().unwrap().id, "4");

    // A tag change: the articles linked to it.
    let tags = FanOut::new(&plan, &db, "tag");
    let want_tag: BTreeSet<i64> = tables
        .links
        .iter()
        .filter(|l| l.2 == 1)
        .map(|l| l.1)
        .collect();
    let (got, _) = walk(
        &tags,
        &mut conn,
        &[vec![FieldValue::Int(1), FieldValue::Str("rust".into())]],
        500,
    )
    .await;
    assert_eq!(got, want_tag);
    // A link row: its article directly.
    let links = FanOut::new(&plan, &db, "article_tag");
    let ids: Vec<String> = links
        .direct_roots(&[FieldValue::Int(3), FieldValue::Int(1), FieldValue::Int(999)])
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["1"]);
}

#[tokio::test]
async fn composite_text_keys_match_exactly() {
    // GIVEN a root keyed by (text, number) in a binary collation ('a' and 'A' are two rows)
    // and children whose `on` columns compare case-insensitively in SQL
    let env = TestEnv::get();
    let (db, mut conn) = env
        .create_database_with(
            "CREATE TABLE doc (k VARCHAR(5) COLLATE utf8mb4_bin, n INT, title VARCHAR(10),
                 PRIMARY KEY (k, n)) DEFAULT CHARSET = utf8mb4;
             CREATE TABLE part (id INT PRIMARY KEY, k VARCHAR(5), n INT, v VARCHAR(10))
                 DEFAULT CHARSET = utf8mb4 COLLATE utf8mb4_general_ci;
             INSERT INTO doc VALUES ('a', 1, 'lower'), ('A', 1, 'upper'), ('a', 2, 'two');
             INSERT INTO part VALUES (1, 'a', 1, 'x'), (2, 'A', 1, 'y'), (3, 'a', 2, 'z'),
                 (4, 'A', 1, 'w'), (5, 'b', 1, 'none');",
        )
        .await;
    fetch::setup_session(&mut conn).await.unwrap();
    let rule: TableRule = serde_json::from_value(json!({
        "match": format!("{db}.doc"),
        "nest": [ { "field": "parts", "table": "part", "on": { "k": "k", "n": "n" },
                    "include_columns": ["v"] } ]
    }))
    .unwrap();
    let plan = fetch::resolve_plan(&mut conn, 0, &rule, &db, "doc")
        .await
        .unwrap();
    let key = |k: &str, n: i64| {
        RootKey(vec![
            mysql_async::Value::Bytes(k.as_bytes().to_vec()),
            mysql_async::Value::Int(n),
        ])
    };

    // WHEN the documents are built
    let built = fetch::build(
        &mut conn,
        &plan,
        &[key("a", 1), key("A", 1), key("b", 1), key("a", 2)],
    )
    .await
    .unwrap();

    // THEN each takes only the children whose text equals its own exactly
    let doc = |i: usize| -> (String, Json) {
        let b = built[i].as_ref().unwrap();
        (b.id.clone(), serde_json::from_slice(&b.source).unwrap())
    };
    assert_eq!(
        doc(0),
        (
            "a:1".into(),
            json!({ "k": "a", "n": 1, "title": "lower", "parts": [{ "v": "x" }] })
        )
    );
    assert_eq!(
        doc(1),
        (
            "A:1".into(),
            json!({ "k": "A", "n": 1, "title": "upper", "parts": [{ "v": "y" }, { "v": "w" }] })
        )
    );
    assert!(built[2].is_none(), "no row ('b', 1)");
    assert_eq!(doc(3).1["parts"], json!([{ "v": "z" }]));

    // A part change names its document directly, with the exact key.
    let fan = FanOut::new(&plan, &db, "part");
    assert!(!fan.needs_query());
    let row = [
        FieldValue::Int(4),
        FieldValue::Str("A".into()),
        FieldValue::Int(1),
        FieldValue::Str("w".into()),
    ];
    let roots = fan.direct_roots(&row);
    assert_eq!(roots, vec![("A:1".to_owned(), key("A", 1))]);
}
