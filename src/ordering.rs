//! Stage 3: per-document ordering.
//!
//! Each change is keyed by (index, `_id`) and routed to a lane by a hash of that
//! key, so changes to one document stay in binlog order on one lane while
//! different documents run in parallel. Within a batch several changes to one key
//! collapse into the last one; the superseded changes' acknowledgements travel
//! with the batch so their transactions complete when the batch is acknowledged.
//!
//! Memory between the reader and Elasticsearch is bounded twice: each lane queue holds at
//! most `writer.queue_capacity` changes, and all lanes together hold at most
//! `writer.max_buffered_bytes` of changes ([`Router::route`] takes a change's weight from a
//! shared budget before queueing it; the lane gives it back once the change is applied,
//! dead-lettered or abandoned). A change heavier than the whole budget takes all of it, so it
//! travels alone instead of waiting forever.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

use crate::checkpoint::AckToken;
use crate::position::Version;

/// Identity of a document: index and `_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DocKey {
    /// Target index.
    pub index: Arc<str>,
    /// Document `_id` (SPEC §5).
    pub id: String,
}

/// What to do with the document: decode's own type, which every later stage carries.
pub use crate::decode::rows::{DocChange, Op, RootKey};

/// Where a change came from, for dead-letter entries and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Binlog file.
    pub file: Arc<str>,
    /// End offset of the rows event.
    pub pos: u64,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// One document change travelling from the reader to the writer.
#[derive(Debug)]
pub struct Change {
    /// Document identity.
    pub key: DocKey,
    /// Index or delete.
    pub op: Op,
    /// `_routing` of the write or delete (SPEC §9); `None` for rules without `routing`.
    pub routing: Option<Arc<str>>,
    /// External version (the transaction's).
    pub version: Version,
    /// Source position.
    pub origin: Origin,
    /// This change's share of its transaction's acknowledgement.
    pub ack: AckToken,
}

impl Change {
    /// Approximate bytes this change adds to a bulk body (for batch limits).
    pub fn weight(&self) -> usize {
        let body = match &self.op {
            Op::Index(src) => src.len() + 1,
            Op::Delete => 0,
            // The document is built when written: reserve a typical document's size.
            Op::Refresh(_) => 1024,
        };
        body + self.key.index.len() + self.key.id.len() + 96
    }
}

/// Memory a held change takes beyond its [`Change::weight`]: the change itself, its
/// lane-backlog slot and index entry, and allocator rounding (measured: ~1.2 KiB of RSS per
/// held change of weight ~770 in the e2e replay).
const HELD_OVERHEAD: usize = 384;

impl Change {
    /// Bytes of the memory budget this change takes while held between the reader and
    /// the sink: its body estimate plus [`HELD_OVERHEAD`], so the budget bounds memory
    /// rather than body bytes alone.
    pub fn footprint(&self) -> usize {
        self.weight() + HELD_OVERHEAD
    }
}

/// The lane for `key` among `lanes`.
pub fn lane_of(key: &DocKey, lanes: usize) -> usize {
    lane_of_hash(key_hash(key), lanes)
}

/// The lane for a key of [`key_hash`] `hash` among `lanes`.
fn lane_of_hash(hash: u64, lanes: usize) -> usize {
    (hash % lanes.max(1) as u64) as usize
}

/// A stable 64-bit hash of `key` (FNV-1a over index, a separator and `_id`: cheap, and
/// the same in every process, so routing never changes across restarts).
pub fn key_hash(key: &DocKey) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key
        .index
        .as_bytes()
        .iter()
        .chain(std::iter::once(&0xff))
        .chain(key.id.as_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The lanes are gone (the writer stopped).
#[derive(Debug, thiserror::Error)]
#[error("writer lanes are closed")]
pub struct LanesClosed;

/// A change on its way through a lane, with its share of the byte budget (given back when
/// this value, or the batch its permit was merged into, is dropped).
#[derive(Debug)]
pub struct Routed {
    /// The change.
    pub change: Change,
    /// Budget bytes held for it.
    pub held: OwnedSemaphorePermit,
    /// [`key_hash`] of its document, computed once for the lane choice and the backlog.
    pub hash: u64,
}

impl Routed {
    /// `change` holding `held` of the budget.
    pub fn new(change: Change, held: OwnedSemaphorePermit) -> Self {
        Self {
            hash: key_hash(&change.key),
            change,
            held,
        }
    }
}

/// The router's end of a lane's queue.
#[derive(Clone)]
pub struct LaneSender {
    tx: mpsc::Sender<Routed>,
    /// Raised when the router finds the queue full and is about to wait for it.
    full: Arc<Notify>,
}

/// The lane's end of its queue.
pub struct LaneQueue {
    /// The changes routed to this lane, in order.
    pub rx: mpsc::Receiver<Routed>,
    /// Wakes the lane when the router waits on a full queue, so a lane whose request slots
    /// are all busy can move the queue into its backlog at reader speed: one wake-up per
    /// queueful, where waking per change or on a timer costs more than the backlog saves.
    pub full: Arc<Notify>,
}

/// A lane queue holding at most `capacity` changes.
pub fn lane_queue(capacity: usize) -> (LaneSender, LaneQueue) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let full = Arc::new(Notify::new());
    (
        LaneSender {
            tx,
            full: Arc::clone(&full),
        },
        LaneQueue { rx, full },
    )
}

/// Routes changes onto bounded lane queues; a full queue, or a spent byte budget, blocks
/// the caller.
#[derive(Clone)]
pub struct Router {
    lanes: Vec<LaneSender>,
    budget: Arc<Semaphore>,
    /// The budget's size in bytes (what one oversized change takes).
    budget_bytes: usize,
}

impl Router {
    /// A router over these lane queues, holding at most `budget_bytes` of changes in all of
    /// them together (`writer.max_buffered_bytes`).
    pub fn new(lanes: Vec<LaneSender>, budget_bytes: usize) -> Self {
        let budget_bytes = budget_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            lanes,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
        }
    }

    /// Bytes of the budget not held by any change (for tests and diagnostics).
    pub fn budget_available(&self) -> usize {
        self.budget.available_permits()
    }

    /// Sends `change` to its lane, waiting while the byte budget is spent or that lane is
    /// full. Cancel-safe: dropping the future gives back what it took.
    ///
    /// # Errors
    /// The lane's writer has stopped.
    pub async fn route(&self, change: Change) -> Result<(), LanesClosed> {
        // Never more than the whole budget, so one huge change waits for the others to
        // drain and then goes alone, rather than never.
        let share = change.footprint().min(self.budget_bytes);
        let share = u32::try_from(share).unwrap_or(u32::MAX);
        let held = Arc::clone(&self.budget)
            .acquire_many_owned(share)
            .await
            .map_err(|_| LanesClosed)?;
        let routed = Routed::new(change, held);
        let lane = &self.lanes[lane_of_hash(routed.hash, self.lanes.len())];
        match lane.tx.try_send(routed) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(routed)) => {
                lane.full.notify_one();
                lane.tx.send(routed).await.map_err(|_| LanesClosed)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(LanesClosed),
        }
    }
}

/// Collapses changes to the same key into the last one, keeping first-seen order
/// of keys. Returns the survivors and the acknowledgements of superseded changes.
///
/// The keys are borrowed from the batch, not cloned: no allocation per change.
pub fn coalesce(changes: Vec<Change>) -> (Vec<Change>, Vec<AckToken>) {
    // A refresh may find its root gone and write nothing, so it cannot stand for a delete
    // it supersedes: such batches keep their deletes (as routed ones do).
    if changes
        .iter()
        .any(|c| c.routing.is_some() || matches!(c.op, Op::Refresh(_)))
    {
        return coalesce_routed(changes);
    }
    // Per change: the slot of its key among the survivors, and whether it is the key's
    // last change (the one that survives).
    let mut place: Vec<(usize, bool)> = Vec::with_capacity(changes.len());
    let mut survivors = 0;
    {
        let mut slots: HashMap<&DocKey, (usize, usize)> = HashMap::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            let slot = slots.entry(&c.key).or_insert_with(|| {
                survivors += 1;
                (survivors - 1, i)
            });
            slot.1 = i;
            place.push((slot.0, false));
        }
        if survivors == changes.len() {
            return (changes, Vec::new());
        }
        for (slot, last) in slots.into_values() {
            place[last] = (slot, true);
        }
    }
    let mut out: Vec<Option<Change>> = Vec::with_capacity(survivors);
    out.resize_with(survivors, || None);
    let mut superseded = Vec::with_capacity(changes.len() - survivors);
    for (c, (slot, last)) in changes.into_iter().zip(place) {
        if last {
            out[slot] = Some(c);
        } else {
            superseded.push(c.ack);
        }
    }
    (out.into_iter().flatten().collect(), superseded)
}

/// [`coalesce`] for a batch where documents have routing or are refreshed (SPEC §9): a
/// document deleted under one routing and written under another is two documents when the
/// index has several shards, and a refresh may write nothing, so the last change per key
/// survives together with the superseded deletes under other routings (under any routing
/// before a refresh), placed just before it (one per routing, the latest). Superseded
/// writes need nothing: the write that put a document under a routing is always followed,
/// in the stream, by the delete that moves it away.
fn coalesce_routed(changes: Vec<Change>) -> (Vec<Change>, Vec<AckToken>) {
    // Groups in first-seen order of their keys.
    let mut slots: HashMap<DocKey, usize> = HashMap::with_capacity(changes.len());
    let mut groups: Vec<Vec<Change>> = Vec::new();
    for c in changes {
        match slots.get(&c.key) {
            Some(&slot) => groups[slot].push(c),
            None => {
                slots.insert(c.key.clone(), groups.len());
                groups.push(vec![c]);
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    let mut superseded = Vec::new();
    for mut group in groups {
        let Some(last) = group.pop() else {
            continue;
        };
        // A refresh learns its routing when it is built: any earlier routing may be stale.
        let last_routing = match last.op {
            Op::Refresh(_) => None,
            _ => Some(last.routing.clone()),
        };
        let mut stale: Vec<Change> = Vec::new();
        for c in group {
            let moves =
                matches!(c.op, Op::Delete) && last_routing.as_ref().is_none_or(|r| *r != c.routing);
            if !moves {
                superseded.push(c.ack);
                continue;
            }
            match stale.iter_mut().find(|s| s.routing == c.routing) {
                Some(slot) => superseded.push(std::mem::replace(slot, c).ack),
                None => stale.push(c),
            }
        }
        out.extend(stale);
        out.push(last);
    }
    (out, superseded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn change(index: &str, id: &str, op: Op, version: u64) -> Change {
        Change {
            key: DocKey {
                index: index.into(),
                id: id.into(),
            },
            op,
            routing: None,
            version: Version(version),
            origin: Origin {
                file: "b.000001".into(),
                pos: version,
            },
            ack: AckToken::open().0,
        }
    }

    fn routed(id: &str, op: Op, routing: Option<&str>, version: u64) -> Change {
        Change {
            routing: routing.map(Arc::from),
            ..change("i", id, op, version)
        }
    }

    #[test]
    fn coalesce_keeps_deletes_under_an_old_routing() {
        let src = |s: &str| Op::Index(Bytes::from(s.to_owned()));
        let (out, superseded) = coalesce(vec![
            routed("1", src("{\"a\":1}"), Some("r1"), 1),
            routed("2", src("{\"b\":1}"), None, 1),
            // moved from r1 to r2 in one update
            routed("1", Op::Delete, Some("r1"), 2),
            routed("1", src("{\"a\":2}"), Some("r2"), 2),
            // moved back: the delete under r2 goes, the one under r1 is not needed
            routed("1", Op::Delete, Some("r2"), 3),
            routed("1", src("{\"a\":3}"), Some("r1"), 3),
            routed("2", Op::Delete, None, 4),
            routed("3", Op::Delete, Some("x"), 5),
            routed("3", Op::Refresh(RootKey(vec![])), None, 5),
        ]);
        // Without any routing: a delete before a refresh stays (the refresh may write nothing).
        let (plain, _) = coalesce(vec![
            routed("4", Op::Delete, None, 6),
            routed("4", Op::Refresh(RootKey(vec![])), None, 7),
        ]);
        assert_eq!(plain.len(), 2);
        assert!(matches!(plain[0].op, Op::Delete) && plain[0].version.0 == 6);
        let got: Vec<_> = out
            .iter()
            .map(|c| {
                (
                    c.key.id.clone(),
                    matches!(c.op, Op::Delete),
                    c.routing.as_deref().map(str::to_owned),
                    c.version.0,
                )
            })
            .collect();
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            got,
            vec![
                ("1".into(), true, s("r2"), 3),
                ("1".into(), false, s("r1"), 3),
                ("2".into(), true, None, 4),
                ("3".into(), true, s("x"), 5),
                ("3".into(), false, None, 5),
            ]
        );
        assert_eq!(out.len() + superseded.len(), 9);
    }

    #[test]
    fn coalesce_keeps_the_last_change_per_key() {
        let src = |s: &str| Op::Index(Bytes::from(s.to_owned()));
        let (out, superseded) = coalesce(vec![
            change("i", "1", src("{\"a\":1}"), 1),
            change("i", "2", src("{\"a\":2}"), 1),
            change("i", "1", Op::Delete, 2),
            change("j", "1", src("{\"b\":1}"), 2),
            change("i", "1", src("{\"a\":3}"), 3),
        ]);
        let got: Vec<_> = out
            .iter()
            .map(|c| {
                (
                    c.key.index.to_string(),
                    c.key.id.clone(),
                    c.op.clone(),
                    c.version.0,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("i".into(), "1".into(), src("{\"a\":3}"), 3),
                ("i".into(), "2".into(), src("{\"a\":2}"), 1),
                ("j".into(), "1".into(), src("{\"b\":1}"), 2),
            ]
        );
        assert_eq!(superseded.len(), 2);
    }

    #[test]
    fn coalesce_matches_a_naive_last_write_wins() {
        // Keys drawn from a small set, so most batches have duplicates; also all distinct.
        for (n, distinct) in [(0, 1), (1, 1), (50, 7), (200, 200), (300, 3)] {
            let batch: Vec<Change> = (0..n)
                .map(|i| {
                    change(
                        "i",
                        &((i * 7919) % distinct).to_string(),
                        Op::Delete,
                        i as u64,
                    )
                })
                .collect();
            let mut expected: Vec<(String, u64)> = Vec::new();
            for c in &batch {
                match expected.iter_mut().find(|(id, _)| *id == c.key.id) {
                    Some(slot) => slot.1 = c.version.0,
                    None => expected.push((c.key.id.clone(), c.version.0)),
                }
            }
            let (out, superseded) = coalesce(batch);
            let got: Vec<(String, u64)> = out
                .iter()
                .map(|c| (c.key.id.clone(), c.version.0))
                .collect();
            assert_eq!(got, expected, "{n} changes over {distinct} keys");
            assert_eq!(out.len() + superseded.len(), n);
        }
    }

    #[test]
    fn routing_is_stable_and_spreads() {
        let key = |id: usize| DocKey {
            index: "orders".into(),
            id: id.to_string(),
        };
        assert_eq!(lane_of(&key(7), 4), lane_of(&key(7), 4));
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[lane_of(&key(i), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert_eq!(lane_of(&key(1), 1), 0);
    }

    fn big(id: &str, bytes: usize) -> Change {
        change("i", id, Op::Index(Bytes::from(vec![b'x'; bytes])), 1)
    }

    #[tokio::test]
    async fn route_waits_while_the_byte_budget_is_spent() {
        let (tx, LaneQueue { mut rx, .. }) = lane_queue(100);
        let router = Router::new(vec![tx], 10_000);
        router.route(big("1", 6_000)).await.unwrap();
        assert!(router.budget_available() < 4_000);
        // The queue has room, the budget does not: the second change waits.
        let second = router.route(big("2", 6_000));
        tokio::pin!(second);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), &mut second).await;
        assert!(waited.is_err(), "routed beyond the byte budget");
        // The writer finishes with the first change: the second goes through.
        drop(rx.recv().await.unwrap());
        second.await.unwrap();
        let routed = rx.recv().await.unwrap();
        assert_eq!(routed.change.key.id, "2");
        drop(routed);
        assert_eq!(router.budget_available(), 10_000);
    }

    #[tokio::test]
    async fn route_wakes_the_lane_when_it_finds_its_queue_full() {
        let (tx, mut queue) = lane_queue(1);
        let router = Router::new(vec![tx], 10_000);
        router.route(big("1", 10)).await.unwrap();
        let woken =
            tokio::time::timeout(std::time::Duration::from_millis(20), queue.full.notified());
        assert!(woken.await.is_err(), "woken while the queue had room");
        let second = router.route(big("2", 10));
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), &mut second)
                .await
                .is_err()
        );
        // The router waits on the full queue and has woken the lane, which takes the queue.
        queue.full.notified().await;
        drop(queue.rx.recv().await.unwrap());
        second.await.unwrap();
        assert_eq!(queue.rx.recv().await.unwrap().change.key.id, "2");
    }

    #[tokio::test]
    async fn a_change_larger_than_the_budget_takes_all_of_it_and_passes() {
        let (tx, LaneQueue { mut rx, .. }) = lane_queue(100);
        let router = Router::new(vec![tx], 10_000);
        router.route(big("small", 100)).await.unwrap();
        let huge = router.route(big("huge", 50_000));
        tokio::pin!(huge);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), &mut huge).await;
        assert!(
            waited.is_err(),
            "the huge change must wait for the budget to drain"
        );
        drop(rx.recv().await.unwrap());
        tokio::time::timeout(std::time::Duration::from_secs(5), huge)
            .await
            .expect("a change larger than the budget never passed")
            .unwrap();
        assert_eq!(router.budget_available(), 0);
        drop(rx.recv().await.unwrap());
        assert_eq!(router.budget_available(), 10_000);
    }
}
