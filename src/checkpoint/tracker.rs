//! Ordered acknowledgements → committed position.
//!
//! The reader sends one [`TxnTicket`] per transaction, in binlog order. The tracker
//! awaits them in that order and moves the committed state to the end of the
//! longest prefix of delivered transactions. An abandoned or failed transaction
//! stops it for good: it never skips a gap.
//!
//! XA transactions: the reader holds the rows of an `XA PREPARE` in memory and
//! routes them with the group of their `XA COMMIT` (see `reader`). Until then a
//! restart must read the PREPARE again, so while any prepared XA transaction is
//! unresolved, the state that is stored ([`Checkpoint::pinned`]) stays at the
//! committed state just before the oldest such PREPARE: its position, GTID state
//! and version, and the copy progress of that moment. Tickets keep being consumed
//! meanwhile (the queue never fills, the reader never stalls on a long-open XA),
//! and the live state keeps moving, so waits on delivery (TRUNCATE, the copy's
//! sweep) do not deadlock behind the XA. Once the XA is resolved, the pin moves to
//! the next-oldest open PREPARE or goes away, and the stored state jumps to the
//! live one. Replaying from the pin is exact: versions come from `Version::next`
//! over the stored version, so the PREPARE, the transactions after it and the
//! COMMIT get the same versions again; transactions already delivered are written
//! again with their own versions, which Elasticsearch accepts or answers with 409.
//! Persisting the xids instead would not do: their rows are not in the checkpoint,
//! and re-reading an old PREPARE would need a second binlog reader.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use super::ack::TxnStatus;
use super::copy::CopyMark;
use super::rebuild::RebuildMark;
use super::store::{Checkpoint, CheckpointError, CheckpointStore, ServerIdentity};
use crate::position::{BinlogPosition, MariaGtid, Version};
use crate::telemetry::progress::Progress;

/// The GTID a transaction adds to the state, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnGtid {
    /// No GTID (anonymous transaction).
    None,
    /// MariaDB `domain-server-seq`.
    MariaDb(MariaGtid),
    /// MySQL `uuid[:tag]` and transaction number.
    MySql {
        /// `uuid` or `uuid:tag`.
        sid: String,
        /// Transaction number.
        gno: u64,
    },
}

/// The id of an XA transaction: `gtrid`, `bqual` and `formatID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Xid {
    /// `formatID` (1 unless the application set another).
    pub format_id: i64,
    /// Global transaction id, up to 64 bytes.
    pub gtrid: Vec<u8>,
    /// Branch qualifier, up to 64 bytes.
    pub bqual: Vec<u8>,
}

impl fmt::Display for Xid {
    /// As the servers write it in statements: `X'7831',X'',1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        write!(
            f,
            "X'{}',X'{}',{}",
            hex(&self.gtrid),
            hex(&self.bqual),
            self.format_id
        )
    }
}

/// What a transaction does to an XA transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XaMark {
    /// The `XA PREPARE` group: the XA transaction is open from here on.
    Prepared(Xid),
    /// The `XA COMMIT` / `XA ROLLBACK` group: resolved, its rows (if committed) ride
    /// on this ticket.
    Resolved(Xid),
}

/// One transaction as the tracker sees it.
#[derive(Debug)]
pub struct TxnTicket {
    /// Position right after the transaction's last event.
    pub end: BinlogPosition,
    /// GTID of the transaction.
    pub gtid: TxnGtid,
    /// Version of the transaction.
    pub version: Version,
    /// Final status; `None` when the transaction had no change to deliver.
    pub done: Option<oneshot::Receiver<TxnStatus>>,
    /// Server the transaction was read from (changes after a failover).
    pub server: Arc<ServerIdentity>,
    /// Server timestamp of the transaction (for lag).
    pub timestamp: u32,
    /// Snapshot progress this ticket completes (a copied chunk rides on a ticket of its own).
    pub copy: Option<CopyMark>,
    /// The XA transaction this ticket prepares or resolves, if any.
    pub xa: Option<XaMark>,
    /// The rebuild step this ticket records, if any.
    pub rebuild: Option<RebuildMark>,
}

/// Why the tracker stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerExit {
    /// The reader closed the ticket channel and every ticket was delivered.
    Drained,
    /// A transaction was abandoned (shutdown): the checkpoint stays before it.
    Abandoned(BinlogPosition),
    /// A transaction failed for good: the checkpoint stays before it.
    Failed(BinlogPosition),
}

/// Applies delivered transactions to the committed checkpoint, in order.
pub struct Tracker {
    committed: Checkpoint,
    progress: Option<Arc<Progress>>,
    /// Prepared, unresolved XA transactions, oldest first, each with the committed
    /// state just before its PREPARE.
    open_xa: Vec<(Xid, Checkpoint)>,
}

impl Tracker {
    /// A tracker starting from `start`.
    pub fn new(start: Checkpoint) -> Self {
        Self {
            committed: start,
            progress: None,
            open_xa: Vec::new(),
        }
    }

    /// Also report each commit to `progress` (lag, readiness).
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Awaits tickets in order and publishes each new committed state to `out`.
    pub async fn run(
        mut self,
        mut tickets: mpsc::Receiver<TxnTicket>,
        out: watch::Sender<Checkpoint>,
    ) -> TrackerExit {
        while let Some(ticket) = tickets.recv().await {
            let status = match ticket.done {
                None => TxnStatus::Delivered,
                // A dropped sender means every token went away unresolved.
                Some(rx) => rx.await.unwrap_or(TxnStatus::Abandoned),
            };
            match status {
                TxnStatus::Delivered => {}
                TxnStatus::Abandoned => return TrackerExit::Abandoned(ticket.end),
                TxnStatus::Failed => return TrackerExit::Failed(ticket.end),
            }
            if let Some(XaMark::Prepared(xid)) = &ticket.xa {
                let mut before = self.committed.clone();
                before.pinned = None;
                self.open_xa.push((xid.clone(), before));
            }
            let c = &mut self.committed;
            c.tickets += 1;
            c.position = ticket.end;
            c.version = ticket.version;
            match ticket.gtid {
                TxnGtid::None => {}
                TxnGtid::MariaDb(g) => c.gtid.add_mariadb(g),
                TxnGtid::MySql { sid, gno } => c.gtid.add_mysql(&sid, gno),
            }
            if let Some(mark) = ticket.copy {
                super::copy::apply(&mut c.copies, mark);
            }
            if let Some(mark) = ticket.rebuild {
                super::rebuild::apply(&mut c.rebuilds, &mut c.copies, mark);
            }
            if c.server != *ticket.server {
                c.server = (*ticket.server).clone();
            }
            if let Some(XaMark::Resolved(xid)) = &ticket.xa
                && let Some(i) = self.open_xa.iter().position(|(x, _)| x == xid)
            {
                self.open_xa.remove(i);
            }
            c.pinned = self.open_xa.first().map(|(_, s)| Box::new(s.clone()));
            c.updated_at = SystemTime::now();
            if let Some(p) = &self.progress {
                p.committed(ticket.version.0, ticket.timestamp);
            }
            out.send_replace(c.clone());
        }
        TrackerExit::Drained
    }
}

/// A request to the persist task: write the checkpoint now, once every ticket up to
/// `tickets` is committed, with a version lease of at least `lease`.
#[derive(Debug)]
pub struct SyncRequest {
    /// Committed ticket count to wait for (0: the current state will do).
    pub tickets: u64,
    /// Lease to store (see [`Checkpoint::version_lease`]).
    pub lease: Version,
    /// Answered once the file is on disk.
    pub done: oneshot::Sender<()>,
}

/// Writes each new committed state to disk, at most once per `interval`, at once when
/// a [`SyncRequest`] asks for it, and the last one when the tracker is gone.
///
/// # Errors
/// A failed write: the daemon must stop rather than run without progress on disk.
pub async fn persist(
    store: CheckpointStore,
    mut rx: watch::Receiver<Checkpoint>,
    interval: Duration,
    mut requests: mpsc::Receiver<SyncRequest>,
) -> Result<(), CheckpointError> {
    let mut lease = rx.borrow().version_lease;
    let mut waiting: Vec<SyncRequest> = Vec::new();
    let mut dirty = false;
    let mut closed = false;
    let mut requests_open = true;
    let mut next_save = tokio::time::Instant::now();
    loop {
        let committed = rx.borrow().tickets;
        let (ready, rest): (Vec<_>, Vec<_>) =
            waiting.into_iter().partition(|r| r.tickets <= committed);
        waiting = rest;
        let due = dirty && (closed || tokio::time::Instant::now() >= next_save);
        if !ready.is_empty() || due {
            for r in &ready {
                lease = lease.max(r.lease);
            }
            let mut current = rx.borrow_and_update().clone();
            current.version_lease = current.version_lease.max(lease);
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.save(&current))
                .await
                .map_err(|e| CheckpointError::Write {
                    path: store.path().to_owned(),
                    source: std::io::Error::other(e.to_string()),
                })??;
            dirty = false;
            next_save = tokio::time::Instant::now() + interval;
            for r in ready {
                let _ = r.done.send(());
            }
            continue;
        }
        if closed {
            // Requests waiting for tickets that will never come are dropped unanswered.
            return Ok(());
        }
        tokio::select! {
            r = rx.changed() => match r {
                Ok(()) => dirty = true,
                Err(_) => {
                    closed = true;
                    dirty = true;
                }
            },
            req = requests.recv(), if requests_open => match req {
                Some(r) => waiting.push(r),
                None => requests_open = false,
            },
            _ = tokio::time::sleep_until(next_save), if dirty => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::ack::AckToken;
    use crate::checkpoint::store::{Flavor, ServerIdentity};
    use crate::position::GtidState;
    use proptest::prelude::*;

    fn start() -> Checkpoint {
        Checkpoint {
            server: ServerIdentity {
                flavor: Flavor::Mariadb,
                id: "t".into(),
            },
            position: BinlogPosition::new("b.000001", 4),
            gtid: GtidState::None,
            version: Version(0),
            updated_at: SystemTime::UNIX_EPOCH,
            copies: Vec::new(),
            rebuilds: Vec::new(),
            version_lease: Version(0),
            tickets: 0,
            pinned: None,
        }
    }

    fn gtid(seq: u64) -> TxnGtid {
        TxnGtid::MariaDb(MariaGtid {
            domain: 0,
            server: 1,
            seq,
        })
    }

    // Paused time: a timeout only expires once every task is idle, so "nothing changed
    // before the timeout" means the tracker had nothing more to do.
    #[tokio::test(start_paused = true)]
    async fn commits_in_order_and_stops_at_a_gap() {
        let (tx, rx) = mpsc::channel(16);
        let (out, mut watch_rx) = watch::channel(start());
        let handle = tokio::spawn(Tracker::new(start()).run(rx, out));
        let (t1, r1) = AckToken::open();
        let (t2, r2) = AckToken::open();
        for (i, r) in [(1u64, Some(r1)), (2, None), (3, Some(r2))] {
            tx.send(TxnTicket {
                end: BinlogPosition::new("b.000001", 100 * i),
                gtid: gtid(i),
                version: Version(i),
                done: r,
                server: Arc::new(start().server),
                timestamp: 0,
                copy: None,
                xa: None,
                rebuild: None,
            })
            .await
            .unwrap();
        }
        // Transaction 3 is delivered first: nothing may commit before 1 is.
        t2.resolve(TxnStatus::Abandoned);
        let early = tokio::time::timeout(Duration::from_secs(1), watch_rx.changed()).await;
        assert!(
            early.is_err(),
            "committed before transaction 1 was delivered"
        );
        assert_eq!(watch_rx.borrow().position.pos, 4);
        t1.resolve(TxnStatus::Delivered);
        watch_rx.changed().await.unwrap();
        drop(tx);
        let exit = handle.await.unwrap();
        assert_eq!(
            exit,
            TrackerExit::Abandoned(BinlogPosition::new("b.000001", 300))
        );
        let c = watch_rx.borrow().clone();
        assert_eq!(c.position.pos, 200);
        assert_eq!(c.version, Version(2));
        assert_eq!(c.gtid.to_string(), "0-1-2");
    }

    fn xid(name: &str) -> Xid {
        Xid {
            format_id: 1,
            gtrid: name.as_bytes().to_vec(),
            bqual: Vec::new(),
        }
    }

    /// A prepared XA transaction pins the stored state before its PREPARE while the
    /// live state (and the ticket queue) keeps moving; resolving it unpins.
    #[tokio::test]
    async fn an_open_xa_transaction_pins_the_stored_state() {
        // A queue much smaller than the tickets sent while the XA is open: the
        // tracker must keep consuming or the sends below would never finish.
        let (tx, rx) = mpsc::channel(4);
        let (out, mut watch_rx) = watch::channel(start());
        let handle = tokio::spawn(Tracker::new(start()).run(rx, out));
        let ticket = |i: u64, xa: Option<XaMark>| TxnTicket {
            end: BinlogPosition::new("b.000001", 100 * i),
            gtid: gtid(i),
            version: Version(i),
            done: None,
            server: Arc::new(start().server),
            timestamp: 0,
            copy: None,
            xa,
            rebuild: None,
        };
        tx.send(ticket(1, None)).await.unwrap();
        tx.send(ticket(2, Some(XaMark::Prepared(xid("a")))))
            .await
            .unwrap();
        tx.send(ticket(3, Some(XaMark::Prepared(xid("b")))))
            .await
            .unwrap();
        for i in 4..100 {
            tx.send(ticket(i, None)).await.unwrap();
        }
        watch_rx
            .wait_for(|c| c.version == Version(99))
            .await
            .unwrap();
        let c = watch_rx.borrow().clone();
        let stored = Checkpoint::decode(&c.encode()).unwrap();
        assert_eq!(
            (stored.position.pos, stored.version, stored.gtid.to_string()),
            (100, Version(1), "0-1-1".to_string())
        );
        // The older XA resolves: pinned before the younger one's PREPARE.
        let mut send = async |i, xa| {
            tx.send(ticket(i, xa)).await.unwrap();
            watch_rx
                .wait_for(|c| c.version == Version(i))
                .await
                .unwrap()
                .clone()
        };
        let c = send(100, Some(XaMark::Resolved(xid("a")))).await;
        assert_eq!(c.durable().version, Version(2));
        let c = send(101, Some(XaMark::Resolved(xid("b")))).await;
        assert!(c.pinned.is_none());
        assert_eq!(c.durable().position.pos, 10_100);
        // The younger resolves first: still pinned before the older one.
        send(102, Some(XaMark::Prepared(xid("c")))).await;
        send(103, Some(XaMark::Prepared(xid("d")))).await;
        let c = send(104, Some(XaMark::Resolved(xid("d")))).await;
        assert_eq!(c.durable().version, Version(101));
        // Resolving an XA transaction whose PREPARE came before the start is harmless.
        let c = send(105, Some(XaMark::Resolved(xid("zz")))).await;
        assert_eq!(c.durable().version, Version(101));
        let c = send(106, Some(XaMark::Resolved(xid("c")))).await;
        assert_eq!(c.durable().version, Version(106));
        drop(tx);
        assert_eq!(handle.await.unwrap(), TrackerExit::Drained);
    }

    #[tokio::test]
    async fn persist_writes_the_last_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("c.json"));
        let (tx, rx) = watch::channel(start());
        let (_req_tx, req_rx) = mpsc::channel(1);
        let task = tokio::spawn(persist(
            store.clone(),
            rx,
            Duration::from_millis(10),
            req_rx,
        ));
        for i in 0..5 {
            let mut c = start();
            c.position.pos = 10 + i;
            tx.send_replace(c);
        }
        drop(tx);
        task.await.unwrap().unwrap();
        assert_eq!(store.load().unwrap().unwrap().position.pos, 14);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sync_request_is_written_at_once_when_its_tickets_are_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("c.json"));
        let (tx, rx) = watch::channel(start());
        let (req_tx, req_rx) = mpsc::channel(4);
        // An hour between periodic writes: only the request can cause the second one.
        let task = tokio::spawn(persist(
            store.clone(),
            rx,
            Duration::from_secs(3600),
            req_rx,
        ));
        let mut c = start();
        c.position.pos = 10;
        c.tickets = 1;
        tx.send_replace(c.clone());
        let (done, mut answered) = oneshot::channel();
        req_tx
            .send(SyncRequest {
                tickets: 2,
                lease: Version(500),
                done,
            })
            .await
            .unwrap();
        // Not answered while ticket 2 is not committed (tasks run until all wait).
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(answered.try_recv().is_err());
        c.position.pos = 20;
        c.tickets = 2;
        tx.send_replace(c);
        answered.await.unwrap();
        let saved = store.load().unwrap().unwrap();
        assert_eq!(saved.position.pos, 20);
        assert_eq!(saved.version_lease, Version(500));
        drop(tx);
        task.await.unwrap().unwrap();
    }

    proptest! {
        /// Whatever order changes are acknowledged in, the committed position is the
        /// end of the longest prefix of delivered transactions, never beyond.
        #[test]
        fn never_commits_past_an_unacknowledged_change(
            txns in proptest::collection::vec((0usize..4, any::<bool>()), 1..40),
            order_seed in any::<u64>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async move {
                let (tx, rx) = mpsc::channel(64);
                let (out, watch_rx) = watch::channel(start());
                let handle = tokio::spawn(Tracker::new(start()).run(rx, out));
                let mut tokens = Vec::new();
                for (i, &(changes, ok)) in txns.iter().enumerate() {
                    let done = if changes == 0 {
                        None
                    } else {
                        let (t, r) = AckToken::open();
                        for _ in 1..changes {
                            tokens.push((t.clone(), ok));
                        }
                        tokens.push((t, ok));
                        Some(r)
                    };
                    tx.send(TxnTicket {
                        end: BinlogPosition::new("b.000001", 10 + i as u64),
                        gtid: TxnGtid::None,
                        version: Version(i as u64 + 1),
                        done,
                        server: Arc::new(start().server),
                        timestamp: 0,
                        copy: None,
                        xa: None,
                        rebuild: None,
                    }).await.unwrap();
                }
                drop(tx);
                // Resolve in a scrambled order.
                let mut seed = order_seed;
                while !tokens.is_empty() {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let (t, ok) = tokens.swap_remove((seed >> 33) as usize % tokens.len());
                    t.resolve(if ok { TxnStatus::Delivered } else { TxnStatus::Abandoned });
                }
                handle.await.unwrap();
                let prefix = txns.iter().take_while(|(c, ok)| *c == 0 || *ok).count();
                let expected = if prefix == 0 { 4 } else { 10 + prefix as u64 - 1 };
                assert_eq!(watch_rx.borrow().position.pos, expected);
            });
        }
    }
}
