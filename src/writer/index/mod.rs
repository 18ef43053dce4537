//! Target indices (SPEC §5 "Index"): created with a mapping derived from the column types
//! when missing, extended with fields for new columns; indices someone else created, and
//! indices an index template shapes, are used as they are.
//!
//! The reader calls [`IndexManager::ensure`] each time it (re)builds a table's schema, before
//! any row of that schema is routed, so a document never reaches an index whose mapping
//! lacks its fields (dynamic mapping would otherwise guess, and e.g. reject a BIGINT
//! UNSIGNED above 2^63). What was ensured is cached per index: steady streaming sends no
//! request, only a changed schema does.
//!
//! An index binlog2es creates is the physical index `NAME-<generation>` (`orders-1`) behind
//! the alias `NAME`, made in one `PUT` ([`layout`]): everything else addresses `NAME`, and a
//! rebuild can later fill `NAME-2` and move the alias in one step. A concrete `NAME` that an
//! earlier version created stays as it is.
//!
//! Ownership is recorded in the index itself, `_meta.created_by = "binlog2es"`, so it
//! survives restarts and is visible to operators. Only indices we created are ever altered,
//! and only by adding fields (`PUT /<index>/_mapping` with the missing properties): an
//! existing field is never changed, as Elasticsearch cannot change a field's type in place.
//!
//! A missing index is created only when no index template would shape it: composable
//! templates are asked with `POST /_index_template/_simulate_index/<name>` (or, where that
//! API is missing, matched against `GET /_index_template` here), legacy ones with
//! `GET /_template`. A template that only carries settings (a catch-all `*` template setting
//! replicas is common) does not count: the index is created with our mapping and the server
//! still applies the template's settings. When templates cannot be read (HTTP 403), nothing
//! is created (we cannot rule out the user's template) and a warning says which privilege
//! to grant.
//!
//! `_meta.rule_fingerprint` records the rule the index was made for ([`drift`]); an index
//! that no longer matches its rule (another fingerprint, or a field of another type) is
//! reported once per process with the command that rebuilds it. An index from before
//! fingerprints is stamped with the current one.
//!
//! Transient failures (connection, 429, 5xx, 401: [`crate::retry`]) are retried with the
//! writer's backoff until they pass (or `writer.max_retries`); refusals (400 mapping
//! conflicts, and 403, which here means a privilege the index needs) are a
//! [`WriterError::Index`] naming index, field and fix.
//!
//! Mapping derivation is in `mapping`, template detection in `templates`; this file
//! holds the requests that reconcile an index with a table.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::WriterError;
use crate::config::{Config, TableRule};
use crate::document::store::Documents;
use crate::es::path::segment;
use crate::es::{EsClient, ServerInfo};
use crate::retry::{Attempt, Failure, Retry, RetryError, Verdict, is_auth, retry_until};
use crate::schema::TableSchema;
use templates::TemplateCheck;

mod drift;
mod layout;
mod mapping;
mod templates;

pub use drift::{Drift, FieldConflict, index_fingerprint, reindex_command, rule_fingerprint};
pub use layout::{Layout, Mappings, generation_of, physical_name};
pub use mapping::{
    CREATED_BY, Capabilities, DATE_FORMAT, DATE_NANOS_FORMAT, FLATTENED_DEPTH_LIMIT,
    FLATTENED_IGNORE_ABOVE, JsonField, KEYWORD_IGNORE_ABOVE, create_body, field_mapping,
    properties, rule_properties, searchable_json_mapping,
};

/// Generations tried when creating an index whose `NAME-1`… are taken by leftovers.
const MAX_GENERATION: u64 = 100;

/// What is known about one index.
#[derive(Debug)]
struct Known {
    /// Created by binlog2es: fields may be added.
    ours: bool,
    /// Fields its mapping has, plus (not ours) the columns already seen or reported.
    fields: HashSet<String>,
}

impl Known {
    /// Whether nothing needs to be done for these wanted properties and columns.
    fn covers(&self, schema: &TableSchema, wanted: &Map<String, Value>) -> bool {
        if self.ours {
            wanted.keys().all(|f| self.fields.contains(f))
        } else {
            schema.columns.iter().all(|c| self.fields.contains(&c.name))
        }
    }
}

/// Creates and extends target indices; caches what it ensured per index.
pub struct IndexManager {
    client: EsClient,
    config: Arc<Config>,
    stop: CancellationToken,
    caps: Option<Capabilities>,
    known: HashMap<Arc<str>, Known>,
    /// Indices whose drift from their rule was reported (once per process).
    drift_reported: HashSet<Arc<str>>,
    /// Rules with relations: their mapping comes from the whole document plan.
    documents: Option<Arc<Documents>>,
    /// Indices being rebuilt, each with its new physical index: what one gets, the other
    /// gets too (a column that appears during a rebuild).
    rebuilding: HashMap<Arc<str>, String>,
}

impl IndexManager {
    /// A manager using `client`.
    pub fn new(client: EsClient, config: Arc<Config>) -> Self {
        Self {
            client,
            config,
            stop: CancellationToken::new(),
            caps: None,
            known: HashMap::new(),
            drift_reported: HashSet::new(),
            documents: None,
            rebuilding: HashMap::new(),
        }
    }

    /// Notes that `index` is being rebuilt into `target` (`None`: no longer).
    pub fn rebuilding(&mut self, index: &str, target: Option<String>) {
        match target {
            Some(target) => self.rebuilding.insert(Arc::from(index), target),
            None => self.rebuilding.remove(index),
        };
    }

    /// Derives the mapping of rules with relations from their plans (SPEC §9 "Mapping").
    pub fn with_documents(mut self, documents: Option<Arc<Documents>>) -> Self {
        self.documents = documents;
        self
    }

    /// Stops retrying when `stop` fires: [`IndexManager::ensure`] then returns
    /// [`WriterError::IndexInterrupted`] instead of waiting for an unreachable server.
    pub fn with_stop(mut self, stop: CancellationToken) -> Self {
        self.stop = stop;
        self
    }

    /// Makes sure `schema.index` can take this table's documents: creates it with a derived
    /// mapping when missing (as `NAME-<generation>` behind the alias `NAME`, unless a
    /// template shapes it), adds fields for new columns when binlog2es created it, and
    /// reports once when it no longer matches its rule; leaves other indices alone. Sends no
    /// request when the schema brings nothing new.
    ///
    /// # Errors
    /// Elasticsearch refuses a mapping or lacks a privilege ([`WriterError::Index`]), retries
    /// are exhausted, or `stop` fired while the server was unreachable.
    pub async fn ensure(&mut self, schema: &TableSchema) -> Result<(), WriterError> {
        self.ensure_name(schema).await?;
        // The rebuild's new index takes the same documents: it needs the same fields.
        if let Some(target) = self.rebuilding.get(&schema.index).cloned() {
            self.ensure_generation(schema, &target).await?;
        }
        Ok(())
    }

    /// [`IndexManager::ensure`] for the name readers use.
    async fn ensure_name(&mut self, schema: &TableSchema) -> Result<(), WriterError> {
        let config = Arc::clone(&self.config);
        let Some(rule) = config.rule_for(&schema.db, &schema.table) else {
            return Ok(());
        };
        if !rule.create_index {
            return Ok(());
        }
        let wanted = self.wanted(schema, rule).await?;
        if let Some(known) = self.known.get(&schema.index)
            && known.covers(schema, &wanted)
        {
            return Ok(());
        }
        self.reconcile(schema, rule, wanted).await
    }

    /// Makes the physical index `physical` (no alias) ready for `schema`'s documents under
    /// its rule, for a rebuild: created with the current mapping and `_meta` when missing,
    /// extended with missing fields when it exists and binlog2es created it. `schema.index`
    /// itself is not touched.
    ///
    /// # Errors
    /// `physical` exists and was not created by binlog2es, Elasticsearch refuses a mapping
    /// or lacks a privilege ([`WriterError::Index`]), retries are exhausted, or `stop` fired.
    pub async fn ensure_generation(
        &mut self,
        schema: &TableSchema,
        physical: &str,
    ) -> Result<(), WriterError> {
        let config = Arc::clone(&self.config);
        let Some(rule) = config.rule_for(&schema.db, &schema.table) else {
            return Ok(());
        };
        let wanted = self.wanted(schema, rule).await?;
        if let Some(known) = self.known.get(physical)
            && known.covers(schema, &wanted)
        {
            return Ok(());
        }
        let path = format!("/{}/_mapping", segment(physical));
        for _ in 0..3 {
            let (status, body) = self.send(physical, Method::GET, &path, None).await?;
            match status {
                200 => {
                    let found = Mappings::from_answer(&body);
                    if !found.alterable() {
                        return Err(WriterError::Index {
                            index: physical.to_owned(),
                            message: "it exists and was not created by binlog2es for this index"
                                .into(),
                            hint: "delete or rename that index, then rebuild again".into(),
                        });
                    }
                    let added = self
                        .add_missing(physical, schema, &wanted, &found.properties())
                        .await?;
                    self.note_ours(physical, found.properties(), &wanted, added);
                    return Ok(());
                }
                404 => {}
                _ => {
                    return Err(refused(
                        physical,
                        "reading its mapping",
                        status,
                        &body,
                        None,
                    ));
                }
            }
            if self.create(schema, rule, &wanted, physical, None).await? {
                return Ok(());
            }
        }
        Err(appearing(physical))
    }

    /// What stands behind `index`: nothing, a concrete index, or an alias (SPEC §10).
    ///
    /// # Errors
    /// An answer other than found or missing, retries exhausted, or `stop` fired.
    pub async fn describe(&mut self, index: &str) -> Result<Layout, WriterError> {
        let name = segment(index);
        let (status, aliases) = self
            .send(index, Method::GET, &format!("/_alias/{name}"), None)
            .await?;
        let alias = match status {
            200 => true,
            404 => false,
            _ => {
                return Err(refused(
                    index,
                    "reading its aliases",
                    status,
                    &aliases,
                    None,
                ));
            }
        };
        let (status, body) = self
            .send(index, Method::GET, &format!("/{name}/_mapping"), None)
            .await?;
        let found = match status {
            200 => Mappings::from_answer(&body),
            404 if !alias => return Ok(Layout::Missing),
            _ => return Err(refused(index, "reading its mapping", status, &body, None)),
        };
        Ok(if alias {
            Layout::Alias {
                physical: found.physical(),
                ours: found.ours(),
            }
        } else {
            Layout::Concrete { ours: found.ours() }
        })
    }

    /// The properties `schema`'s rule wants on this server.
    async fn wanted(
        &mut self,
        schema: &TableSchema,
        rule: &TableRule,
    ) -> Result<Map<String, Value>, WriterError> {
        let caps = self.capabilities(&schema.index).await?;
        let loaded = self
            .documents
            .as_ref()
            .and_then(|d| d.plan_of(&schema.index));
        Ok(rule_properties(
            schema,
            rule,
            caps,
            loaded.as_ref().map(|l| &l.plan),
        ))
    }

    async fn capabilities(&mut self, index: &str) -> Result<Capabilities, WriterError> {
        if let Some(caps) = self.caps {
            return Ok(caps);
        }
        let (status, root) = self.send(index, Method::GET, "/", None).await?;
        let caps = if status == 200 {
            Capabilities::of(&ServerInfo::from_root(&root))
        } else {
            // `GET /` may be forbidden to a restricted account; assume a current server.
            warn!(
                status,
                "Cannot read the server version (GET /); assuming a current Elasticsearch for mapping types."
            );
            Capabilities::LATEST
        };
        debug!(?caps, "Mapping capabilities.");
        self.caps = Some(caps);
        Ok(caps)
    }

    /// Looks at the index as it is now and creates or extends it as needed.
    async fn reconcile(
        &mut self,
        schema: &TableSchema,
        rule: &TableRule,
        wanted: Map<String, Value>,
    ) -> Result<(), WriterError> {
        let index = &*schema.index;
        let mapping_path = format!("/{}/_mapping", segment(index));
        // Another writer may create the index between our look and our create; then we
        // look again (twice is plenty: an index does not keep appearing and vanishing).
        for _ in 0..3 {
            let (status, body) = self.send(index, Method::GET, &mapping_path, None).await?;
            match status {
                200 => return self.adopt(schema, rule, wanted, &body).await,
                404 => {}
                403 => {
                    // A write-only account: it worked before index management existed, so
                    // keep it working, without creating or extending anything.
                    warn!(%index, error = %status_text(status, &body), "Cannot read the index mapping, so binlog2es neither creates nor extends the index; grant the `view_index_metadata`, `create_index` and `manage` privileges on it, or set create_index = false in the table's rule.");
                    self.leave_alone(schema, HashSet::new());
                    return Ok(());
                }
                _ => return Err(refused(index, "reading its mapping", status, &body, None)),
            }
            match self.template_for(index).await? {
                TemplateCheck::None => {}
                TemplateCheck::Matches(template, fields) => {
                    info!(%index, %template, table = %schema.qualified(), "Index missing; an index template shapes it, so its mapping is used as it is.");
                    self.leave_alone(schema, fields);
                    return Ok(());
                }
                TemplateCheck::Unknown(why) => {
                    warn!(%index, error = %why, "Cannot read index templates, so binlog2es does not create the index (a template of yours might be meant to); grant the `manage_index_templates` cluster privilege, or set create_index = false in the table's rule.");
                    self.leave_alone(schema, HashSet::new());
                    return Ok(());
                }
            }
            if self.create_generation(schema, rule, &wanted).await? {
                self.note_ours(index, Map::new(), &wanted, Map::new());
                return Ok(());
            }
        }
        Err(appearing(index))
    }

    /// Creates `NAME-<generation>` behind the alias `NAME` (the first generation no index
    /// has yet); false when `NAME` appeared meanwhile (someone else created it).
    async fn create_generation(
        &mut self,
        schema: &TableSchema,
        rule: &TableRule,
        wanted: &Map<String, Value>,
    ) -> Result<bool, WriterError> {
        let index = &*schema.index;
        for generation in 1..=MAX_GENERATION {
            let physical = physical_name(index, generation);
            if self
                .create(schema, rule, wanted, &physical, Some(index))
                .await?
            {
                return Ok(true);
            }
            // Taken: by a concurrent writer of ours (then NAME exists now), or an index
            // left from before (then the next generation is free).
            let path = format!("/{}/_mapping", segment(index));
            let (status, _) = self.send(index, Method::GET, &path, None).await?;
            if status != 404 {
                return Ok(false);
            }
            debug!(%index, %physical, "Index name taken by another index; trying the next generation.");
        }
        Err(WriterError::Index {
            index: index.to_owned(),
            message: format!("`{index}-1` … `{index}-{MAX_GENERATION}` all exist already"),
            hint: "delete the indices left from earlier runs".into(),
        })
    }

    /// `PUT /<physical>` with the table's mapping (and `alias`); false when an index of that
    /// name (or the alias's name) exists already.
    async fn create(
        &mut self,
        schema: &TableSchema,
        rule: &TableRule,
        wanted: &Map<String, Value>,
        physical: &str,
        alias: Option<&str>,
    ) -> Result<bool, WriterError> {
        let fingerprint = index_fingerprint(&self.config, rule, &schema.index);
        let body = create_body(schema, rule, wanted, &fingerprint, alias);
        let path = format!("/{}", segment(physical));
        let (status, resp) = self.send(physical, Method::PUT, &path, Some(&body)).await?;
        if (200..300).contains(&status) {
            let index = alias.unwrap_or(physical);
            info!(%index, %physical, table = %schema.qualified(), fields = wanted.len(), "Created index with a mapping derived from the column types.");
            return Ok(true);
        }
        if matches!(
            error_type(&resp),
            Some("resource_already_exists_exception" | "invalid_alias_name_exception")
        ) {
            debug!(%physical, "Index created concurrently; checking whose it is.");
            return Ok(false);
        }
        let hint = "check the `mapping` and `index_settings` of the table's [[tables]] rule \
                    (a field type or setting this server does not know?), or create the \
                    index yourself, or set create_index = false";
        // The operator knows the index by its name; the physical one is a detail.
        let (index, what) = match alias {
            Some(alias) => (alias, format!("creating it as `{physical}`")),
            None => (physical, "creating it".to_owned()),
        };
        Err(refused(index, &what, status, &resp, Some(hint)))
    }

    /// Notes `index` as ours with the fields it has, was given and wants.
    fn note_ours(
        &mut self,
        index: &str,
        existing: Map<String, Value>,
        wanted: &Map<String, Value>,
        added: Map<String, Value>,
    ) {
        let mut fields: HashSet<String> = existing.into_iter().map(|(k, _)| k).collect();
        fields.extend(added.into_iter().map(|(k, _)| k));
        fields.extend(wanted.keys().cloned());
        self.known
            .insert(Arc::from(index), Known { ours: true, fields });
    }

    /// Notes `schema.index` as not ours, its mapping `fields` plus the table's columns
    /// known, so that only a new column brings it up again.
    fn leave_alone(&mut self, schema: &TableSchema, mut fields: HashSet<String>) {
        fields.extend(schema.columns.iter().map(|c| c.name.clone()));
        let known = Known {
            ours: false,
            fields,
        };
        self.known.insert(Arc::clone(&schema.index), known);
    }

    /// The index exists: when it is ours, stamp a missing fingerprint, report drift and add
    /// missing fields; otherwise only note new columns.
    async fn adopt(
        &mut self,
        schema: &TableSchema,
        rule: &TableRule,
        wanted: Map<String, Value>,
        body: &Value,
    ) -> Result<(), WriterError> {
        let index = &*schema.index;
        let found = Mappings::from_answer(body);
        let existing = found.properties();
        if !found.alterable() {
            self.note_not_ours(schema, &existing);
            return Ok(());
        }
        let current = index_fingerprint(&self.config, rule, index);
        let meta = found.meta();
        let recorded = meta.get("rule_fingerprint").and_then(Value::as_str);
        if recorded.is_none() {
            self.stamp(index, meta.clone(), &current).await?;
        }
        let drift = Drift::of(recorded, &current, &existing, &wanted);
        if !drift.is_empty() && self.drift_reported.insert(Arc::clone(&schema.index)) {
            let message = drift.message(index, self.config.loaded_from.as_deref());
            warn!(%index, "{message}");
        }
        let added = self.add_missing(index, schema, &wanted, &existing).await?;
        self.note_ours(index, existing, &wanted, added);
        Ok(())
    }

    /// Records the current rule's fingerprint in an index created before fingerprints
    /// existed; it is taken to match (SPEC §10). `_meta` is replaced as a whole, so the
    /// rest of it is sent along.
    async fn stamp(
        &mut self,
        index: &str,
        mut meta: Map<String, Value>,
        fingerprint: &str,
    ) -> Result<(), WriterError> {
        meta.insert("rule_fingerprint".into(), json!(fingerprint));
        let path = format!("/{}/_mapping", segment(index));
        let body = json!({ "_meta": meta });
        let (status, resp) = self.send(index, Method::PUT, &path, Some(&body)).await?;
        if !(200..300).contains(&status) {
            return Err(refused(
                index,
                "recording the rule fingerprint",
                status,
                &resp,
                None,
            ));
        }
        info!(%index, fingerprint, "Recorded the rule fingerprint in an index created by an earlier version.");
        Ok(())
    }

    /// Notes new columns of an index binlog2es did not create (they are left to dynamic
    /// mapping), saying so once per column.
    fn note_not_ours(&mut self, schema: &TableSchema, existing: &Map<String, Value>) {
        let index = &*schema.index;
        let before = self.known.get(index);
        let first_sight = before.is_none();
        let mut fields: HashSet<String> = existing.keys().cloned().collect();
        if let Some(k) = before {
            fields.extend(k.fields.iter().cloned());
        }
        for col in &schema.columns {
            if fields.contains(&col.name) {
                continue;
            }
            if first_sight {
                debug!(%index, column = %col.name, "Column not in the index's mapping; dynamic mapping decides its type.");
            } else {
                warn!(%index, column = %col.name, table = %schema.qualified(), "New column, but binlog2es did not create this index, so its mapping is left alone: the field's type is left to dynamic mapping. Add the field to the index yourself if that is not what you want.");
            }
            fields.insert(col.name.clone());
        }
        if first_sight {
            info!(%index, table = %schema.qualified(), "Index exists and was not created by binlog2es; its mapping is used as it is.");
        }
        self.known.insert(
            Arc::clone(&schema.index),
            Known {
                ours: false,
                fields,
            },
        );
    }

    /// Adds the `wanted` fields `existing` lacks to `index` (`PUT _mapping`); the added ones.
    async fn add_missing(
        &mut self,
        index: &str,
        schema: &TableSchema,
        wanted: &Map<String, Value>,
        existing: &Map<String, Value>,
    ) -> Result<Map<String, Value>, WriterError> {
        let missing: Map<String, Value> = wanted
            .iter()
            .filter(|(field, _)| !existing.contains_key(*field))
            .map(|(f, d)| (f.clone(), d.clone()))
            .collect();
        if missing.is_empty() {
            return Ok(missing);
        }
        let names: Vec<String> = missing.keys().cloned().collect();
        let path = format!("/{}/_mapping", segment(index));
        let body = json!({ "properties": missing });
        let (status, resp) = self.send(index, Method::PUT, &path, Some(&body)).await?;
        if !(200..300).contains(&status) {
            let field = names.join("`, `");
            let hint = format!(
                "field `{field}` of table {} conflicts with the index's mapping (e.g. a field \
                 of that name with another type); reindex into a new index, or set \
                 mapping = {{ {} = {{ type = \"…\" }} }} in the [[tables]] rule to match the \
                 existing field",
                schema.qualified(),
                names.first().map(String::as_str).unwrap_or("field"),
            );
            return Err(refused(
                index,
                &format!("adding field `{field}`"),
                status,
                &resp,
                Some(&hint),
            ));
        }
        info!(%index, table = %schema.qualified(), fields = %names.join(","), "Added fields for new columns to the index mapping.");
        Ok(missing)
    }

    /// At start-up: reports the drift of `schema.index` (and stamps or extends it, as the
    /// first document would) when it exists and binlog2es created it; creates nothing.
    ///
    /// # Errors
    /// As [`IndexManager::ensure`].
    pub async fn inspect(&mut self, schema: &TableSchema) -> Result<(), WriterError> {
        let config = Arc::clone(&self.config);
        let Some(rule) = config.rule_for(&schema.db, &schema.table) else {
            return Ok(());
        };
        if !rule.create_index || self.known.contains_key(&schema.index) {
            return Ok(());
        }
        let wanted = self.wanted(schema, rule).await?;
        let path = format!("/{}/_mapping", segment(&schema.index));
        let (status, body) = self.send(&schema.index, Method::GET, &path, None).await?;
        match status {
            200 => self.adopt(schema, rule, wanted, &body).await,
            // Missing (created with its first document) or not readable (`ensure` says so).
            _ => Ok(()),
        }
    }

    /// Forgets what was ensured for `index` (readers were moved to another index).
    pub fn forget(&mut self, index: &str) {
        self.known.remove(index);
    }

    /// One request, retried while the failure is transient (connection, 429, 5xx, 401);
    /// any other answer, 403 included (a privilege this index needs), is returned for the
    /// caller to judge.
    async fn send(
        &self,
        index: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), WriterError> {
        let w = &self.config.writer;
        let retry = Retry::new(
            w.retry_initial_ms,
            w.retry_max_ms,
            &self.stop,
            "Index request failed, retrying.",
            index,
        )
        .max_attempts(w.max_retries);
        let interrupted = |last: String| WriterError::IndexInterrupted {
            index: index.to_owned(),
            last,
        };
        let (_, answer) = retry_until(&retry, (), |()| {
            let method = method.clone();
            async move {
                let sent = tokio::select! {
                    r = self.client.json(method.clone(), path, body) => r,
                    _ = self.stop.cancelled() => {
                        let stopped = interrupted("shutdown during the request".into());
                        return ((), Attempt::Fail(stopped));
                    }
                };
                let attempt = match sent {
                    Ok((status, v))
                        if status != 403 && Verdict::of_status(status) == Verdict::Transient =>
                    {
                        Attempt::Again(Failure {
                            message: format!("{method} {path}: {}", status_text(status, &v)),
                            auth: is_auth(status),
                        })
                    }
                    Ok(answer) => Attempt::Done(answer),
                    Err(e) => Attempt::Again(Failure::new(format!("{method} {path}: {e}"))),
                };
                ((), attempt)
            }
        })
        .await;
        answer.map_err(|e| match e {
            RetryError::Final(e) => e,
            RetryError::Stopped { last } => interrupted(last),
            RetryError::Exhausted { attempts, last } => {
                WriterError::RetriesExhausted { attempts, last }
            }
        })
    }
}

/// The error when an index keeps appearing and vanishing under our requests.
fn appearing(index: &str) -> WriterError {
    WriterError::Index {
        index: index.to_owned(),
        message: "the index was reported as both existing and missing".into(),
        hint: "check for a process deleting and creating it".into(),
    }
}

/// `error.type` of an error answer.
fn error_type(body: &Value) -> Option<&str> {
    body["error"]["type"].as_str()
}

/// `HTTP 400 type: reason (cause)` from an error answer.
fn status_text(status: u16, body: &Value) -> String {
    let err = &body["error"];
    let mut text = format!("HTTP {status}");
    match (err["type"].as_str(), err["reason"].as_str()) {
        (Some(t), Some(r)) => text.push_str(&format!(" {t}: {r}")),
        _ if !err.is_null() => text.push_str(&format!(": {err}")),
        _ => {}
    }
    if let Some(cause) = err["caused_by"]["reason"].as_str()
        && !err["reason"].as_str().unwrap_or_default().contains(cause)
    {
        text.push_str(&format!(" ({cause})"));
    }
    text
}

/// The error for a refused index request, with the fix for its status.
fn refused(index: &str, what: &str, status: u16, body: &Value, hint: Option<&str>) -> WriterError {
    let hint = match status {
        403 => format!(
            "the Elasticsearch account lacks a privilege on `{index}`: grant it `create_index`, \
             `view_index_metadata` and `manage`, or set create_index = false in the table's \
             [[tables]] rule"
        ),
        _ => hint
            .unwrap_or("this is a bug or an incompatible server; please report it")
            .to_owned(),
    };
    WriterError::Index {
        index: index.to_owned(),
        message: format!("{what} was refused ({})", status_text(status, body)),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_read_well() {
        let body = json!({"error": {"type": "illegal_argument_exception",
            "reason": "mapper [u] cannot be changed from type [unsigned_long] to [keyword]"}, "status": 400});
        assert_eq!(
            status_text(400, &body),
            "HTTP 400 illegal_argument_exception: mapper [u] cannot be changed from type [unsigned_long] to [keyword]"
        );
        let e = refused("orders", "adding field `u`", 400, &body, Some("reindex")).to_string();
        assert_eq!(
            e,
            "cannot prepare index `orders`: adding field `u` was refused (HTTP 400 \
             illegal_argument_exception: mapper [u] cannot be changed from type [unsigned_long] \
             to [keyword]); reindex"
        );
        assert_eq!(status_text(503, &Value::Null), "HTTP 503");
    }
}
