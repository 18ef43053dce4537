//! Merging copied rows into the stream without locks (the watermark technique, with binlog
//! positions as the watermarks).
//!
//! A copy worker first opens a *window* on a table at the reader: from then on the reader
//! records the `_id` of every change the stream makes to that table. The worker then reads a
//! chunk inside a consistent snapshot whose binlog position `at` is known, and hands the
//! chunk to the reader. The reader emits it once the stream has reached `at`, between two
//! transactions, dropping every row whose id the stream touched since the window opened:
//! the stream carries (or already carried) the newer state of those rows. Every other row has
//! had the same value from the snapshot until now, so it is emitted as of this point in the
//! stream, with the current version, through the same lanes: a copied row can neither
//! overwrite a newer streamed change nor bring back a row deleted later.
//!
//! The window must open before the chunk's read view, and that read view must see every
//! transaction the reader had read when the window opened, or changes between the two would
//! be neither in the chunk nor recorded; [`crate::snapshot::consistent`] makes sure of both.
//!
//! Windows are bounded: the worker closes each one on every way out (a guard), and a window
//! that recorded [`MAX_TOUCHED_BYTES`] of ids stops recording, frees them and turns invalid (its
//! chunks are refused and read again under a new window), so a window that is left open
//! (a worker that vanished) or that a burst of writes outgrew costs a few bytes, not memory
//! growing with every changed row of the table.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::checkpoint::{CopyMark, RebuildMark};
use crate::ordering::DocChange;
use crate::position::{BinlogPosition, Version};

/// Identifies an open window.
pub type WindowId = u64;

/// Memory one window's recorded ids may take (their bytes plus a set entry each). A window
/// lives for one snapshot refresh (5 s by default) plus the time its last chunk waits for the
/// stream; more changes than this in that time (100,000 short ids) are a burst the copy
/// does better to read again after.
pub const MAX_TOUCHED_BYTES: usize = 8 << 20;

/// What one recorded id costs besides its bytes (the `String` and the set's slot).
const ENTRY_BYTES: usize = 48;

/// What a copy worker asks of the reader.
#[derive(Debug)]
pub enum CopyRequest {
    /// Start recording changes to `db.table`; the reply is the window and the reader's
    /// position and version when it opened.
    Open {
        /// Database.
        db: String,
        /// Table.
        table: String,
        /// Window, position, version.
        reply: oneshot::Sender<Opened>,
    },
    /// Emit these documents once the stream has reached `chunk.at`.
    Chunk(CopyChunk),
    /// Forget a window (the worker gave up on it).
    Close(WindowId),
    /// Record a rebuild's step between two transactions (SPEC §10); the reader answers with
    /// the tickets sent once the step's own ticket is, so its commit can be awaited.
    Rebuild {
        /// The step.
        mark: RebuildMark,
        /// Tickets sent, the step's included, and the version it is recorded at.
        reply: oneshot::Sender<(u64, Version)>,
    },
}

/// A window as opened.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The window.
    pub window: WindowId,
    /// The reader's position when it opened (the low watermark).
    pub position: BinlogPosition,
    /// The version of the last transaction read then.
    pub version: Version,
    /// Tickets the reader had sent to the tracker then: once the committed checkpoint has
    /// counted this many, everything routed before the window (every earlier chunk of
    /// the copy included) is in Elasticsearch. Versions cannot tell, since a chunk's
    /// ticket carries the version of the last transaction read.
    pub tickets: u64,
}

/// Copied documents waiting for their place in the stream.
#[derive(Debug)]
pub struct CopyChunk {
    /// The window the rows were read under.
    pub window: WindowId,
    /// The snapshot's binlog position (the high watermark).
    pub at: BinlogPosition,
    /// Target index.
    pub index: Arc<str>,
    /// Documents by `_id`.
    pub docs: Vec<DocChange>,
    /// Progress committed with the chunk.
    pub mark: Option<CopyMark>,
    /// Close the window after this chunk.
    pub last: bool,
    /// Told how the chunk went.
    pub reply: oneshot::Sender<ChunkOutcome>,
}

/// What became of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Routed to the lanes; `skipped` rows were left to the stream.
    Emitted {
        /// Rows routed.
        routed: usize,
        /// Rows the stream changed since the window opened.
        skipped: usize,
    },
    /// A TRUNCATE/DROP of the table (or an unknown window) made the rows meaningless;
    /// read them again under a new window.
    Invalidated,
}

#[derive(Debug, Default)]
struct Window {
    db: String,
    table: String,
    touched: HashSet<String>,
    /// Memory `touched` takes, roughly (see [`MAX_TOUCHED_BYTES`]).
    touched_bytes: usize,
    invalid: bool,
}

/// Open windows and the chunks waiting for the stream to reach their position.
#[derive(Debug, Default)]
struct Merge {
    next_id: WindowId,
    windows: HashMap<WindowId, Window>,
    pending: Vec<CopyChunk>,
}

impl Merge {
    /// Whether no window is open (the stream then records nothing).
    pub fn is_idle(&self) -> bool {
        self.windows.is_empty() && self.pending.is_empty()
    }

    /// Opens a window on `db.table`.
    pub fn open(&mut self, db: String, table: String) -> WindowId {
        self.next_id += 1;
        self.windows.insert(
            self.next_id,
            Window {
                db,
                table,
                ..Window::default()
            },
        );
        self.next_id
    }

    /// Open windows.
    #[cfg(test)]
    fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Forgets a window and any chunk still waiting in it.
    pub fn close(&mut self, id: WindowId) {
        self.windows.remove(&id);
        self.pending.retain(|c| c.window != id);
    }

    /// Records ids the stream changed in `db.table`.
    pub fn record<'a>(
        &mut self,
        db: &str,
        table: &str,
        ids: impl Iterator<Item = &'a str> + Clone,
    ) {
        for w in self.windows.values_mut() {
            if w.db == db && w.table == table && !w.invalid {
                for id in ids.clone() {
                    if w.touched.insert(id.to_owned()) {
                        w.touched_bytes += id.len() + ENTRY_BYTES;
                    }
                }
                if w.touched_bytes > MAX_TOUCHED_BYTES {
                    // Too much to remember: give the memory back and have the chunk re-read.
                    w.touched = HashSet::new();
                    w.touched_bytes = 0;
                    w.invalid = true;
                }
            }
        }
    }

    /// Marks the windows of `db.table` invalid (its rows were all removed).
    pub fn invalidate(&mut self, db: &str, table: &str) {
        for w in self.windows.values_mut() {
            if w.db == db && w.table == table {
                w.invalid = true;
                w.touched = HashSet::new();
            }
        }
    }

    /// Marks every window invalid (the stream moved to another server).
    pub fn invalidate_all(&mut self) {
        for w in self.windows.values_mut() {
            w.invalid = true;
            w.touched = HashSet::new();
        }
        for c in &mut self.pending {
            c.at = BinlogPosition::new("", 0);
        }
    }

    /// Whether chunks wait for the stream.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Queues a chunk until the stream reaches its position.
    pub fn push(&mut self, chunk: CopyChunk) {
        self.pending.push(chunk);
    }

    /// Takes the chunks whose position the stream has reached (`here`), in arrival order.
    pub fn ready(&mut self, here: &BinlogPosition) -> Vec<CopyChunk> {
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|c| crate::position::reached(here, &c.at));
        self.pending = waiting;
        ready
    }

    /// Filters a ready chunk against its window: the documents to emit and how many were
    /// skipped, or `None` when the window is gone or invalid. Closes the window after the
    /// chunk marked last.
    pub fn filter(&mut self, chunk: &mut CopyChunk) -> Option<usize> {
        let window = self.windows.get(&chunk.window)?;
        if window.invalid {
            self.windows.remove(&chunk.window);
            return None;
        }
        let before = chunk.docs.len();
        chunk.docs.retain(|d| !window.touched.contains(&d.id));
        let skipped = before - chunk.docs.len();
        if chunk.last {
            self.windows.remove(&chunk.window);
        }
        Some(skipped)
    }
}

/// Where the reader stands when it calls [`CopyMerge::between`]: between two transactions.
#[derive(Debug, Clone)]
pub struct StreamPoint {
    /// The end of the last event read.
    pub position: BinlogPosition,
    /// The version of the last transaction read.
    pub version: Version,
    /// Tickets the reader has sent to the tracker.
    pub tickets: u64,
}

/// A chunk whose place in the stream has come: the reader routes `docs` with its current
/// version, commits `mark` on a ticket of its own, then answers `reply` with
/// [`ChunkOutcome::Emitted`].
#[derive(Debug)]
pub struct DueChunk {
    /// Target index.
    pub index: Arc<str>,
    /// The documents the stream did not change since the window opened.
    pub docs: Vec<DocChange>,
    /// Progress committed with the chunk.
    pub mark: Option<CopyMark>,
    /// Rows left to the stream.
    pub skipped: usize,
    /// The copy worker waiting for the outcome.
    pub reply: oneshot::Sender<ChunkOutcome>,
}

/// The copy side of the stream, as the reader sees it: the workers' requests, the open
/// windows and the chunks waiting for their place. The reader records the ids it routes
/// ([`CopyMerge::record`]) and, between transactions, calls [`CopyMerge::between`].
#[derive(Debug, Default)]
pub struct CopyMerge {
    requests: Option<mpsc::Receiver<CopyRequest>>,
    merge: Merge,
}

impl CopyMerge {
    /// Merges the copies that send requests on `requests` (`None`: nothing is copied).
    pub fn new(requests: Option<mpsc::Receiver<CopyRequest>>) -> Self {
        Self {
            requests,
            merge: Merge::default(),
        }
    }

    /// The next worker request; pending forever once none can come.
    pub async fn request(&mut self) -> CopyRequest {
        if let Some(rx) = self.requests.as_mut() {
            if let Some(request) = rx.recv().await {
                return request;
            }
            // The copy coordinator is gone: nothing more will be copied.
            self.requests = None;
        }
        std::future::pending().await
    }

    /// The hook the reader calls between transactions: applies a worker's request, if
    /// any, and returns the chunks due at `point`. Chunks of invalidated windows are
    /// answered [`ChunkOutcome::Invalidated`] here and not returned.
    pub fn between(&mut self, request: Option<CopyRequest>, point: &StreamPoint) -> Vec<DueChunk> {
        match request {
            Some(CopyRequest::Open { db, table, reply }) => {
                let window = self.merge.open(db, table);
                let _ = reply.send(Opened {
                    window,
                    position: point.position.clone(),
                    version: point.version,
                    tickets: point.tickets,
                });
                return Vec::new();
            }
            Some(CopyRequest::Close(window)) => {
                self.merge.close(window);
                return Vec::new();
            }
            Some(CopyRequest::Chunk(chunk)) => self.merge.push(chunk),
            // The reader takes these before they get here.
            Some(CopyRequest::Rebuild { .. }) | None => {}
        }
        let mut due = Vec::new();
        for mut chunk in self.merge.ready(&point.position) {
            let Some(skipped) = self.merge.filter(&mut chunk) else {
                let _ = chunk.reply.send(ChunkOutcome::Invalidated);
                continue;
            };
            debug!(at = %chunk.at, here = %point.position, routed = chunk.docs.len(), skipped, "Copied chunk merged.");
            due.push(DueChunk {
                index: chunk.index,
                docs: chunk.docs,
                mark: chunk.mark,
                skipped,
                reply: chunk.reply,
            });
        }
        due
    }

    /// Whether a chunk waits for the stream (the reader then calls
    /// [`CopyMerge::between`] after each transaction).
    pub fn has_pending(&self) -> bool {
        self.merge.has_pending()
    }

    /// Records that the stream changed these documents of `db.table`.
    pub fn record<'a>(
        &mut self,
        db: &str,
        table: &str,
        ids: impl Iterator<Item = &'a str> + Clone,
    ) {
        if !self.merge.is_idle() {
            self.merge.record(db, table, ids);
        }
    }

    /// A statement emptied or replaced `db.table`: chunks of its open windows are refused.
    pub fn invalidate(&mut self, db: &str, table: &str) {
        self.merge.invalidate(db, table);
    }

    /// The server changed: every open window and waiting chunk is refused.
    pub fn invalidate_all(&mut self) {
        self.merge.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunk(window: WindowId, at: u64, ids: &[&str], last: bool) -> CopyChunk {
        CopyChunk {
            window,
            at: BinlogPosition::new("b.000001", at),
            index: "i".into(),
            docs: ids
                .iter()
                .map(|id| DocChange {
                    id: (*id).to_owned(),
                    op: crate::ordering::Op::Index(Bytes::from_static(b"{}")),
                    routing: None,
                })
                .collect(),
            mark: None,
            last,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn rows_the_stream_touched_are_left_to_the_stream() {
        let mut m = Merge::default();
        let w = m.open("d".into(), "t".into());
        let other = m.open("d".into(), "u".into());
        m.record("d", "t", ["2", "9"].into_iter());
        m.record("d", "u", ["1"].into_iter());
        let mut c = chunk(w, 100, &["1", "2", "3"], true);
        assert_eq!(m.filter(&mut c), Some(1));
        let ids: Vec<&str> = c.docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["1", "3"]);
        // The last chunk closed its window; the other window is untouched.
        assert!(m.filter(&mut chunk(w, 100, &["1"], false)).is_none());
        assert_eq!(m.filter(&mut chunk(other, 1, &["1", "2"], false)), Some(1));
    }

    #[test]
    fn chunks_wait_for_their_position() {
        let mut m = Merge::default();
        let w = m.open("d".into(), "t".into());
        m.push(chunk(w, 500, &["1"], false));
        m.push(chunk(w, 300, &["2"], false));
        assert!(m.ready(&BinlogPosition::new("b.000001", 200)).is_empty());
        let r = m.ready(&BinlogPosition::new("b.000001", 300));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].docs[0].id, "2");
        // A later file is past every position of an earlier one.
        assert_eq!(m.ready(&BinlogPosition::new("b.000002", 4)).len(), 1);
        assert!(m.is_idle() || !m.windows.is_empty());
    }

    #[test]
    fn truncate_invalidates_and_close_forgets() {
        let mut m = Merge::default();
        let w = m.open("d".into(), "t".into());
        m.invalidate("d", "t");
        assert!(m.filter(&mut chunk(w, 1, &["1"], false)).is_none());
        let w2 = m.open("d".into(), "t".into());
        m.push(chunk(w2, 9, &["1"], false));
        m.close(w2);
        assert!(m.is_idle());
    }

    #[test]
    fn closing_every_window_leaves_nothing_recorded() {
        let mut m = Merge::default();
        let windows: Vec<_> = (0..5).map(|_| m.open("d".into(), "t".into())).collect();
        assert_eq!(m.open_windows(), 5);
        for w in windows {
            m.close(w);
        }
        assert_eq!(m.open_windows(), 0);
        assert!(m.is_idle());
        // Nothing is recorded once no window is open.
        m.record("d", "t", ["1"].into_iter());
        assert!(m.windows.is_empty());
    }

    #[test]
    fn a_window_that_outgrows_its_bound_forgets_and_is_refused() {
        // GIVEN an open window that nobody closes, on a table with many changes
        let mut m = Merge::default();
        let w = m.open("d".into(), "t".into());
        let ids: Vec<String> = (0..MAX_TOUCHED_BYTES / ENTRY_BYTES)
            .map(|i| i.to_string())
            .collect();

        // WHEN more ids than the bound change
        for batch in ids.chunks(1000) {
            m.record("d", "t", batch.iter().map(String::as_str));
        }
        m.record("d", "t", ["more"].into_iter());

        // THEN it holds no ids any more, and its chunks are refused (read again elsewhere)
        assert!(m.windows[&w].touched.is_empty());
        assert!(m.filter(&mut chunk(w, 1, &["1"], false)).is_none());
        // A new window records again from empty.
        let w2 = m.open("d".into(), "t".into());
        m.record("d", "t", ["7"].into_iter());
        assert_eq!(m.windows[&w2].touched.len(), 1);
    }
}
