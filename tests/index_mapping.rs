//! Index creation (SPEC §5 "Index"): a missing index is created with a mapping derived from
//! the column types and extended for new columns; a user's index and an index template are
//! used as they are; `create_index = false` and `mapping` overrides are honoured.
//!
//! osmem-server (the default test sink) reports itself as OpenSearch 3.x and supports
//! composable templates, `_simulate_index`, `unsigned_long`, `flat_object`, `geo_shape` and
//! `_meta`, so every test runs against it as against a real cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mysql_async::prelude::Queryable;
use reqwest::Method;
use serde_json::{Value, json};

/// `type` of every property of a mapping, as `{field: type}`.
fn types_of(mapping: &Value) -> Value {
    let props = mapping["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no properties in {mapping}"));
    Value::Object(
        props
            .iter()
            .map(|(k, v)| (k.clone(), v["type"].clone()))
            .collect(),
    )
}

/// Waits until document `id` of `index` exists.
async fn wait_for_doc(env: &TestEnv, daemon: &mut Daemon, index: &str, id: &str) -> Value {
    let es = env.es();
    let found = wait_until(secs(60), async || es.get(index, id).await.is_some()).await;
    if !found {
        daemon.assert_running();
        panic!(
            "document {id} did not reach {index}; dead letters: {:?}\n{}",
            daemon.dead_letters(),
            daemon.stderr_tail(40)
        );
    }
    es.get(index, id).await.unwrap()
}

const ALL_FAMILIES: &str = "CREATE TABLE t (\
    id BIGINT UNSIGNED PRIMARY KEY, \
    i INT, si SMALLINT UNSIGNED, ti TINYINT(1), \
    f FLOAT, d DOUBLE, \
    money DECIMAL(10,2), whole DECIMAL(18,0), big DECIMAL(30,6), \
    b1 BIT(1), b64 BIT(64), y YEAR, \
    dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL, ts0 TIMESTAMP NULL, tm TIME(1), \
    s VARCHAR(20), txt TEXT, ch CHAR(3) CHARACTER SET latin1, \
    bin VARBINARY(10), bl BLOB, \
    e ENUM('small','large'), st SET('x','y','z'), \
    j JSON, g GEOMETRY\
    ) DEFAULT CHARSET = utf8mb4";

#[tokio::test]
async fn a_missing_index_is_created_with_a_mapping_from_the_column_types() {
    // GIVEN a table with one column per type family and no index
    let mut f = Fixture::start("mapped", ALL_FAMILIES).await;
    let es = f.env.es();

    // WHEN a row at the types' extremes is written
    f.sql(
        "INSERT INTO t VALUES (18446744073709551615, \
           -2147483648, 65535, 1, \
           0.1, 1e300, \
           -99999999.99, 999999999999999999, 123456789012345678901234.000001, \
           b'1', b'1111111111111111111111111111111111111111111111111111111111111111', 2155, \
           '2024-02-29', '2024-02-29 13:45:01.123456', '2024-02-29 13:45:01.654321', \
           '2024-02-29 13:45:01', '-838:59:59.0', \
           'héllo', 'some text', 'abc', \
           X'00FF', X'0102', \
           'large', 'x,z', \
           '{\"a\": {\"b\": [1, 2]}, \"c\": \"d\"}', ST_GeomFromText('POINT(1 2)'))",
    )
    .await;

    // THEN the document is indexed, the unsigned 64-bit maximum included (not dead-lettered)
    let doc = wait_for_doc(f.env, &mut f.daemon, &f.index, "18446744073709551615").await;
    let some = json!({"id": 18446744073709551615_u64, "b64": 18446744073709551615_u64,
                      "e": "large", "st": ["x", "z"], "dtm": "2024-02-29T13:45:01.123456",
                      "ts": "2024-02-29T13:45:01.654321Z", "g": {"type": "Point", "coordinates": [1.0, 2.0]}});
    for (field, expected) in some.as_object().unwrap() {
        assert_eq!(&doc[field], expected, "field {field} of {doc}");
    }
    assert!(
        f.daemon.dead_letters().is_empty(),
        "{:?}",
        f.daemon.dead_letters()
    );

    // AND the daemon created the index: ours by _meta, with the derived field types
    let mapping = es.mapping(&f.index).await.expect("index created");
    assert_eq!(
        mapping["_meta"]["created_by"], "binlog2es",
        "mapping: {mapping}"
    );
    assert_eq!(mapping["_meta"]["source_table"], format!("{}.t", f.db));
    assert_eq!(
        types_of(&mapping),
        json!({
            "id": "unsigned_long",
            "i": "long", "si": "long", "ti": "long",
            "f": "float", "d": "double",
            "money": "scaled_float", "whole": "long", "big": "double",
            "b1": "long", "b64": "unsigned_long", "y": "long",
            "dt": "date", "dtm": "date", "ts": "date_nanos", "ts0": "date", "tm": "keyword",
            "s": "text", "txt": "text", "ch": "text",
            "bin": "binary", "bl": "binary",
            "e": "keyword", "st": "keyword",
            "j": "object", "g": "geo_shape",
        }),
        "mapping: {mapping}"
    );
    let props = &mapping["properties"];
    // JSON is kept unindexed so that every JSON value, also a bare scalar, indexes.
    assert_eq!(props["j"]["enabled"], json!(false), "mapping: {mapping}");
    f.sql("UPDATE t SET j = '[42, \"x\"]'").await;
    let id = "18446744073709551615";
    let scalar = wait_until(secs(60), async || {
        es.get(&f.index, id)
            .await
            .is_some_and(|d| d["j"] == json!([42, "x"]))
    })
    .await;
    assert!(
        scalar,
        "a JSON array of scalars was not indexed: {:?}",
        f.daemon.dead_letters()
    );
    assert_eq!(
        props["s"]["fields"]["keyword"],
        json!({"type": "keyword", "ignore_above": 256})
    );
    assert_eq!(props["money"]["scaling_factor"].as_f64(), Some(100.0));

    // AND range queries work on the derived types (dates with microseconds, unsigned_long)
    es.refresh(&f.index).await;
    for query in [
        json!({"range": {"dtm": {"gte": "2024-02-29T13:45:01", "lt": "2024-02-29T13:45:02"}}}),
        json!({"range": {"id": {"gte": 18446744073709551614_u64}}}),
        json!({"term": {"s.keyword": "héllo"}}),
    ] {
        let (status, body) = es
            .request(
                Method::POST,
                &format!("/{}/_search", f.index),
                Some(json!({ "query": query })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["hits"]["total"]["value"], 1, "{query}: {body}");
    }
    assert!(
        f.daemon.log().contains("Created index"),
        "{}",
        f.daemon.log()
    );
    f.daemon.assert_running();
}

#[tokio::test]
async fn added_columns_become_fields_while_streaming() {
    // GIVEN a daemon streaming a table into an index it created
    let mut f = Fixture::start(
        "altered",
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))",
    )
    .await;
    f.sql("INSERT INTO t VALUES (1, 'one')").await;
    wait_for_doc(f.env, &mut f.daemon, &f.index, "1").await;
    let es = f.env.es();
    let before = es.mapping(&f.index).await.unwrap();
    assert_eq!(types_of(&before), json!({"id": "long", "name": "text"}));

    // WHEN columns are added and a row uses them
    f.sql("ALTER TABLE t ADD COLUMN big BIGINT UNSIGNED, ADD COLUMN at DATETIME(3)")
        .await;
    f.sql("INSERT INTO t VALUES (2, 'two', 18446744073709551615, '2024-02-29 13:45:01.5')")
        .await;

    // THEN the new fields are in the mapping with their derived types, and the row indexed
    let doc = wait_for_doc(f.env, &mut f.daemon, &f.index, "2").await;
    assert_fields(
        &doc,
        &json!({"id": 2, "name": "two", "big": 18446744073709551615_u64,
                "at": "2024-02-29T13:45:01.500"}),
        "document 2",
    );
    let after = es.mapping(&f.index).await.unwrap();
    assert_eq!(
        types_of(&after),
        json!({"id": "long", "name": "text", "big": "unsigned_long", "at": "date"}),
        "{after}"
    );
    assert!(f.daemon.dead_letters().is_empty());
    assert!(
        f.daemon.log().contains("Added fields for new columns"),
        "{}",
        f.daemon.log()
    );
    // (Documents written before the ALTER keep their fields: the binlog does not rewrite
    // rows for ADD COLUMN, so no full index-equals-table comparison here.)
    f.daemon.assert_running();
}

#[tokio::test]
async fn a_users_index_mapping_is_never_touched() {
    // GIVEN an index the user created with a mapping of their own (dynamic: false, so
    // nothing but binlog2es could change it)
    let user_mapping = json!({"mappings": {"dynamic": false, "properties": {
        "id": {"type": "keyword"},
        "name": {"type": "keyword"},
    }}});
    let mut f = Fixture::start_with(
        "users",
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), n BIGINT UNSIGNED)",
        Some(user_mapping),
        |b| b,
    )
    .await;
    let es = f.env.es();
    let before = es.mapping(&f.index).await.unwrap();

    // WHEN rows stream, and a column is added while streaming
    f.sql("INSERT INTO t VALUES (1, 'one', 5)").await;
    wait_for_doc(f.env, &mut f.daemon, &f.index, "1").await;
    f.sql("ALTER TABLE t ADD COLUMN extra VARCHAR(10)").await;
    f.sql("INSERT INTO t VALUES (2, 'two', 6, 'x')").await;
    f.sql("INSERT INTO t VALUES (3, 'three', 7, 'y')").await;
    wait_for_doc(f.env, &mut f.daemon, &f.index, "3").await;

    // THEN the mapping is exactly the user's, and the new column was reported once
    assert_eq!(es.mapping(&f.index).await.unwrap(), before);
    assert!(before["_meta"].is_null(), "{before}");
    let log = f.daemon.log();
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("did not create this index"))
        .count();
    assert_eq!(warnings, 1, "{log}");
    assert!(!log.contains("Created index"), "{log}");
    assert_eq!(
        f.doc("3").await,
        Some(json!({"id": 3, "name": "three", "n": 7, "extra": "y"}))
    );
    f.daemon.assert_running();
}

#[tokio::test]
async fn a_matching_index_template_is_used_as_it_is() {
    // GIVEN a composable index template for the index name (osmem-server supports them and
    // `_simulate_index`, which the daemon asks) that maps `n` as a keyword
    let env = TestEnv::get();
    let es = env.es();
    let (db, mut conn) = env
        .create_database_with("CREATE TABLE t (id INT PRIMARY KEY, n BIGINT, s VARCHAR(20))")
        .await;
    let index = env.unique_index("templated");
    let template = format!("b2e-test-{index}");
    let (status, body) = es
        .request(
            Method::PUT,
            &format!("/_index_template/{template}"),
            Some(json!({
                "index_patterns": [format!("{index}*")],
                "priority": 500,
                "template": {"mappings": {"properties": {
                    "n": {"type": "keyword"},
                    "s": {"type": "keyword"},
                }}},
            })),
        )
        .await;
    assert_eq!(status, 200, "creating the template: {body}");
    let mut daemon = Daemon::builder(env)
        .table(&format!("{db}.t"), &index)
        .start()
        .await;

    // WHEN a row streams
    conn.query_drop("INSERT INTO t VALUES (1, 42, 'x')")
        .await
        .unwrap();
    wait_for_doc(env, &mut daemon, &index, "1").await;

    // THEN the index has the template's mapping, not a derived one
    let mapping = es.mapping(&index).await.unwrap();
    es.request(
        Method::DELETE,
        &format!("/_index_template/{template}"),
        None,
    )
    .await;
    assert_eq!(mapping["properties"]["n"]["type"], "keyword", "{mapping}");
    assert_eq!(mapping["properties"]["s"]["type"], "keyword", "{mapping}");
    assert!(mapping["_meta"]["created_by"].is_null(), "{mapping}");
    assert!(
        daemon.log().contains("an index template shapes it"),
        "{}",
        daemon.log()
    );
    daemon.assert_running();
}

#[tokio::test]
async fn create_index_false_leaves_creation_to_the_server() {
    // GIVEN a rule with create_index = false
    let mut f = Fixture::start_with(
        "nocreate",
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))",
        None,
        |b| b.table_lines("create_index = false"),
    )
    .await;

    // WHEN a row streams
    f.sql("INSERT INTO t VALUES (1, 'one')").await;
    wait_for_doc(f.env, &mut f.daemon, &f.index, "1").await;

    // THEN the index was auto-created by the server (dynamic mapping), not by binlog2es
    let mapping = f.env.es().mapping(&f.index).await.unwrap();
    assert!(mapping["_meta"]["created_by"].is_null(), "{mapping}");
    assert!(!f.daemon.log().contains("Created index"));
}

#[tokio::test]
async fn mapping_overrides_and_index_settings_apply_on_creation() {
    // GIVEN a rule overriding one field's type and setting a setting
    let mut f = Fixture::start_with(
        "override",
        "CREATE TABLE t (id INT PRIMARY KEY, title VARCHAR(40), price DECIMAL(8,2))",
        None,
        |b| {
            b.table_lines(
                "mapping = { title = { type = \"keyword\" }, price = { type = \"double\" } }\n\
                 index_settings = { number_of_replicas = 0 }",
            )
        },
    )
    .await;

    // WHEN a row streams
    f.sql("INSERT INTO t VALUES (1, 'A Title', 12.50)").await;
    wait_for_doc(f.env, &mut f.daemon, &f.index, "1").await;

    // THEN the overrides replaced the derived definitions, and the setting applied
    let es = f.env.es();
    let mapping = es.mapping(&f.index).await.unwrap();
    assert_eq!(
        mapping["properties"],
        json!({"id": {"type": "long"}, "title": {"type": "keyword"}, "price": {"type": "double"}}),
        "{mapping}"
    );
    let (status, settings) = es
        .request(Method::GET, &format!("/{}/_settings", f.index), None)
        .await;
    assert_eq!(status, 200, "{settings}");
    // Keyed by the physical index behind the alias `f.index`.
    let physical = format!("{}-1", f.index);
    let replicas = &settings[&physical]["settings"]["index"]["number_of_replicas"];
    assert!(replicas == "0" || replicas == 0, "{settings}");
    es.refresh(&f.index).await;
    let (_, hits) = es
        .request(
            Method::POST,
            &format!("/{}/_search", f.index),
            Some(json!({"query": {"term": {"title": "A Title"}}})),
        )
        .await;
    assert_eq!(hits["hits"]["total"]["value"], 1, "{hits}");
}

#[tokio::test]
async fn a_refused_mapping_stops_with_a_message_naming_index_and_field() {
    // GIVEN a rule whose override names a field type the server does not know
    let mut f = Fixture::start_with(
        "refused",
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20))",
        None,
        |b| b.table_lines("mapping = { name = { type = \"no_such_type\" } }"),
    )
    .await;

    // WHEN a row of the table arrives (the index is prepared before it is routed)
    f.sql("INSERT INTO t VALUES (1, 'one')").await;

    // THEN `run` exits 1 with one message naming the index, the field and the fix
    let code = f.daemon.wait_exit(secs(60)).await;
    let log = f.daemon.last_run_log();
    assert_eq!(code, 1, "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let line = log
        .lines()
        .find(|l| l.contains(&format!("cannot prepare index `{}`", f.index)))
        .unwrap_or_else(|| panic!("no line names the index:\n{log}"));
    println!("refused: {line}");
    assert!(line.contains("[name]"), "{line}");
    assert!(line.contains("`mapping`"), "{line}");
    assert_eq!(
        f.env.es().mapping(&f.index).await,
        None,
        "index was created"
    );
}
