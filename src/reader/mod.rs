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
mod error;
pub mod events;
pub mod prerequisites;
mod relations;
mod statements;
mod stream;
mod tables;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use mysql_async::Conn;
use mysql_common::binlog::consts::EventType;
use mysql_common::binlog::events::{Event, EventData, RowsEventData, TableMapEvent};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::source::MysqlSource;

use crate::checkpoint::tracker::SyncRequest;
use crate::checkpoint::{
    AckToken, Checkpoint, CopyMark, Rebuild, RebuildMark, ServerIdentity, TxnGtid, TxnStatus,
    TxnTicket, XaMark, Xid,
};
use crate::config::Config;
use crate::decode::rows::decode_rows_event;
use crate::decode::{DecodeError, RowDecoder};
use crate::document::store::Documents;
use crate::ordering::{Change, DocChange, DocKey, Origin, Router};
use crate::position::{BinlogPosition, GtidState, Version};
use crate::schema::TableSchema;
use crate::snapshot::merge::{ChunkOutcome, CopyMerge, CopyRequest, DueChunk, StreamPoint};
use crate::telemetry::metrics;
use crate::telemetry::progress::Progress;
use crate::writer::indices::Indices;
pub use error::ReaderError;
use events::QueryKind;

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
    changes: Vec<DocChange>,
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
    tables: HashMap<u64, (TableMapEvent<'static>, Option<tables::Known>)>,
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
    /// Rules with relations, see [`ReaderSetup::documents`].
    documents: Option<Arc<Documents>>,
    /// Tables used inside relations, by table id: their schema for decoding.
    watched: HashMap<u64, Arc<TableSchema>>,
    /// Indices being rebuilt (SPEC §10), each with its new physical index: every change
    /// to the one is written to the other too.
    mirrors: HashMap<Arc<str>, Arc<str>>,
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
    /// Rules with relations (SPEC §9): changes of their tables fan out to root documents.
    pub documents: Option<Arc<Documents>>,
    /// Rebuilds in progress at start (the checkpoint's).
    pub rebuilds: Vec<Rebuild>,
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
            mirrors: HashMap::new(),
            documents: setup.documents,
            watched: HashMap::new(),
        }
        .with_rebuilds(setup.rebuilds)
    }

    /// Mirrors the changes of the indices being rebuilt.
    fn with_rebuilds(mut self, rebuilds: Vec<Rebuild>) -> Self {
        for rebuild in rebuilds {
            self.mirror(&RebuildMark::Start {
                rebuild,
                tables: Vec::new(),
            });
        }
        self
    }

    /// Starts or stops mirroring an index's changes as a rebuild's step says.
    fn mirror(&mut self, mark: &RebuildMark) {
        match mark {
            RebuildMark::Start { rebuild: r, .. } if r.phase.mirrors() => {
                let (index, target): (Arc<str>, Arc<str>) =
                    (r.index.as_str().into(), r.target.as_str().into());
                if let Some(docs) = &self.documents {
                    docs.rebuild_into(Arc::clone(&target), Arc::clone(&index));
                }
                self.mirrors.insert(index, target);
            }
            RebuildMark::Start { .. } | RebuildMark::Listed { .. } => {}
            RebuildMark::Phase { index, phase } => {
                if !phase.mirrors() {
                    self.mirrors.remove(index.as_str());
                }
            }
            RebuildMark::End { index } => {
                self.mirrors.remove(index.as_str());
            }
        }
    }

    /// A ticket of no changes at the current position that commits copy or rebuild
    /// progress.
    fn mark_ticket(&self, copy: Option<CopyMark>, rebuild: Option<RebuildMark>) -> TxnTicket {
        TxnTicket {
            end: self.state.position.clone(),
            gtid: TxnGtid::None,
            version: self.state.version,
            done: None,
            server: Arc::clone(&self.identity),
            timestamp: 0,
            copy,
            xa: None,
            rebuild,
        }
    }

    /// The new physical index of `index` while a rebuild mirrors it.
    pub(super) fn mirror_of(&self, index: &str) -> Option<Arc<str>> {
        self.mirrors.get(index).cloned()
    }

    /// Records a rebuild's step at this point of the stream (between two transactions):
    /// changes read from here on are mirrored as the step says. Answers with the tickets
    /// sent, the step's own included, and the version it is recorded at.
    async fn on_rebuild(&mut self, mut mark: RebuildMark, reply: oneshot::Sender<(u64, Version)>) {
        if let RebuildMark::Start { rebuild, .. } = &mut mark {
            rebuild.since = self.state.version;
        }
        self.mirror(&mark);
        let ticket = self.mark_ticket(None, Some(mark));
        self.send_ticket(ticket).await;
        let _ = reply.send((self.sent, self.state.version));
    }

    /// Tells the document builders how far the stream has read, before changes that may ask
    /// for documents are routed (see [`Documents::cover_read`]).
    fn note_read(&self) {
        if let Some(docs) = &self.documents {
            docs.note_read(&self.reading_position());
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
        let request = match request {
            Some(CopyRequest::Rebuild { mark, reply }) => {
                self.on_rebuild(mark, reply).await;
                None
            }
            other => other,
        };
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
        self.note_read();
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
        for DocChange { id, op, routing } in docs {
            let change = Change {
                key: DocKey {
                    index: Arc::clone(&index),
                    id,
                },
                op,
                routing,
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
            rebuild: None,
        };
        self.send_ticket(ticket).await;
        let _ = reply.send(ChunkOutcome::Emitted { routed, skipped });
        true
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
                        let sid = events::format_uuid(&g.sid());
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
                        self.watched.clear();
                        debug!(query = %q.query(), "Statement event.");
                        let mut parsed = ddl::parse(&q.query(), &q.schema());
                        if parsed.is_none() {
                            parsed = self.reshaped_relation_table(&q.query(), &q.schema()).await;
                        }
                        let acted = match parsed {
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
            rebuild: None,
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
        if let Some(target) = self.mirrors.get(&change.key.index) {
            let mirrored = Change {
                key: DocKey {
                    index: Arc::clone(target),
                    id: change.key.id.clone(),
                },
                op: change.op.clone(),
                routing: change.routing.clone(),
                version: change.version,
                origin: change.origin.clone(),
                ack: change.ack.clone(),
            };
            if !self.route_one(mirrored).await {
                return false;
            }
        }
        self.route_one(change).await
    }

    /// Routes one change to its lane (see [`Reader::route_change`]).
    async fn route_one(&mut self, change: Change) -> bool {
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

    async fn on_rows(
        &mut self,
        rows: &RowsEventData<'_>,
        timestamp: u32,
    ) -> Result<(), ReaderError> {
        let id = rows.table_id();
        if self.watched.contains_key(&id) {
            self.on_relation_rows(rows, timestamp).await?;
        }
        let Some((_, Some((schema, shape)))) = self.tables.get(&id) else {
            return Ok(());
        };
        let (schema, shape) = (Arc::clone(schema), shape.clone());
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
        let out: Vec<DocChange> =
            match decode_rows_event(rows, &schema, &mut self.decoder, shape.as_deref()) {
                Ok(changes) => changes,
                // A missing image is a malformed event, not a bad value: reported at the event.
                Err(DecodeError::MissingImage { message, .. }) => {
                    return Err(self.event_err(message));
                }
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
        self.note_read();
        let HeldRows {
            schema,
            origin,
            changes,
        } = rows;
        self.copies.record(
            &schema.db,
            &schema.table,
            changes.iter().map(|c| c.id.as_str()),
        );
        let Some(version) = self.txn.as_ref().map(|t| t.version) else {
            return Ok(());
        };
        for DocChange {
            id: doc_id,
            op,
            routing,
        } in changes
        {
            let Some(ack) = self.txn.as_mut().map(OpenTxn::token) else {
                return Ok(());
            };
            let change = Change {
                key: DocKey {
                    index: Arc::clone(&schema.index),
                    id: doc_id,
                },
                op,
                routing,
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
