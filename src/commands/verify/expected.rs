//! What MySQL says a table's documents are: the expected document of each row (the row,
//! the row shaped by the rule, or a document built with the rule's relations), looked up
//! again by id, and compared with an indexed one (numbers by value).

use std::collections::{HashMap, HashSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use serde_json::{Map, Value as Json};

use super::{LOOKUP, VerifyError, my};
use crate::decode::RowDecoder;
use crate::decode::rows::RootKey;
use crate::document::fetch;
use crate::document::shape::root_key;
use crate::document::{DocumentPlan, RowShape};
use crate::scan::{key_list, placeholders, row_image, select_list};
use crate::schema::TableSchema;

/// How the expected documents of a table are made.
#[derive(Clone, Copy)]
pub(super) enum Expect<'a> {
    /// From each row alone: the row (SPEC §5), or shaped and routed by the rule (§9).
    Rows(Option<&'a RowShape>),
    /// Built from the root rows and the rule's relations (§9), by key.
    Built(&'a DocumentPlan),
}

/// The expected document of each of `rows` (`None`: the row is no document), in order.
pub(super) async fn expected_docs(
    conn: &mut Conn,
    schema: &TableSchema,
    expect: Expect<'_>,
    rows: &[Vec<Value>],
) -> Result<Vec<Option<(String, Expected)>>, String> {
    match expect {
        Expect::Rows(shape) => rows.iter().map(|row| row_doc(schema, shape, row)).collect(),
        Expect::Built(plan) => {
            // Keys as the stream gives them (decoded, then as parameters), so temporal and
            // BIT keys compare equal with the rows read back.
            let mut keys: Vec<RootKey> = Vec::with_capacity(rows.len());
            for row in rows {
                let image = row_image(schema, row.iter().cloned()).map_err(|e| e.to_string())?;
                let values =
                    RowDecoder::decode_values(schema, &image, None).map_err(|e| e.to_string())?;
                keys.push(root_key(schema, &values));
            }
            built_docs(conn, plan, &keys).await
        }
    }
}

/// The documents of a rule with relations for `keys`, in order.
pub(super) async fn built_docs(
    conn: &mut Conn,
    plan: &DocumentPlan,
    keys: &[RootKey],
) -> Result<Vec<Option<(String, Expected)>>, String> {
    let built = fetch::build(conn, plan, keys)
        .await
        .map_err(|e| e.to_string())?;
    built
        .into_iter()
        .map(|doc| {
            let Some(doc) = doc else { return Ok(None) };
            let source: Map<String, Json> = serde_json::from_slice(&doc.source)
                .map_err(|e| format!("{}: {e}", plan.root.qualified()))?;
            let routing = doc.routing.map(|r| r.to_string());
            Ok(Some((doc.id, Expected { source, routing })))
        })
        .collect()
}

/// A document as the rule gives it for a row: `_source` and `_routing`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Expected {
    pub(super) source: Map<String, Json>,
    pub(super) routing: Option<String>,
}

impl Expected {
    /// Whether the indexed `(source, routing)` is this document.
    pub(super) fn equals(&self, (source, routing): &(Map<String, Json>, Option<String>)) -> bool {
        self.routing == *routing && doc_eq(&self.source, source)
    }
}

/// Splits a document id back into its key values (SPEC §5 escaping).
pub(super) fn split_id(id: &str, parts: usize) -> Option<Vec<String>> {
    if parts == 1 {
        return Some(vec![id.to_owned()]);
    }
    let mut out = vec![String::new()];
    let mut chars = id.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.last_mut()?.push(chars.next()?),
            ':' => out.push(String::new()),
            c => out.last_mut()?.push(c),
        }
    }
    (out.len() == parts).then_some(out)
}

/// The current document of each id that has a row, keyed by id. Key values come from
/// `keys` when the scan saw the id, else from the id text.
pub(super) async fn lookup(
    conn: &mut Conn,
    schema: &TableSchema,
    expect: Expect<'_>,
    keys: &HashMap<String, Vec<Value>>,
    ids: &[String],
) -> Result<HashMap<String, Expected>, VerifyError> {
    let mut found = HashMap::new();
    let wanted: HashSet<&String> = ids.iter().collect();
    let parts = schema.key.len();
    let tuples: Vec<Vec<Value>> = ids
        .iter()
        .filter_map(|id| match keys.get(id) {
            Some(values) => Some(values.clone()),
            None => split_id(id, parts).map(|v| v.into_iter().map(Value::from).collect()),
        })
        .collect();
    for chunk in tuples.chunks(LOOKUP) {
        let one = format!("({})", placeholders(parts));
        let sql = format!(
            "{} WHERE ({}) IN ({})",
            select_list(schema),
            key_list(schema),
            vec![one; chunk.len()].join(", ")
        );
        let params: Vec<Value> = chunk.iter().flatten().cloned().collect();
        let rows: Vec<Vec<Value>> = conn
            .exec::<Row, _, _>(sql, params)
            .await
            .map_err(my)?
            .into_iter()
            .map(Row::unwrap)
            .collect();
        let docs = expected_docs(conn, schema, expect, &rows)
            .await
            .map_err(VerifyError::Mysql)?;
        for (id, doc) in docs.into_iter().flatten() {
            // Text comparison may match another case or padding: keep exact ids only.
            if wanted.contains(&id) {
                found.insert(id, doc);
            }
        }
    }
    Ok(found)
}

/// A row as its `_id` and document (SPEC §5/§6), decoded as the stream decodes it and,
/// with `shape`, shaped and routed as the stream does (SPEC §9); `None` when the rule's row
/// conditions make the row no document.
pub(super) fn row_doc(
    schema: &TableSchema,
    shape: Option<&RowShape>,
    row: &[Value],
) -> Result<Option<(String, Expected)>, String> {
    let image = row_image(schema, row.iter().cloned()).map_err(|e| e.to_string())?;
    let (id, source, routing) = match shape {
        None => {
            let doc = RowDecoder::default()
                .decode_row(schema, &image, None)
                .map_err(|e| e.to_string())?;
            (doc.id, doc.source, None)
        }
        Some(shape) => {
            let values =
                RowDecoder::decode_values(schema, &image, None).map_err(|e| e.to_string())?;
            if !shape.matches(&values) {
                return Ok(None);
            }
            (
                RowDecoder::id_of_values(schema, &values),
                shape.source(&values),
                shape.routing(&values).map(|r| r.to_string()),
            )
        }
    };
    let source: Map<String, Json> =
        serde_json::from_slice(&source).map_err(|e| format!("{}: {e}", schema.qualified()))?;
    Ok(Some((id, Expected { source, routing })))
}

/// JSON equality with numbers compared by value.
pub(super) fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            x == y
                || match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                    (Some(p), Some(q), ..) => p == q,
                    (.., Some(p), Some(q)) => p == q,
                    _ => x.as_f64() == y.as_f64(),
                }
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Json::Object(x), Json::Object(y)) => doc_eq(x, y),
        _ => a == b,
    }
}

pub(super) fn doc_eq(a: &Map<String, Json>, b: &Map<String, Json>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| json_eq(v, w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_back_into_key_values() {
        assert_eq!(split_id("a:b", 1).unwrap(), ["a:b"]);
        assert_eq!(split_id("a\\:b:c\\\\", 2).unwrap(), ["a:b", "c\\"]);
        assert!(split_id("a:b:c", 2).is_none());
    }

    #[test]
    fn a_document_under_another_routing_differs() {
        let source: Map<String, Json> = serde_json::from_str(r#"{"a":1}"#).unwrap();
        let routed = Expected {
            source: source.clone(),
            routing: Some("7".into()),
        };
        assert!(routed.equals(&(source.clone(), Some("7".into()))));
        assert!(!routed.equals(&(source.clone(), Some("8".into()))));
        assert!(!routed.equals(&(source.clone(), None)));
        let other: Map<String, Json> = serde_json::from_str(r#"{"a":2}"#).unwrap();
        assert!(!routed.equals(&(other, Some("7".into()))));
    }

    #[test]
    fn numbers_compare_by_value() {
        let a: Json = serde_json::from_str(r#"{"x":[1,2.5],"y":null}"#).unwrap();
        let b: Json = serde_json::from_str(r#"{"y":null,"x":[1.0,2.5]}"#).unwrap();
        assert!(json_eq(&a, &b));
        let c: Json = serde_json::from_str(r#"{"x":[1,2.6],"y":null}"#).unwrap();
        assert!(!json_eq(&a, &c));
    }
}
