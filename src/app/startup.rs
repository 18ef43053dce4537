//! Start-up: reach both servers within the start-up window, check what can be checked
//! before streaming, and choose where the stream starts (the checkpoint, a failover by
//! GTID with versions above the lease, a new copy, or the binlog's end).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Error;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, TableCopy};
use crate::config::{Config, ConfigError, KeylessPolicy, SnapshotMode};
use crate::document::fetch::FetchError;
use crate::document::store::{Documents, DocumentsError};
use crate::es::EsClient;
use crate::es::SendError;
use crate::position::Version;
use crate::reader::prerequisites::{self, Finding, ServerFacts, Severity};
use crate::reader::{ReaderError, StartMode};
use crate::retry::{
    Attempt, Failure, Retry, RetryError, is_auth, mysql_privilege_error, retry_until,
};
use crate::source::MysqlSource;

/// Connects to MySQL, retrying for `connect_timeout`; auth, privilege and certificate
/// errors are final at once.
pub(crate) async fn connect_mysql(source: &MysqlSource, window: Duration) -> Result<Conn, Error> {
    let host = source.host();
    let never = CancellationToken::new();
    let deadline = Instant::now() + window;
    let retry = Retry::new(
        200,
        2_000,
        &never,
        "MySQL not reachable yet, retrying.",
        host,
    )
    .within(deadline);
    let (_, outcome) =
        retry_until(&retry, (), |()| async move {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt =
                match tokio::time::timeout(left.max(Duration::from_millis(100)), source.connect())
                    .await
                {
                    Ok(Ok(c)) => Attempt::Done(c),
                    Ok(Err(mysql_async::Error::Server(e))) if mysql_privilege_error(e.code) => {
                        Attempt::Fail(Error::Prerequisites(format!(
                            "MySQL at {host} refused the login: {} (check the user and password in \
                         mysql.url / mysql.password_file; an account created REQUIRE SSL or X509 \
                         also needs tls_mode and mysql.tls_cert_file / tls_key_file)",
                            e.message
                        )))
                    }
                    Ok(Err(e)) => match source.explain_tls(&e) {
                        Some(fatal) => Attempt::Fail(Error::Tls(fatal)),
                        None => Attempt::Again(Failure::new(e.to_string())),
                    },
                    Err(_) => Attempt::Again(Failure::new("timed out")),
                };
            ((), attempt)
        })
        .await;
    outcome.map_err(|e| unreachable("MySQL", host, window, e))
}

/// Reaches Elasticsearch, retrying for `connect_timeout`; refused credentials and
/// certificates are final at once.
pub(crate) async fn connect_es(client: &EsClient, window: Duration) -> Result<String, Error> {
    let never = CancellationToken::new();
    let deadline = Instant::now() + window;
    let host = client.display();
    let retry = Retry::new(
        200,
        2_000,
        &never,
        "Elasticsearch not reachable yet, retrying.",
        host,
    )
    .within(deadline);
    let (_, outcome) = retry_until(&retry, (), |()| async move {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt =
            match tokio::time::timeout(left.max(Duration::from_millis(100)), client.info()).await {
                Ok(Ok(v)) => Attempt::Done(v),
                // Before anything is streamed, refused credentials stop at once (see `retry`).
                Ok(Err(SendError::Status { status, body })) if is_auth(status) => {
                    Attempt::Fail(Error::Prerequisites(format!(
                        "Elasticsearch at {host} refused our credentials (HTTP {status}): {body}; \
                         check elasticsearch.username/password, api_key or bearer_token"
                    )))
                }
                Ok(Err(SendError::Certificate(fatal))) => Attempt::Fail(Error::Tls(fatal)),
                Ok(Err(e)) => Attempt::Again(Failure::new(e.to_string())),
                Err(_) => Attempt::Again(Failure::new("timed out")),
            };
        ((), attempt)
    })
    .await;
    outcome.map_err(|e| unreachable("Elasticsearch", host, window, e))
}

/// The error of a server not reached within the start-up window.
fn unreachable(what: &'static str, host: &str, window: Duration, e: RetryError<Error>) -> Error {
    match e {
        RetryError::Final(e) => e,
        RetryError::Exhausted { last, .. } | RetryError::Stopped { last } => Error::Unreachable {
            what,
            host: host.to_owned(),
            seconds: window.as_secs(),
            message: last,
        },
    }
}

/// Logs the warnings and fails on the errors among start-up findings.
fn fail_on_errors(findings: &[Finding]) -> Result<(), Error> {
    let errors: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| format!("{}: {}", f.what, f.detail))
        .collect();
    for f in findings.iter().filter(|f| f.severity == Severity::Warning) {
        warn!(check = %f.what, "{}", f.detail);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Prerequisites(format!(
            "cannot start: {}",
            errors.join("; ")
        )))
    }
}

/// The MySQL side after start-up: where to connect again, and the checked connection.
pub(crate) struct Mysql {
    /// Connection settings, for the stream and the copies.
    pub(crate) source: MysqlSource,
    /// `host:port`, for messages.
    pub(crate) host: String,
    /// The start-up connection; dropped once the start point is chosen.
    pub(crate) conn: Conn,
    /// Version and identity of the server.
    pub(crate) facts: ServerFacts,
}

/// Wraps a MySQL error of the connection to `host`.
fn connection_error(host: &str) -> impl Fn(mysql_async::Error) -> ReaderError + '_ {
    move |source| ReaderError::Connection {
        host: host.to_owned(),
        source,
    }
}

/// Reaches Elasticsearch within the start-up window.
///
/// # Errors
/// Bad client settings, refused credentials or certificate, unreachable for the window.
pub(crate) async fn open_es(config: &Config) -> Result<EsClient, Error> {
    let client = EsClient::new(&config.elasticsearch).map_err(crate::writer::WriterError::from)?;
    let es_version = connect_es(&client, config.elasticsearch.connect_timeout).await?;
    info!(host = client.display(), version = %es_version, "Connected to Elasticsearch.");
    if client.sends_credentials_in_clear() {
        warn!(
            host = client.display(),
            "Elasticsearch credentials travel over plain http; use an https URL."
        );
    }
    Ok(client)
}

/// Reaches MySQL within the start-up window and checks the server and the tables.
///
/// # Errors
/// Unreachable, refused, or a prerequisite that fails.
pub(crate) async fn open_mysql(config: &Config) -> Result<Mysql, Error> {
    let source = MysqlSource::new(&config.mysql)?;
    let host = source.host().to_owned();
    let mut conn = connect_mysql(&source, config.mysql.connect_timeout).await?;
    let facts = prerequisites::server_facts(&mut conn)
        .await
        .map_err(connection_error(&host))?;
    let findings = prerequisites::check_server(&mut conn, &facts, config.mysql.server_id)
        .await
        .map_err(connection_error(&host))?;
    fail_on_errors(&findings)?;
    // Tables that cannot be synced are found now, not at their first change.
    let tables = table_checks(config, &mut conn)
        .await
        .map_err(connection_error(&host))?;
    fail_on_errors(&tables)?;
    info!(host = %host, version = %facts.version, "Connected to MySQL.");
    Ok(Mysql {
        source,
        host,
        conn,
        facts,
    })
}

/// Where the stream starts: the saved checkpoint on the same server, by GTID on another
/// one, a new copy, or the binlog's end; a new start is saved before streaming.
///
/// # Errors
/// The checkpoint cannot be resumed (purged binlog without `when_needed`, a foreign
/// server without GTIDs), or MySQL and checkpoint-file errors.
pub(crate) async fn choose_start(
    config: &Config,
    store: &CheckpointStore,
    saved: Option<Checkpoint>,
    mysql: &mut Mysql,
) -> Result<(Checkpoint, StartMode), Error> {
    let Mysql {
        host, conn, facts, ..
    } = mysql;
    let host = host.as_str();
    Ok(match saved {
        Some(c) if c.server == facts.identity => {
            let files = prerequisites::binlog_file_sizes(conn)
                .await
                .map_err(connection_error(host))?;
            if files.iter().any(|(f, _)| *f == c.position.file) {
                info!(position = %c.position, gtid = %c.gtid, copies = c.copies.len(), "Resuming from checkpoint.");
                (c, StartMode::Position)
            } else if config.snapshot.mode == SnapshotMode::WhenNeeded {
                warn!(position = %c.position, "The checkpoint's binlog file was purged from the server; copying the tables again (snapshot.mode = \"when_needed\").");
                // Documents may carry versions up to the lease: the copy must write above them.
                let floor = c.version.max(c.version_lease);
                let c = copy_start(config, conn, &facts.identity, floor)
                    .await
                    .map_err(connection_error(host))?;
                store.save(&c)?;
                (c, StartMode::Position)
            } else {
                return Err(Error::Prerequisites(format!(
                    "the checkpoint's binlog position {} is no longer on the server (its file \
                     was purged), so the changes since then cannot be streamed; set \
                     snapshot.mode = \"when_needed\" to copy the tables again and continue, or \
                     delete {} to start over",
                    c.position,
                    store.path().display()
                )));
            }
        }
        Some(mut c) if !c.gtid.is_none() && c.server.flavor == facts.identity.flavor => {
            warn!(checkpoint_server = %c.server, server = %facts.identity, gtid = %c.gtid, "Checkpoint is from another server; resuming by GTID.");
            // Documents may carry versions up to the lease, written from transactions of the
            // old server that this one may never have received, and this server's clock may
            // be behind: continue above every version ever written, or its changes would
            // lose to those documents (409).
            if c.version_lease > c.version {
                info!(from = %c.version, to = %c.version_lease, "Versions continue above the stored lease.");
                c.version = c.version_lease;
            }
            (c, StartMode::Gtid)
        }
        Some(c) => {
            return Err(CheckpointError::ForeignServer {
                path: store.path().to_owned(),
                expected: c.server.to_string(),
                actual: facts.identity.to_string(),
            }
            .into());
        }
        None if config.snapshot.mode != SnapshotMode::Never => {
            let c = copy_start(config, conn, &facts.identity, Version(0))
                .await
                .map_err(connection_error(host))?;
            // Persist the starting point and the tables to copy now: a restart resumes both.
            store.save(&c)?;
            info!(position = %c.position, gtid = %c.gtid, tables = c.copies.len(), "No checkpoint: copying the tables, streaming from the snapshot's position.");
            (c, StartMode::Position)
        }
        None => {
            let (position, gtid) = prerequisites::binlog_head(conn, facts.identity.flavor)
                .await
                .map_err(connection_error(host))?
                .ok_or_else(|| {
                    Error::Prerequisites(
                        "the server reports no binlog position; enable --log-bin".into(),
                    )
                })?;
            let c = Checkpoint {
                server: facts.identity.clone(),
                position,
                gtid,
                version: Version(0),
                updated_at: SystemTime::now(),
                copies: Vec::new(),
                rebuilds: Vec::new(),
                version_lease: Version(0),
                tickets: 0,
                pinned: None,
            };
            // Persist the starting point now, so a restart resumes here rather than at
            // a later end of the binlog (which would skip the changes in between).
            store.save(&c)?;
            info!(position = %c.position, gtid = %c.gtid, "No checkpoint: starting at the binlog's current end.");
            (c, StartMode::Position)
        }
    })
}

/// The start of a full copy: a consistent snapshot's binlog position (where the stream
/// starts) and every table the rules match, to be copied. The version starts at the clock
/// (and above `floor`), so copied documents replace any older ones already indexed.
async fn copy_start(
    config: &Config,
    conn: &mut Conn,
    server: &crate::checkpoint::ServerIdentity,
    floor: Version,
) -> Result<Checkpoint, mysql_async::Error> {
    let (position, gtid) = crate::read_view::open(conn, server.flavor, true).await?;
    conn.query_drop("COMMIT").await?;
    let tables = crate::schema::catalog::user_tables(conn).await?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0);
    let version = floor.next(now);
    let copies = tables
        .into_iter()
        // Keyless tables the start-up checks chose to skip have nothing to copy by.
        .filter(|(db, t)| {
            config.rule_for(db, t).is_some() && !crate::schema::is_keyless(&format!("{db}.{t}"))
        })
        .map(|(db, table)| TableCopy {
            db,
            table,
            after: None,
            rows: 0,
            since: version,
            into: None,
        })
        .collect();
    Ok(Checkpoint {
        server: server.clone(),
        position,
        gtid,
        version,
        updated_at: SystemTime::now(),
        copies,
        rebuilds: Vec::new(),
        version_lease: Version(0),
        tickets: 0,
        pinned: None,
    })
}

/// One finding per configured rule and matching table: readable, and keyed.
pub(crate) async fn table_checks(
    config: &Config,
    conn: &mut Conn,
) -> Result<Vec<Finding>, mysql_async::Error> {
    let mut out = Vec::new();
    let tables = crate::schema::catalog::user_tables(conn).await?;
    for (i, rule) in config.tables.iter().enumerate() {
        let matched: Vec<&(String, String)> = tables
            .iter()
            .filter(|(d, t)| config.rule_for(d, t).is_some_and(|r| std::ptr::eq(r, rule)))
            .collect();
        if matched.is_empty() {
            out.push(finding(
                Severity::Warning,
                &format!("tables[{i}] {}", rule.pattern),
                "matches no table yet (tables created later are synced when they appear)".into(),
            ));
        }
        for (db, table) in matched {
            let what = format!("table {db}.{table}");
            let key = crate::schema::catalog::primary_key_columns(conn, db, table).await?;
            let select = conn
                .query_drop(format!(
                    "SELECT 1 FROM `{}`.`{}` LIMIT 0",
                    db.replace('`', "``"),
                    table.replace('`', "``")
                ))
                .await;
            if let Err(e) = select {
                out.push(finding(
                    Severity::Error,
                    &what,
                    format!("cannot SELECT ({e}); GRANT SELECT ON `{db}`.* to this user"),
                ));
            } else if key.is_empty() && rule.id_columns.is_empty() {
                out.push(match rule.keyless_policy() {
                    KeylessPolicy::Fail => finding(
                        Severity::Error,
                        &what,
                        format!(
                            "has no primary key: add one, or set id_columns = [\"col\", …] in \
                             tables[{i}], or leave it out with skip_tables = [\"{db}.{table}\"]"
                        ),
                    ),
                    KeylessPolicy::Skip => {
                        // Known now, so the reader does not report it again.
                        crate::schema::note_keyless(&format!("{db}.{table}"));
                        finding(
                            Severity::Warning,
                            &what,
                            format!(
                                "has no primary key and is NOT synced (tables[{i}] {}, on_keyless = \"skip\"): \
                                 add a primary key, set id_columns = [\"col\", …] in tables[{i}], \
                                 or exclude it with skip_tables = [\"{db}.{table}\"]",
                                rule.pattern
                            ),
                        )
                    }
                });
            } else {
                let id = if rule.id_columns.is_empty() {
                    key.join(", ")
                } else {
                    rule.id_columns.join(", ")
                };
                out.push(finding(
                    Severity::Ok,
                    &what,
                    format!("→ index {}, _id from ({id})", rule.index_for(db, table)),
                ));
            }
        }
    }
    Ok(out)
}

/// One line of a report.
pub(crate) fn finding(severity: Severity, what: &str, detail: String) -> Finding {
    Finding {
        severity,
        what: what.to_owned(),
        detail,
    }
}

/// Resolves the rules with relations (SPEC §9) against their tables, retrying an
/// unreachable MySQL for `connect_timeout`. `None` when no rule has relations.
///
/// # Errors
/// A rule naming a table or column that does not exist (exit 2), or MySQL unreachable.
pub(super) async fn load_documents(
    config: &Config,
    source: &MysqlSource,
    read: (crate::checkpoint::Flavor, crate::position::BinlogPosition),
) -> Result<Option<Arc<Documents>>, Error> {
    let stop = CancellationToken::new();
    let deadline = tokio::time::Instant::now() + config.mysql.connect_timeout;
    Documents::load(config, source.clone(), read, &stop, Some(deadline))
        .await
        .map_err(|e| match e {
            DocumentsError::Rule {
                source: FetchError::Plan(plan),
                rule,
                ..
            } => Error::Config(ConfigError::invalid(
                &plan.key,
                format!("{} (rule {rule})", plan.message),
            )),
            e => Error::Prerequisites(e.to_string()),
        })
}
