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

mod mapping;
mod templates;

pub use mapping::{
    CREATED_BY, Capabilities, DATE_FORMAT, DATE_NANOS_FORMAT, FLATTENED_DEPTH_LIMIT,
    FLATTENED_IGNORE_ABOVE, JsonField, KEYWORD_IGNORE_ABOVE, create_body, field_mapping,
    properties, searchable_json_mapping,
};

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
    /// (index, field) pairs whose type differs from ours, already reported.
    conflicts_reported: HashSet<(Arc<str>, String)>,
    /// Rules with relations: their mapping comes from the whole document plan.
    documents: Option<Arc<Documents>>,
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
            conflicts_reported: HashSet::new(),
            documents: None,
        }
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
    /// mapping when missing (unless a template shapes it), adds fields for new columns when
    /// binlog2es created it, leaves other indices alone. Sends no request when the schema
    /// brings nothing new.
    ///
    /// # Errors
    /// Elasticsearch refuses a mapping or lacks a privilege ([`WriterError::Index`]), retries
    /// are exhausted, or `stop` fired while the server was unreachable.
    pub async fn ensure(&mut self, schema: &TableSchema) -> Result<(), WriterError> {
        let config = Arc::clone(&self.config);
        let Some(rule) = config.rule_for(&schema.db, &schema.table) else {
            return Ok(());
        };
        if !rule.create_index {
            return Ok(());
        }
        let caps = self.capabilities(&schema.index).await?;
        let mut wanted = properties(schema, rule, caps);
        if rule.has_relations()
            && let Some(loaded) = self
                .documents
                .as_ref()
                .and_then(|d| d.plan_of(&schema.index))
        {
            wanted = mapping::document_properties(&loaded.plan, caps);
            mapping::apply_overrides(&mut wanted, rule);
        }
        if let Some(known) = self.known.get(&schema.index)
            && known.covers(schema, &wanted)
        {
            return Ok(());
        }
        self.reconcile(schema, rule, wanted).await
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
                200 => return self.adopt(schema, wanted, &body).await,
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
            let body = create_body(schema, rule, &wanted);
            let path = format!("/{}", segment(index));
            let (status, resp) = self.send(index, Method::PUT, &path, Some(&body)).await?;
            if (200..300).contains(&status) {
                info!(%index, table = %schema.qualified(), fields = wanted.len(), "Created index with a mapping derived from the column types.");
                self.known.insert(
                    Arc::clone(&schema.index),
                    Known {
                        ours: true,
                        fields: wanted.keys().cloned().collect(),
                    },
                );
                return Ok(());
            }
            if error_type(&resp) == Some("resource_already_exists_exception") {
                debug!(%index, "Index created concurrently; checking whose it is.");
                continue;
            }
            let hint = "check the `mapping` and `index_settings` of the table's [[tables]] rule \
                        (a field type or setting this server does not know?), or create the \
                        index yourself, or set create_index = false";
            return Err(refused(index, "creating it", status, &resp, Some(hint)));
        }
        Err(WriterError::Index {
            index: index.to_owned(),
            message: "the index was reported as both existing and missing".into(),
            hint: "check for a process deleting and creating it".into(),
        })
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

    /// The index exists: extend it when it is ours, otherwise only note new columns.
    async fn adopt(
        &mut self,
        schema: &TableSchema,
        wanted: Map<String, Value>,
        body: &Value,
    ) -> Result<(), WriterError> {
        let index = &*schema.index;
        let entries = body.as_object().cloned().unwrap_or_default();
        let ours = entries.len() == 1
            && entries
                .values()
                .all(|e| e["mappings"]["_meta"]["created_by"].as_str() == Some(CREATED_BY));
        let mut existing: Map<String, Value> = Map::new();
        for e in entries.values() {
            if let Some(p) = e["mappings"]["properties"].as_object() {
                existing.extend(p.clone());
            }
        }
        if !ours {
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
            return Ok(());
        }
        let mut missing = Map::new();
        for (field, def) in &wanted {
            match existing.get(field) {
                None => {
                    missing.insert(field.clone(), def.clone());
                }
                Some(have) if have.get("type") != def.get("type") => {
                    let key = (Arc::clone(&schema.index), field.clone());
                    if self.conflicts_reported.insert(key) {
                        warn!(%index, %field, existing = %have["type"], wanted = %def["type"], "Field exists with another type (column type or mapping override changed); a field's type cannot change in place: reindex into a new index to apply it.");
                    }
                }
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
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
        }
        let mut fields: HashSet<String> = existing.keys().cloned().collect();
        fields.extend(missing.keys().cloned());
        fields.extend(wanted.keys().cloned());
        self.known
            .insert(Arc::clone(&schema.index), Known { ours: true, fields });
        Ok(())
    }

    /// Makes the physical index `physical` (a rebuild's new index, no alias) exist with the
    /// current mapping of `schema`'s rule; adds missing fields when it exists.
    ///
    /// # Errors
    /// As [`IndexManager::ensure`].
    pub async fn ensure_generation(
        &mut self,
        schema: &TableSchema,
        physical: &str,
    ) -> Result<(), WriterError> {
        let config = Arc::clone(&self.config);
        let Some(rule) = config.rule_for(&schema.db, &schema.table) else {
            return Ok(());
        };
        let caps = self.capabilities(physical).await?;
        let mut wanted = properties(schema, rule, caps);
        if rule.has_relations()
            && let Some(loaded) = self
                .documents
                .as_ref()
                .and_then(|d| d.plan_of(&schema.index))
        {
            wanted = mapping::document_properties(&loaded.plan, caps);
            mapping::apply_overrides(&mut wanted, rule);
        }
        let mut named = schema.clone();
        named.index = Arc::from(physical);
        let mapping_path = format!("/{}/_mapping", segment(physical));
        let (status, body) = self
            .send(physical, Method::GET, &mapping_path, None)
            .await?;
        match status {
            200 => self.adopt(&named, wanted, &body).await,
            404 => {
                let body = create_body(&named, rule, &wanted);
                let path = format!("/{}", segment(physical));
                let (status, resp) = self.send(physical, Method::PUT, &path, Some(&body)).await?;
                if !(200..300).contains(&status) {
                    return Err(refused(physical, "creating it", status, &resp, None));
                }
                info!(index = %physical, table = %schema.qualified(), fields = wanted.len(), "Created the rebuild's new index.");
                Ok(())
            }
            _ => Err(refused(
                physical,
                "reading its mapping",
                status,
                &body,
                None,
            )),
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
