//! Tables and indices as comparable maps `_id` → JSON document (SPEC §5/§6).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Row, Value};
use serde_json::Value as Json;

use super::{Daemon, TestEnv};

/// `_id` → `_source`, ordered by id.
pub type Docs = BTreeMap<String, Json>;

/// Every row of `db.table` as the document SPEC §5/§6 says the daemon writes for it.
///
/// Covers the common types; values are read with the binary protocol in UTC. DECIMAL becomes
/// an f64 here, so decimal digits are compared only as closely as f64 allows (see `json_eq`).
pub async fn table_rows(conn: &mut Conn, db: &str, table: &str) -> Docs {
    let key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .unwrap();
    assert!(!key.is_empty(), "{db}.{table} has no primary key");
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    let rows: Vec<Row> = conn
        .exec(format!("SELECT * FROM `{db}`.`{table}`"), ())
        .await
        .unwrap_or_else(|e| panic!("reading {db}.{table}: {e}"));
    let mut docs = Docs::new();
    for row in rows {
        let columns = row.columns();
        let values = row.unwrap();
        let mut source = serde_json::Map::new();
        let mut id_parts = vec![String::new(); key.len()];
        for (column, value) in columns.iter().zip(&values) {
            let json = to_json(value, column);
            let name = column.name_str().to_string();
            if let Some(i) = key.iter().position(|k| *k == name) {
                id_parts[i] = match &json {
                    Json::String(s) => s.clone(),
                    other => other.to_string(),
                };
            }
            source.insert(name, json);
        }
        let id = if key.len() == 1 {
            id_parts.remove(0)
        } else {
            let escaped: Vec<String> = id_parts
                .iter()
                .map(|p| p.replace('\\', "\\\\").replace(':', "\\:"))
                .collect();
            escaped.join(":")
        };
        docs.insert(id, Json::Object(source));
    }
    docs
}

/// The JSON value SPEC §6 prescribes for a value of `column`.
fn to_json(value: &Value, column: &Column) -> Json {
    use ColumnType::*;
    let fraction = |us: u32| match column.decimals() {
        0 => String::new(),
        d @ 1..=6 => format!(".{:06}", us)[..=d as usize].to_string(),
        _ => String::new(),
    };
    match value {
        Value::NULL => Json::Null,
        Value::Int(i) => (*i).into(),
        Value::UInt(u) => (*u).into(),
        // FLOAT: the shortest text that reads back as the same f32.
        Value::Float(f) => f.to_string().parse::<f64>().unwrap().into(),
        Value::Double(d) => (*d).into(),
        Value::Bytes(bytes) => match column.column_type() {
            MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
                let text = String::from_utf8_lossy(bytes);
                serde_json::from_str(&text).unwrap_or(Json::String(text.into()))
            }
            MYSQL_TYPE_JSON => serde_json::from_slice(bytes).unwrap_or(Json::Null),
            MYSQL_TYPE_BIT => bytes.iter().fold(0u64, |n, b| n << 8 | *b as u64).into(),
            _ if column.flags().contains(ColumnFlags::SET_FLAG) => {
                let text = String::from_utf8_lossy(bytes);
                let labels = text.split(',').filter(|l| !l.is_empty());
                Json::Array(labels.map(|l| Json::String(l.into())).collect())
            }
            _ if column.character_set() == 63 => Json::String(base64(bytes)),
            _ => Json::String(String::from_utf8_lossy(bytes).into()),
        },
        Value::Date(0, _, _, _, _, _, _) | Value::Date(_, 0, _, _, _, _, _) => Json::Null,
        Value::Date(_, _, 0, _, _, _, _) => Json::Null,
        Value::Date(y, mo, d, h, mi, s, us) => {
            let date = format!("{y:04}-{mo:02}-{d:02}");
            let time = format!("T{h:02}:{mi:02}:{s:02}{}", fraction(*us));
            Json::String(match column.column_type() {
                MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => date,
                MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => format!("{date}{time}Z"),
                _ => format!("{date}{time}"),
            })
        }
        Value::Time(negative, days, h, mi, s, us) => {
            let sign = if *negative { "-" } else { "" };
            let hours = *days * 24 + *h as u32;
            Json::String(format!("{sign}{hours:02}:{mi:02}:{s:02}{}", fraction(*us)))
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// JSON equality where numbers compare by value (`1` = `1.0`; f64 precision for non-integers).
fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            x == y || (x.is_f64() || y.is_f64()) && x.as_f64() == y.as_f64()
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// # Panics
/// Unless `actual` is an object with exactly the fields of `expected`, each equal (exactly:
/// `1` and `1.0` differ), reporting every differing field by name.
pub fn assert_fields(actual: &Json, expected: &Json, what: &str) {
    let (Some(actual_map), Some(expected_map)) = (actual.as_object(), expected.as_object()) else {
        panic!("{what}: not objects\n  expected {expected}\n  actual   {actual}");
    };
    let mut problems = Vec::new();
    for (name, want) in expected_map {
        match actual_map.get(name) {
            None => problems.push(format!("  {name}: missing (expected {want})")),
            Some(got) if got != want => {
                problems.push(format!("  {name}: expected {want}, got {got}"))
            }
            Some(_) => {}
        }
    }
    for (name, got) in actual_map {
        if !expected_map.contains_key(name) {
            problems.push(format!("  {name}: unexpected field ({got})"));
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: {} field(s) differ:\n{}\n  whole document: {actual}",
        problems.len(),
        problems.join("\n")
    );
}

/// How an index differs from its table.
#[derive(Debug, Default)]
pub struct Diff {
    /// Rows in the table.
    pub rows: usize,
    /// Documents in the index.
    pub docs: usize,
    /// Ids of rows without a document.
    pub missing: Vec<String>,
    /// Ids of documents without a row.
    pub extra: Vec<String>,
    /// (id, expected from the row, actual document).
    pub different: Vec<(String, Json, Json)>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.mismatches() == 0
    }

    pub fn mismatches(&self) -> usize {
        self.missing.len() + self.extra.len() + self.different.len()
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (m, e, d) = (&self.missing, &self.extra, &self.different);
        writeln!(
            f,
            "rows={} docs={} missing={} extra={} different={}",
            self.rows,
            self.docs,
            m.len(),
            e.len(),
            d.len()
        )?;
        if !m.is_empty() {
            writeln!(f, "  missing ids: {:?}", &m[..m.len().min(5)])?;
        }
        if !e.is_empty() {
            writeln!(f, "  extra ids: {:?}", &e[..e.len().min(5)])?;
        }
        for (id, expected, actual) in d.iter().take(5) {
            writeln!(
                f,
                "  id {id}:\n    expected {expected}\n    actual   {actual}"
            )?;
        }
        Ok(())
    }
}

/// Compares two `_id` → document maps exactly (numbers by value).
pub fn diff_docs(expected: &Docs, actual: &Docs) -> Diff {
    let mut diff = Diff {
        rows: expected.len(),
        docs: actual.len(),
        ..Diff::default()
    };
    for (id, row) in expected {
        match actual.get(id) {
            None => diff.missing.push(id.clone()),
            Some(doc) if !json_eq(row, doc) => {
                diff.different.push((id.clone(), row.clone(), doc.clone()))
            }
            Some(_) => {}
        }
    }
    diff.extra = actual
        .keys()
        .filter(|id| !expected.contains_key(*id))
        .cloned()
        .collect();
    diff
}

/// Compares `index` with `db.table` once.
pub async fn compare(env: &TestEnv, conn: &mut Conn, db: &str, table: &str, index: &str) -> Diff {
    let expected = table_rows(conn, db, table).await;
    diff_docs(&expected, &env.es().docs(index).await)
}

/// # Panics
/// If `index` differs from `db.table`, with a report.
pub async fn assert_index_equals_table(env: &TestEnv, db: &str, table: &str, index: &str) {
    let diff = compare(env, &mut env.mysql().await, db, table, index).await;
    assert!(
        diff.is_empty(),
        "index {index} != table {db}.{table}: {diff}"
    );
}

/// Polls until `index` equals `db.table` and returns the (empty) diff.
///
/// # Panics
/// If the daemon exits, or after `timeout`, with the diff (the daemon's `Drop` prints its log).
pub async fn wait_until_index_equals_table(
    env: &TestEnv,
    daemon: &mut Daemon,
    db: &str,
    table: &str,
    index: &str,
    timeout: Duration,
) -> Diff {
    let deadline = Instant::now() + timeout;
    let es = env.es();
    let mut conn = env.mysql().await;
    let count_sql = format!("SELECT COUNT(*) FROM `{db}`.`{table}`");
    loop {
        daemon.assert_running();
        // Counting is cheap; compare everything only when the counts agree.
        let rows: u64 = conn.query_first(&count_sql).await.unwrap().unwrap();
        let timed_out = Instant::now() > deadline;
        if rows == es.count(index).await || timed_out {
            let diff = compare(env, &mut conn, db, table, index).await;
            if diff.is_empty() {
                return diff;
            }
            if timed_out {
                panic!("index {index} != table {db}.{table} after {timeout:?}: {diff}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
