//! The rules with relations of one run: their plans (resolved against the current tables,
//! reloaded when a table of theirs changes shape), their fan-outs, and the MySQL
//! connections documents are built with. Shared by the reader (fan-out) and the writer
//! lanes (building documents when they are written).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::DocumentPlan;
use super::fanout::FanOut;
use super::fetch::{self, Built, FetchError};
use crate::checkpoint::Flavor;
use crate::config::{Config, TableRule};
use crate::decode::rows::RootKey;
use crate::position::BinlogPosition;
use crate::read_view::{self, ViewError};
use crate::retry::{Attempt, Failure, Retry, RetryError, Verdict, retry_until};
use crate::scan::SESSION_SETUP;
use crate::source::MysqlSource;

/// Why documents of a rule with relations cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DocumentsError {
    /// The rule does not fit the tables (a table or column it names is missing).
    #[error("cannot build the documents of `{rule}` (index `{index}`): {source}")]
    Rule {
        /// `tables[i]` and its `match`.
        rule: String,
        /// The index.
        index: String,
        /// What failed.
        source: FetchError,
    },
    /// Stopped while retrying.
    #[error("stopped")]
    Stopped,
    /// Retries exhausted (only with a deadline: start-up).
    #[error("cannot read MySQL to build documents: {0}")]
    Unreachable(String),
}

/// Which rule, for which root table.
struct RuleId {
    position: usize,
    rule: TableRule,
    db: String,
    table: String,
    index: Arc<str>,
}

/// One rule with relations and its current plan.
struct RuleDocs {
    id: RuleId,
    loaded: RwLock<Arc<Loaded>>,
}

/// A rule's plan for the tables as they are now, with the fan-out of each table it uses.
pub struct Loaded {
    /// The plan.
    pub plan: DocumentPlan,
    /// Fan-out per `db.table` (lowercased) used inside the rule.
    fanouts: HashMap<(String, String), Arc<FanOut>>,
}

/// The rules with relations and the connections their documents are built with.
pub struct Documents {
    source: MysqlSource,
    flavor: Flavor,
    /// The reader's position: every change a lane holds was read before it, so a read view
    /// covering it sees every transaction those changes came from (see [`crate::read_view`]).
    read: std::sync::Mutex<BinlogPosition>,
    idle: tokio::sync::Mutex<Vec<Conn>>,
    rules: Vec<RuleDocs>,
    /// Rebuilds' new physical indices, each with the rule index whose documents it takes.
    rebuilt: std::sync::Mutex<HashMap<Arc<str>, Arc<str>>>,
    retry_initial_ms: u64,
    retry_max_ms: u64,
}

/// A table of a rule, for the reader: the rule's index and the fan-out of the table.
pub struct Involved {
    /// Index of the rule.
    pub index: Arc<str>,
    /// Root table `db`, `table`.
    pub root: (String, String),
    /// The root table's schema (for ids and the copy's bookkeeping).
    pub plan: Arc<Loaded>,
    /// Paths from the table to the root.
    pub fanout: Arc<FanOut>,
}

fn lower(db: &str, table: &str) -> (String, String) {
    (db.to_lowercase(), table.to_lowercase())
}

impl Documents {
    /// Resolves every rule with relations against the tables; `None` when no rule has
    /// relations. Connection failures are retried until `stop` or `deadline`.
    ///
    /// # Errors
    /// A rule that does not fit its tables, or MySQL unreachable within the deadline.
    pub async fn load(
        config: &Config,
        source: MysqlSource,
        (flavor, read): (Flavor, BinlogPosition),
        stop: &CancellationToken,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Option<Arc<Documents>>, DocumentsError> {
        let mut docs = Documents {
            source,
            flavor,
            read: std::sync::Mutex::new(read),
            idle: tokio::sync::Mutex::new(Vec::new()),
            rebuilt: std::sync::Mutex::new(HashMap::new()),
            rules: Vec::new(),
            retry_initial_ms: config.writer.retry_initial_ms,
            retry_max_ms: config.writer.retry_max_ms,
        };
        for (position, rule) in config.tables.iter().enumerate() {
            if !rule.has_relations() {
                continue;
            }
            // Validation allows no wildcard in such a rule: the pattern is one table.
            let Some((db, table)) = rule.pattern.split_once('.') else {
                continue;
            };
            // An earlier rule that takes the table wins (first match): this one writes nothing.
            if config.rule_index_for(db, table).map(|(i, _)| i) != Some(position) {
                warn!(rule = %format!("tables[{position}]"), table = %rule.pattern, "An earlier [[tables]] rule takes this table, so this rule's relations are not used; move the rule up or exclude the table from the earlier one with skip_tables.");
                continue;
            }
            let id = RuleId {
                position,
                rule: rule.clone(),
                db: db.to_owned(),
                table: table.to_owned(),
                index: rule.index_for(db, table).into(),
            };
            let loaded = docs.resolve(&id, stop, deadline).await?;
            docs.rules.push(RuleDocs {
                id,
                loaded: RwLock::new(Arc::new(loaded)),
            });
        }
        if docs.rules.is_empty() {
            return Ok(None);
        }
        Ok(Some(Arc::new(docs)))
    }

    /// Records how far the reader has read (called before it routes refreshes).
    pub fn note_read(&self, at: &BinlogPosition) {
        if let Ok(mut read) = self.read.lock()
            && *read != *at
        {
            *read = at.clone();
        }
    }

    /// Opens on `conn` a read-only transaction whose read view sees every transaction the
    /// reader has read so far: a server writes a transaction to the binlog before it commits
    /// it in the engine, so reading without this could miss the very change being applied.
    /// The caller ends the transaction.
    ///
    /// # Errors
    /// A failed query; MySQL without `gtid_mode = ON`.
    pub async fn cover_read(&self, conn: &mut Conn) -> Result<(), FetchError> {
        let low = match self.read.lock() {
            Ok(read) => read.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let query = |source| FetchError::Query {
            table: "(read view)".into(),
            source,
        };
        // Engine commits follow binlog writes within milliseconds; a view that is not there
        // yet is dropped and taken again.
        for _ in 0..5_000 {
            match read_view::read_view_covering(conn, self.flavor, &low).await {
                Ok(true) => return Ok(()),
                Ok(false) => tokio::time::sleep(std::time::Duration::from_millis(2)).await,
                Err(ViewError::Sql(e)) => return Err(query(e)),
                Err(ViewError::Unsupported(message)) => {
                    return Err(FetchError::Table {
                        table: "(read view)".into(),
                        message: format!("documents with relations: {message}"),
                    });
                }
            }
        }
        Err(FetchError::Table {
            table: "(read view)".into(),
            message: format!("no read view reached binlog position {low} within 10 s"),
        })
    }

    /// The plan of `index`, if a rule with relations writes it.
    pub fn plan_of(&self, index: &str) -> Option<Arc<Loaded>> {
        self.rule_writing(index).map(|r| current(&r.loaded))
    }

    /// Documents written to the physical index `target` are those of the rule index `index`
    /// (a rebuild, SPEC §10).
    pub fn rebuild_into(&self, target: Arc<str>, index: Arc<str>) {
        let mut rebuilt = self.rebuilt.lock().unwrap_or_else(|e| e.into_inner());
        rebuilt.insert(target, index);
    }

    /// The rule writing `index`, or the index a rebuild's `index` stands in for.
    fn rule_writing(&self, index: &str) -> Option<&RuleDocs> {
        let rebuilt = self.rebuilt.lock().unwrap_or_else(|e| e.into_inner());
        let index = rebuilt.get(index).map_or(index, |i| &**i);
        self.rules.iter().find(|r| &*r.id.index == index)
    }

    /// The rules that use `db.table` inside their relations (the root table too when it
    /// also occurs inside one).
    pub fn involving(&self, db: &str, table: &str) -> Vec<Involved> {
        let key = lower(db, table);
        self.rules
            .iter()
            .filter_map(|r| {
                let loaded = current(&r.loaded);
                let fanout = loaded.fanouts.get(&key).cloned()?;
                Some(Involved {
                    index: Arc::clone(&r.id.index),
                    root: (r.id.db.clone(), r.id.table.clone()),
                    plan: loaded,
                    fanout,
                })
            })
            .collect()
    }

    /// Root tables of the rules that use `db.table` inside their relations.
    pub fn roots_using(&self, db: &str, table: &str) -> Vec<(String, String)> {
        let key = lower(db, table);
        self.rules
            .iter()
            .filter(|r| current(&r.loaded).fanouts.contains_key(&key))
            .map(|r| (r.id.db.clone(), r.id.table.clone()))
            .collect()
    }

    /// Whether any rule uses `db.table` inside its relations.
    pub fn uses(&self, db: &str, table: &str) -> bool {
        !self.roots_using(db, table).is_empty()
    }

    /// Resolves again the plans of the rules using `db.table` (after a statement changed
    /// its shape). A rule that no longer fits keeps its old plan until documents are built
    /// with it, which then reports why.
    pub async fn reload_using(&self, db: &str, table: &str, stop: &CancellationToken) {
        let key = lower(db, table);
        for r in &self.rules {
            let uses = lower(&r.id.db, &r.id.table) == key
                || current(&r.loaded).fanouts.contains_key(&key);
            if !uses {
                continue;
            }
            match self.resolve(&r.id, stop, None).await {
                Ok(loaded) => {
                    if let Ok(mut slot) = r.loaded.write() {
                        *slot = Arc::new(loaded);
                    }
                    info!(index = %r.id.index, table = %format!("{db}.{table}"), "Document rule resolved again after a schema change.");
                }
                Err(e) => warn!(error = %e, "Document rule no longer fits its tables."),
            }
        }
    }

    /// Builds the documents of `keys` for `index` from MySQL's current rows, aligned with
    /// `keys` (`None`: the root row is gone or does not match the rule's rows). Lost
    /// connections are retried until `stop`; a rule that stops fitting its tables is
    /// resolved again once before it is reported.
    ///
    /// # Errors
    /// The rule does not fit the tables; stopped.
    pub async fn build(
        &self,
        index: &str,
        keys: &[RootKey],
        stop: &CancellationToken,
    ) -> Result<Vec<Option<Built>>, DocumentsError> {
        let Some(r) = self.rule_writing(index) else {
            return Ok(vec![None; keys.len()]);
        };
        let retry = Retry::new(
            self.retry_initial_ms,
            self.retry_max_ms,
            stop,
            "Reading MySQL to build documents failed, retrying.",
            "MySQL",
        );
        let (_, built) = retry_until(&retry, false, |reloaded| async move {
            let loaded = current(&r.loaded);
            let mut conn = match self.conn().await {
                Ok(c) => c,
                Err(e) => return (reloaded, Attempt::Again(Failure::new(e.to_string()))),
            };
            let built = match self.cover_read(&mut conn).await {
                Ok(()) => fetch::build(&mut conn, &loaded.plan, keys).await,
                Err(e) => Err(e),
            };
            // Ends the read view (a lost connection is not given back anyway).
            let ended = conn.query_drop("COMMIT").await.is_ok();
            match built {
                Ok(docs) if ended => {
                    self.give_back(conn).await;
                    (reloaded, Attempt::Done(docs))
                }
                Ok(docs) => (reloaded, Attempt::Done(docs)),
                Err(e) if is_transient(&e) => {
                    (reloaded, Attempt::Again(Failure::new(e.to_string())))
                }
                Err(e) if !reloaded => {
                    // The tables may have changed shape before the reader saw the statement.
                    self.give_back(conn).await;
                    warn!(index = %r.id.index, error = %e, "Building documents failed; resolving the rule against the tables again.");
                    match self.resolve(&r.id, stop, None).await {
                        Ok(loaded) => {
                            if let Ok(mut slot) = r.loaded.write() {
                                *slot = Arc::new(loaded);
                            }
                            (true, Attempt::Again(Failure::new(e.to_string())))
                        }
                        Err(DocumentsError::Rule { source, .. }) => {
                            (true, Attempt::Fail(source))
                        }
                        Err(_) => (true, Attempt::Fail(e)),
                    }
                }
                Err(e) => (reloaded, Attempt::Fail(e)),
            }
        })
        .await;
        built.map_err(|e| match e {
            RetryError::Final(source) => self.rule_error(&r.id, source),
            RetryError::Stopped { .. } => DocumentsError::Stopped,
            RetryError::Exhausted { last, .. } => DocumentsError::Unreachable(last.to_string()),
        })
    }

    /// A connection with the scanning session settings, idle or new.
    async fn conn(&self) -> Result<Conn, mysql_async::Error> {
        if let Some(c) = self.idle.lock().await.pop() {
            return Ok(c);
        }
        let mut c = self.source.connect().await?;
        c.query_drop(SESSION_SETUP).await?;
        Ok(c)
    }

    /// Keeps a healthy connection for the next batch.
    async fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.lock().await;
        if idle.len() < 16 {
            idle.push(conn);
        }
    }

    fn rule_error(&self, r: &RuleId, source: FetchError) -> DocumentsError {
        DocumentsError::Rule {
            rule: format!("tables[{}] ({})", r.position, r.rule.pattern),
            index: r.index.to_string(),
            source,
        }
    }

    /// Resolves `r` against the tables as they are now.
    async fn resolve(
        &self,
        r: &RuleId,
        stop: &CancellationToken,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Loaded, DocumentsError> {
        let mut retry = Retry::new(
            self.retry_initial_ms,
            self.retry_max_ms,
            stop,
            "Reading the tables of a document rule failed, retrying.",
            "MySQL",
        );
        if let Some(d) = deadline {
            retry = retry.within(d);
        }
        let (_, plan) = retry_until(&retry, (), |()| async {
            let mut conn = match self.conn().await {
                Ok(c) => c,
                Err(e) => return ((), Attempt::Again(Failure::new(e.to_string()))),
            };
            let out =
                match fetch::resolve_plan(&mut conn, r.position, &r.rule, &r.db, &r.table).await {
                    Ok(plan) => Attempt::Done(plan),
                    Err(e) if is_transient(&e) => Attempt::Again(Failure::new(e.to_string())),
                    Err(e) => Attempt::Fail(e),
                };
            self.give_back(conn).await;
            ((), out)
        })
        .await;
        let plan = plan.map_err(|e| match e {
            RetryError::Final(source) => self.rule_error(r, source),
            RetryError::Stopped { .. } => DocumentsError::Stopped,
            RetryError::Exhausted { last, .. } => DocumentsError::Unreachable(last.to_string()),
        })?;
        let mut fanouts = HashMap::new();
        for (db, table) in r.rule.relation_tables(&r.db) {
            let f = FanOut::new(&plan, &db, &table);
            if !f.is_empty() {
                fanouts.insert(lower(&db, &table), Arc::new(f));
            }
        }
        // The root table inside its own relations (a parent/child tree) fans out too.
        let f = FanOut::new(&plan, &r.db, &r.table);
        if !f.is_empty() {
            fanouts.insert(lower(&r.db, &r.table), Arc::new(f));
        }
        Ok(Loaded { plan, fanouts })
    }
}

fn current(slot: &RwLock<Arc<Loaded>>) -> Arc<Loaded> {
    match slot.read() {
        Ok(g) => Arc::clone(&g),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

/// Whether a failure to read documents is worth another try as it is.
fn is_transient(e: &FetchError) -> bool {
    match e {
        FetchError::Query { source, .. } => Verdict::of_mysql(source) == Verdict::Transient,
        _ => false,
    }
}
