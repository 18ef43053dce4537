//! `binlog2es verify [--repair]`: compares every configured table with its index.
//!
//! Per table: rows are read in primary-key order in chunks (keyset pagination, binary
//! protocol, session time zone UTC), turned into documents by the same value decoder the
//! stream uses ([`crate::decode::RowDecoder`]), and compared field by field with the indexed documents
//! (`_mget`). The index's ids are then scrolled to find documents without a row. Because the
//! system may be live, differing ids are only candidates: after the writer's lag has passed
//! they are read again on both sides and only persistent differences are reported.
//!
//! `--repair` writes the current row of missing/different ids and deletes extra ids with
//! `version_type=external_gte` and the checkpoint's version, so a repair never overwrites a
//! newer streamed change; the repaired ids are then checked again.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use reqwest::Method;
use serde_json::{Map, Value as Json, json};

use crate::checkpoint::CheckpointStore;
use crate::config::{Config, TableRule};
use crate::decode::RowDecoder;
use crate::decode::rows::RootKey;
use crate::document::fetch;
use crate::document::shape::root_key;
use crate::document::{DocumentPlan, RowShape};
use crate::es::{EsClient, bulk, response};
use crate::scan::{SESSION_SETUP, key_list, placeholders, read_chunk, row_image, select_list};
use crate::schema::TableSchema;

/// Key values (as MySQL sent them) by `_id`.
type Keys = HashMap<String, Vec<Value>>;
/// `_routing` of indexed documents by `_id`.
type Routings = HashMap<String, Option<String>>;

/// Rows per MySQL chunk and ids per `_mget`.
const CHUNK: usize = 1000;
/// Ids per lookup query.
const LOOKUP: usize = 200;
/// Example ids shown per kind of difference.
const EXAMPLES: usize = 5;

/// Why verification could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Configuration, connection options, checkpoint file.
    #[error(transparent)]
    Setup(#[from] crate::Error),
    /// A MySQL query failed.
    #[error("MySQL: {0}")]
    Mysql(String),
    /// An Elasticsearch request failed.
    #[error("Elasticsearch: {0}")]
    Es(String),
    /// `--repair` without a checkpoint: there is no version that is safe to write with.
    #[error(
        "--repair needs the checkpoint file {0} (its version keeps repairs from overwriting \
         newer streamed changes); start the daemon once first"
    )]
    NoCheckpoint(String),
    /// `--table` names a table the server does not have, or no `[[tables]]` rule matches.
    #[error("{0}")]
    UnknownTable(String),
}

impl VerifyError {
    /// Process exit code: 2 for configuration problems, else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            VerifyError::Setup(e) => e.exit_code(),
            _ => 1,
        }
    }
}

fn my(e: impl fmt::Display) -> VerifyError {
    VerifyError::Mysql(e.to_string())
}

fn es(e: impl fmt::Display) -> VerifyError {
    VerifyError::Es(e.to_string())
}

/// The outcome for one table.
#[derive(Debug, Clone, Default)]
pub struct TableReport {
    /// `db.table`.
    pub table: String,
    /// Target index.
    pub index: String,
    /// Rows read from MySQL.
    pub rows: u64,
    /// Ids with a row but no document.
    pub missing: Vec<String>,
    /// Ids with a document but no row.
    pub extra: Vec<String>,
    /// Ids whose document differs from the row.
    pub different: Vec<String>,
    /// Documents written or deleted by `--repair`.
    pub repaired: u64,
    /// Repairs Elasticsearch refused because the document's version is newer than the
    /// checkpoint's (a change still streaming, or an edit made outside binlog2es).
    pub conflicts: u64,
    /// Why the table could not be compared (unsupported column type, no key …).
    pub error: Option<String>,
    /// Why the table is not synced, so not compared either (a keyless table its rule
    /// skips, `on_keyless = "skip"`); not a difference.
    pub skipped: Option<String>,
}

impl TableReport {
    /// Whether anything differs (or the table could not be checked).
    pub fn has_differences(&self) -> bool {
        self.error.is_some()
            || !self.missing.is_empty()
            || !self.extra.is_empty()
            || !self.different.is_empty()
    }
}

/// The outcome for all tables.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One entry per table, in rule then name order.
    pub tables: Vec<TableReport>,
}

impl Report {
    /// Whether any table differs (exit 1).
    pub fn has_differences(&self) -> bool {
        self.tables.iter().any(TableReport::has_differences)
    }
}

fn examples(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(EXAMPLES).map(String::as_str).collect();
    let more = if ids.len() > EXAMPLES { ", …" } else { "" };
    format!(" (e.g. {}{more})", shown.join(", "))
}

impl fmt::Display for TableReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}: ", self.table, self.index)?;
        if let Some(e) = &self.error {
            return writeln!(f, "not checked: {e}");
        }
        if let Some(why) = &self.skipped {
            return writeln!(f, "skipped: {why}");
        }
        writeln!(
            f,
            "{} rows checked, {} missing, {} extra, {} different{}",
            self.rows,
            self.missing.len(),
            self.extra.len(),
            self.different.len(),
            if self.repaired > 0 {
                format!(", {} repaired", self.repaired)
            } else {
                String::new()
            }
        )?;
        if self.conflicts > 0 {
            writeln!(
                f,
                "  {} not repaired: their document version is newer than the checkpoint's (a \
                 change still streaming, or an edit made outside binlog2es); run --repair \
                 again once the daemon has checkpointed a later transaction",
                self.conflicts
            )?;
        }
        for (what, ids) in [
            ("missing", &self.missing),
            ("extra", &self.extra),
            ("different", &self.different),
        ] {
            if !ids.is_empty() {
                writeln!(f, "  {what}:{}", examples(ids))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tables {
            write!(f, "{t}")?;
        }
        if self.tables.is_empty() {
            writeln!(f, "no table matches the [[tables]] rules")?;
        }
        if self.has_differences() {
            writeln!(f, "differences found")
        } else {
            writeln!(f, "all tables equal")
        }
    }
}

/// Runs the comparison (and the repair when asked) over every configured table.
///
/// # Errors
/// Bad connection options, unreachable servers, failed queries or requests, and `--repair`
/// without a checkpoint.
pub async fn verify(config: &Config, repair: bool) -> Result<Report, VerifyError> {
    verify_tables(config, repair, None).await
}

/// As [`verify`], over one table when `only` names it (`db.table`), else over every configured
/// one; a progress line per table goes to stderr (a big table takes hours).
///
/// # Errors
/// As [`verify`], and [`VerifyError::UnknownTable`] when `only` is not a synced table.
pub async fn verify_tables(
    config: &Config,
    repair: bool,
    only: Option<&str>,
) -> Result<Report, VerifyError> {
    let version = if repair {
        let store = CheckpointStore::new(&config.checkpoint.path);
        let checkpoint = store.load().map_err(crate::Error::from)?;
        match checkpoint {
            Some(c) => Some(c.version.0),
            None => {
                return Err(VerifyError::NoCheckpoint(
                    config.checkpoint.path.display().to_string(),
                ));
            }
        }
    } else {
        None
    };
    let source = crate::source::MysqlSource::new(&config.mysql).map_err(crate::Error::from)?;
    let mut conn = source
        .connect()
        .await
        .map_err(|e| match source.explain_tls(&e) {
            Some(tls) => VerifyError::Setup(crate::Error::Tls(tls)),
            None => my(e),
        })?;
    conn.query_drop(SESSION_SETUP).await.map_err(my)?;
    let client = EsClient::new(&config.elasticsearch)
        .map_err(|e| crate::Error::from(crate::writer::WriterError::from(e)))?;
    let settle = Duration::from_millis(config.writer.max_delay_ms.saturating_mul(3))
        + Duration::from_secs(2);
    let tables = crate::schema::catalog::user_tables(&mut conn)
        .await
        .map_err(my)?;
    let tables: Vec<_> = tables
        .iter()
        .filter(|(db, table)| only.is_none_or(|o| o == format!("{db}.{table}")))
        .filter_map(|(db, table)| Some((db, table, config.rule_for(db, table)?)))
        .collect();
    if let (Some(name), true) = (only, tables.is_empty()) {
        return Err(VerifyError::UnknownTable(format!(
            "`{name}` is not a table on the server that a [[tables]] rule matches (give it as db.table)"
        )));
    }
    let mut report = Report::default();
    let total = tables.len();
    for (i, (db, table, _)) in tables.into_iter().enumerate() {
        let Some((rule_index, rule)) = config.rule_index_for(db, table) else {
            continue;
        };
        let started = std::time::Instant::now();
        eprintln!("verify: [{}/{total}] {db}.{table} …", i + 1);
        let t = verify_table(
            &mut conn,
            &client,
            (rule_index, &rule),
            db,
            table,
            settle,
            version,
        )
        .await?;
        eprintln!(
            "verify: [{}/{total}] {db}.{table}: {} rows in {:.1}s, {}",
            i + 1,
            t.rows,
            started.elapsed().as_secs_f64(),
            if t.has_differences() {
                "differences"
            } else {
                "equal"
            }
        );
        report.tables.push(t);
    }
    let _ = conn.disconnect().await;
    Ok(report)
}

async fn verify_table(
    conn: &mut Conn,
    client: &EsClient,
    (rule_index, rule): (usize, &TableRule),
    db: &str,
    table: &str,
    settle: Duration,
    version: Option<u64>,
) -> Result<TableReport, VerifyError> {
    let mut report = TableReport {
        table: format!("{db}.{table}"),
        index: rule.index_for(db, table),
        ..TableReport::default()
    };
    let schema = match crate::scan::read_table_schema(conn, rule, db, table).await {
        Ok(s) => s,
        Err(e) => {
            // The daemon leaves such a table out (SPEC §2.5), so there is nothing to compare.
            let skips = rule.id_columns.is_empty()
                && rule.keyless_policy() == crate::config::KeylessPolicy::Skip;
            if skips
                && !crate::schema::catalog::has_primary_key(conn, db, table)
                    .await
                    .map_err(my)?
            {
                report.skipped = Some(
                    "no primary key, not synced (on_keyless = \"skip\"); add one or set id_columns"
                        .into(),
                );
            } else {
                report.error = Some(e.to_string());
            }
            return Ok(report);
        }
    };
    let shape = match RowShape::new(rule_index, rule, &schema) {
        Ok(shape) => shape,
        Err(e) => {
            report.error = Some(e.to_string());
            return Ok(report);
        }
    };
    // SPEC §9 documents with relations: built from the tables here, with the same plan
    // the daemon resolves (no cache is involved on either side).
    let plan = if shape.as_ref().is_some_and(RowShape::has_relations) {
        match fetch::resolve_plan(conn, rule_index, rule, db, table).await {
            Ok(plan) => Some(plan),
            Err(e) => {
                report.error = Some(e.to_string());
                return Ok(report);
            }
        }
    } else {
        None
    };
    let expect = match &plan {
        Some(plan) => Expect::Built(plan),
        None => Expect::Rows(shape.as_ref()),
    };
    let index = report.index.clone();
    // `_routing` of documents the scan did not expect, for reading and deleting them.
    let mut indexed_routing: HashMap<String, Option<String>> = HashMap::new();
    let mut candidates: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    // Key values (as MySQL sent them) of the candidates the scan found: the id text cannot
    // always be read back as key values (base64 BINARY, `…Z` TIMESTAMP).
    let mut keys: HashMap<String, Vec<Value>> = HashMap::new();
    // 1. Every row against its document, chunk by chunk in key order.
    let mut after: Option<Vec<Value>> = None;
    loop {
        let rows = read_chunk(conn, &schema, after.as_deref(), CHUNK)
            .await
            .map_err(my)?;
        let Some(last) = rows.last() else { break };
        after = Some(schema.key.iter().map(|&k| last[k].clone()).collect());
        let full = rows.len() == CHUNK;
        let mut docs = Vec::with_capacity(rows.len());
        match expected_docs(conn, &schema, expect, &rows).await {
            // A row that is not a document is not expected (SPEC §9 "Rows").
            Ok(expected) => docs.extend(
                expected
                    .into_iter()
                    .zip(&rows)
                    .filter_map(|(d, row)| Some((d?, row))),
            ),
            Err(e) => {
                report.error = Some(e);
                return Ok(report);
            }
        }
        report.rows += rows.len() as u64;
        let ids: Vec<(String, Option<String>)> = docs
            .iter()
            .map(|((id, e), _)| (id.clone(), e.routing.clone()))
            .collect();
        let indexed = mget(client, &index, &ids).await?;
        for ((id, expected), row) in docs {
            if indexed.get(&id).is_none_or(|d| !expected.equals(d)) {
                candidates.push(id.clone());
                keys.insert(
                    id.clone(),
                    schema.key.iter().map(|&k| row[k].clone()).collect(),
                );
            }
            seen.insert(id);
        }
        if !full {
            break;
        }
    }
    // 2. Documents without a row.
    for (id, routing) in scroll_ids(client, &index).await? {
        if !seen.contains(&id) {
            indexed_routing.insert(id.clone(), routing);
            candidates.push(id);
        }
    }
    drop(seen);
    // 3. Live tolerance: what still differs once in-flight changes have landed.
    if !candidates.is_empty() {
        tokio::time::sleep(settle).await;
        candidates = classify(
            conn,
            client,
            (&schema, expect),
            (&keys, &indexed_routing),
            &index,
            &candidates,
            &mut report,
        )
        .await?;
    }
    // 4. Repair, then check the repaired ids again.
    if let (Some(version), false) = (version, candidates.is_empty()) {
        let rows = lookup(conn, &schema, expect, &keys, &candidates).await?;
        (report.repaired, report.conflicts) = repair(
            client,
            &index,
            &candidates,
            (&rows, &indexed_routing),
            version,
        )
        .await?;
        report.missing.clear();
        report.extra.clear();
        report.different.clear();
        classify(
            conn,
            client,
            (&schema, expect),
            (&keys, &indexed_routing),
            &index,
            &candidates,
            &mut report,
        )
        .await?;
    }
    Ok(report)
}

/// How the expected documents of a table are made.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// From each row alone: the row (SPEC §5), or shaped and routed by the rule (§9).
    Rows(Option<&'a RowShape>),
    /// Built from the root rows and the rule's relations (§9), by key.
    Built(&'a DocumentPlan),
}

/// The expected document of each of `rows` (`None`: the row is no document), in order.
async fn expected_docs(
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
async fn built_docs(
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
struct Expected {
    source: Map<String, Json>,
    routing: Option<String>,
}

impl Expected {
    /// Whether the indexed `(source, routing)` is this document.
    fn equals(&self, (source, routing): &(Map<String, Json>, Option<String>)) -> bool {
        self.routing == *routing && doc_eq(&self.source, source)
    }
}

/// Reads both sides for `ids` and files each persistent difference in `report`; returns
/// the ids that differ.
async fn classify(
    conn: &mut Conn,
    client: &EsClient,
    (schema, expect): (&TableSchema, Expect<'_>),
    (keys, indexed_routing): (&Keys, &Routings),
    index: &str,
    ids: &[String],
    report: &mut TableReport,
) -> Result<Vec<String>, VerifyError> {
    let rows = lookup(conn, schema, expect, keys, ids).await?;
    let routed: Vec<(String, Option<String>)> = ids
        .iter()
        .map(|id| {
            let routing = match rows.get(id) {
                Some(e) => e.routing.clone(),
                None => indexed_routing.get(id).cloned().flatten(),
            };
            (id.clone(), routing)
        })
        .collect();
    let mut docs = HashMap::new();
    for chunk in routed.chunks(CHUNK) {
        docs.extend(mget(client, index, chunk).await?);
    }
    let mut differing = Vec::new();
    for id in ids {
        let list = match (rows.get(id), docs.get(id)) {
            (None, None) => continue,
            (Some(_), None) => &mut report.missing,
            (None, Some(_)) => &mut report.extra,
            (Some(row), Some(doc)) if row.equals(doc) => continue,
            (Some(_), Some(_)) => &mut report.different,
        };
        list.push(id.clone());
        differing.push(id.clone());
    }
    Ok(differing)
}

/// Splits a document id back into its key values (SPEC §5 escaping).
fn split_id(id: &str, parts: usize) -> Option<Vec<String>> {
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
async fn lookup(
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
fn row_doc(
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
fn json_eq(a: &Json, b: &Json) -> bool {
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

fn doc_eq(a: &Map<String, Json>, b: &Map<String, Json>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| json_eq(v, w)))
}

fn check_status(status: u16, body: &Json, what: &str) -> Result<(), VerifyError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(VerifyError::Es(format!("{what}: HTTP {status}: {body}")))
    }
}

/// The indexed `_source` and `_routing` of each (id, routing) that has a document.
async fn mget(
    client: &EsClient,
    index: &str,
    ids: &[(String, Option<String>)],
) -> Result<HashMap<String, (Map<String, Json>, Option<String>)>, VerifyError> {
    let mut found = HashMap::new();
    if ids.is_empty() {
        return Ok(found);
    }
    // A routed document is found on its routing's shard only.
    let docs: Vec<Json> = ids
        .iter()
        .map(|(id, routing)| match routing {
            Some(r) => json!({ "_id": id, "routing": r }),
            None => json!({ "_id": id }),
        })
        .collect();
    let (status, body) = client
        .json(
            Method::POST,
            &format!("/{index}/_mget"),
            Some(&json!({ "docs": docs })),
        )
        .await
        .map_err(es)?;
    if status == 404 {
        return Ok(found);
    }
    check_status(status, &body, "_mget")?;
    for doc in body["docs"].as_array().into_iter().flatten() {
        if doc["found"] == Json::Bool(true)
            && let (Some(id), Some(source)) = (doc["_id"].as_str(), doc["_source"].as_object())
        {
            let routing = doc["_routing"].as_str().map(str::to_owned);
            found.insert(id.to_owned(), (source.clone(), routing));
        }
    }
    Ok(found)
}

/// Every document id of the index with its `_routing` (after a refresh, so recent writes
/// are seen).
async fn scroll_ids(
    client: &EsClient,
    index: &str,
) -> Result<Vec<(String, Option<String>)>, VerifyError> {
    let mut ids = Vec::new();
    client
        .scroll(
            index,
            json!({ "_source": false, "sort": ["_doc"] }),
            |hit| {
                if let Some(id) = hit["_id"].as_str() {
                    ids.push((id.to_owned(), hit["_routing"].as_str().map(str::to_owned)));
                }
            },
        )
        .await
        .map_err(|e| VerifyError::Es(e.to_string()))?;
    Ok(ids)
}

/// Writes the rows of `ids` that exist and deletes the others, versioned so that a newer
/// streamed change always wins. Returns how many actions Elasticsearch applied and how
/// many it refused as version conflicts.
async fn repair(
    client: &EsClient,
    index: &str,
    ids: &[String],
    (rows, indexed_routing): (&HashMap<String, Expected>, &HashMap<String, Option<String>>),
    version: u64,
) -> Result<(u64, u64), VerifyError> {
    let (mut applied, mut conflicts) = (0, 0);
    for chunk in ids.chunks(CHUNK) {
        let mut body = Vec::new();
        for id in chunk {
            let expected = rows
                .get(id)
                .map(|e| (Json::Object(e.source.clone()).to_string(), &e.routing));
            let (action, routing) = match &expected {
                Some((source, routing)) => (bulk::Action::Index(source.as_bytes()), *routing),
                None => (
                    bulk::Action::Delete,
                    indexed_routing.get(id).unwrap_or(&None),
                ),
            };
            bulk::push(
                &mut body,
                action,
                index,
                Some(id),
                Some(version),
                routing.as_deref(),
            );
        }
        let answer = client.bulk(Bytes::from(body)).await.map_err(es)?;
        let Some(items) = response::items(&answer, chunk.len()).map_err(es)? else {
            applied += chunk.len() as u64;
            continue;
        };
        for item in items {
            match item.status {
                // 404: deleting what is already gone; 409: a newer change is there.
                200..=299 => applied += 1,
                404 if item.action == "delete" => applied += 1,
                409 => conflicts += 1,
                _ => {
                    let error = item.error.unwrap_or_default();
                    return Err(VerifyError::Es(format!("repair of {index}: {error}")));
                }
            }
        }
    }
    Ok((applied, conflicts))
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
