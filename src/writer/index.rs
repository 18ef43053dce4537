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
//! Transient failures (connection, 429, 5xx, 401) are retried with the writer's backoff
//! until they pass (or `writer.max_retries`); refusals (400 mapping conflicts, 403) are a
//! [`WriterError::Index`] naming index, field and fix.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use elasticsearch::http::Method;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::client::ServerInfo;
use super::retry::Backoff;
use super::{EsClient, WriterError};
use crate::config::{Config, TableRule};
use crate::schema::{ColumnFamily, ColumnSpec, TableSchema};

/// `_meta.created_by` of the indices binlog2es creates (and may therefore extend).
pub const CREATED_BY: &str = "binlog2es";

/// Format of `date` fields: accepts the §6 forms `2024-02-29`, `2024-02-29T13:45:01`,
/// `2024-02-29T13:45:01.123456` and `…Z` (fractions up to 9 digits are parsed; `date`
/// keeps milliseconds, `_source` keeps every digit).
pub const DATE_FORMAT: &str = "strict_date_optional_time||epoch_millis";
/// Format of `date_nanos` fields (TIMESTAMP with more than millisecond precision).
pub const DATE_NANOS_FORMAT: &str = "strict_date_optional_time_nanos||epoch_millis";
/// `ignore_above` of the `keyword` sub-field of text columns: longer values stay
/// searchable through the `text` field, and the keyword index stays small.
pub const KEYWORD_IGNORE_ABOVE: u32 = 256;
/// `ignore_above` of `flattened` JSON leaves: 8191 characters are at most 32764 UTF-8 bytes,
/// under Lucene's 32766-byte term limit, so a long JSON string never rejects its document.
pub const FLATTENED_IGNORE_ABOVE: u32 = 8191;
/// `depth_limit` of `flattened` fields: MySQL's own JSON nesting limit (the default, 20,
/// would reject deeper documents MySQL accepts).
pub const FLATTENED_DEPTH_LIMIT: u32 = 100;

/// How JSON columns are mapped on this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonField {
    /// Elasticsearch ≥ 7.3 `flattened`: every leaf searchable as a keyword, no mapping growth.
    Flattened,
    /// OpenSearch ≥ 2.7 `flat_object`: the same idea.
    FlatObject,
    /// Older servers: `object` with `enabled: false`: kept in `_source`, not searchable.
    Unindexed,
}

/// Mapping types the server offers, from `GET /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `unsigned_long` exists (Elasticsearch ≥ 7.10, OpenSearch ≥ 2.8).
    pub unsigned_long: bool,
    /// Type for JSON columns.
    pub json: JsonField,
}

impl Capabilities {
    /// What `server` supports.
    pub fn of(server: &ServerInfo) -> Self {
        if server.opensearch {
            Self {
                unsigned_long: server.at_least(2, 8),
                json: if server.at_least(2, 7) {
                    JsonField::FlatObject
                } else {
                    JsonField::Unindexed
                },
            }
        } else {
            Self {
                unsigned_long: server.at_least(7, 10),
                json: if server.at_least(7, 3) {
                    JsonField::Flattened
                } else {
                    JsonField::Unindexed
                },
            }
        }
    }

    /// The newest servers' set (Elasticsearch 8/9).
    pub const LATEST: Capabilities = Capabilities {
        unsigned_long: true,
        json: JsonField::Flattened,
    };
}

/// The field definition for one column, or `None` for a type binlog2es does not decode
/// (the field is then left to dynamic mapping).
///
/// Choices (the `_source` always keeps the exact §6 value; these decide what is searchable):
/// - TINYINT … BIGINT signed, MEDIUMINT/INT unsigned, YEAR, BIT(1..63) → `long`
///   (one type: ranges and aggregations behave alike, nothing overflows).
/// - BIGINT UNSIGNED, BIT(64) → `unsigned_long` (full 0 … 2^64-1); on servers without it,
///   `double` (values above 2^53 are rounded in the index).
/// - FLOAT → `float`, DOUBLE → `double`.
/// - DECIMAL(p,0) with p ≤ 18 → `long` (exact: 18 digits fit in 64 bits).
///   DECIMAL(p,s) with p ≤ 15 → `scaled_float` with `scaling_factor` 10^s: the scaled
///   value has at most 15 digits, below 2^53, so what is indexed is exactly MySQL's digits
///   (ranges and sums to the last decimal are exact).
///   Wider DECIMALs → `double`: about 16 significant digits in the index. `keyword` would
///   keep every digit but lose numeric ranges and sums; `scaled_float` would overflow.
/// - DATE, DATETIME(fsp) → `date` with [`DATE_FORMAT`]: millisecond precision in the index.
///   `date_nanos` would keep microseconds but only holds 1970 … 2262, and DATETIME spans
///   1000 … 9999. TIMESTAMP(0..3) → `date`; TIMESTAMP(4..6) → `date_nanos` (TIMESTAMP's
///   range, 1970 … 2038, fits). `ignore_malformed`: a date MySQL stores but the server
///   cannot parse (`ALLOW_INVALID_DATES`, e.g. `2024-02-30`) leaves the field unindexed
///   instead of rejecting the document.
/// - TIME → `keyword` (`-838:59:59` is no time of day).
/// - CHAR/VARCHAR/TEXT → `text` with a `keyword` sub-field (`ignore_above` 256);
///   BINARY/VARBINARY/BLOB (binary collation) → `binary` (base64, stored, not searchable).
/// - ENUM → `keyword`; SET → `keyword` (an array of labels is a multi-valued keyword).
/// - JSON, and MariaDB's JSON alias (a LONGTEXT with `json_valid`, `json_text`) →
///   `object` with `enabled: false`: kept in `_source`, not searchable, and every JSON
///   value (also a bare scalar) indexes. For a column that always holds objects, a rule's
///   `mapping = { col = { type = "flattened" } }` (`flat_object` on OpenSearch) makes its
///   leaves searchable.
/// - GEOMETRY → `geo_shape` (accepts every GeoJSON type), `ignore_malformed` so coordinates
///   outside longitude/latitude ranges (SRID 0 planes) keep their document.
pub fn field_mapping(col: &ColumnSpec, caps: Capabilities) -> Option<Value> {
    let long = || json!({"type": "long"});
    let unsigned_long = || {
        if caps.unsigned_long {
            json!({"type": "unsigned_long"})
        } else {
            json!({"type": "double"})
        }
    };
    let date = || json!({"type": "date", "format": DATE_FORMAT, "ignore_malformed": true});
    let fsp = || col.meta.first().copied().unwrap_or(0);
    let mapping = match col.family() {
        ColumnFamily::Integer {
            bigint: true,
            unsigned: true,
        } => unsigned_long(),
        ColumnFamily::Integer { .. } | ColumnFamily::MediumInt { .. } | ColumnFamily::Year => {
            long()
        }
        ColumnFamily::Float => json!({"type": "float"}),
        ColumnFamily::Double => json!({"type": "double"}),
        ColumnFamily::Decimal => {
            let precision = col.meta.first().copied().unwrap_or(65);
            let scale = col.meta.get(1).copied().unwrap_or(30);
            if scale == 0 && precision <= 18 {
                long()
            } else if precision <= 15 {
                json!({"type": "scaled_float", "scaling_factor": 10_u64.pow(u32::from(scale))})
            } else {
                json!({"type": "double"})
            }
        }
        ColumnFamily::Bit => {
            // Metadata: [bits % 8, bytes]; BIT(64) values reach 2^64-1.
            let bits = u32::from(col.meta.get(1).copied().unwrap_or(8)) * 8
                + u32::from(col.meta.first().copied().unwrap_or(0));
            if bits >= 64 { unsigned_long() } else { long() }
        }
        ColumnFamily::Date | ColumnFamily::DateTime { .. } => date(),
        ColumnFamily::Timestamp { fractional: true } if fsp() > 3 => json!({
            "type": "date_nanos", "format": DATE_NANOS_FORMAT, "ignore_malformed": true
        }),
        ColumnFamily::Timestamp { .. } => date(),
        ColumnFamily::Time | ColumnFamily::OldTime => json!({"type": "keyword"}),
        ColumnFamily::Enum | ColumnFamily::Set => json!({"type": "keyword"}),
        // MariaDB's JSON alias is a LONGTEXT holding JSON, written as the JSON value.
        ColumnFamily::Json | ColumnFamily::JsonText => json_mapping(),
        ColumnFamily::Geometry => json!({"type": "geo_shape", "ignore_malformed": true}),
        // The decoder writes binary columns as base64 even when flagged JSON.
        ColumnFamily::Binary => json!({"type": "binary"}),
        ColumnFamily::Text => json!({
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}}
        }),
        ColumnFamily::Vector | ColumnFamily::Unsupported => return None,
    };
    Some(mapping)
}

/// JSON columns default to an unindexed object: SPEC §5 promises that every §6
/// value indexes, and `flattened`/`flat_object` reject a column holding a bare
/// scalar or an array of scalars. [`searchable_json_mapping`] is what to put in a
/// rule's `mapping` for a column that always holds objects.
fn json_mapping() -> Value {
    json!({"type": "object", "enabled": false})
}

/// The searchable JSON mapping this server offers (`flattened` on Elasticsearch,
/// `flat_object` on OpenSearch), for columns that always hold JSON objects.
pub fn searchable_json_mapping(caps: Capabilities) -> Value {
    match caps.json {
        JsonField::Flattened => json!({
            "type": "flattened",
            "ignore_above": FLATTENED_IGNORE_ABOVE,
            "depth_limit": FLATTENED_DEPTH_LIMIT
        }),
        JsonField::FlatObject => json!({"type": "flat_object"}),
        JsonField::Unindexed => json!({"type": "object", "enabled": false}),
    }
}

/// The properties for a table: one derived definition per column, then the rule's
/// `mapping` overrides, each replacing a whole field definition (or adding a field).
pub fn properties(
    schema: &TableSchema,
    rule: &TableRule,
    caps: Capabilities,
) -> Map<String, Value> {
    let mut props = Map::new();
    for col in &schema.columns {
        if let Some(m) = field_mapping(col, caps) {
            props.insert(col.name.clone(), m);
        }
    }
    for (field, def) in &rule.mapping {
        props.insert(field.clone(), def.clone());
    }
    props
}

/// The body of `PUT /<index>` for a table: the rule's settings, our `_meta`, `properties`.
pub fn create_body(
    schema: &TableSchema,
    rule: &TableRule,
    properties: &Map<String, Value>,
) -> Value {
    let mut body = Map::new();
    if !rule.index_settings.is_empty() {
        body.insert(
            "settings".into(),
            Value::Object(rule.index_settings.clone()),
        );
    }
    body.insert(
        "mappings".into(),
        json!({
            "_meta": {
                "created_by": CREATED_BY,
                "binlog2es_version": env!("CARGO_PKG_VERSION"),
                "source_table": schema.qualified(),
            },
            "properties": properties,
        }),
    );
    Value::Object(body)
}

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

/// Whether an index template shapes a missing index.
enum TemplateCheck {
    /// No template with a mapping matches: create the index ourselves.
    None,
    /// This template's mapping will apply (and its field names).
    Matches(String, HashSet<String>),
    /// Templates cannot be read (the reason); create nothing.
    Unknown(String),
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
        }
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
        let wanted = properties(schema, rule, caps);
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
        let (status, root) = self.send(index, Method::Get, "/", None).await?;
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
        let mapping_path = format!("/{}/_mapping", encode(index));
        // Another writer may create the index between our look and our create; then we
        // look again (twice is plenty: an index does not keep appearing and vanishing).
        for _ in 0..3 {
            let (status, body) = self.send(index, Method::Get, &mapping_path, None).await?;
            match status {
                200 => return self.adopt(schema, wanted, &body).await,
                404 => {}
                403 => {
                    // A write-only account: it worked before index management existed, so
                    // keep it working, without creating or extending anything.
                    warn!(%index, error = %status_text(status, &body), "Cannot read the index mapping, so binlog2es neither creates nor extends the index; grant the `view_index_metadata`, `create_index` and `manage` privileges on it, or set create_index = false in the table's rule.");
                    self.known.insert(
                        Arc::clone(&schema.index),
                        Known {
                            ours: false,
                            fields: schema.columns.iter().map(|c| c.name.clone()).collect(),
                        },
                    );
                    return Ok(());
                }
                _ => return Err(refused(index, "reading its mapping", status, &body, None)),
            }
            match self.template_for(index).await? {
                TemplateCheck::None => {}
                TemplateCheck::Matches(template, mut fields) => {
                    info!(%index, %template, table = %schema.qualified(), "Index missing; an index template shapes it, so its mapping is used as it is.");
                    fields.extend(schema.columns.iter().map(|c| c.name.clone()));
                    self.known.insert(
                        Arc::clone(&schema.index),
                        Known {
                            ours: false,
                            fields,
                        },
                    );
                    return Ok(());
                }
                TemplateCheck::Unknown(why) => {
                    warn!(%index, error = %why, "Cannot read index templates, so binlog2es does not create the index (a template of yours might be meant to); grant the `manage_index_templates` cluster privilege, or set create_index = false in the table's rule.");
                    self.known.insert(
                        Arc::clone(&schema.index),
                        Known {
                            ours: false,
                            fields: schema.columns.iter().map(|c| c.name.clone()).collect(),
                        },
                    );
                    return Ok(());
                }
            }
            let body = create_body(schema, rule, &wanted);
            let path = format!("/{}", encode(index));
            let (status, resp) = self.send(index, Method::Put, &path, Some(&body)).await?;
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
            let path = format!("/{}/_mapping", encode(index));
            let body = json!({ "properties": missing });
            let (status, resp) = self.send(index, Method::Put, &path, Some(&body)).await?;
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

    /// Whether a template with a mapping will shape `index` when it is created.
    async fn template_for(&mut self, index: &str) -> Result<TemplateCheck, WriterError> {
        let path = format!("/_index_template/_simulate_index/{}", encode(index));
        let (status, body) = self.send(index, Method::Post, &path, None).await?;
        match status {
            200 => {
                // `{}` when no composable template matches; otherwise the resolved template.
                // A composable match (even settings-only) disables legacy templates.
                if let Some(t) = body.get("template") {
                    return Ok(match mapping_fields(&t["mappings"]) {
                        Some(fields) => {
                            TemplateCheck::Matches("(composable index template)".into(), fields)
                        }
                        None => TemplateCheck::None,
                    });
                }
            }
            401 | 403 => return Ok(TemplateCheck::Unknown(status_text(status, &body))),
            _ => {
                // No simulate API: match the composable templates' patterns ourselves.
                let (status, body) = self
                    .send(index, Method::Get, "/_index_template", None)
                    .await?;
                match status {
                    200 => {
                        if let Some(found) = composable_match(&body, index) {
                            return Ok(found);
                        }
                    }
                    404 => {}
                    _ => return Ok(TemplateCheck::Unknown(status_text(status, &body))),
                }
            }
        }
        let (status, body) = self.send(index, Method::Get, "/_template", None).await?;
        match status {
            200 => Ok(legacy_match(&body, index).unwrap_or(TemplateCheck::None)),
            404 => Ok(TemplateCheck::None),
            _ => Ok(TemplateCheck::Unknown(status_text(status, &body))),
        }
    }

    /// One request, retried while the failure is transient (connection, 429, 5xx, 401);
    /// any other answer is returned for the caller to judge.
    async fn send(
        &self,
        index: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), WriterError> {
        let w = &self.config.writer;
        let mut backoff = Backoff::new(w.retry_initial_ms, w.retry_max_ms);
        loop {
            let sent = tokio::select! {
                r = self.client.json(method, path, body) => r,
                _ = self.stop.cancelled() => {
                    return Err(WriterError::IndexInterrupted {
                        index: index.to_owned(),
                        last: "shutdown during the request".into(),
                    });
                }
            };
            let failure = match sent {
                Ok((status, v)) if status == 429 || status >= 500 || status == 401 => {
                    status_text(status, &v)
                }
                Ok(answer) => return Ok(answer),
                Err(e) => e.to_string(),
            };
            if w.max_retries > 0 && backoff.attempts() + 1 >= w.max_retries {
                return Err(WriterError::RetriesExhausted {
                    attempts: backoff.attempts() + 1,
                    last: format!("{method:?} {path}: {failure}"),
                });
            }
            let delay = backoff.next_delay();
            if failure.starts_with("HTTP 401") {
                error!(%index, error = %failure, retry_in = ?delay, "Elasticsearch refuses our credentials; fix them, retrying.");
            } else {
                warn!(%index, request = %format!("{method:?} {path}"), error = %failure, retry_in = ?delay, "Index request failed, retrying.");
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.stop.cancelled() => {
                    return Err(WriterError::IndexInterrupted { index: index.to_owned(), last: failure });
                }
            }
        }
    }
}

/// Field names of a template's mapping, or `None` when it has no mapping at all
/// (a settings-only template does not stop us from creating the index).
fn mapping_fields(mappings: &Value) -> Option<HashSet<String>> {
    let m = mappings.as_object()?;
    // Legacy templates of 7.x may still wrap the mapping in a type name (`_doc`).
    let m = match m.get("_doc").and_then(Value::as_object) {
        Some(inner) if m.len() == 1 => inner,
        _ => m,
    };
    if m.is_empty() {
        return None;
    }
    Some(
        m.get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

/// The highest-priority composable template (`GET /_index_template`) matching `index`,
/// when it brings a mapping (its own, or component templates: counted as a mapping,
/// since we cannot see inside them without more requests).
fn composable_match(body: &Value, index: &str) -> Option<TemplateCheck> {
    let best = body["index_templates"]
        .as_array()?
        .iter()
        .filter(|t| {
            t["index_template"]["index_patterns"]
                .as_array()
                .is_some_and(|ps| {
                    ps.iter()
                        .filter_map(Value::as_str)
                        .any(|p| pattern_matches(p, index))
                })
        })
        .max_by_key(|t| t["index_template"]["priority"].as_i64().unwrap_or(0))?;
    let name = best["name"].as_str().unwrap_or("?").to_owned();
    let tpl = &best["index_template"];
    let composed = tpl["composed_of"].as_array().is_some_and(|c| !c.is_empty());
    match mapping_fields(&tpl["template"]["mappings"]) {
        Some(fields) => Some(TemplateCheck::Matches(name, fields)),
        None if composed => Some(TemplateCheck::Matches(name, HashSet::new())),
        // A composable match without mapping still disables legacy templates.
        None => Some(TemplateCheck::None),
    }
}

/// A legacy template (`GET /_template`) with a mapping whose pattern matches `index`.
fn legacy_match(body: &Value, index: &str) -> Option<TemplateCheck> {
    body.as_object()?.iter().find_map(|(name, t)| {
        let matches = t["index_patterns"].as_array().is_some_and(|ps| {
            ps.iter()
                .filter_map(Value::as_str)
                .any(|p| pattern_matches(p, index))
        });
        if !matches {
            return None;
        }
        mapping_fields(&t["mappings"]).map(|f| TemplateCheck::Matches(name.clone(), f))
    })
}

/// An index pattern (`*` wildcards) against a name.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => name.strip_prefix(head).is_some_and(|tail| {
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| pattern_matches(rest, &tail[i..]))
        }),
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

/// Percent-encodes an index name for a URL path segment.
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'+' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::constants::ColumnType::{self, *};

    fn col(
        name: &str,
        column_type: ColumnType,
        meta: &[u8],
        unsigned: bool,
        collation: u16,
    ) -> ColumnSpec {
        ColumnSpec {
            name: name.into(),
            column_type,
            meta: meta.to_vec(),
            unsigned,
            collation,
            ..ColumnSpec::default()
        }
    }

    const TEXT: &str =
        r#"{"type":"text","fields":{"keyword":{"type":"keyword","ignore_above":256}}}"#;
    const DATE: &str = r#"{"type":"date","format":"strict_date_optional_time||epoch_millis","ignore_malformed":true}"#;

    #[test]
    fn column_types_map_to_field_types() {
        let cases: &[(ColumnSpec, &str)] = &[
            (
                col("a", MYSQL_TYPE_TINY, &[], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_TINY, &[], true, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_SHORT, &[], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_INT24, &[], true, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_LONG, &[], true, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_LONGLONG, &[], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_LONGLONG, &[], true, 0),
                r#"{"type":"unsigned_long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_FLOAT, &[4], false, 0),
                r#"{"type":"float"}"#,
            ),
            (
                col("a", MYSQL_TYPE_DOUBLE, &[8], false, 0),
                r#"{"type":"double"}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[10, 2], false, 0),
                r#"{"type":"scaled_float","scaling_factor":100}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[15, 15], false, 0),
                r#"{"type":"scaled_float","scaling_factor":1000000000000000}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[18, 0], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[19, 0], false, 0),
                r#"{"type":"double"}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[16, 2], false, 0),
                r#"{"type":"double"}"#,
            ),
            (
                col("a", MYSQL_TYPE_NEWDECIMAL, &[65, 30], false, 0),
                r#"{"type":"double"}"#,
            ),
            (
                col("a", MYSQL_TYPE_BIT, &[1, 0], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_BIT, &[7, 7], false, 0),
                r#"{"type":"long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_BIT, &[0, 8], false, 0),
                r#"{"type":"unsigned_long"}"#,
            ),
            (
                col("a", MYSQL_TYPE_YEAR, &[], false, 0),
                r#"{"type":"long"}"#,
            ),
            (col("a", MYSQL_TYPE_NEWDATE, &[], false, 0), DATE),
            (col("a", MYSQL_TYPE_DATE, &[], false, 0), DATE),
            (col("a", MYSQL_TYPE_DATETIME2, &[0], false, 0), DATE),
            (col("a", MYSQL_TYPE_DATETIME2, &[6], false, 0), DATE),
            (col("a", MYSQL_TYPE_TIMESTAMP2, &[3], false, 0), DATE),
            (
                col("a", MYSQL_TYPE_TIMESTAMP2, &[6], false, 0),
                r#"{"type":"date_nanos","format":"strict_date_optional_time_nanos||epoch_millis","ignore_malformed":true}"#,
            ),
            (
                col("a", MYSQL_TYPE_TIME2, &[2], false, 0),
                r#"{"type":"keyword"}"#,
            ),
            (col("a", MYSQL_TYPE_VARCHAR, &[40, 0], false, 255), TEXT),
            (col("a", MYSQL_TYPE_STRING, &[0xFE, 10], false, 8), TEXT),
            (col("a", MYSQL_TYPE_BLOB, &[2], false, 45), TEXT),
            (
                col("a", MYSQL_TYPE_BLOB, &[2], false, 63),
                r#"{"type":"binary"}"#,
            ),
            (
                col("a", MYSQL_TYPE_STRING, &[0xFE, 4], false, 63),
                r#"{"type":"binary"}"#,
            ),
            (
                col("a", MYSQL_TYPE_VARCHAR, &[10, 0], false, 63),
                r#"{"type":"binary"}"#,
            ),
            (
                col("a", MYSQL_TYPE_ENUM, &[0xF7, 1], false, 45),
                r#"{"type":"keyword"}"#,
            ),
            (
                col("a", MYSQL_TYPE_SET, &[0xF8, 1], false, 45),
                r#"{"type":"keyword"}"#,
            ),
            (
                col("a", MYSQL_TYPE_JSON, &[4], false, 0),
                r#"{"type":"object","enabled":false}"#,
            ),
            (
                col("a", MYSQL_TYPE_GEOMETRY, &[4], false, 0),
                r#"{"type":"geo_shape","ignore_malformed":true}"#,
            ),
        ];
        for (c, expected) in cases {
            let expected: Value = serde_json::from_str(expected).unwrap();
            assert_eq!(
                field_mapping(c, Capabilities::LATEST),
                Some(expected),
                "{:?} meta {:?} unsigned {} collation {}",
                c.column_type,
                c.meta,
                c.unsigned,
                c.collation
            );
        }
        let mariadb_json = ColumnSpec {
            json_text: true,
            ..col("a", MYSQL_TYPE_BLOB, &[4], false, 46)
        };
        assert_eq!(
            field_mapping(&mariadb_json, Capabilities::LATEST),
            Some(json!({"type": "object", "enabled": false}))
        );
        assert_eq!(
            field_mapping(
                &col("a", MYSQL_TYPE_VECTOR, &[], false, 0),
                Capabilities::LATEST
            ),
            None
        );
    }

    #[test]
    fn server_flavour_decides_json_and_unsigned() {
        let root = |dist: Option<&str>, number: &str| {
            let mut v = json!({"version": {"number": number}});
            if let Some(d) = dist {
                v["version"]["distribution"] = json!(d);
            }
            Capabilities::of(&ServerInfo::from_root(&v))
        };
        let json_col = col("j", MYSQL_TYPE_JSON, &[4], false, 0);
        let big = col("u", MYSQL_TYPE_LONGLONG, &[], true, 0);
        let cases = [
            (
                root(None, "8.15.1"),
                r#"{"type":"flattened","ignore_above":8191,"depth_limit":100}"#,
                "unsigned_long",
            ),
            (
                root(None, "7.17.24"),
                r#"{"type":"flattened","ignore_above":8191,"depth_limit":100}"#,
                "unsigned_long",
            ),
            (
                root(Some("opensearch"), "3.8.0"),
                r#"{"type":"flat_object"}"#,
                "unsigned_long",
            ),
            (
                root(Some("opensearch"), "2.7.0"),
                r#"{"type":"flat_object"}"#,
                "double",
            ),
            (
                root(Some("opensearch"), "2.3.0"),
                r#"{"type":"object","enabled":false}"#,
                "double",
            ),
            (
                root(None, "garbage"),
                r#"{"type":"flattened","ignore_above":8191,"depth_limit":100}"#,
                "unsigned_long",
            ),
        ];
        for (caps, json_expected, unsigned_expected) in cases {
            let expected: Value = serde_json::from_str(json_expected).unwrap();
            assert_eq!(searchable_json_mapping(caps), expected, "{caps:?}");
            assert_eq!(
                field_mapping(&json_col, caps),
                Some(json!({"type": "object", "enabled": false}))
            );
            assert_eq!(
                field_mapping(&big, caps).unwrap()["type"],
                unsigned_expected,
                "{caps:?}"
            );
        }
    }

    fn schema(columns: Vec<ColumnSpec>) -> TableSchema {
        TableSchema {
            db: "shop".into(),
            table: "orders".into(),
            columns,
            key: vec![0],
            index: "orders".into(),
            field_prefixes: Default::default(),
        }
    }

    #[test]
    fn overrides_replace_whole_definitions_and_body_carries_meta() {
        let s = schema(vec![
            col("id", MYSQL_TYPE_LONGLONG, &[], true, 0),
            col("title", MYSQL_TYPE_VARCHAR, &[40, 0], false, 255),
            col("v", MYSQL_TYPE_VECTOR, &[], false, 0),
        ]);
        let mut rule = TableRule {
            pattern: "shop.orders".into(),
            ..TableRule::default()
        };
        rule.mapping
            .insert("title".into(), json!({"type": "keyword"}));
        rule.mapping
            .insert("extra".into(), json!({"type": "keyword"}));
        rule.index_settings
            .insert("number_of_shards".into(), json!(1));
        let props = properties(&s, &rule, Capabilities::LATEST);
        let body = create_body(&s, &rule, &props);
        assert_eq!(
            body,
            json!({
                "settings": {"number_of_shards": 1},
                "mappings": {
                    "_meta": {
                        "created_by": "binlog2es",
                        "binlog2es_version": env!("CARGO_PKG_VERSION"),
                        "source_table": "shop.orders"
                    },
                    "properties": {
                        "id": {"type": "unsigned_long"},
                        "title": {"type": "keyword"},
                        "extra": {"type": "keyword"}
                    }
                }
            })
        );
        let plain = TableRule::default();
        let body = create_body(&s, &plain, &properties(&s, &plain, Capabilities::LATEST));
        assert!(body.get("settings").is_none(), "{body}");
    }

    #[test]
    fn templates_are_matched_by_pattern_priority_and_mapping() {
        let composable = json!({"index_templates": [
            {"name": "low", "index_template": {"index_patterns": ["ord*"], "priority": 1,
                "template": {"mappings": {"properties": {"x": {"type": "keyword"}}}}}},
            {"name": "settings-only", "index_template": {"index_patterns": ["orders"], "priority": 5,
                "template": {"settings": {"number_of_replicas": 0}}}},
            {"name": "components", "index_template": {"index_patterns": ["logs-*"],
                "composed_of": ["base"]}}
        ]});
        assert!(matches!(
            composable_match(&composable, "orders"),
            Some(TemplateCheck::None)
        ));
        assert!(matches!(
            composable_match(&composable, "ordinals"),
            Some(TemplateCheck::Matches(n, f)) if n == "low" && f.contains("x")
        ));
        assert!(matches!(
            composable_match(&composable, "logs-a"),
            Some(TemplateCheck::Matches(n, _)) if n == "components"
        ));
        assert!(composable_match(&composable, "users").is_none());
        let legacy = json!({
            "all": {"index_patterns": ["*"], "settings": {"number_of_shards": "1"}, "mappings": {}},
            "typed": {"index_patterns": ["shop.*"], "mappings": {"_doc": {"properties": {"y": {"type": "long"}}}}}
        });
        assert!(legacy_match(&legacy, "users").is_none());
        assert!(matches!(
            legacy_match(&legacy, "shop.orders"),
            Some(TemplateCheck::Matches(n, f)) if n == "typed" && f.contains("y")
        ));
    }

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
        assert_eq!(encode("shop.orders-2024"), "shop.orders-2024");
        assert_eq!(encode("a b/ü"), "a%20b%2F%C3%BC");
        assert!(pattern_matches("shop.*", "shop.orders"));
        assert!(!pattern_matches("shop.*", "shopx"));
    }
}
