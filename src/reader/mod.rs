//! Stage 1: the replication stream.
//!
//! Connects as a replica (`mysql_async` binlog stream), follows positions and GTIDs,
//! cuts the stream into transactions, decodes the rows of synced tables into
//! [`Change`]s for the ordering stage and sends one [`TxnTicket`] per transaction
//! to the checkpoint tracker, in binlog order.
//!
//! XA transactions (see [`events`] for what each server logs): the rows of an
//! `XA PREPARE` group are decoded but held, keyed by xid, instead of routed; the
//! group's ticket marks the XA transaction open (the tracker then keeps the stored
//! checkpoint before it). The `XA COMMIT` group routes them with its own version
//! and token, so they are ordered by commit and acknowledged with it; `XA ROLLBACK`
//! drops them. A one-phase commit routes them at the end of its own group. The held
//! rows take memory until the XA transaction is resolved (README, "Guarantees").
//!
//! Invariants: every transaction, synced or not, advances the version sequence
//! (so versions do not depend on configuration); a transaction's ticket is sent
//! only after all its changes were routed; after a lost connection the stream
//! resumes at the last transaction boundary it completed, so a half-read
//! transaction is read again whole, with the same version.

pub mod ddl;
pub mod events;
pub mod prerequisites;
mod statements;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn};
use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::source::MysqlSource;

use crate::checkpoint::tracker::SyncRequest;
use crate::checkpoint::{
    AckToken, Checkpoint, Flavor, ServerIdentity, TxnGtid, TxnStatus, TxnTicket, XaMark, Xid,
};
use crate::config::{Config, KeylessPolicy};
use crate::decode::rows::decode_rows_event;
use crate::decode::{DecodeError, RowDecoder};
use crate::ordering::{Change, DocKey, Op, Origin, Router};
use crate::position::{BinlogPosition, GtidState, Version};
use crate::retry::{
    Attempt, Failure, Retry, RetryError, Verdict, mysql_privilege_error, retry_until,
};
use crate::schema::{self, SchemaError, TableSchema};
use crate::snapshot::merge::{ChunkOutcome, CopyMerge, CopyRequest, DueChunk, StreamPoint};
use crate::telemetry::metrics;
use crate::telemetry::progress::Progress;
use crate::writer::indices::Indices;
use events::QueryKind;

/// Errors of the reader stage.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// Could not connect or lost the connection.
    #[error("MySQL at {host}: {source}")]
    Connection {
        /// `host:port`.
        host: String,
        /// Driver error.
        source: mysql_async::Error,
    },
    /// No event, not even a heartbeat, for too long.
    #[error("no event or heartbeat from MySQL at {host} for {seconds}s; reconnecting")]
    Silent {
        /// `host:port`.
        host: String,
        /// Seconds waited.
        seconds: u64,
    },
    /// The server refused the binlog request or the account lacks a privilege.
    #[error("MySQL at {host} refused replication from {position}: {message}; {hint}")]
    Refused {
        /// `host:port`.
        host: String,
        /// Requested position.
        position: String,
        /// Server message.
        message: String,
        /// Fix.
        hint: &'static str,
    },
    /// A server setting makes streaming impossible.
    #[error("{0}")]
    Prerequisite(String),
    /// A row value could not be decoded.
    #[error("at binlog position {position}: {source}")]
    Decode {
        /// Event position.
        position: String,
        /// What failed.
        source: DecodeError,
    },
    /// The table's metadata is unusable.
    #[error("at binlog position {position}: {source}")]
    Schema {
        /// Event position.
        position: String,
        /// What failed.
        source: SchemaError,
    },
    /// The sink's index task ended (a stop, or a failure it reports itself).
    #[error("the index task ended")]
    IndicesGone,
    /// A malformed or unsupported event.
    #[error("at binlog position {position}: {message}")]
    Event {
        /// Event position.
        position: String,
        /// What is wrong.
        message: String,
    },
}

impl ReaderError {
    /// Whether reconnecting may help.
    pub fn is_transient(&self) -> bool {
        match self {
            // Only what the operator must fix (privileges, a purged position) is final.
            Self::Connection { source, .. } => Verdict::of_mysql(source) != Verdict::Fatal,
            Self::Silent { .. } => true,
            // A catalog query that lost its connection is worth another try.
            Self::Schema {
                source: SchemaError::Query { source, .. },
                ..
            } => !matches!(source, mysql_async::Error::Server(_)),
            _ => false,
        }
    }
}

/// Where the reader is: the end of the last complete transaction it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// Position after that transaction.
    pub position: BinlogPosition,
    /// GTID state there.
    pub gtid: GtidState,
    /// That transaction's version.
    pub version: Version,
}

/// How to request the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// By file and offset (same server).
    Position,
    /// By GTID state (after a failover to another server).
    Gtid,
}

/// A transaction being read.
struct OpenTxn {
    version: Version,
    timestamp: u32,
    gtid: TxnGtid,
    by_begin: bool,
    ack: Option<(AckToken, oneshot::Receiver<TxnStatus>)>,
    /// Rows held instead of routed: `Some` in the group of an XA transaction.
    held: Option<Vec<HeldRows>>,
    /// The XA transaction this group prepares or resolves.
    xa: Option<XaMark>,
}

/// The decoded changes of one rows event, held until their XA transaction commits.
struct HeldRows {
    schema: Arc<TableSchema>,
    origin: Origin,
    changes: Vec<(String, Op)>,
}

impl OpenTxn {
    fn token(&mut self) -> AckToken {
        match &self.ack {
            Some((t, _)) => t.clone(),
            None => {
                let (t, rx) = AckToken::open();
                let share = t.clone();
                self.ack = Some((t, rx));
                share
            }
        }
    }
}

/// The replication reader.
pub struct Reader {
    config: Arc<Config>,
    source: MysqlSource,
    host: String,
    identity: Arc<ServerIdentity>,
    state: StreamState,
    mode: StartMode,
    router: Router,
    tickets: mpsc::Sender<TxnTicket>,
    stop: CancellationToken,
    indices: Indices,
    committed: watch::Receiver<Checkpoint>,
    progress: Arc<Progress>,
    tables: HashMap<u64, (TableMapEvent<'static>, Option<Arc<TableSchema>>)>,
    catalog: Option<Conn>,
    decoder: RowDecoder,
    file: Arc<str>,
    outer_end: u64,
    txn: Option<OpenTxn>,
    /// Set once a stream was established since the last reconnect.
    streamed: bool,
    /// The copies' windows and chunks waiting for their place in the stream.
    copies: CopyMerge,
    /// Origin of copied documents in dead-letter entries.
    copy_origin: Arc<str>,
    /// Asks the persist task to write the checkpoint now (durable DDL, version lease).
    persist: mpsc::Sender<SyncRequest>,
    /// Tables the last statement asks to copy again (see [`Reader::after_ddl`]).
    recopy: Vec<ddl::TableName>,
    /// Where those copies are requested.
    resync: mpsc::Sender<crate::snapshot::ResyncRequest>,
    /// Highest version the stored lease covers: no change above it is routed before
    /// the lease is extended on disk.
    leased: Version,
    /// Tickets sent to the tracker so far (compared with `Checkpoint::tickets`).
    sent: u64,
    /// Rows of prepared XA transactions, until their COMMIT or ROLLBACK is read.
    prepared: HashMap<Xid, Vec<HeldRows>>,
}

/// Inputs of a reader.
pub struct ReaderSetup {
    /// Configuration.
    pub config: Arc<Config>,
    /// Where and how to connect.
    pub source: MysqlSource,
    /// `host:port` for messages.
    pub host: String,
    /// Identity of the server we verified at start-up.
    pub identity: ServerIdentity,
    /// Where to start.
    pub state: StreamState,
    /// How to start.
    pub mode: StartMode,
    /// Lane router.
    pub router: Router,
    /// Tracker queue.
    pub tickets: mpsc::Sender<TxnTicket>,
    /// Stops reading.
    pub stop: CancellationToken,
    /// The sink's index task: prepares indices, deletes a table's documents.
    pub indices: Indices,
    /// The committed checkpoint, to wait for earlier changes before a TRUNCATE.
    pub committed: watch::Receiver<Checkpoint>,
    /// Shared progress for lag and readiness.
    pub progress: Arc<Progress>,
    /// Requests of the copy workers; `None` when nothing is ever copied.
    pub copies: Option<mpsc::Receiver<CopyRequest>>,
    /// The persist task's request queue.
    pub persist: mpsc::Sender<SyncRequest>,
    /// The version lease stored in the checkpoint at start.
    pub leased: Version,
    /// The copy coordinator, for tables a statement changed without row events.
    pub resync: mpsc::Sender<crate::snapshot::ResyncRequest>,
}

impl Reader {
    /// A reader that will start at `setup.state`.
    pub fn new(setup: ReaderSetup) -> Self {
        let file: Arc<str> = setup.state.position.file.as_str().into();
        Self {
            config: setup.config,
            source: setup.source,
            host: setup.host,
            identity: Arc::new(setup.identity),
            outer_end: setup.state.position.pos,
            state: setup.state,
            mode: setup.mode,
            router: setup.router,
            tickets: setup.tickets,
            stop: setup.stop,
            indices: setup.indices,
            committed: setup.committed,
            progress: setup.progress,
            tables: HashMap::new(),
            catalog: None,
            decoder: RowDecoder::default(),
            file,
            txn: None,
            streamed: false,
            copies: CopyMerge::new(setup.copies),
            copy_origin: "snapshot".into(),
            persist: setup.persist,
            leased: setup.leased,
            sent: 0,
            recopy: Vec::new(),
            resync: setup.resync,
            prepared: HashMap::new(),
        }
    }

    /// Streams until `stop` fires (Ok) or a fatal error; reconnects on transient ones.
    ///
    /// # Errors
    /// A fatal reader error (privileges, purged position, undecodable row …).
    #[tracing::instrument(name = "reader", skip_all, fields(stage = "reader"))]
    pub async fn run(self) -> Result<(), ReaderError> {
        let (stop, host) = (self.stop.clone(), self.host.clone());
        let mut reader = self;
        // A stream that was established and then lost ends one round of retries, so each
        // outage starts its backoff afresh; the loss itself is the round's first failure.
        let mut lost: Option<Failure> = None;
        loop {
            let retry = Retry::new(
                200,
                30_000,
                &stop,
                "Replication stream lost, reconnecting.",
                &host,
            );
            let ((r, _), outcome) = retry_until(&retry, (reader, lost.take()), |(mut r, lost)| {
                async move {
                    if let Some(failure) = lost {
                        return ((r, None), Attempt::Again(failure));
                    }
                    let result = r.stream_once().await;
                    let established = r.after_stream();
                    let attempt = match result {
                        // The index task reports its own failure; a stop is a stop.
                        Ok(()) | Err(ReaderError::IndicesGone) => Attempt::Done(None),
                        Err(e) if e.is_transient() => {
                            let failure =
                                Failure::new(format!("{e} (resuming at {})", r.state.position));
                            if established {
                                Attempt::Done(Some(failure))
                            } else {
                                Attempt::Again(failure)
                            }
                        }
                        Err(e) => Attempt::Fail(e),
                    };
                    ((r, None), attempt)
                }
            })
            .await;
            reader = r;
            match outcome {
                Ok(Some(failure)) => lost = Some(failure),
                Ok(None) | Err(RetryError::Stopped { .. } | RetryError::Exhausted { .. }) => {
                    return Ok(());
                }
                Err(RetryError::Final(e)) => return Err(e),
            }
        }
    }

    /// Resets what a lost stream leaves behind; whether a stream had been established.
    fn after_stream(&mut self) -> bool {
        self.progress.set_streaming(false);
        // The catalog connection may have died with the stream's.
        self.catalog = None;
        // A half-read transaction is read again whole after reconnecting.
        self.txn = None;
        std::mem::take(&mut self.streamed)
    }

    fn conn_err(&self, source: mysql_async::Error) -> ReaderError {
        ReaderError::Connection {
            host: self.host.clone(),
            source,
        }
    }

    async fn stream_once(&mut self) -> Result<(), ReaderError> {
        let mut conn = tokio::select! {
            c = self.source.connect() => c.map_err(|e| self.conn_err(e))?,
            _ = self.stop.cancelled() => return Ok(()),
        };
        let facts = prerequisites::server_facts(&mut conn)
            .await
            .map_err(|e| self.conn_err(e))?;
        if facts.identity != *self.identity {
            if self.state.gtid.is_none() || facts.identity.flavor != self.identity.flavor {
                return Err(ReaderError::Prerequisite(format!(
                    "the server at {} is now `{}`, not `{}` as before, and without GTIDs the \
                     position {} cannot be carried over; enable GTIDs, or delete the checkpoint to start over",
                    self.host, facts.identity, self.identity, self.state.position
                )));
            }
            warn!(from = %self.identity, to = %facts.identity, gtid = %self.state.gtid, "Server changed (failover); resuming by GTID.");
            self.identity = Arc::new(facts.identity.clone());
            self.mode = StartMode::Gtid;
            // Changes of a transaction lost with the old server may already be written
            // with versions up to the lease: continue above them (see `run`).
            self.state.version = self.state.version.max(self.leased);
            self.tables.clear();
            // Snapshot positions of the old server mean nothing on the new one.
            self.copies.invalidate_all();
            self.between(None).await;
        }
        let heartbeat = self.config.mysql.heartbeat_interval;
        let ns = heartbeat.as_nanos().min(u128::from(u64::MAX));
        let mut setup = vec![
            format!("SET @master_heartbeat_period = {ns}"),
            format!("SET @source_heartbeat_period = {ns}"),
            // mysql_async announces checksum support under the old name; MySQL 8.4
            // reads the new one.
            "SET @source_binlog_checksum = 'ALL'".to_owned(),
        ];
        if facts.identity.flavor == Flavor::Mariadb {
            // 4 = MARIA_SLAVE_CAPABILITY_GTID: send GTID events instead of dummies.
            setup.push("SET @mariadb_slave_capability = 4".into());
            if self.mode == StartMode::Gtid {
                setup.push(format!("SET @slave_connect_state = '{}'", self.state.gtid));
                setup.push("SET @slave_gtid_strict_mode = 1".into());
                setup.push("SET @slave_gtid_ignore_duplicates = 0".into());
            }
        }
        for q in setup {
            conn.query_drop(q).await.map_err(|e| self.conn_err(e))?;
        }
        let file = self.state.position.file.clone();
        let mut request = BinlogStreamRequest::new(self.config.mysql.server_id);
        match (self.mode, facts.identity.flavor) {
            (StartMode::Position, _) => {
                request = request
                    .with_filename(file.as_bytes())
                    .with_pos(self.state.position.pos);
            }
            (StartMode::Gtid, Flavor::Mariadb) => {
                // The connect state set above decides where the server starts.
                request = request.with_filename(b"").with_pos(4);
            }
            (StartMode::Gtid, Flavor::Mysql) => {
                let sids = mysql_sids(&self.state.gtid)?;
                request = request.with_gtid().with_gtid_set(sids).with_pos(4);
            }
        }
        let mut stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| self.refused_or_conn(e))?;
        info!(position = %self.state.position, gtid = %self.state.gtid, mode = ?self.mode, "Streaming binlog.");
        self.progress.set_streaming(true);
        self.streamed = true;
        let silence = heartbeat * 3 + Duration::from_secs(1);
        loop {
            let between = self.txn.is_none();
            let next = tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Ok(()),
                req = self.copies.request(), if between => {
                    self.between(Some(req)).await;
                    continue;
                }
                n = tokio::time::timeout(silence, stream.next()) => n,
            };
            let event = match next {
                Err(_) => {
                    return Err(ReaderError::Silent {
                        host: self.host.clone(),
                        seconds: silence.as_secs(),
                    });
                }
                Ok(None) => {
                    return Err(self.conn_err(mysql_async::Error::Io(
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "binlog stream ended",
                        )
                        .into(),
                    )));
                }
                Ok(Some(Err(e))) => return Err(self.refused_or_conn(e)),
                Ok(Some(Ok(ev))) => ev,
            };
            self.progress.touch();
            self.handle(&event).await?;
            // Only when a chunk waits: the check costs a position per event otherwise.
            if self.txn.is_none() && self.copies.has_pending() {
                self.between(None).await;
            }
        }
    }

    /// Where the stream is between transactions: the end of the last event read.
    fn reading_position(&self) -> BinlogPosition {
        BinlogPosition::new(self.file.as_ref(), self.outer_end)
    }

    /// Between two transactions: hands the copy side a worker's request, if any, and
    /// routes the copied chunks now due, each as a ticket of its own at the current
    /// position and version (see [`crate::snapshot::merge`]).
    async fn between(&mut self, request: Option<CopyRequest>) {
        if self.txn.is_some() && request.is_none() {
            return;
        }
        let point = StreamPoint {
            position: self.reading_position(),
            version: self.state.version,
            tickets: self.sent,
        };
        for chunk in self.copies.between(request, &point) {
            if !self.route_chunk(chunk).await {
                return;
            }
        }
    }

    /// Routes one copied chunk; `false` when stopped first.
    async fn route_chunk(&mut self, chunk: DueChunk) -> bool {
        let DueChunk {
            index,
            docs,
            mark,
            skipped,
            reply,
        } = chunk;
        let routed = docs.len();
        let (token, done) = AckToken::open();
        let origin = Origin {
            file: Arc::clone(&self.copy_origin),
            pos: 0,
        };
        for (id, op) in docs {
            let change = Change {
                key: DocKey {
                    index: Arc::clone(&index),
                    id,
                },
                op,
                version: self.state.version,
                origin: origin.clone(),
                ack: token.clone(),
            };
            if !self.route_change(change).await {
                return false;
            }
        }
        token.resolve(TxnStatus::Delivered);
        let ticket = TxnTicket {
            end: self.state.position.clone(),
            gtid: TxnGtid::None,
            version: self.state.version,
            done: Some(done),
            server: Arc::clone(&self.identity),
            timestamp: 0,
            copy: mark,
            xa: None,
        };
        self.send_ticket(ticket).await;
        let _ = reply.send(ChunkOutcome::Emitted { routed, skipped });
        true
    }

    fn refused_or_conn(&self, e: mysql_async::Error) -> ReaderError {
        if let mysql_async::Error::Server(se) = &e {
            let hint = if se.code == 1236 {
                "the position was probably purged from the server (PURGE BINARY LOGS, \
                 expire_logs_days); delete the checkpoint to start again at the current end"
            } else if mysql_privilege_error(se.code) {
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the binlog2es user \
                 (MariaDB: REPLICATION SLAVE, BINLOG MONITOR)"
            } else {
                return self.conn_err(e);
            };
            return ReaderError::Refused {
                host: self.host.clone(),
                position: self.state.position.to_string(),
                message: se.message.clone(),
                hint,
            };
        }
        self.conn_err(e)
    }

    fn here(&self) -> String {
        format!("{}:{}", self.file, self.outer_end)
    }

    fn event_err(&self, message: impl Into<String>) -> ReaderError {
        ReaderError::Event {
            position: self.here(),
            message: message.into(),
        }
    }

    async fn handle(&mut self, event: &Event) -> Result<(), ReaderError> {
        let header = event.header();
        let kind = header.event_type_raw();
        let log_pos = u64::from(header.log_pos());
        if log_pos != 0 {
            self.outer_end = log_pos;
        }
        const ROTATE: u8 = EventType::ROTATE_EVENT as u8;
        const QUERY: u8 = EventType::QUERY_EVENT as u8;
        const XID: u8 = EventType::XID_EVENT as u8;
        const GTID: u8 = EventType::GTID_EVENT as u8;
        const GTID_TAGGED: u8 = EventType::GTID_TAGGED_LOG_EVENT as u8;
        const ANON_GTID: u8 = EventType::ANONYMOUS_GTID_EVENT as u8;
        const TABLE_MAP: u8 = EventType::TABLE_MAP_EVENT as u8;
        const PAYLOAD: u8 = EventType::TRANSACTION_PAYLOAD_EVENT as u8;
        const XA_PREPARE: u8 = EventType::XA_PREPARE_LOG_EVENT as u8;
        match kind {
            ROTATE => {
                if let Ok(Some(EventData::RotateEvent(r))) = event.read_data() {
                    self.file =
                        events::rotate_file_name(r.name_raw(), &self.state.position.file).into();
                    self.outer_end = r.position();
                    debug!(file = %self.file, pos = self.outer_end, "Rotate.");
                }
            }
            events::MARIADB_GTID => {
                let g = events::parse_mariadb_gtid(event.data(), header.server_id())
                    .ok_or_else(|| self.event_err("malformed MariaDB GTID event"))?;
                self.begin(header.timestamp(), TxnGtid::MariaDb(g.gtid), !g.standalone)
                    .await;
                if g.prepared_xa
                    && let Some(t) = &mut self.txn
                {
                    t.held = Some(Vec::new());
                }
            }
            GTID | GTID_TAGGED => {
                let gtid = match event.read_data() {
                    Ok(Some(EventData::GtidEvent(g))) => {
                        let sid = format_uuid(&g.sid());
                        let sid = match g.tag() {
                            Some(tag) => format!("{sid}:{}", tag.as_str().to_ascii_lowercase()),
                            None => sid,
                        };
                        TxnGtid::MySql { sid, gno: g.gno() }
                    }
                    _ => return Err(self.event_err("malformed GTID event")),
                };
                self.begin(header.timestamp(), gtid, false).await;
            }
            ANON_GTID => self.begin(header.timestamp(), TxnGtid::None, false).await,
            QUERY => {
                let Ok(Some(EventData::QueryEvent(q))) = event.read_data() else {
                    return Err(self.event_err("malformed query event"));
                };
                match events::classify_query(&q.query()) {
                    QueryKind::Begin => {
                        if let Some(t) = &mut self.txn {
                            t.by_begin = true;
                        } else {
                            self.begin(header.timestamp(), TxnGtid::None, true).await;
                        }
                    }
                    QueryKind::Commit | QueryKind::Rollback => self.commit().await,
                    QueryKind::XaStart => {
                        // MySQL: the XA transaction's rows follow, up to XA_PREPARE.
                        if self.txn.is_none() {
                            self.begin(header.timestamp(), TxnGtid::None, true).await;
                        }
                        if let Some(t) = &mut self.txn {
                            t.by_begin = true;
                            t.held = Some(Vec::new());
                        }
                    }
                    QueryKind::XaEnd => {}
                    QueryKind::XaCommit { xid, one_phase } => {
                        self.on_xa_end(header.timestamp(), xid, one_phase, true)
                            .await?;
                    }
                    QueryKind::XaRollback(xid) => {
                        self.on_xa_end(header.timestamp(), xid, false, false)
                            .await?;
                    }
                    QueryKind::XaUnreadable => {
                        return Err(self.event_err(format!(
                            "cannot read the XA transaction id in `{}`",
                            q.query()
                        )));
                    }
                    QueryKind::Other => {
                        // DDL may change any table's shape: rebuild schemas from the next table maps.
                        self.tables.clear();
                        debug!(query = %q.query(), "Statement event.");
                        let acted = match ddl::parse(&q.query(), &q.schema()) {
                            None => false,
                            Some(ddl) => match self.on_ddl(ddl).await? {
                                Some(acted) => acted,
                                None => {
                                    // Stopped while waiting: the statement is read again next time.
                                    self.txn = None;
                                    return Ok(());
                                }
                            },
                        };
                        if acted {
                            if self.txn.is_none() {
                                self.begin(header.timestamp(), TxnGtid::None, false).await;
                            }
                            self.send_recopy_marks().await;
                        }
                        match &self.txn {
                            Some(t) if t.by_begin => {}
                            Some(_) => self.commit().await,
                            None => {
                                self.begin(header.timestamp(), TxnGtid::None, false).await;
                                self.commit().await;
                            }
                        }
                        if acted && self.txn.is_none() && !self.after_ddl().await {
                            return Ok(());
                        }
                    }
                }
            }
            XID => self.commit().await,
            XA_PREPARE => {
                let (one_phase, xid) = events::parse_xa_prepare(event.data())
                    .ok_or_else(|| self.event_err("malformed XA_PREPARE event"))?;
                if one_phase {
                    // MySQL `XA COMMIT xid ONE PHASE`: the rows commit with this group.
                    self.on_xa_end(header.timestamp(), xid, true, true).await?;
                } else {
                    self.on_xa_prepare(header.timestamp(), xid).await;
                }
            }
            TABLE_MAP => {
                let tme: TableMapEvent<'_> = event
                    .read_event()
                    .map_err(|e| self.event_err(format!("malformed table map: {e}")))?;
                self.on_table_map(tme.into_owned()).await?;
            }
            PAYLOAD => events::check_payload(event).map_err(|e| self.event_err(e.to_string()))?,
            k if events::MARIADB_COMPRESSED.contains(&k) => {
                return Err(self.event_err(
                    "compressed binlog events (MariaDB log_bin_compress=ON) are not supported; \
                     set log_bin_compress=OFF",
                ));
            }
            _ => {
                if let Ok(Some(EventData::RowsEvent(rows))) = event.read_data() {
                    self.on_rows(&rows, header.timestamp()).await?;
                }
            }
        }
        Ok(())
    }

    /// Opens a transaction. `grouped` means it ends only at XID/COMMIT (a BEGIN, or
    /// a MariaDB GTID without the standalone flag); otherwise a statement ends it.
    async fn begin(&mut self, timestamp: u32, gtid: TxnGtid, grouped: bool) {
        if self.txn.is_some() {
            // No end event we recognise: close it so its ticket still reaches the
            // tracker and the checkpoint cannot skip its changes.
            warn!(position = %self.here(), "Transaction start inside an open transaction; closing the previous one.");
            self.commit().await;
        }
        self.txn = Some(OpenTxn {
            version: self.state.version.next(timestamp),
            timestamp,
            gtid,
            by_begin: grouped,
            ack: None,
            held: None,
            xa: None,
        });
    }

    async fn commit(&mut self) {
        let Some(txn) = self.txn.take() else { return };
        let end = BinlogPosition::new(self.file.as_ref(), self.outer_end);
        let done = txn.ack.map(|(token, rx)| {
            token.resolve(TxnStatus::Delivered);
            rx
        });
        self.state.position = end.clone();
        self.state.version = txn.version;
        // The position is now one of the connected server's: reconnect by it.
        self.mode = StartMode::Position;
        match &txn.gtid {
            TxnGtid::None => {}
            TxnGtid::MariaDb(g) => self.state.gtid.add_mariadb(*g),
            TxnGtid::MySql { sid, gno } => self.state.gtid.add_mysql(sid, *gno),
        }
        let ticket = TxnTicket {
            end,
            gtid: txn.gtid,
            version: txn.version,
            done,
            server: Arc::clone(&self.identity),
            timestamp: txn.timestamp,
            copy: None,
            xa: txn.xa,
        };
        self.progress.read(txn.version.0, txn.timestamp);
        self.send_ticket(ticket).await;
    }

    /// Sends a ticket to the tracker unless stopped first. The tracker only goes away at
    /// shutdown; a ticket not sent then simply stays behind the checkpoint.
    async fn send_ticket(&mut self, ticket: TxnTicket) {
        // Stop first: once it is seen, no later ticket is sent either, so the tracker
        // never gets a ticket whose predecessor was dropped.
        let stop = self.stop.clone();
        tokio::select! {
            biased;
            _ = stop.cancelled() => {}
            r = self.tickets.send(ticket) => if r.is_ok() {
                self.sent += 1;
            },
        }
    }

    /// Routes one change to its lane, first extending the stored version lease when the
    /// change's version is past it. `false` when stopped, or when the writer or the
    /// persist task is gone (the stop is then signalled and the run loop reports why).
    async fn route_change(&mut self, change: Change) -> bool {
        if change.version > self.leased {
            let lease = change.version.lease();
            if !self.sync(0, lease).await {
                return false;
            }
            self.leased = lease;
        }
        let stop = self.stop.clone();
        tokio::select! {
            biased;
            _ = stop.cancelled() => false,
            r = self.router.route(change) => {
                if r.is_err() {
                    self.stop.cancel();
                    return false;
                }
                true
            }
        }
    }

    /// Has the checkpoint written once `tickets` tickets are committed, with a version
    /// lease of at least `lease`. `false` when stopped first or the persist task is gone.
    async fn sync(&mut self, tickets: u64, lease: Version) -> bool {
        let (done, answered) = oneshot::channel();
        let request = SyncRequest {
            tickets,
            lease,
            done,
        };
        let persist = self.persist.clone();
        let stop = self.stop.clone();
        let ok = tokio::select! {
            biased;
            _ = stop.cancelled() => return false,
            ok = async { persist.send(request).await.is_ok() && answered.await.is_ok() } => ok,
        };
        if !ok {
            self.stop.cancel();
        }
        ok
    }

    async fn on_table_map(&mut self, tme: TableMapEvent<'static>) -> Result<(), ReaderError> {
        let id = tme.table_id();
        if let Some((known, _)) = self.tables.get(&id)
            && *known == tme
        {
            return Ok(());
        }
        let db = tme.database_name().into_owned();
        let table = tme.table_name().into_owned();
        let Some(rule) = self.config.rule_for(&db, &table).cloned() else {
            self.tables.insert(id, (tme, None));
            return Ok(());
        };
        let position = self.here();
        let serr = |source| ReaderError::Schema {
            position: position.clone(),
            source,
        };
        let mut map = schema::read_table_map(&tme, crate::decode::decode_label).map_err(serr)?;
        if !map.has_names
            || (map.key.is_empty() && rule.id_columns.is_empty())
            || map.lacks_labels()
        {
            let catalog = self.catalog_conn().await?;
            let cols = schema::read_catalog(catalog, &db, &table)
                .await
                .map_err(serr)?;
            schema::merge_catalog(&db, &table, &mut map, &cols).map_err(serr)?;
        }
        // MariaDB's JSON is a LONGTEXT with a json_valid() check; only the catalog tells.
        if self.identity.flavor == Flavor::Mariadb && map.has_text_blobs() {
            let catalog = self.catalog_conn().await?;
            let json_columns = schema::read_json_columns(catalog, &db, &table)
                .await
                .map_err(serr)?;
            schema::mark_json_columns(&mut map, &json_columns);
        }
        let schema = match schema::build(&db, &table, &rule, map) {
            Ok(schema) => schema,
            // SPEC §2.5: a keyless table the rule may skip does not stop the others.
            Err(SchemaError::NoKey { table: name })
                if rule.keyless_policy() == KeylessPolicy::Skip =>
            {
                if schema::note_keyless(&name) {
                    warn!(table = %name, position = %position, rule = %rule.pattern,
                        "Table has no primary key and is NOT synced: add a primary key (then `binlog2es resync --table {name}`), set id_columns in its [[tables]] rule, or exclude it with skip_tables; on_keyless = \"fail\" stops instead.");
                }
                self.tables.insert(id, (tme, None));
                return Ok(());
            }
            Err(e) => return Err(serr(e)),
        };
        schema::clear_keyless(&schema.qualified());
        let schema = Arc::new(schema);
        let at = format!("binlog position {}", self.here());
        let prepared = tokio::select! {
            p = self.indices.prepare(Arc::clone(&schema), at) => p,
            _ = self.stop.cancelled() => None,
        };
        prepared.ok_or(ReaderError::IndicesGone)?;
        debug!(table = %schema.qualified(), index = %schema.index, "Table map.");
        self.tables.insert(id, (tme, Some(schema)));
        Ok(())
    }

    async fn catalog_conn(&mut self) -> Result<&mut Conn, ReaderError> {
        if self.catalog.is_none() {
            let c = self.source.connect().await.map_err(|e| self.conn_err(e))?;
            self.catalog = Some(c);
        }
        self.catalog
            .as_mut()
            .ok_or_else(|| ReaderError::Prerequisite("catalog connection unavailable".into()))
    }

    async fn on_rows(
        &mut self,
        rows: &RowsEventData<'_>,
        timestamp: u32,
    ) -> Result<(), ReaderError> {
        let id = rows.table_id();
        let Some((_, Some(schema))) = self.tables.get(&id) else {
            return Ok(());
        };
        let schema = Arc::clone(schema);
        if self.txn.is_none() {
            self.begin(timestamp, TxnGtid::None, true).await;
        }
        let position = self.here();
        let origin = Origin {
            file: Arc::clone(&self.file),
            pos: self.outer_end,
        };
        let op_name = match rows {
            RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => "insert",
            RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => "delete",
            _ => "update",
        };
        let out: Vec<(String, Op)> = match decode_rows_event(rows, &schema, &mut self.decoder) {
            Ok(changes) => changes.into_iter().map(|c| (c.id, c.op)).collect(),
            // A missing image is a malformed event, not a bad value: reported at the event.
            Err(DecodeError::MissingImage { message, .. }) => return Err(self.event_err(message)),
            Err(source) => return Err(ReaderError::Decode { position, source }),
        };
        metrics::changes(op_name, out.len() as u64);
        let rows = HeldRows {
            schema,
            origin,
            changes: out,
        };
        match self.txn.as_mut().and_then(|t| t.held.as_mut()) {
            // An XA transaction's rows count once it commits.
            Some(held) => {
                held.push(rows);
                Ok(())
            }
            None => self.route_rows(rows).await,
        }
    }

    /// Routes decoded rows with the open transaction's version and token.
    async fn route_rows(&mut self, rows: HeldRows) -> Result<(), ReaderError> {
        let HeldRows {
            schema,
            origin,
            changes,
        } = rows;
        self.copies.record(
            &schema.db,
            &schema.table,
            changes.iter().map(|(id, _)| id.as_str()),
        );
        let Some(version) = self.txn.as_ref().map(|t| t.version) else {
            return Ok(());
        };
        for (doc_id, op) in changes {
            let Some(ack) = self.txn.as_mut().map(OpenTxn::token) else {
                return Ok(());
            };
            let change = Change {
                key: DocKey {
                    index: Arc::clone(&schema.index),
                    id: doc_id,
                },
                op,
                version,
                origin: origin.clone(),
                ack,
            };
            if !self.route_change(change).await {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Lower-case hyphenated UUID text of a 16-byte source id.
fn format_uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A MySQL GTID state as `Sid`s for `COM_BINLOG_DUMP_GTID`.
fn mysql_sids(state: &GtidState) -> Result<Vec<mysql_async::Sid<'static>>, ReaderError> {
    let GtidState::MySql(map) = state else {
        return Err(ReaderError::Prerequisite(
            "no MySQL GTID set in the checkpoint to resume from".into(),
        ));
    };
    let mut out = Vec::new();
    for (sid, ivs) in map {
        let mut text = sid.clone();
        for (a, b) in ivs {
            text.push_str(&format!(":{a}-{b}"));
        }
        let parsed: mysql_async::Sid<'static> = text.parse().map_err(|e| {
            ReaderError::Prerequisite(format!("GTID set `{text}` cannot be sent: {e:?}"))
        })?;
        out.push(parsed);
    }
    Ok(out)
}
