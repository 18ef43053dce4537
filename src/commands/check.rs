//! `binlog2es check`: validates the configuration, connects to both ends and reports every
//! prerequisite as a finding, without stopping at the first problem; an index binlog2es
//! created that no longer matches its rule (SPEC §10 drift) is a warning.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use reqwest::Method;

use crate::Error;
use crate::app::startup::{connect_es, connect_mysql, finding, table_checks};
use crate::checkpoint::CheckpointStore;

use crate::config::document::RelationKind;
use crate::config::{Config, HttpConfig, TableRule, TlsMode};
use crate::document::{DocumentPlan, PlanError, RowShape};
use crate::es::path::segment;
use crate::es::{EsClient, ServerInfo};
use crate::reader::prerequisites::{self, Finding, Severity};
use crate::schema::TableSchema;
use crate::source::MysqlSource;
use crate::writer::index::{Capabilities, Drift, Mappings, index_fingerprint, rule_properties};

/// `binlog2es check`: validates, connects to both ends, reports prerequisites.
/// Returns the report lines and whether everything is fine.
///
/// # Errors
/// Configuration errors only; connection problems are findings.
pub async fn check(config: Config) -> Result<(Vec<Finding>, bool), Error> {
    config.validate()?;
    let mut out = vec![Finding {
        severity: Severity::Ok,
        what: "configuration".into(),
        detail: format!("{} table rule(s)", config.tables.len()),
    }];
    let store = CheckpointStore::new(config.checkpoint.path.clone());
    out.push(match store.ensure_writable().and_then(|_| store.load()) {
        Ok(Some(c)) => finding(
            Severity::Ok,
            "checkpoint",
            format!("at {} ({})", c.position, store.path().display()),
        ),
        Ok(None) => finding(
            Severity::Ok,
            "checkpoint",
            format!("none yet; {} is writable", store.path().display()),
        ),
        Err(e) => finding(Severity::Error, "checkpoint", e.to_string()),
    });
    let mut es = None;
    match EsClient::new(&config.elasticsearch) {
        Ok(client) => {
            out.push(
                match connect_es(&client, config.elasticsearch.connect_timeout).await {
                    Ok(v) => {
                        es = Some(client.clone());
                        finding(
                            Severity::Ok,
                            "elasticsearch",
                            format!("{v} at {}", client.display()),
                        )
                    }
                    Err(e) => finding(Severity::Error, "elasticsearch", e.to_string()),
                },
            );
            if client.sends_credentials_in_clear() {
                out.push(finding(
                    Severity::Warning,
                    "elasticsearch",
                    "credentials travel over plain http; use an https URL".into(),
                ));
            }
        }
        Err(e) => out.push(finding(Severity::Error, "elasticsearch", e.to_string())),
    }
    out.extend(url_port_findings(&config));
    if config.mysql.server_id_derived {
        out.push(finding(
            Severity::Ok,
            "mysql.server_id",
            format!(
                "{} derived from this host's name and the checkpoint path (stable across \
                 restarts); set mysql.server_id to choose one",
                config.mysql.server_id
            ),
        ));
    }
    let source = MysqlSource::new(&config.mysql)?;
    match connect_mysql(&source, config.mysql.connect_timeout).await {
        Err(e) => out.push(finding(Severity::Error, "mysql", e.to_string())),
        Ok(mut conn) => {
            out.push(tls_finding(&mut conn, config.mysql.tls_mode).await);
            match mysql_checks(&config, &mut conn).await {
                Ok(mut f) => out.append(&mut f),
                Err(e) => out.push(finding(Severity::Error, "mysql", e.to_string())),
            }
            if let Some(client) = &es {
                match drift_checks(&config, &mut conn, client).await {
                    Ok(mut f) => out.append(&mut f),
                    Err(e) => out.push(finding(Severity::Error, "mysql", e.to_string())),
                }
            }
        }
    }
    if config.http.enabled {
        out.push(http_finding(&config.http));
    }
    let ok = out.iter().all(|f| f.severity != Severity::Error);
    Ok((out, ok))
}

/// Elasticsearch URLs without a port: `http://host` means port 80 (443 for https), rarely
/// where a cluster listens (9200).
fn url_port_findings(config: &Config) -> Vec<Finding> {
    config
        .elasticsearch
        .all_urls()
        .iter()
        .filter_map(|u| {
            let url = reqwest::Url::parse(u).ok()?;
            (url.port().is_none()).then(|| {
                finding(
                    Severity::Warning,
                    "elasticsearch.url",
                    format!(
                        "{} has no port, so port {} is used; Elasticsearch listens on 9200 by \
                         default (write {}://{}:9200 if that is meant)",
                        crate::config::redact_url(u),
                        url.port_or_known_default().unwrap_or(80),
                        url.scheme(),
                        url.host_str().unwrap_or("host"),
                    ),
                )
            })
        })
        .collect()
}

/// Whether the MySQL connection is encrypted, as the server sees it.
async fn tls_finding(conn: &mut Conn, mode: TlsMode) -> Finding {
    let version: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_version'")
        .await
        .ok()
        .flatten();
    let version = version.map(|(_, v)| v).filter(|v| !v.is_empty());
    let checked = match mode {
        TlsMode::VerifyIdentity => "certificate and host name verified",
        TlsMode::VerifyCa => "certificate verified, host name not checked",
        _ => "certificate not verified",
    };
    match (version, mode) {
        (Some(v), _) => finding(Severity::Ok, "mysql tls", format!("{v}, {checked}")),
        (None, TlsMode::Disabled) => finding(
            Severity::Ok,
            "mysql tls",
            "not used (tls_mode = \"disabled\")".into(),
        ),
        (None, _) => finding(
            Severity::Warning,
            "mysql tls",
            "the server does not offer TLS: connected without it (tls_mode = \"preferred\"); \
             enable TLS on the server"
                .into(),
        ),
    }
}

/// The operations endpoint's security settings: files usable, exposure.
fn http_finding(http: &HttpConfig) -> Finding {
    match crate::telemetry::http::Access::from_config(http) {
        Err(e) => finding(Severity::Error, "http", e.to_string()),
        Ok(access) => {
            let scheme = if access.is_tls() { "https" } else { "http" };
            let auth = if access.authenticates() {
                "basic auth"
            } else {
                "no authentication"
            };
            let detail = format!("{scheme}://{}, {auth}", http.listen);
            if !http.listen.ip().is_loopback() && !access.authenticates() {
                finding(
                    Severity::Warning,
                    "http",
                    format!(
                        "{detail}: reachable from other hosts; set http.username and password_file"
                    ),
                )
            } else {
                finding(Severity::Ok, "http", detail)
            }
        }
    }
}

/// The server's prerequisites and the tables' findings.
async fn mysql_checks(
    config: &Config,
    conn: &mut Conn,
) -> Result<Vec<Finding>, mysql_async::Error> {
    let facts = prerequisites::server_facts(conn).await?;
    let mut out = prerequisites::check_server(conn, &facts, config.mysql.server_id).await?;
    out.append(&mut table_checks(config, conn).await?);
    out.append(&mut document_checks(config, conn).await?);
    Ok(out)
}

/// SPEC §9: every rule with document keys resolved against each table it takes (and, with
/// relations, the tables those name): a missing table, column or `on` column is an error,
/// a `join` whose `on` is not a key of the other table a warning.
async fn document_checks(
    config: &Config,
    conn: &mut Conn,
) -> Result<Vec<Finding>, mysql_async::Error> {
    let mut out = Vec::new();
    let tables = crate::schema::catalog::user_tables(conn).await?;
    for (db, table) in &tables {
        let Some((i, rule)) = config.rule_index_for(db, table) else {
            continue;
        };
        if !rule.shapes_documents() {
            continue;
        }
        let what = format!("document rule tables[{i}] for {db}.{table}");
        // A table that cannot be read at all is reported by the table checks.
        let Some(root) = schema_of(conn, db, table, &rule).await? else {
            continue;
        };
        if !rule.has_relations() {
            out.push(match RowShape::new(i, &rule, &root) {
                Ok(_) => finding(Severity::Ok, &what, "fields, rows and routing fit".into()),
                Err(e) => finding(Severity::Error, &what, e.to_string()),
            });
            continue;
        }
        let plan = match plan_of(conn, i, &rule, db, root).await? {
            Ok(plan) => plan,
            Err(e) => {
                out.push(finding(Severity::Error, &what, e.to_string()));
                continue;
            }
        };
        out.push(finding(
            Severity::Ok,
            &what,
            format!("{} relation(s) fit", plan.walk().len()),
        ));
        for (_, rel) in plan.walk() {
            if rel.kind != RelationKind::Join || rel.on_covers_primary_key() {
                continue;
            }
            let on: Vec<&str> = rel
                .on
                .iter()
                .filter_map(|&(_, c)| rel.table.columns.get(c).map(|c| c.name.as_str()))
                .collect();
            let unique =
                crate::schema::catalog::unique_keys(conn, &rel.table.db, &rel.table.table).await?;
            if !unique
                .iter()
                .any(|key| key.iter().all(|c| on.contains(&c.as_str())))
            {
                out.push(finding(
                    Severity::Warning,
                    &what,
                    format!(
                        "`{}.on` pairs {} of `{}`, which is not its primary key or a unique key: \
                         several rows may match, and the one with the lowest primary key is used",
                        rel.key,
                        on.join(", "),
                        rel.table.qualified()
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// The document plan of rule `i` for its root table `root` of database `db`, the relation
/// tables read from the catalog.
async fn plan_of(
    conn: &mut Conn,
    i: usize,
    rule: &TableRule,
    db: &str,
    root: TableSchema,
) -> Result<Result<DocumentPlan, PlanError>, mysql_async::Error> {
    let mut others = HashMap::new();
    for (odb, otable) in rule.relation_tables(db) {
        let schema = schema_of(conn, &odb, &otable, &TableRule::default()).await?;
        others.insert((odb, otable), schema.map(Arc::new));
    }
    Ok(DocumentPlan::resolve(
        i,
        rule,
        Arc::new(root),
        &mut |d, t| others.get(&(d.to_owned(), t.to_owned())).cloned().flatten(),
    ))
}

/// SPEC §10: every index binlog2es created for a rule that lets it manage the index,
/// compared with that rule as the daemon would at start-up: a Warning with the rebuild
/// command when it drifted.
async fn drift_checks(
    config: &Config,
    conn: &mut Conn,
    client: &EsClient,
) -> Result<Vec<Finding>, mysql_async::Error> {
    let caps = match client.json(Method::GET, "/", None).await {
        Ok((200, root)) => Capabilities::of(&ServerInfo::from_root(&root)),
        _ => Capabilities::LATEST,
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (db, table) in &crate::schema::catalog::user_tables(conn).await? {
        let Some((i, rule)) = config.rule_index_for(db, table) else {
            continue;
        };
        let index = rule.index_for(db, table);
        if !rule.create_index || !seen.insert(index.clone()) {
            continue;
        }
        let path = format!("/{}/_mapping", segment(&index));
        // A missing or unreadable index is the daemon's to create or report.
        let Ok((200, answer)) = client.json(Method::GET, &path, None).await else {
            continue;
        };
        let found = Mappings::from_answer(&answer);
        if !found.alterable() {
            continue;
        }
        let Some(root) = schema_of(conn, db, table, &rule).await? else {
            continue;
        };
        let plan = if rule.has_relations() {
            plan_of(conn, i, &rule, db, root.clone()).await?.ok()
        } else {
            None
        };
        let wanted = rule_properties(&root, &rule, caps, plan.as_ref());
        let meta = found.meta();
        let recorded = meta.get("rule_fingerprint").and_then(|v| v.as_str());
        let current = index_fingerprint(config, &rule, &index);
        let drift = Drift::of(recorded, &current, &found.properties(), &wanted);
        if !drift.is_empty() {
            let text = drift.message(&index, config.loaded_from.as_deref());
            out.push(finding(Severity::Warning, &format!("index {index}"), text));
        }
    }
    Ok(out)
}

/// The schema of `db.table` as the copy reads it; `None` when the table does not exist or
/// cannot be turned into documents (no key...).
async fn schema_of(
    conn: &mut Conn,
    db: &str,
    table: &str,
    rule: &TableRule,
) -> Result<Option<TableSchema>, mysql_async::Error> {
    match crate::scan::read_table_schema(conn, rule, db, table).await {
        Ok(schema) => Ok(Some(schema)),
        Err(crate::scan::SchemaReadError::Query { source, .. }) => Err(source),
        Err(crate::scan::SchemaReadError::Table(_)) => Ok(None),
    }
}
