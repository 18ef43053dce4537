//! The commands: `run` wires the stages together and drains them on shutdown;
//! `check` reports prerequisites; `status` prints the checkpoint.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::Error;
use crate::checkpoint::TableCopy;
use crate::checkpoint::store::age;
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, Tracker, TrackerExit};
use crate::config::{Config, KeylessPolicy, SnapshotMode};
use crate::es::{EsClient, SendError};
use crate::ordering::Router;
use crate::position::Version;
use crate::reader::connect::MysqlSource;
use crate::reader::prerequisites::{self, Finding, Severity, is_privilege_error};
use crate::reader::{Reader, ReaderSetup, StartMode, StreamState};
use crate::telemetry::metrics;
use crate::writer::dead_letter::DeadLetter;
use crate::writer::{Lane, LaneContext, WriterError};

/// Copy requests queued for the reader: each worker has at most one chunk in flight.
const COPY_QUEUE: usize = 64;

/// Tickets queued for the tracker: enough to cover many small transactions while
/// the oldest one waits for its batch, bounded so the reader feels backpressure.
const TICKET_QUEUE: usize = 16_384;
/// Requests to write the checkpoint at once; the reader waits for each, so few are queued.
const SYNC_QUEUE: usize = 16;

/// Connects to MySQL, retrying for `connect_timeout`; auth, privilege and certificate
/// errors are final at once.
async fn connect_mysql(source: &MysqlSource, window: Duration) -> Result<Conn, Error> {
    let host = source.host();
    let deadline = Instant::now() + window;
    let mut backoff = crate::retry::Backoff::new(200, 2_000);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt =
            tokio::time::timeout(left.max(Duration::from_millis(100)), source.connect()).await;
        let message = match attempt {
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(mysql_async::Error::Server(e))) if is_privilege_error(e.code) => {
                return Err(Error::Prerequisites(format!(
                    "MySQL at {host} refused the login: {} (check the user and password in \
                     mysql.url / mysql.password_file; an account created REQUIRE SSL or X509 \
                     also needs tls_mode and mysql.tls_cert_file / tls_key_file)",
                    e.message
                )));
            }
            Ok(Err(e)) => match source.explain_tls(&e) {
                Some(fatal) => return Err(Error::Tls(fatal)),
                None => e.to_string(),
            },
            Err(_) => "timed out".to_owned(),
        };
        if Instant::now() >= deadline {
            return Err(Error::Unreachable {
                what: "MySQL",
                host: host.to_owned(),
                seconds: window.as_secs(),
                message,
            });
        }
        warn!(host, error = %message, "MySQL not reachable yet, retrying.");
        tokio::time::sleep(
            backoff
                .next_delay()
                .min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}

/// Reaches Elasticsearch, retrying for `connect_timeout`.
async fn connect_es(client: &EsClient, window: Duration) -> Result<String, Error> {
    let deadline = Instant::now() + window;
    let mut backoff = crate::retry::Backoff::new(200, 2_000);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message =
            match tokio::time::timeout(left.max(Duration::from_millis(100)), client.info()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(SendError::Status {
                    status: s @ (401 | 403),
                    body,
                })) => {
                    return Err(Error::Prerequisites(format!(
                        "Elasticsearch at {} refused our credentials (HTTP {s}): {body}; check \
                     elasticsearch.username/password, api_key or bearer_token",
                        client.display()
                    )));
                }
                Ok(Err(SendError::Certificate(fatal))) => {
                    return Err(Error::Tls(fatal));
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".to_owned(),
            };
        if Instant::now() >= deadline {
            return Err(Error::Unreachable {
                what: "Elasticsearch",
                host: client.display().to_owned(),
                seconds: window.as_secs(),
                message,
            });
        }
        warn!(host = client.display(), error = %message, "Elasticsearch not reachable yet, retrying.");
        tokio::time::sleep(
            backoff
                .next_delay()
                .min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}

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

/// Runs the daemon until `shutdown` resolves or a fatal error occurs.
///
/// # Errors
/// Fatal errors; [`Error::Incomplete`] when the drain did not finish in time.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    config.validate()?;
    let config = Arc::new(config);
    let prometheus = if config.http.enabled {
        crate::telemetry::http::install_recorder()
    } else {
        None
    };
    metrics::describe();
    let progress = Arc::new(crate::telemetry::progress::Progress::default());
    let http_stop = CancellationToken::new();
    // Drop guard: the endpoint stops with `run`, whichever way it returns.
    let _http_guard = http_stop.clone().drop_guard();
    let (resync_tx, resync_rx) = mpsc::channel(16);
    let reader_resync = resync_tx.clone();
    if config.http.enabled {
        let silence = config.mysql.heartbeat_interval * 3 + Duration::from_secs(1);
        let endpoint = crate::telemetry::http::Endpoint {
            progress: Arc::clone(&progress),
            ready_max_lag: config.http.ready_max_lag,
            silence,
            resync: Some(resync_tx),
        };
        let access = crate::telemetry::http::Access::from_config(&config.http)?;
        if !config.http.listen.ip().is_loopback() && !access.authenticates() {
            warn!(listen = %config.http.listen, "The operations endpoint is reachable from other hosts without authentication; set http.username and http.password_file, or listen on 127.0.0.1.");
        }
        let (addr, _task) = crate::telemetry::http::bind(
            config.http.listen,
            access.clone(),
            prometheus,
            endpoint,
            http_stop.clone(),
        )
        .await
        .map_err(|e| Error::Prerequisites(e.to_string()))?;
        info!(%addr, tls = access.is_tls(), basic_auth = access.authenticates(), "Serving /metrics, /healthz, /readyz and /resync.");
    } else {
        drop(resync_tx);
    }
    let store = CheckpointStore::new(config.checkpoint.path.clone());
    store.ensure_writable()?;
    let saved = store.load()?;

    let client = EsClient::new(&config.elasticsearch).map_err(WriterError::from)?;
    let es_version = connect_es(&client, config.elasticsearch.connect_timeout).await?;
    info!(host = client.display(), version = %es_version, "Connected to Elasticsearch.");
    if client.sends_credentials_in_clear() {
        warn!(
            host = client.display(),
            "Elasticsearch credentials travel over plain http; use an https URL."
        );
    }

    let source = MysqlSource::new(&config.mysql)?;
    let host = source.host().to_owned();
    let mut conn = connect_mysql(&source, config.mysql.connect_timeout).await?;
    let conn_err = |source| crate::reader::ReaderError::Connection {
        host: host.clone(),
        source,
    };
    let facts = prerequisites::server_facts(&mut conn)
        .await
        .map_err(conn_err)?;
    let findings = prerequisites::check_server(&mut conn, &facts, config.mysql.server_id)
        .await
        .map_err(conn_err)?;
    fail_on_errors(&findings)?;
    // Tables that cannot be synced are found now, not at their first change.
    let tables = table_checks(&config, &mut conn).await.map_err(conn_err)?;
    fail_on_errors(&tables)?;
    info!(host = %host, version = %facts.version, "Connected to MySQL.");

    let (start, mode) = match saved {
        Some(c) if c.server == facts.identity => {
            let files = prerequisites::binlog_file_sizes(&mut conn)
                .await
                .map_err(conn_err)?;
            if files.iter().any(|(f, _)| *f == c.position.file) {
                info!(position = %c.position, gtid = %c.gtid, copies = c.copies.len(), "Resuming from checkpoint.");
                (c, StartMode::Position)
            } else if config.snapshot.mode == SnapshotMode::WhenNeeded {
                warn!(position = %c.position, "The checkpoint's binlog file was purged from the server; copying the tables again (snapshot.mode = \"when_needed\").");
                // Documents may carry versions up to the lease: the copy must write above them.
                let floor = c.version.max(c.version_lease);
                let c = copy_start(&config, &mut conn, &facts.identity, floor)
                    .await
                    .map_err(conn_err)?;
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
            let c = copy_start(&config, &mut conn, &facts.identity, Version(0))
                .await
                .map_err(conn_err)?;
            // Persist the starting point and the tables to copy now: a restart resumes both.
            store.save(&c)?;
            info!(position = %c.position, gtid = %c.gtid, tables = c.copies.len(), "No checkpoint: copying the tables, streaming from the snapshot's position.");
            (c, StartMode::Position)
        }
        None => {
            let (position, gtid) = prerequisites::binlog_head(&mut conn, facts.identity.flavor)
                .await
                .map_err(conn_err)?
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
    };
    drop(conn);

    let stop_reading = CancellationToken::new();
    let abort = CancellationToken::new();
    let mut lanes = JoinSet::new();
    let mut senders = Vec::with_capacity(config.writer.lanes);
    let indices = crate::writer::index::IndexManager::new(client.clone(), Arc::clone(&config))
        .with_stop(stop_reading.clone());
    let es_client = client.clone();
    let ctx = LaneContext {
        client: client.clone(),
        config: config.writer.clone(),
        on_rejected: config.dead_letter.on_rejected,
        dead_letter: match config.dead_letter.destination {
            crate::config::DeadLetterKind::File => DeadLetter::file(config.dead_letter_path()),
            crate::config::DeadLetterKind::Index => DeadLetter::index(
                client.clone(),
                config.dead_letter_index(),
                config.writer.retry_initial_ms,
                config.writer.retry_max_ms,
            ),
        },
        abort: abort.clone(),
    };
    for id in 0..config.writer.lanes {
        let (tx, rx) = mpsc::channel(config.writer.queue_capacity);
        senders.push(tx);
        lanes.spawn(Lane::new(id, ctx.clone()).run(rx));
    }
    let (ticket_tx, ticket_rx) = mpsc::channel(TICKET_QUEUE);
    let (ckpt_tx, ckpt_rx) = watch::channel(start.clone());
    let committed = ckpt_rx.clone();
    let ckpt_rx_for_head = ckpt_rx.clone();
    let ckpt_rx_for_copier = ckpt_rx.clone();
    // Copy workers ask the reader to merge their chunks; a few in flight is plenty.
    let (copy_tx, copy_rx) = mpsc::channel(COPY_QUEUE);
    let tracker = tokio::spawn(
        Tracker::new(start.clone())
            .with_progress(Arc::clone(&progress))
            .run(ticket_rx, ckpt_tx),
    );
    let (sync_tx, sync_rx) = mpsc::channel(SYNC_QUEUE);
    let mut persist = tokio::spawn(crate::checkpoint::tracker::persist(
        store.clone(),
        ckpt_rx,
        Duration::from_millis(config.checkpoint.interval_ms),
        sync_rx,
    ));
    let reader = Reader::new(ReaderSetup {
        config: Arc::clone(&config),
        source: source.clone(),
        host,
        identity: start.server.clone(),
        state: StreamState {
            position: start.position.clone(),
            gtid: start.gtid.clone(),
            version: start.version,
        },
        mode,
        router: Router::new(senders, config.writer.max_buffered_bytes),
        tickets: ticket_tx,
        stop: stop_reading.clone(),
        indices,
        es: es_client,
        committed,
        progress: Arc::clone(&progress),
        copies: Some(copy_rx),
        persist: sync_tx,
        leased: start.version_lease,
        resync: reader_resync,
    });
    let mut reader = tokio::spawn(reader.run());
    let mut copier = tokio::spawn(crate::snapshot::run(crate::snapshot::CopySetup {
        config: Arc::clone(&config),
        source: source.clone(),
        flavor: start.server.flavor,
        es: client.clone(),
        reader: copy_tx,
        committed: ckpt_rx_for_copier,
        pending: start.copies.clone(),
        resync: resync_rx,
        stop: stop_reading.clone(),
    }));
    if config.http.enabled {
        tokio::spawn(poll_head(
            source,
            start.server.flavor,
            ckpt_rx_for_head,
            http_stop.clone(),
        ));
    }

    // Run until a signal, a fatal reader error, or a lane failure.
    let mut failure: Option<Error> = None;
    tokio::pin!(shutdown);
    let mut reader_done = false;
    let mut copier_done = false;
    let mut persist_done = false;
    // Set when the drain gave up on queued or in-flight changes: the exit is then 1 even if
    // no transaction ticket recorded it (the reader may have stopped inside a transaction).
    let mut abandoned = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                info!("Shutting down: draining in-flight batches.");
                break;
            }
            r = &mut reader => {
                reader_done = true;
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failure = Some(e.into()),
                    Err(e) => failure = Some(Error::Internal(format!("reader task: {e}"))),
                }
                break;
            }
            Some(r) = lanes.join_next() => {
                // A lane ending cleanly only means the reader dropped its queues; the
                // reader's own result (awaited below) says why.
                if !matches!(r, Ok(Ok(()))) {
                    failure = Some(lane_failure(r));
                }
                break;
            }
            r = &mut persist, if !persist_done => {
                // The checkpoint task ends only with the tracker, or when a write failed:
                // never stream on with the position on disk frozen.
                persist_done = true;
                failure = Some(match r {
                    // The tracker stopped (a failed transaction): the lanes say why.
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e.into(),
                    Err(e) => Error::Internal(format!("checkpoint task: {e}")),
                });
                break;
            }
            r = &mut copier, if !copier_done => {
                copier_done = true;
                match r {
                    // Copies done and no re-sync can come: keep streaming.
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => failure = Some(e.into()),
                    Err(e) => failure = Some(Error::Internal(format!("copy task: {e}"))),
                }
                break;
            }
        }
    }
    stop_reading.cancel();
    // One budget for the whole stop: the reader's exit and the drain share it.
    let deadline = tokio::time::Instant::now() + config.shutdown_timeout;
    if failure.is_some() && !reader_done {
        // A lane failed for good: what the others hold cannot be committed past it.
        abort.cancel();
    }
    if !reader_done {
        // The reader watches the stop signal wherever it waits; the bound is a safety net
        // so that a stop under an outage still ends within shutdown_timeout.
        match tokio::time::timeout_at(deadline, &mut reader).await {
            Ok(Ok(Err(e))) if failure.is_none() => failure = Some(e.into()),
            Ok(Err(e)) if failure.is_none() => {
                failure = Some(Error::Internal(format!("reader task: {e}")))
            }
            Ok(_) => {}
            Err(_) => {
                warn!(timeout = ?config.shutdown_timeout, "The reader did not stop within shutdown_timeout; abandoning it.");
                reader.abort();
                abort.cancel();
                abandoned = true;
            }
        }
    }
    // Drain: lanes finish their queues, bounded by shutdown_timeout.
    let drain = async {
        while let Some(r) = lanes.join_next().await {
            if let Ok(Err(e)) = r {
                return Some(Error::Writer(e));
            }
        }
        None
    };
    match tokio::time::timeout_at(deadline, drain).await {
        Ok(Some(e)) => {
            abort.cancel();
            failure.get_or_insert(e);
        }
        Ok(None) => {}
        Err(_) => {
            warn!(timeout = ?config.shutdown_timeout, "Drain took longer than shutdown_timeout; abandoning the rest.");
            abort.cancel();
            abandoned = true;
            while lanes.join_next().await.is_some() {}
        }
    }
    let exit = tracker
        .await
        .map_err(|e| Error::Internal(format!("tracker task: {e}")))?;
    let persisted = if persist_done {
        Ok(())
    } else {
        persist
            .await
            .map_err(|e| Error::Internal(format!("checkpoint task: {e}")))?
    };
    let committed = store.load().ok().flatten();
    let at = committed
        .as_ref()
        .map(|c| c.position.to_string())
        .unwrap_or_default();
    if let Err(e) = persisted {
        failure.get_or_insert(e.into());
    }
    if let Some(e) = failure {
        error!(checkpoint = %at, "Stopped: {e}");
        return Err(e);
    }
    match exit {
        TrackerExit::Drained if !abandoned => {
            info!(checkpoint = %at, "Stopped cleanly.");
            Ok(())
        }
        TrackerExit::Drained | TrackerExit::Abandoned(_) | TrackerExit::Failed(_) => {
            Err(Error::Incomplete { position: at })
        }
    }
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
    let (position, gtid) = crate::snapshot::consistent::open(conn, server.flavor, true).await?;
    conn.query_drop("COMMIT").await?;
    let tables = crate::scan::user_tables(conn).await?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0);
    let version = floor.next(now);
    let copies = tables
        .into_iter()
        // Keyless tables the start-up checks chose to skip have nothing to copy by.
        .filter(|(db, t)| {
            config.rule_for(db, t).is_some()
                && !crate::reader::schema::is_keyless(&format!("{db}.{t}"))
        })
        .map(|(db, table)| TableCopy {
            db,
            table,
            after: None,
            rows: 0,
            since: version,
        })
        .collect();
    Ok(Checkpoint {
        server: server.clone(),
        position,
        gtid,
        version,
        updated_at: SystemTime::now(),
        copies,
        version_lease: Version(0),
        tickets: 0,
        pinned: None,
    })
}

fn lane_failure(
    r: Result<Result<(), crate::writer::WriterError>, tokio::task::JoinError>,
) -> Error {
    match r {
        Ok(Err(e)) => Error::Writer(e),
        Ok(Ok(())) => Error::Internal("a writer lane stopped unexpectedly".into()),
        Err(e) => Error::Internal(format!("writer lane: {e}")),
    }
}

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
    match EsClient::new(&config.elasticsearch) {
        Ok(client) => {
            out.push(
                match connect_es(&client, config.elasticsearch.connect_timeout).await {
                    Ok(v) => finding(
                        Severity::Ok,
                        "elasticsearch",
                        format!("{v} at {}", client.display()),
                    ),
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
    let source = MysqlSource::new(&config.mysql)?;
    match connect_mysql(&source, config.mysql.connect_timeout).await {
        Err(e) => out.push(finding(Severity::Error, "mysql", e.to_string())),
        Ok(mut conn) => {
            out.push(tls_finding(&mut conn, config.mysql.tls_mode).await);
            match mysql_checks(&config, &mut conn).await {
                Ok(mut f) => out.append(&mut f),
                Err(e) => out.push(finding(Severity::Error, "mysql", e.to_string())),
            }
        }
    }
    if config.http.enabled {
        out.push(http_finding(&config.http));
    }
    let ok = out.iter().all(|f| f.severity != Severity::Error);
    Ok((out, ok))
}

/// Whether the MySQL connection is encrypted, as the server sees it.
async fn tls_finding(conn: &mut Conn, mode: crate::config::TlsMode) -> Finding {
    use crate::config::TlsMode;
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
fn http_finding(http: &crate::config::HttpConfig) -> Finding {
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

fn finding(severity: Severity, what: &str, detail: String) -> Finding {
    Finding {
        severity,
        what: what.to_owned(),
        detail,
    }
}

async fn mysql_checks(
    config: &Config,
    conn: &mut Conn,
) -> Result<Vec<Finding>, mysql_async::Error> {
    let facts = prerequisites::server_facts(conn).await?;
    let mut out = prerequisites::check_server(conn, &facts, config.mysql.server_id).await?;
    out.append(&mut table_checks(config, conn).await?);
    Ok(out)
}

/// One finding per configured rule and matching table: readable, and keyed.
async fn table_checks(
    config: &Config,
    conn: &mut Conn,
) -> Result<Vec<Finding>, mysql_async::Error> {
    let mut out = Vec::new();
    let tables = crate::scan::user_tables(conn).await?;
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
            let key: Vec<String> = conn
                .exec(
                    "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? \
                     AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                    (db, table),
                )
                .await?;
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
                        crate::reader::schema::note_keyless(&format!("{db}.{table}"));
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

/// `binlog2es status`: the checkpoint, the server's current binlog position and
/// how far behind the checkpoint is. The server part is best effort: an
/// unreachable server is reported, not an error.
///
/// # Errors
/// Unreadable or corrupt checkpoint.
pub async fn status(config: &Config) -> Result<String, Error> {
    let store = CheckpointStore::new(config.checkpoint.path.clone());
    let mut out = match store.load()? {
        None => format!("checkpoint: none yet ({})\n", store.path().display()),
        Some(c) => {
            let mut text = format!(
                "checkpoint: {}\nserver:     {}\nposition:   {}\ngtid:       {}\nversion:    {}\nupdated:    {} ({}s ago)\n",
                store.path().display(),
                c.server,
                c.position,
                if c.gtid.is_none() {
                    "-".to_owned()
                } else {
                    c.gtid.to_string()
                },
                c.version,
                humantime::format_rfc3339_seconds(c.updated_at),
                age(c.updated_at).as_secs(),
            );
            for copy in &c.copies {
                text.push_str(&format!(
                    "copying:    {}.{} ({} rows copied{})\n",
                    copy.db,
                    copy.table,
                    copy.rows,
                    if copy.after.is_some() {
                        ", resumes after the last one"
                    } else {
                        ", not started"
                    }
                ));
            }
            text.push_str(&server_status(config, &c).await);
            text
        }
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// The server half of `status`: its binlog head and the distance to it.
async fn server_status(config: &Config, c: &Checkpoint) -> String {
    let source = match MysqlSource::new(&config.mysql) {
        Ok(s) => s,
        Err(e) => return format!("source:     {e}\n"),
    };
    let host = source.host();
    let window = config.mysql.connect_timeout.min(Duration::from_secs(5));
    let mut conn = match tokio::time::timeout(window, source.connect()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => return format!("source:     {host} unreachable: {e}\n"),
        Err(_) => return format!("source:     {host} unreachable: timed out\n"),
    };
    let head = prerequisites::binlog_head(&mut conn, c.server.flavor).await;
    let files = prerequisites::binlog_file_sizes(&mut conn)
        .await
        .unwrap_or_default();
    let _ = conn.disconnect().await;
    match head {
        Ok(Some((pos, _))) => {
            let behind = bytes_behind(&files, &c.position, &pos)
                .map(|b| format!("{b} bytes"))
                .unwrap_or_else(|| "unknown (checkpoint file not on the server)".into());
            format!("source:     {host} at {pos}\nbehind:     {behind}\n")
        }
        Ok(None) => format!("source:     {host} reports no binlog\n"),
        Err(e) => format!("source:     {host}: {e}\n"),
    }
}

/// How often the server's binlog head is polled for `binlog2es_behind_bytes`.
const HEAD_POLL: Duration = Duration::from_secs(5);

/// Polls the server's binlog head and publishes the distance to the checkpoint.
/// Best effort: a failed poll is retried at the next tick with a new connection.
async fn poll_head(
    source: MysqlSource,
    flavor: crate::checkpoint::Flavor,
    committed: watch::Receiver<Checkpoint>,
    stop: CancellationToken,
) {
    let mut conn: Option<Conn> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEAD_POLL) => {}
            _ = stop.cancelled() => return,
        }
        if conn.is_none() {
            conn = source.connect().await.ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        let head = prerequisites::binlog_head(c, flavor).await;
        let files = prerequisites::binlog_file_sizes(c).await;
        match (head, files) {
            (Ok(Some((pos, _))), Ok(files)) => {
                let at = committed.borrow().position.clone();
                if let Some(b) = bytes_behind(&files, &at, &pos) {
                    metrics::behind_bytes(b);
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(error = %e, "Polling the binlog head failed.");
                conn = None;
            }
            _ => {}
        }
    }
}

/// Bytes of binlog between `from` and `to`, using the server's file sizes.
fn bytes_behind(
    files: &[(String, u64)],
    from: &crate::position::BinlogPosition,
    to: &crate::position::BinlogPosition,
) -> Option<u64> {
    if from.file == to.file {
        return Some(to.pos.saturating_sub(from.pos));
    }
    let start = files.iter().position(|(f, _)| *f == from.file)?;
    let end = files.iter().position(|(f, _)| *f == to.file)?;
    if end < start {
        return Some(0);
    }
    let mut total = files[start].1.saturating_sub(from.pos);
    for (_, size) in &files[start + 1..end] {
        total += size;
    }
    Some(total + to.pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::position::BinlogPosition;

    #[test]
    fn distance_spans_files() {
        let files = vec![
            ("b.000001".to_owned(), 1000),
            ("b.000002".to_owned(), 500),
            ("b.000003".to_owned(), 300),
        ];
        let p = |f: &str, n| BinlogPosition::new(f, n);
        assert_eq!(
            bytes_behind(&files, &p("b.000001", 400), &p("b.000001", 900)),
            Some(500)
        );
        assert_eq!(
            bytes_behind(&files, &p("b.000001", 400), &p("b.000003", 100)),
            Some(1200)
        );
        assert_eq!(
            bytes_behind(&files, &p("x.000001", 4), &p("b.000003", 100)),
            None
        );
    }
}
