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
//!
//! Layout: this file runs the comparison per table and reports; [`expected`] is what MySQL
//! says the documents are (rows, shaped rows, documents built with relations), [`index`] is
//! what the index holds and the repair's writes.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

mod expected;
mod index;

use expected::{Expect, expected_docs, lookup};
use index::{mget, repair, scroll_ids};

use crate::checkpoint::CheckpointStore;
use crate::config::{Config, TableRule};
use crate::document::{RowShape, fetch};
use crate::es::EsClient;
use crate::scan::{SESSION_SETUP, read_chunk};
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
